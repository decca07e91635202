/*
 * mailchimp_segment.c - mode "membership" for Mailchimp: the sync's rows are
 * the members of one static segment of the audience (the sync key
 * "segment": its id).  Mailchimp's docs: "Static segments are now known as
 * tags" -- a tag is a static segment, so a segment id here is also a tag's.
 *
 *   a row in the model  POST /lists/{list_id}/segments/{segment_id}
 *                       {"members_to_add": [addresses]}
 *   a row that left it  the same with "members_to_remove"; the contact stays
 *                       in the audience as it is (never archived or
 *                       unsubscribed)
 *
 * At most 500 addresses a request in each array (the spec: "A maximum of
 * 500 members can be sent"; Mailchimp answers more with 400 "Maximum allowed
 * member items exceeded").  The answer lists members_added and
 * members_removed, and errors[] {email_addresses, error}: the addresses it
 * could not add or remove ("Any emails provided that are not present on the
 * list will be ignored").  An address in errors fails its row "no record
 * matches" with Mailchimp's text (retried next run: the contact may be in
 * the audience by then); every other address is done -- one that was a
 * member already is in neither list.  A removal is done either way: an
 * address not in the audience is in no segment.
 *
 * Membership writes nothing to the contact: the mapping holds email_address
 * only (another sync writes members), refused otherwise at open.  The
 * acknowledged row stores the lowercased address, as the member sync does.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mailchimp_int.h"

enum ms_kind { MS_ADD, MS_REMOVE };

int mailchimp_segment_setup(struct mc_ctx *c, struct retl_err *err)
{
	const struct retl_sync_cfg *sc = c->base.sc;
	json_t *v = json_object_get(sc->options, "segment");
	if (c->base.mode != RETL_MODE_MEMBERSHIP) {
		if (v)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: segment: only used in mode \"membership\" (mode is \"%s\")",
					    sc->file, retl_mode_name(sc->mode));
		return 0;
	}
	int rc = retl_dest_sync_id(sc, "segment", &c->segment);
	if (rc)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: segment: %s; mode \"membership\" needs the id of a static segment (a tag) of the audience, e.g. \"segment\": 40123 (GET /lists/{list_id}/segments lists them)",
				    sc->file, rc < 0 ? "expected a segment id (digits)" : "missing");
	for (size_t i = 0; i < c->base.nf; i++)
		if (strcmp(c->base.ftarget[i], "email_address"))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: mode \"membership\" writes nothing to the contact, only segment membership; map \"email_address\" alone and write members with another sync",
					    sc->file, c->base.ftarget[i]);
	if (json_object_get(sc->options, "status_if_new"))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: status_if_new: not used in mode \"membership\" (it adds no contact to the audience)",
				    sc->file);
	return 0;
}

int mailchimp_segment_prepare(struct mc_ctx *c, struct retl_batch *b, size_t i,
			      retl_buf *id, retl_buf *reason)
{
	const struct retl_op *op = &b->ops[i];
	(void)c;
	if (op->kind == RETL_OP_REMOVE) {
		const char *email = op->dest_id && op->dest_id[0] ? op->dest_id : op->match;
		if (!email || !email[0]) {
			/* never reached Mailchimp: in no segment */
			retl_result_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
			return RETL_HD_NONE;
		}
		retl_buf_adds(id, email);
		return MS_REMOVE;
	}
	if (!op->match || !op->match[0]) {
		retl_buf_adds(reason, "email_address: empty; Mailchimp finds the member to add to the segment by its address");
		return RETL_HD_REJECT;
	}
	retl_buf_adds(id, op->match);
	return MS_ADD;
}

int mailchimp_segment_encode(struct mc_ctx *c, struct retl_request *r)
{
	struct retl_http_req *req = r->http;
	retl_buf url = RETL_BUF_INIT;
	size_t n;
	retl_buf_addf(&url, "%s/lists/%s/segments/%s", c->base.url, c->base.object, c->segment);
	req->method = "POST";
	req->url = retl_buf_detach(&url);
	/* adding a member twice, or removing one that is gone, changes
	 * nothing: safe to replay */
	req->idempotent = 1;
	retl_buf_adds(&req->body, r->kind == MS_ADD ? "{\"members_to_add\":[" :
			     "{\"members_to_remove\":[");
	for (size_t k = 0; k < r->n; k++) {
		const char *e = retl_req_id(r, k, &n);
		if (k)
			retl_buf_addc(&req->body, ',');
		retl_buf_add_json_str(&req->body, e, n);
	}
	retl_buf_adds(&req->body, "]}");
	return 0;
}

/* the error errors[] gives address e (ASCII case ignored), or NULL */
static const char *error_of(const json_t *errors, const char *e, size_t n)
{
	size_t i, j;
	json_t *x, *a;
	json_array_foreach(errors, i, x) {
		json_array_foreach(json_object_get(x, "email_addresses"), j, a) {
			const char *s = json_string_value(a);
			if (s && strlen(s) == n && !strncasecmp(s, e, n)) {
				const char *why = json_string_value(json_object_get(x, "error"));
				return why ? why : "(no message)";
			}
		}
	}
	return NULL;
}

static void decode_ok(struct retl_request *r, const json_t *root)
{
	json_t *errors = json_object_get(root, "errors");
	for (size_t k = 0; k < r->n; k++) {
		size_t n;
		const char *e = retl_req_id(r, k, &n);
		const char *why = r->kind == MS_ADD ? error_of(errors, e, n) : NULL;
		if (why) {
			retl_buf m = RETL_BUF_INIT;
			retl_buf_addf(&m, "no record matches: mailchimp: %s", why);
			retl_req_set(r, k, RETL_RES_REJECT, NULL, m.ptr);
			retl_buf_free(&m);
			continue;
		}
		char *id = retl_strndup(e, n);
		for (char *p = id; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		retl_req_set(r, k, RETL_RES_ACK, r->kind == MS_ADD ? id : NULL, NULL);
		free(id);
	}
}

enum retl_hd_verdict mailchimp_segment_decode(struct mc_ctx *c, struct retl_request *r,
					      struct retl_err *err)
{
	const struct retl_http_req *req = r->http;
	if (req->status == 200) {
		json_error_t je;
		json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
		decode_ok(r, root);
		json_decref(root);
		return RETL_HD_DONE;
	}
	if (mailchimp_auth_error(req, err) < 0)
		return RETL_HD_FATAL;
	char *why = mailchimp_problem(req);
	if (req->status == 404) {
		/* the audience or the segment is gone, or the segment is not
		 * static: no row can be done */
		retl_err_set(err, RETL_EXIT_DEST,
			     "mailchimp: audience %s, segment %s: %s (404; run `retl check`)",
			     c->base.object, c->segment, why);
		free(why);
		return RETL_HD_FATAL;
	}
	retl_buf m = RETL_BUF_INIT;
	retl_buf_addf(&m, "HTTP %ld: %s", req->status, why);
	retl_req_set_all(r, RETL_RES_REJECT, m.ptr);
	retl_buf_free(&m);
	free(why);
	return RETL_HD_DONE;
}

/* `retl check`: GET the segment: it exists in the audience and is static */
int mailchimp_segment_check(struct mc_ctx *c, struct retl_err *err)
{
	const char *file = c->base.sc->file;
	retl_buf path = RETL_BUF_INIT, probs = RETL_BUF_INIT;
	retl_buf_addf(&path, "/lists/%s/segments/%s", c->base.object, c->segment);
	struct retl_http_req *req = retl_hd_get(&c->base, path.ptr);
	json_t *root = NULL;
	json_error_t je;
	int looked = 0;
	if (mailchimp_auth_error(req, err) < 0) {
		/* err says why */
	} else if (req->status == 404) {
		looked = 1;
		retl_hd_problem(&probs, "%s: segment: mailchimp: audience %s has no segment %s (GET %s: 404)",
				file, c->base.object, c->segment, path.ptr);
	} else if (retl_hd_answered(&c->base, req, path.ptr, NULL, err) == 0) {
		looked = 1;
		root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
		const char *type = json_string_value(json_object_get(root, "type"));
		const char *name = json_string_value(json_object_get(root, "name"));
		if (!type || strcmp(type, "static"))
			retl_hd_problem(&probs, "%s: segment: mailchimp: segment %s (\"%s\") is %s, not static (a tag); only a static segment's members can be set",
					file, c->segment, name ? name : "", type ? type : "of no type");
	}
	retl_http_req_free(req);
	json_decref(root);
	retl_buf_free(&path);
	return retl_hd_problems(&probs, looked, err);
}

void mailchimp_segment_fini(struct mc_ctx *c)
{
	free(c->segment);
}
