/*
 * pgwait.h - waiting for the next result of a query sent with PQsendQuery.
 *
 * PLACEHOLDER (branch i15-cursor): the real module, which polls the socket
 * and sends PQcancel on SIGINT/SIGTERM, comes from branch i15-conn; this
 * file and pgwait.c are replaced by it at merge.  Same contract:
 *
 * Returns the next result (NULL when the query's results are done), like
 * PQgetResult.  *cancelled is set to 1 when a signal cancelled the query
 * while waiting (the result that follows is the server's cancel error), 0
 * otherwise.
 */
#ifndef RETL_PGWAIT_H
#define RETL_PGWAIT_H

#include <libpq-fe.h>

PGresult *retl_pg_next_result(PGconn *conn, int *cancelled);

#endif
