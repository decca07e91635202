"""Crash safety on an HTTP destination: HubSpot through its emulator.

The same pause points as the file destination's crash test
(test_sync.py::test_crash_safety_sigkill, src/testpoint.h): the run is
SIGKILLed while it is stopped at a point, on each side of every commit.
HubSpot's engine keeps several batches in flight, so a run stopped at a
point usually has other batches out: the emulator applies them and their
answers are lost with the process.  Two modes: mirror (upserts by email,
then changes, touches and archives) and insert (creates, whose intents are
written before they are sent and looked up after a lost answer).

After the kill: every key the state calls synced is a record in HubSpot,
and whatever differs between HubSpot and the model is still planned.
After a clean run: HubSpot equals the model record by record, with no
duplicate records and no create sent again for a record a lost create made
(a 409 from HubSpot), and an unchanged run sends no batch at all.
"""

import json
import os
import sqlite3
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import crashpoint  # noqa: E402
import hubspot  # noqa: E402
from emulator_control import control, running  # noqa: E402
import planfile  # noqa: E402

TOKEN = "pat-na1-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ENV = {"HUBSPOT_TOKEN": TOKEN}

# 100 records a batch.  Phase 1: 350 rows, 4 batches.  Phase 2 (mirror):
# 220 rows changed, 60 changed only in a column the mapping does not read
# (touched), 50 removed (archived): the push sends the spool's 270
# operations in order, so the third batch holds 20 changes and the removals.
POINTS = {
    "run-begun": (1, 1),
    "batch-queued": (4, 3),
    "batch-send": (4, 3),
    "batch-commit": (4, 3),
    "batch-committed": (4, 3),
    "touch-commit": (0, 1),
    "touch-committed": (0, 1),
    "run-end": (1, 1),
    "run-recorded": (1, 1),
    "image-saved": (1, 1),
}
CASES = [(mode, point, n) for mode in ("mirror", "insert")
         for point, reach in POINTS.items() for n in (1, 3)
         if n <= (reach[0] if mode == "insert" else max(reach))]


@pytest.fixture
def emulator():
    yield from running(hubspot, tokens=[TOKEN], rate="10000/10s")


def email(i):
    return f"person{i}@example.com"


def model(db):
    rows = db.psql("SELECT id, email, first, last FROM people", "-At", "-F", "\t")
    out = {}
    for line in rows.splitlines():
        i, e, f, last = line.split("\t")
        out[i] = {"email": e, "firstname": f, "lastname": last}
    return out


def live_records(url):
    """HubSpot's live contacts by key (the id in the email), failing on
    two records of one email"""
    recs = control(url, "records/contacts")["results"]
    emails = [r["properties"].get("email") for r in recs]
    dups = {e for e in emails if emails.count(e) > 1}
    assert not dups, f"duplicate records in HubSpot: {sorted(dups)[:5]}"
    out = {}
    for r in recs:
        pr = r["properties"]
        key = pr["email"][len("person"):-len("@example.com")]
        out[key] = {"email": pr["email"], "firstname": pr.get("firstname"),
                    "lastname": pr.get("lastname")}
    return out


def batch_requests(url):
    return [r for r in control(url, "counters")["requests"] if "/batch/" in r["path"]]


@pytest.mark.parametrize("mode,point,n", CASES,
                         ids=[f"{m}-{p}-{n}" for m, p, n in CASES])
def test_hubspot_crash_at_every_point(project, db, emulator, mode, point, n):
    url = emulator
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text,
                             last text, note text);
        INSERT INTO people SELECT i, 'person' || i || '@example.com',
               'First' || i, 'Last' || i, 'n' FROM generate_series(1, 350) i;
    """)
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
               "requests_per_10s": 10000},
    })
    m = {
        "source": "warehouse",
        "query": "SELECT id, email, first, last, note FROM people",
        "key": "id", "destination": "hs", "object": "contacts", "mode": mode,
        "match": {"email": "email"},
        "fields": {"email": "email", "firstname": "first", "lastname": "last"},
    }
    if mode == "mirror":
        m["on_remove"] = "archive"
        m["safety"] = {"max_removed_ratio": 1}
    p.add_mapping("people", m)
    statefile = p.path("state", "retl.db")

    def synced():
        if not os.path.exists(statefile):
            return set()
        con = sqlite3.connect(statefile)
        try:
            return {k for k, in con.execute(
                "SELECT key FROM cache WHERE sync='people' AND status=1")}
        finally:
            con.close()

    def kill_and_check(phase):
        if POINTS[point][phase] < n:
            return
        crashpoint.run_and_kill_at(
            [p.retl_bin, "--config", p.dir, "run", "people"], point, n, env=ENV)
        have, want, marked = live_records(url), model(db), synced()
        # a key of the model the state calls synced is a record in HubSpot
        # (one that left the model may be archived already, its answer lost
        # with the process: it is planned again below)
        lost = (marked & set(want)) - set(have)
        assert not lost, f"marked synced but not in HubSpot: {sorted(lost)[:5]}"
        # whatever differs from the model is still to be sent, and a key
        # that left the model but is still synced is still to be removed
        plan = p.path("plan.jsonl")
        rc, out, err = p.run("plan", "people", "--out", plan, env=ENV)
        assert rc == 0, (out, err)
        planned = {op["key"] for op in planfile.ops(plan)}
        differ = {k for k in set(want) | set(have) if want.get(k) != have.get(k)}
        differ |= marked - set(want)
        assert differ <= planned, \
            f"differ but not planned: {sorted(differ - planned)[:5]}"

    def recover():
        rc, out, err = p.run("run", "people", env=ENV)
        assert rc == 0, (out, err, p.run("failures", "people", env=ENV)[1])
        assert live_records(url) == model(db)
        assert synced() == set(model(db))
        # a create whose answer the kill lost is looked up, not sent again
        # (HubSpot would refuse it: 409, the email is taken)
        again = [r for r in batch_requests(url) if r["status"] == 409]
        assert not again, f"creates sent again after a lost answer: {again[:3]}"
        sent = len(batch_requests(url))
        rc, out, err = p.run("run", "people", env=ENV)
        assert rc == 0, (out, err)
        assert len(batch_requests(url)) == sent, "an unchanged run sent requests"

    kill_and_check(0)
    recover()
    if mode != "mirror":
        return
    db.psql("UPDATE people SET last = last || ' v2' WHERE id <= 220;"
            "UPDATE people SET note = 'changed' WHERE id > 220 AND id <= 280;"
            "DELETE FROM people WHERE id > 300")
    kill_and_check(1)
    recover()
    archived = control(url, "records/contacts?archived=1")["archived"]
    assert sorted(r["properties"]["email"] for r in archived) == \
        sorted(email(i) for i in range(301, 351))
