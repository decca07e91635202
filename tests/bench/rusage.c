/*
 * rusage.c - runs a command and writes what it cost to a file:
 *
 *   rusage OUT CMD [ARG...]     OUT gets "STATUS USER_S SYS_S MAXRSS_KB\n"
 *                               (STATUS: the raw wait status)
 *
 * Why not os.wait4 in tests/bench/bench.py: Linux carries a process's peak
 * RSS across exec, so a child of the bench's Python process starts with the
 * parent's peak (with 200 MB held by the parent, /bin/true "peaked" at
 * 215 MB).  This launcher is small when it forks, so its child's ru_maxrss
 * is the command's own.  Exits 0 when it wrote OUT, 125 when it could not
 * run the command or write OUT.  Built by `make bench` alone.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: rusage OUT CMD [ARG...]\n");
		return 125;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("rusage: fork");
		return 125;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "rusage: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	int status;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("rusage: wait4");
			return 125;
		}
	}
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		perror(argv[1]);
		return 125;
	}
	fprintf(out, "%d %ld.%06ld %ld.%06ld %ld\n", status,
		(long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
		(long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss);
	return fclose(out) == 0 ? 0 : 125;
}
