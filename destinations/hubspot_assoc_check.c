/*
 * hubspot_assoc_check.c - `retl check` of a HubSpot sync's associations:
 * the target object exists, its `by` property exists and is unique (except
 * companies' domain, found by search, and contacts' email), and the label
 * (or type_id, or the default unlabeled type) exists from the sync's object
 * to the target (GET .../labels).  Problems join the sync's list (exit 2).
 */
#include <string.h>

#include "buf.h"
#include "hubspot_assoc_int.h"

/* the target object and its `by` property (unique, unless companies'
 * domain, which is found by search) */
static int check_target(struct hs_ctx *c, const struct hs_decl *d, retl_buf *probs,
			struct retl_err *err)
{
	int exists = 1;
	const char *file = c->base.sc->file;
	retl_buf p = RETL_BUF_INIT;
	json_t *root = NULL;
	retl_buf_addf(&p, "%s/%s", c->properties, d->to);
	struct retl_http_req *req = retl_hd_get(&c->base, p.ptr);
	if (req->status == 404 || (req->status == 400 && req->resp.ptr &&
				   strstr(req->resp.ptr, "Unable to infer object type"))) {
		retl_hd_problem(probs, "%s: associations.%s.to: hubspot: object \"%s\" does not exist",
				file, d->name, d->to);
		exists = 0;
	} else if (hubspot_auth_error(req, err) == 0 &&
		   retl_hd_answered(&c->base, req, p.ptr, NULL, err) == 0) {
		json_t *res = retl_hd_answer_array(&c->base, req, p.ptr, "results", &root, err);
		const json_t *prop = res ? retl_dest_find(res, "name", d->by, 0) : NULL;
		int domain = !strcmp(d->by, "domain") && !strcmp(d->to, "companies");
		int email = !strcmp(d->by, "email") && !strcmp(d->to, "contacts");
		if (res && !prop) {
			retl_hd_problem(probs, "%s: associations.%s.by: hubspot: %s has no property \"%s\"",
					file, d->name, d->to, d->by);
			retl_hd_did_you_mean(probs, retl_dest_closest(res, "name", d->by, 3));
		} else if (prop && !domain && !email &&
			   !json_is_true(json_object_get(prop, "hasUniqueValue"))) {
			retl_hd_problem(probs, "%s: associations.%s.by: hubspot: %s.%s does not have unique values (hasUniqueValue false); associate by a unique property, or companies by domain",
					file, d->name, d->to, d->by);
		}
	} else {
		retl_hd_problem(probs, "%s: associations.%s: %s", file, d->name, err->msg);
		exists = 0;
	}
	json_decref(root);
	retl_http_req_free(req);
	retl_buf_free(&p);
	return exists;
}

void hubspot_assoc_check(struct hs_ctx *c, retl_buf *probs)
{
	struct hs_assoc *a = c->assoc;
	for (size_t i = 0; a && i < a->nd; i++) {
		struct retl_err err;
		retl_buf why = RETL_BUF_INIT;
		retl_err_clear(&err);
		int exists = check_target(c, &a->d[i], probs, &err);
		retl_err_clear(&err);
		if (exists && hubspot_assoc_resolve_one(c, &a->d[i], &why, &err) < 0)
			retl_hd_problem(probs, "%s: associations.%s%s: %s", c->base.sc->file,
					a->d[i].name, a->d[i].label ? ".label" : "", why.ptr);
		retl_buf_free(&why);
	}
}
