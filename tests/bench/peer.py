#!/usr/bin/env python3
"""peer.py - the script a data engineer would write instead of retl, for the
benchmark's model: a contender in `make bench`, with retl's semantics for a
run to the file destination.

    peer.py DSN STATE_DB OUT_FILE

Reads the model through a server-side (named) cursor, 10,000 rows a fetch;
maps each row to the same payload as the bench's retl mapping (json.dumps,
sort_keys); hashes it (md5); compares it with the hash the state table
(sqlite3, key -> hash) holds for its key; and for each batch of 2,000
changed rows appends their JSON lines to OUT_FILE (retl's file-destination
line, fsync'd) and only then stores their hashes, in one transaction, as
retl does.  The state table is read into a dict when the run starts (what
one would write, and the fastest way in Python).  Rows that left the model
are not handled: the benchmark removes none.  Prints "read N changed M".

Needs psycopg2 (Debian's python3-psycopg2; `make bench` installs it).
"""

import hashlib
import json
import os
import sqlite3
import sys
from datetime import timezone

import psycopg2

QUERY = ("SELECT id, email, first_name, last_name, plan, mrr, active, "
         "created_at, country, score FROM bench")
BATCH = 2000


def payload(row):
    (id_, email, first_name, last_name, plan, mrr, active, created_at,
     country, score) = row
    return {
        "id": id_,
        "email": email.strip().lower() if email is not None else None,
        "first_name": first_name,
        "last_name": last_name,
        "plan": plan,
        "mrr": float(mrr) if mrr is not None else None,
        "active": active,
        "created_at": created_at.astimezone(timezone.utc)
                                .strftime("%Y-%m-%dT%H:%M:%SZ")
        if created_at is not None else None,
        "country": country,
        "score": score,
    }


def flush(batch, out, state):
    out.writelines(f'{{"op":"upsert","key":{json.dumps(key)},"payload":{body}}}\n'
                   for key, _, body in batch)
    out.flush()
    os.fsync(out.fileno())
    with state:  # one transaction per batch, after the lines are on disk
        state.executemany("INSERT OR REPLACE INTO state (key, hash) VALUES (?, ?)",
                          ((key, h) for key, h, _ in batch))
    batch.clear()


def main(dsn, state_path, out_path):
    state = sqlite3.connect(state_path)
    state.execute("PRAGMA journal_mode=WAL")
    state.execute("PRAGMA synchronous=NORMAL")  # retl's durability: WAL, synced at checkpoints
    state.execute("CREATE TABLE IF NOT EXISTS state "
                  "(key TEXT PRIMARY KEY, hash TEXT NOT NULL)")
    known = dict(state.execute("SELECT key, hash FROM state"))

    conn = psycopg2.connect(dsn)
    conn.set_session(readonly=True)
    cur = conn.cursor(name="peer")  # server-side: rows streamed, not all in memory
    cur.itersize = 10000
    cur.execute(QUERY)

    read = changed = 0
    batch = []
    with open(out_path, "a", encoding="utf-8") as out:
        for row in cur:
            read += 1
            key = str(row[0])
            body = json.dumps(payload(row), sort_keys=True, separators=(",", ":"))
            h = hashlib.md5(body.encode()).hexdigest()
            if known.get(key) != h:
                batch.append((key, h, body))
                changed += 1
                if len(batch) == BATCH:
                    flush(batch, out, state)
        if batch:
            flush(batch, out, state)
    cur.close()
    conn.close()
    state.close()
    print(f"read {read} changed {changed}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: peer.py DSN STATE_DB OUT_FILE")
    main(*sys.argv[1:])
