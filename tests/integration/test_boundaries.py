"""Every limit exactly at and one past it (issue 14): the safety limits
(max_removed, max_removed_ratio, refuse_empty_model), each destination's
records per request (HubSpot 100, Salesforce sObject Collections 200 and
the bulk_threshold above which a Bulk job is used, Airtable 10, Mailchimp
500, the webhook's batch_size and its ceiling of 1000), the 500 bytes of a
webhook answer kept as a row's reason, and `run --limit N`.

The suite's other tests stay far from these limits (5 removals against 3,
2,500 rows in 100s); a limit off by one passes them all.  Here each limit
is met exactly (the run proceeds) and passed by one (it is refused, or one
more request goes out), and the outcome is read from the destination and
the state store, not only from the exit code.

Real parts: the session's PostgreSQL cluster, the built binary, the
emulators in-process on loopback (their request logs give the sizes).
"""

import contextlib
import os
import sqlite3
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import airtable  # noqa: E402
import hubspot  # noqa: E402
import mailchimp  # noqa: E402
import salesforce  # noqa: E402
import webhook_receiver  # noqa: E402
from emulator_control import control, running  # noqa: E402

# an emulator for the length of a with block (stopped even when it fails)
emulator = contextlib.contextmanager(running)


def make_people(db, n, table="people"):
    db.psql(f"""
        DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (id int PRIMARY KEY, email text, first text,
                              last text);
        INSERT INTO {table} SELECT i, 'person' || i || '@example.com',
               'First' || i, 'Last' || i FROM generate_series(1, {n}) i;
    """)


def cache(p, sync):
    """{key: status} of one sync in the state store"""
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return dict(con.execute("SELECT key, status FROM cache WHERE sync = ?",
                                (sync,)).fetchall())
    finally:
        con.close()


# ---- safety limits -----------------------------------------------------------

def file_project(project, db, safety, n):
    make_people(db, n)
    p = project(dsn=db.dsn)
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, first FROM people",
        "key": "id", "destination": "out", "mode": "mirror",
        "on_remove": "delete", "fields": {"email": "email", "first": "first"},
        "safety": safety})
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    assert len(p.read_jsonl()) == n
    return p


def removed_keys(p):
    return sorted(int(line["key"]) for line in p.read_jsonl()
                  if line["op"] == "remove")


def assert_refused(p, rc, out, err, message, n_lines, synced, removed=()):
    """exit 5 with the message; nothing more removed in the file (than
    `removed` before) or the state"""
    assert rc == 5, (out, err)
    assert message in out + err, (out, err)
    assert len(p.read_jsonl()) == n_lines
    assert removed_keys(p) == list(removed)
    assert sorted(int(k) for k in cache(p, "people")) == synced


def test_max_removed_exactly_at_and_one_past(project, db):
    p = file_project(project, db, {"max_removed": 3, "max_removed_ratio": 1}, 10)
    # 4 gone, limit 3: refused, nothing removed anywhere
    db.psql("DELETE FROM people WHERE id <= 4")
    rc, out, err = p.run("run", "people")
    assert_refused(p, rc, out, err,
                   "would remove 4 rows, over safety.max_removed (3) by 1: nothing removed",
                   10, list(range(1, 11)))
    # 3 gone (one came back, unchanged), limit 3: removed
    db.psql("INSERT INTO people VALUES (4, 'person4@example.com', 'First4', 'Last4')")
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    assert removed_keys(p) == [1, 2, 3]
    assert sorted(int(k) for k in cache(p, "people")) == list(range(4, 11))


def test_max_removed_zero_refuses_the_first_removal(project, db):
    p = file_project(project, db, {"max_removed": 0}, 5)
    db.psql("DELETE FROM people WHERE id = 5")
    rc, out, err = p.run("run", "people")
    assert_refused(p, rc, out, err,
                   "would remove 1 rows, over safety.max_removed (0) by 1: nothing removed",
                   5, [1, 2, 3, 4, 5])


def test_max_removed_ratio_exactly_at_and_just_past(project, db):
    # the ratio is of the rows synced before the run (20), not of the model
    # after it: 5 of 20 is exactly 0.25 (exact in binary, no rounding)
    p = file_project(project, db, {"max_removed_ratio": 0.25}, 20)
    db.psql("DELETE FROM people WHERE id <= 6")
    rc, out, err = p.run("run", "people")
    assert_refused(p, rc, out, err,
                   "would remove 6 of 20 synced rows (30.0%), over "
                   "safety.max_removed_ratio (25.0%) by 5.0 points: nothing removed",
                   20, list(range(1, 21)))
    db.psql("INSERT INTO people VALUES (6, 'person6@example.com', 'First6', 'Last6')")
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    assert removed_keys(p) == [1, 2, 3, 4, 5]
    assert sorted(int(k) for k in cache(p, "people")) == list(range(6, 21))


def test_max_removed_ratio_just_past_by_less_than_a_row_share(project, db):
    # 1 of 3 synced rows is 0.333..., a limit of 0.33 is passed by a
    # fraction of a point (a comparison rounding to whole percent lets it by)
    p = file_project(project, db, {"max_removed_ratio": 0.33}, 3)
    db.psql("DELETE FROM people WHERE id = 3")
    rc, out, err = p.run("run", "people")
    assert_refused(p, rc, out, err,
                   "would remove 1 of 3 synced rows (33.3%), over "
                   "safety.max_removed_ratio (33.0%) by 0.3 points: nothing removed",
                   3, [1, 2, 3])


def test_refuse_empty_model_at_zero_rows_not_at_one(project, db):
    p = file_project(project, db, {}, 4)
    db.psql("DELETE FROM people WHERE id <= 3")
    rc, out, err = p.run("run", "people")     # 1 row left: allowed
    assert rc == 0, (out, err)
    assert removed_keys(p) == [1, 2, 3]
    db.psql("DELETE FROM people")
    rc, out, err = p.run("run", "people")     # 0 rows: refused
    assert_refused(p, rc, out, err,
                   "the model returned 0 rows: refusing to remove all 1 synced rows "
                   "(safety.refuse_empty_model)", 7, [4], removed=[1, 2, 3])


# ---- records per request -----------------------------------------------------

def two_syncs(p, db, size, mapping):
    """syncs "exact" (rows 1..size) and "over" (size+1 more rows) of one
    table, so each run sends exactly size, then size+1 new records"""
    make_people(db, 2 * size + 1)
    for name, where in (("exact", f"id <= {size}"), ("over", f"id > {size}")):
        m = dict(mapping, query=f"SELECT id, email, first, last FROM people WHERE {where}")
        p.add_mapping(name, m)


def run_both(p, env, sizes_of):
    """runs "exact", then "over"; the request sizes each sent"""
    got = []
    for name in ("exact", "over"):
        before = len(sizes_of())
        rc, out, err = p.run("run", name, env=env)
        assert rc == 0, (name, out, err)
        got.append(sorted(sizes_of()[before:]))
    return got


HS_TOKEN = "pat-na1-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_hubspot_100_inputs_a_request(project, db):
    with emulator(hubspot, tokens=[HS_TOKEN], rate="10000/10s") as url:
        p = project(dsn=db.dsn, destinations={
            "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
                   "requests_per_10s": 10000}})
        two_syncs(p, db, 100, {
            "source": "warehouse", "key": "id", "destination": "hs",
            "object": "contacts", "mode": "upsert", "match": {"email": "email"},
            "fields": {"email": "email", "firstname": "first", "lastname": "last"}})

        def sizes():
            return [r["inputs"] for r in control(url, "counters")["requests"]
                    if "/batch/" in r["path"]]
        assert run_both(p, {"HUBSPOT_TOKEN": HS_TOKEN}, sizes) == [[100], [1, 100]]
        assert len(control(url, "records/contacts")["results"]) == 201


SF_ENV = {"SF_CLIENT_ID": "retl-client", "SF_CLIENT_SECRET": "retl-secret",
          "SF_REFRESH_TOKEN": "retl-refresh"}


def sf_mapping():
    return {"source": "warehouse", "key": "id", "destination": "sf",
            "object": "Contact", "mode": "upsert",
            "match": {"External_Id__c": "id"},
            "fields": {"External_Id__c": {"from": "id", "type": "string"},
                       "Email": "email", "FirstName": "first", "LastName": "last"}}


def sf_dest(url, **extra):
    return dict({"type": "salesforce", "base_url": url,
                 "client_id": "${SF_CLIENT_ID}", "client_secret": "${SF_CLIENT_SECRET}",
                 "refresh_token": "${SF_REFRESH_TOKEN}"}, **extra)


def test_salesforce_collections_200_records_a_request(project, db):
    with emulator(salesforce) as url:
        p = project(dsn=db.dsn, destinations={"sf": sf_dest(url)})
        two_syncs(p, db, 200, sf_mapping())

        def sizes():
            return [r["inputs"] for r in control(url, "counters")["requests"]
                    if "/composite/sobjects" in r["path"]]
        assert run_both(p, SF_ENV, sizes) == [[200], [1, 200]]
        assert control(url, "jobs")["jobs"] == []
        assert len(control(url, "records/Contact")["records"]) == 401


def test_salesforce_bulk_threshold_exactly_at_and_one_past(project, db):
    # up to bulk_threshold rows of an operation go through Collections,
    # one more through a Bulk API 2.0 job
    with emulator(salesforce) as url:
        p = project(dsn=db.dsn, destinations={"sf": sf_dest(url, bulk_threshold=5)})
        two_syncs(p, db, 5, sf_mapping())
        rc, out, err = p.run("run", "exact", env=SF_ENV)
        assert rc == 0, (out, err)
        coll = [r["inputs"] for r in control(url, "counters")["requests"]
                if "/composite/sobjects" in r["path"]]
        assert coll == [5]
        assert control(url, "jobs")["jobs"] == []
        rc, out, err = p.run("run", "over", env=SF_ENV)
        assert rc == 0, (out, err)
        coll = [r for r in control(url, "counters")["requests"]
                if "/composite/sobjects" in r["path"]]
        assert len(coll) == 1, "the 6 rows over the threshold went by Collections"
        jobs = control(url, "jobs")["jobs"]
        assert len(jobs) == 1 and jobs[0]["operation"] == "upsert"
        assert len(control(url, "records/Contact")["records"]) == 11
        assert sorted(int(k) for k in cache(p, "over")) == list(range(6, 12))


AT_TOKEN = "patAAAAAAAAAAAAAA.0123456789abcdef0123456789abcdef"


def test_airtable_10_records_a_request(project, db):
    with emulator(airtable, tokens=[AT_TOKEN], rate_per_second=1000) as url:
        p = project(dsn=db.dsn, destinations={
            "at": {"type": "airtable", "token": "${AIRTABLE_TOKEN}",
                   "base": airtable.DEFAULT_BASE, "base_url": url}})
        two_syncs(p, db, 10, {
            "source": "warehouse", "key": "id", "destination": "at",
            "object": "People", "mode": "upsert", "match": {"Email": "email"},
            "fields": {"Email": "email", "Name": "first"}})

        def sizes():
            return [r["inputs"] for r in control(url, "counters")["requests"]
                    if r["path"].startswith("/v0/") and "/meta/" not in r["path"]]
        assert run_both(p, {"AIRTABLE_TOKEN": AT_TOKEN}, sizes) == [[10], [1, 10]]
        recs = control(url, "records/%s/People" % airtable.DEFAULT_BASE)["records"]
        assert len(recs) == 21


MC_KEY = "5f4dcc3b5aa765d61d8327deb882cf99-us6"


def test_mailchimp_500_members_a_request(project, db):
    with emulator(mailchimp, api_key=MC_KEY) as url:
        p = project(dsn=db.dsn, destinations={
            "mc": {"type": "mailchimp", "api_key": "${MAILCHIMP_KEY}",
                   "base_url": url + "/3.0"}})
        two_syncs(p, db, 500, {
            "source": "warehouse", "key": "id", "destination": "mc",
            "object": mailchimp.DEFAULT_LIST, "mode": "upsert",
            "match": {"email_address": "email"},
            "fields": {"email_address": "email", "merge_fields.FNAME": "first",
                       "merge_fields.LNAME": "last"}})

        def sizes():
            return [r["inputs"] for r in control(url, "counters")["requests"]
                    if r["method"] == "POST"
                    and r["path"] == "/3.0/lists/" + mailchimp.DEFAULT_LIST]
        assert run_both(p, {"MAILCHIMP_KEY": MC_KEY}, sizes) == [[500], [1, 500]]
        members = control(url, "members/" + mailchimp.DEFAULT_LIST)["members"]
        assert len(members) == 1001


def wh_project(project, db, url, batch_size):
    return project(dsn=db.dsn, destinations={
        "hook": {"type": "webhook", "url": url + "/hooks/retl",
                 "batch_size": batch_size}})


def wh_mapping():
    return {"source": "warehouse", "key": "id", "destination": "hook",
            "mode": "upsert", "fields": {"email": "email"}}


def test_webhook_batch_size_operations_a_request(project, db):
    with emulator(webhook_receiver) as url:
        p = wh_project(project, db, url, 7)
        two_syncs(p, db, 7, wh_mapping())

        def sizes():
            return [len(d["body"]["operations"])
                    for d in control(url, "deliveries")["deliveries"]]
        assert run_both(p, {}, sizes) == [[7], [1, 7]]
        state = control(url, "state")
        assert len(state["exact"]) == 7 and len(state["over"]) == 8


@pytest.mark.parametrize("batch_size, ok", [(1000, True), (1001, False)])
def test_webhook_batch_size_at_most_1000(project, db, batch_size, ok):
    with emulator(webhook_receiver) as url:
        p = wh_project(project, db, url, batch_size)
        make_people(db, 3)
        p.add_mapping("people", dict(wh_mapping(), query="SELECT id, email FROM people"))
        rc, out, err = p.run("run", "people")
        if ok:
            assert rc == 0, (out, err)
            ds = control(url, "deliveries")["deliveries"]
            assert [len(d["body"]["operations"]) for d in ds] == [3]
        else:
            assert rc == 2, (out, err)
            assert ("retl.json: destinations.hook.batch_size: at most 1000 "
                    "operations a request") in err
            assert control(url, "deliveries")["deliveries"] == []


@pytest.mark.parametrize("body, kept", [
    ("0123456789" * 49 + "012345678", None),        # 499 bytes: all of it
    ("0123456789" * 50, None),                      # 500: all of it
    ("0123456789" * 50 + "X", "0123456789" * 50),   # 501: the first 500
    # a 2-byte character over the 500th byte: left out whole, never cut
    # in half (the reason is stored, printed and put in JSON logs)
    ("a" * 499 + "\u00e9tail", "a" * 499),
    ("a" * 498 + "\u00e9tail", "a" * 498 + "\u00e9"),
])
def test_webhook_reason_keeps_the_first_500_bytes(project, db, body, kept):
    # the receiver's answer body (not JSON: the bytes are kept as they are)
    kept = body if kept is None else kept
    with emulator(webhook_receiver, reject_status=422, reject_body=body) as url:
        p = wh_project(project, db, url, 10)
        make_people(db, 2)
        p.add_mapping("people", dict(wh_mapping(), query="SELECT id, email FROM people"))
        rc, out, err = p.run("run", "people")
        assert rc == 1, (out, err)
        con = sqlite3.connect(p.path("state", "retl.db"))
        con.text_factory = bytes      # what is stored, even if not UTF-8
        try:
            reasons = [r for r, in con.execute(
                "SELECT last_error FROM cache WHERE sync = 'people'")]
        finally:
            con.close()
        assert reasons == [("HTTP 422: " + kept).encode()] * 2
        rc, out, err = p.run("failures", "people")
        assert "HTTP 422: " + kept + "\n" in out, out


# ---- run --limit N -------------------------------------------------------------

def test_run_limit_sends_exactly_n(project, db):
    make_people(db, 6)
    p = project(dsn=db.dsn)
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email FROM people",
        "key": "id", "destination": "out", "mode": "upsert",
        "fields": {"email": "email"}})
    rc, out, err = p.run("run", "people", "--limit", "5")
    assert rc == 0, (out, err)
    assert len(p.read_jsonl()) == 5
    assert len(cache(p, "people")) == 5
    rc, out, err = p.run("run", "people", "--limit", "1")
    assert rc == 0, (out, err)
    assert len(p.read_jsonl()) == 6
    assert len(cache(p, "people")) == 6
