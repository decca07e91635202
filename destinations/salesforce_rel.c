/*
 * salesforce_rel.c - relationship targets: "Account.External_Id__c" sets a
 * Contact's lookup to the Account whose External_Id__c is the value, so the
 * warehouse needs no Salesforce Ids (README "Salesforce", "Relationships").
 *
 * Salesforce's documents, which these rules follow:
 * - "Relationship Fields in Records" (Bulk API, datafiles_xml_rel_fields):
 *   in JSON the relationship name carries an object,
 *   "RelationshipName": {"IndexedFieldName": "value"}.  sObject Collections
 *   says every sObject in its body carries an attributes map with its type;
 *   whether that holds for a nested reference it does not say, and a nested
 *   object without one is reported refused as "Cannot deserialize instance
 *   of <unknown>" (jsforce issue 1031), so retl sends the parent's type
 *   (the lookup's referenceTo, from one describe at open):
 *   "Account": {"attributes": {"type": "Account"}, "External_Id__c": "A-1"};
 * - Bulk API 2.0 "Relationship Fields in a Header Row (2.0)": the CSV
 *   header RelationshipName.IndexedFieldName; child-to-parent only, one
 *   level; the parent's field must be indexed: a custom field marked
 *   External ID, or a standard field whose idLookup is true; custom
 *   relationships end in __r (Mother_Of_Child__r.External_ID__c).
 * - A lookup is cleared through the lookup field itself (AccountId: null
 *   over REST, #N/A in a Bulk CSV); a relationship reference with no value
 *   names no parent.  So a NULL or empty value clears AccountId, and every
 *   relationship adds its lookup field as one more Bulk column, #N/A on
 *   the rows that clear it and empty (left alone) on the others.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "payload.h"
#include "salesforce_int.h"

static int ends_with(const char *s, size_t n, const char *tail)
{
	size_t t = strlen(tail);
	return n >= t && !memcmp(s + n - t, tail, t);
}

void sf_lookup_name(const char *rel, size_t n, retl_buf *out)
{
	if (ends_with(rel, n, "__r")) {
		retl_buf_add(out, rel, n - 1);
		retl_buf_addc(out, 'c');
	} else {
		retl_buf_add(out, rel, n);
		retl_buf_adds(out, "Id");
	}
}

static int api_name(const char *s, size_t n)
{
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* one dotted target: its shape, and the lookup it sets not mapped too */
static int rel_one(struct sf_ctx *c, size_t i, struct retl_err *err)
{
	const struct retl_sync_cfg *sc = c->base.sc;
	const char *t = c->base.ftarget[i], *dot = strchr(t, '.');
	size_t rl = (size_t)(dot - t);
	if (strchr(dot + 1, '.') || !api_name(t, rl) || !api_name(dot + 1, strlen(dot + 1)))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: fields.%s: a dotted Salesforce target is a relationship and its parent's External ID field, <relationship>.<field> (e.g. \"Account.External_Id__c\", \"Parent_Account__r.Ext__c\"); other dotted targets cannot be sent",
				    sc->file, t);
	if (ends_with(t, rl, "__c"))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: fields.%s: \"%.*s\" is the lookup field; the target names its relationship: \"%.*s__r%s\"",
				    sc->file, t, (int)rl, t, (int)rl - 3, t, dot);
	if (c->ext && !strcmp(t, c->ext))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: match.%s: the match field is a field of %s itself, not a relationship",
				    sc->file, t, c->base.object);
	retl_buf lk = RETL_BUF_INIT;
	sf_lookup_name(t, rl, &lk);
	int clash = retl_hd_field(&c->base, lk.ptr) >= 0;
	if (clash)
		retl_err_set(err, RETL_EXIT_USAGE,
			     "%s: fields.%s: fields.%s sets the same lookup; map one of them",
			     sc->file, t, lk.ptr);
	retl_buf_free(&lk);
	if (clash)
		return -1;
	for (size_t j = 0; j < i; j++) {
		const char *u = c->base.ftarget[j];
		if (!strncmp(u, t, rl + 1))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: fields.%s sets the same relationship; a lookup is set through one parent field",
					    sc->file, t, u);
	}
	return 0;
}

int sf_rel_open(struct sf_ctx *c, struct retl_err *err)
{
	c->rel_type = retl_calloc(c->base.nf ? c->base.nf : 1, sizeof(*c->rel_type));
	for (size_t i = 0; i < c->base.nf; i++) {
		if (!strchr(c->base.ftarget[i], '.'))
			continue;
		if (rel_one(c, i, err) < 0)
			return -1;
		c->nrel++;
	}
	return 0;
}

/* the parent type of each relationship, from the object's describe; one
 * the describe does not have stays NULL (Salesforce refuses the rows, and
 * `retl check` says why) */
static void rel_types(struct sf_ctx *c, const json_t *fields)
{
	for (size_t i = 0; i < c->base.nf; i++) {
		const char *t = c->base.ftarget[i], *dot = strchr(t, '.');
		if (!dot)
			continue;
		char rel[256];
		snprintf(rel, sizeof(rel), "%.*s", (int)(dot - t), t);
		const json_t *to = json_object_get(retl_dest_find(fields, "relationshipName", rel, 0),
						   "referenceTo");
		if (json_array_size(to) == 1)
			c->rel_type[i] = retl_strdup(json_string_value(json_array_get(to, 0)));
	}
}

int sf_describe_open(struct sf_ctx *c, struct retl_err *err)
{
	retl_buf path = RETL_BUF_INIT;
	int rc = 0;
	retl_buf_addf(&path, "/services/data/v%s/sobjects/%s/describe", c->version, c->base.object);
	struct retl_http_req *req = sf_call(c, "GET", path.ptr, NULL, NULL, 0);
	if (sf_fatal_answer(c, req, err) < 0) {
		rc = -1;
	} else if (req->status != 200) {
		char *t = sf_error_text(req);
		rc = retl_err_set(err, RETL_EXIT_DEST, "salesforce: GET %s: %s", path.ptr, t);
		free(t);
	} else {
		json_error_t je;
		json_t *root = json_loadb(req->resp.ptr, req->resp.len, 0, &je);
		json_t *fields = json_object_get(root, "fields");
		rel_types(c, fields);
		if (c->lookup)
			sf_lookup_type(c, fields);
		if (c->nie)
			sf_ie_type(c, fields);
		json_decref(root);
	}
	retl_http_req_free(req);
	retl_buf_free(&path);
	return rc;
}

static int no_value(const struct retl_pv *v)
{
	return v->kind == RETL_PV_NULL || (v->kind == RETL_PV_STRING && v->len == 2);
}

int sf_rel_json(struct sf_ctx *c, const struct retl_pfield *f, retl_buf *body)
{
	struct retl_preader r;
	struct retl_pfield g;
	retl_buf name = RETL_BUF_INIT;
	int rc;
	if (retl_pv_open(&r, &f->v) < 0 || (rc = retl_payload_next(&r, &g)) < 0)
		return -1;
	if (rc == 0)
		return 0;               /* on_null "skip": left as it is */
	if (no_value(&g.v)) {
		retl_buf_adds(body, ",\"");
		sf_lookup_name(f->name, f->name_len, body);
		retl_buf_adds(body, "\":null");
		return 0;
	}
	/* the parent's type in an attributes map, as every sObject in an
	 * sObject Collections body carries one */
	retl_pfield_name(f, &name);
	retl_buf_addc(&name, '.');
	retl_pfield_name(&g, &name);
	int fi = retl_hd_field(&c->base, name.ptr);
	retl_buf_free(&name);
	retl_buf_adds(body, ",\"");
	retl_buf_add(body, f->name, f->name_len);
	retl_buf_adds(body, "\":{");
	if (fi >= 0 && c->rel_type[fi]) {
		retl_buf_adds(body, "\"attributes\":{\"type\":");
		retl_buf_add_json_str(body, c->rel_type[fi], strlen(c->rel_type[fi]));
		retl_buf_adds(body, "},");
	}
	retl_buf_addc(body, '"');
	retl_buf_add(body, g.name, g.name_len);
	retl_buf_adds(body, "\":");
	retl_buf_add(body, g.v.raw, g.v.len);
	retl_buf_addc(body, '}');
	return 0;
}

void sf_rel_header(struct sf_ctx *c, retl_buf *o)
{
	for (size_t i = 0; i < c->base.nf; i++) {
		const char *t = c->base.ftarget[i], *dot = strchr(t, '.');
		if (!dot)
			continue;
		retl_buf_addc(o, ',');
		sf_lookup_name(t, (size_t)(dot - t), o);
	}
}

/* ---- retl check ---- */

/* the field of `fields` whose relationshipName is rel, or NULL */
static const json_t *by_relationship(const json_t *fields, const char *rel)
{
	return retl_dest_find(fields, "relationshipName", rel, 0);
}

/* GET the parent's describe (fields array into *root), or NULL with a
 * problem added */
static const json_t *parent_fields(struct sf_ctx *c, const char *parent,
				   const char *t, json_t **root, retl_buf *pr)
{
	retl_buf path = RETL_BUF_INIT;
	retl_buf_addf(&path, "/services/data/v%s/sobjects/%s/describe", c->version, parent);
	struct retl_http_req *req = sf_call(c, "GET", path.ptr, NULL, NULL, 0);
	json_error_t je;
	*root = req->status == 200 ? json_loadb(req->resp.ptr, req->resp.len, 0, &je) : NULL;
	if (!*root) {
		char *why = sf_error_text(req);
		retl_buf_addf(pr, "\n%s: fields.%s: salesforce: cannot describe the parent %s (GET %s: %s)",
			      c->base.sc->file, t, parent, path.ptr, why);
		free(why);
	}
	retl_http_req_free(req);
	retl_buf_free(&path);
	return *root ? json_object_get(*root, "fields") : NULL;
}

static void rel_check_one(struct sf_ctx *c, const json_t *fields, size_t i,
			  retl_buf *pr)
{
	const char *file = c->base.sc->file, *t = c->base.ftarget[i];
	const char *dot = strchr(t, '.');
	char rel[256];
	snprintf(rel, sizeof(rel), "%.*s", (int)(dot - t), t);
	const json_t *lf = by_relationship(fields, rel);
	if (!lf) {
		retl_buf_addf(pr, "\n%s: fields.%s: salesforce: %s has no relationship \"%s\"",
			      file, t, c->base.object, rel);
		const char *s = retl_dest_closest(fields, "relationshipName", rel, 3);
		if (s)
			retl_buf_addf(pr, " (did you mean \"%s\"?)", s);
		return;
	}
	const char *lname = json_string_value(json_object_get(lf, "name"));
	const json_t *to = json_object_get(lf, "referenceTo");
	if (json_array_size(to) != 1) {
		retl_buf_addf(pr, "\n%s: fields.%s: salesforce: %s.%s is polymorphic (it may point to %zu objects); retl sets lookups to one parent object",
			      file, t, c->base.object, lname ? lname : rel, json_array_size(to));
		return;
	}
	retl_buf want = RETL_BUF_INIT;
	sf_lookup_name(rel, strlen(rel), &want);
	if (lname && strcmp(lname, want.ptr))
		/* a NULL clears the lookup by the name Salesforce's convention
		 * gives it; an org where it differs cannot be cleared so */
		retl_buf_addf(pr, "\n%s: fields.%s: salesforce: the lookup of relationship %s is %s.%s, not %s, which retl clears on a NULL",
			      file, t, rel, c->base.object, lname, want.ptr);
	retl_buf_free(&want);
	int creates = c->base.mode != RETL_MODE_UPDATE, updates = c->base.mode != RETL_MODE_INSERT;
	if ((creates && !json_is_true(json_object_get(lf, "createable"))) ||
	    (updates && !json_is_true(json_object_get(lf, "updateable"))))
		retl_buf_addf(pr, "\n%s: fields.%s: salesforce: the lookup %s.%s is not %s (mode %s)",
			      file, t, c->base.object, lname ? lname : rel,
			      creates && !json_is_true(json_object_get(lf, "createable")) ?
			      "createable" : "updateable", retl_mode_name(c->base.mode));
	const char *parent = json_string_value(json_array_get(to, 0));
	json_t *root = NULL;
	const json_t *pf = parent ? parent_fields(c, parent, t, &root, pr) : NULL;
	if (!pf) {
		json_decref(root);
		return;
	}
	const json_t *f = retl_dest_find(pf, "name", dot + 1, 1);
	if (!f) {
		retl_buf_addf(pr, "\n%s: fields.%s: salesforce: %s has no field \"%s\"",
			      file, t, parent, dot + 1);
		const char *s = retl_dest_closest(pf, "name", dot + 1, 3);
		if (s)
			retl_buf_addf(pr, " (did you mean \"%s\"?)", s);
	} else if (!json_is_true(json_object_get(f, "externalId")) &&
		   !json_is_true(json_object_get(f, "idLookup"))) {
		/* Bulk API 2.0, Relationship Fields in a Header Row: "You can
		 * only use indexed fields on the parent": External ID, or a
		 * standard field with idLookup */
		retl_buf_addf(pr, "\n%s: fields.%s: salesforce: %s.%s is not an External ID field; a lookup is set through the parent's External ID (or a standard idLookup field such as Email on User)",
			      file, t, parent, dot + 1);
	}
	json_decref(root);
}

void sf_rel_check(struct sf_ctx *c, const json_t *fields, retl_buf *pr)
{
	for (size_t i = 0; i < c->base.nf; i++)
		if (strchr(c->base.ftarget[i], '.'))
			rel_check_one(c, fields, i, pr);
}
