/*
 * hash.h - the hashes retl keeps (xxHash's XXH3).
 *
 *   key hash      XXH3-128 of the key text: identifies a row in the cache
 *   source hash   XXH3-64 of the row's raw COPY line, seeded with the
 *                 mapping fingerprint: equal => the row need not be mapped
 *   payload hash  XXH3-128 of the canonical payload: what was acknowledged
 */
#ifndef RETL_HASH_H
#define RETL_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct retl_h128 {
	uint64_t lo, hi;
} retl_h128;

retl_h128 retl_hash128(const void *data, size_t len);
uint64_t retl_hash64(const void *data, size_t len, uint64_t seed);
static inline int retl_h128_eq(retl_h128 a, retl_h128 b)
{
	return a.lo == b.lo && a.hi == b.hi;
}
static inline int retl_h128_zero(retl_h128 a)
{
	return !a.lo && !a.hi;
}
/* 32 lowercase hex digits + NUL */
void retl_h128_hex(retl_h128 h, char out[33]);

#endif
