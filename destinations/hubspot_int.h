/*
 * hubspot_int.h - what the HubSpot destination's files share: hubspot.c
 * (options, open, prepare, encode), hubspot_decode.c (answers),
 * hubspot_check.c (`retl check`) and hubspot_assoc*.c (associations).
 * Private to the destination.
 */
#ifndef RETL_HUBSPOT_INT_H
#define RETL_HUBSPOT_INT_H

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "err.h"
#include "http_dest.h"
#include "ratelimit.h"
#include "payload.h"

/* request kinds: one endpoint each (batch/<verb>).  HS_FIND looks up a
 * record to remove that retl has no id for (batch/read by the match
 * value), then archives what it found */
enum hs_kind { HS_UPSERT, HS_UPDATE, HS_CREATE, HS_READ, HS_ARCHIVE, HS_FIND,
	       HS_SEARCH, HS_SEARCH1, HS_PEEK_ID, HS_PEEK_PROP, HS_NKIND };

/* the id an archive sends: the stored one, or the one HS_FIND found */
const char *hubspot_archive_id(const struct retl_request *r, size_t k);

struct hs_assoc;

struct hs_ctx {
	struct retl_http_dest base;       /* first */
	const char *id_prop;              /* the match property, or NULL */
	int id_ci;                        /* compare ids case-insensitively */
	char *objects;                    /* "/crm/v3/objects" or
					   * "/crm/objects/2026-03" (api_version) */
	char *properties;                 /* likewise for properties */
	/* matching (hubspot_search.c): the match property is not unique,
	 * records are found with the search endpoint; or it is
	 * hs_object_id, the record id itself */
	int search;
	int by_object_id;
	retl_ratelimit *search_rate;      /* search's own limit (shared) */
	/* the "write": "if_empty" fields' targets (hubspot_if_empty.c) */
	const char **ie;
	size_t nie;
	/* mode membership (hubspot_lists.c) */
	char *lists;                      /* "/crm/v3/lists" or "/crm/lists/2026-03" */
	char *list_id;                    /* the sync key "list" */
	struct hs_assoc *assoc;           /* associations, or NULL */
};

/* ---- hubspot_if_empty.c ---- */

int hubspot_ie_setup(struct hs_ctx *c);
/* the kind an op of write kind k goes in first: a read of the if_empty
 * fields (HS_PEEK_ID by record id, HS_PEEK_PROP by idProperty), or k;
 * model_id: the op's match value (a C string) */
int hubspot_ie_kind(const struct hs_ctx *c, const struct retl_op *op, int k,
		    const char *model_id);
void hubspot_ie_encode(struct hs_ctx *c, struct retl_request *r);
/* a read's answer (200 or 207): each op on to its write */
enum retl_hd_verdict hubspot_ie_decode(struct hs_ctx *c, struct retl_request *r);
/* op k on to a write of `kind`, leaving out the if_empty properties that
 * `rec` (a record HubSpot answered, or NULL) holds values for */
void hubspot_ie_found(const struct hs_ctx *c, struct retl_request *r, size_t k,
		      const json_t *rec, int kind);
/* op k's properties object as its write sends it */
void hubspot_ie_props(const struct retl_request *r, size_t k, const char *props,
		      size_t plen, retl_buf *o);

/* ---- hubspot_search.c ---- */

/* after the match property is known: how records are found (one GET of
 * the property's definition when its uniqueness is not known by name) */
int hubspot_match_setup(struct hs_ctx *c, struct retl_err *err);
/* the kind of request an op goes in first when matching by search or by
 * hs_object_id; -1 when the usual rules apply */
int hubspot_match_kind(const struct hs_ctx *c, const struct retl_op *op);
/* after op i is prepared with match value id (a C string) */
void hubspot_match_prepared(const struct hs_ctx *c, struct retl_batch *b, size_t i,
			    const char *id);
/* search's own per-credential limiter (5 a second), made on first use:
 * every search retl sends (matching, association targets) passes it */
retl_ratelimit *hubspot_search_limiter(struct hs_ctx *c);
/* a search request's URL and body */
void hubspot_search_encode(struct hs_ctx *c, struct retl_request *r);
/* a search's 200 answer into its ops' next steps */
enum retl_hd_verdict hubspot_search_decode(struct hs_ctx *c, struct retl_request *r);
/* ops a request of this kind carries at most */
size_t hubspot_ops_per_request(void *d, int kind);
/* the id an update goes to: the stored one, or the one a search found;
 * NULL: by idProperty */
const char *hubspot_update_id(const struct hs_ctx *c, const struct retl_request *r,
			      size_t k);
/* an update that found no record: "no record matches", or search again */
void hubspot_update_missing(const struct hs_ctx *c, struct retl_request *r, size_t k,
			    const char *why);
/* `retl plan`: requests a run of `ops` operations spends */
void hubspot_plan(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		  long ops, long *requests, long *jobs);
/* "domain" is matched through search unless HubSpot says it is unique */
int hubspot_known_unique(const char *object, const char *prop);

/* hubspot_lists.c: mode "membership", a static list's members.  setup
 * reads the sync key "list" (refused in other modes); the others stand in
 * for hubspot.c's own in that mode */
int hubspot_list_setup(struct hs_ctx *c, struct retl_err *err);
void hubspot_list_fini(struct hs_ctx *c);
int hubspot_list_prepare(struct hs_ctx *c, struct retl_batch *b, size_t i,
			 retl_buf *id, retl_buf *reason);
int hubspot_list_encode(struct hs_ctx *c, struct retl_request *r);
enum retl_hd_verdict hubspot_list_decode(struct hs_ctx *c, struct retl_request *r,
					 struct retl_err *err);
int hubspot_list_check(struct hs_ctx *c, struct retl_err *err);
/* a search (hubspot_search.c) found op k's one record, id: on to the list */
void hubspot_list_found(struct retl_request *r, size_t k, const char *id);

/* hubspot_assoc.c: associations (README "HubSpot associations").  Request
 * kinds from HS_NKIND up are theirs */
int hubspot_assoc_setup(struct hs_ctx *c, const char *ver, struct retl_err *err);
void hubspot_assoc_fini(struct hs_ctx *c);
/* before an op's first request: -1 with reason when the association types
 * could not be resolved */
int hubspot_assoc_prepare(struct hs_ctx *c, retl_buf *reason);
/* after an object write's answer: its acknowledged ops go on to their
 * associations */
void hubspot_assoc_written(struct hs_ctx *c, struct retl_request *r);
/* the row's association values, from the payload's "associations" member
 * (read once, at prepare): -1 with reason when the row gives too many */
int hubspot_assoc_take(struct hs_ctx *c, const struct retl_batch *b, size_t i,
		       const struct retl_pv *v, retl_buf *reason);
/* op i of b will not be written: what was taken for it goes */
void hubspot_assoc_forget(struct hs_ctx *c, const struct retl_batch *b, size_t i);
size_t hubspot_assoc_ops_per_request(void *d, int kind);
int hubspot_assoc_encode(struct hs_ctx *c, struct retl_request *r);
enum retl_hd_verdict hubspot_assoc_decode(struct hs_ctx *c, struct retl_request *r,
					  struct retl_err *err);
void hubspot_assoc_gave_up(struct hs_ctx *c, struct retl_request *r);
void hubspot_assoc_check(struct hs_ctx *c, retl_buf *probs);

/* GET /crm/v3/properties/{object} and the checks on it (hubspot_check.c) */
int hubspot_check(void *ctx, struct retl_err *err);

/* "hubspot: token invalid or expired (401 …)" / missing scopes, code 4 */
int hubspot_auth_error(const struct retl_http_req *req, struct retl_err *err);

/* hubspot_decode.c: one answer into its ops' results */
enum retl_hd_verdict hubspot_decode(void *d, struct retl_request *r,
				    struct retl_err *err);

/* 1 (the default): 2xx answers retl_json_doc vouches for are read
 * without a jansson tree; 0: every answer through jansson.  The fuzz
 * harness decodes each input both ways and compares */
extern int hubspot_plain_answers;

/* a 429 for the daily limit (policyName DAILY): final, not retried */
int hubspot_daily_429(const struct retl_http_req *req);
/* an answer the engine gave up on; the daily limit is fatal (exit 4) */
enum retl_hd_verdict hubspot_transient(void *d, struct retl_request *r,
				       struct retl_err *err);

#endif
