/*
 * golden_server.h - a scripted HTTP server on loopback for the golden
 * tests (test_golden.c).
 *
 * libmicrohttpd on 127.0.0.1, a port of its own, its own polling thread.
 * The test gives it a case's answers (status, headers, body); the
 * destination under test then talks to it as to the vendor: every request
 * is recorded whole (method, the raw path with its query, every header, the
 * body) and answered with the next scripted answer, in arrival order.  A
 * request past the end of the script is answered 418 (no destination
 * retries or splits on it), and the test reports it as unexpected.
 *
 * Only for tests: static functions, one server per test binary.
 */
#ifndef RETL_GOLDEN_SERVER_H
#define RETL_GOLDEN_SERVER_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

struct gs_header {
	char *name, *value;
};

/* one request as it arrived */
struct gs_req {
	char *method;
	char *uri;                /* raw: path and query as sent */
	struct gs_header *h;
	size_t nh;
	retl_buf body;
	int started;
};

/* one scripted answer */
struct gs_answer {
	unsigned status;
	struct gs_header *h;
	size_t nh;
	char *body;
	size_t len;
};

struct golden_server {
	struct MHD_Daemon *d;
	unsigned port;
	pthread_mutex_t mu;
	const struct gs_answer *ans;  /* the script (borrowed) */
	size_t nans;
	struct gs_req **got;          /* recorded, in arrival order */
	size_t ngot, cap;
};

static void gs_req_free(struct gs_req *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nh; i++) {
		free(r->h[i].name);
		free(r->h[i].value);
	}
	free(r->h);
	free(r->method);
	free(r->uri);
	retl_buf_free(&r->body);
	free(r);
}

/* the request's value of header `name` (case ignored), or NULL */
static const char *gs_req_header(const struct gs_req *r, const char *name)
{
	for (size_t i = 0; i < r->nh; i++)
		if (!strcasecmp(r->h[i].name, name))
			return r->h[i].value;
	return NULL;
}

/* MHD hands the raw URI here first; what we return becomes *req_cls */
static void *gs_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
	struct gs_req *r = retl_calloc(1, sizeof(*r));
	(void)cls;
	(void)con;
	r->uri = retl_strdup(uri);
	return r;
}

static enum MHD_Result gs_header_cb(void *cls, enum MHD_ValueKind kind,
				    const char *key, const char *value)
{
	struct gs_req *r = cls;
	(void)kind;
	r->h = retl_realloc(r->h, (r->nh + 1) * sizeof(*r->h));
	r->h[r->nh].name = retl_strdup(key);
	r->h[r->nh].value = retl_strdup(value ? value : "");
	r->nh++;
	return MHD_YES;
}

static enum MHD_Result gs_answer_req(struct golden_server *s,
				     struct MHD_Connection *con, struct gs_req *r)
{
	static const char none[] = "golden: no N.resp for this request";
	const struct gs_answer *a = NULL;

	pthread_mutex_lock(&s->mu);
	if (s->ngot == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->got = retl_realloc(s->got, s->cap * sizeof(*s->got));
	}
	if (s->ngot < s->nans)
		a = &s->ans[s->ngot];
	s->got[s->ngot++] = r;
	pthread_mutex_unlock(&s->mu);

	struct MHD_Response *resp = a ?
		MHD_create_response_from_buffer(a->len, a->body ? a->body : (char *)"",
						MHD_RESPMEM_MUST_COPY) :
		MHD_create_response_from_buffer(sizeof(none) - 1, (char *)none,
						MHD_RESPMEM_MUST_COPY);
	for (size_t i = 0; a && i < a->nh; i++)
		MHD_add_response_header(resp, a->h[i].name, a->h[i].value);
	enum MHD_Result rc = MHD_queue_response(con, a ? a->status : 418, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result gs_handle(void *cls, struct MHD_Connection *con,
				 const char *url, const char *method,
				 const char *version, const char *upload,
				 size_t *upload_size, void **req_cls)
{
	struct golden_server *s = cls;
	struct gs_req *r = *req_cls;
	(void)url;
	(void)version;
	if (!r)
		return MHD_NO;
	if (!r->started) {
		r->started = 1;
		r->method = retl_strdup(method);
		MHD_get_connection_values(con, MHD_HEADER_KIND, gs_header_cb, r);
		return MHD_YES;
	}
	if (*upload_size) {
		retl_buf_add(&r->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	*req_cls = NULL;          /* recorded: the server owns it now */
	return gs_answer_req(s, con, r);
}

/* a request that never completed (the client went away) */
static void gs_done(void *cls, struct MHD_Connection *con, void **req_cls,
		    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)con;
	(void)toe;
	gs_req_free(*req_cls);
	*req_cls = NULL;
}

static int gs_start(struct golden_server *s)
{
	struct sockaddr_in a;
	memset(s, 0, sizeof(*s));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pthread_mutex_init(&s->mu, NULL);
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
				gs_handle, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
				MHD_OPTION_URI_LOG_CALLBACK, gs_uri, s,
				MHD_OPTION_NOTIFY_COMPLETED, gs_done, s,
				MHD_OPTION_END);
	if (!s->d)
		return -1;
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = i ? i->port : 0;
	return s->port ? 0 : -1;
}

/* forgets what was recorded; the next requests are answered from `ans` */
static void gs_script(struct golden_server *s, const struct gs_answer *ans, size_t n)
{
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->ngot; i++)
		gs_req_free(s->got[i]);
	s->ngot = 0;
	s->ans = ans;
	s->nans = n;
	pthread_mutex_unlock(&s->mu);
}

static void gs_stop(struct golden_server *s)
{
	if (s->d)
		MHD_stop_daemon(s->d);
	gs_script(s, NULL, 0);
	free(s->got);
	pthread_mutex_destroy(&s->mu);
}

#endif
