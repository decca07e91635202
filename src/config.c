/*
 * config.c - loads a retl project: retl.json + mappings/<sync>.json.
 *
 * Everything that can be checked without a network is checked here, so
 * `retl check` (and every other verb) fails fast with a message that names
 * the file, the JSON path and what was expected:
 *
 *   retl.json:4:17: unexpected token near ','                     (syntax)
 *   retl.json: sources.warehouse.dsnn: unknown key (expected one of ...)
 *   mappings/x.json: mode: unknown mode "upsrt" (expected one of ...)
 *
 * Message shapes (keep them consistent; they are part of the product):
 *   <file>: <path>: unknown key (expected one of a, b, c)
 *   <file>: <path>: missing (required)
 *   <file>: <path>: expected <what>
 *   <file>: <path>: unknown <thing> "<value>" (expected one of ...)
 * Files are shown relative to the project directory; JSON paths are dotted
 * ("sources.warehouse.dsn"), array elements indexed ("key[1]").
 *
 * Secrets: in retl.json's sources and destinations, "${NAME}" anywhere in a
 * string is replaced from the environment and a whole-string "@file:PATH"
 * by the file's content (trailing newlines stripped; PATH relative to the
 * project directory).  There is no escape for a literal "${".  Resolved
 * values are registered with redact.h, and every message this file returns
 * is passed through retl_redact_str() as a last line of defence, so a
 * message that quotes a value never quotes a secret.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "buf.h"
#include "destination.h"
#include "mapping.h"
#include "redact.h"
#include "schedule.h"

static const char *const mode_names[] = { "upsert", "update", "insert", "mirror", NULL };
static const char *const remove_names[] = {
	"ignore", "archive", "delete", "unsubscribe", "clear", NULL
};

static const char *const top_keys[] = { "state", "sources", "destinations", NULL };
static const char *const source_keys[] = { "type", "dsn", "statement_timeout", NULL };
static const char *const dest_base_keys[] = { "type", "base_url", NULL };
static const char *const sync_keys[] = {
	"source", "query", "key", "destination", "object", "mode", "match",
	"fields", "on_remove", "safety", "schedule", NULL
};
static const char *const safety_keys[] = {
	"max_removed", "max_removed_ratio", "refuse_empty_model", NULL
};

const char *retl_mode_name(enum retl_mode m)
{
	return (unsigned)m < 4 ? mode_names[m] : "?";
}

const char *retl_on_remove_name(enum retl_on_remove r)
{
	return (unsigned)r < 5 ? remove_names[r] : "?";
}

/* what is being loaded, for messages */
struct ctx {
	const char *dir;
	const char *file;         /* "retl.json", "mappings/x.json" */
	struct retl_err *err;
};

/* "<file>: <path>: <msg>", or "<file>: <msg>" when path is empty */
__attribute__((format(printf, 3, 4)))
static int fail(struct ctx *c, const char *path, const char *fmt, ...)
{
	retl_buf b = RETL_BUF_INIT;
	retl_buf_adds(&b, c->file);
	retl_buf_adds(&b, ": ");
	if (path && *path) {
		retl_buf_adds(&b, path);
		retl_buf_adds(&b, ": ");
	}
	va_list ap;
	va_start(ap, fmt);
	retl_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	retl_err_set(c->err, RETL_EXIT_USAGE, "%s", b.ptr);
	retl_buf_free(&b);
	return -1;
}

static int in_list(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (!strcmp(*list, s))
			return 1;
	return 0;
}

static void add_list(retl_buf *b, const char *const *list, int *first)
{
	for (; list && *list; list++) {
		if (!*first)
			retl_buf_adds(b, ", ");
		retl_buf_adds(b, *list);
		*first = 0;
	}
}

/* path + "." + key into b (reset first) */
static const char *subpath(retl_buf *b, const char *path, const char *key)
{
	retl_buf_reset(b);
	if (path && *path) {
		retl_buf_adds(b, path);
		retl_buf_addc(b, '.');
	}
	retl_buf_adds(b, key);
	return retl_buf_cstr(b);
}

/* every key of obj must be in a or b */
static int check_keys(struct ctx *c, json_t *obj, const char *path,
		      const char *const *a, const char *const *b)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		if (in_list(a, k) || in_list(b, k))
			continue;
		retl_buf p = RETL_BUF_INIT, allowed = RETL_BUF_INIT;
		int first = 1;
		add_list(&allowed, a, &first);
		add_list(&allowed, b, &first);
		fail(c, subpath(&p, path, k), "unknown key (expected one of %s)",
		     retl_buf_cstr(&allowed));
		retl_buf_free(&p);
		retl_buf_free(&allowed);
		return -1;
	}
	return 0;
}

/* optional string member; *out stays NULL when absent */
static int get_string(struct ctx *c, json_t *obj, const char *path,
		      const char *key, int required, int nonempty, char **out)
{
	json_t *v = json_object_get(obj, key);
	retl_buf p = RETL_BUF_INIT;
	int rc = 0;
	if (!v) {
		if (required)
			rc = fail(c, subpath(&p, path, key), "missing (required)");
	} else if (!json_is_string(v) || (nonempty && !json_string_length(v))) {
		rc = fail(c, subpath(&p, path, key), nonempty ?
			  "expected a non-empty string" : "expected a string");
	} else {
		*out = retl_strndup(json_string_value(v), json_string_length(v));
	}
	retl_buf_free(&p);
	return rc;
}

static char *join_dir(const char *dir, const char *rel)
{
	if (rel[0] == '/')
		return retl_strdup(rel);
	retl_buf b = RETL_BUF_INIT;
	retl_buf_adds(&b, dir);
	if (b.len && b.ptr[b.len - 1] != '/')
		retl_buf_addc(&b, '/');
	retl_buf_adds(&b, rel);
	return retl_buf_detach(&b);
}

/* ---- secrets ---- */

static int read_secret_file(struct ctx *c, const char *path, const char *rel,
			    char **out)
{
	char *full = join_dir(c->dir, rel);
	FILE *f = fopen(full, "rb");
	free(full);
	if (!f)
		return fail(c, path, "cannot read secret file %s: %s", rel, strerror(errno));
	retl_buf b = RETL_BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		retl_buf_add(&b, chunk, n);
	int bad = ferror(f);
	int e = errno;
	fclose(f);
	if (bad) {
		retl_buf_free(&b);
		return fail(c, path, "cannot read secret file %s: %s", rel, strerror(e));
	}
	if (b.len != strlen(retl_buf_cstr(&b))) {
		retl_buf_free(&b);
		return fail(c, path, "secret file %s contains a NUL byte", rel);
	}
	while (b.len && (b.ptr[b.len - 1] == '\n' || b.ptr[b.len - 1] == '\r'))
		retl_buf_truncate(&b, b.len - 1);
	*out = retl_buf_detach(&b);
	retl_redact_add(*out);
	return 0;
}

static int env_name_ok(const char *s, size_t n)
{
	if (!n || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!(ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9')))
			return 0;
	}
	return 1;
}

/* *out = NULL when s holds no secret reference */
static int resolve_string(struct ctx *c, const char *path, const char *s, char **out)
{
	*out = NULL;
	if (!strncmp(s, "@file:", 6)) {
		if (!s[6])
			return fail(c, path, "\"@file:\" needs a path");
		return read_secret_file(c, path, s + 6, out);
	}
	if (!strstr(s, "${"))
		return 0;
	retl_buf b = RETL_BUF_INIT;
	const char *p = s, *ref;
	while ((ref = strstr(p, "${"))) {
		retl_buf_add(&b, p, (size_t)(ref - p));
		const char *end = strchr(ref + 2, '}');
		if (!end) {
			retl_buf_free(&b);
			return fail(c, path, "unterminated \"${\" (expected ${NAME})");
		}
		size_t n = (size_t)(end - ref - 2);
		if (!env_name_ok(ref + 2, n)) {
			retl_buf_free(&b);
			return fail(c, path, "\"${%.*s}\" is not a valid environment variable name",
				    (int)n, ref + 2);
		}
		char *name = retl_strndup(ref + 2, n);
		const char *val = getenv(name);
		if (!val) {
			fail(c, path, "environment variable %s is not set", name);
			free(name);
			retl_buf_free(&b);
			return -1;
		}
		free(name);
		retl_redact_add(val);
		retl_buf_adds(&b, val);
		p = end + 1;
	}
	retl_buf_adds(&b, p);
	*out = retl_buf_detach(&b);
	return 0;
}

/* resolves every string inside v, in place */
static int resolve_secrets(struct ctx *c, json_t *v, const char *path)
{
	retl_buf p = RETL_BUF_INIT;
	int rc = 0;
	if (json_is_object(v)) {
		const char *k;
		json_t *m;
		json_object_foreach(v, k, m) {
			if ((rc = resolve_secrets(c, m, subpath(&p, path, k))) < 0)
				break;
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m) {
			retl_buf_reset(&p);
			retl_buf_addf(&p, "%s[%zu]", path, i);
			if ((rc = resolve_secrets(c, m, p.ptr)) < 0)
				break;
		}
	} else if (json_is_string(v)) {
		char *s = NULL;
		rc = resolve_string(c, path, json_string_value(v), &s);
		if (s) {
			json_string_set(v, s);
			free(s);
		}
	}
	retl_buf_free(&p);
	return rc;
}

/* ---- retl.json ---- */

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

static int load_source(struct ctx *c, struct retl_source_cfg *sc,
		       const char *name, json_t *obj, const char *path)
{
	retl_buf p = RETL_BUF_INIT;
	int rc = -1;
	sc->name = retl_strdup(name);
	if (!json_is_object(obj)) {
		fail(c, path, "expected an object with type, dsn, statement_timeout");
		goto out;
	}
	if (check_keys(c, obj, path, source_keys, NULL) < 0 ||
	    resolve_secrets(c, obj, path) < 0)
		goto out;

	if (get_string(c, obj, path, "type", 0, 1, &sc->type) < 0)
		goto out;
	if (!sc->type) {
		sc->type = retl_strdup("postgres");
	} else if (strcmp(sc->type, "postgres") && strcmp(sc->type, "redshift")) {
		fail(c, subpath(&p, path, "type"),
		     "unknown source type \"%s\" (expected one of postgres, redshift)", sc->type);
		goto out;
	}
	if (get_string(c, obj, path, "dsn", 1, 1, &sc->dsn) < 0)
		goto out;
	retl_redact_dsn_password(sc->dsn);

	json_t *t = json_object_get(obj, "statement_timeout");
	subpath(&p, path, "statement_timeout");
	if (json_is_integer(t)) {
		if (json_integer_value(t) < 0 || json_integer_value(t) > LONG_MAX) {
			fail(c, p.ptr, "expected a duration such as \"30s\", \"10min\", \"2h\", \"500ms\" or a number of milliseconds >= 0");
			goto out;
		}
		sc->statement_timeout_ms = (long)json_integer_value(t);
	} else if (json_is_string(t)) {
		if (parse_duration(json_string_value(t), &sc->statement_timeout_ms) < 0) {
			fail(c, p.ptr, "invalid duration \"%s\" (expected e.g. \"30s\", \"10min\", \"2h\", \"500ms\", or a number of milliseconds)",
			     json_string_value(t));
			goto out;
		}
	} else if (t) {
		fail(c, p.ptr, "expected a duration such as \"30s\", \"10min\", \"2h\", \"500ms\" or a number of milliseconds >= 0");
		goto out;
	}
	rc = 0;
out:
	retl_buf_free(&p);
	return rc;
}

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

static int check_base_url(struct ctx *c, const char *path, const char *url)
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
		return fail(c, path, "plain http:// is allowed only to a loopback host (localhost, 127.x.x.x, [::1]); use https://");
	return fail(c, path, "expected an https:// URL (or http:// to a loopback host)");
}

static int load_dest(struct ctx *c, struct retl_dest_cfg *dc, const char *name,
		     json_t *obj, const char *path)
{
	retl_buf p = RETL_BUF_INIT;
	int rc = -1;
	dc->name = retl_strdup(name);
	if (!json_is_object(obj)) {
		fail(c, path, "expected an object with a \"type\"");
		goto out;
	}
	/* type first: it says which other keys are allowed */
	json_t *t = json_object_get(obj, "type");
	if (!t) {
		fail(c, subpath(&p, path, "type"), "missing (required; one of %s)",
		     retl_destination_names());
		goto out;
	}
	if (!json_is_string(t)) {
		fail(c, subpath(&p, path, "type"), "expected a string (one of %s)",
		     retl_destination_names());
		goto out;
	}
	const struct retl_destination *d = retl_destination_find(json_string_value(t));
	if (!d) {
		fail(c, subpath(&p, path, "type"),
		     "unknown destination type \"%s\" (expected one of %s)",
		     json_string_value(t), retl_destination_names());
		goto out;
	}
	dc->type = retl_strdup(d->name);
	if (check_keys(c, obj, path, dest_base_keys, d->conn_keys) < 0 ||
	    resolve_secrets(c, obj, path) < 0)
		goto out;
	if (get_string(c, obj, path, "base_url", 0, 1, &dc->base_url) < 0)
		goto out;
	if (dc->base_url &&
	    check_base_url(c, subpath(&p, path, "base_url"), dc->base_url) < 0)
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

static int load_main(struct ctx *c, struct retl_config *cfg, json_t *root)
{
	if (!json_is_object(root))
		return fail(c, NULL, "expected a JSON object at the top level");
	if (check_keys(c, root, NULL, top_keys, NULL) < 0)
		return -1;

	char *state = NULL;
	if (get_string(c, root, NULL, "state", 0, 1, &state) < 0)
		return -1;
	cfg->state_path = join_dir(cfg->dir, state ? state : "state/retl.db");
	free(state);

	retl_buf p = RETL_BUF_INIT;
	const char *k;
	json_t *v;
	int rc = -1;

	json_t *srcs = json_object_get(root, "sources");
	if (srcs && !json_is_object(srcs)) {
		fail(c, "sources", "expected an object of {name: {type, dsn, ...}}");
		goto out;
	}
	cfg->sources = retl_calloc(json_object_size(srcs), sizeof(*cfg->sources));
	json_object_foreach(srcs, k, v) {
		struct retl_source_cfg *sc = &cfg->sources[cfg->nsources++];
		if (load_source(c, sc, k, v, subpath(&p, "sources", k)) < 0)
			goto out;
	}

	json_t *dsts = json_object_get(root, "destinations");
	if (dsts && !json_is_object(dsts)) {
		fail(c, "destinations", "expected an object of {name: {type, ...}}");
		goto out;
	}
	cfg->dests = retl_calloc(json_object_size(dsts), sizeof(*cfg->dests));
	json_object_foreach(dsts, k, v) {
		struct retl_dest_cfg *dc = &cfg->dests[cfg->ndests++];
		if (load_dest(c, dc, k, v, subpath(&p, "destinations", k)) < 0)
			goto out;
	}
	rc = 0;
out:
	retl_buf_free(&p);
	return rc;
}

/* ---- mappings/<sync>.json ---- */

static struct retl_source_cfg *find_source(struct retl_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsources; i++)
		if (!strcmp(cfg->sources[i].name, name))
			return &cfg->sources[i];
	return NULL;
}

static struct retl_dest_cfg *find_dest(struct retl_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->ndests; i++)
		if (!strcmp(cfg->dests[i].name, name))
			return &cfg->dests[i];
	return NULL;
}

/* "(defined in retl.json: a, b)" */
static void defined_names(retl_buf *b, struct retl_config *cfg, int dests)
{
	size_t n = dests ? cfg->ndests : cfg->nsources;
	retl_buf_adds(b, "(defined in retl.json: ");
	if (!n)
		retl_buf_adds(b, "none");
	for (size_t i = 0; i < n; i++) {
		if (i)
			retl_buf_adds(b, ", ");
		retl_buf_adds(b, dests ? cfg->dests[i].name : cfg->sources[i].name);
	}
	retl_buf_addc(b, ')');
}

static void names_from_mask(retl_buf *b, const char *const *names, unsigned mask,
			    int with_first)
{
	int first = 1;
	for (unsigned i = 0; names[i]; i++) {
		if (!(mask & (1u << i)) && !(with_first && i == 0))
			continue;
		if (!first)
			retl_buf_adds(b, ", ");
		retl_buf_adds(b, names[i]);
		first = 0;
	}
}

static int lookup_name(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(names[i], s))
			return i;
	return -1;
}

static int load_key(struct ctx *c, struct retl_sync_cfg *sc, json_t *root)
{
	json_t *k = json_object_get(root, "key");
	if (!k)
		return fail(c, "key", "missing (required: the model's primary key column, or a list of columns)");
	if (json_is_string(k) && json_string_length(k)) {
		sc->key = retl_calloc(1, sizeof(*sc->key));
		sc->key[sc->nkey++] = retl_strdup(json_string_value(k));
		return 0;
	}
	if (!json_is_array(k) || !json_array_size(k))
		return fail(c, "key", "expected a column name or a list of column names");
	size_t i;
	json_t *e;
	json_array_foreach(k, i, e) {
		if (!json_is_string(e) || !json_string_length(e))
			return fail(c, "key", "expected a column name or a list of column names");
		for (size_t j = 0; j < i; j++)
			if (!strcmp(json_string_value(json_array_get(k, j)), json_string_value(e)))
				return fail(c, "key", "column \"%s\" is listed twice",
					    json_string_value(e));
	}
	sc->key = retl_calloc(json_array_size(k), sizeof(*sc->key));
	json_array_foreach(k, i, e)
		sc->key[sc->nkey++] = retl_strdup(json_string_value(e));
	return 0;
}

static int load_safety(struct ctx *c, struct retl_safety *s, json_t *root)
{
	s->max_removed = -1;
	s->max_removed_ratio = -1;
	s->refuse_empty_model = 1;
	json_t *o = json_object_get(root, "safety");
	if (!o)
		return 0;
	if (!json_is_object(o))
		return fail(c, "safety", "expected an object (keys: max_removed, max_removed_ratio, refuse_empty_model)");
	if (check_keys(c, o, "safety", safety_keys, NULL) < 0)
		return -1;
	json_t *v = json_object_get(o, "max_removed");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > LONG_MAX)
			return fail(c, "safety.max_removed", "expected an integer >= 0");
		s->max_removed = (long)json_integer_value(v);
	}
	v = json_object_get(o, "max_removed_ratio");
	if (v) {
		double r = json_number_value(v);
		if (!json_is_number(v) || !(r >= 0 && r <= 1))
			return fail(c, "safety.max_removed_ratio", "expected a number from 0 to 1");
		s->max_removed_ratio = r;
	}
	v = json_object_get(o, "refuse_empty_model");
	if (v) {
		if (!json_is_boolean(v))
			return fail(c, "safety.refuse_empty_model", "expected true or false");
		s->refuse_empty_model = json_is_true(v);
	}
	return 0;
}

static int load_sync(struct ctx *c, struct retl_config *cfg,
		     struct retl_sync_cfg *sc, json_t *root)
{
	retl_buf b = RETL_BUF_INIT;
	int rc = -1;
	if (!json_is_object(root)) {
		fail(c, NULL, "expected a JSON object at the top level");
		goto out;
	}

	/*
	 * The destination says which extra keys a sync may carry, so resolve it
	 * before the unknown-key check; an unknown destination is reported
	 * first, since its keys cannot be known.
	 */
	json_t *d = json_object_get(root, "destination");
	if (!d) {
		if (check_keys(c, root, NULL, sync_keys, NULL) < 0)
			goto out;
		fail(c, "destination", "missing (required)");
		goto out;
	}
	if (!json_is_string(d)) {
		fail(c, "destination", "expected the name of a destination in retl.json");
		goto out;
	}
	sc->dst = find_dest(cfg, json_string_value(d));
	if (!sc->dst) {
		defined_names(&b, cfg, 1);
		fail(c, "destination", "unknown destination \"%s\" %s",
		     json_string_value(d), b.ptr);
		goto out;
	}
	const struct retl_destination *dest = retl_destination_find(sc->dst->type);
	sc->destination = retl_strdup(sc->dst->name);
	if (check_keys(c, root, NULL, sync_keys, dest->sync_keys) < 0)
		goto out;

	json_t *s = json_object_get(root, "source");
	if (!s) {
		fail(c, "source", "missing (required)");
		goto out;
	}
	if (!json_is_string(s)) {
		fail(c, "source", "expected the name of a source in retl.json");
		goto out;
	}
	sc->src = find_source(cfg, json_string_value(s));
	if (!sc->src) {
		retl_buf_reset(&b);
		defined_names(&b, cfg, 0);
		fail(c, "source", "unknown source \"%s\" %s", json_string_value(s), b.ptr);
		goto out;
	}
	sc->source = retl_strdup(sc->src->name);

	if (get_string(c, root, NULL, "query", 1, 1, &sc->query) < 0 ||
	    load_key(c, sc, root) < 0 ||
	    get_string(c, root, NULL, "object", 0, 1, &sc->object) < 0)
		goto out;

	json_t *m = json_object_get(root, "mode");
	sc->mode = RETL_MODE_UPSERT;
	if (m) {
		if (!json_is_string(m)) {
			fail(c, "mode", "expected a string (one of upsert, update, insert, mirror)");
			goto out;
		}
		int i = lookup_name(mode_names, json_string_value(m));
		if (i < 0) {
			fail(c, "mode", "unknown mode \"%s\" (expected one of upsert, update, insert, mirror)",
			     json_string_value(m));
			goto out;
		}
		sc->mode = (enum retl_mode)i;
	}
	if (!(dest->modes & (1u << sc->mode))) {
		retl_buf_reset(&b);
		names_from_mask(&b, mode_names, dest->modes, 0);
		fail(c, "mode", "mode \"%s\" is not supported by the %s destination (supported: %s)",
		     retl_mode_name(sc->mode), dest->name, b.ptr);
		goto out;
	}

	json_t *mt = json_object_get(root, "match");
	if (mt) {
		if (!json_is_object(mt) || !json_object_size(mt)) {
			fail(c, "match", "expected an object of {destination field: column}");
			goto out;
		}
		const char *k;
		json_t *v;
		json_object_foreach(mt, k, v) {
			if (!json_is_string(v) || !json_string_length(v)) {
				fail(c, subpath(&b, "match", k), "expected a column name");
				goto out;
			}
		}
		sc->match = json_incref(mt);
	}

	json_t *f = json_object_get(root, "fields");
	if (!f) {
		fail(c, "fields", "missing (required)");
		goto out;
	}
	if (!json_is_object(f)) {
		fail(c, "fields", "expected an object of {target field: column or field spec}");
		goto out;
	}
	sc->fields = json_incref(f);
	if (retl_mapping_parse(&sc->mapping, f, c->file, c->err) < 0) {
		if (!c->err->code)
			c->err->code = RETL_EXIT_USAGE;
		goto out;
	}

	json_t *r = json_object_get(root, "on_remove");
	sc->on_remove = RETL_REMOVE_IGNORE;
	if (r) {
		if (!json_is_string(r)) {
			fail(c, "on_remove", "expected a string (one of ignore, archive, delete, unsubscribe, clear)");
			goto out;
		}
		int i = lookup_name(remove_names, json_string_value(r));
		if (i < 0) {
			fail(c, "on_remove", "unknown action \"%s\" (expected one of ignore, archive, delete, unsubscribe, clear)",
			     json_string_value(r));
			goto out;
		}
		sc->on_remove = (enum retl_on_remove)i;
	}
	if (sc->on_remove != RETL_REMOVE_IGNORE) {
		if (sc->mode != RETL_MODE_MIRROR) {
			fail(c, "on_remove", "\"%s\" needs mode \"mirror\" (mode is \"%s\"; only mirror removes records)",
			     retl_on_remove_name(sc->on_remove), retl_mode_name(sc->mode));
			goto out;
		}
		if (!(dest->removals & (1u << sc->on_remove))) {
			retl_buf_reset(&b);
			names_from_mask(&b, remove_names, dest->removals, 1);
			fail(c, "on_remove", "\"%s\" is not supported by the %s destination (supported: %s)",
			     retl_on_remove_name(sc->on_remove), dest->name, b.ptr);
			goto out;
		}
	}

	if (load_safety(c, &sc->safety, root) < 0 ||
	    get_string(c, root, NULL, "schedule", 0, 1, &sc->schedule) < 0)
		goto out;
	if (sc->schedule) {
		struct retl_schedule sched;
		struct retl_err serr;
		retl_err_clear(&serr);
		if (retl_schedule_parse(&sched, sc->schedule, &serr) < 0) {
			fail(c, "schedule", "%s", serr.msg);
			goto out;
		}
	}

	for (const char *const *k = dest->sync_keys; k && *k; k++) {
		json_t *v = json_object_get(root, *k);
		if (!v)
			continue;
		if (!sc->options)
			sc->options = json_object();
		json_object_set(sc->options, *k, v);
	}
	rc = 0;
out:
	retl_buf_free(&b);
	return rc;
}

/* ---- loading files ---- */

static json_t *load_json(struct ctx *c, const char *full)
{
	FILE *f = fopen(full, "rb");
	if (!f) {
		if (errno == ENOENT && !strcmp(c->file, "retl.json"))
			fail(c, NULL, "not found in %s (is --config pointing at a retl project?)",
			     c->dir);
		else
			fail(c, NULL, "cannot read: %s", strerror(errno));
		return NULL;
	}
	json_error_t je;
	json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
	fclose(f);
	if (!root) {
		if (je.line > 0)
			retl_err_set(c->err, RETL_EXIT_USAGE, "%s:%d:%d: %s",
				     c->file, je.line, je.column, je.text);
		else
			fail(c, NULL, "%s", je.text);
	}
	return root;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* sorted sync names (file stems) of dir/mappings/ *.json */
static int list_syncs(struct ctx *c, char ***out, size_t *n)
{
	char *mdir = join_dir(c->dir, "mappings");
	DIR *dp = opendir(mdir);
	*out = NULL;
	*n = 0;
	if (!dp) {
		int e = errno;
		free(mdir);
		if (e == ENOENT)
			return 0;
		c->file = "mappings/";
		return fail(c, NULL, "cannot read directory: %s", strerror(e));
	}
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(dp))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		char *full = join_dir(mdir, de->d_name);
		struct stat st;
		int regular = !stat(full, &st) && S_ISREG(st.st_mode);
		free(full);
		if (!regular)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*out = retl_realloc(*out, cap * sizeof(**out));
		}
		(*out)[(*n)++] = retl_strndup(de->d_name, len - 5);
	}
	closedir(dp);
	free(mdir);
	if (*n)
		qsort(*out, *n, sizeof(**out), cmp_str);
	return 0;
}

static int load_syncs(struct ctx *c, struct retl_config *cfg)
{
	char **names;
	size_t n;
	if (list_syncs(c, &names, &n) < 0)
		return -1;
	cfg->syncs = retl_calloc(n, sizeof(*cfg->syncs));
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct retl_sync_cfg *sc = &cfg->syncs[cfg->nsyncs++];
		retl_buf b = RETL_BUF_INIT;
		sc->name = names[i];
		names[i] = NULL;
		retl_buf_addf(&b, "mappings/%s.json", sc->name);
		sc->file = retl_buf_detach(&b);
		c->file = sc->file;
		char *full = join_dir(c->dir, sc->file);
		json_t *root = load_json(c, full);
		free(full);
		if (!root || load_sync(c, cfg, sc, root) < 0)
			rc = -1;
		json_decref(root);
		if (rc < 0)
			break;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int retl_config_load(struct retl_config **out, const char *dir, struct retl_err *err)
{
	struct retl_config *cfg = retl_calloc(1, sizeof(*cfg));
	struct ctx c = { .dir = dir, .file = "retl.json", .err = err };
	*out = NULL;
	retl_err_clear(err);
	cfg->dir = retl_strdup(dir);

	char *full = join_dir(dir, "retl.json");
	json_t *root = load_json(&c, full);
	free(full);
	int rc = root ? load_main(&c, cfg, root) : -1;
	json_decref(root);
	if (rc == 0)
		rc = load_syncs(&c, cfg);
	if (rc < 0) {
		err->code = RETL_EXIT_USAGE;
		retl_redact_str(err->msg, sizeof(err->msg));
		retl_config_free(cfg);
		return -1;
	}
	*out = cfg;
	return 0;
}

static void free_sync(struct retl_sync_cfg *sc)
{
	free(sc->name);
	free(sc->file);
	free(sc->source);
	free(sc->query);
	for (size_t i = 0; i < sc->nkey; i++)
		free(sc->key[i]);
	free(sc->key);
	free(sc->destination);
	free(sc->object);
	json_decref(sc->match);
	json_decref(sc->fields);
	free(sc->schedule);
	json_decref(sc->options);
	if (sc->mapping)
		retl_mapping_free(sc->mapping);
}

void retl_config_free(struct retl_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nsources; i++) {
		free(cfg->sources[i].name);
		free(cfg->sources[i].type);
		free(cfg->sources[i].dsn);
	}
	free(cfg->sources);
	for (size_t i = 0; i < cfg->ndests; i++) {
		free(cfg->dests[i].name);
		free(cfg->dests[i].type);
		free(cfg->dests[i].base_url);
		json_decref(cfg->dests[i].options);
	}
	free(cfg->dests);
	for (size_t i = 0; i < cfg->nsyncs; i++)
		free_sync(&cfg->syncs[i]);
	free(cfg->syncs);
	free(cfg->dir);
	free(cfg->state_path);
	free(cfg);
}

struct retl_sync_cfg *retl_config_sync(struct retl_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsyncs; i++)
		if (!strcmp(cfg->syncs[i].name, name))
			return &cfg->syncs[i];
	return NULL;
}
