/*
 * hubspot.c - the HubSpot destination: CRM v3 batch endpoints on the HTTP
 * destinations' base (http_dest.h).
 *
 *   upsert   POST /crm/v3/objects/{object}/batch/upsert, idProperty = the
 *            match property, each input's id = the payload's value for it
 *   update   batch/update by the stored HubSpot id, else by idProperty
 *   insert   batch/create; ops left pending by an earlier run are first
 *            looked up with batch/read by idProperty: found ones are
 *            acknowledged with the found id, the rest created.  A create
 *            is never replayed by the HTTP engine (not idempotent): a create
 *            that got no answer leaves its row pending for the next run.
 *   membership  the rows are a static list's members: hubspot_lists.c
 *   mirror   upsert, and removed rows -> batch/archive by stored id.  Both
 *            on_remove "archive" and "delete" archive: HubSpot's v3 delete
 *            *is* archive (restorable for 90 days); the permanent GDPR
 *            delete exists only for contacts and retl never sends it.
 *
 * A match property that is not unique (companies' domain) is found through
 * the search endpoint first, and hs_object_id is the record id itself
 * (hubspot_search.c); fields with "write": "if_empty" are read before they
 * are written (hubspot_if_empty.c).
 *
 * One engine batch (at most 100 ops, HubSpot's inputs limit) may become
 * several requests, one per endpoint (a lookup, then the creates it did
 * not find; upserts beside archives); answers are read in
 * hubspot_decode.c.
 *
 * Values: the payload is retl's canonical JSON; HubSpot's spec types every
 * property value as a string (crm-objects v3, SimplePublicObjectInput*:
 * properties additionalProperties string), so numbers go as decimal
 * strings as written, dates as midnight-UTC epoch milliseconds,
 * booleans "true"/"false", null "" (clears the property), arrays of
 * strings joined with ';' (multi-checkbox); nested objects and dotted
 * targets are refused at open (HubSpot properties are flat).  A create
 * carries "associations": [] and a read "propertiesWithHistory": [], both
 * required by the spec.
 *
 * Associations (the sync key "associations", fields "associations.<name>"):
 * the payload's "associations" member is not a property; convert_row hands
 * it to hubspot_assoc.c, which takes each acknowledged write on through
 * its association requests (request kinds from HS_NKIND up).
 */
#include "destination.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hash.h"
#include "hubspot_int.h"
#include "payload.h"
#include "ratelimit.h"

#define HS_MAX_INPUTS 100
#define HS_DEFAULT_BASE "https://api.hubapi.com"

static const char *const hs_conn_keys[] = {
	"token", "requests_per_10s", "daily_limit", "max_inflight", "timeout",
	"api_version", NULL
};

/* the list a sync in mode membership keeps (hubspot_lists.c) and the
 * associations (hubspot_assoc.c) */
static const char *const hs_sync_keys[] = { "list", "associations", NULL };

static const char *const hs_verb[HS_NKIND] = {
	"upsert", "update", "create", "read", "archive", "read", "search", "search",
	"read", "read"
};

/* ---- options ---- */

/* "2026-03": HubSpot's date-based API versions */
static int dated_version(const char *v)
{
	return strlen(v) == 7 && isdigit((unsigned char)v[0]) && isdigit((unsigned char)v[1]) &&
	       isdigit((unsigned char)v[2]) && isdigit((unsigned char)v[3]) && v[4] == '-' &&
	       isdigit((unsigned char)v[5]) && isdigit((unsigned char)v[6]);
}

static int hs_validate(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	const char *t;
	long n;
	if (retl_dest_opt_str(dc, "token", "a HubSpot private app token, e.g. \"${HUBSPOT_TOKEN}\"",
			      &t, err) < 0)
		return -1;
	json_t *v = json_object_get(dc->options, "api_version");
	const char *ver = json_string_value(v);
	if (v && (!ver || (strcmp(ver, "v3") && !dated_version(ver))))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.api_version: expected \"v3\" (the default) or a date-based version such as \"2026-03\"",
				    dc->name);
	if (retl_dest_opt_posint(dc, "requests_per_10s", 100, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "daily_limit", 0, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "max_inflight", 4, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "timeout", 60, &n, err) < 0)
		return -1;
	return 0;
}

/* ---- values ---- */

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

static int digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* "\"2024-05-01\"" -> epoch ms of its midnight UTC; -1 if not a date */
static int date_ms(const char *s, size_t n, long long *ms)
{
	int y, m, d, used = 0;
	char tmp[24];
	if (n < 12 || n >= sizeof(tmp))
		return -1;
	if (n == 12 && s[5] == '-' && s[8] == '-' && digits(s + 1, 4) && digits(s + 6, 2) &&
	    digits(s + 9, 2)) {
		/* the canonical "YYYY-MM-DD" the mapping writes: what sscanf
		 * below reads of it, without its cost (one call a row) */
		y = (s[1] - '0') * 1000 + (s[2] - '0') * 100 + (s[3] - '0') * 10 + (s[4] - '0');
		m = (s[6] - '0') * 10 + (s[7] - '0');
		d = (s[9] - '0') * 10 + (s[10] - '0');
		if (m < 1 || m > 12 || d < 1 || d > 31)
			return -1;
		*ms = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400000LL;
		return 0;
	}
	memcpy(tmp, s + 1, n - 2);
	tmp[n - 2] = '\0';
	if (sscanf(tmp, "%d-%d-%d%n", &y, &m, &d, &used) != 3 ||
	    (size_t)used != n - 2 || m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	*ms = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400000LL;
	return 0;
}

/* an array of strings joined with ';' (a multi-checkbox) into o */
static int add_joined(const struct retl_pv *v, retl_buf *o)
{
	struct retl_preader r;
	struct retl_pv x;
	retl_buf j = RETL_BUF_INIT;
	int rc, n = 0;
	retl_pv_open(&r, v);
	while ((rc = retl_payload_item(&r, &x)) > 0) {
		if (n++)
			retl_buf_addc(&j, ';');
		if (retl_pv_string(&x, &j) < 0) {
			rc = -1;
			break;
		}
	}
	if (rc == 0)
		retl_buf_add_json_str(o, j.ptr ? j.ptr : "", j.len);
	retl_buf_free(&j);
	return rc;
}

/* one property value in HubSpot's form; -1 with a reason */
static int add_value(const struct retl_pfield *f, enum retl_type t,
		     const char *target, retl_buf *o, retl_buf *reason)
{
	long long ms;
	switch (f->v.kind) {
	case RETL_PV_STRING:
		if (t == RETL_TYPE_DATE && date_ms(f->v.raw, f->v.len, &ms) == 0)
			retl_buf_addf(o, "\"%lld\"", ms);
		else
			retl_buf_add(o, f->v.raw, f->v.len);
		return 0;
	case RETL_PV_TRUE:
		retl_buf_adds(o, "\"true\"");
		return 0;
	case RETL_PV_FALSE:
		retl_buf_adds(o, "\"false\"");
		return 0;
	case RETL_PV_NULL:
		retl_buf_adds(o, "\"\"");
		return 0;
	case RETL_PV_OBJECT:
		retl_buf_addf(reason, "%s: HubSpot properties are flat: an object cannot be sent",
			      target);
		return -1;
	case RETL_PV_ARRAY:
		if (add_joined(&f->v, o) == 0)
			return 0;
		retl_buf_addf(reason, "%s: HubSpot properties are flat: only an array of strings (a multi-checkbox) can be sent",
			      target);
		return -1;
	default:  /* a number: a decimal string, as written (no precision lost) */
		retl_buf_add_json_str(o, f->v.raw, f->v.len);
		return 0;
	}
}

/*
 * The properties object of one op into o, values in HubSpot's formats, and
 * the idProperty's value into id.  -1 with a reason for a row HubSpot
 * cannot take.
 */
static int convert_row(struct hs_ctx *c, const struct retl_batch *b, size_t i,
		       retl_buf *o, retl_buf *id, retl_buf *reason)
{
	const struct retl_op *op = &b->ops[i];
	struct retl_preader rd;
	struct retl_pfield f;
	int first = 1, rc;

	if (retl_payload_open(&rd, op->payload, op->payload_len) < 0)
		goto bad;
	retl_buf_addc(o, '{');
	while ((rc = retl_payload_next(&rd, &f)) > 0) {
		if (c->assoc && retl_pfield_is(&f, "associations")) {
			/* not a property: hubspot_assoc.c's values */
			if (hubspot_assoc_take(c, b, i, &f.v, reason) < 0)
				return -1;
			continue;
		}
		int fi = retl_hd_field_named(&c->base, f.name, f.name_len);
		enum retl_type t = fi >= 0 ? c->base.ftype[fi] : RETL_TYPE_AUTO;
		const char *target = fi >= 0 ? c->base.ftarget[fi] : "?";
		size_t start = o->len;
		if (!first)
			retl_buf_addc(o, ',');
		retl_buf_addc(o, '"');
		retl_buf_add(o, f.name, f.name_len);
		retl_buf_adds(o, "\":");
		size_t vpos = o->len;
		if (add_value(&f, t, target, o, reason) < 0)
			return -1;
		int is_id = c->id_prop && fi >= 0 && !strcmp(target, c->id_prop);
		if (is_id) {
			retl_buf_reset(id);
			if (o->ptr[vpos] != '"')
				retl_buf_add(id, o->ptr + vpos, o->len - vpos);
			else if (retl_json_str_decode(o->ptr + vpos, o->len - vpos, id) < 0)
				retl_buf_reset(id);
		}
		if (is_id && c->by_object_id)
			retl_buf_truncate(o, start);    /* the id, not a property */
		else
			first = 0;
	}
	if (rc < 0)
		goto bad;
	retl_buf_addc(o, '}');
	return 0;
bad:
	retl_buf_adds(reason, "hubspot: payload is not a JSON object");
	return -1;
}

/* ---- prepare / encode ---- */

static int hs_prepare(void *d, struct retl_batch *b, size_t i, retl_buf *body,
		      retl_buf *id, retl_buf *reason)
{
	struct hs_ctx *c = d;
	const struct retl_op *op = &b->ops[i];
	retl_buf val = RETL_BUF_INIT;
	int k;

	if (c->base.mode == RETL_MODE_MEMBERSHIP)
		return hubspot_list_prepare(c, b, i, id, reason);
	/* every op, removals too: the first batch resolves the association
	 * types, whatever it holds (nothing is in flight before it) */
	int assoc_ok = hubspot_assoc_prepare(c, reason) == 0;
	int mk = hubspot_match_kind(c, op);
	if (op->kind == RETL_OP_REMOVE) {
		retl_buf_reset(reason);
		if (mk == HS_SEARCH && op->match && op->match[0]) {
			retl_buf_adds(id, op->match);
			return HS_SEARCH;
		}
		if (op->dest_id && op->dest_id[0])
			return HS_ARCHIVE;
		if (op->match && op->match[0] && c->id_prop) {
			/* a record may exist with no id known: find it */
			retl_buf_adds(id, op->match);
			return HS_FIND;
		}
		/* never reached HubSpot: nothing to remove */
		retl_result_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
		return RETL_HD_NONE;
	}
	if (!assoc_ok || convert_row(c, b, i, body, &val, reason) < 0) {
		hubspot_assoc_forget(c, b, i);
		retl_buf_free(&val);
		return RETL_HD_REJECT;
	}
	size_t has_id = val.len;
	retl_buf_add(id, val.ptr, val.len);
	hubspot_match_prepared(c, b, i, retl_buf_cstr(&val));
	if (mk >= 0)
		k = mk;         /* by search or by hs_object_id (hubspot_search.c) */
	else if (c->base.mode == RETL_MODE_UPDATE || op->kind == RETL_OP_UPDATE)
		k = HS_UPDATE;
	else if (c->base.mode == RETL_MODE_INSERT || op->kind == RETL_OP_INSERT)
		k = op->pending ? HS_READ : HS_CREATE;
	else
		k = HS_UPSERT;
	int by_id = k == HS_UPDATE && op->dest_id && op->dest_id[0];
	if (!by_id && k != HS_CREATE && !has_id) {
		retl_buf_free(&val);
		retl_buf_addf(reason, "%s: empty; HubSpot finds the record by this property (match)",
			      c->id_prop ? c->id_prop : "match");
		return RETL_HD_REJECT;
	}
	k = hubspot_ie_kind(c, op, k, retl_buf_cstr(&val));
	retl_buf_free(&val);
	return k;
}

static void add_str(retl_buf *o, const char *s, size_t n)
{
	retl_buf_add_json_str(o, s, n);
}

/* one input of a request: its identifier, then its properties */
static void add_input(const struct hs_ctx *c, const struct retl_request *r,
		      size_t k, retl_buf *o)
{
	size_t idlen, plen;
	const char *id = retl_req_id(r, k, &idlen);
	const char *props = retl_req_body(r, k, &plen);

	if (r->kind == HS_CREATE) {
		/* the trace id maps 207 results and errors back to ops */
		retl_buf_addf(o, "{\"associations\":[],\"objectWriteTraceId\":\"%zu\",",
			      r->idx[k]);
	} else if (r->kind == HS_ARCHIVE || r->kind == HS_READ || r->kind == HS_FIND) {
		const char *aid = hubspot_archive_id(r, k);
		retl_buf_adds(o, "{\"id\":");
		if (r->kind == HS_ARCHIVE)
			add_str(o, aid, strlen(aid));
		else
			add_str(o, id, idlen);
		retl_buf_addc(o, '}');
		return;
	} else if (r->kind == HS_UPDATE && hubspot_update_id(c, r, k)) {
		const char *uid = hubspot_update_id(c, r, k);
		retl_buf_adds(o, "{\"id\":");
		add_str(o, uid, strlen(uid));
		retl_buf_addc(o, ',');
	} else {
		/* upsert, or update by idProperty */
		retl_buf_adds(o, "{\"id\":");
		add_str(o, id, idlen);
		retl_buf_adds(o, ",\"idProperty\":");
		add_str(o, c->id_prop, strlen(c->id_prop));
		retl_buf_addc(o, ',');
	}
	retl_buf_adds(o, "\"properties\":");
	hubspot_ie_props(r, k, props, plen, o);
	retl_buf_addc(o, '}');
}

const char *hubspot_archive_id(const struct retl_request *r, size_t k)
{
	const struct retl_op *op = retl_req_op(r, k);
	if (op->dest_id && op->dest_id[0])
		return op->dest_id;
	const char *found = retl_req_result(r, k)->dest_id;
	return found ? found : "";
}

static int hs_encode(void *d, struct retl_request *r, struct retl_err *err)
{
	struct hs_ctx *c = d;
	struct retl_http_req *req = r->http;
	retl_buf *o = &req->body;
	retl_buf url = RETL_BUF_INIT;

	if (c->base.mode == RETL_MODE_MEMBERSHIP)
		return hubspot_list_encode(c, r);
	if (r->kind >= HS_NKIND)
		return hubspot_assoc_encode(c, r);
	if (r->kind == HS_SEARCH || r->kind == HS_SEARCH1) {
		hubspot_search_encode(c, r);
		return 0;
	}
	if (r->kind == HS_PEEK_ID || r->kind == HS_PEEK_PROP) {
		hubspot_ie_encode(c, r);
		return 0;
	}
	retl_buf_addf(&url, "%s%s/%s/batch/%s", c->base.url, c->objects, c->base.object,
		      hs_verb[r->kind]);
	req->method = "POST";
	req->url = retl_buf_detach(&url);
	req->idempotent = r->kind != HS_CREATE;
	if (r->kind == HS_READ || r->kind == HS_FIND) {
		retl_buf_adds(o, "{\"idProperty\":");
		add_str(o, c->id_prop, strlen(c->id_prop));
		retl_buf_adds(o, ",\"properties\":[");
		add_str(o, c->id_prop, strlen(c->id_prop));
		retl_buf_adds(o, "],\"propertiesWithHistory\":[],\"inputs\":[");
	} else {
		retl_buf_adds(o, "{\"inputs\":[");
	}
	for (size_t k = 0; k < r->n; k++) {
		if (k)
			retl_buf_addc(o, ',');
		add_input(c, r, k, o);
	}
	retl_buf_adds(o, "]}");
	(void)err;
	return 0;
}

/* ---- open ---- */

static int object_ok(const char *o)
{
	if (!o || !*o)
		return 0;
	for (const char *p = o; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return 0;
	return 1;
}

static const struct retl_hd_match_words hs_match_words = {
	.vendor = "HubSpot",
	.field = "property",
	.placeholder = "<unique HubSpot property>",
	.example = "{\"email\": \"email\"}",
	.carries = "in the payload",
};

/* the API version's paths: /crm/v3/objects or /crm/objects/2026-03 */
static void set_paths(struct hs_ctx *c)
{
	const char *ver = json_string_value(json_object_get(c->base.dc->options, "api_version"));
	retl_buf o = RETL_BUF_INIT, p = RETL_BUF_INIT;
	if (!ver || !strcmp(ver, "v3")) {
		retl_buf_adds(&o, "/crm/v3/objects");
		retl_buf_adds(&p, "/crm/v3/properties");
	} else {
		retl_buf_addf(&o, "/crm/objects/%s", ver);
		retl_buf_addf(&p, "/crm/properties/%s", ver);
	}
	c->objects = retl_buf_detach(&o);
	c->properties = retl_buf_detach(&p);
}

static void hs_fini(void *d)
{
	struct hs_ctx *c = d;
	free(c->objects);
	free(c->properties);
	free(c->ie);
	hubspot_list_fini(c);
	hubspot_assoc_fini(c);
}

/* the mapping: flat properties, and the match property */
static int hs_setup(void *d, struct retl_err *err)
{
	struct hs_ctx *c = d;
	const struct retl_sync_cfg *sc = c->base.sc;
	set_paths(c);
	if (hubspot_assoc_setup(c, json_string_value(json_object_get(c->base.dc->options,
								  "api_version")), err) < 0)
		return -1;
	for (size_t i = 0; i < c->base.nf; i++) {
		const char *t = c->base.ftarget[i];
		if (!strncmp(t, "associations.", 13))
			continue;       /* hubspot_assoc.c's */
		if (strchr(t, '.'))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: HubSpot properties are flat: a dotted target (a nested object) cannot be sent; name the property itself",
					    sc->file, t);
		if (c->base.ftype[i] == RETL_TYPE_JSON)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: HubSpot properties are flat: type \"json\" cannot be sent (use a string, or \"split\" for a multi-checkbox)",
					    sc->file, t);
	}
	if (retl_hd_match_one(&c->base, &hs_match_words, &c->id_prop, err) < 0 ||
	    hubspot_match_setup(c, err) < 0 || hubspot_ie_setup(c) < 0)
		return -1;
	c->id_ci = c->id_prop && !strcmp(c->id_prop, "email");
	return hubspot_list_setup(c, err);
}

static int open_object(const struct retl_sync_cfg *sc, struct retl_err *err)
{
	if (!sc->object)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: object: missing; the hubspot destination needs contacts, companies, deals, tickets or a custom object id (2-123456, p_name)",
				    sc->file);
	if (!object_ok(sc->object))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: object: \"%s\" is not a HubSpot object type (contacts, companies, deals, tickets, or a custom object id like 2-123456 or p_name)",
				    sc->file, sc->object);
	return 0;
}

/* the token, its limiter and HubSpot's rate headers */
static int hs_options(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		      struct retl_hd_opts *o, struct retl_err *err)
{
	long rps;
	if (open_object(sc, err) < 0)
		return -1;
	retl_dest_opt_posint(dc, "requests_per_10s", 100, &rps, err);
	const char *token = json_string_value(json_object_get(dc->options, "token"));
	retl_buf a = RETL_BUF_INIT;
	retl_buf_addf(&a, "Authorization: Bearer %s", token);
	/* the limiter is per credential: keyed by a hash, never the token */
	char key[64];
	snprintf(key, sizeof(key), "hubspot:%016llx",
		 (unsigned long long)retl_hash64(token, strlen(token), 0x68756273706f74ULL));
	o->auth = retl_buf_detach(&a);
	o->http.rate = retl_rate_shared(key, (int)rps, 10.0, 0.15);
	o->http.rate_max_header = "X-HubSpot-RateLimit-Max";
	o->http.rate_remaining_header = "X-HubSpot-RateLimit-Remaining";
	o->http.final_429 = hubspot_daily_429;
	return 0;
}

static const struct retl_hd_ops hs_ops = {
	.type = "hubspot",
	.ctx_size = sizeof(struct hs_ctx),
	.default_url = HS_DEFAULT_BASE,
	.max_ops = HS_MAX_INPUTS,
	.inflight = 4,
	.timeout = 60,
	.validate = hs_validate,
	.options = hs_options,
	.setup = hs_setup,
	.prepare = hs_prepare,
	.encode = hs_encode,
	.decode = hubspot_decode,
	.transient = hubspot_transient,
	.ops_per_request = hubspot_ops_per_request,
	.fini = hs_fini,
};

const struct retl_destination retl_dest_hubspot = {
	.name = "hubspot",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_UPDATE |
		 1u << RETL_MODE_INSERT | 1u << RETL_MODE_MIRROR |
		 1u << RETL_MODE_MEMBERSHIP,
	.removals = 1u << RETL_REMOVE_ARCHIVE | 1u << RETL_REMOVE_DELETE,
	.max_batch = HS_MAX_INPUTS,
	.if_empty = 1,                /* hubspot_if_empty.c */
	.conn_keys = hs_conn_keys,
	.sync_keys = hs_sync_keys,
	.validate = hs_validate,
	.http = &hs_ops,
	.check = hubspot_check,
	/*
	 * Engine batches queued at once.  Requests actually in flight are
	 * capped by the conn key max_inflight (HTTP engine) and the rate
	 * limiter; a deeper queue keeps them busy while the engine reads.
	 */
	.max_inflight = 16,
	.plan = hubspot_plan,
	RETL_HD_CALLBACKS,
};
