/*
 * fuzz_schedule.c - schedules (src/schedule.c): the input is an expression
 * (cron, @macro or "every N<unit>").  A parsed schedule must always have a
 * next time, strictly later, that the schedule matches; asking for it must
 * end (libFuzzer's -timeout reports a search that does not).
 */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "fuzz.h"
#include "schedule.h"

/* the minute t falls on matches s's fields (Vixie's either-day rule) */
static int cron_matches(const struct retl_schedule *s, time_t t)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	if (t % 60 || !(s->minute >> tm.tm_min & 1) || !(s->hour >> tm.tm_hour & 1) ||
	    !(s->month >> (tm.tm_mon + 1) & 1))
		return 0;
	int dom = s->dom >> tm.tm_mday & 1, dow = s->dow >> tm.tm_wday & 1;
	if (s->dom_star || s->dow_star)
		return dom && dow;
	return dom || dow;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* from the last minute of a leap year, a DST-free epoch start, a
	 * 32-bit-edge time, and now-ish */
	static const time_t from[] = { 1609459199, 0, 2147483000, 1714557600 };
	struct retl_schedule s;
	struct retl_err err;
	if (size > 512)
		return 0;
	char *expr = retl_strndup((const char *)data, size);
	retl_err_clear(&err);
	memset(&s, 0, sizeof(s));
	if (retl_schedule_parse(&s, expr, &err) == 0) {
		for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
			time_t n = retl_schedule_next(&s, from[i]);
			if (n <= from[i])
				fz_fail("a parsed schedule has no next time after", expr);
			if (s.kind == RETL_SCHED_CRON && !cron_matches(&s, n))
				fz_fail("the next time does not match the schedule", expr);
		}
	} else if (!err.msg[0]) {
		fz_fail("a refused schedule without a message", expr);
	}
	free(expr);
	return 0;
}
