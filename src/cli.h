/*
 * cli.h - the command line: global options, verb dispatch, and the helpers
 * the verbs share (opening the project, printing errors).
 */
#ifndef RETL_CLI_H
#define RETL_CLI_H

#include "config.h"
#include "err.h"
#include "state.h"

struct retl_cli {
	const char *config_dir;   /* --config, default "." */
	struct retl_config *cfg;
	retl_state *st;
};

int retl_cli_main(int argc, char **argv);

/* loads the config (and opens the state store when want_state) */
int retl_cli_open(struct retl_cli *cli, int want_state);
void retl_cli_close(struct retl_cli *cli);
/* prints an error on stderr, redacted; returns its exit code */
int retl_cli_fail(const struct retl_err *err);
/* a sync named on the command line, or a usage error listing the syncs */
struct retl_sync_cfg *retl_cli_sync(struct retl_cli *cli, const char *name,
				    struct retl_err *err);
/* retl_cli_open(cli, 1) and the named sync; 0, or the exit code after
 * printing the error */
int retl_cli_open_sync(struct retl_cli *cli, const char *name,
		       struct retl_sync_cfg **sc);
/* "--flag" or "-h" style: 1 when argv[i] asks for help */
int retl_cli_is_help(const char *arg);

/*
 * The one parser of numeric option values, for every verb: plain decimal
 * digits from lo to hi, nothing else (no sign, space, fraction, suffix or
 * empty string).  0, or prints "retl: OPT: expected WHAT from LO to HI,
 * not "V"" and the verb's usage, and returns -1 (the caller exits 2).
 */
int retl_cli_number(const char *verb, const char *opt, const char *what,
		    const char *v, long lo, long hi, long *out);

/* argv[*i] is an option that takes a value: the value (and *i moves on),
 * or NULL after printing "retl: OPT needs a value" and the usage */
const char *retl_cli_value(const char *verb, int argc, char **argv, int *i);

/* prints "retl: <msg>" and the verb's usage line on stderr; returns 2 */
int retl_cli_usage_error(const char *verb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "retl: <msg>" on stderr (a warn log line with --log-format json) */
void retl_cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* prints an invalid mapping file's error on stderr; returns 2 */
int retl_cli_fail_invalid(const struct retl_sync_invalid *v);

/* like retl_cli_sync, but a sync whose mapping file is invalid is taken
 * too (its name is enough to read its state), after a warning: for the
 * verbs that only read or clear its state */
int retl_cli_state_sync(struct retl_cli *cli, const char *name);

int cmd_check(struct retl_cli *cli, int argc, char **argv);
int cmd_plan(struct retl_cli *cli, int argc, char **argv);
int cmd_run(struct retl_cli *cli, int argc, char **argv);
int cmd_apply(struct retl_cli *cli, int argc, char **argv);
int cmd_status(struct retl_cli *cli, int argc, char **argv);
int cmd_history(struct retl_cli *cli, int argc, char **argv);
int cmd_failures(struct retl_cli *cli, int argc, char **argv);
int cmd_reset(struct retl_cli *cli, int argc, char **argv);
int cmd_daemon(struct retl_cli *cli, int argc, char **argv);

#endif
