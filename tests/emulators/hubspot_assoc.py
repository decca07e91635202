"""HubSpot associations v4, for the HubSpot emulator (hubspot.py calls `handle` from its
handle_api before its own routes).

Served (Authorization, rate limits and the fault knobs as every HubSpot call):
  POST /crm/v4/associations/{from}/{to}/batch/create          201 / 207
  POST /crm/v4/associations/{from}/{to}/batch/read            200 / 207
  POST /crm/v4/associations/{from}/{to}/batch/archive         204
  POST /crm/v4/associations/{from}/{to}/batch/labels/archive  204
  GET  /crm/v4/associations/{from}/{to}/labels                200  (the path HubSpot's docs show;
  GET  /crm/associations/v4/{from}/{to}/labels                200   the spec's current rollout)
  and the date-based forms (/crm/associations/2026-03/{from}/{to}/batch/..., where batch/archive
  and batch/labels/archive answer 200 with a batch body).  The search retl uses to find
  association targets is hubspot_search.py's.
Control (no auth):
  GET  /_emulator/associations/{from}/{to}  -> {"results": [{fromId, toId, types: [{category, typeId}]}]}
  POST /_emulator/labels/{from}/{to}  {"label", "category"?, "typeId"?}  adds a label
  POST /_emulator/remove/{object}/{id}  {}  deletes a record and its associations

What each rule follows (HubSpot's published specs, HubSpot/HubSpot-public-api-spec-collection,
crm-associations-v4.json, crm-associations-2026-03.json, crm-associations-schema-v4[-rollout50914].json,
crm-objects-v3.json; and HubSpot's docs pages named):
  * batch/create body BatchInputPublicAssociationMultiPost: inputs[] of {from:{id}, to:{id},
    types:[{associationCategory, associationTypeId}]}, all required; associationCategory one of
    HUBSPOT_DEFINED, INTEGRATOR_DEFINED, USER_DEFINED, WORK; answer 201 BatchResponseLabelsBetweenObjectPair
    (results [{fromObjectTypeId, fromObjectId, toObjectTypeId, toObjectId, labels[]}]) or 207 with
    errors[] and numErrors (spec responses 201, 207).
  * batch/read body BatchInputPublicFetchAssociationsBatchRequest: inputs[] of {id} (after optional),
    at most 1000 (developer changelog "Batch Read Limit for HubSpot Associations API", 2025-02-10);
    answer 200 / 207 BatchResponsePublicAssociationMultiWithLabel: results [{from:{id}, to:[{toObjectId,
    associationTypes:[{category, typeId, label}]}]}]; ids with no associations are not in the results
    (207 errors, category OBJECT_NOT_FOUND? not verified: answered 207 with an error naming the id, as
    the v3 batch read does).
  * batch/archive body BatchInputPublicAssociationMultiArchive: inputs[] of {from:{id}, to:[{id}]}: removes
    every association between each pair; 204 (v4), 200 + batch body (2026-03).
  * batch/labels/archive body BatchInputPublicAssociationMultiPost: removes the named types of each pair;
    "Deleting an unlabeled association will also delete all labeled associations between those two
    objects" (the endpoint's description in the spec and the docs page "Delete specific labels").
  * labels: GET answers {"results": [{category, typeId, label}]}, the unlabeled type with "label": null
    (community thread "Association's typeId field is not unique", a real answer for contacts -> companies:
    279 HUBSPOT_DEFINED label null, 1 HUBSPOT_DEFINED "Primary"); the schema guide names the two
    HubSpot-defined kinds (unlabeled and Primary).  Type ids here: contact->company 279 / 1 (Primary),
    company->contact 280 / 2, deal->contact 3, contact->deal 4, deal->company 341 / 5.
  * A labeled association also holds the unlabeled type: HubSpot shows a labeled pair as associated,
    and removing the unlabeled type removes the labels (above).  Creating one with a label stores both.
Not verified (chosen): the message texts of a 207 create whose target does not exist ("No <object>
with id X exists" with context ids) and of an unknown association type (400 VALIDATION_ERROR
"... is not a valid association type ..."); associations are stored in one direction (from -> to as
created), not mirrored into the inverse type.
"""

import re
import time

from common import Response, correlation_id, iso_ms

CATEGORIES = ("HUBSPOT_DEFINED", "INTEGRATOR_DEFINED", "USER_DEFINED", "WORK")

# (from oid, to oid) -> [(category, typeId, label)]: the HubSpot-defined types
DEFAULT_LABELS = {
    ("0-1", "0-2"): [("HUBSPOT_DEFINED", 279, None), ("HUBSPOT_DEFINED", 1, "Primary")],
    ("0-2", "0-1"): [("HUBSPOT_DEFINED", 280, None), ("HUBSPOT_DEFINED", 2, "Primary")],
    ("0-3", "0-1"): [("HUBSPOT_DEFINED", 3, None)],
    ("0-1", "0-3"): [("HUBSPOT_DEFINED", 4, None)],
    ("0-3", "0-2"): [("HUBSPOT_DEFINED", 341, None), ("HUBSPOT_DEFINED", 5, "Primary")],
}

BATCH = re.compile(r"^/crm/(?:v4/associations|associations/(\d{4}-\d{2}))/([^/]+)/([^/]+)/batch/"
                   r"(create|read|archive|labels/archive)$")
LABELS = re.compile(r"^/crm/(?:v4/associations|associations/v4|associations/(\d{4}-\d{2}))/"
                    r"([^/]+)/([^/]+)/labels$")


def reset(emu):
    emu.assoc = {}       # (from oid, from id, to oid, to id) -> set of (category, typeId)
    emu.labels = {k: list(v) for k, v in DEFAULT_LABELS.items()}


def route(req):
    """(name, groups) of an associations call, or None"""
    # search (POST .../objects/{object}/search) is hubspot_search.py's, with
    # its own rate limit and filter limits
    for name, rx, method in (("batch", BATCH, "POST"), ("labels", LABELS, "GET")):
        m = rx.match(req.path)
        if m and req.method == method:
            return name, m.groups()
    return None


def bad(message, category="VALIDATION_ERROR", status=400, **extra):
    body = {"status": "error", "message": message, "correlationId": correlation_id(),
            "category": category}
    body.update(extra)
    return Response(status, body)


def endpoint(name, g):
    if name == "batch":
        return "POST /crm/v4/associations/%s/%s/batch/%s" % (g[1], g[2], g[3])
    if name == "labels":
        return "GET /crm/v4/associations/%s/%s/labels" % (g[1], g[2])
    raise ValueError(name)


def scopes(name, g, oid):
    """the scope a call needs (the object's read or write scope)"""
    from hubspot import SCOPE_NAMES
    kind = SCOPE_NAMES.get(oid, "custom")
    if name == "labels":
        return ["crm.schemas.%s.read" % kind]
    if g[3] == "read":
        return ["crm.objects.%s.read" % kind]
    return ["crm.objects.%s.write" % kind]


def dispatch(emu, req, name, g):
    """the answer to one call (auth, rate and faults are the caller's)"""
    version, frm, to = g[0], g[1], g[2]
    with emu.lock:
        f, t = emu.resolve(frm), emu.resolve(to)
    if not f or not t:
        return bad("Unable to infer object type from: %s" % (to if f else frm))
    if name == "labels":
        with emu.lock:
            return Response(200, {"results": [{"category": c, "typeId": i, "label": lb}
                                              for c, i, lb in emu.labels.get((f, t), [])]})
    try:
        body = req.json()
    except ValueError as e:
        return bad("Invalid input JSON on line 1, column 1: %s" % e)
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        return bad("Invalid input JSON on line 1, column 2: Cannot build BatchInput, some of "
                   "required attributes are not set [inputs]")
    inputs = body["inputs"]
    req.info["inputs"] = len(inputs)
    verb = g[3]
    if verb == "read" and len(inputs) > 1000:
        return bad("The maximum number of inputs supported in a batch is 1000. Please reduce the "
                   "number of items and try again")
    why = violation(verb, inputs)
    if why:
        return bad("Invalid input JSON on line 1, column 1: " + why)
    with emu.lock:
        if verb == "create":
            return create(emu, f, t, inputs)
        if verb == "read":
            return read(emu, f, t, inputs)
        return archive(emu, f, t, inputs, verb == "labels/archive", version)


def _id_obj(x):
    return isinstance(x, dict) and isinstance(x.get("id"), str)


def violation(verb, inputs):
    """what a body breaks in the spec's request schema, or None"""
    for inp in inputs:
        if not isinstance(inp, dict):
            return "each input must be an object"
        if verb == "read":
            if not isinstance(inp.get("id"), str):
                return ("Cannot build PublicFetchAssociationsBatchRequest, some of required "
                        "attributes are not set [id]")
            continue
        if not _id_obj(inp.get("from")):
            return "Cannot build PublicObjectId, some of required attributes are not set [from.id]"
        if verb == "archive":
            if not isinstance(inp.get("to"), list) or not all(_id_obj(x) for x in inp["to"]):
                return ("Cannot build PublicAssociationMultiArchive, some of required attributes "
                        "are not set [to]")
            continue
        if not _id_obj(inp.get("to")):
            return "Cannot build PublicObjectId, some of required attributes are not set [to.id]"
        types = inp.get("types")
        if not isinstance(types, list):
            return ("Cannot build PublicAssociationMultiPost, some of required attributes are "
                    "not set [types]")
        for ty in types:
            if not isinstance(ty, dict) or ty.get("associationCategory") not in CATEGORIES or \
                    not isinstance(ty.get("associationTypeId"), int) or \
                    isinstance(ty.get("associationTypeId"), bool):
                return ("Cannot build AssociationSpec, some of required attributes are not set "
                        "[associationCategory, associationTypeId]")
    return None


def _batch(results, errors, ok_status):
    now = iso_ms(time.time())
    body = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
    if errors:
        body["errors"] = errors
        body["numErrors"] = len(errors)
        return Response(207, body)
    return Response(ok_status, body)


def _not_found(oid_label, ids):
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": "No %s with id %s exists" % (oid_label.lower(), ", ".join(ids)),
            "context": {"ids": list(ids)}}


def _label_of(emu, f, t, cat, tid):
    for c, i, lb in emu.labels.get((f, t), []):
        if c == cat and i == tid:
            return lb, True
    return None, False


def create(emu, f, t, inputs):
    unlabeled = [(c, i) for c, i, lb in emu.labels.get((f, t), []) if lb is None]
    for inp in inputs:
        for ty in inp["types"]:
            _lb, known = _label_of(emu, f, t, ty["associationCategory"], ty["associationTypeId"])
            if not known:
                return bad("%s %d is not a valid association type between %s and %s" %
                           (ty["associationCategory"], ty["associationTypeId"],
                            emu.schemas[f]["label"], emu.schemas[t]["label"]))
    results, errors = [], []
    for inp in inputs:
        fid, tid = inp["from"]["id"], inp["to"]["id"]
        missing = [x for x, o in ((fid, f), (tid, t)) if x not in emu.records[o]]
        if missing:
            errors.append(_not_found(emu.schemas[f if fid in missing else t]["label"], missing))
            continue
        have = emu.assoc.setdefault((f, fid, t, tid), set())
        for ty in inp["types"]:
            have.add((ty["associationCategory"], ty["associationTypeId"]))
        have.update(unlabeled)
        results.append({"fromObjectTypeId": f, "fromObjectId": fid, "toObjectTypeId": t,
                        "toObjectId": tid,
                        "labels": sorted(lb for lb in (_label_of(emu, f, t, c, i)[0] for c, i in have)
                                         if lb)})
    return _batch(results, errors, 201)


def read(emu, f, t, inputs):
    results, errors = [], []
    for inp in inputs:
        fid = inp["id"]
        if fid not in emu.records[f]:
            errors.append(_not_found(emu.schemas[f]["label"], [fid]))
            continue
        to = []
        for (a, b, c, d), types in sorted(emu.assoc.items()):
            if a == f and b == fid and c == t and types and d in emu.records[t]:
                to.append({"toObjectId": d, "associationTypes": [
                    {"category": cat, "typeId": i, "label": _label_of(emu, f, t, cat, i)[0]}
                    for cat, i in sorted(types)]})
        if to:
            results.append({"from": {"id": fid}, "to": to})
    return _batch(results, errors, 200)


def archive(emu, f, t, inputs, labels_only, version):
    unlabeled = {(c, i) for c, i, lb in emu.labels.get((f, t), []) if lb is None}
    for inp in inputs:
        fid = inp["from"]["id"]
        if labels_only:
            key = (f, fid, t, inp["to"]["id"])
            gone = {(ty["associationCategory"], ty["associationTypeId"]) for ty in inp["types"]}
            if gone & unlabeled:
                emu.assoc.pop(key, None)
            elif key in emu.assoc:
                emu.assoc[key] -= gone
        else:
            for x in inp["to"]:
                emu.assoc.pop((f, fid, t, x["id"]), None)
    if version:
        return _batch([], [], 200)
    return Response(204, None)


# ---------------------------------------------------------------- control

def control(emu, parts, req):
    """/_emulator/associations/{from}/{to}, /_emulator/labels/{from}/{to},
    /_emulator/remove/{object}/{id} (a record gone, with its associations);
    None if not ours"""
    if len(parts) != 3 or parts[0] not in ("associations", "labels", "remove"):
        return None
    if parts[0] == "remove" and req.method == "POST":
        with emu.lock:
            oid = emu.resolve(parts[1])
            if not oid or emu.records[oid].pop(parts[2], None) is None:
                return Response(404, {"error": "no such record"})
            for k in [k for k in emu.assoc if (k[0], k[1]) == (oid, parts[2]) or
                      (k[2], k[3]) == (oid, parts[2])]:
                del emu.assoc[k]
        return Response(200, {"ok": True})
    with emu.lock:
        f, t = emu.resolve(parts[1]), emu.resolve(parts[2])
        if not f or not t:
            return Response(404, {"error": "unknown object"})
        if parts[0] == "associations" and req.method == "GET":
            out = []
            for (a, b, c, d), types in sorted(emu.assoc.items()):
                # an archived record's associations are not shown
                if a == f and c == t and types and b in emu.records[f] and d in emu.records[t]:
                    out.append({"fromId": b, "toId": d,
                                "types": [{"category": x, "typeId": i} for x, i in sorted(types)]})
            return Response(200, {"results": out})
        if parts[0] == "labels" and req.method == "POST":
            body = req.json() or {}
            lst = emu.labels.setdefault((f, t), [])
            tid = body.get("typeId") or 100 + len(lst)
            lst.append((body.get("category", "USER_DEFINED"), int(tid), body["label"]))
            return Response(201, {"category": body.get("category", "USER_DEFINED"),
                                  "typeId": int(tid), "label": body["label"]})
    return None
