"""Quick tests of the Mailchimp emulator itself (tests/emulators/mailchimp.py)."""

import base64
import http.client
import json
import os
import socket
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


def test_batch_subscribe_shape_and_errors(emu):
    members = [
        {"email_address": "Ann@Example.com", "status_if_new": "subscribed",
         "merge_fields": {"FNAME": "Ann"}, "tags": ["vip"]},
        {"email_address": "no-at-sign", "status_if_new": "subscribed"},
        {"email_address": "fake@example.org", "status_if_new": "subscribed"},
    ]
    st, body = call(emu, "POST", "/3.0/lists/%s" % LIST, {"members": members, "update_existing": True})
    assert st == 200
    assert body["total_created"] == 1 and body["error_count"] == 2
    assert body["new_members"][0]["id"] == mailchimp.subscriber_hash("ann@example.com")
    errs = {e["email_address"]: e for e in body["errors"]}
    assert "looks fake or invalid" in errs["fake@example.org"]["error"]
    assert errs["no-at-sign"]["error_code"] == "ERROR_GENERIC"
    # again without update_existing: contact exists
    st, body = call(emu, "POST", "/3.0/lists/%s" % LIST, {"members": members[:1], "update_existing": False})
    assert body["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    assert "is already a list member" in body["errors"][0]["error"]
    # sync_tags replaces the tags
    st, body = call(emu, "POST", "/3.0/lists/%s" % LIST,
                    {"members": [{"email_address": "ann@example.com", "tags": ["new"]}],
                     "update_existing": True, "sync_tags": True})
    assert [t["name"] for t in body["updated_members"][0]["tags"]] == ["new"]


def test_merge_field_validation_and_required(emu):
    call(emu, "POST", "/_emulator/merge-fields/%s" % LIST, {"tag": "AGE", "type": "number"})
    call(emu, "POST", "/_emulator/merge-fields/%s" % LIST, {"tag": "PLAN", "type": "text", "required": True})
    st, body = call(emu, "POST", "/3.0/lists/%s" % LIST, {"members": [
        {"email_address": "a@b.io", "status_if_new": "subscribed", "merge_fields": {"AGE": "x", "PLAN": "p"}},
        {"email_address": "c@b.io", "status_if_new": "subscribed", "merge_fields": {"AGE": 3}},
    ], "update_existing": True})
    errs = {e["email_address"]: e for e in body["errors"]}
    assert errs["a@b.io"]["error"] == "Your merge fields were invalid."
    assert errs["a@b.io"]["field"] == "AGE" and errs["a@b.io"]["field_message"] == "Please enter a number"
    assert errs["c@b.io"]["field"] == "PLAN" and errs["c@b.io"]["field_message"] == "Please enter a value"
    st, body = call(emu, "GET", "/3.0/lists/%s/merge-fields" % LIST)
    assert {f["tag"] for f in body["merge_fields"]} >= {"FNAME", "AGE", "PLAN"}


def test_archive_delete_compliance(emu):
    call(emu, "POST", "/_emulator/members/%s" % LIST,
         {"members": [{"email_address": "x@y.io", "status": "unsubscribed"}]})
    h = mailchimp.subscriber_hash("x@y.io")
    assert call(emu, "DELETE", "/3.0/lists/%s/members/%s" % (LIST, h))[0] == 204
    assert call(emu, "DELETE", "/3.0/lists/%s/members/%s" % (LIST, h))[0] == 404
    st, body = call(emu, "POST", "/3.0/lists/%s" % LIST, {"members": [
        {"email_address": "x@y.io", "status_if_new": "subscribed"}], "update_existing": True})
    assert "compliance state" in body["errors"][0]["error"]
    assert call(emu, "POST", "/3.0/lists/%s/members/%s/actions/delete-permanent" % (LIST, h))[0] == 204
    st, body = call(emu, "GET", "/_emulator/members/%s" % LIST)
    assert body["members"] == [] and body["forgotten"] == ["x@y.io"]
    assert call(emu, "GET", "/3.0/lists/nosuch")[1]["title"] == "Resource Not Found"


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
