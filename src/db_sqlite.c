/*
 * db_sqlite.c - the database layer (db.h) over SQLite: a thin wrapper,
 * the state files were written against this API.
 *
 * One thing is added: a collation named "C" (byte order, SQLite's BINARY)
 * so that the statements that fold ASCII case can be written once as
 * lower(x COLLATE "C"), which both SQLite (whose lower() folds ASCII only)
 * and PostgreSQL (where lower() under "C" folds ASCII only) read alike.
 */
#include "db.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

struct sq_db {
	struct retl_db base;
	sqlite3 *h;
};

struct sq_stmt {
	struct retl_db_stmt base;
	sqlite3_stmt *s;
};

#define H(db) (((struct sq_db *)(db))->h)
#define S(st) (((struct sq_stmt *)(st))->s)

static int sq_prepare(retl_db *db, const char *sql, retl_db_stmt **out)
{
	sqlite3_stmt *s;

	*out = NULL;
	if (sqlite3_prepare_v2(H(db), sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	struct sq_stmt *st = retl_calloc(1, sizeof(*st));
	st->base.db = db;
	st->s = s;
	*out = &st->base;
	return 0;
}

static void sq_bind_int64(retl_db_stmt *s, int i, int64_t v)
{
	sqlite3_bind_int64(S(s), i, (sqlite3_int64)v);
}

static void sq_bind_double(retl_db_stmt *s, int i, double v)
{
	sqlite3_bind_double(S(s), i, v);
}

static void sq_bind_text(retl_db_stmt *s, int i, const char *v, int len)
{
	sqlite3_bind_text(S(s), i, v, len, SQLITE_STATIC);
}

static void sq_bind_null(retl_db_stmt *s, int i)
{
	sqlite3_bind_null(S(s), i);
}

static int sq_step(retl_db_stmt *s)
{
	int rc = sqlite3_step(S(s));
	return rc == SQLITE_ROW ? RETL_DB_ROW :
	       rc == SQLITE_DONE ? RETL_DB_DONE : RETL_DB_ERROR;
}

static int sq_col_null(retl_db_stmt *s, int i)
{
	return sqlite3_column_type(S(s), i) == SQLITE_NULL;
}

static int64_t sq_col_int64(retl_db_stmt *s, int i)
{
	return (int64_t)sqlite3_column_int64(S(s), i);
}

static double sq_col_double(retl_db_stmt *s, int i)
{
	return sqlite3_column_double(S(s), i);
}

static const char *sq_col_text(retl_db_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(S(s), i);
}

static int sq_col_bytes(retl_db_stmt *s, int i)
{
	return sqlite3_column_bytes(S(s), i);
}

static void sq_reset(retl_db_stmt *s)
{
	sqlite3_reset(S(s));
}

static void sq_finalize(retl_db_stmt *s)
{
	sqlite3_finalize(S(s));
	free(s);
}

static int sq_exec(retl_db *db, const char *sql)
{
	return sqlite3_exec(H(db), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int sq_begin(retl_db *db, enum retl_db_begin mode)
{
	/* IMMEDIATE: the write lock now, not at the first write, so a busy
	 * store is waited for (busy_timeout) instead of failing mid-way */
	return sq_exec(db, mode == RETL_DB_WRITE ? "BEGIN IMMEDIATE" : "BEGIN");
}

static int64_t sq_changes(retl_db *db)
{
	return sqlite3_changes(H(db));
}

static int sq_in_txn(retl_db *db)
{
	return !sqlite3_get_autocommit(H(db));
}

static const char *sq_errmsg(retl_db *db)
{
	return sqlite3_errmsg(H(db));
}

static enum retl_db_kind sq_errkind(retl_db *db)
{
	switch (sqlite3_extended_errcode(H(db)) & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return RETL_DB_OK;
	case SQLITE_CONSTRAINT:
		return RETL_DB_ECONSTRAINT;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return RETL_DB_ECORRUPT;
	case SQLITE_FULL:
		return RETL_DB_EFULL;
	case SQLITE_IOERR:
		return RETL_DB_EIO;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_CANTOPEN:
		return RETL_DB_EPERM;
	default:
		return RETL_DB_EOTHER;
	}
}

static void sq_close(retl_db *db)
{
	sqlite3_close(H(db));
	free(db);
}

static const struct retl_db_ops sq_ops = {
	.name = "sqlite",
	.prepare = sq_prepare,
	.bind_int64 = sq_bind_int64,
	.bind_double = sq_bind_double,
	.bind_text = sq_bind_text,
	.bind_null = sq_bind_null,
	.step = sq_step,
	.col_null = sq_col_null,
	.col_int64 = sq_col_int64,
	.col_double = sq_col_double,
	.col_text = sq_col_text,
	.col_bytes = sq_col_bytes,
	.reset = sq_reset,
	.finalize = sq_finalize,
	.exec = sq_exec,
	.begin = sq_begin,
	.changes = sq_changes,
	.in_txn = sq_in_txn,
	.errmsg = sq_errmsg,
	.errkind = sq_errkind,
	.close = sq_close,
};

static int cmp_bytes(void *ud, int n1, const void *a, int n2, const void *b)
{
	int n = n1 < n2 ? n1 : n2;
	int c = memcmp(a, b, (size_t)n);

	(void)ud;
	return c ? c : n1 - n2;
}

int retl_db_sqlite_open(retl_db **out, const char *path, int flags,
			int busy_ms)
{
	sqlite3 *h = NULL;
	int rc = sqlite3_open_v2(path, &h, flags, NULL);

	*out = NULL;
	if (!h)
		return rc;
	struct sq_db *db = retl_calloc(1, sizeof(*db));
	db->base.ops = &sq_ops;
	db->h = h;
	*out = &db->base;
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_busy_timeout(h, busy_ms);
	return sqlite3_create_collation(h, "C", SQLITE_UTF8, NULL, cmp_bytes);
}
