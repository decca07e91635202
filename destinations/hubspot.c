/*
 * hubspot.c - the HubSpot destination: CRM v3 batch endpoints over the
 * shared HTTP batch layer (http_batch.h).
 *
 *   upsert   POST /crm/v3/objects/{object}/batch/upsert, idProperty = the
 *            match property, each input's id = the payload's value for it
 *   update   batch/update by the stored HubSpot id, else by idProperty
 *   insert   batch/create; ops left pending by an earlier run are first
 *            looked up with batch/read by idProperty: found ones are
 *            acknowledged with the found id, the rest created.  A create
 *            is never replayed by the HTTP engine (not idempotent): a create
 *            that got no answer leaves its row pending for the next run.
 *   mirror   upsert, and removed rows -> batch/archive by stored id.  Both
 *            on_remove "archive" and "delete" archive: HubSpot's v3 delete
 *            *is* archive (restorable for 90 days); the permanent GDPR
 *            delete exists only for contacts and retl never sends it.
 *
 * One engine batch (at most 100 ops, HubSpot's inputs limit) may become
 * several sub-batches, one per endpoint (a lookup, then the creates it did
 * not find; upserts beside archives); the engine gets its batch back once
 * every sub-batch is decoded.
 *
 * Responses are mapped back to rows by the idProperty value in each
 * result's properties (HubSpot lowercases emails: compared without case),
 * by the stored id (update by id) or by objectWriteTraceId (create), never
 * by position.
 *
 * Values: the payload is retl's canonical JSON; dates become midnight-UTC
 * epoch milliseconds, booleans "true"/"false", null "" (clears the
 * property), arrays of strings are joined with ';' (multi-checkbox);
 * nested objects and dotted targets are refused at open (HubSpot
 * properties are flat).
 */
#include "destination.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "hash.h"
#include "http.h"
#include "http_batch.h"
#include "hubspot_int.h"
#include "mapping.h"
#include "ratelimit.h"

#define HS_MAX_INPUTS 100
#define HS_DEFAULT_BASE "https://api.hubapi.com"

static const char *const hs_conn_keys[] = {
	"token", "requests_per_10s", "daily_limit", "max_inflight", "timeout", NULL
};

/* ---- options ---- */

static int hs_validate(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	const char *t;
	long n;
	if (retl_dest_opt_str(dc, "token", "a HubSpot private app token, e.g. \"${HUBSPOT_TOKEN}\"",
			      &t, err) < 0)
		return -1;
	if (retl_dest_opt_posint(dc, "requests_per_10s", 100, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "daily_limit", 0, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "max_inflight", 4, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "timeout", 60, &n, err) < 0)
		return -1;
	return 0;
}

/* ---- the canonical payload, read without a JSON tree ---- */

/* p at '"': past the closing quote (or e) */
static const char *skip_str(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return e;
}

static const char *skip_val(const char *p, const char *e)
{
	if (p >= e)
		return e;
	if (*p == '"')
		return skip_str(p, e);
	if (*p == '{' || *p == '[') {
		int depth = 0;
		while (p < e) {
			if (*p == '"') {
				p = skip_str(p, e);
				continue;
			}
			if (*p == '{' || *p == '[')
				depth++;
			else if ((*p == '}' || *p == ']') && --depth == 0)
				return p + 1;
			p++;
		}
		return e;
	}
	while (p < e && *p != ',' && *p != '}' && *p != ']')
		p++;
	return p;
}

/* days since 1970-01-01 of a civil date (Howard Hinnant's algorithm) */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

/* "\"2024-05-01\"" -> epoch ms of its midnight UTC; -1 if not a date */
static int date_ms(const char *s, size_t n, long long *ms)
{
	int y, m, d, used = 0;
	char tmp[24];
	if (n < 12 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s + 1, n - 2);
	tmp[n - 2] = '\0';
	if (sscanf(tmp, "%d-%d-%d%n", &y, &m, &d, &used) != 3 ||
	    (size_t)used != n - 2 || m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	*ms = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400000LL;
	return 0;
}

/* decodes a JSON string literal (quotes included) into out */
static int json_str_decode(const char *s, size_t n, retl_buf *out)
{
	json_error_t je;
	json_t *v = json_loadb(s, n, JSON_DECODE_ANY, &je);
	if (!v || !json_is_string(v)) {
		json_decref(v);
		return -1;
	}
	retl_buf_add(out, json_string_value(v), json_string_length(v));
	json_decref(v);
	return 0;
}

static int find_field(const struct hs_ctx *c, const char *k, size_t klen)
{
	for (size_t i = 0; i < c->nf; i++)
		if (strlen(c->fkey[i]) == klen && !memcmp(c->fkey[i], k, klen))
			return (int)i;
	return -1;
}

/* ---- jobs: one engine batch, one or more sub-batches ---- */

enum hs_kind { HS_UPSERT, HS_UPDATE, HS_CREATE, HS_READ, HS_ARCHIVE, HS_NKIND };

static const char *const hs_verb[HS_NKIND] = {
	"upsert", "update", "create", "read", "archive"
};

struct hs_row {
	size_t p_off, p_len;      /* properties object in job->props */
	size_t id_off, id_len;    /* decoded idProperty value in job->ids */
	int has_id;
};

struct hs_job {
	struct retl_hb_job j;     /* first */
	struct hs_row *rows;
	retl_buf props, ids;
};

struct hs_sub {
	struct retl_hb_sub s;     /* first; s.kind: enum hs_kind */
	unsigned char *notfound;  /* HS_READ: not in HubSpot */
	unsigned char *relookup;  /* HS_CREATE: exists already, look it up */
	int from_read;            /* HS_CREATE after a lookup: no second one */
};

static void set_res(struct retl_result *r, enum retl_result_kind kind,
		    const char *id, const char *reason)
{
	retl_hb_set(r, kind, id, reason);
}

/*
 * The properties object of one op, values in HubSpot's formats, and the
 * idProperty's value.  Returns -1 with a reason for a row HubSpot cannot
 * take.
 */
static int convert_row(struct hs_ctx *c, struct hs_job *job, size_t oi,
		       const struct retl_op *op, retl_buf *reason)
{
	struct hs_row *row = &job->rows[oi];
	const char *p = op->payload, *e = p + op->payload_len;
	retl_buf *o = &job->props;
	size_t start = o->len;
	int first = 1;

	if (!p || p >= e || *p != '{') {
		retl_buf_adds(reason, "hubspot: payload is not a JSON object");
		return -1;
	}
	row->p_off = start;
	retl_buf_addc(o, '{');
	for (p++; p < e && *p != '}';) {
		if (*p == ',')
			p++;
		const char *ks = p;
		p = skip_str(p, e);
		const char *kend = p;
		if (p < e && *p == ':')
			p++;
		const char *vs = p;
		p = skip_val(p, e);
		size_t vn = (size_t)(p - vs);
		int f = find_field(c, ks + 1, (size_t)(kend - ks - 2));
		enum retl_type t = f >= 0 ? c->ftype[f] : RETL_TYPE_AUTO;
		const char *target = f >= 0 ? c->ftarget[f] : "?";

		if (!first)
			retl_buf_addc(o, ',');
		first = 0;
		retl_buf_add(o, ks, (size_t)(kend - ks));
		retl_buf_addc(o, ':');
		size_t vpos = o->len;
		long long ms;
		switch (vn ? *vs : 'n') {
		case '"':
			if (t == RETL_TYPE_DATE && date_ms(vs, vn, &ms) == 0)
				retl_buf_addf(o, "\"%lld\"", ms);
			else
				retl_buf_add(o, vs, vn);
			break;
		case 't':
			retl_buf_adds(o, "\"true\"");
			break;
		case 'f':
			retl_buf_adds(o, "\"false\"");
			break;
		case 'n':
			retl_buf_adds(o, "\"\"");
			break;
		case '{':
			retl_buf_addf(reason, "%s: HubSpot properties are flat: an object cannot be sent",
				      target);
			return -1;
		case '[': {
			json_error_t je;
			json_t *a = json_loadb(vs, vn, 0, &je);
			retl_buf j = RETL_BUF_INIT;
			size_t i;
			json_t *x;
			int ok = a != NULL;
			json_array_foreach(a, i, x) {
				if (!json_is_string(x)) {
					ok = 0;
					break;
				}
				if (i)
					retl_buf_addc(&j, ';');
				retl_buf_add(&j, json_string_value(x), json_string_length(x));
			}
			json_decref(a);
			if (!ok) {
				retl_buf_free(&j);
				retl_buf_addf(reason, "%s: HubSpot properties are flat: only an array of strings (a multi-checkbox) can be sent",
					      target);
				return -1;
			}
			retl_buf_add_json_str(o, j.ptr ? j.ptr : "", j.len);
			retl_buf_free(&j);
			break;
		}
		default:  /* a number */
			retl_buf_add(o, vs, vn);
			break;
		}
		if (c->id_prop && f >= 0 && !strcmp(target, c->id_prop)) {
			row->id_off = job->ids.len;
			if (o->ptr[vpos] == '"') {
				if (json_str_decode(o->ptr + vpos, o->len - vpos, &job->ids) < 0)
					retl_buf_truncate(&job->ids, row->id_off);
			} else {
				retl_buf_add(&job->ids, o->ptr + vpos, o->len - vpos);
			}
			row->id_len = job->ids.len - row->id_off;
			row->has_id = row->id_len > 0;
		}
	}
	retl_buf_addc(o, '}');
	row->p_len = o->len - start;
	return 0;
}

static const char *row_id(const struct hs_job *job, size_t oi, size_t *len)
{
	*len = job->rows[oi].id_len;
	return job->ids.ptr + job->rows[oi].id_off;
}

static int id_eq(const struct hs_ctx *c, const char *a, size_t alen, const char *b)
{
	if (!b || strlen(b) != alen)
		return 0;
	return c->id_ci ? !strncasecmp(a, b, alen) : !memcmp(a, b, alen);
}

static struct hs_job *job_of(const struct hs_sub *s)
{
	return (struct hs_job *)s->s.job;
}

static void sub_fini(struct retl_hb_sub *hs)
{
	struct hs_sub *s = (struct hs_sub *)hs;
	free(s->notfound);
	free(s->relookup);
}

static struct hs_sub *sub_new(struct hs_job *job, enum hs_kind kind, size_t cap)
{
	struct hs_sub *s = (struct hs_sub *)retl_hb_sub_new(&job->j, kind, cap,
							    sizeof(struct hs_sub));
	s->notfound = retl_calloc(cap ? cap : 1, 1);
	s->relookup = retl_calloc(cap ? cap : 1, 1);
	s->s.fini = sub_fini;
	return s;
}

/* hands s to the batch layer, or fails its rows; consumes s */
static void sub_submit(struct hs_ctx *c, struct hs_sub *s)
{
	retl_hb_sub_submit(c->hb, &s->s, "hubspot: cannot submit a request");
}

static int hs_submit(void *ctx, struct retl_batch *b, struct retl_err *err)
{
	struct hs_ctx *c = ctx;
	struct hs_job *job = retl_calloc(1, sizeof(*job));
	struct hs_sub *sub[HS_NKIND] = { 0 };
	retl_buf reason = RETL_BUF_INIT;

	job->j.outer = b;
	job->rows = retl_calloc(b->n ? b->n : 1, sizeof(*job->rows));
	for (size_t i = 0; i < b->n; i++) {
		const struct retl_op *op = &b->ops[i];
		enum hs_kind k;
		if (op->kind == RETL_OP_REMOVE) {
			if (!op->dest_id || !op->dest_id[0]) {
				/* never reached HubSpot with an id: nothing to remove */
				set_res(&b->results[i], RETL_RES_ACK, NULL, NULL);
				continue;
			}
			k = HS_ARCHIVE;
		} else {
			retl_buf_reset(&reason);
			if (convert_row(c, job, i, op, &reason) < 0) {
				set_res(&b->results[i], RETL_RES_REJECT, NULL, reason.ptr);
				continue;
			}
			if (c->mode == RETL_MODE_UPDATE || op->kind == RETL_OP_UPDATE)
				k = HS_UPDATE;
			else if (c->mode == RETL_MODE_INSERT || op->kind == RETL_OP_INSERT)
				k = op->pending ? HS_READ : HS_CREATE;
			else
				k = HS_UPSERT;
			int by_id = k == HS_UPDATE && op->dest_id && op->dest_id[0];
			if (!by_id && k != HS_CREATE && !job->rows[i].has_id) {
				retl_buf_reset(&reason);
				retl_buf_addf(&reason, "%s: empty; HubSpot finds the record by this property (match)",
					      c->id_prop ? c->id_prop : "match");
				set_res(&b->results[i], RETL_RES_REJECT, NULL, reason.ptr);
				continue;
			}
		}
		if (!sub[k])
			sub[k] = sub_new(job, k, b->n);
		retl_hb_sub_add(&sub[k]->s, i);
	}
	retl_buf_free(&reason);
	for (int k = 0; k < HS_NKIND; k++)
		if (sub[k])
			sub_submit(c, sub[k]);
	retl_hb_job_submitted(c->hb, &job->j);
	(void)err;
	return 0;
}

static void job_free(struct retl_hb_job *j)
{
	struct hs_job *job = (struct hs_job *)j;
	retl_buf_free(&job->props);
	retl_buf_free(&job->ids);
	free(job->rows);
	free(job);
}

/* a decoded sub-batch: results go to the engine's batch */
static void sub_done(void *ctx, struct retl_hb_sub *hs)
{
	struct hs_ctx *c = ctx;
	struct hs_sub *s = (struct hs_sub *)hs;
	struct hs_job *job = job_of(s);
	struct retl_batch *ob = job->j.outer;
	struct hs_sub *create = NULL, *read = NULL;

	if (hs->b.fatal)
		retl_hb_job_fatal(hs->job, hs->b.fatal_code, hs->b.fatal_msg);
	for (size_t i = 0; i < hs->b.n; i++) {
		if (hs->kind == HS_READ && s->notfound[i] && !ob->fatal) {
			if (!create)
				create = sub_new(job, HS_CREATE, hs->b.n);
			create->from_read = 1;
			retl_hb_sub_add(&create->s, hs->oidx[i]);
			continue;
		}
		if (hs->kind == HS_CREATE && s->relookup[i] && !ob->fatal) {
			if (!read)
				read = sub_new(job, HS_READ, hs->b.n);
			retl_hb_sub_add(&read->s, hs->oidx[i]);
			continue;
		}
		retl_hb_sub_take(hs, i);
	}
	if (create)
		sub_submit(c, create);
	if (read)
		sub_submit(c, read);
	retl_hb_sub_free(hs);
}

static struct retl_batch *hs_wait(void *ctx, int block)
{
	struct hs_ctx *c = ctx;
	return retl_hb_job_wait(c->hb, block);
}

/* ---- encode ---- */

static int hs_encode(void *dctx, const struct retl_hb_part *p,
		     struct retl_http_req *req, struct retl_err *err)
{
	struct hs_ctx *c = dctx;
	struct hs_sub *s = p->b->engine;
	struct hs_job *job = job_of(s);
	retl_buf *o = &req->body;
	retl_buf url = RETL_BUF_INIT;

	retl_buf_addf(&url, "%s/crm/v3/objects/%s/batch/%s", c->base, c->object,
		      hs_verb[s->s.kind]);
	req->method = "POST";
	req->url = retl_buf_detach(&url);
	req->idempotent = s->s.kind != HS_CREATE;
	retl_buf_reset(o);
	if (s->s.kind == HS_READ) {
		retl_buf_adds(o, "{\"idProperty\":");
		retl_buf_add_json_str(o, c->id_prop, strlen(c->id_prop));
		retl_buf_adds(o, ",\"properties\":[");
		retl_buf_add_json_str(o, c->id_prop, strlen(c->id_prop));
		retl_buf_adds(o, "],\"inputs\":[");
	} else {
		retl_buf_adds(o, "{\"inputs\":[");
	}
	for (size_t k = 0; k < p->n; k++) {
		size_t in = p->idx[k], oi = s->s.oidx[in], idlen;
		const struct retl_op *op = &s->s.ops[in];
		const struct hs_row *row = &job->rows[oi];
		const char *id = row_id(job, oi, &idlen);
		if (k)
			retl_buf_addc(o, ',');
		switch (s->s.kind) {
		case HS_ARCHIVE:
			retl_buf_adds(o, "{\"id\":");
			retl_buf_add_json_str(o, op->dest_id, strlen(op->dest_id));
			retl_buf_addc(o, '}');
			continue;
		case HS_READ:
			retl_buf_adds(o, "{\"id\":");
			retl_buf_add_json_str(o, id, idlen);
			retl_buf_addc(o, '}');
			continue;
		case HS_CREATE:
			/* the trace id maps 207 results and errors back to rows */
			retl_buf_addf(o, "{\"objectWriteTraceId\":\"%zu\",", in);
			break;
		case HS_UPDATE:
			if (op->dest_id && op->dest_id[0]) {
				retl_buf_adds(o, "{\"id\":");
				retl_buf_add_json_str(o, op->dest_id, strlen(op->dest_id));
				retl_buf_addc(o, ',');
				break;
			}
			/* by idProperty */
			__attribute__((fallthrough));
		default:
			retl_buf_adds(o, "{\"id\":");
			retl_buf_add_json_str(o, id, idlen);
			retl_buf_adds(o, ",\"idProperty\":");
			retl_buf_add_json_str(o, c->id_prop, strlen(c->id_prop));
			retl_buf_addc(o, ',');
			break;
		}
		retl_buf_adds(o, "\"properties\":");
		retl_buf_add(o, job->props.ptr + row->p_off, row->p_len);
		retl_buf_addc(o, '}');
	}
	retl_buf_adds(o, "]}");
	(void)err;
	return 0;
}

/* ---- decode ---- */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* "401 INVALID_AUTHENTICATION" / missing scopes: code 4; else 0 */
int hubspot_auth_error(const struct retl_http_req *req, struct retl_err *err)
{
	if (req->status != 401 && req->status != 403)
		return 0;
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	const char *cat = jstr(root, "category");
	if (req->status == 401) {
		retl_err_set(err, RETL_EXIT_DEST,
			     "hubspot: token invalid or expired (401 %s)",
			     cat ? cat : "INVALID_AUTHENTICATION");
		json_decref(root);
		return -1;
	}
	if (!cat || strcmp(cat, "MISSING_SCOPES")) {
		json_decref(root);
		return 0;
	}
	/* the scopes sit in errors[].context.requiredGranularScopes (or
	 * requiredScopes / missingScopes), or in the top-level context */
	retl_buf sc = RETL_BUF_INIT;
	static const char *const keys[] = {
		"requiredGranularScopes", "requiredScopes", "missingScopes", NULL
	};
	json_t *errs = json_object_get(root, "errors");
	size_t n = json_is_array(errs) ? json_array_size(errs) : 0;
	for (size_t i = 0; i <= n; i++) {
		json_t *ctx = json_object_get(i < n ? json_array_get(errs, i) : root, "context");
		for (const char *const *k = keys; *k; k++) {
			size_t j;
			json_t *x;
			json_array_foreach(json_object_get(ctx, *k), j, x) {
				if (json_is_string(x) && !strstr(retl_buf_cstr(&sc), json_string_value(x)))
					retl_buf_addf(&sc, "%s%s", sc.len ? ", " : "", json_string_value(x));
			}
		}
	}
	retl_err_set(err, RETL_EXIT_DEST,
		     "hubspot: the token lacks the scope%s %s (403 MISSING_SCOPES); add %s to the private app",
		     strchr(retl_buf_cstr(&sc), ',') ? "s" : "",
		     sc.len ? sc.ptr : "(not named by HubSpot)",
		     sc.len && strchr(sc.ptr, ',') ? "them" : "it");
	retl_buf_free(&sc);
	json_decref(root);
	return -1;
}

/* "<code>: <message>" of a 4xx body, every sub-error joined */
static void error_reason(const json_t *root, const struct retl_http_req *req,
			 retl_buf *out)
{
	json_t *errs = json_object_get(root, "errors");
	size_t i;
	json_t *x;
	json_array_foreach(errs, i, x) {
		const char *code = jstr(x, "code");
		const char *msg = jstr(x, "message");
		if (!msg)
			continue;
		retl_buf_addf(out, "%s%s%s%s", out->len ? "; " : "",
			      code ? code : "", code ? ": " : "", msg);
	}
	if (out->len)
		return;
	const char *msg = jstr(root, "message");
	const char *cat = jstr(root, "category");
	if (msg) {
		retl_buf_addf(out, "%s%s%s", cat ? cat : "", cat ? ": " : "", msg);
		return;
	}
	char *r = retl_hb_reason(req);
	retl_buf_adds(out, r ? r : "no error message");
	free(r);
}

/* an error about the request as a whole, not about some rows' values */
static int whole_request_error(const json_t *root)
{
	json_t *errs = json_object_get(root, "errors");
	size_t i, n = 0;
	json_t *x;
	json_array_foreach(errs, i, x) {
		const char *code = jstr(x, "code");
		/* a property every input carries, not one row's value */
		if (!code || (strcmp(code, "PROPERTY_DOESNT_EXIST") &&
			      strcmp(code, "READ_ONLY_VALUE") &&
			      strcmp(code, "INVALID_ID_PROPERTY")))
			return 0;
		n++;
	}
	return n > 0;
}

static void part_all(const struct retl_hb_part *p, enum retl_result_kind kind,
		     const char *reason)
{
	for (size_t k = 0; k < p->n; k++)
		set_res(&p->b->results[p->idx[k]], kind, NULL, reason);
}

static const char *json_id(const json_t *v, char *tmp, size_t n)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(tmp, n, "%lld", (long long)json_integer_value(v));
		return tmp;
	}
	return NULL;
}

/* does the row k of the part carry identifier `id` (as the request sent it)? */
static int row_has(const struct hs_ctx *c, const struct hs_sub *s,
		   const struct retl_hb_part *p, size_t k, const char *id)
{
	size_t in = p->idx[k], oi = s->s.oidx[in], idlen;
	const struct retl_op *op = &s->s.ops[in];
	if (!id)
		return 0;
	if (s->s.kind == HS_CREATE) {
		char t[32];
		snprintf(t, sizeof(t), "%zu", in);
		return !strcmp(t, id);
	}
	if ((s->s.kind == HS_UPDATE || s->s.kind == HS_ARCHIVE) && op->dest_id &&
	    op->dest_id[0])
		return !strcmp(op->dest_id, id);
	if (!job_of(s)->rows[oi].has_id)
		return 0;
	const char *rid = row_id(job_of(s), oi, &idlen);
	return id_eq(c, rid, idlen, id);
}

static enum retl_hb_verdict decode_ok(struct hs_ctx *c, struct hs_sub *s,
				      const struct retl_hb_part *p,
				      const struct retl_http_req *req)
{
	json_error_t je;
	json_t *root = req->resp.len ?
		json_loadb(req->resp.ptr, req->resp.len, 0, &je) : NULL;
	unsigned char *done = retl_calloc(p->n ? p->n : 1, 1);
	char tmp[32];
	size_t i, j;
	json_t *x, *v;
	char *unmapped = NULL;

	if (s->s.kind == HS_ARCHIVE && !root) {
		/* 204: every id archived */
		part_all(p, RETL_RES_ACK, NULL);
		free(done);
		return RETL_HB_DONE;
	}
	json_array_foreach(json_object_get(root, "results"), i, x) {
		const char *id = json_id(json_object_get(x, "id"), tmp, sizeof(tmp));
		const char *trace = jstr(x, "objectWriteTraceId");
		const char *pv = c->id_prop ?
			jstr(json_object_get(x, "properties"), c->id_prop) : NULL;
		for (size_t k = 0; k < p->n; k++) {
			if (done[k])
				continue;
			size_t in = p->idx[k];
			const struct retl_op *op = &s->s.ops[in];
			int hit;
			if (s->s.kind == HS_CREATE && trace)
				hit = row_has(c, s, p, k, trace);
			else if (s->s.kind == HS_UPDATE && op->dest_id && op->dest_id[0])
				hit = id && !strcmp(op->dest_id, id);
			else if (s->s.kind == HS_CREATE || s->s.kind == HS_ARCHIVE) {
				size_t oi = s->s.oidx[in], idlen;
				const char *rid = row_id(job_of(s), oi, &idlen);
				hit = job_of(s)->rows[oi].has_id && id_eq(c, rid, idlen, pv);
			} else {
				hit = row_has(c, s, p, k, pv);
			}
			if (!hit)
				continue;
			done[k] = 1;
			set_res(&p->b->results[in], RETL_RES_ACK,
				s->s.kind == HS_ARCHIVE ? NULL : id, NULL);
		}
	}
	json_array_foreach(json_object_get(root, "errors"), i, x) {
		const char *cat = jstr(x, "category");
		const char *msg = jstr(x, "message");
		json_t *ctx = json_object_get(x, "context");
		int gone = cat && (!strcmp(cat, "OBJECT_NOT_FOUND"));
		retl_buf r = RETL_BUF_INIT;
		int mapped = 0;
		retl_buf_addf(&r, "%s: %s", cat ? cat : "ERROR", msg ? msg : "(no message)");
		json_t *ids = json_object_get(ctx, "ids");
		json_t *traces = json_object_get(ctx, "objectWriteTraceId");
		for (int pass = 0; pass < 2; pass++) {
			json_t *arr = pass ? traces : ids;
			json_t *one = NULL;
			if (json_is_string(arr))
				arr = one = json_pack("[O]", arr);
			json_array_foreach(arr, j, v) {
				const char *id = json_id(v, tmp, sizeof(tmp));
				for (size_t k = 0; k < p->n; k++) {
					if (done[k] || !row_has(c, s, p, k, id))
						continue;
					done[k] = 1;
					mapped = 1;
					size_t in = p->idx[k];
					if (s->s.kind == HS_READ && gone)
						s->notfound[in] = 1;
					set_res(&p->b->results[in],
						gone && s->s.kind == HS_ARCHIVE ? RETL_RES_ACK :
						s->s.kind == HS_READ ? RETL_RES_RETRY :
						RETL_RES_REJECT, NULL,
						gone && s->s.kind == HS_ARCHIVE ? NULL : r.ptr);
				}
			}
			json_decref(one);
		}
		if (!mapped && !unmapped)
			unmapped = retl_buf_detach(&r);
		retl_buf_free(&r);
	}
	for (size_t k = 0; k < p->n; k++) {
		if (done[k])
			continue;
		size_t in = p->idx[k];
		if (s->s.kind == HS_READ) {
			/* not in the results: HubSpot has no such record */
			s->notfound[in] = 1;
			set_res(&p->b->results[in], RETL_RES_RETRY, NULL, "not found");
		} else if (s->s.kind == HS_ARCHIVE) {
			set_res(&p->b->results[in], RETL_RES_ACK, NULL, NULL);
		} else if (unmapped) {
			set_res(&p->b->results[in], RETL_RES_REJECT, NULL, unmapped);
		} else {
			char m[96];
			snprintf(m, sizeof(m),
				 "hubspot: no result for this record in the response (HTTP %ld)",
				 req->status);
			set_res(&p->b->results[in], RETL_RES_RETRY, NULL, m);
		}
	}
	free(unmapped);
	free(done);
	json_decref(root);
	return RETL_HB_DONE;
}

/*
 * 409 CONFLICT on a create: a record already holds the match property's
 * value (e.g. "Contact already exists. Existing ID: 1587") -- typically
 * our own create whose answer was lost.  Insert mode creates only what is
 * not there, so an existing record counts as found: one row takes the
 * existing id; a larger part is looked up with batch/read (once: creates
 * after a lookup fall back to splitting).
 */
static int conflict(const struct hs_ctx *c, struct hs_sub *s,
		    const struct retl_hb_part *p, const json_t *root)
{
	const char *cat = jstr(root, "category");
	const char *msg = jstr(root, "message");
	const char *ex = msg ? strstr(msg, "Existing ID: ") : NULL;
	if (!cat || strcmp(cat, "CONFLICT") || !c->id_prop)
		return 0;
	if (p->n == 1 && ex) {
		char id[32];
		size_t n = strspn(ex + 13, "0123456789");
		if (!n || n >= sizeof(id))
			return 0;
		memcpy(id, ex + 13, n);
		id[n] = '\0';
		set_res(&p->b->results[p->idx[0]], RETL_RES_ACK, id, NULL);
		return 1;
	}
	if (p->n == 1 || s->from_read)
		return 0;
	for (size_t k = 0; k < p->n; k++) {
		s->relookup[p->idx[k]] = 1;
		set_res(&p->b->results[p->idx[k]], RETL_RES_RETRY, NULL, "conflict");
	}
	return 1;
}

static enum retl_hb_verdict hs_decode(void *dctx, const struct retl_hb_part *p,
				      const struct retl_http_req *req,
				      struct retl_err *err)
{
	struct hs_ctx *c = dctx;
	struct hs_sub *s = p->b->engine;
	long st = req->status;

	if (st == 200 || st == 201 || st == 204 || st == 207)
		return decode_ok(c, s, p, req);
	if (hubspot_auth_error(req, err) < 0)
		return RETL_HB_FATAL;
	if (st <= 0 || st == 429 || st >= 500) {
		char *r = retl_hb_reason(req);
		part_all(p, RETL_RES_RETRY, r ? r : (st <= 0 ? req->error : "HTTP error"));
		free(r);
		return RETL_HB_DONE;
	}

	if (st == 400 && req->resp.ptr &&
	    strstr(req->resp.ptr, "Unable to infer object type")) {
		retl_err_set(err, RETL_EXIT_DEST, "hubspot: object \"%s\" does not exist",
			     c->object);
		return RETL_HB_FATAL;
	}
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	retl_buf r = RETL_BUF_INIT;
	enum retl_hb_verdict verdict = RETL_HB_DONE;
	if (st == 409 && s->s.kind == HS_CREATE && conflict(c, s, p, root)) {
		/* the record exists: found, as a pending create would be */
	} else if ((st == 400 || st == 409) && p->n > 1 && !whole_request_error(root)) {
		/* one bad input fails the whole batch: isolate it */
		verdict = RETL_HB_SPLIT;
	} else if (st == 400 || st == 409) {
		error_reason(root, req, &r);
		part_all(p, s->s.kind == HS_READ ? RETL_RES_RETRY : RETL_RES_REJECT, r.ptr);
	} else {
		retl_buf m = RETL_BUF_INIT;
		error_reason(root, req, &m);
		retl_buf_addf(&r, "HTTP %ld: %s", st, retl_buf_cstr(&m));
		retl_buf_free(&m);
		part_all(p, RETL_RES_REJECT, r.ptr);
	}
	retl_buf_free(&r);
	json_decref(root);
	return verdict;
}

/* ---- open / close / stats ---- */

static int object_ok(const char *o)
{
	if (!o || !*o)
		return 0;
	for (const char *p = o; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return 0;
	return 1;
}

static void hs_close(void *ctx)
{
	struct hs_ctx *c = ctx;
	if (!c)
		return;
	retl_hb_free(c->hb);
	retl_http_free(c->http);
	for (size_t i = 0; i < c->nf; i++)
		free(c->fkey[i]);
	free(c->fkey);
	free(c->ftarget);
	free(c->ftype);
	free(c->base);
	free(c->auth);
	free(c);
}

static const struct retl_hb_ops hs_hb_ops = { hs_encode, hs_decode };

static int open_fields(struct hs_ctx *c, const struct retl_sync_cfg *sc,
		       struct retl_err *err)
{
	const retl_mapping *m = sc->mapping;
	c->nf = retl_mapping_nfields(m);
	c->ftarget = retl_calloc(c->nf ? c->nf : 1, sizeof(*c->ftarget));
	c->fkey = retl_calloc(c->nf ? c->nf : 1, sizeof(*c->fkey));
	c->ftype = retl_calloc(c->nf ? c->nf : 1, sizeof(*c->ftype));
	for (size_t i = 0; i < c->nf; i++) {
		const char *t = retl_mapping_field_target(m, i);
		retl_buf k = RETL_BUF_INIT;
		c->ftarget[i] = t;
		c->ftype[i] = retl_mapping_field_type(m, i);
		retl_buf_add_json_str(&k, t, strlen(t));
		c->fkey[i] = retl_strndup(k.ptr + 1, k.len - 2);
		retl_buf_free(&k);
		if (strchr(t, '.'))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: HubSpot properties are flat: a dotted target (a nested object) cannot be sent; name the property itself",
					    sc->file, t);
		if (c->ftype[i] == RETL_TYPE_JSON)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: HubSpot properties are flat: type \"json\" cannot be sent (use a string, or \"split\" for a multi-checkbox)",
					    sc->file, t);
	}
	if (sc->match) {
		if (json_object_size(sc->match) != 1)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: match: HubSpot finds records by exactly one property (got %zu)",
					    sc->file, json_object_size(sc->match));
		const char *prop = json_object_iter_key(json_object_iter(sc->match));
		const char *col = json_string_value(json_object_iter_value(json_object_iter(sc->match)));
		size_t i;
		for (i = 0; i < c->nf; i++)
			if (!strcmp(c->ftarget[i], prop))
				break;
		if (i == c->nf)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: match.%s: \"%s\" is not a mapped field; HubSpot needs its value in the payload: add \"%s\": \"%s\" to fields",
					    sc->file, prop, prop, prop, col ? col : prop);
		c->id_prop = prop;
		c->id_ci = !strcmp(prop, "email");
	} else if (sc->mode != RETL_MODE_UPDATE) {
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: match: missing; the hubspot destination in mode \"%s\" needs {\"<unique HubSpot property>\": \"<column>\"}, e.g. {\"email\": \"email\"}",
				    sc->file, retl_mode_name(sc->mode));
	}
	return 0;
}

static int hs_open(void **out, const struct retl_dest_cfg *dc,
		   const struct retl_sync_cfg *sc,
		   const struct retl_dest_env *env, struct retl_err *err)
{
	struct hs_ctx *c = retl_calloc(1, sizeof(*c));
	long rps, inflight, timeout;
	*out = NULL;
	if (hs_validate(dc, err) < 0 ||
	    retl_dest_opt_posint(dc, "requests_per_10s", 100, &rps, err) < 0 ||
	    retl_dest_opt_posint(dc, "max_inflight", 4, &inflight, err) < 0 ||
	    retl_dest_opt_posint(dc, "timeout", 60, &timeout, err) < 0)
		goto fail;
	c->sc = sc;
	c->mode = sc->mode;
	c->object = sc->object;
	if (!sc->object) {
		retl_err_set(err, RETL_EXIT_USAGE,
			     "%s: object: missing; the hubspot destination needs contacts, companies, deals, tickets or a custom object id (2-123456, p_name)",
			     sc->file);
		goto fail;
	}
	if (!object_ok(sc->object)) {
		retl_err_set(err, RETL_EXIT_USAGE,
			     "%s: object: \"%s\" is not a HubSpot object type (contacts, companies, deals, tickets, or a custom object id like 2-123456 or p_name)",
			     sc->file, sc->object);
		goto fail;
	}
	if (open_fields(c, sc, err) < 0)
		goto fail;

	const char *base = dc->base_url ? dc->base_url : HS_DEFAULT_BASE;
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	c->base = retl_strndup(base, bl);

	const char *token = json_string_value(json_object_get(dc->options, "token"));
	retl_buf a = RETL_BUF_INIT;
	retl_buf_addf(&a, "Authorization: Bearer %s", token);
	c->auth = retl_buf_detach(&a);

	/* the limiter is per credential: keyed by a hash, never the token */
	char key[64];
	snprintf(key, sizeof(key), "hubspot:%016llx",
		 (unsigned long long)retl_hash64(token, strlen(token), 0x68756273706f74ULL));
	struct retl_http_opts ho = {
		.max_inflight = (int)inflight,
		.timeout_ms = timeout * 1000,
		.rate = retl_rate_shared(key, (int)rps, 10.0, 0.15),
		.budget = env ? env->api_budget : -1,
		.auth = c->auth,
		.rate_max_header = "X-HubSpot-RateLimit-Max",
		.rate_remaining_header = "X-HubSpot-RateLimit-Remaining",
	};
	if (retl_http_new(&c->http, &ho, err) < 0)
		goto fail;
	c->hb = retl_hb_new(c->http, &hs_hb_ops, c, HS_MAX_INPUTS);
	retl_hb_fanout(c->hb, sub_done, job_free);
	*out = c;
	return 0;
fail:
	if (!err->code)
		err->code = RETL_EXIT_USAGE;
	hs_close(c);
	return -1;
}

static void hs_stats(void *ctx, struct retl_dest_stats *s)
{
	struct hs_ctx *c = ctx;
	retl_hb_stats(c ? c->http : NULL, s);
}

const struct retl_destination retl_dest_hubspot = {
	.name = "hubspot",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_UPDATE |
		 1u << RETL_MODE_INSERT | 1u << RETL_MODE_MIRROR,
	.removals = 1u << RETL_REMOVE_ARCHIVE | 1u << RETL_REMOVE_DELETE,
	.max_batch = HS_MAX_INPUTS,
	.conn_keys = hs_conn_keys,
	.sync_keys = NULL,
	.validate = hs_validate,
	.open = hs_open,
	.check = hubspot_check,
	.send = NULL,
	.close = hs_close,
	/*
	 * Engine batches queued at once.  Requests actually in flight are
	 * capped by the conn key max_inflight (HTTP engine) and the rate
	 * limiter; a deeper queue keeps them busy while the engine reads.
	 */
	.max_inflight = 16,
	.submit = hs_submit,
	.wait = hs_wait,
	.stats = hs_stats,
};
