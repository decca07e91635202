/*
 * copy.c - decoding one line of PostgreSQL's COPY text format in place
 * (see copy.h for what it promises).
 */
#include "copy.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

static inline int octal(char c)
{
	return c >= '0' && c <= '7';
}

/*
 * Unescapes p[0..n) in place (COPY text format: \b \f \n \r \t \v \\ \NNN
 * \xHH; any other escaped character stands for itself) and returns the new
 * length.  `bs` is the first backslash, found by the caller.
 */
static size_t unescape(char *p, size_t n, char *bs)
{
	char *end = p + n;
	char *w = bs;
	const char *r = bs;
	while (r < end) {
		char c = *r++;
		if (c != '\\' || r == end) {
			*w++ = c;
			continue;
		}
		c = *r++;
		switch (c) {
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'v': *w++ = '\v'; break;
		case 'x': {
			int h = r < end ? retl_hexval(*r) : -1;
			if (h < 0) {
				*w++ = 'x';
				break;
			}
			int v = h;
			r++;
			if (r < end && (h = retl_hexval(*r)) >= 0) {
				v = v * 16 + h;
				r++;
			}
			*w++ = (char)v;
			break;
		}
		default:
			if (octal(c)) {
				int v = c - '0';
				if (r < end && octal(*r)) {
					v = v * 8 + (*r++ - '0');
					if (r < end && octal(*r))
						v = v * 8 + (*r++ - '0');
				}
				*w++ = (char)(v & 0xff);
			} else {
				*w++ = c;
			}
		}
	}
	return (size_t)(w - p);
}

void retl_copy_line_reserve(struct retl_copy_line *l, size_t n)
{
	if (n <= l->fieldcap)
		return;
	l->vals = retl_realloc(l->vals, n * sizeof(*l->vals));
	l->lens = retl_realloc(l->lens, n * sizeof(*l->lens));
	l->fieldcap = n;
}

size_t retl_copy_decode_line(struct retl_copy_line *l, const char *raw,
			     size_t len, size_t nexpect)
{
	if (len + 1 > l->cap) {
		size_t cap = l->cap ? l->cap : 256;
		while (cap < len + 1)
			cap *= 2;
		free(l->buf);
		l->buf = retl_malloc(cap);
		l->cap = cap;
	}
	char *p = l->buf;
	memcpy(p, raw, len);
	p[len] = '\0';

	char *end = p + len;
	size_t nf = 0;
	for (;;) {
		char *tab = memchr(p, '\t', (size_t)(end - p));
		char *fend = tab ? tab : end;
		size_t flen = (size_t)(fend - p);
		*fend = '\0';
		if (nf >= l->fieldcap)
			retl_copy_line_reserve(l, nf < nexpect ? nexpect : nf * 2 + 8);
		if (flen == 2 && p[0] == '\\' && p[1] == 'N') {
			l->vals[nf] = NULL;
			l->lens[nf] = 0;
		} else {
			char *bs = memchr(p, '\\', flen);
			if (bs) {
				flen = unescape(p, flen, bs);
				p[flen] = '\0';
			}
			l->vals[nf] = p;
			l->lens[nf] = flen;
		}
		nf++;
		if (!tab)
			break;
		p = tab + 1;
	}
	return nf;
}

void retl_copy_line_free(struct retl_copy_line *l)
{
	free(l->buf);
	free(l->vals);
	free(l->lens);
	memset(l, 0, sizeof(*l));
}
