/*
 * pgwait.c - waiting on the PostgreSQL server, bounded and interruptible
 * (pgwait.h says why libpq's own waits will not do).
 */
#include "pgwait.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "stop.h"

/* how long one poll() lasts at most: the stop flag is seen this late */
#define SLICE_MS 100

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* 1 ready, 0 not yet (the time is up, or a signal came: the caller looks
 * at the stop flag), -1 poll failed */
static int wait_socket(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r = poll(&p, 1, ms);
	if (r < 0)
		return errno == EINTR ? 0 : -1;
	return r > 0;
}

/* ---- connection parameters --------------------------------------------- */

/* libpq's test for "a connection string, not a database name" */
static int is_conninfo(const char *dsn)
{
	return !strncmp(dsn, "postgresql://", 13) ||
	       !strncmp(dsn, "postgres://", 11) || strchr(dsn, '=');
}

static void add(struct retl_pg_params *p, size_t *n, const char *k,
		const char *v)
{
	p->keys[*n] = k;
	p->vals[*n] = v;
	++*n;
	p->keys[*n] = NULL;
	p->vals[*n] = NULL;
}

/* the DSN's value of one parameter, NULL when it does not set it */
static const char *dsn_value(const PQconninfoOption *opts, const char *key)
{
	for (const PQconninfoOption *o = opts; o && o->keyword; o++)
		if (!strcmp(o->keyword, key))
			return o->val;
	return NULL;
}

/* connect_timeout as libpq reads it: whole seconds, below 1 = none, 1 is 2 */
static int dsn_timeout(const char *v, long *ms)
{
	char *end;
	errno = 0;
	long s = strtol(v, &end, 10);
	while (*end == ' ' || *end == '\t')
		end++;
	if (errno || end == v || *end)
		return -1;
	if (s <= 0)
		s = 0;
	else if (s < 2)
		s = 2;
	if (s > 1000000)
		s = 1000000;
	*ms = s * 1000;
	return 0;
}

/* entries of a comma-separated list; 0 when one of them is empty */
static size_t list_len(const char *l)
{
	size_t n = 1;
	for (const char *c = l; *c; c++)
		if (*c == ',') {
			if (c == l || c[1] == ',' || !c[1])
				return 0;
			n++;
		}
	return *l ? n : 0;
}

/* the host lists of a multi-host DSN, when retl can walk them itself */
static void host_lists(struct retl_pg_params *p, const PQconninfoOption *opts)
{
	const char *h = dsn_value(opts, "host"), *ha = dsn_value(opts, "hostaddr");
	const char *port = dsn_value(opts, "port");
	size_t nh = h && *h ? list_len(h) : 0, nha = ha && *ha ? list_len(ha) : 0;
	size_t n = nh > nha ? nh : nha, np = port && *port ? list_len(port) : 1;
	if (n < 2 || (nh && nha && nh != nha) || (np != 1 && np != n) ||
	    (h && *h && !nh) || (ha && *ha && !nha))
		return;
	p->nhosts = n;
	p->hosts = nh ? retl_strdup(h) : NULL;
	p->hostaddrs = nha ? retl_strdup(ha) : NULL;
	p->ports = np == n ? retl_strdup(port) : NULL;
}

void retl_pg_params_free(struct retl_pg_params *p)
{
	free(p->hosts);
	free(p->hostaddrs);
	free(p->ports);
	p->hosts = p->hostaddrs = p->ports = NULL;
	p->nhosts = 0;
}

int retl_pg_params_init(struct retl_pg_params *p, const char *dsn,
			long timeout_ms, char *errmsg, size_t errlen)
{
	static const char *const keepalives[][2] = {
		{ "keepalives", "1" },
		{ "keepalives_idle", RETL_PG_KEEPALIVES_IDLE },
		{ "keepalives_interval", RETL_PG_KEEPALIVES_INTERVAL },
		{ "keepalives_count", RETL_PG_KEEPALIVES_COUNT },
	};
	size_t n = 0;
	PQconninfoOption *opts = NULL;

	memset(p, 0, sizeof(*p));
	if (is_conninfo(dsn)) {
		char *msg = NULL;
		opts = PQconninfoParse(dsn, &msg);
		if (!opts) {
			snprintf(errmsg, errlen, "%s", msg ? msg : "out of memory");
			PQfreemem(msg);
			return -1;
		}
	}
	add(p, &n, "dbname", dsn);

	const char *t = dsn_value(opts, "connect_timeout");
	if (t) {
		p->timeout_from_dsn = 1;
		if (dsn_timeout(t, &p->timeout_ms) < 0) {
			snprintf(errmsg, errlen,
				 "invalid integer value \"%s\" for connection option \"connect_timeout\"",
				 t);
			PQconninfoFree(opts);
			return -1;
		}
	} else {
		p->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
		if (p->timeout_ms) {
			/* for the record (PQconninfo): libpq's PQconnectPoll
			 * does not enforce it; retl_pg_connect does */
			long s = (p->timeout_ms + 999) / 1000;
			snprintf(p->timeout_s, sizeof(p->timeout_s), "%ld", s < 2 ? 2 : s);
			add(p, &n, "connect_timeout", p->timeout_s);
		}
	}
	for (size_t i = 0; i < sizeof(keepalives) / sizeof(keepalives[0]); i++)
		if (!dsn_value(opts, keepalives[i][0]))
			add(p, &n, keepalives[i][0], keepalives[i][1]);
	host_lists(p, opts);
	PQconninfoFree(opts);
	return 0;
}

/* ---- connect ------------------------------------------------------------ */

/* "host:port" of the host being tried, to restart the deadline per host */
static void current_host(PGconn *c, char *out, size_t len)
{
	const char *h = PQhost(c), *port = PQport(c);
	snprintf(out, len, "%s:%s", h ? h : "", port ? port : "");
}

static int connect_one(PGconn **conn, const struct retl_pg_params *p,
		       const char *const *keys, const char *const *vals)
{
	PGconn *c = PQconnectStartParams(keys, vals, 1);
	*conn = c;
	if (!c || PQstatus(c) == CONNECTION_BAD)
		return RETL_PG_FAILED;

	/* libpq's own loop starts by waiting to write */
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	char host[512] = "", now_host[512];
	double deadline = 0;
	for (;;) {
		if (st == PGRES_POLLING_OK)
			return RETL_PG_CONNECTED;
		if (st == PGRES_POLLING_FAILED)
			return RETL_PG_FAILED;
		/* libpq moves on to the next host of a list by itself; each
		 * gets the whole timeout, as with libpq's connect_timeout */
		current_host(c, now_host, sizeof(now_host));
		if (strcmp(now_host, host)) {
			snprintf(host, sizeof(host), "%s", now_host);
			deadline = now_ms() + (double)p->timeout_ms;
		}
		if (retl_stop_requested())
			return RETL_PG_STOPPED;
		int slice = SLICE_MS;
		if (p->timeout_ms > 0) {
			double left = deadline - now_ms();
			if (left <= 0)
				return RETL_PG_TIMEDOUT;
			if (left < slice)
				slice = (int)left + 1;
		}
		int r = wait_socket(PQsocket(c), st == PGRES_POLLING_READING ?
				    POLLIN : POLLOUT, slice);
		/* on a poll error too: PQconnectPoll finds and reports it */
		if (r)
			st = PQconnectPoll(c);
	}
}

/* what one host's attempt came to, for the message */
static void add_why(retl_buf *why, PGconn *c, int rc,
		    const struct retl_pg_params *p)
{
	if (why->len)
		retl_buf_adds(why, "; ");
	if (rc == RETL_PG_TIMEDOUT) {
		const char *h = PQhost(c), *port = PQport(c);
		int v6 = h && strchr(h, ':');
		retl_buf_addf(why, "%s%s%s:%s: no answer within %g s (connect_timeout%s)",
			      v6 ? "[" : "", h ? h : "?", v6 ? "]" : "",
			      port ? port : "?", (double)p->timeout_ms / 1000,
			      p->timeout_from_dsn ? " in the dsn" : "");
		return;
	}
	/* libpq's message on one line: a run of blanks holding a line break
	 * becomes one space, the trailing ones go */
	const char *m = c ? PQerrorMessage(c) : "out of memory";
	size_t len = strlen(m);
	while (len && strchr(" \t\r\n", m[len - 1]))
		len--;
	for (size_t i = 0; i < len;) {
		size_t j = i;
		int nl = 0;
		while (j < len && strchr(" \t\r\n", m[j]))
			nl |= m[j++] == '\n';
		if (j > i && nl) {
			retl_buf_addc(why, ' ');
			i = j;
		} else if (j > i) {
			retl_buf_add(why, m + i, j - i);
			i = j;
		} else {
			retl_buf_addc(why, m[i++]);
		}
	}
}

/* the i-th entry of a comma-separated list, into out */
static const char *nth(retl_buf *out, const char *list, size_t i)
{
	while (i--)
		list = strchr(list, ',') + 1;
	const char *end = strchr(list, ',');
	retl_buf_reset(out);
	retl_buf_add(out, list, end ? (size_t)(end - list) : strlen(list));
	return retl_buf_cstr(out);
}

int retl_pg_connect(PGconn **conn, const struct retl_pg_params *p,
		    retl_buf *why)
{
	retl_buf_reset(why);
	if (p->nhosts < 2) {
		int rc = connect_one(conn, p, p->keys, p->vals);
		if (rc == RETL_PG_FAILED || rc == RETL_PG_TIMEDOUT)
			add_why(why, *conn, rc, p);
		return rc;
	}
	/* one host at a time, each with its own deadline: libpq itself would
	 * wait on a silent host for ever (PQconnectPoll has no timeout) */
	const char *keys[RETL_PG_MAX_PARAMS + 1], *vals[RETL_PG_MAX_PARAMS + 1];
	retl_buf h = RETL_BUF_INIT, ha = RETL_BUF_INIT, port = RETL_BUF_INIT;
	int rc = RETL_PG_FAILED;
	*conn = NULL;
	for (size_t i = 0; i < p->nhosts; i++) {
		size_t n = 0;
		while (p->keys[n]) {
			keys[n] = p->keys[n];
			vals[n] = p->vals[n];
			n++;
		}
		if (p->hosts) {
			keys[n] = "host";
			vals[n++] = nth(&h, p->hosts, i);
		}
		if (p->hostaddrs) {
			keys[n] = "hostaddr";
			vals[n++] = nth(&ha, p->hostaddrs, i);
		}
		if (p->ports) {
			keys[n] = "port";
			vals[n++] = nth(&port, p->ports, i);
		}
		keys[n] = vals[n] = NULL;
		PQfinish(*conn);
		rc = connect_one(conn, p, keys, vals);
		if (rc == RETL_PG_CONNECTED || rc == RETL_PG_STOPPED)
			break;
		add_why(why, *conn, rc, p);
	}
	retl_buf_free(&h);
	retl_buf_free(&ha);
	retl_buf_free(&port);
	return rc;
}

/* ---- results -------------------------------------------------------------- */

static void send_cancel(PGconn *conn)
{
	PGcancel *c = PQgetCancel(conn);
	if (!c)
		return;
	char errbuf[256];
	/* a failed cancel request changes nothing: the grace period ends
	 * the wait all the same */
	(void)PQcancel(c, errbuf, (int)sizeof(errbuf));
	PQfreeCancel(c);
}

/*
 * Stops waiting on a server that did not end a cancelled query in time:
 * after the shutdown libpq reads EOF, calls the connection lost, and no
 * later call on it waits.
 */
static void give_up(PGconn *conn)
{
	int fd = PQsocket(conn);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
	PQconsumeInput(conn);
}

/*
 * One slice of waiting for the server's next bytes, read into libpq's
 * buffer.  0: look again; -1: no more waiting (the connection is lost or
 * was given up on; PQgetResult / PQgetCopyData now return at once).
 */
static int await_input(PGconn *conn, int *cancelled, double *until)
{
	if (PQstatus(conn) == CONNECTION_BAD || PQsocket(conn) < 0)
		return -1;
	if (retl_stop_requested() && !*cancelled) {
		send_cancel(conn);
		*cancelled = 1;
	}
	if (*cancelled) {
		if (*until == 0) {
			*until = now_ms() + RETL_PG_CANCEL_GRACE_MS;
		} else if (now_ms() >= *until) {
			give_up(conn);
			return -1;
		}
	}
	int r = wait_socket(PQsocket(conn), POLLIN, SLICE_MS);
	if (r < 0 || (r > 0 && !PQconsumeInput(conn))) {
		if (PQstatus(conn) != CONNECTION_BAD)
			give_up(conn);
		return -1;
	}
	return 0;
}

PGresult *retl_pg_next_result(PGconn *conn, int *cancelled)
{
	double until = 0;
	while (PQisBusy(conn))
		if (await_input(conn, cancelled, &until) < 0)
			break;
	return PQgetResult(conn);
}

int retl_pg_copy_data(PGconn *conn, char **buf, int *cancelled)
{
	double until = 0;
	for (;;) {
		int n = PQgetCopyData(conn, buf, 1);
		if (n != 0)
			return n;
		/* async PQgetCopyData returns 0 for ever on a lost connection */
		if (await_input(conn, cancelled, &until) < 0)
			return -2;
	}
}
