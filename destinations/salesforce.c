/*
 * salesforce.c - the Salesforce destination: sObject Collections for small
 * changes, Bulk API 2.0 (salesforce_bulk.c) for volume, inside the org's
 * daily API allocation.
 *
 * Whether a run is small or large is only known once the model has been
 * read, so every row is deferred (RETL_RES_DEFER): submit() appends it to
 * a spool file (one per operation, JSON lines, never all in memory) and
 * the engine stages it.  finish() then sends each spool: up to
 * bulk_threshold rows through sObject Collections (200 records a request,
 * allOrNone false, results in input order), more as one Bulk API 2.0
 * ingest job; every row's outcome is reported through env->report.  A run
 * that stops before reporting leaves its rows staged: they are sent again
 * next run, nothing unacknowledged is marked.
 *
 *   upsert   PATCH /composite/sobjects/{SObject}/{ExternalIdField}
 *   update   PATCH /composite/sobjects, by the stored record Id
 *   insert   POST /composite/sobjects; a create an earlier run left
 *            unresolved is sent as an upsert by the External ID instead,
 *            which cannot duplicate it
 *   mirror   upsert, and removed rows: DELETE /composite/sobjects?ids=
 *            by stored Id (on_remove "delete")
 *
 * Budget: every response's Sforce-Limit-Info (api-usage=N/M) is read; when
 * fewer than `reserve` calls (default 10% of M) are left, no further
 * request is started and the run stops with exit 4; REQUEST_LIMIT_EXCEEDED
 * does the same.  401 INVALID_SESSION_ID refreshes the token once and the
 * request is replayed.
 */
#include "destination.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "salesforce_int.h"

#define SF_MAX_RECORDS 200
#define SF_DEFAULT_LOGIN "https://login.salesforce.com"

const char *const sf_kind_name[SF_NKIND] = { "upsert", "insert", "update", "delete" };

static const char *const sf_conn_keys[] = {
	"login_url", "client_id", "client_secret", "refresh_token", "username",
	"private_key", "audience", "api_version", "bulk_threshold", "reserve",
	"bulk_max_bytes", "bulk_wait", "max_inflight", "timeout", "daily_limit",
	NULL
};

/* ---- options ---- */

static const char *opt(const struct retl_dest_cfg *dc, const char *k)
{
	return json_string_value(json_object_get(dc->options, k));
}

static int sf_validate(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	const char *s;
	long n;
	if (retl_dest_opt_str(dc, "client_id", "the connected app's consumer key, e.g. \"${SF_CLIENT_ID}\"",
			      &s, err) < 0)
		return -1;
	static const char *const strs[] = {
		"login_url", "client_secret", "refresh_token", "username",
		"private_key", "audience", "api_version", NULL
	};
	for (const char *const *k = strs; *k; k++)
		if (json_object_get(dc->options, *k) &&
		    retl_dest_opt_str(dc, *k, "", &s, err) < 0)
			return -1;
	if (opt(dc, "private_key") && !opt(dc, "username"))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.username: missing (the JWT bearer flow, chosen by private_key, signs in as this user)",
				    dc->name);
	if (!opt(dc, "private_key") && !opt(dc, "client_secret"))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s: no credentials: give client_secret (with refresh_token, or alone for the client credentials flow) or private_key and username (JWT bearer flow)",
				    dc->name);
	if (retl_dest_opt_posint(dc, "bulk_threshold", 10000, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "reserve", 1, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "bulk_max_bytes", 100000000, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "bulk_wait", 1800, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "max_inflight", 4, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "timeout", 120, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "daily_limit", 1, &n, err) < 0)
		return -1;
	return 0;
}

/* ---- shared helpers ---- */

struct retl_http_req *sf_call(struct sf_ctx *c, const char *method,
			      const char *path, const char *ctype,
			      const char *body, size_t blen)
{
	for (int attempt = 0;; attempt++) {
		struct retl_http_req *req = retl_http_req_new();
		retl_buf url = RETL_BUF_INIT;
		retl_buf_addf(&url, "%s%s", c->instance, path);
		req->method = method;
		req->url = retl_buf_detach(&url);
		req->idempotent = strcmp(method, "POST") != 0;
		req->content_type = ctype;
		if (body)
			retl_buf_add(&req->body, body, blen);
		retl_http_submit(c->http, req);
		struct retl_http_req *r;
		while ((r = retl_http_next(c->http, 1)) && r != req)
			retl_http_req_free(r);
		sf_usage(c, req);
		if (req->status == 401 && attempt == 0) {
			struct retl_err e;
			retl_err_clear(&e);
			if (sf_auth(c, &e) == 0) {
				retl_http_req_free(req);
				continue;
			}
		}
		return req;
	}
}

void sf_usage(struct sf_ctx *c, const struct retl_http_req *req)
{
	long n, m;
	const char *v = req->kept ? strstr(req->kept, "api-usage=") : NULL;
	if (!v || sscanf(v + 10, "%ld/%ld", &n, &m) != 2 || m <= 0)
		return;
	c->used = n;
	c->limit = m;
	long reserve = c->reserve >= 0 ? c->reserve : m / 10;
	if (m - n < reserve && !c->over_budget) {
		c->over_budget = 1;
		snprintf(c->budget_msg, sizeof(c->budget_msg),
			 "salesforce: daily API usage %ld of %ld: %ld calls left, under the reserve of %ld; rows not sent are sent by a later run",
			 n, m, m - n, reserve);
	}
}

char *sf_error_text(const struct retl_http_req *req)
{
	json_error_t je;
	json_t *root = req->resp.len ? json_loadb(req->resp.ptr, req->resp.len, 0, &je) : NULL;
	retl_buf b = RETL_BUF_INIT;
	size_t i;
	json_t *x;
	if (json_is_array(root)) {
		json_array_foreach(root, i, x) {
			const char *code = json_string_value(json_object_get(x, "errorCode"));
			const char *msg = json_string_value(json_object_get(x, "message"));
			retl_buf_addf(&b, "%s%s: %s", b.len ? "; " : "", code ? code : "ERROR",
				      msg ? msg : "(no message)");
		}
	}
	json_decref(root);
	if (b.len) {
		retl_buf o = RETL_BUF_INIT;
		retl_buf_addf(&o, "HTTP %ld %s", req->status, b.ptr);
		retl_buf_free(&b);
		return retl_buf_detach(&o);
	}
	retl_buf_free(&b);
	return retl_hb_reason(req);
}

int sf_fatal_answer(struct sf_ctx *c, const struct retl_http_req *req,
		    struct retl_err *err)
{
	if (req->status == 401) {
		char *t = sf_error_text(req);
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: session refused after a token refresh (%s)", t);
		free(t);
		return -1;
	}
	if (req->status == 403 && req->resp.ptr &&
	    strstr(req->resp.ptr, "REQUEST_LIMIT_EXCEEDED")) {
		retl_err_set(err, RETL_EXIT_DEST,
			     "salesforce: REQUEST_LIMIT_EXCEEDED: the org's daily API requests are spent (usage %ld of %ld); rows not sent are sent by a later run",
			     c->used, c->limit);
		return -1;
	}
	if (req->status == RETL_HTTP_BUDGET) {
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: not sent: %s", req->error);
		return -1;
	}
	return 0;
}

/* the payload member `field` as text (strings decoded; arrays joined by ';') */
int sf_payload_value(const char *payload, size_t len, const char *field,
		     retl_buf *out, int *is_null)
{
	json_error_t je;
	json_t *o = json_loadb(payload, len, 0, &je);
	json_t *v = json_object_get(o, field);
	int rc = 0;
	retl_buf_reset(out);
	*is_null = 0;
	if (!v) {
		rc = -1;
	} else if (json_is_null(v)) {
		*is_null = 1;
	} else if (json_is_string(v)) {
		retl_buf_add(out, json_string_value(v), json_string_length(v));
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			if (i)
				retl_buf_addc(out, ';');
			if (json_is_string(x))
				retl_buf_adds(out, json_string_value(x));
		}
	} else {
		char *d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		retl_buf_adds(out, d);
		free(d);
	}
	json_decref(o);
	return rc;
}

/* ---- submit: every row is deferred to a spool ---- */

static enum sf_kind op_kind(const struct sf_ctx *c, const struct retl_op *op)
{
	if (op->kind == RETL_OP_REMOVE)
		return SF_DELETE;
	if (c->mode == RETL_MODE_UPDATE || op->kind == RETL_OP_UPDATE)
		return SF_UPDATE;
	if (c->mode == RETL_MODE_INSERT || op->kind == RETL_OP_INSERT)
		return op->pending && c->ext ? SF_UPSERT : SF_INSERT;
	return SF_UPSERT;
}

static int open_spool(struct sf_ctx *c, enum sf_kind k, struct retl_err *err)
{
	if (c->spool[k])
		return 0;
	retl_buf p = RETL_BUF_INIT;
	retl_buf_addf(&p, "%s/%s.%s.spool", c->dir, c->sc->name, sf_kind_name[k]);
	c->spool_path[k] = retl_buf_detach(&p);
	c->spool[k] = fopen(c->spool_path[k], "w+");
	if (!c->spool[k])
		return retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot create %s: %s",
				    c->spool_path[k], strerror(errno));
	return 0;
}

static void ready_push(struct sf_ctx *c, struct retl_batch *b)
{
	if (c->nready == c->capready) {
		c->capready = c->capready ? c->capready * 2 : 8;
		c->ready = retl_realloc(c->ready, c->capready * sizeof(*c->ready));
	}
	c->ready[c->nready++] = b;
}

static int sf_submit(void *ctx, struct retl_batch *b, struct retl_err *err)
{
	struct sf_ctx *c = ctx;
	retl_buf line = RETL_BUF_INIT;
	for (size_t i = 0; i < b->n; i++) {
		const struct retl_op *op = &b->ops[i];
		enum sf_kind k = op_kind(c, op);
		if (k == SF_DELETE && (!op->dest_id || !op->dest_id[0])) {
			/* never reached Salesforce with an Id: nothing to delete */
			retl_hb_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
			continue;
		}
		if (k == SF_UPDATE && (!op->dest_id || !op->dest_id[0])) {
			retl_hb_set(&b->results[i], RETL_RES_REJECT, NULL,
				    "salesforce: update: no Salesforce Id is stored for this row; mode \"update\" updates records retl has synced before (use upsert to create or match them)");
			continue;
		}
		if (open_spool(c, k, err) < 0) {
			b->fatal = 1;
			b->fatal_code = RETL_EXIT_DEST;
			snprintf(b->fatal_msg, sizeof(b->fatal_msg), "%s", err->msg);
			break;
		}
		retl_buf_reset(&line);
		retl_buf_adds(&line, "{\"k\":");
		retl_buf_add_json_str(&line, op->key, strlen(op->key));
		if (op->dest_id) {
			retl_buf_adds(&line, ",\"i\":");
			retl_buf_add_json_str(&line, op->dest_id, strlen(op->dest_id));
		}
		if (op->payload) {
			retl_buf_adds(&line, ",\"p\":");
			retl_buf_add(&line, op->payload, op->payload_len);
		}
		retl_buf_adds(&line, "}\n");
		if (fwrite(line.ptr, 1, line.len, c->spool[k]) != line.len) {
			b->fatal = 1;
			b->fatal_code = RETL_EXIT_DEST;
			snprintf(b->fatal_msg, sizeof(b->fatal_msg),
				 "salesforce: cannot write %s: %s", c->spool_path[k], strerror(errno));
			break;
		}
		c->nspool[k]++;
		retl_hb_set(&b->results[i], RETL_RES_DEFER, NULL, NULL);
	}
	retl_buf_free(&line);
	ready_push(c, b);
	return 0;
}

static struct retl_batch *sf_wait(void *ctx, int block)
{
	struct sf_ctx *c = ctx;
	if (!c->nready)
		return NULL;
	struct retl_batch *b = c->ready[0];
	memmove(c->ready, c->ready + 1, (c->nready - 1) * sizeof(*c->ready));
	c->nready--;
	return b;
}

/* ---- sObject Collections ---- */

struct sf_chunk {
	struct retl_batch b;
	enum sf_kind kind;
};

static void add_record(struct sf_ctx *c, retl_buf *o, const struct retl_op *op,
		       int with_id)
{
	retl_buf_adds(o, "{\"attributes\":{\"type\":");
	retl_buf_add_json_str(o, c->object, strlen(c->object));
	retl_buf_addc(o, '}');
	if (with_id) {
		retl_buf_adds(o, ",\"Id\":");
		retl_buf_add_json_str(o, op->dest_id, strlen(op->dest_id));
	}
	/* the canonical payload's members, arrays (multi-select picklists)
	 * joined with ';' */
	json_error_t je;
	json_t *p = json_loadb(op->payload, op->payload_len, 0, &je);
	const char *k;
	json_t *v;
	json_object_foreach(p, k, v) {
		if (with_id && !strcmp(k, "Id"))
			continue;
		retl_buf_addc(o, ',');
		retl_buf_add_json_str(o, k, strlen(k));
		retl_buf_addc(o, ':');
		if (json_is_array(v)) {
			retl_buf j = RETL_BUF_INIT;
			int dummy;
			sf_payload_value(op->payload, op->payload_len, k, &j, &dummy);
			retl_buf_add_json_str(o, j.ptr ? j.ptr : "", j.len);
			retl_buf_free(&j);
		} else {
			char *d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			retl_buf_adds(o, d);
			free(d);
		}
	}
	json_decref(p);
	retl_buf_addc(o, '}');
}

static int sf_encode(void *dctx, const struct retl_hb_part *p,
		     struct retl_http_req *req, struct retl_err *err)
{
	struct sf_ctx *c = dctx;
	struct sf_chunk *ch = (struct sf_chunk *)p->b;
	retl_buf url = RETL_BUF_INIT, *o = &req->body;
	retl_buf_reset(o);
	retl_buf_addf(&url, "%s/services/data/v%s/composite/sobjects", c->instance, c->version);
	if (ch->kind == SF_DELETE) {
		retl_buf_adds(&url, "?ids=");
		for (size_t k = 0; k < p->n; k++)
			retl_buf_addf(&url, "%s%s", k ? "," : "", p->b->ops[p->idx[k]].dest_id);
		retl_buf_adds(&url, "&allOrNone=false");
		req->method = "DELETE";
		req->idempotent = 1;
	} else {
		if (ch->kind == SF_UPSERT)
			retl_buf_addf(&url, "/%s/%s", c->object, c->ext);
		req->method = ch->kind == SF_INSERT ? "POST" : "PATCH";
		req->idempotent = ch->kind != SF_INSERT;
		retl_buf_adds(o, "{\"allOrNone\":false,\"records\":[");
		for (size_t k = 0; k < p->n; k++) {
			if (k)
				retl_buf_addc(o, ',');
			add_record(c, o, &p->b->ops[p->idx[k]], ch->kind == SF_UPDATE);
		}
		retl_buf_adds(o, "]}");
	}
	req->url = retl_buf_detach(&url);
	(void)err;
	return 0;
}

static void part_all(const struct retl_hb_part *p, enum retl_result_kind kind,
		     const char *reason)
{
	for (size_t k = 0; k < p->n; k++)
		retl_hb_set(&p->b->results[p->idx[k]], kind, NULL, reason);
}

static enum retl_hb_verdict sf_decode(void *dctx, const struct retl_hb_part *p,
				      const struct retl_http_req *req,
				      struct retl_err *err)
{
	struct sf_ctx *c = dctx;
	struct sf_chunk *ch = (struct sf_chunk *)p->b;
	sf_usage(c, req);
	if (req->status == 401) {
		/* INVALID_SESSION_ID: a new token, then the same request */
		if (sf_auth(c, err) < 0)
			return RETL_HB_FATAL;
		return RETL_HB_RESEND;
	}
	if (sf_fatal_answer(c, req, err) < 0)
		return RETL_HB_FATAL;
	if (req->status != 200) {
		char *t = sf_error_text(req);
		part_all(p, RETL_RES_REJECT, t);
		free(t);
		return RETL_HB_DONE;
	}
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	for (size_t k = 0; k < p->n; k++) {
		struct retl_result *r = &p->b->results[p->idx[k]];
		json_t *x = json_array_get(root, k);
		if (!x) {
			retl_hb_set(r, RETL_RES_RETRY, NULL,
				    "salesforce: no result for this record in the response");
			continue;
		}
		const char *id = json_string_value(json_object_get(x, "id"));
		if (json_is_true(json_object_get(x, "success"))) {
			retl_hb_set(r, RETL_RES_ACK, ch->kind == SF_DELETE ? NULL : id, NULL);
			continue;
		}
		retl_buf why = RETL_BUF_INIT;
		enum retl_result_kind kind = RETL_RES_REJECT;
		size_t i, j;
		json_t *e, *f;
		json_array_foreach(json_object_get(x, "errors"), i, e) {
			const char *code = json_string_value(json_object_get(e, "statusCode"));
			const char *msg = json_string_value(json_object_get(e, "message"));
			if (code && !strcmp(code, "UNABLE_TO_LOCK_ROW"))
				kind = RETL_RES_RETRY;
			if (code && ch->kind == SF_DELETE &&
			    (!strcmp(code, "ENTITY_IS_DELETED") ||
			     !strcmp(code, "INVALID_CROSS_REFERENCE_KEY")))
				kind = RETL_RES_ACK;   /* gone already */
			retl_buf_addf(&why, "%s%s: %s", why.len ? "; " : "",
				      code ? code : "ERROR", msg ? msg : "(no message)");
			json_t *fields = json_object_get(e, "fields");
			if (json_array_size(fields)) {
				retl_buf_adds(&why, " (fields: ");
				json_array_foreach(fields, j, f)
					retl_buf_addf(&why, "%s%s", j ? ", " : "",
						      json_string_value(f) ? json_string_value(f) : "?");
				retl_buf_addc(&why, ')');
			}
		}
		retl_hb_set(r, kind, NULL, kind == RETL_RES_ACK ? NULL :
			    why.len ? why.ptr : "salesforce: failed without an error");
		retl_buf_free(&why);
	}
	json_decref(root);
	return RETL_HB_DONE;
}

/* reports chunk rows; on a fatal chunk only the rows with an answer */
static int report_chunk(struct sf_ctx *c, struct sf_chunk *ch)
{
	for (size_t i = 0; i < ch->b.n; i++) {
		struct retl_result *r = &ch->b.results[i];
		if (ch->b.fatal && r->kind == RETL_RES_RETRY)
			continue;
		if (c->env.report(c->env.ud, ch->b.ops[i].key, r) < 0)
			return -1;
	}
	return 0;
}

/* reads up to max spooled ops; strings live in the json lines kept */
static size_t read_ops(FILE *f, struct retl_op *ops, json_t **lines,
		       char **payloads, size_t max)
{
	char *buf = NULL;
	size_t cap = 0, n = 0;
	ssize_t len;
	while (n < max && (len = getline(&buf, &cap, f)) > 0) {
		json_error_t je;
		json_t *j = json_loadb(buf, (size_t)len, 0, &je);
		if (!j)
			continue;
		lines[n] = j;
		memset(&ops[n], 0, sizeof(ops[n]));
		ops[n].key = json_string_value(json_object_get(j, "k"));
		ops[n].dest_id = json_string_value(json_object_get(j, "i"));
		json_t *p = json_object_get(j, "p");
		payloads[n] = p ? json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		ops[n].payload = payloads[n];
		ops[n].payload_len = payloads[n] ? strlen(payloads[n]) : 0;
		n++;
	}
	free(buf);
	return n;
}

static int budget_stop(struct sf_ctx *c, struct retl_err *err)
{
	if (!c->over_budget)
		return 0;
	return retl_err_set(err, RETL_EXIT_DEST, "%s", c->budget_msg);
}

static int collections_run(struct sf_ctx *c, enum sf_kind k, FILE *f,
			   struct retl_err *err)
{
	size_t max = SF_MAX_RECORDS;   /* one request at a time: the budget
					* is checked between requests */
	struct retl_op *ops = retl_calloc(max, sizeof(*ops));
	json_t **lines = retl_calloc(max, sizeof(*lines));
	char **payloads = retl_calloc(max, sizeof(*payloads));
	struct retl_result *res = retl_calloc(max, sizeof(*res));
	int rc = 0;
	size_t n;
	while (rc == 0 && (n = read_ops(f, ops, lines, payloads, max)) > 0) {
		if (budget_stop(c, err) < 0) {
			rc = -1;
		} else {
			struct sf_chunk ch = { .kind = k };
			for (size_t i = 0; i < n; i++)
				retl_hb_set(&res[i], RETL_RES_RETRY, NULL, NULL);
			ch.b.ops = ops;
			ch.b.n = n;
			ch.b.results = res;
			ch.b.engine = &ch;
			struct retl_err e2;
			retl_err_clear(&e2);
			retl_hb_submit(c->hb, &ch.b, &e2);
			while (retl_hb_wait(c->hb, 1) != &ch.b)
				;
			if (report_chunk(c, &ch) < 0)
				rc = -1;
			else if (ch.b.fatal)
				rc = retl_err_set(err, ch.b.fatal_code ? ch.b.fatal_code : RETL_EXIT_DEST,
						  "%s", ch.b.fatal_msg);
		}
		for (size_t i = 0; i < n; i++) {
			json_decref(lines[i]);
			free(payloads[i]);
			free(res[i].dest_id);
			free(res[i].reason);
			res[i].dest_id = res[i].reason = NULL;
		}
	}
	free(ops);
	free(lines);
	free(payloads);
	free(res);
	return rc;
}

static int sf_finish(void *ctx, struct retl_err *err)
{
	struct sf_ctx *c = ctx;
	static const enum sf_kind order[] = { SF_UPSERT, SF_INSERT, SF_UPDATE, SF_DELETE };
	for (size_t i = 0; i < SF_NKIND; i++) {
		enum sf_kind k = order[i];
		FILE *f = c->spool[k];
		if (!f || !c->nspool[k])
			continue;
		if (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0)
			return retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot read back %s: %s",
					    c->spool_path[k], strerror(errno));
		int rc = c->nspool[k] > c->threshold ?
			sf_bulk_run(c, k, f, c->nspool[k], err) :
			collections_run(c, k, f, err);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* ---- open / close ---- */

static void sf_close(void *ctx)
{
	struct sf_ctx *c = ctx;
	if (!c)
		return;
	for (int k = 0; k < SF_NKIND; k++) {
		if (c->spool[k])
			fclose(c->spool[k]);
		if (c->spool_path[k])
			unlink(c->spool_path[k]);
		free(c->spool_path[k]);
	}
	free(c->ready);
	retl_hb_free(c->hb);
	retl_http_free(c->http);
	retl_http_free(c->tok);
	free(c->ftarget);
	free(c->ftype);
	free(c->login);
	free(c->audience);
	free(c->instance);
	free(c->auth);
	free(c->dir);
	free(c);
}

static const struct retl_hb_ops sf_hb_ops = { sf_encode, sf_decode };

static int open_fields(struct sf_ctx *c, const struct retl_sync_cfg *sc,
		       struct retl_err *err)
{
	const retl_mapping *m = sc->mapping;
	c->nf = retl_mapping_nfields(m);
	c->ftarget = retl_calloc(c->nf ? c->nf : 1, sizeof(*c->ftarget));
	c->ftype = retl_calloc(c->nf ? c->nf : 1, sizeof(*c->ftype));
	for (size_t i = 0; i < c->nf; i++) {
		c->ftarget[i] = retl_mapping_field_target(m, i);
		c->ftype[i] = retl_mapping_field_type(m, i);
		if (strchr(c->ftarget[i], '.') || c->ftype[i] == RETL_TYPE_JSON)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: Salesforce fields are flat: a dotted target or type \"json\" cannot be sent",
					    sc->file, c->ftarget[i]);
	}
	if (sc->match) {
		if (json_object_size(sc->match) != 1)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: match: Salesforce finds records by exactly one External ID field (got %zu)",
					    sc->file, json_object_size(sc->match));
		const char *f = json_object_iter_key(json_object_iter(sc->match));
		const char *col = json_string_value(json_object_iter_value(json_object_iter(sc->match)));
		size_t i;
		for (i = 0; i < c->nf; i++)
			if (!strcmp(c->ftarget[i], f))
				break;
		if (i == c->nf)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: match.%s: \"%s\" is not a mapped field; Salesforce needs its value in each record: add \"%s\": \"%s\" to fields",
					    sc->file, f, f, f, col ? col : f);
		c->ext = f;
	} else if (sc->mode != RETL_MODE_UPDATE) {
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: match: missing; the salesforce destination in mode \"%s\" needs {\"<External ID field>\": \"<column>\"}, e.g. {\"External_Id__c\": \"id\"}",
				    sc->file, retl_mode_name(sc->mode));
	}
	return 0;
}

static char *trimmed(const char *s)
{
	size_t n = strlen(s);
	while (n && s[n - 1] == '/')
		n--;
	return retl_strndup(s, n);
}

static int sf_open(void **out, const struct retl_dest_cfg *dc,
		   const struct retl_sync_cfg *sc,
		   const struct retl_dest_env *env, struct retl_err *err)
{
	struct sf_ctx *c = retl_calloc(1, sizeof(*c));
	long inflight, timeout, wait_s;
	*out = NULL;
	if (sf_validate(dc, err) < 0 ||
	    retl_dest_opt_posint(dc, "bulk_threshold", 10000, &c->threshold, err) < 0 ||
	    retl_dest_opt_posint(dc, "reserve", -1, &c->reserve, err) < 0 ||
	    retl_dest_opt_posint(dc, "bulk_max_bytes", 100000000, &c->bulk_max_bytes, err) < 0 ||
	    retl_dest_opt_posint(dc, "bulk_wait", 1800, &wait_s, err) < 0 ||
	    retl_dest_opt_posint(dc, "max_inflight", 4, &inflight, err) < 0 ||
	    retl_dest_opt_posint(dc, "timeout", 120, &timeout, err) < 0)
		goto fail;
	c->poll_max = (double)wait_s;
	c->sc = sc;
	c->dc = dc;
	if (env)
		c->env = *env;
	c->mode = sc->mode;
	c->object = sc->object;
	if (!sc->object) {
		retl_err_set(err, RETL_EXIT_USAGE,
			     "%s: object: missing; the salesforce destination needs an sObject name, e.g. \"Contact\" or \"Customer__c\"",
			     sc->file);
		goto fail;
	}
	for (const char *p = sc->object; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_')) {
			retl_err_set(err, RETL_EXIT_USAGE,
				     "%s: object: \"%s\" is not an sObject API name", sc->file, sc->object);
			goto fail;
		}
	if (open_fields(c, sc, err) < 0)
		goto fail;
	c->version = opt(dc, "api_version") ? opt(dc, "api_version") : "62.0";
	c->client_id = opt(dc, "client_id");
	c->client_secret = opt(dc, "client_secret");
	c->refresh_token = opt(dc, "refresh_token");
	c->username = opt(dc, "username");
	c->private_key = opt(dc, "private_key");
	c->grant = c->private_key ? SF_JWT : c->refresh_token ? SF_REFRESH : SF_CLIENT;
	const char *login = dc->base_url ? dc->base_url :
		opt(dc, "login_url") ? opt(dc, "login_url") : SF_DEFAULT_LOGIN;
	c->login = trimmed(login);
	c->audience = retl_strdup(opt(dc, "audience") ? opt(dc, "audience") :
				  opt(dc, "login_url") ? opt(dc, "login_url") : SF_DEFAULT_LOGIN);

	struct retl_http_opts to = { .max_inflight = 1, .timeout_ms = 30000, .budget = -1 };
	struct retl_http_opts ho = {
		.max_inflight = (int)inflight,
		.timeout_ms = timeout * 1000,
		.budget = env ? env->api_budget : -1,
		.keep_header = "Sforce-Limit-Info",
	};
	if (retl_http_new(&c->tok, &to, err) < 0 || retl_http_new(&c->http, &ho, err) < 0)
		goto fail;
	c->hb = retl_hb_new(c->http, &sf_hb_ops, c, SF_MAX_RECORDS);
	if (sf_auth(c, err) < 0)
		goto fail;

	/* spool files and bulk job maps live beside the project */
	retl_buf d = RETL_BUF_INIT;
	retl_buf_addf(&d, "%s/.retl-salesforce", env && env->dir ? env->dir : ".");
	c->dir = retl_buf_detach(&d);
	if (mkdir(c->dir, 0700) < 0 && errno != EEXIST) {
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot create %s: %s",
			     c->dir, strerror(errno));
		goto fail;
	}
	/* a job an earlier run left: its rows are reported before this run
	 * loads its cache */
	if (c->env.note_get && sf_bulk_resume(c, err) < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	if (!err->code)
		err->code = RETL_EXIT_USAGE;
	sf_close(c);
	return -1;
}

static void sf_stats(void *ctx, struct retl_dest_stats *s)
{
	struct sf_ctx *c = ctx;
	const struct retl_http_stats *h = c && c->http ? retl_http_stats(c->http) : NULL;
	const struct retl_http_stats *t = c && c->tok ? retl_http_stats(c->tok) : NULL;
	s->api_calls = (h ? h->requests : 0) + (t ? t->requests : 0);
	s->retries = (h ? h->retries : 0) + (t ? t->retries : 0);
	s->http_429 = h ? h->http_429 : 0;
}

static void sf_plan(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		    long ops, long *requests, long *jobs)
{
	long threshold = 10000;
	json_t *t = json_object_get(dc->options, "bulk_threshold");
	if (json_is_integer(t) && json_integer_value(t) > 0)
		threshold = (long)json_integer_value(t);
	/* one token request; collections 200 records a request; a bulk job
	 * about 7 calls (create, upload, close, a few polls, 3 results) */
	*requests = 1;
	*jobs = 0;
	if (ops > threshold) {
		*jobs = 1;
		*requests += 7;
	} else {
		*requests += (ops + SF_MAX_RECORDS - 1) / SF_MAX_RECORDS;
	}
	(void)sc;
}

const struct retl_destination retl_dest_salesforce = {
	.name = "salesforce",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_UPDATE |
		 1u << RETL_MODE_INSERT | 1u << RETL_MODE_MIRROR,
	.removals = 1u << RETL_REMOVE_DELETE,
	.max_batch = SF_MAX_RECORDS,
	.conn_keys = sf_conn_keys,
	.sync_keys = NULL,
	.validate = sf_validate,
	.open = sf_open,
	.check = sf_check,
	.close = sf_close,
	.max_inflight = 2,
	.submit = sf_submit,
	.wait = sf_wait,
	.stats = sf_stats,
	.finish = sf_finish,
	.plan = sf_plan,
};
