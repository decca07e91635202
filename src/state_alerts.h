/*
 * state_alerts.h - the alert conditions of each sync, kept in the state
 * store (table alerts) so that a daemon restart, or a `retl run` between
 * two daemon runs, never repeats an alert (notify.c decides what they
 * mean).  Part of the state module; a header of its own so the alerts stay
 * apart from the cache and run records of state.h.
 *
 * A row (sync, cond, channel):
 *   channel ""    the condition as the latest run that said anything about
 *                 it left it: active, the run that changed it, and the
 *                 alert that change calls for (JSON text, the generic
 *                 webhook body) until a later change replaces it;
 *   channel NAME  what was last delivered to that channel (active: the
 *                 firing alert, 0: the recovery or nothing).  A missing row
 *                 reads as not active.
 */
#ifndef RETL_STATE_ALERTS_H
#define RETL_STATE_ALERTS_H

#include <stdint.h>

#include "err.h"
#include "state.h"

struct retl_alert_rec {
	const char *cond;
	const char *channel;      /* "" for the condition itself */
	int active;
	int64_t run_id;
	const char *event;        /* channel "": the alert; else NULL */
};

/* every row of a sync, valid during the call */
typedef int (*retl_state_alert_fn)(void *ud, const struct retl_alert_rec *r);
int retl_state_alerts(retl_state *st, const char *sync, retl_state_alert_fn fn,
		      void *ud, struct retl_err *err);
/* writes (or replaces) one row, committed at once */
int retl_state_alert_set(retl_state *st, const char *sync,
			 const struct retl_alert_rec *r, struct retl_err *err);

#endif
