"""A run in two phases (issue 15): read and diff into a spool with the
warehouse open, then the push with the warehouse closed; `retl plan --out`
writes the same spool and `retl apply` sends it.

- the warehouse session is gone before the first API request, so a role
  with idle_in_transaction_session_timeout and statement_timeout of 1 s
  still runs a 30,000-row push to a rate-limited HubSpot;
- `plan --out` then `apply` sends exactly the planned operations;
- `apply` refuses a plan whose state moved since (another run, the same
  plan applied twice), and a plan cut short or edited, sending nothing;
- a SIGKILL during `apply`, then `retl run`: HubSpot ends equal to the
  model with no duplicate and no create sent again;
- a run leaves no spool file behind, killed or not.
"""

import json
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import crashpoint  # noqa: E402
import hubspot  # noqa: E402
import planfile  # noqa: E402
from emulator_control import control, starter  # noqa: E402
from test_sync import make_customers, sync_def  # noqa: E402
from waiting import wait_for  # noqa: E402

TOKEN = "pat-na1-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ENV = {"HUBSPOT_TOKEN": TOKEN}

@pytest.fixture
def hubspot_emulator():
    yield from starter(hubspot, tokens=[TOKEN])


def people(db, n, start=1):
    db.psql(f"""
        CREATE TABLE IF NOT EXISTS people (id int PRIMARY KEY, email text,
                                           first text, last text);
        INSERT INTO people SELECT i, 'person' || i || '@example.com',
               'First' || i, 'Last' || i FROM generate_series({start}, {n}) i;
    """)


def hs_project(project, dsn, url, mode="upsert", rate=10000):
    p = project(dsn=dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
               "requests_per_10s": rate},
    })
    p.add_mapping("people", {
        "source": "warehouse",
        "query": "SELECT id, email, first, last FROM people",
        "key": "id", "destination": "hs", "object": "contacts", "mode": mode,
        "match": {"email": "email"},
        "fields": {"email": "email", "firstname": "first", "lastname": "last"},
    })
    return p


def live_emails(url):
    recs = control(url, "records/contacts")["results"]
    emails = [r["properties"]["email"] for r in recs]
    assert len(emails) == len(set(emails)), "duplicate records in HubSpot"
    return set(emails)


def batch_requests(url):
    return [r for r in control(url, "counters")["requests"] if "/batch/" in r["path"]]


@pytest.fixture
def proj(project, db):
    """100 customers to a file (test_sync.py's model and mapping)"""
    make_customers(db)
    p = project(dsn=db.dsn)
    p.add_mapping("customers", sync_def())
    return p


def spool_files(p):
    return [f for f in os.listdir(p.path("state")) if "spool" in f]


# ---- the warehouse is released before the push -----------------------------

def test_warehouse_session_is_gone_before_the_first_request(project, db, pg,
                                                             hubspot_emulator):
    url = hubspot_emulator(rate="100/10s")
    people(db, 30000)
    # a role whose sessions may not idle in a transaction or run a statement
    # for more than a second (README: a run holds the warehouse only while
    # it reads the model)
    role = f"reader_{db.name}"
    pg.psql(f"CREATE ROLE {role} LOGIN;"
            f"ALTER ROLE {role} SET idle_in_transaction_session_timeout = '1s';"
            f"ALTER ROLE {role} SET statement_timeout = '1s'")
    db.psql(f"GRANT SELECT ON people TO {role}")
    dsn = db.dsn.replace("user=postgres", f"user={role}")
    assert dsn != db.dsn
    p = hs_project(project, dsn, url, rate=100)

    def sessions():
        return int(db.scalar(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'"))

    # stopped right before its first batch is handed to HubSpot
    proc = crashpoint.start_paused(
        [p.retl_bin, "--config", p.dir, "run", "people"], "batch-send", 1,
        env=ENV)
    try:
        assert control(url, "counters")["requests"] == [], \
            "a request went out before the point"
        assert sessions() == 0, "retl's warehouse session is still open"
        proc.send_signal(signal.SIGCONT)
        # the whole push, 300 requests at HubSpot's 100 a 10 s, without it
        wait_for(lambda: proc.poll() is not None or sessions(), 600,
                 "the run to end")
        assert sessions() == 0, "a warehouse session came back during the push"
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert len(live_emails(url)) == 30000
    assert len(batch_requests(url)) >= 300
    assert spool_files(p) == []


# ---- plan --out, then apply ---------------------------------------------------

def test_apply_sends_exactly_the_plan_file(proj, db, tmp_path):
    plan = tmp_path / "plan.jsonl"
    rc, out, err = proj.run("plan", "customers", "--out", plan)
    assert rc == 0, err
    ops = planfile.ops(plan)
    assert len(ops) == 100 and not os.path.exists(proj.path("out.jsonl"))
    assert planfile.head(plan)["sync"] == "customers"
    assert planfile.tail(plan)["end"] == 100
    rc, out, err = proj.run("apply", plan)
    assert rc == 0, (out, err)
    assert "apply customers: all rows synced (exit 0)" in out
    sent = proj.read_jsonl()
    assert [(l["op"], l["key"], l["payload"]) for l in sent] == \
        [(o["op"], o["key"], o["payload"]) for o in ops]
    # the state took the acknowledgements: nothing left to do
    rc, out, err = proj.run("plan", "customers", "--out", plan)
    assert rc == 0 and planfile.ops(plan) == []

    # changes and removals (mirror) go the same way
    proj.add_mapping("customers", sync_def("mirror", safety={"max_removed_ratio": 1}))
    db.psql("UPDATE customers SET name = name || ' v2' WHERE id <= 10;"
            "DELETE FROM customers WHERE id > 95")
    rc, out, err = proj.run("plan", "customers", "--out", plan)
    assert rc == 0, err
    ops = planfile.ops(plan)
    assert sorted(o["change"] for o in ops) == ["changed"] * 10 + ["removed"] * 5
    n = len(proj.read_jsonl())
    rc, out, err = proj.run("apply", plan)
    assert rc == 0, (out, err)
    sent = proj.read_jsonl()[n:]
    assert [(l["op"], l["key"]) for l in sent] == [(o["op"], o["key"]) for o in ops]


def test_apply_refuses_a_plan_the_state_moved_past(proj, db, tmp_path):
    plan = tmp_path / "plan.jsonl"
    assert proj.run("plan", "customers", "--out", plan)[0] == 0
    assert proj.run("run", "customers")[0] == 0
    n = len(proj.read_jsonl())
    rc, out, err = proj.run("apply", plan)
    assert rc == 2, (out, err)
    assert "the state of sync customers changed since this plan was made" in err
    assert "nothing sent" in err
    assert len(proj.read_jsonl()) == n
    rc, out, err = proj.run("history", "customers")
    assert " failed " in out.splitlines()[1], out
    assert "changed since this plan was made" in out, out

    # the same plan applied twice: the first apply moved the state
    db.psql("UPDATE customers SET name = name || ' v2' WHERE id <= 3")
    assert proj.run("plan", "customers", "--out", plan)[0] == 0
    assert proj.run("apply", plan)[0] == 0
    n = len(proj.read_jsonl())
    rc, out, err = proj.run("apply", plan)
    assert rc == 2 and "changed since this plan was made" in err, err
    assert len(proj.read_jsonl()) == n


def test_apply_refuses_a_plan_cut_short_or_edited(proj, db, tmp_path):
    plan = tmp_path / "plan.jsonl"
    assert proj.run("plan", "customers", "--out", plan)[0] == 0
    text = plan.read_text()

    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(text.splitlines(True)[:50]))
    rc, out, err = proj.run("apply", cut)
    assert rc == 2 and "cut short after line 50: no end line" in err, err

    edited = tmp_path / "edited.jsonl"
    edited.write_text(text.replace("user7@example.com", "evil@example.com"))
    rc, out, err = proj.run("apply", edited)
    assert rc == 2 and "checksum mismatch" in err, err

    bad = tmp_path / "bad.jsonl"
    lines = text.splitlines(True)
    bad.write_text(lines[0] + '{"op":"drop","change":"added","key":"1","payload":{}}\n'
                   + "".join(lines[1:]))
    rc, out, err = proj.run("apply", bad)
    assert rc == 2 and f"{bad}:2: \"op\" is not upsert" in err, err

    rc, out, err = proj.run("apply", tmp_path / "missing.jsonl")
    assert rc == 2 and "No such file" in err, err
    rc, out, err = proj.run("apply")
    assert rc == 2 and "retl apply FILE" in err, err
    assert not os.path.exists(proj.path("out.jsonl"))


def test_sigkill_during_apply_then_run_converges(project, db, hubspot_emulator):
    url = hubspot_emulator(rate="10000/10s")
    people(db, 450)
    p = hs_project(project, db.dsn, url, mode="insert")
    plan = p.path("plan.jsonl")
    assert p.run("plan", "people", "--out", plan, env=ENV)[0] == 0
    assert len(planfile.ops(plan)) == 450
    # the second batch answered, its answers not committed: creates made
    # that the state only knows as intents
    crashpoint.run_and_kill_at([p.retl_bin, "--config", p.dir, "apply", plan],
                               "batch-commit", 2, env=ENV)
    assert spool_files(p) == []
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    assert live_emails(url) == {f"person{i}@example.com" for i in range(1, 451)}
    again = [r for r in batch_requests(url) if r["status"] == 409]
    assert not again, f"creates sent again after a lost answer: {again[:3]}"


def test_run_killed_during_the_push_leaves_no_spool(proj, db):
    crashpoint.run_and_kill_at([proj.retl_bin, "--config", proj.dir, "run", "customers"],
                               "batch-send", 1)
    assert spool_files(proj) == []
    rc, out, err = proj.run("run", "customers")
    assert rc == 0, err
    assert len({l["key"] for l in proj.read_jsonl()}) == 100
