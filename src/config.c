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
 *
 * The loader is split by what it reads: this file holds the files (JSON
 * syntax errors as file:line:col), the message helpers, secrets, retl.json's
 * top level and freeing; config_source.c, config_dest.c and config_sync.c
 * read a source, a destination and a sync; config_int.h is what they share.
 */
#include "config_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mapping.h"
#include "notify.h"
#include "redact.h"

static const char *const top_keys[] = { "state", "sources", "destinations",
					 "notify", NULL };

int retl_cfg_fail(struct retl_cfg_ctx *c, const char *path, const char *fmt, ...)
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
const char *retl_cfg_subpath(retl_buf *b, const char *path, const char *key)
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
int retl_cfg_check_keys(struct retl_cfg_ctx *c, json_t *obj, const char *path,
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
		retl_cfg_fail(c, retl_cfg_subpath(&p, path, k),
			      "unknown key (expected one of %s)",
			      retl_buf_cstr(&allowed));
		retl_buf_free(&p);
		retl_buf_free(&allowed);
		return -1;
	}
	return 0;
}

/* optional string member; *out stays NULL when absent */
int retl_cfg_get_string(struct retl_cfg_ctx *c, json_t *obj, const char *path,
			const char *key, int required, int nonempty, char **out)
{
	json_t *v = json_object_get(obj, key);
	retl_buf p = RETL_BUF_INIT;
	int rc = 0;
	if (!v) {
		if (required)
			rc = retl_cfg_fail(c, retl_cfg_subpath(&p, path, key),
					   "missing (required)");
	} else if (!json_is_string(v) || (nonempty && !json_string_length(v))) {
		rc = retl_cfg_fail(c, retl_cfg_subpath(&p, path, key), nonempty ?
				   "expected a non-empty string" : "expected a string");
	} else {
		*out = retl_strndup(json_string_value(v), json_string_length(v));
	}
	retl_buf_free(&p);
	return rc;
}

char *retl_cfg_join_dir(const char *dir, const char *rel)
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

static int read_secret_file(struct retl_cfg_ctx *c, const char *path,
			    const char *rel, char **out)
{
	char *full = retl_cfg_join_dir(c->dir, rel);
	FILE *f = fopen(full, "rb");
	free(full);
	if (!f)
		return retl_cfg_fail(c, path, "cannot read secret file %s: %s",
				     rel, strerror(errno));
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
		return retl_cfg_fail(c, path, "cannot read secret file %s: %s",
				     rel, strerror(e));
	}
	if (b.len != strlen(retl_buf_cstr(&b))) {
		retl_buf_free(&b);
		return retl_cfg_fail(c, path,
				     "secret file %s contains a NUL byte", rel);
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
static int resolve_string(struct retl_cfg_ctx *c, const char *path,
			  const char *s, char **out)
{
	*out = NULL;
	if (!strncmp(s, "@file:", 6)) {
		if (!s[6])
			return retl_cfg_fail(c, path,
					     "\"@file:\" needs a path");
		if (c->defer) {
			c->nrefs++;
			return 0;
		}
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
			return retl_cfg_fail(c, path,
					     "unterminated \"${\" (expected ${NAME})");
		}
		size_t n = (size_t)(end - ref - 2);
		if (!env_name_ok(ref + 2, n)) {
			retl_buf_free(&b);
			return retl_cfg_fail(c, path,
					     "\"${%.*s}\" is not a valid environment variable name",
					     (int)n, ref + 2);
		}
		if (c->defer) {
			c->nrefs++;
			p = end + 1;
			continue;
		}
		char *name = retl_strndup(ref + 2, n);
		const char *val = getenv(name);
		if (!val) {
			retl_cfg_fail(c, path, "environment variable %s is not set",
				      name);
			free(name);
			retl_buf_free(&b);
			return -1;
		}
		free(name);
		retl_redact_add(val);
		retl_buf_adds(&b, val);
		p = end + 1;
	}
	if (c->defer) {
		retl_buf_free(&b);
		return 0;
	}
	retl_buf_adds(&b, p);
	*out = retl_buf_detach(&b);
	return 0;
}

/* resolves every string inside v, in place */
int retl_cfg_resolve_secrets(struct retl_cfg_ctx *c, json_t *v,
			     const char *path)
{
	retl_buf p = RETL_BUF_INIT;
	int rc = 0;
	if (json_is_object(v)) {
		const char *k;
		json_t *m;
		json_object_foreach(v, k, m) {
			const char *mp = retl_cfg_subpath(&p, path, k);
			if ((rc = retl_cfg_resolve_secrets(c, m, mp)) < 0)
				break;
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m) {
			retl_buf_reset(&p);
			retl_buf_addf(&p, "%s[%zu]", path, i);
			if ((rc = retl_cfg_resolve_secrets(c, m, p.ptr)) < 0)
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
 * "state": a file (relative to the project) or a PostgreSQL URL
 * (postgresql:// or postgres://, README "The state store").  Its ${ENV} and
 * @file: are read now, whatever the verb: every verb that opens the store
 * needs it, and its password is redacted from then on.
 */
static int load_state(struct retl_cfg_ctx *c, struct retl_config *cfg,
		      const char *state)
{
	char *url = NULL;
	int defer = c->defer;

	if (!state) {
		cfg->state_path = retl_cfg_join_dir(cfg->dir, "state/retl.db");
		return 0;
	}
	c->defer = 0;
	int rc = resolve_string(c, "state", state, &url);
	c->defer = defer;
	if (rc < 0)
		return -1;
	const char *v = url ? url : state;
	if (!strncmp(v, "postgresql://", 13) || !strncmp(v, "postgres://", 11)) {
		retl_redact_dsn_password(v);
		cfg->state_path = retl_strdup(v);
		cfg->state_local = retl_cfg_join_dir(cfg->dir, ".retl");
	} else if (strstr(v, "://")) {
		free(url);
		return retl_cfg_fail(c, "state", "a state store URL must start "
				     "with postgresql:// or postgres://");
	} else {
		cfg->state_path = retl_cfg_join_dir(cfg->dir, v);
	}
	free(url);
	return 0;
}

static int load_main(struct retl_cfg_ctx *c, struct retl_config *cfg,
		     json_t *root)
{
	if (!json_is_object(root))
		return retl_cfg_fail(c, NULL,
				     "expected a JSON object at the top level");
	if (retl_cfg_check_keys(c, root, NULL, top_keys, NULL) < 0)
		return -1;

	char *state = NULL;
	if (retl_cfg_get_string(c, root, NULL, "state", 0, 1, &state) < 0 ||
	    load_state(c, cfg, state) < 0) {
		free(state);
		return -1;
	}
	free(state);

	retl_buf p = RETL_BUF_INIT;
	const char *k;
	json_t *v;
	int rc = -1;

	json_t *srcs = json_object_get(root, "sources");
	if (srcs && !json_is_object(srcs)) {
		retl_cfg_fail(c, "sources",
			      "expected an object of {name: {type, dsn, ...}}");
		goto out;
	}
	cfg->sources = retl_calloc(json_object_size(srcs), sizeof(*cfg->sources));
	json_object_foreach(srcs, k, v) {
		struct retl_source_cfg *sc = &cfg->sources[cfg->nsources++];
		if (retl_cfg_load_source(c, sc, k, v, retl_cfg_subpath(&p, "sources", k)) < 0)
			goto out;
	}

	json_t *dsts = json_object_get(root, "destinations");
	if (dsts && !json_is_object(dsts)) {
		retl_cfg_fail(c, "destinations",
			      "expected an object of {name: {type, ...}}");
		goto out;
	}
	cfg->dests = retl_calloc(json_object_size(dsts), sizeof(*cfg->dests));
	json_object_foreach(dsts, k, v) {
		struct retl_dest_cfg *dc = &cfg->dests[cfg->ndests++];
		if (retl_cfg_load_dest(c, dc, k, v, retl_cfg_subpath(&p, "destinations", k)) < 0)
			goto out;
	}
	if (retl_cfg_load_notify(c, cfg, json_object_get(root, "notify")) < 0)
		goto out;
	rc = 0;
out:
	retl_buf_free(&p);
	return rc;
}


/* ---- loading files ---- */

static void free_sync(struct retl_sync_cfg *sc);

static json_t *load_json(struct retl_cfg_ctx *c, const char *full)
{
	FILE *f = fopen(full, "rb");
	if (!f) {
		if (errno == ENOENT && !strcmp(c->file, "retl.json"))
			retl_cfg_fail(c, NULL,
				      "not found in %s (is --config pointing at a retl project?)",
				      c->dir);
		else
			retl_cfg_fail(c, NULL, "cannot read: %s",
				      strerror(errno));
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
			retl_cfg_fail(c, NULL, "%s", je.text);
	}
	return root;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* sorted sync names (file stems) of dir/mappings/ *.json */
static int list_syncs(struct retl_cfg_ctx *c, char ***out, size_t *n)
{
	char *mdir = retl_cfg_join_dir(c->dir, "mappings");
	DIR *dp = opendir(mdir);
	*out = NULL;
	*n = 0;
	if (!dp) {
		int e = errno;
		free(mdir);
		if (e == ENOENT)
			return 0;
		c->file = "mappings/";
		return retl_cfg_fail(c, NULL, "cannot read directory: %s",
				     strerror(e));
	}
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(dp))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		char *full = retl_cfg_join_dir(mdir, de->d_name);
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

static void add_invalid(struct retl_config *cfg, const char *name,
			const char *file, const struct retl_err *err)
{
	struct retl_sync_invalid *v;
	cfg->invalid = retl_realloc(cfg->invalid, (cfg->ninvalid + 1) *
				    sizeof(*cfg->invalid));
	v = &cfg->invalid[cfg->ninvalid++];
	memset(v, 0, sizeof(*v));
	v->name = retl_strdup(name);
	v->file = retl_strdup(file);
	v->msg = retl_strdup(err->msg);
	retl_redact_str(v->msg, strlen(v->msg) + 1);
}

/* one mapping file into sc; -1 with c->err set */
static int load_one_sync(struct retl_cfg_ctx *c, struct retl_config *cfg,
			 struct retl_sync_cfg *sc)
{
	char *full = retl_cfg_join_dir(c->dir, sc->file);
	json_t *root = load_json(c, full);
	free(full);
	if (!root)
		return -1;
	if (retl_cfg_load_sync(c, cfg, sc, root) < 0) {
		json_decref(root);
		return -1;
	}
	sc->def = root;
	return 0;
}

/*
 * Every mappings/ *.json.  A file that does not load is set aside in
 * cfg->invalid, not fatal: one broken sync must not stop the others.
 */
static int load_syncs(struct retl_cfg_ctx *c, struct retl_config *cfg)
{
	char **names;
	size_t n;
	if (list_syncs(c, &names, &n) < 0)
		return -1;
	cfg->syncs = retl_calloc(n, sizeof(*cfg->syncs));
	for (size_t i = 0; i < n; i++) {
		struct retl_sync_cfg *sc = &cfg->syncs[cfg->nsyncs];
		retl_buf b = RETL_BUF_INIT;
		sc->name = names[i];
		names[i] = NULL;
		retl_buf_addf(&b, "mappings/%s.json", sc->name);
		sc->file = retl_buf_detach(&b);
		c->file = sc->file;
		retl_err_clear(c->err);
		if (load_one_sync(c, cfg, sc) == 0) {
			cfg->nsyncs++;
			continue;
		}
		add_invalid(cfg, sc->name, sc->file, c->err);
		free_sync(sc);
		memset(sc, 0, sizeof(*sc));
	}
	retl_err_clear(c->err);
	free(names);
	return 0;
}

int retl_config_load(struct retl_config **out, const char *dir, struct retl_err *err)
{
	struct retl_config *cfg = retl_calloc(1, sizeof(*cfg));
	struct retl_cfg_ctx c = { .dir = dir, .file = "retl.json", .err = err,
				  .defer = 1 };
	*out = NULL;
	retl_err_clear(err);
	cfg->dir = retl_strdup(dir);

	char *full = retl_cfg_join_dir(dir, "retl.json");
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
	free(sc->changed_since);
	json_decref(sc->options);
	json_decref(sc->def);
	if (sc->mapping)
		retl_mapping_free(sc->mapping);
}

static void free_source(struct retl_source_cfg *s)
{
	free(s->name);
	free(s->type);
	free(s->dsn);
	free(s->audit);
	free(s->state_schema);
	json_decref(s->unresolved);
}

static void free_dest(struct retl_dest_cfg *d)
{
	free(d->name);
	free(d->type);
	free(d->base_url);
	json_decref(d->options);
	json_decref(d->unresolved);
}

void retl_config_free(struct retl_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nsources; i++)
		free_source(&cfg->sources[i]);
	free(cfg->sources);
	for (size_t i = 0; i < cfg->ndests; i++)
		free_dest(&cfg->dests[i]);
	free(cfg->dests);
	for (size_t i = 0; i < cfg->nsyncs; i++)
		free_sync(&cfg->syncs[i]);
	free(cfg->syncs);
	retl_notify_cfg_free(cfg->notify);
	for (size_t i = 0; i < cfg->ninvalid; i++) {
		free(cfg->invalid[i].name);
		free(cfg->invalid[i].file);
		free(cfg->invalid[i].msg);
	}
	free(cfg->invalid);
	free(cfg->dir);
	free(cfg->state_path);
	free(cfg->state_local);
	free(cfg);
}

struct retl_sync_cfg *retl_config_sync(struct retl_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsyncs; i++)
		if (!strcmp(cfg->syncs[i].name, name))
			return &cfg->syncs[i];
	return NULL;
}

const struct retl_sync_invalid *retl_config_invalid(const struct retl_config *cfg,
						    const char *name)
{
	for (size_t i = 0; i < cfg->ninvalid; i++)
		if (!strcmp(cfg->invalid[i].name, name))
			return &cfg->invalid[i];
	return NULL;
}

/* ---- secrets, when a verb connects ---- */

/*
 * The loaders run again on a copy of the object as written, now reading
 * its secrets; the result replaces the load-time entry only when it is
 * whole, so a failed resolve leaves the entry as it was (and can fail the
 * same way for the next sync that uses it).
 */
/* an error found when the secrets are in: its place in retl.json too,
 * since the operator has to find the key to fix it */
static int resolve_failed(struct retl_config *cfg, struct retl_err *err)
{
	if (!err->code)
		err->code = RETL_EXIT_USAGE;
	retl_cfg_add_position(cfg->dir, "retl.json", err);
	retl_redact_str(err->msg, sizeof(err->msg));
	return -1;
}

int retl_config_resolve_source(struct retl_config *cfg,
			       struct retl_source_cfg *s, struct retl_err *err)
{
	retl_err_clear(err);
	if (!s->unresolved)
		return 0;
	struct retl_cfg_ctx c = { .dir = cfg->dir, .file = "retl.json", .err = err };
	struct retl_source_cfg tmp = { 0 };
	retl_buf p = RETL_BUF_INIT;
	json_t *obj = json_deep_copy(s->unresolved);
	retl_buf_addf(&p, "sources.%s", s->name);
	int rc = retl_cfg_load_source(&c, &tmp, s->name, obj, p.ptr);
	json_decref(obj);
	retl_buf_free(&p);
	if (rc < 0) {
		free_source(&tmp);
		return resolve_failed(cfg, err);
	}
	free_source(s);
	*s = tmp;
	return 0;
}

int retl_config_resolve_dest(struct retl_config *cfg, struct retl_dest_cfg *d,
			     struct retl_err *err)
{
	retl_err_clear(err);
	if (!d->unresolved)
		return 0;
	struct retl_cfg_ctx c = { .dir = cfg->dir, .file = "retl.json", .err = err };
	struct retl_dest_cfg tmp = { 0 };
	retl_buf p = RETL_BUF_INIT;
	json_t *obj = json_deep_copy(d->unresolved);
	retl_buf_addf(&p, "destinations.%s", d->name);
	int rc = retl_cfg_load_dest(&c, &tmp, d->name, obj, p.ptr);
	json_decref(obj);
	retl_buf_free(&p);
	if (rc < 0) {
		free_dest(&tmp);
		return resolve_failed(cfg, err);
	}
	free_dest(d);
	*d = tmp;
	return 0;
}

int retl_config_resolve(struct retl_config *cfg, struct retl_sync_cfg *sc,
			struct retl_err *err)
{
	if (retl_config_resolve_source(cfg, sc->src, err) < 0)
		return -1;
	return retl_config_resolve_dest(cfg, sc->dst, err);
}

/* every "${NAME}" set in the environment inside v, for redaction */
static void redact_env_in(json_t *v)
{
	const char *k, *p, *ref, *end;
	json_t *m;
	size_t i;
	if (json_is_object(v)) {
		json_object_foreach(v, k, m)
			redact_env_in(m);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, m)
			redact_env_in(m);
	} else if (json_is_string(v)) {
		for (p = json_string_value(v); (ref = strstr(p, "${")) &&
		     (end = strchr(ref + 2, '}')); p = end + 1) {
			char *name = retl_strndup(ref + 2, (size_t)(end - ref - 2));
			const char *val = getenv(name);
			if (val && *val)
				retl_redact_add(val);
			free(name);
		}
	}
}

void retl_config_redact_env(const struct retl_config *cfg)
{
	for (size_t i = 0; i < cfg->nsources; i++)
		redact_env_in(cfg->sources[i].unresolved);
	for (size_t i = 0; i < cfg->ndests; i++)
		redact_env_in(cfg->dests[i].unresolved);
}

/* ---- reload ---- */

static int cmp_sync(const void *a, const void *b)
{
	return strcmp(((const struct retl_sync_cfg *)a)->name,
		      ((const struct retl_sync_cfg *)b)->name);
}

size_t retl_config_keep_previous(struct retl_config *cfg,
				 const struct retl_config *old)
{
	size_t kept = 0;
	for (size_t i = 0; i < cfg->ninvalid; i++) {
		struct retl_sync_invalid *v = &cfg->invalid[i];
		const struct retl_sync_cfg *prev =
			retl_config_sync((struct retl_config *)old, v->name);
		if (!prev)
			continue;
		struct retl_err err;
		struct retl_cfg_ctx c = { .dir = cfg->dir, .file = prev->file,
					  .err = &err, .defer = 1 };
		struct retl_sync_cfg sc = { .name = retl_strdup(prev->name),
					    .file = retl_strdup(prev->file) };
		retl_err_clear(&err);
		/* against the new connections: the old ones are freed */
		if (retl_cfg_load_sync(&c, cfg, &sc, prev->def) < 0) {
			free_sync(&sc);
			continue;
		}
		sc.def = json_incref(prev->def);
		cfg->syncs = retl_realloc(cfg->syncs, (cfg->nsyncs + 1) *
					  sizeof(*cfg->syncs));
		cfg->syncs[cfg->nsyncs++] = sc;
		v->kept = 1;
		kept++;
	}
	if (kept)
		qsort(cfg->syncs, cfg->nsyncs, sizeof(*cfg->syncs), cmp_sync);
	return kept;
}
