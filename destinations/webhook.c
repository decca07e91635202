/*
 * webhook.c - the webhook destination: signed JSON batches POSTed to one
 * URL, for any tool retl does not speak natively.
 *
 *   POST <url>
 *   Content-Type: application/json
 *   X-Retl-Signature: sha256=<hex HMAC-SHA256 of the body, key signing_secret>
 *   X-Retl-Delivery: <id of this batch; the same on every retry of it>
 *   <headers from the config>
 *
 *   {"sync": "<name>", "operations": [{"op": "upsert"|"insert"|"update"|"remove",
 *                                      "key": <key JSON>, "payload": <object or null>}]}
 *
 * 2xx acknowledges the whole batch.  A 4xx other than 429 rejects every row
 * of it, with the status and the first 500 bytes of the response body as
 * the reason (retried on later runs, like any failed row).  429, 5xx and
 * transport errors are retried by the HTTP engine (up to 5 attempts,
 * exponential backoff with full jitter, a 429 waits its Retry-After and is
 * not counted as an attempt); a batch still not answered stays unsent for
 * the next run.  Delivery is therefore at-least-once: a batch whose 2xx was
 * lost is sent again, so receivers must be idempotent (dedupe by key and
 * payload, or by X-Retl-Delivery).
 *
 * The smallest destination on the HTTP destinations' base (http_dest.h):
 * prepare writes each op's entry, encode wraps them and signs the body (a
 * header of that request alone), decode reads the status.  Requests go one
 * at a time and in order (the engine's `ordered`: a retried request holds
 * back the ones behind it), so a receiver sees operations in the order
 * retl produced them.
 *
 * The url is held to url.h's policy at config time: https, or plain http
 * only to a literal loopback address (127.x.x.x, [::1]), and no
 * "user:password@" (an Authorization goes in headers, a secret from the
 * environment).
 */
#include "destination.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "buf.h"
#include "http_dest.h"
#include "ratelimit.h"
#include "redact.h"

#define WH_MAX_BATCH 1000

static const char *const wh_conn_keys[] = {
	"url", "batch_size", "requests_per_second", "headers", "signing_secret",
	"timeout", NULL
};

struct wh_ctx {
	struct retl_http_dest base;   /* first */
	const char *url;          /* borrowed from the options */
	const char *secret;       /* borrowed; NULL = unsigned */
	size_t batch;             /* operations a request */
};

/* ---- options ---- */

static int header_name_ok(const char *k)
{
	if (!*k)
		return 0;
	for (const char *p = k; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return 0;
	return 1;
}

static int validate_headers(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	json_t *h = json_object_get(dc->options, "headers");
	const char *k;
	json_t *v;
	if (h && !json_is_object(h))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.headers: expected an object of header names to string values",
				    dc->name);
	json_object_foreach(h, k, v) {
		if (!header_name_ok(k))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "retl.json: destinations.%s.headers: \"%s\" is not a header name",
					    dc->name, k);
		if (!strcasecmp(k, "Content-Type") || !strcasecmp(k, "Content-Length") ||
		    !strcasecmp(k, "Host") || !strcasecmp(k, "X-Retl-Signature") ||
		    !strcasecmp(k, "X-Retl-Delivery"))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "retl.json: destinations.%s.headers.%s: set by retl; remove it",
					    dc->name, k);
		if (!json_is_string(v) || strpbrk(json_string_value(v), "\r\n"))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "retl.json: destinations.%s.headers.%s: expected a string on one line",
					    dc->name, k);
	}
	return 0;
}

static int wh_validate(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	const char *url;
	long n;
	if (retl_dest_opt_url(dc, "url", "the URL batches are POSTed to", 1, &url, err) < 0)
		return -1;
	if (retl_dest_opt_posint(dc, "requests_per_second", 1, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "timeout", 30, &n, err) < 0)
		return -1;
	if (retl_dest_opt_posint(dc, "batch_size", 100, &n, err) < 0)
		return -1;
	if (n > WH_MAX_BATCH)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.batch_size: at most %d operations a request",
				    dc->name, WH_MAX_BATCH);
	json_t *s = json_object_get(dc->options, "signing_secret");
	if (s && (!json_is_string(s) || !json_string_length(s)))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.signing_secret: expected a non-empty string (e.g. \"${WEBHOOK_SECRET}\")",
				    dc->name);
	return validate_headers(dc, err);
}

/* ---- prepare / encode / decode ---- */

static int wh_prepare(void *d, struct retl_batch *b, size_t i, retl_buf *body,
		      retl_buf *id, retl_buf *reason)
{
	const struct retl_op *op = &b->ops[i];
	retl_buf_addf(body, "{\"op\":\"%s\",\"key\":", retl_op_name(op->kind));
	retl_buf_adds(body, op->key_json);
	retl_buf_adds(body, ",\"payload\":");
	if (op->payload && op->kind != RETL_OP_REMOVE)
		retl_buf_add(body, op->payload, op->payload_len);
	else
		retl_buf_adds(body, "null");
	retl_buf_addc(body, '}');
	return 0;
}

/* "X-Retl-Signature: sha256=<hex HMAC-SHA256 of the body>" */
static void add_signature(const struct wh_ctx *c, struct retl_http_req *req)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	retl_buf line = RETL_BUF_INIT;
	HMAC(EVP_sha256(), c->secret, (int)strlen(c->secret),
	     (const unsigned char *)retl_buf_cstr(&req->body), req->body.len, md, &mdlen);
	retl_buf_adds(&line, "X-Retl-Signature: sha256=");
	for (unsigned int i = 0; i < mdlen; i++)
		retl_buf_addf(&line, "%02x", md[i]);
	retl_http_req_header(req, line.ptr);
	retl_buf_free(&line);
}

/* "X-Retl-Delivery: <random id>": the same on every retry of the request */
static void add_delivery(struct retl_http_req *req)
{
	unsigned char rnd[8] = { 0 };
	retl_buf line = RETL_BUF_INIT;
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	retl_buf_adds(&line, "X-Retl-Delivery: ");
	for (size_t i = 0; i < sizeof(rnd); i++)
		retl_buf_addf(&line, "%02x", rnd[i]);
	retl_http_req_header(req, line.ptr);
	retl_buf_free(&line);
}

static int wh_encode(void *d, struct retl_request *r, struct retl_err *err)
{
	struct wh_ctx *c = d;
	struct retl_http_req *req = r->http;
	retl_buf *o = &req->body;
	const char *sync = c->base.sc->name;
	req->method = "POST";
	req->url = retl_strdup(c->url);
	req->idempotent = 1;
	retl_buf_adds(o, "{\"sync\":");
	retl_buf_add_json_str(o, sync, strlen(sync));
	retl_buf_adds(o, ",\"operations\":[");
	retl_req_add_bodies(r, o);
	retl_buf_adds(o, "]}");
	add_delivery(req);
	if (c->secret)
		add_signature(c, req);
	(void)err;
	return 0;
}

static enum retl_hd_verdict wh_decode(void *d, struct retl_request *r,
				      struct retl_err *err)
{
	long st = r->http->status;
	if (st >= 200 && st < 300) {
		retl_req_set_all(r, RETL_RES_ACK, NULL);
		return RETL_HD_DONE;
	}
	char *why = retl_req_reason(r);
	retl_req_set_all(r, st >= 400 && st < 500 ? RETL_RES_REJECT : RETL_RES_RETRY, why);
	free(why);
	return RETL_HD_DONE;
}

static int wh_check(void *ctx, struct retl_err *err)
{
	/* nothing to ask a generic receiver without sending it data */
	(void)ctx;
	(void)err;
	return 0;
}

/* ---- open ---- */

/* the config's headers as "Name: value" lines, NULL-ended */
static char **header_lines(const struct retl_dest_cfg *dc)
{
	json_t *h = json_object_get(dc->options, "headers");
	char **l = retl_calloc(json_object_size(h) + 1, sizeof(*l));
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(h, k, v) {
		retl_buf line = RETL_BUF_INIT;
		retl_buf_addf(&line, "%s: %s", k, json_string_value(v));
		l[n++] = retl_buf_detach(&line);
	}
	return l;
}

/* batch_size a request, the configured headers, the URL's limiter; one
 * request at a time, in order */
static int wh_options(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		      struct retl_hd_opts *o, struct retl_err *err)
{
	long rps;
	const char *url = json_string_value(json_object_get(dc->options, "url"));
	if (json_object_get(dc->options, "requests_per_second")) {
		retl_dest_opt_posint(dc, "requests_per_second", 1, &rps, err);
		retl_buf key = RETL_BUF_INIT;
		retl_buf_addf(&key, "webhook:%s", url);
		o->http.rate = retl_rate_shared(key.ptr, (int)rps, 1.0, 0.02);
		retl_buf_free(&key);
	}
	o->headers = header_lines(dc);
	o->http.ordered = 1;
	(void)sc;
	return 0;
}

/* the URL, the batch size and the signing secret (redacted from now on) */
static int wh_setup(void *d, struct retl_err *err)
{
	struct wh_ctx *c = d;
	const json_t *opts = c->base.dc->options;
	c->url = json_string_value(json_object_get(opts, "url"));
	c->secret = json_string_value(json_object_get(opts, "signing_secret"));
	long n;
	retl_dest_opt_posint(c->base.dc, "batch_size", 100, &n, err);
	c->batch = (size_t)n;
	if (c->secret)
		retl_redact_add(c->secret);
	(void)err;
	return 0;
}

static size_t wh_batch(void *d, int kind)
{
	return ((struct wh_ctx *)d)->batch;
}

static const struct retl_hd_ops wh_ops = {
	.type = "webhook",
	.ctx_size = sizeof(struct wh_ctx),
	.inflight = 1,
	.timeout = 30,
	.validate = wh_validate,
	.options = wh_options,
	.setup = wh_setup,
	.prepare = wh_prepare,
	.encode = wh_encode,
	.decode = wh_decode,
	.ops_per_request = wh_batch,
};

const struct retl_destination retl_dest_webhook = {
	.name = "webhook",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_UPDATE |
		 1u << RETL_MODE_INSERT | 1u << RETL_MODE_MIRROR,
	/* a removed row is one "remove" operation: what it means is the
	 * receiver's business, so only on_remove "delete" is offered */
	.removals = 1u << RETL_REMOVE_DELETE,
	/* an engine batch; the base splits it into batch_size requests */
	.max_batch = WH_MAX_BATCH,
	.conn_keys = wh_conn_keys,
	.validate = wh_validate,
	.http = &wh_ops,
	.check = wh_check,
	.close = retl_hd_close,
	/* engine batches queued at once; requests leave one at a time */
	.max_inflight = 4,
	.submit = retl_hd_submit,
	.wait = retl_hd_wait,
	.stats = retl_hd_stats,
};
