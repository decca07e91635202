/*
 * fuzz_plan.c - plan files and run spools (src/spool.c; JSON lines, and a
 * run's own binary spool, seeded by corpus/plan/binary-run-spool): the input is the
 * file.  retl_spool_verify (what `retl apply` runs first) must refuse or
 * accept it whole; retl_spool_replay (what the push reads, without the
 * checksum's protection) must hand over only operations that keep the
 * spool's promises, or stop with an error, never read past a line.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "spool.h"

static int check_op(void *ud, const struct retl_spool_op *op)
{
	long *n = ud;
	if ((unsigned)op->kind > RETL_OP_REMOVE || (unsigned)op->change > RETL_CH_REMOVED)
		__builtin_trap();
	if ((op->kind == RETL_OP_REMOVE) != (op->payload == NULL))
		__builtin_trap();
	if (strlen(op->key) != op->keylen || (!op->orphan && !op->keylen))
		__builtin_trap();
	if (op->match && strlen(op->match) != op->mlen)
		__builtin_trap();
	if (op->payload && (op->payload[0] != '{' || op->payload[op->plen - 1] != '}'))
		__builtin_trap();
	(*n)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size || size > 1 << 16)
		return 0;
	FILE *f = fmemopen((void *)data, size, "r");
	if (!f)
		return 0;
	struct retl_spool_head h;
	struct retl_err err;
	long n = 0;
	retl_err_clear(&err);
	int ok = retl_spool_verify(f, "fuzz", &h, &err) == 0;
	if (ok && (!h.sync || !h.sync[0]))
		__builtin_trap();
	retl_err_clear(&err);
	int rc = retl_spool_replay(f, "fuzz", check_op, &n, &err);
	/* a verified file replays whole, with the count its end line gave */
	if (ok && (rc != 0 || n != h.ops))
		__builtin_trap();
	retl_spool_head_free(&h);
	fclose(f);
	return 0;
}
