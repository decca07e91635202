/*
 * source.h - the warehouse side: one PostgreSQL connection per run.
 *
 * Everything a run reads comes from one BEGIN READ ONLY ISOLATION LEVEL
 * REPEATABLE READ transaction, so a model can never write and every row is
 * from one snapshot.  Rows are streamed with COPY (query) TO STDOUT (text
 * format) and decoded in place; the whole result is never in memory.
 * Session settings: TimeZone=UTC, DateStyle=ISO, IntervalStyle=iso_8601,
 * extra_float_digits=3, statement_timeout from config.  Connecting is
 * bounded by connect_timeout (default 10 s) with TCP keepalives on, and a
 * stop (SIGINT/SIGTERM, stop.h) while connecting or while a statement runs
 * ends the wait at once (the statement is cancelled): pgwait.h.
 */
#ifndef RETL_SOURCE_H
#define RETL_SOURCE_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "row.h"

typedef struct retl_source retl_source;

/*
 * What open, describe and stream return, with err left empty, when the
 * process was asked to stop (stop.h) while they waited on the server: the
 * connection attempt was abandoned, or the statement running was
 * cancelled (PQcancel).  The caller ends the run as interrupted.
 */
#define RETL_SOURCE_INTERRUPTED (-2)

/* connects and opens the transaction; errors carry code 3 and the server's
 * message, never the DSN's password */
int retl_source_open(retl_source **out, const struct retl_source_cfg *cfg,
		     struct retl_err *err);

/* prepares the query (one statement only) and returns its columns, owned by
 * the source and valid until close */
int retl_source_describe(retl_source *s, const char *query,
			 const struct retl_column **cols, size_t *ncols,
			 struct retl_err *err);

/* the planner's estimate of the rows the described query returns, 0 when
 * unknown; a sizing hint, never a count */
double retl_source_estimated_rows(const retl_source *s);

/*
 * Called once per row.  `raw` is the row's COPY text line (without the
 * newline), for hashing.  Return 0 to go on; non-zero stops the stream and
 * becomes retl_source_stream's return value (keep it positive: negative
 * values are the source's own, -1 an error in err, RETL_SOURCE_INTERRUPTED).
 */
typedef int (*retl_row_fn)(void *ud, const struct retl_row *row,
			   const char *raw, size_t rawlen);

int retl_source_stream(retl_source *s, const char *query, retl_row_fn fn,
		       void *ud, struct retl_err *err);

/*
 * PostgreSQL 11+ (not Redshift): no JIT compiling for the rest of the
 * run's transaction.  For statements that each scan once with a plain
 * expression, where compiling costs more than it saves (the warehouse
 * diff's key check: 2.3 of its 4.1 s at 10M rows).  0, or an error.
 */
int retl_source_jit_off(retl_source *s, struct retl_err *err);

/* the server says it is Amazon Redshift (or the source's type says so) */
int retl_source_is_redshift(const retl_source *s);
/* the columns of the last describe, owned by the source */
void retl_source_columns(const retl_source *s, const struct retl_column **cols,
			 size_t *ncols);

/* rolls back (nothing was written) and disconnects; NULL is fine */
void retl_source_close(retl_source *s);

#endif
