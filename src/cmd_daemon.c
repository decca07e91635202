/*
 * cmd_daemon.c - `retl daemon`: options, then the loop in daemon.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"

static int number(const char *opt, const char *v, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi) {
		fprintf(stderr, "retl: %s: expected a number from %ld to %ld, not \"%s\"\n",
			opt, lo, hi, v);
		return -1;
	}
	*out = (int)n;
	return 0;
}

int cmd_daemon(struct retl_cli *cli, int argc, char **argv)
{
	struct retl_daemon_opts o = {
		.config_dir = cli->config_dir,
		.concurrency = 2,
		.listen = "127.0.0.1:9187",
		.shutdown_timeout = 30,
	};
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--concurrency") && strcmp(a, "--listen") &&
		    strcmp(a, "--shutdown-timeout")) {
			fprintf(stderr, "retl: unknown option \"%s\" (see --help)\n", a);
			return RETL_EXIT_USAGE;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "retl: %s needs a value\n", a);
			return RETL_EXIT_USAGE;
		}
		const char *v = argv[++i];
		if (!strcmp(a, "--listen"))
			o.listen = strcmp(v, "off") ? v : NULL;
		else if (number(a, v, !strcmp(a, "--concurrency") ? 1 : 0,
				!strcmp(a, "--concurrency") ? 256 : 86400,
				!strcmp(a, "--concurrency") ? &o.concurrency :
				&o.shutdown_timeout) < 0)
			return RETL_EXIT_USAGE;
	}
	int rc = retl_cli_open(cli, 0);
	if (rc)
		return rc;
	struct retl_err err;
	retl_err_clear(&err);
	if (retl_daemon_run(&o, &cli->cfg, &err) < 0)
		return retl_cli_fail(&err);
	return 0;
}
