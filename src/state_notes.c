/*
 * state_notes.c - the small records destinations keep across runs beside
 * the cache: a destination's durable per-sync notes (a bulk job id it must
 * poll after a restart) and the requests spent on a destination per UTC
 * day (daily_limit).  See state.h.
 *
 * Neither touches the cache rows, so neither changes the cache generation.
 */
#include "state.h"
#include "state_int.h"

#include <stdlib.h>

#include "buf.h"

/* ---- destination notes ---- */

char *retl_state_note_get(retl_state *st, const char *sync, const char *name)
{
	retl_db_stmt *s;
	char *v = NULL;

	if (retl_db_prepare(st->db, "SELECT value FROM dest_notes WHERE "
			       "sync = ?1 AND name = ?2", &s) < 0)
		return NULL;
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, name);
	if (retl_db_step(s) == RETL_DB_ROW)
		v = retl_strdup(retl_db_col_text(s, 0));
	retl_db_finalize(s);
	return v;
}

int retl_state_note_set(retl_state *st, const char *sync, const char *name,
			const char *value, struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	if (retl_state__prepare(st, value ?
				"INSERT INTO dest_notes(sync, name, value) "
				"VALUES(?1, ?2, ?3) ON CONFLICT(sync, name) "
				"DO UPDATE SET value = excluded.value" :
				"DELETE FROM dest_notes WHERE sync = ?1 AND "
				"name = ?2", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, name);
	if (value)
		retl_state__bind_text(s, 3, value);
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	return rc;
}

/* ---- API usage ---- */

long retl_state_api_used(retl_state *st, const char *dest, const char *day)
{
	retl_db_stmt *s;
	long n = 0;

	if (retl_db_prepare(st->db, "SELECT calls FROM api_usage WHERE dest = ?1"
			       " AND day = ?2", &s) < 0)
		return 0;
	retl_state__bind_text(s, 1, dest);
	retl_state__bind_text(s, 2, day);
	if (retl_db_step(s) == RETL_DB_ROW)
		n = (long)retl_db_col_int64(s, 0);
	retl_db_finalize(s);
	return n;
}

int retl_state_api_add(retl_state *st, const char *dest, const char *day,
		       long calls, struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	if (retl_state__prepare(st, "INSERT INTO api_usage(dest, day, calls) "
				"VALUES(?1, ?2, ?3) ON CONFLICT(dest, day) DO UPDATE "
				"SET calls = api_usage.calls + excluded.calls", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, dest);
	retl_state__bind_text(s, 2, day);
	retl_db_bind_int64(s, 3, calls);
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	return rc;
}
