/*
 * test_cache_image.c - the cache image read back as untrusted input
 * (cache.c, "the cache image"): crafted and damaged images are refused
 * as RETL_CACHE_IMAGE_BAD, never used, never crash or hang the loader.
 *
 * The crafted images are built here the way cache.c writes them (header,
 * then the table; XXH3-64 of the table seeded with the XXH3-64 of the
 * header with its checksum 0), so each one passes the checksum and only
 * the check it is about can catch it.
 *
 * Issue 16 made the image dense (format 04): the wrapping size, the
 * count against the file's size and the endless probe are checked here
 * again in that format; a key twice and the flags a saved image never
 * holds are new.
 *
 * Against the code before issue 13 (image format RETLCI02, checksum over
 * the table alone; checked once by hand with images of that format):
 *  - the wrapping cap passed the size check (64 + cap * 56 wraps at 2^64
 *    to the file's size), the table was mapped at the wrapped size and
 *    indexed with the huge cap: SIGSEGV in retl_cache_find;
 *  - the full table with a low count loaded, and a lookup of an absent
 *    key probed for ever (here alarm() ends the test binary instead);
 *  - a header byte flipped (the row count) was outside the checksum and
 *    loaded with a wrong count;
 *  - a FIFO at the image's path blocked open() for ever.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "cache.h"
#include "test.h"

/* the on-disk header, as cache.c lays it out (format 04: the entries
 * follow it densely, no empty slots) */
struct hdr {
	char magic[8];
	uint64_t gen, count, entry_size, reserved, checksum, pad[2];
};
#define MAGIC "RETLCI04"

static char dir[] = "/tmp/retl-test-image-XXXXXX";
static char path[256];

static void write_image(const char *magic, uint64_t gen, uint64_t count,
			const void *slots, size_t bytes)
{
	struct hdr h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, magic, 8);
	h.gen = gen;
	h.count = count;
	h.entry_size = sizeof(struct retl_cache_entry);
	h.checksum = XXH3_64bits_withSeed(slots, bytes, XXH3_64bits(&h, sizeof(h)));
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	CHECK(fwrite(&h, sizeof(h), 1, f) == 1);
	CHECK(bytes == 0 || fwrite(slots, bytes, 1, f) == 1);
	CHECK(fclose(f) == 0);
}

/* loads path; a loaded cache is used for a lookup before it is freed */
static int load(const char **why)
{
	retl_cache *c = NULL;
	int rc = retl_cache_load(&c, path, 7, why);
	if (c) {
		retl_h128 absent = { 0x123456789abcdefull, 42 };
		CHECK(retl_cache_find(c, absent) == NULL);
	}
	CHECK((rc == 0) == (c != NULL));
	retl_cache_free(c);
	return rc;
}

static void test_wrapping_count(void)
{
	/* 48 = 3 * 16: (2^60 + m) * 48 == m * 48 (mod 2^64), the file's
	 * size for m entries */
	uint64_t m = 65536, count = (1ull << 60) + m;
	size_t bytes = (size_t)m * sizeof(struct retl_cache_entry);
	void *slots = calloc(1, bytes);
	const char *why = NULL;

	write_image(MAGIC, 7, count, slots, bytes);
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(why && strstr(why, "out of bounds"));
	/* a count within bounds that the file's size does not back */
	write_image(MAGIC, 7, m * 2, slots, bytes);
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(why && strstr(why, "file size"));
	free(slots);
}

static void fill(struct retl_cache_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		memset(&e[i], 0, sizeof(e[i]));
		e[i].kh.lo = 0x9e3779b97f4a7c15ull * (i + 1);
		e[i].kh.hi = i + 1;
		e[i].status = RETL_STATUS_OK;
		e[i].cached = 1;
	}
}

static void test_crafted_rows(void)
{
	struct retl_cache_entry rows[16];
	const char *why = NULL;

	/* 16 honest rows load, and an absent key is not found (the index
	 * is built for them: no probe runs for ever) */
	fill(rows, 16);
	write_image(MAGIC, 7, 16, rows, sizeof(rows));
	CHECK(load(&why) == 0);
	/* every key the same: the index would hold one key sixteen times */
	for (int i = 1; i < 16; i++)
		rows[i].kh = rows[0].kh;
	write_image(MAGIC, 7, 16, rows, sizeof(rows));
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(why && strstr(why, "twice"));
	/* one key twice, far apart */
	fill(rows, 16);
	rows[15].kh = rows[2].kh;
	write_image(MAGIC, 7, 16, rows, sizeof(rows));
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(why && strstr(why, "twice"));
	/* a row whose status retl never writes */
	fill(rows, 16);
	rows[3].status = 9;
	write_image(MAGIC, 7, 16, rows, sizeof(rows));
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(why && strstr(why, "never writes"));
	/* flags a saved image never holds: seen, not cached, gone; the
	 * zero key (always remapped) */
	for (int k = 0; k < 4; k++) {
		fill(rows, 16);
		if (k == 0)
			rows[5].seen = 1;
		else if (k == 1)
			rows[5].cached = 0;
		else if (k == 2)
			rows[5].gone = 1;
		else
			rows[5].kh = (retl_h128){ 0, 0 };
		write_image(MAGIC, 7, 16, rows, sizeof(rows));
		CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
		CHECK(why && strstr(why, "never writes"));
	}
	/* an empty image is an empty cache */
	write_image(MAGIC, 7, 0, "", 0);
	CHECK(load(&why) == 0);
	/* the format before issue 16 (a table with empty slots) is stale */
	fill(rows, 16);
	write_image("RETLCI03", 7, 12, rows, sizeof(rows));
	CHECK(load(&why) == RETL_CACHE_IMAGE_STALE);
}

/*
 * a real image of 1000 rows, written by retl_cache_save from a cache as a
 * run leaves it: 100 more rows forgotten (interleaved), every row seen,
 * the new ones not cached
 */
static void save_real(void)
{
	retl_cache *c = retl_cache_new(10);     /* grows while filled */
	for (uint64_t i = 0; i < 1100; i++) {
		retl_h128 k = { i * 0x9e3779b97f4a7c15ull + 1, i };
		struct retl_cache_entry *e = retl_cache_upsert(c, k, NULL);
		e->src = i + 1;
		e->pay = (retl_h128){ ~i, i };
		e->mh = 3 * i;
		e->status = RETL_STATUS_OK;
		e->sent = (uint8_t)(i & 1);
		e->seen = 1;
		e->cached = i % 3 != 0;
	}
	for (uint64_t i = 1000; i < 1100; i++) {
		retl_h128 k = { i * 0x9e3779b97f4a7c15ull + 1, i };
		CHECK(retl_cache_forget(c, k) == 1);
	}
	CHECK(retl_cache_count(c) == 1000);
	CHECK(retl_cache_save(c, path, 7) == 0);
	retl_cache_free(c);
}

static void flip(off_t at)
{
	int fd = open(path, O_RDWR);
	unsigned char b;
	CHECK(fd >= 0);
	CHECK(pread(fd, &b, 1, at) == 1);
	b ^= 0x01;
	CHECK(pwrite(fd, &b, 1, at) == 1);
	close(fd);
}

static void test_damage(void)
{
	const char *why = NULL;
	retl_cache *c = NULL;
	struct stat sb;

	save_real();
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	CHECK(retl_cache_image_is(path, 7) && !retl_cache_image_is(path, 8));
	CHECK(retl_cache_load(&c, path, 7, &why) == 0 && c);
	CHECK(c && retl_cache_count(c) == 1000);
	/* the round trip keeps every row as it was (the source-line hash too:
	 * without it every unchanged row is mapped again) */
	int same = 0;
	for (uint64_t i = 0; c && i < 1000; i++) {
		retl_h128 k = { i * 0x9e3779b97f4a7c15ull + 1, i };
		struct retl_cache_entry *e = retl_cache_find(c, k);
		same += e && e->src == i + 1 && e->pay.lo == ~i && e->pay.hi == i &&
			e->mh == 3 * i && e->status == RETL_STATUS_OK && e->sent == (i & 1);
	}
	CHECK(same == 1000);
	/* as the next run sees them: none seen, all cached; the forgotten
	 * rows left out (48 bytes a row, no empty slots) */
	size_t it = 0, n = 0, fresh = 0;
	struct retl_cache_entry *e;
	while (c && (e = retl_cache_next(c, &it))) {
		n++;
		fresh += !e->seen && e->cached && !e->gone;
	}
	CHECK(n == 1000 && fresh == 1000);
	for (uint64_t i = 1000; c && i < 1100; i++) {
		retl_h128 k = { i * 0x9e3779b97f4a7c15ull + 1, i };
		CHECK(retl_cache_find(c, k) == NULL);
	}
	CHECK(sb.st_size == (off_t)(sizeof(struct hdr) +
				    1000 * sizeof(struct retl_cache_entry)));
	retl_cache_free(c);

	/* another generation or version is stale, not damaged */
	CHECK(retl_cache_load(&c, path, 8, &why) == RETL_CACHE_IMAGE_STALE);
	CHECK(!c && !why);

	/* the row count, in the header: the file's size gives it away, and
	 * the checksum covers the rest of the header */
	flip(offsetof(struct hdr, count));
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(why && strstr(why, "file size"));
	flip(offsetof(struct hdr, count));
	CHECK(load(&why) == 0);
	flip(offsetof(struct hdr, pad));
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(why && strstr(why, "checksum"));
	flip(offsetof(struct hdr, pad));
	CHECK(load(&why) == 0);

	/* a byte of the table */
	flip(sizeof(struct hdr) + 100 * sizeof(struct retl_cache_entry) + 3);
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(why && strstr(why, "checksum"));

	/* truncated: short of its table, and short of its header */
	save_real();
	CHECK(truncate(path, (off_t)(sb.st_size - 1)) == 0);
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(why && strstr(why, "file size"));
	CHECK(truncate(path, 10) == 0);
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(why && strstr(why, "header"));
	CHECK(!retl_cache_image_is(path, 7));

	/* not an image at all; missing */
	write_image("SQLite f", 7, 0, "", 0);
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(unlink(path) == 0);
	CHECK(load(&why) == RETL_CACHE_IMAGE_NONE);

	/* a FIFO planted at the path: no writer ever comes */
	CHECK(mkfifo(path, 0600) == 0);
	CHECK(load(&why) == RETL_CACHE_IMAGE_BAD);
	CHECK(!retl_cache_image_is(path, 7));
	CHECK(unlink(path) == 0);
}

int main(void)
{
	/* a hang (the endless probe, a FIFO's open) kills the binary: the
	 * test fails instead of stalling `make unit` */
	alarm(60);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/state.db.s.cache", dir);
	test_wrapping_count();
	test_crafted_rows();
	test_damage();
	unlink(path);
	rmdir(dir);
	TEST_DONE();
}
