"""pgproxy.py - a PostgreSQL wire-protocol proxy that presents a real
PostgreSQL server as Amazon Redshift, for testing retl's read-path choice
and its cursor path.  Python 3 standard library only.

    with PgProxy(upstream_socket_path) as px:
        dsn = f"host=127.0.0.1 port={px.port} user=postgres dbname=x"
        ...; px.queries   # every SQL text a client sent, in order

It listens on 127.0.0.1 (a free port) and relays each client to the real
server's unix socket, changing only what Redshift does differently, from
Redshift's documentation:

  - startup: SSLRequest and GSSENCRequest are answered 'N' (the client goes
    on in plain text on loopback); the ParameterStatus server_version is
    "8.0.2", what Redshift reports;
  - `SELECT version()` answers Redshift's string ("PostgreSQL 8.0.2 on
    i686-pc-linux-gnu, ..., Redshift 1.0.N", as quoted in
    duckdb/duckdb-postgres#373);
  - `COPY (query) ...` fails as on Redshift, whose COPY only loads from S3
    and the like and whose grammar has no `COPY (`: ERROR 42601 `syntax
    error at or near "(" in context "COPY (", at line 1` (the message of
    duckdb/duckdb-postgres#373);
  - `EXPLAIN (options) ...` is a syntax error: Redshift's EXPLAIN takes
    only VERBOSE (docs.aws.amazon.com/redshift/latest/dg/r_EXPLAIN.html);
  - `SET IntervalStyle` is an unrecognized configuration parameter: it is
    not among Redshift's (cm_chap_ConfigurationRef.html; PostgreSQL got it
    in 8.4, after Redshift's 8.0.2 base);
  - DECLARE must be Redshift's `DECLARE name CURSOR FOR query` (declare.html:
    no NO SCROLL, SCROLL, BINARY, WITH HOLD) and FETCH one of `FETCH NEXT |
    ALL | FORWARD [count | ALL] FROM cursor` with count at most 1000 and no
    ALL, as on a single-node cluster, the strictest (fetch.html).  Redshift's
    exact error texts for these are not documented; the proxy's are its own.

BEGIN ... ISOLATION LEVEL REPEATABLE READ is passed through: Redshift
accepts it and runs SERIALIZABLE (r_BEGIN.html: "READ UNCOMMITTED, READ
COMMITTED, and REPEATABLE READ have no operational impact and map to
SERIALIZABLE"); tests read `queries` to see which level retl asked for.

A refused statement is not answered by the proxy itself: it is replaced by
a DO block that raises the error on the real server, so the server's
transaction state (aborted, in a transaction block) stays what the client
is told.  Not emulated: Redshift's SQL dialect beyond the above (SAVEPOINT,
data types, its own functions), TLS, authentication (the upstream trusts
the socket).
"""

import re
import socket
import struct
import threading

REDSHIFT_SERVER_VERSION = "8.0.2"
REDSHIFT_VERSION = ("PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC "
                    "gcc (GCC) 3.4.2 20041017 (Red Hat 3.4.2-6.fc3), "
                    "Redshift 1.0.122914")

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

FETCH_MAX = 1000


def _raise(sqlstate, message):
    """SQL that makes the real server fail with this error."""
    msg = message.replace("'", "''")
    return (f"DO $retl_proxy$BEGIN RAISE EXCEPTION USING ERRCODE = "
            f"'{sqlstate}', MESSAGE = '{msg}'; END$retl_proxy$")


_COPY_PAREN = re.compile(r"\s*copy\s*\(", re.I)
_EXPLAIN_OPTS = re.compile(r"\s*explain\s*\(", re.I)
_VERSION = re.compile(r"\s*select\s+version\s*\(\s*\)\s*;?\s*$", re.I)
_DECLARE = re.compile(r"\s*declare\b", re.I)
_DECLARE_OK = re.compile(r"\s*declare\s+\w+\s+cursor\s+for\s", re.I)
_FETCH = re.compile(r"\s*fetch\b", re.I)
_FETCH_OK = re.compile(r"\s*fetch\s+(?:(next|all)|forward(?:\s+(\d+|all))?)"
                       r"\s+from\s+\w+\s*;?\s*$", re.I)


def rewrite(sql, redshift=True):
    """What the real server is asked instead of `sql` (sql itself when
    Redshift would take it as PostgreSQL does).  redshift=False: a server
    that only refuses COPY TO STDOUT, with "feature not supported"."""
    if _COPY_PAREN.match(sql):
        if not redshift:
            return _raise("0A000", "COPY TO STDOUT is not supported "
                          "(proxy's text)")
        return _raise("42601", 'syntax error at or near "(" in context '
                      '"COPY (", at line 1')
    if not redshift:
        return sql
    if _EXPLAIN_OPTS.match(sql):
        return _raise("42601", 'syntax error at or near "("')
    if re.search(r"\bset\s+intervalstyle\b", sql, re.I):
        return _raise("42704",
                      'unrecognized configuration parameter "intervalstyle"')
    if _VERSION.match(sql):
        return f"SELECT '{REDSHIFT_VERSION}'::text AS version"
    if _DECLARE.match(sql) and not _DECLARE_OK.match(sql):
        return _raise("42601", "DECLARE: only DECLARE name CURSOR FOR query "
                      "(proxy's text)")
    if _FETCH.match(sql):
        m = _FETCH_OK.match(sql)
        if not m:
            return _raise("42601", "FETCH: only FETCH NEXT | ALL | FORWARD "
                          "[count | ALL] FROM cursor (proxy's text)")
        count = m.group(2)
        if (m.group(1) or "").lower() == "all" or \
                (count or "").lower() == "all" or \
                (count and count.isdigit() and int(count) > FETCH_MAX):
            return _raise("0A000", f"FETCH: at most {FETCH_MAX} rows, and "
                          f"not ALL, on a single-node cluster (proxy's text)")
    return sql


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _message(sock):
    """(type byte, body) of one regular protocol message."""
    head = _recv_exact(sock, 5)
    kind, length = head[:1], struct.unpack("!I", head[1:])[0]
    return kind, _recv_exact(sock, length - 4)


def _frame(kind, body):
    return kind + struct.pack("!I", len(body) + 4) + body


class PgProxy:
    def __init__(self, upstream_socket, redshift=True):
        """redshift=False: present the server as itself, only refusing
        COPY (query) TO STDOUT (a warehouse retl does not know by name)"""
        self.upstream = upstream_socket
        self.redshift = redshift
        self.queries = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        try:
            # wake accept()
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._stop:
                client.close()
                return
            threading.Thread(target=self._serve, args=(client,),
                             daemon=True).start()

    def _connect_upstream(self):
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        up.connect(self.upstream)
        return up

    def _serve(self, client):
        up = None
        try:
            while True:
                length = struct.unpack("!I", _recv_exact(client, 4))[0]
                body = _recv_exact(client, length - 4)
                code = struct.unpack("!I", body[:4])[0]
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    client.sendall(b"N")
                    continue
                up = self._connect_upstream()
                up.sendall(struct.pack("!I", length) + body)
                if code == CANCEL_REQUEST:
                    return
                break
            threading.Thread(target=self._downstream, args=(up, client),
                             daemon=True).start()
            self._upstream(client, up)
        except (OSError, ConnectionError):
            pass
        finally:
            for s in (client, up):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _note(self, sql):
        with self._lock:
            self.queries.append(sql)

    def _upstream(self, client, up):
        """client -> server: SQL texts rewritten (simple Query, Parse)"""
        while True:
            kind, body = _message(client)
            if kind == b"Q":
                sql = body[:-1].decode("utf-8", "replace")
                self._note(sql)
                body = rewrite(sql, self.redshift).encode() + b"\0"
            elif kind == b"P":
                name, rest = body.split(b"\0", 1)
                sql, params = rest.split(b"\0", 1)
                text = sql.decode("utf-8", "replace")
                self._note(text)
                body = name + b"\0" + rewrite(text, self.redshift).encode() + b"\0" + params
            up.sendall(_frame(kind, body))
            if kind == b"X":
                return

    def _downstream(self, up, client):
        """server -> client: server_version says 8.0.2"""
        try:
            while True:
                kind, body = _message(up)
                if kind == b"S" and self.redshift:
                    name, value = body.split(b"\0")[:2]
                    if name == b"server_version":
                        body = (name + b"\0" + REDSHIFT_SERVER_VERSION.encode()
                                + b"\0")
                client.sendall(_frame(kind, body))
        except (OSError, ConnectionError):
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
