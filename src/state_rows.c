/*
 * state_rows.c - a sync's cache rows one at a time: the writes that move
 * a row's status and hashes (ack, fail, set_src, pending, forget, and the
 * deferred rows' stage and unstage), the reads by key, the keyset scan and
 * reset.  See state.h for each function's contract.
 *
 * Each write uses a statement prepared once at open and reset after use
 * (the first run of a large sync acknowledges a million rows, ~500 per
 * transaction), and gives the sync a new cache generation first, so a
 * cache image never outlives a change to the rows it copies.
 *
 * Hashes are uint64 stored as the int64 with the same bits; a payload hash
 * of {0,0} and a source hash of 0 ("none") are stored as NULL.
 */
#include "state.h"
#include "state_int.h"

#include <stdlib.h>

#include "buf.h"

#define SCAN_CHUNK 1000

static retl_db_stmt *row_stmt(retl_state *st, int which, const char *sync,
			      const char *key)
{
	retl_db_stmt *s = st->stmt[which];

	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, key);
	return s;
}

/* a record the key leaves becomes an orphan (S_ORPHAN_BOUND / _SENT) */
static int orphan(retl_state *st, int which, const char *sync,
		  const struct retl_state_rec *r, struct retl_err *err)
{
	retl_db_stmt *s = row_stmt(st, which, sync, r->key);
	retl_state__bind_text(s, 3, r->match ? r->match : "");
	retl_state__bind_text(s, 4, retl_state__now(st));
	retl_db_bind_int(s, 5, r->exact);
	return retl_state__done(st, s, err);
}

/* binds what S_ACK and S_ACK_NEW share */
static retl_db_stmt *ack_stmt(retl_state *st, int which, const char *sync,
			      const struct retl_state_rec *r)
{
	retl_db_stmt *s = row_stmt(st, which, sync, r->key);

	retl_state__bind_opt_h128(s, 5, r->pay);
	if (r->src)
		retl_state__bind_u64(s, 7, r->src);
	else
		retl_db_bind_null(s, 7);
	retl_state__bind_text(s, 8, r->dest_id);
	retl_state__bind_text(s, 10, r->match);
	if (r->match)
		retl_state__bind_u64(s, 11, r->mh);
	else
		retl_db_bind_null(s, 11);
	retl_db_bind_int64(s, 13, r->run_id);
	retl_db_bind_int(s, 14, r->change);
	return s;
}

int retl_state_ack(retl_state *st, const char *sync,
		   const struct retl_state_rec *r, struct retl_err *err)
{
	if (retl_state__bump_gen(st, sync, err) < 0)
		return -1;
	if (r->fresh && !r->orphans && !st->db->upsert_only) {
		/* a new key: no orphan to make, nothing to merge */
		retl_db_stmt *s = ack_stmt(st, S_ACK_NEW, sync, r);
		int rc = retl_db_step(s);
		int taken = rc == RETL_DB_ERROR &&
			    retl_db_errkind(st->db) == RETL_DB_ECONSTRAINT;
		if (rc != RETL_DB_DONE && !taken)
			retl_state__db_err(st, err);
		retl_db_reset(s);
		if (rc == RETL_DB_DONE) {
			retl_state__mirror_ack(st, sync, r);
			return 0;
		}
		if (!taken)
			return -1;
		/* the key has a row after all: the UPSERT below */
	}
	if (r->orphans && (orphan(st, S_ORPHAN_BOUND, sync, r, err) < 0 ||
			   orphan(st, S_ORPHAN_SENT, sync, r, err) < 0))
		return -1;
	retl_db_stmt *s = ack_stmt(st, S_ACK, sync, r);
	retl_db_bind_int(s, 12, r->exact);
	if (retl_state__done(st, s, err) < 0)
		return -1;
	retl_state__mirror_ack(st, sync, r);
	return 0;
}

int retl_state_sent(retl_state *st, const char *sync,
		    const struct retl_state_rec *r, struct retl_err *err)
{
	if (retl_state__bump_gen(st, sync, err) < 0)
		return -1;
	retl_state__mirror_key(st, sync, r->key);
	if (r->orphans && orphan(st, S_ORPHAN_SENT, sync, r, err) < 0)
		return -1;
	retl_db_stmt *s = row_stmt(st, S_SENT, sync, r->key);
	retl_state__bind_h128(s, 3, r->kh);
	retl_state__bind_text(s, 5, retl_state__now(st));
	retl_state__bind_text(s, 6, r->match);
	return retl_state__done(st, s, err);
}

int retl_state_fail(retl_state *st, const char *sync,
		    const struct retl_state_rec *r, struct retl_err *err)
{
	if (retl_state__bump_gen(st, sync, err) < 0)
		return -1;
	retl_state__mirror_key(st, sync, r->key);
	retl_db_stmt *s = row_stmt(st, S_FAIL, sync, r->key);

	retl_state__bind_h128(s, 3, r->kh);
	retl_state__bind_text(s, 5, r->dest_id);
	retl_state__bind_text(s, 6, r->reason);
	retl_state__bind_text(s, 7, retl_state__now(st));
	return retl_state__done(st, s, err);
}

int retl_state_set_src(retl_state *st, const char *sync,
		       const struct retl_state_rec *r, struct retl_err *err)
{
	if (retl_state__bump_gen(st, sync, err) < 0)
		return -1;
	retl_db_stmt *s = row_stmt(st, S_SET_SRC, sync, r->key);

	if (r->src)
		retl_state__bind_u64(s, 3, r->src);
	else
		retl_db_bind_null(s, 3);
	if (retl_state__done(st, s, err) < 0)
		return -1;
	retl_state__mirror_src(st, sync, r);
	return 0;
}

int retl_state_pending(retl_state *st, const char *sync,
		       const struct retl_state_rec *r, struct retl_err *err)
{
	if (retl_state__bump_gen(st, sync, err) < 0)
		return -1;
	retl_state__mirror_key(st, sync, r->key);
	retl_db_stmt *s = row_stmt(st, S_PENDING, sync, r->key);

	retl_state__bind_h128(s, 3, r->kh);
	retl_state__bind_text(s, 5, r->dest_id);
	retl_state__bind_text(s, 6, retl_state__now(st));
	return retl_state__done(st, s, err);
}

int retl_state_forget(retl_state *st, const char *sync, const char *key,
		      struct retl_err *err)
{
	if (retl_state__bump_gen(st, sync, err) < 0)
		return -1;
	retl_state__mirror_key(st, sync, key);
	return retl_state__done(st, row_stmt(st, S_FORGET, sync, key), err);
}

char *retl_state_dest_id(retl_state *st, const char *sync, const char *key)
{
	retl_db_stmt *s = row_stmt(st, S_DEST_ID, sync, key);
	char *id = NULL;

	if (retl_db_step(s) == RETL_DB_ROW &&
	    !retl_db_col_null(s, 0))
		id = retl_strdup(retl_db_col_text(s, 0));
	retl_db_reset(s);
	return id;
}

struct scan_row {
	size_t key, dest, match, sent;  /* offsets in the chunk's text; 0 = NULL */
	retl_h128 kh;
};

/* column i as text in the arena: its offset, 0 for NULL */
static size_t arena_col(retl_db_stmt *s, int i, retl_buf *arena)
{
	if (retl_db_col_null(s, i))
		return 0;
	size_t off = arena->len;
	retl_buf_add(arena, retl_db_col_text(s, i), (size_t)retl_db_col_bytes(s, i));
	retl_buf_addc(arena, '\0');
	return off;
}

/* one page of rows after `after` (NULL: from the start), text in arena */
static int scan_page(retl_state *st, retl_db_stmt *s, const char *sync,
		     const retl_buf *after, struct scan_row *rows, size_t *n,
		     retl_buf *arena, struct retl_err *err)
{
	int rc;

	*n = 0;
	retl_buf_reset(arena);
	retl_buf_addc(arena, '\0');     /* offset 0 stands for NULL */
	retl_state__bind_text(s, 1, sync);
	retl_db_bind_int(s, 2, SCAN_CHUNK);
	if (after)
		retl_db_bind_textn(s, 3, after->ptr, (int)after->len);
	while ((rc = retl_db_step(s)) == RETL_DB_ROW) {
		struct scan_row *r = &rows[(*n)++];

		r->key = arena_col(s, 0, arena);
		r->kh = retl_state__col_kh(s, 0, 1);
		r->dest = arena_col(s, 3, arena);
		r->match = arena_col(s, 4, arena);
		r->sent = arena_col(s, 5, arena);
	}
	if (rc != RETL_DB_DONE)
		retl_state__db_err(st, err);
	retl_db_reset(s);
	return rc == RETL_DB_DONE ? 0 : -1;
}

/*
 * Keyset pagination, SCAN_CHUNK rows at a time, and fn is called between
 * pages with no statement active: fn may write to the store (forget the
 * row it is given, typically).  A non-zero return from fn stops the scan
 * and is returned.
 */
int retl_state_scan(retl_state *st, const char *sync, retl_state_row_fn fn,
		    void *ud, struct retl_err *err)
{
	retl_db_stmt *first = NULL, *next = NULL;
	struct scan_row *rows = retl_malloc(SCAN_CHUNK * sizeof(*rows));
	retl_buf arena = RETL_BUF_INIT, last = RETL_BUF_INIT;
	size_t i, n;
	int rc = -1, started = 0;

	if (retl_state__prepare(st, "SELECT key, kh_lo, kh_hi, dest_id, match, "
				"CASE WHEN sent = 1 THEN sent_match END FROM "
				"cache WHERE sync = ?1 ORDER BY key LIMIT ?2",
				&first, err) < 0 ||
	    retl_state__prepare(st, "SELECT key, kh_lo, kh_hi, dest_id, match, "
				"CASE WHEN sent = 1 THEN sent_match END FROM "
				"cache WHERE sync = ?1 AND key > ?3 ORDER BY "
				"key LIMIT ?2", &next, err) < 0)
		goto out;
	for (;;) {
		if (scan_page(st, started ? next : first, sync,
			      started ? &last : NULL, rows, &n, &arena,
			      err) < 0)
			goto out;
		started = 1;
		for (i = 0; i < n; i++) {
			struct retl_state_row row = {
				.key = arena.ptr + rows[i].key, .kh = rows[i].kh,
				.dest_id = rows[i].dest ? arena.ptr + rows[i].dest : NULL,
				.match = rows[i].match ? arena.ptr + rows[i].match : NULL,
				.sent_match = rows[i].sent ? arena.ptr + rows[i].sent : NULL,
			};
			rc = fn(ud, &row);
			if (rc)
				goto out;
		}
		rc = 0;
		if (n < SCAN_CHUNK)
			break;
		retl_buf_reset(&last);
		retl_buf_adds(&last, arena.ptr + rows[n - 1].key);
	}
out:
	retl_db_finalize(first);
	retl_db_finalize(next);
	retl_buf_free(&arena);
	retl_buf_free(&last);
	free(rows);
	return rc;
}

int retl_state_reset(retl_state *st, const char *sync, struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	retl_state__mirror_key(st, sync, NULL);
	if (retl_state__bump_gen(st, sync, err) < 0 ||
	    retl_state__prepare(st, "DELETE FROM cache WHERE sync = ?1",
				&s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	return rc;
}

/* ---- deferred rows (RETL_RES_DEFER) ---- */

int retl_state_stage(retl_state *st, const char *sync,
		     const struct retl_state_rec *r, int op, struct retl_err *err)
{
	if (retl_state__bump_gen(st, sync, err) < 0)
		return -1;
	retl_state__mirror_key(st, sync, r->key);
	retl_db_stmt *s = row_stmt(st, S_STAGE, sync, r->key);

	retl_state__bind_h128(s, 3, r->kh);
	retl_state__bind_text(s, 5, r->dest_id);
	retl_state__bind_text(s, 6, retl_state__now(st));
	retl_state__bind_opt_h128(s, 7, r->pay);
	if (r->src)
		retl_state__bind_u64(s, 9, r->src);
	else
		retl_db_bind_null(s, 9);
	retl_db_bind_int(s, 10, op);
	return retl_state__done(st, s, err);
}

int retl_state_staged(retl_state *st, const char *sync, const char *key,
		      int *op, struct retl_err *err)
{
	retl_db_stmt *s = row_stmt(st, S_STAGED, sync, key);
	int rc = retl_db_step(s);

	if (rc == RETL_DB_ROW) {
		*op = retl_db_col_int(s, 0);
		retl_db_reset(s);
		return 1;
	}
	retl_db_reset(s);
	if (rc == RETL_DB_DONE)
		return 0;
	return retl_state__db_err(st, err);
}

int retl_state_unstage(retl_state *st, const char *sync, const char *key,
		       int ok, const char *dest_id, const char *reason,
		       int64_t run_id, struct retl_err *err)
{
	if (retl_state__bump_gen(st, sync, err) < 0)
		return -1;
	retl_state__mirror_key(st, sync, key);
	retl_db_stmt *s = row_stmt(st, ok ? S_UNSTAGE_OK : S_UNSTAGE_FAIL,
				   sync, key);

	retl_state__bind_text(s, 3, ok ? dest_id : reason);
	retl_state__bind_text(s, 4, retl_state__now(st));
	if (ok)
		retl_db_bind_int64(s, 5, run_id);
	return retl_state__done(st, s, err);
}

long retl_state_count_staged(retl_state *st, const char *sync)
{
	retl_db_stmt *s;
	long n = 0;

	if (retl_db_prepare(st->db, "SELECT COUNT(*) FROM cache WHERE "
			       "sync = ?1 AND status = 4", &s) < 0)
		return 0;
	retl_state__bind_text(s, 1, sync);
	if (retl_db_step(s) == RETL_DB_ROW)
		n = (long)retl_db_col_int64(s, 0);
	retl_db_finalize(s);
	return n;
}
