/*
 * mailchimp_int.h - what the Mailchimp destination's files share:
 * mailchimp.c (options, open, requests, answers), mailchimp_member.c (a
 * payload into a member object) and mailchimp_check.c (`retl check`).
 * Private to the destination.
 */
#ifndef RETL_MAILCHIMP_INT_H
#define RETL_MAILCHIMP_INT_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "http_dest.h"

/*
 * Request kinds.  The removals that go one member a request come first:
 * the base sends a batch's kinds in this order.
 */
enum mc_kind { MC_ARCHIVE, MC_DELETE,
	       MC_UPSERT,         /* batch subscribe of new addresses, then: */
	       MC_INSERT,         /* the same, existing addresses left alone */
	       MC_UNSUB,          /* batch subscribe, status unsubscribed */
	       MC_PUT,            /* an upsert's existing member: PUT …/{hash}
				   * with status_if_new (one a request) */
	       MC_TAGS,           /* a member whose tags differ from its row's
				   * (one member a request) */
	       MC_NKIND };

struct mc_ctx {
	struct retl_http_dest base;       /* first */
	/* base.object is the audience (list) id */
	enum retl_on_remove on_remove;
	int delete_permanent;             /* sync key: on_remove delete erases */
	const char *status_if_new;        /* a new member's status: subscribed |
					   * transactional | pending */
	int has_tags;                     /* "tags" is mapped */
	json_t *managed;                  /* tag names the mapping has ever set
					   * (the sync's note "mailchimp_tags") */
};

/* GET /ping, /lists/{id}, /lists/{id}/merge-fields (mailchimp_check.c) */
int mailchimp_check(void *ctx, struct retl_err *err);

/* 401/403: "mailchimp: API key invalid …", code 4; else 0 */
int mailchimp_auth_error(const struct retl_http_req *req, struct retl_err *err);

/* "Title: detail (FIELD: message; …)" of a problem+json body, or the raw
 * response; malloc'd */
char *mailchimp_problem(const struct retl_http_req *req);

/*
 * mailchimp_member.c: the member object of one payload into body (no
 * status: the request adds it), its lowercased address into email, its tag
 * names appended to tags (when not NULL).  -1 with a reason for a row
 * Mailchimp cannot take.
 */
int mailchimp_member(const char *payload, size_t len, retl_buf *body,
		     retl_buf *email, json_t *tags, retl_buf *reason);

#endif
