/*
 * transform.c - the field language's transforms, see transform.h.
 *
 * Semantics worth knowing (the config docs copy these):
 *   - null passes through every transform unchanged, except default.
 *   - applied to an array (after split), every transform but split, join
 *     and default works element by element; default replaces null or empty
 *     elements; an empty array stays empty.
 *   - trim strips ASCII whitespace (space \t \n \v \f \r) only; lower and
 *     upper change ASCII letters only (other code points pass unchanged, so
 *     the result is still valid UTF-8).
 *   - default replaces null and the empty string.
 *   - replace is global (PCRE2_SUBSTITUTE_GLOBAL); "with" uses pcre2's
 *     syntax: $1, ${name}, $$ for a dollar.  A reference to a group the
 *     pattern lacks rejects the row when it is first used.
 *   - extract: group defaults to 1, or 0 when the pattern has no groups; no
 *     match (or the group did not take part) gives null.
 *   - match: no match rejects the row; the value passes unchanged.
 *   - map: an unmapped value becomes "default" when given (which may be
 *     null), else passes through unchanged.  Map targets may be strings,
 *     numbers, booleans or null.
 *   - split: "" splits into an empty array; splitting an array splits each
 *     element and flattens.  join: null elements are left out; joining a
 *     scalar leaves it unchanged.
 *   - truncate counts code points and never cuts inside one.
 *   - patterns are compiled with PCRE2_UTF, so a subject that is not valid
 *     UTF-8 rejects the row with pcre2's message.
 */
#include "transform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cast.h"

static const char *const tf_names[] = {
	"trim", "lower", "upper", "default", "replace", "extract",
	"match", "map", "split", "join", "truncate",
};
#define TF_COUNT (sizeof(tf_names) / sizeof(tf_names[0]))
#define TF_EXPECTED "expected one of trim, lower, upper, default, replace, " \
	"extract, match, map, split, join, truncate"

/* ---- values ----------------------------------------------------------- */

void retl_val_init(struct retl_val *v)
{
	memset(v, 0, sizeof(*v));
	retl_buf_grow(&v->data, 64); /* ptr is never NULL: pcre2 wants a subject */
	v->data.ptr[0] = '\0';
}

void retl_val_free(struct retl_val *v)
{
	retl_buf_free(&v->data);
	free(v->items);
	memset(v, 0, sizeof(*v));
}

void retl_val_reset(struct retl_val *v)
{
	retl_buf_reset(&v->data);
	v->n = 0;
	v->is_array = 0;
}

static void push_item(struct retl_val *v, size_t off, size_t len, int null)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 8;
		v->items = retl_realloc(v->items, v->cap * sizeof(*v->items));
	}
	v->items[v->n].off = off;
	v->items[v->n].len = len;
	v->items[v->n].null = null;
	v->n++;
}

void retl_val_push(struct retl_val *v, const char *s, size_t len)
{
	size_t off = v->data.len;
	retl_buf_add(&v->data, s, len);
	push_item(v, off, len, 0);
}

void retl_val_push_tail(struct retl_val *v, size_t off)
{
	push_item(v, off, v->data.len - off, 0);
}

void retl_val_push_null(struct retl_val *v)
{
	push_item(v, v->data.len, 0, 1);
}

/* ---- parsing ---------------------------------------------------------- */

static char *scalar_text(const json_t *j, size_t *len)
{
	char tmp[64];
	switch (json_typeof(j)) {
	case JSON_STRING:
		*len = json_string_length(j);
		return retl_strndup(json_string_value(j), *len);
	case JSON_INTEGER:
		snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		break;
	case JSON_REAL:
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(tmp, sizeof(tmp), "%.*g", prec, json_real_value(j));
			if (strtod(tmp, NULL) == json_real_value(j))
				break;
		}
		break;
	case JSON_TRUE:
		strcpy(tmp, "true");
		break;
	case JSON_FALSE:
		strcpy(tmp, "false");
		break;
	default:
		return NULL;
	}
	*len = strlen(tmp);
	return retl_strdup(tmp);
}

static int compile(struct retl_transform *t, const json_t *pat,
		   const char *where, const char *key, struct retl_err *err)
{
	int ec;
	PCRE2_SIZE eo;
	if (!json_is_string(pat))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s.%s: expected a regular expression (string)",
				    where, key);
	t->pattern = retl_strdup(json_string_value(pat));
	t->re = pcre2_compile((PCRE2_SPTR)json_string_value(pat),
			      json_string_length(pat), PCRE2_UTF, &ec, &eo, NULL);
	if (!t->re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof(msg));
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s.%s: invalid regular expression: %s at offset %zu",
				    where, key, (const char *)msg, (size_t)eo);
	}
	(void)pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* else interpreted */
	t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
	if (!t->md) {
		fputs("retl: out of memory\n", stderr);
		abort();
	}
	return 0;
}

static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct retl_map_entry *x = a, *y = b;
	return cmp_bytes(x->from, x->from_len, y->from, y->from_len);
}

static int parse_map(struct retl_transform *t, const json_t *map,
		     const char *where, struct retl_err *err)
{
	const char *k;
	json_t *v;
	if (!json_is_object(map))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s.map: expected an object of \"from\": \"to\" values",
				    where);
	t->map = retl_calloc(json_object_size(map), sizeof(*t->map));
	json_object_foreach((json_t *)map, k, v) {
		struct retl_map_entry *e = &t->map[t->nmap];
		if (!json_is_null(v) && !(e->to = scalar_text(v, &e->to_len)))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s.map.%s: expected a string, number, boolean or null",
					    where, k);
		e->from_len = strlen(k);
		e->from = retl_strndup(k, e->from_len);
		t->nmap++;
	}
	qsort(t->map, t->nmap, sizeof(*t->map), cmp_entry);
	return 0;
}

static int check_keys(const json_t *spec, enum retl_tf_kind kind,
		      const char *extra, const char *where, struct retl_err *err)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)spec, k, v) {
		if (!strcmp(k, tf_names[kind]) || (extra && !strcmp(k, extra)))
			continue;
		if (extra)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s.%s: unknown key (%s takes %s, %s)", where,
					    k, tf_names[kind], tf_names[kind], extra);
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s.%s: unknown key (%s takes only %s)", where, k,
				    tf_names[kind], tf_names[kind]);
	}
	return 0;
}

static int find_kind(const char *name)
{
	for (size_t i = 0; i < TF_COUNT; i++)
		if (!strcmp(name, tf_names[i]))
			return (int)i;
	return -1;
}

static int parse_object(struct retl_transform *t, const json_t *spec,
			const char *where, struct retl_err *err)
{
	/* map and default share a key: map wins, its "default" is an option */
	static const enum retl_tf_kind order[] = {
		RETL_TF_MAP, RETL_TF_REPLACE, RETL_TF_EXTRACT, RETL_TF_MATCH,
		RETL_TF_SPLIT, RETL_TF_JOIN, RETL_TF_TRUNCATE, RETL_TF_DEFAULT,
		RETL_TF_TRIM, RETL_TF_LOWER, RETL_TF_UPPER,
	};
	const json_t *arg = NULL;
	size_t i;
	for (i = 0; i < TF_COUNT; i++)
		if ((arg = json_object_get(spec, tf_names[order[i]])))
			break;
	if (!arg) {
		void *it = json_object_iter((json_t *)spec);
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: unknown transform \"%s\" (" TF_EXPECTED ")",
				    where, json_object_iter_key(it));
	}
	t->kind = order[i];
	const char *name = tf_names[t->kind];
	switch (t->kind) {
	case RETL_TF_TRIM:
	case RETL_TF_LOWER:
	case RETL_TF_UPPER:
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: %s takes no argument (write \"%s\")", where,
				    name, name);
	case RETL_TF_DEFAULT:
		if (check_keys(spec, t->kind, NULL, where, err) < 0)
			return -1;
		if (!(t->arg = scalar_text(arg, &t->arg_len)))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s.default: expected a string, number or boolean",
					    where);
		return 0;
	case RETL_TF_REPLACE: {
		const json_t *with = json_object_get(spec, "with");
		if (check_keys(spec, t->kind, "with", where, err) < 0 ||
		    compile(t, arg, where, name, err) < 0)
			return -1;
		if (!with)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s.with: missing (replace needs \"with\")", where);
		if (!json_is_string(with))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s.with: expected a string", where);
		t->arg_len = json_string_length(with);
		t->arg = retl_strndup(json_string_value(with), t->arg_len);
		return 0;
	}
	case RETL_TF_EXTRACT: {
		const json_t *group = json_object_get(spec, "group");
		uint32_t ngroups = 0;
		if (check_keys(spec, t->kind, "group", where, err) < 0 ||
		    compile(t, arg, where, name, err) < 0)
			return -1;
		pcre2_pattern_info(t->re, PCRE2_INFO_CAPTURECOUNT, &ngroups);
		t->group = ngroups ? 1 : 0;
		if (group) {
			if (!json_is_integer(group) || json_integer_value(group) < 0)
				return retl_err_set(err, RETL_EXIT_USAGE,
						    "%s.group: expected a non-negative integer",
						    where);
			if (json_integer_value(group) > (json_int_t)ngroups)
				return retl_err_set(err, RETL_EXIT_USAGE,
						    "%s.group: the pattern has only %u capture group%s",
						    where, (unsigned)ngroups,
						    ngroups == 1 ? "" : "s");
			t->group = (uint32_t)json_integer_value(group);
		}
		return 0;
	}
	case RETL_TF_MATCH:
		if (check_keys(spec, t->kind, NULL, where, err) < 0)
			return -1;
		return compile(t, arg, where, name, err);
	case RETL_TF_MAP: {
		const json_t *def = json_object_get(spec, "default");
		if (check_keys(spec, t->kind, "default", where, err) < 0 ||
		    parse_map(t, arg, where, err) < 0)
			return -1;
		if (def) {
			t->has_default = 1;
			if (!json_is_null(def) && !(t->arg = scalar_text(def, &t->arg_len)))
				return retl_err_set(err, RETL_EXIT_USAGE,
						    "%s.default: expected a string, number, boolean or null",
						    where);
		}
		return 0;
	}
	case RETL_TF_SPLIT:
	case RETL_TF_JOIN:
		if (check_keys(spec, t->kind, NULL, where, err) < 0)
			return -1;
		if (!json_is_string(arg) ||
		    (t->kind == RETL_TF_SPLIT && !json_string_length(arg)))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s.%s: expected a %sseparator string", where,
					    name, t->kind == RETL_TF_SPLIT ? "non-empty " : "");
		t->arg_len = json_string_length(arg);
		t->arg = retl_strndup(json_string_value(arg), t->arg_len);
		return 0;
	case RETL_TF_TRUNCATE:
		if (check_keys(spec, t->kind, NULL, where, err) < 0)
			return -1;
		if (!json_is_integer(arg) || json_integer_value(arg) < 0)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s.truncate: expected a non-negative integer",
					    where);
		t->max_chars = (size_t)json_integer_value(arg);
		return 0;
	}
	return 0;
}

int retl_transform_parse(struct retl_transform *t, const json_t *spec,
			 const char *where, struct retl_err *err)
{
	memset(t, 0, sizeof(*t));
	if (json_is_string(spec)) {
		const char *name = json_string_value(spec);
		int k = find_kind(name);
		if (k < 0)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: unknown transform \"%s\" (" TF_EXPECTED ")",
					    where, name);
		t->kind = (enum retl_tf_kind)k;
		if (k != RETL_TF_TRIM && k != RETL_TF_LOWER && k != RETL_TF_UPPER)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: %s needs an argument (write {\"%s\": ...})",
					    where, name, name);
		return 0;
	}
	if (!json_is_object(spec) || !json_object_size(spec))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: expected a transform name or an object such as "
				    "{\"replace\": \"...\", \"with\": \"...\"}", where);
	return parse_object(t, spec, where, err);
}

void retl_transform_release(struct retl_transform *t)
{
	free(t->arg);
	free(t->pattern);
	if (t->md)
		pcre2_match_data_free(t->md);
	if (t->re)
		pcre2_code_free(t->re);
	for (size_t i = 0; i < t->nmap; i++) {
		free(t->map[i].from);
		free(t->map[i].to);
	}
	free(t->map);
	memset(t, 0, sizeof(*t));
}

/* ---- applying --------------------------------------------------------- */

static int regex_failed(const struct retl_transform *t, int rc,
			const char *target, retl_buf *reason)
{
	PCRE2_UCHAR msg[256];
	pcre2_get_error_message(rc, msg, sizeof(msg));
	retl_buf_reset(reason);
	retl_buf_addf(reason, "%s: %s: %s", target, tf_names[t->kind],
		      (const char *)msg);
	return -1;
}

static int is_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static int replace(struct retl_transform *t, const char *s, size_t len,
		   struct retl_val *out, const char *target, retl_buf *reason)
{
	size_t off = out->data.len;
	PCRE2_SIZE need = len + len / 2 + 64;
	for (int tries = 0; tries < 3; tries++) {
		retl_buf_grow(&out->data, need);
		PCRE2_SIZE olen = out->data.cap - off;
		int rc = pcre2_substitute(t->re, (PCRE2_SPTR)s, len, 0,
					  PCRE2_SUBSTITUTE_GLOBAL |
					  PCRE2_SUBSTITUTE_OVERFLOW_LENGTH,
					  t->md, NULL, (PCRE2_SPTR)t->arg, t->arg_len,
					  (PCRE2_UCHAR *)out->data.ptr + off, &olen);
		if (rc >= 0) {
			out->data.len = off + olen;
			out->data.ptr[out->data.len] = '\0';
			push_item(out, off, olen, 0);
			return 0;
		}
		if (rc != PCRE2_ERROR_NOMEMORY)
			return regex_failed(t, rc, target, reason);
		need = olen + 1;
	}
	return regex_failed(t, PCRE2_ERROR_NOMEMORY, target, reason);
}

static int apply_one(struct retl_transform *t, const char *s, size_t len,
		     struct retl_val *out, const char *target, retl_buf *reason)
{
	switch (t->kind) {
	case RETL_TF_TRIM:
		while (len && is_space(*s)) {
			s++;
			len--;
		}
		while (len && is_space(s[len - 1]))
			len--;
		break;
	case RETL_TF_LOWER:
	case RETL_TF_UPPER: {
		size_t off = out->data.len;
		int up = t->kind == RETL_TF_UPPER;
		retl_val_push(out, s, len);
		for (char *p = out->data.ptr + off; len--; p++) {
			if (up && *p >= 'a' && *p <= 'z')
				*p = (char)(*p - 32);
			else if (!up && *p >= 'A' && *p <= 'Z')
				*p = (char)(*p + 32);
		}
		return 0;
	}
	case RETL_TF_DEFAULT:
		if (!len) {
			s = t->arg;
			len = t->arg_len;
		}
		break;
	case RETL_TF_REPLACE:
		return replace(t, s, len, out, target, reason);
	case RETL_TF_EXTRACT:
	case RETL_TF_MATCH: {
		int rc = pcre2_match(t->re, (PCRE2_SPTR)s, len, 0, 0, t->md, NULL);
		if (rc == PCRE2_ERROR_NOMATCH && t->kind == RETL_TF_EXTRACT) {
			retl_val_push_null(out);
			return 0;
		}
		if (rc == PCRE2_ERROR_NOMATCH) {
			retl_buf_reset(reason);
			retl_buf_addf(reason, "%s: value \"", target);
			retl_cast_add_excerpt(reason, s, len);
			retl_buf_addf(reason, "\" does not match %s", t->pattern);
			return -1;
		}
		if (rc < 0)
			return regex_failed(t, rc, target, reason);
		if (t->kind == RETL_TF_EXTRACT) {
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
			if ((uint32_t)rc <= t->group || ov[2 * t->group] == PCRE2_UNSET) {
				retl_val_push_null(out);
				return 0;
			}
			s += ov[2 * t->group];
			len = ov[2 * t->group + 1] - ov[2 * t->group];
		}
		break;
	}
	case RETL_TF_MAP: {
		size_t lo = 0, hi = t->nmap;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			const struct retl_map_entry *e = &t->map[mid];
			int c = cmp_bytes(s, len, e->from, e->from_len);
			if (!c) {
				if (!e->to)
					retl_val_push_null(out);
				else
					retl_val_push(out, e->to, e->to_len);
				return 0;
			}
			if (c < 0)
				hi = mid;
			else
				lo = mid + 1;
		}
		if (t->has_default && !t->arg) {
			retl_val_push_null(out);
			return 0;
		}
		if (t->has_default) {
			s = t->arg;
			len = t->arg_len;
		}
		break;
	}
	case RETL_TF_TRUNCATE:
		len = retl_utf8_prefix_chars(s, len, t->max_chars);
		break;
	case RETL_TF_SPLIT:
	case RETL_TF_JOIN:
		break; /* handled by the caller */
	}
	retl_val_push(out, s, len);
	return 0;
}

static void split_into(const struct retl_transform *t, const char *s,
		       size_t len, struct retl_val *out)
{
	const char *end = s + len;
	if (!len)
		return;
	for (;;) {
		const char *hit = memmem(s, (size_t)(end - s), t->arg, t->arg_len);
		if (!hit) {
			retl_val_push(out, s, (size_t)(end - s));
			return;
		}
		retl_val_push(out, s, (size_t)(hit - s));
		s = hit + t->arg_len;
	}
}

int retl_transform_apply(struct retl_transform *t, const struct retl_val *in,
			 struct retl_val *out, const char *target,
			 retl_buf *reason)
{
	retl_val_reset(out);
	out->is_array = in->is_array;
	if (t->kind == RETL_TF_SPLIT) {
		if (!in->is_array && in->items[0].null) {
			retl_val_push_null(out);
			return 0;
		}
		out->is_array = 1;
		for (size_t i = 0; i < in->n; i++) {
			if (in->items[i].null)
				retl_val_push_null(out);
			else
				split_into(t, retl_val_str(in, i), in->items[i].len, out);
		}
		return 0;
	}
	if (t->kind == RETL_TF_JOIN && in->is_array) {
		size_t off = out->data.len;
		int first = 1;
		out->is_array = 0;
		for (size_t i = 0; i < in->n; i++) {
			if (in->items[i].null)
				continue;
			if (!first)
				retl_buf_add(&out->data, t->arg, t->arg_len);
			retl_buf_add(&out->data, retl_val_str(in, i), in->items[i].len);
			first = 0;
		}
		push_item(out, off, out->data.len - off, 0);
		return 0;
	}
	for (size_t i = 0; i < in->n; i++) {
		const struct retl_item *it = &in->items[i];
		if (it->null && t->kind == RETL_TF_DEFAULT)
			retl_val_push(out, t->arg, t->arg_len);
		else if (it->null)
			retl_val_push_null(out);
		else if (t->kind == RETL_TF_JOIN) /* joining a scalar */
			retl_val_push(out, retl_val_str(in, i), it->len);
		else if (apply_one(t, retl_val_str(in, i), it->len, out, target,
				   reason) < 0)
			return -1;
	}
	return 0;
}
