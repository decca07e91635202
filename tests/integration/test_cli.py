"""The command line: verbs, options, --help, exit codes, reports, logs.

Exit codes (DESIGN.md): 0 all rows synced; 1 some rows failed (the run
completed); 2 usage or config error, or the sync is already running;
3 source error; 4 destination error; 5 refused by a safety limit.
"""

import hashlib
import json
import os
import re
import sqlite3
import subprocess

import pytest

from conftest import run as run_retl
from conftest import wait_for_lock
import planfile  # noqa: E402

VERBS = ["check", "plan", "run", "status", "history", "failures", "reset"]


def sync(query, key="id", destination="out", **extra):
    d = {"source": "warehouse", "query": query, "key": key,
         "destination": destination, "fields": {"x": "x"}}
    d.update(extra)
    return d


def net_state(lines):
    state = {}
    for line in lines:
        k = json.dumps(line["key"])
        if line["op"] == "remove":
            state.pop(k, None)
        else:
            state[k] = line["payload"]
    return state


def model(db, table="items"):
    return {json.dumps(i): {"x": x} for i, x in (
        l.split("\t") for l in db.psql(f"SELECT id, x FROM {table} ORDER BY id",
                                      "-At", "-F", "\t").splitlines())}


@pytest.fixture
def proj(project, db):
    db.psql("CREATE TABLE items (id int PRIMARY KEY, x text);"
            "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 25) g")
    p = project(dsn=db.dsn, destinations={
        "out": {"type": "file", "path": "out.jsonl"},
        "out2": {"type": "file", "path": "out2.jsonl"},
    })
    p.add_mapping("items", sync("SELECT id, x FROM items"))
    p.add_mapping("small", sync("SELECT g AS id, 's' || g AS x FROM generate_series(1, 3) g",
                                destination="out2"))
    return p


# ---- --version, --help, usage ------------------------------------------------

def test_version_and_help(retl_bin, tmp_path):
    rc, out, err = run_retl(retl_bin, tmp_path, "--version")
    assert rc == 0, err
    assert re.fullmatch(r"retl \d+\.\d+\.\d+\n", out), out
    for flag in ("--help", "-h"):
        rc, out, err = run_retl(retl_bin, tmp_path, flag)
        assert rc == 0, err
        assert out.startswith("usage: retl ")
        for verb in VERBS:
            assert f"retl {verb}" in out
        assert "Exit codes" in out


def test_no_verb_is_a_usage_error(retl_bin, tmp_path):
    rc, out, err = run_retl(retl_bin, tmp_path)
    assert rc == 2
    assert out == ""
    assert err.startswith("usage: retl ")


@pytest.mark.parametrize("args,message", [
    (["bogus"], 'unknown verb "bogus"'),
    (["--limit"], 'unknown verb "--limit"'),
    (["--log-format", "xml", "status"], '--log-format: expected text or json, not "xml"'),
    (["--log-format"], "--log-format needs a value"),
])
def test_unknown_verb_and_bad_global_options(retl_bin, tmp_path, args, message):
    rc, out, err = run_retl(retl_bin, tmp_path, *args)
    assert rc == 2, (out, err)
    assert f"retl: {message}" in err
    assert out == ""


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(retl_bin, tmp_path, verb):
    # no project needed: --help is answered before the config is read
    rc, out, err = run_retl(retl_bin, tmp_path / "no-such-project", verb, "--help")
    assert rc == 0, err
    assert out.startswith(f"usage: retl {verb}"), out
    assert len(out.splitlines()) >= 3, "a description follows the usage line"


def test_missing_project_is_a_config_error(retl_bin, tmp_path):
    rc, out, err = run_retl(retl_bin, tmp_path / "nowhere", "status")
    assert rc == 2
    assert "retl.json: not found in" in err


# ---- run: names, --all, --limit ---------------------------------------------

def test_run_needs_names_or_all(proj):
    rc, out, err = proj.run("run")
    assert rc == 2
    assert "run needs sync names or --all" in err
    rc, out, err = proj.run("run", "items", "--all")
    assert rc == 2
    assert "not both" in err
    rc, out, err = proj.run("run", "items", "--bogus")
    assert rc == 2
    assert 'unknown option "--bogus"' in err
    assert not os.path.exists(proj.path("out.jsonl"))


@pytest.mark.parametrize("verb", [["run"], ["plan"], ["history"], ["failures"],
                                  ["reset"], ["check"]])
def test_unknown_sync_lists_the_syncs(proj, verb):
    rc, out, err = proj.run(*verb, "nosuch")
    assert rc == 2, (out, err)
    assert 'unknown sync "nosuch" (syncs: items, small)' in err


def test_run_all_runs_every_sync(proj, db):
    rc, out, err = proj.run("run", "--all")
    assert rc == 0, err
    assert "run items: all rows synced (exit 0)" in out
    assert "run small: all rows synced (exit 0)" in out
    assert net_state(proj.read_jsonl()) == model(db)
    assert net_state(proj.read_jsonl("out2.jsonl")) == {
        json.dumps(str(i)): {"x": f"s{i}"} for i in (1, 2, 3)}


def test_run_named_syncs_only(proj):
    rc, out, err = proj.run("run", "small")
    assert rc == 0, err
    assert not os.path.exists(proj.path("out.jsonl"))
    assert len(proj.read_jsonl("out2.jsonl")) == 3


def test_limit_sends_exactly_n_and_the_rest_later(proj, db):
    rc, out, err = proj.run("run", "items", "--limit", "10")
    assert rc == 0, err
    assert len(proj.read_jsonl()) == 10
    assert re.search(r"deferred\s+15\b", out), out
    rc, out, err = proj.run("run", "--limit", "10", "items")
    assert rc == 0, err
    assert len(proj.read_jsonl()) == 20
    rc, out, err = proj.run("run", "items")
    assert rc == 0, err
    lines = proj.read_jsonl()
    assert len(lines) == 25
    assert len({l["key"] for l in lines}) == 25, "no row sent twice"
    assert net_state(lines) == model(db)
    # history: newest first, with the counts of each run
    rc, out, err = proj.run("history", "items")
    assert rc == 0, err
    rows = [l.split() for l in out.splitlines()[1:] if l.strip()]
    assert [r[0] for r in rows] == ["3", "2", "1"]
    header = out.splitlines()[0].split()
    added = header.index("ADDED")
    unchanged = header.index("UNCHANGED")
    assert [int(r[added]) for r in rows] == [5, 10, 10]
    assert [int(r[unchanged]) for r in rows] == [20, 10, 0]
    rc, out, err = proj.run("history", "items", "--limit", "1")
    assert rc == 0
    assert [l.split()[0] for l in out.splitlines()[1:] if l.strip()] == ["3"]


def test_limit_with_changes_and_removals_in_mirror_mode(proj, db):
    proj.add_mapping("items", sync("SELECT id, x FROM items", mode="mirror",
                                   on_remove="delete",
                                   safety={"max_removed_ratio": 1}))
    assert proj.run("run", "items")[0] == 0
    db.psql("UPDATE items SET x = x || ' v2' WHERE id <= 6;"
            "DELETE FROM items WHERE id > 19")
    rc, out, err = proj.run("run", "items", "--limit", "4")
    assert rc == 0, err
    assert len(proj.read_jsonl()) == 25 + 4
    rc, out, err = proj.run("run", "items")
    assert rc == 0, err
    assert len(proj.read_jsonl()) == 25 + 12
    assert net_state(proj.read_jsonl()) == model(db)


@pytest.mark.parametrize("value", ["x", "-1", "10x", "1.5", "", "+5", " 5",
                                   "1000000001", "99999999999999999999999"])
def test_limit_bad_value(proj, value):
    rc, out, err = proj.run("run", "items", "--limit", value)
    assert rc == 2, (out, err)
    assert (f'retl: --limit: expected a number of operations from 0 to '
            f'1000000000, not "{value}"') in err.splitlines(), err
    assert "usage: retl run " in err
    assert not os.path.exists(proj.path("out.jsonl"))


def test_limit_without_value(proj):
    rc, out, err = proj.run("run", "items", "--limit")
    assert rc == 2
    assert "--limit needs a value" in err


# ---- status, history, failures ------------------------------------------------

def status_header(out):
    # "LAST RUN" is one column of two words
    return out.splitlines()[0].replace("LAST RUN", "LAST_RUN").split()


def status_rows(out):
    return {l.split()[0]: l.split() for l in out.splitlines()[1:] if l.strip()}


def test_status_shows_every_sync(proj):
    rc, out, err = proj.run("status")
    assert rc == 0, err
    rows = status_rows(out)
    assert set(rows) == {"items", "small"}
    assert rows["items"][1] == "never" and rows["small"][1] == "never"
    assert proj.run("run", "items")[0] == 0
    rc, out, err = proj.run("status")
    rows = status_rows(out)
    assert rows["items"][1] == "ok"
    assert rows["small"][1] == "never"
    header = status_header(out)
    assert header[:5] == ["SYNC", "LAST_RUN", "ENDED", "READ", "SENT"]
    assert int(rows["items"][header.index("READ")]) == 25
    assert int(rows["items"][header.index("SENT")]) == 25


def test_history_of_a_never_run_sync(proj):
    rc, out, err = proj.run("history", "small")
    assert rc == 0, err
    assert len([l for l in out.splitlines()[1:] if re.match(r"^\d+\s", l)]) == 0


def test_failures_on_a_healthy_sync(proj):
    assert proj.run("run", "items")[0] == 0
    rc, out, err = proj.run("failures", "items")
    assert rc == 0, err
    assert "0 rows failing in items" in out


@pytest.mark.parametrize("args,message,usage", [
    (["history"], "retl: history needs a sync", "usage: retl history SYNC [--limit N]"),
    (["failures"], "retl: failures takes one sync", "usage: retl failures SYNC"),
    (["reset"], "retl: reset takes one sync", "usage: retl reset SYNC|--all"),
    (["history", "items", "small"], "retl: history takes one sync",
     "usage: retl history SYNC [--limit N]"),
    (["status", "x"], "retl: status takes no arguments", "usage: retl status")])
def test_report_verbs_usage_errors(proj, args, message, usage):
    rc, out, err = proj.run(*args)
    assert rc == 2, (out, err)
    assert err.splitlines() == [message, usage], err


# ---- --log-format json -------------------------------------------------------

def json_lines(err):
    objs = []
    for line in err.splitlines():
        obj = json.loads(line)      # every line is one JSON object
        assert isinstance(obj, dict)
        assert {"ts", "level", "msg"} <= set(obj), obj
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", obj["ts"])
        objs.append(obj)
    return objs


def test_log_format_json_on_a_run(proj):
    rc, out, err = proj.run("--log-format", "json", "run", "--all")
    assert rc == 0, err
    objs = json_lines(err)
    assert len(objs) >= 2
    assert {o.get("sync") for o in objs} >= {"items", "small"}
    assert all(o["level"] in ("debug", "info", "warn", "warning", "error") for o in objs)
    rc, out, err = proj.run("--log-format", "json", "-v", "run", "items")
    assert rc == 0, err
    json_lines(err)


def test_log_format_json_when_the_run_fails(proj):
    proj.add_mapping("items", sync("SELECT id, nope AS x FROM items"))
    rc, out, err = proj.run("--log-format", "json", "run", "items")
    assert rc == 3
    objs = json_lines(err)
    assert any(o["level"] == "error" and "nope" in o["msg"] for o in objs)


# ---- exit codes in realistic situations ---------------------------------------

def test_exit_0_all_synced(proj):
    rc, out, err = proj.run("run", "items")
    assert rc == 0
    assert "all rows synced (exit 0)" in out


def test_exit_1_some_rows_rejected(proj, db):
    proj.add_mapping("items", sync("SELECT id, x FROM items",
                                   fields={"x": {"from": "x",
                                                 "transform": [{"match": "^item 1?[0-9]$"}]}}))
    rc, out, err = proj.run("run", "items")
    assert rc == 1, (out, err)
    assert "run items: rows rejected, completed with 6 rows not synced (exit 1)" in out
    assert len(proj.read_jsonl()) == 19
    rc, out, err = proj.run("failures", "items")
    assert "6 rows failing in items" in out


@pytest.mark.parametrize("mapping,message", [
    ({"source": "warehouse", "query": "SELECT 1 AS id", "key": "id",
      "destination": "out", "fields": {}, "colour": "red"}, "colour"),
    ({"source": "nowhere", "query": "SELECT 1 AS id, 2 AS x", "key": "id",
      "destination": "out", "fields": {"x": "x"}}, "nowhere"),
    ('{"source": "warehouse",', "mappings/items.json:"),
])
def test_exit_2_config_error(proj, mapping, message):
    proj.add_mapping("items", mapping)
    for verb in (["check"], ["run", "items"], ["run", "--all"], ["plan", "items"]):
        rc, out, err = proj.run(*verb)
        assert rc == 2, (verb, out, err)
        assert message in err
    assert not os.path.exists(proj.path("out.jsonl"))


def test_exit_3_source_error(proj, db):
    db.psql("DROP TABLE items")
    rc, out, err = proj.run("run", "items")
    assert rc == 3
    assert 'relation "items" does not exist (SQLSTATE 42P01)' in err
    assert not os.path.exists(proj.path("out.jsonl"))


def test_exit_3_mid_stream_is_recorded(proj, db):
    proj.add_mapping("items", sync("SELECT id, (1 / (id - 20))::text AS x FROM items"))
    rc, out, err = proj.run("run", "items")
    assert rc == 3
    assert "division by zero (SQLSTATE 22012)" in err
    rc, out, err = proj.run("status")
    assert status_rows(out)["items"][1] == "failed"
    rc, out, err = proj.run("history", "items")
    assert "failed" in out.splitlines()[1]


def test_failed_run_before_streaming_is_recorded(proj, db):
    assert proj.run("run", "items")[0] == 0
    db.psql("DROP TABLE items")
    assert proj.run("run", "items")[0] == 3
    rc, out, err = proj.run("status")
    assert status_rows(out)["items"][1] == "failed", out
    rc, out, err = proj.run("history", "items")
    runs = [l.split() for l in out.splitlines()[1:] if l[:1].isdigit()]
    assert [r[0] for r in runs] == ["2", "1"], out
    assert runs[0][2] == "failed"
    assert 'relation "items" does not exist' in out, "history shows why"


def test_run_all_exit_is_the_worst(proj, db):
    proj.add_mapping("broken", sync("SELECT id, nope AS x FROM items"))
    rc, out, err = proj.run("run", "--all")
    assert rc == 3, (out, err)
    assert 'column "nope" does not exist (SQLSTATE 42703)' in err, err
    # the other syncs still ran
    assert len(proj.read_jsonl()) == 25
    assert len(proj.read_jsonl("out2.jsonl")) == 3


@pytest.mark.parametrize("kind", ["parent_is_a_file", "path_is_a_directory"])
def test_exit_4_destination_error(project, db, kind):
    db.psql("CREATE TABLE items (id int, x text); INSERT INTO items VALUES (1, 'a')")
    p = project(dsn=db.dsn, destinations={"bad": {"type": "file",
                                                  "path": "blocker/out.jsonl"
                                                  if kind == "parent_is_a_file"
                                                  else "blocker"}})
    if kind == "parent_is_a_file":
        with open(p.path("blocker"), "w") as f:
            f.write("not a directory\n")
    else:
        os.mkdir(p.path("blocker"))
    p.add_mapping("items", sync("SELECT id, x FROM items", destination="bad"))
    rc, out, err = p.run("run", "items")
    assert rc == 4, (out, err)
    assert "retl: destination bad: cannot open" in err
    assert ("Not a directory" if kind == "parent_is_a_file" else "Is a directory") in err
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        assert con.execute("SELECT count(*) FROM cache WHERE status=1").fetchone() == (0,)
    finally:
        con.close()
    rc, out, err = p.run("check")
    assert rc == 4, (out, err)
    assert "destination bad: cannot open" in out + err, (out, err)


def test_exit_5_safety(proj, db):
    proj.add_mapping("items", sync("SELECT id, x FROM items", mode="mirror",
                                   on_remove="delete"))
    assert proj.run("run", "items")[0] == 0
    db.psql("DELETE FROM items")
    rc, out, err = proj.run("run", "items")
    assert rc == 5, (out, err)
    assert "refuse_empty_model" in out + err
    assert len(proj.read_jsonl()) == 25


# ---- plan changes nothing ----------------------------------------------------

def state_digest(p):
    d = {}
    sdir = p.path("state")
    for name in sorted(os.listdir(sdir)):
        with open(os.path.join(sdir, name), "rb") as f:
            d[name] = hashlib.sha256(f.read()).hexdigest()
    con = sqlite3.connect(os.path.join(sdir, "retl.db"))
    try:
        d["rows"] = [con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                     for t in ("cache", "runs", "outcomes")]
    finally:
        con.close()
    return d


def test_plan_never_changes_state(proj, db, tmp_path):
    assert proj.run("run", "items")[0] == 0
    db.psql("UPDATE items SET x = 'changed' WHERE id <= 3;"
            "INSERT INTO items VALUES (100, 'new')")
    with open(proj.path("out.jsonl"), "rb") as f:
        out_before = f.read()
    before = state_digest(proj)
    for args in (["plan", "items"], ["plan", "items", "--out", tmp_path / "p.jsonl"],
                 ["plan", "items", "--full-resync"]):
        rc, out, err = proj.run(*args)
        assert rc == 0, err
        assert re.search(r"change\s+3\b", out) or "--full-resync" in args
    assert state_digest(proj) == before
    with open(proj.path("out.jsonl"), "rb") as f:
        assert f.read() == out_before
    planned = planfile.ops(tmp_path / "p.jsonl")
    assert sorted((l["change"], l["key"]) for l in planned) == \
        [("added", "100"), ("changed", "1"), ("changed", "2"), ("changed", "3")]
    # and the run after it still sends those 4
    assert proj.run("run", "items")[0] == 0
    assert len(proj.read_jsonl()) == 29


def test_plan_before_any_run_creates_no_history(proj):
    rc, out, err = proj.run("plan", "items")
    assert rc == 0, err
    rc, out, err = proj.run("status")
    assert status_rows(out)["items"][1] == "never"


def test_plan_usage(proj, tmp_path):
    rc, out, err = proj.run("plan")
    assert rc == 2 and "plan needs one sync" in err
    rc, out, err = proj.run("plan", "items", "small")
    assert rc == 2 and "plan needs one sync" in err, err
    rc, out, err = proj.run("plan", "items", "--out")
    assert rc == 2 and "--out needs a value" in err
    rc, out, err = proj.run("plan", "items", "--limit", "3")
    assert rc == 2 and 'unknown option "--limit"' in err, err


@pytest.mark.parametrize("where", ["missing_dir", "under_a_file", "a_directory"])
def test_plan_out_unwritable(proj, tmp_path, where):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    target = {"missing_dir": tmp_path / "nope" / "p.jsonl",
              "under_a_file": tmp_path / "afile" / "p.jsonl",
              "a_directory": tmp_path / "adir"}[where]
    rc, out, err = proj.run("plan", "items", "--out", target)
    assert rc == 2, (out, err)
    assert f"retl: --out {target}: " in err
    assert (tmp_path / "afile").read_text() == "x"


# ---- reset -------------------------------------------------------------------

def cache_count(p, name):
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return con.execute("SELECT count(*) FROM cache WHERE sync=?", (name,)).fetchone()[0]
    finally:
        con.close()


def test_reset_refused_while_the_sync_runs(proj, db):
    assert proj.run("run", "items")[0] == 0
    db.psql("CREATE FUNCTION slow(int) RETURNS int LANGUAGE sql "
            "AS 'SELECT $1 FROM pg_sleep(0.05)'")
    proj.add_mapping("items", sync("SELECT slow(id) AS id, x FROM items"))
    p = subprocess.Popen([proj.retl_bin, "--config", proj.dir, "run", "items"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lock(proj.dir, p.pid)
        assert p.poll() is None, "the slow run is still going"
        rc, out, err = proj.run("reset", "items")
        assert rc == 2, (out, err)
        assert f"sync items is already running (pid {p.pid})" in err
        # another sync is not locked
        assert proj.run("run", "small")[0] == 0
    finally:
        p.communicate(timeout=60)
    assert p.returncode == 0
    assert cache_count(proj, "items") == 25, "the refused reset forgot nothing"
    rc, out, err = proj.run("reset", "items")
    assert rc == 0, err
    assert cache_count(proj, "items") == 0
    assert proj.run("run", "items")[0] == 0
    assert len(proj.read_jsonl()) == 50
