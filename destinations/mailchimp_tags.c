/*
 * mailchimp_tags.c - the tags a Mailchimp sync manages, and the prepared
 * body's two parts.
 *
 * Only tags the mapping has set are ever removed; tags people add by hand
 * stay.  The names the mapping has ever set are the sync's note
 * "mailchimp_tags" (MC_TAGS_NOTE), written before a request carries a new
 * name, so a killed run still knows it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailchimp_int.h"

static int name_in(const json_t *names, const char *n)
{
	size_t i;
	json_t *x;
	if (!n)
		return 0;
	json_array_foreach(names, i, x)
		if (json_is_string(x) && !strcasecmp(json_string_value(x), n))
			return 1;
	return 0;
}

/* adds a row's tag names to the managed ones; a new name is written to the
 * sync's note at once, before any request carries it */
int mailchimp_manage(struct mc_ctx *c, const json_t *tags)
{
	size_t i;
	json_t *x;
	int grew = 0;
	json_array_foreach(tags, i, x) {
		if (!name_in(c->managed, json_string_value(x))) {
			json_array_append(c->managed, x);
			grew = 1;
		}
	}
	if (!grew || !c->base.env.note_set)
		return 0;
	char *v = json_dumps(c->managed, JSON_COMPACT);
	int rc = c->base.env.note_set(c->base.env.ud, MC_TAGS_NOTE, v);
	free(v);
	return rc;
}

/*
 * An op's prepared body is its member object (mailchimp_member.c), and when
 * tags are mapped a newline and the row's tag names as a JSON array: the
 * member goes to batch subscribe or PUT, the names to the tags endpoint.
 */
const char *mailchimp_member_json(const struct retl_request *r, size_t k, size_t *n)
{
	const char *b = retl_req_body(r, k, n);
	const char *nl = memchr(b, '\n', *n);
	if (nl)
		*n = (size_t)(nl - b);
	return b;
}

/* the tag names op k's row sets (a new reference) */
static json_t *sent_tags(const struct retl_request *r, size_t k)
{
	size_t n;
	const char *b = retl_req_body(r, k, &n);
	const char *nl = memchr(b, '\n', n);
	json_error_t je;
	json_t *t = nl ? json_loadb(nl + 1, n - (size_t)(nl + 1 - b), 0, &je) : NULL;
	if (!json_is_array(t)) {
		json_decref(t);
		t = json_array();
	}
	return t;
}

/* do the member's tags (an answer's member object) differ from what op k's
 * row wants: a tag the row sets missing, or a managed tag the row no longer
 * sets still there? */
int mailchimp_tags_differ(const struct mc_ctx *c, const json_t *member,
		       const struct retl_request *r, size_t k)
{
	json_t *want = sent_tags(r, k), *have = json_array(), *x;
	size_t i;
	int differ = 0;
	json_array_foreach(json_object_get(member, "tags"), i, x)
		if (json_is_string(json_object_get(x, "name")))
			json_array_append(have, json_object_get(x, "name"));
	json_array_foreach(want, i, x)
		differ |= !name_in(have, json_string_value(x));
	json_array_foreach(have, i, x)
		differ |= name_in(c->managed, json_string_value(x)) &&
			  !name_in(want, json_string_value(x));
	json_decref(want);
	json_decref(have);
	return differ;
}

/* {"tags": [the row's tags active, managed ones it does not set inactive],
 * "is_syncing": true} (a tag the member does not hold is no change) */
void mailchimp_tags_body(const struct mc_ctx *c, const struct retl_request *r, retl_buf *o)
{
	json_t *sent = sent_tags(r, 0), *all = json_array(), *x;
	size_t i;
	json_array_foreach(sent, i, x)
		json_array_append_new(all, json_pack("{s:O,s:s}", "name", x, "status", "active"));
	json_array_foreach(c->managed, i, x)
		if (!name_in(sent, json_string_value(x)))
			json_array_append_new(all, json_pack("{s:O,s:s}", "name", x,
							     "status", "inactive"));
	json_t *root = json_pack("{s:o,s:b}", "tags", all, "is_syncing", 1);
	char *j = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	retl_buf_adds(o, j);
	free(j);
	json_decref(root);
	json_decref(sent);
}
