/*
 * err.c - struct retl_err, see err.h.
 */
#include "err.h"

#include <stdio.h>

void retl_err_clear(struct retl_err *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}

int retl_err_vset(struct retl_err *err, int code, const char *fmt, va_list ap)
{
	if (!err)
		return -1;
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return -1;
}

int retl_err_set(struct retl_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	retl_err_vset(err, code, fmt, ap);
	va_end(ap);
	return -1;
}
