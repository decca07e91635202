/*
 * audit.h - sync logs in the warehouse: a source's "audit" schema gets a
 * row per run (<schema>.runs) and a row per synced, removed, rejected or
 * failed row (<schema>.row_outcomes), for analysts to query.  README "Sync
 * logs in the warehouse" has the tables.
 *
 * Written after a run has ended and its record is final, on a connection
 * of its own (the run's read snapshot is long closed), for every run of
 * the sync that ended and was not written yet (state_audit.h): a run killed
 * earlier is written by the next one, as "abandoned".  Each run is written
 * in one warehouse transaction, its runs row with its rows, so a run whose
 * row is there is there whole: one written before its mark in the store
 * was lost (a kill between the two commits) is not written again, and no
 * run or row is ever there twice.  A failure
 * is a warning for the run, never a failed run; the run waits for the next.
 */
#ifndef RETL_AUDIT_H
#define RETL_AUDIT_H

#include "config.h"
#include "err.h"
#include "state.h"

/*
 * Writes sc's runs that wait (sc->src->audit set), then deletes what is
 * older than the retention.  Returns 0, or -1 with err (a warning for the
 * caller to show: nothing to undo, the runs still wait).
 */
int retl_audit_write(retl_state *st, const struct retl_sync_cfg *sc,
		     struct retl_err *err);

/*
 * `retl check`: the audit schema's tables exist or can be created, and
 * can be read and written (a probe row is inserted and rolled back).  -1 with err
 * (code 3) naming the schema and the missing grant.
 */
int retl_audit_check(const struct retl_source_cfg *src, struct retl_err *err);

#endif
