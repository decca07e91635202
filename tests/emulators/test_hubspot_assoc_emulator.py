"""Tests of the HubSpot emulator's associations v4, labels and search
(hubspot_assoc.py).  Run:
/usr/bin/python3 -m pytest -q tests/emulators/test_hubspot_assoc_emulator.py"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubspot  # noqa: E402
from test_hubspot_emulator import call, control  # noqa: E402

V4 = "/crm/v4/associations/contacts/companies/batch/"


@pytest.fixture
def emu():
    server, url = hubspot.start(port=0, rate="1000/10s")
    yield url
    server.shutdown()
    server.server_close()


def seed(url, obj, props):
    st, body, _ = control(url, "/records/" + obj, {"inputs": [{"properties": p} for p in props]})
    assert st == 201
    return [r["id"] for r in body["results"]]


def pair(f, t, cat="HUBSPOT_DEFINED", tid=279):
    return {"from": {"id": f}, "to": {"id": t},
            "types": [{"associationCategory": cat, "associationTypeId": tid}]}


def test_labels_list_the_unlabeled_type_with_label_null_under_both_paths(emu):
    for path in ("/crm/v4/associations/contacts/companies/labels",
                 "/crm/associations/v4/0-1/0-2/labels"):
        st, body, _ = call(emu, path)
        assert st == 200
        assert {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None} in body["results"]
        assert {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"} in body["results"]


def test_create_read_archive_round_trip(emu):
    (c,) = seed(emu, "contacts", [{"email": "a@x.io"}])
    k1, k2 = seed(emu, "companies", [{"domain": "x.io"}, {"domain": "y.io"}])
    st, body, _ = call(emu, V4 + "create", {"inputs": [pair(c, k1), pair(c, k2, tid=1)]})
    assert st == 201 and len(body["results"]) == 2
    st, body, _ = call(emu, V4 + "read", {"inputs": [{"id": c}]})
    assert st == 200
    to = {x["toObjectId"]: {t["typeId"] for t in x["associationTypes"]} for x in body["results"][0]["to"]}
    # a labeled association also holds the unlabeled type
    assert to == {k1: {279}, k2: {1, 279}}
    # removing a label keeps the unlabeled association
    st, body, _ = call(emu, V4 + "labels/archive", {"inputs": [pair(c, k2, tid=1)]})
    assert st == 204 and body is None
    _, body, _ = call(emu, V4 + "read", {"inputs": [{"id": c}]})
    assert {x["toObjectId"] for x in body["results"][0]["to"]} == {k1, k2}
    st, _, _ = call(emu, V4 + "archive", {"inputs": [{"from": {"id": c}, "to": [{"id": k1}, {"id": k2}]}]})
    assert st == 204
    _, body, _ = call(emu, V4 + "read", {"inputs": [{"id": c}]})
    assert body["results"] == []


def test_dated_archive_answers_200_with_a_batch_body(emu):
    (c,) = seed(emu, "contacts", [{"email": "a@x.io"}])
    (k,) = seed(emu, "companies", [{"domain": "x.io"}])
    base = "/crm/associations/2026-03/contacts/companies/batch/"
    assert call(emu, base + "create", {"inputs": [pair(c, k)]})[0] == 201
    st, body, _ = call(emu, base + "archive", {"inputs": [{"from": {"id": c}, "to": [{"id": k}]}]})
    assert st == 200 and body["status"] == "COMPLETE"


def test_create_refuses_what_the_spec_requires_and_unknown_types(emu):
    (c,) = seed(emu, "contacts", [{"email": "a@x.io"}])
    (k,) = seed(emu, "companies", [{"domain": "x.io"}])
    st, body, _ = call(emu, V4 + "create", {"inputs": [{"from": {"id": c}, "to": {"id": k}}]})
    assert st == 400 and "types" in body["message"]
    st, body, _ = call(emu, V4 + "create", {"inputs": [pair(c, k, cat="NOPE")]})
    assert st == 400
    st, body, _ = call(emu, V4 + "create", {"inputs": [pair(c, k, tid=999)]})
    assert st == 400 and "not a valid association type" in body["message"]
    st, body, _ = call(emu, V4 + "archive", {"inputs": [{"from": {"id": c}, "to": {"id": k}}]})
    assert st == 400


def test_create_of_a_missing_target_is_207(emu):
    (c,) = seed(emu, "contacts", [{"email": "a@x.io"}])
    (k,) = seed(emu, "companies", [{"domain": "x.io"}])
    st, body, _ = call(emu, V4 + "create", {"inputs": [pair(c, k), pair(c, "999999")]})
    assert st == 207 and body["numErrors"] == 1
    assert body["errors"][0]["context"]["ids"] == ["999999"]
    assert len(body["results"]) == 1


def test_read_limit_is_1000(emu):
    st, _, _ = call(emu, V4 + "read", {"inputs": [{"id": str(i)} for i in range(1001)]})
    assert st == 400


def test_search_in_and_eq_on_domain(emu):
    seed(emu, "companies", [{"domain": "x.io"}, {"domain": "x.io"}, {"domain": "y.io"}])
    body = {"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "IN",
                                           "values": ["x.io", "y.io", "z.io"]}]}],
            "properties": ["domain"], "limit": 200, "sorts": [], "after": "0"}
    st, out, _ = call(emu, "/crm/v3/objects/companies/search", body)
    assert st == 200 and out["total"] == 3
    assert sorted(r["properties"]["domain"] for r in out["results"]) == ["x.io", "x.io", "y.io"]
    body["filterGroups"][0]["filters"] = [{"propertyName": "domain", "operator": "EQ", "value": "y.io"}]
    st, out, _ = call(emu, "/crm/objects/2026-03/companies/search", body)
    assert st == 200 and out["total"] == 1
    assert call(emu, "/crm/v3/objects/companies/search",
                {k: v for k, v in body.items() if k != "sorts"})[0] == 400
    body["limit"] = 201
    assert call(emu, "/crm/v3/objects/companies/search", body)[0] == 400
    body["limit"] = 10
    body["filterGroups"][0]["filters"][0]["propertyName"] = "nope"
    assert call(emu, "/crm/v3/objects/companies/search", body)[0] == 400


def test_control_lists_associations_and_adds_labels(emu):
    (c,) = seed(emu, "contacts", [{"email": "a@x.io"}])
    (k,) = seed(emu, "companies", [{"domain": "x.io"}])
    st, lab, _ = control(emu, "/labels/contacts/companies", {"label": "Billing"})
    assert st == 201
    assert call(emu, V4 + "create", {"inputs": [pair(c, k, "USER_DEFINED", lab["typeId"])]})[0] == 201
    st, body, _ = control(emu, "/associations/contacts/companies")
    assert body["results"] == [{"fromId": c, "toId": k, "types": [
        {"category": "HUBSPOT_DEFINED", "typeId": 279},
        {"category": "USER_DEFINED", "typeId": lab["typeId"]}]}]


def test_associations_need_auth(emu):
    st, body, _ = call(emu, V4 + "read", {"inputs": []}, token=None)
    assert st == 401
