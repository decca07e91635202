"""Sync logs in the warehouse (issue 19, third bullet; README "Sync logs in
the warehouse"): a source's "audit" schema gets every run and every row's
outcome, checked against the state store with audit_check.py.

Real parts only: the session's PostgreSQL cluster is the warehouse, the
HubSpot emulator (per-record rejections, latency for a kill mid-push) the
destination, the built binary the writer.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import crashpoint  # noqa: E402
import hubspot  # noqa: E402
from audit_check import assert_audit_complete, query  # noqa: E402
from emulator_control import control  # noqa: E402
from waiting import wait_for  # noqa: E402

TOKEN = "pat-na1-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ENV = {"HUBSPOT_TOKEN": TOKEN}
SCHEMA = "retl_audit"


@pytest.fixture
def emulator():
    server, url = hubspot.start(port=0, tokens=[TOKEN], rate="10000/10s")
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def records(url):
    return control(url, "records/contacts")["results"]


def people(db, n, start=1):
    db.psql(f"""
        CREATE TABLE IF NOT EXISTS people (id int PRIMARY KEY, email text,
                                           first text);
        INSERT INTO people SELECT i, 'person' || i || '@example.com',
               'First' || i FROM generate_series({start}, {start + n - 1}) i;
    """)


def audit_project(project, db, url=None, dsn=None, **source):
    src = dict({"type": "postgres", "dsn": dsn or db.dsn, "audit": SCHEMA},
               **source)
    dests = {"hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}",
                    "base_url": url, "requests_per_10s": 10000}} if url else None
    p = project(sources={"warehouse": src}, destinations=dests)
    m = {"source": "warehouse", "query": "SELECT id, email, first FROM people",
         "key": "id"}
    if url:
        m.update({"destination": "hs", "object": "contacts", "mode": "mirror",
                  "on_remove": "archive", "match": {"email": "email"},
                  "safety": {"max_removed_ratio": 1},
                  # a first name not starting "First" is refused by the
                  # mapping (a rejected row, never sent)
                  "fields": {"email": "email", "firstname": {
                      "from": "first", "transform": [{"match": "^First"}]}}})
    else:
        m.update({"destination": "out", "fields": {"email": "email"}})
    p.add_mapping("people", m)
    return p


def rows_of(db, run_number, sync="people"):
    return query(db, f"SELECT o.key, o.operation, o.status, o.error FROM "
                     f"{SCHEMA}.row_outcomes o JOIN {SCHEMA}.runs r USING "
                     f"(run_id) WHERE r.run_number = {run_number} AND "
                     f"r.sync = '{sync}'")


def kill_midway(p, url, at_least):
    argv = [p.retl_bin, "--config", p.dir, "run", "people"]
    proc = subprocess.Popen(argv, env=dict(os.environ, **ENV),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def held():
        assert proc.poll() is None, "the run ended before it could be killed"
        return len(records(url)) >= at_least
    try:
        wait_for(held, 120, f"{at_least} records at the emulator")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()


def test_audit_equals_the_store_through_rejections_a_kill_and_removals(
        project, db, emulator):
    url = emulator
    people(db, 300)
    db.psql("UPDATE people SET first = 'bad' WHERE id = 5;"
            "UPDATE people SET email = 'not-an-email@' WHERE id = 7")
    p = audit_project(project, db, url)

    # 1: one row refused by the mapping, one by HubSpot
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    assert "warning" not in out, out
    assert_audit_complete(p, db, SCHEMA, ["people"], env=ENV)
    got = {(r["key"], r["status"]) for r in rows_of(db, 1)}
    assert ("5", "rejected") in got and ("7", "failed") in got
    assert sum(1 for r in rows_of(db, 1) if r["operation"] == "added") == 298
    assert any("INVALID_EMAIL" in (r["error"] or "") for r in rows_of(db, 1))

    # 2: killed mid-push; written by the next run, as abandoned
    people(db, 3000, start=301)
    control(url, "config", {"latency": 0.05})
    kill_midway(p, url, at_least=1300)
    control(url, "config", {"latency": 0})
    assert query(db, f"SELECT run_number FROM {SCHEMA}.runs "
                     f"WHERE run_number = 2") == []

    # 3: removals, and the rest of run 2's rows
    db.psql("DELETE FROM people WHERE id BETWEEN 10 AND 19")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    runs = assert_audit_complete(p, db, SCHEMA, ["people"], env=ENV)
    assert runs[("people", 2)]["status"] == "abandoned"
    assert runs[("people", 2)]["exit_code"] is None
    assert len(rows_of(db, 2)) > 0          # what it synced before the kill
    removed = {r["key"] for r in rows_of(db, 3) if r["operation"] == "removed"}
    assert removed == {str(i) for i in range(10, 20)}

    # 4: the two rows fixed: synced, the audit still whole
    db.psql("UPDATE people SET first = 'First5' WHERE id = 5;"
            "UPDATE people SET email = 'person7@example.com' WHERE id = 7")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert_audit_complete(p, db, SCHEMA, ["people"], env=ENV)
    # and the record row 7's old email may have made is removed (mirror)
    assert {(r["key"], r["operation"]) for r in rows_of(db, 4)} == {
        ("5", "retried"), ("7", "retried"),
        ('(record matched by "not-an-email@")', "removed")}

    # a lost mark (the warehouse committed, the store did not note it):
    # the runs are found written, and neither doubled nor written again
    # from a store that has moved on (rows 10-19 are forgotten there)
    before = query(db, f"SELECT count(*) AS n FROM {SCHEMA}.row_outcomes")
    con = sqlite3.connect(p.path("state", "retl.db"))
    con.execute("UPDATE runs SET audited = 0 WHERE id IN (1, 3)")
    con.commit()
    con.close()
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert_audit_complete(p, db, SCHEMA, ["people"], env=ENV)
    after = query(db, f"SELECT count(*) AS n FROM {SCHEMA}.row_outcomes")
    assert after == before                  # run 5 synced nothing


def test_warehouse_down_at_write_time_is_a_warning_and_written_later(
        project, db):
    people(db, 50)
    p = audit_project(project, db)
    argv = [p.retl_bin, "--config", p.dir, "run", "people"]
    with tempfile.TemporaryFile() as err:
        # the run has ended and is recorded; the warehouse goes away
        proc = crashpoint.start_paused(argv, "run-recorded", 1, stderr=err)
        try:
            db.cluster.psql(f"ALTER DATABASE {db.name} ALLOW_CONNECTIONS false")
            proc.send_signal(signal.SIGCONT)
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            db.cluster.psql(f"ALTER DATABASE {db.name} ALLOW_CONNECTIONS true")
        err.seek(0)
        text = err.read().decode()
    assert proc.returncode == 0, text
    assert "sync logs not written, a later run writes them: audit retl_audit: " \
           "cannot connect" in text, text
    assert len(p.read_jsonl()) == 50
    assert db.scalar(f"SELECT to_regclass('{SCHEMA}.runs') IS NULL") == "t"

    # the next run writes both
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    assert "warning" not in out
    runs = assert_audit_complete(p, db, SCHEMA, ["people"])
    assert sorted(n for _, n in runs) == [1, 2]
    assert len(rows_of(db, 1)) == 50


def test_killed_between_the_warehouse_and_the_store_nothing_twice(project, db):
    people(db, 40)
    p = audit_project(project, db)
    argv = [p.retl_bin, "--config", p.dir, "run", "people"]
    # run 1's logs committed in the warehouse, the store not told
    crashpoint.run_and_kill_at(argv, "audit-written", 1)
    assert len(rows_of(db, 1)) == 40
    con = sqlite3.connect(p.path("state", "retl.db"))
    assert con.execute("SELECT audited FROM runs WHERE id = 1").fetchone() == (0,)
    con.close()

    db.psql("UPDATE people SET email = 'z' || email WHERE id <= 3")
    rc, out, err = p.run("run", "people")
    assert rc == 0 and "warning" not in out, (out, err)
    runs = assert_audit_complete(p, db, SCHEMA, ["people"])
    assert sorted(n for _, n in runs) == [1, 2]
    assert len(rows_of(db, 1)) == 40 and len(rows_of(db, 2)) == 3
    con = sqlite3.connect(p.path("state", "retl.db"))
    assert con.execute("SELECT audited FROM runs ORDER BY id").fetchall() == \
        [(1,), (1,)]
    con.close()


def test_retention_deletes_older_rows(project, db):
    people(db, 20)
    p = audit_project(project, db)
    assert p.run("run", "people")[0] == 0
    db.psql("UPDATE people SET email = 'x' || email WHERE id <= 5")
    assert p.run("run", "people")[0] == 0
    assert len(rows_of(db, 1)) == 20 and len(rows_of(db, 2)) == 5
    # run 1 is made 91 days old: past the default 90 days
    db.psql(f"UPDATE {SCHEMA}.runs SET started_at = started_at - "
            f"interval '91 days' WHERE run_number = 1;"
            f"UPDATE {SCHEMA}.row_outcomes SET recorded_at = recorded_at - "
            f"interval '91 days' WHERE run_id LIKE '%:1'")
    assert p.run("run", "people")[0] == 0
    numbers = [r["run_number"] for r in
               query(db, f"SELECT run_number FROM {SCHEMA}.runs")]
    assert sorted(numbers) == [2, 3]
    assert rows_of(db, 1) == [] and len(rows_of(db, 2)) == 5


def test_retention_zero_keeps_everything(project, db):
    people(db, 3)
    p = audit_project(project, db, audit_retention=0)
    assert p.run("run", "people")[0] == 0
    db.psql(f"UPDATE {SCHEMA}.runs SET started_at = started_at - "
            f"interval '3650 days'")
    assert p.run("run", "people")[0] == 0
    assert len(query(db, f"SELECT * FROM {SCHEMA}.runs")) == 2


def test_check_names_the_missing_grant_and_a_run_only_warns(project, db):
    people(db, 5)
    db.psql(f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'auditor') THEN
            CREATE ROLE auditor LOGIN;
          END IF;
        END $$;
        GRANT SELECT ON people TO auditor;
        CREATE SCHEMA {SCHEMA};
        REVOKE CREATE ON DATABASE {db.name} FROM PUBLIC;
    """)
    dsn = db.dsn.replace("user=postgres", "user=auditor")
    assert dsn != db.dsn
    p = audit_project(project, db, dsn=dsn)
    rc, out, err = p.run("check", "people")
    assert rc == 3, (out, err)
    assert ("audit retl_audit: cannot create the schema's tables (grant CREATE "
            "on the database, or create the schema and grant CREATE on it): "
            "ERROR:  permission denied for schema retl_audit") in err, err

    # a run syncs all the same, and says the logs wait
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    assert "warning: sync logs not written" in out
    assert "permission denied for schema retl_audit" in out
    assert len(p.read_jsonl()) == 5

    # tables made by an admin, but no INSERT on them: check says so
    db.psql(f"GRANT USAGE, CREATE ON SCHEMA {SCHEMA} TO auditor")
    assert p.run("check", "people")[0] == 0   # creates them as auditor
    db.psql(f"ALTER TABLE {SCHEMA}.runs OWNER TO postgres;"
            f"REVOKE ALL ON {SCHEMA}.runs FROM auditor")
    rc, out, err = p.run("check", "people")
    assert rc == 3, (out, err)
    assert ("audit retl_audit: cannot write its tables (grant SELECT, INSERT "
            "and DELETE on them, and USAGE on the schema): ERROR:  permission "
            "denied for table runs") in err, err

    # ... and a run then: its rows refused, the run waits (not marked
    # written though nothing was)
    db.psql("UPDATE people SET email = 'y' || email WHERE id = 1")
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    assert "warning: sync logs not written" in out
    assert "permission denied for table runs" in out

    db.psql(f"GRANT SELECT, INSERT, DELETE ON {SCHEMA}.runs TO auditor")
    assert p.run("check", "people")[0] == 0
    rc, out, err = p.run("run", "people")
    assert rc == 0 and "warning" not in out, (out, err)
    runs = assert_audit_complete(p, db, SCHEMA, ["people"])
    assert sorted(n for _, n in runs) == [1, 2, 3]
    assert [r["key"] for r in rows_of(db, 2)] == ["1"]


@pytest.mark.parametrize("value, msg", [
    ('"Retl-Audit"', 'invalid schema name "Retl-Audit"'),
    ('"1abc"', 'invalid schema name "1abc"'),
])
def test_a_bad_schema_name_is_a_config_error(project, db, value, msg):
    p = audit_project(project, db)
    with open(p.path("retl.json")) as f:
        text = f.read().replace(f'"{SCHEMA}"', value)
    with open(p.path("retl.json"), "w") as f:
        f.write(text)
    rc, out, err = p.run("check", "people")
    assert rc == 2, (out, err)
    assert "sources.warehouse.audit" in err and msg in err, err


def test_audit_retention_needs_audit(project, db):
    p = project(sources={"warehouse": {"type": "postgres", "dsn": db.dsn,
                                       "audit_retention": "30d"}})
    p.add_mapping("people", {"source": "warehouse", "query": "SELECT 1 AS id",
                             "key": "id", "destination": "out",
                             "fields": {"id": "id"}})
    rc, out, err = p.run("check", "people")
    assert rc == 2 and "audit_retention without audit" in err, err


# ---- Done when 3 on the invariant's scenarios -------------------------------

from emulator_control import running  # noqa: E402
from invariant import scenario  # noqa: E402
from test_invariant import HS_TOKEN, HubSpotDest  # noqa: E402


class AuditedHubSpot(HubSpotDest):
    """test_invariant's HubSpot adapter with the source's "audit" set"""

    def project(self, project, db):
        self.p = super().project(project, db)
        with open(self.p.path("retl.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        cfg["sources"]["warehouse"]["audit"] = SCHEMA
        self.p.write_config(cfg)
        return self.p


@pytest.fixture
def hs_inv():
    yield from running(hubspot, tokens=[HS_TOKEN], rate="100000/10s")


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_audit_holds_every_run_of_an_invariant_scenario(project, db, hs_inv,
                                                        seed):
    # random model changes, faults (5xx, answers lost) and kills at random
    # moments, some while the logs are being written
    adapter = AuditedHubSpot(hs_inv)
    scenario(adapter, db, project, seed)
    runs = assert_audit_complete(adapter.p, db, SCHEMA, ["inv"],
                                 env=adapter.env)
    assert runs       # every run the store has, checked one by one


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_keys_and_reasons_with_any_text_arrive_as_stored(project, db, kind):
    """COPY's text format on PostgreSQL, quoted literals on the Redshift
    path (multi-row INSERT; the type alone chooses it here): tabs,
    newlines, backslashes, quotes and non-ASCII in keys and reasons"""
    db.psql(r"""
        CREATE TABLE odd (k text PRIMARY KEY, v text);
        INSERT INTO odd VALUES (E'a\tb', 'ok'), (E'c\nd', 'ok'),
            (E'e\\f', 'ok'), ('g''h', 'ok'), ('ñ€😀', 'ok'),
            ('\N', 'ok'), (E'bad\t1', E'no\\pe\nx'), ('bad2', 'ü''"');
    """)
    p = project(sources={"warehouse": {"type": kind, "dsn": db.dsn,
                                       "audit": SCHEMA}})
    p.add_mapping("odd", {
        "source": "warehouse", "query": "SELECT k, v FROM odd", "key": "k",
        "destination": "out",
        "fields": {"v": {"from": "v", "transform": [{"match": "^ok$"}]}}})
    rc, out, err = p.run("run", "odd")
    assert rc == 1, (out, err)
    assert "warning" not in out, out
    assert_audit_complete(p, db, SCHEMA, ["odd"])
    got = {r["key"]: r for r in rows_of(db, 1, sync="odd")}
    assert len(got) == 8
    rejected = sorted(k for k, r in got.items() if r["status"] == "rejected")
    assert len(rejected) == 2
    assert all("\\pe\nx" in got[k]["error"] or "ü'\"" in got[k]["error"]
               for k in rejected), [got[k]["error"] for k in rejected]
