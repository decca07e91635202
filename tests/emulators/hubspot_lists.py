"""HubSpot Lists API v3 for the HubSpot emulator (hubspot.py routes /crm/v3/lists/...
and /crm/lists/2026-03/... here).

Served (Bearer token, the same admission, rate limits and fault knobs as the objects):
  POST /crm/v3/lists                          {name, objectTypeId, processingType} -> {"list"}
  GET  /crm/v3/lists/{listId}                 -> {"list": PublicObjectList}
  GET  /crm/v3/lists/{listId}/memberships     -> {"results":[{recordId, membershipTimestamp}]}
  PUT  /crm/v3/lists/{listId}/memberships/add      ["<record id>", ...]
  PUT  /crm/v3/lists/{listId}/memberships/remove   ["<record id>", ...]
     -> 200 MembershipsUpdateResponse {recordsIdsAdded, recordIdsRemoved, recordIdsMissing}
Control (no auth):
  POST /_emulator/lists  {name, objectTypeId, processingType}  -> {"list"} (any type)
  GET  /_emulator/lists/{listId}/members  -> {"members": [record ids, sorted]}

From HubSpot's documents:
  * crm-lists-v3.json (and crm-lists-2026-03.json, same bodies): the membership bodies are
    a JSON array of record id strings; the answer's members are "recordsIdsAdded" (the
    spec's spelling), "recordIdsRemoved", "recordIdsMissing" ("records that were missing
    (e.g. did not exist in the portal) and so were not added or removed"); a list fetch is
    {"list": {listId, listVersion, name, objectTypeId, processingStatus, processingType,
    size, ...}}; ListCreateRequest requires name, objectTypeId, processingType ("One of:
    SNAPSHOT, MANUAL, or DYNAMIC").
  * Docs "Add records to a list" / "Remove records from a list" (2026-03): "Records that do
    not exist or that are already members of the list are ignored"; "This endpoint only
    works for lists that have a processingType of MANUAL or SNAPSHOT".
  * Error bodies {"status":"error","message","correlationId","category","subCategory"}:
    the shape of a real lists answer quoted in singer-io/tap-hubspot#299
    (category VALIDATION_ERROR, subCategory "ListError.…").
Not verified (chosen): the message and subCategory of membership changes on a DYNAMIC list
("Can not operate manually on a dynamic list", the v1 API's words, quoted in an issue title
of HGData/mk-node-hubspot#308) and of an unknown list id (404 OBJECT_NOT_FOUND "List does not
exist with listId N"); no documented cap on the ids of one membership call was found, so
none is enforced (retl sends at most 100).
"""

import re
import time

from common import Response, correlation_id, iso_ms
import common

ROUTE = re.compile(r"^/crm/(?:v3/lists|lists/\d{4}-\d{2})(/.*)?$")
SCOPES_READ = ["crm.lists.read"]
SCOPES_WRITE = ["crm.lists.write"]


def reset(emu):
    emu.lists = {}          # listId -> {"list": {...}, "members": {recordId: ms}}
    emu.next_list_id = 100


def bad(message, category="VALIDATION_ERROR", status=400, sub=None):
    body = {"status": "error", "message": message, "correlationId": correlation_id(),
            "category": category}
    if sub:
        body["subCategory"] = sub
    return Response(status, body)


def create(emu, body):
    for k in ("name", "objectTypeId", "processingType"):
        if not isinstance(body.get(k), str):
            return bad("Invalid input JSON on line 1, column 1: Cannot build ListCreateRequest, "
                       "some of required attributes are not set [%s]" % k)
    if body["processingType"] not in ("MANUAL", "SNAPSHOT", "DYNAMIC"):
        return bad("Invalid processingType %s" % body["processingType"])
    oid = emu.resolve(body["objectTypeId"])
    if not oid:
        return bad("The objectTypeId %s provided for the list is not valid for this portal."
                   % body["objectTypeId"], sub="ListError.INVALID_OBJECT_TYPE_FOR_LIST")
    emu.next_list_id += 1
    lid = str(emu.next_list_id)
    now = iso_ms(time.time())
    emu.lists[lid] = {"list": {"listId": lid, "listVersion": 1, "name": body["name"],
                               "objectTypeId": oid, "processingStatus": "COMPLETE",
                               "processingType": body["processingType"],
                               "createdAt": now, "updatedAt": now},
                      "members": {}}
    return Response(200, {"list": public(emu, lid)})


def public(emu, lid):
    d = dict(emu.lists[lid]["list"])
    d["size"] = len(emu.lists[lid]["members"])
    return d


def handle_control(emu, req, parts):
    """/_emulator/lists...; parts after "_emulator"; None when not ours"""
    if not parts or parts[0] != "lists":
        return None
    with emu.lock:
        if len(parts) == 1 and req.method == "POST":
            return create(emu, req.json() or {})
        if len(parts) == 3 and parts[2] == "members" and req.method == "GET":
            lst = emu.lists.get(parts[1])
            if lst is None:
                return Response(404, {"error": "no list %s" % parts[1]})
            return Response(200, {"members": sorted(lst["members"], key=int)})
    return None


def handle_api(emu, req, path):
    """An API request under the lists paths: a Response, or None when the path
    is not a lists path"""
    m = ROUTE.match(path)
    if not m:
        return None
    tail = m.group(1) or ""
    write = req.method in ("POST", "PUT", "DELETE")
    req.info["endpoint"] = "%s /crm/v3/lists%s" % (req.method, re.sub(r"^/\d+", "/{listId}", tail))
    token, refusal = emu.admit(req)
    headers = emu.rate_headers(token) if token else {}
    if refusal is None:
        refusal = emu.check_scope(token, SCOPES_WRITE if write else SCOPES_READ)
    r = refusal or common.fault_wrapper(emu, req, lambda: dispatch(emu, req, tail))
    if r is not common.DROP:
        r.headers = dict(headers, **r.headers)
    return r


def dispatch(emu, req, tail):
    if tail == "" and req.method == "POST":
        try:
            body = req.json()
        except ValueError as e:
            return bad("Invalid input JSON on line 1, column 1: %s" % e)
        with emu.lock:
            return create(emu, body if isinstance(body, dict) else {})
    m = re.match(r"^/(\d+)(/memberships(?:/(add|remove))?)?$", tail)
    if not m:
        return Response(404, {"status": "error", "message": "Not Found",
                              "correlationId": correlation_id(), "category": "OBJECT_NOT_FOUND"})
    lid, members, verb = m.group(1), m.group(2), m.group(3)
    with emu.lock:
        lst = emu.lists.get(lid)
        if lst is None:
            return bad("List does not exist with listId %s" % lid, "OBJECT_NOT_FOUND", 404)
        if not members and req.method == "GET":
            return Response(200, {"list": public(emu, lid)})
        if members and not verb and req.method == "GET":
            return Response(200, {"results": [{"recordId": k, "membershipTimestamp": iso_ms(v)}
                                              for k, v in sorted(lst["members"].items(),
                                                                 key=lambda kv: int(kv[0]))]})
    if not (verb and req.method == "PUT"):
        return Response(405, {"status": "error", "message": "Method Not Allowed",
                              "correlationId": correlation_id(), "category": "VALIDATION_ERROR"})
    try:
        ids = req.json()
    except ValueError as e:
        return bad("Invalid input JSON on line 1, column 1: %s" % e)
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        return bad("Invalid input JSON on line 1, column 1: expected an array of record id strings")
    req.info["inputs"] = len(ids)
    with emu.lock:
        if lst["list"]["processingType"] == "DYNAMIC":
            return bad("Can not operate manually on a dynamic list",
                       sub="ListError.INVALID_LIST_PROCESSING_TYPE")
        recs = emu.records.get(lst["list"]["objectTypeId"], {})
        done, missing = [], []
        for rid in ids:
            if rid not in recs:
                missing.append(rid)
            elif verb == "add" and rid not in lst["members"]:
                lst["members"][rid] = time.time()
                done.append(rid)
            elif verb == "remove" and rid in lst["members"]:
                del lst["members"][rid]
                done.append(rid)
        if done:
            lst["list"]["listVersion"] += 1
    return Response(200, {"recordsIdsAdded": done if verb == "add" else [],
                          "recordIdsRemoved": done if verb == "remove" else [],
                          "recordIdsMissing": missing})
