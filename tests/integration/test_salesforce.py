"""The Salesforce destination against the emulator (tests/emulators/salesforce.py).

Issue 4, "Done when": 1,000 Contacts upserted through sObject Collections in 5
requests and a re-run spending none; 25,000 rows through one Bulk API 2.0 job with
3 bad rows reported from failedResults; a session expiring mid-run; the daily API
reserve stopping a run (exit 4) and the next run sending the rest; SIGKILL during a
bulk job and a re-run that polls the same job instead of uploading again; mirror
deleting removed rows by stored Id; `retl check` listing every problem at once; the
JWT bearer flow with a key pair made by the test.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import salesforce  # noqa: E402
from emulator_control import control  # noqa: E402
from waiting import wait_for  # noqa: E402

ENV = {"SF_CLIENT_ID": "retl-client", "SF_CLIENT_SECRET": "retl-secret",
       "SF_REFRESH_TOKEN": "retl-refresh"}


@pytest.fixture
def emulator():
    server, url = salesforce.start(port=0)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def api_requests(url, part):
    return [r for r in control(url, "counters")["requests"] if part in r["path"]]


def records(url):
    return control(url, "records/Contact")["records"]


def make_people(db, n, bad=()):
    db.psql(f"""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, last text);
        INSERT INTO people SELECT i, 'person' || i || '@example.com',
               'First' || i, 'Last' || i FROM generate_series(1, {n}) i;
    """)
    for i in bad:
        db.psql(f"UPDATE people SET last = NULL WHERE id = {i}")


def sf_project(project, db, url, mode="upsert", dest=None, fields=None, **extra):
    d = {"type": "salesforce", "base_url": url, "client_id": "${SF_CLIENT_ID}",
         "client_secret": "${SF_CLIENT_SECRET}", "refresh_token": "${SF_REFRESH_TOKEN}"}
    d.update(dest or {})
    p = project(dsn=db.dsn, destinations={"sf": d})
    m = {"source": "warehouse", "query": "SELECT id, email, first, last FROM people",
         "key": "id", "destination": "sf", "object": "Contact", "mode": mode,
         "match": {"External_Id__c": "id"},
         "fields": fields or {"External_Id__c": {"from": "id", "type": "string"},
                              "Email": "email", "FirstName": "first", "LastName": "last"}}
    m.update(extra)
    p.add_mapping("people", m)
    return p


def assert_model(url, db):
    recs = records(url)
    ext = [r["External_Id__c"] for r in recs]
    assert len(ext) == len(set(ext)), "duplicate records in Salesforce"
    got = {r["External_Id__c"]: (r.get("Email"), r.get("FirstName"), r.get("LastName"))
           for r in recs}
    want = {}
    for line in db.psql("SELECT id, email, first, last FROM people WHERE last IS NOT NULL",
                        "-At", "-F", "\t").splitlines():
        i, e, f, last = line.split("\t")
        want[i] = (e, f, last)
    assert got == want


def cache(p):
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return con.execute("SELECT key, status, dest_id, last_error FROM cache "
                           "ORDER BY key").fetchall()
    finally:
        con.close()


def test_collections_1000_then_rerun(project, db, emulator):
    make_people(db, 1000)
    p = sf_project(project, db, emulator)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    assert len(api_requests(emulator, "/composite/sobjects")) == 5
    assert_model(emulator, db)
    rows = cache(p)
    assert len(rows) == 1000 and all(r[1] == 1 and r[2].startswith("003") for r in rows)
    control(emulator, "reset", {})  # counters only matter; records go too
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    assert api_requests(emulator, "/composite/") == []


def test_bulk_25000_with_three_bad_rows(project, db, emulator):
    make_people(db, 25000, bad=(7, 12001, 24999))
    p = sf_project(project, db, emulator)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, out + err
    jobs = control(emulator, "jobs")["jobs"]
    assert len(jobs) == 1 and jobs[0]["operation"] == "upsert"
    assert api_requests(emulator, "/composite/") == []
    rows = cache(p)
    failed = {r[0]: r[3] for r in rows if r[1] == 2}
    assert set(failed) == {"7", "12001", "24999"}
    assert all("REQUIRED_FIELD_MISSING" in v for v in failed.values())
    ok = [r for r in rows if r[1] == 1]
    assert len(ok) == 24997 and all(r[2] and r[2].startswith("003") for r in ok)
    assert_model(emulator, db)
    rc, out, err = p.run("failures", "people", env=ENV)
    assert "REQUIRED_FIELD_MISSING" in out


def test_session_expiry_mid_run(project, db, emulator):
    make_people(db, 600)
    control(emulator, "config", {"expire_after_calls": 2})
    p = sf_project(project, db, emulator)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    assert control(emulator, "counters")["extra"]["tokens"] == 2
    assert_model(emulator, db)


def test_refused_refresh_exit_4(project, db, emulator):
    make_people(db, 10)
    control(emulator, "config", {"refuse_refresh": True})
    p = sf_project(project, db, emulator)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 4
    assert "expired access/refresh token" in out + err


def test_reserve_stops_run_then_next_run_sends_rest(project, db, emulator):
    make_people(db, 1000)
    # 100 calls a day, 10 reserved: the run stops after a few requests
    control(emulator, "config", {"daily_limit": 100, "usage_start": 87})
    p = sf_project(project, db, emulator)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 4, out + err
    assert "reserve" in out + err and "of 100" in out + err
    acked = {r[0] for r in cache(p) if r[1] == 1}
    assert 0 < len(acked) < 1000
    assert {r["External_Id__c"] for r in records(emulator)} == acked
    control(emulator, "config", {"daily_limit": 100000, "usage_start": 0})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    assert_model(emulator, db)


def test_sigkill_during_bulk_job_then_resume(project, db, emulator):
    make_people(db, 3000)
    control(emulator, "config", {"bulk_delay": 3.0})
    p = sf_project(project, db, emulator, dest={"bulk_threshold": 1000})
    env = dict(os.environ, **ENV)
    proc = subprocess.Popen([p.retl_bin, "--config", p.dir, "run", "people"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    def uploaded():
        assert proc.poll() is None, proc.communicate()
        jobs = control(emulator, "jobs")["jobs"]
        return jobs and jobs[0]["state"] == "UploadComplete"
    try:
        wait_for(uploaded, 60, "the Bulk job's upload to complete")
    finally:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert all(r[1] != 1 for r in cache(p))
    control(emulator, "config", {"bulk_delay": 0.0})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    jobs = control(emulator, "jobs")["jobs"]
    assert len(jobs) == 1, jobs
    uploads = api_requests(emulator, "/batches")
    assert len(uploads) == 1
    assert_model(emulator, db)
    assert all(r[1] == 1 for r in cache(p))


def test_mirror_delete_by_stored_id(project, db, emulator):
    make_people(db, 50)
    p = sf_project(project, db, emulator, mode="mirror", on_remove="delete",
                   safety={"max_removed": 3})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    ids = {r[0]: r[2] for r in cache(p)}
    db.psql("DELETE FROM people WHERE id IN (1, 2)")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    dels = api_requests(emulator, "/composite/sobjects")
    assert any(r["method"] == "DELETE" for r in dels)
    left = {r["Id"] for r in records(emulator)}
    assert ids["1"] not in left and ids["2"] not in left and len(left) == 48
    db.psql("DELETE FROM people WHERE id <= 10")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 5, out + err
    assert "would remove 8 rows, over safety.max_removed (3) by 5: nothing removed" \
        in out + err, (out, err)
    assert len(records(emulator)) == 48
    # the rows that left stay bound to their records, to be removed later
    assert {r[0] for r in cache(p)} == {str(i) for i in range(3, 51)}


def test_mirror_delete_of_a_record_deleted_by_hand(project, db, emulator):
    """A record someone deleted in Salesforce before its row left the model:
    retl's delete is answered ENTITY_IS_DELETED (the record is in the Recycle
    Bin), which is what the delete was for: the row is forgotten, not a
    failure, and nothing is sent for it again."""
    make_people(db, 5)
    p = sf_project(project, db, emulator, mode="mirror", on_remove="delete")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    ids = {r[0]: r[2] for r in cache(p)}
    assert control(emulator, "delete/Contact", {"ids": [ids["2"]]}) == {"deleted": [ids["2"]]}
    db.psql("DELETE FROM people WHERE id = 2")
    n = len(api_requests(emulator, "/composite/"))
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    # the one delete, for the one row, answered for that record
    sent = api_requests(emulator, "/composite/")[n:]
    assert [(r["method"], r["status"], r.get("inputs")) for r in sent] == \
        [("DELETE", 200, 1)], sent
    assert "2" not in {r[0] for r in cache(p)}
    assert sorted(r[0] for r in cache(p)) == ["1", "3", "4", "5"]
    rc, out, err = p.run("failures", "people", env=ENV)
    assert rc == 0, err
    assert out.strip() == "0 rows failing in people", out
    assert_model(emulator, db)
    # the next run has nothing to send
    n = len(api_requests(emulator, "/composite/"))
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    assert api_requests(emulator, "/composite/")[n:] == []


def test_check_lists_every_problem(project, db, emulator):
    make_people(db, 3)
    p = sf_project(project, db, emulator, match={"Legacy_Code__c": "id"},
                   fields={"Legacy_Code__c": {"from": "id", "type": "string"},
                           "LastName": "last", "Nickname__c": "first",
                           "Level__c": {"value": "Platinum"}})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2, out + err
    text = out + err
    assert 'no field "Nickname__c"' in text
    assert "Legacy_Code__c is not an External ID" in text
    assert '"Platinum" is not a value of the picklist' in text


def test_jwt_bearer_flow(project, db, emulator, tmp_path):
    key = tmp_path / "key.pem"
    pub = tmp_path / "pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(key)], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)],
                   check=True, capture_output=True)
    control(emulator, "config", {"jwt_public_key": pub.read_text()})
    make_people(db, 20)
    p = sf_project(project, db, emulator, dest={
        "client_secret": None, "refresh_token": None,
        "private_key": "@file:" + str(key), "username": "integration@example.com"})
    cfg = json.load(open(p.path("retl.json")))
    d = cfg["destinations"]["sf"]
    del d["client_secret"], d["refresh_token"]
    p.write_config(cfg)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    assert control(emulator, "counters")["extra"].get("grant_jwt-bearer") == 1
    assert_model(emulator, db)
    # a key the org does not know is refused: exit 4 with the description
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", str(other)],
                   check=True, capture_output=True)
    d["private_key"] = "@file:" + str(other)
    p.write_config(cfg)
    rc, out, err = p.run("run", "people", "--full-resync", env=ENV)
    assert rc == 4 and "invalid assertion" in out + err


CLEAR_FIELDS = {"External_Id__c": {"from": "id", "type": "string"}, "LastName": "last",
                "FirstName": "first", "Title": "title"}


@pytest.mark.parametrize("path", ["bulk", "collections"])
@pytest.mark.parametrize("mode", ["upsert", "update"])
def test_null_and_empty_clear_the_field(project, db, emulator, path, mode):
    """Issue 11 case 5: a value changed to NULL or '' in the model is cleared in
    Salesforce on every path (Bulk sends #N/A: an empty CSV field would leave the
    old value), and only then is the row recorded as synced."""
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, last text, first text, title text);
        INSERT INTO people SELECT i, 'Last' || i, 'First' || i, 'Title' || i
               FROM generate_series(1, 30) i;
    """)
    dest = {"bulk_threshold": 5} if path == "bulk" else {}
    query = "SELECT id, last, first, title FROM people"
    p = sf_project(project, db, emulator, dest=dest, fields=CLEAR_FIELDS, query=query)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    assert all(r.get("FirstName") and r.get("Title") for r in records(emulator))
    if mode == "update":   # by the Ids the first run stored
        with open(p.path("mappings", "people.json")) as f:
            p.add_mapping("people", dict(json.load(f), mode="update"))
    db.psql("UPDATE people SET first = NULL WHERE id % 3 = 0")
    db.psql("UPDATE people SET title = '' WHERE id % 3 = 1")
    db.psql("UPDATE people SET first = '', title = NULL WHERE id % 3 = 2 AND id > 20")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    if path == "bulk":
        assert [j["operation"] for j in control(emulator, "jobs")["jobs"]][-1] == mode
    else:
        assert control(emulator, "jobs")["jobs"] == []
    got = {r["External_Id__c"]: (r.get("LastName"), r.get("FirstName"), r.get("Title"))
           for r in records(emulator)}
    want = {}
    for line in db.psql("SELECT id, last, coalesce(first, ''), coalesce(title, '') FROM people",
                        "-At", "-F", "\t").splitlines():
        i, last, first, title = line.split("\t")
        want[i] = (last, first or None, title or None)
    assert got == want
    assert all(r[1] == 1 for r in cache(p))
    rc, out, err = p.run("plan", "people", env=ENV)
    assert rc == 0, out + err


@pytest.mark.parametrize("fault", ["slow", "drop"])
def test_bulk_close_answer_lost_reads_job_state(project, db, emulator, fault):
    """Issue 11 case 9: the close-job PATCH is applied but its answer comes after
    the client's timeout (or never).  The close is not sent blindly again (that
    would get INVALIDJOBSTATE and exit 4): retl reads the job's state, finds it
    closed, and goes on."""
    make_people(db, 30)
    control(emulator, "config", {"close_fault": fault, "close_slow_seconds": 10.0})
    p = sf_project(project, db, emulator, dest={"bulk_threshold": 10, "timeout": 3})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, out + err
    jobs = control(emulator, "jobs")["jobs"]
    assert len(jobs) == 1 and jobs[0]["state"] == "JobComplete", jobs
    extra = control(emulator, "counters")["extra"]
    assert extra.get("bulk_close_applied") == 1
    assert extra.get("bulk_close_refused", 0) == 0
    assert len(api_requests(emulator, "/batches")) == 1
    rows = cache(p)
    assert len(rows) == 30 and all(r[1] == 1 and r[2].startswith("003") for r in rows)
    assert_model(emulator, db)


def test_creates_whose_answers_were_lost_are_deleted_by_external_id(project, db, emulator):
    """Issue 11, case 4 for Salesforce: records a run made but never heard
    back about (no Id stored) are deleted by their External ID when their
    rows leave the model."""
    make_people(db, 20)
    p = sf_project(project, db, emulator, mode="mirror", on_remove="delete")
    control(emulator, "config", {"drop_after": 1.0})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, err
    assert len(records(emulator)) == 20
    control(emulator, "config", {"drop_after": 0.0})
    db.psql("DELETE FROM people WHERE id > 5")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, err
    assert_model(emulator, db)
    assert len(api_requests(emulator, "/sobjects/Contact/External_Id__c/")) == 15
