/*
 * fuzz_cache.c - the cache image reader (src/cache.c retl_cache_load): the
 * input is the file a state directory would hold.  Anyone who can write
 * the state directory can drop one, so every size, count and probe in it
 * is untrusted.
 *
 * The image carries an XXH3 checksum of its slots seeded with the XXH3 of
 * its header (checksum field zero), which random mutation never gets
 * right; so each input is tried as it is, and again with the checksum
 * field (header bytes 40..47) set right, the way someone who means harm
 * writes it.  The generation is the header's own
 * (bytes 8..15).  A loaded image is then used as a run uses it: every slot
 * walked and looked up, new keys looked up and added.
 */
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "cache.h"
#include "fuzz.h"

#define HDR 64      /* sizeof(struct image_header) in src/cache.c */

static void use(retl_cache *c)
{
	size_t it = 0;
	struct retl_cache_entry *e;
	/* a hostile image may hold keys where no probe finds them: that
	 * only makes rows new again, so find() is asked, not checked */
	while ((e = retl_cache_next(c, &it)))
		retl_cache_find(c, e->kh);
	/* a run adds the rows that are new, and looks up missing ones */
	for (uint64_t k = 1; k <= 40; k++) {
		retl_h128 kh = { k * 0x9e3779b97f4a7c15ull, k };
		int created = 0;
		retl_cache_find(c, kh);
		if (!retl_cache_upsert(c, kh, &created))
			fz_fail("upsert gave no entry", NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t gen = 0;
	if (size >= 16)
		memcpy(&gen, data + 8, 8);
	uint8_t *img = malloc(size ? size : 1);
	memcpy(img, data, size);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (size < HDR)
				break;
			memset(img + 40, 0, 8);
			uint64_t sum = XXH3_64bits_withSeed(img + HDR, size - HDR,
							    XXH3_64bits(img, HDR));
			memcpy(img + 40, &sum, 8);
		}
		char *path = fz_write("cache.img", img, size);
		retl_cache *c = NULL;
		const char *why = NULL;
		retl_cache_image_is(path, gen);
		if (retl_cache_load(&c, path, gen, &why) == 0) {
			use(c);
			retl_cache_free(c);
		}
		free(path);
	}
	free(img);
	return 0;
}
