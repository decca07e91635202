/*
 * ratelimit.h - a sliding-window request limiter, one per destination and
 * credential.
 *
 * The window counts request starts: a request may start while fewer than
 * `max` started in the last `interval`.  Servers count arrivals, which come
 * a network latency later and with jitter, so the window is held a little
 * longer than the server's (the slack, see retl_rate_slack): nearly the full
 * rate, no 429.  What the server says corrects it: a lower advertised
 * maximum lowers ours, a lower "remaining" fills the window, and a 429
 * (Retry-After) stops every start until it has passed.  Times are
 * CLOCK_MONOTONIC seconds.
 */
#ifndef RETL_RATELIMIT_H
#define RETL_RATELIMIT_H

#include <stddef.h>

typedef struct retl_ratelimit retl_ratelimit;

/*
 * The slack for a window of `interval` seconds: the larger of
 * RETL_RATE_SLACK_MIN and RETL_RATE_SLACK_SHARE of the window (reasons in
 * ratelimit.c).
 */
#define RETL_RATE_SLACK_MIN 0.2
#define RETL_RATE_SLACK_SHARE 0.025
double retl_rate_slack(double interval);

/*
 * max requests per interval seconds; max <= 0 means unlimited.  The window
 * is held retl_rate_slack(interval) longer than the server's, or
 * `min_slack` if that is more (a destination whose 429 is dear may ask for
 * more; never less).
 */
retl_ratelimit *retl_rate_new(int max, double interval, double min_slack);
void retl_rate_free(retl_ratelimit *rl);

/* seconds to wait before a request may start at `now` (0: go) */
double retl_rate_delay(const retl_ratelimit *rl, double now);
/* records a request start at `now` (call when delay() said 0) */
void retl_rate_take(retl_ratelimit *rl, double now);

/* the server's view: its maximum and what it says remains of the window */
void retl_rate_observe(retl_ratelimit *rl, double now, int server_max,
		       int server_remaining);
/* nothing starts before now + seconds */
void retl_rate_pause(retl_ratelimit *rl, double now, double seconds);

int retl_rate_max(const retl_ratelimit *rl);

/*
 * The process-wide limiter for one credential: every sync that uses the
 * same destination credential in this process shares it.  `key` should
 * identify the credential without being it (e.g. "hubspot:" + a hash of
 * the token).  Created on first use; freed by retl_rate_shared_free_all().
 */
retl_ratelimit *retl_rate_shared(const char *key, int max, double interval,
				 double min_slack);
void retl_rate_shared_free_all(void);
double retl_rate_now(void);

#endif
