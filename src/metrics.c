/*
 * metrics.c - /metrics and /healthz for `retl daemon`, see metrics.h.
 *
 * Counters are sums over the runs table's finished runs (status other than
 * "running"), so `sqlite3 state/retl.db` and a scrape always agree; a run
 * killed mid-way (kill -9) stays "running" in the table and is not counted.
 * "Success" for retl_last_success_timestamp_seconds means the run
 * completed (status ok, or failed: completed with some rows failing, which
 * retl_rows_failing shows on its own).
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

struct retl_metrics {
	struct MHD_Daemon *mhd;
	const struct retl_metrics_view *view;
};

/* ---- reading the state store ---- */

static const char *const outcomes[] = {
	"added", "changed", "retried", "removed", "unchanged", "rejected",
	"failed",
};
#define NOUT (sizeof(outcomes) / sizeof(outcomes[0]))

struct status_count {
	char *status;
	long n;
};

struct sync_stats {
	char *name;
	struct status_count *runs;
	size_t nruns;
	long rows[NOUT];
	long api, retries, h429, failing;
	double last_success;      /* < 0: none */
	double last_duration;     /* < 0: none */
	const struct retl_metrics_sync *d; /* the daemon's view, or NULL */
};

struct stats {
	struct sync_stats *s;
	size_t n;
};

static struct sync_stats *stats_get(struct stats *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->s[i].name, name))
			return &t->s[i];
	t->s = retl_realloc(t->s, (t->n + 1) * sizeof(*t->s));
	struct sync_stats *s = &t->s[t->n++];
	memset(s, 0, sizeof(*s));
	s->name = retl_strdup(name);
	s->last_success = -1;
	s->last_duration = -1;
	return s;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct sync_stats *)a)->name,
		      ((const struct sync_stats *)b)->name);
}

static void stats_free(struct stats *t)
{
	for (size_t i = 0; i < t->n; i++) {
		for (size_t j = 0; j < t->s[i].nruns; j++)
			free(t->s[i].runs[j].status);
		free(t->s[i].runs);
		free(t->s[i].name);
	}
	free(t->s);
}

static int db_open(sqlite3 **db, const char *path, struct retl_err *err)
{
	if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		retl_err_set(err, RETL_EXIT_USAGE, "state store %s: %s", path,
			     *db ? sqlite3_errmsg(*db) : "cannot open");
		sqlite3_close(*db);
		*db = NULL;
		return -1;
	}
	sqlite3_busy_timeout(*db, 2000);
	return 0;
}

enum q { Q_RUNS, Q_SUMS, Q_SUCCESS, Q_DURATION, Q_FAILING, Q_REJECTED };

static const char *const queries[] = {
	[Q_RUNS] = "SELECT sync, status, count(*) FROM runs WHERE status <> "
		   "'running' GROUP BY sync, status ORDER BY sync, status",
	[Q_SUMS] = "SELECT sync, total(added), total(changed), total(retried), "
		   "total(removed), total(unchanged), total(rejected), "
		   "total(failed), total(api_calls), total(retries), "
		   "total(http_429) FROM runs WHERE status <> 'running' "
		   "GROUP BY sync",
	[Q_SUCCESS] = "SELECT sync, max((julianday(ended_at) - 2440587.5) * "
		      "86400.0) FROM runs WHERE status IN ('ok', 'failed') "
		      "GROUP BY sync",
	[Q_DURATION] = "SELECT sync, seconds FROM runs WHERE id IN (SELECT "
		       "max(id) FROM runs WHERE status <> 'running' GROUP BY "
		       "sync)",
	/* what `retl failures` lists: failing cache rows, and the latest
	 * finished run's rejections that have no failing cache row */
	[Q_FAILING] = "SELECT sync, count(*) FROM cache WHERE status = 2 "
		      "GROUP BY sync",
	[Q_REJECTED] = "SELECT r.sync, count(*) FROM runs r JOIN outcomes o "
		       "ON o.run_id = r.id WHERE r.id IN (SELECT max(id) FROM "
		       "runs WHERE ended_at IS NOT NULL GROUP BY sync) AND "
		       "o.outcome = 'rejected' AND (o.key IS NULL OR NOT EXISTS "
		       "(SELECT 1 FROM cache c WHERE c.sync = r.sync AND "
		       "c.key = o.key AND c.status = 2)) GROUP BY r.sync",
};

static void take_row(struct stats *t, enum q q, sqlite3_stmt *st)
{
	const char *name = (const char *)sqlite3_column_text(st, 0);
	if (!name)
		return;
	struct sync_stats *s = stats_get(t, name);
	switch (q) {
	case Q_RUNS:
		s->runs = retl_realloc(s->runs, (s->nruns + 1) * sizeof(*s->runs));
		s->runs[s->nruns].status =
			retl_strdup((const char *)sqlite3_column_text(st, 1));
		s->runs[s->nruns++].n = (long)sqlite3_column_int64(st, 2);
		break;
	case Q_SUMS:
		for (size_t i = 0; i < NOUT; i++)
			s->rows[i] = (long)sqlite3_column_double(st, 1 + (int)i);
		s->api = (long)sqlite3_column_double(st, 8);
		s->retries = (long)sqlite3_column_double(st, 9);
		s->h429 = (long)sqlite3_column_double(st, 10);
		break;
	case Q_SUCCESS:
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			s->last_success = sqlite3_column_double(st, 1);
		break;
	case Q_DURATION:
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			s->last_duration = sqlite3_column_double(st, 1);
		break;
	case Q_FAILING:
	case Q_REJECTED:
		s->failing += (long)sqlite3_column_int64(st, 1);
		break;
	}
}

static int load_stats(struct stats *t, const struct retl_metrics_view *v,
		      struct retl_err *err)
{
	sqlite3 *db;
	int rc = 0;

	for (size_t i = 0; i < v->nsyncs; i++)
		stats_get(t, v->syncs[i].name);
	if (db_open(&db, v->state_path, err) < 0)
		return -1;
	/* one snapshot for every query */
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]) && !rc; q++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, queries[q], -1, &st, NULL) != SQLITE_OK) {
			rc = -1;
			break;
		}
		int r;
		while ((r = sqlite3_step(st)) == SQLITE_ROW)
			take_row(t, (enum q)q, st);
		if (r != SQLITE_DONE)
			rc = -1;
		sqlite3_finalize(st);
	}
	if (rc < 0)
		retl_err_set(err, RETL_EXIT_USAGE, "state store %s: %s",
			     v->state_path, sqlite3_errmsg(db));
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	qsort(t->s, t->n, sizeof(*t->s), by_name);
	for (size_t i = 0; i < t->n; i++)
		for (size_t j = 0; j < v->nsyncs; j++)
			if (!strcmp(t->s[i].name, v->syncs[j].name))
				t->s[i].d = &v->syncs[j];
	return rc;
}

/* ---- the exposition format ---- */

static void label(retl_buf *b, const char *k, const char *v, int first)
{
	retl_buf_addf(b, "%s%s=\"", first ? "{" : ",", k);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			retl_buf_addc(b, '\\');
		if (*v == '\n') {
			retl_buf_adds(b, "\\n");
			continue;
		}
		retl_buf_addc(b, *v);
	}
	retl_buf_addc(b, '"');
}

static void family(retl_buf *b, const char *name, const char *type,
		   const char *help)
{
	retl_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(retl_buf *b, const char *name, const char *sync,
		   const char *k2, const char *v2, double value)
{
	retl_buf_adds(b, name);
	label(b, "sync", sync, 1);
	if (k2)
		label(b, k2, v2, 0);
	if (value == (double)(long long)value)
		retl_buf_addf(b, "} %lld\n", (long long)value);
	else
		retl_buf_addf(b, "} %.3f\n", value);
}

int retl_metrics_render(retl_buf *out, const struct retl_metrics_view *v,
			struct retl_err *err)
{
	struct stats t = { 0 };
	if (load_stats(&t, v, err) < 0) {
		stats_free(&t);
		return -1;
	}
	family(out, "retl_runs_total", "counter",
	       "Finished runs by status (ok, failed, error, refused, interrupted).");
	for (size_t i = 0; i < t.n; i++)
		for (size_t j = 0; j < t.s[i].nruns; j++)
			sample(out, "retl_runs_total", t.s[i].name, "status",
			       t.s[i].runs[j].status, (double)t.s[i].runs[j].n);
	family(out, "retl_rows_total", "counter",
	       "Rows of finished runs by outcome.");
	for (size_t i = 0; i < t.n; i++)
		for (size_t k = 0; k < NOUT; k++)
			sample(out, "retl_rows_total", t.s[i].name, "outcome",
			       outcomes[k], (double)t.s[i].rows[k]);
	family(out, "retl_last_success_timestamp_seconds", "gauge",
	       "End of the last run that completed (status ok or failed).");
	for (size_t i = 0; i < t.n; i++)
		if (t.s[i].last_success >= 0)
			sample(out, "retl_last_success_timestamp_seconds",
			       t.s[i].name, NULL, NULL, t.s[i].last_success);
	family(out, "retl_last_run_duration_seconds", "gauge",
	       "Duration of the last finished run.");
	for (size_t i = 0; i < t.n; i++)
		if (t.s[i].last_duration >= 0)
			sample(out, "retl_last_run_duration_seconds",
			       t.s[i].name, NULL, NULL, t.s[i].last_duration);
	struct { const char *name, *help; size_t off; } sums[] = {
		{ "retl_api_requests_total", "API requests sent by finished runs.",
		  offsetof(struct sync_stats, api) },
		{ "retl_retries_total", "Requests retried by finished runs.",
		  offsetof(struct sync_stats, retries) },
		{ "retl_http_429_total", "HTTP 429 responses seen by finished runs.",
		  offsetof(struct sync_stats, h429) },
		{ "retl_rows_failing", "Rows failing now (what retl failures lists).",
		  offsetof(struct sync_stats, failing) },
	};
	for (size_t k = 0; k < sizeof(sums) / sizeof(sums[0]); k++) {
		family(out, sums[k].name, k == 3 ? "gauge" : "counter", sums[k].help);
		for (size_t i = 0; i < t.n; i++)
			sample(out, sums[k].name, t.s[i].name, NULL, NULL,
			       (double)*(long *)((char *)&t.s[i] + sums[k].off));
	}
	family(out, "retl_runs_skipped_total", "counter",
	       "Runs skipped by this daemon because the previous run was still going.");
	for (size_t i = 0; i < t.n; i++)
		if (t.s[i].d)
			sample(out, "retl_runs_skipped_total", t.s[i].name, NULL,
			       NULL, (double)t.s[i].d->skipped);
	family(out, "retl_run_in_progress", "gauge",
	       "1 while this daemon runs the sync.");
	for (size_t i = 0; i < t.n; i++)
		if (t.s[i].d)
			sample(out, "retl_run_in_progress", t.s[i].name, NULL,
			       NULL, t.s[i].d->running);
	family(out, "retl_next_run_timestamp_seconds", "gauge",
	       "When this daemon runs the sync next.");
	for (size_t i = 0; i < t.n; i++)
		if (t.s[i].d && t.s[i].d->next > 0)
			sample(out, "retl_next_run_timestamp_seconds",
			       t.s[i].name, NULL, NULL, (double)(long long)t.s[i].d->next);
	stats_free(&t);
	return 0;
}

/* ---- health ---- */

#define HEALTH_MAX_TICK_AGE 5.0

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int retl_metrics_healthy(const struct retl_metrics_view *v, retl_buf *why)
{
	double age = mono_now() - v->last_tick;
	if (age > HEALTH_MAX_TICK_AGE) {
		retl_buf_addf(why, "daemon loop last ticked %.1f s ago\n", age);
		return 0;
	}
	sqlite3 *db;
	struct retl_err err;
	retl_err_clear(&err);
	if (db_open(&db, v->state_path, &err) < 0) {
		retl_buf_addf(why, "%s\n", err.msg);
		return 0;
	}
	/* takes the write lock without writing: fails when the file, its
	 * directory or the disk refuse writes (or a writer hangs on) */
	int ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	if (!ok)
		retl_buf_addf(why, "state store %s is not writable: %s\n",
			      v->state_path, sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	return ok;
}

/* ---- HTTP ---- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code,
			     const char *type, const retl_buf *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		body->len, (void *)retl_buf_cstr(body), MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result rc = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct retl_metrics *m = cls;
	retl_buf body = RETL_BUF_INIT;
	enum MHD_Result rc;
	unsigned code = MHD_HTTP_OK;
	const char *type = "text/plain; charset=utf-8";

	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		retl_buf_adds(&body, "only GET\n");
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (!strcmp(url, "/metrics")) {
		struct retl_err err;
		retl_err_clear(&err);
		type = "text/plain; version=0.0.4; charset=utf-8";
		if (retl_metrics_render(&body, m->view, &err) < 0) {
			retl_buf_reset(&body);
			retl_buf_addf(&body, "%s\n", err.msg);
			code = MHD_HTTP_SERVICE_UNAVAILABLE;
			type = "text/plain; charset=utf-8";
		}
	} else if (!strcmp(url, "/healthz")) {
		if (retl_metrics_healthy(m->view, &body))
			retl_buf_adds(&body, "ok\n");
		else
			code = MHD_HTTP_SERVICE_UNAVAILABLE;
	} else {
		retl_buf_adds(&body, "not found: try /metrics or /healthz\n");
		code = MHD_HTTP_NOT_FOUND;
	}
	rc = reply(c, code, type, &body);
	retl_buf_free(&body);
	return rc;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	retl_buf b = RETL_BUF_INIT;
	retl_buf_vaddf(&b, fmt, ap);
	while (b.len && b.ptr[b.len - 1] == '\n')
		retl_buf_truncate(&b, b.len - 1);
	retl_log(RETL_LOG_WARN, NULL, "http: %s", retl_buf_cstr(&b));
	retl_buf_free(&b);
}

/* "127.0.0.1:9187", "0.0.0.0:9187", "[::1]:9187" */
static int parse_listen(const char *s, struct sockaddr_storage *ss,
			int *v6, struct retl_err *err)
{
	const char *colon = strrchr(s, ':');
	char host[64];
	char *end;

	memset(ss, 0, sizeof(*ss));
	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
		goto bad;
	long port = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end || port < 0 || port > 65535)
		goto bad;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (host[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		size_t n = strlen(host);
		if (n < 3 || host[n - 1] != ']')
			goto bad;
		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			goto bad;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*v6 = 1;
		return 0;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		goto bad;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	*v6 = 0;
	return 0;
bad:
	return retl_err_set(err, RETL_EXIT_USAGE, "--listen: expected HOST:PORT "
			    "with an IP address (e.g. 127.0.0.1:9187 or "
			    "[::1]:9187), not \"%s\"", s);
}

int retl_metrics_start(retl_metrics **out, const char *listen,
		       const struct retl_metrics_view *view,
		       struct retl_err *err)
{
	struct sockaddr_storage ss;
	int v6 = 0;

	*out = NULL;
	if (parse_listen(listen, &ss, &v6, err) < 0)
		return -1;
	retl_metrics *m = retl_calloc(1, sizeof(*m));
	m->view = view;
	unsigned flags = MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
	/* the logger first, so MHD prints nothing on its own */
	m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m,
				  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
				  MHD_OPTION_END);
	if (!m->mhd) {
		free(m);
		return retl_err_set(err, RETL_EXIT_USAGE, "--listen %s: cannot "
				    "listen there (address in use, or not an "
				    "address of this host)", listen);
	}
	*out = m;
	return 0;
}

void retl_metrics_stop(retl_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->mhd);
	free(m);
}

void retl_metrics_fdset(retl_metrics *m, fd_set *rs, fd_set *ws, fd_set *es,
			int *maxfd, long *timeout_ms)
{
	MHD_UNSIGNED_LONG_LONG t;
	MHD_socket max = *maxfd;

	if (!m)
		return;
	if (MHD_get_fdset2(m->mhd, rs, ws, es, &max, FD_SETSIZE) == MHD_YES &&
	    max > *maxfd)
		*maxfd = max;
	if (MHD_get_timeout(m->mhd, &t) == MHD_YES && (long long)t < *timeout_ms)
		*timeout_ms = (long)t;
}

void retl_metrics_serve(retl_metrics *m, fd_set *rs, fd_set *ws, fd_set *es)
{
	if (m)
		MHD_run_from_select(m->mhd, rs, ws, es);
}
