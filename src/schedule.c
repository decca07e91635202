/*
 * schedule.c - cron and interval schedules, see schedule.h.
 *
 * A cron expression becomes one bit set per field; the next run is found
 * day by day (month and day rules), then hour and minute within the first
 * matching day, so a leap-day schedule costs at most a few thousand day
 * steps, never a minute-by-minute scan.  Everything is UTC (timegm).
 */
#include "schedule.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

struct field {
	const char *name;
	int lo, hi;
	const char *const *names; /* index = value - names_base */
	int names_base;
};

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const dow_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

static const struct field fields[5] = {
	{ "minute", 0, 59, NULL, 0 },
	{ "hour", 0, 23, NULL, 0 },
	{ "day-of-month", 1, 31, NULL, 0 },
	{ "month", 1, 12, month_names, 1 },
	/* 7 is Sunday too; folded into bit 0 after parsing */
	{ "day-of-week", 0, 7, dow_names, 0 },
};

/* a number or a name at *p; advances *p */
static int atom(const struct field *f, const char **p, int *out,
		struct retl_err *err)
{
	const char *s = *p;

	if (isdigit((unsigned char)*s)) {
		long v = 0;
		while (isdigit((unsigned char)*s)) {
			v = v * 10 + (*s++ - '0');
			if (v > 1000)
				break;
		}
		while (isdigit((unsigned char)*s))
			s++;
		if (v < f->lo || v > f->hi)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: %.*s is out of range (%d-%d)",
					    f->name, (int)(s - *p), *p, f->lo,
					    f->hi);
		*out = (int)v;
		*p = s;
		return 0;
	}
	if (isalpha((unsigned char)*s)) {
		while (isalpha((unsigned char)*s))
			s++;
		if (f->names && s - *p == 3) {
			for (int i = 0; f->names[i]; i++) {
				if (!strncasecmp(f->names[i], *p, 3)) {
					*out = i + f->names_base;
					*p = s;
					return 0;
				}
			}
		}
		if (!f->names)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: \"%.*s\" is not a number",
					    f->name, (int)(s - *p), *p);
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: unknown name \"%.*s\" (expected %s)",
				    f->name, (int)(s - *p), *p,
				    f->names == month_names ? "jan-dec" :
				    "sun-sat");
	}
	if (!*s || *s == ',')
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: empty list item", f->name);
	return retl_err_set(err, RETL_EXIT_USAGE, "%s: unexpected '%c'",
			    f->name, *s);
}

/* one field ("*", "1,5-9", "10-50/15", "mon-fri", a star with a step)
 * into bits */
static int parse_field(const struct field *f, const char *text,
		       uint64_t *bits, int *star, struct retl_err *err)
{
	const char *p = text;

	*bits = 0;
	*star = *p == '*';
	for (;;) {
		int a, b, step = 1, single = 0;

		if (*p == '*') {
			a = f->lo;
			b = f->hi == 7 ? 6 : f->hi;
			p++;
		} else {
			if (atom(f, &p, &a, err) < 0)
				return -1;
			b = a;
			single = *p != '-';
			if (*p == '-') {
				p++;
				if (atom(f, &p, &b, err) < 0)
					return -1;
				if (b < a)
					return retl_err_set(err, RETL_EXIT_USAGE,
							    "%s: range %d-%d is backwards",
							    f->name, a, b);
			}
		}
		if (*p == '/') {
			const char *s = ++p;
			long v = 0;
			while (isdigit((unsigned char)*p) && v <= 1000)
				v = v * 10 + (*p++ - '0');
			while (isdigit((unsigned char)*p))
				p++;
			if (p == s)
				return retl_err_set(err, RETL_EXIT_USAGE,
						    "%s: a step needs a number after '/'",
						    f->name);
			if (v < 1 || v > f->hi - f->lo + 1)
				return retl_err_set(err, RETL_EXIT_USAGE,
						    "%s: step %.*s is out of range (1-%d)",
						    f->name, (int)(p - s), s,
						    f->hi - f->lo + 1);
			step = (int)v;
			/* "5/15" = from 5 to the end, every 15 (as cronie).
			 * The end is the field's own (7 for day-of-week:
			 * "7/5" is Sunday), or a start at 7 would give an
			 * empty set */
			if (single)
				b = f->hi;
		}
		for (int v = a; v <= b; v += step)
			*bits |= 1ull << v;
		if (!*p)
			break;
		if (*p != ',')
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: unexpected '%c'", f->name, *p);
		p++;
	}
	return 0;
}

static int days_in_month(int month, int year)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	return month == 2 ? 28 + leap : d[month - 1];
}

static int parse_every(struct retl_schedule *s, const char *rest,
		       struct retl_err *err)
{
	const char *p = rest;
	long v = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!isdigit((unsigned char)*p))
		goto bad;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (*p++ - '0');
		if (v > 100000000)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "interval \"%s\" is too long", rest);
	}
	while (*p == ' ')
		p++;
	long unit;
	switch (*p) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: goto bad;
	}
	if (p[1])
		goto bad;
	if (v == 0)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "an interval must be at least 1s");
	s->kind = RETL_SCHED_EVERY;
	s->every = v * unit;
	return 0;
bad:
	return retl_err_set(err, RETL_EXIT_USAGE,
			    "expected \"every N\" with a unit s, m, h or d "
			    "(e.g. \"every 15m\"), not \"every%s%s\"",
			    *rest ? " " : "", rest);
}

static const struct { const char *name, *expr; } macros[] = {
	{ "@hourly", "0 * * * *" },
	{ "@daily", "0 0 * * *" },
	{ "@midnight", "0 0 * * *" },
	{ "@weekly", "0 0 * * 0" },
	{ "@monthly", "0 0 1 * *" },
	{ "@yearly", "0 0 1 1 *" },
	{ "@annually", "0 0 1 1 *" },
};

int retl_schedule_parse(struct retl_schedule *s, const char *expr,
			struct retl_err *err)
{
	char *copy, *tok[6], *save = NULL;
	int n = 0, rc = -1;

	memset(s, 0, sizeof(*s));
	while (*expr == ' ' || *expr == '\t')
		expr++;
	if (!strncmp(expr, "every", 5) && (!expr[5] || expr[5] == ' '))
		return parse_every(s, expr + 5 + (expr[5] == ' '), err);
	if (*expr == '@') {
		for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
			if (!strcmp(expr, macros[i].name))
				return retl_schedule_parse(s, macros[i].expr, err);
		return retl_err_set(err, RETL_EXIT_USAGE, "unknown macro \"%s\" "
				    "(expected @hourly, @daily, @weekly, "
				    "@monthly or @yearly)", expr);
	}
	copy = retl_strdup(expr);
	for (char *t = strtok_r(copy, " \t", &save); t && n < 6;
	     t = strtok_r(NULL, " \t", &save))
		tok[n++] = t;
	if (n != 5) {
		retl_err_set(err, RETL_EXIT_USAGE, "expected 5 fields (minute "
			     "hour day-of-month month day-of-week) or \"every "
			     "N\" (s, m, h, d), got %s%d field%s",
			     n > 5 ? "more than " : "", n > 5 ? 5 : n,
			     n == 1 ? "" : "s");
		goto out;
	}
	uint64_t bits[5];
	int star[5];
	for (int i = 0; i < 5; i++) {
		if (parse_field(&fields[i], tok[i], &bits[i], &star[i], err) < 0)
			goto out;
		if (!bits[i]) {
			retl_err_set(err, RETL_EXIT_USAGE, "never matches: %s "
				     "\"%s\" is empty", fields[i].name, tok[i]);
			goto out;
		}
	}
	s->kind = RETL_SCHED_CRON;
	s->minute = bits[0];
	s->hour = (uint32_t)bits[1];
	s->dom = (uint32_t)bits[2];
	s->month = (uint32_t)bits[3];
	s->dow = (uint32_t)(bits[4] & 0x7f) | (uint32_t)(bits[4] >> 7 & 1);
	s->dom_star = star[2];
	s->dow_star = star[4];
	/* when day-of-month and day-of-week are ANDed, a day-of-month that
	 * none of the months has never matches (every weekday comes round
	 * on every date within the 400-year cycle, so only the dates count) */
	if (s->dom_star || s->dow_star) {
		int ok = 0;
		for (int m = 1; m <= 12 && !ok; m++)
			for (int d = 1; d <= days_in_month(m, 2000) && !ok; d++)
				ok = (s->month >> m & 1) && (s->dom >> d & 1);
		if (!ok) {
			retl_err_set(err, RETL_EXIT_USAGE, "never matches: "
				     "day-of-month %s does not occur in month "
				     "%s", tok[2], tok[3]);
			goto out;
		}
	}
	/* whatever the fields, a schedule with no next time is refused here,
	 * never found "due" later */
	if (retl_schedule_next(s, 0) < 0) {
		retl_err_set(err, RETL_EXIT_USAGE, "never matches: \"%s\"", expr);
		goto out;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

static int day_matches(const struct retl_schedule *s, const struct tm *tm)
{
	int dom = s->dom >> tm->tm_mday & 1;
	int dow = s->dow >> tm->tm_wday & 1;

	if (!(s->month >> (tm->tm_mon + 1) & 1))
		return 0;
	return s->dom_star || s->dow_star ? dom && dow : dom || dow;
}

/* 400 Gregorian years repeat every weekday and leap day */
#define MAX_DAYS (400 * 366)

time_t retl_schedule_next(const struct retl_schedule *s, time_t after)
{
	struct tm tm;
	time_t day;
	int first = 1;

	if (s->kind == RETL_SCHED_EVERY)
		return after + s->every;
	/* from the next whole minute */
	after = after - (after % 60 + 60) % 60 + 60;
	gmtime_r(&after, &tm);
	day = after - (tm.tm_hour * 3600 + tm.tm_min * 60);
	for (int n = 0; n < MAX_DAYS; n++, day += 86400, first = 0) {
		gmtime_r(&day, &tm);
		if (!day_matches(s, &tm))
			continue;
		int h0 = 0, m0 = 0;
		if (first) {
			struct tm a;
			gmtime_r(&after, &a);
			h0 = a.tm_hour;
			m0 = a.tm_min;
		}
		for (int h = h0; h < 24; h++) {
			if (!(s->hour >> h & 1))
				continue;
			for (int m = h == h0 ? m0 : 0; m < 60; m++)
				if (s->minute >> m & 1)
					return day + h * 3600 + m * 60;
		}
	}
	return -1;
}
