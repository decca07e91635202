/*
 * spool.c - the operations of a run in a file between its two phases; the
 * format is in spool.h.
 *
 * Written a line at a time through one XXH3 streaming state, so the tail's
 * checksum costs no second pass.  Read back with the payload reader
 * (payload.h): no JSON tree per line, and the payload's text is handed on
 * byte for byte as it was written, which its hash depends on.
 */
#include "spool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "buf.h"
#include "payload.h"

const char *const retl_spool_change_name[] = { "added", "changed", "retried", "removed" };

struct retl_spool {
	FILE *f;
	XXH3_state_t *xx;
	retl_buf line;
	long ops;
	int binary;             /* a run's own spool (below) */
};

/*
 * A run's own spool, which nobody else reads, is binary: formatting and
 * parsing JSON lines cost a quarter of a first run.  After the magic, each
 * operation is a header of fixed size and its strings, each followed by a
 * NUL (so the reader hands them on in place); a last header of kind
 * BIN_END counts the operations, with XXH3-64 of every byte before it.  It
 * is still read back as untrusted input: lengths are bounded, strings
 * checked, the promises of an operation kept (broken_promise).
 */
#define BIN_MAGIC "RETLSPB1"
#define BIN_END 0xff
#define BIN_MAX ((uint32_t)1 << 30)     /* a string's bound */

enum { BIN_PAYLOAD = 1, BIN_DEST = 2, BIN_MATCH = 4, BIN_PENDING = 8,
       BIN_ORPHAN = 16 };

struct bin_head {
	uint8_t kind, change, flags, pad;
	uint32_t keylen, kjlen, plen, dlen, mlen;
	uint64_t src;           /* BIN_END: the count */
	uint64_t sum;           /* BIN_END: the checksum, else 0 */
};

/* ---- writing ---- */

static int out(retl_spool *s, const retl_buf *b)
{
	XXH3_64bits_update(s->xx, b->ptr, b->len);
	return fwrite(b->ptr, 1, b->len, s->f) == b->len ? 0 : -1;
}

retl_spool *retl_spool_create(FILE *f, const char *sync, uint64_t state)
{
	retl_spool *s = retl_calloc(1, sizeof(*s));
	s->f = f;
	s->xx = XXH3_createState();
	if (!s->xx)
		abort();
	XXH3_64bits_reset(s->xx);
	retl_buf_adds(&s->line, "{\"retl_plan\":1,\"sync\":");
	retl_buf_add_json_str(&s->line, sync, strlen(sync));
	retl_buf_addf(&s->line, ",\"state\":\"%016llx\"}\n", (unsigned long long)state);
	out(s, &s->line);       /* a write error shows at put or finish */
	return s;
}

retl_spool *retl_spool_create_binary(FILE *f)
{
	retl_spool *s = retl_calloc(1, sizeof(*s));
	s->f = f;
	s->binary = 1;
	s->xx = XXH3_createState();
	if (!s->xx)
		abort();
	XXH3_64bits_reset(s->xx);
	retl_buf_add(&s->line, BIN_MAGIC, 8);
	out(s, &s->line);
	return s;
}

static void add_str(retl_buf *l, const char *p, size_t n)
{
	retl_buf_add(l, p, n);
	retl_buf_addc(l, '\0');
}

static int put_binary(retl_spool *s, const struct retl_spool_op *op)
{
	retl_buf *l = &s->line;
	size_t dlen = op->dest_id ? strlen(op->dest_id) : 0;
	struct bin_head h = {
		.kind = (uint8_t)op->kind, .change = (uint8_t)op->change,
		.flags = (uint8_t)((op->payload ? BIN_PAYLOAD : 0) |
				   (op->dest_id ? BIN_DEST : 0) |
				   (op->match ? BIN_MATCH : 0) |
				   (op->pending ? BIN_PENDING : 0) |
				   (op->orphan ? BIN_ORPHAN : 0)),
		.keylen = (uint32_t)op->keylen, .kjlen = (uint32_t)op->kjlen,
		.plen = op->payload ? (uint32_t)op->plen : 0,
		.dlen = (uint32_t)dlen, .mlen = op->match ? (uint32_t)op->mlen : 0,
		.src = op->src,
	};
	if (op->keylen >= BIN_MAX || op->kjlen >= BIN_MAX || h.plen >= BIN_MAX ||
	    dlen >= BIN_MAX || h.mlen >= BIN_MAX) {
		errno = EFBIG;
		return -1;
	}
	retl_buf_reset(l);
	retl_buf_add(l, &h, sizeof(h));
	add_str(l, op->key, op->keylen);
	add_str(l, op->key_json, op->kjlen);
	add_str(l, op->payload ? op->payload : "", h.plen);
	add_str(l, op->dest_id ? op->dest_id : "", dlen);
	add_str(l, op->match ? op->match : "", h.mlen);
	s->ops++;
	return out(s, l);
}

int retl_spool_put(retl_spool *s, const struct retl_spool_op *op)
{
	if (s->binary)
		return put_binary(s, op);
	retl_buf *l = &s->line;
	retl_buf_reset(l);
	retl_buf_addf(l, "{\"op\":\"%s\",\"change\":\"%s\",\"key\":",
		      retl_op_name(op->kind), retl_spool_change_name[op->change]);
	retl_buf_add(l, op->key_json, op->kjlen);
	retl_buf_adds(l, ",\"payload\":");
	if (op->payload)
		retl_buf_add(l, op->payload, op->plen);
	else
		retl_buf_adds(l, "null");
	if (op->dest_id) {
		retl_buf_adds(l, ",\"dest_id\":");
		retl_buf_add_json_str(l, op->dest_id, strlen(op->dest_id));
	}
	if (op->match) {
		retl_buf_adds(l, ",\"match\":");
		retl_buf_add_json_str(l, op->match, op->mlen);
	}
	if (op->pending)
		retl_buf_adds(l, ",\"pending\":true");
	if (op->orphan)
		retl_buf_adds(l, ",\"orphan\":true");
	if (op->src)
		retl_buf_addf(l, ",\"src\":\"%016llx\"", (unsigned long long)op->src);
	retl_buf_adds(l, "}\n");
	s->ops++;
	return out(s, l);
}

int retl_spool_finish(retl_spool *s)
{
	unsigned long long sum = XXH3_64bits_digest(s->xx);
	if (s->binary) {
		struct bin_head h = { .kind = BIN_END, .src = (uint64_t)s->ops, .sum = sum };
		if (fwrite(&h, sizeof(h), 1, s->f) != 1)
			return -1;
		return fflush(s->f) == 0 && !ferror(s->f) ? 0 : -1;
	}
	retl_buf_reset(&s->line);
	retl_buf_addf(&s->line, "{\"end\":%ld,\"xxh3\":\"%016llx\"}\n", s->ops, sum);
	if (fwrite(s->line.ptr, 1, s->line.len, s->f) != s->line.len)
		return -1;
	return fflush(s->f) == 0 && !ferror(s->f) ? 0 : -1;
}

long retl_spool_count(const retl_spool *s)
{
	return s->ops;
}

void retl_spool_free(retl_spool *s)
{
	if (!s)
		return;
	XXH3_freeState(s->xx);
	retl_buf_free(&s->line);
	free(s);
}

/* ---- reading ---- */

struct reader {
	const char *path;
	long lineno;
	char *line;
	size_t cap;
	retl_buf key, dest_id, match, tmp;
};

static void reader_free(struct reader *rd)
{
	free(rd->line);
	retl_buf_free(&rd->key);
	retl_buf_free(&rd->dest_id);
	retl_buf_free(&rd->match);
	retl_buf_free(&rd->tmp);
}

/* the next line without its newline: its length, or -1 at the end */
static ssize_t next_line(FILE *f, struct reader *rd)
{
	ssize_t n = getline(&rd->line, &rd->cap, f);
	if (n < 0)
		return -1;
	rd->lineno++;
	if (n && rd->line[n - 1] == '\n')
		rd->line[--n] = '\0';
	return n;
}

static int bad(struct reader *rd, struct retl_err *err, const char *what)
{
	return retl_err_set(err, RETL_EXIT_USAGE, "%s:%ld: %s", rd->path, rd->lineno, what);
}

/* the index i < n whose name(i) the string v is; -1 if none */
static int name_index(const struct retl_pv *v, retl_buf *tmp,
		      const char *(*name)(int), int n)
{
	retl_buf_reset(tmp);
	if (v->kind != RETL_PV_STRING || retl_pv_string(v, tmp) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (!strcmp(retl_buf_cstr(tmp), name(i)))
			return i;
	return -1;
}

static const char *op_name(int i)
{
	return retl_op_name((enum retl_op_kind)i);
}

static const char *change_name(int i)
{
	return retl_spool_change_name[i];
}

/* a string member into out (NUL-terminated); -1 if not a string */
static int take_string(const struct retl_pv *v, retl_buf *out)
{
	retl_buf_reset(out);
	if (v->kind != RETL_PV_STRING || retl_pv_string(v, out) < 0)
		return -1;
	retl_buf_cstr(out);
	return 0;
}

static int hex64(const struct retl_pv *v, retl_buf *tmp, uint64_t *out)
{
	if (take_string(v, tmp) < 0 || tmp->len != 16)
		return -1;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(tmp->ptr, &end, 16);
	if (errno || *end)
		return -1;
	*out = x;
	return 0;
}

/* the key: a string (its text), an array (a composite key, its JSON is
 * its text) or null (an orphan's) */
static int take_key(const struct retl_pv *v, struct reader *rd,
		    struct retl_spool_op *op)
{
	op->key_json = v->raw;
	op->kjlen = v->len;
	retl_buf_reset(&rd->key);
	if (v->kind == RETL_PV_STRING) {
		if (retl_pv_string(v, &rd->key) < 0)
			return -1;
	} else if (v->kind == RETL_PV_ARRAY) {
		retl_buf_add(&rd->key, v->raw, v->len);
	} else if (v->kind != RETL_PV_NULL) {
		return -1;
	}
	op->key = retl_buf_cstr(&rd->key);
	if (memchr(op->key, 0, rd->key.len))
		return -1;              /* keys are C strings in the state */
	op->keylen = rd->key.len;
	return 0;
}

/* one member of an operation; 0, or -1 (why says what is wrong) */
static int take_member(const struct retl_pfield *f, struct reader *rd,
		       struct retl_spool_op *op, unsigned *seen, const char **why)
{
	const struct retl_pv *v = &f->v;
	int i;
	if (retl_pfield_is(f, "op")) {
		if ((i = name_index(v, &rd->tmp, op_name, 4)) < 0)
			return *why = "\"op\" is not upsert, insert, update or remove", -1;
		op->kind = (enum retl_op_kind)i;
		*seen |= 1;
	} else if (retl_pfield_is(f, "change")) {
		if ((i = name_index(v, &rd->tmp, change_name, 4)) < 0)
			return *why = "\"change\" is not added, changed, retried or removed", -1;
		op->change = (enum retl_spool_change)i;
		*seen |= 2;
	} else if (retl_pfield_is(f, "key")) {
		if (take_key(v, rd, op) < 0)
			return *why = "\"key\" is not a string, an array or null", -1;
		*seen |= 4;
	} else if (retl_pfield_is(f, "payload")) {
		if (v->kind == RETL_PV_OBJECT) {
			op->payload = v->raw;
			op->plen = v->len;
		} else if (v->kind != RETL_PV_NULL) {
			return *why = "\"payload\" is not an object or null", -1;
		}
		*seen |= 8;
	} else if (retl_pfield_is(f, "dest_id")) {
		if (take_string(v, &rd->dest_id) < 0 || memchr(rd->dest_id.ptr, 0, rd->dest_id.len))
			return *why = "\"dest_id\" is not a string", -1;
		op->dest_id = rd->dest_id.ptr;
	} else if (retl_pfield_is(f, "match")) {
		if (take_string(v, &rd->match) < 0 || memchr(rd->match.ptr, 0, rd->match.len))
			return *why = "\"match\" is not a string", -1;
		op->match = rd->match.ptr;
		op->mlen = rd->match.len;
	} else if (retl_pfield_is(f, "pending") || retl_pfield_is(f, "orphan")) {
		if (v->kind != RETL_PV_TRUE && v->kind != RETL_PV_FALSE)
			return *why = "\"pending\" and \"orphan\" are true or false", -1;
		*(retl_pfield_is(f, "pending") ? &op->pending : &op->orphan) =
			v->kind == RETL_PV_TRUE;
	} else if (retl_pfield_is(f, "src")) {
		if (hex64(v, &rd->tmp, &op->src) < 0)
			return *why = "\"src\" is not 16 hex digits", -1;
	} else {
		return *why = "unknown member in an operation", -1;
	}
	return 0;
}

/* what an operation read back breaks of the spool's promises, or NULL */
static const char *broken_promise(const struct retl_spool_op *op)
{
	if ((op->kind == RETL_OP_REMOVE) != (op->payload == NULL))
		return "a remove has no payload and every other operation has one";
	if ((op->change == RETL_CH_REMOVED) != (op->kind == RETL_OP_REMOVE))
		return "\"change\": \"removed\" goes with \"op\": \"remove\" only";
	if (op->orphan ? op->kind != RETL_OP_REMOVE || !op->match || op->keylen
		       : !op->keylen)
		return op->orphan ? "an orphan is a remove with a match and a null key"
				  : "\"key\" is empty";
	return NULL;
}

/* an operation line into op; -1 with err */
static int parse_op(struct reader *rd, size_t len, struct retl_spool_op *op,
		    struct retl_err *err)
{
	struct retl_preader p;
	struct retl_pfield f;
	const char *why = NULL;
	unsigned seen = 0;
	int n;
	memset(op, 0, sizeof(*op));
	if (retl_payload_open(&p, rd->line, len) < 0)
		return bad(rd, err, "not a JSON object");
	while ((n = retl_payload_next(&p, &f)) == 1)
		if (take_member(&f, rd, op, &seen, &why) < 0)
			return bad(rd, err, why);
	if (n < 0)
		return bad(rd, err, "not valid JSON");
	if (seen != 15)
		return bad(rd, err, "an operation needs op, change, key and payload");
	why = broken_promise(op);
	return why ? bad(rd, err, why) : 0;
}

/* is this line the tail?  (its members are read by check_tail) */
static int is_tail(const char *line)
{
	return !strncmp(line, "{\"end\":", 7);
}

static int check_head(struct reader *rd, ssize_t len, struct retl_spool_head *h,
		      struct retl_err *err)
{
	struct retl_preader p;
	struct retl_pfield f;
	unsigned seen = 0;
	int n;
	if (len < 0)
		return bad(rd, err, "empty file: not a plan");
	if (retl_payload_open(&p, rd->line, (size_t)len) < 0)
		return bad(rd, err, "not a plan (the first line is not its head)");
	while ((n = retl_payload_next(&p, &f)) == 1) {
		if (retl_pfield_is(&f, "retl_plan") && f.v.kind == RETL_PV_NUMBER &&
		    f.v.len == 1 && f.v.raw[0] == '1') {
			seen |= 1;
		} else if (retl_pfield_is(&f, "sync") && take_string(&f.v, &rd->tmp) == 0 &&
			   rd->tmp.len && !memchr(rd->tmp.ptr, 0, rd->tmp.len)) {
			free(h->sync);
			h->sync = retl_strdup(rd->tmp.ptr);
			seen |= 2;
		} else if (retl_pfield_is(&f, "state") && hex64(&f.v, &rd->tmp, &h->state) == 0) {
			seen |= 4;
		} else {
			return bad(rd, err, "not a plan head of this version of retl "
				   "(expected {\"retl_plan\":1,\"sync\":...,\"state\":...})");
		}
	}
	if (n < 0 || seen != 7)
		return bad(rd, err, "not a plan head of this version of retl "
			   "(expected {\"retl_plan\":1,\"sync\":...,\"state\":...})");
	return 0;
}

static int check_tail(struct reader *rd, size_t len, long ops, uint64_t sum,
		      struct retl_err *err)
{
	struct retl_preader p;
	struct retl_pfield f;
	long end = -1;
	uint64_t want = 0;
	int n, have_sum = 0;
	if (retl_payload_open(&p, rd->line, len) < 0)
		return bad(rd, err, "a bad end line");
	while ((n = retl_payload_next(&p, &f)) == 1) {
		if (retl_pfield_is(&f, "end") && f.v.kind == RETL_PV_NUMBER) {
			retl_buf_reset(&rd->tmp);
			retl_buf_add(&rd->tmp, f.v.raw, f.v.len);
			char *e;
			end = strtol(retl_buf_cstr(&rd->tmp), &e, 10);
			if (*e)
				end = -1;
		} else if (retl_pfield_is(&f, "xxh3") && hex64(&f.v, &rd->tmp, &want) == 0) {
			have_sum = 1;
		} else {
			return bad(rd, err, "a bad end line");
		}
	}
	if (n < 0 || end < 0 || !have_sum)
		return bad(rd, err, "a bad end line");
	if (end != ops)
		return bad(rd, err, "the end line counts other operations than the file holds");
	if (want != sum)
		return bad(rd, err, "checksum mismatch: the file changed after retl wrote it");
	return 0;
}

int retl_spool_verify(FILE *f, const char *path, struct retl_spool_head *h,
		      struct retl_err *err)
{
	struct reader rd = { .path = path };
	struct retl_spool_op op;
	XXH3_state_t *xx = XXH3_createState();
	int rc = -1;
	if (!xx)
		abort();
	XXH3_64bits_reset(xx);
	memset(h, 0, sizeof(*h));
	rewind(f);
	ssize_t n = next_line(f, &rd);
	if (check_head(&rd, n, h, err) < 0)
		goto done;
	XXH3_64bits_update(xx, rd.line, (size_t)n);
	XXH3_64bits_update(xx, "\n", 1);
	for (;;) {
		n = next_line(f, &rd);
		if (n < 0) {
			rc = retl_err_set(err, RETL_EXIT_USAGE,
					  "%s: cut short after line %ld: no end line (was the plan killed before it finished?)",
					  path, rd.lineno);
			goto done;
		}
		if (is_tail(rd.line))
			break;
		if (parse_op(&rd, (size_t)n, &op, err) < 0)
			goto done;
		h->ops++;
		XXH3_64bits_update(xx, rd.line, (size_t)n);
		XXH3_64bits_update(xx, "\n", 1);
	}
	if (check_tail(&rd, (size_t)n, h->ops, XXH3_64bits_digest(xx), err) < 0)
		goto done;
	if (next_line(f, &rd) >= 0) {
		bad(&rd, err, "lines after the end line");
		goto done;
	}
	rc = 0;
done:
	if (ferror(f) && rc == 0)
		rc = retl_err_set(err, RETL_EXIT_USAGE, "%s: %s", path, strerror(errno));
	XXH3_freeState(xx);
	reader_free(&rd);
	if (rc < 0)
		retl_spool_head_free(h);
	return rc;
}

void retl_spool_head_free(struct retl_spool_head *h)
{
	free(h->sync);
	h->sync = NULL;
}

/* a string of the record at rec (its NUL checked), or why not */
static const char *bin_str(const char *rec, size_t *at, uint32_t len,
			   const char **out)
{
	const char *p = rec + *at;
	if (p[len] != '\0' || memchr(p, '\0', len))
		return "a string holds a NUL or is not ended";
	*out = p;
	*at += (size_t)len + 1;
	return NULL;
}

/* one binary operation into op (its strings in rd->line); 1 at the end */
static int bin_next(FILE *f, struct reader *rd, XXH3_state_t *xx,
		    struct retl_spool_op *op, const char **why)
{
	struct bin_head h;
	size_t at = 0;
	if (fread(&h, sizeof(h), 1, f) != 1)
		return *why = "cut short: no end record", -1;
	rd->lineno++;
	if (h.kind == BIN_END) {
		if (h.change || h.flags || h.pad || h.keylen || h.kjlen || h.plen ||
		    h.dlen || h.mlen)
			return *why = "a bad end record", -1;
		if (h.src != (uint64_t)rd->lineno - 1)
			return *why = "the end record counts other operations than the file holds", -1;
		if (h.sum != XXH3_64bits_digest(xx))
			return *why = "checksum mismatch: the spool changed after retl wrote it", -1;
		return fgetc(f) == EOF ? 1 : (*why = "bytes after the end record", -1);
	}
	if (h.keylen >= BIN_MAX || h.kjlen >= BIN_MAX || h.plen >= BIN_MAX ||
	    h.dlen >= BIN_MAX || h.mlen >= BIN_MAX || h.kind > RETL_OP_REMOVE ||
	    h.change > RETL_CH_REMOVED || h.flags > 31 || h.pad || h.sum)
		return *why = "a bad operation header", -1;
	size_t n = (size_t)h.keylen + h.kjlen + h.plen + h.dlen + h.mlen + 5;
	/* read a MiB at a time, the buffer grown as bytes arrive: a header
	 * that promises a gigabyte costs what the file holds, not the
	 * promise (found by fuzz_plan) */
	for (size_t got = 0, want; got < n; got += want) {
		want = n - got < ((size_t)1 << 20) ? n - got : (size_t)1 << 20;
		if (got + want > rd->cap) {
			size_t cap = rd->cap ? rd->cap : 4096;
			while (cap < got + want)
				cap *= 2;
			rd->cap = cap < n ? cap : n;
			rd->line = retl_realloc(rd->line, rd->cap);
		}
		if (fread(rd->line + got, 1, want, f) != want)
			return *why = "cut short inside an operation", -1;
	}
	XXH3_64bits_update(xx, &h, sizeof(h));
	XXH3_64bits_update(xx, rd->line, n);
	memset(op, 0, sizeof(*op));
	const char *payload, *dest, *match;
	if ((*why = bin_str(rd->line, &at, h.keylen, &op->key)) ||
	    (*why = bin_str(rd->line, &at, h.kjlen, &op->key_json)) ||
	    (*why = bin_str(rd->line, &at, h.plen, &payload)) ||
	    (*why = bin_str(rd->line, &at, h.dlen, &dest)) ||
	    (*why = bin_str(rd->line, &at, h.mlen, &match)))
		return -1;
	op->kind = (enum retl_op_kind)h.kind;
	op->change = (enum retl_spool_change)h.change;
	op->keylen = h.keylen;
	op->kjlen = h.kjlen;
	op->payload = h.flags & BIN_PAYLOAD ? payload : NULL;
	op->plen = op->payload ? h.plen : 0;
	op->dest_id = h.flags & BIN_DEST ? dest : NULL;
	op->match = h.flags & BIN_MATCH ? match : NULL;
	op->mlen = op->match ? h.mlen : 0;
	op->pending = !!(h.flags & BIN_PENDING);
	op->orphan = !!(h.flags & BIN_ORPHAN);
	op->src = h.src;
	if (op->payload && (h.plen < 2 || payload[0] != '{' || payload[h.plen - 1] != '}'))
		return *why = "a payload that is not a JSON object", -1;
	if ((*why = broken_promise(op)))
		return -1;
	return 0;
}

static int replay_binary(FILE *f, struct reader *rd, retl_spool_fn fn, void *ud,
			 struct retl_err *err)
{
	struct retl_spool_op op;
	const char *why = NULL;
	XXH3_state_t *xx = XXH3_createState();
	int rc = 0, n;
	if (!xx)
		abort();
	XXH3_64bits_reset(xx);
	XXH3_64bits_update(xx, BIN_MAGIC, 8);
	while (rc == 0 && (n = bin_next(f, rd, xx, &op, &why)) == 0)
		rc = fn(ud, &op);
	if (rc == 0 && n < 0)
		rc = retl_err_set(err, RETL_EXIT_STATE, "%s: operation %ld: %s",
				  rd->path, rd->lineno, ferror(f) ? strerror(errno) : why);
	XXH3_freeState(xx);
	return rc;
}

int retl_spool_replay(FILE *f, const char *path, retl_spool_fn fn, void *ud,
		      struct retl_err *err)
{
	struct reader rd = { .path = path };
	struct retl_spool_op op;
	char magic[8];
	int rc = 0;
	rewind(f);
	if (fread(magic, 1, 8, f) == 8 && !memcmp(magic, BIN_MAGIC, 8)) {
		rc = replay_binary(f, &rd, fn, ud, err);
		reader_free(&rd);
		return rc;
	}
	rewind(f);
	ssize_t n = next_line(f, &rd);      /* the head */
	if (n < 0)
		rc = bad(&rd, err, "empty file: not a plan");
	while (rc == 0 && (n = next_line(f, &rd)) >= 0 && !is_tail(rd.line)) {
		if (parse_op(&rd, (size_t)n, &op, err) < 0)
			rc = -1;
		else
			rc = fn(ud, &op);
	}
	if (rc == 0 && n < 0)
		rc = retl_err_set(err, RETL_EXIT_USAGE, "%s: cut short: no end line", path);
	reader_free(&rd);
	return rc;
}
