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
 * the file watched during a run).
 */
#ifndef RETL_STATE_INT_H
#define RETL_STATE_INT_H

#include <sqlite3.h>
#include <sys/types.h>
#include <time.h>

#include "state.h"

/* the statements prepared once at open */
enum {
	S_ACK, S_FAIL, S_SET_SRC, S_PENDING, S_FORGET, S_OUTCOME, S_DEST_ID,
	S_BEGIN, S_COMMIT, S_ROLLBACK, S_GEN_GET, S_GEN_SET,
	S_STAGE, S_STAGED, S_UNSTAGE_OK, S_UNSTAGE_FAIL, S_ORPHAN_BOUND, S_ORPHAN_SENT, S_SENT,
	S_ORPHAN_DONE, S_ORPHAN_FAIL, S_ACK_NEW, S_COUNT
};

struct held_lock;

struct run_clock {
	int64_t id;
	struct timespec start;  /* CLOCK_MONOTONIC at run_begin */
};

struct retl_state {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[S_COUNT];    /* all NULL on an observer handle */
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
int retl_state__code(int sqlite_rc);
int retl_state__errno_code(int e);
/* "state store <path>: <sqlite3_errmsg>" (a damaged file says what to do),
 * code retl_state__code; returns -1 */
int retl_state__db_err(retl_state *st, struct retl_err *err);
/* "state store <path>: <what> <file>: <strerror(errno)>", code
 * retl_state__errno_code */
int retl_state__sys_err(retl_state *st, struct retl_err *err,
			const char *what, const char *file);
int retl_state__prepare(retl_state *st, const char *sql, sqlite3_stmt **s,
			struct retl_err *err);
int retl_state__done(retl_state *st, sqlite3_stmt *s, struct retl_err *err);
const char *retl_state__now(retl_state *st);
int retl_state__exec(retl_state *st, const char *sql, struct retl_err *err);

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
static inline void retl_state__bind_text(sqlite3_stmt *s, int i,
					 const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* hashes are uint64 stored as the int64 with the same bits */
static inline void retl_state__bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
	sqlite3_bind_int64(s, i, (sqlite3_int64)v);
}

static inline void retl_state__bind_h128(sqlite3_stmt *s, int i, retl_h128 h)
{
	retl_state__bind_u64(s, i, h.lo);
	retl_state__bind_u64(s, i + 1, h.hi);
}

/* a payload hash of {0,0} ("none") is stored as NULL */
static inline void retl_state__bind_opt_h128(sqlite3_stmt *s, int i,
					     retl_h128 h)
{
	if (retl_h128_zero(h)) {
		sqlite3_bind_null(s, i);
		sqlite3_bind_null(s, i + 1);
	} else {
		retl_state__bind_h128(s, i, h);
	}
}

static inline uint64_t retl_state__col_u64(sqlite3_stmt *s, int i)
{
	return (uint64_t)sqlite3_column_int64(s, i);
}

/* a row's key hash: columns lo and lo + 1, or, where a synced row stores
 * none (schema 6), XXH3-128 of the key in column key */
static inline retl_h128 retl_state__col_kh(sqlite3_stmt *s, int key, int lo)
{
	if (sqlite3_column_type(s, lo) == SQLITE_NULL) {
		const void *k = sqlite3_column_blob(s, key);
		return retl_hash128(k ? k : "", (size_t)sqlite3_column_bytes(s, key));
	}
	return (retl_h128){ .lo = retl_state__col_u64(s, lo),
			    .hi = retl_state__col_u64(s, lo + 1) };
}

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
void retl_state__entry_from_row(sqlite3_stmt *s, struct retl_cache_entry *e);
/* RETL_TEST_VERIFY_IMAGE: aborts unless c equals the sync's rows */
void retl_state__verify_image(retl_state *st, const char *sync, retl_cache *c);

#endif
