#!/usr/bin/env python3
"""bench_whdiff.py - `make bench`, the diff in the warehouse (issue 19,
"Done when" 1): a model of BENCH_WHDIFF_ROWS rows (default 10,000,000; the
rows of tests/bench/bench.py plus an indexed `updated_at`), 0.1 % of them
changed, synced with "diff": "local", with "diff": "warehouse" (the plain
hash diff) and with "diff": "warehouse" + "changed_since": "updated_at" in
the same run, each mode compared with a local diff's run on the same
changes.

retl reaches PostgreSQL through a relay in this script (127.0.0.1 TCP ->
the cluster's unix socket) that counts the bytes each way: "received" is
every byte the server sent retl during the run, on all its connections
(the read snapshot, and the warehouse diff's writable session).  The relay
runs twice:

  loopback   no cap: warehouse, relay and retl share this machine's 2
             cores; the plain warehouse diff's hashing and join cost about
             what COPY does here, so its ratio is mostly CPU against CPU.
  link       capped at BENCH_WHDIFF_LINK_MBIT (default 100 Mbit/s) in
             each direction: a model of a warehouse across a network (no
             added latency), where moving every row costs its bytes.  Also
             printed: the link speed under which the plain warehouse diff's
             10x would hold, from the loopback figures (local bytes / (10 x
             warehouse seconds)).

The cluster gets work_mem = 256MB (ALTER DATABASE), as README "Diff in the
warehouse" advises: with the default 4MB the join spills to disk.

The table is bench.py's with one more column, `updated_at timestamptz NOT
NULL` (distinct values, one second apart, all in the past), and a btree
index on it; only this bench's table has it.  An ETL that keeps updated_at
sets it with every change: the changed rows get `updated_at = now()` with
their new score (id % 1000 = n, then VACUUM ANALYZE).  The local project's
model is bench.py's query (it needs no updated_at, so it does not pay for
its bytes); the warehouse project's also selects updated_at (changed_since
needs it among the model's columns), from its switch on.

Measured, for each of loopback and link:
  round 1   0.1 % changed: the local diff, then the plain warehouse diff;
  round 2   another 0.1 % changed: the local diff, then changed_since.
Each run must write exactly the changed rows, and each changed_since run
must say it read the range (its log line "... read (changed_since)"), not
fall back to comparing every row.  Printed per run: seconds, MB received,
bytes received per changed row, and local / this run's time (the local
diff of the same round).

Targets: changed_since's run is at least 10x faster than the local diff's,
judged on loopback and across the link (both printed PASS or MISS), and it
receives at most 2 x the changed rows' bytes plus 64 kB; the plain
warehouse diff receives at most as much (its ratio is printed, with no
target).  The changed rows' bytes are the local diff's bytes per model
row.  Exit 1 when a target is missed or a run misbehaves.  Printed with
no target: one more changed_since run, on loopback after another 0.1 %
changed, in a sync that removes (the warehouse project switched to mode
mirror with on_remove delete), where each run first checks, in one
aggregate query over every model key and table key, that no row left the
model (an upsert sync skips that check); its ratio is to round 2's
loopback local run.  BENCH_WHDIFF_EXPLAIN=1 prints the plans of the
changed_since runs' statements over 200 ms (see EXPLAIN below).

Setup (timed, printed, no target): the table and its index; a first run
with the local diff (every row sent); the warehouse project gets a copy of
that state and output and is switched to "diff": "warehouse": its first run
compares every local row (re-mapping each: its model has one more column),
sends nothing and fills the warehouse table; after round 1 it is switched
to changed_since and runs once with nothing changed (no watermark yet: it
compares every row, sends nothing and sets the watermark).  About 12
minutes at 10M rows on an idle 2-core machine (measured: 719 s), most of
it the setup.
Small sizes (BENCH_WHDIFF_ROWS=100000) check the script quickly.
"""

import json
import os
import re
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
from bench import MAPPING, QUERY, table_sql  # noqa: E402

RETL = os.environ.get("RETL_BIN") or os.path.join(REPO, "retl")
ROWS = int(os.environ.get("BENCH_WHDIFF_ROWS", "10000000"))
LINK_MBIT = float(os.environ.get("BENCH_WHDIFF_LINK_MBIT", "100"))
TARGET = 10.0
# BENCH_WHDIFF_EXPLAIN=1: the server logs the plan and time of every
# statement of the changed_since runs that takes over 200 ms
# (auto_explain in the warehouse project's sessions; EXPLAIN ANALYZE's
# instrumentation slows them a little), printed at the end: where a slow
# run's time went
EXPLAIN = bool(os.environ.get("BENCH_WHDIFF_EXPLAIN"))
# the warehouse project's model: changed_since needs its column among the
# model's columns (the local project keeps bench.py's QUERY)
QUERY_CS = QUERY.replace(" FROM bench", ", updated_at FROM bench")
assert QUERY_CS != QUERY


def table_sql_cs(rows):
    """bench.py's table with updated_at (distinct, one second apart, in the
    past) and its index, built in the same INSERT (an ALTER + UPDATE would
    rewrite every row)"""
    sql = table_sql(rows)
    col = "    score       int\n)"
    val = "((g * 7919) % 1000)::int\nFROM"
    if sql.count(col) != 1 or sql.count(val) != 1:
        raise SystemExit("bench.table_sql changed: bench_whdiff.table_sql_cs "
                         "cannot add updated_at")
    sql = sql.replace(col, "    score       int,\n    updated_at  timestamptz NOT NULL\n)")
    sql = sql.replace(val, "((g * 7919) % 1000)::int,\n"
                      "       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'\n"
                      "FROM")
    return sql + "CREATE INDEX bench_updated_at ON bench (updated_at);\n"


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


def write_mapping(d, diff, query=QUERY, changed_since=None, mode="upsert"):
    m = dict(MAPPING, diff=diff, query=query, mode=mode)
    if mode == "mirror":
        m["on_remove"] = "delete"    # a sync that removes: the key check runs
    if changed_since:
        m["changed_since"] = changed_since
    with open(os.path.join(d, "mappings", "bench.json"), "w") as f:
        json.dump(m, f)


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
    return secs, lines(out) - before, res.stderr


def change(pg, n):
    """0.1 % of the rows change, as an ETL that keeps updated_at changes
    them; then VACUUM ANALYZE, so no run reads dead tuples"""
    pg.psql(f"UPDATE bench SET score = score + 1, updated_at = now() "
            f"WHERE id % 1000 = {n}; VACUUM ANALYZE bench")


def measure(pg, relay, projs, outs, modes, first, changed, failed):
    """one round: for loopback and the link, 0.1 % of the rows change
    (id % 1000 = first, first + 1), then each of modes ((project, label))
    runs; returns [{"link": name, label: (secs, bytes received)}]"""
    results = []
    for i, (link, rate) in enumerate((("loopback", None),
                                      (f"{LINK_MBIT:g} Mbit/s", LINK_MBIT * 1e6 / 8))):
        change(pg, first + i)
        row = {"link": link}
        for proj, label in modes:
            relay.reset(rate)
            secs, n, log = run(projs[proj], outs[proj])
            if n != changed:
                failed.append(f"{link}, {label}: {n} rows sent, not {changed}")
            if label == "changed_since" and not re.search(
                    r"rows with updated_at >= .* read \(changed_since", log):
                failed.append(f"{link}, changed_since: the run did not read the range "
                              f"(it compared every row?): {log.strip()[-300:].replace(chr(10), ' | ')}")
            row[label] = (secs, relay.down)
        results.append(row)
    return results


def setup(pg, relay, projs, outs):
    """the first local run, the warehouse project switched from it"""
    relay.reset(None)
    secs, n, _ = run(projs["local"], outs["local"])
    print(f"bench_whdiff: first run (diff local): {secs:.1f} s, {n:,} rows sent, "
          f"{relay.down / 1e6:.0f} MB received", flush=True)
    if n != ROWS:
        raise SystemExit(f"the first run sent {n} rows, not {ROWS}")
    # the warehouse project gets a copy of its state and output (the same
    # sync, as if it had run it), is switched to the warehouse diff, and its
    # first run compares every local row and fills the table, as a user
    # switching an existing sync would see
    shutil.rmtree(os.path.join(projs["warehouse"], "state"), ignore_errors=True)
    shutil.copytree(os.path.join(projs["local"], "state"),
                    os.path.join(projs["warehouse"], "state"))
    shutil.copyfile(outs["local"], outs["warehouse"])
    write_mapping(projs["warehouse"], "warehouse", QUERY_CS)
    relay.reset(None)
    secs, n, _ = run(projs["warehouse"], outs["warehouse"])
    print(f"bench_whdiff: switched to diff warehouse: {secs:.1f} s (every row "
          f"compared, the table filled), {n:,} rows sent", flush=True)
    if n != 0:
        raise SystemExit(f"the switched run sent {n} rows, not 0")


def switch_cs(projs, outs, relay):
    """the warehouse project switched to changed_since: its first run has
    no watermark, compares every row (nothing changed) and sets it"""
    write_mapping(projs["warehouse"], "warehouse", QUERY_CS, "updated_at")
    relay.reset(None)
    secs, n, log = run(projs["warehouse"], outs["warehouse"])
    print(f"bench_whdiff: switched to changed_since: {secs:.1f} s (no watermark yet: "
          f"every row compared, the watermark set), {n:,} rows sent", flush=True)
    if n != 0:
        raise SystemExit(f"the changed_since switch sent {n} rows, not 0")
    if "no watermark for changed_since yet" not in log:
        raise SystemExit(f"the changed_since switch did not say it had no watermark: "
                         f"{log[-500:]}")


def key_check(pg, relay, projs, outs, changed, failed):
    """changed_since in a sync that removes: the warehouse project switched
    to mode mirror, so each run first checks in one aggregate query over
    every model key that no row left the model; another 0.1 % changed,
    loopback only (the check's bytes are one row); returns (secs, bytes)"""
    write_mapping(projs["warehouse"], "warehouse", QUERY_CS, "updated_at", mode="mirror")
    change(pg, 5)
    relay.reset(None)
    secs, n, log = run(projs["warehouse"], outs["warehouse"])
    if n != changed:
        failed.append(f"changed_since with the key check: {n} rows sent, not {changed}")
    m = re.search(r"rows with updated_at >= .* read \(changed_since([^)]*)\)", log)
    if not m or m.group(1):
        failed.append(f"changed_since with the key check: the run did not check and read "
                      f"the range: {log.strip()[-300:].replace(chr(10), ' | ')}")
    return secs, relay.down


def explain_on(pg, proj, dsn):
    """auto_explain in the warehouse project's sessions only (its DSN's
    options: the local diff's COPY must not pay for the instrumentation),
    plans of statements over 200 ms to the server's log; returns where the
    log stands"""
    opts = ("-c session_preload_libraries=auto_explain "
            "-c auto_explain.log_min_duration=200ms -c auto_explain.log_analyze=on")
    path = os.path.join(proj, "retl.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["sources"]["warehouse"]["dsn"] = f"{dsn} options='{opts}'"
    with open(path, "w") as f:
        json.dump(cfg, f)
    return os.path.getsize(pg.logfile)


def explain_print(pg, mark):
    """the changed_since runs' slow statements, as auto_explain logged them
    (this script's own UPDATE and VACUUM left out)"""
    with open(pg.logfile, errors="replace") as f:
        f.seek(mark)
        log = f.read()
    entries = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log)
    print("\nbench_whdiff: statements of the changed_since runs over 200 ms (auto_explain):")
    for e in entries:
        if "duration:" in e and "retl" in e and "UPDATE bench SET" not in e:
            print(e.strip())


def report(results, checked, changed, failed):
    """the table of both rounds, then the targets; appends to failed"""
    print(f"\nbench_whdiff: {ROWS:,} rows, {changed:,} changed (0.1 %) a run, "
          f"file destination; received = bytes the server sent retl; local/this = "
          f"the local diff's seconds on the same changes (the row above) / this run's")
    print(f"{'link':<14}{'diff':<16}{'seconds':>9}{'MB received':>13}"
          f"{'B/changed row':>15}{'local/this':>12}")
    # each mode's row follows the local diff's run on the same changes
    for r1, r2 in zip(*results):
        for row, label in ((r1, "local"), (r1, "warehouse"), (r2, "local"),
                           (r2, "changed_since")):
            secs, down = row[label]
            ratio = f"{row['local'][0] / secs:.1f}x" if label != "local" else ""
            print(f"{row['link']:<14}{label:<16}{secs:>9.2f}{down / 1e6:>13.1f}"
                  f"{down / max(changed, 1):>15.0f}{ratio:>12}")
    # the changed rows' own bytes, from what the local diff received
    per_row = results[0][0]["local"][1] / ROWS
    limit = 2 * changed * per_row + 65536
    for rows, label in ((results[0], "warehouse"), (results[1], "changed_since")):
        for row in rows:
            down = row[label][1]
            if down > limit:
                failed.append(f"{row['link']}: {label} received {down:,} bytes, over "
                              f"2 x {changed:,} changed rows x {per_row:.0f} B + 64 kB")
    print()
    for row in results[1]:
        ratio = row["local"][0] / row["changed_since"][0]
        verdict = "PASS" if ratio >= TARGET else "MISS"
        print(f"target ({row['link']}): changed_since >= {TARGET:g}x faster than the "
              f"local diff: {ratio:.1f}x {verdict}")
        if ratio < TARGET:
            failed.append(f"{row['link']}: changed_since {ratio:.1f}x, under {TARGET:g}x")
    plain = ", ".join(f"{row['link']} {row['local'][0] / row['warehouse'][0]:.1f}x"
                      for row in results[0])
    print(f"plain warehouse diff (no target): {plain}")
    secs, down = checked
    local = results[1][0]["local"][0]
    print(f"changed_since with the key check (mirror + delete, loopback, no target): "
          f"{secs:.2f} s, {down / 1e6:.1f} MB received, {local / secs:.1f}x "
          f"(against the local diff's {local:.2f} s on loopback above)")
    lb = results[0][0]
    even = lb["local"][1] * 8 / (TARGET * lb["warehouse"][0]) / 1e6
    print(f"the plain diff's 10x would hold on links slower than about {even:.0f} Mbit/s "
          f"(the local diff's {lb['local'][1] / 1e6:.0f} MB over 10 x the "
          f"warehouse diff's {lb['warehouse'][0]:.1f} s)")


def main():
    base = tempfile.mkdtemp(prefix="retl-bench-whdiff-")
    pg = PgCluster()
    pg.start()
    failed = []
    start = time.perf_counter()
    try:
        pg.psql(table_sql_cs(ROWS))
        pg.psql("ALTER DATABASE postgres SET work_mem = '256MB'")
        print(f"bench_whdiff: {ROWS:,} rows and the updated_at index built in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        relay = Relay(os.path.join(pg.sockdir, f".s.PGSQL.{pg.port}"))
        dsn = f"host=127.0.0.1 port={relay.port} user=postgres dbname=postgres"
        projs = {d: project(base, d, d, dsn) for d in ("local", "warehouse")}
        outs = {d: os.path.join(base, d + ".jsonl") for d in projs}
        setup(pg, relay, projs, outs)
        changed = len(range(0, ROWS, 1000)) if ROWS >= 1000 else 0
        plain = measure(pg, relay, projs, outs,
                        (("local", "local"), ("warehouse", "warehouse")), 1, changed, failed)
        switch_cs(projs, outs, relay)
        mark = explain_on(pg, projs["warehouse"], dsn) if EXPLAIN else None
        cs = measure(pg, relay, projs, outs,
                     (("local", "local"), ("warehouse", "changed_since")), 3, changed, failed)
        checked = key_check(pg, relay, projs, outs, changed, failed)
        report((plain, cs), checked, changed, failed)
        if EXPLAIN:
            explain_print(pg, mark)
        print(f"bench_whdiff: {time.perf_counter() - start:.0f} s in all")
    finally:
        pg.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(base, ignore_errors=True)
    for f in failed:
        print(f"MISS: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
