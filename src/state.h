/*
 * state.h - the state store: one SQLite file (WAL, mode 0600).
 *
 * Per sync it holds the cache (key -> acknowledged payload hash, source
 * hash, destination record id, status, attempts, last error, timestamps),
 * the runs with their counts, and per-row outcomes of recent runs.
 *
 * The rules that make it trustworthy live in sync.c; this module only
 * provides the primitives: a row's hashes change only through
 * retl_state_ack(), and the sync engine calls it only for rows the
 * destination acknowledged, inside one transaction per batch.
 */
#ifndef RETL_STATE_H
#define RETL_STATE_H

#include <stdint.h>
#include <stdio.h>

#include "cache.h"
#include "err.h"
#include "hash.h"

typedef struct retl_state retl_state;

/*
 * Creates the file (and its directory) when missing, mode 0600, migrates.
 * A store once opened leaves a marker beside it ("<path>.marker"); while
 * it exists, a missing or empty file, or another store's, is refused (err
 * code 2) rather than taken for a first run.
 */
int retl_state_open(retl_state **out, const char *path, struct retl_err *err);
/*
 * The same for a store that may be in PostgreSQL: path "postgresql://…"
 * or "postgres://…" (a libpq URL) keeps the tables in that database, in
 * schema "retl" (README "The state store").  local: the directory for the
 * store's local files (cache images, spools), created 0700; NULL: ".retl"
 * in the working directory.  Ignored for a file store (its files sit
 * beside it).
 */
int retl_state_open_at(retl_state **out, const char *path, const char *local,
		       struct retl_err *err);
/* how messages name the store: its path, or its URL without a password */
const char *retl_state_name(retl_state *st);
void retl_state_close(retl_state *st);

/* starting over on purpose (`retl reset --all`): the next retl_state_open
 * of path creates a new store, or adopts the one there, and marks it */
int retl_state_start_over(const char *path, struct retl_err *err);

/* 0 while the path still names the file opened; -1 (err code 2) when it
 * was deleted, replaced or truncated since.  retl_state_commit calls it. */
int retl_state_check_file(retl_state *st, struct retl_err *err);

/*
 * An observer: the daemon's short look at a store another process writes
 * (its /metrics and /healthz, its claims).  The file must exist; nothing is
 * created or migrated, and a busy writer is waited for 2 s at most.  Only
 * the reports (retl_state_runs, _failures, _stats_read), the claims and
 * retl_state_probe_writable may be used on it; retl_state_close closes it.
 */
int retl_state_open_observer(retl_state **out, const char *path,
			     struct retl_err *err);
/* 0 when a write transaction could begin now (none is left open); else
 * -1 and "state store P is not writable: <why>" */
int retl_state_probe_writable(retl_state *st, struct retl_err *err);

/*
 * One run per sync at a time.  The lock dies with the process (a killed run
 * never leaves a stale lock).  Held: err code 2, "sync X is already running
 * (pid N)".  Taking it marks the sync's runs still "running" as
 * "abandoned": whoever holds the lock is the only one that can run the
 * sync, so a run left "running" has lost its process (kill -9, a second
 * signal, a power loss).
 */
int retl_state_lock(retl_state *st, const char *sync, struct retl_err *err);
void retl_state_unlock(retl_state *st, const char *sync);
/* 1 when some process holds the sync's lock now, 0 when none does, -1 when
 * it cannot tell (the lock file cannot be read).  Only tests the lock:
 * never takes it, never blocks, never creates the file. */
int retl_state_lock_held(retl_state *st, const char *sync);

/*
 * Claims (state_claims.c): several `retl daemon` workers share one store,
 * and each due run of a sync is claimed by exactly one of them.  The store
 * keeps each sync's next due time (UTC milliseconds) and the schedule and
 * worker that set it.  Usable on an observer handle too.
 *
 * retl_state_claim: the worker `owner` whose own timer says the sync is
 * due at `now` takes that due time, in one atomic statement, if nobody
 * took it first: 1 (won: the stored next due time is now `next`), 0 (lost:
 * *stored is the next due time another worker stored), -1 on error.
 *
 * retl_state_claim_plan: when a worker (re)plans a sync.  1 with *due set
 * when the store holds a due time set under the same schedule (the
 * worker adopts it); 0 when it holds none or one set under another
 * schedule, which is moved earlier to `mine` if it is later (a shortened
 * schedule takes effect at once, as with one daemon), never later.
 */
int retl_state_claim(retl_state *st, const char *sync, const char *schedule,
		     const char *owner, int64_t now, int64_t next,
		     int64_t *stored, struct retl_err *err);
int retl_state_claim_plan(retl_state *st, const char *sync,
			  const char *schedule, int64_t mine, int64_t *due,
			  struct retl_err *err);

/* the sync's cache, every row: kh, pay, src, status; cached = 1 */
/*
 * An unnamed file beside the store for a run's spool (spool.h): created
 * 0600 as "<db>.<sync>.spool-XXXXXX" and unlinked at once, so nothing is
 * left behind however the run ends.  NULL with err (exit 6) on failure.
 */
FILE *retl_state_spool_file(retl_state *st, const char *sync, struct retl_err *err);

/*
 * The sync's state generation: a new random value with every transaction
 * that changes its rows, 0 for a sync never written.  A plan file records
 * it, and `retl apply` refuses a plan whose state moved since.
 */
uint64_t retl_state_generation(retl_state *st, const char *sync);

int retl_state_load_cache(retl_state *st, const char *sync, retl_cache **out,
			  struct retl_err *err);

/*
 * From now on, every committed write to the sync's rows through st is
 * applied to c too (state_mirror.c), so retl_state_save_image writes the
 * image from c instead of reading the table back.  c stays the caller's;
 * NULL detaches (retl_state_save_image and retl_state_close detach too).
 */
void retl_state_mirror(retl_state *st, const char *sync, retl_cache *c);
/*
 * Writes the sync's cache image (cache.h) unless the one on disk is current.
 * Called at the end of a run, under the sync's lock, so the next run's
 * load_cache is one read.  A failure costs only speed.
 */
int retl_state_save_image(retl_state *st, const char *sync, struct retl_err *err);
/* the same from the mirror only: 1 (nothing written) when it cannot be
 * used, so the caller can free its cache before retl_state_save_image
 * reads the table into another */
int retl_state_save_mirror(retl_state *st, const char *sync, struct retl_err *err);

/* one transaction per batch */
int retl_state_begin(retl_state *st, struct retl_err *err);
int retl_state_commit(retl_state *st, struct retl_err *err);
void retl_state_rollback(retl_state *st);

struct retl_state_rec {
	const char *key;         /* key text, as the sync engine renders it */
	retl_h128 kh;
	retl_h128 pay;
	uint64_t src;
	const char *dest_id;     /* NULL keeps the stored one */
	const char *reason;      /* for retl_state_fail */
	const char *match;       /* the match value sent (NULL: none) */
	uint64_t mh;             /* its retl_match_hash */
	int orphans;             /* records the key leaves become orphans
				  * (mirror runs remove them) */
	int exact;               /* the destination compares match values
				  * exactly (else ASCII case is ignored) */
	int64_t run_id;          /* retl_state_ack: the run acknowledging */
	int change;              /* and its kind of change (0 added,
				  * 1 changed, 2 retried) */
	int fresh;               /* retl_state_ack: the caller believes the
				  * key has no row yet (tried as a plain
				  * INSERT first; a row there is updated) */
};

/*
 * acknowledged: status OK, hashes, dest_id and the bound match set,
 * attempts 0, error cleared, nothing outstanding.  With r->orphans, a
 * record the key leaves (its bound record when the match value moved, and
 * one an unacknowledged send may have made under another match value)
 * becomes an orphan first.  When the match value moved, dest_id is the
 * new record's (NULL when none was given).
 */
int retl_state_ack(retl_state *st, const char *sync,
		   const struct retl_state_rec *r, struct retl_err *err);
/* rejected: status FAILED, attempts + 1, last_error = reason; the stored
 * payload hash is kept (inserted with none when the key is new) and the
 * source hash cleared so the row is mapped and retried next run */
int retl_state_fail(retl_state *st, const char *sync,
		    const struct retl_state_rec *r, struct retl_err *err);
/* same payload under a new source row: only the source hash moves */
int retl_state_set_src(retl_state *st, const char *sync,
		       const struct retl_state_rec *r, struct retl_err *err);
/*
 * Before an operation with a payload is handed over: a record may exist
 * from now on, under r->match (a new key is stored PENDING).  With
 * r->orphans, a record an earlier unacknowledged send may have made under
 * another match value becomes an orphan.
 */
int retl_state_sent(retl_state *st, const char *sync,
		    const struct retl_state_rec *r, struct retl_err *err);
/* create intent before an insert is sent (status PENDING) */
int retl_state_pending(retl_state *st, const char *sync,
		       const struct retl_state_rec *r, struct retl_err *err);
/* the row left the model (and its removal, if any, was acknowledged) */
int retl_state_forget(retl_state *st, const char *sync, const char *key,
		      struct retl_err *err);
/*
 * Deferred rows (a destination that reports outcomes later, e.g. a bulk
 * job).  stage: status STAGED; the acknowledged payload hash is kept, r's
 * pay and src wait beside it with the caller's `op` (its kind of change).
 * staged: 1 and *op when key is staged, 0 when not, -1 on error.
 * unstage (ok): the staged hashes advance, status OK, dest_id set when
 * given; (!ok): FAILED like retl_state_fail with reason.  A key that is
 * not staged is left alone.
 */
int retl_state_stage(retl_state *st, const char *sync,
		     const struct retl_state_rec *r, int op, struct retl_err *err);
int retl_state_staged(retl_state *st, const char *sync, const char *key,
		      int *op, struct retl_err *err);
int retl_state_unstage(retl_state *st, const char *sync, const char *key,
		       int ok, const char *dest_id, const char *reason,
		       int64_t run_id, struct retl_err *err);
/* rows of a sync still staged */
long retl_state_count_staged(retl_state *st, const char *sync);
/* a destination's durable per-sync note (malloc'd, or NULL); set with
 * value NULL deletes it.  Outside a transaction: committed at once. */
char *retl_state_note_get(retl_state *st, const char *sync, const char *name);
int retl_state_note_set(retl_state *st, const char *sync, const char *name,
			const char *value, struct retl_err *err);

/* the stored destination id of key, malloc'd, or NULL */
char *retl_state_dest_id(retl_state *st, const char *sync, const char *key);

/* a cached row as the removal scan reads it */
struct retl_state_row {
	const char *key;
	retl_h128 kh;
	const char *dest_id;     /* the bound record's id, or NULL */
	const char *match;       /* the bound record's match value, or NULL */
	const char *sent_match;  /* a record an unacknowledged send may have
				  * made, or NULL */
};
/* every cached row of a sync */
typedef int (*retl_state_row_fn)(void *ud, const struct retl_state_row *row);
int retl_state_scan(retl_state *st, const char *sync, retl_state_row_fn fn,
		    void *ud, struct retl_err *err);

/*
 * Orphans: records at the destination no key is bound to any more (a
 * key's match value moved, or an unacknowledged send under an old match
 * value).  Mirror runs remove them; done deletes one (removed, or bound to
 * a key again), fail counts an attempt.
 */
struct retl_state_orphan {
	const char *match;
	const char *dest_id;     /* NULL when only the match value is known */
	int attempts;
};
typedef int (*retl_state_orphan_fn)(void *ud, const struct retl_state_orphan *o);
int retl_state_orphans(retl_state *st, const char *sync, retl_state_orphan_fn fn,
		       void *ud, struct retl_err *err);
int retl_state_orphan_add(retl_state *st, const char *sync, const char *match,
			  const char *dest_id, struct retl_err *err);
int retl_state_orphan_done(retl_state *st, const char *sync, const char *match,
			   struct retl_err *err);
int retl_state_orphan_fail(retl_state *st, const char *sync, const char *match,
			   const char *reason, struct retl_err *err);

/* forget every cached row of a sync (retl reset) */
int retl_state_reset(retl_state *st, const char *sync, struct retl_err *err);

/* requests spent on a destination on a UTC day ("2026-11-25"), across runs */
long retl_state_api_used(retl_state *st, const char *dest, const char *day);
int retl_state_api_add(retl_state *st, const char *dest, const char *day,
		       long calls, struct retl_err *err);

struct retl_run_counts {
	long read, added, changed, unchanged, retried, removed;
	long rejected;           /* by the mapping / keys, before sending */
	long failed;             /* rejected by the destination */
	long api_calls, retries, http_429;
};

/*
 * A run's status, in the runs table, `retl status`, `history`, the JSON
 * log and /metrics (README "Run statuses" says what each means):
 *   running        the run is going (or its process died unnoticed yet)
 *   ok             completed, every row synced (exit 0)
 *   rows rejected  completed; some rows not synced: rejected by the
 *                  mapping or the destination, or a bulk outcome still
 *                  waiting (exit 1)
 *   interrupted    asked to stop (a signal, the daemon's shutdown): what
 *                  was in flight was committed, the rest waits (exit 1)
 *   failed         stopped by an error or a safety limit, or completed
 *                  with rows the destination never answered (exit >= 2)
 *   abandoned      its process was gone; ended_at is when that was
 *                  noticed (the next holder of the lock), no exit code
 */
#define RETL_RUN_RUNNING "running"
#define RETL_RUN_OK "ok"
#define RETL_RUN_REJECTED "rows rejected"
#define RETL_RUN_INTERRUPTED "interrupted"
#define RETL_RUN_FAILED "failed"
#define RETL_RUN_ABANDONED "abandoned"

/* outcomes: "added" "changed" "retried" "removed" "rejected" "failed" */
int retl_state_run_begin(retl_state *st, const char *sync, int64_t *run_id,
			 struct retl_err *err);
/* the run was given `--allow-removals n` (recorded at once: a run killed
 * later still shows it in its history) */
int retl_state_run_allow(retl_state *st, int64_t run_id, long n,
			 struct retl_err *err);
int retl_state_outcome(retl_state *st, int64_t run_id, const char *key,
		       const char *outcome, const char *reason,
		       struct retl_err *err);
/* status: one of RETL_RUN_* other than running and abandoned */
int retl_state_run_end(retl_state *st, int64_t run_id, const char *status,
		       int exit_code, const struct retl_run_counts *c,
		       const char *message, struct retl_err *err);

struct retl_run_rec {
	int64_t id;
	const char *sync;
	const char *started;     /* ISO 8601 UTC */
	const char *ended;       /* NULL while running */
	const char *status;      /* RETL_RUN_*; a "running" run whose lock
				  * nobody holds is reported "abandoned"
				  * (ended NULL) before it is recorded so */
	int exit_code;           /* -1: none (running, abandoned) */
	double seconds;
	struct retl_run_counts c;
	const char *message;
	long allow_removals;     /* --allow-removals N given, else -1 */
};
/* newest first; sync NULL = the last run of every sync */
typedef int (*retl_state_run_fn)(void *ud, const struct retl_run_rec *r);
int retl_state_runs(retl_state *st, const char *sync, int limit,
		    retl_state_run_fn fn, void *ud, struct retl_err *err);

struct retl_failure_rec {
	const char *key;         /* NULL for rows rejected without a key */
	const char *outcome;     /* "failed", "pending", "staged", "rejected" */
	int attempts;
	const char *reason;
	const char *since;       /* first failure, ISO 8601 */
	const char *last;        /* last attempt */
};
/*
 * Every row of a sync that is not synced, with its reason, by key in
 * three parts: cache rows FAILED; rows a finished run left PENDING (a
 * create whose answer never came) or STAGED (a deferred outcome never
 * read), with the key's latest "failed" outcome as the reason; then the
 * latest finished run's rejections that have no such cache row (null or
 * duplicate keys, mapping errors).  retl_sync_stats.failing counts the
 * same rows.
 */
typedef int (*retl_state_failure_fn)(void *ud, const struct retl_failure_rec *r);
int retl_state_failures(retl_state *st, const char *sync,
			retl_state_failure_fn fn, void *ud, struct retl_err *err);

struct retl_status_count {
	char *status;
	long n;
};

/* a sync's figures over its finished runs (status other than "running";
 * a run killed mid-way is counted once recorded "abandoned") */
struct retl_sync_stats {
	char *sync;
	struct retl_status_count *runs;  /* finished runs by status, in
					  * status order */
	size_t nruns;
	struct retl_run_counts c;  /* totals; read is not summed (0) */
	long failing;              /* rows retl_state_failures lists now */
	double last_success;       /* UTC seconds at the end of the last run
				    * that completed (ok or rows rejected);
				    * < 0 none */
	double last_duration;      /* seconds of the last finished run
				    * (abandoned ones have none); < 0 none */
};

/* owned by the caller: retl_state_stats_free */
struct retl_state_stats {
	struct retl_sync_stats *s;     /* in the order of their names */
	size_t n;
};

/* every sync the store has runs or failing rows of, read in one snapshot;
 * on error *out is empty */
int retl_state_stats_read(retl_state *st, struct retl_state_stats *out,
			  struct retl_err *err);
void retl_state_stats_free(struct retl_state_stats *stats);

/*
 * Point reads for "diff": "warehouse" (state_whdiff.c), where a run looks
 * at the rows of the keys the warehouse returned, never the whole cache.
 * entry: 1 and *e (as retl_state_load_cache would give it) and, unless
 * dest_id is NULL, *dest_id (malloc'd, or NULL), 0 when the key has no
 * row, -1.  row: fn with the row as retl_state_scan gives it
 * (fn's value returned), 0 without calling fn when there is none.
 */
typedef struct retl_state_lookup retl_state_lookup;
int retl_state_lookup_new(retl_state *st, const char *sync,
			  retl_state_lookup **out, struct retl_err *err);
void retl_state_lookup_free(retl_state_lookup *l);
int retl_state_lookup_entry(retl_state_lookup *l, const char *key,
			    struct retl_cache_entry *e, char **dest_id,
			    struct retl_err *err);
int retl_state_lookup_row(retl_state_lookup *l, const char *key,
			  retl_state_row_fn fn, void *ud, struct retl_err *err);
/* keys of the rows failing, pending or staged (few, indexed) */
int retl_state_unsynced_keys(retl_state *st, const char *sync,
			     void (*fn)(void *ud, const char *key), void *ud,
			     struct retl_err *err);
/* the sync's cache rows (0 on error: a sizing figure); any: 1 when it
 * has one, without counting them all */
long retl_state_count_rows(retl_state *st, const char *sync, int any);

#endif
