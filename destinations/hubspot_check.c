/*
 * hubspot_check.c - `retl check` for the HubSpot destination.
 *
 * One GET /crm/v3/properties/{object} answers everything check needs: the
 * token works (401/403 -> exit 4), the object exists (404), every mapped
 * target is a property (unknown ones are all listed at once, each with the
 * closest existing name), none is read-only, and the match property holds
 * unique values (hasUniqueValue, or email for contacts) as batch/upsert and
 * batch/read by idProperty require.  Mapping problems exit 2.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "hubspot_int.h"

static int read_only(const json_t *prop)
{
	json_t *mm = json_object_get(prop, "modificationMetadata");
	return json_is_true(json_object_get(mm, "readOnlyValue"));
}

int hubspot_check(void *ctx, struct retl_err *err)
{
	struct hs_ctx *c = ctx;
	retl_buf path = RETL_BUF_INIT, probs = RETL_BUF_INIT;
	json_t *root = NULL;
	int rc = -1;

	retl_buf_addf(&path, "/crm/v3/properties/%s", c->object);
	struct retl_http_req *req = retl_hd_get(&c->base, path.ptr);
	if (hubspot_auth_error(req, err) < 0)
		goto out;
	if (req->status == 404 ||
	    (req->status == 400 && req->resp.ptr &&
	     strstr(req->resp.ptr, "Unable to infer object type"))) {
		retl_err_set(err, RETL_EXIT_USAGE,
			     "%s: object: hubspot: object \"%s\" does not exist (GET /crm/v3/properties/%s: 404)",
			     c->base.sc->file, c->object, c->object);
		goto out;
	}
	if (req->status != 200) {
		char *r = retl_http_reason(req);
		if (req->status <= 0)
			retl_err_set(err, RETL_EXIT_DEST, "hubspot: cannot reach %s: %s",
				     c->base.url, req->error[0] ? req->error : (r ? r : "no response"));
		else
			retl_err_set(err, RETL_EXIT_DEST,
				     "hubspot: GET /crm/v3/properties/%s: %s",
				     c->object, r ? r : "unexpected response");
		free(r);
		goto out;
	}
	json_error_t je;
	root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	json_t *results = json_object_get(root, "results");
	if (!json_is_array(results)) {
		retl_err_set(err, RETL_EXIT_DEST,
			     "hubspot: GET /crm/v3/properties/%s: no \"results\" in the response",
			     c->object);
		goto out;
	}

	for (size_t i = 0; i < c->base.nf; i++) {
		const char *t = c->base.ftarget[i];
		const json_t *p = retl_dest_find(results, "name", t, 0);
		if (probs.len)
			retl_buf_addc(&probs, '\n');
		size_t mark = probs.len;
		if (!p) {
			const char *s = retl_dest_closest(results, "name", t, 3);
			retl_buf_addf(&probs, "%s: fields.%s: hubspot: %s has no property \"%s\"",
				      c->base.sc->file, t, c->object, t);
			if (s)
				retl_buf_addf(&probs, " (did you mean \"%s\"?)", s);
		} else if (read_only(p)) {
			retl_buf_addf(&probs, "%s: fields.%s: hubspot: %s.%s is read-only in HubSpot; remove it from fields",
				      c->base.sc->file, t, c->object, t);
		} else if (c->id_prop && !strcmp(t, c->id_prop) &&
			   !json_is_true(json_object_get(p, "hasUniqueValue")) &&
			   !(!strcmp(c->object, "contacts") && !strcmp(t, "email"))) {
			retl_buf_addf(&probs, "%s: match.%s: hubspot: %s.%s does not have unique values (hasUniqueValue false); match on a unique property%s",
				      c->base.sc->file, t, c->object, t,
				      !strcmp(c->object, "contacts") ? " such as email" : "");
		}
		if (probs.len == mark && mark)
			retl_buf_truncate(&probs, mark - 1);
	}
	if (probs.len) {
		retl_err_set(err, RETL_EXIT_USAGE, "%s", probs.ptr);
		goto out;
	}
	rc = 0;
out:
	retl_http_req_free(req);
	json_decref(root);
	retl_buf_free(&path);
	retl_buf_free(&probs);
	return rc;
}
