/*
 * config_int.h - what the parts of the config loader share: config.c (files,
 * JSON error positions, secrets, retl.json's top level), config_source.c,
 * config_dest.c and config_sync.c.  Nothing else includes it.
 *
 * The helpers are named retl_cfg_* to keep them apart from config.h's
 * public retl_config_* API.  Every message goes through retl_cfg_fail, so
 * every one has the shape "<file>: <path>: <message>" described in config.c.
 */
#ifndef RETL_CONFIG_INT_H
#define RETL_CONFIG_INT_H

#include <jansson.h>

#include "buf.h"
#include "config.h"
#include "err.h"

/* what is being loaded, for messages */
struct retl_cfg_ctx {
	const char *dir;
	const char *file;         /* "retl.json", "mappings/x.json" */
	struct retl_err *err;
	/* load time: "${NAME}" and "@file:" are checked for their form but
	 * not read (nrefs counts them); retl_config_resolve reads them */
	int defer;
	int nrefs;
};

/* "<file>: <path>: <msg>", or "<file>: <msg>" when path is empty; returns -1 */
int retl_cfg_fail(struct retl_cfg_ctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* path + "." + key into b (reset first); returns b's text */
const char *retl_cfg_subpath(retl_buf *b, const char *path, const char *key);

/* every key of obj must be in a or b (NULL-terminated lists; b may be NULL) */
int retl_cfg_check_keys(struct retl_cfg_ctx *c, json_t *obj, const char *path,
			const char *const *a, const char *const *b);

/* optional string member; *out stays NULL when absent */
int retl_cfg_get_string(struct retl_cfg_ctx *c, json_t *obj, const char *path,
			const char *key, int required, int nonempty, char **out);

/* an optional duration member: "10min", "30s", "500ms", "2h", "1d", sums
 * like "1h30min", or a number of milliseconds >= 0; *ms is left alone when
 * the member is absent (config_source.c) */
int retl_cfg_get_duration(struct retl_cfg_ctx *c, json_t *obj, const char *path,
			  const char *key, long *ms);

/* rel against dir (rel as is when absolute); the caller frees */
char *retl_cfg_join_dir(const char *dir, const char *rel);

/* resolves "${NAME}" and "@file:PATH" in every string inside v, in place */
int retl_cfg_resolve_secrets(struct retl_cfg_ctx *c, json_t *v, const char *path);

/* line and column (from 1) of the value at a dotted path in JSON text;
 * -1 when not found (config_locate.c) */
int retl_cfg_locate(const char *text, size_t n, const char *path,
		    int *line, int *col);
/* "FILE: PATH: what" -> "FILE:LINE:COL: PATH: what", from FILE as it is
 * now in dir; unchanged when the path is not found */
void retl_cfg_add_position(const char *dir, const char *file,
			   struct retl_err *err);

/* retl.json's sources.<name> (config_source.c) */
int retl_cfg_load_source(struct retl_cfg_ctx *c, struct retl_source_cfg *sc,
			 const char *name, json_t *obj, const char *path);

/* retl.json's destinations.<name> (config_dest.c) */
int retl_cfg_load_dest(struct retl_cfg_ctx *c, struct retl_dest_cfg *dc,
		       const char *name, json_t *obj, const char *path);

/* one mappings/<sync>.json, against cfg's sources and destinations
 * (config_sync.c) */
int retl_cfg_load_sync(struct retl_cfg_ctx *c, struct retl_config *cfg,
		       struct retl_sync_cfg *sc, json_t *root);

/* retl.json's notify section, absent or not (config_notify.c) */
int retl_cfg_load_notify(struct retl_cfg_ctx *c, struct retl_config *cfg,
			 json_t *obj);

#endif
