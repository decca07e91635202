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
 * transport errors are retried like the HTTP engine does (up to 5 attempts,
 * exponential backoff with full jitter, a 429 waits its Retry-After and is
 * not counted as an attempt); a batch still not answered stays unsent for
 * the next run.  Delivery is therefore at-least-once: a batch whose 2xx was
 * lost is sent again, so receivers must be idempotent (dedupe by key and
 * payload, or by X-Retl-Delivery).
 *
 * Why not the shared HTTP engine (src/http.h): it sends one fixed header set
 * per connection object, and the signature is per body.  Batches go out one
 * at a time, in order, through one keep-alive libcurl handle: a receiver
 * sees a key's operations in the order retl produced them.
 */
#include "destination.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "ratelimit.h"
#include "redact.h"

#define WH_MAX_BATCH 1000
#define WH_MAX_ATTEMPTS 5
#define WH_MAX_429 20

static const char *const wh_conn_keys[] = {
	"url", "batch_size", "requests_per_second", "headers", "signing_secret",
	"timeout", NULL
};

struct wh_ctx {
	const char *sync;         /* borrowed */
	const char *url;          /* borrowed from the options */
	const char *secret;       /* borrowed; NULL = unsigned */
	size_t batch;
	long timeout;
	CURL *curl;
	struct curl_slist *headers;   /* fixed ones: content type, config */
	retl_ratelimit *rate;     /* shared per URL; NULL = no limit */
	retl_buf body, resp;
	struct retl_dest_stats stats;
};

/* ---- options ---- */

static int loopback(const char *host, size_t n)
{
	return (n == 9 && !strncasecmp(host, "localhost", 9)) ||
	       (n >= 4 && !strncmp(host, "127.", 4)) ||
	       (n == 5 && !strncmp(host, "[::1]", 5));
}

static int url_ok(const char *u)
{
	if (!strncmp(u, "https://", 8))
		return u[8] != '\0';
	if (strncmp(u, "http://", 7))
		return 0;
	const char *h = u + 7;
	size_t n = strcspn(h, "/?#");
	const char *at = memchr(h, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - h);
		h = at + 1;
	}
	if (h[0] == '[') {
		const char *rb = memchr(h, ']', n);
		return rb && loopback(h, (size_t)(rb + 1 - h));
	}
	const char *colon = memchr(h, ':', n);
	return loopback(h, colon ? (size_t)(colon - h) : n);
}

static int header_name_ok(const char *k)
{
	if (!*k)
		return 0;
	for (const char *p = k; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return 0;
	return 1;
}

static int wh_validate(const struct retl_dest_cfg *dc, struct retl_err *err)
{
	const char *url;
	long n;
	if (retl_dest_opt_str(dc, "url", "the URL batches are POSTed to", &url, err) < 0)
		return -1;
	if (!url_ok(url))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.url: expected an https:// URL (or http:// to a loopback host: localhost, 127.x.x.x, [::1])",
				    dc->name);
	if (retl_dest_opt_posint(dc, "batch_size", 100, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "requests_per_second", 1, &n, err) < 0 ||
	    retl_dest_opt_posint(dc, "timeout", 30, &n, err) < 0)
		return -1;
	retl_dest_opt_posint(dc, "batch_size", 100, &n, err);
	if (n > WH_MAX_BATCH)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.batch_size: at most %d operations a request",
				    dc->name, WH_MAX_BATCH);
	json_t *s = json_object_get(dc->options, "signing_secret");
	if (s && (!json_is_string(s) || !json_string_length(s)))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.signing_secret: expected a non-empty string (e.g. \"${WEBHOOK_SECRET}\")",
				    dc->name);
	json_t *h = json_object_get(dc->options, "headers");
	if (h && !json_is_object(h))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.headers: expected an object of header names to string values",
				    dc->name);
	const char *k;
	json_t *v;
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

/* ---- open / close ---- */

static void wh_close(void *ctx)
{
	struct wh_ctx *c = ctx;
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers);
	retl_buf_free(&c->body);
	retl_buf_free(&c->resp);
	free(c);
}

static int wh_open(void **out, const struct retl_dest_cfg *dc,
		   const struct retl_sync_cfg *sc,
		   const struct retl_dest_env *env, struct retl_err *err)
{
	struct wh_ctx *c = retl_calloc(1, sizeof(*c));
	long n;
	*out = NULL;
	(void)env;
	if (wh_validate(dc, err) < 0)
		goto fail;
	c->sync = sc->name;
	c->url = json_string_value(json_object_get(dc->options, "url"));
	c->secret = json_string_value(json_object_get(dc->options, "signing_secret"));
	if (c->secret)
		retl_redact_add(c->secret);
	retl_dest_opt_posint(dc, "batch_size", 100, &n, err);
	c->batch = (size_t)n;
	retl_dest_opt_posint(dc, "timeout", 30, &c->timeout, err);
	if (json_object_get(dc->options, "requests_per_second")) {
		retl_dest_opt_posint(dc, "requests_per_second", 1, &n, err);
		retl_buf key = RETL_BUF_INIT;
		retl_buf_addf(&key, "webhook:%s", c->url);
		c->rate = retl_rate_shared(key.ptr, (int)n, 1.0, 0.02);
		retl_buf_free(&key);
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    !(c->curl = curl_easy_init())) {
		retl_err_set(err, RETL_EXIT_DEST, "webhook: cannot initialise libcurl");
		goto fail;
	}
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	c->headers = curl_slist_append(c->headers, "Expect:");
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(dc->options, "headers"), k, v) {
		retl_buf h = RETL_BUF_INIT;
		retl_buf_addf(&h, "%s: %s", k, json_string_value(v));
		c->headers = curl_slist_append(c->headers, h.ptr);
		retl_buf_free(&h);
	}
	*out = c;
	return 0;
fail:
	if (!err->code)
		err->code = RETL_EXIT_USAGE;
	wh_close(c);
	return -1;
}

/* ---- one request, with retries ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	retl_buf_add(ud, p, size * n);
	return size * n;
}

static double retry_after;      /* seconds from the last response, or -1 */

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	size_t len = size * n;
	static const char ra[] = "retry-after:";
	(void)ud;
	if (len > sizeof(ra) - 1 && !strncasecmp(p, ra, sizeof(ra) - 1)) {
		char *end;
		double s = strtod(p + sizeof(ra) - 1, &end);
		retry_after = end == p + sizeof(ra) - 1 || s < 0 ? 1 : (s > 300 ? 300 : s);
	}
	return len;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0)
		;
}

static double jitter(int attempt)
{
	double cap = 0.5;
	for (int i = 1; i < attempt && cap < 30; i++)
		cap *= 2;
	if (cap > 30)
		cap = 30;
	uint32_t rnd;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)rand();
	return cap * ((double)rnd / 4294967296.0);
}

static void sign(const struct wh_ctx *c, retl_buf *line)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	HMAC(EVP_sha256(), c->secret, (int)strlen(c->secret),
	     (const unsigned char *)c->body.ptr, c->body.len, md, &mdlen);
	retl_buf_adds(line, "X-Retl-Signature: sha256=");
	for (unsigned int i = 0; i < mdlen; i++)
		retl_buf_addf(line, "%02x", md[i]);
}

/*
 * POSTs c->body.  Returns the final HTTP status (0: no response; the reason
 * is in why).  Retries 429, 5xx and transport errors.
 */
static long post(struct wh_ctx *c, retl_buf *why)
{
	struct curl_slist *hdr = NULL, *last;
	retl_buf line = RETL_BUF_INIT;
	char errbuf[CURL_ERROR_SIZE];
	unsigned char rnd[8] = { 0 };
	long status = 0;
	int attempts = 0, n429 = 0;

	/* the fixed headers, then this body's: append to a copy-free tail */
	for (last = c->headers; last && last->next; last = last->next)
		;
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	retl_buf_adds(&line, "X-Retl-Delivery: ");
	for (size_t i = 0; i < sizeof(rnd); i++)
		retl_buf_addf(&line, "%02x", rnd[i]);
	hdr = curl_slist_append(hdr, line.ptr);
	if (c->secret) {
		retl_buf_reset(&line);
		sign(c, &line);
		hdr = curl_slist_append(hdr, line.ptr);
	}
	retl_buf_free(&line);
	last->next = hdr;

	for (;;) {
		if (c->rate) {
			double d;
			while ((d = retl_rate_delay(c->rate, retl_rate_now())) > 0)
				sleep_s(d);
			retl_rate_take(c->rate, retl_rate_now());
		}
		CURL *e = c->curl;
		curl_easy_reset(e);
		retl_buf_reset(&c->resp);
		retry_after = -1;
		errbuf[0] = '\0';
		curl_easy_setopt(e, CURLOPT_URL, c->url);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, retl_buf_cstr(&c->body));
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body.len);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->resp);
		curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout * 1000);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_USERAGENT, "retl/0.1");
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		attempts++;
		c->stats.api_calls++;
		if (attempts + n429 > 1)
			c->stats.retries++;
		CURLcode rc = curl_easy_perform(e);
		status = 0;
		if (rc == CURLE_OK)
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		if (rc != CURLE_OK) {
			retl_buf_reset(why);
			retl_buf_addf(why, "no response after %d attempt%s: %s", attempts,
				      attempts == 1 ? "" : "s",
				      errbuf[0] ? errbuf : curl_easy_strerror(rc));
			if (attempts >= WH_MAX_ATTEMPTS)
				break;
			retl_log(RETL_LOG_DEBUG, c->sync, "webhook: %s; retrying", errbuf);
			sleep_s(jitter(attempts));
			continue;
		}
		if (status == 429 && ++n429 < WH_MAX_429) {
			c->stats.http_429++;
			attempts--;             /* a 429 is not an attempt */
			double w = retry_after >= 0 ? retry_after : jitter(n429);
			if (c->rate)
				retl_rate_pause(c->rate, retl_rate_now(), w);
			sleep_s(w);
			continue;
		}
		if (status == 429)
			c->stats.http_429++;
		if (status >= 500 && attempts < WH_MAX_ATTEMPTS) {
			sleep_s(jitter(attempts));
			continue;
		}
		break;
	}
	last->next = NULL;
	curl_slist_free_all(hdr);
	if (status > 0) {
		size_t n = c->resp.len > 500 ? 500 : c->resp.len;
		retl_buf_reset(why);
		retl_buf_addf(why, "HTTP %ld", status);
		if (attempts > 1)
			retl_buf_addf(why, " after %d attempts", attempts);
		if (n) {
			retl_buf_adds(why, ": ");
			retl_buf_add(why, c->resp.ptr, n);
		}
	}
	return status;
}

static const char *op_name(enum retl_op_kind k)
{
	switch (k) {
	case RETL_OP_INSERT: return "insert";
	case RETL_OP_UPDATE: return "update";
	case RETL_OP_REMOVE: return "remove";
	default: return "upsert";
	}
}

static void set_res(struct retl_result *r, enum retl_result_kind kind, const char *reason)
{
	free(r->dest_id);
	free(r->reason);
	r->kind = kind;
	r->dest_id = NULL;
	r->reason = reason ? retl_strdup(reason) : NULL;
}

static int wh_send(void *ctx, const struct retl_op *ops, size_t n,
		   struct retl_result *results, struct retl_err *err)
{
	struct wh_ctx *c = ctx;
	retl_buf why = RETL_BUF_INIT, red = RETL_BUF_INIT;
	(void)err;
	for (size_t off = 0; off < n; off += c->batch) {
		size_t m = n - off < c->batch ? n - off : c->batch;
		retl_buf *o = &c->body;
		retl_buf_reset(o);
		retl_buf_adds(o, "{\"sync\":");
		retl_buf_add_json_str(o, c->sync, strlen(c->sync));
		retl_buf_adds(o, ",\"operations\":[");
		for (size_t i = off; i < off + m; i++) {
			const struct retl_op *op = &ops[i];
			if (i > off)
				retl_buf_addc(o, ',');
			retl_buf_addf(o, "{\"op\":\"%s\",\"key\":", op_name(op->kind));
			retl_buf_adds(o, op->key_json);
			retl_buf_adds(o, ",\"payload\":");
			if (op->payload && op->kind != RETL_OP_REMOVE)
				retl_buf_add(o, op->payload, op->payload_len);
			else
				retl_buf_adds(o, "null");
			retl_buf_addc(o, '}');
		}
		retl_buf_adds(o, "]}");

		retl_buf_reset(&why);
		long st = post(c, &why);
		retl_buf_reset(&red);
		retl_redact_into(&red, retl_buf_cstr(&why), why.len);
		enum retl_result_kind kind =
			st >= 200 && st < 300 ? RETL_RES_ACK :
			st >= 400 && st < 500 && st != 429 ? RETL_RES_REJECT :
			RETL_RES_RETRY;
		for (size_t i = off; i < off + m; i++)
			set_res(&results[i], kind, kind == RETL_RES_ACK ? NULL : red.ptr);
	}
	retl_buf_free(&why);
	retl_buf_free(&red);
	return 0;
}

static void wh_stats(void *ctx, struct retl_dest_stats *s)
{
	struct wh_ctx *c = ctx;
	if (c)
		*s = c->stats;
}

static int wh_check(void *ctx, struct retl_err *err)
{
	/* nothing to ask a generic receiver without sending it data */
	(void)ctx;
	(void)err;
	return 0;
}

const struct retl_destination retl_dest_webhook = {
	.name = "webhook",
	.modes = 1u << RETL_MODE_UPSERT | 1u << RETL_MODE_UPDATE |
		 1u << RETL_MODE_INSERT | 1u << RETL_MODE_MIRROR,
	/* a removed row is one "remove" operation: what it means is the
	 * receiver's business, so only on_remove "delete" is offered */
	.removals = 1u << RETL_REMOVE_DELETE,
	/* an engine batch; wh_send splits it into batch_size requests */
	.max_batch = WH_MAX_BATCH,
	.conn_keys = wh_conn_keys,
	.sync_keys = NULL,
	.validate = wh_validate,
	.open = wh_open,
	.check = wh_check,
	.send = wh_send,
	.close = wh_close,
	.stats = wh_stats,
};
