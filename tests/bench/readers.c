/*
 * readers.c - the benchmark's reference readers: the fastest ways a C
 * client can pull a query's result out of PostgreSQL and throw it away.
 *
 *   readers copy-text   DSN QUERY   COPY (QUERY) TO STDOUT, PQgetCopyData,
 *                                   rows counted by newlines
 *   readers copy-binary DSN QUERY   COPY (QUERY) TO STDOUT (FORMAT binary),
 *                                   rows counted by walking the tuple headers
 *   readers single-row  DSN QUERY   PQsetSingleRowMode, every value touched
 *                                   with PQgetvalue/PQgetlength
 *
 * Each prints the number of rows it read.  tests/bench/bench.py divides
 * every contender's rate by the fastest of these (and psql's \copy) in the
 * same repetition, so retl is compared with what the wire and the server
 * allow, not with a client that formats its output.  They do no more work
 * than counting: anything else would flatter retl.
 *
 * Not part of retl: built by `make bench` alone (cc -O2 ... -lpq).
 */
#include <libpq-fe.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(PGconn *conn, const char *what)
{
	fprintf(stderr, "readers: %s: %s", what, conn ? PQerrorMessage(conn) : "\n");
	return -1;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* starts COPY (query) TO STDOUT [options]; 0 when the server is in COPY OUT */
static int copy_start(PGconn *conn, const char *query, const char *options)
{
	size_t n = strlen(query) + strlen(options) + 32;
	char *sql = malloc(n);
	if (!sql)
		return fail(NULL, "out of memory");
	snprintf(sql, n, "COPY (%s) TO STDOUT%s", query, options);
	PGresult *res = PQexec(conn, sql);
	free(sql);
	int ok = PQresultStatus(res) == PGRES_COPY_OUT;
	PQclear(res);
	return ok ? 0 : fail(conn, "COPY");
}

/* after PQgetCopyData returned -1: the COPY command's own result */
static int copy_finish(PGconn *conn, int got)
{
	if (got == -2)
		return fail(conn, "PQgetCopyData");
	PGresult *res = PQgetResult(conn);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	return ok ? 0 : fail(conn, "COPY ended");
}

static long long read_copy_text(PGconn *conn, const char *query)
{
	if (copy_start(conn, query, "") < 0)
		return -1;
	long long rows = 0;
	char *buf;
	int n;
	while ((n = PQgetCopyData(conn, &buf, 0)) > 0) {
		for (const char *p = buf, *end = buf + n;
		     (p = memchr(p, '\n', (size_t)(end - p))); p++)
			rows++;
		PQfreemem(buf);
	}
	return copy_finish(conn, n) < 0 ? -1 : rows;
}

/*
 * The binary COPY stream: an 11-byte signature, flags and a header
 * extension, then per tuple a 16-bit field count (-1 ends the stream) and
 * per field a 32-bit length (-1 for NULL) and that many bytes.  The server
 * sends one tuple per CopyData message, but the format does not promise it,
 * so a tuple cut between messages is carried over.
 */
struct bin_walk {
	unsigned char *carry;
	size_t len, cap;
	int in_header;
	int ended;
	long long rows;
};

/* bytes of p[0..n) that form the header or whole tuples, walked */
static size_t bin_walk_some(struct bin_walk *w, const unsigned char *p, size_t n)
{
	size_t at = 0;
	if (w->in_header) {
		if (n < 19)
			return 0;
		if (memcmp(p, "PGCOPY\n\377\r\n\0", 11) != 0)
			return (size_t)-1;
		uint32_t ext = be32(p + 15);
		if (n - 19 < ext)
			return 0;
		at = 19 + ext;
		w->in_header = 0;
	}
	while (!w->ended && n - at >= 2) {
		int16_t fields = (int16_t)(p[at] << 8 | p[at + 1]);
		if (fields == -1) {
			w->ended = 1;
			return at + 2;
		}
		size_t q = at + 2;
		for (int f = 0; f < fields; f++) {
			if (n - q < 4)
				return at;
			int32_t len = (int32_t)be32(p + q);
			q += 4;
			if (len > 0) {
				if (n - q < (size_t)len)
					return at;
				q += (size_t)len;
			}
		}
		at = q;
		w->rows++;
	}
	return at;
}

static int bin_walk_chunk(struct bin_walk *w, const unsigned char *p, size_t n)
{
	if (w->len == 0) {      /* the usual case: whole tuples, walked in place */
		size_t used = bin_walk_some(w, p, n);
		if (used == (size_t)-1)
			return -1;
		p += used;
		n -= used;
		if (n == 0)
			return 0;
	}
	if (w->len + n > w->cap) {
		size_t cap = (w->len + n) * 2;
		unsigned char *c = realloc(w->carry, cap);
		if (!c)
			return -1;
		w->carry = c;
		w->cap = cap;
	}
	memcpy(w->carry + w->len, p, n);
	w->len += n;
	size_t used = bin_walk_some(w, w->carry, w->len);
	if (used == (size_t)-1)
		return -1;
	memmove(w->carry, w->carry + used, w->len - used);
	w->len -= used;
	return 0;
}

static long long read_copy_binary(PGconn *conn, const char *query)
{
	if (copy_start(conn, query, " (FORMAT binary)") < 0)
		return -1;
	struct bin_walk w = { .in_header = 1 };
	char *buf;
	int n, bad = 0;
	while ((n = PQgetCopyData(conn, &buf, 0)) > 0) {
		if (!bad && bin_walk_chunk(&w, (const unsigned char *)buf, (size_t)n) < 0)
			bad = 1;        /* read on to the end so the connection stays sane */
		PQfreemem(buf);
	}
	free(w.carry);
	if (copy_finish(conn, n) < 0)
		return -1;
	if (bad || !w.ended || w.len) {
		fprintf(stderr, "readers: the binary COPY stream is malformed\n");
		return -1;
	}
	return w.rows;
}

static long long read_single_row(PGconn *conn, const char *query)
{
	if (!PQsendQuery(conn, query) || !PQsetSingleRowMode(conn))
		return fail(conn, "single-row query");
	long long rows = 0;
	size_t touched = 0;
	int ok = 1;
	PGresult *res;
	while ((res = PQgetResult(conn))) {
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_SINGLE_TUPLE) {
			int cols = PQnfields(res);
			for (int c = 0; c < cols; c++)
				touched += (size_t)PQgetlength(res, 0, c) +
					   (unsigned char)PQgetvalue(res, 0, c)[0];
			rows++;
		} else if (st != PGRES_TUPLES_OK && ok) {
			fail(conn, "single-row result");
			ok = 0;
		}
		PQclear(res);
	}
	/* the sum is printed so that the compiler keeps the touching */
	fprintf(stderr, "readers: single-row touched %zu\n", touched);
	return ok ? rows : -1;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: readers copy-text|copy-binary|single-row DSN QUERY\n");
		return 2;
	}
	const char *mode = argv[1], *query = argv[3];
	long long (*reader)(PGconn *, const char *) =
		!strcmp(mode, "copy-text") ? read_copy_text :
		!strcmp(mode, "copy-binary") ? read_copy_binary :
		!strcmp(mode, "single-row") ? read_single_row : NULL;
	if (!reader) {
		fprintf(stderr, "readers: unknown mode %s\n", mode);
		return 2;
	}
	PGconn *conn = PQconnectdb(argv[2]);
	if (PQstatus(conn) != CONNECTION_OK) {
		fail(conn, "connect");
		PQfinish(conn);
		return 1;
	}
	long long rows = reader(conn, query);
	PQfinish(conn);
	if (rows < 0)
		return 1;
	printf("%lld\n", rows);
	return 0;
}
