/*
 * cast.c - PostgreSQL text -> retl's neutral JSON renderings (see cast.h).
 *
 * What each type accepts (PostgreSQL text output, TimeZone=UTC, DateStyle=ISO):
 *
 *   string    any valid UTF-8; emitted as a JSON string.
 *   integer   an optional sign, digits, an optional fraction and exponent,
 *             as long as the value is integral and fits int64: "-42",
 *             "42.0", "1e+06" (float8 output) -> 42 / 1000000.  "4.2", "t",
 *             "9223372036854775808" are rejected.  Computed on the digits,
 *             never through a double, so no precision is lost.
 *   number    the digits the database gave, made valid JSON if needed:
 *             "12.50" stays 12.50, ".5" -> 0.5, "+7" -> 7, "007" -> 7,
 *             "5." -> 5, "1E5" -> 1e5.  NaN and (-)Infinity are rejected:
 *             JSON cannot carry them.
 *   boolean   t f true false yes no on off 1 0, any case.
 *   date      "YYYY-MM-DD" or a timestamp; a timestamp with an offset is
 *             moved to UTC first, then its date taken.
 *   datetime  "YYYY-MM-DD[ T]HH:MM[:SS][.fraction][Z|+HH[[:]MM[[:]SS]]]" or a
 *             bare date (-> T00:00:00Z); emitted "YYYY-MM-DDTHH:MM:SS[.f]Z"
 *             in UTC, the fraction kept as given.  Ranges are validated;
 *             years outside 0001..9999 (BC, infinity) are rejected.
 *   json      parsed with jansson and re-emitted canonically: compact, keys
 *             sorted by bytes, reals in their shortest round-trip form.
 *             Integers beyond int64 are rejected (jansson's limit).
 */
#include "cast.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------ */

/* length of the valid UTF-8 sequence at s, 0 if there is none */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c < 0xC2 || c > 0xF4)
		return 0;
	if (c < 0xE0)
		return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c < 0xF0) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
			return 0;
		return 3;
	}
	if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
	    (s[3] & 0xC0) != 0x80)
		return 0;
	if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
		return 0;
	return 4;
}

int retl_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		/* ASCII fast path, 8 bytes at a time */
		while (i + 8 <= len) {
			uint64_t w;
			memcpy(&w, p + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= len)
			break;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_seq(p + i, len - i);
		if (!k)
			return 0;
		i += k;
	}
	return 1;
}

size_t retl_utf8_count(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

size_t retl_utf8_prefix_chars(const char *s, size_t len, size_t n)
{
	size_t seen = 0;
	for (size_t i = 0; i < len; i++) {
		if (((unsigned char)s[i] & 0xC0) != 0x80) {
			if (seen == n)
				return i;
			seen++;
		}
	}
	return len;
}

size_t retl_utf8_prefix_bytes(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t i = max;
	/* back up while s[i] continues a code point started before it */
	while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80 && max - i < 4)
		i--;
	return i;
}

void retl_cast_add_excerpt(retl_buf *b, const char *s, size_t len)
{
	size_t n = retl_utf8_prefix_bytes(s, len, 100);
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t k = utf8_seq(p + i, n - i);
		if (!k) {
			retl_buf_addc(b, '?');
			i++;
		} else {
			retl_buf_add(b, s + i, k);
			i += k;
		}
	}
	if (n < len)
		retl_buf_adds(b, "...");
}

/* ---- numbers ---------------------------------------------------------- */

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* sign, integer digits, fraction digits, exponent: the parts of a number */
struct num {
	int neg;
	const char *ip, *fp, *ep; /* ep includes the exponent's sign */
	size_t il, fl, el;
};

static int parse_num(const char *s, size_t n, struct num *x)
{
	size_t i = 0;
	memset(x, 0, sizeof(*x));
	if (i < n && (s[i] == '-' || s[i] == '+'))
		x->neg = s[i++] == '-';
	x->ip = s + i;
	while (i < n && is_digit(s[i]))
		i++;
	x->il = (size_t)(s + i - x->ip);
	x->fp = s + i;
	if (i < n && s[i] == '.') {
		x->fp = s + ++i;
		while (i < n && is_digit(s[i]))
			i++;
		x->fl = (size_t)(s + i - x->fp);
	}
	if (!x->il && !x->fl)
		return -1;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		x->ep = s + ++i;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t d = i;
		while (i < n && is_digit(s[i]))
			i++;
		if (i == d)
			return -1;
		x->el = (size_t)(s + i - x->ep);
	}
	return i == n ? 0 : -1;
}

/* beyond a double's range ("7e+5988003939" from text typed number, or a
 * numeric of 400 digits): no API takes it, and JSON readers refuse it
 * (found by fuzz_mapping).  Only a number with an exponent or over 300
 * integer digits can be, so the common ones cost nothing. */
static int overflows(const struct num *x, const char *s, size_t n)
{
	if (!x->el && x->il <= 300)
		return 0;
	char *t = retl_strndup(s, n);
	int inf = isinf(strtod(t, NULL));
	free(t);
	return inf;
}

static int cast_number(const char *s, size_t n, retl_buf *out)
{
	struct num x;
	if (parse_num(s, n, &x) < 0 || overflows(&x, s, n))
		return RETL_CAST_FAILED;
	while (x.il > 1 && x.ip[0] == '0') {
		x.ip++;
		x.il--;
	}
	if (x.neg)
		retl_buf_addc(out, '-');
	if (x.il)
		retl_buf_add(out, x.ip, x.il);
	else
		retl_buf_addc(out, '0');
	if (x.fl) {
		retl_buf_addc(out, '.');
		retl_buf_add(out, x.fp, x.fl);
	}
	if (x.el) {
		retl_buf_addc(out, 'e');
		retl_buf_add(out, x.ep, x.el);
	}
	return 0;
}

static char num_digit(const struct num *x, size_t k)
{
	return k < x->il ? x->ip[k] : x->fp[k - x->il];
}

static int cast_integer(const char *s, size_t n, retl_buf *out)
{
	struct num x;
	if (parse_num(s, n, &x) < 0)
		return RETL_CAST_FAILED;
	long exp = 0;
	if (x.el) {
		size_t i = x.ep[0] == '+' || x.ep[0] == '-';
		for (; i < x.el; i++)
			if (exp < 100000)
				exp = exp * 10 + (x.ep[i] - '0');
		if (x.ep[0] == '-')
			exp = -exp;
	}
	size_t total = x.il + x.fl, first = total, last = 0;
	for (size_t k = 0; k < total; k++) {
		if (num_digit(&x, k) != '0') {
			if (first == total)
				first = k;
			last = k;
		}
	}
	if (first == total) {
		retl_buf_addc(out, '0');
		return 0;
	}
	/* value = digits[first..last] * 10^e10 */
	long sig = (long)(last - first + 1);
	long e10 = exp - (long)x.fl + (long)(total - 1 - last);
	if (e10 < 0 || sig + e10 > 19)
		return RETL_CAST_FAILED;
	char d[20];
	size_t dl = 0;
	for (size_t k = first; k <= last; k++)
		d[dl++] = num_digit(&x, k);
	for (long z = 0; z < e10; z++)
		d[dl++] = '0';
	d[dl] = '\0';
	if (dl == 19 &&
	    strcmp(d, x.neg ? "9223372036854775808" : "9223372036854775807") > 0)
		return RETL_CAST_FAILED;
	if (x.neg)
		retl_buf_addc(out, '-');
	retl_buf_add(out, d, dl);
	return 0;
}

static int cast_boolean(const char *s, size_t n, retl_buf *out)
{
	static const char *const yes[] = { "t", "true", "yes", "on", "1" };
	static const char *const no[] = { "f", "false", "no", "off", "0" };
	char low[6];
	if (!n || n > 5)
		return RETL_CAST_FAILED;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
	low[n] = '\0';
	for (size_t i = 0; i < 5; i++) {
		if (!strcmp(low, yes[i])) {
			retl_buf_add(out, "true", 4);
			return 0;
		}
		if (!strcmp(low, no[i])) {
			retl_buf_add(out, "false", 5);
			return 0;
		}
	}
	return RETL_CAST_FAILED;
}

/* ---- dates and times -------------------------------------------------- */

struct tstamp {
	int y, mo, d, h, mi, sec;
	const char *frac;
	size_t fraclen;
	long off; /* seconds east of UTC */
};

static int num2(const char *s, size_t n, size_t i, int *v)
{
	if (i + 2 > n || !is_digit(s[i]) || !is_digit(s[i + 1]))
		return -1;
	*v = (s[i] - '0') * 10 + (s[i + 1] - '0');
	return 0;
}

static int leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int mdays(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && leap(y) ? 29 : days[m - 1];
}

static int parse_offset(const char *s, size_t n, size_t i, long *off)
{
	if (i == n)
		return 0;
	if (s[i] == 'Z' || s[i] == 'z')
		return i + 1 == n ? 0 : -1;
	if (s[i] != '+' && s[i] != '-')
		return -1;
	int neg = s[i++] == '-', h, m = 0, sec = 0;
	if (num2(s, n, i, &h) < 0 || h > 15)
		return -1;
	i += 2;
	if (i < n) {
		i += s[i] == ':';
		if (num2(s, n, i, &m) < 0 || m > 59)
			return -1;
		i += 2;
	}
	if (i < n) {
		i += s[i] == ':';
		if (num2(s, n, i, &sec) < 0 || sec > 59)
			return -1;
		i += 2;
	}
	if (i != n)
		return -1;
	*off = (neg ? -1 : 1) * ((long)h * 3600 + m * 60 + sec);
	return 0;
}

static int parse_tstamp(const char *s, size_t n, struct tstamp *t)
{
	int c1, c2;
	memset(t, 0, sizeof(*t));
	if (n < 10 || num2(s, n, 0, &c1) < 0 || num2(s, n, 2, &c2) < 0 ||
	    s[4] != '-' || num2(s, n, 5, &t->mo) < 0 || s[7] != '-' ||
	    num2(s, n, 8, &t->d) < 0)
		return -1;
	t->y = c1 * 100 + c2;
	if (t->y < 1 || t->mo < 1 || t->mo > 12 || t->d < 1 ||
	    t->d > mdays(t->y, t->mo))
		return -1;
	if (n == 10)
		return 0;
	size_t i = 11;
	if ((s[10] != ' ' && s[10] != 'T') || num2(s, n, i, &t->h) < 0 ||
	    t->h > 23 || i + 2 >= n || s[i + 2] != ':' ||
	    num2(s, n, i + 3, &t->mi) < 0 || t->mi > 59)
		return -1;
	i += 5;
	if (i < n && s[i] == ':') {
		if (num2(s, n, i + 1, &t->sec) < 0 || t->sec > 59)
			return -1;
		i += 3;
		if (i < n && s[i] == '.') {
			t->frac = s + ++i;
			while (i < n && is_digit(s[i]))
				i++;
			t->fraclen = (size_t)(s + i - t->frac);
			if (!t->fraclen)
				return -1;
		}
	}
	return parse_offset(s, n, i, &t->off);
}

/* Howard Hinnant's days_from_civil / civil_from_days */
static long days_from_civil(long y, int m, int d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, int *y, int *m, int *d)
{
	z += 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	long doe = z - era * 146097;
	long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int to_utc(struct tstamp *t)
{
	if (!t->off)
		return 0;
	long secs = days_from_civil(t->y, t->mo, t->d) * 86400L +
		    t->h * 3600L + t->mi * 60L + t->sec - t->off;
	long days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	long rem = secs - days * 86400;
	civil_from_days(days, &t->y, &t->mo, &t->d);
	t->h = (int)(rem / 3600);
	t->mi = (int)(rem / 60 % 60);
	t->sec = (int)(rem % 60);
	t->off = 0;
	return t->y >= 1 && t->y <= 9999 ? 0 : -1;
}

static char *put(char *p, int v, int width)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + width;
}

static int cast_date(enum retl_type t, const char *s, size_t n, retl_buf *out)
{
	struct tstamp ts;
	char tmp[32], *p = tmp;
	if (parse_tstamp(s, n, &ts) < 0 || to_utc(&ts) < 0)
		return RETL_CAST_FAILED;
	*p++ = '"';
	p = put(p, ts.y, 4);
	*p++ = '-';
	p = put(p, ts.mo, 2);
	*p++ = '-';
	p = put(p, ts.d, 2);
	if (t == RETL_TYPE_DATE) {
		*p++ = '"';
		retl_buf_add(out, tmp, (size_t)(p - tmp));
		return 0;
	}
	*p++ = 'T';
	p = put(p, ts.h, 2);
	*p++ = ':';
	p = put(p, ts.mi, 2);
	*p++ = ':';
	p = put(p, ts.sec, 2);
	retl_buf_add(out, tmp, (size_t)(p - tmp));
	if (ts.fraclen) {
		retl_buf_addc(out, '.');
		retl_buf_add(out, ts.frac, ts.fraclen);
	}
	retl_buf_add(out, "Z\"", 2);
	return 0;
}

/* ---- json ------------------------------------------------------------- */

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * A real, so that equal numbers give equal text and the text, read again,
 * gives itself (issue 13: -0.0 became "-0", then 0; 100.0 became "1e+02"
 * while 100 stayed "100": needless re-sends).  A whole number that fits a
 * JSON integer is written as one (what jansson reads back as an integer:
 * "100", and "0" for -0.0); any other value as the shortest %g that reads
 * back as the same double.
 */
static void add_real(retl_buf *out, double v)
{
	char tmp[40];
	if (v == floor(v) && fabs(v) < 9.2e18) {
		retl_buf_addf(out, "%" JSON_INTEGER_FORMAT, (json_int_t)v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	retl_buf_adds(out, tmp);
}

static void dump_canonical(const json_t *j, retl_buf *out)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		size_t n = json_object_size(j), i = 0;
		const char **keys = retl_malloc(n * sizeof(*keys));
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)j, k, v)
			keys[i++] = k;
		qsort(keys, n, sizeof(*keys), cmp_keys);
		retl_buf_addc(out, '{');
		for (i = 0; i < n; i++) {
			if (i)
				retl_buf_addc(out, ',');
			retl_buf_add_json_str(out, keys[i], strlen(keys[i]));
			retl_buf_addc(out, ':');
			dump_canonical(json_object_get(j, keys[i]), out);
		}
		retl_buf_addc(out, '}');
		free(keys);
		break;
	}
	case JSON_ARRAY:
		retl_buf_addc(out, '[');
		for (size_t i = 0; i < json_array_size(j); i++) {
			if (i)
				retl_buf_addc(out, ',');
			dump_canonical(json_array_get(j, i), out);
		}
		retl_buf_addc(out, ']');
		break;
	case JSON_STRING:
		retl_buf_add_json_str(out, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		retl_buf_addf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		break;
	case JSON_REAL:
		add_real(out, json_real_value(j));
		break;
	case JSON_TRUE:
		retl_buf_add(out, "true", 4);
		break;
	case JSON_FALSE:
		retl_buf_add(out, "false", 5);
		break;
	case JSON_NULL:
		retl_buf_add(out, "null", 4);
		break;
	}
}

static int cast_json(const char *s, size_t n, retl_buf *out)
{
	json_error_t e;
	json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	/* an integer too big for jansson's json_int_t is valid JSON all the
	 * same: read as a double then (its digits beyond 17 are lost, which
	 * beats refusing the row) */
	if (!j)
		j = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL |
			       JSON_DECODE_INT_AS_REAL, &e);
	if (!j)
		return RETL_CAST_FAILED;
	dump_canonical(j, out);
	json_decref(j);
	return 0;
}

/* ---- entry points ----------------------------------------------------- */

int retl_cast(enum retl_type t, const char *s, size_t len, retl_buf *out)
{
	size_t mark = out->len;
	int rc;
	switch (t) {
	case RETL_TYPE_INTEGER:
		rc = cast_integer(s, len, out);
		break;
	case RETL_TYPE_NUMBER:
		rc = cast_number(s, len, out);
		break;
	case RETL_TYPE_BOOLEAN:
		rc = cast_boolean(s, len, out);
		break;
	case RETL_TYPE_DATE:
	case RETL_TYPE_DATETIME:
		rc = cast_date(t, s, len, out);
		break;
	case RETL_TYPE_JSON:
		rc = cast_json(s, len, out);
		break;
	default:
		if (!retl_utf8_valid(s, len))
			return RETL_CAST_UTF8;
		retl_buf_add_json_str(out, s, len);
		return 0;
	}
	if (rc < 0)
		retl_buf_truncate(out, mark);
	return rc;
}
