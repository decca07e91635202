#!/usr/bin/env python3
"""A webhook receiver for retl's webhook destination (Python 3 standard library only).

Start:  python3 tests/emulators/webhook_receiver.py --port 0 [--secret S] [--knob VALUE ...]
In-process:  server, url = webhook_receiver.start(port=0, secret="s", **knobs)

Any POST (path free) carrying {"sync", "operations": [{"op", "key", "payload"}]} is a
delivery.  With knob `secret` set, X-Retl-Signature must be "sha256=" + hex
HMAC-SHA256(secret, raw body), else 401 {"error": "invalid signature"}.  Knob
`reject_status` (e.g. 400) answers every delivery with that status and a JSON body, or
with the text of knob `reject_body` (as text/plain) when that is set.  Knob
`accept_any` answers any other POST 200 "ok" (text/plain, as Slack's incoming
webhooks do), whatever its body: a receiver of retl's alerts (notify.c).
The generic faults of common.py apply (error_rate_5xx / drop_before: the delivery is
not processed; error_5xx_after_rate / drop_after: processed, but the answer is lost).

Every delivery is recorded:
  {"t", "delivery" (X-Retl-Delivery), "signature", "signature_ok", "processed" (bool),
   "answer" (status or "dropped"), "fault", "body" (parsed), "raw" (text), "headers"}
Control (no auth): GET /_emulator/deliveries -> {"deliveries": [...]};
  GET /_emulator/state -> {"sync": {key JSON text: payload}} built from processed
  deliveries in arrival order (upsert/insert/update set, remove deletes).
"""

import hashlib
import hmac
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Response, DROP  # noqa: E402


def signature(secret, raw):
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def verify(secret, raw, header):
    return bool(header) and hmac.compare_digest(signature(secret, raw), header)


class WebhookReceiver(common.Emulator):
    NAME = "webhook"
    DEFAULT_KNOBS = {
        "secret": None,
        "reject_status": 0,
        "reject_body": None,
        "accept_any": False,
    }

    def reset_data(self):
        self.deliveries = []
        self.state = {}

    def error_body_5xx(self, status):
        return Response(status, {"error": "receiver failed"})

    def handle_control(self, req):
        if req.path == "/_emulator/deliveries" and req.method == "GET":
            with self.lock:
                return Response(200, {"deliveries": list(self.deliveries)})
        if req.path == "/_emulator/state" and req.method == "GET":
            with self.lock:
                return Response(200, self.state)
        return None

    def handle_api(self, req):
        req.info["endpoint"] = "%s %s" % (req.method, req.path)
        raw = req.body
        sig = req.headers.get("X-Retl-Signature")
        entry = {"t": req.t_start, "delivery": req.headers.get("X-Retl-Delivery"),
                 "signature": sig, "signature_ok": None, "processed": False,
                 "answer": None, "fault": None, "raw": raw.decode("utf-8", "replace"),
                 "headers": dict(req.headers.items())}
        try:
            entry["body"] = json.loads(raw.decode("utf-8"))
        except ValueError:
            entry["body"] = None
        with self.lock:
            self.deliveries.append(entry)
        if req.method != "POST":
            entry["answer"] = 405
            return Response(405, {"error": "POST only"})
        secret = self.knobs.get("secret")
        if secret:
            entry["signature_ok"] = verify(secret, raw, sig)
            if not entry["signature_ok"]:
                entry["answer"] = 401
                return Response(401, {"error": "invalid signature"})
        rs = int(self.knobs.get("reject_status") or 0)
        if rs:
            entry["answer"] = rs
            if self.knobs.get("reject_body") is not None:
                return Response(rs, self.knobs["reject_body"],
                                content_type="text/plain; charset=utf-8")
            return Response(rs, {"error": "rejected by the receiver", "status": rs})
        body = entry["body"]
        if self.knobs.get("accept_any"):
            entry["answer"] = 200
            entry["processed"] = True
            return Response(200, "ok", content_type="text/plain; charset=utf-8")
        if not isinstance(body, dict) or not isinstance(body.get("operations"), list):
            entry["answer"] = 400
            return Response(400, {"error": "expected {sync, operations}"})

        def apply():
            with self.lock:
                st = self.state.setdefault(body.get("sync"), {})
                for op in body["operations"]:
                    k = json.dumps(op.get("key"), sort_keys=True)
                    if op.get("op") == "remove":
                        st.pop(k, None)
                    else:
                        st[k] = op.get("payload")
                entry["processed"] = True
            return Response(200, {"ok": True, "received": len(body["operations"])})

        r = common.fault_wrapper(self, req, apply)
        entry["fault"] = req.info.get("fault")
        entry["answer"] = "dropped" if r is DROP else r.status
        return r


def start(port=0, host="127.0.0.1", **knobs):
    """-> (server, base_url).  server.emulator is the WebhookReceiver."""
    return common.start(WebhookReceiver, port=port, host=host, **knobs)


if __name__ == "__main__":
    sys.exit(common.main(WebhookReceiver))
