"""The source's two read paths: COPY (query) TO STDOUT, and a server-side
cursor (DECLARE + FETCH FORWARD n) for warehouses without COPY ... TO STDOUT,
chosen at connect time from what the server says it is (README
"Warehouses").

  - the cursor path hands the engine the very line COPY's text format would
    have given for each row (the line the row hash is taken from), so a sync
    switched from one path to the other maps and sends nothing: the debug
    line "model: N rows streamed at T s, M mapped" says M = 0;
  - through tests/emulators/pgproxy.py, the real cluster presented as
    Redshift: auto picks the cursor, asks for SERIALIZABLE, never sends
    `COPY (`, and the result equals the model; "read": "copy" fails with a
    clear message; a server that only refuses COPY (not Redshift) gets the
    cursor after the first refusal.
"""

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))
from pgproxy import PgProxy  # noqa: E402

# more rows than one FETCH (1000) holds, so batches follow each other
NBULK = 2500

TRICKY_SQL = r"""
CREATE TABLE tricky (
    id int PRIMARY KEY, t text, arr text[], iarr int[], j json, jb jsonb,
    n numeric, f float8, ts timestamptz, b bytea, d date, bo bool,
    iv interval);
INSERT INTO tricky VALUES
 (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (2, '', '{}', '{}', '{}', '[]', 0, 0, 'epoch', '', '2000-01-01', false, '0'),
 (3, E'tab\there', ARRAY[E'a\tb', NULL, 'c"d', E'back\\slash', ''],
  '{1,NULL,3}', E'{"a": "x\\ty\\nz", "b": "\\\\"}', '{"k": [1, "\\\\", null]}',
  12345678901234567890.123456789, 0.1, '2026-01-02 03:04:05.678+05:30',
  '\x00ff5c0a0d09', '2026-11-29', true, '1 year 2 mons 3 days 04:05:06.7'),
 (4, E'new\nline', ARRAY[E'l1\nl2'], NULL, '"\n"', NULL, -1.5e-10, -0.0,
  '1999-12-31 23:59:59.999999+00', '\x5c', '1970-01-01', NULL, '-1 day'),
 (5, E'cr\rret\r\n', NULL, NULL, NULL, NULL, 1e-20, 1.7976931348623157e308, NULL, NULL, NULL,
  NULL, NULL),
 (6, E'back\\slash \\N \\\\', NULL, NULL, NULL, NULL, NULL, 2.2250738585072014e-308,
  NULL, NULL, NULL, NULL, NULL),
 (7, 'ünïcødé ✓ 日本 🎉', ARRAY['ü', '日本'], NULL,
  '{"é": "✓"}', '{"🎉": 1}', NULL, 1e308, NULL, NULL, NULL, NULL, NULL),
 (8, E'\\N', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (9, E'bs\b ff\f vt\v bell\x07 esc\x1b del\x7f', NULL, NULL, NULL, NULL,
  NULL, 5e-324, NULL, NULL, NULL, NULL, NULL),
 (10, E'\t\n\r\\', ARRAY[NULL]::text[], NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL),
 (11, ' leading and trailing ', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL);
INSERT INTO tricky (id, t, arr, n, ts)
SELECT g, 'row ' || g || E'\t' || g, ARRAY['r' || g], g / 7.0,
       '2026-01-01'::timestamptz + g * interval '1 minute'
FROM generate_series(100, 99 + %d) g;
""" % NBULK

NROWS = 11 + NBULK
COLS = ["t", "arr", "iarr", "j", "jb", "n", "f", "ts", "b", "d", "bo", "iv"]


def tricky_mapping():
    return {"source": "warehouse", "query": "SELECT * FROM tricky",
            "key": "id", "destination": "out", "mode": "mirror",
            "on_remove": "delete", "fields": {c: c for c in COLS}}


def streamed(err):
    m = re.findall(r"model: (\d+) rows streamed at [0-9.]+ s, (\d+) mapped",
                   err)
    assert len(m) == 1, err
    return int(m[0][0]), int(m[0][1])


def with_read(p, dsn, read):
    """rewrites the project's retl.json with the source's "read" (None: not
    set, i.e. auto)"""
    src = {"type": "postgres", "dsn": dsn}
    if read:
        src["read"] = read
    p.write_config({"sources": {"warehouse": src},
                    "destinations": {"out": {"type": "file",
                                             "path": "out.jsonl"}}})


def run_v(p, sync):
    rc, out, err = p.run("-v", "run", sync)
    return rc, out, err


def model_state(lines):
    state = {}
    for line in lines:
        k = json.dumps(line["key"])
        if line["op"] == "remove":
            state.pop(k, None)
        else:
            state[k] = line["payload"]
    return state


def test_switching_read_path_sends_nothing(project, db):
    db.psql(TRICKY_SQL)
    p = project(dsn=db.dsn)
    p.add_mapping("tricky", tricky_mapping())

    with_read(p, db.dsn, "copy")
    rc, out, err = run_v(p, "tricky")
    assert rc == 0, (out, err)
    assert streamed(err) == (NROWS, NROWS)
    assert "reading with COPY" in err
    first = p.read_jsonl()
    assert len(first) == NROWS

    # the same rows through the cursor: every raw line is COPY's, so no row
    # is even mapped again, and nothing is sent
    for read in ("cursor", "copy", "cursor"):
        with_read(p, db.dsn, read)
        rc, out, err = run_v(p, "tricky")
        assert rc == 0, (read, out, err)
        assert streamed(err) == (NROWS, 0), read
        assert ("reading with a cursor" in err) == (read == "cursor"), err
        assert p.read_jsonl() == first

    # a change is seen through the cursor, and only it is sent
    db.psql(r"UPDATE tricky SET t = E'changed\tagain\\' WHERE id IN (3, 2599)")
    rc, out, err = run_v(p, "tricky")
    assert rc == 0, (out, err)
    assert streamed(err) == (NROWS, 2)
    lines = p.read_jsonl()
    assert len(lines) == NROWS + 2
    assert {l["payload"]["t"] for l in lines[NROWS:]} == {"changed\tagain\\"}


def test_cursor_and_copy_give_the_same_payloads(project, db):
    """a first run on each path, from empty state: the same operations"""
    db.psql(TRICKY_SQL)
    outs = {}
    for read in ("copy", "cursor"):
        p = project(dsn=db.dsn)
        with_read(p, db.dsn, read)
        p.add_mapping("tricky", tricky_mapping())
        rc, out, err = run_v(p, "tricky")
        assert rc == 0, (out, err)
        outs[read] = p.read_jsonl()
    assert len(outs["copy"]) == NROWS
    assert outs["cursor"] == outs["copy"]
    row3 = model_state(outs["cursor"])[json.dumps("3")]
    assert row3["t"] == "tab\there"


# ---- a server that says it is Redshift ------------------------------------

@pytest.fixture
def proxy(pg):
    sock = os.path.join(pg.sockdir, f".s.PGSQL.{pg.port}")
    px = PgProxy(sock).start()
    try:
        yield px
    finally:
        px.stop()


def proxy_dsn(px, db):
    return (f"host=127.0.0.1 port={px.port} user=postgres dbname={db.name} "
            f"connect_timeout=10")


def small_model(db):
    db.psql("CREATE TABLE people (id int PRIMARY KEY, email text, n int);"
            "INSERT INTO people SELECT g, 'p' || g || '@x.test', g % 7 "
            "FROM generate_series(1, 2100) g;")


def people_mapping():
    return {"source": "warehouse", "query": "SELECT id, email, n FROM people",
            "key": "id", "destination": "out", "mode": "mirror",
            "on_remove": "delete", "fields": {"email": "email", "n": "n"}}


def expected_people(db):
    rows = db.psql("SELECT id, email, n FROM people", "-At", "-F", "|")
    return {json.dumps(i): {"email": e, "n": int(n)}
            for i, e, n in (r.split("|") for r in rows.splitlines() if r)}


def test_redshift_auto_reads_with_a_cursor(project, db, proxy):
    small_model(db)
    dsn = proxy_dsn(proxy, db)
    p = project(dsn=dsn)
    with_read(p, dsn, None)
    p.add_mapping("people", people_mapping())

    rc, out, err = run_v(p, "people")
    assert rc == 0, (out, err)
    assert "Redshift 1.0" in err and "(Redshift): reading with a cursor" in err
    got = model_state(p.read_jsonl())
    assert got == expected_people(db)

    sent = proxy.queries
    assert not any(re.match(r"\s*copy\b", q, re.I) for q in sent), sent
    assert "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY" in sent
    assert not any("REPEATABLE READ" in q for q in sent)
    fetches = [q for q in sent if q.startswith("FETCH")]
    # 2100 rows: full batches, then a short one that ends the stream
    assert len(fetches) >= 3
    assert all(re.fullmatch(r"FETCH FORWARD (\d+) FROM retl_cur", q) and
               int(q.split()[2]) <= 1000 for q in fetches), fetches

    # a change and a removal, read through the cursor again
    db.psql("UPDATE people SET n = 99 WHERE id = 2000; "
            "DELETE FROM people WHERE id = 1")
    rc, out, err = run_v(p, "people")
    assert rc == 0, (out, err)
    assert streamed(err) == (2099, 1)
    assert model_state(p.read_jsonl()) == expected_people(db)


def test_redshift_with_read_copy_fails_clearly(project, db, proxy):
    small_model(db)
    dsn = proxy_dsn(proxy, db)
    p = project(dsn=dsn)
    with_read(p, dsn, "copy")
    p.add_mapping("people", people_mapping())
    rc, out, err = run_v(p, "people")
    assert rc == 3, (out, err)
    assert ('source warehouse: syntax error at or near "(" in context '
            '"COPY (", at line 1 (SQLSTATE 42601) (the server refused COPY '
            '(query) TO STDOUT, as Redshift does)') in err, err
    assert p.read_jsonl() == []


def test_auto_falls_back_once_when_copy_is_refused(project, db, pg):
    """a server that is not Redshift by its word but refuses COPY: the first
    stream tries COPY, then the cursor; later syncs of the same run go
    straight to the cursor"""
    small_model(db)
    sock = os.path.join(pg.sockdir, f".s.PGSQL.{pg.port}")
    with PgProxy(sock, redshift=False) as px:
        dsn = proxy_dsn(px, db)
        p = project(dsn=dsn)
        with_read(p, dsn, None)
        p.add_mapping("people", people_mapping())
        p.add_mapping("people2", people_mapping())
        rc, out, err = p.run("-v", "run", "--all")
        assert rc == 0, (out, err)
        assert "reading with COPY" in err
        assert ("the server refused COPY (SQLSTATE 0A000); reading with a "
                "cursor from now on") in err
        copies = [q for q in px.queries if re.match(r"\s*COPY", q)]
        declares = [q for q in px.queries if q.startswith("DECLARE")]
    # one COPY per connection at most, then cursors
    assert len(declares) == 2
    assert 1 <= len(copies) <= 2
    assert model_state(p.read_jsonl()) == expected_people(db)


@pytest.mark.parametrize("read", ["copy", "cursor"])
def test_sql_error_positions_point_into_the_query(project, db, read):
    """a runtime error's text is the server's on both paths"""
    db.psql("CREATE TABLE z (id int PRIMARY KEY);"
            "INSERT INTO z SELECT generate_series(1, 10)")
    p = project(dsn=db.dsn)
    with_read(p, db.dsn, read)
    p.add_mapping("z", {"source": "warehouse",
                        "query": "SELECT id, 1/(id-5) AS x FROM z",
                        "key": "id", "destination": "out",
                        "fields": {"x": "x"}})
    rc, out, err = p.run("run", "z")
    assert rc == 3, (out, err)
    assert "source warehouse: division by zero (SQLSTATE 22012)" in err


def test_type_redshift_reads_like_redshift(project, db):
    """"type": "redshift" says what the server is even when it does not say
    so itself (a proxy in front of Redshift that rewrites version(), say):
    the cursor, SERIALIZABLE, and only the settings Redshift has"""
    small_model(db)
    p = project(sources={"warehouse": {"type": "redshift", "dsn": db.dsn}})
    p.add_mapping("people", people_mapping())
    rc, out, err = run_v(p, "people")
    assert rc == 0, (out, err)
    assert "(Redshift): reading with a cursor" in err
    assert model_state(p.read_jsonl()) == expected_people(db)
