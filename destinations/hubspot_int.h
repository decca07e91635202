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
#include "payload.h"

/* request kinds: one endpoint each (batch/<verb>).  HS_FIND looks up a
 * record to remove that retl has no id for (batch/read by the match
 * value), then archives what it found */
enum hs_kind { HS_UPSERT, HS_UPDATE, HS_CREATE, HS_READ, HS_ARCHIVE, HS_FIND,
	       HS_NKIND };

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
	struct hs_assoc *assoc;           /* associations, or NULL */
};

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
