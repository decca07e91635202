#!/usr/bin/env python3
"""bench_airtable.py - `make bench`, Airtable's rate ceiling.

The Airtable emulator enforces its documented 5 requests per rolling second
per base (a 429 costs a 30 s penalty); retl is configured with the same
limit and upserts 1,000 new rows (100 requests of 10).  In a rolling window
the 5th request after any request may start 1 s after it, no sooner, so the
share of the allowed rate reached is 1 s over the median gap t[i] - t[i-5]
(target >= 80%: retl holds its 1 s window 200 ms longer than the server's,
see src/ratelimit.c, so 1 / 1.2 = 83% is its ceiling).  Also reported: the smallest such gap (under 1 s means the
emulator saw 6 in a second: a 429), the 429s (target 0), the most requests in
any second (at most 5) and records/s.

This used to be asserted in tests/integration/test_airtable.py; a rate is
not something a test on a shared machine can hold, so it is measured here.
BENCH_AT_ROWS changes the row count (default 1,000).  Exit status 1 when
the run failed or any printed target (share, smallest gap, 429s, most in
any second) is missed, after all results.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "tests", "emulators"))

from pgcluster import PgCluster  # noqa: E402
import airtable  # noqa: E402
from common import max_in_window  # noqa: E402
sys.path.insert(0, HERE)
from targets import Targets  # noqa: E402

TOKEN = "patAAAAAAAAAAAAAA.0123456789abcdef0123456789abcdef"
LIMIT, WINDOW = 5, 1.0


def counters(url):
    with urllib.request.urlopen(url + "/_emulator/counters", timeout=30) as r:
        return json.loads(r.read())


def main():
    rows = int(os.environ.get("BENCH_AT_ROWS", "1000"))
    retl_bin = os.environ.get("RETL_BIN") or os.path.join(REPO, "retl")
    pg = PgCluster()
    tmp = tempfile.mkdtemp(prefix="retl-bench-at-")
    server, url = airtable.start(port=0, tokens=[TOKEN])
    try:
        pg.start()
        pg.psql(f"CREATE TABLE people AS SELECT i AS id, 'person' || i || '@example.com'"
                f" AS email, 'Person ' || i AS name FROM generate_series(1, {rows}) i")
        proj = os.path.join(tmp, "project")
        os.makedirs(os.path.join(proj, "mappings"))
        with open(os.path.join(proj, "retl.json"), "w") as f:
            json.dump({"sources": {"w": {"type": "postgres", "dsn": pg.dsn}},
                       "destinations": {"at": {"type": "airtable", "token": "${AT_TOKEN}",
                                               "base": airtable.DEFAULT_BASE,
                                               "base_url": url,
                                               "requests_per_second": LIMIT}}}, f)
        with open(os.path.join(proj, "mappings", "people.json"), "w") as f:
            json.dump({"source": "w", "query": "SELECT * FROM people", "key": "id",
                       "destination": "at", "object": "People", "mode": "upsert",
                       "match": {"Email": "email"},
                       "fields": {"Email": "email", "Name": "name"}}, f)
        print(f"bench-airtable: {rows:,} rows, emulator limit {LIMIT}/s per base",
              flush=True)
        t0 = time.perf_counter()
        p = subprocess.run([retl_bin, "--config", proj, "run", "people"],
                           env=dict(os.environ, AT_TOKEN=TOKEN),
                           capture_output=True, text=True)
        secs = time.perf_counter() - t0
        if p.returncode != 0:
            print(p.stdout, p.stderr, file=sys.stderr)
            return 1
        c = counters(url)
        reqs = [r for r in c["requests"] if "/meta/" not in r["path"]]
        times = sorted(r["t"] for r in reqs)
        n = len(times)
        span = times[-1] - times[0] if n > 1 else 0
        gaps = sorted(times[i] - times[i - LIMIT] for i in range(LIMIT, n))
        share = WINDOW / gaps[len(gaps) // 2] if gaps else 0.0
        n429 = sum(1 for r in c["requests"] if r["status"] == 429)
        most = max_in_window(times, WINDOW)
        gap_ms = gaps[0] * 1000 if gaps else WINDOW * 1000
        targets = Targets("bench_airtable")
        print()
        print(f"  requests              {n}")
        print(f"  first to last         {span:.2f} s ({(n - 1) / span if span else 0:.2f} requests/s)")
        print(f"  share of the limit    {share:.1%}   target >= 80%  "
              f"{targets.check(share >= 0.80, 'share of the limit >= 80%', f'{share:.1%}')}")
        print(f"  smallest gap          {gap_ms:.0f} ms over {LIMIT} "
              f"requests (under {WINDOW * 1000:.0f}: a 429)  "
              f"{targets.check(gap_ms >= WINDOW * 1000, f'smallest gap over {LIMIT} requests >= {WINDOW * 1000:.0f} ms', f'{gap_ms:.0f} ms')}")
        print(f"  429s                  {n429}   target 0  "
              f"{targets.check(n429 == 0, '429s == 0', n429)}")
        print(f"  most in any second    {most} (limit {LIMIT})  "
              f"{targets.check(most <= LIMIT, f'most in any second <= {LIMIT}', most)}")
        print(f"  records/s             {rows / secs:,.1f} ({secs:.2f} s for the run)")
        return targets.exit_code()
    finally:
        server.shutdown()
        server.server_close()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
