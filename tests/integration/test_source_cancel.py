"""Connecting and cancelling: connect_timeout, and SIGINT/SIGTERM while
retl connects or while the model's query runs (issue 15).

A silent server (a socket on 127.0.0.1 that accepts and never sends a
byte) stands for a host that accepts TCP and never answers.  A model with
pg_sleep in its FROM clause stands for a slow query: the server runs it
while the COPY streams, so the run is waiting on the server when the
signal comes.

No wall-clock assertions: the connect timeout is shown by its exit and
message (a 1 s timeout keeps the test short; a run that ignored it would
hang until the test's guard), a stop by the run's record and by the
server's own word that the statement was cancelled at the client's
request.  The Done-when's "within 11 s on the default config" and "within
1 s" are README commands.
"""

import os
import signal
import socket
import sqlite3
import subprocess
import threading

import pytest

from waiting import wait_for

# a run that is not interrupted or timed out by then is hung
GUARD = 60


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers; counts
    them (a run has reached the server once accepted > 0)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    @property
    def accepted(self):
        return len(self.conns)

    def close(self):
        # shutdown wakes the accept() of the thread; close alone may not
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(timeout=10)


@pytest.fixture
def silent():
    s = SilentServer()
    try:
        yield s
    finally:
        s.close()


SECRET = "Sil3nt-Pa55word"


def silent_project(project, silent, dsn_extra="", **source):
    dsn = f"postgresql://retl:{SECRET}@127.0.0.1:{silent.port}/db{dsn_extra}"
    p = project(sources={"warehouse": dict(type="postgres", dsn=dsn, **source)})
    p.add_mapping("m", {"source": "warehouse", "query": "SELECT 1 AS id, 2 AS x",
                        "key": "id", "destination": "out", "fields": {"x": "x"}})
    return p


def last_run(p, sync):
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return con.execute("SELECT status, exit_code, message FROM runs "
                           "WHERE sync=? ORDER BY id DESC LIMIT 1", (sync,)).fetchone()
    finally:
        con.close()


def start(p, *args, stderr_path):
    """retl in the background, stderr to a file the test can poll"""
    err = open(stderr_path, "w+", encoding="utf-8")
    proc = subprocess.Popen([p.retl_bin, "--config", p.dir] + list(args),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=err, text=True)
    return proc, err


def finish(proc, err):
    """waits for the exit (a hang fails the test, and is killed)"""
    try:
        out, _ = proc.communicate(timeout=GUARD)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        err.seek(0)
        raise AssertionError(f"retl still running after {GUARD} s:\n{err.read()}")
    err.seek(0)
    text = err.read()
    err.close()
    return proc.returncode, out, text


# ---- connect_timeout ------------------------------------------------------

def test_silent_host_ends_the_run_with_exit_3(project, silent):
    p = silent_project(project, silent, connect_timeout="1s")
    for verb in (["run", "m"], ["check"], ["plan", "m"]):
        proc, err = start(p, *verb, stderr_path=p.path("err.txt"))
        rc, out, text = finish(proc, err)
        assert rc == 3, (verb, out, text)
        who = "check m: " if verb == ["check"] else ""   # check names the sync
        assert (f"retl: {who}source warehouse: cannot connect: 127.0.0.1:{silent.port}: "
                f"no answer within 1 s (connect_timeout)") in text, text
        assert SECRET not in out + text
    assert silent.accepted >= 3
    status, code, message = last_run(p, "m")
    assert (status, code) == ("failed", 3)
    assert "no answer within 1 s (connect_timeout)" in message
    assert SECRET not in message


def test_connect_timeout_in_the_dsn_wins(project, silent):
    # the DSN's own connect_timeout (whole seconds, libpq's reading) is
    # kept, and enforced, though the option says an hour
    p = silent_project(project, silent, dsn_extra="?connect_timeout=2",
                       connect_timeout="1h")
    proc, err = start(p, "run", "m", stderr_path=p.path("err.txt"))
    rc, out, text = finish(proc, err)
    assert rc == 3, (out, text)
    assert (f"cannot connect: 127.0.0.1:{silent.port}: no answer within 2 s "
            f"(connect_timeout in the dsn)") in text, text


def test_a_silent_host_in_a_list_is_skipped(project, silent, db):
    # host=a,b: the silent first host gets its timeout, then the next is
    # tried, as libpq's own connect_timeout does (PQconnectPoll alone would
    # wait on the first for ever)
    db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    parts = dict(kv.split("=", 1) for kv in db.dsn.split())
    dsn = (f"host=127.0.0.1,{parts['host']} port={silent.port},{parts['port']} "
           f"user={parts['user']} dbname={parts['dbname']}")
    p = project(sources={"warehouse": {"type": "postgres", "dsn": dsn,
                                       "connect_timeout": "1s"}})
    p.add_mapping("m", {"source": "warehouse", "query": "SELECT id, 'x' AS x FROM t",
                        "key": "id", "destination": "out", "fields": {"x": "x"}})
    proc, err = start(p, "run", "m", stderr_path=p.path("err.txt"))
    rc, out, text = finish(proc, err)
    assert rc == 0, (out, text)
    assert silent.accepted >= 1
    assert len(p.read_jsonl()) == 2
    # both silent: each host named with its timeout
    dsn = (f"host=127.0.0.1,127.0.0.1 port={silent.port},{silent.port} "
           f"user=u dbname=d")
    p = project(sources={"warehouse": {"type": "postgres", "dsn": dsn,
                                       "connect_timeout": "1s"}})
    p.add_mapping("m", {"source": "warehouse", "query": "SELECT 1 AS id, 2 AS x",
                        "key": "id", "destination": "out", "fields": {"x": "x"}})
    proc, err = start(p, "run", "m", stderr_path=p.path("err.txt"))
    rc, out, text = finish(proc, err)
    one = f"127.0.0.1:{silent.port}: no answer within 1 s (connect_timeout)"
    assert rc == 3, (out, text)
    assert f"retl: source warehouse: cannot connect: {one}; {one}" in text, text


# ---- a stop while connecting ---------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_while_connecting_ends_the_run_interrupted(project, silent, sig):
    # the default config: no connect_timeout option, so 10 s (retl says so
    # at -v); the signal comes once the server holds retl's connection
    p = silent_project(project, silent)
    errf = p.path("err.txt")
    proc, err = start(p, "-v", "run", "m", stderr_path=errf)

    def connecting():
        if proc.poll() is not None:
            raise AssertionError(f"retl exited early: {proc.returncode}")
        with open(errf, encoding="utf-8") as f:
            return silent.accepted > 0 and "connecting (connect_timeout" in f.read()
    wait_for(connecting, 60, "retl to connect to the silent server")
    proc.send_signal(sig)
    rc, out, text = finish(proc, err)
    assert "source warehouse: connecting (connect_timeout 10 s)" in text, text
    # interrupted (exit 1), not the timeout's exit 3
    assert rc == 1, (out, text)
    assert "source warehouse: interrupted while connecting" in text, text
    assert "no answer within" not in text
    status, code, message = last_run(p, "m")
    assert (status, code) == ("interrupted", 1)
    assert message.startswith("interrupted after 0 rows read")


# ---- a stop while the query runs ------------------------------------------

PROBE = "retl-cancel-probe"


def active_probes(db, sleeping=False):
    """backends running the probe's statement (sleeping: inside its
    pg_sleep, so the model's query itself runs, not the describe)"""
    return int(db.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
        f"AND query LIKE '%{PROBE}%' AND pid <> pg_backend_pid()"
        + (" AND wait_event = 'PgSleep'" if sleeping else "")))


def server_log_cancels(pg):
    """the server's own record: the statement with the probe ended with
    "canceling statement due to user request" (a client's cancel request;
    a statement_timeout or a lost client say something else)"""
    with open(pg.logfile, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    n = 0
    for i, line in enumerate(lines):
        if "canceling statement due to user request" in line:
            follow = "\n".join(lines[i + 1:i + 4])
            if "STATEMENT:" in follow and PROBE in follow:
                n += 1
    return n


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_during_the_query_cancels_it(project, pg, db, sig):
    db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    p = project(dsn=db.dsn)
    # an hour's sleep: only a cancel ends it within the test's guard
    p.add_mapping("slow", {
        "source": "warehouse",
        "query": f"SELECT t.id, 'x' AS x /* {PROBE} */ FROM t, pg_sleep(3600)",
        "key": "id", "destination": "out", "fields": {"x": "x"}})
    cancels_before = server_log_cancels(pg)
    proc, err = start(p, "run", "slow", stderr_path=p.path("err.txt"))

    def running():
        if proc.poll() is not None:
            raise AssertionError(f"retl exited early: {proc.returncode}")
        return active_probes(db, sleeping=True) == 1
    wait_for(running, 60, "the model's query to run on the server")
    proc.send_signal(sig)
    rc, out, text = finish(proc, err)
    assert rc == 1, (out, text)
    assert "run slow: stopped" not in out
    status, code, message = last_run(p, "slow")
    assert (status, code) == ("interrupted", 1), (out, text)
    assert message.startswith("interrupted after 0 rows read")
    assert not p.read_jsonl()
    # cancelled by retl's request, not left running behind a closed socket
    wait_for(lambda: server_log_cancels(pg) > cancels_before, 60,
             "the server to log the cancel of the probe's statement",
             detail=lambda: open(pg.logfile, encoding="utf-8").read()[-3000:])
    wait_for(lambda: active_probes(db) == 0, 60,
             "the probe's statement to leave pg_stat_activity")
    # the next run goes on as usual
    p.add_mapping("slow", {
        "source": "warehouse", "query": "SELECT id, 'x' AS x FROM t",
        "key": "id", "destination": "out", "fields": {"x": "x"}})
    rc, out, text = p.run("run", "slow")
    assert rc == 0, (out, text)
    assert len(p.read_jsonl()) == 2
