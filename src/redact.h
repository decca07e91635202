/*
 * redact.h - secrets never leave the process.
 *
 * Every secret value config.c resolves (and the password inside a DSN) is
 * registered here; everything retl prints or stores that could carry outside
 * text (log lines, errors, API reasons, plan files) goes through
 * retl_redact() first, which replaces each occurrence with "[REDACTED]".
 */
#ifndef RETL_REDACT_H
#define RETL_REDACT_H

#include "buf.h"

/* registers a secret (copied); strings shorter than 4 bytes are ignored */
void retl_redact_add(const char *secret);
/* appends s to out with every registered secret replaced */
void retl_redact_into(retl_buf *out, const char *s, size_t len);
/* in place on a NUL-terminated heap-free buffer of capacity cap */
void retl_redact_str(char *s, size_t cap);
/* the password of a libpq DSN (URI or key=value), registered as a secret */
void retl_redact_dsn_password(const char *dsn);
void retl_redact_clear(void);

#endif
