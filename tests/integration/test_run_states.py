"""What a run's status says, and runs whose process is gone (issue 17).

Statuses (README "Run statuses"): ok, rows rejected, interrupted, failed,
abandoned, and running while the run goes; the runs table, `retl status`,
`retl history` and the summary's first line agree.  A run killed without
a chance to record its end (SIGKILL here, at a pause point so the kill
lands while the run is surely going) is shown `abandoned` by status and
history as soon as nothing holds the sync's lock, and recorded
`abandoned` by the next command that takes the lock.

`retl run SYNC --allow-removals N`: one run of one sync passes its safety
limits when it removes no more than N rows; the safety stop says the
command that lets it through; the permission is in the run's history.
"""

import json
import os
import re
import signal
import subprocess

import pytest

import crashpoint
from test_sync import make_customers, sync_def, N
from waiting import wait_for


@pytest.fixture
def proj(project, db):
    make_customers(db)
    return project(dsn=db.dsn)


def runs(p):
    return p.state_rows(
        "SELECT id, status, exit_code, ended_at, seconds, message, "
        "allow_removals, removed FROM runs ORDER BY id")


def status_of(p, sync):
    """(LAST RUN, ENDED, SECONDS, message line or None) of `retl status`;
    the status may hold a space ("rows rejected"): read by column."""
    rc, out, err = p.run("status")
    assert rc == 0, err
    lines = out.splitlines()
    head = lines[0]
    s, e = head.index("LAST RUN"), head.index("ENDED")
    for i, line in enumerate(lines[1:], 1):
        if line.split()[:1] == [sync]:
            cols = line[e:].split()
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            msg = nxt.strip() if nxt.startswith("    ") else None
            return line[s:e].strip(), cols[0], cols[5], msg
    raise AssertionError(out)


def history_of(p, sync):
    """[(RUN, STATUS, EXIT, SECONDS, [lines under it])], newest first."""
    rc, out, err = p.run("history", sync)
    assert rc == 0, err
    lines = out.splitlines()
    si = lines[0].index("STATUS")
    rows = []
    for line in lines[1:]:
        if line.startswith(" "):
            rows[-1][4].append(line.strip())
            continue
        rows.append((line.split()[0], line[si:si + 13].strip(),
                     line[si + 14:si + 18].strip(),
                     line[si + 19:si + 27].strip(), []))
    return rows


def argv(p, *args):
    return [p.retl_bin, "--config", p.dir, *args]


# ---- abandoned ----------------------------------------------------------------

def kill_paused(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("noticer", [["run", "customers"], ["reset", "customers"]])
def test_killed_run_is_abandoned(proj, tmp_path, noticer):
    proj.add_mapping("customers", sync_def())
    assert proj.run("run", "customers")[0] == 0
    with open(tmp_path / "err.txt", "w+b") as err:
        proc = crashpoint.start_paused(argv(proj, "run", "customers"),
                                       "run-begun", 1, stderr=err)
        try:
            # alive (stopped, holding the lock): running, no end, no exit
            st, ended, secs, msg = status_of(proj, "customers")
            assert (st, ended, secs) == ("running", "(running)", "-")
            assert history_of(proj, "customers")[0][1:4] == ("running", "-", "-")
        finally:
            kill_paused(proc)
    dead_id = runs(proj)[-1][0]

    # gone: status and history say so at once, without writing it
    st, ended, secs, msg = status_of(proj, "customers")
    assert (st, ended, secs) == ("abandoned", "(unrecorded)", "-"), msg
    assert "nothing holds the sync's lock" in msg
    h = history_of(proj, "customers")
    assert h[0][:4] == (str(dead_id), "abandoned", "-", "-")
    assert runs(proj)[-1][1] == "running", "a report writes nothing"

    # the next command that takes the lock records it
    rc, out, err = proj.run(*noticer)
    assert rc == 0, (out, err)
    rec = {r[0]: r for r in runs(proj)}[dead_id]
    _, status, code, ended_at, seconds, message, _, _ = rec
    assert (status, code, seconds) == ("abandoned", None, None)
    assert ended_at, "when it was noticed"
    assert message.startswith(f"abandoned: the run's process (pid {proc.pid}, "
                              "the lock's last holder) was gone"), message
    assert "the end time is when that was noticed, not when the run ended" in message
    h = history_of(proj, "customers")
    dead = [r for r in h if r[0] == str(dead_id)][0]
    assert dead[1:4] == ("abandoned", "-", "-")
    assert any("was noticed, not when the run ended" in l for l in dead[4])
    if noticer[0] == "run":
        assert h[0][1:3] == ("ok", "0")
        st, ended, secs, msg = status_of(proj, "customers")
        assert st == "ok"
    else:
        st, ended, secs, msg = status_of(proj, "customers")
        assert st == "abandoned" and ended == ended_at, (st, ended)
        assert "was noticed, not when the run ended" in msg
    # nothing else is rewritten: the first run is still ok
    assert runs(proj)[0][1:3] == ("ok", 0)


def test_a_live_run_is_never_shown_abandoned(proj, tmp_path):
    """A run that is going holds its lock: status and history, asked over
    and over while it runs, never call it abandoned."""
    proj.add_mapping("customers", sync_def())
    with open(tmp_path / "err.txt", "w+b") as err:
        proc = crashpoint.start_paused(argv(proj, "run", "customers"),
                                       "run-begun", 1, stderr=err)
        try:
            for _ in range(3):
                assert status_of(proj, "customers")[0] == "running"
            # a command refused the lock notices nothing and records nothing
            for verb in (["run", "customers"], ["reset", "customers"]):
                rc, out, err = proj.run(*verb)
                assert rc == 2, (verb, out, err)
                # a PostgreSQL store names the host too
                assert re.search(r"sync customers is already running "
                                 rf"\((host [^,]+, )?pid {proc.pid}\)", err), err
                assert "ended" not in err, err
            assert [r[1] for r in runs(proj)] == ["running"]
            proc.send_signal(signal.SIGCONT)
            seen = set()
            while proc.poll() is None:
                seen.add(status_of(proj, "customers")[0])
                seen.add(history_of(proj, "customers")[0][1])
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0
    assert seen <= {"running", "ok"}, seen
    assert [r[1] for r in runs(proj)] == ["ok"]


# ---- the statuses ----------------------------------------------------------------

def first_line(out, verb, sync):
    line = [l for l in out.splitlines() if l.startswith(f"{verb} {sync}: ")]
    assert line, out
    return line[0]


def test_statuses_say_what_happened(proj, db, tmp_path):
    proj.add_mapping("customers", sync_def())
    rc, out, err = proj.run("run", "customers")
    assert rc == 0
    assert first_line(out, "run", "customers") == "run customers: all rows synced (exit 0)"

    # rows rejected by the mapping: the run completed
    proj.add_mapping("customers", sync_def(fields={
        "email": {"from": "email", "transform": [{"match": "^User[0-9]@"}]}}))
    rc, out, err = proj.run("run", "customers")
    assert rc == 1, (out, err)
    assert first_line(out, "run", "customers") == \
        f"run customers: rows rejected, completed with {N - 9} rows not synced (exit 1)"
    assert status_of(proj, "customers")[0] == "rows rejected"
    assert history_of(proj, "customers")[0][1:3] == ("rows rejected", "1")

    # interrupted: asked to stop (SIGTERM) once the run has begun
    proj.add_mapping("customers", sync_def())
    with open(tmp_path / "out.txt", "w+") as o:
        env = dict(os.environ, RETL_TEST_PAUSE_AT="run-begun:1")
        proc = subprocess.Popen(argv(proj, "run", "customers"), env=env,
                                stdout=o, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        wait_for(lambda: crashpoint.proc_state(proc.pid) == "T"
                 or proc.poll() is not None, 120, "the run to pause")
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        proc.wait(timeout=120)
        o.seek(0)
        out = o.read()
    assert proc.returncode == 1, out
    line = first_line(out, "run", "customers")
    assert line.startswith("run customers: interrupted, stopped on request"), out
    assert "completed" not in line
    assert history_of(proj, "customers")[0][1:3] == ("interrupted", "1")
    assert status_of(proj, "customers")[0] == "interrupted"

    # failed: a source error
    db.psql("ALTER TABLE customers RENAME TO c2")
    rc, out, err = proj.run("run", "customers")
    assert rc == 3
    st, _, _, msg = status_of(proj, "customers")
    assert st == "failed" and 'relation "customers" does not exist' in msg
    assert history_of(proj, "customers")[0][1:3] == ("failed", "3")
    db.psql("ALTER TABLE c2 RENAME TO customers")

    assert [r[1] for r in runs(proj)] == [
        "ok", "rows rejected", "interrupted", "failed"]
    assert [r[2] for r in runs(proj)] == [0, 1, 1, 3]


def test_log_names_the_status(proj):
    proj.add_mapping("customers", sync_def(fields={
        "email": {"from": "email", "transform": [{"match": "^User[0-9]@"}]}}))
    rc, out, err = proj.run("--log-format", "json", "run", "customers")
    assert rc == 1
    msgs = [json.loads(l)["msg"] for l in err.splitlines() if l.startswith("{")]
    assert "run ended: rows rejected (exit 1)" in msgs, err


# ---- --allow-removals ----------------------------------------------------------

def mirror(proj, **safety):
    proj.add_mapping("customers", sync_def("mirror", safety=safety))
    assert proj.run("run", "customers")[0] == 0
    assert len(proj.read_jsonl()) == N


def removed_lines(proj):
    return [l for l in proj.read_jsonl() if l["op"] == "remove"]


def test_allow_removals_lets_one_run_through(proj, db):
    mirror(proj, max_removed=5)
    db.psql("DELETE FROM customers WHERE id <= 20")

    rc, out, err = proj.run("run", "customers")
    assert rc == 5, (out, err)
    assert "run customers: failed, refused by a safety limit (exit 5)" in out
    assert ("would remove 20 rows, over safety.max_removed (5) by 15: nothing "
            "removed. If these removals are intended, let one run through: "
            "retl run customers --allow-removals 20") in out, out
    assert not removed_lines(proj)

    # a permission for fewer rows than the run would remove: still stopped
    rc, out, err = proj.run("run", "customers", "--allow-removals", "19")
    assert rc == 5, (out, err)
    assert ("over safety.max_removed (5) by 15, more than --allow-removals 19: "
            "nothing removed") in out, out
    assert "retl run customers --allow-removals 20" in out
    assert not removed_lines(proj)

    rc, out, err = proj.run("run", "customers", "--allow-removals", "20")
    assert rc == 0, (out, err)
    assert ("would remove 20 rows, over safety.max_removed (5) by 15: let "
            "through by --allow-removals 20") in out, out
    assert len(removed_lines(proj)) == 20

    recs = runs(proj)
    assert [(r[1], r[6], r[7]) for r in recs[-3:]] == [
        ("failed", None, 0), ("failed", 19, 0), ("ok", 20, 20)]
    h = history_of(proj, "customers")
    assert "run with --allow-removals 20 (removed 20)" in h[0][4], h[0]
    assert "run with --allow-removals 19 (removed 0)" in h[1][4], h[1]
    assert not any(l.startswith("run with") for l in h[2][4]), h[2]

    # one run's permission: the next removal over the limit stops again
    db.psql("DELETE FROM customers WHERE id <= 30")
    rc, out, err = proj.run("run", "customers")
    assert rc == 5, (out, err)
    assert "retl run customers --allow-removals 10" in out


@pytest.mark.parametrize("safety,delete,gone", [
    ({"max_removed_ratio": 0.1}, "id <= 30", 30),
    ({"refuse_empty_model": True}, "true", N),
])
def test_allow_removals_passes_every_limit(proj, db, safety, delete, gone):
    mirror(proj, **safety)
    db.psql(f"DELETE FROM customers WHERE {delete}")
    rc, out, err = proj.run("run", "customers")
    assert rc == 5, (out, err)
    assert f"retl run customers --allow-removals {gone}" in out, out
    rc, out, err = proj.run("run", "customers", "--allow-removals", str(gone))
    assert rc == 0, (out, err)
    assert f"let through by --allow-removals {gone}" in out
    assert len(removed_lines(proj)) == gone


@pytest.mark.parametrize("args,why", [
    (["customers", "--allow-removals", "x"], "expected the number of rows"),
    (["customers", "--allow-removals", "-1"], "expected the number of rows"),
    (["customers", "--allow-removals", "1.5"], "expected the number of rows"),
    (["customers", "--allow-removals", "+3"], "expected the number of rows"),
    (["customers", "--allow-removals", " 3"], "expected the number of rows"),
    (["customers", "--allow-removals", ""], "expected the number of rows"),
    (["customers", "--allow-removals", "99999999999999999999"], "expected the number"),
    (["customers", "--allow-removals"], "--allow-removals needs a value"),
    (["--all", "--allow-removals", "3"], "one run of one sync"),
    (["customers", "other", "--allow-removals", "3"], "one run of one sync"),
])
def test_allow_removals_is_parsed_strictly(proj, db, args, why):
    mirror(proj, max_removed=5)
    proj.add_mapping("other", sync_def())
    db.psql("DELETE FROM customers WHERE id <= 20")
    rc, out, err = proj.run("run", *args)
    assert rc == 2, (out, err)
    assert why in err, err
    assert not removed_lines(proj)
    assert len(runs(proj)) == 1, "nothing ran"


def test_allow_removals_only_for_run(proj, db):
    """A schedule must not carry a one-off permission: the daemon, plan and
    check do not take the option."""
    mirror(proj, max_removed=5)
    for verb in (["daemon", "--allow-removals", "3"],
                 ["plan", "customers", "--allow-removals", "3"],
                 ["check", "--allow-removals", "3"]):
        rc, out, err = proj.run(*verb)
        assert rc == 2, (verb, out, err)
        assert "--allow-removals" in err
    # a zero permission is no permission
    db.psql("DELETE FROM customers WHERE id <= 20")
    rc, out, err = proj.run("run", "customers", "--allow-removals", "0")
    assert rc == 5, (out, err)
    assert runs(proj)[-1][6] is None
