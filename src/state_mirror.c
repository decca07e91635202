/*
 * state_mirror.c - the run's cache kept equal to the store, so the cache
 * image is written from memory at the end of a run (retl_state_mirror).
 *
 * Reading a million rows back from SQLite to rewrite the image cost more
 * than the rest of a run that changed 1 % of them.  The run already holds
 * the cache it loaded; what it lacks is every write since.  So each write
 * to the attached sync's rows is noted, and applied to the cache only when
 * its transaction commits (a rollback changed nothing, so it drops them):
 *
 *   - an acknowledgement (the bulk of every run) and a new source hash are
 *     applied as the statement does: the fields of the entry are known;
 *   - any other write (fail, pending, sent, stage, unstage, forget) only
 *     marks its key: at save the row is read back by key, which is exact
 *     whatever the statement's CASEs did.  When more than an eighth of the
 *     rows were marked, the whole cache is read back instead (cheaper);
 *   - a write the mirror cannot follow (reset) drops the mirror: the image
 *     is then rebuilt from SQLite, as before.
 *
 * Entries the run created for new keys and never wrote are not in the
 * store and are forgotten before the image is written (which writes
 * every entry with `seen` 0, see cache.h).
 * RETL_TEST_VERIFY_IMAGE=1 (set by the integration tests) compares the
 * image with the table and aborts on any difference: every test run is a
 * check that the mirror follows the store.
 */
#include "state.h"
#include "state_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

enum { M_ACK, M_SRC };

struct mirror_op {
	retl_h128 kh, pay;
	uint64_t src, mh;
	int kind;
};

struct retl_state_mirror {
	retl_cache *cache;
	char *sync;
	int broken;                     /* a write it cannot follow */
	struct mirror_op *ops;          /* this transaction's, in order */
	size_t nops, capops;
	retl_buf keys;                  /* keys to read back: committed */
	size_t nkeys;
	size_t keys_txn;                /* keys.len at begin */
	size_t nkeys_txn;
};

static struct retl_state_mirror *mirror_of(retl_state *st, const char *sync)
{
	struct retl_state_mirror *m = st->mirror;

	return m && !m->broken && !strcmp(m->sync, sync) ? m : NULL;
}

void retl_state_mirror(retl_state *st, const char *sync, retl_cache *c)
{
	if (!st)
		return;
	struct retl_state_mirror *m = st->mirror;

	if (m) {
		free(m->ops);
		free(m->sync);
		retl_buf_free(&m->keys);
		free(m);
		st->mirror = NULL;
	}
	if (!c)
		return;
	m = retl_calloc(1, sizeof(*m));
	m->cache = c;
	m->sync = retl_strdup(sync);
	st->mirror = m;
}

static void push(struct retl_state_mirror *m, const struct mirror_op *op)
{
	if (m->nops == m->capops) {
		m->capops = m->capops ? m->capops * 2 : 256;
		m->ops = retl_realloc(m->ops, m->capops * sizeof(*m->ops));
	}
	m->ops[m->nops++] = *op;
}

static void apply(struct retl_state_mirror *m, const struct mirror_op *op)
{
	struct retl_cache_entry *e;

	if (op->kind == M_SRC) {
		e = retl_cache_find(m->cache, op->kh);
		if (e && e->cached)
			e->src = op->src;
		else
			m->broken = 1;  /* an UPDATE of a row it never saw */
		return;
	}
	/* the row as S_ACK leaves it (see state.c) */
	e = retl_cache_upsert(m->cache, op->kh, NULL);
	e->pay = op->pay;
	e->src = op->src;
	e->mh = op->mh;
	e->status = RETL_STATUS_OK;
	e->sent = 0;
	e->cached = 1;
}

/* outside a transaction a write commits at once */
static void note(retl_state *st, struct retl_state_mirror *m,
		 const struct mirror_op *op)
{
	if (!retl_db_in_txn(st->db))
		apply(m, op);
	else
		push(m, op);
}

void retl_state__mirror_ack(retl_state *st, const char *sync,
			    const struct retl_state_rec *r)
{
	struct retl_state_mirror *m = mirror_of(st, sync);
	if (!m)
		return;
	struct mirror_op op = {
		.kind = M_ACK, .kh = r->kh, .pay = r->pay, .src = r->src,
		.mh = r->match ? r->mh : 0,
	};
	note(st, m, &op);
}

void retl_state__mirror_src(retl_state *st, const char *sync,
			    const struct retl_state_rec *r)
{
	struct retl_state_mirror *m = mirror_of(st, sync);
	if (!m)
		return;
	struct mirror_op op = { .kind = M_SRC, .kh = r->kh, .src = r->src };
	note(st, m, &op);
}

void retl_state__mirror_key(retl_state *st, const char *sync, const char *key)
{
	struct retl_state_mirror *m = mirror_of(st, sync);
	if (!m)
		return;
	if (!key) {
		m->broken = 1;
		return;
	}
	retl_buf_adds(&m->keys, key);
	retl_buf_addc(&m->keys, '\0');
	m->nkeys++;
	if (!retl_db_in_txn(st->db)) {
		m->keys_txn = m->keys.len;
		m->nkeys_txn = m->nkeys;
	}
}

void retl_state__mirror_begin(retl_state *st)
{
	struct retl_state_mirror *m = st->mirror;
	if (!m)
		return;
	m->nops = 0;
	m->keys_txn = m->keys.len;
	m->nkeys_txn = m->nkeys;
}

void retl_state__mirror_end(retl_state *st, int committed)
{
	struct retl_state_mirror *m = st->mirror;
	if (!m)
		return;
	if (committed) {
		for (size_t i = 0; i < m->nops && !m->broken; i++)
			apply(m, &m->ops[i]);
	} else {
		m->keys.len = m->keys_txn;
		m->nkeys = m->nkeys_txn;
	}
	m->nops = 0;
	m->keys_txn = m->keys.len;
	m->nkeys_txn = m->nkeys;
}

/* the marked key's row, read back into its entry (or its absence) */
static int read_back(retl_state *st, retl_db_stmt *s, const char *key,
		     retl_cache *c, struct retl_err *err)
{
	retl_h128 kh = retl_hash128(key, strlen(key));
	struct retl_cache_entry *e;
	int rc;

	retl_state__bind_text(s, 2, key);
	rc = retl_db_step(s);
	if (rc == RETL_DB_ROW) {
		e = retl_cache_upsert(c, kh, NULL);
		retl_state__entry_from_row(s, e);
	} else if (rc == RETL_DB_DONE) {
		e = retl_cache_find(c, kh);
		if (e)
			e->cached = 0;  /* left out below */
	} else {
		retl_state__db_err(st, err);
	}
	retl_db_reset(s);
	return rc == RETL_DB_ROW || rc == RETL_DB_DONE ? 0 : -1;
}

/*
 * The mirror's cache made equal to the store: 0, or 1 when it cannot be
 * (broken, or so many keys to read back that reading the table is
 * cheaper), or -1 on a store error.
 */
static int settle(retl_state *st, struct retl_state_mirror *m,
		  struct retl_err *err)
{
	retl_cache *c = m->cache;
	retl_db_stmt *s;
	size_t off, it;
	struct retl_cache_entry *e;

	if (m->broken || m->nkeys > retl_cache_count(c) / 8 + 64)
		return 1;
	if (m->nkeys) {
		if (retl_state__prepare(st, "SELECT " RETL_STATE_ENTRY_COLS
					" FROM cache WHERE sync = ?1 AND key = ?2",
					&s, err) < 0)
			return -1;
		retl_state__bind_text(s, 1, m->sync);
		for (off = 0; off < m->keys.len; off += strlen(m->keys.ptr + off) + 1)
			if (read_back(st, s, m->keys.ptr + off, c, err) < 0) {
				retl_db_finalize(s);
				return -1;
			}
		retl_db_finalize(s);
	}
	/* new keys never written, and rows forgotten, are not in the store
	 * (forgetting leaves the other entries where they are) */
	for (it = 0; (e = retl_cache_next(c, &it));)
		if (!e->cached)
			retl_cache_forget(c, e->kh);
	return 0;
}

int retl_state__mirror_save(retl_state *st, const char *sync, const char *path,
			    uint64_t gen, struct retl_err *err)
{
	struct retl_state_mirror *m = mirror_of(st, sync);
	int rc;

	if (!m || retl_db_in_txn(st->db))
		return 1;
	rc = settle(st, m, err);
	if (rc != 0) {
		retl_state_mirror(st, NULL, NULL);
		return rc;
	}
	retl_cache *c = m->cache;
	retl_log(RETL_LOG_DEBUG, sync, "cache image: written from the run's cache "
		 "(%zu rows, %zu read back)", retl_cache_count(c), m->nkeys);
	retl_state_mirror(st, NULL, NULL);
	if (retl_cache_save(c, path, gen) < 0)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "state store: cannot write %s: %s", path,
				    strerror(errno));
	if (getenv("RETL_TEST_VERIFY_IMAGE"))
		retl_state__verify_image(st, sync, c);
	return 0;
}
