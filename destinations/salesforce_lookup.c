/*
 * salesforce_lookup.c - update-only by any field (README "Salesforce",
 * "Update-only"): mode "update" with match {"Email": "email"} finds the
 * records that already exist by a SOQL query, then updates them by Id.
 * Nothing is ever created.
 *
 *   GET /services/data/vNN.0/query?q=SELECT Id, Email FROM Contact
 *                                    WHERE Email IN ('a@x.com','b@x.com')
 *
 * Each run looks every row up again (the Id a previous run found is not
 * trusted: the record may have been deleted, merged or re-keyed since), at
 * most SF_LOOKUP_VALUES values a query and a query string of at most
 * SF_QUERY_MAX bytes once URL-encoded (Salesforce's REST URI limit is 16,384
 * bytes; a SOQL statement may be 100,000 characters, so the URI is what
 * binds).  A query's answer holds up to 2,000 records; nextRecordsUrl is
 * followed for the rest.  Text comparisons in SOQL ignore case, so answers
 * are matched to rows with ASCII case ignored.
 *
 * No record: the row fails "no record matches"; more than one: "ambiguous
 * match (N records)"; both are retried every run (`retl failures`).  A
 * query Salesforce refuses (MALFORMED_QUERY, INVALID_FIELD) fails the rows
 * it was for with Salesforce's words; one that got no answer leaves them
 * for the next run.
 *
 * SOQL string literals (SOQL and SOSL Reference, "Quoted String Escape
 * Sequences"): in single quotes, with \n \r \t \b \f \" \' \\ escaped.
 * Numbers, booleans, dates and datetimes are unquoted literals; which the
 * field holds comes from one describe at open.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "payload.h"
#include "salesforce_int.h"

void sf_soql_quote(const char *s, size_t n, retl_buf *out)
{
	retl_buf_addc(out, '\'');
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '\n': retl_buf_adds(out, "\\n"); break;
		case '\r': retl_buf_adds(out, "\\r"); break;
		case '\t': retl_buf_adds(out, "\\t"); break;
		case '\b': retl_buf_adds(out, "\\b"); break;
		case '\f': retl_buf_adds(out, "\\f"); break;
		case '"': retl_buf_adds(out, "\\\""); break;
		case '\'': retl_buf_adds(out, "\\'"); break;
		case '\\': retl_buf_adds(out, "\\\\"); break;
		default: retl_buf_addc(out, s[i]);
		}
	}
	retl_buf_addc(out, '\'');
}

/* the field's type (from the describe at open) decides the literal's form */
int sf_soql_quoted(const json_t *fields, const char *name)
{
	const json_t *f = retl_dest_find(fields, "name", name, 1);
	const char *t = json_string_value(json_object_get(f, "type"));
	static const char *const bare[] = {
		"double", "currency", "int", "percent", "long", "boolean",
		"date", "datetime", "time", NULL
	};
	for (const char *const *b = bare; t && *b; b++)
		if (!strcmp(t, *b))
			return 0;
	return 1;
}

void sf_lookup_type(struct sf_ctx *c, const json_t *fields)
{
	c->lookup_quoted = sf_soql_quoted(fields, c->lookup);
}

int sf_member_text(const struct retl_op *op, const char *member, retl_buf *v)
{
	struct retl_pv pv;
	retl_buf_reset(v);
	if (retl_payload_get(op->payload, op->payload_len, member, &pv) <= 0 ||
	    pv.kind == RETL_PV_NULL)
		return 0;
	if (pv.kind == RETL_PV_STRING)
		retl_pv_string(&pv, v);
	else
		retl_buf_add(v, pv.raw, pv.len);
	return v->len > 0;
}

void sf_soql_norm(int quoted, const char *s, size_t n, retl_buf *out)
{
	retl_buf_reset(out);
	if (!quoted) {
		char *end, tmp[64];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(n < 63 ? n : 63), s);
		double d = strtod(tmp, &end);
		if (end != tmp && !*end) {
			retl_buf_addf(out, "%.17g", d);
			return;
		}
	}
	for (size_t i = 0; i < n; i++)
		retl_buf_addc(out, (char)tolower((unsigned char)s[i]));
}

void sf_soql_text(const json_t *v, retl_buf *out)
{
	retl_buf_reset(out);
	if (json_is_string(v))
		retl_buf_adds(out, json_string_value(v));
	else if (json_is_number(v))
		retl_buf_addf(out, "%.17g", json_number_value(v));
	else if (json_is_boolean(v))
		retl_buf_adds(out, json_is_true(v) ? "true" : "false");
}

static int report(struct sf_ctx *c, const struct retl_op *op, enum retl_result_kind k,
		  const char *why)
{
	struct retl_result r = { .kind = k, .reason = (char *)why };
	return c->base.env.report(c->base.env.ud, op->key, &r);
}

/* one answer's records appended to recs; the next page's path into next
 * (empty at the end); -1 if not an answer */
static int take_page(const struct retl_http_req *req, json_t *recs, retl_buf *next)
{
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	json_t *got = json_object_get(root, "records");
	retl_buf_reset(next);
	if (!json_is_array(got)) {
		json_decref(root);
		return -1;
	}
	json_array_extend(recs, got);
	const char *nu = json_string_value(json_object_get(root, "nextRecordsUrl"));
	if (nu && !json_is_true(json_object_get(root, "done")))
		retl_buf_adds(next, nu);
	json_decref(root);
	return 0;
}

int sf_soql_in(struct sf_ctx *c, const char *select, const char *field, int quoted,
	       const retl_buf *vals, size_t n, json_t *recs, char **why,
	       struct retl_err *err)
{
	retl_buf soql = RETL_BUF_INIT, path = RETL_BUF_INIT;
	int rc = 1;
	*why = NULL;
	retl_buf_addf(&soql, "SELECT %s FROM %s WHERE %s IN (", select,
		      c->base.object, field);
	for (size_t i = 0; i < n; i++) {
		if (i)
			retl_buf_addc(&soql, ',');
		if (quoted)
			sf_soql_quote(vals[i].ptr, vals[i].len, &soql);
		else
			retl_buf_add(&soql, vals[i].ptr, vals[i].len);
	}
	retl_buf_addc(&soql, ')');
	retl_buf_addf(&path, "/services/data/v%s/query?q=", c->version);
	retl_buf_add_url_escaped(&path, soql.ptr);
	while (rc == 1 && path.len) {
		if (sf_budget_stop(c, err) < 0) {
			rc = -1;
			break;
		}
		struct retl_http_req *req = sf_call(c, "GET", path.ptr, NULL, NULL, 0);
		if (sf_fatal_answer(c, req, err) < 0)
			rc = -1;
		else if (req->status >= 400 && req->status < 500)
			(*why = sf_error_text(req)), rc = 0;
		else if (req->status != 200 || take_page(req, recs, &path) < 0)
			rc = 0;                 /* no answer: retried next run */
		retl_http_req_free(req);
	}
	retl_buf_free(&soql);
	retl_buf_free(&path);
	return rc;
}

/* the look-up's answers by norm(value): -> [Id, ...] */
static void group(struct sf_ctx *c, const json_t *recs, json_t *found)
{
	retl_buf k = RETL_BUF_INIT, v = RETL_BUF_INIT;
	size_t i;
	json_t *x;
	json_array_foreach(recs, i, x) {
		const char *id = json_string_value(json_object_get(x, "Id"));
		sf_soql_text(json_object_get(x, c->lookup), &v);
		if (!id || !v.len)
			continue;
		sf_soql_norm(c->lookup_quoted, v.ptr, v.len, &k);
		json_t *ids = json_object_get(found, k.ptr);
		if (!ids)
			json_object_set_new(found, k.ptr, ids = json_array());
		json_array_append_new(ids, json_string(id));
	}
	retl_buf_free(&k);
	retl_buf_free(&v);
}

size_t sf_soql_cost(int quoted, const retl_buf *v)
{
	retl_buf q = RETL_BUF_INIT, e = RETL_BUF_INIT;
	if (quoted)
		sf_soql_quote(v->ptr, v->len, &q);
	else
		retl_buf_add(&q, v->ptr, v->len);
	retl_buf_add_url_escaped(&e, q.ptr ? q.ptr : "");
	size_t n = e.len + 3;
	retl_buf_free(&q);
	retl_buf_free(&e);
	return n;
}

/* rows [0..n) with their values: looked up, each reported or written to
 * out with the Id found */
static int resolve(struct sf_ctx *c, struct retl_op *ops, retl_buf *vals,
		   const int *has, size_t n, FILE *out, long *nout,
		   struct retl_err *err)
{
	json_t *found = json_object();
	retl_buf *q = retl_calloc(n ? n : 1, sizeof(*q)), k = RETL_BUF_INIT;
	size_t nq = 0;
	char *why = NULL;
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		if (has[i])
			q[nq++] = vals[i];      /* borrowed */
	retl_buf sel = RETL_BUF_INIT;
	json_t *recs = json_array();
	retl_buf_addf(&sel, "Id, %s", c->lookup);
	int got = nq ? sf_soql_in(c, sel.ptr, c->lookup, c->lookup_quoted, q, nq, recs,
				  &why, err) : 1;
	group(c, recs, found);
	json_decref(recs);
	retl_buf_free(&sel);
	if (got < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		retl_buf msg = RETL_BUF_INIT;
		if (!has[i]) {
			retl_buf_addf(&msg, "salesforce: no record matches: the row has no %s value",
				      c->lookup);
			rc = report(c, &ops[i], RETL_RES_REJECT, msg.ptr);
		} else if (got == 0) {
			retl_buf_addf(&msg, "salesforce: looking up %s by %s: %s", c->base.object,
				      c->lookup, why ? why : "no answer; looked up again next run");
			rc = report(c, &ops[i], why ? RETL_RES_REJECT : RETL_RES_RETRY, msg.ptr);
		} else {
			sf_soql_norm(c->lookup_quoted, vals[i].ptr, vals[i].len, &k);
			json_t *ids = json_object_get(found, k.ptr);
			size_t m = json_array_size(ids);
			if (m == 1) {
				struct retl_op one = ops[i];
				one.dest_id = json_string_value(json_array_get(ids, 0));
				if (sf_spool_put(out, &one) < 0)
					rc = retl_err_set(err, RETL_EXIT_DEST,
							  "salesforce: cannot write the looked-up rows' spool");
				(*nout)++;
			} else {
				if (m)
					retl_buf_addf(&msg, "salesforce: ambiguous match (%zu records): %s.%s = \"%s\" matches",
						      m, c->base.object, c->lookup, vals[i].ptr);
				else
					retl_buf_addf(&msg, "salesforce: no record matches: no %s has %s = \"%s\"",
						      c->base.object, c->lookup, vals[i].ptr);
				for (size_t j = 0; j < m && j < 5; j++)
					retl_buf_addf(&msg, " %s", json_string_value(json_array_get(ids, j)));
				rc = report(c, &ops[i], RETL_RES_REJECT, msg.ptr);
			}
		}
		retl_buf_free(&msg);
	}
	free(why);
	free(q);
	retl_buf_free(&k);
	json_decref(found);
	return rc;
}

int sf_lookup_run(struct sf_ctx *c, FILE *in, FILE *out, long *nout,
		  struct retl_err *err)
{
	struct retl_op ops[SF_LOOKUP_VALUES];
	retl_buf bufs[SF_LOOKUP_VALUES], vals[SF_LOOKUP_VALUES];
	int has[SF_LOOKUP_VALUES];
	int rc = 0, got = 1;
	memset(bufs, 0, sizeof(bufs));
	memset(vals, 0, sizeof(vals));
	*nout = 0;
	while (rc == 0 && got > 0) {
		size_t n = 0;
		while (n < SF_LOOKUP_VALUES && (got = sf_spool_get(in, &bufs[n], &ops[n])) > 0) {
			has[n] = sf_member_text(&ops[n], c->lookup, &vals[n]);
			n++;
		}
		/* one query per run of rows whose values fit its URI */
		for (size_t i = 0; rc == 0 && i < n; ) {
			size_t e = i, size = 200;
			for (; e < n; e++) {
				size_t add = has[e] ? sf_soql_cost(c->lookup_quoted, &vals[e]) : 0;
				if (e > i && size + add > SF_QUERY_MAX)
					break;
				size += add;
			}
			rc = resolve(c, ops + i, vals + i, has + i, e - i, out, nout, err);
			i = e;
		}
	}
	if (rc == 0 && got < 0)
		rc = -2;                        /* damage: the caller says where */
	for (size_t i = 0; i < SF_LOOKUP_VALUES; i++) {
		retl_buf_free(&bufs[i]);
		retl_buf_free(&vals[i]);
	}
	return rc;
}
