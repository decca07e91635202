/*
 * config_sync.c - one mappings/<sync>.json: what to read, how to map it,
 * where to push it.
 *
 * The keys are read in the fixed order of the `steps` table below, not in
 * the file's order, so the first error reported for a file never depends
 * on how its keys are ordered.  The destination comes first: it says which
 * extra keys a sync may carry (its sync_keys), which modes and which
 * removal actions it supports.  Keys read the same way share one reader:
 * strings (read_string), names from a list (read_name: mode, on_remove),
 * and the typed values of "safety" (its own table).
 */
#include "config_int.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "destination.h"
#include "mapping.h"
#include "schedule.h"

static const char *const mode_names[] = {
	"upsert", "update", "insert", "mirror", "membership", NULL
};
static const char *const remove_names[] = {
	"ignore", "archive", "delete", "unsubscribe", "clear", NULL
};

static const char *const sync_keys[] = {
	"source", "query", "key", "destination", "object", "mode", "match",
	"fields", "on_remove", "safety", "schedule", "diff", "changed_since", NULL
};

const char *retl_mode_name(enum retl_mode m)
{
	return (unsigned)m <= RETL_MODE_MEMBERSHIP ? mode_names[m] : "?";
}

int retl_sync_removes(const struct retl_sync_cfg *sc)
{
	return sc->mode == RETL_MODE_MEMBERSHIP ||
	       (sc->mode == RETL_MODE_MIRROR && sc->on_remove != RETL_REMOVE_IGNORE);
}

const char *retl_on_remove_name(enum retl_on_remove r)
{
	return (unsigned)r < 5 ? remove_names[r] : "?";
}

/* ---- helpers ---- */

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

/* names[i] for every bit i of mask (names[0] always when with_first) */
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

/* ---- the steps ---- */

/* what the steps of loading one sync work on */
struct sync_load {
	struct retl_cfg_ctx *c;
	struct retl_config *cfg;
	struct retl_sync_cfg *sc;
	json_t *root;
	const struct retl_destination *dest; /* set by the first step */
	retl_buf b;                          /* scratch for messages */
};

struct sync_step {
	const char *key;
	/* v is root's member `key`, NULL when absent */
	int (*read)(struct sync_load *l, const struct sync_step *st, json_t *v);
	size_t off;       /* read_string: the char * in retl_sync_cfg */
	int required;     /* read_string */
};

/*
 * The destination says which extra keys a sync may carry, so it is resolved
 * before the unknown-key check; an unknown destination is reported first,
 * since its keys cannot be known.
 */
static int read_destination(struct sync_load *l, const struct sync_step *st,
			    json_t *v)
{
	struct retl_cfg_ctx *c = l->c;
	if (!v) {
		if (retl_cfg_check_keys(c, l->root, NULL, sync_keys, NULL) < 0)
			return -1;
		return retl_cfg_fail(c, st->key, "missing (required)");
	}
	if (!json_is_string(v))
		return retl_cfg_fail(c, st->key,
				     "expected the name of a destination in retl.json");
	l->sc->dst = find_dest(l->cfg, json_string_value(v));
	if (!l->sc->dst) {
		retl_buf_reset(&l->b);
		defined_names(&l->b, l->cfg, 1);
		return retl_cfg_fail(c, st->key, "unknown destination \"%s\" %s",
				     json_string_value(v), l->b.ptr);
	}
	l->dest = retl_destination_find(l->sc->dst->type);
	l->sc->destination = retl_strdup(l->sc->dst->name);
	return retl_cfg_check_keys(c, l->root, NULL, sync_keys, l->dest->sync_keys);
}

static int read_source(struct sync_load *l, const struct sync_step *st,
		       json_t *v)
{
	if (!v)
		return retl_cfg_fail(l->c, st->key, "missing (required)");
	if (!json_is_string(v))
		return retl_cfg_fail(l->c, st->key,
				     "expected the name of a source in retl.json");
	l->sc->src = find_source(l->cfg, json_string_value(v));
	if (!l->sc->src) {
		retl_buf_reset(&l->b);
		defined_names(&l->b, l->cfg, 0);
		return retl_cfg_fail(l->c, st->key, "unknown source \"%s\" %s",
				     json_string_value(v), l->b.ptr);
	}
	l->sc->source = retl_strdup(l->sc->src->name);
	return 0;
}

/* a non-empty string, into the retl_sync_cfg member at st->off */
static int read_string(struct sync_load *l, const struct sync_step *st,
		       json_t *v)
{
	char **out = (char **)((char *)l->sc + st->off);
	return retl_cfg_get_string(l->c, l->root, NULL, st->key, st->required,
				   1, out);
}

static int read_key(struct sync_load *l, const struct sync_step *st, json_t *k)
{
	struct retl_cfg_ctx *c = l->c;
	struct retl_sync_cfg *sc = l->sc;
	if (!k)
		return retl_cfg_fail(c, st->key, "missing (required: the model's primary key column, or a list of columns)");
	if (json_is_string(k) && json_string_length(k)) {
		sc->key = retl_calloc(1, sizeof(*sc->key));
		sc->key[sc->nkey++] = retl_strdup(json_string_value(k));
		return 0;
	}
	if (!json_is_array(k) || !json_array_size(k))
		return retl_cfg_fail(c, st->key, "expected a column name or a list of column names");
	size_t i;
	json_t *e;
	json_array_foreach(k, i, e) {
		if (!json_is_string(e) || !json_string_length(e))
			return retl_cfg_fail(c, st->key, "expected a column name or a list of column names");
		for (size_t j = 0; j < i; j++)
			if (!strcmp(json_string_value(json_array_get(k, j)), json_string_value(e)))
				return retl_cfg_fail(c, st->key, "column \"%s\" is listed twice",
						     json_string_value(e));
	}
	sc->key = retl_calloc(json_array_size(k), sizeof(*sc->key));
	json_array_foreach(k, i, e)
		sc->key[sc->nkey++] = retl_strdup(json_string_value(e));
	return 0;
}

/*
 * One of names (NULL-terminated) by its name: *out = its index, left alone
 * when v is absent.  `thing` names a value in messages ("mode", "action").
 */
static int read_name(struct sync_load *l, const char *key, json_t *v,
		     const char *const *names, const char *thing, int *out)
{
	if (!v)
		return 0;
	retl_buf_reset(&l->b);
	names_from_mask(&l->b, names, ~0u, 0);
	if (!json_is_string(v))
		return retl_cfg_fail(l->c, key, "expected a string (one of %s)", l->b.ptr);
	int i = lookup_name(names, json_string_value(v));
	if (i < 0)
		return retl_cfg_fail(l->c, key, "unknown %s \"%s\" (expected one of %s)",
				     thing, json_string_value(v), l->b.ptr);
	*out = i;
	return 0;
}

static int read_mode(struct sync_load *l, const struct sync_step *st, json_t *v)
{
	struct retl_sync_cfg *sc = l->sc;
	int i = RETL_MODE_UPSERT;
	if (read_name(l, st->key, v, mode_names, "mode", &i) < 0)
		return -1;
	sc->mode = (enum retl_mode)i;
	if (l->dest->modes & (1u << sc->mode))
		return 0;
	retl_buf_reset(&l->b);
	names_from_mask(&l->b, mode_names, l->dest->modes, 0);
	return retl_cfg_fail(l->c, st->key, "mode \"%s\" is not supported by the %s destination (supported: %s)",
			     retl_mode_name(sc->mode), l->dest->name, l->b.ptr);
}

static int read_match(struct sync_load *l, const struct sync_step *st, json_t *mt)
{
	if (!mt)
		return 0;
	if (!json_is_object(mt) || !json_object_size(mt))
		return retl_cfg_fail(l->c, st->key, "expected an object of {destination field: column}");
	const char *k;
	json_t *v;
	json_object_foreach(mt, k, v) {
		if (!json_is_string(v) || !json_string_length(v))
			return retl_cfg_fail(l->c, retl_cfg_subpath(&l->b, st->key, k),
					     "expected a column name");
	}
	l->sc->match = json_incref(mt);
	return 0;
}

static int read_fields(struct sync_load *l, const struct sync_step *st, json_t *f)
{
	struct retl_cfg_ctx *c = l->c;
	if (!f)
		return retl_cfg_fail(c, st->key, "missing (required)");
	if (!json_is_object(f))
		return retl_cfg_fail(c, st->key, "expected an object of {target field: column or field spec}");
	l->sc->fields = json_incref(f);
	if (retl_mapping_parse(&l->sc->mapping, f, c->file, c->err) < 0) {
		if (!c->err->code)
			c->err->code = RETL_EXIT_USAGE;
		return -1;
	}
	const char *ie = retl_mapping_if_empty_field(l->sc->mapping);
	if (ie && !l->dest->if_empty)
		return retl_cfg_fail(c, retl_cfg_subpath(&l->b, st->key, ie),
				     "\"write\": \"if_empty\" is not supported by the %s destination (supported: %s)",
				     l->dest->name, retl_destination_if_empty_names());
	return 0;
}

static int read_on_remove(struct sync_load *l, const struct sync_step *st,
			  json_t *v)
{
	struct retl_sync_cfg *sc = l->sc;
	int i = RETL_REMOVE_IGNORE;
	if (read_name(l, st->key, v, remove_names, "action", &i) < 0)
		return -1;
	sc->on_remove = (enum retl_on_remove)i;
	/* membership always removes a row that left the model from the list,
	 * and only from the list: no action to choose */
	if (sc->mode == RETL_MODE_MEMBERSHIP && v)
		return retl_cfg_fail(l->c, st->key, "not used in mode \"membership\": a row that leaves the model is removed from the list (the record itself is kept); remove on_remove");
	if (sc->on_remove == RETL_REMOVE_IGNORE)
		return 0;
	if (sc->mode != RETL_MODE_MIRROR)
		return retl_cfg_fail(l->c, st->key, "\"%s\" needs mode \"mirror\" (mode is \"%s\"; only mirror removes records)",
				     retl_on_remove_name(sc->on_remove), retl_mode_name(sc->mode));
	if (l->dest->removals & (1u << sc->on_remove))
		return 0;
	retl_buf_reset(&l->b);
	names_from_mask(&l->b, remove_names, l->dest->removals, 1);
	return retl_cfg_fail(l->c, st->key, "\"%s\" is not supported by the %s destination (supported: %s)",
			     retl_on_remove_name(sc->on_remove), l->dest->name, l->b.ptr);
}

/* the keys of "safety", each a typed value at an offset of retl_safety */
enum safety_kind { SAFETY_COUNT, SAFETY_RATIO, SAFETY_FLAG };

static const struct safety_key {
	const char *key;
	enum safety_kind kind;
	size_t off;
} safety_table[] = {
	{ "max_removed", SAFETY_COUNT, offsetof(struct retl_safety, max_removed) },
	{ "max_removed_ratio", SAFETY_RATIO,
	  offsetof(struct retl_safety, max_removed_ratio) },
	{ "refuse_empty_model", SAFETY_FLAG,
	  offsetof(struct retl_safety, refuse_empty_model) },
};
static const char *const safety_keys[] = {
	"max_removed", "max_removed_ratio", "refuse_empty_model", NULL
};

static int read_safety_value(struct retl_cfg_ctx *c, const char *path,
			     json_t *v, enum safety_kind kind, void *dst)
{
	double r;
	switch (kind) {
	case SAFETY_COUNT:
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > LONG_MAX)
			return retl_cfg_fail(c, path, "expected an integer >= 0");
		*(long *)dst = (long)json_integer_value(v);
		return 0;
	case SAFETY_RATIO:
		r = json_number_value(v);
		if (!json_is_number(v) || !(r >= 0 && r <= 1))
			return retl_cfg_fail(c, path, "expected a number from 0 to 1");
		*(double *)dst = r;
		return 0;
	case SAFETY_FLAG:
		if (!json_is_boolean(v))
			return retl_cfg_fail(c, path, "expected true or false");
		*(int *)dst = json_is_true(v);
		return 0;
	}
	return -1;
}

static int read_safety(struct sync_load *l, const struct sync_step *st,
		       json_t *o)
{
	struct retl_safety *s = &l->sc->safety;
	s->max_removed = -1;
	s->max_removed_ratio = -1;
	s->refuse_empty_model = 1;
	if (!o)
		return 0;
	if (!json_is_object(o))
		return retl_cfg_fail(l->c, st->key, "expected an object (keys: max_removed, max_removed_ratio, refuse_empty_model)");
	if (retl_cfg_check_keys(l->c, o, st->key, safety_keys, NULL) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(safety_table) / sizeof(safety_table[0]); i++) {
		const struct safety_key *k = &safety_table[i];
		json_t *v = json_object_get(o, k->key);
		if (v && read_safety_value(l->c, retl_cfg_subpath(&l->b, st->key, k->key),
					   v, k->kind, (char *)s + k->off) < 0)
			return -1;
	}
	return 0;
}

/* when the daemon runs it (schedule.h); parsed here, so a mistake is a
 * config error */
static int read_schedule(struct sync_load *l, const struct sync_step *st,
			 json_t *v)
{
	if (read_string(l, st, v) < 0)
		return -1;
	if (!l->sc->schedule)
		return 0;
	struct retl_schedule sched;
	struct retl_err serr;
	retl_err_clear(&serr);
	if (retl_schedule_parse(&sched, l->sc->schedule, &serr) < 0)
		return retl_cfg_fail(l->c, st->key, "%s", serr.msg);
	return 0;
}

/* "diff": "local" (the default) or "warehouse" (sync_whdiff.c) */
static int read_diff(struct sync_load *l, const struct sync_step *st, json_t *v)
{
	static const char *const diff_names[] = { "local", "warehouse", NULL };
	int i = 0;
	if (read_name(l, st->key, v, diff_names, "diff", &i) < 0)
		return -1;
	l->sc->diff_warehouse = i == 1;
	return 0;
}

/*
 * "changed_since": "col" or {"column": "col", "lookback": "10m"} (README
 * "Diff in the warehouse" -> "Only the rows that changed"): the warehouse
 * diff reads only rows whose change column reached the watermark.  The
 * column's type is checked when the model is described (sync_whdiff.c).
 */
static int read_changed_since(struct sync_load *l, const struct sync_step *st,
			      json_t *v)
{
	static const char *const keys[] = { "column", "lookback", NULL };
	struct retl_sync_cfg *sc = l->sc;
	if (!v)
		return 0;
	if (!sc->diff_warehouse)
		return retl_cfg_fail(l->c, st->key, "needs \"diff\": \"warehouse\" (the local diff reads every row anyway)");
	if (json_is_string(v) && json_string_length(v)) {
		sc->changed_since = retl_strdup(json_string_value(v));
		return 0;
	}
	if (!json_is_object(v))
		return retl_cfg_fail(l->c, st->key, "expected a column name, or an object (keys: column, lookback)");
	if (retl_cfg_check_keys(l->c, v, st->key, keys, NULL) < 0 ||
	    retl_cfg_get_string(l->c, v, st->key, "column", 1, 1, &sc->changed_since) < 0)
		return -1;
	return retl_cfg_get_duration(l->c, v, st->key, "lookback",
				     &sc->changed_since_lookback_ms);
}

/* in the order errors are looked for */
static const struct sync_step steps[] = {
	{ "destination", read_destination, 0, 0 },
	{ "source", read_source, 0, 0 },
	{ "query", read_string, offsetof(struct retl_sync_cfg, query), 1 },
	{ "key", read_key, 0, 0 },
	{ "object", read_string, offsetof(struct retl_sync_cfg, object), 0 },
	{ "mode", read_mode, 0, 0 },
	{ "match", read_match, 0, 0 },
	{ "fields", read_fields, 0, 0 },
	{ "on_remove", read_on_remove, 0, 0 },
	{ "safety", read_safety, 0, 0 },
	{ "schedule", read_schedule, offsetof(struct retl_sync_cfg, schedule), 0 },
	{ "diff", read_diff, 0, 0 },
	{ "changed_since", read_changed_since, 0, 0 },
};

int retl_cfg_load_sync(struct retl_cfg_ctx *c, struct retl_config *cfg,
		       struct retl_sync_cfg *sc, json_t *root)
{
	if (!json_is_object(root))
		return retl_cfg_fail(c, NULL, "expected a JSON object at the top level");
	struct sync_load l = { .c = c, .cfg = cfg, .sc = sc, .root = root,
			       .b = RETL_BUF_INIT };
	int rc = 0;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && !rc; i++)
		rc = steps[i].read(&l, &steps[i], json_object_get(root, steps[i].key));
	retl_buf_free(&l.b);
	if (rc < 0)
		return -1;

	/* the destination's own sync keys, for its open() */
	for (const char *const *k = l.dest->sync_keys; k && *k; k++) {
		json_t *v = json_object_get(root, *k);
		if (!v)
			continue;
		if (!sc->options)
			sc->options = json_object();
		json_object_set(sc->options, *k, v);
	}
	return 0;
}
