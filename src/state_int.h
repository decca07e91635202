/*
 * state_int.h - what the state module's files share: the handle, the
 * statements prepared at open, and small SQLite helpers.  Only src/state*.c
 * include it; nothing outside the state module sees SQLite.
 *
 * The files: state.c (schema, open, close, transactions), state_lock.c
 * (the run lock), state_cache.c (the cache generation, loading the cache,
 * cache images), state_rows.c (per-row writes and reads of the cache),
 * state_notes.c (destination notes, API usage), state_orphans.c (records
 * no key is bound to), state_report.c (run history and the reports read
 * from it), state_marker.c (the store's identity: the marker beside it,
 * the file watched during a run), state_pg.c (what only a store in
 * PostgreSQL does: its schema, its run lock, its identity).  The database
 * itself is reached through db.h (SQLite or PostgreSQL).
 */
#ifndef RETL_STATE_INT_H
#define RETL_STATE_INT_H

#include <sys/types.h>
#include <time.h>

#include "db.h"
#include "state.h"

/* the statements prepared once at open */
enum {
	S_ACK, S_FAIL, S_SET_SRC, S_PENDING, S_FORGET, S_OUTCOME, S_DEST_ID,
	S_COMMIT, S_ROLLBACK, S_GEN_GET, S_GEN_SET,
	S_STAGE, S_STAGED, S_UNSTAGE_OK, S_UNSTAGE_FAIL, S_ORPHAN_BOUND, S_ORPHAN_SENT, S_SENT,
	S_ORPHAN_DONE, S_ORPHAN_FAIL, S_ACK_NEW, S_COUNT
};

struct held_lock;

struct run_clock {
	int64_t id;
	struct timespec start;  /* CLOCK_MONOTONIC at run_begin */
};

struct retl_state {
	retl_db *db;
	char *path;                     /* what messages name: the file, or
					 * the URL without its password */
	char *files;                    /* prefix of the store's local files
					 * (lock, cache image, spool): the
					 * file's path, or <local dir>/pgstate */
	int pg;                         /* the store is in PostgreSQL */
	char *schema;                   /* PostgreSQL: the store's schema */
	pid_t owner;                    /* PostgreSQL: the process that
					 * connected (a forked child must not
					 * close its parent's session) */
	retl_db_stmt *stmt[S_COUNT];    /* all NULL on an observer handle */
	struct held_lock *locks;
	size_t nlocks;
	struct run_clock *clocks;       /* runs begun by this handle */
	size_t nclocks;
	char *gen_sync;                 /* sync whose generation this
					 * transaction already changed */
	time_t ts_sec;                  /* second st->ts was formatted for */
	char ts[32];
	dev_t file_dev;                 /* the file opened, for */
	ino_t file_ino;                 /* retl_state_check_file */
	int file_known;                 /* 0: not checked (observer) */
	struct retl_state_mirror *mirror;       /* state_mirror.c */
};

/*
 * The exit code of a failure of the store: RETL_EXIT_STATE (6) when the
 * file or the disk failed (SQLite's CORRUPT, NOTADB, FULL, IOERR; errno
 * ENOSPC, EDQUOT, EIO, EFBIG), RETL_EXIT_USAGE (2) for the rest (locked,
 * read-only, refused by the marker, missing directory: what the operator
 * set up).  A data engineer's alert on 6 means "restore or free disk",
 * on 2 "fix the setup".
 */
int retl_state__code(enum retl_db_kind kind);
int retl_state__errno_code(int e);
/* "state store <path>: <the database's message>" (a damaged file says
 * what to do),
 * code retl_state__code; returns -1 */
int retl_state__db_err(retl_state *st, struct retl_err *err);
/* "state store <path>: <what> <file>: <strerror(errno)>", code
 * retl_state__errno_code */
int retl_state__sys_err(retl_state *st, struct retl_err *err,
			const char *what, const char *file);
int retl_state__prepare(retl_state *st, const char *sql, retl_db_stmt **s,
			struct retl_err *err);
int retl_state__done(retl_state *st, retl_db_stmt *s, struct retl_err *err);
const char *retl_state__now(retl_state *st);
int retl_state__exec(retl_state *st, const char *sql, struct retl_err *err);

/* a runs row as struct retl_run_rec: select RETL_STATE_RUN_COLS, then
 * retl_state__run_rec on each row (strings borrowed from the statement)
 * (state_report.c) */
#define RETL_STATE_RUN_COLS "SELECT id, sync, started_at, ended_at, status, " \
	"exit_code, seconds, read, added, changed, unchanged, retried, " \
	"removed, rejected, failed, api_calls, retries, http_429, message, " \
	"allow_removals FROM runs "
struct retl_run_rec;
void retl_state__run_rec(retl_db_stmt *s, struct retl_run_rec *r);

/* "<db>.<sync><suffix>" with the sync name escaped, malloc'd (state_lock.c) */
char *retl_state__sync_path(retl_state *st, const char *sync,
			    const char *suffix);
/* the sync's runs still "running" become "abandoned" (state_report.c);
 * only with the sync's lock held */
int retl_state__abandon_runs(retl_state *st, const char *sync, long last_pid,
			     struct retl_err *err);
/* closes every lock fd of the handle, at close (state_lock.c) */
void retl_state__drop_locks(retl_state *st);
/* at open (state_marker.c): before the file is created, refuses a
 * missing or empty store that the marker says was used; after migrating,
 * gives a new store its id and marker, refuses one that is not the
 * marker's, and notes the file for retl_state_check_file */
int retl_state__marker_check(retl_state *st, struct retl_err *err);
int retl_state__marker_bind(retl_state *st, struct retl_err *err);
/* a new cache generation for sync, once per transaction (state_cache.c) */
int retl_state__bump_gen(retl_state *st, const char *sync,
			 struct retl_err *err);

/* text bound without a copy: it must outlive the statement's next step */
static inline void retl_state__bind_text(retl_db_stmt *s, int i,
					 const char *v)
{
	if (v)
		retl_db_bind_textn(s, i, v, -1);
	else
		retl_db_bind_null(s, i);
}

/* hashes are uint64 stored as the int64 with the same bits */
static inline void retl_state__bind_u64(retl_db_stmt *s, int i, uint64_t v)
{
	retl_db_bind_int64(s, i, (int64_t)v);
}

static inline void retl_state__bind_h128(retl_db_stmt *s, int i, retl_h128 h)
{
	retl_state__bind_u64(s, i, h.lo);
	retl_state__bind_u64(s, i + 1, h.hi);
}

/* a payload hash of {0,0} ("none") is stored as NULL */
static inline void retl_state__bind_opt_h128(retl_db_stmt *s, int i,
					     retl_h128 h)
{
	if (retl_h128_zero(h)) {
		retl_db_bind_null(s, i);
		retl_db_bind_null(s, i + 1);
	} else {
		retl_state__bind_h128(s, i, h);
	}
}

static inline uint64_t retl_state__col_u64(retl_db_stmt *s, int i)
{
	return (uint64_t)retl_db_col_int64(s, i);
}

/* a row's key hash: columns lo and lo + 1, or, where a synced row stores
 * none (schema 6), XXH3-128 of the key in column key */
static inline retl_h128 retl_state__col_kh(retl_db_stmt *s, int key, int lo)
{
	if (retl_db_col_null(s, lo)) {
		const void *k = retl_db_col_text(s, key);
		return retl_hash128(k ? k : "", (size_t)retl_db_col_bytes(s, key));
	}
	return (retl_h128){ .lo = retl_state__col_u64(s, lo),
			    .hi = retl_state__col_u64(s, lo + 1) };
}

/* ---- state_pg.c: a store in PostgreSQL ---- */
/* 1 when path names a PostgreSQL store (postgresql:// or postgres://) */
int retl_state__is_pg(const char *path);
/* connects, creates or migrates the schema (migrations: the shared list,
 * from base_version on); st->path is the URL without its password */
int retl_state__pg_open(retl_state *st, const char *url, const char *local,
			int observer, const char *const *migrations,
			int nmigrations, struct retl_err *err);
int retl_state__pg_lock(retl_state *st, const char *sync,
			struct retl_err *err);
void retl_state__pg_unlock(retl_state *st, const char *sync);
int retl_state__pg_lock_held(retl_state *st, const char *sync);
int retl_state__pg_probe(retl_state *st, struct retl_err *err);
/* the schema version a new PostgreSQL store is created at */
#define RETL_STATE_PG_BASE 8

/* ---- state_mirror.c: the run's cache kept equal to the store ---- */
void retl_state__mirror_ack(retl_state *st, const char *sync,
			    const struct retl_state_rec *r);
void retl_state__mirror_src(retl_state *st, const char *sync,
			    const struct retl_state_rec *r);
/* any other write to key's row; key NULL: to rows it cannot follow */
void retl_state__mirror_key(retl_state *st, const char *sync, const char *key);
void retl_state__mirror_begin(retl_state *st);
void retl_state__mirror_end(retl_state *st, int committed);
/* writes the image from the mirror: 0, 1 (no usable mirror: the caller
 * reads SQLite) or -1 */
int retl_state__mirror_save(retl_state *st, const char *sync, const char *path,
			    uint64_t gen, struct retl_err *err);

/* ---- state_cache.c ---- */
/* the columns retl_state__entry_from_row reads, in its order */
#define RETL_STATE_ENTRY_COLS \
	"pay_lo, pay_hi, src, status, match_h, sent, kh_lo, kh_hi, key"
/* an entry's fields (not kh) from such a row; cached = 1, seen = 0 */
void retl_state__entry_from_row(retl_db_stmt *s, struct retl_cache_entry *e);
/* RETL_TEST_VERIFY_IMAGE: aborts unless c equals the sync's rows */
void retl_state__verify_image(retl_state *st, const char *sync, retl_cache *c);

#endif
