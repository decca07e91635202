/*
 * source_pg.c - the PostgreSQL source (see source.h).
 *
 * One connection, one BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ
 * transaction per run: a model can never write, and every row a run reads
 * comes from one snapshot.  The transaction is always rolled back.
 *
 * Nothing here blocks inside libpq: the connection is made and every
 * statement's answer awaited through pgwait.h (connect_timeout, TCP
 * keepalives, and a SIGINT/SIGTERM that cancels what the server is doing),
 * so every statement is sent with PQsend* and read with result_of().
 *
 * describe() prepares the query as the unnamed statement; the server rejects
 * several statements in one prepare, which is what we want (a model is one
 * statement).  stream() runs COPY (query) TO STDOUT in text format and
 * decodes each line in place (copy.h), so no row costs an allocation of
 * ours once the buffers are warm (libpq still allocates each line it hands
 * us; we PQfreemem it at once).
 *
 * describe() and stream() each run inside a savepoint, so an SQL error or a
 * cancelled stream leaves the connection usable for the next sync (retl
 * check describes several syncs on one connection).
 *
 * Session settings are pinned so the text of a value (and so the row hash)
 * does not depend on the server's or the role's defaults: TimeZone=UTC,
 * DateStyle=ISO, IntervalStyle=iso_8601, extra_float_digits=3 (shortest
 * exact floats), client_encoding=UTF8 (payloads are JSON).
 *
 * Error messages never contain the DSN; everything from the server is passed
 * through retl_redact_str() because messages can echo the query's literals.
 *
 * Warehouses of the same protocol (source_cursor.c, README "Warehouses"):
 * at connect time the server says what it is.  Amazon Redshift has no
 * COPY ... TO STDOUT, documents SERIALIZABLE as its isolation level, has
 * no IntervalStyle or client_encoding to set, takes extra_float_digits up
 * to 2 and EXPLAIN without options: there rows stream through a cursor in
 * BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY, and only the settings it
 * has are set.  "read": "copy" | "cursor" forces a path; in "auto" a COPY
 * the server refuses (syntax error, feature not supported) at the first
 * stream falls back to the cursor for the rest of the connection.
 */
#include "source.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "copy.h"
#include "log.h"
#include "pgwait.h"
#include "redact.h"
#include "source_int.h"
#include "stop.h"

/* "COPY (\n" in front of the user's query; server positions are shifted */
#define COPY_PREFIX "COPY (\n"
#define COPY_PREFIX_LEN (sizeof(COPY_PREFIX) - 1)

struct retl_source {
	PGconn *conn;
	char *name;

	struct retl_column *cols;       /* from describe() */
	size_t ncols;

	retl_buf sql;                   /* reused: statements we build */
	double est_rows;                /* the planner's estimate, 0 = none */

	struct retl_copy_line dec;      /* stream(): reused across rows */

	enum retl_read_path read;       /* COPY or CURSOR once open */
	int may_fall_back;              /* auto: COPY not yet seen to work */
	int redshift;                   /* the server says it is Redshift */
	int interrupted;                /* a stop cancelled what we waited on */
};

/* ---- errors ------------------------------------------------------------ */

int retl_source_fail(struct retl_err *err, const char *fmt, ...)
{
	int fresh = err && !retl_err_isset(err);
	va_list ap;
	va_start(ap, fmt);
	retl_err_vset(err, RETL_EXIT_SOURCE, fmt, ap);
	va_end(ap);
	if (fresh)
		retl_redact_str(err->msg, sizeof(err->msg));
	return -1;
}

/*
 * libpq's messages end in a newline and can span lines ("...failed: ...\n\t
 * Is the server running...?").  For a one-line log entry: runs of
 * whitespace that contain a line break become one space; trailing
 * whitespace goes.
 */
void retl_source_one_line(retl_buf *out, const char *s)
{
	retl_buf_reset(out);
	if (!s)
		return;
	while (*s) {
		if (isspace((unsigned char)*s)) {
			const char *t = s;
			int nl = 0;
			while (*t && isspace((unsigned char)*t)) {
				if (*t == '\n' || *t == '\r')
					nl = 1;
				t++;
			}
			if (!*t)
				break;
			if (nl)
				retl_buf_addc(out, ' ');
			else
				retl_buf_add(out, s, (size_t)(t - s));
			s = t;
			continue;
		}
		retl_buf_addc(out, *s++);
	}
}

/*
 * "source <name>: <primary> (SQLSTATE xxxxx) at character N; DETAIL: ...;
 * HINT: ..." from a failed result (res may be NULL: connection-level error).
 * pos_shift is subtracted from the server's position so it points into the
 * user's query, not into what we wrapped around it.
 */
static int fail_result(retl_source *s, const PGresult *res, size_t pos_shift,
		       struct retl_err *err)
{
	retl_buf msg = RETL_BUF_INIT, part = RETL_BUF_INIT;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (primary) {
		retl_source_one_line(&part, primary);
		retl_buf_add(&msg, part.ptr, part.len);
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state)
			retl_buf_addf(&msg, " (SQLSTATE %s)", state);
		const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
		if (pos) {
			long p = strtol(pos, NULL, 10);
			if (p > (long)pos_shift)
				retl_buf_addf(&msg, " at character %ld", p - (long)pos_shift);
		}
		const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		if (detail) {
			retl_source_one_line(&part, detail);
			retl_buf_addf(&msg, "; DETAIL: %s", part.ptr);
		}
		const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		if (hint) {
			retl_source_one_line(&part, hint);
			retl_buf_addf(&msg, "; HINT: %s", part.ptr);
		}
	} else {
		retl_source_one_line(&part, PQerrorMessage(s->conn));
		if (!part.len)
			retl_buf_adds(&part, "unknown error (connection lost?)");
		retl_buf_add(&msg, part.ptr, part.len);
	}
	retl_source_fail(err, "source %s: %s", s->name, retl_buf_cstr(&msg));
	retl_buf_free(&msg);
	retl_buf_free(&part);
	return -1;
}

int retl_source_fail_result(retl_source *s, const PGresult *res,
			    size_t pos_shift, struct retl_err *err)
{
	return fail_result(s, res, pos_shift, err);
}

/* swallows what a cancelled statement still sends: COPY rows, results */
static void drain(retl_source *s, int *cancelled)
{
	char *line;
	int n;
	while ((n = retl_pg_copy_data(s->conn, &line, cancelled)) >= 0)
		if (n > 0)
			PQfreemem(line);
	PGresult *res;
	while ((res = retl_pg_next_result(s->conn, cancelled)))
		PQclear(res);
}

/*
 * PQexec's answer to what was just sent (sent: the PQsend* call's return):
 * the first error, else the last result; a COPY's start ends the wait.
 * Waits through pgwait.h, so a stop cancels the statement: then NULL and
 * s->interrupted.  NULL too when sending failed (PQerrorMessage says why).
 */
static PGresult *result_of(retl_source *s, int sent)
{
	if (!sent)
		return NULL;
	int cancelled = 0;
	PGresult *keep = NULL, *res;
	while ((res = retl_pg_next_result(s->conn, &cancelled))) {
		ExecStatusType st = PQresultStatus(res);
		if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
			PQclear(res);
			continue;
		}
		PQclear(keep);
		keep = res;
		if (st == PGRES_COPY_OUT)
			break;
	}
	if (cancelled) {
		/* a COPY that started before the cancel landed */
		if (PQresultStatus(keep) == PGRES_COPY_OUT)
			drain(s, &cancelled);
		PQclear(keep);
		s->interrupted = 1;
		return NULL;
	}
	return keep;
}

/* runs a statement that returns no rows; on error fills err */
static int exec_cmd(retl_source *s, const char *sql, struct retl_err *err)
{
	PGresult *res = result_of(s, PQsendQuery(s->conn, sql));
	int rc = 0;
	if (s->interrupted)
		rc = RETL_SOURCE_INTERRUPTED;
	else if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = fail_result(s, res, 0, err);
	PQclear(res);
	return rc;
}

int retl_source_jit_off(retl_source *s, struct retl_err *err)
{
	if (s->redshift || PQserverVersion(s->conn) < 110000)
		return 0;
	return exec_cmd(s, "SET LOCAL jit = off", err);
}

/* best effort: used on the way out of an error, err already set.  Not
 * once asked to stop: the run is ending, and closing the connection ends
 * the transaction as surely */
static void exec_quiet(retl_source *s, const char *sql)
{
	if (s->interrupted || retl_stop_requested())
		return;
	PQclear(result_of(s, PQsendQuery(s->conn, sql)));
}

/* ---- open / close ------------------------------------------------------ */

/* what the server is, and so how rows are read (see the header comment) */
static void choose_read_path(retl_source *s, const struct retl_source_cfg *cfg)
{
	retl_buf version = RETL_BUF_INIT;
	s->redshift = retl_source_server_is_redshift(s->conn, &version) ||
		      (cfg->type && !strcmp(cfg->type, "redshift"));
	s->read = cfg->read;
	if (s->read == RETL_READ_AUTO) {
		s->read = s->redshift ? RETL_READ_CURSOR : RETL_READ_COPY;
		s->may_fall_back = s->read == RETL_READ_COPY;
	}
	retl_log(RETL_LOG_DEBUG, NULL, "source %s: server \"%s\"%s: reading "
		 "with %s%s", s->name, retl_buf_cstr(&version),
		 s->redshift ? " (Redshift)" : "",
		 s->read == RETL_READ_CURSOR ? "a cursor" : "COPY",
		 cfg->read == RETL_READ_AUTO ? "" : " (\"read\" in the config)");
	retl_buf_free(&version);
}

/*
 * The connection (pgwait.h): the DSN as the user wrote it plus a connect
 * deadline and TCP keepalives; RETL_SOURCE_INTERRUPTED when a stop came
 * while it was being made.
 */
static int connect_source(retl_source *s, const struct retl_source_cfg *cfg,
			  struct retl_err *err)
{
	struct retl_pg_params pp;
	char msg[512];
	retl_buf why = RETL_BUF_INIT, m = RETL_BUF_INIT;
	int rc = 0;

	if (retl_pg_params_init(&pp, cfg->dsn, cfg->connect_timeout_ms, msg,
				sizeof(msg)) < 0) {
		retl_source_one_line(&m, msg);
		retl_source_fail(err, "source %s: cannot connect: %s", s->name, retl_buf_cstr(&m));
		retl_buf_free(&m);
		retl_pg_params_free(&pp);
		return -1;
	}
	if (pp.timeout_ms)
		retl_log(RETL_LOG_DEBUG, NULL, "source %s: connecting (connect_timeout "
			 "%g s%s)", s->name, (double)pp.timeout_ms / 1000,
			 pp.timeout_from_dsn ? ", from the dsn" : "");
	else
		retl_log(RETL_LOG_DEBUG, NULL, "source %s: connecting (no connect_timeout)",
			 s->name);
	switch (retl_pg_connect(&s->conn, &pp, &why)) {
	case RETL_PG_CONNECTED:
		break;
	case RETL_PG_STOPPED:
		retl_log(RETL_LOG_INFO, NULL, "source %s: interrupted while connecting",
			 s->name);
		rc = RETL_SOURCE_INTERRUPTED;
		break;
	default:
		retl_source_one_line(&m, retl_buf_cstr(&why));
		rc = retl_source_fail(err, "source %s: cannot connect: %s", s->name,
			  retl_buf_cstr(&m));
	}
	retl_buf_free(&why);
	retl_buf_free(&m);
	retl_pg_params_free(&pp);
	return rc;
}

int retl_source_open(retl_source **out, const struct retl_source_cfg *cfg,
		     struct retl_err *err)
{
	*out = NULL;
	const char *name = cfg->name ? cfg->name : "?";
	if (!cfg->dsn)
		return retl_source_fail(err, "source %s: no dsn", name);

	/* config.c registers it too; doing it here keeps the source safe alone */
	retl_redact_dsn_password(cfg->dsn);

	retl_source *s = retl_calloc(1, sizeof(*s));
	s->name = retl_strdup(name);
	int rc = connect_source(s, cfg, err);
	if (rc) {
		retl_source_close(s);
		return rc;
	}

	choose_read_path(s, cfg);
	if (s->redshift)
		retl_buf_adds(&s->sql, "SET TimeZone='UTC'; SET DateStyle='ISO'; "
			      "SET extra_float_digits=2");
	else
		retl_buf_adds(&s->sql,
			      "SET TimeZone='UTC'; SET DateStyle='ISO'; "
			      "SET IntervalStyle='iso_8601'; SET extra_float_digits=3; "
			      "SET client_encoding='UTF8'; SET application_name='retl'");
	if (cfg->statement_timeout_ms > 0)
		retl_buf_addf(&s->sql, "; SET statement_timeout=%ld",
			      cfg->statement_timeout_ms);
	if ((rc = exec_cmd(s, s->sql.ptr, err)) ||
	    (rc = exec_cmd(s, s->redshift ?
			   "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY" :
			   "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ", err))) {
		retl_source_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

static void free_cols(retl_source *s)
{
	for (size_t i = 0; i < s->ncols; i++)
		free(s->cols[i].name);
	free(s->cols);
	s->cols = NULL;
	s->ncols = 0;
}

void retl_source_close(retl_source *s)
{
	if (!s)
		return;
	if (s->conn) {
		if (PQstatus(s->conn) == CONNECTION_OK &&
		    PQtransactionStatus(s->conn) != PQTRANS_IDLE)
			exec_quiet(s, "ROLLBACK");
		PQfinish(s->conn);
	}
	free_cols(s);
	retl_buf_free(&s->sql);
	retl_copy_line_free(&s->dec);
	free(s->name);
	free(s);
}

/* ---- describe ---------------------------------------------------------- */

/* the query without one trailing ';' and surrounding whitespace */
static size_t query_len(const char *q)
{
	size_t n = strlen(q);
	while (n && isspace((unsigned char)q[n - 1]))
		n--;
	if (n && q[n - 1] == ';') {
		n--;
		while (n && isspace((unsigned char)q[n - 1]))
			n--;
	}
	return n;
}

/*
 * A query that writes (DELETE ... RETURNING, a data-modifying WITH) fails
 * when it executes, since the transaction is read-only; but describe() only
 * prepares, and `retl check` should refuse it without running the model.
 * The plan says it: a ModifyTable node.  EXPLAIN without ANALYZE plans and
 * runs nothing.  It goes through the extended protocol (PQexecParams), which
 * takes exactly one statement, like the prepare before it.  A search of the
 * JSON text is exact: user text inside the plan is a JSON string, where
 * quotes are escaped, so it cannot spell the unescaped key and value.
 */
static int refuse_writes(retl_source *s, struct retl_err *err)
{
	static const char node[] = "\"Node Type\": \"ModifyTable\"";
	static const char op[] = "\"Operation\": \"";
	retl_buf sql = RETL_BUF_INIT;
	retl_buf_adds(&sql, "EXPLAIN (FORMAT JSON) ");
	size_t shift = sql.len;
	retl_buf_add(&sql, s->sql.ptr, s->sql.len);
	PGresult *res = result_of(s, PQsendQueryParams(s->conn, sql.ptr, 0, NULL,
						       NULL, NULL, NULL, 0));
	retl_buf_free(&sql);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		/* prepared fine but cannot be explained: not a SELECT (SHOW...) */
		rc = s->interrupted ? RETL_SOURCE_INTERRUPTED :
			fail_result(s, res, shift, err);
		PQclear(res);
		return rc;
	}
	const char *plan = PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "";
	/* the first "Plan Rows" is the top node's: the rows the model returns */
	const char *pr = strstr(plan, "\"Plan Rows\": ");
	s->est_rows = pr ? strtod(pr + 13, NULL) : 0;
	const char *m = strstr(plan, node);
	if (m) {
		char what[16] = "a write";
		const char *o = strstr(m, op);
		if (o) {
			o += sizeof(op) - 1;
			size_t i = 0;
			while (i < sizeof(what) - 1 && o[i] && o[i] != '"') {
				what[i] = (char)toupper((unsigned char)o[i]);
				i++;
			}
			what[i] = '\0';
		}
		rc = retl_source_fail(err, "source %s: cannot execute %s in a read-only "
			  "transaction (a model must be a SELECT; nothing was "
			  "run or changed)", s->name, what);
	}
	PQclear(res);
	return rc;
}

int retl_source_describe(retl_source *s, const char *query,
			 const struct retl_column **cols, size_t *ncols,
			 struct retl_err *err)
{
	*cols = NULL;
	*ncols = 0;
	free_cols(s);

	retl_buf_reset(&s->sql);
	retl_buf_add(&s->sql, query, query_len(query));
	int src = exec_cmd(s, "SAVEPOINT retl_describe", err);
	if (src)
		return src;

	int rc = 0;
	PGresult *res = result_of(s, PQsendPrepare(s->conn, "", s->sql.ptr, 0, NULL));
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = s->interrupted ? RETL_SOURCE_INTERRUPTED : fail_result(s, res, 0, err);
		PQclear(res);
		goto out;
	}
	PQclear(res);

	res = result_of(s, PQsendDescribePrepared(s->conn, ""));
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = s->interrupted ? RETL_SOURCE_INTERRUPTED : fail_result(s, res, 0, err);
		PQclear(res);
		goto out;
	}
	int n = PQnfields(res);
	if (n <= 0) {
		/* e.g. a bare DELETE: it was only prepared, never run */
		rc = retl_source_fail(err, "source %s: the query returns no columns "
			  "(a model must be a SELECT)", s->name);
		PQclear(res);
		goto out;
	}
	s->cols = retl_calloc((size_t)n, sizeof(*s->cols));
	for (int i = 0; i < n; i++) {
		s->cols[i].name = retl_strdup(PQfname(res, i));
		s->cols[i].oid = (unsigned)PQftype(res, i);
	}
	s->ncols = (size_t)n;
	PQclear(res);
	/* after the columns are read: EXPLAIN replaces the unnamed statement;
	 * Redshift's EXPLAIN takes no (FORMAT JSON): there the read-only
	 * transaction alone refuses a write, when the model runs */
	rc = s->redshift ? 0 : refuse_writes(s, err);

out:
	if (rc) {
		exec_quiet(s, "ROLLBACK TO SAVEPOINT retl_describe");
		exec_quiet(s, "RELEASE SAVEPOINT retl_describe");
		free_cols(s);
		return rc;
	}
	if ((rc = exec_cmd(s, "RELEASE SAVEPOINT retl_describe", err))) {
		free_cols(s);
		return rc;
	}
	*cols = s->cols;
	*ncols = s->ncols;
	return 0;
}

double retl_source_estimated_rows(const retl_source *s)
{
	return s->est_rows;
}

int retl_source_is_redshift(const retl_source *s)
{
	return s->redshift;
}

void retl_source_columns(const retl_source *s, const struct retl_column **cols,
			 size_t *ncols)
{
	*cols = s->cols;
	*ncols = s->ncols;
}

/* ---- stream ------------------------------------------------------------ */

/*
 * After fn asked to stop: cancel the COPY and swallow what is still
 * coming; *cancelled says whether pgwait sent the cancel already (a stop
 * seen while waiting), so it goes out once.
 */
static void cancel_and_drain(retl_source *s, int *cancelled)
{
	if (!*cancelled) {
		PGcancel *c = PQgetCancel(s->conn);
		if (c) {
			char errbuf[256];
			PQcancel(c, errbuf, (int)sizeof(errbuf));
			PQfreeCancel(c);
		}
		*cancelled = 1;
	}
	drain(s, cancelled);
}

/*
 * In "auto" mode, before any COPY worked on this connection: a server that
 * rejects `COPY (query) TO STDOUT` itself (a syntax error or "feature not
 * supported": the user's query was already prepared by describe(), so it
 * is the COPY that is refused) gets the cursor from now on.  Rolls back to
 * the stream's savepoint and returns 1 when the caller should use it.
 */
static int copy_refused(retl_source *s, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (!s->may_fall_back || !state ||
	    (strcmp(state, "42601") && strcmp(state, "0A000")))
		return 0;
	s->may_fall_back = 0;
	exec_quiet(s, "ROLLBACK TO SAVEPOINT retl_stream");
	if (PQtransactionStatus(s->conn) != PQTRANS_INTRANS)
		return 0;
	s->read = RETL_READ_CURSOR;
	retl_log(RETL_LOG_DEBUG, NULL, "source %s: the server refused COPY "
		 "(SQLSTATE %s); reading with a cursor from now on",
		 s->name, state);
	return 1;
}

/* the COPY's error; where the server refuses COPY itself, what to do */
static int copy_failed(retl_source *s, const PGresult *res,
		       struct retl_err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (!state || (strcmp(state, "42601") && strcmp(state, "0A000")))
		return fail_result(s, res, COPY_PREFIX_LEN, err);
	struct retl_err server = { 0 };
	fail_result(s, res, COPY_PREFIX_LEN, &server);
	return retl_source_fail(err, "%s (the server refused COPY (query) TO STDOUT%s)",
		    server.msg, s->redshift ? ", as Redshift does" : "");
}

int retl_source_stream(retl_source *s, const char *query, retl_row_fn fn,
		       void *ud, struct retl_err *err)
{
	int rc = exec_cmd(s, "SAVEPOINT retl_stream", err);
	if (rc)
		return rc;

	/* newlines around the query so a trailing "-- comment" cannot eat ")" */
	retl_buf_reset(&s->sql);
	retl_buf_adds(&s->sql, COPY_PREFIX);
	retl_buf_add(&s->sql, query, query_len(query));
	retl_buf_adds(&s->sql, "\n) TO STDOUT");

	if (s->read == RETL_READ_CURSOR) {
		rc = retl_source_cursor_stream(s, s->conn, s->name, query,
					       query_len(query), fn, ud, err);
		goto out;
	}
	PGresult *res = result_of(s, PQsendQuery(s->conn, s->sql.ptr));
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		if (s->interrupted) {
			rc = RETL_SOURCE_INTERRUPTED;
		} else if (copy_refused(s, res)) {
			PQclear(res);
			rc = retl_source_cursor_stream(s, s->conn, s->name, query,
						       query_len(query), fn, ud, err);
			goto out;
		} else {
			rc = copy_failed(s, res, err);
		}
		PQclear(res);
		goto out;
	}
	s->may_fall_back = 0;
	size_t ncols = (size_t)PQnfields(res);
	PQclear(res);
	retl_copy_line_reserve(&s->dec, ncols ? ncols : 1);

	/* the model runs while the rows come: a stop while we wait for the
	 * next one cancels it (pgwait.h) */
	int cancelled = 0;
	struct retl_row row;
	row.ncols = ncols;
	char *line;
	int n;
	while ((n = retl_pg_copy_data(s->conn, &line, &cancelled)) > 0) {
		size_t len = (size_t)n;
		if (line[len - 1] == '\n')
			len--;
		size_t nf = ncols ? retl_copy_decode_line(&s->dec, line, len, ncols) : 0;
		if (nf != ncols) {
			PQfreemem(line);
			cancel_and_drain(s, &cancelled);
			rc = retl_source_fail(err, "source %s: COPY row has %zu fields, "
				  "expected %zu", s->name, nf, ncols);
			goto out;
		}
		row.vals = s->dec.vals;
		row.lens = s->dec.lens;
		int stop = fn(ud, &row, line, len);
		PQfreemem(line);
		if (stop) {
			cancel_and_drain(s, &cancelled);
			rc = stop;
			goto out;
		}
	}
	if (n == -2 && !cancelled) {
		fail_result(s, NULL, 0, err);
		rc = -1;
		/* fall through: collect the final result anyway */
	}

	/* the COPY's own outcome: a timeout or a runtime error arrives here */
	while ((res = retl_pg_next_result(s->conn, &cancelled))) {
		if (!rc && !cancelled && PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = fail_result(s, res, COPY_PREFIX_LEN, err);
		PQclear(res);
	}
	/* cancelled on a stop: whatever the server said next (the cancel's
	 * error, the connection given up on) is the stop's doing */
	if (cancelled) {
		s->interrupted = 1;
		rc = RETL_SOURCE_INTERRUPTED;
	}

out:
	if (rc) {
		exec_quiet(s, "ROLLBACK TO SAVEPOINT retl_stream");
		exec_quiet(s, "RELEASE SAVEPOINT retl_stream");
		return rc;
	}
	return exec_cmd(s, "RELEASE SAVEPOINT retl_stream", err);
}
