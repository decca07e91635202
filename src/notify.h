/*
 * notify.h - alerts: retl.json's "notify" section tells people when a sync
 * needs them, through a generic webhook (a JSON POST) or a Slack
 * incoming webhook ({"text": ...}).
 *
 * Conditions, per sync (README "Alerts"):
 *   run_failed    the latest run failed (the run itself, not some rows)
 *   safety_stop   the latest run was refused by its `safety` limit
 *   rows_failing  rows have failed in more than rows_failing_runs runs
 * Each alerts once when it starts, and once more ("recovered") when a later
 * run clears it; never again in between, across processes and restarts:
 * the conditions and what each channel was told live in the state store
 * (state_alerts.h).  Alerts are sent after a run ends by the process that
 * ran it (`retl run`, `retl apply`, a daemon's run).  A delivery that fails
 * is logged and tried again after the sync's next run; it never changes the
 * run's exit code.
 *
 * Secrets: a channel's url (and headers) must come from the environment or
 * a file ("${NAME}", "@file:PATH"): an incoming-webhook URL is itself the
 * credential.  They are resolved only when an alert is sent (so verbs that
 * send nothing need none of them), registered with redact.h, and a channel
 * is named in log lines by its name, never its URL.
 */
#ifndef RETL_NOTIFY_H
#define RETL_NOTIFY_H

#include <jansson.h>

#include "config.h"
#include "err.h"
#include "state.h"

enum retl_alert_cond {
	RETL_ALERT_RUN_FAILED,
	RETL_ALERT_SAFETY_STOP,
	RETL_ALERT_ROWS_FAILING,
	RETL_ALERT_NCOND
};

/* "run_failed", "safety_stop", "rows_failing" */
const char *retl_alert_cond_name(enum retl_alert_cond c);

struct retl_notify_channel {
	char *name;
	int slack;                /* Slack's body, else the generic one */
	char *url_ref;            /* as written: "${SLACK_WEBHOOK_URL}" */
	json_t *headers_ref;      /* {name: value} as written, or NULL */
	unsigned on;              /* 1u << cond for each condition sent */
	int recovery;             /* send "recovered" alerts (default 1) */
	long timeout_ms;          /* a delivery's whole time (default 10 s) */
	/* resolved by retl_notify_resolve */
	char *url;
	char **headers;           /* "Name: value" lines, NULL-ended */
	char *error;              /* why it could not be resolved, or NULL */
};

struct retl_notify_cfg {
	char *dir;                /* the project, for "@file:" paths */
	long rows_failing_runs;   /* N: rows failing in more than N runs */
	struct retl_notify_channel *ch;
	size_t nch;
	int resolved;
};

/* the default of rows_failing_runs */
#define RETL_NOTIFY_FAILING_RUNS 3

/*
 * Resolves the channels' secrets once (later calls do nothing).  A channel
 * whose secret is missing, or whose URL breaks the URL policy (url.h),
 * keeps its error in ch->error and is skipped by deliveries (logged).
 */
void retl_notify_resolve(struct retl_notify_cfg *n);
void retl_notify_cfg_free(struct retl_notify_cfg *n);

/*
 * After a run of sc ended (or failed to start): reads the sync's latest
 * finished run from st, updates its conditions, and delivers what changed
 * to each channel (and what earlier deliveries left undelivered).  Never
 * fails the caller: problems are logged.  Does nothing without a notify
 * section.
 */
void retl_notify_after_run(struct retl_config *cfg,
			   const struct retl_sync_cfg *sc, retl_state *st);

/* ---- the parts, for unit tests ---- */

/* how a run ended, as far as alerts care */
enum retl_run_class {
	RETL_CLASS_NOTHING,         /* interrupted, abandoned, still running:
				   * says nothing about any condition */
	RETL_CLASS_COMPLETED,       /* went through (ok, rows rejected or
				   * failed): clears run_failed, safety_stop */
	RETL_CLASS_FAILED,          /* the run itself failed */
	RETL_CLASS_SAFETY,          /* refused by a safety limit */
};
enum retl_run_class retl_notify_classify(const char *status, int exit_code);

struct retl_run_rec;
/*
 * The alert (the generic webhook's JSON body, with "text") for cond of
 * sync becoming active (or recovered) at run r; failing: rows failing in
 * more than n runs.  Caller frees.
 */
char *retl_notify_event(const char *sync, enum retl_alert_cond cond,
			int active, const struct retl_run_rec *r,
			long failing, long n);
/* Slack's incoming-webhook body for an event: {"text": ...} with &, <, >
 * escaped as Slack asks.  Caller frees. */
char *retl_notify_slack_body(const char *event);

#endif
