/*
 * fuzz_webhook.c - the webhook's answer decoder (destinations/webhook.c
 * through struct retl_hd_ops): signed batches of two, removals; the status
 * decides each batch (2xx, 4xx refused, 5xx and none retried next run).
 * Answered from the input (fuzz_dest.h describes its form).
 */
#include "fuzz_dest.h"

static const struct fz_op ops[] = {
	{ RETL_OP_UPSERT, "1", "{\"email\":\"ada@example.com\",\"id\":1,\"plan\":\"pro\"}", NULL, NULL, 0 },
	{ RETL_OP_UPSERT, "2", "{\"email\":\"grace@example.com\",\"id\":2,\"plan\":null}", NULL, NULL, 0 },
	{ RETL_OP_UPSERT, "3", "{\"email\":\"linus@example.com\",\"id\":3,\"plan\":\"free\"}", NULL, NULL, 0 },
	{ RETL_OP_REMOVE, "4", NULL, NULL, NULL, 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_decoder_input(data, size, fz_project(
			"{\"type\": \"webhook\", \"url\": \"http://127.0.0.1:9/hooks/retl\","
			" \"signing_secret\": \"fuzz-signing-secret\", \"batch_size\": 2,"
			" \"headers\": {\"X-Team\": \"growth\"}}",
			"{\"key\": \"id\", \"mode\": \"mirror\", \"on_remove\": \"delete\","
			" \"fields\": {\"id\": {\"from\": \"id\", \"type\": \"integer\"}, \"email\": \"email\", \"plan\": \"plan\"}}"),
				"webhook", ops, 4, 3);
}
