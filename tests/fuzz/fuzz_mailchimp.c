/*
 * fuzz_mailchimp.c - Mailchimp's answer decoders (destinations/mailchimp*.c
 * through struct retl_hd_ops): batch subscribe of new addresses, PUT of
 * members retl wrote before, tags, archive of removed members; answered
 * from the input (fuzz_dest.h describes its form).
 */
#include "fuzz_dest.h"

static const struct fz_op ops[] = {
	{ RETL_OP_UPSERT, "1", "{\"email_address\":\"Ada@Example.com\",\"merge_fields\":{\"FNAME\":\"Ada\",\"VIP\":true},\"tags\":[\"vip\",\"beta\"]}", NULL, "ada@example.com", 0 },
	{ RETL_OP_UPSERT, "2", "{\"email_address\":\"grace@example.com\",\"merge_fields\":{\"FNAME\":\"Grace\",\"VIP\":false},\"tags\":[]}", "grace@example.com", "grace@example.com", 0 },
	{ RETL_OP_UPSERT, "3", "{\"email_address\":\"test@test.test\",\"merge_fields\":{\"FNAME\":null,\"VIP\":null},\"tags\":[\"beta\"]}", NULL, "test@test.test", 1 },
	{ RETL_OP_REMOVE, "4", NULL, "ada@example.com", "ada@example.com", 0 },
	{ RETL_OP_REMOVE, "5", NULL, NULL, "gone@example.com", 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_decoder_input(data, size, fz_project(
			"{\"type\": \"mailchimp\", \"api_key\": \"0123456789abcdef0123456789abcdef-us6\","
			" \"base_url\": \"http://127.0.0.1:9\"}",
			"{\"object\": \"a1b2c3d4e5\", \"key\": \"id\", \"mode\": \"mirror\", \"on_remove\": \"archive\","
			" \"match\": {\"email_address\": \"email\"}, \"fields\": {\"email_address\": \"email\","
			" \"merge_fields.FNAME\": \"first_name\", \"merge_fields.VIP\": {\"from\": \"vip\", \"type\": \"boolean\"},"
			" \"tags\": {\"from\": \"tags\", \"transform\": [{\"split\": \",\"}]}}}"),
				"mailchimp", ops, 5, 3);
}
