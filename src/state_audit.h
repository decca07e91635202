/*
 * state_audit.h - what the state store keeps for the sync logs written to
 * the warehouse (audit.h): which runs still wait to be written, and each
 * run's record and rows as the writer reads them.
 *
 * A run of a sync with "audit" is marked waiting (runs.audited = 0) when it
 * begins, so a run that is killed is still written later (as "abandoned",
 * once the next holder of the lock has recorded it so).  Its outcomes are
 * kept until it is written (state_report.c prunes the others).
 */
#ifndef RETL_STATE_AUDIT_H
#define RETL_STATE_AUDIT_H

#include <stdint.h>

#include "state.h"

/* the run's logs are to be written (committed at once) */
int retl_state_audit_want(retl_state *st, int64_t run_id, struct retl_err *err);
/* the sync has no "audit" any more: its runs stop waiting (and their
 * outcomes are pruned as usual again) */
int retl_state_audit_drop(retl_state *st, const char *sync,
			  struct retl_err *err);

/* the sync's runs that have ended (any status but running) and wait to
 * be written, oldest first: *ids malloc'd (the caller frees), *n of them */
int retl_state_audit_pending(retl_state *st, const char *sync, int64_t **ids,
			     size_t *n, struct retl_err *err);

/* the store's id (meta store_id), malloc'd; NULL when it has none */
char *retl_state_audit_store_id(retl_state *st);

/* one row of a run as the sync log holds it */
struct retl_audit_row {
	const char *key;         /* NULL: a row rejected without a key */
	const char *operation;   /* added changed retried removed rejected
				  * failed */
	const char *status;      /* synced rejected failed */
	const char *error;       /* NULL unless not synced */
};
typedef int (*retl_state_audit_row_fn)(void *ud, const struct retl_audit_row *r);

/*
 * Run run_id's record into *rec (its strings malloc'd: free them with
 * retl_state_audit_rec_free), 1 when there is no such run.
 */
int retl_state_audit_run(retl_state *st, int64_t run_id,
			 struct retl_run_rec *rec, struct retl_err *err);
void retl_state_audit_rec_free(struct retl_run_rec *rec);

/*
 * The run's rows, streamed: its outcomes (removed, orphans removed,
 * failed, rejected), then, with synced, the cache rows it synced and no
 * later run has changed since (a row keeps only its last run:
 * cache.last_run; finding them reads the sync's cache, so a caller that
 * knows the run synced none passes 0).  fn must not write to the store;
 * non-zero from it stops and is returned.
 */
int retl_state_audit_rows(retl_state *st, const char *sync, int64_t run_id,
			  int synced, retl_state_audit_row_fn fn, void *ud,
			  struct retl_err *err);

/* the run's logs are written */
int retl_state_audit_done(retl_state *st, int64_t run_id, struct retl_err *err);

#endif
