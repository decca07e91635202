/*
 * log.h - log lines on stderr: plain text, or JSON (--log-format json).
 *
 * Every line goes through redact.h.  The progress bar (progress.c) owns the
 * terminal line when stderr is a TTY; log.c clears it before printing.
 */
#ifndef RETL_LOG_H
#define RETL_LOG_H

enum retl_log_level { RETL_LOG_DEBUG, RETL_LOG_INFO, RETL_LOG_WARN, RETL_LOG_ERROR };

void retl_log_set_json(int json);
void retl_log_set_level(enum retl_log_level lvl);
int retl_log_is_json(void);
void retl_log(enum retl_log_level lvl, const char *sync, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
