/*
 * schedule.h - when a sync runs under `retl daemon`: a 5-field cron
 * expression in UTC, an "@daily"-style macro, or an interval.
 *
 *   "0,30 * * * *"     minute hour day-of-month month day-of-week
 *   "10-50/15 9 * * *"  steps: a-b/n, and * followed by /n
 *   "0 6 * * mon-fri"  lists, ranges, steps, names (jan-dec, sun-sat)
 *   "@hourly"          @hourly @daily @weekly @monthly @yearly @annually
 *   "every 15m"        every N s|m|h|d, counted from the last start
 *
 * Cron follows Vixie cron: 0 and 7 are Sunday; when both day-of-month and
 * day-of-week are restricted a day matches if EITHER does, and a field
 * that begins with '*' (a bare star, or a star with a step) counts as unrestricted for that
 * rule.  A cron expression that can never match (e.g. "0 0 31 2 *") is a
 * parse error.
 */
#ifndef RETL_SCHEDULE_H
#define RETL_SCHEDULE_H

#include <stdint.h>
#include <time.h>

#include "err.h"

enum retl_schedule_kind { RETL_SCHED_CRON, RETL_SCHED_EVERY };

struct retl_schedule {
	enum retl_schedule_kind kind;
	long every;               /* RETL_SCHED_EVERY: seconds */
	uint64_t minute;          /* bit n: minute n (0-59) */
	uint32_t hour;            /* 0-23 */
	uint32_t dom;             /* 1-31 */
	uint32_t month;           /* 1-12 */
	uint32_t dow;             /* 0-6, Sunday = 0 */
	int dom_star, dow_star;   /* the field began with '*' */
};

/*
 * Parses expr.  On error returns -1 and err->msg says what is wrong,
 * without a file or path prefix (config.c adds "mappings/x.json:
 * schedule: "); err->code is RETL_EXIT_USAGE.
 */
int retl_schedule_parse(struct retl_schedule *s, const char *expr,
			struct retl_err *err);

/*
 * Cron: the first matching minute strictly after `after` (UTC).  Interval:
 * after + every.  -1 when none exists (cannot happen for a parsed
 * schedule).
 */
time_t retl_schedule_next(const struct retl_schedule *s, time_t after);

#endif
