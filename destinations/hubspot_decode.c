/*
 * hubspot_decode.c - HubSpot's answers to batch requests, into per-op
 * results.
 *
 * Answers are mapped back to ops by the idProperty value in each result's
 * properties (HubSpot lowercases emails: compared without case), by the
 * stored id (update by id, archive) or by objectWriteTraceId (create),
 * never by position.  A 400 that blames inputs (names them, or calls one's
 * value invalid) or a 409 is split in halves until those inputs stand
 * alone; any other 400 (an unknown property, a malformed body) is about the
 * request as a whole and fails every op at once, with HubSpot's message.
 * A 429 for the daily limit stops the run (hubspot_transient).  A lookup
 * (batch/read) sends what it did not find on to batch/create; a create
 * that meets an existing record (409 CONFLICT) is looked up instead; a
 * lookup for a removal (HS_FIND) archives what it found, and what it did
 * not find is gone already.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "hubspot_int.h"
#include "payload.h"

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* the scopes a 403 MISSING_SCOPES names, ", "-joined, into sc */
static void missing_scopes(const json_t *root, retl_buf *sc)
{
	/* the scopes sit in errors[].context.requiredGranularScopes (or
	 * requiredScopes / missingScopes), or in the top-level context */
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
				if (json_is_string(x) && !strstr(retl_buf_cstr(sc), json_string_value(x)))
					retl_buf_addf(sc, "%s%s", sc->len ? ", " : "", json_string_value(x));
			}
		}
	}
}

/* "401 INVALID_AUTHENTICATION" / missing scopes: code 4; else 0 */
int hubspot_auth_error(const struct retl_http_req *req, struct retl_err *err)
{
	if (req->status != 401 && req->status != 403)
		return 0;
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	const char *cat = jstr(root, "category");
	int rc = -1;
	if (req->status == 401) {
		retl_err_set(err, RETL_EXIT_DEST,
			     "hubspot: token invalid or expired (401 %s)",
			     cat ? cat : "INVALID_AUTHENTICATION");
	} else if (!cat || strcmp(cat, "MISSING_SCOPES")) {
		rc = 0;
	} else {
		retl_buf sc = RETL_BUF_INIT;
		missing_scopes(root, &sc);
		retl_err_set(err, RETL_EXIT_DEST,
			     "hubspot: the token lacks the scope%s %s (403 MISSING_SCOPES); add %s to the private app",
			     strchr(retl_buf_cstr(&sc), ',') ? "s" : "",
			     sc.len ? sc.ptr : "(not named by HubSpot)",
			     sc.len && strchr(sc.ptr, ',') ? "them" : "it");
		retl_buf_free(&sc);
	}
	json_decref(root);
	return rc;
}

/*
 * The list HubSpot writes into the message of a validation error ("Property
 * values were not valid: [{\"error\":\"INVALID_EMAIL\",…}]"), parsed; NULL
 * when the message holds none.  Some answers carry only this, no errors[].
 */
static json_t *message_list(const json_t *root)
{
	const char *msg = jstr(root, "message");
	const char *lb = msg ? strchr(msg, '[') : NULL;
	json_error_t je;
	json_t *l = lb ? json_loads(lb, JSON_DISABLE_EOF_CHECK, &je) : NULL;
	if (l && !json_is_array(l)) {
		json_decref(l);
		l = NULL;
	}
	return l;
}

/* "<code>: <message>" of a 4xx body, every sub-error joined */
static void error_reason(const json_t *root, const struct retl_request *r,
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
	json_t *l = message_list(root);
	json_array_foreach(l, i, x) {
		const char *code = jstr(x, "error");
		const char *msg = jstr(x, "message");
		if (msg)
			retl_buf_addf(out, "%s%s%s%s", out->len ? "; " : "",
				      code ? code : "", code ? ": " : "", msg);
	}
	json_decref(l);
	if (out->len)
		return;
	const char *msg = jstr(root, "message");
	const char *cat = jstr(root, "category");
	if (msg) {
		retl_buf_addf(out, "%s%s%s", cat ? cat : "", cat ? ": " : "", msg);
		return;
	}
	char *why = retl_req_reason(r);
	retl_buf_adds(out, why ? why : "no error message");
	free(why);
}

/* a code HubSpot gives one input's value (INVALID_EMAIL, INVALID_OPTION,
 * INVALID_INTEGER, INVALID_DATE, …): that input is to blame */
static int value_code(const char *code)
{
	return code && !strncmp(code, "INVALID_", 8) && strcmp(code, "INVALID_ID_PROPERTY");
}

/* does an error's context name inputs (ids, objectWriteTraceId)? */
static int names_inputs(const json_t *x)
{
	json_t *ctx = json_object_get(x, "context");
	json_t *ids = json_object_get(ctx, "ids");
	json_t *tr = json_object_get(ctx, "objectWriteTraceId");
	return json_array_size(ids) > 0 || json_array_size(tr) > 0 || json_is_string(tr);
}

/*
 * Does a 400 blame some of the request's inputs?  Only then is splitting in
 * halves worth its requests: an error names inputs (context ids, trace ids,
 * e.g. "Duplicate IDs found in batch input"), or says a value one input sent
 * is invalid.  Everything else -- a property that does not exist or is
 * read-only (every input carries it), a bad idProperty, a malformed body, an
 * answer with no code at all -- is about the request as a whole: halving
 * would only repeat it down to single records (599 requests for 300 rows).
 */
static int blames_inputs(const json_t *root)
{
	json_t *errs = json_object_get(root, "errors");
	size_t i;
	json_t *x;
	int blame = names_inputs(root);
	json_array_foreach(errs, i, x) {
		if (names_inputs(x) || value_code(jstr(x, "code")))
			blame = 1;
	}
	if (!blame && !json_array_size(errs)) {
		json_t *l = message_list(root);
		json_array_foreach(l, i, x)
			if (value_code(jstr(x, "error")))
				blame = 1;
		json_decref(l);
	}
	return blame;
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

/* does op k's match value equal `id` (n bytes; emails without case)? */
static int match_eq(const struct hs_ctx *c, const struct retl_request *r,
		    size_t k, const char *id, size_t n)
{
	size_t mine_n;
	const char *mine = retl_req_id(r, k, &mine_n);
	if (!mine_n || !id || mine_n != n)
		return 0;
	return c->id_ci ? !strncasecmp(mine, id, n) : !memcmp(mine, id, n);
}

/* does op k of the request carry identifier `id` (as the request sent
 * it)?  n: strlen(id), taken once by the caller (this runs for every op
 * against every result) */
static int op_has(const struct hs_ctx *c, const struct retl_request *r,
		  size_t k, const char *id, size_t n)
{
	if (!id)
		return 0;
	if (r->kind == HS_CREATE) {
		char t[32];
		snprintf(t, sizeof(t), "%zu", r->idx[k]);
		return !strcmp(t, id);
	}
	if (r->kind == HS_ARCHIVE)
		return !strcmp(hubspot_archive_id(r, k), id);
	if (r->kind == HS_UPDATE && hubspot_update_id(c, r, k))
		return !strcmp(hubspot_update_id(c, r, k), id);
	return match_eq(c, r, k, id, n);
}

/* an op the answer says nothing about */
static void unanswered(struct retl_request *r, size_t k, const char *unmapped)
{
	if (r->kind == HS_READ) {
		/* not in the results: HubSpot has no such record */
		retl_req_set(r, k, RETL_RES_RETRY, NULL, "not found");
		retl_req_again(r, k, HS_CREATE);
	} else if (r->kind == HS_ARCHIVE || r->kind == HS_FIND) {
		/* archived, or not found: gone already */
		retl_req_set(r, k, RETL_RES_ACK, NULL, NULL);
	} else if (unmapped) {
		retl_req_set(r, k, RETL_RES_REJECT, NULL, unmapped);
	} else {
		char m[96];
		snprintf(m, sizeof(m),
			 "hubspot: no result for this record in the response (HTTP %ld)",
			 r->http->status);
		retl_req_set(r, k, RETL_RES_RETRY, NULL, m);
	}
}

/* what one result says: its id, objectWriteTraceId and idProperty value
 * (each NULL when absent or not a string; an integer id as text) */
struct hs_said {
	const char *id, *trace, *pv;
	size_t trace_len, pv_len;
};

/* does the result answer op k? */
static int result_hits(const struct hs_ctx *c, const struct retl_request *r,
		       size_t k, const struct hs_said *x)
{
	if (r->kind == HS_CREATE && x->trace)
		return op_has(c, r, k, x->trace, x->trace_len);
	if (r->kind == HS_UPDATE && hubspot_update_id(c, r, k))
		return x->id && !strcmp(hubspot_update_id(c, r, k), x->id);
	if (r->kind == HS_CREATE)
		return match_eq(c, r, k, x->pv, x->pv_len);
	if (r->kind == HS_ARCHIVE)
		return x->id && !strcmp(hubspot_archive_id(r, k), x->id);
	return op_has(c, r, k, x->pv, x->pv_len);
}

/*
 * A result is compared with every op not done yet (one result may answer
 * two ops), 100 x 100 string compares a batch.  Where the request's kind
 * matches by the idProperty value alone (upsert, read, find), each op's
 * value is hashed once, folded to lower case where it is compared without
 * case: equal values hash alike, so an op whose hash differs cannot match
 * and is passed over without the compare.
 */
static uint32_t fold_hash(const char *s, size_t n, int ci)
{
	uint32_t h = 2166136261u;       /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		h = (h ^ (unsigned char)(ci ? tolower(ch) : ch)) * 16777619u;
	}
	return h;
}

/* per op, the hash of its match value; NULL when the kind matches by more */
static uint32_t *match_hashes(const struct hs_ctx *c, const struct retl_request *r)
{
	if (r->kind != HS_UPSERT && r->kind != HS_READ && r->kind != HS_FIND)
		return NULL;
	uint32_t *h = retl_calloc(r->n ? r->n : 1, sizeof(*h));
	for (size_t k = 0; k < r->n; k++) {
		size_t n;
		const char *id = retl_req_id(r, k, &n);
		h[k] = fold_hash(id, n, c->id_ci);
	}
	return h;
}

/* one result: every op it answers that is not done yet */
static void take_result(const struct hs_ctx *c, struct retl_request *r,
			struct hs_said *x, unsigned char *done, const uint32_t *hash)
{
	x->trace_len = x->trace ? strlen(x->trace) : 0;
	x->pv_len = x->pv ? strlen(x->pv) : 0;
	uint32_t h = hash && x->pv ? fold_hash(x->pv, x->pv_len, c->id_ci) : 0;
	if (hash && !x->pv)
		return;                 /* nothing to match by */
	for (size_t k = 0; k < r->n; k++) {
		if (done[k] || (hash && hash[k] != h) || !result_hits(c, r, k, x))
			continue;
		done[k] = 1;
		if (r->kind == HS_FIND && x->id) {
			/* found: archived next; not done until then */
			retl_req_set(r, k, RETL_RES_RETRY, x->id, "found; not archived yet");
			retl_req_again(r, k, HS_ARCHIVE);
			continue;
		}
		retl_req_set(r, k, RETL_RES_ACK, r->kind == HS_ARCHIVE ? NULL : x->id, NULL);
	}
}

static void take_results(const struct hs_ctx *c, struct retl_request *r,
			 const json_t *root, unsigned char *done)
{
	uint32_t *hash = match_hashes(c, r);
	char tmp[32];
	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(root, "results"), i, x) {
		struct hs_said said = {
			.id = json_id(json_object_get(x, "id"), tmp, sizeof(tmp)),
			.trace = jstr(x, "objectWriteTraceId"),
			.pv = c->id_prop ?
				jstr(json_object_get(x, "properties"), c->id_prop) : NULL,
		};
		take_result(c, r, &said, done, hash);
	}
	free(hash);
}

/*
 * The same results read without a tree (payload.h's reader), for an answer
 * retl_json_doc vouches jansson would read alike: parsing HubSpot's answers
 * into jansson trees (every property of every record, each value a
 * malloc) was a third of the HubSpot path's CPU, and retl reads three
 * strings of each result.  Members are taken as jansson's object would
 * hold them (the last of a repeated name wins).
 */

/* a string value decoded into b (NULL if v is not a string); an integer as
 * its decimal text, as json_id writes it */
static const char *said_str(const struct retl_pv *v, int num, retl_buf *b)
{
	retl_buf_reset(b);
	if (v->kind == RETL_PV_STRING && retl_pv_string(v, b) == 0)
		return retl_buf_cstr(b);
	if (num && v->kind == RETL_PV_NUMBER) {
		/* retl_json_doc: an integer of at most 18 digits */
		char t[24];
		memcpy(t, v->raw, v->len);
		t[v->len] = '\0';
		retl_buf_addf(b, "%lld", strtoll(t, NULL, 10));
		return b->ptr;
	}
	return NULL;
}

/* the idProperty's value in a result's properties object */
static const char *said_pv(const struct hs_ctx *c, const struct retl_pv *props, retl_buf *b)
{
	struct retl_preader rd;
	struct retl_pfield f;
	struct retl_pv v = { .kind = RETL_PV_NULL };
	if (!c->id_prop || retl_pv_open(&rd, props) < 0 || props->kind != RETL_PV_OBJECT)
		return NULL;
	while (retl_payload_next(&rd, &f) > 0)
		if (retl_pfield_is(&f, c->id_prop))
			v = f.v;
	return said_str(&v, 0, b);
}

static void plain_result(const struct hs_ctx *c, struct retl_request *r,
			 const struct retl_pv *item, unsigned char *done,
			 const uint32_t *hash, retl_buf b[3])
{
	struct retl_preader rd;
	struct retl_pfield f;
	struct retl_pv id = { .kind = RETL_PV_NULL }, tr = id, props = id;
	struct hs_said said = { .id = NULL };
	if (item->kind == RETL_PV_OBJECT && retl_pv_open(&rd, item) == 0) {
		while (retl_payload_next(&rd, &f) > 0) {
			if (retl_pfield_is(&f, "id"))
				id = f.v;
			else if (retl_pfield_is(&f, "objectWriteTraceId"))
				tr = f.v;
			else if (retl_pfield_is(&f, "properties"))
				props = f.v;
		}
		said.id = said_str(&id, 1, &b[0]);
		said.trace = said_str(&tr, 0, &b[1]);
		said.pv = said_pv(c, &props, &b[2]);
	}
	take_result(c, r, &said, done, hash);
}

/* a 2xx answer with no errors[], read by plain_result: 1 done, 0 when
 * the answer is for jansson (not vouched for, or it has errors[]) */
int hubspot_plain_answers = 1;

static int plain_answer(const struct hs_ctx *c, struct retl_request *r)
{
	const struct retl_http_req *req = r->http;
	struct retl_pv top, results = { .kind = RETL_PV_NULL }, item;
	struct retl_preader rd, ri;
	struct retl_pfield f;
	if (!hubspot_plain_answers || !req->resp.len || !retl_json_doc(req->resp.ptr, req->resp.len, &top) ||
	    retl_pv_open(&rd, &top) < 0)
		return 0;
	while (retl_payload_next(&rd, &f) > 0) {
		if (retl_pfield_is(&f, "errors"))
			return 0;
		if (retl_pfield_is(&f, "results"))
			results = f.v;
	}
	unsigned char *done = retl_calloc(r->n ? r->n : 1, 1);
	uint32_t *hash = match_hashes(c, r);
	retl_buf b[3] = { RETL_BUF_INIT, RETL_BUF_INIT, RETL_BUF_INIT };
	if (results.kind == RETL_PV_ARRAY && retl_pv_open(&ri, &results) == 0)
		while (retl_payload_item(&ri, &item) > 0)
			plain_result(c, r, &item, done, hash, b);
	for (size_t k = 0; k < r->n; k++)
		if (!done[k])
			unanswered(r, k, NULL);
	for (int i = 0; i < 3; i++)
		retl_buf_free(&b[i]);
	free(hash);
	free(done);
	return 1;
}

/* the ops one error names (context.ids / objectWriteTraceId) */
static int take_error(const struct hs_ctx *c, struct retl_request *r,
		      const json_t *x, unsigned char *done, const char *why)
{
	const char *cat = jstr(x, "category");
	int gone = cat && !strcmp(cat, "OBJECT_NOT_FOUND");
	json_t *ctx = json_object_get(x, "context");
	int mapped = 0;
	char tmp[32];
	size_t j;
	json_t *v;
	for (int pass = 0; pass < 2; pass++) {
		json_t *arr = json_object_get(ctx, pass ? "objectWriteTraceId" : "ids");
		json_t *one = NULL;
		if (json_is_string(arr))
			arr = one = json_pack("[O]", arr);
		json_array_foreach(arr, j, v) {
			const char *id = json_id(v, tmp, sizeof(tmp));
			size_t n = id ? strlen(id) : 0;
			for (size_t k = 0; k < r->n; k++) {
				if (done[k] || !op_has(c, r, k, id, n))
					continue;
				done[k] = mapped = 1;
				if (gone && (r->kind == HS_ARCHIVE || r->kind == HS_FIND))
					retl_req_set(r, k, RETL_RES_ACK, NULL, NULL);
				else if (gone && r->kind == HS_UPDATE)
					hubspot_update_missing(c, r, k, why);
				else if (r->kind == HS_READ)
					retl_req_set(r, k, RETL_RES_RETRY, NULL, why);
				else
					retl_req_set(r, k, RETL_RES_REJECT, NULL, why);
				if (gone && r->kind == HS_READ)
					retl_req_again(r, k, HS_CREATE);
			}
		}
		json_decref(one);
	}
	return mapped;
}

static enum retl_hd_verdict decode_ok(const struct hs_ctx *c, struct retl_request *r)
{
	const struct retl_http_req *req = r->http;
	if (plain_answer(c, r))
		return RETL_HD_DONE;
	json_error_t je;
	json_t *root = req->resp.len ?
		json_loadb(req->resp.ptr, req->resp.len, 0, &je) : NULL;
	unsigned char *done = retl_calloc(r->n ? r->n : 1, 1);
	char *unmapped = NULL;
	size_t i;
	json_t *x;

	if (r->kind == HS_ARCHIVE && !root) {
		/* 204: every id archived */
		retl_req_set_all(r, RETL_RES_ACK, NULL);
		free(done);
		return RETL_HD_DONE;
	}
	take_results(c, r, root, done);
	json_array_foreach(json_object_get(root, "errors"), i, x) {
		const char *cat = jstr(x, "category");
		const char *msg = jstr(x, "message");
		retl_buf why = RETL_BUF_INIT;
		retl_buf_addf(&why, "%s: %s", cat ? cat : "ERROR", msg ? msg : "(no message)");
		if (!take_error(c, r, x, done, why.ptr) && !unmapped)
			unmapped = retl_buf_detach(&why);
		retl_buf_free(&why);
	}
	for (size_t k = 0; k < r->n; k++)
		if (!done[k])
			unanswered(r, k, unmapped);
	free(unmapped);
	free(done);
	json_decref(root);
	return RETL_HD_DONE;
}

/*
 * 409 CONFLICT on a create: a record already holds the match property's
 * value (e.g. "Contact already exists. Existing ID: 1587") -- typically
 * our own create whose answer was lost.  Insert mode creates only what is
 * not there, so an existing record counts as found: one op takes the
 * existing id; a larger request is looked up with batch/read (once: creates
 * after a lookup fall back to splitting).
 */
static int conflict(const struct hs_ctx *c, struct retl_request *r,
		    const json_t *root)
{
	const char *cat = jstr(root, "category");
	const char *msg = jstr(root, "message");
	const char *ex = msg ? strstr(msg, "Existing ID: ") : NULL;
	if (!cat || strcmp(cat, "CONFLICT") || !c->id_prop)
		return 0;
	if (r->n == 1 && ex) {
		char id[32];
		size_t n = strspn(ex + 13, "0123456789");
		if (!n || n >= sizeof(id))
			return 0;
		memcpy(id, ex + 13, n);
		id[n] = '\0';
		retl_req_set(r, 0, RETL_RES_ACK, id, NULL);
		return 1;
	}
	if (r->n == 1 || retl_req_tries(r, 0))
		return 0;
	for (size_t k = 0; k < r->n; k++) {
		retl_req_set(r, k, RETL_RES_RETRY, NULL, "conflict");
		retl_req_again(r, k, HS_READ);
	}
	return 1;
}

/* a 4xx that is not about the token */
static enum retl_hd_verdict decode_refused(const struct hs_ctx *c, struct retl_request *r)
{
	const struct retl_http_req *req = r->http;
	long st = req->status;
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	retl_buf why = RETL_BUF_INIT;
	enum retl_hd_verdict v = RETL_HD_DONE;
	if (st == 409 && r->kind == HS_CREATE && conflict(c, r, root)) {
		/* the record exists: found, as a pending create would be */
	} else if (r->n > 1 && (st == 409 || (st == 400 && blames_inputs(root)))) {
		/* some inputs fail the whole batch: isolate them */
		v = RETL_HD_SPLIT;
	} else if (st == 400 || st == 409) {
		error_reason(root, r, &why);
		retl_req_set_all(r, r->kind == HS_READ ? RETL_RES_RETRY : RETL_RES_REJECT, why.ptr);
	} else {
		retl_buf m = RETL_BUF_INIT;
		error_reason(root, r, &m);
		retl_buf_addf(&why, "HTTP %ld: %s", st, retl_buf_cstr(&m));
		retl_buf_free(&m);
		retl_req_set_all(r, RETL_RES_REJECT, why.ptr);
	}
	retl_buf_free(&why);
	json_decref(root);
	return v;
}

/* is this 429's body HubSpot's daily limit (policyName DAILY)?  Waiting
 * minutes does not bring it back; the engine hands it back at once (http.h
 * final_429, called before req->status is set) */
int hubspot_daily_429(const struct retl_http_req *req)
{
	if (!req->resp.len)
		return 0;
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr, req->resp.len, 0, &je);
	const char *p = jstr(root, "policyName");
	int daily = p && !strcasecmp(p, "DAILY");
	json_decref(root);
	return daily;
}

/*
 * An answer the engine gave up on (no response, 5xx, 429): the ops are not
 * done and go again next run.  The daily limit stops the run at once (exit
 * 4): every further request would meet it too.
 */
enum retl_hd_verdict hubspot_transient(void *d, struct retl_request *r,
				       struct retl_err *err)
{
	char *why = retl_req_reason(r);
	hubspot_assoc_gave_up(d, r);    /* not done: its values go */
	retl_req_set_all(r, RETL_RES_RETRY, why);
	free(why);
	if (r->http->status != 429 || !hubspot_daily_429(r->http))
		return RETL_HD_DONE;
	retl_err_set(err, RETL_EXIT_DEST,
		     "hubspot: the account's daily API limit is spent (429, policyName DAILY); "
		     "the run stops here and what was not sent is sent by a later run, "
		     "once HubSpot resets the limit (midnight in the account's time zone)");
	return RETL_HD_FATAL;
}

enum retl_hd_verdict hubspot_decode(void *d, struct retl_request *r,
				    struct retl_err *err)
{
	struct hs_ctx *c = d;
	const struct retl_http_req *req = r->http;
	long st = req->status;
	enum retl_hd_verdict v;

	if (c->base.mode == RETL_MODE_MEMBERSHIP)
		return hubspot_list_decode(c, r, err);
	if (r->kind >= HS_NKIND)
		return hubspot_assoc_decode(c, r, err);
	if (st == 200 && (r->kind == HS_SEARCH || r->kind == HS_SEARCH1))
		return hubspot_search_decode(c, r);
	if ((st == 200 || st == 207) && (r->kind == HS_PEEK_ID || r->kind == HS_PEEK_PROP))
		return hubspot_ie_decode(c, r);
	if (st == 200 || st == 201 || st == 204 || st == 207) {
		/* the rows written go on to their associations */
		v = decode_ok(c, r);
		hubspot_assoc_written(c, r);
		return v;
	}
	if (hubspot_auth_error(req, err) < 0)
		return RETL_HD_FATAL;
	if (st == 400 && req->resp.ptr &&
	    strstr(req->resp.ptr, "Unable to infer object type")) {
		retl_err_set(err, RETL_EXIT_DEST, "hubspot: object \"%s\" does not exist",
			     c->base.object);
		return RETL_HD_FATAL;
	}
	v = decode_refused(c, r);
	if (v == RETL_HD_DONE)
		hubspot_assoc_written(c, r);
	return v;
}
