#!/usr/bin/env python3
"""bench_webhook.py - `make bench`, the webhook path's CPU (issue 16).

retl's own CPU seconds (user + system, from wait4) per 100,000 records
pushed to the webhook destination: BENCH_WH_ROWS new rows (default 50,000)
of a 8-column table, signed batches of the destination's default
batch_size (100), against tests/emulators/webhook_receiver.py run as its
own process (emuproc.py) and answering at once.  The figure is retl's send
path: mapping, payload reading, encoding, signing, state commits.  Target:
at most 0.3 CPU s per 100,000 records.

The receiver's CPU over the same run is printed beside retl's, with the
share of the run's wall time it was busy: it checks every signature and
parses every body, and near 100 % it is what limits the run's wall time
(retl's CPU figure is its own either way).

BENCH_WRAP puts a command before retl's (e.g. "valgrind --tool=callgrind"),
to profile the run the bench measures.  Exit status 1 when the run failed
or the target is missed, after all results.
"""

import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

from pgcluster import PgCluster  # noqa: E402
sys.path.insert(0, HERE)
from targets import Targets  # noqa: E402
from emuproc import EmulatorProcess, measured_run  # noqa: E402

SECRET = "whsec-bench-0123456789"
CPU_TARGET = 0.3  # CPU s per 100,000 records (issue 16)


def measure(retl_bin, pg, tmp, rows):
    """(retl's CPU s, the receiver's CPU s over retl's run, wall s), or
    None when the run failed"""
    emu = EmulatorProcess("webhook_receiver", "--secret", SECRET)
    try:
        proj = os.path.join(tmp, "project")
        os.makedirs(os.path.join(proj, "mappings"))
        with open(os.path.join(proj, "retl.json"), "w") as f:
            json.dump({"sources": {"w": {"type": "postgres", "dsn": pg.dsn}},
                       "destinations": {"hook": {"type": "webhook",
                                                 "url": emu.url + "/hooks/retl",
                                                 "signing_secret": "${WH_SECRET}"}}}, f)
        with open(os.path.join(proj, "mappings", "cpu.json"), "w") as f:
            json.dump({"source": "w", "query": "SELECT * FROM cpu_people", "key": "id",
                       "destination": "hook", "mode": "upsert",
                       "fields": {"email": "email", "firstname": "first",
                                  "lastname": "last", "plan": "plan",
                                  "mrr": {"from": "mrr", "type": "number"},
                                  "vip": "vip",
                                  "signup_date": {"from": "signup", "type": "date"}}}, f)
        return measured_run(emu, [retl_bin, "--config", proj, "run", "cpu"],
                            dict(os.environ, WH_SECRET=SECRET), os.path.join(tmp, "run.log"))
    finally:
        emu.stop()


def main():
    rows = int(os.environ.get("BENCH_WH_ROWS", "50000"))
    retl_bin = os.environ.get("RETL_BIN") or os.path.join(REPO, "retl")
    pg = PgCluster()
    tmp = tempfile.mkdtemp(prefix="retl-bench-wh-")
    targets = Targets("bench_webhook")
    try:
        pg.start()
        pg.psql(f"CREATE TABLE cpu_people AS SELECT i AS id, 'c' || i || '@example.com' AS email,"
                f" 'First' || i AS first, 'Last' || i AS last, 'plan ' || (i % 7) AS plan,"
                f" (i % 1000) / 10.0 AS mrr, i % 3 = 0 AS vip,"
                f" date '2020-01-01' + (i % 1500) AS signup"
                f" FROM generate_series(1, {rows}) i")
        print(f"bench-webhook cpu: {rows:,} new records, signed batches of 100, "
              "receiver answering at once", flush=True)
        m = measure(retl_bin, pg, tmp, rows)
        if m is None:
            return targets.exit_code(1)
        secs, emu, wall = m
        per = secs / rows * 100000
        print(f"  this build            {per:.2f} CPU s per 100,000 records; receiver "
              f"{emu / rows * 100000:.2f} CPU s per 100,000, busy {emu / wall:.0%} "
              f"of the {wall:.1f} s run")
        verdict = targets.check(per <= CPU_TARGET, f"webhook CPU <= {CPU_TARGET} s per "
                                "100,000 records", f"{per:.2f}")
        print(f"  target                <= {CPU_TARGET:.1f} CPU s per 100,000 records  {verdict}")
        return targets.exit_code(0)
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
