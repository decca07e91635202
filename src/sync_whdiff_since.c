/*
 * sync_whdiff_since.c - "changed_since" on "diff": "warehouse" (README
 * "Diff in the warehouse" -> "Only the rows that changed").
 *
 * The hash diff makes the warehouse hash every model row and join it with
 * the sync's table each run: on a small warehouse that costs what moving
 * the rows did.  With a change column (an updated_at every write moves, a
 * version number) the warehouse reads only the rows whose column reached
 * a watermark W, through the column's index, and hashes and compares only
 * those.  Three things keep the destination equal to the model:
 *
 *  - Removals.  A removed row has no column value left to read, so before
 *    trusting the range, one aggregate query in the run's snapshot checks
 *    that the table's keys are exactly the model's, but for the new keys
 *    the range holds: count and sum of a 64-bit hash of the key text on
 *    both sides.  A removal, a repeated key (its hash counted twice) or a
 *    damaged table makes them differ, and the run is the plain hash diff,
 *    which finds them.  That scan reads the key only: no row hash, no join.
 *    The check runs only when a removal would matter: the sync removes
 *    (mirror, membership; retl_sync_removes), or rows are failing or
 *    waiting (one that left the model must be forgotten).  Otherwise a
 *    row that left changes nothing at the destination, and the range is
 *    trusted: it costs an index range, not a scan (the key stays in the
 *    table and the store until a run compares every row).
 *  - Rows not acknowledged.  W advances only when the run ended normally,
 *    and never past a returned row the run did not acknowledge (failing,
 *    refused, deferred by --limit): those are read again next run.
 *  - Identity of W.  W lives in the table itself, as the row whose key is
 *    '' (no model row has an empty key: the engine refuses it), its
 *    row_hash "cs:<mapping seed>:<type>:<column>", its dest_id W's text.  It is
 *    written in the transaction of the run's last write-back, so a table
 *    restored, truncated or dropped carries its own W or none, and a
 *    mapping change (a new seed) or another column means "no watermark":
 *    the plain hash diff runs and W is set again.
 *
 * What it cannot see (README says so): a row whose column goes backwards,
 * or an update committed with a value below what a run already read past
 * ("lookback" reads that much below W); `retl run --full-resync` compares
 * every row.  A new row committed late is not missed: the key check
 * counts it.
 *
 * Values are compared in SQL (the range) and, for W's next value, in C on
 * the server's text (session TimeZone=UTC, DateStyle=ISO: fixed-width ISO
 * text orders as the values do, for years 1000-9999); a value C cannot
 * order (BC, infinity) keeps W where it was.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sync_whdiff.h"

struct retl_whsince {
	const struct retl_sync_cfg *sc;
	size_t col;             /* the column's index in the model */
	unsigned oid;
	const char *type;       /* its SQL type name */
	const struct retl_column *cols;  /* the model's (the source's) */
	size_t ncols;
	char *tag;              /* "cs:<seed>:<column>": W's row_hash */
	char *w;                /* the stored W (NULL: none usable) */
	char *max;              /* max(column) in the run's snapshot */
	char *next;             /* W's next value, as pins lower it */
	int stuck;              /* a pin C could not order: W stays */
};

static const struct {
	unsigned oid;
	const char *type;
	int time;
} since_types[] = {
	{ 20, "bigint", 0 }, { 21, "smallint", 0 }, { 23, "integer", 0 },
	{ 1082, "date", 1 }, { 1114, "timestamp", 1 }, { 1184, "timestamptz", 1 },
};

/* a few common types by name, for the message; others by oid */
static const char *type_name(unsigned oid)
{
	static const struct { unsigned oid; const char *name; } names[] = {
		{ 16, "boolean" }, { 25, "text" }, { 700, "real" },
		{ 701, "double precision" }, { 1043, "varchar" }, { 1042, "char" },
		{ 1083, "time" }, { 1186, "interval" }, { 1700, "numeric" },
		{ 114, "json" }, { 3802, "jsonb" }, { 2950, "uuid" },
	};
	static char buf[32];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].oid == oid)
			return names[i].name;
	snprintf(buf, sizeof(buf), "type oid %u", oid);
	return buf;
}

int retl_whsince_new(const struct retl_sync_cfg *sc, const struct retl_column *cols,
		     size_t n, uint64_t seed, struct retl_whsince **out,
		     struct retl_err *err)
{
	*out = NULL;
	if (!sc->changed_since)
		return 0;
	size_t i;
	for (i = 0; i < n && strcmp(cols[i].name, sc->changed_since); i++)
		;
	if (i == n)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: changed_since: column \"%s\" is not one of the model's columns",
				    sc->file, sc->changed_since);
	size_t t;
	for (t = 0; t < sizeof(since_types) / sizeof(since_types[0]); t++)
		if (since_types[t].oid == cols[i].oid)
			break;
	if (t == sizeof(since_types) / sizeof(since_types[0]))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: changed_since: column \"%s\" (%s) is not an integer, date or timestamp column: use one every change moves forward, such as an updated_at",
				    sc->file, sc->changed_since, type_name(cols[i].oid));
	if (sc->changed_since_lookback_ms && !since_types[t].time)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: changed_since: a lookback needs a date or timestamp column (\"%s\" is %s)",
				    sc->file, sc->changed_since, since_types[t].type);
	struct retl_whsince *s = retl_calloc(1, sizeof(*s));
	s->sc = sc;
	s->col = i;
	s->oid = cols[i].oid;
	s->type = since_types[t].type;
	s->cols = cols;
	s->ncols = n;
	retl_buf b = RETL_BUF_INIT;
	/* the type too: W's text of another type would not cast (or would
	 * mean something else) */
	retl_buf_addf(&b, "cs:%lld:%s:%s", (long long)seed, since_types[t].type,
		      sc->changed_since);
	s->tag = retl_buf_detach(&b);
	*out = s;
	return 0;
}

size_t retl_whsince_col(const struct retl_whsince *s)
{
	return s->col;
}

/*
 * max(column), the next watermark.  PostgreSQL's 'infinity' is left out:
 * as W it would leave every later change below it; a row holding it is in
 * every range anyway.  (Redshift has no infinity.)
 */
static void add_max(const struct retl_whsince *s, retl_buf *q, int portable)
{
	retl_buf_adds(q, "max(");
	if (!portable && s->oid != 20 && s->oid != 21 && s->oid != 23) {
		retl_buf_adds(q, "NULLIF(");
		retl_whdiff_ident(q, s->sc->changed_since);
		retl_buf_adds(q, ", 'infinity')");
	} else {
		retl_whdiff_ident(q, s->sc->changed_since);
	}
	retl_buf_addc(q, ')');
}

/* 'v' as an SQL literal (standard_conforming_strings: only ' doubles) */
static void add_literal(retl_buf *q, const char *v)
{
	retl_buf_addc(q, '\'');
	for (; *v; v++) {
		if (*v == '\'')
			retl_buf_addc(q, '\'');
		retl_buf_addc(q, *v);
	}
	retl_buf_addc(q, '\'');
}

void retl_whsince_range(const struct retl_whsince *s, retl_buf *q)
{
	retl_buf_addc(q, '(');
	retl_whdiff_ident(q, s->sc->changed_since);
	retl_buf_adds(q, " >= CAST(");
	add_literal(q, s->w);
	retl_buf_addf(q, " AS %s)", s->type);
	if (s->sc->changed_since_lookback_ms)
		retl_buf_addf(q, " - INTERVAL '%ld seconds'",
			      (s->sc->changed_since_lookback_ms + 999) / 1000);
	retl_buf_adds(q, " OR ");
	retl_whdiff_ident(q, s->sc->changed_since);
	retl_buf_adds(q, " IS NULL)");
}

/*
 * A 64-bit (48 on the portable path) hash of key text x, summable.
 * Redshift's SUM of a BIGINT is a BIGINT (it would overflow past some
 * 65,000 keys): the portable hash is summed as DECIMAL(38,0).
 */
static void add_key_hash(retl_buf *q, const char *x, int portable, int redshift)
{
	if (redshift)
		retl_buf_addf(q, "CAST(STRTOL(SUBSTRING(MD5(%s), 1, 12), 16) AS DECIMAL(38,0))", x);
	else if (portable)   /* Redshift's on PostgreSQL, for the tests */
		retl_buf_addf(q, "CAST(CAST(CAST('x' || SUBSTRING(MD5(%s), 1, 12) AS BIT(48)) AS BIGINT) AS DECIMAL(38,0))", x);
	else
		retl_buf_addf(q, "hashtextextended(%s, 0)", x);
}

/*
 * The key's text for the key check: the engine's (sync_whdiff.c), or for
 * one integer column its plain cast, which prints as COPY does and costs
 * half of format()'s (this expression runs on every model row).
 */
static void add_check_key(const struct retl_whsince *s, retl_buf *q, int portable)
{
	const struct retl_sync_cfg *sc = s->sc;
	unsigned oid = 0;
	for (size_t i = 0; sc->nkey == 1 && i < s->ncols; i++)
		if (!strcmp(s->cols[i].name, sc->key[0]))
			oid = s->cols[i].oid;
	if (oid == 20 || oid == 21 || oid == 23) {
		retl_buf_adds(q, "CAST(");
		retl_whdiff_ident(q, sc->key[0]);
		retl_buf_adds(q, " AS VARCHAR(20))");
	} else {
		retl_whdiff_key_expr(q, sc, portable);
	}
}

/*
 * One row: (keys agree, max(column)).  Keys agree when the sum of the
 * model's key hashes is the table's plus those of the range's keys the
 * table lacks (NULL and empty keys are the engine's to refuse and never
 * reach the table).  A sum, not a count too: a removed key and a repeated
 * one cancel in a count, not in a sum of 64-bit hashes; and each
 * aggregate over the model costs its expression on every row.
 */
static void check_query(const struct retl_whsince *s, retl_buf *q, const char *model,
			size_t mlen, const char *table, int portable, int redshift,
			int check)
{
	if (!s->w || !check) {
		/* in the range (through the index): its max is the model's */
		retl_buf_addf(q, "SELECT %s, ", s->w ? "'t'" : "NULL");
		add_max(s, q, portable);
		retl_buf_adds(q, " FROM (\n");
		retl_buf_add(q, model, mlen);
		retl_buf_adds(q, "\n) retl_m");
		if (s->w) {
			retl_buf_adds(q, " WHERE ");
			retl_whsince_range(s, q);
		}
		return;
	}
	retl_buf k = RETL_BUF_INIT;
	retl_buf_adds(&k, "NULLIF(");
	add_check_key(s, &k, portable);
	retl_buf_adds(&k, ", '')");
	retl_buf_adds(q, "SELECT CASE WHEN a.s = b.s + c.s THEN 't' ELSE 'f' END, a.mx FROM\n(SELECT coalesce(sum(");
	add_key_hash(q, k.ptr, portable, redshift);
	retl_buf_adds(q, "), 0) AS s, ");
	add_max(s, q, portable);
	retl_buf_adds(q, " AS mx FROM (\n");
	retl_buf_add(q, model, mlen);
	retl_buf_adds(q, "\n) retl_m) a,\n(SELECT coalesce(sum(");
	add_key_hash(q, "key", portable, redshift);
	retl_buf_addf(q, "), 0) AS s FROM %s WHERE key <> '') b,\n(SELECT coalesce(sum(", table);
	add_key_hash(q, "retl__k", portable, redshift);
	retl_buf_addf(q, "), 0) AS s FROM (SELECT %s AS retl__k FROM (\n", k.ptr);
	retl_buf_add(q, model, mlen);
	retl_buf_adds(q, "\n) retl_m WHERE ");
	retl_whsince_range(s, q);
	retl_buf_addf(q, ") retl_c WHERE NOT EXISTS (SELECT 1 FROM %s retl_s WHERE retl_s.key = retl_c.retl__k)) c",
		      table);
	retl_buf_free(&k);
}

struct one_row {
	int n;
	char *v[2];
};

static int take_row(void *ud, const struct retl_row *row, const char *raw, size_t len)
{
	struct one_row *o = ud;
	(void)raw;
	(void)len;
	o->n++;
	for (size_t i = 0; i < 2 && i < row->ncols; i++) {
		free(o->v[i]);
		o->v[i] = row->vals[i] ? retl_strndup(row->vals[i], row->lens[i]) : NULL;
	}
	return 0;
}

static int one_row(retl_source *src, const char *sql, struct one_row *o,
		   struct retl_err *err)
{
	memset(o, 0, sizeof(*o));
	return retl_source_stream(src, sql, take_row, o, err);
}

int retl_whsince_prepare(struct retl_whsince *s, retl_source *src, const char *model,
			 size_t mlen, const char *table, int portable, int redshift,
			 int may_read_range, int check, struct retl_err *err)
{
	const char *why = "no watermark for changed_since yet";
	retl_buf q = RETL_BUF_INIT;
	struct one_row o;
	int rc = 0;
	if (may_read_range) {
		retl_buf_addf(&q, "SELECT row_hash, dest_id FROM %s WHERE key = ''", table);
		rc = one_row(src, q.ptr, &o, err);
		if (rc == 0 && o.n == 1 && o.v[0] && o.v[1] && !strcmp(o.v[0], s->tag))
			s->w = retl_strdup(o.v[1]);
		free(o.v[0]);
		free(o.v[1]);
	}
	if (rc == 0) {
		retl_buf_reset(&q);
		check_query(s, &q, model, mlen, table, portable, redshift, check);
		rc = one_row(src, q.ptr, &o, err);
	}
	retl_buf_free(&q);
	if (rc != 0)
		return rc;
	s->max = o.v[1];
	s->next = s->max ? retl_strdup(s->max) : NULL;
	int range = s->w && o.v[0] && o.v[0][0] == 't';
	if (s->w && !range)
		why = "the table's keys are not the model's (rows left the model, or a key repeats)";
	free(o.v[0]);
	if (range)
		retl_log(RETL_LOG_INFO, s->sc->name, "diff warehouse: rows with %s >= %s read (changed_since%s)",
			 s->sc->changed_since, s->w,
			 check ? "" : "; no key check: nothing to remove, nothing failing");
	else
		retl_log(RETL_LOG_INFO, s->sc->name, "diff warehouse: %s: this run compares every row", why);
	return range;
}

/* -1: a < b, 0 equal, 1 greater; UNORDERED when C cannot tell (W stays) */
#define UNORDERED 2
static int compare(unsigned oid, const char *a, const char *b)
{
	if (oid == 20 || oid == 21 || oid == 23) {
		char *ea, *eb;
		errno = 0;
		long long x = strtoll(a, &ea, 10), y = strtoll(b, &eb, 10);
		if (errno || *ea || *eb || ea == a || eb == b)
			return UNORDERED;
		return x < y ? -1 : x > y;
	}
	/* ISO text, years 1000-9999 only: "YYYY-MM-DD..." */
	const char *v[2] = { a, b };
	for (size_t i = 0; i < 2; i++)
		if (strlen(v[i]) < 10 || v[i][4] != '-' || v[i][0] < '1' ||
		    v[i][0] > '9' || strstr(v[i], "BC"))
			return UNORDERED;
	int c = strcmp(a, b);
	return c < 0 ? -1 : c > 0;
}

void retl_whsince_pin(struct retl_whsince *s, const char *v)
{
	if (!v || !s->next)
		return;   /* NULL is read every run; no max: W does not move */
	int c = compare(s->oid, v, s->next);
	if (c == UNORDERED)
		s->stuck = 1;
	else if (c < 0) {
		free(s->next);
		s->next = retl_strdup(v);
	}
}

int retl_whsince_marker(const struct retl_whsince *s, const char **tag,
			const char **w)
{
	if (s->stuck || !s->next || (s->w && !strcmp(s->w, s->next)) ||
	    compare(s->oid, s->next, s->next) == UNORDERED)
		return 0;   /* a value C cannot order never becomes W */
	/* pinned below W (a row read through lookback): W stays */
	if (s->w && compare(s->oid, s->next, s->w) != 1)
		return 0;
	*tag = s->tag;
	*w = s->next;
	return 1;
}

void retl_whsince_free(struct retl_whsince *s)
{
	if (!s)
		return;
	free(s->tag);
	free(s->w);
	free(s->max);
	free(s->next);
	free(s);
}
