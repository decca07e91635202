/*
 * transform.h - the field language's transforms (trim, replace, map, ...).
 *
 * A transform is parsed once from its JSON spec (pcre2 patterns compiled
 * and JIT-compiled there) and applied per row to a retl_val: a scalar or an
 * array of nullable strings kept in one reused byte buffer, so applying a
 * chain of transforms allocates nothing once the buffers have grown.
 */
#ifndef RETL_TRANSFORM_H
#define RETL_TRANSFORM_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

struct retl_item {
	size_t off, len; /* into retl_val.data */
	int null;
};

/* a value being transformed: one item (scalar) or an array of items */
struct retl_val {
	retl_buf data;
	struct retl_item *items;
	size_t n, cap;
	int is_array;
};

void retl_val_init(struct retl_val *v);
void retl_val_free(struct retl_val *v);
void retl_val_reset(struct retl_val *v);
/* s must not point into v's own data */
void retl_val_push(struct retl_val *v, const char *s, size_t len);
void retl_val_push_null(struct retl_val *v);
/* pushes data[off..len) (appended by the caller) as one item */
void retl_val_push_tail(struct retl_val *v, size_t off);
static inline const char *retl_val_str(const struct retl_val *v, size_t i)
{
	return v->data.ptr + v->items[i].off;
}

enum retl_tf_kind {
	RETL_TF_TRIM,
	RETL_TF_LOWER,
	RETL_TF_UPPER,
	RETL_TF_DEFAULT,
	RETL_TF_REPLACE,
	RETL_TF_EXTRACT,
	RETL_TF_MATCH,
	RETL_TF_MAP,
	RETL_TF_SPLIT,
	RETL_TF_JOIN,
	RETL_TF_TRUNCATE,
};

struct retl_map_entry {
	char *from, *to; /* to == NULL maps to null */
	size_t from_len, to_len;
};

struct retl_transform {
	enum retl_tf_kind kind;
	char *arg;            /* default's text, replace's with, split/join separator */
	size_t arg_len;
	int has_default;      /* map: "default" given (arg; NULL = null) */
	char *pattern;        /* the pattern's source, for messages */
	pcre2_code *re;
	pcre2_match_data *md;
	uint32_t group;       /* extract */
	struct retl_map_entry *map; /* sorted by from */
	size_t nmap;
	size_t max_chars;     /* truncate */
};

/*
 * Parses one element of a "transform" array into t.  `where` names it for
 * messages, e.g. "mappings/x.json: fields.email.transform[2]".
 */
int retl_transform_parse(struct retl_transform *t, const json_t *spec,
			 const char *where, struct retl_err *err);
void retl_transform_release(struct retl_transform *t);

/*
 * in -> out (reset first).  A rejected row returns -1 with
 * "<target>: <why>" in reason (reset first).
 */
int retl_transform_apply(struct retl_transform *t, const struct retl_val *in,
			 struct retl_val *out, const char *target,
			 retl_buf *reason);

#endif
