"""The emulators' indexed look-ups answer exactly as the scans they replaced.

Salesforce keeps an index per (object, field) through every write; Airtable
builds one per performUpsert request.  A random sequence of writes (seeded)
checks each look-up against a scan of the records, duplicates, missing
fields and empty values included."""

import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import airtable  # noqa: E402
import salesforce  # noqa: E402

API = "/services/data/v59.0/"


def sf_call(emu, method, path, body=None, ctype="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    req = common.Request(method, API + path, {"Content-Type": ctype}, data)
    with emu.lock:
        return emu.dispatch(req)


def sf_scan(emu, obj, fname, value):
    for r in emu.records[obj].values():
        if r.get(fname) == value:
            return r
    return None


def test_salesforce_index_matches_a_scan():
    rng = random.Random(13)
    emu = salesforce.SalesforceEmulator()
    ext_values = ["E%d" % i for i in range(30)]
    legacy = ["L%d" % i for i in range(5)]       # not unique: duplicates on purpose
    emails = ["u%d@x.com" % i for i in range(10)]

    def contact():
        rec = {"attributes": {"type": "Contact"}, "LastName": "N%d" % rng.randrange(9)}
        for fname, pool in (("External_Id__c", ext_values), ("Legacy_Code__c", legacy),
                            ("Email", emails)):
            roll = rng.random()
            if roll < 0.6:
                rec[fname] = rng.choice(pool)
            elif roll < 0.7:
                rec[fname] = None
            elif roll < 0.75:
                rec[fname] = ""
        return rec

    checks = 0
    for step in range(600):
        op = rng.random()
        ids = list(emu.records["Contact"])
        if op < 0.25:
            sf_call(emu, "POST", "composite/sobjects", {"records": [contact() for _ in range(3)]})
        elif op < 0.45 and ids:
            recs = []
            for _ in range(3):
                r = contact()
                r["Id"] = rng.choice(ids)
                recs.append(r)
            sf_call(emu, "PATCH", "composite/sobjects", {"records": recs})
        elif op < 0.7:
            fname = rng.choice(["External_Id__c", "Legacy_Code__c", "Email"])
            recs = [contact() for _ in range(3)]
            for r in recs:
                r[fname] = r.get(fname) or rng.choice(ext_values)
            sf_call(emu, "PATCH", "composite/sobjects/Contact/" + fname, {"records": recs})
        elif op < 0.8 and ids:
            sf_call(emu, "DELETE", "composite/sobjects?ids=" + ",".join(rng.sample(ids, min(2, len(ids)))))
        elif op < 0.85:
            sf_call(emu, "DELETE", "sobjects/Contact/External_Id__c/" + rng.choice(ext_values))
        else:
            # Bulk API 2.0: upsert (a missing External ID included) or delete
            job = sf_call(emu, "POST", "jobs/ingest",
                          {"object": "Contact", "operation": rng.choice(["upsert", "delete"]),
                           "externalIdFieldName": "External_Id__c"}).body
            if job["operation"] == "delete":
                rows = "Id\n" + "".join("%s\n" % i for i in rng.sample(ids, min(3, len(ids))))
            else:
                rows = "External_Id__c,LastName,Legacy_Code__c\n" + "".join(
                    "%s,B%d,%s\n" % (rng.choice(ext_values + [""]), i, rng.choice(legacy + [""]))
                    for i in range(4))
            sf_call(emu, "PUT", "jobs/ingest/%s/batches" % job["id"], rows.encode(), "text/csv")
            sf_call(emu, "PATCH", "jobs/ingest/" + job["id"], {"state": "UploadComplete"})
        for fname, pool in (("External_Id__c", ext_values), ("Legacy_Code__c", legacy),
                            ("Email", emails), ("Title", ["t"])):
            for v in rng.sample(pool, min(4, len(pool))) + [None]:
                assert emu.find_ext("Contact", fname, v) is sf_scan(emu, "Contact", fname, v), \
                    (step, fname, v)
                checks += 1
    assert checks > 5000 and len(emu.records["Contact"]) > 20


def test_airtable_merge_key_matches_same():
    """Two records share a merge key exactly when same() holds on every
    merge field (empty values, 0 and False, 1 and True, lists)."""
    same = airtable.AirtableEmulator.same
    key = airtable.AirtableEmulator.merge_key
    values = [None, "", False, [], 0, 0.0, 1, 1.0, True, 2, "a", "b", "0",
              ["a"], ["a", "b"], ["b", "a"], [""], [0], [False], "2024-01-01"]
    for a in values:
        for b in values:
            for c in (None, "a"):
                fa, fb = {"x": a, "y": c}, {"x": b, "y": c}
                assert (key(fa, ["x", "y"]) == key(fb, ["x", "y"])) == (same(a, b) and same(c, c)), (a, b)
            # a missing field is None
            assert (key({"x": a}, ["x"]) == key({}, ["x"])) == same(a, None)


def test_airtable_merge_index_matches_a_scan():
    rng = random.Random(13)
    emu = airtable.AirtableEmulator()
    recs = {}
    pool = [None, "", 0, 1, 2.0, "a", "b", ["a"], ["a", "b"], True]
    for i in range(300):
        recs["rec%d" % i] = {"id": "rec%d" % i,
                             "fields": {k: rng.choice(pool) for k in ("x", "y") if rng.random() < 0.8}}
    for merge in (["x"], ["y"], ["x", "y"]):
        index = emu.merge_index(recs, merge)
        for _ in range(200):
            f = {k: rng.choice(pool) for k in ("x", "y") if rng.random() < 0.8}
            scan = [x for x in recs.values() if all(emu.same(x["fields"].get(m), f.get(m)) for m in merge)]
            assert index.get(emu.merge_key(f, merge), []) == scan
    # an object value cannot be a key: the request scans instead
    recs["recobj"] = {"id": "recobj", "fields": {"x": {"k": 1}}}
    assert emu.merge_index(recs, ["x"]) is None
