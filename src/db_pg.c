/*
 * db_pg.c - the database layer (db.h) over PostgreSQL (libpq), for a state
 * store kept in a database server.
 *
 * SQL comes written for both backends with ?N parameters; they become $N
 * here (outside quotes).  Parameters are sent as text with no type: the
 * server infers each from its use (a bare ?N in a CASE WHEN is a boolean,
 * and "1"/"0" are booleans' text), so the state files bind integers as they
 * do for SQLite.  Results come back as text, read with strtoll/strtod.
 *
 * A statement runs unnamed (PQexecParams) the first time and is prepared
 * on the server when it runs a second time: the per-row statements of a
 * run are parsed once, a report's one-off queries cost no extra round
 * trip.  Once prepared, finalize deallocates it.
 *
 * PostgreSQL aborts a transaction at its first failed statement and then
 * answers COMMIT with ROLLBACK: that answer is an error here, so nothing
 * before the failure is taken for committed.
 *
 * Pipelining: inside a transaction, a statement that only writes (INSERT,
 * UPDATE, DELETE without RETURNING) is sent in libpq's pipeline mode and
 * its step returns at once: a first run acknowledges a row with two or
 * three statements, and a round trip each would make a million-row first
 * run take many minutes.  Its result is read later, when a statement that
 * needs an answer comes (a read, COMMIT, anything run by exec) or when
 * PIPE_MAX results wait (so neither side's socket buffer fills while the
 * other waits on it).  A write that failed fails that next statement, and
 * with it the commit: the transaction is aborted, nothing half-written is
 * kept, nothing the caller had not acknowledged is marked.
 */
#include "db.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define PIPE_MAX 256

struct pg_db {
	struct retl_db base;
	PGconn *c;
	int pending;                    /* pipelined statements not read */
	struct pg_stmt **fresh;         /* prepared in this pipeline: after a
					 * failure the server may have skipped
					 * their Parse, so they are prepared
					 * again, under a new name */
	size_t nfresh, capfresh;
	char *msg;                      /* the last error, or NULL */
	enum retl_db_kind kind;
	int64_t changes;
	unsigned long next_name;
};

struct pg_stmt {
	struct retl_db_stmt base;
	char *sql;                      /* with $N */
	int nparams;
	const char **vals;              /* borrowed text, or num[i] */
	char (*num)[32];                /* numbers' text */
	char **own;                     /* copies made by bind_text */
	Oid *types;                     /* 0: inferred by the server */
	int runs;                       /* times executed */
	int writes;                     /* INSERT/UPDATE/DELETE, no RETURNING */
	char name[32];                  /* "" until prepared on the server */
	PGresult *res;
	int row, nrows;
};

#define DB(d) ((struct pg_db *)(d))
#define ST(s) ((struct pg_stmt *)(s))

static void set_err(struct pg_db *db, enum retl_db_kind kind, const char *msg)
{
	size_t n = strlen(msg);

	free(db->msg);
	/* libpq's messages end in a newline, sometimes "ERROR:  " first */
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	if (!strncmp(msg, "ERROR:  ", 8)) {
		msg += 8;
		n -= 8;
	}
	db->msg = retl_strndup(msg, n);
	db->kind = kind;
}

/* what an SQLSTATE means for the exit code (db.h retl_db_kind) */
static enum retl_db_kind kind_of(struct pg_db *db, const char *state)
{
	if (PQstatus(db->c) == CONNECTION_BAD || !state)
		return RETL_DB_EIO;
	if (!strcmp(state, "23505"))
		return RETL_DB_ECONSTRAINT;
	if (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3) ||
	    !strncmp(state, "58", 2))
		return RETL_DB_EIO;         /* connection lost, server gone */
	if (!strncmp(state, "53", 2))
		return RETL_DB_EFULL;       /* disk full, out of memory */
	if (!strncmp(state, "XX", 2))
		return RETL_DB_ECORRUPT;
	if (!strcmp(state, "42501"))
		return RETL_DB_EPERM;
	return RETL_DB_EOTHER;
}

/* 0 when res is a success, else -1 with the error noted; res is kept.
 * sql: the statement, when it may be a COMMIT */
static int check(struct pg_db *db, PGresult *res, const char *sql)
{
	ExecStatusType t = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) {
		const char *tag = PQcmdStatus(res);
		/* COMMIT of a transaction a failed statement aborted */
		if (sql && !strncmp(sql, "COMMIT", 6) && tag &&
		    !strcmp(tag, "ROLLBACK")) {
			set_err(db, RETL_DB_EOTHER, "the transaction was rolled "
				"back by the server");
			return -1;
		}
		db->changes = atoll(PQcmdTuples(res));
		return 0;
	}
	if (!res) {
		set_err(db, RETL_DB_EIO, PQerrorMessage(db->c));
		return -1;
	}
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	set_err(db, kind_of(db, state), msg ? msg : PQerrorMessage(db->c));
	return -1;
}

/* ?N outside quotes becomes $N; returns the highest N; used[N - 1] set
 * for each N that occurs (up to RETL_PG_MAXP) */
#define RETL_PG_MAXP 64
static int translate(const char *sql, retl_buf *out, char *used)
{
	int max = 0;
	char quote = 0;

	for (const char *p = sql; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (*p == '?' && p[1] >= '0' && p[1] <= '9') {
			char *end;
			long n = strtol(p + 1, &end, 10);
			if (n > max && n <= RETL_PG_MAXP)
				max = (int)n;
			if (n >= 1 && n <= RETL_PG_MAXP)
				used[n - 1] = 1;
			retl_buf_addf(out, "$%ld", n);
			p = end - 1;
			continue;
		}
		retl_buf_addc(out, *p);
	}
	return max;
}

static int pg_prepare(retl_db *d, const char *sql, retl_db_stmt **out)
{
	struct pg_stmt *s = retl_calloc(1, sizeof(*s));
	retl_buf b = RETL_BUF_INIT;
	char used[RETL_PG_MAXP] = { 0 };

	s->base.db = d;
	s->writes = (!strncmp(sql, "INSERT", 6) || !strncmp(sql, "UPDATE", 6) ||
		     !strncmp(sql, "DELETE", 6)) && !strstr(sql, "RETURNING");
	s->nparams = translate(sql, &b, used);
	s->sql = retl_buf_detach(&b);
	if (s->nparams) {
		/* a number the statement skips (the shared binding code sets
		 * ?1..?14 where one statement uses some) has no use to infer
		 * its type from: call it text */
		s->types = retl_calloc((size_t)s->nparams, sizeof(*s->types));
		for (int i = 0; i < s->nparams; i++)
			s->types[i] = used[i] ? 0 : 25;        /* TEXTOID */
		s->vals = retl_calloc((size_t)s->nparams, sizeof(*s->vals));
		s->num = retl_calloc((size_t)s->nparams, sizeof(*s->num));
		s->own = retl_calloc((size_t)s->nparams, sizeof(*s->own));
	}
	*out = &s->base;
	return 0;
}

static void pg_bind_int64(retl_db_stmt *st, int i, int64_t v)
{
	struct pg_stmt *s = ST(st);
	if (i < 1 || i > s->nparams)
		return;
	snprintf(s->num[i - 1], sizeof(s->num[0]), "%lld", (long long)v);
	s->vals[i - 1] = s->num[i - 1];
}

static void pg_bind_double(retl_db_stmt *st, int i, double v)
{
	struct pg_stmt *s = ST(st);
	if (i < 1 || i > s->nparams)
		return;
	snprintf(s->num[i - 1], sizeof(s->num[0]), "%.17g", v);
	s->vals[i - 1] = s->num[i - 1];
}

static void pg_bind_text(retl_db_stmt *st, int i, const char *v, int len)
{
	struct pg_stmt *s = ST(st);
	if (i < 1 || i > s->nparams)
		return;
	free(s->own[i - 1]);
	s->own[i - 1] = NULL;
	/* text parameters go NUL-terminated: copy one that is not */
	if (len >= 0 && v[len] != '\0')
		v = s->own[i - 1] = retl_strndup(v, (size_t)len);
	s->vals[i - 1] = v;
}

static void pg_bind_null(retl_db_stmt *st, int i)
{
	struct pg_stmt *s = ST(st);
	if (i >= 1 && i <= s->nparams)
		s->vals[i - 1] = NULL;
}

/* the note of a pipelined result: the first error wins */
static void pipe_result(struct pg_db *db, PGresult *r, int *failed)
{
	ExecStatusType t = PQresultStatus(r);

	if (t == PGRES_PIPELINE_ABORTED || t == PGRES_PIPELINE_SYNC)
		return;
	if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) {
		db->changes = atoll(PQcmdTuples(r));
		return;
	}
	if (!*failed) {
		check(db, r, NULL);
		*failed = 1;
	}
}

/*
 * Reads every pipelined result and leaves pipeline mode: 0, or -1 with
 * the first failure noted (the transaction is then aborted).
 */
static int drain(struct pg_db *db)
{
	int failed = 0, nulls = 0;

	if (PQpipelineStatus(db->c) == PQ_PIPELINE_OFF)
		return 0;
	if (db->pending && PQpipelineSync(db->c) != 1) {
		set_err(db, RETL_DB_EIO, PQerrorMessage(db->c));
		failed = 1;
	} else if (db->pending) {
		/* every result up to the sync: a NULL ends one statement's
		 * results; two in a row, or a lost connection, end them all */
		for (;;) {
			PGresult *r = PQgetResult(db->c);

			if (!r) {
				if (PQstatus(db->c) == CONNECTION_BAD) {
					if (!failed)
						set_err(db, RETL_DB_EIO,
							PQerrorMessage(db->c));
					failed = 1;
					break;
				}
				if (++nulls > 1)
					break;
				continue;
			}
			nulls = 0;
			if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
				PQclear(r);
				break;
			}
			pipe_result(db, r, &failed);
			PQclear(r);
		}
	}
	db->pending = 0;
	for (size_t i = 0; failed && i < db->nfresh; i++)
		db->fresh[i]->name[0] = '\0';
	db->nfresh = 0;
	if (PQexitPipelineMode(db->c) != 1 && !failed) {
		set_err(db, RETL_DB_EIO, PQerrorMessage(db->c));
		failed = 1;
	}
	return failed ? -1 : 0;
}

/* sends a write without waiting for it (see the top) */
static int send_write(struct pg_db *db, struct pg_stmt *s)
{
	if (PQpipelineStatus(db->c) == PQ_PIPELINE_OFF &&
	    PQenterPipelineMode(db->c) != 1)
		goto fail;
	if (!s->name[0]) {
		snprintf(s->name, sizeof(s->name), "retl_%lu", ++db->next_name);
		if (PQsendPrepare(db->c, s->name, s->sql, s->nparams,
				  s->types) != 1)
			goto fail;
		db->pending++;
		if (db->nfresh == db->capfresh) {
			db->capfresh = db->capfresh ? 2 * db->capfresh : 16;
			db->fresh = retl_realloc(db->fresh, db->capfresh *
						 sizeof(*db->fresh));
		}
		db->fresh[db->nfresh++] = s;
	}
	if (PQsendQueryPrepared(db->c, s->name, s->nparams, s->vals, NULL,
				NULL, 0) != 1)
		goto fail;
	s->runs++;
	if (++db->pending >= PIPE_MAX)
		return drain(db);
	return 0;
fail:
	set_err(db, RETL_DB_EIO, PQerrorMessage(db->c));
	return -1;
}

static int in_block(struct pg_db *db)
{
	return PQpipelineStatus(db->c) != PQ_PIPELINE_OFF ||
	       PQtransactionStatus(db->c) == PQTRANS_INTRANS;
}

static PGresult *run(struct pg_db *db, struct pg_stmt *s)
{
	if (s->runs++ == 0)
		return PQexecParams(db->c, s->sql, s->nparams, s->types, s->vals,
				    NULL, NULL, 0);
	if (!s->name[0]) {
		char name[32];
		snprintf(name, sizeof(name), "retl_%lu", ++db->next_name);
		PGresult *r = PQprepare(db->c, name, s->sql, s->nparams, s->types);
		if (check(db, r, NULL) < 0)
			return r;
		PQclear(r);
		memcpy(s->name, name, sizeof(name));
	}
	return PQexecPrepared(db->c, s->name, s->nparams, s->vals, NULL, NULL, 0);
}

static int pg_step(retl_db_stmt *st)
{
	struct pg_stmt *s = ST(st);
	struct pg_db *db = DB(st->db);

	if (!s->res) {
		db->kind = RETL_DB_OK;
		if (s->writes && in_block(db)) {
			s->row = s->nrows = 0;
			return send_write(db, s) < 0 ? RETL_DB_ERROR : RETL_DB_DONE;
		}
		if (drain(db) < 0 && strncmp(s->sql, "ROLLBACK", 8))
			return RETL_DB_ERROR;
		db->kind = RETL_DB_OK;
		s->res = run(db, s);
		if (check(db, s->res, s->sql) < 0) {
			PQclear(s->res);
			s->res = NULL;
			return RETL_DB_ERROR;
		}
		s->row = 0;
		s->nrows = PQntuples(s->res);
	} else if (s->row < s->nrows) {
		s->row++;
	}
	return s->row < s->nrows ? RETL_DB_ROW : RETL_DB_DONE;
}

static int pg_col_null(retl_db_stmt *st, int i)
{
	struct pg_stmt *s = ST(st);
	return !s->res || s->row >= s->nrows || i >= PQnfields(s->res) ||
	       PQgetisnull(s->res, s->row, i);
}

static const char *pg_col_text(retl_db_stmt *st, int i)
{
	struct pg_stmt *s = ST(st);
	return pg_col_null(st, i) ? NULL : PQgetvalue(s->res, s->row, i);
}

static int64_t pg_col_int64(retl_db_stmt *st, int i)
{
	const char *v = pg_col_text(st, i);
	if (!v)
		return 0;
	if (v[0] == 't' && !v[1])
		return 1;               /* a boolean */
	return (int64_t)strtoll(v, NULL, 10);
}

static double pg_col_double(retl_db_stmt *st, int i)
{
	const char *v = pg_col_text(st, i);
	return v ? strtod(v, NULL) : 0.0;
}

static int pg_col_bytes(retl_db_stmt *st, int i)
{
	struct pg_stmt *s = ST(st);
	return pg_col_null(st, i) ? 0 : PQgetlength(s->res, s->row, i);
}

static void pg_reset(retl_db_stmt *st)
{
	struct pg_stmt *s = ST(st);
	PQclear(s->res);
	s->res = NULL;
	s->row = s->nrows = 0;
}

static void pg_finalize(retl_db_stmt *st)
{
	struct pg_stmt *s = ST(st);
	struct pg_db *db = DB(st->db);

	pg_reset(st);
	if (s->name[0] && drain(db) == 0 && PQstatus(db->c) == CONNECTION_OK &&
	    PQtransactionStatus(db->c) != PQTRANS_INERROR) {
		retl_buf b = RETL_BUF_INIT;
		retl_buf_addf(&b, "DEALLOCATE %s", s->name);
		PQclear(PQexec(db->c, b.ptr));
		retl_buf_free(&b);
	}
	free(s->sql);
	free(s->vals);
	free(s->num);
	for (int i = 0; i < s->nparams; i++)
		free(s->own[i]);
	free(s->own);
	free(s->types);
	free(s);
}

static int pg_exec(retl_db *d, const char *sql)
{
	struct pg_db *db = DB(d);
	PGresult *r;

	if (drain(db) < 0 && strncmp(sql, "ROLLBACK", 8))
		return -1;
	db->kind = RETL_DB_OK;
	r = PQexec(db->c, sql);
	int rc = check(db, r, sql);
	PQclear(r);
	return rc;
}

static int pg_begin(retl_db *d, enum retl_db_begin mode)
{
	/* a write transaction takes its row locks as it goes: two writers
	 * of one sync never meet (the run lock), other rows do not clash */
	return pg_exec(d, mode == RETL_DB_WRITE ? "BEGIN" :
		       "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

static int64_t pg_changes(retl_db *d)
{
	drain(DB(d));
	return DB(d)->changes;
}

static int pg_in_txn(retl_db *d)
{
	PGTransactionStatusType t = PQtransactionStatus(DB(d)->c);
	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR ||
	       t == PQTRANS_ACTIVE;
}

static const char *pg_errmsg(retl_db *d)
{
	return DB(d)->msg ? DB(d)->msg : "no error";
}

static enum retl_db_kind pg_errkind(retl_db *d)
{
	return DB(d)->kind;
}

static void pg_close(retl_db *d)
{
	struct pg_db *db = DB(d);
	PQfinish(db->c);
	free(db->fresh);
	free(db->msg);
	free(db);
}

static const struct retl_db_ops pg_ops = {
	.name = "postgresql",
	.prepare = pg_prepare,
	.bind_int64 = pg_bind_int64,
	.bind_double = pg_bind_double,
	.bind_text = pg_bind_text,
	.bind_null = pg_bind_null,
	.step = pg_step,
	.col_null = pg_col_null,
	.col_int64 = pg_col_int64,
	.col_double = pg_col_double,
	.col_text = pg_col_text,
	.col_bytes = pg_col_bytes,
	.reset = pg_reset,
	.finalize = pg_finalize,
	.exec = pg_exec,
	.begin = pg_begin,
	.changes = pg_changes,
	.in_txn = pg_in_txn,
	.errmsg = pg_errmsg,
	.errkind = pg_errkind,
	.close = pg_close,
};

/* the server's notices (a schema that already exists) are not ours */
static void quiet(void *ud, const char *msg)
{
	(void)ud;
	(void)msg;
}

int retl_db_pg_open(retl_db **out, const char *conninfo)
{
	/* keywords before dbname are defaults the URL may override */
	const char *keys[] = { "connect_timeout", "dbname",
			       "fallback_application_name", NULL };
	const char *vals[] = { "10", conninfo, "retl", NULL };
	struct pg_db *db = retl_calloc(1, sizeof(*db));

	db->base.ops = &pg_ops;
	db->base.upsert_only = 1;
	db->c = PQconnectdbParams(keys, vals, 1);
	*out = &db->base;
	if (!db->c || PQstatus(db->c) != CONNECTION_OK) {
		set_err(db, RETL_DB_EIO, db->c ? PQerrorMessage(db->c) :
			"out of memory");
		return -1;
	}
	PQsetNoticeProcessor(db->c, quiet, NULL);
	return 0;
}
