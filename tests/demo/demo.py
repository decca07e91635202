#!/usr/bin/env python3
"""demo.py - `make demo`: retl end to end against a throwaway PostgreSQL.

Starts a private PostgreSQL cluster (tests/pgcluster.py), fills
analytics.customers with 5,000 generated rows (three of them deliberately
odd: a NULL email, which is sent as null, and two emails that fail the
mapping's `match` and are rejected on every run), starts the emulators of
HubSpot, Salesforce, Mailchimp and Airtable and a webhook receiver
(tests/emulators, in this process, on loopback), copies the example project
(the top-level retl.json and mappings/) to a temp folder with each
destination pointed at its emulator (base_url; the secrets are the
emulators' test credentials, given in the environment as in production),
and runs, printing each command:

    retl check                  config, connection, query, columns
    retl plan customers         what a first run would send
    retl run --all              first run: every good row is sent
    retl run --all              nothing changed: 0 sent
    (UPDATE 10 rows, DELETE 5 rows)
    retl run --all              only those 15 changes are sent
    retl status / failures customers / history customers

checks that each emulator holds the rows of its sync's model, then shows
the tail of the output file.  The cluster, the emulators and the temp folder
are removed at the end whatever happens (RETL_DEMO_KEEP=1 keeps the folder),
and so is the system user the cluster runs as when we are root
(tests/pgcluster.py creates `retlpg`) if this demo created it.

tests/rootfs/check.py runs the same steps (run_demo) with retl inside a
rebuilt root of the Docker image, as the image's user.

Exit status: 0 when every step exited as expected (runs exit 1 here, because
the bad rows are rejected on every run), 1 otherwise.
"""

import json
import os
import pwd
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

from pgcluster import PgCluster, SERVICE_USER  # noqa: E402
import airtable  # noqa: E402
import hubspot  # noqa: E402
import mailchimp  # noqa: E402
import salesforce  # noqa: E402
import webhook_receiver  # noqa: E402

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


# the emulators' test credentials, in the environment variables the example
# project's retl.json names (as real secrets would be)
MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us6"
SECRETS = {
    "HUBSPOT_TOKEN": "test-token",
    "SF_CLIENT_ID": "retl-client",
    "SF_CLIENT_SECRET": "retl-secret",
    "SF_REFRESH_TOKEN": "retl-refresh",
    "MAILCHIMP_KEY": MAILCHIMP_KEY,
    "AIRTABLE_TOKEN": "test-token",
    "WEBHOOK_SECRET": "demo-signing-secret",
}


def control(url, path):
    with urllib.request.urlopen(url + "/_emulator/" + path, timeout=30) as r:
        return json.loads(r.read() or b"null")


class Emulators:
    """one emulator per destination, in this process, on 127.0.0.1"""

    def __init__(self, airtable_penalty=None):
        self.servers = []
        self.urls = {}
        # Airtable's 30 s wait after a 429 (the emulator's default), or
        # shorter for a test
        self.airtable = {} if airtable_penalty is None else {"penalty": airtable_penalty}

    def start(self):
        for name, mod, knobs in (
                ("hubspot", hubspot, {"rate": "1000/10s"}),
                ("salesforce", salesforce, {}),
                ("mailchimp", mailchimp, {"api_key": MAILCHIMP_KEY}),
                ("airtable", airtable, self.airtable),
                ("webhook", webhook_receiver, {"secret": SECRETS["WEBHOOK_SECRET"]})):
            server, url = mod.start(port=0, **knobs)
            self.servers.append(server)
            self.urls[name] = url
        return self

    def stop(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()
        self.servers = []

    def point(self, conf):
        """retl.json's destinations aimed at the emulators (base_url; the
        Airtable base and the webhook URL the emulators serve)"""
        d = conf["destinations"]
        u = self.urls
        d["hubspot"]["base_url"] = u["hubspot"]
        d["salesforce"]["base_url"] = u["salesforce"]
        d["salesforce"]["login_url"] = u["salesforce"]
        d["mailchimp"]["base_url"] = u["mailchimp"] + "/3.0"
        d["airtable"]["base_url"] = u["airtable"]
        d["airtable"]["base"] = airtable.DEFAULT_BASE
        if "penalty" in self.airtable:   # retl waits as long as the emulator
            d["airtable"]["rate_limit_penalty"] = self.airtable["penalty"]
        d["webhook"]["url"] = u["webhook"] + "/hooks/retl"
        return conf

    def held(self, sync):
        """how many records the destination of the example sync holds"""
        u = self.urls
        if sync == "hubspot_contacts":
            return len(control(u["hubspot"], "records/contacts")["results"])
        if sync == "salesforce_contacts":
            return len(control(u["salesforce"], "records/Contact")["records"])
        if sync == "mailchimp_members":
            return len(control(u["mailchimp"], "members/" + mailchimp.DEFAULT_LIST)["members"])
        if sync == "airtable_people":
            return len(control(u["airtable"],
                               f"records/{airtable.DEFAULT_BASE}/People")["records"])
        if sync == "webhook_churn":
            return len(control(u["webhook"], "state").get(sync, {}))
        raise KeyError(sync)


EMULATED = ("hubspot_contacts", "salesforce_contacts", "mailchimp_members",
            "airtable_people", "webhook_churn")


def copy_project(dest, emulators):
    """the example project (top-level retl.json + mappings/) into dest,
    pointed at the emulators"""
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(REPO, "retl.json"), encoding="utf-8") as f:
        conf = json.load(f)
    with open(os.path.join(dest, "retl.json"), "w", encoding="utf-8") as f:
        json.dump(emulators.point(conf), f, indent=2)
        f.write("\n")
    shutil.copytree(os.path.join(REPO, "mappings"), os.path.join(dest, "mappings"))


def model_count(pg, sync):
    with open(os.path.join(REPO, "mappings", sync + ".json"), encoding="utf-8") as f:
        query = json.load(f)["query"]
    return int(pg.scalar(f"SELECT count(*) FROM ({query}) q"))


class Demo:
    def __init__(self, argv0, env, cwd):
        self.argv0 = argv0      # retl and its --config, or a wrapper
        self.env = env
        self.cwd = cwd
        self.results = []     # (label, expected, got, ok)

    def retl_step(self, args, expected, note=""):
        """Runs `retl --config DIR args`; expected is a set of exit codes."""
        shown = "retl " + " ".join(args)
        banner(f"$ {shown}" + (f"   {DIM}# {note}{RESET}" if note else ""))
        try:
            rc = subprocess.run(self.argv0 + list(args), env=self.env, cwd=self.cwd,
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

    def summary(self):
        banner("summary")
        bad = 0
        for label, exp, got, ok in self.results:
            mark = "ok " if ok else "BAD"
            exp_txt = f" (expected {exp})" if exp else ""
            print(f"  {mark} {label}: {got}{exp_txt}")
            bad += not ok
        print("demo: all steps as expected" if not bad
              else f"demo: {bad} step(s) not as expected")
        return bad


def check_destinations(demo, pg, emulators, note):
    for sync in EMULATED:
        want, got = model_count(pg, sync), emulators.held(sync)
        demo.check(f"{sync}: records in its emulator {note}", got == want,
                   f"{got} (model has {want} rows)")


def run_demo(pg, emulators, demo, data_dir):
    """The demo's steps against a loaded cluster and running emulators:
    retl is demo.argv0; data_dir is where its project writes (out/)"""
    out = os.path.join(data_dir, "out", "customers.jsonl")
    vip = os.path.join(data_dir, "out", "segment_vip.jsonl")

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
    check_destinations(demo, pg, emulators, "after the first run")

    demo.retl_step(["run", "--all"], {1}, "nothing changed: 0 sent")
    n2 = count_lines(out)
    demo.check("new lines after the unchanged run", n2 == n1,
               f"{n2 - n1}")

    banner(f"changing the warehouse: UPDATE {len(UPDATED)} rows, "
           f"DELETE {len(DELETED)} rows")
    print(CHANGE_SQL.strip())
    # upsert syncs keep what the model drops (only mirror syncs remove)
    before = {s: emulators.held(s) for s in EMULATED}
    pg.psql(CHANGE_SQL)

    demo.retl_step(["run", "--all"], {1}, "only the 15 changes are sent")
    n3 = count_lines(out)
    demo.check("new lines after the change",
               n3 - n2 == len(UPDATED) + len(DELETED),
               f"{n3 - n2} (expected {len(UPDATED)} upserts + "
               f"{len(DELETED)} removes)")
    for sync in EMULATED:
        got = emulators.held(sync)
        if sync == "webhook_churn":     # mirror: the deleted rows go
            want, what = model_count(pg, sync), "model has"
        else:
            want, what = before[sync], "before the change"
        demo.check(f"{sync}: records after the change", got == want,
                   f"{got} ({what} {want})")

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


def load_warehouse(pg):
    banner("starting a throwaway PostgreSQL cluster")
    t0 = time.time()
    pg.start()
    print(f"{pg.dsn}  ({time.time() - t0:.1f}s)")
    banner(f"creating analytics.customers ({ROWS} rows; a NULL email, 2 invalid)")
    pg.psql(SCHEMA_SQL)
    print(pg.psql("SELECT id, email, plan, mrr FROM analytics.customers "
                  "ORDER BY id LIMIT 5"), end="")


class ServiceUser:
    """The system user the cluster runs as when we are root: removed at the
    end if we created it (the demo leaves nothing behind)"""

    def __init__(self):
        self.created = False

    def __enter__(self):
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SERVICE_USER)
            except KeyError:
                self.created = True
        return self

    def __exit__(self, *exc):
        if self.created:
            try:
                pwd.getpwnam(SERVICE_USER)
            except KeyError:
                return False
            res = subprocess.run(["userdel", SERVICE_USER], capture_output=True, text=True)
            print(f"removed the system user {SERVICE_USER}" if res.returncode == 0 else
                  f"userdel {SERVICE_USER} failed: {res.stderr.strip()}")
        return False


def main():
    retl_bin = os.environ.get("RETL_BIN") or os.path.join(REPO, "retl")
    if not os.access(retl_bin, os.X_OK):
        print(f"demo: {retl_bin} not found; run `make retl` first",
              file=sys.stderr)
        return 2

    keep = os.environ.get("RETL_DEMO_KEEP") == "1"
    tmp = None
    with ServiceUser():
        pg = PgCluster()
        emulators = Emulators()
        try:
            load_warehouse(pg)
            banner("starting the emulators (HubSpot, Salesforce, Mailchimp, Airtable, webhook)")
            emulators.start()
            for name, url in emulators.urls.items():
                print(f"{name:11} {url}")
            tmp = tempfile.mkdtemp(prefix="retl-demo-")
            project = os.path.join(tmp, "project")
            copy_project(project, emulators)
            print(f"project copied to {project}")
            env = dict(os.environ, WAREHOUSE_URL=pg.dsn, **SECRETS)
            demo = Demo([retl_bin, "--config", project], env, project)
            run_demo(pg, emulators, demo, project)
            bad = demo.summary()
            if keep:
                print(f"kept {tmp}")
            return 1 if bad else 0
        finally:
            emulators.stop()
            pg.stop()
            if tmp and not keep:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
