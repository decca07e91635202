/*
 * test_notify.c - the pure parts of alerts (notify.c, config_notify.c):
 * how a run's status and exit code are read, the alert's JSON and text,
 * Slack's body, and the notify section's secrets, resolved only when asked.
 * The conditions across runs and processes are tested against real runs
 * in tests/integration/test_notify.py.
 */
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "err.h"
#include "notify.h"
#include "redact.h"
#include "state.h"
#include "test.h"

static void test_classify(void)
{
	/* the statuses of state.h */
	CHECK(retl_notify_classify("ok", 0) == RETL_CLASS_COMPLETED);
	CHECK(retl_notify_classify("rows rejected", 1) == RETL_CLASS_COMPLETED);
	CHECK(retl_notify_classify("failed", 3) == RETL_CLASS_FAILED);
	CHECK(retl_notify_classify("failed", 4) == RETL_CLASS_FAILED);
	CHECK(retl_notify_classify("failed", 2) == RETL_CLASS_FAILED);
	CHECK(retl_notify_classify("failed", 6) == RETL_CLASS_FAILED);
	CHECK(retl_notify_classify("failed", 5) == RETL_CLASS_SAFETY);
	CHECK(retl_notify_classify("interrupted", 1) == RETL_CLASS_NOTHING);
	CHECK(retl_notify_classify("abandoned", -1) == RETL_CLASS_NOTHING);
	CHECK(retl_notify_classify("running", 0) == RETL_CLASS_NOTHING);
	CHECK(retl_notify_classify(NULL, 0) == RETL_CLASS_NOTHING);
}

static struct retl_run_rec a_run(const char *status, int code, const char *msg)
{
	struct retl_run_rec r;
	memset(&r, 0, sizeof(r));
	r.id = 42;
	r.sync = "people";
	r.status = status;
	r.exit_code = code;
	r.ended = "2026-11-29T12:00:00.000Z";
	r.message = msg;
	r.c.read = 10;
	r.c.added = 3;
	r.c.changed = 2;
	r.c.failed = 1;
	return r;
}

static void test_event(void)
{
	retl_redact_add("hunter2-secret");
	struct retl_run_rec r = a_run("failed", 3, "source wh: password "
				      "hunter2-secret refused <x> & more");
	char *s = retl_notify_event("people", RETL_ALERT_RUN_FAILED, 1, &r, 0, 3);
	json_t *ev = json_loads(s, 0, NULL);
	CHECK(ev != NULL);
	CHECK_STR(json_string_value(json_object_get(ev, "condition")), "run_failed");
	CHECK_STR(json_string_value(json_object_get(ev, "state")), "firing");
	CHECK_STR(json_string_value(json_object_get(ev, "sync")), "people");
	CHECK_STR(json_string_value(json_object_get(ev, "id")),
		  "people/run_failed/42/firing");
	CHECK(json_integer_value(json_object_get(ev, "run_id")) == 42);
	CHECK(json_integer_value(json_object_get(ev, "exit_code")) == 3);
	CHECK(json_integer_value(json_object_get(json_object_get(ev, "counts"),
						 "failed")) == 1);
	const char *text = json_string_value(json_object_get(ev, "text"));
	CHECK(text && strstr(text, "sync people failed: run 42 ended with exit 3"));
	CHECK(text && strstr(text, "`retl history people`"));
	CHECK(text && strstr(text, "sent 5 (added 3, changed 2"));
	/* a secret in the run's message never reaches an alert */
	CHECK(!strstr(s, "hunter2-secret"));
	CHECK(strstr(s, "[REDACTED]") != NULL);

	/* Slack: {"text"} alone, with &, <, > escaped */
	char *slack = retl_notify_slack_body(s);
	json_t *sb = json_loads(slack, 0, NULL);
	CHECK(json_object_size(sb) == 1);
	const char *st = json_string_value(json_object_get(sb, "text"));
	CHECK(st && strstr(st, "refused &lt;x&gt; &amp; more"));
	CHECK(st && !strchr(st, '<') && !strchr(st, '>'));
	json_decref(sb);
	free(slack);
	json_decref(ev);
	free(s);

	/* rows failing, and a recovery */
	r = a_run("failed", 1, NULL);
	s = retl_notify_event("people", RETL_ALERT_ROWS_FAILING, 1, &r, 7, 3);
	ev = json_loads(s, 0, NULL);
	text = json_string_value(json_object_get(ev, "text"));
	CHECK(text && strstr(text, "has 7 rows failing in more than 3 runs"));
	CHECK(text && strstr(text, "`retl failures people`"));
	CHECK(json_integer_value(json_object_get(ev, "rows_failing")) == 7);
	json_decref(ev);
	free(s);
	r = a_run("ok", 0, NULL);
	s = retl_notify_event("people", RETL_ALERT_SAFETY_STOP, 0, &r, 0, 3);
	ev = json_loads(s, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(ev, "state")), "recovered");
	text = json_string_value(json_object_get(ev, "text"));
	CHECK(text && strstr(text, "recovered from the safety stop: run 42"));
	json_decref(ev);
	free(s);

	/* a long message is cut at 300 bytes, never inside a character */
	char longmsg[700];
	memset(longmsg, 'a', sizeof(longmsg));
	memcpy(longmsg + 299, "\xc3\xa9", 2);  /* é across the cut */
	longmsg[sizeof(longmsg) - 1] = '\0';
	r = a_run("failed", 4, longmsg);
	s = retl_notify_event("people", RETL_ALERT_RUN_FAILED, 1, &r, 0, 3);
	ev = json_loads(s, 0, NULL);    /* jansson refuses invalid UTF-8 */
	CHECK(ev != NULL);
	const char *m = json_string_value(json_object_get(ev, "message"));
	CHECK(m && strlen(m) == 299 + 3 && !strcmp(m + 299, "..."));
	json_decref(ev);
	free(s);
}

static char root[] = "/tmp/retl_test_notify_XXXXXX";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

static void test_config_resolves_secrets_only_when_asked(void)
{
	char path[4096];
	struct retl_config *cfg;
	struct retl_err err;

	snprintf(path, sizeof(path), "%s/retl.json", root);
	write_file(path, "{\"sources\": {}, \"destinations\": {}, \"notify\": {"
		   "\"rows_failing_runs\": 5, \"channels\": {"
		   "\"a\": {\"type\": \"webhook\", \"url\": \"${RETL_T_HOOK}\","
		   " \"headers\": {\"Authorization\": \"Bearer ${RETL_T_TOKEN}\"},"
		   " \"on\": [\"rows_failing\"], \"recovery\": false},"
		   "\"b\": {\"type\": \"slack\", \"url\": \"${RETL_T_SLACK}\","
		   " \"timeout\": 3}}}}");
	unsetenv("RETL_T_HOOK");
	unsetenv("RETL_T_TOKEN");
	unsetenv("RETL_T_SLACK");
	retl_err_clear(&err);
	/* loads without any of the secrets */
	CHECK(retl_config_load(&cfg, root, &err) == 0);
	if (!cfg)
		return;
	struct retl_notify_cfg *n = cfg->notify;
	CHECK(n && n->nch == 2 && n->rows_failing_runs == 5);
	CHECK(!n->ch[0].slack && n->ch[1].slack);
	CHECK(n->ch[0].on == 1u << RETL_ALERT_ROWS_FAILING && !n->ch[0].recovery);
	CHECK(n->ch[1].on == 7 && n->ch[1].recovery && n->ch[1].timeout_ms == 3000);
	CHECK(!n->ch[0].url && !n->ch[1].url);

	setenv("RETL_T_HOOK", "http://127.0.0.1:9/alerts/p4th", 1);
	setenv("RETL_T_TOKEN", "tok-abcdef", 1);
	setenv("RETL_T_SLACK", "http://hooks.example.com/services/T/B/sl4ck", 1);
	retl_notify_resolve(n);
	CHECK_STR(n->ch[0].url, "http://127.0.0.1:9/alerts/p4th");
	CHECK(n->ch[0].headers && n->ch[0].headers[0] && !n->ch[0].headers[1]);
	CHECK_STR(n->ch[0].headers[0], "Authorization: Bearer tok-abcdef");
	CHECK(n->ch[0].error == NULL);
	/* plain http to a name: refused, and the error has no path */
	CHECK(n->ch[1].url == NULL && n->ch[1].error != NULL);
	CHECK(n->ch[1].error && strstr(n->ch[1].error,
				      "retl.json: notify.channels.b.url: "));
	CHECK(n->ch[1].error && !strstr(n->ch[1].error, "sl4ck"));
	/* resolved URLs are secrets */
	retl_buf b = RETL_BUF_INIT;
	const char *line = "posting to http://127.0.0.1:9/alerts/p4th";
	retl_redact_into(&b, line, strlen(line));
	CHECK(!strstr(b.ptr, "p4th"));
	retl_buf_free(&b);
	retl_config_free(cfg);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb; (void)flag; (void)f;
	return remove(p);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 2;
	}
	test_classify();
	test_event();
	test_config_resolves_secrets_only_when_asked();
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	TEST_DONE();
}
