/*
 * audit.c - writes the sync logs to the warehouse (audit.h).
 *
 * SQL that runs on PostgreSQL and on Redshift alike: CREATE SCHEMA / TABLE
 * IF NOT EXISTS, INSERT ... VALUES, DELETE ... WHERE, and literals escaped
 * by libpq for the server's string syntax (PQescapeStringConn follows its
 * standard_conforming_strings).
 * Text columns are VARCHAR(65535) (Redshift's TEXT is VARCHAR(256)), so
 * longer values are cut at a UTF-8 boundary.  Indexes are PostgreSQL's only
 * (Redshift has no CREATE INDEX).
 *
 * A run's rows are streamed from the state store and sent in batches of
 * AUDIT_BATCH_BYTES (a COPY on PostgreSQL, INSERTs of AUDIT_BATCH rows on
 * Redshift, which has no COPY FROM STDIN): a run of a million changes
 * never holds more than one batch in memory.
 */
#include "audit.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "pgwait.h"
#include "redact.h"
#include "state_audit.h"
#include "testpoint.h"

#define AUDIT_BATCH 1000
#define AUDIT_BATCH_BYTES (1024 * 1024)
#define AUDIT_TEXT_MAX 65535

struct writer {
	PGconn *conn;
	const struct retl_source_cfg *src;
	const char *schema;
	int redshift;
	struct retl_err *err;
	retl_buf sql;            /* the statement being built */
	retl_buf tmp;
	size_t nrows;            /* rows in sql's INSERT */
	const char *run_id;      /* the run being written (its row values) */
	const char *sync;
	const char *at;          /* the run's end, as a literal */
	char at_text[40];        /* ... and as COPY's text */
	int copying;             /* a COPY FROM STDIN is open */
};

/* "audit <schema>: <what>: <server's message>", redacted, code 3 */
static int fail(struct writer *w, const char *what, const char *why)
{
	retl_buf m = RETL_BUF_INIT, r = RETL_BUF_INIT;
	retl_buf_addf(&m, "audit %s: %s%s", w->schema, what, why ? ": " : "");
	if (why) {
		size_t n = strlen(why);
		while (n && (why[n - 1] == '\n' || why[n - 1] == ' '))
			n--;
		retl_buf_add(&m, why, n);
	}
	for (char *p = m.ptr; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	retl_redact_into(&r, m.ptr, m.len);
	retl_err_set(w->err, RETL_EXIT_SOURCE, "%s", r.ptr);
	retl_buf_free(&m);
	retl_buf_free(&r);
	return -1;
}

/* runs sql; its last result's status must be ok (rows, when rows) */
static int exec(struct writer *w, const char *sql, const char *what,
		PGresult **rows)
{
	int cancelled = 0, ok = 1;
	PGresult *res, *last = NULL;
	char *why = NULL;

	if (!PQsendQuery(w->conn, sql))
		return fail(w, what, PQerrorMessage(w->conn));
	while ((res = retl_pg_next_result(w->conn, &cancelled))) {
		ExecStatusType st = PQresultStatus(res);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && ok) {
			ok = 0;
			why = retl_strdup(PQresultErrorMessage(res));
		}
		PQclear(last);
		last = res;
	}
	if (ok && (cancelled || !last)) {
		ok = 0;
		why = retl_strdup(cancelled ? "interrupted" :
				  PQerrorMessage(w->conn));
	}
	if (!ok) {
		PQclear(last);
		fail(w, what, why);
		free(why);
		return -1;
	}
	if (rows)
		*rows = last;
	else
		PQclear(last);
	return 0;
}

/* v's length cut to AUDIT_TEXT_MAX bytes, never inside a character */
static size_t text_len(const char *v)
{
	size_t n = strlen(v);
	if (n > AUDIT_TEXT_MAX) {
		n = AUDIT_TEXT_MAX;
		while (n && ((unsigned char)v[n] & 0xc0) == 0x80)
			n--;
	}
	return n;
}

/* v as a quoted literal (NULL: NULL), cut by text_len */
static void add_lit(struct writer *w, const char *v)
{
	size_t n;
	int e = 0;

	if (!v) {
		retl_buf_adds(&w->sql, "NULL");
		return;
	}
	n = text_len(v);
	retl_buf_reset(&w->tmp);
	retl_buf_grow(&w->tmp, 2 * n + 1);
	/* bytes the server's encoding refuses: an empty text, rather than
	 * a statement the server rejects and a run never written */
	PQescapeStringConn(w->conn, w->tmp.ptr, v, n, &e);
	retl_buf_addc(&w->sql, '\'');
	retl_buf_adds(&w->sql, e ? "" : w->tmp.ptr);
	retl_buf_addc(&w->sql, '\'');
}

/* a stored text, redacted (a message may quote a configured secret) */
static void add_text(struct writer *w, const char *v)
{
	retl_buf r = RETL_BUF_INIT;
	if (!v) {
		add_lit(w, NULL);
		return;
	}
	retl_redact_into(&r, v, strlen(v));
	add_lit(w, r.ptr);
	retl_buf_free(&r);
}

/* the store's "2026-11-25T01:02:03.456Z" as text both servers take:
 * "2026-11-25 01:02:03.456+00"; -1 when it is not such a time */
static int time_text(char t[40], const char *iso)
{
	size_t n;
	if (!iso || (n = strlen(iso)) < 19 || n > 30)
		return -1;
	memcpy(t, iso, n + 1);
	t[10] = ' ';
	if (t[n - 1] == 'Z')
		t[n - 1] = '\0';
	strcat(t, "+00");
	return 0;
}

static void add_time(struct writer *w, const char *iso)
{
	char t[40];
	if (time_text(t, iso) < 0)
		retl_buf_adds(&w->sql, "NULL");
	else
		retl_buf_addf(&w->sql, "'%s'", t);
}

static const char *const runs_ddl =
	"CREATE TABLE IF NOT EXISTS %s.runs("
	"run_id VARCHAR(100) NOT NULL PRIMARY KEY, store_id VARCHAR(64), "
	"run_number BIGINT, sync VARCHAR(1024), started_at TIMESTAMPTZ, "
	"ended_at TIMESTAMPTZ, status VARCHAR(32), exit_code INTEGER, "
	"seconds DOUBLE PRECISION, rows_read BIGINT, added BIGINT, "
	"changed BIGINT, unchanged BIGINT, retried BIGINT, removed BIGINT, "
	"rejected BIGINT, failed BIGINT, api_calls BIGINT, retries BIGINT, "
	"http_429 BIGINT, message VARCHAR(65535), written_by VARCHAR(1024), "
	"written_at TIMESTAMPTZ)";
static const char *const rows_ddl =
	"CREATE TABLE IF NOT EXISTS %s.row_outcomes("
	"run_id VARCHAR(100) NOT NULL, sync VARCHAR(1024), "
	"key VARCHAR(65535), operation VARCHAR(16) NOT NULL, "
	"status VARCHAR(16) NOT NULL, error VARCHAR(65535), "
	"recorded_at TIMESTAMPTZ)";

/* how many of the two tables exist, -1 on error */
static int tables_there(struct writer *w)
{
	PGresult *res = NULL;
	retl_buf q = RETL_BUF_INIT;
	int have = -1;

	retl_buf_addf(&q, "SELECT count(*) FROM pg_catalog.pg_tables WHERE "
		      "schemaname = '%s' AND tablename IN ('runs', "
		      "'row_outcomes')", w->schema);
	if (exec(w, q.ptr, "cannot read the catalog", &res) == 0) {
		have = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
		PQclear(res);
	}
	retl_buf_free(&q);
	return have;
}

/* the schema's two tables, made when missing (and their indexes on
 * PostgreSQL): when both exist nothing is created, so a schema an admin
 * made needs no CREATE grant on the database */
static int ensure_tables(struct writer *w)
{
	PGresult *res = NULL;
	retl_buf q = RETL_BUF_INIT;
	int rc = -1, have = tables_there(w);

	if (have < 0)
		goto out;
	if (have == 2) {
		rc = 0;
		goto out;
	}
	retl_buf_addf(&q, "SELECT 1 FROM pg_catalog.pg_namespace WHERE "
		      "nspname = '%s'", w->schema);
	if (exec(w, q.ptr, "cannot read the catalog", &res) < 0)
		goto out;
	have = PQntuples(res);
	PQclear(res);
	retl_buf_reset(&q);
	if (!have)
		retl_buf_addf(&q, "CREATE SCHEMA IF NOT EXISTS %s; ", w->schema);
	retl_buf_addf(&q, runs_ddl, w->schema);
	retl_buf_adds(&q, "; ");
	retl_buf_addf(&q, rows_ddl, w->schema);
	if (!w->redshift)
		retl_buf_addf(&q, "; CREATE INDEX IF NOT EXISTS row_outcomes_run "
			      "ON %s.row_outcomes(run_id); CREATE INDEX IF NOT "
			      "EXISTS row_outcomes_at ON %s.row_outcomes"
			      "(recorded_at)", w->schema, w->schema);
	rc = exec(w, q.ptr, "cannot create the schema's tables (grant CREATE "
		  "on the database, or create the schema and grant CREATE on "
		  "it)", NULL);
	/* two first runs at once (the daemon's syncs): PostgreSQL's IF NOT
	 * EXISTS may still fail on the catalog's unique index for the one
	 * that lost; the tables are there, which is all that was asked */
	if (rc < 0 && tables_there(w) == 2) {
		retl_err_clear(w->err);
		rc = 0;
	}
out:
	retl_buf_free(&q);
	return rc;
}

static int connect_wh(struct writer *w)
{
	struct retl_pg_params pp;
	char msg[512];
	retl_buf why = RETL_BUF_INIT;
	int rc = 0;

	if (retl_pg_params_init(&pp, w->src->dsn, w->src->connect_timeout_ms,
				msg, sizeof(msg)) < 0) {
		retl_pg_params_free(&pp);
		return fail(w, "cannot connect", msg);
	}
	if (retl_pg_connect(&w->conn, &pp, &why) != RETL_PG_CONNECTED)
		rc = fail(w, "cannot connect", why.len ? why.ptr : "interrupted");
	retl_buf_free(&why);
	retl_pg_params_free(&pp);
	if (rc == 0) {
		const char *v = PQparameterStatus(w->conn, "server_version");
		PGresult *res = NULL;
		w->redshift = w->src->type && !strcmp(w->src->type, "redshift");
		if (!w->redshift && v && !strncmp(v, "8.0", 3) &&
		    exec(w, "SELECT version()", "cannot read version()", &res) == 0) {
			w->redshift = PQntuples(res) == 1 &&
				      strstr(PQgetvalue(res, 0, 0), "Redshift");
			PQclear(res);
		}
	}
	if (rc == 0 && w->src->statement_timeout_ms > 0) {
		retl_buf q = RETL_BUF_INIT;
		retl_buf_addf(&q, "SET statement_timeout = %ld",
			      w->src->statement_timeout_ms);
		rc = exec(w, q.ptr, "cannot set statement_timeout", NULL);
		retl_buf_free(&q);
	}
	return rc;
}

static void writer_free(struct writer *w)
{
	PQfinish(w->conn);
	retl_buf_free(&w->sql);
	retl_buf_free(&w->tmp);
}

/* ---- one run ---- */

/*
 * A run's rows: COPY ... FROM STDIN on PostgreSQL (about five times the
 * rows a second of multi-row INSERTs, whose VALUES lists the server parses
 * cell by cell), multi-row INSERT on Redshift, which has no COPY FROM
 * STDIN.  Either way AUDIT_BATCH_BYTES (or AUDIT_BATCH rows) at a time.
 */

/* bytes of the UTF-8 character at v[0..n), 0 when it is not one */
static size_t utf8_len(const unsigned char *v, size_t n)
{
	size_t len = v[0] < 0x80 ? 1 : (v[0] & 0xe0) == 0xc0 && v[0] >= 0xc2 ? 2 :
		     (v[0] & 0xf0) == 0xe0 ? 3 :
		     (v[0] & 0xf8) == 0xf0 && v[0] <= 0xf4 ? 4 : 0;
	if (!len || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((v[i] & 0xc0) != 0x80)
			return 0;
	/* overlong forms, surrogates, past U+10FFFF: refused by the server */
	if ((v[0] == 0xe0 && v[1] < 0xa0) || (v[0] == 0xed && v[1] >= 0xa0) ||
	    (v[0] == 0xf0 && v[1] < 0x90) || (v[0] == 0xf4 && v[1] >= 0x90))
		return 0;
	return len;
}

/*
 * v as COPY's text format writes a field (NULL: \N), cut by text_len.
 * A byte that is not UTF-8 (an API's answer quoted in a reason) becomes
 * '?': the server would refuse the whole COPY, and the run, and every run
 * after it, would never be written.
 */
static void add_copy(retl_buf *b, const char *v)
{
	size_t n, k;
	if (!v) {
		retl_buf_adds(b, "\\N");
		return;
	}
	n = text_len(v);
	for (size_t i = 0; i < n; i += k ? k : 1) {
		k = utf8_len((const unsigned char *)v + i, n - i);
		if (k > 1) {
			retl_buf_add(b, v + i, k);
			continue;
		}
		if (!k) {
			retl_buf_addc(b, '?');
			continue;
		}
		switch (v[i]) {
		case '\\': retl_buf_adds(b, "\\\\"); break;
		case '\n': retl_buf_adds(b, "\\n"); break;
		case '\r': retl_buf_adds(b, "\\r"); break;
		case '\t': retl_buf_adds(b, "\\t"); break;
		default: retl_buf_addc(b, v[i]);
		}
	}
}

static int start_copy(struct writer *w)
{
	retl_buf q = RETL_BUF_INIT;
	PGresult *res;
	int cancelled = 0, rc = 0;

	retl_buf_addf(&q, "COPY %s.row_outcomes(run_id, sync, key, operation, "
		      "status, error, recorded_at) FROM STDIN", w->schema);
	if (!PQsendQuery(w->conn, q.ptr)) {
		rc = fail(w, "cannot copy into row_outcomes",
			  PQerrorMessage(w->conn));
	} else if (PQresultStatus(res = retl_pg_next_result(w->conn, &cancelled))
		   != PGRES_COPY_IN) {
		rc = fail(w, "cannot copy into row_outcomes", res ?
			  PQresultErrorMessage(res) : PQerrorMessage(w->conn));
		PQclear(res);
		while ((res = retl_pg_next_result(w->conn, &cancelled)))
			PQclear(res);
	} else {
		PQclear(res);
		w->copying = 1;
	}
	retl_buf_free(&q);
	return rc;
}

static int put_copy(struct writer *w)
{
	int rc = 0;
	if (w->sql.len && PQputCopyData(w->conn, w->sql.ptr, (int)w->sql.len) != 1)
		rc = fail(w, "cannot copy into row_outcomes",
			  PQerrorMessage(w->conn));
	retl_buf_reset(&w->sql);
	return rc;
}

/* ends the COPY: its rows kept (ok) or refused; the first error wins */
static int end_copy(struct writer *w, int ok)
{
	PGresult *res;
	int cancelled = 0, rc = 0;

	w->copying = 0;
	if (PQputCopyEnd(w->conn, ok ? NULL : "audit write abandoned") != 1)
		return ok ? fail(w, "cannot copy into row_outcomes",
				 PQerrorMessage(w->conn)) : -1;
	while ((res = retl_pg_next_result(w->conn, &cancelled))) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && ok && !rc)
			rc = fail(w, "cannot copy into row_outcomes",
				  PQresultErrorMessage(res));
		PQclear(res);
	}
	return rc;
}

static int flush_rows(struct writer *w)
{
	int rc = 0;
	if (w->copying)
		rc = put_copy(w) < 0 ? -1 : end_copy(w, 1);
	else if (w->nrows)
		rc = exec(w, w->sql.ptr, "cannot insert into row_outcomes", NULL);
	retl_buf_reset(&w->sql);
	w->nrows = 0;
	return rc;
}

static int copy_row(struct writer *w, const struct retl_audit_row *r)
{
	retl_buf red = RETL_BUF_INIT;
	const char *f[] = { w->run_id, w->sync, r->key, r->operation,
			    r->status, NULL, w->at_text };

	if (!w->copying && start_copy(w) < 0)
		return -1;
	if (r->error)
		retl_redact_into(&red, r->error, strlen(r->error));
	f[5] = r->error ? red.ptr : NULL;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (i)
			retl_buf_addc(&w->sql, '\t');
		add_copy(&w->sql, f[i]);
	}
	retl_buf_addc(&w->sql, '\n');
	retl_buf_free(&red);
	return w->sql.len >= AUDIT_BATCH_BYTES ? put_copy(w) : 0;
}

static int on_row(void *ud, const struct retl_audit_row *r)
{
	struct writer *w = ud;
	if (!w->redshift)
		return copy_row(w, r);
	if (!w->nrows)
		retl_buf_addf(&w->sql, "INSERT INTO %s.row_outcomes(run_id, "
			      "sync, key, operation, status, error, recorded_at)"
			      " VALUES ", w->schema);
	else
		retl_buf_addc(&w->sql, ',');
	retl_buf_addc(&w->sql, '(');
	add_lit(w, w->run_id);
	retl_buf_addc(&w->sql, ',');
	add_lit(w, w->sync);
	retl_buf_addc(&w->sql, ',');
	add_lit(w, r->key);
	retl_buf_addc(&w->sql, ',');
	add_lit(w, r->operation);
	retl_buf_addc(&w->sql, ',');
	add_lit(w, r->status);
	retl_buf_addc(&w->sql, ',');
	add_text(w, r->error);
	retl_buf_addf(&w->sql, ",%s)", w->at);
	if (++w->nrows >= AUDIT_BATCH || w->sql.len >= AUDIT_BATCH_BYTES)
		return flush_rows(w) < 0 ? -1 : 0;
	return 0;
}

static void add_run_values(struct writer *w, const struct retl_run_rec *r,
			   const char *store_id)
{
	const long counts[] = {
		r->c.read, r->c.added, r->c.changed, r->c.unchanged,
		r->c.retried, r->c.removed, r->c.rejected, r->c.failed,
		r->c.api_calls, r->c.retries, r->c.http_429,
	};
	char host[256] = "";
	retl_buf by = RETL_BUF_INIT;

	gethostname(host, sizeof(host) - 1);
	retl_buf_addf(&by, "%s:%ld", host, (long)getpid());
	/* named: a table an admin made may order its columns otherwise */
	retl_buf_addf(&w->sql, "INSERT INTO %s.runs(run_id, store_id, "
		      "run_number, sync, started_at, ended_at, status, "
		      "exit_code, seconds, rows_read, added, changed, unchanged, "
		      "retried, removed, rejected, failed, api_calls, retries, "
		      "http_429, message, written_by, written_at) VALUES(",
		      w->schema);
	add_lit(w, w->run_id);
	retl_buf_addc(&w->sql, ',');
	add_lit(w, store_id);
	retl_buf_addf(&w->sql, ",%lld,", (long long)r->id);
	add_lit(w, r->sync);
	retl_buf_addc(&w->sql, ',');
	add_time(w, r->started);
	retl_buf_addc(&w->sql, ',');
	add_time(w, r->ended);
	retl_buf_addc(&w->sql, ',');
	add_lit(w, r->status);
	if (r->exit_code < 0)
		retl_buf_adds(&w->sql, ",NULL");
	else
		retl_buf_addf(&w->sql, ",%d", r->exit_code);
	if (r->seconds < 0)
		retl_buf_adds(&w->sql, ",NULL");
	else
		retl_buf_addf(&w->sql, ",%.3f", r->seconds);
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		retl_buf_addf(&w->sql, ",%ld", counts[i]);
	retl_buf_addc(&w->sql, ',');
	add_text(w, r->message);
	retl_buf_addc(&w->sql, ',');
	add_lit(w, by.ptr);
	/* our clock as a literal: the same SQL on every server */
	{
		time_t now = time(NULL);
		struct tm tm;
		char ts[32];
		gmtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S+00", &tm);
		retl_buf_addf(&w->sql, ",'%s')", ts);
	}
	retl_buf_free(&by);
}

/* may the run have synced rows?  Its counts say, but an abandoned run
 * never recorded them; a run of no change (most) skips reading the cache */
static int synced(const struct retl_run_rec *r)
{
	return !strcmp(r->status, RETL_RUN_ABANDONED) ||
	       r->c.added + r->c.changed + r->c.retried > 0;
}

/* run id in one transaction, unless it is there (see below); row_outcomes
 * without their run (none, unless deleted by hand) are replaced */
static int write_run(struct writer *w, retl_state *st, int64_t id,
		     const char *store_id)
{
	struct retl_run_rec r;
	retl_buf rid = RETL_BUF_INIT, at = RETL_BUF_INIT;
	int rc = retl_state_audit_run(st, id, &r, w->err);

	if (rc != 0)
		return rc < 0 ? -1 : 0;     /* gone: nothing to write */
	retl_buf_addf(&rid, "%s:%lld", store_id, (long long)id);
	w->run_id = rid.ptr;
	w->sync = r.sync;
	retl_buf_reset(&w->sql);
	add_time(w, r.ended ? r.ended : r.started);
	retl_buf_adds(&at, w->sql.ptr);
	w->at = at.ptr;
	if (time_text(w->at_text, r.ended ? r.ended : r.started) < 0)
		w->at_text[0] = '\0';
	/* written before, and the mark lost (killed in between): a run's
	 * row commits with its rows, so it is there whole.  Not written
	 * again: the store may have moved its rows on since */
	retl_buf_reset(&w->sql);
	retl_buf_addf(&w->sql, "SELECT 1 FROM %s.runs WHERE run_id = ", w->schema);
	add_lit(w, rid.ptr);
	PGresult *res = NULL;
	rc = exec(w, w->sql.ptr, "cannot read runs", &res);
	int there = rc == 0 && PQntuples(res) > 0;
	PQclear(res);
	if (rc < 0 || there)
		goto out;
	retl_buf_reset(&w->sql);
	retl_buf_adds(&w->sql, "BEGIN; DELETE FROM ");
	retl_buf_addf(&w->sql, "%s.row_outcomes WHERE run_id = ", w->schema);
	add_lit(w, rid.ptr);
	retl_buf_addf(&w->sql, "; DELETE FROM %s.runs WHERE run_id = ", w->schema);
	add_lit(w, rid.ptr);
	retl_buf_adds(&w->sql, "; ");
	add_run_values(w, &r, store_id);
	rc = exec(w, w->sql.ptr, "cannot write the run", NULL);
	retl_buf_reset(&w->sql);
	w->nrows = 0;
	if (rc == 0)
		rc = retl_state_audit_rows(st, r.sync, id, synced(&r), on_row,
					   w, w->err);
	if (rc == 0)
		rc = flush_rows(w);
	if (w->copying)         /* stopped half way: its rows refused */
		end_copy(w, 0);
	if (rc == 0)
		rc = exec(w, "COMMIT", "cannot commit the run", NULL);
	else
		PQclear(PQexec(w->conn, "ROLLBACK"));
	/* in the warehouse, not yet noted in the store */
	if (rc == 0)
		retl_testpoint("audit-written");
out:
	/* written: marked so; a failure here is found written next time */
	if (rc == 0)
		rc = retl_state_audit_done(st, id, w->err);
	retl_buf_reset(&w->sql);
	retl_buf_free(&rid);
	retl_buf_free(&at);
	retl_state_audit_rec_free(&r);
	return rc ? -1 : 0;
}

/* rows older than the retention go; runs by their start */
static int retain(struct writer *w)
{
	time_t cut = time(NULL) - (time_t)(w->src->audit_retention_ms / 1000);
	struct tm tm;
	char ts[32];
	retl_buf q = RETL_BUF_INIT;
	int rc;

	gmtime_r(&cut, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S+00", &tm);
	retl_buf_addf(&q, "DELETE FROM %s.row_outcomes WHERE recorded_at < '%s'; "
		      "DELETE FROM %s.runs WHERE started_at < '%s'",
		      w->schema, ts, w->schema, ts);
	rc = exec(w, q.ptr, "cannot delete rows older than audit_retention", NULL);
	retl_buf_free(&q);
	return rc;
}

int retl_audit_write(retl_state *st, const struct retl_sync_cfg *sc,
		     struct retl_err *err)
{
	struct writer w = { .src = sc->src, .schema = sc->src->audit, .err = err };
	int64_t *ids = NULL;
	size_t n = 0;
	char *store_id = NULL;
	int rc;

	if (retl_state_audit_pending(st, sc->name, &ids, &n, err) < 0)
		return -1;
	if (!n) {
		free(ids);
		return 0;
	}
	store_id = retl_state_audit_store_id(st);
	rc = connect_wh(&w);
	if (rc == 0)
		rc = ensure_tables(&w);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = write_run(&w, st, ids[i], store_id ? store_id : "-");
	if (rc == 0 && w.src->audit_retention_ms > 0)
		rc = retain(&w);
	if (rc == 0)
		retl_log(RETL_LOG_DEBUG, sc->name, "audit %s: %zu run%s written",
			 w.schema, n, n == 1 ? "" : "s");
	writer_free(&w);
	free(store_id);
	free(ids);
	return rc;
}

int retl_audit_check(const struct retl_source_cfg *src, struct retl_err *err)
{
	struct writer w = { .src = src, .schema = src->audit, .err = err };
	int rc;

	if (!src->audit)
		return 0;
	rc = connect_wh(&w);
	if (rc == 0)
		rc = ensure_tables(&w);
	if (rc == 0) {
		retl_buf_addf(&w.sql, "BEGIN; SELECT 1 FROM %s.runs WHERE "
			      "run_id = 'retl check'; INSERT INTO %s.runs(run_id) "
			      "VALUES('retl check'); INSERT INTO %s.row_outcomes"
			      "(run_id, operation, status) VALUES('retl check', "
			      "'added', 'synced'); DELETE FROM %s.runs WHERE "
			      "run_id = 'retl check'; DELETE FROM %s.row_outcomes "
			      "WHERE run_id = 'retl check'", w.schema, w.schema,
			      w.schema, w.schema, w.schema);
		rc = exec(&w, w.sql.ptr, "cannot write its tables (grant "
			  "SELECT, INSERT and DELETE on them, and USAGE on the "
			  "schema)",
			  NULL);
		PQclear(PQexec(w.conn, "ROLLBACK"));
	}
	writer_free(&w);
	return rc;
}
