"""Alerts (retl.json's "notify"): a generic webhook and a Slack incoming
webhook, both local receivers (tests/emulators/webhook_receiver.py records
every POST), fed by real runs of a webhook sync against a real cluster.

Each condition (run_failed, safety_stop, rows_failing) alerts once when
it starts, not again on the next run that still shows it, and once more
when a later run clears it; the state lives in the state store, so
separate `retl run` processes and a daemon share it.  A delivery that
fails never changes the run's exit code and is tried again after the
next run.  No secret (the alert URLs, the header token, the DSN's
password) appears in any alert or log.
"""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from waiting import wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "emulators"))

import webhook_receiver  # noqa: E402
from emulator_control import control, starter  # noqa: E402

TOKEN = "alert-token-5f1e2d3c4b"
SLACK_PATH = "/services/T0001/B0002/slackSecretPath9"
PG_PASSWORD = "pg-Secret-77x"


@pytest.fixture
def receiver():
    """receiver() for the sync's data, receiver(accept_any=True) for
    alerts (any JSON body, answered 200 "ok" like Slack)"""
    yield from starter(webhook_receiver)


def make_people(db, n):
    db.psql(f"""
        DROP TABLE IF EXISTS people;
        CREATE TABLE people (id int PRIMARY KEY, email text, name text);
        INSERT INTO people SELECT i, 'p' || i || '@example.com', 'name ' || i
        FROM generate_series(1, {n}) i;
    """)


def notify_project(project, db, data_url, notify, schedule=None):
    dests = {"hook": {"type": "webhook", "url": data_url + "/data",
                      "batch_size": 50}}
    p = project(dsn=f"{db.dsn} password={PG_PASSWORD}", destinations=dests)
    cfg = json.load(open(p.path("retl.json")))
    cfg["notify"] = notify
    p.write_config(cfg)
    m = {"source": "warehouse", "query": "SELECT id, email, name FROM people",
         "key": "id", "destination": "hook", "mode": "mirror",
         "on_remove": "delete", "fields": {"email": "email", "name": "name"},
         "safety": {"max_removed": 3}}
    if schedule:
        m["schedule"] = schedule
    p.add_mapping("people", m)
    return p


def two_channels():
    """a webhook with a header token and a Slack channel, both from the
    environment; rows failing in more than 1 run alert"""
    return {"rows_failing_runs": 1, "channels": {
        "pager": {"type": "webhook", "url": "${ALERT_HOOK_URL}",
                  "headers": {"Authorization": "Bearer ${ALERT_TOKEN}"}},
        "team": {"type": "slack", "url": "${SLACK_WEBHOOK_URL}"}}}


def alerts(url):
    """every POST the receiver got, in order"""
    return control(url, "deliveries")["deliveries"]


def run_ids(p):
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return [r[0] for r in con.execute(
            "SELECT id FROM runs WHERE sync = 'people' ORDER BY id")]
    finally:
        con.close()


class Alerted:
    """Runs `retl run people` and checks which alerts each receiver got
    from that run (none, or exactly one of a (condition, state))."""

    def __init__(self, p, hook, slack, env):
        self.p, self.hook, self.slack, self.env = p, hook, slack, env
        self.n_hook = self.n_slack = 0
        self.logs = []

    def run(self, want_rc, expect=None):
        rc, out, err = self.p.run("run", "people", env=self.env)
        self.logs.append(out + err)
        assert rc == want_rc, out + err
        hook, slack = alerts(self.hook), alerts(self.slack)
        new_hook, new_slack = hook[self.n_hook:], slack[self.n_slack:]
        self.n_hook, self.n_slack = len(hook), len(slack)
        if expect is None:
            assert new_hook == [] and new_slack == [], (new_hook, new_slack)
            return None
        cond, state = expect
        assert len(new_hook) == 1 and len(new_slack) == 1, (out + err, new_hook)
        ev = new_hook[0]["body"]
        assert (ev["condition"], ev["state"]) == (cond, state), ev
        assert ev["sync"] == "people"
        assert new_hook[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
        # Slack's incoming-webhook body: one key, the text
        sbody = new_slack[0]["body"]
        assert list(sbody) == ["text"], sbody
        assert sbody["text"] == ev["text"].replace("&", "&amp;").replace(
            "<", "&lt;").replace(">", "&gt;")
        assert new_slack[0]["headers"].get("Authorization") is None
        return ev


def test_each_condition_alerts_once_and_recovers_once(project, db, receiver):
    data, hook, slack = receiver(), receiver(accept_any=True), receiver(
        accept_any=True)
    make_people(db, 20)
    p = notify_project(project, db, data, two_channels())
    env = {"ALERT_HOOK_URL": hook + "/alerts", "ALERT_TOKEN": TOKEN,
           "SLACK_WEBHOOK_URL": slack + SLACK_PATH}
    a = Alerted(p, hook, slack, env)

    a.run(0)                                  # healthy: nothing to say

    # run_failed: the model's table is gone (exit 3), twice; then back
    db.psql("ALTER TABLE people RENAME TO people_gone")
    ev = a.run(3, ("run_failed", "firing"))
    assert ev["run_id"] == run_ids(p)[-1] and ev["exit_code"] == 3
    assert 'relation "people" does not exist' in ev["message"]
    assert "retl history people" in ev["text"]
    assert "retl run people" in ev["text"]
    a.run(3)                                  # still failing: no repeat
    db.psql("ALTER TABLE people_gone RENAME TO people")
    ev = a.run(0, ("run_failed", "recovered"))
    assert ev["run_id"] == run_ids(p)[-1] and ev["counts"]["read"] == 20
    a.run(0)

    # safety_stop: 5 rows leave a mirror sync that allows 3 removals
    db.psql("DELETE FROM people WHERE id > 15")
    ev = a.run(5, ("safety_stop", "firing"))
    assert "retl plan people" in ev["text"]
    assert "--allow-removals" in ev["text"]
    a.run(5)
    db.psql("INSERT INTO people SELECT i, 'p' || i || '@example.com', "
            "'name ' || i FROM generate_series(16, 20) i")
    a.run(0, ("safety_stop", "recovered"))

    # rows_failing (more than 1 run): the receiver refuses every batch
    control(data, "config", {"reject_status": 422})
    db.psql("UPDATE people SET name = name || '!' WHERE id <= 4")
    a.run(1)                                  # failing in 1 run: not yet
    ev = a.run(1, ("rows_failing", "firing"))
    assert ev["rows_failing"] == 4 and ev["rows_failing_runs"] == 1
    assert "retl failures people" in ev["text"]
    assert "4 rows failing in more than 1 run" in ev["text"]
    a.run(1)
    control(data, "config", {"reject_status": 0})
    a.run(0, ("rows_failing", "recovered"))
    a.run(0)

    # no secret in any alert body or log line (the token goes only in the
    # Authorization header the pager channel is configured to send)
    logs = "".join(a.logs)
    for d in alerts(hook) + alerts(slack):
        for secret in (TOKEN, "slackSecretPath9", PG_PASSWORD, "password"):
            assert secret not in d["raw"], (secret, d["raw"])
    for secret in (TOKEN, "slackSecretPath9", PG_PASSWORD):
        assert secret not in logs, secret
    # the channels are named, never their URLs
    assert "notify pager: run_failed alert delivered" in logs
    assert "notify team: run_failed alert delivered" in logs
    assert "/alerts" not in logs and "/services/" not in logs


def test_a_failed_delivery_keeps_the_exit_code_and_is_sent_after_the_next_run(
        project, db, receiver):
    data, hook = receiver(), receiver(accept_any=True, reject_status=503)
    make_people(db, 5)
    notify = {"channels": {"pager": {"type": "webhook",
                                     "url": "${ALERT_HOOK_URL}"}}}
    p = notify_project(project, db, data, notify)
    env = {"ALERT_HOOK_URL": hook + "/alerts"}
    db.psql("ALTER TABLE people RENAME TO people_gone")
    rc, out, err = p.run("run", "people", env=env)
    assert rc == 3, out + err
    assert "notify pager: run_failed alert not delivered: HTTP 503" in err
    assert "tried again after the next run" in err
    first = run_ids(p)[-1]
    n = len(alerts(hook))
    assert n >= 1 and all(d["answer"] == 503 for d in alerts(hook))

    # the receiver is back: the next (still failing) run delivers the alert
    # of the run that started the condition, once
    control(hook, "config", {"reject_status": 0})
    rc, out, err = p.run("run", "people", env=env)
    assert rc == 3, out + err
    got = alerts(hook)[n:]
    assert len(got) == 1 and got[0]["answer"] == 200, got
    assert got[0]["body"]["run_id"] == first
    assert got[0]["body"]["condition"] == "run_failed"
    rc, out, err = p.run("run", "people", env=env)
    assert rc == 3 and len(alerts(hook)) == n + 1

    # an alert URL missing from the environment: logged, the run's exit
    # code is its own, and the verbs that send nothing need no alert URL
    db.psql("ALTER TABLE people_gone RENAME TO people")
    rc, out, err = p.run("run", "people", env={"ALERT_HOOK_URL": None})
    assert rc == 0, out + err
    assert "notify pager: run_failed alert not sent: retl.json: " \
        "notify.channels.pager.url: environment variable ALERT_HOOK_URL " \
        "is not set" in err
    rc, out, err = p.run("status", env={"ALERT_HOOK_URL": None})
    assert rc == 0, out + err
    # and once it is set again the recovery goes out
    rc, out, err = p.run("run", "people", env=env)
    assert rc == 0, out + err
    assert [d["body"]["state"] for d in alerts(hook)[n + 1:]] == ["recovered"]


def test_the_daemon_and_retl_run_share_the_conditions(project, db, receiver):
    """A failing `retl run` alerts; the daemon's failing runs after it
    (each its own process) do not repeat it; the daemon's run that goes
    through sends the recovery, once."""
    data, hook = receiver(), receiver(accept_any=True)
    make_people(db, 5)
    notify = {"channels": {"pager": {"type": "webhook",
                                     "url": "${ALERT_HOOK_URL}",
                                     "on": ["run_failed"]}}}
    p = notify_project(project, db, data, notify, schedule="every 1s")
    db.psql("ALTER TABLE people RENAME TO people_gone")
    rc, out, err = p.run("run", "people",
                         env={"ALERT_HOOK_URL": hook + "/alerts"})
    assert rc == 3 and len(alerts(hook)) == 1, out + err
    env = dict(os.environ, ALERT_HOOK_URL=hook + "/alerts")
    log = open(p.path("daemon.log"), "w")
    d = subprocess.Popen([p.retl_bin, "--config", p.dir, "daemon", "--listen",
                          "off"], env=env, stdout=log, stderr=log,
                         stdin=subprocess.DEVNULL)
    daemon_log = lambda: open(p.path("daemon.log")).read()  # noqa: E731
    try:
        def finished_runs(n):
            def enough():
                assert d.poll() is None, daemon_log()
                return len(finished(p)) >= n
            return enough
        wait_for(finished_runs(4), 60, "three failed daemon runs", daemon_log)
        assert finished(p)[:4] == [3, 3, 3, 3]
        assert len(alerts(hook)) == 1
        db.psql("ALTER TABLE people_gone RENAME TO people")

        def recovered():
            assert d.poll() is None, daemon_log()
            return len(alerts(hook)) >= 2
        wait_for(recovered, 60, "the recovery alert", daemon_log)
    finally:
        d.terminate()
        d.wait(timeout=60)
        log.close()
    got = alerts(hook)
    assert [g["body"]["state"] for g in got] == ["firing", "recovered"], got
    assert got[0]["body"]["run_id"] == run_ids(p)[0]
    assert 0 in finished(p)


def finished(p):
    con = sqlite3.connect(p.path("state", "retl.db"))
    try:
        return [r[0] for r in con.execute(
            "SELECT exit_code FROM runs WHERE sync = 'people' AND ended_at "
            "IS NOT NULL ORDER BY id")]
    finally:
        con.close()


@pytest.mark.parametrize("notify,msg", [
    ({"channels": {"x": {"type": "slack",
                         "url": "https://hooks.slack.com/services/T/B/x"}}},
     'notify.channels.x.url: expected "${NAME}" or "@file:PATH": an alert '
     'URL is a secret and is read from the environment or a file'),
    ({"channels": {"x": {"type": "teams", "url": "${U}"}}},
     'notify.channels.x.type: unknown channel type "teams" (expected one of '
     'slack, webhook)'),
    ({"channels": {"x": {"type": "webhook", "url": "${U}",
                         "on": ["run_failed", "slow"]}}},
     'notify.channels.x.on[1]: unknown condition "slow" (expected one of '
     'run_failed, safety_stop, rows_failing)'),
    ({"channels": {"x": {"type": "slack", "url": "${U}",
                         "headers": {"A": "b"}}}},
     "notify.channels.x.headers: a Slack incoming webhook takes no headers"),
    ({"channels": {"x": {"type": "webhook", "url": "${U}", "bogus": 1}}},
     "notify.channels.x.bogus: unknown key (expected one of type, url, "
     "headers, on, recovery, timeout)"),
    ({"rows_failing_runs": -1, "channels": {}},
     "notify.rows_failing_runs: expected a whole number of runs (0 to "
     "1000000)"),
    ({}, "notify.channels: missing (required)"),
])
def test_notify_config_errors(project, notify, msg):
    p = project()
    cfg = json.load(open(p.path("retl.json")))
    cfg["notify"] = notify
    p.write_config(cfg)
    rc, out, err = p.run("check")
    assert rc == 2
    assert err.strip() == f"retl.json: {msg}"


def test_an_alert_url_that_breaks_the_url_policy_is_not_used(project, db,
                                                              receiver):
    """http to a host name (not a literal loopback address) is refused
    when the URL is resolved: logged by channel name, never sent, and the
    URL's path (its token) is not in the log."""
    data = receiver()
    make_people(db, 3)
    notify = {"channels": {"pager": {"type": "webhook",
                                     "url": "${ALERT_HOOK_URL}"}}}
    p = notify_project(project, db, data, notify)
    db.psql("ALTER TABLE people RENAME TO people_gone")
    rc, out, err = p.run("run", "people", env={
        "ALERT_HOOK_URL": "http://alerts.example.com/hook/tok3nPath"})
    assert rc == 3, out + err
    assert "notify pager: run_failed alert not sent: retl.json: " \
        "notify.channels.pager.url:" in err
    assert "tok3nPath" not in out + err


def test_check_resolves_the_alert_channels(project, db, receiver):
    """`retl check` (the whole project) meets the channels as an alert
    would: a missing secret and a URL the policy refuses fail the check,
    naming the channel and never the URL; nothing is sent."""
    data = receiver()
    make_people(db, 3)
    notify = {"channels": {
        "pager": {"type": "webhook", "url": "${ALERT_HOOK_URL}"},
        "team": {"type": "slack", "url": "${SLACK_WEBHOOK_URL}"}}}
    p = notify_project(project, db, data, notify)
    env = {"ALERT_HOOK_URL": "http://alerts.example.com/hook/tok3nPath"}
    rc, out, err = p.run("check", env=env)
    assert rc == 2, out + err
    assert "retl: check notify.channels.pager: retl.json: " \
        "notify.channels.pager.url:" in err, err
    assert "retl: check notify.channels.team: " in err, err
    assert "SLACK_WEBHOOK_URL" in err and "not set" in err, err
    assert "check failed for: notify channel pager, notify channel team" in err
    assert "tok3nPath" not in out + err
    assert "ok  people" in out or "people" in out
    # a check of one sync leaves the project's channels alone
    rc, out, err = p.run("check", "people", env=env)
    assert rc == 0, out + err
    # with both channels fine, the check passes and sends nothing
    alert = receiver(accept_any=True)
    rc, out, err = p.run("check", env={"ALERT_HOOK_URL": alert + "/hook",
                                       "SLACK_WEBHOOK_URL": alert + "/slack"})
    assert rc == 0, out + err
    assert alerts(alert) == []
