"""The sync logs in the warehouse (README "Sync logs in the warehouse",
src/audit.c) checked against the state store, for any test to call at its
end (Done when 3 of issue 19: "the audit tables hold every run and every
rejected or failed row").

    assert_audit_complete(p, db, schema, syncs, env=None)

p: the conftest Project (its `retl history` and `retl failures` are the
store's word, whatever the store is); db: anything with .psql(sql, *args)
on the warehouse holding the schema.  Checks, per sync:

  * every run `retl history` lists that has ended is in <schema>.runs once,
    with the same number, status, exit code and counts;
  * every row `retl failures` lists as failed or rejected is in
    <schema>.row_outcomes as failed or rejected (a keyed row the mapping
    refused is "failed" there, "rejected" here), with its reason;
  * the rejected, failed and removed rows of each run are as many as the
    run's counts (but an abandoned run's, which were never recorded), and the latest completed run's synced rows as many as
    its added + changed + retried;
  * no row of a run is there twice, and no row names a run that is not in
    <schema>.runs;
  * when the store is the project's SQLite file, row by row: each run's
    outcomes and the cache rows it last synced are among its rows there,
    and are all of them for the sync's latest run.
"""

import json
import os
import re
import sqlite3
from collections import Counter

STATUSES = ("rows rejected", "running", "ok", "interrupted", "failed",
            "abandoned")
HISTORY_RE = re.compile(
    r"^(\d+)\s+(\S+)\s+(" + "|".join(STATUSES) + r")\s+(-|\d+)\s+\S+"
    r"\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$")
COUNTS = ("rows_read", "added", "changed", "retried", "removed", "unchanged",
          "rejected", "failed", "api_calls")


def query(db, sql):
    """rows of sql as dicts (through json_agg: any text survives)"""
    out = db.psql(f"SELECT coalesce(json_agg(t), '[]') FROM ({sql}) t", "-At")
    return json.loads(out)


def history(p, sync, env=None):
    """the runs `retl history` lists: {number: {status, exit_code, counts}}"""
    rc, out, err = p.run("history", sync, "--limit", "1000000", env=env)
    assert rc == 0, err
    runs = {}
    for line in out.splitlines():
        m = HISTORY_RE.match(line)
        if not m:
            continue
        g = m.groups()
        runs[int(g[0])] = dict(
            {"status": g[2],
             "exit_code": None if g[3] == "-" else int(g[3])},
            **{k: int(v) for k, v in zip(COUNTS, g[4:])})
    return runs


def failures(p, sync, env=None):
    """(outcome, key, reason) of every row `retl failures` lists"""
    rc, out, err = p.run("failures", sync, env=env)
    assert rc == 0, err
    rows = []
    head = re.compile(r"^(\w+)\s+key (.*)  \(attempts \d+, since .*\)$")
    cur = None
    # a reason follows its row's line, indented 4, and runs on over any
    # newlines it holds until the next row or the count
    for line in out.split("\n"):
        m = head.match(line)
        if m or re.match(r"^\d+ rows? failing in ", line):
            if cur:
                rows.append((cur[0], cur[1], "\n".join(cur[2])[4:]))
            cur = (m.group(1), m.group(2), []) if m else None
        elif cur:
            cur[2].append(line)
    return rows


def store_rows(path, sync, number):
    """a run's rows as the SQLite store holds them: Counter of
    (key, operation, status, error)"""
    change = {0: "added", 1: "changed", 2: "retried"}
    status = {"rejected": "rejected", "failed": "failed"}
    con = sqlite3.connect(path)
    try:
        got = Counter()
        for key, what, reason in con.execute(
                "SELECT key, outcome, reason FROM outcomes WHERE run_id = ?",
                (number,)):
            got[(key, what, status.get(what, "synced"), reason)] += 1
        for key, c in con.execute(
                "SELECT key, last_change FROM cache WHERE sync = ? AND "
                "last_run = ? AND status = 1", (sync, number)):
            got[(key, change[c], "synced", None)] += 1
        return got
    finally:
        con.close()


def assert_audit_complete(p, db, schema, syncs, env=None, state_file=None):
    """see the module docstring; returns the audit's runs by (sync, number)"""
    runs = query(db, f"SELECT * FROM {schema}.runs")
    rows = query(db, f"SELECT * FROM {schema}.row_outcomes")
    ids = Counter(r["run_id"] for r in runs)
    assert not [i for i, n in ids.items() if n > 1], "a run written twice"
    by_id = {r["run_id"]: r for r in runs}
    assert not {r["run_id"] for r in rows} - set(by_id), \
        "row_outcomes name a run not in runs"
    state_file = state_file or p.path("state", "retl.db")
    seen = {}
    for sync in syncs:
        mine = {r["run_number"]: r for r in runs if r["sync"] == sync}
        for number, h in history(p, sync, env).items():
            if h["status"] == "running":
                continue
            assert number in mine, f"run {number} of {sync} not in {schema}.runs"
            a = mine[number]
            assert a["run_id"].endswith(f":{number}")
            got = dict({"status": a["status"], "exit_code": a["exit_code"]},
                       **{k: a[k] for k in COUNTS})
            assert got == h, (sync, number)
            seen[(sync, number)] = a
            mrows = [r for r in rows if r["run_id"] == a["run_id"]]
            keyed = Counter((r["key"], r["operation"], r["status"], r["error"])
                            for r in mrows)
            n = Counter(r["status"] for r in mrows)
            # an abandoned run's counts were never recorded (its rows were)
            if h["status"] != "abandoned":
                assert n["rejected"] == h["rejected"], (sync, number, n)
                assert n["failed"] == h["failed"], (sync, number, n)
                assert sum(1 for r in mrows if r["operation"] == "removed") \
                    == h["removed"], (sync, number)
            if os.path.exists(state_file):
                # later runs move rows on (a row keeps only its last run)
                # and forget removed ones: the store holds a part of what
                # was written, all of it for the sync's latest run
                store = store_rows(state_file, sync, number)
                assert not store - keyed, (sync, number, store - keyed)
                if number == max(mine):
                    assert keyed == store, (sync, number, keyed - store)
        done = [n for n, h in history(p, sync, env).items()
                if h["status"] in ("ok", "rows rejected")]
        if done:
            last = mine[max(done)]
            synced = sum(1 for r in rows if r["run_id"] == last["run_id"]
                         and r["status"] == "synced"
                         and r["operation"] != "removed")
            assert synced == last["added"] + last["changed"] + last["retried"]
        sync_rows = [r for r in rows if r["sync"] == sync]
        for outcome, key, reason in failures(p, sync, env):
            if outcome not in ("failed", "rejected"):
                continue
            want = None if key == "(none)" else key
            # a keyed row the mapping refused is a failing cache row
            # ("failed" there), its outcome "rejected"
            assert any(r["key"] == want and
                       r["status"] in ("failed", "rejected") and
                       (r["error"] or "") == reason for r in sync_rows), \
                (sync, outcome, key, reason)
    return seen
