/*
 * destination.h - what a destination is to the sync engine.
 *
 * Like curl's protocol handlers or PostgreSQL's FdwRoutine: each destination
 * fills one const struct of capabilities and callbacks, and the engine holds
 * a table of them (destination.c).  The engine knows nothing about any API;
 * a destination knows nothing about SQL or the state store.
 *
 * The send path in four nouns, one struct each:
 *
 *   op       struct retl_op       one row's operation: upsert, insert, update
 *                                 or remove of one key, with its payload
 *   batch    struct retl_batch    the ops the engine hands a destination at
 *                                 once, with one result slot per op; handed
 *                                 back whole (wait()), then committed
 *   request  struct retl_request  one HTTP call carrying some ops of one
 *                                 batch (http_dest.h); a batch becomes one
 *                                 or more requests, of one or more kinds
 *                                 (endpoints), split in halves when the API
 *                                 refuses one for some of its ops
 *   result   struct retl_result   what became of one op: acknowledged (with
 *                                 the record id), rejected (with the API's
 *                                 reason), not done (retry next run) or
 *                                 deferred (reported later by key)
 *
 * HTTP destinations embed struct retl_http_dest (http_dest.h) as the first
 * member of their context: it reads the common options, owns the HTTP
 * engine, turns batches into requests and answers into results, and is the
 * destination's submit/wait/stats/close.  A destination file then holds its
 * API's own: prepare an op, encode a request, decode an answer, check().
 * Payloads are read with the one payload reader (src/payload.h), once per
 * op.  Adding a destination: see README, "Adding a destination".
 */
#ifndef RETL_DESTINATION_H
#define RETL_DESTINATION_H

#include <stddef.h>

#include "../src/config.h"
#include "../src/err.h"

enum retl_op_kind {
	RETL_OP_UPSERT,
	RETL_OP_INSERT,
	RETL_OP_UPDATE,
	RETL_OP_REMOVE,
};

struct retl_op {
	enum retl_op_kind kind;
	int pending;              /* a create intent an earlier run left
				   * unresolved: look the record up by its
				   * match field before creating it again */
	const char *key;          /* key text (composite keys: a JSON array) */
	const char *key_json;     /* the key as a JSON value */
	const char *payload;      /* canonical JSON object; NULL for removes */
	size_t payload_len;
	const char *dest_id;      /* stored destination record id, or NULL */
	const char *match;        /* the record's match value (the sync's
				   * match fields as sent, src/match.h), or
				   * NULL: a removal without dest_id finds
				   * the record by it */
};

enum retl_result_kind {
	RETL_RES_ACK,             /* done; dest_id may carry the record id */
	RETL_RES_REJECT,          /* refused for this record; reason says why */
	RETL_RES_RETRY,           /* not done (transient); try next run */
	RETL_RES_DEFER,           /* accepted for later: the outcome comes by
				   * key through env->report(), in this run
				   * (typically from finish()) or a later one.
				   * The engine stages the row meanwhile: a run
				   * that ends before the report retries it. */
};

/* filled by send(); strings are malloc'd and freed by the engine */
struct retl_result {
	enum retl_result_kind kind;
	char *dest_id;
	char *reason;
};

/* what the engine gives a destination beside its config */
struct retl_dest_env {
	const char *dir;          /* project directory, for relative paths */
	long api_budget;          /* requests this run may send; < 0 = no limit */

	/*
	 * The engine's services for destinations that acknowledge later
	 * (RETL_RES_DEFER); all may be NULL (plan, check).  ud is passed
	 * back to each.
	 *   note_get  a durable per-sync note (malloc'd), or NULL
	 *   note_set  writes (value NULL: deletes) a note, committed at once;
	 *             e.g. a bulk job id, written before the upload starts
	 *   note_stage  writes a note in the same transaction as the results of
	 *             the batch being sent (a synchronous destination's send):
	 *             durable exactly when they are, e.g. the file's length
	 *   report    one deferred row's outcome (ACK with dest_id, REJECT or
	 *             RETRY with reason), by key; committed at once.  Keys the
	 *             engine does not hold as staged are ignored (returns 0).
	 * Return 0 or -1 (a state store error: the run must stop).
	 */
	void *ud;
	char *(*note_get)(void *ud, const char *name);
	int (*note_set)(void *ud, const char *name, const char *value);
	void (*note_stage)(void *ud, const char *name, const char *value);
	int (*report)(void *ud, const char *key, const struct retl_result *res);
};

/*
 * A batch in flight (asynchronous destinations).  The engine fills ops, n
 * and zeroed results; the destination fills results and hands the batch
 * back from wait().  `fatal` (with fatal_code and fatal_msg) means the run
 * must stop: none of this batch's results count.
 */
struct retl_batch {
	const struct retl_op *ops;
	size_t n;
	struct retl_result *results;
	void *engine;             /* the sync engine's, nothing else */
	void *dest;               /* the destination's, while it holds the batch */
	int fatal;
	int fatal_code;
	char fatal_msg[RETL_ERR_MSG_MAX];
	/* ops whose request got no answer at all (a transport failure after
	 * every attempt): not done, and the run ends with exit 4; the reason
	 * of the first */
	size_t unanswered;
	char unanswered_why[256];
};

/* the batch must stop the run (the first call wins; code 0: exit 4) */
void retl_batch_fatal(struct retl_batch *b, int code, const char *msg);
/* sets a result (strings copied; the engine frees them) */
void retl_result_set(struct retl_result *r, enum retl_result_kind kind,
		     const char *dest_id, const char *reason);
/* "upsert", "insert", "update" or "remove" */
const char *retl_op_name(enum retl_op_kind k);

struct retl_dest_stats {
	long api_calls, retries, http_429;
};

struct retl_destination {
	const char *name;         /* the "type" in retl.json */
	unsigned modes;           /* bit (1u << enum retl_mode) per mode */
	unsigned removals;        /* bit (1u << enum retl_on_remove) per action */
	size_t max_batch;         /* records per request */
	/* optional: the engine's batch for this destination's config (the
	 * file destination's batch_size), else max_batch */
	size_t (*batch_of)(const struct retl_dest_cfg *dc);
	/* what the destination never acknowledged does not persist (the file
	 * destination drops an uncommitted tail): nothing may exist beyond
	 * what the state store holds */
	int atomic;
	/* the API compares match values exactly (a change of case is another
	 * record); else ASCII case is ignored, see src/match.h */
	int match_exact;
	/* per-field "write": "if_empty" (src/mapping.h): the destination
	 * reads the record's current values before it writes and leaves out
	 * the if_empty fields that are not empty; a sync with such fields is
	 * refused for a destination without it */
	int if_empty;
	/* keys allowed besides "type" and "base_url" in retl.json, NULL-ended */
	const char *const *conn_keys;
	/* destination-specific keys allowed in a sync file, NULL-ended */
	const char *const *sync_keys;

	/* config-time checks of options (required keys, value types);
	 * messages "retl.json: destinations.<name>.<key>: ..." */
	int (*validate)(const struct retl_dest_cfg *dc, struct retl_err *err);
	/* per sync run (call it through retl_destination_open); an HTTP
	 * destination sets .http instead: its base opens it */
	const struct retl_hd_ops *http;
	int (*open)(void **ctx, const struct retl_dest_cfg *dc,
		    const struct retl_sync_cfg *sc,
		    const struct retl_dest_env *env, struct retl_err *err);
	/* credentials work, the object and mapped fields exist */
	int (*check)(void *ctx, struct retl_err *err);
	/*
	 * Sends n operations and fills results[0..n-1].  Returns 0 when every
	 * result is filled; < 0 on a fatal destination error (err->code 4):
	 * then no row of the batch counts as acknowledged.
	 */
	int (*send)(void *ctx, const struct retl_op *ops, size_t n,
		    struct retl_result *results, struct retl_err *err);
	void (*close)(void *ctx);

	/*
	 * Asynchronous destinations (HTTP) set max_inflight > 0 and these
	 * instead of send: submit() queues a batch and returns at once;
	 * wait() hands back a finished batch (NULL: none in flight, or with
	 * !block none finished yet).  The engine keeps reading the model
	 * while up to max_inflight batches are out.
	 */
	size_t max_inflight;
	int (*submit)(void *ctx, struct retl_batch *b, struct retl_err *err);
	struct retl_batch *(*wait)(void *ctx, int block);
	/* requests spent so far this run (optional) */
	void (*stats)(void *ctx, struct retl_dest_stats *s);
	/*
	 * Called once after the last batch of the run came back, before the
	 * run's counts are final (optional): a destination that deferred rows
	 * sends them now (e.g. one bulk job), waits for the outcome and
	 * reports every row through env->report.  < 0 stops the run (err);
	 * rows not reported stay staged and are sent again next run.
	 */
	int (*finish)(void *ctx, struct retl_err *err);
	/*
	 * `retl plan` (optional): the API requests (and bulk jobs) a run
	 * sending `ops` operations would spend, when the engine's count
	 * (one request per max_batch operations) is not how it goes.
	 */
	void (*plan)(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		     long ops, long *requests, long *jobs);
};

struct retl_hd_ops;

const struct retl_destination *retl_destination_find(const char *type);
/* opens d for one sync run: its open, or the HTTP base for .http */
int retl_destination_open(const struct retl_destination *d, void **ctx,
			  const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
			  const struct retl_dest_env *env, struct retl_err *err);

/*
 * Option readers for validate() and open(), with the config's messages
 * ("retl.json: destinations.<name>.<key>: ...").  A required string says
 * `what` it is when missing; an absent integer gives `def`.
 */
int retl_dest_opt_str(const struct retl_dest_cfg *dc, const char *key,
		      const char *what, const char **out, struct retl_err *err);
int retl_dest_opt_posint(const struct retl_dest_cfg *dc, const char *key,
			 long def, long *out, struct retl_err *err);
/* the same with a ceiling (max > 0: "expected an integer from 1 to max") */
int retl_dest_opt_int(const struct retl_dest_cfg *dc, const char *key,
		      long def, long max, long *out, struct retl_err *err);
/* a URL retl sends to, held to url.h's policy; absent and not required:
 * *out NULL and 0 */
int retl_dest_opt_url(const struct retl_dest_cfg *dc, const char *key,
		      const char *what, int required, const char **out,
		      struct retl_err *err);

/* s is one or more ASCII digits (a vendor's numeric id) */
int retl_dest_digits(const char *s);
/*
 * A sync key naming a vendor object by its numeric id ("list": "123" or
 * 123) into *out (malloc'd): 0; 1 when absent; -1 when it is not an id.
 */
int retl_dest_sync_id(const struct retl_sync_cfg *sc, const char *key, char **out);

/*
 * For check()'s "did you mean": among the objects of `arr`, the value of
 * `field` closest to `name` (the same but for case, else the smallest edit
 * distance, ASCII case ignored, up to max_dist), or NULL.
 */
/* the object of `arr` whose string `field` equals name (ASCII case
 * ignored with nocase), or NULL */
const json_t *retl_dest_find(const json_t *arr, const char *field,
			     const char *name, int nocase);

const char *retl_dest_closest(const json_t *arr, const char *field,
			      const char *name, size_t max_dist);
/* the destinations that take "write": "if_empty", for messages (static) */
const char *retl_destination_if_empty_names(void);
/* "file, hubspot, ..." for messages */
const char *retl_destination_names(void);

extern const struct retl_destination retl_dest_file;
extern const struct retl_destination retl_dest_hubspot;
extern const struct retl_destination retl_dest_airtable;
extern const struct retl_destination retl_dest_webhook;
extern const struct retl_destination retl_dest_mailchimp;
extern const struct retl_destination retl_dest_salesforce;

#endif
