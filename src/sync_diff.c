/*
 * sync_diff.c - the sync engine's per-row work: each model row is keyed,
 * hashed and diffed against the sync's cache, and only new, changed or
 * previously failed rows are mapped and queued (sync_send.c sends them);
 * cache rows the model no longer returns are removed or forgotten.
 *
 * Unchanged rows cost a key hash, a source-line hash and a table probe: the
 * mapping is deterministic, so a row whose raw source line hashes the same
 * (seeded by the mapping fingerprint) as when it was acknowledged is not
 * mapped again.  A row refused before sending (no key, a duplicate, a
 * mapping error) is stored with its reason and the run goes on.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mapping.h"
#include "sync_int.h"
#include "testpoint.h"

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
	retl_testpoint("reject-commit");
	if (retl_state_commit(r->st, r->err) < 0)
		return -1;
	retl_testpoint("rejected");
	return 0;
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

/*
 * Keys the row and claims its cache entry: the entry, or NULL when the row
 * was refused (*rc says whether the stream goes on: 0, or 1 to stop).
 */
static struct retl_cache_entry *claim_key(struct run *r,
					  const struct retl_row *row,
					  retl_h128 *kh, int *rc)
{
	struct retl_run_counts *c = &r->sum->c;
	*rc = 0;
	if (build_key(r, row) < 0) {
		retl_buf_reset(&r->reason);
		retl_buf_addf(&r->reason, "null key: row %ld has a NULL or empty %s",
			      c->read, r->sc->nkey == 1 ? "key column" : "key part");
		retl_h128 none = { 0, 0 };
		*rc = reject(r, NULL, none, r->reason.ptr) < 0 ? 1 : 0;
		return NULL;
	}
	*kh = retl_hash128(r->key.ptr, r->key.len);
	int created;
	struct retl_cache_entry *e = retl_cache_upsert(r->cache, *kh, &created);
	if (e->seen) {
		retl_buf_reset(&r->reason);
		retl_buf_addf(&r->reason, "duplicate key: row %ld repeats a key already seen in this run",
			      c->read);
		/* an outcome only: the cache row belongs to the first occurrence */
		c->rejected++;
		*rc = retl_sync_outcome(r, r->key.ptr, "rejected", r->reason.ptr) < 0 ? 1 : 0;
		return NULL;
	}
	e->seen = 1;
	return e;
}

/*
 * The row's match value (r->match) from its payload, claimed for this run:
 * 1, or 0 when another row of the run has it already.  A row with no match
 * value (every match field empty) claims nothing: the destination refuses
 * it with its own reason.
 */
static int claim_match(struct run *r)
{
	retl_buf_reset(&r->match);
	if (retl_match_value(r->payload.ptr, r->payload.len, r->match_targets,
			     r->nmatch, &r->match) <= 0)
		return 1;
	return retl_match_set_add(r->seen_match,
				  retl_match_hash(r->match.ptr, r->match.len,
						  r->dest->match_exact));
}

/* the later of two rows with one match value: refused like a duplicate key */
static int duplicate_match(struct run *r, retl_h128 kh, const char *value)
{
	const char *field = r->match_targets[0];
	retl_buf_reset(&r->reason);
	if (value)
		retl_buf_addf(&r->reason, "duplicate match value: row %ld has %s \"%s\", like an earlier row of this run; the destination would write both to one record",
			      r->sum->c.read, field, value);
	else
		retl_buf_addf(&r->reason, "duplicate match value: row %ld has the %s of an earlier row of this run; the destination would write both to one record",
			      r->sum->c.read, field);
	return reject(r, r->key.ptr, kh, r->reason.ptr) < 0 ? 1 : 0;
}

/* a payload unchanged under a new source line: only the source hash moves */
static int touch(struct run *r, retl_h128 kh, retl_h128 pay, uint64_t src)
{
	r->sum->c.unchanged++;
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

/* queues the mapped row (r->payload) as an operation of the sync's mode */
static int queue_row(struct run *r, int status, retl_h128 old_pay,
		     uint64_t old_mh, retl_h128 kh, retl_h128 pay, uint64_t src)
{
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
	switch (r->sc->mode) {
	case RETL_MODE_INSERT:
		if (known) {          /* insert mode never touches existing keys */
			r->sum->c.unchanged++;
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
	uint64_t mh = r->nmatch ? retl_match_hash(r->match.ptr, r->match.len,
						  r->dest->match_exact) : 0;
	/*
	 * Update mode finds records by their match value: a key whose match
	 * value moved is no longer bound to the record it updated before (that
	 * record is someone else's now; the one that matches is found again),
	 * so its stored id is not handed on.
	 */
	int moved = r->sc->mode == RETL_MODE_UPDATE && old_mh && mh && mh != old_mh;
	if (known && !moved)    /* a plan file carries it for apply */
		dest_id = retl_state_dest_id(r->st, r->sc->name, r->key.ptr);
	struct queued q = {
		.kind = kind, .change = ch,
		.key = r->key.ptr, .keylen = r->key.len,
		.key_json = r->key_json.ptr, .kjlen = r->key_json.len,
		.payload = r->payload.ptr, .plen = r->payload.len,
		.dest_id = dest_id,
		.match = r->nmatch ? r->match.ptr : NULL, .mlen = r->match.len,
		.mh = mh,
		/* a staged row's create may have happened */
		.was_pending = status == RETL_STATUS_PENDING ||
			       status == RETL_STATUS_STAGED,
		.kh = kh, .pay = pay, .src = src,
	};
	int rc = retl_sync_enqueue(r, &q);
	free(dest_id);
	return rc < 0 ? 1 : 0;
}

int retl_sync_on_row(void *ud, const struct retl_row *row, const char *raw,
		     size_t rawlen)
{
	struct run *r = ud;
	struct retl_run_counts *c = &r->sum->c;
	if (retl_sync_stop_requested())
		return RETL_SYNC_INTERRUPTED;
	c->read++;
	if ((c->read & 1023) == 0)
		retl_sync_progress(r);

	retl_h128 kh;
	int rc;
	struct retl_cache_entry *e = claim_key(r, row, &kh, &rc);
	if (!e)
		return rc;
	uint64_t src = retl_hash64(raw, rawlen, r->seed);
	int status = e->status;
	if (status == RETL_STATUS_OK && retl_cache_same_src(e, src) &&
	    !r->o->full_resync) {
		if (e->mh && !retl_match_set_add(r->seen_match, e->mh))
			return duplicate_match(r, kh, NULL);
		c->unchanged++;
		return 0;
	}
	retl_h128 old_pay = e->pay;   /* e is invalid after the next upsert */
	uint64_t old_mh = e->mh;

	r->sum->mapped++;
	if (retl_mapping_apply(r->sc->mapping, row, &r->payload, &r->reason) < 0)
		return reject(r, r->key.ptr, kh, r->reason.ptr) < 0 ? 1 : 0;
	retl_h128 pay = retl_hash128(r->payload.ptr, r->payload.len);
	if (r->nmatch && claim_match(r) == 0)
		return duplicate_match(r, kh, r->match.ptr);

	if (status == RETL_STATUS_OK && retl_h128_eq(pay, old_pay) &&
	    !r->o->full_resync)
		return touch(r, kh, pay, src);
	return queue_row(r, status, old_pay, old_mh, kh, pay, src);
}

/* forgets a row that left the model: nothing to send for it */
static int forget(struct run *r, struct retl_sync_gone *g, const char *key)
{
	if (r->o->plan)
		return 0;
	g->forgotten++;
	if (retl_state_begin(r->st, r->err) < 0)
		return -1;
	if (retl_state_forget(r->st, r->sc->name, key, r->err) < 0) {
		retl_state_rollback(r->st);
		return -1;
	}
	retl_testpoint("forget-commit");
	if (retl_state_commit(r->st, r->err) < 0)
		return -1;
	retl_testpoint("forgotten");
	return 0;
}

static int bound_live(const struct run *r, const char *match)
{
	return match && retl_match_set_has(r->seen_match,
					   retl_match_hash(match, strlen(match),
						   r->dest->match_exact));
}

/*
 * A row that left the model.  Removed (mirror) when a record may exist for
 * it: acknowledged, or handed over since (its answer lost, a run killed
 * before the commit).  Never a record a key still in the model is bound
 * to: when its match value is one this run met, the row is only forgotten.
 */
int retl_sync_on_gone(void *ud, const struct retl_state_row *row)
{
	struct retl_sync_gone *g = ud;
	struct run *r = g->r;
	if (retl_sync_stop_requested())
		return 1;
	struct retl_cache_entry *e = retl_cache_find(r->cache, row->kh);
	if (!e || e->seen)
		return 0;
	int may_exist = !retl_h128_zero(e->pay) || e->sent;
	const char *match = row->match ? row->match : row->sent_match;
	/* a send under another match value may have made a second record */
	if (r->orphans && !r->o->plan && row->match && row->sent_match &&
	    (r->dest->match_exact ? strcmp(row->match, row->sent_match) :
	     strcasecmp(row->match, row->sent_match)) &&
	    retl_state_orphan_add(r->st, r->sc->name, row->sent_match, NULL, r->err) < 0)
		return -1;
	if (!g->send_removes || !may_exist || bound_live(r, match))
		return forget(r, g, row->key) < 0 ? -1 : 0;
	if (r->o->limit >= 0 && r->nops >= r->o->limit) {
		r->sum->deferred++;
		return 0;
	}
	/* key_json: single keys were stored as text, composite as JSON */
	retl_buf kj = RETL_BUF_INIT;
	if (r->sc->nkey == 1)
		retl_buf_add_json_str(&kj, row->key, strlen(row->key));
	else
		retl_buf_adds(&kj, row->key);
	struct queued q = {
		.kind = RETL_OP_REMOVE, .change = CH_REMOVE,
		.key = row->key, .keylen = strlen(row->key),
		.key_json = kj.ptr, .kjlen = kj.len,
		.dest_id = row->dest_id,
		.match = match, .mlen = match ? strlen(match) : 0,
		.kh = row->kh,
	};
	int rc = retl_sync_enqueue(r, &q);
	retl_buf_free(&kj);
	return rc < 0 ? -1 : 0;
}

/* one orphan record: removed, or dropped when a key is bound to it again */
static int on_orphan(void *ud, const struct retl_state_orphan *o)
{
	struct run *r = ud;
	if (retl_sync_stop_requested())
		return 1;
	if (bound_live(r, o->match)) {
		if (r->o->plan)
			return 0;
		return retl_state_orphan_done(r->st, r->sc->name, o->match, r->err) < 0 ? -1 : 0;
	}
	retl_h128 none = { 0, 0 };
	struct queued q = {
		.kind = RETL_OP_REMOVE, .change = CH_REMOVE, .orphan = 1,
		.key = "", .keylen = 0, .key_json = "null", .kjlen = 4,
		.dest_id = o->dest_id,
		.match = o->match, .mlen = strlen(o->match),
		.kh = none,
	};
	return retl_sync_enqueue(r, &q) < 0 ? -1 : 0;
}

int retl_sync_orphans(struct run *r)
{
	if (!r->orphans)
		return 0;
	if (retl_state_orphans(r->st, r->sc->name, on_orphan, r, r->err) != 0)
		return -1;
	return retl_sync_flush(r);
}
