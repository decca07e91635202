/*
 * airtable_int.h - what the Airtable destination's files share:
 * airtable.c (options, open, requests, answers) and airtable_check.c
 * (`retl check`).  Private to the destination.
 */
#ifndef RETL_AIRTABLE_INT_H
#define RETL_AIRTABLE_INT_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "http_dest.h"
#include "ratelimit.h"

/* request kinds.  AT_FIND looks up a record to remove that retl has no
 * id for (its create's answer was lost): a list filtered by a formula on
 * the merge fields, then AT_DELETE of what it found.  AT_LOOKUP finds the
 * records update mode changes (airtable_match.c), then AT_UPDATE */
enum at_kind { AT_UPSERT, AT_UPDATE, AT_CREATE, AT_DELETE, AT_FIND, AT_LOOKUP,
	       AT_NKIND };

struct at_ctx {
	struct retl_http_dest base;       /* first; base.url: the API host */
	/* base.object is the table: its id or name */
	const char *base_id;              /* borrowed from the options */
	char *records_url;                /* api/v0/{base}/{table, escaped} */
	int typecast;
	double penalty;                   /* seconds Airtable stops answering after a 429 */
	size_t nmerge;                    /* match fields: fieldsToMergeOn */
	const char **merge;               /* borrowed from sc->match */
	int by_id;                        /* update mode, match {"id": column} */
	retl_ratelimit *rate;             /* shared by every sync on this base */
};

/* GET /v0/meta/bases/{base}/tables and the checks on it (airtable_check.c) */
int airtable_check(void *ctx, struct retl_err *err);

/* 401 / 403 / 404 about the token, base or table: code 4, else 0 */
int airtable_auth_error(const struct at_ctx *c, const struct retl_http_req *req,
			struct retl_err *err);

/* "TYPE: message" of an Airtable error body (or the raw body) */
void airtable_error_text(const struct retl_http_req *req, retl_buf *out,
			 char *type, size_t typelen);

/* ---- airtable_match.c: update mode's lookup by the match fields ---- */

/* POST …/listRecords with a formula finding the request's rows */
int airtable_lookup_encode(struct at_ctx *c, struct retl_request *r);
/* each row: one record -> AT_UPDATE by its id; none or several -> rejected */
enum retl_hd_verdict airtable_lookup_decode(struct at_ctx *c, struct retl_request *r);
/* can these match values (prepare's JSON array) be looked up? */
int airtable_lookup_ok(const struct at_ctx *c, const char *mv, size_t n);
/* match by record id: the payload less "id" into fields, the id into rid */
int airtable_split_id(const char *payload, size_t len, retl_buf *fields,
		      retl_buf *rid, retl_buf *reason);
/* `retl plan`: a lookup before each write request in update mode */
void airtable_plan(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		   long ops, long *requests, long *jobs);

#endif
