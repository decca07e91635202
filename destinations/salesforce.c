/*
 * salesforce.c - the Salesforce destination: sObject Collections for small
 * changes, Bulk API 2.0 (salesforce_bulk.c) for volume, inside the org's
 * daily API allocation.
 *
 * Whether a run is small or large is only known once the model has been
 * read, so every row is deferred (RETL_RES_DEFER): submit() appends it to
 * a spool file (one per operation, JSON lines, never all in memory) and
 * the engine stages it.  finish() then sends each spool: up to
 * bulk_threshold rows through sObject Collections (200 records a request,
 * allOrNone false, results in input order), more as one Bulk API 2.0
 * ingest job; every row's outcome is reported through env->report.  A run
 * that stops before reporting leaves its rows staged: they are sent again
 * next run, nothing unacknowledged is marked.
 *
 *   upsert   by the External ID field (match)
 *   update   records that exist: by the model's Id (match {"Id": …}), or
 *            found by any field with SOQL (salesforce_lookup.c); without a
 *            match, by the stored record Id
 *   insert   create; a create an earlier run left unresolved is sent as an
 *            upsert by the External ID instead, which cannot duplicate it
 *   mirror   upsert, and removed rows are deleted by stored Id (on_remove
 *            "delete")
 * (salesforce_collections.c and salesforce_bulk.c say how each is sent)
 * Fields with "write": "if_empty" are read with SOQL before an upsert or
 * update spool is sent, and left out where they hold a value
 * (salesforce_if_empty.c).
 *
 * Clearing: a field whose value is null or empty ("" or an empty
 * multi-select) is cleared on every path.  sObject Collections sends null
 * (null clears a field over REST; Salesforce stores an empty text as null
 * anyway, and "" is no value for a date, number or checkbox); a Bulk job
 * writes #N/A, because an empty CSV field means "leave as it is" on update.
 * A field the payload leaves out (on_null "skip") is left as it is.
 *
 * Budget: every response's Sforce-Limit-Info (api-usage=N/M) is read; when
 * fewer than `reserve` calls (default 10% of M) are left, no further
 * request is started and the run stops with exit 4; REQUEST_LIMIT_EXCEEDED
 * does the same.  401 INVALID_SESSION_ID refreshes the token once and the
 * request is replayed.
 */
#include "destination.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "payload.h"
#include "private_file.h"
#include "salesforce_int.h"
#include "url.h"

#define SF_DEFAULT_LOGIN "https://login.salesforce.com"

const char *const sf_kind_name[SF_NKIND] = {
	"upsert", "insert", "update", "delete", "delete_ext"
};

static const char *const sf_conn_keys[] = {
	"login_url", "client_id", "client_secret", "refresh_token", "username",
	"private_key", "audience", "api_version", "bulk_threshold", "reserve",
	"bulk_max_bytes", "bulk_wait", "max_inflight", "timeout", "daily_limit",
	"allowed_hosts", NULL
};

/* ---- options ---- */

static const char *opt(const struct retl_dest_cfg *dc, const char *k)
{
	return json_string_value(json_object_get(dc->options, k));
}

/* allowed_hosts: host patterns an instance_url may name besides
 * Salesforce's own domains (a proxy, a test server) */
static int validate_hosts(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	json_t *a = json_object_get(dc->options, "allowed_hosts"), *x;
	size_t i;
	if (a && !json_is_array(a))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.allowed_hosts: expected an array of host patterns, e.g. [\"sf-proxy.example.com\", \"*.example.com\"]",
				    dc->name);
	json_array_foreach(a, i, x) {
		retl_buf why = RETL_BUF_INIT;
		int rc = 0;
		if (!json_is_string(x))
			rc = retl_err_set(err, RETL_EXIT_USAGE,
					  "retl.json: destinations.%s.allowed_hosts[%zu]: expected a string (a host name or \"*.domain\")",
					  dc->name, i);
		else if (retl_url_pattern_check(json_string_value(x), &why) < 0)
			rc = retl_err_set(err, RETL_EXIT_USAGE,
					  "retl.json: destinations.%s.allowed_hosts[%zu]: %s",
					  dc->name, i, why.ptr);
		retl_buf_free(&why);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int sf_validate(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	const char *s;
	long n;
	if (retl_dest_opt_str(dc, "client_id", "the connected app's consumer key, e.g. \"${SF_CLIENT_ID}\"",
			      &s, err) < 0)
		return -1;
	static const char *const strs[] = {
		"client_secret", "refresh_token", "username",
		"private_key", "audience", "api_version", NULL
	};
	for (const char *const *k = strs; *k; k++)
		if (json_object_get(dc->options, *k) &&
		    retl_dest_opt_str(dc, *k, "", &s, err) < 0)
			return -1;
	if (retl_dest_opt_url(dc, "login_url", "", 0, &s, err) < 0 ||
	    validate_hosts(dc, err) < 0)
		return -1;
	if (opt(dc, "private_key") && !opt(dc, "username"))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.username: missing (the JWT bearer flow, chosen by private_key, signs in as this user)",
				    dc->name);
	if (!opt(dc, "private_key") && !opt(dc, "client_secret"))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s: no credentials: give client_secret (with refresh_token, or alone for the client credentials flow) or private_key and username (JWT bearer flow)",
				    dc->name);
	if (retl_dest_opt_posint(dc, "bulk_threshold", 10000, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "reserve", 1, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "bulk_max_bytes", 100000000, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "bulk_wait", 1800, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "max_inflight", 4, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "timeout", 120, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "daily_limit", 1, &n, err) < 0)
		return -1;
	return 0;
}

/* ---- shared helpers ---- */

static struct retl_http_req *call(struct sf_ctx *c, const char *method,
				  const char *path, const char *ctype,
				  const char *body, size_t blen, int replay)
{
	for (int attempt = 0;; attempt++) {
		struct retl_http_req *req = retl_http_req_new();
		retl_buf url = RETL_BUF_INIT;
		retl_buf_addf(&url, "%s%s", c->instance, path);
		req->method = method;
		req->url = retl_buf_detach(&url);
		req->idempotent = replay;
		req->content_type = ctype;
		/* a bulk job's result CSV (the one GET of another type) repeats
		 * the job's rows, plus an Id and an error text each: held in
		 * memory, capped by the job's size rather than by the JSON
		 * answers' max_response_bytes (README, The HTTP engine) */
		if (ctype && !strcmp(method, "GET"))
			req->max_resp = 4 * (size_t)c->bulk_max_bytes;
		if (body)
			retl_buf_add(&req->body, body, blen);
		retl_http_submit(c->base.http, req);
		struct retl_http_req *r;
		while ((r = retl_http_next(c->base.http, 1)) && r != req)
			retl_http_req_free(r);
		sf_usage(c, req);
		if (req->status == 401 && attempt == 0) {
			retl_err_clear(&c->auth_err);
			if (sf_auth(c, &c->auth_err) == 0) {
				retl_http_req_free(req);
				continue;
			}
		}
		return req;
	}
}

struct retl_http_req *sf_call(struct sf_ctx *c, const char *method,
			      const char *path, const char *ctype,
			      const char *body, size_t blen)
{
	return call(c, method, path, ctype, body, blen, strcmp(method, "POST") != 0);
}

struct retl_http_req *sf_call_once(struct sf_ctx *c, const char *method,
				   const char *path, const char *body, size_t blen)
{
	return call(c, method, path, NULL, body, blen, 0);
}

void sf_usage(struct sf_ctx *c, const struct retl_http_req *req)
{
	long n, m;
	const char *v = req->kept ? strstr(req->kept, "api-usage=") : NULL;
	if (!v || sscanf(v + 10, "%ld/%ld", &n, &m) != 2 || m <= 0)
		return;
	c->used = n;
	c->limit = m;
	long reserve = c->reserve >= 0 ? c->reserve : m / 10;
	if (m - n < reserve && !c->over_budget) {
		c->over_budget = 1;
		snprintf(c->budget_msg, sizeof(c->budget_msg),
			 "salesforce: daily API usage %ld of %ld: %ld calls left, under the reserve of %ld; rows not sent are sent by a later run",
			 n, m, m - n, reserve);
	}
}

char *sf_error_text(const struct retl_http_req *req)
{
	json_error_t je;
	json_t *root = req->resp.len ? json_loadb(req->resp.ptr, req->resp.len, 0, &je) : NULL;
	retl_buf b = RETL_BUF_INIT;
	size_t i;
	json_t *x;
	if (json_is_array(root)) {
		json_array_foreach(root, i, x) {
			const char *code = json_string_value(json_object_get(x, "errorCode"));
			const char *msg = json_string_value(json_object_get(x, "message"));
			retl_buf_addf(&b, "%s%s: %s", b.len ? "; " : "", code ? code : "ERROR",
				      msg ? msg : "(no message)");
		}
	}
	json_decref(root);
	if (b.len) {
		retl_buf o = RETL_BUF_INIT;
		retl_buf_addf(&o, "HTTP %ld %s", req->status, b.ptr);
		retl_buf_free(&b);
		return retl_buf_detach(&o);
	}
	retl_buf_free(&b);
	return retl_http_reason(req);
}

int sf_fatal_answer(struct sf_ctx *c, const struct retl_http_req *req,
		    struct retl_err *err)
{
	if (req->status == 401 && c->auth_err.msg[0])
		/* the refresh itself failed: its reason is the root cause */
		return retl_err_set(err, c->auth_err.code, "%s", c->auth_err.msg);
	if (req->status == 401) {
		char *t = sf_error_text(req);
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: session refused after a token refresh (%s)", t);
		free(t);
		return -1;
	}
	if (req->status == 403 && req->resp.ptr &&
	    strstr(req->resp.ptr, "REQUEST_LIMIT_EXCEEDED")) {
		retl_err_set(err, RETL_EXIT_DEST,
			     "salesforce: REQUEST_LIMIT_EXCEEDED: the org's daily API requests are spent (usage %ld of %ld); rows not sent are sent by a later run",
			     c->used, c->limit);
		return -1;
	}
	if (req->status == RETL_HTTP_BUDGET) {
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: not sent: %s", req->error);
		return -1;
	}
	return 0;
}

int sf_budget_stop(struct sf_ctx *c, struct retl_err *err)
{
	if (!c->over_budget)
		return 0;
	return retl_err_set(err, RETL_EXIT_DEST, "%s", c->budget_msg);
}

/* ---- submit: every row is deferred to a spool ---- */

static enum sf_kind op_kind(const struct sf_ctx *c, const struct retl_op *op)
{
	if (op->kind == RETL_OP_REMOVE)
		return SF_DELETE;
	if (c->base.mode == RETL_MODE_UPDATE || op->kind == RETL_OP_UPDATE)
		return SF_UPDATE;
	if (c->base.mode == RETL_MODE_INSERT || op->kind == RETL_OP_INSERT)
		return op->pending && c->ext ? SF_UPSERT : SF_INSERT;
	return SF_UPSERT;
}

static int open_spool(struct sf_ctx *c, enum sf_kind k, struct retl_err *err)
{
	if (c->spool[k])
		return 0;
	retl_buf p = RETL_BUF_INIT;
	retl_buf_addf(&p, "%s/%s.%s.spool", c->dir, c->base.sc->name, sf_kind_name[k]);
	c->spool_path[k] = retl_buf_detach(&p);
	c->spool[k] = retl_fopen_private(c->spool_path[k], "w+", 1);
	if (!c->spool[k])
		return retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot create %s: %s",
				    c->spool_path[k], strerror(errno));
	return 0;
}

static int spool_op(struct sf_ctx *c, struct retl_batch *b, size_t i, enum sf_kind k,
		    const struct retl_op *op, struct retl_err *err);

/* op i: settled at once, or deferred to its spool; -1 stops the batch */
static int defer_op(struct sf_ctx *c, struct retl_batch *b, size_t i,
		    struct retl_err *err)
{
	struct retl_op one = b->ops[i];
	const struct retl_op *op = &one;
	enum sf_kind k = op_kind(c, op);
	if (k == SF_DELETE && (!op->dest_id || !op->dest_id[0])) {
		if (!c->ext || !op->match || !op->match[0]) {
			/* never reached Salesforce: nothing to delete */
			retl_result_set(&b->results[i], RETL_RES_ACK, NULL, NULL);
			return 0;
		}
		/* it may have (a create whose answer was lost): by External ID */
		k = SF_DELETE_EXT;
		one.dest_id = op->match;
	}
	retl_buf idv = RETL_BUF_INIT;
	struct retl_pv pv;
	if (k == SF_UPDATE && c->by_id) {
		/* the model names the record: its Id, not what was stored */
		one.dest_id = NULL;
		if (retl_payload_get(op->payload, op->payload_len, "Id", &pv) > 0 &&
		    pv.kind == RETL_PV_STRING && retl_pv_string(&pv, &idv) == 0 && idv.len)
			one.dest_id = idv.ptr;
	}
	int rc = spool_op(c, b, i, k, &one, err);
	retl_buf_free(&idv);
	return rc;
}

/* op i, of kind k, to its spool (an update by Id without one is refused) */
static int spool_op(struct sf_ctx *c, struct retl_batch *b, size_t i, enum sf_kind k,
		    const struct retl_op *op, struct retl_err *err)
{
	if (k == SF_UPDATE && c->by_id && (!op->dest_id || !op->dest_id[0])) {
		retl_result_set(&b->results[i], RETL_RES_REJECT, NULL,
				"salesforce: update: the row has no Id (match {\"Id\": …} updates the record the model names)");
		return 0;
	}
	if (k == SF_UPDATE && !c->lookup && (!op->dest_id || !op->dest_id[0])) {
		retl_result_set(&b->results[i], RETL_RES_REJECT, NULL,
				"salesforce: update: no Salesforce Id is stored for this row; mode \"update\" updates records retl has synced before (use upsert to create or match them)");
		return 0;
	}
	if (open_spool(c, k, err) < 0)
		return -1;
	if (sf_spool_put(c->spool[k], op) < 0)
		return retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot write %s: %s",
				    c->spool_path[k], strerror(errno));
	c->nspool[k]++;
	retl_result_set(&b->results[i], RETL_RES_DEFER, NULL, NULL);
	return 0;
}

static int sf_submit(void *ctx, struct retl_batch *b, struct retl_err *err)
{
	struct sf_ctx *c = ctx;
	struct retl_err e;
	retl_err_clear(&e);
	for (size_t i = 0; i < b->n; i++) {
		if (defer_op(c, b, i, &e) < 0) {
			retl_batch_fatal(b, RETL_EXIT_DEST, e.msg);
			break;
		}
	}
	retl_hd_ready(&c->base, b);
	(void)err;
	return 0;
}

/*
 * update-only by a field: the update spool's rows looked up, into a spool
 * of those found once (with their Ids; the others are reported), read back
 * from its start; *n its rows.  NULL with err when the run must stop.
 */
static FILE *looked_up(struct sf_ctx *c, FILE *in, long *n, struct retl_err *err)
{
	if (open_spool(c, SF_DELETE_EXT, err) < 0)   /* unused in update mode */
		return NULL;
	FILE *out = c->spool[SF_DELETE_EXT];
	int rc = sf_lookup_run(c, in, out, n, err);
	if (rc == -2)
		sf_spool_damaged(c->spool_path[SF_UPDATE], err);
	if (rc < 0)
		return NULL;
	if (fflush(out) != 0 || fseek(out, 0, SEEK_SET) != 0) {
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot read back %s: %s",
			     c->spool_path[SF_DELETE_EXT], strerror(errno));
		return NULL;
	}
	return out;
}

static int sf_finish(void *ctx, struct retl_err *err)
{
	struct sf_ctx *c = ctx;
	static const enum sf_kind order[] = {
		SF_UPSERT, SF_INSERT, SF_UPDATE, SF_DELETE, SF_DELETE_EXT
	};
	for (size_t i = 0; i < SF_NKIND; i++) {
		enum sf_kind k = order[i];
		FILE *f = c->spool[k];
		if (!f || !c->nspool[k])
			continue;
		if (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0)
			return retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot read back %s: %s",
					    c->spool_path[k], strerror(errno));
		long n = c->nspool[k];
		if (k == SF_UPDATE && c->lookup && (f = looked_up(c, f, &n, err)) == NULL)
			return -1;
		/* "write": "if_empty": the current values read first */
		if (n && (f = sf_ie_filter(c, k, f, c->spool_path[k], &n, err)) == NULL)
			return -1;
		int rc = !n ? 0 : n > c->threshold && k != SF_DELETE_EXT ?
			sf_bulk_run(c, k, f, n, err) :
			sf_collections_run(c, k, f, err);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* ---- open / close ---- */

static void sf_fini(void *d)
{
	struct sf_ctx *c = d;
	for (int k = 0; k < SF_NKIND; k++) {
		if (c->spool[k])
			fclose(c->spool[k]);
		if (c->spool_path[k])
			unlink(c->spool_path[k]);
		free(c->spool_path[k]);
	}
	if (c->ie_spool)
		fclose(c->ie_spool);
	if (c->ie_path)
		unlink(c->ie_path);
	free(c->ie_path);
	free(c->ie);
	for (size_t i = 0; c->rel_type && i < c->base.nf; i++)
		free(c->rel_type[i]);
	free(c->rel_type);
	retl_http_free(c->tok);
	free(c->audience);
	free(c->instance);
	free(c->allowed);
	free(c->dir);
}

static const struct retl_hd_match_words sf_match_words = {
	.vendor = "Salesforce",
	.field = "External ID field",
	.placeholder = "<External ID field>",
	.example = "{\"External_Id__c\": \"id\"}",
	.carries = "in each record",
};

static int open_fields(struct sf_ctx *c, const struct retl_sync_cfg *sc,
		       struct retl_err *err)
{
	for (size_t i = 0; i < c->base.nf; i++) {
		const char *t = c->base.ftarget[i];
		if (c->base.ftype[i] == RETL_TYPE_JSON)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: Salesforce fields are flat: type \"json\" cannot be sent",
					    sc->file, t);
	}
	if (retl_hd_match_one(&c->base, &sf_match_words, &c->ext, err) < 0)
		return -1;
	/* update-only: by the model's Id, or found by the match field
	 * (salesforce_lookup.c) */
	if (c->base.mode == RETL_MODE_UPDATE && c->ext) {
		c->by_id = !strcmp(c->ext, "Id");
		c->lookup = c->by_id ? NULL : c->ext;
	}
	/* dotted targets: relationships only (salesforce_rel.c) */
	if (sf_rel_open(c, err) < 0)
		return -1;
	return sf_ie_open(c, err);
}

static int open_object(const struct retl_sync_cfg *sc, struct retl_err *err)
{
	if (!sc->object)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: object: missing; the salesforce destination needs an sObject name, e.g. \"Contact\" or \"Customer__c\"",
				    sc->file);
	for (const char *p = sc->object; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: object: \"%s\" is not an sObject API name",
					    sc->file, sc->object);
	return 0;
}

/* options, credentials, the token engine */
static int open_options(struct sf_ctx *c, const struct retl_dest_cfg *dc,
			struct retl_err *err)
{
	long wait_s;
	if (retl_dest_opt_posint(dc, "bulk_threshold", 10000, &c->threshold, err) < 0 ||
	    retl_dest_opt_posint(dc, "reserve", -1, &c->reserve, err) < 0 ||
	    retl_dest_opt_posint(dc, "bulk_max_bytes", 100000000, &c->bulk_max_bytes, err) < 0 ||
	    retl_dest_opt_posint(dc, "bulk_wait", 1800, &wait_s, err) < 0)
		return -1;
	c->poll_max = (double)wait_s;
	c->version = opt(dc, "api_version") ? opt(dc, "api_version") : "62.0";
	c->client_id = opt(dc, "client_id");
	c->client_secret = opt(dc, "client_secret");
	c->refresh_token = opt(dc, "refresh_token");
	c->username = opt(dc, "username");
	c->private_key = opt(dc, "private_key");
	c->grant = c->private_key ? SF_JWT : c->refresh_token ? SF_REFRESH : SF_CLIENT;
	json_t *hosts = json_object_get(dc->options, "allowed_hosts"), *x;
	size_t i;
	c->allowed = retl_calloc(json_array_size(hosts) + 1, sizeof(*c->allowed));
	json_array_foreach(hosts, i, x)
		c->allowed[i] = json_string_value(x);
	c->audience = retl_strdup(opt(dc, "audience") ? opt(dc, "audience") :
				  opt(dc, "login_url") ? opt(dc, "login_url") : SF_DEFAULT_LOGIN);
	struct retl_http_opts to = { .max_inflight = 1, .timeout_ms = 30000, .budget = -1 };
	return retl_http_new(&c->tok, &to, err);
}

/* spool files and bulk job maps live beside the project */
static int open_dir(struct sf_ctx *c, struct retl_err *err)
{
	retl_buf d = RETL_BUF_INIT;
	retl_buf_addf(&d, "%s/.retl-salesforce", c->base.env.dir ? c->base.env.dir : ".");
	c->dir = retl_buf_detach(&d);
	if (mkdir(c->dir, 0700) < 0 && errno != EEXIST)
		return retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot create %s: %s",
				    c->dir, strerror(errno));
	return 0;
}

/*
 * The mapping, the options, a token, the spool directory; then a job an
 * earlier run left: its rows are reported before this run loads its cache.
 */
static int sf_setup(void *d, struct retl_err *err)
{
	struct sf_ctx *c = d;
	const struct retl_sync_cfg *sc = c->base.sc;
	if (open_fields(c, sc, err) < 0 || open_options(c, c->base.dc, err) < 0 ||
	    sf_auth(c, err) < 0 || open_dir(c, err) < 0 ||
	    ((c->lookup || c->nrel || c->nie) && sf_describe_open(c, err) < 0))
		return -1;
	return c->base.env.note_get ? sf_bulk_resume(c, err) : 0;
}

/* the login host; the token comes in sf_setup */
static int sf_options(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		      struct retl_hd_opts *o, struct retl_err *err)
{
	if (open_object(sc, err) < 0)
		return -1;
	if (opt(dc, "login_url"))
		o->url = retl_strdup(opt(dc, "login_url"));
	o->http.keep_header = "Sforce-Limit-Info";
	return 0;
}

static size_t sf_per_request(void *d, int kind)
{
	return kind == SF_DELETE_EXT ? 1 : SF_MAX_RECORDS;
}

static const struct retl_hd_ops sf_ops = {
	.type = "salesforce",
	.ctx_size = sizeof(struct sf_ctx),
	.default_url = SF_DEFAULT_LOGIN,
	.max_ops = SF_MAX_RECORDS,
	.inflight = 4,
	.timeout = 120,
	.validate = sf_validate,
	.options = sf_options,
	.setup = sf_setup,
	.prepare = sf_collections_prepare,
	.encode = sf_collections_encode,
	.decode = sf_collections_decode,
	.ops_per_request = sf_per_request,
	.fini = sf_fini,
};

static void sf_stats(void *ctx, struct retl_dest_stats *s)
{
	struct sf_ctx *c = ctx;
	const struct retl_http_stats *t = c && c->tok ? retl_http_stats(c->tok) : NULL;
	retl_hd_stats(ctx, s);
	s->api_calls += t ? t->requests : 0;
	s->retries += t ? t->retries : 0;
}

static void sf_plan(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		    long ops, long *requests, long *jobs)
{
	long threshold = 10000;
	json_t *t = json_object_get(dc->options, "bulk_threshold");
	if (json_is_integer(t) && json_integer_value(t) > 0)
		threshold = (long)json_integer_value(t);
	/* one token request; collections 200 records a request; a bulk job
	 * about 7 calls (create, upload, close, a few polls, 3 results) */
	*requests = 1;
	*jobs = 0;
	if (ops > threshold) {
		*jobs = 1;
		*requests += 7;
	} else {
		*requests += (ops + SF_MAX_RECORDS - 1) / SF_MAX_RECORDS;
	}
	/* update-only by a field: a query per up to 200 rows (more when long
	 * values fill a query's URI first); it and relationship targets need
	 * one describe */
	const char *m = sc->match ? json_object_iter_key(json_object_iter(sc->match)) : NULL;
	int lookup = sc->mode == RETL_MODE_UPDATE && m && strcmp(m, "Id");
	int rels = 0;
	const char *k;
	json_t *v;
	json_object_foreach(sc->fields, k, v)
		rels |= strchr(k, '.') != NULL;
	if (ops > 0 && lookup)
		*requests += (ops + 199) / 200;
	/* "write": "if_empty": a query of the current values per up to 200
	 * rows (salesforce_if_empty.c); it needs the describe too */
	const char *ie = retl_mapping_if_empty_field(sc->mapping);
	int reads = ops > 0 && ie && sc->mode != RETL_MODE_INSERT;
	if (reads) {
		long q = (ops + SF_LOOKUP_VALUES - 1) / SF_LOOKUP_VALUES;
		*requests += q;
		retl_log(RETL_LOG_INFO, sc->name,
			 "plan: \"write\": \"if_empty\" (%s, ...): %ld SOQL quer%s of the current values before the writes",
			 ie, q, q == 1 ? "y" : "ies");
	}
	if (ops > 0 && (lookup || rels || reads))
		*requests += 1;
}

const struct retl_destination retl_dest_salesforce = {
	.name = "salesforce",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_UPDATE |
		 1u << RETL_MODE_INSERT | 1u << RETL_MODE_MIRROR,
	.removals = 1u << RETL_REMOVE_DELETE,
	.max_batch = SF_MAX_RECORDS,
	.conn_keys = sf_conn_keys,
	.validate = sf_validate,
	.http = &sf_ops,
	.check = sf_check,
	.max_inflight = 2,
	/* rows are deferred to spools at submit and sent by finish */
	.submit = sf_submit,
	.wait = retl_hd_wait,
	.stats = sf_stats,
	.close = retl_hd_close,
	.finish = sf_finish,
	.plan = sf_plan,
	.if_empty = 1,                /* salesforce_if_empty.c */
};
