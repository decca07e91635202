/*
 * test_copy.c - the COPY text-format line decoder: splitting on tabs, \N,
 * every backslash escape PostgreSQL writes (and the ones it only reads),
 * empty strings vs NULL, field counts, buffer reuse and growth.  Every check
 * compares the exact decoded bytes and lengths.
 */
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "test.h"

static struct retl_copy_line L;

/* decodes a NUL-terminated line with no expectation of its column count */
static size_t decode(const char *line)
{
	return retl_copy_decode_line(&L, line, strlen(line), 0);
}

/* field i is exactly want[0..len), NUL-terminated after it */
static int field_is(size_t i, const char *want, size_t len)
{
	if (L.vals[i] && L.lens[i] == len && !memcmp(L.vals[i], want, len) &&
	    L.vals[i][len] == '\0')
		return 1;
	fprintf(stderr, "field %zu: got ", i);
	if (!L.vals[i]) {
		fprintf(stderr, "NULL");
	} else {
		fprintf(stderr, "%zu bytes:", L.lens[i]);
		for (size_t k = 0; k < L.lens[i]; k++)
			fprintf(stderr, " %02x", (unsigned char)L.vals[i][k]);
	}
	fprintf(stderr, ", want %zu bytes:", len);
	for (size_t k = 0; k < len; k++)
		fprintf(stderr, " %02x", (unsigned char)want[k]);
	fprintf(stderr, "\n");
	return 0;
}

#define CHECK_FIELD(i, want, len) CHECK(field_is((i), (want), (len)))
#define CHECK_FIELD_STR(i, want) CHECK(field_is((i), (want), strlen(want)))
#define CHECK_NULL(i) CHECK(L.vals[i] == NULL && L.lens[i] == 0)

static void test_plain(void)
{
	CHECK(decode("a\tbc\tdef") == 3);
	CHECK_FIELD_STR(0, "a");
	CHECK_FIELD_STR(1, "bc");
	CHECK_FIELD_STR(2, "def");

	CHECK(decode("one field, no tab") == 1);
	CHECK_FIELD_STR(0, "one field, no tab");

	/* UTF-8 passes through untouched */
	CHECK(decode("caf\xc3\xa9\t\xe2\x82\xac") == 2);
	CHECK_FIELD(0, "caf\xc3\xa9", 5);
	CHECK_FIELD(1, "\xe2\x82\xac", 3);
}

static void test_null_and_empty(void)
{
	CHECK(decode("\\N\tx\t\\N") == 3);
	CHECK_NULL(0);
	CHECK_FIELD_STR(1, "x");
	CHECK_NULL(2);

	/* empty strings are not NULL */
	CHECK(decode("\t\\N\t") == 3);
	CHECK_FIELD(0, "", 0);
	CHECK_NULL(1);
	CHECK_FIELD(2, "", 0);

	/* an empty line is one empty string (a one-column row of '') */
	CHECK(decode("") == 1);
	CHECK_FIELD(0, "", 0);

	CHECK(decode("\\N") == 1);
	CHECK_NULL(0);

	/* \N is NULL only as a whole field */
	CHECK(decode("\\\\N\t\\Nx\ta\\N\t\\N\\N") == 4);
	CHECK_FIELD_STR(0, "\\N");
	CHECK_FIELD_STR(1, "Nx");
	CHECK_FIELD_STR(2, "aN");
	CHECK_FIELD_STR(3, "NN");
}

static void test_trailing_field(void)
{
	CHECK(decode("a\t") == 2);
	CHECK_FIELD_STR(0, "a");
	CHECK_FIELD(1, "", 0);

	CHECK(decode("a\t\\N") == 2);
	CHECK_FIELD_STR(0, "a");
	CHECK_NULL(1);

	CHECK(decode("\t\t") == 3);
	CHECK_FIELD(0, "", 0);
	CHECK_FIELD(1, "", 0);
	CHECK_FIELD(2, "", 0);
}

static void test_escapes(void)
{
	static const struct {
		const char *in;
		const char *out;
		size_t len;
	} cases[] = {
		/* what COPY TO writes */
		{ "\\b", "\b", 1 },
		{ "\\f", "\f", 1 },
		{ "\\n", "\n", 1 },
		{ "\\r", "\r", 1 },
		{ "\\t", "\t", 1 },
		{ "\\v", "\v", 1 },
		{ "\\\\", "\\", 1 },
		{ "a\\\\b", "a\\b", 3 },
		{ "\\\\\\\\", "\\\\", 2 },
		{ "line1\\nline2\\r\\n", "line1\nline2\r\n", 13 },
		/* octal: one to three digits, modulo 256 */
		{ "\\101", "A", 1 },
		{ "\\7", "\a", 1 },
		{ "\\12", "\n", 1 },
		{ "\\0", "\0", 1 },
		{ "\\000x", "\0x", 2 },
		{ "\\1234", "S4", 2 },
		{ "\\377", "\xff", 1 },
		{ "\\400", "\0", 1 },
		{ "\\303\\251", "\xc3\xa9", 2 },
		{ "\\18", "\0018", 2 },
		/* hex: one or two digits, either case */
		{ "\\x41", "A", 1 },
		{ "\\x4", "\x04", 1 },
		{ "\\x4g", "\x04g", 2 },
		{ "\\x414", "A4", 2 },
		{ "\\xff", "\xff", 1 },
		{ "\\xAb", "\xab", 1 },
		{ "\\x00", "\0", 1 },
		{ "\\xg", "xg", 2 },
		{ "\\x", "x", 1 },
		/* any other escaped character stands for itself */
		{ "\\q", "q", 1 },
		{ "\\8", "8", 1 },
		{ "\\.", ".", 1 },
		{ "\\\"", "\"", 1 },
		/* a backslash that ends the line stands for itself */
		{ "\\", "\\", 1 },
		{ "abc\\", "abc\\", 4 },
		{ "\\n\\", "\n\\", 2 },
		/* text around escapes */
		{ "x\\ty\\nz", "x\ty\nz", 5 },
		{ "pre\\x41post", "preApost", 8 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = decode(cases[i].in);
		int ok = n == 1 && field_is(0, cases[i].out, cases[i].len);
		if (!ok)
			fprintf(stderr, "escape case %zu: \"%s\" (%zu fields)\n", i,
				cases[i].in, n);
		CHECK(ok);
	}
}

static void test_escapes_in_fields(void)
{
	/* an escaped tab stays inside its field; a raw tab splits */
	CHECK(decode("a\\tb\tc") == 2);
	CHECK_FIELD_STR(0, "a\tb");
	CHECK_FIELD_STR(1, "c");

	/* a backslash right before a raw tab ends its field as itself */
	CHECK(decode("a\\\tb") == 2);
	CHECK_FIELD_STR(0, "a\\");
	CHECK_FIELD_STR(1, "b");

	/* an escape's digits stop at the field's end */
	CHECK(decode("\\1\t23\t\\x4\t1") == 4);
	CHECK_FIELD(0, "\001", 1);
	CHECK_FIELD_STR(1, "23");
	CHECK_FIELD(2, "\x04", 1);
	CHECK_FIELD_STR(3, "1");

	/* a decoded NUL stays in the value and counts in its length */
	CHECK(decode("a\\000b\t\\N\tc") == 3);
	CHECK_FIELD(0, "a\0b", 3);
	CHECK_NULL(1);
	CHECK_FIELD_STR(2, "c");
}

static void test_field_count(void)
{
	/* fewer or more fields than expected: the count says so */
	CHECK(retl_copy_decode_line(&L, "a\tb", 3, 3) == 2);
	CHECK_FIELD_STR(0, "a");
	CHECK_FIELD_STR(1, "b");
	CHECK(retl_copy_decode_line(&L, "a\tb\tc\td", 7, 2) == 4);
	CHECK_FIELD_STR(0, "a");
	CHECK_FIELD_STR(3, "d");

	/* raw need not be NUL-terminated: only len bytes are read */
	const char raw[] = { 'x', '\t', 'y', '\\', 'n', '\t', 'z' };
	CHECK(retl_copy_decode_line(&L, raw, 5, 2) == 2);
	CHECK_FIELD_STR(0, "x");
	CHECK_FIELD_STR(1, "y\n");

	/* the input is not written to */
	char line[] = "k\\tv\t\\N";
	CHECK(decode(line) == 2);
	CHECK(!strcmp(line, "k\\tv\t\\N"));
}

static void test_reuse_and_growth(void)
{
	/* many fields and a long line: the buffers grow */
	enum { NF = 1000 };
	char *big = malloc(NF * 8 + 1);
	size_t len = 0;
	for (size_t i = 0; i < NF; i++)
		len += (size_t)sprintf(big + len, "%s%zu\\t", i ? "\t" : "", i);
	CHECK(decode(big) == NF);
	int bad = 0;
	for (size_t i = 0; i < NF; i++) {
		char want[16];
		int n = snprintf(want, sizeof(want), "%zu\t", i);
		if (L.lens[i] != (size_t)n || memcmp(L.vals[i], want, (size_t)n))
			bad++;
	}
	CHECK(bad == 0);
	free(big);

	/* a short line after it reads only its own bytes */
	CHECK(decode("s\t\\N") == 2);
	CHECK_FIELD_STR(0, "s");
	CHECK_NULL(1);

	/* reserve makes vals/lens usable before any line (zero-column rows) */
	struct retl_copy_line fresh = { 0 };
	retl_copy_line_reserve(&fresh, 1);
	CHECK(fresh.vals != NULL && fresh.lens != NULL && fresh.fieldcap == 1);
	retl_copy_line_reserve(&fresh, 1);
	CHECK(fresh.fieldcap == 1);
	retl_copy_line_free(&fresh);
	CHECK(fresh.vals == NULL && fresh.buf == NULL && fresh.fieldcap == 0);
}

int main(void)
{
	test_plain();
	test_null_and_empty();
	test_trailing_field();
	test_escapes();
	test_escapes_in_fields();
	test_field_count();
	test_reuse_and_growth();
	retl_copy_line_free(&L);
	TEST_DONE();
}
