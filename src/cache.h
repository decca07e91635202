/*
 * cache.h - one sync's hash cache, in memory for the length of a run.
 *
 * A dense array of 48-byte entries in insertion order, found through an
 * index of 32-bit slot numbers (see cache.c): about 53-56 bytes a cached
 * row, growing without copying the entries.  Keys themselves stay in the
 * state store: the run only needs them for rows that left the model, and
 * reads those back from SQLite.
 */
#ifndef RETL_CACHE_H
#define RETL_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

enum retl_row_status {
	RETL_STATUS_NONE = 0,    /* new this run: nothing acknowledged yet */
	RETL_STATUS_OK = 1,      /* pay is what the destination acknowledged */
	RETL_STATUS_FAILED = 2,  /* last attempt rejected; retried every run */
	RETL_STATUS_PENDING = 3, /* create intent written, outcome unknown */
	RETL_STATUS_STAGED = 4,  /* handed to a destination that reports later
				  * (RETL_RES_DEFER); retried when still
				  * staged at the next run */
};

/*
 * 48 bytes: the four flags live in the top byte of the source hash, which
 * keeps 56 bits (compare it only through retl_cache_same_src).  The
 * source hash is the one to shorten: it is compared with one row's own
 * earlier hash (a false "unchanged" needs a 2^-56 accident on a changed
 * row), while the match hash meets every other match value of the run in
 * one set, where a birthday collision among millions of rows would refuse
 * a row as a duplicate: it keeps its 64 bits.
 */
#define RETL_CACHE_SRC_BITS 56
struct retl_cache_entry {
	retl_h128 kh;            /* key hash; never {0,0} (remapped) */
	retl_h128 pay;           /* acknowledged payload hash, {0,0} = none */
	uint64_t mh;             /* hash of the match value of the record the
				  * key is bound to (retl_match_hash), 0 = none */
	uint64_t src : RETL_CACHE_SRC_BITS; /* source hash of the acknowledged
				  * row, low 56 bits; 0 = none */
	uint64_t status : 4;     /* enum retl_row_status */
	uint64_t seen : 1;       /* met in this run's model */
	uint64_t cached : 1;     /* loaded from the state store (not new) */
	uint64_t sent : 1;       /* handed to the destination since its last
				  * acknowledgement: a record may exist */
	uint64_t gone : 1;       /* forgotten this run (retl_cache_forget):
				  * invisible to find, next and save */
};

/* 1 when e's source hash is src's (the 56 bits the entry keeps) */
static inline int retl_cache_same_src(const struct retl_cache_entry *e,
				      uint64_t src)
{
	return e->src == (src & ((UINT64_C(1) << RETL_CACHE_SRC_BITS) - 1));
}

typedef struct retl_cache retl_cache;

retl_cache *retl_cache_new(size_t expected);
void retl_cache_free(retl_cache *c);

/*
 * The entry of kh, created zeroed (status NONE, cached 0) when absent or
 * forgotten.  Pointers are valid until the next retl_cache_upsert or
 * retl_cache_reserve.  kh {0,0} is remapped internally so callers need
 * not care.
 */
struct retl_cache_entry *retl_cache_upsert(retl_cache *c, retl_h128 kh,
					   int *created);
/* kh's entry, NULL when absent or forgotten */
struct retl_cache_entry *retl_cache_find(retl_cache *c, retl_h128 kh);
/*
 * Forgets kh (a row that left the model and was removed from the state
 * store): find, next and save no longer see it and the count drops; a
 * later upsert of kh creates it again, zeroed.  Its 48 bytes stay in use
 * until the cache is saved and loaded.  1 when kh was there, else 0.
 */
int retl_cache_forget(retl_cache *c, retl_h128 kh);
/* starts fetching kh's index line into the CPU cache; bulk loads call it
 * for a run of keys before inserting them, so the memory latencies
 * overlap */
void retl_cache_prefetch(const retl_cache *c, retl_h128 kh);
/* entries not forgotten */
size_t retl_cache_count(const retl_cache *c);
/* room for n entries without growing: the index is sized for them (it is
 * rebuilt in place when it grows; the entries never move in memory but
 * by mremap) */
void retl_cache_reserve(retl_cache *c, size_t n);

/* iteration over the entries not forgotten, in insertion order:
 * for (i = 0; (e = retl_cache_next(c, &i));) */
struct retl_cache_entry *retl_cache_next(retl_cache *c, size_t *iter);

/* bytes held by the table, for the benchmark */
size_t retl_cache_bytes(const retl_cache *c);

/*
 * The cache image: the entries written to a file one after the other, so
 * the next run loads a million rows with one read instead of a million
 * SQLite rows.  It is only a copy: state.c writes it (after loading the
 * cache from SQLite, or from memory at the end of a run), stamps it with
 * the sync's cache generation (changed by every transaction that changes
 * the sync's rows), and uses it only while the generation still matches
 * and the checksum holds.  It holds what the next run loads: forgotten
 * entries are left out, and every entry is written with seen 0 and
 * cached 1, whatever this run made of them.
 *
 * Read back as untrusted input (see cache.c): sizes, checksum and the
 * table's rows are checked before any of it is used.
 *
 * save: 0 or -1 (errno set).  load: 0 with *out set; RETL_CACHE_IMAGE_NONE
 * (no file) or _STALE (another generation or format): no usable image, as
 * expected; _BAD: a damaged or crafted file, *why saying how (a static
 * string).  Neither is an error: the caller loads SQLite instead.
 */
enum {
	RETL_CACHE_IMAGE_NONE = 1,
	RETL_CACHE_IMAGE_STALE = 2,
	RETL_CACHE_IMAGE_BAD = 3,
};
int retl_cache_save(const retl_cache *c, const char *path, uint64_t gen);
int retl_cache_load(retl_cache **out, const char *path, uint64_t gen,
		    const char **why);
/* 1 when path holds an image of generation gen (header only) */
int retl_cache_image_is(const char *path, uint64_t gen);

#endif
