/*
 * sync_send.c - the sending half of the sync engine: queued operations go
 * out in batches, and each batch's per-record results are committed in one
 * state transaction as soon as it comes back.
 *
 * A synchronous destination (file) sends a batch and returns its results.
 * An asynchronous one (HTTP) takes up to max_inflight batches at once: the
 * engine goes on reading the model while they are out, and blocks only
 * when every batch buffer is in flight.  Batches may come back in any
 * order; each is committed on its own, so what is acknowledged is never
 * held back by a slower batch, and nothing unacknowledged is marked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "progress.h"
#include "sync_int.h"
#include "testpoint.h"

static int is_async(const struct run *r)
{
	return r->dest->max_inflight > 0 && r->dest->submit && !r->o->plan;
}

void retl_sync_batches_init(struct run *r)
{
	r->nb = is_async(r) ? r->dest->max_inflight + 1 : 1;
	r->b = retl_calloc(r->nb, sizeof(*r->b));
	for (size_t i = 0; i < r->nb; i++) {
		r->b[i].q = retl_calloc(r->max_batch, sizeof(*r->b[i].q));
		r->b[i].ops = retl_calloc(r->max_batch, sizeof(*r->b[i].ops));
		r->b[i].res = retl_calloc(r->max_batch, sizeof(*r->b[i].res));
	}
	r->cur = &r->b[0];
	r->t = retl_calloc(r->max_batch, sizeof(*r->t));
}

static void free_results(struct batch *b)
{
	for (size_t i = 0; i < b->nq; i++) {
		free(b->res[i].dest_id);
		free(b->res[i].reason);
		b->res[i].dest_id = b->res[i].reason = NULL;
	}
}

void retl_sync_batches_free(struct run *r)
{
	free(r->note_name);
	free(r->note_value);
	r->note_name = r->note_value = NULL;
	for (size_t i = 0; i < r->nb; i++) {
		free_results(&r->b[i]);
		free(r->b[i].q);
		free(r->b[i].ops);
		free(r->b[i].res);
		retl_buf_free(&r->b[i].arena);
	}
	free(r->b);
	free(r->t);
	retl_buf_free(&r->tarena);
	r->b = NULL;
	r->nb = 0;
}

void retl_sync_progress(struct run *r)
{
	struct retl_run_counts *c = &r->sum->c;
	retl_progress_update(c->read, c->added + c->changed + c->retried + c->removed,
			     c->failed + c->rejected);
}

int retl_sync_outcome(struct run *r, const char *key, const char *what,
		      const char *reason)
{
	if (r->o->plan)
		return 0;
	return retl_state_outcome(r->st, r->run_id, key, what, reason, r->err);
}

static void count(struct run *r, enum change ch)
{
	struct retl_run_counts *c = &r->sum->c;
	switch (ch) {
	case CH_ADD: c->added++; break;
	case CH_CHANGE: c->changed++; break;
	case CH_RETRY: c->retried++; break;
	case CH_REMOVE: c->removed++; break;
	}
}

/* a plan counts what a run would send, and the requests of the batches
 * it would fill (retl_sync_flush ends one) */
static void plan_count(struct run *r, const struct queued *q)
{
	count(r, q->change);
	if (r->sum->nsamples < RETL_SAMPLES && q->payload)
		r->sum->samples[r->sum->nsamples++] = retl_strndup(q->payload, q->plen);
	if (r->plan_fill++ == 0)
		r->sum->requests++;
	if (r->plan_fill == r->max_batch)
		r->plan_fill = 0;
}

_Static_assert((int)CH_ADD == (int)RETL_CH_ADDED && (int)CH_REMOVE == (int)RETL_CH_REMOVED,
	       "the spool's changes are the engine's");

/* phase 1: the operation into the spool */
static int spool_op(struct run *r, const struct queued *q)
{
	struct retl_spool_op op = {
		.kind = q->kind, .change = (enum retl_spool_change)q->change,
		.key = q->key, .keylen = q->keylen,
		.key_json = q->key_json, .kjlen = q->kjlen,
		.payload = q->payload, .plen = q->plen,
		.dest_id = q->dest_id, .match = q->match, .mlen = q->mlen,
		.pending = q->was_pending, .orphan = q->orphan, .src = q->src,
	};
	r->nops++;
	if (r->o->plan)
		plan_count(r, q);
	if (!r->spool || retl_spool_put(r->spool, &op) == 0)
		return 0;
	r->stop = 1;
	if (r->o->plan)
		return retl_err_set(r->err, RETL_EXIT_USAGE, "--out: %s", strerror(errno));
	return retl_err_set(r->err, RETL_EXIT_STATE, "state store %s: writing the run's spool: %s",
			    retl_state_name(r->st), strerror(errno));
}

/* phase 2: one operation of the spool into a batch; its hashes are
 * computed as the diff did (key, payload and match text are the spool's) */
static int replay_op(void *ud, const struct retl_spool_op *op)
{
	struct run *r = ud;
	if (retl_sync_stop_requested())
		return RETL_SYNC_INTERRUPTED;
	retl_h128 none = { 0, 0 };
	struct queued q = {
		.kind = op->kind, .change = (enum change)op->change,
		.key = op->key, .keylen = op->keylen,
		.key_json = op->key_json, .kjlen = op->kjlen,
		.payload = op->payload, .plen = op->plen,
		.dest_id = op->dest_id, .match = op->match, .mlen = op->mlen,
		.was_pending = op->pending, .orphan = op->orphan,
		.kh = op->orphan ? none : retl_hash128(op->key, op->keylen),
		.pay = op->payload ? retl_hash128(op->payload, op->plen) : none,
		.mh = op->payload && op->match ?
		      retl_match_hash(op->match, op->mlen, r->dest->match_exact) : 0,
		.src = op->src,
	};
	return retl_sync_enqueue(r, &q) < 0 || r->stop ? -1 : 0;
}

int retl_sync_replay(struct run *r, FILE *f, const char *path)
{
	int rc = retl_spool_replay(f, path, replay_op, r, r->err);
	if (rc == RETL_SYNC_INTERRUPTED)
		return rc;
	return rc || r->stop ? -1 : 0;
}

int retl_sync_flush_touches(struct run *r)
{
	if (!r->nt)
		return 0;
	int rc = retl_state_begin(r->st, r->err);
	for (size_t i = 0; rc == 0 && i < r->nt; i++) {
		struct retl_state_rec rec = {
			.key = r->tarena.ptr + r->t[i].key, .kh = r->t[i].kh,
			.pay = r->t[i].pay, .src = r->t[i].src,
		};
		rc = retl_state_set_src(r->st, r->sc->name, &rec, r->err);
	}
	if (rc == 0) {
		retl_testpoint("touch-commit");
		rc = retl_state_commit(r->st, r->err);
	} else {
		retl_state_rollback(r->st);
	}
	if (rc == 0)
		retl_testpoint("touch-committed");
	r->nt = 0;
	retl_buf_reset(&r->tarena);
	return rc;
}

/* API calls since the last commit, counted against today's daily usage */
static int count_calls(struct run *r)
{
	if (!r->dest->stats)
		return 0;
	struct retl_dest_stats s = { 0 };
	r->dest->stats(r->dctx, &s);
	long delta = s.api_calls - r->calls_counted;
	if (delta <= 0)
		return 0;
	r->calls_counted = s.api_calls;
	return retl_state_api_add(r->st, r->sc->destination, r->day, delta, r->err);
}

/* a note the destination staged with this batch, written with its results */
static int write_staged_note(struct run *r)
{
	if (!r->note_name)
		return 0;
	int rc = retl_state_note_set(r->st, r->sc->name, r->note_name, r->note_value,
				     r->err);
	free(r->note_name);
	free(r->note_value);
	r->note_name = r->note_value = NULL;
	return rc;
}

/* an orphan record's removal: done, or tried again next run */
static int commit_orphan(struct run *r, const struct pending *p,
			 const struct retl_result *res, const char *match)
{
	struct retl_run_counts *c = &r->sum->c;
	char *what = NULL;
	int rc;
	if (res->kind == RETL_RES_ACK) {
		rc = retl_state_orphan_done(r->st, r->sc->name, match, r->err);
		count(r, p->change);
	} else {
		const char *why = res->reason ? res->reason :
			"the record left behind was not removed; tried again next run";
		rc = retl_state_orphan_fail(r->st, r->sc->name, match, why, r->err);
		what = retl_strdup(why);
		c->failed++;
	}
	if (rc == 0) {
		retl_buf k = RETL_BUF_INIT;
		retl_buf_addf(&k, "(record matched by \"%s\")", match);
		rc = retl_sync_outcome(r, k.ptr, what ? "failed" : retl_spool_change_name[p->change],
				       what);
		retl_buf_free(&k);
	}
	free(what);
	return rc;
}

static int marks_sent(const struct run *r, const struct pending *p);

static int commit_results(struct run *r, struct batch *b)
{
	struct retl_run_counts *c = &r->sum->c;
	if (retl_state_begin(r->st, r->err) < 0)
		return -1;
	for (size_t i = 0; i < b->nq; i++) {
		struct pending *p = &b->q[i];
		struct retl_result *res = &b->res[i];
		const char *key = b->arena.ptr + p->key;
		struct retl_state_rec rec = {
			.key = key, .kh = p->kh, .pay = p->pay, .src = p->src,
			.dest_id = res->dest_id, .reason = res->reason,
			.match = p->has_match ? b->arena.ptr + p->match : NULL,
			.mh = p->mh, .orphans = r->orphans,
			.exact = r->dest->match_exact,
			.run_id = r->run_id, .change = (int)p->change,
			/* no row unless an intent was written for it */
			.fresh = p->change == CH_ADD && !p->was_pending &&
				 p->kind != RETL_OP_INSERT && !marks_sent(r, p),
		};
		int rc;
		if (p->orphan) {
			rc = commit_orphan(r, p, res, b->arena.ptr + p->match);
		} else if (res->kind == RETL_RES_ACK) {
			/* a synced row records its run and change itself
			 * (last_run, last_change); a removed one leaves an
			 * outcome, since its row goes */
			if (p->kind == RETL_OP_REMOVE)
				rc = retl_state_forget(r->st, r->sc->name, key, r->err);
			else
				rc = retl_state_ack(r->st, r->sc->name, &rec, r->err);
			if (rc == 0 && p->kind == RETL_OP_REMOVE)
				rc = retl_sync_outcome(r, key, retl_spool_change_name[p->change], NULL);
			count(r, p->change);
		} else if (res->kind == RETL_RES_DEFER) {
			/* the outcome comes later through report(); until then
			 * the row is staged (and retried if it never comes) */
			rc = retl_state_stage(r->st, r->sc->name, &rec,
					      (int)p->change, r->err);
			r->sum->handed_over++;
		} else if (res->kind == RETL_RES_RETRY && p->kind == RETL_OP_INSERT) {
			/* a create with no answer may have happened: the pending
			 * intent stays, and the next run looks the record up */
			rc = retl_sync_outcome(r, key, "failed", res->reason ? res->reason :
					       "no answer to the create; looked up next run");
			c->failed++;
		} else {
			if (!rec.reason)
				rec.reason = res->kind == RETL_RES_RETRY ?
					"not acknowledged (transient error); retried next run" :
					"rejected by the destination";
			rc = retl_state_fail(r->st, r->sc->name, &rec, r->err);
			if (rc == 0)
				rc = retl_sync_outcome(r, key, "failed", rec.reason);
			c->failed++;
		}
		if (rc < 0) {
			retl_state_rollback(r->st);
			return -1;
		}
	}
	if (count_calls(r) < 0 || write_staged_note(r) < 0) {
		retl_state_rollback(r->st);
		return -1;
	}
	/* the answers are written, not yet committed */
	retl_testpoint("batch-commit");
	return retl_state_commit(r->st, r->err);
}

/* ---- the engine's side of deferred acknowledgements ---- */

static int env_report(void *ud, const char *key, const struct retl_result *res)
{
	struct run *r = ud;
	struct retl_run_counts *c = &r->sum->c;
	int op = 0, rc;

	if (retl_state_begin(r->st, r->err) < 0)
		return -1;
	rc = retl_state_staged(r->st, r->sc->name, key, &op, r->err);
	if (rc <= 0) {
		retl_state_rollback(r->st);
		return rc;
	}
	if (op < CH_ADD || op > CH_REMOVE)
		op = CH_CHANGE;
	if (res->kind == RETL_RES_ACK) {
		if (op == CH_REMOVE)
			rc = retl_state_forget(r->st, r->sc->name, key, r->err);
		else
			rc = retl_state_unstage(r->st, r->sc->name, key, 1,
						res->dest_id, NULL, r->run_id, r->err);
		if (rc == 0 && op == CH_REMOVE)
			rc = retl_sync_outcome(r, key, retl_spool_change_name[op], NULL);
		count(r, (enum change)op);
	} else {
		const char *why = res->reason ? res->reason :
			res->kind == RETL_RES_REJECT ? "rejected by the destination" :
			"not acknowledged (transient error); retried next run";
		rc = retl_state_unstage(r->st, r->sc->name, key, 0, NULL, why,
					0, r->err);
		if (rc == 0)
			rc = retl_sync_outcome(r, key, "failed", why);
		/* an earlier run's row (a bulk job it left) is retried by this
		 * run, and counted here only if it fails again: a run that
		 * syncs every row exits 0 */
		if (!r->resuming)
			c->failed++;
	}
	if (rc == 0)
		rc = count_calls(r);
	if (rc < 0) {
		retl_state_rollback(r->st);
		return -1;
	}
	r->sum->reported++;
	if ((r->sum->reported & 1023) == 0)
		retl_sync_progress(r);
	retl_testpoint("report-commit");
	if (retl_state_commit(r->st, r->err) < 0)
		return -1;
	retl_testpoint("reported");
	return 0;
}

static void env_note_stage(void *ud, const char *name, const char *value)
{
	struct run *r = ud;
	free(r->note_name);
	free(r->note_value);
	r->note_name = retl_strdup(name);
	r->note_value = value ? retl_strdup(value) : NULL;
}

static char *env_note_get(void *ud, const char *name)
{
	struct run *r = ud;
	return retl_state_note_get(r->st, r->sc->name, name);
}

/* committed on its own (a Bulk job's id before its upload, the file's
 * length at open) */
static int env_note_set(void *ud, const char *name, const char *value)
{
	struct run *r = ud;
	if (retl_state_note_set(r->st, r->sc->name, name, value, r->err) < 0)
		return -1;
	retl_testpoint("note-saved");
	return 0;
}

void retl_sync_env_init(struct run *r)
{
	r->env.ud = r;
	r->env.report = env_report;
	r->env.note_get = env_note_get;
	r->env.note_set = env_note_set;
	r->env.note_stage = env_note_stage;
}

static void reset_batch(struct batch *b)
{
	free_results(b);
	b->nq = 0;
	b->busy = 0;
	retl_buf_reset(&b->arena);
}

/* a batch came back: commit it, or stop the run when it is fatal */
static int complete(struct run *r, struct batch *b)
{
	int rc = 0;
	if (b->io.fatal) {
		/* after an earlier fatal batch the first cause stays (err.h) */
		retl_err_set(r->err, b->io.fatal_code ? b->io.fatal_code :
			     RETL_EXIT_DEST, "%s", b->io.fatal_msg);
		r->stop = 1;
		rc = -1;
	} else if (commit_results(r, b) < 0) {
		r->stop = 1;
		rc = -1;
	} else {
		retl_testpoint("batch-committed");
		if (b->io.unanswered) {
			if (!r->sum->unanswered)
				snprintf(r->sum->unanswered_why,
					 sizeof(r->sum->unanswered_why), "%s",
					 b->io.unanswered_why);
			r->sum->unanswered += (long)b->io.unanswered;
		}
	}
	reset_batch(b);
	retl_sync_progress(r);
	return rc;
}

static struct batch *wait_one(struct run *r, int block)
{
	struct retl_batch *io = r->dest->wait(r->dctx, block);
	return io ? io->engine : NULL;
}

/* an op with a payload may make a record from the moment it is handed
 * over (unless the destination drops what it never acknowledged) */
static int marks_sent(const struct run *r, const struct pending *p)
{
	return p->has_payload && !p->orphan && !r->dest->atomic;
}

/*
 * Before a batch is handed over, in one transaction: create intents (an
 * insert looked up before it is created again), and for every op that may
 * make a record, that it may exist (a removal candidate from now on,
 * whatever happens to the answer).
 */
static int write_intents(struct run *r, struct batch *b)
{
	int any = 0;
	for (size_t i = 0; i < b->nq && !any; i++)
		any = b->q[i].kind == RETL_OP_INSERT || marks_sent(r, &b->q[i]);
	if (!any)
		return 0;
	if (retl_state_begin(r->st, r->err) < 0)
		return -1;
	for (size_t i = 0; i < b->nq; i++) {
		struct pending *p = &b->q[i];
		struct retl_state_rec rec = {
			.key = b->arena.ptr + p->key, .kh = p->kh,
			.match = p->has_match ? b->arena.ptr + p->match : NULL,
			.mh = p->mh, .orphans = r->orphans,
			.exact = r->dest->match_exact,
		};
		if ((p->kind == RETL_OP_INSERT &&
		     retl_state_pending(r->st, r->sc->name, &rec, r->err) < 0) ||
		    (marks_sent(r, p) &&
		     retl_state_sent(r->st, r->sc->name, &rec, r->err) < 0)) {
			retl_state_rollback(r->st);
			return -1;
		}
	}
	return retl_state_commit(r->st, r->err);
}

int retl_sync_flush(struct run *r)
{
	if (r->spooling) {              /* phase 1: a batch would end here */
		r->plan_fill = 0;
		return r->stop ? -1 : 0;
	}
	struct batch *b = r->cur;
	if (!b->nq || r->stop)
		return r->stop ? -1 : 0;
	for (size_t i = 0; i < b->nq; i++) {
		struct pending *p = &b->q[i];
		struct retl_op *op = &b->ops[i];
		op->kind = p->kind;
		op->pending = p->was_pending;
		op->key = b->arena.ptr + p->key;
		op->key_json = b->arena.ptr + p->key_json;
		op->payload = p->has_payload ? b->arena.ptr + p->payload : NULL;
		op->payload_len = p->payload_len;
		op->dest_id = p->has_dest_id ? b->arena.ptr + p->dest_id : NULL;
		op->match = p->has_match ? b->arena.ptr + p->match : NULL;
	}
	memset(b->res, 0, b->nq * sizeof(*b->res));
	r->sum->requests += (long)((b->nq + r->max_batch - 1) / r->max_batch);

	/* nothing of the batch is in the state yet (batch-send, below: its
	 * intents are committed, and it is being handed over) */
	retl_testpoint("batch-queued");
	if (write_intents(r, b) < 0) {
		r->stop = 1;
		return -1;
	}
	if (!is_async(r)) {
		r->sum->c.api_calls++;
		/* right before the hand-over: nothing may commit in between */
		retl_testpoint("batch-send");
		int rc = r->dest->send(r->dctx, b->ops, b->nq, b->res, r->err);
		if (rc < 0) {
			r->stop = 1;
			reset_batch(b);
			return -1;
		}
		return complete(r, b);
	}

	memset(&b->io, 0, sizeof(b->io));
	b->io.ops = b->ops;
	b->io.n = b->nq;
	b->io.results = b->res;
	b->io.engine = b;
	b->busy = 1;
	retl_testpoint("batch-send");
	if (r->dest->submit(r->dctx, &b->io, r->err) < 0)
		r->stop = 1;
	/* commit what has come back meanwhile, then find a free buffer */
	struct batch *done;
	while ((done = wait_one(r, 0)))
		complete(r, done);
	for (;;) {
		for (size_t i = 0; i < r->nb; i++) {
			if (!r->b[i].busy) {
				r->cur = &r->b[i];
				return r->stop ? -1 : 0;
			}
		}
		done = wait_one(r, 1);
		if (!done)
			break;
		complete(r, done);
	}
	return -1;
}

int retl_sync_drain(struct run *r)
{
	if (!is_async(r) || !r->dctx)
		return r->stop ? -1 : 0;
	struct batch *done;
	while ((done = wait_one(r, 1)))
		complete(r, done);
	for (size_t i = 0; i < r->nb; i++)
		r->b[i].busy = 0;
	return r->stop ? -1 : 0;
}

size_t retl_sync_arena_add(retl_buf *a, const char *s, size_t len)
{
	size_t off = a->len;
	retl_buf_add(a, s, len);
	retl_buf_addc(a, '\0');
	return off;
}

int retl_sync_enqueue(struct run *r, const struct queued *q)
{
	if (r->spooling)
		return spool_op(r, q);
	struct batch *b = r->cur;
	struct pending *p = &b->q[b->nq++];
	p->kind = q->kind;
	p->change = q->change;
	p->was_pending = q->was_pending;
	p->orphan = q->orphan;
	p->key = retl_sync_arena_add(&b->arena, q->key, q->keylen);
	p->key_json = retl_sync_arena_add(&b->arena, q->key_json, q->kjlen);
	p->has_payload = q->payload != NULL;
	p->payload = q->payload ? retl_sync_arena_add(&b->arena, q->payload, q->plen) : 0;
	p->payload_len = q->plen;
	p->has_dest_id = q->dest_id != NULL;
	p->dest_id = q->dest_id ? retl_sync_arena_add(&b->arena, q->dest_id,
						      strlen(q->dest_id)) : 0;
	p->has_match = q->match != NULL;
	p->match = q->match ? retl_sync_arena_add(&b->arena, q->match, q->mlen) : 0;
	p->mh = q->mh;
	p->kh = q->kh;
	p->pay = q->pay;
	p->src = q->src;
	if (b->nq == r->max_batch)
		return retl_sync_flush(r);
	return 0;
}
