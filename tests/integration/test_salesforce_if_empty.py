"""Per-field ownership for Salesforce (issue 18): a field with "write":
"if_empty" is written only while the record's value is null, so a value a
person set in Salesforce is kept.  retl reads the current values with SOQL
first (by the External ID in upsert, by Id in update) and leaves the held
fields out of each record: sObject Collections then does not touch them,
and a Bulk 2.0 job writes an empty CSV field (left as it is on update).
New records get every field.  Faults on; both paths; `retl plan` counts the
extra queries; `retl check` wants the fields readable.
"""

import json
import os
import re
import sys
import urllib.parse
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import salesforce  # noqa: E402
from emulator_control import control, running  # noqa: E402

ENV = {"SF_CLIENT_ID": "retl-client", "SF_CLIENT_SECRET": "retl-secret",
       "SF_REFRESH_TOKEN": "retl-refresh"}
FAULTS = {"error_rate_5xx": 0.2, "drop_before": 0.06, "drop_after": 0.06, "seed": 11}
NO_FAULTS = {"error_rate_5xx": 0, "drop_before": 0, "drop_after": 0}
N = 300
FIELDS = {"External_Id__c": "ext", "LastName": "last", "FirstName": "first",
          "Title": {"from": "title", "write": "if_empty"},
          "Phone": {"from": "phone", "write": "if_empty"}}


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


def run_until_clean(p, sync):
    for _ in range(8):
        rc, out, err = p.run("run", sync, env=ENV)
        if rc == 0:
            return out + err
        assert rc in (1, 4), out + err
    pytest.fail("no clean run of %s: %s %s" % (sync, out + err, p.run("failures", sync, env=ENV)))


def faults_fired(url):
    c = control(url, "counters")
    return c["errors_5xx"] + c["dropped_before"] + c["dropped_after"]


def person_clears(url, rid, field):
    """someone empties a field in Salesforce (sObject Collections update,
    as any client would), faults off meanwhile"""
    control(url, "config", NO_FAULTS)
    tok = urllib.request.urlopen(urllib.request.Request(
        url + "/services/oauth2/token", method="POST", data=urllib.parse.urlencode({
            "grant_type": "refresh_token", "client_id": "retl-client",
            "client_secret": "retl-secret", "refresh_token": "retl-refresh"}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"}), timeout=30)
    token = json.loads(tok.read())["access_token"]
    req = urllib.request.Request(
        url + "/services/data/v62.0/composite/sobjects", method="PATCH",
        data=json.dumps({"allOrNone": True, "records": [
            {"attributes": {"type": "Contact"}, "Id": rid, field: None}]}).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    answer = json.loads(urllib.request.urlopen(req, timeout=30).read())
    assert answer[0]["success"], answer


def model(db):
    out = {}
    for line in db.psql("SELECT ext, first, last, title, phone FROM people",
                        "-At", "-F", "\t").splitlines():
        e, f, la, t, ph = line.split("\t")
        out[e] = {"FirstName": f, "LastName": la, "Title": t, "Phone": ph}
    return out


def held(url):
    return {r["External_Id__c"]: {k: r.get(k) for k in ("FirstName", "LastName", "Title", "Phone")}
            for r in contacts(url)}


def planned(out):
    return int(re.search(r"requests\s+(\d+)", out).group(1))


@pytest.mark.parametrize("path", ["collections", "bulk"])
def test_values_a_person_set_are_kept_and_empty_ones_filled(project, db, emulator, path):
    url = emulator
    db.psql(f"""
        CREATE TABLE people (id int PRIMARY KEY, ext text, first text, last text,
                             title text, phone text);
        INSERT INTO people SELECT i, 'E-' || i, 'First' || i, 'Last' || i, 'Title ' || i,
               '+1 ' || i FROM generate_series(1, {N}) i;
    """)
    # E-1..100 exist and sales set their Title; E-101..200 exist with a
    # Phone someone typed and no Title; E-201..300 do not exist
    control(url, "create/Contact", {"records": [
        {"LastName": "Hand%d" % i, "External_Id__c": "E-%d" % i, "Title": "Sales %d" % i}
        for i in range(1, 101)] + [
        {"LastName": "Hand%d" % i, "External_Id__c": "E-%d" % i, "Phone": "555-%d" % i}
        for i in range(101, 201)]})
    dest = sf_dest(url, **({"bulk_threshold": 100} if path == "bulk" else {}))
    p = project(dsn=db.dsn, destinations={"sf": dest})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, ext, first, last, title, phone FROM people",
        "key": "id", "destination": "sf", "object": "Contact", "mode": "upsert",
        "match": {"External_Id__c": "ext"}, "fields": FIELDS})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 0, out + err
    rc, out, err = p.run("plan", "people", env=ENV)
    assert rc == 0, out + err
    # a token, the writes (2 collections requests, or a bulk job's ~7),
    # a describe and one query of the current values per 200 rows
    assert planned(out) == (1 + 7 if path == "bulk" else 1 + 2) + 1 + 2, out
    assert '"write": "if_empty" (Phone, ...): 2 SOQL queries of the current values' in err

    control(url, "config", FAULTS)
    run_until_clean(p, "people")
    control(url, "config", NO_FAULTS)
    assert faults_fired(url) > 0
    reqs = control(url, "counters")["requests"]
    queries = [r for r in reqs if "/query" in r["path"]]
    assert queries, "no SOQL query was sent"
    if path == "bulk":
        assert control(url, "jobs")["jobs"], "no bulk job"
    else:
        assert not control(url, "jobs")["jobs"]

    owned = {}          # what a person (or retl's first write) put there
    for i in range(1, 101):
        owned[("E-%d" % i, "Title")] = "Sales %d" % i
    for i in range(101, 201):
        owned[("E-%d" % i, "Phone")] = "555-%d" % i

    def expected():
        want = model(db)
        for (e, f), v in owned.items():
            want[e][f] = v
        return want

    got = held(url)
    assert len(got) == N, "a record was duplicated or not created"
    assert got == expected()
    # from now on every Title and Phone holds a value: retl's own first
    # writes (E-201..) too
    for e, rec in got.items():
        owned[(e, "Title")] = rec["Title"]
        owned[(e, "Phone")] = rec["Phone"]

    # the model changes every field of a third of the rows: the "always"
    # fields follow; the if_empty ones are sent again and written only
    # where Salesforce's value is empty: a person cleared two
    db.psql("UPDATE people SET first = first || 'x', title = title || 'y', "
            "phone = phone || '0' WHERE id % 3 = 0")
    ids = {r["External_Id__c"]: r["Id"] for r in contacts(url)}
    person_clears(url, ids["E-3"], "Title")
    person_clears(url, ids["E-102"], "Phone")
    del owned[("E-3", "Title")]
    del owned[("E-102", "Phone")]
    control(url, "config", FAULTS)
    run_until_clean(p, "people")
    control(url, "config", NO_FAULTS)
    got = held(url)
    assert got == expected()
    assert got["E-3"]["Title"] == "Title 3y"              # emptied, filled again
    assert got["E-6"]["Title"] == "Sales 6"               # a person's, kept
    assert got["E-102"]["Phone"] == "+1 1020"             # emptied, filled again
    assert got["E-201"]["Title"] == "Title 201"           # retl's own first write, kept
    assert got["E-201"]["FirstName"] == "First201x"       # an "always" field follows
    rc, out, err = p.run("failures", "people", env=ENV)
    assert "0 rows failing in people" in out, out


def test_update_only_reads_by_the_found_id(project, db, emulator):
    """mode update matched by Email: the look-up finds the Id, the read of
    the current values goes by it"""
    url = emulator
    ids = control(url, "create/Contact", {"records": [
        {"LastName": "L%d" % i, "Email": "p%d@example.com" % i,
         **({"Title": "Chosen %d" % i} if i % 2 else {})} for i in range(1, 41)]})["ids"]
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, title text);
        INSERT INTO people SELECT i, 'p' || i || '@example.com', 'F' || i, 'T' || i
        FROM generate_series(1, 41) i;
    """)
    p = project(dsn=db.dsn, destinations={"sf": sf_dest(url)})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, first, title FROM people",
        "key": "id", "destination": "sf", "object": "Contact", "mode": "update",
        "match": {"Email": "email"},
        "fields": {"Email": "email", "FirstName": "first",
                   "Title": {"from": "title", "write": "if_empty"}}})
    rc, out, err = p.run("plan", "people", env=ENV)
    assert rc == 0, out + err
    # a token, 1 collections request, the describe, a look-up query and a
    # query of the current values
    assert planned(out) == 1 + 1 + 1 + 1 + 1, out
    control(url, "config", FAULTS)
    for _ in range(3):
        rc, out, err = p.run("run", "people", env=ENV)
        assert rc in (1, 4), out + err
    assert faults_fired(url) > 0
    control(url, "config", NO_FAULTS)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, out + err           # p41 matches no record
    rc, failures, err = p.run("failures", "people", env=ENV)
    assert "no record matches" in failures and "p41@example.com" in failures, failures
    assert failures.count("salesforce:") == 1, failures
    recs = {r["Id"]: r for r in contacts(url)}
    assert len(recs) == 40, "a record was created"
    for i, rid in enumerate(ids, start=1):
        want = "Chosen %d" % i if i % 2 else "T%d" % i
        assert (recs[rid]["FirstName"], recs[rid]["Title"]) == ("F%d" % i, want), i


def test_check_and_load_refusals(project, db, emulator):
    db.psql("CREATE TABLE people (id int PRIMARY KEY, ext text, last text, acct text)")
    p = project(dsn=db.dsn, destinations={"sf": sf_dest(emulator)})
    base = {"source": "warehouse", "query": "SELECT id, ext, last, acct FROM people",
            "key": "id", "destination": "sf", "object": "Contact", "mode": "upsert",
            "match": {"External_Id__c": "ext"}}
    # a field retl's user cannot read is not in the describe
    p.add_mapping("people", dict(base, fields={
        "External_Id__c": "ext", "LastName": "last",
        "Secret__c": {"from": "acct", "write": "if_empty"}}))
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2, out + err
    assert 'Contact has no field "Secret__c" that retl can read' in out + err
    # a relationship target has nothing to compare
    p.add_mapping("people", dict(base, fields={
        "External_Id__c": "ext", "LastName": "last",
        "Account.External_Id__c": {"from": "acct", "write": "if_empty"}}))
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 2, out + err
    assert ('fields.Account.External_Id__c: "write": "if_empty" is not supported for a '
            'Salesforce relationship target') in out + err
    # the External ID the record is found by is always sent
    p.add_mapping("people", dict(base, fields={
        "External_Id__c": {"from": "ext", "write": "if_empty"}, "LastName": "last"}))
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 2, out + err
    assert "the field the record is found by is always sent" in out + err


def test_a_refused_read_fails_the_rows_and_writes_nothing(project, db, emulator):
    """a query Salesforce refuses (a field it does not know, e.g. hidden
    by field-level security): the rows fail with its words, nothing of them
    is written, and they are read again every run"""
    url = emulator
    control(url, "create/Contact", {"records": [
        {"LastName": "Hand1", "External_Id__c": "E-1", "Title": "Sales"}]})
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, ext text, last text, title text);
        INSERT INTO people VALUES (1, 'E-1', 'Lovelace', 'T1'), (2, 'E-2', 'Hopper', 'T2');
    """)
    p = project(dsn=db.dsn, destinations={"sf": sf_dest(url)})
    m = {"source": "warehouse", "query": "SELECT id, ext, last, title FROM people",
         "key": "id", "destination": "sf", "object": "Contact", "mode": "upsert",
         "match": {"External_Id__c": "ext"},
         "fields": {"External_Id__c": "ext", "LastName": "last",
                    "Secret__c": {"from": "title", "write": "if_empty"}}}
    p.add_mapping("people", m)
    for attempt in (1, 2):
        rc, out, err = p.run("run", "people", env=ENV)
        assert rc == 1, out + err
        rc, out, err = p.run("failures", "people", env=ENV)
        assert out.count('salesforce: reading the "if_empty" fields of Contact by '
                         'External_Id__c: HTTP 400 INVALID_FIELD: No such column '
                         "'Secret__c'") == 2, out
        assert "attempts %d" % attempt in out, out
    got = held(url)
    assert list(got) == ["E-1"] and got["E-1"]["LastName"] == "Hand1", got
    m["fields"] = {"External_Id__c": "ext", "LastName": "last",
                   "Title": {"from": "title", "write": "if_empty"}}
    p.add_mapping("people", m)
    run_until_clean(p, "people")
    got = held(url)
    assert (got["E-1"]["LastName"], got["E-1"]["Title"]) == ("Lovelace", "Sales")
    assert (got["E-2"]["LastName"], got["E-2"]["Title"]) == ("Hopper", "T2")
