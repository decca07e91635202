"""Update-only syncs (issue 18): `mode: update` with a match finds records
that already exist and never creates one.

Airtable: rows are looked up by a filterByFormula on the match fields (POST
listRecords, 10 rows a request), one record -> PATCH by its id, none -> "no
record matches", several -> "ambiguous match (N records)"; the found id is
kept, and a kept id whose record was deleted is looked up again.
Mailchimp: PATCH /lists/{id}/members/{hash}; a 404 -> "no record matches";
never a batch subscribe or a PUT, never a status change.

Records are created in the emulators by the test (never by retl); each sync
runs with faults on (5xx, 429, answers lost before and after the write), the
model changes between runs, and every scenario ends with the destination
equal to the model for the mapped fields, no record created, and the rows
that match nothing (or too much) listed by `retl failures`, retried each run
and synced once their record exists.
"""

import json
import os
import sqlite3
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import airtable  # noqa: E402
import mailchimp  # noqa: E402
from emulator_control import control, starter  # noqa: E402

AT_TOKEN = "patAAAAAAAAAAAAAA.0123456789abcdef0123456789abcdef"
MC_KEY = "5f4dcc3b5aa765d61d8327deb882cf99-us6"
ENV = {"AIRTABLE_TOKEN": AT_TOKEN, "MAILCHIMP_KEY": MC_KEY}
BASE = airtable.DEFAULT_BASE
LIST = mailchimp.DEFAULT_LIST

FAULTS = {"error_rate_5xx": 0.1, "drop_before": 0.08, "drop_after": 0.08, "seed": 7}


def failing(p, sync):
    """{key: reason} of the rows `retl failures` lists"""
    rc, out, err = p.run("failures", sync, env=ENV)
    assert rc == 0, (out, err)
    rows, key = {}, None
    for line in out.splitlines():
        w = line.split()
        if w[:1] == ["failed"] and w[1:2] == ["key"]:
            key = int(w[2])
        elif key is not None and line.startswith(" "):
            rows[key] = line.strip()
            key = None
    return rows, out


def run_until(p, sync, want_failing, runs=6):
    """runs the sync (faults on) until exactly the keys want_failing fail;
    every run before ends 1 (rows failed) or 4 (no answer for some rows)"""
    for _ in range(runs):
        rc, out, err = p.run("run", sync, env=ENV, timeout=240)
        assert rc in (0, 1, 4), (out, err)
        rows, listing = failing(p, sync)
        if set(rows) == set(want_failing) and rc == (1 if want_failing else 0):
            return rows, listing
    pytest.fail("the sync did not settle in %d runs: %s\n%s" % (runs, out, listing))


# ---- Airtable -----------------------------------------------------------------

@pytest.fixture
def at_emulator():
    yield from starter(airtable, tokens=[AT_TOKEN], rate_per_second=1000, penalty=1.0)


def at_records(url):
    return control(url, "records/%s/People" % BASE)["records"]


def at_seed(url, fields):
    return control(url, "records/%s/People" % BASE,
                   {"records": [{"fields": f} for f in fields]})["records"]


def at_project(project, db, url, **extra):
    dest = {"type": "airtable", "token": "${AIRTABLE_TOKEN}", "base": BASE,
            "base_url": url, "requests_per_second": 50, "rate_limit_penalty": 1}
    p = project(dsn=db.dsn, destinations={"at": dest})
    m = {"source": "warehouse", "query": "SELECT id, email, name, seats FROM people",
         "key": "id", "destination": "at", "object": "People", "mode": "update",
         "match": {"Email": "email"},
         "fields": {"Email": "email", "Name": "name",
                    "Seats": {"from": "seats", "type": "integer"}}}
    m.update(extra)
    p.add_mapping("people", m)
    return p


def at_assert_model(url, db, skip=()):
    """every model row with a record: exactly one record of its email, with
    the model's Name and Seats"""
    by_email = {}
    for r in at_records(url):
        by_email.setdefault(r["fields"].get("Email"), []).append(r["fields"])
    for line in db.psql("SELECT id, email, name, seats FROM people", "-At", "-F",
                        "\t").splitlines():
        i, e, n, s = line.split("\t")
        if int(i) in skip:
            continue
        got = by_email.get(e)
        assert got and len(got) == 1, (e, got)
        assert (got[0].get("Name"), got[0].get("Seats")) == (n, int(s)), (e, got)


def test_airtable_update_only_under_faults(project, db, at_emulator):
    url = at_emulator()
    # 45 rows, matched by Email; quotes and backslashes in 5's and 6's
    # addresses (formula escaping); 41 and 42 have no record, 43 two
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, name text, seats int);
        INSERT INTO people SELECT i, 'p' || i || '@x.io', 'Name ' || i, i
            FROM generate_series(1, 45) i;
        UPDATE people SET email = 'o''neil\\' || id || '@x.io' WHERE id IN (5, 6);
    """)
    emails = dict(line.split("\t") for line in
                  db.psql("SELECT id, email FROM people", "-At", "-F", "\t").splitlines())
    seeded = [{"Email": emails[str(i)], "Name": "old", "Seats": 0}
              for i in range(1, 46) if i not in (41, 42)]
    # a second record for 43: ambiguous; one nobody's row matches; and a
    # record whose email differs from 7's only by case: not 7's
    seeded += [{"Email": "p43@x.io", "Name": "twin"}, {"Email": "hand@x.io", "Name": "hand"},
               {"Email": "P7@X.IO", "Name": "case"}]
    at_seed(url, seeded)
    total = len(at_records(url))
    p = at_project(project, db, url)

    # plan: a lookup before each write request (45 rows: 5 + 5)
    rc, out, err = p.run("plan", "people", env=ENV)
    assert rc == 0, (out, err)
    assert any(ln.split()[:2] == ["requests", "10"] for ln in out.splitlines()), out

    control(url, "config", dict(FAULTS, force_429_at=3))
    rows, listing = run_until(p, "people", {41, 42, 43})
    assert rows[41].startswith('no record matches: no record of table "People" has '
                               'Email = "p41@x.io"'), listing
    assert rows[43].startswith('ambiguous match (2 records): Email = "p43@x.io"'), listing
    at_assert_model(url, db, skip={41, 42, 43})
    assert len(at_records(url)) == total                   # nothing created
    by_email = {r["fields"].get("Email"): r["fields"] for r in at_records(url)}
    assert by_email["P7@X.IO"]["Name"] == "case" and by_email["hand@x.io"]["Name"] == "hand"
    c = control(url, "counters")
    assert c["errors_5xx"] > 0 and c["forced_429"] == 1
    assert c["dropped_before"] + c["dropped_after"] > 0
    assert not [r for r in c["requests"] if r["method"] in ("POST",)
                and not r["path"].endswith("/listRecords") and "/_emulator/" not in r["path"]]

    # the model changes; the records retl found are PATCHed by their kept
    # ids (no lookup), the failing rows are looked up again
    db.psql("UPDATE people SET name = name || ' v2', seats = seats + 100 WHERE id % 4 = 0")
    rows, listing = run_until(p, "people", {41, 42, 43})
    at_assert_model(url, db, skip={41, 42, 43})

    # the records appear (41 created by someone, 43's twin deleted), and 8's
    # record is deleted and made again: its kept id is gone, looked up again
    at_seed(url, [{"Email": "p41@x.io", "Name": "new"}])
    recs = at_records(url)
    twin = [r["id"] for r in recs if r["fields"].get("Name") == "twin"]
    eight = [r["id"] for r in recs if r["fields"].get("Email") == "p8@x.io"]
    server_delete(url, twin + eight)
    at_seed(url, [{"Email": "p8@x.io", "Name": "remade"}])
    db.psql("UPDATE people SET name = 'Eight v3' WHERE id = 8")
    rows, listing = run_until(p, "people", {42})
    at_assert_model(url, db, skip={42})
    assert len(at_records(url)) == total                   # 2 deleted, 2 made by hand
    remade = [r for r in at_records(url) if r["fields"].get("Email") == "p8@x.io"]
    assert remade[0]["fields"]["Name"] == "Eight v3"
    assert kept_ids(p)["8"] == remade[0]["id"] != eight[0]


def kept_ids(p):
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return dict(con.execute("SELECT key, dest_id FROM cache WHERE sync = 'people'"))
    finally:
        con.close()


def server_delete(url, ids):
    """deletes records as a person would (the API, with the test's token)"""
    q = "&".join("records%5B%5D=" + i for i in ids)
    req = urllib.request.Request("%s/v0/%s/People?%s" % (url, BASE, q), method="DELETE",
                                 headers={"Authorization": "Bearer " + AT_TOKEN})
    for _ in range(20):        # faults are on: try until it is answered
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except Exception:      # noqa: BLE001 - a 5xx or a dropped answer
            if not [x for x in at_records(url) if x["id"] in ids]:
                return None
    raise AssertionError("could not delete %s" % ids)


def test_airtable_match_by_record_id(project, db, at_emulator):
    """{"id": column}: the column holds Airtable record ids; PATCH by it, no
    lookup; an id with no record fails "no record matches"."""
    url = at_emulator()
    recs = at_seed(url, [{"Email": "a@x.io", "Name": "old"}, {"Email": "b@x.io", "Name": "old"}])
    a, b = recs[0]["id"], recs[1]["id"]
    db.psql(f"""
        CREATE TABLE people (id int PRIMARY KEY, at_id text, name text);
        INSERT INTO people VALUES (1, '{a}', 'Ann'), (2, '{b}', 'Bob'),
                                  (3, 'recNOPE0000000000', 'Nobody'), (4, 'bogus', 'Bogus');
    """)
    p = at_project(project, db, url, query="SELECT id, at_id, name FROM people",
                   match={"id": "at_id"}, fields={"id": "at_id", "Name": "name"})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 0, (out, err)
    control(url, "config", FAULTS)
    rows, listing = run_until(p, "people", {3, 4})
    assert rows[3].startswith('no record matches: table "People" has no record '
                              'recNOPE0000000000 (ROW_DOES_NOT_EXIST'), listing
    assert rows[4].startswith('id: "bogus" is not an Airtable record id'), listing
    names = {r["id"]: r["fields"] for r in at_records(url)}
    assert len(names) == 2 and names[a]["Name"] == "Ann" and names[b]["Name"] == "Bob"
    assert not [r for r in control(url, "counters")["requests"]
                if r["path"].endswith("/listRecords")]
    # the column decides, not the id kept from the last run: keys 1 and 2
    # swap records
    db.psql(f"UPDATE people SET at_id = CASE id WHEN 1 THEN '{b}' ELSE '{a}' END,"
            f" name = name || ' 2' WHERE id IN (1, 2)")
    run_until(p, "people", {3, 4})
    names = {r["id"]: r["fields"] for r in at_records(url)}
    assert names[b]["Name"] == "Ann 2" and names[a]["Name"] == "Bob 2"
    p = at_project(project, db, url, mode="upsert", query="SELECT id, at_id, name FROM people",
                   match={"id": "at_id"},
                   fields={"id": "at_id", "Name": "name"})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 2 and 'match.id: a record id names the record only in mode "update"' in err, \
        (out, err)


def test_airtable_keys_that_swap_match_values_follow_the_match(project, db, at_emulator):
    """Update mode finds records by their match value: when two keys swap
    emails, each row goes to the record that has its email now, not to the
    record its key updated before (whose other fields, Notes here, belong to
    another person)."""
    url = at_emulator()
    recs = at_seed(url, [{"Email": "a@x.io", "Name": "old", "Notes": "person A"},
                         {"Email": "b@x.io", "Name": "old", "Notes": "person B"}])
    by_id = {r["id"]: r["fields"]["Notes"] for r in recs}
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, name text, seats int);
        INSERT INTO people VALUES (1, 'a@x.io', 'Ann', 1), (2, 'b@x.io', 'Bob', 2);
    """)
    p = at_project(project, db, url)
    control(url, "config", FAULTS)
    run_until(p, "people", set())
    db.psql("UPDATE people SET email = CASE id WHEN 1 THEN 'b@x.io' ELSE 'a@x.io' END,"
            " name = name || ' 2'")
    run_until(p, "people", set())
    at_assert_model(url, db)
    got = {r["fields"]["Email"]: (r["fields"]["Name"], by_id[r["id"]], r["fields"]["Notes"])
           for r in at_records(url)}
    assert got == {"a@x.io": ("Bob 2", "person A", "person A"),
                   "b@x.io": ("Ann 2", "person B", "person B")}, got


def test_airtable_update_without_match_needs_a_kept_id(project, db, at_emulator):
    url = at_emulator()
    db.psql("CREATE TABLE people (id int PRIMARY KEY, email text, name text, seats int);"
            "INSERT INTO people VALUES (1, 'a@x.io', 'A', 1)")
    at_seed(url, [{"Email": "a@x.io"}])
    p = at_project(project, db, url)
    m = p.path("mappings", "people.json")
    with open(m) as f:
        cfg = json.load(f)
    del cfg["match"]
    with open(m, "w") as f:
        json.dump(cfg, f)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    rows, listing = failing(p, "people")
    assert "set \"match\" to find records by a field" in rows[1], listing


def test_airtable_check_in_update_mode_takes_an_email_field(project, db, at_emulator):
    url = at_emulator()
    db.psql("CREATE TABLE people (id int PRIMARY KEY, email text, name text, seats int)")
    p = at_project(project, db, url, match={"Work Email": "email"},
                   fields={"Work Email": "email", "Name": "name"})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 0, (out, err)
    p = at_project(project, db, url, match={"Signup": "email"},
                   fields={"Signup": "email", "Name": "name"})
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2 and 'field "Signup" is of type date; update mode finds records' in err, \
        (out, err)


# ---- Mailchimp ------------------------------------------------------------------

@pytest.fixture
def mc_emulator():
    yield from starter(mailchimp, api_key=MC_KEY)


def mc_members(url):
    return {m["email_address"].lower(): m for m in control(url, "members/" + LIST)["members"]}


def mc_project(project, db, url):
    dest = {"type": "mailchimp", "api_key": "${MAILCHIMP_KEY}", "base_url": url + "/3.0"}
    p = project(dsn=db.dsn, destinations={"mc": dest})
    p.add_mapping("members", {
        "source": "warehouse", "query": "SELECT id, email, first, plan FROM people",
        "key": "id", "destination": "mc", "object": LIST, "mode": "update",
        "match": {"email_address": "email"},
        "fields": {"email_address": "email", "merge_fields.FNAME": "first",
                   "tags": {"from": "plan", "transform": [{"split": ","}]}}})
    return p


def mc_assert_model(url, db, skip=()):
    got = mc_members(url)
    for line in db.psql("SELECT id, email, first, plan FROM people", "-At", "-F",
                        "\t").splitlines():
        i, e, f, plan = line.split("\t")
        if int(i) in skip:
            continue
        m = got[e.lower()]
        assert m["merge_fields"]["FNAME"] == f, (e, m)
        # the mapping's tags; "hand" is the person's and stays
        assert sorted(t["name"] for t in m["tags"] if t["name"] != "hand") == \
            sorted(plan.split(",")), (e, m)


def test_mailchimp_update_only_under_faults(project, db, mc_emulator):
    url = mc_emulator()
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, plan text);
        INSERT INTO people SELECT i, 'm' || i || '@x.io', 'First ' || i,
            CASE WHEN i % 3 = 0 THEN 'pro,beta' ELSE 'free' END
            FROM generate_series(1, 30) i;
    """)
    # members made by hand: 1-28 (every 5th unsubscribed), tags of their own
    seeded = [{"email_address": "M%d@x.io" % i if i == 2 else "m%d@x.io" % i,
               "status": "unsubscribed" if i % 5 == 0 else "subscribed",
               "merge_fields": {"FNAME": "old"}, "tags": ["hand"]} for i in range(1, 29)]
    control(url, "members/" + LIST, {"members": seeded})
    before = {e: m["status"] for e, m in mc_members(url).items()}
    p = mc_project(project, db, url)
    rc, out, err = p.run("plan", "members", env=ENV)     # one PATCH a member
    assert rc == 0 and any(ln.split()[:2] == ["requests", "30"] for ln in out.splitlines()), \
        (out, err)

    control(url, "config", {"force_429_rate": 0.1, "error_rate_5xx": 0.1,
                            "drop_before": 0.08, "drop_after": 0.08, "seed": 3})
    rows, listing = run_until(p, "members", {29, 30})
    assert rows[29].startswith("no record matches: no member of audience %s has this "
                               "address" % LIST), listing
    assert "Resource Not Found" in rows[29], listing
    mc_assert_model(url, db, skip={29, 30})
    after = mc_members(url)
    assert set(after) == set(before)                           # nothing created
    assert {e: m["status"] for e, m in after.items()} == before   # no status changed
    assert all("hand" in [t["name"] for t in m["tags"]] for m in after.values())
    c = control(url, "counters")
    assert c["forced_429"] > 0 and c["errors_5xx"] > 0
    api = [r for r in c["requests"] if r["path"].startswith("/3.0/lists/")]
    assert not [r for r in api if r["method"] == "PUT" or r["path"] == "/3.0/lists/" + LIST]

    # the model changes; then 29 subscribes by itself and is updated next run
    db.psql("UPDATE people SET first = first || ' v2', plan = 'free' WHERE id % 3 = 0")
    run_until(p, "members", {29, 30})
    mc_assert_model(url, db, skip={29, 30})
    control(url, "members/" + LIST, {"members": [
        {"email_address": "m29@x.io", "status": "subscribed"}]})
    run_until(p, "members", {30})
    mc_assert_model(url, db, skip={30})
    assert "m30@x.io" not in mc_members(url)


def test_mailchimp_update_refuses_status_if_new(project, db, mc_emulator):
    url = mc_emulator()
    db.psql("CREATE TABLE people (id int PRIMARY KEY, email text, first text, plan text)")
    p = mc_project(project, db, url)
    m = p.path("mappings", "members.json")
    with open(m) as f:
        cfg = json.load(f)
    cfg["status_if_new"] = "pending"
    with open(m, "w") as f:
        json.dump(cfg, f)
    rc, out, err = p.run("run", "members", env=ENV)
    assert rc == 2 and 'status_if_new: mode "update" never adds members' in err, (out, err)
