/*
 * match.h - a row's match value: how the destination finds its record (the
 * sync's `match` fields), read from the mapped payload, and the set of
 * match values one run has met.
 *
 * The value is what the payload sends in the match fields: strings decoded
 * and trimmed, other values as written, several fields joined by U+001F.
 * Two values name the same record when they are equal ignoring ASCII case
 * (HubSpot and Mailchimp compare emails so; Salesforce External IDs are
 * case-insensitive unless made otherwise): the hash lowercases, so a run
 * that meets "A@x.io" and "a@x.io" sees one record.  A destination that
 * compares exactly (retl_destination.match_exact: Airtable's merge fields)
 * gets an exact hash: there "A@x.io" is another record, and the one left
 * behind by a change of case is removed.
 */
#ifndef RETL_MATCH_H
#define RETL_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * The match value of payload for the fields targets[0..n) into out: 1,
 * 0 when every part is empty (no value), -1 when the payload cannot be
 * read.
 */
int retl_match_value(const char *payload, size_t len, const char *const *targets,
		     size_t n, retl_buf *out);
/* the value's hash, ASCII case ignored unless exact; never 0 (0 stands
 * for none) */
uint64_t retl_match_hash(const char *v, size_t n, int exact);

/* the match values (by hash) met in one run */
typedef struct retl_match_set retl_match_set;
retl_match_set *retl_match_set_new(void);
void retl_match_set_free(retl_match_set *s);
/* adds h: 1 when it was not there, 0 when it was */
int retl_match_set_add(retl_match_set *s, uint64_t h);
int retl_match_set_has(const retl_match_set *s, uint64_t h);

#endif
