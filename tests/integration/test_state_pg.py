"""The state store in PostgreSQL ("state": "postgresql://...", README "The
state store", PostgreSQL): the state unit tests on it, the engine's main
paths, two processes on one store (the run lock), the store lost mid-run,
a store that cannot be reached, a missing grant.  Every store is a fresh
database of the session cluster (conftest.py pg_state); the password in
its URL is never printed.
"""

import json
import os
import re
import signal
import subprocess

import pytest

from conftest import REPO_DIR
from crashpoint import start_paused
from waiting import wait_for

PASSWORD = "s3cr3t-pw"
UNIT_TESTS = ["test_state", "test_state_identity", "test_state_stats"]


def model(db, n, table="m"):
    db.psql(f"CREATE TABLE {table} (id int PRIMARY KEY, email text, "
            f"name text); INSERT INTO {table} SELECT g, 'u' || g || "
            f"'@example.com', 'n' || g FROM generate_series(1, {n}) g")


def model_rows(db, table="m"):
    out = db.psql(f"SELECT id, email, name FROM {table} ORDER BY id", "-At",
                  "-F", "\t")
    return {int(i): {"email": e, "name": n} for i, e, n in
            (line.split("\t") for line in out.splitlines())}


def destination(p):
    """The file destination's records: the last line of each key wins, a
    removal deletes it."""
    recs = {}
    for line in p.read_jsonl():
        key = int(line["key"])
        if line["op"] == "remove":
            recs.pop(key, None)
        else:
            recs[key] = {"email": line["payload"]["email"],
                         "name": line["payload"]["name"]}
    return recs


def sync_project(project, db, state):
    p = project(dsn=db.dsn, state=state)
    p.add_mapping("s", {
        "source": "warehouse", "query": "SELECT id, email, name FROM m",
        "key": "id", "destination": "out", "mode": "mirror",
        "on_remove": "delete", "fields": {"email": "email", "name": "name"},
        "safety": {"max_removed_ratio": 1.0}})
    return p


def no_secret(*texts):
    for t in texts:
        assert PASSWORD not in t, t


def state_db(url):
    return url.split("@/", 1)[1].split("?", 1)[0]


@pytest.mark.parametrize("unit", UNIT_TESTS)
def test_state_unit_tests_on_postgresql(pg_state, unit):
    """The state module's unit tests (ASan build), run against a store in
    PostgreSQL instead of the file"""
    rc = subprocess.run(["make", "-s", f"build/asan/{unit}"], cwd=REPO_DIR,
                        capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr[-3000:]
    res = subprocess.run([os.path.join(REPO_DIR, "build", "asan", unit)],
                         env=dict(os.environ, RETL_TEST_STATE_URL=pg_state()),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert " 0 failed" in res.stdout + res.stderr


def test_sync_on_postgresql_state(project, db, pg_state):
    """first run, changes, removals, an unchanged run; the reports read
    the PostgreSQL store; nothing local but .retl/"""
    model(db, 3000)
    url = pg_state(PASSWORD)
    p = sync_project(project, db, url)
    rc, out, err = p.run("run", "s")
    assert rc == 0, err
    no_secret(out, err)
    assert destination(p) == model_rows(db)

    db.psql("UPDATE m SET name = 'changed' WHERE id % 7 = 0;"
            "DELETE FROM m WHERE id % 11 = 0;"
            "INSERT INTO m SELECT g, 'v' || g || '@example.com', 'new' "
            "FROM generate_series(5001, 5100) g")
    rc, out, err = p.run("run", "s")
    assert rc == 0, err
    assert destination(p) == model_rows(db)
    rc, out, err = p.run("run", "s")
    assert rc == 0, err
    assert re.search(r"unchanged +(\d+)", out).group(1) == \
        str(len(model_rows(db))), out

    rc, out, err = p.run("history", "s")
    assert rc == 0, err
    assert len([line for line in out.splitlines()[1:] if " ok " in line]) == 3
    rc, out, err = p.run("status")
    assert rc == 0 and out.splitlines()[1].startswith("s "), out + err
    rc, out, err = p.run("failures", "s")
    assert rc == 0, err
    no_secret(out, err)

    # the rows are in the database; locally only the cache image
    cached = db.cluster.psql("SELECT count(*) FROM retl.cache", "-At",
                             dbname=state_db(url)).strip()
    assert int(cached) == len(model_rows(db))
    assert not os.path.exists(p.path("state"))
    assert os.listdir(p.path(".retl")) == ["pgstate.s.cache"]


def test_second_run_refused_while_first_holds_the_lock(project, db, pg_state,
                                                       tmp_path):
    """two processes on one store: the second run is refused while the
    first holds the lock; kill -9 frees it, and the next holder records the
    dead run abandoned"""
    model(db, 100)
    url = pg_state(PASSWORD)
    p = sync_project(project, db, url)
    argv = [p.retl_bin, "--config", p.dir, "run", "s"]
    with open(tmp_path / "first.err", "w+b") as ferr:
        first = start_paused(argv, "run-begun", 1, stderr=ferr)
    try:
        rc, out, err = p.run("run", "s")
        assert rc == 2, err
        assert (f"sync s is already running (host {os.uname().nodename}, "
                f"pid {first.pid})") in err
        no_secret(out, err)
        rc, out, err = p.run("status")
        assert rc == 0 and " running " in out, out + err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the server ends the killed process's session, and its lock with it
    wait_for(lambda: db.cluster.psql(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", "-At",
        dbname=state_db(url)).strip() == "0", 60, "the lock to be released")
    rc, out, err = p.run("run", "s")
    assert rc == 0, err
    assert destination(p) == model_rows(db)
    rc, out, err = p.run("history", "s")
    assert "abandoned" in out.splitlines()[2], out


def test_store_lost_mid_run(project, db, pg_state, tmp_path):
    """the store's connection ends during the sends: exit 6 with the store
    named (no password); what was acknowledged stays, and the next run
    ends with the destination equal to the model"""
    model(db, 5000)
    url = pg_state(PASSWORD)
    p = sync_project(project, db, url)
    argv = [p.retl_bin, "--config", p.dir, "run", "s"]
    with open(tmp_path / "run.err", "w+b") as ferr:
        proc = start_paused(argv, "batch-commit", 2, stderr=ferr)
        killed = db.cluster.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{state_db(url)}'", "-At").strip()
        assert killed == "1"
        proc.send_signal(signal.SIGCONT)
        proc.wait(timeout=300)
        ferr.seek(0)
        err = ferr.read().decode()
    assert proc.returncode == 6, err
    assert f"state store postgresql://postgres@/{state_db(url)}: " in err
    no_secret(err)
    # the first batch was committed before the store went
    acked = db.cluster.psql("SELECT count(*) FROM retl.cache WHERE status = 1",
                            "-At", dbname=state_db(url)).strip()
    assert int(acked) == 2000
    rc, out, err = p.run("run", "s")
    assert rc == 0, err
    assert destination(p) == model_rows(db)
    rc, out, err = p.run("history", "s")
    assert "abandoned" in out.splitlines()[2], out


def test_store_unreachable(project, db, pg):
    """nothing listens at the URL: exit 6, the URL without its password"""
    url = (f"postgresql://postgres:{PASSWORD}@/nosuch?host={pg.sockdir}"
           f"&port=1")
    p = sync_project(project, db, url)
    for args in (("run", "s"), ("status",)):
        rc, out, err = p.run(*args)
        assert rc == 6, err
        assert "state store postgresql://postgres@/nosuch: cannot connect" \
            in err, err
        no_secret(out, err)


def test_store_url_from_environment(project, db, pg_state):
    """"state": "${VAR}" reads the URL from the environment"""
    model(db, 10)
    p = sync_project(project, db, "${RETL_STATE_URL}")
    rc, out, err = p.run("run", "s", env={"RETL_STATE_URL": pg_state(PASSWORD)})
    assert rc == 0, err
    no_secret(out, err)
    rc, out, err = p.run("run", "s", env={"RETL_STATE_URL": None})
    assert rc == 2 and "RETL_STATE_URL is not set" in err, err


def test_missing_grant_is_named(project, db, pg_state, pg):
    """a role that may not create the schema: exit 2 and the GRANT that
    fixes it; granted, the store is made"""
    model(db, 10)
    url = pg_state()
    name = state_db(url)
    pg.psql("DROP ROLE IF EXISTS retl_nogrant; CREATE ROLE retl_nogrant "
            "LOGIN")
    try:
        user_url = url.replace("postgres@", "retl_nogrant@")
        p = sync_project(project, db, user_url)
        rc, out, err = p.run("run", "s")
        assert rc == 2, err
        assert (f"GRANT CREATE ON DATABASE {name} TO retl_nogrant" in err), err
        pg.psql(f"GRANT CREATE ON DATABASE {name} TO retl_nogrant")
        rc, out, err = p.run("run", "s")
        assert rc == 0, err
    finally:
        pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE); "
                "DROP ROLE IF EXISTS retl_nogrant", check=False)



def test_schema_named_by_the_url_options(project, db, pg_state, tmp_path):
    """options=-csearch_path=NAME puts the store in schema NAME: two stores
    in one database are independent, their locks too"""
    model(db, 50)
    url = pg_state(PASSWORD)
    other = url + "&options=-csearch_path%3Dsales_retl"
    p = sync_project(project, db, url)
    q = sync_project(project, db, other)
    argv = [p.retl_bin, "--config", p.dir, "run", "s"]
    with open(tmp_path / "first.err", "w+b") as ferr:
        first = start_paused(argv, "run-begun", 1, stderr=ferr)
    try:
        rc, out, err = q.run("run", "s")
        assert rc == 0, err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    counts = db.cluster.psql(
        "SELECT (SELECT count(*) FROM sales_retl.cache), "
        "(SELECT count(*) FROM retl.cache)", "-At",
        dbname=state_db(url)).strip()
    assert counts == "50|0"
    bad = url + "&options=-csearch_path%3DBad"
    r = sync_project(project, db, bad)
    rc, out, err = r.run("run", "s")
    assert rc == 2 and "must be a lower-case name" in err, err


def test_daemon_on_postgresql_state(project, db, pg_state):
    """retl daemon with the state in PostgreSQL: scheduled runs recorded
    there, /metrics counting them (its own connection), /healthz's probe"""
    from test_daemon import Daemon
    model(db, 20)
    url = pg_state(PASSWORD)
    p = sync_project(project, db, url)
    d = dict(json.load(open(p.path("mappings", "s.json"))), schedule="every 2s")
    p.add_mapping("s", d)
    daemon = Daemon(p)
    try:
        def ok_runs():
            return int(db.cluster.psql(
                "SELECT count(*) FROM retl.runs WHERE status = 'ok'", "-At",
                dbname=state_db(url)).strip() or 0)
        wait_for(lambda: ok_runs() >= 2, 120, "two scheduled runs recorded",
                 daemon.text)

        def still():
            m1 = daemon.metrics()
            n = ok_runs()
            m2 = daemon.metrics()
            key = ("retl_runs_total", (("status", "ok"), ("sync", "s")))
            return m1.get(key) == m2.get(key) and (m1.get(key), n)
        got, n = wait_for(still, 60, "the run count to hold for a scrape")
        assert got == n
        assert daemon.get("/healthz") == (200, "ok\n")
        assert daemon.stop() == 0, daemon.text()
        no_secret(daemon.text())
    finally:
        daemon.kill()
    assert destination(p) == model_rows(db)
