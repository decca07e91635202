"""Reading a plan file (`retl plan SYNC --out FILE`, src/spool.h): a head
line, one JSON line per operation, an end line with the count and the
checksum.  ops() gives the operations; head() and tail() the other two."""

import json


def lines(path):
    """The file's lines as JSON values ([] when there is no file)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def ops(path):
    """The planned operations, in order."""
    return [l for l in lines(path) if "op" in l]


def op_lines(path):
    """The operations' lines as written (text), in order."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.startswith('{"op":')]


def head(path):
    return lines(path)[0]


def tail(path):
    return lines(path)[-1]
