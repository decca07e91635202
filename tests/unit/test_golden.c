/*
 * test_golden.c - golden files for every destination: operations in, the
 * exact requests out; the vendor's answers in, the per-row verdicts out.
 *
 * Like curl's tests/data/testNNNN, each case is a directory,
 * tests/golden/<destination>/<case>/:
 *
 *   case.json  {"retl": {the destination's options in retl.json},
 *               "sync": {the sync file; source, query and destination
 *                        are filled in when absent},
 *               "ops": [{"op": "upsert"|"insert"|"update"|"remove",
 *                        "key": "1" (or an array: a composite key),
 *                        "payload": {...} (written compact, key order kept;
 *                                   a string is sent verbatim) or null,
 *                        "dest_id": "..." (optional), "pending": true (optional),
 *                        "match": "..." (optional: the match value sent)}],
 *               "results": [per op, in op order: ["ACK", dest_id|null],
 *                           ["REJECT", reason], ["RETRY", reason],
 *                           ["DEFER", <the outcome reported later for its
 *                           key: "ACK", id | "REJECT", reason | ...>] (or
 *                           ["DEFER"] when never reported), ["FATAL", msg]],
 *               "error": "<stage>: message" (only when open, submit, send
 *                        or finish fails),
 *               "req_headers": [names] (optional: the headers 1.req, 2.req
 *                        ... show when regenerated; a default per
 *                        destination otherwise)}
 *   N.req      request N as it must arrive: "METHOD /path?query", header
 *              lines "Name: value" (only the listed ones are compared; a
 *              value "@name" is any value, the same wherever @name appears
 *              and different from every other @variable: X-Retl-Delivery),
 *              a blank line, then the exact body bytes
 *   N.resp     the answer to request N: the status code, optional header
 *              lines, a blank line, the body bytes
 *   expected.jsonl  the file destination's output, instead of N.req
 *
 * "@BASE@" in the options and in answers stands for the test server's
 * http://127.0.0.1:PORT.  Each case gets a throwaway project (retl.json and
 * mappings/golden.json) loaded by retl_config_load, and the destination is
 * driven through destination.h only, as src/sync_send.c drives it: batches
 * of at most max_batch operations (removals in batches of their own, after
 * the rest), submit + wait for asynchronous destinations (send
 * otherwise), finish, close; the env's notes and reports live in memory.
 *
 * RETL_GOLDEN_WRITE=1 writes N.req, expected.jsonl and the results
 * observed, instead of comparing (the N.resp answers are written by hand).
 * RETL_GOLDEN_CASE=<text> runs only the cases whose "dest/case" contains it.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "destination.h"
#include "payload.h"
#include "err.h"
#include "golden_server.h"
#include "ratelimit.h"
#include "redact.h"
#include "test.h"

static struct golden_server server;
static char base_url[64];
static int write_mode;

/* one case being run */
struct gc {
	const char *type;         /* the destination (its directory name) */
	char *dir;                /* tests/golden/<type>/<case> */
	char *label;              /* "<type>/<case>" */
	json_t *doc;              /* case.json */
	char *proj;               /* the throwaway project directory */
	retl_buf why;             /* what did not match */

	struct retl_op *ops;
	size_t nops;
	char **strs;              /* the ops' strings, 5 per op */
	struct retl_result *res;
	char **fatal;             /* per op: its batch's fatal message */
	json_t *notes;            /* env: name -> value */
	json_t *reports;          /* env: key -> verdict */
	char *error;              /* "<stage>: message" */

	struct gs_answer *ans;
	size_t nans;
	size_t nsent;             /* requests that arrived */
};

static void fail(struct gc *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fail(struct gc *g, const char *fmt, ...)
{
	va_list ap;
	retl_buf_addf(&g->why, "  %s: ", g->label);
	va_start(ap, fmt);
	retl_buf_vaddf(&g->why, fmt, ap);
	va_end(ap);
	retl_buf_addc(&g->why, '\n');
}

/* ---- files ---- */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	retl_buf b = RETL_BUF_INIT;
	char tmp[4096];
	size_t n;
	if (!f)
		return NULL;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		retl_buf_add(&b, tmp, n);
	fclose(f);
	if (len)
		*len = b.len;
	if (!b.ptr)
		return retl_strdup("");
	return retl_buf_detach(&b);
}

static int spit(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int rc = fwrite(data, 1, len, f) == len ? 0 : -1;
	return fclose(f) == 0 ? rc : -1;
}

static char *path_of(const char *dir, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static char *path_of(const char *dir, const char *fmt, ...)
{
	retl_buf b = RETL_BUF_INIT;
	va_list ap;
	retl_buf_addf(&b, "%s/", dir);
	va_start(ap, fmt);
	retl_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return retl_buf_detach(&b);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* how many of dir/1.ext, dir/2.ext, ... exist */
static size_t count_numbered(const char *dir, const char *ext)
{
	size_t n = 0;
	for (;;) {
		char *p = path_of(dir, "%zu.%s", n + 1, ext);
		int e = exists(p);
		free(p);
		if (!e)
			return n;
		n++;
	}
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void rm_tree(const char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* s with every "@BASE@" replaced by the server's URL; malloc'd */
static char *subst_base(const char *s, size_t len, size_t *outlen)
{
	static const char tok[] = "@BASE@";
	retl_buf b = RETL_BUF_INIT;
	size_t i = 0;
	while (i < len) {
		if (len - i >= sizeof(tok) - 1 && !memcmp(s + i, tok, sizeof(tok) - 1)) {
			retl_buf_adds(&b, base_url);
			i += sizeof(tok) - 1;
		} else {
			retl_buf_addc(&b, s[i++]);
		}
	}
	if (outlen)
		*outlen = b.len;
	return b.ptr ? retl_buf_detach(&b) : retl_strdup("");
}

/* every string inside v, "@BASE@" replaced */
static void subst_json(json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;
	json_object_foreach(v, k, x) {
		if (json_is_string(x)) {
			char *s = subst_base(json_string_value(x), json_string_length(x), NULL);
			json_object_set_new(v, k, json_string(s));
			free(s);
		} else {
			subst_json(x);
		}
	}
	json_array_foreach(v, i, x)
		subst_json(x);
}

/* ---- N.req / N.resp: a first line, header lines, a blank line, a body ---- */

struct msg {
	char *text;               /* the whole file */
	size_t len;
	char *first;              /* NUL-terminated, inside text */
	char *hdr[32];            /* "Name: value" lines */
	size_t nh;
	const char *body;
	size_t blen;
};

static int msg_load(struct msg *m, const char *path)
{
	memset(m, 0, sizeof(*m));
	m->text = slurp(path, &m->len);
	if (!m->text)
		return -1;
	char *p = m->text, *end = m->text + m->len;
	char *nl = memchr(p, '\n', (size_t)(end - p));
	m->first = p;
	if (!nl) {
		m->body = end;
		return 0;
	}
	*nl = '\0';
	for (p = nl + 1; p < end;) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (nl == p) {            /* the blank line: the body follows */
			p++;
			break;
		}
		*nl = '\0';
		if (m->nh < sizeof(m->hdr) / sizeof(m->hdr[0]))
			m->hdr[m->nh++] = p;
		p = nl + 1;
	}
	m->body = p < end ? p : end;
	m->blen = (size_t)(end - m->body);
	return 0;
}

/* "Name: value" -> name (NUL-terminated in place) and value */
static const char *split_header(char *line)
{
	char *c = strchr(line, ':');
	if (!c)
		return "";
	*c++ = '\0';
	while (*c == ' ')
		c++;
	return c;
}

static void answers_free(struct gc *g)
{
	for (size_t i = 0; i < g->nans; i++) {
		for (size_t j = 0; j < g->ans[i].nh; j++) {
			free(g->ans[i].h[j].name);
			free(g->ans[i].h[j].value);
		}
		free(g->ans[i].h);
		free(g->ans[i].body);
	}
	free(g->ans);
	g->ans = NULL;
	g->nans = 0;
}

static int answers_load(struct gc *g)
{
	g->nans = count_numbered(g->dir, "resp");
	g->ans = retl_calloc(g->nans ? g->nans : 1, sizeof(*g->ans));
	for (size_t i = 0; i < g->nans; i++) {
		struct gs_answer *a = &g->ans[i];
		struct msg m;
		char *p = path_of(g->dir, "%zu.resp", i + 1);
		int rc = msg_load(&m, p);
		free(p);
		if (rc < 0 || (a->status = (unsigned)strtoul(m.first, NULL, 10)) < 100) {
			fail(g, "%zu.resp: the first line must be a status code", i + 1);
			free(m.text);
			return -1;
		}
		a->h = retl_calloc(m.nh ? m.nh : 1, sizeof(*a->h));
		for (size_t j = 0; j < m.nh; j++) {
			const char *v = split_header(m.hdr[j]);
			a->h[j].name = retl_strdup(m.hdr[j]);
			a->h[j].value = subst_base(v, strlen(v), NULL);
		}
		a->nh = m.nh;
		a->body = subst_base(m.body, m.blen, &a->len);
		free(m.text);
	}
	return 0;
}

/* ---- the throwaway project ---- */

static int make_project(struct gc *g)
{
	char tmpl[] = "/tmp/retl_golden_XXXXXX";
	if (!mkdtemp(tmpl)) {
		fail(g, "mkdtemp: cannot create a project directory");
		return -1;
	}
	g->proj = retl_strdup(tmpl);
	json_t *dest = json_deep_copy(json_object_get(g->doc, "retl"));
	json_t *sync = json_deep_copy(json_object_get(g->doc, "sync"));
	if (!json_is_object(dest) || !json_is_object(sync)) {
		fail(g, "case.json: \"retl\" and \"sync\" must be objects");
		json_decref(dest);
		json_decref(sync);
		return -1;
	}
	subst_json(dest);
	if (!json_object_get(dest, "type"))
		json_object_set_new(dest, "type", json_string(g->type));
	if (strcmp(g->type, "file") && !json_object_get(dest, "base_url"))
		json_object_set_new(dest, "base_url", json_string(base_url));
	json_t *retl = json_pack("{s:{s:{s:s, s:s}}, s:{s:o}}",
				 "sources", "wh", "type", "postgres",
				 "dsn", "host=/nonexistent dbname=golden",
				 "destinations", "dest", dest);
	if (!json_object_get(sync, "source"))
		json_object_set_new(sync, "source", json_string("wh"));
	if (!json_object_get(sync, "query"))
		json_object_set_new(sync, "query", json_string("SELECT 1"));
	if (!json_object_get(sync, "destination"))
		json_object_set_new(sync, "destination", json_string("dest"));
	char *rp = path_of(g->proj, "retl.json");
	char *md = path_of(g->proj, "mappings");
	char *sp = path_of(g->proj, "mappings/golden.json");
	int rc = json_dump_file(retl, rp, JSON_INDENT(2)) == 0 && mkdir(md, 0700) == 0 &&
		 json_dump_file(sync, sp, JSON_INDENT(2)) == 0 ? 0 : -1;
	if (rc < 0)
		fail(g, "cannot write the project in %s", g->proj);
	free(rp);
	free(md);
	free(sp);
	json_decref(retl);
	json_decref(sync);
	return rc;
}

/* ---- the engine's services (struct retl_dest_env), in memory ---- */

static json_t *verdict(enum retl_result_kind k, const char *id, const char *reason)
{
	static const char *const names[] = { "ACK", "REJECT", "RETRY", "DEFER" };
	json_t *v = json_pack("[s]", (unsigned)k < 4 ? names[k] : "?");
	if (k == RETL_RES_DEFER)
		return v;
	const char *s = k == RETL_RES_ACK ? id : reason;
	json_array_append_new(v, s ? json_string_nocheck(s) : json_null());
	return v;
}

static char *env_note_get(void *ud, const char *name)
{
	struct gc *g = ud;
	const char *v = json_string_value(json_object_get(g->notes, name));
	return v ? retl_strdup(v) : NULL;
}

static int env_note_set(void *ud, const char *name, const char *value)
{
	struct gc *g = ud;
	if (value)
		json_object_set_new(g->notes, name, json_string(value));
	else
		json_object_del(g->notes, name);
	return 0;
}

static int env_report(void *ud, const char *key, const struct retl_result *res)
{
	struct gc *g = ud;
	if (json_object_get(g->reports, key))
		fail(g, "env->report: key %s reported twice", key);
	json_object_set_new(g->reports, key, verdict(res->kind, res->dest_id, res->reason));
	return 0;
}

/* ---- operations ---- */

static int op_kind(const char *s, enum retl_op_kind *k)
{
	static const char *const names[] = { "upsert", "insert", "update", "remove" };
	for (int i = 0; i < 4; i++)
		if (s && !strcmp(s, names[i])) {
			*k = (enum retl_op_kind)i;
			return 0;
		}
	return -1;
}

static int build_ops(struct gc *g)
{
	json_t *ops = json_object_get(g->doc, "ops"), *o;
	size_t i;
	g->nops = json_array_size(ops);
	g->ops = retl_calloc(g->nops ? g->nops : 1, sizeof(*g->ops));
	g->res = retl_calloc(g->nops ? g->nops : 1, sizeof(*g->res));
	g->fatal = retl_calloc(g->nops ? g->nops : 1, sizeof(*g->fatal));
	g->strs = retl_calloc(g->nops ? 5 * g->nops : 1, sizeof(*g->strs));
	json_array_foreach(ops, i, o) {
		struct retl_op *op = &g->ops[i];
		char **s = &g->strs[5 * i];
		json_t *k = json_object_get(o, "key"), *p = json_object_get(o, "payload");
		if (op_kind(json_string_value(json_object_get(o, "op")), &op->kind) < 0) {
			fail(g, "case.json: ops[%zu].op: expected upsert, insert, update or remove", i);
			return -1;
		}
		if (json_is_string(k)) {
			retl_buf kj = RETL_BUF_INIT;
			s[0] = retl_strdup(json_string_value(k));
			retl_buf_add_json_str(&kj, s[0], strlen(s[0]));
			s[1] = retl_buf_detach(&kj);
		} else if (json_is_array(k)) {
			s[0] = json_dumps(k, JSON_COMPACT);
			s[1] = retl_strdup(s[0]);
		} else {
			fail(g, "case.json: ops[%zu].key: expected a string or an array", i);
			return -1;
		}
		if (json_is_string(p))
			s[2] = retl_strdup(json_string_value(p));
		else if (p && !json_is_null(p))
			s[2] = json_dumps(p, JSON_COMPACT);
		if (json_is_string(json_object_get(o, "dest_id")))
			s[3] = retl_strdup(json_string_value(json_object_get(o, "dest_id")));
		if (json_is_string(json_object_get(o, "match")))
			s[4] = retl_strdup(json_string_value(json_object_get(o, "match")));
		op->key = s[0];
		op->key_json = s[1];
		op->payload = s[2];
		op->payload_len = s[2] ? strlen(s[2]) : 0;
		op->dest_id = s[3];
		op->match = s[4];
		op->pending = json_is_true(json_object_get(o, "pending"));
	}
	return 0;
}

/* the engine's batches: full at max_batch; removals (read after the
 * model) never share a batch with the rows before them */
static size_t batch_len(const struct gc *g, size_t from, size_t max)
{
	size_t n = 1;
	while (from + n < g->nops && n < max &&
	       !(g->ops[from + n].kind == RETL_OP_REMOVE &&
		 g->ops[from + n - 1].kind != RETL_OP_REMOVE))
		n++;
	return n;
}

static void set_error(struct gc *g, const char *stage, const struct retl_err *err)
{
	if (g->error)
		return;
	retl_buf b = RETL_BUF_INIT;
	retl_buf_addf(&b, "%s: %s", stage, err->msg);
	g->error = retl_buf_detach(&b);
}

/* a batch handed back by wait() */
static void complete(struct gc *g, struct retl_batch *all, size_t nb,
		     unsigned char *back, struct retl_batch *b)
{
	size_t i = (size_t)((struct retl_batch *)b->engine - all);
	if (b->engine != b || i >= nb) {
		fail(g, "wait() handed back a batch that was not submitted");
		return;
	}
	if (back[i]++)
		fail(g, "wait() handed back batch %zu twice", i + 1);
	if (!b->fatal)
		return;
	for (size_t k = 0; k < b->n; k++) {
		size_t oi = (size_t)(b->ops + k - g->ops);
		free(g->fatal[oi]);
		g->fatal[oi] = retl_strdup(b->fatal_msg);
	}
}

/* what sync_send.c does with the operations of one run */
static void send_ops(struct gc *g, const struct retl_destination *d, void *ctx)
{
	size_t max = d->max_batch ? d->max_batch : 100;
	int async = d->max_inflight > 0 && d->submit;
	struct retl_batch *all = retl_calloc(g->nops ? g->nops : 1, sizeof(*all));
	unsigned char *back = retl_calloc(g->nops ? g->nops : 1, 1);
	struct retl_batch *done;
	struct retl_err err;
	size_t nb = 0;

	for (size_t i = 0; i < g->nops && !g->error; nb++) {
		struct retl_batch *b = &all[nb];
		b->ops = &g->ops[i];
		b->n = batch_len(g, i, max);
		b->results = &g->res[i];
		b->engine = b;
		i += b->n;
		retl_err_clear(&err);
		if (!async) {
			back[nb] = 1;
			if (d->send(ctx, b->ops, b->n, b->results, &err) < 0)
				set_error(g, "send", &err);
			continue;
		}
		if (d->submit(ctx, b, &err) < 0)
			set_error(g, "submit", &err);
		while ((done = d->wait(ctx, 0)))
			complete(g, all, nb + 1, back, done);
	}
	while (async && (done = d->wait(ctx, 1)))
		complete(g, all, nb, back, done);
	for (size_t i = 0; i < nb; i++)
		if (!back[i])
			fail(g, "batch %zu was submitted but never handed back by wait()", i + 1);
	free(back);
	free(all);
}

static void run_destination(struct gc *g, struct retl_config *cfg,
			    struct retl_sync_cfg *sc)
{
	const struct retl_destination *d = retl_destination_find(sc->dst->type);
	struct retl_dest_env env = {
		.dir = cfg->dir, .api_budget = -1, .ud = g,
		.note_get = env_note_get, .note_set = env_note_set, .report = env_report,
	};
	struct retl_err err;
	void *ctx = NULL;
	retl_err_clear(&err);
	if (!d) {
		fail(g, "no destination \"%s\"", sc->dst->type);
		return;
	}
	if (retl_destination_open(d, &ctx, sc->dst, sc, &env, &err) < 0) {
		set_error(g, "open", &err);
		return;
	}
	unsigned long reads = retl_payload_reads();
	send_ops(g, d, ctx);
	retl_err_clear(&err);
	if (!g->error && d->finish && d->finish(ctx, &err) < 0)
		set_error(g, "finish", &err);
	d->close(ctx);
	/* each op's payload is read at most once, whatever its requests met
	 * (splits, lookups, resends, a spool and a bulk job) */
	reads = retl_payload_reads() - reads;
	if (reads > g->nops)
		fail(g, "payloads read %lu times for %zu ops", reads, g->nops);
}

/* per op: its verdict, a deferred one with the outcome reported for it */
static json_t *observed_results(struct gc *g)
{
	json_t *out = json_array();
	for (size_t i = 0; i < g->nops; i++) {
		const struct retl_result *r = &g->res[i];
		json_t *v;
		if (g->fatal[i]) {
			v = json_pack("[s, s]", "FATAL", g->fatal[i]);
		} else if (r->kind == RETL_RES_DEFER) {
			v = verdict(r->kind, NULL, NULL);
			json_array_extend(v, json_object_get(g->reports, g->ops[i].key));
			json_object_del(g->reports, g->ops[i].key);
		} else {
			v = verdict(r->kind, r->dest_id, r->reason);
		}
		json_array_append_new(out, v);
	}
	const char *k;
	json_t *x;
	json_object_foreach(g->reports, k, x)
		fail(g, "env->report for key %s, which was not deferred", k);
	return out;
}

/* ---- comparing ---- */

/* the text around the first difference of want and got */
static void show_diff(struct gc *g, const char *what, const char *w, size_t wl,
		      const char *gt, size_t gl)
{
	size_t i = 0;
	while (i < wl && i < gl && w[i] == gt[i])
		i++;
	size_t from = i > 80 ? i - 80 : 0;
	size_t wn = wl - from < 200 ? wl - from : 200, gn = gl - from < 200 ? gl - from : 200;
	if (wl < 400 && gl < 400) {
		from = 0;
		wn = wl;
		gn = gl;
	}
	fail(g, "%s differs at byte %zu (want %zu bytes, got %zu)\n"
	     "      want: %s%.*s%s\n      got:  %s%.*s%s", what, i, wl, gl,
	     from ? "..." : "", (int)wn, w + from, from + wn < wl ? "..." : "",
	     from ? "..." : "", (int)gn, gt + from, from + gn < gl ? "..." : "");
}

/* "@name": any value, the same for the same name, distinct across names */
static void bind_var(struct gc *g, json_t *vars, size_t n, const char *hname,
		     const char *var, const char *got)
{
	const char *k;
	json_t *x;
	const char *had = json_string_value(json_object_get(vars, var));
	if (had && strcmp(had, got)) {
		fail(g, "%zu.req: %s: \"%s\" (%s) but %s was \"%s\" before", n, hname,
		     got, var, var, had);
		return;
	}
	json_object_foreach(vars, k, x)
		if (strcmp(k, var) && !strcmp(json_string_value(x), got))
			fail(g, "%zu.req: %s: \"%s\" (%s) is the value of %s as well", n,
			     hname, got, var, k);
	json_object_set_new(vars, var, json_string(got));
}

static void compare_request(struct gc *g, size_t n, const struct gs_req *r, json_t *vars)
{
	struct msg m;
	char *p = path_of(g->dir, "%zu.req", n);
	int rc = msg_load(&m, p);
	free(p);
	if (rc < 0) {
		fail(g, "%zu.req: cannot read it", n);
		return;
	}
	retl_buf line = RETL_BUF_INIT;
	retl_buf_addf(&line, "%s %s", r->method, r->uri);
	if (strcmp(m.first, line.ptr))
		fail(g, "%zu.req: request line: want \"%s\", got \"%s\"", n, m.first, line.ptr);
	for (size_t i = 0; i < m.nh; i++) {
		const char *want = split_header(m.hdr[i]);
		const char *got = gs_req_header(r, m.hdr[i]);
		if (!got)
			fail(g, "%zu.req: header %s: missing (want \"%s\")", n, m.hdr[i], want);
		else if (want[0] == '@')
			bind_var(g, vars, n, m.hdr[i], want, got);
		else if (strcmp(want, got))
			fail(g, "%zu.req: header %s: want \"%s\", got \"%s\"", n, m.hdr[i],
			     want, got);
	}
	if (m.blen != r->body.len || memcmp(m.body, retl_buf_cstr(&r->body), m.blen)) {
		retl_buf what = RETL_BUF_INIT;
		retl_buf_addf(&what, "%zu.req: body", n);
		show_diff(g, what.ptr, m.body, m.blen, retl_buf_cstr(&r->body), r->body.len);
		retl_buf_free(&what);
	}
	retl_buf_free(&line);
	free(m.text);
}

static void compare_requests(struct gc *g)
{
	json_t *vars = json_object();
	size_t nreq = count_numbered(g->dir, "req");
	size_t n = nreq > server.ngot ? nreq : server.ngot;
	for (size_t i = 0; i < n; i++) {
		const struct gs_req *r = i < server.ngot ? server.got[i] : NULL;
		if (!r) {
			fail(g, "%zu.req: never sent (%zu requests arrived)", i + 1, server.ngot);
		} else if (i >= nreq) {
			fail(g, "request %zu was not expected (there is no %zu.req): %s %s\n      %s",
			     i + 1, i + 1, r->method, r->uri, retl_buf_cstr(&r->body));
		} else {
			compare_request(g, i + 1, r, vars);
		}
	}
	json_decref(vars);
}

static void compare_results(struct gc *g, json_t *got)
{
	json_t *want = json_object_get(g->doc, "results");
	size_t nw = json_array_size(want), ng = json_array_size(got);
	for (size_t i = 0; i < nw || i < ng; i++) {
		json_t *w = json_array_get(want, i), *x = json_array_get(got, i);
		if (w && x && json_equal(w, x))
			continue;
		char *ws = w ? json_dumps(w, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		char *xs = x ? json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		fail(g, "result of op %zu (key %s):\n      want: %s\n      got:  %s", i + 1,
		     i < g->nops ? g->ops[i].key : "?", ws ? ws : "(none)", xs ? xs : "(none)");
		free(ws);
		free(xs);
	}
	const char *we = json_string_value(json_object_get(g->doc, "error"));
	if (we || g->error) {
		if (!we || !g->error || strcmp(we, g->error))
			fail(g, "error:\n      want: %s\n      got:  %s", we ? we : "(none)",
			     g->error ? g->error : "(none)");
	}
}

static void compare_file(struct gc *g)
{
	const char *rel = json_string_value(json_object_get(json_object_get(g->doc, "retl"), "path"));
	char *wp = path_of(g->dir, "expected.jsonl");
	char *gp = path_of(g->proj, "%s", rel ? rel : "out.jsonl");
	size_t wl = 0, gl = 0;
	char *w = slurp(wp, &wl), *gt = slurp(gp, &gl);
	if (write_mode) {
		if (!gt || spit(wp, gt, gl) < 0)
			fail(g, "cannot write %s", wp);
	} else if (!w || !gt) {
		fail(g, "%s", !w ? "expected.jsonl: cannot read it" : "the output file is missing");
	} else if (wl != gl || memcmp(w, gt, wl)) {
		show_diff(g, "expected.jsonl", w, wl, gt, gl);
	}
	free(w);
	free(gt);
	free(wp);
	free(gp);
}

/* ---- regenerating (RETL_GOLDEN_WRITE=1) ---- */

/* the headers a regenerated N.req shows */
static json_t *shown_headers(struct gc *g)
{
	json_t *h = json_object_get(g->doc, "req_headers");
	if (json_is_array(h))
		return json_incref(h);
	if (strcmp(g->type, "webhook"))
		return json_pack("[s, s]", "Content-Type", "Authorization");
	h = json_pack("[s, s, s]", "Content-Type", "X-Retl-Signature", "X-Retl-Delivery");
	const char *k;
	json_t *x;
	json_object_foreach(json_object_get(json_object_get(g->doc, "retl"), "headers"), k, x)
		json_array_append_new(h, json_string(k));
	return h;
}

static void write_requests(struct gc *g)
{
	static const char *const varying[] = { "X-Retl-Delivery", NULL };
	json_t *names = shown_headers(g), *vars = json_object(), *x;
	size_t j;
	for (size_t i = 0; i < server.ngot; i++) {
		const struct gs_req *r = server.got[i];
		retl_buf b = RETL_BUF_INIT;
		retl_buf_addf(&b, "%s %s\n", r->method, r->uri);
		json_array_foreach(names, j, x) {
			const char *name = json_string_value(x);
			const char *v = gs_req_header(r, name);
			int vary = 0;
			for (const char *const *p = varying; *p; p++)
				vary |= !strcasecmp(*p, name);
			if (v && vary) {
				if (!json_object_get(vars, v)) {
					char id[32];
					snprintf(id, sizeof(id), "@%zu", json_object_size(vars) + 1);
					json_object_set_new(vars, v, json_string(id));
				}
				v = json_string_value(json_object_get(vars, v));
			}
			if (v)
				retl_buf_addf(&b, "%s: %s\n", name, v);
		}
		retl_buf_addc(&b, '\n');
		retl_buf_add(&b, retl_buf_cstr(&r->body), r->body.len);
		char *p = path_of(g->dir, "%zu.req", i + 1);
		if (spit(p, b.ptr, b.len) < 0)
			fail(g, "cannot write %s", p);
		free(p);
		retl_buf_free(&b);
	}
	for (size_t i = server.ngot + 1;; i++) {     /* stale ones */
		char *p = path_of(g->dir, "%zu.req", i);
		int gone = remove(p) < 0;
		free(p);
		if (gone)
			break;
	}
	if (server.ngot > g->nans)
		printf("  %s: %zu requests but %zu answers: write %zu.resp and regenerate\n",
		       g->label, server.ngot, g->nans, g->nans + 1);
	json_decref(vars);
	json_decref(names);
}

/* case.json, one op or result a line */
static void write_case(struct gc *g, json_t *results)
{
	const char *k;
	json_t *v, *x;
	size_t i;
	retl_buf b = RETL_BUF_INIT;
	json_object_set(g->doc, "results", results);
	if (g->error)
		json_object_set_new(g->doc, "error", json_string(g->error));
	else
		json_object_del(g->doc, "error");
	retl_buf_adds(&b, "{");
	int first = 1;
	json_object_foreach(g->doc, k, v) {
		retl_buf_addf(&b, "%s\n  ", first ? "" : ",");
		first = 0;
		retl_buf_add_json_str(&b, k, strlen(k));
		retl_buf_adds(&b, ": ");
		if (!json_is_array(v) || !json_array_size(v)) {
			char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			retl_buf_adds(&b, s);
			free(s);
			continue;
		}
		retl_buf_adds(&b, "[");
		json_array_foreach(v, i, x) {
			char *s = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY);
			retl_buf_addf(&b, "%s\n    %s", i ? "," : "", s);
			free(s);
		}
		retl_buf_adds(&b, "\n  ]");
	}
	retl_buf_adds(&b, "\n}\n");
	char *p = path_of(g->dir, "case.json");
	if (spit(p, b.ptr, b.len) < 0)
		fail(g, "cannot write %s", p);
	free(p);
	retl_buf_free(&b);
}

/* ---- one case ---- */

static void gc_free(struct gc *g)
{
	for (size_t i = 0; g->strs && i < 5 * g->nops; i++)
		free(g->strs[i]);
	for (size_t i = 0; g->res && i < g->nops; i++) {
		free(g->res[i].dest_id);
		free(g->res[i].reason);
		free(g->fatal[i]);
	}
	free(g->strs);
	free(g->res);
	free(g->fatal);
	free(g->ops);
	free(g->error);
	json_decref(g->notes);
	json_decref(g->reports);
	json_decref(g->doc);
	answers_free(g);
	rm_tree(g->proj);
	free(g->proj);
	free(g->dir);
	free(g->label);
	retl_buf_free(&g->why);
}

static void run_loaded(struct gc *g)
{
	struct retl_config *cfg = NULL;
	struct retl_err err;
	retl_err_clear(&err);
	if (answers_load(g) < 0 || make_project(g) < 0 || build_ops(g) < 0)
		return;
	if (retl_config_load(&cfg, g->proj, &err) < 0) {
		fail(g, "retl_config_load: %s", err.msg);
		return;
	}
	struct retl_sync_cfg *sc = retl_config_sync(cfg, "golden");
	if (!sc) {
		fail(g, "mappings/golden.json: no sync \"golden\" loaded");
		retl_config_free(cfg);
		return;
	}
	gs_script(&server, g->ans, g->nans);
	run_destination(g, cfg, sc);
	json_t *results = observed_results(g);
	if (!strcmp(g->type, "file"))
		compare_file(g);
	if (write_mode) {
		write_requests(g);
		write_case(g, results);
	} else {
		compare_requests(g);
		compare_results(g, results);
	}
	json_decref(results);
	g->nsent = server.ngot;
	gs_script(&server, NULL, 0);
	retl_config_free(cfg);
}

static void run_case(const char *type, const char *name)
{
	struct gc g = { .type = type };
	json_error_t je;
	retl_buf b = RETL_BUF_INIT;
	retl_buf_addf(&b, "%s/%s", type, name);
	g.label = retl_buf_detach(&b);
	const char *only = getenv("RETL_GOLDEN_CASE");
	if (only && *only && !strstr(g.label, only)) {
		free(g.label);
		return;
	}
	const char *root = getenv("RETL_GOLDEN_DIR");
	g.dir = path_of(root && *root ? root : "tests/golden", "%s/%s", type, name);
	g.notes = json_object();
	g.reports = json_object();
	char *cp = path_of(g.dir, "case.json");
	g.doc = json_load_file(cp, 0, &je);
	free(cp);
	if (!g.doc)
		fail(&g, "case.json:%d:%d: %s", je.line, je.column, je.text);
	else
		run_loaded(&g);
	if (g.why.len) {
		test_failed++;
		printf("FAIL %s\n", g.label);
		fputs(g.why.ptr, stdout);
	} else {
		test_passed++;
		printf("%s %s (%zu requests)\n", write_mode ? "wrote" : "ok  ", g.label,
		       g.nsent);
	}
	gc_free(&g);
}

static int is_dir(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

int main(void)
{
	const char *root = getenv("RETL_GOLDEN_DIR");
	struct dirent **types = NULL;
	int ncases = 0;
	write_mode = getenv("RETL_GOLDEN_WRITE") && !strcmp(getenv("RETL_GOLDEN_WRITE"), "1");
	root = root && *root ? root : "tests/golden";
	if (gs_start(&server) < 0) {
		fprintf(stderr, "test_golden: cannot start the loopback server\n");
		return 1;
	}
	snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%u", server.port);
	int nt = scandir(root, &types, is_dir, alphasort);
	for (int t = 0; t < nt; t++) {
		struct dirent **cases = NULL;
		char *td = path_of(root, "%s", types[t]->d_name);
		int nc = scandir(td, &cases, is_dir, alphasort);
		for (int c = 0; c < nc; c++) {
			char *cj = path_of(td, "%s/case.json", cases[c]->d_name);
			if (exists(cj)) {
				run_case(types[t]->d_name, cases[c]->d_name);
				ncases++;
			}
			free(cj);
			free(cases[c]);
		}
		free(cases);
		free(td);
		free(types[t]);
	}
	free(types);
	CHECK(ncases > 0);
	gs_stop(&server);
	retl_rate_shared_free_all();
	retl_redact_clear();
	curl_global_cleanup();
	TEST_DONE();
}
