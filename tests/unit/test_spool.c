/*
 * test_spool.c - a run's binary spool (src/spool.c): what is put is
 * replayed byte for byte, and a damaged spool stops the replay with an
 * error, never hands on an operation that breaks the spool's promises.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"
#include "test.h"

static const struct retl_spool_op ops[] = {
	{ .kind = RETL_OP_UPSERT, .change = RETL_CH_ADDED, .key = "7", .keylen = 1,
	  .key_json = "7", .kjlen = 1, .payload = "{\"a\":1}", .plen = 7,
	  .src = 0x1234567890abcdefULL },
	{ .kind = RETL_OP_INSERT, .change = RETL_CH_CHANGED, .key = "k\xc3\xa9", .keylen = 3,
	  .key_json = "\"k\xc3\xa9\"", .kjlen = 5, .payload = "{}", .plen = 2,
	  .dest_id = "ID-9", .match = "a@b.c", .mlen = 5, .pending = 1 },
	{ .kind = RETL_OP_REMOVE, .change = RETL_CH_REMOVED, .key = "8", .keylen = 1,
	  .key_json = "8", .kjlen = 1, .dest_id = "ID-8" },
	{ .kind = RETL_OP_REMOVE, .change = RETL_CH_REMOVED, .key = "", .keylen = 0,
	  .key_json = "null", .kjlen = 4, .match = "old@b.c", .mlen = 7, .orphan = 1 },
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static int check_op(void *ud, const struct retl_spool_op *op)
{
	size_t *n = ud;
	const struct retl_spool_op *w = &ops[*n % NOPS];
	CHECK(op->kind == w->kind && op->change == w->change);
	CHECK(op->keylen == w->keylen && !memcmp(op->key, w->key, w->keylen));
	CHECK(op->kjlen == w->kjlen && !memcmp(op->key_json, w->key_json, w->kjlen));
	CHECK((op->payload == NULL) == (w->payload == NULL));
	CHECK(!w->payload || (op->plen == w->plen && !memcmp(op->payload, w->payload, w->plen)));
	CHECK(same_str(op->dest_id, w->dest_id) && same_str(op->match, w->match));
	CHECK(op->mlen == w->mlen && op->pending == w->pending && op->orphan == w->orphan);
	CHECK(op->src == w->src);
	(*n)++;
	return 0;
}

/* a spool of every op above, twice, in memory: its bytes and length */
static char *spool(size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	retl_spool *s = retl_spool_create_binary(f);
	for (size_t i = 0; i < 2 * NOPS; i++)
		CHECK(retl_spool_put(s, &ops[i % NOPS]) == 0);
	CHECK(retl_spool_finish(s) == 0);
	CHECK(retl_spool_count(s) == (long)(2 * NOPS));
	retl_spool_free(s);
	fclose(f);
	return buf;
}

/* replays len bytes of buf: the return of retl_spool_replay, *n ops seen */
static int replay(const char *buf, size_t len, size_t *n, struct retl_err *err)
{
	FILE *f = fmemopen((void *)buf, len, "r");
	*n = 0;
	retl_err_clear(err);
	int rc = retl_spool_replay(f, "spool", check_op, n, err);
	fclose(f);
	return rc;
}

static int count_op(void *ud, const struct retl_spool_op *op)
{
	(void)op;
	(*(size_t *)ud)++;
	return 0;
}

/* as replay, but the operations handed on before the damage shows (a
 * run's spool is checked as it is read; its checksum at the end) are
 * only counted */
static int replay_counting(const char *buf, size_t len, struct retl_err *err)
{
	size_t n = 0;
	FILE *f = fmemopen((void *)buf, len, "r");
	retl_err_clear(err);
	int rc = retl_spool_replay(f, "spool", count_op, &n, err);
	fclose(f);
	return rc;
}

static void test_round_trip(void)
{
	size_t len, n;
	struct retl_err err;
	char *buf = spool(&len);
	CHECK(!memcmp(buf, "RETLSPB1", 8));
	CHECK(replay(buf, len, &n, &err) == 0);
	CHECK(n == 2 * NOPS);
	free(buf);
}

static void test_damage_stops_the_replay(void)
{
	size_t len, n;
	struct retl_err err;
	char *buf = spool(&len);

	/* cut anywhere: an error, never a silent end */
	for (size_t cut = 9; cut < len; cut += 7) {
		CHECK(replay(buf, cut, &n, &err) == -1);
		CHECK(strstr(err.msg, "cut short") != NULL);
	}
	/* a byte flipped in a string: the checksum at the end (or the
	 * string's own checks) catches it */
	for (size_t at = 8; at < len; at += 5) {
		buf[at] ^= 0x20;
		CHECK(replay_counting(buf, len, &err) == -1);
		CHECK(err.msg[0] != '\0');
		buf[at] ^= 0x20;
	}
	/* bytes after the end */
	char *more = malloc(len + 1);
	memcpy(more, buf, len);
	more[len] = 'x';
	CHECK(replay(more, len + 1, &n, &err) == -1);
	CHECK(strstr(err.msg, "after the end") != NULL);
	free(more);
	CHECK(replay(buf, len, &n, &err) == 0);
	free(buf);
}

static void test_a_bad_operation_is_refused(void)
{
	/* a remove with a payload breaks a promise: refused at write time
	 * by nothing, at read time by the reader */
	struct retl_spool_op bad = ops[2];
	bad.payload = "{}";
	bad.plen = 2;
	char *buf = NULL;
	size_t len, n;
	struct retl_err err;
	FILE *f = open_memstream(&buf, &len);
	retl_spool *s = retl_spool_create_binary(f);
	CHECK(retl_spool_put(s, &bad) == 0);
	CHECK(retl_spool_finish(s) == 0);
	retl_spool_free(s);
	fclose(f);
	CHECK(replay(buf, len, &n, &err) == -1);
	CHECK(n == 0);
	CHECK(strstr(err.msg, "a remove has no payload") != NULL);
	free(buf);

	/* a key with a NUL inside: the reader hands strings on as C strings */
	struct retl_spool_op nul = ops[0];
	nul.key = "a\0b";
	nul.keylen = 3;
	buf = NULL;
	f = open_memstream(&buf, &len);
	s = retl_spool_create_binary(f);
	CHECK(retl_spool_put(s, &nul) == 0);
	CHECK(retl_spool_finish(s) == 0);
	retl_spool_free(s);
	fclose(f);
	CHECK(replay(buf, len, &n, &err) == -1);
	CHECK(n == 0);
	CHECK(strstr(err.msg, "NUL") != NULL);
	free(buf);
}

int main(void)
{
	test_round_trip();
	test_damage_stops_the_replay();
	test_a_bad_operation_is_refused();
	TEST_DONE();
}
