/*
 * hubspot_int.h - what the HubSpot destination's files share: hubspot.c
 * (options, open, prepare, encode), hubspot_decode.c (answers) and
 * hubspot_check.c (`retl check`).  Private to the destination.
 */
#ifndef RETL_HUBSPOT_INT_H
#define RETL_HUBSPOT_INT_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "http_dest.h"

/* request kinds: one endpoint each (batch/<verb>).  HS_FIND looks up a
 * record to remove that retl has no id for (batch/read by the match
 * value), then archives what it found */
enum hs_kind { HS_UPSERT, HS_UPDATE, HS_CREATE, HS_READ, HS_ARCHIVE, HS_FIND,
	       HS_NKIND };

/* the id an archive sends: the stored one, or the one HS_FIND found */
const char *hubspot_archive_id(const struct retl_request *r, size_t k);

struct hs_ctx {
	struct retl_http_dest base;       /* first */
	const char *id_prop;              /* the match property, or NULL */
	int id_ci;                        /* compare ids case-insensitively */
	char *objects;                    /* "/crm/v3/objects" or
					   * "/crm/objects/2026-03" (api_version) */
	char *properties;                 /* likewise for properties */
	/* mode membership (hubspot_lists.c) */
	char *lists;                      /* "/crm/v3/lists" or "/crm/lists/2026-03" */
	char *list_id;                    /* the sync key "list" */
	int by_object_id;                 /* match is hs_object_id: no lookup */
};

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
