/*
 * daemon.c - the scheduler loop of `retl daemon`, see daemon.h.
 *
 * One single-threaded loop: select() on a self-pipe the signal handlers
 * write to and on the metrics listener's sockets, at most a second at a
 * time (so /healthz can tell a live loop from a stuck one).  Each tick:
 *
 *   reap      children that ended (their run is already in the state store)
 *   signals   SIGHUP reloads the config (a broken one is logged, the old
 *             one kept); SIGTERM/SIGINT start the shutdown
 *   skip      a sync due while its previous run still goes is skipped and
 *             counted (retl_runs_skipped_total), never queued
 *   start     due syncs, earliest first, while fewer than --concurrency
 *             children run; a due sync waiting for a slot stays due
 *
 * Next runs: cron schedules at their next matching minute after the start;
 * intervals ("every 2s") counted from the run's start.  At start-up (and
 * for a sync a reload adds or reschedules) the state store's last run
 * decides: a sync that never ran, or whose due time passed since its last
 * start, runs at once, one time (missed while no daemon ran).
 *
 * Several daemons (workers) may share one state store.  Each due run is
 * claimed by exactly one of them (state_claims.c): a worker whose timer
 * says a sync is due stores the sync's next due time if nobody did first,
 * and runs it only then; one that lost takes the stored time as its own.
 * The claimer of a due time also decides a skip (its own last run still
 * going), so each due time is run or skipped once, by one worker.  A
 * worker at its --concurrency limit claims nothing: a free worker will.
 * At (re)planning a later due time stored under the same schedule is
 * adopted (another worker claimed a run not begun yet), and one stored
 * under another schedule is pulled earlier, never later, to this
 * worker's plan (a shortened schedule takes effect at once).  No
 * handle on the store is open across a fork: claims open an observer
 * handle for the tick and close it before the winners are forked.
 *
 * Shutdown: no new runs; every child gets SIGTERM and stops as `retl run`
 * does (batches in flight finish and are committed, the run is recorded
 * "interrupted", unsent rows wait for the next run); after
 * --shutdown-timeout seconds (or a second SIGTERM/SIGINT) the rest get
 * SIGKILL, which loses no acknowledged work either.  Then exit 0.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "schedule.h"
#include "state.h"
#include "sync.h"

/* a child that found the sync locked by a run outside this daemon */
#define EXIT_LOCKED 75

struct job {
	char *name;
	char *expr;               /* the schedule's text: reload compares it */
	struct retl_schedule sched;
	int present;              /* scheduled in the current config */
	double next;              /* UTC seconds */
	pid_t pid;                /* the running child, 0 = none */
	long skipped;
	long ran;                 /* runs this worker's children ran */
};

struct daemon {
	const struct retl_daemon_opts *o;
	struct retl_config **cfg;
	struct job *jobs;
	size_t njobs;
	int running;
	int stopping;
	double deadline;          /* monotonic: SIGKILL what is left */
	retl_metrics *metrics;
	char *owner;              /* "host:pid:random": this worker in claims */
	int claim_failing;        /* the store refused the last claim */
	struct retl_metrics_view view;
	struct retl_metrics_sync *vsyncs;
};

static volatile sig_atomic_t got_term, got_hup;
static int wake[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGTERM || sig == SIGINT)
		got_term++;
	if (wake[1] >= 0 && write(wake[1], "", 1) < 0) {
		/* full pipe: the loop wakes anyway */
	}
	errno = saved;
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double retl_daemon_parse_ts(const char *iso)
{
	struct tm tm;
	const char *end;

	if (!iso)
		return -1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	double t = (double)timegm(&tm);
	if (*end == '.')
		t += strtod(end, NULL);
	return t;
}

/* the next run after t; HUGE_VAL when there is none (a schedule that can
 * never match is refused when parsed, but "no next time" must never read
 * as due: -1 would compare as long past) */
static double next_after(const struct retl_schedule *s, double t)
{
	if (s->kind == RETL_SCHED_EVERY)
		return t + (double)s->every;
	time_t n = retl_schedule_next(s, (time_t)t);
	return n < 0 ? HUGE_VAL : (double)n;
}

static double first_run(const struct retl_schedule *s, double last_start,
			double now)
{
	if (last_start < 0)
		return now;
	double n = next_after(s, last_start);
	return n <= now ? now : n;
}

double retl_daemon_next_run(const struct retl_sync_cfg *sc, double last_start,
			    double now)
{
	struct retl_schedule s;
	struct retl_err err;

	retl_err_clear(&err);
	if (!sc->schedule || retl_schedule_parse(&s, sc->schedule, &err) < 0)
		return -1;
	double n = first_run(&s, last_start, now);
	return n < HUGE_VAL ? n : -1;
}

/* ---- the jobs ---- */

struct last_starts {
	struct retl_config *cfg;
	double *t;                /* per sync of cfg */
};

static int on_last_run(void *ud, const struct retl_run_rec *r)
{
	struct last_starts *l = ud;
	for (size_t i = 0; i < l->cfg->nsyncs; i++)
		if (!strcmp(l->cfg->syncs[i].name, r->sync))
			l->t[i] = retl_daemon_parse_ts(r->started);
	return 0;
}

/* when each sync of cfg last started, from the state store (-1: never) */
static double *last_starts(struct retl_config *cfg, struct retl_err *err)
{
	struct last_starts l = { cfg, retl_calloc(cfg->nsyncs + 1, sizeof(double)) };
	retl_state *st;

	for (size_t i = 0; i < cfg->nsyncs; i++)
		l.t[i] = -1;
	/* opened and closed here: no SQLite handle may live across fork() */
	if (retl_state_open_at(&st, cfg->state_path, cfg->state_local, err) < 0 ||
	    retl_state_runs(st, NULL, 0, on_last_run, &l, err) < 0) {
		retl_state_close(st);
		free(l.t);
		return NULL;
	}
	retl_state_close(st);
	return l.t;
}

static int64_t to_ms(double t)
{
	return t >= (double)(INT64_MAX / 2000) ? INT64_MAX : (int64_t)llround(t * 1000.0);
}

static double from_ms(int64_t ms)
{
	return ms == INT64_MAX ? HUGE_VAL : (double)ms / 1000.0;
}

/*
 * A (re)planned job whose sync the store holds a later due time for,
 * under the same schedule, takes that time (another worker claimed a run
 * that has not begun yet); 1 when it did.  An earlier stored time is left
 * to the first claim: planned from the last start, as with one daemon (a
 * `retl run` since counts as the last run).  A failure costs nothing: the
 * first claim finds the stored time anyway.
 */
static int plan_shared(retl_state *st, struct job *j)
{
	struct retl_err err;
	int64_t due;
	int rc;

	if (!st)
		return 0;
	retl_err_clear(&err);
	rc = retl_state_claim_plan(st, j->name, j->expr, to_ms(j->next), &due,
				   &err);
	if (rc < 0)
		retl_log(RETL_LOG_WARN, j->name, "%s", err.msg);
	if (rc <= 0 || from_ms(due) <= j->next)
		return 0;
	j->next = from_ms(due);        /* later than now: j->next was >= now */
	return 1;
}

static struct job *job_find(struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->njobs; i++)
		if (!strcmp(d->jobs[i].name, name))
			return &d->jobs[i];
	return NULL;
}

/* matches the jobs to cfg: new syncs and changed schedules are planned
 * from the state store's last runs, unchanged ones keep their next run */
static int apply_config(struct daemon *d, struct retl_config *cfg,
			struct retl_err *err)
{
	double *last = last_starts(cfg, err);
	double now = wall_now();
	retl_state *cst = NULL;
	struct retl_err oerr;
	int n = 0;

	if (!last)
		return -1;
	retl_err_clear(&oerr);
	if (retl_state_open_observer(&cst, cfg->state_path, &oerr) < 0)
		retl_log(RETL_LOG_WARN, NULL, "%s", oerr.msg);
	for (size_t i = 0; i < d->njobs; i++)
		d->jobs[i].present = 0;
	for (size_t i = 0; i < cfg->nsyncs; i++) {
		struct retl_sync_cfg *sc = &cfg->syncs[i];
		struct retl_schedule s;
		struct retl_err perr;

		if (!sc->schedule) {
			retl_log(RETL_LOG_INFO, sc->name, "no schedule: only "
				 "`retl run` runs it");
			continue;
		}
		retl_err_clear(&perr);
		if (retl_schedule_parse(&s, sc->schedule, &perr) < 0)
			continue; /* config.c refused it already */
		struct job *j = job_find(d, sc->name);
		if (!j) {
			d->jobs = retl_realloc(d->jobs, (d->njobs + 1) * sizeof(*j));
			j = &d->jobs[d->njobs++];
			memset(j, 0, sizeof(*j));
			j->name = retl_strdup(sc->name);
		}
		j->present = 1;
		n++;
		if (j->expr && !strcmp(j->expr, sc->schedule))
			continue;
		free(j->expr);
		j->expr = retl_strdup(sc->schedule);
		j->sched = s;
		j->next = first_run(&s, last[i], now);
		int shared = plan_shared(cst, j);
		if (j->next <= now)
			retl_log(RETL_LOG_INFO, sc->name, "schedule \"%s\": %s, "
				 "runs now", sc->schedule, last[i] < 0 ?
				 "never ran" : "a run was due since the last one");
		else
			retl_log(RETL_LOG_INFO, sc->name, "schedule \"%s\": next "
				 "run in %.0f s%s", sc->schedule, j->next - now,
				 shared ? " (its shared due time)" : "");
	}
	retl_state_close(cst);
	free(last);
	if (!n)
		retl_log(RETL_LOG_WARN, NULL, "no sync has a \"schedule\": the "
			 "daemon has nothing to run");
	return 0;
}

static void reload(struct daemon *d)
{
	struct retl_config *cfg;
	struct retl_err err;

	retl_err_clear(&err);
	if (retl_config_load(&cfg, d->o->config_dir, &err) < 0) {
		retl_log(RETL_LOG_ERROR, NULL, "reload failed, keeping the "
			 "previous config: %s", err.msg);
		return;
	}
	/* a sync whose file broke keeps running as it was; the others
	 * take their new definitions (config.h) */
	retl_config_keep_previous(cfg, *d->cfg);
	for (size_t i = 0; i < cfg->ninvalid; i++)
		retl_log(RETL_LOG_ERROR, cfg->invalid[i].name, "reload: %s: %s",
			 cfg->invalid[i].msg, cfg->invalid[i].kept ?
			 "keeping its previous definition and schedule" :
			 "skipped until the file is fixed");
	if (apply_config(d, cfg, &err) < 0) {
		retl_log(RETL_LOG_ERROR, NULL, "reload failed, keeping the "
			 "previous config: %s", err.msg);
		/* the jobs may be half updated: re-apply the old config
		 * (its error, if any, is a new one: start over) */
		retl_config_free(cfg);
		retl_err_clear(&err);
		apply_config(d, *d->cfg, &err);
		return;
	}
	retl_config_free(*d->cfg);
	*d->cfg = cfg;
	retl_log(RETL_LOG_INFO, NULL, "config reloaded");
}

/* ---- children ---- */

static void child_stop(int sig)
{
	retl_sync_request_stop();
	signal(sig, SIG_DFL);
}

static void child_main(struct retl_config *cfg, struct retl_sync_cfg *sc,
		       pid_t daemon_pid)
{
	struct sigaction sa;
	struct retl_err err;
	struct retl_sync_summary sum;
	retl_state *st;
	sigset_t none;

	/* the parent's pipe and sockets are not ours (a held HTTP socket
	 * would keep a scraper waiting for EOF) */
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = child_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	retl_sync_clear_stop();
	/* a daemon killed outright (kill -9, the OOM killer) stops its runs
	 * as SIGTERM does: in-flight batches are committed, the run is
	 * recorded "interrupted" and its lock goes, so the other workers
	 * take its syncs at their next due time, and no run goes on that no
	 * daemon watches or stops */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (getppid() != daemon_pid) {
		/* it died before prctl() took effect */
		retl_log(RETL_LOG_WARN, sc->name, "the daemon is gone: not run");
		_exit(EXIT_LOCKED);
	}

	retl_err_clear(&err);
	if (retl_state_open_at(&st, cfg->state_path, cfg->state_local, &err) < 0) {
		retl_log(RETL_LOG_ERROR, sc->name, "%s", err.msg);
		_exit(err.code ? err.code : RETL_EXIT_USAGE);
	}
	struct retl_sync_opts o = { .limit = -1 };
	retl_log(RETL_LOG_INFO, sc->name, "run started (pid %ld)", (long)getpid());
	int rc = retl_sync_run(cfg, sc, st, &o, &sum, &err);
	int code = sum.exit_code;
	if (rc < 0 && strstr(err.msg, "is already running")) {
		retl_log(RETL_LOG_WARN, sc->name, "%s: skipped", err.msg);
		code = EXIT_LOCKED;
	} else {
		const struct retl_run_counts *c = &sum.c;
		retl_log(rc < 0 && code > 1 ? RETL_LOG_ERROR : RETL_LOG_INFO,
			 sc->name, "run ended: %s (exit %d) in %.2f s: read %ld, "
			 "added %ld, changed %ld, retried %ld, removed %ld, "
			 "unchanged %ld, rejected %ld, failed %ld%s%s",
			 sum.status, code, sum.seconds, c->read, c->added, c->changed,
			 c->retried, c->removed, c->unchanged, c->rejected,
			 c->failed, sum.message[0] ? ": " : "", sum.message);
	}
	retl_sync_summary_free(&sum);
	/* the child that ran it sends the alerts: the daemon itself
	 * connects to nothing */
	if (code != EXIT_LOCKED)
		retl_notify_after_run(cfg, sc, st);
	retl_state_close(st);
	fflush(NULL);
	_exit(code);
}

static int start(struct daemon *d, struct job *j)
{
	struct retl_sync_cfg *sc = retl_config_sync(*d->cfg, j->name);
	sigset_t block, old;
	pid_t pid, self = getpid();

	if (!sc)
		return -1;
	/* the child installs its own handlers before it can see a signal */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		child_main(*d->cfg, sc, self);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		retl_log(RETL_LOG_ERROR, j->name, "cannot start a run: %s",
			 strerror(errno));
		return -1;
	}
	j->pid = pid;
	d->running++;
	return 0;
}

static void reap(struct daemon *d)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct job *j = NULL;
		for (size_t i = 0; i < d->njobs; i++)
			if (d->jobs[i].pid == pid)
				j = &d->jobs[i];
		if (!j)
			continue;
		j->pid = 0;
		d->running--;
		if (WIFSIGNALED(status))
			retl_log(RETL_LOG_WARN, j->name, "run (pid %ld) killed by "
				 "signal %d", (long)pid, WTERMSIG(status));
		else if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_LOCKED)
			j->skipped++;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != EXIT_LOCKED)
			j->ran++;
	}
}

static void signal_children(struct daemon *d, int sig)
{
	for (size_t i = 0; i < d->njobs; i++)
		if (d->jobs[i].pid > 0)
			kill(d->jobs[i].pid, sig);
}

static int by_next(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a;
	const struct job *y = *(struct job *const *)b;

	return x->next < y->next ? -1 : x->next > y->next;
}

/*
 * Claims j's due time for this worker: 1 won (j->next is the next due
 * time, stored), 0 lost (j->next is the one another worker stored), -1
 * the store failed (j->next a second from now: tried again then).  *st
 * is opened on first use; the caller closes it before any fork.
 */
static int claim(struct daemon *d, retl_state **st, struct job *j, double now)
{
	double next = next_after(&j->sched, now);
	struct retl_err err;
	int64_t stored = 0;
	int rc = -1;

	retl_err_clear(&err);
	if (*st || retl_state_open_observer(st, (*d->cfg)->state_path,
					    &err) == 0)
		rc = retl_state_claim(*st, j->name, j->expr, d->owner,
				      to_ms(now), to_ms(next), &stored, &err);
	if (rc < 0) {
		if (!d->claim_failing)
			retl_log(RETL_LOG_ERROR, j->name, "cannot claim its due "
				 "run: %s (tried again every second)", err.msg);
		d->claim_failing = 1;
		j->next = now + 1.0;
		return -1;
	}
	if (d->claim_failing)
		retl_log(RETL_LOG_INFO, NULL, "claims work again");
	d->claim_failing = 0;
	j->next = rc ? next : from_ms(stored);
	return rc;
}

static void schedule_tick(struct daemon *d)
{
	double now = wall_now();
	struct job **due = retl_calloc(d->njobs + 1, sizeof(*due));
	struct job **won = retl_calloc(d->njobs + 1, sizeof(*won));
	size_t n = 0, nwon = 0;
	retl_state *st = NULL;

	for (size_t i = 0; i < d->njobs; i++)
		if (d->jobs[i].present && d->jobs[i].next <= now)
			due[n++] = &d->jobs[i];
	/* earliest first: no sync starves while others are due too */
	qsort(due, n, sizeof(*due), by_next);
	for (size_t i = 0; i < n; i++) {
		struct job *j = due[i];
		if (j->pid) {
			/* this worker's last run still goes: it takes the due
			 * time and skips it, so one worker counts the skip */
			if (claim(d, &st, j, now) == 1) {
				j->skipped++;
				retl_log(RETL_LOG_WARN, j->name, "due, but its last "
					 "run (pid %ld) is still going: skipped",
					 (long)j->pid);
			}
			continue;
		}
		/* at the limit a worker claims nothing (a free one will); the
		 * sync stays due here until a slot frees */
		if (d->running + (int)nwon >= d->o->concurrency)
			continue;
		if (claim(d, &st, j, now) == 1)
			won[nwon++] = j;
	}
	retl_state_close(st);   /* no handle on the store across a fork */
	for (size_t i = 0; i < nwon; i++)
		if (start(d, won[i]) < 0) {
			/* logged; the next due time is claimed as usual */
		}
	free(due);
	free(won);
}

/* how long select() may sleep: until the next due run, at most 1 s */
static long sleep_ms(struct daemon *d)
{
	double now = wall_now(), until = now + 1.0;

	if (!d->stopping && d->running < d->o->concurrency)
		for (size_t i = 0; i < d->njobs; i++)
			if (d->jobs[i].present && d->jobs[i].next < until)
				until = d->jobs[i].next;
	if (until <= now)
		return 0;
	return (long)((until - now) * 1000.0) + 1;
}

static void update_view(struct daemon *d)
{
	size_t n = 0;

	d->vsyncs = retl_realloc(d->vsyncs, (d->njobs + 1) * sizeof(*d->vsyncs));
	for (size_t i = 0; i < d->njobs; i++) {
		struct job *j = &d->jobs[i];
		if (!j->present && !j->pid)
			continue;
		d->vsyncs[n].name = j->name;
		d->vsyncs[n].skipped = j->skipped;
		d->vsyncs[n].ran = j->ran;
		d->vsyncs[n].running = j->pid > 0;
		d->vsyncs[n].next = j->present && !d->stopping && j->next < HUGE_VAL ?
				    j->next : 0;
		n++;
	}
	d->view.syncs = d->vsyncs;
	d->view.nsyncs = n;
	d->view.state_path = (*d->cfg)->state_path;
	d->view.last_tick = mono_now();
}

static void drain_wake(void)
{
	char buf[64];
	while (read(wake[0], buf, sizeof(buf)) > 0)
		;
}

static int setup_signals(struct retl_err *err)
{
	struct sigaction sa;

	if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0)
		return retl_err_set(err, RETL_EXIT_USAGE, "pipe: %s",
				    strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void free_daemon(struct daemon *d)
{
	retl_metrics_stop(d->metrics);
	for (size_t i = 0; i < d->njobs; i++) {
		free(d->jobs[i].name);
		free(d->jobs[i].expr);
	}
	free(d->jobs);
	free(d->vsyncs);
	free(d->owner);
	if (wake[0] >= 0) {
		close(wake[0]);
		close(wake[1]);
		wake[0] = wake[1] = -1;
	}
}

/* "daemon started": with the port bound, which for --listen HOST:0 is
 * the one the system chose (what a scraper or a test must be told) */
static void log_started(struct daemon *d)
{
	const char *l = d->o->listen;
	retl_buf at = RETL_BUF_INIT;

	if (l) {
		retl_buf_adds(&at, ", /metrics and /healthz on http://");
		retl_buf_add(&at, l, (size_t)(strrchr(l, ':') - l));
		retl_buf_addf(&at, ":%d", retl_metrics_port(d->metrics));
	}
	retl_log(RETL_LOG_INFO, NULL, "daemon started (pid %ld): worker %s, "
		 "concurrency %d%s", (long)getpid(), d->owner, d->o->concurrency,
		 retl_buf_cstr(&at));
	retl_buf_free(&at);
}

/* "host:pid:random": names this worker in the claims it stores; the
 * random part tells a restarted worker from the one before with the
 * same pid (in a container, every daemon is pid 1) */
static char *worker_id(void)
{
	char host[256];
	uint32_t r;
	retl_buf b = RETL_BUF_INIT;

	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "unknown");
	host[sizeof(host) - 1] = '\0';
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (uint32_t)(mono_now() * 1e6) ^ (uint32_t)getpid();
	retl_buf_addf(&b, "%s:%ld:%08x", host, (long)getpid(), (unsigned)r);
	return retl_buf_detach(&b);
}

int retl_daemon_run(const struct retl_daemon_opts *o,
		    struct retl_config **cfg, struct retl_err *err)
{
	struct daemon d = { .o = o, .cfg = cfg, .owner = worker_id() };
	int terms_seen = 0;

	if (setup_signals(err) < 0 || apply_config(&d, *cfg, err) < 0)
		goto fail;
	update_view(&d);
	if (o->listen && retl_metrics_start(&d.metrics, o->listen, &d.view,
					    err) < 0)
		goto fail;
	log_started(&d);
	for (;;) {
		reap(&d);
		if (got_term > terms_seen) {
			terms_seen = got_term;
			if (!d.stopping) {
				d.stopping = 1;
				d.deadline = mono_now() + o->shutdown_timeout;
				retl_log(RETL_LOG_INFO, NULL, "stopping: %d run%s "
					 "in progress, waiting up to %d s",
					 d.running, d.running == 1 ? "" : "s",
					 o->shutdown_timeout);
				signal_children(&d, SIGTERM);
			} else {
				retl_log(RETL_LOG_WARN, NULL, "stopping now");
				d.deadline = 0;
			}
		}
		if (d.stopping && d.running && mono_now() >= d.deadline) {
			retl_log(RETL_LOG_WARN, NULL, "%d run%s still going after "
				 "the shutdown timeout: killed", d.running,
				 d.running == 1 ? "" : "s");
			signal_children(&d, SIGKILL);
			while (d.running > 0) {
				int st;
				pid_t pid = waitpid(-1, &st, 0);
				if (pid < 0 && errno != EINTR)
					break;
				for (size_t i = 0; pid > 0 && i < d.njobs; i++)
					if (d.jobs[i].pid == pid) {
						d.jobs[i].pid = 0;
						d.running--;
					}
			}
		}
		if (d.stopping && !d.running)
			break;
		if (got_hup && !d.stopping) {
			got_hup = 0;
			reload(&d);
		}
		if (!d.stopping)
			schedule_tick(&d);
		update_view(&d);

		fd_set rs, ws, es;
		int maxfd = wake[0];
		long ms = sleep_ms(&d);
		FD_ZERO(&rs);
		FD_ZERO(&ws);
		FD_ZERO(&es);
		FD_SET(wake[0], &rs);
		retl_metrics_fdset(d.metrics, &rs, &ws, &es, &maxfd, &ms);
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
		int n = select(maxfd + 1, &rs, &ws, &es, &tv);
		if (n < 0) {
			if (errno != EINTR) {
				retl_log(RETL_LOG_ERROR, NULL, "select: %s",
					 strerror(errno));
				sleep(1);
			}
			continue;
		}
		if (FD_ISSET(wake[0], &rs))
			drain_wake();
		retl_metrics_serve(d.metrics, &rs, &ws, &es);
	}
	retl_log(RETL_LOG_INFO, NULL, "daemon stopped");
	free_daemon(&d);
	return 0;
fail:
	free_daemon(&d);
	return -1;
}
