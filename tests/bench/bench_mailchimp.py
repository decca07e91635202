#!/usr/bin/env python3
"""bench_mailchimp.py - `make bench`, Mailchimp: what the documented-fields
design (issue 12) costs and gains against the per-member way.

The emulator answers every request after BENCH_MC_LATENCY seconds (default
0.05) and allows 10 simultaneous connections, as Mailchimp does.  Two cases,
each run by retl and, in the same run and against the same emulator, by the
reference: the script a data engineer would write from Mailchimp's docs, one
`PUT /lists/{id}/members/{hash}` with status_if_new per member on 10
connections (Python threads, keep-alive).  BENCH_MC_ROWS members (default
3,000):

  new      every address is new to the audience.  retl: batch subscribe,
           500 members a request, with the configured status.
  update   every member exists and one merge field changed.  retl: PUT with
           status_if_new, one member a request (retl knows the members it
           wrote; batch subscribe would re-subscribe, see README).

Reported per case: seconds, members/s, requests, the most connections open
at once (at most 10) and 429s (target 0), and the ratio of the reference's
time to retl's (> 1: retl is faster).  Expected: new far above 1 (1/500 of
the requests), update about 1 (both are one member a request; the ceiling is
10 connections / latency); the ratio is reported, not a target.  Exit status
1 when a run failed or a target (retl: 0 429s, at most 10 connections, per
case) is missed, after all results.
"""

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "tests", "emulators"))

from pgcluster import PgCluster  # noqa: E402
import mailchimp  # noqa: E402
sys.path.insert(0, HERE)
from targets import Targets  # noqa: E402

KEY = mailchimp.DEFAULT_KEY
LIST = mailchimp.DEFAULT_LIST
CONNS = 10


def control(url, what, body=None):
    req = urllib.request.Request(url + "/_emulator/" + what,
                                 data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def fresh_emulator(latency):
    server, url = mailchimp.start(port=0, api_key=KEY, latency=latency)
    return server, url


def reference(url, members):
    """the per-member script: PUT with status_if_new on CONNS connections"""
    host, port = url.split("//", 1)[1].split(":")
    auth = "Basic " + base64.b64encode(("bench:" + KEY).encode()).decode()
    errors = []

    def worker(part):
        c = http.client.HTTPConnection(host, int(port), timeout=60)
        for email, first in part:
            body = json.dumps({"email_address": email, "status_if_new": "subscribed",
                               "merge_fields": {"FNAME": first}})
            c.request("PUT", "/3.0/lists/%s/members/%s" % (LIST, mailchimp.subscriber_hash(email)),
                      body=body, headers={"Authorization": auth,
                                          "Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)
        c.close()

    parts = [members[i::CONNS] for i in range(CONNS)]
    threads = [threading.Thread(target=worker, args=(p,)) for p in parts]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    if errors:
        raise RuntimeError("reference: %d requests failed (%s)" % (len(errors), errors[:3]))
    return secs


def retl_run(retl_bin, proj):
    t0 = time.perf_counter()
    p = subprocess.run([retl_bin, "--config", proj, "run", "people"],
                       env=dict(os.environ, MC_KEY=KEY), capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("retl run failed:\n" + p.stdout + p.stderr)
    return secs


def project(tmp, name, pg, url):
    proj = os.path.join(tmp, name)
    os.makedirs(os.path.join(proj, "mappings"))
    with open(os.path.join(proj, "retl.json"), "w") as f:
        json.dump({"sources": {"w": {"type": "postgres", "dsn": pg.dsn}},
                   "destinations": {"mc": {"type": "mailchimp", "api_key": "${MC_KEY}",
                                           "base_url": url + "/3.0"}}}, f)
    with open(os.path.join(proj, "mappings", "people.json"), "w") as f:
        json.dump({"source": "w", "query": "SELECT id, email, first FROM people", "key": "id",
                   "destination": "mc", "object": LIST, "mode": "upsert",
                   "match": {"email_address": "email"},
                   "fields": {"email_address": "email", "merge_fields.FNAME": "first"}}, f)
    return proj


def stats(url, skip=0):
    """API requests after the first `skip` ones, the most connections ever
    open, and 429s among those requests"""
    c = control(url, "counters")
    api = [r for r in c["requests"] if r["path"].startswith("/3.0/")][skip:]
    return (len(api), c["extra"].get("max_open_connections", 0),
            sum(1 for r in api if r["status"] == 429))


def line(label, secs, n, reqs, conns, n429):
    print(f"  {label:<10}{secs:7.2f} s  {n / secs:8,.0f} members/s  {reqs:6} requests  "
          f"max {conns} connections  {n429} 429s")


def case(name, retl_bin, pg, tmp, rows, latency, prepare, targets):
    """prepare(url) readies the emulator (and the model) for retl and the
    reference alike; -> (retl seconds, reference seconds)"""
    out = {}
    for who in ("retl", "reference"):
        server, url = fresh_emulator(latency)
        try:
            proj = project(tmp, f"{name}-{who}", pg, url)
            prepare(url, proj)
            before = stats(url)[0]
            if who == "retl":
                secs = retl_run(retl_bin, proj)
            else:
                people = [(e, f) for e, f in (ln.split("\t") for ln in pg.psql(
                    "SELECT email, first FROM people ORDER BY id", "-At", "-F", "\t").splitlines())]
                secs = reference(url, people)
            reqs, conns, n429 = stats(url, before)
            line(who, secs, rows, reqs, conns, n429)
            out[who] = (secs, n429, conns)
        finally:
            server.shutdown()
            server.server_close()
    ratio = out["reference"][0] / out["retl"][0]
    ok = targets.check(out["retl"][1] == 0, f"{name}: retl 429s == 0",
                       out["retl"][1]) == "PASS"
    ok = targets.check(out["retl"][2] <= CONNS,
                       f"{name}: retl connections <= {CONNS}",
                       out["retl"][2]) == "PASS" and ok
    print(f"  ratio     {ratio:.2f} (reference time / retl time)  "
          f"{'PASS' if ok else 'MISS'} (0 429s, <= {CONNS} connections)")
    return ratio


def main():
    rows = int(os.environ.get("BENCH_MC_ROWS", "3000"))
    latency = float(os.environ.get("BENCH_MC_LATENCY", "0.05"))
    retl_bin = os.environ.get("RETL_BIN") or os.path.join(REPO, "retl")
    pg = PgCluster()
    tmp = tempfile.mkdtemp(prefix="retl-bench-mc-")
    try:
        pg.start()
        pg.psql(f"CREATE TABLE people AS SELECT i AS id, 'm' || i || '@example.com' AS email,"
                f" 'First' || i AS first FROM generate_series(1, {rows}) i")
        print(f"bench-mailchimp: {rows:,} members, {latency * 1000:.0f} ms a request, "
              f"{CONNS} connections", flush=True)

        targets = Targets("bench_mailchimp")
        print("\nnew: every address new to the audience")
        case("new", retl_bin, pg, tmp, rows, latency, lambda url, proj: None,
             targets)

        print("\nupdate: every member exists (retl wrote it), one merge field changed")

        def seeded(url, proj):
            # retl's first run writes the members and remembers them; then
            # the model changes.  The reference starts from the same members.
            pg.psql("UPDATE people SET first = 'First' || id")
            retl_run(retl_bin, proj)
            pg.psql("UPDATE people SET first = 'Second' || id")
        try:
            case("update", retl_bin, pg, tmp, rows, latency, seeded, targets)
        finally:
            pg.psql("UPDATE people SET first = 'First' || id")
        return targets.exit_code()
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
