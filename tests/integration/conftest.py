"""Shared fixtures for retl's integration tests.

    pg         one throwaway PostgreSQL cluster for the whole session
               (tests/pgcluster.py); tests that need isolation take `db`
    db         a fresh database in that cluster for one test (.dsn, .psql)
    retl_bin   the built binary: $RETL_BIN or <repo>/retl (fails if missing)
    project    factory: project(dsn=None, destinations=None, state=None)
               -> Project with .dir, .add_mapping(name, dict|str),
                  .run(*args, env=None), .read_jsonl(relpath)
    run        run(retl_bin, project_dir, *args, env=None)
               -> (returncode, stdout, stderr)

A project is a temp folder with retl.json: source "warehouse" (the session
cluster's DSN unless given) and destination "out" = {"type": "file",
"path": "out.jsonl", "batch_size": 2000} (relative to the project folder).

RETL_TEST_READ=copy|cursor sets the default source's "read" (how rows are
streamed); `make integration` runs test_sync.py a second time with
RETL_TEST_READ=cursor, so the sync tests hold on both read paths.

RETL_TEST_STATE=postgresql puts the state of every default project (no
state given) in a fresh database of the session cluster instead of the
SQLite file; `make integration` runs test_sync.py and test_run_states.py
a second time so.

    pg_state   factory: pg_state() -> the URL of a state store in a fresh
               database of the session cluster (README "The state store",
               PostgreSQL); project(state=pg_state()) keeps its state there
"""

import itertools
import json
import os
import subprocess
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(TESTS_DIR)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from pgcluster import PgCluster  # noqa: E402
from waiting import wait_for  # noqa: E402

RUN_TIMEOUT = 300

# every retl a test starts checks, after writing a cache image from the
# run's cache, that the image equals the store's rows, and aborts if not
# (src/state_mirror.c): each test is also a test of that mirror
os.environ.setdefault("RETL_TEST_VERIFY_IMAGE", "1")

# the source's "read" for every default project (see the module docstring)
READ_PATH = ({"read": os.environ["RETL_TEST_READ"]}
             if os.environ.get("RETL_TEST_READ") else {})


def run(retl_bin, project_dir, *args, env=None, timeout=RUN_TIMEOUT,
        input=None):
    """Runs `retl --config project_dir args...`; env entries are added to
    (not replacing) the environment; a value of None removes a variable."""
    full_env = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = str(v)
    argv = [retl_bin, "--config", str(project_dir)] + [str(a) for a in args]
    res = subprocess.run(argv, env=full_env, capture_output=True, text=True,
                         timeout=timeout, input=input,
                         stdin=None if input is not None else subprocess.DEVNULL)
    return res.returncode, res.stdout, res.stderr


def read_jsonl(path):
    """The complete lines of a JSON-lines file.  A last line without its
    newline is left out: it is a write cut short (a killed run), which the
    file destination never acknowledged and trims when it next opens."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f
                if line.endswith("\n") and line.strip()]


def wait_for_lock(project_dir, pid, timeout=60):
    """Waits until process `pid` holds a run lock of the project: the lock
    file (state/<db>.<sync>.lock) names its holder right after the flock.
    For tests that must act while a run goes, without guessing how long a
    loaded machine takes to start it.  The timeout only stops a hang."""
    import glob

    def held():
        for path in glob.glob(os.path.join(str(project_dir), "**", "*.lock"),
                              recursive=True):
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read().strip() == str(pid):
                        return path
            except OSError:
                pass
        return None
    return wait_for(held, timeout, f"pid {pid} to take a run lock")


@pytest.fixture(scope="session")
def pg():
    cluster = PgCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


class Database:
    """A database of the session cluster, dropped after the test."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name

    @property
    def dsn(self):
        return self.cluster.dsn.replace("dbname=postgres",
                                        f"dbname={self.name}")

    def psql(self, sql, *args, check=True):
        return self.cluster.psql(sql, *args, check=check, dbname=self.name)

    def scalar(self, sql):
        return self.psql(sql, "-At").split("\n", 1)[0]


_db_counter = itertools.count(1)


@pytest.fixture
def db(pg):
    name = f"t{os.getpid()}_{next(_db_counter)}"
    pg.psql(f"CREATE DATABASE {name}")
    try:
        yield Database(pg, name)
    finally:
        pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", check=False)


def pg_state_url(cluster, dbname, password=None):
    """A postgresql:// URL of database dbname of the cluster (unix socket);
    password, when given, is put in the URL (trust auth ignores it)."""
    auth = f"postgres:{password}" if password else "postgres"
    return (f"postgresql://{auth}@/{dbname}?host={cluster.sockdir}"
            f"&port={cluster.port}")


@pytest.fixture
def pg_state(pg):
    """Factory of state stores in PostgreSQL: each call a fresh database,
    dropped after the test; returns its URL."""
    names = []

    def make(password=None):
        name = f"st{os.getpid()}_{next(_db_counter)}"
        pg.psql(f"CREATE DATABASE {name}")
        names.append(name)
        return pg_state_url(pg, name, password)

    yield make
    for name in names:
        pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", check=False)


@pytest.fixture(scope="session")
def retl_bin():
    path = os.environ.get("RETL_BIN") or os.path.join(REPO_DIR, "retl")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"retl binary not found at {path}: run `make retl` "
                    f"first or set RETL_BIN", pytrace=False)
    return path


class Project:
    def __init__(self, root, retl_bin, state_url=None):
        self.dir = str(root)
        self.retl_bin = retl_bin
        self.state_url = state_url      # a PostgreSQL store, or None
        os.makedirs(os.path.join(self.dir, "mappings"), exist_ok=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write_config(self, config):
        with open(self.path("retl.json"), "w", encoding="utf-8") as f:
            if isinstance(config, str):
                f.write(config)
            else:
                json.dump(config, f, indent=2)
        return self.path("retl.json")

    def add_mapping(self, name, mapping):
        """mappings/<name>.json from a dict (dumped) or a string (as is)."""
        p = self.path("mappings", f"{name}.json")
        with open(p, "w", encoding="utf-8") as f:
            if isinstance(mapping, str):
                f.write(mapping)
            else:
                json.dump(mapping, f, indent=2)
        return p

    def run(self, *args, env=None, timeout=RUN_TIMEOUT, input=None):
        return run(self.retl_bin, self.dir, *args, env=env, timeout=timeout,
                   input=input)

    def read_jsonl(self, rel="out.jsonl"):
        return read_jsonl(self.path(rel))

    def state_rows(self, sql):
        """The rows of sql run on the project's state store, the SQLite
        file or the PostgreSQL database (self.state_url): tuples of int,
        float, str or None."""
        if not self.state_url:
            import sqlite3
            con = sqlite3.connect(self.path("state", "retl.db"))
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()
        import re
        url = self.state_url
        db = url.split("@/", 1)[1].split("?", 1)[0]
        query = dict(kv.split("=", 1) for kv in url.split("?", 1)[1].split("&"))
        psql = os.path.join(PgCluster().bindir, "psql")
        out = subprocess.run(
            [psql, "-X", "-q", "-A", "-t", "-F", "\x1f", "-R", "\x1e",
             "-v", "ON_ERROR_STOP=1", "-h", query["host"], "-p",
             query["port"], "-U", "postgres", "-d", db,
             "-P", "null=\\N", "-c", "SET search_path TO retl",
             "-c", sql], capture_output=True, text=True, check=True).stdout

        def value(v):
            if v == "\\N":
                return None
            if re.fullmatch(r"-?\d+", v):
                return int(v)
            if re.fullmatch(r"-?\d+\.\d*(e[-+]?\d+)?", v):
                return float(v)
            return v
        return [tuple(value(v) for v in row.split("\x1f"))
                for row in out.rstrip("\n").split("\x1e") if row.strip("\n")]


# the state of every default project (see the module docstring)
STATE_IN_PG = os.environ.get("RETL_TEST_STATE") == "postgresql"


@pytest.fixture
def project(tmp_path, pg, retl_bin, pg_state):
    counter = itertools.count(1)

    def make(dsn=None, destinations=None, state=None, sources=None):
        if state is None and STATE_IN_PG:
            state = pg_state()
        root = tmp_path / f"project{next(counter)}"
        root.mkdir()
        p = Project(root, retl_bin, state if state and
                    state.startswith("postgresql://") else None)
        config = {
            "sources": sources or {
                "warehouse": dict({"type": "postgres", "dsn": dsn or pg.dsn},
                                  **READ_PATH),
            },
            "destinations": destinations or {
                # batches of 2,000 (the default is 20,000): the tests
                # were written for many batches in a few thousand rows
                "out": {"type": "file", "path": "out.jsonl",
                        "batch_size": 2000},
            },
        }
        if state is not None:
            config["state"] = state
        p.write_config(config)
        return p

    return make
