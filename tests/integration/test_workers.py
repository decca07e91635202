"""Several `retl daemon` workers on one state store (issue 19, Done when 2).

Three daemons share one store; 20 syncs run "every 2s", each to its own
file destination (mirror mode: rows that leave the model are removed), for
about 60 s while their models change; one daemon is killed with SIGKILL
half-way.  The workers are kept busier than they can keep up with, on any
machine: one run at a time each (--concurrency 1), and every model query
sleeps 0.4 s in the warehouse, so three workers run at most 7.5 syncs a
second and two at most 5, while 20 syncs every 2 s want 10.  Syncs wait for a
slot, and the order the workers take them in decides whether one starves.
Asserted, from the store's `runs` and `claims` tables:

  (a) no sync ever runs twice at once: the [started, ended] intervals of
      one sync's runs never overlap (the run lock) -- and no due time is
      run twice (claims): two runs of one sync start at least half a
      period apart;
  (b) none starves: between two consecutive runs of a sync, no other sync
      runs more than 3 times (the runs table's ids order the runs: they are
      given as runs begin);
  (c) the killed daemon's syncs (those whose last claim it had made) are
      run by the others within one period of their due time: each one's
      first run after the kill begins before any sync's third run after
      the kill;
  (d) after the models stop changing and every sync has run since, every
      destination equals its model record by record.
  and /metrics is per worker: each live worker's retl_daemon_runs_total
  counts its own runs (some, and together no more than the store holds).

Why these bounds hold on a loaded 2-core machine, and what breaks them.
A due time is claimed by one worker, which writes the next due time (claim
time + 2 s); every worker claims due syncs earliest first, and a worker's
idea of a sync's due time is never later than the stored one (it takes the
stored one whenever it loses a claim).  So once sync s is due, a worker
with a free slot tries s before any sync whose due time is later, and
every sync that claims after s became due was due no later than s: a sync
can claim at most twice between two claims of s (once for a due time
before s's, once more only if its previous claim came before s's last
one).  Load makes every run late, all of them alike: it moves no run ahead
of another, so the bound counts runs, not seconds; the third run allowed
is the slack for a child that begins its run (gets its id) later than
another worker's child claimed after it.  A killed worker holds nothing:
the due times it stored are claimed by the first live worker whose timer
reaches them, at most one period after the kill, while any other sync has
run at most twice since the kill (the same argument).  A starving or stuck
scheduler (due times held by a dead worker, a lost claim never retried, a
worker running only "its" syncs) fails (b) or (c) by many runs, not by one.
Scheduling the latest due sync first, for one, starves the syncs that wait
longest and fails (b).
The half-period check in (a) measures time, but only as a lower bound: a
loaded machine makes runs late, never early; a due time run by two workers
starts its second run as soon as the first one ends.

The state store is a fixture parameter: the SQLite file (three daemons on
one host) and the PostgreSQL store (daemons on several machines; enabled
when that store is merged).
"""

import json
import os
import random
import re
import signal
import sqlite3
import time

import pytest

from audit_check import assert_audit_complete
from test_daemon import Daemon
from waiting import wait_for

NSYNCS = 20
PERIOD = 2.0
ROWS = 30                 # per sync at the start
PHASE = 30.0              # seconds before the kill, and after it
QUERY_SLEEP = 0.4         # s: each run takes at least this (see the top)


class SqliteStore:
    """The embedded store: state/retl.db of the project."""
    name = "sqlite"

    def __init__(self, pg):
        self.path = None

    def config(self, project_dir):
        self.path = os.path.join(project_dir, "state", "retl.db")
        return None                      # the default

    def rows(self, sql):
        if not self.path or not os.path.exists(self.path):
            return []
        con = sqlite3.connect(self.path, timeout=30)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def execute(self, sql):
        con = sqlite3.connect(self.path, timeout=30)
        try:
            con.execute(sql)
            con.commit()
        finally:
            con.close()


class PostgresStore:
    """The PostgreSQL store: a database of the test cluster."""
    name = "postgresql"

    def __init__(self, pg):
        self.pg = pg
        self.dbname = f"state{os.getpid()}_{random.randrange(10**6)}"
        pg.psql(f"CREATE DATABASE {self.dbname}")

    def config(self, project_dir):
        return (f"postgresql://postgres@/{self.dbname}?host={self.pg.sockdir}"
                f"&port={self.pg.port}")

    def rows(self, sql):
        # the store's tables are in schema retl (README "The state store")
        out = self.pg.psql("SET search_path TO retl;\n" + sql, "-qAt",
                           "-F", "\t", dbname=self.dbname)
        return [tuple(None if v == "" else v for v in line.split("\t"))
                for line in out.splitlines()]

    def execute(self, sql):
        self.pg.psql("SET search_path TO retl;\n" + sql, "-q",
                     dbname=self.dbname)

    def drop(self):
        self.pg.psql(f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)",
                     check=False)


@pytest.fixture(params=[
    "sqlite",
    "postgresql",
])
def store(request, pg):
    s = (SqliteStore if request.param == "sqlite" else PostgresStore)(pg)
    yield s
    if hasattr(s, "drop"):
        s.drop()


def ts(v):
    """A stored time (ISO 8601 text, or PostgreSQL's timestamptz) as UTC
    seconds."""
    import datetime
    v = str(v).replace(" ", "T")
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    elif re.search(r"[+-]\d\d$", v):
        v += ":00"
    return datetime.datetime.fromisoformat(v).timestamp()


def runs(store):
    """Every run: dicts in id order (the order runs began)."""
    out = []
    for i, sync, started, ended, status in store.rows(
            "SELECT id, sync, started_at, ended_at, status FROM runs "
            "ORDER BY id"):
        out.append({"id": int(i), "sync": sync, "started": ts(started),
                    "ended": ts(ended) if ended else None, "status": status})
    return out


def claims(store):
    return {s: o for s, o in store.rows("SELECT sync, owner FROM claims")}


class Models:
    """One table, a group of rows per sync; random inserts, updates and
    deletes, a batch at a time."""

    def __init__(self, db, rng):
        self.db, self.rng = db, rng
        self.next_id = ROWS + 1
        db.psql(f"""
            CREATE TABLE m (grp int, id int, email text, name text,
                            PRIMARY KEY (grp, id));
            INSERT INTO m SELECT g, i, 'u' || g || '_' || i || '@example.com',
                                 'name ' || i
            FROM generate_series(0, {NSYNCS - 1}) g,
                 generate_series(1, {ROWS}) i;""")

    def change(self, n):
        sql = []
        for _ in range(n):
            g = self.rng.randrange(NSYNCS)
            kind = self.rng.choice(["insert", "update", "update", "delete"])
            if kind == "insert":
                i = self.next_id
                self.next_id += 1
                sql.append(f"INSERT INTO m VALUES ({g}, {i}, "
                           f"'u{g}_{i}@example.com', 'new {i}');")
            elif kind == "update":
                sql.append(f"UPDATE m SET name = 'v{self.rng.randrange(10**6)}'"
                           f" WHERE (grp, id) = (SELECT grp, id FROM m WHERE "
                           f"grp = {g} ORDER BY random() LIMIT 1);")
            else:
                # keep a group well above the removal safety limit
                sql.append(f"DELETE FROM m WHERE (grp, id) = (SELECT grp, id "
                           f"FROM m WHERE grp = {g} ORDER BY random() LIMIT 1)"
                           f" AND (SELECT count(*) FROM m WHERE grp = {g}) > "
                           f"{ROWS // 2};")
        self.db.psql("\n".join(sql))

    def rows(self, g):
        out = {}
        for line in self.db.psql(f"SELECT id, email, name FROM m WHERE grp = "
                                 f"{g}", "-At", "-F", "\t").splitlines():
            i, e, n = line.split("\t")
            out[json.dumps(i)] = {"email": e, "name": n}
        return out


def destination(p, g):
    """The records file out<g>.jsonl leaves: its lines replayed."""
    recs = {}
    for line in p.read_jsonl(f"out{g}.jsonl"):
        if line["op"] == "remove":
            recs.pop(json.dumps(line["key"]), None)
        else:
            recs[json.dumps(line["key"])] = line["payload"]
    return recs


AUDIT = "retl_audit"


def use_store(p, store, audit=None):
    """p with its state in store (and its source's sync logs in schema
    audit, when given); returns p"""
    state = store.config(p.dir)
    cfg = json.load(open(p.path("retl.json")))
    if state is not None:
        cfg["state"] = state
    if audit:
        cfg["sources"]["warehouse"]["audit"] = audit
    p.write_config(cfg)
    return p


def make_project(project, db, store):
    dests = {f"out{g}": {"type": "file", "path": f"out{g}.jsonl"}
             for g in range(NSYNCS)}
    # sync logs in the warehouse too (issue 19, Done when 3)
    p = use_store(project(dsn=db.dsn, destinations=dests), store, AUDIT)
    for g in range(NSYNCS):
        p.add_mapping(f"s{g:02d}", {
            "source": "warehouse",
            # cast: the key is text in the file, as the model's rows() has it
            "query": f"SELECT id::text AS id, email, name FROM m, "
                     f"(SELECT pg_sleep({QUERY_SLEEP})) s WHERE grp = {g}",
            "key": "id", "destination": f"out{g}", "mode": "mirror",
            "on_remove": "delete",
            "safety": {"max_removed_ratio": 0.9},
            "fields": {"email": "email", "name": "name"},
            "schedule": "every 2s"})
    return p


def run_phase(store, models, seconds, until, what, detail):
    """Changes the models each time more runs have ended, for `seconds`
    and until `until(runs)` holds (the deadline only stops a hang)."""
    start = time.monotonic()
    seen = 0

    def step():
        nonlocal seen
        rs = runs(store)
        ended = sum(1 for r in rs if r["ended"] is not None)
        if ended > seen:
            models.change(min(ended - seen, 10))
            seen = ended
        return time.monotonic() - start >= seconds and until(rs)
    return wait_for(step, seconds + 120, what, detail, interval=0.1)


def by_sync(rs):
    out = {}
    for r in rs:
        out.setdefault(r["sync"], []).append(r)
    return out


def after(rs, first_id):
    return [r for r in rs if r["id"] > first_id and r["status"] == "ok"]


def every_sync_ran(rs, n, first_id=0):
    got = by_sync(after(rs, first_id))
    return len(got) == NSYNCS and all(len(v) >= n for v in got.values())


@pytest.mark.parametrize("seed", [19])
def test_three_daemons_share_one_store(project, db, store, seed):
    rng = random.Random(seed)
    models = Models(db, rng)
    p = make_project(project, db, store)
    daemons = []
    try:
        for i in range(3):
            daemons.append(Daemon(p, "--concurrency", 1,
                                  log=f"daemon{i}.log"))

        def logs():
            """what a timeout shows: each sync's runs (one that starves
            has few or none) and the end of each worker's log"""
            counts = {s: len(v) for s, v in sorted(by_sync(runs(store)).items())}
            return f"runs per sync: {counts}\n" + "\n".join(
                d.text()[-3000:] for d in daemons)

        # phase 1: all three, until each sync ran 3 times
        run_phase(store, models, PHASE, lambda rs: every_sync_ran(rs, 3),
                  "3 runs of every sync", logs)

        # kill -9 one worker; its runs stop as on SIGTERM (interrupted)
        victim = daemons[0]
        worker = re.search(r"daemon started \(pid \d+\): worker (\S+),",
                           victim.text()).group(1)
        victim.proc.kill()
        victim.proc.wait()
        kill_id = max(r["id"] for r in runs(store))
        held = sorted(s for s, o in claims(store).items() if o == worker)
        assert held, ("the killed worker made none of the last claims",
                      claims(store))

        # phase 2: the other two, until each sync ran 3 times since
        run_phase(store, models, PHASE,
                  lambda rs: every_sync_ran(rs, 3, kill_id),
                  "3 runs of every sync after the kill", logs)

        # the end: no more changes; every sync runs once more (a run that
        # began after the last change read it), then both stop cleanly
        last_id = max(r["id"] for r in runs(store))
        wait_for(lambda: every_sync_ran(runs(store), 1, last_id), 120,
                 "a run of every sync after the last change", logs,
                 interval=0.1)
        # /metrics per worker: each live worker ran its share of the runs
        ran = []
        for d in daemons[1:]:
            m = d.metrics()
            ran.append(sum(v for (name, _), v in m.items()
                           if name == "retl_daemon_runs_total"))
        for d in daemons[1:]:
            assert d.stop() == 0, d.text()
        rs = runs(store)
        final = claims(store)
        skips = sum(d.text().count("skipped") for d in daemons)
    finally:
        for d in daemons:
            d.kill()

    syncs = by_sync(rs)
    assert all(n > 0 for n in ran) and sum(ran) <= len(rs), (ran, len(rs))
    print(f"live workers ran {ran} of {len(rs)} runs; per sync: "
          f"{sorted(len(v) for v in syncs.values())}")
    assert sorted(syncs) == [f"s{g:02d}" for g in range(NSYNCS)]
    # only the statuses of clean runs and of runs the kill stopped
    assert {r["status"] for r in rs} <= {"ok", "interrupted"}, \
        [r for r in rs if r["status"] not in ("ok", "interrupted")]

    # (a) never two runs of a sync at once, never one due time run twice
    gaps = []
    for s, v in syncs.items():
        v = sorted(v, key=lambda r: r["started"])
        for a, b in zip(v, v[1:]):
            assert a["ended"] is not None and b["started"] >= a["ended"], \
                f"{s}: runs overlap: {a} and {b}"
            assert b["started"] - a["started"] >= PERIOD / 2, \
                f"{s}: one due time run twice: {a} and {b}"
            gaps.append(b["started"] - a["started"])
    print(f"starts of one sync {min(gaps):.2f} to {max(gaps):.2f} s apart; "
          f"{skips} skipped due times")

    # (b) none starves: between two runs of a sync, at most 3 of another
    worst = 0
    for s, v in syncs.items():
        for a, b in zip(v, v[1:]):
            between = {}
            for r in rs:
                if a["id"] < r["id"] < b["id"] and r["sync"] != s:
                    between[r["sync"]] = between.get(r["sync"], 0) + 1
            most = max(between.values(), default=0)
            worst = max(worst, most)
            assert most <= 3, (f"{s} waited from run {a['id']} to run "
                               f"{b['id']} while others ran: {between}")
    print(f"most runs of one sync between two of another: {worst}")

    # (c) the killed worker's syncs moved within one period of their due
    # time: each ran before any sync's third run after the kill, by a
    # live worker (the killed one's children stop "interrupted")
    since = by_sync(after(rs, kill_id))
    third = min(v[2]["id"] for v in since.values())
    for s in held:
        assert since[s][0]["id"] < third, \
            (f"{s} (claimed last by the killed worker) first ran after the "
             f"kill as run {since[s][0]['id']}, after a third run of another "
             f"sync ({third})", [(r["id"], r["sync"]) for r in after(rs, kill_id)][:80])
    assert worker not in final.values(), final
    assert len(final) == NSYNCS

    # (d) every destination equals its model
    for g in range(NSYNCS):
        assert destination(p, g) == models.rows(g), f"sync s{g:02d}"

    # the sync logs hold every run: the runs the daemons' stop interrupted
    # are written by each sync's next run (README "Sync logs in the
    # warehouse"), so one more run of every sync, then the check
    rc, _, err = p.run("run", "--all")
    assert rc == 0, err
    assert_audit_complete(p, db, AUDIT, [f"s{g:02d}" for g in range(NSYNCS)])


def test_a_killed_daemon_stops_its_runs(project, db, store):
    """kill -9 of a daemon stops its runs as SIGTERM would: the run
    (waiting on a 10-minute query) is recorded "interrupted" and its lock
    is free for the other workers, rather than running on with no daemon
    to watch or stop it."""
    db.psql("CREATE TABLE m (grp int, id int, email text, name text);"
            "INSERT INTO m VALUES (0, 1, 'a@example.com', 'a');")
    p = use_store(project(dsn=db.dsn), store)
    p.add_mapping("slow", {
        "source": "warehouse",
        "query": "SELECT m.id, m.email FROM m, (SELECT pg_sleep(600)) s",
        "key": "id", "destination": "out", "mode": "upsert",
        "fields": {"email": "email"}, "schedule": "every 1h"})
    d = Daemon(p)
    try:
        wait_for(lambda: [r for r in runs(store) if r["status"] == "running"],
                 60, "the run to begin", d.text)
        lock = p.path("state", "retl.db.slow.lock")
        child = open(lock).read().strip() if os.path.exists(lock) else None
        d.proc.kill()
        d.proc.wait()
        (r,) = wait_for(lambda: [r for r in runs(store) if r["ended"]], 60,
                        "the killed daemon's run to stop", d.text)
        assert r["status"] == "interrupted", r
    finally:
        d.kill()
        # without the fix the run would sleep on: do not leave it behind
        if child and child.isdigit():
            try:
                os.kill(int(child), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_starting_worker_takes_a_later_claimed_due_time(project, db, store):
    """A worker starting while another has claimed a sync's due time (the
    claims row says its next run is in 30 minutes, under the same
    schedule) plans that time, though the sync never ran (on its own it
    would run it at once), and runs nothing: the store's due time is the
    decision, shown in the log and in retl_next_run_timestamp_seconds."""
    db.psql("CREATE TABLE m (grp int, id int, email text, name text);"
            "INSERT INTO m VALUES (0, 1, 'a@example.com', 'a');")
    p = use_store(project(dsn=db.dsn), store)
    for name in ("claimed", "free"):
        p.add_mapping(name, {
            "source": "warehouse", "query": "SELECT id, email FROM m",
            "key": "id", "destination": "out", "mode": "upsert",
            "fields": {"email": "email"}, "schedule": "every 1h"})
    assert p.run("status")[0] == 0          # creates the store
    due = int((time.time() + 1800) * 1000)
    store.execute("INSERT INTO claims(sync, next_due, schedule, owner, "
                  f"claimed_at) VALUES ('claimed', {due}, 'every 1h', "
                  "'elsewhere:1:00000000', '2026-01-01T00:00:00.000Z')")
    d = Daemon(p)
    try:
        log = d.wait_log('claimed: schedule "every 1h"')
        assert re.search(r'claimed: schedule "every 1h": next run in '
                         r'1[78]\d\d s \(its shared due time\)', log), log
        wait_for(lambda: [r for r in runs(store) if r["sync"] == "free"
                          and r["ended"]], 60, "the free sync's run", d.text)
        m = d.idle("claimed", "free")
        assert m[("retl_next_run_timestamp_seconds",
                  (("sync", "claimed"),))] == due // 1000
        assert {r["sync"] for r in runs(store)} == {"free"}
        assert claims(store)["claimed"] == "elsewhere:1:00000000"
        assert d.stop() == 0, d.text()
    finally:
        d.kill()


def test_a_shortened_schedule_takes_effect_at_once(project, db, store):
    """One daemon: a sync "every 1h" ran (its claim says the next run is
    in an hour); a reload makes it "every 1s" and it runs again at once,
    as before claims: the worker pulls the stored due time of the old
    schedule earlier rather than wait for it."""
    db.psql("CREATE TABLE m (grp int, id int, email text, name text);"
            "INSERT INTO m VALUES (0, 1, 'a@example.com', 'a');")
    p = use_store(project(dsn=db.dsn), store)
    sync = {"source": "warehouse", "query": "SELECT id, email FROM m",
            "key": "id", "destination": "out", "mode": "upsert",
            "fields": {"email": "email"}, "schedule": "every 1h"}
    p.add_mapping("a", sync)
    d = Daemon(p)
    try:
        wait_for(lambda: [r for r in runs(store) if r["ended"]], 60,
                 "the first run", d.text)
        d.idle("a")
        sync["schedule"] = "every 1s"
        p.add_mapping("a", sync)
        mark = len(d.text())
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("config reloaded", after=mark)
        wait_for(lambda: len([r for r in runs(store) if r["ended"]]) >= 3,
                 60, "two runs on the new schedule", d.text)
        assert d.stop() == 0, d.text()
    finally:
        d.kill()
