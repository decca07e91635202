"""mode "membership" (issue 18): the model's rows are the members of a HubSpot static
list or a Mailchimp static segment.  Rows that join are added, rows that leave are
removed from the list (never archived or deleted), a row whose record does not exist
fails "no record matches" and joins once the record exists; the safety limits stop a
mass removal.  The emulators run in-process on loopback, with faults on (5xx, 429,
answers lost after the change was applied), and every scenario ends with the list's
members equal to the model record by record.
"""

import json
import os
import random
import re
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import hubspot  # noqa: E402
import mailchimp  # noqa: E402
from emulator_control import control, running  # noqa: E402

TOKEN = "test-token"
HS_ENV = {"HUBSPOT_TOKEN": TOKEN}
MC_KEY = "5f4dcc3b5aa765d61d8327deb882cf99-us6"
MC_ENV = {"MAILCHIMP_KEY": MC_KEY}
MC_LIST = mailchimp.DEFAULT_LIST
SAFETY_EXIT = 5


@pytest.fixture
def hs():
    yield from running(hubspot, rate="1000/10s")


@pytest.fixture
def mc():
    yield from running(mailchimp, api_key=MC_KEY)


# ---- the model -----------------------------------------------------------------

def email(i):
    return "person%d@example.com" % i


class Audience:
    """the model: table audience(id, email), changed at random"""

    def __init__(self, db, rng, n):
        self.db, self.rng = db, rng
        self.rows = {i: email(i) for i in range(1, n + 1)}
        self.pool = n            # ids handed out so far
        db.psql("CREATE TABLE audience (id int PRIMARY KEY, email text);")
        self.write()

    def write(self):
        vals = ",".join("(%d,'%s')" % kv for kv in sorted(self.rows.items()))
        self.db.psql("DELETE FROM audience;" +
                     ("INSERT INTO audience VALUES %s;" % vals if vals else ""))

    def change(self):
        rng, rows = self.rng, self.rows
        for i in rng.sample(sorted(rows), min(len(rows), rng.randint(0, 3))):
            del rows[i]                                   # leave
        for _ in range(rng.randint(0, 3)):                # join, or come back
            i = rng.randint(1, self.pool + 2)
            self.pool = max(self.pool, i)
            rows[i] = email(i)
        if rows and rng.random() < 0.4:                   # the match value moves
            i = rng.choice(sorted(rows))
            self.moved = getattr(self, "moved", 0) + 1
            rows[i] = "moved%d@example.com" % self.moved
        self.write()

    def emails(self):
        return set(self.rows.values())


def faults(url, on, rng=None):
    """5xx before and after the change, answers lost after it, and 429s (HubSpot's
    every-nth knob, Mailchimp's rate knob)"""
    knobs = control(url, "config")
    k429 = "fail_every_nth_429" if "fail_every_nth_429" in knobs else "force_429_rate"
    if not on:
        control(url, "config", {"error_rate_5xx": 0, "error_5xx_after_rate": 0,
                                "drop_after": 0, k429: 0})
        return
    control(url, "config", {"error_rate_5xx": 0.1, "error_5xx_after_rate": 0.1,
                            "drop_after": 0.1,
                            k429: 5 if k429 == "fail_every_nth_429" else 0.2,
                            "seed": rng.randint(0, 1 << 30)})


def faults_met(url):
    """the fault knobs did hit membership requests (else the test proves little)"""
    hit = {r.get("fault") or r["status"] for r in control(url, "counters")["requests"]}
    assert {"drop_after", "5xx_after"} & hit and {429, "429", "forced_429"} & hit, hit


def mapping(dest, match_field, **extra):
    m = {"source": "warehouse", "query": "SELECT id, email FROM audience", "key": "id",
         "destination": dest, "mode": "membership",
         "match": {match_field: "email"}, "fields": {match_field: "email"}}
    m.update(extra)
    return m


# ---- HubSpot ----------------------------------------------------------------------

def hs_project(project, db, url, **extra):
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url}})
    lst = control(url, "lists", {"name": "Warehouse VIPs", "objectTypeId": "0-1",
                                 "processingType": "MANUAL"})["list"]
    p.add_mapping("vips", mapping("hs", "email", object="contacts", list=lst["listId"],
                                  **extra))
    return p, lst["listId"]


def hs_contacts(url):
    """email -> record id of the emulator's contacts"""
    return {r["properties"]["email"]: r["id"]
            for r in control(url, "records/contacts")["results"]}


def hs_seed(url, emails):
    have = hs_contacts(url)
    new = [e for e in sorted(emails) if e not in have]
    if new:
        control(url, "records/contacts", {"inputs": [{"properties": {"email": e}} for e in new]})


def hs_members(url, lid):
    return set(control(url, "lists/%s/members" % lid)["members"])


def test_hubspot_list_follows_the_model_under_faults(project, db, hs):
    url = hs
    rng = random.Random(1801)
    model = Audience(db, rng, 30)
    # most people exist in HubSpot; a few only later
    late = set(rng.sample(sorted(model.emails()), 4))
    hs_seed(url, model.emails() - late)
    p, lid = hs_project(project, db, url)
    for step in range(10):
        if step:
            model.change()
        if step == 5:
            hs_seed(url, late)                       # now they exist: they join
        # everyone who ever had a row exists by now, except the late ones early on
        hs_seed(url, {e for e in model.emails() if e not in late})
        faults(url, True, rng)
        rc, out, err = p.run("run", "vips", env=HS_ENV)
        assert rc in (0, 1, 4), (step, rc, err)
    faults_met(url)
    faults(url, False)
    # the records people were told about exist; one more that does not
    model.rows[999] = "newcomer@example.com"
    model.write()
    rc, out, err = p.run("run", "vips", env=HS_ENV)
    assert rc == 1, err                              # the missing record failed
    ids = hs_contacts(url)
    want = {ids[e] for e in model.emails() if e in ids}
    assert hs_members(url, lid) == want
    # the member records are untouched: no archive, no write
    assert set(ids) >= model.emails() - {"newcomer@example.com"}
    rc, out, err = p.run("failures", "vips", env=HS_ENV)
    assert "999" in out and "no record matches" in out, out
    # retried next run: it exists now and joins
    hs_seed(url, {"newcomer@example.com"})
    rc, out, err = p.run("run", "vips", env=HS_ENV)
    assert rc == 0, err
    ids = hs_contacts(url)
    assert hs_members(url, lid) == {ids[e] for e in model.emails()}
    rc, out, err = p.run("failures", "vips", env=HS_ENV)
    assert "no record matches" not in out


def test_hubspot_safety_stops_a_mass_removal(project, db, hs):
    url = hs
    model = Audience(db, random.Random(7), 20)
    hs_seed(url, model.emails())
    p, lid = hs_project(project, db, url, safety={"max_removed_ratio": 0.5})
    rc, out, err = p.run("run", "vips", env=HS_ENV)
    assert rc == 0, err
    before = hs_members(url, lid)
    assert len(before) == 20
    for i in range(1, 16):
        del model.rows[i]
    model.write()
    rc, out, err = p.run("run", "vips", env=HS_ENV)
    assert rc == SAFETY_EXIT, (rc, err)
    assert "max_removed_ratio" in err and "--allow-removals 15" in err
    assert hs_members(url, lid) == before
    rc, out, err = p.run("run", "vips", "--allow-removals", "15", env=HS_ENV)
    assert rc == 0, err
    ids = hs_contacts(url)
    assert hs_members(url, lid) == {ids[e] for e in model.emails()}
    assert len(ids) == 20                            # nobody archived


def test_hubspot_membership_config_and_check(project, db, hs):
    url = hs
    Audience(db, random.Random(3), 3)
    p, lid = hs_project(project, db, url)
    rc, out, err = p.run("check", "vips", env=HS_ENV)
    assert rc == 0, (out, err)
    dyn = control(url, "lists", {"name": "Dynamic", "objectTypeId": "0-1",
                                 "processingType": "DYNAMIC"})["list"]["listId"]
    comp = control(url, "lists", {"name": "Companies", "objectTypeId": "0-2",
                                  "processingType": "MANUAL"})["list"]["listId"]
    for lst, words in ((dyn, "DYNAMIC, not a static list"), (comp, "objectTypeId 0-2"),
                       ("424242", "no list with id 424242")):
        p.add_mapping("vips", mapping("hs", "email", object="contacts", list=lst))
        rc, out, err = p.run("check", "vips", env=HS_ENV)
        assert rc == 2 and words in err, (lst, rc, err)
    # a run against a list HubSpot will not let retl edit stops (exit 4), marks nothing
    p.add_mapping("vips", mapping("hs", "email", object="contacts", list=dyn))
    hs_seed(url, {email(1)})
    rc, out, err = p.run("run", "vips", env=HS_ENV)
    assert rc == 4 and "hubspot: list %s: HTTP 400" % dyn in err, (rc, err)
    # membership writes no properties; on_remove has no meaning there
    p.add_mapping("vips", mapping("hs", "email", object="contacts", list=lid,
                                  fields={"email": "email", "firstname": "email"}))
    rc, out, err = p.run("run", "vips", env=HS_ENV)
    assert rc == 2 and "writes no properties" in err, err
    p.add_mapping("vips", mapping("hs", "email", object="contacts", list=lid,
                                  on_remove="archive"))
    rc, out, err = p.run("check", "vips", env=HS_ENV)
    assert rc == 2 and "on_remove: not used in mode \"membership\"" in err, err
    p.add_mapping("vips", mapping("hs", "email", object="contacts"))
    rc, out, err = p.run("run", "vips", env=HS_ENV)
    assert rc == 2 and "list: missing" in err, err


def test_hubspot_list_by_record_id_dated_api(project, db, hs):
    """match hs_object_id: the record id itself, no lookup; an id HubSpot does not
    have comes back in recordIdsMissing and fails the row; api_version 2026-03
    sends the date-based paths"""
    url = hs
    hs_seed(url, {email(i) for i in range(1, 6)})
    ids = sorted(hs_contacts(url).values(), key=int)
    db.psql("CREATE TABLE crm_ids (id int PRIMARY KEY, hs_id text);"
            "INSERT INTO crm_ids VALUES " +
            ",".join("(%d,'%s')" % (i, v) for i, v in enumerate(ids + ["987654"])) + ";")
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
               "api_version": "2026-03"}})
    lid = control(url, "lists", {"name": "By id", "objectTypeId": "0-1",
                                 "processingType": "MANUAL"})["list"]["listId"]
    p.add_mapping("byid", {"source": "warehouse", "query": "SELECT id, hs_id FROM crm_ids",
                           "key": "id", "destination": "hs", "object": "contacts",
                           "mode": "membership", "list": int(lid),
                           "match": {"hs_object_id": "hs_id"},
                           "fields": {"hs_object_id": "hs_id"}})
    rc, out, err = p.run("check", "byid", env=HS_ENV)
    assert rc == 0, (out, err)
    rc, out, err = p.run("run", "byid", env=HS_ENV)
    assert rc == 1, err
    assert hs_members(url, lid) == set(ids)
    rc, out, err = p.run("failures", "byid", env=HS_ENV)
    assert "no record matches" in out and "987654" in out, out
    paths = {r["path"].split("/memberships")[0] for r in control(url, "counters")["requests"]
             if "/memberships/" in r["path"]}
    assert paths == {"/crm/lists/2026-03/%s" % lid}
    db.psql("DELETE FROM crm_ids WHERE id < 2")
    rc, out, err = p.run("run", "byid", env=HS_ENV)
    assert rc == 1, err
    assert hs_members(url, lid) == set(ids[2:])


# ---- HubSpot: matched through search (a property that is not unique) ------------------

def domain(i):
    return "acme%d.example" % i


def hs_companies(url):
    """domain (lower case, as HubSpot's search compares) -> the company record ids"""
    out = {}
    for r in control(url, "records/companies")["results"]:
        out.setdefault((r["properties"].get("domain") or "").lower(), []).append(r["id"])
    return out


def hs_seed_companies(url, domains):
    control(url, "records/companies",
            {"inputs": [{"properties": {"domain": d, "name": d}} for d in sorted(domains)]})


def hs_archive(url, ids):
    """the fix a person makes in HubSpot: merge away a duplicate (batch/archive)"""
    req = urllib.request.Request(
        url + "/crm/v3/objects/companies/batch/archive", method="POST",
        data=json.dumps({"inputs": [{"id": i} for i in ids]}).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 204, r.status


class Accounts(Audience):
    """the model: table audience(id, email) holding companies' domains"""

    def __init__(self, db, rng, n):
        self.db, self.rng = db, rng
        self.rows = {i: domain(i) for i in range(1, n + 1)}
        self.pool = n
        db.psql("CREATE TABLE audience (id int PRIMARY KEY, email text);")
        self.write()

    def change(self):
        rng, rows = self.rng, self.rows
        for i in rng.sample(sorted(rows), min(len(rows), rng.randint(0, 3))):
            del rows[i]                                   # leave
        for _ in range(rng.randint(0, 3)):                # join, or come back
            i = rng.randint(1, self.pool + 2)
            self.pool = max(self.pool, i)
            rows[i] = domain(i)
        if rows and rng.random() < 0.4:                   # the domain moves
            i = rng.choice(sorted(rows))
            self.moved = getattr(self, "moved", 0) + 1
            rows[i] = "moved%d.example" % self.moved
        self.write()


def hs_want(url, domains):
    """the list the model asks for: each domain's one company"""
    have = hs_companies(url)
    return {have[d][0] for d in domains if len(have.get(d, ())) == 1}


def test_hubspot_list_of_companies_matched_by_domain(project, db, hs):
    """companies.domain is not unique (hasUniqueValue false): the records are
    found through search, as any sync's; none fails "no record matches",
    several fail "ambiguous match (N records)"; both are retried once fixed.
    Companies are never written, only added to and removed from the list"""
    url = hs
    rng = random.Random(1803)
    model = Accounts(db, rng, 40)
    # one company's domain in other letters: search compares without case
    hs_seed_companies(url, [d for d in model.emails() if d != domain(3)] + ["ACME3.Example"])
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url}})
    lid = control(url, "lists", {"name": "Target accounts", "objectTypeId": "0-2",
                                 "processingType": "MANUAL"})["list"]["listId"]
    p.add_mapping("accts", mapping("hs", "domain", object="companies", list=lid))
    rc, out, err = p.run("check", "accts", env=HS_ENV)
    assert rc == 0, (out, err)
    assert "companies.domain does not have unique values" in err, err
    assert "before they are added to the list" in err and "no record matches" in err, err
    rc, out, err = p.run("plan", "accts", env=HS_ENV)
    assert rc == 0, (out, err)
    assert "1 search request" in err, err
    # the adds, one search (in place of membership's batch/read), the
    # property's definition
    assert re.search(r"requests +3\n", out), out
    for step in range(8):
        if step:
            model.change()
        have = hs_companies(url)
        hs_seed_companies(url, {d for d in model.emails() if d not in have})
        faults(url, True, rng)
        rc, out, err = p.run("run", "accts", env=HS_ENV)
        assert rc in (0, 1, 4), (step, rc, err)
    faults_met(url)
    faults(url, False)
    rc, out, err = p.run("run", "accts", env=HS_ENV)
    assert rc == 0, err
    assert hs_members(url, lid) == hs_want(url, model.emails())
    seen = control(url, "counters")["requests"]
    assert any(r["path"].endswith("/companies/search") for r in seen)
    assert not any("/batch/read" in r["path"] or "/batch/update" in r["path"] or
                   "/batch/upsert" in r["path"] or "/batch/create" in r["path"]
                   for r in seen), "membership writes no company"
    # a domain no company has, one two companies share, one three share
    hs_seed_companies(url, ["twins.example", "Twins.example"] + ["triplets.example"] * 3)
    model.rows[901] = "nobody.example"
    model.rows[902] = "twins.example"
    model.rows[903] = "triplets.example"
    model.write()
    rc, out, err = p.run("run", "accts", env=HS_ENV)
    assert rc == 1, err
    assert hs_members(url, lid) == hs_want(url, model.emails())
    rc, out, err = p.run("failures", "accts", env=HS_ENV)
    assert "no record matches (domain = nobody.example)" in out, out
    assert "ambiguous match (2 records)" in out and "ambiguous match (3 records)" in out, out
    # 903 leaves the model while ambiguous: with no record id stored, its removal
    # searches too, and cannot tell which company to take out of the list
    del model.rows[903]
    model.write()
    rc, out, err = p.run("run", "accts", env=HS_ENV)
    assert rc == 1, err
    rc, out, err = p.run("failures", "accts", env=HS_ENV)
    assert "903" in out and "ambiguous match (3 records)" in out, out
    assert hs_members(url, lid) == hs_want(url, model.emails())
    # fixed in HubSpot: the company is made, the duplicates merged away
    hs_seed_companies(url, ["nobody.example"])
    hs_archive(url, hs_companies(url)["twins.example"][1:])
    hs_archive(url, hs_companies(url)["triplets.example"][1:])
    rc, out, err = p.run("run", "accts", env=HS_ENV)
    assert rc == 0, err
    want = hs_want(url, model.emails())
    assert len(want) == len(model.rows)
    assert hs_members(url, lid) == want
    rc, out, err = p.run("failures", "accts", env=HS_ENV)
    assert "no record matches" not in out and "ambiguous" not in out, out
    assert hs_companies(url)["triplets.example"][0] not in hs_members(url, lid)
    # rows that leave go by their stored record id: no search at all
    before = len(control(url, "counters")["requests"])
    for i in rng.sample(sorted(model.rows), 5):
        del model.rows[i]
    model.write()
    rc, out, err = p.run("run", "accts", env=HS_ENV)
    assert rc == 0, err
    assert hs_members(url, lid) == hs_want(url, model.emails())
    after = control(url, "counters")["requests"][before:]
    assert not any(r["path"].endswith("/search") for r in after), after


# ---- Mailchimp -----------------------------------------------------------------------

def mc_project(project, db, url, seg_type="static", **extra):
    p = project(dsn=db.dsn, destinations={
        "mc": {"type": "mailchimp", "api_key": "${MAILCHIMP_KEY}", "base_url": url + "/3.0"}})
    seg = control(url, "segments/" + MC_LIST, {"name": "Warehouse VIPs", "type": seg_type})
    p.add_mapping("vips", mapping("mc", "email_address", object=MC_LIST, segment=seg["id"],
                                  **extra))
    return p, seg["id"]


def mc_seed(url, emails):
    control(url, "members/" + MC_LIST,
            {"members": [{"email_address": e, "status": "subscribed"} for e in sorted(emails)]})


def mc_audience(url):
    return {m["email_address"].lower(): m["status"]
            for m in control(url, "members/" + MC_LIST)["members"]}


def mc_members(url, sid):
    return set(control(url, "segments/%s/%s" % (MC_LIST, sid))["members"])


def test_mailchimp_segment_follows_the_model_under_faults(project, db, mc):
    url = mc
    rng = random.Random(1802)
    model = Audience(db, rng, 30)
    late = set(rng.sample(sorted(model.emails()), 4))
    mc_seed(url, model.emails() - late)
    p, sid = mc_project(project, db, url)
    for step in range(10):
        if step:
            model.change()
        if step == 5:
            mc_seed(url, late)                       # now in the audience: they join
        mc_seed(url, {e for e in model.emails() if e not in late})
        faults(url, True, rng)
        rc, out, err = p.run("run", "vips", env=MC_ENV)
        assert rc in (0, 1, 4), (step, rc, err)
    faults_met(url)
    faults(url, False)
    model.rows[999] = "newcomer@example.com"
    model.write()
    rc, out, err = p.run("run", "vips", env=MC_ENV)
    assert rc == 1, err
    assert mc_members(url, sid) == model.emails() - {"newcomer@example.com"}
    # the contacts are left as they are: nobody archived or unsubscribed
    assert set(mc_audience(url).values()) == {"subscribed"}
    rc, out, err = p.run("failures", "vips", env=MC_ENV)
    assert "999" in out and "no record matches: mailchimp:" in out, out
    mc_seed(url, {"newcomer@example.com"})
    rc, out, err = p.run("run", "vips", env=MC_ENV)
    assert rc == 0, err
    assert mc_members(url, sid) == model.emails()


def test_mailchimp_safety_and_check(project, db, mc):
    url = mc
    model = Audience(db, random.Random(9), 20)
    mc_seed(url, model.emails())
    p, sid = mc_project(project, db, url, safety={"max_removed": 5})
    rc, out, err = p.run("check", "vips", env=MC_ENV)
    assert rc == 0, (out, err)
    rc, out, err = p.run("run", "vips", env=MC_ENV)
    assert rc == 0, err
    before = mc_members(url, sid)
    assert before == model.emails()
    for i in range(1, 11):
        del model.rows[i]
    model.write()
    rc, out, err = p.run("run", "vips", env=MC_ENV)
    assert rc == SAFETY_EXIT and "max_removed (5)" in err, (rc, err)
    assert mc_members(url, sid) == before
    rc, out, err = p.run("run", "vips", "--allow-removals", "10", env=MC_ENV)
    assert rc == 0, err
    assert mc_members(url, sid) == model.emails()
    assert set(mc_audience(url).values()) == {"subscribed"}
    # check: a saved (not static) segment, and one that does not exist
    saved = control(url, "segments/" + MC_LIST, {"name": "Saved", "type": "saved"})["id"]
    for seg, words in ((saved, "is saved, not static"), (99999, "has no segment 99999")):
        p.add_mapping("vips", mapping("mc", "email_address", object=MC_LIST, segment=seg))
        rc, out, err = p.run("check", "vips", env=MC_ENV)
        assert rc == 2 and words in err, (seg, rc, err)
    p.add_mapping("vips", mapping("mc", "email_address", object=MC_LIST, segment=sid,
                                  fields={"email_address": "email",
                                          "merge_fields.FNAME": "email"}))
    rc, out, err = p.run("run", "vips", env=MC_ENV)
    assert rc == 2 and "writes nothing to the contact" in err, err


# ---- the invariant (tests/integration/invariant.py): random changes, faults, kills ----

from invariant import Model, scenario  # noqa: E402
from test_invariant import EmulatorDest  # noqa: E402

INV_SEEDS = [int(s) for s in os.environ.get("RETL_INVARIANT_SEEDS", "1,2,3").split(",")]


def model_emails(db):
    return {r["email"].strip().lower() for r in Model.rows(_Table(db)) if r["email"]}


class _Table:
    """Model.rows() without creating the table"""
    table = "inv"

    def __init__(self, db):
        self.db = db


class HubSpotListDest(EmulatorDest):
    """membership of a HubSpot list: its records are the list's members (by
    address); every address the model holds is a contact before each run (the
    records exist: membership never creates them)"""
    has_match = True
    env = HS_ENV

    def __init__(self, url):
        self.url = url

    def project(self, project, db):
        self.db = db
        p, self.lid = hs_project(project, db, self.url)
        p.add_mapping("inv", mapping("hs", "email", object="contacts", list=self.lid,
                                     query="SELECT * FROM inv ORDER BY id"))
        return p

    def faults(self, on, rng, slow):
        hs_seed(self.url, model_emails(self.db))
        super().faults(on, rng, slow)

    def records(self):
        by_id = {v: k.lower() for k, v in hs_contacts(self.url).items()}
        return {by_id[i]: {} for i in hs_members(self.url, self.lid)}

    @staticmethod
    def fields(row):
        return {}


class MailchimpSegmentDest(HubSpotListDest):
    env = MC_ENV

    def project(self, project, db):
        self.db = db
        p, self.sid = mc_project(project, db, self.url)
        p.add_mapping("inv", mapping("mc", "email_address", object=MC_LIST, segment=self.sid,
                                     query="SELECT * FROM inv ORDER BY id"))
        return p

    def faults(self, on, rng, slow):
        have = set(mc_audience(self.url))
        mc_seed(self.url, model_emails(self.db) - have)
        EmulatorDest.faults(self, on, rng, slow)

    def records(self):
        return {e: {} for e in mc_members(self.url, self.sid)}


@pytest.mark.parametrize("seed", INV_SEEDS)
def test_hubspot_list_invariant(project, db, hs, seed):
    scenario(HubSpotListDest(hs), db, project, seed)


@pytest.mark.parametrize("seed", INV_SEEDS)
def test_mailchimp_segment_invariant(project, db, mc, seed):
    scenario(MailchimpSegmentDest(mc), db, project, seed)


def test_hubspot_member_whose_answer_was_lost_leaves_the_list(project, db, hs):
    """memberships/add applied, its answer lost (no record id stored); the row
    leaves the model before a run hears back: it is still removed from the list"""
    url = hs
    hs_seed(url, {email(i) for i in range(1, 4)})
    ids = sorted(hs_contacts(url).values(), key=int)
    db.psql("CREATE TABLE crm_ids (id int PRIMARY KEY, hs_id text);"
            "INSERT INTO crm_ids VALUES " +
            ",".join("(%d,'%s')" % (i, v) for i, v in enumerate(ids)) + ";")
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url}})
    lid = control(url, "lists", {"name": "By id", "objectTypeId": "0-1",
                                 "processingType": "MANUAL"})["list"]["listId"]
    p.add_mapping("byid", {"source": "warehouse", "query": "SELECT id, hs_id FROM crm_ids",
                           "key": "id", "destination": "hs", "object": "contacts",
                           "mode": "membership", "list": lid,
                           "match": {"hs_object_id": "hs_id"},
                           "fields": {"hs_object_id": "hs_id"}})
    control(url, "config", {"drop_after": 1.0})
    rc, out, err = p.run("run", "byid", env=HS_ENV)
    assert rc == 4, err                              # no answer at all
    assert hs_members(url, lid) == set(ids)          # but HubSpot applied it
    control(url, "config", {"drop_after": 0.0})
    db.psql("DELETE FROM crm_ids WHERE id = 0")
    rc, out, err = p.run("run", "byid", env=HS_ENV)
    assert rc == 0, err
    assert hs_members(url, lid) == set(ids[1:])
