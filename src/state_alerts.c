/*
 * state_alerts.c - the alerts table, see state_alerts.h.
 *
 * Written outside the run's transactions (after the run ended, its lock
 * released): each write is its own statement, committed at once, so a
 * delivery recorded is never undone by a later failure.
 */
#include "state_alerts.h"
#include "state_int.h"

int retl_state_alerts(retl_state *st, const char *sync, retl_state_alert_fn fn,
		      void *ud, struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	if (retl_state__prepare(st, "SELECT cond, channel, active, run_id, "
				"event FROM alerts WHERE sync = ?1 ORDER BY "
				"cond, channel", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	while ((rc = retl_db_step(s)) == RETL_DB_ROW) {
		struct retl_alert_rec r = {
			.cond = retl_db_col_text(s, 0),
			.channel = retl_db_col_text(s, 1),
			.active = retl_db_col_int(s, 2),
			.run_id = retl_db_col_int64(s, 3),
			.event = retl_db_col_text(s, 4),
		};
		if ((rc = fn(ud, &r)) != 0) {
			retl_db_finalize(s);
			return rc;
		}
	}
	if (rc != RETL_DB_DONE)
		retl_state__db_err(st, err);
	retl_db_finalize(s);
	return rc == RETL_DB_DONE ? 0 : -1;
}

int retl_state_alert_set(retl_state *st, const char *sync,
			 const struct retl_alert_rec *r, struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	if (retl_state__prepare(st, "INSERT INTO alerts(sync, cond, channel, "
				"active, run_id, event, updated_at) VALUES(?1, "
				"?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(sync, cond, "
				"channel) DO UPDATE SET active = excluded.active, "
				"run_id = excluded.run_id, event = excluded.event, "
				"updated_at = excluded.updated_at", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, r->cond);
	retl_state__bind_text(s, 3, r->channel);
	retl_db_bind_int(s, 4, r->active);
	retl_db_bind_int64(s, 5, r->run_id);
	retl_state__bind_text(s, 6, r->event);
	retl_state__bind_text(s, 7, retl_state__now(st));
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	return rc;
}
