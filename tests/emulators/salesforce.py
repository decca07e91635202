#!/usr/bin/env python3
"""Salesforce REST + Bulk API 2.0 emulator for retl's tests (Python 3 standard library
only; JWT signatures are checked with the `openssl` command).

In-process:  server, url = salesforce.start(port=0, **knobs); ...; server.shutdown()
Command line: python3 tests/emulators/salesforce.py --port 0 [--knob VALUE ...]

Served:
  POST /services/oauth2/token   grant_type refresh_token | client_credentials |
                                urn:ietf:params:oauth:grant-type:jwt-bearer (RS256, verified
                                against knob jwt_public_key, a PEM)
                                -> {access_token, instance_url (this server), id, token_type,
                                issued_at, signature}; errors 400 {error, error_description}
  GET  /services/data/vNN.0/sobjects/{SObject}/describe
  POST|PATCH /services/data/vNN.0/composite/sobjects          create / update (by Id)
  PATCH /services/data/vNN.0/composite/sobjects/{SObject}/{ExternalIdField}   upsert
  DELETE /services/data/vNN.0/composite/sobjects?ids=a,b&allOrNone=false
  POST /services/data/vNN.0/jobs/ingest, PUT .../{id}/batches (text/csv),
  PATCH .../{id} {"state": "UploadComplete"|"Aborted"}, GET .../{id},
  GET .../{id}/successfulResults/ | failedResults/ | unprocessedrecords/
  GET /services/data/vNN.0/query?q=SELECT Id, F FROM Obj WHERE F IN (...)  (salesforce_soql.py)
Every API response carries Sforce-Limit-Info: api-usage=N/M (knob daily_limit); past M
-> 403 [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}].
Clearing (as Salesforce documents it): over REST (sObject Collections) a JSON null sets a
field to null, and an empty string in a text-like field is stored as null too (Salesforce
keeps no empty text); in a Bulk API 2.0 CSV an empty field is ignored on update (the value
is left as it is, the default applies on create) and `#N/A` sets null.
Per-record errors: REQUIRED_FIELD_MISSING (LastName on create), INVALID_EMAIL_ADDRESS,
STRING_TOO_LONG, DUPLICATE_VALUE (an External ID already used, on create),
INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST, ENTITY_IS_DELETED (delete of a deleted id);
relationship references (resolve_refs): INVALID_FIELD "Foreign key external ID: X not
found for field F in entity P", DUPLICATE_EXTERNAL_ID "F: more than one record found for
external id field: [ids]" (collections per record; Bulk sf__Error "CODE:message:--").
Response shapes follow developer.salesforce.com (sObject Collections: array in input
order, {id, success, errors:[{statusCode, message, fields}]}; created flag on upsert).
Knobs: clients {client_id: secret}, refresh_tokens [..], jwt_public_key, jwt_users [..],
expire_after_calls (tokens die once after N API calls: 401 INVALID_SESSION_ID),
refuse_refresh, daily_limit, usage_start, bulk_delay (seconds before a closed job is
JobComplete), close_fault ("slow" | "drop": the next close_fault_times close-job PATCHes
{"state": "UploadComplete"} are applied, then answered after close_slow_seconds or not
answered at all; counters extra bulk_close_applied / bulk_close_refused count the closes),
plus the common fault knobs.
Control: GET /_emulator/records/{SObject}; GET /_emulator/jobs;
  POST /_emulator/delete/{SObject} {"ids": [...]}: records deleted by hand (a user in the
  UI): to the Recycle Bin, so a later API delete of one answers ENTITY_IS_DELETED
  -> {"deleted": [the ids that were there]}.
  POST /_emulator/create/{SObject} {"records": [{field: value}, ...]}: records made by
  hand (not through the API) -> {"ids": [...]}.
Objects: Contact and Account.  Contact's lookups AccountId (relationship Account) and
Parent_Account__c (Parent_Account__r) point to Account, ReportsToId (ReportsTo) to
Contact; a write may set one through the parent's External ID (resolve_refs).
"""

import csv
import io
import json
import base64
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from urllib.parse import unquote, parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import salesforce_soql  # noqa: E402
from common import Response  # noqa: E402

MAX_RECORDS = 200


def field(name, type_="string", length=255, createable=True, updateable=True,
          nillable=True, external_id=False, picklist=None, reference_to=None,
          relationship=None, filterable=True):
    """One describe field.  A lookup (type "reference") names its parent
    object(s) in referenceTo and its relationship in relationshipName (the
    name a relationship target uses: AccountId -> "Account", a custom
    Parent_Account__c -> "Parent_Account__r"); other fields carry
    relationshipName null and referenceTo [] as Salesforce's describe does."""
    return {"name": name, "type": type_, "length": length if type_ in (
        "string", "email", "phone", "textarea", "picklist") else 0,
        "nillable": nillable, "createable": createable, "updateable": updateable,
        "externalId": external_id, "idLookup": external_id or name in ("Id", "Email"),
        "unique": external_id, "restrictedPicklist": bool(picklist),
        "filterable": filterable,
        "referenceTo": list(reference_to or []), "relationshipName": relationship,
        "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": False}
                           for v in (picklist or [])]}


def contact_fields():
    return [
        field("Id", "id", 18, createable=False, updateable=False, nillable=False),
        field("LastName", "string", 80, nillable=False),
        field("FirstName", "string", 40),
        field("Email", "email", 80),
        field("Phone", "phone", 40),
        field("Title", "string", 128),
        field("Birthdate", "date"),
        field("Level__c", "picklist", 255, picklist=["Bronze", "Silver", "Gold"]),
        field("External_Id__c", "string", 40, external_id=True),
        field("Legacy_Code__c", "string", 40),
        field("CreatedDate", "datetime", createable=False, updateable=False),
        field("AccountId", "reference", 18, reference_to=["Account"], relationship="Account"),
        field("Parent_Account__c", "reference", 18, reference_to=["Account"],
              relationship="Parent_Account__r"),
        field("ReportsToId", "reference", 18, reference_to=["Contact"], relationship="ReportsTo"),
        field("Description", "textarea", 32000, filterable=False),
    ]


def account_fields():
    return [
        field("Id", "id", 18, createable=False, updateable=False, nillable=False),
        field("Name", "string", 255, nillable=False),
        field("External_Id__c", "string", 40, external_id=True),
        field("Code__c", "string", 40),
        field("Industry", "string", 40),
    ]


KEY_PREFIX = {"Contact": "003", "Account": "001"}


def sf_error(status, code, message, fields=None):
    e = {"message": message, "errorCode": code}
    if fields is not None:
        e["fields"] = fields
    return Response(status, [e])


class SalesforceEmulator(common.Emulator):
    NAME = "salesforce"
    DEFAULT_KNOBS = {
        "clients": {"retl-client": "retl-secret"},
        "refresh_tokens": ["retl-refresh"],
        "jwt_public_key": None,
        "jwt_users": ["integration@example.com"],
        "expire_after_calls": 0,
        "refuse_refresh": False,
        "daily_limit": 100000,
        "usage_start": 0,
        "bulk_delay": 0.0,
        "close_fault": "",
        "close_fault_times": 1,
        "close_slow_seconds": 5.0,
    }

    def reset_data(self):
        self.records = {"Contact": {}, "Account": {}}       # id -> record
        # (object, field) -> {value: {id: None}}: the records holding each
        # value, built on the first look-up by that field and kept by every
        # write (_insert, _update, _delete).  A scan per row made a 25,000-row
        # Bulk job quadratic: minutes per answer on a loaded machine.
        self.index = {}
        self.born = {}                       # id -> creation ordinal
        self.deleted = set()
        self.schemas = {"Contact": contact_fields(), "Account": account_fields()}
        self.tokens = set()
        self.jobs = {}
        self.api_calls = 0
        self.expired_once = False
        self.seq = 0

    def new_id(self, prefix="003"):
        self.seq += 1
        return "%s%s%06d" % (prefix, "Q0000", self.seq)

    # ---- control
    def handle_control(self, req):
        m = re.match(r"^/_emulator/records/(\w+)$", req.path)
        if m and req.method == "GET":
            with self.lock:
                return Response(200, {"records": list(self.records.get(m.group(1), {}).values())})
        m = re.match(r"^/_emulator/delete/(\w+)$", req.path)
        if m and req.method == "POST":
            ids = (req.json() or {}).get("ids") or []
            with self.lock:
                recs = self.records.get(m.group(1))
                if recs is None:
                    return Response(404, {"error": "no object %s" % m.group(1)})
                gone = [rid for rid in ids if rid in recs]
                for rid in gone:
                    self._delete(m.group(1), rid)
                    self.deleted.add(rid)
                return Response(200, {"deleted": gone})
        m = re.match(r"^/_emulator/create/(\w+)$", req.path)
        if m and req.method == "POST":
            # records made by hand (a user, another tool): not through retl
            recs = (req.json() or {}).get("records") or []
            with self.lock:
                if m.group(1) not in self.records:
                    return Response(404, {"error": "no object %s" % m.group(1)})
                ids = []
                for r in recs:
                    rid = self.new_id(KEY_PREFIX[m.group(1)])
                    self._insert(m.group(1), rid, self.clean(r, rid))
                    ids.append(rid)
                return Response(200, {"ids": ids})
        if req.path == "/_emulator/jobs" and req.method == "GET":
            with self.lock:
                return Response(200, {"jobs": [{k: v for k, v in j.items() if k not in ("rows",)}
                                               for j in self.jobs.values()]})
        return None

    # ---- API
    def handle_api(self, req):
        if req.path == "/services/oauth2/token" and req.method == "POST":
            return self.token(req)
        with self.lock:
            auth = req.headers.get("Authorization") or ""
            tok = auth[7:] if auth.startswith("Bearer ") else None
            if not tok or tok not in self.tokens:
                self.counters.expired_401 += 1
                return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            self.api_calls += 1
            n = self.knobs["expire_after_calls"]
            if n and self.api_calls >= n and not self.expired_once:
                self.expired_once = True
                self.tokens.clear()
                self.counters.expired_401 += 1
                return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            used = self.knobs["usage_start"] + self.api_calls
            limit = self.knobs["daily_limit"]
            hdr = {"Sforce-Limit-Info": "api-usage=%d/%d" % (used, limit)}
            if used > limit:
                r = sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                r.headers.update(hdr)
                return r
        resp = common.fault_wrapper(self, req, lambda: self.dispatch(req))
        if req.info.get("close_applied"):
            resp = self.late_close(req, resp)
        if isinstance(resp, Response):
            resp.headers.update(hdr)
        return resp

    def late_close(self, req, resp):
        """knob close_fault: a close the job took, answered late or never"""
        with self.lock:
            fault = self.knobs["close_fault"]
            if not fault or self.knobs["close_fault_times"] <= 0:
                return resp
            self.knobs["close_fault_times"] -= 1
        req.info["fault"] = "close_" + fault
        if fault == "drop":
            return common.DROP
        time.sleep(float(self.knobs["close_slow_seconds"]))   # no lock held
        return resp

    def token(self, req):
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        g = form.get("grant_type")
        k = self.knobs

        def bad(code, desc):
            return Response(400, {"error": code, "error_description": desc})
        if g == "refresh_token":
            if form.get("client_id") not in k["clients"]:
                return bad("invalid_client_id", "client identifier invalid")
            if k["refuse_refresh"] or form.get("refresh_token") not in k["refresh_tokens"]:
                return bad("invalid_grant", "expired access/refresh token")
        elif g == "client_credentials":
            if k["clients"].get(form.get("client_id")) != form.get("client_secret") or \
                    form.get("client_secret") is None:
                return bad("invalid_client", "invalid client credentials")
        elif g == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            err = self.verify_jwt(form.get("assertion") or "")
            if err:
                return bad("invalid_grant", err)
        else:
            return bad("unsupported_grant_type", "grant type not supported")
        tok = "00D000000000001!" + uuid.uuid4().hex
        host = req.headers.get("Host") or "127.0.0.1"
        with self.lock:
            self.tokens.add(tok)
            self.counters.extra["tokens"] += 1
            self.counters.extra["grant_" + g.split(":")[-1]] += 1
        return Response(200, {"access_token": tok, "instance_url": "http://" + host,
                              "id": "https://login.salesforce.com/id/00D/005",
                              "token_type": "Bearer", "issued_at": str(int(time.time() * 1000)),
                              "signature": "x", "scope": "api"})

    def verify_jwt(self, assertion):
        parts = assertion.split(".")
        if len(parts) != 3 or not self.knobs["jwt_public_key"]:
            return "invalid assertion"

        def unb64(s):
            return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        try:
            hdr = json.loads(unb64(parts[0]))
            claims = json.loads(unb64(parts[1]))
            sig = unb64(parts[2])
        except ValueError:
            return "invalid assertion"
        if hdr.get("alg") != "RS256":
            return "invalid assertion"
        with tempfile.TemporaryDirectory() as d:
            for name, data in (("k.pem", self.knobs["jwt_public_key"].encode()),
                               ("sig", sig), ("msg", (parts[0] + "." + parts[1]).encode())):
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
            r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", os.path.join(d, "k.pem"),
                                "-signature", os.path.join(d, "sig"), os.path.join(d, "msg")],
                               capture_output=True)
        if r.returncode != 0:
            return "invalid assertion"
        if claims.get("iss") not in self.knobs["clients"]:
            return "invalid_client_id"  # as Salesforce words it: "client identifier invalid"
        if claims.get("sub") not in self.knobs["jwt_users"]:
            return "user hasn't approved this consumer"
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time() or \
                claims["exp"] > time.time() + 300:
            return "expired authorization code"
        return None

    def dispatch(self, req):
        m = re.match(r"^/services/data/v(\d+\.\d)/(.*)$", req.path)
        if not m:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        rest = m.group(2)
        with self.lock:
            d = re.match(r"^sobjects/(\w+)/describe/?$", rest)
            if d and req.method == "GET":
                obj = d.group(1)
                if obj not in self.schemas:
                    return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
                return Response(200, {"name": obj, "fields": self.schemas[obj]})
            if rest == "composite/sobjects":
                if req.method == "DELETE":
                    return self.c_delete(req)
                return self.c_write(req, "create" if req.method == "POST" else "update")
            u = re.match(r"^composite/sobjects/(\w+)/(\w+)$", rest)
            if u and req.method == "PATCH":
                return self.c_write(req, "upsert", u.group(1), u.group(2))
            x = re.match(r"^sobjects/(\w+)/(\w+)/([^/]+)$", rest)
            if x and req.method == "DELETE":
                return self.delete_by_ext(x.group(1), x.group(2), unquote(x.group(3)))
            if rest.startswith("jobs/ingest"):
                return self.bulk(req, rest[len("jobs/ingest"):].strip("/"))
            if re.match(r"^query(/[^/]+)?/?$", rest) and req.method == "GET":
                return salesforce_soql.query(self, req, m.group(1), rest.rstrip("/"))
        return sf_error(404, "NOT_FOUND", "The requested resource does not exist")

    # ---- records
    def check_record(self, obj, rec, creating):
        """-> list of errors for one record (values), or raises KeyError(field) for
        an unknown field."""
        fields = {f["name"]: f for f in self.schemas[obj]}
        errs = []
        for k, v in rec.items():
            if k in ("attributes", "Id"):
                continue
            f = fields.get(k)
            if f is None:
                raise KeyError(k)
            if v is None:
                continue
            if f["type"] in ("string", "email", "phone", "textarea") and isinstance(v, str) \
                    and len(v) > f["length"]:
                errs.append({"statusCode": "STRING_TOO_LONG",
                             "message": "%s: data value too large: %s (max length=%d)"
                             % (f["name"].replace("__c", ""), v, f["length"]),
                             "fields": [k]})
            if f["type"] == "email" and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", str(v)):
                errs.append({"statusCode": "INVALID_EMAIL_ADDRESS",
                             "message": "Email: invalid email address: %s" % v, "fields": [k]})
            if f["type"] == "picklist" and f["restrictedPicklist"] and \
                    v not in [p["value"] for p in f["picklistValues"]]:
                errs.append({"statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                             "message": "%s: bad value for restricted picklist field: %s"
                             % (f["name"], v), "fields": [k]})
        if creating and not rec.get("LastName") and obj == "Contact":
            errs.append({"statusCode": "REQUIRED_FIELD_MISSING",
                         "message": "Required fields are missing: [LastName]",
                         "fields": ["LastName"]})
        if creating and not rec.get("Name") and obj == "Account":
            errs.append({"statusCode": "REQUIRED_FIELD_MISSING",
                         "message": "Required fields are missing: [Name]",
                         "fields": ["Name"]})
        return errs

    def resolve_refs(self, obj, rec):
        """Relationship references -> lookup Ids: (record, errors).

        "Relationship Fields in Records" (REST and Bulk API JSON):
        "RelationshipName": {"IndexedFieldName": value}, an optional
        attributes map naming the parent's type; a Bulk CSV header
        RelationshipName.IndexedFieldName arrives here in the same form
        (bulk_rec).  The parent's field must be indexed: an External ID, or
        a standard idLookup field ("Relationship Fields in a Header Row
        (2.0)").  Failures are per record, with Salesforce's codes and
        texts: INVALID_FIELD "Foreign key external ID: X not found for field
        F in entity P" (no parent), DUPLICATE_EXTERNAL_ID "F: more than one
        record found for external id field: [ids]" (several), INVALID_FIELD
        "Field name provided, F is not an External ID or indexed field for
        P" (a field that cannot identify the parent).  An unknown
        relationship is an unknown column (KeyError, as check_record)."""
        refs = {f["relationshipName"]: f for f in self.schemas[obj]
                if f.get("relationshipName")}
        out, errs = {}, []
        for k, v in rec.items():
            if not isinstance(v, dict) or k == "attributes":
                out[k] = v
                continue
            lf = refs.get(k)
            if lf is None:
                raise KeyError(k)
            parent = lf["referenceTo"][0]
            typ = (v.get("attributes") or {}).get("type")
            if typ is not None:
                self.counters.extra["references_typed"] += 1
            inner = [(a, b) for a, b in v.items() if a != "attributes"]
            if (typ is not None and typ not in lf["referenceTo"]) or len(inner) != 1:
                errs.append({"statusCode": "INVALID_FIELD", "fields": [],
                             "message": "Invalid foreign key relationship: %s" % k})
                continue
            fname, value = inner[0]
            pf = {f["name"]: f for f in self.schemas[parent]}.get(fname)
            if pf is None:
                raise KeyError("%s.%s" % (k, fname))
            if not (pf.get("externalId") or pf.get("idLookup")):
                errs.append({"statusCode": "INVALID_FIELD", "fields": [],
                             "message": "Field name provided, %s is not an External ID or indexed field for %s"
                             % (fname, parent)})
                continue
            ids = sorted(rid for rid, r in self.records[parent].items()
                         if r.get(fname) is not None and str(r.get(fname)) == str(value)) \
                if value not in (None, "") else []
            if not ids:
                errs.append({"statusCode": "INVALID_FIELD", "fields": [],
                             "message": "Foreign key external ID: %s not found for field %s in entity %s"
                             % ("" if value is None else value, fname, parent)})
            elif len(ids) > 1:
                errs.append({"statusCode": "DUPLICATE_EXTERNAL_ID", "fields": [],
                             "message": "%s: more than one record found for external id field: [%s]"
                             % (fname, ", ".join(ids))})
            else:
                out[lf["name"]] = ids[0]
        return out, errs

    @staticmethod
    def bulk_rec(rec):
        """A Bulk CSV row's Relationship.Field columns as nested references"""
        out = {}
        for k, v in rec.items():
            if "." in k:
                rel, f = k.split(".", 1)
                out.setdefault(rel, {})[f] = v
            else:
                out[k] = v
        return out

    TEXT_TYPES = ("string", "email", "phone", "textarea", "picklist", "multipicklist", "url")

    def empty_text_null(self, obj, rec):
        """REST: "" in a text-like field is stored as null (Salesforce keeps no
        empty text)."""
        types = {f["name"]: f["type"] for f in self.schemas[obj]}
        return {k: (None if v == "" and types.get(k) in self.TEXT_TYPES else v)
                for k, v in rec.items()}

    # ---- the index and the only writes to self.records
    def find_ext(self, obj, fname, value):
        """The first record created (as a scan in creation order would find
        it) whose field equals value; a missing field counts as None."""
        ix = self._index_of(obj, fname)
        try:
            bucket = ix.get(value) if ix is not None else None
        except TypeError:          # an unhashable value (a JSON list or object)
            ix = None
        if ix is None:
            for r in self.records[obj].values():
                if r.get(fname) == value:
                    return r
            return None
        if not bucket:
            return None
        rid = next(iter(bucket)) if len(bucket) == 1 else min(bucket, key=self.born.__getitem__)
        return self.records[obj][rid]

    def _index_of(self, obj, fname):
        """-> {value: {id: None}}, or None when a stored value cannot be a key
        (that field is then scanned)."""
        key = (obj, fname)
        if key not in self.index:
            ix = {}
            try:
                for rid, r in self.records[obj].items():
                    ix.setdefault(r.get(fname), {})[rid] = None
            except TypeError:
                ix = None
            self.index[key] = ix
        return self.index[key]

    def _unindex(self, obj, rid):
        r = self.records[obj][rid]
        for (o, fname), ix in self.index.items():
            if o == obj and ix is not None:
                bucket = ix.get(r.get(fname))
                bucket.pop(rid, None)
                if not bucket:
                    del ix[r.get(fname)]

    def _reindex(self, obj, rid):
        r = self.records[obj][rid]
        for key in list(self.index):
            ix = self.index[key]
            if key[0] == obj and ix is not None:
                try:
                    ix.setdefault(r.get(key[1]), {})[rid] = None
                except TypeError:
                    self.index[key] = None

    def _insert(self, obj, rid, rec):
        self.born[rid] = len(self.born)
        self.records[obj][rid] = rec
        self._reindex(obj, rid)

    def _update(self, obj, rid, changes):
        self._unindex(obj, rid)
        self.records[obj][rid].update(changes)
        self._reindex(obj, rid)

    def _delete(self, obj, rid):
        self._unindex(obj, rid)
        del self.records[obj][rid]

    def c_write(self, req, op, obj=None, ext=None):
        try:
            body = req.json() or {}
        except ValueError as e:
            return sf_error(400, "JSON_PARSER_ERROR", str(e))
        recs = body.get("records") or []
        if len(recs) > MAX_RECORDS:
            return sf_error(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
        req.info["inputs"] = len(recs)
        out = []
        for rec in recs:
            o = obj or (rec.get("attributes") or {}).get("type")
            if o not in self.records:
                return sf_error(400, "INVALID_TYPE", "sObject type '%s' is not supported." % o)
            rec = self.empty_text_null(o, rec)
            try:
                rec, rerrs = self.resolve_refs(o, rec)
                if rerrs:
                    out.append({"success": False, "errors": rerrs})
                    continue
                if op == "create":
                    errs = self.check_record(o, rec, True)
                    ev = rec.get("External_Id__c")
                    if not errs and ev and self.find_ext(o, "External_Id__c", ev):
                        errs = [{"statusCode": "DUPLICATE_VALUE",
                                 "message": "duplicate value found: External_Id__c duplicates value on record with id: %s"
                                 % self.find_ext(o, "External_Id__c", ev)["Id"],
                                 "fields": []}]
                    if errs:
                        out.append({"success": False, "errors": errs})
                        continue
                    rid = self.new_id(KEY_PREFIX[o])
                    self._insert(o, rid, self.clean(rec, rid))
                    out.append({"id": rid, "success": True, "errors": []})
                elif op == "update":
                    rid = rec.get("Id")
                    if rid not in self.records[o]:
                        out.append({"success": False, "errors": [{
                            "statusCode": "ENTITY_IS_DELETED" if rid in self.deleted else "INVALID_CROSS_REFERENCE_KEY",
                            "message": "entity is deleted" if rid in self.deleted else "invalid cross reference id",
                            "fields": []}]})
                        continue
                    errs = self.check_record(o, rec, False)
                    if errs:
                        out.append({"success": False, "errors": errs})
                        continue
                    self._update(o, rid, self.clean(rec, rid))
                    out.append({"id": rid, "success": True, "errors": []})
                else:
                    ev = rec.get(ext)
                    if not ev:
                        out.append({"success": False, "errors": [{"statusCode": "MISSING_ARGUMENT",
                                    "message": "%s not specified" % ext, "fields": []}]})
                        continue
                    cur = self.find_ext(o, ext, ev)
                    errs = self.check_record(o, rec, cur is None)
                    if errs:
                        out.append({"success": False, "errors": errs})
                        continue
                    if cur:
                        self._update(o, cur["Id"], self.clean(rec, cur["Id"]))
                        out.append({"id": cur["Id"], "success": True, "errors": [], "created": False})
                    else:
                        rid = self.new_id(KEY_PREFIX[o])
                        self._insert(o, rid, self.clean(rec, rid))
                        out.append({"id": rid, "success": True, "errors": [], "created": True})
            except KeyError as e:
                return sf_error(400, "INVALID_FIELD",
                                "No such column '%s' on sobject of type %s" % (e.args[0], o))
        return Response(200, out)

    @staticmethod
    def clean(rec, rid):
        d = {k: v for k, v in rec.items() if k != "attributes"}
        d["Id"] = rid
        return d

    def c_delete(self, req):
        """sObject Collections DELETE: a DeleteResult per id, in input order.
        An id whose record is in the Recycle Bin (deleted by an API call or
        by hand) is answered ENTITY_IS_DELETED, "entity is deleted": "You
        can't reference an object that has been deleted" (StatusCode, SOAP
        API Developer Guide, Core Data Types; the same code DML gives for a
        record deleted twice); an id never seen, INVALID_CROSS_REFERENCE_KEY."""
        ids = [i for i in (req.q("ids") or "").split(",") if i]
        if len(ids) > MAX_RECORDS:
            return sf_error(400, "EXCEEDED_ID_LIMIT", "record limit reached")
        req.info["inputs"] = len(ids)
        out = []
        for rid in ids:
            found = None
            for o, recs in self.records.items():
                if rid in recs:
                    found = o
            if found is None:
                gone = rid in self.deleted
                out.append({"id": rid, "success": False, "errors": [{
                    "statusCode": "ENTITY_IS_DELETED" if gone else "INVALID_CROSS_REFERENCE_KEY",
                    "message": "entity is deleted" if gone else "invalid cross reference id",
                    "fields": []}]})
                continue
            self._delete(found, rid)
            self.deleted.add(rid)
            out.append({"id": rid, "success": True, "errors": []})
        return Response(200, out)

    # ---- Bulk API 2.0
    def bulk(self, req, rest):
        parts = rest.split("/") if rest else []
        if not parts and req.method == "POST":
            body = req.json() or {}
            jid = "750" + "Q" * 5 + "%07d" % (len(self.jobs) + 1)
            job = {"id": jid, "operation": body.get("operation"), "object": body.get("object"),
                   "externalIdFieldName": body.get("externalIdFieldName"), "state": "Open",
                   "contentType": "CSV", "lineEnding": body.get("lineEnding", "LF"),
                   "uploads": 0, "rows": None, "closed_at": None,
                   "numberRecordsProcessed": 0, "numberRecordsFailed": 0}
            if job["object"] not in self.records:
                return sf_error(400, "INVALIDJOB", "Unable to find object: %s" % job["object"])
            self.jobs[jid] = job
            return Response(200, self.job_info(job))
        job = self.jobs.get(parts[0]) if parts else None
        if job is None:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        self.advance(job)
        if len(parts) == 1 and req.method == "GET":
            return Response(200, self.job_info(job))
        if len(parts) == 1 and req.method == "PATCH":
            state = (req.json() or {}).get("state")
            if state == "UploadComplete" and job["state"] == "Open":
                job["state"] = "UploadComplete"
                job["closed_at"] = time.time()
                self.counters.extra["bulk_close_applied"] += 1
                req.info["close_applied"] = True
                self.advance(job)
            elif state == "Aborted" and job["state"] in ("Open", "UploadComplete", "InProgress"):
                job["state"] = "Aborted"
            else:
                if state == "UploadComplete":
                    self.counters.extra["bulk_close_refused"] += 1
                return sf_error(400, "INVALIDJOBSTATE", "Invalid state transition")
            return Response(200, self.job_info(job))
        if len(parts) == 2 and parts[1] == "batches" and req.method == "PUT":
            if job["state"] != "Open":
                return sf_error(409, "INVALIDJOBSTATE", "Job is not open for upload")
            if job["uploads"]:
                return sf_error(400, "INVALIDJOBSTATE", "Found multiple uploads for the job")
            job["uploads"] += 1
            job["csv"] = req.body.decode("utf-8")
            return Response(201, None)
        if len(parts) == 2 and req.method == "GET" and parts[1] in (
                "successfulResults", "failedResults", "unprocessedrecords"):
            if job["state"] not in ("JobComplete", "Failed", "Aborted"):
                return sf_error(400, "INVALIDJOBSTATE", "job is not complete")
            return Response(200, job["results"][parts[1]], content_type="text/csv")
        return sf_error(404, "NOT_FOUND", "The requested resource does not exist")

    def job_info(self, job):
        return {k: v for k, v in job.items() if k not in ("rows", "csv", "results", "closed_at", "uploads")}

    def advance(self, job):
        if job["state"] != "UploadComplete":
            return
        if time.time() - job["closed_at"] < float(self.knobs["bulk_delay"]):
            job["state"] = "UploadComplete"
            return
        rows = list(csv.reader(io.StringIO(job.get("csv") or "")))
        header, data = (rows[0], rows[1:]) if rows else ([], [])
        ok, bad = [], []
        obj = job["object"]
        for row in data:
            # an empty field is ignored (left as it is); #N/A sets null
            rec = {h: (None if v == "#N/A" else v) for h, v in zip(header, row) if v != ""}
            op = job["operation"]
            try:
                rec, rerrs = self.resolve_refs(obj, self.bulk_rec(rec))
                if rerrs and op != "delete":
                    bad.append([rec.get("Id") or "", self.first_error(rerrs)] + row)
                    continue
                if op == "delete":
                    r = self.c_delete_one(rec.get("Id"))
                elif op == "upsert":
                    r = self.upsert_one(obj, rec, job["externalIdFieldName"])
                elif op == "insert":
                    r = self.insert_one(obj, rec)
                else:
                    r = self.update_one(obj, rec)
            except KeyError as e:
                r = (None, False, "INVALID_FIELD:No such column '%s':--" % e.args[0])
            rid, created, err = r
            if err:
                bad.append([rid or "", err] + row)
            else:
                ok.append([rid, "true" if created else "false"] + row)
        job["results"] = {
            "successfulResults": self.csv_text(["sf__Id", "sf__Created"] + header, ok),
            "failedResults": self.csv_text(["sf__Id", "sf__Error"] + header, bad),
            "unprocessedrecords": self.csv_text(header, []),
        }
        job["numberRecordsProcessed"] = len(data)
        job["numberRecordsFailed"] = len(bad)
        job["state"] = "JobComplete"

    @staticmethod
    def csv_text(header, rows):
        out = io.StringIO()
        w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        return out.getvalue()

    @staticmethod
    def first_error(errs):
        e = errs[0]
        return "%s:%s:%s" % (e["statusCode"], e["message"], ",".join(e.get("fields") or []) or "--")

    def upsert_one(self, obj, rec, ext):
        cur = self.find_ext(obj, ext, rec.get(ext))
        errs = self.check_record(obj, rec, cur is None)
        if errs:
            return (None, False, self.first_error(errs))
        if cur:
            self._update(obj, cur["Id"], self.clean(rec, cur["Id"]))
            return (cur["Id"], False, None)
        rid = self.new_id(KEY_PREFIX[obj])
        self._insert(obj, rid, self.clean(rec, rid))
        return (rid, True, None)

    def insert_one(self, obj, rec):
        errs = self.check_record(obj, rec, True)
        if errs:
            return (None, False, self.first_error(errs))
        rid = self.new_id(KEY_PREFIX[obj])
        self._insert(obj, rid, self.clean(rec, rid))
        return (rid, True, None)

    def update_one(self, obj, rec):
        rid = rec.get("Id")
        if rid not in self.records[obj]:
            return (rid, False, "ENTITY_IS_DELETED:entity is deleted:--")
        errs = self.check_record(obj, rec, False)
        if errs:
            return (rid, False, self.first_error(errs))
        self._update(obj, rid, self.clean(rec, rid))
        return (rid, False, None)

    def delete_by_ext(self, obj, fname, value):
        """DELETE /sobjects/{SObject}/{ExternalIdField}/{value} (sObject Rows by
        External ID): 204, or 404 NOT_FOUND for an unknown object, a field
        that is not an External ID, or no record with that value."""
        if obj not in self.schemas:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        f = {x["name"]: x for x in self.schemas[obj]}.get(fname)
        if not f or not f.get("externalId"):
            return sf_error(404, "NOT_FOUND",
                            "Provided external ID field does not exist or is not accessible: "
                            + fname)
        rec = self.find_ext(obj, fname, value)
        if rec is None:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        self.c_delete_one(rec["Id"])
        return Response(204, None)

    def c_delete_one(self, rid):
        for o, recs in self.records.items():
            if rid in recs:
                self._delete(o, rid)
                self.deleted.add(rid)
                return (rid, False, None)
        return (rid, False, "ENTITY_IS_DELETED:entity is deleted:--")


def start(port=0, host="127.0.0.1", **knobs):
    return common.start(SalesforceEmulator, port=port, host=host, **knobs)


if __name__ == "__main__":
    sys.exit(common.main(SalesforceEmulator))
