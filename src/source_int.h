/*
 * source_int.h - what the PostgreSQL-protocol source's two files share:
 * source_pg.c (connection, transaction, describe, the COPY stream) and
 * source_cursor.c (the server-side cursor stream for warehouses without
 * COPY ... TO STDOUT, and telling such a server from PostgreSQL).  Nothing
 * else includes it.
 */
#ifndef RETL_SOURCE_INT_H
#define RETL_SOURCE_INT_H

#include <libpq-fe.h>

#include "buf.h"
#include "source.h"

/* sets err (the first message wins; exit 3) and redacts what it wrote;
 * returns -1.  (source_pg.c) */
int retl_source_fail(struct retl_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* a libpq message as one log line: line breaks become one space, trailing
 * whitespace goes (source_pg.c) */
void retl_source_one_line(retl_buf *out, const char *s);

/*
 * The source's error from a failed result (res NULL: connection-level),
 * shaped and redacted like every source error; pos_shift is what was put in
 * front of the user's query.  Returns -1.  (source_pg.c)
 */
int retl_source_fail_result(retl_source *s, const PGresult *res,
			    size_t pos_shift, struct retl_err *err);

/*
 * 1 when the server says it is Amazon Redshift: its server_version is
 * PostgreSQL 8.0.2's and version() names Redshift.  `version` gets
 * version()'s text (or server_version's when it cannot be read), for the
 * debug log.  (source_cursor.c)
 */
int retl_source_server_is_redshift(PGconn *conn, retl_buf *version);

/*
 * Streams query[0..qlen) through DECLARE retl_cur CURSOR + FETCH FORWARD n
 * inside the caller's transaction and savepoint, calling fn per row with
 * the line COPY's text format would have given for the row as `raw`, so a
 * row hashes the same whichever way it was read.  Returns 0, fn's non-zero
 * value, or -1 with err set.  The cursor is closed on the way out when the
 * transaction can still run commands; otherwise the caller's ROLLBACK TO
 * SAVEPOINT closes it.  (source_cursor.c)
 */
int retl_source_cursor_stream(retl_source *s, PGconn *conn, const char *name,
			      const char *query, size_t qlen, retl_row_fn fn,
			      void *ud, struct retl_err *err);

/*
 * Appends v[0..len) escaped as COPY's text format writes a field: a
 * backslash before backslash, \b \f \n \r \t \v as letters, every other
 * byte as is; v NULL is SQL NULL, written \N.  (source_cursor.c)
 */
void retl_source_copy_field(retl_buf *out, const char *v, size_t len);

#endif
