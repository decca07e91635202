"""`retl daemon`: schedules, no overlapping runs, /metrics equal to the
state store, graceful SIGTERM, SIGHUP reloads, missed runs at start-up,
and the schedule's config errors and `retl status` NEXT RUN column.

Each test starts the real binary as a daemon with a listener on a free
loopback port, and reads the state store with sqlite3 to compare.  They
wait on what the daemon shows (its log, /metrics, the runs table), never a
fixed time; that a sync does not run again is shown by the daemon's own
decision (retl_next_run_timestamp_seconds after a tick with nothing
running), not by watching nothing happen for a while.
"""

import datetime
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from waiting import wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import webhook_receiver  # noqa: E402
from emulator_control import control, starter  # noqa: E402


@pytest.fixture
def receiver():
    yield from starter(webhook_receiver)


def make_table(db, n, table="customers"):
    db.psql(f"""
        DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id int PRIMARY KEY, email text, name text);
        INSERT INTO {table}
        SELECT i, 'user' || i || '@example.com', 'name ' || i
        FROM generate_series(1, {n}) i;
    """)


def sync_def(schedule=None, query="SELECT id, email, name FROM customers"):
    d = {"source": "warehouse", "query": query, "key": "id",
         "destination": "out", "mode": "upsert",
         "fields": {"email": "email", "name": "name"}}
    if schedule is not None:
        d["schedule"] = schedule
    return d


class Daemon:
    """The daemon on 127.0.0.1:0: the port it logs is the one it bound
    (no race with another process for a port picked beforehand)."""

    def __init__(self, project, *args, log="daemon.log"):
        self.p = project
        self.log_path = project.path(log)
        self.log = open(self.log_path, "a")
        start = os.path.getsize(self.log_path)
        self.proc = subprocess.Popen(
            [project.retl_bin, "--config", project.dir, "daemon",
             "--listen", "127.0.0.1:0"] + [str(a) for a in args],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)

        def bound():
            assert self.proc.poll() is None, self.text()
            m = re.search(r"daemon started .* on http://127\.0\.0\.1:(\d+)\n",
                          self.text()[start:])
            return m and int(m.group(1))
        self.port = wait_for(bound, 60, "the daemon's bound port in its log",
                             self.text)

        def healthy():
            assert self.proc.poll() is None, self.text()
            try:
                return self.get("/healthz")[0] == 200
            except OSError:
                return False
        wait_for(healthy, 60, "the daemon's /healthz to answer 200", self.text)

    def get(self, path):
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        code, body = self.get("/metrics")
        assert code == 200, body
        return parse_metrics(body)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, text, after=0, timeout=60):
        """The log from offset `after` once a whole line of it holds
        `text` (take the offset as len(d.text()) before the signal the
        line answers)."""
        def logged():
            log = self.text()[after:]
            i = log.find(text)
            return i >= 0 and "\n" in log[i:] and log
        return wait_for(logged, timeout, f"{text!r} in the daemon's log",
                        self.text)

    def idle(self, *syncs, timeout=60):
        """A scrape showing none of `syncs` running.  /metrics is served
        by the daemon's own loop after the tick that updated its view, so
        a scrape also says what that tick decided: whatever was due was
        started (retl_run_in_progress 1) or, started earlier and reaped,
        is in the runs table; retl_next_run_timestamp_seconds is when it
        will run next."""
        def scrape():
            m = self.metrics()
            return m if all(m.get(("retl_run_in_progress", (("sync", s),)))
                            == 0 for s in syncs) else None
        return wait_for(scrape, timeout, f"no run of {', '.join(syncs)} "
                        "going (retl_run_in_progress 0)", self.text)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def daemons():
    started = []

    def start(project, *args, **kw):
        d = Daemon(project, *args, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill()


METRIC_RE = re.compile(r'^([a-z_0-9]+)(?:\{(.*)\})? (\S+)$')


def parse_metrics(body):
    """{(name, ((label, value), ...)): float}; also checks HELP/TYPE lines
    come before each family's samples."""
    out, typed = {}, set()
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = METRIC_RE.match(line)
        assert m, line
        name, labels, value = m.groups()
        assert name in typed, f"{name} has no TYPE line"
        lab = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or "")))
        out[(name, lab)] = float(value)
    return out


def state_rows(p, sql, *args):
    path = p.path("state", "retl.db")
    if not os.path.exists(path):
        return []
    con = sqlite3.connect(path, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def ts(iso):
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def expected_metrics(p):
    """The counters /metrics must show, computed from the runs table."""
    exp = {}
    for sync, status, n in state_rows(
            p, "SELECT sync, status, count(*) FROM runs "
               "WHERE status <> 'running' GROUP BY sync, status"):
        exp[("retl_runs_total", (("status", status), ("sync", sync)))] = n
    cols = ["added", "changed", "retried", "removed", "unchanged",
            "rejected", "failed"]
    for row in state_rows(
            p, "SELECT sync, " + ", ".join(f"total({c})" for c in cols) +
               ", total(api_calls), total(retries), total(http_429) FROM runs "
               "WHERE status <> 'running' GROUP BY sync"):
        sync = row[0]
        for c, v in zip(cols, row[1:8]):
            exp[("retl_rows_total", (("outcome", c), ("sync", sync)))] = v
        exp[("retl_api_requests_total", (("sync", sync),))] = row[8]
        exp[("retl_retries_total", (("sync", sync),))] = row[9]
        exp[("retl_http_429_total", (("sync", sync),))] = row[10]
    return exp


COUNTERS = ("retl_runs_total", "retl_rows_total", "retl_api_requests_total",
            "retl_retries_total", "retl_http_429_total")


def counters(m):
    return {k: v for k, v in m.items() if k[0] in COUNTERS}


def test_two_syncs_every_2s_never_overlap_and_metrics_match(project, db, daemons):
    make_table(db, 200)
    p = project(dsn=db.dsn)
    p.add_mapping("fast", sync_def("every 2s"))
    # slower than its interval: the run due while it goes is skipped
    p.add_mapping("slow", sync_def(
        "every 2s", "SELECT c.id, c.email, c.name FROM customers c, "
                    "(SELECT pg_sleep(2.5)) s"))
    d = daemons(p, "--concurrency", "4")

    def ended():
        rows = state_rows(p, "SELECT sync, count(*) FROM runs "
                             "WHERE ended_at IS NOT NULL GROUP BY sync")
        return dict(rows)
    # as many runs as the assertions need, however slow the machine: the
    # deadline only stops a hang
    def enough():
        e = ended()
        return e.get("fast", 0) >= 4 and e.get("slow", 0) >= 2 and \
            d.metrics().get(("retl_runs_skipped_total", (("sync", "slow"),)), 0) >= 1
    wait_for(enough, 180, "4 fast runs, 2 slow ones and a skipped slow run",
             lambda: (ended(), d.text()), interval=0.2)

    # /metrics equals the runs table: read between two identical scrapes
    def still():
        m1 = d.metrics()
        exp = expected_metrics(p)
        m2 = d.metrics()
        return counters(m1) == counters(m2) and (m1, exp)
    m1, exp = wait_for(still, 60, "the counters to hold still for a scrape")
    assert counters(m1) == exp

    runs = state_rows(p, "SELECT sync, started_at, ended_at, status FROM runs "
                         "ORDER BY id")
    by_sync = {}
    for sync, started, ended, status in runs:
        by_sync.setdefault(sync, []).append((started, ended, status))
    fast = [r for r in by_sync["fast"] if r[1]]
    slow = [r for r in by_sync["slow"] if r[1]]
    assert len(fast) >= 4, by_sync
    assert len(slow) >= 2, by_sync
    assert all(r[2] == "ok" for r in fast + slow), by_sync
    for sync, rs in by_sync.items():
        for a, b in zip(rs, rs[1:]):
            assert a[1] is not None and ts(b[0]) >= ts(a[1]), \
                f"{sync}: runs overlap: {a} and {b}"
    # fast runs never start early (load only makes them late), and the
    # slow sync does not hold them up: some fast run started while a slow
    # one was running (a slow run takes 2.5 s, longer than fast's interval)
    starts = [ts(r[0]) for r in by_sync["fast"]]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(g >= 1.5 for g in gaps), gaps
    assert any(ts(s0) < f < ts(s1) for s0, s1, _ in slow for f in starts), by_sync

    assert m1[("retl_runs_skipped_total", (("sync", "slow"),))] >= 1
    assert m1[("retl_runs_skipped_total", (("sync", "fast"),))] == 0
    assert m1[("retl_rows_total", (("outcome", "added"), ("sync", "fast")))] == 200
    assert ("retl_last_success_timestamp_seconds", (("sync", "fast"),)) in m1
    assert ("retl_next_run_timestamp_seconds", (("sync", "fast"),)) in m1
    assert m1[("retl_rows_failing", (("sync", "fast"),))] == 0
    code, body = d.get("/healthz")
    assert (code, body) == (200, "ok\n")
    assert d.get("/nope")[0] == 404

    assert d.stop() == 0, d.text()
    assert "skipped" in d.text()
    # a graceful stop leaves no run open
    assert not state_rows(p, "SELECT id FROM runs WHERE status = 'running'")


def test_sigterm_mid_run_then_next_run_sends_the_rest(project, db, daemons, receiver):
    """SIGTERM while 20,000 rows are pushed to a slow receiver (the webhook
    emulator answers each batch of 100 after 50 ms, so the push takes at
    least 10 s; the model is read whole before the push starts, so a slow
    model would not make the push slow).

    Asserted: the daemon exits 0 within the timeout; the interrupted run's
    acknowledged rows (its `added` count) are exactly the keys the receiver
    processed, each once; the next `retl run` sends exactly the other keys
    (no key twice over both runs); the receiver then equals the model."""
    n = 20000
    make_table(db, n)
    url = receiver(latency=0.05)
    p = project(dsn=db.dsn, destinations={"hook": {
        "type": "webhook", "url": url + "/hooks/retl", "batch_size": 100}})
    m = sync_def("every 1h")
    m["destination"] = "hook"
    p.add_mapping("big", m)

    def keys():
        out = []
        for d in control(url, "deliveries")["deliveries"]:
            if d["processed"]:
                out += [op["key"] for op in d["body"]["operations"]]
        return out

    timeout = 20
    d = daemons(p, "--shutdown-timeout", timeout)
    wait_for(lambda: len(keys()) >= 2000, 120, "2000 rows delivered", d.text,
             interval=0.05)
    # within its own --shutdown-timeout: past it the daemon kills the run
    # and says so (no wall-clock check here: a loaded machine is slow)
    rc = d.stop(timeout=timeout + 60)
    assert rc == 0, d.text()
    assert "killed" not in d.text(), d.text()

    (status, added), = state_rows(p, "SELECT status, added FROM runs")
    assert status == "interrupted", d.text()
    first_keys = keys()
    assert 0 < added < n
    assert len(first_keys) == added == len(set(first_keys))
    (synced,), = state_rows(p, "SELECT count(*) FROM cache WHERE status = 1")
    assert synced == added

    control(url, "config", {"latency": 0})
    rc, out, err = p.run("run", "big")
    assert rc == 0, err
    (added2,), = state_rows(p, "SELECT added FROM runs ORDER BY id DESC LIMIT 1")
    second_keys = keys()[len(first_keys):]
    assert added2 == n - added == len(second_keys)
    assert not set(second_keys) & set(first_keys), "a row was sent twice"
    assert sorted(int(k) for k in first_keys + second_keys) == list(range(1, n + 1))
    assert control(url, "state")["big"] == {
        json.dumps(str(i)): {"email": f"user{i}@example.com", "name": f"name {i}"}
        for i in range(1, n + 1)}


def test_sighup_broken_config_keeps_old_schedules(project, db, daemons):
    make_table(db, 10)
    p = project(dsn=db.dsn)
    p.add_mapping("a", sync_def("every 1s"))
    d = daemons(p)

    def nruns():
        return state_rows(p, "SELECT count(*) FROM runs WHERE sync = 'a'")[0][0]

    wait_for(lambda: nruns() >= 2, 60, "two runs of a", d.text)
    # a syntax error on line 3
    p.add_mapping("a", '{\n  "source": "warehouse",\n  "query": oops\n}\n')
    mark = len(d.text())
    d.proc.send_signal(signal.SIGHUP)
    log = d.wait_log("keeping its previous definition", after=mark)
    assert re.search(r"reload: mappings/a\.json:3:\d+: .*: keeping its "
                     r"previous definition and schedule", log), log
    before = nruns()
    wait_for(lambda: nruns() >= before + 2, 60,
             "two more runs of a: the old schedule still runs", d.text)
    assert d.get("/healthz")[0] == 200

    # a good config is taken: an hourly schedule that ran seconds ago
    # does not run again.  Not shown by waiting and seeing nothing happen:
    # by the daemon's decision, which it logs and exports
    p.add_mapping("a", sync_def("every 1h"))
    mark = len(d.text())
    d.proc.send_signal(signal.SIGHUP)
    log = d.wait_log("config reloaded", after=mark)
    m = re.search(r'schedule "every 1h": next run in (\d+) s', log)
    assert m and 3000 < int(m.group(1)) <= 3600, log
    # a run that started before the reload may still be going: a scrape
    # after a tick with none going
    m = d.idle("a")
    nxt = m[("retl_next_run_timestamp_seconds", (("sync", "a"),))]
    starts = [ts(s) for s, in state_rows(
        p, "SELECT started_at FROM runs WHERE sync = 'a'")]
    # an hour after the start of a run (the last one the reload saw;
    # the metric is in whole seconds, rounded down) ...
    assert any(0 <= s + 3600 - nxt < 1 for s in starts), (nxt, starts)
    assert nxt > time.time() + 3000
    # ... and that tick started nothing: every run there is has ended
    # and is counted by the scrape
    assert not state_rows(p, "SELECT id FROM runs WHERE ended_at IS NULL")
    done = sum(v for (name, lab), v in m.items()
               if name == "retl_runs_total" and ("sync", "a") in lab)
    assert done == len(starts) == nruns(), (done, starts)
    assert d.stop() == 0, d.text()


def test_missed_run_runs_once_at_start_up(project, db, daemons):
    make_table(db, 10)
    p = project(dsn=db.dsn)
    p.add_mapping("missed", sync_def("0 0 1 1 *"))
    p.add_mapping("current", sync_def("0 0 1 1 *"))
    p.add_mapping("manual", sync_def())
    for s in ("missed", "current", "manual"):
        rc, out, err = p.run("run", s)
        assert rc == 0, err
    # "missed" last ran before the last 1 January: that run was missed
    con = sqlite3.connect(p.path("state", "retl.db"))
    con.execute("UPDATE runs SET started_at = '2001-06-01T00:00:00.000Z' "
                "WHERE sync = 'missed'")
    con.commit()
    con.close()
    d = daemons(p)
    wait_for(lambda: len(state_rows(
        p, "SELECT id FROM runs WHERE sync = 'missed' AND ended_at IS NOT NULL")) >= 2,
        60, "the missed run", d.text)
    # once, and nothing else: a scrape after a tick with nothing going,
    # whose decisions are the next 1 January for both
    m = d.idle("missed", "current")
    counts = dict(state_rows(p, "SELECT sync, count(*) FROM runs GROUP BY sync"))
    assert counts == {"missed": 2, "current": 1, "manual": 1}
    year = datetime.datetime.now(datetime.timezone.utc).year + 1
    jan1 = datetime.datetime(year, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
    assert m[("retl_next_run_timestamp_seconds", (("sync", "current"),))] == jan1
    assert m[("retl_next_run_timestamp_seconds", (("sync", "missed"),))] == jan1
    # never due again while its run went
    assert m[("retl_runs_skipped_total", (("sync", "missed"),))] == 0
    assert ("retl_runs_skipped_total", (("sync", "manual"),)) not in m
    assert d.stop() == 0, d.text()


def test_day_of_week_step_from_sunday_is_a_real_schedule(project, db, daemons):
    """Issue 13: "0 9 * * 7/5" was an empty set, accepted by `retl check`,
    and the daemon took "no next time" as due: ~200 runs in 6 s.  It is
    Sunday 09:00 (a step from 7 = Sunday), and the daemon waits for it."""
    make_table(db, 3)
    p = project(dsn=db.dsn)
    p.add_mapping("stepped", sync_def("0 9 * * 7/5"))
    rc, out, err = p.run("check")
    assert rc == 0, err
    rc, out, err = p.run("run", "stepped")
    assert rc == 0, err
    d = daemons(p)
    now = datetime.datetime.now(datetime.timezone.utc)
    nxt = now.replace(hour=9, minute=0, second=0, microsecond=0)
    while nxt <= now or nxt.weekday() != 6:
        nxt += datetime.timedelta(days=1)
    # the decision of the tick before the scrape: not due before that
    # Sunday, and nothing started
    m = d.idle("stepped")
    assert m[("retl_next_run_timestamp_seconds", (("sync", "stepped"),))] == \
        nxt.timestamp()
    assert len(state_rows(p, "SELECT id FROM runs WHERE sync = 'stepped'")) == 1
    assert d.stop() == 0, d.text()


@pytest.mark.parametrize("schedule,msg", [
    ("0 0 31 2 *", "never matches: day-of-month 31 does not occur in month 2"),
    ("61 * * * *", "minute: 61 is out of range (0-59)"),
    ("every 5x", 'expected "every N" with a unit s, m, h or d (e.g. "every 15m"), not "every 5x"'),
    ("* * *", 'expected 5 fields (minute hour day-of-month month day-of-week) or "every N" (s, m, h, d), got 3 fields'),
])
def test_bad_schedule_is_a_config_error(project, schedule, msg):
    p = project()
    p.add_mapping("x", sync_def(schedule))
    rc, out, err = p.run("check")
    assert rc == 2
    assert err.splitlines() == [f"mappings/x.json: schedule: {msg}",
                                "retl: check failed for: x"]
    # its only sync invalid: a daemon that could run nothing stops at once
    rc, out, err = p.run("daemon", "--listen", "off")
    assert rc == 2
    assert err.strip() == f"mappings/x.json: schedule: {msg}"


def test_status_shows_next_run(project, db):
    make_table(db, 10)
    p = project(dsn=db.dsn)
    p.add_mapping("yearly", sync_def("0 0 1 1 *"))
    p.add_mapping("hourly", sync_def("every 1h"))
    p.add_mapping("manual", sync_def())
    rc, out, err = p.run("run", "yearly")
    assert rc == 0, err
    rc, out, err = p.run("status")
    assert rc == 0, err
    lines = out.splitlines()
    assert "NEXT RUN" in lines[0]
    col = lines[0].index("NEXT RUN")
    nxt = {l.split()[0]: l[col:col + 20].strip() for l in lines[1:]}
    year = datetime.datetime.now(datetime.timezone.utc).year + 1
    assert nxt == {"yearly": f"{year}-01-01T00:00:00Z", "hourly": "due now",
                   "manual": "-"}


def test_listen_errors_name_the_address_and_port_0_logs_the_bound_port(
        project, daemons):
    """--listen 127.0.0.1:0 logs the port it got (Daemon reads it from
    the log and scrapes it); a second daemon on that port fails at once
    with the address and the system's reason, exit 2, and the first one
    keeps serving."""
    p = project()
    d = daemons(p)
    assert d.port > 0 and d.get("/healthz")[0] == 200
    rc, out, err = p.run("daemon", "--listen", f"127.0.0.1:{d.port}")
    assert rc == 2
    assert (f"retl: cannot listen on 127.0.0.1:{d.port}: Address already "
            "in use") in err, err
    assert "port 0" not in err
    rc, out, err = p.run("daemon", "--listen", "192.0.2.1:9187")
    assert rc == 2
    assert "retl: cannot listen on 192.0.2.1:9187: Cannot assign requested " \
        "address" in err, err
    assert d.get("/healthz")[0] == 200


def test_daemon_usage_errors(project):
    p = project()
    rc, out, err = p.run("daemon", "--concurrency", "0")
    assert rc == 2 and "--concurrency" in err
    rc, out, err = p.run("daemon", "--listen", "nowhere")
    assert rc == 2 and "--listen" in err
    rc, out, err = p.run("daemon", "--bogus")
    assert rc == 2


def test_sigterm_with_requests_in_flight_to_a_slow_emulator(project, db, daemons):
    """SIGTERM while batches are in flight to a slow HubSpot emulator
    (120 ms a request, 4 at once): the daemon exits 0 within the timeout,
    the batches in flight finish and are committed (the emulator holds
    exactly the rows the state store calls synced), and the next run sends
    exactly the rest."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "emulators"))
    import hubspot
    token = "pat-daemon-test"
    server, url = hubspot.start(port=0, tokens=[token], rate="10000/10s", latency=0.12)
    try:
        n = 20000
        db.psql(f"""CREATE TABLE people AS SELECT i AS id,
                    'p' || i || '@example.com' AS email, 'F' || i AS first
                    FROM generate_series(1, {n}) i""")
        p = project(dsn=db.dsn, destinations={
            "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
                   "requests_per_10s": 10000, "max_inflight": 4}})
        p.add_mapping("people", {
            "source": "warehouse", "query": "SELECT id, email, first FROM people",
            "key": "id", "destination": "hs", "object": "contacts", "mode": "upsert",
            "match": {"email": "email"}, "schedule": "every 1h",
            "fields": {"email": "email", "firstname": "first"}})
        os.environ["HUBSPOT_TOKEN"] = token
        try:
            timeout = 20
            d = daemons(p, "--shutdown-timeout", timeout)

            def upserts():
                with urllib.request.urlopen(url + "/_emulator/counters", timeout=10) as r:
                    c = json.loads(r.read())
                return [q for q in c["requests"] if q["path"].endswith("/batch/upsert")]

            wait_for(lambda: len(upserts()) >= 40, 60,
                     "40 batch upserts at the emulator", d.text, interval=0.05)
            # within its own --shutdown-timeout (past it the daemon kills
            # the run and says so), not by a wall clock here
            rc = d.stop(timeout=timeout + 60)
            assert rc == 0, d.text()
            assert "killed" not in d.text(), d.text()
            first = len(upserts())
            assert first < n / 100, "the run was not interrupted"
            with urllib.request.urlopen(url + "/_emulator/records/contacts", timeout=30) as r:
                held = len(json.loads(r.read())["results"])
            (status,), = state_rows(p, "SELECT status FROM runs")
            (synced,), = state_rows(p, "SELECT count(*) FROM cache WHERE status = 1")
            assert status == "interrupted"
            # exactly what was sent: batches are 100 rows, but under load
            # one of 1 row was once seen among them (the sum, not 100 x)
            sent = sum(q["inputs"] for q in upserts())
            assert held == synced == sent, "in-flight batches were committed"

            rc, out, err = p.run("run", "people")
            assert rc == 0, err
            second = upserts()[first:]
            assert sum(q["inputs"] for q in second) == n - synced
            with urllib.request.urlopen(url + "/_emulator/records/contacts", timeout=30) as r:
                assert len(json.loads(r.read())["results"]) == n
        finally:
            os.environ.pop("HUBSPOT_TOKEN", None)
    finally:
        server.shutdown()
        server.server_close()


def test_daemon_run_records_an_abandoned_run(project, db, daemons, tmp_path):
    """A run killed (SIGKILL at a pause point, so it surely holds the lock
    and its row says "running") is recorded "abandoned" by the daemon's
    next run of the sync, which takes the lock; /metrics counts it by that
    status, and its missing duration does not hide the last run's."""
    import crashpoint

    make_table(db, 50)
    p = project(dsn=db.dsn)
    p.add_mapping("a", sync_def("every 1s"))
    assert p.run("run", "a")[0] == 0
    with open(tmp_path / "err.txt", "w+b") as err:
        proc = crashpoint.start_paused(
            [p.retl_bin, "--config", p.dir, "run", "a"], "run-begun", 1,
            stderr=err)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert state_rows(p, "SELECT status FROM runs ORDER BY id") == [
        ("ok",), ("running",)]
    d = daemons(p)
    wait_for(lambda: len(state_rows(p, "SELECT id FROM runs WHERE ended_at "
                                      "IS NOT NULL")) >= 3, 60,
             "the daemon's first run", d.text)
    rows = state_rows(p, "SELECT status, exit_code, seconds IS NULL FROM runs "
                         "ORDER BY id LIMIT 3")
    assert rows == [("ok", 0, 0), ("abandoned", None, 1), ("ok", 0, 0)], rows
    d.wait_log("run ended: ok (exit 0)")
    m = d.metrics()
    assert m[("retl_runs_total", (("status", "abandoned"), ("sync", "a")))] == 1
    assert ("retl_last_run_duration_seconds", (("sync", "a"),)) in m
