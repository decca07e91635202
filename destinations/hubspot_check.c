/*
 * hubspot_check.c - `retl check` for the HubSpot destination.
 *
 * One GET /crm/v3/properties/{object} answers everything check needs: the
 * token works (401/403 -> exit 4), the object exists (404), every mapped
 * target is a property (unknown ones are all listed at once, each with the
 * closest existing name), none is read-only, and the match property holds
 * unique values (hasUniqueValue, or email for contacts) as batch/upsert and
 * batch/read by idProperty require; one that is not is matched through
 * search (hubspot_search.c), and check says so.  Mapping problems exit 2.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "hubspot_int.h"
#include "log.h"

static int read_only(const json_t *prop)
{
	json_t *mm = json_object_get(prop, "modificationMetadata");
	return json_is_true(json_object_get(mm, "readOnlyValue"));
}

/* one mapped property against HubSpot's definition of it */
static void check_property(const struct hs_ctx *c, const json_t *results,
			   const char *t, retl_buf *probs)
{
	const char *file = c->base.sc->file;
	const json_t *p = retl_dest_find(results, "name", t, 0);
	if (!p) {
		const char *s = retl_dest_closest(results, "name", t, 3);
		retl_hd_problem(probs, "%s: fields.%s: hubspot: %s has no property \"%s\"",
				file, t, c->base.object, t);
		retl_hd_did_you_mean(probs, s);
	} else if (c->by_object_id && !strcmp(t, "hs_object_id")) {
		/* the record id: finds the record, never written */
	} else if (read_only(p) && c->base.mode != RETL_MODE_MEMBERSHIP) {
		/* (membership only reads its one field, the match property) */
		retl_hd_problem(probs, "%s: fields.%s: hubspot: %s.%s is read-only in HubSpot; remove it from fields",
				file, t, c->base.object, t);
	} else if (c->id_prop && !strcmp(t, c->id_prop) && c->search) {
		/* not a problem: said once the check passes (hubspot_check) */
	}
}

int hubspot_check(void *ctx, struct retl_err *err)
{
	struct hs_ctx *c = ctx;
	retl_buf path = RETL_BUF_INIT, probs = RETL_BUF_INIT;
	json_t *root = NULL, *results = NULL;

	retl_buf_addf(&path, "%s/%s", c->properties, c->base.object);
	struct retl_http_req *req = retl_hd_get(&c->base, path.ptr);
	if (hubspot_auth_error(req, err) < 0) {
		/* err says why */
	} else if (req->status == 404 ||
		   (req->status == 400 && req->resp.ptr &&
		    strstr(req->resp.ptr, "Unable to infer object type"))) {
		retl_err_set(err, RETL_EXIT_USAGE,
			     "%s: object: hubspot: object \"%s\" does not exist (GET %s: 404)",
			     c->base.sc->file, c->base.object, path.ptr);
	} else if (retl_hd_answered(&c->base, req, path.ptr, NULL, err) == 0) {
		results = retl_hd_answer_array(&c->base, req, path.ptr, "results", &root, err);
	}
	for (size_t i = 0; results && i < c->base.nf; i++)
		if (strncmp(c->base.ftarget[i], "associations.", 13))
			check_property(c, results, c->base.ftarget[i], &probs);
	if (results)
		hubspot_assoc_check(c, &probs);
	retl_http_req_free(req);
	json_decref(root);
	retl_buf_free(&path);
	int rc = retl_hd_problems(&probs, results != NULL, err);
	int member = c->base.mode == RETL_MODE_MEMBERSHIP;
	if (rc == 0 && c->search)
		retl_log(RETL_LOG_INFO, c->base.sc->name,
			 "hubspot: %s.%s does not have unique values (hasUniqueValue false): records are found through search (POST %s/%s/search, one request per 100 rows and page of 200 results, at most 5 a second) before they are %s; rows that match no record are %s, rows that match several fail \"ambiguous match\"",
			 c->base.object, c->id_prop, c->objects, c->base.object,
			 member ? "added to the list" : "updated or created",
			 c->base.mode == RETL_MODE_UPDATE || member ?
			 "failed \"no record matches\"" : "created");
	if (rc == 0 && c->base.mode == RETL_MODE_MEMBERSHIP)
		rc = hubspot_list_check(c, err);
	return rc;
}
