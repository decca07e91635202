/*
 * airtable.c - the Airtable destination: the Web API's record endpoints
 * on the HTTP destinations' base (http_dest.h), 10 records a request.
 *
 *   upsert   PATCH /v0/{base}/{table} with performUpsert.fieldsToMergeOn =
 *            the match fields (1 to 3); results are mapped back to rows by
 *            the merge fields' values, never by position
 *   update   PATCH by the stored record id; with a match, a row without one
 *            is looked up first by its match fields and PATCHes the one
 *            record found (none or several fail the row; never creates):
 *            airtable_match.c.  Without a match a row without an id fails.
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
 * (`rate_limit_penalty`, default 30) and sends the refused records again:
 * one wait, then on at the limit.
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
#include "log.h"
#include "payload.h"

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

/* ---- prepare ---- */

/*
 * The payload is the record's fields as they are (retl's neutral formats
 * are Airtable's): into fields; its merge fields' values, as a JSON array
 * in match order, into id.  -1 with a reason for a row Airtable cannot
 * take.
 */
/* need_merge: 1, each merge value must be set (an upsert merges on them);
 * 2, and be text or a number (update mode looks the record up by them) */
static int read_fields(const struct at_ctx *c, const struct retl_op *op,
		       retl_buf *fields, retl_buf *id, int need_merge, retl_buf *reason)
{
	struct retl_preader r;
	struct retl_pfield f;
	struct retl_pv mv[3] = { 0 };
	int rc;
	if (retl_payload_open(&r, op->payload, op->payload_len) < 0)
		goto bad;
	while ((rc = retl_payload_next(&r, &f)) > 0) {
		if (f.v.kind == RETL_PV_OBJECT) {
			retl_pfield_name(&f, reason);
			retl_buf_adds(reason, ": Airtable fields are flat: an object cannot be sent (use a string, or an array for multiple selects and linked records)");
			return -1;
		}
		for (size_t m = 0; m < c->nmerge && m < 3; m++)
			if (retl_pfield_is(&f, c->merge[m]))
				mv[m] = f.v;
	}
	if (rc < 0)
		goto bad;
	retl_buf_add(fields, op->payload, op->payload_len);
	retl_buf_addc(id, '[');
	for (size_t m = 0; m < c->nmerge && m < 3; m++) {
		int empty = !mv[m].raw || mv[m].kind == RETL_PV_NULL ||
			    (mv[m].kind == RETL_PV_STRING && mv[m].len == 2);
		if (empty && need_merge) {
			retl_buf_addf(reason, "%s: empty; Airtable finds the record by this field (match)",
				      c->merge[m]);
			return -1;
		}
		if (need_merge == 2 && mv[m].kind != RETL_PV_STRING &&
		    mv[m].kind != RETL_PV_NUMBER) {
			retl_buf_addf(reason, "%s: update mode finds the record by this field's value, which must be text or a number",
				      c->merge[m]);
			return -1;
		}
		if (m)
			retl_buf_addc(id, ',');
		if (mv[m].raw)
			retl_buf_add(id, mv[m].raw, mv[m].len);
		else
			retl_buf_adds(id, "null");
	}
	retl_buf_addc(id, ']');
	return 0;
bad:
	retl_buf_adds(reason, "airtable: payload is not a JSON object");
	return -1;
}

static int at_prepare(void *d, struct retl_batch *b, size_t i, retl_buf *body,
		      retl_buf *id, retl_buf *reason)
{
	struct at_ctx *c = d;
	const struct retl_op *op = &b->ops[i];
	int has_id = op->dest_id && op->dest_id[0];
	int k;

	if (op->kind == RETL_OP_REMOVE) {
		if (has_id)
			return AT_DELETE;
		if (op->match && op->match[0] && c->nmerge) {
			/* a record may exist with no id known: find it */
			retl_buf_adds(id, op->match);
			return AT_FIND;
		}
		/* never reached Airtable: nothing to remove */
		retl_result_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
		return RETL_HD_NONE;
	}
	if (c->by_id) {
		/* the PATCH goes to the row's id: update_id() reads it back */
		retl_buf rid = RETL_BUF_INIT;
		retl_buf_adds(body, "\"fields\":");
		k = airtable_split_id(op->payload, op->payload_len, body, &rid, reason);
		if (k == 0)
			retl_result_set(&b->results[i], RETL_RES_RETRY, rid.ptr, "airtable: no answer");
		else if (!reason->len)
			retl_buf_adds(reason, "airtable: payload is not a JSON object");
		retl_buf_free(&rid);
		return k == 0 ? AT_UPDATE : RETL_HD_REJECT;
	}
	if (c->base.mode == RETL_MODE_UPDATE || op->kind == RETL_OP_UPDATE)
		k = has_id || !c->nmerge ? AT_UPDATE : AT_LOOKUP;
	else if (c->base.mode == RETL_MODE_INSERT || op->kind == RETL_OP_INSERT)
		k = op->pending && c->nmerge ? AT_UPSERT : AT_CREATE;
	else
		k = AT_UPSERT;
	/* an update's body is "fields":{…} alone: encode adds the record id,
	 * stored or found by the lookup */
	int upd = k == AT_UPDATE || k == AT_LOOKUP;
	if (!upd)
		retl_buf_addc(body, '{');
	retl_buf_adds(body, "\"fields\":");
	if (read_fields(c, op, body, id, k == AT_LOOKUP ? 2 : k == AT_UPSERT, reason) < 0)
		return RETL_HD_REJECT;
	if (!upd)
		retl_buf_addc(body, '}');
	if (k == AT_UPDATE && !has_id) {
		retl_buf_adds(reason, "airtable: update mode without a match changes only records retl knows the id of (sent before in upsert, insert or mirror mode); this key has none: set \"match\" to find records by a field");
		return RETL_HD_REJECT;
	}
	return k;
}

/* ---- encode ---- */

/* the id a delete sends: the stored one, or the one AT_FIND found */
static const char *delete_id(const struct retl_request *r, size_t k)
{
	const struct retl_op *op = retl_req_op(r, k);
	if (op->dest_id && op->dest_id[0])
		return op->dest_id;
	const char *found = retl_req_result(r, k)->dest_id;
	return found ? found : "";
}

/* the record an update PATCHes: the one its lookup found, else the
 * stored one */
static const char *update_id(const struct retl_request *r, size_t k)
{
	const char *found = retl_req_result(r, k)->dest_id;
	if (found && found[0])
		return found;
	const struct retl_op *op = retl_req_op(r, k);
	return op->dest_id ? op->dest_id : "";
}

/* a formula string literal: 'v' with \ and ' escaped */
static void add_literal(retl_buf *o, const char *v, size_t n)
{
	retl_buf_addc(o, '\'');
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '\'' || v[i] == '\\')
			retl_buf_addc(o, '\\');
		retl_buf_addc(o, v[i]);
	}
	retl_buf_addc(o, '\'');
}

/*
 * The record whose merge fields hold the match value mv (its parts split
 * by U+001F, match.h), compared as text without case, as retl compares
 * match values: AND(LOWER({F}&'')=LOWER('v'), ...).
 */
static void find_formula(const struct at_ctx *c, const char *mv, size_t n, retl_buf *o)
{
	const char *p = mv, *e = mv + n;
	if (c->nmerge > 1)
		retl_buf_adds(o, "AND(");
	for (size_t m = 0; m < c->nmerge; m++) {
		const char *sep = memchr(p, '\x1f', (size_t)(e - p));
		const char *end = sep ? sep : e;
		if (m)
			retl_buf_addc(o, ',');
		retl_buf_adds(o, "LOWER({");
		for (const char *q = c->merge[m]; *q; q++) {
			if (*q == '}' || *q == '\\')
				retl_buf_addc(o, '\\');
			retl_buf_addc(o, *q);
		}
		retl_buf_adds(o, "}&'')=LOWER(");
		add_literal(o, p, (size_t)(end - p));
		retl_buf_addc(o, ')');
		p = sep ? sep + 1 : e;
	}
	if (c->nmerge > 1)
		retl_buf_addc(o, ')');
}

static int at_encode(void *d, struct retl_request *r, struct retl_err *err)
{
	struct at_ctx *c = d;
	struct retl_http_req *req = r->http;
	retl_buf *o = &req->body;
	retl_buf url = RETL_BUF_INIT;

	if (r->kind == AT_LOOKUP)
		return airtable_lookup_encode(c, r);
	retl_buf_adds(&url, c->records_url);
	req->idempotent = r->kind != AT_CREATE;
	if (r->kind == AT_FIND) {
		retl_buf f = RETL_BUF_INIT;
		size_t n;
		const char *mv = retl_req_id(r, 0, &n);
		find_formula(c, mv, n, &f);
		retl_buf_adds(&url, "?pageSize=10&filterByFormula=");
		retl_buf_add_url_escaped(&url, f.ptr);
		retl_buf_free(&f);
		req->method = "GET";
		req->url = retl_buf_detach(&url);
		return 0;
	}
	if (r->kind == AT_DELETE) {
		req->method = "DELETE";
		for (size_t k = 0; k < r->n; k++) {
			retl_buf_adds(&url, k ? "&records%5B%5D=" : "?records%5B%5D=");
			retl_buf_add_url_escaped(&url, delete_id(r, k));
		}
		req->url = retl_buf_detach(&url);
		return 0;
	}
	req->method = r->kind == AT_CREATE ? "POST" : "PATCH";
	req->url = retl_buf_detach(&url);
	retl_buf_addc(o, '{');
	if (r->kind == AT_UPSERT) {
		retl_buf_adds(o, "\"performUpsert\":{\"fieldsToMergeOn\":[");
		for (size_t m = 0; m < c->nmerge; m++) {
			if (m)
				retl_buf_addc(o, ',');
			retl_buf_add_json_str(o, c->merge[m], strlen(c->merge[m]));
		}
		retl_buf_adds(o, "]},");
	}
	retl_buf_adds(o, "\"records\":[");
	for (size_t k = 0; r->kind == AT_UPDATE && k < r->n; k++) {
		size_t n;
		const char *b = retl_req_body(r, k, &n);
		const char *rid = update_id(r, k);
		retl_buf_adds(o, k ? ",{\"id\":" : "{\"id\":");
		retl_buf_add_json_str(o, rid, strlen(rid));
		retl_buf_addc(o, ',');
		retl_buf_add(o, b, n);
		retl_buf_addc(o, '}');
	}
	if (r->kind != AT_UPDATE)
		retl_req_add_bodies(r, o);
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
	if (type && typelen)
		snprintf(type, typelen, "%s", t ? t : "");
	if (t || msg) {
		retl_buf_addf(out, "%s%s%s", t ? t : "", t && msg ? ": " : "", msg ? msg : "");
	} else {
		char *why = retl_http_reason(req);
		retl_buf_adds(out, why ? why : "no error message");
		free(why);
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
			     c->base_id, c->base.object, retl_buf_cstr(&m));
	else
		retl_err_set(err, RETL_EXIT_DEST,
			     "airtable: base %s or table \"%s\" not found (404 %s)",
			     c->base_id, c->base.object, retl_buf_cstr(&m));
	retl_buf_free(&m);
	return -1;
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

/* the record with these fields is op k's (upsert: by merge values) */
static int merge_hit(const struct at_ctx *c, const json_t *mine, const json_t *fields)
{
	for (size_t m = 0; m < c->nmerge; m++) {
		json_t *a = json_array_get(mine, m);
		json_t *b = json_object_get(fields, c->merge[m]);
		if (!a || !b || !value_eq(a, b))
			return 0;
	}
	return 1;
}

static int record_hits(const struct at_ctx *c, const struct retl_request *r,
		       size_t k, size_t i, const char *id, const json_t *fields,
		       json_t *const *mine)
{
	switch (r->kind) {
	case AT_CREATE:
		return k == i;          /* creates answer in request order */
	case AT_UPSERT:
		return merge_hit(c, mine[k], fields);
	case AT_DELETE:
		return !strcmp(delete_id(r, k), id);
	default:
		return !strcmp(update_id(r, k), id);
	}
}

/* a lookup's answer: the record found is deleted next; none: gone already */
static enum retl_hd_verdict decode_find(struct retl_request *r)
{
	const struct retl_http_req *req = r->http;
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	const char *id = json_string_value(json_object_get(
		json_array_get(json_object_get(root, "records"), 0), "id"));
	if (id) {
		retl_req_set(r, 0, RETL_RES_RETRY, id, "found; not deleted yet");
		retl_req_again(r, 0, AT_DELETE);
	} else {
		retl_req_set(r, 0, RETL_RES_ACK, NULL, NULL);
	}
	json_decref(root);
	return RETL_HD_DONE;
}

static enum retl_hd_verdict decode_ok(struct at_ctx *c, struct retl_request *r)
{
	if (r->kind == AT_FIND)
		return decode_find(r);
	if (r->kind == AT_LOOKUP)
		return airtable_lookup_decode(c, r);
	const struct retl_http_req *req = r->http;
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	unsigned char *done = retl_calloc(r->n ? r->n : 1, 1);
	json_t **mine = retl_calloc(r->n ? r->n : 1, sizeof(*mine));
	size_t i, len;
	json_t *x;

	for (size_t k = 0; k < r->n && r->kind == AT_UPSERT; k++) {
		const char *mv = retl_req_id(r, k, &len);
		mine[k] = json_loadb(mv, len, 0, &je);
	}
	json_array_foreach(json_object_get(root, "records"), i, x) {
		const char *id = json_string_value(json_object_get(x, "id"));
		json_t *fields = json_object_get(x, "fields");
		for (size_t k = 0; id && k < r->n; k++) {
			if (done[k] || !record_hits(c, r, k, i, id, fields, mine))
				continue;
			done[k] = 1;
			retl_req_set(r, k, RETL_RES_ACK, r->kind == AT_DELETE ? NULL : id, NULL);
			break;
		}
	}
	for (size_t k = 0; k < r->n; k++) {
		json_decref(mine[k]);
		if (done[k])
			continue;
		char m[128];
		snprintf(m, sizeof(m),
			 "airtable: no result for this record in the response (HTTP %ld)",
			 req->status);
		retl_req_set(r, k, RETL_RES_RETRY, NULL, m);
	}
	free(mine);
	free(done);
	json_decref(root);
	return RETL_HD_DONE;
}

/* errors about the request as a whole, not one record's value */
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

/*
 * Update mode with a match: the record of a stored id was deleted in
 * Airtable, so the row's record is whatever its match finds now (looked up
 * in this run; the PATCH that follows stores the new id).  1 when re-sent.
 */
static int look_up_again(const struct at_ctx *c, struct retl_request *r)
{
	size_t n;
	const char *mv = retl_req_id(r, 0, &n);
	if (r->kind != AT_UPDATE || c->base.mode != RETL_MODE_UPDATE || r->n != 1 || c->by_id ||
	    !airtable_lookup_ok(c, mv, n) || retl_req_tries(r, 0) >= 4)
		return 0;
	retl_req_set(r, 0, RETL_RES_RETRY, NULL,
		     "airtable: the record was deleted in Airtable; looked up again by the match");
	retl_req_again(r, 0, AT_LOOKUP);
	return 1;
}

/* a 4xx that is not about the token, base or table */
static enum retl_hd_verdict decode_refused(const struct at_ctx *c, struct retl_request *r)
{
	long st = r->http->status;
	char type[64];
	enum retl_hd_verdict v = RETL_HD_DONE;
	retl_buf m = RETL_BUF_INIT, why = RETL_BUF_INIT;
	airtable_error_text(r->http, &m, type, sizeof(type));
	int gone = !strcmp(type, "ROW_DOES_NOT_EXIST") || !strcmp(type, "MODEL_ID_NOT_FOUND");
	if ((st == 413 || gone) && r->n > 1) {
		v = RETL_HD_SPLIT;      /* too large, or find the records that are gone */
	} else if (gone && r->kind == AT_DELETE) {
		retl_req_set_all(r, RETL_RES_ACK, NULL);        /* already deleted */
	} else if (gone && look_up_again(c, r)) {
		;
	} else if (gone && c->by_id) {
		retl_buf_addf(&why, "no record matches: table \"%s\" has no record %s (%s)",
			      c->base.object, update_id(r, 0), m.ptr);
		retl_req_set_all(r, RETL_RES_REJECT, why.ptr);
	} else if (gone) {
		retl_buf_addf(&why, "%s (the record was deleted in Airtable; `retl reset` the sync, or remove the key, to create it again)",
			      m.ptr);
		retl_req_set_all(r, RETL_RES_REJECT, why.ptr);
	} else if ((st == 422 || st == 400) && !whole_request_error(type) && r->n > 1) {
		/* one bad value fails the whole request: isolate it */
		v = RETL_HD_SPLIT;
	} else if (st == 422 || st == 400) {
		retl_req_set_all(r, RETL_RES_REJECT, m.ptr);
	} else {
		retl_buf_addf(&why, "HTTP %ld: %s", st, retl_buf_cstr(&m));
		retl_req_set_all(r, RETL_RES_REJECT, why.ptr);
	}
	retl_buf_free(&why);
	retl_buf_free(&m);
	return v;
}

static enum retl_hd_verdict at_decode(void *d, struct retl_request *r,
				      struct retl_err *err)
{
	struct at_ctx *c = d;
	long st = r->http->status;
	if (st >= 200 && st < 300)
		return decode_ok(c, r);
	if (airtable_auth_error(c, r->http, err) < 0)
		return RETL_HD_FATAL;
	return decode_refused(c, r);
}

/*
 * Airtable stops answering the base for `penalty` seconds after a 429: hold
 * every sync on the base (the shared limiter) until then, and send the
 * records again (a few times at most).
 */
static enum retl_hd_verdict at_transient(void *d, struct retl_request *r,
					 struct retl_err *err)
{
	struct at_ctx *c = d;
	char *why = retl_req_reason(r);
	/* keep the id a lookup found (an update's, a delete's): the request
	 * is sent again as it was */
	for (size_t k = 0; k < r->n; k++) {
		char *found = retl_req_result(r, k)->dest_id;
		retl_req_result(r, k)->dest_id = NULL;
		retl_req_set(r, k, RETL_RES_RETRY, found, why);
		free(found);
	}
	free(why);
	if (r->http->status != 429 || r->batch->fatal ||
	    retl_req_tries(r, 0) >= AT_MAX_429_RESENDS)
		return RETL_HD_DONE;
	double now = retl_rate_now();
	if (retl_rate_delay(c->rate, now) < c->penalty * 0.5)
		retl_log(RETL_LOG_INFO, c->base.sc->name,
			 "airtable: 429 from base %s: waiting %.0f s (Airtable's rate-limit penalty)",
			 c->base_id, c->penalty);
	retl_rate_pause(c->rate, now, c->penalty + 0.1);
	for (size_t k = 0; k < r->n; k++)
		retl_req_again(r, k, r->kind);
	return RETL_HD_DONE;
}

/* ---- open ---- */

/* Airtable's limit is per base, whatever the token: one limiter per base
 * (and API host, so an emulator never shares with the real one).  Its slack
 * is the limiter's own (200 ms for the 1 s window, see ratelimit.c): enough
 * for the jitter seen under load, so the 30 s penalty is not paid. */
static retl_ratelimit *rate_of(const struct retl_dest_cfg *dc, long rps)
{
	retl_buf key = RETL_BUF_INIT;
	retl_buf_addf(&key, "airtable:%s:%s", dc->base_url ? dc->base_url : AT_DEFAULT_API,
		      json_string_value(json_object_get(dc->options, "base")));
	retl_ratelimit *rate = retl_rate_shared(key.ptr, (int)rps, 1.0, 0);
	retl_buf_free(&key);
	return rate;
}

static void at_fini(void *d)
{
	struct at_ctx *c = d;
	free(c->merge);
	free(c->records_url);
}

static int open_fields(struct at_ctx *c, const struct retl_sync_cfg *sc,
		       struct retl_err *err)
{
	for (size_t i = 0; i < c->base.nf; i++)
		if (strchr(c->base.ftarget[i], '.'))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: Airtable fields are flat: a dotted target builds a nested object, which Airtable cannot take",
					    sc->file, c->base.ftarget[i]);
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
		if (retl_hd_field(&c->base, prop) < 0)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: match.%s: \"%s\" is not a mapped field; Airtable merges on its value in the payload: add \"%s\": \"%s\" to fields",
					    sc->file, prop, prop, prop,
					    json_is_string(col) ? json_string_value(col) : prop);
		c->merge[c->nmerge++] = prop;
	}
	/* {"id": column}: the record id itself (update mode only: upsert
	 * merges on fields, and "id" is none) */
	c->by_id = nm == 1 && !strcmp(c->merge[0], "id");
	if (c->by_id && sc->mode != RETL_MODE_UPDATE)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: match.id: a record id names the record only in mode \"update\"; mode \"%s\" merges on fields (fieldsToMergeOn)",
				    sc->file, retl_mode_name(sc->mode));
	return 0;
}

static int open_sync(const struct retl_sync_cfg *sc, struct retl_err *err)
{
	if (!sc->object || !sc->object[0])
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: object: missing; the airtable destination needs the table's id (tbl…, survives renames) or name",
				    sc->file);
	json_t *tc = sc->options ? json_object_get(sc->options, "typecast") : NULL;
	if (tc && !json_is_boolean(tc))
		return retl_err_set(err, RETL_EXIT_USAGE, "%s: typecast: expected true or false",
				    sc->file);
	return 0;
}

/* the table's URL, the sync's keys, the match fields */
static int at_setup(void *d, struct retl_err *err)
{
	struct at_ctx *c = d;
	const struct retl_sync_cfg *sc = c->base.sc;
	const struct retl_dest_cfg *dc = c->base.dc;
	long rps;
	c->base_id = json_string_value(json_object_get(dc->options, "base"));
	c->typecast = sc->options && json_is_true(json_object_get(sc->options, "typecast"));
	opt_posnum(dc, "rate_limit_penalty", 30, &c->penalty, err);
	retl_dest_opt_posint(dc, "requests_per_second", 5, &rps, err);
	c->rate = rate_of(dc, rps);
	retl_buf u = RETL_BUF_INIT;
	retl_buf_addf(&u, "%s/v0/%s/", c->base.url, c->base_id);
	retl_buf_add_url_escaped(&u, c->base.object);
	c->records_url = retl_buf_detach(&u);
	return open_fields(c, sc, err);
}

/* the token, and the limiter of the base */
static int at_options(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		      struct retl_hd_opts *o, struct retl_err *err)
{
	long rps;
	if (open_sync(sc, err) < 0)
		return -1;
	retl_dest_opt_posint(dc, "requests_per_second", 5, &rps, err);
	const char *token = json_string_value(json_object_get(dc->options, "token"));
	retl_buf a = RETL_BUF_INIT;
	retl_buf_addf(&a, "Authorization: Bearer %s", token);
	o->auth = retl_buf_detach(&a);
	o->http.rate = rate_of(dc, rps);
	/* a 429 comes back at once: at_transient holds the base */
	o->http.max_429 = 1;
	return 0;
}

static size_t at_per_request(void *d, int kind)
{
	return kind == AT_FIND ? 1 : AT_MAX_RECORDS;
}

static const struct retl_hd_ops at_ops = {
	.type = "airtable",
	.ctx_size = sizeof(struct at_ctx),
	.default_url = AT_DEFAULT_API,
	.max_ops = AT_MAX_RECORDS,
	.inflight = 4,
	.timeout = 60,
	.validate = at_validate,
	.options = at_options,
	.setup = at_setup,
	.prepare = at_prepare,
	.encode = at_encode,
	.decode = at_decode,
	.transient = at_transient,
	.ops_per_request = at_per_request,
	.fini = at_fini,
};

const struct retl_destination retl_dest_airtable = {
	.name = "airtable",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_UPDATE |
		 1u << RETL_MODE_INSERT | 1u << RETL_MODE_MIRROR,
	.removals = 1u << RETL_REMOVE_DELETE,
	.max_batch = AT_MAX_RECORDS,
	/* a merge matches a cell's text as it is (the emulator's reading of
	 * the docs, which say nothing of case): "A@x.io" is another record */
	.match_exact = 1,
	.conn_keys = at_conn_keys,
	.sync_keys = at_sync_keys,
	.validate = at_validate,
	.http = &at_ops,
	.check = airtable_check,
	.plan = airtable_plan,
	/* engine batches (one request each) queued at once; the limiter
	 * and the conn key max_inflight decide what is on the wire */
	.max_inflight = 8,
	RETL_HD_CALLBACKS,
};
