/*
 * salesforce_collections.c - sObject Collections: up to 200 records a
 * request through the HTTP destinations' base, for runs of up to
 * bulk_threshold rows of one operation.
 *
 *   upsert   PATCH /composite/sobjects/{SObject}/{ExternalIdField}
 *   update   PATCH /composite/sobjects, by the stored record Id
 *   insert   POST /composite/sobjects
 *   delete   DELETE /composite/sobjects?ids=…&allOrNone=false
 *
 * An empty string or an empty multi-select goes as null: null clears a
 * field over REST, and Salesforce stores an empty text as null anyway, but
 * an empty string in a date, number or checkbox field is not a value.
 *
 * allOrNone is false, so each record succeeds or fails alone; results come
 * back in input order.  Requests go one at a time (the daily budget is
 * checked between them); every row's outcome is reported to the engine by
 * key (the rows were deferred).  401 INVALID_SESSION_ID refreshes the token
 * once and the request is sent again.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "payload.h"
#include "salesforce_int.h"

/* an array (a multi-select picklist) joined with ';' as a JSON string;
 * an empty one is null (cleared) */
static void add_joined(const struct retl_pv *v, retl_buf *o)
{
	struct retl_preader r;
	struct retl_pv x;
	retl_buf j = RETL_BUF_INIT;
	int n = 0;
	retl_pv_open(&r, v);
	while (retl_payload_item(&r, &x) > 0) {
		if (n++)
			retl_buf_addc(&j, ';');
		retl_pv_string(&x, &j);
	}
	if (j.len)
		retl_buf_add_json_str(o, j.ptr, j.len);
	else
		retl_buf_adds(o, "null");
	retl_buf_free(&j);
}

/* the record of one op: its type, its Id for an update, then the payload's
 * members (arrays joined) */
int sf_collections_prepare(void *d, struct retl_batch *b, size_t i, retl_buf *body,
		      retl_buf *id, retl_buf *reason)
{
	struct sf_ctx *c = d;
	const struct retl_op *op = &b->ops[i];
	int with_id = c->cur == SF_UPDATE;
	struct retl_preader r;
	struct retl_pfield f;
	int rc;
	if (c->cur == SF_DELETE || c->cur == SF_DELETE_EXT)
		return c->cur;
	if (retl_payload_open(&r, op->payload, op->payload_len) < 0)
		goto bad;
	retl_buf_adds(body, "{\"attributes\":{\"type\":");
	retl_buf_add_json_str(body, c->base.object, strlen(c->base.object));
	retl_buf_addc(body, '}');
	if (with_id) {
		retl_buf_adds(body, ",\"Id\":");
		retl_buf_add_json_str(body, op->dest_id, strlen(op->dest_id));
	}
	while ((rc = retl_payload_next(&r, &f)) > 0) {
		if (with_id && retl_pfield_is(&f, "Id"))
			continue;
		if (f.v.kind == RETL_PV_OBJECT) {
			/* a relationship: "Account": {"External_Id__c": …} */
			if (sf_rel_json(c, &f, body) < 0)
				goto bad;
			continue;
		}
		retl_buf_adds(body, ",\"");
		retl_buf_add(body, f.name, f.name_len);
		retl_buf_adds(body, "\":");
		if (f.v.kind == RETL_PV_ARRAY)
			add_joined(&f.v, body);
		else if (f.v.kind == RETL_PV_STRING && f.v.len == 2)
			retl_buf_adds(body, "null");    /* "": cleared, as null */
		else
			retl_buf_add(body, f.v.raw, f.v.len);
	}
	if (rc < 0)
		goto bad;
	retl_buf_addc(body, '}');
	(void)id;
	return c->cur;
bad:
	retl_buf_adds(reason, "salesforce: payload is not a JSON object");
	return RETL_HD_REJECT;
}

int sf_collections_encode(void *d, struct retl_request *r, struct retl_err *err)
{
	struct sf_ctx *c = d;
	struct retl_http_req *req = r->http;
	retl_buf url = RETL_BUF_INIT, *o = &req->body;
	if (r->kind == SF_DELETE_EXT) {
		/* sObject Rows by External ID */
		retl_buf_addf(&url, "%s/services/data/v%s/sobjects/%s/%s/", c->instance,
			      c->version, c->base.object, c->ext);
		retl_buf_add_url_escaped(&url, retl_req_op(r, 0)->dest_id);
		req->method = "DELETE";
		req->idempotent = 1;
		req->url = retl_buf_detach(&url);
		return 0;
	}
	retl_buf_addf(&url, "%s/services/data/v%s/composite/sobjects", c->instance, c->version);
	if (r->kind == SF_DELETE) {
		retl_buf_adds(&url, "?ids=");
		for (size_t k = 0; k < r->n; k++)
			retl_buf_addf(&url, "%s%s", k ? "," : "", retl_req_op(r, k)->dest_id);
		retl_buf_adds(&url, "&allOrNone=false");
		req->method = "DELETE";
		req->idempotent = 1;
	} else {
		if (r->kind == SF_UPSERT)
			retl_buf_addf(&url, "/%s/%s", c->base.object, c->ext);
		req->method = r->kind == SF_INSERT ? "POST" : "PATCH";
		req->idempotent = r->kind != SF_INSERT;
		retl_buf_adds(o, "{\"allOrNone\":false,\"records\":[");
		retl_req_add_bodies(r, o);
		retl_buf_adds(o, "]}");
	}
	req->url = retl_buf_detach(&url);
	(void)err;
	return 0;
}

/* one record's result: ack, or the errors joined as its reason */
static void take_result(struct retl_request *r, size_t k, const json_t *x)
{
	if (!x) {
		retl_req_set(r, k, RETL_RES_RETRY, NULL,
			     "salesforce: no result for this record in the response");
		return;
	}
	const char *id = json_string_value(json_object_get(x, "id"));
	if (json_is_true(json_object_get(x, "success"))) {
		retl_req_set(r, k, RETL_RES_ACK, r->kind == SF_DELETE ? NULL : id, NULL);
		return;
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
		if (code && r->kind == SF_DELETE &&
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
	retl_req_set(r, k, kind, NULL, kind == RETL_RES_ACK ? NULL :
		     why.len ? why.ptr : "salesforce: failed without an error");
	retl_buf_free(&why);
}

enum retl_hd_verdict sf_collections_decode(void *d, struct retl_request *r,
				      struct retl_err *err)
{
	struct sf_ctx *c = d;
	const struct retl_http_req *req = r->http;
	sf_usage(c, req);
	if (req->status == 401) {
		/* INVALID_SESSION_ID: a new token, then the same request */
		if (sf_auth(c, err) < 0)
			return RETL_HD_FATAL;
		return RETL_HD_RESEND;
	}
	if (sf_fatal_answer(c, req, err) < 0)
		return RETL_HD_FATAL;
	if (r->kind == SF_DELETE_EXT && (req->status == 204 || req->status == 404)) {
		/* deleted, or not there (never made, or deleted already) */
		retl_req_set_all(r, RETL_RES_ACK, NULL);
		return RETL_HD_DONE;
	}
	if (req->status != 200) {
		char *t = sf_error_text(req);
		retl_req_set_all(r, RETL_RES_REJECT, t);
		free(t);
		return RETL_HD_DONE;
	}
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	for (size_t k = 0; k < r->n; k++)
		take_result(r, k, json_array_get(root, k));
	json_decref(root);
	return RETL_HD_DONE;
}

/* reports a chunk's rows; on a fatal chunk only the rows with an answer */
static int report(struct sf_ctx *c, const struct retl_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct retl_result *r = &b->results[i];
		if (b->fatal && r->kind == RETL_RES_RETRY)
			continue;
		if (c->base.env.report(c->base.env.ud, b->ops[i].key, r) < 0)
			return -1;
	}
	return 0;
}

/* one chunk of up to SF_MAX_RECORDS ops, sent and waited for */
static int send_chunk(struct sf_ctx *c, struct retl_batch *b, struct retl_err *err)
{
	struct retl_err e2;
	struct retl_batch *x;
	for (size_t i = 0; i < b->n; i++)
		retl_result_set(&b->results[i], RETL_RES_RETRY, NULL, NULL);
	retl_err_clear(&e2);
	retl_hd_submit(c, b, &e2);
	while ((x = retl_hd_wait(c, 1)) && x != b)
		;
	if (report(c, b) < 0)
		return -1;
	if (b->fatal)
		return retl_err_set(err, b->fatal_code ? b->fatal_code : RETL_EXIT_DEST,
				    "%s", b->fatal_msg);
	return 0;
}

int sf_collections_run(struct sf_ctx *c, enum sf_kind k, FILE *f,
		       struct retl_err *err)
{
	struct retl_op ops[SF_MAX_RECORDS];
	struct retl_result res[SF_MAX_RECORDS];
	retl_buf bufs[SF_MAX_RECORDS];
	int rc = 0;
	memset(res, 0, sizeof(res));
	memset(bufs, 0, sizeof(bufs));
	c->cur = k;
	int got = 1;
	while (rc == 0 && got > 0) {
		size_t n = 0;
		while (n < SF_MAX_RECORDS &&
		       (got = sf_spool_get(f, &bufs[n], &ops[n])) > 0) {
			ops[n].kind = k == SF_DELETE ? RETL_OP_REMOVE : RETL_OP_UPSERT;
			n++;
		}
		if (!n)
			break;
		struct retl_batch b = { .ops = ops, .n = n, .results = res };
		rc = sf_budget_stop(c, err) < 0 ? -1 : send_chunk(c, &b, err);
	}
	/* what was read before the damage went out; the rest stays staged */
	if (rc == 0 && got < 0)
		rc = sf_spool_damaged(c->spool_path[k], err);
	for (size_t i = 0; i < SF_MAX_RECORDS; i++) {
		free(res[i].dest_id);
		free(res[i].reason);
		retl_buf_free(&bufs[i]);
	}
	return rc;
}
