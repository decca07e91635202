/*
 * fuzz_cache.c - the cache image reader (src/cache.c retl_cache_load): the
 * input is the file a state directory would hold.  Anyone who can write
 * the state directory can drop one, so every size, count and probe in it
 * is untrusted.
 *
 * The image (format 04 since issue 16: a header, then the entries one
 * after the other) carries an XXH3 checksum of its entries seeded with
 * the XXH3 of its header (checksum field zero), which random mutation
 * never gets right; so each input is tried as it is, and again with the
 * checksum field (header bytes 40..47) set right, the way someone who
 * means harm writes it.  The generation is the header's own (bytes
 * 8..15).  A loaded image is then used as a run uses it: every entry
 * walked and looked up, some forgotten, new keys looked up and added
 * (the cache grows), and saved and loaded again: the round trip keeps
 * exactly the entries not forgotten.
 */
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "cache.h"
#include "fuzz.h"

#define HDR 64      /* sizeof(struct image_header) in src/cache.c */

static void use(retl_cache *c, uint64_t gen)
{
	size_t it = 0, n = 0, kept;
	struct retl_cache_entry *e;
	/* a loaded image indexes every entry: each is found as itself */
	while ((e = retl_cache_next(c, &it))) {
		if (retl_cache_find(c, e->kh) != e)
			fz_fail("a loaded entry is not found", NULL);
		/* a run forgets rows that left the model: every third here */
		if (++n % 3 == 0 && retl_cache_forget(c, e->kh) != 1)
			fz_fail("forget missed a loaded entry", NULL);
	}
	/* a run adds the rows that are new, and looks up missing ones */
	for (uint64_t k = 1; k <= 40; k++) {
		retl_h128 kh = { k * 0x9e3779b97f4a7c15ull, k };
		int created = 0;
		retl_cache_find(c, kh);
		if (!retl_cache_upsert(c, kh, &created))
			fz_fail("upsert gave no entry", NULL);
	}
	/* what is saved loads back, forgotten entries left out */
	kept = retl_cache_count(c);
	char *path = fz_path("cache.again");
	retl_cache *d = NULL;
	const char *why = NULL;
	if (retl_cache_save(c, path, gen) < 0)
		fz_fail("save failed", path);
	if (retl_cache_load(&d, path, gen, &why) != 0)
		fz_fail("a saved image does not load", why);
	if (retl_cache_count(d) != kept)
		fz_fail("the round trip changed the row count", NULL);
	for (it = 0; (e = retl_cache_next(c, &it));)
		if (!retl_cache_find(d, e->kh))
			fz_fail("the round trip lost an entry", NULL);
	retl_cache_free(d);
	free(path);
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
			use(c, gen);
			retl_cache_free(c);
		}
		free(path);
	}
	free(img);
	return 0;
}
