/*
 * test_state_identity.c - record identity in the state store: a key is
 * bound to the record it wrote (match value, id), a send marks that a
 * record may exist, and the records a key leaves behind become orphans
 * (only when asked: mirror runs); the removal scan sees all of it.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "match.h"
#include "state.h"
#include "test.h"

static char dir[64], db_path[128];

static struct retl_state_rec rec(const char *key, const char *match, int orphans)
{
	struct retl_state_rec r;
	memset(&r, 0, sizeof(r));
	r.key = key;
	r.kh = retl_hash128(key, strlen(key));
	r.pay.lo = 7;
	r.pay.hi = 8;
	r.src = 9;
	r.match = match;
	r.mh = match ? retl_match_hash(match, strlen(match), 0) : 0;
	r.orphans = orphans;
	return r;
}

/* "match/dest_id;" of every orphan, in match order */
static int add_orphan(void *ud, const struct retl_state_orphan *o)
{
	retl_buf_addf(ud, "%s/%s;", o->match, o->dest_id ? o->dest_id : "-");
	return 0;
}

static char *orphans(retl_state *st, const char *sync)
{
	retl_buf b = RETL_BUF_INIT;
	struct retl_err err;
	retl_err_clear(&err);
	retl_buf_adds(&b, "");
	CHECK(retl_state_orphans(st, sync, add_orphan, &b, &err) == 0);
	return retl_buf_detach(&b);
}

/* "key:match:sent_match;" of every row */
static int add_row(void *ud, const struct retl_state_row *r)
{
	retl_buf_addf(ud, "%s:%s:%s:%s;", r->key, r->match ? r->match : "-",
		      r->sent_match ? r->sent_match : "-", r->dest_id ? r->dest_id : "-");
	return 0;
}

static char *rows(retl_state *st, const char *sync)
{
	retl_buf b = RETL_BUF_INIT;
	struct retl_err err;
	retl_err_clear(&err);
	retl_buf_adds(&b, "");
	CHECK(retl_state_scan(st, sync, add_row, &b, &err) == 0);
	return retl_buf_detach(&b);
}

#define EXPECT(got, want) do { char *e_ = (got); CHECK_STR(e_, want); free(e_); } while (0)

static void ack(retl_state *st, struct retl_state_rec r, const char *dest_id)
{
	struct retl_err err;
	retl_err_clear(&err);
	r.dest_id = dest_id;
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, "s", &r, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
}

static void sent(retl_state *st, struct retl_state_rec r)
{
	struct retl_err err;
	retl_err_clear(&err);
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_sent(st, "s", &r, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
}

static void test_bind_and_move(retl_state *st)
{
	struct retl_err err;
	retl_err_clear(&err);

	/* a new key, sent: it may exist, under the match value sent */
	sent(st, rec("a", "A@x.io", 1));
	EXPECT(rows(st, "s"), "a:-:A@x.io:-;");
	retl_cache *c = NULL;
	CHECK(retl_state_load_cache(st, "s", &c, &err) == 0);
	retl_h128 ka = retl_hash128("a", 1);
	struct retl_cache_entry *e = retl_cache_find(c, ka);
	CHECK(e && e->sent && e->status == RETL_STATUS_PENDING && !e->mh);
	retl_cache_free(c);

	/* acknowledged: bound to the record, nothing outstanding */
	ack(st, rec("a", "A@x.io", 1), "101");
	EXPECT(rows(st, "s"), "a:A@x.io:-:101;");
	CHECK(retl_state_load_cache(st, "s", &c, &err) == 0);
	e = retl_cache_find(c, ka);
	CHECK(e && !e->sent && e->status == RETL_STATUS_OK &&
	      e->mh == retl_match_hash("a@X.IO", 6, 0));
	retl_cache_free(c);
	EXPECT(orphans(st, "s"), "");

	/* the same match value in another case is the same record */
	ack(st, rec("a", "a@x.io", 1), NULL);
	EXPECT(orphans(st, "s"), "");
	EXPECT(rows(st, "s"), "a:a@x.io:-:101;");

	/* sent under a new value, answer lost, sent again under a third:
	 * the second may exist and becomes an orphan; the bound one stays */
	sent(st, rec("a", "b@x.io", 1));
	sent(st, rec("a", "c@x.io", 1));
	EXPECT(orphans(st, "s"), "b@x.io/-;");
	EXPECT(rows(st, "s"), "a:a@x.io:c@x.io:101;");

	/* acknowledged under the third: the bound record is left behind */
	ack(st, rec("a", "c@x.io", 1), "103");
	EXPECT(orphans(st, "s"), "a@x.io/101;b@x.io/-;");
	EXPECT(rows(st, "s"), "a:c@x.io:-:103;");

	/* an orphan done (removed, or bound again) is gone; one failed
	 * stays with its attempts */
	CHECK(retl_state_orphan_done(st, "s", "b@x.io", &err) == 0);
	CHECK(retl_state_orphan_fail(st, "s", "a@x.io", "HTTP 500", &err) == 0);
	EXPECT(orphans(st, "s"), "a@x.io/101;");

	/* outside mirror runs nothing is left for removal */
	ack(st, rec("a", "d@x.io", 0), "104");
	EXPECT(orphans(st, "s"), "a@x.io/101;");
	EXPECT(rows(st, "s"), "a:d@x.io:-:104;");

	/* forgetting a key leaves its orphans alone; other syncs see none */
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_forget(st, "s", "a", &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	EXPECT(rows(st, "s"), "");
	EXPECT(orphans(st, "s"), "a@x.io/101;");
	EXPECT(orphans(st, "t"), "");
}

static void test_match_values(void)
{
	static const char *const one[] = { "email" };
	static const char *const two[] = { "Name", "Zip" };
	retl_buf b = RETL_BUF_INIT;
	const char *p = "{\"email\":\"  Ann@X.io \",\"Name\":\"Ann\",\"Zip\":12345}";
	CHECK(retl_match_value(p, strlen(p), one, 1, &b) == 1);
	CHECK_STR(b.ptr, "Ann@X.io");
	retl_buf_reset(&b);
	CHECK(retl_match_value(p, strlen(p), two, 2, &b) == 1);
	CHECK(b.len == 9 && !memcmp(b.ptr, "Ann\x1f" "12345", 9));
	retl_buf_reset(&b);
	const char *q = "{\"email\":null,\"x\":1}";
	CHECK(retl_match_value(q, strlen(q), one, 1, &b) == 0);
	CHECK(retl_match_value("{\"email\"", 8, one, 1, &b) == -1);
	CHECK(retl_match_hash("ann@x.io", 8, 0) == retl_match_hash("ANN@X.IO", 8, 0));
	CHECK(retl_match_hash("ann@x.io", 8, 1) != retl_match_hash("ANN@X.IO", 8, 1));
	CHECK(retl_match_hash("ann@x.io", 8, 0) != retl_match_hash("ann@x.ioo", 9, 0));
	CHECK(retl_match_hash("", 0, 0) != 0);
	retl_buf_free(&b);

	retl_match_set *s = retl_match_set_new();
	for (uint64_t i = 1; i <= 5000; i++)
		CHECK(retl_match_set_add(s, i * 2654435761u) == 1);
	CHECK(retl_match_set_add(s, 2654435761u) == 0);
	CHECK(retl_match_set_has(s, 5000 * 2654435761ull));
	CHECK(!retl_match_set_has(s, 5001 * 2654435761ull));
	retl_match_set_free(s);
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

	snprintf(dir, sizeof(dir), "/tmp/retl-test-identity-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(db_path, sizeof(db_path), "%s/retl.db", dir);
	if (use_pg_store(db_path, sizeof(db_path)) && chdir(dir) < 0)
		return 1;
	retl_err_clear(&err);
	if (retl_state_open(&st, db_path, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	test_bind_and_move(st);
	test_match_values();
	retl_state_close(st);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	TEST_DONE();
}
