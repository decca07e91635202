"""The example project: the top-level retl.json and mappings/ (README, "make
demo"; docker/compose.yml mounts it).  It is a real project: `retl check`
passes on it and every sync in it sends its model to its destination, one
emulator per destination (tests/emulators), with the environment variables
retl.json names.  tests/demo/demo.py points it at the emulators the same way
(copy_project), so the demo and this test run the same files.
"""

import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "demo"))

import demo  # noqa: E402
from conftest import run  # noqa: E402

DEST_TYPES = {"file", "hubspot", "salesforce", "mailchimp", "airtable", "webhook"}


def test_every_destination_type_has_a_sync():
    with open(os.path.join(REPO, "retl.json"), encoding="utf-8") as f:
        conf = json.load(f)
    used = set()
    for path in glob.glob(os.path.join(REPO, "mappings", "*.json")):
        with open(path, encoding="utf-8") as f:
            used.add(conf["destinations"][json.load(f)["destination"]]["type"])
    assert used == DEST_TYPES


def test_example_project_syncs_every_destination(db, retl_bin, tmp_path):
    db.psql(demo.SCHEMA_SQL)
    emus = demo.Emulators(airtable_penalty=3).start()
    try:
        project = str(tmp_path / "project")
        demo.copy_project(project, emus)
        env = dict(demo.SECRETS, WAREHOUSE_URL=db.dsn)
        rc, out, err = run(retl_bin, project, "check", env=env)
        assert rc == 0, out + err
        # exit 1: the customers sync rejects the two invalid emails
        rc, out, err = run(retl_bin, project, "run", "--all", env=env)
        assert rc == 1, out + err
        syncs = sorted(os.path.basename(p)[:-5]
                       for p in glob.glob(os.path.join(REPO, "mappings", "*.json")))
        assert syncs == sorted(demo.EMULATED + ("customers", "segment_vip"))
        for sync in demo.EMULATED:
            assert emus.held(sync) == demo.model_count(db, sync) > 0, sync
        lines = demo.count_lines(os.path.join(project, "out", "customers.jsonl"))
        assert lines in (demo.ROWS - 3, demo.ROWS - 2)
        vip = demo.count_lines(os.path.join(project, "out", "segment_vip.jsonl"))
        assert vip == demo.model_count(db, "segment_vip") > 0
    finally:
        emus.stop()
