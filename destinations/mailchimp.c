/*
 * mailchimp.c - the Mailchimp destination: audience members through the
 * Marketing API v3, on the HTTP destinations' base (http_dest.h).
 *
 *   upsert   new addresses: batch subscribe, POST /lists/{list_id}, up to
 *            500 members a request, update_existing false, each member
 *            with "status" (the sync key status_if_new: subscribed,
 *            transactional or pending).  An address that is a member
 *            already (ERROR_CONTACT_EXISTS), and a member retl wrote before
 *            (it has its address as destination id), goes to PUT
 *            /lists/{list_id}/members/{hash} with "status_if_new": Mailchimp's
 *            documented add-or-update that never changes an existing
 *            member's status, so retl never re-subscribes someone who
 *            unsubscribed and never "cleans" anyone.  One member a request:
 *            no batch endpoint documents that semantics except POST
 *            /batches, whose results come back as a tar.gz archive
 *            (see README, "Mailchimp").
 *   insert   batch subscribe as above: new addresses only.  An address
 *            that is already a member (ERROR_CONTACT_EXISTS) counts as
 *            acknowledged and is left as Mailchimp has it: insert creates
 *            what is not there -- which also makes a replayed insert (an
 *            answer lost to a dropped connection) harmless.
 *   update   PATCH /lists/{list_id}/members/{hash} ("Update list member"),
 *            one member a request: existing members only, never their
 *            status; a 404 (not a member, or archived) fails the row "no
 *            record matches".  Never creates: no batch subscribe, no PUT.
 *   mirror   upsert, and rows that left the model:
 *              on_remove unsubscribe  batch subscribe with status
 *                                     "unsubscribed" (500 a request)
 *              on_remove archive      DELETE /lists/{id}/members/{hash}
 *              on_remove delete       POST …/members/{hash}/actions/
 *                                     delete-permanent, only with the sync
 *                                     key "delete_permanent": true (the
 *                                     address can never be imported again)
 *            A 404 on a removal means the member is gone already: done.
 *   membership  the rows are a static segment's (a tag's) members:
 *            mailchimp_segment.c
 *
 * Every request is safe to replay, so the HTTP engine retries 5xx and
 * dropped connections for all of them.  The key is the email address (the
 * target email_address, which match names); the subscriber hash is the MD5
 * of the lowercased address.  An acknowledged row stores the lowercased
 * address as its destination id: removals need it after the row left the
 * model.
 *
 * Results come back by address (compared without case), never by position:
 * new_members and updated_members acknowledge rows, errors[] reject them
 * with Mailchimp's own message ("x looks fake or invalid…", "Your merge
 * fields were invalid. (AGE: Please enter a number)", "… is in a compliance
 * state …").
 *
 * Payload -> member: mailchimp_member.c (email_address, merge_fields.TAG,
 * tags, language, vip, location, email_type, interests).
 *
 * Tags: only tags the mapping has set are ever removed; tags people add by
 * hand stay.  So no sync_tags (it replaces every tag).  A new member gets
 * its row's tags in batch subscribe (documented by a release note, see
 * add_member_with).  The names the mapping has ever set are the sync's
 * note "mailchimp_tags" (written before a request carries a new name, so a
 * killed run still knows it).  A member whose answer shows tags other than
 * its row's (one missing, or a managed one the row no longer sets) is sent
 * on to POST …/members/{hash}/tags, the row's tags "active" and every
 * other managed tag "inactive", and counts as done once that is answered
 * 204.
 *
 * Mailchimp's limit is 10 simultaneous connections per API key: the HTTP
 * engine's max_inflight is max_connections (default and ceiling 10).  There
 * is no request rate to pace; a 429 waits and retries in the engine.
 */
#include "destination.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mailchimp_int.h"

#define MC_MAX_MEMBERS 500
#define MC_MAX_CONN 10

static const char *const mc_conn_keys[] = {
	"api_key", "max_connections", "timeout", NULL
};

static const char *const mc_sync_keys[] = {
	"status_if_new", "delete_permanent", "segment", NULL
};

/* ---- options ---- */

/* the data center of "…-us6": "us6", or NULL */
static const char *key_dc(const char *key)
{
	const char *d = strrchr(key, '-');
	if (!d || !d[1])
		return NULL;
	for (const char *p = d + 1; *p; p++)
		if (!isalnum((unsigned char)*p))
			return NULL;
	return d + 1;
}

static int mc_validate(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	json_t *k = json_object_get(dc->options, "api_key");
	long n;
	if (!k)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.api_key: missing (a Mailchimp API key, e.g. \"${MAILCHIMP_KEY}\")",
				    dc->name);
	if (!json_is_string(k) || !json_string_length(k))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.api_key: expected a non-empty string (e.g. \"${MAILCHIMP_KEY}\")",
				    dc->name);
	if (!dc->base_url && !key_dc(json_string_value(k)))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.api_key: the key does not end in its data center (\"…-us6\"); copy the whole key from Mailchimp",
				    dc->name);
	if (retl_dest_opt_int(dc, "max_connections", MC_MAX_CONN, MC_MAX_CONN, &n, err) < 0 ||
	    retl_dest_opt_int(dc, "timeout", 300, 0, &n, err) < 0)
		return -1;
	return 0;
}

/* ---- hashing and auth ---- */

/* MD5 hex of the lowercased address: Mailchimp's subscriber hash */
static void subscriber_hash(const char *email, size_t n, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *low = retl_strndup(email, n);
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)low[i]);
	EVP_Digest(low, n, md, &mdlen, EVP_md5(), NULL);
	free(low);
	for (unsigned i = 0; i < 16 && i < mdlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[32] = '\0';
}

/* "Authorization: Basic base64(retl:KEY)" */
static char *basic_auth(const char *key)
{
	retl_buf up = RETL_BUF_INIT, a = RETL_BUF_INIT;
	retl_buf_addf(&up, "retl:%s", key);
	unsigned char *b64 = retl_malloc(4 * ((up.len + 2) / 3) + 1);
	EVP_EncodeBlock(b64, (const unsigned char *)up.ptr, (int)up.len);
	retl_buf_addf(&a, "Authorization: Basic %s", (const char *)b64);
	/* wipe the copies of the key */
	memset(up.ptr, 0, up.len);
	memset(b64, 0, strlen((const char *)b64));
	free(b64);
	retl_buf_free(&up);
	return retl_buf_detach(&a);
}

/* ---- prepare / encode ---- */

static int mc_prepare(void *d, struct retl_batch *b, size_t i, retl_buf *body,
		      retl_buf *id, retl_buf *reason)
{
	struct mc_ctx *c = d;
	const struct retl_op *op = &b->ops[i];
	if (c->base.mode == RETL_MODE_MEMBERSHIP)
		return mailchimp_segment_prepare(c, b, i, id, reason);
	if (op->kind != RETL_OP_REMOVE) {
		json_t *tags = c->has_tags ? json_array() : NULL;
		size_t id0 = id->len;     /* id and body hold every op's: ours
					   * start here */
		int rc = mailchimp_member(op->payload, op->payload_len, body, id, tags,
					  reason);
		if (rc == 0 && tags && mailchimp_manage(c, tags) < 0) {
			retl_buf_adds(reason, "mailchimp: cannot record the tag names this sync sets (state store)");
			rc = -1;
		}
		if (rc == 0 && tags) {
			char *j = json_dumps(tags, JSON_COMPACT);
			retl_buf_addc(body, '\n');
			retl_buf_adds(body, j);
			free(j);
		}
		json_decref(tags);
		if (rc < 0)
			return RETL_HD_REJECT;
		if (c->base.mode == RETL_MODE_UPDATE)
			return MC_PATCH;
		if (c->base.mode == RETL_MODE_INSERT || op->kind == RETL_OP_INSERT)
			return MC_INSERT;
		/* a member retl has written before (its address unchanged) goes
		 * straight to PUT: batch subscribe would only answer that it
		 * exists */
		if (op->dest_id && !strcasecmp(op->dest_id, id->ptr + id0))
			return MC_PUT;
		return MC_UPSERT;
	}
	/* the member's address: stored when acknowledged, else the match
	 * value it was sent with (its answer lost) */
	const char *email = op->dest_id && op->dest_id[0] ? op->dest_id : op->match;
	if (!email || !email[0]) {
		/* never reached Mailchimp: nothing to remove */
		retl_result_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
		return RETL_HD_NONE;
	}
	retl_buf_adds(id, email);
	if (c->on_remove == RETL_REMOVE_UNSUBSCRIBE) {
		retl_buf_adds(body, "{\"email_address\":");
		retl_buf_add_json_str(body, email, strlen(email));
		retl_buf_adds(body, ",\"status\":\"unsubscribed\"}");
		return MC_UNSUB;
	}
	if (c->on_remove == RETL_REMOVE_DELETE && c->delete_permanent)
		return MC_DELETE;
	return MC_ARCHIVE;
}

static size_t mc_max_ops(void *d, int kind)
{
	/* batch subscribe takes 500 members, a segment's batch 500 addresses;
	 * the rest go one a request */
	if (((struct mc_ctx *)d)->base.mode == RETL_MODE_MEMBERSHIP)
		return MC_MAX_MEMBERS;
	return kind == MC_UPSERT || kind == MC_INSERT || kind == MC_UNSUB ?
	       MC_MAX_MEMBERS : 1;
}

/* the URL of the request's one member, with `tail` */
static char *member_url(const struct mc_ctx *c, const struct retl_request *r,
			const char *tail)
{
	char h[33];
	size_t el;
	const char *e = retl_req_id(r, 0, &el);
	retl_buf url = RETL_BUF_INIT;
	subscriber_hash(e, el, h);
	retl_buf_addf(&url, "%s/lists/%s/members/%s%s", c->base.url, c->base.object, h, tail);
	return retl_buf_detach(&url);
}

/*
 * The member object of op k with `"key":"<status>",` in front, and for a
 * batch member the row's tag names: Mailchimp's release note of 2022-01-24
 * ("Added ability to sync tags to existing members") documents "tags" on
 * batch subscribe's members, which the published spec's member object
 * lacks.  PUT documents no tags: its member's tags go through the tags
 * endpoint when its answer shows them different.
 */
static void add_member_with(const struct mc_ctx *c, const struct retl_request *r,
			    size_t k, const char *key, int with_tags, retl_buf *o)
{
	size_t n, bn;
	const char *m = mailchimp_member_json(r, k, &n);
	const char *b = retl_req_body(r, k, &bn);
	retl_buf_addf(o, "{\"%s\":", key);
	retl_buf_add_json_str(o, c->status_if_new, strlen(c->status_if_new));
	retl_buf_addc(o, ',');
	if (with_tags && n < bn && bn - n > 3) {     /* "\n[]" is no tags */
		retl_buf_add(o, m + 1, n - 2);
		retl_buf_adds(o, ",\"tags\":");
		retl_buf_add(o, b + n + 1, bn - n - 1);
		retl_buf_addc(o, '}');
	} else {
		retl_buf_add(o, m + 1, n - 1);
	}
}

static int mc_encode(void *d, struct retl_request *r, struct retl_err *err)
{
	struct mc_ctx *c = d;
	struct retl_http_req *req = r->http;
	retl_buf *o = &req->body;

	(void)err;
	if (c->base.mode == RETL_MODE_MEMBERSHIP)
		return mailchimp_segment_encode(c, r);
	req->idempotent = 1;
	switch (r->kind) {
	case MC_ARCHIVE:
		req->method = "DELETE";
		req->url = member_url(c, r, "");
		return 0;
	case MC_DELETE:
		req->method = "POST";
		req->url = member_url(c, r, "/actions/delete-permanent");
		return 0;
	case MC_TAGS:
		req->method = "POST";
		req->url = member_url(c, r, "/tags");
		mailchimp_tags_body(c, r, o);
		return 0;
	case MC_PATCH: {
		/* the member object alone: PATCH documents no status_if_new,
		 * and no status is sent, so it never changes */
		size_t n;
		const char *m = mailchimp_member_json(r, 0, &n);
		req->method = "PATCH";
		req->url = member_url(c, r, "");
		retl_buf_add(o, m, n);
		return 0;
	}
	case MC_PUT:
		/* add or update: status_if_new never changes an existing
		 * member's status */
		req->method = "PUT";
		req->url = member_url(c, r, "");
		add_member_with(c, r, 0, "status_if_new", 0, o);
		return 0;
	}
	retl_buf url = RETL_BUF_INIT;
	retl_buf_addf(&url, "%s/lists/%s", c->base.url, c->base.object);
	req->method = "POST";
	req->url = retl_buf_detach(&url);
	retl_buf_adds(o, "{\"members\":[");
	if (r->kind == MC_UNSUB) {
		retl_req_add_bodies(r, o);
		/* update_existing: "change existing members' subscription
		 * status" */
		retl_buf_adds(o, "],\"update_existing\":true}");
		return 0;
	}
	/* upsert and insert: new addresses get the configured status; an
	 * existing one is left alone here (ERROR_CONTACT_EXISTS) */
	for (size_t k = 0; k < r->n; k++) {
		if (k)
			retl_buf_addc(o, ',');
		add_member_with(c, r, k, "status", 1, o);
	}
	retl_buf_adds(o, "],\"update_existing\":false}");
	return 0;
}

/* ---- decode ---- */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int mailchimp_auth_error(const struct retl_http_req *req, struct retl_err *err)
{
	if (req->status != 401 && req->status != 403)
		return 0;
	char *why = mailchimp_problem(req);
	if (req->status == 401)
		retl_err_set(err, RETL_EXIT_DEST,
			     "mailchimp: API key invalid, disabled or for another data center (401 %s)",
			     why);
	else
		retl_err_set(err, RETL_EXIT_DEST, "mailchimp: access refused (403 %s)", why);
	free(why);
	return -1;
}

char *mailchimp_problem(const struct retl_http_req *req)
{
	json_error_t je;
	json_t *root = req->resp.len ?
		json_loadb(req->resp.ptr, req->resp.len, 0, &je) : NULL;
	const char *title = jstr(root, "title"), *detail = jstr(root, "detail");
	if (!title && !detail) {
		json_decref(root);
		return retl_http_reason(req);
	}
	retl_buf b = RETL_BUF_INIT;
	retl_buf_addf(&b, "%s%s%s", title ? title : "", title && detail ? ": " : "",
		      detail ? detail : "");
	size_t i, n = 0;
	json_t *x;
	json_array_foreach(json_object_get(root, "errors"), i, x) {
		const char *f = jstr(x, "field"), *m = jstr(x, "message");
		if (!m)
			continue;
		retl_buf_addf(&b, "%s%s%s%s", n++ ? "; " : " (", f && *f ? f : "",
			      f && *f ? ": " : "", m);
	}
	if (n)
		retl_buf_addc(&b, ')');
	json_decref(root);
	return retl_buf_detach(&b);
}

/* the next op from k on whose address is `email` (as an answer gives it:
 * spaces around it and case do not count); r->n when none */
static size_t next_op(const struct retl_request *r, const char *email, size_t k)
{
	size_t len = email ? strlen(email) : 0, el;
	while (len && isspace((unsigned char)email[len - 1]))
		len--;
	while (len && isspace((unsigned char)*email)) {
		email++;
		len--;
	}
	for (; len && k < r->n; k++) {
		const char *e = retl_req_id(r, k, &el);
		if (el == len && !strncasecmp(e, email, len))
			return k;
	}
	return r->n;
}

/* ack/reject the request's ops whose address is `email` */
static void settle_ops(struct retl_request *r, unsigned char *done,
		       const char *email, enum retl_result_kind kind,
		       const char *reason)
{
	for (size_t k = next_op(r, email, 0); k < r->n; k = next_op(r, email, k + 1)) {
		if (done[k])
			continue;
		done[k] = 1;
		size_t el;
		const char *e = retl_req_id(r, k, &el);
		char *id = kind == RETL_RES_ACK ? retl_strndup(e, el) : NULL;
		retl_req_set(r, k, kind, id, reason);
		free(id);
	}
}

/* an acknowledged member whose tags differ from its row's: on to the
 * tags endpoint (done once that is answered) */
static void follow_tags(const struct mc_ctx *c, struct retl_request *r,
			const unsigned char *done, const json_t *member)
{
	const char *email = jstr(member, "email_address");
	if (!c->has_tags)
		return;
	for (size_t k = next_op(r, email, 0); k < r->n; k = next_op(r, email, k + 1)) {
		if (!done[k] || !mailchimp_tags_differ(c, member, r, k))
			continue;
		retl_req_set(r, k, RETL_RES_RETRY, NULL,
			     "mailchimp: the member's tags are not yet those of its row");
		retl_req_again(r, k, MC_TAGS);
	}
}

/* upsert: the ops of an address that is a member already go on to PUT */
static void follow_put(struct retl_request *r, unsigned char *done, const char *email)
{
	for (size_t k = next_op(r, email, 0); k < r->n; k = next_op(r, email, k + 1)) {
		if (done[k])
			continue;
		done[k] = 1;
		retl_req_set(r, k, RETL_RES_RETRY, NULL,
			     "mailchimp: a member already: updated by PUT without touching its status");
		retl_req_again(r, k, MC_PUT);
	}
}

static enum retl_hd_verdict decode_batch(const struct mc_ctx *c, struct retl_request *r)
{
	const struct retl_http_req *req = r->http;
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	unsigned char *done = retl_calloc(r->n ? r->n : 1, 1);
	static const char *const lists[] = { "new_members", "updated_members" };
	size_t i;
	json_t *x;

	for (int l = 0; l < 2; l++)
		json_array_foreach(json_object_get(root, lists[l]), i, x) {
			settle_ops(r, done, jstr(x, "email_address"), RETL_RES_ACK, NULL);
			if (r->kind != MC_UNSUB)
				follow_tags(c, r, done, x);
		}
	json_array_foreach(json_object_get(root, "errors"), i, x) {
		const char *code = jstr(x, "error_code");
		const char *msg = jstr(x, "error");
		const char *field = jstr(x, "field");
		const char *fmsg = jstr(x, "field_message");
		const char *email = jstr(x, "email_address");
		if (code && !strcmp(code, "ERROR_CONTACT_EXISTS") && r->kind == MC_UPSERT) {
			follow_put(r, done, email);
			continue;
		}
		if (code && !strcmp(code, "ERROR_CONTACT_EXISTS") && r->kind == MC_INSERT) {
			/* insert: there already; left as Mailchimp has it */
			settle_ops(r, done, email, RETL_RES_ACK, NULL);
			continue;
		}
		retl_buf why = RETL_BUF_INIT;
		retl_buf_addf(&why, "%s: %s", code ? code : "ERROR", msg ? msg : "(no message)");
		if (field && *field)
			retl_buf_addf(&why, " (%s: %s)", field, fmsg ? fmsg : "invalid");
		settle_ops(r, done, email, RETL_RES_REJECT, why.ptr);
		retl_buf_free(&why);
	}
	for (size_t k = 0; k < r->n; k++) {
		if (done[k])
			continue;
		char m[96];
		snprintf(m, sizeof(m),
			 "mailchimp: no result for this member in the response (HTTP %ld)",
			 req->status);
		retl_req_set(r, k, RETL_RES_RETRY, NULL, m);
	}
	free(done);
	json_decref(root);
	return RETL_HD_DONE;
}

/* PUT's answer, the member as it is now */
static enum retl_hd_verdict decode_put(const struct mc_ctx *c, struct retl_request *r)
{
	const struct retl_http_req *req = r->http;
	json_error_t je;
	json_t *member = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	unsigned char done = 1;
	size_t el;
	const char *e = retl_req_id(r, 0, &el);
	char *id = retl_strndup(e, el);
	retl_req_set(r, 0, RETL_RES_ACK, id, NULL);
	free(id);
	if (json_is_object(member))
		follow_tags(c, r, &done, member);
	json_decref(member);
	return RETL_HD_DONE;
}

static enum retl_hd_verdict mc_decode(void *d, struct retl_request *r,
				      struct retl_err *err)
{
	struct mc_ctx *c = d;
	const struct retl_http_req *req = r->http;
	long st = req->status;
	int single = r->kind == MC_ARCHIVE || r->kind == MC_DELETE;

	if (c->base.mode == RETL_MODE_MEMBERSHIP)
		return mailchimp_segment_decode(c, r, err);
	if (single && (st == 204 || st == 200 || st == 404)) {
		/* 404: archived or erased already */
		retl_req_set_all(r, RETL_RES_ACK, NULL);
		return RETL_HD_DONE;
	}
	if (r->kind == MC_TAGS && (st == 204 || st == 200)) {
		size_t el;
		const char *e = retl_req_id(r, 0, &el);
		char *id = retl_strndup(e, el);
		retl_req_set(r, 0, RETL_RES_ACK, id, NULL);
		free(id);
		return RETL_HD_DONE;
	}
	if ((r->kind == MC_PUT || r->kind == MC_PATCH) && st == 200)
		return decode_put(c, r);
	if (r->kind == MC_PATCH && st == 404) {
		/* "Resource Not Found": the address is not a member (or was
		 * archived); update mode never adds it.  An unknown audience
		 * answers the same: `retl check` tells them apart */
		char *why = mailchimp_problem(req);
		retl_buf m = RETL_BUF_INIT;
		retl_buf_addf(&m, "no record matches: no member of audience %s has this address (update mode never adds one; Mailchimp: %s)",
			      c->base.object, why);
		retl_req_set_all(r, RETL_RES_REJECT, m.ptr);
		retl_buf_free(&m);
		free(why);
		return RETL_HD_DONE;
	}
	if (!single && r->kind != MC_TAGS && r->kind != MC_PUT && r->kind != MC_PATCH &&
	    st == 200)
		return decode_batch(c, r);
	if (mailchimp_auth_error(req, err) < 0)
		return RETL_HD_FATAL;
	if (r->kind == MC_TAGS && st == 404) {
		/* archived meanwhile: sent again next run */
		retl_req_set_all(r, RETL_RES_RETRY, "mailchimp: member not found when setting its tags (404)");
		return RETL_HD_DONE;
	}
	if (st == 404) {
		retl_err_set(err, RETL_EXIT_DEST,
			     "mailchimp: audience (list) \"%s\" does not exist (404)", c->base.object);
		return RETL_HD_FATAL;
	}
	char *why = mailchimp_problem(req);
	retl_buf m = RETL_BUF_INIT;
	retl_buf_addf(&m, "HTTP %ld: %s", st, why);
	retl_req_set_all(r, RETL_RES_REJECT, m.ptr);
	retl_buf_free(&m);
	free(why);
	return RETL_HD_DONE;
}

/* ---- open ---- */

static int top_target_ok(const char *t)
{
	static const char *const ok[] = {
		"email_address", "tags", "language", "vip", "email_type", NULL
	};
	for (const char *const *k = ok; *k; k++)
		if (!strcmp(t, *k))
			return 1;
	return !strncmp(t, "merge_fields.", 13) || !strncmp(t, "location.", 9) ||
	       !strcmp(t, "location") || !strncmp(t, "interests.", 10);
}

static int open_fields(struct mc_ctx *c, const struct retl_sync_cfg *sc,
		       struct retl_err *err)
{
	for (size_t i = 0; i < c->base.nf; i++) {
		const char *t = c->base.ftarget[i];
		if (!top_target_ok(t))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: not a Mailchimp member field (targets: email_address, merge_fields.TAG, tags, language, vip, location.latitude, location.longitude, email_type, interests.ID)",
					    sc->file, t);
		if (!strcmp(t, "tags"))
			c->has_tags = 1;
		if (!strcmp(t, "merge_fields.EMAIL"))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: the address is the target email_address, not a merge field",
					    sc->file, t);
	}
	int has_email = retl_hd_field(&c->base, "email_address") >= 0;
	if (sc->match) {
		const char *prop = json_object_iter_key(json_object_iter(sc->match));
		const char *col = json_string_value(json_object_iter_value(json_object_iter(sc->match)));
		if (json_object_size(sc->match) != 1 || strcmp(prop, "email_address"))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: match: Mailchimp finds members by their address only: {\"email_address\": \"<column>\"}",
					    sc->file);
		if (!has_email)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: match.email_address: \"email_address\" is not a mapped field; Mailchimp needs the address in the payload: add \"email_address\": \"%s\" to fields",
					    sc->file, col ? col : "email");
	} else if (!has_email) {
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: fields.email_address: missing; Mailchimp finds members by their address: map it (\"email_address\": \"email\") and set \"match\": {\"email_address\": \"email\"}",
				    sc->file);
	}
	return 0;
}

static int open_sync_keys(struct mc_ctx *c, const struct retl_sync_cfg *sc,
			  struct retl_err *err)
{
	json_t *sin = json_object_get(sc->options, "status_if_new");
	json_t *dp = json_object_get(sc->options, "delete_permanent");
	c->status_if_new = "subscribed";
	if (sin) {
		const char *v = json_string_value(sin);
		if (!v || (strcmp(v, "subscribed") && strcmp(v, "transactional") &&
			   strcmp(v, "pending")))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: status_if_new: expected one of subscribed, transactional, pending",
					    sc->file);
		c->status_if_new = v;
		if (sc->mode == RETL_MODE_UPDATE)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: status_if_new: mode \"update\" never adds members; remove it (or use mode \"upsert\")",
					    sc->file);
	}
	if (dp && !json_is_boolean(dp))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: delete_permanent: expected true or false", sc->file);
	c->delete_permanent = json_is_true(dp);
	if (sc->on_remove == RETL_REMOVE_DELETE && !c->delete_permanent)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: on_remove: \"delete\" erases members permanently in Mailchimp (they can never be imported again); say so with \"delete_permanent\": true, or use \"archive\" or \"unsubscribe\"",
				    sc->file);
	if (c->delete_permanent && sc->on_remove != RETL_REMOVE_DELETE)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: delete_permanent: only means something with mode \"mirror\" and on_remove \"delete\"",
				    sc->file);
	return 0;
}

static int open_object(const struct retl_sync_cfg *sc, struct retl_err *err)
{
	if (!sc->object || !*sc->object)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: object: missing; the mailchimp destination needs the audience (list) id, e.g. \"a1b2c3d4e5\" (Audience > Settings > Audience name and defaults)",
				    sc->file);
	for (const char *q = sc->object; *q; q++)
		if (!isalnum((unsigned char)*q))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: object: \"%s\" is not a Mailchimp audience id (letters and digits, e.g. \"a1b2c3d4e5\")",
					    sc->file, sc->object);
	return 0;
}

/* the mapping's targets and the sync's own keys */
static int mc_setup(void *d, struct retl_err *err)
{
	struct mc_ctx *c = d;
	const struct retl_sync_cfg *sc = c->base.sc;
	c->on_remove = sc->on_remove;
	if (open_fields(c, sc, err) < 0 || open_sync_keys(c, sc, err) < 0 ||
	    mailchimp_segment_setup(c, err) < 0)
		return -1;
	if (c->has_tags) {
		const struct retl_dest_env *env = &c->base.env;
		char *v = env->note_get ? env->note_get(env->ud, MC_TAGS_NOTE) : NULL;
		json_error_t je;
		c->managed = v ? json_loads(v, 0, &je) : NULL;
		free(v);
		if (!json_is_array(c->managed)) {
			json_decref(c->managed);
			c->managed = json_array();
		}
	}
	return 0;
}

static void mc_fini(void *d)
{
	struct mc_ctx *c = d;
	json_decref(c->managed);
	mailchimp_segment_fini(c);
}

/* the key: its data center is the API host; Basic auth */
static int mc_options(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		      struct retl_hd_opts *o, struct retl_err *err)
{
	if (open_object(sc, err) < 0)
		return -1;
	const char *key = json_string_value(json_object_get(dc->options, "api_key"));
	retl_buf url = RETL_BUF_INIT;
	retl_buf_addf(&url, "https://%s.api.mailchimp.com/3.0", key_dc(key) ? key_dc(key) : "");
	o->url = retl_buf_detach(&url);
	o->auth = basic_auth(key);
	/* Mailchimp limits connections, not rate: no limiter */
	return 0;
}

/* `retl plan`: update mode sends one PATCH a member; the other modes
 * batch subscribe 500 a request (their PUTs for existing members are not
 * known before the answers) */
static void mc_plan(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		    long ops, long *requests, long *jobs)
{
	(void)dc;
	*jobs = 0;
	*requests = sc->mode == RETL_MODE_UPDATE ? ops :
		    (ops + MC_MAX_MEMBERS - 1) / MC_MAX_MEMBERS;
}

static const struct retl_hd_ops mc_ops = {
	.type = "mailchimp",
	.ctx_size = sizeof(struct mc_ctx),
	.max_ops = MC_MAX_MEMBERS,
	.inflight_key = "max_connections",
	.inflight = MC_MAX_CONN,
	.inflight_max = MC_MAX_CONN,
	.timeout = 300,
	.validate = mc_validate,
	.options = mc_options,
	.setup = mc_setup,
	.prepare = mc_prepare,
	.encode = mc_encode,
	.decode = mc_decode,
	.ops_per_request = mc_max_ops,
	.fini = mc_fini,
};

const struct retl_destination retl_dest_mailchimp = {
	.name = "mailchimp",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_UPDATE |
		 1u << RETL_MODE_INSERT | 1u << RETL_MODE_MIRROR |
		 1u << RETL_MODE_MEMBERSHIP,
	.removals = 1u << RETL_REMOVE_UNSUBSCRIBE | 1u << RETL_REMOVE_ARCHIVE |
		    1u << RETL_REMOVE_DELETE,
	.max_batch = MC_MAX_MEMBERS,
	.conn_keys = mc_conn_keys,
	.sync_keys = mc_sync_keys,
	.validate = mc_validate,
	.http = &mc_ops,
	.check = mailchimp_check,
	.plan = mc_plan,
	/* engine batches queued at once; connections are capped by the HTTP
	 * engine (max_connections) */
	.max_inflight = 12,
	RETL_HD_CALLBACKS,
};
