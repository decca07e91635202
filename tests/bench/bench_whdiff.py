#!/usr/bin/env python3
"""bench_whdiff.py - `make bench`, the diff in the warehouse (issue 19,
"Done when" 1): a model of BENCH_WHDIFF_ROWS rows (default 10,000,000; the
rows of tests/bench/bench.py), 0.1 % of them changed, synced once with
"diff": "local" and once with "diff": "warehouse" in the same run, each
into its own file destination.

retl reaches PostgreSQL through a relay in this script (127.0.0.1 TCP ->
the cluster's unix socket) that counts the bytes each way: "received" is
every byte the server sent retl during the run, on all its connections
(the read snapshot, and the warehouse diff's writable session).  The relay
runs twice:

  loopback   no cap: warehouse, relay and retl share this machine's 2
             cores; the warehouse's hashing and join cost about what COPY
             does here, so this ratio is mostly CPU against CPU.
  link       capped at BENCH_WHDIFF_LINK_MBIT (default 100 Mbit/s) in
             each direction: a model of a warehouse across a network (no
             added latency), where moving every row costs its bytes.  Also
             printed: the link speed under which the 10x holds, from the
             loopback figures (local bytes / (10 x warehouse seconds)).

The cluster gets work_mem = 256MB (ALTER DATABASE), as README "Diff in the
warehouse" advises: with the default 4MB the join spills to disk.

For each: 0.1 % of the rows get a new score (id % 1000 = n, then VACUUM
ANALYZE), the local diff runs, then the warehouse diff; each must write
exactly the changed rows.  Printed: seconds, MB received, bytes received
per changed row, and local / warehouse time.

Target: the warehouse diff's run is at least 10x faster than the local
diff's across the modelled link (the target is judged there, and says
so); the loopback ratio is printed beside it, with no target.  Also:
the warehouse diff receives at most 2 x the changed rows' bytes plus
64 kB (it receives only changed rows).  Exit 1 when a target is missed.
Setup (timed, printed, no target): the table; a first run with the local
diff (every row sent); the warehouse project gets a copy of that state and
output and is switched to "diff": "warehouse": its first run compares every
local row, sends nothing and fills the warehouse table.  About 10 minutes at
10M rows on an idle 2-core machine, most of it the setup.  Small sizes
(BENCH_WHDIFF_ROWS=100000) check the script quickly.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)

from pgcluster import PgCluster  # noqa: E402
from bench import MAPPING, table_sql  # noqa: E402

RETL = os.environ.get("RETL_BIN") or os.path.join(REPO, "retl")
ROWS = int(os.environ.get("BENCH_WHDIFF_ROWS", "10000000"))
LINK_MBIT = float(os.environ.get("BENCH_WHDIFF_LINK_MBIT", "100"))
TARGET = 10.0


class Relay:
    """127.0.0.1:port -> the cluster's socket, counting bytes; rate (bytes
    per second, None = no cap) is shared by all connections, per direction"""

    def __init__(self, sock_path):
        self.sock_path = sock_path
        self.lock = threading.Lock()
        self.down = self.up = 0
        self.rate = None
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.buckets = {"down": [0.0, time.monotonic()], "up": [0.0, time.monotonic()]}
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self, rate):
        with self.lock:
            self.down = self.up = 0
            self.rate = rate
            now = time.monotonic()
            self.buckets = {"down": [0.0, now], "up": [0.0, now]}

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.sock_path)
            threading.Thread(target=self._pump, args=(s, c, "down"), daemon=True).start()
            threading.Thread(target=self._pump, args=(c, s, "up"), daemon=True).start()

    def _pace(self, way, n):
        """the link's cap: the direction's bytes may not run ahead of
        rate x time since its bucket started"""
        with self.lock:
            if way == "down":
                self.down += n
            else:
                self.up += n
            if not self.rate:
                return
            b = self.buckets[way]
            b[0] += n
            wait = b[0] / self.rate - (time.monotonic() - b[1])
        if wait > 0:
            time.sleep(wait)

    def _pump(self, src, dst, way):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                self._pace(way, len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for x in (src, dst):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def project(base, name, diff, dsn):
    d = os.path.join(base, name)
    os.makedirs(os.path.join(d, "mappings"))
    with open(os.path.join(d, "retl.json"), "w") as f:
        json.dump({"state": "state/retl.db",
                   "sources": {"warehouse": {"type": "postgres", "dsn": dsn}},
                   "destinations": {"out": {"type": "file",
                                            "path": os.path.join(base, name + ".jsonl")}}},
                  f)
    write_mapping(d, diff)
    return d


def write_mapping(d, diff):
    with open(os.path.join(d, "mappings", "bench.json"), "w") as f:
        json.dump(dict(MAPPING, diff=diff), f)


def lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def run(proj, out):
    before = lines(out) if os.path.exists(out) else 0
    t0 = time.perf_counter()
    res = subprocess.run([RETL, "--config", proj, "run", "bench"], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL)
    secs = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"retl run ({proj}) exit {res.returncode}: {res.stderr[-500:]}")
    return secs, lines(out) - before


def main():
    base = tempfile.mkdtemp(prefix="retl-bench-whdiff-")
    pg = PgCluster()
    pg.start()
    failed = []
    try:
        t0 = time.perf_counter()
        pg.psql(table_sql(ROWS))
        pg.psql("ALTER DATABASE postgres SET work_mem = '256MB'")
        print(f"bench_whdiff: {ROWS:,} rows built in {time.perf_counter() - t0:.0f} s",
              flush=True)
        relay = Relay(os.path.join(pg.sockdir, f".s.PGSQL.{pg.port}"))
        dsn = f"host=127.0.0.1 port={relay.port} user=postgres dbname=postgres"
        projs = {d: project(base, d, d, dsn) for d in ("local", "warehouse")}
        outs = {d: os.path.join(base, d + ".jsonl") for d in projs}
        # setup: the first run with the local diff; the warehouse project
        # gets a copy of its state and output (the same sync, as if it had
        # run it), is switched to the warehouse diff, and its first run
        # compares every local row and fills the table, as a user
        # switching an existing sync would see
        relay.reset(None)
        secs, n = run(projs["local"], outs["local"])
        print(f"bench_whdiff: first run (diff local): {secs:.1f} s, {n:,} rows sent, "
              f"{relay.down / 1e6:.0f} MB received", flush=True)
        if n != ROWS:
            raise SystemExit(f"the first run sent {n} rows, not {ROWS}")
        shutil.rmtree(os.path.join(projs["warehouse"], "state"), ignore_errors=True)
        shutil.copytree(os.path.join(projs["local"], "state"),
                        os.path.join(projs["warehouse"], "state"))
        shutil.copyfile(outs["local"], outs["warehouse"])
        write_mapping(projs["warehouse"], "warehouse")
        relay.reset(None)
        secs, n = run(projs["warehouse"], outs["warehouse"])
        print(f"bench_whdiff: switched to diff warehouse: {secs:.1f} s (every row "
              f"compared, the table filled), {n:,} rows sent", flush=True)
        if n != 0:
            raise SystemExit(f"the switched run sent {n} rows, not 0")
        changed = len(range(0, ROWS, 1000)) if ROWS >= 1000 else 0
        results = []
        for i, (link, rate) in enumerate((("loopback", None),
                                          (f"{LINK_MBIT:g} Mbit/s", LINK_MBIT * 1e6 / 8))):
            pg.psql(f"UPDATE bench SET score = score + 1 WHERE id % 1000 = {i + 1};"
                    "VACUUM ANALYZE bench")
            row = {"link": link}
            for d in ("local", "warehouse"):
                relay.reset(rate)
                secs, n = run(projs[d], outs[d])
                if n != changed:
                    failed.append(f"{link}, diff {d}: {n} rows sent, not {changed}")
                row[d] = (secs, relay.down)
            results.append(row)

        print(f"\nbench_whdiff: {ROWS:,} rows, {changed:,} changed (0.1 %), "
              f"file destination; received = bytes the server sent retl")
        print(f"{'link':<16}{'diff':<11}{'seconds':>9}{'MB received':>13}"
              f"{'B/changed row':>15}{'local/warehouse':>17}")
        for row in results:
            for d in ("local", "warehouse"):
                secs, down = row[d]
                ratio = row["local"][0] / row["warehouse"][0] if d == "warehouse" else None
                print(f"{row['link']:<16}{d:<11}{secs:>9.2f}{down / 1e6:>13.1f}"
                      f"{down / max(changed, 1):>15.0f}"
                      f"{(f'{ratio:.1f}x' if ratio else ''):>17}")
        # the changed rows' own bytes, from what the local diff received
        per_row = results[0]["local"][1] / ROWS
        for row in results:
            down = row["warehouse"][1]
            if down > 2 * changed * per_row + 65536:
                failed.append(f"{row['link']}: the warehouse diff received {down:,} bytes, "
                              f"over 2 x {changed:,} changed rows x {per_row:.0f} B + 64 kB")
        link = results[1]
        ratio = link["local"][0] / link["warehouse"][0]
        loop = results[0]["local"][0] / results[0]["warehouse"][0]
        verdict = "PASS" if ratio >= TARGET else "MISS"
        print(f"\ntarget (judged across the modelled {LINK_MBIT:g} Mbit/s link): warehouse "
              f"diff >= {TARGET:g}x faster than the local diff: {ratio:.1f}x {verdict}")
        print(f"loopback (same machine, no target): {loop:.1f}x")
        lb = results[0]
        even = lb["local"][1] * 8 / (TARGET * lb["warehouse"][0]) / 1e6
        print(f"the 10x holds on links slower than about {even:.0f} Mbit/s "
              f"(the local diff's {lb['local'][1] / 1e6:.0f} MB over 10 x the "
              f"warehouse diff's {lb['warehouse'][0]:.1f} s)")
        if ratio < TARGET:
            failed.append(f"{ratio:.1f}x across the link, under {TARGET:g}x")
    finally:
        pg.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(base, ignore_errors=True)
    for f in failed:
        print(f"MISS: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
