/*
 * salesforce_spool.c - the spool of deferred Salesforce rows: one framed
 * record per op,
 *
 *   <key length> <stored id length or -> <payload length or ->\n
 *   <key bytes><id bytes><payload bytes>\n
 *
 * so reading a row back is one fread of known lengths: the payload is not
 * parsed until collections or a bulk job read it (once).  The spool is this
 * run's own file, but read back as untrusted input all the same: a record
 * whose header does not parse, whose lengths do not fit in what is left of
 * the file, or whose bytes run short is damage (sf_spool_damaged): the
 * read ends there, nothing is allocated from a length before it is known
 * to fit, and the rows from there on stay staged for the next run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "salesforce_int.h"

#define MAX_FIELD (256UL << 20)
/* a record this small is read without asking the file's size (which costs
 * two system calls a record); a larger one must fit in what is left */
#define SMALL_RECORD ((size_t)64 << 10)

static void put_len(FILE *f, const char *s, size_t n, char sep)
{
	if (s)
		fprintf(f, "%zu%c", n, sep);
	else
		fprintf(f, "-%c", sep);
}

int sf_spool_put(FILE *f, const struct retl_op *op)
{
	size_t kl = strlen(op->key), il = op->dest_id ? strlen(op->dest_id) : 0;
	put_len(f, op->key, kl, ' ');
	put_len(f, op->dest_id, il, ' ');
	put_len(f, op->payload, op->payload_len, '\n');
	if (fwrite(op->key, 1, kl, f) != kl ||
	    (il && fwrite(op->dest_id, 1, il, f) != il) ||
	    (op->payload_len && fwrite(op->payload, 1, op->payload_len, f) != op->payload_len) ||
	    fputc('\n', f) == EOF)
		return -1;
	return 0;
}

/* one length of the header: 1 and *n, 0 for "-" (absent), -1 */
static int get_len(const char **p, size_t *n)
{
	char *end;
	if (**p == '-') {
		(*p)++;
		return 0;
	}
	unsigned long v = strtoul(*p, &end, 10);
	if (end == *p || v > MAX_FIELD)
		return -1;
	*p = end;
	*n = v;
	return 1;
}

/* 1 when the n bytes after f's position are in the file */
static int fits(FILE *f, size_t n)
{
	struct stat sb;
	long pos = ftell(f);

	return pos >= 0 && fstat(fileno(f), &sb) == 0 && sb.st_size >= pos &&
	       (uint64_t)(sb.st_size - pos) >= (uint64_t)n;
}

int sf_spool_get(FILE *f, retl_buf *buf, struct retl_op *op)
{
	char hdr[96];
	size_t n[3] = { 0, 0, 0 };
	int has[3];
	if (!fgets(hdr, sizeof(hdr), f))
		return 0;
	const char *p = hdr;
	for (int i = 0; i < 3; i++) {
		if ((has[i] = get_len(&p, &n[i])) < 0 || *p != (i < 2 ? ' ' : '\n'))
			return -1;
		p++;
	}
	size_t total = n[0] + n[1] + n[2];  /* <= 3 * MAX_FIELD: no overflow */
	if (!has[0] || (total > SMALL_RECORD && !fits(f, total + 1)))
		return -1;
	retl_buf_reset(buf);
	retl_buf_grow(buf, total + 3);
	/* key, id and payload each NUL-ended inside buf */
	size_t off[3];
	for (int i = 0; i < 3; i++) {
		off[i] = buf->len;
		if (n[i] && fread(buf->ptr + buf->len, 1, n[i], f) != n[i])
			return -1;
		buf->len += n[i];
		buf->ptr[buf->len++] = '\0';
	}
	buf->ptr[buf->len] = '\0';
	if (fgetc(f) != '\n')
		return -1;
	memset(op, 0, sizeof(*op));
	op->key = buf->ptr + off[0];
	op->dest_id = has[1] ? buf->ptr + off[1] : NULL;
	op->payload = has[2] ? buf->ptr + off[2] : NULL;
	op->payload_len = n[2];
	return 1;
}

int sf_spool_damaged(const char *path, struct retl_err *err)
{
	return retl_err_set(err, RETL_EXIT_DEST, "salesforce: spool %s is "
			    "damaged (a record's lengths do not match its "
			    "bytes); the rows from there on were not sent and "
			    "are sent again by the next run", path);
}
