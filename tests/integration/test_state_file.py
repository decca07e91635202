"""The state store as a file, and what `retl failures` lists (issue 11).

Case 10: a state store that has been used is never silently replaced by an
empty one.  A marker beside it (state/retl.db.marker) says the project has
a store; a store truncated to 0 bytes or deleted is refused with exit 2 and
nothing is sent; `retl reset --all` starts over on purpose; a store deleted
while a run uses it stops that run at its next commit.

Case 7: rows left pending that fail every run (a create applied by HubSpot
whose answer never came back) are listed by `retl failures` with their
reason, and `retl status` counts them.

Real parts: the built binary, a PostgreSQL cluster, the HubSpot emulator
over loopback (its drop_after knob applies a write, then drops the
connection without an answer).
"""

import json
import os
import re
import sqlite3
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import hubspot  # noqa: E402
from emulator_control import control, running  # noqa: E402
from waiting import wait_for  # noqa: E402

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
ENV = {"HUBSPOT_TOKEN": TOKEN}


@pytest.fixture
def emulator():
    yield from running(hubspot, tokens=[TOKEN], rate="10000/10s")




def batch_requests(url):
    return [r for r in control(url, "counters")["requests"]
            if "/batch/" in r["path"]]


def records(url):
    return control(url, "records/contacts")["results"]


def make_people(db, n):
    db.psql(f"""
        DROP TABLE IF EXISTS people;
        CREATE TABLE people (id int PRIMARY KEY, email text, first text);
        INSERT INTO people SELECT i, 'person' || i || '@example.com',
               'First' || i FROM generate_series(1, {n}) i;
    """)


def hubspot_project(project, db, url, mode, inflight=4):
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
               "requests_per_10s": 1000, "max_inflight": inflight},
    })
    p.add_mapping("people", {
        "source": "warehouse",
        "query": "SELECT id, email, first FROM people",
        "key": "id",
        "destination": "hs",
        "object": "contacts",
        "mode": mode,
        "match": {"email": "email"},
        "fields": {"email": "email", "firstname": "first"},
    })
    return p


def file_project(project, db):
    p = project(dsn=db.dsn)
    p.add_mapping("people", {
        "source": "warehouse",
        "query": "SELECT id, email, first FROM people",
        "key": "id",
        "destination": "out",
        "mode": "upsert",
        "fields": {"email": "email", "first": "first"},
    })
    return p


def out_lines(p):
    path = p.path("out.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def net_keys(p):
    keys = set()
    for line in p.read_jsonl():
        if line["op"] == "remove":
            keys.discard(json.dumps(line["key"]))
        else:
            keys.add(json.dumps(line["key"]))
    return keys


def last_run(p):
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return con.execute("SELECT status, added FROM runs ORDER BY id DESC"
                           " LIMIT 1").fetchone()
    finally:
        con.close()


def failing_in_status(p):
    rc, out, err = p.run("status", env=ENV)
    assert rc == 0, (out, err)
    for line in out.splitlines():
        cols = line.split()
        if cols and cols[0] == "people":
            return int(cols[6])
    raise AssertionError(out)


# ---- case 10: a store truncated or deleted is refused ------------------------

REFUSED = "nothing was sent. Restore it from a backup, or start over with `retl reset --all`"


def test_truncated_or_deleted_state_is_refused(project, db):
    make_people(db, 50)
    p = file_project(project, db)
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    assert out_lines(p) == 50
    state = p.path("state", "retl.db")
    assert os.path.exists(state + ".marker")

    # truncated to 0 bytes: refused, nothing sent, nothing created
    os.truncate(state, 0)
    rc, out, err = p.run("run", "people")
    assert rc == 2, (out, err)
    assert f"retl: state store {state} is empty (0 bytes), but this project " \
           f"has used it before ({state}.marker says so)" in err
    assert REFUSED in err
    assert out_lines(p) == 50
    assert os.path.getsize(state) == 0
    # every verb that reads the store says the same
    for verb in (["status"], ["plan", "people"], ["failures", "people"]):
        rc, out, err = p.run(*verb)
        assert rc == 2 and "is empty (0 bytes)" in err, (verb, out, err)

    # deleted: refused the same way, and not created again
    for side in ("", "-wal", "-shm"):
        if os.path.exists(state + side):
            os.remove(state + side)
    rc, out, err = p.run("run", "people")
    assert rc == 2, (out, err)
    assert f"retl: state store {state} is missing, but this project has " \
           f"used it before" in err
    assert REFUSED in err
    assert not os.path.exists(state)
    assert out_lines(p) == 50

    # starting over is explicit: a new store, every row sent again
    rc, out, err = p.run("reset", "--all")
    assert rc == 0, (out, err)
    assert "started over" in out
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    assert last_run(p) == ("ok", 50)
    assert len(net_keys(p)) == 50
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)


def test_other_projects_state_is_refused(project, db):
    """A state file copied from another project is not taken as this one's."""
    make_people(db, 5)
    a = file_project(project, db)
    b = file_project(project, db)
    for p in (a, b):
        rc, out, err = p.run("run", "people")
        assert rc == 0, (out, err)
    with open(b.path("state", "retl.db"), "rb") as f:
        other = f.read()
    state = a.path("state", "retl.db")
    for side in ("-wal", "-shm"):
        if os.path.exists(state + side):
            os.remove(state + side)
    with open(state, "wb") as f:
        f.write(other)
    rc, out, err = a.run("run", "people")
    assert rc == 2, (out, err)
    assert f"state store {state} is not the one this project used" in err
    assert out_lines(a) == 5


def test_state_deleted_during_a_run_stops_it(project, db, emulator):
    url = emulator
    make_people(db, 3000)
    # each batch answered slowly, one at a time: the run is still sending
    # when the file goes (30 batches of 100)
    control(url, "config", {"latency": 0.3})
    p = hubspot_project(project, db, url, "upsert", inflight=1)
    state = p.path("state", "retl.db")
    proc = subprocess.Popen([p.retl_bin, "--config", p.dir, "run", "people"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, **ENV))
    try:
        def sending():
            assert proc.poll() is None, proc.communicate()
            return batch_requests(url)
        wait_for(sending, 60, "the first batch at the emulator")
        os.remove(state)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = out.decode(), err.decode()
    assert proc.returncode == 2, (out, err)
    assert f"state store {state} was deleted while this run was using it" in err
    # it stopped: the batches already handed to the HTTP engine went out,
    # the rest were never sent
    sent = len(batch_requests(url))
    assert sent < 30, (sent, out, err)

    # the next run refuses the missing store ...
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 2 and "is missing, but this project has used it" in err, (out, err)
    assert len(batch_requests(url)) == sent
    # ... until started over; upserts by email leave no duplicates
    control(url, "config", {"latency": 0})
    rc, out, err = p.run("reset", "--all", env=ENV)
    assert rc == 0, (out, err)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    emails = [r["properties"]["email"] for r in records(url)]
    assert len(emails) == len(set(emails)) == 3000


# ---- case 7: rows left pending are listed and counted -------------------------

def failures(p):
    rc, out, err = p.run("failures", "people", env=ENV)
    assert rc == 0, (out, err)
    rows = re.findall(r"^(\w+) +key (\S+)  \(attempts (\d+), since [^)]+\)\n    (.*)$",
                      out, re.M)
    m = re.search(r"^(\d+) rows? failing in people$", out, re.M)
    assert m, out
    assert int(m.group(1)) == len(rows), out
    return rows


def test_pending_rows_that_fail_every_run_are_listed(project, db, emulator):
    url = emulator
    make_people(db, 150)
    # HubSpot applies every write but no answer comes back
    control(url, "config", {"drop_after": 1.0})
    p = hubspot_project(project, db, url, "insert")

    rc, out, err = p.run("run", "people", env=ENV)
    # no answer at all is a destination error (exit 4), not rows refused
    assert rc == 4, (out, err)
    assert len(records(url)) == 150       # the creates happened
    rows = failures(p)
    assert len(rows) == 150, rows[:3]
    assert {r[0] for r in rows} == {"pending"}
    assert {r[1] for r in rows} == {str(i) for i in range(1, 151)}
    # the reason is the run's own: the create got no answer
    assert all(r[2] == "1" and r[3].startswith("no response after 1 attempt")
               for r in rows), rows[:3]
    assert failing_in_status(p) == 150

    # the next run's lookups get no answer either: still listed, counted,
    # with the latest reason and the attempts so far
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 4, (out, err)
    rows = failures(p)
    assert len(rows) == 150
    assert all(r[0] == "pending" and r[2] == "2" and
               r[3].startswith("no response after ") and
               not r[3].startswith("no response after 1 attempt:")
               for r in rows), rows[:3]
    assert failing_in_status(p) == 150
    assert len(records(url)) == 150

    # answers come back: the lookups find the records, nothing is left
    control(url, "config", {"drop_after": 0})
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert failures(p) == []
    assert failing_in_status(p) == 0
    emails = [r["properties"]["email"] for r in records(url)]
    assert len(emails) == len(set(emails)) == 150
