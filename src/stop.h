/*
 * stop.h - the process-wide "asked to stop" flag.
 *
 * SIGINT/SIGTERM handlers (cmd_run.c, the daemon's children) set it; the
 * sync engine checks it between rows and batches, and the source checks it
 * while it waits on the server (pgwait.h), so a stop is seen while
 * connecting or while a query runs, not only between rows.  It lives
 * apart from the sync engine so the source can read it without knowing
 * the engine.
 */
#ifndef RETL_STOP_H
#define RETL_STOP_H

/* async-signal-safe: only stores to a volatile sig_atomic_t */
void retl_stop_request(void);
int retl_stop_requested(void);
void retl_stop_reset(void);

#endif
