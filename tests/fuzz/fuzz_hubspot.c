/*
 * fuzz_hubspot.c - HubSpot's answer decoder (destinations/hubspot_decode.c
 * through struct retl_hd_ops): batch upserts and creates by email, a
 * pending create looked up first, updates by stored id and archives, all
 * answered from the input (fuzz_dest.h describes its form).
 */
#include "fuzz_dest.h"

static const struct fz_op ops[] = {
	{ RETL_OP_UPSERT, "1", "{\"email\":\"ada@example.com\",\"firstname\":\"Ada\"}", NULL, "ada@example.com", 0 },
	{ RETL_OP_UPSERT, "2", "{\"email\":\"grace@example.com\",\"firstname\":null}", "502", "grace@example.com", 0 },
	{ RETL_OP_INSERT, "3", "{\"email\":\"linus@example.com\",\"firstname\":\"Linus\"}", NULL, "linus@example.com", 1 },
	{ RETL_OP_UPDATE, "4", "{\"email\":\"x@invalid\",\"firstname\":\"X\"}", "504", "x@invalid", 0 },
	{ RETL_OP_REMOVE, "5", NULL, "505", "gone@example.com", 0 },
	{ RETL_OP_REMOVE, "6", NULL, NULL, "lost@example.com", 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_decoder_input(data, size, fz_project(
			"{\"type\": \"hubspot\", \"token\": \"fuzz-token\", \"base_url\": \"http://127.0.0.1:9\"}",
			"{\"object\": \"contacts\", \"key\": \"id\", \"mode\": \"mirror\", \"on_remove\": \"archive\","
			" \"match\": {\"email\": \"email\"}, \"fields\": {\"email\": \"email\", \"firstname\": \"first_name\"}}"),
				"hubspot", ops, 6, 4);
}
