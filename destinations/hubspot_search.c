/*
 * hubspot_search.c - how the HubSpot destination finds records when the
 * match property is not one batch/upsert can take.
 *
 *   unique property     batch/upsert (update mode: batch/update) by
 *                       idProperty, as hubspot.c does; nothing here
 *   hs_object_id        the record id itself: batch/update by it; a row
 *                       whose id HubSpot does not have fails "no record
 *                       matches" (HubSpot makes the ids: nothing to create)
 *   not unique          (companies' domain, hasUniqueValue false) the
 *                       batch's values are looked up with the search
 *                       endpoint, POST /crm/v3/objects/{object}/search,
 *                       one IN filter of at most 100 values, 200 results
 *                       a page, paged with `after`; then per row:
 *                         one record   batch/update by its id
 *                         none         upsert, mirror: batch/create
 *                                      (never replayed blindly, as every
 *                                      create); update: the row fails
 *                                      "no record matches"
 *                         more         the row fails "ambiguous match
 *                                      (N records)"
 *                       A row whose record id is stored (dest_id: it was
 *                       created or found before) is updated by that id
 *                       with no search; if HubSpot no longer has it, it
 *                       is searched for again.
 *                       Mode membership (hubspot_lists.c) searches the
 *                       same way; one record joins or leaves the list,
 *                       none fails "no record matches" (nothing created).
 *
 * Search is eventually consistent: HubSpot indexes a new record a few
 * seconds after it is created.  retl stores the id of every record it
 * creates and never searches for those again, so this matters only for a
 * create whose answer was lost (or a run killed mid-request): the next
 * run's search may miss a record created seconds before and create it
 * again.  A run started right after a failed one can meet it; one a
 * minute later cannot (README, "Matching").
 *
 * Limits (HubSpot's CRM search guide, "Limitations"): 5 search requests a
 * second per account, counted apart from the burst limit (their own
 * limiter, shared per token like the burst one); at most 200 results a
 * page; at most 10,000 results a query (paging further is refused: ops
 * still undecided then are searched one by one, where `total` alone
 * decides); at most 100 values in an IN filter.
 *
 * While a search is paged, an op's progress rides in its result (not
 * done): dest_id the first record found, reason "search:<count>:<after>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "hash.h"
#include "hubspot_int.h"
#include "log.h"

#define HS_SEARCH_PAGE 200        /* results a page, at most */
#define HS_SEARCH_VALUES 100      /* values of an IN filter, at most */
#define HS_SEARCH_CAP 10000       /* results a query may page through */
#define HS_SEARCH_PER_S 5         /* search requests a second */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- setup ---- */

int hubspot_known_unique(const char *object, const char *prop)
{
	return !strcmp(prop, "hs_object_id") ||
	       ((!strcmp(object, "contacts") || !strcmp(object, "0-1")) &&
		!strcmp(prop, "email"));
}

/* is the property unique?  HubSpot's definition of it says (hasUniqueValue);
 * *known 0 when HubSpot has no such property or object */
static int read_unique(struct hs_ctx *c, int *unique, int *known, struct retl_err *err)
{
	retl_buf path = RETL_BUF_INIT;
	json_t *root = NULL;
	int rc = -1;
	retl_buf_addf(&path, "%s/%s/%s", c->properties, c->base.object, c->id_prop);
	struct retl_http_req *req = retl_hd_get(&c->base, path.ptr);
	if (hubspot_auth_error(req, err) < 0) {
		/* err says why */
	} else if (req->status == 404 || req->status == 400) {
		/* no such property or object: `retl check` names it, and the
		 * writes fail with HubSpot's message */
		*unique = 1;
		*known = 0;
		rc = 0;
	} else if (retl_hd_answered(&c->base, req, path.ptr, NULL, err) == 0) {
		json_error_t je;
		root = json_loadb(req->resp.ptr, req->resp.len, 0, &je);
		*unique = json_is_true(json_object_get(root, "hasUniqueValue"));
		*known = 1;
		rc = 0;
	}
	json_decref(root);
	retl_http_req_free(req);
	retl_buf_free(&path);
	return rc;
}

int hubspot_match_setup(struct hs_ctx *c, struct retl_err *err)
{
	const struct retl_sync_cfg *sc = c->base.sc;
	int unique = 1;
	if (!c->id_prop)
		return 0;
	if (!strcmp(c->id_prop, "hs_object_id")) {
		if (c->base.mode == RETL_MODE_INSERT)
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: match.hs_object_id: mode \"insert\" creates records and HubSpot makes their ids; match on a property, or use mode \"update\"",
					    sc->file);
		c->by_object_id = 1;
		return 0;
	}
	if (hubspot_known_unique(c->base.object, c->id_prop))
		return 0;
	if (c->base.env.api_budget == 0)
		return 0;       /* no requests at all (tests without a network) */
	/* HubSpot fixes hasUniqueValue when a property is made: read once and
	 * kept in the sync's notes, so a run with nothing to send sends
	 * nothing (check and plan, without notes, read it each time) */
	retl_buf note = RETL_BUF_INIT;
	retl_buf_addf(&note, "hubspot.unique.%s.%s", c->base.object, c->id_prop);
	const struct retl_dest_env *env = &c->base.env;
	char *known = env->note_get ? env->note_get(env->ud, note.ptr) : NULL;
	int rc = 0, sure = 0;
	if (known) {
		unique = strcmp(known, "0") != 0;
	} else if ((rc = read_unique(c, &unique, &sure, err)) == 0 && sure && env->note_set) {
		rc = env->note_set(env->ud, note.ptr, unique ? "1" : "0") < 0 ?
			retl_err_set(err, RETL_EXIT_DEST, "hubspot: cannot write the state store's note %s",
				     note.ptr) : 0;
	}
	free(known);
	retl_buf_free(&note);
	if (rc < 0)
		return -1;
	if (unique)
		return 0;
	c->search = 1;
	hubspot_search_limiter(c);
	return 0;
}

retl_ratelimit *hubspot_search_limiter(struct hs_ctx *c)
{
	if (c->search_rate)
		return c->search_rate;
	const char *token = json_string_value(json_object_get(c->base.dc->options, "token"));
	char key[64];
	/* per credential, like the burst limiter: keyed by a hash */
	snprintf(key, sizeof(key), "hubspot-search:%016llx",
		 (unsigned long long)retl_hash64(token ? token : "", token ? strlen(token) : 0,
						 0x68756273706f74ULL));
	/* a one-second window held 0.3 s longer: answers that arrive late
	 * on a busy network would otherwise meet HubSpot's window */
	c->search_rate = retl_rate_shared(key, HS_SEARCH_PER_S, 1.0, 0.3);
	return c->search_rate;
}

/* ---- prepare ---- */

void hubspot_match_prepared(const struct hs_ctx *c, struct retl_batch *b, size_t i,
			    const char *id)
{
	/* the record id the model gives, where hubspot_update_id finds it
	 * (prepared ids are not NUL-terminated); decode overwrites it */
	if (c->by_object_id && id[0])
		retl_result_set(&b->results[i], RETL_RES_RETRY, id, NULL);
}

int hubspot_match_kind(const struct hs_ctx *c, const struct retl_op *op)
{
	int has_id = op->dest_id && op->dest_id[0];
	if (c->by_object_id)
		return op->kind == RETL_OP_REMOVE ? -1 : HS_UPDATE;
	if (!c->search)
		return -1;
	if (op->kind == RETL_OP_REMOVE)
		return has_id ? HS_ARCHIVE : HS_SEARCH;
	if (c->base.mode == RETL_MODE_INSERT || op->kind == RETL_OP_INSERT)
		return op->pending ? HS_SEARCH : HS_CREATE;
	return has_id ? HS_UPDATE : HS_SEARCH;
}

size_t hubspot_ops_per_request(void *d, int kind)
{
	if (kind >= HS_NKIND)
		return hubspot_assoc_ops_per_request(d, kind);
	if (kind == HS_SEARCH1)
		return 1;
	return kind == HS_SEARCH ? HS_SEARCH_VALUES : 100;
}

const char *hubspot_update_id(const struct hs_ctx *c, const struct retl_request *r,
			      size_t k)
{
	const struct retl_op *op = retl_req_op(r, k);
	const struct retl_result *res = retl_req_result(r, k);
	int found_id = res->dest_id && res->dest_id[0];
	if (c->by_object_id && found_id)
		return res->dest_id;    /* the model's id wins over a stored one */
	if (op->dest_id && op->dest_id[0])
		return op->dest_id;
	return found_id ? res->dest_id : NULL;
}

/* ---- encode ---- */

/* the paging cursor an op's progress carries ("search:<n>:<after>") */
static const char *progress_after(const struct retl_result *res, long *count)
{
	const char *s = res->reason;
	char *end;
	*count = 0;
	if (!s || strncmp(s, "search:", 7))
		return NULL;
	*count = strtol(s + 7, &end, 10);
	return *end == ':' ? end + 1 : NULL;
}

void hubspot_search_encode(struct hs_ctx *c, struct retl_request *r)
{
	struct retl_http_req *req = r->http;
	retl_buf *o = &req->body;
	retl_buf url = RETL_BUF_INIT;
	long n;
	const char *after = r->kind == HS_SEARCH ?
		progress_after(retl_req_result(r, 0), &n) : NULL;

	retl_buf_addf(&url, "%s%s/%s/search", c->base.url, c->objects, c->base.object);
	req->method = "POST";
	req->url = retl_buf_detach(&url);
	req->idempotent = 1;
	req->rate2 = c->search_rate;
	/* the spec (PublicObjectSearchRequest) requires after, filterGroups,
	 * limit, properties and sorts */
	retl_buf_adds(o, "{\"filterGroups\":[{\"filters\":[{\"propertyName\":");
	retl_buf_add_json_str(o, c->id_prop, strlen(c->id_prop));
	if (r->kind == HS_SEARCH1) {
		size_t len;
		const char *v = retl_req_id(r, 0, &len);
		retl_buf_adds(o, ",\"operator\":\"EQ\",\"value\":");
		retl_buf_add_json_str(o, v, len);
	} else {
		retl_buf_adds(o, ",\"operator\":\"IN\",\"values\":[");
		for (size_t k = 0; k < r->n; k++) {
			size_t len;
			const char *v = retl_req_id(r, k, &len);
			if (k)
				retl_buf_addc(o, ',');
			retl_buf_add_json_str(o, v, len);
		}
		retl_buf_addc(o, ']');
	}
	retl_buf_adds(o, "}]}],\"properties\":[");
	retl_buf_add_json_str(o, c->id_prop, strlen(c->id_prop));
	/* one record is enough to tell one from many: `total` counts them */
	retl_buf_addf(o, "],\"limit\":%d,\"after\":", r->kind == HS_SEARCH1 ? 1 : HS_SEARCH_PAGE);
	retl_buf_add_json_str(o, after ? after : "0", strlen(after ? after : "0"));
	retl_buf_adds(o, ",\"sorts\":[]}");
}

/* ---- decode ---- */

/* an op's value and a found record's, compared as HubSpot's search does
 * (string values without case) */
static int same_value(const struct retl_request *r, size_t k, const char *v)
{
	size_t n;
	const char *mine = retl_req_id(r, k, &n);
	return v && strlen(v) == n && !strncasecmp(mine, v, n);
}

/* the record a search found for op k, once every page is read */
static void found(const struct hs_ctx *c, struct retl_request *r, size_t k, long count,
		  const char *id)
{
	const struct retl_op *op = retl_req_op(r, k);
	char why[96];
	if (count > 1) {
		snprintf(why, sizeof(why), "ambiguous match (%ld records)", count);
		retl_req_set(r, k, RETL_RES_REJECT, NULL, why);
	} else if (count == 1 && c->base.mode == RETL_MODE_MEMBERSHIP) {
		hubspot_list_found(r, k, id);   /* joins or leaves the list */
	} else if (count == 1 && op->kind == RETL_OP_REMOVE) {
		retl_req_set(r, k, RETL_RES_RETRY, id, "found; not archived yet");
		retl_req_again(r, k, HS_ARCHIVE);
	} else if (count == 1 && (c->base.mode == RETL_MODE_INSERT ||
				  op->kind == RETL_OP_INSERT)) {
		/* a pending create that did happen */
		retl_req_set(r, k, RETL_RES_ACK, id, NULL);
	} else if (count == 1) {
		retl_req_set(r, k, RETL_RES_RETRY, id, "found; not updated yet");
		/* if_empty fields: their current values are read first */
		retl_req_again(r, k, c->nie ? HS_PEEK_ID : HS_UPDATE);
	} else if (op->kind == RETL_OP_REMOVE) {
		retl_req_set(r, k, RETL_RES_ACK, NULL, NULL);   /* gone already */
	} else if (c->base.mode == RETL_MODE_UPDATE || c->base.mode == RETL_MODE_MEMBERSHIP) {
		/* nothing to create: membership never makes records */
		size_t n;
		const char *v = retl_req_id(r, k, &n);
		retl_buf m = RETL_BUF_INIT;
		retl_buf_addf(&m, "no record matches (%s = ", c->id_prop);
		retl_buf_add(&m, v, n);
		retl_buf_addc(&m, ')');
		retl_req_set(r, k, RETL_RES_REJECT, NULL, m.ptr);
		retl_buf_free(&m);
	} else {
		retl_req_set(r, k, RETL_RES_RETRY, NULL, "not found; not created yet");
		retl_req_again(r, k, HS_CREATE);
	}
}

/* what one page says about op k: how many of its records, the first id */
static void count_page(const struct hs_ctx *c, const struct retl_request *r, size_t k,
		       const json_t *results, long *count, const char **first)
{
	size_t i;
	json_t *x;
	json_array_foreach(results, i, x) {
		const char *v = jstr(json_object_get(x, "properties"), c->id_prop);
		const char *id = jstr(x, "id");
		if (!id || !same_value(r, k, v))
			continue;
		if (!*count)
			*first = id;
		++*count;
	}
}

enum retl_hd_verdict hubspot_search_decode(struct hs_ctx *c, struct retl_request *r)
{
	json_error_t je;
	const struct retl_http_req *req = r->http;
	json_t *root = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	json_t *results = json_object_get(root, "results");
	if (!json_is_array(results)) {
		retl_req_set_all(r, RETL_RES_RETRY, "hubspot: search: no results in the answer");
		json_decref(root);
		return RETL_HD_DONE;
	}
	long total = (long)json_integer_value(json_object_get(root, "total"));
	const char *next = jstr(json_object_get(json_object_get(root, "paging"), "next"), "after");
	long next_at = next ? strtol(next, NULL, 10) : 0;
	/* paging on would pass the 10,000-result cap: one by one instead */
	int single = next && next_at + HS_SEARCH_PAGE > HS_SEARCH_CAP;
	for (size_t k = 0; k < r->n; k++) {
		struct retl_result *res = retl_req_result(r, k);
		long count = 0;
		if (r->kind == HS_SEARCH1) {
			/* EQ: every result is the op's; total counts them all */
			const char *id = jstr(json_array_get(results, 0), "id");
			count = json_array_size(results);
			if (total > count)
				count = total;
			if (count == 1 && !id)
				count = 0;
			found(c, r, k, count, id);
			continue;
		}
		progress_after(res, &count);
		char *first = res->dest_id ? retl_strdup(res->dest_id) : NULL;
		const char *page_first = NULL;
		long before = count;
		count_page(c, r, k, results, &count, &page_first);
		if (!before && page_first) {
			free(first);
			first = retl_strdup(page_first);
		}
		if (single && count < 2) {
			retl_req_set(r, k, RETL_RES_RETRY, NULL, "searched one by one");
			retl_req_again(r, k, HS_SEARCH1);
		} else if (next && !single) {
			char prog[64];
			snprintf(prog, sizeof(prog), "search:%ld:%.40s", count, next);
			retl_req_set(r, k, RETL_RES_RETRY, first, prog);
			retl_req_again(r, k, HS_SEARCH);
		} else {
			found(c, r, k, count, first);
		}
		free(first);
	}
	json_decref(root);
	return RETL_HD_DONE;
}

/* ---- updates that found nothing ---- */

void hubspot_update_missing(const struct hs_ctx *c, struct retl_request *r, size_t k,
			    const char *why)
{
	const struct retl_op *op = retl_req_op(r, k);
	size_t n;
	const char *v = retl_req_id(r, k, &n);
	if (c->search && retl_req_tries(r, k) < 3 && n) {
		/* the stored or found record is gone: look again */
		retl_req_set(r, k, RETL_RES_RETRY, NULL, NULL);
		retl_req_again(r, k, HS_SEARCH);
		return;
	}
	if (op->dest_id && op->dest_id[0] && !c->by_object_id && !c->search) {
		/* the record retl updated before is gone */
		retl_req_set(r, k, RETL_RES_REJECT, NULL, why);
		return;
	}
	retl_buf m = RETL_BUF_INIT;
	retl_buf_addf(&m, "no record matches (%s = ", c->id_prop ? c->id_prop : "id");
	if (n)
		retl_buf_add(&m, v, n);
	else
		retl_buf_adds(&m, hubspot_update_id(c, r, k) ? hubspot_update_id(c, r, k) : "");
	retl_buf_addc(&m, ')');
	retl_req_set(r, k, RETL_RES_REJECT, NULL, m.ptr);
	retl_buf_free(&m);
}

/* ---- plan ---- */

void hubspot_plan(const struct retl_dest_cfg *dc, const struct retl_sync_cfg *sc,
		  long ops, long *requests, long *jobs)
{
	const char *prop = NULL, *k;
	json_t *v;
	(void)dc;
	*jobs = 0;
	*requests = (ops + 99) / 100;
	json_object_foreach(sc->match, k, v)
		prop = k;
	long lookups = 0;
	const char *ie = retl_mapping_if_empty_field(sc->mapping);
	if (sc->mode == RETL_MODE_MEMBERSHIP) {
		/* the records are found before they join (hubspot_lists.c), by
		 * batch/read or by search, 100 values a request either way;
		 * removals go by the stored id */
		if (ops && prop && strcmp(prop, "hs_object_id"))
			*requests += lookups = (ops + 99) / 100;
	} else if (ops && ie && sc->mode != RETL_MODE_INSERT) {
		long reads = (ops + 99) / 100;
		*requests += reads;
		retl_log(RETL_LOG_INFO, sc->name,
			 "plan: \"write\": \"if_empty\" (%s, ...): %ld batch/read request%s of the current values before the writes",
			 ie, reads, reads == 1 ? "" : "s");
	}
	if (!ops || !prop || !sc->object || hubspot_known_unique(sc->object, prop))
		return;
	/* not known to be unique by its name: a run reads the property's
	 * definition, and when it is not unique searches each batch first
	 * (a plan cannot ask HubSpot: it counts the searches a non-unique
	 * property costs, at least one per 100 rows) */
	long searches = (ops + HS_SEARCH_VALUES - 1) / HS_SEARCH_VALUES;
	*requests += 1 + (lookups ? 0 : searches);      /* membership's replace its reads */
	retl_log(RETL_LOG_INFO, sc->name,
		 "plan: match on %s.%s: when HubSpot says it is not unique, records are found through search: %ld search request%s (at most %d a second) before the writes, and one read of the property's definition",
		 sc->object, prop, searches, searches == 1 ? "" : "s", HS_SEARCH_PER_S);
}
