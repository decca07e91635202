/*
 * ratelimit.c - see ratelimit.h.
 *
 * The window is a ring of the last `max` start times: the request that may
 * start is the one whose start falls at least interval + slack after the
 * oldest of them.  O(1) per request.
 *
 * The slack.  We count starts, the server counts arrivals: request k
 * arrives d_k after it started, so the server sees k and k + max as
 * (interval + slack) - d_k + d_{k+max} apart, and refuses k + max when
 * that is under its interval, i.e. when the oldest request of the window
 * was delayed by more than slack over the newest.  Those delays are the
 * network and, mostly, scheduling: on a loaded 2-core machine the
 * emulators saw two arrivals ~90 ms closer than retl started them
 * (tests/bench/bench_airtable.py under three busy loops), so a fixed 50 ms
 * (Airtable's before) gave 429s, and each costs Airtable 30 s.  That jitter
 * does not shrink with the window, hence a floor of 200 ms, twice what was
 * seen.  Above the floor the slack grows with the window, 2.5% of it:
 * servers count long windows in coarser steps (a bucket per second of a
 * 10 s window), and what slack costs is slack / (interval + slack) of the
 * rate, so a share of the window costs every destination the same share of
 * its rate (HubSpot's 10 s: 250 ms, 97.6% of the rate at most; Airtable's
 * 1 s: the floor, 83%).
 */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

struct retl_ratelimit {
	int max;                /* current maximum (may be lowered) */
	int cap;                /* ring size: the configured maximum */
	double interval, slack;
	double *ring;           /* start times, oldest at head */
	int head, count;
	double paused_until;
};

double retl_rate_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double retl_rate_slack(double interval)
{
	double share = RETL_RATE_SLACK_SHARE * interval;
	return share > RETL_RATE_SLACK_MIN ? share : RETL_RATE_SLACK_MIN;
}

retl_ratelimit *retl_rate_new(int max, double interval, double min_slack)
{
	retl_ratelimit *rl = retl_calloc(1, sizeof(*rl));
	rl->max = rl->cap = max > 0 ? max : 0;
	rl->interval = interval;
	rl->slack = retl_rate_slack(interval);
	if (min_slack > rl->slack)
		rl->slack = min_slack;
	if (rl->cap)
		rl->ring = retl_calloc((size_t)rl->cap, sizeof(double));
	return rl;
}

void retl_rate_free(retl_ratelimit *rl)
{
	if (!rl)
		return;
	free(rl->ring);
	free(rl);
}

/* start time of the k-th newest request (k = 1: the newest) */
static double nth_newest(const retl_ratelimit *rl, int k)
{
	return rl->ring[(rl->head + rl->count - k) % rl->cap];
}

double retl_rate_delay(const retl_ratelimit *rl, double now)
{
	double wait = rl->paused_until > now ? rl->paused_until - now : 0;
	if (!rl->cap || rl->count < rl->max)
		return wait;
	/* the max-th newest start must have left the window */
	double free_at = nth_newest(rl, rl->max) + rl->interval + rl->slack;
	if (free_at - now > wait)
		wait = free_at - now;
	return wait;
}

void retl_rate_take(retl_ratelimit *rl, double now)
{
	if (!rl->cap)
		return;
	if (rl->count == rl->cap) {
		rl->head = (rl->head + 1) % rl->cap;
		rl->count--;
	}
	rl->ring[(rl->head + rl->count) % rl->cap] = now;
	rl->count++;
}

void retl_rate_observe(retl_ratelimit *rl, double now, int server_max,
		       int server_remaining)
{
	if (!rl->cap)
		return;
	if (server_max > 0 && server_max < rl->max)
		rl->max = server_max;
	if (server_remaining < 0)
		return;
	/* how many starts we count in the window now */
	int used = 0;
	for (int k = 1; k <= rl->count; k++) {
		if (nth_newest(rl, k) + rl->interval + rl->slack <= now)
			break;
		used++;
	}
	/* the server saw more (other clients on the same credential, or an
	 * earlier process): count the difference as starting now */
	int missing = rl->max - server_remaining - used;
	while (missing-- > 0)
		retl_rate_take(rl, now);
}

void retl_rate_pause(retl_ratelimit *rl, double now, double seconds)
{
	if (now + seconds > rl->paused_until)
		rl->paused_until = now + seconds;
}

int retl_rate_max(const retl_ratelimit *rl)
{
	return rl->max;
}

struct shared {
	char *key;
	retl_ratelimit *rl;
	struct shared *next;
};

static struct shared *shared_list;

retl_ratelimit *retl_rate_shared(const char *key, int max, double interval,
				 double min_slack)
{
	for (struct shared *s = shared_list; s; s = s->next)
		if (!strcmp(s->key, key))
			return s->rl;
	struct shared *s = retl_calloc(1, sizeof(*s));
	s->key = retl_strdup(key);
	s->rl = retl_rate_new(max, interval, min_slack);
	s->next = shared_list;
	shared_list = s;
	return s->rl;
}

void retl_rate_shared_free_all(void)
{
	while (shared_list) {
		struct shared *s = shared_list;
		shared_list = s->next;
		retl_rate_free(s->rl);
		free(s->key);
		free(s);
	}
}
