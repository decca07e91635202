/*
 * state.c - the state store, see state.h and DESIGN.md "The state store".
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
 * Hashes are uint64 stored as the int64 with the same bits; a payload hash
 * of {0,0} and a source hash of 0 ("none") are stored as NULL.
 *
 * The run lock is an flock(2) on "<db>.<sync>.lock" rather than a row in
 * the database: the kernel drops it when the holder dies, so a killed run
 * never leaves a stale lock and nothing has to guess whether a pid is
 * still alive.  The file holds the holder's pid for the error message.
 *
 * The run history (runs, outcomes) and its reports live in state_report.c.
 */
#include "state.h"
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

#include "buf.h"

#define SCAN_CHUNK 1000

/*
 * Schema migrations: migrations[i] takes the store from version i to i + 1.
 * Never edit a shipped entry; append one.
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
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

#define CACHE_COLS "INSERT INTO cache(sync, key, kh_lo, kh_hi, pay_lo, " \
	"pay_hi, src, dest_id, status, attempts, last_error, " \
	"first_failed_at, created_at, updated_at) "

static const char *const stmt_sql[S_COUNT] = {
	[S_ACK] = CACHE_COLS
	"VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, 0, NULL, NULL, ?9, ?9) "
	"ON CONFLICT(sync, key) DO UPDATE SET kh_lo = excluded.kh_lo, "
	"kh_hi = excluded.kh_hi, pay_lo = excluded.pay_lo, "
	"pay_hi = excluded.pay_hi, src = excluded.src, "
	"dest_id = COALESCE(excluded.dest_id, dest_id), status = 1, "
	"attempts = 0, last_error = NULL, first_failed_at = NULL, "
	"updated_at = excluded.updated_at",

	[S_FAIL] = CACHE_COLS
	"VALUES(?1, ?2, ?3, ?4, NULL, NULL, NULL, ?5, 2, 1, ?6, ?7, ?7, ?7) "
	"ON CONFLICT(sync, key) DO UPDATE SET status = 2, "
	"attempts = attempts + 1, last_error = excluded.last_error, "
	"first_failed_at = COALESCE(first_failed_at, "
	"excluded.first_failed_at), src = NULL, "
	"dest_id = COALESCE(excluded.dest_id, dest_id), "
	"updated_at = excluded.updated_at",

	[S_SET_SRC] = "UPDATE cache SET src = ?3 WHERE sync = ?1 AND key = ?2",

	[S_PENDING] = CACHE_COLS
	"VALUES(?1, ?2, ?3, ?4, NULL, NULL, NULL, ?5, 3, 0, NULL, NULL, ?6, ?6) "
	"ON CONFLICT(sync, key) DO UPDATE SET status = 3, "
	"dest_id = COALESCE(excluded.dest_id, dest_id), "
	"updated_at = excluded.updated_at",

	[S_FORGET] = "DELETE FROM cache WHERE sync = ?1 AND key = ?2",
	[S_OUTCOME] = ("INSERT INTO outcomes(run_id, key, outcome, reason) "
		       "VALUES(?1, ?2, ?3, ?4)"),
	[S_DEST_ID] = "SELECT dest_id FROM cache WHERE sync = ?1 AND key = ?2",
	[S_BEGIN] = "BEGIN IMMEDIATE",
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
	"dest_id = COALESCE(excluded.dest_id, dest_id), "
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
	"staged_src = NULL, staged_op = NULL, updated_at = ?4 "
	"WHERE sync = ?1 AND key = ?2 AND status = 4",

	[S_UNSTAGE_FAIL] = "UPDATE cache SET status = 2, attempts = attempts + 1, "
	"last_error = ?3, first_failed_at = COALESCE(first_failed_at, ?4), "
	"src = NULL, staged_pay_lo = NULL, staged_pay_hi = NULL, "
	"staged_src = NULL, staged_op = NULL, updated_at = ?4 "
	"WHERE sync = ?1 AND key = ?2 AND status = 4",
};

struct held_lock {
	char *sync;
	int fd;
	pid_t pid;      /* holder; an entry inherited through fork() is not ours */
};

/* ---- helpers shared with state_report.c ---- */

int retl_state__db_err(retl_state *st, struct retl_err *err)
{
	return retl_err_set(err, RETL_EXIT_USAGE, "state store %s: %s",
			    st->path, sqlite3_errmsg(st->db));
}

int retl_state__prepare(retl_state *st, const char *sql, sqlite3_stmt **s,
			struct retl_err *err)
{
	if (sqlite3_prepare_v2(st->db, sql, -1, s, NULL) != SQLITE_OK) {
		*s = NULL;
		return retl_state__db_err(st, err);
	}
	return 0;
}

/* steps s to completion, then resets it */
int retl_state__done(retl_state *st, sqlite3_stmt *s, struct retl_err *err)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		retl_state__db_err(st, err);
		sqlite3_reset(s);
		return -1;
	}
	sqlite3_reset(s);
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

static void bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
	sqlite3_bind_int64(s, i, (sqlite3_int64)v);
}

static void bind_h128(sqlite3_stmt *s, int i, retl_h128 h)
{
	bind_u64(s, i, h.lo);
	bind_u64(s, i + 1, h.hi);
}

static void bind_opt_h128(sqlite3_stmt *s, int i, retl_h128 h)
{
	if (retl_h128_zero(h)) {
		sqlite3_bind_null(s, i);
		sqlite3_bind_null(s, i + 1);
	} else {
		bind_h128(s, i, h);
	}
}

static uint64_t col_u64(sqlite3_stmt *s, int i)
{
	return (uint64_t)sqlite3_column_int64(s, i);
}

int retl_state__exec(retl_state *st, const char *sql, struct retl_err *err)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return retl_state__db_err(st, err);
	return 0;
}

/* ---- open, migrate, close ---- */

static int sys_err(retl_state *st, struct retl_err *err, const char *what,
		   const char *path)
{
	return retl_err_set(err, RETL_EXIT_USAGE, "state store %s: %s %s: %s",
			    st->path, what, path, strerror(errno));
}

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
		rc = sys_err(st, err, "cannot create directory", dir);
	free(dir);
	return rc;
}

static int create_private(retl_state *st, struct retl_err *err)
{
	int fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return sys_err(st, err, "cannot open", st->path);
	if (fchmod(fd, 0600) < 0) {
		sys_err(st, err, "cannot chmod 0600", st->path);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int migrate(retl_state *st, struct retl_err *err)
{
	sqlite3_stmt *s = NULL;
	int have = 0, i;

	if (retl_state__exec(st, "BEGIN IMMEDIATE", err) < 0)
		return -1;
	if (retl_state__exec(st, "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY,"
		 " value) WITHOUT ROWID", err) < 0)
		goto fail;
	if (retl_state__prepare(st, "SELECT value FROM meta"
				" WHERE key = 'schema_version'", &s, err) < 0)
		goto fail;
	if (sqlite3_step(s) == SQLITE_ROW)
		have = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
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
		if (retl_state__prepare(st, "INSERT OR REPLACE INTO meta"
					"(key, value) VALUES"
					"('schema_version', ?1)", &s, err) < 0)
			goto fail;
		sqlite3_bind_int(s, 1, SCHEMA_VERSION);
		i = retl_state__done(st, s, err);
		sqlite3_finalize(s);
		if (i < 0)
			goto fail;
	}
	if (retl_state__exec(st, "COMMIT", err) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int configure(retl_state *st, struct retl_err *err)
{
	sqlite3_stmt *s;
	int wal;

	sqlite3_busy_timeout(st->db, 5000);
	if (retl_state__prepare(st, "PRAGMA journal_mode = WAL", &s, err) < 0)
		return -1;
	wal = sqlite3_step(s) == SQLITE_ROW &&
	      !strcmp((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	if (!wal)
		return retl_err_set(err, RETL_EXIT_USAGE, "state store %s: "
				    "cannot enable WAL: %s", st->path,
				    sqlite3_errmsg(st->db));
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

int retl_state_open(retl_state **out, const char *path, struct retl_err *err)
{
	retl_state *st = retl_calloc(1, sizeof(*st));
	mode_t old_mask;
	int i, rc;

	*out = NULL;
	st->path = retl_strdup(path);
	st->ts_sec = -1;
	if (make_parent(st, err) < 0 || create_private(st, err) < 0)
		goto fail;
	/* the -wal and -shm files SQLite creates must be private too */
	old_mask = umask(077);
	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE |
			     SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		umask(old_mask);
		if (st->db)
			retl_state__db_err(st, err);
		else
			retl_err_set(err, RETL_EXIT_USAGE, "state store %s: "
				     "%s", path, sqlite3_errstr(rc));
		goto fail;
	}
	rc = configure(st, err) < 0 || migrate(st, err) < 0;
	umask(old_mask);
	if (rc)
		goto fail;
	chmod_sidecar(st, "-wal");
	chmod_sidecar(st, "-shm");
	for (i = 0; i < S_COUNT; i++)
		if (retl_state__prepare(st, stmt_sql[i], &st->stmt[i], err) < 0)
			goto fail;
	*out = st;
	return 0;
fail:
	retl_state_close(st);
	return -1;
}

void retl_state_close(retl_state *st)
{
	size_t i;

	if (!st)
		return;
	/* closing (never LOCK_UN) an fd inherited through fork() leaves the
	 * parent's lock in place */
	for (i = 0; i < st->nlocks; i++) {
		close(st->locks[i].fd);
		free(st->locks[i].sync);
	}
	free(st->locks);
	free(st->clocks);
	for (i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	free(st->gen_sync);
	free(st->path);
	free(st);
}

/* ---- the run lock ---- */

static char *sync_path(retl_state *st, const char *sync, const char *suffix)
{
	retl_buf b = RETL_BUF_INIT;
	const char *p;

	/* the sync name becomes part of a file name: escape what could
	 * leave the directory or confuse a shell user */
	retl_buf_addf(&b, "%s.", st->path);
	for (p = sync; *p; p++) {
		unsigned char ch = (unsigned char)*p;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
		    (ch == '.' && p != sync))
			retl_buf_addc(&b, (char)ch);
		else
			retl_buf_addf(&b, "%%%02X", ch);
	}
	retl_buf_adds(&b, suffix);
	return retl_buf_detach(&b);
}

static char *lock_path(retl_state *st, const char *sync)
{
	return sync_path(st, sync, ".lock");
}

/* the holder writes its pid right after taking the lock: allow it a moment */
static long lock_owner(int fd)
{
	char buf[32];
	int tries;

	for (tries = 0; tries < 50; tries++) {
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		long pid;

		if (n > 0) {
			buf[n] = '\0';
			pid = strtol(buf, NULL, 10);
			if (pid > 0)
				return pid;
		}
		usleep(2000);
	}
	return 0;
}

static int held_by_me(retl_state *st, const char *sync)
{
	size_t i;

	for (i = 0; i < st->nlocks; i++)
		if (st->locks[i].pid == getpid() &&
		    !strcmp(st->locks[i].sync, sync))
			return (int)i;
	return -1;
}

static int already_running(const char *sync, long pid, struct retl_err *err)
{
	if (pid > 0)
		return retl_err_set(err, RETL_EXIT_USAGE, "sync %s is already "
				    "running (pid %ld)", sync, pid);
	return retl_err_set(err, RETL_EXIT_USAGE, "sync %s is already running "
			    "(pid unknown)", sync);
}

int retl_state_lock(retl_state *st, const char *sync, struct retl_err *err)
{
	struct held_lock *h;
	char *path, pid[32];
	int fd, n;

	if (held_by_me(st, sync) >= 0)
		return already_running(sync, (long)getpid(), err);
	path = lock_path(st, sync);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		sys_err(st, err, "cannot open lock file", path);
		free(path);
		return -1;
	}
	fchmod(fd, 0600);
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			already_running(sync, lock_owner(fd), err);
		else
			sys_err(st, err, "cannot lock", path);
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	/* should this fail, the lock still holds: only messages suffer */
	if (ftruncate(fd, 0) == 0)
		n = (int)pwrite(fd, pid, (size_t)n, 0);
	st->locks = retl_realloc(st->locks, (st->nlocks + 1) * sizeof(*h));
	h = &st->locks[st->nlocks++];
	h->sync = retl_strdup(sync);
	h->fd = fd;
	h->pid = getpid();
	return 0;
}

void retl_state_unlock(retl_state *st, const char *sync)
{
	int i = held_by_me(st, sync);

	if (i < 0)
		return;
	/* the file stays: unlinking a lock file races with a process that
	 * has just opened it and would then lock an orphaned inode */
	close(st->locks[i].fd);
	free(st->locks[i].sync);
	st->locks[i] = st->locks[--st->nlocks];
}

/* ---- the cache rows ---- */

static int count_rows(retl_state *st, const char *sync, size_t *n,
		      struct retl_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (retl_state__prepare(st, "SELECT COUNT(*) FROM cache WHERE "
				"sync = ?1", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*n = (size_t)sqlite3_column_int64(s, 0);
	else
		retl_state__db_err(st, err);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}


/* ---- the cache generation ---- */

/*
 * Every transaction that changes a sync's cache rows gives the sync a new
 * random generation, inside that transaction; a cache image is used only
 * while its stamp equals it.  Random, not a counter: a store restored from
 * a backup never matches an image of another history by accident.
 */
static int bump_gen(retl_state *st, const char *sync, struct retl_err *err)
{
	uint64_t gen;

	if (!sqlite3_get_autocommit(st->db) && st->gen_sync &&
	    !strcmp(st->gen_sync, sync))
		return 0;
	if (getrandom(&gen, sizeof(gen), 0) != sizeof(gen))
		gen = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() ^
		      (uint64_t)(uintptr_t)&gen;
	gen |= 1;       /* 0 is "never changed" */
	sqlite3_stmt *s = st->stmt[S_GEN_SET];
	retl_state__bind_text(s, 1, sync);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)gen);
	if (retl_state__done(st, s, err) < 0)
		return -1;
	if (!sqlite3_get_autocommit(st->db)) {
		free(st->gen_sync);
		st->gen_sync = retl_strdup(sync);
	}
	return 0;
}

static uint64_t get_gen(retl_state *st, const char *sync)
{
	sqlite3_stmt *s = st->stmt[S_GEN_GET];
	uint64_t gen = 0;

	retl_state__bind_text(s, 1, sync);
	if (sqlite3_step(s) == SQLITE_ROW)
		gen = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return gen;
}

static void end_txn(retl_state *st)
{
	free(st->gen_sync);
	st->gen_sync = NULL;
}

static int load_from_sqlite(retl_state *st, const char *sync, retl_cache **out,
			    struct retl_err *err);

int retl_state_load_cache(retl_state *st, const char *sync, retl_cache **out,
			  struct retl_err *err)
{
	char *path = sync_path(st, sync, ".cache");
	int rc = retl_cache_load(out, path, get_gen(st, sync));

	free(path);
	if (rc == 0)
		return 0;
	return load_from_sqlite(st, sync, out, err);
}

int retl_state_save_image(retl_state *st, const char *sync, struct retl_err *err)
{
	char *path = sync_path(st, sync, ".cache");
	uint64_t gen = get_gen(st, sync);
	retl_cache *c = NULL;
	int rc = 0;

	if (!retl_cache_image_is(path, gen)) {
		rc = load_from_sqlite(st, sync, &c, err);
		if (rc == 0 && retl_cache_save(c, path, gen) < 0)
			rc = retl_err_set(err, RETL_EXIT_USAGE,
					  "state store: cannot write %s: %s",
					  path, strerror(errno));
		retl_cache_free(c);
	}
	free(path);
	return rc;
}

static int load_from_sqlite(retl_state *st, const char *sync, retl_cache **out,
			    struct retl_err *err)
{
	sqlite3_stmt *s;
	retl_cache *c;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (count_rows(st, sync, &n, err) < 0)
		return -1;
	if (retl_state__prepare(st, "SELECT kh_lo, kh_hi, pay_lo, pay_hi, "
				"src, status FROM cache WHERE sync = ?1",
				&s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	c = retl_cache_new(n);
	/* rows come in key order, slots are random: read a run of rows,
	 * prefetch their slots, then insert them */
	enum { RUN = 32 };
	struct retl_cache_entry run[RUN];
	size_t k = 0;
	do {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			struct retl_cache_entry *r = &run[k++];
			r->kh.lo = col_u64(s, 0);
			r->kh.hi = col_u64(s, 1);
			r->pay.lo = col_u64(s, 2);
			r->pay.hi = col_u64(s, 3);
			r->src = col_u64(s, 4);
			r->status = (uint8_t)sqlite3_column_int(s, 5);
			retl_cache_prefetch(c, r->kh);
		}
		if (k == RUN || (rc != SQLITE_ROW && k)) {
			for (size_t i = 0; i < k; i++) {
				struct retl_cache_entry *e =
					retl_cache_upsert(c, run[i].kh, NULL);
				e->pay = run[i].pay;
				e->src = run[i].src;
				e->status = run[i].status;
				e->cached = 1;
				e->seen = 0;
			}
			k = 0;
		}
	} while (rc == SQLITE_ROW);
	if (rc != SQLITE_DONE) {
		retl_state__db_err(st, err);
		sqlite3_finalize(s);
		retl_cache_free(c);
		return -1;
	}
	sqlite3_finalize(s);
	*out = c;
	return 0;
}

int retl_state_begin(retl_state *st, struct retl_err *err)
{
	end_txn(st);
	return retl_state__done(st, st->stmt[S_BEGIN], err);
}

/* on failure the transaction may still be open: call retl_state_rollback */
int retl_state_commit(retl_state *st, struct retl_err *err)
{
	end_txn(st);
	return retl_state__done(st, st->stmt[S_COMMIT], err);
}

void retl_state_rollback(retl_state *st)
{
	end_txn(st);
	if (!sqlite3_get_autocommit(st->db))
		retl_state__done(st, st->stmt[S_ROLLBACK], NULL);
}

static sqlite3_stmt *row_stmt(retl_state *st, int which, const char *sync,
			      const char *key)
{
	sqlite3_stmt *s = st->stmt[which];

	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, key);
	return s;
}

int retl_state_ack(retl_state *st, const char *sync,
		   const struct retl_state_rec *r, struct retl_err *err)
{
	if (bump_gen(st, sync, err) < 0)
		return -1;
	sqlite3_stmt *s = row_stmt(st, S_ACK, sync, r->key);

	bind_h128(s, 3, r->kh);
	bind_opt_h128(s, 5, r->pay);
	if (r->src)
		bind_u64(s, 7, r->src);
	else
		sqlite3_bind_null(s, 7);
	retl_state__bind_text(s, 8, r->dest_id);
	retl_state__bind_text(s, 9, retl_state__now(st));
	return retl_state__done(st, s, err);
}

int retl_state_fail(retl_state *st, const char *sync,
		    const struct retl_state_rec *r, struct retl_err *err)
{
	if (bump_gen(st, sync, err) < 0)
		return -1;
	sqlite3_stmt *s = row_stmt(st, S_FAIL, sync, r->key);

	bind_h128(s, 3, r->kh);
	retl_state__bind_text(s, 5, r->dest_id);
	retl_state__bind_text(s, 6, r->reason);
	retl_state__bind_text(s, 7, retl_state__now(st));
	return retl_state__done(st, s, err);
}

int retl_state_set_src(retl_state *st, const char *sync,
		       const struct retl_state_rec *r, struct retl_err *err)
{
	if (bump_gen(st, sync, err) < 0)
		return -1;
	sqlite3_stmt *s = row_stmt(st, S_SET_SRC, sync, r->key);

	if (r->src)
		bind_u64(s, 3, r->src);
	else
		sqlite3_bind_null(s, 3);
	return retl_state__done(st, s, err);
}

int retl_state_pending(retl_state *st, const char *sync,
		       const struct retl_state_rec *r, struct retl_err *err)
{
	if (bump_gen(st, sync, err) < 0)
		return -1;
	sqlite3_stmt *s = row_stmt(st, S_PENDING, sync, r->key);

	bind_h128(s, 3, r->kh);
	retl_state__bind_text(s, 5, r->dest_id);
	retl_state__bind_text(s, 6, retl_state__now(st));
	return retl_state__done(st, s, err);
}

int retl_state_forget(retl_state *st, const char *sync, const char *key,
		      struct retl_err *err)
{
	if (bump_gen(st, sync, err) < 0)
		return -1;
	return retl_state__done(st, row_stmt(st, S_FORGET, sync, key), err);
}

char *retl_state_dest_id(retl_state *st, const char *sync, const char *key)
{
	sqlite3_stmt *s = row_stmt(st, S_DEST_ID, sync, key);
	char *id = NULL;

	if (sqlite3_step(s) == SQLITE_ROW &&
	    sqlite3_column_type(s, 0) != SQLITE_NULL)
		id = retl_strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	return id;
}

struct scan_row {
	size_t key, dest;       /* offsets in the chunk's text; dest 0 = NULL */
	retl_h128 kh;
};

/* one page of rows after `after` (NULL: from the start), text in arena */
static int scan_page(retl_state *st, sqlite3_stmt *s, const char *sync,
		     const retl_buf *after, struct scan_row *rows, size_t *n,
		     retl_buf *arena, struct retl_err *err)
{
	int rc;

	*n = 0;
	retl_buf_reset(arena);
	retl_buf_addc(arena, '\0');     /* offset 0 stands for NULL */
	retl_state__bind_text(s, 1, sync);
	sqlite3_bind_int(s, 2, SCAN_CHUNK);
	if (after)
		sqlite3_bind_text(s, 3, after->ptr, (int)after->len,
				  SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct scan_row *r = &rows[(*n)++];

		r->key = arena->len;
		retl_buf_add(arena, sqlite3_column_text(s, 0),
			     (size_t)sqlite3_column_bytes(s, 0));
		retl_buf_addc(arena, '\0');
		r->kh.lo = col_u64(s, 1);
		r->kh.hi = col_u64(s, 2);
		r->dest = 0;
		if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
			r->dest = arena->len;
			retl_buf_adds(arena, (const char *)
				      sqlite3_column_text(s, 3));
			retl_buf_addc(arena, '\0');
		}
	}
	if (rc != SQLITE_DONE)
		retl_state__db_err(st, err);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Keyset pagination, SCAN_CHUNK rows at a time, and fn is called between
 * pages with no statement active: fn may write to the store (forget the
 * row it is given, typically).  A non-zero return from fn stops the scan
 * and is returned.
 */
int retl_state_scan(retl_state *st, const char *sync, retl_state_row_fn fn,
		    void *ud, struct retl_err *err)
{
	sqlite3_stmt *first = NULL, *next = NULL;
	struct scan_row *rows = retl_malloc(SCAN_CHUNK * sizeof(*rows));
	retl_buf arena = RETL_BUF_INIT, last = RETL_BUF_INIT;
	size_t i, n;
	int rc = -1, started = 0;

	if (retl_state__prepare(st, "SELECT key, kh_lo, kh_hi, dest_id FROM "
				"cache WHERE sync = ?1 ORDER BY key LIMIT ?2",
				&first, err) < 0 ||
	    retl_state__prepare(st, "SELECT key, kh_lo, kh_hi, dest_id FROM "
				"cache WHERE sync = ?1 AND key > ?3 ORDER BY "
				"key LIMIT ?2", &next, err) < 0)
		goto out;
	for (;;) {
		if (scan_page(st, started ? next : first, sync,
			      started ? &last : NULL, rows, &n, &arena,
			      err) < 0)
			goto out;
		started = 1;
		for (i = 0; i < n; i++) {
			const char *dest = rows[i].dest ?
				arena.ptr + rows[i].dest : NULL;

			rc = fn(ud, arena.ptr + rows[i].key, rows[i].kh, dest);
			if (rc)
				goto out;
		}
		rc = 0;
		if (n < SCAN_CHUNK)
			break;
		retl_buf_reset(&last);
		retl_buf_adds(&last, arena.ptr + rows[n - 1].key);
	}
out:
	sqlite3_finalize(first);
	sqlite3_finalize(next);
	retl_buf_free(&arena);
	retl_buf_free(&last);
	free(rows);
	return rc;
}

int retl_state_reset(retl_state *st, const char *sync, struct retl_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (bump_gen(st, sync, err) < 0 ||
	    retl_state__prepare(st, "DELETE FROM cache WHERE sync = ?1",
				&s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	rc = retl_state__done(st, s, err);
	sqlite3_finalize(s);
	return rc;
}

/* ---- deferred rows (RETL_RES_DEFER) ---- */

int retl_state_stage(retl_state *st, const char *sync,
		     const struct retl_state_rec *r, int op, struct retl_err *err)
{
	if (bump_gen(st, sync, err) < 0)
		return -1;
	sqlite3_stmt *s = row_stmt(st, S_STAGE, sync, r->key);

	bind_h128(s, 3, r->kh);
	retl_state__bind_text(s, 5, r->dest_id);
	retl_state__bind_text(s, 6, retl_state__now(st));
	bind_opt_h128(s, 7, r->pay);
	if (r->src)
		bind_u64(s, 9, r->src);
	else
		sqlite3_bind_null(s, 9);
	sqlite3_bind_int(s, 10, op);
	return retl_state__done(st, s, err);
}

int retl_state_staged(retl_state *st, const char *sync, const char *key,
		      int *op, struct retl_err *err)
{
	sqlite3_stmt *s = row_stmt(st, S_STAGED, sync, key);
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW) {
		*op = sqlite3_column_int(s, 0);
		sqlite3_reset(s);
		return 1;
	}
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return 0;
	return retl_state__db_err(st, err);
}

int retl_state_unstage(retl_state *st, const char *sync, const char *key,
		       int ok, const char *dest_id, const char *reason,
		       struct retl_err *err)
{
	if (bump_gen(st, sync, err) < 0)
		return -1;
	sqlite3_stmt *s = row_stmt(st, ok ? S_UNSTAGE_OK : S_UNSTAGE_FAIL,
				   sync, key);

	retl_state__bind_text(s, 3, ok ? dest_id : reason);
	retl_state__bind_text(s, 4, retl_state__now(st));
	return retl_state__done(st, s, err);
}

long retl_state_count_staged(retl_state *st, const char *sync)
{
	sqlite3_stmt *s;
	long n = 0;

	if (sqlite3_prepare_v2(st->db, "SELECT COUNT(*) FROM cache WHERE "
			       "sync = ?1 AND status = 4", -1, &s, NULL) != SQLITE_OK)
		return 0;
	retl_state__bind_text(s, 1, sync);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

char *retl_state_note_get(retl_state *st, const char *sync, const char *name)
{
	sqlite3_stmt *s;
	char *v = NULL;

	if (sqlite3_prepare_v2(st->db, "SELECT value FROM dest_notes WHERE "
			       "sync = ?1 AND name = ?2", -1, &s, NULL) != SQLITE_OK)
		return NULL;
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, name);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = retl_strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return v;
}

int retl_state_note_set(retl_state *st, const char *sync, const char *name,
			const char *value, struct retl_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (retl_state__prepare(st, value ?
				"INSERT INTO dest_notes(sync, name, value) "
				"VALUES(?1, ?2, ?3) ON CONFLICT(sync, name) "
				"DO UPDATE SET value = excluded.value" :
				"DELETE FROM dest_notes WHERE sync = ?1 AND "
				"name = ?2", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, sync);
	retl_state__bind_text(s, 2, name);
	if (value)
		retl_state__bind_text(s, 3, value);
	rc = retl_state__done(st, s, err);
	sqlite3_finalize(s);
	return rc;
}

/* ---- API usage ---- */

long retl_state_api_used(retl_state *st, const char *dest, const char *day)
{
	sqlite3_stmt *s;
	long n = 0;

	if (sqlite3_prepare_v2(st->db, "SELECT calls FROM api_usage WHERE dest = ?1"
			       " AND day = ?2", -1, &s, NULL) != SQLITE_OK)
		return 0;
	retl_state__bind_text(s, 1, dest);
	retl_state__bind_text(s, 2, day);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

int retl_state_api_add(retl_state *st, const char *dest, const char *day,
		       long calls, struct retl_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (retl_state__prepare(st, "INSERT INTO api_usage(dest, day, calls) "
				"VALUES(?1, ?2, ?3) ON CONFLICT(dest, day) DO UPDATE "
				"SET calls = calls + excluded.calls", &s, err) < 0)
		return -1;
	retl_state__bind_text(s, 1, dest);
	retl_state__bind_text(s, 2, day);
	sqlite3_bind_int64(s, 3, calls);
	rc = retl_state__done(st, s, err);
	sqlite3_finalize(s);
	return rc;
}
