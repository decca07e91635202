/*
 * cli.c - global options and verb dispatch (one table, as redis does for
 * its commands).  The verbs live in cmd_run.c and cmd_report.c.  Only the
 * CLI prints errors and chooses exit codes.
 */
#include "cli.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "redact.h"

#define RETL_VERSION "0.1.0"

struct verb {
	const char *name;
	int (*fn)(struct retl_cli *, int, char **);
	const char *usage;
	const char *help;
};

static const struct verb verbs[] = {
	{ "check", cmd_check, "retl check [SYNC...]",
	  "Validates the project: config, the state store (opened, made when\n"
	  "missing, and probed with a write), the source connection, the query's\n"
	  "columns (run with LIMIT 0 semantics: prepared, not executed), the key\n"
	  "and match columns, the field mapping, and the destination.  Every sync\n"
	  "is checked (or those named); a failing one is named and the others\n"
	  "are still checked; an invalid mapping file fails the check (exit 2).\n" },
	{ "plan", cmd_plan, "retl plan SYNC [--out FILE] [--full-resync]",
	  "Reads the model and diffs it against the state store, sends nothing and\n"
	  "changes no state.  Prints counts (add, change, unchanged, retry, remove,\n"
	  "rejected), the API requests the run would spend and sample payloads.\n"
	  "  --out FILE      write the plan file: every planned operation as a JSON\n"
	  "                  line, for reading or for retl apply\n"
	  "  --full-resync   plan as if every row had changed\n" },
	{ "apply", cmd_apply, "retl apply FILE",
	  "Sends exactly the operations of a plan file (retl plan SYNC --out FILE),\n"
	  "without reading the model.  Refused, with nothing sent, when the file\n"
	  "is cut short or changed, or when the sync's state moved since the plan\n"
	  "was made (a run or an apply since): make a new plan.\n" },
	{ "run", cmd_run, "retl run [SYNC...|--all] [--full-resync] [--limit N]",
	  "Syncs now: sends new, changed and previously failed rows, and removals\n"
	  "in mirror mode.  Ends with a summary.  A sync whose mapping file is\n"
	  "invalid is reported and skipped, the others run (exit 2 at the end).\n"
	  "  --all           every sync of the project\n"
	  "  --full-resync   send every row, changed or not\n"
	  "  --limit N       send at most N operations; the rest wait for the next run\n" },
	{ "status", cmd_status, "retl status",
	  "The last run of every sync: when, how it ended, its counts, and how\n"
	  "many rows are failing.  A sync whose mapping file is invalid is listed\n"
	  "as invalid, with the error.  Needs no secret: it never connects.\n" },
	{ "history", cmd_history, "retl history SYNC [--limit N]",
	  "The runs of one sync, newest first (default: the last 20).\n" },
	{ "failures", cmd_failures, "retl failures SYNC",
	  "Rows of one sync that are not synced, with the reason: failed (refused\n"
	  "by the destination), pending (a create whose answer never came),\n"
	  "staged (an outcome the destination reports later, not read yet), or\n"
	  "rejected by the mapping or the key rules.  They are retried on every\n"
	  "run until they succeed.\n" },
	{ "reset", cmd_reset, "retl reset SYNC|--all",
	  "Forgets a sync's cache: the next run sends every row again.\n"
	  "  --all   start over: every sync's cache is forgotten; a state store\n"
	  "          refused as missing or empty is made anew, one refused as\n"
	  "          not this project's is taken as this project's\n" },
	{ "daemon", cmd_daemon,
	  "retl daemon [--concurrency N] [--listen HOST:PORT|off] [--shutdown-timeout S]",
	  "Runs every sync that has a \"schedule\" when it is due (cron in UTC, or\n"
	  "\"every 15m\"), each run in its own process.  A run still going when the\n"
	  "sync is due again makes that due time skipped, not queued; a run missed\n"
	  "while no daemon ran happens once at start-up.  SIGHUP reloads the\n"
	  "config (a broken one is logged and the old one kept); SIGTERM/SIGINT\n"
	  "stop: runs finish their batches in flight and commit, then exit 0.\n"
	  "  --concurrency N        at most N runs at once (default 2)\n"
	  "  --listen HOST:PORT     /metrics (Prometheus) and /healthz\n"
	  "                         (default 127.0.0.1:9187; off = none)\n"
	  "  --shutdown-timeout S   seconds runs get to stop before SIGKILL (default 30)\n" },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: retl [--config DIR] [--log-format text|json] [-v] VERB [ARGS]\n"
		"\n"
		"retl runs SQL models in PostgreSQL and pushes new and changed rows to\n"
		"destinations.  Verbs:\n\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %s\n", verbs[i].usage);
	fprintf(f,
		"\n"
		"  --config DIR        the project directory (default: .)\n"
		"  --log-format FMT    text (default) or json log lines on stderr\n"
		"  -v, --verbose       debug log lines\n"
		"  --version           print the version\n"
		"\n"
		"Exit codes: 0 all rows synced, 1 some rows failed, 2 usage or config\n"
		"error, 3 source error, 4 destination error (unreachable included),\n"
		"5 refused by a safety limit, 6 state store error (damaged, disk full, I/O).\n"
		"`retl VERB --help` describes a verb.\n");
}

int retl_cli_is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

int retl_cli_usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;
	fputs("retl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verbs[i].name, verb))
			fprintf(stderr, "usage: %s\n", verbs[i].usage);
	return RETL_EXIT_USAGE;
}

int retl_cli_number(const char *verb, const char *opt, const char *what,
		    const char *v, long lo, long hi, long *out)
{
	long n = 0;
	int big = 0;
	const char *p = v;
	/* strtol would take " 5", "+5", "-1" and wrap or clamp; an operator
	 * who typed "1.5" or "10k" meant something else: refuse, say why */
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (LONG_MAX - (*p - '0')) / 10)
			big = 1;
		else
			n = n * 10 + (*p - '0');
	}
	if (p == v || *p || big || n < lo || n > hi) {
		retl_cli_usage_error(verb, "%s: expected %s from %ld to %ld, not \"%s\"",
				     opt, what, lo, hi, v);
		return -1;
	}
	*out = n;
	return 0;
}

const char *retl_cli_value(const char *verb, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		retl_cli_usage_error(verb, "%s needs a value", argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

int retl_cli_fail(const struct retl_err *err)
{
	retl_buf out = RETL_BUF_INIT;
	/* config errors start with their file; the rest get our name */
	int is_config = err->code == RETL_EXIT_USAGE &&
			(!strncmp(err->msg, "retl.json", 9) ||
			 !strncmp(err->msg, "mappings/", 9));
	if (retl_log_is_json()) {
		/* machines reading stderr get one JSON object a line */
		retl_log(RETL_LOG_ERROR, NULL, "%s", err->msg);
		return err->code ? err->code : RETL_EXIT_USAGE;
	}
	if (!is_config)
		retl_buf_adds(&out, "retl: ");
	retl_redact_into(&out, err->msg, strlen(err->msg));
	fprintf(stderr, "%s\n", retl_buf_cstr(&out));
	retl_buf_free(&out);
	return err->code ? err->code : RETL_EXIT_USAGE;
}

int retl_cli_open(struct retl_cli *cli, int want_state)
{
	struct retl_err err;
	retl_err_clear(&err);
	if (retl_config_load(&cli->cfg, cli->config_dir, &err) < 0)
		return retl_cli_fail(&err);
	/* defence in depth for what the reports print from the store */
	retl_config_redact_env(cli->cfg);
	if (want_state &&
	    retl_state_open_at(&cli->st, cli->cfg->state_path, cli->cfg->state_local, &err) < 0)
		return retl_cli_fail(&err);
	return 0;
}

void retl_cli_close(struct retl_cli *cli)
{
	retl_state_close(cli->st);
	retl_config_free(cli->cfg);
	cli->st = NULL;
	cli->cfg = NULL;
}

struct retl_sync_cfg *retl_cli_sync(struct retl_cli *cli, const char *name,
				    struct retl_err *err)
{
	struct retl_sync_cfg *sc = retl_config_sync(cli->cfg, name);
	if (sc)
		return sc;
	const struct retl_sync_invalid *bad = retl_config_invalid(cli->cfg, name);
	if (bad) {
		retl_err_set(err, RETL_EXIT_USAGE, "%s", bad->msg);
		return NULL;
	}
	retl_buf l = RETL_BUF_INIT;
	for (size_t i = 0; i < cli->cfg->nsyncs; i++)
		retl_buf_addf(&l, "%s%s", i ? ", " : "", cli->cfg->syncs[i].name);
	retl_err_set(err, RETL_EXIT_USAGE, "unknown sync \"%s\" (syncs: %s)", name,
		     cli->cfg->nsyncs ? l.ptr : "none: add mappings/<name>.json");
	retl_buf_free(&l);
	return NULL;
}

void retl_cli_note(const char *fmt, ...)
{
	retl_buf m = RETL_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	retl_buf_vaddf(&m, fmt, ap);
	va_end(ap);
	/* machines reading stderr get one JSON object a line */
	if (retl_log_is_json())
		retl_log(RETL_LOG_WARN, NULL, "%s", m.ptr);
	else
		fprintf(stderr, "retl: %s\n", m.ptr);
	retl_buf_free(&m);
}

int retl_cli_fail_invalid(const struct retl_sync_invalid *v)
{
	struct retl_err err;
	retl_err_clear(&err);
	retl_err_set(&err, RETL_EXIT_USAGE, "%s", v->msg);
	return retl_cli_fail(&err);
}

int retl_cli_state_sync(struct retl_cli *cli, const char *name)
{
	struct retl_err err;
	int rc = retl_cli_open(cli, 1);
	if (rc)
		return rc;
	retl_err_clear(&err);
	if (retl_cli_sync(cli, name, &err))
		return 0;
	const struct retl_sync_invalid *bad = retl_config_invalid(cli->cfg, name);
	if (!bad)
		return retl_cli_fail(&err);
	retl_cli_fail(&err);
	retl_cli_note("warning: sync %s is skipped by run, plan and the daemon "
		      "until %s is fixed", name, bad->file);
	return 0;
}

int retl_cli_open_sync(struct retl_cli *cli, const char *name,
		       struct retl_sync_cfg **sc)
{
	struct retl_err err;
	int rc = retl_cli_open(cli, 1);

	if (rc)
		return rc;
	retl_err_clear(&err);
	*sc = retl_cli_sync(cli, name, &err);
	return *sc ? 0 : retl_cli_fail(&err);
}

int retl_cli_main(int argc, char **argv)
{
	struct retl_cli cli = { .config_dir = "." };
	char **rest = retl_calloc((size_t)argc + 1, sizeof(char *));
	int nrest = 0;

	/* global options may come before or after the verb */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--config") || !strcmp(a, "--log-format")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "retl: %s needs a value\n", a);
				free(rest);
				return RETL_EXIT_USAGE;
			}
			const char *v = argv[++i];
			if (!strcmp(a, "--config")) {
				cli.config_dir = v;
			} else if (!strcmp(v, "json") || !strcmp(v, "text")) {
				retl_log_set_json(!strcmp(v, "json"));
			} else {
				fprintf(stderr, "retl: --log-format: expected text or json, not \"%s\"\n", v);
				free(rest);
				return RETL_EXIT_USAGE;
			}
		} else if (!strncmp(a, "--config=", 9)) {
			cli.config_dir = a + 9;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			retl_log_set_level(RETL_LOG_DEBUG);
		} else if (!strcmp(a, "--version")) {
			printf("retl %s\n", RETL_VERSION);
			free(rest);
			return 0;
		} else {
			rest[nrest++] = argv[i];
		}
	}
	if (!nrest || (nrest == 1 && retl_cli_is_help(rest[0]))) {
		usage(nrest ? stdout : stderr);
		free(rest);
		return nrest ? 0 : RETL_EXIT_USAGE;
	}
	int rc = -1;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(verbs[i].name, rest[0]))
			continue;
		for (int j = 1; j < nrest; j++) {
			if (retl_cli_is_help(rest[j])) {
				printf("usage: %s\n\n%s", verbs[i].usage, verbs[i].help);
				free(rest);
				return 0;
			}
		}
		rc = verbs[i].fn(&cli, nrest - 1, rest + 1);
		break;
	}
	if (rc < 0) {
		fprintf(stderr, "retl: unknown verb \"%s\"\n\n", rest[0]);
		usage(stderr);
		rc = RETL_EXIT_USAGE;
	}
	retl_cli_close(&cli);
	free(rest);
	return rc;
}
