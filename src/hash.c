/*
 * hash.c - see hash.h.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "hash.h"

#include <stdio.h>

retl_h128 retl_hash128(const void *data, size_t len)
{
	XXH128_hash_t h = XXH3_128bits(data, len);
	retl_h128 r = { h.low64, h.high64 };
	return r;
}

uint64_t retl_hash64(const void *data, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(data, len, seed);
}

void retl_h128_hex(retl_h128 h, char out[33])
{
	snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.hi,
		 (unsigned long long)h.lo);
}
