/*
 * mapping.h - the field language: model row -> canonical JSON payload.
 *
 * A sync's "fields" object is parsed once (at config load, so mistakes are
 * config errors with a JSON path) and bound once per run to the query's
 * columns.  Applying it to a row writes the canonical payload straight into
 * a reused buffer: keys sorted (byte order) at every level, compact JSON, no
 * per-row JSON tree.  Identical rows therefore give identical bytes and the
 * payload hash is stable.
 *
 * Values are rendered in retl's neutral formats, converted by destinations:
 *   string "text", integer 42, number 12.5, boolean true,
 *   date "2024-05-01", datetime "2024-05-01T12:30:00Z" (UTC, fraction kept),
 *   json: any JSON value, canonicalised (sorted keys, compact).
 *
 * Rows, columns and types (struct retl_row, enum retl_type, ...) are defined
 * in row.h, below this header; it is included here for the mapping's users.
 */
#ifndef RETL_MAPPING_H
#define RETL_MAPPING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "row.h"

typedef struct retl_mapping retl_mapping;

/*
 * Parses a "fields" object.  `file` prefixes messages, e.g.
 * "mappings/x.json: fields.mrr.type: unknown type \"nmber\" (expected one of
 * string, integer, number, boolean, date, datetime, json)".
 */
int retl_mapping_parse(retl_mapping **out, const json_t *fields,
		       const char *file, struct retl_err *err);
void retl_mapping_free(retl_mapping *m);

/*
 * Resolves column names against the query's columns (borrowed; must outlive
 * the mapping's use).  Unknown column: "mappings/x.json: fields.mrr.from:
 * column \"mrrr\" is not returned by the query (columns: a, b, c)".
 */
int retl_mapping_bind(retl_mapping *m, const struct retl_column *cols,
		      size_t ncols, struct retl_err *err);

/*
 * Writes row's payload to out (reset first).  On a rejected row returns -1
 * and writes "<target>: <reason>" to reason (reset first), e.g.
 * "email: value \"x\" does not match ^[^@\\s]+@[^@\\s]+$".
 */
int retl_mapping_apply(retl_mapping *m, const struct retl_row *row,
		       retl_buf *out, retl_buf *reason);

/* hash of the mapping's definition; salts the source-row hash */
uint64_t retl_mapping_fingerprint(const retl_mapping *m);

/* target fields in payload order, for destinations that need types */
size_t retl_mapping_nfields(const retl_mapping *m);
const char *retl_mapping_field_target(const retl_mapping *m, size_t i);
enum retl_type retl_mapping_field_type(const retl_mapping *m, size_t i);
/* 1 when field i says "write": "if_empty": sent only while the
 * destination's value is empty (the destination reads it first) */
int retl_mapping_field_if_empty(const retl_mapping *m, size_t i);
/* the first such field's target, or NULL */
const char *retl_mapping_if_empty_field(const retl_mapping *m);

#endif
