/*
 * salesforce_int.h - what the Salesforce destination's files share:
 * salesforce.c (options, open, the spool of deferred rows, finish),
 * salesforce_auth.c (the three OAuth flows), salesforce_collections.c
 * (sObject Collections requests), salesforce_bulk.c (Bulk API 2.0 ingest
 * jobs), salesforce_spool.c (the spool's records), salesforce_rel.c
 * (relationship targets), salesforce_lookup.c (SOQL; update-only by a
 * field), salesforce_if_empty.c ("write": "if_empty") and
 * salesforce_check.c (`retl check`).  Private.
 */
#ifndef RETL_SALESFORCE_INT_H
#define RETL_SALESFORCE_INT_H

#include <stdio.h>

#include "config.h"
#include "destination.h"
#include "err.h"
#include "http_dest.h"
#include "payload.h"

/* what one request (and one bulk job) does: one operation each.
 * SF_DELETE_EXT deletes a record retl has no Id for (its create's answer
 * was lost) by its External ID, one a request, never in a bulk job; its
 * spooled op holds the External ID value in place of the Id */
enum sf_kind { SF_UPSERT, SF_INSERT, SF_UPDATE, SF_DELETE, SF_DELETE_EXT, SF_NKIND };

enum sf_grant { SF_REFRESH, SF_CLIENT, SF_JWT };

struct sf_ctx {
	struct retl_http_dest base;       /* first; base.url is the login
					   * host, base.http the API calls */
	const char *ext;                  /* the External ID field (match), or NULL */
	/* mode update (salesforce_lookup.c): by the model's Id (match
	 * {"Id": …}), or by looking lookup's value up with SOQL */
	int by_id;
	const char *lookup;               /* the match field, or NULL */
	int lookup_quoted;                /* its SOQL literals are quoted text */
	/* relationship targets (salesforce_rel.c): how many, and per field
	 * the parent's sObject type (NULL for the others) */
	size_t nrel;
	char **rel_type;
	/* "write": "if_empty" fields (salesforce_if_empty.c): their targets
	 * (borrowed), whether the External ID's literals are quoted, and the
	 * spool of rows rewritten after the read */
	size_t nie;
	const char **ie;
	int ie_quoted;
	FILE *ie_spool;
	char *ie_path;

	/* auth */
	enum sf_grant grant;
	char *audience;                   /* JWT aud */
	const char *client_id, *client_secret, *refresh_token, *username,
		   *private_key;              /* borrowed from dc->options */
	char *instance;                   /* instance_url, no trailing '/' */
	const char **allowed;             /* allowed_hosts, NULL-ended (the
					   * strings borrowed from options) */
	struct retl_err auth_err;         /* why a refresh after a 401 failed */
	const char *version;              /* "62.0" */
	retl_http *tok;                   /* token requests (login host) */

	/* options */
	long threshold;                   /* bulk above this many rows */
	long reserve;                     /* daily calls kept free; < 0: 10% */
	long bulk_max_bytes;              /* CSV bytes per job */
	double poll_max;                  /* seconds a run waits for a job */

	/* the org's daily API usage, from Sforce-Limit-Info */
	long used, limit;
	int over_budget;                  /* remaining calls fell under reserve */
	char budget_msg[RETL_ERR_MSG_MAX];

	/* rows deferred this run, one spool file per kind */
	char *dir;                        /* spool and job map directory */
	FILE *spool[SF_NKIND];
	char *spool_path[SF_NKIND];
	long nspool[SF_NKIND];
	enum sf_kind cur;                 /* the kind collections are sending */
	long calls;                       /* token requests */
	long jobs;                        /* bulk jobs this run */
};

extern const char *const sf_kind_name[SF_NKIND];

/* salesforce_auth.c: gets a token (open, and again after a 401); sets
 * c->instance and the Authorization line (and the API engine's); code 4,
 * also for an instance_url off url.h's policy or Salesforce's domains
 * (nothing is changed then) */
int sf_auth(struct sf_ctx *c, struct retl_err *err);

/* salesforce.c */
/* one request sent and waited for, outside any batch (check, bulk) */
struct retl_http_req *sf_call(struct sf_ctx *c, const char *method,
			      const char *path, const char *ctype,
			      const char *body, size_t blen);
/* the same, never replayed by the HTTP engine after a timeout, a dropped
 * connection or a 5xx: for a state transition that is not idempotent (a
 * bulk job's close or abort), whose caller reads the state instead; a 401
 * is still refreshed and sent again (a refused request changed nothing) */
struct retl_http_req *sf_call_once(struct sf_ctx *c, const char *method,
				   const char *path, const char *body, size_t blen);
/* reads Sforce-Limit-Info of req; sets over_budget when under reserve */
void sf_usage(struct sf_ctx *c, const struct retl_http_req *req);
/* a non-2xx answer as "HTTP 400 CODE: message" (malloc'd) */
char *sf_error_text(const struct retl_http_req *req);
/* sets err (code 4) for a stop-the-run answer (auth, limits); else 0 */
int sf_fatal_answer(struct sf_ctx *c, const struct retl_http_req *req,
		    struct retl_err *err);
/* the run must stop: the budget's reserve was reached */
int sf_budget_stop(struct sf_ctx *c, struct retl_err *err);

/* salesforce_spool.c: a spool holds ops as framed records (key, stored
 * id, payload), so reading one back parses nothing */
int sf_spool_put(FILE *f, const struct retl_op *op);
/* the next op; its strings live in buf (reused per op); 1, 0 at the end,
 * -1 for a record that is not whole (damage: see sf_spool_damaged) */
int sf_spool_get(FILE *f, retl_buf *buf, struct retl_op *op);
/* the error for a spool whose read ended at damage; returns -1 */
int sf_spool_damaged(const char *path, struct retl_err *err);

/* salesforce_collections.c: the base's prepare, encode and decode for
 * sObject Collections (200 records a request), and a spool sent by them */
#define SF_MAX_RECORDS 200
int sf_collections_prepare(void *d, struct retl_batch *b, size_t i,
			   retl_buf *body, retl_buf *id, retl_buf *reason);
int sf_collections_encode(void *d, struct retl_request *r, struct retl_err *err);
enum retl_hd_verdict sf_collections_decode(void *d, struct retl_request *r,
					   struct retl_err *err);
int sf_collections_run(struct sf_ctx *c, enum sf_kind k, FILE *spool,
		       struct retl_err *err);

/* salesforce_bulk.c */
int sf_bulk_run(struct sf_ctx *c, enum sf_kind k, FILE *spool, long n,
		struct retl_err *err);
/* an earlier run's job (a note): wait for it and report its rows */
int sf_bulk_resume(struct sf_ctx *c, struct retl_err *err);

/* salesforce_rel.c: relationship targets ("Account.External_Id__c": the
 * lookup set through the parent's External ID, README "Relationships") */
/* the lookup field a relationship name stands for: "Account" ->
 * "AccountId", "Parent__r" -> "Parent__c" (Salesforce's naming) */
void sf_lookup_name(const char *rel, size_t n, retl_buf *out);
/* the mapping's dotted targets: exactly <relationship>.<field>, one per
 * relationship, not also setting the lookup field itself */
int sf_rel_open(struct sf_ctx *c, struct retl_err *err);
/* sObject Collections: a relationship member (an object value) as
 * ,"Account":{"External_Id__c":"A-1"}, or ,"AccountId":null for a null or
 * empty value, nothing when the object is empty; -1 if malformed */
int sf_rel_json(struct sf_ctx *c, const struct retl_pfield *f, retl_buf *body);
/* one describe of the object at open, when a run needs it: the parents'
 * types (rel_type) and the update match field's type */
int sf_describe_open(struct sf_ctx *c, struct retl_err *err);
/* Bulk API 2.0: the extra columns (the lookup fields, for nulls) after
 * the mapped fields' */
void sf_rel_header(struct sf_ctx *c, retl_buf *o);
/* check: every relationship target against the describe of the object
 * (fields) and of its parent; problems added to pr */
void sf_rel_check(struct sf_ctx *c, const json_t *fields, retl_buf *pr);

/* salesforce_lookup.c: update-only by any field */
/* values a query, and its query string's size once URL-encoded (the REST
 * URI limit is 16,384 bytes) */
#define SF_LOOKUP_VALUES 200
#define SF_QUERY_MAX 12000
/* s[0..n) as a SOQL string literal, quotes included */
void sf_soql_quote(const char *s, size_t n, retl_buf *out);
/* GET query?q=SELECT <select> FROM <object> WHERE <field> IN (vals[0..n))
 * and its pages: every record answered appended to recs.  1 answered; 0
 * refused (Salesforce's words in *why, malloc'd: the rows fail) or no
 * answer (*why NULL: the rows are retried); -1 the run must stop (err) */
int sf_soql_in(struct sf_ctx *c, const char *select, const char *field, int quoted,
	       const retl_buf *vals, size_t n, json_t *recs, char **why,
	       struct retl_err *err);
/* the encoded size one value adds to such a query */
size_t sf_soql_cost(int quoted, const retl_buf *v);
/* the key an answered value and a row's value are matched by: text
 * without case (SOQL compares so); numbers as numbers (5.0 is 5) */
/* op's payload member `member` as text (a string decoded, anything else
 * as written) into v: 1, or 0 when it has none (absent, null or empty) */
int sf_member_text(const struct retl_op *op, const char *member, retl_buf *v);
void sf_soql_norm(int quoted, const char *s, size_t n, retl_buf *out);
/* an answered value as text ("" for null) */
void sf_soql_text(const json_t *v, retl_buf *out);
/* 0 when the field's SOQL literals are bare (numbers, booleans, dates),
 * from the object's describe (fields) */
int sf_soql_quoted(const json_t *fields, const char *name);
/* the match field's type, from the object's describe (fields) */
void sf_lookup_type(struct sf_ctx *c, const json_t *fields);
/* the update spool's rows looked up by c->lookup: those with one record
 * written to out with its Id (*nout of them), the others reported; -1
 * (err) stops the run, -2 the spool is damaged */
int sf_lookup_run(struct sf_ctx *c, FILE *in, FILE *out, long *nout,
		  struct retl_err *err);

/* salesforce_if_empty.c: per-field "write": "if_empty" */
/* the mapping's if_empty fields into c->ie (not a relationship target,
 * not the field records are found by) */
int sf_ie_open(struct sf_ctx *c, struct retl_err *err);
/* the External ID's literal form, from the describe at open */
void sf_ie_type(struct sf_ctx *c, const json_t *fields);
/* the spool of kind k (upsert, update) with the if_empty fields that hold
 * a value in Salesforce left out of each row, read back from its start;
 * *n its rows (rows whose read failed are reported); `in` itself when
 * nothing is read; NULL with err when the run must stop */
FILE *sf_ie_filter(struct sf_ctx *c, enum sf_kind k, FILE *in, const char *in_path,
		   long *n, struct retl_err *err);

/* salesforce_check.c */
int sf_check(void *ctx, struct retl_err *err);

#endif
