"""Tests of the Mailchimp emulator's static segments (mailchimp_segments.py).  Run:
/usr/bin/python3 -m pytest -q tests/emulators/test_mailchimp_segments_emulator.py"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mailchimp  # noqa: E402
from test_mailchimp_emulator import LIST, call, emu  # noqa: E402,F401

SEG = "/3.0/lists/%s/segments" % LIST


def seed(server, *emails):
    st, _ = call(server, "POST", "/_emulator/members/" + LIST,
                 {"members": [{"email_address": e, "status": "subscribed"} for e in emails]})
    assert st == 200


def test_static_segment_add_remove_and_errors(emu):
    seed(emu, "a@x.io", "b@x.io")
    st, seg = call(emu, "POST", SEG, {"name": "VIP", "static_segment": []})
    assert st == 200 and seg["type"] == "static"
    url = "%s/%d" % (SEG, seg["id"])
    st, body = call(emu, "POST", url, {"members_to_add": ["A@x.io", "b@x.io", "nobody@x.io"]})
    assert st == 200
    assert sorted(m["email_address"] for m in body["members_added"]) == ["a@x.io", "b@x.io"]
    assert body["total_added"] == 2 and body["error_count"] == 1
    assert body["errors"][0]["email_addresses"] == ["nobody@x.io"]
    # a member already: nothing added, no error
    st, body = call(emu, "POST", url, {"members_to_add": ["a@x.io"]})
    assert st == 200 and body["total_added"] == 0 and body["errors"] == []
    st, body = call(emu, "POST", url, {"members_to_remove": ["a@x.io"]})
    assert st == 200 and body["total_removed"] == 1
    st, body = call(emu, "GET", url)
    assert st == 200 and body["member_count"] == 1 and body["type"] == "static"
    st, body = call(emu, "GET", "/_emulator/segments/%s/%d" % (LIST, seg["id"]))
    assert body["members"] == ["b@x.io"]


def test_limits_types_and_schema(emu):
    st, seg = call(emu, "POST", SEG, {"name": "VIP"})
    url = "%s/%d" % (SEG, seg["id"])
    st, body = call(emu, "POST", url, {"members_to_add": ["p%d@x.io" % i for i in range(501)]})
    assert st == 400 and "at most 500 items" in body["detail"]
    st, body = call(emu, "POST", url, {"members_to_add": "a@x.io"})
    assert st == 400 and body["title"] == "Invalid Resource"
    st, saved = call(emu, "POST", SEG, {"name": "Saved", "options": {"match": "any",
                                                                      "conditions": []}})
    assert saved["type"] == "saved"
    st, body = call(emu, "POST", "%s/%d" % (SEG, saved["id"]), {"members_to_add": []})
    assert st == 404 and "Static Segment" in body["detail"]
    st, body = call(emu, "GET", SEG + "/999")
    assert st == 404
    st, body = call(emu, "POST", url, {"members_to_add": []}, key="wrong-us6")
    assert st == 401
