"""The sync engine end to end: PostgreSQL model -> mapping -> diff -> file
destination -> state store, through the real binary.

The file destination appends one JSON line per acknowledged operation; the
"net state" of the file (upserts set a key, removes delete it) must equal
the model after every completed run.
"""

import json
import re
import os
import signal
import sqlite3
import subprocess
import time

import pytest

import crashpoint
from conftest import STATE_IN_PG, wait_for_lock
from waiting import wait_for
import planfile  # noqa: E402

N = 100


def net_state(lines):
    state = {}
    for line in lines:
        if line["op"] == "remove":
            state.pop(json.dumps(line["key"]), None)
        else:
            state[json.dumps(line["key"])] = line["payload"]
    return state


def make_customers(db, n=N, table="customers"):
    db.psql(f"""
        DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} (
            id int PRIMARY KEY, email text, name text, plan text,
            mrr numeric(10,2), active bool, created_at timestamptz);
        INSERT INTO {table}
        SELECT i, 'User' || i || '@Example.com', 'name ' || i,
               CASE WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END,
               (i * 1.5)::numeric(10,2), i % 2 = 0,
               timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour'
        FROM generate_series(1, {n}) i;
    """)


def sync_def(mode="upsert", query="SELECT * FROM customers", **extra):
    d = {
        "source": "warehouse",
        "query": query,
        "key": "id",
        "destination": "out",
        "mode": mode,
        "fields": {
            "email": {"from": "email", "transform": ["trim", "lower"]},
            "name": "name",
            "mrr": {"from": "mrr", "type": "number"},
            "active": "active",
        },
    }
    if mode == "mirror":
        d["on_remove"] = "delete"
    d.update(extra)
    return d


def expected_payloads(db, table="customers"):
    out = db.psql(f"SELECT id, lower(trim(email)), name, mrr, active FROM {table} "
                  f"ORDER BY id", "-At", "-F", "\t")
    exp = {}
    for line in out.splitlines():
        i, email, name, mrr, active = line.split("\t")
        exp[json.dumps(i)] = {"email": email, "name": name,
                              "mrr": float(mrr), "active": active == "t"}
    return exp


def norm(state):
    return {k: dict(v, mrr=float(v["mrr"])) for k, v in state.items()}


@pytest.fixture
def proj(project, db):
    make_customers(db)
    return project(dsn=db.dsn)


def test_first_second_and_changed_rows(proj, db):
    proj.add_mapping("customers", sync_def())
    rc, out, err = proj.run("run", "customers")
    assert rc == 0, err
    lines = proj.read_jsonl()
    assert len(lines) == N
    assert all(l["op"] == "upsert" for l in lines)
    assert lines[0]["payload"] == {"active": False, "email": "user1@example.com",
                                   "mrr": 1.5, "name": "name 1"}
    assert norm(net_state(lines)) == expected_payloads(db)

    rc, out, err = proj.run("run", "customers")
    assert rc == 0, err
    assert len(proj.read_jsonl()) == N, "an unchanged re-run sends nothing"
    assert "unchanged         100" in out

    db.psql("UPDATE customers SET name = name || ' (changed)' WHERE id <= 10")
    rc, out, err = proj.run("run", "customers")
    assert rc == 0, err
    new = proj.read_jsonl()[N:]
    assert len(new) == 10
    assert sorted(int(l["key"]) for l in new) == list(range(1, 11))
    assert all(l["payload"]["name"].endswith("(changed)") for l in new)
    assert norm(net_state(proj.read_jsonl())) == expected_payloads(db)


def test_synced_rows_say_their_run_and_change(proj, db):
    """A synced row records the run that last changed it and how
    (cache.last_run, last_change: 0 added, 1 changed); outcomes keep only
    what did not end synced, and removals (their row goes).  What `sqlite3
    state/retl.db` answers about a row."""
    proj.add_mapping("customers", sync_def("mirror"))
    assert proj.run("run", "customers")[0] == 0
    db.psql("UPDATE customers SET name = name || ' (changed)' WHERE id <= 3;"
            "DELETE FROM customers WHERE id = 50")
    assert proj.run("run", "customers")[0] == 0
    runs = [r for r, in proj.state_rows("SELECT id FROM runs ORDER BY id")]
    rows = dict(((int(k)), (r, c)) for k, r, c in proj.state_rows(
        "SELECT key, last_run, last_change FROM cache"))
    outcomes = [(r, str(k), o) for r, k, o in proj.state_rows(
        "SELECT run_id, key, outcome FROM outcomes")]
    assert len(runs) == 2
    assert {k: rows[k] for k in (1, 2, 3, 4)} == {
        1: (runs[1], 1), 2: (runs[1], 1), 3: (runs[1], 1), 4: (runs[0], 0)}
    assert 50 not in rows and len(rows) == N - 1
    assert outcomes == [(runs[1], "50", "removed")]


@pytest.mark.parametrize("batch_size,rows,batches", [(None, 25000, 2), (7, 20, 3)])
def test_file_batches(project, db, batch_size, rows, batches):
    """The file destination commits every batch_size rows (default 20,000:
    one fdatasync a batch), and says how many batches in "api calls"."""
    make_customers(db, rows, table="many")
    out = {"type": "file", "path": "out.jsonl"}
    if batch_size:
        out["batch_size"] = batch_size
    p = project(dsn=db.dsn, destinations={"out": out})
    p.add_mapping("many", sync_def(query="SELECT * FROM many"))
    rc, stdout, err = p.run("run", "many")
    assert rc == 0, err
    assert re.search(rf"api calls\s+{batches}\n", stdout), stdout
    assert len(p.read_jsonl()) == rows


def test_unmapped_column_change_sends_nothing(proj, db):
    proj.add_mapping("customers", sync_def())
    assert proj.run("run", "customers")[0] == 0
    # plan is not mapped: the source line changes, the payload does not
    db.psql("UPDATE customers SET plan = 'enterprise' WHERE id <= 10")
    rc, out, err = proj.run("run", "customers")
    assert rc == 0, err
    assert len(proj.read_jsonl()) == N


def test_mirror_removes_deleted_rows(proj, db):
    proj.add_mapping("customers", sync_def("mirror"))
    assert proj.run("run", "customers")[0] == 0
    db.psql("DELETE FROM customers WHERE id IN (3, 14, 15, 92, 100)")
    rc, out, err = proj.run("run", "customers")
    assert rc == 0, err
    new = proj.read_jsonl()[N:]
    assert len(new) == 5
    assert all(l["op"] == "remove" and l["payload"] is None for l in new)
    assert sorted(int(l["key"]) for l in new) == [3, 14, 15, 92, 100]
    assert norm(net_state(proj.read_jsonl())) == expected_payloads(db)
    # removed rows are forgotten: nothing more next time
    assert proj.run("run", "customers")[0] == 0
    assert len(proj.read_jsonl()) == N + 5


def test_upsert_mode_forgets_rows_that_left(proj, db):
    proj.add_mapping("customers", sync_def())
    assert proj.run("run", "customers")[0] == 0
    db.psql("DELETE FROM customers WHERE id = 7")
    assert proj.run("run", "customers")[0] == 0
    assert len(proj.read_jsonl()) == N, "upsert mode sends no removes"
    db.psql("INSERT INTO customers (id, email, name, mrr, active) "
            "VALUES (7, 'back@example.com', 'back', 1, true)")
    assert proj.run("run", "customers")[0] == 0
    new = proj.read_jsonl()[N:]
    assert [l["key"] for l in new] == ["7"], "a row that comes back is new again"


def test_mapping_change_resends_every_row_once(proj, db):
    proj.add_mapping("customers", sync_def())
    assert proj.run("run", "customers")[0] == 0
    d = sync_def()
    d["fields"]["plan"] = "plan"
    proj.add_mapping("customers", d)
    rc, out, err = proj.run("run", "customers")
    assert rc == 0, err
    new = proj.read_jsonl()[N:]
    assert len(new) == N
    assert all("plan" in l["payload"] for l in new)
    assert proj.run("run", "customers")[0] == 0
    assert len(proj.read_jsonl()) == 2 * N


def test_full_resync_and_reset(proj, db):
    proj.add_mapping("customers", sync_def())
    assert proj.run("run", "customers")[0] == 0
    rc, out, err = proj.run("run", "customers", "--full-resync")
    assert rc == 0, err
    assert len(proj.read_jsonl()) == 2 * N
    assert proj.run("run", "customers")[0] == 0
    assert len(proj.read_jsonl()) == 2 * N

    rc, out, err = proj.run("reset", "customers")
    assert rc == 0, err
    assert proj.run("run", "customers")[0] == 0
    assert len(proj.read_jsonl()) == 3 * N


def test_plan_changes_nothing(proj, db, tmp_path):
    proj.add_mapping("customers", sync_def())
    plan_path = tmp_path / "plan.jsonl"
    rc, out, err = proj.run("plan", "customers", "--out", plan_path)
    assert rc == 0, err
    assert "add               100" in out
    assert "requests            1" in out
    planned = planfile.ops(plan_path)
    assert len(planned) == N
    assert planned[0]["change"] == "added"
    assert not os.path.exists(proj.path("out.jsonl"))
    # plan again: same answer, no state was written
    rc, out, err = proj.run("plan", "customers")
    assert rc == 0 and "add               100" in out
    assert proj.run("run", "customers")[0] == 0
    rc, out, err = proj.run("plan", "customers")
    assert "unchanged         100" in out and "add                 0" in out


def test_bad_rows_are_rejected_with_reasons(proj, db):
    db.psql("""
        ALTER TABLE customers DROP CONSTRAINT customers_pkey;
        ALTER TABLE customers ALTER COLUMN id DROP NOT NULL;
        UPDATE customers SET email = 'not-an-email' WHERE id = 5;
        UPDATE customers SET name = 'abc' WHERE id = 6;
        INSERT INTO customers (id, email, name) VALUES (NULL, 'nokey@example.com', 'x');
        INSERT INTO customers (id, email, name, mrr, active)
            VALUES (8, 'dup@example.com', 'name 8 dup', 1, true);
    """)
    d = sync_def(query="SELECT * FROM customers ORDER BY id NULLS LAST, name")
    d["fields"]["email"]["transform"].append({"match": "^[^@\\s]+@[^@\\s]+$"})
    d["fields"]["score"] = {"from": "name", "transform": [{"extract": "[a-z]+"}],
                            "type": "integer"}
    # integer cast fails for every row unless the name is numeric: limit it
    d["fields"]["score"] = {"from": "name", "transform": [{"replace": "^name .*", "with": "1"}],
                            "type": "integer"}
    proj.add_mapping("customers", d)
    rc, out, err = proj.run("run", "customers")
    assert rc == 1, (out, err)
    lines = proj.read_jsonl()
    keys = sorted(int(l["key"]) for l in lines)
    assert keys == [i for i in range(1, N + 1) if i not in (5, 6)]
    assert "rejected            4" in out

    rc, out, err = proj.run("failures", "customers")
    assert rc == 0, err
    assert "key 5" in out and 'email: value "not-an-email" does not match' in out
    assert "key 6" in out and 'score: cannot convert "abc" to integer' in out
    assert "null key" in out
    assert "duplicate key" in out and "key 8" in out

    # failed rows are retried on the next run: still failing, still reported
    rc, out, err = proj.run("run", "customers")
    assert rc == 1
    assert "rejected            4" in out
    # fixed in the model -> sent, and no longer failing
    db.psql("UPDATE customers SET email = 'five@example.com' WHERE id = 5;"
            "UPDATE customers SET name = 'name 6' WHERE id = 6;"
            "DELETE FROM customers WHERE id IS NULL OR name = 'name 8 dup'")
    rc, out, err = proj.run("run", "customers")
    assert rc == 0, (out, err)
    assert "retried             2" in out
    rc, out, err = proj.run("failures", "customers")
    assert "0 rows failing" in out


def test_row_refused_in_a_run_of_only_refusals_is_retried(proj, db):
    """A run whose only writes are refusals (two acknowledged rows now
    refused by the mapping, nothing else changed) still leaves the rows
    failing for the next run: restored to the value the destination holds,
    or fixed to a new one, each is retried, sent and no longer listed by
    `retl failures`.  (The saved cache image must not outlive that run: it
    holds both rows as acknowledged.)"""
    d = sync_def()
    d["fields"]["email"]["transform"].append({"match": "^[^@\\s]+@[^@\\s]+$"})
    proj.add_mapping("customers", d)
    assert proj.run("run", "customers")[0] == 0
    assert len(proj.read_jsonl()) == N

    db.psql("UPDATE customers SET email = 'not-an-email' WHERE id IN (5, 6)")
    rc, out, err = proj.run("run", "customers")
    assert rc == 1, (out, err)
    assert "rejected            2" in out and "unchanged          98" in out, out
    assert len(proj.read_jsonl()) == N, "nothing sent"
    rc, out, err = proj.run("failures", "customers")
    assert "2 rows failing" in out and "key 5" in out and "key 6" in out, out

    # 5 back to the value the destination holds, 6 fixed to a new one
    db.psql("UPDATE customers SET email = 'User5@Example.com' WHERE id = 5;"
            "UPDATE customers SET email = 'six@example.com' WHERE id = 6")
    rc, out, err = proj.run("run", "customers")
    assert rc == 0, (out, err)
    assert "retried             2" in out and "changed             0" in out, out
    new = proj.read_jsonl()[N:]
    assert sorted(l["key"] for l in new) == ["5", "6"], new
    assert norm(net_state(proj.read_jsonl())) == expected_payloads(db)
    rc, out, err = proj.run("failures", "customers")
    assert "0 rows failing" in out, out
    rc, out, err = proj.run("run", "customers")
    assert rc == 0 and "unchanged         100" in out, out


def test_safety_refuses_empty_model(proj, db):
    proj.add_mapping("customers", sync_def("mirror"))
    assert proj.run("run", "customers")[0] == 0
    db.psql("DELETE FROM customers")
    rc, out, err = proj.run("run", "customers")
    assert rc == 5, (out, err)
    assert "refuse_empty_model" in out + err
    assert len(proj.read_jsonl()) == N, "nothing removed"
    rc, out, err = proj.run("status")
    assert " failed " in out.splitlines()[1] and "refuse_empty_model" in out, out


def test_safety_max_removed_ratio(proj, db):
    proj.add_mapping("customers", sync_def("mirror", safety={"max_removed_ratio": 0.1}))
    assert proj.run("run", "customers")[0] == 0
    db.psql("DELETE FROM customers WHERE id <= 15")
    rc, out, err = proj.run("run", "customers")
    assert rc == 5, (out, err)
    assert "would remove 15 of 100 synced rows (15.0%), over safety.max_removed_ratio (10.0%) by 5.0 points" in out + err
    assert len(proj.read_jsonl()) == N
    # within the limit: removed
    db.psql("INSERT INTO customers (id, email, name, mrr, active) "
            "SELECT i, 'u' || i || '@x.com', 'n', 1, true FROM generate_series(1, 10) i")
    rc, out, err = proj.run("run", "customers")
    assert rc == 0, (out, err)
    assert sum(1 for l in proj.read_jsonl() if l["op"] == "remove") == 5


def test_safety_max_removed(proj, db):
    proj.add_mapping("customers", sync_def("mirror", safety={"max_removed": 3}))
    assert proj.run("run", "customers")[0] == 0
    db.psql("DELETE FROM customers WHERE id <= 5")
    rc, out, err = proj.run("run", "customers")
    assert rc == 5
    assert "would remove 5 rows, over safety.max_removed (3) by 2" in out + err
    assert len(proj.read_jsonl()) == N


@pytest.mark.parametrize("query", [
    "DELETE FROM customers",
    "DELETE FROM customers RETURNING id, email, name, mrr, active",
    "UPDATE customers SET name = 'x' RETURNING id, email, name, mrr, active",
    "WITH d AS (DELETE FROM customers RETURNING *) SELECT * FROM d",
    "SELECT * FROM customers; DELETE FROM customers",
])
def test_queries_that_write_fail_and_change_nothing(proj, db, query):
    proj.add_mapping("customers", sync_def(query=query))
    for verb in (["check"], ["run", "customers"]):
        rc, out, err = proj.run(*verb)
        assert rc == 3, (verb, out, err)
        # check names the sync
        who = "check customers: " if verb == ["check"] else ""
        assert f"retl: {who}source warehouse:" in err
        assert ("read-only transaction" in err or "a model must be a SELECT" in err
                or "multiple commands" in err), err
    assert db.scalar("SELECT count(*) FROM customers WHERE name <> 'x'") == str(N)
    assert not proj.read_jsonl()


@pytest.mark.skipif(STATE_IN_PG, reason="watches the lock file; a "
                    "PostgreSQL store's lock: test_state_pg.py")
def test_lock_refuses_a_second_run(proj, db):
    db.psql("CREATE OR REPLACE FUNCTION slow(int) RETURNS int "
            "LANGUAGE sql AS 'SELECT $1 FROM pg_sleep(0.02)'")
    proj.add_mapping("customers", sync_def(query="SELECT slow(id) AS id, email, name, mrr, active FROM customers"))
    p = subprocess.Popen([proj.retl_bin, "--config", proj.dir, "run", "customers"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lock(proj.dir, p.pid)
        rc, out, err = proj.run("run", "customers")
        assert rc == 2
        assert f"sync customers is already running (pid {p.pid})" in err
    finally:
        p.wait(timeout=60)
    assert p.returncode == 0


def test_secret_never_leaves(project, db, tmp_path):
    secret = "s3cr3t-Pa55word-never-print"
    make_customers(db)
    dsn = db.dsn + " password=${RETL_TEST_PW}"
    p = project(dsn=dsn)
    p.add_mapping("customers", sync_def())
    env = {"RETL_TEST_PW": secret}
    outputs = []
    plan = tmp_path / "plan.jsonl"
    for args in (["check"], ["plan", "customers", "--out", plan],
                 ["run", "customers"], ["status"], ["history", "customers"],
                 ["failures", "customers"], ["--log-format", "json", "run", "customers"]):
        rc, out, err = p.run(*args, env=env)
        assert rc == 0, (args, out, err)
        outputs += [out, err]
    # a connection failure must not echo the DSN either
    bad = project(dsn="host=/nonexistent-dir port=1 user=postgres password=${RETL_TEST_PW}")
    bad.add_mapping("customers", sync_def())
    for args in (["check"], ["run", "customers"]):
        rc, out, err = bad.run(*args, env=env)
        assert rc == 3, (out, err)
        assert "cannot connect" in err
        outputs += [out, err]
    blob = "\n".join(outputs)
    assert secret not in blob
    for root, _, files in os.walk(tmp_path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert secret.encode() not in fh.read(), f"secret found in {f}"


@pytest.mark.skipif(STATE_IN_PG, reason="the SQLite file")
def test_state_file_is_private(proj, db):
    proj.add_mapping("customers", sync_def())
    assert proj.run("run", "customers")[0] == 0
    st = os.stat(proj.path("state", "retl.db"))
    assert st.st_mode & 0o777 == 0o600
    con = sqlite3.connect(proj.path("state", "retl.db"))
    n, = con.execute("SELECT count(*) FROM cache WHERE sync='customers' AND status=1").fetchone()
    assert n == N
    runs = con.execute("SELECT status, read, added FROM runs").fetchall()
    assert runs == [("ok", N, N)]
    con.close()


# The pause points of src/testpoint.h, and how often each phase of the
# crash scenario below reaches each (file destination, 2000 rows a batch):
# phase 1, the first run: 5000 rows in 3 batches and one row the mapping
# rejects; phase 2: 3000 rows changed, 500 only in a column the mapping
# does not read (their source hash is "touched"), 1500 removed and the
# rejected row gone (forgotten, nothing to remove).  The push sends the
# spool's 4500 operations in order, so the third batch holds removals only.
CRASH_POINTS = {
    "run-begun": (1, 1),            # lock taken, run row open
    "note-saved": (1, 1),           # the file's length noted at open
    "reject-commit": (1, 0),        # a rejected row written, not committed
    "rejected": (1, 0),             # ... committed
    "batch-queued": (3, 3),         # a batch full, nothing of it in the state
    "batch-send": (3, 3),           # its intents committed, not handed over
    "batch-commit": (3, 3),         # answered, results written, not committed
    "batch-committed": (3, 3),      # results committed
    "touch-commit": (0, 1),         # new source hashes written, not committed
    "touch-committed": (0, 1),
    "forget-commit": (0, 1),        # a gone row forgotten, not committed
    "forgotten": (0, 1),
    "run-end": (1, 1),              # every batch committed, run row open
    "run-recorded": (1, 1),         # run row closed, cache image not saved
    "image-saved": (1, 1),          # cache image saved, lock still held
}
CRASH_CASES = [(point, n) for point, reach in CRASH_POINTS.items()
               for n in (1, 3) if n <= max(reach)]
# points only a destination that defers its outcomes reaches (one commit per
# row reported): killed at in test_crash_salesforce.py
DEFERRED_POINTS = {"report-commit", "reported"}
# a run's sync logs in the warehouse, not yet noted written in the store:
# killed at in test_audit.py
AUDIT_POINTS = {"audit-written"}
# points only "diff": "warehouse" reaches (its table written before the
# push, and after it): killed at in test_warehouse_diff.py
WHDIFF_POINTS = {"whdiff-marked", "whdiff-writeback", "whdiff-written"}
BAD = json.dumps("9999")   # the row the mapping rejects in phase 1


def test_every_pause_point_has_a_crash_case():
    """A point added to the sources is killed at by the crash test."""
    assert crashpoint.source_points() == \
        set(CRASH_POINTS) | DEFERRED_POINTS | AUDIT_POINTS | WHDIFF_POINTS


def test_pause_hook_only_pauses(project, db):
    """RETL_TEST_PAUSE_AT is harmless: a run paused at a point and sent
    SIGCONT goes on and completes; a malformed value is named and ignored;
    a point the run never reaches changes nothing."""
    make_customers(db, 300)
    p = project(dsn=db.dsn)
    p.add_mapping("customers", sync_def())
    proc = crashpoint.start_paused(
        [p.retl_bin, "--config", p.dir, "run", "customers"], "batch-send", 1)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=300) == 0
    assert norm(net_state(p.read_jsonl())) == expected_payloads(db)
    db.psql("UPDATE customers SET name = name || ' v2' WHERE id <= 10")
    rc, out, err = p.run("run", "customers",
                         env={"RETL_TEST_PAUSE_AT": "batch-send:0"})
    assert rc == 0, err
    assert "RETL_TEST_PAUSE_AT=batch-send:0 ignored" in err
    db.psql("UPDATE customers SET name = name || ' v3' WHERE id <= 10")
    rc, out, err = p.run("run", "customers",
                         env={"RETL_TEST_PAUSE_AT": "batch-send:99"})
    assert rc == 0, err
    assert norm(net_state(p.read_jsonl())) == expected_payloads(db)


@pytest.mark.parametrize("point,n", CRASH_CASES,
                         ids=[f"{p}-{n}" for p, n in CRASH_CASES])
def test_crash_safety_sigkill(project, db, point, n):
    """SIGKILL a run while it is stopped at a pause point, on each side of
    every commit (at the point's first and third occurrence), in a first
    run and in one with changes, touches and removals: no row is marked
    synced unwritten, whatever differs is still planned, the next run makes
    the file equal the model, the state knows exactly the model's keys, and
    an unchanged run sends nothing."""
    make_customers(db, 5000)
    db.psql("INSERT INTO customers VALUES (9999, 'no address', 'bad', 'free', "
            "1, true, now())")
    p = project(dsn=db.dsn)
    d = sync_def("mirror", safety={"max_removed_ratio": 1})
    d["fields"]["email"]["transform"].append({"match": "@"})
    p.add_mapping("customers", d)
    statefile = p.path("state", "retl.db")

    def cache():
        if not p.state_url and not os.path.exists(statefile):
            return {}
        try:
            return {json.dumps(str(k)): st for k, st in p.state_rows(
                "SELECT key, status FROM cache WHERE sync='customers'")}
        except subprocess.CalledProcessError as e:
            # killed before the store's tables were made
            assert "does not exist" in e.stderr, e.stderr
            return {}

    def model():
        m = expected_payloads(db)
        m.pop(BAD, None)
        return m

    def kill_and_check(phase):
        if CRASH_POINTS[point][phase] < n:
            return
        crashpoint.run_and_kill_at(
            [p.retl_bin, "--config", p.dir, "run", "customers"], point, n)
        lines = p.read_jsonl()
        # every key the state store calls synced was written ...
        written = {json.dumps(l["key"]) for l in lines if l["op"] != "remove"}
        synced = {k for k, st in cache().items() if st == 1}
        assert synced <= written, \
            f"marked synced but never written: {sorted(synced - written)[:5]}"
        # ... with the payload it was marked with: whatever differs between
        # the file and the model must still be planned for sending
        plan = p.path("plan.jsonl")
        rc, out, err = p.run("plan", "customers", "--out", plan)
        assert rc in (0, 1), err
        planned = {json.dumps(op["key"]) for op in planfile.ops(plan)}
        want, have = model(), norm(net_state(lines))
        differ = {k for k in set(want) | set(have) if want.get(k) != have.get(k)}
        assert differ <= planned, \
            f"differ but not planned: {sorted(differ - planned)[:5]}"

    def recover(rc_want):
        rc, out, err = p.run("run", "customers")
        assert rc == rc_want, (out, err)
        assert norm(net_state(p.read_jsonl())) == model()
        # the state knows exactly the model's keys (and the rejected row)
        c = cache()
        assert {k for k, st in c.items() if st == 1} == set(model())
        assert set(c) - set(model()) <= {BAD}

    # phase 1: the first run (one row rejected: exit 1)
    kill_and_check(0)
    recover(1)

    # phase 2: changes, touches and removals, the rejected row gone
    db.psql("UPDATE customers SET name = name || ' v2' WHERE id <= 3000;"
            "UPDATE customers SET plan = 'team' WHERE id > 3000 AND id <= 3500;"
            "DELETE FROM customers WHERE id > 3500")
    kill_and_check(1)
    recover(0)
    assert BAD not in cache()
    n_lines = len(p.read_jsonl())
    rc, out, err = p.run("run", "customers")
    assert rc == 0, err
    assert len(p.read_jsonl()) == n_lines, "after recovery an unchanged run sends nothing"


def test_sigterm_finishes_in_flight_and_stops(project, db):
    """SIGTERM: no more rows are read, what was written is committed, the
    run is recorded as interrupted, and the next run sends the rest."""
    make_customers(db, 60000)
    p = project(dsn=db.dsn)
    p.add_mapping("customers", sync_def())
    proc = subprocess.Popen([p.retl_bin, "--config", p.dir, "run", "customers"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out_file = p.path("out.jsonl")

    def written():
        assert proc.poll() is None, proc.communicate()
        return os.path.exists(out_file) and os.path.getsize(out_file) > 200000
    wait_for(written, 60, "200 kB in the output file", interval=0.005)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "interrupted" in out
    n = len(p.read_jsonl())
    assert 0 < n < 60000
    status, = p.state_rows("SELECT status FROM runs ORDER BY id DESC")[0]
    synced, = p.state_rows("SELECT count(*) FROM cache WHERE status = 1")[0]
    assert status == "interrupted"
    assert synced == n, "exactly the written rows are marked"
    rc, out, err = p.run("run", "customers")
    assert rc == 0, err
    assert len(p.read_jsonl()) == 60000
    assert norm(net_state(p.read_jsonl())) == expected_payloads(db)
