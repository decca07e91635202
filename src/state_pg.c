/*
 * state_pg.c - what only a state store in PostgreSQL does (README "The
 * state store", PostgreSQL): the URL and how messages name it, the
 * schema, the run lock, the probe.  Everything else is the statements
 * the SQLite store runs, through db.h.
 *
 * The tables live in schema "retl" of the URL's database (or the one the
 * URL's options name, pick_schema), created at
 * schema version RETL_STATE_PG_BASE in one transaction (the same tables as
 * SQLite's migrations 1..8 build, with PostgreSQL's types: hashes are
 * BIGINT, text compared byte-wise under COLLATE "C" like SQLite's BINARY,
 * outcomes' row number is a column named rowid as SQLite's is).  Later
 * migrations are the shared list's entries from there on, so both kinds
 * of store keep one version number.  A migration runs under a
 * transaction-level advisory lock: two processes opening a new store at
 * once create it once.
 *
 * Identity: an empty database (no schema "retl") is simply a new store;
 * there is no marker file, since a database is not replaced by accident
 * the way a file is.  meta holds a store_id all the same.
 *
 * The run lock is pg_try_advisory_lock on the handle's own session, keyed
 * by a 64-bit hash of a retl-specific prefix, the schema and the sync
 * name: it dies with the process or its connection, whichever goes first,
 * on whatever machine.  Who holds it (host, pid) is written to run_locks
 * when it is taken, for the "already running" message and for the next
 * holder's "abandoned" note.
 *
 * Local files: a PostgreSQL store still keeps its cache images and the
 * run's spool on local disk, under the local directory given at open
 * (the project's ".retl/"), as "pgstate.<sync>.cache".  Images are
 * stamped with the store's generation, so an image another machine made
 * stale is detected and the table read.
 */
#include "state.h"
#include "state_int.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "redact.h"

#define SCHEMA "retl"            /* unless the URL's options name another */

/* the tables at RETL_STATE_PG_BASE (state.c's migrations 1..8) */
static const char pg_base[] =
	"CREATE TABLE meta(key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT);"
	"CREATE TABLE cache("
	" sync TEXT COLLATE \"C\" NOT NULL, key TEXT COLLATE \"C\" NOT NULL,"
	" kh_lo BIGINT, kh_hi BIGINT, pay_lo BIGINT, pay_hi BIGINT,"
	" src BIGINT, dest_id TEXT, status INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
	" first_failed_at TEXT, created_at TEXT, updated_at TEXT,"
	" staged_pay_lo BIGINT, staged_pay_hi BIGINT, staged_src BIGINT,"
	" staged_op INTEGER, match TEXT COLLATE \"C\", match_h BIGINT,"
	" sent INTEGER, sent_match TEXT COLLATE \"C\", last_run BIGINT,"
	" last_change INTEGER, PRIMARY KEY(sync, key));"
	"CREATE INDEX cache_failed ON cache(sync, key) WHERE status = 2;"
	"CREATE INDEX cache_unsynced ON cache(sync, updated_at)"
	" WHERE status IN (3, 4);"
	"CREATE TABLE runs("
	" id BIGSERIAL PRIMARY KEY, sync TEXT COLLATE \"C\" NOT NULL,"
	" started_at TEXT COLLATE \"C\" NOT NULL, ended_at TEXT COLLATE \"C\","
	" status TEXT NOT NULL, exit_code INTEGER, seconds DOUBLE PRECISION,"
	" read BIGINT, added BIGINT, changed BIGINT, unchanged BIGINT,"
	" retried BIGINT, removed BIGINT, rejected BIGINT, failed BIGINT,"
	" api_calls BIGINT, retries BIGINT, http_429 BIGINT, message TEXT,"
	" allow_removals BIGINT);"
	"CREATE INDEX runs_sync ON runs(sync, id);"
	"CREATE INDEX runs_running ON runs(sync) WHERE status = 'running';"
	"CREATE TABLE outcomes(rowid BIGSERIAL PRIMARY KEY,"
	" run_id BIGINT NOT NULL REFERENCES runs(id),"
	" key TEXT COLLATE \"C\", outcome TEXT NOT NULL, reason TEXT);"
	"CREATE INDEX outcomes_run ON outcomes(run_id);"
	"CREATE TABLE cache_gen(sync TEXT COLLATE \"C\" PRIMARY KEY,"
	" gen BIGINT NOT NULL);"
	"CREATE TABLE api_usage(dest TEXT COLLATE \"C\" NOT NULL,"
	" day TEXT COLLATE \"C\" NOT NULL, calls BIGINT NOT NULL,"
	" PRIMARY KEY(dest, day));"
	"CREATE TABLE dest_notes(sync TEXT COLLATE \"C\" NOT NULL,"
	" name TEXT COLLATE \"C\" NOT NULL, value TEXT NOT NULL,"
	" PRIMARY KEY(sync, name));"
	"CREATE TABLE orphans(sync TEXT COLLATE \"C\" NOT NULL,"
	" match TEXT COLLATE \"C\" NOT NULL, dest_id TEXT, since TEXT,"
	" attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
	" PRIMARY KEY(sync, match));"
	"CREATE TABLE alerts(sync TEXT COLLATE \"C\" NOT NULL,"
	" cond TEXT COLLATE \"C\" NOT NULL, channel TEXT COLLATE \"C\" NOT NULL,"
	" active INTEGER NOT NULL, run_id BIGINT, event TEXT, updated_at TEXT,"
	" PRIMARY KEY(sync, cond, channel));"
	/* who took each sync's run lock last (PostgreSQL only) */
	"CREATE TABLE run_locks(sync TEXT COLLATE \"C\" PRIMARY KEY,"
	" host TEXT, pid BIGINT, taken_at TEXT);"
	"INSERT INTO meta(key, value) VALUES('store_id', md5(random()::text ||"
	" clock_timestamp()::text));";

int retl_state__is_pg(const char *path)
{
	return path && (!strncmp(path, "postgresql://", 13) ||
			!strncmp(path, "postgres://", 11));
}

/* "postgresql://user@host:port/db": the URL without its password and
 * without its query (which may hold password=, sslpassword=) */
static char *display_url(const char *url)
{
	const char *p = strstr(url, "://") + 3;
	size_t auth = strcspn(p, "/?#");
	const char *at = memrchr(p, '@', auth);
	size_t path = strcspn(p + auth, "?#");
	retl_buf b = RETL_BUF_INIT;

	retl_buf_add(&b, url, (size_t)(p - url));
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		retl_buf_add(&b, p, (size_t)((colon ? colon : at) - p));
		retl_buf_add(&b, at, (size_t)(p + auth - at));
	} else {
		retl_buf_add(&b, p, auth);
	}
	retl_buf_add(&b, p + auth, path);
	return retl_buf_detach(&b);
}

/* "state store U: msg" with the exit code of kind */
static int pg_fail(retl_state *st, int code, const char *what,
		   struct retl_err *err)
{
	return retl_err_set(err, code, "state store %s: %s%s%s", st->path,
			    what ? what : "", what ? ": " : "",
			    retl_db_errmsg(st->db));
}

/* one statement's single value as text (malloc'd), NULL when none */
static char *scalar(retl_state *st, const char *sql, const char *p1,
		    int *failed)
{
	retl_db_stmt *s;
	char *v = NULL;
	int rc;

	*failed = 0;
	if (retl_db_prepare(st->db, sql, &s) < 0) {
		*failed = 1;
		return NULL;
	}
	if (p1)
		retl_db_bind_textn(s, 1, p1, -1);
	rc = retl_db_step(s);
	if (rc == RETL_DB_ROW && retl_db_col_text(s, 0))
		v = retl_strdup(retl_db_col_text(s, 0));
	*failed = rc == RETL_DB_ERROR;
	retl_db_finalize(s);
	return v;
}

/* what a missing grant needs, said with the names of this store: on
 * "DATABASE" (to create the schema) or "SCHEMA" (to create its tables) */
static int grant_err(retl_state *st, const char *on, struct retl_err *err)
{
	int f;
	char *why = retl_strdup(retl_db_errmsg(st->db));
	/* the failed statement spoiled the transaction: names come after */
	retl_db_exec(st->db, "ROLLBACK");
	char *user = scalar(st, "SELECT current_user", NULL, &f);
	char *db = scalar(st, "SELECT current_database()", NULL, &f);
	int rc = retl_err_set(err, RETL_EXIT_USAGE, "state store %s: %s. "
			      "Grant it: GRANT CREATE ON %s %s TO %s; or create "
			      "the schema for retl: CREATE SCHEMA %s "
			      "AUTHORIZATION %s", st->path, why, on,
			      !strcmp(on, "DATABASE") ? db ? db : "?" : st->schema,
			      user ? user : "?", st->schema, user ? user : "?");
	free(why);
	free(user);
	free(db);
	return rc;
}

static int set_version(retl_state *st, int v, struct retl_err *err)
{
	retl_db_stmt *s;
	int rc;

	if (retl_state__prepare(st, "INSERT INTO meta(key, value) VALUES("
				"'schema_version', ?1) ON CONFLICT(key) DO "
				"UPDATE SET value = excluded.value", &s, err) < 0)
		return -1;
	retl_db_bind_int(s, 1, v);
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	return rc;
}

/* creates the schema and its tables when missing, then migrates, in one
 * transaction under an advisory lock of retl's own */
static int pg_migrate(retl_state *st, const char *const *migrations, int nmig,
		      struct retl_err *err)
{
	retl_buf sql = RETL_BUF_INIT;
	int failed, have;
	char *v;

	if (retl_state__exec(st, "BEGIN", err) < 0)
		return -1;
	if (retl_state__exec(st, "SELECT pg_advisory_xact_lock(7378141, 0)",
			     err) < 0)
		goto fail;
	v = scalar(st, "SELECT 1 FROM pg_namespace WHERE nspname = ?1",
		   st->schema, &failed);
	if (failed) {
		pg_fail(st, RETL_EXIT_STATE, NULL, err);
		goto fail;
	}
	retl_buf_reset(&sql);
	retl_buf_addf(&sql, "CREATE SCHEMA %s", st->schema);
	if (!v && retl_db_exec(st->db, retl_buf_cstr(&sql)) < 0) {
		if (retl_db_errkind(st->db) == RETL_DB_EPERM)
			grant_err(st, "DATABASE", err);
		else
			retl_state__db_err(st, err);
		goto fail;
	}
	free(v);
	v = scalar(st, "SELECT 1 FROM pg_tables WHERE schemaname = ?1 AND "
		   "tablename = 'meta'", st->schema, &failed);
	if (!v && !failed && retl_db_exec(st->db, pg_base) < 0) {
		if (retl_db_errkind(st->db) == RETL_DB_EPERM)
			grant_err(st, "SCHEMA", err);
		else
			retl_state__db_err(st, err);
		goto fail;
	}
	if (!v && !failed && set_version(st, RETL_STATE_PG_BASE, err) < 0)
		goto fail;
	free(v);
	v = scalar(st, "SELECT value FROM meta WHERE key = 'schema_version'",
		   NULL, &failed);
	have = v ? atoi(v) : 0;
	free(v);
	if (failed || have < RETL_STATE_PG_BASE) {
		if (failed)
			retl_state__db_err(st, err);
		else
			retl_err_set(err, RETL_EXIT_USAGE, "state store %s: "
				     "schema %s has no valid schema_version "
				     "in its meta table", st->path, st->schema);
		goto fail;
	}
	if (have > nmig) {
		retl_err_set(err, RETL_EXIT_USAGE, "state store %s: schema "
			     "version %d is newer than this retl knows (%d)",
			     st->path, have, nmig);
		goto fail;
	}
	for (int i = have; i < nmig; i++)
		if (retl_state__exec(st, migrations[i], err) < 0)
			goto fail;
	if (have != nmig && set_version(st, nmig, err) < 0)
		goto fail;
	retl_buf_free(&sql);
	return retl_state__exec(st, "COMMIT", err);
fail:
	retl_buf_free(&sql);
	retl_db_exec(st->db, "ROLLBACK");
	return -1;
}

/*
 * The store's schema: "retl", or the first schema of a search_path the
 * URL's options set (postgresql://…/db?options=-csearch_path%3Dsales_retl):
 * libpq's own way to name a schema, so the URL stays a plain libpq URL.
 * A plain lower-case name only, since it is written into SQL.
 */
static int pick_schema(retl_state *st, struct retl_err *err)
{
	int failed;
	char *v = scalar(st, "SELECT setting FROM pg_settings WHERE name = "
			 "'search_path' AND source = 'client'", NULL, &failed);
	size_t n;

	if (failed) {
		free(v);
		return retl_state__db_err(st, err);
	}
	if (!v) {
		st->schema = retl_strdup(SCHEMA);
		return 0;
	}
	n = strcspn(v, ", ");
	v[n] = '\0';
	int ok = n > 0 && n < 64 && !(v[0] >= '0' && v[0] <= '9');
	for (size_t i = 0; ok && i < n; i++)
		ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
		     v[i] == '_';
	if (!ok) {
		int rc = retl_err_set(err, RETL_EXIT_USAGE, "state store %s: "
				      "search_path \"%s\": the store's schema "
				      "must be a lower-case name of letters, "
				      "digits and _", st->path, v);
		free(v);
		return rc;
	}
	st->schema = v;
	return 0;
}

/* the local directory's files: "<local>/pgstate.<sync>.cache" */
static int local_files(retl_state *st, const char *local,
		       struct retl_err *err)
{
	retl_buf b = RETL_BUF_INIT;

	if (!local)
		local = ".retl";
	if (mkdir(local, 0700) < 0 && errno != EEXIST)
		return retl_state__sys_err(st, err, "cannot create directory",
					   local);
	retl_buf_addf(&b, "%s/pgstate", local);
	free(st->files);
	st->files = retl_buf_detach(&b);
	return 0;
}

int retl_state__pg_open(retl_state *st, const char *url, const char *local,
			int observer, const char *const *migrations,
			int nmigrations, struct retl_err *err)
{
	st->pg = 1;
	free(st->path);
	st->path = display_url(url);
	retl_redact_dsn_password(url);
	if (retl_db_pg_open(&st->db, url) < 0) {
		const char *m = retl_db_errmsg(st->db);
		/* a server that does not answer is an outage (6); one that
		 * refuses us is the setup (2) */
		int setup = strstr(m, "authentication") ||
			    strstr(m, "does not exist") ||
			    strstr(m, "permission denied") ||
			    strstr(m, "invalid") || strstr(m, "no password");
		return pg_fail(st, setup ? RETL_EXIT_USAGE : RETL_EXIT_STATE,
			       "cannot connect", err);
	}
	retl_buf set = RETL_BUF_INIT;
	int rc = retl_state__exec(st, "SET client_min_messages TO warning",
				  err) < 0 || pick_schema(st, err) < 0;
	if (!rc) {
		retl_buf_addf(&set, "SET search_path TO %s", st->schema);
		rc = retl_state__exec(st, retl_buf_cstr(&set), err) < 0;
	}
	retl_buf_free(&set);
	if (rc)
		return -1;
	if (observer)
		return 0;
	if (local_files(st, local, err) < 0)
		return -1;
	return pg_migrate(st, migrations, nmigrations, err);
}

/* ---- the run lock ---- */

static int64_t lock_key(retl_state *st, const char *sync)
{
	retl_buf b = RETL_BUF_INIT;
	uint64_t h;

	retl_buf_adds(&b, "retl run lock");
	retl_buf_addc(&b, '\0');
	retl_buf_adds(&b, st->schema);
	retl_buf_addc(&b, '\0');
	retl_buf_adds(&b, sync);
	h = retl_hash64(b.ptr, b.len, 0);
	retl_buf_free(&b);
	return (int64_t)h;
}

static int key_call(retl_state *st, const char *fn, const char *sync,
		    struct retl_err *err)
{
	retl_buf sql = RETL_BUF_INIT;
	retl_db_stmt *s;
	int rc = -1;

	retl_buf_addf(&sql, "SELECT %s(CAST(?1 AS BIGINT))", fn);
	if (retl_state__prepare(st, retl_buf_cstr(&sql), &s, err) == 0) {
		retl_db_bind_int64(s, 1, lock_key(st, sync));
		if (retl_db_step(s) == RETL_DB_ROW)
			rc = !strcmp(retl_db_col_text(s, 0), "t");
		else
			retl_state__db_err(st, err);
		retl_db_finalize(s);
	}
	retl_buf_free(&sql);
	return rc;
}

/* the last holder's host and pid, from run_locks */
static void last_holder(retl_state *st, const char *sync, retl_buf *host,
			long *pid)
{
	retl_db_stmt *s;

	*pid = 0;
	if (retl_db_prepare(st->db, "SELECT host, pid FROM run_locks WHERE "
			    "sync = ?1", &s) < 0)
		return;
	retl_db_bind_textn(s, 1, sync, -1);
	if (retl_db_step(s) == RETL_DB_ROW) {
		if (retl_db_col_text(s, 0))
			retl_buf_adds(host, retl_db_col_text(s, 0));
		*pid = (long)retl_db_col_int64(s, 1);
	}
	retl_db_finalize(s);
}

int retl_state__pg_lock(retl_state *st, const char *sync, struct retl_err *err)
{
	retl_buf host = RETL_BUF_INIT;
	char me[256];
	long pid;
	retl_db_stmt *s;
	int rc = key_call(st, "pg_try_advisory_lock", sync, err);

	if (rc < 0)
		return -1;
	last_holder(st, sync, &host, &pid);
	if (rc == 0) {
		rc = retl_err_set(err, RETL_EXIT_USAGE, "sync %s is already "
				  "running (host %s, pid %ld)", sync,
				  host.len ? host.ptr : "unknown", pid);
		retl_buf_free(&host);
		return rc;
	}
	retl_buf_free(&host);
	if (retl_state__abandon_runs(st, sync, pid, err) < 0)
		goto fail;
	if (gethostname(me, sizeof(me)) < 0)
		strcpy(me, "unknown");
	me[sizeof(me) - 1] = '\0';
	if (retl_state__prepare(st, "INSERT INTO run_locks(sync, host, pid, "
				"taken_at) VALUES(?1, ?2, ?3, ?4) ON CONFLICT"
				"(sync) DO UPDATE SET host = excluded.host, "
				"pid = excluded.pid, taken_at = "
				"excluded.taken_at", &s, err) < 0)
		goto fail;
	retl_db_bind_textn(s, 1, sync, -1);
	retl_db_bind_textn(s, 2, me, -1);
	retl_db_bind_int64(s, 3, (int64_t)getpid());
	retl_db_bind_textn(s, 4, retl_state__now(st), -1);
	rc = retl_state__done(st, s, err);
	retl_db_finalize(s);
	if (rc == 0)
		return 0;
fail:
	key_call(st, "pg_advisory_unlock", sync, NULL);
	return -1;
}

void retl_state__pg_unlock(retl_state *st, const char *sync)
{
	key_call(st, "pg_advisory_unlock", sync, NULL);
}

int retl_state__pg_lock_held(retl_state *st, const char *sync)
{
	uint64_t k = (uint64_t)lock_key(st, sync);
	retl_db_stmt *s;
	int rc = -1;

	/* a bigint advisory lock shows as classid = high half, objid = low
	 * half, objsubid = 1 */
	if (retl_db_prepare(st->db, "SELECT count(*) FROM pg_locks WHERE "
			    "locktype = 'advisory' AND database = (SELECT oid "
			    "FROM pg_database WHERE datname = "
			    "current_database()) AND classid::text::bigint = ?1 "
			    "AND objid::text::bigint = ?2 AND objsubid = 1 AND "
			    "granted", &s) < 0)
		return -1;
	retl_db_bind_int64(s, 1, (int64_t)(k >> 32));
	retl_db_bind_int64(s, 2, (int64_t)(k & 0xffffffffu));
	if (retl_db_step(s) == RETL_DB_ROW)
		rc = retl_db_col_int64(s, 0) > 0;
	retl_db_finalize(s);
	return rc;
}

int retl_state__pg_probe(retl_state *st, struct retl_err *err)
{
	int failed;
	char *v = scalar(st, "SELECT NOT pg_is_in_recovery() AND "
			 "has_table_privilege('cache', 'INSERT, UPDATE, DELETE')",
			 NULL, &failed);
	int ok = v && !strcmp(v, "t");

	free(v);
	if (ok)
		return 0;
	if (failed)
		return retl_err_set(err, retl_state__code(retl_db_errkind(st->db)),
				    "state store %s is not writable: %s",
				    st->path, retl_db_errmsg(st->db));
	return retl_err_set(err, RETL_EXIT_USAGE, "state store %s is not "
			    "writable: a standby, or no INSERT, UPDATE, DELETE "
			    "on %s.cache", st->path, st->schema);
}
