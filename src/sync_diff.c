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

#include "mapping.h"
#include "sync_int.h"

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
		     retl_h128 kh, retl_h128 pay, uint64_t src)
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
	if (status == RETL_STATUS_OK && e->src == src && !r->o->full_resync) {
		c->unchanged++;
		return 0;
	}
	retl_h128 old_pay = e->pay;   /* e is invalid after the next upsert */

	if (retl_mapping_apply(r->sc->mapping, row, &r->payload, &r->reason) < 0)
		return reject(r, r->key.ptr, kh, r->reason.ptr) < 0 ? 1 : 0;
	retl_h128 pay = retl_hash128(r->payload.ptr, r->payload.len);

	if (status == RETL_STATUS_OK && retl_h128_eq(pay, old_pay) &&
	    !r->o->full_resync)
		return touch(r, kh, pay, src);
	return queue_row(r, status, old_pay, kh, pay, src);
}

int retl_sync_on_gone(void *ud, const char *key, retl_h128 kh, const char *dest_id)
{
	struct retl_sync_gone *g = ud;
	struct run *r = g->r;
	if (retl_sync_stop_requested())
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
