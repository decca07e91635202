/*
 * http.h - the HTTP engine: many requests in flight over libcurl's multi
 * interface, inside a rate limit, with retries.
 *
 * A destination submits requests and takes back finished ones.  In between
 * the engine starts them as the concurrency cap and the rate limiter allow
 * (keep-alive connections are reused, responses may be gzip'd), reads the
 * server's rate headers, and retries on its own:
 *   429              after Retry-After (or the window), every request paused;
 *                    a 429 opts.final_429 calls final (a daily quota) is
 *                    handed back at once
 *   5xx, transport   exponential backoff with full jitter, up to max_attempts,
 *                    only for idempotent requests (a create that timed out
 *                    may have happened: the destination decides)
 * Everything else (2xx, other 4xx) is handed back as it is.  A request that
 * would go over the run's request budget is handed back unsent
 * (status RETL_HTTP_BUDGET).
 *
 * What a server may cost is bounded (README "The HTTP engine"):
 *   - an answer larger than opts.max_response bytes (decompressed) is cut
 *     off as it arrives and counts as no answer, a transport error like a
 *     dropped connection: memory never holds more than the cap;
 *   - the circuit breaker: after opts.max_failures transport failures in a
 *     row (no HTTP answer at all: refused, reset, timed out, TLS, over the
 *     cap) without any answer in between, it opens for good: transfers in
 *     flight are abandoned and every request, queued or submitted later,
 *     is handed back at once with status RETL_HTTP_STOPPED.  The
 *     destination stops the run; the next run starts with it closed.
 *   - no low-speed limit: libcurl's LOW_SPEED_* counts the time a server
 *     thinks before its first byte as "slow", and these APIs think
 *     silently for tens of seconds (Mailchimp's batch of 500 for minutes);
 *     the whole-request timeout already bounds a server that drips, which
 *     cannot stretch it, and the breaker bounds how many such timeouts a
 *     run pays.
 *
 * TLS peer and host verification stay on.  The Authorization header is
 * never logged.
 */
#ifndef RETL_HTTP_H
#define RETL_HTTP_H

#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "ratelimit.h"

#define RETL_HTTP_TRANSPORT 0   /* status: no response (error says why) */
#define RETL_HTTP_BUDGET (-1)   /* status: not sent, request budget spent */
#define RETL_HTTP_STOPPED (-2)  /* status: not sent, or abandoned in flight:
				 * the circuit breaker is open */

/* opts.max_response's default: see README "The HTTP engine" for the
 * largest answer each API documents */
#define RETL_HTTP_MAX_RESPONSE ((size_t)64 << 20)

struct retl_http_req;

struct retl_http_opts {
	int max_inflight;         /* requests at once (default 4) */
	long connect_timeout_ms;  /* default 10 s */
	long timeout_ms;          /* whole request, default 60 s */
	int max_attempts;         /* per request for 5xx/transport (default 5) */
	int max_429;              /* 429s tolerated per request (default 20) */
	double backoff_base;      /* seconds (default 0.5) */
	double backoff_cap;       /* seconds (default 30) */
	size_t max_response;      /* bytes of an answer, decompressed
				   * (default RETL_HTTP_MAX_RESPONSE) */
	int max_failures;         /* transport failures in a row that open
				   * the circuit breaker (default
				   * max_attempts x max_inflight) */
	retl_ratelimit *rate;     /* borrowed; NULL = no limit */
	long budget;              /* requests this run may start; < 0 = no limit */
	const char *auth;         /* full header line, e.g. "Authorization: Bearer …" */
	/* response headers that report the server's window (optional) */
	const char *rate_max_header;
	const char *rate_remaining_header;
	/* a response header every request keeps (retl_http_req.kept), e.g.
	 * Salesforce's Sforce-Limit-Info (optional) */
	const char *keep_header;
	/* more header lines every request sends, NULL-ended (optional) */
	const char *const *headers;
	/*
	 * Requests leave in the order they were submitted, even when one is
	 * retried: a request waiting for its retry holds back the ones queued
	 * behind it (a receiver that applies operations in arrival order, like
	 * a webhook, sees them in retl's order).  With max_inflight 1 this is
	 * one request at a time.
	 */
	int ordered;
	/*
	 * A 429 that waiting does not cure (HubSpot's daily limit: retrying
	 * for minutes only fails the rows later) is handed back at once when
	 * this returns non-zero for it; its body is in r->resp (r->status is
	 * not set yet) (optional).
	 */
	int (*final_429)(const struct retl_http_req *r);
};

struct retl_http_req {
	/* set by the submitter (the engine owns nothing here but resp) */
	const char *method;       /* "GET", "POST", "PATCH", "DELETE" */
	char *url;                /* malloc'd, freed by retl_http_req_free */
	retl_buf body;            /* request body (JSON) */
	int idempotent;           /* may be replayed after 5xx / transport errors */
	void *ud;                 /* the submitter's */
	const char *content_type; /* borrowed; NULL = application/json (a
				   * request with its own type also accepts
				   * any response type) */
	size_t max_resp;          /* this request's cap when larger than
				   * opts.max_response (a bulk result CSV);
				   * 0 = the engine's */
	retl_ratelimit *rate2;    /* a second limit this request must also
				   * pass, beside opts.rate (HubSpot's search
				   * endpoints: 5 a second of their own);
				   * borrowed, NULL = none */

	/* set by the engine when the request is handed back */
	long status;              /* HTTP status, or RETL_HTTP_* */
	retl_buf resp;            /* response body (decompressed) */
	char error[256];          /* transport error, when status is 0 */
	int attempts;             /* requests actually sent */
	char *kept;               /* opts.keep_header's value, or NULL */

	/* engine private */
	struct retl_http_req *next;
	double not_before;
	int n429;
	void *easy;
	char *retry_after;
	void *hdrs;               /* headers of a request with content_type
				   * or headers of its own */
	void *own;                /* retl_http_req_header's lines */
	size_t cap;               /* the cap of the transfer in progress */
	int over_cap;             /* its answer went over the cap */
};

struct retl_http_stats {
	long requests;            /* requests sent (every attempt) */
	long retries;             /* attempts after the first */
	long http_429;
	long transport_errors;
};

typedef struct retl_http retl_http;

int retl_http_new(retl_http **out, const struct retl_http_opts *o,
		  struct retl_err *err);
void retl_http_free(retl_http *h);

/* a new request; the caller fills method, url (retl_strdup'd), body */
struct retl_http_req *retl_http_req_new(void);
void retl_http_req_free(struct retl_http_req *r);

/* adds a header line ("Name: value") to this request alone, e.g. a
 * signature of its body; kept for its retries */
void retl_http_req_header(struct retl_http_req *r, const char *line);

/* replaces the Authorization header line (a refreshed token) for every
 * request started from now on; the line is copied, never logged */
void retl_http_set_auth(retl_http *h, const char *auth);

/* queues r; the engine holds it until it is handed back */
void retl_http_submit(retl_http *h, struct retl_http_req *r);
/*
 * Drives transfers and hands back one finished request.  With block, waits
 * until one finishes; NULL then means nothing is queued or in flight.
 * Without block, NULL means none has finished yet.
 */
struct retl_http_req *retl_http_next(retl_http *h, int block);
/* GET url and wait for its answer (for check(): nothing else is in
 * flight then); the caller frees the request */
struct retl_http_req *retl_http_get(retl_http *h, const char *url);

/* "HTTP 400: <first 500 bytes of the body>", "no response after 3
 * attempts: …", "not sent: …" or "stopped: …" for a finished request,
 * secrets redacted; malloc'd */
char *retl_http_reason(const struct retl_http_req *req);

/* why the circuit breaker opened ("5 requests in a row got no answer
 * (the last: …)"), or NULL while it is closed; owned by h */
const char *retl_http_breaker(const retl_http *h);

/* requests queued or in flight */
size_t retl_http_pending(const retl_http *h);
const struct retl_http_stats *retl_http_stats(const retl_http *h);

#endif
