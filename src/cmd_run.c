/*
 * cmd_run.c - the verbs that read the model: check, plan, run.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "log.h"
#include "notify.h"
#include "private_file.h"
#include "redact.h"
#include "spool.h"
#include "sync.h"

static int worse(int a, int b)
{
	return b > a ? b : a;
}

/* a plan's first line: what a run would do */
static const char *plan_how(const struct retl_sync_summary *s)
{
	switch (s->exit_code) {
	case 0: return "planned";
	case 1: return "planned, some rows rejected";
	case 5: return "refused by a safety limit";
	default: return "stopped";
	}
}

/* a run's first line starts with its status as recorded (state.h
 * RETL_RUN_*), except "ok", which "all rows synced" says */
static void run_how(const struct retl_sync_summary *s, int stopped,
		    char *buf, size_t n)
{
	const struct retl_run_counts *c = &s->c;
	if (!strcmp(s->status, RETL_RUN_OK))
		snprintf(buf, n, "all rows synced");
	else if (!strcmp(s->status, RETL_RUN_REJECTED))
		snprintf(buf, n, "%s, completed with %ld row%s not synced", s->status,
			 c->rejected + c->failed + s->waiting,
			 c->rejected + c->failed + s->waiting == 1 ? "" : "s");
	else if (!strcmp(s->status, RETL_RUN_INTERRUPTED))
		snprintf(buf, n, "%s, stopped on request: rows not sent go with the next run",
			 s->status);
	else if (s->safety_stop)
		snprintf(buf, n, "%s, refused by a safety limit", s->status);
	else if (!stopped && s->exit_code == RETL_EXIT_DEST)
		snprintf(buf, n, "%s, the destination did not answer for some rows",
			 s->status);
	else
		snprintf(buf, n, "%s, stopped", s->status);
}

static void print_summary(const char *verb, const struct retl_sync_cfg *sc,
			  const struct retl_sync_summary *s, int plan, int stopped)
{
	const struct retl_run_counts *c = &s->c;
	double rate = s->seconds > 0 ? c->read / s->seconds : 0;
	char how[128];
	if (plan)
		snprintf(how, sizeof(how), "%s", plan_how(s));
	else
		run_how(s, stopped, how, sizeof(how));
	printf("%s %s: %s (exit %d)\n", verb, sc->name, how, s->exit_code);
	if (s->allowed[0])
		printf("  %s\n", s->allowed);
	if (s->message[0]) {
		retl_buf m = RETL_BUF_INIT;
		retl_redact_into(&m, s->message, strlen(s->message));
		printf("  %s\n", m.ptr);
		retl_buf_free(&m);
	}
	if (s->audit_warning[0])
		printf("  warning: %s\n", s->audit_warning);
	printf("  %-10s %10ld   %.0f rows/s over %.2f s\n", "read", c->read, rate, s->seconds);
	printf("  %-10s %10ld\n", plan ? "add" : "added", c->added);
	printf("  %-10s %10ld\n", plan ? "change" : "changed", c->changed);
	printf("  %-10s %10ld\n", plan ? "retry" : "retried", c->retried);
	printf("  %-10s %10ld\n", plan ? "remove" : "removed", c->removed);
	printf("  %-10s %10ld\n", "unchanged", c->unchanged);
	printf("  %-10s %10ld%s%s\n", "rejected", c->rejected,
	       c->rejected && !plan ? "   see: retl failures " : "",
	       c->rejected && !plan ? sc->name : "");
	if (!plan)
		printf("  %-10s %10ld%s%s\n", "failed", c->failed,
		       c->failed ? "   see: retl failures " : "",
		       c->failed ? sc->name : "");
	if (s->deferred)
		printf("  %-10s %10ld   (--limit: sent by a later run)\n", "deferred", s->deferred);
	if (s->handed_over || s->reported)
		printf("  %-10s %10ld   (outcomes reported later, e.g. by a bulk job: %ld reported)\n",
		       "staged", s->handed_over, s->reported);
	if (s->waiting)
		printf("  %-10s %10ld   (no outcome yet: read or sent again by the next run)\n",
		       "waiting", s->waiting);
	if (plan && s->jobs)
		printf("  %-10s %10ld\n", "bulk jobs", s->jobs);
	printf("  %-10s %10ld\n", plan ? "requests" : "api calls",
	       plan ? s->requests : c->api_calls);
}

/* parses --full-resync, --limit N, --all, --out F, --allow-removals N (run
 * only: with allow_all); the rest are sync names */
struct run_args {
	int full, all;
	long limit;
	long allow_removals;      /* -1: not given */
	const char *out;
	char **names;
	int nnames;
};

/* the most operations --limit takes: more is a typo, not a plan */
#define LIMIT_MAX 1000000000L
/* the most rows --allow-removals lets through */
#define ALLOW_MAX 1000000000000L

static int parse_args(const char *verb, int argc, char **argv,
		      struct run_args *a, int allow_out, int allow_all,
		      int allow_limit)
{
	a->limit = -1;
	a->allow_removals = -1;
	a->names = argv;
	a->nnames = 0;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i], *v;
		if ((allow_out || allow_limit) && !strcmp(s, "--full-resync")) {
			a->full = 1;
		} else if (allow_all && !strcmp(s, "--all")) {
			a->all = 1;
		} else if (allow_all && !strcmp(s, "--allow-removals")) {
			if (!(v = retl_cli_value(verb, argc, argv, &i)) ||
			    retl_cli_number(verb, s, "the number of rows the run "
					    "may remove", v, 0, ALLOW_MAX,
					    &a->allow_removals) < 0)
				return -1;
		} else if (allow_out && !strcmp(s, "--out")) {
			if (!(a->out = retl_cli_value(verb, argc, argv, &i)))
				return -1;
		} else if (allow_limit && !strcmp(s, "--limit")) {
			if (!(v = retl_cli_value(verb, argc, argv, &i)) ||
			    retl_cli_number(verb, s, "a number of operations", v,
					    0, LIMIT_MAX, &a->limit) < 0)
				return -1;
		} else if (s[0] == '-') {
			retl_cli_usage_error(verb, "unknown option \"%s\"", s);
			return -1;
		} else {
			a->names[a->nnames++] = argv[i];
		}
	}
	return 0;
}

/* whether the command names the sync (no names: every sync) */
static int named(const struct run_args *a, const char *name)
{
	if (!a->nnames)
		return 1;
	for (int j = 0; j < a->nnames; j++)
		if (!strcmp(a->names[j], name))
			return 1;
	return 0;
}

/* every name is a sync, valid or not; else its error (an unknown name is
 * a typo: nothing runs); 0 when all are known */
static int unknown_name(struct retl_cli *cli, const struct run_args *a)
{
	struct retl_err err;
	retl_err_clear(&err);
	for (int i = 0; i < a->nnames; i++)
		if (!retl_config_sync(cli->cfg, a->names[i]) &&
		    !retl_config_invalid(cli->cfg, a->names[i]) &&
		    !retl_cli_sync(cli, a->names[i], &err))
			return retl_cli_fail(&err);
	return 0;
}

/* the names of the syncs that failed, for the last line */
static void add_name(retl_buf *b, const char *name)
{
	retl_buf_addf(b, "%s%s", b->len ? ", " : "", name);
}

/* one sync's check; prints its line; its exit code */
static int check_one(struct retl_cli *cli, struct retl_sync_cfg *sc)
{
	struct retl_err err;
	retl_err_clear(&err);
	if (retl_sync_check(cli->cfg, sc, &err) < 0) {
		/* which sync failed: the source's or destination's error
		 * alone does not say (several syncs share them) */
		retl_err_prefix(&err, "check %s: ", sc->name);
		return retl_cli_fail(&err);
	}
	printf("ok  %s: %s -> %s (%s%s%s)\n", sc->name, sc->source,
	       sc->destination, retl_mode_name(sc->mode),
	       sc->object ? ", " : "", sc->object ? sc->object : "");
	return 0;
}

/*
 * The state store, opened as a run opens it (created and migrated when
 * missing) and probed with a write: a store a run could not write fails
 * the check rather than the first run.
 */
static int check_state(struct retl_cli *cli)
{
	struct retl_err err;
	retl_err_clear(&err);
	if (retl_state_open_at(&cli->st, cli->cfg->state_path, cli->cfg->state_local, &err) < 0 ||
	    retl_state_probe_writable(cli->st, &err) < 0)
		return retl_cli_fail(&err);
	return 0;
}

/*
 * `retl check` of the whole project also reads the secrets of the
 * connections no sync uses (yet): a project checked ok has every secret
 * it names.  Those used by a sync are read by its check.
 */
static int check_unused_connections(struct retl_cli *cli, retl_buf *failed)
{
	struct retl_config *cfg = cli->cfg;
	struct retl_err err;
	int worst = 0;
	for (size_t i = 0; i < cfg->nsources + cfg->ndests; i++) {
		int used = 0, src = i < cfg->nsources;
		const char *name = src ? cfg->sources[i].name :
			cfg->dests[i - cfg->nsources].name;
		for (size_t j = 0; j < cfg->nsyncs && !used; j++)
			used = !strcmp(src ? cfg->syncs[j].source :
				       cfg->syncs[j].destination, name);
		if (used)
			continue;
		if ((src ? retl_config_resolve_source(cfg, &cfg->sources[i], &err) :
		     retl_config_resolve_dest(cfg, &cfg->dests[i - cfg->nsources],
					      &err)) < 0) {
			worst = worse(worst, retl_cli_fail(&err));
			add_name(failed, src ? "source " : "destination ");
			retl_buf_adds(failed, name);
		}
	}
	return worst;
}

/*
 * The alert channels (a whole-project check only: they belong to no
 * sync): their secrets and the URL policy, what a run's alert would meet
 * first.  Nothing is sent.
 */
static int check_notify(struct retl_cli *cli, retl_buf *failed)
{
	struct retl_notify_cfg *n = cli->cfg->notify;
	int worst = 0;

	if (!n)
		return 0;
	retl_notify_resolve(n);
	for (size_t i = 0; i < n->nch; i++) {
		if (!n->ch[i].error)
			continue;
		retl_cli_note("check notify.channels.%s: %s", n->ch[i].name,
			      n->ch[i].error);
		worst = worse(worst, RETL_EXIT_USAGE);
		add_name(failed, "notify channel ");
		retl_buf_adds(failed, n->ch[i].name);
	}
	return worst;
}

/*
 * retl check [SYNC...]: every sync (or the named ones) is checked, one
 * failing does not stop the others; a mapping file that does not load
 * counts as failing.  The exit code is the worst.
 */
int cmd_check(struct retl_cli *cli, int argc, char **argv)
{
	struct run_args a = { 0 };
	if (parse_args("check", argc, argv, &a, 0, 0, 0) < 0)
		return RETL_EXIT_USAGE;
	int rc = retl_cli_open(cli, 0);
	if (rc)
		return rc;
	if ((rc = unknown_name(cli, &a)))
		return rc;
	int worst = check_state(cli);
	retl_buf failed = RETL_BUF_INIT;
	if (!a.nnames) {
		worst = worse(worst, check_unused_connections(cli, &failed));
		worst = worse(worst, check_notify(cli, &failed));
	}
	for (size_t i = 0; i < cli->cfg->ninvalid; i++) {
		const struct retl_sync_invalid *v = &cli->cfg->invalid[i];
		if (!named(&a, v->name))
			continue;
		worst = worse(worst, retl_cli_fail_invalid(v));
		add_name(&failed, v->name);
	}
	for (size_t i = 0; i < cli->cfg->nsyncs; i++) {
		struct retl_sync_cfg *sc = &cli->cfg->syncs[i];
		if (!named(&a, sc->name))
			continue;
		int code = check_one(cli, sc);
		if (code)
			add_name(&failed, sc->name);
		worst = worse(worst, code);
	}
	if (!cli->cfg->nsyncs && !cli->cfg->ninvalid && !worst)
		printf("ok  config (no syncs in mappings/)\n");
	if (failed.len)
		retl_cli_note("check failed for: %s", failed.ptr);
	retl_buf_free(&failed);
	return worst;
}

int cmd_plan(struct retl_cli *cli, int argc, char **argv)
{
	struct run_args a = { 0 };
	if (parse_args("plan", argc, argv, &a, 1, 0, 0) < 0)
		return RETL_EXIT_USAGE;
	if (a.nnames != 1)
		return retl_cli_usage_error("plan", "plan needs one sync: retl plan SYNC [--out FILE]");
	struct retl_sync_cfg *sc;
	int rc = retl_cli_open_sync(cli, a.names[0], &sc);
	if (rc)
		return rc;
	struct retl_err err;
	retl_err_clear(&err);
	FILE *out = NULL;
	if (a.out && !(out = retl_fopen_private(a.out, "w", 0))) {
		fprintf(stderr, "retl: --out %s: %s\n", a.out, strerror(errno));
		return RETL_EXIT_USAGE;
	}
	struct retl_sync_opts o = { .full_resync = a.full, .limit = -1, .plan = 1,
				    .plan_out = out };
	struct retl_sync_summary sum;
	rc = retl_sync_run(cli->cfg, sc, cli->st, &o, &sum, &err);
	if (out && fclose(out) != 0 && rc == 0) {
		fprintf(stderr, "retl: --out %s: %s\n", a.out, strerror(errno));
		rc = -1;
		retl_err_code(&err, RETL_EXIT_USAGE);
	}
	int code;
	if (rc < 0 && sum.exit_code != RETL_EXIT_SAFETY) {
		code = retl_cli_fail(&err);
	} else {
		print_summary("plan", sc, &sum, 1, rc < 0);
		for (size_t i = 0; i < sum.nsamples; i++) {
			retl_buf m = RETL_BUF_INIT;
			retl_redact_into(&m, sum.samples[i], strlen(sum.samples[i]));
			printf("%s %s\n", i ? "         " : "  sample  ", m.ptr);
			retl_buf_free(&m);
		}
		code = sum.exit_code;
	}
	retl_sync_summary_free(&sum);
	return code;
}

/* first SIGINT/SIGTERM: finish what is in flight and stop; second: now */
static void on_stop_signal(int sig)
{
	retl_sync_request_stop();
	signal(sig, SIG_DFL);
}

/* one run (or apply) of a sync and its summary; its exit code */
static int run_one(struct retl_cli *cli, struct retl_sync_cfg *sc,
		   const struct retl_sync_opts *o, const char *verb)
{
	struct retl_sync_summary sum;
	struct retl_err err;
	int code;
	retl_err_clear(&err);
	/* a secret that is not there is a config error, not a run */
	if (retl_config_resolve(cli->cfg, sc, &err) < 0)
		return retl_cli_fail(&err);
	retl_log(RETL_LOG_INFO, sc->name, "%s started (%s, %s -> %s)", verb,
		 retl_mode_name(sc->mode), sc->source, sc->destination);
	int rc = retl_sync_run(cli->cfg, sc, cli->st, o, &sum, &err);
	/* a run that stopped before reading or sending anything has its
	 * error, not a summary of zeros; one asked to stop has its summary */
	if (rc < 0 && sum.exit_code != RETL_EXIT_SAFETY && !sum.c.read &&
	    !sum.c.api_calls && strcmp(sum.status, RETL_RUN_INTERRUPTED)) {
		code = retl_cli_fail(&err);
	} else {
		if (rc < 0)
			retl_cli_fail(&err);
		print_summary(verb, sc, &sum, 0, rc < 0);
		code = sum.exit_code;
	}
	if (sum.recorded)
		retl_log(code > 1 ? RETL_LOG_ERROR : RETL_LOG_INFO, sc->name,
			 "%s ended: %s (exit %d)", verb, sum.status, code);
	retl_sync_summary_free(&sum);
	/* alerts never change the exit code (notify.h) */
	retl_notify_after_run(cli->cfg, sc, cli->st);
	return code;
}

/*
 * retl run: an unknown name is a typo and stops everything before any run;
 * a sync whose mapping file is invalid is reported and skipped, and the
 * others run (exit 2 at the end, the worst code otherwise).
 */
int cmd_run(struct retl_cli *cli, int argc, char **argv)
{
	struct run_args a = { 0 };
	if (parse_args("run", argc, argv, &a, 0, 1, 1) < 0)
		return RETL_EXIT_USAGE;
	if (!a.all && !a.nnames)
		return retl_cli_usage_error("run", "run needs sync names or --all: retl run [SYNC...|--all]");
	if (a.all && a.nnames)
		return retl_cli_usage_error("run", "run takes sync names or --all, not both");
	/* a permission for one intended removal, not for whatever else the
	 * other syncs of the command would remove */
	if (a.allow_removals >= 0 && (a.all || a.nnames != 1))
		return retl_cli_usage_error("run", "--allow-removals lets one run of "
					    "one sync through its safety limits: "
					    "retl run SYNC --allow-removals N");
	int rc = retl_cli_open(cli, 1);
	if (rc)
		return rc;
	if ((rc = unknown_name(cli, &a)))
		return rc;
	struct retl_err err;
	int worst = 0;
	retl_buf skipped = RETL_BUF_INIT;
	size_t n = a.all ? cli->cfg->nsyncs : (size_t)a.nnames;
	signal(SIGINT, on_stop_signal);
	signal(SIGTERM, on_stop_signal);
	for (size_t i = 0; i < n && !retl_sync_stop_requested(); i++) {
		retl_err_clear(&err);
		struct retl_sync_cfg *sc = a.all ? &cli->cfg->syncs[i] :
			retl_cli_sync(cli, a.names[i], &err);
		if (!sc) {
			worst = worse(worst, retl_cli_fail(&err));
			add_name(&skipped, a.names[i]);
			continue;
		}
		struct retl_sync_opts o = { .full_resync = a.full, .limit = a.limit,
					    .allow_removals = a.allow_removals > 0 ?
							      a.allow_removals : 0 };
		worst = worse(worst, run_one(cli, sc, &o, "run"));
	}
	for (size_t i = 0; a.all && i < cli->cfg->ninvalid; i++) {
		worst = worse(worst, retl_cli_fail_invalid(&cli->cfg->invalid[i]));
		add_name(&skipped, cli->cfg->invalid[i].name);
	}
	if (skipped.len)
		retl_cli_note("run: skipped, their mapping file is invalid: %s",
			      skipped.ptr);
	retl_buf_free(&skipped);
	return worst;
}

/*
 * retl apply FILE: the operations of a plan file (retl plan --out), sent
 * as they are, without reading the model.  The file is checked whole
 * first (spool.h); the sync's state must still be the one the plan was
 * made against, which the run checks under the sync's lock.
 */
int cmd_apply(struct retl_cli *cli, int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (argv[i][0] == '-')
			return retl_cli_usage_error("apply", "unknown option \"%s\"",
						    argv[i]);
	if (argc != 1)
		return retl_cli_usage_error("apply", "apply needs one plan file");
	const char *path = argv[0];
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "retl: apply: %s: %s\n", path, strerror(errno));
		return RETL_EXIT_USAGE;
	}
	struct retl_err err;
	struct retl_spool_head h;
	struct retl_sync_cfg *sc;
	retl_err_clear(&err);
	if (retl_spool_verify(f, path, &h, &err) < 0) {
		fclose(f);
		return retl_cli_fail(&err);
	}
	int rc = retl_cli_open_sync(cli, h.sync, &sc);
	if (rc == 0) {
		struct retl_sync_opts o = { .limit = -1, .apply_f = f, .apply_path = path,
					    .apply_state = h.state };
		signal(SIGINT, on_stop_signal);
		signal(SIGTERM, on_stop_signal);
		rc = run_one(cli, sc, &o, "apply");
	}
	retl_spool_head_free(&h);
	fclose(f);
	return rc;
}
