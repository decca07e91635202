/*
 * err.h - the error a function hands back to its caller.
 *
 * Functions return int (0 ok, negative error) and describe the failure in a
 * struct retl_err the caller passes (libgit2's convention).  `code` carries
 * the process exit code the CLI should use (RETL_EXIT_*), so a source error
 * found deep in the sync engine still exits 3.
 *
 * The first message wins (curl's Curl_failf): retl_err_set writes only into
 * an empty error, so the root cause survives the wrappers on the way up.  A
 * caller that knows more adds it in front with retl_err_prefix; one that
 * means to start over (a new attempt, the next sync) calls retl_err_clear.
 * The code is kept the same way: the first non-zero code stays.
 */
#ifndef RETL_ERR_H
#define RETL_ERR_H

#include <stdarg.h>

enum retl_exit {
	RETL_EXIT_OK = 0,
	RETL_EXIT_ROWS_FAILED = 1,  /* run completed, some rows failed */
	RETL_EXIT_USAGE = 2,        /* usage or config error, lock held */
	RETL_EXIT_SOURCE = 3,       /* warehouse connection / SQL error */
	RETL_EXIT_DEST = 4,         /* destination auth / fatal API error */
	RETL_EXIT_SAFETY = 5,       /* refused by a safety limit */
	RETL_EXIT_STATE = 6,        /* state store damaged, disk full, I/O
				     * error: the file or the disk, not the
				     * config (state_int.h: which SQLite and
				     * errno errors) */
};

#define RETL_ERR_MSG_MAX 2048

struct retl_err {
	int code;                   /* enum retl_exit; 0 when unset */
	char msg[RETL_ERR_MSG_MAX]; /* "" when unset; always NUL-terminated */
};

/* empties err: the next retl_err_set writes again */
void retl_err_clear(struct retl_err *err);

/*
 * Sets the message (formatted) when err has none yet, and the code when it
 * has none yet; an error already there is kept.  A message longer than
 * RETL_ERR_MSG_MAX - 1 bytes is cut (never inside a UTF-8 character).
 * Returns -1 so callers can `return retl_err_set(...)`; err may be NULL.
 */
int retl_err_set(struct retl_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int retl_err_vset(struct retl_err *err, int code, const char *fmt, va_list ap);

/*
 * Adds context in front of the message already there:
 * retl_err_prefix(err, "sync %s: ", name) turns "state store x: locked"
 * into "sync orders: state store x: locked".  On an empty error the prefix
 * alone becomes the message.  The code is left alone.  Returns -1.
 */
int retl_err_prefix(struct retl_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* sets the code when none is set yet (a default for a caller's failure
 * class), leaving the message alone; returns -1 */
int retl_err_code(struct retl_err *err, int code);

/* 1 when err holds a message */
int retl_err_isset(const struct retl_err *err);

#endif
