"""Quick checks of the Airtable emulator (tests/emulators/airtable.py) and the
webhook receiver, with urllib only."""

import json
import os
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import airtable  # noqa: E402
import webhook_receiver  # noqa: E402

TOKEN = "patTEST"
BASE = airtable.DEFAULT_BASE


@pytest.fixture
def at():
    server, url = airtable.start(port=0, tokens=[TOKEN], rate_per_second=1000)
    yield server, url
    server.shutdown()
    server.server_close()


def call(url, method, path, body=None, token=TOKEN):
    req = urllib.request.Request(url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": "Bearer " + token} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_schema_and_auth(at):
    _, url = at
    st, body = call(url, "GET", "/v0/meta/bases/%s/tables" % BASE)
    assert st == 200
    t = body["tables"][0]
    assert t["name"] == "People" and t["id"].startswith("tbl")
    plan = [f for f in t["fields"] if f["name"] == "Plan"][0]
    assert plan["type"] == "singleSelect"
    assert [c["name"] for c in plan["options"]["choices"]] == ["Free", "Pro", "Enterprise"]
    st, body = call(url, "GET", "/v0/meta/bases/%s/tables" % BASE, token="nope")
    assert st == 401 and body["error"]["type"] == "AUTHENTICATION_REQUIRED"
    st, body = call(url, "GET", "/v0/appNOPE/People")
    assert st == 403 and body["error"]["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"


def test_upsert_create_update_delete(at):
    _, url = at
    path = "/v0/%s/People" % BASE
    up = {"performUpsert": {"fieldsToMergeOn": ["Email"]},
          "records": [{"fields": {"Email": "a@x.io", "Name": "A", "Plan": "Pro"}},
                      {"fields": {"Email": "b@x.io", "Name": "B", "Tags": ["vip"]}}]}
    st, body = call(url, "PATCH", path, up)
    assert st == 200 and len(body["createdRecords"]) == 2 and body["updatedRecords"] == []
    ids = [r["id"] for r in body["records"]]
    up["records"][0]["fields"]["Name"] = "A2"
    st, body = call(url, "PATCH", path, up)
    assert sorted(body["updatedRecords"]) == sorted(ids) and body["createdRecords"] == []
    assert body["records"][0]["fields"]["Name"] == "A2"
    st, body = call(url, "PATCH", path, {"records": [{"id": ids[1], "fields": {"Seats": 3}}]})
    assert st == 200 and body["records"][0]["fields"]["Seats"] == 3
    st, body = call(url, "POST", path, {"records": [{"fields": {"Email": "c@x.io"}}]})
    assert st == 200 and body["records"][0]["id"].startswith("rec")
    st, body = call(url, "GET", path)
    assert len(body["records"]) == 3
    st, body = call(url, "DELETE", path + "?records[]=%s&records[]=%s" % tuple(ids))
    assert st == 200 and [r["deleted"] for r in body["records"]] == [True, True]
    st, body = call(url, "DELETE", path + "?records[]=%s" % ids[0])
    assert st == 422 and body["error"]["type"] == "ROW_DOES_NOT_EXIST"


def test_validation_is_all_or_nothing(at):
    _, url = at
    path = "/v0/%s/People" % BASE
    st, body = call(url, "POST", path, {"records": [{"fields": {"Email": "ok@x.io"}},
                                                    {"fields": {"Plan": "Gold"}}]})
    assert st == 422
    assert body["error"] == {"type": "INVALID_MULTIPLE_CHOICE_OPTIONS",
                             "message": 'Insufficient permissions to create new select option ""Gold""'}
    assert call(url, "GET", path)[1]["records"] == []
    st, body = call(url, "POST", path, {"records": [{"fields": {"Plan": "Gold"}}], "typecast": True})
    assert st == 200
    st, body = call(url, "POST", path, {"records": [{"fields": {"Nope": 1}}]})
    assert st == 422 and body["error"]["type"] == "UNKNOWN_FIELD_NAME"
    st, body = call(url, "POST", path, {"records": [{"fields": {"Seats": "many"}}]})
    assert st == 422 and body["error"]["type"] == "INVALID_VALUE_FOR_COLUMN"
    st, body = call(url, "POST", path, {"records": [{"fields": {"Score": 1}}]})
    assert st == 422
    st, body = call(url, "POST", path, {"records": [{"fields": {}}] * 11})
    assert st == 422 and body["error"]["type"] == "INVALID_RECORDS"


def test_rate_limit_and_penalty():
    server, url = airtable.start(port=0, tokens=[TOKEN], rate_per_second=5, penalty=1.0)
    try:
        path = "/v0/%s/People" % BASE
        sts = [call(url, "GET", path)[0] for _ in range(6)]
        assert sts[:5] == [200] * 5 and sts[5] == 429
        st, body = call(url, "GET", path)
        assert st == 429 and body["errors"][0]["error"] == "RATE_LIMIT_REACHED"
        assert call(url, "GET", "/_emulator/penalty", token=None)[1][BASE] > 0
        time.sleep(1.1)
        assert call(url, "GET", path)[0] == 200
        c = call(url, "GET", "/_emulator/counters", token=None)[1]
        assert c["rate_limited"] == 2 and all("t" in r for r in c["requests"])
    finally:
        server.shutdown()
        server.server_close()


def test_forced_429_and_control_tables():
    server, url = airtable.start(port=0, tokens=[TOKEN], force_429_at=2, penalty=0.5)
    try:
        assert call(url, "GET", "/v0/%s/People" % BASE)[0] == 200
        assert call(url, "GET", "/v0/%s/People" % BASE)[0] == 429
        time.sleep(0.6)
        st, t = call(url, "POST", "/_emulator/tables/" + BASE,
                     {"name": "Deals", "fields": [{"name": "Title"}, {"name": "Stage",
                      "type": "singleSelect", "choices": ["open", "won"]}]}, token=None)
        assert st == 200
        st, body = call(url, "POST", "/v0/%s/%s" % (BASE, t["id"]),
                        {"records": [{"fields": {"Title": "x", "Stage": "won"}}]})
        assert st == 200
        assert len(call(url, "GET", "/_emulator/records/%s/Deals" % BASE, token=None)[1]["records"]) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_receiver_verifies_signatures():
    server, url = webhook_receiver.start(port=0, secret="s3")
    try:
        body = json.dumps({"sync": "x", "operations": [{"op": "upsert", "key": "1",
                                                        "payload": {"a": 1}}]}).encode()
        for sig, want in ((webhook_receiver.signature("s3", body), 200),
                          (webhook_receiver.signature("other", body), 401)):
            req = urllib.request.Request(url + "/h", data=body, method="POST",
                                         headers={"X-Retl-Signature": sig})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    st = r.status
            except urllib.error.HTTPError as e:
                st = e.code
            assert st == want
        ds = call(url, "GET", "/_emulator/deliveries", token=None)[1]["deliveries"]
        assert [d["signature_ok"] for d in ds] == [True, False]
        assert call(url, "GET", "/_emulator/state", token=None)[1] == {"x": {'"1"': {"a": 1}}}
    finally:
        server.shutdown()
        server.server_close()


def test_merge_on_an_email_field_is_refused(at):
    _, url = at
    path = "/v0/%s/People" % BASE
    st, body = call(url, "PATCH", path, {"performUpsert": {"fieldsToMergeOn": ["Work Email"]},
                                         "records": [{"fields": {"Work Email": "a@x.io"}}]})
    assert st == 422 and body["error"]["type"] == "INVALID_FIELDS_TO_MERGE_ON"
    assert "email" in body["error"]["message"]
