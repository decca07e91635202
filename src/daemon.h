/*
 * daemon.h - `retl daemon`: every sync with a `schedule` runs when due.
 *
 * The parent process only schedules: it never connects to PostgreSQL or a
 * destination.  Each run is a forked child that opens its own state store
 * handle and calls retl_sync_run(), so a crash or a leak ends with the run,
 * and no SQLite handle crosses a fork.  See daemon.c for the rules.
 */
#ifndef RETL_DAEMON_H
#define RETL_DAEMON_H

#include "config.h"
#include "err.h"

struct retl_daemon_opts {
	const char *config_dir;   /* reloaded from here on SIGHUP */
	int concurrency;          /* runs at once, >= 1 */
	const char *listen;       /* HOST:PORT for /metrics, NULL = none */
	int shutdown_timeout;     /* seconds runs get to stop on SIGTERM */
};

/*
 * Runs until SIGTERM or SIGINT, then stops gracefully and returns 0.
 * *cfg is the loaded config; on SIGHUP the daemon loads a new one, frees
 * the old and stores the new one in *cfg (the caller frees the last).
 * < 0 when it cannot start (err says why).
 */
int retl_daemon_run(const struct retl_daemon_opts *o,
		    struct retl_config **cfg, struct retl_err *err);

/*
 * The next run of a sync as the daemon would schedule it, given its
 * last run's start (< 0: never ran) and the time now (UTC seconds): now
 * when the sync never ran or a due time passed since its last start
 * (missed while no daemon ran), else the next due time.  -1 when the
 * sync has no schedule.  For `retl status` too.
 */
double retl_daemon_next_run(const struct retl_sync_cfg *sc, double last_start,
			    double now);

/* "2026-11-25T01:02:03.456Z" -> UTC seconds, < 0 when unparsable */
double retl_daemon_parse_ts(const char *iso);

#endif
