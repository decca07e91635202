/*
 * progress.c - see progress.h.
 */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int active;
static const char *cur_sync;
static long p_read, p_sent, p_failed;
static double t_start, t_drawn;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void draw(void)
{
	double el = now_s() - t_start;
	double rate = el > 0 ? p_read / el : 0;
	fprintf(stderr, "\r\033[K%s: read %ld (%.0f rows/s)  sent %ld  failed %ld",
		cur_sync, p_read, rate, p_sent, p_failed);
	fflush(stderr);
	t_drawn = now_s();
}

void retl_progress_start(const char *sync)
{
	active = isatty(STDERR_FILENO) && !retl_log_is_json();
	cur_sync = sync;
	p_read = p_sent = p_failed = 0;
	t_start = now_s();
	t_drawn = 0;
}

void retl_progress_update(long read, long sent, long failed)
{
	p_read = read;
	p_sent = sent;
	p_failed = failed;
	if (active && now_s() - t_drawn >= 0.1)
		draw();
}

void retl_progress_stop(void)
{
	if (active) {
		draw();
		fputc('\n', stderr);
	}
	active = 0;
}

void retl_progress_clear(void)
{
	if (active)
		fputs("\r\033[K", stderr);
}

void retl_progress_redraw(void)
{
	if (active)
		draw();
}
