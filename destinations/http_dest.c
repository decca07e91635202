/*
 * http_dest.c - the HTTP destinations' base, see http_dest.h.
 *
 * A batch, while the base holds it, carries a struct held (b->dest): the
 * ops' prepared bodies and match values, how many of its requests are
 * still out, and the ops a decode asked to send again.  Requests are
 * linked in a list so close() can free the ones a stopped run left.
 */
#include "http_dest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "url.h"

struct slot {
	size_t body_off, body_len, id_off, id_len;
	int kind;
	int tries;
	int queued;               /* in again[] for after this decode */
};

struct held {
	int outstanding;          /* requests out, +1 while submitting */
	retl_buf bodies, ids;
	struct slot *slot;
	size_t *again;            /* ops to send again after this decode */
	int *again_kind;
	size_t nagain;
};

static struct held *held_of(const struct retl_batch *b)
{
	return b->dest;
}

static void held_free(struct retl_batch *b)
{
	struct held *h = b->dest;
	if (!h)
		return;
	retl_buf_free(&h->bodies);
	retl_buf_free(&h->ids);
	free(h->slot);
	free(h->again);
	free(h->again_kind);
	free(h);
	b->dest = NULL;
}

/* ---- requests ---- */

static void unlink_req(struct retl_http_dest *d, struct retl_request *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		d->live = r->next;
	if (r->next)
		r->next->prev = r->prev;
}

static void req_free(struct retl_request *r)
{
	free(r->idx);
	free(r);
}

/* encodes and queues a request for ops idx[0..n) of b */
static int send_req(struct retl_http_dest *d, struct retl_batch *b, int kind,
		    const size_t *idx, size_t n, int resent, struct retl_err *err)
{
	struct retl_request *r = retl_calloc(1, sizeof(*r));
	r->batch = b;
	r->kind = kind;
	r->n = n;
	r->resent = resent;
	r->idx = retl_malloc(n * sizeof(size_t));
	memcpy(r->idx, idx, n * sizeof(size_t));
	r->http = retl_http_req_new();
	r->http->ud = r;
	if (d->ops->encode(d, r, err) < 0) {
		retl_http_req_free(r->http);
		req_free(r);
		return -1;
	}
	r->next = d->live;
	if (d->live)
		d->live->prev = r;
	d->live = r;
	held_of(b)->outstanding++;
	retl_http_submit(d->http, r->http);
	return 0;
}

static size_t max_ops(struct retl_http_dest *d, int kind)
{
	size_t m = d->ops->ops_per_request ? d->ops->ops_per_request(d, kind) :
		   d->ops->max_ops;
	return m ? m : 100;
}

/* sends ops idx[0..n) of one kind, max_ops a request */
static int send_kind(struct retl_http_dest *d, struct retl_batch *b, int kind,
		     const size_t *idx, size_t n, struct retl_err *err)
{
	size_t m = max_ops(d, kind);
	for (size_t off = 0; off < n; off += m)
		if (send_req(d, b, kind, idx + off, n - off < m ? n - off : m, 0, err) < 0)
			return -1;
	return 0;
}

/* the ops of b whose kind is k (among `of`, or all) into idx; returns n */
static size_t gather(const size_t *of, const int *kinds, size_t nof, int k,
		     size_t *idx)
{
	size_t n = 0;
	for (size_t j = 0; j < nof; j++)
		if (kinds[j] == k)
			idx[n++] = of ? of[j] : j;
	return n;
}

/* sends the given ops grouped by kind, the lowest kind first */
static int send_grouped(struct retl_http_dest *d, struct retl_batch *b,
			const size_t *of, const int *kinds, size_t nof,
			struct retl_err *err)
{
	int top = -1;
	for (size_t j = 0; j < nof; j++)
		if (kinds[j] > top)
			top = kinds[j];
	size_t *idx = retl_malloc((nof ? nof : 1) * sizeof(size_t));
	int rc = 0;
	for (int k = 0; k <= top && rc == 0; k++) {
		size_t n = gather(of, kinds, nof, k, idx);
		if (n)
			rc = send_kind(d, b, k, idx, n, err);
	}
	free(idx);
	return rc;
}

/* ---- submit / settle / wait ---- */

void retl_hd_ready(struct retl_http_dest *d, struct retl_batch *b)
{
	if (d->nready == d->capready) {
		d->capready = d->capready ? d->capready * 2 : 8;
		d->ready = retl_realloc(d->ready, d->capready * sizeof(*d->ready));
	}
	d->ready[d->nready++] = b;
}

static void release(struct retl_http_dest *d, struct retl_batch *b)
{
	if (--held_of(b)->outstanding > 0)
		return;
	held_free(b);
	retl_hd_ready(d, b);
}

/* prepares op i: its kind, or < 0 when it needs no request */
static int prepare(struct retl_http_dest *d, struct retl_batch *b, size_t i,
		   retl_buf *reason)
{
	struct held *h = held_of(b);
	struct slot *s = &h->slot[i];
	retl_buf_reset(reason);
	s->body_off = h->bodies.len;
	s->id_off = h->ids.len;
	int k = d->ops->prepare(d, b, i, &h->bodies, &h->ids, reason);
	if (k < 0) {
		/* nothing to send: what prepare wrote is of no use */
		retl_buf_truncate(&h->bodies, s->body_off);
		retl_buf_truncate(&h->ids, s->id_off);
	}
	s->body_len = h->bodies.len - s->body_off;
	s->id_len = h->ids.len - s->id_off;
	if (k == RETL_HD_REJECT)
		retl_result_set(&b->results[i], RETL_RES_REJECT, NULL,
				reason->len ? reason->ptr : "rejected");
	s->kind = k;
	return k;
}

int retl_hd_submit(void *ctx, struct retl_batch *b, struct retl_err *err)
{
	struct retl_http_dest *d = ctx;
	struct held *h = retl_calloc(1, sizeof(*h));
	retl_buf reason = RETL_BUF_INIT;
	int *kinds = retl_malloc((b->n ? b->n : 1) * sizeof(int));

	b->dest = h;
	h->slot = retl_calloc(b->n ? b->n : 1, sizeof(*h->slot));
	h->again = retl_malloc((b->n ? b->n : 1) * sizeof(size_t));
	h->again_kind = retl_malloc((b->n ? b->n : 1) * sizeof(int));
	/* held while submitting, so a batch with nothing to send (or whose
	 * encode failed) still comes back through wait() */
	h->outstanding = 1;
	for (size_t i = 0; i < b->n; i++)
		kinds[i] = prepare(d, b, i, &reason);
	retl_buf_free(&reason);
	int rc = send_grouped(d, b, NULL, kinds, b->n, err);
	if (rc < 0)
		retl_batch_fatal(b, err->code, err->msg);
	free(kinds);
	release(d, b);
	return rc;
}

static void fatal_reason(struct retl_request *r, int code)
{
	char *why = retl_req_reason(r);
	retl_batch_fatal(r->batch, code, why);
	free(why);
}

/*
 * A request with no answer at all (refused, reset, timed out, TLS, over
 * max_response_bytes; or abandoned by the open breaker): its ops are not
 * done.  With the breaker open the run stops (exit 4) and the rest waits
 * for the next run; otherwise the run goes on and ends with exit 4, the
 * ops counted in b->unanswered (README, exit codes).
 */
static enum retl_hd_verdict unanswered(struct retl_http_dest *d,
				       struct retl_request *r)
{
	struct retl_batch *b = r->batch;
	const char *open = retl_http_breaker(d->http);
	char *why = retl_req_reason(r);
	retl_req_set_all(r, RETL_RES_RETRY, why);
	if (open) {
		retl_buf m = RETL_BUF_INIT;
		retl_buf_addf(&m, "destination %s (%s): %s; the run stops here "
			      "(the circuit breaker: max_transport_failures) and "
			      "what was not sent is sent by the next run",
			      d->dc->name, d->type, open);
		retl_batch_fatal(b, RETL_EXIT_DEST, m.ptr);
		retl_buf_free(&m);
	} else {
		if (!b->unanswered)
			snprintf(b->unanswered_why, sizeof(b->unanswered_why), "%s", why);
		b->unanswered += r->n;
	}
	free(why);
	return RETL_HD_DONE;
}

static enum retl_hd_verdict answer(struct retl_http_dest *d, struct retl_request *r,
				   struct retl_err *err)
{
	long st = r->http->status;
	if (st == RETL_HTTP_BUDGET) {
		char *why = retl_req_reason(r);
		retl_batch_fatal(r->batch, RETL_EXIT_DEST, why);
		retl_req_set_all(r, RETL_RES_RETRY, why);
		free(why);
		return RETL_HD_DONE;
	}
	if (st == RETL_HTTP_TRANSPORT || st == RETL_HTTP_STOPPED)
		return unanswered(d, r);
	if (st >= 500 || st == 429) {
		if (d->ops->transient)
			return d->ops->transient(d, r, err);
		/* the engine gave up: not done, sent again next run */
		char *why = retl_req_reason(r);
		retl_req_set_all(r, RETL_RES_RETRY, why);
		free(why);
		return RETL_HD_DONE;
	}
	return d->ops->decode(d, r, err);
}

/* ops a decode asked to send again, by their new kind */
static void send_again(struct retl_http_dest *d, struct retl_batch *b)
{
	struct held *h = held_of(b);
	struct retl_err e;
	size_t n = h->nagain;
	h->nagain = 0;
	for (size_t j = 0; j < n; j++)
		h->slot[h->again[j]].queued = 0;
	if (!n || b->fatal)
		return;
	retl_err_clear(&e);
	if (send_grouped(d, b, h->again, h->again_kind, n, &e) < 0)
		retl_batch_fatal(b, e.code, e.msg);
}

static void settle(struct retl_http_dest *d, struct retl_request *r)
{
	struct retl_batch *b = r->batch;
	struct retl_err err;
	retl_err_clear(&err);

	enum retl_hd_verdict v = answer(d, r, &err);
	if (v == RETL_HD_SPLIT && r->n > 1) {
		size_t half = r->n / 2;
		if (send_req(d, b, r->kind, r->idx, half, 0, &err) < 0 ||
		    send_req(d, b, r->kind, r->idx + half, r->n - half, 0, &err) < 0)
			retl_batch_fatal(b, err.code, err.msg);
	} else if (v == RETL_HD_SPLIT) {
		char *why = retl_req_reason(r);
		retl_req_set_all(r, RETL_RES_REJECT, why);
		free(why);
	} else if (v == RETL_HD_RESEND && !r->resent) {
		if (send_req(d, b, r->kind, r->idx, r->n, 1, &err) < 0)
			retl_batch_fatal(b, err.code, err.msg);
	} else if (v == RETL_HD_RESEND) {
		fatal_reason(r, RETL_EXIT_DEST);
	} else if (v == RETL_HD_FATAL) {
		retl_batch_fatal(b, err.code, err.msg);
	}
	send_again(d, b);
	unlink_req(d, r);
	retl_http_req_free(r->http);
	req_free(r);
	release(d, b);
}

/* fill (tests only, see retl_hd_wait_answered) writes each request's
 * answer before it is decoded */
static struct retl_batch *wait_for(struct retl_http_dest *d, int block,
				   void (*fill)(void *ud, struct retl_http_req *req),
				   void *ud)
{
	for (;;) {
		if (d->nready) {
			struct retl_batch *b = d->ready[0];
			memmove(d->ready, d->ready + 1, (d->nready - 1) * sizeof(*d->ready));
			d->nready--;
			return b;
		}
		struct retl_http_req *http = d->http ? retl_http_next(d->http, block) : NULL;
		if (!http)
			return NULL;
		if (fill)
			fill(ud, http);
		settle(d, http->ud);
	}
}

struct retl_batch *retl_hd_wait(void *ctx, int block)
{
	return wait_for(ctx, block, NULL, NULL);
}

struct retl_batch *retl_hd_wait_answered(void *ctx,
		void (*fill)(void *ud, struct retl_http_req *req), void *ud)
{
	return wait_for(ctx, 1, fill, ud);
}

/* ---- open / close / stats ---- */

const char *const retl_hd_base_keys[] = {
	"type", "base_url", "max_response_bytes", "max_transport_failures", NULL
};

static void open_fields(struct retl_http_dest *d, const struct retl_sync_cfg *sc)
{
	d->nf = sc && sc->mapping ? retl_mapping_nfields(sc->mapping) : 0;
	d->ftarget = retl_calloc(d->nf ? d->nf : 1, sizeof(*d->ftarget));
	d->fkey = retl_calloc(d->nf ? d->nf : 1, sizeof(*d->fkey));
	d->ftype = retl_calloc(d->nf ? d->nf : 1, sizeof(*d->ftype));
	for (size_t i = 0; i < d->nf; i++) {
		const char *t = retl_mapping_field_target(sc->mapping, i);
		retl_buf k = RETL_BUF_INIT;
		retl_buf_add_json_str(&k, t, strlen(t));
		d->ftarget[i] = t;
		d->fkey[i] = retl_strndup(k.ptr + 1, k.len - 2);
		d->ftype[i] = retl_mapping_field_type(sc->mapping, i);
		retl_buf_free(&k);
	}
}

static void free_lines(char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
}

static void wipe(char *s)
{
	if (s) {
		memset(s, 0, strlen(s));
		free(s);
	}
}

int retl_hd_open(void **out, const struct retl_hd_ops *ops,
		 const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		 const struct retl_dest_env *env, struct retl_err *err)
{
	struct retl_hd_opts o;
	long inflight, timeout, max_resp, max_fail;
	*out = NULL;
	memset(&o, 0, sizeof(o));
	if (ops->validate(dc, err) < 0)
		return -1;
	if (ops->options(dc, sc, &o, err) < 0) {
		free(o.url);
		wipe(o.auth);
		free_lines(o.headers);
		return -1;
	}
	struct retl_http_dest *d = retl_calloc(1, ops->ctx_size);
	const char *url = dc->base_url ? dc->base_url : o.url ? o.url : ops->default_url;
	d->ops = ops;
	d->type = ops->type;
	d->dc = dc;
	d->sc = sc;
	d->object = sc->object;
	d->mode = sc->mode;
	if (env)
		d->env = *env;
	d->auth = o.auth;
	d->headers = o.headers;
	if (url) {
		size_t n = strlen(url);
		while (n && url[n - 1] == '/')
			n--;
		d->url = retl_strndup(url, n);
	}
	free(o.url);
	open_fields(d, sc);
	if (retl_dest_opt_int(dc, ops->inflight_key ? ops->inflight_key : "max_inflight",
			      ops->inflight, ops->inflight_max, &inflight, err) < 0 ||
	    retl_dest_opt_int(dc, "timeout", ops->timeout, 0, &timeout, err) < 0 ||
	    retl_dest_opt_int(dc, "max_response_bytes", (long)RETL_HTTP_MAX_RESPONSE,
			      0, &max_resp, err) < 0 ||
	    retl_dest_opt_int(dc, "max_transport_failures", 0, 100000, &max_fail,
			      err) < 0)
		goto fail;
	struct retl_http_opts ho = o.http;
	ho.max_inflight = (int)inflight;
	ho.timeout_ms = timeout * 1000;
	ho.max_response = (size_t)max_resp;
	ho.max_failures = (int)max_fail;    /* 0: the engine's default */
	ho.auth = d->auth;
	ho.headers = (const char *const *)d->headers;
	ho.budget = env ? env->api_budget : -1;
	if (retl_http_new(&d->http, &ho, err) < 0)
		goto fail;
	if (ops->setup && ops->setup(d, err) < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	retl_err_code(err, RETL_EXIT_USAGE);
	retl_hd_close(d);
	return -1;
}

void retl_hd_close(void *ctx)
{
	struct retl_http_dest *d = ctx;
	if (!d)
		return;
	if (d->ops && d->ops->fini)
		d->ops->fini(d);
	/* requests a stopped run left: the engine frees their wire part */
	while (d->live) {
		struct retl_request *r = d->live;
		unlink_req(d, r);
		struct held *h = held_of(r->batch);
		if (h && --h->outstanding == 0)
			held_free(r->batch);
		req_free(r);
	}
	retl_http_free(d->http);
	free(d->ready);
	wipe(d->auth);
	free_lines(d->headers);
	free(d->url);
	for (size_t i = 0; d->fkey && i < d->nf; i++)
		free(d->fkey[i]);
	free(d->fkey);
	free(d->ftarget);
	free(d->ftype);
	free(d);
}

int retl_hd_field_named(const struct retl_http_dest *d, const char *name, size_t n)
{
	for (size_t i = 0; i < d->nf; i++)
		if (strlen(d->fkey[i]) == n && !memcmp(d->fkey[i], name, n))
			return (int)i;
	return -1;
}

int retl_hd_match_one(const struct retl_http_dest *d,
		      const struct retl_hd_match_words *w, const char **field,
		      struct retl_err *err)
{
	const struct retl_sync_cfg *sc = d->sc;
	*field = NULL;
	if (!sc->match) {
		if (sc->mode == RETL_MODE_UPDATE)
			return 0;
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: match: missing; the %s destination in mode \"%s\" needs {\"%s\": \"<column>\"}, e.g. %s",
				    sc->file, d->type, retl_mode_name(sc->mode), w->placeholder,
				    w->example);
	}
	if (json_object_size(sc->match) != 1)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: match: %s finds records by exactly one %s (got %zu)",
				    sc->file, w->vendor, w->field, json_object_size(sc->match));
	const char *f = json_object_iter_key(json_object_iter(sc->match));
	const char *col = json_string_value(json_object_iter_value(json_object_iter(sc->match)));
	if (retl_hd_field(d, f) < 0)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "%s: match.%s: \"%s\" is not a mapped field; %s needs its value %s: add \"%s\": \"%s\" to fields",
				    sc->file, f, f, w->vendor, w->carries, f, col ? col : f);
	*field = f;
	return 0;
}

int retl_hd_field(const struct retl_http_dest *d, const char *target)
{
	for (size_t i = 0; i < d->nf; i++)
		if (!strcmp(d->ftarget[i], target))
			return (int)i;
	return -1;
}

void retl_hd_stats(void *ctx, struct retl_dest_stats *s)
{
	struct retl_http_dest *d = ctx;
	const struct retl_http_stats *h = d && d->http ? retl_http_stats(d->http) : NULL;
	s->api_calls = h ? h->requests : 0;
	s->retries = h ? h->retries : 0;
	s->http_429 = h ? h->http_429 : 0;
}

/* ---- for encode and decode ---- */

const struct retl_op *retl_req_op(const struct retl_request *r, size_t k)
{
	return &r->batch->ops[r->idx[k]];
}

const char *retl_req_body(const struct retl_request *r, size_t k, size_t *len)
{
	const struct held *h = held_of(r->batch);
	const struct slot *s = &h->slot[r->idx[k]];
	*len = s->body_len;
	return h->bodies.ptr ? h->bodies.ptr + s->body_off : "";
}

const char *retl_req_id(const struct retl_request *r, size_t k, size_t *len)
{
	const struct held *h = held_of(r->batch);
	const struct slot *s = &h->slot[r->idx[k]];
	*len = s->id_len;
	return h->ids.ptr ? h->ids.ptr + s->id_off : "";
}

struct retl_result *retl_req_result(const struct retl_request *r, size_t k)
{
	return &r->batch->results[r->idx[k]];
}

void retl_req_set(struct retl_request *r, size_t k, enum retl_result_kind kind,
		  const char *dest_id, const char *reason)
{
	retl_result_set(retl_req_result(r, k), kind, dest_id, reason);
}

void retl_req_set_all(struct retl_request *r, enum retl_result_kind kind,
		      const char *reason)
{
	for (size_t k = 0; k < r->n; k++)
		retl_req_set(r, k, kind, NULL, reason);
}

void retl_req_again(struct retl_request *r, size_t k, int kind)
{
	struct held *h = held_of(r->batch);
	size_t i = r->idx[k];
	/* once per decode: an answer that names a record twice (a hostile or
	 * broken server; found by fuzz_mailchimp) must not queue its op twice,
	 * again[] holds one place per op */
	if (h->slot[i].queued)
		return;
	h->slot[i].queued = 1;
	h->slot[i].tries++;
	h->again[h->nagain] = i;
	h->again_kind[h->nagain++] = kind;
}

int retl_req_tries(const struct retl_request *r, size_t k)
{
	return held_of(r->batch)->slot[r->idx[k]].tries;
}

void retl_req_add_bodies(const struct retl_request *r, retl_buf *o)
{
	size_t len;
	for (size_t k = 0; k < r->n; k++) {
		const char *b = retl_req_body(r, k, &len);
		if (k)
			retl_buf_addc(o, ',');
		retl_buf_add(o, b, len);
	}
}

char *retl_req_reason(const struct retl_request *r)
{
	return retl_http_reason(r->http);
}

struct retl_http_req *retl_hd_get(struct retl_http_dest *d, const char *path)
{
	retl_buf url = RETL_BUF_INIT;
	retl_buf_addf(&url, "%s%s", d->url, path);
	struct retl_http_req *req = retl_http_get(d->http, url.ptr);
	retl_buf_free(&url);
	return req;
}

/* ---- for check() ---- */

int retl_hd_answered(const struct retl_http_dest *d, const struct retl_http_req *req,
		     const char *what, const char *why, struct retl_err *err)
{
	if (req->status == 200)
		return 0;
	char *r = why ? NULL : retl_http_reason(req);
	if (!why)
		why = r;
	if (req->status <= 0) {
		retl_buf o = RETL_BUF_INIT;
		retl_url_origin(d->url, &o);   /* never a webhook's path */
		retl_err_set(err, RETL_EXIT_DEST, "%s: cannot reach %s: %s", d->type, o.ptr,
			     req->error[0] ? req->error : (why ? why : "no response"));
		retl_buf_free(&o);
	}
	else
		retl_err_set(err, RETL_EXIT_DEST, "%s: GET %s: %s", d->type, what,
			     why ? why : "unexpected response");
	free(r);
	return -1;
}

json_t *retl_hd_answer_array(const struct retl_http_dest *d,
			     const struct retl_http_req *req, const char *what,
			     const char *member, json_t **root, struct retl_err *err)
{
	json_error_t je;
	*root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	json_t *a = json_object_get(*root, member);
	if (json_is_array(a))
		return a;
	retl_err_set(err, RETL_EXIT_DEST, "%s: GET %s: no \"%s\" in the response",
		     d->type, what, member);
	return NULL;
}

void retl_hd_problem(retl_buf *probs, const char *fmt, ...)
{
	va_list ap;
	if (probs->len)
		retl_buf_addc(probs, '\n');
	va_start(ap, fmt);
	retl_buf_vaddf(probs, fmt, ap);
	va_end(ap);
}

void retl_hd_did_you_mean(retl_buf *probs, const char *s)
{
	if (s)
		retl_buf_addf(probs, " (did you mean \"%s\"?)", s);
}

int retl_hd_problems(retl_buf *probs, int looked, struct retl_err *err)
{
	int rc = looked ? 0 : -1;
	if (looked && probs->len)
		rc = retl_err_set(err, RETL_EXIT_USAGE, "%s", probs->ptr);
	retl_buf_free(probs);
	return rc;
}
