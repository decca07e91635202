/*
 * hubspot_assoc_int.h - what hubspot_assoc.c (associations at run time) and
 * hubspot_assoc_check.c (their `retl check`) share.  Private to them.
 */
#ifndef RETL_HUBSPOT_ASSOC_INT_H
#define RETL_HUBSPOT_ASSOC_INT_H

#include "hubspot_int.h"

#define HS_ASSOC_MAX 8            /* declarations a sync may have */
#define HS_ASSOC_VALUES 10        /* values a row may give one declaration */
#define HS_AOP_BUCKETS 1021       /* hash chains of the ops' table */
#define HS_FIND_OPS 10            /* ops a search carries: <= 100 IN values */

enum { ST_FIND, ST_READ, ST_CREATE, ST_ARCHIVE, ST_N };

struct hs_decl {
	const char *name;             /* the key in "associations" (borrowed) */
	const char *to, *by, *label;  /* borrowed from the sync's options */
	long type_id;                 /* "type_id", or 0 */
	char *category;               /* resolved: "HUBSPOT_DEFINED" ... */
	long tid;                     /* resolved typeId */
	int unlabeled;                /* the HubSpot-defined unlabeled type */
};

struct strv {
	char **v;
	size_t n;
};

struct aop {
	const struct retl_batch *b;
	size_t i;
	char *obj;                    /* the written record's id */
	size_t decl;                  /* the declaration being done */
	int step;                     /* the next stage of it */
	struct strv want, have;       /* target ids found / associated now */
	struct strv val[HS_ASSOC_MAX]; /* the row's values per declaration,
				       * read from the payload once, at prepare */
	struct aop *next;             /* in its hash chain */
};

struct hs_assoc {
	struct hs_decl d[HS_ASSOC_MAX];
	size_t nd;
	int resolved;                 /* 1 done, -1 failed (why) */
	char *why;
	char *assoc_base;             /* "/crm/v4/associations" or
				       * "/crm/associations/2026-03" */
	struct aop *ops[HS_AOP_BUCKETS]; /* ops between requests, hashed by
					  * (batch, index) */
};

/* GET .../labels of declaration d and its type from it: 0, or -1 with why
 * (an HTTP failure also in err) */
int hubspot_assoc_resolve_one(struct hs_ctx *c, struct hs_decl *d, retl_buf *why,
			      struct retl_err *err);

#endif
