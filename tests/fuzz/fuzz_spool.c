/*
 * fuzz_spool.c - the Salesforce spool reader (destinations/salesforce_spool.c
 * sf_spool_get): the input is a spool file as a crashed or tampered run
 * may leave it beside the project.  Every record read back must be whole
 * and must write back (sf_spool_put) to a record that reads the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "salesforce_int.h"

static int same(const char *a, const char *b, size_t n)
{
	return (!a && !b) || (a && b && !memcmp(a, b, n));
}

/* op written by sf_spool_put and read back gives op again */
static void round_trip(const struct retl_op *op)
{
	char *mem = NULL;
	size_t len = 0;
	FILE *w = open_memstream(&mem, &len);
	if (!w || sf_spool_put(w, op) < 0 || fclose(w) != 0)
		fz_fail("sf_spool_put failed on a record sf_spool_get read", NULL);
	FILE *r = fmemopen(mem, len, "r");
	retl_buf b = RETL_BUF_INIT;
	struct retl_op back;
	if (!r || sf_spool_get(r, &b, &back) != 1)
		fz_fail("a record written by sf_spool_put does not read back", NULL);
	if (strcmp(back.key, op->key) ||
	    !same(back.dest_id, op->dest_id, op->dest_id ? strlen(op->dest_id) + 1 : 0) ||
	    back.payload_len != op->payload_len ||
	    !same(back.payload, op->payload, op->payload_len))
		fz_fail("a spool record reads back different", NULL);
	fclose(r);
	retl_buf_free(&b);
	free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	FILE *f = fmemopen((void *)data, size, "r");
	retl_buf b = RETL_BUF_INIT;
	struct retl_op op;
	int rc;
	if (!f)
		return 0;
	/* every record takes at least its header line: this ends */
	while ((rc = sf_spool_get(f, &b, &op)) == 1) {
		if (!op.key)
			fz_fail("a record without a key", NULL);
		if (op.payload && op.payload[op.payload_len] != '\0')
			fz_fail("a payload not NUL-ended at its length", NULL);
		round_trip(&op);
	}
	if (rc != 0 && rc != -1)
		fz_fail("sf_spool_get returned neither 1, 0 nor -1", NULL);
	fclose(f);
	retl_buf_free(&b);
	return 0;
}
