"""Salesforce update-only (issue 18): mode "update" enriches records that
already exist in Salesforce (made there by hand, not by retl), found by any
filterable field through a SOQL query, or named by their Id.  Faults on;
every run ends with the records equal to the model for the mapped fields,
nothing created, and the rows that match no record or several in `retl
failures`, retried next run.
"""

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import salesforce  # noqa: E402
from emulator_control import control, running  # noqa: E402

ENV = {"SF_CLIENT_ID": "retl-client", "SF_CLIENT_SECRET": "retl-secret",
       "SF_REFRESH_TOKEN": "retl-refresh"}
FAULTS = {"error_rate_5xx": 0.25, "drop_before": 0.08, "drop_after": 0.08, "seed": 7}
NO_FAULTS = {"error_rate_5xx": 0, "drop_before": 0, "drop_after": 0}
N = 300


@pytest.fixture
def emulator():
    yield from running(salesforce)


def sf_dest(url, **extra):
    d = {"type": "salesforce", "base_url": url, "client_id": "${SF_CLIENT_ID}",
         "client_secret": "${SF_CLIENT_SECRET}", "refresh_token": "${SF_REFRESH_TOKEN}"}
    d.update(extra)
    return d


def contacts(url):
    return control(url, "records/Contact")["records"]


def existing(url):
    """Contacts made in Salesforce by hand: person1..N, O'Brien, two sharing
    dup@example.com; -> their Ids by email"""
    recs = [{"LastName": "Person%d" % i, "Email": "person%d@example.com" % i,
             "Title": "old"} for i in range(1, N + 1)]
    recs += [{"LastName": "O'Brien", "Email": "o'brien@example.com", "Title": "old"},
             {"LastName": "Dup1", "Email": "dup@example.com"},
             {"LastName": "Dup2", "Email": "dup@example.com"}]
    ids = control(url, "create/Contact", {"records": recs})["ids"]
    return ids


def run_until_settled(p, sync, want_rc):
    for _ in range(8):
        rc, out, err = p.run("run", sync, env=ENV)
        if rc == want_rc:
            return out + err
        assert rc in (0, 1, 4), out + err
    pytest.fail("no run of %s ended with %d: %s" % (sync, want_rc, out + err))


def faults_fired(url):
    c = control(url, "counters")
    return c["errors_5xx"] + c["dropped_before"] + c["dropped_after"]


@pytest.mark.parametrize("path", ["collections", "bulk"])
def test_update_by_a_field_that_is_not_an_external_id(project, db, emulator, path):
    ids = existing(emulator)
    db.psql(f"""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, title text);
        INSERT INTO people SELECT i, 'person' || i || '@example.com', 'First' || i,
               'Title ' || i FROM generate_series(1, {N}) i;
        -- SOQL compares text without case: this row finds person5's record
        UPDATE people SET email = 'PERSON5@Example.com' WHERE id = 5;
        INSERT INTO people VALUES ({N + 1}, 'o''brien@example.com', 'Pat', 'Quoted'),
                                  ({N + 2}, 'ghost@example.com', 'Nobody', 'None'),
                                  ({N + 3}, 'dup@example.com', 'Two', 'Ambiguous');
    """)
    dest = sf_dest(emulator, **({"bulk_threshold": 100} if path == "bulk" else {}))
    p = project(dsn=db.dsn, destinations={"sf": dest})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, first, title FROM people",
        "key": "id", "destination": "sf", "object": "Contact", "mode": "update",
        "match": {"Email": "email"},
        "fields": {"Email": "email", "FirstName": "first", "Title": "title"}})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 0, out + err
    rc, out, err = p.run("plan", "people", env=ENV)
    assert rc == 0, out + err
    # a token, the writes (2 collections requests, or a bulk job's ~7), and
    # the look-ups: a describe and one query per 200 rows
    planned = int(re.search(r"requests\s+(\d+)", out).group(1))
    assert planned == (1 + 7 if path == "bulk" else 1 + 2) + 1 + 2, out

    control(emulator, "config", FAULTS)
    run_until_settled(p, "people", 1)
    control(emulator, "config", NO_FAULTS)
    assert faults_fired(emulator) > 0
    queries = [r for r in control(emulator, "counters")["requests"] if "/query" in r["path"]]
    assert queries, "no SOQL query was sent"
    if path == "bulk":
        assert [j["operation"] for j in control(emulator, "jobs")["jobs"]] == ["update"] * \
            len(control(emulator, "jobs")["jobs"])
    recs = contacts(emulator)
    assert len(recs) == N + 3, "a record was created"
    by_id = {r["Id"]: r for r in recs}
    model = {}
    for line in db.psql("SELECT id, email, first, title FROM people ORDER BY id",
                        "-At", "-F", "\t").splitlines():
        i, e, f, t = line.split("\t")
        model[int(i)] = (e, f, t)
    for i in range(1, N + 2):
        r = by_id[ids[i - 1]]
        assert (r["Email"], r.get("FirstName"), r.get("Title")) == model[i], (i, r)
    # the dups are untouched; nobody was made for ghost
    assert all(r.get("Title") is None for r in recs if r["Email"] == "dup@example.com")
    rc, out, err = p.run("failures", "people", env=ENV)
    assert "no record matches" in out and "ghost@example.com" in out, out
    assert "ambiguous match (2 records)" in out, out

    # ghost appears, one dup goes: both rows go through next run
    control(emulator, "create/Contact", {"records": [
        {"LastName": "Ghost", "Email": "ghost@example.com"}]})
    control(emulator, "delete/Contact", {"ids": [ids[N + 2]]})
    db.psql("UPDATE people SET title = 'New ' || id WHERE id % 4 = 0")
    control(emulator, "config", FAULTS)
    run_until_settled(p, "people", 0)
    control(emulator, "config", NO_FAULTS)
    recs = contacts(emulator)
    assert len(recs) == N + 3
    got = {r["Email"].lower(): (r["Email"], r.get("FirstName"), r.get("Title")) for r in recs}
    for line in db.psql("SELECT email, first, title FROM people", "-At", "-F", "\t").splitlines():
        e, f, t = line.split("\t")
        assert got[e.lower()] == (e, f, t)


def test_update_by_id(project, db, emulator):
    ids = existing(emulator)
    db.psql("CREATE TABLE enrich (sf_id text PRIMARY KEY, title text)")
    rows = ", ".join("('%s', 'Enriched %d')" % (rid, i) for i, rid in enumerate(ids[:N]))
    db.psql("INSERT INTO enrich VALUES " + rows)
    # one whose record was deleted meanwhile
    control(emulator, "delete/Contact", {"ids": [ids[7]]})
    p = project(dsn=db.dsn, destinations={"sf": sf_dest(emulator)})
    p.add_mapping("enrich", {
        "source": "warehouse", "query": "SELECT sf_id, title FROM enrich",
        "key": "sf_id", "destination": "sf", "object": "Contact", "mode": "update",
        "match": {"Id": "sf_id"}, "fields": {"Id": "sf_id", "Title": "title"}})
    rc, out, err = p.run("check", "enrich", env=ENV)
    assert rc == 0, out + err
    control(emulator, "config", FAULTS)
    run_until_settled(p, "enrich", 1)
    control(emulator, "config", NO_FAULTS)
    assert faults_fired(emulator) > 0
    recs = {r["Id"]: r for r in contacts(emulator)}
    assert len(recs) == N + 2, "a record was created"
    for i, rid in enumerate(ids[:N]):
        if rid != ids[7]:
            assert recs[rid]["Title"] == "Enriched %d" % i
    assert not [r for r in control(emulator, "counters")["requests"] if "/query" in r["path"]]
    rc, out, err = p.run("failures", "enrich", env=ENV)
    assert "ENTITY_IS_DELETED" in out and ids[7] in out, out


def test_check_update_match_must_be_filterable(project, db, emulator):
    db.psql("CREATE TABLE people (id int PRIMARY KEY, email text, title text)")
    p = project(dsn=db.dsn, destinations={"sf": sf_dest(emulator)})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, title FROM people",
        "key": "id", "destination": "sf", "object": "Contact", "mode": "update",
        "match": {"Description": "email"}, "fields": {"Description": "email", "Title": "title"}})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2, out + err
    assert "Contact.Description is not filterable" in out + err
    # any filterable field will do, External ID or not
    with open(p.path("mappings", "people.json")) as f:
        m = json.load(f)
    m["match"] = {"Legacy_Code__c": "email"}
    m["fields"] = {"Legacy_Code__c": "email", "Title": "title"}
    p.add_mapping("people", m)
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 0, out + err
