/*
 * buf.c - retl_buf, see buf.h.
 */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die_oom(void)
{
	fputs("retl: out of memory\n", stderr);
	abort();
}

void *retl_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die_oom();
	return p;
}

void *retl_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die_oom();
	return p;
}

void *retl_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die_oom();
	return q;
}

char *retl_strdup(const char *s)
{
	return retl_strndup(s, strlen(s));
}

char *retl_strndup(const char *s, size_t n)
{
	char *p = retl_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void retl_buf_init(retl_buf *b)
{
	b->ptr = NULL;
	b->len = 0;
	b->cap = 0;
}

void retl_buf_free(retl_buf *b)
{
	free(b->ptr);
	retl_buf_init(b);
}

void retl_buf_reset(retl_buf *b)
{
	b->len = 0;
	if (b->ptr)
		b->ptr[0] = '\0';
}

void retl_buf_grow_to(retl_buf *b, size_t need)
{
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap * 3 / 2 + 16;
	b->ptr = retl_realloc(b->ptr, cap);
	b->cap = cap;
}

void retl_buf_adds(retl_buf *b, const char *s)
{
	retl_buf_add(b, s, strlen(s));
}

void retl_buf_vaddf(retl_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	retl_buf_grow(b, 64);
	int n = vsnprintf(b->ptr + b->len, b->cap - b->len, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		retl_buf_grow(b, (size_t)n);
		vsnprintf(b->ptr + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

void retl_buf_addf(retl_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	retl_buf_vaddf(b, fmt, ap);
	va_end(ap);
}

void retl_buf_add_json_str(retl_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	retl_buf_grow(b, len + 2);
	retl_buf_addc(b, '"');
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		retl_buf_add(b, s + start, i - start);
		start = i + 1;
		switch (c) {
		case '"': retl_buf_add(b, "\\\"", 2); break;
		case '\\': retl_buf_add(b, "\\\\", 2); break;
		case '\n': retl_buf_add(b, "\\n", 2); break;
		case '\r': retl_buf_add(b, "\\r", 2); break;
		case '\t': retl_buf_add(b, "\\t", 2); break;
		case '\b': retl_buf_add(b, "\\b", 2); break;
		case '\f': retl_buf_add(b, "\\f", 2); break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			retl_buf_add(b, u, 6);
		}
		}
	}
	retl_buf_add(b, s + start, len - start);
	retl_buf_addc(b, '"');
}

void retl_buf_add_url_escaped(retl_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
		    ch == '~') {
			retl_buf_addc(b, (char)ch);
		} else {
			char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };
			retl_buf_add(b, e, 3);
		}
	}
}

void retl_buf_truncate(retl_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->ptr[len] = '\0';
	}
}

char *retl_buf_detach(retl_buf *b)
{
	char *p = b->ptr ? b->ptr : retl_strdup("");
	retl_buf_init(b);
	return p;
}

const char *retl_buf_cstr(const retl_buf *b)
{
	return b->ptr ? b->ptr : "";
}
