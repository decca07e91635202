"""Tests of the HubSpot emulator itself (urllib only).  Run:
/usr/bin/python3 -m pytest -q tests/emulators/test_hubspot_emulator.py"""

import gzip
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import hubspot  # noqa: E402

TOKEN = "test-token"


@pytest.fixture
def emu():
    server, url = hubspot.start(port=0, rate="1000/10s")
    yield server, url
    server.shutdown()
    server.server_close()


def call(url, path, body=None, method=None, token=TOKEN, headers=None):
    data = None if body is None else json.dumps(body).encode()
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    req = urllib.request.Request(url + path, data=data, headers=h,
                                 method=method or ("POST" if body is not None else "GET"))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None), r.headers
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode()
        return e.code, parsed, e.headers


def control(url, path, body=None):
    return call(url, "/_emulator" + path, body, token=None)


def batch(url, op, inputs, obj="contacts", **extra):
    """a spec-valid batch request (the fields the spec requires filled in)"""
    if op == "create":
        inputs = [dict({"associations": []}, **i) for i in inputs]
    if op == "read":
        extra.setdefault("properties", [])
        extra.setdefault("propertiesWithHistory", [])
    return call(url, "/crm/v3/objects/%s/batch/%s" % (obj, op), dict(extra, inputs=inputs))


def upsert_emails(url, emails, **props):
    return batch(url, "upsert", [{"id": e, "idProperty": "email", "properties": dict(props)} for e in emails])


# ---------------------------------------------------------------- basics

def test_properties_endpoint(emu):
    _, url = emu
    s, b, h = call(url, "/crm/v3/properties/contacts")
    assert s == 200
    by = {p["name"]: p for p in b["results"]}
    assert by["email"]["hasUniqueValue"] is True
    assert by["hs_object_id"]["modificationMetadata"]["readOnlyValue"] is True
    assert by["createdate"]["type"] == "datetime"
    assert "customer" in [o["value"] for o in by["lifecyclestage"]["options"]]
    assert h["X-HubSpot-RateLimit-Max"] == "1000"
    s, b, _ = call(url, "/crm/v3/properties/contacts/firstname")
    assert s == 200 and b["name"] == "firstname"
    s, b, _ = call(url, "/crm/v3/properties/contacts/nope")
    assert s == 404
    s, b, _ = call(url, "/crm/v3/properties/widgets")
    assert s == 400 and b["message"] == "Unable to infer object type from: widgets"


def test_auth_errors(emu):
    _, url = emu
    s, b, _ = call(url, "/crm/v3/properties/contacts", token=None)
    assert s == 401 and b["category"] == "INVALID_AUTHENTICATION"
    assert b["message"].startswith("Authentication credentials not found")
    assert b["status"] == "error" and len(b["correlationId"]) == 36
    s, b, _ = call(url, "/crm/v3/properties/contacts", token="wrong")
    assert s == 401


def test_missing_scope(emu):
    _, url = emu
    control(url, "/config", {"missing_scopes": ["crm.objects.contacts.write"]})
    s, b, _ = upsert_emails(url, ["a@example.com"])
    assert s == 403 and b["category"] == "MISSING_SCOPES"
    assert b["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.write"]
    assert call(url, "/crm/v3/properties/contacts")[0] == 200  # reading is fine


def test_upsert_create_then_update_and_records(emu):
    _, url = emu
    s, b, _ = upsert_emails(url, ["a@example.com", "b@example.com"], firstname="A")
    assert s == 200 and b["status"] == "COMPLETE" and len(b["results"]) == 2
    assert all(r["new"] for r in b["results"])
    assert all(r["id"].isdigit() for r in b["results"])
    assert {r["properties"]["email"] for r in b["results"]} == {"a@example.com", "b@example.com"}
    s, b, _ = upsert_emails(url, ["a@example.com"], firstname="B", lifecyclestage="customer")
    assert s == 200 and b["results"][0]["new"] is False
    s, recs, _ = control(url, "/records/contacts")
    byemail = {r["properties"]["email"]: r for r in recs["results"]}
    assert len(byemail) == 2
    assert byemail["a@example.com"]["properties"]["firstname"] == "B"
    assert byemail["a@example.com"]["properties"]["lifecyclestage"] == "customer"


def test_create_update_read_archive(emu):
    _, url = emu
    s, b, _ = batch(url, "create", [{"properties": {"email": "c%d@example.com" % i}} for i in range(3)])
    assert s == 201 and len(b["results"]) == 3
    ids = sorted(r["id"] for r in b["results"])
    s, b, _ = batch(url, "update", [{"id": ids[0], "properties": {"firstname": "X"}}])
    assert s == 200 and b["results"][0]["properties"]["firstname"] == "X"
    # update by idProperty
    s, b, _ = batch(url, "update", [{"id": "c1@example.com", "idProperty": "email", "properties": {"lastname": "Y"}}])
    assert s == 200
    s, b, _ = batch(url, "update", [{"id": ids[2], "properties": {"firstname": "Z"}}, {"id": "999999", "properties": {}}])
    assert s == 207 and b["numErrors"] == 1
    e = b["errors"][0]
    assert e["category"] == "OBJECT_NOT_FOUND" and e["context"]["ids"] == ["999999"]
    assert "Could not get some CONTACT objects" in e["message"]
    # read by id and by idProperty
    s, b, _ = batch(url, "read", [{"id": i} for i in ids], properties=["email", "firstname"])
    assert s == 200 and len(b["results"]) == 3
    s, b, _ = batch(url, "read", [{"id": "c1@example.com"}, {"id": "nobody@example.com"}],
                    idProperty="email", properties=["lastname"])
    assert s == 207 and b["results"][0]["properties"]["lastname"] == "Y"
    assert b["errors"][0]["context"]["ids"] == ["nobody@example.com"]
    # archive
    s, b, _ = batch(url, "archive", [{"id": ids[0]}])
    assert s == 204 and b is None
    s, b, _ = batch(url, "archive", [{"id": "424242"}])
    assert s == 207 and b["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    recs = control(url, "/records/contacts?archived=1")[1]
    assert len(recs["results"]) == 2 and len(recs["archived"]) == 1


def test_create_conflict_on_existing_email(emu):
    _, url = emu
    upsert_emails(url, ["dup@example.com"])
    s, b, _ = batch(url, "create", [{"properties": {"email": "dup@example.com"}}])
    assert s == 409 and b["category"] == "CONFLICT" and b["message"].startswith("Contact already exists. Existing ID: ")


def test_results_shuffled(emu):
    _, url = emu
    emails = ["s%02d@example.com" % i for i in range(30)]
    s, b, _ = upsert_emails(url, emails)
    got = [r["properties"]["email"] for r in b["results"]]
    assert sorted(got) == emails and got != emails


# ---------------------------------------------------------------- validation

def test_batch_limit_and_inputs_required(emu):
    _, url = emu
    s, b, _ = upsert_emails(url, ["l%d@example.com" % i for i in range(101)])
    assert s == 400 and b["category"] == "VALIDATION_ERROR"
    assert "maximum number of inputs supported in a batch is 100" in b["message"]
    s, b, _ = call(url, "/crm/v3/objects/contacts/batch/upsert", {"nope": []})
    assert s == 400 and "inputs" in b["message"]
    s, b, _ = call(url, "/crm/v3/objects/contacts/batch/upsert", None, method="POST",
                   headers={"Content-Length": "0"})
    assert s == 400


def test_upsert_requires_unique_id_property(emu):
    _, url = emu
    s, b, _ = batch(url, "upsert", [{"id": "x", "properties": {}}])
    assert s == 400
    s, b, _ = batch(url, "upsert", [{"id": "x", "idProperty": "firstname", "properties": {}}])
    assert s == 400 and b["category"] == "VALIDATION_ERROR"
    control(url, "/properties/contacts", {"name": "ext_id", "type": "string", "hasUniqueValue": True})
    s, b, _ = batch(url, "upsert", [{"id": "E1", "idProperty": "ext_id", "properties": {"firstname": "Q"}}])
    assert s == 200 and b["results"][0]["properties"]["ext_id"] == "E1"


def test_duplicate_ids(emu):
    _, url = emu
    s, b, _ = upsert_emails(url, ["d@example.com", "e@example.com", "d@example.com"])
    assert s == 400 and b["message"] == "Duplicate IDs found in batch input: [d@example.com]. IDs must be unique"
    assert b["context"]["ids"] == ["d@example.com"]
    assert control(url, "/records/contacts")[1]["results"] == []


def test_invalid_email_fails_whole_batch(emu):
    _, url = emu
    emails = ["ok%d@example.com" % i for i in range(99)] + ["not-an-email"]
    s, b, _ = upsert_emails(url, emails)
    assert s == 400 and b["category"] == "VALIDATION_ERROR"
    assert b["message"].startswith("Property values were not valid: ")
    inner = json.loads(b["message"][len("Property values were not valid: "):])
    assert inner[0]["error"] == "INVALID_EMAIL" and inner[0]["name"] == "email"
    assert b["errors"] == [{"message": "Email address not-an-email is invalid", "code": "INVALID_EMAIL",
                            "context": {"propertyName": ["email"]}}]
    assert control(url, "/records/contacts")[1]["results"] == []
    for bad_email in ["a@b", "a b@example.com", "a..b@example.com", "@example.com", "a@-x.com", "a@x.c0m"]:
        assert upsert_emails(url, [bad_email])[0] == 400, bad_email
    for good in ["first.last+tag@sub.example.co.uk", "o'brien@example.ie"]:
        assert upsert_emails(url, [good])[0] == 200, good


def test_reject_values_knob(emu):
    _, url = emu
    control(url, "/config", {"reject_values": ["bounce@example.com"]})
    s, b, _ = upsert_emails(url, ["fine@example.com", "bounce@example.com"])
    assert s == 400 and b["errors"][0]["code"] == "INVALID_EMAIL"


def test_property_type_validation(emu):
    _, url = emu
    for d in [{"name": "score", "type": "number"}, {"name": "seats", "type": "number", "integer": True},
              {"name": "born", "type": "date"}, {"name": "seen_at", "type": "datetime"},
              {"name": "vip", "type": "bool"},
              {"name": "tier", "type": "enumeration", "options": ["gold", "silver"]}]:
        assert control(url, "/properties/contacts", d)[0] == 201
    cases = [
        ({"nosuch": "x"}, "PROPERTY_DOESNT_EXIST", 'Property "nosuch" does not exist'),
        ({"lifecyclestage": "king"}, "INVALID_OPTION", None),
        ({"tier": "bronze"}, "INVALID_OPTION", "bronze was not one of the allowed options: [gold, silver]"),
        ({"score": "abc"}, "INVALID_DECIMAL", None),
        ({"seats": "1.5"}, "INVALID_INTEGER", "1.5 was not a valid integer."),
        ({"born": "1579179660000"}, "INVALID_DATE", "1579179660000 is at 13:1:0.0 UTC, not midnight!"),
        ({"born": "yesterday"}, "INVALID_DATE", None),
        # an ISO 8601 date-time is a date only at midnight UTC
        ({"born": "2024-02-03T04:05:06Z"}, "INVALID_DATE", None),
        ({"born": "2024-02-03T00:00:00+02:00"}, "INVALID_DATE", None),
        ({"born": "2024-02-30"}, "INVALID_DATE", None),
        ({"vip": "yes"}, "INVALID_OPTION", None),
        ({"hs_object_id": "5"}, "READ_ONLY_VALUE", None),
    ]
    for props, code, msg in cases:
        s, b, _ = batch(url, "upsert", [{"id": "t@example.com", "idProperty": "email", "properties": props}])
        assert s == 400, props
        assert b["errors"][0]["code"] == code, (props, b)
        assert b["errors"][0]["context"]["propertyName"] == [list(props)[0]]
        if msg:
            assert b["errors"][0]["message"] == msg
    good = {"score": "12.5", "seats": "3", "born": "2024-02-03", "seen_at": "2024-02-03T04:05:06Z",
            "vip": "true", "tier": "gold", "lifecyclestage": "lead"}
    s, b, _ = batch(url, "upsert", [{"id": "t@example.com", "idProperty": "email", "properties": good}])
    assert s == 200, b
    s, b, _ = batch(url, "upsert", [{"id": "u@example.com", "idProperty": "email",
                                     "properties": {"born": "1706918400000", "seen_at": "1706918400123"}}])
    assert s == 200, b
    s, b, _ = batch(url, "upsert", [{"id": "v@example.com", "idProperty": "email",
                                     "properties": {"born": "2024-02-03T00:00:00.000Z"}}])
    assert s == 200, b
    recs = {r["properties"]["email"]: r["properties"] for r in control(url, "/records/contacts")[1]["results"]}
    assert recs["t@example.com"]["vip"] == "true" and recs["t@example.com"]["score"] == "12.5"
    assert recs["u@example.com"]["born"] == "2024-02-03"
    assert recs["v@example.com"]["born"] == "2024-02-03"
    assert recs["u@example.com"]["seen_at"] == "2024-02-03T00:00:00.123Z"


def test_multi_error_collects_all(emu):
    _, url = emu
    s, b, _ = batch(url, "upsert", [
        {"id": "x@example.com", "idProperty": "email", "properties": {"bogus": "1"}},
        {"id": "bad", "idProperty": "email", "properties": {}}])
    assert s == 400 and {e["code"] for e in b["errors"]} == {"PROPERTY_DOESNT_EXIST", "INVALID_EMAIL"}


def test_create_multistatus_with_trace_ids(emu):
    _, url = emu
    s, b, _ = batch(url, "create", [{"properties": {"email": "g@example.com"}, "objectWriteTraceId": "1"},
                                    {"properties": {"email": "bad"}, "objectWriteTraceId": "2"}])
    assert s == 207 and len(b["results"]) == 1 and b["errors"][0]["context"]["objectWriteTraceId"] == ["2"]


def test_custom_objects_and_other_types(emu):
    _, url = emu
    s, _, _ = control(url, "/objects", {"objectTypeId": "2-123456", "name": "p_cars",
                                        "properties": [{"name": "vin", "type": "string", "hasUniqueValue": True},
                                                       {"name": "make", "type": "string"}]})
    assert s == 201
    s, b, _ = batch(url, "upsert", [{"id": "V1", "idProperty": "vin", "properties": {"make": "Saab"}}], obj="2-123456")
    assert s == 200
    s, b, _ = batch(url, "read", [{"id": "V1"}], obj="p_cars", idProperty="vin", properties=["make"])
    assert s == 200 and b["results"][0]["properties"]["make"] == "Saab"
    for obj, props in [("companies", {"name": "Acme", "domain": "acme.test"}),
                       ("deals", {"dealname": "D", "amount": "10", "dealstage": "closedwon"}),
                       ("tickets", {"subject": "S", "hs_pipeline": "0", "hs_pipeline_stage": "1"})]:
        s, b, _ = batch(url, "create", [{"properties": props}], obj=obj)
        assert s == 201, (obj, b)
    s, b, _ = call(url, "/crm/v3/objects/companies?limit=1&properties=name")
    assert s == 200 and b["results"][0]["properties"]["name"] == "Acme"


def test_get_and_list(emu):
    _, url = emu
    upsert_emails(url, ["l%d@example.com" % i for i in range(5)])
    s, b, _ = call(url, "/crm/v3/objects/contacts?limit=2")
    assert s == 200 and len(b["results"]) == 2 and "paging" in b
    s, b2, _ = call(url, "/crm/v3/objects/contacts?limit=10&after=" + b["paging"]["next"]["after"])
    assert len(b2["results"]) == 3
    s, b, _ = call(url, "/crm/v3/objects/contacts/l1@example.com?idProperty=email&properties=email")
    assert s == 200 and b["properties"]["email"] == "l1@example.com"
    assert call(url, "/crm/v3/objects/contacts/1")[0] == 404


# ---------------------------------------------------------------- rate limits

def test_rate_limit_window_and_headers():
    server, url = hubspot.start(port=0, rate="5/1s", daily_limit=1000)
    try:
        statuses, remaining = [], []
        for _ in range(7):
            s, b, h = call(url, "/crm/v3/properties/contacts")
            statuses.append(s)
            remaining.append(h["X-HubSpot-RateLimit-Remaining"])
            assert h["X-HubSpot-RateLimit-Max"] == "5"
            assert h["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1000"
            assert h["X-HubSpot-RateLimit-Daily"] == "1000"
        assert statuses == [200] * 5 + [429] * 2
        assert remaining[:5] == ["4", "3", "2", "1", "0"]
        s, b, h = call(url, "/crm/v3/properties/contacts")
        assert b == {**b, "status": "error", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING",
                     "message": "You have reached your ten_secondly_rolling limit."}
        assert "Retry-After" not in h
        time.sleep(1.05)
        assert call(url, "/crm/v3/properties/contacts")[0] == 200
        c = control(url, "/counters")[1]
        assert c["rate_limited"] == 3 and c["by_status"]["429"] == 3
        assert common.max_in_window([r["t"] for r in c["requests"] if r["status"] == 200], 1.0) <= 5
    finally:
        server.shutdown()
        server.server_close()


def test_daily_limit():
    server, url = hubspot.start(port=0, daily_limit=3)
    try:
        st = [call(url, "/crm/v3/properties/contacts")[0] for _ in range(4)]
        assert st == [200, 200, 200, 429]
        s, b, h = call(url, "/crm/v3/properties/contacts")
        assert b["policyName"] == "DAILY" and h["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    finally:
        server.shutdown()
        server.server_close()


def test_rate_limit_per_token():
    server, url = hubspot.start(port=0, rate="2/10s", tokens=["t1", "t2"])
    try:
        assert [call(url, "/crm/v3/properties/contacts", token="t1")[0] for _ in range(3)] == [200, 200, 429]
        assert call(url, "/crm/v3/properties/contacts", token="t2")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- fault knobs

def test_fail_every_nth_429_and_retry_after(emu):
    _, url = emu
    control(url, "/config", {"fail_every_nth_429": 3, "retry_after": 1})
    st, hs = [], []
    for _ in range(6):
        s, b, h = call(url, "/crm/v3/properties/contacts")
        st.append(s)
        hs.append(h)
    assert st == [200, 200, 429, 200, 200, 429]
    assert hs[2]["Retry-After"] == "1"
    assert control(url, "/counters")[1]["forced_429"] == 2


def test_5xx_rates(emu):
    _, url = emu
    control(url, "/config", {"error_rate_5xx": 1.0, "error_5xx_codes": [500, 502, 503]})
    seen = {call(url, "/crm/v3/properties/contacts")[0] for _ in range(20)}
    assert seen == {500, 502, 503}
    s, _, _ = upsert_emails(url, ["never@example.com"])
    assert s >= 500
    assert control(url, "/records/contacts")[1]["results"] == []
    control(url, "/config", {"error_rate_5xx": 0, "error_5xx_after_rate": 1.0, "error_5xx_codes": [500]})
    assert upsert_emails(url, ["applied@example.com"])[0] == 500
    assert len(control(url, "/records/contacts")[1]["results"]) == 1


def raw_post(url, path, body):
    host, port = url[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("POST", path, json.dumps(body), {"Authorization": "Bearer " + TOKEN,
                                                      "Content-Type": "application/json"})
        return conn.getresponse().status
    except (http.client.RemoteDisconnected, ConnectionError) as e:
        return type(e).__name__
    finally:
        conn.close()


def test_drop_before_and_after(emu):
    _, url = emu
    path = "/crm/v3/objects/contacts/batch/upsert"
    body = {"inputs": [{"id": "drop@example.com", "idProperty": "email", "properties": {}}]}
    control(url, "/config", {"drop_before": 1.0})
    assert raw_post(url, path, body) == "RemoteDisconnected"
    assert control(url, "/records/contacts")[1]["results"] == []
    control(url, "/config", {"drop_before": 0, "drop_after": 1.0})
    assert raw_post(url, path, body) == "RemoteDisconnected"
    assert len(control(url, "/records/contacts")[1]["results"]) == 1  # applied, answer lost
    c = control(url, "/counters")[1]
    assert c["dropped_before"] == 1 and c["dropped_after"] == 1 and c["by_status"]["dropped"] == 2


def test_slow_and_latency_overlap(emu):
    _, url = emu
    control(url, "/config", {"slow_rate": 1.0, "slow_seconds": 0.3})
    t = time.time()
    assert call(url, "/crm/v3/properties/contacts")[0] == 200
    assert time.time() - t >= 0.3
    control(url, "/config", {"slow_rate": 0, "latency": 0.3})
    t = time.time()
    threads = [threading.Thread(target=call, args=(url, "/crm/v3/properties/contacts")) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert time.time() - t >= 0.3      # the latency was added
    # concurrent, not serialized: seen by the emulator's own count of
    # requests in flight at once, not by a wall clock
    c = control(url, "/counters")[1]
    assert c["max_inflight"] >= 4 and c["max_connections"] >= 4 and c["slow"] == 1


def test_expire_token_after(emu):
    _, url = emu
    control(url, "/config", {"expire_token_after": 2})
    st = [call(url, "/crm/v3/properties/contacts") for _ in range(4)]
    assert [s for s, _, _ in st] == [200, 200, 401, 200]
    assert st[2][1]["category"] == "EXPIRED_AUTHENTICATION"
    assert st[2][1]["message"].startswith("The OAuth token used to make this call expired")


def test_seed_determinism():
    outcomes = []
    for _ in range(2):
        server, url = hubspot.start(port=0, rate="1000/10s", seed=7, error_rate_5xx=0.5)
        try:
            outcomes.append([call(url, "/crm/v3/properties/contacts")[0] for _ in range(12)])
        finally:
            server.shutdown()
            server.server_close()
    assert outcomes[0] == outcomes[1] and len(set(outcomes[0])) > 1


# ---------------------------------------------------------------- HTTP details + control

def test_keepalive_gzip_and_counters(emu):
    server, url = emu
    host, port = url[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    for _ in range(3):
        conn.request("GET", "/crm/v3/properties/contacts",
                     headers={"Authorization": "Bearer " + TOKEN, "Accept-Encoding": "gzip"})
        r = conn.getresponse()
        raw = r.read()
        assert r.status == 200 and r.getheader("Content-Encoding") == "gzip"
        assert int(r.getheader("Content-Length")) == len(raw)
        assert json.loads(gzip.decompress(raw))["results"]
    conn.close()
    time.sleep(0.1)
    c = control(url, "/counters")[1]
    assert c["total"] == 3 and c["connections_total"] >= 1
    assert c["by_endpoint"]["GET /crm/v3/properties/contacts"] == {"200": 3}
    assert len(c["requests"]) == 3 and all("t" in r for r in c["requests"])


def test_204_keepalive(emu):
    _, url = emu
    s, b, _ = upsert_emails(url, ["k@example.com"])
    rid = b["results"][0]["id"]
    host, port = url[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    h = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}
    conn.request("POST", "/crm/v3/objects/contacts/batch/archive", json.dumps({"inputs": [{"id": rid}]}), h)
    r = conn.getresponse()
    assert r.status == 204 and r.read() == b""
    conn.request("GET", "/crm/v3/properties/contacts", headers=h)
    assert conn.getresponse().status == 200
    conn.close()


def test_reset_and_config_and_seed_records(emu):
    _, url = emu
    s, b, _ = control(url, "/records/contacts", {"inputs": [{"properties": {"email": "seed@example.com"}}]})
    assert s == 201 and b["results"][0]["id"].isdigit()
    s, knobs, _ = control(url, "/config")
    assert knobs["rate"] == "1000/10s"
    s, b, _ = control(url, "/config", {"no_such_knob": 1})
    assert s == 400
    control(url, "/reset", {})
    assert control(url, "/records/contacts")[1]["results"] == []
    assert control(url, "/counters")[1]["total"] == 0


def test_cli_start_and_sigterm():
    p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "hubspot.py"), "--port", "0",
                          "--token", "cli-token", "--rate", "50/10s", "--latency", "0"],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[-1]
        s, b, h = call(url, "/crm/v3/properties/contacts", token="cli-token")
        assert s == 200 and h["X-HubSpot-RateLimit-Max"] == "50"
    finally:
        p.terminate()
        assert p.wait(timeout=5) == 0


def test_requests_the_spec_refuses(emu):
    """crm-objects v3: property values are strings; a create needs
    associations; a read needs properties and propertiesWithHistory"""
    _, url = emu
    path = "/crm/v3/objects/contacts/batch/"
    s, b, _ = call(url, path + "upsert", {"inputs": [
        {"id": "n@example.com", "idProperty": "email", "properties": {"firstname": 12}}]})
    assert s == 400 and "property values are strings" in b["message"]
    s, b, _ = call(url, path + "create", {"inputs": [{"properties": {"email": "c@example.com"}}]})
    assert s == 400 and "[associations]" in b["message"]
    s, b, _ = call(url, path + "read", {"inputs": [{"id": "c@example.com"}], "idProperty": "email",
                                        "properties": ["email"]})
    assert s == 400 and "[propertiesWithHistory]" in b["message"]
