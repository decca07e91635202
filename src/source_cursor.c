/*
 * source_cursor.c - the read path for PostgreSQL-protocol warehouses that
 * have no COPY (query) TO STDOUT: Amazon Redshift above all (its COPY only
 * loads; `COPY (` is a syntax error there), and any server whose COPY is
 * refused.  See source_int.h for the contract and README "Warehouses".
 *
 * The model runs as DECLARE retl_cur CURSOR FOR <query> inside the source's
 * one read-only transaction, and rows come in batches of FETCH FORWARD n.
 * Redshift's documented forms are `DECLARE name CURSOR FOR query` (no
 * NO SCROLL / BINARY options) and `FETCH FORWARD count FROM cursor`, with a
 * count of at most 1000 on a single-node cluster
 * (https://docs.aws.amazon.com/redshift/latest/dg/declare.html,
 *  https://docs.aws.amazon.com/redshift/latest/dg/fetch.html), so those are
 * the only forms sent, and a batch is at most 1000 rows.  It is fewer when
 * rows are wide: a batch aims at FETCH_BYTES of text, so memory stays
 * bounded by bytes as well as by rows.  (Redshift materialises the whole
 * result on its leader node at the first FETCH; that is the server's cost,
 * within its per-node-type cursor limit, and not ours.)
 *
 * The row hash: the engine hashes `raw`, which on the COPY path is the
 * row's COPY text line.  Here the same line is rebuilt from the text
 * values (same output functions, same session settings), escaped exactly
 * as PostgreSQL's CopyAttributeOutText does (copy.c decodes the same
 * format), so switching a sync between the two paths sends nothing.
 */
#include "source_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgwait.h"

#define CURSOR_PREFIX "DECLARE retl_cur CURSOR FOR\n"
#define CURSOR_PREFIX_LEN (sizeof(CURSOR_PREFIX) - 1)

/* Redshift's maximum FETCH count on a single-node cluster */
#define FETCH_MAX_ROWS 1000
/* the text a batch aims at; one row wider than this is a batch of one */
#define FETCH_BYTES (8u << 20)

/* ---- the server -------------------------------------------------------- */

int retl_source_server_is_redshift(PGconn *conn, retl_buf *version)
{
	/*
	 * Redshift reports server_version 8.0.2 at startup and version() as
	 * "PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC ..., Redshift
	 * 1.0.N" (as quoted in duckdb/duckdb-postgres#373).  A real PostgreSQL
	 * 8.0 is long out of support; version() decides, one round trip.
	 */
	const char *sv = PQparameterStatus(conn, "server_version");
	retl_buf_reset(version);
	retl_buf_adds(version, sv ? sv : "?");
	PGresult *res = PQexec(conn, "SELECT version()");
	int redshift = 0;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    PQnfields(res) == 1) {
		const char *v = PQgetvalue(res, 0, 0);
		retl_buf_reset(version);
		retl_buf_adds(version, v);
		redshift = strstr(v, "Redshift") != NULL;
	}
	PQclear(res);
	return redshift;
}

/* ---- COPY's text format ------------------------------------------------ */

void retl_source_copy_field(retl_buf *out, const char *v, size_t len)
{
	if (!v) {
		retl_buf_add(out, "\\N", 2);
		return;
	}
	const char *run = v, *end = v + len;
	for (const char *p = v; p < end; p++) {
		char e;
		switch (*p) {
		case '\\': e = '\\'; break;
		case '\b': e = 'b'; break;
		case '\f': e = 'f'; break;
		case '\n': e = 'n'; break;
		case '\r': e = 'r'; break;
		case '\t': e = 't'; break;
		case '\v': e = 'v'; break;
		default: continue;
		}
		retl_buf_add(out, run, (size_t)(p - run));
		retl_buf_addc(out, '\\');
		retl_buf_addc(out, e);
		run = p + 1;
	}
	retl_buf_add(out, run, (size_t)(end - run));
}

/* ---- the stream -------------------------------------------------------- */

/*
 * Sends sql and returns its result (the last one if several; NULL when
 * the connection failed).  Every result is read, so the connection is
 * ready for the next command.  *cancelled becomes 1 when a stop cancelled
 * it (pgwait.h): what the server said then is the stop's doing.
 */
static PGresult *run(PGconn *conn, const char *sql, int *cancelled)
{
	if (!PQsendQuery(conn, sql))
		return NULL;
	PGresult *res = NULL, *next;
	int c = 0;
	while ((next = retl_pg_next_result(conn, &c))) {
		/* the first error wins; otherwise the last result */
		if (res && PQresultStatus(res) == PGRES_FATAL_ERROR) {
			PQclear(next);
			continue;
		}
		PQclear(res);
		res = next;
	}
	if (c)
		*cancelled = 1;
	return res;
}

/* the next batch's size: about FETCH_BYTES at the last batch's row width */
static int next_batch(size_t rows, size_t bytes)
{
	if (!rows || !bytes)
		return FETCH_MAX_ROWS;
	size_t n = FETCH_BYTES / (bytes / rows + 1);
	if (n < 1)
		n = 1;
	return n > FETCH_MAX_ROWS ? FETCH_MAX_ROWS : (int)n;
}

struct stream {
	retl_source *s;
	PGconn *conn;
	const char *name;
	retl_row_fn fn;
	void *ud;
	struct retl_err *err;
	size_t ncols;
	const char **vals;
	size_t *lens;
	retl_buf raw;
	size_t bytes;             /* text in the current batch */
	int cancelled;            /* a stop cancelled a FETCH */
};

/* hands every row of one FETCH's result to fn; returns 0 or fn's value */
static int emit(struct stream *st, const PGresult *res)
{
	int nrows = PQntuples(res);
	struct retl_row row = { st->ncols, st->vals, st->lens };
	st->bytes = 0;
	for (int r = 0; r < nrows; r++) {
		retl_buf_reset(&st->raw);
		for (size_t c = 0; c < st->ncols; c++) {
			int isnull = PQgetisnull(res, r, (int)c);
			const char *v = isnull ? NULL : PQgetvalue(res, r, (int)c);
			size_t len = isnull ? 0 : (size_t)PQgetlength(res, r, (int)c);
			st->vals[c] = v;
			st->lens[c] = len;
			if (c)
				retl_buf_addc(&st->raw, '\t');
			retl_source_copy_field(&st->raw, v, len);
		}
		st->bytes += st->raw.len;
		int stop = st->fn(st->ud, &row, retl_buf_cstr(&st->raw), st->raw.len);
		if (stop)
			return stop;
	}
	return 0;
}

/* FETCH until a batch comes back short; returns 0, fn's value or -1 */
static int fetch_all(struct stream *st)
{
	char sql[64];
	int want = FETCH_MAX_ROWS;
	for (;;) {
		snprintf(sql, sizeof(sql), "FETCH FORWARD %d FROM retl_cur", want);
		PGresult *res = run(st->conn, sql, &st->cancelled);
		if (st->cancelled) {
			PQclear(res);
			return RETL_SOURCE_INTERRUPTED;
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			int rc = retl_source_fail_result(st->s, res, 0, st->err);
			PQclear(res);
			return rc;
		}
		if (!st->vals) {
			st->ncols = (size_t)PQnfields(res);
			size_t n = st->ncols ? st->ncols : 1;
			st->vals = retl_calloc(n, sizeof(*st->vals));
			st->lens = retl_calloc(n, sizeof(*st->lens));
		} else if ((size_t)PQnfields(res) != st->ncols) {
			PQclear(res);
			return retl_source_fail(st->err, "source %s: FETCH returned %d columns, "
				    "expected %zu", st->name, PQnfields(res), st->ncols);
		}
		int got = PQntuples(res);
		int stop = emit(st, res);
		PQclear(res);
		if (stop)
			return stop;
		/* a short batch is the end: the cursor ran out of rows */
		if (got < want)
			return 0;
		want = next_batch((size_t)got, st->bytes);
	}
}

int retl_source_cursor_stream(retl_source *s, PGconn *conn, const char *name,
			      const char *query, size_t qlen, retl_row_fn fn,
			      void *ud, struct retl_err *err)
{
	struct stream st = { .s = s, .conn = conn, .name = name, .fn = fn,
			     .ud = ud, .err = err, .raw = RETL_BUF_INIT };
	/* newlines around the query so a trailing "-- comment" ends there */
	retl_buf sql = RETL_BUF_INIT;
	retl_buf_adds(&sql, CURSOR_PREFIX);
	retl_buf_add(&sql, query, qlen);
	retl_buf_addc(&sql, '\n');
	PGresult *res = run(conn, retl_buf_cstr(&sql), &st.cancelled);
	retl_buf_free(&sql);
	int rc;
	if (st.cancelled) {
		PQclear(res);
		return RETL_SOURCE_INTERRUPTED;
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = retl_source_fail_result(s, res, CURSOR_PREFIX_LEN, err);
		PQclear(res);
		return rc;
	}
	PQclear(res);

	rc = fetch_all(&st);
	/* Redshift allows one open cursor per session: close it for the next
	 * sync on this connection (after an SQL error the caller's ROLLBACK TO
	 * SAVEPOINT does) */
	if (PQtransactionStatus(conn) == PQTRANS_INTRANS && !st.cancelled) {
		res = run(conn, "CLOSE retl_cur", &st.cancelled);
		if (!rc && PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = retl_source_fail_result(s, res, 0, err);
		PQclear(res);
	}
	free(st.vals);
	free(st.lens);
	retl_buf_free(&st.raw);
	return rc;
}
