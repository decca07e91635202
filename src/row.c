/*
 * row.c - retl's value types: their names and the PostgreSQL OIDs they come
 * from (see row.h).
 */
#include "row.h"

#include <string.h>

static const char *const type_names[] = {
	"auto", "string", "integer", "number", "boolean", "date", "datetime", "json",
};

const char *retl_type_name(enum retl_type t)
{
	return (unsigned)t < sizeof(type_names) / sizeof(type_names[0])
		? type_names[t] : "unknown";
}

int retl_type_from_name(const char *name, enum retl_type *t)
{
	for (size_t i = 1; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (!strcmp(name, type_names[i])) {
			*t = (enum retl_type)i;
			return 0;
		}
	}
	return -1;
}

enum retl_type retl_type_from_oid(unsigned oid)
{
	switch (oid) {
	case RETL_OID_INT2:
	case RETL_OID_INT4:
	case RETL_OID_INT8:
	case RETL_OID_OID:
		return RETL_TYPE_INTEGER;
	case RETL_OID_FLOAT4:
	case RETL_OID_FLOAT8:
	case RETL_OID_NUMERIC:
		return RETL_TYPE_NUMBER;
	case RETL_OID_BOOL:
		return RETL_TYPE_BOOLEAN;
	case RETL_OID_JSON:
	case RETL_OID_JSONB:
		return RETL_TYPE_JSON;
	case RETL_OID_DATE:
		return RETL_TYPE_DATE;
	case RETL_OID_TIMESTAMP:
	case RETL_OID_TIMESTAMPTZ:
		return RETL_TYPE_DATETIME;
	default:
		return RETL_TYPE_STRING;
	}
}
