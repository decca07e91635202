#!/usr/bin/env python3
"""demo.py - `make demo`: retl end to end against a throwaway PostgreSQL.

Starts a private PostgreSQL cluster (tests/pgcluster.py), fills
analytics.customers with 5,000 generated rows (three of them deliberately
odd: a NULL email, which is sent as null, and two emails that fail the
mapping's `match` and are rejected on every run), copies
tests/demo/project to a temp folder and runs, printing each command:

    retl check                  config, connection, query, columns
    retl plan customers         what a first run would send
    retl run --all              first run: every good row is sent
    retl run --all              nothing changed: 0 sent
    (UPDATE 10 rows, DELETE 5 rows)
    retl run --all              only those 15 changes are sent
    retl status / failures customers / history customers

then shows the tail of the output file.  The cluster and the temp folder are
removed at the end whatever happens (RETL_DEMO_KEEP=1 keeps the folder).

Exit status: 0 when every step exited as expected (runs exit 1 here, because
the bad rows are rejected on every run), 1 otherwise.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

from pgcluster import PgCluster  # noqa: E402

ROWS = 5000
BAD_NULL_EMAIL = 13
BAD_EMAILS = {42: "not-an-email", 77: "bob@@example.com"}
UPDATED = list(range(101, 111))     # 10 good rows, mrr changes
DELETED = list(range(201, 206))     # 5 good rows

SCHEMA_SQL = f"""
CREATE SCHEMA analytics;
CREATE TABLE analytics.customers (
    id          bigint PRIMARY KEY,
    email       text,
    first_name  text,
    last_name   text,
    plan        text NOT NULL,
    mrr         numeric(10,2) NOT NULL,
    active      boolean NOT NULL,
    created_at  timestamptz NOT NULL,
    city        text,
    country     text
);
INSERT INTO analytics.customers
SELECT g,
       -- some emails need the mapping's trim/lower
       CASE WHEN g % 10 = 0 THEN '  User' || g || '@Example.COM '
            ELSE 'user' || g || '@example.com' END,
       (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken'])[1 + g % 8],
       (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Allen','Thompson'])[1 + (g / 8) % 8],
       (ARRAY['free','starter','pro','enterprise'])[1 + g % 4],
       ((g * 37) % 200000) / 100.0,
       g % 7 <> 0,
       timestamptz '2021-01-01 00:00:00+00' + g * interval '3 hours 17 minutes',
       (ARRAY['Berlin','Lisbon','Austin','Osaka','Nairobi','Lima'])[1 + g % 6],
       (ARRAY['de','pt','us','jp','ke','pe'])[1 + g % 6]
FROM generate_series(1, {ROWS}) g;
-- the bad rows (not enterprise, so the VIP segment stays clean)
UPDATE analytics.customers SET email = NULL, plan = 'free' WHERE id = {BAD_NULL_EMAIL};
""" + "".join(
    f"UPDATE analytics.customers SET email = '{e}', plan = 'free' WHERE id = {i};\n"
    for i, e in BAD_EMAILS.items()) + """
VACUUM ANALYZE analytics.customers;
"""

CHANGE_SQL = f"""
UPDATE analytics.customers SET mrr = mrr + 10
 WHERE id IN ({", ".join(map(str, UPDATED))});
DELETE FROM analytics.customers
 WHERE id IN ({", ".join(map(str, DELETED))});
"""

BOLD = "\033[1m" if sys.stdout.isatty() else ""
DIM = "\033[2m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


def banner(text):
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


class Demo:
    def __init__(self, retl_bin, project_dir, env):
        self.retl = retl_bin
        self.dir = project_dir
        self.env = env
        self.results = []     # (label, expected, got)

    def retl_step(self, args, expected, note=""):
        """Runs `retl --config DIR args`; expected is a set of exit codes."""
        shown = "retl " + " ".join(args)
        banner(f"$ {shown}" + (f"   {DIM}# {note}{RESET}" if note else ""))
        argv = [self.retl, "--config", self.dir] + list(args)
        try:
            rc = subprocess.run(argv, env=self.env, cwd=self.dir,
                                stdin=subprocess.DEVNULL,
                                timeout=600).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        ok = rc in expected
        exp = "/".join(str(e) for e in sorted(expected))
        print(f"{DIM}-> exit {rc} (expected {exp}){RESET}"
              + ("" if ok else f"  {BOLD}UNEXPECTED{RESET}"), flush=True)
        self.results.append((shown, exp, rc, ok))
        return rc

    def check(self, label, ok, detail):
        print(f"{DIM}-> {label}: {detail}{RESET}"
              + ("" if ok else f"  {BOLD}UNEXPECTED{RESET}"), flush=True)
        self.results.append((label, "", detail, ok))


def main():
    retl_bin = os.environ.get("RETL_BIN") or os.path.join(REPO, "retl")
    if not os.access(retl_bin, os.X_OK):
        print(f"demo: {retl_bin} not found; run `make retl` first",
              file=sys.stderr)
        return 2

    keep = os.environ.get("RETL_DEMO_KEEP") == "1"
    pg = PgCluster()
    tmp = None
    try:
        banner("starting a throwaway PostgreSQL cluster")
        t0 = time.time()
        pg.start()
        print(f"{pg.dsn}  ({time.time() - t0:.1f}s)")

        banner(f"creating analytics.customers ({ROWS} rows; a NULL email, 2 invalid)")
        pg.psql(SCHEMA_SQL)
        print(pg.psql("SELECT id, email, plan, mrr FROM analytics.customers "
                      "ORDER BY id LIMIT 5"), end="")

        tmp = tempfile.mkdtemp(prefix="retl-demo-")
        project = os.path.join(tmp, "project")
        shutil.copytree(os.path.join(HERE, "project"), project)
        print(f"project copied to {project}")
        env = dict(os.environ, RETL_DEMO_DSN=pg.dsn)
        demo = Demo(retl_bin, project, env)
        out = os.path.join(project, "out", "customers.jsonl")
        vip = os.path.join(project, "out", "segment_vip.jsonl")

        demo.retl_step(["check"], {0})
        demo.retl_step(["plan", "customers"], {0, 1},
                       "sends nothing; 2 rows fail the email match")
        demo.retl_step(["run", "--all"], {1},
                       "first run: every good row; bad rows rejected -> 1")
        n1 = count_lines(out)
        good = ROWS - len(BAD_EMAILS)   # the NULL email may pass or not
        demo.check("lines in out/customers.jsonl", good - 1 <= n1 <= good,
                   f"{n1} (model has {ROWS} rows, {len(BAD_EMAILS)} invalid emails)")
        print(f"{DIM}   out/segment_vip.jsonl: {count_lines(vip)} lines{RESET}")

        demo.retl_step(["run", "--all"], {1}, "nothing changed: 0 sent")
        n2 = count_lines(out)
        demo.check("new lines after the unchanged run", n2 == n1,
                   f"{n2 - n1}")

        banner(f"changing the warehouse: UPDATE {len(UPDATED)} rows, "
               f"DELETE {len(DELETED)} rows")
        print(CHANGE_SQL.strip())
        pg.psql(CHANGE_SQL)

        demo.retl_step(["run", "--all"], {1}, "only the 15 changes are sent")
        n3 = count_lines(out)
        demo.check("new lines after the change",
                   n3 - n2 == len(UPDATED) + len(DELETED),
                   f"{n3 - n2} (expected {len(UPDATED)} upserts + "
                   f"{len(DELETED)} removes)")

        demo.retl_step(["status"], {0})
        demo.retl_step(["failures", "customers"], {0})
        demo.retl_step(["history", "customers"], {0})

        banner("tail -n 6 out/customers.jsonl")
        try:
            with open(out, encoding="utf-8") as f:
                lines = f.readlines()
            for line in lines[-6:]:
                print(line, end="")
            ops = {}
            for line in lines:
                try:
                    op = json.loads(line).get("op")
                except ValueError:
                    op = "(not JSON)"
                ops[op] = ops.get(op, 0) + 1
            print(f"{DIM}ops in the file: {ops}{RESET}")
        except FileNotFoundError:
            print("(no output file)")

        banner("summary")
        bad = 0
        for label, exp, got, ok in demo.results:
            mark = "ok " if ok else "BAD"
            exp_txt = f" (expected {exp})" if exp else ""
            print(f"  {mark} {label}: {got}{exp_txt}")
            bad += not ok
        print("demo: all steps as expected" if not bad
              else f"demo: {bad} step(s) not as expected")
        if keep:
            print(f"kept {tmp}")
        return 1 if bad else 0
    finally:
        pg.stop()
        if tmp and not keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
