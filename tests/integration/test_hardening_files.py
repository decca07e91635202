"""Files retl reads back are untrusted input; files holding secrets or
payloads stay private (issue 13).

- A crafted or damaged cache image (state/retl.db.<sync>.cache) is ignored,
  said once and removed; the cache is loaded from the state store and the
  plan is the same as with a good image.  Before issue 13 the wrapping-cap
  image killed `retl plan` with SIGSEGV (retl_cache_find) and the
  full-table image made it probe for ever; both were checked once by hand
  against the old binary with images of its format (RETLCI02, checksum over
  the table alone).  Issue 16's format 04 (entries only, no table) keeps
  the wrapping size (now the count's) and replaces the full table with a
  key written twice.  Here each `retl plan` runs under a timeout, so a hang
  fails the test rather than stalling the suite.
- A damaged state store stops the run with an error that names the file
  and says what to do; nothing is sent.
- `plan --out` is created 0600 even under umask 0 (before: 0666 & ~umask,
  so 0666 here); the file destination's output too.
- The process is not dumpable and has no core size: see
  test_process_is_not_dumpable for how that is seen from outside.

Real parts: the built binary, a PostgreSQL cluster, the file destination.
The image checksum (XXH3-64) is computed with the system's libxxhash, the
library retl links, through ctypes.
"""

import ctypes
import ctypes.util
import json
import os
import shutil
import sqlite3
import stat
import struct
import subprocess
import tempfile

import pytest

from waiting import wait_for
import planfile  # noqa: E402

PLAN_TIMEOUT = 60           # a hang fails here, far below the suite's limit
ENTRY = 48                  # sizeof(struct retl_cache_entry)
HEADER = struct.Struct("<8sQQQQQQQ")   # magic gen count entry_size reserved
                                       # checksum pad pad (cache.c)
MAGIC = b"RETLCI04"


def _xxh3():
    name = ctypes.util.find_library("xxhash")
    if not name:
        pytest.skip("libxxhash not found (retl links it: is it installed?)")
    lib = ctypes.CDLL(name)
    lib.XXH3_64bits_withSeed.restype = ctypes.c_uint64
    lib.XXH3_64bits_withSeed.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                         ctypes.c_uint64]
    return lambda data, seed=0: lib.XXH3_64bits_withSeed(data, len(data), seed)


def write_image(path, gen, count, entries):
    """An image as cache.c writes it (format 04: the entries one after the
    other): the checksum is the XXH3-64 of the entries seeded with the
    XXH3-64 of the header whose checksum is 0."""
    xxh3 = _xxh3()
    head0 = HEADER.pack(MAGIC, gen, count, ENTRY, 0, 0, 0, 0)
    checksum = xxh3(entries, xxh3(head0))
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, gen, count, ENTRY, 0, checksum, 0, 0))
        f.write(entries)


def entry(i):
    """An entry: key hash, no payload or match hash, no source hash,
    status OK (bits 56-59 of the last word) and cached (bit 61)."""
    lo = (0x9E3779B97F4A7C15 * (i + 1)) & (2**64 - 1)
    return struct.pack("<QQQQQQ", lo, i + 1, 0, 0, 0, (1 << 56) | (1 << 61))


def make_customers(db, n):
    db.psql(f"""
        DROP TABLE IF EXISTS customers;
        CREATE TABLE customers (id int PRIMARY KEY, email text);
        INSERT INTO customers SELECT i, 'user' || i || '@example.com'
        FROM generate_series(1, {n}) i;
        ANALYZE customers;
    """)


@pytest.fixture
def synced(project, db):
    """A project whose sync `s` ran once (20 rows), so the state store and
    a good cache image exist; then one row changed in the warehouse."""
    make_customers(db, 20)
    p = project(dsn=db.dsn)
    p.add_mapping("s", {"source": "warehouse", "key": "id",
                        "query": "SELECT id, email FROM customers",
                        "destination": "out", "mode": "upsert",
                        "fields": {"email": "email"}})
    rc, out, err = p.run("run", "s")
    assert rc == 0, err
    assert os.path.exists(image_path(p))
    db.psql("UPDATE customers SET email = 'new@example.com' WHERE id = 7")
    return p


def image_path(p):
    return p.path("state", "retl.db.s.cache")


def cache_gen(p):
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return con.execute("SELECT gen FROM cache_gen WHERE sync = 's'"
                           ).fetchone()[0] & (2**64 - 1)
    finally:
        con.close()


def plan(p):
    """`retl plan s --out plan.jsonl` under a timeout: (rc, stderr, keys)."""
    out = p.path("plan.jsonl")
    if os.path.exists(out):
        os.unlink(out)
    rc, _, err = p.run("plan", "s", "--out", out, timeout=PLAN_TIMEOUT)
    keys = [op["key"] for op in planfile.ops(out)] \
        if os.path.exists(out) else None
    return rc, err, keys


def craft_wrapping_count(p):
    # (2^60 + m) * 48 wraps to m * 48 at 2^64: a size check that trusts
    # the product sees the file's own size (format 03 had the same hole
    # with its capacity: SIGSEGV before it was checked)
    m = 64
    write_image(image_path(p), cache_gen(p), (1 << 60) + m,
                b"".join(entry(i) for i in range(m)))


def craft_key_twice(p):
    # a good checksum over an image whose key appears twice: loaded, it
    # would make one of the two rows unreachable (format 03's hazard was a
    # full table and an endless probe; format 04 has no table to fill)
    write_image(image_path(p), cache_gen(p), 3,
                entry(0) + entry(1) + entry(0))


def flip_count(p):
    # the row count is in the header, which the old checksum left out
    with open(image_path(p), "r+b") as f:
        f.seek(16)
        b = f.read(1)
        f.seek(16)
        f.write(bytes([b[0] ^ 1]))


def flip_table_byte(p):
    with open(image_path(p), "r+b") as f:
        f.seek(64 + 3 * ENTRY + 5)
        b = f.read(1)
        f.seek(64 + 3 * ENTRY + 5)
        f.write(bytes([b[0] ^ 0x40]))


def truncate(p):
    os.truncate(image_path(p), os.path.getsize(image_path(p)) - 100)


@pytest.mark.parametrize("damage", [craft_wrapping_count, craft_key_twice,
                                    flip_count, flip_table_byte, truncate],
                         ids=lambda f: f.__name__)
def test_bad_cache_image_is_ignored_and_rebuilt(synced, damage):
    p = synced
    rc, err, keys = plan(p)
    assert rc == 0, err
    assert keys == ["7"], "a good image plans the one changed row"
    assert "damaged" not in err

    damage(p)
    rc, err, keys = plan(p)
    assert rc == 0, f"exit {rc} (a negative exit is a signal): {err}"
    # the same plan, from the state store: no row taken for new
    assert keys == ["7"]
    assert err.count("damaged") == 1, err
    assert image_path(p) in err
    # removed, so the next run writes it afresh and nothing is said again
    assert not os.path.exists(image_path(p))
    rc, _, err = p.run("run", "s")
    assert rc == 0, err
    assert os.path.exists(image_path(p))
    rc, err, keys = plan(p)
    assert rc == 0 and keys == [] and "damaged" not in err, err


def test_fifo_in_place_of_the_image_does_not_hang(synced):
    p = synced
    os.unlink(image_path(p))
    os.mkfifo(image_path(p), 0o600)
    rc, err, keys = plan(p)
    assert rc == 0, err
    assert keys == ["7"]
    assert "not a regular file" in err


@pytest.mark.parametrize("how", ["garbage", "torn_pages"])
def test_damaged_state_store_is_a_clear_error(synced, how):
    p = synced
    store = p.path("state", "retl.db")
    before = open(p.path("out.jsonl"), "rb").read()
    # no write-ahead log left to replay over the damage
    for side in ("-wal", "-shm"):
        if os.path.exists(store + side):
            con = sqlite3.connect(store)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
    size = os.path.getsize(store)
    with open(store, "r+b") as f:
        if how == "garbage":
            f.write(os.urandom(size))
        else:
            # the header stays, every page after the first is noise
            f.seek(4096)
            f.write(os.urandom(size - 4096))
    rc, out, err = p.run("run", "s", timeout=PLAN_TIMEOUT)
    assert rc == 6, (rc, err)          # the state store's own exit code
    assert "state/retl.db" in err, err
    assert "damaged" in err and "retl reset --all" in err, err
    assert open(p.path("out.jsonl"), "rb").read() == before, \
        "nothing is sent from a damaged store"


def _run_umask0(p, *args):
    return subprocess.run([p.retl_bin, "--config", p.dir] + list(args),
                          capture_output=True, text=True,
                          timeout=PLAN_TIMEOUT, stdin=subprocess.DEVNULL,
                          preexec_fn=lambda: os.umask(0))


def test_payload_files_are_private_under_umask_0(project, db):
    """umask 0 leaves a file the mode it is created with: 0600 only if the
    code asks for 0600 (before: fopen's 0666 for plan --out)."""
    make_customers(db, 3)
    p = project(dsn=db.dsn, destinations={
        "out": {"type": "file", "path": "exports/out.jsonl"}})
    p.add_mapping("s", {"source": "warehouse", "key": "id",
                        "query": "SELECT id, email FROM customers",
                        "destination": "out", "mode": "upsert",
                        "fields": {"email": "email"}})
    res = _run_umask0(p, "plan", "s", "--out", p.path("plan.jsonl"))
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(os.stat(p.path("plan.jsonl")).st_mode) == 0o600
    assert len(planfile.ops(p.path("plan.jsonl"))) == 3

    # an existing file keeps the mode its owner gave it (README: plan)
    os.chmod(p.path("plan.jsonl"), 0o640)
    res = _run_umask0(p, "plan", "s", "--out", p.path("plan.jsonl"))
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(os.stat(p.path("plan.jsonl")).st_mode) == 0o640

    res = _run_umask0(p, "run", "s")
    assert res.returncode == 0, res.stderr
    for f in ("exports/out.jsonl", "state/retl.db", "state/retl.db.s.cache"):
        assert stat.S_IMODE(os.stat(p.path(f)).st_mode) == 0o600, f
    for d in ("exports", "state"):
        assert stat.S_IMODE(os.stat(p.path(d)).st_mode) == 0o700, d


NOBODY = 65534
CORE_LIMIT = 1 << 20


def test_process_is_not_dumpable(retl_bin):
    """Not dumpable and no core, seen from outside the process.

    /proc/<pid>/status does not show the dumpable flag, but the kernel
    shows it another way: the files of /proc/<pid>/ of a process that is
    not dumpable are owned by root, not by the process's user (proc(5)),
    which is also what keeps other users from its mem and environ and
    from ptrace.  Seen as root, a root process owns them either way; so
    retl runs as `nobody` here (exec resets the flag to dumpable for a
    plain user: the old binary's files are owned by nobody, and the test
    fails).  The core size is set to 1 MiB before exec; retl must bring
    it to 0 (the old binary kept 1 MiB).

    retl is caught while it reads a secret: the config's DSN is
    "@file:pg.secret", a FIFO; retl blocks in it until the test writes.
    """
    if os.getuid() != 0:
        pytest.skip("needs root to run retl as another user")
    d = tempfile.mkdtemp(prefix="retl-dump-")
    try:
        os.chmod(d, 0o755)
        binary = os.path.join(d, "retl")
        shutil.copy(retl_bin, binary)
        os.chmod(binary, 0o755)
        with open(os.path.join(d, "retl.json"), "w") as f:
            json.dump({"state": "/nonexistent/retl.db",
                       "sources": {"warehouse": {
                           "type": "postgres", "dsn": "@file:pg.secret"}},
                       "destinations": {"out": {"type": "file",
                                                "path": "out.jsonl"}}}, f)
        os.chmod(os.path.join(d, "retl.json"), 0o644)
        fifo = os.path.join(d, "pg.secret")
        os.mkfifo(fifo)
        os.chmod(fifo, 0o666)

        def as_nobody():
            import resource
            resource.setrlimit(resource.RLIMIT_CORE, (CORE_LIMIT, CORE_LIMIT))
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

        proc = subprocess.Popen([binary, "--config", d, "check"],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=as_nobody)
        w = None
        try:
            # a FIFO opens for writing (non-blocking) once a reader is in
            # its open(): retl is then reading the secret
            def reader_in_open():
                assert proc.poll() is None, proc.communicate()
                try:
                    return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    return None
            w = wait_for(reader_in_open, 60, "retl to open its secret file")
            st = os.stat(f"/proc/{proc.pid}/status")
            assert st.st_uid == 0 and st.st_gid == 0, \
                f"/proc/{proc.pid}/ owned by {st.st_uid}: dumpable"
            with open(f"/proc/{proc.pid}/limits") as f:
                core = [line for line in f if line.startswith("Max core")]
            assert core and core[0].split()[4:6] == ["0", "0"], core
            os.write(w, b"host=/nonexistent dbname=x\n")
        finally:
            if w is not None:
                os.close(w)
            try:
                proc.wait(timeout=PLAN_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
