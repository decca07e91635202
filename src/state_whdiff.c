/*
 * state_whdiff.c - the state store's point reads for "diff": "warehouse"
 * (sync_whdiff.c): there the warehouse returns only the keys that changed,
 * so a run reads the cache rows of those keys one by one instead of
 * loading the sync's whole cache.  Reads only; every write still goes
 * through state_rows.c.  See state.h.
 */
#include "state.h"
#include "state_int.h"

#include <stdlib.h>

#include "buf.h"

struct retl_state_lookup {
	retl_state *st;
	char *sync;
	retl_db_stmt *entry, *row;
};

int retl_state_lookup_new(retl_state *st, const char *sync,
			  retl_state_lookup **out, struct retl_err *err)
{
	retl_state_lookup *l = retl_calloc(1, sizeof(*l));
	l->st = st;
	l->sync = retl_strdup(sync);
	*out = l;
	if (retl_state__prepare(st, "SELECT " RETL_STATE_ENTRY_COLS
				", dest_id FROM cache WHERE sync = ?1 AND key = ?2",
				&l->entry, err) < 0 ||
	    retl_state__prepare(st, "SELECT key, kh_lo, kh_hi, dest_id, match, "
				"CASE WHEN sent = 1 THEN sent_match END FROM "
				"cache WHERE sync = ?1 AND key = ?2",
				&l->row, err) < 0) {
		retl_state_lookup_free(l);
		*out = NULL;
		return -1;
	}
	return 0;
}

void retl_state_lookup_free(retl_state_lookup *l)
{
	if (!l)
		return;
	retl_db_finalize(l->entry);
	retl_db_finalize(l->row);
	free(l->sync);
	free(l);
}

int retl_state_lookup_entry(retl_state_lookup *l, const char *key,
			    struct retl_cache_entry *e, char **dest_id,
			    struct retl_err *err)
{
	if (dest_id)
		*dest_id = NULL;
	retl_db_stmt *s = l->entry;
	retl_state__bind_text(s, 1, l->sync);
	retl_state__bind_text(s, 2, key);
	int rc = retl_db_step(s), found = 0;
	if (rc == RETL_DB_ROW) {
		retl_state__entry_from_row(s, e);
		e->kh = retl_state__col_kh(s, 8, 6);
		if (dest_id && !retl_db_col_null(s, 9))
			*dest_id = retl_strdup(retl_db_col_text(s, 9));
		found = 1;
	} else if (rc != RETL_DB_DONE) {
		retl_db_reset(s);
		return retl_state__db_err(l->st, err);
	}
	retl_db_reset(s);
	return found;
}

int retl_state_lookup_row(retl_state_lookup *l, const char *key,
			  retl_state_row_fn fn, void *ud, struct retl_err *err)
{
	retl_db_stmt *s = l->row;
	retl_state__bind_text(s, 1, l->sync);
	retl_state__bind_text(s, 2, key);
	int rc = retl_db_step(s);
	if (rc == RETL_DB_DONE) {
		retl_db_reset(s);
		return 0;
	}
	if (rc != RETL_DB_ROW) {
		retl_db_reset(s);
		return retl_state__db_err(l->st, err);
	}
	/* copied: fn may write to the store, which resets s */
	char *k = retl_strdup(retl_db_col_text(s, 0));
	char *dest = NULL, *match = NULL, *sent = NULL;
	if (!retl_db_col_null(s, 3))
		dest = retl_strdup(retl_db_col_text(s, 3));
	if (!retl_db_col_null(s, 4))
		match = retl_strdup(retl_db_col_text(s, 4));
	if (!retl_db_col_null(s, 5))
		sent = retl_strdup(retl_db_col_text(s, 5));
	struct retl_state_row row = {
		.key = k, .kh = retl_state__col_kh(s, 0, 1),
		.dest_id = dest, .match = match, .sent_match = sent,
	};
	retl_db_reset(s);
	rc = fn(ud, &row);
	free(k);
	free(dest);
	free(match);
	free(sent);
	return rc;
}

/* the few rows a run must look at even when the warehouse says their
 * model row is unchanged: failing, pending and staged ones (both kept
 * findable by partial indexes, cache_failed and cache_unsynced) */
int retl_state_unsynced_keys(retl_state *st, const char *sync,
			     void (*fn)(void *ud, const char *key), void *ud,
			     struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;
	/* SQLite picks the primary key (a scan of the sync) unless told;
	 * PostgreSQL has no INDEXED BY and its planner finds the partial
	 * indexes by itself */
#define UNSYNCED(by_failed, by_unsynced) "SELECT key FROM cache " by_failed \
	"WHERE sync = ?1 AND status = 2 UNION ALL SELECT key FROM cache " \
	by_unsynced "WHERE sync = ?1 AND status IN (3, 4)"
	if (retl_state__prepare(st, st->pg ? UNSYNCED("", "") :
				UNSYNCED("INDEXED BY cache_failed ",
					 "INDEXED BY cache_unsynced "), &s, err) < 0)
		return -1;
#undef UNSYNCED
	retl_state__bind_text(s, 1, sync);
	while ((rc = retl_db_step(s)) == RETL_DB_ROW)
		fn(ud, retl_db_col_text(s, 0));
	if (rc != RETL_DB_DONE) {
		retl_db_finalize(s);
		return retl_state__db_err(st, err);
	}
	retl_db_finalize(s);
	return 0;
}

long retl_state_count_rows(retl_state *st, const char *sync, int any)
{
	retl_db_stmt *s;
	struct retl_err err;
	long n = 0;
	retl_err_clear(&err);
	if (retl_state__prepare(st, any ? "SELECT 1 FROM cache WHERE sync = ?1 LIMIT 1" :
				"SELECT COUNT(*) FROM cache WHERE sync = ?1",
				&s, &err) < 0)
		return 0;
	retl_state__bind_text(s, 1, sync);
	if (retl_db_step(s) == RETL_DB_ROW)
		n = (long)retl_db_col_int64(s, 0);
	retl_db_finalize(s);
	return n;
}
