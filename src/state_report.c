/*
 * state_report.c - the run history in the state store: run records, per-row
 * outcomes, and the reports read from them (retl status, history,
 * failures).  See state.h; the store itself is state.c.
 *
 * Outcomes are kept for a sync's OUTCOME_RUNS_KEPT latest runs only (pruned
 * when a run begins); run records are kept forever (one small row a run).
 *
 * Report callbacks run while the query steps: the strings they are given
 * last only for the call, and they must not write to the store.  A non-zero
 * return stops the report and is returned.
 */
#include "state.h"
#include "state_int.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define OUTCOME_RUNS_KEPT 20

int retl_state_outcome(retl_state *st, int64_t run_id, const char *key,
		       const char *outcome, const char *reason,
		       struct retl_err *err)
{
	sqlite3_stmt *s = st->stmt[S_OUTCOME];

	sqlite3_bind_int64(s, 1, run_id);
	retl_state__bind_text(s, 2, key);
	retl_state__bind_text(s, 3, outcome);
	retl_state__bind_text(s, 4, reason);
	return retl_state__done(st, s, err);
}

/* ---- run records ---- */

int retl_state_run_begin(retl_state *st, const char *sync, int64_t *run_id,
			 struct retl_err *err)
{
	sqlite3_stmt *s = NULL;
	struct run_clock *rc;
	int64_t id;

	if (retl_state__exec(st, "SAVEPOINT run_begin", err) < 0)
		return -1;
	if (retl_state__prepare(st, "INSERT INTO runs(sync, started_at, "
				"status) VALUES(?1, ?2, 'running')",
				&s, err) < 0)
		goto fail;
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, retl_state__now(st));
	if (retl_state__done(st, s, err) < 0)
		goto fail;
	id = sqlite3_last_insert_rowid(st->db);
	sqlite3_finalize(s);
	/* outcomes are kept for the sync's latest runs only */
	if (retl_state__prepare(st, "DELETE FROM outcomes WHERE run_id IN "
				"(SELECT id FROM runs WHERE sync = ?1 ORDER BY "
				"id DESC LIMIT -1 OFFSET ?2)", &s, err) < 0)
		goto fail;
	retl_state__bind_text(s, 1, sync);
	sqlite3_bind_int(s, 2, OUTCOME_RUNS_KEPT);
	if (retl_state__done(st, s, err) < 0)
		goto fail;
	sqlite3_finalize(s);
	if (retl_state__exec(st, "RELEASE run_begin", err) < 0) {
		s = NULL;
		goto fail;
	}
	st->clocks = retl_realloc(st->clocks,
				  (st->nclocks + 1) * sizeof(*st->clocks));
	rc = &st->clocks[st->nclocks++];
	rc->id = id;
	clock_gettime(CLOCK_MONOTONIC, &rc->start);
	*run_id = id;
	return 0;
fail:
	sqlite3_finalize(s);
	sqlite3_exec(st->db, "ROLLBACK TO run_begin; RELEASE run_begin",
		     NULL, NULL, NULL);
	return -1;
}

/* seconds since run_begin on the monotonic clock, < 0 when not ours */
static double run_seconds(retl_state *st, int64_t run_id)
{
	struct timespec now;
	size_t i;
	double secs;

	for (i = 0; i < st->nclocks; i++)
		if (st->clocks[i].id == run_id)
			break;
	if (i == st->nclocks)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - st->clocks[i].start.tv_sec) +
	       (double)(now.tv_nsec - st->clocks[i].start.tv_nsec) / 1e9;
	st->clocks[i] = st->clocks[--st->nclocks];
	return secs;
}

int retl_state_run_end(retl_state *st, int64_t run_id, const char *status,
		       int exit_code, const struct retl_run_counts *c,
		       const char *message, struct retl_err *err)
{
	static const struct retl_run_counts zero;
	sqlite3_stmt *s;
	double secs = run_seconds(st, run_id);
	int rc;

	if (!c)
		c = &zero;
	/* a run begun by another handle: time it by the wall clock */
	if (retl_state__prepare(st, "UPDATE runs SET ended_at = ?2, "
				"status = ?3, exit_code = ?4, seconds = "
				"COALESCE(?5, (julianday(?2) - "
				"julianday(started_at)) * 86400.0), "
				"read = ?6, added = ?7, changed = ?8, "
				"unchanged = ?9, retried = ?10, removed = ?11, "
				"rejected = ?12, failed = ?13, api_calls = ?14, "
				"retries = ?15, http_429 = ?16, message = ?17 "
				"WHERE id = ?1", &s, err) < 0)
		return -1;
	sqlite3_bind_int64(s, 1, run_id);
	retl_state__bind_text(s, 2, retl_state__now(st));
	retl_state__bind_text(s, 3, status);
	sqlite3_bind_int(s, 4, exit_code);
	if (secs >= 0)
		sqlite3_bind_double(s, 5, secs);
	sqlite3_bind_int64(s, 6, c->read);
	sqlite3_bind_int64(s, 7, c->added);
	sqlite3_bind_int64(s, 8, c->changed);
	sqlite3_bind_int64(s, 9, c->unchanged);
	sqlite3_bind_int64(s, 10, c->retried);
	sqlite3_bind_int64(s, 11, c->removed);
	sqlite3_bind_int64(s, 12, c->rejected);
	sqlite3_bind_int64(s, 13, c->failed);
	sqlite3_bind_int64(s, 14, c->api_calls);
	sqlite3_bind_int64(s, 15, c->retries);
	sqlite3_bind_int64(s, 16, c->http_429);
	retl_state__bind_text(s, 17, message);
	rc = retl_state__done(st, s, err);
	sqlite3_finalize(s);
	if (!rc && !sqlite3_changes(st->db))
		return retl_err_set(err, RETL_EXIT_USAGE, "state store %s: no "
				    "run %lld", st->path, (long long)run_id);
	return rc;
}

#define RUN_COLS "SELECT id, sync, started_at, ended_at, status, " \
	"exit_code, seconds, read, added, changed, unchanged, retried, " \
	"removed, rejected, failed, api_calls, retries, http_429, message " \
	"FROM runs "

static const char *col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

static void run_rec(sqlite3_stmt *s, struct retl_run_rec *r)
{
	long *counts[] = {
		&r->c.read, &r->c.added, &r->c.changed, &r->c.unchanged,
		&r->c.retried, &r->c.removed, &r->c.rejected, &r->c.failed,
		&r->c.api_calls, &r->c.retries, &r->c.http_429,
	};
	size_t i;

	r->id = sqlite3_column_int64(s, 0);
	r->sync = col_text(s, 1);
	r->started = col_text(s, 2);
	r->ended = col_text(s, 3);
	r->status = col_text(s, 4);
	r->exit_code = sqlite3_column_int(s, 5);
	r->seconds = sqlite3_column_double(s, 6);
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		*counts[i] = (long)sqlite3_column_int64(s, 7 + (int)i);
	r->message = col_text(s, 18);
}

/* sync NULL: the latest run of every sync, in the order of their names */
int retl_state_runs(retl_state *st, const char *sync, int limit,
		    retl_state_run_fn fn, void *ud, struct retl_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (retl_state__prepare(st, sync ?
				RUN_COLS "WHERE sync = ?1 ORDER BY id DESC "
				"LIMIT ?2" :
				RUN_COLS "WHERE id IN (SELECT max(id) FROM runs "
				"GROUP BY sync) ORDER BY sync LIMIT ?2",
				&s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
	for (;;) {
		struct retl_run_rec r;

		rc = sqlite3_step(s);
		if (rc == SQLITE_DONE) {
			rc = 0;
			break;
		}
		if (rc != SQLITE_ROW) {
			rc = retl_state__db_err(st, err);
			break;
		}
		run_rec(s, &r);
		if ((rc = fn(ud, &r)))
			break;
	}
	sqlite3_finalize(s);
	return rc;
}

/* the rows of one failures query, fed to fn; rejected = from outcomes */
static int failure_rows(retl_state *st, sqlite3_stmt *s, int rejected,
			retl_state_failure_fn fn, void *ud,
			struct retl_err *err)
{
	int rc;

	for (;;) {
		struct retl_failure_rec r;

		rc = sqlite3_step(s);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW)
			return retl_state__db_err(st, err);
		r.key = col_text(s, 0);
		r.outcome = rejected ? "rejected" : "failed";
		r.attempts = sqlite3_column_int(s, 1);
		r.reason = col_text(s, 2);
		r.since = col_text(s, 3);
		r.last = col_text(s, 4);
		if ((rc = fn(ud, &r)))
			return rc;
	}
}

/*
 * Rows failing now (cache status FAILED) by key, then the rejections of the
 * sync's latest finished run that have no failing cache row: rows the
 * mapping refused or whose key was null or duplicated never reach the
 * destination, so the outcome log is their only trace.
 */
int retl_state_failures(retl_state *st, const char *sync,
			retl_state_failure_fn fn, void *ud,
			struct retl_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (retl_state__prepare(st, "SELECT key, attempts, last_error, "
				"first_failed_at, updated_at FROM cache "
				"WHERE sync = ?1 AND status = 2 ORDER BY key",
				&s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	rc = failure_rows(st, s, 0, fn, ud, err);
	sqlite3_finalize(s);
	if (rc)
		return rc;
	if (retl_state__prepare(st, "SELECT o.key, 1, o.reason, r.started_at, "
				"r.started_at FROM runs r JOIN outcomes o ON "
				"o.run_id = r.id WHERE r.id = (SELECT id FROM "
				"runs WHERE sync = ?1 AND ended_at IS NOT NULL "
				"ORDER BY id DESC LIMIT 1) AND o.outcome = "
				"'rejected' AND (o.key IS NULL OR NOT EXISTS "
				"(SELECT 1 FROM cache c WHERE c.sync = ?1 AND "
				"c.key = o.key AND c.status = 2)) "
				"ORDER BY o.rowid", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	rc = failure_rows(st, s, 1, fn, ud, err);
	sqlite3_finalize(s);
	return rc;
}
