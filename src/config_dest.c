/*
 * config_dest.c - retl.json's "destinations": where payloads go.
 *
 *   "hubspot": { "type": "hubspot", "token": "${HUBSPOT_TOKEN}" }
 *
 * The type names an entry of destinations/destination.h's table, which says
 * which other keys the connection may carry and validates them; every
 * destination also takes "base_url" (for emulators and proxies), held to
 * url.h's policy: https, or plain http only to a literal loopback address,
 * and no userinfo.
 */
#include "config_int.h"

#include "destination.h"
#include "url.h"
#include "http_dest.h"

static const char *const dest_base_keys[] = { "type", "base_url", NULL };

/* the URL policy of url.h, reported at the key's path */
static int check_base_url(struct retl_cfg_ctx *c, const char *path,
			  const char *url)
{
	retl_buf why = RETL_BUF_INIT;
	int rc = 0;
	if (retl_url_check(url, &why) < 0)
		rc = retl_cfg_fail(c, path, "%s", why.ptr);
	retl_buf_free(&why);
	return rc;
}

int retl_cfg_load_dest(struct retl_cfg_ctx *c, struct retl_dest_cfg *dc,
		       const char *name, json_t *obj, const char *path)
{
	retl_buf p = RETL_BUF_INIT;
	int rc = -1;
	dc->name = retl_strdup(name);
	if (!json_is_object(obj)) {
		retl_cfg_fail(c, path, "expected an object with a \"type\"");
		goto out;
	}
	/* type first: it says which other keys are allowed */
	json_t *t = json_object_get(obj, "type");
	if (!t) {
		retl_cfg_fail(c, retl_cfg_subpath(&p, path, "type"),
			      "missing (required; one of %s)",
			      retl_destination_names());
		goto out;
	}
	if (!json_is_string(t)) {
		retl_cfg_fail(c, retl_cfg_subpath(&p, path, "type"),
			      "expected a string (one of %s)",
			      retl_destination_names());
		goto out;
	}
	const struct retl_destination *d = retl_destination_find(json_string_value(t));
	if (!d) {
		retl_cfg_fail(c, retl_cfg_subpath(&p, path, "type"),
			      "unknown destination type \"%s\" (expected one of %s)",
			      json_string_value(t), retl_destination_names());
		goto out;
	}
	dc->type = retl_strdup(d->name);
	int nrefs = c->nrefs;
	if (retl_cfg_check_keys(c, obj, path, d->http ? retl_hd_base_keys :
				dest_base_keys, d->conn_keys) < 0 ||
	    retl_cfg_resolve_secrets(c, obj, path) < 0)
		goto out;
	if (c->nrefs > nrefs) {
		/* base_url and the destination's own checks wait for the
		 * secrets, read by a verb that connects (retl_config_resolve) */
		dc->unresolved = json_incref(obj);
		rc = 0;
		goto out;
	}
	if (retl_cfg_get_string(c, obj, path, "base_url", 0, 1, &dc->base_url) < 0)
		goto out;
	if (dc->base_url &&
	    check_base_url(c, retl_cfg_subpath(&p, path, "base_url"), dc->base_url) < 0)
		goto out;
	dc->options = json_incref(obj);
	if (d->validate && d->validate(dc, c->err) < 0) {
		if (!c->err->code)
			c->err->code = RETL_EXIT_USAGE;
		goto out;
	}
	rc = 0;
out:
	retl_buf_free(&p);
	return rc;
}
