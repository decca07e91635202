/*
 * cache.c - one sync's hash cache, see cache.h.
 *
 * Two arrays:
 *
 *  - the entries, dense, in insertion order (48 bytes each).  They live in
 *    their own anonymous mapping, grown with mremap: the kernel moves the
 *    pages instead of copying them, and capacity not yet written costs
 *    address space, not memory.  So growth never holds two copies, and
 *    the cache need not know the model's size in advance.
 *
 *  - the index: open addressing with linear probing over 32-bit words,
 *    load at most 0.8, home slot from the key hash's low word by Lemire's
 *    fastrange (multiply, keep the high word: any capacity, not only
 *    powers of two).  A word holds the entry's number plus one in its low
 *    `sbits` bits (0 = empty) and, in the bits left over, a tag taken from
 *    the key hash's high word: a probe reads an entry only when its tag
 *    matches, so a lookup is one probe run in the index (16 words a cache
 *    line) plus, almost always, one entry's line.  The index is rebuilt
 *    from the entries when it grows: the old one is freed first, so only
 *    the small array is ever allocated twice over, never both at once.
 *
 * The price: a lookup in random order misses the CPU cache twice (index
 * word, then entry) where one table missed once (measured on 1M keys,
 * shuffled: ~20 % slower); in the entries' own order it walks them
 * sequentially and is ~40 % faster.  An image keeps the entries' order,
 * so a cache that was filled in model order (a first run, then saved from
 * memory) is read in that order by the next run.
 *
 * Memory: 48 bytes an entry, plus 4 / load bytes of index (5 just before
 * growth, 7.5 just after, growing by 1.5x): 53-56 bytes a row, under the
 * README's 64.  The number of bits for the entry number follows the
 * index's capacity, so small caches get long tags (at 1M rows 11 tag
 * bits: one wasted entry read in 2048 probes; at 10M, 8 bits).
 *
 * An all-zero key hash would read as nothing special here, but it has
 * always been remapped to {1,0} (an image or a caller may rely on keys
 * never being zero); a real key that hashes to {1,0} would share its
 * entry (a 2^-128 event, accepted).
 *
 * Forgetting marks the entry gone (a flag bit); it stays in the index, so
 * a later upsert of its key finds it and revives it zeroed.  The space
 * comes back when the cache is saved (gone entries are not written).
 */
#include "cache.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "buf.h"

static_assert(sizeof(struct retl_cache_entry) == 48,
	      "cache entries are 48 bytes; see cache.h");

struct retl_cache {
	struct retl_cache_entry *ent;   /* dense: ent[0..used) */
	size_t ent_bytes;               /* mapped size of ent */
	size_t ent_cap;                 /* entries the mapping holds */
	size_t used;                    /* entries written, gone ones too */
	size_t live;                    /* entries not gone */
	uint32_t *idx;                  /* the index, icap words */
	size_t idx_bytes;               /* mapped size of idx */
	size_t icap;
	size_t grow_at;                 /* used count that grows the index */
	unsigned sbits;                 /* low bits of a word: entry + 1 */
	unsigned tshift;                /* kh.hi >> tshift is the tag */
	uint32_t low;                   /* (1 << sbits) - 1 */
};

/*
 * The index's words must hold an entry number: at most this many entries
 * (3.4 billion, 165 GB of entries), far past any machine it runs on.
 */
#define MAX_ENTRIES ((size_t)0xCCCCCCC0u)

static inline retl_h128 remap(retl_h128 kh)
{
	if (!kh.lo && !kh.hi)
		kh.lo = 1;
	return kh;
}

static inline size_t home(const struct retl_cache *c, retl_h128 kh)
{
	return (size_t)(((unsigned __int128)kh.lo * c->icap) >> 64);
}

/* kh's tag, already shifted into place (0 when no bits are left for it) */
static inline uint32_t tag(const struct retl_cache *c, retl_h128 kh)
{
	return (uint32_t)((kh.hi >> c->tshift) << c->sbits) & ~c->low;
}

/*
 * The index position holding kh (*found its entry), or the empty one
 * where kh would go (*found NULL); c->icap when the index has neither.
 * The load limit keeps an empty word in every index, so icap is never
 * returned; the bound is there so that an index broken all the same costs
 * a lookup, not a run that never ends.
 */
static inline size_t probe(const struct retl_cache *c, retl_h128 kh,
			   struct retl_cache_entry **found)
{
	const uint32_t t = tag(c, kh), low = c->low;
	size_t i = home(c, kh), n;

	*found = NULL;
	for (n = 0; n < c->icap; n++) {
		uint32_t w = c->idx[i];

		if (!w)
			return i;
		if ((w & ~low) == t) {
			struct retl_cache_entry *e = &c->ent[(w & low) - 1];

			if (e->kh.lo == kh.lo && e->kh.hi == kh.hi) {
				*found = e;
				return i;
			}
		}
		if (++i == c->icap)
			i = 0;
	}
	return c->icap;
}

/*
 * Every lookup lands on a random place of arrays of tens of megabytes, so
 * TLB misses dominate with 4 KiB pages: both are anonymous mappings
 * (zeroed by the kernel) that ask for transparent huge pages once large.
 */
#define HUGE_PAGE ((size_t)2 << 20)

static void oom(const char *what)
{
	fprintf(stderr, "retl: out of memory (%s: %s)\n", what, strerror(errno));
	abort();
}

static size_t map_size(size_t bytes)
{
	size_t page = bytes >= HUGE_PAGE ? HUGE_PAGE : 4096;

	return (bytes + page - 1) & ~(page - 1);
}

static void *map_zeroed(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		oom("cache");
	if (bytes >= HUGE_PAGE)
		madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

/* room for n entries: new capacity is address space, not memory, until
 * written, so it doubles (fewer mremaps) */
static void ent_room(struct retl_cache *c, size_t n)
{
	size_t want, bytes;
	void *p;

	if (n <= c->ent_cap)
		return;
	want = c->ent_cap * 2 > n ? c->ent_cap * 2 : n;
	if (want > MAX_ENTRIES)
		want = n;
	if (want > MAX_ENTRIES) {
		errno = EOVERFLOW;
		oom("more than 3.4 billion rows");
	}
	bytes = map_size(want * sizeof(*c->ent));
	if (!c->ent) {
		c->ent = map_zeroed(bytes);
	} else {
		p = mremap(c->ent, c->ent_bytes, bytes, MREMAP_MAYMOVE);
		if (p == MAP_FAILED)
			oom("cache entries");
		if (bytes >= HUGE_PAGE)
			madvise(p, bytes, MADV_HUGEPAGE);
		c->ent = p;
	}
	c->ent_bytes = bytes;
	c->ent_cap = bytes / sizeof(*c->ent);
	if (c->ent_cap > MAX_ENTRIES)
		c->ent_cap = MAX_ENTRIES;
}

/* floor(0.8 * cap): below it, and so below cap, an index always keeps an
 * empty word, which is what ends every probe */
static size_t grow_at(size_t cap)
{
	return cap / 5 * 4 + cap % 5 * 4 / 5;
}

static size_t index_cap(size_t n)
{
	size_t cap = n + n / 4 + 16;

	return cap < 16 ? 16 : cap;
}

/*
 * A fresh index of at least cap words holding every entry, gone ones too
 * (a forgotten key is revived in place).  The old index is unmapped
 * before the new one is written.  -1 when two entries share a key (only
 * an image can hold such a pair).
 */
static int index_build(struct retl_cache *c, size_t cap)
{
	size_t bytes, i;

	if (c->idx)
		munmap(c->idx, c->idx_bytes);
	bytes = map_size(cap * sizeof(*c->idx));
	c->idx = map_zeroed(bytes);
	c->idx_bytes = bytes;
	c->icap = bytes / sizeof(*c->idx);
	/* every word value 1..icap-1 must fit: at most 0xFFFFFFFF words */
	if (c->icap > 0xFFFFFFFFu)
		c->icap = 0xFFFFFFFFu;
	c->grow_at = grow_at(c->icap);
	c->sbits = 1;
	while (c->sbits < 32 && ((size_t)1 << c->sbits) <= c->icap)
		c->sbits++;
	c->low = (uint32_t)((1ull << c->sbits) - 1);
	/* the tag is the top 32 - sbits bits of kh.hi (none at 32) */
	c->tshift = c->sbits < 32 ? 32 + c->sbits : 63;
	for (i = 0; i < c->used; i++) {
		struct retl_cache_entry *dup;
		size_t at = probe(c, c->ent[i].kh, &dup);

		if (at == c->icap || dup)
			return -1;
		c->idx[at] = tag(c, c->ent[i].kh) | (uint32_t)(i + 1);
	}
	return 0;
}

retl_cache *retl_cache_new(size_t expected)
{
	struct retl_cache *c = retl_calloc(1, sizeof(*c));

	ent_room(c, expected < 16 ? 16 : expected);
	(void)index_build(c, index_cap(expected));  /* no entries: cannot fail */
	return c;
}

void retl_cache_free(retl_cache *c)
{
	if (!c)
		return;
	if (c->ent)
		munmap(c->ent, c->ent_bytes);
	if (c->idx)
		munmap(c->idx, c->idx_bytes);
	free(c);
}

void retl_cache_reserve(retl_cache *c, size_t n)
{
	if (n > MAX_ENTRIES)
		n = MAX_ENTRIES;
	ent_room(c, n);
	if (n > c->grow_at)     /* keys are unique here: cannot fail */
		(void)index_build(c, index_cap(n));
}

struct retl_cache_entry *retl_cache_upsert(retl_cache *c, retl_h128 kh,
					   int *created)
{
	struct retl_cache_entry *e;
	size_t i;

	kh = remap(kh);
	i = probe(c, kh, &e);
	if (e) {
		if (created)
			*created = e->gone;
		if (e->gone) {          /* forgotten: back as new */
			memset(e, 0, sizeof(*e));
			e->kh = kh;
			c->live++;
		}
		return e;
	}
	if (c->used >= c->grow_at || i == c->icap) {
		/* the index grows by 1.5x; its position moves: probe again */
		(void)index_build(c, c->icap + c->icap / 2);
		i = probe(c, kh, &e);
	}
	ent_room(c, c->used + 1);
	e = &c->ent[c->used];
	memset(e, 0, sizeof(*e));
	e->kh = kh;
	c->idx[i] = tag(c, kh) | (uint32_t)(c->used + 1);
	c->used++;
	c->live++;
	if (created)
		*created = 1;
	return e;
}

void retl_cache_prefetch(const retl_cache *c, retl_h128 kh)
{
	__builtin_prefetch(&c->idx[home(c, remap(kh))], 1);
}

struct retl_cache_entry *retl_cache_find(retl_cache *c, retl_h128 kh)
{
	struct retl_cache_entry *e;

	probe(c, remap(kh), &e);
	return e && !e->gone ? e : NULL;
}

int retl_cache_forget(retl_cache *c, retl_h128 kh)
{
	struct retl_cache_entry *e = retl_cache_find(c, kh);

	if (!e)
		return 0;
	e->gone = 1;
	c->live--;
	return 1;
}

size_t retl_cache_count(const retl_cache *c)
{
	return c->live;
}

struct retl_cache_entry *retl_cache_next(retl_cache *c, size_t *iter)
{
	size_t i;

	for (i = *iter; i < c->used; i++) {
		if (!c->ent[i].gone) {
			*iter = i + 1;
			return &c->ent[i];
		}
	}
	*iter = c->used;
	return NULL;
}

/* the memory the cache has written to (capacity never written is only
 * address space) */
size_t retl_cache_bytes(const retl_cache *c)
{
	return sizeof(*c) + c->used * sizeof(*c->ent) + c->idx_bytes;
}

/* ---- the cache image ---- */

/*
 * The image is read back as untrusted input: anyone who can write the
 * state directory can put a file there, and a disk can tear one.  So
 * nothing in it is used before it is proved: the header's sizes are
 * checked without overflow and against the file's size and this machine's
 * memory, the checksum covers the header and the entries, and every entry
 * is checked (field values) and indexed, which refuses two entries with
 * one key, before a lookup runs on it.  The index is built here, sized
 * for the count, so its load limit leaves the empty word every probe ends
 * on, whatever the file held.  XXH3 is a checksum, not a signature: it
 * catches a torn or damaged file; what a crafted one could still do once
 * it passes the checks is bounded by them (no out-of-bounds access, no
 * endless probe; at worst rows sent again).
 *
 * Version 04 (issue 16) holds the entries only, densely, in the order the
 * cache holds them: no empty slots, so it is 48 bytes a row and loads
 * into the entry array with one read.  Older versions are stale.
 */
#define IMAGE_FAMILY "RETLCI"   /* an image of another version: stale */
#define IMAGE_MAGIC IMAGE_FAMILY "04"

struct image_header {
	char magic[8];
	uint64_t gen;
	uint64_t count;         /* entries that follow the header */
	uint64_t entry_size;
	uint64_t reserved;      /* 0 */
	uint64_t checksum;      /* XXH3-64 of the entries, seeded with the
				 * XXH3-64 of this header (checksum 0) */
	uint64_t pad[2];
};
static_assert(sizeof(struct image_header) == 64 &&
	      offsetof(struct image_header, checksum) == 40,
	      "tests/fuzz/fuzz_cache.c knows the header's layout");

static uint64_t header_seed(const struct image_header *h)
{
	struct image_header z = *h;

	z.checksum = 0;
	return XXH3_64bits(&z, sizeof(z));
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
 * The header's place is written first and the header last (its checksum
 * is known only once the entries went out); between, the entries that
 * are not gone, in chunks, each as the next run loads it (seen 0,
 * cached 1).
 */
static int write_image(const struct retl_cache *c, int fd, uint64_t gen)
{
	enum { CHUNK = 1024 };
	struct image_header h;
	struct retl_cache_entry *buf;
	XXH3_state_t *xs = XXH3_createState();
	size_t i = 0, k;
	int rc = -1;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, IMAGE_MAGIC, 8);
	h.gen = gen;
	h.count = c->live;
	h.entry_size = sizeof(*c->ent);
	buf = retl_calloc(CHUNK, sizeof(*buf));
	if (!xs || XXH3_64bits_reset_withSeed(xs, header_seed(&h)) != XXH_OK ||
	    write_all(fd, &h, sizeof(h)) < 0)
		goto out;
	while (i < c->used) {
		for (k = 0; k < CHUNK && i < c->used; i++) {
			if (c->ent[i].gone)
				continue;
			buf[k] = c->ent[i];
			buf[k].seen = 0;
			buf[k].cached = 1;
			k++;
		}
		if (XXH3_64bits_update(xs, buf, k * sizeof(*buf)) != XXH_OK ||
		    write_all(fd, buf, k * sizeof(*buf)) < 0)
			goto out;
	}
	h.checksum = XXH3_64bits_digest(xs);
	if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		goto out;
	rc = 0;
out:
	if (rc < 0 && !errno)
		errno = EIO;
	free(buf);
	XXH3_freeState(xs);
	return rc;
}

/*
 * Written to a temporary name and renamed, never fsync'd: a torn image
 * after a power loss fails its checksum and the next run loads SQLite.
 * The temporary name is created afresh (O_EXCL): a link planted there is
 * never followed.
 */
int retl_cache_save(const retl_cache *c, const char *path, uint64_t gen)
{
	char tmp[4096];

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
	errno = 0;
	if (write_image(c, fd, gen) < 0) {
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
static uint64_t max_count(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t mem, n;

	if (pages <= 0 || page <= 0 ||
	    __builtin_mul_overflow((uint64_t)pages, (uint64_t)page, &mem))
		mem = SIZE_MAX;
	if (mem > SIZE_MAX)
		mem = SIZE_MAX;
	n = mem / sizeof(struct retl_cache_entry);
	return n < MAX_ENTRIES ? n : MAX_ENTRIES;
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
	if (h->reserved)
		return *why = "a header field retl never writes",
		       RETL_CACHE_IMAGE_BAD;
	if (h->count > max_count())
		return *why = "row count out of bounds", RETL_CACHE_IMAGE_BAD;
	if (__builtin_mul_overflow(h->count, h->entry_size, &table) ||
	    __builtin_add_overflow(table, (uint64_t)sizeof(*h), &size) ||
	    sb.st_size < 0 || (uint64_t)sb.st_size != size)
		return *why = "file size does not match its header",
		       RETL_CACHE_IMAGE_BAD;
	return 0;
}

/* every entry as save writes it: a real key, a status retl writes, not
 * seen, cached, not gone; *why when not */
static int check_entries(const struct retl_cache *c, const char **why)
{
	for (size_t i = 0; i < c->used; i++) {
		const struct retl_cache_entry *e = &c->ent[i];

		if (retl_h128_zero(e->kh) || e->status > RETL_STATUS_STAGED ||
		    e->seen || !e->cached || e->gone) {
			*why = "a row holds values retl never writes";
			return -1;
		}
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
	size_t n = (size_t)h.count, bytes = n * sizeof(*c->ent);
	ent_room(c, n < 16 ? 16 : n);
	if (read_all(fd, c->ent, bytes) < 0)
		*why = "shorter than its header says";
	else if (XXH3_64bits_withSeed(c->ent, bytes, header_seed(&h)) !=
		 h.checksum)
		*why = "checksum mismatch";
	close(fd);
	c->used = c->live = n;
	if (!*why && check_entries(c, why) == 0 &&
	    index_build(c, index_cap(n)) < 0)
		*why = "a key appears twice";
	if (*why) {
		retl_cache_free(c);
		return RETL_CACHE_IMAGE_BAD;
	}
	*out = c;
	return 0;
}
