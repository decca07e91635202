/*
 * sync_whdiff_table.c - the warehouse side of "diff": "warehouse"
 * (sync_whdiff.c): the writable session, the role's grants, the table's
 * DDL and its writes.  Every message names the source and never the DSN;
 * the server's words are redacted like the source's.
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgwait.h"
#include "redact.h"
#include "source_int.h"
#include "sync.h"
#include "sync_whdiff.h"

#define WH_SCHEMA_DEFAULT "retl_state"
#define WH_STAGE_ROWS 250   /* rows per staging INSERT (4 parameters each) */

/* "name" with its quotes doubled */
void retl_whdiff_ident(retl_buf *b, const char *name)
{
	retl_buf_addc(b, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			retl_buf_addc(b, '"');
		retl_buf_addc(b, *p);
	}
	retl_buf_addc(b, '"');
}

static const char *schema_of(const struct retl_sync_cfg *sc)
{
	return sc->src->state_schema ? sc->src->state_schema : WH_SCHEMA_DEFAULT;
}

char *retl_whdiff_table(const struct retl_sync_cfg *sc)
{
	retl_buf b = RETL_BUF_INIT;
	retl_whdiff_ident(&b, schema_of(sc));
	retl_buf_addc(&b, '.');
	retl_whdiff_ident(&b, sc->name);
	return retl_buf_detach(&b);
}

/* ---- the write connection ---- */

/* a second, writable session on the sync's source (never the read one) */
PGconn *retl_whdiff_connect(const struct retl_sync_cfg *sc, struct retl_err *err)
{
	struct retl_pg_params pp;
	char msg[512];
	retl_buf why = RETL_BUF_INIT, m = RETL_BUF_INIT;
	PGconn *conn = NULL;
	if (retl_pg_params_init(&pp, sc->src->dsn, sc->src->connect_timeout_ms,
				msg, sizeof(msg)) < 0) {
		retl_source_one_line(&m, msg);
		retl_source_fail(err, "source %s: diff warehouse: cannot connect: %s",
			sc->source, retl_buf_cstr(&m));
	} else if (retl_pg_connect(&conn, &pp, &why) != RETL_PG_CONNECTED) {
		retl_source_one_line(&m, retl_buf_cstr(&why));
		retl_source_fail(err, "source %s: diff warehouse: cannot connect: %s",
			sc->source, m.len ? m.ptr : "interrupted");
		PQfinish(conn);
		conn = NULL;
	}
	retl_pg_params_free(&pp);
	retl_buf_free(&why);
	retl_buf_free(&m);
	return conn;
}

/* one statement with text parameters; the last result (an error wins) */
static PGresult *wh_exec(PGconn *c, const char *sql, int n,
			 const char *const *vals)
{
	int cancelled = 0;
	if (!PQsendQueryParams(c, sql, n, NULL, vals, NULL, NULL, 0))
		return NULL;
	PGresult *keep = NULL, *res;
	while ((res = retl_pg_next_result(c, &cancelled))) {
		if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
			PQclear(res);
			continue;
		}
		PQclear(keep);
		keep = res;
		/* a COPY goes on: the caller feeds it, then reads its result */
		if (PQresultStatus(res) == PGRES_COPY_IN)
			break;
	}
	return keep;
}

/* runs sql; on failure "source S: diff warehouse: <what>: <server's>" */
static int wh_cmd(const struct retl_sync_cfg *sc, PGconn *c, const char *sql,
		  int n, const char *const *vals, const char *what,
		  struct retl_err *err)
{
	PGresult *res = wh_exec(c, sql, n, vals);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int rc = 0;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		retl_buf m = RETL_BUF_INIT;
		retl_source_one_line(&m, res ? PQresultErrorMessage(res) : PQerrorMessage(c));
		rc = retl_source_fail(err, "source %s: diff warehouse: %s: %s", sc->source,
			     what, retl_buf_cstr(&m));
		retl_buf_free(&m);
	}
	PQclear(res);
	return rc;
}

/* ---- grants ---- */

/*
 * What the role lacks to keep sc's table, as lines "missing: X (GRANT …)"
 * in out (empty: nothing); *schema_ok and *table_ok say whether each
 * exists.  has_*_privilege exist on PostgreSQL and Redshift alike.
 */
static int wh_grants(const struct retl_sync_cfg *sc, PGconn *c, retl_buf *out,
		     int *schema_ok, int *table_ok, struct retl_err *err)
{
	const char *schema = schema_of(sc);
	const char *vals[2] = { schema, sc->name };
	PGresult *res = wh_exec(c,
		"SELECT current_user,"
		" EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),"
		" EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2),"
		" has_database_privilege(current_database(), 'CREATE'),"
		" has_database_privilege(current_database(), 'TEMP')", 2, vals);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		retl_buf m = RETL_BUF_INIT;
		retl_source_one_line(&m, res ? PQresultErrorMessage(res) : PQerrorMessage(c));
		PQclear(res);
		retl_source_fail(err, "source %s: diff warehouse: cannot read the role's grants: %s",
			sc->source, retl_buf_cstr(&m));
		retl_buf_free(&m);
		return -1;
	}
	retl_buf role = RETL_BUF_INIT, q = RETL_BUF_INIT, sq = RETL_BUF_INIT;
	retl_whdiff_ident(&role, PQgetvalue(res, 0, 0));
	retl_whdiff_ident(&sq, schema);
	*schema_ok = PQgetvalue(res, 0, 1)[0] == 't';
	*table_ok = PQgetvalue(res, 0, 2)[0] == 't';
	int db_create = PQgetvalue(res, 0, 3)[0] == 't';
	int db_temp = PQgetvalue(res, 0, 4)[0] == 't';
	PQclear(res);
	retl_buf_reset(out);
	if (!db_temp)
		retl_buf_addf(out, "missing: TEMP on the database (GRANT TEMP ON DATABASE <db> TO %s)\n",
			      role.ptr);
	if (!*schema_ok) {
		if (!db_create)
			retl_buf_addf(out, "missing: schema %s does not exist and the role cannot create it (CREATE SCHEMA %s AUTHORIZATION %s, as its owner)\n",
				      sq.ptr, sq.ptr, role.ptr);
		goto out;
	}
	static const char *const sprivs[] = { "USAGE", "CREATE" };
	for (size_t i = 0; i < 2; i++) {
		if (i == 1 && *table_ok)
			break;      /* CREATE only to make the table */
		const char *v2[2] = { schema, sprivs[i] };
		res = wh_exec(c, "SELECT has_schema_privilege($1, $2)", 2, v2);
		if (res && PQresultStatus(res) == PGRES_TUPLES_OK &&
		    PQgetvalue(res, 0, 0)[0] != 't')
			retl_buf_addf(out, "missing: %s on schema %s (GRANT %s ON SCHEMA %s TO %s)\n",
				      sprivs[i], sq.ptr, sprivs[i], sq.ptr, role.ptr);
		PQclear(res);
	}
	if (!*table_ok || out->len)
		goto out;
	char *table = retl_whdiff_table(sc);
	/* UPDATE: PostgreSQL's INSERT … ON CONFLICT DO UPDATE needs it */
	static const char *const tprivs[] = { "SELECT", "INSERT", "UPDATE", "DELETE" };
	for (size_t i = 0; i < 4; i++) {
		const char *v2[2] = { table, tprivs[i] };
		res = wh_exec(c, "SELECT has_table_privilege($1, $2)", 2, v2);
		if (res && PQresultStatus(res) == PGRES_TUPLES_OK &&
		    PQgetvalue(res, 0, 0)[0] != 't')
			retl_buf_addf(out, "missing: %s on table %s (GRANT %s ON %s TO %s)\n",
				      tprivs[i], table, tprivs[i], table, role.ptr);
		PQclear(res);
	}
	free(table);
out:
	retl_buf_free(&role);
	retl_buf_free(&q);
	retl_buf_free(&sq);
	return 0;
}

/*
 * The schema and table, made when missing (a missing grant says which);
 * *empty: the table has no row (just made, dropped, truncated, or an
 * UNLOGGED table after a server crash).  unlogged: PostgreSQL's kind,
 * without WAL; what it may lose costs a full comparison (wh_open).
 */
int retl_whdiff_ensure(const struct retl_sync_cfg *sc, PGconn *c, int unlogged,
		     int *empty, struct retl_err *err)
{
	retl_buf miss = RETL_BUF_INIT, sql = RETL_BUF_INIT;
	int schema_ok, table_ok, rc = -1;
	if (wh_grants(sc, c, &miss, &schema_ok, &table_ok, err) < 0)
		goto out;
	if (miss.len) {
		miss.ptr[--miss.len] = '\0';
		for (char *p = miss.ptr; (p = strchr(p, '\n')); )
			*p = ';';
		retl_source_fail(err, "source %s: diff warehouse: the role cannot keep sync %s's table: %s",
			sc->source, sc->name, miss.ptr);
		goto out;
	}
	if (!schema_ok) {
		retl_buf_adds(&sql, "CREATE SCHEMA ");
		retl_whdiff_ident(&sql, schema_of(sc));
		if (wh_cmd(sc, c, sql.ptr, 0, NULL, "creating its schema", err) < 0)
			goto out;
	}
	if (!table_ok) {
		char *t = retl_whdiff_table(sc);
		retl_buf_reset(&sql);
		/* PostgreSQL: byte order for the key (the locale's costs every
		 * index write a strcoll), the time by default for COPY */
		retl_buf_addf(&sql, "CREATE %sTABLE IF NOT EXISTS %s (key VARCHAR(65535) "
			      "%sNOT NULL PRIMARY KEY, row_hash VARCHAR(64), pay_hash "
			      "VARCHAR(32), dest_id VARCHAR(65535), updated_at "
			      "TIMESTAMPTZ%s)", unlogged ? "UNLOGGED " : "", t,
			      unlogged ? "COLLATE \"C\" " : "",
			      unlogged ? " DEFAULT now()" : "");
		free(t);
		if (wh_cmd(sc, c, sql.ptr, 0, NULL, "creating its table", err) < 0)
			goto out;
		retl_log(RETL_LOG_INFO, sc->name, "diff warehouse: created table %s.%s",
			 schema_of(sc), sc->name);
		*empty = 1;
	} else {
		char *t = retl_whdiff_table(sc);
		retl_buf_reset(&sql);
		retl_buf_addf(&sql, "SELECT 1 FROM %s LIMIT 1", t);
		free(t);
		PGresult *res = wh_exec(c, sql.ptr, 0, NULL);
		int ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
		*empty = ok && PQntuples(res) == 0;
		PQclear(res);
		if (!ok && wh_cmd(sc, c, sql.ptr, 0, NULL, "reading its table", err) < 0)
			goto out;
	}
	rc = 0;
out:
	retl_buf_free(&miss);
	retl_buf_free(&sql);
	return rc;
}

int retl_whdiff_check(struct retl_sync_cfg *sc, struct retl_err *err)
{
	PGconn *c = retl_whdiff_connect(sc, err);
	if (!c)
		return -1;
	retl_buf miss = RETL_BUF_INIT;
	int schema_ok, table_ok;
	int rc = wh_grants(sc, c, &miss, &schema_ok, &table_ok, err);
	if (rc == 0 && miss.len) {
		miss.ptr[--miss.len] = '\0';
		for (char *p = miss.ptr; (p = strchr(p, '\n')); )
			*p = ';';
		rc = retl_source_fail(err, "%s: diff warehouse: the role cannot keep the sync's table in source %s: %s",
			     sc->file, sc->source, miss.ptr);
	}
	retl_buf_free(&miss);
	PQfinish(c);
	return rc;
}

int retl_whdiff_reset(struct retl_sync_cfg *sc, struct retl_err *err)
{
	PGconn *c = retl_whdiff_connect(sc, err);
	if (!c)
		return -1;
	retl_buf sql = RETL_BUF_INIT;
	char *t = retl_whdiff_table(sc);
	const char *vals[2] = { schema_of(sc), sc->name };
	PGresult *res = wh_exec(c, "SELECT 1 FROM pg_tables WHERE schemaname = $1 "
				"AND tablename = $2", 2, vals);
	int exists = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res);
	PQclear(res);
	int rc = 0;
	if (exists) {
		retl_buf_addf(&sql, "DELETE FROM %s", t);
		rc = wh_cmd(sc, c, sql.ptr, 0, NULL, "clearing the sync's table", err);
	}
	free(t);
	retl_buf_free(&sql);
	PQfinish(c);
	return rc;
}

/* one COPY text field: \N for NULL, the characters COPY escapes escaped */
static void copy_field(retl_buf *b, const char *v)
{
	if (!v) {
		retl_buf_adds(b, "\\N");
		return;
	}
	for (; *v; v++) {
		switch (*v) {
		case '\\': retl_buf_adds(b, "\\\\"); break;
		case '\t': retl_buf_adds(b, "\\t"); break;
		case '\n': retl_buf_adds(b, "\\n"); break;
		case '\r': retl_buf_adds(b, "\\r"); break;
		default: retl_buf_addc(b, *v);
		}
	}
}

/* PostgreSQL: the rows into retl_stage by COPY FROM STDIN */
static int stage_copy(const struct retl_sync_cfg *sc, PGconn *c, const char *into,
		      const char *const *v, size_t n, struct retl_err *err)
{
	retl_buf q = RETL_BUF_INIT;
	retl_buf_addf(&q, "COPY %s FROM STDIN", into);
	PGresult *res = wh_exec(c, q.ptr, 0, NULL);
	retl_buf_free(&q);
	int ok = res && PQresultStatus(res) == PGRES_COPY_IN;
	retl_buf b = RETL_BUF_INIT;
	if (!ok) {
		retl_source_one_line(&b, res ? PQresultErrorMessage(res) : PQerrorMessage(c));
		retl_source_fail(err, "source %s: diff warehouse: writing back: %s", sc->source,
			retl_buf_cstr(&b));
		retl_buf_free(&b);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	for (size_t i = 0; i < n && ok; i++) {
		for (size_t j = 0; j < 4; j++) {
			if (j)
				retl_buf_addc(&b, '\t');
			copy_field(&b, v[4 * i + j]);
		}
		retl_buf_addc(&b, '\n');
		if (b.len >= 1 << 16 || i == n - 1) {
			ok = PQputCopyData(c, b.ptr, (int)b.len) == 1;
			retl_buf_reset(&b);
		}
	}
	retl_buf_free(&b);
	ok = PQputCopyEnd(c, ok ? NULL : "retl: write failed") == 1 && ok;
	int cancelled = 0, rc = ok ? 0 : -1;
	while ((res = retl_pg_next_result(c, &cancelled))) {
		if (!rc && PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = -1;
		if (rc && !retl_err_isset(err)) {
			retl_buf m = RETL_BUF_INIT;
			retl_source_one_line(&m, PQresultErrorMessage(res));
			retl_source_fail(err, "source %s: diff warehouse: writing back: %s",
				sc->source, retl_buf_cstr(&m));
			retl_buf_free(&m);
		}
		PQclear(res);
	}
	if (rc && !retl_err_isset(err))
		retl_source_fail(err, "source %s: diff warehouse: writing back: the connection failed",
			sc->source);
	return rc;
}

/* Redshift (no COPY FROM STDIN): multi-row INSERTs with parameters */
static int stage_insert(const struct retl_sync_cfg *sc, PGconn *c,
			const char *const *v, size_t n, struct retl_err *err)
{
	retl_buf sql = RETL_BUF_INIT;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i += WH_STAGE_ROWS) {
		size_t k = n - i < WH_STAGE_ROWS ? n - i : WH_STAGE_ROWS;
		retl_buf_reset(&sql);
		retl_buf_adds(&sql, "INSERT INTO retl_stage VALUES ");
		for (size_t j = 0; j < k; j++)
			retl_buf_addf(&sql, "%s($%zu, $%zu, $%zu, $%zu)", j ? ", " : "",
				      4 * j + 1, 4 * j + 2, 4 * j + 3, 4 * j + 4);
		rc = wh_cmd(sc, c, sql.ptr, (int)(4 * k), v + 4 * i, "writing back", err);
	}
	retl_buf_free(&sql);
	return rc;
}

/*
 * Writes rows (key, row_hash, pay_hash, dest_id; NULLs allowed) over the
 * table's rows of those keys, or (del) deletes the keys' rows, in one
 * transaction through a temp staging table.  PostgreSQL: COPY FROM STDIN
 * and INSERT … ON CONFLICT; the portable SQL (Redshift has neither):
 * multi-row INSERTs, DELETE … USING, INSERT.  Keys are unique (the
 * caller's rows are one per key).
 */
int retl_whdiff_write(const struct retl_sync_cfg *sc, PGconn *c,
		      const char *t, int portable, int redshift,
		      const char *const *v, size_t n, int del, int fresh,
		      struct retl_err *err)
{
	retl_buf sql = RETL_BUF_INIT;
	int rc = -1;
	if (fresh && !portable && !del) {
		/* an empty table this run alone writes: straight in */
		retl_buf_addf(&sql, "%s (key, row_hash, pay_hash, dest_id)", t);
		if (wh_cmd(sc, c, "BEGIN", 0, NULL, "writing back", err) < 0 ||
		    stage_copy(sc, c, sql.ptr, v, n, err) < 0 ||
		    wh_cmd(sc, c, "COMMIT", 0, NULL, "writing back", err) < 0)
			goto out;
		rc = 0;
		goto out;
	}
	if (wh_cmd(sc, c, "BEGIN", 0, NULL, "writing back", err) < 0 ||
	    wh_cmd(sc, c, "CREATE TEMP TABLE retl_stage (key VARCHAR(65535), "
		   "row_hash VARCHAR(64), pay_hash VARCHAR(32), dest_id "
		   "VARCHAR(65535))", 0, NULL, "writing back", err) < 0 ||
	    (portable ? stage_insert(sc, c, v, n, err) :
	     stage_copy(sc, c, "retl_stage", v, n, err)) < 0)
		goto out;
	if (del || portable) {
		retl_buf_addf(&sql, "DELETE FROM %s USING retl_stage WHERE %s.key = retl_stage.key",
			      t, t);
		if (wh_cmd(sc, c, sql.ptr, 0, NULL, "writing back", err) < 0)
			goto out;
	}
	if (!del) {
		retl_buf_reset(&sql);
		retl_buf_addf(&sql, "INSERT INTO %s (key, row_hash, pay_hash, dest_id, "
			      "updated_at) SELECT key, row_hash, pay_hash, dest_id, %s "
			      "FROM retl_stage", t, redshift ? "GETDATE()" : "now()");
		if (!portable)
			retl_buf_adds(&sql, " ON CONFLICT (key) DO UPDATE SET row_hash = "
				      "excluded.row_hash, pay_hash = excluded.pay_hash, "
				      "dest_id = excluded.dest_id, updated_at = "
				      "excluded.updated_at");
		if (wh_cmd(sc, c, sql.ptr, 0, NULL, "writing back", err) < 0)
			goto out;
	}
	if (wh_cmd(sc, c, "DROP TABLE retl_stage", 0, NULL, "writing back", err) < 0 ||
	    wh_cmd(sc, c, "COMMIT", 0, NULL, "writing back", err) < 0)
		goto out;
	rc = 0;
out:
	retl_buf_free(&sql);
	return rc;
}

/*
 * After a run that wrote many rows (a first fill, a switch): the planner
 * needs the table's statistics at once, or changed_since's next range
 * join may hash the whole table instead of probing its key (0.04 s then
 * 0.6 s at 1M rows measured); autovacuum gets there only later.  The
 * owner of the table may ANALYZE it; a failure is a warning.
 */
int retl_whdiff_analyze(const struct retl_sync_cfg *sc, PGconn *c, const char *t,
			struct retl_err *err)
{
	retl_buf sql = RETL_BUF_INIT;
	retl_buf_addf(&sql, "ANALYZE %s", t);
	int rc = wh_cmd(sc, c, sql.ptr, 0, NULL, "analyzing its table", err);
	retl_buf_free(&sql);
	return rc;
}
