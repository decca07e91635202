/*
 * sync.h - one run of one sync: source -> mapping -> diff -> destination
 * -> state, and `retl check` for a sync.
 */
#ifndef RETL_SYNC_H
#define RETL_SYNC_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "err.h"
#include "state.h"

struct retl_sync_opts {
	int full_resync;          /* every row counts as changed */
	long limit;               /* at most this many operations; < 0 = all */
	int plan;                 /* diff only: send nothing, change no state */
	FILE *plan_out;           /* plan: the plan file (spool.h), or NULL */
	/* apply: send the operations of a plan file instead of reading the
	 * model; refused unless the sync's state generation is still
	 * apply_state (the file was checked by retl_spool_verify) */
	FILE *apply_f;
	const char *apply_path;
	uint64_t apply_state;
	/* `retl run SYNC --allow-removals N` (0: not given): a run that
	 * would remove R rows, over a safety limit, removes them when
	 * R <= N.  One run's permission: the daemon never sets it */
	long allow_removals;
};

#define RETL_SAMPLES 3

struct retl_sync_summary {
	struct retl_run_counts c;
	long deferred;            /* left for the next run by --limit */
	long handed_over;         /* rows the destination took to report
				   * later (RETL_RES_DEFER) */
	long reported;            /* deferred rows reported (this run's or an
				   * earlier run's) */
	long waiting;             /* rows still without an outcome at the end
				   * (staged: sent again next run) */
	long would_remove;        /* rows that left the model */
	long unanswered;          /* rows whose request got no answer at all
				   * (transport failures): exit 4 */
	char unanswered_why[256]; /* the first one's reason */
	long mapped;              /* rows mapped this run; the others read
				   * were skipped by their source line's hash
				   * (unchanged) or refused by their key */
	long requests;            /* plan: API requests the run would spend */
	long jobs;                /* plan: bulk jobs among them */
	double seconds;
	int exit_code;
	const char *status;       /* RETL_RUN_* as recorded (a plan's: what a
				   * run would record), static */
	int recorded;             /* the run has its row in the state store
				   * (not when it could not take the lock) */
	int safety_stop;          /* refused by a safety limit (exit 5) */
	char allowed[256];        /* the safety limit --allow-removals let
				   * through, or "" */
	char message[RETL_ERR_MSG_MAX]; /* why the run stopped, when it did */
	char audit_warning[RETL_ERR_MSG_MAX]; /* the sync logs could not be
				   * written to the warehouse (audit.h): the
				   * run is not failed, the next one writes
				   * them; "" when written or not asked for */
	char *samples[RETL_SAMPLES]; /* plan: a few payloads (owned) */
	size_t nsamples;
};

/*
 * Runs (or plans) one sync.  Returns 0 when the run completed (rows may
 * have failed: see sum->exit_code), < 0 when it stopped (err says why,
 * err->code is the exit code).
 */
int retl_sync_run(struct retl_config *cfg, struct retl_sync_cfg *sc,
		  retl_state *st, const struct retl_sync_opts *o,
		  struct retl_sync_summary *sum, struct retl_err *err);
void retl_sync_summary_free(struct retl_sync_summary *sum);

/*
 * Asks every run in this process to stop soon: no more rows are read, the
 * batches in flight finish and are committed, and the run ends with status
 * "interrupted" (what was not sent is sent next run).  Async-signal-safe,
 * for SIGTERM/SIGINT handlers.
 */
void retl_sync_request_stop(void);
int retl_sync_stop_requested(void);
void retl_sync_clear_stop(void);

/* validates a sync against its source (LIMIT 0) and destination */
int retl_sync_check(struct retl_config *cfg, struct retl_sync_cfg *sc,
		    struct retl_err *err);

/* "diff": "warehouse" (sync_whdiff.c), the sync's secrets resolved:
 * check says which grants the role lacks to keep the sync's table; reset
 * empties that table (retl reset), 0 when there is none */
int retl_whdiff_check(struct retl_sync_cfg *sc, struct retl_err *err);
int retl_whdiff_reset(struct retl_sync_cfg *sc, struct retl_err *err);

#endif
