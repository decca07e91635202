/*
 * mailchimp.c - the Mailchimp destination: audience members through the
 * Marketing API v3, over the shared HTTP batch layer (http_batch.h).
 *
 *   upsert   batch subscribe, POST /lists/{list_id}, up to 500 members a
 *            request, update_existing true, each member with status_if_new
 *            (the sync key status_if_new: subscribed, transactional or
 *            pending): an existing member's status is never changed, so
 *            retl never re-subscribes someone who unsubscribed.
 *   insert   the same with update_existing false: new addresses only.  An
 *            address that is already a member (ERROR_CONTACT_EXISTS) counts
 *            as acknowledged and is left as Mailchimp has it: insert creates
 *            what is not there -- which also makes a replayed insert (an
 *            answer lost to a dropped connection) harmless.
 *   mirror   upsert, and rows that left the model:
 *              on_remove unsubscribe  batch subscribe with status
 *                                     "unsubscribed" (500 a request)
 *              on_remove archive      DELETE /lists/{id}/members/{hash}
 *              on_remove delete       POST …/members/{hash}/actions/
 *                                     delete-permanent, only with the sync
 *                                     key "delete_permanent": true (the
 *                                     address can never be imported again)
 *            A 404 on a removal means the member is gone already: done.
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
 * Payload -> member: email_address, merge_fields.TAG (null clears: "";
 * booleans as "true"/"false"; dates as YYYY-MM-DD; an address field takes
 * an object, e.g. dotted targets merge_fields.ADDRESS.addr1), tags (an
 * array of names, or one name; with sync_tags the member's tags become
 * exactly these -- the others are made inactive; null clears them),
 * language, vip, location.latitude/longitude, email_type, interests.ID.
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
#include "http.h"
#include "http_batch.h"
#include "mailchimp_int.h"
#include "mapping.h"

#define MC_MAX_MEMBERS 500
#define MC_MAX_CONN 10

static const char *const mc_conn_keys[] = {
	"api_key", "max_connections", "timeout", NULL
};

static const char *const mc_sync_keys[] = {
	"status_if_new", "delete_permanent", NULL
};

/* ---- options ---- */

static int opt_int(const struct retl_dest_cfg *dc, const char *key, long def,
		   long max, long *out, struct retl_err *err)
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
	if (opt_int(dc, "max_connections", MC_MAX_CONN, MC_MAX_CONN, &n, err) < 0 ||
	    opt_int(dc, "timeout", 300, 0, &n, err) < 0)
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

/* ---- jobs: one engine batch, one or more sub-batches ---- */

enum mc_kind { MC_UPSERT, MC_INSERT, MC_UNSUB, MC_ARCHIVE, MC_DELETE, MC_NKIND };

struct mc_row {
	size_t m_off, m_len;      /* member object in job->members */
	size_t e_off, e_len;      /* lowercased address in job->emails */
};

struct mc_job {
	struct retl_hb_job j;     /* first */
	struct mc_row *rows;
	retl_buf members, emails;
};

static const char *row_email(const struct mc_job *job, size_t oi, size_t *len)
{
	*len = job->rows[oi].e_len;
	return job->emails.ptr ? job->emails.ptr + job->rows[oi].e_off : "";
}

static struct retl_hb_sub *sub_new(struct mc_job *job, enum mc_kind kind, size_t cap)
{
	return retl_hb_sub_new(&job->j, kind, cap, sizeof(struct retl_hb_sub));
}

static void job_free(struct retl_hb_job *j)
{
	struct mc_job *job = (struct mc_job *)j;
	retl_buf_free(&job->members);
	retl_buf_free(&job->emails);
	free(job->rows);
	free(job);
}

/* ---- payload -> member ---- */

/* a merge field value in Mailchimp's form; NULL (with reason) if none */
static json_t *merge_value(const char *tag, json_t *v, retl_buf *reason)
{
	if (json_is_null(v))
		return json_string("");
	if (json_is_true(v))
		return json_string("true");
	if (json_is_false(v))
		return json_string("false");
	if (json_is_array(v)) {
		retl_buf_addf(reason, "merge_fields.%s: a list cannot be sent to a Mailchimp merge field",
			      tag);
		return NULL;
	}
	/* strings, numbers, objects (address fields) as they are */
	return json_incref(v);
}

static json_t *tags_value(json_t *v, retl_buf *reason)
{
	size_t i;
	json_t *x;
	if (json_is_null(v))
		return json_array();
	if (json_is_string(v))
		return json_string_length(v) ? json_pack("[O]", v) : json_array();
	if (!json_is_array(v)) {
		retl_buf_adds(reason, "tags: expected a list of tag names (use \"split\" or type json), or one name");
		return NULL;
	}
	json_t *out = json_array();
	json_array_foreach(v, i, x) {
		if (!json_is_string(x)) {
			json_decref(out);
			retl_buf_adds(reason, "tags: every tag must be a string (a tag name)");
			return NULL;
		}
		if (json_string_length(x))
			json_array_append(out, x);
	}
	return out;
}

/*
 * The member object of one op (job->members) and its lowercased address
 * (job->emails).  Returns -1 with a reason for a row Mailchimp cannot take.
 */
static int convert_row(struct mc_ctx *c, struct mc_job *job, size_t oi,
		       const struct retl_op *op, int with_status, retl_buf *reason)
{
	struct mc_row *row = &job->rows[oi];
	json_error_t je;
	json_t *p = op->payload ? json_loadb(op->payload, op->payload_len, 0, &je) : NULL;
	json_t *m = NULL;
	const char *k;
	json_t *v;
	int rc = -1;

	if (!json_is_object(p)) {
		retl_buf_adds(reason, "mailchimp: payload is not a JSON object");
		goto out;
	}
	json_t *em = json_object_get(p, "email_address");
	const char *e = json_string_value(em);
	size_t el = e ? json_string_length(em) : 0;
	while (el && isspace((unsigned char)*e)) {
		e++;
		el--;
	}
	while (el && isspace((unsigned char)e[el - 1]))
		el--;
	if (!el) {
		retl_buf_adds(reason, "email_address: empty; Mailchimp finds members by their email address (match)");
		goto out;
	}
	m = json_object();
	json_object_set_new(m, "email_address", json_stringn(e, el));
	if (with_status)
		json_object_set_new(m, "status_if_new", json_string(c->status_if_new));
	json_object_foreach(p, k, v) {
		if (!strcmp(k, "email_address"))
			continue;
		if (!strcmp(k, "merge_fields")) {
			json_t *mf = json_object(), *x;
			const char *tag;
			json_object_foreach(v, tag, x) {
				json_t *mv = merge_value(tag, x, reason);
				if (!mv) {
					json_decref(mf);
					goto out;
				}
				json_object_set_new(mf, tag, mv);
			}
			json_object_set_new(m, "merge_fields", mf);
		} else if (!strcmp(k, "tags")) {
			json_t *t = tags_value(v, reason);
			if (!t)
				goto out;
			json_object_set_new(m, "tags", t);
		} else if (!strcmp(k, "vip")) {
			if (!json_is_null(v) && !json_is_boolean(v)) {
				retl_buf_adds(reason, "vip: expected a boolean");
				goto out;
			}
			json_object_set_new(m, "vip", json_boolean(json_is_true(v)));
		} else if (!strcmp(k, "language") || !strcmp(k, "email_type")) {
			if (json_is_null(v))
				continue;   /* Mailchimp has no "unset" for these */
			if (!json_is_string(v)) {
				retl_buf_addf(reason, "%s: expected a string", k);
				goto out;
			}
			json_object_set(m, k, v);
		} else if (!json_is_null(v)) {
			/* location {latitude, longitude}, interests {id: bool} */
			json_object_set(m, k, v);
		}
	}
	char *s = json_dumps(m, JSON_COMPACT);
	row->m_off = job->members.len;
	retl_buf_adds(&job->members, s);
	row->m_len = job->members.len - row->m_off;
	free(s);
	row->e_off = job->emails.len;
	for (size_t i = 0; i < el; i++)
		retl_buf_addc(&job->emails, (char)tolower((unsigned char)e[i]));
	row->e_len = el;
	rc = 0;
out:
	json_decref(m);
	json_decref(p);
	return rc;
}

/* ---- submit / wait ---- */

static void sub_submit(struct mc_ctx *c, struct retl_hb_sub *s)
{
	retl_hb_sub_submit(c->hb, s, "mailchimp: cannot submit a request");
}

static int mc_submit(void *ctx, struct retl_batch *b, struct retl_err *err)
{
	struct mc_ctx *c = ctx;
	struct mc_job *job = retl_calloc(1, sizeof(*job));
	struct retl_hb_sub *sub[MC_NKIND] = { 0 };
	retl_buf reason = RETL_BUF_INIT;

	job->j.outer = b;
	job->rows = retl_calloc(b->n ? b->n : 1, sizeof(*job->rows));
	for (size_t i = 0; i < b->n; i++) {
		const struct retl_op *op = &b->ops[i];
		enum mc_kind k;
		if (op->kind == RETL_OP_REMOVE) {
			if (!op->dest_id || !op->dest_id[0]) {
				/* never reached Mailchimp: nothing to remove */
				retl_hb_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
				continue;
			}
			job->rows[i].e_off = job->emails.len;
			retl_buf_adds(&job->emails, op->dest_id);
			job->rows[i].e_len = strlen(op->dest_id);
			if (c->on_remove == RETL_REMOVE_UNSUBSCRIBE)
				k = MC_UNSUB;
			else if (c->on_remove == RETL_REMOVE_DELETE && c->delete_permanent)
				k = MC_DELETE;
			else
				k = MC_ARCHIVE;
			if (k != MC_UNSUB) {
				/* one member a request: a sub-batch of its own */
				struct retl_hb_sub *one = sub_new(job, k, 1);
				retl_hb_sub_add(one, i);
				sub_submit(c, one);
				continue;
			}
		} else {
			k = (c->mode == RETL_MODE_INSERT || op->kind == RETL_OP_INSERT) ?
				MC_INSERT : MC_UPSERT;
			retl_buf_reset(&reason);
			if (convert_row(c, job, i, op, 1, &reason) < 0) {
				retl_hb_set(&b->results[i], RETL_RES_REJECT, NULL, reason.ptr);
				continue;
			}
		}
		if (!sub[k])
			sub[k] = sub_new(job, k, b->n);
		retl_hb_sub_add(sub[k], i);
	}
	retl_buf_free(&reason);
	for (int k = 0; k < MC_NKIND; k++)
		if (sub[k])
			sub_submit(c, sub[k]);
	retl_hb_job_submitted(c->hb, &job->j);
	(void)err;
	return 0;
}

static void sub_done(void *ctx, struct retl_hb_sub *s)
{
	(void)ctx;
	if (s->b.fatal)
		retl_hb_job_fatal(s->job, s->b.fatal_code, s->b.fatal_msg);
	for (size_t i = 0; i < s->b.n; i++)
		retl_hb_sub_take(s, i);
	retl_hb_sub_free(s);
}

static struct retl_batch *mc_wait(void *ctx, int block)
{
	struct mc_ctx *c = ctx;
	return retl_hb_job_wait(c->hb, block);
}

/* ---- encode ---- */

static int mc_encode(void *dctx, const struct retl_hb_part *p,
		     struct retl_http_req *req, struct retl_err *err)
{
	struct mc_ctx *c = dctx;
	struct retl_hb_sub *s = p->b->engine;
	struct mc_job *job = (struct mc_job *)s->job;
	retl_buf *o = &req->body;
	retl_buf url = RETL_BUF_INIT;
	size_t el;

	retl_buf_reset(o);
	req->idempotent = 1;
	if (s->kind == MC_ARCHIVE || s->kind == MC_DELETE) {
		char h[33];
		const char *e = row_email(job, s->oidx[p->idx[0]], &el);
		subscriber_hash(e, el, h);
		retl_buf_addf(&url, "%s/lists/%s/members/%s%s", c->base, c->list_id, h,
			      s->kind == MC_DELETE ? "/actions/delete-permanent" : "");
		req->method = s->kind == MC_DELETE ? "POST" : "DELETE";
		req->url = retl_buf_detach(&url);
		(void)err;
		return 0;
	}
	retl_buf_addf(&url, "%s/lists/%s", c->base, c->list_id);
	req->method = "POST";
	req->url = retl_buf_detach(&url);
	retl_buf_adds(o, "{\"members\":[");
	for (size_t k = 0; k < p->n; k++) {
		size_t oi = s->oidx[p->idx[k]];
		const struct mc_row *row = &job->rows[oi];
		if (k)
			retl_buf_addc(o, ',');
		if (s->kind == MC_UNSUB) {
			const char *e = row_email(job, oi, &el);
			retl_buf_adds(o, "{\"email_address\":");
			retl_buf_add_json_str(o, e, el);
			retl_buf_adds(o, ",\"status\":\"unsubscribed\"}");
		} else {
			retl_buf_add(o, job->members.ptr + row->m_off, row->m_len);
		}
	}
	retl_buf_adds(o, "]");
	if (s->kind == MC_INSERT)
		retl_buf_adds(o, ",\"update_existing\":false}");
	else if (s->kind == MC_UPSERT && c->has_tags)
		retl_buf_adds(o, ",\"update_existing\":true,\"sync_tags\":true}");
	else
		retl_buf_adds(o, ",\"update_existing\":true}");
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
		return retl_hb_reason(req);
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

static void part_all(const struct retl_hb_part *p, enum retl_result_kind kind,
		     const char *reason)
{
	for (size_t k = 0; k < p->n; k++)
		retl_hb_set(&p->b->results[p->idx[k]], kind, NULL, reason);
}

/* ack/reject the part's rows whose address is `email`; returns how many */
static size_t settle_rows(const struct retl_hb_sub *s, const struct retl_hb_part *p,
			  unsigned char *done, const char *email,
			  enum retl_result_kind kind, const char *reason)
{
	size_t n = 0, el;
	if (!email)
		return 0;
	size_t len = strlen(email);
	while (len && isspace((unsigned char)email[len - 1]))
		len--;
	while (len && isspace((unsigned char)*email)) {
		email++;
		len--;
	}
	for (size_t k = 0; k < p->n; k++) {
		if (done[k])
			continue;
		size_t oi = s->oidx[p->idx[k]];
		const char *e = row_email((const struct mc_job *)s->job, oi, &el);
		if (el != len || strncasecmp(e, email, len))
			continue;
		done[k] = 1;
		n++;
		char *id = kind == RETL_RES_ACK ? retl_strndup(e, el) : NULL;
		retl_hb_set(&p->b->results[p->idx[k]], kind, id, reason);
		free(id);
	}
	return n;
}

static enum retl_hb_verdict decode_batch(struct retl_hb_sub *s,
					 const struct retl_hb_part *p,
					 const struct retl_http_req *req)
{
	json_error_t je;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	unsigned char *done = retl_calloc(p->n ? p->n : 1, 1);
	static const char *const lists[] = { "new_members", "updated_members" };
	size_t i;
	json_t *x;

	for (int l = 0; l < 2; l++)
		json_array_foreach(json_object_get(root, lists[l]), i, x)
			settle_rows(s, p, done, jstr(x, "email_address"), RETL_RES_ACK, NULL);
	json_array_foreach(json_object_get(root, "errors"), i, x) {
		const char *code = jstr(x, "error_code");
		const char *msg = jstr(x, "error");
		const char *field = jstr(x, "field");
		const char *fmsg = jstr(x, "field_message");
		const char *email = jstr(x, "email_address");
		if (code && !strcmp(code, "ERROR_CONTACT_EXISTS") && s->kind == MC_INSERT) {
			/* insert: there already; left as Mailchimp has it */
			settle_rows(s, p, done, email, RETL_RES_ACK, NULL);
			continue;
		}
		retl_buf r = RETL_BUF_INIT;
		retl_buf_addf(&r, "%s: %s", code ? code : "ERROR", msg ? msg : "(no message)");
		if (field && *field)
			retl_buf_addf(&r, " (%s: %s)", field, fmsg ? fmsg : "invalid");
		settle_rows(s, p, done, email, RETL_RES_REJECT, r.ptr);
		retl_buf_free(&r);
	}
	for (size_t k = 0; k < p->n; k++) {
		if (done[k])
			continue;
		char m[96];
		snprintf(m, sizeof(m),
			 "mailchimp: no result for this member in the response (HTTP %ld)",
			 req->status);
		retl_hb_set(&p->b->results[p->idx[k]], RETL_RES_RETRY, NULL, m);
	}
	free(done);
	json_decref(root);
	return RETL_HB_DONE;
}

static enum retl_hb_verdict mc_decode(void *dctx, const struct retl_hb_part *p,
				      const struct retl_http_req *req,
				      struct retl_err *err)
{
	struct mc_ctx *c = dctx;
	struct retl_hb_sub *s = p->b->engine;
	long st = req->status;
	int single = s->kind == MC_ARCHIVE || s->kind == MC_DELETE;

	if (single && (st == 204 || st == 200 || st == 404)) {
		/* 404: archived or erased already */
		part_all(p, RETL_RES_ACK, NULL);
		return RETL_HB_DONE;
	}
	if (!single && st == 200)
		return decode_batch(s, p, req);
	if (mailchimp_auth_error(req, err) < 0)
		return RETL_HB_FATAL;
	if (st == 404) {
		retl_err_set(err, RETL_EXIT_DEST,
			     "mailchimp: audience (list) \"%s\" does not exist (404)", c->list_id);
		return RETL_HB_FATAL;
	}
	char *why = mailchimp_problem(req);
	if (st <= 0 || st == 429 || st >= 500) {
		part_all(p, RETL_RES_RETRY, why);
	} else {
		retl_buf r = RETL_BUF_INIT;
		retl_buf_addf(&r, "HTTP %ld: %s", st, why);
		part_all(p, RETL_RES_REJECT, r.ptr);
		retl_buf_free(&r);
	}
	free(why);
	return RETL_HB_DONE;
}

/* ---- open / close / stats ---- */

static void mc_close(void *ctx)
{
	struct mc_ctx *c = ctx;
	if (!c)
		return;
	retl_hb_free(c->hb);
	retl_http_free(c->http);
	free(c->ftarget);
	free(c->ftype);
	free(c->base);
	if (c->auth) {
		memset(c->auth, 0, strlen(c->auth));
		free(c->auth);
	}
	free(c);
}

static const struct retl_hb_ops mc_hb_ops = { mc_encode, mc_decode };

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
	const retl_mapping *m = sc->mapping;
	int has_email = 0;
	c->nf = retl_mapping_nfields(m);
	c->ftarget = retl_calloc(c->nf ? c->nf : 1, sizeof(*c->ftarget));
	c->ftype = retl_calloc(c->nf ? c->nf : 1, sizeof(*c->ftype));
	for (size_t i = 0; i < c->nf; i++) {
		const char *t = retl_mapping_field_target(m, i);
		c->ftarget[i] = t;
		c->ftype[i] = retl_mapping_field_type(m, i);
		if (!top_target_ok(t))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: not a Mailchimp member field (targets: email_address, merge_fields.TAG, tags, language, vip, location.latitude, location.longitude, email_type, interests.ID)",
					    sc->file, t);
		if (!strcmp(t, "email_address"))
			has_email = 1;
		if (!strcmp(t, "tags"))
			c->has_tags = 1;
		if (!strcmp(t, "merge_fields.EMAIL"))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: the address is the target email_address, not a merge field",
					    sc->file, t);
	}
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

static int mc_open(void **out, const struct retl_dest_cfg *dc,
		   const struct retl_sync_cfg *sc,
		   const struct retl_dest_env *env, struct retl_err *err)
{
	struct mc_ctx *c = retl_calloc(1, sizeof(*c));
	long conns, timeout;
	*out = NULL;
	if (mc_validate(dc, err) < 0 ||
	    opt_int(dc, "max_connections", MC_MAX_CONN, MC_MAX_CONN, &conns, err) < 0 ||
	    opt_int(dc, "timeout", 300, 0, &timeout, err) < 0)
		goto fail;
	c->sc = sc;
	c->mode = sc->mode;
	c->on_remove = sc->on_remove;
	c->list_id = sc->object;
	if (!sc->object || !*sc->object) {
		retl_err_set(err, RETL_EXIT_USAGE,
			     "%s: object: missing; the mailchimp destination needs the audience (list) id, e.g. \"a1b2c3d4e5\" (Audience > Settings > Audience name and defaults)",
			     sc->file);
		goto fail;
	}
	for (const char *q = sc->object; *q; q++)
		if (!isalnum((unsigned char)*q)) {
			retl_err_set(err, RETL_EXIT_USAGE,
				     "%s: object: \"%s\" is not a Mailchimp audience id (letters and digits, e.g. \"a1b2c3d4e5\")",
				     sc->file, sc->object);
			goto fail;
		}
	if (open_fields(c, sc, err) < 0 || open_sync_keys(c, sc, err) < 0)
		goto fail;

	const char *key = json_string_value(json_object_get(dc->options, "api_key"));
	retl_buf b = RETL_BUF_INIT;
	if (dc->base_url)
		retl_buf_adds(&b, dc->base_url);
	else
		retl_buf_addf(&b, "https://%s.api.mailchimp.com/3.0", key_dc(key));
	while (b.len && b.ptr[b.len - 1] == '/')
		b.len--;
	c->base = retl_strndup(b.ptr, b.len);
	retl_buf_free(&b);
	c->auth = basic_auth(key);

	struct retl_http_opts ho = {
		.max_inflight = (int)conns,
		.timeout_ms = timeout * 1000,
		.rate = NULL,           /* Mailchimp limits connections, not rate */
		.budget = env ? env->api_budget : -1,
		.auth = c->auth,
	};
	if (retl_http_new(&c->http, &ho, err) < 0)
		goto fail;
	c->hb = retl_hb_new(c->http, &mc_hb_ops, c, MC_MAX_MEMBERS);
	retl_hb_fanout(c->hb, sub_done, job_free);
	*out = c;
	return 0;
fail:
	if (!err->code)
		err->code = RETL_EXIT_USAGE;
	mc_close(c);
	return -1;
}

static void mc_stats(void *ctx, struct retl_dest_stats *s)
{
	struct mc_ctx *c = ctx;
	retl_hb_stats(c ? c->http : NULL, s);
}

const struct retl_destination retl_dest_mailchimp = {
	.name = "mailchimp",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_INSERT |
		 1u << RETL_MODE_MIRROR,
	.removals = 1u << RETL_REMOVE_UNSUBSCRIBE | 1u << RETL_REMOVE_ARCHIVE |
		    1u << RETL_REMOVE_DELETE,
	.max_batch = MC_MAX_MEMBERS,
	.conn_keys = mc_conn_keys,
	.sync_keys = mc_sync_keys,
	.validate = mc_validate,
	.open = mc_open,
	.check = mailchimp_check,
	.send = NULL,
	.close = mc_close,
	/* engine batches queued at once; connections are capped by the HTTP
	 * engine (max_connections) */
	.max_inflight = 12,
	.submit = mc_submit,
	.wait = mc_wait,
	.stats = mc_stats,
};
