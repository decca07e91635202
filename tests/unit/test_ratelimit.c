/*
 * test_ratelimit.c - the sliding window, on a simulated clock.
 */
#include "ratelimit.h"
#include "test.h"

#include <math.h>

/* greedy client on a simulated clock: how many starts in [0, T) and the
 * most starts seen in any window of `interval` */
static int simulate(retl_ratelimit *rl, double T, double interval, int *most)
{
	double now = 0, starts[100000];
	int n = 0;
	while (now < T && n < 100000) {
		double d = retl_rate_delay(rl, now);
		if (d > 0) {
			now += d;
			continue;
		}
		retl_rate_take(rl, now);
		starts[n++] = now;
		now += 0.001;      /* the client is fast */
	}
	*most = 0;
	for (int i = 0, j = 0; i < n; i++) {
		while (starts[i] - starts[j] >= interval - 1e-9)
			j++;
		if (i - j + 1 > *most)
			*most = i - j + 1;
	}
	return n;
}

int main(void)
{
	int most;

	/* 100 per 10 s with 0.1 s slack: never more than 100 in any 10 s,
	 * and close to the full rate over a minute */
	retl_ratelimit *rl = retl_rate_new(100, 10, 0.1);
	int n = simulate(rl, 60, 10, &most);
	CHECK(most <= 100);
	CHECK(n >= 590 && n <= 600);
	retl_rate_free(rl);

	/* a burst goes at once, the next waits for the window */
	rl = retl_rate_new(3, 1, 0);
	CHECK(retl_rate_delay(rl, 0) == 0);
	retl_rate_take(rl, 0);
	retl_rate_take(rl, 0.1);
	retl_rate_take(rl, 0.2);
	CHECK(fabs(retl_rate_delay(rl, 0.3) - 0.7) < 1e-9);
	CHECK(retl_rate_delay(rl, 1.0) == 0);
	retl_rate_free(rl);

	/* the server's lower maximum lowers ours */
	rl = retl_rate_new(10, 1, 0);
	retl_rate_observe(rl, 0, 4, -1);
	CHECK(retl_rate_max(rl) == 4);
	n = simulate(rl, 10, 1, &most);
	CHECK(most <= 4);
	retl_rate_free(rl);

	/* the server says fewer remain than we counted: the window fills */
	rl = retl_rate_new(10, 1, 0);
	retl_rate_take(rl, 0);
	retl_rate_observe(rl, 0.1, 10, 2);      /* server: 8 used, we: 1 */
	retl_rate_take(rl, 0.1);
	retl_rate_take(rl, 0.1);
	CHECK(retl_rate_delay(rl, 0.2) > 0.7);
	retl_rate_free(rl);

	/* a pause (429 Retry-After) holds every start */
	rl = retl_rate_new(100, 10, 0);
	retl_rate_pause(rl, 5, 3);
	CHECK(fabs(retl_rate_delay(rl, 5) - 3) < 1e-9);
	CHECK(retl_rate_delay(rl, 8.5) == 0);
	retl_rate_free(rl);

	/* unlimited */
	rl = retl_rate_new(0, 10, 0);
	for (int i = 0; i < 1000; i++)
		retl_rate_take(rl, 0);
	CHECK(retl_rate_delay(rl, 0) == 0);
	retl_rate_free(rl);

	TEST_DONE();
}
