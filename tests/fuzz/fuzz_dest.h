/*
 * fuzz_dest.h - drives one HTTP destination's real prepare, encode, decode
 * and transient callbacks (struct retl_hd_ops) with answers taken from the
 * fuzz input, without a network.
 *
 * The destination is opened from a scratch project (retl.json and
 * mappings/fuzz.json, loaded by retl_config_load as every verb does) with
 * a request budget of 0: the HTTP engine then hands every request back
 * unsent, and retl_hd_wait_answered (http_dest.h) lets the harness write
 * its answer before the destination decodes it.  The harness's fixed ops
 * go in as the engine sends them: one batch of the rows, then one of the
 * removals.
 *
 * The input is a list of answers separated by "%%" lines (fuzz.h), one
 * per request in the order the base sends them, each as a golden N.resp
 * file holds it (tests/unit/test_golden.c):
 *
 *   207                      the status (0: no answer, a transport error)
 *   Sforce-Limit-Info: ...   header lines (only the engine's keep_header
 *                            reaches a destination: it lands in req->kept)
 *                            a blank line
 *   {"results": [...]}       the body
 *
 * A request past the list gets status 0 (the engine gave up).  What every
 * destination must hold: each batch comes back, every op with a result
 * (ACK, REJECT, RETRY, DEFER) unless the batch is fatal with a message,
 * and a batch needs a bounded number of requests (FZ_MAX_REQUESTS; more
 * is a decode that keeps asking for the same ops again).
 */
#ifndef RETL_FUZZ_DEST_H
#define RETL_FUZZ_DEST_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "destination.h"
#include "fuzz.h"
#include "http_dest.h"

#define FZ_MAX_ANSWERS 64
#define FZ_MAX_REQUESTS 400

struct fz_op {
	enum retl_op_kind kind;
	const char *key;          /* plain text key */
	const char *payload;      /* NULL for removes */
	const char *dest_id;
	const char *match;
	int pending;
};

struct fz_answers {
	struct fz_part part[FZ_MAX_ANSWERS];
	size_t n, next, sent;
	const char *keep_header;  /* the destination's, or NULL */
	retl_buf *log;            /* or NULL: every request sent and every
				   * op's result, for a harness that decodes
				   * an input two ways and compares */
};

/* a project holding retl.json (destinations.dest = `dest`, a JSON object
 * text without "type"... given whole) and mappings/fuzz.json = `sync`; the
 * loaded config, once per process */
static struct retl_config *fz_project(const char *dest, const char *sync)
{
	static struct retl_config *cfg;
	struct retl_err err;
	if (cfg)
		return cfg;
	retl_buf r = RETL_BUF_INIT, s = RETL_BUF_INIT;
	retl_buf_addf(&r, "{\"sources\": {\"wh\": {\"type\": \"postgres\", "
		      "\"dsn\": \"host=/nonexistent dbname=fuzz\"}},\n"
		      " \"destinations\": {\"dest\": %s}}\n", dest);
	/* the sync file names its source, query and destination */
	retl_buf_addf(&s, "{\"source\": \"wh\", \"query\": \"SELECT 1\", "
		      "\"destination\": \"dest\", %s", sync + 1);
	fz_mkdir("project");
	fz_mkdir("project/mappings");
	free(fz_write("project/retl.json", r.ptr, r.len));
	free(fz_write("project/mappings/fuzz.json", s.ptr, s.len));
	retl_buf_free(&r);
	retl_buf_free(&s);
	char *dir = fz_path("project");
	retl_err_clear(&err);
	if (retl_config_load(&cfg, dir, &err) < 0) {
		fprintf(stderr, "fuzz_dest: the harness's project: %s\n", err.msg);
		abort();
	}
	free(dir);
	return cfg;
}

/* parses answer text into req (status, kept, resp) */
static void fz_parse_answer(const struct fz_part *a, const char *keep,
			    struct retl_http_req *req)
{
	const char *p = a->p, *end = a->p + a->n;
	long st = 0;
	int digits = 0;
	while (p < end && *p >= '0' && *p <= '9' && digits < 4) {
		st = st * 10 + (*p++ - '0');
		digits++;
	}
	while (p < end && *p != '\n')
		p++;
	if (p < end)
		p++;
	/* header lines until a blank one */
	while (p < end && *p != '\n') {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end;
		const char *colon = memchr(p, ':', (size_t)(le - p));
		if (keep && colon && (size_t)(colon - p) == strlen(keep) &&
		    !strncasecmp(p, keep, strlen(keep))) {
			const char *v = colon + 1;
			while (v < le && *v == ' ')
				v++;
			free(req->kept);
			req->kept = retl_strndup(v, (size_t)(le - v));
		}
		p = eol ? eol + 1 : end;
	}
	if (p < end)
		p++;
	req->status = digits ? st : 0;
	retl_buf_reset(&req->resp);
	retl_buf_add(&req->resp, p, (size_t)(end - p));
	req->attempts = 1;
	if (!req->status)
		snprintf(req->error, sizeof(req->error), "fuzz: no answer");
	else
		req->error[0] = '\0';
}

/* retl_hd_wait_answered's answer(): the next scripted answer */
static void fz_answer(void *ud, struct retl_http_req *req)
{
	struct fz_answers *a = ud;
	if (++a->sent > FZ_MAX_REQUESTS)
		fz_fail("a batch needs more requests than FZ_MAX_REQUESTS (a decode loop?)", NULL);
	if (!req->method || !req->url)
		fz_fail("encode left a request without a method or URL", NULL);
	if (a->log)
		retl_buf_addf(a->log, "%s %s\n%s\n", req->method, req->url,
			      retl_buf_cstr(&req->body));
	if (a->next < a->n) {
		fz_parse_answer(&a->part[a->next++], a->keep_header, req);
	} else {
		req->status = RETL_HTTP_TRANSPORT;
		req->attempts = 1;
		retl_buf_reset(&req->resp);
		snprintf(req->error, sizeof(req->error), "fuzz: no more answers");
	}
}

static void fz_check_batch(const struct retl_batch *b, retl_buf *log)
{
	for (size_t i = 0; log && i < b->n; i++)
		retl_buf_addf(log, "op %s: %d %s %s\n", b->ops[i].key, (int)b->results[i].kind,
			      b->results[i].dest_id ? b->results[i].dest_id : "-",
			      b->results[i].reason ? b->results[i].reason : "-");
	if (log && b->fatal)
		retl_buf_addf(log, "fatal: %s\n", b->fatal_msg);
	if (getenv("FUZZ_VERBOSE"))
		for (size_t i = 0; i < b->n; i++)
			fprintf(stderr, "op %s: %d %s%s\n", b->ops[i].key, (int)b->results[i].kind,
				b->results[i].reason ? b->results[i].reason :
				b->results[i].dest_id ? b->results[i].dest_id : "",
				b->fatal ? " (batch fatal)" : "");
	if (b->fatal) {
		if (!b->fatal_msg[0])
			fz_fail("a fatal batch without a message", NULL);
		return;
	}
	for (size_t i = 0; i < b->n; i++) {
		const struct retl_result *r = &b->results[i];
		if (r->kind == RETL_RES_REJECT && (!r->reason || !r->reason[0]))
			fz_fail("an op rejected without a reason", NULL);
		if ((unsigned)r->kind > RETL_RES_DEFER)
			fz_fail("an op with no result kind", NULL);
	}
}

/* the engine's env for destinations that report later: notes in memory,
 * reports checked against the ops' keys */
struct fz_env {
	json_t *notes;
	const struct fz_op *ops;
	size_t nops;
	unsigned char reported[16];   /* per op: reported since open */
};

static char *fz_note_get(void *ud, const char *name)
{
	struct fz_env *e = ud;
	const char *v = json_string_value(json_object_get(e->notes, name));
	return v ? retl_strdup(v) : NULL;
}

static int fz_note_set(void *ud, const char *name, const char *value)
{
	struct fz_env *e = ud;
	if (value)
		json_object_set_new(e->notes, name, json_string(value));
	else
		json_object_del(e->notes, name);
	return 0;
}

static void fz_note_stage(void *ud, const char *name, const char *value)
{
	fz_note_set(ud, name, value);
}

static int fz_report(void *ud, const char *key, const struct retl_result *res)
{
	struct fz_env *e = ud;
	size_t i = 0;
	while (i < e->nops && strcmp(e->ops[i].key, key))
		i++;
	if (i == e->nops)
		fz_fail("a report for a key the engine never handed over", key);
	if (i < sizeof(e->reported) && e->reported[i]++)
		fz_fail("a key reported twice", key);
	if (res->kind == RETL_RES_REJECT && (!res->reason || !res->reason[0]))
		fz_fail("a reported reject without a reason", key);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "report %s: %d %s\n", key, (int)res->kind,
			res->reason ? res->reason : res->dest_id ? res->dest_id : "");
	return 0;
}

/* fills ops[] from the harness's */
static void fz_make_ops(const struct fz_op *in, size_t n, struct retl_op *ops,
			char **keyjson)
{
	for (size_t i = 0; i < n; i++) {
		retl_buf kj = RETL_BUF_INIT;
		retl_buf_add_json_str(&kj, in[i].key, strlen(in[i].key));
		keyjson[i] = retl_buf_detach(&kj);
		memset(&ops[i], 0, sizeof(ops[i]));
		ops[i].kind = in[i].kind;
		ops[i].key = in[i].key;
		ops[i].key_json = keyjson[i];
		ops[i].payload = in[i].payload;
		ops[i].payload_len = in[i].payload ? strlen(in[i].payload) : 0;
		ops[i].dest_id = in[i].dest_id;
		ops[i].match = in[i].match;
		ops[i].pending = in[i].pending;
	}
}

/* opens type's destination on the project's only sync, with a request
 * budget (0: every request comes back unsent, for the answers of
 * retl_hd_wait_answered) */
static void *fz_open_budget(struct retl_config *cfg, const char *type, struct fz_env *env,
			    const struct fz_op *ops, size_t nops, long budget)
{
	struct retl_err err;
	const struct retl_destination *d = retl_destination_find(type);
	char *dir = fz_path("project");
	struct retl_dest_env de = {
		.dir = dir, .api_budget = budget, .ud = env, .note_get = fz_note_get,
		.note_set = fz_note_set, .note_stage = fz_note_stage, .report = fz_report,
	};
	void *ctx = NULL;
	env->ops = ops;
	env->nops = nops;
	retl_err_clear(&err);
	if (!d || retl_destination_open(d, &ctx, cfg->syncs[0].dst, &cfg->syncs[0],
					&de, &err) < 0) {
		fprintf(stderr, "fuzz_dest: cannot open %s: %s\n", type, err.msg);
		abort();
	}
	free(dir);
	return ctx;
}

static void *fz_open(struct retl_config *cfg, const char *type, struct fz_env *env,
		     const struct fz_op *ops, size_t nops)
{
	return fz_open_budget(cfg, type, env, ops, nops, 0);
}

/*
 * One input: ops [0, nrows) as one batch, then [nrows, nops) as another,
 * submitted with retl_hd_submit and answered from the input.
 */
static void fz_run_batches(void *ctx, const struct fz_op *in, size_t nops,
			   size_t nrows, struct fz_answers *ans)
{
	struct retl_op ops[16];
	char *kj[16];
	struct retl_result res[16];
	if (nops > 16)
		abort();
	fz_make_ops(in, nops, ops, kj);
	memset(res, 0, sizeof(res));
	size_t from[2] = { 0, nrows }, len[2] = { nrows, nops - nrows };
	for (int bi = 0; bi < 2; bi++) {
		if (!len[bi])
			continue;
		struct retl_batch b;
		struct retl_err err;
		memset(&b, 0, sizeof(b));
		b.ops = ops + from[bi];
		b.n = len[bi];
		b.results = res + from[bi];
		b.engine = &b;
		retl_err_clear(&err);
		retl_hd_submit(ctx, &b, &err);
		struct retl_batch *x = retl_hd_wait_answered(ctx, fz_answer, ans);
		if (x != &b)
			fz_fail("wait() did not hand the batch back", NULL);
		if (retl_hd_wait_answered(ctx, fz_answer, ans))
			fz_fail("wait() handed back a batch twice", NULL);
		fz_check_batch(&b, ans->log);
	}
	for (size_t i = 0; i < nops; i++) {
		free(res[i].dest_id);
		free(res[i].reason);
		free(kj[i]);
	}
}

/* one input of a decoder harness: the answers split from it, the ops sent
 * in batches of per_batch against cfg's destination of that type; log: see
 * struct fz_answers */
static int fz_decoder_input_log(const uint8_t *data, size_t size, struct retl_config *cfg,
				const char *type, const struct fz_op *ops, size_t nops,
				size_t per_batch, retl_buf *log)
{
	struct fz_env env = { .notes = NULL };
	struct fz_answers ans = { .keep_header = NULL, .log = log };
	if (size > 1 << 16)
		return 0;
	ans.n = fz_split(data, size, ans.part, FZ_MAX_ANSWERS);
	env.notes = json_object();
	void *ctx = fz_open(cfg, type, &env, ops, nops);
	fz_run_batches(ctx, ops, nops, per_batch, &ans);
	retl_hd_close(ctx);
	json_decref(env.notes);
	return 0;
}

static int fz_decoder_input(const uint8_t *data, size_t size, struct retl_config *cfg,
			    const char *type, const struct fz_op *ops, size_t nops,
			    size_t per_batch)
{
	return fz_decoder_input_log(data, size, cfg, type, ops, nops, per_batch, NULL);
}

#endif
