"""Operating retl from the command line (issue 17, the cli part).

- Secrets are read only by the verbs that connect, and only for the syncs
  they act on: status, history, failures and reset need none; `run a`
  does not need sync b's destination secret; an unset variable is an error
  with retl.json's line and column when it is needed.
- One invalid mapping file is reported and skipped: the other syncs work,
  `run --all` runs them and exits 2 naming the broken one, `check` fails
  naming it, `status` lists it; the daemon schedules the others.
- Every numeric option is parsed by one strict parser: `x`, `-1`, `1.5`,
  `10abc`, empty and out-of-range values are usage errors (exit 2) with
  the verb's usage; so are unknown options and missing values.
- `check` opens the state store as a run would (creating it) and fails
  naming its path and the reason; it names the sync whose SQL failed and
  goes on with the others.

Real parts: the built binary, a throwaway PostgreSQL cluster, the file
destination; the read-only state directory is read-only for real (the
binary runs as an unprivileged user when the tests run as root).
"""

import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

from conftest import run as run_retl
from waiting import wait_for

SECRETS = ("RETL_T_DSN", "RETL_T_A", "RETL_T_B")
NO_SECRETS = {k: None for k in SECRETS}


def sync(query="SELECT id, x FROM items", destination="out", **extra):
    d = {"source": "warehouse", "query": query, "key": "id",
         "destination": destination, "fields": {"x": "x"}}
    d.update(extra)
    return d


@pytest.fixture
def items(db):
    db.psql("CREATE TABLE items (id int PRIMARY KEY, x text);"
            "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5) g")
    return db


# ---- secrets only where they are used ------------------------------------

@pytest.fixture
def secret_proj(project, items):
    """Every connection's value comes from the environment."""
    p = project(sources={"warehouse": {"type": "postgres", "dsn": "${RETL_T_DSN}"}},
                destinations={"a": {"type": "file", "path": "${RETL_T_A}"},
                              "b": {"type": "file", "path": "${RETL_T_B}"}})
    p.add_mapping("a", sync(destination="a"))
    p.add_mapping("b", sync(destination="b"))
    p.env_all = {"RETL_T_DSN": items.dsn, "RETL_T_A": "a.jsonl",
                 "RETL_T_B": "b.jsonl"}
    return p


def env_without(p, *names):
    env = dict(p.env_all)
    for n in names:
        env[n] = None
    return env


def test_report_verbs_need_no_secret(secret_proj):
    p = secret_proj
    assert p.run("run", "--all", env=p.env_all)[0] == 0
    # the values were read: the files the variables name were written
    assert len(p.read_jsonl("a.jsonl")) == len(p.read_jsonl("b.jsonl")) == 5
    for args in (["status"], ["history", "a"], ["failures", "b"],
                 ["reset", "a"], ["reset", "--all"]):
        rc, out, err = p.run(*args, env=NO_SECRETS)
        assert rc == 0, (args, out, err)
        assert "not set" not in err, (args, err)
    rc, out, err = p.run("status", env=NO_SECRETS)
    assert {l.split()[0] for l in out.splitlines()[1:]} == {"a", "b"}


def test_reports_still_redact_the_secrets_that_are_set(secret_proj):
    """The reports read no secret, yet what they print from the store is
    redacted with every ${NAME} that is set, as before (a message stored
    by an older retl, or one a destination echoed)."""
    import sqlite3
    p = secret_proj
    secret = "b-S3cret-value.jsonl"
    env = dict(p.env_all, RETL_T_B=secret)
    assert p.run("run", "a", env=env)[0] == 0
    with sqlite3.connect(p.path("state", "retl.db")) as c:
        c.execute("UPDATE runs SET exit_code = 4, message = ? WHERE sync = 'a'",
                  (f"HTTP 401: bad token {secret}",))
    for args in (["history", "a"], ["status"]):
        rc, out, err = p.run(*args, env=dict(NO_SECRETS, RETL_T_B=secret))
        assert rc == 0, (args, out, err)
        assert "HTTP 401: bad token [REDACTED]" in out, (args, out)
        assert secret not in out + err


def test_run_reads_only_the_secrets_of_its_syncs(secret_proj):
    p = secret_proj
    # sync b's destination secret is not set: a runs, checks and plans
    env = env_without(p, "RETL_T_B")
    for args in (["run", "a"], ["check", "a"], ["plan", "a"]):
        rc, out, err = p.run(*args, env=env)
        assert rc == 0, (args, out, err)
    assert len(p.read_jsonl("a.jsonl")) == 5
    # where it is needed it is an error, at retl.json's line and column
    text = open(p.path("retl.json")).read().splitlines()
    line = next(i for i, l in enumerate(text, 1) if "${RETL_T_B}" in l)
    col = text[line - 1].index('"${RETL_T_B}"') + 1
    want = (f"retl.json:{line}:{col}: destinations.b.path: environment "
            f"variable RETL_T_B is not set")
    for args in (["run", "b"], ["plan", "b"]):
        rc, out, err = p.run(*args, env=env)
        assert rc == 2, (args, out, err)
        assert want in err.splitlines(), err
    assert not os.path.exists(p.path("b.jsonl"))
    # check of the whole project names the sync that lacks it
    rc, out, err = p.run("check", env=env)
    assert rc == 2, (out, err)
    assert f"retl: check b: {want}" in err.splitlines(), err
    assert re.search(r"^ok  a: ", out, re.M), out
    # the source's secret is needed by every sync that reads
    rc, out, err = p.run("run", "a", env=env_without(p, "RETL_T_DSN"))
    assert rc == 2
    assert re.search(r"^retl\.json:\d+:\d+: sources\.warehouse\.dsn: environment "
                     r"variable RETL_T_DSN is not set$", err, re.M), err


def test_check_reads_the_secrets_no_sync_uses(secret_proj):
    p = secret_proj
    os.remove(p.path("mappings", "b.json"))
    rc, out, err = p.run("check", env=env_without(p, "RETL_T_B"))
    assert rc == 2, (out, err)
    assert re.search(r"^retl\.json:\d+:\d+: destinations\.b\.path: environment "
                     r"variable RETL_T_B is not set$", err, re.M), err
    assert "check failed for: destination b" in err
    # named syncs: only theirs
    assert p.run("check", "a", env=env_without(p, "RETL_T_B"))[0] == 0


def test_daemon_reads_each_syncs_secrets_in_its_runs(secret_proj, monkeypatch):
    from test_daemon import Daemon
    p = secret_proj
    p.add_mapping("a", sync(destination="a", schedule="every 1s"))
    p.add_mapping("b", sync(destination="b", schedule="every 1s"))
    for k, v in p.env_all.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("RETL_T_B")
    d = Daemon(p)
    try:
        d.wait_log("environment variable RETL_T_B is not set")
        assert re.search(r"retl\.json:\d+:\d+: destinations\.b\.path: "
                         r"environment variable RETL_T_B is not set", d.text())
        # the run that could not start says so with a status, not "(null)"
        assert re.search(r"run ended: failed \(exit 2\)", d.text()), d.text()
        assert "(null)" not in d.text()

        def synced():
            try:
                return len(p.read_jsonl("a.jsonl")) == 5
            except (OSError, ValueError):   # not yet, or a line mid-write
                return False
        wait_for(synced, 60, "a's rows", d.text)
        assert not os.path.exists(p.path("b.jsonl"))
    finally:
        d.kill()


# ---- one invalid sync does not stop the others -----------------------------

BROKEN = {
    "syntax": ('{\n  "source": "warehouse",\n  "query": oops\n}\n',
               r"mappings/bad\.json:3:\d+: invalid token near 'oops'"),
    "unknown-field": (sync(colour="red"),
                      r"mappings/bad\.json: colour: unknown key \(expected one of "),
    "bad-mapping": (sync(fields={"x": {"from": "x", "type": "nmber"}}),
                    r"mappings/bad\.json: fields\.x\.type: unknown type \"nmber\""),
}


@pytest.fixture(params=sorted(BROKEN))
def broken_proj(request, project, items):
    p = project(dsn=items.dsn)
    p.add_mapping("good", sync())
    text, message = BROKEN[request.param]
    p.add_mapping("bad", text)
    p.message = re.compile("^" + message, re.M)
    return p


def test_run_all_runs_the_valid_syncs(broken_proj):
    p = broken_proj
    rc, out, err = p.run("run", "--all")
    assert rc == 2, (out, err)
    assert "run good: all rows synced (exit 0)" in out
    assert len(p.read_jsonl()) == 5
    assert p.message.search(err), err
    assert "retl: run: skipped, their mapping file is invalid: bad" in err
    # a named valid sync: no word about the other
    p.run("reset", "good")
    rc, out, err = p.run("run", "good")
    assert rc == 0, err
    assert "bad" not in err


def test_json_logs_stay_json_with_an_invalid_sync(broken_proj):
    import json
    p = broken_proj
    for args in (["run", "--all"], ["check"], ["history", "bad"]):
        rc, out, err = p.run("--log-format", "json", *args)
        assert rc in (0, 2), (args, out, err)
        objs = [json.loads(line) for line in err.splitlines()]
        assert any("mappings/bad.json" in o["msg"] for o in objs), (args, err)


def test_named_broken_sync_is_an_error_the_others_run(broken_proj):
    p = broken_proj
    rc, out, err = p.run("run", "bad", "good")
    assert rc == 2, (out, err)
    assert "run good: all rows synced (exit 0)" in out
    assert p.message.search(err), err
    for args in (["plan", "bad"], ["run", "bad"]):
        rc, out, err = p.run(*args)
        assert rc == 2, (args, out, err)
        assert p.message.search(err), err


def test_status_lists_the_valid_and_the_invalid(broken_proj):
    p = broken_proj
    assert p.run("run", "good")[0] == 0
    rc, out, err = p.run("status")
    assert rc == 0, err
    rows = {l.split()[0]: l.split() for l in out.splitlines()[1:]
            if l.strip() and not l.startswith(" ")}
    assert rows["good"][1] == "ok"
    assert rows["bad"][1] == "invalid"
    assert p.message.search("\n".join(l.strip() for l in out.splitlines())), out
    # its state is still there to read
    for args in (["history", "bad"], ["failures", "bad"], ["reset", "bad"]):
        rc, out, err = p.run(*args)
        assert rc == 0, (args, out, err)
        assert "sync bad is skipped by run, plan and the daemon" in err


def test_reset_all_clears_an_invalid_syncs_cache(project, items):
    p = project(dsn=items.dsn, destinations={
        "out": {"type": "file", "path": "out.jsonl"},
        "out2": {"type": "file", "path": "out2.jsonl"}})
    p.add_mapping("good", sync())
    p.add_mapping("other", sync(destination="out2"))
    assert p.run("run", "--all")[0] == 0
    p.add_mapping("other", sync(destination="out2", colour="red"))
    rc, out, err = p.run("reset", "--all")
    assert rc == 0, err
    assert "the cache of every sync cleared (2)" in out
    p.add_mapping("other", sync(destination="out2"))
    assert p.run("run", "other")[0] == 0
    assert len(p.read_jsonl("out2.jsonl")) == 10, "every row sent again"


def test_check_fails_naming_each_broken_sync(broken_proj):
    p = broken_proj
    p.add_mapping("worse", '{"source": }\n')
    rc, out, err = p.run("check")
    assert rc == 2, (out, err)
    assert re.search(r"^ok  good: ", out, re.M), out
    assert p.message.search(err), err
    assert re.search(r"^mappings/worse\.json:1:\d+: ", err, re.M), err
    assert "retl: check failed for: bad, worse" in err.splitlines(), err
    assert p.run("check", "good")[0] == 0


def test_an_error_in_retl_json_stays_fatal(broken_proj):
    p = broken_proj
    with open(p.path("retl.json"), "a") as f:
        f.write("}\n")
    for args in (["status"], ["run", "good"], ["check"]):
        rc, out, err = p.run(*args)
        assert rc == 2, (args, out, err)
        assert re.search(r"^retl\.json:\d+:\d+: ", err, re.M), err
        assert out == ""


def test_daemon_schedules_the_valid_syncs(project, items, retl_bin):
    from test_daemon import Daemon
    p = project(dsn=items.dsn)
    p.add_mapping("good", sync(schedule="every 1s"))
    p.add_mapping("bad", sync(schedule="every 1s", colour="red"))
    d = Daemon(p)
    try:
        d.wait_log("mappings/bad.json: colour: unknown key")
        assert "skipped until the file is fixed" in d.text()
        def synced():
            try:
                return len(p.read_jsonl()) == 5
            except (OSError, ValueError):   # not yet, or a line mid-write
                return False
        wait_for(synced, 60, "good's rows", d.text)
        assert d.get("/healthz")[0] == 200
    finally:
        d.kill()


# ---- strict option parsing -------------------------------------------------

BAD_NUMBERS = ["x", "-1", "1.5", "10abc", "", " 5", "+5", "0x10",
               "99999999999999999999999"]

OPTIONS = [
    # (args before the value, option, what, lo, hi)
    (["history", "items"], "--limit", "a number of runs", 1, 1000000),
    (["run", "items"], "--limit", "a number of operations", 0, 1000000000),
    (["daemon"], "--shutdown-timeout", "a number of seconds", 0, 86400),
    (["daemon"], "--concurrency", "a number of runs", 1, 256),
]


@pytest.mark.parametrize("args,opt,what,lo,hi", OPTIONS,
                         ids=[f"{o[0][0]}{o[1]}" for o in OPTIONS])
def test_numeric_options_are_strict(project, items, args, opt, what, lo, hi):
    p = project(dsn=items.dsn)
    p.add_mapping("items", sync())
    for v in BAD_NUMBERS + [str(lo - 1), str(hi + 1)]:
        rc, out, err = p.run(*args, opt, v, timeout=60)
        assert rc == 2, (v, out, err)
        assert err.splitlines()[0] == (
            f'retl: {opt}: expected {what} from {lo} to {hi}, not "{v}"'), err
        assert err.splitlines()[1].startswith(f"usage: retl {args[0]}"), err
        assert out == ""
    assert not os.path.exists(p.path("out.jsonl"))


def test_history_limit_takes_a_good_value(project, items):
    p = project(dsn=items.dsn)
    p.add_mapping("items", sync())
    for _ in range(3):
        assert p.run("run", "items")[0] == 0
    rc, out, err = p.run("history", "items", "--limit", "2")
    assert rc == 0, err
    assert [l.split()[0] for l in out.splitlines()[1:]] == ["3", "2"]


VERBS = ["check", "plan", "run", "apply", "status", "history", "failures",
         "reset", "daemon"]


@pytest.mark.parametrize("verb", VERBS)
def test_unknown_option_shows_the_usage(project, items, verb):
    p = project(dsn=items.dsn)
    p.add_mapping("items", sync())
    args = [] if verb in ("status", "daemon") else ["items"]
    rc, out, err = p.run(verb, *args, "--bogus", timeout=60)
    assert rc == 2, (out, err)
    assert err.splitlines()[0] == 'retl: unknown option "--bogus"', err
    assert err.splitlines()[1].startswith(f"usage: retl {verb}"), err
    assert out == ""


@pytest.mark.parametrize("args", [["history", "items", "--limit"],
                                  ["plan", "items", "--out"],
                                  ["run", "items", "--limit"],
                                  ["daemon", "--listen"],
                                  ["daemon", "--concurrency"]])
def test_missing_value_shows_the_usage(project, items, args):
    p = project(dsn=items.dsn)
    p.add_mapping("items", sync())
    rc, out, err = p.run(*args, timeout=60)
    assert rc == 2, (out, err)
    assert err.splitlines() == [f"retl: {args[-1]} needs a value",
                                err.splitlines()[1]], err
    assert err.splitlines()[1].startswith(f"usage: retl {args[0]}")


# ---- check: the state store, and which sync failed -------------------------

def test_check_creates_the_state_store(project, items):
    p = project(dsn=items.dsn)
    p.add_mapping("items", sync())
    rc, out, err = p.run("check")
    assert rc == 0, err
    assert os.path.isfile(p.path("state", "retl.db"))
    assert p.run("run", "items")[0] == 0


@pytest.mark.parametrize("how", ["parent-is-a-file", "path-is-a-directory"])
def test_check_fails_when_the_state_store_cannot_be_opened(project, items, how):
    p = project(dsn=items.dsn, state="st/retl.db")
    p.add_mapping("items", sync())
    if how == "parent-is-a-file":
        open(p.path("st"), "w").close()
    else:
        os.makedirs(p.path("st", "retl.db"))
    rc, out, err = p.run("check")
    assert rc != 0, (out, err)
    path = p.path("st", "retl.db")
    reason = "Not a directory" if how == "parent-is-a-file" else "Is a directory"
    assert re.search(rf"^retl: state store {re.escape(path)}: .*{reason}", err,
                     re.M), err
    # the syncs are still checked
    assert re.search(r"^ok  items: ", out, re.M), out


@pytest.fixture
def shared_dir():
    """A directory an unprivileged user can read (tmp_path is root's)."""
    d = tempfile.mkdtemp(prefix="retl-ro-")
    os.chmod(d, 0o755)
    yield d
    for root, dirs, _ in os.walk(d):
        for x in dirs:
            os.chmod(os.path.join(root, x), 0o755)
    shutil.rmtree(d)


def test_check_fails_on_a_read_only_state_directory(retl_bin, shared_dir):
    """What really fails: the store's directory cannot be written, by a
    user that is not root (root writes anyway).  The source is never
    reached here (no DSN that user could use): the state store's line is
    what is checked."""
    proj = os.path.join(shared_dir, "proj")
    os.makedirs(os.path.join(proj, "mappings"))
    with open(os.path.join(proj, "retl.json"), "w") as f:
        f.write('{"sources": {"warehouse": {"dsn": "host=/nonexistent dbname=x"}},\n'
                ' "destinations": {"out": {"type": "file", "path": "out.jsonl"}}}\n')
    with open(os.path.join(proj, "mappings", "items.json"), "w") as f:
        f.write('{"source": "warehouse", "query": "SELECT 1 AS id, 2 AS x",'
                ' "key": "id", "destination": "out", "fields": {"x": "x"}}\n')
    state = os.path.join(proj, "state")
    os.makedirs(state)
    kw = {}
    # a copy of the binary beside the project: the checkout's parents may
    # not be open to that user (a checkout under /root, say)
    exe = os.path.join(shared_dir, "retl")
    shutil.copy(retl_bin, exe)
    os.chmod(exe, 0o755)
    if os.geteuid() == 0:
        kw = {"user": 65534, "group": 65534, "extra_groups": []}
        os.chown(state, 65534, 65534)
    for root, _, files in os.walk(proj):
        for x in files:
            os.chmod(os.path.join(root, x), 0o644)

    def check():
        p = subprocess.run([exe, "--config", proj, "check"], text=True,
                           capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL, **kw)
        return p.returncode, p.stderr

    # writable: the store is made, as a run would make it
    rc, err = check()
    assert not re.search(r"^retl: state store ", err, re.M), err
    assert os.path.isfile(os.path.join(state, "retl.db"))
    os.chmod(state, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP |
             stat.S_IROTH | stat.S_IXOTH)
    rc, err = check()
    assert rc != 0, err
    path = os.path.join(state, "retl.db")
    assert re.search(rf"^retl: state store {re.escape(path)}: .*(readonly|"
                     rf"read-only|Permission denied)", err, re.M), err


def test_check_names_the_sync_whose_sql_failed(project, items):
    p = project(dsn=items.dsn)
    p.add_mapping("a_bad", sync("SELECT id, x FROM nosuch"))
    p.add_mapping("b_good", sync())
    p.add_mapping("c_bad", sync("SELECT id, nope AS x FROM items"))
    rc, out, err = p.run("check")
    assert rc == 3, (out, err)
    assert re.search(r"^retl: check a_bad: .*nosuch", err, re.M), err
    assert re.search(r"^retl: check c_bad: .*nope", err, re.M), err
    assert re.search(r"^ok  b_good: ", out, re.M), out
    assert "retl: check failed for: a_bad, c_bad" in err.splitlines(), err
