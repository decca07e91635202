/*
 * sync_whdiff.c - "diff": "warehouse": the diff computed in the warehouse
 * (README "Diff in the warehouse").
 *
 * retl keeps one table per sync in a schema it manages in the warehouse
 * (the source's "state_schema", default retl_state): key (retl's key text),
 * row_hash (the hash, computed in SQL, of the model row last acknowledged),
 * pay_hash and dest_id (for people reading it), updated_at.  Inside the
 * run's read-only snapshot one query joins the model with that table and
 * returns only the model rows whose hash differs or is missing, and the
 * table's keys the model no longer has.  Rows not returned cost nothing
 * here: the engine never loads their cache rows.
 *
 * The local state store stays the authority for identity (dest ids, match
 * values, pending creates, failures, orphans: sync_diff.c's rules run
 * unchanged on the rows returned); the table only says "this model row is
 * unchanged since it was acknowledged".  So losing the table, or a write
 * to it, costs a re-read, never a wrong destination:
 *  - before the push, every returned key is written with a NULL row hash
 *    (one may be sent: from now on it must come back, as a changed row or
 *    as a removal candidate, whatever happens to this run);
 *  - after the push, a returned key whose local row is acknowledged with
 *    this run's source line gets the row hash back; a removal candidate
 *    with no local row left is deleted.  Nothing else writes a hash, so a
 *    hash is never written before the destination acknowledged the row.
 * Rows the local store lists as failing, pending or staged (few, indexed)
 * are looked at every run, so one that left the model is forgotten (or
 * removed) as with the local diff.
 *
 * SQL: the key is rendered in SQL exactly as the engine renders it
 * (checked on every returned row: a mismatch stops the run and says
 * which column); the row hash, salted by the mapping fingerprint, is
 * hash_record_extended over the columns on PostgreSQL 14+ (hashtextextended
 * over their text before).  Writes: COPY into a temp staging table, then
 * INSERT … ON CONFLICT.  Redshift has none of these: md5 over CAST(… AS
 * VARCHAR(65535)), chr()-built JSON keys, multi-row INSERTs into the
 * staging table, DELETE … USING and INSERT.  RETL_TEST_WHDIFF_SQL=portable
 * selects Redshift's SQL on PostgreSQL (the tests run it).
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgwait.h"
#include "redact.h"
#include "sync_int.h"
#include "sync_whdiff.h"
#include "testpoint.h"

#define WH_EXTRA 4          /* retl__k, retl__h, retl__in, retl__s */
#define WH_ANALYZE_ROWS 100000 /* rows written at once: ANALYZE the table */

struct wh_row {
	size_t key, hash;   /* arena offsets */
	uint64_t src;       /* the model line's hash, as the engine takes it */
	size_t since;       /* arena offset of its changed_since value, -1 NULL */
	int done;           /* its row hash is written */
};

struct retl_whdiff {
	int portable;       /* md5 / CAST SQL (Redshift, or the test switch) */
	int redshift;
	char *table;            /* "schema"."sync", quoted */
	size_t ncols;           /* the model's columns */
	retl_buf arena;
	struct wh_row *rows;    /* returned model rows, first of each key */
	size_t nrows, caprows;
	size_t *gone;           /* arena offsets: keys only the table has */
	size_t ngone, capgone;
	size_t *retry;          /* keys failing, pending, staged locally */
	size_t nretry, capretry;
	retl_state_lookup *look;
	retl_buf tmp;
	int store_rows;     /* the local store has rows of the sync */
	int full;           /* the table was empty, the store not: this run
			     * loads the whole cache, as the local diff does */
	int pgver;          /* the server's version (PQserverVersion) */
	struct retl_whsince *since;  /* "changed_since", or NULL */
	int range;          /* this run reads only changed_since's range */
	int ended;          /* the run ended normally: the watermark may move */
};

static void push_off(size_t **v, size_t *n, size_t *cap, size_t off)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*v = retl_realloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = off;
}

/* ---- the run ---- */

static void note_retry(void *ud, const char *key)
{
	struct retl_whdiff *w = ud;
	push_off(&w->retry, &w->nretry, &w->capretry,
		 retl_sync_arena_add(&w->arena, key, strlen(key)));
}

/* kh's cache entry, read from the store when this run has not yet */
static struct retl_cache_entry *load_entry(struct run *r, const char *key,
					   size_t len, int *err)
{
	retl_h128 kh = retl_hash128(key, len);
	int created;
	struct retl_cache_entry *e = retl_cache_upsert(r->cache, kh, &created);
	*err = 0;
	/* a sync with no local rows yet (a first run) has nothing to read;
	 * a full run has them all */
	if (!created || !r->wh->store_rows || r->wh->full)
		return e;
	struct retl_cache_entry got;
	memset(&got, 0, sizeof(got));
	int found = retl_state_lookup_entry(r->wh->look, key, &got, NULL, r->err);
	if (found < 0) {
		*err = 1;
		return e;
	}
	if (found) {
		e->pay = got.pay;
		e->src = got.src;
		e->status = got.status;
		e->mh = got.mh;
		e->sent = got.sent;
		e->cached = 1;
	}
	return e;
}

int retl_whdiff_open(struct run *r)
{
	struct retl_sync_cfg *sc = r->sc;
	if (r->o->plan_out)
		return retl_err_set(r->err, RETL_EXIT_USAGE,
				    "%s: plan --out is not available with \"diff\": \"warehouse\" (a plan file's removals need the keys the warehouse table would get first): use retl plan without --out, or retl run",
				    sc->file);
	struct retl_whdiff *w = retl_calloc(1, sizeof(*w));
	r->wh = w;
	const char *sw = getenv("RETL_TEST_WHDIFF_SQL");
	w->redshift = retl_source_is_redshift(r->src);
	w->portable = w->redshift || (sw && !strcmp(sw, "portable"));
	w->table = retl_whdiff_table(sc);
	/* counted only when rows leave (sync.c removals): a count reads
	 * every local row; here only "any?" */
	w->store_rows = retl_state_count_rows(r->st, sc->name, 1) > 0;
	/* the table must exist before the snapshot reads it */
	PGconn *c = retl_whdiff_connect(sc, r->err);
	if (!c)
		return -1;
	int empty = 0;
	const struct retl_column *cols;
	size_t ncols;
	retl_source_columns(r->src, &cols, &ncols);
	if (retl_whsince_new(sc, cols, ncols, r->seed, &w->since, r->err) < 0) {
		PQfinish(c);
		return -1;
	}
	w->pgver = PQserverVersion(c);
	int rc = retl_whdiff_ensure(sc, c, !w->portable, &empty, r->err);
	PQfinish(c);
	if (rc < 0 || retl_state_lookup_new(r->st, sc->name, &w->look, r->err) < 0)
		return -1;
	/*
	 * An empty table beside a store with rows (dropped, truncated, lost
	 * in a crash): the keys that left the model since it had them would
	 * not come back as removal candidates, so this run compares every
	 * local row, as the local diff does, and fills the table again.
	 */
	if (empty && w->store_rows) {
		w->full = 1;
		if (retl_state_load_cache(r->st, sc->name, &r->cache, r->err) < 0)
			return -1;
		r->cached_rows = retl_cache_count(r->cache);
		retl_log(RETL_LOG_INFO, sc->name, "diff warehouse: table %s is empty: this run compares all %zu local rows and fills it",
			 w->table, r->cached_rows);
		return 0;
	}
	r->cache = retl_cache_new(0);
	if (retl_state_unsynced_keys(r->st, sc->name, note_retry, w, r->err) < 0)
		return -1;
	for (size_t i = 0; i < w->nretry; i++) {
		const char *k = w->arena.ptr + w->retry[i];
		int bad;
		load_entry(r, k, strlen(k), &bad);
		if (bad)
			return -1;
	}
	return 0;
}

/* column i's text in SQL, as COPY would give it (PostgreSQL) or cast */
static void add_col_text(retl_buf *q, const char *name, int portable)
{
	if (portable) {
		retl_buf_adds(q, "CAST(");
		retl_whdiff_ident(q, name);
		retl_buf_adds(q, " AS VARCHAR(65535))");
	} else {
		retl_buf_adds(q, "format('%s', ");
		retl_whdiff_ident(q, name);
		retl_buf_addc(q, ')');
	}
}

/* the engine's key text (sync_diff.c build_key) in SQL */
void retl_whdiff_key_expr(retl_buf *q, const struct retl_sync_cfg *sc, int portable)
{
	if (sc->nkey == 1) {
		add_col_text(q, sc->key[0], portable);
		return;
	}
	retl_buf_adds(q, "'[' || ");
	for (size_t i = 0; i < sc->nkey; i++) {
		if (i)
			retl_buf_adds(q, " || ',' || ");
		if (portable) {
			/* backslash and quote escaped; other control
			 * characters are not (the key check catches them) */
			retl_buf_adds(q, "chr(34) || replace(replace(");
			add_col_text(q, sc->key[i], 1);
			retl_buf_adds(q, ", chr(92), chr(92) || chr(92)), chr(34), "
				      "chr(92) || chr(34)) || chr(34)");
		} else {
			retl_buf_adds(q, "to_json(");
			add_col_text(q, sc->key[i], 0);
			retl_buf_adds(q, ")::text");
		}
	}
	retl_buf_adds(q, " || ']'");
}

/*
 * Types whose hash function (hash_record_extended) tells every change of
 * their text apart: equal values print alike.  Not numeric (1.0 = 1.00),
 * floats (0 = -0), jsonb (its numbers), citext or anything else: those
 * are hashed as text.
 */
static int hash_native(unsigned oid)
{
	static const unsigned ok[] = {
		16, 17, 20, 21, 23, 25, 26, 1042, 1043, 1082, 1083, 1114, 1184, 2950,
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (ok[i] == oid)
			return 1;
	return 0;
}

/* the model's row hash in SQL, salted by the mapping fingerprint */
static void add_hash_expr(struct run *r, retl_buf *q, const struct retl_column *cols,
			  size_t n, int portable)
{
	if (!portable && r->wh->pgver >= 140000) {
		/* PostgreSQL 14+: each value's own hash, no text made (about
		 * half the cost of hashing the columns' text) */
		retl_buf_adds(q, "hash_record_extended(ROW(");
		for (size_t i = 0; i < n; i++) {
			if (i)
				retl_buf_adds(q, ", ");
			retl_whdiff_ident(q, cols[i].name);
			if (!hash_native(cols[i].oid))
				retl_buf_adds(q, "::text");
		}
		retl_buf_addf(q, "), %lld)::text", (long long)r->seed);
		return;
	}
	/* chr(31) between columns, chr(30) for NULL: NULL and '' differ */
	if (portable)
		retl_buf_addf(q, "md5('%llu'", (unsigned long long)r->seed);
	else
		retl_buf_adds(q, "hashtextextended(''");
	for (size_t i = 0; i < n; i++) {
		retl_buf_adds(q, " || chr(31) || coalesce(");
		if (portable) {
			retl_buf_adds(q, "CAST(");
			retl_whdiff_ident(q, cols[i].name);
			retl_buf_adds(q, " AS VARCHAR(65535))");
		} else {
			retl_whdiff_ident(q, cols[i].name);
			retl_buf_adds(q, "::text");
		}
		retl_buf_adds(q, ", chr(30))");
	}
	if (portable)
		retl_buf_addc(q, ')');
	else
		retl_buf_addf(q, ", %lld)::text", (long long)r->seed);
}

/* the model's length without a trailing ';' (it goes inside a WITH) */
static size_t model_text_len(const char *query)
{
	size_t qlen = strlen(query);
	while (qlen && strchr(" \t\r\n;", query[qlen - 1]))
		qlen--;
	return qlen;
}

/*
 * The model's rows whose hash differs from the table's, and (FULL JOIN)
 * the table's keys the model lacks; with changed_since's range, only the
 * rows in the range (LEFT JOIN: the key check proved nothing left).
 */
static void build_query(struct run *r, retl_buf *q)
{
	struct retl_whdiff *w = r->wh;
	const struct retl_column *cols;
	size_t n;
	retl_source_columns(r->src, &cols, &n);
	w->ncols = n;
	retl_buf_adds(q, "WITH retl_m AS (\n");
	retl_buf_add(q, r->sc->query, model_text_len(r->sc->query));
	retl_buf_adds(q, "\n), retl_h AS (SELECT retl_m.*, ");
	retl_whdiff_key_expr(q, r->sc, w->portable);
	retl_buf_adds(q, " AS retl__k, ");
	add_hash_expr(r, q, cols, n, w->portable);
	retl_buf_adds(q, " AS retl__h, 1 AS retl__in FROM retl_m");
	if (w->range) {
		retl_buf_adds(q, " WHERE ");
		retl_whsince_range(w->since, q);
	}
	retl_buf_addf(q, ")\nSELECT retl_h.*, retl_s.key AS retl__s FROM retl_h %s JOIN %s "
		      "retl_s ON retl_s.key = retl_h.retl__k", w->range ? "LEFT" : "FULL",
		      w->table);
	if (!r->o->full_resync)
		retl_buf_adds(q, "\nWHERE retl_h.retl__in IS NULL OR retl_s.key IS NULL "
			      "OR retl_s.row_hash IS NULL OR retl_s.row_hash <> "
			      "retl_h.retl__h");
}

/*
 * 1 when the SQL key k equals the engine's key of the row, 0 when the row
 * has a NULL or empty key part (the engine refuses it), -1 when they
 * differ (a type whose SQL text is not its COPY text).
 */
static int same_key(struct run *r, const struct retl_row *row, const char *k,
		    size_t klen)
{
	struct retl_whdiff *w = r->wh;
	for (size_t i = 0; i < r->sc->nkey; i++)
		if (!row->vals[r->key_idx[i]] || !row->lens[r->key_idx[i]])
			return 0;
	if (!k)
		return -1;
	retl_buf_reset(&w->tmp);
	if (r->sc->nkey == 1) {
		retl_buf_add(&w->tmp, row->vals[r->key_idx[0]], row->lens[r->key_idx[0]]);
	} else {
		retl_buf_addc(&w->tmp, '[');
		for (size_t i = 0; i < r->sc->nkey; i++) {
			if (i)
				retl_buf_addc(&w->tmp, ',');
			retl_buf_add_json_str(&w->tmp, row->vals[r->key_idx[i]],
					      row->lens[r->key_idx[i]]);
		}
		retl_buf_addc(&w->tmp, ']');
	}
	return w->tmp.len == klen && !memcmp(w->tmp.ptr, k, klen) ? 1 : -1;
}

/* the model's part of a COPY text line: up to the n-th tab (a tab inside
 * a value is escaped, so every literal tab separates fields) */
static size_t model_len(const char *raw, size_t len, size_t n)
{
	const char *p = raw, *end = raw + len;
	for (size_t i = 0; i < n; i++) {
		const char *t = memchr(p, '\t', (size_t)(end - p));
		if (!t)
			return len;
		if (i == n - 1)
			return (size_t)(t - raw);
		p = t + 1;
	}
	return len;
}

static int on_wh_row(void *ud, const struct retl_row *row, const char *raw,
		     size_t rawlen)
{
	struct run *r = ud;
	struct retl_whdiff *w = r->wh;
	size_t m = w->ncols;
	int bad;
	if (row->ncols != m + WH_EXTRA) {
		retl_err_set(r->err, RETL_EXIT_SOURCE, "source %s: diff warehouse: %zu columns came back, expected %zu",
			     r->sc->source, row->ncols, m + WH_EXTRA);
		r->stop = 1;
		return 1;
	}
	const char *k = row->vals[m], *h = row->vals[m + 1], *s = row->vals[m + 3];
	size_t klen = row->lens[m];
	if (!row->vals[m + 2]) {        /* a key only the table has */
		if (!s || !row->lens[m + 3])
			return 0;       /* '' is changed_since's watermark */
		push_off(&w->gone, &w->ngone, &w->capgone,
			 retl_sync_arena_add(&w->arena, s, row->lens[m + 3]));
		load_entry(r, s, row->lens[m + 3], &bad);
		return bad ? (r->stop = 1) : 0;
	}
	struct retl_row mr = { .ncols = m, .vals = row->vals, .lens = row->lens };
	size_t mlen = model_len(raw, rawlen, m);
	int same = same_key(r, row, k, klen);
	if (same < 0) {
		retl_err_set(r->err, RETL_EXIT_USAGE,
			     "%s: diff warehouse: the key's text in SQL (%.*s) is not the one retl reads (%.*s): cast the key column%s to text in the query, or use \"diff\": \"local\"",
			     r->sc->file, (int)(klen > 80 ? 80 : klen), k ? k : "NULL",
			     (int)(w->tmp.len > 80 ? 80 : w->tmp.len), w->tmp.ptr,
			     r->sc->nkey > 1 ? "s" : "");
		r->stop = 1;
		return 1;
	}
	if (same) {
		struct retl_cache_entry *e = load_entry(r, k, klen, &bad);
		if (bad)
			return r->stop = 1;
		if (!e->seen) {   /* a duplicate key is the engine's to refuse */
			if (w->nrows == w->caprows) {
				w->caprows = w->caprows ? w->caprows * 2 : 256;
				w->rows = retl_realloc(w->rows, w->caprows * sizeof(*w->rows));
			}
			struct wh_row *wr = &w->rows[w->nrows++];
			wr->key = retl_sync_arena_add(&w->arena, k, klen);
			wr->hash = retl_sync_arena_add(&w->arena, h ? h : "", h ? row->lens[m + 1] : 0);
			wr->src = retl_hash64(raw, mlen, r->seed);
			wr->since = (size_t)-1;
			if (w->since) {
				size_t c = retl_whsince_col(w->since);
				if (row->vals[c])
					wr->since = retl_sync_arena_add(&w->arena, row->vals[c],
									row->lens[c]);
			}
			wr->done = 0;
		}
	}
	return retl_sync_on_row(r, &mr, raw, mlen);
}

int retl_whdiff_stream(struct run *r)
{
	struct retl_whdiff *w = r->wh;
	if (w->since) {
		int rc = w->portable ? 0 : retl_source_jit_off(r->src, r->err);
		if (rc == 0)
			rc = retl_whsince_prepare(w->since, r->src, r->sc->query,
						  model_text_len(r->sc->query), w->table,
						  w->portable, w->redshift,
						  !r->o->full_resync && !w->full,
						  retl_sync_removes(r->sc) || w->nretry > 0,
						  r->err);
		if (rc < 0)
			return rc;
		w->range = rc;
	}
	retl_buf q = RETL_BUF_INIT;
	build_query(r, &q);
	int rc = retl_source_stream(r->src, q.ptr, on_wh_row, r, r->err);
	retl_buf_free(&q);
	retl_log(RETL_LOG_DEBUG, r->sc->name, "diff warehouse: %zu rows returned new or changed, %zu keys only in the table",
		 r->wh->nrows, r->wh->ngone);
	return rc;
}

/* a full run's removal candidate, noted so the table gets it too (until
 * its removal is acknowledged, it must come back) */
static int note_gone(void *ud, const struct retl_state_row *row)
{
	struct retl_sync_gone *g = ud;
	struct retl_whdiff *w = g->r->wh;
	struct retl_cache_entry *e = retl_cache_find(g->r->cache, row->kh);
	if (e && !e->seen)
		push_off(&w->gone, &w->ngone, &w->capgone,
			 retl_sync_arena_add(&w->arena, row->key, strlen(row->key)));
	return retl_sync_on_gone(ud, row);
}

/* removal candidates: the table's keys the model lost, and failing keys
 * the model lost that never reached the table */
int retl_whdiff_gone(struct run *r, struct retl_sync_gone *g)
{
	struct retl_whdiff *w = r->wh;
	if (w->full)
		return retl_state_scan(r->st, r->sc->name, note_gone, g, r->err);
	retl_match_set *done = retl_match_set_new();
	int rc = 0;
	/*
	 * changed_since's range: with failing or waiting keys the key check
	 * ran and proved every key of the table still the model's, and every
	 * failing or waiting key is in the table (marked before the push that
	 * failed it; the run that began changed_since compared every row):
	 * one not returned is in the model below the range, not gone.
	 */
	for (size_t pass = 0; pass < (w->range ? 1u : 2u) && !rc; pass++) {
		size_t n = pass ? w->nretry : w->ngone;
		size_t *v = pass ? w->retry : w->gone;
		for (size_t i = 0; i < n && !rc; i++) {
			const char *k = w->arena.ptr + v[i];
			retl_h128 kh = retl_hash128(k, strlen(k));
			if (!retl_match_set_add(done, kh.lo ^ kh.hi))
				continue;
			rc = retl_state_lookup_row(w->look, k, retl_sync_on_gone, g, r->err);
		}
	}
	retl_match_set_free(done);
	return rc < 0 ? -1 : 0;
}

/*
 * changed_since's watermark row, in the write-back's transaction: only
 * after a run that ended normally, and never past a row it returned and
 * did not get acknowledged (that row must be read again).
 */
static void add_watermark(struct run *r, retl_buf *arena, size_t **vals, size_t *nv,
			  size_t *capv)
{
	struct retl_whdiff *w = r->wh;
	const char *tag, *val;
	if (!w->since || !w->ended)
		return;
	for (size_t i = 0; i < w->nrows; i++)
		if (!w->rows[i].done && w->rows[i].since != (size_t)-1)
			retl_whsince_pin(w->since, w->arena.ptr + w->rows[i].since);
	if (!retl_whsince_marker(w->since, &tag, &val))
		return;
	/* the key and W go through the write-back's arena (arena), the tag
	 * through the run's (w->arena), as to_ptrs reads row hashes */
	push_off(vals, nv, capv, retl_sync_arena_add(arena, "", 0));
	push_off(vals, nv, capv, retl_sync_arena_add(&w->arena, tag, strlen(tag)));
	push_off(vals, nv, capv, (size_t)-1);
	push_off(vals, nv, capv, retl_sync_arena_add(arena, val, strlen(val)));
}

/* the write-back's rows: acknowledged keys with their hashes (vals) and
 * keys with no local row left (dels); strings live in arena */
static void collect(struct run *r, int marking, retl_buf *arena, size_t **vals,
		    size_t *nv, size_t **dels, size_t *nd)
{
	struct retl_whdiff *w = r->wh;
	size_t capv = 0, capd = 0;
	char hex[33];
	/* one read transaction: a lookup each costs SQLite's locking once */
	struct retl_err ignore;
	retl_err_clear(&ignore);
	int txn = retl_state_begin(r->st, &ignore) == 0;
	for (size_t i = 0; i < w->nrows; i++) {
		const char *k = w->arena.ptr + w->rows[i].key;
		struct retl_cache_entry e;
		char *dest = NULL;
		if (w->rows[i].done)
			continue;
		memset(&e, 0, sizeof(e));
		if (retl_state_lookup_entry(w->look, k, &e, &dest, r->err) != 1 ||
		    e.status != RETL_STATUS_OK ||
		    (!retl_cache_same_src(&e, w->rows[i].src) &&
		     r->sc->mode != RETL_MODE_INSERT)) {
			free(dest);
			if (marking) {  /* may be sent: "look again" until acked */
				push_off(vals, nv, &capv, retl_sync_arena_add(arena, k, strlen(k)));
				for (int j = 0; j < 3; j++)
					push_off(vals, nv, &capv, (size_t)-1);
			}
			continue;
		}
		/* acknowledged as this very line (earlier, or by this run) */
		w->rows[i].done = 1;
		snprintf(hex, sizeof(hex), "%016llx%016llx",
			 (unsigned long long)e.pay.hi, (unsigned long long)e.pay.lo);
		push_off(vals, nv, &capv, retl_sync_arena_add(arena, k, strlen(k)));
		push_off(vals, nv, &capv, w->rows[i].hash);
		push_off(vals, nv, &capv, retl_sync_arena_add(arena, hex, 32));
		push_off(vals, nv, &capv, dest ? retl_sync_arena_add(arena, dest, strlen(dest)) :
			 (size_t)-1);
		free(dest);
	}
	for (size_t i = 0; i < w->ngone && marking && w->full; i++) {
		/* a full run's gone keys are not in the table yet */
		const char *k = w->arena.ptr + w->gone[i];
		push_off(vals, nv, &capv, retl_sync_arena_add(arena, k, strlen(k)));
		for (int j = 0; j < 3; j++)
			push_off(vals, nv, &capv, (size_t)-1);
	}
	for (size_t i = 0; i < w->ngone && !marking; i++) {
		const char *k = w->arena.ptr + w->gone[i];
		struct retl_cache_entry e;
		if (retl_state_lookup_entry(w->look, k, &e, NULL, r->err) == 0) {
			push_off(dels, nd, &capd, retl_sync_arena_add(arena, k, strlen(k)));
			push_off(dels, nd, &capd, (size_t)-1);
			push_off(dels, nd, &capd, (size_t)-1);
			push_off(dels, nd, &capd, (size_t)-1);
		}
	}
	if (txn)
		retl_state_rollback(r->st);   /* it wrote nothing */
	if (!marking)
		add_watermark(r, arena, vals, nv, &capv);
}

/* offsets to pointers: -1 is NULL; hashes live in the run's arena */
static const char **to_ptrs(struct run *r, const retl_buf *arena,
			    const size_t *v, size_t n)
{
	const char **p = retl_calloc(n ? n : 1, sizeof(*p));
	for (size_t i = 0; i < n; i++) {
		if (v[i] == (size_t)-1)
			p[i] = NULL;
		else if (i % 4 == 1)
			p[i] = r->wh->arena.ptr + v[i];
		else
			p[i] = arena->ptr + v[i];
	}
	return p;
}

/*
 * One write of the table: marking (before the push), every returned row
 * the local store does not show acknowledged as this run's line gets a
 * NULL row hash (it may be sent: until acknowledged, it must come back),
 * the others their row hash at once; after the push, the rows acknowledged
 * since get theirs, and keys with no local row left are deleted.
 */
static int wh_sync_table(struct run *r, int marking, struct retl_err *err)
{
	retl_buf arena = RETL_BUF_INIT;
	size_t *vals = NULL, *dels = NULL, nv = 0, nd = 0;
	collect(r, marking, &arena, &vals, &nv, &dels, &nd);
	const char **pv = to_ptrs(r, &arena, vals, nv);
	const char **pd = to_ptrs(r, &arena, dels, nd);
	PGconn *c = (nv || nd) ? retl_whdiff_connect(r->sc, err) : NULL;
	int rc = (nv || nd) && !c ? -1 : 0;
	if (c && nv)
		rc = retl_whdiff_write(r->sc, c, r->wh->table, r->wh->portable,
				       r->wh->redshift, pv, nv / 4, 0,
				       marking && r->wh->full, err);
	if (c && nd && rc == 0)
		rc = retl_whdiff_write(r->sc, c, r->wh->table, r->wh->portable,
				       r->wh->redshift, pd, nd / 4, 1, 0, err);
	if (rc == 0 && (nv || nd))
		retl_log(RETL_LOG_DEBUG, r->sc->name, "diff warehouse: %zu keys %s, %zu deleted",
			 nv / 4, marking ? "marked before the push" : "written back", nd / 4);
	/* many rows written (a first fill, a switch): statistics now; a
	 * failure costs a plan, not the run */
	if (rc == 0 && c && !r->wh->portable &&
	    (r->wh->full || nv / 4 >= WH_ANALYZE_ROWS)) {
		struct retl_err aerr;
		retl_err_clear(&aerr);
		if (retl_whdiff_analyze(r->sc, c, r->wh->table, &aerr) < 0)
			retl_log(RETL_LOG_WARN, r->sc->name, "%s", aerr.msg);
	}
	PQfinish(c);
	free(pv);
	free(pd);
	free(vals);
	free(dels);
	retl_buf_free(&arena);
	return rc;
}

/* before the push (a failure stops the run: nothing was sent) */
int retl_whdiff_mark(struct run *r)
{
	if (r->o->plan || (!r->wh->nrows && !r->wh->ngone))
		return 0;
	int rc = wh_sync_table(r, 1, r->err);
	retl_testpoint("whdiff-marked");
	return rc;
}

/*
 * After the push.  A failure here is a warning: those rows come back next
 * run and are found unchanged locally.
 */
void retl_whdiff_end(struct run *r, int ended)
{
	struct retl_whdiff *w = r->wh;
	if (!w || r->o->plan || (!w->nrows && !w->ngone && !(w->since && ended)))
		return;
	w->ended = ended;
	retl_testpoint("whdiff-writeback");
	struct retl_err err;
	retl_err_clear(&err);
	if (wh_sync_table(r, 0, &err) < 0)
		retl_log(RETL_LOG_WARN, r->sc->name, "%s (the rows come back next run, found unchanged)",
			 err.msg);
	retl_testpoint("whdiff-written");
}

void retl_whdiff_free(struct run *r)
{
	struct retl_whdiff *w = r->wh;
	if (!w)
		return;
	retl_state_lookup_free(w->look);
	retl_whsince_free(w->since);
	free(w->table);
	free(w->rows);
	free(w->gone);
	free(w->retry);
	retl_buf_free(&w->arena);
	retl_buf_free(&w->tmp);
	free(w);
	r->wh = NULL;
}
