/*
 * buf.h - retl_buf, the one growable byte string (git's strbuf idea).
 *
 * Always NUL-terminated after any call, so ->ptr can be passed to C string
 * functions; ->len excludes the terminator.  Allocation failure aborts the
 * process (retl cannot do useful work without memory, and checking every
 * append would drown the code that builds payloads).
 */
#ifndef RETL_BUF_H
#define RETL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef struct retl_buf {
	char *ptr;
	size_t len;
	size_t cap;
} retl_buf;

#define RETL_BUF_INIT { NULL, 0, 0 }

void retl_buf_init(retl_buf *b);
void retl_buf_free(retl_buf *b);
/* len = 0, keeps the allocation for reuse */
void retl_buf_reset(retl_buf *b);
/* room for extra more bytes and the NUL; the check is inline because
 * payloads are built a few bytes at a time (the calls were 17 % of a plan) */
void retl_buf_grow_to(retl_buf *b, size_t need);
static inline void retl_buf_grow(retl_buf *b, size_t extra)
{
	if (b->len + extra + 1 > b->cap)
		retl_buf_grow_to(b, b->len + extra + 1);
}
static inline void retl_buf_add(retl_buf *b, const void *data, size_t len)
{
	retl_buf_grow(b, len);
	if (len)
		memcpy(b->ptr + b->len, data, len);
	b->len += len;
	b->ptr[b->len] = '\0';
}
void retl_buf_adds(retl_buf *b, const char *s);
static inline void retl_buf_addc(retl_buf *b, char c)
{
	retl_buf_grow(b, 1);
	b->ptr[b->len++] = c;
	b->ptr[b->len] = '\0';
}
void retl_buf_addf(retl_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void retl_buf_vaddf(retl_buf *b, const char *fmt, va_list ap);
/* appends s as a JSON string literal, quotes included (RFC 8259 escaping) */
void retl_buf_add_json_str(retl_buf *b, const char *s, size_t len);
/* appends s percent-encoded for a URL path segment or query value (every
 * byte but RFC 3986's unreserved ones) */
void retl_buf_add_url_escaped(retl_buf *b, const char *s);
void retl_buf_truncate(retl_buf *b, size_t len);
/* hands the string to the caller (who frees it) and resets b */
char *retl_buf_detach(retl_buf *b);
/* a never-NULL C string view, "" when empty */
const char *retl_buf_cstr(const retl_buf *b);

/* the value of a hexadecimal digit, or -1 (COPY escapes, JSON \u escapes) */
static inline int retl_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* abort-on-failure allocation helpers used across retl */
void *retl_malloc(size_t n);
void *retl_calloc(size_t n, size_t size);
void *retl_realloc(void *p, size_t n);
char *retl_strdup(const char *s);
char *retl_strndup(const char *s, size_t n);

#endif
