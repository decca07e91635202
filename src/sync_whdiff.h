/*
 * sync_whdiff.h - what the two files of "diff": "warehouse" share:
 * sync_whdiff.c (the run) and sync_whdiff_table.c (the warehouse table:
 * session, grants, DDL, writes).  Nothing else includes it.
 */
#ifndef RETL_SYNC_WHDIFF_H
#define RETL_SYNC_WHDIFF_H

#include <libpq-fe.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "err.h"
#include "row.h"
#include "source.h"

/* appends "name" with its quotes doubled */
void retl_whdiff_ident(retl_buf *b, const char *name);
/* "schema"."sync", quoted, malloc'd */
char *retl_whdiff_table(const struct retl_sync_cfg *sc);
/* a second, writable session on the sync's source; NULL with err (3) */
PGconn *retl_whdiff_connect(const struct retl_sync_cfg *sc, struct retl_err *err);
/*
 * The schema and table, made when missing (a missing grant says which);
 * *empty: the table has no row (just made, dropped, truncated, or an
 * UNLOGGED table after a server crash).  unlogged: PostgreSQL's kind,
 * without WAL; what it may lose costs one full comparison.
 */
int retl_whdiff_ensure(const struct retl_sync_cfg *sc, PGconn *c, int unlogged,
		       int *empty, struct retl_err *err);
/*
 * Writes n rows of 4 values (key, row_hash, pay_hash, dest_id; NULLs
 * allowed) over table t's rows of those keys, or (del) deletes the keys'
 * rows, in one transaction through a temp staging table.  PostgreSQL:
 * COPY FROM STDIN and INSERT … ON CONFLICT; portable (Redshift has
 * neither): multi-row INSERTs, DELETE … USING, INSERT.  Keys unique.
 * fresh: t was empty at the run's start and only this run wrote it
 * since: PostgreSQL COPYs straight into it.
 */
int retl_whdiff_write(const struct retl_sync_cfg *sc, PGconn *c,
		      const char *t, int portable, int redshift,
		      const char *const *v, size_t n, int del, int fresh,
		      struct retl_err *err);

/* ANALYZE t (sync_whdiff_table.c) */
int retl_whdiff_analyze(const struct retl_sync_cfg *sc, PGconn *c, const char *t,
			struct retl_err *err);

/* the engine's key text (sync_diff.c build_key) as an SQL expression over
 * the model's columns (sync_whdiff.c) */
void retl_whdiff_key_expr(retl_buf *q, const struct retl_sync_cfg *sc, int portable);

/*
 * "changed_since" (sync_whdiff_since.c): the watermark, the key check and
 * the range.  new: *out NULL when the sync has none; -1 (exit 2) when the
 * column is not the model's, or not an integer, date or timestamp.
 */
struct retl_whsince;
int retl_whsince_new(const struct retl_sync_cfg *sc, const struct retl_column *cols,
		     size_t n, uint64_t seed, struct retl_whsince **out,
		     struct retl_err *err);
/* the column's index among the model's */
size_t retl_whsince_col(const struct retl_whsince *s);
/*
 * In the run's snapshot: reads the watermark (may_read_range: not a full
 * resync, the table not just emptied) and, when check, runs the key check
 * (without it the range is trusted: see sync_whdiff_since.c).  Returns 1
 * when this run may read only the range, 0 when it compares every row,
 * or the source's error (< 0).
 */
int retl_whsince_prepare(struct retl_whsince *s, retl_source *src, const char *model,
			 size_t mlen, const char *table, int portable, int redshift,
			 int may_read_range, int check, struct retl_err *err);
/* appends "(col >= W [- lookback] OR col IS NULL)" */
void retl_whsince_range(const struct retl_whsince *s, retl_buf *q);
/* a returned row not acknowledged: W's next value stays at or below v */
void retl_whsince_pin(struct retl_whsince *s, const char *v);
/* 1 and the watermark row's row_hash and value when W moves */
int retl_whsince_marker(const struct retl_whsince *s, const char **tag,
			const char **w);
void retl_whsince_free(struct retl_whsince *s);

#endif
