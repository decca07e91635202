/*
 * match.c - match values and the set of them one run meets, see match.h.
 */
#include "match.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "payload.h"

/* one field's value, decoded and trimmed, appended to out */
static void add_part(const struct retl_pv *v, retl_buf *out)
{
	size_t mark = out->len;
	if (!v || v->kind == RETL_PV_NULL)
		return;
	if (v->kind != RETL_PV_STRING || retl_pv_string(v, out) < 0) {
		retl_buf_add(out, v->raw, v->len);
		return;
	}
	size_t s = mark, e = out->len;
	while (s < e && isspace((unsigned char)out->ptr[s]))
		s++;
	while (e > s && isspace((unsigned char)out->ptr[e - 1]))
		e--;
	memmove(out->ptr + mark, out->ptr + s, e - s);
	retl_buf_truncate(out, mark + (e - s));
}

int retl_match_value(const char *payload, size_t len, const char *const *targets,
		     size_t n, retl_buf *out)
{
	struct retl_pv found[8];
	struct retl_preader r;
	struct retl_pfield f;
	int rc, any = 0;
	if (n > 8)
		n = 8;
	memset(found, 0, sizeof(found));
	if (retl_payload_open(&r, payload, len) < 0)
		return -1;
	while ((rc = retl_payload_next(&r, &f)) > 0)
		for (size_t i = 0; i < n; i++)
			if (retl_pfield_is(&f, targets[i]))
				found[i] = f.v;
	if (rc < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (i)
			retl_buf_addc(out, '\x1f');
		size_t start = out->len;
		add_part(found[i].raw ? &found[i] : NULL, out);
		any |= out->len > start;
	}
	return any;
}

uint64_t retl_match_hash(const char *v, size_t n, int exact)
{
	char stack[256] = { 0 };
	char *low = n <= sizeof(stack) ? stack : retl_malloc(n);
	for (size_t i = 0; i < n; i++)
		low[i] = exact ? v[i] : (char)tolower((unsigned char)v[i]);
	uint64_t h = XXH3_64bits_withSeed(low, n, 0x6d61746368ULL);
	if (low != stack)
		free(low);
	return h ? h : 1;
}

/* ---- the set: open addressing on the hash itself ---- */

struct retl_match_set {
	uint64_t *slot;           /* 0 = empty */
	size_t cap, n;
};

retl_match_set *retl_match_set_new(void)
{
	retl_match_set *s = retl_calloc(1, sizeof(*s));
	s->cap = 1024;
	s->slot = retl_calloc(s->cap, sizeof(*s->slot));
	return s;
}

void retl_match_set_free(retl_match_set *s)
{
	if (!s)
		return;
	free(s->slot);
	free(s);
}

static size_t probe(const retl_match_set *s, uint64_t h)
{
	size_t i = (size_t)h & (s->cap - 1);
	while (s->slot[i] && s->slot[i] != h)
		i = (i + 1) & (s->cap - 1);
	return i;
}

int retl_match_set_add(retl_match_set *s, uint64_t h)
{
	if ((s->n + 1) * 10 > s->cap * 7) {
		retl_match_set old = *s;
		s->cap *= 2;
		s->slot = retl_calloc(s->cap, sizeof(*s->slot));
		for (size_t i = 0; i < old.cap; i++)
			if (old.slot[i])
				s->slot[probe(s, old.slot[i])] = old.slot[i];
		free(old.slot);
	}
	size_t i = probe(s, h);
	if (s->slot[i])
		return 0;
	s->slot[i] = h;
	s->n++;
	return 1;
}

int retl_match_set_has(const retl_match_set *s, uint64_t h)
{
	return s && s->slot[probe(s, h)] == h;
}
