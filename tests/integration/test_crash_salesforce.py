"""Crash safety on a destination that defers its outcomes: Salesforce
through its emulator, by sObject Collections and by a Bulk API 2.0 job.

Salesforce rows are deferred: each engine batch is staged (the batch
points), and the outcomes come back row by row after the run's last batch
(env->report: the report-commit and reported points, one commit a row); a
Bulk job's id is noted before its upload (note-saved).  The run is
SIGKILLed while stopped at each point (src/testpoint.h), as in
test_sync.py::test_crash_safety_sigkill, in a first run and in a mirror run
with changes, touches and deletions.  After the kill: every key of the
model the state calls synced is a record in Salesforce, and whatever
differs from the model is still planned.  After a clean run: Salesforce
equals the model record by record, with no duplicates, and an unchanged run
sends no API request.
"""

import json
import os
import sqlite3
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import crashpoint  # noqa: E402
import salesforce  # noqa: E402
from emulator_control import control, running  # noqa: E402
import planfile  # noqa: E402

ENV = {"SF_CLIENT_ID": "retl-client", "SF_CLIENT_SECRET": "retl-secret",
       "SF_REFRESH_TOKEN": "retl-refresh"}

# 200 records an engine batch.  Phase 1: 450 rows, 3 batches, 450 reports.
# Phase 2: 360 rows changed, 40 changed only in a column the mapping does
# not read (touched), 50 deleted: the push sends the spool's 410 operations
# in order, so the third batch holds 10 deletes.  "bulk" sends
# more than 100 rows of one operation as a Bulk job (its id noted first).
POINTS = {
    "run-begun": (1, 1),
    "batch-queued": (3, 3),
    "batch-send": (3, 3),
    "batch-commit": (3, 3),
    "batch-committed": (3, 3),
    "touch-commit": (0, 1),
    "touch-committed": (0, 1),
    "report-commit": (450, 410),
    "reported": (450, 410),
    "note-saved": (1, 1),          # bulk only: the job's id, before its upload
    "run-end": (1, 1),
    "run-recorded": (1, 1),
    "image-saved": (1, 1),
}
CASES = [(how, point, n) for how in ("collections", "bulk")
         for point, reach in POINTS.items() for n in (1, 3)
         if n <= max(reach) and (point != "note-saved" or how == "bulk")]


def test_deferred_points_are_killed_at_here():
    from test_sync import DEFERRED_POINTS
    assert DEFERRED_POINTS <= set(POINTS)


@pytest.fixture
def emulator():
    yield from running(salesforce)


def model(db):
    rows = db.psql("SELECT id, email, first, last FROM people", "-At", "-F", "\t")
    out = {}
    for line in rows.splitlines():
        i, e, f, last = line.split("\t")
        out[i] = {"Email": e, "FirstName": f, "LastName": last}
    return out


def live_records(url):
    """Salesforce's Contacts by External ID, failing on two of one"""
    recs = control(url, "records/Contact")["records"]
    ext = [r["External_Id__c"] for r in recs]
    dups = {e for e in ext if ext.count(e) > 1}
    assert not dups, f"duplicate records in Salesforce: {sorted(dups)[:5]}"
    return {r["External_Id__c"]: {k: r.get(k) for k in ("Email", "FirstName", "LastName")}
            for r in recs}


def api_requests(url):
    return [r for r in control(url, "counters")["requests"]
            if "/composite/" in r["path"] or "/jobs/" in r["path"]]


@pytest.mark.parametrize("how,point,n", CASES,
                         ids=[f"{h}-{p}-{n}" for h, p, n in CASES])
def test_salesforce_crash_at_every_point(project, db, emulator, how, point, n):
    url = emulator
    db.psql("""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text,
                             last text, note text);
        INSERT INTO people SELECT i, 'person' || i || '@example.com',
               'First' || i, 'Last' || i, 'n' FROM generate_series(1, 450) i;
    """)
    dest = {"type": "salesforce", "base_url": url, "client_id": "${SF_CLIENT_ID}",
            "client_secret": "${SF_CLIENT_SECRET}",
            "refresh_token": "${SF_REFRESH_TOKEN}"}
    if how == "bulk":
        dest["bulk_threshold"] = 100
    p = project(dsn=db.dsn, destinations={"sf": dest})
    p.add_mapping("people", {
        "source": "warehouse",
        "query": "SELECT id, email, first, last, note FROM people",
        "key": "id", "destination": "sf", "object": "Contact", "mode": "mirror",
        "on_remove": "delete", "safety": {"max_removed_ratio": 1},
        "match": {"External_Id__c": "id"},
        "fields": {"External_Id__c": {"from": "id", "type": "string"},
                   "Email": "email", "FirstName": "first", "LastName": "last"},
    })
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
        lost = (marked & set(want)) - set(have)
        assert not lost, f"marked synced but not in Salesforce: {sorted(lost)[:5]}"
        plan = p.path("plan.jsonl")
        rc, out, err = p.run("plan", "people", "--out", plan, env=ENV)
        assert rc == 0, (out, err)
        planned = {op["key"] for op in planfile.ops(plan)}
        differ = {k for k in set(want) | set(have) if want.get(k) != have.get(k)}
        differ |= marked - set(want)
        assert differ <= planned, \
            f"differ but not planned: {sorted(differ - planned)[:5]}"

    def recover():
        # exit 0: rows an earlier run's bulk job left unprocessed (a kill
        # before its upload completed) are sent again and synced by this run
        rc, out, err = p.run("run", "people", env=ENV)
        assert rc == 0, (out, err, p.run("failures", "people", env=ENV)[1])
        assert live_records(url) == model(db)
        assert synced() == set(model(db))
        sent = len(api_requests(url))
        rc, out, err = p.run("run", "people", env=ENV)
        assert rc == 0, (out, err)
        assert len(api_requests(url)) == sent, "an unchanged run sent requests"

    kill_and_check(0)
    recover()
    db.psql("UPDATE people SET last = last || ' v2' WHERE id <= 360;"
            "UPDATE people SET note = 'changed' WHERE id > 360 AND id <= 400;"
            "DELETE FROM people WHERE id > 400")
    kill_and_check(1)
    recover()
