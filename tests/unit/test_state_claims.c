/*
 * test_state_claims.c - claims (state_claims.c): two workers' handles on
 * one store; a due time is won by one of them only, the loser is told the
 * stored next due time, a passed due time is claimable again, and
 * (re)planning adopts a due time of the same schedule and pulls one of
 * another schedule earlier, never later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"
#include "test.h"

static char dir[64], db_path[128];

static void test_claim(retl_state *a, retl_state *b)
{
	struct retl_err err;
	int64_t stored = -1;

	retl_err_clear(&err);
	/* the first claim of a sync inserts its row: won */
	CHECK(retl_state_claim(a, "s", "every 2s", "h:1:a", 10000, 12000,
			       &stored, &err) == 1);
	/* the same due time seen by another worker: lost, told the new one */
	CHECK(retl_state_claim(b, "s", "every 2s", "h:2:b", 10000, 12000,
			       &stored, &err) == 0);
	CHECK(stored == 12000);
	/* a moment before it is due: still lost */
	CHECK(retl_state_claim(b, "s", "every 2s", "h:2:b", 11999, 13999,
			       &stored, &err) == 0);
	CHECK(stored == 12000);
	/* once due: won by the first to ask, lost by the second */
	CHECK(retl_state_claim(b, "s", "every 2s", "h:2:b", 12000, 14000,
			       &stored, &err) == 1);
	CHECK(retl_state_claim(a, "s", "every 2s", "h:1:a", 12001, 14001,
			       &stored, &err) == 0);
	CHECK(stored == 14000);
	/* other syncs are claimed apart */
	CHECK(retl_state_claim(a, "t", "every 2s", "h:1:a", 12001, 14001,
			       &stored, &err) == 1);
	CHECK(err.msg[0] == '\0');
}

static void test_plan(retl_state *a, retl_state *b)
{
	struct retl_err err;
	int64_t due = -1, stored = -1;

	retl_err_clear(&err);
	/* no row: nothing to adopt */
	CHECK(retl_state_claim_plan(a, "new", "every 2s", 5000, &due, &err) == 0);
	/* s holds 14000 under "every 2s": adopted under the same schedule,
	 * whether earlier or later than the worker's own plan */
	CHECK(retl_state_claim_plan(a, "s", "every 2s", 13000, &due, &err) == 1);
	CHECK(due == 14000);
	CHECK(retl_state_claim_plan(a, "s", "every 2s", 99000, &due, &err) == 1);
	CHECK(due == 14000);
	/* another schedule's later due time moves earlier to the plan ... */
	CHECK(retl_state_claim(a, "h", "every 1h", "h:1:a", 20000, 3620000,
			       &stored, &err) == 1);
	CHECK(retl_state_claim_plan(b, "h", "every 1s", 21000, &due, &err) == 0);
	CHECK(retl_state_claim(b, "h", "every 1s", "h:2:b", 21000, 22000,
			       &stored, &err) == 1);
	/* ... never later: a longer schedule waits for the stored time */
	CHECK(retl_state_claim_plan(a, "h", "every 1h", 3622000, &due, &err) == 0);
	CHECK(retl_state_claim(a, "h", "every 1h", "h:1:a", 22000, 3622000,
			       &stored, &err) == 1);
	CHECK(err.msg[0] == '\0');
}

int main(void)
{
	struct retl_err err;
	retl_state *a, *b;

	snprintf(dir, sizeof(dir), "/tmp/retl-test-claims-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(db_path, sizeof(db_path), "%s/state.db", dir);
	retl_err_clear(&err);
	if (retl_state_open(&a, db_path, &err) < 0 ||
	    retl_state_open_observer(&b, db_path, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	test_claim(a, b);
	test_plan(a, b);
	retl_state_close(a);
	retl_state_close(b);
	{
		char cmd[96];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	TEST_DONE();
}
