/*
 * config_notify.c - retl.json's "notify" section (notify.h):
 *
 *   "notify": {
 *     "rows_failing_runs": 3,
 *     "channels": {
 *       "ops":   { "type": "slack", "url": "${SLACK_WEBHOOK_URL}" },
 *       "pager": { "type": "webhook", "url": "${ALERT_URL}",
 *                  "headers": { "Authorization": "Bearer ${ALERT_TOKEN}" },
 *                  "on": ["run_failed", "safety_stop"], "recovery": false }
 *     }
 *   }
 *
 * Checked when the config loads, like every other key; the secrets inside
 * are resolved only when an alert is sent (retl_notify_resolve), so the
 * verbs that send nothing (status, history, failures, reset) need none.
 */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>

#include "notify.h"
#include "redact.h"
#include "url.h"

static const char *const notify_keys[] = { "rows_failing_runs", "channels", NULL };
static const char *const channel_keys[] = {
	"type", "url", "headers", "on", "recovery", "timeout", NULL
};

const char *retl_alert_cond_name(enum retl_alert_cond c)
{
	static const char *const names[RETL_ALERT_NCOND] = {
		"run_failed", "safety_stop", "rows_failing"
	};
	return (unsigned)c < RETL_ALERT_NCOND ? names[c] : "?";
}

/* a whole "@file:" value or a "${NAME}" inside: what resolve_string reads */
static int is_secret_ref(const char *s)
{
	return !strncmp(s, "@file:", 6) || strstr(s, "${");
}

static int load_on(struct retl_cfg_ctx *c, json_t *on, const char *path,
		   unsigned *out)
{
	size_t i;
	json_t *v;
	retl_buf p = RETL_BUF_INIT;

	*out = 0;
	if (!json_is_array(on) || !json_array_size(on))
		return retl_cfg_fail(c, path, "expected a non-empty list of "
				     "run_failed, safety_stop, rows_failing");
	json_array_foreach(on, i, v) {
		int k = -1;
		for (int j = 0; j < RETL_ALERT_NCOND && json_is_string(v); j++)
			if (!strcmp(json_string_value(v), retl_alert_cond_name(j)))
				k = j;
		if (k < 0) {
			retl_buf_addf(&p, "%s[%zu]", path, i);
			retl_cfg_fail(c, p.ptr, "unknown condition %s%s%s (expected "
				      "one of run_failed, safety_stop, rows_failing)",
				      json_is_string(v) ? "\"" : "",
				      json_is_string(v) ? json_string_value(v) : "",
				      json_is_string(v) ? "\"" : "(not a string)");
			retl_buf_free(&p);
			return -1;
		}
		*out |= 1u << k;
	}
	return 0;
}

static int load_headers(struct retl_cfg_ctx *c, json_t *h, const char *path,
			struct retl_notify_channel *ch)
{
	const char *k;
	json_t *v;
	retl_buf p = RETL_BUF_INIT;

	if (!json_is_object(h))
		return retl_cfg_fail(c, path, "expected an object of {header: value}");
	json_object_foreach(h, k, v) {
		if (!json_is_string(v) || !*k || strpbrk(k, ":\r\n ") ||
		    strpbrk(json_string_value(v), "\r\n")) {
			retl_cfg_fail(c, retl_cfg_subpath(&p, path, k), "expected a "
				      "header name and a one-line string value");
			retl_buf_free(&p);
			return -1;
		}
	}
	ch->headers_ref = json_deep_copy(h);
	return 0;
}

static int load_channel(struct retl_cfg_ctx *c, struct retl_notify_channel *ch,
			json_t *obj, const char *path)
{
	retl_buf p = RETL_BUF_INIT;
	char *type = NULL;
	json_t *v;
	int rc = -1;

	ch->on = (1u << RETL_ALERT_NCOND) - 1;
	ch->recovery = 1;
	ch->timeout_ms = 10000;
	if (!json_is_object(obj)) {
		retl_cfg_fail(c, path, "expected an object with a \"type\" and a \"url\"");
		goto out;
	}
	if (retl_cfg_check_keys(c, obj, path, channel_keys, NULL) < 0 ||
	    retl_cfg_get_string(c, obj, path, "type", 1, 1, &type) < 0 ||
	    retl_cfg_get_string(c, obj, path, "url", 1, 1, &ch->url_ref) < 0)
		goto out;
	if (strcmp(type, "slack") && strcmp(type, "webhook")) {
		retl_cfg_fail(c, retl_cfg_subpath(&p, path, "type"), "unknown "
			      "channel type \"%s\" (expected one of slack, webhook)",
			      type);
		goto out;
	}
	ch->slack = !strcmp(type, "slack");
	if (!is_secret_ref(ch->url_ref)) {
		/* the URL is the credential (Slack's holds its token): it
		 * must not sit in a file that goes into version control */
		retl_cfg_fail(c, retl_cfg_subpath(&p, path, "url"), "expected "
			      "\"${NAME}\" or \"@file:PATH\": an alert URL is a "
			      "secret and is read from the environment or a file");
		goto out;
	}
	if ((v = json_object_get(obj, "headers"))) {
		if (ch->slack) {
			retl_cfg_fail(c, retl_cfg_subpath(&p, path, "headers"),
				      "a Slack incoming webhook takes no headers");
			goto out;
		}
		if (load_headers(c, v, retl_cfg_subpath(&p, path, "headers"), ch) < 0)
			goto out;
	}
	if ((v = json_object_get(obj, "on")) &&
	    load_on(c, v, retl_cfg_subpath(&p, path, "on"), &ch->on) < 0)
		goto out;
	if ((v = json_object_get(obj, "recovery"))) {
		if (!json_is_boolean(v)) {
			retl_cfg_fail(c, retl_cfg_subpath(&p, path, "recovery"),
				      "expected true or false");
			goto out;
		}
		ch->recovery = json_is_true(v);
	}
	if ((v = json_object_get(obj, "timeout"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 300) {
			retl_cfg_fail(c, retl_cfg_subpath(&p, path, "timeout"),
				      "expected whole seconds from 1 to 300");
			goto out;
		}
		ch->timeout_ms = (long)json_integer_value(v) * 1000;
	}
	rc = 0;
out:
	free(type);
	retl_buf_free(&p);
	return rc;
}

int retl_cfg_load_notify(struct retl_cfg_ctx *c, struct retl_config *cfg,
			 json_t *obj)
{
	retl_buf p = RETL_BUF_INIT;
	const char *k;
	json_t *v;

	if (!obj)
		return 0;
	struct retl_notify_cfg *n = retl_calloc(1, sizeof(*n));
	cfg->notify = n;
	n->dir = retl_strdup(c->dir);
	n->rows_failing_runs = RETL_NOTIFY_FAILING_RUNS;
	if (!json_is_object(obj))
		return retl_cfg_fail(c, "notify", "expected an object with "
				     "\"channels\"");
	if (retl_cfg_check_keys(c, obj, "notify", notify_keys, NULL) < 0)
		return -1;
	if ((v = json_object_get(obj, "rows_failing_runs"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 1000000)
			return retl_cfg_fail(c, "notify.rows_failing_runs",
					     "expected a whole number of runs "
					     "(0 to 1000000)");
		n->rows_failing_runs = (long)json_integer_value(v);
	}
	json_t *chs = json_object_get(obj, "channels");
	if (!chs)
		return retl_cfg_fail(c, "notify.channels", "missing (required)");
	if (!json_is_object(chs) || !json_object_size(chs))
		return retl_cfg_fail(c, "notify.channels", "expected an object "
				     "of {name: {type, url, ...}}");
	n->ch = retl_calloc(json_object_size(chs), sizeof(*n->ch));
	int rc = 0;
	json_object_foreach(chs, k, v) {
		struct retl_notify_channel *ch = &n->ch[n->nch++];
		ch->name = retl_strdup(k);
		if ((rc = load_channel(c, ch, v, retl_cfg_subpath(&p, "notify.channels", k))) < 0)
			break;
	}
	retl_buf_free(&p);
	return rc;
}

/* one channel's url and headers, from their references */
static int resolve_channel(struct retl_cfg_ctx *c, struct retl_notify_channel *ch)
{
	retl_buf p = RETL_BUF_INIT, why = RETL_BUF_INIT;
	json_t *url = json_string(ch->url_ref);
	json_t *hs = ch->headers_ref ? json_deep_copy(ch->headers_ref) : NULL;
	int rc = -1;

	retl_buf_addf(&p, "notify.channels.%s", ch->name);
	const char *base = retl_buf_detach(&p);
	if (retl_cfg_resolve_secrets(c, url, retl_cfg_subpath(&p, base, "url")) < 0 ||
	    (hs && retl_cfg_resolve_secrets(c, hs, retl_cfg_subpath(&p, base, "headers")) < 0))
		goto out;
	/* the whole URL is the secret, not only the variable's part */
	retl_redact_add(json_string_value(url));
	if (retl_url_check(json_string_value(url), &why) < 0) {
		retl_cfg_fail(c, retl_cfg_subpath(&p, base, "url"), "%s", why.ptr);
		goto out;
	}
	ch->url = retl_strdup(json_string_value(url));
	size_t i = 0;
	const char *k;
	json_t *v;
	ch->headers = retl_calloc(json_object_size(hs) + 1, sizeof(char *));
	json_object_foreach(hs, k, v) {
		retl_buf line = RETL_BUF_INIT;
		retl_buf_addf(&line, "%s: %s", k, json_string_value(v));
		ch->headers[i++] = retl_buf_detach(&line);
	}
	rc = 0;
out:
	free((char *)base);
	retl_buf_free(&p);
	retl_buf_free(&why);
	json_decref(url);
	json_decref(hs);
	return rc;
}

void retl_notify_resolve(struct retl_notify_cfg *n)
{
	if (!n || n->resolved)
		return;
	n->resolved = 1;
	for (size_t i = 0; i < n->nch; i++) {
		struct retl_err err;
		struct retl_cfg_ctx c = { .dir = n->dir, .file = "retl.json", .err = &err };
		retl_err_clear(&err);
		if (resolve_channel(&c, &n->ch[i]) < 0) {
			retl_redact_str(err.msg, sizeof(err.msg));
			n->ch[i].error = retl_strdup(err.msg);
		}
	}
}

void retl_notify_cfg_free(struct retl_notify_cfg *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nch; i++) {
		struct retl_notify_channel *ch = &n->ch[i];
		free(ch->name);
		free(ch->url_ref);
		json_decref(ch->headers_ref);
		free(ch->url);
		for (char **h = ch->headers; h && *h; h++)
			free(*h);
		free(ch->headers);
		free(ch->error);
	}
	free(n->ch);
	free(n->dir);
	free(n);
}
