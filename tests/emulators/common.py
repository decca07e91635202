"""Shared machinery for retl's API emulators (HubSpot, Salesforce, Mailchimp, Airtable).

Python 3 standard library only.  An emulator subclasses `Emulator` (state, knobs,
counters, control endpoint) and `ApiHandler` (HTTP plumbing), and implements
`Emulator.handle_api(req) -> Response`.

What this module gives every emulator:

* `EmulatorServer`: a ThreadingHTTPServer (HTTP/1.1 keep-alive, daemon threads) that
  counts open connections (current / max / total).  Answers leave in one write
  with TCP_NODELAY set (no Nagle / delayed-ACK stall; tests/emulators/test_server.py).
* `ApiHandler`: reads the whole body (Content-Length, optional gzip request body),
  dispatches `/_emulator/...` control requests (no auth) and API requests, applies
  the generic fault knobs in a fixed order, gzips responses when the client sends
  `Accept-Encoding: gzip`, and always sends a correct Content-Length.
* Fault knobs (all settable at start as kwargs / CLI flags and at runtime with
  `POST /_emulator/config`), decided with a seeded `random.Random`:
    latency          seconds added to every API response (sleep, no lock held)
    slow_rate        probability of an extra `slow_seconds` sleep
    error_rate_5xx   probability of a 5xx BEFORE the change is applied
    error_5xx_after_rate  probability of a 5xx AFTER the change was applied
    error_5xx_codes  the statuses to pick from (default [500, 502, 503])
    drop_before      probability of closing the connection without any response,
                     before the change is applied
    drop_after       same, after the change was applied (ambiguous writes)
  API-specific knobs (rate limits, tokens, per-record rejections) live in the
  emulator subclass; `Emulator.DEFAULT_KNOBS` lists them all.
* Control endpoints (prefix /_emulator, no auth), common part:
    GET  /_emulator/config      current knobs
    POST /_emulator/config      {"knob": value, ...} -> merged, returns knobs
    GET  /_emulator/counters    see `Counters.snapshot`
    POST /_emulator/reset       clear data, counters, rate windows (knobs kept;
                                body {"knobs": true} also restores default knobs)
  Subclasses add their own via `handle_control`.
* `start(EmulatorClass, port=0, **knobs) -> (server, base_url)` for in-process
  tests; `main(EmulatorClass)` for the command line: prints
  `listening on http://127.0.0.1:PORT` (flushed) and serves until SIGTERM/SIGINT.
"""

import argparse
import gzip
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit, unquote

__all__ = [
    "Response", "Request", "DROP", "Emulator", "ApiHandler", "EmulatorServer",
    "start", "main", "json_dumps", "correlation_id", "iso_now", "max_in_window",
]


# --------------------------------------------------------------------------- helpers

_record_lock = threading.Lock()


def record_request(name, method, path, headers, body):
    """With RETL_REQUEST_LOG set, every API request retl itself sends (by its
    User-Agent) is appended to that file as a JSON line: the conformance
    test (tests/conformance) replays them through the vendors' published
    specs.  Requests of the emulators' own tests are not retl's: left out."""
    log = os.environ.get("RETL_REQUEST_LOG")
    if not log or not (headers.get("User-Agent") or "").startswith("retl/"):
        return
    line = json.dumps({"emulator": name, "method": method, "path": path,
                       "content_type": headers.get("Content-Type"),
                       "body": body.decode("utf-8", "replace")}) + "\n"
    with _record_lock:
        with open(log, "a", encoding="utf-8") as f:
            f.write(line)

def json_dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def correlation_id():
    return str(uuid.uuid4())


def iso_ms(t):
    """epoch seconds -> '2024-01-02T03:04:05.678Z'"""
    ms = int(round(t * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def iso_now():
    return iso_ms(time.time())


def max_in_window(times, window):
    """Largest number of the given timestamps (seconds) falling in any window of
    `window` seconds (half-open [t, t+window)).  For tests that check a client's
    pacing from `counters["requests"][i]["t"]`."""
    ts = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(ts):
        while ts[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


class Response:
    """What an emulator's handler returns.  body: dict/list (sent as JSON), bytes,
    str, or None (no body, e.g. 204)."""

    def __init__(self, status, body=None, headers=None, content_type="application/json;charset=utf-8"):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.content_type = content_type

    def encode(self):
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json_dumps(self.body)


DROP = object()  # returned by a hook: close the connection without any response


class Request:
    def __init__(self, method, raw_path, headers, body):
        self.method = method
        self.raw_path = raw_path
        parts = urlsplit(raw_path)
        self.path = unquote(parts.path)
        self.query = {k: v for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = headers
        self.body = body
        self._json = None
        self._json_error = None
        self._parsed = False
        self.t_start = time.time()
        self.info = {}  # filled by handlers: endpoint label, inputs count, token ...

    def json(self):
        """Parsed JSON body or raises ValueError (message kept in .json_error)."""
        if not self._parsed:
            self._parsed = True
            try:
                self._json = json.loads(self.body.decode("utf-8")) if self.body else None
            except (ValueError, UnicodeDecodeError) as e:
                self._json_error = str(e)
        if self._json_error is not None:
            raise ValueError(self._json_error)
        return self._json

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[0] if v else default


# --------------------------------------------------------------------------- counters

class Counters:
    """Request accounting.  All methods are called with the emulator lock held."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.started = time.time()
        self.by_endpoint = defaultdict(lambda: defaultdict(int))
        self.by_status = defaultdict(int)
        self.total = 0
        self.rate_limited = 0          # responses with status 429 (any cause)
        self.forced_429 = 0            # 429s from fail_every_nth_429
        self.errors_5xx = 0
        self.dropped_before = 0
        self.dropped_after = 0
        self.slow = 0
        self.expired_401 = 0
        self.inflight = 0
        self.max_inflight = 0
        self.requests = []             # one dict per API request, in arrival order
        self.extra = defaultdict(int)  # emulator-specific counters

    def begin(self):
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)

    def end(self, req, status):
        self.inflight -= 1
        ep = req.info.get("endpoint") or "%s %s" % (req.method, req.path)
        skey = "dropped" if status is None else str(status)
        self.by_endpoint[ep][skey] += 1
        self.by_status[skey] += 1
        self.total += 1
        if status == 429:
            self.rate_limited += 1
        if status is not None and status >= 500:
            self.errors_5xx += 1
        rec = {"t": req.t_start, "t_end": time.time(), "method": req.method, "path": req.path,
               "endpoint": ep, "status": status}
        for k in ("inputs", "token", "fault", "properties"):
            if k in req.info:
                rec[k] = req.info[k]
        self.requests.append(rec)

    def snapshot(self, server):
        per_second = defaultdict(int)
        for r in self.requests:
            per_second[str(int(r["t"]))] += 1
        return {
            "started": self.started,
            "total": self.total,
            "by_status": dict(self.by_status),
            "by_endpoint": {k: dict(v) for k, v in self.by_endpoint.items()},
            "rate_limited": self.rate_limited,
            "forced_429": self.forced_429,
            "errors_5xx": self.errors_5xx,
            "dropped_before": self.dropped_before,
            "dropped_after": self.dropped_after,
            "slow": self.slow,
            "expired_401": self.expired_401,
            "inflight": self.inflight,
            "max_inflight": self.max_inflight,
            "connections": server.conn_current,
            "max_connections": server.conn_max,
            "connections_total": server.conn_total,
            "per_second": dict(per_second),
            "requests": list(self.requests),
            "extra": dict(self.extra),
        }


# --------------------------------------------------------------------------- emulator base

class Emulator:
    """State + knobs + fault decisions.  Subclass and implement handle_api."""

    NAME = "emulator"
    COMMON_KNOBS = {
        "seed": 0,
        "latency": 0.0,
        "slow_rate": 0.0,
        "slow_seconds": 2.0,
        "error_rate_5xx": 0.0,
        "error_5xx_after_rate": 0.0,
        "error_5xx_codes": [500, 502, 503],
        "drop_before": 0.0,
        "drop_after": 0.0,
    }
    DEFAULT_KNOBS = {}  # API-specific, merged over COMMON_KNOBS

    def __init__(self, **knobs):
        self.lock = threading.RLock()
        self.counters = Counters()
        self.knobs = self.default_knobs()
        unknown = set(knobs) - set(self.knobs)
        if unknown:
            raise TypeError("unknown knobs: %s" % ", ".join(sorted(unknown)))
        self.knobs.update(knobs)
        self.rng = random.Random(self.knobs["seed"])
        self.reset_data()
        self.on_config_change()

    @classmethod
    def default_knobs(cls):
        k = json.loads(json.dumps(cls.COMMON_KNOBS))
        k.update(json.loads(json.dumps(cls.DEFAULT_KNOBS)))
        return k

    # --- to override
    def reset_data(self):
        """Clear records, rate windows and other per-run state (lock held)."""

    def on_config_change(self):
        """Knobs changed (lock held)."""

    def handle_api(self, req):
        """-> Response or DROP.  Called WITHOUT the lock; take self.lock yourself."""
        raise NotImplementedError

    def before_fault_headers(self, req):
        """Headers to add to fault responses (e.g. rate-limit headers)."""
        return {}

    def error_body_5xx(self, status):
        return Response(status, {"status": "error", "message": "internal error",
                                 "correlationId": correlation_id(), "category": "INTERNAL_ERROR"})

    def handle_control(self, req):
        """Emulator-specific control endpoints -> Response or None."""
        return None

    # --- fault decisions (take the lock: rng is shared)
    def chance(self, knob):
        p = float(self.knobs.get(knob) or 0)
        if p <= 0:
            return False
        with self.lock:
            return self.rng.random() < p

    def pick(self, seq):
        with self.lock:
            return self.rng.choice(list(seq))

    def configure(self, changes):
        with self.lock:
            unknown = set(changes) - set(self.knobs)
            if unknown:
                raise KeyError("unknown knobs: %s" % ", ".join(sorted(unknown)))
            self.knobs.update(changes)
            if "seed" in changes:
                self.rng = random.Random(self.knobs["seed"])
            self.on_config_change()
            return dict(self.knobs)

    def reset(self, knobs=False):
        with self.lock:
            if knobs:
                self.knobs = self.default_knobs()
            self.rng = random.Random(self.knobs["seed"])
            self.counters.reset()
            self.reset_data()
            self.on_config_change()

    # --- control dispatch
    def control(self, req, server):
        p = req.path[len("/_emulator"):] or "/"
        try:
            if p == "/config":
                if req.method == "GET":
                    with self.lock:
                        return Response(200, dict(self.knobs))
                return Response(200, self.configure(req.json() or {}))
            if p == "/counters" and req.method == "GET":
                with self.lock:
                    return Response(200, self.counters.snapshot(server))
            if p == "/reset" and req.method == "POST":
                body = req.json() or {}
                self.reset(knobs=bool(body.get("knobs")))
                return Response(200, {"ok": True})
            r = self.handle_control(req)
            if r is not None:
                return r
        except (KeyError, ValueError, TypeError) as e:
            return Response(400, {"error": str(e)})
        return Response(404, {"error": "no control endpoint %s %s" % (req.method, req.path)})


# --------------------------------------------------------------------------- HTTP

class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, emulator):
        self.emulator = emulator
        self.conn_lock = threading.Lock()
        self.conn_current = 0
        self.conn_max = 0
        self.conn_total = 0
        super().__init__(addr, handler)

    def process_request_thread(self, request, client_address):
        with self.conn_lock:
            self.conn_current += 1
            self.conn_total += 1
            self.conn_max = max(self.conn_max, self.conn_current)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conn_lock:
                self.conn_current -= 1

    def reset_connection_counts(self):
        with self.conn_lock:
            self.conn_max = self.conn_current
            self.conn_total = self.conn_current

    @property
    def base_url(self):
        host, port = self.server_address[:2]
        return "http://%s:%d" % (host, port)


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "retl-emulator/1"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this
    # An answer leaves in one write: status line, headers and body are
    # buffered and flushed once by _send (bodies over the buffer go in more
    # writes, harmless with TCP_NODELAY below).  The default (0, unbuffered)
    # wrote the headers and the body apart.
    wbufsize = 1 << 16

    def setup(self):
        super().setup()
        # Without TCP_NODELAY, a second small write on a keep-alive connection
        # waits (Nagle) for the ACK of the first, which the client delays
        # (~40 ms on Linux): every request on a reused connection stalled
        # about 44 ms.  Answers here are complete when written: never hold one.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        if body and "gzip" in (self.headers.get("Content-Encoding") or "").lower():
            body = gzip.decompress(body)
        return body

    def _handle(self):
        emu = self.server.emulator
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        req = Request(self.command, self.path, self.headers, body)
        if req.path.startswith("/_emulator"):
            self._send(emu.control(req, self.server))
            return
        record_request(emu.NAME, self.command, self.path, self.headers, body)
        with emu.lock:
            emu.counters.begin()
        status = None
        resp = None
        try:
            resp = self._api(emu, req)
            if resp is not DROP:
                status = resp.status
        finally:
            # counted out before the answer leaves: a client that has its
            # answer may start its next request at once, and must not be
            # seen over its connection cap because this thread was slow
            with emu.lock:
                emu.counters.end(req, status)
        if resp is DROP:
            self._drop()
        else:
            self._send(resp)

    def _api(self, emu, req):
        k = emu.knobs
        if k.get("latency"):
            time.sleep(float(k["latency"]))
        if emu.chance("slow_rate"):
            with emu.lock:
                emu.counters.slow += 1
            req.info["fault"] = "slow"
            time.sleep(float(k.get("slow_seconds") or 0))
        return emu.handle_api(req)

    def _drop(self):
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, resp):
        data = resp.encode()
        headers = dict(resp.headers)
        if data and "gzip" in (self.headers.get("Accept-Encoding") or "").lower():
            data = gzip.compress(data, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        try:
            self.send_response(resp.status)
            if data or resp.body is not None:
                self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, str(value))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


def fault_wrapper(emu, req, apply):
    """Run `apply()` (-> Response) surrounded by the generic 5xx / drop faults.
    Emulators call this once auth and rate limiting have passed."""
    if emu.chance("drop_before"):
        with emu.lock:
            emu.counters.dropped_before += 1
        req.info["fault"] = "drop_before"
        return DROP
    if emu.chance("error_rate_5xx"):
        req.info["fault"] = "5xx_before"
        return emu.error_body_5xx(int(emu.pick(emu.knobs["error_5xx_codes"])))
    resp = apply()
    if emu.chance("drop_after"):
        with emu.lock:
            emu.counters.dropped_after += 1
        req.info["fault"] = "drop_after"
        return DROP
    if emu.chance("error_5xx_after_rate"):
        req.info["fault"] = "5xx_after"
        return emu.error_body_5xx(int(emu.pick(emu.knobs["error_5xx_codes"])))
    return resp


# --------------------------------------------------------------------------- start / main

def start(emulator_cls, port=0, host="127.0.0.1", handler_cls=ApiHandler, **knobs):
    """Start in a background thread.  -> (server, base_url); stop with server.shutdown()
    (and server.server_close())."""
    emu = emulator_cls(**knobs)
    server = EmulatorServer((host, port), handler_cls, emu)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="%s-emulator" % emu.NAME, daemon=True)
    t.start()
    server.thread = t
    return server, server.base_url


def _parse_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_arg_parser(emulator_cls, extra=None):
    ap = argparse.ArgumentParser(description="%s API emulator" % emulator_cls.NAME)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--set", action="append", default=[], metavar="KNOB=JSON",
                    help="set any knob, value parsed as JSON (string if not JSON)")
    for name in emulator_cls.default_knobs():
        ap.add_argument("--" + name.replace("_", "-"), dest="knob_" + name, default=None,
                        metavar="VALUE", help="knob %s (JSON or string)" % name)
    if extra:
        extra(ap)
    return ap


def knobs_from_args(emulator_cls, args):
    knobs = {}
    for name in emulator_cls.default_knobs():
        v = getattr(args, "knob_" + name, None)
        if v is not None:
            knobs[name] = _parse_value(v)
    for item in args.set:
        name, _, value = item.partition("=")
        knobs[name.strip().replace("-", "_")] = _parse_value(value)
    return knobs


def main(emulator_cls, argv=None, extra_args=None, knob_hook=None, handler_cls=ApiHandler):
    ap = build_arg_parser(emulator_cls, extra_args)
    args = ap.parse_args(argv)
    knobs = knobs_from_args(emulator_cls, args)
    if knob_hook:
        knob_hook(args, knobs)
    server, url = start(emulator_cls, port=args.port, host=args.host, handler_cls=handler_cls, **knobs)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stdout.write("listening on %s\n" % url)
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0
