/*
 * mailchimp_int.h - what mailchimp.c (runs) and mailchimp_check.c
 * (`retl check`) share: the destination's per-run context.  Private to the
 * destination.
 */
#ifndef RETL_MAILCHIMP_INT_H
#define RETL_MAILCHIMP_INT_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "http.h"
#include "http_batch.h"
#include "mapping.h"

struct mc_ctx {
	const struct retl_sync_cfg *sc;   /* borrowed */
	const char *list_id;              /* the audience, borrowed from sc */
	char *base;                       /* base URL, no trailing '/' */
	enum retl_mode mode;
	enum retl_on_remove on_remove;
	int delete_permanent;             /* sync key: on_remove delete erases */
	const char *status_if_new;        /* subscribed | transactional | pending */
	int has_tags;                     /* "tags" is mapped: sync_tags */
	size_t nf;                        /* mapped targets */
	const char **ftarget;             /* borrowed from the mapping */
	enum retl_type *ftype;
	char *auth;                       /* "Authorization: Basic …": never log */
	retl_http *http;
	retl_hb *hb;
};

/* GET /ping, /lists/{id}, /lists/{id}/merge-fields (mailchimp_check.c) */
int mailchimp_check(void *ctx, struct retl_err *err);

/* 401/403: "mailchimp: API key invalid …", code 4; else 0 */
int mailchimp_auth_error(const struct retl_http_req *req, struct retl_err *err);

/* "Title: detail (FIELD: message; …)" of a problem+json body, or the raw
 * response; malloc'd */
char *mailchimp_problem(const struct retl_http_req *req);

#endif
