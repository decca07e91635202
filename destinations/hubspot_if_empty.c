/*
 * hubspot_if_empty.c - per-field "write": "if_empty" for HubSpot: a field
 * retl fills only while the record's value is empty, so a value a person
 * set in HubSpot is kept.
 *
 * Before an update or upsert, the record's current values of the if_empty
 * properties are read: batch/read by the record id (stored, found by a
 * search, or the model's hs_object_id) or by the match property
 * (idProperty), `properties` = the if_empty fields; one extra request per
 * request of writes.  Matching through search needs no read: the search
 * asks for the same properties (hubspot_search.c).  The write then leaves
 * out every if_empty property whose value is not empty (HubSpot answers
 * null, or no member, for an empty one; "" counts as empty).  A record the
 * read does not find is written whole (an upsert creates it with every
 * field; an update fails "no record matches" as without if_empty).
 *
 * The decision rides from the read to the write in the op's result (not
 * done yet): reason "if_empty:<names to leave out, comma-separated>"
 * (HubSpot property names hold no comma), dest_id kept as it was.
 *
 * There is a window between the read and the write (a person may fill
 * the field in between, and retl then overwrites it); HubSpot offers no
 * conditional write to close it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "hubspot_int.h"
#include "payload.h"

#define IE_PREFIX "if_empty:"

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int hubspot_ie_setup(struct hs_ctx *c)
{
	const retl_mapping *m = c->base.sc->mapping;
	c->nie = 0;
	c->ie = retl_calloc(c->base.nf ? c->base.nf : 1, sizeof(*c->ie));
	for (size_t i = 0; i < c->base.nf; i++)
		if (retl_mapping_field_if_empty(m, i))
			c->ie[c->nie++] = c->base.ftarget[i];
	return 0;
}

int hubspot_ie_kind(const struct hs_ctx *c, const struct retl_op *op, int k,
		    const char *model_id)
{
	if (!c->nie || (k != HS_UPSERT && k != HS_UPDATE))
		return k;
	if ((op->dest_id && op->dest_id[0]) || (c->by_object_id && model_id[0]))
		return HS_PEEK_ID;
	return c->id_prop ? HS_PEEK_PROP : k;
}

/* the id a read by id sends for op k */
static const char *peek_id(const struct hs_ctx *c, const struct retl_request *r, size_t k)
{
	const char *id = hubspot_update_id(c, r, k);
	return id ? id : "";
}

void hubspot_ie_encode(struct hs_ctx *c, struct retl_request *r)
{
	struct retl_http_req *req = r->http;
	retl_buf *o = &req->body;
	retl_buf url = RETL_BUF_INIT;
	retl_buf_addf(&url, "%s%s/%s/batch/read", c->base.url, c->objects, c->base.object);
	req->method = "POST";
	req->url = retl_buf_detach(&url);
	req->idempotent = 1;
	retl_buf_adds(o, "{");
	if (r->kind == HS_PEEK_PROP) {
		retl_buf_adds(o, "\"idProperty\":");
		retl_buf_add_json_str(o, c->id_prop, strlen(c->id_prop));
		retl_buf_addc(o, ',');
	}
	retl_buf_adds(o, "\"properties\":[");
	for (size_t i = 0; i < c->nie; i++) {
		if (i)
			retl_buf_addc(o, ',');
		retl_buf_add_json_str(o, c->ie[i], strlen(c->ie[i]));
	}
	if (r->kind == HS_PEEK_PROP) {
		retl_buf_addc(o, ',');
		retl_buf_add_json_str(o, c->id_prop, strlen(c->id_prop));
	}
	retl_buf_adds(o, "],\"propertiesWithHistory\":[],\"inputs\":[");
	for (size_t k = 0; k < r->n; k++) {
		size_t n;
		const char *id = r->kind == HS_PEEK_ID ? peek_id(c, r, k) : retl_req_id(r, k, &n);
		if (r->kind == HS_PEEK_ID)
			n = strlen(id);
		retl_buf_adds(o, k ? ",{\"id\":" : "{\"id\":");
		retl_buf_add_json_str(o, id, n);
		retl_buf_addc(o, '}');
	}
	retl_buf_adds(o, "]}");
}

/* "if_empty:" and the if_empty properties `rec` holds a value for */
static void keep_list(const struct hs_ctx *c, const json_t *rec, retl_buf *out)
{
	const json_t *props = json_object_get(rec, "properties");
	retl_buf_adds(out, IE_PREFIX);
	int n = 0;
	for (size_t i = 0; rec && i < c->nie; i++) {
		const char *v = jstr(props, c->ie[i]);
		if (v && *v)
			retl_buf_addf(out, "%s%s", n++ ? "," : "", c->ie[i]);
	}
}

void hubspot_ie_found(const struct hs_ctx *c, struct retl_request *r, size_t k,
		      const json_t *rec, int kind)
{
	retl_buf why = RETL_BUF_INIT;
	const struct retl_result *res = retl_req_result(r, k);
	char *id = res->dest_id ? retl_strdup(res->dest_id) : NULL;
	keep_list(c, rec, &why);
	retl_req_set(r, k, RETL_RES_RETRY, id, why.ptr);
	retl_req_again(r, k, kind);
	free(id);
	retl_buf_free(&why);
}

/* does result `rec` answer op k of a read? */
static int peek_hits(const struct hs_ctx *c, const struct retl_request *r, size_t k,
		     const json_t *rec)
{
	if (r->kind == HS_PEEK_ID) {
		const char *id = jstr(rec, "id");
		return id && !strcmp(id, peek_id(c, r, k));
	}
	size_t n;
	const char *mine = retl_req_id(r, k, &n);
	const char *v = jstr(json_object_get(rec, "properties"), c->id_prop);
	if (!v || strlen(v) != n)
		return 0;
	return c->id_ci ? !strncasecmp(mine, v, n) : !memcmp(mine, v, n);
}

/* the write a read goes on to: what prepare would have chosen */
static int write_kind(const struct hs_ctx *c, const struct retl_op *op)
{
	/* by search or by hs_object_id, the read was by the record id */
	if (c->search || c->by_object_id || c->base.mode == RETL_MODE_UPDATE ||
	    op->kind == RETL_OP_UPDATE)
		return HS_UPDATE;
	return HS_UPSERT;
}

enum retl_hd_verdict hubspot_ie_decode(struct hs_ctx *c, struct retl_request *r)
{
	json_error_t je;
	const struct retl_http_req *req = r->http;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	json_t *results = json_object_get(root, "results");
	for (size_t k = 0; k < r->n; k++) {
		const json_t *hit = NULL;
		size_t i;
		json_t *x;
		json_array_foreach(results, i, x) {
			if (peek_hits(c, r, k, x)) {
				hit = x;
				break;
			}
		}
		/* not found (an OBJECT_NOT_FOUND error): written whole */
		hubspot_ie_found(c, r, k, hit, write_kind(c, retl_req_op(r, k)));
	}
	json_decref(root);
	return RETL_HD_DONE;
}

/* is `name` (n bytes) in the comma-separated list? */
static int listed(const char *list, const char *name, size_t n)
{
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && !memcmp(p, name, n))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

/* a property the read found holding a value: left out of the write */
static int held(void *ud, const struct retl_pfield *f)
{
	return listed(ud, f->name, f->name_len);
}

void hubspot_ie_props(const struct retl_request *r, size_t k, const char *props,
		      size_t plen, retl_buf *o)
{
	const char *why = retl_req_result(r, k)->reason;
	size_t at = o->len;
	if (!why || strncmp(why, IE_PREFIX, strlen(IE_PREFIX)) || !why[strlen(IE_PREFIX)] ||
	    retl_payload_without(props, plen, held, (void *)(why + strlen(IE_PREFIX)), o) < 0) {
		o->len = at;
		retl_buf_add(o, props, plen);
	}
}
