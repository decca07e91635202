/*
 * config.h - a retl project: retl.json (connections) + mappings/<sync>.json.
 *
 * Loading validates everything that can be validated without a network:
 * JSON syntax (file:line:col from jansson), unknown keys, types of values,
 * references between syncs and connections, and the field language (parsed
 * into a retl_mapping here, bound to the query's columns at run time).
 * Secrets (`${ENV}` anywhere inside a string, or a whole-string
 * `@file:PATH`) are resolved by retl_config_resolve, for the syncs a verb
 * connects for, and registered with redact.h.
 *
 * Error messages:
 *   retl.json:4:17: unexpected token near ','              (syntax)
 *   mappings/x.json: fields.mrr.type: unknown type "nmber" (expected one of ...)
 * Paths are shown relative to the project directory.
 */
#ifndef RETL_CONFIG_H
#define RETL_CONFIG_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"

struct retl_mapping;
struct retl_notify_cfg;

enum retl_mode {
	RETL_MODE_UPSERT,
	RETL_MODE_UPDATE,
	RETL_MODE_INSERT,
	RETL_MODE_MIRROR,
	RETL_MODE_MEMBERSHIP,     /* every row is a member of a list (the sync's
				   * list/segment key); rows that leave the
				   * model are removed from it, never deleted */
};

enum retl_on_remove {
	RETL_REMOVE_IGNORE,
	RETL_REMOVE_ARCHIVE,
	RETL_REMOVE_DELETE,
	RETL_REMOVE_UNSUBSCRIBE,
	RETL_REMOVE_CLEAR,
};

/* how a source streams rows (source_pg.c, source_cursor.c) */
enum retl_read_path {
	RETL_READ_AUTO,           /* from what the server says it is */
	RETL_READ_COPY,           /* COPY (query) TO STDOUT */
	RETL_READ_CURSOR,         /* DECLARE ... CURSOR + FETCH FORWARD n */
};

struct retl_source_cfg {
	char *name;
	char *type;               /* "postgres" or "redshift" (same protocol) */
	char *dsn;                /* secrets resolved; never print it */
	long statement_timeout_ms; /* 0 = server default */
	enum retl_read_path read; /* "read": auto (default), copy, cursor */
	long connect_timeout_ms;   /* 0 = none; a DSN's connect_timeout wins */
	char *state_schema;       /* "diff": "warehouse" keeps its tables here
				   * (default "retl_state"; sync_whdiff.c) */
	json_t *unresolved;       /* as written, while its secrets are unread
				   * (owned); NULL once resolved */
	char *audit;              /* "audit": schema for sync logs (audit.h),
				   * NULL = none */
	long audit_retention_ms;  /* "audit_retention": 0 = keep for ever */
};

/* connect_timeout when the source does not set it: a host that accepts
 * TCP and never answers ends the run (exit 3) rather than hanging it */
#define RETL_CONNECT_TIMEOUT_DEFAULT_MS 10000L
/* sync logs kept 90 days unless "audit_retention" says otherwise: a
 * quarter answers "what happened to this row last month" and bounds the
 * tables (README "Sync logs in the warehouse") */
#define RETL_AUDIT_RETENTION_DEFAULT_MS (90L * 86400000L)

struct retl_dest_cfg {
	char *name;
	char *type;               /* a name from destinations/destination.h's table */
	char *base_url;           /* NULL unless set */
	json_t *options;          /* the whole object, secrets resolved (owned);
				   * NULL while unresolved */
	json_t *unresolved;       /* as written, while its secrets are unread
				   * (owned); NULL once resolved */
};

struct retl_safety {
	long max_removed;         /* -1 = no limit */
	double max_removed_ratio; /* < 0 = no limit; ratio of cached rows */
	int refuse_empty_model;   /* default 1 */
};

struct retl_sync_cfg {
	char *name;               /* file stem of mappings/<name>.json */
	char *file;               /* "mappings/<name>.json", for messages */
	char *source;
	char *query;
	char **key;               /* one or more column names */
	size_t nkey;
	char *destination;
	char *object;             /* NULL when not given */
	enum retl_mode mode;
	json_t *match;            /* {destination field: column} or NULL (owned) */
	json_t *fields;           /* the raw "fields" object (owned) */
	enum retl_on_remove on_remove;
	int diff_warehouse;       /* "diff": "warehouse" (sync_whdiff.c) */
	char *changed_since;      /* its change column, or NULL */
	long changed_since_lookback_ms; /* read that much below the watermark */
	struct retl_safety safety;
	char *schedule;           /* NULL when not given */
	json_t *options;          /* destination-specific sync keys, or NULL (owned) */
	struct retl_mapping *mapping; /* parsed fields (owned) */
	/* resolved references (borrowed from the config) */
	struct retl_source_cfg *src;
	struct retl_dest_cfg *dst;
	json_t *def;              /* the file as loaded (owned): a reload that
				   * finds the file broken keeps the sync
				   * defined from it */
};

/* a mappings/<name>.json that did not load: the sync is skipped */
struct retl_sync_invalid {
	char *name;
	char *file;               /* "mappings/<name>.json" */
	char *msg;                /* the error, "mappings/<name>.json:..." */
	int kept;                 /* retl_config_keep_previous kept the old one */
};

struct retl_config {
	char *dir;                /* project directory */
	char *state_path;         /* resolved against dir; default "state/retl.db";
				   * or a postgresql:// URL, secrets read */
	char *state_local;        /* a URL's local files: <dir>/.retl; else NULL */
	struct retl_source_cfg *sources;
	size_t nsources;
	struct retl_dest_cfg *dests;
	size_t ndests;
	struct retl_sync_cfg *syncs; /* sorted by name; valid ones only */
	size_t nsyncs;
	struct retl_notify_cfg *notify; /* alerts (notify.h), NULL = none */
	struct retl_sync_invalid *invalid; /* sorted by name */
	size_t ninvalid;
};

/*
 * Loads dir/retl.json and dir/mappings/ *.json.  An error in retl.json (or
 * an unreadable mappings/) fails the load (err code 2).  A mapping file
 * that does not load is not fatal: it goes to cfg->invalid with its
 * message and the other syncs load.  Secrets are not read here: a source
 * or destination that holds one keeps it as written (->unresolved) until
 * retl_config_resolve, so verbs that never connect need none of them.
 */
int retl_config_load(struct retl_config **out, const char *dir, struct retl_err *err);
void retl_config_free(struct retl_config *cfg);
struct retl_sync_cfg *retl_config_sync(struct retl_config *cfg, const char *name);
const struct retl_sync_invalid *retl_config_invalid(const struct retl_config *cfg,
						    const char *name);

/*
 * Reads the secrets of sc's source and destination (each once) and checks
 * the values that needed them.  An unset variable or unreadable file is a
 * config error (code 2) naming retl.json and the key.  Called by every
 * path that connects (sync.c), so no other sync's secrets are needed.
 */
int retl_config_resolve(struct retl_config *cfg, struct retl_sync_cfg *sc,
			struct retl_err *err);
/* the same for one connection (`retl check` reads every one) */
int retl_config_resolve_source(struct retl_config *cfg,
			       struct retl_source_cfg *s, struct retl_err *err);
int retl_config_resolve_dest(struct retl_config *cfg, struct retl_dest_cfg *d,
			     struct retl_err *err);

/*
 * Registers with redact.h the values of the "${NAME}"s the connections
 * name that are set, without needing any (no file is read): what the
 * report verbs print from the state store stays redacted as before.
 */
void retl_config_redact_env(const struct retl_config *cfg);

/*
 * SIGHUP: for each sync invalid in cfg that old defines, cfg takes old's
 * definition (re-read from its JSON against cfg's connections) and marks
 * the entry kept.  Returns how many were kept.
 */
size_t retl_config_keep_previous(struct retl_config *cfg,
				 const struct retl_config *old);

const char *retl_mode_name(enum retl_mode m);
/* does the sync send a removal for a row that left the model: mirror with
 * an on_remove action, or membership (leaving the list) */
int retl_sync_removes(const struct retl_sync_cfg *sc);
const char *retl_on_remove_name(enum retl_on_remove r);

#endif
