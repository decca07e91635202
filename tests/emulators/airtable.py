#!/usr/bin/env python3
"""Airtable Web API emulator for retl's tests (Python 3 standard library only).

Start:  python3 tests/emulators/airtable.py --port 0 [--token T] [--knob VALUE ...]
        -> prints "listening on http://127.0.0.1:PORT", serves until SIGTERM.
In-process:  server, url = airtable.start(port=0, **knobs); ...; server.shutdown()

API served (Authorization: Bearer <token>):
  GET    /v0/meta/bases/{base}/tables                 schema
  GET    /v0/{base}/{table}?pageSize=&offset=&filterByFormula=&fields[]=   list (table
         by id or name).  Formulas: airtable_formula.py's strict subset ({Field}, 'text',
         numbers, =, &, AND, OR, LOWER); anything else, or an unknown field, is refused
         422 INVALID_FILTER_BY_FORMULA
  POST   /v0/{base}/{table}/listRecords  {"filterByFormula"?, "pageSize"?, "offset"?,
         "fields"?, "maxRecords"?, ...}: the same list with its parameters in the body
         (Airtable support, "URL length limitations for web API requests"); a body key
         that is not a list parameter is refused 422 INVALID_REQUEST_UNKNOWN (chosen)
  POST   /v0/{base}/{table}   {"records":[{"fields"}], "typecast"?}         create
  PATCH  /v0/{base}/{table}   {"records":[{"id","fields"}], "typecast"?}    update (merge)
  PATCH  /v0/{base}/{table}   {"performUpsert":{"fieldsToMergeOn":[...]},
                               "records":[{"fields"}], "typecast"?}         upsert
  PUT    same as PATCH, replacing the fields
  DELETE /v0/{base}/{table}?records[]=rec…                                   delete
  At most 10 records a write; a write is all-or-nothing.

URLs: at most 16,000 characters (the same support article); a longer one is refused
414 {"error": {"type": "INVALID_REQUEST_UNKNOWN", ...}} (status and body chosen: the
article gives the limit, not the answer).

Rate: `rate_per_second` (5) requests per rolling second per base; one more and the base
answers 429 to everything for `penalty` seconds (30; tests set 3).  Requests refused
during the penalty do not extend it.  `force_429_at`: the Nth authenticated request to a
base (1-based) is refused with 429 and starts the penalty (once).

Control (no auth), beside common.py's /_emulator/config, /counters, /reset:
  GET  /_emulator/records/{base}/{table}   -> {"records":[{id, createdTime, fields}]}
  POST /_emulator/records/{base}/{table}   {"records":[{"fields"}]} seed (no validation)
  POST /_emulator/tables/{base}            {"id"?, "name", "fields":[{"name","type","options"?}]}
                                           adds (or replaces, by name) a table
  GET  /_emulator/penalty                  {base: seconds left}

Checked against public material (search tool): the 5 requests/second/base limit and the
30 s wait after a 429 (Airtable support article, n8n and NiFi docs quoting it); no
Retry-After header is documented, so none is sent.  INVALID_MULTIPLE_CHOICE_OPTIONS with
message 'Insufficient permissions to create new select option ""X""' (airtable.js #138,
pyairtable #137 quoting real responses).  Error bodies {"error": {"type", "message"}}
(Airtable's troubleshooting article).  Not verified (chosen here): the exact texts of
UNKNOWN_FIELD_NAME ('Unknown field name: "X"'), INVALID_VALUE_FOR_COLUMN ('Field "X"
cannot accept the provided value'), ROW_DOES_NOT_EXIST (422, for update and delete of an
unknown id), the 429 body, the >10 records message, and 404 {"error": "NOT_FOUND"} for an
unknown table.  The field types fieldsToMergeOn takes (number, single line text, long text,
single select, multiple select, date) follow Airtable's "Update multiple records"
reference as remembered, not re-read here; the 422 type and text for another type
(INVALID_FIELDS_TO_MERGE_ON, 'Field "X" of type email cannot be used in fieldsToMergeOn')
are chosen.
"""

import json
import os
import re
import sys
import time
import uuid
from collections import deque, OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import airtable_formula  # noqa: E402
from common import Response, DROP, iso_ms  # noqa: E402

MAX_RECORDS = 10
MAX_URL = 16000       # characters, Airtable support: "URL length limitations ..."
# the parameters of "List records", which POST …/listRecords takes in its body
LIST_PARAMS = {"fields", "filterByFormula", "maxRecords", "pageSize", "sort", "view",
               "cellFormat", "timeZone", "userLocale", "returnFieldsByFieldId",
               "recordMetadata", "offset"}
DEFAULT_BASE = "appTESTBASE000001"

COMPUTED = {"formula", "createdTime", "rollup", "count", "lookup", "multipleLookupValues",
            "autoNumber", "lastModifiedTime", "button", "createdBy", "lastModifiedBy",
            "externalSyncSource", "aiText"}
# what performUpsert.fieldsToMergeOn takes (Airtable's "Update multiple records"
# reference: number, text, long text, single select, multiple select, date)
_EMPTY = object()  # the merge key of every empty value (see merge_key)
MERGEABLE = {"singleLineText", "multilineText", "number", "singleSelect", "multipleSelects", "date"}
TEXT = {"singleLineText", "multilineText", "richText", "email", "url", "phoneNumber", "barcode"}
NUMBER = {"number", "percent", "currency", "rating", "duration"}
DATE_RX = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_RX = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:14]


def field(name, type_="singleLineText", choices=None, **options):
    f = {"id": new_id("fld"), "name": name, "type": type_}
    if choices is not None:
        options["choices"] = [{"id": new_id("sel"), "name": c, "color": "blueLight2"} for c in choices]
    if options:
        f["options"] = options
    return f


def default_tables():
    people = {
        "id": "tblPEOPLE00000001", "name": "People",
        "fields": [
            # Email is single line text: Airtable cannot merge on an email
            # field, and the tests merge on Email; Work Email is the email kind
            field("Name"), field("Email"), field("First"), field("Last"),
            field("Work Email", "email"),
            field("Plan", "singleSelect", ["Free", "Pro", "Enterprise"]),
            field("Tags", "multipleSelects", ["vip", "beta", "churn-risk"]),
            field("MRR", "currency", precision=2, symbol="$"),
            field("Seats", "number", precision=0), field("Active", "checkbox"),
            field("Signup", "date"), field("Seen", "dateTime"),
            field("Notes", "multilineText"), field("Company", "multipleRecordLinks"),
            field("Score", "formula"),
        ],
    }
    people["primaryFieldId"] = people["fields"][0]["id"]
    return [people]


def err(status, type_, message=None):
    if message is None:
        return Response(status, {"error": type_})
    return Response(status, {"error": {"type": type_, "message": message}})


class Refusal(Exception):
    def __init__(self, resp):
        super().__init__()
        self.resp = resp


class AirtableEmulator(common.Emulator):
    NAME = "airtable"
    DEFAULT_KNOBS = {
        "tokens": ["test-token"],
        "rate_per_second": 5,
        "penalty": 30.0,
        "force_429_at": 0,           # Nth authenticated request to a base -> 429 + penalty
        "max_records": MAX_RECORDS,
    }

    # ------------------------------------------------------------------ state
    def reset_data(self):
        self.bases = {DEFAULT_BASE: default_tables()}
        self.records = {}            # (base, table id) -> OrderedDict id -> record
        self.windows = {}            # base -> deque of accepted request times
        self.penalty_until = {}      # base -> time
        self.base_count = {}         # base -> authenticated requests
        self.forced = set()

    def table(self, base, name):
        for t in self.bases.get(base, []):
            if t["id"] == name or t["name"] == name:
                return t
        return None

    def recs(self, base, t):
        return self.records.setdefault((base, t["id"]), OrderedDict())

    def error_body_5xx(self, status):
        return err(status, "SERVER_ERROR", "Try again. If the problem persists, contact support.")

    # ------------------------------------------------------------------ control
    def handle_control(self, req):
        parts = req.path.strip("/").split("/")[1:]
        if parts[:1] == ["records"] and len(parts) == 3:
            with self.lock:
                t = self.table(parts[1], parts[2])
                if not t:
                    return Response(404, {"error": "no table %s in %s" % (parts[2], parts[1])})
                if req.method == "GET":
                    return Response(200, {"records": [self.public(r) for r in
                                                      self.recs(parts[1], t).values()]})
                if req.method == "POST":
                    out = []
                    for r in (req.json() or {}).get("records", []):
                        out.append(self.public(self.create(parts[1], t, r.get("fields") or {})))
                    return Response(200, {"records": out})
        if parts[:1] == ["tables"] and len(parts) == 2 and req.method == "POST":
            body = req.json() or {}
            fields = [field(f["name"], f.get("type", "singleLineText"),
                            f.get("choices"), **(f.get("options") or {})) for f in body.get("fields", [])]
            t = {"id": body.get("id") or new_id("tbl"), "name": body["name"], "fields": fields,
                 "primaryFieldId": fields[0]["id"] if fields else None}
            with self.lock:
                tables = [x for x in self.bases.get(parts[1], []) if x["name"] != t["name"]]
                self.bases[parts[1]] = tables + [t]
            return Response(200, t)
        if parts == ["penalty"] and req.method == "GET":
            now = time.time()
            with self.lock:
                return Response(200, {b: max(0.0, u - now) for b, u in self.penalty_until.items()})
        return None

    # ------------------------------------------------------------------ records
    def create(self, base, t, fields):
        now = time.time()
        rec = {"id": new_id("rec"), "createdTime": iso_ms(now), "fields": {}}
        rec["fields"] = {k: v for k, v in fields.items() if v not in (None, "", [], False)}
        self.recs(base, t)[rec["id"]] = rec
        return rec

    @staticmethod
    def public(rec):
        return {"id": rec["id"], "createdTime": rec["createdTime"], "fields": dict(rec["fields"])}

    # ------------------------------------------------------------------ auth + rate
    def admit(self, req, base):
        auth = req.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if not token:
            return err(401, "AUTHENTICATION_REQUIRED", "Authentication required")
        if token not in self.knobs["tokens"]:
            return err(401, "AUTHENTICATION_REQUIRED", "Invalid authentication token")
        req.info["token"] = token[-4:]
        with self.lock:
            # the request's time is when the limiter sees it, under the
            # lock: two requests whose threads reach it out of the order
            # they started would otherwise be judged in one order and
            # recorded in the other (a loaded machine showed an admitted
            # request 0.3 ms "after" the forced 429 that started a penalty)
            now = req.t_start = time.time()
            n = self.base_count[base] = self.base_count.get(base, 0) + 1
            if now < self.penalty_until.get(base, 0):
                req.info["fault"] = "penalty"
                return self.too_many()
            w = self.windows.setdefault(base, deque())
            while w and w[0] <= now - 1.0:
                w.popleft()
            forced = int(self.knobs["force_429_at"] or 0)
            if forced and n == forced and base not in self.forced:
                self.forced.add(base)
                self.counters.forced_429 += 1
                req.info["fault"] = "forced_429"
                self.penalty_until[base] = now + float(self.knobs["penalty"])
                return self.too_many()
            if len(w) >= int(self.knobs["rate_per_second"]):
                self.counters.extra["over_limit"] += 1
                self.penalty_until[base] = now + float(self.knobs["penalty"])
                return self.too_many()
            w.append(now)
        return None

    @staticmethod
    def too_many():
        return Response(429, {"errors": [{"error": "RATE_LIMIT_REACHED",
                                          "message": "Rate limit exceeded. Please try again later"}]})

    # ------------------------------------------------------------------ routing
    META = re.compile(r"^/v0/meta/bases/([^/]+)/tables$")
    RECORDS = re.compile(r"^/v0/([^/]+)/([^/]+)$")
    LIST = re.compile(r"^/v0/([^/]+)/([^/]+)/listRecords$")

    def handle_api(self, req):
        if len(req.raw_path) + len("https://api.airtable.com") > MAX_URL:
            req.info["endpoint"] = "%s (URL too long)" % req.method
            return err(414, "INVALID_REQUEST_UNKNOWN",
                       "The URL is longer than %d characters: use POST "
                       "/v0/{baseId}/{tableIdOrName}/listRecords" % MAX_URL)
        lm = self.LIST.match(req.path)
        m = self.META.match(req.path)
        if m and req.method == "GET":
            base = m.group(1)
            req.info["endpoint"] = "GET /v0/meta/bases/{base}/tables"
            r = self.admit(req, base)
            if r is not None:
                return r
            return common.fault_wrapper(self, req, lambda: self.meta(base))
        m = lm if lm and req.method == "POST" else self.RECORDS.match(req.path)
        if not m or m.group(1) == "meta":
            req.info["endpoint"] = "%s %s" % (req.method, req.path)
            return err(404, "NOT_FOUND")
        base, tname = m.groups()
        req.info["endpoint"] = ("POST /v0/{base}/{table}/listRecords" if m is lm else
                                "%s /v0/{base}/{table}" % req.method)
        r = self.admit(req, base)
        if r is not None:
            return r
        with self.lock:
            known = base in self.bases
            t = self.table(base, tname)
        if not known:
            return err(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                       "Invalid permissions, or the requested model was not found. Check that "
                       "both your user and your token have the required permissions, and that "
                       "the model names and/or ids are correct.")
        if not t:
            return err(404, "NOT_FOUND")
        try:
            if req.method == "GET":
                return common.fault_wrapper(self, req, lambda: self.op_list(req, base, t))
            if m is lm:
                return common.fault_wrapper(self, req, lambda: self.op_list_post(req, base, t))
            if req.method == "DELETE":
                return common.fault_wrapper(self, req, lambda: self.op_delete(req, base, t))
            try:
                body = req.json()
            except ValueError:
                return err(422, "INVALID_REQUEST_BODY", "Could not parse request body")
            if not isinstance(body, dict) or not isinstance(body.get("records"), list):
                return err(422, "INVALID_REQUEST_MISSING_FIELDS",
                           "Could not find field \"records\" in the request body")
            req.info["inputs"] = len(body["records"])
            if len(body["records"]) > int(self.knobs["max_records"]):
                return err(422, "INVALID_RECORDS",
                           "You can create, update or delete at most %d records at a time"
                           % int(self.knobs["max_records"]))
            if req.method == "POST":
                return common.fault_wrapper(self, req, lambda: self.op_create(base, t, body))
            if req.method in ("PATCH", "PUT"):
                if body.get("performUpsert") is not None:
                    return common.fault_wrapper(self, req, lambda: self.op_upsert(base, t, body))
                return common.fault_wrapper(
                    self, req, lambda: self.op_update(base, t, body, req.method == "PUT"))
        except Refusal as e:
            return e.resp
        return err(404, "NOT_FOUND")

    def meta(self, base):
        with self.lock:
            if base not in self.bases:
                return err(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                           "Invalid permissions, or the requested model was not found.")
            return Response(200, {"tables": json.loads(json.dumps(self.bases[base]))})

    # ------------------------------------------------------------------ validation
    def check_value(self, f, v, typecast):
        """-> the stored value, or raises Refusal (the whole request fails)."""
        name, t = f["name"], f["type"]
        bad = Refusal(err(422, "INVALID_VALUE_FOR_COLUMN",
                          'Field "%s" cannot accept the provided value' % name))
        if t in COMPUTED:
            raise Refusal(err(422, "INVALID_VALUE_FOR_COLUMN",
                              'Field "%s" cannot accept a value because the field is computed' % name))
        if v is None:
            return None
        if t in TEXT:
            if isinstance(v, str):
                return v
            if typecast and isinstance(v, (int, float, bool)):
                return json.dumps(v)
            raise bad
        if t in NUMBER:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return v
            if typecast and isinstance(v, str):
                try:
                    return float(v)
                except ValueError:
                    return None
            raise bad
        if t == "checkbox":
            if isinstance(v, bool):
                return v
            if typecast:
                return bool(v) and v not in ("false", "0")
            raise bad
        if t == "date":
            if isinstance(v, str) and (DATE_RX.match(v) or DATETIME_RX.match(v)):
                return v[:10]
            raise bad
        if t == "dateTime":
            if isinstance(v, str) and DATETIME_RX.match(v):
                return v
            raise bad
        if t in ("singleSelect", "multipleSelects"):
            vals = v if t == "multipleSelects" else [v]
            if t == "multipleSelects" and not isinstance(v, list):
                if typecast and isinstance(v, str):
                    vals = [x.strip() for x in v.split(",") if x.strip()]
                else:
                    raise bad
            names = [c["name"] for c in f.get("options", {}).get("choices", [])]
            for x in vals:
                if not isinstance(x, str):
                    raise bad
                if x not in names:
                    if not typecast:
                        raise Refusal(err(422, "INVALID_MULTIPLE_CHOICE_OPTIONS",
                                          'Insufficient permissions to create new select option ""%s""' % x))
                    f.setdefault("options", {}).setdefault("choices", []).append(
                        {"id": new_id("sel"), "name": x, "color": "grayLight2"})
                    names.append(x)
            return list(vals) if t == "multipleSelects" else vals[0]
        if t == "multipleRecordLinks":
            if isinstance(v, list) and all(isinstance(x, str) and x.startswith("rec") for x in v):
                return v
            raise bad
        return v

    def clean(self, t, fields, typecast):
        if not isinstance(fields, dict):
            raise Refusal(err(422, "INVALID_RECORDS", "Invalid record: fields must be an object"))
        byname = {f["name"]: f for f in t["fields"]}
        byid = {f["id"]: f for f in t["fields"]}
        out = {}
        for k, v in fields.items():
            f = byname.get(k) or byid.get(k)
            if not f:
                raise Refusal(err(422, "UNKNOWN_FIELD_NAME", 'Unknown field name: "%s"' % k))
            out[f["name"]] = self.check_value(f, v, typecast)
        return out

    @staticmethod
    def apply(rec, fields, replace=False):
        if replace:
            rec["fields"] = {}
        for k, v in fields.items():
            if v in (None, "", [], False):
                rec["fields"].pop(k, None)
            else:
                rec["fields"][k] = v

    # ------------------------------------------------------------------ operations
    def op_create(self, base, t, body):
        tc = bool(body.get("typecast"))
        with self.lock:
            cleaned = [self.clean(t, r.get("fields") or {}, tc) for r in body["records"]]
            out = [self.public(self.create(base, t, f)) for f in cleaned]
        return Response(200, {"records": out})

    def op_update(self, base, t, body, replace):
        tc = bool(body.get("typecast"))
        with self.lock:
            recs = self.recs(base, t)
            todo = []
            for r in body["records"]:
                rid = r.get("id")
                if rid not in recs:
                    raise Refusal(err(422, "ROW_DOES_NOT_EXIST",
                                      "Record ID %s does not exist in this table" % rid))
                todo.append((recs[rid], self.clean(t, r.get("fields") or {}, tc)))
            for rec, f in todo:
                self.apply(rec, f, replace)
            return Response(200, {"records": [self.public(rec) for rec, _ in todo]})

    @staticmethod
    def same(a, b):
        return a == b or (a in (None, "", False, []) and b in (None, "", False, []))

    @staticmethod
    def merge_key(fields, merge):
        """The merge fields' values as a dict key that two records share
        exactly when same() holds for each field: every empty value (None,
        "", False, [] and, by ==, 0) is one key; lists become tuples.  Raises
        TypeError for a value that cannot be a key (an object)."""
        def freeze(v):
            return tuple(freeze(x) for x in v) if isinstance(v, list) else v
        out = []
        for m in merge:
            v = fields.get(m)
            out.append(_EMPTY if v in (None, "", False, []) else freeze(v))
        return tuple(out)

    def merge_index(self, recs, merge):
        """merge key -> the records holding it, in table order; built once per
        request (its look-ups all see the table as it was before the request)
        so that no row scans the table.  None when some stored value cannot
        be a key: that request scans."""
        index = {}
        try:
            for x in recs.values():
                index.setdefault(self.merge_key(x["fields"], merge), []).append(x)
        except TypeError:
            return None
        return index

    def op_upsert(self, base, t, body):
        tc = bool(body.get("typecast"))
        merge = (body.get("performUpsert") or {}).get("fieldsToMergeOn")
        names = {f["name"] for f in t["fields"]}
        if not isinstance(merge, list) or not 1 <= len(merge) <= 3:
            return err(422, "INVALID_REQUEST_UNKNOWN",
                       "performUpsert.fieldsToMergeOn must be an array of 1 to 3 field names")
        for m in merge:
            if m not in names:
                return err(422, "INVALID_FIELDS_TO_MERGE_ON",
                           'fieldsToMergeOn: unknown field name "%s"' % m)
            ftype = next(f["type"] for f in t["fields"] if f["name"] == m)
            if ftype not in MERGEABLE:
                return err(422, "INVALID_FIELDS_TO_MERGE_ON",
                           'Field "%s" of type %s cannot be used in fieldsToMergeOn' % (m, ftype))
        with self.lock:
            recs = self.recs(base, t)
            plan = []
            index = self.merge_index(recs, merge)
            for r in body["records"]:
                f = self.clean(t, r.get("fields") or {}, tc)
                hits = None
                if index is not None:
                    try:
                        hits = index.get(self.merge_key(f, merge), [])
                    except TypeError:       # an unhashable value: scan
                        pass
                if hits is None:
                    hits = [x for x in recs.values()
                            if all(self.same(x["fields"].get(m), f.get(m)) for m in merge)]
                if len(hits) > 1:
                    raise Refusal(err(422, "INVALID_VALUE_FOR_COLUMN",
                                      "Cannot update more than one record with the same values "
                                      "for fieldsToMergeOn"))
                plan.append((hits[0] if hits else None, f))
            created, updated, out = [], [], []
            for hit, f in plan:
                if hit is None:
                    rec = self.create(base, t, f)
                    created.append(rec["id"])
                else:
                    rec = hit
                    self.apply(rec, f, False)
                    updated.append(rec["id"])
                out.append(self.public(rec))
        return Response(200, {"records": out, "createdRecords": created, "updatedRecords": updated})

    def op_delete(self, req, base, t):
        ids = req.query.get("records[]", [])
        req.info["inputs"] = len(ids)
        if len(ids) > int(self.knobs["max_records"]):
            return err(422, "INVALID_RECORDS",
                       "You can create, update or delete at most %d records at a time"
                       % int(self.knobs["max_records"]))
        with self.lock:
            recs = self.recs(base, t)
            for rid in ids:
                if rid not in recs:
                    return err(422, "ROW_DOES_NOT_EXIST",
                               "Record ID %s does not exist in this table" % rid)
            for rid in ids:
                del recs[rid]
        return Response(200, {"records": [{"id": rid, "deleted": True} for rid in ids]})

    def op_list_post(self, req, base, t):
        try:
            body = req.json()
        except ValueError:
            return err(422, "INVALID_REQUEST_BODY", "Could not parse request body")
        body = {} if body is None else body
        if not isinstance(body, dict):
            return err(422, "INVALID_REQUEST_BODY", "Could not parse request body")
        unknown = sorted(set(body) - LIST_PARAMS)
        if unknown:
            return err(422, "INVALID_REQUEST_UNKNOWN",
                       "Invalid request: parameter validation failed. Check your request "
                       "data. (unknown parameter %s)" % unknown[0])
        fields = body.get("fields")
        if fields is not None and not (isinstance(fields, list) and
                                       all(isinstance(f, str) for f in fields)):
            return err(422, "INVALID_REQUEST_UNKNOWN",
                       "Invalid request: parameter validation failed. Check your request "
                       "data. (fields must be an array of field names)")
        return self.list_records(base, t, body.get("pageSize", 100), body.get("offset"),
                                 body.get("filterByFormula"), fields)

    def op_list(self, req, base, t):
        return self.list_records(base, t, req.q("pageSize", "100"), req.q("offset"),
                                 req.q("filterByFormula"), req.query.get("fields[]"))

    def list_records(self, base, t, size, off, formula, fields):
        try:
            size = int(size or 100)
            off = int(off or 0)
        except (TypeError, ValueError):
            return err(422, "INVALID_OFFSET_VALUE" if off else "INVALID_REQUEST_UNKNOWN",
                       "The pagination offset or page size is invalid")
        if not 1 <= size <= 100:
            return err(422, "INVALID_REQUEST_UNKNOWN", "pageSize must be from 1 to 100")
        test = None
        names = [f["name"] for f in t["fields"]]
        if formula:
            try:
                test = airtable_formula.compile_formula(formula, names)
            except airtable_formula.FormulaError as e:
                return err(422, "INVALID_FILTER_BY_FORMULA", str(e))
        for f in fields or []:
            if f not in names:
                return err(422, "UNKNOWN_FIELD_NAME", 'Unknown field name: "%s"' % f)
        with self.lock:
            allr = list(self.recs(base, t).values())
        if test:
            allr = [r for r in allr if test(r["fields"])]
        page = [self.public(r) for r in allr[off:off + size]]
        if fields:
            for r in page:
                r["fields"] = {k: v for k, v in r["fields"].items() if k in fields}
        out = {"records": page}
        if off + size < len(allr):
            out["offset"] = str(off + size)
        return Response(200, out)


def start(port=0, host="127.0.0.1", **knobs):
    """-> (server, base_url).  server.emulator is the AirtableEmulator."""
    if "token" in knobs:
        knobs["tokens"] = [knobs.pop("token")]
    return common.start(AirtableEmulator, port=port, host=host, **knobs)


def _extra_args(ap):
    ap.add_argument("--token", action="append", default=None,
                    help="accepted bearer token (repeatable); default test-token")


def _knob_hook(args, knobs):
    if args.token:
        knobs["tokens"] = list(args.token)


if __name__ == "__main__":
    sys.exit(common.main(AirtableEmulator, extra_args=_extra_args, knob_hook=_knob_hook))
