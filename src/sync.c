/*
 * sync.c - the sync engine: one run of one sync, phase by phase.
 *
 * A run takes the sync's lock and opens its run record, opens the source
 * and the destination, loads the sync's cache, then streams the model:
 * each row is diffed against the cache (sync_diff.c) and only new, changed
 * or previously failed rows are queued.  A full queue is sent as one batch,
 * and the destination's per-record results are committed in one state
 * transaction right after (sync_send.c): only acknowledged rows advance
 * their hash, so a run killed at any point has marked nothing unsent as
 * sent.  Rows that left the model are removed (within the safety limits)
 * or forgotten; the run ends ok, interrupted or stopped, and is recorded.
 */
#include "sync.h"
#include "audit.h"
#include "state_audit.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cache.h"
#include "destination.h"
#include "log.h"
#include "mapping.h"
#include "progress.h"
#include "source.h"
#include "stop.h"
#include "sync_int.h"
#include "testpoint.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* the flag itself is in stop.c, where the source reads it too */
void retl_sync_request_stop(void)
{
	retl_stop_request();
}

int retl_sync_stop_requested(void)
{
	return retl_stop_requested();
}

void retl_sync_clear_stop(void)
{
	retl_stop_reset();
}

/* the first safety limit `gone` removals pass, described in buf; 0: none */
static int over_limit(struct run *r, long gone, char *buf, size_t n)
{
	const struct retl_safety *s = &r->sc->safety;
	/* the warehouse diff reads only changed rows: there the model is
	 * empty when none came back and every synced key left */
	int empty = r->sum->c.read == 0 &&
		    (!r->wh || (size_t)gone >= r->cached_rows);
	if (s->refuse_empty_model && empty) {
		snprintf(buf, n, "the model returned 0 rows: refusing to remove all %ld synced rows (safety.refuse_empty_model)",
			 gone);
		return 1;
	}
	if (s->max_removed >= 0 && gone > s->max_removed) {
		snprintf(buf, n, "would remove %ld rows, over safety.max_removed (%ld) by %ld",
			 gone, s->max_removed, gone - s->max_removed);
		return 1;
	}
	if (s->max_removed_ratio >= 0 && r->cached_rows > 0) {
		double ratio = (double)gone / (double)r->cached_rows;
		if (ratio > s->max_removed_ratio) {
			snprintf(buf, n, "would remove %ld of %zu synced rows (%.1f%%), over safety.max_removed_ratio (%.1f%%) by %.1f points",
				 gone, r->cached_rows, ratio * 100,
				 s->max_removed_ratio * 100,
				 (ratio - s->max_removed_ratio) * 100);
			return 1;
		}
	}
	return 0;
}

/*
 * Safety limits, checked before any removal is sent.  `--allow-removals N`
 * lets this one run through every limit as long as it removes no more than
 * N rows (N is the operator's count of what they meant to remove, so a
 * bigger surprise still stops); the stop says the command with the count.
 */
static int check_safety(struct run *r, long gone)
{
	struct retl_sync_summary *sum = r->sum;
	long allow = r->o->allow_removals;
	char what[sizeof(sum->message) / 2];
	if (gone <= 0 || !over_limit(r, gone, what, sizeof(what)))
		return 0;
	if (allow > 0 && gone <= allow) {
		snprintf(sum->allowed, sizeof(sum->allowed), "%.200s: let through by --allow-removals %ld",
			 what, allow);
		retl_log(RETL_LOG_WARN, r->sc->name, "%s", sum->allowed);
		return 0;
	}
	char more[64] = "";
	if (allow > 0)
		snprintf(more, sizeof(more), ", more than --allow-removals %ld", allow);
	snprintf(sum->message, sizeof(sum->message),
		 "%s%s: nothing removed. If these removals are intended, let one run through: retl run %s --allow-removals %ld",
		 what, more, r->sc->name, gone);
	sum->safety_stop = 1;
	return -1;
}

/* "key: column ..." unless every key column is in cols; index in key_idx */
static int find_key_columns(struct retl_sync_cfg *sc,
			    const struct retl_column *cols, size_t ncols,
			    size_t *key_idx, struct retl_err *err)
{
	for (size_t k = 0; k < sc->nkey; k++) {
		size_t i;
		for (i = 0; i < ncols; i++)
			if (!strcmp(cols[i].name, sc->key[k]))
				break;
		if (i == ncols) {
			retl_buf l = RETL_BUF_INIT;
			for (size_t j = 0; j < ncols; j++)
				retl_buf_addf(&l, "%s%s", j ? ", " : "", cols[j].name);
			retl_err_set(err, RETL_EXIT_USAGE,
				     "%s: key: column \"%s\" is not returned by the query (columns: %s)",
				     sc->file, sc->key[k], retl_buf_cstr(&l));
			retl_buf_free(&l);
			return -1;
		}
		key_idx[k] = i;
	}
	return 0;
}

/* opens the source, checks key and match columns and binds the mapping */
static int open_source(struct retl_sync_cfg *sc, retl_source **src,
		       size_t *key_idx, uint64_t *sig, struct retl_err *err)
{
	const struct retl_column *cols;
	size_t ncols;
	int rc = retl_source_open(src, sc->src, err);
	if (rc < 0)
		return rc;  /* RETL_SOURCE_INTERRUPTED too */
	if ((rc = retl_source_describe(*src, sc->query, &cols, &ncols, err)) < 0)
		return rc;
	/* the columns' names and types, to tell whether they changed */
	*sig = ncols;
	for (size_t i = 0; i < ncols; i++) {
		*sig = retl_hash64(cols[i].name, strlen(cols[i].name) + 1, *sig);
		*sig = retl_hash64(&cols[i].oid, sizeof(cols[i].oid), *sig);
	}
	if (find_key_columns(sc, cols, ncols, key_idx, err) < 0)
		return -1;
	if (sc->match) {
		const char *field;
		json_t *col;
		json_object_foreach(sc->match, field, col) {
			size_t i;
			for (i = 0; i < ncols; i++)
				if (!strcmp(cols[i].name, json_string_value(col)))
					break;
			if (i == ncols)
				return retl_err_set(err, RETL_EXIT_USAGE,
						    "%s: match.%s: column \"%s\" is not returned by the query",
						    sc->file, field, json_string_value(col));
		}
	}
	return retl_mapping_bind(sc->mapping, cols, ncols, err);
}

int retl_sync_check(struct retl_config *cfg, struct retl_sync_cfg *sc,
		    struct retl_err *err)
{
	retl_source *src = NULL;
	size_t key_idx[16];
	uint64_t sig;
	/* secrets are read only for the syncs that connect (config.h) */
	if (retl_config_resolve(cfg, sc, err) < 0)
		return -1;
	int rc = open_source(sc, &src, key_idx, &sig, err);
	retl_source_close(src);
	if (rc < 0 || (sc->diff_warehouse && retl_whdiff_check(sc, err) < 0))
		return -1;
	if (retl_audit_check(sc->src, err) < 0)
		return -1;
	const struct retl_destination *d = retl_destination_find(sc->dst->type);
	void *ctx = NULL;
	struct retl_dest_env env = { .dir = cfg->dir, .api_budget = -1 };
	if (retl_destination_open(d, &ctx, sc->dst, sc, &env, err) < 0)
		return -1;
	rc = d->check ? d->check(ctx, err) : 0;
	d->close(ctx);
	return rc;
}

/*
 * A destination's `daily_limit` (requests a day, UTC) is counted in the
 * state store across runs and syncs: the run may spend what is left.
 */
static int api_budget(struct run *r, long *budget)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(r->day, sizeof(r->day), "%Y-%m-%d", &tm);
	json_t *lim = json_object_get(r->sc->dst->options, "daily_limit");
	if (!json_is_integer(lim))
		return 0;
	long limit = (long)json_integer_value(lim);
	long used = retl_state_api_used(r->st, r->sc->destination, r->day);
	*budget = limit - used;
	if (*budget <= 0)
		return retl_err_set(r->err, RETL_EXIT_DEST,
				    "destination %s: daily_limit of %ld requests reached "
				    "(%ld used on %s UTC); the rows wait for tomorrow's run",
				    r->sc->destination, limit, used, r->day);
	return 0;
}

/* requests, retries and 429s as the destination counted them */
static void take_stats(struct run *r)
{
	if (!r->dctx || !r->dest->stats)
		return;
	struct retl_dest_stats s = { 0 };
	r->dest->stats(r->dctx, &s);
	r->sum->c.api_calls = s.api_calls;
	r->sum->c.retries = s.retries;
	r->sum->c.http_429 = s.http_429;
}

/* ---- the phases of a run ---- */

/* how the body of a run ended: through to the end, asked to stop, failed */
enum run_end { RUN_DONE, RUN_INTERRUPTED, RUN_STOPPED };

static void run_init(struct run *r)
{
	memset(r->sum, 0, sizeof(*r->sum));
	r->t0 = now_s();
	r->status = r->sum->status = RETL_RUN_FAILED;
	r->dest = retl_destination_find(r->sc->dst->type);
	r->max_batch = r->dest->batch_of ? r->dest->batch_of(r->sc->dst) :
		       r->dest->max_batch ? r->dest->max_batch : 100;
	retl_sync_batches_init(r);
	r->seed = retl_mapping_fingerprint(r->sc->mapping);
	/* record identity: the destination fields that find a record */
	r->nmatch = r->sc->match ? json_object_size(r->sc->match) : 0;
	if (r->nmatch) {
		const char *k;
		json_t *v;
		size_t i = 0;
		r->match_targets = retl_calloc(r->nmatch, sizeof(*r->match_targets));
		json_object_foreach(r->sc->match, k, v)
			r->match_targets[i++] = k;
	}
	r->seen_match = retl_match_set_new();
	/* a key whose match value moved leaves its old record behind: in a
	 * list, that record's membership goes too */
	r->orphans = r->nmatch && retl_sync_removes(r->sc);
}

/* the sync's lock, and its run record (not for a plan) */
static int open_state(struct run *r)
{
	if (r->o->plan)
		return 0;
	if (retl_state_lock(r->st, r->sc->name, r->err) < 0)
		return -1;
	r->locked = 1;
	/* recorded before anything can fail, so `retl status` shows a run
	 * that could not connect as failing */
	if (retl_state_run_begin(r->st, r->sc->name, &r->run_id, r->err) < 0)
		return -1;
	r->run_open = 1;
	/* the run waits for its sync logs from now on, even if killed */
	if ((r->sc->src->audit ? retl_state_audit_want(r->st, r->run_id, r->err) :
	     retl_state_audit_drop(r->st, r->sc->name, r->err)) < 0)
		return -1;
	if (r->o->allow_removals > 0 &&
	    retl_state_run_allow(r->st, r->run_id, r->o->allow_removals, r->err) < 0)
		return -1;
	return 0;
}

/*
 * Opened before the cache is loaded: a destination resuming an earlier
 * run's deferred work (a bulk job) reports those rows at open, and the
 * cache this run loads is then current.
 */
static int open_destination(struct run *r)
{
	if (r->o->plan)
		return 0;
	r->env.dir = r->cfg->dir;
	r->env.api_budget = -1;
	retl_sync_env_init(r);
	if (api_budget(r, &r->env.api_budget) < 0)
		return -1;
	r->resuming = 1;
	int rc = retl_destination_open(r->dest, &r->dctx, r->sc->dst, r->sc, &r->env,
				       r->err);
	r->resuming = 0;
	return rc;
}

static int load_cache(struct run *r)
{
	if (retl_state_load_cache(r->st, r->sc->name, &r->cache, r->err) < 0)
		return -1;
	r->cached_rows = retl_cache_count(r->cache);
	/* a plan writes nothing; a run's writes keep the cache equal to the
	 * store, so its image is written from memory at the end */
	if (!r->o->plan)
		retl_state_mirror(r->st, r->sc->name, r->cache);
	retl_log(RETL_LOG_DEBUG, r->sc->name, "cache: %zu rows loaded in %.3f s (%zu bytes)",
		 r->cached_rows, now_s() - r->t0, retl_cache_bytes(r->cache));
	/* size the cache for the model once, rather than growing it through
	 * copies; trust the planner only so far */
	double est = retl_source_estimated_rows(r->src);
	double cap = 4.0 * (double)r->cached_rows;
	if (cap < 2e6)
		cap = 2e6;
	if (est > cap)
		est = cap;
	if (est > (double)r->cached_rows)
		retl_cache_reserve(r->cache, (size_t)est);
	return 0;
}

/* the model, row by row through the diff; then the source is released */
static enum run_end stream_and_diff(struct run *r)
{
	retl_progress_start(r->sc->name);
	int s = r->wh ? retl_whdiff_stream(r) :
		retl_source_stream(r->src, r->sc->query, retl_sync_on_row, r, r->err);
	if (s == RETL_SOURCE_INTERRUPTED && !r->stop)
		return RUN_INTERRUPTED;
	if (s < 0 || r->stop)
		return RUN_STOPPED;
	if (s == RETL_SYNC_INTERRUPTED)
		return RUN_INTERRUPTED;
	if (s > 0) {
		retl_err_set(r->err, RETL_EXIT_USAGE, "run stopped");
		return RUN_STOPPED;
	}
	/* "mapped" tells what the source line's hash spared: an unchanged
	 * re-run maps nothing (tests read this line) */
	retl_log(RETL_LOG_DEBUG, r->sc->name, "model: %ld rows streamed at %.3f s, %ld mapped",
		 r->sum->c.read, now_s() - r->t0, r->sum->mapped);
	/* the snapshot is read; release the warehouse before sending the rest */
	retl_source_close(r->src);
	r->src = NULL;
	if (retl_sync_flush(r) < 0 || (!r->o->plan && retl_sync_flush_touches(r) < 0))
		return RUN_STOPPED;
	return RUN_DONE;
}

/* rows that left the model: removed within the safety limits, or forgotten */
static enum run_end removals(struct run *r)
{
	long gone = 0;
	size_t it = 0;
	struct retl_cache_entry *e;
	while ((e = retl_cache_next(r->cache, &it)))
		if (e->cached && !e->seen)
			gone++;
	r->sum->would_remove = gone;
	/* the warehouse diff counts the synced rows only when some leave */
	if (r->wh && gone && !r->cached_rows)
		r->cached_rows = (size_t)retl_state_count_rows(r->st, r->sc->name, 0);
	int send_removes = retl_sync_removes(r->sc);
	if (gone && send_removes && check_safety(r, gone) < 0) {
		retl_err_set(r->err, RETL_EXIT_SAFETY, "%s", r->sum->message);
		return RUN_STOPPED;
	}
	if (retl_stop_requested())
		return RUN_INTERRUPTED;
	if (!gone)
		return RUN_DONE;
	struct retl_sync_gone g = { .r = r, .send_removes = send_removes };
	if ((r->wh ? retl_whdiff_gone(r, &g) :
	     retl_state_scan(r->st, r->sc->name, retl_sync_on_gone, &g, r->err)) < 0 ||
	    r->stop)
		return RUN_STOPPED;
	if (retl_stop_requested())
		return RUN_INTERRUPTED;
	if (retl_sync_flush(r) < 0)
		return RUN_STOPPED;
	return RUN_DONE;
}

/*
 * Phase 1 writes every operation to a spool (spool.h): the plan file of
 * `plan --out`, or an unnamed file beside the state store for a run; a
 * plan that only counts writes none.  Its head holds the state generation
 * the plan is computed against, read before the cache is loaded: a commit
 * in between makes `apply` refuse the plan, never accept a stale one.
 */
static int open_spool(struct run *r)
{
	r->spooling = 1;
	FILE *f = r->o->plan_out;
	if (!f && r->o->plan)
		return 0;
	if (!f && !(f = retl_state_spool_file(r->st, r->sc->name, r->err)))
		return -1;
	r->spool_f = f;
	r->spool = r->o->plan_out ?
		retl_spool_create(f, r->sc->name, retl_state_generation(r->st, r->sc->name)) :
		retl_spool_create_binary(f);
	return 0;
}

/* phase 1 ends: every operation is in the spool (a plan's orphans too:
 * a run finds them after its push, once every ack is known) */
static enum run_end end_spool(struct run *r)
{
	if (r->o->plan && r->orphans && retl_sync_orphans(r) < 0)
		return RUN_STOPPED;
	r->spooling = 0;
	if (r->spool && retl_spool_finish(r->spool) < 0) {
		if (r->o->plan)
			retl_err_set(r->err, RETL_EXIT_USAGE, "--out: %s", strerror(errno));
		else
			retl_err_set(r->err, RETL_EXIT_STATE, "state store %s: writing the run's spool: %s",
				     retl_state_name(r->st), strerror(errno));
		return RUN_STOPPED;
	}
	retl_spool_free(r->spool);
	r->spool = NULL;
	retl_log(RETL_LOG_DEBUG, r->sc->name, "spool: %ld operations at %.3f s",
		 r->nops, now_s() - r->t0);
	return RUN_DONE;
}

/*
 * Every batch back and committed; then the records keys left behind (their
 * match value moved this run or before) are removed, once every ack of
 * this run is known; then the destination's own last step.  An apply sends
 * its plan as it is: records it leaves behind are the next run's.
 */
static enum run_end send_and_commit(struct run *r)
{
	if (retl_sync_drain(r) < 0)
		return RUN_STOPPED;
	if (!r->o->apply_f && (retl_sync_orphans(r) < 0 || retl_sync_drain(r) < 0))
		return RUN_STOPPED;
	if (r->dest->finish && r->dest->finish(r->dctx, r->err) < 0) {
		r->stop = 1;
		return RUN_STOPPED;
	}
	return RUN_DONE;
}

/* phase 2: the spool's operations to the destination, the warehouse closed */
static enum run_end push(struct run *r, FILE *f, const char *path)
{
	int rc = retl_sync_replay(r, f, path);
	if (rc == RETL_SYNC_INTERRUPTED)
		return RUN_INTERRUPTED;
	if (rc < 0 || retl_sync_flush(r) < 0)
		return RUN_STOPPED;
	return send_and_commit(r);
}

/* a plan: what phase 2 would spend */
static enum run_end estimate(struct run *r)
{
	if (r->dest->plan)
		r->dest->plan(r->sc->dst, r->sc, r->nops, &r->sum->requests,
			      &r->sum->jobs);
	return RUN_DONE;
}

/* `retl apply`: the plan file, only while the state is the one it was
 * made against (a plan applied twice is refused the second time) */
static enum run_end apply_plan(struct run *r)
{
	/* sends without the warehouse diff's table writes: keys it creates
	 * would never come back as removal candidates */
	if (r->sc->diff_warehouse) {
		retl_err_set(r->err, RETL_EXIT_USAGE,
			     "%s: sync %s uses \"diff\": \"warehouse\", which plan files do not support: nothing sent; use retl run %s",
			     r->o->apply_path, r->sc->name, r->sc->name);
		return RUN_STOPPED;
	}
	if (retl_state_generation(r->st, r->sc->name) != r->o->apply_state) {
		retl_err_set(r->err, RETL_EXIT_USAGE,
			     "%s: the state of sync %s changed since this plan was made (a run or an apply since): nothing sent; make a new plan with `retl plan %s --out FILE`",
			     r->o->apply_path, r->sc->name, r->sc->name);
		return RUN_STOPPED;
	}
	if (open_destination(r) < 0)
		return RUN_STOPPED;
	return push(r, r->o->apply_f, r->o->apply_path);
}

/*
 * The model is described first: that binds the mapping's column types,
 * which destinations read when they open.  Then, for a run, the warehouse
 * is closed while the destination opens (its token, a Bulk job an earlier
 * run left: requests of their own, which may take a while), and opened
 * again to read: so no warehouse session exists while retl talks to the
 * destination.  The price is a second connection and describe per run;
 * columns that changed in between stop the run (nothing sent).
 */
static enum run_end open_both(struct run *r)
{
	uint64_t sig, again;
	int rc = open_source(r->sc, &r->src, r->key_idx, &sig, r->err);
	if (rc == 0 && !r->o->plan) {
		retl_source_close(r->src);
		r->src = NULL;
		if (open_destination(r) < 0)
			return RUN_STOPPED;
		rc = open_source(r->sc, &r->src, r->key_idx, &again, r->err);
		if (rc == 0 && again != sig)
			rc = retl_err_set(r->err, RETL_EXIT_SOURCE,
					  "source %s: the model's columns changed while the run started (a column's name or type): nothing sent; run again",
					  r->sc->source);
	}
	if (rc == RETL_SOURCE_INTERRUPTED)
		return RUN_INTERRUPTED;  /* a stop while connecting or describing */
	if (rc < 0 || open_spool(r) < 0 ||
	    (r->sc->diff_warehouse ? retl_whdiff_open(r) : load_cache(r)) < 0)
		return RUN_STOPPED;
	return RUN_DONE;
}

/* read, diff and spool; then the push (a plan: the estimate) */
static enum run_end plan_and_push(struct run *r)
{
	enum run_end how = open_both(r);
	if (how == RUN_DONE)
		how = stream_and_diff(r);
	if (how == RUN_DONE)
		how = removals(r);
	if (how == RUN_DONE)
		how = end_spool(r);
	if (how != RUN_DONE)
		return how;
	if (r->o->plan)
		return estimate(r);
	if (r->wh && retl_whdiff_mark(r) < 0)
		return RUN_STOPPED;
	return push(r, r->spool_f, "the run's spool");
}

/* the run went through: ok, or some rows failed or still wait */
static int end_done(struct run *r)
{
	struct retl_sync_summary *sum = r->sum;
	take_stats(r);
	if (!r->o->plan && (sum->handed_over || sum->reported))
		sum->waiting = retl_state_count_staged(r->st, r->sc->name);
	int failed = sum->c.failed || sum->c.rejected || sum->waiting;
	r->status = failed ? RETL_RUN_REJECTED : RETL_RUN_OK;
	sum->exit_code = failed ? RETL_EXIT_ROWS_FAILED : RETL_EXIT_OK;
	/* rows the destination never answered for (unreachable, TLS, timed
	 * out, over max_response_bytes) are a destination error, not rows it
	 * refused: exit 4 and "failed", though the run went through */
	if (sum->unanswered) {
		r->status = RETL_RUN_FAILED;
		sum->exit_code = RETL_EXIT_DEST;
		snprintf(sum->message, sizeof(sum->message),
			 "%ld rows got no answer from destination %s (%s): they are sent again by the next run",
			 sum->unanswered, r->sc->destination, sum->unanswered_why);
	} else if (sum->waiting)
		snprintf(sum->message, sizeof(sum->message),
			 "%ld rows are still waiting for the destination's outcome: the next run reads it or sends them again",
			 sum->waiting);
	return 0;
}

/* asked to stop: what is in flight finishes and is committed; the rest
 * waits for the next run.  -1 with *stopped when that fails too */
static int end_interrupted(struct run *r, int *stopped)
{
	struct retl_sync_summary *sum = r->sum;
	*stopped = retl_sync_flush(r) != 0 || retl_sync_drain(r) != 0 ||
		   (!r->o->plan && retl_sync_flush_touches(r) != 0);
	if (*stopped)
		return -1;
	take_stats(r);
	r->status = RETL_RUN_INTERRUPTED;
	sum->exit_code = RETL_EXIT_ROWS_FAILED;
	snprintf(sum->message, sizeof(sum->message),
		 "interrupted after %ld rows read: rows not sent are sent by the next run",
		 sum->c.read);
	return retl_err_set(r->err, RETL_EXIT_ROWS_FAILED, "%s", sum->message);
}

/* stopped by an error (err says which) or a safety limit */
static int end_stopped(struct run *r)
{
	struct retl_sync_summary *sum = r->sum;
	/* batches still out may have been acknowledged: commit them */
	retl_sync_drain(r);
	r->status = RETL_RUN_FAILED;
	take_stats(r);
	retl_err_code(r->err, RETL_EXIT_USAGE);
	sum->exit_code = r->err->code;
	if (!sum->message[0])
		snprintf(sum->message, sizeof(sum->message), "%s", r->err->msg);
	return -1;
}

/* the summary for how the run ended; 0 when it went through */
static int finish(struct run *r, enum run_end how)
{
	int rc = -1, stopped = how == RUN_STOPPED;
	if (how == RUN_DONE)
		rc = end_done(r);
	else if (how == RUN_INTERRUPTED)
		rc = end_interrupted(r, &stopped);
	if (stopped)
		rc = end_stopped(r);
	retl_progress_stop();
	r->sum->seconds = now_s() - r->t0;
	r->sum->status = r->status;
	return rc;
}

/* the run's row in the state store; a run that stopped keeps its cause
 * (the first error wins) and one that went through fails on this one */
static int record_run(struct run *r, int rc)
{
	struct retl_sync_summary *sum = r->sum;
	if (!r->run_open)
		return rc;
	if (retl_state_run_end(r->st, r->run_id, r->status, sum->exit_code, &sum->c,
			       sum->message[0] ? sum->message : NULL, r->err) < 0)
		return -1;
	sum->recorded = 1;
	return rc;
}

/* the sync logs in the warehouse (audit.h), once the run's record is
 * final and under its lock: a failure is the run's warning, not its error */
static void audit_runs(struct run *r)
{
	struct retl_err warn;
	if (!r->sum->recorded || !r->sc->src->audit)
		return;
	retl_err_clear(&warn);
	if (retl_audit_write(r->st, r->sc, &warn) < 0) {
		retl_err_prefix(&warn, "sync logs not written, a later run "
				"writes them: ");
		snprintf(r->sum->audit_warning, sizeof(r->sum->audit_warning),
			 "%s", warn.msg);
		retl_log(RETL_LOG_WARN, r->sc->name, "%s", r->sum->audit_warning);
	}
}

/* closes what the run opened and releases the lock; returns rc */
static int close_run(struct run *r, int rc)
{
	if (rc < 0 && !r->run_open) {
		retl_err_code(r->err, RETL_EXIT_USAGE);
		r->sum->exit_code = r->err->code;
	}
	retl_source_close(r->src);
	if (r->dctx)
		r->dest->close(r->dctx);
	if (r->locked && !r->sc->diff_warehouse) {
		/* so the next run loads the cache in one read: written from
		 * the run's cache, which the store kept equal to its rows
		 * (retl_state_mirror), or else read back from SQLite */
		struct retl_err warn;
		retl_err_clear(&warn);
		int saved = retl_state_save_mirror(r->st, r->sc->name, &warn);
		retl_state_mirror(r->st, NULL, NULL);
		retl_cache_free(r->cache);
		r->cache = NULL;
		if (saved == 1)         /* one cache at a time in memory */
			saved = retl_state_save_image(r->st, r->sc->name, &warn);
		if (saved < 0)
			retl_log(RETL_LOG_WARN, r->sc->name, "%s", warn.msg);
		retl_testpoint("image-saved");
		retl_state_unlock(r->st, r->sc->name);
	} else if (r->locked) {
		/* the warehouse diff keeps no image: its cache holds only
		 * the rows the warehouse returned */
		retl_state_unlock(r->st, r->sc->name);
	}
	retl_whdiff_free(r);
	retl_state_mirror(r->st, NULL, NULL);  /* before the cache goes */
	retl_cache_free(r->cache);
	retl_spool_free(r->spool);
	if (r->spool_f && r->spool_f != r->o->plan_out)
		fclose(r->spool_f);
	retl_sync_batches_free(r);
	retl_buf_free(&r->key);
	retl_buf_free(&r->key_json);
	retl_buf_free(&r->payload);
	retl_buf_free(&r->reason);
	retl_buf_free(&r->match);
	retl_match_set_free(r->seen_match);
	free(r->match_targets);
	return rc;
}

int retl_sync_run(struct retl_config *cfg, struct retl_sync_cfg *sc,
		  retl_state *st, const struct retl_sync_opts *o,
		  struct retl_sync_summary *sum, struct retl_err *err)
{
	struct run r = { .cfg = cfg, .sc = sc, .st = st, .o = o, .sum = sum, .err = err };
	enum run_end how = RUN_STOPPED;

	/* secrets are read only for the syncs that connect (config.h) */
	if (retl_config_resolve(cfg, sc, err) < 0) {
		memset(sum, 0, sizeof(*sum));
		/* not recorded (no run began), but callers print a status */
		sum->status = RETL_RUN_FAILED;
		sum->exit_code = err->code;
		/* the daemon logs the summary's message */
		snprintf(sum->message, sizeof(sum->message), "%s", err->msg);
		return -1;
	}
	run_init(&r);
	if (open_state(&r) < 0)
		return close_run(&r, -1);
	retl_testpoint("run-begun");
	how = o->apply_f ? apply_plan(&r) : plan_and_push(&r);
	int rc = finish(&r, how);
	/* after every ack this run will commit; the watermark of changed_since
	 * moves only after a run that ended normally */
	retl_whdiff_end(&r, how == RUN_DONE);
	retl_testpoint("run-end");
	rc = record_run(&r, rc);
	retl_testpoint("run-recorded");
	audit_runs(&r);
	return close_run(&r, rc);
}

void retl_sync_summary_free(struct retl_sync_summary *sum)
{
	for (size_t i = 0; i < sum->nsamples; i++)
		free(sum->samples[i]);
	sum->nsamples = 0;
}
