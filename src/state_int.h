/*
 * state_int.h - what state.c shares with state_report.c; nothing else
 * includes it.
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
	S_STAGE, S_STAGED, S_UNSTAGE_OK, S_UNSTAGE_FAIL, S_COUNT
};

struct held_lock;

struct run_clock {
	int64_t id;
	struct timespec start;  /* CLOCK_MONOTONIC at run_begin */
};

struct retl_state {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[S_COUNT];
	struct held_lock *locks;
	size_t nlocks;
	struct run_clock *clocks;       /* runs begun by this handle */
	size_t nclocks;
	char *gen_sync;                 /* sync whose generation this
					 * transaction already changed */
	time_t ts_sec;                  /* second st->ts was formatted for */
	char ts[32];
};

/* "state store <path>: <sqlite3_errmsg>", code 2; returns -1 */
int retl_state__db_err(retl_state *st, struct retl_err *err);
int retl_state__prepare(retl_state *st, const char *sql, sqlite3_stmt **s,
			struct retl_err *err);
int retl_state__done(retl_state *st, sqlite3_stmt *s, struct retl_err *err);
const char *retl_state__now(retl_state *st);
int retl_state__exec(retl_state *st, const char *sql, struct retl_err *err);

/* text bound without a copy: it must outlive the statement's next step */
static inline void retl_state__bind_text(sqlite3_stmt *s, int i,
					 const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

#endif
