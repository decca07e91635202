/*
 * http.c - the HTTP engine, see http.h.
 *
 * Three queues: waiting (submitted or due for a retry, each with a
 * not-before time), active (easy handles inside the multi handle) and done.
 * retl_http_next() moves requests along: it starts waiting ones while the
 * concurrency cap, the rate limiter and the budget allow, lets curl run
 * until something finishes or the next start is due, and sorts finished
 * transfers into "retry later" and "done".
 *
 * The circuit breaker counts transport failures since the last HTTP
 * answer of any status (a 5xx is an answer: the server is there).  Once
 * open it stays open: finish() only notes it, and retl_http_next()
 * abandons what is in flight after curl's message loop (a handle is not
 * removed while its messages are being read) and hands back everything
 * queued as RETL_HTTP_STOPPED.
 */
#include "http.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "cast.h"
#include "log.h"
#include "redact.h"
#include "url.h"

struct retl_http {
	struct retl_http_opts o;
	CURLM *multi;
	CURL **idle;              /* easy handles not in use */
	size_t nidle;
	CURL **all;               /* every easy handle made (<= max_inflight) */
	size_t nall;
	struct curl_slist *headers;
	struct curl_slist **old_headers; /* replaced while transfers used them */
	size_t nold;
	struct retl_http_req *wait_head, *wait_tail;
	struct retl_http_req *done_head, *done_tail;
	size_t nactive, nwaiting, ndone;
	struct retl_http_stats stats;
	int failures;             /* transport failures since the last answer */
	char *breaker;            /* why the breaker opened; NULL: closed */
};

static int curl_ready;

static void push(struct retl_http_req **head, struct retl_http_req **tail,
		 struct retl_http_req *r)
{
	r->next = NULL;
	if (*tail)
		(*tail)->next = r;
	else
		*head = r;
	*tail = r;
}

/* a request due for a retry: back in the queue (at its head when ordered) */
static void requeue(retl_http *h, struct retl_http_req *r)
{
	if (h->o.ordered) {
		r->next = h->wait_head;
		h->wait_head = r;
		if (!h->wait_tail)
			h->wait_tail = r;
	} else {
		push(&h->wait_head, &h->wait_tail, r);
	}
	h->nwaiting++;
}

static struct retl_http_req *pop(struct retl_http_req **head,
				 struct retl_http_req **tail)
{
	struct retl_http_req *r = *head;
	if (r) {
		*head = r->next;
		if (!*head)
			*tail = NULL;
		r->next = NULL;
	}
	return r;
}

static struct curl_slist *base_headers(const retl_http *h, const char *auth)
{
	struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
	l = curl_slist_append(l, "Accept: application/json");
	l = curl_slist_append(l, "Expect:");
	if (auth)
		l = curl_slist_append(l, auth);
	for (const char *const *x = h->o.headers; x && *x; x++)
		l = curl_slist_append(l, *x);
	return l;
}

int retl_http_new(retl_http **out, const struct retl_http_opts *o,
		  struct retl_err *err)
{
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return retl_err_set(err, RETL_EXIT_DEST, "cannot initialise libcurl");
		curl_ready = 1;
	}
	retl_http *h = retl_calloc(1, sizeof(*h));
	h->o = *o;
	if (h->o.max_inflight <= 0)
		h->o.max_inflight = 4;
	if (h->o.connect_timeout_ms <= 0)
		h->o.connect_timeout_ms = 10000;
	if (h->o.timeout_ms <= 0)
		h->o.timeout_ms = 60000;
	if (h->o.max_attempts <= 0)
		h->o.max_attempts = 5;
	if (h->o.max_429 <= 0)
		h->o.max_429 = 20;
	if (h->o.backoff_base <= 0)
		h->o.backoff_base = 0.5;
	if (h->o.backoff_cap <= 0)
		h->o.backoff_cap = 30;
	if (!h->o.max_response)
		h->o.max_response = RETL_HTTP_MAX_RESPONSE;
	/* by default the breaker opens once every connection has spent a
	 * request's worth of attempts with no answer: a blip that the
	 * per-request retries ride through (a few seconds of refused or reset
	 * connections) never opens it; a dead or hung server costs about
	 * max_attempts rounds of timeouts, not one per batch */
	if (h->o.max_failures <= 0)
		h->o.max_failures = h->o.max_attempts * h->o.max_inflight;
	h->multi = curl_multi_init();
	if (!h->multi) {
		free(h);
		return retl_err_set(err, RETL_EXIT_DEST, "cannot create a libcurl multi handle");
	}
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)h->o.max_inflight);
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->o.max_inflight);
	h->idle = retl_calloc((size_t)h->o.max_inflight, sizeof(CURL *));
	h->all = retl_calloc((size_t)h->o.max_inflight, sizeof(CURL *));
	h->headers = base_headers(h, h->o.auth);
	*out = h;
	return 0;
}

void retl_http_free(retl_http *h)
{
	if (!h)
		return;
	struct retl_http_req *r;
	/* requests still held are the caller's to free; detach them */
	while ((r = pop(&h->wait_head, &h->wait_tail)))
		retl_http_req_free(r);
	while ((r = pop(&h->done_head, &h->done_tail)))
		retl_http_req_free(r);
	/* transfers still active belong to a caller that gave up early (the
	 * run stopped): their rows were not marked, drop them */
	for (size_t i = 0; i < h->nall; i++) {
		struct retl_http_req *a = NULL;
		curl_easy_getinfo(h->all[i], CURLINFO_PRIVATE, (char **)&a);
		if (a && a->easy == h->all[i]) {
			curl_multi_remove_handle(h->multi, h->all[i]);
			retl_http_req_free(a);
		}
		curl_easy_cleanup(h->all[i]);
	}
	curl_multi_cleanup(h->multi);
	curl_slist_free_all(h->headers);
	for (size_t i = 0; i < h->nold; i++)
		curl_slist_free_all(h->old_headers[i]);
	free(h->old_headers);
	free(h->idle);
	free(h->all);
	free(h->breaker);
	free(h);
}

void retl_http_set_auth(retl_http *h, const char *auth)
{
	/* transfers in flight keep using the old list until they finish */
	if (h->nactive) {
		struct curl_slist **old = retl_realloc(h->old_headers,
			(h->nold + 1) * sizeof(*old));
		old[h->nold++] = h->headers;
		h->old_headers = old;
	} else {
		curl_slist_free_all(h->headers);
	}
	h->headers = base_headers(h, auth);
}

struct retl_http_req *retl_http_req_new(void)
{
	struct retl_http_req *r = retl_calloc(1, sizeof(*r));
	return r;
}

void retl_http_req_free(struct retl_http_req *r)
{
	if (!r)
		return;
	free(r->url);
	free(r->retry_after);
	free(r->kept);
	curl_slist_free_all(r->hdrs);
	curl_slist_free_all(r->own);
	retl_buf_free(&r->body);
	retl_buf_free(&r->resp);
	free(r);
}

void retl_http_req_header(struct retl_http_req *r, const char *line)
{
	r->own = curl_slist_append(r->own, line);
}

void retl_http_submit(retl_http *h, struct retl_http_req *r)
{
	r->status = 0;
	r->error[0] = '\0';
	r->not_before = 0;
	push(&h->wait_head, &h->wait_tail, r);
	h->nwaiting++;
}

size_t retl_http_pending(const retl_http *h)
{
	return h->nwaiting + h->nactive + h->ndone;
}

const struct retl_http_stats *retl_http_stats(const retl_http *h)
{
	return &h->stats;
}

const char *retl_http_breaker(const retl_http *h)
{
	return h->breaker;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct retl_http_req *r = ud;
	size_t len = size * n;
	/* an answer past the cap is cut off here, before memory holds it:
	 * returning short makes curl abort with CURLE_WRITE_ERROR (resp.len
	 * never exceeds cap, so the subtraction cannot wrap) */
	if (len > r->cap - r->resp.len) {
		r->over_cap = 1;
		return 0;
	}
	retl_buf_add(&r->resp, p, len);
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct retl_http_req *r = ud;
	size_t len = size * n;
	static const char ra[] = "retry-after:";
	if (len > sizeof(ra) - 1 && !strncasecmp(p, ra, sizeof(ra) - 1)) {
		free(r->retry_after);
		size_t off = sizeof(ra) - 1;
		while (off < len && (p[off] == ' ' || p[off] == '\t'))
			off++;
		size_t end = len;
		while (end > off && (p[end - 1] == '\r' || p[end - 1] == '\n' ||
				     p[end - 1] == ' '))
			end--;
		r->retry_after = retl_strndup(p + off, end - off);
	}
	return len;
}

static void start(retl_http *h, struct retl_http_req *r)
{
	CURL *e;
	if (h->nidle) {
		e = h->idle[--h->nidle];
		curl_easy_reset(e);
	} else {
		e = curl_easy_init();
		h->all[h->nall++] = e;
	}
	retl_buf_reset(&r->resp);
	free(r->retry_after);
	r->retry_after = NULL;
	r->cap = r->max_resp > h->o.max_response ? r->max_resp : h->o.max_response;
	r->over_cap = 0;
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	if (r->content_type || r->own) {
		/* the engine's headers with this request's type and lines */
		struct curl_slist *l = NULL;
		if (r->content_type) {
			retl_buf ct = RETL_BUF_INIT;
			retl_buf_addf(&ct, "Content-Type: %s", r->content_type);
			l = curl_slist_append(l, ct.ptr);
			l = curl_slist_append(l, "Accept: */*");
			retl_buf_free(&ct);
		}
		for (struct curl_slist *x = h->headers; x; x = x->next)
			if (!r->content_type || (strncasecmp(x->data, "Content-Type:", 13) &&
						 strncasecmp(x->data, "Accept:", 7)))
				l = curl_slist_append(l, x->data);
		for (struct curl_slist *x = r->own; x; x = x->next)
			l = curl_slist_append(l, x->data);
		curl_slist_free_all(r->hdrs);
		r->hdrs = l;
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
	}
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	if (r->body.len || !strcmp(r->method, "POST") || !strcmp(r->method, "PATCH")) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, retl_buf_cstr(&r->body));
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
	}
	if (!strcmp(r->method, "GET"))
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->o.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->o.timeout_ms);
	/* an answer announced larger than the cap (Content-Length) is refused
	 * before its body is read; on_body catches the rest (chunked, gzip) */
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->cap);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "retl/0.1");
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
	/* libcurl silently re-sends a request whose reused connection died
	 * before any answer: harmless for a replayable request, a possible
	 * duplicate for a create.  Those get a connection of their own. */
	if (!r->idempotent)
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	/* peer and host verification are libcurl's defaults: never off */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	r->easy = e;
	r->attempts++;
	h->stats.requests++;
	if (r->attempts > 1)
		h->stats.retries++;
	curl_multi_add_handle(h->multi, e);
	h->nactive++;
}

static double jitter_backoff(const retl_http *h, int attempt)
{
	double cap = h->o.backoff_base;
	for (int i = 1; i < attempt && cap < h->o.backoff_cap; i++)
		cap *= 2;
	if (cap > h->o.backoff_cap)
		cap = h->o.backoff_cap;
	uint32_t rnd;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)rand();
	return cap * ((double)rnd / 4294967296.0);   /* full jitter */
}

/* seconds from a Retry-After value (delta-seconds; dates are treated as 1) */
static double retry_after_seconds(const char *v)
{
	if (!v)
		return -1;
	char *end;
	double s = strtod(v, &end);
	if (end == v || s < 0)
		return 1;
	return s > 300 ? 300 : s;
}

static long header_long(CURL *e, const char *name)
{
	struct curl_header *hd;
	if (!name || curl_easy_header(e, name, 0, CURLH_HEADER, -1, &hd) != CURLHE_OK)
		return -1;
	return strtol(hd->value, NULL, 10);
}

/* the debug line of a request sent again, "METHOD origin: what": the
 * URL's origin only (a webhook URL's path or query often holds a token) */
static void log_again(const struct retl_http_req *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void log_again(const struct retl_http_req *r, const char *fmt, ...)
{
	retl_buf o = RETL_BUF_INIT, what = RETL_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	retl_buf_vaddf(&what, fmt, ap);
	va_end(ap);
	retl_url_origin(r->url, &o);
	retl_log(RETL_LOG_DEBUG, NULL, "%s %s: %s", r->method, o.ptr, what.ptr);
	retl_buf_free(&o);
	retl_buf_free(&what);
}

/*
 * A transfer that ended with no answer: counted by the breaker, then
 * due for a retry (returns 1) or handed back as RETL_HTTP_TRANSPORT.
 */
static int no_answer(retl_http *h, struct retl_http_req *r, CURLcode code,
		     double now)
{
	h->stats.transport_errors++;
	if (r->over_cap || code == CURLE_FILESIZE_EXCEEDED) {
		snprintf(r->error, sizeof(r->error),
			 "the answer is larger than max_response_bytes (%zu bytes)",
			 r->cap);
		retl_buf_free(&r->resp);      /* up to cap bytes: give them back now */
	} else if (!r->error[0]) {
		snprintf(r->error, sizeof(r->error), "%s", curl_easy_strerror(code));
	}
	if (++h->failures >= h->o.max_failures && !h->breaker) {
		retl_buf m = RETL_BUF_INIT;
		retl_buf_addf(&m, "%d requests in a row got no answer (the last: %s)",
			      h->failures, r->error);
		h->breaker = retl_buf_detach(&m);
	}
	/* not connected at all: the request was never sent */
	int unsent = code == CURLE_COULDNT_CONNECT ||
		     code == CURLE_COULDNT_RESOLVE_HOST;
	if (!h->breaker && (r->idempotent || unsent) &&
	    r->attempts < h->o.max_attempts) {
		r->not_before = now + jitter_backoff(h, r->attempts);
		log_again(r, "%s; retrying", r->error);
		requeue(h, r);
		return 1;
	}
	r->status = RETL_HTTP_TRANSPORT;
	return 0;
}

static void finish(retl_http *h, CURL *e, CURLcode code)
{
	struct retl_http_req *r;
	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
	curl_multi_remove_handle(h->multi, e);
	h->nactive--;
	double now = retl_rate_now();
	long status = 0;
	if (code == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (code == CURLE_OK && h->o.rate) {
		long max = header_long(e, h->o.rate_max_header);
		long rem = header_long(e, h->o.rate_remaining_header);
		if (max > 0 || rem >= 0)
			retl_rate_observe(h->o.rate, now, (int)max, (int)rem);
	}
	if (code == CURLE_OK && h->o.keep_header) {
		struct curl_header *hd;
		free(r->kept);
		r->kept = NULL;
		if (curl_easy_header(e, h->o.keep_header, 0, CURLH_HEADER, -1,
				     &hd) == CURLHE_OK)
			r->kept = retl_strdup(hd->value);
	}
	curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
	h->idle[h->nidle++] = e;
	r->easy = NULL;
	if (code == CURLE_OK)
		h->failures = 0;        /* an answer, whatever its status */

	if (code != CURLE_OK) {
		if (no_answer(h, r, code, now))
			return;
	} else if (status == 429 && h->o.final_429 && h->o.final_429(r)) {
		/* a quota that waiting does not bring back (opts.final_429):
		 * handed back as it is, no retry and no pause; the caller
		 * stops the run */
		h->stats.http_429++;
		r->status = status;
	} else if (status == 429) {
		h->stats.http_429++;
		r->n429++;
		double ra = retry_after_seconds(r->retry_after);
		/* HubSpot sends no Retry-After: its rate headers (observed
		 * above) already hold the window; back off a little more */
		if (ra < 0)
			ra = jitter_backoff(h, r->n429);
		if (r->rate2)
			retl_rate_pause(r->rate2, now, ra);
		else if (h->o.rate)
			retl_rate_pause(h->o.rate, now, ra);
		if (r->n429 < h->o.max_429) {
			r->attempts--;          /* a 429 was not an attempt */
			r->not_before = now + ra;
			log_again(r, "429, waiting %.1f s", ra);
			requeue(h, r);
			return;
		}
		r->status = status;
	} else if (status >= 500 && r->idempotent && r->attempts < h->o.max_attempts) {
		r->not_before = now + jitter_backoff(h, r->attempts);
		log_again(r, "HTTP %ld; retrying", status);
		requeue(h, r);
		return;
	} else {
		r->status = status;
	}
	push(&h->done_head, &h->done_tail, r);
	h->ndone++;
}

static void stopped(retl_http *h, struct retl_http_req *r)
{
	r->status = RETL_HTTP_STOPPED;
	snprintf(r->error, sizeof(r->error), "the circuit breaker is open: %s",
		 h->breaker);
	push(&h->done_head, &h->done_tail, r);
	h->ndone++;
}

/* the breaker is open: transfers in flight are abandoned (their requests
 * may have been received; the caller treats them as unanswered) and
 * nothing queued goes out */
static void stop_all(retl_http *h)
{
	for (size_t i = 0; i < h->nall; i++) {
		struct retl_http_req *a = NULL;
		curl_easy_getinfo(h->all[i], CURLINFO_PRIVATE, (char **)&a);
		if (!a || a->easy != h->all[i])
			continue;
		curl_multi_remove_handle(h->multi, h->all[i]);
		curl_easy_setopt(h->all[i], CURLOPT_PRIVATE, NULL);
		h->idle[h->nidle++] = h->all[i];
		h->nactive--;
		a->easy = NULL;
		stopped(h, a);
	}
	struct retl_http_req *r;
	while ((r = pop(&h->wait_head, &h->wait_tail))) {
		h->nwaiting--;
		stopped(h, r);
	}
}

/* starts what may start; returns seconds until the next could (or 1) */
static double start_due(retl_http *h)
{
	double now = retl_rate_now(), next = 1.0;
	if (h->breaker) {
		stop_all(h);
		return next;
	}
	struct retl_http_req *prev = NULL, *r = h->wait_head;
	while (r && h->nactive < (size_t)h->o.max_inflight) {
		struct retl_http_req *nx = r->next;
		if (r->not_before > now) {
			if (r->not_before - now < next)
				next = r->not_before - now;
			if (h->o.ordered)
				break;      /* nothing overtakes it */
			prev = r;
			r = nx;
			continue;
		}
		double d = h->o.rate ? retl_rate_delay(h->o.rate, now) : 0;
		if (d > 0) {
			if (d < next)
				next = d;
			break;          /* nothing else may start before it */
		}
		double d2 = r->rate2 ? retl_rate_delay(r->rate2, now) : 0;
		if (d2 > 0) {
			/* only requests under the same second limit wait for
			 * it: the others may go first */
			if (d2 < next)
				next = d2;
			if (h->o.ordered)
				break;
			prev = r;
			r = nx;
			continue;
		}
		/* unlink r */
		if (prev)
			prev->next = nx;
		else
			h->wait_head = nx;
		if (h->wait_tail == r)
			h->wait_tail = prev;
		h->nwaiting--;
		if (h->o.budget >= 0 && h->stats.requests >= h->o.budget) {
			r->status = RETL_HTTP_BUDGET;
			snprintf(r->error, sizeof(r->error),
				 "daily_limit reached: the %ld requests left for today are spent; "
				 "the rest is sent by a run tomorrow (UTC)", h->o.budget);
			push(&h->done_head, &h->done_tail, r);
			h->ndone++;
		} else {
			if (h->o.rate)
				retl_rate_take(h->o.rate, now);
			if (r->rate2)
				retl_rate_take(r->rate2, now);
			start(h, r);
		}
		r = nx;
	}
	return next;
}

struct retl_http_req *retl_http_next(retl_http *h, int block)
{
	for (;;) {
		if (h->done_head) {
			h->ndone--;
			return pop(&h->done_head, &h->done_tail);
		}
		double wait = start_due(h);
		if (h->done_head)
			continue;
		if (!h->nactive && !h->nwaiting)
			return NULL;
		int running;
		curl_multi_perform(h->multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(h->multi, &left)))
			if (m->msg == CURLMSG_DONE)
				finish(h, m->easy_handle, m->data.result);
		if (h->breaker)
			stop_all(h);
		if (h->done_head)
			continue;
		if (!block)
			return NULL;
		int ms = (int)(wait * 1000) + 1;
		if (ms > 1000)
			ms = 1000;
		curl_multi_poll(h->multi, NULL, 0, ms, NULL);
	}
}

struct retl_http_req *retl_http_get(retl_http *h, const char *url)
{
	struct retl_http_req *req = retl_http_req_new();
	req->method = "GET";
	req->url = retl_strdup(url);
	req->idempotent = 1;
	retl_http_submit(h, req);
	struct retl_http_req *r;
	while ((r = retl_http_next(h, 1)) && r != req)
		retl_http_req_free(r);
	return req;
}

char *retl_http_reason(const struct retl_http_req *req)
{
	retl_buf b = RETL_BUF_INIT, red = RETL_BUF_INIT;
	if (req->status == RETL_HTTP_TRANSPORT)
		retl_buf_addf(&b, "no response after %d attempt%s: %s", req->attempts,
			      req->attempts == 1 ? "" : "s", req->error);
	else if (req->status == RETL_HTTP_BUDGET)
		retl_buf_addf(&b, "not sent: %s", req->error);
	else if (req->status == RETL_HTTP_STOPPED)
		retl_buf_addf(&b, "stopped: %s", req->error);
	else {
		/* at most 500 bytes, never half a UTF-8 character: the reason
		 * is stored, printed by `retl failures` and put in JSON logs */
		size_t n = retl_utf8_prefix_bytes(req->resp.ptr, req->resp.len, 500);
		retl_buf_addf(&b, "HTTP %ld", req->status);
		if (req->attempts > 1)
			retl_buf_addf(&b, " after %d attempts", req->attempts);
		if (n) {
			retl_buf_adds(&b, ": ");
			retl_buf_add(&b, req->resp.ptr, n);
		}
	}
	retl_redact_into(&red, retl_buf_cstr(&b), b.len);
	retl_buf_free(&b);
	return retl_buf_detach(&red);
}
