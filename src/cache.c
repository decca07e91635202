/*
 * cache.c - one sync's hash cache, see cache.h.
 *
 * Open addressing with linear probing over an array of 48-byte entries.
 * The key is already a uniform 128-bit hash, so its low word is used as is
 * and mapped onto the table with Lemire's fastrange (multiply, keep the high
 * word) instead of a modulo: that frees the capacity from being a power of
 * two, so a million-row cache costs 1.25M slots (60 MB) rather than 2M.
 *
 * An all-zero key hash marks an empty slot, which keeps a new table a plain
 * calloc (the kernel hands zero pages lazily).  A real key hashing to {0,0}
 * is stored as {1,0}; iteration shows the remapped hash, and a real key that
 * hashes to {1,0} would share its slot (a 2^-128 event, accepted).
 *
 * The table grows by 1.5x when it passes a load of 0.8.
 */
#include "cache.h"

#include <assert.h>
#include <stdlib.h>

#include "buf.h"

static_assert(sizeof(struct retl_cache_entry) == 48,
	      "cache entries are 48 bytes; see cache.h");

struct retl_cache {
	struct retl_cache_entry *slots;
	size_t cap;
	size_t count;
	size_t grow_at;                 /* count that triggers growth */
};

static inline retl_h128 remap(retl_h128 kh)
{
	if (!kh.lo && !kh.hi)
		kh.lo = 1;
	return kh;
}

static inline size_t home(const struct retl_cache *c, retl_h128 kh)
{
	return (size_t)(((unsigned __int128)kh.lo * c->cap) >> 64);
}

static void alloc_slots(struct retl_cache *c, size_t cap)
{
	c->slots = retl_calloc(cap, sizeof(*c->slots));
	c->cap = cap;
	c->grow_at = cap / 5 * 4 + cap % 5 * 4 / 5;     /* floor(0.8 * cap) */
}

retl_cache *retl_cache_new(size_t expected)
{
	struct retl_cache *c = retl_calloc(1, sizeof(*c));
	size_t cap = expected + expected / 4 + 16;

	if (cap < 16)
		cap = 16;
	alloc_slots(c, cap);
	return c;
}

void retl_cache_free(retl_cache *c)
{
	if (!c)
		return;
	free(c->slots);
	free(c);
}

static void grow(struct retl_cache *c)
{
	struct retl_cache_entry *old = c->slots;
	size_t old_cap = c->cap, i;

	alloc_slots(c, old_cap + old_cap / 2);
	for (i = 0; i < old_cap; i++) {
		size_t j;

		if (retl_h128_zero(old[i].kh))
			continue;
		j = home(c, old[i].kh);
		while (!retl_h128_zero(c->slots[j].kh))
			if (++j == c->cap)
				j = 0;
		c->slots[j] = old[i];
	}
	free(old);
}

struct retl_cache_entry *retl_cache_upsert(retl_cache *c, retl_h128 kh,
					   int *created)
{
	struct retl_cache_entry *e;
	size_t i;

	kh = remap(kh);
	i = home(c, kh);
	for (;;) {
		e = &c->slots[i];
		if (e->kh.lo == kh.lo && e->kh.hi == kh.hi) {
			if (created)
				*created = 0;
			return e;
		}
		if (!e->kh.lo && !e->kh.hi)
			break;
		if (++i == c->cap)
			i = 0;
	}
	if (c->count >= c->grow_at) {
		/* the slot found above moves with the rehash: probe again */
		grow(c);
		i = home(c, kh);
		while (!retl_h128_zero(c->slots[i].kh))
			if (++i == c->cap)
				i = 0;
		e = &c->slots[i];
	}
	e->kh = kh;
	c->count++;
	if (created)
		*created = 1;
	return e;
}

struct retl_cache_entry *retl_cache_find(retl_cache *c, retl_h128 kh)
{
	size_t i;

	kh = remap(kh);
	i = home(c, kh);
	for (;;) {
		struct retl_cache_entry *e = &c->slots[i];

		if (e->kh.lo == kh.lo && e->kh.hi == kh.hi)
			return e;
		if (!e->kh.lo && !e->kh.hi)
			return NULL;
		if (++i == c->cap)
			i = 0;
	}
}

size_t retl_cache_count(const retl_cache *c)
{
	return c->count;
}

struct retl_cache_entry *retl_cache_next(retl_cache *c, size_t *iter)
{
	size_t i;

	for (i = *iter; i < c->cap; i++) {
		if (!retl_h128_zero(c->slots[i].kh)) {
			*iter = i + 1;
			return &c->slots[i];
		}
	}
	*iter = c->cap;
	return NULL;
}

size_t retl_cache_bytes(const retl_cache *c)
{
	return sizeof(*c) + c->cap * sizeof(*c->slots);
}
