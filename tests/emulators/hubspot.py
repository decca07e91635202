#!/usr/bin/env python3
"""HubSpot CRM API v3 emulator for retl's tests (Python 3 standard library only).

Start:  python3 tests/emulators/hubspot.py --port 0 [--token T] [--rate 100/10s] [--knob VALUE ...]
        -> prints "listening on http://127.0.0.1:PORT", serves until SIGTERM.
In-process:  server, url = hubspot.start(port=0, **knobs); ...; server.shutdown()

API served (Authorization: Bearer <token>):
  POST /crm/v3/objects/{object}/batch/{create,update,upsert,read,archive}
  GET  /crm/v3/objects/{object}?limit=&after=&properties=     (list, paging)
  GET  /crm/v3/objects/{object}/{id}?idProperty=&properties=
  GET  /crm/v3/properties/{object}  and  /crm/v3/properties/{object}/{name}
  POST /crm/v3/objects/{object}/search      (hubspot_search.py: filters, paging, its limit)
  Lists (static list membership): hubspot_lists.py
  The date-based versions (/crm/objects/2026-03/..., /crm/properties/2026-03/...)
  are served alike: HubSpot's specs of both have the same calls and bodies.
  Associations v4 (batch create/read/archive/labels archive), association labels and
  POST /crm/v3/objects/{object}/search: hubspot_assoc.py (its docstring).
  {object}: contacts, companies, deals, tickets (also their singular and 0-1/0-2/0-3/0-5
  ids) and custom objects registered through the control endpoint (by objectTypeId
  "2-123456" or by name "p_name").

Control (no auth):  see common.py for /_emulator/config, /counters, /reset; plus
  GET  /_emulator/records/{object}[?archived=1]  -> {"results":[{id, properties, createdAt,
                                                   updatedAt, archived}], "archived":[...]}
  POST /_emulator/records/{object}   {"inputs":[{"properties":{...}}]}  seed records (no validation)
  POST /_emulator/properties/{object} {name, type, fieldType?, label?, options?, hasUniqueValue?,
                                       readOnlyValue?}  (or {"properties":[...]})
  POST /_emulator/objects  {"objectTypeId":"2-123456","name":"p_cars","properties":[...]}

What was checked against HubSpot material (search tool, docs/pages/issues/code corpora):
  * 401 body "Authentication credentials not found. This API supports OAuth 2.0 ..." with
    category INVALID_AUTHENTICATION (community + skill pages quoting real responses).
  * 401 EXPIRED_AUTHENTICATION "The OAuth token used to make this call expired N second(s)
    ago." with context {"expire time": [...]} (several client code bases quoting it).
  * 403 MISSING_SCOPES: message "This app hasn't been granted all required scopes to make
    this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
    errors [{message "One or more of the following scopes are required.", context
    {requiredGranularScopes: [...]}}], links {scopes: ...} (community thread + client tests).
  * 429 body {"status":"error","message":"You have reached your ten_secondly_rolling limit.",
    "errorType":"RATE_LIMIT","correlationId","policyName":"TEN_SECONDLY_ROLLING"} and the
    daily variant "You have reached your daily limit." / "DAILY" (usage guidelines quoted on
    community.hubspot.com; @hubspot/api-client RetryDecorator).  HubSpot's docs do NOT
    document a Retry-After header on 429, so none is sent unless knob retry_after is set.
  * Headers X-HubSpot-RateLimit-Max / -Remaining / -Interval-Milliseconds / -Daily /
    -Daily-Remaining (changelog 2018-11-06, usage guidelines).
  * Property validation (knob validation_errors_array False: the same body without
    "errors", as in real answers quoted by client code and guides; HubSpot's error-handling
    docs page shows both members): 400 {"status":"error","message":"Property values were not valid:
    [{\"isValid\":false,\"message\":...,\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]",
    "correlationId", "errors":[{"message","code","context":{"propertyName":[...]}}],
    "category":"VALIDATION_ERROR"} - the message texts "Email address X is invalid",
    "Property \"x\" does not exist", "X was not one of the allowed options: [a, b]",
    "X was not a valid integer.", "N is at H:M:S.0 UTC, not midnight!" are quoted from real
    responses in public code.  A single bad input fails the whole batch.
  * "Duplicate IDs found in batch input: [id]. IDs must be unique" with context {ids},
    category VALIDATION_ERROR (rudder-transformer fixtures of real responses).
  * "The maximum number of inputs supported in a batch is 100. Please reduce the number of
    items and try again" (VALIDATION_ERROR, quoted from a live response).
  * 207 with errors [{status:"error", category:"OBJECT_NOT_FOUND", message:"Could not get
    some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
    context:{ids:[...]}}] and numErrors, for batch read/update (community thread).
  * Batch update answers 200 / 207, never 204 (changelog "Simplifying batch update
    response codes"); batch create 201; archive 204.
  * 409 CONFLICT "Contact already exists. Existing ID: N" for batch/create of an existing
    email (hubspot-api-python issue #51).
  * Unknown object type: 400 "Unable to infer object type from: X".
  * Multi-status on batch create only when inputs carry objectWriteTraceId (error-handling
    docs page).
Not verified (chosen, documented here): the exact text of INVALID_DECIMAL / INVALID_DATE
(non-midnight epoch-ms text is verified; garbage-date text, and an ISO 8601 date-time that is
not at midnight UTC, are not) / READ_ONLY_VALUE / INVALID_BOOLEAN
(treated as INVALID_OPTION against true/false) messages; the body of 5xx answers; whether
batch/archive of unknown ids is 204 or 207 (knob archive_not_found, default "207" as the
brief asks); whether 429'd requests count in the rolling window (knob
rate_count_rejected, default True); the message for "idProperty is not unique".
Real HubSpot reports hasUniqueValue=false for contacts.email although upsert by email works;
this emulator reports it as the brief asks (knob email_has_unique_value, default True).
"""

import json
import os
import re
import sys
import threading
import time
from collections import deque, OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import hubspot_search  # noqa: E402
import hubspot_lists  # noqa: E402
import hubspot_assoc  # noqa: E402
from common import Response, DROP, correlation_id, iso_ms  # noqa: E402

MAX_BATCH = 100

LIFECYCLE_OPTIONS = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
                     "opportunity", "customer", "evangelist", "other"]
DEAL_STAGES = ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
               "decisionmakerboughtin", "contractsent", "closedwon", "closedlost"]

FIELD_TYPES = {"string": "text", "number": "number", "date": "date", "datetime": "date",
               "bool": "booleancheckbox", "enumeration": "select", "phone_number": "phonenumber"}


def prop(name, type_="string", label=None, options=None, unique=False, read_only=False,
         field_type=None, integer=False, hubspot_defined=True):
    opts = []
    if type_ == "bool" and options is None:
        options = [("Yes", "true"), ("No", "false")]
    for i, o in enumerate(options or []):
        if isinstance(o, dict):
            d = {"label": o.get("label", o["value"]), "value": str(o["value"]),
                 "displayOrder": o.get("displayOrder", i), "hidden": bool(o.get("hidden", False))}
        elif isinstance(o, (tuple, list)):
            d = {"label": o[0], "value": str(o[1]), "displayOrder": i, "hidden": False}
        else:
            d = {"label": str(o), "value": str(o), "displayOrder": i, "hidden": False}
        opts.append(d)
    p = {
        "name": name,
        "label": label or name.replace("_", " ").title(),
        "type": type_,
        "fieldType": field_type or FIELD_TYPES.get(type_, "text"),
        "description": "",
        "groupName": "contactinformation",
        "options": opts,
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": bool(unique),
        "hidden": False,
        "hubspotDefined": hubspot_defined,
        "modificationMetadata": {"archivable": not hubspot_defined, "readOnlyDefinition": hubspot_defined,
                                 "readOnlyValue": bool(read_only)},
        "formField": not read_only,
        "archived": False,
        "createdAt": "2020-01-01T00:00:00.000Z",
        "updatedAt": "2020-01-01T00:00:00.000Z",
    }
    if integer:
        p["numberDisplayHint"] = "unformatted"
        p["showCurrencySymbol"] = False
        p["_integer"] = True  # emulator-internal: INVALID_INTEGER instead of INVALID_DECIMAL
    return p


def system_props(modified="hs_lastmodifieddate"):
    return [prop("hs_object_id", "number", "Record ID", read_only=True),
            prop("createdate", "datetime", "Create Date", read_only=True),
            prop(modified, "datetime", "Last Modified Date", read_only=True)]


def default_schemas(email_unique=True):
    """object type id -> schema dict"""
    return OrderedDict([
        ("0-1", {"objectTypeId": "0-1", "names": ["contacts", "contact"], "label": "CONTACT",
                 "modified": "lastmodifieddate",
                 "default_read": ["firstname", "lastname", "email"],
                 "properties": [
                     prop("email", label="Email", unique=email_unique),
                     prop("firstname", label="First Name"), prop("lastname", label="Last Name"),
                     prop("phone", "string", "Phone Number", field_type="phonenumber"),
                     prop("lifecyclestage", "enumeration", "Lifecycle Stage", options=[
                         ("Subscriber", "subscriber"), ("Lead", "lead"),
                         ("Marketing Qualified Lead", "marketingqualifiedlead"),
                         ("Sales Qualified Lead", "salesqualifiedlead"), ("Opportunity", "opportunity"),
                         ("Customer", "customer"), ("Evangelist", "evangelist"), ("Other", "other")],
                         field_type="radio"),
                     prop("company", label="Company Name"), prop("website", label="Website URL"),
                 ] + system_props("lastmodifieddate")}),
        ("0-2", {"objectTypeId": "0-2", "names": ["companies", "company"], "label": "COMPANY",
                 "modified": "hs_lastmodifieddate", "default_read": ["name", "domain"],
                 "properties": [
                     prop("name", label="Company name"), prop("domain", label="Company Domain Name"),
                     prop("phone", label="Phone Number"), prop("city", label="City"),
                     prop("industry", label="Industry"),
                     prop("numberofemployees", "number", "Number of Employees", integer=True),
                     prop("annualrevenue", "number", "Annual Revenue"),
                 ] + system_props()}),
        ("0-3", {"objectTypeId": "0-3", "names": ["deals", "deal"], "label": "DEAL",
                 "modified": "hs_lastmodifieddate",
                 "default_read": ["dealname", "amount", "closedate", "pipeline", "dealstage"],
                 "properties": [
                     prop("dealname", label="Deal Name"), prop("amount", "number", "Amount"),
                     prop("pipeline", "enumeration", "Pipeline", options=[("Sales Pipeline", "default")]),
                     prop("dealstage", "enumeration", "Deal Stage", options=DEAL_STAGES),
                     prop("closedate", "datetime", "Close Date"),
                 ] + system_props()}),
        ("0-5", {"objectTypeId": "0-5", "names": ["tickets", "ticket"], "label": "TICKET",
                 "modified": "hs_lastmodifieddate",
                 "default_read": ["subject", "content", "hs_pipeline", "hs_pipeline_stage"],
                 "properties": [
                     prop("subject", label="Ticket name"), prop("content", label="Ticket description"),
                     prop("hs_pipeline", "enumeration", "Pipeline", options=[("Support Pipeline", "0")]),
                     prop("hs_pipeline_stage", "enumeration", "Ticket status",
                          options=[("New", "1"), ("Waiting on contact", "2"), ("Waiting on us", "3"),
                                   ("Closed", "4")]),
                     prop("hs_ticket_priority", "enumeration", "Priority",
                          options=["LOW", "MEDIUM", "HIGH", "URGENT"]),
                 ] + system_props()}),
    ])


SCOPE_NAMES = {"0-1": "contacts", "0-2": "companies", "0-3": "deals", "0-5": "tickets"}

# A realistic email check: local@domain.tld, ASCII, no spaces, no leading/trailing/double
# dots, domain labels of letters/digits/hyphens, alphabetic TLD of 2+ letters.
EMAIL_RE = re.compile(
    r"^(?=.{3,254}$)(?=.{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
                    r"(Z|[+-]\d{2}:?\d{2})?$")
NUM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
INT_RE = re.compile(r"^[+-]?\d+$")


def parse_rate(text):
    """'100/10s' -> (100, 10.0); '5/500ms' -> (5, 0.5); '100' -> (100, 10.0)"""
    text = str(text).strip()
    if "/" not in text:
        return int(text), 10.0
    n, w = text.split("/", 1)
    m = re.match(r"^([\d.]+)\s*(ms|s|m)?$", w.strip())
    if not m:
        raise ValueError("bad rate %r" % text)
    v = float(m.group(1))
    unit = m.group(2) or "s"
    return int(n), v / 1000.0 if unit == "ms" else v * 60 if unit == "m" else v


def bad(message, category="VALIDATION_ERROR", status=400, **extra):
    body = {"status": "error", "message": message, "correlationId": correlation_id()}
    if category:
        body["category"] = category
    body.update(extra)
    return Response(status, body)


class ValidationFailure(Exception):
    def __init__(self, resp):
        self.resp = resp


class HubSpotEmulator(common.Emulator):
    NAME = "hubspot"
    DEFAULT_KNOBS = {
        "tokens": ["test-token"],      # accepted bearer tokens
        "missing_scopes": [],          # scopes every token lacks, e.g. ["crm.objects.contacts.write"]
        "token_missing_scopes": {},    # token -> [scopes] it lacks
        "rate": "100/10s",             # rolling window per token
        "daily_limit": 250000,         # per token; 0 = no daily limit
        "daily_used": 0,               # start the daily count here (tests of daily cut-off)
        "rate_count_rejected": True,   # 429'd requests still count in the window
        "send_daily_headers": True,
        "retry_after": None,           # seconds; if set, 429 answers carry Retry-After
        "fail_every_nth_429": 0,       # every Nth authenticated request -> 429 TEN_SECONDLY_ROLLING
        "burst_429": 1,                # ... and that many consecutive ones
        "expire_token_after": 0,       # after N authenticated requests, one 401 EXPIRED_AUTHENTICATION
        "reject_values": [],           # values HubSpot will call invalid (emails -> INVALID_EMAIL)
        "shuffle_results": True,       # results not in input order
        "archive_not_found": "207",    # "207" or "204" for batch/archive of unknown ids
        "email_has_unique_value": True,
        "max_batch": MAX_BATCH,
        "validation_errors_array": True,  # False: 400 validation bodies carry the list only in "message"
        "log_properties": False,       # counters' requests carry each input's properties as sent
        **hubspot_search.KNOBS,        # the search endpoint's (hubspot_search.py)
    }

    # ------------------------------------------------------------------ state
    def reset_data(self):
        self.schemas = default_schemas(self.knobs.get("email_has_unique_value", True))
        self.records = {oid: OrderedDict() for oid in self.schemas}   # oid -> id -> record
        self._index = {}                                               # (oid, prop) -> value -> id
        self.archived = {oid: [] for oid in self.schemas}
        self.next_id = 1000
        self.windows = {}          # token -> deque of times
        self.daily = {}            # token -> count
        self.auth_count = 0        # authenticated API requests (for nth-429 / expiry)
        self.expired_done = False
        self._index_names()
        hubspot_lists.reset(self)
        hubspot_assoc.reset(self)

    def on_config_change(self):
        self.rate_max, self.rate_window = parse_rate(self.knobs["rate"])
        for oid, s in self.schemas.items():
            if oid == "0-1":
                for p in s["properties"]:
                    if p["name"] == "email":
                        p["hasUniqueValue"] = bool(self.knobs["email_has_unique_value"])

    def _index_names(self):
        self.names = {}
        for oid, s in self.schemas.items():
            self.names[oid] = oid
            for n in s["names"]:
                self.names[n.lower()] = oid

    def new_id(self):
        self.next_id += 1
        return str(self.next_id)

    def resolve(self, obj):
        return self.names.get(obj) or self.names.get(obj.lower())

    def props(self, oid):
        return {p["name"]: p for p in self.schemas[oid]["properties"]}

    # ------------------------------------------------------------------ control
    def handle_control(self, req):
        parts = req.path.strip("/").split("/")[1:]  # after _emulator
        if not parts:
            return None
        if parts[0] == "lists":
            return hubspot_lists.handle_control(self, req, parts)
        r = hubspot_assoc.control(self, parts, req)
        if r is not None:
            return r
        if parts[0] == "records" and len(parts) == 2:
            with self.lock:
                oid = self.resolve(parts[1])
                if not oid:
                    return Response(404, {"error": "unknown object %s" % parts[1]})
                if req.method == "GET":
                    out = {"objectTypeId": oid,
                           "results": [self.public(r, None, oid) for r in self.records[oid].values()]}
                    if req.q("archived") not in (None, "", "0", "false"):
                        out["archived"] = list(self.archived[oid])
                    return Response(200, out)
                if req.method == "POST":
                    body = req.json() or {}
                    created = []
                    for inp in body.get("inputs", []):
                        rec = self.create_record(oid, {k: self.to_str(v) for k, v in
                                                       (inp.get("properties") or {}).items()})
                        created.append(self.public(rec, None, oid))
                    return Response(201, {"results": created})
                if req.method == "DELETE":
                    self.records[oid].clear()
                    return Response(200, {"ok": True})
        if parts[0] == "properties" and len(parts) == 2 and req.method == "POST":
            body = req.json() or {}
            defs = body.get("properties") if "properties" in body else [body]
            with self.lock:
                oid = self.resolve(parts[1])
                if not oid:
                    return Response(404, {"error": "unknown object %s" % parts[1]})
                added = [self.add_property(oid, d) for d in defs]
            return Response(201, {"results": added})
        if parts[0] == "objects" and len(parts) == 1 and req.method == "POST":
            body = req.json() or {}
            oid = body.get("objectTypeId") or "2-%d" % (100000 + len(self.schemas))
            name = body.get("name") or ("p_obj_" + oid.replace("-", "_"))
            names = [name] + ([name[2:]] if name.startswith("p_") else []) + list(body.get("aliases", []))
            with self.lock:
                self.schemas[oid] = {"objectTypeId": oid, "names": names, "label": name,
                                     "modified": "hs_lastmodifieddate", "default_read": [],
                                     "custom": True, "properties": system_props()}
                self.records[oid] = OrderedDict()
                self.archived[oid] = []
                self._index_names()
                for d in body.get("properties", []):
                    self.add_property(oid, d)
            return Response(201, {"objectTypeId": oid, "name": name})
        return None

    def add_property(self, oid, d):
        if "name" not in d:
            raise ValueError("property needs a name")
        t = d.get("type", "string")
        if t not in FIELD_TYPES:
            raise ValueError("unknown property type %r" % t)
        p = prop(d["name"], t, d.get("label"), d.get("options"), d.get("hasUniqueValue", False),
                 d.get("readOnlyValue", False), d.get("fieldType"), d.get("integer", False),
                 hubspot_defined=False)
        self.schemas[oid]["properties"] = [x for x in self.schemas[oid]["properties"]
                                           if x["name"] != p["name"]] + [p]
        return {k: v for k, v in p.items() if not k.startswith("_")}

    # ------------------------------------------------------------------ auth + rate
    def rate_headers(self, token, remaining=None):
        h = {"X-HubSpot-RateLimit-Max": str(self.rate_max),
             "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(round(self.rate_window * 1000)))}
        if remaining is None:
            w = self.windows.get(token) or ()
            remaining = max(0, self.rate_max - len(w))
        h["X-HubSpot-RateLimit-Remaining"] = str(remaining)
        if self.knobs["send_daily_headers"] and self.knobs["daily_limit"]:
            used = self.daily.get(token, 0) + int(self.knobs["daily_used"] or 0)
            h["X-HubSpot-RateLimit-Daily"] = str(self.knobs["daily_limit"])
            h["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, self.knobs["daily_limit"] - used))
        return h

    def too_many(self, token, policy, headers):
        if policy == "DAILY":
            msg = "You have reached your daily limit."
        else:
            msg = "You have reached your ten_secondly_rolling limit."
        if self.knobs["retry_after"] is not None:
            headers["Retry-After"] = str(self.knobs["retry_after"])
        return Response(429, {"status": "error", "message": msg, "errorType": "RATE_LIMIT",
                              "correlationId": correlation_id(), "policyName": policy,
                              "requestId": correlation_id()}, headers)

    def admit(self, req):
        """Auth, scopes, rate limits.  -> (token, None) or (token, Response)."""
        auth = req.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if not token or token not in self.knobs["tokens"]:
            return None, bad("Authentication credentials not found. This API supports OAuth 2.0 "
                             "authentication and you can find more details at "
                             "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                             "INVALID_AUTHENTICATION", 401)
        req.info["token"] = token[-4:]
        with self.lock:
            self.auth_count += 1
            n = self.auth_count
            exp = int(self.knobs["expire_token_after"] or 0)
            if exp and n > exp and not self.expired_done:
                self.expired_done = True
                self.counters.expired_401 += 1
                past = time.time() - 75
                return token, bad("The OAuth token used to make this call expired 75 second(s) ago.",
                                  "EXPIRED_AUTHENTICATION", 401,
                                  context={"expire time": [iso_ms(past)]})
            # rolling window; the request's time is when the limiter sees
            # it, under the lock, so judging and recording agree in order
            # (see the Airtable emulator's admit)
            now = req.t_start = time.time()
            w = self.windows.setdefault(token, deque())
            while w and w[0] <= now - self.rate_window:
                w.popleft()
            daily_limit = int(self.knobs["daily_limit"] or 0)
            used = self.daily.get(token, 0) + int(self.knobs["daily_used"] or 0)
            if daily_limit and used >= daily_limit:
                if self.knobs["rate_count_rejected"]:
                    w.append(now)
                return token, self.too_many(token, "DAILY", self.rate_headers(token, 0))
            if len(w) >= self.rate_max:
                if self.knobs["rate_count_rejected"]:
                    w.append(now)
                return token, self.too_many(token, "TEN_SECONDLY_ROLLING", self.rate_headers(token, 0))
            w.append(now)
            self.daily[token] = self.daily.get(token, 0) + 1
            nth = int(self.knobs["fail_every_nth_429"] or 0)
            burst = max(1, int(self.knobs["burst_429"] or 1))
            if nth and ((n - 1) % nth) >= nth - burst:
                self.counters.forced_429 += 1
                req.info["fault"] = "forced_429"
                # the 429 is the fault, not the window: report the window as it is
                return token, self.too_many(token, "TEN_SECONDLY_ROLLING", self.rate_headers(token))
        return token, None

    def check_scope(self, token, scopes_needed):
        lacking = set(self.knobs["missing_scopes"] or []) | set(
            (self.knobs["token_missing_scopes"] or {}).get(token, []))
        if any(s in lacking for s in scopes_needed):
            return bad("This app hasn't been granted all required scopes to make this call. "
                       "Read more about required scopes here: https://developers.hubspot.com/scopes.",
                       "MISSING_SCOPES", 403,
                       errors=[{"message": "One or more of the following scopes are required.",
                                "context": {"requiredGranularScopes": list(scopes_needed)}}],
                       links={"scopes": "https://developers.hubspot.com/scopes"})
        return None

    def error_body_5xx(self, status):
        if status == 502:
            return Response(502, "<html><head><title>502 Bad Gateway</title></head><body>"
                                 "<center><h1>502 Bad Gateway</h1></center></body></html>",
                            content_type="text/html")
        if status == 503:
            return Response(503, {"status": "error", "message": "Service Unavailable",
                                  "correlationId": correlation_id(), "category": "SERVICE_UNAVAILABLE"})
        if status == 504:
            return Response(504, {"status": "error", "message": "Gateway Timeout",
                                  "correlationId": correlation_id(), "category": "TIMEOUT"})
        return Response(status, {"status": "error", "message": "internal error",
                                 "correlationId": correlation_id(), "category": "INTERNAL_ERROR"})

    # ------------------------------------------------------------------ routing
    ROUTES = [
        ("POST", re.compile(r"^/crm/v3/objects/([^/]+)/batch/(create|update|upsert|read|archive)$"), "batch"),
        ("GET", re.compile(r"^/crm/v3/objects/([^/]+)$"), "list"),
        ("GET", re.compile(r"^/crm/v3/objects/([^/]+)/([^/]+)$"), "get"),
        ("GET", re.compile(r"^/crm/v3/properties/([^/]+)$"), "props"),
        ("GET", re.compile(r"^/crm/v3/properties/([^/]+)/([^/]+)$"), "prop"),
        ("POST", re.compile(r"^/crm/v3/objects/([^/]+)/search$"), "search"),
    ]

    # the date-based API versions (/crm/objects/2026-03/..., the same calls
    # and bodies in HubSpot's specs) are served as v3
    DATED = re.compile(r"^/crm/(objects|properties)/\d{4}-\d{2}/")

    def handle_api(self, req):
        r = hubspot_lists.handle_api(self, req, req.path)
        if r is not None:
            return r
        assoc = hubspot_assoc.route(req)
        if assoc is not None:
            return self.handle_assoc(req, *assoc)
        route = None
        path = self.DATED.sub(lambda m: "/crm/v3/%s/" % m.group(1), req.path)
        for method, rx, name in self.ROUTES:
            m = rx.match(path)
            if m and req.method == method:
                route = (name, m.groups())
                break
        if route is None:
            req.info["endpoint"] = "%s %s" % (req.method, req.path)
        else:
            name, g = route
            req.info["endpoint"] = {
                "batch": "POST /crm/v3/objects/%s/batch/%s" % g if name == "batch" else "",
                "list": "GET /crm/v3/objects/%s" % g[0],
                "get": "GET /crm/v3/objects/%s/{id}" % g[0],
                "props": "GET /crm/v3/properties/%s" % g[0],
                "prop": "GET /crm/v3/properties/%s/{name}" % g[0],
                "search": "POST /crm/v3/objects/%s/search" % g[0],
            }[name]
        token, refusal = self.admit(req)
        headers = self.rate_headers(token) if token else {}
        if refusal is not None:
            refusal.headers = dict(headers, **refusal.headers)
            return refusal
        if route is None:
            r = Response(404, {"status": "error", "message": "Not Found",
                               "correlationId": correlation_id(), "category": "OBJECT_NOT_FOUND"})
            r.headers.update(headers)
            return r
        name, g = route
        with self.lock:
            oid = self.resolve(g[0])
        if not oid:
            r = bad("Unable to infer object type from: %s" % g[0], None)
            r.headers.update(headers)
            return r
        kind = SCOPE_NAMES.get(oid, "custom")
        if name == "batch" and g[1] != "read":
            scopes = ["crm.objects.%s.write" % kind]
        elif name in ("props", "prop"):
            scopes = ["crm.schemas.%s.read" % kind]
        else:
            scopes = ["crm.objects.%s.read" % kind]
        r = self.check_scope(token, scopes)
        if r is None:
            r = common.fault_wrapper(self, req, lambda: self.dispatch(req, name, g, oid))
        if r is not DROP:
            r.headers = dict(headers, **r.headers)
        return r

    def handle_assoc(self, req, name, g):
        """associations v4 (hubspot_assoc.py): auth, rate limits,
        scopes and faults as every other call"""
        req.info["endpoint"] = hubspot_assoc.endpoint(name, g)
        token, refusal = self.admit(req)
        headers = self.rate_headers(token) if token else {}
        if refusal is None:
            with self.lock:
                oid = self.resolve(g[0] if name == "search" else g[1])
            refusal = self.check_scope(token, hubspot_assoc.scopes(name, g, oid)) if oid else None
        r = refusal or common.fault_wrapper(self, req,
                                            lambda: hubspot_assoc.dispatch(self, req, name, g))
        if r is not DROP:
            r.headers = dict(headers, **r.headers)
        return r

    def dispatch(self, req, name, g, oid):
        try:
            if name == "props":
                with self.lock:
                    return Response(200, {"results": [self.clean_prop(p) for p in self.schemas[oid]["properties"]]})
            if name == "prop":
                with self.lock:
                    p = self.props(oid).get(g[1])
                if not p:
                    return bad("Unable to find property %s" % g[1], "OBJECT_NOT_FOUND", 404)
                return Response(200, self.clean_prop(p))
            if name == "list":
                return self.op_list(req, oid)
            if name == "get":
                return self.op_get(req, oid, g[1])
            if name == "search":
                return hubspot_search.search(self, req, oid, req.info.get("token"))
            try:
                body = req.json()
            except ValueError as e:
                return bad("Invalid input JSON on line 1, column 1: %s" % e)
            if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
                return bad("Invalid input JSON on line 1, column 2: Cannot build BatchInput, some of "
                           "required attributes are not set [inputs]")
            inputs = body["inputs"]
            req.info["inputs"] = len(inputs)
            if self.knobs["log_properties"]:
                # the values exactly as retl sent them (the records hold
                # them normalized): tests of value formats read these
                req.info["properties"] = [i.get("properties") if isinstance(i, dict) else None
                                          for i in inputs]
            if len(inputs) > int(self.knobs["max_batch"]):
                return bad("The maximum number of inputs supported in a batch is %d. Please reduce the "
                           "number of items and try again" % int(self.knobs["max_batch"]))
            for inp in inputs:
                if not isinstance(inp, dict):
                    return bad("Invalid input JSON: each input must be an object")
            why = self.spec_violation(g[1], body, inputs)
            if why:
                return bad("Invalid input JSON on line 1, column 1: " + why)
            op = getattr(self, "op_" + g[1])
            with self.lock:
                self._index = {}
                return op(oid, body, inputs)
        except ValidationFailure as f:
            return f.resp

    @staticmethod
    def spec_violation(verb, body, inputs):
        """What a batch body breaks in HubSpot's published spec (crm-objects
        v3: BatchInputSimplePublicObjectInputForCreate, BatchReadInput...,
        BatchInputSimplePublicObjectBatchInput[Upsert]), or None.  The spec
        types every property value as a string, requires "associations" on a
        create and "properties" and "propertiesWithHistory" on a read."""
        if verb == "read":
            for k in ("properties", "propertiesWithHistory"):
                if not isinstance(body.get(k), list):
                    return ("Cannot build BatchReadInputSimplePublicObjectId, some of "
                            "required attributes are not set [%s]" % k)
            return None
        for inp in inputs:
            if verb == "create" and not isinstance(inp.get("associations"), list):
                return ("Cannot build SimplePublicObjectInputForCreate, some of required "
                        "attributes are not set [associations]")
            if verb in ("update", "upsert", "archive") and not isinstance(inp.get("id"), str):
                return "Cannot build SimplePublicObjectId, some of required attributes are not set [id]"
            props = inp.get("properties")
            if verb == "archive":
                continue
            if not isinstance(props, dict):
                return "some of required attributes are not set [properties]"
            for k, v in props.items():
                if not isinstance(v, str):
                    return ("property values are strings: %s is %s" %
                            (k, json.dumps(v)))
        return None

    @staticmethod
    def clean_prop(p):
        return {k: v for k, v in p.items() if not k.startswith("_")}

    # ------------------------------------------------------------------ values
    @staticmethod
    def to_str(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        return str(v)

    def check_value(self, p, raw):
        """-> (normalized string, None) or (None, (code, message))"""
        v = self.to_str(raw)
        if v == "":
            return "", None  # an empty string clears the property
        name, t = p["name"], p["type"]
        if v in set(map(str, self.knobs["reject_values"] or [])):
            if name == "email" or "email" in name:
                return None, ("INVALID_EMAIL", "Email address %s is invalid" % v)
            return None, ("INVALID_OPTION", "%s was not one of the allowed options" % v)
        if name == "email" and not EMAIL_RE.match(v):
            return None, ("INVALID_EMAIL", "Email address %s is invalid" % v)
        if name == "email":
            # HubSpot keeps a contact's email lowercased and finds a
            # contact by email without case (the destination relies on it)
            return v.strip().lower(), None
        if t == "number":
            if p.get("_integer"):
                if not INT_RE.match(v.strip()):
                    return None, ("INVALID_INTEGER", "%s was not a valid integer." % v)
                return str(int(v)), None
            if not NUM_RE.match(v.strip()):
                return None, ("INVALID_DECIMAL", "%s was not a valid number." % v)
            return v.strip(), None
        if t == "bool":
            if v.lower() not in ("true", "false"):
                return None, ("INVALID_OPTION", "%s was not one of the allowed options: [true, false]" % v)
            return v.lower(), None
        if t == "enumeration":
            allowed = [o["value"] for o in p["options"]]
            vals = v.split(";") if p["fieldType"] == "checkbox" else [v]
            for x in vals:
                if x not in allowed:
                    return None, ("INVALID_OPTION", "%s was not one of the allowed options: [%s]"
                                  % (x, ", ".join(allowed)))
            return v, None
        if t == "date":
            # HubSpot's CRM properties guide ("Property type and fieldType
            # values", type date): "Values must be represented in UTC time
            # and can be formatted as ISO 8601 strings or EPOCH-timestamps in
            # milliseconds (i.e. midnight UTC)"; its timestamps FAQ: a date
            # "must be set to midnight UTC ... If you try to set a value that
            # is not midnight UTC, you will receive an error" - observed as
            # "N is at H:M:S.ms UTC, not midnight!" (quoted above).  So
            # accepted: YYYY-MM-DD, an ISO 8601 date-time at midnight UTC,
            # epoch ms at midnight UTC; nothing else.
            m = ISO_RE.match(v)
            if m and (m.group(4), m.group(5), m.group(6) or "00") == ("00", "00", "00") \
                    and not (m.group(7) or "0").strip("0") and m.group(8) in ("Z", "+00:00", "+0000"):
                v = v[:10]
            elif m:
                return None, ("INVALID_DATE", "%s is not a valid date" % v)
            if DATE_RE.match(v):
                try:
                    time.strptime(v, "%Y-%m-%d")
                except ValueError:
                    return None, ("INVALID_DATE", "%s is not a valid date" % v)
                return v, None
            if INT_RE.match(v):
                ms = int(v)
                if ms % 86400000:
                    rem = ms % 86400000
                    h, m, s = rem // 3600000, rem // 60000 % 60, rem // 1000 % 60
                    return None, ("INVALID_DATE", "%s is at %d:%d:%d.%d UTC, not midnight!"
                                  % (v, h, m, s, rem % 1000))
                return time.strftime("%Y-%m-%d", time.gmtime(ms // 1000)), None
            return None, ("INVALID_DATE", "%s is not a valid date" % v)
        if t == "datetime":
            if INT_RE.match(v):
                return iso_ms(int(v) / 1000.0), None
            m = ISO_RE.match(v)
            if m:
                return v, None
            if DATE_RE.match(v):
                return v + "T00:00:00.000Z", None
            return None, ("INVALID_DATETIME", "%s is not a valid datetime" % v)
        return v, None

    def validate_props(self, oid, properties, errs, allow_read_only=False):
        """Validate one input's properties; append [{name, code, message}] to errs.
        -> normalized dict"""
        defs = self.props(oid)
        out = {}
        if not isinstance(properties, dict):
            errs.append({"name": "properties", "code": "INVALID_INPUT", "message": "properties must be an object"})
            return out
        for k, raw in properties.items():
            p = defs.get(k)
            if p is None:
                errs.append({"name": k, "code": "PROPERTY_DOESNT_EXIST",
                             "message": 'Property "%s" does not exist' % k})
                continue
            if p["modificationMetadata"]["readOnlyValue"] and not allow_read_only:
                errs.append({"name": k, "code": "READ_ONLY_VALUE",
                             "message": 'Property "%s" is read-only' % k})
                continue
            v, err = self.check_value(p, raw)
            if err:
                errs.append({"name": k, "code": err[0], "message": err[1]})
            else:
                out[k] = v
        return out

    def property_error(self, errs):
        inner = [{"isValid": False, "message": e["message"], "error": e["code"], "name": e["name"],
                  "localizedErrorMessage": e["message"], "portalId": 12345678} for e in errs]
        msg = "Property values were not valid: " + json.dumps(inner, separators=(",", ":"))
        if not self.knobs["validation_errors_array"]:
            # the shape many real answers quoted in public code have: the
            # list only inside the message, no errors[]
            raise ValidationFailure(bad(msg))
        raise ValidationFailure(bad(
            msg,
            errors=[{"message": e["message"], "code": e["code"], "context": {"propertyName": [e["name"]]}}
                    for e in errs]))

    # ------------------------------------------------------------------ records
    def create_record(self, oid, props):
        rid = self.new_id()
        now = iso_ms(time.time())
        rec = {"id": rid, "properties": dict(props), "createdAt": now, "updatedAt": now, "archived": False}
        self.records[oid][rid] = rec
        for (o, prop), idx in self._index.items():
            if o == oid and prop in rec["properties"]:
                idx.setdefault(rec["properties"][prop], rid)
        return rec

    def update_record(self, oid, rec, props):
        for k, v in props.items():
            if v == "":
                rec["properties"].pop(k, None)
            else:
                rec["properties"][k] = v
        rec["updatedAt"] = iso_ms(time.time())

    def public(self, rec, keys, oid):
        """Record as the API returns it.  keys=None -> all properties."""
        s = self.schemas[oid]
        sysvals = {"hs_object_id": rec["id"], "createdate": rec["createdAt"], s["modified"]: rec["updatedAt"]}
        if keys is None:
            props = dict(rec["properties"])
        else:
            props = {k: rec["properties"].get(k) for k in keys}
        props.update(sysvals)
        return {"id": rec["id"], "properties": props, "createdAt": rec["createdAt"],
                "updatedAt": rec["updatedAt"], "archived": rec["archived"]}

    def find_by(self, oid, prop_name, value):
        if prop_name in (None, "", "hs_object_id"):
            return self.records[oid].get(str(value))
        if prop_name == "email":
            value = str(value).strip().lower()
        # an index per (object, property), rebuilt for every batch request
        # (dispatch clears it): a linear scan per input made 30,000-record
        # syncs slower than the real API
        idx = self._index.get((oid, prop_name))
        if idx is None:
            idx = {}
            for rec in self.records[oid].values():
                v = rec["properties"].get(prop_name)
                if v is not None:
                    idx.setdefault(v, rec["id"])
            self._index[(oid, prop_name)] = idx
        rid = idx.get(str(value))
        rec = self.records[oid].get(rid) if rid is not None else None
        if rec is not None and rec["properties"].get(prop_name) == str(value):
            return rec
        if rid is not None:     # stale: fall back to the scan
            for rec in self.records[oid].values():
                if rec["properties"].get(prop_name) == str(value):
                    return rec
        return None

    def unique_props(self, oid):
        return [p["name"] for p in self.schemas[oid]["properties"]
                if p["hasUniqueValue"] or (oid == "0-1" and p["name"] == "email")]

    def check_id_property(self, oid, idp):
        if idp in (None, "", "hs_object_id"):
            return
        defs = self.props(oid)
        if idp not in defs:
            raise ValidationFailure(bad('Property "%s" does not exist' % idp,
                                        errors=[{"message": 'Property "%s" does not exist' % idp,
                                                 "code": "PROPERTY_DOESNT_EXIST",
                                                 "context": {"propertyName": [idp]}}]))
        if idp not in self.unique_props(oid):
            raise ValidationFailure(bad("%s is not a unique property; idProperty must refer to a "
                                        "property with unique values" % idp,
                                        errors=[{"message": "idProperty must be a unique property",
                                                 "code": "INVALID_ID_PROPERTY",
                                                 "context": {"propertyName": [idp]}}]))

    def check_duplicates(self, ids):
        seen, dups = set(), []
        for i in ids:
            if i in seen and i not in dups:
                dups.append(i)
            seen.add(i)
        if dups:
            raise ValidationFailure(bad("Duplicate IDs found in batch input: [%s]. IDs must be unique"
                                        % ", ".join(dups), context={"ids": dups}))

    def unique_conflicts(self, oid, pending, exclude_ids=()):
        """pending: list of (rec_id or None, props).  409 if a unique value is taken."""
        uprops = self.unique_props(oid)
        seen = {}
        for rid, props in pending:
            for u in uprops:
                v = props.get(u)
                if not v:
                    continue
                other = self.find_by(oid, u, v)
                if other is not None and other["id"] != rid:
                    if oid == "0-1" and u == "email":
                        msg = "Contact already exists. Existing ID: %s" % other["id"]
                    else:
                        msg = "%s already has that value. Existing ID: %s" % (u, other["id"])
                    raise ValidationFailure(bad(msg, "CONFLICT", 409))
                if (u, v) in seen and seen[(u, v)] != rid:
                    raise ValidationFailure(bad("Duplicate IDs found in batch input: [%s]. IDs must be unique"
                                                % v, context={"ids": [v]}))
                seen[(u, v)] = rid

    def finish(self, results, errors=None, status=200):
        if self.knobs["shuffle_results"]:
            self.rng.shuffle(results)
        started = iso_ms(time.time())
        body = {"status": "COMPLETE", "results": results, "startedAt": started,
                "completedAt": iso_ms(time.time())}
        if errors:
            body["numErrors"] = sum(len(e.get("context", {}).get("ids", [])) or 1 for e in errors)
            body["errors"] = errors
            status = 207
        return Response(status, body)

    def not_found(self, oid, ids):
        return {"status": "error", "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some %s objects, they may be deleted or not exist. "
                           "Check that ids are valid." % self.schemas[oid]["label"],
                "context": {"ids": list(ids)}}

    # ------------------------------------------------------------------ operations
    def op_create(self, oid, body, inputs):
        errs, staged = [], []
        traced = inputs and all(isinstance(i.get("objectWriteTraceId"), str) for i in inputs)
        per_input_errs = []
        for inp in inputs:
            e = []
            props = self.validate_props(oid, inp.get("properties") or {}, e)
            staged.append(props)
            per_input_errs.append(e)
            errs.extend(e)
        if errs and not traced:
            self.property_error(errs)
        ok = [(None, p) for p, e in zip(staged, per_input_errs) if not e]
        self.unique_conflicts(oid, ok)
        results, errors = [], []
        for inp, props, e in zip(inputs, staged, per_input_errs):
            if e:
                errors.append({"status": "error", "category": "VALIDATION_ERROR",
                               "message": e[0]["message"],
                               "context": {"objectWriteTraceId": [inp["objectWriteTraceId"]]},
                               "errors": [{"message": x["message"], "code": x["code"],
                                           "context": {"propertyName": [x["name"]]}} for x in e]})
                continue
            rec = self.create_record(oid, props)
            r = self.public(rec, list(props), oid)
            if traced:
                r["objectWriteTraceId"] = inp["objectWriteTraceId"]
            results.append(r)
        return self.finish(results, errors, 201)

    def op_upsert(self, oid, body, inputs):
        errs, staged = [], []
        for inp in inputs:
            idp = inp.get("idProperty")
            if not idp:
                raise ValidationFailure(bad("idProperty is required for batch upsert",
                                            errors=[{"message": "idProperty is required",
                                                     "code": "MISSING_ID_PROPERTY", "context": {}}]))
            self.check_id_property(oid, idp)
            if inp.get("id") in (None, ""):
                raise ValidationFailure(bad("id is required for batch upsert",
                                            errors=[{"message": "id is required", "code": "MISSING_ID",
                                                     "context": {}}]))
        self.check_duplicates([self.to_str(i["id"]) for i in inputs])
        for inp in inputs:
            idp, idv = inp["idProperty"], self.to_str(inp["id"])
            props = self.validate_props(oid, inp.get("properties") or {}, errs)
            if idp != "hs_object_id":
                p = self.props(oid)[idp]
                v, err = self.check_value(p, idv)
                if err:
                    errs.append({"name": idp, "code": err[0], "message": err[1]})
                else:
                    props[idp] = v
            staged.append((idp, idv, props))
        if errs:
            self.property_error(errs)
        pending = []
        for idp, idv, props in staged:
            rec = self.find_by(oid, idp, props.get(idp, idv))
            pending.append((rec["id"] if rec else "new:" + idv, props))
        self.unique_conflicts(oid, pending)
        results = []
        for idp, idv, props in staged:
            key = props.get(idp, idv)
            rec = self.find_by(oid, idp, key)
            if rec is None:
                if idp == "hs_object_id":
                    rec = self.create_record(oid, props)  # HubSpot would create under a new id
                else:
                    rec = self.create_record(oid, props)
                new = True
            else:
                self.update_record(oid, rec, props)
                new = False
            r = self.public(rec, sorted(set(props) | ({idp} - {"hs_object_id"})), oid)
            r["new"] = new
            results.append(r)
        return self.finish(results)

    def op_update(self, oid, body, inputs):
        errs, staged = [], []
        for inp in inputs:
            idp = inp.get("idProperty")
            self.check_id_property(oid, idp)
            if inp.get("id") in (None, ""):
                raise ValidationFailure(bad("id is required for batch update",
                                            errors=[{"message": "id is required", "code": "MISSING_ID",
                                                     "context": {}}]))
        self.check_duplicates([self.to_str(i["id"]) for i in inputs])
        for inp in inputs:
            props = self.validate_props(oid, inp.get("properties") or {}, errs)
            staged.append((inp.get("idProperty"), self.to_str(inp["id"]), props))
        if errs:
            self.property_error(errs)
        found, missing = [], []
        for idp, idv, props in staged:
            rec = self.find_by(oid, idp, idv)
            if rec is None:
                missing.append(idv)
            else:
                found.append((rec, props))
        self.unique_conflicts(oid, [(rec["id"], props) for rec, props in found])
        results = []
        for rec, props in found:
            self.update_record(oid, rec, props)
            results.append(self.public(rec, sorted(props), oid))
        return self.finish(results, [self.not_found(oid, missing)] if missing else None)

    def op_read(self, oid, body, inputs):
        idp = body.get("idProperty")
        self.check_id_property(oid, idp)
        keys = body.get("properties")
        defs = self.props(oid)
        if not keys:
            keys = list(self.schemas[oid]["default_read"])
        keys = [k for k in keys if k in defs]  # unknown properties are silently omitted on read
        results, missing, seen = [], [], set()
        for inp in inputs:
            idv = self.to_str(inp.get("id"))
            rec = self.find_by(oid, idp, idv)
            if rec is None:
                missing.append(idv)
            elif rec["id"] not in seen:
                seen.add(rec["id"])
                results.append(self.public(rec, keys, oid))
        return self.finish(results, [self.not_found(oid, missing)] if missing else None)

    def op_archive(self, oid, body, inputs):
        ids = [self.to_str(i.get("id")) for i in inputs]
        missing = []
        for rid in ids:
            rec = self.records[oid].pop(rid, None)
            if rec is None:
                missing.append(rid)
            else:
                rec["archived"] = True
                rec["archivedAt"] = iso_ms(time.time())
                self.archived[oid].append(rec)
        if missing and str(self.knobs["archive_not_found"]) == "207":
            return self.finish([], [self.not_found(oid, missing)])
        return Response(204, None)

    def op_list(self, req, oid):
        try:
            limit = min(100, max(1, int(req.q("limit", "10"))))
        except ValueError:
            return bad("limit must be a number")
        after = req.q("after")
        keys = []
        for v in req.query.get("properties", []):
            keys.extend(x for x in v.split(",") if x)
        with self.lock:
            defs = self.props(oid)
            keys = [k for k in keys if k in defs] or list(self.schemas[oid]["default_read"])
            recs = sorted(self.records[oid].values(), key=lambda r: int(r["id"]))
            if after:
                recs = [r for r in recs if int(r["id"]) > int(after)]
            page = recs[:limit]
            body = {"results": [self.public(r, keys, oid) for r in page]}
            if len(recs) > limit:
                body["paging"] = {"next": {"after": str(int(page[-1]["id"])),
                                           "link": "?after=%s" % page[-1]["id"]}}
        return Response(200, body)

    def op_get(self, req, oid, rid):
        idp = req.q("idProperty")
        keys = []
        for v in req.query.get("properties", []):
            keys.extend(x for x in v.split(",") if x)
        with self.lock:
            self.check_id_property(oid, idp)
            rec = self.find_by(oid, idp, rid)
            if rec is None:
                return Response(404, {"status": "error", "message": "Object not found.  objectId are "
                                      "usually numeric.", "correlationId": correlation_id(),
                                      "context": {"id": [rid]}, "category": "OBJECT_NOT_FOUND"})
            defs = self.props(oid)
            keys = [k for k in keys if k in defs] or list(self.schemas[oid]["default_read"])
            return Response(200, self.public(rec, keys, oid))


def start(port=0, host="127.0.0.1", **knobs):
    """-> (server, base_url).  server.emulator is the HubSpotEmulator; server.shutdown() stops."""
    if "rate" in knobs and isinstance(knobs["rate"], (tuple, list)):
        knobs["rate"] = "%d/%gs" % tuple(knobs["rate"])
    if "token" in knobs:
        knobs["tokens"] = [knobs.pop("token")]
    return common.start(HubSpotEmulator, port=port, host=host, **knobs)


def _extra_args(ap):
    ap.add_argument("--token", action="append", default=None,
                    help="accepted bearer token (repeatable); default test-token")


def _knob_hook(args, knobs):
    if args.token:
        knobs["tokens"] = list(args.token)
    for k in ("missing_scopes", "reject_values"):
        if isinstance(knobs.get(k), str):
            knobs[k] = [x for x in knobs[k].split(",") if x]


if __name__ == "__main__":
    sys.exit(common.main(HubSpotEmulator, extra_args=_extra_args, knob_hook=_knob_hook))
