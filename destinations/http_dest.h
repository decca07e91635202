/*
 * http_dest.h - the base every HTTP destination embeds (git's struct
 * ref_store inside each refs backend): the common options, the HTTP
 * engine, and the way a batch of ops becomes requests and comes back as
 * results.  See the glossary at the top of destination.h.
 *
 *   struct hs_ctx { struct retl_http_dest base; ...HubSpot's own... };
 *
 * The destination gives four callbacks (struct retl_hd_ops) and the base
 * does the rest:
 *   prepare  once per op, when its batch arrives: which kind of request
 *            carries it (an endpoint; the destination's numbering), and its
 *            body in the API's form, written once from the payload (the
 *            payload is not read again, whatever happens to the request)
 *   encode   one request: method, URL and body from its ops' prepared bodies
 *   decode   one answer: a result per op, by the ops' match values
 * Then the base:
 *   - groups a batch's ops by kind into requests of at most max_ops ops;
 *   - when decode says the API refused a request as a whole because of some
 *     of its ops (RETL_HD_SPLIT), sends each half again until the bad ops
 *     stand alone and the others are acknowledged;
 *   - sends ops again in a request of another kind when decode asks
 *     (retl_req_again: a lookup before a create, a create after a lookup);
 *   - sends a request again once when decode says RETL_HD_RESEND (after a
 *     token refresh through retl_http_set_auth);
 *   - leaves the ops of a request the engine gave up on (5xx, 429 or
 *     transport errors after every attempt) not done (RETL_RES_RETRY, with
 *     the last error), unless the destination reads such answers itself
 *     (ops->transient, for 5xx and 429 only); ops that got no answer at
 *     all are counted in the batch's `unanswered` (the run ends with
 *     exit 4);
 *   - makes the batch fatal (exit 4) when a request would go over the run's
 *     request budget, when the engine's circuit breaker opened (options
 *     max_transport_failures, max_response_bytes: see http.h), or decode
 *     says RETL_HD_FATAL;
 *   - hands the batch back from wait() once every request is decoded.
 */
#ifndef RETL_HTTP_DEST_H
#define RETL_HTTP_DEST_H

#include "destination.h"
#include "http.h"
#include "mapping.h"

/* one HTTP call carrying some ops of one batch */
struct retl_request {
	struct retl_batch *batch;
	int kind;                 /* the destination's: which endpoint */
	size_t n;                 /* ops it carries */
	size_t *idx;              /* their indexes in batch->ops / results */
	int resent;               /* already sent again after RESEND */
	struct retl_http_req *http;   /* the wire: filled by encode */
	struct retl_request *prev, *next;   /* the base's list of live ones */
};

/* prepare() for an op that needs no request: its result is set */
#define RETL_HD_NONE (-1)
/* prepare() for an op the API cannot take: rejected with the reason */
#define RETL_HD_REJECT (-2)

enum retl_hd_verdict {
	RETL_HD_DONE,             /* every op of the request has its result */
	RETL_HD_SPLIT,            /* refused as a whole: send halves (n > 1) */
	RETL_HD_FATAL,            /* the run must stop; err says why (code 4) */
	RETL_HD_RESEND,           /* send the same request again, once; a
				   * second RESEND of it is FATAL */
};

/* what a destination's options() tells the base from the config */
struct retl_hd_opts {
	char *url;                    /* the base URL when the config has no
				       * base_url (taken; NULL: default_url) */
	char *auth;                   /* Authorization line, taken (or NULL) */
	char **headers;               /* more header lines, NULL-ended, taken */
	/* rate, rate headers, keep_header, max_429, ordered, final_429:
	 * passed to the engine as they are (max_inflight, timeout_ms, auth, headers and
	 * budget are the base's) */
	struct retl_http_opts http;
};

struct retl_hd_ops {
	const char *type;             /* "hubspot", for messages */
	size_t ctx_size;              /* the destination's context, base first */
	const char *default_url;      /* when the config has no base_url */
	size_t max_ops;               /* ops a request carries at most */
	/* the option naming the connections (NULL: "max_inflight"), its
	 * default and ceiling (0: none); "timeout" in seconds */
	const char *inflight_key;
	long inflight, inflight_max, timeout;

	/* opening, in this order: the config's checks (also the table's
	 * validate), what the base needs (fills o, zeroed; what it takes is
	 * freed by the base even on error), then what the destination adds
	 * to its context once the base is open; < 0 closes it again */
	int (*validate)(const struct retl_dest_cfg *dc, struct retl_err *err);
	int (*options)(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		       struct retl_hd_opts *o, struct retl_err *err);
	int (*setup)(void *d, struct retl_err *err);

	/* sending: see the top of this file */
	int (*prepare)(void *d, struct retl_batch *b, size_t i, retl_buf *body,
		       retl_buf *id, retl_buf *reason);
	int (*encode)(void *d, struct retl_request *r, struct retl_err *err);
	enum retl_hd_verdict (*decode)(void *d, struct retl_request *r,
				       struct retl_err *err);
	/* optional: an answer the engine gave up on (429, 5xx; no answer at
	 * all is the base's); the default leaves every op not done */
	enum retl_hd_verdict (*transient)(void *d, struct retl_request *r,
					  struct retl_err *err);
	/* optional: ops a request of this kind carries at most, when not
	 * max_ops */
	size_t (*ops_per_request)(void *d, int kind);
	/* optional: frees what the destination added to its context */
	void (*fini)(void *d);
};

struct retl_http_dest {
	const struct retl_hd_ops *ops;
	const char *type;             /* "hubspot", for messages */
	const struct retl_dest_cfg *dc;   /* borrowed */
	const struct retl_sync_cfg *sc;   /* borrowed */
	const char *object;           /* the sync's object (borrowed) */
	enum retl_mode mode;          /* and mode */
	struct retl_dest_env env;     /* copied */
	char *url;                    /* base URL, no trailing '/' */
	char *auth;                   /* Authorization line: wiped at close */
	char **headers;               /* more header lines (the engine's) */
	retl_http *http;
	size_t nf;                    /* the mapping's fields: */
	const char **ftarget;         /* their targets (borrowed) */
	char **fkey;                  /* the targets as payload member names
				       * are written (JSON-escaped, no quotes) */
	enum retl_type *ftype;        /* and types */
	/* the base's own */
	struct retl_batch **ready;    /* handed back by wait(), in order */
	size_t nready, capready;
	struct retl_request *live;    /* requests not yet decoded */
};

/*
 * An HTTP destination's open (retl_destination_open calls it for a table
 * entry with .http): ops->validate, ops->options, then the context
 * (ctx_size bytes, zeroed, the base first) with max_inflight (or
 * inflight_key) and timeout read from the config and the HTTP engine, then
 * ops->setup.  On error *out is NULL and everything taken is freed.
 * Every HTTP destination also takes max_response_bytes and
 * max_transport_failures (retl_hd_base_keys).
 */
int retl_hd_open(void **out, const struct retl_hd_ops *ops,
		 const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		 const struct retl_dest_env *env, struct retl_err *err);

/* the keys every HTTP destination's config takes beside its own: type,
 * base_url and the engine's limits; NULL-ended */
extern const char *const retl_hd_base_keys[];

/* the destination's submit, wait, stats and close (struct retl_destination) */
int retl_hd_submit(void *ctx, struct retl_batch *b, struct retl_err *err);
struct retl_batch *retl_hd_wait(void *ctx, int block);
void retl_hd_stats(void *ctx, struct retl_dest_stats *s);
void retl_hd_close(void *ctx);
/*
 * For tests without a network (tests/fuzz): wait(ctx, 1), but every request
 * the engine hands back goes through fill() first, which writes the
 * answer to decode (status, resp, kept).  Open the destination with
 * env->api_budget 0: the engine then hands each request back unsent.
 */
struct retl_batch *retl_hd_wait_answered(void *ctx,
		void (*fill)(void *ud, struct retl_http_req *req), void *ud);
/* hands b back from the next wait() as it is (a destination that set every
 * result itself, e.g. deferred them) */
void retl_hd_ready(struct retl_http_dest *d, struct retl_batch *b);

/* the index of the mapped field `target`, or -1 */
int retl_hd_field(const struct retl_http_dest *d, const char *target);
/* the index of the mapped field a payload member is named for (the name
 * as written, escapes in: struct retl_pfield's), or -1 */
int retl_hd_field_named(const struct retl_http_dest *d, const char *name, size_t n);

/* how a destination that finds records by one mapped field names it in
 * messages (see retl_hd_match_one) */
struct retl_hd_match_words {
	const char *vendor;           /* "HubSpot" */
	const char *field;            /* "property", "External ID field" */
	const char *placeholder;      /* "<unique HubSpot property>" */
	const char *example;          /* "{\"email\": \"email\"}" */
	const char *carries;          /* "in the payload" */
};
/*
 * The sync's match when the API finds records by exactly one mapped field:
 * *field is its target (NULL with no match, which only mode "update"
 * allows).  Errors name the sync file and say what to write.
 */
int retl_hd_match_one(const struct retl_http_dest *d,
		      const struct retl_hd_match_words *w, const char **field,
		      struct retl_err *err);

/* ---- for check() ---- */

/*
 * 0 when req was answered 200; else err (code 4) says "<type>: cannot reach
 * <url>: …" or "<type>: GET <what>: <why>" (why NULL: the HTTP reason).
 */
int retl_hd_answered(const struct retl_http_dest *d, const struct retl_http_req *req,
		     const char *what, const char *why, struct retl_err *err);
/* the array `member` of req's JSON answer (*root to json_decref), or NULL
 * with err: "<type>: GET <what>: no "<member>" in the response" */
json_t *retl_hd_answer_array(const struct retl_http_dest *d,
			     const struct retl_http_req *req, const char *what,
			     const char *member, json_t **root, struct retl_err *err);
/* adds one problem line to a check's list */
void retl_hd_problem(retl_buf *probs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* adds " (did you mean "s"?)" to the last problem when s is not NULL */
void retl_hd_did_you_mean(retl_buf *probs, const char *s);
/* the end of a check: -1 when it could not look (!looked: err says why),
 * else the problems, if any, as one error (exit 2); frees probs */
int retl_hd_problems(retl_buf *probs, int looked, struct retl_err *err);

/* GET base URL + path and wait for the answer (check(): nothing else is in
 * flight then); the caller frees the request */
struct retl_http_req *retl_hd_get(struct retl_http_dest *d, const char *path);

/* ---- for encode and decode: the request's k-th op ---- */

const struct retl_op *retl_req_op(const struct retl_request *r, size_t k);
/* its body and match value as prepare() wrote them */
const char *retl_req_body(const struct retl_request *r, size_t k, size_t *len);
const char *retl_req_id(const struct retl_request *r, size_t k, size_t *len);
struct retl_result *retl_req_result(const struct retl_request *r, size_t k);
void retl_req_set(struct retl_request *r, size_t k, enum retl_result_kind kind,
		  const char *dest_id, const char *reason);
void retl_req_set_all(struct retl_request *r, enum retl_result_kind kind,
		      const char *reason);
/* sends op k again, in a request of `kind`, once this decode returns */
void retl_req_again(struct retl_request *r, size_t k, int kind);
/* how many times op k was sent again */
int retl_req_tries(const struct retl_request *r, size_t k);
/* appends the ops' prepared bodies, comma-separated */
void retl_req_add_bodies(const struct retl_request *r, retl_buf *o);
/* retl_http_reason of its answer; malloc'd */
char *retl_req_reason(const struct retl_request *r);

/* the callbacks every HTTP destination takes from the base */
#define RETL_HD_CALLBACKS \
	.close = retl_hd_close, .submit = retl_hd_submit, .wait = retl_hd_wait, \
	.stats = retl_hd_stats

#endif
