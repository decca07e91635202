/*
 * airtable_check.c - `retl check` for the Airtable destination.
 *
 * One GET /v0/meta/bases/{base}/tables answers everything: the token works
 * and may read the schema (401/403 -> exit 4), the table exists (by id or
 * name), every mapped field exists and can be written (computed fields
 * cannot), every match field is of a type Airtable merges on
 * (performUpsert.fieldsToMergeOn), a field's declared `type` fits the
 * Airtable field type, and the
 * constant values a mapping can produce (`value`, `map` tables and their
 * `default`) are options of single/multiple select fields unless typecast
 * is on (then Airtable creates them).  Values that come from columns are
 * checked by Airtable at run time: such a row fails with its message.
 * Every problem is listed at once; mapping problems exit 2.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "airtable_int.h"
#include "buf.h"

static const json_t *find_named(const json_t *arr, const char *name, int by_id)
{
	size_t i;
	json_t *x;
	json_array_foreach(arr, i, x) {
		const char *n = json_string_value(json_object_get(x, "name"));
		const char *id = json_string_value(json_object_get(x, "id"));
		if ((n && !strcmp(n, name)) || (by_id && id && !strcmp(id, name)))
			return x;
	}
	return NULL;
}

static int computed(const char *t)
{
	static const char *const ro[] = {
		"formula", "createdTime", "rollup", "count", "lookup",
		"multipleLookupValues", "autoNumber", "lastModifiedTime", "button",
		"createdBy", "lastModifiedBy", "externalSyncSource", "aiText", NULL
	};
	for (const char *const *p = ro; *p; p++)
		if (!strcmp(t, *p))
			return 1;
	return 0;
}

static int one_of(const char *t, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(t, *list))
			return 1;
	return 0;
}

/* does a declared retl type fit the Airtable field type (no typecast)? */
static int type_fits(enum retl_type rt, const char *at)
{
	static const char *const text[] = {
		"singleLineText", "multilineText", "richText", "email", "url",
		"phoneNumber", "singleSelect", "barcode", NULL
	};
	static const char *const num[] = {
		"number", "percent", "currency", "rating", "duration", NULL
	};
	static const char *const date[] = { "date", "dateTime", NULL };
	switch (rt) {
	case RETL_TYPE_STRING:
		return one_of(at, text) || one_of(at, date);
	case RETL_TYPE_INTEGER:
	case RETL_TYPE_NUMBER:
		return one_of(at, num);
	case RETL_TYPE_BOOLEAN:
		return !strcmp(at, "checkbox");
	case RETL_TYPE_DATE:
	case RETL_TYPE_DATETIME:
		return one_of(at, date) || one_of(at, text);
	default:
		return 1;       /* auto (the column decides) and json */
	}
}

static int has_choice(const json_t *field, const char *v)
{
	json_t *choices = json_object_get(json_object_get(field, "options"), "choices");
	size_t i;
	json_t *x;
	json_array_foreach(choices, i, x) {
		const char *n = json_string_value(json_object_get(x, "name"));
		if (n && !strcmp(n, v))
			return 1;
	}
	return 0;
}

/* every string a constant of the mapping spec can give this field */
static void spec_constants(const json_t *spec, json_t *out)
{
	json_t *v = json_object_get(spec, "value");
	size_t i;
	json_t *x;
	if (json_is_string(v))
		json_array_append(out, v);
	json_array_foreach(v, i, x)
		if (json_is_string(x))
			json_array_append(out, x);
	json_array_foreach(json_object_get(spec, "transform"), i, x) {
		json_t *map = json_object_get(x, "map");
		const char *k;
		json_t *mv;
		json_object_foreach(map, k, mv)
			if (json_is_string(mv))
				json_array_append(out, mv);
		json_t *d = json_object_get(x, "default");
		if (map && json_is_string(d))
			json_array_append(out, d);
	}
}

static void check_options(const struct at_ctx *c, const char *t, const json_t *field,
			  const char *type, retl_buf *probs)
{
	if (c->typecast || (strcmp(type, "singleSelect") && strcmp(type, "multipleSelects")))
		return;
	json_t *consts = json_array();
	spec_constants(json_object_get(c->base.sc->fields, t), consts);
	size_t i;
	json_t *x;
	json_array_foreach(consts, i, x) {
		const char *v = json_string_value(x);
		if (!has_choice(field, v))
			retl_hd_problem(probs, "%s: fields.%s: airtable: \"%s\" is not an option of %s field \"%s\" (add it in Airtable, or set \"typecast\": true to let Airtable create it)",
					c->base.sc->file, t, v, type, t);
	}
	json_decref(consts);
}

/*
 * Field types Airtable's performUpsert takes in fieldsToMergeOn (its "Update
 * multiple records" reference: number, text, long text, single select,
 * multiple select, date; never computed fields).  An email, URL or phone
 * field is refused there, and every row of the run would fail.
 */
static int mergeable(const char *t)
{
	static const char *const ok[] = {
		"singleLineText", "multilineText", "number", "singleSelect",
		"multipleSelects", "date", NULL
	};
	return one_of(t, ok);
}

/*
 * Update mode finds records with a formula {Field}='text' or {Field}=number
 * (airtable_match.c): text-like, single select and number fields compare
 * so; a date, checkbox, multiple select or link would not match its own
 * value written as text.
 */
static int lookable(const char *t)
{
	static const char *const ok[] = {
		"singleLineText", "multilineText", "email", "url", "phoneNumber",
		"singleSelect", "barcode", "number", "currency", "percent", "rating",
		NULL
	};
	return one_of(t, ok);
}

/* the match fields (fieldsToMergeOn, or update mode's lookup) against
 * their types */
static void check_merge(const struct at_ctx *c, const json_t *fields, retl_buf *probs)
{
	for (size_t i = 0; i < c->nmerge && c->base.mode == RETL_MODE_UPDATE; i++) {
		const json_t *f = find_named(fields, c->merge[i], 0);
		const char *type = json_string_value(json_object_get(f, "type"));
		if (!type || lookable(type))
			continue;
		retl_hd_problem(probs, "%s: match.%s: airtable: field \"%s\" is of type %s; update mode finds records by a formula comparing the field with the row's value, which works for text, email, URL, phone, single select and number fields",
				c->base.sc->file, c->merge[i], c->merge[i], type);
	}
	for (size_t i = 0; i < c->nmerge && c->base.mode != RETL_MODE_UPDATE; i++) {
		const json_t *f = find_named(fields, c->merge[i], 0);
		const char *type = json_string_value(json_object_get(f, "type"));
		if (!type || mergeable(type))
			continue;
		retl_hd_problem(probs, "%s: match.%s: airtable: field \"%s\" is of type %s, which Airtable cannot merge on (fieldsToMergeOn takes singleLineText, multilineText, number, singleSelect, multipleSelects or date fields); match on such a field, e.g. a single line text copy of it",
				c->base.sc->file, c->merge[i], c->merge[i], type);
	}
}

/* one mapped field against the table's definition of it */
static void check_field(const struct at_ctx *c, const json_t *fields, size_t i,
			retl_buf *probs)
{
	const char *t = c->base.ftarget[i], *file = c->base.sc->file;
	if (c->by_id && !strcmp(t, "id"))
		return;         /* the record id, not a field */
	const json_t *f = find_named(fields, t, 0);
	const char *type = f ? json_string_value(json_object_get(f, "type")) : NULL;
	if (!f) {
		const json_t *twin = retl_dest_find(fields, "name", t, 1);
		retl_hd_problem(probs, "%s: fields.%s: airtable: table \"%s\" has no field \"%s\"",
				file, t, c->base.object, t);
		retl_hd_did_you_mean(probs, json_string_value(json_object_get(twin, "name")));
		return;
	}
	if (!type)
		return;
	if (computed(type)) {
		retl_hd_problem(probs, "%s: fields.%s: airtable: \"%s\" is a computed field (%s) and cannot be written; remove it from fields",
				file, t, t, type);
		return;
	}
	if (!c->typecast && !type_fits(c->base.ftype[i], type))
		retl_hd_problem(probs, "%s: fields.%s: airtable: type %s does not fit field \"%s\" of type %s (change the type, or set \"typecast\": true)",
				file, t, retl_type_name(c->base.ftype[i]), t, type);
	check_options(c, t, f, type, probs);
}

int airtable_check(void *ctx, struct retl_err *err)
{
	struct at_ctx *c = ctx;
	retl_buf path = RETL_BUF_INIT, probs = RETL_BUF_INIT;
	json_t *root = NULL, *tables = NULL;
	const json_t *table = NULL;

	retl_buf_addf(&path, "/v0/meta/bases/%s/tables", c->base_id);
	struct retl_http_req *req = retl_hd_get(&c->base, path.ptr);
	if (airtable_auth_error(c, req, err) == 0 &&
	    retl_hd_answered(&c->base, req, path.ptr, NULL, err) == 0)
		tables = retl_hd_answer_array(&c->base, req, path.ptr, "tables", &root, err);
	if (tables && !(table = find_named(tables, c->base.object, 1))) {
		const json_t *twin = retl_dest_find(tables, "name", c->base.object, 1);
		retl_hd_problem(&probs, "%s: object: airtable: base %s has no table \"%s\"",
				c->base.sc->file, c->base_id, c->base.object);
		retl_hd_did_you_mean(&probs, json_string_value(json_object_get(twin, "name")));
	}
	const json_t *fields = json_object_get(table, "fields");
	for (size_t i = 0; table && i < c->base.nf; i++)
		check_field(c, fields, i, &probs);
	if (table)
		check_merge(c, fields, &probs);
	retl_http_req_free(req);
	json_decref(root);
	retl_buf_free(&path);
	return retl_hd_problems(&probs, tables != NULL, err);
}
