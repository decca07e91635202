/*
 * test_state_audit.c - the state store's side of the sync logs in the
 * warehouse (state_audit.h): which runs wait to be written, their rows as
 * the writer reads them, and outcomes kept until a run is written however
 * many runs pass (a warehouse down for long).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "state.h"
#include "state_audit.h"
#include "test.h"

static char dir[64], db_path[128];

struct rows {
	retl_buf text;           /* "key operation status error;" each */
	int n;
	int synced;              /* read the cache's synced rows too */
};

static int on_row(void *ud, const struct retl_audit_row *r)
{
	struct rows *rs = ud;
	retl_buf_addf(&rs->text, "%s %s %s %s;", r->key ? r->key : "-",
		      r->operation, r->status, r->error ? r->error : "-");
	rs->n++;
	return 0;
}

static struct retl_state_rec rec(const char *key, int64_t run, int change)
{
	struct retl_state_rec r;

	memset(&r, 0, sizeof(r));
	r.key = key;
	r.kh = retl_hash128(key, strlen(key));
	r.pay.lo = 1;
	r.pay.hi = 2;
	r.src = 3;
	r.run_id = run;
	r.change = change;
	return r;
}

static void rows_of(retl_state *st, int64_t run, struct rows *rs)
{
	struct retl_err err;

	retl_err_clear(&err);
	retl_buf_reset(&rs->text);
	rs->n = 0;
	CHECK(retl_state_audit_rows(st, "s", run, rs->synced, on_row, rs, &err) == 0);
}

/* a run's rows: its outcomes, then the rows it synced and still owns */
static void test_rows(retl_state *st)
{
	struct retl_err err;
	struct retl_state_rec a = rec("a", 0, 0), b = rec("b", 0, 1);
	struct rows rs = { RETL_BUF_INIT, 0, 1 };
	struct retl_run_rec r;
	int64_t run, *ids;
	size_t n;

	retl_err_clear(&err);
	CHECK(retl_state_run_begin(st, "s", &run, &err) == 0);
	CHECK(retl_state_audit_want(st, run, &err) == 0);
	a.run_id = b.run_id = run;
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, "s", &a, &err) == 0);
	CHECK(retl_state_ack(st, "s", &b, &err) == 0);
	CHECK(retl_state_outcome(st, run, "c", "failed", "no", &err) == 0);
	CHECK(retl_state_outcome(st, run, NULL, "rejected", "null key", &err) == 0);
	CHECK(retl_state_outcome(st, run, "d", "removed", NULL, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);

	/* running: not yet */
	CHECK(retl_state_audit_pending(st, "s", &ids, &n, &err) == 0);
	CHECK(n == 0);
	free(ids);
	CHECK(retl_state_run_end(st, run, RETL_RUN_REJECTED, 1, NULL, "m",
				 &err) == 0);
	CHECK(retl_state_audit_pending(st, "s", &ids, &n, &err) == 0);
	CHECK(n == 1 && ids[0] == run);
	free(ids);

	rs.synced = 0;
	rows_of(st, run, &rs);
	CHECK(rs.n == 3);
	rs.synced = 1;
	rows_of(st, run, &rs);
	CHECK(rs.n == 5);
	CHECK_STR(rs.text.ptr, "c failed failed no;- rejected rejected null key;"
		  "d removed synced -;a added synced -;b changed synced -;");
	CHECK(retl_state_audit_run(st, run, &r, &err) == 0);
	CHECK_STR(r.status, RETL_RUN_REJECTED);
	CHECK(r.exit_code == 1 && r.id == run);
	CHECK_STR(r.message, "m");
	retl_state_audit_rec_free(&r);

	/* a later run's change moves b on; a's is still this run's */
	{
		int64_t run2;
		struct retl_state_rec b2 = rec("b", 0, 2);
		CHECK(retl_state_run_begin(st, "s", &run2, &err) == 0);
		b2.run_id = run2;
		CHECK(retl_state_ack(st, "s", &b2, &err) == 0);
		rows_of(st, run, &rs);
		CHECK(rs.n == 4);
		rows_of(st, run2, &rs);
		CHECK_STR(rs.text.ptr, "b retried synced -;");
		CHECK(retl_state_run_end(st, run2, RETL_RUN_OK, 0, NULL, NULL,
					 &err) == 0);
	}
	/* run2 was not asked for: only run waits, until written */
	CHECK(retl_state_audit_pending(st, "s", &ids, &n, &err) == 0);
	CHECK(n == 1 && ids[0] == run);
	free(ids);
	CHECK(retl_state_audit_done(st, run, &err) == 0);
	CHECK(retl_state_audit_pending(st, "s", &ids, &n, &err) == 0);
	CHECK(n == 0);
	free(ids);
	CHECK(retl_state_audit_run(st, 999999, &r, &err) == 1);
	retl_buf_free(&rs.text);
}

/* outcomes outlive the 20 runs kept while their run waits to be written */
static void test_kept_until_written(retl_state *st)
{
	struct retl_err err;
	struct rows rs = { RETL_BUF_INIT, 0, 1 };
	int64_t first, run, *ids;
	size_t n;

	retl_err_clear(&err);
	CHECK(retl_state_run_begin(st, "s", &first, &err) == 0);
	CHECK(retl_state_audit_want(st, first, &err) == 0);
	CHECK(retl_state_outcome(st, first, "k", "failed", "why", &err) == 0);
	CHECK(retl_state_run_end(st, first, RETL_RUN_REJECTED, 1, NULL, NULL,
				 &err) == 0);
	for (int i = 0; i < 25; i++) {
		CHECK(retl_state_run_begin(st, "s", &run, &err) == 0);
		CHECK(retl_state_audit_want(st, run, &err) == 0);
		CHECK(retl_state_run_end(st, run, RETL_RUN_OK, 0, NULL, NULL,
					 &err) == 0);
	}
	rows_of(st, first, &rs);
	CHECK_STR(rs.text.ptr, "k failed failed why;");
	CHECK(retl_state_audit_pending(st, "s", &ids, &n, &err) == 0);
	CHECK(n == 26 && ids[0] == first);
	free(ids);

	/* "audit" taken off the source: nothing waits, outcomes pruned */
	CHECK(retl_state_audit_drop(st, "s", &err) == 0);
	CHECK(retl_state_audit_pending(st, "s", &ids, &n, &err) == 0);
	CHECK(n == 0);
	free(ids);
	CHECK(retl_state_run_begin(st, "s", &run, &err) == 0);
	rows_of(st, first, &rs);
	CHECK(rs.n == 0);
	CHECK(retl_state_run_end(st, run, RETL_RUN_OK, 0, NULL, NULL, &err) == 0);
	retl_buf_free(&rs.text);
}

int main(void)
{
	struct retl_err err;
	retl_state *st;
	char *id;

	snprintf(dir, sizeof(dir), "/tmp/retl-test-audit-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(db_path, sizeof(db_path), "%s/state.db", dir);
	retl_err_clear(&err);
	if (retl_state_open(&st, db_path, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	id = retl_state_audit_store_id(st);
	CHECK(id && strlen(id) == 32);
	free(id);
	test_rows(st);
	retl_state_close(st);
	/* a fresh store for the pruning, so run numbers start over */
	snprintf(db_path, sizeof(db_path), "%s/state2.db", dir);
	if (retl_state_open(&st, db_path, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	test_kept_until_written(st);
	retl_state_close(st);
	{
		char cmd[96];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	TEST_DONE();
}
