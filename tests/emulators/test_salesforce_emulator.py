"""Quick checks of the Salesforce emulator: token grants, collections per-record
errors in input order, Bulk API 2.0 lifecycle with result CSVs, the usage header,
session expiry."""

import json
import os
import sys
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import salesforce  # noqa: E402


@pytest.fixture
def sf():
    server, url = salesforce.start(port=0)
    yield url
    server.shutdown()
    server.server_close()


def call(url, method, path, body=None, token=None, ctype="application/json"):
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": ctype}
    if token:
        h["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def token(url, form=b"grant_type=refresh_token&client_id=retl-client&client_secret=retl-secret&refresh_token=retl-refresh"):
    st, body, _ = call(url, "POST", "/services/oauth2/token", form,
                       ctype="application/x-www-form-urlencoded")
    return st, json.loads(body)


def test_grants_and_errors(sf):
    st, b = token(sf)
    assert st == 200 and b["instance_url"].startswith("http://127.0.0.1")
    st, b = token(sf, b"grant_type=client_credentials&client_id=retl-client&client_secret=retl-secret")
    assert st == 200
    st, b = token(sf, b"grant_type=refresh_token&client_id=retl-client&refresh_token=nope")
    assert st == 400 and b == {"error": "invalid_grant", "error_description": "expired access/refresh token"}


def test_collections_and_usage(sf):
    tok = token(sf)[1]["access_token"]
    recs = [{"attributes": {"type": "Contact"}, "External_Id__c": "1", "LastName": "A"},
            {"attributes": {"type": "Contact"}, "External_Id__c": "2", "Email": "bad"},
            {"attributes": {"type": "Contact"}, "External_Id__c": "3", "LastName": "x" * 81}]
    st, body, h = call(sf, "PATCH", "/services/data/v62.0/composite/sobjects/Contact/External_Id__c",
                       {"allOrNone": False, "records": recs}, tok)
    out = json.loads(body)
    assert st == 200 and out[0]["success"] and out[0]["created"]
    codes = [e["statusCode"] for e in out[1]["errors"]]
    assert "INVALID_EMAIL_ADDRESS" in codes and "REQUIRED_FIELD_MISSING" in codes
    assert out[2]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert h["Sforce-Limit-Info"] == "api-usage=1/100000"
    st, body, _ = call(sf, "POST", "/services/data/v62.0/composite/sobjects",
                       {"allOrNone": False, "records": [recs[0]]}, tok)
    assert json.loads(body)[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    st, body, _ = call(sf, "GET", "/services/data/v62.0/sobjects/Contact/describe", None, "nope")
    assert st == 401 and json.loads(body)[0]["errorCode"] == "INVALID_SESSION_ID"


def test_bulk_lifecycle(sf):
    tok = token(sf)[1]["access_token"]
    st, body, _ = call(sf, "POST", "/services/data/v62.0/jobs/ingest",
                       {"object": "Contact", "operation": "upsert", "externalIdFieldName": "External_Id__c",
                        "contentType": "CSV", "lineEnding": "LF"}, tok)
    jid = json.loads(body)["id"]
    csv = b'External_Id__c,LastName\n"1","A"\n"2",#N/A\n'
    assert call(sf, "PUT", "/services/data/v62.0/jobs/ingest/%s/batches" % jid, csv, tok, "text/csv")[0] == 201
    call(sf, "PATCH", "/services/data/v62.0/jobs/ingest/" + jid, {"state": "UploadComplete"}, tok)
    st, body, _ = call(sf, "GET", "/services/data/v62.0/jobs/ingest/" + jid, None, tok)
    assert json.loads(body)["state"] == "JobComplete"
    ok = call(sf, "GET", "/services/data/v62.0/jobs/ingest/%s/successfulResults/" % jid, None, tok)[1]
    bad = call(sf, "GET", "/services/data/v62.0/jobs/ingest/%s/failedResults/" % jid, None, tok)[1]
    assert ok.decode().startswith('"sf__Id","sf__Created","External_Id__c","LastName"')
    assert "REQUIRED_FIELD_MISSING" in bad.decode()
