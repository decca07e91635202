"""Tests of the HubSpot emulator's search endpoint (hubspot_search.py).  Run:
/usr/bin/python3 -m pytest -q tests/emulators/test_hubspot_search_emulator.py"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubspot  # noqa: E402
from test_hubspot_emulator import call, control  # noqa: E402


@pytest.fixture
def url():
    server, u = hubspot.start(port=0, rate="1000/10s", search_rate="1000/1s")
    yield u
    server.shutdown()
    server.server_close()


def search(url, values, prop="domain", after="0", limit=200, op="IN", obj="companies"):
    f = {"propertyName": prop, "operator": op}
    if op == "IN":
        f["values"] = values
    else:
        f["value"] = values
    return call(url, "/crm/v3/objects/%s/search" % obj,
                {"filterGroups": [{"filters": [f]}], "properties": [prop], "limit": limit,
                 "after": after, "sorts": []})


def seed(url, domains):
    control(url, "/records/companies", {"inputs": [{"properties": {"domain": d}} for d in domains]})


def test_in_filter_paging_and_total(url):
    seed(url, ["a.com"] * 3 + ["B.com"] + ["c.com"] * 250)
    st, body, _ = search(url, ["a.com", "b.com", "x.com"])
    assert st == 200
    assert body["total"] == 4          # EQ/IN on strings ignores case
    assert "paging" not in body
    assert {r["properties"]["domain"] for r in body["results"]} == {"a.com", "B.com"}
    st, body, _ = search(url, ["c.com"])
    assert body["total"] == 250 and len(body["results"]) == 200
    assert body["paging"]["next"]["after"] == "200"
    st, body2, _ = search(url, ["c.com"], after="200")
    assert len(body2["results"]) == 50 and "paging" not in body2
    ids = {r["id"] for r in body["results"]} | {r["id"] for r in body2["results"]}
    assert len(ids) == 250
    st, body, _ = search(url, "a.com", op="EQ")
    assert body["total"] == 3


def test_documented_limits(url):
    st, body, _ = search(url, ["x"], limit=201)
    assert st == 400 and body["category"] == "VALIDATION_ERROR"
    st, body, _ = search(url, ["v%d" % i for i in range(101)])
    assert st == 400 and "Too many values" in body["message"]
    st, body, _ = call(url, "/crm/v3/objects/companies/search",
                       {"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "EQ",
                                                       "value": "x"}]}] * 6,
                        "after": "0", "limit": 10, "properties": [], "sorts": []})
    assert st == 400 and "filter groups" in body["message"]
    seed(url, ["d.com"] * 10)
    st, body, _ = search(url, ["d.com"], after="9990", limit=20)
    assert st == 400 and "10000" in body["message"]


def test_required_attributes(url):
    """the spec's PublicObjectSearchRequest requires after, filterGroups, limit,
    properties and sorts"""
    full = {"filterGroups": [], "after": "0", "limit": 10, "properties": [], "sorts": []}
    assert call(url, "/crm/v3/objects/companies/search", full)[0] == 200
    for k in full:
        st, body, _ = call(url, "/crm/v3/objects/companies/search",
                           {x: v for x, v in full.items() if x != k})
        assert st == 400 and k in body["message"], (k, body)


def test_search_rate_limit_is_its_own():
    server, u = hubspot.start(port=0, rate="1000/10s", search_rate="2/1s")
    try:
        got = [search(u, ["x"])[0] for _ in range(3)]
        assert got[:2] == [200, 200] and got[2] == 429
        st, body, _ = search(u, ["x"])
        assert body["policyName"] == "SECONDLY" and body["errorType"] == "RATE_LIMIT"
        assert body["message"] == "You have reached your secondly limit."
        # the batch endpoints are not held back by it
        st, _, _ = call(u, "/crm/v3/objects/companies/batch/read",
                        {"inputs": [], "properties": [], "propertiesWithHistory": []})
        assert st == 200
    finally:
        server.shutdown()
        server.server_close()


def test_index_delay_knob(url):
    control(url, "/config", {"search_index_delay": 3600})
    seed(url, ["late.com"])
    st, body, _ = search(url, ["late.com"])
    assert body["total"] == 0
    control(url, "/config", {"search_index_delay": 0})
    assert search(url, ["late.com"])[1]["total"] == 1
