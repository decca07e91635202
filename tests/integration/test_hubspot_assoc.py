"""HubSpot associations (issue 18): contacts associated with companies by
domain (HubSpot's search: not unique) and by a unique property with a label,
through the v4 batch associations API, against the emulator
(tests/emulators/hubspot.py + hubspot_assoc.py) with faults on; a sequence of
model changes ends with the emulator's associations equal to the model,
record by record; a target not found and an ambiguous one fail their row in
`retl failures` and are retried by the next run."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import hubspot  # noqa: E402
from emulator_control import control  # noqa: E402

TOKEN = "pat-na1-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ENV = {"HUBSPOT_TOKEN": TOKEN}
FAULTS = {"fail_every_nth_429": 7, "error_rate_5xx": 0.08, "drop_before": 0.03,
          "drop_after": 0.03, "seed": 18}
NO_FAULTS = {"fail_every_nth_429": 0, "error_rate_5xx": 0, "drop_before": 0, "drop_after": 0}


@pytest.fixture
def emulator():
    server, url = hubspot.start(port=0, tokens=[TOKEN], rate="10000/10s")
    try:
        control(url, "properties/companies", {"name": "company_code", "type": "string",
                                              "hasUniqueValue": True})
        control(url, "labels/contacts/companies", {"label": "Billing", "typeId": 7})
        yield url
    finally:
        server.shutdown()
        server.server_close()


def companies(url, rows):
    """seeds companies: [(domain, code)] -> {domain or code: id}"""
    out = control(url, "records/companies",
                  {"inputs": [{"properties": {"domain": d, "company_code": c}} for d, c in rows]})
    return out["results"]


def sync(make, db, url, mode="mirror", billing=True, **hs):
    p = make(dsn=db.dsn, destinations={
        "hs": dict({"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
                    "requests_per_10s": 10000}, **hs)})
    fields = {"email": "email", "firstname": "first",
              "associations.company": {"from": "domain", "transform": ["trim", "lower"]}}
    assoc = {"company": {"to": "companies", "by": "domain"}}
    if billing:
        fields["associations.billing"] = {"from": "billing", "transform": [{"split": ","}]}
        assoc["billing"] = {"to": "companies", "by": "company_code", "label": "Billing"}
    p.add_mapping("people", {
        "source": "warehouse",
        "query": "SELECT id, email, first, domain, billing FROM people",
        "key": "id", "destination": "hs", "object": "contacts", "mode": mode,
        "match": {"email": "email"}, "fields": fields, "associations": assoc,
        **({"on_remove": "archive"} if mode == "mirror" else {}),
    })
    return p


def by_prop(url, obj, prop):
    return {r["properties"][prop]: r["id"] for r in control(url, "records/" + obj)["results"]
            if r["properties"].get(prop)}


def actual(url):
    """email -> (unlabeled targets, Billing targets), as company ids"""
    email = {i: e for e, i in by_prop(url, "contacts", "email").items()}
    out = {e: (set(), set()) for e in email.values()}
    for a in control(url, "associations/contacts/companies")["results"]:
        types = {t["typeId"] for t in a["types"]}
        if 279 in types:
            out[email[a["fromId"]]][0].add(a["toId"])
        if 7 in types:
            out[email[a["fromId"]]][1].add(a["toId"])
    return out


def expected(url, db, skip=()):
    """what the model says: a labeled pair is also associated unlabeled
    (HubSpot's rule), so the unlabeled set holds the Billing companies too"""
    dom, code = by_prop(url, "companies", "domain"), by_prop(url, "companies", "company_code")
    out = {}
    rows = db.psql("SELECT email, coalesce(domain, ''), coalesce(billing, '') FROM people",
                   "-At", "-F", "\t")
    for line in rows.splitlines():
        e, d, b = line.split("\t")
        if e in skip:
            continue
        bill = {code[c] for c in b.split(",") if c}
        out[e] = ({dom[d.strip().lower()]} if d else set()) | bill, bill
    return out


def run_clean(p, url):
    control(url, "config", NO_FAULTS)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)


def run_faulty(p, url):
    """a run with faults: it may end with rows not done (exit 1 or 4); the
    faults met association calls (search, v4 batch) too"""
    seen = len(control(url, "counters")["requests"])
    control(url, "config", FAULTS)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc in (0, 1, 4), (out, err)
    control(url, "config", NO_FAULTS)
    reqs = control(url, "counters")["requests"][seen:]
    hit = {r["path"].rsplit("/", 1)[-1] for r in reqs
           if ("/crm/v4/" in r["path"] or r["path"].endswith("/search"))
           and (r.get("fault") or r["status"] in (429, None) or (r["status"] or 0) >= 500)}
    assert hit & {"search", "create", "read", "archive"}, hit


def test_associations_follow_the_model_under_faults(project, db, emulator):
    url = emulator
    companies(url, [("a.com", "A1"), ("b.com", "B1"), ("c.com", "C1"), ("d.com", "D1")])
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, domain text, billing text);
        INSERT INTO people SELECT i, 'p' || i || '@x.io', 'F' || i,
               (ARRAY['a.com', 'B.com ', 'c.com', NULL])[1 + i % 4],
               (ARRAY['A1', 'B1,C1', NULL, 'D1'])[1 + i % 4]
          FROM generate_series(1, 250) i;
    """)
    p = sync(project, db, url)
    run_faulty(p, url)
    run_clean(p, url)
    assert actual(url) == expected(url, db)

    # associations move to other companies, some rows lose theirs, some
    # rows leave the model (archived), new rows come
    db.psql("""
        UPDATE people SET domain = 'd.com' WHERE id % 5 = 0;
        UPDATE people SET billing = 'C1' WHERE id % 7 = 0;
        UPDATE people SET domain = NULL, billing = NULL WHERE id % 11 = 0;
        DELETE FROM people WHERE id % 13 = 0;
        INSERT INTO people SELECT i, 'p' || i || '@x.io', 'F' || i, 'c.com', 'A1,D1'
          FROM generate_series(251, 300) i;
    """)
    run_faulty(p, url)
    run_clean(p, url)
    gone = {"p%d@x.io" % i for i in range(13, 251, 13)}
    got = actual(url)
    for e in gone:   # archived contacts: none left in the records
        assert e not in got
    assert got == expected(url, db)
    # nothing left to do
    before = len(control(url, "counters")["requests"])
    run_clean(p, url)
    assert len(control(url, "counters")["requests"]) == before


def test_not_found_and_ambiguous_fail_the_row_and_are_retried(project, db, emulator):
    url = emulator
    companies(url, [("a.com", "A1"), ("dup.com", "X1"), ("dup.com", "X2")])
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, domain text, billing text);
        INSERT INTO people VALUES (1, 'one@x.io', 'One', 'a.com', NULL),
                                  (2, 'two@x.io', 'Two', 'new.com', NULL),
                                  (3, 'three@x.io', 'Three', 'dup.com', NULL);
    """)
    p = sync(project, db, url, mode="upsert", billing=False)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    rc, out, err = p.run("failures", "people", env=ENV)
    assert "no companies record has domain new.com" in out, out
    assert "ambiguous match (2 records): companies with domain dup.com" in out, out
    assert "one@x.io" not in out
    # the contacts were written; only the association is missing
    assert set(by_prop(url, "contacts", "email")) == {"one@x.io", "two@x.io", "three@x.io"}
    assert actual(url)["two@x.io"] == (set(), set())

    # the target appears, the duplicate goes: the next run (model unchanged)
    # retries both rows and associates them
    companies(url, [("new.com", "N1")])
    dups = [r["id"] for r in control(url, "records/companies")["results"]
            if r["properties"].get("company_code") == "X2"]
    control(url, "remove/companies/" + dups[0], {})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    rc, out, err = p.run("failures", "people", env=ENV)
    assert "new.com" not in out and "dup.com" not in out, out
    got = actual(url)
    dom = by_prop(url, "companies", "domain")
    assert got["two@x.io"][0] == {dom["new.com"]}
    assert got["three@x.io"][0] == {dom["dup.com"]}
    assert got["one@x.io"][0] == {dom["a.com"]}


def test_check_names_missing_target_property_and_label(project, db, emulator):
    url = emulator
    db.psql("CREATE TABLE people (id int PRIMARY KEY, email text, first text, domain text, "
            "billing text)")
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url}})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, first, domain, billing FROM people",
        "key": "id", "destination": "hs", "object": "contacts", "mode": "upsert",
        "match": {"email": "email"},
        "fields": {"email": "email", "associations.company": "domain",
                   "associations.billing": "billing", "associations.owner": "first"},
        "associations": {"company": {"to": "companies", "by": "domian"},
                         "billing": {"to": "companies", "by": "name", "label": "Biling"},
                         "owner": {"to": "nothings", "by": "x"}},
    })
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2, (out, err)
    text = out + err
    assert 'associations.company.by: hubspot: companies has no property "domian" ' \
           '(did you mean "domain"?)' in text
    assert "associations.billing.by: hubspot: companies.name does not have unique values" in text
    assert 'associations.billing.label: hubspot: no association label "Biling" from contacts ' \
           'to companies' in text
    assert 'associations.owner.to: hubspot: object "nothings" does not exist' in text


def test_date_based_version_moves_and_removes(project, db, emulator):
    """api_version 2026-03: /crm/associations/2026-03/... and
    /crm/objects/2026-03/companies/search; an association that moves, a
    label removed, a row that loses its company"""
    url = emulator
    companies(url, [("a.com", "A1"), ("b.com", "B1")])
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, domain text, billing text);
        INSERT INTO people VALUES (1, 'one@x.io', 'One', 'a.com', 'A1'),
                                  (2, 'two@x.io', 'Two', 'b.com', 'A1,B1');
    """)
    p = sync(project, db, url, api_version="2026-03")
    run_clean(p, url)
    assert actual(url) == expected(url, db)
    db.psql("UPDATE people SET domain = 'b.com', billing = 'B1' WHERE id = 1; "
            "UPDATE people SET domain = NULL, billing = 'B1' WHERE id = 2")
    run_clean(p, url)
    assert actual(url) == expected(url, db)
    paths = {r["path"] for r in control(url, "counters")["requests"]}
    assert "/crm/associations/2026-03/contacts/companies/batch/labels/archive" in paths
    assert "/crm/associations/2026-03/contacts/companies/batch/archive" in paths
    assert "/crm/objects/2026-03/companies/search" in paths
    assert not any(x.startswith("/crm/v") for x in paths), paths


@pytest.mark.parametrize("fields,assoc,msg", [
    ({"associations.company": "domain"}, None,
     'mappings/people.json: fields.associations.company: no association "company" is declared'),
    ({}, {"company": {"to": "companies", "by": "domain"}},
     'mappings/people.json: associations.company: no field gives its values; add "fields": '
     '{"associations.company": "<column>"}'),
    ({"associations.company": "domain"}, {"company": {"to": "companies", "by": "domain", "lable": "x"}},
     'mappings/people.json: associations.company: unknown key "lable" (expected to, by, label, type_id)'),
    ({"associations.company": "domain"}, {"company": {"to": "companies"}},
     "mappings/people.json: associations.company: by: missing"),
])
def test_config_errors_name_the_file_and_key(project, db, emulator, fields, assoc, msg):
    db.psql("CREATE TABLE people (id int PRIMARY KEY, email text, domain text)")
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": emulator}})
    m = {"source": "warehouse", "query": "SELECT id, email, domain FROM people", "key": "id",
         "destination": "hs", "object": "contacts", "match": {"email": "email"},
         "fields": dict({"email": "email"}, **fields)}
    if assoc:
        m["associations"] = assoc
    p.add_mapping("people", m)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 2, (out, err)
    assert msg in out + err, out + err


def test_too_many_values_fail_the_row_before_anything_is_sent(project, db, emulator):
    """a row that names more than 10 targets for one declaration fails with
    the count; the other rows go on"""
    url = emulator
    companies(url, [("a.com", "A1")])
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, domain text, billing text);
        INSERT INTO people VALUES (1, 'one@x.io', 'One', 'a.com', NULL),
          (2, 'two@x.io', 'Two', 'a.com,b.com,c.com,d.com,e.com,f.com,g.com,h.com,i.com,j.com,k.com', NULL);
    """)
    p = sync(project, db, url, mode="upsert", billing=False)
    m = p.path("mappings", "people.json")
    import json
    with open(m) as f:
        doc = json.load(f)
    doc["fields"]["associations.company"] = {"from": "domain", "transform": [{"split": ","}]}
    with open(m, "w") as f:
        json.dump(doc, f)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    rc, out, err = p.run("failures", "people", env=ENV)
    assert "associations.company: 11 values; at most 10 a row" in out, out
    assert set(by_prop(url, "contacts", "email")) == {"one@x.io"}
    assert actual(url)["one@x.io"][0] == {by_prop(url, "companies", "domain")["a.com"]}
