/*
 * log.c - log lines on stderr, see log.h.
 *
 * Plain:  2026-11-25T01:02:03Z info  customers: sent 500 rows
 * JSON:   {"ts":"…","level":"info","sync":"customers","msg":"sent 500 rows"}
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "progress.h"
#include "redact.h"

static int log_json;
static enum retl_log_level log_level = RETL_LOG_INFO;

void retl_log_set_json(int json)
{
	log_json = json;
}

int retl_log_is_json(void)
{
	return log_json;
}

void retl_log_set_level(enum retl_log_level lvl)
{
	log_level = lvl;
}

static const char *level_name(enum retl_log_level lvl)
{
	switch (lvl) {
	case RETL_LOG_DEBUG: return "debug";
	case RETL_LOG_INFO: return "info";
	case RETL_LOG_WARN: return "warn";
	default: return "error";
	}
}

void retl_log(enum retl_log_level lvl, const char *sync, const char *fmt, ...)
{
	if (lvl < log_level)
		return;
	retl_buf msg = RETL_BUF_INIT, raw = RETL_BUF_INIT, line = RETL_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	retl_buf_vaddf(&raw, fmt, ap);
	va_end(ap);
	retl_redact_into(&msg, retl_buf_cstr(&raw), raw.len);

	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);

	if (log_json) {
		retl_buf_adds(&line, "{\"ts\":\"");
		retl_buf_adds(&line, ts);
		retl_buf_addf(&line, "\",\"level\":\"%s\"", level_name(lvl));
		if (sync) {
			retl_buf_adds(&line, ",\"sync\":");
			retl_buf_add_json_str(&line, sync, strlen(sync));
		}
		retl_buf_adds(&line, ",\"msg\":");
		retl_buf_add_json_str(&line, retl_buf_cstr(&msg), msg.len);
		retl_buf_adds(&line, "}\n");
	} else {
		retl_buf_addf(&line, "%s %-5s %s%s%s\n", ts, level_name(lvl),
			      sync ? sync : "", sync ? ": " : "",
			      retl_buf_cstr(&msg));
	}
	retl_progress_clear();
	fputs(retl_buf_cstr(&line), stderr);
	fflush(stderr);
	retl_progress_redraw();
	retl_buf_free(&msg);
	retl_buf_free(&raw);
	retl_buf_free(&line);
}
