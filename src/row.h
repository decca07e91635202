/*
 * row.h - the vocabulary every layer shares: a model's columns, one row of
 * it, and retl's value types (with the PostgreSQL type OIDs they come from).
 *
 * This sits at the bottom, below the source (which produces rows), the
 * casts (which render values as types) and the mapping (which turns rows
 * into payloads), so none of those depends on another just for these
 * definitions.  It includes nothing of retl's.
 */
#ifndef RETL_ROW_H
#define RETL_ROW_H

#include <stddef.h>

/* PostgreSQL type OIDs retl gives meaning to */
#define RETL_OID_BOOL 16
#define RETL_OID_INT8 20
#define RETL_OID_INT2 21
#define RETL_OID_INT4 23
#define RETL_OID_OID 26
#define RETL_OID_JSON 114
#define RETL_OID_FLOAT4 700
#define RETL_OID_FLOAT8 701
#define RETL_OID_DATE 1082
#define RETL_OID_TIMESTAMP 1114
#define RETL_OID_TIMESTAMPTZ 1184
#define RETL_OID_NUMERIC 1700
#define RETL_OID_JSONB 3802

enum retl_type {
	RETL_TYPE_AUTO = 0,       /* from the column's OID (retl_type_from_oid) */
	RETL_TYPE_STRING,
	RETL_TYPE_INTEGER,
	RETL_TYPE_NUMBER,
	RETL_TYPE_BOOLEAN,
	RETL_TYPE_DATE,
	RETL_TYPE_DATETIME,
	RETL_TYPE_JSON,
};

struct retl_column {
	char *name;
	unsigned oid;
};

/*
 * One row of the model, in PostgreSQL's text output format (session
 * TimeZone=UTC, DateStyle=ISO).  vals[i] == NULL is SQL NULL.  Borrowed.
 */
struct retl_row {
	size_t ncols;
	const char *const *vals;
	const size_t *lens;
};

/* "string", "integer", ...; "auto" for RETL_TYPE_AUTO, "unknown" past the end */
const char *retl_type_name(enum retl_type t);

/* the type named `name` ("auto" is not a name a user may give); 0 or -1 */
int retl_type_from_name(const char *name, enum retl_type *t);

/* the natural type of a column of this OID (string for unknown OIDs) */
enum retl_type retl_type_from_oid(unsigned oid);

#endif
