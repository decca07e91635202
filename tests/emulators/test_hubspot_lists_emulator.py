"""Tests of the HubSpot emulator's lists (hubspot_lists.py).  Run:
/usr/bin/python3 -m pytest -q tests/emulators/test_hubspot_lists_emulator.py"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubspot  # noqa: E402
from test_hubspot_emulator import call, control  # noqa: E402


@pytest.fixture
def emu():
    server, url = hubspot.start(port=0, rate="1000/10s")
    yield url
    server.shutdown()
    server.server_close()


def seed(url, *emails):
    st, body, _ = control(url, "/records/contacts",
                          {"inputs": [{"properties": {"email": e}} for e in emails]})
    assert st == 201
    return [r["id"] for r in body["results"]]


def new_list(url, ptype="MANUAL", obj="0-1", dated=False):
    base = "/crm/lists/2026-03" if dated else "/crm/v3/lists"
    st, body, _ = call(url, base, {"name": "vip " + ptype, "objectTypeId": obj,
                                   "processingType": ptype})
    assert st == 200, body
    return body["list"]["listId"]


def test_add_remove_and_missing(emu):
    a, b = seed(emu, "a@x.io", "b@x.io")
    lid = new_list(emu)
    st, body, _ = call(emu, "/crm/v3/lists/%s/memberships/add" % lid, [a, b, "999999"], method="PUT")
    assert st == 200
    assert sorted(body["recordsIdsAdded"]) == sorted([a, b])
    assert body["recordIdsMissing"] == ["999999"] and body["recordIdsRemoved"] == []
    # already a member: ignored, not an error
    st, body, _ = call(emu, "/crm/v3/lists/%s/memberships/add" % lid, [a], method="PUT")
    assert st == 200 and body["recordsIdsAdded"] == []
    st, body, _ = call(emu, "/crm/lists/2026-03/%s/memberships/remove" % lid, [a], method="PUT")
    assert st == 200 and body["recordIdsRemoved"] == [a]
    assert control(emu, "/lists/%s/members" % lid)[1]["members"] == [b]
    st, body, _ = call(emu, "/crm/v3/lists/%s" % lid)
    assert st == 200 and body["list"]["processingType"] == "MANUAL"
    assert body["list"]["objectTypeId"] == "0-1" and body["list"]["size"] == 1


def test_dynamic_list_refuses_manual_changes(emu):
    a, = seed(emu, "a@x.io")
    lid = new_list(emu, "DYNAMIC")
    st, body, _ = call(emu, "/crm/v3/lists/%s/memberships/add" % lid, [a], method="PUT")
    assert st == 400 and body["category"] == "VALIDATION_ERROR"
    assert "dynamic" in body["message"]
    # SNAPSHOT lists take manual changes (HubSpot's docs)
    lid = new_list(emu, "SNAPSHOT")
    st, body, _ = call(emu, "/crm/v3/lists/%s/memberships/add" % lid, [a], method="PUT")
    assert st == 200 and body["recordsIdsAdded"] == [a]


def test_errors(emu):
    st, body, _ = call(emu, "/crm/v3/lists/424242")
    assert st == 404 and body["category"] == "OBJECT_NOT_FOUND"
    lid = new_list(emu)
    st, body, _ = call(emu, "/crm/v3/lists/%s/memberships/add" % lid, {"ids": ["1"]}, method="PUT")
    assert st == 400
    st, body, _ = call(emu, "/crm/v3/lists/%s/memberships/add" % lid, ["1"], method="PUT",
                       token="wrong")
    assert st == 401
    st, body, _ = call(emu, "/crm/v3/lists", {"name": "x", "objectTypeId": "0-1"})
    assert st == 400 and "processingType" in body["message"]


def test_scopes(emu):
    lid = new_list(emu)
    control(emu, "/config", {"missing_scopes": ["crm.lists.write"]})
    st, body, _ = call(emu, "/crm/v3/lists/%s/memberships/add" % lid, ["1"], method="PUT")
    assert st == 403 and body["category"] == "MISSING_SCOPES"
    st, body, _ = call(emu, "/crm/v3/lists/%s" % lid)
    assert st == 200
