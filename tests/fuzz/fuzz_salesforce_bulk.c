/*
 * fuzz_salesforce_bulk.c - Salesforce's Bulk API 2.0 results
 * (destinations/salesforce_bulk.c): three rows go through the whole
 * destination, spooled at submit and sent by finish() as one bulk job,
 * against the loopback server (fuzz_sf.h).  The job's calls are answered
 * as Salesforce does (created, uploaded, closed, JobComplete); the input
 * is the three result files, successfulResults, failedResults and
 * unprocessedrecords, separated by "%%" lines (CSV as Salesforce writes
 * it).  Every row must be reported once at most, by a key it was given.
 */
#include "fuzz_sf.h"

static const struct fz_op rows[] = {
	{ RETL_OP_UPSERT, "1", "{\"Email\":\"ada@example.com\",\"Ext__c\":\"1\",\"Interests__c\":[\"Math\",\"Engines\"],\"LastName\":\"Lovelace\"}", NULL, "1", 0 },
	{ RETL_OP_UPSERT, "2", "{\"Email\":\"not-an-address\",\"Ext__c\":\"2\",\"Interests__c\":[],\"LastName\":\"Hopper \\\"Amazing Grace\\\"\"}", NULL, "2", 0 },
	{ RETL_OP_UPSERT, "3", "{\"Email\":null,\"Ext__c\":\"3,\\n\",\"Interests__c\":null,\"LastName\":\"X\"}", NULL, "3", 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gs_answer script[8];
	static struct gs_header csv_hdr = { "Content-Type", "text/csv" };
	static char *csv[3];
	struct retl_config *cfg = sf_project(1);
	struct fz_env env = { .notes = NULL };
	struct fz_part part[3];
	struct retl_err err;
	if (size > 1 << 16)
		return 0;
	size_t n = fz_split(data, size, part, 3);
	sf_token(&script[0]);
	sf_set(&script[1], 200, "{\"id\":\"750Fuzz000001AAA\",\"state\":\"Open\"}");
	sf_set(&script[2], 201, "");
	sf_set(&script[3], 200, "{\"id\":\"750Fuzz000001AAA\",\"state\":\"UploadComplete\"}");
	sf_set(&script[4], 200, "{\"id\":\"750Fuzz000001AAA\",\"state\":\"JobComplete\"}");
	for (size_t i = 0; i < 3; i++) {
		free(csv[i]);
		csv[i] = i < n ? retl_strndup(part[i].p, part[i].n) : retl_strdup("");
		sf_set(&script[5 + i], 200, csv[i]);
		script[5 + i].len = i < n ? part[i].n : 0;
		script[5 + i].h = &csv_hdr;
	}
	gs_script(&sf_srv, script, 8);

	const struct retl_destination *d = retl_destination_find("salesforce");
	env.notes = json_object();
	void *ctx = fz_open_budget(cfg, "salesforce", &env, rows, 3, -1);
	struct retl_op ops[3];
	char *kj[3];
	struct retl_result res[3];
	struct retl_batch b;
	memset(res, 0, sizeof(res));
	memset(&b, 0, sizeof(b));
	fz_make_ops(rows, 3, ops, kj);
	b.ops = ops;
	b.n = 3;
	b.results = res;
	b.engine = &b;
	retl_err_clear(&err);
	d->submit(ctx, &b, &err);
	if (d->wait(ctx, 1) != &b)
		fz_fail("wait() did not hand the batch back", NULL);
	fz_check_batch(&b, NULL);
	retl_err_clear(&err);
	if (d->finish(ctx, &err) < 0 && !err.msg[0])
		fz_fail("finish() failed without a message", NULL);
	d->close(ctx);
	for (size_t i = 0; i < 3; i++) {
		free(res[i].dest_id);
		free(res[i].reason);
		free(kj[i]);
	}
	json_decref(env.notes);
	return 0;
}
