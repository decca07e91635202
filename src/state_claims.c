/*
 * state_claims.c - claims: each due run of a sync is taken by exactly one
 * of the `retl daemon` workers sharing the store.  See state.h.
 *
 * Table claims (migration 9): per sync, the next due time (UTC ms), the
 * schedule and worker ("host:pid:random") that stored it, and when.  A
 * worker whose own timer says a sync is due stores the next due time with
 * one statement that succeeds only while the stored one has passed; two
 * workers racing for one due time serialise on the row, and the second
 * finds the time already moved on.  Nothing is held between claims: a
 * worker that dies leaves only a due time in the future, which the first
 * live worker whose timer reaches it claims.  The run lock (state_lock.c)
 * still keeps two runs of a sync apart whatever the claims say.
 *
 * Plain SQL that PostgreSQL runs as is (ON CONFLICT ... DO UPDATE ...
 * WHERE: SQLite 3.24+, PostgreSQL 9.5+); times are the workers' clocks,
 * which must agree (NTP) across machines.
 */
#include "state.h"
#include "state_int.h"

#include <string.h>

/* the row counts as changed when inserted, or updated because the stored
 * due time has passed: that is the claim */
#define CLAIM_SQL \
	"INSERT INTO claims(sync, next_due, schedule, owner, claimed_at) " \
	"VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(sync) DO UPDATE SET " \
	"next_due = excluded.next_due, schedule = excluded.schedule, " \
	"owner = excluded.owner, claimed_at = excluded.claimed_at " \
	"WHERE claims.next_due <= ?6"

/* 1 and *due, 0 when the sync has no claim row, -1 on error; *same: the
 * stored schedule is `schedule` */
static int stored_due(retl_state *st, const char *sync, const char *schedule,
		      int64_t *due, int *same, struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	if (retl_state__prepare(st, "SELECT next_due, schedule FROM claims "
				"WHERE sync = ?1", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	rc = retl_db_step(s);
	if (rc == RETL_DB_ROW) {
		const char *sched = retl_db_col_text(s, 1);

		*due = retl_db_col_int64(s, 0);
		*same = sched && schedule && !strcmp(sched, schedule);
		rc = 1;
	} else if (rc == RETL_DB_DONE) {
		rc = 0;
	} else {
		rc = retl_state__db_err(st, err);
	}
	retl_db_finalize(s);
	return rc;
}

int retl_state_claim(retl_state *st, const char *sync, const char *schedule,
		     const char *owner, int64_t now, int64_t next,
		     int64_t *stored, struct retl_err *err)
{
	retl_db_stmt *s;
	int same, rc;

	if (retl_state__prepare(st, CLAIM_SQL, &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	retl_db_bind_int64(s, 2, next);
	retl_state__bind_text(s, 3, schedule);
	retl_state__bind_text(s, 4, owner);
	retl_state__bind_text(s, 5, retl_state__now(st));
	retl_db_bind_int64(s, 6, now);
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	if (rc < 0)
		return -1;
	if (retl_db_changes(st->db) > 0)
		return 1;
	/* lost: someone stored a due time still ahead of now */
	rc = stored_due(st, sync, schedule, stored, &same, err);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return retl_err_set(err, RETL_EXIT_USAGE, "state store %s: the "
				    "claim of sync %s vanished", st->path, sync);
	return 0;
}

int retl_state_claim_plan(retl_state *st, const char *sync,
			  const char *schedule, int64_t mine, int64_t *due,
			  struct retl_err *err)
{
	retl_db_stmt *s;
	int same = 0, rc;

	rc = stored_due(st, sync, schedule, due, &same, err);
	if (rc <= 0)
		return rc;
	if (same)
		return 1;
	/* another schedule's time, if later than this one's: a worker with
	 * the old schedule must not hold a shortened one back */
	if (retl_state__prepare(st, "UPDATE claims SET next_due = ?2, "
				"schedule = ?3 WHERE sync = ?1 AND "
				"next_due > ?2 AND schedule <> ?3", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	retl_db_bind_int64(s, 2, mine);
	retl_state__bind_text(s, 3, schedule);
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	return rc < 0 ? -1 : 0;
}
