/*
 * test_transform.c - every transform at its edges, through the transform
 * API itself (retl_transform_parse / retl_transform_apply): lower and upper
 * over every byte value, trim over every byte value on each side and
 * inside, truncate at, under and over its length and at UTF-8 boundaries,
 * and the empty string and null through each transform.
 *
 * The documented behaviour (transform.c's header, README "The field
 * language"): trim strips ASCII whitespace (space \t \n \v \f \r) only;
 * lower/upper change ASCII letters only, other bytes (so every byte of a
 * multibyte UTF-8 character) pass unchanged; truncate counts code points;
 * null passes every transform unchanged but default.  The sweeps below go
 * over all 256 byte values so a letter or a whitespace character left out
 * (or one added) shows up by name.
 */
#include "transform.h"

#include <stdlib.h>
#include <string.h>

#include "test.h"

static struct retl_err err;
static retl_buf reason = RETL_BUF_INIT;

static int parse(struct retl_transform *t, const char *spec)
{
	json_error_t je;
	json_t *j = json_loads(spec, JSON_DECODE_ANY, &je);
	if (!j) {
		fprintf(stderr, "bad test json: %s: %s\n", spec, je.text);
		return -1;
	}
	retl_err_clear(&err);
	int rc = retl_transform_parse(t, j, "t", &err);
	json_decref(j);
	if (rc < 0)
		fprintf(stderr, "%s: %s\n", spec, err.msg);
	return rc;
}

/*
 * spec applied to the scalar s[0..len) (NULL: null); the result as a
 * malloc'd string: the text, "<null>", or "REJECT <reason>"
 */
static char *apply_n(const char *spec, const char *s, size_t len)
{
	struct retl_transform t;
	struct retl_val in, out;
	char *res;
	if (parse(&t, spec) < 0) {
		retl_transform_release(&t);
		return strdup("PARSE ERROR");
	}
	retl_val_init(&in);
	retl_val_init(&out);
	if (s)
		retl_val_push(&in, s, len);
	else
		retl_val_push_null(&in);
	if (retl_transform_apply(&t, &in, &out, "f", &reason) < 0) {
		size_t n = strlen("REJECT ") + reason.len + 1;
		res = malloc(n);
		snprintf(res, n, "REJECT %s", retl_buf_cstr(&reason));
	} else if (out.is_array || out.n != 1) {
		res = strdup("<not a scalar>");
	} else if (out.items[0].null) {
		res = strdup("<null>");
	} else {
		res = malloc(out.items[0].len + 1);
		memcpy(res, retl_val_str(&out, 0), out.items[0].len);
		res[out.items[0].len] = '\0';
	}
	retl_val_free(&in);
	retl_val_free(&out);
	retl_transform_release(&t);
	return res;
}

static char *apply(const char *spec, const char *s)
{
	return apply_n(spec, s, s ? strlen(s) : 0);
}

/* CHECK_STR on apply()'s result, freeing it */
#define CHECK_APPLY(spec, s, want) do { \
	char *got_ = apply(spec, s); \
	CHECK_STR(got_, want); \
	free(got_); \
} while (0)

/* ---- lower / upper ------------------------------------------------------ */

static void test_case_every_byte(void)
{
	static const char *const specs[] = { "\"lower\"", "\"upper\"" };
	for (int up = 0; up < 2; up++) {
		/* one value holding every byte 1..255: one pass of the transform
		 * over all of them, compared byte by byte with the documented map */
		char all[255];
		for (int c = 1; c < 256; c++)
			all[c - 1] = (char)c;
		char *got = apply_n(specs[up], all, sizeof(all));
		CHECK(strlen(got) == sizeof(all));
		for (int c = 1; c < 256 && strlen(got) == sizeof(all); c++) {
			int want = c;
			if (up && c >= 'a' && c <= 'z')
				want = c - 'a' + 'A';
			if (!up && c >= 'A' && c <= 'Z')
				want = c - 'A' + 'a';
			if ((unsigned char)got[c - 1] != want) {
				fprintf(stderr, "%s: byte 0x%02x became 0x%02x, want 0x%02x\n",
					specs[up], c, (unsigned char)got[c - 1], want);
				test_failed++;
			} else {
				test_passed++;
			}
		}
		free(got);
	}
	/* each letter alone, and as the first and the last byte of a value
	 * (a loop that stops one short shows here) */
	for (char c = 'A'; c <= 'Z'; c++) {
		char upper[4] = { c, 0 }, lower[4] = { (char)(c + 32), 0 };
		CHECK_APPLY("\"lower\"", upper, lower);
		CHECK_APPLY("\"upper\"", lower, upper);
		char mixed[4] = { c, '-', c, 0 }, mixed_l[4] = { (char)(c + 32), '-', (char)(c + 32), 0 };
		CHECK_APPLY("\"lower\"", mixed, mixed_l);
		CHECK_APPLY("\"upper\"", mixed_l, mixed);
	}
	CHECK_APPLY("\"lower\"", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz");
	CHECK_APPLY("\"upper\"", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
	CHECK_APPLY("\"lower\"", "Zoe@ZZ.COM", "zoe@zz.com");
	/* the neighbours of the ranges stay: @ [ ` { */
	CHECK_APPLY("\"lower\"", "@[`{", "@[`{");
	CHECK_APPLY("\"upper\"", "@[`{", "@[`{");
	/* non-ASCII passes unchanged (ASCII case only): É é ß Σ σ Ǆ, and the
	 * result is still the same valid UTF-8 */
	CHECK_APPLY("\"lower\"", "\xc3\x89\xc3\xa9\xc3\x9f\xce\xa3\xcf\x83\xc7\x84Z",
		    "\xc3\x89\xc3\xa9\xc3\x9f\xce\xa3\xcf\x83\xc7\x84z");
	CHECK_APPLY("\"upper\"", "a\xc3\x89\xc3\xa9\xc3\x9f\xce\xa3\xcf\x83\xc7\x84",
		    "A\xc3\x89\xc3\xa9\xc3\x9f\xce\xa3\xcf\x83\xc7\x84");
	/* fullwidth Ａ (U+FF21) is not ASCII either */
	CHECK_APPLY("\"lower\"", "\xef\xbc\xa1", "\xef\xbc\xa1");
	CHECK_APPLY("\"lower\"", "", "");
	CHECK_APPLY("\"upper\"", "", "");
	CHECK_APPLY("\"lower\"", NULL, "<null>");
	CHECK_APPLY("\"upper\"", NULL, "<null>");
}

/* ---- trim ----------------------------------------------------------------- */

static int documented_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
	       c == '\r';
}

static void test_trim_every_byte(void)
{
	/* every byte 1..255 before, after, both sides, twice, and inside */
	for (int c = 1; c < 256; c++) {
		char ch = (char)c;
		char lead[4] = { ch, 'x', 0 }, trail[4] = { 'x', ch, 0 };
		char both[8] = { ch, ch, 'x', ch, ch, 0 };
		char inside[4] = { 'x', ch, 'y', 0 }, alone[2] = { ch, 0 };
		char *g;
		int sp = documented_space(c);
		g = apply("\"trim\"", lead);
		if (strcmp(g, sp ? "x" : lead)) {
			fprintf(stderr, "trim: leading 0x%02x: got \"%s\"\n", c, g);
			test_failed++;
		} else {
			test_passed++;
		}
		free(g);
		g = apply("\"trim\"", trail);
		if (strcmp(g, sp ? "x" : trail)) {
			fprintf(stderr, "trim: trailing 0x%02x: got \"%s\"\n", c, g);
			test_failed++;
		} else {
			test_passed++;
		}
		free(g);
		g = apply("\"trim\"", both);
		if (strcmp(g, sp ? "x" : both)) {
			fprintf(stderr, "trim: 2 each side 0x%02x: got \"%s\"\n", c, g);
			test_failed++;
		} else {
			test_passed++;
		}
		free(g);
		g = apply("\"trim\"", alone);
		if (strcmp(g, sp ? "" : alone)) {
			fprintf(stderr, "trim: only 0x%02x: got \"%s\"\n", c, g);
			test_failed++;
		} else {
			test_passed++;
		}
		free(g);
		/* inside is always kept */
		g = apply("\"trim\"", inside);
		if (strcmp(g, inside)) {
			fprintf(stderr, "trim: inside 0x%02x: got \"%s\"\n", c, g);
			test_failed++;
		} else {
			test_passed++;
		}
		free(g);
	}
	/* every documented whitespace character at once, both sides, with
	 * all of them inside too */
	CHECK_APPLY("\"trim\"", " \t\n\v\f\ra \t\n\v\f\rb \t\n\v\f\r", "a \t\n\v\f\rb");
	CHECK_APPLY("\"trim\"", "\r\f\v\n\t ", "");
	CHECK_APPLY("\"trim\"", "a", "a");
	CHECK_APPLY("\"trim\"", "ab", "ab");
	CHECK_APPLY("\"trim\"", "a ", "a");
	CHECK_APPLY("\"trim\"", " a", "a");
	CHECK_APPLY("\"trim\"", "", "");
	CHECK_APPLY("\"trim\"", NULL, "<null>");
	/* ASCII only: Unicode spaces stay (NBSP U+00A0, EM SPACE U+2003,
	 * IDEOGRAPHIC SPACE U+3000, NEL U+0085), on either side */
	CHECK_APPLY("\"trim\"", "\xc2\xa0x\xc2\xa0", "\xc2\xa0x\xc2\xa0");
	CHECK_APPLY("\"trim\"", "\xe2\x80\x83x\xe3\x80\x80", "\xe2\x80\x83x\xe3\x80\x80");
	CHECK_APPLY("\"trim\"", " \xc2\x85x\xc2\x85 ", "\xc2\x85x\xc2\x85");
	/* a multibyte character next to the whitespace is not cut */
	CHECK_APPLY("\"trim\"", " \xc3\xa9 ", "\xc3\xa9");
}

/* ---- truncate ------------------------------------------------------------- */

static void test_truncate(void)
{
	/* ASCII: one under, at, one over the length */
	CHECK_APPLY("{\"truncate\": 5}", "abcd", "abcd");
	CHECK_APPLY("{\"truncate\": 5}", "abcde", "abcde");
	CHECK_APPLY("{\"truncate\": 5}", "abcdef", "abcde");
	CHECK_APPLY("{\"truncate\": 1}", "a", "a");
	CHECK_APPLY("{\"truncate\": 1}", "ab", "a");
	CHECK_APPLY("{\"truncate\": 0}", "a", "");
	CHECK_APPLY("{\"truncate\": 0}", "", "");
	CHECK_APPLY("{\"truncate\": 3}", "", "");
	CHECK_APPLY("{\"truncate\": 3}", NULL, "<null>");
	/* every length 0..8 of an 8-character value */
	for (int n = 0; n <= 9; n++) {
		char spec[32], want[16];
		snprintf(spec, sizeof(spec), "{\"truncate\": %d}", n);
		snprintf(want, sizeof(want), "%.*s", n, "abcdefgh");
		CHECK_APPLY(spec, "abcdefgh", want);
	}
	/* characters, not bytes: é is 2 bytes, € 3, 😀 4 */
	CHECK_APPLY("{\"truncate\": 2}", "\xc3\xa9\xc3\xa9", "\xc3\xa9\xc3\xa9");
	CHECK_APPLY("{\"truncate\": 2}", "\xc3\xa9\xc3\xa9\xc3\xa9", "\xc3\xa9\xc3\xa9");
	CHECK_APPLY("{\"truncate\": 3}", "\xc3\xa9\xc3\xa9", "\xc3\xa9\xc3\xa9");
	CHECK_APPLY("{\"truncate\": 1}", "\xe2\x82\xac\xe2\x82\xac", "\xe2\x82\xac");
	CHECK_APPLY("{\"truncate\": 1}", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
	CHECK_APPLY("{\"truncate\": 1}", "\xf0\x9f\x98\x80x", "\xf0\x9f\x98\x80");
	CHECK_APPLY("{\"truncate\": 0}", "\xf0\x9f\x98\x80", "");
	/* the cut lands right after a multibyte character, and right before */
	CHECK_APPLY("{\"truncate\": 2}", "a\xe2\x82\xac" "b", "a\xe2\x82\xac");
	CHECK_APPLY("{\"truncate\": 1}", "a\xe2\x82\xac" "b", "a");
	CHECK_APPLY("{\"truncate\": 3}", "a\xe2\x82\xac" "b", "a\xe2\x82\xac" "b");
	/* a combining mark is a code point of its own (e + U+0301) */
	CHECK_APPLY("{\"truncate\": 1}", "e\xcc\x81", "e");
}

/* ---- the rest: empty string and null -------------------------------------- */

static void test_others(void)
{
	/* default: null and "" are replaced, anything else (a space) is not */
	CHECK_APPLY("{\"default\": \"n/a\"}", NULL, "n/a");
	CHECK_APPLY("{\"default\": \"n/a\"}", "", "n/a");
	CHECK_APPLY("{\"default\": \"n/a\"}", " ", " ");
	CHECK_APPLY("{\"default\": \"n/a\"}", "x", "x");
	CHECK_APPLY("{\"default\": 0}", "", "0");
	CHECK_APPLY("{\"default\": false}", NULL, "false");
	/* replace */
	CHECK_APPLY("{\"replace\": \"[^0-9]\", \"with\": \"\"}", "", "");
	CHECK_APPLY("{\"replace\": \"[^0-9]\", \"with\": \"\"}", NULL, "<null>");
	CHECK_APPLY("{\"replace\": \"[^0-9]\", \"with\": \"\"}", "+1 (555) 010", "1555010");
	CHECK_APPLY("{\"replace\": \"^\", \"with\": \"x\"}", "", "x");
	CHECK_APPLY("{\"replace\": \"(a)\", \"with\": \"$1$1\"}", "aba", "aabaa");
	/* the output grows past the first guess of its size */
	{
		char in[201], want[1001];
		memset(in, 'a', 200);
		in[200] = 0;
		memset(want, 'b', 1000);
		want[1000] = 0;
		CHECK_APPLY("{\"replace\": \"a\", \"with\": \"bbbbb\"}", in, want);
	}
	/* extract: no match and a group that did not take part give null */
	CHECK_APPLY("{\"extract\": \"@(.*)$\"}", "a@b.c", "b.c");
	CHECK_APPLY("{\"extract\": \"@(.*)$\"}", "abc", "<null>");
	CHECK_APPLY("{\"extract\": \"@(.*)$\"}", "", "<null>");
	CHECK_APPLY("{\"extract\": \"@(.*)$\"}", NULL, "<null>");
	CHECK_APPLY("{\"extract\": \"@(.*)$\"}", "a@", "");
	CHECK_APPLY("{\"extract\": \"(x)|(y)\", \"group\": 2}", "x", "<null>");
	CHECK_APPLY("{\"extract\": \"b+\"}", "abbc", "bb");
	/* match: no match rejects, naming the field and the pattern */
	CHECK_APPLY("{\"match\": \"^a\"}", "ab", "ab");
	CHECK_APPLY("{\"match\": \"^a\"}", "ba", "REJECT f: value \"ba\" does not match ^a");
	CHECK_APPLY("{\"match\": \"^a\"}", "", "REJECT f: value \"\" does not match ^a");
	CHECK_APPLY("{\"match\": \"^$\"}", "", "");
	CHECK_APPLY("{\"match\": \"^a\"}", NULL, "<null>");
	/* map: exact bytes only; an unmapped value passes, or becomes the
	 * default; "" is a key like any other */
	CHECK_APPLY("{\"map\": {\"a\": \"1\", \"b\": null}}", "a", "1");
	CHECK_APPLY("{\"map\": {\"a\": \"1\", \"b\": null}}", "b", "<null>");
	CHECK_APPLY("{\"map\": {\"a\": \"1\", \"b\": null}}", "A", "A");
	CHECK_APPLY("{\"map\": {\"a\": \"1\", \"b\": null}}", "a ", "a ");
	CHECK_APPLY("{\"map\": {\"a\": \"1\", \"b\": null}}", "", "");
	CHECK_APPLY("{\"map\": {\"a\": \"1\", \"\": \"empty\"}}", "", "empty");
	CHECK_APPLY("{\"map\": {\"a\": \"1\"}, \"default\": \"z\"}", "c", "z");
	CHECK_APPLY("{\"map\": {\"a\": \"1\"}, \"default\": null}", "c", "<null>");
	CHECK_APPLY("{\"map\": {\"a\": \"1\"}, \"default\": \"z\"}", NULL, "<null>");
	CHECK_APPLY("{\"map\": {\"a\": 2, \"b\": true}}", "a", "2");
	CHECK_APPLY("{\"map\": {\"a\": 2, \"b\": true}}", "b", "true");
	/* split gives an array ("" an empty one); join of a scalar keeps it */
	CHECK_APPLY("{\"split\": \",\"}", "a,b", "<not a scalar>");
	CHECK_APPLY("{\"split\": \",\"}", NULL, "<null>");
	CHECK_APPLY("{\"join\": \",\"}", "a,b", "a,b");
	CHECK_APPLY("{\"join\": \",\"}", "", "");
	CHECK_APPLY("{\"join\": \",\"}", NULL, "<null>");
}

/* split then join: the array edges (empty parts, separators at the ends) */
static void test_split_join(void)
{
	struct retl_transform sp, jo;
	struct retl_val in, mid, out;
	static const struct { const char *in; size_t n; const char *joined; } cases[] = {
		{ "", 0, "" },
		{ "a", 1, "a" },
		{ ",", 2, "|" },
		{ "a,", 2, "a|" },
		{ ",a", 2, "|a" },
		{ "a,,b", 3, "a||b" },
		{ "a,b,c", 3, "a|b|c" },
	};
	CHECK(parse(&sp, "{\"split\": \",\"}") == 0);
	CHECK(parse(&jo, "{\"join\": \"|\"}") == 0);
	retl_val_init(&in);
	retl_val_init(&mid);
	retl_val_init(&out);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		retl_val_reset(&in);
		retl_val_push(&in, cases[i].in, strlen(cases[i].in));
		CHECK(retl_transform_apply(&sp, &in, &mid, "f", &reason) == 0);
		CHECK(mid.is_array);
		CHECK(mid.n == cases[i].n);
		CHECK(retl_transform_apply(&jo, &mid, &out, "f", &reason) == 0);
		CHECK(!out.is_array && out.n == 1);
		if (out.n == 1) {
			char buf[32];
			snprintf(buf, sizeof(buf), "%.*s", (int)out.items[0].len,
				 retl_val_str(&out, 0));
			CHECK_STR(buf, cases[i].joined);
		}
	}
	/* join leaves null elements out */
	retl_val_reset(&mid);
	mid.is_array = 1;
	retl_val_push(&mid, "a", 1);
	retl_val_push_null(&mid);
	retl_val_push(&mid, "b", 1);
	CHECK(retl_transform_apply(&jo, &mid, &out, "f", &reason) == 0);
	CHECK(out.n == 1 && out.items[0].len == 3 &&
	      !memcmp(retl_val_str(&out, 0), "a|b", 3));
	retl_val_free(&in);
	retl_val_free(&mid);
	retl_val_free(&out);
	retl_transform_release(&sp);
	retl_transform_release(&jo);
}

int main(void)
{
	test_case_every_byte();
	test_trim_every_byte();
	test_truncate();
	test_others();
	test_split_join();
	retl_buf_free(&reason);
	TEST_DONE();
}
