/*
 * sync_whdiff.h - what the two files of "diff": "warehouse" share:
 * sync_whdiff.c (the run) and sync_whdiff_table.c (the warehouse table:
 * session, grants, DDL, writes).  Nothing else includes it.
 */
#ifndef RETL_SYNC_WHDIFF_H
#define RETL_SYNC_WHDIFF_H

#include <libpq-fe.h>

#include "buf.h"
#include "config.h"
#include "err.h"

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

#endif
