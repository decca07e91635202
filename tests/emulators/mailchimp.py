#!/usr/bin/env python3
"""Mailchimp Marketing API v3 emulator for retl's tests (Python 3 standard library only).

Start:  python3 tests/emulators/mailchimp.py --port 0 [--api-key KEY] [--knob VALUE ...]
        -> prints "listening on http://127.0.0.1:PORT", serves until SIGTERM.
In-process:  server, url = mailchimp.start(port=0, **knobs); ...; server.shutdown()
The API lives under /3.0 (as on https://usN.api.mailchimp.com/3.0): point retl's
base_url at url + "/3.0".

API served (HTTP basic auth, any user name, the API key as password; or "Bearer KEY"):
  GET    /3.0/ping                                   {"health_status": "Everything's Chimpy!"}
  GET    /3.0/lists/{list_id}                        the audience, or 404
  GET    /3.0/lists/{list_id}/merge-fields           {"merge_fields": [...], total_items}
  POST   /3.0/lists/{list_id}                        batch subscribe (<= 500 members)
  GET    /3.0/lists/{list_id}/members[?count&offset]
  GET|PUT|PATCH|DELETE /3.0/lists/{list_id}/members/{subscriber_hash}   (DELETE archives)
  POST   /3.0/lists/{list_id}/members/{hash}/tags    {"tags": [{name, status}]} -> 204
  POST   /3.0/lists/{list_id}/members/{hash}/actions/delete-permanent      -> 204
  Segments (static segments, i.e. tags: members added and removed): mailchimp_segments.py

The contract is Mailchimp's published spec, marketing 3.0.85 (OpenAPI conversion, patched
copy in tests/specs/mailchimp/, origin and licence in its README.md; its paths name the
parameters {listId}/{subscriberHash} and have no /3.0 prefix).  It is read once, at import.

Request bodies: every body of an operation above (batch subscribe: schema
MembersToSubscribeUnsubscribeTofromAListInBatch, members AddListMembers, maxItems 500;
PUT: AddListMembers2; PATCH: AddListMembers3; tags: MemberTags) is validated against the
request schema the spec gives that operation (tests/emulators/schema.py: $ref, type,
required, enum, maxItems, properties, items, additionalProperties, anyOf/oneOf).  A
violation refuses the whole request as Mailchimp does: 400 application/problem+json,
title "Invalid Resource", detail "The resource submitted could not be validated. For
field-specific details, see the 'errors' array.", errors [{"field": "members.item:0.status",
"message": ...}].  Properties a schema does not declare are accepted (the spec allows them)
and have no effect: the emulator reads only documented fields.

Semantics (from the spec unless marked "chosen"):
  * Batch subscribe: a member is AddListMembers (status, no status_if_new: ignored when
    sent).  tags (a list of names), missing from the spec's member, are documented by the
    release note "Added ability to sync tags to existing members" (2022-01-24): added to
    new members, and to existing ones with update_existing; sync_tags replaces them.  A new address without `status` is refused for that
    member: errors[] {"error": "The value you selected is not a valid choice", field
    "status", field_message the same, error_code ERROR_GENERIC} (a public report quotes
    "status: The value you selected is not a valid choice"; the exact split between error
    and field_message is chosen).  update_existing true: existing members are updated and
    their status changes when `status` is given ("Whether this batch operation will change
    existing members' subscription status"); without it an existing member is
    ERROR_CONTACT_EXISTS.
  * PUT members/{hash} "Add or update list member" (AddListMembers2): email_address and
    status_if_new are required by the schema; a new address gets `status` if given, else
    status_if_new; an existing member's status changes only if `status` is given
    (status_if_new: "required only if the email address is not already present on the
    list").  tags are not a field of PUT: ignored.  The hash must be the MD5 of the
    lowercased address (chosen message: "The subscriber hash does not match the email
    address").  Answers 200 with the member (tags [{id, name}], status, ...).
  * PATCH members/{hash} "Update list member" (AddListMembers3): members only (404
    otherwise), status only if given; a changed email_address is not applied (chosen).
  * POST members/{hash}/tags "Add or remove member tags" (MemberTags): active adds,
    inactive removes; is_syncing only affects automations (none here); 204; 404 for a
    non-member.
  * DELETE members/{hash} archives; actions/delete-permanent forgets the address.

Members are indexed by subscriber hash (MD5 of the lowercased address), so a
20,000-member sync costs the emulator next to nothing.

Knobs (besides common.py's latency / slow / 5xx / drop knobs):
  api_key          the key the emulator accepts
  max_connections  simultaneous connections allowed (10); a request that arrives while
                   more are open gets Mailchimp's 429
  force_429_rate   probability of a 429 on any API request (throttling)
  fake_patterns    regexes (searched in the lowercased address) that make an address
                   "look fake or invalid"

Control (no auth):  common /_emulator/config, /counters, /reset; plus
  GET  /_emulator/members/{list_id}   -> {"members": [...every member, archived ones with
                                          status "archived"], "forgotten": [addresses]}
  POST /_emulator/members/{list_id}   {"members": [{email_address, status, merge_fields?,
                                      tags?: [names]}]}  seed members (no validation)
  POST /_emulator/lists               {"id", "name"?, "merge_fields"?: [...]}  create/replace
  POST /_emulator/merge-fields/{list_id}  {tag, name?, type, required?, options?} (or a list
                                      under "merge_fields")
  POST /_emulator/compliance/{list_id} {"email_address": ...}  the address is in a
                                      compliance state (cannot be subscribed again)
  counters["extra"]: open_connections, max_open_connections (counted by this emulator,
  the moment it accepts and the moment it closes a connection), members_created,
  members_updated, batch_errors.

Checked against Mailchimp material (search tool):
  * problem+json error bodies {type, title, status, detail, instance}, type
    "https://mailchimp.com/developer/marketing/docs/errors/" (Mailchimp's "Errors" page and
    recorded live responses in client test fixtures).
  * 401 "API Key Invalid" / "Your API key may be invalid, or you've attempted to access the
    wrong datacenter."; 404 "Resource Not Found".
  * 429 "Too Many Requests" / "You have exceeded the limit of 10 simultaneous connections."
    (Mailchimp's error glossary as quoted by several clients).
  * 400 "Invalid Resource" with errors[{field, message}], messages "Schema describes object,
    array found instead" (field "" for the root), "Data did not match any of the schemas
    described in anyOf." (quoted by users); "Data presented is not one of the accepted
    values: ..." (Mailchimp's wording for an enum).
  * Batch subscribe response {new_members, updated_members, errors[{email_address, error,
    error_code, field, field_message}], total_created, total_updated, error_count, _links};
    error codes ERROR_CONTACT_EXISTS and ERROR_GENERIC (the spec's response schema).
  * "X is already a list member, do you want to update? please provide update_existing:true
    in the request body" (ERROR_CONTACT_EXISTS); "X looks fake or invalid, please enter a real
    email address."; "X is in a compliance state due to unsubscribe, bounce, or compliance
    review and cannot be subscribed."; "X was permanently deleted and cannot be re-imported.
    The contact must re-subscribe to get back on the list." (title "Forgotten Email Not
    Subscribed" on PUT); "Your merge fields were invalid." with field messages "Please enter
    a value", "Please enter a number", "Please enter a complete address".
Not verified (chosen, documented here): the field path form "members.item:N.x"; the
messages "Required fields were not provided: x", "Array must have at most N items", "Data
matched more than one of the schemas described in oneOf."; the title "Member In
Compliance State"; the message for a malformed address ("Please provide a valid email
address."); the field messages for dates and choices; unknown merge field tags are
ignored, not rejected; the emulator checks merge-field values against the audience's
merge fields after the schema check.
"""

import hashlib
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mailchimp_segments  # noqa: E402
import schema  # noqa: E402
from common import Response, iso_ms  # noqa: E402

import base64  # noqa: E402

# Mailchimp's published spec (patched copy, see tests/specs/mailchimp/README.md), read
# once: every request body the emulator accepts is checked against it.
SPEC_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "specs", "mailchimp", "marketing-3.0.85.openapi.json")
SPEC = schema.Spec.load(SPEC_FILE)
# the operations with a request body that the emulator serves (spec path templates)
BODIES = {("POST", "/lists/{listId}"),
          ("PUT", "/lists/{listId}/members/{subscriberHash}"),
          ("PATCH", "/lists/{listId}/members/{subscriberHash}"),
          ("POST", "/lists/{listId}/members/{subscriberHash}/tags"),
          ("POST", "/lists/{listId}/segments"),
          ("POST", "/lists/{listId}/segments/{segmentId}")}
INVALID = ("The resource submitted could not be validated. "
           "For field-specific details, see the 'errors' array.")
NOT_A_CHOICE = "The value you selected is not a valid choice"

DEFAULT_KEY = "0123456789abcdef0123456789abcdef-us6"
DEFAULT_LIST = "a1b2c3d4e5"
ERR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
EMAIL_RE = re.compile(r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


def subscriber_hash(email):
    return hashlib.md5(email.lower().encode("utf-8")).hexdigest()


def problem(status, title, detail, errors=None, headers=None):
    body = {"type": ERR_TYPE, "title": title, "status": status, "detail": detail,
            "instance": str(uuid.uuid4())}
    if errors is not None:
        body["errors"] = errors
    return Response(status, body, headers=headers,
                    content_type="application/problem+json; charset=utf-8")


def invalid(errors):
    return problem(400, "Invalid Resource", INVALID, errors)


def not_found():
    return problem(404, "Resource Not Found", "The requested resource could not be found.")


def merge_field(tag, type_="text", name=None, required=False, options=None, merge_id=0):
    opts = dict(options or {})
    if type_ == "date":
        opts.setdefault("date_format", "MM/DD/YYYY")
    if type_ == "birthday":
        opts.setdefault("date_format", "MM/DD")
    if type_ == "phone":
        opts.setdefault("phone_format", "none")
    if type_ == "address":
        opts.setdefault("default_country", 164)
    return {"merge_id": merge_id, "tag": tag.upper(), "name": name or tag.title(),
            "type": type_, "required": bool(required), "default_value": "",
            "public": True, "display_order": merge_id + 1, "options": opts,
            "help_text": "", "list_id": ""}


def default_merge_fields():
    return [merge_field("FNAME", "text", "First Name", merge_id=1),
            merge_field("LNAME", "text", "Last Name", merge_id=2),
            merge_field("ADDRESS", "address", "Address", merge_id=3),
            merge_field("PHONE", "phone", "Phone Number", merge_id=4),
            merge_field("BIRTHDAY", "birthday", "Birthday", merge_id=5)]


class MailchimpEmulator(common.Emulator):
    NAME = "mailchimp"
    DEFAULT_KNOBS = {
        "api_key": DEFAULT_KEY,
        "max_connections": 10,
        "force_429_rate": 0.0,
        "fake_patterns": [r"^(fake|test|asdf|noone|nobody)[0-9]*@", r"@(mailinator\.com|fake\.invalid)$"],
    }

    def __init__(self, **knobs):
        self.open_conns = 0
        super().__init__(**knobs)

    # --- state
    def reset_data(self):
        self.lists = {}
        self.add_list(DEFAULT_LIST, "retl test audience", default_merge_fields())
        self._id = 0

    def on_config_change(self):
        self._fake = [re.compile(p) for p in self.knobs.get("fake_patterns") or []]

    def add_list(self, list_id, name=None, fields=None):
        fs = []
        for i, f in enumerate(fields if fields is not None else default_merge_fields()):
            f = dict(f)
            f = merge_field(f["tag"], f.get("type", "text"), f.get("name"), f.get("required", False),
                            f.get("options"), merge_id=f.get("merge_id", i + 1))
            f["list_id"] = list_id
            fs.append(f)
        self.lists[list_id] = {"id": list_id, "name": name or list_id, "merge_fields": fs,
                               "members": {}, "forgotten": set(), "compliance": set()}

    def field(self, lst, tag):
        for f in lst["merge_fields"]:
            if f["tag"] == tag.upper():
                return f
        return None

    # --- connections (called by MailchimpHandler)
    def conn_opened(self):
        with self.lock:
            self.open_conns += 1
            ex = self.counters.extra
            ex["open_connections"] = self.open_conns
            ex["max_open_connections"] = max(ex["max_open_connections"], self.open_conns)

    def conn_closed(self):
        with self.lock:
            self.open_conns -= 1
            self.counters.extra["open_connections"] = self.open_conns

    def reset(self, knobs=False):
        super().reset(knobs)
        with self.lock:
            self.counters.extra["open_connections"] = self.open_conns
            self.counters.extra["max_open_connections"] = self.open_conns

    # --- faults
    def error_body_5xx(self, status):
        return problem(status, "Internal Server Error",
                       "An unexpected internal error has occurred. Please contact Support for more information.")

    def too_many(self):
        return problem(429, "Too Many Requests",
                       "You have exceeded the limit of %d simultaneous connections."
                       % int(self.knobs["max_connections"]))

    # --- auth
    def auth_ok(self, req):
        h = req.headers.get("Authorization") or ""
        key = None
        if h.lower().startswith("basic "):
            try:
                dec = base64.b64decode(h[6:].strip()).decode("utf-8")
                key = dec.partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                key = ""
        elif h.lower().startswith("bearer ") or h.lower().startswith("apikey "):
            key = h.split(None, 1)[1].strip()
        if key is None:
            return problem(401, "API Key Missing", "Your request did not include an API key.")
        if key != self.knobs["api_key"]:
            return problem(401, "API Key Invalid",
                           "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
        return None

    # --- API
    def handle_api(self, req):
        path = req.path
        if path.startswith("/3.0"):
            path = path[4:]
        parts = [p for p in path.split("/") if p]
        req.info["endpoint"] = self.endpoint(req.method, parts)
        with self.lock:
            over = self.open_conns > int(self.knobs["max_connections"])
        if over:
            return self.too_many()
        if self.chance("force_429_rate"):
            with self.lock:
                self.counters.forced_429 += 1
            req.info["fault"] = "429"
            return self.too_many()
        bad = self.auth_ok(req)
        if bad:
            return bad
        return common.fault_wrapper(self, req, lambda: self.route(req, parts))

    @staticmethod
    def endpoint(method, parts):
        if parts[:1] == ["ping"]:
            return "GET /ping"
        if parts[:1] == ["lists"]:
            if len(parts) == 2:
                return "%s /lists/{id}" % method
            if len(parts) >= 3:
                rest = "/".join("{hash}" if i == 1 and parts[2] == "members" else p
                                for i, p in enumerate(parts[2:]))
                return "%s /lists/{id}/%s" % (method, rest)
        return "%s /%s" % (method, "/".join(parts))

    def route(self, req, parts):
        m = req.method
        if parts == ["ping"] and m == "GET":
            return Response(200, {"health_status": "Everything's Chimpy!"})
        if len(parts) < 2 or parts[0] != "lists":
            return not_found()
        with self.lock:
            lst = self.lists.get(parts[1])
            if lst is None:
                return not_found()
            bad = self.check_body(req, "/" + "/".join(parts))
            if bad:
                return bad
            if len(parts) == 2:
                if m == "GET":
                    return Response(200, self.list_body(lst))
                if m == "POST":
                    return self.batch(req, lst)
                return problem(405, "Method Not Allowed",
                               "The requested method and resource are not compatible. See the Allow header for this resource's available methods.")
            if parts[2] == "segments":
                return mailchimp_segments.route(self, req, lst, parts[2:])
            if parts[2] == "merge-fields" and len(parts) == 3 and m == "GET":
                fs = lst["merge_fields"]
                return Response(200, {"merge_fields": fs, "list_id": lst["id"], "total_items": len(fs)})
            if parts[2] == "members":
                if len(parts) == 3 and m == "GET":
                    ms = [x for x in lst["members"].values() if x["status"] != "archived"]
                    off = int(req.q("offset", 0))
                    cnt = int(req.q("count", 10))
                    return Response(200, {"members": ms[off:off + cnt], "list_id": lst["id"],
                                          "total_items": len(ms)})
                if len(parts) >= 4:
                    return self.member_route(req, lst, parts[3], parts[4:])
        return not_found()

    def list_body(self, lst):
        live = sum(1 for x in lst["members"].values() if x["status"] == "subscribed")
        return {"id": lst["id"], "web_id": 1, "name": lst["name"],
                "stats": {"member_count": live,
                          "unsubscribe_count": sum(1 for x in lst["members"].values()
                                                   if x["status"] == "unsubscribed"),
                          "merge_field_count": len(lst["merge_fields"])}}

    def member_route(self, req, lst, h, rest):
        m = req.method
        mem = lst["members"].get(h)
        live = mem is not None and mem["status"] != "archived"
        if rest == ["tags"] and m == "POST":
            if not live:
                return not_found()
            for t in req.json()["tags"]:
                if t["status"] == "inactive":
                    mem["tags"] = [x for x in mem["tags"] if x["name"] != t["name"]]
                elif not any(x["name"] == t["name"] for x in mem["tags"]):
                    mem["tags"].append({"id": self.next_id(), "name": t["name"]})
            mem["tags_count"] = len(mem["tags"])
            return Response(204)
        if rest == ["actions", "delete-permanent"] and m == "POST":
            if mem is None:
                return not_found()
            del lst["members"][h]
            lst["forgotten"].add(mem["email_address"].lower())
            return Response(204)
        if rest:
            return not_found()
        if m == "GET":
            return Response(200, mem) if live else not_found()
        if m == "DELETE":
            if not live:
                return not_found()
            mem["prior_status"] = mem["status"]
            mem["status"] = "archived"
            mem["last_changed"] = iso_ms(time.time())
            return Response(204)
        if m == "PUT":
            return self.put_member(req.json(), lst, h)
        if m == "PATCH":
            if not live:
                return not_found()
            body = dict(req.json(), email_address=mem["email_address"])
            out = self.write_member(lst, body, exists_ok=True, status_new=None,
                                    status_set=body.get("status"))
            return self.member_answer(out)
        return not_found()

    def put_member(self, body, lst, h):
        """PUT = AddListMembers2: add, or update without touching the status unless
        `status` is given; status_if_new only ever applies to a new address."""
        if subscriber_hash(body["email_address"].strip()) != h:
            return invalid([{"field": "email_address",
                             "message": "The subscriber hash does not match the email address"}])
        out = self.write_member(lst, body, exists_ok=True,
                                status_new=body.get("status") or body["status_if_new"],
                                status_set=body.get("status"))
        return self.member_answer(out)

    def member_answer(self, out):
        ex = self.counters.extra
        if "error" in out:
            errors = ([{"field": out["field"], "message": out["field_message"]}]
                      if out.get("field") else None)
            return problem(400, out.get("title", "Invalid Resource"), out["error"], errors)
        ex["members_created" if out["new"] else "members_updated"] += 1
        return Response(200, out["member"])

    def next_id(self):
        self._id += 1
        return self._id

    # --- request bodies (lock held)
    def check_body(self, req, path):
        """The body of an operation the emulator serves, checked against the request
        schema the spec gives that operation: None when valid, else Mailchimp's 400."""
        tpl, _op = SPEC.operation(req.method, path)
        if (req.method, tpl) not in BODIES:
            return None
        try:
            body = req.json()
        except ValueError as e:
            return problem(400, "JSON Parse Exception",
                           "We encountered an unspecified JSON parsing error.",
                           [{"field": "", "message": str(e)}])
        errors = SPEC.errors(SPEC.request_schema(req.method, path), body)
        if errors:
            return invalid(errors)
        if tpl == "/lists/{listId}":
            req.info["inputs"] = len(body["members"])
        return None

    # --- batch subscribe (lock held; body valid by the spec)
    def batch(self, req, lst):
        body = req.json()
        upd = body.get("update_existing") is True
        # tags: not in the spec's batch member (AddListMembers), but documented by
        # Mailchimp's release note of 2022-01-24 "Added ability to sync tags to existing
        # members": batch subscribe adds a member's tags (to existing members too, with
        # update_existing); sync_tags (with update_existing) replaces them instead.
        sync = body.get("sync_tags") is True and upd
        new, updated, errors = [], [], []
        for item in body["members"]:
            st = item.get("status")
            out = self.write_member(lst, item, exists_ok=upd, status_new=st, status_set=st)
            if "error" not in out:
                out["member"] = self.batch_tags(lst, out["member"], item.get("tags"), sync)
            if "error" in out:
                e = {"email_address": out.get("email", ""), "error": out["error"],
                     "error_code": out.get("code", "ERROR_GENERIC")}
                if out.get("field"):
                    e["field"] = out["field"]
                    e["field_message"] = out["field_message"]
                errors.append(e)
            elif out["new"]:
                new.append(out["member"])
            else:
                updated.append(out["member"])
        ex = self.counters.extra
        ex["members_created"] += len(new)
        ex["members_updated"] += len(updated)
        ex["batch_errors"] += len(errors)
        return Response(200, {"new_members": new, "updated_members": updated, "errors": errors,
                              "total_created": len(new), "total_updated": len(updated),
                              "error_count": len(errors), "_links": []})

    def batch_tags(self, lst, member, names, replace):
        """a batch member's tags (a list of names) onto the stored member; the
        answer's copy of it"""
        if not isinstance(names, list):
            return member
        names = [n for n in names if isinstance(n, str) and n]
        mem = lst["members"][member["id"]]
        if replace:
            mem["tags"] = []
        for n in dict.fromkeys(names):
            if not any(x["name"] == n for x in mem["tags"]):
                mem["tags"].append({"id": self.next_id(), "name": n})
        mem["tags_count"] = len(mem["tags"])
        return dict(mem)

    def check_merge(self, lst, mf, is_new):
        """-> (tag, field_message) of the first problem, or None"""
        for tag, v in mf.items():
            f = self.field(lst, tag)
            if f is None:
                continue  # unknown tags are ignored
            t = f["type"]
            if v is None or v == "":
                continue
            if t == "number":
                if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                    return f["tag"], "Please enter a number"
                if isinstance(v, str):
                    try:
                        float(v)
                    except ValueError:
                        return f["tag"], "Please enter a number"
            elif t == "address":
                if not isinstance(v, dict) or not all(str(v.get(k) or "").strip()
                                                      for k in ("addr1", "city", "state", "zip")):
                    return f["tag"], "Please enter a complete address"
            elif t == "date":
                if not isinstance(v, str) or not (re.match(r"^\d{4}-\d{2}-\d{2}$", v)
                                                  or re.match(r"^\d{2}/\d{2}/\d{4}$", v)):
                    return f["tag"], "Please enter a date"
            elif t == "birthday":
                if not isinstance(v, str) or not re.match(r"^\d{2}/\d{2}$", v):
                    return f["tag"], "Please enter a birthday (MM/DD)"
            elif t in ("dropdown", "radio"):
                if v not in (f["options"].get("choices") or []):
                    return f["tag"], "Please choose one of the options"
            elif isinstance(v, (dict, list)):
                return f["tag"], "Please enter a value"
        if is_new:
            for f in lst["merge_fields"]:
                if f["required"]:
                    v = mf.get(f["tag"])
                    if v is None or v == "" or v == {}:
                        return f["tag"], "Please enter a value"
        return None

    def write_member(self, lst, item, exists_ok, status_new, status_set, tags=None):
        """The one place a member is added or changed (lock held).
        item: the request's member object; only the documented fields are read
          (email_address, merge_fields, email_type, language, vip, location,
          interests, ip_signup, ip_opt; never status_if_new or tags, the callers
          decide the status);
        exists_ok: False -> an existing member is ERROR_CONTACT_EXISTS;
        status_new: the status a new address gets (None -> refused, the field
          "status" is not a valid choice);
        status_set: the status an existing member is changed to (None -> kept);
        tags: tag names that replace the member's (the control endpoint only).
        -> {"member", "new"} or {"error", "email", "code"?, "title"?, "field"?,
           "field_message"?}"""
        email = item.get("email_address")
        if not isinstance(email, str) or not EMAIL_RE.match(email.strip()):
            return {"error": "Please provide a valid email address.",
                    "email": email if isinstance(email, str) else ""}
        low = email.strip().lower()
        if any(p.search(low) for p in self._fake):
            return {"error": "%s looks fake or invalid, please enter a real email address." % email,
                    "email": email}
        h = subscriber_hash(low)
        mem = lst["members"].get(h)
        exists = mem is not None and mem["status"] != "archived"
        if exists and not exists_ok:
            return {"error": "%s is already a list member, do you want to update? please provide "
                             "update_existing:true in the request body" % email,
                    "email": email, "code": "ERROR_CONTACT_EXISTS"}
        if not exists:
            status = status_new
            if not status:
                return {"error": NOT_A_CHOICE, "email": email, "field": "status",
                        "field_message": NOT_A_CHOICE}
            if low in lst["forgotten"] and status != "pending":
                return {"error": "%s was permanently deleted and cannot be re-imported. The contact "
                                 "must re-subscribe to get back on the list." % email, "email": email,
                        "title": "Forgotten Email Not Subscribed"}
            prior = (mem or {}).get("prior_status")
            if status == "subscribed" and (low in lst["compliance"] or prior in ("unsubscribed", "cleaned")):
                return self.compliance(email)
        else:
            status = status_set
            if status == "subscribed" and (mem["status"] == "cleaned" or low in lst["compliance"]):
                return self.compliance(email)
        mf = {k.upper(): v for k, v in (item.get("merge_fields") or {}).items()}
        bad = self.check_merge(lst, mf, not exists)
        if bad:
            return {"error": "Your merge fields were invalid.", "email": email,
                    "field": bad[0], "field_message": bad[1]}
        now = iso_ms(time.time())
        if not exists:
            mem = {"id": h, "email_address": email.strip(), "unique_email_id": uuid.uuid4().hex[:10],
                   "contact_id": uuid.uuid4().hex, "email_type": "html", "status": status,
                   "merge_fields": {f["tag"]: ({"addr1": "", "addr2": "", "city": "", "state": "",
                                                "zip": "", "country": ""} if f["type"] == "address" else "")
                                    for f in lst["merge_fields"]},
                   "interests": {}, "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
                   "ip_signup": "", "timestamp_signup": now, "ip_opt": "", "member_rating": 2,
                   "language": "", "vip": False, "location": {"latitude": 0, "longitude": 0},
                   "tags": [], "tags_count": 0, "list_id": lst["id"], "last_changed": now}
            lst["members"][h] = mem
        else:
            if status:
                mem["status"] = status
            mem["last_changed"] = now
        for tag, v in mf.items():
            if self.field(lst, tag) is not None:
                mem["merge_fields"][tag] = "" if v is None else v
        for k in ("language", "email_type", "ip_signup", "ip_opt"):
            if k in item:
                mem[k] = item[k]
        if "vip" in item:
            mem["vip"] = item["vip"]
        if "location" in item:
            loc = item["location"]
            mem["location"] = {"latitude": loc.get("latitude", 0), "longitude": loc.get("longitude", 0)}
        if "interests" in item:
            mem["interests"].update(item["interests"])
        if tags is not None:
            mem["tags"] = [{"id": self.next_id(), "name": n} for n in dict.fromkeys(tags)]
            mem["tags_count"] = len(mem["tags"])
        return {"member": dict(mem), "new": not exists}

    @staticmethod
    def compliance(email):
        return {"error": "%s is in a compliance state due to unsubscribe, bounce, or compliance "
                         "review and cannot be subscribed." % email, "email": email,
                "title": "Member In Compliance State"}

    # --- control
    def handle_control(self, req):
        p = [x for x in req.path[len("/_emulator"):].split("/") if x]
        if not p:
            return None
        with self.lock:
            if p[0] == "segments":
                return mailchimp_segments.control(self, req, p)
            if p[0] == "members" and len(p) == 2:
                lst = self.lists.get(p[1])
                if lst is None:
                    return Response(404, {"error": "no list %s" % p[1]})
                if req.method == "GET":
                    return Response(200, {"members": list(lst["members"].values()),
                                          "forgotten": sorted(lst["forgotten"])})
                for m in (req.json() or {}).get("members") or []:
                    st = m.get("status", "subscribed")
                    out = self.write_member(lst, m, exists_ok=True, status_new=st, status_set=st,
                                            tags=m.get("tags"))
                    if "error" in out:
                        return Response(400, {"error": out["error"]})
                return Response(200, {"ok": True})
            if p[0] == "lists" and req.method == "POST":
                b = req.json() or {}
                self.add_list(b["id"], b.get("name"), b.get("merge_fields"))
                return Response(200, {"ok": True})
            if p[0] == "merge-fields" and len(p) == 2 and req.method == "POST":
                lst = self.lists[p[1]]
                b = req.json() or {}
                for f in b.get("merge_fields") or [b]:
                    lst["merge_fields"] = [x for x in lst["merge_fields"] if x["tag"] != f["tag"].upper()]
                    nf = merge_field(f["tag"], f.get("type", "text"), f.get("name"), f.get("required", False),
                                     f.get("options"), merge_id=len(lst["merge_fields"]) + 1)
                    nf["list_id"] = lst["id"]
                    lst["merge_fields"].append(nf)
                return Response(200, {"merge_fields": lst["merge_fields"]})
            if p[0] == "compliance" and len(p) == 2 and req.method == "POST":
                self.lists[p[1]]["compliance"].add((req.json() or {})["email_address"].lower())
                return Response(200, {"ok": True})
        return None


class MailchimpHandler(common.ApiHandler):
    """Counts connections the moment they open and close (a dropped connection
    counts as closed before the socket is shut, so a client that reconnects at
    once is never seen as an 11th)."""

    def setup(self):
        super().setup()
        self._counted = True
        self.server.emulator.conn_opened()

    def _uncount(self):
        if getattr(self, "_counted", False):
            self._counted = False
            self.server.emulator.conn_closed()

    def _drop(self):
        self._uncount()
        super()._drop()

    def finish(self):
        try:
            super().finish()
        finally:
            self._uncount()


def start(port=0, host="127.0.0.1", **knobs):
    """-> (server, base_url).  server.emulator is the MailchimpEmulator; the API is
    under base_url + "/3.0"."""
    return common.start(MailchimpEmulator, port=port, host=host, handler_cls=MailchimpHandler, **knobs)


if __name__ == "__main__":
    sys.exit(common.main(MailchimpEmulator, handler_cls=MailchimpHandler))
