/*
 * state_orphans.c - records at the destination that no key is bound to
 * any more: a key's match value moved (its old record stays behind), or an
 * unacknowledged send under an old match value may have made one.  The
 * rows are written by retl_state_ack / retl_state_sent (state_rows.c);
 * mirror runs read them here and remove what is not bound again.
 */
#include "state.h"
#include "state_int.h"

#include <stdlib.h>

#include "buf.h"

int retl_state_orphans(retl_state *st, const char *sync, retl_state_orphan_fn fn,
		       void *ud, struct retl_err *err)
{
	retl_db_stmt *s;
	/* read them all first: fn may write (they are few) */
	struct row { size_t match, dest; int attempts; } *rows = NULL;
	size_t n = 0, cap = 0;
	retl_buf text = RETL_BUF_INIT;
	int rc;

	if (retl_state__prepare(st, "SELECT match, dest_id, attempts FROM orphans "
				"WHERE sync = ?1 ORDER BY match", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	retl_buf_addc(&text, '\0');     /* offset 0 stands for NULL */
	while ((rc = retl_db_step(s)) == RETL_DB_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = retl_realloc(rows, cap * sizeof(*rows));
		}
		rows[n].match = text.len;
		retl_buf_adds(&text, retl_db_col_text(s, 0));
		retl_buf_addc(&text, '\0');
		rows[n].dest = 0;
		if (!retl_db_col_null(s, 1)) {
			rows[n].dest = text.len;
			retl_buf_adds(&text, retl_db_col_text(s, 1));
			retl_buf_addc(&text, '\0');
		}
		rows[n++].attempts = retl_db_col_int(s, 2);
	}
	if (rc != RETL_DB_DONE)
		retl_state__db_err(st, err);
	retl_db_finalize(s);
	for (size_t i = 0; rc == RETL_DB_DONE && i < n; i++) {
		struct retl_state_orphan o = {
			.match = text.ptr + rows[i].match,
			.dest_id = rows[i].dest ? text.ptr + rows[i].dest : NULL,
			.attempts = rows[i].attempts,
		};
		int r = fn(ud, &o);
		if (r) {
			free(rows);
			retl_buf_free(&text);
			return r;
		}
	}
	free(rows);
	retl_buf_free(&text);
	return rc == RETL_DB_DONE ? 0 : -1;
}

int retl_state_orphan_add(retl_state *st, const char *sync, const char *match,
			  const char *dest_id, struct retl_err *err)
{
	retl_db_stmt *s;
	if (retl_state__prepare(st, "INSERT INTO orphans(sync, match, dest_id, "
				"since) VALUES(?1, ?2, ?3, ?4) ON CONFLICT DO "
				"NOTHING", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, match);
	retl_state__bind_text(s, 3, dest_id);
	retl_state__bind_text(s, 4, retl_state__now(st));
	int rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	return rc;
}

int retl_state_orphan_done(retl_state *st, const char *sync, const char *match,
			   struct retl_err *err)
{
	retl_db_stmt *s = st->stmt[S_ORPHAN_DONE];
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, match);
	return retl_state__done(st, s, err);
}

int retl_state_orphan_fail(retl_state *st, const char *sync, const char *match,
			   const char *reason, struct retl_err *err)
{
	retl_db_stmt *s = st->stmt[S_ORPHAN_FAIL];
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, match);
	retl_state__bind_text(s, 3, reason);
	return retl_state__done(st, s, err);
}
