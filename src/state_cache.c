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

	if (!sqlite3_get_autocommit(st->db) && st->gen_sync &&
	    !strcmp(st->gen_sync, sync))
		return 0;
	if (getrandom(&gen, sizeof(gen), 0) != sizeof(gen))
		gen = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() ^
		      (uint64_t)(uintptr_t)&gen;
	gen |= 1;       /* 0 is "never changed" */
	sqlite3_stmt *s = st->stmt[S_GEN_SET];
	retl_state__bind_text(s, 1, sync);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)gen);
	if (retl_state__done(st, s, err) < 0)
		return -1;
	if (!sqlite3_get_autocommit(st->db)) {
		free(st->gen_sync);
		st->gen_sync = retl_strdup(sync);
	}
	return 0;
}

static uint64_t get_gen(retl_state *st, const char *sync)
{
	sqlite3_stmt *s = st->stmt[S_GEN_GET];
	uint64_t gen = 0;

	retl_state__bind_text(s, 1, sync);
	if (sqlite3_step(s) == SQLITE_ROW)
		gen = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return gen;
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
	return get_gen(st, sync);
}

static int load_from_sqlite(retl_state *st, const char *sync, retl_cache **out,
			    struct retl_err *err);

int retl_state_load_cache(retl_state *st, const char *sync, retl_cache **out,
			  struct retl_err *err)
{
	char *path = retl_state__sync_path(st, sync, ".cache");
	const char *why = NULL;
	int rc = retl_cache_load(out, path, get_gen(st, sync), &why);

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

int retl_state_save_image(retl_state *st, const char *sync, struct retl_err *err)
{
	char *path = retl_state__sync_path(st, sync, ".cache");
	uint64_t gen = get_gen(st, sync);
	retl_cache *c = NULL;
	int rc = 0;

	if (!retl_cache_image_is(path, gen)) {
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

/* ---- loading from SQLite ---- */

static int count_rows(retl_state *st, const char *sync, size_t *n,
		      struct retl_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (retl_state__prepare(st, "SELECT COUNT(*) FROM cache WHERE "
				"sync = ?1", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*n = (size_t)sqlite3_column_int64(s, 0);
	else
		retl_state__db_err(st, err);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int load_from_sqlite(retl_state *st, const char *sync, retl_cache **out,
			    struct retl_err *err)
{
	sqlite3_stmt *s;
	retl_cache *c;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (count_rows(st, sync, &n, err) < 0)
		return -1;
	if (retl_state__prepare(st, "SELECT kh_lo, kh_hi, pay_lo, pay_hi, "
				"src, status, match_h, sent FROM cache WHERE sync = ?1",
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
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			struct retl_cache_entry *r = &run[k++];
			r->kh.lo = retl_state__col_u64(s, 0);
			r->kh.hi = retl_state__col_u64(s, 1);
			r->pay.lo = retl_state__col_u64(s, 2);
			r->pay.hi = retl_state__col_u64(s, 3);
			r->src = retl_state__col_u64(s, 4);
			r->status = (uint8_t)sqlite3_column_int(s, 5);
			r->mh = retl_state__col_u64(s, 6);
			/* pending and staged rows were handed over too */
			r->sent = sqlite3_column_int(s, 7) == 1 ||
				  r->status == RETL_STATUS_PENDING ||
				  r->status == RETL_STATUS_STAGED;
			retl_cache_prefetch(c, r->kh);
		}
		if (k == RUN || (rc != SQLITE_ROW && k)) {
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
	} while (rc == SQLITE_ROW);
	if (rc != SQLITE_DONE) {
		retl_state__db_err(st, err);
		sqlite3_finalize(s);
		retl_cache_free(c);
		return -1;
	}
	sqlite3_finalize(s);
	*out = c;
	return 0;
}
