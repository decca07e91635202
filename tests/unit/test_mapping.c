/*
 * test_mapping.c - the field language: parse, bind, apply; every transform,
 * every cast, canonical output, rejections and messages.
 */
#include "mapping.h"

#include <stdlib.h>
#include <string.h>

#include "cast.h"
#include "test.h"

#define F "mappings/x.json"

static struct retl_err err;
static retl_buf out = RETL_BUF_INIT, reason = RETL_BUF_INIT, res = RETL_BUF_INIT;

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
	if (!j)
		fprintf(stderr, "bad test json: %s: %s\n", text, e.text);
	return j;
}

/* the parse error message, or "OK" */
static const char *parse_msg(const char *fields)
{
	json_t *j = load(fields);
	retl_mapping *m = NULL;
	retl_err_clear(&err);
	int rc = retl_mapping_parse(&m, j, F, &err);
	json_decref(j);
	retl_mapping_free(m);
	CHECK(rc == 0 || m == NULL);
	return rc == 0 ? "OK" : err.msg;
}

static retl_mapping *parse(const char *fields)
{
	json_t *j = load(fields);
	retl_mapping *m = NULL;
	if (retl_mapping_parse(&m, j, F, &err) < 0)
		fprintf(stderr, "parse failed: %s\n", err.msg);
	json_decref(j);
	return m;
}

/* cols: "name:oid name:oid ..."; returns how many */
static size_t columns(const char *spec, struct retl_column *cols)
{
	size_t n = 0;
	char *dup = strdup(spec), *save = NULL;
	for (char *tok = strtok_r(dup, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *colon = strchr(tok, ':');
		cols[n].oid = colon ? (unsigned)atoi(colon + 1) : 25;
		if (colon)
			*colon = '\0';
		cols[n++].name = strdup(tok);
	}
	free(dup);
	return n;
}

static void free_columns(struct retl_column *cols, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(cols[i].name);
}

/*
 * Maps one row: the payload, "REJECT <reason>", or "PARSE <msg>" /
 * "BIND <msg>".  Applies twice and checks the bytes are identical.
 */
static const char *run(const char *fields, const char *colspec,
		       const char *const *vals)
{
	struct retl_column cols[16];
	size_t ncols = columns(colspec, cols);
	retl_mapping *m = NULL;
	json_t *j = load(fields);
	retl_buf_reset(&res);
	retl_err_clear(&err);
	if (retl_mapping_parse(&m, j, F, &err) < 0) {
		retl_buf_addf(&res, "PARSE %s", err.msg);
	} else if (retl_mapping_bind(m, cols, ncols, &err) < 0) {
		retl_buf_addf(&res, "BIND %s", err.msg);
	} else {
		struct retl_row row = { ncols, vals, NULL };
		size_t lens[16];
		for (size_t i = 0; i < ncols; i++)
			lens[i] = vals[i] ? strlen(vals[i]) : 0;
		row.lens = lens;
		int rc = retl_mapping_apply(m, &row, &out, &reason);
		if (rc < 0) {
			retl_buf_addf(&res, "REJECT %s", reason.ptr);
		} else {
			retl_buf_add(&res, out.ptr, out.len);
			char *first = strdup(out.ptr);
			CHECK(retl_mapping_apply(m, &row, &out, &reason) == 0);
			CHECK_STR(out.ptr, first);
			free(first);
		}
	}
	json_decref(j);
	retl_mapping_free(m);
	free_columns(cols, ncols);
	return res.ptr;
}

#define V(...) ((const char *const[]){ __VA_ARGS__ })

/* one value of column "c" (text) through field spec S */
static const char *one(const char *spec, const char *val)
{
	static char fields[4096];
	snprintf(fields, sizeof(fields), "{\"f\": %s}", spec);
	return run(fields, "c:25", V(val));
}

static const char *cast(enum retl_type t, const char *s)
{
	retl_buf_reset(&res);
	int rc = retl_cast(t, s, strlen(s), &res);
	if (rc == RETL_CAST_FAILED)
		return "FAIL";
	if (rc == RETL_CAST_UTF8)
		return "UTF8";
	return res.ptr;
}

static void test_casts(void)
{
	static const struct { enum retl_type t; const char *in, *want; } cases[] = {
		{ RETL_TYPE_STRING, "héllo \"q\"\n", "\"héllo \\\"q\\\"\\n\"" },
		{ RETL_TYPE_STRING, "", "\"\"" },
		{ RETL_TYPE_STRING, "bad \xff", "UTF8" },
		{ RETL_TYPE_STRING, "\xc0\x80", "UTF8" },       /* overlong */
		{ RETL_TYPE_STRING, "\xed\xa0\x80", "UTF8" },   /* surrogate */
		{ RETL_TYPE_STRING, "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"" },
		{ RETL_TYPE_INTEGER, "-42", "-42" },
		{ RETL_TYPE_INTEGER, "42", "42" },
		{ RETL_TYPE_INTEGER, "42.0", "42" },
		{ RETL_TYPE_INTEGER, "42.000", "42" },
		{ RETL_TYPE_INTEGER, "+7", "7" },
		{ RETL_TYPE_INTEGER, "007", "7" },
		{ RETL_TYPE_INTEGER, "0", "0" },
		{ RETL_TYPE_INTEGER, "-0", "0" },
		{ RETL_TYPE_INTEGER, "0.000", "0" },
		{ RETL_TYPE_INTEGER, "1e+06", "1000000" },
		{ RETL_TYPE_INTEGER, "1200e-2", "12" },
		{ RETL_TYPE_INTEGER, "9223372036854775807", "9223372036854775807" },
		{ RETL_TYPE_INTEGER, "-9223372036854775808", "-9223372036854775808" },
		{ RETL_TYPE_INTEGER, "9223372036854775808", "FAIL" },
		{ RETL_TYPE_INTEGER, "-9223372036854775809", "FAIL" },
		{ RETL_TYPE_INTEGER, "1e+20", "FAIL" },
		{ RETL_TYPE_INTEGER, "4.2", "FAIL" },
		{ RETL_TYPE_INTEGER, "t", "FAIL" },
		{ RETL_TYPE_INTEGER, "", "FAIL" },
		{ RETL_TYPE_INTEGER, "-", "FAIL" },
		{ RETL_TYPE_INTEGER, "1e", "FAIL" },
		{ RETL_TYPE_INTEGER, " 1", "FAIL" },
		{ RETL_TYPE_INTEGER, "NaN", "FAIL" },
		{ RETL_TYPE_INTEGER, "1e99999999999", "FAIL" },
		{ RETL_TYPE_NUMBER, "12.50", "12.50" },
		{ RETL_TYPE_NUMBER, "-12.50", "-12.50" },
		{ RETL_TYPE_NUMBER, "1e+20", "1e+20" },
		/* beyond a double (fuzz_mapping): refused, not sent */
		{ RETL_TYPE_NUMBER, "71e+005988003939", "FAIL" },
		{ RETL_TYPE_NUMBER, "1e309", "FAIL" },
		{ RETL_TYPE_NUMBER, "1e308", "1e308" },
		{ RETL_TYPE_NUMBER, "1e-400", "1e-400" },
		{ RETL_TYPE_NUMBER, "1E5", "1e5" },
		{ RETL_TYPE_NUMBER, ".5", "0.5" },
		{ RETL_TYPE_NUMBER, "-.5", "-0.5" },
		{ RETL_TYPE_NUMBER, "5.", "5" },
		{ RETL_TYPE_NUMBER, "+3", "3" },
		{ RETL_TYPE_NUMBER, "007.10", "7.10" },
		{ RETL_TYPE_NUMBER, "0", "0" },
		{ RETL_TYPE_NUMBER, "NaN", "FAIL" },
		{ RETL_TYPE_NUMBER, "Infinity", "FAIL" },
		{ RETL_TYPE_NUMBER, "-Infinity", "FAIL" },
		{ RETL_TYPE_NUMBER, "abc", "FAIL" },
		{ RETL_TYPE_NUMBER, ".", "FAIL" },
		{ RETL_TYPE_NUMBER, "1.2.3", "FAIL" },
		{ RETL_TYPE_BOOLEAN, "t", "true" },
		{ RETL_TYPE_BOOLEAN, "f", "false" },
		{ RETL_TYPE_BOOLEAN, "TRUE", "true" },
		{ RETL_TYPE_BOOLEAN, "False", "false" },
		{ RETL_TYPE_BOOLEAN, "yes", "true" },
		{ RETL_TYPE_BOOLEAN, "No", "false" },
		{ RETL_TYPE_BOOLEAN, "1", "true" },
		{ RETL_TYPE_BOOLEAN, "0", "false" },
		{ RETL_TYPE_BOOLEAN, "on", "true" },
		{ RETL_TYPE_BOOLEAN, "OFF", "false" },
		{ RETL_TYPE_BOOLEAN, "2", "FAIL" },
		{ RETL_TYPE_BOOLEAN, "", "FAIL" },
		{ RETL_TYPE_BOOLEAN, "truely", "FAIL" },
		{ RETL_TYPE_DATE, "2024-01-02", "\"2024-01-02\"" },
		{ RETL_TYPE_DATE, "2024-01-02 03:04:05", "\"2024-01-02\"" },
		{ RETL_TYPE_DATE, "2024-01-02 03:04:05.123456+00", "\"2024-01-02\"" },
		{ RETL_TYPE_DATE, "2024-01-02 03:04:05+05:30", "\"2024-01-01\"" },
		{ RETL_TYPE_DATE, "2024-01-02 20:00:00-08", "\"2024-01-03\"" },
		{ RETL_TYPE_DATE, "2024-02-29", "\"2024-02-29\"" },
		{ RETL_TYPE_DATE, "2023-02-29", "FAIL" },
		{ RETL_TYPE_DATE, "2024-13-01", "FAIL" },
		{ RETL_TYPE_DATE, "2024-00-10", "FAIL" },
		{ RETL_TYPE_DATE, "2024-1-2", "FAIL" },
		{ RETL_TYPE_DATE, "infinity", "FAIL" },
		{ RETL_TYPE_DATE, "0044-03-15 BC", "FAIL" },
		{ RETL_TYPE_DATETIME, "2024-01-02 03:04:05.123456+00",
		  "\"2024-01-02T03:04:05.123456Z\"" },
		{ RETL_TYPE_DATETIME, "2024-01-02 03:04:05", "\"2024-01-02T03:04:05Z\"" },
		{ RETL_TYPE_DATETIME, "2024-01-02", "\"2024-01-02T00:00:00Z\"" },
		{ RETL_TYPE_DATETIME, "2024-01-02 03:04:05+05:30", "\"2024-01-01T21:34:05Z\"" },
		{ RETL_TYPE_DATETIME, "2024-12-31 20:00:00.5-08", "\"2025-01-01T04:00:00.5Z\"" },
		{ RETL_TYPE_DATETIME, "2024-03-01 00:30:00+01", "\"2024-02-29T23:30:00Z\"" },
		{ RETL_TYPE_DATETIME, "2024-01-02T03:04:05Z", "\"2024-01-02T03:04:05Z\"" },
		{ RETL_TYPE_DATETIME, "2024-01-02 03:04", "\"2024-01-02T03:04:00Z\"" },
		{ RETL_TYPE_DATETIME, "0001-01-01 00:30:00+01", "FAIL" },
		{ RETL_TYPE_DATETIME, "9999-12-31 23:00:00-02", "FAIL" },
		{ RETL_TYPE_DATETIME, "2024-01-02 24:00:00", "FAIL" },
		{ RETL_TYPE_DATETIME, "2024-01-02 03:60:00", "FAIL" },
		{ RETL_TYPE_DATETIME, "2024-01-02 03:04:61", "FAIL" },
		{ RETL_TYPE_DATETIME, "2024-01-02 03:04:05.", "FAIL" },
		{ RETL_TYPE_DATETIME, "2024-01-02 03:04:05+5", "FAIL" },
		{ RETL_TYPE_DATETIME, "2024-01-02x03:04:05", "FAIL" },
		{ RETL_TYPE_DATETIME, "", "FAIL" },
		{ RETL_TYPE_JSON, "{\"b\": 1, \"a\": [true, null, \"x\"]}",
		  "{\"a\":[true,null,\"x\"],\"b\":1}" },
		{ RETL_TYPE_JSON, "{\"z\":{\"y\":1,\"x\":2}}", "{\"z\":{\"x\":2,\"y\":1}}" },
		{ RETL_TYPE_JSON, "0.1", "0.1" },
		{ RETL_TYPE_JSON, "12.5", "12.5" },
		/* equal numbers, equal text; the text is its own canonical
		 * form (issue 13) */
		{ RETL_TYPE_JSON, "-0.0", "0" },
		{ RETL_TYPE_JSON, "-0", "0" },
		{ RETL_TYPE_JSON, "100.0", "100" },
		{ RETL_TYPE_JSON, "1e2", "100" },
		{ RETL_TYPE_JSON, "[1.0e3,-2.50,1e-7,1e300]", "[1000,-2.5,1e-07,1e+300]" },
		/* bigger than json_int_t: valid JSON, read as a double (found
		 * by fuzz_mapping) */
		{ RETL_TYPE_JSON, "[400000000000000000000000000000000]", "[4e+32]" },
		{ RETL_TYPE_JSON, "\"s\"", "\"s\"" },
		{ RETL_TYPE_JSON, "[]", "[]" },
		{ RETL_TYPE_JSON, "{bad", "FAIL" },
		{ RETL_TYPE_JSON, "", "FAIL" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = cast(cases[i].t, cases[i].in);
		if (strcmp(got, cases[i].want))
			fprintf(stderr, "cast %s \"%s\":\n", retl_type_name(cases[i].t),
				cases[i].in);
		CHECK_STR(got, cases[i].want);
	}
	/* a failed cast leaves the buffer as it was */
	retl_buf_reset(&res);
	retl_buf_adds(&res, "keep");
	CHECK(retl_cast(RETL_TYPE_INTEGER, "4.2", 3, &res) == RETL_CAST_FAILED);
	CHECK_STR(res.ptr, "keep");
}

static void test_utf8_helpers(void)
{
	const char *s = "h\xc3\xa9llo"; /* héllo */
	CHECK(retl_utf8_count(s, strlen(s)) == 5);
	CHECK(retl_utf8_prefix_chars(s, strlen(s), 2) == 3);
	CHECK(retl_utf8_prefix_chars(s, strlen(s), 9) == strlen(s));
	CHECK(retl_utf8_prefix_bytes(s, strlen(s), 2) == 1);
	CHECK(retl_utf8_prefix_bytes(s, strlen(s), 3) == 3);
}

static void test_natural_types(void)
{
	const char *fields = "{\"b\":\"b\",\"i2\":\"i2\",\"i4\":\"i4\",\"i8\":\"i8\","
		"\"o\":\"o\",\"f4\":\"f4\",\"f8\":\"f8\",\"n\":\"n\",\"j\":\"j\","
		"\"jb\":\"jb\",\"d\":\"d\",\"ts\":\"ts\",\"tz\":\"tz\",\"t\":\"t\"}";
	CHECK_STR(run(fields, "b:16 i2:21 i4:23 i8:20 o:26 f4:700 f8:701 n:1700 "
		      "j:114 jb:3802 d:1082 ts:1114 tz:1184 t:25",
		      V("t", "1", "-2", "3", "4", "1.5", "1e+20", "12.50",
			"{\"b\":1,\"a\":2}", "[1, 2]", "2024-01-02",
			"2024-01-02 03:04:05", "2024-01-02 03:04:05.5+02", "x")),
		  "{\"b\":true,\"d\":\"2024-01-02\",\"f4\":1.5,\"f8\":1e+20,\"i2\":1,"
		  "\"i4\":-2,\"i8\":3,\"j\":{\"a\":2,\"b\":1},\"jb\":[1,2],\"n\":12.50,"
		  "\"o\":4,\"t\":\"x\",\"ts\":\"2024-01-02T03:04:05Z\","
		  "\"tz\":\"2024-01-02T01:04:05.5Z\"}");
	/* natural-type casts can reject too */
	CHECK_STR(run("{\"n\":\"n\"}", "n:1700", V("NaN")),
		  "REJECT n: cannot convert \"NaN\" to number");
	/* constants keep their JSON type */
	CHECK_STR(run("{\"s\":{\"value\":\"x\"},\"i\":{\"value\":42},\"r\":{\"value\":0.1},"
		      "\"t\":{\"value\":true},\"f\":{\"value\":false},\"n\":{\"value\":null}}",
		      "", V(NULL)),
		  "{\"f\":false,\"i\":42,\"n\":null,\"r\":0.1,\"s\":\"x\",\"t\":true}");
	/* explicit type on a constant */
	CHECK_STR(run("{\"a\":{\"value\":\"12\",\"type\":\"integer\"},"
		      "\"b\":{\"value\":1,\"type\":\"string\"}}", "", V(NULL)),
		  "{\"a\":12,\"b\":\"1\"}");
	/* a string-producing transform keeps a numeric natural type */
	CHECK_STR(run("{\"m\":{\"from\":\"m\",\"transform\":[{\"default\":\"0\"}]}}",
		      "m:1700", V(NULL)), "{\"m\":0}");
	CHECK_STR(run("{\"m\":{\"from\":\"m\",\"transform\":[\"trim\"]}}",
		      "m:1700", V("12.50")), "{\"m\":12.50}");
	/* but a transform can make it invalid for that type */
	CHECK_STR(run("{\"m\":{\"from\":\"m\",\"transform\":[{\"default\":\"none\"}]}}",
		      "m:1700", V(NULL)), "REJECT m: cannot convert \"none\" to number");
	/* join makes a string */
	CHECK_STR(run("{\"m\":{\"from\":\"m\",\"transform\":[{\"split\":\".\"},{\"join\":\"-\"}]}}",
		      "m:1700", V("12.50")), "{\"m\":\"12-50\"}");
}

static void test_field_info(void)
{
	struct retl_column cols[4];
	size_t n = columns("id:23 email:25 at:1184", cols);
	retl_mapping *m = parse("{\"z\":\"email\",\"a.b\":{\"from\":\"id\"},"
				"\"a.c\":{\"from\":\"at\",\"type\":\"date\"},"
				"\"k\":{\"value\":1.5},\"t\":{\"template\":\"{{id}}\"},"
				"\"s\":{\"from\":\"id\",\"transform\":[{\"split\":\",\"}]}}");
	CHECK(m != NULL);
	if (!m)
		return;
	CHECK(retl_mapping_nfields(m) == 6);
	CHECK(retl_mapping_field_type(m, 0) == RETL_TYPE_AUTO); /* not bound yet */
	CHECK(retl_mapping_field_type(m, 1) == RETL_TYPE_DATE);
	CHECK(retl_mapping_bind(m, cols, n, &err) == 0);
	static const char *const targets[] = { "a.b", "a.c", "k", "s", "t", "z" };
	static const enum retl_type types[] = {
		RETL_TYPE_INTEGER, RETL_TYPE_DATE, RETL_TYPE_NUMBER,
		RETL_TYPE_STRING, RETL_TYPE_STRING, RETL_TYPE_STRING,
	};
	for (size_t i = 0; i < 6; i++) {
		CHECK_STR(retl_mapping_field_target(m, i), targets[i]);
		CHECK(retl_mapping_field_type(m, i) == types[i]);
	}
	CHECK(retl_mapping_field_target(m, 6) == NULL);
	CHECK_STR(retl_type_name(RETL_TYPE_DATETIME), "datetime");
	/* bind again with other columns: indexes and types follow */
	free_columns(cols, n);
	n = columns("x:25 at:25 email:25 id:25", cols);
	CHECK(retl_mapping_bind(m, cols, n, &err) == 0);
	CHECK(retl_mapping_field_type(m, 0) == RETL_TYPE_STRING);
	struct retl_row row = { 4, V("x", "2024-05-01 10:00:00", "e@x", "7"), NULL };
	CHECK(retl_mapping_apply(m, &row, &out, &reason) == 0);
	CHECK_STR(out.ptr, "{\"a\":{\"b\":\"7\",\"c\":\"2024-05-01\"},\"k\":1.5,"
		  "\"s\":[\"7\"],\"t\":\"7\",\"z\":\"e@x\"}");
	/* a row shorter than the bound columns is refused, not read past */
	row.ncols = 2;
	CHECK(retl_mapping_apply(m, &row, &out, &reason) == -1);
	CHECK_STR(reason.ptr, "row has 2 columns, the mapping needs 4");
	free_columns(cols, n);
	retl_mapping_free(m);

	/* unbound mapping with columns refuses to apply */
	m = parse("{\"a\":\"a\"}");
	struct retl_row r1 = { 1, V("x"), NULL };
	CHECK(retl_mapping_apply(m, &r1, &out, &reason) == -1);
	CHECK_STR(reason.ptr, "mapping is not bound to the query's columns");
	retl_mapping_free(m);
}

/* "write": who owns the destination's value (issue 18) */
static void test_write_key(void)
{
	retl_mapping *m = parse("{\"z\":\"email\",\"owner\":{\"from\":\"o\",\"write\":\"if_empty\"},"
				"\"a\":{\"from\":\"id\",\"write\":\"always\"}}");
	CHECK(m != NULL);
	if (!m)
		return;
	/* payload order: a, owner, z */
	CHECK(!retl_mapping_field_if_empty(m, 0));
	CHECK(retl_mapping_field_if_empty(m, 1));
	CHECK(!retl_mapping_field_if_empty(m, 2));
	CHECK(!retl_mapping_field_if_empty(m, 3));      /* out of range */
	CHECK_STR(retl_mapping_if_empty_field(m), "owner");
	retl_mapping *n = parse("{\"z\":\"email\",\"a\":{\"from\":\"id\",\"write\":\"always\"}}");
	CHECK(n != NULL && retl_mapping_if_empty_field(n) == NULL);
	/* the key is part of the mapping's definition: changing it sends the
	 * rows again (the fingerprint salts the row hash) */
	retl_mapping *o = parse("{\"z\":\"email\",\"owner\":{\"from\":\"o\"},"
				"\"a\":{\"from\":\"id\",\"write\":\"always\"}}");
	CHECK(o != NULL && retl_mapping_fingerprint(o) != retl_mapping_fingerprint(m));
	retl_mapping_free(m);
	retl_mapping_free(n);
	retl_mapping_free(o);
}

static void test_canonical(void)
{
	/* keys sorted by bytes at every level, compact */
	CHECK_STR(run("{\"b\":\"x\",\"a\":\"x\",\"B\":\"x\",\"\xc3\xa9\":\"x\",\"aa\":\"x\"}",
		      "x", V("1")),
		  "{\"B\":\"1\",\"a\":\"1\",\"aa\":\"1\",\"b\":\"1\",\"\xc3\xa9\":\"1\"}");
	CHECK_STR(run("{\"m.z\":\"x\",\"m.a\":\"x\",\"a\":\"x\",\"m.n.q\":\"x\",\"m.n.p\":\"x\",\"z\":\"x\"}",
		      "x", V("1")),
		  "{\"a\":\"1\",\"m\":{\"a\":\"1\",\"n\":{\"p\":\"1\",\"q\":\"1\"},\"z\":\"1\"},\"z\":\"1\"}");
	/* "a.b" sorts before "a-c": segments compare, "a" < "a-c" */
	CHECK_STR(run("{\"a-c\":\"x\",\"a.b\":\"x\"}", "x", V("1")),
		  "{\"a\":{\"b\":\"1\"},\"a-c\":\"1\"}");
	/* keys needing escapes */
	CHECK_STR(run("{\"q\\\"k\":\"x\"}", "x", V("1")), "{\"q\\\"k\":\"1\"}");
	/* merge_fields style */
	CHECK_STR(run("{\"email_address\":\"e\",\"merge_fields.FNAME\":\"f\",\"merge_fields.LNAME\":\"l\"}",
		      "e f l", V("a@b", "Ann", "Lee")),
		  "{\"email_address\":\"a@b\",\"merge_fields\":{\"FNAME\":\"Ann\",\"LNAME\":\"Lee\"}}");
	/* fingerprint: stable, key-order independent, spec sensitive */
	retl_mapping *a = parse("{\"a\":\"x\",\"b\":{\"from\":\"y\",\"type\":\"string\"}}");
	retl_mapping *b = parse("{\"b\":{\"type\":\"string\",\"from\":\"y\"},\"a\":\"x\"}");
	retl_mapping *c = parse("{\"a\":\"x\",\"b\":{\"from\":\"y\",\"type\":\"json\"}}");
	CHECK(a && b && c);
	if (a && b && c) {
		CHECK(retl_mapping_fingerprint(a) == retl_mapping_fingerprint(b));
		CHECK(retl_mapping_fingerprint(a) != retl_mapping_fingerprint(c));
		CHECK(retl_mapping_fingerprint(a) != 0);
	}
	retl_mapping_free(a);
	retl_mapping_free(b);
	retl_mapping_free(c);
}

static void test_sources(void)
{
	CHECK_STR(run("{\"label\":{\"template\":\"{{plan}} ({{mrr}} USD)\"}}",
		      "plan mrr:1700", V("pro", "12.50")), "{\"label\":\"pro (12.50 USD)\"}");
	CHECK_STR(run("{\"label\":{\"template\":\"{{ plan }}-{{mrr}}!\"}}",
		      "plan mrr", V(NULL, NULL)), "{\"label\":\"-!\"}");
	CHECK_STR(run("{\"label\":{\"template\":\"plain\"}}", "", V(NULL)),
		  "{\"label\":\"plain\"}");
	CHECK_STR(run("{\"label\":{\"template\":\"\"}}", "", V(NULL)), "{\"label\":\"\"}");
	CHECK_STR(run("{\"n\":{\"template\":\"{{a}}\",\"type\":\"integer\"}}", "a", V("5")),
		  "{\"n\":5}");
	CHECK_STR(run("{\"a\":\"a\"}", "a", V("tab\there")), "{\"a\":\"tab\\there\"}");
	CHECK_STR(run("{\"a\":\"a\"}", "a", V(NULL)), "{\"a\":null}");
}

static void test_on_null(void)
{
	const char *cols = "a b";
	CHECK_STR(run("{\"x\":{\"from\":\"a\",\"on_null\":\"skip\"},\"y\":\"b\"}", cols,
		      V(NULL, "1")), "{\"y\":\"1\"}");
	CHECK_STR(run("{\"x\":{\"from\":\"a\",\"on_null\":\"clear\"},\"y\":\"b\"}", cols,
		      V(NULL, "1")), "{\"x\":null,\"y\":\"1\"}");
	CHECK_STR(run("{\"x\":{\"from\":\"a\",\"on_null\":\"skip\"},\"y\":\"b\"}", cols,
		      V("0", "1")), "{\"x\":\"0\",\"y\":\"1\"}");
	/* every field skipped: {} */
	CHECK_STR(run("{\"x\":{\"from\":\"a\",\"on_null\":\"skip\"}}", cols, V(NULL, NULL)),
		  "{}");
	/* nested object with every child skipped is left out, comma included */
	CHECK_STR(run("{\"a\":\"b\",\"m.x\":{\"from\":\"a\",\"on_null\":\"skip\"},"
		      "\"m.y\":{\"from\":\"a\",\"on_null\":\"skip\"},\"z\":\"b\"}", cols,
		      V(NULL, "1")), "{\"a\":\"1\",\"z\":\"1\"}");
	CHECK_STR(run("{\"m.n.x\":{\"from\":\"a\",\"on_null\":\"skip\"},\"z\":\"b\"}", cols,
		      V(NULL, "1")), "{\"z\":\"1\"}");
	CHECK_STR(run("{\"a\":\"b\",\"m.n.x\":{\"from\":\"a\",\"on_null\":\"skip\"}}", cols,
		      V(NULL, "1")), "{\"a\":\"1\"}");
	CHECK_STR(run("{\"m.x\":{\"from\":\"a\",\"on_null\":\"skip\"},\"m.y\":\"b\"}", cols,
		      V(NULL, "1")), "{\"m\":{\"y\":\"1\"}}");
	/* a null produced by a transform is skipped too */
	CHECK_STR(run("{\"x\":{\"from\":\"a\",\"transform\":[{\"extract\":\"(\\\\d+)\"}],"
		      "\"on_null\":\"skip\"}}", cols, V("abc", NULL)), "{}");
	/* a null constant */
	CHECK_STR(run("{\"x\":{\"value\":null,\"on_null\":\"skip\"},\"y\":{\"value\":null}}",
		      "", V(NULL)), "{\"y\":null}");
}

static void test_transforms(void)
{
	static const struct { const char *spec, *in, *want; } cases[] = {
		{ "{\"from\":\"c\",\"transform\":[\"trim\"]}", " \t x y \n", "{\"f\":\"x y\"}" },
		{ "{\"from\":\"c\",\"transform\":[\"trim\"]}", "   ", "{\"f\":\"\"}" },
		{ "{\"from\":\"c\",\"transform\":[\"lower\"]}", "AbC \xc3\x89", "{\"f\":\"abc \xc3\x89\"}" },
		{ "{\"from\":\"c\",\"transform\":[\"upper\"]}", "abc \xc3\xa9", "{\"f\":\"ABC \xc3\xa9\"}" },
		{ "{\"from\":\"c\",\"transform\":[\"trim\",\"lower\"]}", NULL, "{\"f\":null}" },
		{ "{\"from\":\"c\",\"transform\":[{\"default\":\"none\"}]}", NULL, "{\"f\":\"none\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"default\":\"none\"}]}", "", "{\"f\":\"none\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"default\":\"none\"}]}", "x", "{\"f\":\"x\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"default\":0}],\"type\":\"integer\"}", NULL, "{\"f\":0}" },
		{ "{\"from\":\"c\",\"transform\":[\"trim\",{\"default\":\"n/a\"}]}", "  ", "{\"f\":\"n/a\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"replace\":\"[^0-9+]\",\"with\":\"\"}]}",
		  "+1 (555) 010-9999", "{\"f\":\"+15550109999\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"replace\":\"(\\\\w+)@(\\\\w+)\",\"with\":\"$2 at $1\"}]}",
		  "ann@example", "{\"f\":\"example at ann\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"replace\":\"\\u00e9\",\"with\":\"e\"}]}",
		  "caf\xc3\xa9 \xc3\xa9", "{\"f\":\"cafe e\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"replace\":\"x\",\"with\":\"y\"}]}", "", "{\"f\":\"\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"replace\":\"x\",\"with\":\"y\"}]}", NULL, "{\"f\":null}" },
		{ "{\"from\":\"c\",\"transform\":[{\"extract\":\"(\\\\d+)-(\\\\d+)\"}]}", "a 12-34 b", "{\"f\":\"12\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"extract\":\"(\\\\d+)-(\\\\d+)\",\"group\":2}]}", "a 12-34 b", "{\"f\":\"34\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"extract\":\"(\\\\d+)-(\\\\d+)\",\"group\":0}]}", "a 12-34 b", "{\"f\":\"12-34\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"extract\":\"\\\\d+\"}]}", "a 12 b", "{\"f\":\"12\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"extract\":\"\\\\d+\"}]}", "none", "{\"f\":null}" },
		{ "{\"from\":\"c\",\"transform\":[{\"extract\":\"(x)|(\\\\d+)\",\"group\":1}]}", "12", "{\"f\":null}" },
		{ "{\"from\":\"c\",\"transform\":[{\"extract\":\"@(.*)$\"}],\"type\":\"string\"}", "a@b.c", "{\"f\":\"b.c\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"match\":\"^[a-z]+$\"}]}", "abc", "{\"f\":\"abc\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"match\":\"^[a-z]+$\"}]}", NULL, "{\"f\":null}" },
		{ "{\"from\":\"c\",\"transform\":[{\"match\":\"^[a-z]+$\"}]}", "aB",
		  "REJECT f: value \"aB\" does not match ^[a-z]+$" },
		{ "{\"from\":\"c\",\"transform\":[{\"map\":{\"a\":\"Alpha\",\"b\":\"Beta\",\"n\":null,\"one\":1}}]}", "b", "{\"f\":\"Beta\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"map\":{\"a\":\"Alpha\",\"b\":\"Beta\",\"n\":null,\"one\":1}}]}", "c", "{\"f\":\"c\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"map\":{\"a\":\"Alpha\",\"b\":\"Beta\",\"n\":null,\"one\":1}}]}", "n", "{\"f\":null}" },
		{ "{\"from\":\"c\",\"transform\":[{\"map\":{\"a\":\"Alpha\",\"b\":\"Beta\",\"n\":null,\"one\":1}}]}", "one", "{\"f\":\"1\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"map\":{\"a\":\"Alpha\"},\"default\":\"Other\"}]}", "z", "{\"f\":\"Other\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"map\":{\"a\":\"Alpha\"},\"default\":null}]}", "z", "{\"f\":null}" },
		{ "{\"from\":\"c\",\"transform\":[{\"map\":{\"a\":\"Alpha\"},\"default\":\"Other\"}]}", NULL, "{\"f\":null}" },
		{ "{\"from\":\"c\",\"transform\":[{\"map\":{\"\":\"empty\",\"a\":\"A\"}}]}", "", "{\"f\":\"empty\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"map\":{}}]}", "x", "{\"f\":\"x\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"}]}", "a,b,,c", "{\"f\":[\"a\",\"b\",\"\",\"c\"]}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\", \"}]}", "a, b", "{\"f\":[\"a\",\"b\"]}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"}]}", "", "{\"f\":[]}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"}]}", NULL, "{\"f\":null}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"},\"trim\",\"upper\"]}", " a , b", "{\"f\":[\"A\",\"B\"]}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"},{\"map\":{\"a\":\"1\"}},{\"truncate\":1}]}", "a,bc", "{\"f\":[\"1\",\"b\"]}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"},{\"extract\":\"\\\\d\"}]}", "a1,b", "{\"f\":[\"1\",null]}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"},{\"extract\":\"\\\\d\"},{\"join\":\"+\"}]}", "a1,b,2", "{\"f\":\"1+2\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"},{\"default\":\"?\"}]}", "a,,b", "{\"f\":[\"a\",\"?\",\"b\"]}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"},{\"default\":\"?\"}]}", "", "{\"f\":[]}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"},{\"split\":\";\"}]}", "a;b,c", "{\"f\":[\"a\",\"b\",\"c\"]}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"},{\"match\":\"^\\\\d+$\"}]}", "1,x",
		  "REJECT f: value \"x\" does not match ^\\d+$" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"}],\"type\":\"integer\"}", "1,2,3", "{\"f\":[1,2,3]}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"}],\"type\":\"integer\"}", "1,x",
		  "REJECT f: cannot convert \"x\" to integer" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"},{\"join\":\";\"}]}", "a,b", "{\"f\":\"a;b\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"split\":\",\"},{\"join\":\"\"}]}", "", "{\"f\":\"\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"join\":\";\"}]}", "a,b", "{\"f\":\"a,b\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"join\":\";\"}]}", NULL, "{\"f\":null}" },
		{ "{\"from\":\"c\",\"transform\":[{\"truncate\":3}]}", "abcdef", "{\"f\":\"abc\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"truncate\":3}]}", "ab", "{\"f\":\"ab\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"truncate\":0}]}", "ab", "{\"f\":\"\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"truncate\":2}]}", "\xc3\xa9\xc3\xa9\xc3\xa9", "{\"f\":\"\xc3\xa9\xc3\xa9\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"truncate\":1}]}", "\xf0\x9f\x98\x80x", "{\"f\":\"\xf0\x9f\x98\x80\"}" },
		{ "{\"from\":\"c\",\"transform\":[{\"truncate\":1}]}", NULL, "{\"f\":null}" },
		/* chains from the design */
		{ "{\"from\":\"c\",\"transform\":[\"trim\",\"lower\",{\"match\":\"^[^@\\\\s]+@[^@\\\\s]+$\"}]}",
		  "  Ann@Example.COM ", "{\"f\":\"ann@example.com\"}" },
		{ "{\"from\":\"c\",\"transform\":[\"trim\",\"lower\",{\"match\":\"^[^@\\\\s]+@[^@\\\\s]+$\"}]}",
		  " not an email ", "REJECT f: value \"not an email\" does not match ^[^@\\s]+@[^@\\s]+$" },
		/* invalid UTF-8 */
		{ "\"c\"", "a\xff", "REJECT f: value is not valid UTF-8: \"a?\"" },
		{ "{\"from\":\"c\",\"transform\":[\"trim\"]}", "a\xff", "REJECT f: value is not valid UTF-8: \"a?\"" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = one(cases[i].spec, cases[i].in);
		if (strcmp(got, cases[i].want))
			fprintf(stderr, "case %zu: %s\n", i, cases[i].spec);
		CHECK_STR(got, cases[i].want);
	}
	/* regex on invalid UTF-8 rejects with pcre2's message, not a crash */
	const char *got = one("{\"from\":\"c\",\"transform\":[{\"match\":\"a\"}]}", "a\xff");
	CHECK(!strncmp(got, "REJECT f: match: UTF-8 error", 28));
	/* long values are cut to 100 bytes in reasons, on a code point boundary */
	char longv[300];
	memset(longv, 'x', 99);
	strcpy(longv + 99, "\xc3\xa9tail-tail-tail");
	got = one("{\"from\":\"c\",\"transform\":[{\"match\":\"^y\"}]}", longv);
	char want[400];
	snprintf(want, sizeof(want), "REJECT f: value \"%.*s...\" does not match ^y", 99, longv);
	CHECK_STR(got, want);
	/* replace output larger than the first guess of its size */
	char many[201], want3[700];
	memset(many, 'a', 200);
	many[200] = '\0';
	strcpy(want3, "{\"f\":\"");
	for (int i = 0; i < 200; i++)
		strcat(want3, "xyz");
	strcat(want3, "\"}");
	CHECK_STR(one("{\"from\":\"c\",\"transform\":[{\"replace\":\"a\",\"with\":\"xyz\"}]}", many),
		  want3);
	/* a replacement referring to a missing group rejects the row */
	got = one("{\"from\":\"c\",\"transform\":[{\"replace\":\"a\",\"with\":\"$3\"}]}", "a");
	CHECK(!strncmp(got, "REJECT f: replace: ", 19));
	CHECK_STR(one("{\"from\":\"c\",\"transform\":[{\"replace\":\"a\",\"with\":\"$3\"}]}", "b"),
		  "{\"f\":\"b\"}");
}

static void test_rejections(void)
{
	CHECK_STR(run("{\"n\":{\"from\":\"a\",\"type\":\"integer\"}}", "a", V("4.2")),
		  "REJECT n: cannot convert \"4.2\" to integer");
	CHECK_STR(run("{\"n\":{\"from\":\"a\",\"type\":\"boolean\"}}", "a", V("maybe")),
		  "REJECT n: cannot convert \"maybe\" to boolean");
	CHECK_STR(run("{\"n.d\":{\"from\":\"a\",\"type\":\"date\"}}", "a", V("2024-02-30")),
		  "REJECT n.d: cannot convert \"2024-02-30\" to date");
	CHECK_STR(run("{\"n\":{\"from\":\"a\",\"type\":\"json\"}}", "a", V("{x")),
		  "REJECT n: cannot convert \"{x\" to json");
	CHECK_STR(run("{\"n\":{\"template\":\"{{a}}\",\"type\":\"datetime\"}}", "a", V("soon")),
		  "REJECT n: cannot convert \"soon\" to datetime");
	/* the first failing field (payload order) is the one reported */
	CHECK_STR(run("{\"b\":{\"from\":\"a\",\"type\":\"integer\"},\"a\":{\"from\":\"a\",\"type\":\"number\"}}",
		      "a", V("x")), "REJECT a: cannot convert \"x\" to number");
	/* after a rejection the next row maps cleanly */
	retl_mapping *m = parse("{\"n\":{\"from\":\"a\",\"type\":\"integer\"},\"s\":\"a\"}");
	struct retl_column cols[1];
	size_t n = columns("a", cols);
	CHECK(retl_mapping_bind(m, cols, n, &err) == 0);
	struct retl_row bad = { 1, V("x"), NULL }, good = { 1, V("5"), NULL };
	CHECK(retl_mapping_apply(m, &bad, &out, &reason) == -1);
	CHECK(retl_mapping_apply(m, &good, &out, &reason) == 0);
	CHECK_STR(out.ptr, "{\"n\":5,\"s\":\"5\"}");
	CHECK_STR(reason.ptr, "");
	free_columns(cols, n);
	retl_mapping_free(m);
}

static void test_parse_errors(void)
{
	static const struct { const char *fields, *want; } cases[] = {
		{ "[]", F ": fields: expected an object of target fields" },
		{ "{}", F ": fields: no fields mapped" },
		{ "{\"\":\"a\"}", F ": fields: empty target name" },
		{ "{\"a\":1}", F ": fields.a: expected a column name or an object with one of from, value, template" },
		{ "{\"a\":{}}", F ": fields.a: expected a column name or an object with one of from, value, template" },
		{ "{\"a\":{\"type\":\"string\"}}", F ": fields.a: expected a column name or an object with one of from, value, template" },
		{ "{\"a\":\"\"}", F ": fields.a: empty column name" },
		{ "{\"a\":{\"from\":\"x\",\"value\":1}}", F ": fields.a: only one of from, value, template may be given" },
		{ "{\"a\":{\"from\":\"x\",\"template\":\"y\"}}", F ": fields.a: only one of from, value, template may be given" },
		{ "{\"a\":{\"from\":\"x\",\"form\":1}}", F ": fields.a.form: unknown key (expected one of from, value, template, transform, type, on_null, write)" },
		{ "{\"a\":{\"from\":1}}", F ": fields.a.from: expected a column name (string)" },
		{ "{\"a\":{\"from\":\"\"}}", F ": fields.a.from: empty column name" },
		{ "{\"a\":{\"value\":[1]}}", F ": fields.a.value: expected a string, number, boolean or null" },
		{ "{\"a\":{\"value\":\"abc\",\"type\":\"integer\"}}", F ": fields.a.value: cannot convert \"abc\" to integer" },
		{ "{\"a\":{\"template\":1}}", F ": fields.a.template: expected a string" },
		{ "{\"a\":{\"template\":\"x {{y\"}}", F ": fields.a.template: unclosed \"{{\"" },
		{ "{\"a\":{\"template\":\"x {{ }}\"}}", F ": fields.a.template: empty placeholder \"{{}}\"" },
		{ "{\"mrr\":{\"from\":\"x\",\"type\":\"nmber\"}}", F ": fields.mrr.type: unknown type \"nmber\" (expected one of string, integer, number, boolean, date, datetime, json)" },
		{ "{\"a\":{\"from\":\"x\",\"type\":\"auto\"}}", F ": fields.a.type: unknown type \"auto\" (expected one of string, integer, number, boolean, date, datetime, json)" },
		{ "{\"a\":{\"from\":\"x\",\"on_null\":\"drop\"}}", F ": fields.a.on_null: expected \"skip\" or \"clear\"" },
		{ "{\"a\":{\"from\":\"x\",\"on_null\":true}}", F ": fields.a.on_null: expected \"skip\" or \"clear\"" },
		{ "{\"owner\":{\"from\":\"x\",\"write\":\"if-empty\"}}", F ": fields.owner.write: expected \"always\" (the default) or \"if_empty\"" },
		{ "{\"owner\":{\"from\":\"x\",\"write\":true}}", F ": fields.owner.write: expected \"always\" (the default) or \"if_empty\"" },
		{ "{\"owner\":{\"from\":\"x\",\"write\":\"\"}}", F ": fields.owner.write: expected \"always\" (the default) or \"if_empty\"" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":\"trim\"}}", F ": fields.a.transform: expected an array of transforms" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[\"lowr\"]}}", F ": fields.a.transform[0]: unknown transform \"lowr\" (expected one of trim, lower, upper, default, replace, extract, match, map, split, join, truncate)" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[\"trim\",{\"lowr\":1}]}}", F ": fields.a.transform[1]: unknown transform \"lowr\" (expected one of trim, lower, upper, default, replace, extract, match, map, split, join, truncate)" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[1]}}", F ": fields.a.transform[0]: expected a transform name or an object such as {\"replace\": \"...\", \"with\": \"...\"}" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{}]}}", F ": fields.a.transform[0]: expected a transform name or an object such as {\"replace\": \"...\", \"with\": \"...\"}" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[\"replace\"]}}", F ": fields.a.transform[0]: replace needs an argument (write {\"replace\": ...})" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"trim\":true}]}}", F ": fields.a.transform[0]: trim takes no argument (write \"trim\")" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[\"trim\",{\"replace\":\"x\"}]}}", F ": fields.a.transform[1].with: missing (replace needs \"with\")" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"replace\":\"x\",\"with\":1}]}}", F ": fields.a.transform[0].with: expected a string" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"replace\":\"x\",\"with\":\"\",\"flags\":\"i\"}]}}", F ": fields.a.transform[0].flags: unknown key (replace takes replace, with)" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"match\":\"x\",\"group\":1}]}}", F ": fields.a.transform[0].group: unknown key (match takes only match)" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"replace\":1,\"with\":\"\"}]}}", F ": fields.a.transform[0].replace: expected a regular expression (string)" },
		{ "{\"email\":{\"from\":\"x\",\"transform\":[\"trim\",\"lower\",{\"match\":\"^[a-\"}]}}", F ": fields.email.transform[2].match: invalid regular expression: missing terminating ] for character class at offset 4" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"extract\":\"(a\"}]}}", F ": fields.a.transform[0].extract: invalid regular expression: missing closing parenthesis at offset 2" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"extract\":\"(a)\",\"group\":2}]}}", F ": fields.a.transform[0].group: the pattern has only 1 capture group" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"extract\":\"a\",\"group\":1}]}}", F ": fields.a.transform[0].group: the pattern has only 0 capture groups" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"extract\":\"(a)\",\"group\":-1}]}}", F ": fields.a.transform[0].group: expected a non-negative integer" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"default\":null}]}}", F ": fields.a.transform[0].default: expected a string, number or boolean" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"map\":[]}]}}", F ": fields.a.transform[0].map: expected an object of \"from\": \"to\" values" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"map\":{\"k\":[]}}]}}", F ": fields.a.transform[0].map.k: expected a string, number, boolean or null" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"map\":{},\"default\":{}}]}}", F ": fields.a.transform[0].default: expected a string, number, boolean or null" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"split\":\"\"}]}}", F ": fields.a.transform[0].split: expected a non-empty separator string" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"join\":1}]}}", F ": fields.a.transform[0].join: expected a separator string" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"truncate\":-1}]}}", F ": fields.a.transform[0].truncate: expected a non-negative integer" },
		{ "{\"a\":{\"from\":\"x\",\"transform\":[{\"truncate\":\"3\"}]}}", F ": fields.a.transform[0].truncate: expected a non-negative integer" },
		{ "{\"a\":\"x\",\"a.b\":\"y\"}", F ": fields.a.b: conflicts with field \"a\" (a target cannot be both a value and an object)" },
		{ "{\"m.a.b\":\"y\",\"m.a\":\"x\"}", F ": fields.m.a.b: conflicts with field \"m.a\" (a target cannot be both a value and an object)" },
		{ "{\"a..b\":\"x\"}", F ": fields.a..b: empty name segment in a dotted target" },
		{ "{\"a.\":\"x\"}", F ": fields.a.: empty name segment in a dotted target" },
		{ "{\".a\":\"x\"}", F ": fields..a: empty name segment in a dotted target" },
		/* not conflicts */
		{ "{\"a\":\"x\",\"ab.c\":\"y\",\"a-b.c\":\"z\"}", "OK" },
		{ "{\"a.b\":\"x\",\"a.c\":\"y\"}", "OK" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_STR(parse_msg(cases[i].fields), cases[i].want);
	CHECK_STR(parse_msg("{\"a\":1}") + 0, F ": fields.a: expected a column name or an object with one of from, value, template");
	CHECK(err.code == RETL_EXIT_USAGE);
	retl_mapping *m = (retl_mapping *)1;
	CHECK(retl_mapping_parse(&m, NULL, F, &err) == -1 && m == NULL);
}

static void test_bind_errors(void)
{
	CHECK_STR(run("{\"mrr\":{\"from\":\"mrrr\"}}", "a b c", V("1", "2", "3")),
		  "BIND " F ": fields.mrr.from: column \"mrrr\" is not returned by the query (columns: a, b, c)");
	CHECK_STR(run("{\"mrr\":\"mrrr\"}", "a b c", V("1", "2", "3")),
		  "BIND " F ": fields.mrr: column \"mrrr\" is not returned by the query (columns: a, b, c)");
	CHECK_STR(run("{\"x\":{\"template\":\"{{a}} {{zz}}\"}}", "a b", V("1", "2")),
		  "BIND " F ": fields.x.template: column \"zz\" is not returned by the query (columns: a, b)");
	CHECK_STR(run("{\"x\":\"a\"}", "", V(NULL)),
		  "BIND " F ": fields.x: column \"a\" is not returned by the query (columns: none)");
	/* constants need no columns */
	CHECK_STR(run("{\"x\":{\"value\":\"k\"}}", "", V(NULL)), "{\"x\":\"k\"}");
}

int main(void)
{
	test_casts();
	test_utf8_helpers();
	test_natural_types();
	test_field_info();
	test_canonical();
	test_sources();
	test_on_null();
	test_transforms();
	test_rejections();
	test_parse_errors();
	test_write_key();
	test_bind_errors();
	retl_buf_free(&out);
	retl_buf_free(&reason);
	retl_buf_free(&res);
	TEST_DONE();
}
