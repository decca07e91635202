/*
 * fuzz_salesforce.c - Salesforce's sObject Collections decoder
 * (destinations/salesforce_collections.c through struct retl_hd_ops):
 * the first line of the input picks the kind of request (0 upsert by
 * External ID, 1 insert, 2 update by Id, 3 delete by Id, 4 delete by
 * External ID), the rest is the answers (fuzz_dest.h), the
 * Sforce-Limit-Info header included.  A 401 fetches a token from the
 * loopback login host (fuzz_sf.h) and sends again.
 */
#include "fuzz_sf.h"

static const struct fz_op rows[] = {
	{ RETL_OP_UPSERT, "1", "{\"Email\":\"ada@example.com\",\"Ext__c\":\"1\",\"Interests__c\":[\"Math\",\"Engines\"],\"LastName\":\"Lovelace\"}", "003Fuzz000001AAA", "1", 0 },
	{ RETL_OP_UPSERT, "2", "{\"Email\":\"not-an-address\",\"Ext__c\":\"2\",\"Interests__c\":[],\"LastName\":\"\"}", "003Fuzz000002AAA", "2", 0 },
	{ RETL_OP_UPSERT, "3", "{\"Email\":null,\"Ext__c\":\"3\",\"Interests__c\":null,\"LastName\":\"X\"}", "003Fuzz000003AAA", "3", 0 },
};
static const struct fz_op removes[] = {
	{ RETL_OP_REMOVE, "1", NULL, "003Fuzz000001AAA", "1", 0 },
	{ RETL_OP_REMOVE, "2", NULL, "003Fuzz000002AAA", "2", 0 },
	{ RETL_OP_REMOVE, "3", NULL, "003Fuzz000003AAA", "3", 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gs_answer tokens[SF_TOKENS];
	struct retl_config *cfg = sf_project(10000);
	struct fz_env env = { .notes = NULL };
	struct fz_answers ans = { .keep_header = "Sforce-Limit-Info" };
	if (size < 2 || size > 1 << 16 || data[1] != '\n')
		return 0;
	int kind = (data[0] - '0') % SF_NKIND;
	if (kind < 0)
		kind = -kind;
	for (size_t i = 0; i < SF_TOKENS; i++)
		sf_token(&tokens[i]);
	gs_script(&sf_srv, tokens, SF_TOKENS);
	const struct fz_op *ops = kind >= SF_DELETE ? removes : rows;
	ans.n = fz_split(data + 2, size - 2, ans.part, FZ_MAX_ANSWERS);
	env.notes = json_object();
	struct sf_ctx *c = fz_open(cfg, "salesforce", &env, ops, 3);
	c->cur = (enum sf_kind)kind;
	fz_run_batches(c, ops, 3, 3, &ans);
	retl_hd_close(c);
	json_decref(env.notes);
	return 0;
}
