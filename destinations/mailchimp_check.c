/*
 * mailchimp_check.c - `retl check` for the Mailchimp destination.
 *
 * GET /ping (the key works: 401 -> exit 4), GET /lists/{id} (the audience
 * exists: 404 -> exit 2), GET /lists/{id}/merge-fields: every mapped
 * merge_fields.TAG exists (with the closest tag when it does not) and takes
 * the mapped type, and every merge field the audience requires is mapped
 * (Mailchimp refuses new members without it).  All mapping problems are
 * listed at once, exit 2.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mailchimp_int.h"

static int is_address_part(const char *s)
{
	static const char *const parts[] = {
		"addr1", "addr2", "city", "state", "zip", "country", NULL
	};
	for (const char *const *p = parts; *p; p++)
		if (!strcmp(s, *p))
			return 1;
	return 0;
}

/* why the mapped type cannot go to a field of Mailchimp type ft, or NULL */
static const char *incompatible(const char *ft, enum retl_type t, const char *sub)
{
	int address = !strcmp(ft, "address");
	if (sub)
		return address ? (is_address_part(sub) ? NULL :
				  "an address has the parts addr1, addr2, city, state, zip, country")
			       : "only an address merge field has parts";
	if (address)
		return t == RETL_TYPE_AUTO || t == RETL_TYPE_JSON ? NULL :
		       "an address merge field takes an object {addr1, city, state, zip, …}: map its parts (merge_fields.TAG.addr1, …)";
	if (t == RETL_TYPE_JSON)
		return "a JSON value cannot go to this merge field";
	if (!strcmp(ft, "number"))
		return t == RETL_TYPE_BOOLEAN || t == RETL_TYPE_DATE || t == RETL_TYPE_DATETIME ?
		       "a number merge field takes numbers" : NULL;
	if (!strcmp(ft, "date"))
		return t == RETL_TYPE_INTEGER || t == RETL_TYPE_NUMBER ||
		       t == RETL_TYPE_BOOLEAN || t == RETL_TYPE_DATETIME ?
		       "a date merge field takes dates (type date: YYYY-MM-DD)" : NULL;
	if (!strcmp(ft, "birthday"))
		return t == RETL_TYPE_DATE || t == RETL_TYPE_DATETIME ||
		       t == RETL_TYPE_INTEGER || t == RETL_TYPE_NUMBER ||
		       t == RETL_TYPE_BOOLEAN ?
		       "a birthday merge field takes \"MM/DD\" text (e.g. a template or a replace transform)" : NULL;
	return NULL;
}

/* GET path answered 200, or NULL with err (the audience's 404 named) */
static struct retl_http_req *get_answered(struct mc_ctx *c, const char *path,
					  int audience, struct retl_err *err)
{
	struct retl_http_req *req = retl_hd_get(&c->base, path);
	if (req->status == 200)
		return req;
	if (audience && req->status == 404) {
		retl_err_set(err, RETL_EXIT_USAGE,
			     "%s: object: mailchimp: audience (list) \"%s\" does not exist (GET /lists/%s: 404)",
			     c->base.sc->file, c->base.object, c->base.object);
	} else if (mailchimp_auth_error(req, err) == 0) {
		char *p = mailchimp_problem(req);
		retl_buf why = RETL_BUF_INIT;
		retl_buf_addf(&why, "HTTP %ld: %s", req->status, p ? p : "unexpected response");
		retl_hd_answered(&c->base, req, path, req->status > 0 ? why.ptr : p, err);
		retl_buf_free(&why);
		free(p);
	}
	retl_http_req_free(req);
	return NULL;
}

/* one mapped merge field against the audience's */
static void check_merge_field(const struct mc_ctx *c, const json_t *fields,
			      size_t i, retl_buf *probs)
{
	const char *t = c->base.ftarget[i], *file = c->base.sc->file;
	if (strncmp(t, "merge_fields.", 13))
		return;
	char *tag = retl_strdup(t + 13);
	char *sub = strchr(tag, '.');
	if (sub)
		*sub++ = '\0';
	const json_t *f = retl_dest_find(fields, "tag", tag, 0);
	const json_t *fci = f ? f : retl_dest_find(fields, "tag", tag, 1);
	if (!f) {
		const char *s = fci ? json_string_value(json_object_get(fci, "tag")) :
				retl_dest_closest(fields, "tag", tag, 2);
		retl_hd_problem(probs, "%s: fields.%s: mailchimp: audience %s has no merge field \"%s\"",
				file, t, c->base.object, tag);
		retl_hd_did_you_mean(probs, s);
	} else {
		const char *ft = json_string_value(json_object_get(f, "type"));
		const char *why = incompatible(ft ? ft : "text", c->base.ftype[i], sub);
		if (why)
			retl_hd_problem(probs, "%s: fields.%s: mailchimp: merge field %s is of type %s (mapped as %s): %s",
					file, t, tag, ft ? ft : "text",
					c->base.ftype[i] == RETL_TYPE_AUTO ? "the column's type" :
					retl_type_name(c->base.ftype[i]), why);
	}
	free(tag);
}

/* required merge fields the mapping leaves out */
static void check_required(const struct mc_ctx *c, const json_t *fields, retl_buf *probs)
{
	size_t j;
	json_t *x;
	json_array_foreach(fields, j, x) {
		const char *tag = json_string_value(json_object_get(x, "tag"));
		if (!tag || !json_is_true(json_object_get(x, "required")))
			continue;
		int mapped = 0;
		size_t tl = strlen(tag);
		for (size_t i = 0; i < c->base.nf && !mapped; i++) {
			const char *t = c->base.ftarget[i];
			mapped = !strncmp(t, "merge_fields.", 13) && !strncmp(t + 13, tag, tl) &&
				 (t[13 + tl] == '\0' || t[13 + tl] == '.');
		}
		if (mapped)
			continue;
		const char *name = json_string_value(json_object_get(x, "name"));
		retl_hd_problem(probs, "%s: fields: mailchimp: merge field %s (\"%s\") is required by audience %s but not mapped; Mailchimp refuses new members without it: add \"merge_fields.%s\"",
				c->base.sc->file, tag, name ? name : tag, c->base.object, tag);
	}
}

int mailchimp_check(void *ctx, struct retl_err *err)
{
	struct mc_ctx *c = ctx;
	retl_buf path = RETL_BUF_INIT, what = RETL_BUF_INIT, probs = RETL_BUF_INIT;
	json_t *root = NULL, *fields = NULL;
	struct retl_http_req *req;

	retl_buf_addf(&path, "/lists/%s", c->base.object);
	retl_buf_addf(&what, "/lists/%s/merge-fields", c->base.object);
	if ((req = get_answered(c, "/ping", 0, err)) != NULL) {
		retl_http_req_free(req);
		req = get_answered(c, path.ptr, 1, err);
	}
	if (req) {
		retl_http_req_free(req);
		retl_buf_adds(&path, "/merge-fields?count=1000");
		req = get_answered(c, path.ptr, 0, err);
	}
	if (req)
		fields = retl_hd_answer_array(&c->base, req, what.ptr, "merge_fields", &root, err);
	for (size_t i = 0; fields && i < c->base.nf; i++)
		check_merge_field(c, fields, i, &probs);
	if (fields)
		check_required(c, fields, &probs);
	retl_http_req_free(req);
	json_decref(root);
	retl_buf_free(&path);
	retl_buf_free(&what);
	return retl_hd_problems(&probs, fields != NULL, err);
}
