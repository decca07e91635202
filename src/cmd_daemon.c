/*
 * cmd_daemon.c - `retl daemon`: options, then the loop in daemon.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"

int cmd_daemon(struct retl_cli *cli, int argc, char **argv)
{
	struct retl_daemon_opts o = {
		.config_dir = cli->config_dir,
		.concurrency = 2,
		.listen = "127.0.0.1:9187",
		.shutdown_timeout = 30,
	};
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v;
		long n;
		if (strcmp(a, "--concurrency") && strcmp(a, "--listen") &&
		    strcmp(a, "--shutdown-timeout"))
			return retl_cli_usage_error("daemon", "unknown option \"%s\"", a);
		if (!(v = retl_cli_value("daemon", argc, argv, &i)))
			return RETL_EXIT_USAGE;
		if (!strcmp(a, "--listen")) {
			o.listen = strcmp(v, "off") ? v : NULL;
		} else if (!strcmp(a, "--concurrency")) {
			if (retl_cli_number("daemon", a, "a number of runs", v, 1,
					    256, &n) < 0)
				return RETL_EXIT_USAGE;
			o.concurrency = (int)n;
		} else {
			if (retl_cli_number("daemon", a, "a number of seconds", v,
					    0, 86400, &n) < 0)
				return RETL_EXIT_USAGE;
			o.shutdown_timeout = (int)n;
		}
	}
	int rc = retl_cli_open(cli, 0);
	if (rc)
		return rc;
	/* a daemon that could run nothing is a deployment mistake: say so
	 * at once (exit 2); with other syncs to run, it is logged, not fatal */
	if (cli->cfg->ninvalid && !cli->cfg->nsyncs) {
		for (size_t i = 0; i < cli->cfg->ninvalid; i++)
			retl_cli_fail_invalid(&cli->cfg->invalid[i]);
		return RETL_EXIT_USAGE;
	}
	for (size_t i = 0; i < cli->cfg->ninvalid; i++)
		retl_log(RETL_LOG_ERROR, cli->cfg->invalid[i].name,
			 "%s: skipped until the file is fixed (then SIGHUP)",
			 cli->cfg->invalid[i].msg);
	struct retl_err err;
	retl_err_clear(&err);
	if (retl_daemon_run(&o, &cli->cfg, &err) < 0)
		return retl_cli_fail(&err);
	return 0;
}
