/*
 * mapping_int.h - the compiled mapping, shared by mapping_compile.c (which
 * builds it from a sync's "fields" and binds it to the query's columns) and
 * mapping.c (which applies it to rows).  Nothing else includes it.
 */
#ifndef RETL_MAPPING_INT_H
#define RETL_MAPPING_INT_H

#include "mapping.h"
#include "transform.h"

enum src_kind { SRC_FROM, SRC_VALUE, SRC_TEMPLATE };

struct segment {
	char *lit;      /* literal text, or NULL for a column */
	size_t len;
	char *column;
	size_t col;
};

struct field {
	char *target;
	enum src_kind src;
	int shorthand;          /* "target": "column" */
	char *column;           /* SRC_FROM */
	size_t col;
	int const_null;         /* SRC_VALUE */
	char *const_text;
	size_t const_len;
	retl_buf const_json;    /* rendered once when there are no transforms */
	struct segment *segs;   /* SRC_TEMPLATE */
	size_t nsegs;
	struct retl_transform *tf;
	size_t ntf;
	enum retl_type type;    /* explicit, or AUTO */
	enum retl_type natural; /* before any cast; AUTO until bound for SRC_FROM */
	int skip_null;
	int if_empty;           /* "write": "if_empty" */
};

enum op_kind { OP_OPEN, OP_CLOSE, OP_FIELD };

struct op {
	enum op_kind kind;
	char *key;              /* "\"name\":", ready to append */
	size_t key_len;
	size_t field;
};

struct frame {
	size_t start;
	int need_comma;
};

struct retl_mapping {
	char *file;
	struct field *fields;   /* in payload order */
	size_t nfields;
	struct op *ops;
	size_t nops;
	struct frame *stack;
	size_t depth;           /* max nesting */
	size_t min_cols;        /* the row must have at least this many columns */
	int bound;
	uint64_t fingerprint;
	struct retl_val va, vb;
};

#endif
