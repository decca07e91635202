/*
 * test_err.c - struct retl_err: the first message wins, a prefix adds
 * context, clear starts over, the code is kept the same way, and a message
 * longer than the buffer is cut without overflow or a split character.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "test.h"

/* a wrapper that, like most callers, passes a failure up with its own words */
static int fails_twice(struct retl_err *err)
{
	retl_err_set(err, RETL_EXIT_SOURCE, "source pg: connection refused");
	return retl_err_set(err, RETL_EXIT_USAGE, "run stopped");
}

static void test_first_wins(void)
{
	struct retl_err err;
	retl_err_clear(&err);
	CHECK(err.code == 0 && err.msg[0] == '\0');
	CHECK(!retl_err_isset(&err));
	CHECK(fails_twice(&err) == -1);
	CHECK_STR(err.msg, "source pg: connection refused");
	CHECK(err.code == RETL_EXIT_SOURCE);
	CHECK(retl_err_isset(&err));
	/* a third writer changes nothing either */
	CHECK(retl_err_set(&err, RETL_EXIT_DEST, "%s %d", "later", 3) == -1);
	CHECK_STR(err.msg, "source pg: connection refused");
	CHECK(err.code == RETL_EXIT_SOURCE);
	/* NULL is allowed (callers that do not want the message) */
	CHECK(retl_err_set(NULL, RETL_EXIT_USAGE, "x") == -1);
	CHECK(retl_err_prefix(NULL, "x") == -1);
	CHECK(retl_err_code(NULL, 1) == -1);
	retl_err_clear(NULL);
	CHECK(!retl_err_isset(NULL));
}

static void test_prefix(void)
{
	struct retl_err err;
	retl_err_clear(&err);
	retl_err_set(&err, RETL_EXIT_USAGE, "state store s.db: database is locked");
	CHECK(retl_err_prefix(&err, "sync %s: ", "orders") == -1);
	CHECK_STR(err.msg, "sync orders: state store s.db: database is locked");
	CHECK(err.code == RETL_EXIT_USAGE);
	retl_err_prefix(&err, "run %d: ", 7);
	CHECK_STR(err.msg, "run 7: sync orders: state store s.db: database is locked");
	/* on an empty error the prefix alone is the message, code untouched */
	retl_err_clear(&err);
	retl_err_prefix(&err, "sync %s", "orders");
	CHECK_STR(err.msg, "sync orders");
	CHECK(err.code == 0);
	/* an empty prefix changes nothing */
	retl_err_clear(&err);
	retl_err_set(&err, 4, "cause");
	retl_err_prefix(&err, "%s", "");
	CHECK_STR(err.msg, "cause");
}

static void test_clear(void)
{
	struct retl_err err;
	retl_err_clear(&err);
	retl_err_set(&err, RETL_EXIT_DEST, "first");
	retl_err_clear(&err);
	CHECK(err.code == 0 && !retl_err_isset(&err));
	retl_err_set(&err, RETL_EXIT_SAFETY, "second");
	CHECK_STR(err.msg, "second");
	CHECK(err.code == RETL_EXIT_SAFETY);
}

static void test_code(void)
{
	struct retl_err err;
	/* a first message with code 0 takes the next writer's code */
	retl_err_clear(&err);
	retl_err_set(&err, 0, "no code yet");
	retl_err_set(&err, RETL_EXIT_DEST, "ignored");
	CHECK_STR(err.msg, "no code yet");
	CHECK(err.code == RETL_EXIT_DEST);
	/* a code set alone (retl_err_code) stays; a later message is written */
	retl_err_clear(&err);
	CHECK(retl_err_code(&err, RETL_EXIT_USAGE) == -1);
	CHECK(err.code == RETL_EXIT_USAGE && !retl_err_isset(&err));
	retl_err_set(&err, RETL_EXIT_SOURCE, "the message");
	CHECK_STR(err.msg, "the message");
	CHECK(err.code == RETL_EXIT_USAGE);
	/* retl_err_code is a default: it never replaces a code */
	retl_err_clear(&err);
	retl_err_set(&err, RETL_EXIT_SOURCE, "cause");
	retl_err_code(&err, RETL_EXIT_USAGE);
	CHECK(err.code == RETL_EXIT_SOURCE);
	CHECK_STR(err.msg, "cause");
}

static void test_long(void)
{
	struct retl_err err;
	size_t n = RETL_ERR_MSG_MAX * 2;
	char *big = malloc(n + 1);
	memset(big, 'a', n);
	big[n] = '\0';

	retl_err_clear(&err);
	retl_err_set(&err, RETL_EXIT_DEST, "%s", big);
	CHECK(strlen(err.msg) == RETL_ERR_MSG_MAX - 1);
	CHECK(err.msg[0] == 'a' && err.msg[RETL_ERR_MSG_MAX - 2] == 'a');

	/* a cut never leaves half of a multi-byte character: "é" is 2 bytes,
	 * placed so that the limit falls between them */
	memset(big, 'a', n);
	memcpy(big + RETL_ERR_MSG_MAX - 2, "\xc3\xa9", 2);
	retl_err_clear(&err);
	retl_err_set(&err, RETL_EXIT_DEST, "%s", big);
	CHECK(strlen(err.msg) == RETL_ERR_MSG_MAX - 2);
	CHECK(err.msg[RETL_ERR_MSG_MAX - 3] == 'a');
	/* a 3-byte character ("€") cut after its first two bytes */
	memset(big, 'a', n);
	memcpy(big + RETL_ERR_MSG_MAX - 3, "\xe2\x82\xac", 3);
	retl_err_clear(&err);
	retl_err_set(&err, RETL_EXIT_DEST, "%s", big);
	CHECK(strlen(err.msg) == RETL_ERR_MSG_MAX - 3);
	/* a character that fits whole is kept */
	memset(big, 'a', n);
	memcpy(big + RETL_ERR_MSG_MAX - 3, "\xc3\xa9", 2);
	retl_err_clear(&err);
	retl_err_set(&err, RETL_EXIT_DEST, "%s", big);
	CHECK(strlen(err.msg) == RETL_ERR_MSG_MAX - 1);
	CHECK(!strcmp(err.msg + RETL_ERR_MSG_MAX - 3, "\xc3\xa9"));

	/* a prefix on a full message keeps the prefix and cuts the tail */
	memset(big, 'a', n);
	retl_err_clear(&err);
	retl_err_set(&err, RETL_EXIT_DEST, "%s", big);
	retl_err_prefix(&err, "sync %s: ", "x");
	CHECK(strlen(err.msg) == RETL_ERR_MSG_MAX - 1);
	CHECK(!strncmp(err.msg, "sync x: aaa", 11));
	/* a prefix longer than the buffer is cut too, message and all */
	retl_err_prefix(&err, "%s", big);
	CHECK(strlen(err.msg) == RETL_ERR_MSG_MAX - 1);
	CHECK(err.msg[0] == 'a');
	CHECK(err.code == RETL_EXIT_DEST);
	free(big);
}

int main(void)
{
	test_first_wins();
	test_prefix();
	test_clear();
	test_code();
	test_long();
	TEST_DONE();
}
