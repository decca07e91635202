"""Vendor contracts (issue 12): every request retl sent to the HubSpot and
Mailchimp emulators during the integration suite, replayed through a
request-validating mock built from the vendor's published OpenAPI spec
(Stoplight Prism, pinned; `make integration` installs it and records the
requests: RETL_REQUEST_LOG).  A request the spec refuses is a violation:
our emulators were written from the same reading as the code, the vendor's
spec is the contract.

Mailchimp's spec is the project's own copy (tests/specs/mailchimp, licence and
origin in its README), so Mailchimp is always checked.  HubSpot's specs are
read from ../shared/specs (present wherever CI runs, not part of the project:
they are not licensed for redistribution); without them the HubSpot check says
so and skips.  Requests are replayed once per shape (method, path, and the body
with its values replaced by their JSON types), the first real request of each
shape, so the run stays short.

Prism accepts properties a schema does not declare (the vendors' schemas allow
them), so it would not see a field the vendor ignores, such as status_if_new
or tags on a Mailchimp batch member.  A stricter check, without Prism, reads
every Mailchimp body against the spec's request schema for its operation
(tests/emulators/schema.py, the same code the emulator validates with): every
property retl sends must be declared there, or be listed in KNOWN with the
vendor document that allows it.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SPECS = os.environ.get("RETL_SPECS") or os.path.join(os.path.dirname(REPO), "shared", "specs")
PRISM = os.environ.get("RETL_PRISM") or os.path.join(REPO, "build", "prism", "node_modules",
                                                    ".bin", "prism")
LOG = os.environ.get("RETL_REQUEST_LOG")
# the project's own copy of Mailchimp's spec (the emulator reads the same file)
OWN_SPECS = os.path.join(REPO, "tests", "specs")

sys.path.insert(0, os.path.join(REPO, "tests", "emulators"))
import schema  # noqa: E402

# which spec serves which request: (emulator, path prefix) -> (spec file,
# the prefix the spec's paths have instead); an optional fifth member is a
# regex the rest of the path must match (the labels calls share their
# prefix with the batch calls, in another spec file)
ROUTES = [
    # associations labels: the /crm/v4/associations/... form HubSpot's docs
    # show is only in the older rollout of the schema spec (specs README)
    ("hubspot", "/crm/v4/associations/", "hubspot/crm-associations-schema-v4-rollout50914.json",
     "/crm/v4/associations/", r"^[^/]+/[^/]+/labels$"),
    ("hubspot", "/crm/associations/2026-03/", "hubspot/crm-associations-schema-2026-03.json",
     "/crm/associations/2026-03/", r"^[^/]+/[^/]+/labels$"),
    ("hubspot", "/crm/v4/associations/", "hubspot/crm-associations-v4.json",
     "/crm/v4/associations/"),
    ("hubspot", "/crm/associations/2026-03/", "hubspot/crm-associations-2026-03.json",
     "/crm/associations/2026-03/"),
    ("hubspot", "/crm/v3/objects/", "hubspot/crm-objects-v3.json", "/crm/v3/objects/"),
    ("hubspot", "/crm/v3/properties/", "hubspot/crm-properties-v3.json", "/crm/v3/properties/"),
    ("hubspot", "/crm/objects/2026-03/", "hubspot/crm-objects-2026-03.json",
     "/crm/objects/2026-03/"),
    ("hubspot", "/crm/properties/2026-03/", "hubspot/crm-properties-2026-03.json",
     "/crm/properties/2026-03/"),
    ("hubspot", "/crm/v3/lists/", "hubspot/crm-lists-v3.json", "/crm/v3/lists/"),
    ("hubspot", "/crm/lists/2026-03/", "hubspot/crm-lists-2026-03.json", "/crm/lists/2026-03/"),
    ("mailchimp", "/3.0/", "mailchimp/marketing-3.0.85.openapi.json", "/"),
]
VENDORS = ("hubspot", "mailchimp")
MAILCHIMP_SPEC = "mailchimp/marketing-3.0.85.openapi.json"


def spec_path(spec):
    """Mailchimp's spec from the project, HubSpot's from ../shared/specs"""
    return os.path.join(OWN_SPECS if spec.startswith("mailchimp/") else SPECS, spec)


def specs_of(vendor):
    return {r[2] for r in ROUTES if r[0] == vendor}

# Extensions a spec is known to lack, each with the vendor document that
# allows it: (emulator, "METHOD /path template" regex, violation regex, why).
# Applies to Prism's violations and to the strict check's
# "undeclared property <dotted path>" alike.
KNOWN = [
    ("mailchimp", r"^POST /lists/[^/]+$", r"^undeclared property members\.item:N\.tags$",
     "Mailchimp release note 2022-01-24, 'Added ability to sync tags to existing members' "
     "(https://mailchimp.com/developer/release-notes/added-ability-sync-tags-existing-members/): "
     "tags on batch subscribe's members (POST /lists/{list_id}), and sync_tags, which the "
     "spec has and which only means something with them"),
]


def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        seen = []
        for x in v:
            s = shape(x)
            if s not in seen:
                seen.append(s)
        return seen
    return type(v).__name__


def template(path):
    """the path with ids and query values blurred, for grouping"""
    p, _, q = path.partition("?")
    p = re.sub(r"/(lists|members)/[^/]+", r"/\1/{id}", p)
    keys = sorted(k.split("=")[0] for k in q.split("&") if k)
    return p + ("?" + "&".join(keys) if keys else "")


def route(rec):
    for emu, prefix, spec, to, *rest in ROUTES:
        tail = rec["path"].split("?")[0][len(prefix):]
        if rec["emulator"] == emu and rec["path"].startswith(prefix) and \
                (not rest or re.match(rest[0], tail)):
            return spec, to + rec["path"][len(prefix):]
    return None, None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_specs(vendor):
    missing = sorted(spec_path(s) for s in specs_of(vendor) if not os.path.exists(spec_path(s)))
    if missing:
        pytest.skip(f"{vendor}'s specs are not here ({', '.join(missing)}): "
                    f"{vendor} conformance not checked")


@pytest.fixture(scope="module")
def prism():
    """spec file -> base URL of a Prism mock serving it (the specs present only)"""
    if not os.path.exists(PRISM):
        pytest.fail(f"Prism is not installed at {PRISM}: run `make prism`", pytrace=False)
    procs, urls = [], {}
    try:
        for spec in sorted({r[2] for r in ROUTES}):
            if not os.path.exists(spec_path(spec)):
                continue
            port = free_port()
            p = subprocess.Popen([PRISM, "mock", spec_path(spec), "-p", str(port),
                                  "-h", "127.0.0.1"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
            procs.append(p)
            urls[spec] = (p, f"http://127.0.0.1:{port}")
        for spec, (p, url) in urls.items():
            deadline = time.time() + 180
            for line in p.stdout:
                if "Prism is listening" in line:
                    break
                if time.time() > deadline:
                    pytest.fail(f"Prism did not start on {spec}")
        yield {spec: url for spec, (p, url) in urls.items()}
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def send(url, method, path, body, emulator):
    headers = {"Content-Type": "application/json"}
    headers["Authorization"] = ("Basic cmV0bDprZXk=" if emulator == "mailchimp"
                                else "Bearer conformance")
    req = urllib.request.Request(url + path, data=body.encode() if body else None,
                                 method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("sl-violations"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("sl-violations"), e.read()


def violations(url, rec, path):
    """the spec's objections to one request, as strings ([] when none)"""
    status, sl, body = send(url, rec["method"], path, rec["body"], rec["emulator"])
    if status == 422 or (status == 400 and b"invalid_json" in body):
        try:
            return [v["message"] for v in json.loads(sl or "[]")] or [body.decode()[:300]]
        except ValueError:
            return [body.decode()[:300]]
    return []


def known(rec, path, message):
    for emu, where, what, _why in KNOWN:
        if rec["emulator"] == emu and re.search(where, rec["method"] + " " + template(path)) \
                and re.search(what, message):
            return True
    return False


def recorded():
    if not LOG or not os.path.exists(LOG):
        pytest.skip("no requests recorded: run through `make integration` (RETL_REQUEST_LOG)")
    with open(LOG, encoding="utf-8") as f:
        recs = [json.loads(line) for line in f if line.strip()]
    picked, seen = [], set()
    for rec in recs:
        spec, path = route(rec)
        if not spec:
            continue
        try:
            body_shape = shape(json.loads(rec["body"])) if rec["body"] else None
        except ValueError:
            body_shape = rec["body"]
        k = (rec["emulator"], rec["method"], template(path), json.dumps(body_shape, sort_keys=True))
        if k not in seen:
            seen.add(k)
            picked.append((spec, path, rec))
    return picked


# Every kind of request retl sends, as "METHOD path" patterns of what the
# emulators recorded: the integration scenarios must have made each at least
# once, so that each is checked against its spec (README lists them).
_HS = [f"POST /crm/{v}/contacts/batch/{k}"
       for v in ("v3/objects", "objects/2026-03")
       for k in ("upsert", "update", "create", "read", "archive")] + \
      [f"GET /crm/{v}/contacts" for v in ("v3/properties", "properties/2026-03")] + \
      [f"POST /crm/{v}/contacts/companies/batch/{k}"
       for v in ("v4/associations", "associations/2026-03")
       for k in ("create", "read", "archive", "labels/archive")] + \
      [f"GET /crm/{v}/contacts/companies/labels"
       for v in ("v4/associations", "associations/2026-03")] + \
      [f"POST /crm/{v}/companies/search" for v in ("v3/objects", "objects/2026-03")]
# mode membership: a static list's members (a list id in the path)
_HS_LISTS = [rf"PUT /crm/{v}/\d+/memberships/{k}$" for v in ("v3/lists", "lists/2026-03")
             for k in ("add", "remove")] + \
            [rf"GET /crm/{v}/\d+$" for v in ("v3/lists", "lists/2026-03")]
REQUEST_TYPES = {
    "hubspot": [re.escape(t) + "$" for t in _HS] + _HS_LISTS,
    "mailchimp": [r"GET /3\.0/ping$", r"GET /3\.0/lists/\w+$",
                  r"GET /3\.0/lists/\w+/merge-fields", r"POST /3\.0/lists/\w+$",
                  r"PUT /3\.0/lists/\w+/members/[0-9a-f]{32}$",
                  r"PATCH /3\.0/lists/\w+/members/[0-9a-f]{32}$",
                  r"POST /3\.0/lists/\w+/members/[0-9a-f]{32}/tags$",
                  r"DELETE /3\.0/lists/\w+/members/[0-9a-f]{32}$",
                  r"POST /3\.0/lists/\w+/members/[0-9a-f]{32}/actions/delete-permanent$",
                  r"GET /3\.0/lists/\w+/segments/\d+$", r"POST /3\.0/lists/\w+/segments/\d+$"],
}


@pytest.mark.parametrize("vendor", VENDORS)
def test_every_request_retl_sent_is_valid_by_the_vendors_spec(vendor, prism):
    need_specs(vendor)
    picked = [p for p in recorded() if p[2]["emulator"] == vendor]
    specs = {spec for spec, _, _ in picked}
    assert specs == specs_of(vendor), \
        f"no request recorded for {sorted(specs_of(vendor) - specs)}"
    sent = [f"{rec['method']} {rec['path'].split('?')[0]}" for _, _, rec in picked]
    missing = [t for t in REQUEST_TYPES[vendor] if not any(re.match(t, x) for x in sent)]
    assert not missing, f"request types no integration scenario made: {missing}"
    bad = []
    for spec, path, rec in picked:
        for v in violations(prism[spec], rec, path):
            if not known(rec, path, v):
                bad.append(f"{rec['method']} {path}: {v}\n    body: {rec['body'][:300]}")
    assert not bad, f"{len(bad)} request(s) the spec refuses:\n" + "\n".join(bad[:20])


_mailchimp = []


def mailchimp_spec():
    """Mailchimp's spec, read once"""
    if not _mailchimp:
        _mailchimp.append(schema.Spec.load(spec_path(MAILCHIMP_SPEC)))
    return _mailchimp[0]


def undeclared(rec, path):
    """the strict check: one violation per property of the request body that
    the operation's request schema does not declare"""
    spec = mailchimp_spec()
    body_schema = spec.request_schema(rec["method"], path)
    if body_schema is None or not rec["body"]:
        return []
    try:
        body = json.loads(rec["body"])
    except ValueError:
        return []  # Prism reports malformed JSON
    # one line per property, not per array item ("members.item:N.tags")
    paths = (re.sub(r"item:\d+", "item:N", p) for p in spec.undeclared(body_schema, body))
    return [f"undeclared property {p}" for p in dict.fromkeys(paths)]


def test_mailchimp_bodies_use_declared_properties_only():
    bad = []
    picked = [p for p in recorded() if p[2]["emulator"] == "mailchimp"]
    assert picked, "no Mailchimp request recorded"
    for _spec, path, rec in picked:
        for v in undeclared(rec, path):
            if not known(rec, path, v):
                bad.append(f"{rec['method']} {path}: {v}\n    body: {rec['body'][:300]}")
    assert not bad, (f"{len(bad)} Mailchimp request(s) send properties the spec does not "
                     "declare (list one in KNOWN only with the vendor document that allows "
                     "it):\n" + "\n".join(bad[:20]))


def test_an_undeclared_mailchimp_property_is_caught():
    """the test of the strict check: status_if_new or tags on a batch member,
    tags on PUT; the documented bodies pass"""
    sub = {"emulator": "mailchimp", "method": "POST",
           "body": json.dumps({"members": [{"email_address": "a@x.io", "status_if_new": "subscribed",
                                            "tags": ["vip"]},
                                           {"email_address": "b@x.io", "status_if_new": "subscribed"}],
                               "update_existing": False})}
    assert undeclared(sub, "/lists/abc") == ["undeclared property members.item:N.status_if_new",
                                             "undeclared property members.item:N.tags"]
    put = {"emulator": "mailchimp", "method": "PUT",
           "body": json.dumps({"email_address": "a@x.io", "status_if_new": "subscribed", "tags": []})}
    assert undeclared(put, "/lists/abc/members/0123") == ["undeclared property tags"]
    # KNOWN lets batch members' tags through (a release note documents them),
    # nothing else
    assert known(sub, "/lists/abc", "undeclared property members.item:N.tags")
    assert not known(sub, "/lists/abc", "undeclared property members.item:N.status_if_new")
    assert not known(put, "/lists/abc/members/0123", "undeclared property tags")
    ok = [("POST", "/lists/abc", {"members": [{"email_address": "a@x.io", "status": "subscribed",
                                               "merge_fields": {"FNAME": "A", "ADDRESS": {
                                                   "addr1": "1 Main St", "city": "X", "state": "Y",
                                                   "zip": "1"}},
                                               "language": "en", "vip": False, "email_type": "html",
                                               "location": {"latitude": 1.5, "longitude": 2},
                                               "interests": {"abc": True}}],
                                  "update_existing": True, "sync_tags": False}),
          ("PUT", "/lists/abc/members/0123", {"email_address": "a@x.io", "status_if_new": "subscribed",
                                              "merge_fields": {"FNAME": "A"}}),
          ("POST", "/lists/abc/members/0123/tags", {"tags": [{"name": "pro", "status": "active"}],
                                                    "is_syncing": True})]
    for method, path, body in ok:
        rec = {"emulator": "mailchimp", "method": method, "body": json.dumps(body)}
        assert undeclared(rec, path) == [], (method, path)


def test_a_malformed_hubspot_request_is_caught(prism):
    """the test of the test: a number where HubSpot's spec wants a string,
    a create without associations"""
    need_specs("hubspot")
    hs = prism["hubspot/crm-objects-v3.json"]
    upsert = {"emulator": "hubspot", "method": "POST",
              "body": json.dumps({"inputs": [{"id": "a@x.io", "idProperty": "email",
                                              "properties": {"email": "a@x.io", "n": 1}}]})}
    assert violations(hs, upsert, "/crm/v3/objects/contacts/batch/upsert")
    create = dict(upsert, body=json.dumps({"inputs": [{"properties": {"email": "a@x.io"}}]}))
    assert violations(hs, create, "/crm/v3/objects/contacts/batch/create")
    # a list's membership change takes an array of record id strings
    lists = prism["hubspot/crm-lists-v3.json"]
    members = {"emulator": "hubspot", "method": "PUT", "body": json.dumps({"ids": ["1"]})}
    assert violations(lists, members, "/crm/v3/lists/123/memberships/add")
    assert not violations(lists, dict(members, body='["1", "2"]'),
                          "/crm/v3/lists/123/memberships/add")


def test_a_malformed_mailchimp_request_is_caught(prism):
    """the test of the test: a batch subscribe member with a bad type"""
    mc = prism[MAILCHIMP_SPEC]
    sub = {"emulator": "mailchimp", "method": "POST",
           "body": json.dumps({"members": [{"email_address": 5, "status": "subscribed"}]})}
    assert violations(mc, sub, "/lists/abc")
