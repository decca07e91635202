/*
 * metrics.h - the daemon's HTTP listener (libmicrohttpd): /metrics in the
 * Prometheus text format and /healthz.
 *
 * The listener runs inside the daemon's own loop (no thread of its own:
 * the daemon forks children, and a fork while another thread holds a
 * SQLite or malloc lock would hand the child a lock nobody releases).
 * Every scrape reads the state store afresh through a short-lived observer
 * handle of the state module (retl_state_open_observer), so the counters
 * are the runs table's, exactly; only what
 * the store cannot know (skipped runs, what is running, next run times)
 * comes from the daemon, through a view it keeps current.
 */
#ifndef RETL_METRICS_H
#define RETL_METRICS_H

#include <sys/select.h>
#include <time.h>

#include "buf.h"
#include "err.h"

struct retl_metrics_sync {
	const char *name;
	long skipped;             /* due while its last run was still going */
	long ran;                 /* runs this daemon ran (not skipped) */
	int running;
	double next;              /* UTC seconds of the next run, 0 = none */
};

/* owned by the daemon, borrowed by the listener; updated every tick */
struct retl_metrics_view {
	const char *state_path;
	double last_tick;         /* CLOCK_MONOTONIC seconds */
	const struct retl_metrics_sync *syncs;
	size_t nsyncs;
};

typedef struct retl_metrics retl_metrics;

/* listen is "HOST:PORT" or "[V6]:PORT" (PORT 0: any free port); view is
 * borrowed for the lifetime.  A busy or foreign address: "cannot listen on
 * ADDR: <strerror>", err code 2 */
int retl_metrics_start(retl_metrics **out, const char *listen,
		       const struct retl_metrics_view *view,
		       struct retl_err *err);
void retl_metrics_stop(retl_metrics *m);
/* the port the listener is bound to (the one the system chose for
 * "HOST:0"), or -1 */
int retl_metrics_port(const retl_metrics *m);

/* for the daemon's select(): adds the listener's fds, lowers *timeout_ms */
void retl_metrics_fdset(retl_metrics *m, fd_set *rs, fd_set *ws, fd_set *es,
			int *maxfd, long *timeout_ms);
/* serves whatever select() found ready */
void retl_metrics_serve(retl_metrics *m, fd_set *rs, fd_set *ws, fd_set *es);

/* the /metrics body; < 0 when the state store cannot be read */
int retl_metrics_render(retl_buf *out, const struct retl_metrics_view *view,
			struct retl_err *err);
/* 1 when healthy; otherwise 0 and why says what is wrong */
int retl_metrics_healthy(const struct retl_metrics_view *view, retl_buf *why);

#endif
