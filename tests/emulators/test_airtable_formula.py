"""The Airtable emulator's list endpoints with filterByFormula (GET and POST
listRecords), its formula evaluator (airtable_formula.py), paging and the
16,000-character URL limit: what retl's update mode relies on."""

import os
import sys
import urllib.parse

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import airtable  # noqa: E402
import airtable_formula as af  # noqa: E402
from test_airtable_emulator import BASE, TOKEN, call  # noqa: E402

NAMES = ["Email", "Name", "Seats", "Field {x}"]


def ok(formula, fields):
    return af.compile_formula(formula, NAMES)(fields)


def test_evaluator_shapes():
    rec = {"Email": "o'neil\\x@y.io", "Seats": 5, "Name": "A\nB"}
    assert ok("OR({Email}='o\\'neil\\\\x@y.io')", rec)
    assert ok('{Email}="o\'neil\\\\x@y.io"', rec)
    assert not ok("{Email}='O\\'NEIL\\\\x@y.io'", rec)          # = is exact
    assert ok("LOWER({Email}&'')=LOWER('O\\'NEIL\\\\X@Y.IO')", rec)
    assert ok("AND({Seats}=5,{Name}='A\\nB')", rec)
    assert ok("{Seats}='5'", rec) and not ok("{Seats}=6", rec)
    assert ok("OR(AND({Email}='z'),AND({Seats}=5))", rec)
    assert not ok("{Name}=''", rec) and ok("{Name}=''", {})      # blank is ""
    assert ok("{Field {x\\}}=''", {})


@pytest.mark.parametrize("bad", [
    "{Email}=", "{Email}='a", "FIND('a',{Email})", "{Email}=='a'",
    "OR()", "AND({Email}='a'", "{Nope}='a'", "{Email}='a' x", "LOWER('a','b')",
])
def test_evaluator_refuses(bad):
    with pytest.raises(af.FormulaError):
        af.compile_formula(bad, NAMES)


@pytest.fixture
def at():
    server, url = airtable.start(port=0, tokens=[TOKEN], rate_per_second=1000)
    yield url
    server.shutdown()
    server.server_close()


def seed(url, fields):
    st, _ = call(url, "POST", "/_emulator/records/%s/People" % BASE,
                 {"records": [{"fields": f} for f in fields]})
    assert st == 200


def test_post_list_records_with_formula_fields_and_paging(at):
    seed(at, [{"Email": "p%d@x.io" % i, "Name": "P%d" % i, "Seats": i} for i in range(150)])
    path = "/v0/%s/People/listRecords" % BASE
    st, body = call(at, "POST", path, {"filterByFormula": "OR({Email}='p3@x.io',{Seats}=7)",
                                       "pageSize": 100, "fields": ["Email"]})
    assert st == 200 and "offset" not in body
    assert sorted(r["fields"]["Email"] for r in body["records"]) == ["p3@x.io", "p7@x.io"]
    assert all(set(r["fields"]) == {"Email"} for r in body["records"])
    st, body = call(at, "POST", path, {"pageSize": 100})
    assert st == 200 and len(body["records"]) == 100 and body["offset"]
    st, body2 = call(at, "POST", path, {"pageSize": 100, "offset": body["offset"]})
    assert st == 200 and len(body2["records"]) == 50 and "offset" not in body2


def test_formula_errors_are_airtables(at):
    path = "/v0/%s/People/listRecords" % BASE
    st, body = call(at, "POST", path, {"filterByFormula": "FIND('a',{Email})"})
    assert st == 422 and body["error"]["type"] == "INVALID_FILTER_BY_FORMULA"
    st, body = call(at, "POST", path, {"filterByFormula": "{Mail}='a'"})
    assert st == 422 and body["error"]["type"] == "INVALID_FILTER_BY_FORMULA"
    st, body = call(at, "POST", path, {"filterByFormula": "{Email}='a'", "bogus": 1})
    assert st == 422 and body["error"]["type"] == "INVALID_REQUEST_UNKNOWN"
    q = urllib.parse.quote("{Email}=='a'")
    st, body = call(at, "GET", "/v0/%s/People?filterByFormula=%s" % (BASE, q))
    assert st == 422 and body["error"]["type"] == "INVALID_FILTER_BY_FORMULA"


def test_get_urls_over_16000_characters_are_refused(at):
    seed(at, [{"Email": "a@x.io"}])
    f = "OR(" + ",".join("{Email}='%s@x.io'" % ("a" * 40 + str(i)) for i in range(400)) + ")"
    q = urllib.parse.quote(f)
    st, body = call(at, "GET", "/v0/%s/People?filterByFormula=%s" % (BASE, q))
    assert st == 414
    st, body = call(at, "POST", "/v0/%s/People/listRecords" % BASE, {"filterByFormula": f})
    assert st == 200 and body["records"] == []
