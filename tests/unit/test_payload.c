/*
 * test_payload.c - the payload reader: members and values as written,
 * nested walks, string decoding, and refusal of anything that is not JSON.
 */
#include <jansson.h>
#include <stdlib.h>

#include "payload.h"
#include "test.h"

/* "name=kind:raw;..." of a payload's members, or "ERR" */
static char *walk(const char *json)
{
	static const char *const kinds[] = { "s", "n", "t", "f", "0", "a", "o" };
	struct retl_preader r;
	struct retl_pfield f;
	retl_buf b = RETL_BUF_INIT;
	int rc;
	if (retl_payload_open(&r, json, strlen(json)) < 0)
		return retl_strdup("ERR");
	while ((rc = retl_payload_next(&r, &f)) > 0) {
		retl_pfield_name(&f, &b);
		retl_buf_addf(&b, "=%s:", kinds[f.v.kind]);
		retl_buf_add(&b, f.v.raw, f.v.len);
		retl_buf_addc(&b, ';');
	}
	if (rc < 0) {
		retl_buf_free(&b);
		return retl_strdup("ERR");
	}
	char *s = retl_buf_detach(&b);
	return s ? s : retl_strdup("");
}

static void check_walk(const char *json, const char *want)
{
	char *got = walk(json);
	CHECK_STR(got, want);
	free(got);
}

static void test_members(void)
{
	check_walk("{}", "");
	check_walk("{\"a\":1}", "a=n:1;");
	check_walk("{\"a\":\"x\",\"b\":true,\"c\":false,\"d\":null,\"e\":-1.5e3}",
		   "a=s:\"x\";b=t:true;c=f:false;d=0:null;e=n:-1.5e3;");
	check_walk("{\"o\":{\"x\":[1,{\"y\":\"}\"}]},\"z\":[]}",
		   "o=o:{\"x\":[1,{\"y\":\"}\"}]};z=a:[];");
	/* white space where JSON allows it */
	check_walk(" { \"a\" : 1 , \"b\" :[ 1 , 2 ] } ", "a=n:1;b=a:[ 1 , 2 ];");
	/* escaped names decode; values stay raw */
	check_walk("{\"a\\\"b\":\"q\\\"\"}", "a\"b=s:\"q\\\"\";");
	/* a number beyond 64 bits stays exact text */
	check_walk("{\"n\":123456789012345678901234567890}",
		   "n=n:123456789012345678901234567890;");
}

static void test_malformed(void)
{
	static const char *const bad[] = {
		"", "[]", "1", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":1 \"b\":2}",
		"{\"a\":tru}", "{\"a\":nul}", "{\"a\":01x}", "{\"a\":-}", "{\"a\":1.}",
		"{\"a\":1e}", "{\"a\":\"x}", "{\"a\":\"\\q\"}", "{\"a\":\"\\u12\"}",
		"{\"a\":[1,2}", "{\"a\":{\"b\":1]}", "{a:1}", "{\"a\":\"\x01\"}", NULL
	};
	for (const char *const *b = bad; *b; b++) {
		char *got = walk(*b);
		if (strcmp(got, "ERR"))
			fprintf(stderr, "accepted: %s\n", *b);
		CHECK(!strcmp(got, "ERR"));
		free(got);
	}
	/* a value nested past the cap is refused, not a stack overflow */
	retl_buf deep = RETL_BUF_INIT;
	retl_buf_adds(&deep, "{\"a\":");
	for (int i = 0; i < 100000; i++)
		retl_buf_addc(&deep, '[');
	for (int i = 0; i < 100000; i++)
		retl_buf_addc(&deep, ']');
	retl_buf_addc(&deep, '}');
	char *got = walk(deep.ptr);
	CHECK_STR(got, "ERR");
	free(got);
	retl_buf_free(&deep);
	/* the length is the end, not the NUL */
	struct retl_preader r;
	struct retl_pfield f;
	CHECK(retl_payload_open(&r, "{\"a\":1}", 5) == 0);
	CHECK(retl_payload_next(&r, &f) == -1);
}

static void test_strings(void)
{
	retl_buf b = RETL_BUF_INIT;
	const char *s = "\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00z\"";
	CHECK(retl_json_str_decode(s, strlen(s), &b) == 0);
	CHECK_STR(b.ptr, "a\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z");
	/* \u0000 decodes to a NUL byte inside the length */
	retl_buf_reset(&b);
	CHECK(retl_json_str_decode("\"a\\u0000b\"", 10, &b) == 0);
	CHECK(b.len == 3 && b.ptr[1] == '\0' && b.ptr[2] == 'b');
	/* lone surrogates are refused and leave out unchanged */
	retl_buf_reset(&b);
	retl_buf_adds(&b, "keep");
	CHECK(retl_json_str_decode("\"\\ud83d\"", 8, &b) == -1);
	CHECK(retl_json_str_decode("\"\\ude00\"", 8, &b) == -1);
	CHECK(retl_json_str_decode("\"\\ud83dx\"", 9, &b) == -1);
	CHECK_STR(b.ptr, "keep");
	CHECK(retl_json_str_decode("x", 1, &b) == -1);
	CHECK(retl_json_str_decode("\"ab\"c", 5, &b) == -1);
	retl_buf_free(&b);

	/* agrees with jansson on every escape of every byte */
	for (int c = 1; c < 256; c++) {
		char raw[2] = { (char)c, 0 };
		json_t *j = json_string_nocheck(raw);
		char *dumped = json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
		retl_buf d = RETL_BUF_INIT;
		if (c < 0x80) {
			CHECK(retl_json_str_decode(dumped, strlen(dumped), &d) == 0);
			CHECK(d.len == 1 && (unsigned char)d.ptr[0] == c);
		}
		retl_buf_free(&d);
		free(dumped);
		json_decref(j);
	}
}

static void test_nested_and_get(void)
{
	const char *p = "{\"email\":\"A@x.io\",\"merge_fields\":{\"FNAME\":\"Al\",\"ADDR\":{\"city\":\"B\"}},\"tags\":[\"a\",\"b\\u00e9\"]}";
	struct retl_preader r, in;
	struct retl_pfield f, g;
	struct retl_pv v;
	retl_buf b = RETL_BUF_INIT;
	unsigned long before = retl_payload_reads();
	CHECK(retl_payload_open(&r, p, strlen(p)) == 0);
	CHECK(retl_payload_next(&r, &f) == 1 && retl_pfield_is(&f, "email"));
	CHECK(!retl_pfield_is(&f, "emai") && !retl_pfield_is(&f, "emails"));
	CHECK(retl_payload_next(&r, &f) == 1 && retl_pfield_is(&f, "merge_fields"));
	CHECK(retl_pv_open(&in, &f.v) == 0);
	CHECK(retl_payload_next(&in, &g) == 1 && retl_pfield_is(&g, "FNAME"));
	CHECK(retl_payload_next(&in, &g) == 1 && g.v.kind == RETL_PV_OBJECT);
	CHECK(retl_payload_next(&in, &g) == 0);
	CHECK(retl_payload_next(&in, &g) == 0);     /* the end stays the end */
	CHECK(retl_payload_item(&in, &v) == -1);    /* an object has no items */
	CHECK(retl_payload_next(&r, &f) == 1 && f.v.kind == RETL_PV_ARRAY);
	CHECK(retl_pv_open(&in, &f.v) == 0);
	while (retl_payload_item(&in, &v) == 1) {
		CHECK(retl_pv_string(&v, &b) == 0);
		retl_buf_addc(&b, ';');
	}
	CHECK_STR(b.ptr, "a;b\xc3\xa9;");
	CHECK(retl_payload_next(&r, &f) == 0);
	CHECK(retl_payload_reads() == before + 1);  /* nested walks are one read */

	CHECK(retl_payload_get(p, strlen(p), "tags", &v) == 1 && v.kind == RETL_PV_ARRAY);
	CHECK(retl_payload_get(p, strlen(p), "FNAME", &v) == 0);   /* top level only */
	CHECK(retl_payload_get("{\"a\":", 5, "b", &v) == -1);
	v.kind = RETL_PV_NUMBER;
	CHECK(retl_pv_string(&v, &b) == -1);
	CHECK(retl_pv_open(&in, &v) == -1);
	retl_buf_free(&b);
}

/* the reader's view of a value as a jansson value, to compare with
 * json_loadb's own (integers only: retl_json_doc admits no other number) */
static json_t *as_json(const struct retl_pv *v)
{
	struct retl_preader r;
	struct retl_pfield f;
	struct retl_pv x;
	retl_buf b = RETL_BUF_INIT;
	json_t *j = NULL;
	switch (v->kind) {
	case RETL_PV_STRING:
		CHECK(retl_pv_string(v, &b) == 0);
		j = json_stringn(b.ptr ? b.ptr : "", b.len);
		break;
	case RETL_PV_NUMBER: {
		char t[32];
		CHECK(v->len < sizeof(t));
		memcpy(t, v->raw, v->len);
		t[v->len] = '\0';
		j = json_integer(strtoll(t, NULL, 10));
		break;
	}
	case RETL_PV_TRUE: j = json_true(); break;
	case RETL_PV_FALSE: j = json_false(); break;
	case RETL_PV_NULL: j = json_null(); break;
	case RETL_PV_ARRAY:
		j = json_array();
		CHECK(retl_pv_open(&r, v) == 0);
		while (retl_payload_item(&r, &x) > 0)
			json_array_append_new(j, as_json(&x));
		break;
	case RETL_PV_OBJECT:
		j = json_object();
		CHECK(retl_pv_open(&r, v) == 0);
		while (retl_payload_next(&r, &f) > 0) {
			retl_buf_reset(&b);
			retl_pfield_name(&f, &b);
			json_object_set_new(j, retl_buf_cstr(&b), as_json(&f.v));
		}
		break;
	}
	retl_buf_free(&b);
	return j;
}

/* retl_json_doc vouches for text only when jansson reads it to the same
 * values; want: whether it should */
static void check_doc(const char *text, size_t len, int want)
{
	struct retl_pv top;
	json_error_t je;
	int got = retl_json_doc(text, len, &top);
	json_t *j = json_loadb(text, len, 0, &je);
	if (got != want)
		fprintf(stderr, "retl_json_doc %d, want %d: %.*s\n", got, want, (int)len, text);
	CHECK(got == want);
	if (got == 1) {
		CHECK(j != NULL);
		json_t *mine = as_json(&top);
		CHECK(json_equal(mine, j));
		json_decref(mine);
	}
	json_decref(j);
}

static void test_doc(void)
{
	static const char *const yes[] = {
		"{}", " \n{\"a\":1}\t\r\n", "{\"results\":[{\"id\":\"1\",\"x\":[true,false,null]}]}",
		"{\"id\":-123456789012345678,\"n\":0,\"m\":-0}",
		"{\"s\":\"caf\u00e9 \\\" \\\\ \\/ \\n\"}",           /* escapes */
		"{\"s\":\"\\ud83d\\ude00\",\"t\":\"\\u0001\"}",    /* a pair; U+0001 */
		"{\"e\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}", /* UTF-8 */
		"{\"a\":1,\"a\":2}",                            /* the last wins, as in jansson */
		"{\"k\\u00e9y\":\"v\"}",
		NULL
	};
	static const char *const no[] = {
		"", "   ", "[]", "[1]", "1", "\"s\"", "null",  /* not an object */
		"{} x", "{}{}", "{\"a\":1",                    /* not one value */
		"{\"a\":1.5}", "{\"a\":1e3}", "{\"a\":1E3}", "{\"a\":-0.0}",   /* doubles */
		"{\"a\":1234567890123456789}", "{\"a\":-99999999999999999999}", /* 19+ digits */
		"{\"a\":\"\\u0000\"}", "{\"a\\u0000\":1}",          /* NUL */
		"{\"a\":\"\\ud83d\"}", "{\"a\":\"\\ude00\"}",        /* lone surrogates */
		"{\"a\":\"\\ud83d\\u0041\"}", "{\"a\":\"\\ud83dx\"}",
		"{\"a\":\"\xc3\"}", "{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xe0\x80\x80\"}",  /* bad UTF-8 */
		"{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}",
		"{\"a\":\"\xf5\x80\x80\x80\"}", "{\"a\":\"\x80\"}", "{\"a\":\"\xf0\x9f\x98\"}",
		"{\"a\":\"\x01\"}", "{\"a\":tru}", "{\"a\":01}", /* not JSON at all */
		NULL
	};
	for (const char *const *t = yes; *t; t++)
		check_doc(*t, strlen(*t), 1);
	for (const char *const *t = no; *t; t++)
		check_doc(*t, strlen(*t), 0);
	check_doc("{\"a\":\"x\0y\"}", 9, 0);        /* a NUL byte */
	check_doc("{\"a\":1}", 5, 0);                 /* the length is the end */
	check_doc(NULL, 0, 0);

	/* every text the reader vouches for, jansson reads alike: one answer
	 * mutated byte by byte towards what breaks either */
	static const char base[] = "{\"results\":[{\"id\":\"801\",\"properties\":"
		"{\"email\":\"a\\u00e9@x.io\",\"n\":12},\"ok\":true}],\"errors\":[]}";
	static const char subst[] = "\"\\u0d8e9{}[],:-.x \xc3\xa9\xed\xf0";
	unsigned seed = 1;
	size_t n = sizeof(base) - 1;
	char *buf = malloc(n + 1);
	for (int round = 0; round < 20000; round++) {
		memcpy(buf, base, n + 1);
		for (int m = 0; m < 1 + round % 3; m++) {
			seed = seed * 1103515245u + 12345u;
			buf[(seed >> 8) % n] = subst[(seed >> 20) % (sizeof(subst) - 1)];
		}
		struct retl_pv top;
		json_error_t je;
		int got = retl_json_doc(buf, n, &top);
		json_t *j = json_loadb(buf, n, 0, &je);
		if (got) {
			json_t *mine = as_json(&top);
			if (!j || !json_equal(mine, j))
				fprintf(stderr, "vouched for, jansson differs: %s\n", buf);
			CHECK(j && json_equal(mine, j));
			json_decref(mine);
		}
		json_decref(j);
	}
	free(buf);
}

/* long strings are read eight bytes at a time: a byte that needs a look
 * is seen at every offset of a word */
static void test_long_strings(void)
{
	for (int at = 0; at < 24; at++) {
		char t[64], *got;
		struct retl_pv top;
		snprintf(t, sizeof(t), "{\"a\":\"%.*s%c%.*s\"}", at, "abcdefghijklmnopqrstuvwx",
			 '\x01', 23 - at, "abcdefghijklmnopqrstuvwx");
		got = walk(t);
		CHECK_STR(got, "ERR");          /* a control byte */
		free(got);
		t[6 + at] = '\xc3';             /* a lone UTF-8 lead byte */
		CHECK(retl_json_doc(t, strlen(t), &top) == 0);
		t[6 + at] = '\\';               /* an escape: \b (or \" at the end) */
		if (at < 23)
			t[7 + at] = 'b';
		got = walk(t);
		CHECK(at == 23 ? !strcmp(got, "ERR") : strcmp(got, "ERR") != 0);
		free(got);
		CHECK(retl_json_doc(t, strlen(t), &top) == (at < 23));
		t[6 + at] = '"';                /* the string ends early */
		got = walk(t);
		CHECK_STR(got, "ERR");
		free(got);
	}
}

int main(void)
{
	test_long_strings();
	test_doc();
	test_members();
	test_malformed();
	test_strings();
	test_nested_and_get();
	TEST_DONE();
}
