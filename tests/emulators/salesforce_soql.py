"""The REST query resource of the Salesforce emulator, for the one shape retl
sends (update-only by a field):

    GET /services/data/vNN.0/query?q=SELECT Id, F FROM Obj WHERE F IN (lit, ...)
    GET /services/data/vNN.0/query/{cursor}-{offset}      (nextRecordsUrl)

Rules, from Salesforce's documents:
- REST API, "Execute a SOQL Query": 200 {"totalSize", "done", "records": [{"attributes":
  {"type", "url"}, fields...}], "nextRecordsUrl" (while not done)}; up to 2,000 records an
  answer (the default batch size), the rest through nextRecordsUrl.
- SOQL and SOSL Reference: keywords are case-insensitive; "Quoted String Escape
  Sequences": string literals in single quotes, escapes \\n \\r \\t \\b \\f \\" \\' \\\\
  (any other backslash sequence is an error); numbers, true/false, null, dates and
  datetimes are unquoted; "Comparison Operators": IN takes a parenthesized,
  comma-separated list of literals; text comparisons are case-insensitive.
- A malformed statement: 400 [{"message": "...", "errorCode": "MALFORMED_QUERY"}];
  an unknown object: INVALID_TYPE "sObject type 'X' is not supported."; an unknown
  field: INVALID_FIELD "No such column 'F' on entity 'Obj'..."; a field whose describe
  says filterable false in WHERE: INVALID_FIELD "field 'F' can not be filtered in a query
  call"; a quoted value for a number or boolean field: INVALID_FIELD "value of filter
  criterion for field 'F' must be of type ... and should not be enclosed in quotes".
- REST API limits: a URI of more than 16,384 bytes is refused with 414.
Only what this shape needs is parsed; anything else is MALFORMED_QUERY.
"""

import re
import uuid
from urllib.parse import quote

from common import Response

BATCH = 2000
URI_MAX = 16384

_HEAD = re.compile(r"^\s*SELECT\s+(.+?)\s+FROM\s+(\w+)\s+WHERE\s+(\w+)\s+IN\s*\((.*)\)\s*$",
                   re.IGNORECASE | re.DOTALL)
_ESC = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_BARE = re.compile(r"-?\d+(\.\d+)?|true|false|null|\d{4}-\d\d-\d\d(T[0-9:.]+(Z|[+-]\d\d:\d\d))?",
                   re.IGNORECASE)
NUMERIC = ("double", "currency", "int", "percent", "long")


def _err(status, code, message):
    return Response(status, [{"message": message, "errorCode": code}])


def _malformed(q, why):
    return _err(400, "MALFORMED_QUERY", "%s\n%s" % (q[:200], why))


def _literals(s):
    """-> [(value, quoted)] or raises ValueError(reason)"""
    out, i, n = [], 0, len(s)
    while True:
        while i < n and s[i].isspace():
            i += 1
        if i < n and s[i] == "'":
            i += 1
            v = []
            while True:
                if i >= n:
                    raise ValueError("unterminated string literal")
                ch = s[i]
                if ch == "\\":
                    if i + 1 >= n or s[i + 1] not in _ESC:
                        raise ValueError("Invalid string literal '%s'. Illegal escape sequence"
                                         % s[i:i + 2])
                    v.append(_ESC[s[i + 1]])
                    i += 2
                    continue
                if ch == "'":
                    i += 1
                    break
                v.append(ch)
                i += 1
            out.append(("".join(v), True))
        else:
            m = _BARE.match(s, i)
            if not m:
                raise ValueError("unexpected token: '%s'" % s[i:i + 20])
            out.append((m.group(0), False))
            i = m.end()
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            return out
        if s[i] != ",":
            raise ValueError("unexpected token: '%s'" % s[i:i + 20])
        i += 1


def _same(stored, lit, quoted, ftype):
    if stored is None:
        return False
    if ftype in NUMERIC:
        try:
            return float(stored) == float(lit)
        except (TypeError, ValueError):
            return False
    if ftype == "boolean":
        return str(stored).lower() == str(lit).lower()
    return str(stored).lower() == str(lit).lower()     # text: case ignored


def query(emu, req, version, rest):
    """-> Response; emu's lock is held"""
    cursors = emu.__dict__.setdefault("soql_cursors", {})
    m = re.match(r"^query/([0-9A-Za-z]+)-(\d+)$", rest)
    if m:
        recs = cursors.get(m.group(1))
        if recs is None:
            return _err(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return _page(version, m.group(1), recs, int(m.group(2)))
    q = req.q("q")
    if q is None:
        return _malformed("", "missing the q parameter")
    if len(req.path) + len(quote(q, safe="")) + 3 > URI_MAX:
        return Response(414, None)
    h = _HEAD.match(q)
    if not h:
        return _malformed(q, "unexpected token: the statement is not SELECT ... FROM ... "
                          "WHERE f IN (...)")
    fields = [f.strip() for f in h.group(1).split(",")]
    obj, where = h.group(2), h.group(3)
    if not all(re.match(r"^\w+$", f) for f in fields):
        return _malformed(q, "unexpected token: '%s'" % h.group(1))
    if obj not in emu.schemas:
        return _err(400, "INVALID_TYPE", "sObject type '%s' is not supported." % obj)
    desc = {f["name"].lower(): f for f in emu.schemas[obj]}
    for f in fields + [where]:
        if f.lower() not in desc:
            return _err(400, "INVALID_FIELD", "No such column '%s' on entity '%s'. If you are "
                        "attempting to use a custom field, be sure to append the '__c' after the "
                        "custom field name." % (f, obj))
    wf = desc[where.lower()]
    if not wf.get("filterable", True):
        return _err(400, "INVALID_FIELD", "field '%s' can not be filtered in a query call"
                    % wf["name"])
    try:
        lits = _literals(h.group(4))
    except ValueError as e:
        return _malformed(q, str(e))
    if not lits:
        return _malformed(q, "unexpected token: ')'")
    for v, quoted in lits:
        if quoted and wf["type"] in NUMERIC + ("boolean",):
            return _err(400, "INVALID_FIELD", "value of filter criterion for field '%s' must be "
                        "of type %s and should not be enclosed in quotes"
                        % (wf["name"], wf["type"]))
    names = [desc[f.lower()]["name"] for f in fields]
    recs = []
    for rid, r in emu.records[obj].items():
        if any(_same(r.get(wf["name"]), v, qd, wf["type"]) for v, qd in lits):
            rec = {"attributes": {"type": obj,
                                  "url": "/services/data/v%s/sobjects/%s/%s" % (version, obj, rid)}}
            for n in names:
                rec[n] = r.get(n)
            recs.append(rec)
    cur = uuid.uuid4().hex[:15]
    if len(recs) > BATCH:
        cursors[cur] = recs
    return _page(version, cur, recs, 0)


def _page(version, cur, recs, start):
    part = recs[start:start + BATCH]
    done = start + BATCH >= len(recs)
    body = {"totalSize": len(recs), "done": done, "records": part}
    if not done:
        body["nextRecordsUrl"] = "/services/data/v%s/query/%s-%d" % (version, cur, start + BATCH)
    return Response(200, body)
