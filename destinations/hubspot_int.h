/*
 * hubspot_int.h - what hubspot.c (runs) and hubspot_check.c (`retl check`)
 * share: the destination's per-run context.  Private to the destination.
 */
#ifndef RETL_HUBSPOT_INT_H
#define RETL_HUBSPOT_INT_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "http.h"
#include "http_batch.h"
#include "mapping.h"

struct hs_ctx {
	const struct retl_sync_cfg *sc;   /* borrowed */
	const char *object;               /* borrowed from sc */
	char *base;                       /* base URL, no trailing '/' */
	enum retl_mode mode;
	const char *id_prop;              /* the match property, or NULL */
	int id_ci;                        /* compare ids case-insensitively */
	size_t nf;                        /* mapped target properties */
	const char **ftarget;             /* borrowed from the mapping */
	char **fkey;                      /* targets as JSON string bodies */
	enum retl_type *ftype;
	char *auth;                       /* "Authorization: Bearer …" */
	retl_http *http;
	retl_hb *hb;
};

/* GET /crm/v3/properties/{object} and the checks on it (hubspot_check.c) */
int hubspot_check(void *ctx, struct retl_err *err);

/* "hubspot: token invalid or expired (401 …)" / missing scopes, code 4 */
int hubspot_auth_error(const struct retl_http_req *req, struct retl_err *err);

#endif
