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


def bulk_job(sf, tok, op, csv, ext="External_Id__c"):
    body = {"object": "Contact", "operation": op, "contentType": "CSV", "lineEnding": "LF"}
    if ext:
        body["externalIdFieldName"] = ext
    jid = json.loads(call(sf, "POST", "/services/data/v62.0/jobs/ingest", body, tok)[1])["id"]
    assert call(sf, "PUT", "/services/data/v62.0/jobs/ingest/%s/batches" % jid, csv, tok, "text/csv")[0] == 201
    assert call(sf, "PATCH", "/services/data/v62.0/jobs/ingest/" + jid,
                {"state": "UploadComplete"}, tok)[0] == 200
    return jid


def records(sf):
    return {r["External_Id__c"]: r for r in json.loads(call(sf, "GET", "/_emulator/records/Contact")[1])["records"]}


def test_clearing_rest_and_bulk(sf):
    """Bulk: an empty field is left as it is, #N/A sets null (upsert and update);
    REST: null and "" (text) both clear."""
    tok = token(sf)[1]["access_token"]
    bulk_job(sf, tok, "upsert", b'External_Id__c,LastName,FirstName,Title\n'
             b'"1","A","Ann","Boss"\n"2","B","Bob","Clerk"\n"3","C","Cy","Chef"\n')
    bulk_job(sf, tok, "upsert", b'External_Id__c,LastName,FirstName,Title\n"1","A","",#N/A\n')
    r = records(sf)
    assert r["1"]["FirstName"] == "Ann" and r["1"]["Title"] is None
    bulk_job(sf, tok, "update", b'Id,FirstName,Title\n"%s",,#N/A\n' % r["2"]["Id"].encode(), ext=None)
    r = records(sf)
    assert r["2"]["FirstName"] == "Bob" and r["2"]["Title"] is None
    recs = [{"attributes": {"type": "Contact"}, "External_Id__c": "3", "FirstName": None, "Title": ""}]
    st, body, _ = call(sf, "PATCH", "/services/data/v62.0/composite/sobjects/Contact/External_Id__c",
                       {"allOrNone": False, "records": recs}, tok)
    assert st == 200 and json.loads(body)[0]["success"]
    r = records(sf)
    assert r["3"]["FirstName"] is None and r["3"]["Title"] is None and r["3"]["LastName"] == "C"


def test_close_fault_drop(sf):
    """close_fault "drop": the close is applied, the answer never comes; a second
    close is refused with INVALIDJOBSTATE"""
    call(sf, "POST", "/_emulator/config", {"close_fault": "drop"})
    tok = token(sf)[1]["access_token"]
    body = {"object": "Contact", "operation": "upsert", "externalIdFieldName": "External_Id__c",
            "contentType": "CSV", "lineEnding": "LF"}
    jid = json.loads(call(sf, "POST", "/services/data/v62.0/jobs/ingest", body, tok)[1])["id"]
    call(sf, "PUT", "/services/data/v62.0/jobs/ingest/%s/batches" % jid,
         b'External_Id__c,LastName\n"1","A"\n', tok, "text/csv")
    with pytest.raises(Exception):
        call(sf, "PATCH", "/services/data/v62.0/jobs/ingest/" + jid, {"state": "UploadComplete"}, tok)
    st, body, _ = call(sf, "GET", "/services/data/v62.0/jobs/ingest/" + jid, None, tok)
    assert json.loads(body)["state"] == "JobComplete"
    st, body, _ = call(sf, "PATCH", "/services/data/v62.0/jobs/ingest/" + jid, {"state": "UploadComplete"}, tok)
    assert st == 400 and json.loads(body)[0]["errorCode"] == "INVALIDJOBSTATE"
    extra = json.loads(call(sf, "GET", "/_emulator/counters")[1])["extra"]
    assert extra["bulk_close_applied"] == 1 and extra["bulk_close_refused"] == 1


def test_delete_of_a_deleted_record(sf):
    """A record deleted by hand (control endpoint: to the Recycle Bin) or by an
    earlier API delete answers a collections DELETE with ENTITY_IS_DELETED; an id
    never seen with INVALID_CROSS_REFERENCE_KEY; the others are deleted."""
    tok = token(sf)[1]["access_token"]
    recs = [{"attributes": {"type": "Contact"}, "External_Id__c": str(i), "LastName": "L"}
            for i in (1, 2, 3)]
    out = json.loads(call(sf, "POST", "/services/data/v62.0/composite/sobjects",
                          {"allOrNone": False, "records": recs}, tok)[1])
    a, b, c = (r["id"] for r in out)
    st, body, _ = call(sf, "POST", "/_emulator/delete/Contact", {"ids": [a, "003nope"]})
    assert st == 200 and json.loads(body) == {"deleted": [a]}
    assert set(records(sf)) == {"2", "3"}
    path = "/services/data/v62.0/composite/sobjects?allOrNone=false&ids="
    out = json.loads(call(sf, "DELETE", path + ",".join([a, b]), None, tok)[1])
    assert out[0]["success"] is False
    assert out[0]["errors"] == [{"statusCode": "ENTITY_IS_DELETED",
                                 "message": "entity is deleted", "fields": []}]
    assert out[1] == {"id": b, "success": True, "errors": []}
    # deleted by the API just now: the same answer the second time
    out = json.loads(call(sf, "DELETE", path + ",".join([b, "003Q0000999999", c]), None, tok)[1])
    assert out[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert out[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert out[2]["success"] is True
    assert records(sf) == {}


def make(sf, obj, recs):
    return json.loads(call(sf, "POST", "/_emulator/create/" + obj, {"records": recs})[1])["ids"]


def failed_results(sf, tok, jid):
    return call(sf, "GET", "/services/data/v62.0/jobs/ingest/%s/failedResults/" % jid, None, tok)[1]


def test_relationship_references(sf):
    """A lookup set through the parent's External ID: REST nested object (with or
    without attributes), Bulk header Account.External_Id__c; parent not found,
    several parents, a parent field that is not indexed: per-record errors."""
    tok = token(sf)[1]["access_token"]
    acc = make(sf, "Account", [{"Name": "A", "External_Id__c": "A-1"},
                               {"Name": "D1", "External_Id__c": "DUP"},
                               {"Name": "D2", "External_Id__c": "DUP"}])
    recs = [{"attributes": {"type": "Contact"}, "External_Id__c": "1", "LastName": "A",
             "Account": {"External_Id__c": "A-1"}},
            {"attributes": {"type": "Contact"}, "External_Id__c": "2", "LastName": "B",
             "Parent_Account__r": {"attributes": {"type": "Account"}, "External_Id__c": "A-1"}},
            {"attributes": {"type": "Contact"}, "External_Id__c": "3", "LastName": "C",
             "Account": {"External_Id__c": "A-9"}},
            {"attributes": {"type": "Contact"}, "External_Id__c": "4", "LastName": "D",
             "Account": {"External_Id__c": "DUP"}},
            {"attributes": {"type": "Contact"}, "External_Id__c": "5", "LastName": "E",
             "Account": {"Code__c": "x"}}]
    st, body, _ = call(sf, "PATCH", "/services/data/v62.0/composite/sobjects/Contact/External_Id__c",
                       {"allOrNone": False, "records": recs}, tok)
    out = json.loads(body)
    assert st == 200 and [o["success"] for o in out] == [True, True, False, False, False]
    assert out[2]["errors"][0] == {"statusCode": "INVALID_FIELD", "fields": [], "message":
                                   "Foreign key external ID: A-9 not found for field External_Id__c in entity Account"}
    assert out[3]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    assert "more than one record found for external id field: [%s, %s]" % (acc[1], acc[2]) \
        in out[3]["errors"][0]["message"]
    assert "Code__c is not an External ID or indexed field for Account" in out[4]["errors"][0]["message"]
    r = records(sf)
    assert r["1"]["AccountId"] == acc[0] and r["2"]["Parent_Account__c"] == acc[0]
    assert "3" not in r and "4" not in r
    # an unknown relationship is an unknown column: the request is refused
    bad = [{"attributes": {"type": "Contact"}, "External_Id__c": "6", "LastName": "F",
            "Acount": {"External_Id__c": "A-1"}}]
    st, body, _ = call(sf, "PATCH", "/services/data/v62.0/composite/sobjects/Contact/External_Id__c",
                       {"allOrNone": False, "records": bad}, tok)
    assert st == 400 and json.loads(body)[0]["errorCode"] == "INVALID_FIELD"
    # Bulk: the header names the relationship; #N/A in the lookup field clears it
    jid = bulk_job(sf, tok, "upsert", b'External_Id__c,LastName,Account.External_Id__c,AccountId\n'
                   b'"1","A",,#N/A\n"7","G","A-1",\n"8","H","A-9",\n')
    r = records(sf)
    assert r["1"]["AccountId"] is None and r["7"]["AccountId"] == acc[0] and "8" not in r
    assert b"INVALID_FIELD:Foreign key external ID: A-9 not found for field External_Id__c " \
        b"in entity Account:--" in failed_results(sf, tok, jid)


def soql(sf, tok, q):
    from urllib.parse import quote
    st, body, _ = call(sf, "GET", "/services/data/v62.0/query?q=" + quote(q), None, tok)
    return st, json.loads(body) if body else None


def test_query_in_list(sf):
    """SELECT Id, F FROM Obj WHERE F IN (...): escapes, case-insensitive text,
    pages of 2,000 through nextRecordsUrl, Salesforce's refusals."""
    tok = token(sf)[1]["access_token"]
    make(sf, "Contact", [{"LastName": "O'Brien", "Email": "A@x.com"},
                         {"LastName": "Back\\slash", "Email": "b@x.com"}])
    st, b = soql(sf, tok, "select Id, LastName from Contact where LastName in ('O\\'Brien', 'Back\\\\slash')")
    assert st == 200 and b["totalSize"] == 2 and b["done"] is True
    assert b["records"][0]["attributes"]["type"] == "Contact"
    st, b = soql(sf, tok, "SELECT Id, Email FROM Contact WHERE Email IN ('a@X.com')")
    assert [r["Email"] for r in b["records"]] == ["A@x.com"]
    for q, code in [("SELECT Id FROM Contact WHERE Email IN ('a'", "MALFORMED_QUERY"),
                    ("SELECT Id FROM Contact WHERE Email IN ('a\\qb')", "MALFORMED_QUERY"),
                    ("SELECT Id FROM Contact WHERE Email IN ('a' 'b')", "MALFORMED_QUERY"),
                    ("SELECT Id FROM Nope WHERE Email IN ('a')", "INVALID_TYPE"),
                    ("SELECT Id FROM Contact WHERE Emial IN ('a')", "INVALID_FIELD"),
                    ("SELECT Id FROM Contact WHERE Description IN ('a')", "INVALID_FIELD")]:
        st, b = soql(sf, tok, q)
        assert st == 400 and b[0]["errorCode"] == code, (q, b)
    make(sf, "Contact", [{"LastName": "Same", "Email": "many@x.com"} for _ in range(2500)])
    st, b = soql(sf, tok, "SELECT Id, Email FROM Contact WHERE Email IN ('many@x.com')")
    assert b["totalSize"] == 2500 and not b["done"] and len(b["records"]) == 2000
    st, body, _ = call(sf, "GET", b["nextRecordsUrl"], None, tok)
    b2 = json.loads(body)
    assert b2["done"] and len(b2["records"]) == 500
    ids = {r["Id"] for r in b["records"]} | {r["Id"] for r in b2["records"]}
    assert len(ids) == 2500
