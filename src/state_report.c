/*
 * state_report.c - the run history in the state store: run records, per-row
 * outcomes, and the reports read from them (retl status, history,
 * failures, and the per-sync figures of the daemon's /metrics).  See
 * state.h; the store itself is state.c.
 *
 * Outcomes are kept for a sync's OUTCOME_RUNS_KEPT latest runs only (pruned
 * when a run begins); run records are kept forever (one small row a run).
 *
 * A run whose process died stays "running" until the next holder of the
 * sync's lock records it "abandoned" (retl_state__abandon_runs).  Until
 * then the reports tell it from a live run by the lock: nobody holds it,
 * and the row still says "running" after that was seen (a run records its
 * end before it unlocks, so a live run cannot pass that test).  The reports
 * only read: they show such a run "abandoned" without writing it.
 *
 * Report callbacks run while the query steps: the strings they are given
 * last only for the call, and they must not write to the store.  A non-zero
 * return stops the report and is returned.
 */
#include "state.h"
#include "state_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#define OUTCOME_RUNS_KEPT 20

int retl_state_outcome(retl_state *st, int64_t run_id, const char *key,
		       const char *outcome, const char *reason,
		       struct retl_err *err)
{
	retl_db_stmt *s = st->stmt[S_OUTCOME];

	retl_db_bind_int64(s, 1, run_id);
	retl_state__bind_text(s, 2, key);
	retl_state__bind_text(s, 3, outcome);
	retl_state__bind_text(s, 4, reason);
	return retl_state__done(st, s, err);
}

/* ---- run records ---- */

int retl_state_run_begin(retl_state *st, const char *sync, int64_t *run_id,
			 struct retl_err *err)
{
	retl_db_stmt *s = NULL;
	struct run_clock *rc;
	int64_t id = 0;
	/* PostgreSQL has savepoints only inside a transaction */
	int own = !retl_db_in_txn(st->db);

	if (retl_state__exec(st, own ? "BEGIN" : "SAVEPOINT run_begin", err) < 0)
		return -1;
	if (retl_state__prepare(st, "INSERT INTO runs(sync, started_at, "
				"status) VALUES(?1, ?2, '" RETL_RUN_RUNNING "') "
				"RETURNING id", &s, err) < 0)
		goto fail;
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, retl_state__now(st));
	if (retl_db_step(s) == RETL_DB_ROW)
		id = retl_db_col_int64(s, 0);
	else
		retl_state__db_err(st, err);
	retl_db_finalize(s);
	s = NULL;
	if (!id)
		goto fail;
	/* outcomes are kept for the sync's latest runs only */
	/* ... and those of runs whose sync logs are not yet written to the
	 * warehouse (state_audit.c), which read them */
	if (retl_state__prepare(st, "DELETE FROM outcomes WHERE run_id IN "
				"(SELECT id FROM runs WHERE sync = ?1 AND id <= "
				"(SELECT id FROM runs WHERE sync = ?1 ORDER BY "
				"id DESC LIMIT 1 OFFSET ?2)) AND run_id NOT IN "
				"(SELECT id FROM runs WHERE sync = ?1 AND "
				"audited = 0)", &s, err) < 0)
		goto fail;
	retl_state__bind_text(s, 1, sync);
	retl_db_bind_int(s, 2, OUTCOME_RUNS_KEPT);
	if (retl_state__done(st, s, err) < 0)
		goto fail;
	retl_db_finalize(s);
	s = NULL;
	if (retl_state__exec(st, own ? "COMMIT" : "RELEASE run_begin", err) < 0)
		goto fail;
	st->clocks = retl_realloc(st->clocks,
				  (st->nclocks + 1) * sizeof(*st->clocks));
	rc = &st->clocks[st->nclocks++];
	rc->id = id;
	clock_gettime(CLOCK_MONOTONIC, &rc->start);
	*run_id = id;
	return 0;
fail:
	retl_db_finalize(s);
	retl_db_exec(st->db, own ? "ROLLBACK" :
		     "ROLLBACK TO run_begin; RELEASE run_begin");
	return -1;
}

int retl_state_run_allow(retl_state *st, int64_t run_id, long n,
			 struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	if (retl_state__prepare(st, "UPDATE runs SET allow_removals = ?2 "
				"WHERE id = ?1", &s, err) < 0)
		return -1;
	retl_db_bind_int64(s, 1, run_id);
	retl_db_bind_int64(s, 2, n);
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	return rc;
}

/*
 * Called with the sync's lock just taken: no process of the sync's runs
 * can still be going.  ended_at is the moment of noticing, which may be
 * long after the process died: the message says so, and no exit code or
 * duration is made up.  last_pid: the lock file's previous holder (0:
 * unknown), which is the dead run's process unless a run was begun
 * without the lock.
 */
int retl_state__abandon_runs(retl_state *st, const char *sync, long last_pid,
			     struct retl_err *err)
{
	retl_db_stmt *s;
	retl_buf m = RETL_BUF_INIT;
	int rc;

	retl_buf_addf(&m, "abandoned: the run's process");
	if (last_pid > 0)
		retl_buf_addf(&m, " (pid %ld, the lock's last holder)", last_pid);
	retl_buf_addf(&m, " was gone when pid %ld took the sync's lock; the "
		      "end time is when that was noticed, not when the run "
		      "ended. Acknowledged rows were kept; the next run sends "
		      "the rest", (long)getpid());
	if (retl_state__prepare(st, "UPDATE runs SET status = '"
				RETL_RUN_ABANDONED "', ended_at = ?2, "
				"exit_code = NULL, seconds = NULL, message = ?3 "
				"WHERE sync = ?1 AND status = '"
				RETL_RUN_RUNNING "'", &s, err) < 0) {
		retl_buf_free(&m);
		return -1;
	}
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, retl_state__now(st));
	retl_state__bind_text(s, 3, retl_buf_cstr(&m));
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	retl_buf_free(&m);
	return rc;
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

/* an ISO 8601 UTC time as retl_state__now writes it, in seconds; < 0
 * when it is not one */
static double iso_seconds(const char *t)
{
	struct tm tm;
	int ms = 0;

	memset(&tm, 0, sizeof(tm));
	if (!t || sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year,
			 &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			 &tm.tm_sec, &ms) < 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (double)timegm(&tm) + ms / 1000.0;
}

/* seconds from the run's recorded start to now, < 0 unknown (SQL date
 * functions differ between SQLite and PostgreSQL: computed here) */
static double wall_seconds(retl_state *st, int64_t run_id)
{
	retl_db_stmt *s;
	double secs = -1;

	if (retl_db_prepare(st->db, "SELECT started_at FROM runs WHERE id = ?1",
			    &s) < 0)
		return -1;
	retl_db_bind_int64(s, 1, run_id);
	if (retl_db_step(s) == RETL_DB_ROW) {
		double a = iso_seconds(retl_db_col_text(s, 0));
		double b = iso_seconds(retl_state__now(st));
		if (a >= 0 && b >= 0)
			secs = b - a;
	}
	retl_db_finalize(s);
	return secs;
}

int retl_state_run_end(retl_state *st, int64_t run_id, const char *status,
		       int exit_code, const struct retl_run_counts *c,
		       const char *message, struct retl_err *err)
{
	static const struct retl_run_counts zero;
	retl_db_stmt *s;
	double secs = run_seconds(st, run_id);
	int rc;

	if (!c)
		c = &zero;
	/* a run begun by another handle: time it by the wall clock */
	if (secs < 0)
		secs = wall_seconds(st, run_id);
	if (retl_state__prepare(st, "UPDATE runs SET ended_at = ?2, "
				"status = ?3, exit_code = ?4, seconds = ?5, "
				"read = ?6, added = ?7, changed = ?8, "
				"unchanged = ?9, retried = ?10, removed = ?11, "
				"rejected = ?12, failed = ?13, api_calls = ?14, "
				"retries = ?15, http_429 = ?16, message = ?17 "
				"WHERE id = ?1", &s, err) < 0)
		return -1;
	retl_db_bind_int64(s, 1, run_id);
	retl_state__bind_text(s, 2, retl_state__now(st));
	retl_state__bind_text(s, 3, status);
	retl_db_bind_int(s, 4, exit_code);
	if (secs >= 0)
		retl_db_bind_double(s, 5, secs);
	else
		retl_db_bind_null(s, 5);
	retl_db_bind_int64(s, 6, c->read);
	retl_db_bind_int64(s, 7, c->added);
	retl_db_bind_int64(s, 8, c->changed);
	retl_db_bind_int64(s, 9, c->unchanged);
	retl_db_bind_int64(s, 10, c->retried);
	retl_db_bind_int64(s, 11, c->removed);
	retl_db_bind_int64(s, 12, c->rejected);
	retl_db_bind_int64(s, 13, c->failed);
	retl_db_bind_int64(s, 14, c->api_calls);
	retl_db_bind_int64(s, 15, c->retries);
	retl_db_bind_int64(s, 16, c->http_429);
	retl_state__bind_text(s, 17, message);
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	if (!rc && !retl_db_changes(st->db))
		return retl_err_set(err, RETL_EXIT_USAGE, "state store %s: no "
				    "run %lld", st->path, (long long)run_id);
	return rc;
}

#define RUN_COLS RETL_STATE_RUN_COLS

static const char *col_text(retl_db_stmt *s, int i)
{
	return retl_db_col_text(s, i);
}

void retl_state__run_rec(retl_db_stmt *s, struct retl_run_rec *r)
{
	long *counts[] = {
		&r->c.read, &r->c.added, &r->c.changed, &r->c.unchanged,
		&r->c.retried, &r->c.removed, &r->c.rejected, &r->c.failed,
		&r->c.api_calls, &r->c.retries, &r->c.http_429,
	};
	size_t i;

	r->id = retl_db_col_int64(s, 0);
	r->sync = col_text(s, 1);
	r->started = col_text(s, 2);
	r->ended = col_text(s, 3);
	r->status = col_text(s, 4);
	r->exit_code = retl_db_col_null(s, 5) ? -1 :
		       retl_db_col_int(s, 5);
	r->seconds = retl_db_col_double(s, 6);
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		*counts[i] = (long)retl_db_col_int64(s, 7 + (int)i);
	r->message = col_text(s, 18);
	r->allow_removals = retl_db_col_null(s, 19) ? -1 :
			    (long)retl_db_col_int64(s, 19);
}

/*
 * The "running" runs (of sync, or of every sync) whose lock nobody holds,
 * read before the report's own query: a run among them that the report
 * still reads "running" (a later snapshot) lost its process.  Only outside
 * a transaction: inside one both reads would see the same snapshot.
 */
struct dead_runs {
	int64_t *id;
	size_t n;
};

static void find_dead(retl_state *st, const char *sync, struct dead_runs *d)
{
	retl_db_stmt *s;

	d->id = NULL;
	d->n = 0;
	if (retl_db_in_txn(st->db) ||
	    retl_db_prepare(st->db, "SELECT id, sync FROM runs WHERE "
			       "status = '" RETL_RUN_RUNNING "' AND (CAST(?1 AS TEXT) IS NULL "
			       "OR sync = ?1)", &s) < 0)
		return;
	retl_state__bind_text(s, 1, sync);
	while (retl_db_step(s) == RETL_DB_ROW) {
		const char *name = col_text(s, 1);

		if (!name || retl_state_lock_held(st, name) != 0)
			continue;
		d->id = retl_realloc(d->id, (d->n + 1) * sizeof(*d->id));
		d->id[d->n++] = retl_db_col_int64(s, 0);
	}
	retl_db_finalize(s);
}

/* r, still "running", shown (not recorded) abandoned when it is dead */
static void notice_dead(const struct dead_runs *d, struct retl_run_rec *r)
{
	size_t i;

	if (!r->status || strcmp(r->status, RETL_RUN_RUNNING))
		return;
	for (i = 0; i < d->n; i++)
		if (d->id[i] == r->id)
			break;
	if (i == d->n)
		return;
	r->status = RETL_RUN_ABANDONED;
	r->message = "abandoned: the run's process is gone (nothing holds "
		     "the sync's lock); the next run, apply or reset of the "
		     "sync records it";
}

/* the statement's next row: 1, 0 at its end, -1 (err set) */
static int next_row(retl_state *st, retl_db_stmt *s, struct retl_err *err)
{
	int rc = retl_db_step(s);
	if (rc == RETL_DB_ROW)
		return 1;
	if (rc == RETL_DB_DONE)
		return 0;
	return retl_state__db_err(st, err);
}

/* sync NULL: the latest run of every sync, in the order of their names */
int retl_state_runs(retl_state *st, const char *sync, int limit,
		    retl_state_run_fn fn, void *ud, struct retl_err *err)
{
	retl_db_stmt *s;
	struct dead_runs dead;
	int rc;

	find_dead(st, sync, &dead);
	if (retl_state__prepare(st, sync ?
				RUN_COLS "WHERE sync = ?1 ORDER BY id DESC "
				"LIMIT ?2" :
				RUN_COLS "WHERE id IN (SELECT max(id) FROM runs "
				"GROUP BY sync) ORDER BY sync LIMIT ?2",
				&s, err) < 0) {
		free(dead.id);
		return -1;
	}
	retl_state__bind_text(s, 1, sync);
	retl_db_bind_int64(s, 2, limit > 0 ? limit : INT64_MAX);
	while ((rc = next_row(st, s, err)) > 0) {
		struct retl_run_rec r;

		retl_state__run_rec(s, &r);
		notice_dead(&dead, &r);
		if ((rc = fn(ud, &r)))
			break;
	}
	retl_db_finalize(s);
	free(dead.id);
	return rc;
}

/*
 * What `retl failures` lists, in three parts, each by key:
 *
 *   failed    cache rows with status FAILED: the destination refused them
 *             (or gave up), the reason is on the row;
 *   pending / staged
 *             rows left over by a run that ended: a create whose answer
 *             never came keeps its intent (PENDING), a row handed to a
 *             destination that reports later and whose report never came
 *             stays STAGED.  Both are sent (or looked up) again by every
 *             run until acknowledged, so each run may count them failed
 *             while the cache never says FAILED.  "Left over" means written
 *             no later than the end of the sync's latest finished run:
 *             rows a run still going has just handed over are not
 *             failing, they are in flight.  The reason is the latest
 *             "failed" outcome of the key (the outcomes of the runs kept),
 *             else what the status means;
 *   rejected  the latest finished run's rejections that are none of the
 *             above: rows the mapping refused or whose key was null or
 *             duplicated never reach the cache, the outcome log is their
 *             only trace.
 *
 * LEFT_OVER and NOT_LISTED say it once for the list and the counts
 * (stats_sql), so `retl status` and /metrics count what is listed.  r is
 * the sync's latest finished run, c the cache row.
 */
#define LEFT_OVER "c.status IN (3, 4) AND c.updated_at <= r.ended_at"
#define NOT_LISTED "(o.key IS NULL OR NOT EXISTS (SELECT 1 FROM cache c " \
	"WHERE c.sync = r.sync AND c.key = o.key AND (c.status = 2 OR (" \
	LEFT_OVER "))))"
#define LAST_FINISHED "SELECT id, sync, started_at, ended_at FROM runs WHERE sync = ?1 " \
	"AND ended_at IS NOT NULL ORDER BY id DESC LIMIT 1"

/* failures queries return: key, outcome, attempts, reason, since, last */
static const char *const failures_sql[] = {
	"SELECT key, 'failed', attempts, last_error, first_failed_at, "
	"updated_at FROM cache WHERE sync = ?1 AND status = 2 ORDER BY key",

	/* the outcomes of the runs kept are read once, for the left-over
	 * keys only; materialized so neither side is scanned per row */
	"WITH r AS (" LAST_FINISHED "), "
	"lo AS MATERIALIZED (SELECT c.key, c.status, c.updated_at FROM cache "
	"c, r WHERE c.sync = ?1 AND " LEFT_OVER "), "
	"fo AS MATERIALIZED (SELECT o.key, count(*) AS n, min(ru.started_at) "
	"AS since, max(o.rowid) AS last FROM runs ru JOIN outcomes o ON "
	"o.run_id = ru.id WHERE ru.sync = ?1 AND o.outcome = 'failed' AND "
	"o.key IN (SELECT key FROM lo) GROUP BY o.key) "
	"SELECT lo.key, CASE lo.status WHEN 3 THEN 'pending' ELSE 'staged' "
	"END, COALESCE(fo.n, 1), COALESCE((SELECT reason FROM "
	"outcomes WHERE rowid = fo.last), CASE lo.status WHEN 3 THEN "
	"'a create was sent but no answer was recorded before the run "
	"ended; the next run looks the record up before creating it again' "
	"ELSE 'handed to the destination, but its outcome was not read "
	"before the run ended; the next run reads it or sends the row "
	"again' END), COALESCE(fo.since, lo.updated_at), lo.updated_at "
	"FROM lo LEFT JOIN fo ON fo.key = lo.key ORDER BY lo.key",

	"WITH r AS (" LAST_FINISHED ") "
	"SELECT o.key, 'rejected', 1, o.reason, r.started_at, r.started_at "
	"FROM r JOIN outcomes o ON o.run_id = r.id WHERE o.outcome = "
	"'rejected' AND " NOT_LISTED " ORDER BY o.rowid",
};

int retl_state_failures(retl_state *st, const char *sync,
			retl_state_failure_fn fn, void *ud,
			struct retl_err *err)
{
	size_t q;
	int rc = 0;

	for (q = 0; q < sizeof(failures_sql) / sizeof(failures_sql[0]) && !rc;
	     q++) {
		retl_db_stmt *s;

		if (retl_state__prepare(st, failures_sql[q], &s, err) < 0)
			return -1;
		retl_state__bind_text(s, 1, sync);
		while ((rc = next_row(st, s, err)) > 0) {
			struct retl_failure_rec r;

			r.key = col_text(s, 0);
			r.outcome = col_text(s, 1);
			r.attempts = retl_db_col_int(s, 2);
			r.reason = col_text(s, 3);
			r.since = col_text(s, 4);
			r.last = col_text(s, 5);
			if ((rc = fn(ud, &r)))
				break;
		}
		retl_db_finalize(s);
	}
	return rc;
}

/* ---- the figures of every sync (the daemon's /metrics) ---- */

enum {
	Q_RUNS, Q_SUMS, Q_SUCCESS, Q_DURATION, Q_FAILING, Q_LEFT_OVER,
	Q_REJECTED, Q_COUNT
};

/* the latest finished run of every sync, as r */
#define LAST_FINISHED_ALL "WITH lr AS (SELECT max(id) AS id FROM runs " \
	"WHERE ended_at IS NOT NULL GROUP BY sync), r AS (SELECT runs.* FROM " \
	"runs JOIN lr ON runs.id = lr.id) "

/* each query's rows start with the sync's name */
static const char *const stats_sql[Q_COUNT] = {
	[Q_RUNS] = "SELECT sync, status, count(*) FROM runs WHERE status <> "
		   "'running' GROUP BY sync, status ORDER BY sync, status",
	[Q_SUMS] = "SELECT sync, sum(added), sum(changed), sum(retried), "
		   "sum(removed), sum(unchanged), sum(rejected), "
		   "sum(failed), sum(api_calls), sum(retries), "
		   "sum(http_429) FROM runs WHERE status <> 'running' "
		   "GROUP BY sync",
	/* ISO 8601 text sorts as time; turned into seconds in C */
	[Q_SUCCESS] = "SELECT sync, max(ended_at) FROM runs WHERE status IN ('"
		      RETL_RUN_OK "', '" RETL_RUN_REJECTED "') GROUP BY sync",
	/* an abandoned run has no duration: the one before it tells */
	[Q_DURATION] = "SELECT sync, seconds FROM runs WHERE id IN (SELECT "
		       "max(id) FROM runs WHERE status NOT IN ('"
		       RETL_RUN_RUNNING "', '" RETL_RUN_ABANDONED "') GROUP BY "
		       "sync)",
	/* what retl_state_failures lists, part by part */
	[Q_FAILING] = "SELECT sync, count(*) FROM cache WHERE status = 2 "
		      "GROUP BY sync",
	[Q_LEFT_OVER] = LAST_FINISHED_ALL "SELECT r.sync, count(*) FROM r "
			"JOIN cache c ON c.sync = r.sync WHERE " LEFT_OVER
			" GROUP BY r.sync",
	[Q_REJECTED] = LAST_FINISHED_ALL "SELECT r.sync, count(*) FROM r "
		       "JOIN outcomes o ON o.run_id = r.id WHERE o.outcome = "
		       "'rejected' AND " NOT_LISTED " GROUP BY r.sync",
};

static struct retl_sync_stats *stats_get(struct retl_state_stats *sum,
					     const char *sync)
{
	struct retl_sync_stats *s;
	size_t i;

	for (i = 0; i < sum->n; i++)
		if (!strcmp(sum->s[i].sync, sync))
			return &sum->s[i];
	sum->s = retl_realloc(sum->s, (sum->n + 1) * sizeof(*sum->s));
	s = &sum->s[sum->n++];
	memset(s, 0, sizeof(*s));
	s->sync = retl_strdup(sync);
	s->last_success = -1;
	s->last_duration = -1;
	return s;
}

/* sum() of no rows is NULL, read as 0; PostgreSQL's sum of bigints is a
 * numeric, whose text is still an integer */
static long col_total(retl_db_stmt *s, int i)
{
	return (long)retl_db_col_int64(s, i);
}

static void stats_row(struct retl_state_stats *sum, int q,
			retl_db_stmt *st)
{
	const char *name = col_text(st, 0);
	struct retl_sync_stats *s;

	if (!name)
		return;
	s = stats_get(sum, name);
	switch (q) {
	case Q_RUNS:
		s->runs = retl_realloc(s->runs,
				       (s->nruns + 1) * sizeof(*s->runs));
		s->runs[s->nruns].status = retl_strdup(col_text(st, 1));
		s->runs[s->nruns++].n = (long)retl_db_col_int64(st, 2);
		break;
	case Q_SUMS:
		s->c.added = col_total(st, 1);
		s->c.changed = col_total(st, 2);
		s->c.retried = col_total(st, 3);
		s->c.removed = col_total(st, 4);
		s->c.unchanged = col_total(st, 5);
		s->c.rejected = col_total(st, 6);
		s->c.failed = col_total(st, 7);
		s->c.api_calls = col_total(st, 8);
		s->c.retries = col_total(st, 9);
		s->c.http_429 = col_total(st, 10);
		break;
	case Q_SUCCESS:
		if (!retl_db_col_null(st, 1))
			s->last_success = iso_seconds(retl_db_col_text(st, 1));
		break;
	case Q_DURATION:
		if (!retl_db_col_null(st, 1))
			s->last_duration = retl_db_col_double(st, 1);
		break;
	case Q_FAILING:
	case Q_LEFT_OVER:
	case Q_REJECTED:
		s->failing += (long)retl_db_col_int64(st, 1);
		break;
	}
}

static int by_sync(const void *a, const void *b)
{
	return strcmp(((const struct retl_sync_stats *)a)->sync,
		      ((const struct retl_sync_stats *)b)->sync);
}

/* one snapshot for every query when the caller has no transaction open */
int retl_state_stats_read(retl_state *st, struct retl_state_stats *out,
			  struct retl_err *err)
{
	int own = !retl_db_in_txn(st->db), rc = 0, q;

	memset(out, 0, sizeof(*out));
	if (own)
		retl_db_begin(st->db, RETL_DB_SNAPSHOT);
	for (q = 0; q < Q_COUNT && !rc; q++) {
		retl_db_stmt *s;
		int r;

		if (retl_db_prepare(st->db, stats_sql[q], &s) < 0) {
			rc = -1;
			break;
		}
		while ((r = retl_db_step(s)) == RETL_DB_ROW)
			stats_row(out, q, s);
		if (r != RETL_DB_DONE)
			rc = -1;
		retl_db_finalize(s);
	}
	if (rc < 0)
		retl_state__db_err(st, err);
	if (own)
		retl_db_exec(st->db, "COMMIT");
	if (rc < 0) {
		retl_state_stats_free(out);
		return -1;
	}
	qsort(out->s, out->n, sizeof(*out->s), by_sync);
	return 0;
}

void retl_state_stats_free(struct retl_state_stats *sum)
{
	size_t i, j;

	for (i = 0; i < sum->n; i++) {
		for (j = 0; j < sum->s[i].nruns; j++)
			free(sum->s[i].runs[j].status);
		free(sum->s[i].runs);
		free(sum->s[i].sync);
	}
	free(sum->s);
	sum->s = NULL;
	sum->n = 0;
}
