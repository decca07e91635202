/*
 * fuzz_mapping.c - the field language on decoded rows (src/mapping*.c,
 * transform.c, cast.c): the input is one line of COPY text (src/copy.c
 * decodes it, as the source does), the row of a model with ten columns of
 * the types retl gives meaning to.  A fixed set of mappings (every
 * transform, every type, templates, constants, dotted targets, on_null) is
 * applied to it.  What each must hold:
 *   - a row is mapped or rejected with a reason, never anything else;
 *   - a payload is one JSON object (valid UTF-8, jansson reads it, its
 *     integers as doubles: a number-typed value keeps the database's
 *     digits, beyond what json_int_t holds);
 *   - canonical JSON is its own fixed point: the payload given back as a
 *     json column, and that again, come out byte for byte the same (issue
 *     13: -0.0 became "-0", then "0": sent again on every run).  The
 *     payload itself may differ from its canonical form only in number
 *     digits: a number-typed value keeps the digits the database gave
 *     ("12.50", src/cast.c), by design.
 */
#include <stdint.h>
#include <string.h>

#include "copy.h"
#include "fuzz.h"
#include "mapping.h"

static struct retl_column cols[] = {
	{ "id", 20 }, { "email", 25 }, { "mrr", 1700 }, { "active", 16 },
	{ "day", 1082 }, { "at", 1184 }, { "doc", 3802 }, { "score", 701 },
	{ "ts", 1114 }, { "n4", 23 },
};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

static const char *const specs[] = {
	/* every column as its natural type, nested targets */
	"{\"id\":\"id\",\"email\":\"email\",\"m.mrr\":\"mrr\",\"m.active\":\"active\","
	"\"d.day\":\"day\",\"d.at\":\"at\",\"doc\":\"doc\",\"score\":\"score\","
	"\"d.ts\":\"ts\",\"n4\":{\"from\":\"n4\",\"on_null\":\"skip\"}}",
	/* explicit types on other columns */
	"{\"i\":{\"from\":\"email\",\"type\":\"integer\"},"
	"\"n\":{\"from\":\"email\",\"type\":\"number\"},"
	"\"b\":{\"from\":\"email\",\"type\":\"boolean\"},"
	"\"d\":{\"from\":\"email\",\"type\":\"date\"},"
	"\"t\":{\"from\":\"email\",\"type\":\"datetime\"},"
	"\"j\":{\"from\":\"email\",\"type\":\"json\"},"
	"\"s\":{\"from\":\"doc\",\"type\":\"string\"},"
	"\"x.n\":{\"from\":\"mrr\",\"type\":\"number\",\"on_null\":\"skip\"},"
	"\"x.i\":{\"from\":\"score\",\"type\":\"integer\",\"on_null\":\"skip\"},"
	"\"x.t\":{\"from\":\"ts\",\"type\":\"datetime\"},"
	"\"x.d\":{\"from\":\"at\",\"type\":\"date\"}}",
	/* transforms */
	"{\"e\":{\"from\":\"email\",\"transform\":[\"trim\",\"lower\","
	"{\"default\":\"none@example.com\"}]},"
	"\"u\":{\"from\":\"email\",\"transform\":[\"upper\",{\"truncate\":5}]},"
	"\"r\":{\"from\":\"email\",\"transform\":[{\"replace\":\"([a-z]+)@(.*)\",\"with\":\"$2/$1\"}]},"
	"\"x\":{\"from\":\"email\",\"transform\":[{\"extract\":\"@([^.]*)\",\"group\":1}],\"on_null\":\"skip\"},"
	"\"mp\":{\"from\":\"email\",\"transform\":[{\"map\":{\"a\":\"b\",\"c\":null},\"default\":\"z\"}]},"
	"\"sp\":{\"from\":\"email\",\"transform\":[{\"split\":\",\"},\"trim\"]},"
	"\"spn\":{\"from\":\"email\",\"transform\":[{\"split\":\";\"}],\"type\":\"number\"},"
	"\"jn\":{\"from\":\"email\",\"transform\":[{\"split\":\",\"},{\"join\":\"|\"}]},"
	"\"tpl\":{\"template\":\"{{email}} <{{id}}> {{doc}}\",\"transform\":[{\"truncate\":40}]},"
	"\"v\":{\"value\":2.5},\"w\":{\"value\":\"x\",\"type\":\"string\"}}",
	/* a match that rejects */
	"{\"m\":{\"from\":\"email\",\"transform\":[{\"match\":\"^[^@\\\\s]+@[^@\\\\s]+$\"}]}}",
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

static retl_mapping *maps[NSPECS], *as_json;

static retl_mapping *compile(const char *spec, const struct retl_column *c, size_t n)
{
	json_error_t je;
	struct retl_err err;
	retl_mapping *m = NULL;
	json_t *j = json_loads(spec, 0, &je);
	retl_err_clear(&err);
	if (!j || retl_mapping_parse(&m, j, "fuzz", &err) < 0 ||
	    retl_mapping_bind(m, c, n, &err) < 0) {
		fprintf(stderr, "fuzz_mapping: %s: %s %s\n", spec, je.text, err.msg);
		abort();
	}
	json_decref(j);
	return m;
}

static void setup(void)
{
	static struct retl_column jcol[] = { { "p", 3802 } };
	for (size_t i = 0; i < NSPECS; i++)
		maps[i] = compile(specs[i], cols, NCOLS);
	as_json = compile("{\"p\":\"p\"}", jcol, 1);
}

/* the payload's canonical form, as a json column gives it, into out (the
 * value of {"p": ...}) */
static void canon(const char *p, size_t n, retl_buf *out, retl_buf *reason)
{
	const char *v[1] = { p };
	size_t l[1] = { n };
	struct retl_row row = { 1, v, l };
	retl_buf_reset(out);
	if (retl_mapping_apply(as_json, &row, out, reason) < 0)
		fz_fail("a payload is refused as a json value", reason->ptr);
	if (out->len < 6)
		fz_fail("a json column gave no object", out->ptr);
	memmove(out->ptr, out->ptr + 5, out->len - 6);
	retl_buf_truncate(out, out->len - 6);
}

/* canonicalising the canonical form changes nothing */
static void check_canonical(const retl_buf *pay, retl_buf *again, retl_buf *reason)
{
	static retl_buf twice;
	canon(pay->ptr, pay->len, again, reason);
	canon(again->ptr, again->len, &twice, reason);
	if (twice.len != again->len || memcmp(twice.ptr, again->ptr, again->len)) {
		fprintf(stderr, "payload:   %s\ncanonical: %s\nagain:     %s\n", pay->ptr,
			again->ptr, twice.ptr);
		fz_fail("canonical JSON is not its own fixed point", NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct retl_copy_line line;
	static retl_buf out, again, reason;
	const char *vals[NCOLS];
	size_t lens[NCOLS];
	if (!maps[0])
		setup();
	if (size > 1 << 14)
		return 0;
	size_t nf = retl_copy_decode_line(&line, (const char *)data, size, NCOLS);
	for (size_t i = 0; i < NCOLS; i++) {
		vals[i] = i < nf ? line.vals[i] : NULL;
		lens[i] = i < nf ? line.lens[i] : 0;
		/* PostgreSQL's text never holds a NUL byte (\000 in COPY
		 * text only comes from bytea's escapes): not a row it sends */
		if (vals[i] && memchr(vals[i], '\0', lens[i]))
			return 0;
	}
	struct retl_row row = { NCOLS, vals, lens };
	for (size_t i = 0; i < NSPECS; i++) {
		if (retl_mapping_apply(maps[i], &row, &out, &reason) < 0) {
			if (!reason.len)
				fz_fail("a row rejected without a reason", NULL);
			continue;
		}
		json_error_t je;
		json_t *j = json_loadb(out.ptr, out.len, JSON_DECODE_INT_AS_REAL, &je);
		if (!json_is_object(j))
			fz_fail("a payload is not a JSON object", out.ptr);
		json_decref(j);
		check_canonical(&out, &again, &reason);
	}
	return 0;
}
