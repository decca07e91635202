/*
 * fuzz_hubspot.c - HubSpot's answer decoder (destinations/hubspot_decode.c
 * through struct retl_hd_ops): batch upserts and creates by email, a
 * pending create looked up first, updates by stored id and archives, all
 * answered from the input (fuzz_dest.h describes its form).
 *
 * Each input is decoded twice, with 2xx answers read without a tree
 * (hubspot_plain_answers, the default) and all through jansson: the
 * requests sent and every op's result must be the same.
 */
#include "fuzz_dest.h"
#include "hubspot_int.h"

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
	struct retl_config *cfg = fz_project(
		"{\"type\": \"hubspot\", \"token\": \"fuzz-token\", \"base_url\": \"http://127.0.0.1:9\"}",
		"{\"object\": \"contacts\", \"key\": \"id\", \"mode\": \"mirror\", \"on_remove\": \"archive\","
		" \"match\": {\"email\": \"email\"}, \"fields\": {\"email\": \"email\", \"firstname\": \"first_name\"}}");
	retl_buf log[2] = { RETL_BUF_INIT, RETL_BUF_INIT };
	for (int plain = 1; plain >= 0; plain--) {
		hubspot_plain_answers = plain;
		fz_decoder_input_log(data, size, cfg, "hubspot", ops, 6, 4, &log[plain]);
	}
	hubspot_plain_answers = 1;
	if (strcmp(retl_buf_cstr(&log[0]), retl_buf_cstr(&log[1])))
		fz_fail("answers read without a tree decode unlike jansson's", retl_buf_cstr(&log[1]));
	retl_buf_free(&log[0]);
	retl_buf_free(&log[1]);
	return 0;
}
