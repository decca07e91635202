/*
 * main.c - retl's entry point; everything happens in cli.c.
 *
 * First of all, the process is made private: retl holds secrets in memory
 * (the PostgreSQL password, API tokens, the webhook's signing secret) and
 * payloads of warehouse rows, and a core file or a debugger attached by
 * another user would hand them out.  Not dumpable means no core file, and
 * /proc/<pid>/mem, environ and the like owned by root, so ptrace and reads
 * by other users are refused; the core size limit 0 covers a core handler
 * that ignores the flag.  Done before anything is read, so it covers every
 * verb and every secret; it costs a debugging session a `gdb -p` as the
 * same user (root can still attach).
 */
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "cli.h"

static void make_private(void)
{
	struct rlimit none = { 0, 0 };

	/* neither can fail for a process lowering its own limits; should
	 * one fail all the same, say so and go on rather than refuse work */
	if (setrlimit(RLIMIT_CORE, &none) != 0)
		perror("retl: setrlimit(RLIMIT_CORE, 0)");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		perror("retl: prctl(PR_SET_DUMPABLE, 0)");
}

int main(int argc, char **argv)
{
	make_private();
	return retl_cli_main(argc, argv);
}
