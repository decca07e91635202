"""pgproxy.py's own test: through the proxy, psql sees a server that says
it is Redshift (server_version 8.0.2, version() naming Redshift), refuses
COPY (query) TO STDOUT with Redshift's error and leaves the transaction as
the error left it, refuses what Redshift's grammar lacks, and otherwise
answers as the real server does.  psql over TCP to 127.0.0.1, the proxy to
a throwaway cluster's unix socket.
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from pgcluster import PgCluster  # noqa: E402
from pgproxy import PgProxy, REDSHIFT_VERSION  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    c = PgCluster()
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def proxy(cluster):
    with PgProxy(os.path.join(cluster.sockdir,
                              f".s.PGSQL.{cluster.port}")) as px:
        yield px


def psql(cluster, px, sql):
    """(exit code, stdout, stderr) of psql -f - through the proxy"""
    argv = [cluster._bin("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
            "-d", f"host=127.0.0.1 port={px.port} user=postgres "
            f"dbname=postgres sslmode=prefer", "-f", "-"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    r = subprocess.run(argv, input=sql, capture_output=True, text=True,
                       env=env, timeout=60)
    return r.returncode, r.stdout, r.stderr


def test_says_it_is_redshift(cluster, proxy):
    rc, out, err = psql(cluster, proxy,
                        "\\echo :SERVER_VERSION_NAME\nSELECT version();")
    assert rc == 0, err
    assert out.splitlines() == ["8.0.2", REDSHIFT_VERSION]


def test_refuses_copy_to_stdout_like_redshift(cluster, proxy):
    rc, out, err = psql(cluster, proxy, "COPY (SELECT 1) TO STDOUT;")
    assert rc != 0
    assert 'syntax error at or near "(" in context "COPY (", at line 1' in err
    # the transaction is aborted, as after any error in a block
    rc, out, err = psql(cluster, proxy,
                        "\\set ON_ERROR_STOP 0\nBEGIN;\n"
                        "COPY (SELECT 1) TO STDOUT;\nSELECT 1;\nROLLBACK;\n")
    assert "current transaction is aborted" in err
    assert proxy.queries[-4:] == ["BEGIN;", "COPY (SELECT 1) TO STDOUT;",
                                  "SELECT 1;", "ROLLBACK;"]


def test_refuses_what_redshift_lacks(cluster, proxy):
    for sql, msg in [
            ("EXPLAIN (FORMAT JSON) SELECT 1;", 'syntax error at or near "("'),
            ("SET IntervalStyle='iso_8601';",
             'unrecognized configuration parameter "intervalstyle"'),
            ("BEGIN; DECLARE c NO SCROLL CURSOR FOR SELECT 1;", "DECLARE"),
            ("BEGIN; DECLARE c CURSOR FOR SELECT 1; FETCH 5 FROM c;",
             "FETCH"),
            ("BEGIN; DECLARE c CURSOR FOR SELECT 1; FETCH FORWARD 1001 FROM c;",
             "at most 1000"),
            ("BEGIN; DECLARE c CURSOR FOR SELECT 1; FETCH ALL FROM c;",
             "at most 1000")]:
        rc, out, err = psql(cluster, proxy, sql)
        assert rc != 0 and msg in err, (sql, err)


def test_passes_the_rest_through(cluster, proxy):
    rc, out, err = psql(cluster, proxy, """
        BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
        DECLARE c CURSOR FOR SELECT g, E'a\\tb' FROM generate_series(1, 3) g;
        FETCH FORWARD 2 FROM c;
        FETCH FORWARD 1000 FROM c;
        CLOSE c;
        SHOW transaction_isolation;
        ROLLBACK;
        EXPLAIN SELECT 1;
    """)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[:4] == ["1|a\tb", "2|a\tb", "3|a\tb", "repeatable read"]
    assert lines[4].startswith("Result")


def test_only_copy_refused_when_not_redshift(cluster):
    sock = os.path.join(cluster.sockdir, f".s.PGSQL.{cluster.port}")
    with PgProxy(sock, redshift=False) as px:
        rc, out, err = psql(cluster, px, "\\echo :SERVER_VERSION_NAME\n"
                            "SELECT version();\nEXPLAIN (COSTS OFF) SELECT 1;")
        assert rc == 0, err
        assert "Redshift" not in out and not out.startswith("8.0.2")
        rc, out, err = psql(cluster, px, "COPY (SELECT 1) TO STDOUT;")
        assert rc != 0 and "COPY TO STDOUT is not supported" in err
