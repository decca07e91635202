"""Per-field ownership (issue 18): a field with "write": "if_empty" is
written only while the destination's value is empty, so a value a person
set in the CRM is kept.  HubSpot reads the current values first (batch/read
by the match property or the record id, properties = the if_empty fields)
and leaves the non-empty ones out of the write; a create writes them all.
`retl plan` counts the extra reads; a destination without the capability
refuses the sync at load.  The emulator runs in-process, faults on.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import hubspot  # noqa: E402
from emulator_control import control  # noqa: E402

TOKEN = "pat-na1-66666666-bbbb-cccc-dddd-eeeeeeeeeeee"
ENV = {"HUBSPOT_TOKEN": TOKEN}
FAULTS = {"error_rate_5xx": 0.08, "drop_before": 0.03, "drop_after": 0.03,
          "fail_every_nth_429": 7, "seed": 5}
CALM = {"error_rate_5xx": 0, "drop_before": 0, "drop_after": 0, "fail_every_nth_429": 0}


@pytest.fixture
def emulator():
    server, url = hubspot.start(port=0, tokens=[TOKEN], rate="10000/10s",
                                search_rate="50/1s")
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


FIELDS = {"email": "email", "firstname": "first",
          "lastname": {"from": "last", "write": "if_empty"}}


def make_project(project, db, url, obj="contacts", match=None, fields=None, mode="upsert",
                 query="SELECT id, email, first, last FROM people"):
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
               "requests_per_10s": 10000}})
    p.add_mapping("people", {
        "source": "warehouse", "query": query, "key": "id", "destination": "hs",
        "object": obj, "mode": mode, "match": match or {"email": "email"},
        "fields": fields or FIELDS})
    return p


def contacts(url):
    return {r["properties"]["email"]: r["properties"]
            for r in control(url, "records/contacts")["results"]}


def run_until_clean(p, name="people"):
    for _ in range(8):
        rc, out, err = p.run("run", name, env=ENV)
        if rc == 0:
            return
        assert rc in (1, 4), (out, err)
    raise AssertionError((out, err, p.run("failures", name, env=ENV)[1]))


def test_a_value_a_person_set_is_kept_and_an_empty_one_filled(project, db, emulator):
    url = emulator
    n = 250
    db.psql(f"""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, last text);
        INSERT INTO people SELECT i, 'p' || i || '@example.com', 'First' || i, 'Last' || i
        FROM generate_series(1, {n}) i;
    """)
    # 1..100 exist and a salesperson set their last name; 101..200 exist
    # with none; 201..250 do not exist
    control(url, "records/contacts", {"inputs": [
        {"properties": {"email": "p%d@example.com" % i, "lastname": "Sales%d" % i}}
        for i in range(1, 101)] + [
        {"properties": {"email": "p%d@example.com" % i}} for i in range(101, 201)]})
    control(url, "config", FAULTS)
    p = make_project(project, db, url)
    run_until_clean(p)

    def expected(owned):
        """what HubSpot must hold: `owned` maps email -> the last name
        someone (a person or retl's first write) put there"""
        out = {}
        for line in db.psql("SELECT email, first, last FROM people", "-At", "-F", "\t").splitlines():
            e, f, l_ = line.split("\t")
            out[e] = {"firstname": f, "lastname": owned.get(e, l_)}
        return out

    owned = {"p%d@example.com" % i: "Sales%d" % i for i in range(1, 101)}
    got = contacts(url)
    assert len(got) == n
    want = expected(owned)
    assert {e: {"firstname": v.get("firstname"), "lastname": v.get("lastname")}
            for e, v in got.items()} == want
    # from now on every last name is set: retl's own first writes too
    owned = {e: v["lastname"] for e, v in want.items()}

    # the model changes both kinds of field: the always field follows, the
    # if_empty one is sent again but written only where HubSpot's is empty
    db.psql("UPDATE people SET first = first || 'x', last = last || 'y' WHERE id % 3 = 0")
    # a person empties two last names in HubSpot
    for i in (3, 150):
        rec = [r for r in control(url, "records/contacts")["results"]
               if r["properties"]["email"] == "p%d@example.com" % i][0]
        import json
        import urllib.request
        req = urllib.request.Request(
            url + "/crm/v3/objects/contacts/batch/update",
            data=json.dumps({"inputs": [{"id": rec["id"], "properties": {"lastname": ""}}]}).encode(),
            method="POST", headers={"Authorization": "Bearer " + TOKEN,
                                    "Content-Type": "application/json"})
        control(url, "config", CALM)
        urllib.request.urlopen(req, timeout=30).read()
        del owned["p%d@example.com" % i]
    control(url, "config", FAULTS)
    run_until_clean(p)
    got = contacts(url)
    assert {e: {"firstname": v.get("firstname"), "lastname": v.get("lastname")}
            for e, v in got.items()} == expected(owned)
    assert got["p3@example.com"]["lastname"] == "Last3y"        # emptied, refilled
    assert got["p6@example.com"]["lastname"] == "Sales6"        # a person's, kept
    assert got["p201@example.com"]["lastname"] == "Last201"     # retl's own, kept
    # the reads asked HubSpot for the if_empty field
    reads = [r for r in control(url, "counters")["requests"] if r["path"].endswith("/batch/read")]
    assert reads
    control(url, "config", CALM)
    before = len(control(url, "counters")["requests"])
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0 and len(control(url, "counters")["requests"]) == before


def test_if_empty_with_search_matching(project, db, emulator):
    """companies matched by domain (search): the found record's current
    value is read by its id before the update"""
    url = emulator
    db.psql("""
        CREATE TABLE accounts (id int PRIMARY KEY, domain text, name text, tier text);
        INSERT INTO accounts VALUES (1, 'a.example', 'A', 't1'), (2, 'b.example', 'B', 't2'),
                                    (3, 'c.example', 'C', 't3');
    """)
    control(url, "records/companies", {"inputs": [
        {"properties": {"domain": "a.example", "industry": "Chosen by sales"}},
        {"properties": {"domain": "b.example"}}]})
    p = make_project(project, db, url, obj="companies", match={"domain": "domain"},
                     fields={"domain": "domain", "name": "name",
                             "industry": {"from": "tier", "write": "if_empty"}},
                     query="SELECT id, domain, name, tier FROM accounts")
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    got = {r["properties"]["domain"]: r["properties"]
           for r in control(url, "records/companies")["results"]}
    assert len(got) == 3
    assert (got["a.example"]["name"], got["a.example"]["industry"]) == ("A", "Chosen by sales")
    assert (got["b.example"]["name"], got["b.example"]["industry"]) == ("B", "t2")
    assert (got["c.example"]["name"], got["c.example"]["industry"]) == ("C", "t3")


def test_plan_shows_the_extra_reads(project, db, emulator):
    url = emulator
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, last text);
        INSERT INTO people SELECT i, 'p' || i || '@example.com', 'F', 'L'
        FROM generate_series(1, 150) i;
    """)
    p = make_project(project, db, url)
    rc, out, err = p.run("plan", "people", env=ENV)
    assert rc == 0, (out, err)
    assert '"write": "if_empty" (lastname, ...): 2 batch/read requests' in err
    # 2 upserts and 2 reads
    assert [l for l in out.splitlines() if l.strip().startswith("requests")][0].split()[-1] == "4"
    p2 = make_project(project, db, url, fields={"email": "email", "firstname": "first"})
    rc, out, err = p2.run("plan", "people", env=ENV)
    assert "if_empty" not in err
    assert [l for l in out.splitlines() if l.strip().startswith("requests")][0].split()[-1] == "2"


def test_a_destination_without_the_capability_refuses(project, db):
    db.psql("CREATE TABLE people (id int PRIMARY KEY, email text, owner text)")
    p = project(dsn=db.dsn, destinations={
        "at": {"type": "airtable", "token": "${AIRTABLE_TOKEN}", "base": "appAAAAAAAAAAAAAA"}})
    p.add_mapping("x", {
        "source": "warehouse", "query": "SELECT id, email, owner FROM people", "key": "id",
        "destination": "at", "object": "People", "mode": "upsert", "match": {"Email": "email"},
        "fields": {"Email": "email", "owner": {"from": "owner", "write": "if_empty"}}})
    for verb in ("check", "run"):
        rc, out, err = p.run(verb, "x", env={"AIRTABLE_TOKEN": "pat"})
        assert rc == 2, (out, err)
        assert ('mappings/x.json: fields.owner: "write": "if_empty" is not supported by the '
                'airtable destination (supported: hubspot, salesforce)') in err
