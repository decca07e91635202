/*
 * state_audit.c - the state store's side of the sync logs in the warehouse
 * (state_audit.h, audit.c writes them).
 *
 * Plain SQL only (no SQLite-only syntax), so the statements run unchanged
 * on the PostgreSQL state store too.  Every statement here is prepared
 * when used: these run once per run, never per row of the diff.
 */
#include "state_audit.h"
#include "state_int.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

static int set_audited(retl_state *st, const char *sql, int64_t run_id,
		       const char *sync, struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	if (retl_state__prepare(st, sql, &s, err) < 0)
		return -1;
	if (sync)
		retl_state__bind_text(s, 1, sync);
	else
		retl_db_bind_int64(s, 1, run_id);
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	return rc;
}

int retl_state_audit_want(retl_state *st, int64_t run_id, struct retl_err *err)
{
	return set_audited(st, "UPDATE runs SET audited = 0 WHERE id = ?1",
			   run_id, NULL, err);
}

int retl_state_audit_drop(retl_state *st, const char *sync,
			  struct retl_err *err)
{
	return set_audited(st, "UPDATE runs SET audited = NULL WHERE sync = ?1"
			   " AND audited = 0", 0, sync, err);
}

int retl_state_audit_done(retl_state *st, int64_t run_id, struct retl_err *err)
{
	return set_audited(st, "UPDATE runs SET audited = 1 WHERE id = ?1",
			   run_id, NULL, err);
}

int retl_state_audit_pending(retl_state *st, const char *sync, int64_t **ids,
			     size_t *n, struct retl_err *err)
{
	retl_db_stmt *s;
	size_t cap = 0;
	int rc;

	*ids = NULL;
	*n = 0;
	if (retl_state__prepare(st, "SELECT id FROM runs WHERE sync = ?1 AND "
				"audited = 0 AND status <> '" RETL_RUN_RUNNING
				"' ORDER BY id", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	while ((rc = retl_db_step(s)) == RETL_DB_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			*ids = retl_realloc(*ids, cap * sizeof(**ids));
		}
		(*ids)[(*n)++] = retl_db_col_int64(s, 0);
	}
	if (rc != RETL_DB_DONE) {
		retl_state__db_err(st, err);
		retl_db_finalize(s);
		free(*ids);
		*ids = NULL;
		*n = 0;
		return -1;
	}
	retl_db_finalize(s);
	return 0;
}

char *retl_state_audit_store_id(retl_state *st)
{
	retl_db_stmt *s;
	char *id = NULL;

	if (retl_state__prepare(st, "SELECT value FROM meta WHERE key = "
				"'store_id'", &s, NULL) < 0)
		return NULL;
	if (retl_db_step(s) == RETL_DB_ROW && retl_db_col_text(s, 0))
		id = retl_strdup(retl_db_col_text(s, 0));
	retl_db_finalize(s);
	return id;
}

static char *dup_col(retl_db_stmt *s, int i)
{
	const char *t = retl_db_col_text(s, i);
	return t ? retl_strdup(t) : NULL;
}

int retl_state_audit_run(retl_state *st, int64_t run_id,
			 struct retl_run_rec *rec, struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	memset(rec, 0, sizeof(*rec));
	if (retl_state__prepare(st, RETL_STATE_RUN_COLS "WHERE id = ?1", &s, err) < 0)
		return -1;
	retl_db_bind_int64(s, 1, run_id);
	rc = retl_db_step(s);
	if (rc == RETL_DB_ROW) {
		/* the report's reading, with strings the caller owns */
		retl_state__run_rec(s, rec);
		rec->sync = dup_col(s, 1);
		rec->started = dup_col(s, 2);
		rec->ended = dup_col(s, 3);
		rec->status = dup_col(s, 4);
		rec->message = dup_col(s, 18);
		if (retl_db_col_null(s, 6))
			rec->seconds = -1;
		rec->allow_removals = -1;
		rc = 0;
	} else if (rc == RETL_DB_DONE) {
		rc = 1;
	} else {
		rc = retl_state__db_err(st, err);
	}
	retl_db_finalize(s);
	return rc;
}

void retl_state_audit_rec_free(struct retl_run_rec *rec)
{
	free((char *)rec->sync);
	free((char *)rec->started);
	free((char *)rec->ended);
	free((char *)rec->status);
	free((char *)rec->message);
	memset(rec, 0, sizeof(*rec));
}

static const char *status_of(const char *operation)
{
	if (!strcmp(operation, "rejected"))
		return "rejected";
	if (!strcmp(operation, "failed"))
		return "failed";
	return "synced";
}

/* steps s, calling fn per row: key in column 0, operation in 1, error in 2
 * (operation NULL: last_change in column 3) */
static int stream(retl_state *st, retl_db_stmt *s, retl_state_audit_row_fn fn,
		  void *ud, struct retl_err *err)
{
	static const char *const change[] = { "added", "changed", "retried" };
	int rc, stop = 0;

	while (!stop && (rc = retl_db_step(s)) == RETL_DB_ROW) {
		struct retl_audit_row r = {
			.key = retl_db_col_text(s, 0),
			.operation = retl_db_col_text(s, 1),
			.error = retl_db_col_text(s, 2),
		};
		if (!r.operation) {
			int c = retl_db_col_int(s, 3);
			r.operation = change[c >= 0 && c <= 2 ? c : 1];
		}
		r.status = status_of(r.operation);
		stop = fn(ud, &r);
	}
	if (stop)
		return stop;
	if (rc != RETL_DB_DONE)
		return retl_state__db_err(st, err);
	return 0;
}

int retl_state_audit_rows(retl_state *st, const char *sync, int64_t run_id,
			  int synced, retl_state_audit_row_fn fn, void *ud,
			  struct retl_err *err)
{
	/* status 1: synced; a row the run acknowledged that failed later is
	 * the later run's (its outcome says so) */
	static const char *const sql[] = {
		"SELECT key, outcome, reason FROM outcomes WHERE run_id = ?1",
		"SELECT key, NULL, NULL, last_change FROM cache WHERE sync = ?2 "
		"AND last_run = ?1 AND status = 1",
	};
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < (synced ? 2u : 1u); i++) {
		retl_db_stmt *s;
		if (retl_state__prepare(st, sql[i], &s, err) < 0)
			return -1;
		retl_db_bind_int64(s, 1, run_id);
		if (i == 1)
			retl_state__bind_text(s, 2, sync);
		rc = stream(st, s, fn, ud, err);
		retl_db_finalize(s);
	}
	return rc;
}
