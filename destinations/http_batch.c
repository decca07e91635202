/*
 * http_batch.c - batches of rows through the HTTP engine, see http_batch.h.
 */
#include "http_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "redact.h"

struct retl_hb {
	retl_http *http;
	const struct retl_hb_ops *ops;
	void *dctx;
	size_t max;
	/* finished batches, handed back by wait() */
	struct retl_batch **done;
	size_t ndone, capdone;
	/* fan-out (retl_hb_fanout): jobs finished, not yet handed back */
	void (*sub_done)(void *dctx, struct retl_hb_sub *s);
	void (*job_free)(struct retl_hb_job *job);
	struct retl_hb_job *ready, *ready_tail;
};

/* what a request carries: its part of a batch */
struct part_req {
	struct retl_hb_part p;
	int resent;
};

retl_hb *retl_hb_new(retl_http *http, const struct retl_hb_ops *ops,
		     void *dctx, size_t max_per_request)
{
	retl_hb *hb = retl_calloc(1, sizeof(*hb));
	hb->http = http;
	hb->ops = ops;
	hb->dctx = dctx;
	hb->max = max_per_request ? max_per_request : 100;
	return hb;
}

void retl_hb_free(retl_hb *hb)
{
	if (!hb)
		return;
	while (hb->ready) {
		struct retl_hb_job *j = hb->ready;
		hb->ready = j->next;
		hb->job_free(j);
	}
	free(hb->done);
	free(hb);
}

void retl_hb_set(struct retl_result *r, enum retl_result_kind kind,
		 const char *dest_id, const char *reason)
{
	free(r->dest_id);
	free(r->reason);
	r->kind = kind;
	r->dest_id = dest_id ? retl_strdup(dest_id) : NULL;
	r->reason = reason ? retl_strdup(reason) : NULL;
}

char *retl_hb_reason(const struct retl_http_req *req)
{
	retl_buf b = RETL_BUF_INIT, red = RETL_BUF_INIT;
	if (req->status == RETL_HTTP_TRANSPORT)
		retl_buf_addf(&b, "no response after %d attempt%s: %s", req->attempts,
			      req->attempts == 1 ? "" : "s", req->error);
	else if (req->status == RETL_HTTP_BUDGET)
		retl_buf_addf(&b, "not sent: %s", req->error);
	else {
		size_t n = req->resp.len > 500 ? 500 : req->resp.len;
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

static int send_part(retl_hb *hb, struct retl_batch *b, size_t *idx, size_t n,
		     int resent, struct retl_err *err)
{
	struct part_req *pr = retl_calloc(1, sizeof(*pr));
	pr->resent = resent;
	pr->p.b = b;
	pr->p.idx = retl_malloc(n * sizeof(size_t));
	memcpy(pr->p.idx, idx, n * sizeof(size_t));
	pr->p.n = n;
	struct retl_http_req *req = retl_http_req_new();
	req->ud = pr;
	if (hb->ops->encode(hb->dctx, &pr->p, req, err) < 0) {
		free(pr->p.idx);
		free(pr);
		retl_http_req_free(req);
		return -1;
	}
	b->outstanding++;
	retl_http_submit(hb->http, req);
	return 0;
}

static void push_done(retl_hb *hb, struct retl_batch *b)
{
	if (hb->ndone == hb->capdone) {
		hb->capdone = hb->capdone ? hb->capdone * 2 : 8;
		hb->done = retl_realloc(hb->done, hb->capdone * sizeof(*hb->done));
	}
	hb->done[hb->ndone++] = b;
}

int retl_hb_submit(retl_hb *hb, struct retl_batch *b, struct retl_err *err)
{
	size_t *idx = retl_malloc((b->n ? b->n : 1) * sizeof(size_t));
	for (size_t i = 0; i < b->n; i++)
		idx[i] = i;
	int rc = 0;
	/* held while submitting, so a batch with nothing to send (or whose
	 * encode failed) still comes back through wait() */
	b->outstanding = 1;
	for (size_t off = 0; off < b->n && rc == 0; off += hb->max) {
		size_t n = b->n - off < hb->max ? b->n - off : hb->max;
		rc = send_part(hb, b, idx + off, n, 0, err);
	}
	free(idx);
	if (--b->outstanding == 0)
		push_done(hb, b);
	return rc;
}

static void set_all(const struct retl_hb_part *p, enum retl_result_kind kind,
		    const char *reason)
{
	for (size_t i = 0; i < p->n; i++)
		retl_hb_set(&p->b->results[p->idx[i]], kind, NULL, reason);
}

static void fatal(struct retl_batch *b, int code, const char *msg)
{
	if (b->fatal)
		return;
	b->fatal = 1;
	b->fatal_code = code;
	snprintf(b->fatal_msg, sizeof(b->fatal_msg), "%s", msg);
}

/* decodes one finished request; may submit halves */
static void settle(retl_hb *hb, struct retl_http_req *req)
{
	struct part_req *pr = req->ud;
	struct retl_hb_part *p = &pr->p;
	struct retl_batch *b = p->b;
	struct retl_err err;
	retl_err_clear(&err);

	if (req->status == RETL_HTTP_BUDGET) {
		char *why = retl_hb_reason(req);
		fatal(b, RETL_EXIT_DEST, why);
		set_all(p, RETL_RES_RETRY, why);
		free(why);
	} else if (req->status == RETL_HTTP_TRANSPORT || req->status >= 500 ||
		   req->status == 429) {
		/* the engine gave up: not done, sent again next run */
		char *why = retl_hb_reason(req);
		set_all(p, RETL_RES_RETRY, why);
		free(why);
	} else {
		enum retl_hb_verdict v = hb->ops->decode(hb->dctx, p, req, &err);
		if (v == RETL_HB_SPLIT && p->n > 1) {
			size_t half = p->n / 2;
			if (send_part(hb, b, p->idx, half, 0, &err) < 0 ||
			    send_part(hb, b, p->idx + half, p->n - half, 0, &err) < 0)
				fatal(b, err.code ? err.code : RETL_EXIT_DEST, err.msg);
		} else if (v == RETL_HB_SPLIT) {
			char *why = retl_hb_reason(req);
			set_all(p, RETL_RES_REJECT, why);
			free(why);
		} else if (v == RETL_HB_RESEND && !pr->resent) {
			if (send_part(hb, b, p->idx, p->n, 1, &err) < 0)
				fatal(b, err.code ? err.code : RETL_EXIT_DEST, err.msg);
		} else if (v == RETL_HB_RESEND) {
			char *why = retl_hb_reason(req);
			fatal(b, RETL_EXIT_DEST, why);
			free(why);
		} else if (v == RETL_HB_FATAL) {
			fatal(b, err.code ? err.code : RETL_EXIT_DEST, err.msg);
		}
	}
	if (--b->outstanding == 0)
		push_done(hb, b);
	free(p->idx);
	free(pr);
	retl_http_req_free(req);
}

struct retl_batch *retl_hb_wait(retl_hb *hb, int block)
{
	for (;;) {
		if (hb->ndone) {
			struct retl_batch *b = hb->done[0];
			memmove(hb->done, hb->done + 1, (hb->ndone - 1) * sizeof(*hb->done));
			hb->ndone--;
			return b;
		}
		struct retl_http_req *req = retl_http_next(hb->http, block);
		if (!req)
			return NULL;
		settle(hb, req);
	}
}

/* ---- fan-out: one outer batch, one or more sub-batches ---- */

void retl_hb_fanout(retl_hb *hb,
		    void (*sub_done)(void *dctx, struct retl_hb_sub *s),
		    void (*job_free)(struct retl_hb_job *job))
{
	hb->sub_done = sub_done;
	hb->job_free = job_free;
}

struct retl_hb_sub *retl_hb_sub_new(struct retl_hb_job *job, int kind,
				    size_t cap, size_t size)
{
	struct retl_hb_sub *s = retl_calloc(1, size);
	if (!cap)
		cap = 1;
	s->kind = kind;
	s->job = job;
	s->oidx = retl_calloc(cap, sizeof(*s->oidx));
	s->ops = retl_calloc(cap, sizeof(*s->ops));
	s->b.ops = s->ops;
	s->b.results = retl_calloc(cap, sizeof(*s->b.results));
	s->b.engine = s;
	return s;
}

void retl_hb_sub_add(struct retl_hb_sub *s, size_t oi)
{
	s->ops[s->b.n] = s->job->outer->ops[oi];
	s->oidx[s->b.n] = oi;
	s->b.n++;
}

void retl_hb_sub_free(struct retl_hb_sub *s)
{
	if (!s)
		return;
	if (s->fini)
		s->fini(s);
	for (size_t i = 0; i < s->b.n; i++) {
		free(s->b.results[i].dest_id);
		free(s->b.results[i].reason);
	}
	free(s->b.results);
	free(s->oidx);
	free(s->ops);
	free(s);
}

void retl_hb_sub_take(struct retl_hb_sub *s, size_t i)
{
	struct retl_result *r = &s->b.results[i];
	struct retl_result *o = &s->job->outer->results[s->oidx[i]];
	free(o->dest_id);
	free(o->reason);
	*o = *r;
	r->dest_id = NULL;
	r->reason = NULL;
}

void retl_hb_job_fatal(struct retl_hb_job *job, int code, const char *msg)
{
	struct retl_batch *b = job->outer;
	if (b->fatal)
		return;
	b->fatal = 1;
	b->fatal_code = code ? code : RETL_EXIT_DEST;
	snprintf(b->fatal_msg, sizeof(b->fatal_msg), "%s", msg);
}

void retl_hb_sub_submit(retl_hb *hb, struct retl_hb_sub *s, const char *msg)
{
	struct retl_err e;
	if (!s->b.n) {
		retl_hb_sub_free(s);
		return;
	}
	retl_err_clear(&e);
	s->job->remaining++;
	if (retl_hb_submit(hb, &s->b, &e) == 0)
		return;
	/* the batch layer still hands s back once its sent parts are done */
	retl_hb_job_fatal(s->job, e.code, e.msg[0] ? e.msg : msg);
}

static void job_ready(retl_hb *hb, struct retl_hb_job *job)
{
	job->next = NULL;
	if (hb->ready_tail)
		hb->ready_tail->next = job;
	else
		hb->ready = job;
	hb->ready_tail = job;
}

void retl_hb_job_submitted(retl_hb *hb, struct retl_hb_job *job)
{
	if (!job->remaining)
		job_ready(hb, job);
}

struct retl_batch *retl_hb_job_wait(retl_hb *hb, int block)
{
	for (;;) {
		if (hb->ready) {
			struct retl_hb_job *job = hb->ready;
			hb->ready = job->next;
			if (!hb->ready)
				hb->ready_tail = NULL;
			struct retl_batch *b = job->outer;
			hb->job_free(job);
			return b;
		}
		struct retl_batch *ib = retl_hb_wait(hb, block);
		if (!ib)
			return NULL;
		struct retl_hb_sub *s = ib->engine;
		struct retl_hb_job *job = s->job;
		hb->sub_done(hb->dctx, s);
		if (--job->remaining == 0)
			job_ready(hb, job);
	}
}

void retl_hb_stats(const retl_http *http, struct retl_dest_stats *s)
{
	const struct retl_http_stats *h = http ? retl_http_stats(http) : NULL;
	s->api_calls = h ? h->requests : 0;
	s->retries = h ? h->retries : 0;
	s->http_429 = h ? h->http_429 : 0;
}
