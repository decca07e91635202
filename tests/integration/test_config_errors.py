"""Config errors, end to end: `retl --config DIR check` on malformed projects.

Each row of CASES is one broken project and the exact message retl must
print: the message is a line of stderr on its own, and the exit code is 2
(usage or config error), decided before any database connection is tried.
The messages are part of the product, so they are compared whole.

Python 3 standard library + pytest only.
"""
import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RETL_BIN = os.environ.get("RETL_BIN", str(REPO / "retl"))

DSN = "host=/nonexistent dbname=x"

RETL = {
    "sources": {"wh": {"type": "postgres", "dsn": DSN}},
    "destinations": {"out": {"type": "file", "path": "out.jsonl"}},
}

SYNC = {
    "source": "wh",
    "query": "SELECT id, email FROM customers",
    "key": "id",
    "destination": "out",
    "fields": {"id": "id", "email": "email"},
}

DELETE = object()


def merged(base, **changes):
    """base with top-level keys replaced (DELETE removes one)"""
    out = json.loads(json.dumps(base))
    for k, v in changes.items():
        if v is DELETE:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def retl(**changes):
    return json.dumps(merged(RETL, **changes), indent=2) + "\n"


def source(**changes):
    return retl(sources={"wh": merged(RETL["sources"]["wh"], **changes)})


def dest(**changes):
    return retl(destinations={"out": merged(RETL["destinations"]["out"], **changes)})


def sync(**changes):
    return json.dumps(merged(SYNC, **changes), indent=2) + "\n"


def fields(f):
    return sync(fields=f)


GOOD_RETL = retl()
GOOD_SYNC = sync()

# (id, retl.json text or None for no file, mappings/x.json text or None, message)
CASES = [
    # --- JSON syntax: file:line:column from jansson ---
    ("syntax-trailing-comma", '{\n  "sources": {},\n}\n', None,
     "retl.json:3:1: string or '}' expected near '}'"),
    ("syntax-duplicate-key", '{"state": "a",\n "state": "b"}\n', None,
     "retl.json:2:8: duplicate object key near '\"state\"'"),
    ("syntax-empty-file", "", None,
     "retl.json:1:0: '[' or '{' expected near end of file"),
    ("syntax-sync-missing-comma", GOOD_RETL,
     '{\n  "source": "wh",\n  "query": "SELECT 1"\n  "key": "id"\n}\n',
     "mappings/x.json:4:7: '}' expected near '\"key\"'"),
    ("syntax-sync-unterminated-string", GOOD_RETL,
     '{\n  "source": "wh,\n  "query": "q"\n}\n',
     "mappings/x.json:2:16: unexpected newline near '\"wh,'"),
    ("syntax-sync-bare-word", GOOD_RETL,
     '{"source": wh}\n',
     "mappings/x.json:1:13: invalid token near 'wh'"),
    ("syntax-sync-duplicate-field", GOOD_RETL,
     '{"fields": {\n  "id": "id",\n  "id": "email"}}\n',
     "mappings/x.json:3:6: duplicate object key near '\"id\"'"),
    ("top-level-array", "[]\n", None,
     "retl.json: expected a JSON object at the top level"),
    ("sync-top-level-array", GOOD_RETL, '["source"]\n',
     "mappings/x.json: expected a JSON object at the top level"),

    # --- retl.json: unknown keys ---
    ("unknown-top-key", retl(sorces={}), None,
     "retl.json: sorces: unknown key (expected one of state, sources, destinations, notify)"),
    ("unknown-source-key", source(dsnn="x"), None,
     "retl.json: sources.wh.dsnn: unknown key (expected one of type, dsn, statement_timeout, connect_timeout, read, audit, audit_retention, state_schema)"),
    ("unknown-dest-key", dest(paht="x"), None,
     "retl.json: destinations.out.paht: unknown key (expected one of type, base_url, path, batch_size)"),
    ("file-batch-size-zero", dest(batch_size=0), None,
     "retl.json: destinations.out.batch_size: expected a positive integer"),
    ("file-batch-size-too-big", dest(batch_size=100001), None,
     "retl.json: destinations.out.batch_size: at most 100000 rows a batch"),

    # --- retl.json: types and values ---
    ("state-not-string", retl(state=5), None,
     "retl.json: state: expected a non-empty string"),
    ("sources-not-object", retl(sources=["wh"]), None,
     "retl.json: sources: expected an object of {name: {type, dsn, ...}}"),
    ("source-not-object", retl(sources={"wh": DSN}), None,
     "retl.json: sources.wh: expected an object with type, dsn, statement_timeout, connect_timeout, read"),
    ("source-dsn-missing", source(dsn=DELETE), None,
     "retl.json: sources.wh.dsn: missing (required)"),
    ("source-dsn-not-string", source(dsn=5432), None,
     "retl.json: sources.wh.dsn: expected a non-empty string"),
    ("source-type-unknown", source(type="mysql"), None,
     'retl.json: sources.wh.type: unknown source type "mysql" (expected one of postgres, redshift)'),
    ("source-read-unknown", source(read="cursors"), None,
     'retl.json: sources.wh.read: unknown read path "cursors" (expected one of auto, copy, cursor)'),
    ("source-read-not-string", source(read=True), None,
     "retl.json: sources.wh.read: expected a string"),
    ("statement-timeout-bad-unit", source(statement_timeout="10 mins"), None,
     'retl.json: sources.wh.statement_timeout: invalid duration "10 mins" '
     '(expected e.g. "30s", "10min", "2h", "500ms", or a number of milliseconds)'),
    ("statement-timeout-negative", source(statement_timeout=-5), None,
     'retl.json: sources.wh.statement_timeout: expected a duration such as "30s", "10min", '
     '"2h", "500ms" or a number of milliseconds >= 0'),
    ("connect-timeout-bad-unit", source(connect_timeout="10 secs"), None,
     'retl.json: sources.wh.connect_timeout: invalid duration "10 secs" '
     '(expected e.g. "30s", "10min", "2h", "500ms", or a number of milliseconds)'),
    ("connect-timeout-not-a-duration", source(connect_timeout=True), None,
     'retl.json: sources.wh.connect_timeout: expected a duration such as "30s", "10min", '
     '"2h", "500ms" or a number of milliseconds >= 0'),
    ("destinations-not-object", retl(destinations="out"), None,
     "retl.json: destinations: expected an object of {name: {type, ...}}"),
    ("dest-type-missing", dest(type=DELETE), None,
     "retl.json: destinations.out.type: missing (required; one of file, hubspot, airtable, webhook, mailchimp, salesforce)"),
    ("dest-type-unknown", dest(type="hubspt"), None,
     'retl.json: destinations.out.type: unknown destination type "hubspt" (expected one of file, hubspot, airtable, webhook, mailchimp, salesforce)'),
    ("dest-base-url-plain-http", dest(base_url="http://example.com/api"), None,
     "retl.json: destinations.out.base_url: http://example.com: plain http:// is allowed only "
     "to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); "
     "use https://"),
    ("dest-base-url-not-a-url", dest(base_url="ftp://127.0.0.1/"), None,
     "retl.json: destinations.out.base_url: ftp://127.0.0.1: expected https:// "
     "(or http:// to a literal loopback address: 127.x.x.x or [::1])"),
    ("dest-base-url-lookalike", dest(base_url="http://127.0.0.1.nip.io/"), None,
     "retl.json: destinations.out.base_url: http://127.0.0.1.nip.io: plain http:// is allowed "
     "only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); "
     "use https://"),
    ("secret-env-missing", dest(path="${RETL_IT_SURELY_UNSET}"), None,
     # found when the secret is read: the line and column of the value too
     "retl.json:11:15: destinations.out.path: environment variable RETL_IT_SURELY_UNSET is not set"),
    ("secret-env-unterminated", source(dsn="host=${PGHOST dbname=x"), None,
     'retl.json: sources.wh.dsn: unterminated "${" (expected ${NAME})'),
    ("secret-file-missing", source(dsn="@file:secrets/dsn"), None,
     "retl.json:5:14: sources.wh.dsn: cannot read secret file secrets/dsn: No such file or directory"),

    # --- mappings/x.json: keys and references ---
    ("sync-unknown-key", GOOD_RETL, sync(feilds={}),
     "mappings/x.json: feilds: unknown key (expected one of source, query, key, destination, "
     "object, mode, match, fields, on_remove, safety, schedule, diff, changed_since)"),
    ("sync-source-missing", GOOD_RETL, sync(source=DELETE),
     "mappings/x.json: source: missing (required)"),
    ("sync-source-unknown", GOOD_RETL, sync(source="warehouse"),
     'mappings/x.json: source: unknown source "warehouse" (defined in retl.json: wh)'),
    ("sync-source-none-defined", retl(sources=DELETE), sync(),
     'mappings/x.json: source: unknown source "wh" (defined in retl.json: none)'),
    ("sync-destination-missing", GOOD_RETL, sync(destination=DELETE),
     "mappings/x.json: destination: missing (required)"),
    ("sync-destination-unknown", GOOD_RETL, sync(destination="hubspt"),
     'mappings/x.json: destination: unknown destination "hubspt" (defined in retl.json: out)'),
    ("sync-destination-not-string", GOOD_RETL, sync(destination=["out"]),
     "mappings/x.json: destination: expected the name of a destination in retl.json"),
    ("sync-query-missing", GOOD_RETL, sync(query=DELETE),
     "mappings/x.json: query: missing (required)"),
    ("sync-query-empty", GOOD_RETL, sync(query=""),
     "mappings/x.json: query: expected a non-empty string"),
    ("sync-key-missing", GOOD_RETL, sync(key=DELETE),
     "mappings/x.json: key: missing (required: the model's primary key column, "
     "or a list of columns)"),
    ("sync-key-number", GOOD_RETL, sync(key=1),
     "mappings/x.json: key: expected a column name or a list of column names"),
    ("sync-key-empty-list", GOOD_RETL, sync(key=[]),
     "mappings/x.json: key: expected a column name or a list of column names"),
    ("sync-key-list-non-string", GOOD_RETL, sync(key=["id", 2]),
     "mappings/x.json: key: expected a column name or a list of column names"),
    ("sync-key-duplicate", GOOD_RETL, sync(key=["id", "id"]),
     'mappings/x.json: key: column "id" is listed twice'),
    ("sync-object-not-string", GOOD_RETL, sync(object={"name": "contacts"}),
     "mappings/x.json: object: expected a non-empty string"),

    # --- modes and removals ---
    ("mode-unknown", GOOD_RETL, sync(mode="upsrt"),
     'mappings/x.json: mode: unknown mode "upsrt" (expected one of upsert, update, insert, mirror, membership)'),
    ("sync-diff-unknown", GOOD_RETL, sync(diff="remote"),
     'mappings/x.json: diff: unknown diff "remote" (expected one of local, warehouse)'),
    ("mode-not-string", GOOD_RETL, sync(mode=1),
     "mappings/x.json: mode: expected a string (one of upsert, update, insert, mirror, membership)"),
    ("mode-unsupported", GOOD_RETL, sync(mode="update"),
     'mappings/x.json: mode: mode "update" is not supported by the file destination '
     "(supported: upsert, insert, mirror)"),
    ("mode-membership-unsupported", GOOD_RETL, sync(mode="membership"),
     'mappings/x.json: mode: mode "membership" is not supported by the file destination '
     "(supported: upsert, insert, mirror)"),
    ("on-remove-unknown", GOOD_RETL, sync(mode="mirror", on_remove="remove"),
     'mappings/x.json: on_remove: unknown action "remove" '
     "(expected one of ignore, archive, delete, unsubscribe, clear)"),
    ("on-remove-without-mirror", GOOD_RETL, sync(on_remove="delete"),
     'mappings/x.json: on_remove: "delete" needs mode "mirror" '
     '(mode is "upsert"; only mirror removes records)'),
    ("on-remove-unsupported", GOOD_RETL, sync(mode="mirror", on_remove="archive"),
     'mappings/x.json: on_remove: "archive" is not supported by the file destination '
     "(supported: ignore, delete)"),

    # --- match, fields, safety, schedule ---
    ("match-not-object", GOOD_RETL, sync(match="email"),
     "mappings/x.json: match: expected an object of {destination field: column}"),
    ("match-value-not-string", GOOD_RETL, sync(match={"email": 1}),
     "mappings/x.json: match.email: expected a column name"),
    ("fields-missing", GOOD_RETL, sync(fields=DELETE),
     "mappings/x.json: fields: missing (required)"),
    ("fields-not-object", GOOD_RETL, sync(fields=["id"]),
     "mappings/x.json: fields: expected an object of {target field: column or field spec}"),
    ("safety-not-object", GOOD_RETL, sync(safety=100),
     "mappings/x.json: safety: expected an object "
     "(keys: max_removed, max_removed_ratio, refuse_empty_model)"),
    ("safety-unknown-key", GOOD_RETL, sync(safety={"max_remove": 10}),
     "mappings/x.json: safety.max_remove: unknown key "
     "(expected one of max_removed, max_removed_ratio, refuse_empty_model)"),
    ("safety-max-removed-negative", GOOD_RETL, sync(safety={"max_removed": -1}),
     "mappings/x.json: safety.max_removed: expected an integer >= 0"),
    ("safety-max-removed-fraction", GOOD_RETL, sync(safety={"max_removed": 2.5}),
     "mappings/x.json: safety.max_removed: expected an integer >= 0"),
    ("safety-ratio-above-one", GOOD_RETL, sync(safety={"max_removed_ratio": 1.5}),
     "mappings/x.json: safety.max_removed_ratio: expected a number from 0 to 1"),
    ("safety-ratio-string", GOOD_RETL, sync(safety={"max_removed_ratio": "20%"}),
     "mappings/x.json: safety.max_removed_ratio: expected a number from 0 to 1"),
    ("safety-refuse-empty-not-bool", GOOD_RETL, sync(safety={"refuse_empty_model": "yes"}),
     "mappings/x.json: safety.refuse_empty_model: expected true or false"),
    ("schedule-not-string", GOOD_RETL, sync(schedule=30),
     "mappings/x.json: schedule: expected a non-empty string"),

    # --- the field language (messages from src/mapping.c and src/transform.c) ---
    ("field-unknown-type", GOOD_RETL, fields({"mrr": {"from": "mrr", "type": "nmber"}}),
     'mappings/x.json: fields.mrr.type: unknown type "nmber" '
     "(expected one of string, integer, number, boolean, date, datetime, json)"),
    ("field-unknown-transform", GOOD_RETL,
     fields({"email": {"from": "email", "transform": ["lowercase"]}}),
     'mappings/x.json: fields.email.transform[0]: unknown transform "lowercase" (expected one '
     "of trim, lower, upper, default, replace, extract, match, map, split, join, truncate)"),
    ("field-from-and-value", GOOD_RETL, fields({"email": {"from": "email", "value": "x"}}),
     "mappings/x.json: fields.email: only one of from, value, template may be given"),
    ("field-no-source", GOOD_RETL, fields({"email": {"transform": ["trim"]}}),
     "mappings/x.json: fields.email: expected a column name or an object with one of "
     "from, value, template"),
    ("field-number", GOOD_RETL, fields({"email": 5}),
     "mappings/x.json: fields.email: expected a column name or an object with one of "
     "from, value, template"),
    ("field-empty-column", GOOD_RETL, fields({"email": ""}),
     "mappings/x.json: fields.email: empty column name"),
    ("field-unknown-key", GOOD_RETL, fields({"email": {"from": "email", "tyep": "string"}}),
     "mappings/x.json: fields.email.tyep: unknown key "
     "(expected one of from, value, template, transform, type, on_null, write)"),
    ("field-bad-regex", GOOD_RETL,
     fields({"email": {"from": "email", "transform": [{"match": "^[a-z"}]}}),
     "mappings/x.json: fields.email.transform[0].match: invalid regular expression: "
     "missing terminating ] for character class at offset 5"),
    ("field-replace-without-with", GOOD_RETL,
     fields({"phone": {"from": "phone", "transform": [{"replace": "[^0-9]"}]}}),
     'mappings/x.json: fields.phone.transform[0].with: missing (replace needs "with")'),
    ("field-on-null-bad", GOOD_RETL, fields({"email": {"from": "email", "on_null": "drop"}}),
     'mappings/x.json: fields.email.on_null: expected "skip" or "clear"'),
    ("field-transform-not-list", GOOD_RETL,
     fields({"email": {"from": "email", "transform": "trim"}}),
     "mappings/x.json: fields.email.transform: expected an array of transforms"),
    ("field-extract-bad-group", GOOD_RETL,
     fields({"x": {"from": "a", "transform": [{"extract": "(a)", "group": 3}]}}),
     "mappings/x.json: fields.x.transform[0].group: the pattern has only 1 capture group"),
    ("field-map-not-object", GOOD_RETL,
     fields({"x": {"from": "a", "transform": [{"map": ["a"]}]}}),
     'mappings/x.json: fields.x.transform[0].map: expected an object of "from": "to" values'),
    ("field-truncate-negative", GOOD_RETL,
     fields({"x": {"from": "a", "transform": [{"truncate": -1}]}}),
     "mappings/x.json: fields.x.transform[0].truncate: expected a non-negative integer"),
    ("field-trim-with-argument", GOOD_RETL,
     fields({"x": {"from": "a", "transform": [{"trim": 1}]}}),
     'mappings/x.json: fields.x.transform[0]: trim takes no argument (write "trim")'),
    ("fields-empty", GOOD_RETL, fields({}),
     "mappings/x.json: fields: no fields mapped"),
    ("field-dotted-conflict", GOOD_RETL, fields({"a": "x", "a.b": "y"}),
     'mappings/x.json: fields.a.b: conflicts with field "a" '
     "(a target cannot be both a value and an object)"),
]


def run_check(project, env=None):
    if not os.path.exists(RETL_BIN):
        pytest.fail(f"{RETL_BIN} is not built (make retl)", pytrace=False)
    e = dict(os.environ)
    e.pop("RETL_IT_SURELY_UNSET", None)
    e.update(env or {})
    return subprocess.run([RETL_BIN, "--config", str(project), "check"],
                          capture_output=True, text=True, env=e, timeout=30)


def make_project(tmp_path, retl_json, sync_json):
    if retl_json is not None:
        (tmp_path / "retl.json").write_text(retl_json)
    if sync_json is not None:
        (tmp_path / "mappings").mkdir()
        (tmp_path / "mappings" / "x.json").write_text(sync_json)
    return tmp_path


@pytest.mark.parametrize("retl_json,sync_json,message",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_config_error(tmp_path, retl_json, sync_json, message):
    project = make_project(tmp_path, retl_json, sync_json)
    p = run_check(project)
    assert message in p.stderr.splitlines(), p.stderr
    assert p.returncode == 2, p.stderr


def test_enough_cases():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_missing_retl_json(tmp_path):
    p = run_check(tmp_path)
    want = f"retl.json: not found in {tmp_path} (is --config pointing at a retl project?)"
    assert want in p.stderr.splitlines(), p.stderr
    assert p.returncode == 2


def test_first_sync_in_name_order_is_reported(tmp_path):
    make_project(tmp_path, GOOD_RETL, None)
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "b.json").write_text(sync(mode="bad_b"))
    (tmp_path / "mappings" / "a.json").write_text(sync(mode="bad_a"))
    p = run_check(tmp_path)
    assert ('mappings/a.json: mode: unknown mode "bad_a" '
            "(expected one of upsert, update, insert, mirror, membership)") in p.stderr.splitlines()
    assert p.returncode == 2


SECRET = "hunter2-Sup3r-Secret"


@pytest.mark.parametrize("sync_json", [
    sync(feilds={}),                      # config error after the DSN was resolved
    sync(source="nope"),
])
def test_secret_from_env_never_printed(tmp_path, sync_json):
    retl_json = source(dsn="postgresql://retl:${RETL_IT_PASSWORD}@127.0.0.1:1/x")
    make_project(tmp_path, retl_json, sync_json)
    p = run_check(tmp_path, {"RETL_IT_PASSWORD": SECRET})
    assert p.returncode == 2, p.stderr
    assert SECRET not in p.stdout + p.stderr


def test_secret_quoted_in_a_message_is_redacted(tmp_path):
    make_project(tmp_path, source(statement_timeout="${RETL_IT_TIMEOUT}"), None)
    p = run_check(tmp_path, {"RETL_IT_TIMEOUT": SECRET})
    assert p.returncode == 2, p.stderr
    assert SECRET not in p.stdout + p.stderr
    assert ('retl.json:6:28: sources.wh.statement_timeout: invalid duration "[REDACTED]" '
            '(expected e.g. "30s", "10min", "2h", "500ms", or a number of milliseconds)'
            ) in p.stderr.splitlines()


def test_secret_never_printed_when_connection_fails(tmp_path):
    # valid config; the source refuses the connection (nothing listens on port 1)
    retl_json = source(dsn="postgresql://retl:${RETL_IT_PASSWORD}@127.0.0.1:1/x"
                           "?connect_timeout=2")
    make_project(tmp_path, retl_json, sync())
    p = run_check(tmp_path, {"RETL_IT_PASSWORD": SECRET})
    assert p.returncode != 0, p.stderr
    assert SECRET not in p.stdout + p.stderr
