/*
 * err.c - struct retl_err and its first-message-wins rule, see err.h.
 */
#include "err.h"

#include <stdio.h>
#include <string.h>

void retl_err_clear(struct retl_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

/* a cut at the end of msg may split a UTF-8 character: drop its head */
static void trim_partial_utf8(char *msg, size_t len)
{
	size_t i = len, cont = 0;
	while (i > 0 && ((unsigned char)msg[i - 1] & 0xC0) == 0x80 && cont < 3) {
		i--;
		cont++;
	}
	if (i == 0)
		return;
	unsigned char lead = (unsigned char)msg[i - 1];
	size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
	if (lead >= 0xC0 && cont < need)
		msg[i - 1] = '\0';
}

/* vsnprintf into msg, cut safely; returns the length written */
static size_t format_into(char *msg, size_t size, const char *fmt, va_list ap)
{
	int n = vsnprintf(msg, size, fmt, ap);
	if (n < 0) {
		msg[0] = '\0';
		return 0;
	}
	if ((size_t)n >= size) {
		trim_partial_utf8(msg, size - 1);
		return strlen(msg);
	}
	return (size_t)n;
}

int retl_err_vset(struct retl_err *err, int code, const char *fmt, va_list ap)
{
	if (!err)
		return -1;
	if (!err->code)
		err->code = code;
	if (!err->msg[0])
		format_into(err->msg, sizeof(err->msg), fmt, ap);
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

int retl_err_prefix(struct retl_err *err, const char *fmt, ...)
{
	char pre[RETL_ERR_MSG_MAX];
	va_list ap;
	if (!err)
		return -1;
	va_start(ap, fmt);
	size_t plen = format_into(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	size_t mlen = strlen(err->msg);
	size_t room = sizeof(err->msg) - 1;
	if (plen > room)
		plen = room;
	/* the message's tail gives way to the prefix when both do not fit */
	int cut = mlen > room - plen;
	if (cut)
		mlen = room - plen;
	memmove(err->msg + plen, err->msg, mlen);
	memcpy(err->msg, pre, plen);
	err->msg[plen + mlen] = '\0';
	if (cut)
		trim_partial_utf8(err->msg, plen + mlen);
	return -1;
}

int retl_err_code(struct retl_err *err, int code)
{
	if (err && !err->code)
		err->code = code;
	return -1;
}

int retl_err_isset(const struct retl_err *err)
{
	return err && err->msg[0] != '\0';
}
