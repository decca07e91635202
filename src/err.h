/*
 * err.h - the error a function hands back to its caller.
 *
 * Functions return int (0 ok, negative error) and describe the failure in a
 * struct retl_err the caller passes (libgit2's convention).  `code` carries
 * the process exit code the CLI should use (RETL_EXIT_*), so a source error
 * found deep in the sync engine still exits 3.
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
};

#define RETL_ERR_MSG_MAX 2048

struct retl_err {
	int code;                   /* enum retl_exit; 0 when unset */
	char msg[RETL_ERR_MSG_MAX];
};

void retl_err_clear(struct retl_err *err);
/* sets msg (formatted) and code; returns -1 so callers can `return retl_err_set(...)` */
int retl_err_set(struct retl_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int retl_err_vset(struct retl_err *err, int code, const char *fmt, va_list ap);

#endif
