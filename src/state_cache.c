/*
 * state_cache.c - a sync's cache as the diff uses it: the cache
 * generation, loading every cached row into a retl_cache, and the cache
 * image (cache.h) that makes the next load one read.  See state.h.
 *
 * The image is a file beside the store, "<db>.<sync>.cache", stamped with
 * the generation it was written for; the rows in SQLite stay the truth.
 * An image that fails its checks (cache.c) is no error for the user: it is
 * logged, removed and the cache loaded from SQLite, as for a stale one.
 */
#include "state.h"
#include "state_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/random.h>

#include "buf.h"
#include "log.h"

/* ---- the cache generation ---- */

/*
 * Every transaction that changes a sync's cache rows gives the sync a new
 * random generation, inside that transaction; a cache image is used only
 * while its stamp equals it.  Random, not a counter: a store restored from
 * a backup never matches an image of another history by accident.
 */
int retl_state__bump_gen(retl_state *st, const char *sync,
			 struct retl_err *err)
{
	uint64_t gen;

	if (retl_db_in_txn(st->db) && st->gen_sync &&
	    !strcmp(st->gen_sync, sync))
		return 0;
	if (getrandom(&gen, sizeof(gen), 0) != sizeof(gen))
		gen = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() ^
		      (uint64_t)(uintptr_t)&gen;
	gen |= 1;       /* 0 is "never changed" */
	retl_db_stmt *s = st->stmt[S_GEN_SET];
	retl_state__bind_text(s, 1, sync);
	retl_db_bind_int64(s, 2, (int64_t)gen);
	if (retl_state__done(st, s, err) < 0)
		return -1;
	if (retl_db_in_txn(st->db)) {
		free(st->gen_sync);
		st->gen_sync = retl_strdup(sync);
	}
	return 0;
}

/* the generation, 0 when the sync has none; -1 (err set) when it cannot
 * be read: a store that is gone (a lost connection) must not pass for one
 * never written, whose images are stamped 0 */
static int get_gen(retl_state *st, const char *sync, uint64_t *gen,
		   struct retl_err *err)
{
	retl_db_stmt *s = st->stmt[S_GEN_GET];
	int rc;

	*gen = 0;
	retl_state__bind_text(s, 1, sync);
	rc = retl_db_step(s);
	if (rc == RETL_DB_ROW)
		*gen = (uint64_t)retl_db_col_int64(s, 0);
	else if (rc == RETL_DB_ERROR)
		retl_state__db_err(st, err);
	retl_db_reset(s);
	return rc == RETL_DB_ERROR ? -1 : 0;
}

FILE *retl_state_spool_file(retl_state *st, const char *sync, struct retl_err *err)
{
	char *path = retl_state__sync_path(st, sync, ".spool-XXXXXX");
	FILE *f = NULL;
	int fd = mkstemp(path);         /* 0600 */
	if (fd >= 0) {
		unlink(path);
		if (!(f = fdopen(fd, "w+")))
			close(fd);
	}
	if (!f)
		retl_state__sys_err(st, err, "cannot make the run's spool", path);
	free(path);
	return f;
}

uint64_t retl_state_generation(retl_state *st, const char *sync)
{
	struct retl_err err;
	uint64_t gen;

	retl_err_clear(&err);
	get_gen(st, sync, &gen, &err);
	return gen;
}

static int load_from_sqlite(retl_state *st, const char *sync, retl_cache **out,
			    struct retl_err *err);

int retl_state_load_cache(retl_state *st, const char *sync, retl_cache **out,
			  struct retl_err *err)
{
	char *path = retl_state__sync_path(st, sync, ".cache");
	const char *why = NULL;
	uint64_t gen;

	*out = NULL;
	if (get_gen(st, sync, &gen, err) < 0) {
		free(path);
		return -1;
	}
	int rc = retl_cache_load(out, path, gen, &why);

	if (rc == RETL_CACHE_IMAGE_BAD) {
		/* only a copy: removed, so the next save writes it afresh
		 * and this is said once, not at every run */
		retl_log(RETL_LOG_WARN, sync, "cache image %s is damaged "
			 "(%s): ignored and removed; the cache is loaded from "
			 "the state store instead", path, why);
		unlink(path);
	}
	free(path);
	if (rc == 0)
		return 0;
	return load_from_sqlite(st, sync, out, err);
}

/* 0 written (or current), 1 nothing written (no usable mirror and
 * !from_sqlite), -1 error */
static int save_image(retl_state *st, const char *sync, int from_sqlite,
		      struct retl_err *err)
{
	char *path = retl_state__sync_path(st, sync, ".cache");
	uint64_t gen;
	retl_cache *c = NULL;
	int rc = 0;

	if (get_gen(st, sync, &gen, err) < 0) {
		retl_state_mirror(st, NULL, NULL);
		free(path);
		return -1;
	}

	if (retl_cache_image_is(path, gen))
		retl_state_mirror(st, NULL, NULL);
	else
		rc = retl_state__mirror_save(st, sync, path, gen, err);
	if (rc == 1 && from_sqlite) {
		/* no mirror that followed every write: read the table */
		rc = load_from_sqlite(st, sync, &c, err);
		if (rc == 0 && retl_cache_save(c, path, gen) < 0)
			rc = retl_err_set(err, RETL_EXIT_USAGE,
					  "state store: cannot write %s: %s",
					  path, strerror(errno));
		retl_cache_free(c);
	}
	free(path);
	return rc;
}

int retl_state_save_image(retl_state *st, const char *sync, struct retl_err *err)
{
	return save_image(st, sync, 1, err);
}

int retl_state_save_mirror(retl_state *st, const char *sync, struct retl_err *err)
{
	return save_image(st, sync, 0, err);
}

void retl_state__entry_from_row(retl_db_stmt *s, struct retl_cache_entry *e)
{
	e->pay.lo = retl_state__col_u64(s, 0);
	e->pay.hi = retl_state__col_u64(s, 1);
	e->src = retl_state__col_u64(s, 2);
	e->status = (uint8_t)retl_db_col_int(s, 3);
	e->mh = retl_state__col_u64(s, 4);
	/* pending and staged rows were handed over too */
	e->sent = retl_db_col_int(s, 5) == 1 ||
		  e->status == RETL_STATUS_PENDING ||
		  e->status == RETL_STATUS_STAGED;
	e->cached = 1;
	e->seen = 0;
}

/* ---- loading from SQLite ---- */

static int count_rows(retl_state *st, const char *sync, size_t *n,
		      struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	if (retl_state__prepare(st, "SELECT COUNT(*) FROM cache WHERE "
				"sync = ?1", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	rc = retl_db_step(s);
	if (rc == RETL_DB_ROW)
		*n = (size_t)retl_db_col_int64(s, 0);
	else
		retl_state__db_err(st, err);
	retl_db_finalize(s);
	return rc == RETL_DB_ROW ? 0 : -1;
}

static int load_from_sqlite(retl_state *st, const char *sync, retl_cache **out,
			    struct retl_err *err)
{
	retl_db_stmt *s;
	retl_cache *c;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (count_rows(st, sync, &n, err) < 0)
		return -1;
	if (retl_state__prepare(st, "SELECT " RETL_STATE_ENTRY_COLS
				" FROM cache WHERE sync = ?1",
				&s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	c = retl_cache_new(n);
	/* rows come in key order, slots are random: read a run of rows,
	 * prefetch their slots, then insert them */
	enum { RUN = 32 };
	struct retl_cache_entry run[RUN];
	size_t k = 0;
	do {
		rc = retl_db_step(s);
		if (rc == RETL_DB_ROW) {
			struct retl_cache_entry *r = &run[k++];
			r->kh = retl_state__col_kh(s, 8, 6);
			retl_state__entry_from_row(s, r);
			retl_cache_prefetch(c, r->kh);
		}
		if (k == RUN || (rc != RETL_DB_ROW && k)) {
			for (size_t i = 0; i < k; i++) {
				struct retl_cache_entry *e =
					retl_cache_upsert(c, run[i].kh, NULL);
				e->pay = run[i].pay;
				e->src = run[i].src;
				e->status = run[i].status;
				e->mh = run[i].mh;
				e->sent = run[i].sent;
				e->cached = 1;
				e->seen = 0;
			}
			k = 0;
		}
	} while (rc == RETL_DB_ROW);
	if (rc != RETL_DB_DONE) {
		retl_state__db_err(st, err);
		retl_db_finalize(s);
		retl_cache_free(c);
		return -1;
	}
	retl_db_finalize(s);
	*out = c;
	return 0;
}

/* a test's check that the mirror followed the store (state_mirror.c) */
void retl_state__verify_image(retl_state *st, const char *sync, retl_cache *c)
{
	struct retl_err err;
	retl_cache *t = NULL;
	struct retl_cache_entry *e, *m;
	size_t it = 0, bad = 0;

	retl_err_clear(&err);
	if (load_from_sqlite(st, sync, &t, &err) < 0) {
		fprintf(stderr, "retl: RETL_TEST_VERIFY_IMAGE: %s\n", err.msg);
		abort();
	}
	while ((e = retl_cache_next(t, &it))) {
		m = retl_cache_find(c, e->kh);
		if (!m || !retl_h128_eq(m->pay, e->pay) || m->src != e->src ||
		    m->status != e->status || m->mh != e->mh ||
		    m->sent != e->sent || !m->cached) {
			char h[33];
			retl_h128_hex(e->kh, h);
			fprintf(stderr, "retl: RETL_TEST_VERIFY_IMAGE: sync %s: key hash "
				"%s: the image %s the store's row\n", sync, h,
				m ? "differs from" : "lacks");
			bad++;
		}
	}
	if (retl_cache_count(t) != retl_cache_count(c)) {
		fprintf(stderr, "retl: RETL_TEST_VERIFY_IMAGE: sync %s: the image "
			"holds %zu rows, the store %zu\n", sync,
			retl_cache_count(c), retl_cache_count(t));
		bad++;
	}
	retl_cache_free(t);
	if (bad)
		abort();
}
