/*
 * airtable_match.c - update mode with a match: find the record a row
 * updates by its match fields, then PATCH it by id.  Never creates.
 *
 * A row whose record retl knows (its stored id) is PATCHed directly.  The
 * others are looked up first, up to 10 rows a request, with one formula:
 *
 *   POST /v0/{base}/{table}/listRecords
 *   {"filterByFormula": "OR(AND({Email}='a@x.com',{Plan}='Pro'),...)",
 *    "pageSize": 100, "fields": ["Email", "Plan"]}
 *
 * POST listRecords is Airtable's documented form of "List records" with the
 * parameters in the body (support article "URL length limitations for web
 * API requests": GET URLs are limited to 16,000 characters, and 10 rows of
 * long values can pass that).  Strings are formula literals in single
 * quotes with \ ' and control characters escaped by a backslash; numbers go
 * as numbers.  The answer is read again here, exactly (case and all: a
 * formula's = may be laxer than retl's match), and per row:
 *   one record       -> the row goes on to a PATCH by that id (AT_UPDATE,
 *                       10 a request); acknowledged with the id, which the
 *                       state store keeps, so the next run skips the lookup
 *   none             -> rejected "no record matches: ..."
 *   more than one    -> rejected "ambiguous match (N records): ..."
 * A row rejected so is retried every run (it may exist by then).
 *
 * Paging: an answer with an `offset` has more records than the page.  Its
 * 100 records all match some of the request's (at most 10) rows, so at
 * least one row has 10 or more and is ambiguous whatever the next pages
 * hold; such rows are settled, the others looked up again in a new request
 * without them.  Each round settles at least one row, so no offset needs
 * to be carried between requests.
 *
 * A stored id whose record was deleted in Airtable (ROW_DOES_NOT_EXIST on
 * the PATCH) is looked up again by the match in the same run: the row's
 * record is whatever matches now (airtable.c, decode_refused).
 *
 * `"match": {"id": "<column>"}` names the record by its id (a column that
 * holds Airtable's rec… ids, e.g. from a sync of the base into the
 * warehouse): no lookup, the PATCH goes to that id, and a record that does
 * not exist fails the row "no record matches".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airtable_int.h"
#include "buf.h"
#include "payload.h"

#define AT_PAGE 100
/* rounds of lookups for one row before it is left for the next run (each
 * round settles at least one row of at most 10: never reached by paging) */
#define AT_MAX_LOOKUPS 12

/* a formula string literal: 'v' with \, ' and control characters escaped */
static void add_text(retl_buf *o, const char *v, size_t n)
{
	retl_buf_addc(o, '\'');
	for (size_t i = 0; i < n; i++) {
		switch (v[i]) {
		case '\'': retl_buf_adds(o, "\\'"); break;
		case '\\': retl_buf_adds(o, "\\\\"); break;
		case '\n': retl_buf_adds(o, "\\n"); break;
		case '\r': retl_buf_adds(o, "\\r"); break;
		case '\t': retl_buf_adds(o, "\\t"); break;
		default: retl_buf_addc(o, v[i]);
		}
	}
	retl_buf_addc(o, '\'');
}

/* {Field name} with } and \ escaped */
static void add_field_ref(retl_buf *o, const char *name)
{
	retl_buf_addc(o, '{');
	for (const char *q = name; *q; q++) {
		if (*q == '}' || *q == '\\')
			retl_buf_addc(o, '\\');
		retl_buf_addc(o, *q);
	}
	retl_buf_addc(o, '}');
}

/* a match value the lookup can compare: a non-empty string or a number */
static int usable(const json_t *v)
{
	return (json_is_string(v) && json_string_length(v)) || json_is_number(v);
}

int airtable_lookup_ok(const struct at_ctx *c, const char *mv, size_t n)
{
	json_error_t je;
	json_t *a = json_loadb(mv, n, 0, &je);
	int ok = json_is_array(a) && json_array_size(a) == c->nmerge && c->nmerge;
	for (size_t m = 0; ok && m < c->nmerge; m++)
		ok = usable(json_array_get(a, m));
	json_decref(a);
	return ok;
}

/* one row's term: {F}=v, or AND() of them */
static void add_term(const struct at_ctx *c, const json_t *vals, retl_buf *o)
{
	if (c->nmerge > 1)
		retl_buf_adds(o, "AND(");
	for (size_t m = 0; m < c->nmerge; m++) {
		const json_t *v = json_array_get(vals, m);
		if (m)
			retl_buf_addc(o, ',');
		add_field_ref(o, c->merge[m]);
		retl_buf_addc(o, '=');
		if (json_is_string(v)) {
			add_text(o, json_string_value(v), json_string_length(v));
		} else {
			char *num = json_dumps(v, JSON_ENCODE_ANY);
			retl_buf_adds(o, num ? num : "0");
			free(num);
		}
	}
	if (c->nmerge > 1)
		retl_buf_addc(o, ')');
}

int airtable_lookup_encode(struct at_ctx *c, struct retl_request *r)
{
	struct retl_http_req *req = r->http;
	retl_buf f = RETL_BUF_INIT, url = RETL_BUF_INIT;
	json_error_t je;
	size_t len;

	retl_buf_adds(&f, "OR(");
	for (size_t k = 0; k < r->n; k++) {
		const char *mv = retl_req_id(r, k, &len);
		json_t *vals = json_loadb(mv, len, 0, &je);
		if (k)
			retl_buf_addc(&f, ',');
		add_term(c, vals, &f);
		json_decref(vals);
	}
	retl_buf_addc(&f, ')');
	retl_buf_addf(&url, "%s/listRecords", c->records_url);
	req->method = "POST";
	req->url = retl_buf_detach(&url);
	req->idempotent = 1;          /* a read */
	retl_buf_adds(&req->body, "{\"filterByFormula\":");
	retl_buf_add_json_str(&req->body, f.ptr, f.len);
	retl_buf_addf(&req->body, ",\"pageSize\":%d,\"fields\":[", AT_PAGE);
	for (size_t m = 0; m < c->nmerge; m++) {
		if (m)
			retl_buf_addc(&req->body, ',');
		retl_buf_add_json_str(&req->body, c->merge[m], strlen(c->merge[m]));
	}
	retl_buf_adds(&req->body, "]}");
	retl_buf_free(&f);
	return 0;
}

/* a record's value equals the row's, exactly: strings byte for byte,
 * numbers by value, a number against a text field by its JSON text */
static int same_value(const json_t *mine, const json_t *theirs)
{
	if (json_is_string(mine) && json_is_string(theirs))
		return json_string_length(mine) == json_string_length(theirs) &&
		       !memcmp(json_string_value(mine), json_string_value(theirs),
			       json_string_length(mine));
	if (json_is_number(mine) && json_is_number(theirs))
		return json_number_value(mine) == json_number_value(theirs);
	if (json_is_number(mine) && json_is_string(theirs)) {
		char *t = json_dumps(mine, JSON_ENCODE_ANY);
		int eq = t && !strcmp(t, json_string_value(theirs));
		free(t);
		return eq;
	}
	return 0;
}

static int record_matches(const struct at_ctx *c, const json_t *vals, const json_t *fields)
{
	for (size_t m = 0; m < c->nmerge; m++)
		if (!same_value(json_array_get(vals, m), json_object_get(fields, c->merge[m])))
			return 0;
	return 1;
}

/* Email = "a@x.com", Plan = "Pro" */
static void describe(const struct at_ctx *c, const json_t *vals, retl_buf *o)
{
	for (size_t m = 0; m < c->nmerge; m++) {
		char *v = json_dumps(json_array_get(vals, m), JSON_ENCODE_ANY);
		retl_buf_addf(o, "%s%s = %s", m ? ", " : "", c->merge[m], v ? v : "null");
		free(v);
	}
}

/* op k's verdict from the records that matched it (ids, n of them) */
static void settle_row(const struct at_ctx *c, struct retl_request *r, size_t k,
		       const json_t *vals, json_t *ids, int more)
{
	size_t n = json_array_size(ids);
	retl_buf why = RETL_BUF_INIT;
	if (n >= 2) {
		retl_buf_addf(&why, "ambiguous match (%zu%s records): ", n, more ? " or more" : "");
		describe(c, vals, &why);
		retl_buf_adds(&why, " in table \"");
		retl_buf_adds(&why, c->base.object);
		retl_buf_adds(&why, "\" (");
		for (size_t i = 0; i < n && i < 5; i++)
			retl_buf_addf(&why, "%s%s", i ? ", " : "",
				      json_string_value(json_array_get(ids, i)));
		retl_buf_adds(&why, n > 5 ? ", …)" : ")");
		retl_buf_adds(&why, "; update mode changes a record only when exactly one matches");
		retl_req_set(r, k, RETL_RES_REJECT, NULL, why.ptr);
	} else if (more && retl_req_tries(r, k) < AT_MAX_LOOKUPS) {
		retl_req_set(r, k, RETL_RES_RETRY, NULL, "airtable: looked up again (more pages)");
		retl_req_again(r, k, AT_LOOKUP);
	} else if (more) {
		retl_req_set(r, k, RETL_RES_RETRY, NULL,
			     "airtable: the lookup did not settle; tried again next run");
	} else if (n == 1) {
		retl_req_set(r, k, RETL_RES_RETRY, json_string_value(json_array_get(ids, 0)),
			     "airtable: found; not updated yet");
		retl_req_again(r, k, AT_UPDATE);
	} else {
		retl_buf_adds(&why, "no record matches: no record of table \"");
		retl_buf_adds(&why, c->base.object);
		retl_buf_adds(&why, "\" has ");
		describe(c, vals, &why);
		retl_buf_adds(&why, " (update mode never creates)");
		retl_req_set(r, k, RETL_RES_REJECT, NULL, why.ptr);
	}
	retl_buf_free(&why);
}

enum retl_hd_verdict airtable_lookup_decode(struct at_ctx *c, struct retl_request *r)
{
	const struct retl_http_req *req = r->http;
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	json_t *recs = json_object_get(root, "records");
	int more = json_is_string(json_object_get(root, "offset"));
	size_t i, len;
	json_t *x;

	if (!json_is_array(recs)) {
		retl_req_set_all(r, RETL_RES_RETRY,
				 "airtable: the lookup's answer has no \"records\"");
		json_decref(root);
		return RETL_HD_DONE;
	}
	for (size_t k = 0; k < r->n; k++) {
		const char *mv = retl_req_id(r, k, &len);
		json_t *vals = json_loadb(mv, len, 0, &je);
		json_t *ids = json_array();
		json_array_foreach(recs, i, x) {
			json_t *id = json_object_get(x, "id");
			if (json_is_string(id) &&
			    record_matches(c, vals, json_object_get(x, "fields")))
				json_array_append(ids, id);
		}
		settle_row(c, r, k, vals, ids, more);
		json_decref(ids);
		json_decref(vals);
	}
	json_decref(root);
	return RETL_HD_DONE;
}

void airtable_plan(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		   long ops, long *requests, long *jobs)
{
	long writes = (ops + 9) / 10;
	(void)dc;
	*jobs = 0;
	/* update with a match: a lookup before each PATCH request at most
	 * (rows whose record id retl keeps skip it) */
	int by_id = sc->match && json_object_size(sc->match) == 1 &&
		    json_object_get(sc->match, "id");
	*requests = sc->mode == RETL_MODE_UPDATE && sc->match && !by_id &&
		    json_object_size(sc->match) ? 2 * writes : writes;
}

/*
 * Match by record id ({"id": "<column>"}, update mode): the payload's "id"
 * member is the record to PATCH, not a field.  Its other members into
 * fields (an object), the id into rid; -1 with a reason when the id is not
 * an Airtable record id.
 */
int airtable_split_id(const char *payload, size_t len, retl_buf *fields,
		      retl_buf *rid, retl_buf *reason)
{
	struct retl_preader r;
	struct retl_pfield f;
	int rc, n = 0;
	if (retl_payload_open(&r, payload, len) < 0)
		return -1;
	retl_buf_addc(fields, '{');
	while ((rc = retl_payload_next(&r, &f)) > 0) {
		if (retl_pfield_is(&f, "id")) {
			if (f.v.kind == RETL_PV_STRING)
				retl_pv_string(&f.v, rid);
			continue;
		}
		retl_buf_adds(fields, n++ ? ",\"" : "\"");
		retl_buf_add(fields, f.name, f.name_len);
		retl_buf_adds(fields, "\":");
		retl_buf_add(fields, f.v.raw, f.v.len);
	}
	retl_buf_addc(fields, '}');
	if (rc < 0)
		return -1;
	if (rid->len < 4 || strncmp(rid->ptr, "rec", 3)) {
		retl_buf_addf(reason, "id: \"%s\" is not an Airtable record id (rec…); match {\"id\": …} updates the record of that id",
			      rid->len ? rid->ptr : "");
		return -1;
	}
	return 0;
}
