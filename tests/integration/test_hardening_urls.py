"""One URL policy for every outbound URL (issue 13; src/url.h).

https, or plain http only to a literal loopback address (127.x.x.x, [::1]);
no "user:password@"; a URL an API returns (Salesforce's instance_url) must be
on Salesforce's domains or the destination's allowed_hosts.  The findings:

- Salesforce followed the token answer's instance_url anywhere: with
  http://192.0.2.2 there, the Bearer session went out in plain HTTP.
- The webhook's loopback test was a prefix test: http://127.attacker.test/
  received the batch, its signature and the configured headers; `retl check`
  passed http://127.0.0.1.nip.io/.
- URLs with user:password@ were accepted and the password echoed in errors.

A small recording server on 127.0.0.1 stands in for Salesforce's token
endpoint (its answer is the test's to choose) and for any host retl must not
reach; it records every request it gets, so "nothing was sent" is checked on
the wire, not only in retl's message.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

PASSWORD = "hunter2-Zq9"
LOOPBACK_ONLY = ("plain http:// is allowed only to a literal loopback address: "
                 "127.x.x.x or [::1] (not a name such as localhost); use https://")
ENV = {"SF_CLIENT_ID": "retl-client", "SF_CLIENT_SECRET": "retl-secret",
       "SF_REFRESH_TOKEN": "retl-refresh", "WEBHOOK_KEY": "wh-key-0123456789"}


class Recorder(ThreadingHTTPServer):
    """Answers with self.answer(handler) -> (status, json) and keeps every
    request as {"method", "path", "headers"}."""
    daemon_threads = True

    def __init__(self, answer):
        super().__init__(("127.0.0.1", 0), Handler)
        self.answer = answer
        self.requests = []
        self.lock = threading.Lock()
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        self.port = self.server_address[1]

    def seen(self):
        with self.lock:
            return list(self.requests)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with self.server.lock:
            self.server.requests.append({"method": self.command, "path": self.path,
                                         "headers": dict(self.headers), "body": body})
        status, doc = self.server.answer(self)
        raw = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any


@pytest.fixture
def recorder():
    servers = []

    def make(answer=lambda h: (200, {})):
        s = Recorder(answer)
        t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True)
        t.start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.shutdown()
        s.server_close()


def token_answer(instances):
    """A token endpoint whose n-th answer names instances[n] (the last one
    again after that); anything else is a 404 NOT_FOUND."""
    calls = []

    def answer(h):
        if h.path == "/services/oauth2/token":
            inst = instances[min(len(calls), len(instances) - 1)]
            calls.append(inst)
            return 200, {"access_token": "00D000000000001!session-" + str(len(calls)),
                         "instance_url": inst, "id": "https://login.salesforce.com/id/00D/005",
                         "token_type": "Bearer", "issued_at": "1714557600000"}
        return 404, [{"errorCode": "NOT_FOUND", "message": "not here"}]
    return answer


def make_people(db, n=3):
    db.psql(f"""
        CREATE TABLE people (id int PRIMARY KEY, email text, last text);
        INSERT INTO people SELECT i, 'p' || i || '@example.com', 'Last' || i
        FROM generate_series(1, {n}) i;
    """)


def sf_project(project, db, base_url, **dest):
    d = {"type": "salesforce", "base_url": base_url, "client_id": "${SF_CLIENT_ID}",
         "client_secret": "${SF_CLIENT_SECRET}", "refresh_token": "${SF_REFRESH_TOKEN}"}
    d.update(dest)
    p = project(dsn=db.dsn, destinations={"sf": d})
    p.add_mapping("people", {
        "source": "warehouse", "query": "SELECT id, email, last FROM people", "key": "id",
        "destination": "sf", "object": "Contact", "mode": "upsert",
        "match": {"External_Id__c": "id"},
        "fields": {"External_Id__c": {"from": "id", "type": "string"},
                   "Email": "email", "LastName": "last"}})
    return p


def bearer_requests(server):
    return [r for r in server.seen()
            if r["headers"].get("Authorization", "").startswith("Bearer")]


# ---- Salesforce: the instance_url of the token answer ----

def test_sf_instance_url_plain_http_to_a_remote_host_is_refused(project, db, recorder):
    make_people(db)
    login = recorder(token_answer(["http://192.0.2.2"]))
    p = sf_project(project, db, login.url)
    rc, out, err = p.run("run", "people", env=ENV, timeout=60)
    assert rc == 4, out + err
    assert ("salesforce: the token answer's instance_url is refused, nothing was sent to it: "
            "http://192.0.2.2: " + LOOPBACK_ONLY) in err
    assert [r["path"] for r in login.seen()] == ["/services/oauth2/token"]
    assert "session-1" not in out + err


def test_sf_instance_url_naming_a_loopback_host_is_refused(project, db, recorder):
    """http://localhost:PORT is this very server: before the fix retl sent it
    the Bearer session; a name is not a literal loopback address."""
    make_people(db)
    login = recorder(token_answer([]))
    login.answer = token_answer(["http://localhost:%d" % login.port])
    p = sf_project(project, db, login.url)
    rc, out, err = p.run("run", "people", env=ENV, timeout=60)
    assert rc == 4, out + err
    assert ("instance_url is refused, nothing was sent to it: http://localhost:%d: "
            % login.port + LOOPBACK_ONLY) in err
    assert bearer_requests(login) == []


def test_sf_instance_url_with_userinfo_is_refused_and_not_echoed(project, db, recorder):
    make_people(db)
    login = recorder(token_answer(["https://admin:%s@acme.my.salesforce.com" % PASSWORD]))
    p = sf_project(project, db, login.url)
    rc, out, err = p.run("run", "people", env=ENV, timeout=60)
    assert rc == 4, out + err
    assert ("instance_url is refused, nothing was sent to it: https://acme.my.salesforce.com: "
            "a user name or password in the URL is not allowed") in err
    assert PASSWORD not in out + err and "admin" not in out + err


def test_sf_instance_url_off_salesforce_domains_needs_allowed_hosts(project, db, recorder):
    """https://localhost:PORT resolves without DNS and is on no Salesforce
    domain: refused as it is; with allowed_hosts ["localhost"] retl goes on to
    use it (and fails there: the server speaks no TLS)."""
    make_people(db)
    login = recorder(token_answer([]))
    inst = "https://localhost:%d" % login.port
    login.answer = token_answer([inst])
    p = sf_project(project, db, login.url)
    rc, out, err = p.run("check", env=ENV, timeout=120)
    assert rc == 4, out + err
    assert (inst + ": not on Salesforce's domains (*.salesforce.com, *.force.com, "
            "*.cloudforce.com, *.salesforce.mil); a host of yours (a proxy, a test server) "
            "can be listed in destinations.sf.allowed_hosts") in err

    p2 = sf_project(project, db, login.url, allowed_hosts=["localhost"])
    rc, out, err = p2.run("check", env=ENV, timeout=120)
    assert rc != 0, out + err
    assert "instance_url is refused" not in err
    assert "salesforce:" in err


def test_sf_loopback_instance_url_with_a_loopback_login_is_used(project, db, recorder):
    """The emulators' case: the login URL is loopback, so a loopback
    instance_url is followed (here to this server, which knows no Contact)."""
    make_people(db)
    login = recorder(token_answer([]))
    login.answer = token_answer([login.url])
    p = sf_project(project, db, login.url)
    rc, out, err = p.run("check", env=ENV, timeout=60)
    assert 'sObject "Contact" does not exist' in out + err, out + err
    assert [r["path"] for r in bearer_requests(login)] == [
        "/services/data/v62.0/sobjects/Contact/describe"]


def test_sf_refresh_after_401_checks_the_new_instance_url(project, db, recorder):
    """A session refused mid-run asks for a new token; that answer's
    instance_url is held to the same policy, and its reason is the error."""
    make_people(db)
    login = recorder(token_answer([]))
    tokens = token_answer([login.url, "http://192.0.2.2"])

    def answer(h):
        if h.path.startswith("/services/data/"):
            return 401, [{"errorCode": "INVALID_SESSION_ID", "message": "expired"}]
        return tokens(h)
    login.answer = answer
    p = sf_project(project, db, login.url)
    rc, out, err = p.run("check", env=ENV, timeout=60)
    assert rc == 4, out + err
    assert "instance_url is refused, nothing was sent to it: http://192.0.2.2: " in err
    assert [r["path"] for r in login.seen()] == [
        "/services/oauth2/token", "/services/data/v62.0/sobjects/Contact/describe",
        "/services/oauth2/token"]


# ---- configured URLs: base_url, login_url, the webhook's url ----

@pytest.mark.parametrize("key,url,why", [
    ("login_url", "http://login.salesforce.com", "http://login.salesforce.com: " + LOOPBACK_ONLY),
    ("login_url", "https://admin:%s@login.salesforce.com" % PASSWORD,
     "https://login.salesforce.com: a user name or password in the URL is not allowed "
     "(not shown here); put credentials in the destination's own keys"),
    ("base_url", "http://127.attacker.test/", "http://127.attacker.test: " + LOOPBACK_ONLY),
    ("base_url", "https://admin:%s@api.example.com" % PASSWORD,
     "https://api.example.com: a user name or password in the URL is not allowed "
     "(not shown here); put credentials in the destination's own keys"),
    ("allowed_hosts", ["*"], 'allowed_hosts[0]: "*" is not a host pattern'),
    ("allowed_hosts", "*.example.com", "allowed_hosts: expected an array of host patterns"),
])
def test_sf_config_urls(project, db, key, url, why):
    make_people(db)
    p = sf_project(project, db, "https://login.salesforce.com")
    cfg = json.load(open(p.path("retl.json")))
    d = cfg["destinations"]["sf"]
    if key != "base_url":
        del d["base_url"]
    d[key] = url
    p.write_config(cfg)
    for verb in (("check",), ("run", "people"), ("plan", "people")):
        rc, out, err = p.run(*verb, env=ENV, timeout=60)
        assert rc == 2, (verb, out, err)
        # found when the secrets are read: the value's line and column,
        # and check names the sync
        assert re.match(r"(retl: check people: )?retl\.json:\d+:\d+: "
                        r"destinations\.sf\.%s" % key, err), err
        assert why in err, err
        assert PASSWORD not in out + err


def wh_project(project, db, url, **dest):
    d = {"type": "webhook", "url": url, "signing_secret": "whsec-0123456789",
         "headers": {"Authorization": "Bearer ${WEBHOOK_KEY}"}}
    d.update(dest)
    p = project(dsn=db.dsn, destinations={"hook": d})
    p.add_mapping("people", {"source": "warehouse", "query": "SELECT id, email FROM people",
                             "key": "id", "destination": "hook", "mode": "upsert",
                             "fields": {"email": "email"}})
    return p


@pytest.mark.parametrize("url,why", [
    ("http://127.attacker.test/hooks", "http://127.attacker.test: " + LOOPBACK_ONLY),
    ("http://127.0.0.1.nip.io/", "http://127.0.0.1.nip.io: " + LOOPBACK_ONLY),
    ("http://127.0.0.1.:9/", "http://127.0.0.1.:9: " + LOOPBACK_ONLY),
    ("ftp://127.0.0.1/", "ftp://127.0.0.1: expected https:// (or http:// to a literal "
     "loopback address: 127.x.x.x or [::1])"),
    ("https://hooks:%s@hooks.example.com/h" % PASSWORD,
     "https://hooks.example.com: a user name or password in the URL is not allowed"),
    ("http://127.0.0.1 /", "not a URL ("),
])
def test_webhook_url_policy_at_config_time(project, db, url, why):
    make_people(db)
    p = wh_project(project, db, url)
    for verb in (("check",), ("run", "people")):
        rc, out, err = p.run(*verb, env=ENV, timeout=60)
        assert rc == 2, (verb, out, err)
        assert re.match(r"(retl: check people: )?retl\.json:\d+:\d+: "
                        r"destinations\.hook\.url: ", err), err
        assert why in err, err
        assert PASSWORD not in out + err


def test_webhook_to_a_loopback_name_sends_nothing(project, db, recorder):
    """http://localhost:PORT is this server: before the fix it received the
    batch, its signature and the Authorization header.  The same server by
    its literal address gets them."""
    make_people(db)
    hook = recorder(lambda h: (200, {}))
    p = wh_project(project, db, "http://localhost:%d/hooks" % hook.port)
    rc, out, err = p.run("run", "people", env=ENV, timeout=60)
    assert rc == 2, out + err
    assert re.search(r"retl\.json:\d+:\d+: destinations\.hook\.url: "
                     + re.escape("http://localhost:%d: " % hook.port + LOOPBACK_ONLY),
                     err), err
    assert hook.seen() == []

    p2 = wh_project(project, db, hook.url + "/hooks")
    rc, out, err = p2.run("run", "people", env=ENV, timeout=60)
    assert rc == 0, out + err
    got = hook.seen()
    assert len(got) == 1 and got[0]["path"] == "/hooks"
    assert got[0]["headers"]["Authorization"] == "Bearer " + ENV["WEBHOOK_KEY"]
    assert got[0]["headers"]["X-Retl-Signature"].startswith("sha256=")


def test_base_url_userinfo_of_every_destination_is_refused(project, db):
    for typ, extra in (("hubspot", {"token": "pat-x"}), ("airtable", {"token": "pat-x", "base": "appX"}),
                       ("mailchimp", {"api_key": "k-us6"})):
        d = {"type": typ, "base_url": "https://u:%s@api.example.com/" % PASSWORD}
        d.update(extra)
        p = project(dsn=db.dsn, destinations={"d": d})
        rc, out, err = p.run("check", timeout=60)
        assert rc == 2, (typ, out, err)
        assert ("retl.json: destinations.d.base_url: https://api.example.com: a user name or "
                "password in the URL is not allowed") in err, err
        assert PASSWORD not in out + err
