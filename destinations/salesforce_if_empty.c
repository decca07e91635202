/*
 * salesforce_if_empty.c - per-field "write": "if_empty" for Salesforce
 * (README "Field ownership"): a field retl fills only while the record's
 * value is empty, so a value a person set in Salesforce is kept.
 *
 * finish() passes the upsert and update spools through sf_ie_filter before
 * they are sent (by sObject Collections or a Bulk job alike): the current
 * values of the if_empty fields of the records that exist are read with
 * SOQL, at most SF_LOOKUP_VALUES records a query,
 *
 *   upsert   SELECT Id, External_Id__c, Owner__c FROM Contact
 *            WHERE External_Id__c IN ('A-1','A-2')
 *   update   SELECT Id, Owner__c FROM Contact WHERE Id IN ('003…','003…')
 *            (the stored Id, the model's Id, or the one a look-up found)
 *
 * and each row goes on with the if_empty fields that hold a value left out
 * of its payload.  A field left out is left as it is on both paths: sObject
 * Collections updates only the fields a record carries, and Bulk API 2.0
 * ignores an empty CSV field on update ("Prepare CSV Files": "Empty field
 * values are ignored when you update records. To set a field value to
 * null, use a field value of #N/A"), so one job still has one column per
 * field for every row.  SOQL rather than the Collections retrieve call
 * (GET composite/sobjects/{Obj}?ids=&fields=): retrieve takes Ids only,
 * and an upsert knows only the External ID.
 *
 * Empty is null: Salesforce stores an empty text as null, so "" is never
 * answered for text (it is taken as empty too).  false and 0 are values: a
 * checkbox is never null, so an if_empty checkbox is written only when the
 * record is created.
 *
 * A record the query does not answer is written whole: an upsert creates
 * it with every field; an update of a deleted record fails as it would
 * without if_empty.  A query Salesforce refuses fails its rows with
 * Salesforce's words; one that got no answer leaves them for the next run:
 * nothing is written unread, which could overwrite a person's value.
 *
 * There is a window between the read and the write (an edit made in it is
 * overwritten); Salesforce's REST writes have no condition on a field's
 * current value to close it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "payload.h"
#include "private_file.h"
#include "salesforce_int.h"

int sf_ie_open(struct sf_ctx *c, struct retl_err *err)
{
	const struct retl_sync_cfg *sc = c->base.sc;
	c->nie = 0;
	c->ie = retl_calloc(c->base.nf ? c->base.nf : 1, sizeof(*c->ie));
	for (size_t i = 0; i < c->base.nf; i++) {
		const char *t = c->base.ftarget[i];
		if (!retl_mapping_field_if_empty(sc->mapping, i))
			continue;
		if (strchr(t, '.'))
			/* its value is the parent's External ID, the record's
			 * is a lookup Id: there is nothing to compare */
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: \"write\": \"if_empty\" is not supported for a Salesforce relationship target",
					    sc->file, t);
		if ((c->ext && !strcmp(t, c->ext)) || !strcmp(t, "Id"))
			return retl_err_set(err, RETL_EXIT_USAGE,
					    "%s: fields.%s: \"write\": \"if_empty\": the field the record is found by is always sent",
					    sc->file, t);
		for (const char *p = t; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '_'))
				/* it goes into a SOQL SELECT list as it is */
				return retl_err_set(err, RETL_EXIT_USAGE,
						    "%s: fields.%s: \"write\": \"if_empty\": \"%s\" is not a Salesforce field API name",
						    sc->file, t, t);
		c->ie[c->nie++] = t;
	}
	c->ie_quoted = 1;
	return 0;
}

void sf_ie_type(struct sf_ctx *c, const json_t *fields)
{
	if (c->ext && !c->by_id)
		c->ie_quoted = sf_soql_quoted(fields, c->ext);
}

/* what the reads of spool kind k go by; NULL when it has none */
static const char *read_by(const struct sf_ctx *c, enum sf_kind k)
{
	if (k == SF_UPDATE)
		return "Id";
	return k == SF_UPSERT ? c->ext : NULL;
}

/* the value op's record is read by; 0 when it has none */
static int read_value(const struct sf_ctx *c, enum sf_kind k,
		      const struct retl_op *op, retl_buf *v)
{
	if (k == SF_UPDATE) {
		retl_buf_reset(v);
		if (op->dest_id)
			retl_buf_adds(v, op->dest_id);
		return v->len > 0;
	}
	return sf_member_text(op, c->ext, v);
}

/* the key rows and answers meet by: an Id by its first 15 characters,
 * case kept (a 15-character Id is case-sensitive; the 18-character form
 * adds a checksum of the case), anything else as the look-up compares */
static void key_of(const struct sf_ctx *c, enum sf_kind k, const char *s, size_t n,
		   retl_buf *out)
{
	if (k != SF_UPDATE) {
		sf_soql_norm(c->ie_quoted, s, n, out);
		return;
	}
	retl_buf_reset(out);
	retl_buf_add(out, s, n < 15 ? n : 15);
}

/* the answered records by key -> the names of the if_empty fields that
 * hold a value in any of them, as an object used as a set */
static json_t *held_by_key(const struct sf_ctx *c, enum sf_kind k, const json_t *recs)
{
	json_t *held = json_object(), *x;
	retl_buf v = RETL_BUF_INIT, key = RETL_BUF_INIT;
	size_t i;
	json_array_foreach(recs, i, x) {
		sf_soql_text(json_object_get(x, read_by(c, k)), &v);
		if (!v.len)
			continue;
		key_of(c, k, v.ptr, v.len, &key);
		json_t *set = json_object_get(held, key.ptr);
		if (!set)
			json_object_set_new(held, key.ptr, set = json_object());
		for (size_t f = 0; f < c->nie; f++) {
			const json_t *fv = json_object_get(x, c->ie[f]);
			if (fv && !json_is_null(fv) &&
			    !(json_is_string(fv) && !json_string_length(fv)))
				json_object_set_new(set, c->ie[f], json_true());
		}
	}
	retl_buf_free(&v);
	retl_buf_free(&key);
	return held;
}

/* a member the read found holding a value (named in the set): theirs */
static int held_in(void *ud, const struct retl_pfield *f)
{
	retl_buf name = RETL_BUF_INIT;
	retl_pfield_name(f, &name);
	int in = json_object_get(ud, name.ptr ? name.ptr : "") != NULL;
	retl_buf_free(&name);
	return in;
}

/* op's payload without the members named in set, into out */
static int strip(const struct retl_op *op, const json_t *set, retl_buf *out)
{
	retl_buf_reset(out);
	return retl_payload_without(op->payload, op->payload_len, held_in, (void *)set, out);
}

static int report(struct sf_ctx *c, const struct retl_op *op, enum retl_result_kind k,
		  const char *why)
{
	struct retl_result r = { .kind = k, .reason = (char *)why };
	return c->base.env.report(c->base.env.ud, op->key, &r);
}

/* the SELECT list: Id, the field read by (unless Id), the if_empty fields */
static void select_list(const struct sf_ctx *c, enum sf_kind k, retl_buf *o)
{
	retl_buf_adds(o, "Id");
	if (strcmp(read_by(c, k), "Id"))
		retl_buf_addf(o, ", %s", read_by(c, k));
	for (size_t i = 0; i < c->nie; i++)
		retl_buf_addf(o, ", %s", c->ie[i]);
}

/* one write of op to out; -1 (err) when the spool cannot be written */
static int put(struct sf_ctx *c, FILE *out, const struct retl_op *op, long *nout,
	       struct retl_err *err)
{
	if (sf_spool_put(out, op) < 0)
		return retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot write %s: %s",
				    c->ie_path, strerror(errno));
	(*nout)++;
	return 0;
}

/* rows [0..n) read in one query and written to out (or reported) */
static int segment(struct sf_ctx *c, enum sf_kind k, struct retl_op *ops,
		   retl_buf *vals, const int *has, size_t n, FILE *out, long *nout,
		   struct retl_err *err)
{
	retl_buf *q = retl_calloc(n ? n : 1, sizeof(*q)), sel = RETL_BUF_INIT,
		 key = RETL_BUF_INIT, body = RETL_BUF_INIT;
	json_t *recs = json_array();
	size_t nq = 0;
	char *why = NULL;
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		if (has[i])
			q[nq++] = vals[i];      /* borrowed */
	select_list(c, k, &sel);
	int got = nq ? sf_soql_in(c, sel.ptr, read_by(c, k), k == SF_UPDATE ? 1 : c->ie_quoted,
				  q, nq, recs, &why, err) : 1;
	json_t *held = held_by_key(c, k, recs);
	if (got < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (has[i] && got == 0) {
			retl_buf msg = RETL_BUF_INIT;
			retl_buf_addf(&msg, "salesforce: reading the \"if_empty\" fields of %s by %s: %s",
				      c->base.object, read_by(c, k),
				      why ? why : "no answer; read again next run");
			rc = report(c, &ops[i], why ? RETL_RES_REJECT : RETL_RES_RETRY, msg.ptr);
			retl_buf_free(&msg);
			continue;
		}
		const json_t *set = NULL;
		if (has[i]) {
			key_of(c, k, vals[i].ptr, vals[i].len, &key);
			set = json_object_get(held, key.ptr);
		}
		struct retl_op one = ops[i];
		if (json_object_size(set) && strip(&ops[i], set, &body) == 0) {
			one.payload = body.ptr;
			one.payload_len = body.len;
		}
		rc = put(c, out, &one, nout, err);
	}
	json_decref(held);
	json_decref(recs);
	free(why);
	free(q);
	retl_buf_free(&sel);
	retl_buf_free(&key);
	retl_buf_free(&body);
	return rc;
}

/* every op of `in` through segment(), a query's worth at a time */
static int filter(struct sf_ctx *c, enum sf_kind k, FILE *in, FILE *out, long *nout,
		  struct retl_err *err)
{
	struct retl_op ops[SF_LOOKUP_VALUES];
	retl_buf bufs[SF_LOOKUP_VALUES], vals[SF_LOOKUP_VALUES];
	int has[SF_LOOKUP_VALUES];
	int rc = 0, got = 1;
	int quoted = k == SF_UPDATE ? 1 : c->ie_quoted;
	retl_buf sel = RETL_BUF_INIT;
	select_list(c, k, &sel);
	memset(bufs, 0, sizeof(bufs));
	memset(vals, 0, sizeof(vals));
	while (rc == 0 && got > 0) {
		size_t n = 0;
		while (n < SF_LOOKUP_VALUES && (got = sf_spool_get(in, &bufs[n], &ops[n])) > 0) {
			has[n] = read_value(c, k, &ops[n], &vals[n]);
			n++;
		}
		for (size_t i = 0; rc == 0 && i < n; ) {
			size_t e = i, size = 200 + 3 * sel.len;
			for (; e < n; e++) {
				size_t add = has[e] ? sf_soql_cost(quoted, &vals[e]) : 0;
				if (e > i && size + add > SF_QUERY_MAX)
					break;
				size += add;
			}
			rc = segment(c, k, ops + i, vals + i, has + i, e - i, out, nout, err);
			i = e;
		}
	}
	if (rc == 0 && got < 0)
		rc = -2;
	for (size_t i = 0; i < SF_LOOKUP_VALUES; i++) {
		retl_buf_free(&bufs[i]);
		retl_buf_free(&vals[i]);
	}
	retl_buf_free(&sel);
	return rc;
}

FILE *sf_ie_filter(struct sf_ctx *c, enum sf_kind k, FILE *in, const char *in_path,
		   long *n, struct retl_err *err)
{
	if (!c->nie || !read_by(c, k))
		return in;
	if (!c->ie_path) {
		retl_buf p = RETL_BUF_INIT;
		retl_buf_addf(&p, "%s/%s.if_empty.spool", c->dir, c->base.sc->name);
		c->ie_path = retl_buf_detach(&p);
	}
	if (c->ie_spool)
		fclose(c->ie_spool);    /* the previous kind's, sent by now */
	c->ie_spool = retl_fopen_private(c->ie_path, "w+", 1);
	if (!c->ie_spool) {
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot create %s: %s",
			     c->ie_path, strerror(errno));
		return NULL;
	}
	*n = 0;
	int rc = filter(c, k, in, c->ie_spool, n, err);
	if (rc == -2)
		sf_spool_damaged(in_path, err);
	if (rc < 0)
		return NULL;
	if (fflush(c->ie_spool) != 0 || fseek(c->ie_spool, 0, SEEK_SET) != 0) {
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot read back %s: %s",
			     c->ie_path, strerror(errno));
		return NULL;
	}
	return c->ie_spool;
}
