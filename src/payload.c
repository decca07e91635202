/*
 * payload.c - the one reader of mapped payloads, see payload.h.
 *
 * A recursive-descent scanner over the text: every function takes a
 * position and the end, and returns the position after what it read, or
 * NULL when the text is not JSON there.  Nesting is capped (a json column
 * can hold anything) so a hostile value cannot exhaust the stack.
 */
#include "payload.h"

#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 512

static unsigned long reads;

unsigned long retl_payload_reads(void)
{
	return reads;
}

static const char *ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/*
 * Eight bytes at a time over plain string bytes (retl_json_doc's pass over
 * an answer's long values; the scanner's own byte loop is cheaper for the
 * short strings of payloads and spool lines): does the word at p hold a
 * byte that needs a look (a quote, a backslash, a control byte, or one
 * >= 0x80)?  A bit trick (Hacker's Delight's "has a byte
 * less than"): it may say yes for a plain byte after one that needs a
 * look, never no for one that does, so the byte loops after it decide.
 */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static int word_needs_look(const char *p)
{
	uint64_t w, q, b;
	memcpy(&w, p, 8);
	q = w ^ (ONES * '"');
	b = w ^ (ONES * '\\');
	return !!((((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w) | w) &
		  HIGHS);
}

/* p at '"': past the closing quote */
static const char *scan_string(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		if (++p >= e)
			return NULL;
		if (*p == 'u') {
			if (e - p < 5)
				return NULL;
			for (int i = 1; i <= 4; i++)
				if (retl_hexval(p[i]) < 0)
					return NULL;
			p += 4;
		} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
			return NULL;
		}
	}
	return NULL;
}

static const char *digits(const char *p, const char *e)
{
	const char *s = p;
	while (p < e && *p >= '0' && *p <= '9')
		p++;
	return p > s ? p : NULL;
}

static const char *scan_number(const char *p, const char *e)
{
	if (p < e && *p == '-')
		p++;
	if (p < e && *p == '0')
		p++;
	else if (!(p = digits(p, e)))
		return NULL;
	if (p < e && *p == '.' && !(p = digits(p + 1, e)))
		return NULL;
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (!(p = digits(p, e)))
			return NULL;
	}
	return p;
}

static const char *scan_word(const char *p, const char *e, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(e - p) < n || memcmp(p, w, n))
		return NULL;
	return p + n;
}

static const char *scan_value(const char *p, const char *e, int depth,
			      enum retl_pv_kind *kind);

/* p at '{' or '[': past the matching close */
static const char *scan_container(const char *p, const char *e, int depth)
{
	char close = *p == '{' ? '}' : ']';
	enum retl_pv_kind k;
	if (depth > MAX_DEPTH)
		return NULL;
	p = ws(p + 1, e);
	if (p < e && *p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			if (p >= e || *p != '"' || !(p = scan_string(p, e)))
				return NULL;
			p = ws(p, e);
			if (p >= e || *p != ':')
				return NULL;
			p = ws(p + 1, e);
		}
		if (!(p = scan_value(p, e, depth + 1, &k)))
			return NULL;
		p = ws(p, e);
		if (p < e && *p == ',') {
			p = ws(p + 1, e);
			continue;
		}
		if (p < e && *p == close)
			return p + 1;
		return NULL;
	}
}

static const char *scan_value(const char *p, const char *e, int depth,
			      enum retl_pv_kind *kind)
{
	if (p >= e)
		return NULL;
	switch (*p) {
	case '"':
		*kind = RETL_PV_STRING;
		return scan_string(p, e);
	case '{':
		*kind = RETL_PV_OBJECT;
		return scan_container(p, e, depth);
	case '[':
		*kind = RETL_PV_ARRAY;
		return scan_container(p, e, depth);
	case 't':
		*kind = RETL_PV_TRUE;
		return scan_word(p, e, "true");
	case 'f':
		*kind = RETL_PV_FALSE;
		return scan_word(p, e, "false");
	case 'n':
		*kind = RETL_PV_NULL;
		return scan_word(p, e, "null");
	default:
		*kind = RETL_PV_NUMBER;
		return scan_number(p, e);
	}
}

/*
 * Skipping inside a text already checked (retl_json_doc): only the end of
 * each value is looked for, so that walking a nested answer does not check
 * its innermost bytes once per level.  Still bounded by e.
 */
static const char *skip_string(const char *p, const char *e)
{
	for (p++; p < e;) {
		const char *q = memchr(p, '"', (size_t)(e - p)), *b;
		if (!q)
			return NULL;
		/* escaped if an odd run of backslashes stands before it */
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		if (!((q - b) & 1))
			return q + 1;
		p = q + 1;
	}
	return NULL;
}

static const char *skip_value(const char *p, const char *e, enum retl_pv_kind *kind)
{
	int depth = 0;
	if (p >= e)
		return NULL;
	switch (*p) {
	case '"': *kind = RETL_PV_STRING; return skip_string(p, e);
	case 't': *kind = RETL_PV_TRUE; return e - p >= 4 ? p + 4 : NULL;
	case 'f': *kind = RETL_PV_FALSE; return e - p >= 5 ? p + 5 : NULL;
	case 'n': *kind = RETL_PV_NULL; return e - p >= 4 ? p + 4 : NULL;
	case '{': *kind = RETL_PV_OBJECT; break;
	case '[': *kind = RETL_PV_ARRAY; break;
	default:
		*kind = RETL_PV_NUMBER;
		while (p < e && strchr("0123456789+-.eE", *p) && *p)
			p++;
		return p;
	}
	while (p < e) {
		if (*p == '"') {
			if (!(p = skip_string(p, e)))
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
		p++;
	}
	return NULL;
}

static int open_at(struct retl_preader *r, const char *p, const char *e)
{
	p = ws(p, e);
	if (p >= e || (*p != '{' && *p != '['))
		return -1;
	r->close = *p == '{' ? '}' : ']';
	r->p = p + 1;
	r->e = e;
	r->started = 0;
	r->checked = 0;
	return 0;
}

int retl_payload_open(struct retl_preader *r, const char *json, size_t len)
{
	reads++;
	if (!json || open_at(r, json, json + len) < 0 || r->close != '}')
		return -1;
	return 0;
}

int retl_pv_open(struct retl_preader *r, const struct retl_pv *v)
{
	if (v->kind != RETL_PV_OBJECT && v->kind != RETL_PV_ARRAY)
		return -1;
	if (open_at(r, v->raw, v->raw + v->len) < 0)
		return -1;
	r->checked = v->checked;
	return 0;
}

/* past the separator before the next element: 1, 0 at the end, -1 */
static int step(struct retl_preader *r)
{
	if (!r->p)
		return 0;               /* the end stays the end */
	const char *p = ws(r->p, r->e);
	if (p < r->e && *p == r->close) {
		r->p = NULL;
		return 0;
	}
	if (r->started) {
		if (p >= r->e || *p != ',')
			return -1;
		p = ws(p + 1, r->e);
	}
	r->started = 1;
	r->p = p;
	return 1;
}

static int take_value(struct retl_preader *r, struct retl_pv *v)
{
	const char *end = r->checked ? skip_value(r->p, r->e, &v->kind) :
		scan_value(r->p, r->e, 0, &v->kind);
	if (!end)
		return -1;
	v->checked = r->checked;
	v->raw = r->p;
	v->len = (size_t)(end - r->p);
	r->p = end;
	return 1;
}

int retl_payload_next(struct retl_preader *r, struct retl_pfield *f)
{
	int s;
	if (r->close != '}')
		return -1;
	if ((s = step(r)) <= 0)
		return s;
	const char *p = r->p, *end;
	if (*p != '"' || !(end = r->checked ? skip_string(p, r->e) : scan_string(p, r->e)))
		return -1;
	f->name = p + 1;
	f->name_len = (size_t)(end - p - 2);
	p = ws(end, r->e);
	if (p >= r->e || *p != ':')
		return -1;
	r->p = ws(p + 1, r->e);
	return take_value(r, &f->v);
}

int retl_payload_item(struct retl_preader *r, struct retl_pv *v)
{
	int s;
	if (r->close != ']')
		return -1;
	if ((s = step(r)) <= 0)
		return s;
	return take_value(r, v);
}

/* appends the code point cp as UTF-8 */
static void add_utf8(retl_buf *o, unsigned long cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	retl_buf_add(o, u, n);
}

static unsigned long hex4(const char *p)
{
	return (unsigned long)(retl_hexval(p[0]) << 12 | retl_hexval(p[1]) << 8 |
			       retl_hexval(p[2]) << 4 | retl_hexval(p[3]));
}

/* decodes the body of a scanned string, s[0..n) between the quotes */
static int decode_body(const char *s, size_t n, retl_buf *o)
{
	size_t i = 0, run = 0;
	while (i < n) {
		if (s[i] != '\\') {
			i++;
			continue;
		}
		retl_buf_add(o, s + run, i - run);
		char c = s[i + 1];
		i += 2;
		switch (c) {
		case 'b': retl_buf_addc(o, '\b'); break;
		case 'f': retl_buf_addc(o, '\f'); break;
		case 'n': retl_buf_addc(o, '\n'); break;
		case 'r': retl_buf_addc(o, '\r'); break;
		case 't': retl_buf_addc(o, '\t'); break;
		case 'u': {
			unsigned long cp = hex4(s + i);
			i += 4;
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return -1;      /* a low surrogate alone */
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				unsigned long lo;
				if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u')
					return -1;
				lo = hex4(s + i + 2);
				if (lo < 0xDC00 || lo > 0xDFFF)
					return -1;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				i += 6;
			}
			add_utf8(o, cp);
			break;
		}
		default:             /* " \ / */
			retl_buf_addc(o, c);
			break;
		}
		run = i;
	}
	retl_buf_add(o, s + run, n - run);
	return 0;
}

int retl_json_str_decode(const char *s, size_t n, retl_buf *out)
{
	size_t mark = out->len;
	if (n < 2 || s[0] != '"' || scan_string(s, s + n) != s + n)
		return -1;
	if (decode_body(s + 1, n - 2, out) < 0) {
		retl_buf_truncate(out, mark);
		return -1;
	}
	return 0;
}

int retl_pv_string(const struct retl_pv *v, retl_buf *out)
{
	if (v->kind != RETL_PV_STRING)
		return -1;
	return retl_json_str_decode(v->raw, v->len, out);
}

void retl_pfield_name(const struct retl_pfield *f, retl_buf *out)
{
	/* the name was scanned as a valid string: only a bad surrogate fails,
	 * and then the name as written is the best there is */
	size_t mark = out->len;
	if (decode_body(f->name, f->name_len, out) < 0) {
		retl_buf_truncate(out, mark);
		retl_buf_add(out, f->name, f->name_len);
	}
}

int retl_pfield_is(const struct retl_pfield *f, const char *name)
{
	size_t n = strlen(name);
	if (!memchr(f->name, '\\', f->name_len))
		return f->name_len == n && !memcmp(f->name, name, n);
	retl_buf b = RETL_BUF_INIT;
	retl_pfield_name(f, &b);
	int eq = b.len == n && !memcmp(b.ptr, name, n);
	retl_buf_free(&b);
	return eq;
}

/* the length of the valid UTF-8 sequence at p (its first byte >= 0x80),
 * by jansson's rules (utf.c: no overlong form, no surrogate, at most
 * U+10FFFF); 0 if invalid */
static size_t utf8_len(const unsigned char *p, const unsigned char *e)
{
	size_t n;
	unsigned long cp;
	if (*p < 0xC2 || *p > 0xF4)
		return 0;
	n = *p < 0xE0 ? 2 : *p < 0xF0 ? 3 : 4;
	if ((size_t)(e - p) < n)
		return 0;
	cp = *p & (0x7F >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* p just past "\u": the escape's end if jansson takes it (not \u0000,
 * no lone surrogate), else NULL.  The text was scanned: 4 hex digits. */
static const char *u_escape(const char *p, const char *e)
{
	unsigned long cp = hex4(p);
	p += 4;
	if (!cp || (cp >= 0xDC00 && cp <= 0xDFFF))
		return NULL;
	if (cp < 0xD800 || cp > 0xDBFF)
		return p;
	if (e - p < 6 || p[0] != '\\' || p[1] != 'u')
		return NULL;
	cp = hex4(p + 2);
	return cp >= 0xDC00 && cp <= 0xDFFF ? p + 6 : NULL;
}

/* outside strings at a number: its end if an integer of at most 18
 * digits, else NULL */
static const char *small_integer(const char *p, const char *e)
{
	const char *s = p;
	if (*p == '-')
		s = ++p;
	while (p < e && *p >= '0' && *p <= '9')
		p++;
	if (p == s || p - s > 18 || (p < e && (*p == '.' || *p == 'e' || *p == 'E')))
		return NULL;
	return p;
}

/* is a text that scanned as JSON one that jansson reads alike? */
static int jansson_alike(const char *p, const char *e)
{
	int in_str = 0;
	while (p < e) {
		/* inside a string, plain ASCII needs no look */
		while (in_str && e - p >= 8 && !word_needs_look(p))
			p += 8;
		while (in_str && p < e && *p != '"' && *p != '\\' && !(*p & 0x80))
			p++;
		if (p >= e)
			break;
		unsigned char c = (unsigned char)*p;
		if (c >= 0x80) {
			size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)e);
			if (!n)
				return 0;
			p += n;
		} else if (c == '"') {
			in_str = !in_str;
			p++;
		} else if (in_str && c == '\\') {
			if (p[1] != 'u')
				p += 2;
			else if (!(p = u_escape(p + 2, e)))
				return 0;
		} else if (!in_str && (c == '-' || (c >= '0' && c <= '9'))) {
			if (!(p = small_integer(p, e)))
				return 0;
		} else {
			p++;
		}
	}
	return 1;
}

int retl_json_doc(const char *text, size_t len, struct retl_pv *top)
{
	const char *e = text + len, *p, *end;
	if (!text)
		return 0;
	p = ws(text, e);
	if (p >= e || *p != '{' || !(end = scan_value(p, e, 0, &top->kind)) ||
	    ws(end, e) != e || !jansson_alike(p, end))
		return 0;
	top->raw = p;
	top->len = (size_t)(end - p);
	top->checked = 1;
	return 1;
}

int retl_payload_without(const char *json, size_t len,
			 int (*skip)(void *ud, const struct retl_pfield *f), void *ud,
			 retl_buf *out)
{
	struct retl_preader rd;
	struct retl_pfield f;
	int n = 0, rc;
	if (retl_payload_open(&rd, json, len) < 0)
		return -1;
	retl_buf_addc(out, '{');
	while ((rc = retl_payload_next(&rd, &f)) > 0) {
		if (skip(ud, &f))
			continue;
		if (n++)
			retl_buf_addc(out, ',');
		retl_buf_addc(out, '"');
		retl_buf_add(out, f.name, f.name_len);
		retl_buf_adds(out, "\":");
		retl_buf_add(out, f.v.raw, f.v.len);
	}
	retl_buf_addc(out, '}');
	return rc < 0 ? -1 : 0;
}

int retl_payload_get(const char *json, size_t len, const char *name,
		     struct retl_pv *out)
{
	struct retl_preader r;
	struct retl_pfield f;
	int rc;
	if (retl_payload_open(&r, json, len) < 0)
		return -1;
	while ((rc = retl_payload_next(&r, &f)) > 0) {
		if (retl_pfield_is(&f, name)) {
			*out = f.v;
			return 1;
		}
	}
	return rc;
}
