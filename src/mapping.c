/*
 * mapping.c - the field language: map each row to its canonical JSON
 * payload.  Parsing a sync's "fields" and binding them to the query's
 * columns is mapping_compile.c; the compiled form is in mapping_int.h.
 *
 * A field is `"target": "column"` or an object with exactly one of `from`
 * (column), `value` (JSON constant) or `template` ("{{column}}" text; a NULL
 * column renders as ""), then an optional `transform` list (transform.c),
 * an optional `type` (cast.c) and an optional `on_null`:
 *
 *   on_null "clear" (the default) emits null when the final value is null;
 *   on_null "skip" leaves the field out of the payload.  A nested object
 *   (dotted targets) whose every child was skipped is left out too; the
 *   top-level object is always emitted, "{}" at worst.
 *
 * Types: an explicit `type` casts the final value.  Without one the value
 * keeps its natural type: the column's OID (cast.h), a constant's JSON
 * type, string for templates, array of strings after split, string after
 * join.  Other transforms keep the natural type, so a numeric column
 * through "default" is still rendered as a number.  An array's elements
 * are each cast to the field's type; retl_mapping_field_type() reports that
 * element type.
 *
 * The payload is written straight into the caller's buffer in an order
 * fixed at parse time (keys sorted by bytes at every level), so identical
 * rows give identical bytes.  Per row nothing is allocated once the reused
 * buffers (two retl_vals in the mapping) have grown; fields with neither
 * transforms nor templates are cast straight from the row's text.
 *
 * On a rejected row, retl_mapping_apply returns -1, `reason` holds
 * "<target>: <why>" and `out` holds a partial payload to be ignored.
 */
#include "mapping_int.h"

#include <string.h>

#include "cast.h"

/* the natural type after the transforms: split/join make strings */
static enum retl_type after_transforms(const struct field *f, enum retl_type t)
{
	for (size_t i = 0; i < f->ntf; i++)
		if (f->tf[i].kind == RETL_TF_SPLIT || f->tf[i].kind == RETL_TF_JOIN)
			t = RETL_TYPE_STRING;
	return t;
}

/* ---- applying --------------------------------------------------------- */

static int reject(retl_buf *reason, const struct field *f, int rc,
		  enum retl_type t, const char *s, size_t len)
{
	retl_buf_reset(reason);
	if (rc == RETL_CAST_UTF8) {
		retl_buf_addf(reason, "%s: value is not valid UTF-8: \"", f->target);
		retl_cast_add_excerpt(reason, s, len);
		retl_buf_addc(reason, '"');
		return -1;
	}
	retl_buf_addf(reason, "%s: cannot convert \"", f->target);
	retl_cast_add_excerpt(reason, s, len);
	retl_buf_addf(reason, "\" to %s", retl_type_name(t));
	return -1;
}

static int cast_into(retl_buf *out, retl_buf *reason, const struct field *f,
		     enum retl_type t, const char *s, size_t len)
{
	int rc = retl_cast(t, s, len, out);
	return rc < 0 ? reject(reason, f, rc, t, s, len) : 0;
}

static void row_text(const struct retl_row *row, size_t col, const char **s,
		     size_t *len)
{
	*s = row->vals[col];
	if (*s)
		*len = row->lens ? row->lens[col] : strlen(*s);
}

/* evaluates f's source and transforms; the result is *res */
static int evaluate(retl_mapping *m, const struct field *f,
		    const struct retl_row *row, struct retl_val **res,
		    retl_buf *reason)
{
	struct retl_val *in = &m->va, *out = &m->vb;
	const char *s;
	size_t len = 0;
	retl_val_reset(in);
	switch (f->src) {
	case SRC_FROM:
		row_text(row, f->col, &s, &len);
		if (s)
			retl_val_push(in, s, len);
		else
			retl_val_push_null(in);
		break;
	case SRC_VALUE:
		if (f->const_null)
			retl_val_push_null(in);
		else
			retl_val_push(in, f->const_text, f->const_len);
		break;
	case SRC_TEMPLATE:
		for (size_t i = 0; i < f->nsegs; i++) {
			const struct segment *g = &f->segs[i];
			if (g->lit) {
				retl_buf_add(&in->data, g->lit, g->len);
				continue;
			}
			row_text(row, g->col, &s, &len);
			if (s)
				retl_buf_add(&in->data, s, len);
		}
		retl_val_push_tail(in, 0);
		break;
	}
	for (size_t i = 0; i < f->ntf; i++) {
		if (retl_transform_apply(&f->tf[i], in, out, f->target, reason) < 0)
			return -1;
		struct retl_val *tmp = in;
		in = out;
		out = tmp;
	}
	*res = in;
	return 0;
}

static int emit_field(retl_mapping *m, const struct field *f,
		      const struct op *o, const struct retl_row *row,
		      retl_buf *out, retl_buf *reason, int *need_comma)
{
	enum retl_type t = f->type ? f->type : after_transforms(f, f->natural);
	struct retl_val *v = NULL;
	const char *s = NULL;
	size_t len = 0;
	if (f->src == SRC_FROM && !f->ntf) {
		row_text(row, f->col, &s, &len);
	} else if (f->src == SRC_VALUE && !f->ntf) {
		s = f->const_null ? NULL : f->const_text;
	} else {
		if (evaluate(m, f, row, &v, reason) < 0)
			return -1;
		if (!v->is_array && !v->items[0].null) {
			s = retl_val_str(v, 0);
			len = v->items[0].len;
		}
	}
	if (!s && !(v && v->is_array) && f->skip_null)
		return 0;
	if (*need_comma)
		retl_buf_addc(out, ',');
	*need_comma = 1;
	retl_buf_add(out, o->key, o->key_len);
	if (v && v->is_array) {
		retl_buf_addc(out, '[');
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				retl_buf_addc(out, ',');
			if (v->items[i].null)
				retl_buf_add(out, "null", 4);
			else if (cast_into(out, reason, f, t, retl_val_str(v, i),
					   v->items[i].len) < 0)
				return -1;
		}
		retl_buf_addc(out, ']');
		return 0;
	}
	if (!s) {
		retl_buf_add(out, "null", 4);
		return 0;
	}
	if (f->src == SRC_VALUE && !f->ntf) {
		retl_buf_add(out, f->const_json.ptr, f->const_json.len);
		return 0;
	}
	return cast_into(out, reason, f, t, s, len);
}

int retl_mapping_apply(retl_mapping *m, const struct retl_row *row,
		       retl_buf *out, retl_buf *reason)
{
	size_t depth = 0;
	int need_comma = 0;
	retl_buf_reset(out);
	retl_buf_reset(reason);
	if (!m->bound) {
		retl_buf_adds(reason, "mapping is not bound to the query's columns");
		return -1;
	}
	if (row->ncols < m->min_cols) {
		retl_buf_addf(reason, "row has %zu columns, the mapping needs %zu",
			      row->ncols, m->min_cols);
		return -1;
	}
	retl_buf_addc(out, '{');
	for (size_t i = 0; i < m->nops; i++) {
		const struct op *o = &m->ops[i];
		switch (o->kind) {
		case OP_OPEN:
			m->stack[depth].start = out->len;
			m->stack[depth++].need_comma = need_comma;
			if (need_comma)
				retl_buf_addc(out, ',');
			retl_buf_add(out, o->key, o->key_len);
			retl_buf_addc(out, '{');
			need_comma = 0;
			break;
		case OP_CLOSE:
			depth--;
			if (!need_comma) { /* every child skipped: leave it out */
				retl_buf_truncate(out, m->stack[depth].start);
				need_comma = m->stack[depth].need_comma;
			} else {
				retl_buf_addc(out, '}');
			}
			break;
		case OP_FIELD:
			if (emit_field(m, &m->fields[o->field], o, row, out, reason,
				       &need_comma) < 0)
				return -1;
			break;
		}
	}
	retl_buf_addc(out, '}');
	return 0;
}

/* ---- queries ---------------------------------------------------------- */

uint64_t retl_mapping_fingerprint(const retl_mapping *m)
{
	return m->fingerprint;
}

size_t retl_mapping_nfields(const retl_mapping *m)
{
	return m->nfields;
}

const char *retl_mapping_field_target(const retl_mapping *m, size_t i)
{
	return i < m->nfields ? m->fields[i].target : NULL;
}

enum retl_type retl_mapping_field_type(const retl_mapping *m, size_t i)
{
	if (i >= m->nfields)
		return RETL_TYPE_AUTO;
	const struct field *f = &m->fields[i];
	if (f->type)
		return f->type;
	return f->natural ? after_transforms(f, f->natural) : RETL_TYPE_AUTO;
}

int retl_mapping_field_if_empty(const retl_mapping *m, size_t i)
{
	return i < m->nfields && m->fields[i].if_empty;
}

const char *retl_mapping_if_empty_field(const retl_mapping *m)
{
	for (size_t i = 0; m && i < m->nfields; i++)
		if (m->fields[i].if_empty)
			return m->fields[i].target;
	return NULL;
}
