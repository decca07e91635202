"""HubSpot matching through search (issue 18): companies matched by domain,
a property HubSpot does not hold unique (hasUniqueValue false), so
batch/upsert cannot take it.  retl looks each batch's domains up with
POST /crm/v3/objects/companies/search (an IN filter), then updates the one
record found by its id, creates what is not there (upsert, mirror) or fails
the row "no record matches" (update), and fails a row whose domain several
companies hold "ambiguous match (N records)".  Also update mode by a unique
property and by hs_object_id.  The emulator (tests/emulators/hubspot.py,
hubspot_search.py) runs in-process on loopback, with faults on.
"""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import hubspot  # noqa: E402
from emulator_control import control  # noqa: E402

TOKEN = "pat-na1-55555555-bbbb-cccc-dddd-eeeeeeeeeeee"
ENV = {"HUBSPOT_TOKEN": TOKEN}
FAULTS = {"error_rate_5xx": 0.08, "drop_before": 0.03, "drop_after": 0.03,
          "fail_every_nth_429": 7, "seed": 18}
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


def project_for(project, db, url, mode="upsert", match=None, fields=None, **extra):
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
               "requests_per_10s": 10000},
    })
    m = {"source": "warehouse", "query": "SELECT id, domain, name, tier FROM accounts",
         "key": "id", "destination": "hs", "object": "companies", "mode": mode,
         "match": match or {"domain": "domain"},
         "fields": fields or {"domain": "domain", "name": "name", "industry": "tier"}}
    m.update(extra)
    p.add_mapping("accounts", m)
    return p


def make_accounts(db, n):
    db.psql(f"""
        CREATE TABLE accounts (id int PRIMARY KEY, domain text, name text, tier text);
        INSERT INTO accounts SELECT i, 'acme' || i || '.example', 'Acme ' || i,
               'tier' || (i % 3) FROM generate_series(1, {n}) i;
    """)


def companies(url):
    return control(url, "records/companies")["results"]


def seed(url, props_list):
    control(url, "records/companies", {"inputs": [{"properties": p} for p in props_list]})


def requests(url, suffix):
    return [r for r in control(url, "counters")["requests"] if r["path"].endswith(suffix)]


def model(db):
    out = {}
    for line in db.psql("SELECT domain, name, tier FROM accounts", "-At", "-F", "\t").splitlines():
        d, n, t = line.split("\t")
        out[d] = {"name": n, "industry": t}
    return out


def by_domain(url):
    got = {}
    for r in companies(url):
        d = r["properties"].get("domain")
        got.setdefault(d, []).append(r)
    return got


def assert_equal_to_model(url, db, extra_domains=()):
    """every model row is exactly one company with the model's values"""
    got = by_domain(url)
    want = model(db)
    for d, recs in got.items():
        assert d in want or d in extra_domains, ("a company the model does not hold", d)
        assert len(recs) == 1 or d in extra_domains, ("duplicates", d, len(recs))
    for d, vals in want.items():
        assert d in got, ("missing", d)
        p = got[d][0]["properties"]
        assert {"name": p.get("name"), "industry": p.get("industry")} == vals, d


def run(p, *args):
    return p.run(*args, "accounts", env=ENV)


def test_upsert_by_domain_under_faults_through_model_changes(project, db, emulator):
    url = emulator
    make_accounts(db, 450)
    # some companies exist already (made by people in HubSpot): found and
    # updated, never created twice
    seed(url, [{"domain": "acme%d.example" % i, "name": "old"} for i in range(1, 60)])
    control(url, "config", FAULTS)
    p = project_for(project, db, url)
    for _ in range(6):
        rc, out, err = run(p, "run")
        if rc == 0:
            break
        assert rc in (1, 4), (out, err)
    assert rc == 0, (out, err)
    assert requests(url, "/companies/search"), "matched through search"
    assert not requests(url, "/batch/upsert"), "batch/upsert cannot take domain"
    assert_equal_to_model(url, db)

    # a sequence of model changes, faults still on
    steps = [
        "UPDATE accounts SET name = name || ' Inc' WHERE id % 4 = 0",
        "INSERT INTO accounts SELECT i, 'new' || i || '.example', 'New ' || i, 'tier1' "
        "FROM generate_series(1000, 1120) i",
        "UPDATE accounts SET tier = 'tier9' WHERE id % 7 = 0",
        # a domain changes: the row keeps its record (its id is stored)
        "UPDATE accounts SET domain = 'moved' || id || '.example' WHERE id % 50 = 0",
    ]
    for sql in steps:
        db.psql(sql)
        for _ in range(6):
            rc, out, err = run(p, "run")
            if rc == 0:
                break
            assert rc in (1, 4), (out, err)
        assert rc == 0, (sql, out, err)
        assert_equal_to_model(url, db)
    # calm: nothing left to send, and nothing searched again
    control(url, "config", CALM)
    before = len(control(url, "counters")["requests"])
    rc, out, err = run(p, "run")
    assert rc == 0, (out, err)
    assert len(control(url, "counters")["requests"]) == before


def test_ambiguous_and_unmatched_rows_in_update_mode(project, db, emulator):
    url = emulator
    make_accounts(db, 120)
    # rows 1..100 exist once; 101 twice (ambiguous); 102..120 not at all
    seed(url, [{"domain": "acme%d.example" % i, "name": "old"} for i in range(1, 101)])
    seed(url, [{"domain": "acme101.example", "name": "twin a"},
               {"domain": "ACME101.example", "name": "twin b"}])
    control(url, "config", FAULTS)
    p = project_for(project, db, url, mode="update")
    for _ in range(6):
        rc, out, err = run(p, "run")
        if not requests(url, "/batch/create") and rc == 1 and "failed" in out:
            rc2, fout, ferr = run(p, "failures")
            if fout.count("no record matches") == 19 and "ambiguous match (2 records)" in fout:
                break
    rc, fout, ferr = run(p, "failures")
    assert "ambiguous match (2 records)" in fout, fout
    assert fout.count("no record matches (domain = acme1") == 19, fout
    # nothing is ever created in update mode
    assert not requests(url, "/batch/create")
    assert len(companies(url)) == 102
    got = by_domain(url)
    for i in range(1, 101):
        p_ = got["acme%d.example" % i][0]["properties"]
        assert p_["name"] == "Acme %d" % i

    # retried next run: the person fixes HubSpot (one twin archived, the
    # missing companies created), and the failed rows go through
    control(url, "config", CALM)
    twins = [r for r in companies(url) if r["properties"]["name"].startswith("twin")]
    archive = json.dumps({"inputs": [{"id": twins[1]["id"]}]})
    import urllib.request
    req = urllib.request.Request(url + "/crm/v3/objects/companies/batch/archive",
                                 data=archive.encode(), method="POST",
                                 headers={"Authorization": "Bearer " + TOKEN,
                                          "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()
    seed(url, [{"domain": "acme%d.example" % i} for i in range(102, 121)])
    rc, out, err = run(p, "run")
    assert rc == 0, (out, err)
    rc, fout, ferr = run(p, "failures")
    assert "no record matches" not in fout and "ambiguous" not in fout
    assert_equal_to_model(url, db)
    assert not requests(url, "/batch/create")


def test_upsert_creates_when_nothing_matches_and_fails_ambiguous(project, db, emulator):
    url = emulator
    make_accounts(db, 30)
    seed(url, [{"domain": "acme7.example", "name": "a"}, {"domain": "acme7.example", "name": "b"}])
    p = project_for(project, db, url)
    rc, out, err = run(p, "run")
    assert rc == 1, (out, err)
    rc, fout, ferr = run(p, "failures")
    assert "ambiguous match (2 records)" in fout
    assert len(requests(url, "/batch/create")) == 1
    assert_equal_to_model_but(url, db, "acme7.example")
    # still failing next run (retried), and never created
    rc, out, err = run(p, "run")
    assert rc == 1
    assert len(by_domain(url)["acme7.example"]) == 2


def assert_equal_to_model_but(url, db, skip):
    got = by_domain(url)
    for d, vals in model(db).items():
        if d == skip:
            continue
        assert len(got[d]) == 1
        p = got[d][0]["properties"]
        assert {"name": p.get("name"), "industry": p.get("industry")} == vals


def test_paging_when_duplicates_fill_a_page(project, db, emulator):
    """More records match a batch's domains than one page holds (200): the
    search is paged with `after`, and the counts are right"""
    url = emulator
    make_accounts(db, 20)
    seed(url, [{"domain": "acme%d.example" % (i % 20 + 1), "name": "dup"} for i in range(20, 230)]
         + [{"domain": "acme1.example", "name": "x"}])
    # now every domain but none is held by 10-12 companies: all ambiguous
    p = project_for(project, db, url)
    rc, out, err = run(p, "run")
    assert rc == 1, (out, err)
    searches = requests(url, "/companies/search")
    assert len(searches) >= 2, "paged"
    rc, fout, ferr = run(p, "failures")
    assert "ambiguous match (12 records)" in fout      # acme1: 11 seeded + x
    assert "ambiguous match (11 records)" in fout
    assert not requests(url, "/batch/create")


def test_update_mode_by_unique_property_and_by_object_id(project, db, emulator):
    url = emulator
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, hsid text);
        INSERT INTO people VALUES (1, 'a@example.com', 'A', NULL), (2, 'b@example.com', 'B', NULL),
                                  (3, 'c@example.com', 'C', NULL);
    """)
    control(url, "records/contacts", {"inputs": [{"properties": {"email": "a@example.com"}}]})
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url}})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, first FROM people", "key": "id",
        "destination": "hs", "object": "contacts", "mode": "update",
        "match": {"email": "email"}, "fields": {"email": "email", "firstname": "first"}})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    rc, fout, ferr = p.run("failures", "people", env=ENV)
    assert "no record matches (email = b@example.com)" in fout
    assert "no record matches (email = c@example.com)" in fout
    recs = control(url, "records/contacts")["results"]
    assert len(recs) == 1 and recs[0]["properties"]["firstname"] == "A"
    assert not requests(url, "/batch/create") and not requests(url, "/batch/upsert")

    # by the record id: hs_object_id is the id, not a property to write
    ids = {}
    for r in recs:
        ids[r["properties"]["email"]] = r["id"]
    db.psql("UPDATE people SET hsid = '%s' WHERE id = 1; UPDATE people SET hsid = '999999' "
            "WHERE id = 2" % ids["a@example.com"])
    p.add_mapping("byid", {
        "source": "warehouse", "query": "SELECT id, hsid, first FROM people WHERE hsid IS NOT NULL",
        "key": "id", "destination": "hs", "object": "contacts", "mode": "update",
        "match": {"hs_object_id": "hsid"},
        "fields": {"hs_object_id": "hsid", "lastname": "first"}})
    rc, out, err = p.run("check", "byid", env=ENV)
    assert rc == 0, (out, err)
    rc, out, err = p.run("run", "byid", env=ENV)
    assert rc == 1, (out, err)
    rc, fout, ferr = p.run("failures", "byid", env=ENV)
    assert "no record matches (hs_object_id = 999999)" in fout
    recs = control(url, "records/contacts")["results"]
    assert len(recs) == 1 and recs[0]["properties"].get("lastname") == "A", (
        fout, control(url, "counters")["requests"][-2:])
    assert not requests(url, "/search")


def test_check_and_plan_say_search(project, db, emulator):
    url = emulator
    make_accounts(db, 250)
    p = project_for(project, db, url)
    rc, out, err = run(p, "check")
    assert rc == 0, (out, err)
    assert "companies.domain does not have unique values" in err
    assert "found through search" in err
    rc, out, err = run(p, "plan")
    assert rc == 0, (out, err)
    assert "3 search requests" in err
    # 3 writes, the property's definition, 3 searches
    assert "requests            7" in out.replace("  ", "  "), out


def test_search_has_its_own_limiter(project, db):
    """HubSpot's search endpoints allow 5 requests a second per account,
    apart from the burst limit: with the emulator holding that limit, retl's
    own limiter for search keeps every search under it (no 429), while the
    burst limit is far from reached"""
    server, url = hubspot.start(port=0, tokens=[TOKEN], rate="10000/10s", search_rate="5/1s")
    try:
        make_accounts(db, 1500)
        p = project(dsn=db.dsn, destinations={
            "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
                   "requests_per_10s": 10000, "max_inflight": 8}})
        p.add_mapping("accounts", {
            "source": "warehouse", "query": "SELECT id, domain, name, tier FROM accounts",
            "key": "id", "destination": "hs", "object": "companies", "mode": "upsert",
            "match": {"domain": "domain"},
            "fields": {"domain": "domain", "name": "name", "industry": "tier"}})
        rc, out, err = run(p, "run")
        assert rc == 0, (out, err)
        counters = control(url, "counters")
        # 15 searches; a request that reached the emulator late on a loaded
        # machine may meet its window once or twice (and be sent again);
        # without the limiter it is many
        assert 15 <= len(requests(url, "/companies/search")) < 18
        assert counters.get("search_rate_limited", 0) < 3, counters.get("search_rate_limited")
        assert_equal_to_model(url, db)
    finally:
        server.shutdown()
        server.server_close()


def test_mirror_by_domain_archives_what_left_the_model(project, db, emulator):
    """mode mirror: rows are matched through search like upsert; rows that
    leave the model are archived by the id retl stored, faults on"""
    url = emulator
    make_accounts(db, 160)
    seed(url, [{"domain": "acme%d.example" % i, "name": "old"} for i in range(1, 40)])
    seed(url, [{"domain": "someone-else.example", "name": "not ours"}])
    control(url, "config", FAULTS)
    p = project_for(project, db, url, mode="mirror", on_remove="archive")
    for _ in range(6):
        rc, out, err = run(p, "run")
        if rc == 0:
            break
    assert rc == 0, (out, err)
    assert_equal_to_model(url, db, extra_domains=("someone-else.example",))
    db.psql("DELETE FROM accounts WHERE id % 5 = 0")
    for _ in range(6):
        rc, out, err = run(p, "run")
        if rc == 0:
            break
    assert rc == 0, (out, err)
    # the model's companies, and the one retl never matched, nothing else
    assert_equal_to_model(url, db, extra_domains=("someone-else.example",))
    got = by_domain(url)
    assert "acme5.example" not in got and "someone-else.example" in got
    archived = control(url, "records/companies?archived=1").get("archived", [])
    assert len(archived) == 32
