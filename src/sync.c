/*
 * sync.c - the sync engine: one run of one sync.
 *
 * Rows stream from the source; each is keyed, hashed and diffed against the
 * sync's cache (loaded once); only new, changed or previously failed rows
 * are mapped into payloads and queued.  A full queue is sent as one batch,
 * and the destination's per-record results are committed in one state
 * transaction right after: only acknowledged rows advance their hash, so a
 * run killed at any point has marked nothing unsent as sent.
 *
 * Unchanged rows cost a key hash, a source-line hash and a table probe: the
 * mapping is deterministic, so a row whose raw source line hashes the same
 * (seeded by the mapping fingerprint) as when it was acknowledged is not
 * mapped again.
 */
#include "sync.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cache.h"
#include "destination.h"
#include "hash.h"
#include "log.h"
#include "mapping.h"
#include "progress.h"
#include "redact.h"
#include "source.h"
#include "sync_int.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* a row refused before sending: bad key or mapping; stored, run goes on */
static int reject(struct run *r, const char *key, retl_h128 kh, const char *why)
{
	r->sum->c.rejected++;
	if (r->o->plan)
		return 0;
	if (retl_state_begin(r->st, r->err) < 0)
		return -1;
	if (key) {
		struct retl_state_rec rec = { .key = key, .kh = kh, .reason = why };
		if (retl_state_fail(r->st, r->sc->name, &rec, r->err) < 0)
			goto fail;
	}
	if (retl_sync_outcome(r, key, "rejected", why) < 0)
		goto fail;
	return retl_state_commit(r->st, r->err);
fail:
	retl_state_rollback(r->st);
	return -1;
}

/* key text and its JSON form; 0, or -1 for a NULL or empty key part */
static int build_key(struct run *r, const struct retl_row *row)
{
	retl_buf_reset(&r->key);
	retl_buf_reset(&r->key_json);
	size_t n = r->sc->nkey;
	if (n == 1) {
		const char *v = row->vals[r->key_idx[0]];
		size_t len = row->lens[r->key_idx[0]];
		if (!v || !len)
			return -1;
		retl_buf_add(&r->key, v, len);
		retl_buf_add_json_str(&r->key_json, v, len);
		return 0;
	}
	retl_buf_addc(&r->key, '[');
	for (size_t i = 0; i < n; i++) {
		const char *v = row->vals[r->key_idx[i]];
		size_t len = row->lens[r->key_idx[i]];
		if (!v || !len)
			return -1;
		if (i)
			retl_buf_addc(&r->key, ',');
		retl_buf_add_json_str(&r->key, v, len);
	}
	retl_buf_addc(&r->key, ']');
	retl_buf_add(&r->key_json, r->key.ptr, r->key.len);
	return 0;
}

static volatile sig_atomic_t stop_requested;

void retl_sync_request_stop(void)
{
	stop_requested = 1;
}

int retl_sync_stop_requested(void)
{
	return stop_requested;
}

void retl_sync_clear_stop(void)
{
	stop_requested = 0;
}

#define STREAM_INTERRUPTED 2

static int on_row(void *ud, const struct retl_row *row, const char *raw,
		  size_t rawlen)
{
	struct run *r = ud;
	struct retl_run_counts *c = &r->sum->c;
	enum retl_mode mode = r->sc->mode;
	if (stop_requested)
		return STREAM_INTERRUPTED;
	c->read++;
	if ((c->read & 1023) == 0)
		retl_sync_progress(r);

	if (build_key(r, row) < 0) {
		retl_buf_reset(&r->reason);
		retl_buf_addf(&r->reason, "null key: row %ld has a NULL or empty %s",
			      c->read, r->sc->nkey == 1 ? "key column" : "key part");
		retl_h128 none = { 0, 0 };
		return reject(r, NULL, none, r->reason.ptr) < 0 ? 1 : 0;
	}
	retl_h128 kh = retl_hash128(r->key.ptr, r->key.len);
	int created;
	struct retl_cache_entry *e = retl_cache_upsert(r->cache, kh, &created);
	if (e->seen) {
		retl_buf_reset(&r->reason);
		retl_buf_addf(&r->reason, "duplicate key: row %ld repeats a key already seen in this run",
			      c->read);
		/* an outcome only: the cache row belongs to the first occurrence */
		c->rejected++;
		return retl_sync_outcome(r, r->key.ptr, "rejected", r->reason.ptr) < 0 ? 1 : 0;
	}
	e->seen = 1;
	uint64_t src = retl_hash64(raw, rawlen, r->seed);
	int status = e->status;
	if (status == RETL_STATUS_OK && e->src == src && !r->o->full_resync) {
		c->unchanged++;
		return 0;
	}
	retl_h128 old_pay = e->pay;   /* e is invalid after the next upsert */

	if (retl_mapping_apply(r->sc->mapping, row, &r->payload, &r->reason) < 0)
		return reject(r, r->key.ptr, kh, r->reason.ptr) < 0 ? 1 : 0;
	retl_h128 pay = retl_hash128(r->payload.ptr, r->payload.len);

	if (status == RETL_STATUS_OK && retl_h128_eq(pay, old_pay) &&
	    !r->o->full_resync) {
		c->unchanged++;
		if (r->o->plan)
			return 0;
		struct touch *t = &r->t[r->nt++];
		t->key = retl_sync_arena_add(&r->tarena, r->key.ptr, r->key.len);
		t->kh = kh;
		t->pay = pay;
		t->src = src;
		if (r->nt == r->max_batch && retl_sync_flush_touches(r) < 0)
			return 1;
		return 0;
	}

	enum change ch;
	if (status == RETL_STATUS_FAILED || status == RETL_STATUS_PENDING ||
	    status == RETL_STATUS_STAGED)
		ch = CH_RETRY;
	else if (status == RETL_STATUS_OK)
		ch = CH_CHANGE;
	else
		ch = CH_ADD;
	int known = !retl_h128_zero(old_pay);

	enum retl_op_kind kind;
	switch (mode) {
	case RETL_MODE_INSERT:
		if (known) {          /* insert mode never touches existing keys */
			c->unchanged++;
			return 0;
		}
		kind = RETL_OP_INSERT;
		break;
	case RETL_MODE_UPDATE:
		kind = RETL_OP_UPDATE;
		break;
	default:
		kind = RETL_OP_UPSERT;
	}

	if (r->o->limit >= 0 && r->nops >= r->o->limit) {
		r->sum->deferred++;
		return 0;
	}
	char *dest_id = NULL;
	if (known && !r->o->plan)
		dest_id = retl_state_dest_id(r->st, r->sc->name, r->key.ptr);
	int rc = retl_sync_enqueue(r, kind, ch, r->key.ptr, r->key.len,
				   r->key_json.ptr, r->key_json.len, r->payload.ptr,
				   r->payload.len, dest_id,
				   /* a staged row's create may have happened */
				   status == RETL_STATUS_PENDING ||
				   status == RETL_STATUS_STAGED, kh, pay, src);
	free(dest_id);
	return rc < 0 ? 1 : 0;
}

/* rows of the cache that the model no longer returns */
struct gone {
	struct run *r;
	int send_removes;
	long forgotten;
};

static int on_gone(void *ud, const char *key, retl_h128 kh, const char *dest_id)
{
	struct gone *g = ud;
	struct run *r = g->r;
	if (stop_requested)
		return 1;
	struct retl_cache_entry *e = retl_cache_find(r->cache, kh);
	if (!e || e->seen)
		return 0;
	int acked = !retl_h128_zero(e->pay);
	if (g->send_removes && acked) {
		if (r->o->limit >= 0 && r->nops >= r->o->limit) {
			r->sum->deferred++;
			return 0;
		}
		/* key_json: single keys were stored as text, composite as JSON */
		retl_buf kj = RETL_BUF_INIT;
		if (r->sc->nkey == 1)
			retl_buf_add_json_str(&kj, key, strlen(key));
		else
			retl_buf_adds(&kj, key);
		retl_h128 none = { 0, 0 };
		int rc = retl_sync_enqueue(r, RETL_OP_REMOVE, CH_REMOVE, key,
					   strlen(key), kj.ptr, kj.len, NULL, 0,
					   dest_id, 0, kh, none, 0);
		retl_buf_free(&kj);
		return rc < 0 ? -1 : 0;
	}
	if (r->o->plan)
		return 0;
	/* left the model, nothing to send: forget it */
	g->forgotten++;
	if (retl_state_begin(r->st, r->err) < 0)
		return -1;
	if (retl_state_forget(r->st, r->sc->name, key, r->err) < 0) {
		retl_state_rollback(r->st);
		return -1;
	}
	return retl_state_commit(r->st, r->err);
}

/* safety limits, checked before any removal is sent */
static int check_safety(struct run *r, long gone)
{
	const struct retl_safety *s = &r->sc->safety;
	struct retl_sync_summary *sum = r->sum;
	if (gone <= 0)
		return 0;
	if (s->refuse_empty_model && r->sum->c.read == 0) {
		snprintf(sum->message, sizeof(sum->message),
			 "the model returned 0 rows: refusing to remove all %ld synced rows (safety.refuse_empty_model)",
			 gone);
		return -1;
	}
	if (s->max_removed >= 0 && gone > s->max_removed) {
		snprintf(sum->message, sizeof(sum->message),
			 "would remove %ld rows, over safety.max_removed (%ld) by %ld: nothing removed",
			 gone, s->max_removed, gone - s->max_removed);
		return -1;
	}
	if (s->max_removed_ratio >= 0 && r->cached_rows > 0) {
		double ratio = (double)gone / (double)r->cached_rows;
		if (ratio > s->max_removed_ratio) {
			snprintf(sum->message, sizeof(sum->message),
				 "would remove %ld of %zu synced rows (%.1f%%), over safety.max_removed_ratio (%.1f%%) by %.1f points: nothing removed",
				 gone, r->cached_rows, ratio * 100,
				 s->max_removed_ratio * 100,
				 (ratio - s->max_removed_ratio) * 100);
			return -1;
		}
	}
	return 0;
}

/* opens the source, checks key columns and binds the mapping */
static int open_source(struct retl_sync_cfg *sc, retl_source **src,
		       size_t *key_idx, struct retl_err *err)
{
	const struct retl_column *cols;
	size_t ncols;
	if (retl_source_open(src, sc->src, err) < 0)
		return -1;
	if (retl_source_describe(*src, sc->query, &cols, &ncols, err) < 0)
		return -1;
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
	int rc = open_source(sc, &src, key_idx, err);
	retl_source_close(src);
	if (rc < 0)
		return -1;
	const struct retl_destination *d = retl_destination_find(sc->dst->type);
	void *ctx = NULL;
	struct retl_dest_env env = { .dir = cfg->dir, .api_budget = -1 };
	if (d->open(&ctx, sc->dst, sc, &env, err) < 0)
		return -1;
	rc = d->check ? d->check(ctx, err) : 0;
	d->close(ctx);
	return rc;
}

static void run_free(struct run *r)
{
	retl_cache_free(r->cache);
	retl_sync_batches_free(r);
	retl_buf_free(&r->key);
	retl_buf_free(&r->key_json);
	retl_buf_free(&r->payload);
	retl_buf_free(&r->reason);
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

int retl_sync_run(struct retl_config *cfg, struct retl_sync_cfg *sc,
		  retl_state *st, const struct retl_sync_opts *o,
		  struct retl_sync_summary *sum, struct retl_err *err)
{
	struct run r = { .cfg = cfg, .sc = sc, .st = st, .o = o, .sum = sum, .err = err };
	retl_source *src = NULL;
	int locked = 0, rc = -1, run_open = 0;
	double t0 = now_s();
	const char *status = "error";

	memset(sum, 0, sizeof(*sum));
	r.dest = retl_destination_find(sc->dst->type);
	r.max_batch = r.dest->max_batch ? r.dest->max_batch : 100;
	retl_sync_batches_init(&r);
	r.seed = retl_mapping_fingerprint(sc->mapping);

	if (!o->plan) {
		if (retl_state_lock(st, sc->name, err) < 0)
			goto out;
		locked = 1;
		/* recorded before anything can fail, so `retl status` shows a
		 * run that could not connect as failing */
		if (retl_state_run_begin(st, sc->name, &r.run_id, err) < 0)
			goto out;
		run_open = 1;
	}
	if (open_source(sc, &src, r.key_idx, err) < 0)
		goto stopped;
	if (!o->plan) {
		/* before the cache is loaded: a destination resuming an
		 * earlier run's deferred work (a bulk job) reports those rows
		 * at open, and the cache this run loads is then current */
		r.env.dir = cfg->dir;
		r.env.api_budget = -1;
		retl_sync_env_init(&r);
		if (api_budget(&r, &r.env.api_budget) < 0)
			goto stopped;
		if (r.dest->open(&r.dctx, sc->dst, sc, &r.env, err) < 0)
			goto stopped;
	}
	if (retl_state_load_cache(st, sc->name, &r.cache, err) < 0)
		goto stopped;
	r.cached_rows = retl_cache_count(r.cache);
	retl_log(RETL_LOG_DEBUG, sc->name, "cache: %zu rows loaded in %.3f s (%zu bytes)",
		 r.cached_rows, now_s() - t0, retl_cache_bytes(r.cache));
	{
		/* size the cache for the model once, rather than growing it
		 * through copies; trust the planner only so far */
		double est = retl_source_estimated_rows(src);
		double cap = 4.0 * (double)r.cached_rows;
		if (cap < 2e6)
			cap = 2e6;
		if (est > cap)
			est = cap;
		if (est > (double)r.cached_rows)
			retl_cache_reserve(r.cache, (size_t)est);
	}
	retl_progress_start(sc->name);
	int s = retl_source_stream(src, sc->query, on_row, &r, err);
	if (s < 0 || r.stop)
		goto stopped;
	if (s == STREAM_INTERRUPTED)
		goto interrupted;
	if (s > 0) {
		if (!err->msg[0])
			retl_err_set(err, RETL_EXIT_USAGE, "run stopped");
		goto stopped;
	}
	retl_log(RETL_LOG_DEBUG, sc->name, "model: %ld rows streamed at %.3f s",
		 sum->c.read, now_s() - t0);
	/* the snapshot is read; release the warehouse before sending the rest */
	retl_source_close(src);
	src = NULL;
	if (retl_sync_flush(&r) < 0 || (!o->plan && retl_sync_flush_touches(&r) < 0))
		goto stopped;

	/* rows that left the model */
	long gone = 0;
	size_t it = 0;
	struct retl_cache_entry *e;
	while ((e = retl_cache_next(r.cache, &it)))
		if (e->cached && !e->seen)
			gone++;
	sum->would_remove = gone;
	int send_removes = sc->mode == RETL_MODE_MIRROR &&
			   sc->on_remove != RETL_REMOVE_IGNORE;
	if (gone && send_removes && check_safety(&r, gone) < 0) {
		retl_err_set(err, RETL_EXIT_SAFETY, "%s", sum->message);
		status = "refused";
		goto stopped;
	}
	if (stop_requested)
		goto interrupted;
	if (gone) {
		struct gone g = { .r = &r, .send_removes = send_removes };
		if (retl_state_scan(st, sc->name, on_gone, &g, err) < 0 || r.stop)
			goto stopped;
		if (stop_requested)
			goto interrupted;
		if (retl_sync_flush(&r) < 0)
			goto stopped;
	}
	if (retl_sync_drain(&r) < 0)
		goto stopped;
	if (!o->plan && r.dest->finish && r.dest->finish(r.dctx, err) < 0) {
		r.stop = 1;
		goto stopped;
	}
	if (o->plan && r.dest->plan)
		r.dest->plan(sc->dst, sc, r.nops, &sum->requests, &sum->jobs);
	take_stats(&r);
	rc = 0;
	if (!o->plan && (sum->handed_over || sum->reported))
		sum->waiting = retl_state_count_staged(st, sc->name);
	status = sum->c.failed || sum->c.rejected || sum->waiting ? "failed" : "ok";
	sum->exit_code = sum->c.failed || sum->c.rejected || sum->waiting ?
		RETL_EXIT_ROWS_FAILED : RETL_EXIT_OK;
	if (sum->waiting)
		snprintf(sum->message, sizeof(sum->message),
			 "%ld rows are still waiting for the destination's outcome: the next run reads it or sends them again",
			 sum->waiting);
	goto finish;

interrupted:
	/* what is in flight finishes and is committed; the rest waits */
	if (retl_sync_flush(&r) == 0 && retl_sync_drain(&r) == 0 &&
	    (o->plan || retl_sync_flush_touches(&r) == 0)) {
		take_stats(&r);
		status = "interrupted";
		sum->exit_code = RETL_EXIT_ROWS_FAILED;
		snprintf(sum->message, sizeof(sum->message),
			 "interrupted after %ld rows read: rows not sent are sent by the next run",
			 sum->c.read);
		retl_err_set(err, RETL_EXIT_ROWS_FAILED, "%s", sum->message);
		rc = -1;
		goto finish;
	}
stopped:
	/* batches still out may have been acknowledged: commit them */
	retl_sync_drain(&r);
	take_stats(&r);
	rc = -1;
	if (!err->code)
		err->code = RETL_EXIT_USAGE;
	sum->exit_code = err->code;
	if (!sum->message[0])
		snprintf(sum->message, sizeof(sum->message), "%s", err->msg);
finish:
	retl_progress_stop();
	sum->seconds = now_s() - t0;
	if (run_open) {
		struct retl_err e2;
		retl_err_clear(&e2);
		if (retl_state_run_end(st, r.run_id, status, sum->exit_code, &sum->c,
				       sum->message[0] ? sum->message : NULL, &e2) < 0 &&
		    rc == 0) {
			*err = e2;
			rc = -1;
		}
	}
out:
	if (rc < 0 && !run_open) {
		if (!err->code)
			err->code = RETL_EXIT_USAGE;
		sum->exit_code = err->code;
	}
	retl_source_close(src);
	if (r.dctx)
		r.dest->close(r.dctx);
	if (locked) {
		/* so the next run loads the cache in one read; costs a reload
		 * from SQLite only after runs that changed the cache */
		struct retl_err e3;
		retl_cache_free(r.cache);
		r.cache = NULL;
		retl_err_clear(&e3);
		if (retl_state_save_image(st, sc->name, &e3) < 0)
			retl_log(RETL_LOG_WARN, sc->name, "%s", e3.msg);
		retl_state_unlock(st, sc->name);
	}
	run_free(&r);
	return rc;
}

void retl_sync_summary_free(struct retl_sync_summary *sum)
{
	for (size_t i = 0; i < sum->nsamples; i++)
		free(sum->samples[i]);
	sum->nsamples = 0;
}
