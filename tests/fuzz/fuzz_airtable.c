/*
 * fuzz_airtable.c - Airtable's answer decoder (destinations/airtable.c
 * through struct retl_hd_ops): upserts merged on a field, updates by
 * record id, deletes, a 422 split and the 429 penalty; answered from the
 * input (fuzz_dest.h describes its form).  The penalty is set to its
 * smallest so a 429 costs the harness 0.1 s, not 30.
 */
#include "fuzz_dest.h"

static const struct fz_op ops[] = {
	{ RETL_OP_UPSERT, "1", "{\"Email\":\"a@example.com\",\"Seats\":1}", NULL, "a@example.com", 0 },
	{ RETL_OP_UPSERT, "2", "{\"Email\":\"b@example.com\",\"Seats\":null}", "recB0000000000002", "b@example.com", 0 },
	{ RETL_OP_UPSERT, "3", "{\"Email\":\"c@example.com\",\"Seats\":\"many\"}", NULL, "c@example.com", 0 },
	{ RETL_OP_REMOVE, "4", NULL, "recKeep0000000001", "d@example.com", 0 },
	{ RETL_OP_REMOVE, "5", NULL, NULL, "e@example.com", 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_decoder_input(data, size, fz_project(
			"{\"type\": \"airtable\", \"token\": \"patFuzz.0123456789\", \"base\": \"appGolden12345678\","
			" \"requests_per_second\": 1000, \"rate_limit_penalty\": 0.001,"
			" \"base_url\": \"http://127.0.0.1:9\"}",
			"{\"object\": \"tblGolden0000001\", \"key\": \"id\", \"mode\": \"mirror\", \"on_remove\": \"delete\","
			" \"match\": {\"Email\": \"email\"}, \"fields\": {\"Email\": \"email\", \"Seats\": \"seats\"}}"),
				"airtable", ops, 5, 3);
}
