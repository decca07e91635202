/*
 * fuzz.h - what the libFuzzer harnesses of tests/fuzz share (see README.md
 * there): splitting an input into parts, a scratch directory per process,
 * files written from an input, and a finding raised as a crash.
 *
 * Only for the harnesses: static functions, one include per harness.
 *
 * Inputs that hold several texts (a retl.json and a sync file, a list of
 * answers) separate them with a line holding "%%" alone: "a\n%%\nb" is
 * the parts "a" and "b".  Readable seeds, and a token libFuzzer's
 * dictionary (tests/fuzz/fuzz.dict) offers to the mutator.
 */
#ifndef RETL_FUZZ_H
#define RETL_FUZZ_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

#define FZ_SEP "\n%%\n"

struct fz_part {
	const char *p;
	size_t n;
};

/* splits data at FZ_SEP into at most max parts (the last takes the rest);
 * returns how many (at least 1) */
static size_t fz_split(const uint8_t *data, size_t size, struct fz_part *parts,
		       size_t max)
{
	const char *s = (const char *)data, *end = s + size;
	size_t n = 0, sl = sizeof(FZ_SEP) - 1;
	while (n + 1 < max) {
		const char *hit = size >= sl ? memmem(s, (size_t)(end - s), FZ_SEP, sl) : NULL;
		if (!hit)
			break;
		parts[n].p = s;
		parts[n++].n = (size_t)(hit - s);
		s = hit + sl;
	}
	parts[n].p = s;
	parts[n++].n = (size_t)(end - s);
	return n;
}

/* a finding: libFuzzer saves the input as crash-* and stops */
static void fz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "FUZZ FINDING: %s%s%s\n", what, detail ? ": " : "",
		detail ? detail : "");
	abort();
}

static char fz_dir_path[256];

static int fz_rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void fz_dir_cleanup(void)
{
	if (fz_dir_path[0])
		nftw(fz_dir_path, fz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* the process's scratch directory (made once, removed at exit) */
static const char *fz_dir(void)
{
	if (!fz_dir_path[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(fz_dir_path, sizeof(fz_dir_path), "%s/retl-fuzz.XXXXXX",
			 t && *t && strlen(t) < 200 ? t : "/tmp");
		if (!mkdtemp(fz_dir_path)) {
			perror("mkdtemp");
			abort();
		}
		atexit(fz_dir_cleanup);
	}
	return fz_dir_path;
}

/* dir/name (malloc'd) */
static char *fz_path(const char *name)
{
	retl_buf b = RETL_BUF_INIT;
	retl_buf_addf(&b, "%s/%s", fz_dir(), name);
	return retl_buf_detach(&b);
}

/* writes p[0..n) to dir/name; the path, malloc'd */
static char *fz_write(const char *name, const void *p, size_t n)
{
	char *path = fz_path(name);
	FILE *f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		abort();
	}
	return path;
}

/* makes dir/name as a directory (if missing) */
static void fz_mkdir(const char *name)
{
	char *path = fz_path(name);
	if (mkdir(path, 0700) < 0 && access(path, F_OK) != 0) {
		perror(path);
		abort();
	}
	free(path);
}

#endif
