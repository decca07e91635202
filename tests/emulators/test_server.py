"""The emulators' shared HTTP server (common.py) answers a reused connection
without the Nagle / delayed-ACK stall.

The stall was ~44 ms on every request of a keep-alive connection: the answer
went out in two writes (headers, then body), and the second waited for the
client's delayed ACK of the first.  Measuring that would be a wall-time
assertion (it breaks on a loaded machine), so the two causes are checked
directly instead, for every emulator's handler class:
  - the accepted socket has TCP_NODELAY set;
  - one small answer leaves the server in a single write to the socket.
"""

import http.client
import io
import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import airtable  # noqa: E402
import hubspot  # noqa: E402
import mailchimp  # noqa: E402
import salesforce  # noqa: E402
import webhook_receiver  # noqa: E402


class _Counting(io.RawIOBase):
    """The socket's raw writer, keeping the writes that reach it."""

    def __init__(self, raw, log):
        super().__init__()
        self._raw, self._log = raw, log

    def writable(self):
        return True

    def write(self, b):
        n = self._raw.write(b)
        self._log.append(bytes(b[:n]) if n else b"")
        return n


def observed(handler_cls):
    """handler_cls, recording per connection its TCP_NODELAY and, per answer,
    the raw writes it took."""
    seen = {"nodelay": [], "writes": []}

    class Observed(handler_cls):
        def setup(self):
            super().setup()
            seen["nodelay"].append(self.connection.getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY))
            # the class's own buffer size over a counting raw writer; an
            # AttributeError here means wfile is unbuffered again
            self._writes = []
            self._own_wfile = self.wfile  # kept open: it owns the raw writer
            self.wfile = io.BufferedWriter(
                _Counting(self.wfile.raw, self._writes), self.wbufsize)

        def finish(self):
            try:
                super().finish()
            finally:
                self._own_wfile.close()

        def _send(self, resp):
            del self._writes[:]
            super()._send(resp)
            seen["writes"].append(list(self._writes))

    return Observed, seen


class Echo(common.Emulator):
    NAME = "echo"

    def handle_api(self, req):
        return common.Response(200, {"ok": True, "n": len(req.body)})


EMULATORS = {
    "common": (Echo, common.ApiHandler),
    "hubspot": (hubspot.HubSpotEmulator, common.ApiHandler),
    "salesforce": (salesforce.SalesforceEmulator, common.ApiHandler),
    "airtable": (airtable.AirtableEmulator, common.ApiHandler),
    "mailchimp": (mailchimp.MailchimpEmulator, mailchimp.MailchimpHandler),
    "webhook": (webhook_receiver.WebhookReceiver, common.ApiHandler),
}


@pytest.mark.parametrize("name", sorted(EMULATORS))
def test_keep_alive_answers_are_not_held_back(name):
    emu_cls, handler_cls = EMULATORS[name]
    cls, seen = observed(handler_cls)
    server, url = common.start(emu_cls, handler_cls=cls)
    bodies = []
    try:
        conn = http.client.HTTPConnection(*server.server_address[:2])
        for _ in range(3):  # one connection, reused
            conn.request("GET", "/_emulator/config")
            r = conn.getresponse()
            bodies.append(r.read())
            assert r.status == 200 and bodies[-1]
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
    assert seen["nodelay"] == [1], seen["nodelay"]
    assert len(seen["writes"]) == 3
    for writes, body in zip(seen["writes"], bodies):
        # the whole answer (status line, headers, body) in one write
        assert len(writes) == 1, [w[:40] for w in writes]
        assert writes[0].startswith(b"HTTP/1.1 200") and writes[0].endswith(body)
