"""The PostgreSQL source, observed through the CLI.

`retl plan SYNC --out FILE` writes every planned operation as a JSON line
({"op", "change", "key", "payload"}); `retl run` writes to the file
destination "out" (out.jsonl).  These tests pin what the source does:
column types -> JSON types, COPY text decoding, the session settings it
forces (UTC), the read-only repeatable-read transaction, statement_timeout,
error messages (server message, SQLSTATE, position), connection failures
without secrets, keys (single, composite, NULL parts) and a large model.

The first tests are sanity checks of the throwaway cluster itself.
"""

import json
import os
import re
import sqlite3
import stat
import threading
import time

import pytest

from pgcluster import PgCluster
import planfile  # noqa: E402


# ---- the throwaway cluster ------------------------------------------------

def test_cluster_answers(pg):
    assert pg.running
    assert pg.scalar("SELECT 1") == "1"
    assert pg.scalar("SHOW server_encoding") == "UTF8"
    assert pg.scalar("SHOW fsync") == "off"
    assert pg.scalar("SHOW listen_addresses") == ""


def test_dsn_points_at_private_socket(pg):
    parts = dict(kv.split("=", 1) for kv in pg.dsn.split())
    assert parts["user"] == "postgres"
    assert parts["dbname"] == "postgres"
    sock = os.path.join(parts["host"], f".s.PGSQL.{parts['port']}")
    assert stat.S_ISSOCK(os.stat(sock).st_mode)


def test_psql_runs_scripts_and_reports_errors(db):
    db.psql("CREATE TABLE t (id int PRIMARY KEY, s text);"
            "INSERT INTO t SELECT g, 'r' || g FROM generate_series(1, 10) g;")
    assert db.scalar("SELECT count(*) FROM t") == "10"
    with pytest.raises(RuntimeError, match="no_such_column"):
        db.psql("SELECT no_such_column FROM t")


def test_fresh_cluster_stops_and_cleans_up():
    c = PgCluster()
    c.start()
    base = c.base
    assert c.scalar("SELECT 2") == "2"
    c.stop()
    assert not c.running
    assert not os.path.exists(base)


# ---- helpers ----------------------------------------------------------------

def sync(query, fields, key="id", **extra):
    d = {"source": "warehouse", "query": query, "key": key,
         "destination": "out", "fields": fields}
    d.update(extra)
    return d


def plan(p, name, tmp_path):
    """runs `retl plan NAME --out F`; returns (rc, out, err, raw lines)"""
    f = tmp_path / f"plan-{name}-{time.monotonic_ns()}.jsonl"
    rc, out, err = p.run("plan", name, "--out", f)
    lines = planfile.op_lines(f) if f.exists() else []
    return rc, out, err, lines


def payloads_by_key(lines):
    return {json.loads(l)["key"]: json.loads(l)["payload"] for l in lines}


def net_state(lines):
    state = {}
    for line in lines:
        k = json.dumps(line["key"])
        if line["op"] == "remove":
            state.pop(k, None)
        else:
            state[k] = line["payload"]
    return state


def synced_keys(p, name):
    path = p.path("state", "retl.db")
    if not os.path.exists(path):
        return set()
    con = sqlite3.connect(path)
    try:
        return {k for k, in con.execute(
            "SELECT key FROM cache WHERE sync=? AND status=1", (name,))}
    finally:
        con.close()


@pytest.fixture
def proj(project, db):
    return project(dsn=db.dsn)


# ---- column types -> JSON types ---------------------------------------------

TYPES_SQL = r"""
CREATE TABLE typed (
    id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, n numeric(10,2),
    f float8, b bool, j json, jb jsonb, ts timestamptz, d date, s text);
INSERT INTO typed VALUES
 (1, 3, -42, 9007199254740993, 12.50, 0.1, true,
  '{"b": 1, "a": [1, 2, {"z": null, "y": "x"}]}', '{"b": 1, "a": {"d": 4, "c": 3}}',
  '2024-05-01 12:30:00.123456+02', '2024-05-01', 'hello'),
 (2, -32768, 2147483647, -5, 0, -2.5e300, false, '[3, 1, 2]', '"str"',
  '2024-01-31 23:59:59-05', '1999-12-31', ''),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""

TYPED_FIELDS = {c: c for c in ("i2", "i4", "i8", "n", "f", "b", "j", "jb",
                               "ts", "d", "s")}


def test_column_types_decide_json_types(proj, db, tmp_path):
    db.psql(TYPES_SQL)
    # the source must force UTC whatever the database says
    db.psql(f"ALTER DATABASE {db.name} SET timezone = 'America/New_York'")
    assert db.scalar("SHOW timezone") == "America/New_York"
    assert db.scalar("SELECT timestamptz '2024-05-01 12:30:00+02'") == \
        "2024-05-01 06:30:00-04"
    proj.add_mapping("typed", sync("SELECT * FROM typed ORDER BY id", TYPED_FIELDS))
    rc, out, err, lines = plan(proj, "typed", tmp_path)
    assert rc == 0, err
    assert len(lines) == 3
    got = payloads_by_key(lines)
    assert got["1"] == {
        "i2": 3, "i4": -42, "i8": 9007199254740993, "n": 12.5, "f": 0.1,
        "b": True, "j": {"a": [1, 2, {"y": "x", "z": None}], "b": 1},
        "jb": {"a": {"c": 3, "d": 4}, "b": 1},
        "ts": "2024-05-01T10:30:00.123456Z", "d": "2024-05-01", "s": "hello"}
    assert got["2"] == {
        "i2": -32768, "i4": 2147483647, "i8": -5, "n": 0, "f": -2.5e300,
        "b": False, "j": [3, 1, 2], "jb": "str",
        "ts": "2024-02-01T04:59:59Z", "d": "1999-12-31", "s": ""}
    assert got["3"] == {k: None for k in TYPED_FIELDS}
    # JSON types exactly: integers are integers (not 3.0), bools not 0/1
    p1 = got["1"]
    assert type(p1["i2"]) is int and type(p1["i8"]) is int
    assert type(p1["b"]) is bool and type(p1["f"]) is float
    # the raw text: numeric keeps its digits, JSON is canonical (sorted, compact)
    raw1 = lines[0]
    assert '"n":12.50' in raw1
    assert '"i8":9007199254740993' in raw1
    assert '"j":{"a":[1,2,{"y":"x","z":null}],"b":1}' in raw1
    assert '"jb":{"a":{"c":3,"d":4},"b":1}' in raw1
    assert '"n":0.00' in lines[1]
    # the same through a real run to the file destination
    rc, out, err = proj.run("run", "typed")
    assert rc == 0, err
    sent = {l["key"]: l["payload"] for l in proj.read_jsonl()}
    assert sent == got
    with open(proj.path("out.jsonl"), encoding="utf-8") as f:
        assert '"n":12.50' in f.readline()


def test_timestamptz_is_utc_whatever_the_role_timezone(proj, db, tmp_path):
    db.psql("CREATE TABLE ev (id int, at timestamptz, tz text);"
            "INSERT INTO ev VALUES (1, '2024-03-10 01:30:00-05', 'x'),"
            " (2, '2024-07-04 00:00:00.5+00', 'y'), (3, '1970-01-01 00:00:00+00', 'z'),"
            " (4, '2024-07-04 00:00:00.000001+00', 'w'), (5, '2025-01-01 00:00:00+01', 'v');"
            f"ALTER DATABASE {db.name} SET timezone = 'America/New_York';"
            "ALTER ROLE postgres IN DATABASE " + db.name + " SET timezone = 'Asia/Kolkata'")
    try:
        proj.add_mapping("ev", sync(
            "SELECT id, at, current_setting('TimeZone') AS tz FROM ev ORDER BY id",
            {"at": "at", "tz": "tz"}))
        rc, out, err, lines = plan(proj, "ev", tmp_path)
        assert rc == 0, err
        got = payloads_by_key(lines)
        # a fractional part is kept: as the server prints it or to 6 digits
        assert re.fullmatch(r"2024-07-04T00:00:00\.5(00000)?Z", got["2"]["at"]), got
        got["2"]["at"] = "2024-07-04T00:00:00.5Z"
        assert got == {
            "1": {"at": "2024-03-10T06:30:00Z", "tz": "UTC"},
            "2": {"at": "2024-07-04T00:00:00.5Z", "tz": "UTC"},
            "3": {"at": "1970-01-01T00:00:00Z", "tz": "UTC"},
            "4": {"at": "2024-07-04T00:00:00.000001Z", "tz": "UTC"},
            "5": {"at": "2024-12-31T23:00:00Z", "tz": "UTC"},
        }
    finally:
        db.psql(f"ALTER ROLE postgres IN DATABASE {db.name} RESET timezone")


def test_session_is_read_only_repeatable_read_utc(proj, db, tmp_path):
    proj.add_mapping("s", sync(
        "SELECT 1 AS id, current_setting('transaction_isolation') AS iso, "
        "current_setting('transaction_read_only') AS ro, "
        "current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds",
        {"iso": "iso", "ro": "ro", "tz": "tz", "ds": "ds"}))
    rc, out, err, lines = plan(proj, "s", tmp_path)
    assert rc == 0, err
    assert payloads_by_key(lines) == {"1": {"iso": "repeatable read", "ro": "on",
                                            "tz": "UTC", "ds": "ISO, MDY"}}


# ---- COPY text decoding -----------------------------------------------------

TRICKY = [
    (1, "tab\there"),
    (2, "new\nline"),
    (3, "carriage\rreturn"),
    (4, "back\\slash"),
    (5, "\\N"),
    (6, "say \"hi\" it's"),
    (7, "é 中文 😀"),
    (8, ""),
    (9, None),
    (10, "\\t is not a tab, \\\\ two"),
    (11, " lead and trail "),
    (12, "\x01ctl\x7f"),
]


def sql_literal(s):
    if s is None:
        return "NULL"
    return "'" + s.replace("'", "''") + "'"


def make_tricky(db):
    rows = ", ".join(f"({i}, {sql_literal(s)})" for i, s in TRICKY)
    db.psql("CREATE TABLE tricky (id int PRIMARY KEY, s text);"
            f"INSERT INTO tricky VALUES {rows}")
    # the table holds exactly what we meant (standard_conforming_strings)
    assert db.scalar("SELECT s FROM tricky WHERE id = 5") == "\\N"
    assert db.scalar("SELECT s IS NULL FROM tricky WHERE id = 9") == "t"


def test_text_values_survive_exactly(proj, db, tmp_path):
    make_tricky(db)
    proj.add_mapping("tricky", sync("SELECT id, s FROM tricky ORDER BY id",
                                    {"s": "s"}))
    rc, out, err, lines = plan(proj, "tricky", tmp_path)
    assert rc == 0, err
    expected = {str(i): {"s": s} for i, s in TRICKY}
    assert payloads_by_key(lines) == expected
    rc, out, err = proj.run("run", "tricky")
    assert rc == 0, (out, err)
    assert {l["key"]: l["payload"] for l in proj.read_jsonl()} == expected
    # an unchanged re-run: the decoded text hashes the same
    rc, out, err = proj.run("run", "tricky")
    assert rc == 0, err
    assert len(proj.read_jsonl()) == len(TRICKY)


def test_null_clear_and_skip(proj, db, tmp_path):
    make_tricky(db)
    proj.add_mapping("nulls", sync(
        "SELECT id, s, s AS s2, NULL::int AS nothing FROM tricky WHERE id IN (8, 9) ORDER BY id",
        {"clear": "s", "skip": {"from": "s2", "on_null": "skip"},
         "explicit_clear": {"from": "s", "on_null": "clear"},
         "always_null": "nothing",
         "never": {"from": "nothing", "on_null": "skip"}}))
    rc, out, err, lines = plan(proj, "nulls", tmp_path)
    assert rc == 0, err
    assert payloads_by_key(lines) == {
        # empty string is a value, not NULL: kept in both modes
        "8": {"clear": "", "skip": "", "explicit_clear": "", "always_null": None},
        "9": {"clear": None, "explicit_clear": None, "always_null": None},
    }
    assert '"clear":null' in lines[1] and '"skip"' not in lines[1]


# ---- one snapshot, read only ------------------------------------------------

def test_every_row_comes_from_one_snapshot(proj, db, tmp_path):
    """A VOLATILE function re-reads the table for every row.  Under READ
    COMMITTED each call would see the rows committed meanwhile; under the
    source's REPEATABLE READ every call sees the same snapshot."""
    db.psql("CREATE TABLE grow (id int);"
            "INSERT INTO grow SELECT generate_series(1, 10);"
            "CREATE FUNCTION slow_count(i int) RETURNS bigint LANGUAGE plpgsql "
            "VOLATILE AS $$ BEGIN PERFORM pg_sleep(0.01); "
            "RETURN (SELECT count(*) FROM grow); END $$")
    proj.add_mapping("snap", sync(
        "SELECT g AS id, slow_count(g) AS n FROM generate_series(1, 150) g",
        {"n": "n"}))
    stop = threading.Event()
    inserted = []

    def writer():
        i = 1000
        while not stop.is_set():
            db.psql(f"INSERT INTO grow VALUES ({i})")
            inserted.append(i)
            i += 1
            # scenario: a writer committing now and then while the run
            # reads (not a wait for retl)
            time.sleep(0.02)

    t = threading.Thread(target=writer)
    t.start()
    try:
        rc, out, err = proj.run("run", "snap")
    finally:
        stop.set()
        t.join()
    assert rc == 0, err
    counts = [l["payload"]["n"] for l in proj.read_jsonl()]
    assert len(counts) == 150
    assert len(inserted) >= 5, "the writer did commit rows during the run"
    assert len(set(counts)) == 1, f"rows saw different snapshots: {sorted(set(counts))}"
    assert 10 <= counts[0] < 10 + len(inserted)


def test_query_runs_read_only_even_inside_functions(proj, db):
    db.psql("CREATE TABLE audit (x int);"
            "CREATE FUNCTION sneaky(i int) RETURNS int LANGUAGE plpgsql VOLATILE "
            "AS $$ BEGIN INSERT INTO audit VALUES (i); RETURN i; END $$")
    proj.add_mapping("w", sync(
        "SELECT g AS id, sneaky(g) AS x FROM generate_series(1, 5) g", {"x": "x"}))
    rc, out, err = proj.run("run", "w")
    assert rc == 3, (out, err)
    assert "retl: source warehouse: cannot execute INSERT in a read-only " \
           "transaction (SQLSTATE 25006)" in err
    assert db.scalar("SELECT count(*) FROM audit") == "0"
    assert not proj.read_jsonl()
    assert synced_keys(proj, "w") == set()


def test_statement_timeout_stops_the_query(project, db, tmp_path):
    # What the timeout promises: PostgreSQL itself cancels the statement
    # when the timer fires (its own words, SQLSTATE 57014, named in retl's
    # message), the run stops as a source error (exit 3), nothing was sent
    # or marked synced, and the server runs no leftover query. No wall
    # clock: without the timeout the query runs to its end (0.9 s) and the
    # run exits 0.
    p = project(sources={"warehouse": {"type": "postgres", "dsn": db.dsn,
                                       "statement_timeout": "100ms"}})
    query = ("SELECT g AS id, pg_sleep(0.3)::text AS x /* retl-timeout-probe */ "
             "FROM generate_series(1, 3) g")
    p.add_mapping("sleepy", sync(query, {"x": "x"}))
    rc, out, err = p.run("run", "sleepy")
    assert rc == 3, (out, err)
    assert "retl: source warehouse: canceling statement due to statement " \
           "timeout (SQLSTATE 57014)" in err, err
    assert not p.read_jsonl()
    assert synced_keys(p, "sleepy") == set()

    def leftover():
        return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle' "
                         "AND query LIKE '%retl-timeout-probe%' "
                         "AND pid <> pg_backend_pid()")
    # cancelled by the server, not abandoned by a client that went away
    # (a backend in pg_sleep would notice no disconnect for 0.9 s)
    assert leftover() == "0"
    # plan too: same cause, nothing written to the plan file
    rc, out, err, lines = plan(p, "sleepy", tmp_path)
    assert rc == 3 and "canceling statement due to statement timeout " \
        "(SQLSTATE 57014)" in err, (out, err)
    assert lines == []
    assert leftover() == "0"
    # a query within the limit runs
    p.add_mapping("sleepy", sync(
        "SELECT g AS id, pg_sleep(0.001)::text AS x FROM generate_series(1, 3) g",
        {"x": "x"}))
    assert p.run("run", "sleepy")[0] == 0
    assert synced_keys(p, "sleepy") == {"1", "2", "3"}


# ---- SQL errors -------------------------------------------------------------

@pytest.mark.parametrize("query,message", [
    ("SELECT id, nope AS x FROM t",
     'column "nope" does not exist (SQLSTATE 42703) at character 12'),
    ("SELEC id, s AS x FROM t",
     'syntax error at or near "SELEC" (SQLSTATE 42601) at character 1'),
    ("SELECT id, s AS x FROM no_such_table",
     'relation "no_such_table" does not exist (SQLSTATE 42P01) at character 24'),
    ("SELECT 1 AS id, 2 AS x; SELECT 3 AS id, 4 AS x",
     "cannot insert multiple commands into a prepared statement (SQLSTATE 42601)"),
])
def test_sql_errors_report_message_sqlstate_and_position(proj, db, query, message):
    db.psql("CREATE TABLE t (id int, s text); INSERT INTO t VALUES (1, 'a')")
    proj.add_mapping("bad", sync(query, {"x": "x"}))
    for verb in (["check"], ["run", "bad"], ["plan", "bad"]):
        rc, out, err = proj.run(*verb)
        assert rc == 3, (verb, out, err)
        # check names the sync too
        who = "check bad: " if verb == ["check"] else ""
        assert f"retl: {who}source warehouse: {message}" in err, (verb, err)
    assert not proj.read_jsonl()


def test_position_points_into_the_users_query_at_run_time(proj, db):
    """stream() wraps the query in COPY ( ... ): the position must not move."""
    proj.add_mapping("pos", sync("SELECT g AS id,\n  g / 0 AS x,\n  bogus_col AS y\n"
                                 "FROM generate_series(1, 3) g", {"x": "x"}))
    rc, out, err = proj.run("run", "pos")
    assert rc == 3
    q = "SELECT g AS id,\n  g / 0 AS x,\n  bogus_col AS y\n"
    assert f'column "bogus_col" does not exist (SQLSTATE 42703) at character {q.index("bogus_col") + 1}' in err


@pytest.mark.parametrize("nrows,bad_id", [(1000, 500), (6000, 4700)])
def test_division_by_zero_mid_stream(proj, db, nrows, bad_id):
    db.psql(f"CREATE TABLE nums (id int PRIMARY KEY);"
            f"INSERT INTO nums SELECT generate_series(1, {nrows})")
    # no ORDER BY: a seq scan streams rows before the failing one
    proj.add_mapping("div", sync(f"SELECT id, 1/(id-{bad_id}) AS x FROM nums",
                                 {"x": "x"}))
    rc, out, err = proj.run("run", "div")
    assert rc == 3, (out, err)
    assert "retl: source warehouse: division by zero (SQLSTATE 22012)" in err
    assert re.search(rf"read\s+{bad_id - 1}\b", out), out
    # the push starts only once the whole model is read (the two phases,
    # README "A run"): a model that fails half way sends nothing, however
    # many batches it read before the error
    assert proj.read_jsonl() == []
    assert synced_keys(proj, "div") == set()
    rc, out, err = proj.run("status")
    assert re.search(r"^div\s+failed\b", out, re.M), out

    # fixed: the rest is sent, and the file's net state is the model
    proj.add_mapping("div", sync(f"SELECT id, 1/NULLIF(id-{bad_id}, 0) AS x FROM nums",
                                 {"x": "x"}))
    rc, out, err = proj.run("run", "div")
    assert rc == 0, (out, err)
    model = {}
    for line in db.psql(f"SELECT id, 1/NULLIF(id-{bad_id}, 0) FROM nums",
                        "-At", "-F", "\t").splitlines():
        i, x = line.split("\t")
        model[json.dumps(i)] = {"x": int(x) if x else None}
    assert net_state(proj.read_jsonl()) == model
    assert len(synced_keys(proj, "div")) == nrows


# ---- connection failures ----------------------------------------------------

def test_connection_failure_never_prints_the_password(project, pg, tmp_path):
    parts = dict(kv.split("=", 1) for kv in pg.dsn.split())
    secret = "Sup3r-s3cret-pw"
    dsns = [
        f"host={parts['host']} port=1 user=postgres dbname=postgres password={secret}",
        f"postgresql://postgres:{secret}@127.0.0.1:1/postgres",
        f"host={parts['host']} port=1 user=postgres password=${{PGPW_TEST}}",
    ]
    for dsn in dsns:
        p = project(dsn=dsn)
        p.add_mapping("c", sync("SELECT 1 AS id, 2 AS x", {"x": "x"}))
        for verb in (["check"], ["run", "c"], ["plan", "c"], ["run", "--all"]):
            rc, out, err = p.run(*verb, env={"PGPW_TEST": secret})
            assert rc == 3, (dsn, verb, out, err)
            who = "check c: " if verb == ["check"] else ""
            assert f"retl: {who}source warehouse: cannot connect: " in err
            assert secret not in out + err
        rc, out, err = p.run("history", "c")
        assert secret not in out + err
        state = p.path("state", "retl.db")
        if os.path.exists(state):
            with open(state, "rb") as f:
                assert secret.encode() not in f.read()


# ---- keys -------------------------------------------------------------------

def test_key_column_not_returned_is_a_config_error(proj, db):
    proj.add_mapping("k", sync("SELECT g AS id, g * 2 AS x FROM generate_series(1, 3) g",
                               {"x": "x"}, key="nope"))
    for verb in (["check"], ["check", "k"], ["run", "k"]):
        rc, out, err = proj.run(*verb)
        assert rc == 2, (verb, out, err)
        assert 'mappings/k.json: key: column "nope" is not returned by the query ' \
               '(columns: id, x)' in err
    proj.add_mapping("k", sync("SELECT g AS id, g * 2 AS x FROM generate_series(1, 3) g",
                               {"x": "x"}, key=["id", "nope"]))
    rc, out, err = proj.run("check")
    assert rc == 2
    assert 'column "nope" is not returned by the query (columns: id, x)' in err
    assert not proj.read_jsonl()


def test_composite_key(proj, db, tmp_path):
    db.psql("CREATE TABLE ck (a text, b int, x text);"
            "INSERT INTO ck VALUES ('a', 1, 'one'), ('a', 2, 'two'), ('b', 1, 'three'),"
            " ('c', NULL, 'nullpart'), ('x\"y', 7, 'quote');")
    proj.add_mapping("ck", sync("SELECT * FROM ck ORDER BY a, b", {"x": "x"},
                                key=["a", "b"]))
    rc, out, err, lines = plan(proj, "ck", tmp_path)
    assert rc == 1, (out, err)   # plan says a row would be rejected
    assert re.search(r"rejected\s+1\b", out), out
    assert sorted(json.loads(l)["key"] for l in lines) == \
        [["a", "1"], ["a", "2"], ["b", "1"], ['x"y', "7"]]
    rc, out, err = proj.run("run", "ck")
    assert rc == 1, (out, err)
    assert re.search(r"rejected\s+1\b", out), out
    got = {json.dumps(l["key"]): l["payload"] for l in proj.read_jsonl()}
    assert got == {'["a", "1"]': {"x": "one"}, '["a", "2"]': {"x": "two"},
                   '["b", "1"]': {"x": "three"}, '["x\\"y", "7"]': {"x": "quote"}}
    # composite keys are JSON arrays of strings, never numbers
    assert all(all(isinstance(part, str) for part in l["key"])
               for l in proj.read_jsonl())
    rc, out, err = proj.run("failures", "ck")
    assert rc == 0, err
    assert "null key" in out
    assert "1 row failing in ck" in out
    # unchanged re-run: composite keys are found in the cache again
    rc, out, err = proj.run("run", "ck")
    assert rc == 1
    assert re.search(r"unchanged\s+4\b", out), out
    assert len(proj.read_jsonl()) == 4


def test_duplicate_composite_key_rejected(proj, db):
    proj.add_mapping("dup", sync(
        "SELECT * FROM (VALUES ('a', 1, 'first'), ('a', 1, 'second'), ('a', 2, 'ok')) v(a, b, x)",
        {"x": "x"}, key=["a", "b"]))
    rc, out, err = proj.run("run", "dup")
    assert rc == 1, (out, err)
    assert {json.dumps(l["key"]): l["payload"]["x"] for l in proj.read_jsonl()} == \
        {'["a", "1"]': "first", '["a", "2"]': "ok"}
    rc, out, err = proj.run("failures", "dup")
    assert "duplicate key" in out


# ---- a large model ----------------------------------------------------------

def test_large_model_streams(proj, db, tmp_path):
    n = 50000
    db.psql(f"CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h, g % 97 AS m "
            f"FROM generate_series(1, {n}) g")
    proj.add_mapping("big", sync("SELECT * FROM big", {"h": "h", "m": "m"}))
    rc, out, err, lines = plan(proj, "big", tmp_path)
    assert rc == 0, err
    assert re.search(rf"read\s+{n}\b", out), out
    assert re.search(rf"add\s+{n}\b", out), out
    assert len(lines) == n
    assert len({json.loads(l)["key"] for l in lines}) == n
    rc, out, err = proj.run("run", "big")
    assert rc == 0, err
    lines = proj.read_jsonl()
    assert len(lines) == n
    last = {l["key"]: l["payload"] for l in lines}
    assert last["49999"] == {"h": db.scalar("SELECT md5('49999')"), "m": 49999 % 97}
    rc, out, err = proj.run("run", "big")
    assert rc == 0 and re.search(rf"unchanged\s+{n}\b", out)
