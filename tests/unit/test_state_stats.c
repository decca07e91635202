/*
 * test_state_stats.c - the state store as the daemon sees it: observer
 * handles (no create, no migration), the per-sync figures /metrics
 * exposes (retl_state_stats_read), and the /healthz write probe.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "state.h"
#include "test.h"

static char dir[64], db_path[128];
static int pg;          /* the store is in PostgreSQL (use_pg_store) */

static struct retl_state_rec rec(const char *key, const char *reason)
{
	struct retl_state_rec r;

	memset(&r, 0, sizeof(r));
	r.key = key;
	r.kh = retl_hash128(key, strlen(key));
	r.pay.lo = 1;
	r.pay.hi = 2;
	r.src = 3;
	r.reason = reason;
	return r;
}

static int count_failure(void *ud, const struct retl_failure_rec *r)
{
	(void)r;
	(*(long *)ud)++;
	return 0;
}

static void test_observer_open(void)
{
	struct retl_err err;
	retl_state *st = (retl_state *)1;
	char path[160];
	FILE *f;

	/* never creates the store */
	retl_err_clear(&err);
	snprintf(path, sizeof(path), "%s/absent.db", dir);
	CHECK(retl_state_open_observer(&st, path, &err) < 0);
	CHECK(st == NULL);
	CHECK(err.code == 2);
	CHECK(strstr(err.msg, "state store ") == err.msg);
	CHECK(strstr(err.msg, path) != NULL);
	CHECK(access(path, F_OK) < 0);

	/* never migrates: an empty file stays empty, and reading figures
	 * from it says what is missing */
	snprintf(path, sizeof(path), "%s/empty.db", dir);
	f = fopen(path, "w");
	fclose(f);
	retl_err_clear(&err);
	CHECK(retl_state_open_observer(&st, path, &err) == 0);
	{
		struct retl_state_stats sum;
		struct stat sb;

		CHECK(retl_state_stats_read(st, &sum, &err) < 0);
		CHECK(sum.n == 0 && sum.s == NULL);
		CHECK(strstr(err.msg, "no such table") != NULL);
		CHECK(stat(path, &sb) == 0 && sb.st_size == 0);
	}
	retl_state_close(st);
}

/*
 * b: an ok run, a failed run (two rows failing, three rejections of which
 * one is of a failing key), a run still going; a: one error run; z: a
 * failing row and no run.
 */
static void fill(retl_state *st)
{
	struct retl_run_counts c = { 10, 3, 2, 5, 1, 1, 2, 1, 40, 3, 1 };
	struct retl_state_rec k1 = rec("k1", "boom"), k2 = rec("k2", "bang"),
			      k3 = rec("k3", NULL);
	struct retl_err err;
	int64_t id;

	retl_err_clear(&err);
	CHECK(retl_state_run_begin(st, "b", &id, &err) == 0);
	CHECK(retl_state_run_end(st, id, "ok", 0, &c, NULL, &err) == 0);
	CHECK(retl_state_run_begin(st, "b", &id, &err) == 0);
	CHECK(retl_state_fail(st, "b", &k1, &err) == 0);
	CHECK(retl_state_fail(st, "b", &k2, &err) == 0);
	CHECK(retl_state_ack(st, "b", &k3, &err) == 0);
	CHECK(retl_state_outcome(st, id, NULL, "rejected", "null key",
				 &err) == 0);
	CHECK(retl_state_outcome(st, id, "k1", "rejected", "dup", &err) == 0);
	CHECK(retl_state_outcome(st, id, "k9", "rejected", "bad", &err) == 0);
	CHECK(retl_state_outcome(st, id, "k3", "added", NULL, &err) == 0);
	CHECK(retl_state_run_end(st, id, RETL_RUN_REJECTED, 1, &c, NULL, &err) == 0);
	CHECK(retl_state_run_begin(st, "b", &id, &err) == 0);
	CHECK(retl_state_run_begin(st, "a", &id, &err) == 0);
	CHECK(retl_state_run_end(st, id, RETL_RUN_FAILED, 2, NULL, "no", &err) == 0);
	CHECK(retl_state_fail(st, "z", &k1, &err) == 0);
}

static void test_stats(retl_state *st)
{
	struct retl_state_stats sum;
	struct retl_err err;
	retl_state *obs;
	long failures = 0;

	retl_err_clear(&err);
	CHECK(retl_state_open_observer(&obs, db_path, &err) == 0);
	CHECK(retl_state_stats_read(obs, &sum, &err) == 0);
	CHECK(sum.n == 3);
	if (sum.n != 3)
		goto out;
	/* in the order of their names */
	CHECK_STR(sum.s[0].sync, "a");
	CHECK_STR(sum.s[1].sync, "b");
	CHECK_STR(sum.s[2].sync, "z");

	CHECK(sum.s[0].nruns == 1);
	CHECK_STR(sum.s[0].runs[0].status, "failed");
	CHECK(sum.s[0].runs[0].n == 1);
	CHECK(sum.s[0].c.added == 0 && sum.s[0].failing == 0);
	CHECK(sum.s[0].last_success < 0);       /* an error is no success */
	CHECK(sum.s[0].last_duration >= 0);

	/* the run still going is not counted */
	CHECK(sum.s[1].nruns == 2);
	CHECK_STR(sum.s[1].runs[0].status, "ok");
	CHECK(sum.s[1].runs[0].n == 1);
	CHECK_STR(sum.s[1].runs[1].status, "rows rejected");
	CHECK(sum.s[1].runs[1].n == 1);
	CHECK(sum.s[1].c.read == 0);
	CHECK(sum.s[1].c.added == 6 && sum.s[1].c.changed == 4);
	CHECK(sum.s[1].c.unchanged == 10 && sum.s[1].c.retried == 2);
	CHECK(sum.s[1].c.removed == 2 && sum.s[1].c.rejected == 4);
	CHECK(sum.s[1].c.failed == 2 && sum.s[1].c.api_calls == 80);
	CHECK(sum.s[1].c.retries == 6 && sum.s[1].c.http_429 == 2);
	/* k1, k2 failing; the null key and k9 rejected; k1's rejection is
	 * already counted as failing */
	CHECK(sum.s[1].failing == 4);
	CHECK(retl_state_failures(obs, "b", count_failure, &failures,
				  &err) == 0);
	CHECK(failures == sum.s[1].failing);
	CHECK(sum.s[1].last_success > 1.7e9);
	CHECK(sum.s[1].last_duration >= 0);

	CHECK(sum.s[2].nruns == 0 && sum.s[2].failing == 1);
	CHECK(sum.s[2].last_success < 0 && sum.s[2].last_duration < 0);
out:
	retl_state_stats_free(&sum);
	CHECK(sum.n == 0 && sum.s == NULL);
	retl_state_close(obs);

	/* on a writer's handle inside its transaction: the caller's
	 * transaction is neither committed nor ended */
	CHECK(retl_state_begin(st, &err) == 0);
	{
		struct retl_state_rec k4 = rec("k4", "later");

		CHECK(retl_state_fail(st, "y", &k4, &err) == 0);
	}
	CHECK(retl_state_stats_read(st, &sum, &err) == 0);
	CHECK(sum.n == 4);
	retl_state_stats_free(&sum);
	retl_state_rollback(st);
	CHECK(retl_state_stats_read(st, &sum, &err) == 0);
	CHECK(sum.n == 3);
	retl_state_stats_free(&sum);
}

static void test_probe(retl_state *st)
{
	struct retl_err err;
	retl_state *obs;

	retl_err_clear(&err);
	CHECK(retl_state_open_observer(&obs, db_path, &err) == 0);
	CHECK(retl_state_probe_writable(obs, &err) == 0);
	/* the probe leaves no transaction behind: a writer goes on */
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);

	/* a writer holds the write lock longer than the observer waits
	 * (SQLite's one writer; PostgreSQL has row locks) */
	CHECK(retl_state_begin(st, &err) == 0);
	if (pg)
		retl_state_rollback(st);
	else {
	CHECK(retl_state_probe_writable(obs, &err) < 0);
	CHECK(strstr(err.msg, "is not writable: ") != NULL);
	CHECK(strstr(err.msg, db_path) != NULL);
	retl_state_rollback(st);
	}
	CHECK(retl_state_probe_writable(obs, &err) == 0);
	retl_state_close(obs);

	/* never inside the caller's own transaction */
	retl_err_clear(&err);
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_probe_writable(st, &err) < 0);
	CHECK(strstr(err.msg, "inside a transaction") != NULL);
	retl_state_rollback(st);
}

/* RETL_TEST_STATE_URL (tests/integration/test_state_pg.py): the same
 * tests on a store in PostgreSQL, whose schema is dropped first */
static int use_pg_store(char *path, size_t size)
{
	const char *url = getenv("RETL_TEST_STATE_URL");

	if (!url || !*url || strlen(url) >= size)
		return 0;
	PGconn *c = PQconnectdb(url);
	PQclear(PQexec(c, "SET client_min_messages TO warning"));
	PQclear(PQexec(c, "DROP SCHEMA IF EXISTS retl CASCADE"));
	PQfinish(c);
	memcpy(path, url, strlen(url) + 1);
	return 1;
}

int main(void)
{
	struct retl_err err;
	retl_state *st;

	snprintf(dir, sizeof(dir), "/tmp/retl-test-stats-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(db_path, sizeof(db_path), "%s/state.db", dir);
	pg = use_pg_store(db_path, sizeof(db_path));
	if (pg && chdir(dir) < 0)
		return 1;
	if (!pg)
		test_observer_open();
	if (retl_state_open(&st, db_path, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	fill(st);
	test_stats(st);
	test_probe(st);
	retl_state_close(st);
	{
		char cmd[96];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	TEST_DONE();
}
