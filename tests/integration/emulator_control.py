"""The emulators' control endpoints (tests/emulators/common.py), for tests."""

import json
import urllib.request


def control(url, path, body=None):
    """GET (no body) or POST url/_emulator/path; the JSON answer"""
    req = urllib.request.Request(
        url + "/_emulator/" + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def running(module, **knobs):
    """an emulator module's server in this process for the length of a
    test (a pytest fixture yields from it): its base URL"""
    server, url = module.start(port=0, **knobs)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def starter(module, **defaults):
    """For a test that starts several emulators (a pytest fixture yields
    from it): a function make(**knobs) that starts one more and returns its
    base URL; every one started is stopped at the end"""
    servers = []

    def make(**knobs):
        server, url = module.start(port=0, **dict(defaults, **knobs))
        servers.append(server)
        return url

    try:
        yield make
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
