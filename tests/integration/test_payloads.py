"""Issue 11, case 6: a payload no destination's reader used to take (an
integer beyond 64 bits from a `numeric` column, a `\\u0000` from a `json`
column: Salesforce takes no json fields, so only the number there) is never
dropped without a word.  Each row ends at the destination
or listed by `retl failures` with a reason; none stays staged run after
run; Mailchimp and Airtable no longer call it "payload is not a JSON
object".  Every destination reads payloads with one reader (src/payload.c).
"""

import os
import sqlite3
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import airtable  # noqa: E402
import mailchimp  # noqa: E402
import salesforce  # noqa: E402
from emulator_control import control, running  # noqa: E402

BIG = "123456789012345678901234567890"




def make_rows(db):
    # row 2: a number beyond 64 bits; row 3: a NUL inside a JSON string
    db.psql(f"""
        CREATE TABLE people (id int PRIMARY KEY, email text, name text, big numeric,
                             doc json);
        INSERT INTO people VALUES
          (1, 'a@x.io', 'Ann', 7, '"plain"'),
          (2, 'b@x.io', 'Bob', {BIG}, '"plain"'),
          (3, 'c@x.io', 'Cid', 7, '"nul\\u0000inside"');
    """)


def staged(p):
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return con.execute("SELECT key FROM cache WHERE status = 4").fetchall()
    finally:
        con.close()


def accounted(p, present, env):
    """every row is at the destination or listed by retl failures with a
    reason, and none waits staged"""
    rc, out, err = p.run("failures", "people", env=env)
    listed = out.split()
    for key in ("1", "2", "3"):
        assert key in present or key in listed, \
            f"row {key} neither sent nor listed:\n{out}{err}"
    assert "payload is not a JSON object" not in out, out
    assert staged(p) == []


@pytest.fixture
def sf():
    yield from running(salesforce)


@pytest.mark.parametrize("bulk", [False, True], ids=["collections", "bulk"])
def test_salesforce_sends_or_reports_every_payload(project, db, sf, bulk):
    env = {"SF_CLIENT_ID": "retl-client", "SF_CLIENT_SECRET": "retl-secret",
           "SF_REFRESH_TOKEN": "retl-refresh"}
    make_rows(db)
    d = {"type": "salesforce", "base_url": sf, "client_id": "${SF_CLIENT_ID}",
         "client_secret": "${SF_CLIENT_SECRET}", "refresh_token": "${SF_REFRESH_TOKEN}"}
    if bulk:
        d["bulk_threshold"] = 1
    p = project(dsn=db.dsn, destinations={"sf": d})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT * FROM people", "key": "id",
        "destination": "sf", "object": "Contact", "mode": "upsert",
        "match": {"External_Id__c": "id"},
        "fields": {"External_Id__c": {"from": "id", "type": "string"},
                   "LastName": "name", "Legacy_Code__c": "big"}})
    for _ in range(2):
        rc, out, err = p.run("run", "people", env=env)
        assert rc in (0, 1), err
        present = {r.get("External_Id__c") for r in control(sf, "records/Contact")["records"]}
        accounted(p, present, env)
    # the big number went out whole
    recs = {r["External_Id__c"]: r for r in control(sf, "records/Contact")["records"]}
    assert str(recs["2"]["Legacy_Code__c"]) == BIG


@pytest.fixture
def mc():
    key = "5f4dcc3b5aa765d61d8327deb882cf99-us6"
    for url in running(mailchimp, api_key=key):
        yield url, key


def test_mailchimp_sends_or_reports_every_payload(project, db, mc):
    url, key = mc
    env = {"MAILCHIMP_KEY": key}
    make_rows(db)
    control(url, "merge-fields/" + mailchimp.DEFAULT_LIST,
            {"tag": "BIG", "type": "number", "name": "Big"})
    p = project(dsn=db.dsn, destinations={"mc": {
        "type": "mailchimp", "api_key": "${MAILCHIMP_KEY}", "base_url": url + "/3.0"}})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT * FROM people", "key": "id",
        "destination": "mc", "object": mailchimp.DEFAULT_LIST, "mode": "upsert",
        "match": {"email_address": "email"},
        "fields": {"email_address": "email", "merge_fields.FNAME": "name",
                   "merge_fields.BIG": "big", "merge_fields.LNAME": {"from": "doc", "type": "json"}}})
    rc, out, err = p.run("run", "people", env=env)
    assert rc in (0, 1), err
    members = control(url, "members/" + mailchimp.DEFAULT_LIST)["members"]
    present = {m["email_address"][0] for m in members}
    keys = {"a": "1", "b": "2", "c": "3"}
    accounted(p, {keys[e] for e in present}, env)


@pytest.fixture
def at():
    token = "patAAAAAAAAAAAAAA.0123456789abcdef0123456789abcdef"
    for url in running(airtable, tokens=[token]):
        yield url, token


def test_airtable_sends_or_reports_every_payload(project, db, at):
    url, token = at
    env = {"AIRTABLE_TOKEN": token}
    make_rows(db)
    p = project(dsn=db.dsn, destinations={"at": {
        "type": "airtable", "token": "${AIRTABLE_TOKEN}", "base": airtable.DEFAULT_BASE,
        "base_url": url}})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT * FROM people", "key": "id",
        "destination": "at", "object": "People", "mode": "upsert",
        "match": {"Email": "email"},
        "fields": {"Email": "email", "Name": "name", "MRR": "big",
                   "Plan": {"from": "doc", "type": "json"}}})
    rc, out, err = p.run("run", "people", env=env)
    assert rc in (0, 1), err
    recs = control(url, "records/%s/People" % airtable.DEFAULT_BASE)["records"]
    present = {r["fields"].get("Email", "?")[0] for r in recs}
    keys = {"a": "1", "b": "2", "c": "3"}
    accounted(p, {keys[e] for e in present if e in keys}, env)
