/*
 * http_batch.h - what every HTTP destination shares: a batch of rows
 * becomes one or more requests through the HTTP engine, and comes back as
 * per-row results.
 *
 * A destination supplies encode (rows -> request) and decode (response ->
 * per-row results).  This layer does the rest:
 *   - splits a batch into requests of at most max_per_request rows;
 *   - when decode says a request was refused as a whole because of some of
 *     its rows (SPLIT), sends each half again, until the bad rows stand
 *     alone and the good ones are acknowledged;
 *   - a request the engine gave up on (5xx or transport errors after all
 *     attempts) leaves its rows not done (RETL_RES_RETRY, with the last
 *     error): nothing is marked, the next run sends them again;
 *   - a request over the run's budget makes the batch fatal (exit 4);
 *   - hands a batch back once all its requests are decoded.
 */
#ifndef RETL_HTTP_BATCH_H
#define RETL_HTTP_BATCH_H

#include "destination.h"
#include "http.h"

/* some rows of a batch: the ones one request carries */
struct retl_hb_part {
	struct retl_batch *b;
	size_t *idx;              /* indexes into b->ops / b->results */
	size_t n;
};

enum retl_hb_verdict {
	RETL_HB_DONE,             /* every row of the part has its result */
	RETL_HB_SPLIT,            /* refused as a whole: send halves (n > 1) */
	RETL_HB_FATAL,            /* the run must stop; err says why (code 4) */
	RETL_HB_RESEND,           /* send the same part again, once (e.g. after
				   * the destination refreshed an expired token
				   * with retl_http_set_auth); a second RESEND of
				   * the same part is FATAL */
};

struct retl_hb_ops {
	/* fills req->method, url, body, idempotent for the part's rows */
	int (*encode)(void *dctx, const struct retl_hb_part *p,
		      struct retl_http_req *req, struct retl_err *err);
	/* reads a 2xx/4xx response into the part's results (results are
	 * strings the engine frees: retl_strdup them) */
	enum retl_hb_verdict (*decode)(void *dctx, const struct retl_hb_part *p,
				       const struct retl_http_req *req,
				       struct retl_err *err);
};

typedef struct retl_hb retl_hb;

retl_hb *retl_hb_new(retl_http *http, const struct retl_hb_ops *ops,
		     void *dctx, size_t max_per_request);
void retl_hb_free(retl_hb *hb);
int retl_hb_submit(retl_hb *hb, struct retl_batch *b, struct retl_err *err);
struct retl_batch *retl_hb_wait(retl_hb *hb, int block);

/*
 * Fan-out: one engine batch (a job's "outer" batch) becomes sub-batches (one
 * per endpoint or request kind), each through retl_hb_submit.  When every
 * sub-batch of a job is back, the outer batch is handed back by
 * retl_hb_job_wait.  A destination embeds retl_hb_job as the first member of
 * its job, and retl_hb_sub as the first member of its sub-batch when it needs
 * per-sub fields (then fini frees them).
 */
struct retl_hb_job {
	struct retl_batch *outer;
	int remaining;            /* sub-batches in flight */
	struct retl_hb_job *next; /* ready list */
};

struct retl_hb_sub {
	struct retl_batch b;      /* b.engine = this */
	struct retl_hb_job *job;
	size_t *oidx;             /* inner index -> outer index */
	struct retl_op *ops;
	int kind;                 /* the destination's */
	void (*fini)(struct retl_hb_sub *s);  /* frees per-sub fields, or NULL */
};

/* per destination, once after retl_hb_new:
 *   sub_done  a sub-batch is back: its results to the outer batch
 *             (retl_hb_sub_take), maybe more sub-batches; frees s
 *   job_free  frees a job whose outer batch is handed back (or, at
 *             retl_hb_free, never was) */
void retl_hb_fanout(retl_hb *hb,
		    void (*sub_done)(void *dctx, struct retl_hb_sub *s),
		    void (*job_free)(struct retl_hb_job *job));

/* a sub-batch of `size` bytes (>= sizeof(struct retl_hb_sub)), room for
 * cap rows */
struct retl_hb_sub *retl_hb_sub_new(struct retl_hb_job *job, int kind,
				    size_t cap, size_t size);
/* adds the outer batch's row oi */
void retl_hb_sub_add(struct retl_hb_sub *s, size_t oi);
void retl_hb_sub_free(struct retl_hb_sub *s);
/* moves row i's result to the outer batch */
void retl_hb_sub_take(struct retl_hb_sub *s, size_t i);
/* hands s to the batch layer, counted in its job (an empty s is freed); a
 * submit error makes the job fatal (e.msg, or `msg`); consumes s */
void retl_hb_sub_submit(retl_hb *hb, struct retl_hb_sub *s, const char *msg);
/* the outer batch must stop (first call wins; code 0: RETL_EXIT_DEST) */
void retl_hb_job_fatal(struct retl_hb_job *job, int code, const char *msg);
/* after submitting a job's sub-batches: a job with none in flight is ready */
void retl_hb_job_submitted(retl_hb *hb, struct retl_hb_job *job);
/* the next finished outer batch (its job freed), as retl_hb_wait */
struct retl_batch *retl_hb_job_wait(retl_hb *hb, int block);

/* a destination's stats() from its HTTP engine (NULL-safe) */
void retl_hb_stats(const retl_http *http, struct retl_dest_stats *s);

/* helpers for decoders */
void retl_hb_set(struct retl_result *r, enum retl_result_kind kind,
		 const char *dest_id, const char *reason);
/* "HTTP 400: <first 500 bytes of body>" style reason of a response */
char *retl_hb_reason(const struct retl_http_req *req);

#endif
