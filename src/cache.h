/*
 * cache.h - one sync's hash cache, in memory for the length of a run.
 *
 * An open-addressing table keyed by the 128-bit key hash (56 bytes a slot,
 * sized for a load of at most 0.8, so about 70 bytes a cached row).  Keys
 * themselves stay in the state store: the run only needs them for rows that
 * left the model, and reads those back from SQLite.
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

struct retl_cache_entry {
	retl_h128 kh;            /* key hash; {0,0} marks an empty slot */
	retl_h128 pay;           /* acknowledged payload hash, {0,0} = none */
	uint64_t src;            /* source hash of the acknowledged row, 0 = none */
	uint64_t mh;             /* hash of the match value of the record the
				  * key is bound to (retl_match_hash), 0 = none */
	uint8_t status;          /* enum retl_row_status */
	uint8_t seen;            /* met in this run's model */
	uint8_t cached;          /* loaded from the state store (not new) */
	uint8_t sent;            /* handed to the destination since its last
				  * acknowledgement: a record may exist */
};

typedef struct retl_cache retl_cache;

retl_cache *retl_cache_new(size_t expected);
void retl_cache_free(retl_cache *c);

/*
 * The entry of kh, created zeroed (status NONE, cached 0) when absent.
 * Pointers are valid until the next retl_cache_upsert.  kh {0,0} is
 * remapped internally so callers need not care.
 */
struct retl_cache_entry *retl_cache_upsert(retl_cache *c, retl_h128 kh,
					   int *created);
struct retl_cache_entry *retl_cache_find(retl_cache *c, retl_h128 kh);
/* kh's entry removed (none: nothing); other entries may move */
void retl_cache_forget(retl_cache *c, retl_h128 kh);
/* starts fetching kh's slot into the CPU cache; bulk loads call it for a
 * run of keys before inserting them, so the memory latencies overlap */
void retl_cache_prefetch(const retl_cache *c, retl_h128 kh);
size_t retl_cache_count(const retl_cache *c);
/* room for n entries without growing (growing copies the table: the
 * old and the new one are both alive for a moment) */
void retl_cache_reserve(retl_cache *c, size_t n);

/* iteration over occupied slots: for (i = 0; (e = retl_cache_next(c, &i));) */
struct retl_cache_entry *retl_cache_next(retl_cache *c, size_t *iter);

/* bytes held by the table, for the benchmark */
size_t retl_cache_bytes(const retl_cache *c);

/*
 * The cache image: the table written to a file as it is, so the next run
 * loads a million rows with one read instead of a million SQLite rows.  It
 * is only a copy: state.c writes it right after loading the cache from
 * SQLite, stamps it with the sync's cache generation (changed by every
 * transaction that changes the sync's rows), and uses it only while the
 * generation still matches and the checksum holds.
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
