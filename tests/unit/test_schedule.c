/*
 * test_schedule.c - cron and interval schedules: next-run times on a table
 * of expressions and start times (month ends, leap days, the day-of-month /
 * day-of-week rules, steps), and the messages of bad expressions.
 */
#include <stdlib.h>
#include <time.h>

#include "schedule.h"
#include "test.h"

/* "2024-02-29 13:05:30" (UTC) -> time_t */
static time_t at(const char *s)
{
	struct tm tm = { 0 };
	int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon,
		       &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec);
	if (n < 5)
		abort();
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

static const char *fmt(time_t t, char *buf, size_t n)
{
	struct tm tm;
	if (t < 0)
		return "never";
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

static const struct {
	const char *expr, *after, *next;
} nexts[] = {
	/* strictly after; cron fires on whole minutes */
	{ "*/15 * * * *", "2024-01-01 00:00:00", "2024-01-01 00:15:00" },
	{ "*/15 * * * *", "2024-01-01 00:07:30", "2024-01-01 00:15:00" },
	{ "*/15 * * * *", "2024-01-01 23:59:59", "2024-01-02 00:00:00" },
	/* month and year ends */
	{ "0 0 * * *", "2024-01-31 23:59:00", "2024-02-01 00:00:00" },
	{ "59 23 31 12 *", "2024-12-31 23:59:00", "2025-12-31 23:59:00" },
	{ "0 0 1 * *", "2024-02-29 12:00:00", "2024-03-01 00:00:00" },
	{ "0 12 31 * *", "2024-04-01 00:00:00", "2024-05-31 12:00:00" },
	{ "0 0 31 * *", "2024-01-31 00:00:00", "2024-03-31 00:00:00" },
	{ "0 0 30 * *", "2024-01-31 00:00:00", "2024-03-30 00:00:00" },
	/* leap days: every 4 years, but not 2100 */
	{ "0 0 29 2 *", "2023-06-01 00:00:00", "2024-02-29 00:00:00" },
	{ "0 0 29 2 *", "2024-03-01 00:00:00", "2028-02-29 00:00:00" },
	{ "0 0 29 2 *", "2096-03-01 00:00:00", "2104-02-29 00:00:00" },
	{ "0 0 29 feb *", "2024-02-29 00:00:00", "2028-02-29 00:00:00" },
	/* steps */
	{ "*/7 * * * *", "2024-01-01 00:56:00", "2024-01-01 01:00:00" },
	{ "*/7 * * * *", "2024-01-01 00:49:00", "2024-01-01 00:56:00" },
	{ "10-50/15 * * * *", "2024-01-01 00:10:00", "2024-01-01 00:25:00" },
	{ "10-50/15 * * * *", "2024-01-01 00:40:00", "2024-01-01 01:10:00" },
	{ "5/20 * * * *", "2024-01-01 00:45:00", "2024-01-01 01:05:00" },
	{ "0 */6 * * *", "2024-01-01 18:00:00", "2024-01-02 00:00:00" },
	{ "0 0 1 jan-mar/2 *", "2024-01-01 00:00:00", "2024-03-01 00:00:00" },
	/* day of week: names, 7 = Sunday, ranges */
	{ "0 9 * * mon-fri", "2024-01-05 10:00:00", "2024-01-08 09:00:00" },
	{ "0 0 * * 7", "2024-01-01 00:00:00", "2024-01-07 00:00:00" },
	{ "0 0 * * sat,sun", "2024-01-01 00:00:00", "2024-01-06 00:00:00" },
	{ "0 0 * * 5-7", "2024-01-06 00:00:00", "2024-01-07 00:00:00" },
	/* a step from 7 (issue 13: "7/5" was an empty set, accepted, and
	 * the daemon took "no next time" as due) */
	{ "0 9 * * 7/5", "2024-01-01 00:00:00", "2024-01-07 09:00:00" },
	{ "0 9 * * 6/1", "2024-01-06 10:00:00", "2024-01-07 09:00:00" },
	/* both restricted: either matches (Vixie) */
	{ "0 0 13 * fri", "2024-01-01 00:00:00", "2024-01-05 00:00:00" },
	{ "0 0 13 * fri", "2024-01-12 00:00:00", "2024-01-13 00:00:00" },
	{ "30 4 1,15 * 7", "2024-01-02 00:00:00", "2024-01-07 04:30:00" },
	{ "0 0 31 2 mon", "2024-01-01 00:00:00", "2024-02-05 00:00:00" },
	/* day-of-month starting with '*': both must match */
	{ "0 0 */2 * fri", "2024-01-06 00:00:00", "2024-01-19 00:00:00" },
	{ "0 0 * * fri", "2024-01-06 00:00:00", "2024-01-12 00:00:00" },
	/* macros and intervals */
	{ "@hourly", "2024-01-01 00:30:00", "2024-01-01 01:00:00" },
	{ "@weekly", "2024-01-01 00:00:00", "2024-01-07 00:00:00" },
	{ "@yearly", "2024-01-01 00:00:00", "2025-01-01 00:00:00" },
	{ "every 30s", "2024-01-01 00:00:10", "2024-01-01 00:00:40" },
	{ "every 15m", "2024-01-01 00:00:10", "2024-01-01 00:15:10" },
	{ "every 2h", "2024-01-01 23:00:00", "2024-01-02 01:00:00" },
	{ "every 1d", "2024-02-28 06:00:00", "2024-02-29 06:00:00" },
	{ "  0   0  *  *  *  ", "2024-01-01 00:00:00", "2024-01-02 00:00:00" },
};

static const struct {
	const char *expr, *msg;
} bad[] = {
	{ "", "expected 5 fields (minute hour day-of-month month day-of-week) or \"every N\" (s, m, h, d), got 0 fields" },
	{ "* * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or \"every N\" (s, m, h, d), got 4 fields" },
	{ "* * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or \"every N\" (s, m, h, d), got more than 5 fields" },
	{ "60 * * * *", "minute: 60 is out of range (0-59)" },
	{ "* 24 * * *", "hour: 24 is out of range (0-23)" },
	{ "* * 0 * *", "day-of-month: 0 is out of range (1-31)" },
	{ "* * * 13 *", "month: 13 is out of range (1-12)" },
	{ "* * * * 8", "day-of-week: 8 is out of range (0-7)" },
	{ "* * * foo *", "month: unknown name \"foo\" (expected jan-dec)" },
	{ "* * * * funday", "day-of-week: unknown name \"funday\" (expected sun-sat)" },
	{ "a * * * *", "minute: \"a\" is not a number" },
	{ "*/0 * * * *", "minute: step 0 is out of range (1-60)" },
	{ "*/ * * * *", "minute: a step needs a number after '/'" },
	{ "30-10 * * * *", "minute: range 30-10 is backwards" },
	{ "1,,2 * * * *", "minute: empty list item" },
	{ "1-2-3 * * * *", "minute: unexpected '-'" },
	{ "0 0 31 2 *", "never matches: day-of-month 31 does not occur in month 2" },
	{ "0 0 30,31 feb *", "never matches: day-of-month 30,31 does not occur in month feb" },
	{ "0 0 31 apr,jun,sep,nov *", "never matches: day-of-month 31 does not occur in month apr,jun,sep,nov" },
	{ "every 0s", "an interval must be at least 1s" },
	{ "every 15x", "expected \"every N\" with a unit s, m, h or d (e.g. \"every 15m\"), not \"every 15x\"" },
	{ "every", "expected \"every N\" with a unit s, m, h or d (e.g. \"every 15m\"), not \"every\"" },
	{ "every 15m please", "expected \"every N\" with a unit s, m, h or d (e.g. \"every 15m\"), not \"every 15m please\"" },
	{ "@fortnightly", "unknown macro \"@fortnightly\" (expected @hourly, @daily, @weekly, @monthly or @yearly)" },
};

int main(void)
{
	char b1[64], b2[64];

	for (size_t i = 0; i < sizeof(nexts) / sizeof(nexts[0]); i++) {
		struct retl_schedule s;
		struct retl_err err;
		retl_err_clear(&err);
		int rc = retl_schedule_parse(&s, nexts[i].expr, &err);
		if (rc < 0)
			fprintf(stderr, "\"%s\": %s\n", nexts[i].expr, err.msg);
		CHECK(rc == 0);
		if (rc < 0)
			continue;
		time_t got = retl_schedule_next(&s, at(nexts[i].after));
		if (got != at(nexts[i].next))
			fprintf(stderr, "\"%s\" after %s:\n", nexts[i].expr,
				nexts[i].after);
		CHECK_STR(fmt(got, b1, sizeof(b1)),
			  fmt(at(nexts[i].next), b2, sizeof(b2)));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct retl_schedule s;
		struct retl_err err;
		retl_err_clear(&err);
		CHECK(retl_schedule_parse(&s, bad[i].expr, &err) < 0);
		CHECK(err.code == RETL_EXIT_USAGE);
		CHECK_STR(err.msg, bad[i].msg);
	}
	/* a chain of next times never repeats and always moves forward */
	{
		struct retl_schedule s;
		struct retl_err err;
		time_t t = at("2023-12-31 23:00:00");
		CHECK(retl_schedule_parse(&s, "*/7 1-2 * * *", &err) == 0);
		int count = 0;
		while (t < at("2024-01-01 03:00:00")) {
			time_t n = retl_schedule_next(&s, t);
			CHECK(n > t);
			t = n;
			count++;
		}
		/* 9 minutes (0..56) in each of hours 1 and 2, then 01:00 the
		 * next day ends the loop */
		CHECK(count == 19);
	}
	TEST_DONE();
}
