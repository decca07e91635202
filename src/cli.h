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
