#!/usr/bin/env python3
"""bench_state.py - `make bench`, the state store in PostgreSQL (issue 19):
a first run and an unchanged re-run of one sync to the file destination,
with the state in the SQLite file and in a PostgreSQL database of the same
throwaway cluster (a unix socket: no network in the figures).

BENCH_STATE_ROWS rows (default 200000) of 4 columns; BENCH_REPEAT
repetitions (default 3), each running both stores afresh in turn.  Printed:
seconds per step and store (the median over repetitions, min-max beside
it) and PostgreSQL's time as a multiple of SQLite's within each
repetition (the machine is shared: only ratios inside one repetition are
compared).  No target: a first run on PostgreSQL still costs one statement
per acknowledgement the server executes (pipelined, README "The state
store", PostgreSQL); the figures say how much.  Every run's output is
checked (all rows, then none, written) and must exit 0.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

from pgcluster import PgCluster  # noqa: E402

RETL = os.environ.get("RETL_BIN") or os.path.join(REPO, "retl")
ROWS = int(os.environ.get("BENCH_STATE_ROWS", "200000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def project(pg, state):
    d = tempfile.mkdtemp(prefix="retl-bench-state-")
    os.makedirs(os.path.join(d, "mappings"))
    with open(os.path.join(d, "retl.json"), "w") as f:
        json.dump({"state": state,
                   "sources": {"warehouse": {"type": "postgres",
                                             "dsn": pg.dsn}},
                   "destinations": {"out": {"type": "file",
                                            "path": "out.jsonl"}}}, f)
    with open(os.path.join(d, "mappings", "m.json"), "w") as f:
        json.dump({"source": "warehouse",
                   "query": "SELECT id, email, name, plan FROM bench_state",
                   "key": "id", "destination": "out",
                   "fields": {"email": "email", "name": "name",
                              "plan": "plan"}}, f)
    return d


def lines(d):
    p = os.path.join(d, "out.jsonl")
    if not os.path.exists(p):
        return 0
    with open(p, "rb") as f:
        return sum(1 for _ in f)


def timed_run(d):
    t0 = time.monotonic()
    res = subprocess.run([RETL, "--config", d, "run", "m"],
                         capture_output=True, text=True)
    secs = time.monotonic() - t0
    if res.returncode != 0:
        raise RuntimeError(f"retl run exit {res.returncode}: {res.stderr[-500:]}")
    return secs


def one(pg, rep, store):
    if store == "postgresql":
        name = f"bench_state_{rep}"
        pg.psql(f"DROP DATABASE IF EXISTS {name}")
        pg.psql(f"CREATE DATABASE {name}")
        state = (f"postgresql://postgres@/{name}?host={pg.sockdir}"
                 f"&port={pg.port}")
    else:
        state = "state/retl.db"
    d = project(pg, state)
    try:
        first = timed_run(d)
        if lines(d) != ROWS:
            raise RuntimeError(f"first run wrote {lines(d)} lines, not {ROWS}")
        unchanged = timed_run(d)
        if lines(d) != ROWS:
            raise RuntimeError("the unchanged run wrote lines")
        return first, unchanged
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    if not os.access(RETL, os.X_OK):
        print(f"bench_state: {RETL} not found; run `make retl` first",
              file=sys.stderr)
        return 1
    with PgCluster() as pg:
        pg.psql("CREATE TABLE bench_state (id int PRIMARY KEY, email text, "
                "name text, plan text); INSERT INTO bench_state SELECT g, "
                "'user' || g || '@example.com', 'name ' || g, 'plan ' || "
                f"(g % 7) FROM generate_series(1, {ROWS}) g; "
                "VACUUM ANALYZE bench_state")
        got = {"sqlite": [], "postgresql": []}
        for rep in range(REPEAT):
            for store in got:
                got[store].append(one(pg, rep, store))
    print(f"\nbench_state: {ROWS:,} rows to the file destination, "
          f"{REPEAT} repetitions (seconds: median, min-max)")
    print(f"{'step':<12} {'sqlite':>20} {'postgresql':>20} {'pg / sqlite':>14}")
    for i, step in enumerate(("first run", "unchanged")):
        cells = []
        for store in ("sqlite", "postgresql"):
            v = [r[i] for r in got[store]]
            cells.append(f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})")
        ratio = [p[i] / s[i] for s, p in zip(got["sqlite"], got["postgresql"])]
        print(f"{step:<12} {cells[0]:>20} {cells[1]:>20} "
              f"{statistics.median(ratio):>13.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
