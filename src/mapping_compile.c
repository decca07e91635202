/*
 * mapping_compile.c - compiling a sync's "fields" into a retl_mapping, and
 * binding it to the query's columns (see mapping.h for the language,
 * mapping.c for applying it to rows).
 *
 * Each field is parsed once (source, transforms, type, on_null), constants
 * without transforms are rendered once, and the fields are sorted by target
 * and turned into a flat list of OPEN/FIELD/CLOSE ops, so applying a row is
 * a walk over that list.  The fingerprint hashes the canonical spec.
 * Binding resolves column names to indexes and gives each column its
 * natural type.
 */
#include "mapping_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cast.h"
#include "hash.h"

/* bump when a change to mapping*.c changes payloads for the same spec */
#define RETL_MAPPING_VERSION 1

#define TYPES_EXPECTED "expected one of string, integer, number, boolean, " \
	"date, datetime, json"

/* ---- parsing ----------------------------------------------------------
 *
 * Every message retl_mapping_parse / retl_mapping_bind can give (<file> is
 * the `file` argument, <t> the target, <i> a transform's index):
 *
 *   <file>: fields: expected an object of target fields
 *   <file>: fields: no fields mapped
 *   <file>: fields: empty target name
 *   <file>: fields.<t>: empty name segment in a dotted target
 *   <file>: fields.<t>: conflicts with field "<u>" (a target cannot be both a value and an object)
 *   <file>: fields.<t>: expected a column name or an object with one of from, value, template
 *   <file>: fields.<t>: only one of from, value, template may be given
 *   <file>: fields.<t>: empty column name
 *   <file>: fields.<t>.<key>: unknown key (expected one of from, value, template, transform, type, on_null, write)
 *   <file>: fields.<t>.write: expected "always" (the default) or "if_empty"
 *   <file>: fields.<t>.from: expected a column name (string)
 *   <file>: fields.<t>.from: empty column name
 *   <file>: fields.<t>.value: expected a string, number, boolean or null
 *   <file>: fields.<t>.value: cannot convert "<v>" to <type>
 *   <file>: fields.<t>.template: expected a string
 *   <file>: fields.<t>.template: unclosed "{{"
 *   <file>: fields.<t>.template: empty placeholder "{{}}"
 *   <file>: fields.<t>.type: unknown type "<x>" (expected one of string, integer, number, boolean, date, datetime, json)
 *   <file>: fields.<t>.on_null: expected "skip" or "clear"
 *   <file>: fields.<t>.transform: expected an array of transforms
 *   <file>: fields.<t>.transform[<i>]: expected a transform name or an object such as {"replace": "...", "with": "..."}
 *   <file>: fields.<t>.transform[<i>]: unknown transform "<x>" (expected one of trim, lower, upper, default, replace, extract, match, map, split, join, truncate)
 *   <file>: fields.<t>.transform[<i>]: <name> needs an argument (write {"<name>": ...})
 *   <file>: fields.<t>.transform[<i>]: <name> takes no argument (write "<name>")
 *   <file>: fields.<t>.transform[<i>].<key>: unknown key (<name> takes <name>, <option>)
 *   <file>: fields.<t>.transform[<i>].<key>: unknown key (<name> takes only <name>)
 *   <file>: fields.<t>.transform[<i>].<replace|extract|match>: expected a regular expression (string)
 *   <file>: fields.<t>.transform[<i>].<replace|extract|match>: invalid regular expression: <pcre2 message> at offset <n>
 *   <file>: fields.<t>.transform[<i>].with: missing (replace needs "with")
 *   <file>: fields.<t>.transform[<i>].with: expected a string
 *   <file>: fields.<t>.transform[<i>].group: expected a non-negative integer
 *   <file>: fields.<t>.transform[<i>].group: the pattern has only <n> capture group(s)
 *   <file>: fields.<t>.transform[<i>].default: expected a string, number or boolean
 *   <file>: fields.<t>.transform[<i>].default: expected a string, number, boolean or null   (map's)
 *   <file>: fields.<t>.transform[<i>].map: expected an object of "from": "to" values
 *   <file>: fields.<t>.transform[<i>].map.<key>: expected a string, number, boolean or null
 *   <file>: fields.<t>.transform[<i>].split: expected a non-empty separator string
 *   <file>: fields.<t>.transform[<i>].join: expected a separator string
 *   <file>: fields.<t>.transform[<i>].truncate: expected a non-negative integer
 *   bind:
 *   <file>: fields.<t>[.from|.template]: column "<x>" is not returned by the query (columns: a, b, c)
 */

static int perr(retl_mapping *m, struct retl_err *err, const char *target,
		const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int perr(retl_mapping *m, struct retl_err *err, const char *target,
		const char *key, const char *fmt, ...)
{
	retl_buf b = RETL_BUF_INIT;
	va_list ap;
	retl_buf_addf(&b, "%s: fields%s%s%s%s: ", m->file, target ? "." : "",
		      target ? target : "", key ? "." : "", key ? key : "");
	va_start(ap, fmt);
	retl_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	retl_err_set(err, RETL_EXIT_USAGE, "%s", retl_buf_cstr(&b));
	retl_buf_free(&b);
	return -1;
}

static int parse_template(retl_mapping *m, struct field *f, const char *s,
			  struct retl_err *err)
{
	size_t cap = 4;
	f->segs = retl_calloc(cap, sizeof(*f->segs));
	while (*s) {
		const char *open = strstr(s, "{{");
		if (f->nsegs + 2 > cap) {
			f->segs = retl_realloc(f->segs, cap * 2 * sizeof(*f->segs));
			memset(f->segs + cap, 0, cap * sizeof(*f->segs));
			cap *= 2;
		}
		size_t litlen = open ? (size_t)(open - s) : strlen(s);
		if (litlen) {
			f->segs[f->nsegs].lit = retl_strndup(s, litlen);
			f->segs[f->nsegs++].len = litlen;
		}
		if (!open)
			break;
		const char *close = strstr(open + 2, "}}");
		if (!close)
			return perr(m, err, f->target, "template", "unclosed \"{{\"");
		const char *a = open + 2, *b = close;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (a == b)
			return perr(m, err, f->target, "template",
				    "empty placeholder \"{{}}\"");
		f->segs[f->nsegs++].column = retl_strndup(a, (size_t)(b - a));
		s = close + 2;
	}
	return 0;
}

static int parse_value(retl_mapping *m, struct field *f, const json_t *v,
		       struct retl_err *err)
{
	char tmp[64];
	const char *s = tmp;
	size_t len;
	switch (json_typeof(v)) {
	case JSON_NULL:
		f->const_null = 1;
		f->natural = RETL_TYPE_STRING;
		return 0;
	case JSON_STRING:
		s = json_string_value(v);
		len = json_string_length(v);
		f->natural = RETL_TYPE_STRING;
		break;
	case JSON_INTEGER:
		len = (size_t)snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT,
				       json_integer_value(v));
		f->natural = RETL_TYPE_INTEGER;
		break;
	case JSON_REAL:
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(tmp, sizeof(tmp), "%.*g", prec, json_real_value(v));
			if (strtod(tmp, NULL) == json_real_value(v))
				break;
		}
		len = strlen(tmp);
		f->natural = RETL_TYPE_NUMBER;
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		s = json_is_true(v) ? "true" : "false";
		len = strlen(s);
		f->natural = RETL_TYPE_BOOLEAN;
		break;
	default:
		return perr(m, err, f->target, "value",
			    "expected a string, number, boolean or null");
	}
	f->const_text = retl_strndup(s, len);
	f->const_len = len;
	return 0;
}

static int parse_transforms(retl_mapping *m, struct field *f,
			    const json_t *list, struct retl_err *err)
{
	retl_buf where = RETL_BUF_INIT;
	if (!json_is_array(list))
		return perr(m, err, f->target, "transform",
			    "expected an array of transforms");
	f->tf = retl_calloc(json_array_size(list), sizeof(*f->tf));
	for (size_t i = 0; i < json_array_size(list); i++) {
		retl_buf_reset(&where);
		retl_buf_addf(&where, "%s: fields.%s.transform[%zu]", m->file,
			      f->target, i);
		f->ntf++; /* released even when parsing it fails half way */
		if (retl_transform_parse(&f->tf[i], json_array_get(list, i),
					 where.ptr, err) < 0) {
			retl_buf_free(&where);
			return -1;
		}
	}
	retl_buf_free(&where);
	return 0;
}

static int parse_field(retl_mapping *m, struct field *f, const json_t *spec,
		       struct retl_err *err)
{
	static const char *const keys[] = {
		"from", "value", "template", "transform", "type", "on_null", "write",
	};
	const char *k;
	json_t *v;
	f->natural = RETL_TYPE_AUTO;
	if (json_is_string(spec)) {
		if (!json_string_length(spec))
			return perr(m, err, f->target, NULL, "empty column name");
		f->src = SRC_FROM;
		f->shorthand = 1;
		f->column = retl_strdup(json_string_value(spec));
		return 0;
	}
	if (!json_is_object(spec))
		goto no_source;
	json_object_foreach((json_t *)spec, k, v) {
		size_t i;
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strcmp(k, keys[i]))
				break;
		if (i == sizeof(keys) / sizeof(keys[0]))
			return perr(m, err, f->target, k, "unknown key (expected one of "
				    "from, value, template, transform, type, on_null, write)");
	}
	const json_t *from = json_object_get(spec, "from");
	const json_t *value = json_object_get(spec, "value");
	const json_t *tmpl = json_object_get(spec, "template");
	int nsrc = !!from + !!value + !!tmpl;
	if (!nsrc)
		goto no_source;
	if (nsrc > 1)
		return perr(m, err, f->target, NULL,
			    "only one of from, value, template may be given");
	if (from) {
		if (!json_is_string(from))
			return perr(m, err, f->target, "from",
				    "expected a column name (string)");
		if (!json_string_length(from))
			return perr(m, err, f->target, "from", "empty column name");
		f->src = SRC_FROM;
		f->column = retl_strdup(json_string_value(from));
	} else if (value) {
		f->src = SRC_VALUE;
		if (parse_value(m, f, value, err) < 0)
			return -1;
	} else {
		if (!json_is_string(tmpl))
			return perr(m, err, f->target, "template", "expected a string");
		f->src = SRC_TEMPLATE;
		f->natural = RETL_TYPE_STRING;
		if (parse_template(m, f, json_string_value(tmpl), err) < 0)
			return -1;
	}
	if ((v = json_object_get(spec, "type"))) {
		if (!json_is_string(v) ||
		    retl_type_from_name(json_string_value(v), &f->type) < 0)
			return perr(m, err, f->target, "type",
				    "unknown type \"%s\" (" TYPES_EXPECTED ")",
				    json_is_string(v) ? json_string_value(v) : "");
	}
	if ((v = json_object_get(spec, "on_null"))) {
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		if (strcmp(s, "skip") && strcmp(s, "clear"))
			return perr(m, err, f->target, "on_null",
				    "expected \"skip\" or \"clear\"");
		f->skip_null = !strcmp(s, "skip");
	}
	if ((v = json_object_get(spec, "write"))) {
		/* who owns the destination's value: retl ("always"), or the
		 * people who edit the record once it holds one ("if_empty":
		 * written only while the destination's value is empty; the
		 * destination reads it first, see destination.h if_empty) */
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		if (strcmp(s, "always") && strcmp(s, "if_empty"))
			return perr(m, err, f->target, "write",
				    "expected \"always\" (the default) or \"if_empty\"");
		f->if_empty = !strcmp(s, "if_empty");
	}
	if ((v = json_object_get(spec, "transform")) &&
	    parse_transforms(m, f, v, err) < 0)
		return -1;
	return 0;

no_source:
	return perr(m, err, f->target, NULL, "expected a column name or an "
		    "object with one of from, value, template");
}

/* a constant without transforms is rendered once, here */
static int render_constant(retl_mapping *m, struct field *f,
			   struct retl_err *err)
{
	enum retl_type t = f->type ? f->type : f->natural;
	if (f->src != SRC_VALUE || f->ntf || f->const_null)
		return 0;
	if (retl_cast(t, f->const_text, f->const_len, &f->const_json) == 0)
		return 0;
	retl_buf msg = RETL_BUF_INIT;
	retl_cast_add_excerpt(&msg, f->const_text, f->const_len);
	perr(m, err, f->target, "value", "cannot convert \"%s\" to %s", msg.ptr,
	     retl_type_name(t));
	retl_buf_free(&msg);
	return -1;
}

/* compares dotted targets segment by segment, each segment by bytes */
static int target_cmp(const char *a, const char *b)
{
	for (;;) {
		int ea = !*a || *a == '.', eb = !*b || *b == '.';
		if (ea && eb) {
			if (!*a || !*b)
				return !*a && !*b ? 0 : !*a ? -1 : 1;
			a++;
			b++;
			continue;
		}
		if (ea || eb)
			return ea ? -1 : 1;
		if (*a != *b)
			return (unsigned char)*a - (unsigned char)*b;
		a++;
		b++;
	}
}

static int field_cmp(const void *a, const void *b)
{
	return target_cmp(((const struct field *)a)->target,
			  ((const struct field *)b)->target);
}

static void add_op(retl_mapping *m, enum op_kind kind, const char *name,
		   size_t len, size_t field)
{
	struct op *o = &m->ops[m->nops++];
	retl_buf key = RETL_BUF_INIT;
	o->kind = kind;
	o->field = field;
	if (kind != OP_CLOSE) {
		retl_buf_add_json_str(&key, name, len);
		retl_buf_addc(&key, ':');
		o->key_len = key.len;
		o->key = retl_buf_detach(&key);
	}
}

/* number of segments, and where segment i starts */
static size_t segs_of(const char *t, const char **starts, size_t max)
{
	size_t n = 0;
	starts[n++] = t;
	for (const char *p = t; *p; p++)
		if (*p == '.' && n < max)
			starts[n++] = p + 1;
	return n;
}

static size_t seg_len(const char *s)
{
	const char *e = strchr(s, '.');
	return e ? (size_t)(e - s) : strlen(s);
}

/* fields sorted; emits OPEN/FIELD/CLOSE ops so apply just walks them */
static int build_ops(retl_mapping *m, struct retl_err *err)
{
	size_t maxseg = 1;
	for (size_t i = 0; i < m->nfields; i++) {
		size_t n = 1;
		for (const char *p = m->fields[i].target; *p; p++)
			n += *p == '.';
		maxseg = n > maxseg ? n : maxseg;
	}
	const char **cur = retl_calloc(maxseg, sizeof(*cur));
	const char **segs = retl_calloc(maxseg, sizeof(*segs));
	size_t ncur = 0; /* open objects: cur[0..ncur) */
	int rc = 0;
	m->ops = retl_calloc(m->nfields * (2 * maxseg + 1), sizeof(*m->ops));
	m->stack = retl_calloc(maxseg, sizeof(*m->stack));
	m->depth = maxseg;
	for (size_t i = 0; i < m->nfields && !rc; i++) {
		const char *t = m->fields[i].target;
		size_t n = segs_of(t, segs, maxseg), common = 0;
		for (size_t s = 0; s < n; s++) {
			if (!seg_len(segs[s])) {
				rc = perr(m, err, t, NULL,
					  "empty name segment in a dotted target");
				break;
			}
		}
		if (rc)
			break;
		if (i && !target_cmp(m->fields[i - 1].target, t))
			continue; /* impossible: JSON keys are unique */
		if (i) {
			/* the previous target a prefix of this one: "a" then "a.b" */
			const char *prev = m->fields[i - 1].target;
			size_t pl = strlen(prev);
			if (!strncmp(prev, t, pl) && t[pl] == '.') {
				rc = perr(m, err, t, NULL, "conflicts with field \"%s\" "
					  "(a target cannot be both a value and an object)",
					  prev);
				break;
			}
		}
		while (common < ncur && common < n - 1 &&
		       seg_len(cur[common]) == seg_len(segs[common]) &&
		       !memcmp(cur[common], segs[common], seg_len(segs[common])))
			common++;
		for (; ncur > common; ncur--)
			add_op(m, OP_CLOSE, NULL, 0, 0);
		for (; ncur < n - 1; ncur++) {
			cur[ncur] = segs[ncur];
			add_op(m, OP_OPEN, segs[ncur], seg_len(segs[ncur]), 0);
		}
		add_op(m, OP_FIELD, segs[n - 1], seg_len(segs[n - 1]), i);
	}
	for (; ncur > 0 && !rc; ncur--)
		add_op(m, OP_CLOSE, NULL, 0, 0);
	free(cur);
	free(segs);
	return rc;
}

int retl_mapping_parse(retl_mapping **out, const json_t *fields,
		       const char *file, struct retl_err *err)
{
	retl_mapping *m = retl_calloc(1, sizeof(*m));
	const char *k;
	json_t *v;
	size_t i = 0;
	*out = NULL;
	m->file = retl_strdup(file ? file : "");
	retl_val_init(&m->va);
	retl_val_init(&m->vb);
	if (!json_is_object(fields)) {
		perr(m, err, NULL, NULL, "expected an object of target fields");
		goto fail;
	}
	if (!json_object_size(fields)) {
		perr(m, err, NULL, NULL, "no fields mapped");
		goto fail;
	}
	m->fields = retl_calloc(json_object_size(fields), sizeof(*m->fields));
	json_object_foreach((json_t *)fields, k, v) {
		struct field *f = &m->fields[i++];
		m->nfields = i;
		f->target = retl_strdup(k);
		if (!*k) {
			perr(m, err, NULL, NULL, "empty target name");
			goto fail;
		}
		if (parse_field(m, f, v, err) < 0 || render_constant(m, f, err) < 0)
			goto fail;
	}
	qsort(m->fields, m->nfields, sizeof(*m->fields), field_cmp);
	if (build_ops(m, err) < 0)
		goto fail;
	char *canon = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
	m->fingerprint = retl_hash64(canon, strlen(canon), RETL_MAPPING_VERSION);
	free(canon);
	m->bound = 1;
	for (i = 0; i < m->nfields; i++)
		if (m->fields[i].src != SRC_VALUE)
			m->bound = 0; /* has columns to resolve */
	*out = m;
	return 0;
fail:
	retl_mapping_free(m);
	return -1;
}

void retl_mapping_free(retl_mapping *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfields; i++) {
		struct field *f = &m->fields[i];
		free(f->target);
		free(f->column);
		free(f->const_text);
		retl_buf_free(&f->const_json);
		for (size_t s = 0; s < f->nsegs; s++) {
			free(f->segs[s].lit);
			free(f->segs[s].column);
		}
		free(f->segs);
		for (size_t t = 0; t < f->ntf; t++)
			retl_transform_release(&f->tf[t]);
		free(f->tf);
	}
	for (size_t i = 0; i < m->nops; i++)
		free(m->ops[i].key);
	free(m->ops);
	free(m->stack);
	free(m->fields);
	free(m->file);
	retl_val_free(&m->va);
	retl_val_free(&m->vb);
	free(m);
}
/* ---- binding ---------------------------------------------------------- */

static int find_column(retl_mapping *m, const struct field *f,
		       const char *key, const char *name,
		       const struct retl_column *cols, size_t ncols,
		       size_t *idx, struct retl_err *err)
{
	for (size_t i = 0; i < ncols; i++) {
		if (!strcmp(cols[i].name, name)) {
			*idx = i;
			if (i + 1 > m->min_cols)
				m->min_cols = i + 1;
			return 0;
		}
	}
	retl_buf list = RETL_BUF_INIT;
	for (size_t i = 0; i < ncols; i++)
		retl_buf_addf(&list, "%s%s", i ? ", " : "", cols[i].name);
	perr(m, err, f->target, key,
	     "column \"%s\" is not returned by the query (columns: %s)", name,
	     ncols ? list.ptr : "none");
	retl_buf_free(&list);
	return -1;
}

int retl_mapping_bind(retl_mapping *m, const struct retl_column *cols,
		      size_t ncols, struct retl_err *err)
{
	m->bound = 0;
	m->min_cols = 0;
	for (size_t i = 0; i < m->nfields; i++) {
		struct field *f = &m->fields[i];
		if (f->src == SRC_FROM) {
			if (find_column(m, f, f->shorthand ? NULL : "from", f->column,
					cols, ncols, &f->col, err) < 0)
				return -1;
			f->natural = retl_type_from_oid(cols[f->col].oid);
		}
		for (size_t s = 0; s < f->nsegs; s++)
			if (f->segs[s].column &&
			    find_column(m, f, "template", f->segs[s].column, cols,
					ncols, &f->segs[s].col, err) < 0)
				return -1;
	}
	m->bound = 1;
	return 0;
}
