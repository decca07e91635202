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
from audit_check import assert_audit_complete  # noqa: E402
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


# ---- one sequence, both diff modes ----------------------------------------

@pytest.fixture
def hubspots():
    yield from starter(hubspot, tokens=[HS_TOKEN], rate="100000/10s")


def hs_mapping(diff, upper=False):
    first = {"from": "name", "transform": ["upper"]} if upper else "name"
    return {"source": "warehouse", "query": "SELECT * FROM inv ORDER BY id",
            "key": "id", "destination": "hs", "object": "contacts",
            "mode": "mirror", "on_remove": "archive",
            "match": {"email": "email"}, "diff": diff,
            "fields": {"email": "email", "firstname": first, "company": "plan"}}


def hs_records(url):
    out = {}
    for r in control(url, "records/contacts")["results"]:
        props = r["properties"]
        m = (props.get("email") or "").lower()
        while m in out:              # two records for one address: extra
            m += "#again"
        out[m] = {"firstname": props.get("firstname") or "",
                  "company": props.get("company") or ""}
    return out


def hs_faults(url, on, rng, slow):
    control(url, "config", {
        "error_rate_5xx": 0.1 if on else 0.0,
        "error_5xx_after_rate": 0.1 if on else 0.0,
        "drop_after": 0.08 if on else 0.0,       # answers lost after the write
        "latency": 0.03 if slow else 0.0,
        "reject_values": ["REJECTED"],           # rows the destination refuses
        "seed": rng.randint(0, 10**9)})


def change(model, db, rng):
    """one random change of the sequence (Model's, less duplicate match
    values: README "Diff in the warehouse" says how those differ), or a
    row the destination will refuse"""
    rows = model.rows()
    if rng.random() < 0.15:
        x = rng.choice(rows)
        db.psql(f"UPDATE inv SET name = 'REJECTED' WHERE id = {x['id']}")
        return "reject"
    while True:
        state = rng.getstate()
        kind = model.change()
        if kind != "duplicate":
            return kind
        # undo: the duplicate is the newest row
        db.psql("DELETE FROM inv WHERE id = (SELECT max(id) FROM inv)")
        rng.setstate(state)
        rng.random()


def sequence(model, db, rng, projects, urls, env, remap, steps=14):
    """One random sequence of model changes, rows the destination refuses,
    a mapping change (step 7: remap(name, upper=True) for each project),
    5xx and lost answers, and kills, run through every project; after each
    step's clean runs, yields (where, upper, {name: that run's -v stderr})"""
    upper, story = False, []
    for step in range(steps):
        if step == 7:
            upper = True             # a mapping change: every row re-mapped
            for d, p in projects.items():
                p.add_mapping("inv", remap(d, True))
            kind = "mapping"
        else:
            kind = change(model, db, rng) if step else "seed"
        faults = rng.random() < 0.6
        kill = rng.random() < 0.3
        kill_seed = rng.randint(0, 10**9)
        for d, p in projects.items():
            hs_faults(urls[d], faults, random.Random(kill_seed), slow=kill)
            if kill:
                run_killed(p, env, random.Random(kill_seed))
            else:
                rc, _, err = p.run("run", "inv", env=env)
                assert rc in (0, 1, 4), f"{d} step {step}: exit {rc}: {err}"
        story.append(f"{kind}{'+faults' if faults else ''}{'+kill' if kill else ''}")
        where = f"step {step} ({' '.join(story)})"
        errs = {}
        for d, p in projects.items():
            hs_faults(urls[d], False, rng, slow=False)
            rc, _, errs[d] = p.run("-v", "run", "inv", env=env)
            assert rc in (0, 1), f"{where}: {d}: clean run exit {rc}: {errs[d]}"
        yield where, upper, errs


def assert_model_records(got, model, upper, where):
    """a destination's records are the model's, record by record (a row
    the destination refuses keeps what its record had)"""
    want, _ = model.expected(True)
    assert set(got) == set(want) | {
        m for m in got if want.get(m, {}).get("name") == "REJECTED"}, where
    for m, row in want.items():
        if row["name"] == "REJECTED":
            continue
        name = row["name"].upper() if upper else row["name"]
        assert got.get(m) == {"firstname": name, "company": row["plan"] or ""}, \
            f"{where}: {m}: {got.get(m)} vs {row}"


@pytest.mark.parametrize("sql", ["postgresql", "portable"])
def test_both_modes_same_destination(project, db, hubspots, sql):
    seed = 19
    rng = random.Random(seed)
    model = Model(db, rng)
    model.seed(40)
    urls = {d: hubspots() for d in ("local", "warehouse")}
    env = dict(ENV, RETL_TEST_WHDIFF_SQL=sql)
    projects = {}
    for d, url in urls.items():
        projects[d] = project(dsn=db.dsn, destinations={
            "hs": {"type": "hubspot", "token": "${HS_TOKEN}", "base_url": url,
                   "requests_per_10s": 100000, "timeout": 10}})
        projects[d].add_mapping("inv", hs_mapping(d))
        # sync logs in the warehouse (issue 19, Done when 3): checked at the
        # end against each store's history and failures
        cfg = json.load(open(projects[d].path("retl.json")))
        cfg["sources"]["warehouse"]["audit"] = f"audit_{d}"
        projects[d].write_config(cfg)
    for where, upper, _ in sequence(model, db, rng, projects, urls, env,
                                    lambda d, up: hs_mapping(d, upper=up)):
        got = {d: hs_records(u) for d, u in urls.items()}
        assert got["local"] == got["warehouse"], \
            f"{where}: the destinations differ: " + json.dumps(
                {k: (got["local"].get(k), got["warehouse"].get(k))
                 for k in set(got["local"]) ^ set(got["warehouse"]) |
                 {k for k in got["local"] if got["local"][k] != got["warehouse"].get(k)}})
        assert_model_records(got["warehouse"], model, upper, where)
    # every run of the sequence (killed ones as "abandoned") and every row
    # rejected or failed is in the warehouse's sync logs
    for d, p in projects.items():
        assert_audit_complete(p, db, f"audit_{d}", ["inv"], env=env)


# ---- failure paths ----------------------------------------------------------

def test_missing_grants_are_named(seeded, db, project):
    role = f"wh_{db.name}"
    db.psql(f"CREATE ROLE {role} LOGIN; GRANT SELECT ON t TO {role};"
            f"CREATE SCHEMA retl_state")
    p = project(dsn=db.dsn.replace("user=postgres", f"user={role}"))
    p.add_mapping("s", mapping())
    fix = f'GRANT USAGE ON SCHEMA "retl_state" TO "{role}"'
    rc, out, err = p.run("check", "s")
    assert rc != 0 and "missing: USAGE on schema" in out + err and fix in out + err, out + err
    rc, out, err = p.run("run", "s")
    assert rc == 3 and fix in err, err
    assert ops(p) == []              # nothing sent

    db.psql(f"GRANT USAGE, CREATE ON SCHEMA retl_state TO {role}")
    rc, out, err = p.run("run", "s")
    assert rc == 0, err
    assert len(ops(p)) == 300

    # the table is there now: a grant taken away is named with its fix
    db.psql(f"REVOKE DELETE, UPDATE ON retl_state.s FROM {role}")
    rc, out, err = p.run("check", "s")
    assert rc != 0 and 'GRANT DELETE ON "retl_state"."s"' in out + err, out + err
    rc, out, err = p.run("run", "s")
    assert rc == 3 and "missing: DELETE on table" in err, err
    assert 'GRANT UPDATE ON "retl_state"."s"' in err, err


def test_table_dropped_between_runs(seeded, db):
    p = seeded
    rc, _, err = p.run("run", "s")
    assert rc == 0, err
    db.psql("DROP TABLE retl_state.s")
    # a key leaves the model while the table is gone: the table cannot
    # return it, the local rows do
    db.psql("DELETE FROM t WHERE id = 9")
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0, err
    assert "created table retl_state.s" in err
    assert "compares all 300 local rows" in err
    assert returned(err) == (299, 0)     # every row looked at again ...
    assert re.search(r"299 rows streamed at [0-9.]+ s, 0 mapped", err), err
    assert ops(p, 300) == [("remove", "9")]   # ... nothing sent again
    assert db.scalar("SELECT count(*) FROM retl_state.s WHERE row_hash IS NOT NULL") == "299"
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0 and returned(err) == (0, 0), err


def net(p):
    """the file destination's records: {key: payload}"""
    recs = {}
    for o in p.read_jsonl():
        if o["op"] == "remove":
            recs.pop(o["key"], None)
        else:
            recs[o["key"]] = o["payload"]
    return recs


def model(db):
    out = {}
    for line in db.psql("SELECT id, email, name FROM t", "-At", "-F", "\t").splitlines():
        i, e, n = line.split("\t")
        out[i] = {"email": e, "name": n}
    return out


def test_kill_between_ack_and_write_back(seeded, db):
    p = seeded
    rc, _, err = p.run("run", "s")
    assert rc == 0, err
    db.psql("INSERT INTO t VALUES (301, 'u301@x.com', 'n301');"
            "UPDATE t SET name = 'changed' WHERE id = 5")
    run_and_kill_at([p.retl_bin, "--config", p.dir, "run", "s"],
                    "whdiff-writeback", 1)
    assert sorted(ops(p, 300)) == [("upsert", "301"), ("upsert", "5")]
    # sent and acknowledged, not written back: the table says "look again"
    assert db.scalar("SELECT count(*) FROM retl_state.s WHERE key IN ('301', '5') "
                     "AND row_hash IS NULL") == "2"
    # the new key leaves the model before any write-back: still removed
    db.psql("DELETE FROM t WHERE id = 301")
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0, err
    assert returned(err) == (1, 1)
    assert ops(p, 302) == [("remove", "301")]   # 5 found unchanged locally
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0 and returned(err) == (0, 0), err


@pytest.mark.parametrize("point", ["whdiff-marked", "whdiff-writeback", "whdiff-written"])
def test_killed_at_each_table_write(seeded, db, point):
    """killed before the push (table marked), before and after the
    write-back: the next runs leave the destination equal to the model"""
    p = seeded
    rc, _, err = p.run("run", "s")
    assert rc == 0, err
    db.psql("INSERT INTO t VALUES (301, 'u301@x.com', 'n301'), (302, 'u302@x.com', 'n302');"
            "UPDATE t SET name = 'changed' WHERE id IN (5, 6); DELETE FROM t WHERE id = 7")
    run_and_kill_at([p.retl_bin, "--config", p.dir, "run", "s"], point, 1)
    db.psql("DELETE FROM t WHERE id = 301; UPDATE t SET name = 'again' WHERE id = 6")
    rc, _, err = p.run("run", "s")
    assert rc == 0, err
    assert net(p) == model(db)
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0 and returned(err) == (0, 0), err


def test_reset_clears_the_table(seeded, db):
    p = seeded
    rc, _, err = p.run("run", "s")
    assert rc == 0, err
    rc, out, err = p.run("reset", "s")
    assert rc == 0, err
    assert db.scalar("SELECT count(*) FROM retl_state.s") == "0"
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0, err
    assert returned(err) == (300, 0)
    assert len(ops(p)) == 600            # the next run sends every row


def test_key_rendered_otherwise_in_sql_stops_the_run(db, project):
    db.psql("CREATE TABLE t (id int PRIMARY KEY, flag boolean, email text, name text);"
            "INSERT INTO t VALUES (1, true, 'a@x.com', 'a')")
    p = project(dsn=db.dsn)
    p.add_mapping("s", mapping(key=["id", "flag"]))
    rc, _, err = p.run("run", "s", env={"RETL_TEST_WHDIFF_SQL": "portable"})
    assert rc == 2 and "the key's text in SQL" in err and '"true"' in err, err
    assert ops(p) == []
    rc, _, err = p.run("run", "s")       # PostgreSQL's SQL renders it as COPY does
    assert rc == 0, err


def test_limit_leaves_the_rest_for_the_next_run(seeded, db):
    p = seeded
    rc, _, err = p.run("run", "s")
    assert rc == 0, err
    db.psql("UPDATE t SET name = 'changed' WHERE id <= 5")
    rc, _, err = p.run("run", "s", "--limit", "2")
    assert len(ops(p, 300)) == 2
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0, err
    assert returned(err) == (3, 0)       # the three deferred rows, only
    assert sorted(k for _, k in ops(p, 300)) == ["1", "2", "3", "4", "5"]


def test_switching_from_the_local_diff(db, project):
    db.psql("CREATE TABLE t (id int PRIMARY KEY, email text, name text);"
            "INSERT INTO t SELECT i, 'u' || i || '@x.com', 'n' || i "
            "FROM generate_series(1, 50) i;"
            "INSERT INTO t VALUES (51, 'not an address', 'bad')")
    p = project(dsn=db.dsn)
    strict = {"email": {"from": "email", "transform": [{"match": "^[^@ ]+@[^@ ]+$"}]},
              "name": "name"}
    p.add_mapping("s", mapping(diff="local", fields=strict))
    rc, _, err = p.run("run", "s")
    assert rc == 1, err                  # row 51 refused by the mapping
    assert len(ops(p)) == 50
    db.psql("DELETE FROM t WHERE id = 51")
    p.add_mapping("s", mapping(fields=strict))
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0, err
    assert re.search(r"50 rows streamed at [0-9.]+ s, 0 mapped", err), err
    assert len(ops(p)) == 50             # nothing sent again
    rc, out, err = p.run("failures", "s")
    assert "51" not in out.split(), out  # the refused row that left: forgotten


def test_plan_counts_changes_and_writes_nothing(seeded, db):
    p = seeded
    rc, _, err = p.run("run", "s")
    assert rc == 0, err
    db.psql("UPDATE t SET name = 'changed' WHERE id IN (5, 6); DELETE FROM t WHERE id = 7")
    before = db.psql("SELECT key, row_hash FROM retl_state.s ORDER BY key", "-At")
    rc, out, err = p.run("-v", "plan", "s")
    assert rc == 0, err
    assert returned(err) == (2, 1)
    assert db.psql("SELECT key, row_hash FROM retl_state.s ORDER BY key", "-At") == before
    assert len(ops(p)) == 300
    rc, out, err = p.run("plan", "s", "--out", p.path("plan.jsonl"))
    assert rc == 2 and "plan --out is not available" in err, err
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0 and returned(err) == (2, 1), err


def test_failing_key_that_left_is_forgotten(db, project):
    """a key failing locally that the table never had (it failed while the
    sync ran with the local diff) is still looked at when it leaves"""
    db.psql("CREATE TABLE t (id int PRIMARY KEY, email text, name text);"
            "INSERT INTO t SELECT i, 'u' || i || '@x.com', 'n' || i "
            "FROM generate_series(1, 50) i")
    p = project(dsn=db.dsn)
    strict = {"email": {"from": "email", "transform": [{"match": "^[^@ ]+@[^@ ]+$"}]},
              "name": "name"}
    p.add_mapping("s", mapping(fields=strict))
    rc, _, err = p.run("run", "s")
    assert rc == 0, err
    p.add_mapping("s", mapping(diff="local", fields=strict))
    db.psql("INSERT INTO t VALUES (51, 'not an address', 'bad')")
    rc, _, err = p.run("run", "s")
    assert rc == 1, err                  # row 51 refused by the mapping
    db.psql("DELETE FROM t WHERE id = 51")
    p.add_mapping("s", mapping(fields=strict))
    rc, _, err = p.run("-v", "run", "s")
    assert rc == 0, err
    assert "compares all" not in err     # the table has rows: no full run
    rc, out, err = p.run("failures", "s")
    assert "51" not in out.split(), out


def test_apply_of_a_plan_made_before_the_switch_is_refused(db, project):
    db.psql("CREATE TABLE t (id int PRIMARY KEY, email text, name text);"
            "INSERT INTO t VALUES (1, 'a@x.com', 'a')")
    p = project(dsn=db.dsn)
    p.add_mapping("s", mapping(diff="local"))
    rc, _, err = p.run("plan", "s", "--out", p.path("plan.jsonl"))
    assert rc == 0, err
    p.add_mapping("s", mapping())
    rc, _, err = p.run("apply", p.path("plan.jsonl"))
    assert rc == 2 and "plan files do not support" in err, err
    assert ops(p) == []
