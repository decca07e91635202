/*
 * test_http_dest.c - the HTTP destinations' base (destinations/http_dest.c)
 * with a destination of the test's own, against a scripted server on
 * loopback: ops grouped by kind into requests of max_ops, split in halves
 * until a bad op stands alone, sent again after RESEND (once), sent again
 * in another kind (retl_req_again), answers the engine gave up on, the
 * request budget, ops settled at prepare, and a close with requests still
 * out.  Every payload is read once, whatever happens to its requests.
 */
#include <stdlib.h>
#include <string.h>

#include "golden_server.h"
#include "http_dest.h"
#include "payload.h"
#include "test.h"

static struct golden_server srv;

struct t_ctx {
	struct retl_http_dest base;   /* first */
	int fatal_on_401;             /* decode: a second 401 is fatal */
};

/* "v" of the payload: "none" settles at prepare, "reject" is refused */
static int t_prepare(void *d, struct retl_batch *b, size_t i, retl_buf *body,
		     retl_buf *id, retl_buf *reason)
{
	const struct retl_op *op = &b->ops[i];
	struct retl_pv v;
	retl_buf s = RETL_BUF_INIT;
	if (retl_payload_get(op->payload, op->payload_len, "v", &v) != 1 ||
	    retl_pv_string(&v, &s) < 0) {
		retl_buf_adds(reason, "t: no v");
		return RETL_HD_REJECT;
	}
	int k = 0;
	if (!strcmp(s.ptr, "none")) {
		retl_result_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
		k = RETL_HD_NONE;
	} else if (!strcmp(s.ptr, "reject")) {
		retl_buf_adds(reason, "t: refused at prepare");
		k = RETL_HD_REJECT;
	} else {
		retl_buf_adds(body, op->key);
		if (s.len)        /* "": no id written at all */
			retl_buf_add(id, s.ptr, s.len);
	}
	retl_buf_free(&s);
	return k;
}

static int t_encode(void *d, struct retl_request *r, struct retl_err *err)
{
	struct t_ctx *c = d;
	retl_buf url = RETL_BUF_INIT;
	retl_buf_addf(&url, "%s/k%d", c->base.url, r->kind);
	r->http->method = "POST";
	r->http->url = retl_buf_detach(&url);
	r->http->idempotent = 1;
	retl_buf_addc(&r->http->body, '[');
	retl_req_add_bodies(r, &r->http->body);
	retl_buf_addc(&r->http->body, ']');
	return 0;
}

static int saw_null_id;          /* retl_req_id gave NULL (it must not) */

/* the answer's body says what to do: ok, split, again, fatal */
static enum retl_hd_verdict t_decode(void *d, struct retl_request *r,
				     struct retl_err *err)
{
	const char *b = retl_buf_cstr(&r->http->resp);
	if (r->http->status == 401)
		return RETL_HD_RESEND;
	if (!strcmp(b, "split"))
		return RETL_HD_SPLIT;
	if (!strcmp(b, "fatal")) {
		retl_err_set(err, RETL_EXIT_DEST, "t: the API said stop");
		return RETL_HD_FATAL;
	}
	for (size_t k = 0; k < r->n; k++) {
		size_t n;
		const char *id = retl_req_id(r, k, &n);
		saw_null_id |= !id;
		char tries[32];
		snprintf(tries, sizeof(tries), "tries %d", retl_req_tries(r, k));
		if (!strncmp(b, "again", 5) && r->kind == 0) {
			retl_req_set(r, k, RETL_RES_RETRY, NULL, "looked up");
			retl_req_again(r, k, 1);
			/* "again twice": an answer naming the op twice */
			if (!strcmp(b, "again twice"))
				retl_req_again(r, k, 1);
		} else {
			retl_req_set(r, k, RETL_RES_ACK, id, r->kind ? tries : NULL);
		}
		(void)n;
	}
	return RETL_HD_DONE;
}

static long budget = -1;
static const char *conn_opts;     /* JSON of the destination's options */

static int t_validate(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	return 0;
}

static int t_options(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		     struct retl_hd_opts *o, struct retl_err *err)
{
	o->auth = retl_strdup("Authorization: Bearer t");
	o->http.max_attempts = 1;     /* a 5xx comes back at once */
	return 0;
}

static const struct retl_hd_ops t_ops = {
	.type = "t",
	.ctx_size = sizeof(struct t_ctx),
	.max_ops = 4,
	.inflight = 1,
	.timeout = 10,
	.validate = t_validate,
	.options = t_options,
	.prepare = t_prepare,
	.encode = t_encode,
	.decode = t_decode,
};

/* ---- a batch of ops, sent and waited for ---- */

struct tb {
	struct retl_op ops[16];
	struct retl_result res[16];
	char keys[16][24], kj[16][24], pay[16][64];
	struct retl_batch b;
};

/* ops named by their "v": "ok", "none", "reject", … */
static void tb_init(struct tb *t, const char *const *vs, size_t n)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < n; i++) {
		snprintf(t->keys[i], sizeof(t->keys[i]), "%zu", i);
		snprintf(t->kj[i], sizeof(t->kj[i]), "\"%zu\"", i);
		snprintf(t->pay[i], sizeof(t->pay[i]), "{\"v\":\"%s\"}", vs[i]);
		t->ops[i].key = t->keys[i];
		t->ops[i].key_json = t->kj[i];
		t->ops[i].payload = t->pay[i];
		t->ops[i].payload_len = strlen(t->pay[i]);
	}
	t->b.ops = t->ops;
	t->b.n = n;
	t->b.results = t->res;
}

static void tb_free(struct tb *t)
{
	for (size_t i = 0; i < t->b.n; i++) {
		free(t->res[i].dest_id);
		free(t->res[i].reason);
	}
}

static void *open_t(struct retl_dest_cfg *dc, struct retl_sync_cfg *sc)
{
	char url[64];
	struct retl_dest_env env = { .api_budget = budget };
	struct retl_err err;
	void *ctx = NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", srv.port);
	memset(dc, 0, sizeof(*dc));
	memset(sc, 0, sizeof(*sc));
	dc->name = "t";
	dc->type = "t";
	dc->base_url = retl_strdup(url);
	dc->options = conn_opts ? json_loads(conn_opts, 0, NULL) : json_object();
	sc->name = "s";
	sc->file = "mappings/s.json";
	retl_err_clear(&err);
	CHECK(retl_hd_open(&ctx, &t_ops, dc, sc, &env, &err) == 0);
	return ctx;
}

static void close_t(void *ctx, struct retl_dest_cfg *dc)
{
	retl_hd_close(ctx);
	free(dc->base_url);
	json_decref(dc->options);
}

/* submits t's batch and waits for it; returns the number of requests */
static size_t run(const char *const *vs, size_t n, const struct gs_answer *ans,
		  size_t nans, struct tb *t)
{
	struct retl_dest_cfg dc;
	struct retl_sync_cfg sc;
	struct retl_err err;
	tb_init(t, vs, n);
	gs_script(&srv, ans, nans);
	void *ctx = open_t(&dc, &sc);
	retl_err_clear(&err);
	retl_hd_submit(ctx, &t->b, &err);
	struct retl_batch *back = retl_hd_wait(ctx, 1);
	CHECK(back == &t->b);
	CHECK(retl_hd_wait(ctx, 1) == NULL);
	CHECK(t->b.dest == NULL);
	close_t(ctx, &dc);
	return srv.ngot;
}

static struct gs_answer A(unsigned status, const char *body)
{
	struct gs_answer a = { .status = status, .body = (char *)body, .len = strlen(body) };
	return a;
}

static const char *uri(size_t i)
{
	return i < srv.ngot ? srv.got[i]->uri : "(none)";
}

static const char *body(size_t i)
{
	return i < srv.ngot ? retl_buf_cstr(&srv.got[i]->body) : "(none)";
}

#define RES(t, i, k) ((t).res[i].kind == (k))

static void test_groups_and_reads(void)
{
	static const char *const vs[] = {
		"ok", "ok", "none", "ok", "reject", "ok", "ok", "ok", "ok", "ok"
	};
	struct gs_answer ans[] = { A(200, "ok"), A(200, "ok") };
	struct tb t;
	unsigned long before = retl_payload_reads();
	size_t n = run(vs, 10, ans, 2, &t);
	CHECK(n == 2);
	CHECK_STR(uri(0), "/k0");
	CHECK_STR(body(0), "[0,1,3,5]");
	CHECK_STR(body(1), "[6,7,8,9]");
	CHECK(RES(t, 2, RETL_RES_ACK) && !t.res[2].dest_id);
	CHECK(RES(t, 4, RETL_RES_REJECT));
	CHECK_STR(t.res[4].reason, "t: refused at prepare");
	CHECK(RES(t, 9, RETL_RES_ACK));
	CHECK_STR(t.res[9].dest_id, "ok");
	/* one read per op, prepare's own lookup included */
	CHECK(retl_payload_reads() - before == 10);
	CHECK_STR(gs_req_header(srv.got[0], "Authorization"), "Bearer t");
	tb_free(&t);
}

static void test_split_until_alone(void)
{
	static const char *const vs[] = { "ok", "bad", "ok", "ok" };
	struct gs_answer ans[] = {
		A(400, "split"),          /* [0,1,2,3] */
		A(400, "split"),          /* [0,1] */
		A(200, "ok"),             /* [2,3] */
		A(200, "ok"),             /* [0] */
		A(400, "split"),          /* [1]: alone, so rejected */
	};
	struct tb t;
	unsigned long before = retl_payload_reads();
	CHECK(run(vs, 4, ans, 5, &t) == 5);
	CHECK_STR(body(1), "[0,1]");
	CHECK_STR(body(2), "[2,3]");
	CHECK_STR(body(3), "[0]");
	CHECK_STR(body(4), "[1]");
	CHECK(RES(t, 0, RETL_RES_ACK) && RES(t, 2, RETL_RES_ACK) && RES(t, 3, RETL_RES_ACK));
	CHECK(RES(t, 1, RETL_RES_REJECT));
	CHECK_STR(t.res[1].reason, "HTTP 400: split");
	CHECK(!t.b.fatal);
	CHECK(retl_payload_reads() - before == 4);   /* splits read nothing again */
	tb_free(&t);
}

static void test_resend_once(void)
{
	static const char *const vs[] = { "ok", "ok" };
	struct gs_answer once[] = { A(401, ""), A(200, "ok") };
	struct gs_answer twice[] = { A(401, "expired"), A(401, "expired") };
	struct tb t;
	CHECK(run(vs, 2, once, 2, &t) == 2);
	CHECK_STR(body(1), "[0,1]");
	CHECK(RES(t, 0, RETL_RES_ACK) && RES(t, 1, RETL_RES_ACK) && !t.b.fatal);
	tb_free(&t);
	CHECK(run(vs, 2, twice, 2, &t) == 2);
	CHECK(t.b.fatal);
	CHECK_STR(t.b.fatal_msg, "HTTP 401: expired");
	tb_free(&t);
}

static void test_again_in_another_kind(void)
{
	static const char *const vs[] = { "a", "b", "c" };
	struct gs_answer ans[] = { A(200, "again"), A(200, "ok") };
	struct tb t;
	CHECK(run(vs, 3, ans, 2, &t) == 2);
	CHECK_STR(uri(0), "/k0");
	CHECK_STR(uri(1), "/k1");
	CHECK_STR(body(1), "[0,1,2]");
	for (int i = 0; i < 3; i++) {
		CHECK(RES(t, i, RETL_RES_ACK));
		CHECK_STR(t.res[i].reason, "tries 1");
	}
	tb_free(&t);
}

/* an op asked for twice in one decode goes once (issue 13: a Mailchimp
 * answer naming a member twice overflowed the queue; fuzz_mailchimp) */
static void test_again_twice_goes_once(void)
{
	static const char *const vs[] = { "a", "b", "c" };
	struct gs_answer ans[] = { A(200, "again twice"), A(200, "ok") };
	struct tb t;
	CHECK(run(vs, 3, ans, 2, &t) == 2);
	CHECK_STR(body(1), "[0,1,2]");
	for (int i = 0; i < 3; i++)
		CHECK_STR(t.res[i].reason, "tries 1");
	tb_free(&t);
}

static void test_fatal_and_gave_up(void)
{
	static const char *const vs[] = { "ok", "ok", "ok", "ok", "ok" };
	struct gs_answer fatal[] = { A(200, "fatal"), A(200, "ok") };
	struct gs_answer gone[] = { A(503, "busy"), A(200, "ok") };
	struct tb t;
	CHECK(run(vs, 5, fatal, 2, &t) == 2);
	CHECK(t.b.fatal && t.b.fatal_code == RETL_EXIT_DEST);
	CHECK_STR(t.b.fatal_msg, "t: the API said stop");
	tb_free(&t);
	/* 5xx after every attempt: not done, the others go on */
	CHECK(run(vs, 5, gone, 2, &t) == 2);
	CHECK(RES(t, 0, RETL_RES_RETRY) && RES(t, 3, RETL_RES_RETRY));
	CHECK_STR(t.res[0].reason, "HTTP 503: busy");
	CHECK(RES(t, 4, RETL_RES_ACK) && !t.b.fatal);
	tb_free(&t);
}

/*
 * An answer over max_response_bytes is no answer (a transport error).  The
 * breaker's default here is 1 (1 attempt x 1 connection): the first opens
 * it, the batch is fatal and the request behind it is never sent.
 */
static void test_over_cap_opens_the_breaker(void)
{
	static const char *const vs[] = { "ok", "ok", "ok", "ok", "ok" };
	struct gs_answer ans[] = { A(200, "0123456789abcdef"), A(200, "ok") };
	struct tb t;
	conn_opts = "{\"max_response_bytes\": 8}";
	CHECK(run(vs, 5, ans, 2, &t) == 1);
	conn_opts = NULL;
	CHECK(t.b.fatal && t.b.fatal_code == RETL_EXIT_DEST);
	CHECK(strstr(t.b.fatal_msg, "destination t (t): 1 requests in a row got no answer "
		     "(the last: the answer is larger than max_response_bytes (8 bytes))") != NULL);
	CHECK(strstr(t.b.fatal_msg, "max_transport_failures") != NULL);
	CHECK(RES(t, 0, RETL_RES_RETRY) && RES(t, 4, RETL_RES_RETRY));
	CHECK(t.res[4].reason && !strncmp(t.res[4].reason,
					  "stopped: the circuit breaker is open: ", 38));
	tb_free(&t);
}

/* with the breaker set higher the others go on; the unanswered ops are
 * counted for the run's exit code */
static void test_unanswered_without_breaker(void)
{
	static const char *const vs[] = { "ok", "ok", "ok", "ok", "ok" };
	struct gs_answer ans[] = { A(200, "0123456789abcdef"), A(200, "ok") };
	struct tb t;
	conn_opts = "{\"max_response_bytes\": 8, \"max_transport_failures\": 2}";
	CHECK(run(vs, 5, ans, 2, &t) == 2);
	conn_opts = NULL;
	CHECK(!t.b.fatal);
	CHECK(t.b.unanswered == 4);
	CHECK_STR(t.b.unanswered_why, "no response after 1 attempt: the answer is larger "
		  "than max_response_bytes (8 bytes)");
	CHECK(RES(t, 3, RETL_RES_RETRY) && RES(t, 4, RETL_RES_ACK));
	tb_free(&t);
}

static void test_budget(void)
{
	static const char *const vs[] = { "ok", "ok", "ok", "ok", "ok" };
	struct gs_answer ans[] = { A(200, "ok"), A(200, "ok") };
	struct tb t;
	budget = 1;
	CHECK(run(vs, 5, ans, 2, &t) == 1);
	budget = -1;
	CHECK(RES(t, 0, RETL_RES_ACK));
	CHECK(RES(t, 4, RETL_RES_RETRY));
	CHECK(t.res[4].reason && !strncmp(t.res[4].reason, "not sent: daily_limit", 21));
	CHECK(t.b.fatal);
	tb_free(&t);
}

static void test_nothing_to_send(void)
{
	static const char *const vs[] = { "none", "reject" };
	struct tb t;
	CHECK(run(vs, 2, NULL, 0, &t) == 0);
	CHECK(RES(t, 0, RETL_RES_ACK) && RES(t, 1, RETL_RES_REJECT));
	tb_free(&t);
}

/* no op wrote an id (issue 13: HubSpot's row_id added the offset to the
 * NULL of an id buffer nothing was written to; UBSan) */
static void test_no_ids_at_all(void)
{
	static const char *const vs[] = { "", "" };
	struct gs_answer ans[] = { A(200, "ok") };
	struct tb t;
	saw_null_id = 0;
	CHECK(run(vs, 2, ans, 1, &t) == 1);
	CHECK(!saw_null_id);      /* "", never NULL (+ offset) */
	CHECK_STR(body(0), "[0,1]");
	CHECK(RES(t, 0, RETL_RES_ACK) && RES(t, 1, RETL_RES_ACK));
	CHECK(t.res[1].dest_id && !t.res[1].dest_id[0]);
	tb_free(&t);
}

/* a run that stops with requests out: close frees them (ASan checks) */
static void test_close_in_flight(void)
{
	static const char *const vs[] = { "ok", "ok", "ok", "ok", "ok", "ok" };
	struct gs_answer ans[] = { A(200, "ok"), A(200, "ok") };
	struct retl_dest_cfg dc;
	struct retl_sync_cfg sc;
	struct retl_err err;
	struct tb t;
	tb_init(&t, vs, 6);
	gs_script(&srv, ans, 2);
	void *ctx = open_t(&dc, &sc);
	retl_err_clear(&err);
	CHECK(retl_hd_submit(ctx, &t.b, &err) == 0);
	CHECK(retl_hd_wait(ctx, 0) == NULL);    /* started, not answered */
	close_t(ctx, &dc);
	tb_free(&t);
}

int main(void)
{
	if (gs_start(&srv) < 0) {
		fprintf(stderr, "cannot start the test server\n");
		return 1;
	}
	test_groups_and_reads();
	test_split_until_alone();
	test_resend_once();
	test_again_in_another_kind();
	test_again_twice_goes_once();
	test_fatal_and_gave_up();
	test_over_cap_opens_the_breaker();
	test_unanswered_without_breaker();
	test_budget();
	test_nothing_to_send();
	test_no_ids_at_all();
	test_close_in_flight();
	gs_stop(&srv);
	TEST_DONE();
}
