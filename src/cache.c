/*
 * cache.c - one sync's hash cache, see cache.h.
 *
 * Open addressing with linear probing over an array of 56-byte entries.
 * The key is already a uniform 128-bit hash, so its low word is used as is
 * and mapped onto the table with Lemire's fastrange (multiply, keep the high
 * word) instead of a modulo: that frees the capacity from being a power of
 * two, so a million-row cache costs 1.25M slots (70 MB) rather than 2M.
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
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "buf.h"

static_assert(sizeof(struct retl_cache_entry) == 56,
	      "cache entries are 56 bytes; see cache.h");

struct retl_cache {
	struct retl_cache_entry *slots;
	size_t bytes;                   /* mapped size of slots */
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

/*
 * The slot holding kh, or the empty slot where kh would go; c->cap when
 * the table has neither.  The load limit keeps an empty slot in every
 * table, and an image is loaded only with its rows counted, so cap is
 * never returned; the bound is there so that a table broken all the same
 * costs a lookup, not a run that never ends.
 */
static inline size_t probe(const struct retl_cache *c, retl_h128 kh)
{
	size_t i = home(c, kh), n;

	for (n = 0; n < c->cap; n++) {
		const struct retl_cache_entry *e = &c->slots[i];

		if ((e->kh.lo == kh.lo && e->kh.hi == kh.hi) ||
		    (!e->kh.lo && !e->kh.hi))
			return i;
		if (++i == c->cap)
			i = 0;
	}
	return c->cap;
}

/*
 * Every lookup lands on a random slot of a table of tens of megabytes, so
 * TLB misses dominate with 4 KiB pages: the table is its own anonymous
 * mapping (zeroed by the kernel) and asks for transparent huge pages.
 */
#define HUGE_PAGE ((size_t)2 << 20)

/* floor(0.8 * cap): below it, and so below cap, a table always keeps an
 * empty slot, which is what ends every probe */
static size_t grow_at(size_t cap)
{
	return cap / 5 * 4 + cap % 5 * 4 / 5;
}

static void alloc_slots_exact(struct retl_cache *c, size_t cap, int exact)
{
	size_t bytes = cap * sizeof(*c->slots);

	if (bytes >= HUGE_PAGE) {
		bytes = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
		void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			p = retl_calloc(1, bytes), bytes = 0; /* heap fallback */
		else
			madvise(p, bytes, MADV_HUGEPAGE);
		c->slots = p;
		c->bytes = bytes;
		/* use the rounding: more slots, same memory */
		if (bytes && !exact)
			cap = bytes / sizeof(*c->slots);
	} else {
		c->slots = retl_calloc(cap, sizeof(*c->slots));
		c->bytes = 0;
	}
	c->cap = cap;
	c->grow_at = grow_at(cap);
}

static void alloc_slots(struct retl_cache *c, size_t cap)
{
	alloc_slots_exact(c, cap, 0);
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

static void free_slots(struct retl_cache_entry *slots, size_t bytes)
{
	if (bytes)
		munmap(slots, bytes);
	else
		free(slots);
}

void retl_cache_free(retl_cache *c)
{
	if (!c)
		return;
	free_slots(c->slots, c->bytes);
	free(c);
}

static void rehash(struct retl_cache *c, size_t new_cap)
{
	struct retl_cache_entry *old = c->slots;
	size_t old_cap = c->cap, old_bytes = c->bytes, i;

	alloc_slots(c, new_cap);
	for (i = 0; i < old_cap; i++) {
		if (!retl_h128_zero(old[i].kh))
			c->slots[probe(c, old[i].kh)] = old[i];
	}
	free_slots(old, old_bytes);
}

static void grow(struct retl_cache *c)
{
	rehash(c, c->cap + c->cap / 2);
}

void retl_cache_reserve(retl_cache *c, size_t n)
{
	size_t cap = n + n / 4 + 16;

	if (cap > c->cap)
		rehash(c, cap);
}

struct retl_cache_entry *retl_cache_upsert(retl_cache *c, retl_h128 kh,
					   int *created)
{
	struct retl_cache_entry *e;
	size_t i;

	kh = remap(kh);
	i = probe(c, kh);
	if (i < c->cap && !retl_h128_zero(c->slots[i].kh)) {
		if (created)
			*created = 0;
		return &c->slots[i];
	}
	if (c->count >= c->grow_at || i == c->cap) {
		/* the slot found above moves with the rehash: probe again */
		grow(c);
		i = probe(c, kh);
	}
	e = &c->slots[i];
	e->kh = kh;
	c->count++;
	if (created)
		*created = 1;
	return e;
}

void retl_cache_prefetch(const retl_cache *c, retl_h128 kh)
{
	__builtin_prefetch(&c->slots[home(c, remap(kh))], 1);
}

struct retl_cache_entry *retl_cache_find(retl_cache *c, retl_h128 kh)
{
	size_t i = probe(c, remap(kh));

	if (i == c->cap || retl_h128_zero(c->slots[i].kh))
		return NULL;
	return &c->slots[i];
}

/* backward-shift deletion: the entries after the hole that may not skip
 * it (their home is not cyclically in (hole, j]) move into it */
void retl_cache_forget(retl_cache *c, retl_h128 kh)
{
	size_t i = probe(c, remap(kh)), j, h;

	if (i == c->cap || retl_h128_zero(c->slots[i].kh))
		return;
	for (j = i;;) {
		if (++j == c->cap)
			j = 0;
		if (retl_h128_zero(c->slots[j].kh))
			break;
		h = home(c, c->slots[j].kh);
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		c->slots[i] = c->slots[j];
		i = j;
	}
	memset(&c->slots[i], 0, sizeof(c->slots[i]));
	c->count--;
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
	return sizeof(*c) + (c->bytes ? c->bytes : c->cap * sizeof(*c->slots));
}

/* ---- the cache image ---- */

/*
 * The image is read back as untrusted input: anyone who can write the
 * state directory can put a file there, and a disk can tear one.  So
 * nothing in it is used before it is proved: the header's sizes are
 * checked without overflow and against the file's size and this machine's
 * memory, the checksum covers the header and the table, and the table's
 * occupied slots are counted and checked (row count, field values) before
 * a lookup runs on it.  A count within the load limit then leaves the
 * empty slot every probe ends on.  XXH3 is a checksum, not a signature:
 * it catches a torn or damaged file; what a crafted one could still do
 * once it passes the checks is bounded by them (no out-of-bounds access,
 * no endless probe; at worst rows sent again).
 */
#define IMAGE_FAMILY "RETLCI"   /* an image of another version: stale */
#define IMAGE_MAGIC IMAGE_FAMILY "03"

struct image_header {
	char magic[8];
	uint64_t gen;
	uint64_t cap;
	uint64_t count;
	uint64_t entry_size;
	uint64_t checksum;      /* XXH3-64 of the slots, seeded with the
				 * XXH3-64 of this header (checksum 0) */
	uint64_t pad[2];
};

static uint64_t image_checksum(const struct image_header *h,
			       const void *slots, size_t bytes)
{
	struct image_header z = *h;

	z.checksum = 0;
	return XXH3_64bits_withSeed(slots, bytes, XXH3_64bits(&z, sizeof(z)));
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t n)
{
	char *b = p;
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * Written to a temporary name and renamed, never fsync'd: a torn image
 * after a power loss fails its checksum and the next run loads SQLite.
 * The temporary name is created afresh (O_EXCL): a link planted there is
 * never followed.
 */
int retl_cache_save(const retl_cache *c, const char *path, uint64_t gen)
{
	struct image_header h;
	size_t bytes = c->cap * sizeof(*c->slots);
	char tmp[4096];

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, IMAGE_MAGIC, 8);
	h.gen = gen;
	h.cap = c->cap;
	h.count = c->count;
	h.entry_size = sizeof(*c->slots);
	h.checksum = image_checksum(&h, c->slots, bytes);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	unlink(tmp);    /* left by a killed process of the same pid */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		      0600);
	if (fd < 0)
		return -1;
	if (write_all(fd, &h, sizeof(h)) < 0 ||
	    write_all(fd, c->slots, bytes) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

/* an image larger than this machine's memory was not written here */
static uint64_t max_cap(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t mem;

	if (pages <= 0 || page <= 0 ||
	    __builtin_mul_overflow((uint64_t)pages, (uint64_t)page, &mem))
		mem = SIZE_MAX;
	if (mem > SIZE_MAX)
		mem = SIZE_MAX;
	return mem / sizeof(struct retl_cache_entry);
}

/*
 * 0 when fd holds an image of generation gen whose sizes hold together,
 * RETL_CACHE_IMAGE_STALE for another generation or version,
 * RETL_CACHE_IMAGE_BAD (with *why) otherwise.
 */
static int read_header(int fd, struct image_header *h, uint64_t gen,
		       const char **why)
{
	struct stat sb;
	uint64_t table, size;

	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		return *why = "not a regular file", RETL_CACHE_IMAGE_BAD;
	if (read_all(fd, h, sizeof(*h)) < 0)
		return *why = "shorter than its header", RETL_CACHE_IMAGE_BAD;
	if (memcmp(h->magic, IMAGE_FAMILY, strlen(IMAGE_FAMILY)))
		return *why = "not a cache image", RETL_CACHE_IMAGE_BAD;
	if (memcmp(h->magic, IMAGE_MAGIC, 8) || h->gen != gen)
		return RETL_CACHE_IMAGE_STALE;
	if (h->entry_size != sizeof(struct retl_cache_entry))
		return *why = "wrong entry size", RETL_CACHE_IMAGE_BAD;
	if (h->cap < 16 || h->cap > max_cap())
		return *why = "table size out of bounds", RETL_CACHE_IMAGE_BAD;
	if (h->count > grow_at((size_t)h->cap))
		return *why = "more rows than its table holds",
		       RETL_CACHE_IMAGE_BAD;
	if (__builtin_mul_overflow(h->cap, h->entry_size, &table) ||
	    __builtin_add_overflow(table, (uint64_t)sizeof(*h), &size) ||
	    sb.st_size < 0 || (uint64_t)sb.st_size != size)
		return *why = "file size does not match its header",
		       RETL_CACHE_IMAGE_BAD;
	return 0;
}

/* every occupied slot counted and its fields in range; *why when not */
static int check_slots(const struct retl_cache *c, uint64_t count,
		       const char **why)
{
	size_t i, used = 0;

	for (i = 0; i < c->cap; i++) {
		const struct retl_cache_entry *e = &c->slots[i];

		if (retl_h128_zero(e->kh))
			continue;
		used++;
		if (e->status > RETL_STATUS_STAGED || e->seen > 1 ||
		    e->cached > 1 || e->sent > 1) {
			*why = "a row holds values retl never writes";
			return -1;
		}
	}
	if (used != count) {
		*why = "its row count does not match its table";
		return -1;
	}
	return 0;
}

int retl_cache_image_is(const char *path, uint64_t gen)
{
	struct image_header h;
	const char *why;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return 0;
	int ok = read_header(fd, &h, gen, &why) == 0;
	close(fd);
	return ok;
}

/* O_NONBLOCK: a FIFO planted at path must not hang the run in open() */
int retl_cache_load(retl_cache **out, const char *path, uint64_t gen,
		    const char **why)
{
	struct image_header h;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), rc;

	*out = NULL;
	*why = NULL;
	if (fd < 0)
		return errno == ENOENT ? RETL_CACHE_IMAGE_NONE :
		       (*why = strerror(errno), RETL_CACHE_IMAGE_BAD);
	if ((rc = read_header(fd, &h, gen, why)) != 0) {
		close(fd);
		return rc;
	}
	struct retl_cache *c = retl_calloc(1, sizeof(*c));
	alloc_slots_exact(c, (size_t)h.cap, 1);
	size_t bytes = c->cap * sizeof(*c->slots);
	if (read_all(fd, c->slots, bytes) < 0)
		*why = "shorter than its header says";
	else if (image_checksum(&h, c->slots, bytes) != h.checksum)
		*why = "checksum mismatch";
	else
		check_slots(c, h.count, why);
	close(fd);
	if (*why) {
		retl_cache_free(c);
		return RETL_CACHE_IMAGE_BAD;
	}
	c->count = (size_t)h.count;
	*out = c;
	return 0;
}
