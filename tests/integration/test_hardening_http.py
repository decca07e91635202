"""Hostile destinations and a broken state store (issue 13).

What each test stands for, from the issue's "Why":
  * "No cap on response size: a 100 MB answer raised peak memory to
    314 MB": a server answering 100 MB (announced, and streamed without a
    length); retl's peak RSS (os.wait4's ru_maxrss) stays under the cap
    plus a fixed margin, and the run ends with exit 4 naming the cap.
  * "A hung or dripping destination costs 5 attempts x timeout per batch,
    with no circuit breaker": servers that accept and never answer, or
    drip one byte a second, with many batches queued: the run ends after
    about max_transport_failures attempts (counted by the server, never
    timed), exit 4, nothing unacknowledged marked, and the next run against
    a good receiver sends everything.
  * "TLS failure, unreachable host and hung destination end with 1":
    each ends with exit 4, whether the breaker stops the run or the run
    goes through with rows unanswered.
  * "a damaged state store or a full disk exit 2 like a usage error": a
    state file overwritten with garbage, one with damaged pages, and a
    write refused by the OS (see test_state_write_refused_exits_6) exit 6
    with a message naming the file.

Real parts: the built binary, a PostgreSQL cluster, real TCP over loopback
to servers written here (raw sockets: they misbehave on purpose) and to the
project's webhook receiver emulator.
"""

import json
import os
import resource
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import webhook_receiver  # noqa: E402
from waiting import wait_for  # noqa: E402
from emulator_control import starter  # noqa: E402

MiB = 1 << 20


# ---- a hostile server ---------------------------------------------------------

class Hostile:
    """A TCP server on loopback that misbehaves in one way (`mode`):

      hang      reads the request, never answers (holds the connection)
      drip      answers one byte a second
      huge      answers 200 with `size` bytes of a JSON string, with a
                Content-Length (`announce`) or without one (read to close)
      not_tls   answers plain HTTP at once, whatever comes (an https://
                client's handshake fails)

    It counts connections: every attempt here is a connection of its own
    (a timed-out or cut-off one is closed by retl, the others by us)."""

    def __init__(self, mode, size=100 * MiB, announce=False):
        self.mode, self.size, self.announce = mode, size, announce
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def seen(self):
        """Connections made, once retl has exited: every connect() it made
        has completed, so each is counted or still waits in the backlog.
        The accept thread accepts and counts under self.lock: with the lock
        held and the backlog empty, the count is exact (on a loaded machine
        the accept thread may lag behind retl's exit; this waits for it)."""
        def counted():
            with self.lock:
                pending, _, _ = select.select([self.sock], [], [], 0)
                return None if pending else (self.connections,)
        return wait_for(counted, 60, "the accept thread to take every "
                        "connection in the backlog")[0]

    def _accept(self):
        # non-blocking: accept() runs under the lock and must never wait
        # there (a connection reset in the backlog would leave it waiting)
        self.sock.setblocking(False)
        while not self.stop.is_set():
            try:
                # at most 0.5 s at a time, to see self.stop
                ready, _, _ = select.select([self.sock], [], [], 0.5)
                if not ready:
                    continue
                with self.lock:
                    c, _ = self.sock.accept()
                    c.setblocking(True)
                    self.connections += 1
                    self.conns.append(c)
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                return              # closed
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read_request(self, c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return False
            buf += d
        head, _, body = buf.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(body) < n:
            d = c.recv(65536)
            if not d:
                return False
            body += d
        return True

    def _serve(self, c):
        try:
            if self.mode == "not_tls":
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                          b"Connection: close\r\n\r\n")
                return
            if not self._read_request(c):
                return
            if self.mode == "hang":
                self.stop.wait()
            elif self.mode == "drip":
                for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}":
                    # scenario: a server that drips a byte a second (not
                    # a wait for retl; it ends early when the test stops)
                    if self.stop.wait(1.0):
                        return
                    c.sendall(bytes([b]))
            elif self.mode == "huge":
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                if self.announce:
                    head += b"Content-Length: %d\r\n" % self.size
                head += b"Connection: close\r\n\r\n"
                c.sendall(head + b'"')
                chunk = b"x" * MiB
                sent = 1
                while sent < self.size - 1 and not self.stop.is_set():
                    n = min(len(chunk), self.size - 1 - sent)
                    c.sendall(chunk[:n])
                    sent += n
                c.sendall(b'"')
        except OSError:
            pass                    # retl gave up on us: the point
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def hostile():
    servers = []

    def make(mode, **kw):
        s = Hostile(mode, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def receiver():
    yield from starter(webhook_receiver)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                       # nothing listens there now
    return port


# ---- projects -----------------------------------------------------------------

def make_people(db, n):
    db.psql(f"""
        DROP TABLE IF EXISTS people;
        CREATE TABLE people (id int PRIMARY KEY, email text, name text);
        INSERT INTO people SELECT i, 'person' || i || '@example.com', 'Person ' || i
        FROM generate_series(1, {n}) i;
    """)


def wh_dest(url, **extra):
    d = {"type": "webhook", "url": url + "/hooks/retl", "batch_size": 1,
         "timeout": 1}
    d.update(extra)
    return d


def wh_project(project, db, dest):
    p = project(dsn=db.dsn, destinations={"hook": dest})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, name FROM people",
        "key": "id", "destination": "hook", "mode": "upsert",
        "fields": {"email": "email", "name": "name"}})
    return p


def set_dest(p, dest):
    with open(p.path("retl.json")) as f:
        cfg = json.load(f)
    cfg["destinations"]["hook"] = dest
    p.write_config(cfg)


# Linux counts a child's resident set before its exec() in its ru_maxrss:
# a child forked from this (by then large) pytest process reports pytest's
# size.  So retl is started by a small, fresh Python that reports its
# child's peak, and that peak starts from the small one.
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write("%d %d" % (os.waitstatus_to_exitcode(status), ru.ru_maxrss * 1024))
"""


def run_measured(p, *args, preexec=None):
    """Runs retl; -> (rc, out, err, peak RSS in bytes)."""
    argv = [p.retl_bin, "--config", p.dir] + list(args)
    res = os.path.join(p.dir, "measured.txt")
    proc = subprocess.run([sys.executable, "-c", _MEASURE, res] + argv,
                          capture_output=True, stdin=subprocess.DEVNULL,
                          preexec_fn=preexec, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with open(res) as f:
        rc, rss = (int(x) for x in f.read().split())
    return rc, proc.stdout.decode(), proc.stderr.decode(), rss


def synced_rows(p):
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return con.execute("SELECT count(*) FROM cache WHERE status = 1").fetchone()[0]
    finally:
        con.close()


# ---- 1: the answer's size is capped -------------------------------------------

@pytest.mark.parametrize("announce", [False, True], ids=["streamed", "content-length"])
def test_100_mb_answer_is_cut_at_the_cap(project, db, hostile, announce):
    """A 100 MB answer with the default cap (64 MiB): every attempt is cut
    off at the cap and the buffer freed, so retl's peak RSS stays under the
    cap plus a margin for the program itself (314 MB before); the breaker
    stops the run with exit 4 and the message names the cap."""
    srv = hostile("huge", announce=announce)
    make_people(db, 3)
    p = wh_project(project, db, wh_dest(srv.url, timeout=60))
    rc, out, err, rss = run_measured(p, "run", "people")
    assert rc == 4, (out, err)
    assert "larger than max_response_bytes (67108864 bytes)" in out + err, (out, err)
    assert rss < 64 * MiB + 48 * MiB, rss
    if announce:
        # refused from its Content-Length: nothing read at all
        assert rss < 48 * MiB, rss
    assert srv.seen() == 5              # the webhook's 1 connection x 5 attempts
    assert synced_rows(p) == 0


def test_cap_is_configurable_per_destination(project, db, hostile):
    """max_response_bytes: 1 MiB; the same 100 MB answer costs at most
    about 1 MiB of memory; a run that goes through (the breaker set
    high) ends with exit 4 and the rows' reason names the cap."""
    srv = hostile("huge")
    make_people(db, 3)
    p = wh_project(project, db, wh_dest(srv.url, timeout=60, max_response_bytes=MiB,
                                        max_transport_failures=100, batch_size=10))
    rc, out, err, rss = run_measured(p, "run", "people")
    assert rc == 4, (out, err)
    assert "failed, the destination did not answer for some rows" in out, out
    assert "3 rows got no answer from destination hook" in out, out
    assert "larger than max_response_bytes (1048576 bytes)" in out, out
    assert rss < 48 * MiB, rss
    rc, out, err = p.run("failures", "people")
    assert rc == 0 and out.count("larger than max_response_bytes (1048576 bytes)") == 3, out
    assert synced_rows(p) == 0


def test_bad_limits_are_config_errors(project, db, receiver):
    url = receiver()
    make_people(db, 1)
    for key, val in (("max_response_bytes", 0), ("max_transport_failures", -1),
                     ("max_transport_failures", "3")):
        p = wh_project(project, db, wh_dest(url, **{key: val}))
        rc, out, err = p.run("run", "people")
        assert rc == 2 and f"destinations.hook.{key}: expected" in err, (key, out, err)


# ---- 2: the circuit breaker ---------------------------------------------------

def test_hung_server_opens_the_breaker_after_n_attempts(project, db, hostile, receiver):
    """A server that accepts and never answers, 200 batches of one row
    queued: the run ends after max_transport_failures (default: 5 attempts
    x 1 connection for the webhook) with exit 4; nothing is marked; the
    next run, against a receiver that answers, sends every row."""
    srv = hostile("hang")
    make_people(db, 200)
    p = wh_project(project, db, wh_dest(srv.url))
    rc, out, err = p.run("run", "people")
    assert rc == 4, (out, err)
    assert "5 requests in a row got no answer" in err, err
    assert "max_transport_failures" in err and "sent by the next run" in err, err
    assert srv.seen() == 5
    assert synced_rows(p) == 0

    url = receiver()
    set_dest(p, wh_dest(url))
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    assert synced_rows(p) == 200


def test_hung_server_with_requests_in_parallel(project, db, hostile):
    """Four requests in flight (HubSpot), 30 requests queued, the breaker
    at 6: the server sees the 6 attempts the breaker counted, plus at
    most the 3 others in flight when it opened (abandoned, not waited
    for)."""
    srv = hostile("hang")
    make_people(db, 3000)
    p = project(dsn=db.dsn, destinations={"hs": {
        "type": "hubspot", "token": "pat-x", "base_url": srv.url, "timeout": 1,
        "max_inflight": 4, "max_transport_failures": 6}})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, name FROM people",
        "key": "id", "destination": "hs", "object": "contacts", "mode": "upsert",
        "match": {"email": "email"}, "fields": {"email": "email", "firstname": "name"}})
    rc, out, err = p.run("run", "people")
    assert rc == 4, (out, err)
    assert "6 requests in a row got no answer" in err, err
    assert 6 <= srv.seen() <= 9, srv.connections
    assert synced_rows(p) == 0


def test_dripping_server_cannot_stretch_the_timeout(project, db, hostile):
    """One byte a second: the whole-request timeout (2 s) still ends each
    attempt (no low-speed limit is needed, http.h says why); the breaker
    (2) stops the run."""
    srv = hostile("drip")
    make_people(db, 50)
    p = wh_project(project, db, wh_dest(srv.url, timeout=2, max_transport_failures=2))
    rc, out, err = p.run("run", "people")
    assert rc == 4, (out, err)
    assert "2 requests in a row got no answer" in err and "timed out" in err, err
    assert srv.seen() == 2
    assert synced_rows(p) == 0


# ---- 3: exit codes ------------------------------------------------------------

def test_unreachable_host_exits_4(project, db):
    make_people(db, 20)
    p = wh_project(project, db, wh_dest(f"http://127.0.0.1:{closed_port()}"))
    rc, out, err = p.run("run", "people")
    assert rc == 4, (out, err)
    assert "got no answer" in err and "onnect" in err, err
    assert synced_rows(p) == 0


def test_webhook_path_token_never_in_messages_or_logs(project, db, hostile):
    """A webhook URL's path often is its secret (…/hooks/catch/123/TOKEN):
    neither the error nor the debug log lines of retries (-v) show it, for
    no answer and for 5xx alike; the origin is shown."""
    make_people(db, 2)
    port = closed_port()
    p = wh_project(project, db, {"type": "webhook", "batch_size": 1, "timeout": 1,
                                 "url": f"http://127.0.0.1:{port}/hooks/catch/42/S3CRETPATH?sig=QSECRET"})
    rc, out, err = p.run("-v", "run", "people")
    assert rc == 4, (out, err)
    assert "retrying" in err, err          # the debug lines are there
    assert f"http://127.0.0.1:{port}" in out + err
    assert "S3CRETPATH" not in out + err and "QSECRET" not in out + err, out + err


def test_tls_failure_exits_4(project, db, hostile):
    """https:// to a server that speaks plain HTTP: the handshake fails.
    The breaker set high: the run goes through, its rows unanswered, and
    still exits 4 (not 1: the destination refused nothing)."""
    srv = hostile("not_tls")
    make_people(db, 3)
    p = wh_project(project, db, wh_dest(f"https://127.0.0.1:{srv.port}",
                                        max_transport_failures=100, batch_size=10))
    rc, out, err = p.run("run", "people")
    assert rc == 4, (out, err)
    assert "failed, the destination did not answer for some rows" in out, out
    assert "SSL" in out or "TLS" in out, out
    assert srv.seen() == 5               # one request, every attempt tried
    assert synced_rows(p) == 0


def file_project(project, db):
    p = project(dsn=db.dsn)
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, name FROM people",
        "key": "id", "destination": "out", "mode": "upsert",
        "fields": {"email": "email", "name": "name"}})
    return p


def drop_sidecars(state):
    for side in ("-wal", "-shm"):
        if os.path.exists(state + side):
            os.remove(state + side)


def test_state_overwritten_with_garbage_exits_6(project, db):
    make_people(db, 5)
    p = file_project(project, db)
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    state = p.path("state", "retl.db")
    drop_sidecars(state)
    with open(state, "wb") as f:
        f.write(os.urandom(64 * 1024))
    for verb in (("run", "people"), ("status",), ("plan", "people")):
        rc, out, err = p.run(*verb)
        assert rc == 6, (verb, out, err)
        assert f"state store {state} is damaged (file is not a database)" in err, (verb, err)
        assert "Restore it from a backup" in err
    assert len(p.read_jsonl()) == 5       # nothing sent again


def test_state_with_damaged_pages_exits_6(project, db):
    """The header intact, the pages after it garbage: SQLite reports the
    file malformed when it reads them."""
    make_people(db, 2000)
    p = file_project(project, db)
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    state = p.path("state", "retl.db")
    con = sqlite3.connect(state)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    drop_sidecars(state)
    size = os.path.getsize(state)
    assert size > 8 * 4096
    with open(state, "r+b") as f:
        f.seek(4096)
        f.write(os.urandom(size - 4096))
    db.psql("UPDATE people SET name = 'Changed' WHERE id < 10")
    rc, out, err = p.run("run", "people")
    assert rc == 6, (out, err)
    assert f"state store {state} is damaged" in err, err


def test_state_write_refused_exits_6(project, db, receiver):
    """A write the OS refuses.  A full disk cannot be made without root
    (no tmpfs here), so the process's file-size limit (RLIMIT_FSIZE,
    SIGXFSZ ignored) stands in: the write-ahead log's writes fail with
    EFBIG past it, as a full disk's fail with ENOSPC, and SQLite reports
    an I/O error (or "disk is full").  Either is the state store's code."""
    url = receiver()
    make_people(db, 5)
    p = wh_project(project, db, wh_dest(url, batch_size=100))
    rc, out, err = p.run("run", "people")
    assert rc == 0, (out, err)
    make_people(db, 20000)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    rc, out, err, _ = run_measured(p, "run", "people", preexec=limit)
    assert rc == 6, (out, err)
    state = p.path("state", "retl.db")
    assert f"state store {state}: " in err, err
    # SQLite's words, or the run's spool's (a file in the state directory
    # too, written before the push: README "A run has two phases")
    assert any(w in err for w in ("disk I/O error", "disk is full", "File too large",
                                  "No space left")), err
