"""Quick tests of the Mailchimp emulator itself (tests/emulators/mailchimp.py)."""

import base64
import http.client
import json
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailchimp  # noqa: E402

KEY = mailchimp.DEFAULT_KEY
LIST = mailchimp.DEFAULT_LIST


@pytest.fixture
def emu():
    server, url = mailchimp.start(port=0)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def call(server, method, path, body=None, key=KEY):
    host, port = server.server_address[:2]
    c = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(("x:" + key).encode()).decode()
    c.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if data else None)


def test_ping_and_auth(emu):
    assert call(emu, "GET", "/3.0/ping") == (200, {"health_status": "Everything's Chimpy!"})
    st, body = call(emu, "GET", "/3.0/ping", key="nope-us6")
    assert st == 401 and body["title"] == "API Key Invalid"
    assert set(body) >= {"type", "title", "status", "detail", "instance"}
    st, body = call(emu, "GET", "/3.0/ping", key=None)
    assert st == 401 and body["title"] == "API Key Missing"


def members(server):
    return {m["email_address"]: m for m in call(server, "GET", "/_emulator/members/%s" % LIST, key=None)[1]["members"]}


def batch(server, members_, **flags):
    return call(server, "POST", "/3.0/lists/%s" % LIST, dict({"members": members_}, **flags))


def put(server, body, email=None):
    h = mailchimp.subscriber_hash(email or body["email_address"])
    return call(server, "PUT", "/3.0/lists/%s/members/%s" % (LIST, h), body)


def assert_invalid(st, body, field, message):
    assert st == 400 and body["title"] == "Invalid Resource"
    assert body["detail"] == ("The resource submitted could not be validated. "
                              "For field-specific details, see the 'errors' array.")
    assert {"field": field, "message": message} in body["errors"], body["errors"]


def test_batch_subscribe_shape_and_errors(emu):
    members_ = [
        {"email_address": "Ann@Example.com", "status": "subscribed", "merge_fields": {"FNAME": "Ann"}},
        {"email_address": "no-at-sign", "status": "subscribed"},
        {"email_address": "fake@example.org", "status": "subscribed"},
    ]
    st, body = batch(emu, members_, update_existing=True)
    assert st == 200
    assert body["total_created"] == 1 and body["error_count"] == 2
    assert body["new_members"][0]["id"] == mailchimp.subscriber_hash("ann@example.com")
    assert body["new_members"][0]["status"] == "subscribed"
    errs = {e["email_address"]: e for e in body["errors"]}
    assert "looks fake or invalid" in errs["fake@example.org"]["error"]
    assert errs["no-at-sign"]["error_code"] == "ERROR_GENERIC"
    # again without update_existing: contact exists
    st, body = batch(emu, members_[:1], update_existing=False)
    assert body["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    assert "is already a list member" in body["errors"][0]["error"]


# --- the validator (the spec's request schemas)

def test_wrong_type_refuses_the_whole_batch(emu):
    st, body = batch(emu, [{"email_address": 5, "status": "subscribed"},
                           {"email_address": "ok@b.io", "status": "subscribed"}])
    assert_invalid(st, body, "members.item:0.email_address", "Schema describes string, integer found instead")
    assert members(emu) == {}
    st, body = call(emu, "POST", "/3.0/lists/%s" % LIST, [{"email_address": "a@b.io"}])
    assert_invalid(st, body, "", "Schema describes object, array found instead")
    st, body = batch(emu, [{"email_address": "a@b.io", "status": "subscribed",
                            "merge_fields": {"ADDRESS": {"addr1": "1 Main St", "city": None}}}])
    assert_invalid(st, body, "members.item:0.merge_fields.ADDRESS",
                   "Data did not match any of the schemas described in anyOf.")


def test_bad_enum(emu):
    st, body = batch(emu, [{"email_address": "a@b.io", "status": "active"}])
    assert_invalid(st, body, "members.item:0.status",
                   "Data presented is not one of the accepted values: "
                   "subscribed, unsubscribed, cleaned, pending, transactional.")
    st, body = put(emu, {"email_address": "a@b.io", "status_if_new": "yes"})
    assert_invalid(st, body, "status_if_new",
                   "Data presented is not one of the accepted values: "
                   "subscribed, unsubscribed, cleaned, pending, transactional.")


def test_501_members_refused_500_accepted(emu):
    ms = [{"email_address": "u%d@b.io" % i, "status": "subscribed"} for i in range(501)]
    st, body = batch(emu, ms)
    assert_invalid(st, body, "members", "Array must have at most 500 items")
    st, body = batch(emu, ms[:500])
    assert st == 200 and body["total_created"] == 500


def test_put_without_status_if_new_refused(emu):
    st, body = put(emu, {"email_address": "a@b.io", "status": "subscribed"})
    assert_invalid(st, body, "", "Required fields were not provided: status_if_new")
    assert members(emu) == {}


def test_undeclared_field_accepted_and_ignored(emu):
    st, body = batch(emu, [{"email_address": "a@b.io", "status": "subscribed", "colour": "red",
                            "unsubscribe_reason": "x"}], favourite=1)
    assert st == 200 and body["total_created"] == 1
    m = members(emu)["a@b.io"]
    assert "colour" not in m and "unsubscribe_reason" not in m


# --- batch subscribe: documented fields only

def test_batch_new_member_without_status_refused(emu):
    st, body = batch(emu, [{"email_address": "new@b.io", "status_if_new": "subscribed"},
                           {"email_address": "ok@b.io", "status": "pending"}], update_existing=True)
    assert st == 200 and body["total_created"] == 1 and body["error_count"] == 1
    e = body["errors"][0]
    assert e == {"email_address": "new@b.io", "error": "The value you selected is not a valid choice",
                 "error_code": "ERROR_GENERIC", "field": "status",
                 "field_message": "The value you selected is not a valid choice"}
    assert set(members(emu)) == {"ok@b.io"}
    assert members(emu)["ok@b.io"]["status"] == "pending"


def test_batch_status_if_new_ignored(emu):
    call(emu, "POST", "/_emulator/members/%s" % LIST,
         {"members": [{"email_address": "u@b.io", "status": "unsubscribed"}]})
    # status_if_new is not a batch member field: no effect on a new or an existing member
    st, body = batch(emu, [{"email_address": "n@b.io", "status": "pending", "status_if_new": "subscribed"},
                           {"email_address": "u@b.io", "status_if_new": "subscribed",
                            "merge_fields": {"FNAME": "U"}}], update_existing=True)
    assert body["total_created"] == 1 and body["total_updated"] == 1
    ms = members(emu)
    assert ms["n@b.io"]["status"] == "pending"
    assert ms["u@b.io"]["status"] == "unsubscribed" and ms["u@b.io"]["merge_fields"]["FNAME"] == "U"


def test_batch_update_existing_changes_status_when_given(emu):
    call(emu, "POST", "/_emulator/members/%s" % LIST,
         {"members": [{"email_address": "s@b.io", "status": "subscribed"}]})
    st, body = batch(emu, [{"email_address": "s@b.io", "status": "unsubscribed"}], update_existing=True)
    assert body["total_updated"] == 1 and members(emu)["s@b.io"]["status"] == "unsubscribed"


def test_batch_tags_per_the_2022_release_note(emu):
    """tags on batch members: added (new and, with update_existing, existing
    members); sync_tags replaces them (release note 2022-01-24)"""
    call(emu, "POST", "/_emulator/members/%s" % LIST,
         {"members": [{"email_address": "t@b.io", "status": "subscribed", "tags": ["old"]},
                      {"email_address": "u@b.io", "status": "subscribed", "tags": ["old"]}]})
    st, body = batch(emu, [{"email_address": "t@b.io", "status": "subscribed", "tags": ["new"]},
                           {"email_address": "n@b.io", "status": "subscribed", "tags": ["vip"]}],
                     update_existing=True, sync_tags=True)
    assert st == 200 and body["error_count"] == 0
    st, body = batch(emu, [{"email_address": "u@b.io", "status": "subscribed", "tags": ["new"]}],
                     update_existing=True)
    assert st == 200 and body["error_count"] == 0
    ms = members(emu)
    assert [t["name"] for t in ms["t@b.io"]["tags"]] == ["new"]
    assert [t["name"] for t in ms["u@b.io"]["tags"]] == ["old", "new"]
    assert [t["name"] for t in ms["n@b.io"]["tags"]] == ["vip"]
    assert [t["name"] for t in body["updated_members"][0]["tags"]] == ["old", "new"]


# --- PUT / PATCH / tags

def test_put_new_gets_status_if_new_existing_keeps_status(emu):
    st, body = put(emu, {"email_address": "New@B.io", "status_if_new": "pending",
                         "merge_fields": {"FNAME": "N"}, "tags": ["x"]})
    assert st == 200 and body["status"] == "pending" and body["tags"] == []
    assert body["email_address"] == "New@B.io" and body["merge_fields"]["FNAME"] == "N"
    call(emu, "POST", "/_emulator/members/%s" % LIST,
         {"members": [{"email_address": "u@b.io", "status": "unsubscribed", "tags": ["keep"]}]})
    st, body = put(emu, {"email_address": "u@b.io", "status_if_new": "subscribed",
                         "merge_fields": {"FNAME": "U"}, "tags": [{"name": "y", "status": "active"}]})
    assert st == 200 and body["status"] == "unsubscribed" and body["merge_fields"]["FNAME"] == "U"
    assert [set(t) for t in body["tags"]] == [{"id", "name"}] and body["tags"][0]["name"] == "keep"
    # `status` does change an existing member
    st, body = put(emu, {"email_address": "u@b.io", "status_if_new": "subscribed", "status": "pending"})
    assert body["status"] == "pending"
    # a new address with both: status wins
    st, body = put(emu, {"email_address": "b@b.io", "status_if_new": "subscribed", "status": "unsubscribed"})
    assert body["status"] == "unsubscribed"


def test_put_hash_must_match(emu):
    st, body = put(emu, {"email_address": "a@b.io", "status_if_new": "subscribed"}, email="other@b.io")
    assert st == 400 and body["errors"][0]["field"] == "email_address"


def test_patch_updates_members_only(emu):
    h = mailchimp.subscriber_hash("p@b.io")
    path = "/3.0/lists/%s/members/%s" % (LIST, h)
    st, body = call(emu, "PATCH", path, {"email_address": "p@b.io",
                                         "merge_fields": {"FNAME": "P"}})
    # Mailchimp's 404 problem body; PATCH never adds the address
    assert st == 404 and body["title"] == "Resource Not Found" and body["status"] == 404
    assert body["detail"] == "The requested resource could not be found."
    assert call(emu, "GET", path)[0] == 404
    call(emu, "POST", "/_emulator/members/%s" % LIST,
         {"members": [{"email_address": "p@b.io", "status": "unsubscribed"}]})
    st, body = call(emu, "PATCH", path, {"merge_fields": {"FNAME": "P"}, "status_if_new": "subscribed"})
    assert st == 200 and body["status"] == "unsubscribed" and body["merge_fields"]["FNAME"] == "P"
    st, body = call(emu, "PATCH", path, {"status": "transactional"})
    assert_invalid(st, body, "status", "Data presented is not one of the accepted values: "
                   "subscribed, unsubscribed, cleaned, pending.")


def test_tags_endpoint(emu):
    h = mailchimp.subscriber_hash("t@b.io")
    path = "/3.0/lists/%s/members/%s/tags" % (LIST, h)
    tags = {"tags": [{"name": "pro", "status": "active"}], "is_syncing": True}
    assert call(emu, "POST", path, tags)[0] == 404
    call(emu, "POST", "/_emulator/members/%s" % LIST,
         {"members": [{"email_address": "t@b.io", "status": "subscribed", "tags": ["free"]}]})
    assert call(emu, "POST", path, {"tags": [{"name": "pro", "status": "active"},
                                             {"name": "free", "status": "inactive"}],
                                    "is_syncing": True}) == (204, None)
    assert [t["name"] for t in members(emu)["t@b.io"]["tags"]] == ["pro"]
    st, body = call(emu, "POST", path, {"tags": ["pro"]})
    assert_invalid(st, body, "tags.item:0", "Schema describes object, string found instead")
    st, body = call(emu, "POST", path, {"tags": [{"name": "pro", "status": "on"}]})
    assert st == 400 and body["errors"][0]["field"] == "tags.item:0.status"
    st, body = call(emu, "POST", path, {"tags": [{"name": "pro"}]})
    assert_invalid(st, body, "tags.item:0", "Required fields were not provided: status")


def test_merge_field_validation_and_required(emu):
    call(emu, "POST", "/_emulator/merge-fields/%s" % LIST, {"tag": "AGE", "type": "number"})
    call(emu, "POST", "/_emulator/merge-fields/%s" % LIST, {"tag": "PLAN", "type": "text", "required": True})
    st, body = batch(emu, [
        {"email_address": "a@b.io", "status": "subscribed", "merge_fields": {"AGE": "x", "PLAN": "p"}},
        {"email_address": "c@b.io", "status": "subscribed", "merge_fields": {"AGE": 3}},
    ], update_existing=True)
    errs = {e["email_address"]: e for e in body["errors"]}
    assert errs["a@b.io"]["error"] == "Your merge fields were invalid."
    assert errs["a@b.io"]["field"] == "AGE" and errs["a@b.io"]["field_message"] == "Please enter a number"
    assert errs["c@b.io"]["field"] == "PLAN" and errs["c@b.io"]["field_message"] == "Please enter a value"
    st, body = put(emu, {"email_address": "d@b.io", "status_if_new": "subscribed", "merge_fields": {"AGE": "x"}})
    assert st == 400 and body["errors"] == [{"field": "AGE", "message": "Please enter a number"}]
    st, body = call(emu, "GET", "/3.0/lists/%s/merge-fields" % LIST)
    assert {f["tag"] for f in body["merge_fields"]} >= {"FNAME", "AGE", "PLAN"}


def test_archive_delete_compliance(emu):
    call(emu, "POST", "/_emulator/members/%s" % LIST,
         {"members": [{"email_address": "x@y.io", "status": "unsubscribed"}]})
    h = mailchimp.subscriber_hash("x@y.io")
    assert call(emu, "DELETE", "/3.0/lists/%s/members/%s" % (LIST, h))[0] == 204
    assert call(emu, "DELETE", "/3.0/lists/%s/members/%s" % (LIST, h))[0] == 404
    st, body = batch(emu, [{"email_address": "x@y.io", "status": "subscribed"}], update_existing=True)
    assert "compliance state" in body["errors"][0]["error"]
    st, body = put(emu, {"email_address": "x@y.io", "status_if_new": "subscribed"})
    assert st == 400 and "compliance state" in body["detail"]
    assert call(emu, "POST", "/3.0/lists/%s/members/%s/actions/delete-permanent" % (LIST, h))[0] == 204
    st, body = call(emu, "GET", "/_emulator/members/%s" % LIST)
    assert body["members"] == [] and body["forgotten"] == ["x@y.io"]
    st, body = put(emu, {"email_address": "x@y.io", "status_if_new": "subscribed"})
    assert st == 400 and body["title"] == "Forgotten Email Not Subscribed"
    assert call(emu, "GET", "/3.0/lists/nosuch")[1]["title"] == "Resource Not Found"
    call(emu, "POST", "/_emulator/compliance/%s" % LIST, {"email_address": "c@y.io"})
    st, body = batch(emu, [{"email_address": "c@y.io", "status": "subscribed"}])
    assert "compliance state" in body["errors"][0]["error"]


def test_eleventh_connection_gets_429(emu):
    emu.emulator.configure({"latency": 0.5})
    host, port = emu.server_address[:2]
    results = []

    def one():
        results.append(call(emu, "GET", "/3.0/ping"))

    ts = [threading.Thread(target=one) for _ in range(11)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    statuses = sorted(r[0] for r in results)
    assert statuses.count(429) >= 1
    r429 = [r[1] for r in results if r[0] == 429][0]
    assert r429["detail"] == "You have exceeded the limit of 10 simultaneous connections."
    c = call(emu, "GET", "/_emulator/counters", key=None)[1]
    assert c["extra"]["max_open_connections"] >= 11


def test_drop_counts_connection_closed_first(emu):
    emu.emulator.configure({"drop_before": 1.0})
    with pytest.raises((http.client.HTTPException, OSError)):
        call(emu, "GET", "/3.0/ping")
    time.sleep(0.1)
    c = call(emu, "GET", "/_emulator/counters", key=None)[1]
    assert c["extra"]["open_connections"] <= 1  # only the control connection


def test_documented_upsert_flow(emu):
    """the destination's flow on documented fields: batch with `status` and
    update_existing false; the existing addresses (ERROR_CONTACT_EXISTS) by PUT
    with status_if_new; tags through the tags endpoint; removal by batch
    unsubscribe.  A new address gets the configured status, an unsubscribed
    member stays unsubscribed."""
    call(emu, "POST", "/_emulator/members/%s" % LIST,
         {"members": [{"email_address": "old@b.io", "status": "unsubscribed"}]})
    ms = [{"email_address": e, "status": "subscribed", "merge_fields": {"FNAME": e[:3]}}
          for e in ("new@b.io", "old@b.io")]
    st, body = batch(emu, ms, update_existing=False)
    assert body["total_created"] == 1
    assert [(e["email_address"], e["error_code"]) for e in body["errors"]] == [("old@b.io", "ERROR_CONTACT_EXISTS")]
    st, body = put(emu, {"email_address": "old@b.io", "status_if_new": "subscribed",
                         "merge_fields": {"FNAME": "old"}})
    assert st == 200 and body["status"] == "unsubscribed" and body["merge_fields"]["FNAME"] == "old"
    h = mailchimp.subscriber_hash("new@b.io")
    assert call(emu, "POST", "/3.0/lists/%s/members/%s/tags" % (LIST, h),
                {"tags": [{"name": "pro", "status": "active"}], "is_syncing": True})[0] == 204
    st, body = batch(emu, [{"email_address": "new@b.io", "status": "unsubscribed"}], update_existing=True)
    assert body["total_updated"] == 1
    m = members(emu)
    assert m["new@b.io"]["status"] == "unsubscribed" and [t["name"] for t in m["new@b.io"]["tags"]] == ["pro"]
    assert m["old@b.io"]["status"] == "unsubscribed"
