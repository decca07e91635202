/*
 * copy.h - decoding one line of PostgreSQL's COPY ... TO STDOUT text format.
 *
 * The source streams a model with COPY and hands each line here.  The line
 * is copied once into a reused buffer and decoded in place there (decoded
 * text is never longer than the escaped text): tabs between fields become
 * NULs, so each value is a NUL-terminated string with a length, and no line
 * costs an allocation once the buffers are warm.
 *
 * What the decoder promises, field by field:
 *   - a field that is exactly \N is SQL NULL (vals[i] == NULL, lens[i] == 0);
 *     an empty field is the empty string (vals[i] == "", lens[i] == 0);
 *   - \b \f \n \r \t \v \\ stand for BS FF LF CR TAB VT and a backslash;
 *   - \NNN (one to three octal digits) is that byte (modulo 256), \xH or
 *     \xHH (one or two hex digits) is that byte; a decoded NUL byte stays in
 *     the value and counts in its length;
 *   - a backslash before any other character stands for that character
 *     ("\x" without a hex digit gives "x"), and a backslash that ends the
 *     line stands for itself;
 *   - a line holding n tab bytes has n + 1 fields (PostgreSQL writes a tab
 *     inside a value as \t); the caller compares that count with the
 *     columns it expects, the decoder does not.
 */
#ifndef RETL_COPY_H
#define RETL_COPY_H

#include <stddef.h>

/* the decoded fields of the last line; zero-initialise, free with _free */
struct retl_copy_line {
	char *buf;                /* decoded copy of the line */
	size_t cap;
	const char **vals;        /* field i's text (NUL-terminated), NULL = \N */
	size_t *lens;             /* field i's length in bytes */
	size_t fieldcap;          /* room in vals/lens */
};

/* makes room for n fields in vals/lens (so they are non-NULL after it) */
void retl_copy_line_reserve(struct retl_copy_line *l, size_t n);

/*
 * Splits and decodes raw[0..len) (one line without its newline; need not be
 * NUL-terminated) into l->vals/l->lens, valid until the next call.  Returns
 * the number of fields found (at least 1).  nexpect, the number of columns
 * the caller expects, sizes vals/lens when they first grow.
 */
size_t retl_copy_decode_line(struct retl_copy_line *l, const char *raw,
			     size_t len, size_t nexpect);

void retl_copy_line_free(struct retl_copy_line *l);

#endif
