"""A small, strict evaluator of Airtable formulas, for filterByFormula in the
Airtable emulator (tests/emulators/airtable.py).  Standard library only.

What it takes (the shapes a client such as retl sends to find records, from
Airtable's formula field reference and "List records" documentation):
  * field references {Field name}, with \\} and \\\\ escaping inside;
  * string literals in single or double quotes, with backslash escapes
    (\\' \\" \\\\ \\n \\r \\t; public escaping helpers for the Web API, e.g.
    mrcoles' "How to escape variables in formulas with the Airtable API",
    escape quotes, backslashes and newlines so);
  * numbers (123, -4.5);
  * the operators = (comparison) and & (concatenation), & binding tighter;
  * the functions AND(), OR() (one or more arguments) and LOWER(x).
Anything else (another function, an unknown field, a syntax error) is refused
as Airtable refuses a formula it cannot evaluate: 422 INVALID_FILTER_BY_FORMULA
(the type is Airtable's; the message texts are chosen, see airtable.py).

Semantics: a field's value is its cell (absent: blank).  = compares numbers by
value when both sides are numbers, else both sides as text (blank is "");
text comparison is exact (chosen: Airtable documents no case folding for =,
and clients that want it write LOWER()).  A record passes when the formula's
value is true, a non-zero number or a non-empty string.
"""

import re

UNKNOWN = "The formula for filtering records is invalid: Invalid formula. Please check your formula text."

_NUM = re.compile(r"-?\d+(\.\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESC = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"'}
FUNCTIONS = {"AND", "OR", "LOWER"}


class FormulaError(Exception):
    """the message of Airtable's INVALID_FILTER_BY_FORMULA"""


class _Parser:
    def __init__(self, text, fields):
        self.s = text
        self.i = 0
        self.fields = fields

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self):
        self.ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, c):
        if self.peek() != c:
            raise FormulaError(UNKNOWN)
        self.i += 1

    def parse(self):
        node = self.comparison()
        if self.peek():
            raise FormulaError(UNKNOWN)
        return node

    def comparison(self):
        left = self.concat()
        if self.peek() == "=":
            self.i += 1
            return ("=", left, self.concat())
        return left

    def concat(self):
        node = self.atom()
        while self.peek() == "&":
            self.i += 1
            node = ("&", node, self.atom())
        return node

    def string(self, q):
        self.i += 1
        out = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < len(self.s):
                out.append(_ESC.get(self.s[self.i + 1], self.s[self.i + 1]))
                self.i += 2
                continue
            if c == q:
                self.i += 1
                return ("str", "".join(out))
            out.append(c)
            self.i += 1
        raise FormulaError(UNKNOWN)

    def field(self):
        self.i += 1
        out = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if c == "}":
                self.i += 1
                name = "".join(out)
                if name not in self.fields:
                    raise FormulaError("Unknown field names: %s" % name.lower())
                return ("field", name)
            out.append(c)
            self.i += 1
        raise FormulaError(UNKNOWN)

    def atom(self):
        c = self.peek()
        if c in ("'", '"'):
            return self.string(c)
        if c == "{":
            return self.field()
        m = _NUM.match(self.s, self.i)
        if m:
            self.i = m.end()
            return ("num", float(m.group(0)))
        m = _NAME.match(self.s, self.i)
        if not m or m.group(0).upper() not in FUNCTIONS:
            raise FormulaError(UNKNOWN)
        self.i = m.end()
        name = m.group(0).upper()
        self.expect("(")
        args = [self.comparison()]
        while self.peek() == ",":
            self.i += 1
            args.append(self.comparison())
        self.expect(")")
        if name == "LOWER" and len(args) != 1:
            raise FormulaError(UNKNOWN)
        return (name, args)


def compile_formula(text, field_names):
    """-> a function(fields dict) -> bool; raises FormulaError"""
    node = _Parser(text, set(field_names)).parse()
    return lambda fields: _truthy(_eval(node, fields))


def _text(v):
    if v is None or v is False:
        return ""
    if v is True:
        return "1"
    if isinstance(v, float) and v == int(v):
        return str(int(v))
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v)
    return str(v)


def _truthy(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    return bool(_text(v))


def _eval(node, fields):
    kind = node[0]
    if kind in ("str", "num"):
        return node[1]
    if kind == "field":
        return fields.get(node[1])
    if kind == "&":
        return _text(_eval(node[1], fields)) + _text(_eval(node[2], fields))
    if kind == "=":
        a, b = _eval(node[1], fields), _eval(node[2], fields)
        num = (int, float)
        if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) \
                and not isinstance(b, bool):
            return float(a) == float(b)
        return _text(a) == _text(b)
    if kind == "LOWER":
        return _text(_eval(node[1][0], fields)).lower()
    if kind == "AND":
        return all(_truthy(_eval(x, fields)) for x in node[1])
    if kind == "OR":
        return any(_truthy(_eval(x, fields)) for x in node[1])
    raise FormulaError(UNKNOWN)
