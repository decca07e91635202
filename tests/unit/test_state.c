#include <fcntl.h>
/*
 * test_state.c - the state store: file modes, schema, row semantics, the
 * run lock across processes, run history and reports, scan and reset, the
 * cache image (stale after any row write, failures included) and the
 * "handed over" mark of a send.
 *
 * With RETL_TEST_STATE_URL set (a postgresql:// URL: tests/integration/
 * test_state_pg.py), the same tests run against a store in PostgreSQL,
 * except those about the file (modes, WAL, the marker, migrating an old
 * file); the lock's messages there name the host too.
 */
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "state.h"
#include "test.h"

static char dir[64], db_path[128];
static const char *pg_url;      /* RETL_TEST_STATE_URL, or NULL */

/* the value's text through libpq, as `psql` would see the store */
static char *pg_text(const char *sql, int *null)
{
	PGconn *c = PQconnectdb(pg_url);
	char *v = NULL;

	*null = 1;
	if (PQstatus(c) == CONNECTION_OK) {
		PQclear(PQexec(c, "SET search_path TO retl"));
		PQclear(PQexec(c, "SET client_min_messages TO warning"));
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 &&
		    !PQgetisnull(r, 0, 0)) {
			v = retl_strdup(PQgetvalue(r, 0, 0));
			*null = 0;
		} else if (PQresultStatus(r) != PGRES_TUPLES_OK &&
			   PQresultStatus(r) != PGRES_COMMAND_OK) {
			fprintf(stderr, "pg %s: %s\n", sql, PQerrorMessage(c));
		}
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

/* a second connection, as `sqlite3 state.db` would see the store */
static long long q_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	long long v = -999;

	if (pg_url) {
		int null;
		char *t = pg_text(sql, &null);
		if (t)
			v = !strcmp(t, "t") ? 1 : !strcmp(t, "f") ? 0 :
			    strtoll(t, NULL, 10);
		else if (null)
			v = -1;
		free(t);
		return v;
	}
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_type(s, 0) == SQLITE_NULL ?
				-1 : sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	} else {
		fprintf(stderr, "q_int %s: %s\n", sql, sqlite3_errmsg(db));
	}
	sqlite3_close(db);
	return v;
}

static char *q_text(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	char *v = NULL;

	if (pg_url) {
		int null;
		return pg_text(sql, &null);
	}
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
			v = retl_strdup((const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	return v;
}

/* "(pid N)" in the file store's lock messages, "(host H, pid N)" in
 * PostgreSQL's */
static const char *holder(long pid)
{
	static char b[2][320];
	static int i;
	char host[256];

	i ^= 1;
	if (!pg_url) {
		snprintf(b[i], sizeof(b[i]), "(pid %ld)", pid);
		return b[i];
	}
	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(b[i], sizeof(b[i]), "(host %s, pid %ld)", host, pid);
	return b[i];
}

static int mode_of(const char *path)
{
	struct stat sb;

	return stat(path, &sb) < 0 ? -1 : (int)(sb.st_mode & 0777);
}

static struct retl_state_rec rec(const char *key, uint64_t pay, uint64_t src,
				 const char *dest_id, const char *reason)
{
	struct retl_state_rec r;

	memset(&r, 0, sizeof(r));
	r.key = key;
	r.kh = retl_hash128(key, strlen(key));
	r.pay.lo = pay;
	r.pay.hi = pay ? 7 : 0;
	r.src = src;
	r.dest_id = dest_id;
	r.reason = reason;
	return r;
}

static int iso_ms(const char *s)
{
	/* 2026-11-25T01:02:03.456Z */
	return s && strlen(s) == 24 && s[4] == '-' && s[10] == 'T' &&
	       s[19] == '.' && s[23] == 'Z';
}

static void test_open(void)
{
	struct retl_err err;
	retl_state *st;
	char path[160];
	FILE *f;

	retl_err_clear(&err);
	CHECK(retl_state_open(&st, db_path, &err) == 0);
	CHECK(mode_of(db_path) == 0600);
	snprintf(path, sizeof(path), "%s/sub", dir);
	CHECK(mode_of(path) == 0700);
	CHECK(q_int("SELECT value FROM meta WHERE key = 'schema_version'") == 10);
	{
		char *jm = q_text("PRAGMA journal_mode");
		CHECK_STR(jm, "wal");
		free(jm);
	}
	snprintf(path, sizeof(path), "%s-wal", db_path);
	CHECK(mode_of(path) == 0600);
	snprintf(path, sizeof(path), "%s-shm", db_path);
	CHECK(mode_of(path) == 0600);
	retl_state_close(st);

	/* reopening migrates nothing and loosened modes are tightened */
	chmod(db_path, 0644);
	CHECK(retl_state_open(&st, db_path, &err) == 0);
	CHECK(mode_of(db_path) == 0600);
	/* schema_version and store_id (state_marker.c) */
	CHECK(q_int("SELECT count(*) FROM meta") == 2);
	retl_state_close(st);

	/* not a database: a message naming the file, the state store's own
	 * exit code (6), not a usage error's */
	snprintf(path, sizeof(path), "%s/junk.db", dir);
	f = fopen(path, "w");
	fputs("this is not an SQLite database, not even close to one........"
	      "................................................................",
	      f);
	fclose(f);
	CHECK(retl_state_open(&st, path, &err) < 0);
	CHECK(st == NULL);
	CHECK(err.code == RETL_EXIT_STATE);
	CHECK(strstr(err.msg, "state store ") == err.msg);
	CHECK(strstr(err.msg, "is damaged (file is not a database)") != NULL);
	CHECK(strstr(err.msg, path) != NULL);

	/* a future schema is refused rather than misread */
	{
		sqlite3 *db;
		snprintf(path, sizeof(path), "%s/future.db", dir);
		sqlite3_open(path, &db);
		sqlite3_exec(db, "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
			     "INSERT INTO meta VALUES('schema_version', 99)",
			     NULL, NULL, NULL);
		sqlite3_close(db);
		retl_err_clear(&err);
		CHECK(retl_state_open(&st, path, &err) < 0);
		CHECK(strstr(err.msg, "schema version 99") != NULL);
		CHECK(err.code == RETL_EXIT_USAGE);   /* a newer retl's: setup */
	}
}

static void test_rows(retl_state *st)
{
	struct retl_err err;
	struct retl_state_rec a = rec("a", 11, 101, "ID-A", NULL);
	struct retl_state_rec b = rec("b", 22, 202, NULL, NULL);
	struct retl_state_rec r;
	retl_cache *c;
	struct retl_cache_entry *e;
	char *s;

	retl_err_clear(&err);
	a.run_id = 7;
	a.change = 1;
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, "s1", &a, &err) == 0);
	CHECK(retl_state_ack(st, "s1", &b, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(q_int("SELECT count(*) FROM cache WHERE sync = 's1'") == 2);
	CHECK(q_int("SELECT status FROM cache WHERE key = 'a'") == 1);
	CHECK(q_int("SELECT attempts FROM cache WHERE key = 'a'") == 0);
	/* a synced row says its run and change; it stores no timestamps
	 * and no key hash (schema 6: bytes per row) */
	CHECK(q_int("SELECT last_run FROM cache WHERE key = 'a'") == 7);
	CHECK(q_int("SELECT last_change FROM cache WHERE key = 'a'") == 1);
	CHECK(q_int("SELECT count(*) FROM cache WHERE key = 'a' AND created_at IS NULL "
		    "AND updated_at IS NULL AND kh_lo IS NULL") == 1);
	s = retl_state_dest_id(st, "s1", "a");
	CHECK_STR(s, "ID-A");
	free(s);
	CHECK(retl_state_dest_id(st, "s1", "b") == NULL);
	CHECK(retl_state_dest_id(st, "s1", "zz") == NULL);
	CHECK(retl_state_dest_id(st, "other", "a") == NULL);

	/* a rollback leaves nothing behind */
	CHECK(retl_state_begin(st, &err) == 0);
	r = rec("ghost", 1, 1, NULL, NULL);
	CHECK(retl_state_ack(st, "s1", &r, &err) == 0);
	retl_state_rollback(st);
	retl_state_rollback(st);        /* none open: harmless */
	CHECK(q_int("SELECT count(*) FROM cache WHERE key = 'ghost'") == 0);

	/* fail twice: attempts count, payload kept, source cleared, first
	 * failure kept */
	r = rec("a", 0, 0, NULL, "400 INVALID_EMAIL");
	CHECK(retl_state_fail(st, "s1", &r, &err) == 0);
	s = q_text("SELECT first_failed_at FROM cache WHERE key = 'a'");
	CHECK(iso_ms(s));
	usleep(3000);
	r.reason = "400 STILL_INVALID";
	CHECK(retl_state_fail(st, "s1", &r, &err) == 0);
	CHECK(q_int("SELECT status FROM cache WHERE key = 'a'") == 2);
	CHECK(q_int("SELECT attempts FROM cache WHERE key = 'a'") == 2);
	CHECK(q_int("SELECT pay_lo FROM cache WHERE key = 'a'") == 11);
	CHECK(q_int("SELECT src FROM cache WHERE key = 'a'") == -1);
	{
		char *t = q_text("SELECT first_failed_at FROM cache "
				 "WHERE key = 'a'");
		char *u = q_text("SELECT updated_at FROM cache WHERE key = 'a'");
		char *l = q_text("SELECT last_error FROM cache WHERE key = 'a'");
		CHECK_STR(t, s);
		CHECK(u && strcmp(u, s) > 0);
		CHECK_STR(l, "400 STILL_INVALID");
		free(t);
		free(u);
		free(l);
	}
	free(s);
	s = retl_state_dest_id(st, "s1", "a");
	CHECK_STR(s, "ID-A");
	free(s);

	/* a new key that fails: inserted with no payload */
	r = rec("c", 0, 0, NULL, "422 bad");
	CHECK(retl_state_fail(st, "s1", &r, &err) == 0);
	CHECK(q_int("SELECT attempts FROM cache WHERE key = 'c'") == 1);
	CHECK(q_int("SELECT pay_lo FROM cache WHERE key = 'c'") == -1);

	/* set_src moves only the source hash */
	r = rec("b", 0, 999, NULL, NULL);
	CHECK(retl_state_set_src(st, "s1", &r, &err) == 0);
	CHECK(q_int("SELECT src FROM cache WHERE key = 'b'") == 999);
	CHECK(q_int("SELECT pay_lo FROM cache WHERE key = 'b'") == 22);

	/* pending: new key with no payload; existing key keeps its payload */
	r = rec("d", 0, 0, NULL, NULL);
	CHECK(retl_state_pending(st, "s1", &r, &err) == 0);
	r = rec("b", 0, 0, NULL, NULL);
	CHECK(retl_state_pending(st, "s1", &r, &err) == 0);
	CHECK(q_int("SELECT status FROM cache WHERE key = 'b'") == 3);
	CHECK(q_int("SELECT pay_lo FROM cache WHERE key = 'b'") == 22);
	CHECK(q_int("SELECT status FROM cache WHERE key = 'd'") == 3);

	/* ack after failures clears them and keeps the stored dest id; hashes
	 * with the top bit set survive the int64 round trip */
	r = rec("a", 0, 0, NULL, NULL);
	r.pay.lo = UINT64_MAX;
	r.pay.hi = 0x8000000000000001ull;
	r.src = 0xfedcba9876543210ull;
	CHECK(retl_state_ack(st, "s1", &r, &err) == 0);
	CHECK(q_int("SELECT attempts FROM cache WHERE key = 'a'") == 0);
	CHECK(q_int("SELECT last_error IS NULL AND first_failed_at IS NULL "
		    "FROM cache WHERE key = 'a'") == 1);
	s = retl_state_dest_id(st, "s1", "a");
	CHECK_STR(s, "ID-A");
	free(s);

	/* load_cache */
	CHECK(retl_state_load_cache(st, "s1", &c, &err) == 0);
	CHECK(retl_cache_count(c) == 4);
	e = retl_cache_find(c, r.kh);
	CHECK(e && e->status == RETL_STATUS_OK && e->cached == 1 && !e->seen);
	CHECK(e && e->pay.lo == UINT64_MAX && e->pay.hi == 0x8000000000000001ull);
	CHECK(e && retl_cache_same_src(e, 0xfedcba9876543210ull));
	r = rec("b", 0, 0, NULL, NULL);
	e = retl_cache_find(c, r.kh);
	CHECK(e && e->status == RETL_STATUS_PENDING && e->src == 999 &&
	      e->pay.lo == 22 && e->pay.hi == 7);
	r = rec("c", 0, 0, NULL, NULL);
	e = retl_cache_find(c, r.kh);
	CHECK(e && e->status == RETL_STATUS_FAILED && !e->src &&
	      retl_h128_zero(e->pay));
	retl_cache_free(c);
	CHECK(retl_state_load_cache(st, "nothing", &c, &err) == 0);
	CHECK(retl_cache_count(c) == 0);
	retl_cache_free(c);

	/* forget */
	CHECK(retl_state_forget(st, "s1", "d", &err) == 0);
	CHECK(retl_state_forget(st, "s1", "never", &err) == 0);
	CHECK(q_int("SELECT count(*) FROM cache WHERE sync = 's1'") == 3);
}

struct report {
	retl_buf text;
	int n;
};

static int on_failure(void *ud, const struct retl_failure_rec *f)
{
	struct report *rp = ud;

	retl_buf_addf(&rp->text, "%s|%s|%d|%s|%d|%d;", f->key ? f->key : "-",
		      f->outcome, f->attempts, f->reason ? f->reason : "-",
		      iso_ms(f->since), iso_ms(f->last));
	rp->n++;
	return 0;
}

/* checks p1's "since" against the time it is given */
struct since_ctx {
	const char *want;
	int ok;
};

static int on_since_p1(void *ud, const struct retl_failure_rec *f)
{
	struct since_ctx *sc = ud;

	if (f->key && !strcmp(f->key, "p1"))
		sc->ok += f->since && !strcmp(f->since, sc->want);
	return 0;
}

static int on_run(void *ud, const struct retl_run_rec *r)
{
	struct report *rp = ud;

	retl_buf_addf(&rp->text, "%s|%s|%s|%d|%ld|%ld|%s|%d|%d;", r->sync,
		      r->status, r->ended ? "ended" : "open", r->exit_code,
		      r->c.read, r->c.http_429, r->message ? r->message : "-",
		      iso_ms(r->started), r->seconds >= 0);
	rp->n++;
	return rp->n >= 100;
}

/* the reason of a row left pending with no "failed" outcome */
#define PENDING_WHY "a create was sent but no answer was recorded before " \
	"the run ended; the next run looks the record up before creating " \
	"it again"
#define STAGED_WHY "handed to the destination, but its outcome was not " \
	"read before the run ended; the next run reads it or sends the row " \
	"again"

static void test_runs(retl_state *st)
{
	struct retl_err err;
	struct retl_run_counts c = { 0 };
	struct report rp = { RETL_BUF_INIT, 0 };
	int64_t id, id2;
	int i;

	retl_err_clear(&err);
	CHECK(retl_state_run_begin(st, "s1", &id, &err) == 0);
	CHECK(retl_state_outcome(st, id, "a", "failed", "400", &err) == 0);
	CHECK(retl_state_outcome(st, id, NULL, "rejected", "null key", &err)
	      == 0);
	CHECK(retl_state_outcome(st, id, "c", "rejected", "dup", &err) == 0);
	CHECK(retl_state_outcome(st, id, "x", "rejected", "bad email", &err)
	      == 0);
	CHECK(retl_state_outcome(st, id, "b", "added", NULL, &err) == 0);
	/* a run still going is not "the last run" for failures */
	CHECK(retl_state_failures(st, "s1", on_failure, &rp, &err) == 0);
	CHECK_STR(rp.text.ptr, "c|failed|1|422 bad|1|1;");
	retl_buf_reset(&rp.text);
	rp.n = 0;
	c.read = 42;
	c.http_429 = 3;
	CHECK(retl_state_run_end(st, id, RETL_RUN_REJECTED, 1, &c, "1 row failed",
				 &err) == 0);
	CHECK(q_int("SELECT seconds >= 0 AND seconds < 10 FROM runs") == 1);
	CHECK(retl_state_failures(st, "s1", on_failure, &rp, &err) == 0);
	/* b: left pending by test_rows, and this run has ended */
	CHECK_STR(rp.text.ptr, "c|failed|1|422 bad|1|1;"
		  "b|pending|1|" PENDING_WHY "|1|1;"
		  "-|rejected|1|null key|1|1;x|rejected|1|bad email|1|1;");
	retl_buf_reset(&rp.text);
	rp.n = 0;
	CHECK(retl_state_run_end(st, 99999, "ok", 0, NULL, NULL, &err) < 0);

	/* other syncs, and the status view; a run going holds its lock */
	CHECK(retl_state_lock(st, "b-sync", &err) == 0);
	CHECK(retl_state_run_begin(st, "b-sync", &id2, &err) == 0);
	CHECK(retl_state_run_begin(st, "a-sync", &id, &err) == 0);
	CHECK(retl_state_run_end(st, id, "ok", 0, NULL, NULL, &err) == 0);
	CHECK(retl_state_runs(st, NULL, 0, on_run, &rp, &err) == 0);
	CHECK_STR(rp.text.ptr, "a-sync|ok|ended|0|0|0|-|1|1;"
		  "b-sync|running|open|-1|0|0|-|1|1;"
		  "s1|rows rejected|ended|1|42|3|1 row failed|1|1;");
	retl_buf_reset(&rp.text);
	rp.n = 0;
	CHECK(retl_state_run_end(st, id2, "ok", 0, NULL, NULL, &err) == 0);
	retl_state_unlock(st, "b-sync");

	/* history: newest first; outcomes pruned to the latest 20 runs */
	for (i = 0; i < 25; i++) {
		CHECK(retl_state_run_begin(st, "s1", &id, &err) == 0);
		CHECK(retl_state_outcome(st, id, "k", "added", NULL, &err) == 0);
		c.read = i;
		CHECK(retl_state_run_end(st, id, "ok", 0, &c, NULL, &err) == 0);
	}
	CHECK(q_int("SELECT count(*) FROM runs WHERE sync = 's1'") == 26);
	CHECK(q_int("SELECT count(DISTINCT run_id) FROM outcomes") == 20);
	CHECK(retl_state_runs(st, "s1", 2, on_run, &rp, &err) == 0);
	CHECK_STR(rp.text.ptr, "s1|ok|ended|0|24|3|-|1|1;"
		  "s1|ok|ended|0|23|3|-|1|1;");
	retl_buf_reset(&rp.text);
	rp.n = 0;
	CHECK(retl_state_runs(st, "s1", 0, on_run, &rp, &err) == 0);
	CHECK(rp.n == 26);
	/* the callback stops the walk with its own value */
	rp.n = 98;
	CHECK(retl_state_runs(st, "s1", 0, on_run, &rp, &err) == 1);
	CHECK(rp.n == 100);
	/* the latest finished run rejected nothing: only the cache's rows */
	retl_buf_reset(&rp.text);
	CHECK(retl_state_failures(st, "s1", on_failure, &rp, &err) == 0);
	CHECK_STR(rp.text.ptr, "c|failed|1|422 bad|1|1;"
		  "b|pending|1|" PENDING_WHY "|1|1;");
	retl_buf_free(&rp.text);
	retl_err_clear(&err);
	CHECK(retl_state_outcome(st, 424242, "k", "added", NULL, &err) < 0);
	CHECK(err.code == 2 && strstr(err.msg, "state store ") == err.msg);
	CHECK(id2 > 0);
}

struct scan_ctx {
	retl_state *st;
	int n, bad, forgot;
	char last[32];
};

static int on_row(void *ud, const struct retl_state_row *row)
{
	const char *key = row->key, *dest = row->dest_id;
	retl_h128 kh = row->kh;
	struct scan_ctx *sc = ud;
	struct retl_err err;
	retl_h128 want = retl_hash128(key, strlen(key));

	if (!retl_h128_eq(kh, want) || strcmp(key, sc->last) <= 0)
		sc->bad++;
	if (dest && strcmp(dest + 3, key))
		sc->bad++;
	snprintf(sc->last, sizeof(sc->last), "%s", key);
	if (sc->n++ % 2 == 0) {
		if (retl_state_forget(sc->st, "big", key, &err) < 0)
			sc->bad++;
		sc->forgot++;
	}
	return 0;
}

static int stop_at_3(void *ud, const struct retl_state_row *row)
{
	return ++*(int *)ud == 3 ? -7 : 0;
}

static void test_scan_reset(retl_state *st)
{
	struct retl_err err;
	struct scan_ctx sc = { st, 0, 0, 0, "" };
	char key[32], dest[40];
	int i, n = 0;

	retl_err_clear(&err);
	CHECK(retl_state_begin(st, &err) == 0);
	for (i = 0; i < 2500; i++) {
		struct retl_state_rec r;

		snprintf(key, sizeof(key), "k%05d", i);
		snprintf(dest, sizeof(dest), "ID-%s", key);
		r = rec(key, (uint64_t)i + 1, (uint64_t)i + 1,
			i % 3 ? dest : NULL, NULL);
		if (retl_state_ack(st, "big", &r, &err) < 0)
			break;
	}
	CHECK(i == 2500);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(retl_state_scan(st, "big", on_row, &sc, &err) == 0);
	CHECK(sc.n == 2500);
	CHECK(sc.bad == 0);
	CHECK(sc.forgot == 1250);
	CHECK(q_int("SELECT count(*) FROM cache WHERE sync = 'big'") == 1250);
	CHECK(retl_state_scan(st, "big", stop_at_3, &n, &err) == -7);
	CHECK(n == 3);
	n = 0;
	CHECK(retl_state_scan(st, "empty", stop_at_3, &n, &err) == 0);
	CHECK(n == 0);

	CHECK(retl_state_reset(st, "big", &err) == 0);
	CHECK(q_int("SELECT count(*) FROM cache WHERE sync = 'big'") == 0);
	CHECK(q_int("SELECT count(*) FROM cache WHERE sync = 's1'") == 3);
}

/* the child reports through a pipe: "<rc> <message>" */
static void lock_child(retl_state *st, const char *sync, int wfd, int hold)
{
	struct retl_err err;
	char line[RETL_ERR_MSG_MAX + 16];
	int rc, n;

	retl_err_clear(&err);
	/* a PostgreSQL session is not shared across fork: the child's own */
	if (pg_url && retl_state_open(&st, db_path, &err) < 0)
		_exit(4);
	rc = retl_state_lock(st, sync, &err);
	n = snprintf(line, sizeof(line), "%d %d %s", rc, err.code, err.msg);
	if (write(wfd, line, (size_t)n) < 0)
		_exit(3);
	close(wfd);
	if (hold && rc == 0)
		for (;;)
			pause();
	_exit(0);
}

static pid_t spawn_locker(retl_state *st, const char *sync, int hold,
			  char *out, size_t outsz)
{
	int p[2];
	pid_t pid;
	ssize_t n;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		/* only the lock: SQLite must not be used across fork */
		lock_child(st, sync, p[1], hold);
	}
	close(p[1]);
	n = read(p[0], out, outsz - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	return pid;
}

static void test_lock(retl_state *st)
{
	struct retl_err err;
	char got[RETL_ERR_MSG_MAX + 16], want[128], path[160];
	pid_t pid;
	int status;

	retl_err_clear(&err);
	CHECK(retl_state_lock(st, "orders", &err) == 0);
	CHECK(retl_state_lock(st, "contacts", &err) == 0);
	snprintf(path, sizeof(path), "%s.orders.lock", db_path);
	CHECK(pg_url || mode_of(path) == 0600);

	/* same process, same sync */
	CHECK(retl_state_lock(st, "orders", &err) < 0);
	snprintf(want, sizeof(want), "sync orders is already running (pid %ld)",
		 (long)getpid());
	CHECK_STR(err.msg, want);
	CHECK(err.code == 2);

	/* another process */
	pid = spawn_locker(st, "orders", 0, got, sizeof(got));
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	snprintf(want, sizeof(want), "-1 2 sync orders is already running "
		 "%s", holder((long)getpid()));
	CHECK_STR(got, want);

	/* released on unlock */
	retl_state_unlock(st, "orders");
	retl_state_unlock(st, "never-locked");
	pid = spawn_locker(st, "orders", 0, got, sizeof(got));
	waitpid(pid, &status, 0);
	CHECK(!strncmp(got, "0 0", 3));
	CHECK(retl_state_lock(st, "orders", &err) == 0);

	/* a holder killed with SIGKILL leaves no stale lock */
	pid = spawn_locker(st, "killme", 1, got, sizeof(got));
	CHECK(!strncmp(got, "0 0", 3));
	retl_err_clear(&err);
	CHECK(retl_state_lock(st, "killme", &err) < 0);
	snprintf(want, sizeof(want), "sync killme is already running %s",
		 holder((long)pid));
	CHECK_STR(err.msg, want);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CHECK(retl_state_lock(st, "killme", &err) == 0);

	/* names that are not file-name safe still get their own lock */
	CHECK(retl_state_lock(st, "../evil/x", &err) == 0);
	snprintf(path, sizeof(path), "%s.%%2E.%%2Fevil%%2Fx.lock", db_path);
	CHECK(pg_url || mode_of(path) == 0600);
	/* close releases everything still held */
}

/* the cache image: used while current, never when stale or torn */
static int cache_has(retl_cache *c, const char *key, uint64_t pay)
{
	struct retl_cache_entry *e = retl_cache_find(c, retl_hash128(key, strlen(key)));
	return e && e->pay.lo == pay && e->status == RETL_STATUS_OK && e->cached;
}

/*
 * A run whose process is gone: shown "abandoned" by the reports as soon as
 * nobody holds its lock (written nowhere), recorded "abandoned" by the
 * next holder of the lock, with when that was noticed and no exit code.
 */
static void test_abandoned(retl_state *st)
{
	struct retl_err err;
	struct report rp = { RETL_BUF_INIT, 0 };
	struct retl_state_stats sum;
	char want[256], sql[256];
	int64_t done, dead, other;
	char *msg;

	retl_err_clear(&err);
	CHECK(retl_state_lock(st, "ab", &err) == 0);
	CHECK(retl_state_run_begin(st, "ab", &done, &err) == 0);
	CHECK(retl_state_run_end(st, done, RETL_RUN_OK, 0, NULL, NULL, &err) == 0);
	CHECK(retl_state_run_begin(st, "ab", &dead, &err) == 0);
	CHECK(retl_state_run_allow(st, dead, 250, &err) == 0);
	CHECK(retl_state_lock(st, "ab-other", &err) == 0);
	CHECK(retl_state_run_begin(st, "ab-other", &other, &err) == 0);

	/* the lock held (by this process, through another file): running */
	CHECK(retl_state_lock_held(st, "ab") == 1);
	CHECK(retl_state_runs(st, "ab", 1, on_run, &rp, &err) == 0);
	CHECK_STR(rp.text.ptr, "ab|running|open|-1|0|0|-|1|1;");
	retl_buf_reset(&rp.text);

	/* its process "dies": the lock goes, the row stays */
	retl_state_unlock(st, "ab");
	CHECK(retl_state_lock_held(st, "ab") == 0);
	CHECK(retl_state_lock_held(st, "never-locked") == 0);
	CHECK(retl_state_runs(st, "ab", 0, on_run, &rp, &err) == 0);
	CHECK_STR(rp.text.ptr, "ab|abandoned|open|-1|0|0|abandoned: the run's "
		  "process is gone (nothing holds the sync's lock); the next "
		  "run, apply or reset of the sync records it|1|1;"
		  "ab|ok|ended|0|0|0|-|1|1;");
	retl_buf_reset(&rp.text);
	snprintf(sql, sizeof(sql), "SELECT status = 'running' FROM runs "
		 "WHERE id = %lld", (long long)dead);
	CHECK(q_int(sql) == 1);         /* a report writes nothing */

	/* the next holder records it; other syncs' runs are not touched */
	CHECK(retl_state_lock(st, "ab", &err) == 0);
	snprintf(sql, sizeof(sql), "SELECT status = 'abandoned' AND exit_code "
		 "IS NULL AND seconds IS NULL AND ended_at >= started_at AND "
		 "allow_removals = 250 FROM runs WHERE id = %lld", (long long)dead);
	CHECK(q_int(sql) == 1);
	snprintf(sql, sizeof(sql), "SELECT message FROM runs WHERE id = %lld",
		 (long long)dead);
	msg = q_text(sql);
	snprintf(want, sizeof(want), "abandoned: the run's process (pid %ld, the "
		 "lock's last holder) was gone when pid %ld took the sync's "
		 "lock; the end time is when that was noticed, not when the run "
		 "ended.", (long)getpid(), (long)getpid());
	CHECK(msg && !strncmp(msg, want, strlen(want)));
	free(msg);
	snprintf(sql, sizeof(sql), "SELECT status || exit_code FROM runs WHERE "
		 "id = %lld", (long long)done);
	msg = q_text(sql);
	CHECK_STR(msg, "ok0");
	free(msg);
	snprintf(sql, sizeof(sql), "SELECT status FROM runs WHERE id = %lld",
		 (long long)other);
	msg = q_text(sql);
	CHECK_STR(msg, "running");
	free(msg);

	/* /metrics: counted by status; no duration, the run before tells */
	CHECK(retl_state_stats_read(st, &sum, &err) == 0);
	for (size_t i = 0; i < sum.n; i++) {
		if (strcmp(sum.s[i].sync, "ab"))
			continue;
		CHECK(sum.s[i].nruns == 2);
		CHECK_STR(sum.s[i].runs[0].status, "abandoned");
		CHECK(sum.s[i].last_duration >= 0);
	}
	retl_state_stats_free(&sum);
	retl_state_unlock(st, "ab");
	CHECK(retl_state_run_end(st, other, RETL_RUN_OK, 0, NULL, NULL, &err) == 0);
	retl_state_unlock(st, "ab-other");
	retl_buf_free(&rp.text);
}

static void test_image(retl_state *st)
{
	struct retl_err err;
	retl_cache *c;
	char image[256];
	const char *sync = "img";

	if (pg_url)     /* the local directory: .retl in the working one */
		snprintf(image, sizeof(image), "%s/.retl/pgstate.img.cache", dir);
	else
		snprintf(image, sizeof(image), "%s.img.cache", db_path);
	CHECK(retl_state_begin(st, &err) == 0);
	for (int i = 0; i < 1000; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		struct retl_state_rec r = rec(key, 100 + (uint64_t)i,
					      0x8000000000000000ull + (uint64_t)i,
					      NULL, NULL);
		CHECK(retl_state_ack(st, sync, &r, &err) == 0 || !fprintf(stderr, "%s\n", err.msg));
	}
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(access(image, F_OK) != 0);
	CHECK(retl_state_save_image(st, sync, &err) == 0);
	CHECK(access(image, F_OK) == 0);
	CHECK(mode_of(image) == 0600);

	/* current: loaded from the image, same content: every row's payload
	 * hash, source-line hash (unchanged rows are skipped by it: lost, every
	 * row is mapped again at every run) and status */
	CHECK(retl_state_load_cache(st, sync, &c, &err) == 0);
	CHECK(retl_cache_count(c) == 1000);
	CHECK(cache_has(c, "k0", 100) && cache_has(c, "k999", 1099));
	int same = 0;
	for (int i = 0; i < 1000; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		struct retl_cache_entry *e = retl_cache_find(c, retl_hash128(key, strlen(key)));
		same += e && retl_cache_same_src(e, 0x8000000000000000ull + (uint64_t)i) &&
			e->pay.lo == 100 + (uint64_t)i && e->pay.hi == 7 &&
			e->status == RETL_STATUS_OK && e->cached && !e->seen;
	}
	CHECK(same == 1000);
	retl_cache_free(c);

	/* a commit that changes a row makes the image stale: SQLite wins */
	struct retl_state_rec r = rec("k1", 555, 5, NULL, NULL);
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, sync, &r, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(retl_state_load_cache(st, sync, &c, &err) == 0);
	CHECK(cache_has(c, "k1", 555));
	retl_cache_free(c);
	/* a rolled back change leaves it current */
	CHECK(retl_state_save_image(st, sync, &err) == 0);
	r = rec("k2", 777, 5, NULL, NULL);
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, sync, &r, &err) == 0);
	retl_state_rollback(st);
	CHECK(retl_state_load_cache(st, sync, &c, &err) == 0);
	CHECK(cache_has(c, "k2", 102) && cache_has(c, "k1", 555));
	retl_cache_free(c);

	/* forget and reset change it too */
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_forget(st, sync, "k3", &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(retl_state_load_cache(st, sync, &c, &err) == 0);
	CHECK(retl_cache_count(c) == 999 && !retl_cache_find(c, retl_hash128("k3", 2)));
	retl_cache_free(c);

	/* a torn or corrupted image is ignored */
	CHECK(retl_state_save_image(st, sync, &err) == 0);
	{
		int fd = open(image, O_WRONLY);
		CHECK(fd >= 0);
		CHECK(pwrite(fd, "\x5a", 1, 4096) == 1);
		close(fd);
	}
	/* craft a wrong row into the image: the checksum catches it */
	CHECK(retl_state_load_cache(st, sync, &c, &err) == 0);
	CHECK(retl_cache_count(c) == 999 && cache_has(c, "k1", 555));
	retl_cache_free(c);
	/* a damaged image is removed, so the next save writes it afresh */
	CHECK(access(image, F_OK) != 0);
	CHECK(retl_state_save_image(st, sync, &err) == 0);
	CHECK(access(image, F_OK) == 0);
	CHECK(truncate(image, 1000) == 0);
	CHECK(retl_state_load_cache(st, sync, &c, &err) == 0);
	CHECK(retl_cache_count(c) == 999);
	retl_cache_free(c);

	CHECK(retl_state_save_image(st, sync, &err) == 0);
	CHECK(retl_state_reset(st, sync, &err) == 0);
	CHECK(retl_state_load_cache(st, sync, &c, &err) == 0);
	CHECK(retl_cache_count(c) == 0);
	retl_cache_free(c);
}

/* the cache entry of key as the next run's diff would load it */
static struct retl_cache_entry loaded(retl_state *st, const char *sync,
				      const char *key)
{
	struct retl_cache_entry none, *e;
	struct retl_err err;
	retl_cache *c;

	memset(&none, 0, sizeof(none));
	retl_err_clear(&err);
	if (retl_state_load_cache(st, sync, &c, &err) < 0)
		return none;
	e = retl_cache_find(c, retl_hash128(key, strlen(key)));
	if (e)
		none = *e;
	retl_cache_free(c);
	return none;
}

/*
 * A run whose only writes are failures (a row the mapping now refuses, or
 * rejected by the destination) must still make the saved image stale: the
 * next run has to see the row as failed (retried, listed by `retl
 * failures` until it is sent), not as the acknowledged row the image holds,
 * which it would skip as unchanged once its value goes back.
 */
static void test_image_after_failures_only(retl_state *st)
{
	struct retl_err err;
	const char *sync = "imgfail";
	struct retl_state_rec a = rec("a", 10, 1, "ID-A", NULL);
	struct retl_cache_entry e;

	retl_err_clear(&err);
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, sync, &a, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(retl_state_save_image(st, sync, &err) == 0);
	e = loaded(st, sync, "a");
	CHECK(e.status == RETL_STATUS_OK && e.src == 1 && e.pay.lo == 10);

	/* the next run: "a" refused, and nothing else written */
	struct retl_state_rec f = rec("a", 0, 0, NULL, "email: no match");
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_fail(st, sync, &f, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	e = loaded(st, sync, "a");
	CHECK(e.status == RETL_STATUS_FAILED);
	CHECK(e.src == 0);              /* its source line never matches again */
	CHECK(e.pay.lo == 10);          /* the destination still holds that */

	/* the same once more, from a current image of the failed row */
	CHECK(retl_state_save_image(st, sync, &err) == 0);
	struct retl_state_rec n = rec("new", 0, 0, NULL, "422 bad");
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_fail(st, sync, &n, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	e = loaded(st, sync, "new");
	CHECK(e.status == RETL_STATUS_FAILED && e.cached);
}

struct sent_scan {
	const char *key;
	int found;
	char sent_match[64];            /* "" for NULL */
};

static int on_sent_row(void *ud, const struct retl_state_row *row)
{
	struct sent_scan *ss = ud;

	if (!strcmp(row->key, ss->key)) {
		ss->found = 1;
		snprintf(ss->sent_match, sizeof(ss->sent_match), "%s",
			 row->sent_match ? row->sent_match : "");
	}
	return 0;
}

/* key's sent_match as the removals of the next run see it ("" for none) */
static const char *scanned_sent_match(retl_state *st, const char *sync,
				      const char *key)
{
	static struct sent_scan ss;
	struct retl_err err;

	memset(&ss, 0, sizeof(ss));
	ss.key = key;
	retl_err_clear(&err);
	if (retl_state_scan(st, sync, on_sent_row, &ss, &err) != 0 || !ss.found)
		return "(no row)";
	return ss.sent_match;
}

/*
 * A send marks its row "a record may exist" (sent = 1, and the match value
 * sent) whether or not the key already has a row in the store: a row the
 * mapping refused before (no payload acknowledged), or an acknowledged row
 * sent under a new match value.  If the answer is then lost (a kill before
 * the commit, a dropped connection), that mark is all that makes the record
 * a removal candidate or an orphan when the row leaves the model.
 */
static void test_sent_on_existing_row(retl_state *st)
{
	struct retl_err err;
	const char *sync = "sentflag";
	struct retl_cache_entry e;

	retl_err_clear(&err);
	/* "r": refused by the mapping at first, nothing ever handed over */
	struct retl_state_rec r = rec("r", 0, 0, NULL, "email: no match");
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_fail(st, sync, &r, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	e = loaded(st, sync, "r");
	CHECK(e.cached && !e.sent && retl_h128_zero(e.pay));
	CHECK_STR(scanned_sent_match(st, sync, "r"), "");

	/* fixed in the model: handed over under r@x.io */
	r = rec("r", 0, 0, NULL, NULL);
	r.match = "r@x.io";
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_sent(st, sync, &r, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(q_int("SELECT sent FROM cache WHERE sync = 'sentflag' "
		    "AND key = 'r'") == 1);
	e = loaded(st, sync, "r");
	CHECK(e.sent && retl_h128_zero(e.pay));
	CHECK_STR(scanned_sent_match(st, sync, "r"), "r@x.io");
	/* its answer a failure: the record may still exist */
	r.reason = "not acknowledged (transient error); retried next run";
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_fail(st, sync, &r, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	e = loaded(st, sync, "r");
	CHECK(e.sent && e.status == RETL_STATUS_FAILED);
	CHECK_STR(scanned_sent_match(st, sync, "r"), "r@x.io");

	/* "a": acknowledged under a@x.io (nothing outstanding), then sent
	 * under a2@x.io: a second record may exist under that value */
	struct retl_state_rec a = rec("a", 10, 1, "ID-A", NULL);
	a.match = "a@x.io";
	a.mh = 5;
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, sync, &a, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(q_int("SELECT sent FROM cache WHERE sync = 'sentflag' "
		    "AND key = 'a'") == -1);
	CHECK_STR(scanned_sent_match(st, sync, "a"), "");
	a = rec("a", 0, 0, NULL, NULL);
	a.match = "a2@x.io";
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_sent(st, sync, &a, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	e = loaded(st, sync, "a");
	CHECK(e.sent && e.status == RETL_STATUS_OK && e.pay.lo == 10);
	CHECK_STR(scanned_sent_match(st, sync, "a"), "a2@x.io");
}

/* rows failing in sync by the figures /metrics and `retl status` show */
static long stats_failing(retl_state *st, const char *sync)
{
	struct retl_state_stats stats;
	struct retl_err err;
	long n = -1;
	size_t i;

	retl_err_clear(&err);
	if (retl_state_stats_read(st, &stats, &err) < 0)
		return -2;
	for (i = 0; i < stats.n; i++)
		if (!strcmp(stats.s[i].sync, sync))
			n = stats.s[i].failing;
	retl_state_stats_free(&stats);
	return n;
}

/* the list, checked against the count */
static void failures_are(retl_state *st, const char *sync, const char *want,
			 int line)
{
	struct report rp = { RETL_BUF_INIT, 0 };
	struct retl_err err;
	long n;

	retl_err_clear(&err);
	CHECK(retl_state_failures(st, sync, on_failure, &rp, &err) == 0);
	if (strcmp(retl_buf_cstr(&rp.text), want))
		fprintf(stderr, "line %d:\n", line);
	CHECK_STR(retl_buf_cstr(&rp.text), want);
	n = stats_failing(st, sync);
	if (n != rp.n && !(n == -1 && rp.n == 0)) {
		fprintf(stderr, "line %d: /metrics counts %ld, the list has %d\n",
			line, n, rp.n);
		CHECK(0);
	}
	retl_buf_free(&rp.text);
}

/* two timestamps taken across this never share their millisecond */
static void next_ms(void)
{
	usleep(3000);
}

/*
 * Issue 11 case 7: rows a run left PENDING (a create whose answer never
 * came) or STAGED (a deferred outcome never read) are not synced, so
 * `retl failures` lists them with their reason and the counts agree;
 * rows a run still going has just handed over are in flight, not listed.
 */
static void test_left_over(retl_state *st)
{
	struct retl_err err;
	struct retl_state_rec r;
	int64_t id;
	const char *sync = "left";

	retl_err_clear(&err);
	CHECK(retl_state_run_begin(st, sync, &id, &err) == 0);
	CHECK(retl_state_begin(st, &err) == 0);
	r = rec("ok1", 5, 1, "ID-1", NULL);
	CHECK(retl_state_ack(st, sync, &r, &err) == 0);
	r = rec("p1", 0, 0, NULL, NULL);
	CHECK(retl_state_pending(st, sync, &r, &err) == 0);
	r = rec("p2", 0, 0, NULL, NULL);
	CHECK(retl_state_pending(st, sync, &r, &err) == 0);
	r = rec("s1", 6, 2, NULL, NULL);
	CHECK(retl_state_stage(st, sync, &r, 0, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	/* p1's create got no answer; p2's run was cut short before one */
	CHECK(retl_state_outcome(st, id, "p1", "failed", "no response after 1 "
				 "attempt: connection reset", &err) == 0);
	/* in flight while the run goes on */
	failures_are(st, sync, "", __LINE__);
	CHECK(retl_state_run_end(st, id, "failed", 1, NULL, NULL, &err) == 0);
	failures_are(st, sync,
		     "p1|pending|1|no response after 1 attempt: connection "
		     "reset|1|1;"
		     "p2|pending|1|" PENDING_WHY "|1|1;"
		     "s1|staged|1|" STAGED_WHY "|1|1;", __LINE__);

	/* the next run sends p1 again (a new intent): in flight until it
	 * ends; p2 is rejected by the mapping this time and listed once */
	next_ms();
	CHECK(retl_state_run_begin(st, sync, &id, &err) == 0);
	CHECK(retl_state_begin(st, &err) == 0);
	r = rec("p1", 0, 0, NULL, NULL);
	CHECK(retl_state_pending(st, sync, &r, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	failures_are(st, sync,
		     "p2|pending|1|" PENDING_WHY "|1|1;"
		     "s1|staged|1|" STAGED_WHY "|1|1;", __LINE__);
	CHECK(retl_state_outcome(st, id, "p1", "failed", "HTTP 502 after the "
				 "create", &err) == 0);
	CHECK(retl_state_outcome(st, id, "p2", "rejected", "email: no match",
				 &err) == 0);
	CHECK(retl_state_outcome(st, id, "new", "rejected", "null key", &err)
	      == 0);
	CHECK(retl_state_run_end(st, id, "failed", 1, NULL, NULL, &err) == 0);
	failures_are(st, sync,
		     "p1|pending|2|HTTP 502 after the create|1|1;"
		     "p2|pending|1|" PENDING_WHY "|1|1;"
		     "s1|staged|1|" STAGED_WHY "|1|1;"
		     "new|rejected|1|null key|1|1;", __LINE__);
	{
		/* since: the first failed attempt's run, not the latest */
		char *first = q_text("SELECT started_at FROM runs WHERE sync = "
				     "'left' ORDER BY id LIMIT 1");
		struct since_ctx sc = { first, 0 };

		CHECK(first != NULL);
		CHECK(retl_state_failures(st, sync, on_since_p1, &sc, &err) == 0);
		CHECK(sc.ok == 1);
		free(first);
	}

	/* acknowledged at last: gone from the list and the count */
	CHECK(retl_state_begin(st, &err) == 0);
	r = rec("p1", 7, 3, "ID-P1", NULL);
	CHECK(retl_state_ack(st, sync, &r, &err) == 0);
	CHECK(retl_state_unstage(st, sync, "s1", 1, "ID-S1", NULL, 0, &err) == 0);
	r = rec("p2", 0, 0, NULL, "409 conflict");
	CHECK(retl_state_fail(st, sync, &r, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	failures_are(st, sync, "p2|failed|1|409 conflict|1|1;"
		     "new|rejected|1|null key|1|1;", __LINE__);
}

/* deferred rows: stage, unstage (ack / fail), notes, and the image */
static void test_staged(retl_state *st)
{
	struct retl_err err;
	retl_cache *c;
	const char *sync = "stg";
	int op = -1;

	/* an acknowledged row, then a new payload staged beside it */
	struct retl_state_rec r = rec("a", 10, 1, "ID-A", NULL);
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, sync, &r, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(retl_state_save_image(st, sync, &err) == 0);
	r = rec("a", 11, 2, NULL, NULL);
	struct retl_state_rec n = rec("b", 20, 3, NULL, NULL);
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_stage(st, sync, &r, 1, &err) == 0);
	CHECK(retl_state_stage(st, sync, &n, 0, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(q_int("SELECT status FROM cache WHERE sync='stg' AND key='a'") == 4);
	CHECK(q_int("SELECT pay_lo FROM cache WHERE sync='stg' AND key='a'") == 10);
	CHECK(q_int("SELECT staged_pay_lo FROM cache WHERE sync='stg' AND key='a'") == 11);
	CHECK(q_int("SELECT pay_lo FROM cache WHERE sync='stg' AND key='b'") == -1);
	CHECK(retl_state_staged(st, sync, "a", &op, &err) == 1 && op == 1);
	CHECK(retl_state_staged(st, sync, "b", &op, &err) == 1 && op == 0);
	CHECK(retl_state_staged(st, sync, "zz", &op, &err) == 0);
	/* the stage changed the generation: the cache sees STAGED, old pay */
	CHECK(retl_state_load_cache(st, sync, &c, &err) == 0);
	{
		struct retl_cache_entry *e = retl_cache_find(c, retl_hash128("a", 1));
		CHECK(e && e->status == RETL_STATUS_STAGED && e->pay.lo == 10);
	}
	retl_cache_free(c);
	CHECK(retl_state_save_image(st, sync, &err) == 0);

	/* ack: the staged hashes advance, the id is stored */
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_unstage(st, sync, "a", 1, "ID-A2", NULL, 0, &err) == 0);
	CHECK(retl_state_unstage(st, sync, "b", 0, NULL, "STRING_TOO_LONG: x", 0, &err) == 0);
	/* not staged: left alone */
	CHECK(retl_state_unstage(st, sync, "a", 0, NULL, "late", 0, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(q_int("SELECT status FROM cache WHERE sync='stg' AND key='a'") == 1);
	CHECK(q_int("SELECT pay_lo FROM cache WHERE sync='stg' AND key='a'") == 11);
	CHECK(q_int("SELECT src FROM cache WHERE sync='stg' AND key='a'") == 2);
	CHECK(q_int("SELECT staged_pay_lo FROM cache WHERE sync='stg' AND key='a'") == -1);
	char *t = q_text("SELECT dest_id FROM cache WHERE sync='stg' AND key='a'");
	CHECK_STR(t, "ID-A2");
	free(t);
	CHECK(q_int("SELECT status FROM cache WHERE sync='stg' AND key='b'") == 2);
	CHECK(q_int("SELECT attempts FROM cache WHERE sync='stg' AND key='b'") == 1);
	CHECK(q_int("SELECT pay_lo FROM cache WHERE sync='stg' AND key='b'") == -1);
	t = q_text("SELECT last_error FROM cache WHERE sync='stg' AND key='b'");
	CHECK_STR(t, "STRING_TOO_LONG: x");
	free(t);
	CHECK(retl_state_load_cache(st, sync, &c, &err) == 0);
	{
		struct retl_cache_entry *e = retl_cache_find(c, retl_hash128("a", 1));
		CHECK(e && e->status == RETL_STATUS_OK && e->pay.lo == 11 && e->src == 2);
		e = retl_cache_find(c, retl_hash128("b", 1));
		CHECK(e && e->status == RETL_STATUS_FAILED);
	}
	retl_cache_free(c);

	/* notes */
	char *v = retl_state_note_get(st, sync, "job");
	CHECK(v == NULL);
	CHECK(retl_state_note_set(st, sync, "job", "750xx01", &err) == 0);
	CHECK(retl_state_note_set(st, sync, "job", "750xx02", &err) == 0);
	v = retl_state_note_get(st, sync, "job");
	CHECK_STR(v, "750xx02");
	free(v);
	v = retl_state_note_get(st, "other", "job");
	CHECK(v == NULL);
	CHECK(retl_state_note_set(st, sync, "job", NULL, &err) == 0);
	v = retl_state_note_get(st, sync, "job");
	CHECK(v == NULL);
}

/*
 * Migration 8 renames the statuses of a store's earlier runs: "failed" was
 * a completed run with rows not synced (exit 1) or one the destination
 * never answered (exit 4), "error" and "refused" runs that stopped.
 */
static void test_migrate_statuses(void)
{
	struct retl_err err;
	retl_state *st;
	sqlite3 *db;
	char path[160];
	char *got;

	retl_err_clear(&err);
	snprintf(path, sizeof(path), "%s/old.db", dir);
	CHECK(retl_state_open(&st, path, &err) == 0);
	retl_state_close(st);
	/* back to version 6, with runs of the time */
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "DROP INDEX runs_audit;"
			   "ALTER TABLE runs DROP COLUMN audited;"
			   "ALTER TABLE runs DROP COLUMN allow_removals;"
			   "DROP INDEX runs_running;"
			   "DROP TABLE alerts;"
			   "DROP TABLE claims;"
			   "UPDATE meta SET value = 6 WHERE key = 'schema_version';"
			   "INSERT INTO runs(sync, started_at, status, exit_code) VALUES"
			   "('s', 't', 'ok', 0), ('s', 't', 'failed', 1),"
			   "('s', 't', 'failed', 4), ('s', 't', 'error', 3),"
			   "('s', 't', 'refused', 5), ('s', 't', 'interrupted', 1),"
			   "('s', 't', 'running', NULL)", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CHECK(retl_state_open(&st, path, &err) == 0);
	retl_state_close(st);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	{
		sqlite3_stmt *q;
		retl_buf b = RETL_BUF_INIT;

		CHECK(sqlite3_prepare_v2(db, "SELECT status || ':' || "
					 "COALESCE(allow_removals, '-') FROM runs "
					 "ORDER BY id", -1, &q, NULL) == SQLITE_OK);
		while (sqlite3_step(q) == SQLITE_ROW)
			retl_buf_addf(&b, "%s;", sqlite3_column_text(q, 0));
		sqlite3_finalize(q);
		got = retl_buf_detach(&b);
	}
	sqlite3_close(db);
	CHECK_STR(got, "ok:-;rows rejected:-;failed:-;failed:-;failed:-;"
		  "interrupted:-;running:-;");
	free(got);
}

/* the store id in a marker file, malloc'd, or NULL */
static char *marker_id(const char *db)
{
	char path[200], line[256];
	char *id = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s.marker", db);
	if (!(f = fopen(path, "r")))
		return NULL;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "store_id ", 9)) {
			line[strcspn(line, "\n")] = '\0';
			id = retl_strdup(line + 9);
		}
	fclose(f);
	return id;
}

static char *db_id(const char *db)
{
	char *save = retl_strdup(db_path), *id;

	snprintf(db_path, sizeof(db_path), "%s", db);
	id = q_text("SELECT value FROM meta WHERE key = 'store_id'");
	snprintf(db_path, sizeof(db_path), "%s", save);
	free(save);
	return id;
}

static int open_fails(const char *path, const char *what)
{
	struct retl_err err;
	retl_state *st = (retl_state *)1;
	int ok;

	retl_err_clear(&err);
	ok = retl_state_open(&st, path, &err) < 0 && st == NULL &&
	     err.code == 2 && strstr(err.msg, what) &&
	     strstr(err.msg, "retl reset --all") && strstr(err.msg, path);
	if (!ok)
		fprintf(stderr, "open_fails(%s): %s\n", what, err.msg);
	if (st && st != (retl_state *)1)
		retl_state_close(st);
	return ok;
}

static void copy_file(const char *from, const char *to)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	CHECK(system(cmd) == 0);
}

static void rm_store(const char *path)
{
	char p[200];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

/*
 * Issue 11 case 10: a store once used is never silently replaced by an
 * empty one (missing, 0 bytes, a new file, another project's), starting
 * over is explicit, and a store deleted, replaced or truncated under an
 * open handle stops the next commit.
 */
static void test_marker(void)
{
	struct retl_err err;
	retl_state *st;
	char db[160], other[160], marker[180];
	char *id, *id2;
	struct stat sb;
	struct retl_state_rec r = rec("k", 1, 1, NULL, NULL);

	retl_err_clear(&err);
	snprintf(db, sizeof(db), "%s/m/retl.db", dir);
	snprintf(other, sizeof(other), "%s/m/other.db", dir);
	snprintf(marker, sizeof(marker), "%s.marker", db);

	/* a new store: its id in the database and in the marker */
	CHECK(retl_state_open(&st, db, &err) == 0);
	retl_state_close(st);
	id = marker_id(db);
	id2 = db_id(db);
	CHECK(id && strlen(id) == 32);
	CHECK_STR(id, id2);
	free(id2);
	CHECK(mode_of(marker) == 0600);
	/* opened again: the same id */
	CHECK(retl_state_open(&st, db, &err) == 0);
	retl_state_close(st);
	id2 = marker_id(db);
	CHECK_STR(id2, id);
	free(id2);

	/* truncated to 0 bytes: refused, and left as it is */
	CHECK(truncate(db, 0) == 0);
	CHECK(open_fails(db, "is empty (0 bytes), but this project has used "
			 "it before"));
	CHECK(stat(db, &sb) == 0 && sb.st_size == 0);
	/* missing: refused, and not created */
	rm_store(db);
	CHECK(open_fails(db, "is missing, but this project has used it "
			 "before"));
	CHECK(stat(db, &sb) < 0);
	/* a new file in its place (sqlite3 retl.db, another tool) */
	{
		sqlite3 *h;
		CHECK(sqlite3_open(db, &h) == SQLITE_OK);
		sqlite3_exec(h, "CREATE TABLE t(x)", NULL, NULL, NULL);
		sqlite3_close(h);
	}
	CHECK(open_fails(db, "is a new file, but this project has used "
			 "another one before"));
	/* starting over on purpose: a new store, a new id */
	rm_store(db);
	CHECK(retl_state_start_over(db, &err) == 0);
	CHECK(stat(marker, &sb) < 0);
	CHECK(retl_state_open(&st, db, &err) == 0);
	retl_state_close(st);
	id2 = marker_id(db);
	CHECK(id2 && strcmp(id2, id));
	free(id);
	id = id2;

	/* another project's store copied over it */
	CHECK(retl_state_open(&st, other, &err) == 0);
	retl_state_close(st);
	rm_store(db);
	copy_file(other, db);
	CHECK(open_fails(db, "is not the one this project used"));
	/* ... taken on purpose by starting over: adopted with its id */
	CHECK(retl_state_start_over(db, &err) == 0);
	CHECK(retl_state_open(&st, db, &err) == 0);
	retl_state_close(st);
	id2 = marker_id(db);
	{
		char *oid = marker_id(other);
		CHECK_STR(id2, oid);
		free(oid);
	}
	free(id2);
	free(id);

	/* the marker lost, the store fine: written again, same id */
	id = db_id(db);
	CHECK(unlink(marker) == 0);
	CHECK(retl_state_open(&st, db, &err) == 0);
	retl_state_close(st);
	id2 = marker_id(db);
	CHECK_STR(id2, id);
	free(id2);
	free(id);

	/* a store from before markers (no id, no marker): adopted */
	{
		char om[200];
		sqlite3 *h;
		snprintf(om, sizeof(om), "%s.marker", other);
		CHECK(unlink(om) == 0);
		CHECK(sqlite3_open(other, &h) == SQLITE_OK);
		sqlite3_exec(h, "DELETE FROM meta WHERE key = 'store_id'",
			     NULL, NULL, NULL);
		sqlite3_close(h);
		id = db_id(other);
		CHECK(id == NULL);
	}
	CHECK(retl_state_open(&st, other, &err) == 0);
	retl_state_close(st);
	id = marker_id(other);
	id2 = db_id(other);
	CHECK(id && id2 && !strcmp(id, id2));
	free(id);
	free(id2);

	/* during a run: deleted, replaced, truncated -> the commit stops */
	{
		static const char *const how[] = {
			"was deleted while this run was using it",
			"was replaced by another file while this run",
			"was truncated to 0 bytes while this run",
		};
		int i;

		for (i = 0; i < 3; i++) {
			char moved[200];

			retl_err_clear(&err);
			CHECK(retl_state_open(&st, db, &err) == 0);
			CHECK(retl_state_begin(st, &err) == 0);
			CHECK(retl_state_ack(st, "s", &r, &err) == 0);
			CHECK(retl_state_commit(st, &err) == 0);
			snprintf(moved, sizeof(moved), "%s.moved", db);
			if (i == 0) {
				CHECK(rename(db, moved) == 0);
			} else if (i == 1) {
				copy_file(db, moved);
				CHECK(rename(moved, db) == 0);
			} else {
				CHECK(truncate(db, 0) == 0);
			}
			CHECK(retl_state_begin(st, &err) == 0);
			CHECK(retl_state_ack(st, "s", &r, &err) == 0);
			CHECK(retl_state_commit(st, &err) < 0);
			CHECK(err.code == 2 && strstr(err.msg, how[i]) &&
			      strstr(err.msg, "retl reset --all"));
			retl_state_rollback(st);
			retl_state_close(st);
			if (i == 0) {
				/* put back as it was */
				CHECK(rename(moved, db) == 0);
			} else if (i == 2) {
				rm_store(db);
				CHECK(retl_state_start_over(db, &err) == 0);
			}
		}
	}
}

/*
 * An acknowledgement flagged fresh (the engine believes the key has no
 * row) is a plain INSERT; when a row is there after all it is updated,
 * not refused.  And the run's cache, attached as the mirror, ends equal
 * to the table: acknowledged rows as the statement left them, other
 * writes read back, a rolled-back transaction not applied.
 */
static void test_fresh_and_mirror(retl_state *st)
{
	const char *sync = "fresh";
	struct retl_err err;
	struct retl_state_rec a = rec("a", 11, 101, NULL, NULL);
	struct retl_state_rec b = rec("b", 22, 202, NULL, NULL);
	retl_cache *c = retl_cache_new(4);
	struct retl_cache_entry *e;

	retl_err_clear(&err);
	retl_state_mirror(st, sync, c);
	a.fresh = b.fresh = 1;
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, sync, &a, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	/* b failed once: a row without a payload hash */
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_fail(st, sync, &b, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	/* a again, fresh by mistake, with a new payload: updated */
	a.pay.lo = 12;
	a.change = 1;
	b.pay.lo = 23;
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, sync, &a, &err) == 0 || !fprintf(stderr, "%s\n", err.msg));
	CHECK(retl_state_ack(st, sync, &b, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(q_int("SELECT count(*) FROM cache WHERE sync = 'fresh'") == 2);
	CHECK(q_int("SELECT pay_lo FROM cache WHERE sync = 'fresh' AND key = 'a'") == 12);
	CHECK(q_int("SELECT last_change FROM cache WHERE sync = 'fresh' AND key = 'a'") == 1);
	CHECK(q_int("SELECT status FROM cache WHERE sync = 'fresh' AND key = 'b'") == 1);
	e = retl_cache_find(c, a.kh);
	CHECK(e && e->pay.lo == 12 && e->status == RETL_STATUS_OK && e->cached);
	/* rolled back: neither the table nor the mirror moves */
	a.pay.lo = 13;
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, sync, &a, &err) == 0);
	retl_state_rollback(st);
	e = retl_cache_find(c, a.kh);
	CHECK(e && e->pay.lo == 12);
	/* a failure is read back when the image is saved */
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_fail(st, sync, &b, &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0);
	CHECK(retl_state_save_image(st, sync, &err) == 0);
	e = retl_cache_find(c, b.kh);
	CHECK(e && e->status == RETL_STATUS_FAILED && e->src == 0);
	retl_cache_free(c);
	/* and the image loads as the table */
	CHECK(retl_state_load_cache(st, sync, &c, &err) == 0);
	CHECK(retl_cache_count(c) == 2);
	e = retl_cache_find(c, a.kh);
	CHECK(e && e->pay.lo == 12 && e->status == RETL_STATUS_OK);
	e = retl_cache_find(c, b.kh);
	CHECK(e && e->status == RETL_STATUS_FAILED);
	retl_cache_free(c);
}

/*
 * A write that fails fails its transaction: nothing written before it in
 * that transaction is kept.  On PostgreSQL the writes are pipelined
 * (db_pg.c): the failure comes back at the commit, not at the call.
 */
static void test_failed_write_fails_the_commit(retl_state *st)
{
	struct retl_err err;
	struct retl_state_rec r = rec("x", 5, 6, NULL, NULL);
	int64_t run;
	int a, c;

	retl_err_clear(&err);
	CHECK(retl_state_run_begin(st, "atomic", &run, &err) == 0);
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, "atomic", &r, &err) == 0);
	/* an outcome must say what happened: NOT NULL refuses it */
	a = retl_state_outcome(st, run, "x", NULL, NULL, &err);
	/* a statement first run after the failure (on PostgreSQL the server
	 * skips it, its preparation included) */
	if (a == 0)
		a = retl_state_orphan_fail(st, "atomic", "m", "r", &err) < 0 ? 0 : a;
	c = a < 0 ? -1 : retl_state_commit(st, &err);
	CHECK(a < 0 || c < 0);
	CHECK(err.msg[0] != '\0');
	retl_state_rollback(st);
	CHECK(q_int("SELECT count(*) FROM cache WHERE sync = 'atomic'") == 0);
	/* and the handle goes on */
	retl_err_clear(&err);
	CHECK(retl_state_begin(st, &err) == 0);
	CHECK(retl_state_ack(st, "atomic", &r, &err) == 0);
	CHECK(retl_state_orphan_fail(st, "atomic", "m", "r", &err) == 0);
	CHECK(retl_state_commit(st, &err) == 0 || !fprintf(stderr, "%s\n", err.msg));
	CHECK(q_int("SELECT count(*) FROM cache WHERE sync = 'atomic'") == 1);
	CHECK(retl_state_run_end(st, run, RETL_RUN_OK, 0, NULL, NULL, &err) == 0);
}

/* PostgreSQL: a new store is an empty schema; the tables at the current version */
static void test_open_pg(void)
{
	struct retl_err err;
	retl_state *st;
	char *v;

	retl_err_clear(&err);
	CHECK(retl_state_open(&st, db_path, &err) == 0 || !fprintf(stderr, "%s\n", err.msg));
	CHECK(q_int("SELECT value FROM meta WHERE key = 'schema_version'") == 10);
	CHECK(q_int("SELECT count(*) FROM meta") == 2);
	v = q_text("SELECT value FROM meta WHERE key = 'store_id'");
	retl_state_close(st);
	/* opening again migrates nothing and keeps the identity */
	CHECK(retl_state_open(&st, db_path, &err) == 0);
	CHECK(q_int("SELECT count(*) FROM meta") == 2);
	char *w = q_text("SELECT value FROM meta WHERE key = 'store_id'");
	CHECK(v && w && !strcmp(v, w));
	free(v);
	free(w);
	/* messages name the store without its password */
	CHECK(!strstr(retl_state_name(st), "secret"));
	retl_state_close(st);
}

int main(void)
{
	struct retl_err err;
	retl_state *st;

	snprintf(dir, sizeof(dir), "/tmp/retl-test-state-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	pg_url = getenv("RETL_TEST_STATE_URL");
	if (pg_url && *pg_url) {
		int null;
		free(pg_text("DROP SCHEMA IF EXISTS retl CASCADE", &null));
		if (strlen(pg_url) >= sizeof(db_path)) {
			fprintf(stderr, "RETL_TEST_STATE_URL is too long\n");
			return 1;
		}
		memcpy(db_path, pg_url, strlen(pg_url) + 1);
		if (chdir(dir) < 0)
			return 1;
		test_open_pg();
	} else {
		pg_url = NULL;
		snprintf(db_path, sizeof(db_path), "%s/sub/state.db", dir);
		test_open();
		test_migrate_statuses();
	}
	if (retl_state_open(&st, db_path, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	test_rows(st);
	test_runs(st);
	test_scan_reset(st);
	test_lock(st);
	test_abandoned(st);
	test_image(st);
	test_image_after_failures_only(st);
	test_sent_on_existing_row(st);
	test_staged(st);
	test_left_over(st);
	test_fresh_and_mirror(st);
	test_failed_write_fails_the_commit(st);
	retl_state_close(st);
	if (!pg_url)
		test_marker();
	{
		char cmd[96];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	TEST_DONE();
}
