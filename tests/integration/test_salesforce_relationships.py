"""Salesforce relationship targets (issue 18): "Account.External_Id__c" sets a
Contact's lookup through the parent's External ID, through sObject Collections
(a nested object) and through a Bulk API 2.0 job (the CSV header
Account.External_Id__c), with faults on.  Every run ends with each Contact's
AccountId and Parent_Account__c equal to the Accounts the model names; a parent
that does not exist, or that two Accounts claim, fails the row with Salesforce's
message in `retl failures`, and the row goes through once the parent is there.
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
FAULTS = {"error_rate_5xx": 0.2, "drop_before": 0.08, "drop_after": 0.08, "seed": 7}
NO_FAULTS = {"error_rate_5xx": 0, "drop_before": 0, "drop_after": 0}


@pytest.fixture
def emulator():
    yield from running(salesforce)


def make_accounts(url, exts):
    """Accounts made in Salesforce by hand (not by retl): ext -> Id"""
    ids = control(url, "create/Account", {"records": [
        {"Name": "Account " + e, "External_Id__c": e} for e in exts]})["ids"]
    return dict(zip(exts, ids))


def make_people(db, n):
    # account: A-1..A-5, NULL every 7th; parent: P-1..P-3, NULL every 5th
    db.psql(f"""
        CREATE TABLE people (id int PRIMARY KEY, last text, account text, parent text);
        INSERT INTO people SELECT i, 'Last' || i,
               CASE WHEN i % 7 = 0 THEN NULL ELSE 'A-' || (i % 5 + 1) END,
               CASE WHEN i % 5 = 0 THEN NULL ELSE 'P-' || (i % 3 + 1) END
          FROM generate_series(1, {n}) i;
    """)


def sf_project(project, db, url, **dest):
    d = {"type": "salesforce", "base_url": url, "client_id": "${SF_CLIENT_ID}",
         "client_secret": "${SF_CLIENT_SECRET}", "refresh_token": "${SF_REFRESH_TOKEN}"}
    d.update(dest)
    p = project(dsn=db.dsn, destinations={"sf": d})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, last, account, parent FROM people",
        "key": "id", "destination": "sf", "object": "Contact", "mode": "upsert",
        "match": {"External_Id__c": "id"},
        "fields": {"External_Id__c": {"from": "id", "type": "string"},
                   "LastName": "last",
                   "Account.External_Id__c": "account",
                   "Parent_Account__r.External_Id__c": "parent"}})
    return p


def contacts(url):
    return {r["External_Id__c"]: r for r in control(url, "records/Contact")["records"]}


def model(db):
    out = {}
    for line in db.psql("SELECT id, coalesce(account, ''), coalesce(parent, '') "
                        "FROM people", "-At", "-F", "\t").splitlines():
        i, a, p = line.split("\t")
        out[i] = (a or None, p or None)
    return out


def assert_linked(url, db, accounts, failing=()):
    """every Contact's lookups are the Accounts the model names (by their
    External ID); the failing rows are not in Salesforce, or keep what they
    had"""
    got = contacts(url)
    for i, (a, p) in model(db).items():
        if i in failing:
            continue
        assert i in got, "Contact %s missing" % i
        assert got[i].get("AccountId") == (accounts[a] if a else None), (i, a, got[i])
        assert got[i].get("Parent_Account__c") == (accounts[p] if p else None), (i, p, got[i])


def run_until_settled(p, url, want_rc):
    """runs under faults until one ends with want_rc (a fault may stop a run:
    a bulk job's create is never replayed blindly), at most 8 runs"""
    for _ in range(8):
        rc, out, err = p.run("run", "people", env=ENV)
        if rc == want_rc:
            return out + err
        assert rc in (0, 1, 4), out + err
    pytest.fail("no run ended with %d: %s" % (want_rc, out + err))


def cache_failures(p):
    rc, out, err = p.run("failures", "people", env=ENV)
    return out + err


@pytest.mark.parametrize("path", ["collections", "bulk"])
def test_lookups_through_external_ids_under_faults(project, db, emulator, path):
    make_people(db, 1000)
    db.psql("UPDATE people SET account = 'A-9' WHERE id = 11; "
            "UPDATE people SET account = 'DUP' WHERE id = 12")
    accounts = make_accounts(emulator, ["A-1", "A-2", "A-3", "A-4", "A-5",
                                        "P-1", "P-2", "P-3"])
    # two Accounts claim DUP (an External ID need not be unique)
    dup = control(emulator, "create/Account", {"records": [
        {"Name": "Dup %d" % i, "External_Id__c": "DUP"} for i in (1, 2)]})["ids"]
    dest = {"bulk_threshold": 100} if path == "bulk" else {}
    p = sf_project(project, db, emulator, **dest)
    rc, out, err = p.run("plan", "people", env=ENV)
    assert rc == 0, out + err
    # a token, the writes (5 collections requests, or a bulk job's ~7), and
    # one describe for the parents' types
    planned = int(re.search(r"requests\s+(\d+)", out).group(1))
    assert planned == 1 + (7 if path == "bulk" else 5) + 1, out
    control(emulator, "config", FAULTS)
    run_until_settled(p, emulator, 1)
    control(emulator, "config", NO_FAULTS)
    c = control(emulator, "counters")
    assert c["errors_5xx"] + c["dropped_before"] + c["dropped_after"] > 0, ("no fault fired", {k: v for k, v in c.items() if k != "requests"}, control(emulator, "config"))
    if path == "bulk":
        assert control(emulator, "jobs")["jobs"], "no Bulk job was used"
    else:   # the nested references carried their type (a wrong one is refused)
        assert c["extra"].get("references_typed", 0) > 0
    assert_linked(emulator, db, accounts, failing=("11", "12"))
    got = contacts(emulator)
    assert "11" not in got and "12" not in got
    text = cache_failures(p)
    assert "Foreign key external ID: A-9 not found for field External_Id__c in entity Account" in text
    assert "DUPLICATE_EXTERNAL_ID" in text and "more than one record found" in text

    # the parent appears, one DUP goes: both rows go through next run
    accounts.update(make_accounts(emulator, ["A-9"]))
    control(emulator, "delete/Account", {"ids": [dup[1]]})
    accounts["DUP"] = dup[0]
    # and the model moves some lookups and clears others
    # (a third of the rows each: over bulk_threshold, so the bulk path
    # clears lookups of existing records too)
    db.psql("UPDATE people SET account = NULL WHERE id % 3 = 0 AND id > 12; "
            "UPDATE people SET account = 'A-1', parent = NULL WHERE id % 3 = 1 AND id > 12")
    control(emulator, "config", FAULTS)
    run_until_settled(p, emulator, 0)
    control(emulator, "config", NO_FAULTS)
    assert_linked(emulator, db, accounts)
    assert len(contacts(emulator)) == 1000


def test_check_relationship_problems(project, db, emulator):
    make_people(db, 3)
    p = sf_project(project, db, emulator)
    m = p.path("mappings", "people.json")

    cfg = json.load(open(m))
    cfg["fields"] = {"External_Id__c": {"from": "id", "type": "string"},
                     "LastName": "last",
                     "Acount.External_Id__c": "account",
                     "Parent_Account__r.Code__c": "parent",
                     "ReportsTo.Emial": "last"}
    json.dump(cfg, open(m, "w"))
    rc, out, err = p.run("check", "people", env=ENV)
    text = out + err
    assert rc == 2, text
    assert 'Contact has no relationship "Acount" (did you mean "Account"?)' in text
    assert "Account.Code__c is not an External ID field" in text
    assert 'Contact has no field "Emial" (did you mean "Email"?)' in text
    # all three at once; the good one passes
    cfg["fields"] = {"External_Id__c": {"from": "id", "type": "string"},
                     "LastName": "last", "Account.External_Id__c": "account",
                     "ReportsTo.Email": "last"}
    json.dump(cfg, open(m, "w"))
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 0, out + err


@pytest.mark.parametrize("target,words", [
    ("Account.Owner.Email", "<relationship>.<field>"),
    ("Parent_Account__c.External_Id__c", '"Parent_Account__r.External_Id__c"'),
])
def test_other_dotted_targets_refused(project, db, emulator, target, words):
    make_people(db, 3)
    p = sf_project(project, db, emulator)

    m = p.path("mappings", "people.json")
    cfg = json.load(open(m))
    cfg["fields"][target] = "account"
    json.dump(cfg, open(m, "w"))
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2, out + err
    assert "fields." + target in out + err and words in out + err


def test_lookup_and_relationship_both_mapped_refused(project, db, emulator):
    make_people(db, 3)
    p = sf_project(project, db, emulator)

    m = p.path("mappings", "people.json")
    cfg = json.load(open(m))
    cfg["fields"]["AccountId"] = "account"
    json.dump(cfg, open(m, "w"))
    rc, out, err = p.run("check", "people", env=ENV)
    assert rc == 2, out + err
    assert "fields.AccountId sets the same lookup" in out + err
