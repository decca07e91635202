/*
 * config_source.c - retl.json's "sources": where models are read from.
 *
 *   "warehouse": { "type": "postgres", "dsn": "${WAREHOUSE_URL}",
 *                  "statement_timeout": "10min", "connect_timeout": "10s" }
 *
 * type is postgres (the default) or redshift (same protocol); dsn is
 * required and its secrets are resolved (and its password registered for
 * redaction even when written inline); statement_timeout and
 * connect_timeout are duration strings or numbers of milliseconds
 * (connect_timeout: 10 s when absent, 0 = wait for ever; a connect_timeout
 * inside the DSN wins, as libpq reads it: pgwait.c); read is how rows are
 * streamed: "auto" (the default: COPY, or a cursor where the server is
 * Redshift or refuses COPY), "copy" or "cursor" (see README "Warehouses");
 * audit names a schema for the sync logs (audit.h) and audit_retention how
 * long they are kept.
 */
#include "config_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"

static const char *const source_keys[] = {
	"type", "dsn", "statement_timeout", "connect_timeout", "read",
	"audit", "audit_retention", "state_schema", NULL
};

/*
 * "10min", "30s", "500ms", "2h", "1d", or sums like "1h30min".
 * Returns 0 and *ms, or -1.
 */
static int parse_duration(const char *s, long *ms)
{
	static const struct { const char *unit; long ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "min", 60000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};
	long total = 0;
	if (!*s)
		return -1;
	while (*s) {
		if (*s < '0' || *s > '9')
			return -1;
		long n = 0;
		while (*s >= '0' && *s <= '9') {
			if (n > (LONG_MAX - 9) / 10)
				return -1;
			n = n * 10 + (*s++ - '0');
		}
		size_t i, len = 0;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			len = strlen(units[i].unit);
			if (!strncmp(s, units[i].unit, len) &&
			    !(s[len] >= 'a' && s[len] <= 'z'))
				break;
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return -1;
		if (n > (LONG_MAX - total) / units[i].ms)
			return -1;
		total += n * units[i].ms;
		s += len;
	}
	*ms = total;
	return 0;
}

/* "read": "auto" | "copy" | "cursor" */
static int load_read(struct retl_cfg_ctx *c, struct retl_source_cfg *sc,
		     json_t *obj, const char *path)
{
	static const struct { const char *name; enum retl_read_path v; } paths[] = {
		{ "auto", RETL_READ_AUTO }, { "copy", RETL_READ_COPY },
		{ "cursor", RETL_READ_CURSOR },
	};
	char *v = NULL;
	retl_buf p = RETL_BUF_INIT;
	int rc = -1;
	sc->read = RETL_READ_AUTO;
	if (retl_cfg_get_string(c, obj, path, "read", 0, 0, &v) < 0)
		goto out;
	if (!v) {
		rc = 0;
		goto out;
	}
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (!strcmp(v, paths[i].name)) {
			sc->read = paths[i].v;
			rc = 0;
			goto out;
		}
	retl_cfg_fail(c, retl_cfg_subpath(&p, path, "read"),
		      "unknown read path \"%s\" (expected one of auto, copy, cursor)",
		      v);
out:
	free(v);
	retl_buf_free(&p);
	return rc;
}

int retl_cfg_get_duration(struct retl_cfg_ctx *c, json_t *obj, const char *path,
			  const char *key, long *ms)
{
	json_t *t = json_object_get(obj, key);
	retl_buf p = RETL_BUF_INIT;
	int rc = 0;
	retl_cfg_subpath(&p, path, key);
	if (json_is_integer(t)) {
		if (json_integer_value(t) < 0 || json_integer_value(t) > LONG_MAX)
			rc = retl_cfg_fail(c, p.ptr,
					   "expected a duration such as \"30s\", \"10min\", \"2h\", \"500ms\" or a number of milliseconds >= 0");
		else
			*ms = (long)json_integer_value(t);
	} else if (json_is_string(t)) {
		if (parse_duration(json_string_value(t), ms) < 0)
			rc = retl_cfg_fail(c, p.ptr,
					   "invalid duration \"%s\" (expected e.g. \"30s\", \"10min\", \"2h\", \"500ms\", or a number of milliseconds)",
					   json_string_value(t));
	} else if (t) {
		rc = retl_cfg_fail(c, p.ptr,
				   "expected a duration such as \"30s\", \"10min\", \"2h\", \"500ms\" or a number of milliseconds >= 0");
	}
	retl_buf_free(&p);
	return rc;
}

/*
 * "audit": a schema name for the sync logs (audit.c), unquoted in SQL, so
 * a plain lower-case identifier; "audit_retention": how long they are kept
 * (default RETL_AUDIT_RETENTION_DEFAULT_MS, 0 = for ever).  Parsed before
 * the secrets are read: a bad value is an error at load.
 */
static int load_audit(struct retl_cfg_ctx *c, struct retl_source_cfg *sc,
		      json_t *obj, const char *path)
{
	retl_buf p = RETL_BUF_INIT;
	int rc = -1;
	sc->audit_retention_ms = RETL_AUDIT_RETENTION_DEFAULT_MS;
	if (retl_cfg_get_string(c, obj, path, "audit", 0, 0, &sc->audit) < 0)
		goto out;
	if (sc->audit) {
		size_t n = strlen(sc->audit), i;
		for (i = 0; i < n; i++) {
			char ch = sc->audit[i];
			if (!((ch >= 'a' && ch <= 'z') || ch == '_' ||
			      (i && ch >= '0' && ch <= '9')))
				break;
		}
		if (!n || i < n || n > 63) {
			retl_cfg_fail(c, retl_cfg_subpath(&p, path, "audit"),
				      "invalid schema name \"%s\" (expected lower-case letters, digits and _, not starting with a digit, at most 63)",
				      sc->audit);
			goto out;
		}
	}
	if (retl_cfg_get_duration(c, obj, path, "audit_retention",
			 &sc->audit_retention_ms) < 0)
		goto out;
	if (json_object_get(obj, "audit_retention") && !sc->audit) {
		retl_cfg_fail(c, retl_cfg_subpath(&p, path, "audit_retention"),
			      "audit_retention without audit (the schema the sync logs go to)");
		goto out;
	}
	rc = 0;
out:
	retl_buf_free(&p);
	return rc;
}

int retl_cfg_load_source(struct retl_cfg_ctx *c, struct retl_source_cfg *sc,
			 const char *name, json_t *obj, const char *path)
{
	retl_buf p = RETL_BUF_INIT;
	int rc = -1;
	sc->name = retl_strdup(name);
	if (!json_is_object(obj)) {
		retl_cfg_fail(c, path,
			      "expected an object with type, dsn, statement_timeout, connect_timeout, read");
		goto out;
	}
	int nrefs = c->nrefs;
	if (retl_cfg_check_keys(c, obj, path, source_keys, NULL) < 0 ||
	    retl_cfg_resolve_secrets(c, obj, path) < 0 ||
	    load_audit(c, sc, obj, path) < 0)
		goto out;

	if (retl_cfg_get_string(c, obj, path, "type", 0, 1, &sc->type) < 0)
		goto out;
	if (c->nrefs > nrefs) {
		/* its values are checked once its secrets are read
		 * (retl_config_resolve), by a verb that connects */
		sc->unresolved = json_incref(obj);
		rc = 0;
		goto out;
	}
	if (!sc->type) {
		sc->type = retl_strdup("postgres");
	} else if (strcmp(sc->type, "postgres") && strcmp(sc->type, "redshift")) {
		retl_cfg_fail(c, retl_cfg_subpath(&p, path, "type"),
			      "unknown source type \"%s\" (expected one of postgres, redshift)",
			      sc->type);
		goto out;
	}
	if (retl_cfg_get_string(c, obj, path, "dsn", 1, 1, &sc->dsn) < 0)
		goto out;
	retl_redact_dsn_password(sc->dsn);

	if (retl_cfg_get_duration(c, obj, path, "statement_timeout",
			 &sc->statement_timeout_ms) < 0)
		goto out;
	sc->connect_timeout_ms = RETL_CONNECT_TIMEOUT_DEFAULT_MS;
	if (retl_cfg_get_duration(c, obj, path, "connect_timeout",
			 &sc->connect_timeout_ms) < 0)
		goto out;
	if (load_read(c, sc, obj, path) < 0 ||
	    retl_cfg_get_string(c, obj, path, "state_schema", 0, 1,
				&sc->state_schema) < 0)
		goto out;
	rc = 0;
out:
	retl_buf_free(&p);
	return rc;
}
