/*
 * hubspot_lists.c - mode "membership" for HubSpot: the sync's rows are the
 * members of one static list (the sync key "list": its ILS list id).
 *
 *   a row in the model  its record (found by the sync's match) is added:
 *                       PUT /crm/v3/lists/{listId}/memberships/add with the
 *                       record ids (a JSON array of strings; lists v3 spec,
 *                       crm-lists-v3.json, and /crm/lists/2026-03/... when
 *                       api_version is dated)
 *   a row that left it  its record is removed from the list, never archived:
 *                       PUT .../memberships/remove
 *
 * The record is found by the match, as any sync finds it: a unique
 * property through batch/read with idProperty (the same lookup as mode
 * insert's); a property that is not unique (companies' domain) through
 * search (hubspot_search.c's requests and paging; several records fail the
 * row "ambiguous match (N records)"); or hs_object_id, the record id itself
 * (no lookup).  A match no record has fails the row "no record matches"
 * (retried next run: the record may exist by then).  An
 * acknowledged row stores the record id, so its removal needs no lookup; a
 * row sent but never acknowledged is looked up by its match value.
 *
 * The answers (MembershipsUpdateResponse) list recordsIdsAdded (the spec's
 * spelling), recordIdsRemoved and recordIdsMissing: the docs say records
 * that do not exist, or are members already, are ignored.  So an add is
 * done unless its id is missing (the record was deleted after the lookup:
 * "no record matches"), and a removal is done either way (a record that
 * does not exist is in no list).
 *
 * Membership writes no properties: another sync owns the records' fields,
 * so the mapping holds the match field only (refused otherwise at open).
 * Request kinds here are this file's own (the base sends the lowest first):
 * a lookup, then adds, then removals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "hubspot_int.h"

/* with search, a lookup is hubspot_search.c's HS_SEARCH (HS_SEARCH1 one
 * value at a time), whose kinds lie above these */
enum hl_kind { HL_FIND, HL_ADD, HL_REMOVE };
_Static_assert((int)HL_REMOVE < (int)HS_SEARCH, "membership's kinds below search's");

static int is_search(int kind)
{
	return kind == HS_SEARCH || kind == HS_SEARCH1;
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- open ---- */

/* the sync key "list" (an id, as a string or a number) into c->list_id */
static int read_list(struct hs_ctx *c, struct retl_err *err)
{
	const struct retl_sync_cfg *sc = c->base.sc;
	int rc = retl_dest_sync_id(sc, "list", &c->list_id);
	if (rc)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: list: %s; mode \"membership\" needs the ILS id of a static (MANUAL) HubSpot list, e.g. \"list\": \"123\" (the number in the list's URL)",
				    sc->file, rc < 0 ? "expected a list id (digits)" : "missing");
	return 0;
}

int hubspot_list_setup(struct hs_ctx *c, struct retl_err *err)
{
	const struct retl_sync_cfg *sc = c->base.sc;
	int member = c->base.mode == RETL_MODE_MEMBERSHIP;
	if (!member) {
		if (json_object_get(sc->options, "list"))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: list: only used in mode \"membership\" (mode is \"%s\")",
					    sc->file, retl_mode_name(sc->mode));
		return 0;
	}
	if (read_list(c, err) < 0)
		return -1;
	for (size_t i = 0; i < c->base.nf; i++)
		if (strcmp(c->base.ftarget[i], c->id_prop))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: mode \"membership\" writes no properties, only list membership; map the match field alone (\"%s\") and write properties with another sync",
					    sc->file, c->base.ftarget[i], c->id_prop);
	/* by_object_id and search: hubspot_match_setup */
	const char *ver = json_string_value(json_object_get(c->base.dc->options, "api_version"));
	retl_buf b = RETL_BUF_INIT;
	if (!ver || !strcmp(ver, "v3"))
		retl_buf_adds(&b, "/crm/v3/lists");
	else
		retl_buf_addf(&b, "/crm/lists/%s", ver);
	c->lists = retl_buf_detach(&b);
	return 0;
}

void hubspot_list_fini(struct hs_ctx *c)
{
	free(c->lists);
	free(c->list_id);
}

/* ---- prepare / encode ---- */

int hubspot_list_prepare(struct hs_ctx *c, struct retl_batch *b, size_t i,
			 retl_buf *id, retl_buf *reason)
{
	const struct retl_op *op = &b->ops[i];
	if (op->kind == RETL_OP_REMOVE && op->dest_id && op->dest_id[0]) {
		retl_buf_adds(id, op->dest_id);
		return HL_REMOVE;
	}
	if (!op->match || !op->match[0]) {
		if (op->kind == RETL_OP_REMOVE) {
			/* never reached HubSpot: in no list */
			retl_result_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
			return RETL_HD_NONE;
		}
		retl_buf_addf(reason, "%s: empty; HubSpot finds the record to add to the list by this property (match)",
			      c->id_prop);
		return RETL_HD_REJECT;
	}
	retl_buf_adds(id, op->match);
	if (c->search)
		return HS_SEARCH;       /* found: hubspot_list_found */
	if (!c->by_object_id)
		return HL_FIND;
	if (!retl_dest_digits(op->match)) {
		if (op->kind == RETL_OP_REMOVE) {
			retl_result_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
			return RETL_HD_NONE;
		}
		retl_buf_addf(reason, "no record matches: hs_object_id \"%s\" is not a HubSpot record id (digits)",
			      op->match);
		return RETL_HD_REJECT;
	}
	return op->kind == RETL_OP_REMOVE ? HL_REMOVE : HL_ADD;
}

/* the record id op k adds or removes: what a lookup found, else the stored
 * id (a removal) or the match value itself (hs_object_id) */
static const char *record_id(const struct retl_request *r, size_t k, size_t *n)
{
	const char *found = retl_req_result(r, k)->dest_id;
	const struct retl_op *op = retl_req_op(r, k);
	if (found && found[0]) {
		*n = strlen(found);
		return found;
	}
	if (op->kind == RETL_OP_REMOVE && op->dest_id && op->dest_id[0]) {
		*n = strlen(op->dest_id);
		return op->dest_id;
	}
	return retl_req_id(r, k, n);
}

int hubspot_list_encode(struct hs_ctx *c, struct retl_request *r)
{
	struct retl_http_req *req = r->http;
	retl_buf *o = &req->body;
	retl_buf url = RETL_BUF_INIT;
	size_t n;
	/* adding or removing a member twice changes nothing: safe to replay */
	req->idempotent = 1;
	if (is_search(r->kind)) {
		hubspot_search_encode(c, r);
		return 0;
	}
	if (r->kind == HL_FIND) {
		retl_buf_addf(&url, "%s%s/%s/batch/read", c->base.url, c->objects, c->base.object);
		req->method = "POST";
		retl_buf_adds(o, "{\"idProperty\":");
		retl_buf_add_json_str(o, c->id_prop, strlen(c->id_prop));
		retl_buf_adds(o, ",\"properties\":[");
		retl_buf_add_json_str(o, c->id_prop, strlen(c->id_prop));
		retl_buf_adds(o, "],\"propertiesWithHistory\":[],\"inputs\":[");
		for (size_t k = 0; k < r->n; k++) {
			const char *v = retl_req_id(r, k, &n);
			retl_buf_adds(o, k ? ",{\"id\":" : "{\"id\":");
			retl_buf_add_json_str(o, v, n);
			retl_buf_addc(o, '}');
		}
		retl_buf_adds(o, "]}");
	} else {
		retl_buf_addf(&url, "%s%s/%s/memberships/%s", c->base.url, c->lists, c->list_id,
			      r->kind == HL_ADD ? "add" : "remove");
		req->method = "PUT";
		retl_buf_addc(o, '[');
		for (size_t k = 0; k < r->n; k++) {
			const char *v = record_id(r, k, &n);
			if (k)
				retl_buf_addc(o, ',');
			retl_buf_add_json_str(o, v, n);
		}
		retl_buf_addc(o, ']');
	}
	req->url = retl_buf_detach(&url);
	return 0;
}

/* ---- decode ---- */

/* HubSpot's message of a 4xx body ("category: message"), malloc'd */
static char *hs_message(const struct retl_request *r, const json_t *root)
{
	const char *msg = jstr(root, "message"), *cat = jstr(root, "category");
	if (!msg)
		return retl_req_reason(r);
	retl_buf b = RETL_BUF_INIT;
	retl_buf_addf(&b, "HTTP %ld %s%s%s", r->http->status, cat ? cat : "", cat ? ": " : "",
		      msg);
	return retl_buf_detach(&b);
}

/* batch/read's answer: found records go on to be added or removed */
static void decode_find(struct hs_ctx *c, struct retl_request *r, const json_t *root)
{
	json_t *res = json_object_get(root, "results");
	for (size_t k = 0; k < r->n; k++) {
		size_t n, i;
		const char *v = retl_req_id(r, k, &n);
		const char *found = NULL;
		json_t *x;
		json_array_foreach(res, i, x) {
			const char *p = jstr(json_object_get(x, "properties"), c->id_prop);
			if (p && strlen(p) == n &&
			    (c->id_ci ? !strncasecmp(p, v, n) : !strncmp(p, v, n)))
				found = jstr(x, "id");
		}
		int remove = retl_req_op(r, k)->kind == RETL_OP_REMOVE;
		if (found) {
			retl_req_set(r, k, RETL_RES_RETRY, found, "hubspot: record found, membership not yet changed");
			retl_req_again(r, k, remove ? HL_REMOVE : HL_ADD);
		} else if (remove) {
			/* no record: in no list */
			retl_req_set(r, k, RETL_RES_ACK, NULL, NULL);
		} else {
			retl_buf why = RETL_BUF_INIT;
			retl_buf_addf(&why, "no record matches: no %s record has %s = \"%.*s\"",
				      c->base.object, c->id_prop, (int)n, v);
			retl_req_set(r, k, RETL_RES_REJECT, NULL, why.ptr);
			retl_buf_free(&why);
		}
	}
}

void hubspot_list_found(struct retl_request *r, size_t k, const char *id)
{
	int remove = retl_req_op(r, k)->kind == RETL_OP_REMOVE;
	retl_req_set(r, k, RETL_RES_RETRY, id, "hubspot: record found, membership not yet changed");
	retl_req_again(r, k, remove ? HL_REMOVE : HL_ADD);
}

static int in_array(const json_t *a, const char *s, size_t n)
{
	size_t i;
	json_t *x;
	json_array_foreach(a, i, x) {
		const char *v = json_string_value(x);
		if (v && strlen(v) == n && !memcmp(v, s, n))
			return 1;
	}
	return 0;
}

/* memberships/add or /remove answered 200 */
static void decode_members(struct hs_ctx *c, struct retl_request *r, const json_t *root)
{
	json_t *missing = json_object_get(root, "recordIdsMissing");
	for (size_t k = 0; k < r->n; k++) {
		size_t n;
		const char *v = record_id(r, k, &n);
		char *id = retl_strndup(v, n);
		if (r->kind == HL_REMOVE) {
			retl_req_set(r, k, RETL_RES_ACK, NULL, NULL);
		} else if (in_array(missing, v, n)) {
			retl_buf why = RETL_BUF_INIT;
			retl_buf_addf(&why, "no record matches: HubSpot has no %s record %s (recordIdsMissing)",
				      c->base.object, id);
			retl_req_set(r, k, RETL_RES_REJECT, NULL, why.ptr);
			retl_buf_free(&why);
		} else {
			retl_req_set(r, k, RETL_RES_ACK, id, NULL);
		}
		free(id);
	}
}

enum retl_hd_verdict hubspot_list_decode(struct hs_ctx *c, struct retl_request *r,
					 struct retl_err *err)
{
	const struct retl_http_req *req = r->http;
	long st = req->status;
	int lookup = r->kind == HL_FIND || is_search(r->kind);
	if (hubspot_auth_error(req, err) < 0)
		return RETL_HD_FATAL;
	if (is_search(r->kind) && st == 200)
		return hubspot_search_decode(c, r);
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	enum retl_hd_verdict v = RETL_HD_DONE;
	if (r->kind == HL_FIND && (st == 200 || st == 207)) {
		decode_find(c, r, root);
	} else if (!lookup && st == 200) {
		decode_members(c, r, root);
	} else if (!lookup && (st == 404 || st == 400)) {
		/* the list is gone, or not one whose members can be set (a
		 * DYNAMIC list): no row can be done, so the run stops */
		char *why = hs_message(r, root);
		retl_err_set(err, RETL_EXIT_DEST, "hubspot: list %s: %s (run `retl check`)",
			     c->list_id, why);
		free(why);
		v = RETL_HD_FATAL;
	} else {
		char *why = hs_message(r, root);
		retl_req_set_all(r, RETL_RES_REJECT, why);
		free(why);
	}
	json_decref(root);
	return v;
}

/* ---- check ---- */

/* HubSpot's object type ids of the standard objects a sync names */
static const char *object_type_id(const char *object)
{
	static const char *const map[][2] = {
		{ "contacts", "0-1" }, { "contact", "0-1" }, { "companies", "0-2" },
		{ "company", "0-2" }, { "deals", "0-3" }, { "deal", "0-3" },
		{ "tickets", "0-5" }, { "ticket", "0-5" },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcasecmp(object, map[i][0]))
			return map[i][1];
	return object;   /* a custom object's id ("2-123456") */
}

/* GET the list: it exists, is static, of the sync's object.  HubSpot's
 * docs (memberships/add, /remove): "This endpoint only works for lists that
 * have a processingType of MANUAL or SNAPSHOT" (a SNAPSHOT list is filled
 * once by its filters, then edited by hand) */
int hubspot_list_check(struct hs_ctx *c, struct retl_err *err)
{
	const char *file = c->base.sc->file;
	retl_buf path = RETL_BUF_INIT, probs = RETL_BUF_INIT;
	retl_buf_addf(&path, "%s/%s", c->lists, c->list_id);
	struct retl_http_req *req = retl_hd_get(&c->base, path.ptr);
	json_error_t je;
	json_t *root = NULL;
	int looked = 0;
	if (hubspot_auth_error(req, err) < 0) {
		/* err says why */
	} else if (req->status == 404) {
		looked = 1;
		retl_hd_problem(&probs, "%s: list: hubspot: no list with id %s (GET %s: 404)",
				file, c->list_id, path.ptr);
	} else if (retl_hd_answered(&c->base, req, path.ptr, NULL, err) == 0) {
		root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
		json_t *l = json_object_get(root, "list");
		const char *pt = jstr(l, "processingType"), *ot = jstr(l, "objectTypeId");
		const char *want = object_type_id(c->base.object);
		looked = 1;
		if (!json_is_object(l))
			retl_hd_problem(&probs, "%s: list: hubspot: GET %s: no \"list\" in the response",
					file, path.ptr);
		else if (!pt || (strcmp(pt, "MANUAL") && strcmp(pt, "SNAPSHOT")))
			retl_hd_problem(&probs, "%s: list: hubspot: list %s (\"%s\") is %s, not a static list; HubSpot lets retl set the members of a MANUAL (or SNAPSHOT) list only",
					file, c->list_id, jstr(l, "name") ? jstr(l, "name") : "",
					pt ? pt : "of no processingType");
		if (json_is_object(l) && (!ot || strcmp(ot, want)))
			retl_hd_problem(&probs, "%s: list: hubspot: list %s holds objectTypeId %s, the sync's object %s is %s",
					file, c->list_id, ot ? ot : "?", c->base.object, want);
	}
	retl_http_req_free(req);
	json_decref(root);
	retl_buf_free(&path);
	return retl_hd_problems(&probs, looked, err);
}
