/*
 * salesforce_bulk.c - Bulk API 2.0 ingest jobs for the Salesforce
 * destination: a spool of deferred rows becomes RFC 4180 CSV and one job
 * per bulk_max_bytes (100 MB raw: the 150 MB base64 upload limit).
 *
 *   1. POST /jobs/ingest (operation, externalIdFieldName, CSV, LF); a
 *      value that is null or empty is written #N/A (an empty field would
 *      leave the old value on update), a field the payload leaves out is
 *      an empty field (left as it is)
 *   2. the job id and its map file go into a note BEFORE the upload
 *   3. PUT /jobs/ingest/{id}/batches (text/csv), PATCH UploadComplete
 *      (never replayed blindly: after a lost answer, a 5xx or
 *      INVALIDJOBSTATE the job's state is read first; see set_state)
 *   4. GET /jobs/ingest/{id} with backoff until JobComplete / Failed /
 *      Aborted (or bulk_wait seconds: the rows stay staged, the note stays,
 *      and the next run resumes)
 *   5. successfulResults (ack with sf__Id), failedResults (reject with
 *      sf__Error), unprocessedrecords (retry); a row in none of them is
 *      retried.  Rows are found by their External ID (or Id) column
 *      through the map file: match value -> key, one JSON line each.
 *
 * A run killed mid-job leaves the note: the next run's open polls that
 * job (or aborts it when the upload was not completed) and reports its
 * rows, instead of uploading them again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "private_file.h"
#include "log.h"
#include "payload.h"
#include "salesforce_int.h"

#define NOTE "bulk_job"

static void csv_field(retl_buf *o, const char *s, size_t n)
{
	retl_buf_addc(o, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			retl_buf_addc(o, '"');
		retl_buf_addc(o, s[i]);
	}
	retl_buf_addc(o, '"');
}

/* columns of the job's CSV */
static void header(struct sf_ctx *c, enum sf_kind k, retl_buf *o)
{
	if (k == SF_DELETE) {
		retl_buf_adds(o, "Id\n");
		return;
	}
	if (k == SF_UPDATE)
		retl_buf_adds(o, "Id");
	for (size_t i = 0; i < c->base.nf; i++) {
		if (k == SF_UPDATE && !strcmp(c->base.ftarget[i], "Id"))
			continue;       /* the first column (match {"Id": …}) */
		if (i || k == SF_UPDATE)
			retl_buf_addc(o, ',');
		retl_buf_adds(o, c->base.ftarget[i]);
	}
	sf_rel_header(c, o);
	retl_buf_addc(o, '\n');
}

/* the members of a relationship ("Account": {"External_Id__c": …}) to
 * the columns of their dotted targets; -1 if malformed */
static int rel_cols(struct sf_ctx *c, const struct retl_pfield *f, struct retl_pv *cols)
{
	struct retl_preader r;
	struct retl_pfield g;
	retl_buf name = RETL_BUF_INIT;
	int rc;
	if (retl_pv_open(&r, &f->v) < 0)
		return -1;
	while ((rc = retl_payload_next(&r, &g)) > 0) {
		retl_buf_reset(&name);
		retl_pfield_name(f, &name);
		retl_buf_addc(&name, '.');
		retl_pfield_name(&g, &name);
		int fi = retl_hd_field(&c->base, name.ptr);
		if (fi >= 0)
			cols[fi] = g.v;
	}
	retl_buf_free(&name);
	return rc;
}

/* a value that clears: null, or empty ("" or an empty multi-select) */
static void value_text(const struct retl_pv *v, retl_buf *out);

static int clears(const struct retl_pv *v)
{
	retl_buf t = RETL_BUF_INIT;
	if (v->kind == RETL_PV_NULL)
		return 1;
	value_text(v, &t);
	int empty = !t.len;
	retl_buf_free(&t);
	return empty;
}

/* the lookup columns (sf_rel_header): #N/A where a relationship's value
 * clears it, else empty (left as it is) */
static void rel_line(struct sf_ctx *c, const struct retl_pv *cols, retl_buf *o)
{
	for (size_t i = 0; i < c->base.nf; i++) {
		if (!strchr(c->base.ftarget[i], '.'))
			continue;
		retl_buf_addc(o, ',');
		if (cols[i].raw && clears(&cols[i]))
			retl_buf_adds(o, "#N/A");
	}
}

/* a value as CSV text: strings decoded, arrays (multi-select picklists)
 * joined with ';', numbers and booleans as written */
static void value_text(const struct retl_pv *v, retl_buf *out)
{
	struct retl_preader r;
	struct retl_pv x;
	int n = 0;
	if (v->kind == RETL_PV_STRING) {
		retl_pv_string(v, out);
		return;
	}
	if (v->kind != RETL_PV_ARRAY) {
		retl_buf_add(out, v->raw, v->len);
		return;
	}
	retl_pv_open(&r, v);
	while (retl_payload_item(&r, &x) > 0) {
		if (n++)
			retl_buf_addc(out, ';');
		if (x.kind == RETL_PV_STRING)
			retl_pv_string(&x, out);
	}
}

/*
 * One CSV line of op into o, its match value (External ID or Id) into mv;
 * the payload is read once, each member to its column (cols: one slot per
 * mapped field).  -1 (o unchanged) when the payload is not an object.
 */
static int csv_line(struct sf_ctx *c, enum sf_kind k, const struct retl_op *op,
		    struct retl_pv *cols, retl_buf *o, retl_buf *mv)
{
	struct retl_preader r;
	struct retl_pfield f;
	size_t mark = o->len;
	int rc;
	retl_buf_reset(mv);
	if (k == SF_DELETE || k == SF_UPDATE) {
		csv_field(o, op->dest_id, strlen(op->dest_id));
		retl_buf_adds(mv, op->dest_id);
		if (k == SF_DELETE) {
			retl_buf_addc(o, '\n');
			return 0;
		}
	}
	memset(cols, 0, c->base.nf * sizeof(*cols));
	if (retl_payload_open(&r, op->payload, op->payload_len) < 0)
		goto bad;
	while ((rc = retl_payload_next(&r, &f)) > 0) {
		int fi = retl_hd_field_named(&c->base, f.name, f.name_len);
		if (fi >= 0)
			cols[fi] = f.v;
		else if (f.v.kind == RETL_PV_OBJECT && rel_cols(c, &f, cols) < 0)
			goto bad;
	}
	if (rc < 0)
		goto bad;
	retl_buf v = RETL_BUF_INIT;
	for (size_t i = 0; i < c->base.nf; i++) {
		int is_match = c->ext && !strcmp(c->base.ftarget[i], c->ext) &&
			       k != SF_UPDATE;
		if (k == SF_UPDATE && !strcmp(c->base.ftarget[i], "Id"))
			continue;
		if (i || k == SF_UPDATE)
			retl_buf_addc(o, ',');
		if (!cols[i].raw)
			continue;               /* absent (on_null "skip"): left as it is */
		if (strchr(c->base.ftarget[i], '.') && clears(&cols[i]))
			continue;               /* cleared in its lookup column */
		if (cols[i].kind == RETL_PV_NULL) {
			retl_buf_adds(o, "#N/A");   /* Bulk API's null */
			continue;
		}
		retl_buf_reset(&v);
		value_text(&cols[i], &v);
		/*
		 * An empty CSV field means "leave as it is" on update, so an
		 * empty value ("" or an empty multi-select) is sent as null, as
		 * sObject Collections stores it.  Not the job's match column: an
		 * empty External ID is refused by Salesforce either way, and
		 * its result must echo the value the map holds.
		 */
		if (!v.len && !is_match) {
			retl_buf_adds(o, "#N/A");
			continue;
		}
		csv_field(o, v.ptr ? v.ptr : "", v.len);
		if (is_match)
			retl_buf_add(mv, v.ptr ? v.ptr : "", v.len);
	}
	rel_line(c, cols, o);
	retl_buf_addc(o, '\n');
	retl_buf_free(&v);
	return 0;
bad:
	retl_buf_truncate(o, mark);
	return -1;
}

/* ---- a small RFC 4180 reader ---- */

/* next record of s[*pos..n) into fields (a JSON array); 0 at the end */
static int csv_next(const char *s, size_t n, size_t *pos, json_t *fields)
{
	size_t i = *pos;
	json_array_clear(fields);
	if (i >= n)
		return 0;
	retl_buf f = RETL_BUF_INIT;
	for (;;) {
		retl_buf_reset(&f);
		if (i < n && s[i] == '"') {
			for (i++; i < n; i++) {
				if (s[i] == '"') {
					if (i + 1 < n && s[i + 1] == '"') {
						retl_buf_addc(&f, '"');
						i++;
					} else {
						i++;
						break;
					}
				} else {
					retl_buf_addc(&f, s[i]);
				}
			}
		}
		while (i < n && s[i] != ',' && s[i] != '\n' && s[i] != '\r')
			retl_buf_addc(&f, s[i++]);
		json_array_append_new(fields, json_stringn(f.ptr ? f.ptr : "", f.len));
		if (i < n && s[i] == ',') {
			i++;
			continue;
		}
		if (i < n && s[i] == '\r')
			i++;
		if (i < n && s[i] == '\n')
			i++;
		break;
	}
	retl_buf_free(&f);
	*pos = i;
	return 1;
}

/* ---- REST calls of a job ---- */

static int call_ok(struct sf_ctx *c, struct retl_http_req *req, const char *what,
		   struct retl_err *err)
{
	if (req->status >= 200 && req->status < 300)
		return 0;
	if (sf_fatal_answer(c, req, err) < 0)
		return -1;
	char *t = sf_error_text(req);
	retl_err_set(err, RETL_EXIT_DEST, "salesforce: bulk %s: %s", what, t);
	free(t);
	return -1;
}

static char *job_path(struct sf_ctx *c, const char *id, const char *tail)
{
	retl_buf p = RETL_BUF_INIT;
	retl_buf_addf(&p, "/services/data/v%s/jobs/ingest/%s%s", c->version, id, tail);
	return retl_buf_detach(&p);
}

/* reports every row of a finished (or abandoned) job, from its map */
static int report_job(struct sf_ctx *c, const char *id, const char *map_path,
		      const char *match_col, int read_results, struct retl_err *err)
{
	json_t *map = json_object();     /* match value -> key */
	FILE *mf = fopen(map_path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	while (mf && (len = getline(&line, &cap, mf)) > 0) {
		json_error_t je;
		json_t *a = json_loadb(line, (size_t)len, 0, &je);
		if (json_is_array(a))
			json_object_set(map, json_string_value(json_array_get(a, 0)),
					json_array_get(a, 1));
		json_decref(a);
	}
	if (mf)
		fclose(mf);
	free(line);

	static const char *const what[] = { "successfulResults", "failedResults",
					    "unprocessedrecords" };
	json_t *fields = json_array();
	for (int w = 0; read_results && w < 3 && rc == 0; w++) {
		retl_buf tail = RETL_BUF_INIT;
		retl_buf_addf(&tail, "/%s/", what[w]);
		char *path = job_path(c, id, tail.ptr);
		retl_buf_free(&tail);
		struct retl_http_req *req = sf_call(c, "GET", path, "text/csv", NULL, 0);
		free(path);
		if (call_ok(c, req, what[w], err) < 0) {
			retl_http_req_free(req);
			rc = -1;
			break;
		}
		size_t pos = 0;
		long col = -1, idc = -1, errc = -1;
		if (csv_next(req->resp.ptr, req->resp.len, &pos, fields)) {
			for (size_t i = 0; i < json_array_size(fields); i++) {
				const char *h = json_string_value(json_array_get(fields, i));
				if (!strcmp(h, match_col))
					col = (long)i;
				else if (!strcmp(h, "sf__Id"))
					idc = (long)i;
				else if (!strcmp(h, "sf__Error"))
					errc = (long)i;
			}
		}
		while (rc == 0 && col >= 0 &&
		       csv_next(req->resp.ptr, req->resp.len, &pos, fields)) {
			const char *mv = json_string_value(json_array_get(fields, (size_t)col));
			json_t *key = mv ? json_object_get(map, mv) : NULL;
			if (!key)
				continue;
			struct retl_result r = { 0 };
			if (w == 0) {
				r.kind = RETL_RES_ACK;
				r.dest_id = idc >= 0 ? (char *)json_string_value(json_array_get(fields, (size_t)idc)) : NULL;
				if (r.dest_id && !r.dest_id[0])
					r.dest_id = NULL;
			} else if (w == 1) {
				r.kind = RETL_RES_REJECT;
				r.reason = errc >= 0 ? (char *)json_string_value(json_array_get(fields, (size_t)errc)) : NULL;
				/* a short line or an empty sf__Error: a reject
				 * still says why */
				if (!r.reason || !r.reason[0])
					r.reason = "failed in the bulk job";
			} else {
				r.kind = RETL_RES_RETRY;
				r.reason = "not processed by the bulk job; sent again next run";
			}
			if (c->base.env.report(c->base.env.ud, json_string_value(key), &r) < 0)
				rc = -1;
			json_object_del(map, mv);
		}
		retl_http_req_free(req);
	}
	/* rows in no result: not done */
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(map, tmp, k, v) {
		if (rc < 0)
			break;
		struct retl_result r = { .kind = RETL_RES_RETRY,
			.reason = "no result from the bulk job; sent again next run" };
		if (c->base.env.report(c->base.env.ud, json_string_value(v), &r) < 0)
			rc = -1;
	}
	json_decref(fields);
	json_decref(map);
	return rc;
}

/* the job's state now (GET /jobs/ingest/{id}: safe to replay) */
static int read_state(struct sf_ctx *c, const char *path, char *state, size_t ssz,
		      struct retl_err *err)
{
	struct retl_http_req *req = sf_call(c, "GET", path, NULL, NULL, 0);
	if (call_ok(c, req, "job info", err) < 0) {
		retl_http_req_free(req);
		return -1;
	}
	json_error_t je;
	json_t *j = json_loadb(req->resp.ptr ? req->resp.ptr : "", req->resp.len, 0, &je);
	const char *s = json_string_value(json_object_get(j, "state"));
	snprintf(state, ssz, "%s", s ? s : "?");
	json_decref(j);
	retl_http_req_free(req);
	return 0;
}

/* an answer that leaves open whether the transition happened: none (a
 * timeout, a dropped connection, abandoned by the engine's circuit
 * breaker), a 5xx, or INVALIDJOBSTATE (the job is no longer in the state
 * the transition starts from: an earlier try of it may have been
 * applied) */
static int unsure(const struct retl_http_req *req)
{
	return req->status == RETL_HTTP_TRANSPORT ||
	       req->status == RETL_HTTP_STOPPED || req->status >= 500 ||
	       (req->status >= 400 && req->resp.ptr &&
		strstr(req->resp.ptr, "INVALIDJOBSTATE"));
}

#define SET_STATE_TRIES 3

/*
 * Moves job id out of Open, to `to` ("UploadComplete" or "Aborted").
 * Neither transition is idempotent: one applied whose answer was lost and
 * sent again gets INVALIDJOBSTATE.  So the PATCH is never replayed blindly
 * (sf_call_once): after an unsure answer the job's state is read, and only
 * a job still Open is sent the transition again.  0: the job has left Open
 * (now: "to", or the state read: UploadComplete, InProgress, JobComplete,
 * Failed, Aborted; the caller polls it); -1 with err otherwise.
 */
static int set_state(struct sf_ctx *c, const char *id, const char *to,
		     const char *what, char *now, size_t nsz, struct retl_err *err)
{
	char *path = job_path(c, id, "");
	retl_buf body = RETL_BUF_INIT;
	char *why = NULL;
	int rc = -1;
	retl_buf_addf(&body, "{\"state\":\"%s\"}", to);
	for (int tries = 1; ; tries++) {
		struct retl_http_req *req = sf_call_once(c, "PATCH", path, body.ptr, body.len);
		int again = 0;
		if (req->status >= 200 && req->status < 300) {
			snprintf(now, nsz, "%s", to);
			rc = 0;
		} else if (!unsure(req)) {
			call_ok(c, req, what, err);     /* refused: nothing changed */
		} else if (read_state(c, path, now, nsz, err) == 0) {
			free(why);
			why = sf_error_text(req);
			if (strcmp(now, "Open") != 0) {
				/* the transition (or another) was applied */
				retl_log(RETL_LOG_INFO, c->base.sc->name,
					 "salesforce: bulk %s: job %s found %s after an unsure answer (%s)",
					 what, id, now, why);
				rc = 0;
			} else if (tries < SET_STATE_TRIES) {
				again = 1;      /* not applied: sending it again is safe */
			} else {
				retl_err_set(err, RETL_EXIT_DEST,
					     "salesforce: bulk %s: job %s is still Open after %d tries (last answer: %s)",
					     what, id, tries, why);
			}
		}
		retl_http_req_free(req);
		if (!again)
			break;
	}
	free(why);
	free(path);
	retl_buf_free(&body);
	return rc;
}

/* polls until the job ends: 1 ended (state in *st), 0 still running, -1 */
static int poll_job(struct sf_ctx *c, const char *id, char *state, size_t ssz,
		    struct retl_err *err)
{
	double delay = 0.2, waited = 0;
	char *path = job_path(c, id, "");
	int rc = -1;
	for (;;) {
		if (read_state(c, path, state, ssz, err) < 0)
			break;
		if (!strcmp(state, "JobComplete") || !strcmp(state, "Failed") ||
		    !strcmp(state, "Aborted") || !strcmp(state, "Open")) {
			rc = 1;
			break;
		}
		if (waited >= c->poll_max || c->over_budget) {
			rc = 0;
			break;
		}
		usleep((useconds_t)(delay * 1e6));
		waited += delay;
		delay = delay * 1.5 > 10 ? 10 : delay * 1.5;
	}
	free(path);
	return rc;
}

static int finish_job(struct sf_ctx *c, const char *id, const char *map_path,
		      const char *match_col, struct retl_err *err)
{
	char state[32];
	int p = poll_job(c, id, state, sizeof(state), err);
	if (p < 0)
		return -1;
	if (p == 0)
		return retl_err_set(err, RETL_EXIT_DEST,
				    "salesforce: bulk job %s still %s after %.0f s (bulk_wait): its rows wait; the next run reads its results",
				    id, state, c->poll_max);
	if (!strcmp(state, "Open")) {
		/* the upload never completed: nothing was processed */
		struct retl_err e;
		retl_err_clear(&e);
		if (set_state(c, id, "Aborted", "abort job", state, sizeof(state), &e) < 0) {
			/* still Open: a job whose upload is not complete is
			 * never processed, so its rows are simply sent again */
			retl_log(RETL_LOG_WARN, c->base.sc->name, "%s; its rows are sent again", e.msg);
		} else if (strcmp(state, "Aborted") != 0) {
			/* closed after all: its rows were processed */
			return finish_job(c, id, map_path, match_col, err);
		}
		if (report_job(c, id, map_path, match_col, 0, err) < 0)
			return -1;
	} else if (report_job(c, id, map_path, match_col, strcmp(state, "Aborted") != 0, err) < 0) {
		return -1;
	}
	if (c->base.env.note_set(c->base.env.ud, NOTE, NULL) < 0)
		return -1;
	unlink(map_path);
	return 0;
}

int sf_bulk_resume(struct sf_ctx *c, struct retl_err *err)
{
	char *note = c->base.env.note_get(c->base.env.ud, NOTE);
	if (!note)
		return 0;
	json_error_t je;
	json_t *j = json_loads(note, 0, &je);
	free(note);
	const char *id = json_string_value(json_object_get(j, "id"));
	const char *map = json_string_value(json_object_get(j, "map"));
	const char *col = json_string_value(json_object_get(j, "match"));
	int rc = 0;
	if (id && map && col)
		rc = finish_job(c, id, map, col, err);
	else
		rc = c->base.env.note_set(c->base.env.ud, NOTE, NULL);
	json_decref(j);
	return rc;
}

/* one job: n spooled rows of CSV already in csv, their map in map_path */
static int run_job(struct sf_ctx *c, enum sf_kind k, const retl_buf *csv,
		   const char *map_path, struct retl_err *err)
{
	const char *match_col = k == SF_UPDATE || k == SF_DELETE ? "Id" : c->ext;
	if (c->over_budget)
		return retl_err_set(err, RETL_EXIT_DEST, "%s", c->budget_msg);
	json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "object", c->base.object,
				 "contentType", "CSV", "operation", sf_kind_name[k],
				 "lineEnding", "LF", "columnDelimiter", "COMMA");
	if (k == SF_UPSERT)
		json_object_set_new(body, "externalIdFieldName", json_string(c->ext));
	char *bj = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	retl_buf p = RETL_BUF_INIT;
	retl_buf_addf(&p, "/services/data/v%s/jobs/ingest", c->version);
	struct retl_http_req *req = sf_call(c, "POST", p.ptr, NULL, bj, strlen(bj));
	retl_buf_free(&p);
	free(bj);
	if (call_ok(c, req, "create job", err) < 0) {
		retl_http_req_free(req);
		return -1;
	}
	json_error_t je;
	json_t *j = json_loadb(req->resp.ptr, req->resp.len, 0, &je);
	retl_http_req_free(req);
	char *id = retl_strdup(json_string_value(json_object_get(j, "id")) ?
			       json_string_value(json_object_get(j, "id")) : "");
	json_decref(j);
	c->jobs++;
	/* the job is known before a byte is uploaded */
	json_t *note = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "map", map_path,
				 "match", match_col, "op", sf_kind_name[k]);
	char *nt = json_dumps(note, JSON_COMPACT);
	json_decref(note);
	int rc = c->base.env.note_set(c->base.env.ud, NOTE, nt);
	free(nt);
	if (rc == 0) {
		char *path = job_path(c, id, "/batches");
		req = sf_call(c, "PUT", path, "text/csv", csv->ptr, csv->len);
		free(path);
		rc = call_ok(c, req, "upload", err);
		retl_http_req_free(req);
	}
	if (rc == 0) {
		char state[32];
		rc = set_state(c, id, "UploadComplete", "close job", state, sizeof(state), err);
	}
	if (rc == 0)
		rc = finish_job(c, id, map_path, match_col, err);
	free(id);
	return rc;
}

/* a row whose payload cannot become a CSV line fails alone */
static int reject_row(struct sf_ctx *c, const char *key)
{
	struct retl_result r = { .kind = RETL_RES_REJECT,
		.reason = "salesforce: payload is not a JSON object" };
	return c->base.env.report(c->base.env.ud, key, &r);
}

/* one map line: the match value, then the key */
static int map_line(FILE *map, const retl_buf *mv, const char *key, retl_buf *ml)
{
	retl_buf_reset(ml);
	retl_buf_addc(ml, '[');
	retl_buf_add_json_str(ml, mv->ptr ? mv->ptr : "", mv->len);
	retl_buf_addc(ml, ',');
	retl_buf_add_json_str(ml, key, strlen(key));
	retl_buf_adds(ml, "]\n");
	return fwrite(ml->ptr, 1, ml->len, map) == ml->len ? 0 : -1;
}

int sf_bulk_run(struct sf_ctx *c, enum sf_kind k, FILE *spool, long n,
		struct retl_err *err)
{
	retl_buf csv = RETL_BUF_INIT, mv = RETL_BUF_INIT, ml = RETL_BUF_INIT;
	retl_buf mp = RETL_BUF_INIT, rec = RETL_BUF_INIT;
	struct retl_pv *cols = retl_calloc(c->base.nf ? c->base.nf : 1, sizeof(*cols));
	struct retl_op op;
	int rc = 0, got = 0;
	long rows = 0;
	FILE *map = NULL;

	retl_buf_addf(&mp, "%s/%s.job.map", c->dir, c->base.sc->name);
	(void)n;
	for (;;) {
		got = sf_spool_get(spool, &rec, &op);
		if (got <= 0 || (rows && (long)csv.len > c->bulk_max_bytes)) {
			/* a job of what is gathered */
			if (rows) {
				fclose(map);
				map = NULL;
				rc = run_job(c, k, &csv, mp.ptr, err);
				rows = 0;
				if (rc < 0)
					break;
			}
			if (got <= 0)
				break;
		}
		if (!map) {
			retl_buf_reset(&csv);
			header(c, k, &csv);
			map = retl_fopen_private(mp.ptr, "w", 1);
			if (!map) {
				rc = retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot create %s: %s",
						  mp.ptr, strerror(errno));
				break;
			}
		}
		if (csv_line(c, k, &op, cols, &csv, &mv) < 0) {
			if ((rc = reject_row(c, op.key)) < 0)
				break;
			continue;
		}
		if (map_line(map, &mv, op.key, &ml) < 0) {
			rc = retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot write %s: %s",
					  mp.ptr, strerror(errno));
			break;
		}
		rows++;
	}
	/* the job of what was read before the damage ran; the rest stays
	 * staged */
	if (rc == 0 && got < 0)
		rc = sf_spool_damaged(c->spool_path[k], err);
	if (map)
		fclose(map);
	free(cols);
	retl_buf_free(&rec);
	retl_buf_free(&csv);
	retl_buf_free(&mv);
	retl_buf_free(&ml);
	retl_buf_free(&mp);
	return rc;
}
