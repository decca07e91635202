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
	struct retl_config *cfg = fz_project(
		"{\"type\": \"mailchimp\", \"api_key\": \"0123456789abcdef0123456789abcdef-us6\","
		" \"base_url\": \"http://127.0.0.1:9\"}",
		"{\"object\": \"a1b2c3d4e5\", \"key\": \"id\", \"mode\": \"mirror\", \"on_remove\": \"archive\","
		" \"match\": {\"email_address\": \"email\"}, \"fields\": {\"email_address\": \"email\","
		" \"merge_fields.FNAME\": \"first_name\", \"merge_fields.VIP\": {\"from\": \"vip\", \"type\": \"boolean\"},"
		" \"tags\": {\"from\": \"tags\", \"transform\": [{\"split\": \",\"}]}}}");
	struct fz_env env = { .notes = NULL };
	struct fz_answers ans = { .keep_header = NULL };
	if (size > 1 << 16)
		return 0;
	ans.n = fz_split(data, size, ans.part, FZ_MAX_ANSWERS);
	env.notes = json_object();
	void *ctx = fz_open(cfg, "mailchimp", &env, ops, 5);
	fz_run_batches(ctx, ops, 5, 3, &ans);
	retl_hd_close(ctx);
	json_decref(env.notes);
	return 0;
}
