/*
 * fuzz_copy.c - the COPY text decoder (src/copy.c): the input is one line
 * (decoded with several expected column counts, and again with the same
 * warm buffers).  Checks copy.h's promises: fields = tabs + 1, a value's
 * length is its bytes, NULL only for \N, never longer than the input.
 */
#include <stdint.h>
#include <string.h>

#include "copy.h"
#include "fuzz.h"

static void check(const struct retl_copy_line *l, size_t nf, const uint8_t *data,
		  size_t size)
{
	size_t tabs = 0, total = 0;
	for (size_t i = 0; i < size; i++)
		tabs += data[i] == '\t';
	if (nf != tabs + 1)
		fz_fail("field count is not tabs + 1", NULL);
	for (size_t i = 0; i < nf; i++) {
		if (!l->vals[i]) {
			if (l->lens[i])
				fz_fail("a NULL field with a length", NULL);
			continue;
		}
		if (l->vals[i][l->lens[i]] != '\0')
			fz_fail("a value not NUL-terminated at its length", NULL);
		total += l->lens[i];
	}
	if (total > size)
		fz_fail("decoded text longer than the line", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t expect[] = { 0, 1, 3, 64 };
	struct retl_copy_line l;
	memset(&l, 0, sizeof(l));
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		/* a copy of exactly size bytes: ASan sees a read past the end */
		char *raw = malloc(size ? size : 1);
		memcpy(raw, data, size);
		size_t nf = retl_copy_decode_line(&l, raw, size, expect[i]);
		free(raw);
		check(&l, nf, data, size);
	}
	retl_copy_line_free(&l);
	return 0;
}
