/*
 * testpoint.c - named pause points for the crash tests (testpoint.h).
 *
 * A kill chosen by watching the destination's output lands wherever the
 * process happens to be, mostly on one side of a commit; a named point
 * lets a test put the kill on each side of each commit, and know the
 * process was alive and exactly there when it died.  The environment is
 * read once, at the first point reached.  A malformed value is reported
 * and ignored rather than stopping a run on a test hook.
 */
#include "testpoint.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENV_NAME "RETL_TEST_PAUSE_AT"

enum { TP_UNREAD, TP_OFF, TP_ARMED };

static int tp_state = TP_UNREAD;
static char tp_name[64];
static long tp_target, tp_seen;

/* "<name>:<n>" (n >= 1), or "<name>" for its first occurrence */
static void read_env(void)
{
	const char *v = getenv(ENV_NAME);
	tp_state = TP_OFF;
	if (!v || !*v)
		return;
	const char *colon = strrchr(v, ':');
	size_t len = colon ? (size_t)(colon - v) : strlen(v);
	long n = 1;
	if (colon) {
		char *end;
		n = strtol(colon + 1, &end, 10);
		if (end == colon + 1 || *end)
			n = 0;
	}
	if (!len || len >= sizeof(tp_name) || n < 1) {
		fprintf(stderr, "retl: %s=%s ignored: expected <point>:<n>, n >= 1\n",
			ENV_NAME, v);
		return;
	}
	memcpy(tp_name, v, len);
	tp_name[len] = '\0';
	tp_target = n;
	tp_state = TP_ARMED;
}

void retl_testpoint(const char *name)
{
	if (tp_state == TP_OFF)
		return;
	if (tp_state == TP_UNREAD) {
		read_env();
		if (tp_state == TP_OFF)
			return;
	}
	if (strcmp(name, tp_name) || ++tp_seen != tp_target)
		return;
	fprintf(stderr, "retl: paused at %s\n", name);
	fflush(stderr);
	raise(SIGSTOP);
}
