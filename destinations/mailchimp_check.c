/*
 * mailchimp_check.c - `retl check` for the Mailchimp destination.
 *
 * GET /ping (the key works: 401 -> exit 4), GET /lists/{id} (the audience
 * exists: 404 -> exit 2), GET /lists/{id}/merge-fields: every mapped
 * merge_fields.TAG exists (with the closest tag when it does not) and takes
 * the mapped type, the constants a mapping can give it (`value`, `map`
 * values and their `default`) are among a dropdown's or radio's choices and
 * of the kind a number, date or birthday field takes, and every merge field
 * the audience requires is mapped (Mailchimp refuses new members without
 * it).  Values that come from columns are checked by Mailchimp at run time.  All mapping problems are
 * listed at once, exit 2.
 */
#include <ctype.h>
#include <stdio.h>
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

/* a constant as the member gets it: strings as they are, numbers and
 * booleans as text (NULL: null, which clears) */
static char *const_text(const json_t *v)
{
	if (json_is_string(v))
		return retl_strdup(json_string_value(v));
	if (json_is_boolean(v))
		return retl_strdup(json_is_true(v) ? "true" : "false");
	if (json_is_number(v))
		return json_dumps(v, JSON_ENCODE_ANY);
	return NULL;
}

/* every constant the field's mapping spec can give, as JSON values */
static void spec_constants(const json_t *spec, json_t *out)
{
	json_t *v = json_object_get(spec, "value");
	size_t i;
	json_t *x;
	if (v && !json_is_array(v) && !json_is_object(v))
		json_array_append(out, v);
	json_array_foreach(json_object_get(spec, "transform"), i, x) {
		json_t *map = json_object_get(x, "map");
		const char *k;
		json_t *mv;
		json_object_foreach(map, k, mv)
			json_array_append(out, mv);
		json_t *d = json_object_get(x, "default");
		if (d)
			json_array_append(out, d);
	}
}

/* digits and separators: "NN/NN/NNNN" for pattern "99/99/9999" */
static int shaped(const char *s, const char *pattern)
{
	for (; *pattern; s++, pattern++)
		if (*pattern == '9' ? !isdigit((unsigned char)*s) : *s != *pattern)
			return 0;
	return !*s;
}

static int is_number_text(const char *s)
{
	char *end;
	if (!*s)
		return 0;
	strtod(s, &end);
	return !*end;
}

/* the choices of a dropdown or radio field, quoted and comma-separated */
static int has_choice(const json_t *field, const char *v, retl_buf *list)
{
	json_t *ch = json_object_get(json_object_get(field, "options"), "choices");
	size_t i;
	json_t *x;
	int found = 0;
	json_array_foreach(ch, i, x) {
		const char *n = json_string_value(x);
		if (!n)
			continue;
		found |= !strcmp(n, v);
		retl_buf_addf(list, "%s\"%s\"", list->len ? ", " : "", n);
	}
	return found;
}

/* one constant against the merge field's type and choices */
static void check_constant(const struct mc_ctx *c, const char *t, const char *tag,
			   const json_t *f, const char *ft, const char *v,
			   retl_buf *probs)
{
	const char *file = c->base.sc->file;
	if (!*v)
		return;         /* "" clears */
	if (!strcmp(ft, "dropdown") || !strcmp(ft, "radio")) {
		retl_buf list = RETL_BUF_INIT;
		if (!has_choice(f, v, &list))
			retl_hd_problem(probs, "%s: fields.%s: mailchimp: \"%s\" is not a choice of %s merge field %s (choices: %s); add it to the field in Mailchimp, or map the value to one of them",
					file, t, v, ft, tag, list.len ? list.ptr : "none");
		retl_buf_free(&list);
	} else if (!strcmp(ft, "number") && !is_number_text(v)) {
		retl_hd_problem(probs, "%s: fields.%s: mailchimp: \"%s\" is not a number, and merge field %s is of type number",
				file, t, v, tag);
	} else if (!strcmp(ft, "date") && !shaped(v, "9999-99-99") &&
		   !shaped(v, "99/99/9999")) {
		retl_hd_problem(probs, "%s: fields.%s: mailchimp: \"%s\" is not a date (YYYY-MM-DD), and merge field %s is of type date",
				file, t, v, tag);
	} else if (!strcmp(ft, "birthday") && !shaped(v, "99/99")) {
		retl_hd_problem(probs, "%s: fields.%s: mailchimp: \"%s\" is not a birthday (MM/DD), and merge field %s is of type birthday",
				file, t, v, tag);
	}
}

/* the constants of the mapping of target t into merge field f */
static void check_constants(const struct mc_ctx *c, const char *t, const char *tag,
			    const json_t *f, const char *ft, retl_buf *probs)
{
	json_t *consts = json_array();
	size_t i;
	json_t *x;
	spec_constants(json_object_get(c->base.sc->fields, t), consts);
	json_array_foreach(consts, i, x) {
		char *v = const_text(x);
		if (v)
			check_constant(c, t, tag, f, ft, v, probs);
		free(v);
	}
	json_decref(consts);
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
		else if (!sub)
			check_constants(c, t, tag, f, ft ? ft : "text", probs);
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
	/* update and membership add no one: a required field they leave
	 * out is the member's own, or another sync's business */
	if (fields && c->base.mode != RETL_MODE_MEMBERSHIP &&
	    c->base.mode != RETL_MODE_UPDATE)
		check_required(c, fields, &probs);
	retl_http_req_free(req);
	json_decref(root);
	retl_buf_free(&path);
	retl_buf_free(&what);
	int rc = retl_hd_problems(&probs, fields != NULL, err);
	if (rc == 0 && c->base.mode == RETL_MODE_MEMBERSHIP)
		rc = mailchimp_segment_check(c, err);
	return rc;
}
