/*
 * metrics.c - /metrics and /healthz for `retl daemon`, see metrics.h.
 *
 * Counters are sums over the runs table's finished runs (status other than
 * "running"), so `sqlite3 state/retl.db` and a scrape always agree; a run
 * killed mid-way (kill -9) stays "running" in the table, uncounted, until
 * the next run of the sync records it "abandoned".
 * "Success" for retl_last_success_timestamp_seconds means the run
 * completed (status ok, or rows rejected: completed with some rows not
 * synced, which retl_rows_failing shows on its own).
 *
 * The figures come from the state module (retl_state_stats_read): only it
 * knows the schema.  Each scrape opens its own observer connection, so the
 * daemon never shares a SQLite handle with the children it forks.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "state.h"

struct retl_metrics {
	struct MHD_Daemon *mhd;
	const struct retl_metrics_view *view;
};

/* ---- reading the state store ---- */

static const struct {
	const char *name;
	size_t off;     /* in struct retl_run_counts */
} outcomes[] = {
	{ "added", offsetof(struct retl_run_counts, added) },
	{ "changed", offsetof(struct retl_run_counts, changed) },
	{ "retried", offsetof(struct retl_run_counts, retried) },
	{ "removed", offsetof(struct retl_run_counts, removed) },
	{ "unchanged", offsetof(struct retl_run_counts, unchanged) },
	{ "rejected", offsetof(struct retl_run_counts, rejected) },
	{ "failed", offsetof(struct retl_run_counts, failed) },
};
#define NOUT (sizeof(outcomes) / sizeof(outcomes[0]))

/* a sync of the store's figures, of the daemon's view, or both */
struct sync_stats {
	const char *name;
	const struct retl_sync_stats *fig;
	const struct retl_metrics_sync *d; /* the daemon's view, or NULL */
};

struct stats {
	struct retl_state_stats store;
	struct sync_stats *s;
	size_t n;
};

/* a sync the daemon runs that has no run nor failing row yet */
static const struct retl_sync_stats no_stats = {
	.last_success = -1, .last_duration = -1,
};

static long field(const void *base, size_t off)
{
	return *(const long *)((const char *)base + off);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct sync_stats *)a)->name,
		      ((const struct sync_stats *)b)->name);
}

static void stats_free(struct stats *t)
{
	retl_state_stats_free(&t->store);
	free(t->s);
}

/* the store's figures through a short-lived observer connection, with
 * the daemon's syncs added; in the order of their names */
static int load_stats(struct stats *t, const struct retl_metrics_view *v,
		      struct retl_err *err)
{
	retl_state *st;
	size_t i, j;
	int rc;

	if (retl_state_open_observer(&st, v->state_path, err) < 0)
		return -1;
	rc = retl_state_stats_read(st, &t->store, err);
	retl_state_close(st);
	if (rc < 0)
		return -1;
	t->s = retl_calloc(t->store.n + v->nsyncs + 1, sizeof(*t->s));
	for (i = 0; i < t->store.n; i++) {
		t->s[t->n].name = t->store.s[i].sync;
		t->s[t->n++].fig = &t->store.s[i];
	}
	for (j = 0; j < v->nsyncs; j++) {
		for (i = 0; i < t->n; i++)
			if (!strcmp(t->s[i].name, v->syncs[j].name))
				break;
		if (i == t->n) {
			t->s[t->n].name = v->syncs[j].name;
			t->s[t->n++].fig = &no_stats;
		}
		t->s[i].d = &v->syncs[j];
	}
	qsort(t->s, t->n, sizeof(*t->s), by_name);
	return 0;
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
	       "Finished runs by status (ok, rows rejected, interrupted, failed, abandoned).");
	for (size_t i = 0; i < t.n; i++)
		for (size_t j = 0; j < t.s[i].fig->nruns; j++)
			sample(out, "retl_runs_total", t.s[i].name, "status",
			       t.s[i].fig->runs[j].status,
			       (double)t.s[i].fig->runs[j].n);
	family(out, "retl_rows_total", "counter",
	       "Rows of finished runs by outcome.");
	for (size_t i = 0; i < t.n; i++)
		for (size_t k = 0; k < NOUT; k++)
			sample(out, "retl_rows_total", t.s[i].name, "outcome",
			       outcomes[k].name,
			       (double)field(&t.s[i].fig->c, outcomes[k].off));
	family(out, "retl_last_success_timestamp_seconds", "gauge",
	       "End of the last run that completed (status ok or rows rejected).");
	for (size_t i = 0; i < t.n; i++)
		if (t.s[i].fig->last_success >= 0)
			sample(out, "retl_last_success_timestamp_seconds",
			       t.s[i].name, NULL, NULL, t.s[i].fig->last_success);
	family(out, "retl_last_run_duration_seconds", "gauge",
	       "Duration of the last finished run.");
	for (size_t i = 0; i < t.n; i++)
		if (t.s[i].fig->last_duration >= 0)
			sample(out, "retl_last_run_duration_seconds",
			       t.s[i].name, NULL, NULL, t.s[i].fig->last_duration);
	struct { const char *name, *help; size_t off; } sums[] = {
		{ "retl_api_requests_total", "API requests sent by finished runs.",
		  offsetof(struct retl_sync_stats, c.api_calls) },
		{ "retl_retries_total", "Requests retried by finished runs.",
		  offsetof(struct retl_sync_stats, c.retries) },
		{ "retl_http_429_total", "HTTP 429 responses seen by finished runs.",
		  offsetof(struct retl_sync_stats, c.http_429) },
		{ "retl_rows_failing", "Rows failing now (what retl failures lists).",
		  offsetof(struct retl_sync_stats, failing) },
	};
	for (size_t k = 0; k < sizeof(sums) / sizeof(sums[0]); k++) {
		family(out, sums[k].name, k == 3 ? "gauge" : "counter", sums[k].help);
		for (size_t i = 0; i < t.n; i++)
			sample(out, sums[k].name, t.s[i].name, NULL, NULL,
			       (double)field(t.s[i].fig, sums[k].off));
	}
	family(out, "retl_runs_skipped_total", "counter",
	       "Runs skipped by this daemon because the previous run was still going.");
	for (size_t i = 0; i < t.n; i++)
		if (t.s[i].d)
			sample(out, "retl_runs_skipped_total", t.s[i].name, NULL,
			       NULL, (double)t.s[i].d->skipped);
	family(out, "retl_daemon_runs_total", "counter",
	       "Runs this daemon ran: its share when several daemons share the store.");
	for (size_t i = 0; i < t.n; i++)
		if (t.s[i].d)
			sample(out, "retl_daemon_runs_total", t.s[i].name, NULL,
			       NULL, (double)t.s[i].d->ran);
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
	retl_state *st;
	struct retl_err err;
	retl_err_clear(&err);
	if (retl_state_open_observer(&st, v->state_path, &err) < 0) {
		retl_buf_addf(why, "%s\n", err.msg);
		return 0;
	}
	int ok = retl_state_probe_writable(st, &err) == 0;
	if (!ok)
		retl_buf_addf(why, "%s\n", err.msg);
	retl_state_close(st);
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

/*
 * The listening socket is made here rather than by MHD: MHD reports a
 * failed bind only through its log ("Failed to bind to port 0"), which
 * names neither the address nor the reason; here the error is errno's,
 * with the address the operator wrote.  MHD closes it when it stops.
 */
static int open_listener(const struct sockaddr_storage *ss, int v6,
			 const char *listen_s, struct retl_err *err)
{
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1, e;

	if (fd < 0)
		goto fail;
	/* a restarted daemon rebinds at once, over its old TIME_WAITs */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (v6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, v6 ?
		 sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) < 0 ||
	    listen(fd, 64) < 0)
		goto fail;
	return fd;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	return retl_err_set(err, RETL_EXIT_USAGE, "cannot listen on %s: %s",
			    listen_s, strerror(e));
}

int retl_metrics_start(retl_metrics **out, const char *listen_s,
		       const struct retl_metrics_view *view,
		       struct retl_err *err)
{
	struct sockaddr_storage ss;
	int v6 = 0;

	*out = NULL;
	if (parse_listen(listen_s, &ss, &v6, err) < 0)
		return -1;
	int fd = open_listener(&ss, v6, listen_s, err);
	if (fd < 0)
		return -1;
	retl_metrics *m = retl_calloc(1, sizeof(*m));
	m->view = view;
	unsigned flags = MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
	/* the logger first, so MHD prints nothing on its own */
	m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m,
				  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
				  MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
				  MHD_OPTION_END);
	if (!m->mhd) {
		close(fd);
		free(m);
		return retl_err_set(err, RETL_EXIT_USAGE, "cannot listen on %s: "
				    "the HTTP server did not start (see the log "
				    "line above)", listen_s);
	}
	*out = m;
	return 0;
}

int retl_metrics_port(const retl_metrics *m)
{
	const union MHD_DaemonInfo *i;

	if (!m || !(i = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT)))
		return -1;
	return i->port;
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
