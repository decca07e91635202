"""Issue 19, "Done when" 1: `"diff": "warehouse"` (src/sync_whdiff.c;
README "Diff in the warehouse").

  * only new, changed and removed rows come back from the warehouse, and
    only they are mapped and sent;
  * one random sequence of model changes (inserts, updates, deletes, key
    changes, match value changes, a mapping change, rows the destination
    rejects, lost answers, a kill mid-push) goes through both diff modes,
    each against its own HubSpot emulator: after every clean run the two
    destinations equal each other and the model, record by record; on
    PostgreSQL's SQL and on the portable (Redshift) SQL;
  * failure paths: a missing grant (check and run say which), the table
    dropped between runs (the next run re-reads, sends nothing), a kill
    between the ack commit and the write-back, `retl reset`.
"""

import json
import os
import random
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import hubspot  # noqa: E402
from crashpoint import run_and_kill_at  # noqa: E402
from emulator_control import control, starter  # noqa: E402
from invariant import Model, run_killed  # noqa: E402

HS_TOKEN = "pat-na1-whdiff"
ENV = {"HS_TOKEN": HS_TOKEN}


def mapping(mode="mirror", diff="warehouse", **extra):
    m = {"source": "warehouse", "query": "SELECT * FROM t ORDER BY id",
         "key": "id", "destination": "out", "mode": mode,
         "fields": {"email": "email", "name": "name"}, "diff": diff}
    if mode == "mirror":
        m["on_remove"] = "delete"
    m.update(extra)
    return m


def returned(err):
    """(rows returned new or changed, keys only in the table) as logged"""
    m = re.search(r"diff warehouse: (\d+) rows returned new or changed, "
                  r"(\d+) keys only in the table", err)
    assert m, err
    return int(m.group(1)), int(m.group(2))


def ops(p, start=0):
    """the file destination's operations after the first `start`"""
    return [(o["op"], o["key"]) for o in p.read_jsonl()[start:]]


@pytest.fixture
def seeded(db, project):
    db.psql("CREATE TABLE t (id int PRIMARY KEY, email text, name text);"
            "INSERT INTO t SELECT i, 'u' || i || '@x.com', 'n' || i "
            "FROM generate_series(1, 300) i")
    p = project(dsn=db.dsn)
    p.add_mapping("s", mapping())
    return p


def test_only_changes_come_back(seeded, db):
    p = seeded
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0, err
    assert returned(err) == (300, 0)
    assert len(ops(p)) == 300
    assert db.scalar("SELECT count(*) FROM retl_state.s WHERE row_hash IS NOT NULL") == "300"

    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0, err
    assert returned(err) == (0, 0)
    assert len(ops(p)) == 300

    db.psql("UPDATE t SET name = 'changed' WHERE id IN (5, 6);"
            "DELETE FROM t WHERE id = 7;"
            "INSERT INTO t VALUES (301, 'u301@x.com', 'n301')")
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0, err
    assert returned(err) == (3, 1)
    assert sorted(ops(p, 300)) == [("remove", "7"), ("upsert", "301"),
                                   ("upsert", "5"), ("upsert", "6")]
    assert db.scalar("SELECT count(*) FROM retl_state.s") == "300"
    assert db.scalar("SELECT count(*) FROM retl_state.s WHERE key = '7'") == "0"

    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0, err
    assert returned(err) == (0, 0)
