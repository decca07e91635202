/*
 * destination.c - the table of destinations.
 */
#include "destination.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "http_dest.h"
#include "url.h"

static const struct retl_destination *const table[] = {
	&retl_dest_file,
	&retl_dest_hubspot,
	&retl_dest_airtable,
	&retl_dest_webhook,
	&retl_dest_mailchimp,
	&retl_dest_salesforce,
};

void retl_batch_fatal(struct retl_batch *b, int code, const char *msg)
{
	if (b->fatal)
		return;
	b->fatal = 1;
	b->fatal_code = code ? code : RETL_EXIT_DEST;
	snprintf(b->fatal_msg, sizeof(b->fatal_msg), "%s", msg);
}

void retl_result_set(struct retl_result *r, enum retl_result_kind kind,
		     const char *dest_id, const char *reason)
{
	free(r->dest_id);
	free(r->reason);
	r->kind = kind;
	r->dest_id = dest_id ? retl_strdup(dest_id) : NULL;
	r->reason = reason ? retl_strdup(reason) : NULL;
}

const char *retl_op_name(enum retl_op_kind k)
{
	switch (k) {
	case RETL_OP_INSERT: return "insert";
	case RETL_OP_UPDATE: return "update";
	case RETL_OP_REMOVE: return "remove";
	default: return "upsert";
	}
}

const struct retl_destination *retl_destination_find(const char *type)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (!strcmp(table[i]->name, type))
			return table[i];
	return NULL;
}

int retl_destination_open(const struct retl_destination *d, void **ctx,
			  const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
			  const struct retl_dest_env *env, struct retl_err *err)
{
	if (d->http)
		return retl_hd_open(ctx, d->http, dc, sc, env, err);
	return d->open(ctx, dc, sc, env, err);
}

const char *retl_destination_if_empty_names(void)
{
	static char names[128];
	size_t at = 0;
	names[0] = '\0';
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i]->if_empty && at < sizeof(names))
			at += (size_t)snprintf(names + at, sizeof(names) - at, "%s%s",
					       at ? ", " : "", table[i]->name);
	return at ? names : "none";
}

const char *retl_destination_names(void)
{
	return "file, hubspot, airtable, webhook, mailchimp, salesforce";
}

int retl_dest_opt_str(const struct retl_dest_cfg *dc, const char *key,
		      const char *what, const char **out, struct retl_err *err)
{
	json_t *v = json_object_get(dc->options, key);
	*out = NULL;
	if (!v)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.%s: missing (%s)",
				    dc->name, key, what);
	if (!json_is_string(v) || !json_string_length(v))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.%s: expected a non-empty string",
				    dc->name, key);
	*out = json_string_value(v);
	return 0;
}

int retl_dest_opt_int(const struct retl_dest_cfg *dc, const char *key,
		      long def, long max, long *out, struct retl_err *err)
{
	json_t *v = json_object_get(dc->options, key);
	*out = def;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
	    (max > 0 && json_integer_value(v) > max)) {
		if (max > 0)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "retl.json: destinations.%s.%s: expected an integer from 1 to %ld",
					    dc->name, key, max);
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.%s: expected a positive integer",
				    dc->name, key);
	}
	*out = (long)json_integer_value(v);
	return 0;
}

int retl_dest_opt_posint(const struct retl_dest_cfg *dc, const char *key,
			 long def, long *out, struct retl_err *err)
{
	return retl_dest_opt_int(dc, key, def, 0, out, err);
}

int retl_dest_opt_url(const struct retl_dest_cfg *dc, const char *key,
		      const char *what, int required, const char **out,
		      struct retl_err *err)
{
	*out = NULL;
	if (!required && !json_object_get(dc->options, key))
		return 0;
	if (retl_dest_opt_str(dc, key, what, out, err) < 0)
		return -1;
	retl_buf why = RETL_BUF_INIT;
	int rc = 0;
	if (retl_url_check(*out, &why) < 0)
		rc = retl_err_set(err, RETL_EXIT_USAGE, "retl.json: destinations.%s.%s: %s",
				  dc->name, key, why.ptr);
	retl_buf_free(&why);
	return rc;
}

int retl_dest_digits(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

int retl_dest_sync_id(const struct retl_sync_cfg *sc, const char *key, char **out)
{
	json_t *v = json_object_get(sc->options, key);
	char num[32];
	*out = NULL;
	if (!v)
		return 1;
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		*out = retl_strdup(num);
		return 0;
	}
	if (!retl_dest_digits(json_string_value(v)))
		return -1;
	*out = retl_strdup(json_string_value(v));
	return 0;
}

const json_t *retl_dest_find(const json_t *arr, const char *field,
			     const char *name, int nocase)
{
	size_t i;
	json_t *x;
	json_array_foreach(arr, i, x) {
		const char *n = json_string_value(json_object_get(x, field));
		if (n && (nocase ? !strcasecmp(n, name) : !strcmp(n, name)))
			return x;
	}
	return NULL;
}

/* Levenshtein distance ignoring ASCII case; above cap returns cap + 1 */
static size_t edit_distance(const char *a, const char *b, size_t cap)
{
	size_t la = strlen(a), lb = strlen(b);
	if ((la > lb ? la - lb : lb - la) > cap)
		return cap + 1;
	size_t *prev = retl_calloc(lb + 1, sizeof(size_t));
	size_t *cur = retl_calloc(lb + 1, sizeof(size_t));
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = (a[i - 1] | 0x20) == (b[j - 1] | 0x20) ? 0 : 1;
			size_t d = prev[j - 1] + cost;
			if (prev[j] + 1 < d)
				d = prev[j] + 1;
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;
			cur[j] = d;
		}
		size_t *t = prev;
		prev = cur;
		cur = t;
	}
	size_t d = prev[lb];
	free(prev);
	free(cur);
	return d;
}

const char *retl_dest_closest(const json_t *arr, const char *field,
			      const char *name, size_t max_dist)
{
	const char *best = NULL;
	size_t bestd = max_dist + 1, i;
	json_t *x;
	json_array_foreach(arr, i, x) {
		const char *n = json_string_value(json_object_get(x, field));
		if (!n)
			continue;
		if (!strcasecmp(n, name))
			return n;
		size_t d = edit_distance(name, n, max_dist);
		if (d < bestd) {
			bestd = d;
			best = n;
		}
	}
	return best;
}
