"""Unchanged rows are skipped by their source line's hash, not mapped again
(DESIGN, "The flow of one run": a row whose source columns hash the same as
last time, under the same mapping, need not be mapped or serialized again).

Losing that hash costs no correctness, only speed: every row is mapped, its
payload hash found equal, and the row counted unchanged all the same. So the
counts cannot tell; what tells is the debug line each run logs after the
model is read, "model: N rows streamed at T s, M mapped" (src/sync.c): an
unchanged re-run maps nothing, whether its cache came from the cache image
(state/retl.db.<sync>.cache) or from SQLite.
"""

import os
import re

N = 300


def make_rows(db):
    db.psql(f"""
        CREATE TABLE items (id int PRIMARY KEY, name text, note text);
        INSERT INTO items SELECT i, 'item ' || i, 'n' || i
        FROM generate_series(1, {N}) i;
    """)


def mapping():
    # note is read but not mapped: its change moves the line, not the payload
    return {"source": "warehouse", "query": "SELECT id, name, note FROM items",
            "key": "id", "destination": "out", "fields": {"name": "name"}}


def streamed(err):
    m = re.findall(r"model: (\d+) rows streamed at [0-9.]+ s, (\d+) mapped", err)
    assert len(m) == 1, err
    return int(m[0][0]), int(m[0][1])


def run(p, *extra):
    rc, out, err = p.run("-v", *extra, "run", "items")
    assert rc == 0, (out, err)
    return out, err


def test_unchanged_rows_are_not_mapped_again(project, db, tmp_path):
    make_rows(db)
    p = project(dsn=db.dsn)
    p.add_mapping("items", mapping())
    image = p.path("state", "retl.db.items.cache")

    out, err = run(p)
    assert streamed(err) == (N, N)
    assert len(p.read_jsonl()) == N
    assert os.path.exists(image)   # written at the end of the run

    # loaded from the image: nothing mapped, nothing sent
    out, err = run(p)
    assert streamed(err) == (N, 0)
    assert "unchanged         300" in out
    assert len(p.read_jsonl()) == N

    # loaded from SQLite (no image): the same
    os.unlink(image)
    out, err = run(p)
    assert streamed(err) == (N, 0)
    assert len(p.read_jsonl()) == N

    # 5 rows changed: only they are mapped (and sent)
    db.psql("UPDATE items SET name = name || '!' WHERE id <= 5")
    out, err = run(p)
    assert streamed(err) == (N, 5)
    assert len(p.read_jsonl()) == N + 5

    # a column read but not mapped: mapped once, nothing sent, and its new
    # line hash is stored, so the next run maps nothing again
    db.psql("UPDATE items SET note = 'changed' WHERE id > 290")
    out, err = run(p)
    assert streamed(err) == (N, 10)
    assert len(p.read_jsonl()) == N + 5
    out, err = run(p)
    assert streamed(err) == (N, 0)

    # plan reads the same cache and says the same
    rc, out, err = p.run("-v", "plan", "items", "--out", tmp_path / "plan.jsonl")
    assert rc == 0, (out, err)
    assert streamed(err) == (N, 0)

    # --full-resync maps (and sends) every row
    rc, out, err = p.run("-v", "run", "items", "--full-resync")
    assert rc == 0, (out, err)
    assert streamed(err) == (N, N)
