"""The webhook destination against tests/emulators/webhook_receiver.py.

Issue 6, "Done when" 5: across a faulty run (5xx before and after the
receiver processed a batch, connections dropped before and after) the
receiver sees every operation once, the signature verifies, and a wrong
secret fails verification.

"Once", precisely (delivery is at-least-once by design; what the receiver
must dedupe is bounded):
  * every operation retl produced (an upsert per model row, a remove per row
    that left the model) is in a batch the receiver processed, and the
    receiver's state, built from processed batches in arrival order, equals
    the model;
  * each operation belongs to exactly one batch (one X-Retl-Delivery id):
    no operation is sent in two different batches;
  * a batch is processed more than once only when the receiver's answer to
    the earlier copy was lost (a 5xx or a dropped connection after it was
    processed), every copy carries the same body, and the last copy
    processed was answered 2xx.
"""

import json
import os
import sys
import urllib.request
from collections import defaultdict

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import webhook_receiver  # noqa: E402
from emulator_control import starter  # noqa: E402

SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def receiver():
    yield from starter(webhook_receiver)


def control(url, path):
    with urllib.request.urlopen(url + "/_emulator/" + path, timeout=30) as r:
        return json.loads(r.read() or b"null")


def make_people(db, n):
    db.psql(f"""
        CREATE TABLE people (id int PRIMARY KEY, email text, name text);
        INSERT INTO people SELECT i, 'person' || i || '@example.com', 'Person ' || i
        FROM generate_series(1, {n}) i;
    """)


def wh_project(project, db, url, secret="${WEBHOOK_SECRET}", batch_size=25, **extra):
    dest = {"type": "webhook", "url": url + "/hooks/retl", "batch_size": batch_size,
            "headers": {"X-Api-Key": "${WEBHOOK_KEY}"}}
    if secret:
        dest["signing_secret"] = secret
    p = project(dsn=db.dsn, destinations={"hook": dest})
    m = {"source": "warehouse", "query": "SELECT id, email, name FROM people",
         "key": "id", "destination": "hook", "mode": "mirror", "on_remove": "delete",
         "fields": {"email": "email", "name": "name"},
         "safety": {"max_removed_ratio": 0.5}}
    m.update(extra)
    p.add_mapping("people", m)
    return p


ENV = {"WEBHOOK_SECRET": SECRET, "WEBHOOK_KEY": "key-42"}


def model(db):
    out = {}
    for line in db.psql("SELECT id, email, name FROM people", "-At", "-F", "\t").splitlines():
        i, e, n = line.split("\t")
        out[json.dumps(i)] = {"email": e, "name": n}
    return out


def check_once(deliveries, expected_ops):
    """expected_ops: set of (op, key JSON text) this run must deliver."""
    by_id = defaultdict(list)
    for d in deliveries:
        assert d["delivery"], d
        by_id[d["delivery"]].append(d)
    seen = defaultdict(set)            # (op, key) -> delivery ids that processed it
    for did, copies in by_id.items():
        bodies = {c["raw"] for c in copies}
        assert len(bodies) == 1, "a retry changed the batch's body"
        processed = [c for c in copies if c["processed"]]
        for c in processed[:-1]:
            # processed again only because the answer to this copy was lost
            assert c["fault"] in ("drop_after", "5xx_after"), c
        if processed:
            assert processed[-1]["answer"] == 200, processed[-1]
            for op in processed[-1]["body"]["operations"]:
                seen[(op["op"], json.dumps(op["key"]))].add(did)
    for k, ids in seen.items():
        assert len(ids) == 1, "operation %r sent in two batches" % (k,)
    assert set(seen) == expected_ops


def test_faulty_run_delivers_every_operation_once_signed(project, db, receiver):
    url = receiver(secret=SECRET, seed=7, error_rate_5xx=0.15, error_5xx_after_rate=0.08,
                   drop_before=0.05, drop_after=0.08)
    make_people(db, 300)
    p = wh_project(project, db, url)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err, p.run("failures", "people")[1])
    ds = control(url, "deliveries")["deliveries"]
    assert all(d["signature_ok"] for d in ds)
    assert all(d["headers"].get("X-Api-Key") == "key-42" for d in ds)
    faults = {d["fault"] for d in ds}
    assert {"5xx_before", "5xx_after", "drop_after"} <= faults, faults
    check_once(ds, {("upsert", json.dumps(str(i))) for i in range(1, 301)})
    assert control(url, "state")["people"] == model(db)
    for d in ds:
        assert len(d["body"]["operations"]) <= 25
        assert d["body"]["sync"] == "people"
        op = d["body"]["operations"][0]
        assert set(op) == {"op", "key", "payload"}

    # a change and removals, through the same faults
    db.psql("UPDATE people SET name = 'Renamed' WHERE id IN (10, 20, 30);"
            "DELETE FROM people WHERE id IN (5, 6, 7)")
    n = len(ds)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0, (out, err)
    ds2 = control(url, "deliveries")["deliveries"][n:]
    check_once(ds2, {("upsert", '"10"'), ("upsert", '"20"'), ("upsert", '"30"'),
                     ("remove", '"5"'), ("remove", '"6"'), ("remove", '"7"')})
    assert control(url, "state")["people"] == model(db)
    removes = [op for d in ds2 if d["processed"] for op in d["body"]["operations"]
               if op["op"] == "remove"]
    assert removes and all(op["payload"] is None for op in removes)

    # nothing changed: nothing sent
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 0
    assert len(control(url, "deliveries")["deliveries"]) == n + len(ds2)


def test_signature_verifies_and_a_wrong_secret_fails(project, db, receiver):
    url = receiver(secret="not-the-secret")
    make_people(db, 10)
    p = wh_project(project, db, url)
    rc, out, err = p.run("run", "people", env=ENV)
    assert rc == 1, (out, err)
    ds = control(url, "deliveries")["deliveries"]
    assert len(ds) == 1                    # a 4xx is not retried
    d = ds[0]
    raw = d["raw"].encode()
    assert d["signature"].startswith("sha256=")
    assert webhook_receiver.verify(SECRET, raw, d["signature"])
    assert not webhook_receiver.verify("not-the-secret", raw, d["signature"])
    assert d["signature_ok"] is False
    rc, out, err = p.run("failures", "people", env=ENV)
    assert 'HTTP 401: {"error":"invalid signature"}' in out
    assert SECRET not in out + err

    # the receiver's 4xx body is the reason; nothing was acknowledged
    url2 = receiver(reject_status=422)
    p2 = wh_project(project, db, url2, secret=None)
    rc, out, err = p2.run("run", "people", env=ENV)
    assert rc == 1
    rc, out, err = p2.run("failures", "people", env=ENV)
    assert "HTTP 422: " in out and "rejected by the receiver" in out
    assert "X-Api-Key" not in out
