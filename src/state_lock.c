/*
 * state_lock.c - the run lock: one run per sync at a time, see state.h.
 *
 * The lock is an flock(2) on "<db>.<sync>.lock" rather than a row in the
 * database: the kernel drops it when the holder dies, so a killed run never
 * leaves a stale lock and nothing has to guess whether a pid is still
 * alive.  The file holds the holder's pid for the error message.
 *
 * A store in PostgreSQL has its own lock (state_pg.c): a session-level
 * advisory lock, which dies with the session.
 *
 * A handle remembers the locks it took with the pid that took them: after
 * fork() the child holds the same entries, and they are not its own.
 *
 * Taking the lock is also when a dead run is noticed: the sync's runs
 * still "running" then have no process (one would hold the lock), and
 * are recorded "abandoned".
 *
 * `retl status` and `history` ask whether anyone holds the lock without
 * taking it even for a moment (a reader that took it would make a run
 * starting at that moment fail as "already running"): the holder also
 * holds an open-file-description record lock (F_OFD_SETLK) on the file,
 * which F_OFD_GETLK can test.  Both belong to the same open file and go
 * when it closes (or the process dies), and a run records its end before
 * it unlocks: so a record lock found free means the run ended (recorded)
 * or died.  A holder without the record lock (a kernel without OFD locks,
 * an older retl) would be shown abandoned by the reports, never recorded
 * so: recording needs the flock.
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
#include <unistd.h>

#include "buf.h"

struct held_lock {
	char *sync;
	int fd;
	pid_t pid;      /* holder; an entry inherited through fork() is not ours */
};

char *retl_state__sync_path(retl_state *st, const char *sync,
			    const char *suffix)
{
	retl_buf b = RETL_BUF_INIT;
	const char *p;

	/* the sync name becomes part of a file name: escape what could
	 * leave the directory or confuse a shell user */
	retl_buf_addf(&b, "%s.", st->files);
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
	return retl_state__sync_path(st, sync, ".lock");
}

/* the pid in the lock file: its holder, or the last one; 0 unknown */
static long file_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	n = (ssize_t)strtol(buf, NULL, 10);
	return n > 0 ? (long)n : 0;
}

/* the holder writes its pid right after taking the lock: allow it a moment */
static long lock_owner(int fd)
{
	int tries;

	for (tries = 0; tries < 50; tries++) {
		long pid = file_pid(fd);

		if (pid > 0)
			return pid;
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

/* the whole file, for the record lock the reports test */
static void whole_file(struct flock *fl, short type)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
}

int retl_state_lock_held(retl_state *st, const char *sync)
{
	if (st->pg)
		return retl_state__pg_lock_held(st, sync);
	char *path = lock_path(st, sync);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct flock fl;
	int rc;

	free(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;  /* never locked */
	whole_file(&fl, F_RDLCK);
	rc = fcntl(fd, F_OFD_GETLK, &fl) < 0 ? -1 : fl.l_type != F_UNLCK;
	close(fd);
	return rc;
}

int retl_state_lock(retl_state *st, const char *sync, struct retl_err *err)
{
	struct held_lock *h;
	char *path, pid[32];
	int fd, n;
	long last;
	struct flock fl;

	if (held_by_me(st, sync) >= 0)
		return already_running(sync, (long)getpid(), err);
	if (st->pg) {
		if (retl_state__pg_lock(st, sync, err) < 0)
			return -1;
		fd = -1;        /* the lock is the session's, not a file's */
		goto held;
	}
	path = lock_path(st, sync);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		retl_state__sys_err(st, err, "cannot open lock file", path);
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
			retl_state__sys_err(st, err, "cannot lock", path);
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	/* for the reports (see the top) */
	whole_file(&fl, F_WRLCK);
	fcntl(fd, F_OFD_SETLK, &fl);
	last = file_pid(fd);
	if (retl_state__abandon_runs(st, sync, last, err) < 0) {
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	/* should this fail, the lock still holds: only messages suffer */
	if (ftruncate(fd, 0) == 0)
		n = (int)pwrite(fd, pid, (size_t)n, 0);
held:
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
	if (st->pg)
		retl_state__pg_unlock(st, sync);
	else
		close(st->locks[i].fd);
	free(st->locks[i].sync);
	st->locks[i] = st->locks[--st->nlocks];
}

void retl_state__drop_locks(retl_state *st)
{
	size_t i;

	/* closing (never LOCK_UN) an fd inherited through fork() leaves the
	 * parent's lock in place */
	for (i = 0; i < st->nlocks; i++) {
		if (st->locks[i].fd >= 0)
			close(st->locks[i].fd);
		free(st->locks[i].sync);
	}
	free(st->locks);
	st->locks = NULL;
	st->nlocks = 0;
}
