/*
 * airtable.c - the Airtable destination: the Web API's record endpoints
 * over the shared HTTP batch layer (http_batch.h), 10 records a request.
 *
 *   upsert   PATCH /v0/{base}/{table} with performUpsert.fieldsToMergeOn =
 *            the match fields (1 to 3); results are mapped back to rows by
 *            the merge fields' values, never by position
 *   update   PATCH by the stored record id (a row without one fails: update
 *            mode changes records retl already knows)
 *   insert   POST; rows left pending by an earlier run (a create that got no
 *            answer) are sent as upserts on the match fields instead, so a
 *            create that did happen is found, not duplicated.  A create is
 *            never replayed by the HTTP engine; results map by position
 *            (Airtable answers creates in request order).
 *   mirror   upsert, and removed rows -> DELETE ?records[]=… by stored id
 *            (on_remove "delete"); a record already gone counts as removed.
 *
 * A write is all-or-nothing: one value a field refuses (an unknown select
 * option without typecast, a string in a number field) fails the request,
 * so it is split in halves until the bad row stands alone and fails with
 * Airtable's "TYPE: message".  Errors every row shares (UNKNOWN_FIELD_NAME,
 * a malformed request) fail the part at once instead of costing 2n-1
 * requests at 5 a second.
 *
 * Rate: 5 requests per second per base, in one limiter shared by every
 * sync on that base in the process (keyed by the base id).  A 429 means
 * Airtable stops answering that base for 30 seconds (no Retry-After is
 * documented): the HTTP engine is told to hand 429s back at once
 * (max_429 = 1), and this file pauses the shared limiter for the penalty
 * (`rate_limit_penalty`, default 30) and sends the refused part again: one
 * wait, then on at the limit.
 *
 * Values: retl's neutral formats are Airtable's (dates "YYYY-MM-DD",
 * datetimes ISO 8601, checkboxes true/false, multiple selects and linked
 * records as arrays of names / record ids, null clears a field); nested
 * objects (dotted targets) are refused at open: Airtable fields are flat.
 */
#include "destination.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "airtable_int.h"
#include "buf.h"
#include "http.h"
#include "http_batch.h"
#include "log.h"
#include "mapping.h"
#include "ratelimit.h"

#define AT_MAX_RECORDS 10
#define AT_DEFAULT_API "https://api.airtable.com"
#define AT_MAX_429_RESENDS 5

static const char *const at_conn_keys[] = {
	"token", "base", "requests_per_second", "rate_limit_penalty",
	"max_inflight", "timeout", NULL
};
static const char *const at_sync_keys[] = { "typecast", NULL };

/* ---- options ---- */

static int opt_posnum(const struct retl_dest_cfg *dc, const char *key,
		      double def, double *out, struct retl_err *err)
{
	json_t *v = json_object_get(dc->options, key);
	*out = def;
	if (!v)
		return 0;
	if (!json_is_number(v) || json_number_value(v) < 0)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.%s: expected a number of seconds >= 0",
				    dc->name, key);
	*out = json_number_value(v);
	return 0;
}

static int base_id_ok(const char *b)
{
	if (strncmp(b, "app", 3) || !b[3])
		return 0;
	for (const char *p = b; *p; p++)
		if (!isalnum((unsigned char)*p))
			return 0;
	return 1;
}

static int at_validate(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	const char *s;
	long n;
	double d;
	if (retl_dest_opt_str(dc, "token",
			      "an Airtable personal access token, e.g. \"${AIRTABLE_TOKEN}\"",
			      &s, err) < 0 ||
	    retl_dest_opt_str(dc, "base", "the base id, e.g. \"app…\" (17 characters)",
			      &s, err) < 0)
		return -1;
	if (!base_id_ok(s))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.base: \"%s\" is not an Airtable base id (app followed by letters and digits, as in the base's URL)",
				    dc->name, s);
	if (retl_dest_opt_posint(dc, "requests_per_second", 5, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "max_inflight", 4, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "timeout", 60, &n, err) < 0 ||
	    opt_posnum(dc, "rate_limit_penalty", 30, &d, err) < 0)
		return -1;
	return 0;
}

/* ---- jobs: one engine batch, one sub-batch per request kind ---- */

enum at_kind { AT_UPSERT, AT_UPDATE, AT_CREATE, AT_DELETE, AT_NKIND };

struct at_job {
	struct retl_hb_job j;     /* first */
	json_t **fields;          /* per outer op: its payload object, or NULL */
};

struct at_sub {
	struct retl_hb_sub s;     /* first; s.kind: enum at_kind */
	int resends;              /* times these rows met a 429 */
};

static struct at_sub *sub_new(struct at_job *job, enum at_kind kind, size_t cap)
{
	return (struct at_sub *)retl_hb_sub_new(&job->j, kind, cap, sizeof(struct at_sub));
}

static void job_free(struct retl_hb_job *j)
{
	struct at_job *job = (struct at_job *)j;
	for (size_t i = 0; i < job->j.outer->n; i++)
		json_decref(job->fields[i]);
	free(job->fields);
	free(job);
}

/* hands s to the batch layer; consumes s */
static void sub_submit(struct at_ctx *c, struct at_sub *s)
{
	retl_hb_sub_submit(c->hb, &s->s, "airtable: cannot submit a request");
}

/* the payload as an object of flat fields, or -1 with a reason */
static json_t *parse_fields(const struct retl_op *op, retl_buf *reason)
{
	json_error_t je;
	json_t *o = op->payload ? json_loadb(op->payload, op->payload_len, 0, &je) : NULL;
	const char *k;
	json_t *v;
	if (!json_is_object(o)) {
		json_decref(o);
		retl_buf_adds(reason, "airtable: payload is not a JSON object");
		return NULL;
	}
	json_object_foreach(o, k, v) {
		if (json_is_object(v)) {
			retl_buf_addf(reason, "%s: Airtable fields are flat: an object cannot be sent (use a string, or an array for multiple selects and linked records)",
				      k);
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static int has_merge_values(const struct at_ctx *c, const json_t *f, retl_buf *reason)
{
	for (size_t m = 0; m < c->nmerge; m++) {
		json_t *v = json_object_get(f, c->merge[m]);
		if (!v || json_is_null(v) ||
		    (json_is_string(v) && !json_string_length(v))) {
			retl_buf_addf(reason, "%s: empty; Airtable finds the record by this field (match)",
				      c->merge[m]);
			return 0;
		}
	}
	return 1;
}

static int at_submit(void *ctx, struct retl_batch *b, struct retl_err *err)
{
	struct at_ctx *c = ctx;
	struct at_job *job = retl_calloc(1, sizeof(*job));
	struct at_sub *sub[AT_NKIND] = { 0 };
	retl_buf reason = RETL_BUF_INIT;

	job->j.outer = b;
	job->fields = retl_calloc(b->n ? b->n : 1, sizeof(*job->fields));
	for (size_t i = 0; i < b->n; i++) {
		const struct retl_op *op = &b->ops[i];
		int has_id = op->dest_id && op->dest_id[0];
		enum at_kind k;
		retl_buf_reset(&reason);
		if (op->kind == RETL_OP_REMOVE) {
			if (!has_id) {
				/* never reached Airtable with an id: nothing to remove */
				retl_hb_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
				continue;
			}
			k = AT_DELETE;
		} else {
			job->fields[i] = parse_fields(op, &reason);
			if (!job->fields[i]) {
				retl_hb_set(&b->results[i], RETL_RES_REJECT, NULL, reason.ptr);
				continue;
			}
			if (c->mode == RETL_MODE_UPDATE || op->kind == RETL_OP_UPDATE) {
				if (!has_id) {
					retl_hb_set(&b->results[i], RETL_RES_REJECT, NULL,
						    "airtable: update mode changes only records retl knows the id of (sent before in upsert, insert or mirror mode); this key has none");
					continue;
				}
				k = AT_UPDATE;
			} else if (c->mode == RETL_MODE_INSERT || op->kind == RETL_OP_INSERT) {
				k = op->pending && c->nmerge ? AT_UPSERT : AT_CREATE;
			} else {
				k = AT_UPSERT;
			}
			if (k == AT_UPSERT && !has_merge_values(c, job->fields[i], &reason)) {
				retl_hb_set(&b->results[i], RETL_RES_REJECT, NULL, reason.ptr);
				continue;
			}
		}
		if (!sub[k])
			sub[k] = sub_new(job, k, b->n);
		retl_hb_sub_add(&sub[k]->s, i);
	}
	retl_buf_free(&reason);
	for (int k = 0; k < AT_NKIND; k++)
		if (sub[k])
			sub_submit(c, sub[k]);
	retl_hb_job_submitted(c->hb, &job->j);
	(void)err;
	return 0;
}

/*
 * Airtable stops answering the base for `penalty` seconds after a 429: hold
 * every sync on the base (the shared limiter) until then.
 */
static void penalty_wait(struct at_ctx *c)
{
	double now = retl_rate_now();
	if (retl_rate_delay(c->rate, now) < c->penalty * 0.5)
		retl_log(RETL_LOG_INFO, c->sc->name,
			 "airtable: 429 from base %s: waiting %.0f s (Airtable's rate-limit penalty)",
			 c->base_id, c->penalty);
	retl_rate_pause(c->rate, now, c->penalty + 0.1);
}

static int is_429(const struct retl_result *r)
{
	return r->kind == RETL_RES_RETRY && r->reason && !strncmp(r->reason, "HTTP 429", 8);
}

/* a decoded sub-batch: results go to the engine's batch */
static void sub_done(void *ctx, struct retl_hb_sub *hs)
{
	struct at_ctx *c = ctx;
	struct at_sub *s = (struct at_sub *)hs;
	struct at_job *job = (struct at_job *)hs->job;
	struct retl_batch *ob = job->j.outer;
	struct at_sub *again = NULL;

	if (hs->b.fatal)
		retl_hb_job_fatal(hs->job, hs->b.fatal_code, hs->b.fatal_msg);
	for (size_t i = 0; i < hs->b.n; i++) {
		struct retl_result *r = &hs->b.results[i];
		if (is_429(r) && !ob->fatal && s->resends < AT_MAX_429_RESENDS) {
			if (!again) {
				again = sub_new(job, hs->kind, hs->b.n);
				again->resends = s->resends + 1;
			}
			retl_hb_sub_add(&again->s, hs->oidx[i]);
			continue;
		}
		retl_hb_sub_take(hs, i);
	}
	if (again) {
		penalty_wait(c);
		sub_submit(c, again);
	}
	retl_hb_sub_free(hs);
}

static struct retl_batch *at_wait(void *ctx, int block)
{
	struct at_ctx *c = ctx;
	return retl_hb_job_wait(c->hb, block);
}

/* ---- encode ---- */

static void add_json(retl_buf *o, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	retl_buf_adds(o, s ? s : "null");
	free(s);
}

static void add_url_escaped(retl_buf *o, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~')
			retl_buf_addc(o, (char)ch);
		else
			retl_buf_addf(o, "%%%02X", ch);
	}
}

static int at_encode(void *dctx, const struct retl_hb_part *p,
		     struct retl_http_req *req, struct retl_err *err)
{
	struct at_ctx *c = dctx;
	struct retl_hb_sub *s = p->b->engine;
	retl_buf *o = &req->body;
	retl_buf url = RETL_BUF_INIT;

	retl_buf_adds(&url, c->records_url);
	retl_buf_reset(o);
	req->idempotent = s->kind != AT_CREATE;
	if (s->kind == AT_DELETE) {
		req->method = "DELETE";
		for (size_t k = 0; k < p->n; k++) {
			retl_buf_adds(&url, k ? "&records%5B%5D=" : "?records%5B%5D=");
			add_url_escaped(&url, s->ops[p->idx[k]].dest_id);
		}
		req->url = retl_buf_detach(&url);
		return 0;
	}
	req->method = s->kind == AT_CREATE ? "POST" : "PATCH";
	req->url = retl_buf_detach(&url);
	retl_buf_addc(o, '{');
	if (s->kind == AT_UPSERT) {
		retl_buf_adds(o, "\"performUpsert\":{\"fieldsToMergeOn\":[");
		for (size_t m = 0; m < c->nmerge; m++) {
			if (m)
				retl_buf_addc(o, ',');
			retl_buf_add_json_str(o, c->merge[m], strlen(c->merge[m]));
		}
		retl_buf_adds(o, "]},");
	}
	retl_buf_adds(o, "\"records\":[");
	for (size_t k = 0; k < p->n; k++) {
		size_t in = p->idx[k];
		if (k)
			retl_buf_addc(o, ',');
		retl_buf_addc(o, '{');
		if (s->kind == AT_UPDATE) {
			retl_buf_adds(o, "\"id\":");
			retl_buf_add_json_str(o, s->ops[in].dest_id, strlen(s->ops[in].dest_id));
			retl_buf_addc(o, ',');
		}
		retl_buf_adds(o, "\"fields\":");
		add_json(o, ((struct at_job *)s->job)->fields[s->oidx[in]]);
		retl_buf_addc(o, '}');
	}
	retl_buf_addf(o, "],\"typecast\":%s}", c->typecast ? "true" : "false");
	(void)err;
	return 0;
}

/* ---- decode ---- */

void airtable_error_text(const struct retl_http_req *req, retl_buf *out,
			 char *type, size_t typelen)
{
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	json_t *e = json_object_get(root, "error");
	const char *t = NULL, *msg = NULL;
	if (json_is_string(e)) {
		t = json_string_value(e);
	} else if (json_is_object(e)) {
		t = json_string_value(json_object_get(e, "type"));
		msg = json_string_value(json_object_get(e, "message"));
	} else {
		/* 429: {"errors": [{"error": "RATE_LIMIT_REACHED", "message"}]} */
		json_t *x = json_array_get(json_object_get(root, "errors"), 0);
		t = json_string_value(json_object_get(x, "error"));
		msg = json_string_value(json_object_get(x, "message"));
	}
	if (type && typelen) {
		snprintf(type, typelen, "%s", t ? t : "");
	}
	if (t || msg) {
		retl_buf_addf(out, "%s%s%s", t ? t : "", t && msg ? ": " : "", msg ? msg : "");
	} else {
		char *r = retl_hb_reason(req);
		retl_buf_adds(out, r ? r : "no error message");
		free(r);
	}
	json_decref(root);
}

int airtable_auth_error(const struct at_ctx *c, const struct retl_http_req *req,
			struct retl_err *err)
{
	long st = req->status;
	char type[64];
	retl_buf m = RETL_BUF_INIT;
	if (st != 401 && st != 403 && st != 404)
		return 0;
	airtable_error_text(req, &m, type, sizeof(type));
	if (st == 404 && (!strcmp(type, "MODEL_ID_NOT_FOUND") ||
			  !strcmp(type, "ROW_DOES_NOT_EXIST"))) {
		retl_buf_free(&m);
		return 0;       /* a record, not the table */
	}
	if (st == 401)
		retl_err_set(err, RETL_EXIT_DEST,
			     "airtable: token invalid or expired (401 %s)", retl_buf_cstr(&m));
	else if (st == 403)
		retl_err_set(err, RETL_EXIT_DEST,
			     "airtable: the token may not use base %s or table \"%s\" (403 %s); give it the scopes data.records:read, data.records:write and schema.bases:read and access to the base",
			     c->base_id, c->table, retl_buf_cstr(&m));
	else
		retl_err_set(err, RETL_EXIT_DEST,
			     "airtable: base %s or table \"%s\" not found (404 %s)",
			     c->base_id, c->table, retl_buf_cstr(&m));
	retl_buf_free(&m);
	return -1;
}

static void part_all(const struct retl_hb_part *p, enum retl_result_kind kind,
		     const char *reason)
{
	for (size_t k = 0; k < p->n; k++)
		retl_hb_set(&p->b->results[p->idx[k]], kind, NULL, reason);
}

static int value_eq(const json_t *a, const json_t *b)
{
	if (json_equal((json_t *)a, (json_t *)b))
		return 1;
	if (json_is_string(a) && json_is_string(b))
		return !strcasecmp(json_string_value(a), json_string_value(b));
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	return 0;
}

/* row k of the part is the record with these fields (upsert: merge values) */
static int merge_hit(const struct at_ctx *c, const struct retl_hb_sub *s, size_t in,
		     const json_t *fields)
{
	const json_t *mine = ((struct at_job *)s->job)->fields[s->oidx[in]];
	for (size_t m = 0; m < c->nmerge; m++) {
		json_t *a = json_object_get(mine, c->merge[m]);
		json_t *b = json_object_get(fields, c->merge[m]);
		if (!a || !b || !value_eq(a, b))
			return 0;
	}
	return 1;
}

static enum retl_hb_verdict decode_ok(struct at_ctx *c, struct retl_hb_sub *s,
				      const struct retl_hb_part *p,
				      const struct retl_http_req *req)
{
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	json_t *recs = json_object_get(root, "records");
	unsigned char *done = retl_calloc(p->n ? p->n : 1, 1);
	size_t i;
	json_t *x;

	json_array_foreach(recs, i, x) {
		const char *id = json_string_value(json_object_get(x, "id"));
		json_t *fields = json_object_get(x, "fields");
		if (!id)
			continue;
		for (size_t k = 0; k < p->n; k++) {
			size_t in = p->idx[k];
			int hit;
			if (done[k])
				continue;
			switch (s->kind) {
			case AT_CREATE:
				hit = k == i;   /* creates answer in request order */
				break;
			case AT_UPSERT:
				hit = merge_hit(c, s, in, fields);
				break;
			default:
				hit = !strcmp(s->ops[in].dest_id, id);
				break;
			}
			if (!hit)
				continue;
			done[k] = 1;
			retl_hb_set(&p->b->results[in], RETL_RES_ACK,
				    s->kind == AT_DELETE ? NULL : id, NULL);
			break;
		}
	}
	for (size_t k = 0; k < p->n; k++) {
		if (done[k])
			continue;
		char m[128];
		snprintf(m, sizeof(m),
			 "airtable: no result for this record in the response (HTTP %ld)",
			 req->status);
		retl_hb_set(&p->b->results[p->idx[k]], RETL_RES_RETRY, NULL, m);
	}
	free(done);
	json_decref(root);
	return RETL_HB_DONE;
}

/* errors about the request as a whole, not one row's value */
static int whole_request_error(const char *type)
{
	static const char *const whole[] = {
		"UNKNOWN_FIELD_NAME", "INVALID_REQUEST_UNKNOWN",
		"INVALID_REQUEST_MISSING_FIELDS", "INVALID_REQUEST_BODY",
		"INVALID_RECORDS", "INVALID_PERMISSIONS", "CANNOT_UPDATE_COMPUTED_FIELD",
		"INVALID_FIELDS_TO_MERGE_ON", NULL
	};
	for (const char *const *w = whole; *w; w++)
		if (!strcmp(type, *w))
			return 1;
	return 0;
}

static enum retl_hb_verdict at_decode(void *dctx, const struct retl_hb_part *p,
				      const struct retl_http_req *req,
				      struct retl_err *err)
{
	struct at_ctx *c = dctx;
	struct retl_hb_sub *s = p->b->engine;
	long st = req->status;
	char type[64];
	enum retl_hb_verdict v = RETL_HB_DONE;

	if (st >= 200 && st < 300)
		return decode_ok(c, s, p, req);
	if (airtable_auth_error(c, req, err) < 0)
		return RETL_HB_FATAL;
	if (st <= 0 || st == 429 || st >= 500) {
		char *r = retl_hb_reason(req);
		part_all(p, RETL_RES_RETRY, r ? r : "HTTP error");
		free(r);
		return RETL_HB_DONE;
	}
	retl_buf m = RETL_BUF_INIT;
	airtable_error_text(req, &m, type, sizeof(type));
	int gone = !strcmp(type, "ROW_DOES_NOT_EXIST") || !strcmp(type, "MODEL_ID_NOT_FOUND");
	if (st == 413 && p->n > 1) {
		v = RETL_HB_SPLIT;
	} else if (gone && p->n > 1) {
		v = RETL_HB_SPLIT;      /* find the record(s) that are gone */
	} else if (gone && s->kind == AT_DELETE) {
		part_all(p, RETL_RES_ACK, NULL);        /* already deleted */
	} else if (gone) {
		retl_buf r = RETL_BUF_INIT;
		retl_buf_addf(&r, "%s (the record was deleted in Airtable; `retl reset` the sync, or remove the key, to create it again)",
			      m.ptr);
		part_all(p, RETL_RES_REJECT, r.ptr);
		retl_buf_free(&r);
	} else if ((st == 422 || st == 400) && !whole_request_error(type) && p->n > 1) {
		/* one bad value fails the whole request: isolate it */
		v = RETL_HB_SPLIT;
	} else if (st == 422 || st == 400) {
		part_all(p, RETL_RES_REJECT, m.ptr);
	} else {
		retl_buf r = RETL_BUF_INIT;
		retl_buf_addf(&r, "HTTP %ld: %s", st, retl_buf_cstr(&m));
		part_all(p, RETL_RES_REJECT, r.ptr);
		retl_buf_free(&r);
	}
	retl_buf_free(&m);
	return v;
}

/* ---- open / close / stats ---- */

static void at_close(void *ctx)
{
	struct at_ctx *c = ctx;
	if (!c)
		return;
	retl_hb_free(c->hb);
	retl_http_free(c->http);
	free(c->merge);
	free(c->ftarget);
	free(c->ftype);
	free(c->api);
	free(c->records_url);
	free(c->auth);
	free(c);
}

static const struct retl_hb_ops at_hb_ops = { at_encode, at_decode };

static int open_fields(struct at_ctx *c, const struct retl_sync_cfg *sc,
		       struct retl_err *err)
{
	const retl_mapping *m = sc->mapping;
	c->nf = retl_mapping_nfields(m);
	c->ftarget = retl_calloc(c->nf ? c->nf : 1, sizeof(*c->ftarget));
	c->ftype = retl_calloc(c->nf ? c->nf : 1, sizeof(*c->ftype));
	for (size_t i = 0; i < c->nf; i++) {
		const char *t = retl_mapping_field_target(m, i);
		c->ftarget[i] = t;
		c->ftype[i] = retl_mapping_field_type(m, i);
		if (strchr(t, '.'))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: Airtable fields are flat: a dotted target builds a nested object, which Airtable cannot take",
					    sc->file, t);
	}
	size_t nm = sc->match ? json_object_size(sc->match) : 0;
	if (nm > 3)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: match: Airtable merges on 1 to 3 fields (got %zu)",
				    sc->file, nm);
	if (!nm && (sc->mode == RETL_MODE_UPSERT || sc->mode == RETL_MODE_MIRROR))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: match: missing; the airtable destination in mode \"%s\" upserts on the match fields (performUpsert.fieldsToMergeOn): {\"<Airtable field>\": \"<column>\"}, e.g. {\"Email\": \"email\"}",
				    sc->file, retl_mode_name(sc->mode));
	c->merge = retl_calloc(nm ? nm : 1, sizeof(*c->merge));
	const char *prop;
	json_t *col;
	json_object_foreach(sc->match, prop, col) {
		size_t i;
		for (i = 0; i < c->nf; i++)
			if (!strcmp(c->ftarget[i], prop))
				break;
		if (i == c->nf)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: match.%s: \"%s\" is not a mapped field; Airtable merges on its value in the payload: add \"%s\": \"%s\" to fields",
					    sc->file, prop, prop, prop,
					    json_is_string(col) ? json_string_value(col) : prop);
		c->merge[c->nmerge++] = prop;
	}
	return 0;
}

static int at_open(void **out, const struct retl_dest_cfg *dc,
		   const struct retl_sync_cfg *sc,
		   const struct retl_dest_env *env, struct retl_err *err)
{
	struct at_ctx *c = retl_calloc(1, sizeof(*c));
	long rps, inflight, timeout;
	*out = NULL;
	if (at_validate(dc, err) < 0 ||
	    retl_dest_opt_posint(dc, "requests_per_second", 5, &rps, err) < 0 ||
	    retl_dest_opt_posint(dc, "max_inflight", 4, &inflight, err) < 0 ||
	    retl_dest_opt_posint(dc, "timeout", 60, &timeout, err) < 0 ||
	    opt_posnum(dc, "rate_limit_penalty", 30, &c->penalty, err) < 0)
		goto fail;
	c->sc = sc;
	c->mode = sc->mode;
	c->table = sc->object;
	c->base_id = json_string_value(json_object_get(dc->options, "base"));
	if (!sc->object || !sc->object[0]) {
		retl_err_set(err, RETL_EXIT_USAGE,
			     "%s: object: missing; the airtable destination needs the table's id (tbl…, survives renames) or name",
			     sc->file);
		goto fail;
	}
	json_t *tc = sc->options ? json_object_get(sc->options, "typecast") : NULL;
	if (tc && !json_is_boolean(tc)) {
		retl_err_set(err, RETL_EXIT_USAGE, "%s: typecast: expected true or false",
			     sc->file);
		goto fail;
	}
	c->typecast = json_is_true(tc);
	if (open_fields(c, sc, err) < 0)
		goto fail;

	const char *api = dc->base_url ? dc->base_url : AT_DEFAULT_API;
	size_t al = strlen(api);
	while (al && api[al - 1] == '/')
		al--;
	c->api = retl_strndup(api, al);
	retl_buf u = RETL_BUF_INIT;
	retl_buf_addf(&u, "%s/v0/%s/", c->api, c->base_id);
	add_url_escaped(&u, c->table);
	c->records_url = retl_buf_detach(&u);

	const char *token = json_string_value(json_object_get(dc->options, "token"));
	retl_buf a = RETL_BUF_INIT;
	retl_buf_addf(&a, "Authorization: Bearer %s", token);
	c->auth = retl_buf_detach(&a);

	/* Airtable's limit is per base, whatever the token: key by the base
	 * (and the API host, so an emulator never shares with the real one) */
	retl_buf key = RETL_BUF_INIT;
	retl_buf_addf(&key, "airtable:%s:%s", c->api, c->base_id);
	c->rate = retl_rate_shared(key.ptr, (int)rps, 1.0, 0.05);
	retl_buf_free(&key);
	struct retl_http_opts ho = {
		.max_inflight = (int)inflight,
		.timeout_ms = timeout * 1000,
		.rate = c->rate,
		.budget = env ? env->api_budget : -1,
		.auth = c->auth,
		/* a 429 comes back at once: penalty_wait() holds the base */
		.max_429 = 1,
	};
	if (retl_http_new(&c->http, &ho, err) < 0)
		goto fail;
	c->hb = retl_hb_new(c->http, &at_hb_ops, c, AT_MAX_RECORDS);
	retl_hb_fanout(c->hb, sub_done, job_free);
	*out = c;
	return 0;
fail:
	if (!err->code)
		err->code = RETL_EXIT_USAGE;
	at_close(c);
	return -1;
}

static void at_stats(void *ctx, struct retl_dest_stats *s)
{
	struct at_ctx *c = ctx;
	retl_hb_stats(c ? c->http : NULL, s);
}

const struct retl_destination retl_dest_airtable = {
	.name = "airtable",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_UPDATE |
		 1u << RETL_MODE_INSERT | 1u << RETL_MODE_MIRROR,
	.removals = 1u << RETL_REMOVE_DELETE,
	.max_batch = AT_MAX_RECORDS,
	.conn_keys = at_conn_keys,
	.sync_keys = at_sync_keys,
	.validate = at_validate,
	.open = at_open,
	.check = airtable_check,
	.send = NULL,
	.close = at_close,
	/* engine batches (one request each) queued at once; the limiter
	 * and the conn key max_inflight decide what is on the wire */
	.max_inflight = 8,
	.submit = at_submit,
	.wait = at_wait,
	.stats = at_stats,
};
