#!/usr/bin/env python3
"""bench_connect.py - `make bench`, connecting and cancelling (issue 15):
the two wall-clock promises `make test` does not time.

  silent   a host that accepts TCP and never answers (a socket on
           127.0.0.1 that listens and never reads), the default config (no
           connect_timeout: 10 s).  Target: `retl run` exits 3 within 11 s.
  sigint   a model whose query sleeps 10 s (pg_sleep in FROM); SIGINT once
           the server runs it.  Target: retl exits within 1 s, exit 1,
           the run recorded `interrupted`, and the query gone from
           pg_stat_activity (cancelled, not left running).

Exit status 1 when a target is missed, after all results.
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)

from pgcluster import PgCluster  # noqa: E402
from targets import Targets  # noqa: E402

RETL = os.environ.get("RETL_BIN") or os.path.join(REPO, "retl")


def project(dsn, query):
    d = tempfile.mkdtemp(prefix="retl-bench-connect-")
    os.makedirs(os.path.join(d, "mappings"))
    with open(os.path.join(d, "retl.json"), "w") as f:
        json.dump({"sources": {"warehouse": {"type": "postgres", "dsn": dsn}},
                   "destinations": {"out": {"type": "file", "path": "out.jsonl"}}}, f)
    with open(os.path.join(d, "mappings", "m.json"), "w") as f:
        json.dump({"source": "warehouse", "query": query, "key": "id",
                   "destination": "out", "fields": {"x": "x"}}, f)
    return d


def silent(t):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    d = project(f"postgresql://retl@127.0.0.1:{port}/db", "SELECT 1 AS id, 2 AS x")
    try:
        t0 = time.monotonic()
        res = subprocess.run([RETL, "--config", d, "run", "m"], capture_output=True,
                             text=True, timeout=120)
        secs = time.monotonic() - t0
    finally:
        srv.close()
        shutil.rmtree(d, ignore_errors=True)
    ok = res.returncode == 3 and "no answer within 10 s (connect_timeout)" in res.stderr
    print(f"silent host, default config: exit {res.returncode} after {secs:.2f} s   "
          f"{t.check(ok and secs <= 11, 'silent host: exit 3 within 11 s', f'{res.returncode}, {secs:.2f} s')}")
    if not ok:
        print(res.stderr)


def sigint(t, c):
    c.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    d = project(c.dsn, "SELECT t.id, 'x' AS x /* bench-sigint */ FROM t, pg_sleep(10)")

    def sleeping():
        return c.scalar("SELECT count(*) FROM pg_stat_activity WHERE "
                        "wait_event = 'PgSleep' AND query LIKE '%bench-sigint%'")
    try:
        p = subprocess.Popen([RETL, "--config", d, "run", "m"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while sleeping() != "1":
            if p.poll() is not None or time.monotonic() > deadline:
                print(f"sigint: the query never ran: {p.communicate()}")
                t.check(False, "sigint: the query runs", "no")
                return
            time.sleep(0.02)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        secs = time.monotonic() - t0
        con = sqlite3.connect(os.path.join(d, "state", "retl.db"))
        status, = con.execute("SELECT status FROM runs ORDER BY id DESC").fetchone()
        con.close()
        left = c.scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                        "'%bench-sigint%' AND state = 'active' AND pid <> pg_backend_pid()")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    ok = p.returncode == 1 and status == "interrupted" and left == "0"
    print(f"SIGINT during a 10 s query: exit {p.returncode}, run {status}, "
          f"{left} queries left, after {secs:.3f} s   "
          f"{t.check(ok and secs <= 1, 'sigint: interrupted within 1 s', f'{p.returncode}, {status}, {secs:.3f} s')}")


def main():
    t = Targets("bench_connect")
    silent(t)
    c = PgCluster()
    c.start()
    try:
        sigint(t, c)
    finally:
        c.stop()
    return t.exit_code()


if __name__ == "__main__":
    sys.exit(main())
