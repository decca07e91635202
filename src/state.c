/*
 * state.c - the state store, see state.h and DESIGN.md "The state store":
 * the schema and its migrations, open and close, the statements prepared
 * at open, transactions, and the helpers the other state files share
 * (state_int.h lists the files).
 *
 * One SQLite file in WAL mode with synchronous=NORMAL: a commit survives
 * the death of the process (kill -9), which is what the engine's "commit
 * after each acknowledged batch" rule needs; only a power loss may drop the
 * last few commits, and those rows are then simply sent again.
 *
 * The per-row statements (ack, fail, set_src, pending, forget, outcome,
 * dest_id) are prepared once at open and reset after each use: the first
 * run of a large sync acknowledges a million rows, ~500 per transaction.
 *
 * An observer handle (retl_state_open_observer) is the daemon's short
 * look at a store another process writes: no file created, no migration,
 * no statement prepared.
 *
 * The statements run on SQLite and on PostgreSQL (state_pg.c, db_pg.c) as
 * written.  What the two dialects do not share is kept here and in db.h,
 * not spelled per statement:
 *   - case folding: NOCASE(x) below (ASCII only on both);
 *   - BEGIN IMMEDIATE (SQLite) / BEGIN: retl_db_begin's modes;
 *   - SQLite's INSERT-then-UPSERT fallback (a failed INSERT aborts a
 *     PostgreSQL transaction): struct retl_db's upsert_only;
 *   - the schema: migrations[] are SQLite's (WITHOUT ROWID, INTEGER
 *     PRIMARY KEY, untyped meta.value); PostgreSQL's tables are created at
 *     version RETL_STATE_PG_BASE by state_pg.c and take the entries after
 *     it, which must therefore be SQL both accept;
 *   - dates: computed in C from the ISO 8601 text (no julianday);
 *   - parameters PostgreSQL cannot type from their use are CAST.
 * Both take ON CONFLICT ... DO NOTHING / DO UPDATE (target columns named
 * cache.x, PostgreSQL finds a bare name ambiguous there), IS DISTINCT
 * FROM, RETURNING, AS MATERIALIZED, a column named rowid (PostgreSQL's
 * outcomes has one).
 */
#include "state.h"
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#include <sqlite3.h>

/*
 * Schema migrations: migrations[i] takes the store from version i to i + 1.
 * Never edit a shipped entry; append one.  Entries from index
 * RETL_STATE_PG_BASE (8) on also run on PostgreSQL stores (state_pg.c):
 * write them in SQL both accept, or give state_pg.c its own version.
 */
static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE cache("
	" sync TEXT NOT NULL, key TEXT NOT NULL,"
	" kh_lo INTEGER, kh_hi INTEGER, pay_lo INTEGER, pay_hi INTEGER,"
	" src INTEGER, dest_id TEXT, status INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
	" first_failed_at TEXT, created_at TEXT, updated_at TEXT,"
	" PRIMARY KEY(sync, key)) WITHOUT ROWID;"
	/* failing rows are few: keep them findable without a scan */
	"CREATE INDEX cache_failed ON cache(sync, key) WHERE status = 2;"
	"CREATE TABLE runs("
	" id INTEGER PRIMARY KEY, sync TEXT NOT NULL,"
	" started_at TEXT NOT NULL, ended_at TEXT, status TEXT NOT NULL,"
	" exit_code INTEGER, seconds REAL,"
	" read INTEGER, added INTEGER, changed INTEGER, unchanged INTEGER,"
	" retried INTEGER, removed INTEGER, rejected INTEGER, failed INTEGER,"
	" api_calls INTEGER, retries INTEGER, http_429 INTEGER, message TEXT);"
	"CREATE INDEX runs_sync ON runs(sync, id);"
	"CREATE TABLE outcomes("
	" run_id INTEGER NOT NULL REFERENCES runs(id),"
	" key TEXT, outcome TEXT NOT NULL, reason TEXT);"
	"CREATE INDEX outcomes_run ON outcomes(run_id);",
	/* 2: the cache generation, which stamps cache images (cache.h) */
	"CREATE TABLE cache_gen(sync TEXT PRIMARY KEY, gen INTEGER NOT NULL)"
	" WITHOUT ROWID;",
	/* 3: requests spent per destination and UTC day (daily_limit) */
	"CREATE TABLE api_usage(dest TEXT NOT NULL, day TEXT NOT NULL,"
	" calls INTEGER NOT NULL, PRIMARY KEY(dest, day)) WITHOUT ROWID;",
	/* 4: rows handed to a destination that reports later (status 4,
	 * STAGED: the payload and source hashes that advance when the row
	 * is acknowledged, and the engine's kind of change), and durable
	 * per-sync notes of destinations (a bulk job id) */
	"ALTER TABLE cache ADD COLUMN staged_pay_lo INTEGER;"
	"ALTER TABLE cache ADD COLUMN staged_pay_hi INTEGER;"
	"ALTER TABLE cache ADD COLUMN staged_src INTEGER;"
	"ALTER TABLE cache ADD COLUMN staged_op INTEGER;"
	"CREATE TABLE dest_notes(sync TEXT NOT NULL, name TEXT NOT NULL,"
	" value TEXT NOT NULL, PRIMARY KEY(sync, name)) WITHOUT ROWID;",
	/* 5: record identity.  match: the match value of the record the key
	 * is bound to (as acknowledged), match_h its hash (retl_match_hash:
	 * ASCII case ignored unless the destination compares exactly, as the
	 * statements below compare too); sent: an operation
	 * was handed over since the last acknowledgement (a record may
	 * exist), with the match value sent_match.  orphans: records no key
	 * is bound to any more, removed by mirror runs */
	"ALTER TABLE cache ADD COLUMN match TEXT;"
	"ALTER TABLE cache ADD COLUMN match_h INTEGER;"
	"ALTER TABLE cache ADD COLUMN sent INTEGER;"
	"ALTER TABLE cache ADD COLUMN sent_match TEXT;"
	"CREATE TABLE orphans(sync TEXT NOT NULL, match TEXT NOT NULL,"
	" dest_id TEXT, since TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
	" last_error TEXT, PRIMARY KEY(sync, match)) WITHOUT ROWID;"
	/* rows not synced for a reason retl failures and /metrics count */
	"CREATE INDEX cache_unsynced ON cache(sync, updated_at) WHERE status IN (3, 4);",
	/* 6: a synced row says which run last changed it and how (last_run,
	 * last_change: 0 added, 1 changed, 2 retried), instead of an
	 * "added"/"changed" outcome row per row and run: outcomes keep what
	 * did not end synced (failed, rejected) and removals.  Synced rows
	 * store no timestamps (the run has them) and no key hash (it is
	 * XXH3-128 of the key, recomputed when read): the bytes a row costs */
	"ALTER TABLE cache ADD COLUMN last_run INTEGER;"
	"ALTER TABLE cache ADD COLUMN last_change INTEGER;",
	/* 7: alert conditions per sync and what each notify channel was
	 * last told (state_alerts.h) */
	"CREATE TABLE alerts(sync TEXT NOT NULL, cond TEXT NOT NULL,"
	" channel TEXT NOT NULL, active INTEGER NOT NULL, run_id INTEGER,"
	" event TEXT, updated_at TEXT,"
	" PRIMARY KEY(sync, cond, channel)) WITHOUT ROWID;",
	/* 8: run statuses say what happened (state.h RETL_RUN_*): "failed"
	 * meant "completed, some rows failed" (exit 1), "error" and
	 * "refused" a run that stopped.  allow_removals: the run's
	 * --allow-removals N.  runs_running: every lock and every report
	 * looks for runs still "running" (a few) among all (many) */
	"UPDATE runs SET status = 'rows rejected' WHERE status = 'failed'"
	" AND exit_code = 1;"
	"UPDATE runs SET status = 'failed' WHERE status IN ('error', 'refused');"
	"ALTER TABLE runs ADD COLUMN allow_removals INTEGER;"
	"CREATE INDEX runs_running ON runs(sync) WHERE status = 'running';",
	/* 9: each sync's next due time, shared by every `retl daemon` on the
	 * store: a due run is claimed by one worker (state_claims.c).
	 * next_due in milliseconds since the epoch (UTC); schedule is the
	 * claimer's schedule text; plain portable SQL for the PostgreSQL
	 * store (BIGINT, no WITHOUT ROWID) */
	"CREATE TABLE claims(sync TEXT PRIMARY KEY, next_due BIGINT NOT NULL,"
	" schedule TEXT NOT NULL, owner TEXT NOT NULL, claimed_at TEXT NOT NULL);",
	/* 10: sync logs in the warehouse (state_audit.c): audited is 0 for a
	 * run whose logs are still to be written, 1 once written, NULL for a
	 * run of a sync without "audit" */
	"ALTER TABLE runs ADD COLUMN audited INTEGER;"
	"CREATE INDEX runs_audit ON runs(sync, id) WHERE audited = 0;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/*
 * ASCII-only case folding, the same on both backends: SQLite's lower()
 * folds ASCII only, PostgreSQL's does under the "C" collation (and
 * db_sqlite.c gives SQLite a collation of that name).  retl_match_hash
 * ignores ASCII case only, so the statements must too.
 */
#define NOCASE(x) "lower(" x " COLLATE \"C\")"

#define CACHE_COLS "INSERT INTO cache(sync, key, kh_lo, kh_hi, pay_lo, " \
	"pay_hi, src, dest_id, status, attempts, last_error, " \
	"first_failed_at, created_at, updated_at) "

static const char *const stmt_sql[S_COUNT] = {
	[S_ACK] = "INSERT INTO cache(sync, key, pay_lo, pay_hi, src, dest_id, "
	"status, attempts, match, match_h, last_run, last_change) "
	"VALUES(?1, ?2, ?5, ?6, ?7, ?8, 1, 0, ?10, ?11, ?13, ?14) "
	"ON CONFLICT(sync, key) DO UPDATE SET kh_lo = NULL, kh_hi = NULL, "
	"pay_lo = excluded.pay_lo, "
	"pay_hi = excluded.pay_hi, src = excluded.src, "
	"dest_id = CASE WHEN (?12 AND excluded.match IS DISTINCT FROM "
	"cache.match) OR (NOT ?12 AND " NOCASE("excluded.match") " IS DISTINCT "
	"FROM " NOCASE("cache.match") ") "
	"THEN excluded.dest_id ELSE COALESCE(excluded.dest_id, cache.dest_id) END, "
	"status = 1, attempts = 0, last_error = NULL, first_failed_at = NULL, "
	"created_at = NULL, updated_at = NULL, match = excluded.match, "
	"match_h = excluded.match_h, sent = NULL, sent_match = NULL, "
	"last_run = excluded.last_run, last_change = excluded.last_change",

	/* the same for a key with no row yet, without the UPSERT, which
	 * costs SQLite a statement journal per row */
	[S_ACK_NEW] = "INSERT INTO cache(sync, key, pay_lo, pay_hi, src, dest_id, "
	"status, attempts, match, match_h, last_run, last_change) "
	"VALUES(?1, ?2, ?5, ?6, ?7, ?8, 1, 0, ?10, ?11, ?13, ?14)",

	/* before an ack: the records the key leaves (its bound record and
	 * one it may have made) become orphans when the match moves */
	[S_ORPHAN_BOUND] = "INSERT INTO orphans(sync, match, dest_id, since) "
	"SELECT sync, match, dest_id, CAST(?4 AS TEXT) FROM cache WHERE sync = ?1 "
	"AND key = ?2 AND match IS NOT NULL AND (CASE WHEN ?5 THEN match <> ?3 "
	"ELSE " NOCASE("match") " <> " NOCASE("?3") " END) "
	"ON CONFLICT DO NOTHING",
	[S_ORPHAN_SENT] = "INSERT INTO orphans(sync, match, dest_id, since) "
	"SELECT sync, sent_match, NULL, CAST(?4 AS TEXT) FROM cache WHERE sync = ?1 "
	"AND key = ?2 AND sent = 1 AND sent_match IS NOT NULL "
	"AND (CASE WHEN ?5 THEN sent_match <> ?3 ELSE "
	NOCASE("sent_match") " <> " NOCASE("?3") " END) "
	"AND (match IS NULL OR (CASE WHEN ?5 THEN sent_match <> match "
	"ELSE " NOCASE("sent_match") " <> " NOCASE("match") " END)) "
	"ON CONFLICT DO NOTHING",

	/* handed over: a record may exist from now on */
	[S_SENT] = "INSERT INTO cache(sync, key, kh_lo, kh_hi, status, attempts, "
	"created_at, updated_at, sent, sent_match) "
	"VALUES(?1, ?2, ?3, ?4, 3, 0, ?5, ?5, 1, ?6) "
	"ON CONFLICT(sync, key) DO UPDATE SET sent = 1, sent_match = ?6",

	[S_ORPHAN_DONE] = "DELETE FROM orphans WHERE sync = ?1 AND match = ?2",
	[S_ORPHAN_FAIL] = "UPDATE orphans SET attempts = attempts + 1, "
	"last_error = ?3 WHERE sync = ?1 AND match = ?2",

	[S_FAIL] = CACHE_COLS
	"VALUES(?1, ?2, ?3, ?4, NULL, NULL, NULL, ?5, 2, 1, ?6, ?7, ?7, ?7) "
	"ON CONFLICT(sync, key) DO UPDATE SET status = 2, "
	"attempts = cache.attempts + 1, last_error = excluded.last_error, "
	"first_failed_at = COALESCE(cache.first_failed_at, "
	"excluded.first_failed_at), src = NULL, "
	"dest_id = COALESCE(excluded.dest_id, cache.dest_id), "
	"updated_at = excluded.updated_at",

	[S_SET_SRC] = "UPDATE cache SET src = ?3 WHERE sync = ?1 AND key = ?2",

	[S_PENDING] = CACHE_COLS
	"VALUES(?1, ?2, ?3, ?4, NULL, NULL, NULL, ?5, 3, 0, NULL, NULL, ?6, ?6) "
	"ON CONFLICT(sync, key) DO UPDATE SET status = 3, "
	"dest_id = COALESCE(excluded.dest_id, cache.dest_id), "
	"updated_at = excluded.updated_at",

	[S_FORGET] = "DELETE FROM cache WHERE sync = ?1 AND key = ?2",
	[S_OUTCOME] = ("INSERT INTO outcomes(run_id, key, outcome, reason) "
		       "VALUES(?1, ?2, ?3, ?4)"),
	[S_DEST_ID] = "SELECT dest_id FROM cache WHERE sync = ?1 AND key = ?2",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_GEN_GET] = "SELECT gen FROM cache_gen WHERE sync = ?1",
	[S_GEN_SET] = "INSERT INTO cache_gen(sync, gen) VALUES(?1, ?2) "
	"ON CONFLICT(sync) DO UPDATE SET gen = excluded.gen",

	[S_STAGE] = "INSERT INTO cache(sync, key, kh_lo, kh_hi, pay_lo, pay_hi, "
	"src, dest_id, status, attempts, created_at, updated_at, staged_pay_lo, "
	"staged_pay_hi, staged_src, staged_op) "
	"VALUES(?1, ?2, ?3, ?4, NULL, NULL, NULL, ?5, 4, 0, ?6, ?6, ?7, ?8, ?9, ?10) "
	"ON CONFLICT(sync, key) DO UPDATE SET status = 4, "
	"dest_id = COALESCE(excluded.dest_id, cache.dest_id), "
	"staged_pay_lo = excluded.staged_pay_lo, "
	"staged_pay_hi = excluded.staged_pay_hi, "
	"staged_src = excluded.staged_src, staged_op = excluded.staged_op, "
	"updated_at = excluded.updated_at",

	[S_STAGED] = "SELECT staged_op FROM cache WHERE sync = ?1 AND key = ?2 "
	"AND status = 4",

	[S_UNSTAGE_OK] = "UPDATE cache SET status = 1, pay_lo = staged_pay_lo, "
	"pay_hi = staged_pay_hi, src = staged_src, "
	"dest_id = COALESCE(?3, dest_id), attempts = 0, last_error = NULL, "
	"first_failed_at = NULL, staged_pay_lo = NULL, staged_pay_hi = NULL, "
	"last_run = ?5, last_change = staged_op, "
	"staged_src = NULL, staged_op = NULL, created_at = NULL, updated_at = NULL "
	"WHERE sync = ?1 AND key = ?2 AND status = 4",

	[S_UNSTAGE_FAIL] = "UPDATE cache SET status = 2, attempts = attempts + 1, "
	"last_error = ?3, first_failed_at = COALESCE(first_failed_at, ?4), "
	"src = NULL, staged_pay_lo = NULL, staged_pay_hi = NULL, "
	"staged_src = NULL, staged_op = NULL, updated_at = ?4 "
	"WHERE sync = ?1 AND key = ?2 AND status = 4",
};

/* ---- helpers shared by the state files ---- */

int retl_state__code(enum retl_db_kind kind)
{
	switch (kind) {
	case RETL_DB_ECORRUPT:
	case RETL_DB_EFULL:
	case RETL_DB_EIO:
		return RETL_EXIT_STATE;
	default:
		return RETL_EXIT_USAGE;
	}
}

int retl_state__errno_code(int e)
{
	return e == ENOSPC || e == EDQUOT || e == EIO || e == EFBIG ?
	       RETL_EXIT_STATE : RETL_EXIT_USAGE;
}

int retl_state__db_err(retl_state *st, struct retl_err *err)
{
	enum retl_db_kind kind = retl_db_errkind(st->db);

	if (kind == RETL_DB_ECORRUPT && !st->pg)
		return retl_err_set(err, RETL_EXIT_STATE, "state store %s is "
				    "damaged (%s). Restore it from a backup, or move "
				    "it away and start over with `retl reset --all` "
				    "(every sync's cache is forgotten: the next runs "
				    "send every row again)", st->path,
				    retl_db_errmsg(st->db));
	return retl_err_set(err, retl_state__code(kind), "state store %s: %s%s",
			    st->path, retl_db_errmsg(st->db),
			    kind == RETL_DB_EFULL && !st->pg ? " (the disk or "
			    "the file's size limit is full: make room and run "
			    "again)" : "");
}

int retl_state__prepare(retl_state *st, const char *sql, retl_db_stmt **s,
			struct retl_err *err)
{
	if (retl_db_prepare(st->db, sql, s) < 0) {
		*s = NULL;
		return retl_state__db_err(st, err);
	}
	return 0;
}

/* steps s to completion, then resets it */
int retl_state__done(retl_state *st, retl_db_stmt *s, struct retl_err *err)
{
	int rc;

	while ((rc = retl_db_step(s)) == RETL_DB_ROW)
		;
	if (rc != RETL_DB_DONE) {
		retl_state__db_err(st, err);
		retl_db_reset(s);
		return -1;
	}
	retl_db_reset(s);
	return 0;
}

/* "2026-11-25T01:02:03.456Z" in a buffer of st, valid until the next call */
const char *retl_state__now(retl_state *st)
{
	struct timespec ts;
	int ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != st->ts_sec) {
		struct tm tm;

		gmtime_r(&ts.tv_sec, &tm);
		strftime(st->ts, sizeof(st->ts), "%Y-%m-%dT%H:%M:%S", &tm);
		st->ts_sec = ts.tv_sec;
	}
	ms = (int)(ts.tv_nsec / 1000000);
	st->ts[19] = '.';
	st->ts[20] = (char)('0' + ms / 100);
	st->ts[21] = (char)('0' + ms / 10 % 10);
	st->ts[22] = (char)('0' + ms % 10);
	st->ts[23] = 'Z';
	st->ts[24] = '\0';
	return st->ts;
}

int retl_state__exec(retl_state *st, const char *sql, struct retl_err *err)
{
	if (retl_db_exec(st->db, sql) < 0)
		return retl_state__db_err(st, err);
	return 0;
}

int retl_state__sys_err(retl_state *st, struct retl_err *err,
			const char *what, const char *file)
{
	int e = errno;
	return retl_err_set(err, retl_state__errno_code(e),
			    "state store %s: %s %s: %s", st->path, what, file,
			    strerror(e));
}

/* ---- open, migrate, close ---- */

/* the store's directory, one level, private like the file */
static int make_parent(retl_state *st, struct retl_err *err)
{
	const char *slash = strrchr(st->path, '/');
	char *dir;
	int rc = 0;

	if (!slash || slash == st->path)
		return 0;
	dir = retl_strndup(st->path, (size_t)(slash - st->path));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		rc = retl_state__sys_err(st, err, "cannot create directory", dir);
	free(dir);
	return rc;
}

static int create_private(retl_state *st, struct retl_err *err)
{
	int fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return retl_state__sys_err(st, err, "cannot open", st->path);
	if (fchmod(fd, 0600) < 0) {
		retl_state__sys_err(st, err, "cannot chmod 0600", st->path);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int migrate(retl_state *st, struct retl_err *err)
{
	retl_db_stmt *s = NULL;
	int have = 0, i;

	if (retl_db_begin(st->db, RETL_DB_WRITE) < 0)
		return retl_state__db_err(st, err);
	if (retl_state__exec(st, "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY,"
		 " value) WITHOUT ROWID", err) < 0)
		goto fail;
	if (retl_state__prepare(st, "SELECT value FROM meta"
				" WHERE key = 'schema_version'", &s, err) < 0)
		goto fail;
	/* a step that fails is not "no version" (a new store): a damaged
	 * page here once made retl run the first migration on a used store */
	i = retl_db_step(s);
	if (i == RETL_DB_ROW)
		have = retl_db_col_int(s, 0);
	else if (i != RETL_DB_DONE)
		retl_state__db_err(st, err);
	retl_db_finalize(s);
	if (i != RETL_DB_ROW && i != RETL_DB_DONE)
		goto fail;
	if (have > SCHEMA_VERSION) {
		retl_err_set(err, RETL_EXIT_USAGE, "state store %s: schema "
			     "version %d is newer than this retl knows (%d)",
			     st->path, have, SCHEMA_VERSION);
		goto fail;
	}
	for (i = have; i < SCHEMA_VERSION; i++)
		if (retl_state__exec(st, migrations[i], err) < 0)
			goto fail;
	if (have != SCHEMA_VERSION) {
		if (retl_state__prepare(st, "INSERT INTO meta(key, value) "
					"VALUES('schema_version', ?1) ON CONFLICT"
					"(key) DO UPDATE SET value = "
					"excluded.value", &s, err) < 0)
			goto fail;
		retl_db_bind_int(s, 1, SCHEMA_VERSION);
		i = retl_state__done(st, s, err);
		retl_db_finalize(s);
		if (i < 0)
			goto fail;
	}
	if (retl_state__exec(st, "COMMIT", err) < 0)
		goto fail;
	return 0;
fail:
	retl_db_exec(st->db, "ROLLBACK");
	return -1;
}

static int configure(retl_state *st, struct retl_err *err)
{
	retl_db_stmt *s;
	int wal;

	if (retl_state__prepare(st, "PRAGMA journal_mode = WAL", &s, err) < 0)
		return -1;
	wal = retl_db_step(s) == RETL_DB_ROW &&
	      !strcmp(retl_db_col_text(s, 0), "wal");
	retl_db_finalize(s);
	if (!wal)
		return retl_err_set(err, retl_state__code(retl_db_errkind(st->db)),
				    "state store %s: cannot enable WAL: %s",
				    st->path, retl_db_errmsg(st->db));
	/* cache_size: a 1M-row cache table is ~100 MB; 16 MB of pages keeps
	 * the upper levels of its b-tree hot while acknowledging */
	return retl_state__exec(st, "PRAGMA synchronous = NORMAL;"
		    "PRAGMA busy_timeout = 5000;"
		    "PRAGMA foreign_keys = ON;"
		    "PRAGMA cache_size = -16384;", err);
}

static void chmod_sidecar(retl_state *st, const char *suffix)
{
	retl_buf p = RETL_BUF_INIT;

	retl_buf_addf(&p, "%s%s", st->path, suffix);
	chmod(p.ptr, 0600);     /* absent until first used: fine */
	retl_buf_free(&p);
}

/* SQLite's handle on st->path (flags: SQLite's); 0 or -1 with err */
static int open_file(retl_state *st, int flags, int busy_ms,
		     struct retl_err *err)
{
	int rc = retl_db_sqlite_open(&st->db, st->path, flags, busy_ms);

	if (rc == 0)
		return 0;
	if (st->db)
		return retl_state__db_err(st, err);
	return retl_err_set(err, RETL_EXIT_USAGE, "state store %s: cannot "
			    "open (SQLite error %d)", st->path, rc);
}

static int open_sqlite(retl_state *st, struct retl_err *err)
{
	mode_t old_mask;
	int rc;

	if (retl_state__marker_check(st, err) < 0)
		return -1;
	if (make_parent(st, err) < 0 || create_private(st, err) < 0)
		return -1;
	/* the -wal and -shm files SQLite creates must be private too */
	old_mask = umask(077);
	/* a handle is used by one thread at a time: no SQLite mutex per call
	 * (they were 3 % of a first run) */
	rc = open_file(st, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		       SQLITE_OPEN_NOMUTEX, 5000, err) < 0 ||
	     configure(st, err) < 0 || migrate(st, err) < 0;
	umask(old_mask);
	if (rc)
		return -1;
	chmod_sidecar(st, "-wal");
	chmod_sidecar(st, "-shm");
	return 0;
}

static retl_state *state_new(const char *path)
{
	retl_state *st = retl_calloc(1, sizeof(*st));

	st->path = retl_strdup(path);
	st->files = retl_strdup(path);
	st->ts_sec = -1;
	st->owner = getpid();
	return st;
}

int retl_state_open_at(retl_state **out, const char *path, const char *local,
		       struct retl_err *err)
{
	retl_state *st = state_new(path);
	int i;

	*out = NULL;
	if (retl_state__is_pg(path)) {
		if (retl_state__pg_open(st, path, local, 0, migrations,
					SCHEMA_VERSION, err) < 0)
			goto fail;
	} else if (open_sqlite(st, err) < 0) {
		goto fail;
	}
	for (i = 0; i < S_COUNT; i++)
		if (retl_state__prepare(st, stmt_sql[i], &st->stmt[i], err) < 0)
			goto fail;
	if (!st->pg && retl_state__marker_bind(st, err) < 0)
		goto fail;
	*out = st;
	return 0;
fail:
	retl_state_close(st);
	return -1;
}

int retl_state_open(retl_state **out, const char *path, struct retl_err *err)
{
	return retl_state_open_at(out, path, NULL, err);
}

void retl_state_close(retl_state *st)
{
	size_t i;

	if (!st)
		return;
	retl_state__drop_locks(st);
	free(st->clocks);
	/* a forked child's copy of a PostgreSQL session is its parent's:
	 * closing it would end the parent's session (and its locks) */
	if (!st->pg || st->owner == getpid()) {
		for (i = 0; i < S_COUNT; i++)
			retl_db_finalize(st->stmt[i]);
		retl_db_close(st->db);
	}
	free(st->gen_sync);
	retl_state_mirror(st, NULL, NULL);
	free(st->path);
	free(st->files);
	free(st->schema);
	free(st);
}

/*
 * The daemon's look at a store other processes write: the file must
 * exist (never created, never migrated, its modes left alone) and a busy
 * writer is waited for 2 s at most, so a scrape answers while a run holds
 * a long transaction.  In PostgreSQL: a connection, no schema change.
 */
int retl_state_open_observer(retl_state **out, const char *path,
			     struct retl_err *err)
{
	retl_state *st = state_new(path);

	*out = NULL;
	if (retl_state__is_pg(path) ?
	    retl_state__pg_open(st, path, NULL, 1, migrations, SCHEMA_VERSION,
				err) < 0 :
	    open_file(st, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, 2000,
		      err) < 0) {
		retl_state_close(st);
		return -1;
	}
	*out = st;
	return 0;
}

const char *retl_state_name(retl_state *st)
{
	return st->path;
}

/* ---- transactions ---- */

/* a transaction's end: the next one changes the generation afresh */
static void end_txn(retl_state *st)
{
	free(st->gen_sync);
	st->gen_sync = NULL;
}

int retl_state_begin(retl_state *st, struct retl_err *err)
{
	end_txn(st);
	retl_state__mirror_begin(st);
	if (retl_db_begin(st->db, RETL_DB_WRITE) < 0)
		return retl_state__db_err(st, err);
	return 0;
}

/* on failure the transaction may still be open: call retl_state_rollback */
int retl_state_commit(retl_state *st, struct retl_err *err)
{
	end_txn(st);
	if (retl_state_check_file(st, err) < 0)
		return -1;
	if (retl_state__done(st, st->stmt[S_COMMIT], err) < 0)
		return -1;
	retl_state__mirror_end(st, 1);
	return 0;
}

void retl_state_rollback(retl_state *st)
{
	end_txn(st);
	retl_state__mirror_end(st, 0);
	if (retl_db_in_txn(st->db))
		retl_state__done(st, st->stmt[S_ROLLBACK], NULL);
}

/*
 * Takes the write lock without writing, and lets it go: fails when the
 * file, its directory or the disk refuse writes (or a writer hangs on).
 */
int retl_state_probe_writable(retl_state *st, struct retl_err *err)
{
	int ok;

	if (retl_db_in_txn(st->db))
		return retl_err_set(err, RETL_EXIT_USAGE, "state store %s: "
				    "probed inside a transaction", st->path);
	if (st->pg)
		return retl_state__pg_probe(st, err);
	ok = retl_db_begin(st->db, RETL_DB_WRITE) == 0;
	if (!ok)
		retl_err_set(err, retl_state__code(retl_db_errkind(st->db)),
			     "state store %s is not writable: %s", st->path,
			     retl_db_errmsg(st->db));
	retl_db_exec(st->db, "ROLLBACK");
	return ok ? 0 : -1;
}
