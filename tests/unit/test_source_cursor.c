/*
 * test_source_cursor.c - the cursor path's COPY text line
 * (retl_source_copy_field, source_cursor.c): the bytes COPY ... TO STDOUT
 * writes for a field, which the engine hashes; and that copy.c's decoder
 * reads every such field back to the value it came from.
 */
#include "test.h"

#include <stdlib.h>

#include "buf.h"
#include "copy.h"
#include "source_int.h"

static const char *field(retl_buf *b, const char *v, size_t len)
{
	retl_buf_reset(b);
	retl_source_copy_field(b, v, len);
	return retl_buf_cstr(b);
}

#define F(b, s) field((b), (s), sizeof(s) - 1)

/* what PostgreSQL's CopyAttributeOutText writes (src/backend/commands/
 * copyto.c): letters for \b \f \n \r \t \v, a backslash before a
 * backslash, everything else (other control bytes, DEL, UTF-8) as is */
static void test_escapes_like_copy(void)
{
	retl_buf b = RETL_BUF_INIT;
	CHECK_STR(field(&b, NULL, 0), "\\N");
	CHECK_STR(F(&b, ""), "");
	CHECK_STR(F(&b, "plain"), "plain");
	CHECK_STR(F(&b, "tab\there"), "tab\\there");
	CHECK_STR(F(&b, "a\nb\rc"), "a\\nb\\rc");
	CHECK_STR(F(&b, "back\\slash"), "back\\\\slash");
	CHECK_STR(F(&b, "\\N"), "\\\\N");
	CHECK_STR(F(&b, "\b\f\v"), "\\b\\f\\v");
	CHECK_STR(F(&b, "bell\x07 esc\x1b del\x7f"), "bell\x07 esc\x1b del\x7f");
	CHECK_STR(F(&b, "\xc3\xbc \xe6\x97\xa5"), "\xc3\xbc \xe6\x97\xa5");
	CHECK_STR(F(&b, "\t\n\r\\"), "\\t\\n\\r\\\\");
	CHECK_STR(F(&b, "end\\"), "end\\\\");
	retl_buf_free(&b);
}

/* every byte but NUL (text values never hold one), alone and in company,
 * decodes back to itself */
static void test_decoder_reads_it_back(void)
{
	retl_buf b = RETL_BUF_INIT;
	struct retl_copy_line l = { 0 };
	int bad = 0;
	for (int c = 1; c < 256; c++) {
		char v[4] = { 'x', (char)c, (char)c, 'y' };
		retl_buf_reset(&b);
		retl_source_copy_field(&b, v, 4);
		retl_buf_addc(&b, '\t');
		retl_source_copy_field(&b, NULL, 0);
		retl_buf_addc(&b, '\t');
		retl_source_copy_field(&b, v + 1, 1);
		size_t nf = retl_copy_decode_line(&l, b.ptr, b.len, 3);
		if (nf != 3 || l.lens[0] != 4 || memcmp(l.vals[0], v, 4) ||
		    l.vals[1] != NULL || l.lens[2] != 1 || l.vals[2][0] != (char)c) {
			fprintf(stderr, "byte 0x%02x does not come back\n", c);
			bad++;
		}
	}
	CHECK(bad == 0);
	retl_copy_line_free(&l);
	retl_buf_free(&b);
}

int main(void)
{
	test_escapes_like_copy();
	test_decoder_reads_it_back();
	TEST_DONE();
}
