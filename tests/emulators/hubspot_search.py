"""HubSpot's CRM search endpoint for the HubSpot emulator (hubspot.py routes
POST /crm/v3/objects/{object}/search here; standard library only).

What it follows:
  * Request and answer shapes: HubSpot's published spec, crm-objects v3
    (shared/specs/hubspot/crm-objects-v3.json): PublicObjectSearchRequest
    {filterGroups: [{filters: [{propertyName, operator, value?, values?}]}],
    properties, limit ("up to 200 objects"), after (a paging cursor),
    sorts, query?}; Filter.operator one of the spec's enum; the answer
    CollectionResponseWithTotalSimplePublicObjectForwardPaging {total,
    results, paging: {next: {after, link}}}.
  * HubSpot's CRM search guide ("Search", "Limitations"): filter groups are
    ORed, filters in a group ANDed; at most 5 groups, 10 filters a group and
    25 in all (developer changelog, "Expanded filtering capabilities",
    2024-08-26); at most 200 results a page; a query pages through at most
    10,000 results (paging past them is a 400); 5 search requests a second
    per account, apart from the burst limit; EQ on a string property is not
    case-sensitive; records are indexed for search shortly after they are
    written (knob search_index_delay: seconds a new record is not found).
  * A request over the search limit: 429 {"status":"error","message":"You have
    reached your secondly limit.","errorType":"RATE_LIMIT","correlationId",
    "policyName":"SECONDLY"} (the usage guidelines' body for the secondly
    policies, as the burst one in hubspot.py).
Not verified (chosen, documented here): the maximum number of values of an IN
filter (100 here, knob search_max_in_values) and the texts of the 400s for
too many values, groups or filters, a limit over 200 and paging past 10,000.
An unknown property in a filter matches nothing.
"""

import time
from collections import deque
from datetime import datetime

from common import Response, correlation_id

MAX_LIMIT = 200
MAX_TOTAL = 10000
MAX_GROUPS = 5
MAX_FILTERS_GROUP = 10
MAX_FILTERS = 25
OPERATORS = {"BETWEEN", "CONTAINS_TOKEN", "EQ", "GT", "GTE", "HAS_PROPERTY", "IN", "LT",
             "LTE", "NEQ", "NOT_CONTAINS_TOKEN", "NOT_HAS_PROPERTY", "NOT_IN"}

KNOBS = {
    "search_rate": "5/1s",          # search requests per account (token)
    "search_max_in_values": 100,    # values of an IN / NOT_IN filter
    "search_index_delay": 0.0,      # seconds before a new record is found
}


def bad(message, status=400, category="VALIDATION_ERROR", errors=None):
    body = {"status": "error", "message": message, "correlationId": correlation_id(),
            "category": category}
    if errors:
        body["errors"] = errors
    return Response(status, body)


def secondly_429():
    return Response(429, {"status": "error", "message": "You have reached your secondly limit.",
                          "errorType": "RATE_LIMIT", "correlationId": correlation_id(),
                          "policyName": "SECONDLY"})


def admit(emu, token):
    """the search endpoints' own limit, per account (token here); None or a 429"""
    n, per = emu.knobs.get("search_rate", KNOBS["search_rate"]).split("/")
    n, per = int(n), float(per.rstrip("s") or 1)
    with emu.lock:
        wins = emu.__dict__.setdefault("search_windows", {})
        w = wins.setdefault(token, deque())
        now = time.time()
        while w and w[0] <= now - per:
            w.popleft()
        if len(w) >= n:
            emu.counters.extra["search_rate_limited"] += 1
            return secondly_429()
        w.append(now)
    return None


def check_request(emu, body):
    """the request's shape and the documented limits: a 400 Response or None"""
    if not isinstance(body, dict):
        return bad("Invalid input JSON on line 1, column 1: Cannot build PublicObjectSearchRequest")
    # the spec's PublicObjectSearchRequest requires all five (crm-objects-v3.json
    # and 2026-03); HubSpot's guide leaves some out of its examples, the
    # published contract is what the emulator holds retl to
    missing = [k for k in ("after", "filterGroups", "limit", "properties", "sorts")
               if k not in body]
    if missing:
        return bad("Invalid input JSON on line 1, column 1: Cannot build PublicObjectSearchRequest, "
                   "some of required attributes are not set [%s]" % ", ".join(missing))
    groups = body.get("filterGroups", [])
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("filters"), list) for g in groups):
        return bad("Invalid input JSON on line 1, column 1: Cannot build FilterGroup, some of "
                   "required attributes are not set [filters]")
    if len(groups) > MAX_GROUPS:
        return bad("Too many filter groups (%d). The maximum is %d." % (len(groups), MAX_GROUPS))
    total = 0
    for g in groups:
        if len(g["filters"]) > MAX_FILTERS_GROUP:
            return bad("Too many filters in a filter group (%d). The maximum is %d."
                       % (len(g["filters"]), MAX_FILTERS_GROUP))
        total += len(g["filters"])
        for f in g["filters"]:
            if not isinstance(f, dict) or not isinstance(f.get("propertyName"), str) \
                    or f.get("operator") not in OPERATORS:
                return bad("Invalid input JSON on line 1, column 1: Cannot build Filter, some of "
                           "required attributes are not set [operator, propertyName]")
            vals = f.get("values")
            if f["operator"] in ("IN", "NOT_IN"):
                if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
                    return bad("%s filter on %s needs \"values\": an array of strings"
                               % (f["operator"], f["propertyName"]))
                cap = int(emu.knobs.get("search_max_in_values", KNOBS["search_max_in_values"]))
                if len(vals) > cap:
                    return bad("Too many values in an %s filter (%d). The maximum is %d."
                               % (f["operator"], len(vals), cap))
            elif "value" in f and not isinstance(f["value"], str):
                return bad("Invalid input JSON: Filter.value must be a string")
    if total > MAX_FILTERS:
        return bad("Too many filters (%d). The maximum is %d." % (total, MAX_FILTERS))
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0 or limit > MAX_LIMIT:
        return bad("limit must be between 0 and %d" % MAX_LIMIT)
    props = body.get("properties", [])
    if not isinstance(props, list) or not all(isinstance(p, str) for p in props):
        return bad("Invalid input JSON: properties must be an array of strings")
    after = body.get("after", "0")
    if not isinstance(after, str) or not after.isdigit():
        return bad("Invalid input JSON: after must be a paging cursor string")
    if not isinstance(body.get("sorts", []), list):
        return bad("Invalid input JSON: sorts must be an array")
    return None


def created(rec):
    t = rec["createdAt"].replace("Z", "+00:00")
    return datetime.fromisoformat(t).timestamp()


def value_of(rec, name):
    if name == "hs_object_id":
        return rec["id"]
    return rec["properties"].get(name)


def matches(rec, f):
    v = value_of(rec, f["propertyName"])
    op = f["operator"]
    low = v.lower() if isinstance(v, str) else None
    if op == "EQ":
        return low is not None and low == str(f.get("value", "")).lower()
    if op == "NEQ":
        return low != str(f.get("value", "")).lower()
    if op == "IN":
        return low is not None and low in {x.lower() for x in f["values"]}
    if op == "NOT_IN":
        return low not in {x.lower() for x in f["values"]}
    if op == "HAS_PROPERTY":
        return v not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return v in (None, "")
    return False      # other operators: not needed by retl


def search(emu, req, oid, token):
    """POST /crm/v3/objects/{object}/search -> Response"""
    r = admit(emu, token)
    if r is not None:
        return r
    try:
        body = req.json()
    except ValueError as e:
        return bad("Invalid input JSON on line 1, column 1: %s" % e)
    r = check_request(emu, body)
    if r is not None:
        return r
    groups = body.get("filterGroups", [])
    limit = body.get("limit", 10)
    after = int(body.get("after", "0"))
    keys = body.get("properties") or list(emu.schemas[oid]["default_read"])
    req.info["inputs"] = sum(len(f.get("values") or [1]) for g in groups for f in g["filters"])
    if after + limit > MAX_TOTAL and after > 0:
        return bad("Paging past %d results is not supported; narrow the search" % MAX_TOTAL)
    delay = float(emu.knobs.get("search_index_delay", 0) or 0)
    with emu.lock:
        defs = emu.props(oid)
        # a filter on a property the object does not have: refused (chosen,
        # not verified against a real answer: HubSpot's other calls refuse
        # an unknown property with PROPERTY_DOESNT_EXIST)
        for g in groups:
            for f in g["filters"]:
                if f["propertyName"] not in defs and f["propertyName"] != "hs_object_id":
                    return bad("There was a problem with the request.", errors=[{
                        "message": "Property %s does not exist" % f["propertyName"],
                        "code": "PROPERTY_DOESNT_EXIST"}])
        now = time.time()
        hits = []
        for rec in emu.records[oid].values():
            if delay and now - created(rec) < delay:
                continue            # not indexed yet
            if not groups or any(all(matches(rec, f) for f in g["filters"]) for g in groups):
                hits.append(rec)
        hits.sort(key=lambda x: int(x["id"]))
        page = hits[after:after + limit]
        results = [emu.public(rec, [k for k in keys if k in defs], oid) for rec in page]
    out = {"total": len(hits), "results": results}
    if after + limit < len(hits) and limit:
        nxt = str(after + limit)
        out["paging"] = {"next": {"after": nxt, "link": "?after=" + nxt}}
    return Response(200, out)
