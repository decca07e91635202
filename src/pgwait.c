/*
 * pgwait.c - PLACEHOLDER: a blocking PQgetResult (see pgwait.h); replaced
 * by branch i15-conn's module at merge.
 */
#include "pgwait.h"

PGresult *retl_pg_next_result(PGconn *conn, int *cancelled)
{
	*cancelled = 0;
	return PQgetResult(conn);
}
