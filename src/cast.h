/*
 * cast.h - rendering one PostgreSQL text value as a JSON value of a retl type.
 *
 * The mapping calls these per value, per row, so they append straight into
 * the payload buffer and allocate nothing (except for json, which goes
 * through jansson).  Input is PostgreSQL's text output with TimeZone=UTC and
 * DateStyle=ISO; see cast.c for what each type accepts.
 */
#ifndef RETL_CAST_H
#define RETL_CAST_H

#include <stddef.h>

#include "buf.h"
#include "row.h"

#define RETL_CAST_FAILED (-1)  /* the text is not a value of the type */
#define RETL_CAST_UTF8 (-2)    /* a string that is not valid UTF-8 */

/*
 * Appends s (len bytes, need not be NUL-terminated) rendered as type t to
 * out.  On failure returns RETL_CAST_* and leaves out as it was.
 * RETL_TYPE_AUTO is treated as string.
 */
int retl_cast(enum retl_type t, const char *s, size_t len, retl_buf *out);

int retl_utf8_valid(const char *s, size_t len);
/* number of code points, counting every byte that does not continue one */
size_t retl_utf8_count(const char *s, size_t len);
/* the byte length of the first n code points (never ends inside one) */
size_t retl_utf8_prefix_chars(const char *s, size_t len, size_t n);
/* the longest prefix of at most max bytes that does not end inside a code point */
size_t retl_utf8_prefix_bytes(const char *s, size_t len, size_t max);

/*
 * Appends a value for a human-readable message: at most 100 bytes (cut on a
 * code point boundary, "..." appended when cut), bytes that are not UTF-8
 * shown as '?', so reasons stored in the state are always valid text.
 */
void retl_cast_add_excerpt(retl_buf *b, const char *s, size_t len);

#endif
