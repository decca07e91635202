"""HubSpot through the HTTP engine under faults, and at the rate ceiling.

The emulator (tests/emulators/hubspot.py) runs in-process on loopback; retl
talks to it over real HTTP.  Issue 3, "Done when" 2: under 429s, 5xx,
dropped connections and slow answers a 5,000-row sync ends with the
emulator's records equal to the model, no duplicates, exit 0, and the run
record counts the retries and 429s.
"""

import json
import os
import sqlite3
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import hubspot  # noqa: E402
from common import max_in_window  # noqa: E402

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"


@pytest.fixture
def emulator():
    server, url = hubspot.start(port=0, tokens=[TOKEN])
    try:
        yield server, url
    finally:
        server.shutdown()
        server.server_close()


def control(url, path, body=None):
    import urllib.request
    req = urllib.request.Request(url + "/_emulator/" + path,
                                 data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def make_contacts(db, n):
    db.psql(f"""
        CREATE TABLE people (id int PRIMARY KEY, email text, first text, last text);
        INSERT INTO people SELECT i, 'person' || i || '@example.com',
               'First' || i, 'Last' || i FROM generate_series(1, {n}) i;
    """)


def hubspot_project(project, db, url, rate=100, inflight=4, mode="upsert"):
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
               "requests_per_10s": rate, "max_inflight": inflight},
    })
    p.add_mapping("people", {
        "source": "warehouse",
        "query": "SELECT id, email, first, last FROM people",
        "key": "id",
        "destination": "hs",
        "object": "contacts",
        "mode": mode,
        "match": {"email": "email"},
        "fields": {"email": "email", "firstname": "first", "lastname": "last"},
    })
    return p


def records(url):
    return control(url, "records/contacts")["results"]


def model(db):
    out = {}
    for line in db.psql("SELECT email, first, last FROM people", "-At", "-F", "\t").splitlines():
        e, f, l = line.split("\t")
        out[e] = {"firstname": f, "lastname": l}
    return out


def assert_equal_to_model(url, db):
    recs = records(url)
    emails = [r["properties"]["email"] for r in recs]
    assert len(emails) == len(set(emails)), "duplicate records"
    got = {r["properties"]["email"]: {"firstname": r["properties"].get("firstname"),
                                      "lastname": r["properties"].get("lastname")}
           for r in recs}
    assert got == model(db)


def test_faults_end_equal_to_model(project, db, emulator):
    server, url = emulator
    make_contacts(db, 5000)
    control(url, "config", {"rate": "1000/10s", "fail_every_nth_429": 5,
                            "error_rate_5xx": 0.05, "drop_before": 0.01,
                            "drop_after": 0.01, "slow_rate": 0.05,
                            "slow_seconds": 0.3, "seed": 7})
    p = hubspot_project(project, db, url, rate=1000)
    rc, out, err = p.run("run", "people", env={"HUBSPOT_TOKEN": TOKEN})
    assert rc == 0, (out, err)
    assert_equal_to_model(url, db)
    counters = control(url, "counters")
    assert counters["forced_429"] > 0
    con = sqlite3.connect(p.path("state", "retl.db"))
    retries, n429, calls = con.execute(
        "SELECT retries, http_429, api_calls FROM runs ORDER BY id DESC").fetchone()
    con.close()
    # every 429 retl counted was one the emulator sent (a 429 whose
    # connection then dropped reaches retl as a transport error)
    assert 0 < n429 <= sum(1 for r in counters["requests"] if r["status"] == 429)
    assert retries >= counters["errors_5xx"] + counters["dropped_before"] + counters["dropped_after"] - 5
    # libcurl re-sends on its own a request whose reused connection died
    # before any answer: the emulator may see a few more than retl sent
    seen = sum(1 for r in counters["requests"] if "/batch/" in r["path"])
    assert 50 < calls <= seen <= calls + counters["dropped_before"] + counters["dropped_after"]
    # nothing left to send
    control(url, "config", {"fail_every_nth_429": 0, "error_rate_5xx": 0,
                            "drop_before": 0, "drop_after": 0, "slow_rate": 0})
    before = len(control(url, "counters")["requests"])
    rc, out, err = p.run("run", "people", env={"HUBSPOT_TOKEN": TOKEN})
    assert rc == 0, (out, err)
    assert len(control(url, "counters")["requests"]) == before


def test_rate_limit_is_never_exceeded(project, db, emulator):
    """The server's limit equals the configured one: 40 requests against
    20 per 10 s take a second window, with no 429 and never more than 20
    arrivals in any 10 s."""
    server, url = emulator
    make_contacts(db, 4000)
    control(url, "config", {"rate": "20/10s", "latency": 0.05})
    p = hubspot_project(project, db, url, rate=20)
    rc, out, err = p.run("run", "people", env={"HUBSPOT_TOKEN": TOKEN})
    assert rc == 0, (out, err)
    counters = control(url, "counters")
    assert counters.get("rate_limited", 0) == 0
    times = sorted(r["t"] for r in counters["requests"] if "/batch/" in r["path"])
    assert len(times) == 40
    assert max_in_window(times, 10.0) <= 20
    assert times[-1] - times[0] >= 10.0
    assert_equal_to_model(url, db)


def test_daily_limit_stops_cleanly_and_resumes(project, db, emulator):
    """daily_limit is counted in the state store across runs: a run stops
    before the quota is spent (exit 4, rows left for later), the next run
    the same day sends nothing, and the next day's run finishes."""
    server, url = emulator
    make_contacts(db, 5000)
    p = project(dsn=db.dsn, destinations={
        "hs": {"type": "hubspot", "token": "${HUBSPOT_TOKEN}", "base_url": url,
               "requests_per_10s": 1000, "daily_limit": 30},
    })
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, first, last FROM people",
        "key": "id", "destination": "hs", "object": "contacts", "mode": "upsert",
        "match": {"email": "email"},
        "fields": {"email": "email", "firstname": "first", "lastname": "last"},
    })
    env = {"HUBSPOT_TOKEN": TOKEN}
    rc, out, err = p.run("run", "people", env=env)
    assert rc == 4, (out, err)
    assert "daily_limit reached" in out + err
    assert len(records(url)) == 3000
    con = sqlite3.connect(p.path("state", "retl.db"))
    (used,), = con.execute("SELECT calls FROM api_usage WHERE dest = 'hs'").fetchall()
    synced, = con.execute("SELECT count(*) FROM cache WHERE status = 1").fetchone()
    con.close()
    assert used == 30 and synced == 3000

    rc, out, err = p.run("run", "people", env=env)
    assert rc == 4
    assert "daily_limit of 30 requests reached (30 used on" in out + err
    assert len(control(url, "counters")["requests"]) == 30

    # a new day: yesterday's count no longer applies
    con = sqlite3.connect(p.path("state", "retl.db"))
    con.execute("UPDATE api_usage SET day = '2000-01-01'")
    con.commit()
    con.close()
    rc, out, err = p.run("run", "people", env=env)
    assert rc == 0, (out, err)
    assert_equal_to_model(url, db)


def test_hubspot_daily_limit_429_stops_the_run_at_once(project, db, emulator):
    """Issue 11, case 8: HubSpot's own daily limit (429 with policyName
    DAILY, the emulator's daily_limit spent) stops the run at once with
    exit 4 and a message that says so; it is not retried for minutes, the
    rows are not failed, and a later run (the limit reset) sends the rest."""
    server, url = emulator
    make_contacts(db, 1000)
    env = {"HUBSPOT_TOKEN": TOKEN}
    control(url, "config", {"rate": "1000/10s", "daily_limit": 3})
    p = hubspot_project(project, db, url, rate=1000, inflight=1)
    rc, out, err = p.run("run", "people", env=env)
    assert rc == 4, (out, err)
    assert "daily API limit is spent" in err
    assert "sent by a later run" in err
    reqs = [r for r in control(url, "counters")["requests"] if "/batch/" in r["path"]]
    daily = [r for r in reqs if r["status"] == 429]
    # each request that met the limit came back at once: far fewer 429s
    # than one request's retries (max_429 is 20) would make
    assert 1 <= len(daily) < 20, len(daily)
    assert len(records(url)) == 300
    rc, out, err = p.run("failures", "people", env=env)
    assert "daily" not in out + err

    # the next day: HubSpot's count is reset
    control(url, "config", {"daily_limit": 0})
    rc, out, err = p.run("run", "people", env=env)
    assert rc == 0, (out, err)
    assert_equal_to_model(url, db)
