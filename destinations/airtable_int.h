/*
 * airtable_int.h - what airtable.c (runs) and airtable_check.c (`retl
 * check`) share: the destination's per-run context.  Private to it.
 */
#ifndef RETL_AIRTABLE_INT_H
#define RETL_AIRTABLE_INT_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "http.h"
#include "http_batch.h"
#include "mapping.h"
#include "ratelimit.h"

struct at_ctx {
	const struct retl_sync_cfg *sc;   /* borrowed */
	const char *table;                /* borrowed from sc: id or name */
	const char *base_id;              /* borrowed from the options */
	char *api;                        /* base URL, no trailing '/' */
	char *records_url;                /* api/v0/{base}/{table, escaped} */
	enum retl_mode mode;
	int typecast;
	double penalty;                   /* seconds Airtable stops answering after a 429 */
	size_t nmerge;                    /* match fields: fieldsToMergeOn */
	const char **merge;               /* borrowed from sc->match */
	size_t nf;
	const char **ftarget;             /* borrowed from the mapping */
	enum retl_type *ftype;
	char *auth;                       /* "Authorization: Bearer …" */
	retl_ratelimit *rate;             /* shared by every sync on this base */
	retl_http *http;
	retl_hb *hb;
};

/* GET /v0/meta/bases/{base}/tables and the checks on it (airtable_check.c) */
int airtable_check(void *ctx, struct retl_err *err);

/* 401 / 403 / 404 about the token, base or table: code 4, else 0 */
int airtable_auth_error(const struct at_ctx *c, const struct retl_http_req *req,
			struct retl_err *err);

/* "TYPE: message" of an Airtable error body (or the raw body) */
void airtable_error_text(const struct retl_http_req *req, retl_buf *out,
			 char *type, size_t typelen);

#endif
