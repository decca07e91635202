/*
 * salesforce_check.c - `retl check` for the Salesforce destination.
 *
 * open() already proved the credentials (a token).  One GET
 * /sobjects/{SObject}/describe answers the rest: every mapped field exists
 * and is createable / updateable as the mode needs, the match field is an
 * External ID (for update-only: any filterable field, or Id), relationship
 * targets name a relationship and an External ID of its parent
 * (salesforce_rel.c), and values fit the field's type (date, datetime, number,
 * boolean; constants and `map` outputs against picklist values; `truncate`
 * and constants against the length); an if_empty field must be readable,
 * i.e. in the describe, which leaves out what field-level security hides.  All problems at once, exit 2.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "salesforce_int.h"

/* constant values a field can take: "value", and the outputs of "map" */
static void constants(const json_t *spec, json_t *out)
{
	if (!json_is_object(spec))
		return;
	json_t *v = json_object_get(spec, "value");
	if (json_is_string(v))
		json_array_append(out, v);
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(spec, "transform"), i, t) {
		const char *k;
		json_t *m;
		json_object_foreach(json_object_get(t, "map"), k, m)
			if (json_is_string(m))
				json_array_append(out, m);
	}
}

static int picklist_has(const json_t *f, const char *v)
{
	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(f, "picklistValues"), i, x) {
		const char *pv = json_string_value(json_object_get(x, "value"));
		if (pv && !strcmp(pv, v) && !json_is_false(json_object_get(x, "active")))
			return 1;
	}
	return 0;
}

static void type_problem(struct sf_ctx *c, size_t i, const json_t *f, retl_buf *pr)
{
	const char *st = json_string_value(json_object_get(f, "type"));
	enum retl_type t = c->base.ftype[i];
	const char *want = NULL;
	if (!st)
		return;
	int numeric = !strcmp(st, "double") || !strcmp(st, "currency") ||
		      !strcmp(st, "int") || !strcmp(st, "percent") || !strcmp(st, "long");
	if (t == RETL_TYPE_DATE && strcmp(st, "date") && strcmp(st, "datetime"))
		want = "date";
	else if (t == RETL_TYPE_DATETIME && strcmp(st, "datetime"))
		want = "datetime";
	else if ((t == RETL_TYPE_NUMBER || t == RETL_TYPE_INTEGER) && !numeric &&
		 strcmp(st, "string") && strcmp(st, "textarea"))
		want = retl_type_name(t);
	else if (t == RETL_TYPE_BOOLEAN && strcmp(st, "boolean"))
		want = "boolean";
	else if (!strcmp(st, "boolean") && t != RETL_TYPE_BOOLEAN && t != RETL_TYPE_AUTO)
		want = retl_type_name(t);
	if (want)
		retl_buf_addf(pr, "\n%s: fields.%s: salesforce: %s.%s is a %s field; a %s value does not fit",
			      c->base.sc->file, c->base.ftarget[i], c->base.object, c->base.ftarget[i], st, want);
}

int sf_check(void *ctx, struct retl_err *err)
{
	struct sf_ctx *c = ctx;
	retl_buf path = RETL_BUF_INIT, pr = RETL_BUF_INIT;
	json_t *root = NULL, *consts = json_array();
	int rc = -1;

	retl_buf_addf(&path, "/services/data/v%s/sobjects/%s/describe", c->version, c->base.object);
	struct retl_http_req *req = sf_call(c, "GET", path.ptr, NULL, NULL, 0);
	if (sf_fatal_answer(c, req, err) < 0)
		goto out;
	if (req->status == 404) {
		retl_err_set(err, RETL_EXIT_USAGE,
			     "%s: object: salesforce: sObject \"%s\" does not exist (GET %s: 404 NOT_FOUND)",
			     c->base.sc->file, c->base.object, path.ptr);
		goto out;
	}
	if (req->status != 200) {
		char *t = sf_error_text(req);
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: GET %s: %s", path.ptr, t);
		free(t);
		goto out;
	}
	json_error_t je;
	root = json_loadb(req->resp.ptr, req->resp.len, 0, &je);
	json_t *fields = json_object_get(root, "fields");
	int creates = c->base.mode != RETL_MODE_UPDATE;
	int updates = c->base.mode != RETL_MODE_INSERT;
	for (size_t i = 0; i < c->base.nf; i++) {
		const char *t = c->base.ftarget[i];
		if (strchr(t, '.'))
			continue;       /* a relationship: sf_rel_check */
		const json_t *f = retl_dest_find(fields, "name", t, 1);
		if (!f) {
			retl_buf_addf(&pr, "\n%s: fields.%s: salesforce: %s has no field \"%s\"",
				      c->base.sc->file, t, c->base.object, t);
			/* field-level security leaves a field the user cannot
			 * read out of the describe; if_empty reads it first */
			if (retl_mapping_field_if_empty(c->base.sc->mapping, i))
				retl_buf_addf(&pr, " that retl can read (\"write\": \"if_empty\" reads the current value first; a field hidden from retl's user by field-level security is not in the describe)");
			continue;
		}
		if (creates && !json_is_true(json_object_get(f, "createable")))
			retl_buf_addf(&pr, "\n%s: fields.%s: salesforce: %s.%s is not createable (mode %s creates records)",
				      c->base.sc->file, t, c->base.object, t, retl_mode_name(c->base.mode));
		if (updates && !json_is_true(json_object_get(f, "updateable")) &&
		    !(c->ext && !strcmp(t, c->ext) && creates) && !(c->by_id && !strcmp(t, "Id")))
			retl_buf_addf(&pr, "\n%s: fields.%s: salesforce: %s.%s is not updateable (mode %s updates records)",
				      c->base.sc->file, t, c->base.object, t, retl_mode_name(c->base.mode));
		if (c->lookup && !strcmp(t, c->lookup) &&
		    !json_is_true(json_object_get(f, "filterable")))
			retl_buf_addf(&pr, "\n%s: match.%s: salesforce: %s.%s is not filterable: update finds records by it with a SOQL query (WHERE %s IN (…)), which it cannot be used in",
				      c->base.sc->file, t, c->base.object, t, t);
		if (c->ext && !strcmp(t, c->ext) && creates &&
		    !json_is_true(json_object_get(f, "externalId")))
			retl_buf_addf(&pr, "\n%s: match.%s: salesforce: %s.%s is not an External ID field; upserts find records by an External ID (mark the field \"External ID\" in Setup, or match on one that is)",
				      c->base.sc->file, t, c->base.object, t);
		type_problem(c, i, f, &pr);
		json_array_clear(consts);
		constants(json_object_get(c->base.sc->fields, t), consts);
		const char *st = json_string_value(json_object_get(f, "type"));
		long flen = (long)json_integer_value(json_object_get(f, "length"));
		size_t j;
		json_t *v;
		json_array_foreach(consts, j, v) {
			const char *s = json_string_value(v);
			if (st && (!strcmp(st, "picklist") || !strcmp(st, "multipicklist")) &&
			    json_is_false(json_object_get(f, "restrictedPicklist")) == 0 &&
			    !picklist_has(f, s))
				retl_buf_addf(&pr, "\n%s: fields.%s: salesforce: \"%s\" is not a value of the picklist %s.%s",
					      c->base.sc->file, t, s, c->base.object, t);
			else if (flen > 0 && (long)strlen(s) > flen)
				retl_buf_addf(&pr, "\n%s: fields.%s: salesforce: \"%s\" is longer than %s.%s allows (%ld)",
					      c->base.sc->file, t, s, c->base.object, t, flen);
		}
	}
	sf_rel_check(c, fields, &pr);
	if (pr.len) {
		retl_err_set(err, RETL_EXIT_USAGE, "%s", pr.ptr + 1);
		goto out;
	}
	rc = 0;
out:
	retl_http_req_free(req);
	json_decref(root);
	json_decref(consts);
	retl_buf_free(&path);
	retl_buf_free(&pr);
	return rc;
}
