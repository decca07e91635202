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
	       MC_PATCH,          /* update mode: PATCH …/{hash}, members
				   * only (404: no record matches) */
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
	char *segment;                    /* mode membership: the sync key
					   * "segment" (mailchimp_segment.c) */
};

/* ---- mailchimp_segment.c: mode "membership", a static segment's members;
 * setup reads the sync key "segment" (refused in other modes), the others
 * stand in for mailchimp.c's own in that mode ---- */
int mailchimp_segment_setup(struct mc_ctx *c, struct retl_err *err);
void mailchimp_segment_fini(struct mc_ctx *c);
int mailchimp_segment_prepare(struct mc_ctx *c, struct retl_batch *b, size_t i,
			      retl_buf *id, retl_buf *reason);
int mailchimp_segment_encode(struct mc_ctx *c, struct retl_request *r);
enum retl_hd_verdict mailchimp_segment_decode(struct mc_ctx *c, struct retl_request *r,
					      struct retl_err *err);
int mailchimp_segment_check(struct mc_ctx *c, struct retl_err *err);

/* ---- mailchimp_tags.c ---- */

#define MC_TAGS_NOTE "mailchimp_tags"

/* adds a row's tag names to the managed ones; a new name is written to the
 * sync's note at once, before any request carries it */
int mailchimp_manage(struct mc_ctx *c, const json_t *tags);
/*
 * An op's prepared body is its member object (mailchimp_member()), and when
 * tags are mapped a newline and the row's tag names as a JSON array.
 * mailchimp_member_json() is the first part (length in *n).
 */
const char *mailchimp_member_json(const struct retl_request *r, size_t k, size_t *n);
/* do the member's tags (an answer's member object) differ from what op k's
 * row wants: a tag the row sets missing, or a managed tag the row no longer
 * sets still there? */
int mailchimp_tags_differ(const struct mc_ctx *c, const json_t *member,
			  const struct retl_request *r, size_t k);
/* the tags endpoint's body for the request's op: the row's tags active,
 * every other managed one inactive */
void mailchimp_tags_body(const struct mc_ctx *c, const struct retl_request *r,
			 retl_buf *o);

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
