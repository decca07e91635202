/*
 * cmd_report.c - the verbs that read the state store: status, history,
 * failures; and reset, which clears a sync's cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cli.h"
#include "daemon.h"
#include "redact.h"
#include "sync.h"

/* prints s redacted (API reasons may echo anything) */
static void put_redacted(const char *prefix, const char *s)
{
	retl_buf m = RETL_BUF_INIT;
	retl_redact_into(&m, s ? s : "", s ? strlen(s) : 0);
	printf("%s%s\n", prefix, retl_buf_cstr(&m));
	retl_buf_free(&m);
}

/*
 * A run's message is shown under it when it says why the run did not go
 * through (exit >= 2) or what became of it (abandoned: that the end time is
 * when that was noticed).  Exit code and seconds are "-" when the run has
 * none (running, abandoned).
 */
static int show_message(const struct retl_run_rec *r)
{
	return r->message && (r->exit_code > 1 ||
			      !strcmp(r->status, RETL_RUN_ABANDONED));
}

static const char *ended_text(const struct retl_run_rec *r)
{
	if (r->ended)
		return r->ended;
	return strcmp(r->status, RETL_RUN_RUNNING) ? "(unrecorded)" : "(running)";
}

static void seconds_text(const struct retl_run_rec *r, char *buf, size_t n)
{
	if (r->exit_code < 0)
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.2f", r->seconds);
}

struct status_ctx {
	struct retl_run_rec *last; /* per sync, copied */
	struct retl_config *cfg;
};

static int on_status(void *ud, const struct retl_run_rec *r)
{
	struct status_ctx *s = ud;
	for (size_t i = 0; i < s->cfg->nsyncs; i++) {
		if (strcmp(s->cfg->syncs[i].name, r->sync))
			continue;
		struct retl_run_rec *d = &s->last[i];
		*d = *r;
		d->sync = s->cfg->syncs[i].name;
		d->started = retl_strdup(r->started ? r->started : "");
		d->ended = r->ended ? retl_strdup(r->ended) : NULL;
		d->status = retl_strdup(r->status ? r->status : "");
		d->message = r->message ? retl_strdup(r->message) : NULL;
	}
	return 0;
}

/* rows failing in sync: the figure /metrics shows (retl_rows_failing),
 * which counts what `retl failures` lists */
static long failing(const struct retl_state_stats *stats, const char *sync)
{
	for (size_t i = 0; i < stats->n; i++)
		if (!strcmp(stats->s[i].sync, sync))
			return stats->s[i].failing;
	return 0;
}

/*
 * When `retl daemon` runs the sync next, by the daemon's own rule
 * (daemon.h): "due now" when it never ran or a due time passed since its
 * last start (a daemon starting now would run it at once), "-" without a
 * schedule.  UTC, to the minute the schedule names.
 */
static void next_run(const struct retl_sync_cfg *sc, const char *last_started,
		     char *buf, size_t n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	double last = last_started ? retl_daemon_parse_ts(last_started) : -1;
	double next = retl_daemon_next_run(sc, last, now);
	if (next < 0) {
		snprintf(buf, n, "-");
		return;
	}
	if (next <= now) {
		snprintf(buf, n, "due now");
		return;
	}
	time_t t = (time_t)next;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cmd_status(struct retl_cli *cli, int argc, char **argv)
{
	if (argc && argv[0][0] == '-')
		return retl_cli_usage_error("status", "unknown option \"%s\"", argv[0]);
	if (argc)
		return retl_cli_usage_error("status", "status takes no arguments");
	int rc = retl_cli_open(cli, 1);
	if (rc)
		return rc;
	struct retl_err err;
	retl_err_clear(&err);
	struct status_ctx s = { retl_calloc(cli->cfg->nsyncs + 1, sizeof(*s.last)), cli->cfg };
	struct retl_state_stats stats;
	if (retl_state_runs(cli->st, NULL, 0, on_status, &s, &err) < 0 ||
	    retl_state_stats_read(cli->st, &stats, &err) < 0) {
		free(s.last);
		return retl_cli_fail(&err);
	}
	printf("%-24s %-13s %-24s %8s %8s %8s %8s %8s  %-20s  %s\n", "SYNC",
	       "LAST RUN", "ENDED", "READ", "SENT", "REMOVED", "FAILING",
	       "SECONDS", "NEXT RUN", "MODE");
	for (size_t i = 0; i < cli->cfg->nsyncs; i++) {
		struct retl_sync_cfg *sc = &cli->cfg->syncs[i];
		struct retl_run_rec *r = &s.last[i];
		long nfailing = failing(&stats, sc->name);
		char mode[96];
		snprintf(mode, sizeof(mode), "%s -> %s (%s)", sc->source,
			 sc->destination, retl_mode_name(sc->mode));
		char next[32];
		next_run(sc, r->status ? r->started : NULL, next, sizeof(next));
		if (!r->status) {
			printf("%-24s %-13s %-24s %8s %8s %8s %8ld %8s  %-20s  %s\n",
			       sc->name, "never", "-", "-", "-", "-", nfailing, "-",
			       next, mode);
			continue;
		}
		char secs[32];
		seconds_text(r, secs, sizeof(secs));
		printf("%-24s %-13s %-24s %8ld %8ld %8ld %8ld %8s  %-20s  %s\n",
		       sc->name, r->status, ended_text(r),
		       r->c.read, r->c.added + r->c.changed + r->c.retried,
		       r->c.removed, nfailing, secs, next, mode);
		if (show_message(r))
			put_redacted("    ", r->message);
		free((char *)r->started);
		free((char *)r->ended);
		free((char *)r->status);
		free((char *)r->message);
	}
	/* a sync whose file does not load is listed, not hidden: the
	 * operator sees it is not running and why */
	for (size_t i = 0; i < cli->cfg->ninvalid; i++) {
		const struct retl_sync_invalid *v = &cli->cfg->invalid[i];
		printf("%-24s %-13s %-24s %8s %8s %8s %8ld %8s  %-20s  %s\n",
		       v->name, "invalid", "-", "-", "-", "-",
		       failing(&stats, v->name), "-", "-", "skipped: fix its file");
		put_redacted("    ", v->msg);
	}
	free(s.last);
	retl_state_stats_free(&stats);
	return 0;
}

static int on_history(void *ud, const struct retl_run_rec *r)
{
	const struct retl_run_counts *c = &r->c;
	char code[16], secs[32];
	if (r->exit_code < 0)
		snprintf(code, sizeof(code), "-");
	else
		snprintf(code, sizeof(code), "%d", r->exit_code);
	seconds_text(r, secs, sizeof(secs));
	printf("%-6lld %-24s %-13s %4s %8s %8ld %6ld %7ld %7ld %7ld %9ld %8ld %6ld %6ld\n",
	       (long long)r->id, r->started, r->status, code, secs,
	       c->read, c->added, c->changed, c->retried, c->removed,
	       c->unchanged, c->rejected, c->failed, c->api_calls);
	/* a one-off permission is part of what happened to the run */
	if (r->allow_removals >= 0)
		printf("       run with --allow-removals %ld (removed %ld)\n",
		       r->allow_removals, c->removed);
	if (show_message(r))
		put_redacted("       ", r->message);
	return 0;
}

/* the most runs --limit shows */
#define HISTORY_MAX 1000000L

int cmd_history(struct retl_cli *cli, int argc, char **argv)
{
	long limit = 20;
	const char *name = NULL, *v;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--limit")) {
			if (!(v = retl_cli_value("history", argc, argv, &i)) ||
			    retl_cli_number("history", "--limit", "a number of runs",
					    v, 1, HISTORY_MAX, &limit) < 0)
				return RETL_EXIT_USAGE;
		} else if (argv[i][0] == '-') {
			return retl_cli_usage_error("history", "unknown option \"%s\"",
						    argv[i]);
		} else if (name) {
			return retl_cli_usage_error("history", "history takes one sync");
		} else {
			name = argv[i];
		}
	}
	if (!name)
		return retl_cli_usage_error("history", "history needs a sync");
	int rc = retl_cli_state_sync(cli, name);
	if (rc)
		return rc;
	struct retl_err err;
	retl_err_clear(&err);
	printf("%-6s %-24s %-13s %4s %8s %8s %6s %7s %7s %7s %9s %8s %6s %6s\n", "RUN",
	       "STARTED", "STATUS", "EXIT", "SECONDS", "READ", "ADDED", "CHANGED",
	       "RETRIED", "REMOVED", "UNCHANGED", "REJECTED", "FAILED", "CALLS");
	if (retl_state_runs(cli->st, name, (int)limit, on_history, NULL, &err) < 0)
		return retl_cli_fail(&err);
	return 0;
}

/* the one SYNC argument of failures and reset, or a usage error (2) */
static int one_sync_arg(const char *verb, int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (argv[i][0] == '-')
			return retl_cli_usage_error(verb, "unknown option \"%s\"",
						    argv[i]);
	if (argc != 1)
		return retl_cli_usage_error(verb, "%s takes one sync", verb);
	return 0;
}

static int on_failure(void *ud, const struct retl_failure_rec *r)
{
	long *n = ud;
	(*n)++;
	retl_buf line = RETL_BUF_INIT;
	retl_buf_addf(&line, "%-9s key %s  (attempts %d, since %s)\n    ",
		      r->outcome, r->key ? r->key : "(none)", r->attempts,
		      r->since ? r->since : "-");
	retl_buf_adds(&line, r->reason ? r->reason : "");
	put_redacted("", line.ptr);
	retl_buf_free(&line);
	return 0;
}

int cmd_failures(struct retl_cli *cli, int argc, char **argv)
{
	int rc = one_sync_arg("failures", argc, argv);
	if (rc || (rc = retl_cli_state_sync(cli, argv[0])))
		return rc;
	struct retl_err err;
	retl_err_clear(&err);
	long n = 0;
	if (retl_state_failures(cli->st, argv[0], on_failure, &n, &err) < 0)
		return retl_cli_fail(&err);
	printf("%ld row%s failing in %s\n", n, n == 1 ? "" : "s", argv[0]);
	return 0;
}

/* one sync's cache, under its lock (never under a running sync) */
static int reset_one(struct retl_cli *cli, const char *name, struct retl_err *err)
{
	if (retl_state_lock(cli->st, name, err) < 0)
		return -1;
	/* "diff": "warehouse": the table first, or the next run would still
	 * take every row for unchanged and send nothing */
	struct retl_sync_cfg *sc = retl_config_sync(cli->cfg, name);
	int rc = 0;
	if (sc && sc->diff_warehouse &&
	    (retl_config_resolve(cli->cfg, sc, err) < 0 ||
	     retl_whdiff_reset(sc, err) < 0))
		rc = -1;
	if (rc == 0)
		rc = retl_state_reset(cli->st, name, err);
	retl_state_unlock(cli->st, name);
	return rc;
}

/*
 * `retl reset --all`: starting over on purpose.  It is also the way out
 * when the state store is refused as missing, empty or another project's
 * (state_marker.c): the marker goes, the store is made anew (or the one
 * there adopted), and every sync's cache is forgotten.
 */
static int reset_all(struct retl_cli *cli)
{
	int rc = retl_cli_open(cli, 0);
	if (rc)
		return rc;
	struct retl_err err;
	retl_err_clear(&err);
	if (retl_state_start_over(cli->cfg->state_path, &err) < 0 ||
	    retl_state_open_at(&cli->st, cli->cfg->state_path, cli->cfg->state_local, &err) < 0)
		return retl_cli_fail(&err);
	for (size_t i = 0; i < cli->cfg->nsyncs; i++)
		if (reset_one(cli, cli->cfg->syncs[i].name, &err) < 0)
			return retl_cli_fail(&err);
	/* every sync's: one whose file is invalid today runs again later */
	for (size_t i = 0; i < cli->cfg->ninvalid; i++)
		if (reset_one(cli, cli->cfg->invalid[i].name, &err) < 0)
			return retl_cli_fail(&err);
	printf("reset --all: state store %s started over, the cache of every "
	       "sync cleared (%zu); the next runs send every row\n",
	       retl_state_name(cli->st), cli->cfg->nsyncs + cli->cfg->ninvalid);
	return 0;
}

int cmd_reset(struct retl_cli *cli, int argc, char **argv)
{
	if (argc == 1 && !strcmp(argv[0], "--all"))
		return reset_all(cli);
	int rc = one_sync_arg("reset", argc, argv);
	if (rc || (rc = retl_cli_state_sync(cli, argv[0])))
		return rc;
	struct retl_err err;
	retl_err_clear(&err);
	if (reset_one(cli, argv[0], &err) < 0)
		return retl_cli_fail(&err);
	printf("reset %s: cache cleared; the next run sends every row\n", argv[0]);
	return 0;
}
