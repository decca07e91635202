/*
 * state_marker.c - a state store that has been used is never silently
 * replaced by an empty one (DESIGN.md "The state store").
 *
 * SQLite takes a missing or empty file for a new database, and a new
 * database for a first run: every row would be sent again as new, without
 * a word.  So the store has an identity: a random store id kept in the
 * database (table meta, key "store_id") and in a marker beside it,
 * "<db>.marker", written when the store is first opened.  At open:
 *
 *   marker  database                      ->
 *   none    missing, empty or any         open (create); id and marker made
 *   yes     missing or 0 bytes            refused, before SQLite creates one
 *   yes     no store id (a new file)      refused
 *   yes     another store id              refused (another project's file)
 *   yes     the same id                   open
 *   none    has an id                     open; the marker is written again
 *
 * The id is committed to the database before the marker is written, so a
 * process killed between the two leaves a store that opens (the marker is
 * rewritten), never a marker without its store.  Starting over is explicit:
 * `retl reset --all` calls retl_state_start_over, which removes the marker
 * (and the write-ahead log of a store that is gone) before opening.
 *
 * During a run the file is watched too: the device and inode of the path
 * are taken at open, and every commit (retl_state_check_file) stats the
 * path again.  A store deleted, replaced or truncated under a running
 * process would otherwise take that run's commits into a file no one will
 * read again; the run stops instead.
 *
 * Refusals here are exit code 2: the store is part of the project's setup,
 * neither the source (3) nor a destination (4), and a person has to act
 * before retl may run again.  A file or disk that fails (damaged, full,
 * I/O) is 6 (retl_state__code, state_int.h).
 */
#include "state.h"
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

#define MARKER_SUFFIX ".marker"
#define ID_FIELD "store_id "
#define START_OVER "Restore it from a backup, or start over with " \
	"`retl reset --all` (every sync's cache is forgotten: the next runs " \
	"send every row again)"

static char *marker_path(const char *db)
{
	retl_buf b = RETL_BUF_INIT;

	retl_buf_addf(&b, "%s%s", db, MARKER_SUFFIX);
	return retl_buf_detach(&b);
}

/* 1 when the marker exists (*id: its store id, malloc'd, NULL when it
 * names none), 0 when it does not, -1 when it cannot be read */
static int read_marker(retl_state *st, const char *path, char **id,
		       struct retl_err *err)
{
	char buf[512];
	FILE *f = fopen(path, "re");

	*id = NULL;
	if (!f) {
		if (errno == ENOENT)
			return 0;
		return retl_state__sys_err(st, err, "cannot read", path);
	}
	while (fgets(buf, sizeof(buf), f)) {
		size_t n;

		if (strncmp(buf, ID_FIELD, strlen(ID_FIELD)))
			continue;
		n = strspn(buf + strlen(ID_FIELD), "0123456789abcdef");
		if (n) {
			free(*id);
			*id = retl_strndup(buf + strlen(ID_FIELD), n);
		}
	}
	fclose(f);
	return 1;
}

/* written whole or not at all: a temporary file renamed over the marker */
static int write_marker(retl_state *st, const char *path, const char *id,
			struct retl_err *err)
{
	retl_buf tmp = RETL_BUF_INIT, body = RETL_BUF_INIT;
	int fd, rc = 0;

	retl_buf_addf(&tmp, "%s.%ld.tmp", path, (long)getpid());
	retl_buf_addf(&body, "# retl: the state store %s belongs to this "
		      "project.\n# While this file exists, retl refuses to "
		      "open that store missing, empty or replaced.\n# Start "
		      "over on purpose with `retl reset --all`.\n%s%s\n",
		      st->path, ID_FIELD, id);
	fd = open(tmp.ptr, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = retl_state__sys_err(st, err, "cannot create", tmp.ptr);
		goto out;
	}
	if (write(fd, body.ptr, body.len) != (ssize_t)body.len ||
	    fsync(fd) < 0) {
		rc = retl_state__sys_err(st, err, "cannot write", tmp.ptr);
		close(fd);
		unlink(tmp.ptr);
		goto out;
	}
	close(fd);
	if (rename(tmp.ptr, path) < 0) {
		rc = retl_state__sys_err(st, err, "cannot rename to", path);
		unlink(tmp.ptr);
	}
out:
	retl_buf_free(&tmp);
	retl_buf_free(&body);
	return rc;
}

/* the database's store id, malloc'd, or NULL when it has none */
static char *db_store_id(retl_state *st)
{
	retl_db_stmt *s;
	char *id = NULL;

	if (retl_db_prepare(st->db, "SELECT value FROM meta WHERE key = "
			       "'store_id'", &s) < 0)
		return NULL;
	if (retl_db_step(s) == RETL_DB_ROW && retl_db_col_text(s, 0))
		id = retl_strdup(retl_db_col_text(s, 0));
	retl_db_finalize(s);
	return id;
}

/*
 * A new id, unless another process gave the store one first (two first
 * runs at once): the id in the database after the commit is the one.
 */
static char *db_make_id(retl_state *st, struct retl_err *err)
{
	unsigned char raw[16];
	char hex[sizeof(raw) * 2 + 1];
	retl_db_stmt *s = NULL;
	size_t i;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		retl_state__sys_err(st, err, "no random bytes for the id of",
				    st->path);
		return NULL;
	}
	for (i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	if (retl_state__exec(st, "BEGIN IMMEDIATE", err) < 0)
		return NULL;
	if (retl_state__prepare(st, "INSERT INTO meta(key, value) "
				"VALUES('store_id', ?1) ON CONFLICT DO NOTHING", &s, err) < 0)
		goto fail;
	retl_state__bind_text(s, 1, hex);
	if (retl_state__done(st, s, err) < 0)
		goto fail;
	retl_db_finalize(s);
	if (retl_state__exec(st, "COMMIT", err) < 0) {
		s = NULL;
		goto fail;
	}
	return db_store_id(st);
fail:
	retl_db_finalize(s);
	retl_db_exec(st->db, "ROLLBACK");
	return NULL;
}

int retl_state__marker_check(retl_state *st, struct retl_err *err)
{
	char *mpath = marker_path(st->path), *id = NULL;
	struct stat sb;
	int marked, missing, rc = 0;

	marked = read_marker(st, mpath, &id, err);
	free(id);
	if (marked <= 0) {
		free(mpath);
		return marked;
	}
	missing = stat(st->path, &sb) < 0;
	if (missing && errno != ENOENT)
		rc = retl_state__sys_err(st, err, "cannot stat", st->path);
	else if (missing || sb.st_size == 0)
		rc = retl_err_set(err, RETL_EXIT_USAGE, "state store %s is %s, "
				  "but this project has used it before (%s "
				  "says so); opening it would send every row "
				  "again as new, so nothing was sent. %s",
				  st->path, missing ? "missing" :
				  "empty (0 bytes)", mpath, START_OVER);
	free(mpath);
	return rc;
}

int retl_state__marker_bind(retl_state *st, struct retl_err *err)
{
	char *mpath = marker_path(st->path), *have = NULL, *id = NULL;
	struct stat sb;
	int marked, rc = 0;

	/* the marker before the id: a marker seen here was written after its
	 * id was committed, so a store racing us to its first open is never
	 * taken for a replaced one */
	marked = read_marker(st, mpath, &have, err);
	if (marked < 0)
		goto fail;
	id = db_store_id(st);
	if (!id && marked) {
		retl_err_set(err, RETL_EXIT_USAGE, "state store %s is a new "
			     "file, but this project has used another one "
			     "before (%s says so); opening it would send every "
			     "row again as new, so nothing was sent. %s",
			     st->path, mpath, START_OVER);
		goto fail;
	}
	if (!id && !(id = db_make_id(st, err)))
		goto fail;
	if (have && strcmp(have, id)) {
		retl_err_set(err, RETL_EXIT_USAGE, "state store %s is not the "
			     "one this project used (its store id is %s, %s "
			     "says %s), so nothing was sent. %s", st->path, id,
			     mpath, have, START_OVER);
		goto fail;
	}
	if ((!have || !marked) && write_marker(st, mpath, id, err) < 0)
		goto fail;
	/* the file SQLite opened a moment ago, for retl_state_check_file */
	if (stat(st->path, &sb) < 0) {
		retl_state__sys_err(st, err, "cannot stat", st->path);
		goto fail;
	}
	st->file_dev = sb.st_dev;
	st->file_ino = sb.st_ino;
	st->file_known = 1;
	goto out;
fail:
	rc = -1;
out:
	free(mpath);
	free(have);
	free(id);
	return rc;
}

int retl_state_check_file(retl_state *st, struct retl_err *err)
{
	struct stat sb;
	const char *what;

	if (!st->file_known)
		return 0;
	if (stat(st->path, &sb) < 0) {
		if (errno != ENOENT)
			return retl_state__sys_err(st, err, "cannot stat",
						   st->path);
		what = "deleted";
	} else if (sb.st_dev != st->file_dev || sb.st_ino != st->file_ino) {
		what = "replaced by another file";
	} else if (sb.st_size == 0) {
		what = "truncated to 0 bytes";
	} else {
		return 0;
	}
	return retl_err_set(err, RETL_EXIT_USAGE, "state store %s was %s "
			    "while this run was using it; the run stops here "
			    "rather than record its work where no later run "
			    "can read it (rows sent since the last commit are "
			    "sent again or looked up by the next run). %s",
			    st->path, what, START_OVER);
}

/*
 * `retl reset --all`: the next open makes a new store where the file is
 * missing or empty, and adopts whatever store is there otherwise.  The
 * write-ahead log and shared memory of a store that is gone belong to it:
 * SQLite would replay that log into the new file.
 */
int retl_state_start_over(const char *path, struct retl_err *err)
{
	/* a database server's store has no marker file (state_pg.c) */
	if (retl_state__is_pg(path))
		return 0;
	char *mpath = marker_path(path);
	retl_buf side = RETL_BUF_INIT;
	struct stat sb;
	int rc = 0;

	if (unlink(mpath) < 0 && errno != ENOENT)
		rc = retl_err_set(err, RETL_EXIT_USAGE, "state store %s: "
				  "cannot remove %s: %s", path, mpath,
				  strerror(errno));
	if (!rc && (stat(path, &sb) < 0 || sb.st_size == 0)) {
		static const char *const sidecars[] = { "-wal", "-shm" };
		size_t i;

		for (i = 0; i < 2 && !rc; i++) {
			retl_buf_reset(&side);
			retl_buf_addf(&side, "%s%s", path, sidecars[i]);
			if (unlink(side.ptr) < 0 && errno != ENOENT)
				rc = retl_err_set(err, RETL_EXIT_USAGE, "state "
						  "store %s: cannot remove %s: "
						  "%s", path, side.ptr,
						  strerror(errno));
		}
	}
	retl_buf_free(&side);
	free(mpath);
	return rc;
}
