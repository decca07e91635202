/*
 * hubspot_assoc.c - HubSpot associations: a sync's records associated with
 * records of another object, found by a business value (README "HubSpot
 * associations").
 *
 *   "associations": { "company": { "to": "companies", "by": "domain",
 *                                  "label": "Primary" } },
 *   "fields": { ..., "associations.company": "company_domain" }
 *
 * Why a field: the value must be part of the row's hash (a changed
 * association is a changed row, sent again) and go through the field
 * language (transforms, "split" into several values), and the mapping
 * already gives both.  A dotted target builds a nested member, so the
 * payload carries {"associations": {"company": "x.com"}}; the HubSpot
 * destination recognises that member, never sends it as a property, and
 * reads the values from it here.  No change to the engine or the mapping.
 *
 * After an op's object write is acknowledged (its id known), the op goes
 * through these requests, per declaration, each only when needed, before
 * it is acknowledged (until then its result is "not done", so a run that
 * stops halfway sends the row again, and the upsert is idempotent):
 *   find     POST {objects}/{to}/search, `by` IN the values (HubSpot's
 *            search: domain is not unique); each value must match exactly
 *            one record, else the row fails ("no companies record has
 *            domain x.com", "ambiguous match (2 records): ...")
 *   read     mirror only: POST /crm/v4/associations/{from}/{to}/batch/read,
 *            the record's current associations of the declared type
 *   create   POST .../batch/create of the found targets not yet associated
 *   archive  mirror only: the associations of that type the model does not
 *            name: .../batch/archive for the unlabeled type (removes the
 *            pair), .../batch/labels/archive for a label (removes the label)
 * Date-based api_version: /crm/associations/{version}/... and
 * /crm/objects/{version}/{to}/search.  The type: a label, resolved to its
 * category and typeId by GET .../labels (once per run, before the first
 * request), or the unlabeled HubSpot-defined type (label null there).
 *
 * What an op is doing between requests (its values, read from the payload
 * once when hubspot.c converts the row; its record id; the targets found
 * and the associations there now) lives in a table hashed by (batch, op
 * index), dropped when the op is done or not written.  An entry whose
 * request got no answer at all stays until its slot is reused or the
 * destination closes (bounded by the run).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "hubspot_int.h"
#include "hubspot_assoc_int.h"
#include "payload.h"

static void strv_add(struct strv *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], x))
			return;
	s->v = retl_realloc(s->v, (s->n + 1) * sizeof(*s->v));
	s->v[s->n++] = retl_strdup(x);
}

static int strv_has(const struct strv *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], x))
			return 1;
	return 0;
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* ---- setup: the declarations, against the mapping ---- */

static int decl_err(const struct hs_ctx *c, const char *name, const char *what,
		    struct retl_err *err)
{
	return retl_err_set(err, RETL_EXIT_USAGE, "%s: associations.%s: %s",
			    c->base.sc->file, name, what);
}

static int read_decl(struct hs_ctx *c, struct hs_decl *d, const char *name,
		     json_t *o, struct retl_err *err)
{
	const char *k;
	json_t *v;
	d->name = name;
	if (!json_is_object(o))
		return decl_err(c, name, "expected an object such as {\"to\": \"companies\", \"by\": \"domain\"}", err);
	json_object_foreach(o, k, v) {
		if (strcmp(k, "to") && strcmp(k, "by") && strcmp(k, "label") && strcmp(k, "type_id")) {
			retl_buf m = RETL_BUF_INIT;
			retl_buf_addf(&m, "unknown key \"%s\" (expected to, by, label, type_id)", k);
			decl_err(c, name, m.ptr, err);
			retl_buf_free(&m);
			return -1;
		}
	}
	d->to = json_string_value(json_object_get(o, "to"));
	d->by = json_string_value(json_object_get(o, "by"));
	d->label = json_string_value(json_object_get(o, "label"));
	v = json_object_get(o, "type_id");
	if (!d->to || !*d->to)
		return decl_err(c, name, "to: missing; the object to associate with (companies, contacts, deals, tickets, 2-123456)", err);
	if (!d->by || !*d->by)
		return decl_err(c, name, "by: missing; the target's property that identifies it (a unique property, or domain for companies)", err);
	if (v && (!json_is_integer(v) || json_integer_value(v) <= 0))
		return decl_err(c, name, "type_id: expected a positive integer (an association typeId)", err);
	if (v && d->label)
		return decl_err(c, name, "give label or type_id, not both", err);
	if (json_object_get(o, "label") && (!d->label || !*d->label))
		return decl_err(c, name, "label: expected a label name such as \"Primary\"", err);
	d->type_id = v ? (long)json_integer_value(v) : 0;
	return 0;
}

int hubspot_assoc_setup(struct hs_ctx *c, const char *ver, struct retl_err *err)
{
	json_t *decls = json_object_get(c->base.sc->options, "associations");
	const char *name;
	json_t *o;
	for (size_t i = 0; i < c->base.nf; i++) {
		const char *t = c->base.ftarget[i];
		if (strncmp(t, "associations.", 13))
			continue;
		if (!json_object_get(decls, t + 13) || strchr(t + 13, '.'))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: no association \"%s\" is declared (add it to \"associations\": {\"%s\": {\"to\": ..., \"by\": ...}})",
					    c->base.sc->file, t, t + 13, t + 13);
	}
	if (!decls)
		return 0;
	if (!json_is_object(decls) || !json_object_size(decls))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: associations: expected an object of {name: {\"to\", \"by\", \"label\"?}}",
				    c->base.sc->file);
	if (json_object_size(decls) > HS_ASSOC_MAX)
		return retl_err_set(err, RETL_EXIT_USAGE, "%s: associations: at most %d",
				    c->base.sc->file, HS_ASSOC_MAX);
	struct hs_assoc *a = c->assoc = retl_calloc(1, sizeof(*a));
	json_object_foreach(decls, name, o) {
		struct hs_decl *d = &a->d[a->nd++];
		retl_buf t = RETL_BUF_INIT;
		retl_buf_addf(&t, "associations.%s", name);
		int mapped = retl_hd_field(&c->base, t.ptr) >= 0;
		retl_buf_free(&t);
		if (read_decl(c, d, name, o, err) < 0)
			return -1;
		if (!mapped)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: associations.%s: no field gives its values; add \"fields\": {\"associations.%s\": \"<column>\"}",
					    c->base.sc->file, name, name);
	}
	retl_buf b = RETL_BUF_INIT;
	if (!ver || !strcmp(ver, "v3"))
		retl_buf_adds(&b, "/crm/v4/associations");
	else
		retl_buf_addf(&b, "/crm/associations/%s", ver);
	a->assoc_base = retl_buf_detach(&b);
	return 0;
}

static void aop_free(struct aop *s)
{
	free(s->obj);
	strv_free(&s->want);
	strv_free(&s->have);
	for (size_t i = 0; i < HS_ASSOC_MAX; i++)
		strv_free(&s->val[i]);
	free(s);
}

void hubspot_assoc_fini(struct hs_ctx *c)
{
	struct hs_assoc *a = c->assoc;
	if (!a)
		return;
	for (size_t i = 0; i < a->nd; i++)
		free(a->d[i].category);
	for (size_t i = 0; i < HS_AOP_BUCKETS; i++)
		while (a->ops[i]) {
			struct aop *s = a->ops[i];
			a->ops[i] = s->next;
			aop_free(s);
		}
	free(a->why);
	free(a->assoc_base);
	free(a);
	c->assoc = NULL;
}

/* ---- the type: labels ---- */

/* the labels path for from -> to: the form HubSpot's docs show for v3
 * (/crm/v4/associations/{from}/{to}/labels), the dated one otherwise */
static void labels_path(const struct hs_ctx *c, const struct hs_decl *d, retl_buf *p)
{
	retl_buf_addf(p, "%s/%s/%s/labels", c->assoc->assoc_base, c->base.object, d->to);
}

/* finds d's type in a GET labels answer; 0 or -1 with why */
static int pick_type(struct hs_decl *d, const json_t *results, retl_buf *why,
		     const char *from)
{
	size_t i;
	json_t *x;
	json_array_foreach(results, i, x) {
		const char *lb = json_string_value(json_object_get(x, "label"));
		const char *cat = json_string_value(json_object_get(x, "category"));
		json_t *tid = json_object_get(x, "typeId");
		int hit = d->label ? lb && !strcasecmp(lb, d->label) :
			  d->type_id ? json_integer_value(tid) == d->type_id :
			  !lb && cat && !strcmp(cat, "HUBSPOT_DEFINED");
		if (!hit || !cat || !json_is_integer(tid))
			continue;
		free(d->category);
		d->category = retl_strdup(cat);
		d->tid = (long)json_integer_value(tid);
		d->unlabeled = !lb;
		return 0;
	}
	if (d->label)
		retl_buf_addf(why, "hubspot: no association label \"%s\" from %s to %s",
			      d->label, from, d->to);
	else if (d->type_id)
		retl_buf_addf(why, "hubspot: no association type %ld from %s to %s",
			      d->type_id, from, d->to);
	else
		retl_buf_addf(why, "hubspot: %s to %s has no default (unlabeled) association type",
			      from, d->to);
	return -1;
}

int hubspot_assoc_resolve_one(struct hs_ctx *c, struct hs_decl *d, retl_buf *why,
		       struct retl_err *err)
{
	retl_buf p = RETL_BUF_INIT;
	json_t *root = NULL;
	labels_path(c, d, &p);
	struct retl_http_req *req = retl_hd_get(&c->base, p.ptr);
	int rc = -1;
	if (hubspot_auth_error(req, err) == 0 &&
	    retl_hd_answered(&c->base, req, p.ptr, NULL, err) == 0) {
		json_t *res = retl_hd_answer_array(&c->base, req, p.ptr, "results", &root, err);
		if (res)
			rc = pick_type(d, res, why, c->base.object);
	}
	if (rc < 0 && !why->len)
		retl_buf_adds(why, err->msg);
	json_decref(root);
	retl_http_req_free(req);
	retl_buf_free(&p);
	return rc;
}

/*
 * The declarations' types, once a run, from prepare (the engine sends
 * nothing before the first batch's ops are prepared, so nothing is in
 * flight during the blocking GETs).  A failure fails every row of the run
 * with the reason (retried next run).
 */
static void resolve(struct hs_ctx *c)
{
	struct hs_assoc *a = c->assoc;
	retl_buf why = RETL_BUF_INIT;
	a->resolved = 1;
	for (size_t i = 0; i < a->nd; i++) {
		struct retl_err err;
		retl_err_clear(&err);
		if (hubspot_assoc_resolve_one(c, &a->d[i], &why, &err) < 0) {
			a->resolved = -1;
			a->why = retl_buf_detach(&why);
			break;
		}
	}
	retl_buf_free(&why);
	/* labeled declarations first: removing a label leaves the pair's
	 * unlabeled association, which the unlabeled declaration then sees */
	for (size_t i = 1; a->resolved > 0 && i < a->nd; i++)
		for (size_t j = i; j > 0 && a->d[j - 1].unlabeled && !a->d[j].unlabeled; j--) {
			struct hs_decl t = a->d[j];
			a->d[j] = a->d[j - 1];
			a->d[j - 1] = t;
		}
}

int hubspot_assoc_prepare(struct hs_ctx *c, retl_buf *reason)
{
	struct hs_assoc *a = c->assoc;
	if (!a)
		return 0;
	if (!a->resolved && !c->base.live)
		resolve(c);
	if (a->resolved > 0)
		return 0;
	retl_buf_adds(reason, a->why ? a->why : "hubspot: association types not resolved");
	return -1;
}

/* ---- the ops' table ---- */

/* the chain op i of b hangs in: every lookup of every op of every answer
 * comes here, with up to max_inflight batches of 100 ops held */
static struct aop **aop_slot(struct hs_assoc *a, const struct retl_batch *b, size_t i)
{
	uint64_t h = ((uint64_t)(uintptr_t)b >> 4) * 0x9E3779B97F4A7C15ULL + i;
	struct aop **p = &a->ops[(h ^ (h >> 29)) % HS_AOP_BUCKETS];
	while (*p && ((*p)->b != b || (*p)->i != i))
		p = &(*p)->next;
	return p;
}

static struct aop *aop_of(struct hs_assoc *a, const struct retl_batch *b, size_t i)
{
	return *aop_slot(a, b, i);
}

static struct aop *aop_find(struct hs_assoc *a, const struct retl_request *r, size_t k)
{
	return aop_of(a, r->batch, r->idx[k]);
}

static void aop_forget(struct hs_assoc *a, const struct retl_batch *b, size_t i)
{
	struct aop **p = aop_slot(a, b, i);
	struct aop *s = *p;
	if (!s)
		return;
	*p = s->next;
	aop_free(s);
}

static void aop_drop(struct hs_assoc *a, const struct retl_request *r, size_t k)
{
	aop_forget(a, r->batch, r->idx[k]);
}

/* a fresh entry for op i of b (an older one of the same slot is stale: a
 * batch freed and its memory reused) */
static struct aop *aop_new(struct hs_assoc *a, const struct retl_batch *b, size_t i)
{
	aop_forget(a, b, i);
	struct aop *s = retl_calloc(1, sizeof(*s));
	s->b = b;
	s->i = i;
	struct aop **p = aop_slot(a, b, i);
	s->next = *p;
	*p = s;
	return s;
}

/* ---- an op's values ---- */

/* one value (a string; a number as written) into out */
static void take_value(const struct retl_pv *x, struct strv *out, retl_buf *s)
{
	retl_buf_reset(s);
	if (x->kind == RETL_PV_STRING)
		retl_pv_string(x, s);
	else if (x->kind == RETL_PV_NUMBER)
		retl_buf_add(s, x->raw, x->len);
	if (s->len)
		strv_add(out, s->ptr);
}

int hubspot_assoc_take(struct hs_ctx *c, const struct retl_batch *b, size_t i,
		       const struct retl_pv *v, retl_buf *reason)
{
	struct hs_assoc *a = c->assoc;
	struct aop *s = aop_new(a, b, i);
	struct retl_preader ra, rv;
	struct retl_pfield g;
	struct retl_pv x;
	retl_buf tmp = RETL_BUF_INIT;
	if (retl_pv_open(&ra, v) < 0 || v->kind != RETL_PV_OBJECT)
		return 0;
	while (retl_payload_next(&ra, &g) > 0) {
		for (size_t j = 0; j < a->nd; j++) {
			if (!retl_pfield_is(&g, a->d[j].name))
				continue;
			if (g.v.kind != RETL_PV_ARRAY)
				take_value(&g.v, &s->val[j], &tmp);
			else if (retl_pv_open(&rv, &g.v) == 0)
				while (retl_payload_item(&rv, &x) > 0)
					take_value(&x, &s->val[j], &tmp);
			if (s->val[j].n > HS_ASSOC_VALUES) {
				retl_buf_addf(reason, "associations.%s: %zu values; at most %d a row",
					      a->d[j].name, s->val[j].n, HS_ASSOC_VALUES);
				retl_buf_free(&tmp);
				aop_forget(a, b, i);
				return -1;
			}
		}
	}
	retl_buf_free(&tmp);
	return 0;
}

void hubspot_assoc_forget(struct hs_ctx *c, const struct retl_batch *b, size_t i)
{
	if (c->assoc)
		aop_forget(c->assoc, b, i);
}

static int kind_of(size_t decl, int stage)
{
	return HS_NKIND + (int)decl * ST_N + stage;
}

/* a done op: acknowledged, with its record's id */
static void finish(struct hs_assoc *a, struct retl_request *r, size_t k,
		   enum retl_result_kind kind, const char *reason)
{
	struct aop *s = aop_find(a, r, k);
	char *obj = s ? retl_strdup(s->obj) : NULL;
	aop_drop(a, r, k);
	retl_req_set(r, k, kind, obj, reason);
	free(obj);
}

/* the next request op k needs, or its acknowledgement */
static void advance(struct hs_ctx *c, struct retl_request *r, size_t k)
{
	struct hs_assoc *a = c->assoc;
	struct aop *s = aop_find(a, r, k);
	int mirror = c->base.mode == RETL_MODE_MIRROR;
	while (s && s->decl < a->nd) {
		int st = s->step++;
		int go = 0;
		if (st == ST_FIND) {
			go = s->val[s->decl].n > 0;
		} else if (st == ST_READ) {
			go = mirror;
		} else if (st == ST_CREATE) {
			for (size_t i = 0; i < s->want.n && !go; i++)
				go = !strv_has(&s->have, s->want.v[i]);
		} else if (st == ST_ARCHIVE) {
			for (size_t i = 0; i < s->have.n && !go; i++)
				go = mirror && !strv_has(&s->want, s->have.v[i]);
		} else {
			s->decl++;
			s->step = 0;
			strv_free(&s->want);
			strv_free(&s->have);
			continue;
		}
		if (go) {
			retl_req_set(r, k, RETL_RES_RETRY, s->obj, "associations not written yet");
			retl_req_again(r, k, kind_of(s->decl, st));
			return;
		}
	}
	finish(a, r, k, RETL_RES_ACK, NULL);
}

void hubspot_assoc_written(struct hs_ctx *c, struct retl_request *r)
{
	struct hs_assoc *a = c->assoc;
	if (!a)
		return;
	for (size_t k = 0; k < r->n; k++) {
		const struct retl_result *res = retl_req_result(r, k);
		const struct retl_op *op = retl_req_op(r, k);
		if (op->kind == RETL_OP_REMOVE)
			continue;
		if (res->kind != RETL_RES_ACK || !res->dest_id || !res->dest_id[0]) {
			/* not written (or sent on to another request: then
			 * its values are still wanted) */
			if (res->kind != RETL_RES_RETRY)
				aop_drop(a, r, k);
			continue;
		}
		struct aop *s = aop_find(a, r, k);
		if (!s)         /* the payload had no associations member */
			s = aop_new(a, r->batch, r->idx[k]);
		free(s->obj);
		s->obj = retl_strdup(res->dest_id);
		advance(c, r, k);
	}
}

/* ---- encode ---- */

size_t hubspot_assoc_ops_per_request(void *d, int kind)
{
	(void)d;
	return kind >= HS_NKIND && (kind - HS_NKIND) % ST_N == ST_FIND ? HS_FIND_OPS : 100;
}

static void add_type(retl_buf *o, const struct hs_decl *d)
{
	retl_buf_adds(o, "\"types\":[{\"associationCategory\":");
	retl_buf_add_json_str(o, d->category, strlen(d->category));
	retl_buf_addf(o, ",\"associationTypeId\":%ld}]", d->tid);
}

static void add_id(retl_buf *o, const char *key, const char *id)
{
	retl_buf_addf(o, "\"%s\":{\"id\":", key);
	retl_buf_add_json_str(o, id, strlen(id));
	retl_buf_addc(o, '}');
}

static void encode_find(struct hs_ctx *c, struct retl_request *r, const struct hs_decl *d,
			retl_buf *o)
{
	int first = 1;
	retl_buf_adds(o, "{\"filterGroups\":[{\"filters\":[{\"propertyName\":");
	retl_buf_add_json_str(o, d->by, strlen(d->by));
	retl_buf_adds(o, ",\"operator\":\"IN\",\"values\":[");
	for (size_t k = 0; k < r->n; k++) {
		struct aop *s = aop_find(c->assoc, r, k);
		const struct strv *v = s ? &s->val[d - c->assoc->d] : NULL;
		for (size_t i = 0; v && i < v->n; i++) {
			if (!first)
				retl_buf_addc(o, ',');
			first = 0;
			retl_buf_add_json_str(o, v->v[i], strlen(v->v[i]));
		}
	}
	/* the spec requires after, limit, properties and sorts */
	retl_buf_adds(o, "]}]}],\"properties\":[");
	retl_buf_add_json_str(o, d->by, strlen(d->by));
	retl_buf_adds(o, "],\"sorts\":[],\"limit\":200,\"after\":\"0\"}");
}

/* create: each found target not associated yet; archive: each associated
 * one the model does not name */
static void encode_pairs(struct hs_ctx *c, struct retl_request *r, const struct hs_decl *d,
			 int create, retl_buf *o)
{
	int first = 1;
	retl_buf_adds(o, "{\"inputs\":[");
	for (size_t k = 0; k < r->n; k++) {
		struct aop *s = aop_find(c->assoc, r, k);
		const struct strv *from = create ? &s->want : &s->have;
		const struct strv *not = create ? &s->have : &s->want;
		int opened = 0;
		for (size_t i = 0; s && i < from->n; i++) {
			if (strv_has(not, from->v[i]))
				continue;
			if (!create && d->unlabeled) {
				/* batch/archive: one input per record, every pair */
				if (!opened) {
					retl_buf_adds(o, first ? "{" : ",{");
					add_id(o, "from", s->obj);
					retl_buf_adds(o, ",\"to\":[");
				} else {
					retl_buf_addc(o, ',');
				}
				opened = 1;
				first = 0;
				retl_buf_adds(o, "{\"id\":");
				retl_buf_add_json_str(o, from->v[i], strlen(from->v[i]));
				retl_buf_addc(o, '}');
				continue;
			}
			retl_buf_adds(o, first ? "{" : ",{");
			first = 0;
			add_id(o, "from", s->obj);
			retl_buf_addc(o, ',');
			add_id(o, "to", from->v[i]);
			retl_buf_addc(o, ',');
			add_type(o, d);
			retl_buf_addc(o, '}');
		}
		if (opened)
			retl_buf_adds(o, "]}");
	}
	retl_buf_adds(o, "]}");
}

int hubspot_assoc_encode(struct hs_ctx *c, struct retl_request *r)
{
	struct hs_assoc *a = c->assoc;
	const struct hs_decl *d = &a->d[(r->kind - HS_NKIND) / ST_N];
	int st = (r->kind - HS_NKIND) % ST_N;
	struct retl_http_req *req = r->http;
	retl_buf url = RETL_BUF_INIT;
	static const char *const verb[ST_N] = { NULL, "read", "create", "archive" };
	if (st == ST_FIND) {
		retl_buf_addf(&url, "%s%s/%s/search", c->base.url, c->objects, d->to);
		encode_find(c, r, d, &req->body);
		req->rate2 = hubspot_search_limiter(c);
	} else {
		retl_buf_addf(&url, "%s%s/%s/%s/batch/%s%s", c->base.url, a->assoc_base,
			      c->base.object, d->to,
			      st == ST_ARCHIVE && !d->unlabeled ? "labels/" : "", verb[st]);
		if (st == ST_READ) {
			retl_buf_adds(&req->body, "{\"inputs\":[");
			for (size_t k = 0; k < r->n; k++) {
				struct aop *s = aop_find(a, r, k);
				retl_buf_adds(&req->body, k ? ",{\"id\":" : "{\"id\":");
				retl_buf_add_json_str(&req->body, s ? s->obj : "", s ? strlen(s->obj) : 0);
				retl_buf_addc(&req->body, '}');
			}
			retl_buf_adds(&req->body, "]}");
		} else {
			encode_pairs(c, r, d, st == ST_CREATE, &req->body);
		}
	}
	req->method = "POST";
	req->url = retl_buf_detach(&url);
	req->idempotent = 1;      /* search, read; create and archive repeat harmlessly */
	return 0;
}

/* ---- decode ---- */

/* "no companies record has domain x.com" / "ambiguous match (N records)" */
static void take_found(struct hs_ctx *c, struct retl_request *r, size_t k,
		       const struct hs_decl *d, const json_t *results)
{
	struct aop *s = aop_find(c->assoc, r, k);
	retl_buf why = RETL_BUF_INIT;
	if (!s)
		return;
	const struct strv *vals = &s->val[d - c->assoc->d];
	{
		const struct strv v = *vals;
		for (size_t i = 0; i < v.n && !why.len; i++) {
			size_t j, hits = 0;
			json_t *x;
			const char *id = NULL;
			json_array_foreach(results, j, x) {
				const char *pv = json_string_value(json_object_get(json_object_get(x, "properties"), d->by));
				if (pv && !strcasecmp(pv, v.v[i])) {
					hits++;
					id = json_string_value(json_object_get(x, "id"));
				}
			}
			if (!hits)
				retl_buf_addf(&why, "no %s record has %s %s", d->to, d->by, v.v[i]);
			else if (hits > 1)
				retl_buf_addf(&why, "ambiguous match (%zu records): %s with %s %s",
					      hits, d->to, d->by, v.v[i]);
			else if (id)
				strv_add(&s->want, id);
		}
	}
	if (why.len)
		finish(c->assoc, r, k, RETL_RES_REJECT, why.ptr);
	else
		advance(c, r, k);
	retl_buf_free(&why);
}

/* the current associations of d's type, from a batch/read answer */
static void take_current(struct hs_ctx *c, struct retl_request *r, const struct hs_decl *d,
			 const json_t *results)
{
	size_t i, j, t;
	json_t *x, *y, *ty;
	json_array_foreach(results, i, x) {
		const char *from = json_string_value(json_object_get(json_object_get(x, "from"), "id"));
		for (size_t k = 0; from && k < r->n; k++) {
			struct aop *s = aop_find(c->assoc, r, k);
			if (!s || strcmp(s->obj, from))
				continue;
			json_array_foreach(json_object_get(x, "to"), j, y) {
				json_t *to = json_object_get(y, "toObjectId");
				char tmp[32];
				const char *tid = json_is_integer(to) ?
					(snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(to)), tmp) :
					json_string_value(to);
				/* the unlabeled type's: pairs with no label (a
				 * labeled pair holds the unlabeled type too, and
				 * belongs to its label) */
				int mine = 0, other = 0;
				json_array_foreach(json_object_get(y, "associationTypes"), t, ty) {
					const char *cat = json_string_value(json_object_get(ty, "category"));
					if (cat && !strcmp(cat, d->category) &&
					    json_integer_value(json_object_get(ty, "typeId")) == d->tid)
						mine = 1;
					else
						other = 1;
				}
				if (tid && mine && !(d->unlabeled && other))
					strv_add(&s->have, tid);
			}
		}
	}
}

/* errors of a 207 that name records: the ops writing to them fail */
static void take_errors(struct hs_ctx *c, struct retl_request *r, const json_t *root,
			unsigned char *failed)
{
	size_t i, j;
	json_t *x, *id;
	json_array_foreach(json_object_get(root, "errors"), i, x) {
		const char *cat = json_string_value(json_object_get(x, "category"));
		const char *msg = json_string_value(json_object_get(x, "message"));
		json_array_foreach(json_object_get(json_object_get(x, "context"), "ids"), j, id) {
			const char *s = json_string_value(id);
			for (size_t k = 0; s && k < r->n; k++) {
				struct aop *o = aop_find(c->assoc, r, k);
				if (failed[k] || !o || (strcmp(o->obj, s) && !strv_has(&o->want, s)))
					continue;
				retl_buf why = RETL_BUF_INIT;
				retl_buf_addf(&why, "%s: %s", cat ? cat : "ERROR", msg ? msg : "(no message)");
				finish(c->assoc, r, k, RETL_RES_REJECT, why.ptr);
				retl_buf_free(&why);
				failed[k] = 1;
			}
		}
	}
}

/* a refused request: every op fails with HubSpot's words */
static void refused(struct hs_ctx *c, struct retl_request *r, const json_t *root)
{
	retl_buf why = RETL_BUF_INIT;
	const char *cat = json_string_value(json_object_get(root, "category"));
	const char *msg = json_string_value(json_object_get(root, "message"));
	if (msg)
		retl_buf_addf(&why, "HTTP %ld: %s%s%s", r->http->status, cat ? cat : "",
			      cat ? ": " : "", msg);
	else {
		char *x = retl_req_reason(r);
		retl_buf_adds(&why, x);
		free(x);
	}
	for (size_t k = 0; k < r->n; k++)
		finish(c->assoc, r, k, RETL_RES_REJECT, why.ptr);
	retl_buf_free(&why);
}

enum retl_hd_verdict hubspot_assoc_decode(struct hs_ctx *c, struct retl_request *r,
					  struct retl_err *err)
{
	const struct hs_decl *d = &c->assoc->d[(r->kind - HS_NKIND) / ST_N];
	int st = (r->kind - HS_NKIND) % ST_N;
	long status = r->http->status;
	json_error_t je;
	if (hubspot_auth_error(r->http, err) < 0)
		return RETL_HD_FATAL;
	json_t *root = r->http->resp.len ?
		json_loadb(r->http->resp.ptr, r->http->resp.len, 0, &je) : NULL;
	json_t *results = json_object_get(root, "results");
	enum retl_hd_verdict v = RETL_HD_DONE;
	if (status < 200 || status > 299) {
		refused(c, r, root);
	} else if (st == ST_FIND) {
		/* more matches than one page: halve, or an op's values match
		 * more than 200 records (several each: ambiguous) */
		if (json_integer_value(json_object_get(root, "total")) > (json_int_t)json_array_size(results) &&
		    r->n > 1) {
			v = RETL_HD_SPLIT;
		} else {
			for (size_t k = 0; k < r->n; k++)
				take_found(c, r, k, d, results);
		}
	} else {
		unsigned char *failed = retl_calloc(r->n ? r->n : 1, 1);
		if (st == ST_READ)
			take_current(c, r, d, results);
		else
			take_errors(c, r, root, failed);
		for (size_t k = 0; k < r->n; k++)
			if (!failed[k])
				advance(c, r, k);
		free(failed);
	}
	json_decref(root);
	return v;
}

/* an assoc request the engine gave up on: the ops are not done */
void hubspot_assoc_gave_up(struct hs_ctx *c, struct retl_request *r)
{
	for (size_t k = 0; c->assoc && k < r->n; k++)
		aop_drop(c->assoc, r, k);
}
