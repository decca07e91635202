/*
 * config_dest.c - retl.json's "destinations": where payloads go.
 *
 *   "hubspot": { "type": "hubspot", "token": "${HUBSPOT_TOKEN}" }
 *
 * The type names an entry of destinations/destination.h's table, which says
 * which other keys the connection may carry and validates them; every
 * destination also takes "base_url" (for emulators and proxies: https, or
 * plain http only to a loopback host).
 */
#include "config_int.h"

#include <string.h>
#include <strings.h>

#include "destination.h"
#include "http_dest.h"

static const char *const dest_base_keys[] = { "type", "base_url", NULL };

static int loopback_host(const char *authority, size_t n)
{
	const char *at = memrchr(authority, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - authority);
		authority = at + 1;
	}
	if (n >= 5 && !strncmp(authority, "[::1]", 5))
		return n == 5 || authority[5] == ':';
	size_t host = 0;
	while (host < n && authority[host] != ':')
		host++;
	if (host == 9 && !strncasecmp(authority, "localhost", 9))
		return 1;
	if (host < 7 || strncmp(authority, "127.", 4))
		return 0;
	int dots = 0;
	for (size_t i = 0; i < host; i++) {
		if (authority[i] == '.') {
			if (i + 1 == host || authority[i + 1] == '.')
				return 0;
			dots++;
		} else if (authority[i] < '0' || authority[i] > '9') {
			return 0;
		}
	}
	return dots == 3;
}

static int check_base_url(struct retl_cfg_ctx *c, const char *path,
			  const char *url)
{
	const char *rest = NULL;
	int https = 0;
	if (!strncasecmp(url, "https://", 8)) {
		rest = url + 8;
		https = 1;
	} else if (!strncasecmp(url, "http://", 7)) {
		rest = url + 7;
	}
	size_t auth = rest ? strcspn(rest, "/?#") : 0;
	if (rest && auth && (https || loopback_host(rest, auth)))
		return 0;
	if (rest && auth)
		return retl_cfg_fail(c, path,
				     "plain http:// is allowed only to a loopback host (localhost, 127.x.x.x, [::1]); use https://");
	return retl_cfg_fail(c, path,
			     "expected an https:// URL (or http:// to a loopback host)");
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
	if (retl_cfg_check_keys(c, obj, path, d->http ? retl_hd_base_keys :
				dest_base_keys, d->conn_keys) < 0 ||
	    retl_cfg_resolve_secrets(c, obj, path) < 0)
		goto out;
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
