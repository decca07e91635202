/*
 * fuzz_airtable_update.c - Airtable's update mode with a match
 * (destinations/airtable_match.c): rows without a kept record id are
 * looked up with POST listRecords, the one record found is PATCHed, a kept
 * id whose record is gone is looked up again; answered from the input
 * (fuzz_dest.h describes its form).  Every row must come back with a
 * result within a bounded number of requests, whatever the answers.
 */
#include "fuzz_dest.h"

static const struct fz_op ops[] = {
	{ RETL_OP_UPDATE, "1", "{\"Email\":\"a@example.com\",\"Seats\":1}", NULL, "a@example.com", 0 },
	{ RETL_OP_UPDATE, "2", "{\"Email\":\"b@example.com\",\"Seats\":2}", "recB0000000000002", "b@example.com", 0 },
	{ RETL_OP_UPDATE, "3", "{\"Email\":\"o'neil\\\\@example.com\",\"Seats\":3}", NULL, "o'neil\\@example.com", 0 },
	{ RETL_OP_UPDATE, "4", "{\"Email\":\"d@example.com\",\"Seats\":null}", NULL, "d@example.com", 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_decoder_input(data, size, fz_project(
			"{\"type\": \"airtable\", \"token\": \"patFuzz.0123456789\", \"base\": \"appGolden12345678\","
			" \"requests_per_second\": 1000, \"rate_limit_penalty\": 0.001,"
			" \"base_url\": \"http://127.0.0.1:9\"}",
			"{\"object\": \"tblGolden0000001\", \"key\": \"id\", \"mode\": \"update\","
			" \"match\": {\"Email\": \"email\"}, \"fields\": {\"Email\": \"email\", \"Seats\": \"seats\"}}"),
				"airtable", ops, 4, 4);
}
