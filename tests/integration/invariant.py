"""The promise as an invariant: after the last clean run the destination
holds exactly the model.

A scenario is a random sequence (a seed) of model changes applied to a real
PostgreSQL table: inserts, updates, deletes, key changes that keep the match
value, match value changes, duplicate match values, values set to empty and
to NULL.  After each change retl runs, with the destination's faults on
(errors before and after a write, answers lost after the write) and, at
random, a SIGKILL at a random moment.  Then the faults go off, one clean run
follows, and:

  * the destination's records equal the model record by record (none
    missing, none extra, no stale value), the model being its rows less the
    later of two rows with one match value (refused: "duplicate match
    value");
  * `retl plan` plans nothing;
  * every refused row is listed by `retl failures`.

Each destination gives an adapter: its project, its fault knobs, and its
records read back as {match value: fields}.  tests/integration/
test_invariant.py runs fixed seeds in `make test`; `make soak` runs random
seeds for as long as asked (tests/soak.py).
"""

import json
import os
import random
import signal
import subprocess
import time
import planfile  # noqa: E402


class Model:
    """The model table and a generator of random changes to it."""

    def __init__(self, db, rng, table="inv"):
        self.db = db
        self.rng = rng
        self.table = table
        self.next_id = 1
        self.next_mail = 1
        db.psql(f"CREATE TABLE {table} (id int PRIMARY KEY, email text, "
                f"name text, plan text)")

    def rows(self):
        out = []
        text = self.db.psql(f"SELECT id, email, coalesce(name, '\\N'), "
                            f"coalesce(plan, '\\N') FROM {self.table} ORDER BY id",
                            "-At", "-F", "\t")
        for line in text.splitlines():
            i, e, n, p = line.split("\t")
            out.append({"id": int(i), "email": e,
                        "name": None if n == "\\N" else n,
                        "plan": None if p == "\\N" else p})
        return out

    def _mail(self):
        self.next_mail += 1
        return f"p{self.next_mail}@example.com"

    def _insert(self, email=None, name=None, plan="basic"):
        i = self.next_id
        self.next_id += 1
        email = email or self._mail()
        name = name or f"Name{i}"
        self.db.psql(f"INSERT INTO {self.table} VALUES ({i}, '{email}', "
                     f"'{name}', {sql(plan)})")
        return i

    def seed(self, n):
        for _ in range(n):
            self._insert()

    def change(self):
        """One random change; returns what it did (for failure messages)."""
        rows = self.rows()
        r = self.rng
        pick = r.choice(rows)
        kind = r.choice(["insert", "insert", "update", "update", "delete",
                         "key_change", "match_change", "duplicate", "empty",
                         "null", "case", "update_many"])
        if kind == "insert":
            for _ in range(r.randint(1, 4)):
                self._insert(plan=r.choice(["basic", "pro", None, ""]))
        elif kind == "update_many":
            # enough rows for several batches: a kill lands between them
            self.db.psql(f"UPDATE {self.table} SET name = name || '+' "
                         f"WHERE id % {r.randint(1, 3)} = 0")
        elif kind == "update":
            for x in r.sample(rows, min(len(rows), r.randint(1, 4))):
                self.db.psql(f"UPDATE {self.table} SET name = 'N{r.randint(0, 10**6)}'"
                             f" WHERE id = {x['id']}")
        elif kind == "delete" and len(rows) > 3:
            self.db.psql(f"DELETE FROM {self.table} WHERE id = {pick['id']}")
        elif kind == "key_change" and pick["email"]:
            # the row gets a new key; its match value stays
            self.db.psql(f"DELETE FROM {self.table} WHERE id = {pick['id']}")
            self._insert(email=pick["email"], name=pick["name"] or "x",
                         plan=pick["plan"])
        elif kind == "match_change":
            self.db.psql(f"UPDATE {self.table} SET email = '{self._mail()}' "
                         f"WHERE id = {pick['id']}")
        elif kind == "duplicate":
            self._insert(email=pick["email"])
        elif kind == "case":
            # the same address in other letters: the same record
            self.db.psql(f"UPDATE {self.table} SET email = upper(email) "
                         f"WHERE id = {pick['id']}")
        elif kind in ("empty", "null"):
            v = "''" if kind == "empty" else "NULL"
            self.db.psql(f"UPDATE {self.table} SET plan = {v} WHERE id = {pick['id']}")
        return kind

    def expected(self, with_match=True):
        """{match value (lowercased): row} of the rows the destination must
        hold, and the ids refused as later duplicates of a match value."""
        out, refused = {}, []
        for row in self.rows():
            m = row["email"].strip().lower() if with_match else str(row["id"])
            if m in out:
                refused.append(row["id"])
                continue
            out[m] = row
        return out, refused


def sql(v):
    return "NULL" if v is None else "'" + v.replace("'", "''") + "'"


def run_killed(project, env, rng, args=("run", "inv")):
    """retl run, SIGKILLed after a random moment (it may have ended)."""
    full = dict(os.environ)
    full.update(env or {})
    p = subprocess.Popen([project.retl_bin, "--config", project.dir] + list(args),
                         env=full, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    # scenario: the kill lands at a random moment of the run, whatever
    # it is doing then (not a wait for retl: any moment is a valid test)
    time.sleep(rng.uniform(0.0, 0.4))
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait()
    return p.returncode


def scenario(adapter, db, project, seed, steps=12, rows=12):
    rows = getattr(adapter, "rows", rows)
    """Runs one scenario; raises AssertionError with the story on failure."""
    rng = random.Random(seed)
    model = Model(db, rng)
    model.seed(rows)
    p = adapter.project(project, db)
    story = []
    for step in range(steps):
        kind = model.change() if step else "seed"
        faults = rng.random() < 0.6
        kill = rng.random() < 0.3
        adapter.faults(faults, rng, slow=kill)
        if kill:
            rc = run_killed(p, adapter.env, rng)
        else:
            rc, _, err = p.run("run", "inv", env=adapter.env)
            assert rc in (0, 1, 4), f"step {step}: exit {rc}: {err}"
        story.append(f"{kind}{'+faults' if faults else ''}{'+kill' if kill else ''}:{rc}")
    adapter.faults(False, rng, slow=False)
    rc, out, err = p.run("run", "inv", env=adapter.env)
    story.append(f"clean:{rc}")
    where = f"seed {seed}: " + " ".join(story)
    assert rc in (0, 1), f"{where}: clean run exit {rc}: {err}"

    want, refused = model.expected(adapter.has_match)
    got = adapter.records()
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, \
        f"{where}: missing {missing[:5]} extra {extra[:5]}"
    stale = [m for m in want if adapter.fields(want[m]) != got[m]]
    assert not stale, (f"{where}: stale {stale[:3]}: want "
                       f"{[adapter.fields(want[m]) for m in stale[:3]]} got "
                       f"{[got[m] for m in stale[:3]]}")

    plan = p.path("plan.jsonl")
    rc, out, err = p.run("plan", "inv", "--out", plan, env=adapter.env)
    assert rc in (0, 1), f"{where}: plan exit {rc}: {err}"
    ops = planfile.ops(plan)
    assert not ops, f"{where}: plan still plans {ops[:3]}"

    rc, out, err = p.run("failures", "inv", env=adapter.env)
    listed = out.split()
    for i in refused:
        assert str(i) in listed, f"{where}: refused row {i} not in retl failures:\n{out}"
