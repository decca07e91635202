/*
 * pgwait.h - waiting on the PostgreSQL server, bounded and interruptible.
 *
 * libpq's blocking calls (PQconnectdb, PQexec, PQgetCopyData(…, 0)) wait in
 * a poll() that retries on EINTR, so a SIGINT/SIGTERM handler that only
 * sets a flag is never heard until the server answers, and PQconnectPoll
 * enforces no connect_timeout at all.  Everything here waits in our own
 * poll() on PQsocket in slices of 100 ms and checks the stop flag
 * (stop.h) between slices:
 *
 *  - connecting: our own deadline (connect_timeout), and a stop ends it;
 *  - a query sent with PQsendQuery, PQsendPrepare and the like: results, and COPY
 *    data, are read with PQconsumeInput + PQisBusy / PQgetCopyData(…, 1);
 *    when the stop flag is up the query is cancelled once (PQcancel) and
 *    its results are drained.  A server that has not ended the query
 *    RETL_PG_CANCEL_GRACE_MS after the cancel is given up on: the socket is
 *    shut down, so libpq reports the connection lost and every later call
 *    on it fails at once (the run is ending; the cancel has reached the
 *    server, which stops the query by itself).
 */
#ifndef RETL_PGWAIT_H
#define RETL_PGWAIT_H

#include <libpq-fe.h>

#include "buf.h"

#define RETL_PG_CANCEL_GRACE_MS 500

/* keepalives retl asks for unless the DSN sets them: a peer that vanished
 * (no FIN, no RST) is noticed after about idle + interval * count seconds */
#define RETL_PG_KEEPALIVES_IDLE "30"
#define RETL_PG_KEEPALIVES_INTERVAL "10"
#define RETL_PG_KEEPALIVES_COUNT "3"

/* the DSN's own parameters, then ours, then one host's host/hostaddr/port */
#define RETL_PG_MAX_PARAMS 12

/*
 * The connection parameters for PQconnectStartParams(keys, vals, 1): the
 * user's DSN first (as "dbname", expanded by libpq, so a URI or a
 * key=value string is kept as written), then what retl adds when the DSN
 * does not set it: connect_timeout and TCP keepalives.
 */
struct retl_pg_params {
	const char *keys[RETL_PG_MAX_PARAMS + 1];   /* NULL-terminated */
	const char *vals[RETL_PG_MAX_PARAMS + 1];
	long timeout_ms;        /* the connect deadline, per host tried;
				 * 0 = none (the DSN's connect_timeout wins
				 * over the option, as libpq reads it) */
	int timeout_from_dsn;   /* 1 when the DSN set connect_timeout */
	char timeout_s[24];     /* storage for the connect_timeout we add */
	/* a DSN listing several hosts (host=a,b): its host, hostaddr and
	 * port lists (owned copies, NULL when not set), tried one host at a
	 * time so that each gets the whole timeout and a silent one is
	 * skipped, as libpq's own blocking connect does; nhosts 0 when the
	 * DSN names one host or lists libpq must sort out itself (empty or
	 * mismatched entries: libpq then reports them) */
	char *hosts, *hostaddrs, *ports;
	size_t nhosts;
};

/*
 * Fills p from dsn (borrowed: p points into it) and the source's
 * connect_timeout option (ms, 0 = none).  -1 when the DSN does not parse,
 * with libpq's message in errmsg (may echo parts of the DSN: redact it).
 * retl_pg_params_free releases it (also after a failed init).
 */
int retl_pg_params_init(struct retl_pg_params *p, const char *dsn,
			long timeout_ms, char *errmsg, size_t errlen);
void retl_pg_params_free(struct retl_pg_params *p);

enum retl_pg_connect_rc {
	RETL_PG_CONNECTED = 0,
	RETL_PG_FAILED = -1,    /* libpq's PQerrorMessage says why */
	RETL_PG_TIMEDOUT = -2,  /* no answer within timeout_ms (PQhost/PQport
				 * name the host that did not answer) */
	RETL_PG_STOPPED = -3,   /* the stop flag went up while connecting */
};

/*
 * Connects; *conn is set whatever the outcome (NULL only when out of
 * memory) and the caller PQfinish()es it.  On FAILED or TIMEDOUT, why
 * says what each host tried did ("HOST:PORT: no answer within 10 s
 * (connect_timeout)", libpq's message), "; " between hosts; the result is
 * the last host's.
 */
int retl_pg_connect(PGconn **conn, const struct retl_pg_params *p,
		    retl_buf *why);

/*
 * The next result of a query sent with PQsendQuery and friends, like
 * PQgetResult but waiting in poll(): NULL when none is left; the caller
 * PQclears.  *cancelled is in-out: set it to 0 before the query's first
 * call; when the stop flag is up and the result is not there yet, the
 * query is cancelled (once: not again while *cancelled is 1) and
 * *cancelled becomes 1; the results that follow are the cancel's
 * ("canceling statement due to user request", or the connection lost).
 */
PGresult *retl_pg_next_result(PGconn *conn, int *cancelled);

/*
 * The COPY OUT counterpart: PQgetCopyData(conn, buf, 0)'s contract (> 0 a
 * row of that many bytes in *buf, to PQfreemem; -1 the COPY is done, read
 * its result with retl_pg_next_result; -2 an error), waiting in poll()
 * and cancelling on a stop as retl_pg_next_result does.
 */
int retl_pg_copy_data(PGconn *conn, char **buf, int *cancelled);

#endif
