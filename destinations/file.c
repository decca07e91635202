/*
 * file.c - the file destination: one JSON line per acknowledged operation.
 *
 *   {"op":"upsert","key":"42","payload":{...}}
 *   {"op":"remove","key":"17","payload":null}
 *
 * retl's embedded default sink: the demo, the tests and exports to file.
 * A batch is acknowledged only after its lines are written and fsync'd, so
 * the state store never gets ahead of the file.  The file's length after a
 * batch is noted in the state store in the same transaction as the batch's
 * acknowledgements (env->note_stage): open() cuts the file back to the last
 * committed length, so lines a killed run wrote but never committed are
 * gone, and the file never holds a row the state store does not know (the
 * next run writes those rows again).  A file shorter than its note was cut
 * by someone else: retl goes on from there and says so.  One file belongs
 * to one sync.  The file is created with mode 0600: it holds warehouse data.
 */
#include "destination.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

#include "log.h"

#define NOTE "committed_length"

struct file_ctx {
	int fd;
	char *path;
	retl_buf out;
	struct retl_dest_env env;     /* note_get, note_set, note_stage */
	const char *sync;
};

static const char *const file_conn_keys[] = { "path", "batch_size", NULL };

/*
 * A batch is one fdatasync and one commit: on a disk that takes 9 ms to
 * sync 400 kB and 47 ms for 8 MB, batches of 2,000 rows spent 4.5 s of a
 * million-row first run waiting for the disk, 20,000 about 1.5 s.  A kill
 * loses at most a batch's work, written again by the next run.
 */
#define BATCH_DEFAULT 20000
#define BATCH_MAX 100000

static int file_validate(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	const char *path;
	long n;
	if (retl_dest_opt_str(dc, "path", "the file destination writes to this path",
			      &path, err) < 0 ||
	    retl_dest_opt_posint(dc, "batch_size", BATCH_DEFAULT, &n, err) < 0)
		return -1;
	if (n > BATCH_MAX)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.batch_size: at most %d rows a batch",
				    dc->name, BATCH_MAX);
	return 0;
}

static size_t file_batch(const struct retl_dest_cfg *dc)
{
	long n = BATCH_DEFAULT;
	struct retl_err err;
	retl_dest_opt_posint(dc, "batch_size", BATCH_DEFAULT, &n, &err);
	return n > 0 && n <= BATCH_MAX ? (size_t)n : BATCH_DEFAULT;
}

/* drops a trailing partial line left by a process killed mid-write */
static int trim_partial_line(int fd)
{
	off_t end = lseek(fd, 0, SEEK_END);
	if (end <= 0)
		return 0;
	char buf[4096];
	off_t pos = end;
	while (pos > 0) {
		size_t n = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
		if (pread(fd, buf, n, pos - (off_t)n) != (ssize_t)n)
			return -1;
		for (size_t i = n; i > 0; i--) {
			if (buf[i - 1] == '\n') {
				off_t keep = pos - (off_t)n + (off_t)i;
				return keep == end ? 0 : ftruncate(fd, keep);
			}
		}
		pos -= (off_t)n;
	}
	return ftruncate(fd, 0);
}

/* the length the state store last committed with a batch, or -1 */
static off_t committed(const struct retl_dest_env *env)
{
	char *v = env->note_get ? env->note_get(env->ud, NOTE) : NULL;
	char *end;
	long long n = v ? strtoll(v, &end, 10) : -1;
	if (v && (end == v || *end || n < 0))
		n = -1;
	free(v);
	return (off_t)n;
}

static int note_length(const struct retl_dest_env *env, off_t len, int staged)
{
	char v[32];
	snprintf(v, sizeof(v), "%lld", (long long)len);
	if (staged) {
		if (env->note_stage)
			env->note_stage(env->ud, NOTE, v);
		return 0;
	}
	return env->note_set ? env->note_set(env->ud, NOTE, v) : 0;
}

/*
 * Cuts what no commit covers: back to the committed length, or (a first
 * open, no note yet) back past a trailing partial line; then notes the
 * length, so what this run writes is covered only by its commits.
 */
static int drop_uncommitted(int fd, const struct retl_dest_env *env,
			    const char *sync, const char *path)
{
	off_t end = lseek(fd, 0, SEEK_END), keep = committed(env);
	if (end < 0)
		return -1;
	if (keep > end) {
		retl_log(RETL_LOG_WARN, sync,
			 "%s is shorter (%lld bytes) than retl last wrote (%lld): it was cut by something else; going on from its end",
			 path, (long long)end, (long long)keep);
		keep = end;
	}
	if (keep < 0 && trim_partial_line(fd) < 0)
		return -1;
	if (keep >= 0 && keep < end && ftruncate(fd, keep) < 0)
		return -1;
	end = lseek(fd, 0, SEEK_END);
	return end < 0 ? -1 : note_length(env, end, 0);
}

static int file_open(void **out, const struct retl_dest_cfg *dc,
		     const struct retl_sync_cfg *sc,
		     const struct retl_dest_env *env, struct retl_err *err)
{
	const char *dir = env->dir;
	const char *p = json_string_value(json_object_get(dc->options, "path"));
	retl_buf path = RETL_BUF_INIT;
	if (p[0] != '/' && dir) {
		retl_buf_adds(&path, dir);
		retl_buf_addc(&path, '/');
	}
	retl_buf_adds(&path, p);

	/* create the parent directory (one level) for a fresh project */
	char *slash = strrchr(path.ptr, '/');
	if (slash && slash != path.ptr) {
		*slash = '\0';
		if (mkdir(path.ptr, 0700) < 0 && errno != EEXIST) {
			retl_err_set(err, RETL_EXIT_DEST, "destination %s: cannot create %s: %s",
				     dc->name, path.ptr, strerror(errno));
			retl_buf_free(&path);
			return -1;
		}
		*slash = '/';
	}
	int fd = open(path.ptr, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || drop_uncommitted(fd, env, sc->name, path.ptr) < 0) {
		retl_err_set(err, RETL_EXIT_DEST, "destination %s: cannot open %s: %s",
			     dc->name, path.ptr, strerror(errno));
		if (fd >= 0)
			close(fd);
		retl_buf_free(&path);
		return -1;
	}
	struct file_ctx *c = retl_calloc(1, sizeof(*c));
	c->fd = fd;
	c->path = retl_buf_detach(&path);
	c->env = *env;
	c->sync = sc->name;
	*out = c;
	return 0;
}

static int file_check(void *ctx, struct retl_err *err)
{
	struct file_ctx *c = ctx;
	if (access(c->path, W_OK) < 0)
		return retl_err_set(err, RETL_EXIT_DEST, "%s is not writable: %s",
				    c->path, strerror(errno));
	return 0;
}

static int file_send(void *ctx, const struct retl_op *ops, size_t n,
		     struct retl_result *res, struct retl_err *err)
{
	struct file_ctx *c = ctx;
	retl_buf_reset(&c->out);
	for (size_t i = 0; i < n; i++) {
		retl_buf_addf(&c->out, "{\"op\":\"%s\",\"key\":", retl_op_name(ops[i].kind));
		retl_buf_adds(&c->out, ops[i].key_json);
		retl_buf_adds(&c->out, ",\"payload\":");
		if (ops[i].payload)
			retl_buf_add(&c->out, ops[i].payload, ops[i].payload_len);
		else
			retl_buf_adds(&c->out, "null");
		retl_buf_adds(&c->out, "}\n");
	}
	size_t off = 0;
	while (off < c->out.len) {
		ssize_t w = write(c->fd, c->out.ptr + off, c->out.len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return retl_err_set(err, RETL_EXIT_DEST, "writing %s: %s",
					    c->path, strerror(errno));
		}
		off += (size_t)w;
	}
	if (fdatasync(c->fd) < 0)
		return retl_err_set(err, RETL_EXIT_DEST, "syncing %s: %s", c->path,
				    strerror(errno));
	off_t len = lseek(c->fd, 0, SEEK_END);
	if (len < 0)
		return retl_err_set(err, RETL_EXIT_DEST, "%s: %s", c->path, strerror(errno));
	note_length(&c->env, len, 1);
	for (size_t i = 0; i < n; i++) {
		res[i].kind = RETL_RES_ACK;
		res[i].dest_id = NULL;
		res[i].reason = NULL;
	}
	return 0;
}

static void file_close(void *ctx)
{
	struct file_ctx *c = ctx;
	if (!c)
		return;
	close(c->fd);
	free(c->path);
	retl_buf_free(&c->out);
	free(c);
}

const struct retl_destination retl_dest_file = {
	.name = "file",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_INSERT | 1u << RETL_MODE_MIRROR,
	.removals = 1u << RETL_REMOVE_DELETE,
	.max_batch = BATCH_DEFAULT,
	.batch_of = file_batch,
	/* an uncommitted tail is dropped at open: see the top of this file */
	.atomic = 1,
	.conn_keys = file_conn_keys,
	.sync_keys = NULL,
	.validate = file_validate,
	.open = file_open,
	.check = file_check,
	.send = file_send,
	.close = file_close,
};
