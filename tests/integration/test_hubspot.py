"""The HubSpot destination against the emulator (tests/emulators/hubspot.py).

Issue 3, "Done when" 1, 3, 4 and 5: request counts of a first run, a re-run
and a small change; mirror archives removed rows; one invalid email among
100 rows is isolated, reported and retried; an invalid token stops the run
with exit 4 and marks nothing; an unknown mapped property is named by
`retl check` with a suggestion and rejects rows at run time; a run killed
with SIGKILL in upsert and in insert mode, then re-run, leaves HubSpot equal
to the model with no duplicates.  The emulator runs in-process on loopback.
"""

import calendar
import datetime
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import hubspot  # noqa: E402
from emulator_control import control  # noqa: E402
from waiting import wait_for  # noqa: E402

TOKEN = "pat-na1-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ENV = {"HUBSPOT_TOKEN": TOKEN}


@pytest.fixture
def emulator():
    server, url = hubspot.start(port=0, tokens=[TOKEN], rate="10000/10s")
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def batch_requests(url, verb=None):
    """API batch requests the emulator has seen (every attempt)."""
    reqs = control(url, "counters")["requests"]
    return [r for r in reqs if "/batch/" in r["path"]
            and (verb is None or r["path"].endswith("/batch/" + verb))]


def records(url, obj="contacts"):
    return control(url, "records/" + obj)["results"]


def make_people(db, n, table="people"):
    db.psql(f"""
        CREATE TABLE {table} (id int PRIMARY KEY, email text, first text,
                              last text);
        INSERT INTO {table} SELECT i, 'person' || i || '@example.com',
               'First' || i, 'Last' || i FROM generate_series(1, {n}) i;
    """)


def hs_project(project, db, url, mode="upsert", token="${HUBSPOT_TOKEN}",
               fields=None, name="people", rate=10000,
               query="SELECT id, email, first, last FROM people", **extra):
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": token, "base_url": url,
               "requests_per_10s": rate},
    })
    m = {
        "source": "warehouse",
        "query": query,
        "key": "id",
        "destination": "hs",
        "object": "contacts",
        "mode": mode,
        "match": {"email": "email"},
        "fields": fields or {"email": "email", "firstname": "first",
                             "lastname": "last"},
    }
    m.update(extra)
    p.add_mapping(name, m)
    return p


def model(db):
    out = {}
    rows = db.psql("SELECT email, first, last FROM people", "-At", "-F", "\t")
    for line in rows.splitlines():
        e, f, last = line.split("\t")
        out[e] = {"firstname": f, "lastname": last}
    return out


def assert_equal_to_model(url, db):
    recs = records(url)
    emails = [r["properties"].get("email") for r in recs]
    assert len(emails) == len(set(emails)), "duplicate records in HubSpot"
    got = {r["properties"]["email"]: {"firstname": r["properties"].get("firstname"),
                                      "lastname": r["properties"].get("lastname")}
           for r in recs}
    want = model(db)
    assert len(got) == len(want)
    assert got == want


def cache_rows(p, sync="people"):
    path = p.path("state", "retl.db")
    if not os.path.exists(path):
        return []
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT key, dest_id, status FROM cache WHERE sync = ?",
                           (sync,)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


# ---- 1: request counts, re-run, change, mirror -----------------------------

def test_upsert_2500_rows_in_25_requests_then_0_then_1(project, db, emulator):
    url = emulator
    make_people(db, 2500)
    p = hs_project(project, db, url)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    ups = batch_requests(url, "upsert")
    assert len(ups) == 25
    assert len(batch_requests(url)) == 25
    assert_equal_to_model(url, db)
    # every row got its HubSpot id
    ids = {r["properties"]["email"]: r["id"] for r in records(url)}
    rows = cache_rows(p)
    assert len(rows) == 2500
    assert all(dest_id for _, dest_id, _ in rows)
    assert set(dest_id for _, dest_id, _ in rows) == set(ids.values())

    # nothing changed: no request at all
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert len(batch_requests(url)) == 25

    # 10 rows changed: one request of 10 inputs
    db.psql("UPDATE people SET first = 'Changed' || id WHERE id % 250 = 0")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert len(batch_requests(url)) == 26
    assert batch_requests(url)[-1]["path"].endswith("/batch/upsert")
    assert_equal_to_model(url, db)


def test_mirror_archives_removed_rows(project, db, emulator):
    url = emulator
    make_people(db, 50)
    p = hs_project(project, db, url, mode="mirror", on_remove="archive")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert len(records(url)) == 50
    gone = {f"person{i}@example.com" for i in (3, 7, 11, 19, 42)}
    gone_ids = {r["id"] for r in records(url) if r["properties"]["email"] in gone}
    db.psql("DELETE FROM people WHERE id IN (3, 7, 11, 19, 42)")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    archives = batch_requests(url, "archive")
    assert len(archives) == 1
    assert archives[0]["inputs"] == 5 and archives[0]["status"] == 204, archives
    assert_equal_to_model(url, db)
    archived = control(url, "records/contacts?archived=1")["archived"]
    assert {r["id"] for r in archived} == gone_ids
    # the removed keys are forgotten: nothing more to do
    n = len(batch_requests(url))
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert len(batch_requests(url)) == n
    assert len(cache_rows(p)) == 45


def test_mirror_remove_of_a_record_already_gone(project, db, emulator):
    """Archiving an id HubSpot no longer has (207 OBJECT_NOT_FOUND) counts
    as done: the record is gone either way."""
    url = emulator
    make_people(db, 5)
    p = hs_project(project, db, url, mode="mirror", on_remove="delete")
    assert p.run("run", "people", env=ENV)[0] == 0
    control(url, "reset", {})   # HubSpot lost every record
    db.psql("DELETE FROM people WHERE id <= 2")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert len(batch_requests(url, "archive")) == 1
    assert len(cache_rows(p)) == 3


def test_value_formats(project, db, emulator):
    """date -> midnight-UTC epoch ms, boolean -> "true"/"false", number,
    array of strings -> ';'-joined, null -> "" (clears the property)."""
    url = emulator
    control(url, "properties/contacts", {"properties": [
        {"name": "signup_date", "type": "date"},
        {"name": "vip", "type": "bool"},
        {"name": "mrr", "type": "number"},
        {"name": "tags", "type": "enumeration", "fieldType": "checkbox",
         "options": ["a", "b", "c"]},
    ]})
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text,
                             last text, signup date, vip bool, mrr numeric,
                             tags text);
        INSERT INTO people VALUES
          (1, 'a@example.com', 'A', 'Aa', '2024-05-01', true, 12.5, 'a,c'),
          (2, 'b@example.com', 'B', NULL, '1969-12-31', false, 0, 'b');
    """)
    # the dates around the end of February (issue 14): a civil-date
    # conversion counts its years from March, so January, February (and
    # 29 February of leap years, 2000 included), 1 March and 31 December
    # are where an off-by-one month boundary shows
    edge_dates = ["2023-01-01", "2023-01-31", "2023-02-01", "2023-02-28",
                  "2023-03-01", "2024-01-15", "2024-02-29", "2024-03-01",
                  "2000-02-29", "2000-03-01", "1900-02-28", "1900-03-01",
                  "2023-12-31", "1970-01-01", "1969-02-15"]
    for i, d in enumerate(edge_dates):
        db.psql(f"INSERT INTO people VALUES ({10 + i}, 'd{i}@example.com', "
                f"'D', 'D', '{d}', true, 1, 'a')")
    p = hs_project(project, db, url, query="SELECT * FROM people", fields={
        "email": "email", "firstname": "first", "lastname": "last",
        "signup_date": "signup", "vip": "vip", "mrr": "mrr",
        "tags": {"from": "tags", "transform": [{"split": ","}]},
    })
    # HubSpot takes a date as YYYY-MM-DD too (CRM properties guide), so the
    # records cannot tell which form retl sent: the emulator's request log
    # holds the values exactly as sent, and the claim is the conversion
    control(url, "config", {"log_properties": True})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    sent = {props["email"]: props for r in batch_requests(url, "upsert")
            for props in r["properties"]}
    # midnight UTC of each date, in epoch milliseconds, by Python's calendar
    for i, d in enumerate(edge_dates):
        want = calendar.timegm(datetime.date.fromisoformat(d).timetuple()) * 1000
        got_d = sent.pop(f"d{i}@example.com")["signup_date"]
        assert got_d == str(want), (d, got_d, want)
    assert sent == {
        "a@example.com": {"email": "a@example.com", "firstname": "A", "lastname": "Aa",
                          "signup_date": "1714521600000", "vip": "true", "mrr": "12.5",
                          "tags": "a;c"},
        "b@example.com": {"email": "b@example.com", "firstname": "B", "lastname": "",
                          "signup_date": "-86400000", "vip": "false", "mrr": "0",
                          "tags": "b"},
    }
    got = {r["properties"]["email"]: r["properties"] for r in records(url)}
    assert got["a@example.com"]["signup_date"] == "2024-05-01"
    assert got["a@example.com"]["vip"] == "true"
    assert got["a@example.com"]["mrr"] == "12.5"
    assert got["a@example.com"]["tags"] == "a;c"
    assert got["b@example.com"]["signup_date"] == "1969-12-31"
    assert got["b@example.com"]["vip"] == "false"
    assert got["b@example.com"].get("lastname") in (None, "")
    # a value set to NULL in the model is cleared in HubSpot
    db.psql("UPDATE people SET first = NULL WHERE id = 1")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    got = {r["properties"]["email"]: r["properties"] for r in records(url)}
    assert got["a@example.com"].get("firstname") in (None, "")


# ---- 3: one invalid email among 100 ----------------------------------------

def test_invalid_email_is_isolated_reported_retried_and_fixed(project, db, emulator):
    url = emulator
    make_people(db, 100)
    db.psql("UPDATE people SET email = 'not-an-email@' WHERE id = 37")
    p = hs_project(project, db, url)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    assert len(records(url)) == 99
    rc, out, err = p.run("failures", "people", env=ENV)
    assert rc == 0, err
    assert "37" in out
    assert "INVALID_EMAIL: Email address not-an-email@ is invalid" in out

    # retried next run, and still failing: one request for the one row
    n = len(batch_requests(url))
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    assert len(batch_requests(url)) == n + 1
    assert "INVALID_EMAIL" in p.run("failures", "people", env=ENV)[1]

    # fixed in the model: synced
    db.psql("UPDATE people SET email = 'person37@example.com' WHERE id = 37")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert_equal_to_model(url, db)
    rc, out, err = p.run("failures", "people", env=ENV)
    assert "0 rows failing" in out


# ---- 4: credentials and properties -----------------------------------------

def test_invalid_token_exits_4_and_marks_nothing(project, db, emulator):
    url = emulator
    make_people(db, 300)
    bad = "pat-na1-00000000-dead-beef-0000-000000000000"
    p = hs_project(project, db, url)
    rc, out, err = p.run("run", "people", env={"HUBSPOT_TOKEN": bad})
    assert rc == 4, (out, err)
    assert "token invalid or expired (401 INVALID_AUTHENTICATION)" in err
    assert bad not in out + err
    assert records(url) == []
    assert not [r for r in cache_rows(p) if r[2] == 1]  # nothing ok
    rc, out, err = p.run("check", "people", env={"HUBSPOT_TOKEN": bad})
    assert rc == 4, (out, err)
    assert "token invalid or expired" in err
    assert bad not in out + err
    # with the right token everything is sent
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert_equal_to_model(url, db)


def test_missing_scope_exits_4_naming_it(project, db, emulator):
    url = emulator
    make_people(db, 10)
    control(url, "config", {"missing_scopes": ["crm.objects.contacts.write"]})
    p = hs_project(project, db, url)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 4, (out, err)
    assert "crm.objects.contacts.write" in err
    assert records(url) == []


def test_check_passes_on_a_good_mapping(project, db, emulator):
    url = emulator
    make_people(db, 3)
    p = hs_project(project, db, url)
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 0, (out, err)
    assert batch_requests(url) == []


def test_unknown_property_named_by_check_and_rejected_by_run(project, db, emulator):
    url = emulator
    make_people(db, 150)
    p = hs_project(project, db, url, fields={
        "email": "email", "firstnme": "first", "LastName": "last"})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2, (out, err)
    # every unknown property at once, each with its closest name
    assert 'contacts has no property "firstnme" (did you mean "firstname"?)' in err
    assert 'contacts has no property "LastName" (did you mean "lastname"?)' in err

    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    assert records(url) == []
    # the whole request is refused for a property every row carries:
    # rejected at once, not split row by row
    assert len(batch_requests(url)) == 2
    rc, out, err = p.run("failures", "people", env=ENV)
    assert 'PROPERTY_DOESNT_EXIST: Property "firstnme" does not exist' in out


def test_check_refuses_read_only_and_explains_a_non_unique_match(project, db, emulator):
    url = emulator
    make_people(db, 3)
    p = hs_project(project, db, url, fields={
        "email": "email", "firstname": "first", "hs_object_id": "id"},
        match={"firstname": "first"})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2, (out, err)
    assert "hs_object_id is read-only" in err
    # issue 18: a property that is not unique is matched through search,
    # not refused (tests/integration/test_hubspot_search.py)
    assert "firstname does not have unique values" not in err
    p = hs_project(project, db, url, fields={"email": "email", "firstname": "first"},
                   match={"firstname": "first"})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 0, (out, err)
    assert "firstname does not have unique values (hasUniqueValue false): records are found through search" in err


def test_check_unknown_object(project, db, emulator):
    url = emulator
    make_people(db, 3)
    p = hs_project(project, db, url, object="contactz")
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2, (out, err)
    assert 'object "contactz" does not exist' in err


def test_match_property_must_be_mapped(project, db, emulator):
    url = emulator
    make_people(db, 3)
    p = hs_project(project, db, url, fields={"firstname": "first"})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 2, (out, err)
    assert "match.email" in err and "not a mapped field" in err


# ---- 5: SIGKILL mid-run, then a re-run -------------------------------------

def kill_midway(p, url, env, at_least):
    """Starts `retl run people`, SIGKILLs it once the emulator holds
    at_least records (while requests are still in flight)."""
    argv = [p.retl_bin, "--config", p.dir, "run", "people"]
    proc = subprocess.Popen(argv, env=dict(os.environ, **env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def held():
        assert proc.poll() is None, "the run ended before it could be killed"
        return len(records(url)) >= at_least
    try:
        wait_for(held, 120, f"{at_least} records at the emulator")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()


@pytest.mark.parametrize("mode", ["upsert", "insert"])
def test_sigkill_midway_then_rerun_equals_model(project, db, emulator, mode):
    url = emulator
    make_people(db, 5000)
    # slow answers keep several requests in flight when the kill lands
    control(url, "config", {"latency": 0.05})
    p = hs_project(project, db, url, mode=mode)
    kill_midway(p, url, ENV, at_least=1500)
    assert 0 < len(records(url)) < 5000
    control(url, "config", {"latency": 0})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert_equal_to_model(url, db)
    if mode == "insert":
        # rows whose create was in flight were looked up, not created again
        assert batch_requests(url, "read")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert_equal_to_model(url, db)


def test_insert_create_without_answer_is_not_replayed(project, db, emulator):
    """A create whose answer is lost (dropped after HubSpot applied it) is
    not replayed by the engine; the row stays pending and the next run
    finds the record instead of creating a duplicate."""
    url = emulator
    make_people(db, 1000)
    control(url, "config", {"drop_after": 0.3, "seed": 3})
    p = hs_project(project, db, url, mode="insert")
    rc, out, err = p.run("run", "people", env=ENV)
    # creates that got no answer: a destination error (exit 4)
    assert rc == 4, (out, err)
    assert "people: failed, the destination did not answer for some rows (exit 4)" in out
    creates = batch_requests(url, "create")
    lost = [r for r in creates if r["status"] is None]
    assert lost and all(r.get("fault") == "drop_after" for r in lost), creates
    n_lost = sum(r["inputs"] for r in lost)
    # each row was sent in exactly one create: none replayed by the engine
    assert sum(r["inputs"] for r in creates) == 1000, creates
    # the rows of the lost creates stay pending (status 3), nothing else
    PENDING = 3
    assert sum(1 for r in cache_rows(p) if r[2] == PENDING) == n_lost
    control(url, "config", {"drop_after": 0})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err, p.run("failures", "people", env=ENV)[1])
    assert_equal_to_model(url, db)
    # the next run looked the pending rows up, and created nothing again
    assert sum(r["inputs"] for r in batch_requests(url, "read")) == n_lost
    assert batch_requests(url, "create") == creates
    assert len(records(url)) == 1000


def test_update_mode_by_property_then_by_stored_id(project, db, emulator):
    """update touches only existing records: first found by idProperty,
    later by the HubSpot id the first run stored; a row with no record
    fails "no record matches" (issue 18; HubSpot answers OBJECT_NOT_FOUND)."""
    url = emulator
    make_people(db, 20)
    control(url, "records/contacts", {"inputs": [
        {"properties": {"email": f"person{i}@example.com", "firstname": "Old"}}
        for i in range(1, 20)]})
    p = hs_project(project, db, url, mode="update")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    assert len(records(url)) == 19   # person20 was not created
    assert "no record matches (email = person20@example.com)" in \
        p.run("failures", "people", env=ENV)[1]
    got = {r["properties"]["email"]: r["properties"] for r in records(url)}
    assert got["person5@example.com"]["firstname"] == "First5"
    db.psql("UPDATE people SET first = 'New' WHERE id = 5")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    got = {r["properties"]["email"]: r["properties"] for r in records(url)}
    assert got["person5@example.com"]["firstname"] == "New"


@pytest.mark.parametrize("errors_array", [True, False])
def test_unknown_property_fails_each_batch_once_not_split(project, db, emulator, errors_array):
    """Issue 11, case 8: a 400 that names no record (a mapped property the
    object does not have) fails the request's rows once with HubSpot's
    message: 3 requests for 300 rows on every run, never a split down to
    single records (599).  HubSpot's answer carries the codes in errors[]
    or, as often quoted from real answers, only inside its message."""
    url = emulator
    control(url, "config", {"validation_errors_array": errors_array})
    make_people(db, 300)
    p = hs_project(project, db, url, fields={
        "email": "email", "firstname": "first", "plan_tier": "last"})
    for run in (1, 2):
        before = len(batch_requests(url))
        rc, out, err = p.run("run", "people", env=ENV)
        assert rc == 1, (out, err)
        assert len(batch_requests(url)) - before == 3, run
        assert records(url) == []
    rc, out, err = p.run("failures", "people", env=ENV)
    assert 'PROPERTY_DOESNT_EXIST: Property "plan_tier" does not exist' in out
    assert "300" in out


def test_invalid_value_still_split_without_errors_array(project, db, emulator):
    """The other side of case 8: a value one record sent (an invalid email)
    blames that record, also when the codes are only in the message: the
    request is split and the others are acknowledged."""
    url = emulator
    control(url, "config", {"validation_errors_array": False,
                            "reject_values": ["person7@example.com"]})
    make_people(db, 20)
    p = hs_project(project, db, url)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    assert len(records(url)) == 19
    rc, out, err = p.run("failures", "people", env=ENV)
    assert "INVALID_EMAIL: Email address person7@example.com is invalid" in out


def test_date_based_api_version(project, db, emulator):
    """api_version "2026-03": every call under /crm/objects/2026-03 and
    /crm/properties/2026-03 (the conformance test checks them against that
    version's spec); the same behaviour as v3"""
    make_people(db, 30)
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": emulator,
               "requests_per_10s": 10000, "api_version": "2026-03"}})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, first, last FROM people",
        "key": "id", "destination": "hs", "object": "contacts", "mode": "mirror",
        "on_remove": "archive", "match": {"email": "email"},
        "fields": {"email": "email", "firstname": "first", "lastname": "last"}})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 0, err
    assert p.run("run", "people", env=ENV)[0] == 0
    db.psql("DELETE FROM people WHERE id > 20")
    assert p.run("run", "people", env=ENV)[0] == 0
    assert_equal_to_model(emulator, db)
    paths = {r["path"] for r in control(emulator, "counters")["requests"]}
    assert "/crm/objects/2026-03/contacts/batch/upsert" in paths
    assert "/crm/objects/2026-03/contacts/batch/archive" in paths
    assert "/crm/properties/2026-03/contacts" in paths

    # the other request types under the same version, so the conformance
    # test sees each of them: creates whose answers are lost (then looked up
    # with batch/read before anything is created again), and updates
    make_people(db, 30, table="newcomers")
    db.psql("UPDATE newcomers SET email = 'new' || id || '@example.com'")
    p.add_mapping("newcomers", {
        "source": "warehouse", "query": "SELECT id, email, first, last FROM newcomers",
        "key": "id", "destination": "hs", "object": "contacts", "mode": "insert",
        "match": {"email": "email"},
        "fields": {"email": "email", "firstname": "first", "lastname": "last"}})
    control(emulator, "config", {"drop_after": 1.0})
    rc, out, err = p.run("run", "newcomers", env=ENV)
    assert rc == 4 and "did not answer for some rows" in out, (out, err)
    control(emulator, "config", {"drop_after": 0})
    assert p.run("run", "newcomers", env=ENV)[0] == 0
    # each newcomer was in one create only (not replayed, not created
    # again), and in one look-up
    reqs = control(emulator, "counters")["requests"]
    assert sum(r["inputs"] for r in reqs if r["path"].endswith("/batch/create")) == 30
    assert sum(r["inputs"] for r in reqs if r["path"].endswith("/batch/read")) == 30
    p.add_mapping("renames", {
        "source": "warehouse", "query": "SELECT id, email, 'Renamed' || id AS first FROM people",
        "key": "id", "destination": "hs", "object": "contacts", "mode": "update",
        "match": {"email": "email"}, "fields": {"email": "email", "firstname": "first"}})
    assert p.run("run", "renames", env=ENV)[0] == 0
    paths = {r["path"] for r in control(emulator, "counters")["requests"]}
    for kind in ("create", "read", "update"):
        assert f"/crm/objects/2026-03/contacts/batch/{kind}" in paths, kind
    assert not [x for x in paths if x.startswith("/crm/v3/")]
    assert len([r for r in records(emulator) if r["properties"]["email"].startswith("new")]) == 30
    assert all(r["properties"]["firstname"].startswith("Renamed")
               for r in records(emulator) if r["properties"]["email"].startswith("person"))


def test_api_version_is_checked(project, db, emulator):
    make_people(db, 1)
    p = hs_project(project, db, emulator)
    cfg = json.load(open(p.path("retl.json")))
    cfg["destinations"]["hs"]["api_version"] = "v4"
    p.write_config(cfg)
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2
    # checked when the token is read: with the value's line and column
    assert re.search(r'retl\.json:\d+:\d+: destinations\.hs\.api_version: expected '
                     r'"v3" \(the default\) or a date-based version such as "2026-03"', err), err
