"""Request bodies checked against a vendor's OpenAPI 3.0 document (standard library only).

The emulators use it to refuse what the vendor's published spec refuses, and the
conformance test (tests/conformance) to find properties retl sends that the spec does
not declare, so an emulator and the code cannot drift away from the vendor together.

    spec = schema.Spec.load("tests/specs/mailchimp/marketing-3.0.85.openapi.json")
    template, op = spec.operation("PUT", "/lists/abc/members/0f1e...")
    body_schema = spec.request_schema("PUT", "/lists/abc/members/0f1e...")
    spec.errors(body_schema, body)      -> [{"field": "status_if_new", "message": ...}, ...]
    spec.undeclared(body_schema, body)  -> ["members.item:0.tags", ...]

Keywords followed: $ref (local "#/..." only), type (integer is an int, number an int or
a float, a JSON boolean is neither), nullable, required, enum, maxItems, minItems,
properties, items, additionalProperties (schema form; `false` too), allOf, anyOf,
oneOf.  Not followed (the request bodies served do not use them, or they are not
contract points retl relies on): format, pattern, lengths, numeric bounds.

A property a schema does not declare is NOT an error (OpenAPI's default, and the
Mailchimp schemas set no `additionalProperties: false`); `undeclared()` lists them
for the stricter check.

Field paths are dotted, array items written `item:N` ("members.item:0.status"), the
root "" (as in Mailchimp's errors array).  Messages are Mailchimp's where known:
"Schema describes string, integer found instead", "Data presented is not one of the
accepted values: a, b.", "Data did not match any of the schemas described in anyOf.";
the others ("Required fields were not provided: x", "Array must have at most N
items", ...) are chosen.
"""

import json
import re


def type_name(v):
    """the JSON type of a decoded value, in Mailchimp's words"""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def has_type(v, t):
    if t == "null":
        return v is None
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "string":
        return isinstance(v, str)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    return True  # an unknown type name constrains nothing


def join(path, key):
    return "%s.%s" % (path, key) if path else str(key)


class Spec:
    """One OpenAPI 3.0 document; read it once and share it (it is never changed)."""

    def __init__(self, doc):
        self.doc = doc
        self._ops = []  # (regex, template, path item), literal paths before templated ones
        for tpl, item in doc.get("paths", {}).items():
            rx = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(tpl)) + "$")
            self._ops.append((tpl.count("{"), rx, tpl, item))
        self._ops.sort(key=lambda x: (x[0], x[2]))

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    # --- operations
    def operation(self, method, path):
        """-> (path template, operation object) for METHOD /path (no query), or (None, None)"""
        path = path.split("?", 1)[0]
        for _n, rx, tpl, item in self._ops:
            if rx.match(path):
                op = item.get(method.lower())
                if op is not None:
                    return tpl, op
        return None, None

    def request_schema(self, method, path):
        """the JSON request body schema of that operation, or None (no body documented)"""
        _tpl, op = self.operation(method, path)
        if not op:
            return None
        content = (self.resolve(op.get("requestBody") or {}).get("content") or {})
        media = content.get("application/json") or next(iter(content.values()), None)
        return (media or {}).get("schema")

    def resolve(self, s):
        seen = 0
        while isinstance(s, dict) and "$ref" in s:
            ref = s["$ref"]
            if not ref.startswith("#/"):
                raise ValueError("only local $ref are supported: %s" % ref)
            s = self.doc
            for part in ref[2:].split("/"):
                s = s[part.replace("~1", "/").replace("~0", "~")]
            seen += 1
            if seen > 64:
                raise ValueError("$ref loop at %s" % ref)
        return s

    # --- validation
    def errors(self, schema, value, field=""):
        """-> [{"field", "message"}] for every violation (empty when valid)"""
        out = []
        self._check(schema, value, field, out)
        return out

    def _check(self, s, v, field, out):
        s = self.resolve(s)
        if not isinstance(s, dict):
            return
        if v is None and s.get("nullable"):
            return
        for sub in s.get("allOf") or []:
            self._check(sub, v, field, out)
        for kw in ("anyOf", "oneOf"):
            subs = s.get(kw)
            if subs:
                ok = sum(1 for sub in subs if not self.errors(sub, v, field))
                if ok == 0 or (kw == "oneOf" and ok > 1):
                    out.append({"field": field,
                                "message": "Data did not match any of the schemas described in %s." % kw
                                if ok == 0 else
                                "Data matched more than one of the schemas described in oneOf."})
        t = s.get("type")
        if t is not None:
            types = t if isinstance(t, list) else [t]
            if not any(has_type(v, x) for x in types):
                out.append({"field": field, "message": "Schema describes %s, %s found instead"
                            % (", ".join(types), type_name(v))})
                return
        if "enum" in s and v not in s["enum"]:
            out.append({"field": field, "message": "Data presented is not one of the accepted values: %s."
                        % ", ".join(str(x) for x in s["enum"])})
        if isinstance(v, list):
            if "maxItems" in s and len(v) > s["maxItems"]:
                out.append({"field": field, "message": "Array must have at most %d items" % s["maxItems"]})
            if "minItems" in s and len(v) < s["minItems"]:
                out.append({"field": field, "message": "Array must have at least %d items" % s["minItems"]})
            if isinstance(s.get("items"), dict):
                for i, x in enumerate(v):
                    self._check(s["items"], x, join(field, "item:%d" % i), out)
        if isinstance(v, dict):
            missing = [k for k in s.get("required") or [] if k not in v]
            if missing:
                out.append({"field": field,
                            "message": "Required fields were not provided: %s" % ", ".join(missing)})
            props = s.get("properties") or {}
            extra = s.get("additionalProperties")
            for k, x in v.items():
                if k in props:
                    self._check(props[k], x, join(field, k), out)
                elif isinstance(extra, dict):
                    self._check(extra, x, join(field, k), out)
                elif extra is False:
                    out.append({"field": join(field, k),
                                "message": "The property %s is not defined" % k})

    # --- the stricter check: properties the schema does not declare
    def undeclared(self, schema, value, field=""):
        """-> dotted paths of the object properties in `value` that `schema` does not
        declare (neither under `properties` nor through an `additionalProperties`
        schema).  Inside anyOf/oneOf, the first branch the value is valid by decides;
        allOf branches declare together."""
        out = []
        self._undeclared(schema, value, field, out)
        return out

    def _branches(self, s, v):
        """the schemas that together describe v: s itself, its allOf parts, and the
        first anyOf/oneOf branch v is valid by (the first branch when none is)"""
        s = self.resolve(s)
        if not isinstance(s, dict):
            return []
        got = [s]
        for sub in s.get("allOf") or []:
            got += self._branches(sub, v)
        for kw in ("anyOf", "oneOf"):
            subs = s.get(kw) or []
            pick = next((x for x in subs if not self.errors(x, v)), subs[0] if subs else None)
            if pick is not None:
                got += self._branches(pick, v)
        return got

    def _undeclared(self, s, v, field, out):
        parts = self._branches(s, v)
        if not parts:
            return
        if isinstance(v, dict):
            for k, x in v.items():
                subs = [p["properties"][k] for p in parts if k in (p.get("properties") or {})]
                subs += [p["additionalProperties"] for p in parts
                         if k not in (p.get("properties") or {})
                         and isinstance(p.get("additionalProperties"), dict)]
                if not subs:
                    out.append(join(field, k))
                for sub in subs[:1]:
                    self._undeclared(sub, x, join(field, k), out)
        elif isinstance(v, list):
            items = next((p["items"] for p in parts if isinstance(p.get("items"), dict)), None)
            if items is not None:
                for i, x in enumerate(v):
                    self._undeclared(items, x, join(field, "item:%d" % i), out)
