/*
 * notify.c - alerts after a run, see notify.h and README "Alerts".
 *
 * After each run: the sync's latest finished run is read back from the
 * state store (so the same code serves `retl run`, `retl apply` and the
 * daemon's runs, and a run that could not even start re-reads the last one
 * and changes nothing), classified, and each condition it says something
 * about is updated.  A condition that changes stores the alert that says
 * so; then each channel gets what it has not been told yet.  Re-reading
 * the same run, or a second failing run, changes nothing: one alert per
 * sync and condition until it changes.
 *
 * Undelivered alerts wait in the store (the channel's row still differs)
 * and go after the sync's next run, by whichever process runs it.  An
 * alert that would announce a state already overtaken is not sent: a
 * failure that cleared before its alert could be delivered sends nothing
 * (neither the failure nor its recovery); `retl history` has it.
 */
#include "notify.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "log.h"
#include "redact.h"
#include "state_alerts.h"
#include "sync.h"

/* ---- the outcome of a run, as alerts see it ---- */

/*
 * From the run's status (state.h RETL_RUN_*): interrupted, abandoned and
 * running say nothing about the sync's health; a failed run is a safety
 * stop when its exit code says so (a refused run is recorded "failed",
 * exit 5); ok and rows rejected went through.
 */
enum retl_run_class retl_notify_classify(const char *status, int exit_code)
{
	if (!status || !strcmp(status, RETL_RUN_RUNNING) ||
	    !strcmp(status, RETL_RUN_INTERRUPTED) ||
	    !strcmp(status, RETL_RUN_ABANDONED))
		return RETL_CLASS_NOTHING;
	if (!strcmp(status, RETL_RUN_OK) || !strcmp(status, RETL_RUN_REJECTED))
		return RETL_CLASS_COMPLETED;
	if (exit_code == RETL_EXIT_SAFETY)
		return RETL_CLASS_SAFETY;
	return RETL_CLASS_FAILED;
}

/* ---- the alert's words ---- */

static long sent_rows(const struct retl_run_counts *c)
{
	return c->added + c->changed + c->retried + c->removed;
}

/* the run's message, redacted and cut short (a whole error, not a dump) */
static void add_message(retl_buf *b, const char *msg)
{
	retl_buf m = RETL_BUF_INIT;
	if (!msg || !*msg)
		return;
	retl_redact_into(&m, msg, strlen(msg));
	if (m.len > 300) {
		size_t n = 300;
		while (n && ((unsigned char)m.ptr[n] & 0xC0) == 0x80)
			n--;        /* never half a UTF-8 character */
		retl_buf_truncate(&m, n);
		retl_buf_adds(&m, "...");
	}
	retl_buf_adds(b, m.ptr);
	retl_buf_free(&m);
}

static void add_counts(retl_buf *t, const struct retl_run_counts *c)
{
	retl_buf_addf(t, "read %ld, sent %ld (added %ld, changed %ld, retried "
		      "%ld, removed %ld), rejected %ld, failed %ld", c->read,
		      sent_rows(c), c->added, c->changed, c->retried, c->removed,
		      c->rejected, c->failed);
}

static void firing_text(retl_buf *t, const char *sync, enum retl_alert_cond cond,
			const struct retl_run_rec *r, long failing, long n)
{
	switch (cond) {
	case RETL_ALERT_RUN_FAILED:
		retl_buf_addf(t, "retl: sync %s failed: run %lld ended with "
			      "exit %d", sync, (long long)r->id, r->exit_code);
		if (r->message && *r->message) {
			retl_buf_adds(t, ": ");
			add_message(t, r->message);
		}
		retl_buf_adds(t, ". ");
		add_counts(t, &r->c);
		retl_buf_addf(t, ". Next: `retl history %s` and `retl failures "
			      "%s`; once fixed, `retl run %s`.", sync, sync, sync);
		break;
	case RETL_ALERT_SAFETY_STOP:
		retl_buf_addf(t, "retl: sync %s stopped by its safety limit: run "
			      "%lld was refused", sync, (long long)r->id);
		if (r->message && *r->message) {
			retl_buf_adds(t, ": ");
			add_message(t, r->message);
		}
		retl_buf_addf(t, ". Nothing was removed. Next: `retl plan %s` "
			      "shows what would change; if the removals are "
			      "intended, `retl run %s --allow-removals N`.",
			      sync, sync);
		break;
	default:
		retl_buf_addf(t, "retl: sync %s has %ld row%s failing in more "
			      "than %ld run%s (as of run %lld: ", sync, failing,
			      failing == 1 ? "" : "s", n, n == 1 ? "" : "s",
			      (long long)r->id);
		add_counts(t, &r->c);
		retl_buf_addf(t, "). Next: `retl failures %s` lists them with "
			      "the destination's reasons.", sync);
	}
}

static void recovered_text(retl_buf *t, const char *sync,
			   enum retl_alert_cond cond,
			   const struct retl_run_rec *r)
{
	static const char *const was[RETL_ALERT_NCOND] = {
		"failed runs", "the safety stop", "rows failing run after run"
	};
	retl_buf_addf(t, "retl: sync %s recovered from %s: run %lld %s (exit "
		      "%d): ", sync, was[cond], (long long)r->id, cond ==
		      RETL_ALERT_ROWS_FAILING ? "left none failing that long" :
		      "went through", r->exit_code);
	add_counts(t, &r->c);
	retl_buf_adds(t, ".");
	if (r->c.rejected || r->c.failed)
		retl_buf_addf(t, " Rows not synced: `retl failures %s`.", sync);
}

char *retl_notify_event(const char *sync, enum retl_alert_cond cond,
			int active, const struct retl_run_rec *r,
			long failing, long n)
{
	retl_buf t = RETL_BUF_INIT, id = RETL_BUF_INIT, msg = RETL_BUF_INIT;
	const struct retl_run_counts *c = &r->c;

	if (active)
		firing_text(&t, sync, cond, r, failing, n);
	else
		recovered_text(&t, sync, cond, r);
	/* the same alert delivered twice (a lost answer) has the same id */
	retl_buf_addf(&id, "%s/%s/%lld/%s", sync, retl_alert_cond_name(cond),
		      (long long)r->id, active ? "firing" : "recovered");
	add_message(&msg, r->message);
	json_t *ev = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:s?, s:s?, s:i, "
			       "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, "
			       "s:s, s:s}",
			       "retl_alert", 1, "id", id.ptr, "sync", sync,
			       "condition", retl_alert_cond_name(cond),
			       "state", active ? "firing" : "recovered",
			       "run_id", (json_int_t)r->id,
			       "run_status", r->status, "ended_at", r->ended,
			       "exit_code", r->exit_code, "counts",
			       "read", (json_int_t)c->read,
			       "added", (json_int_t)c->added,
			       "changed", (json_int_t)c->changed,
			       "retried", (json_int_t)c->retried,
			       "removed", (json_int_t)c->removed,
			       "unchanged", (json_int_t)c->unchanged,
			       "rejected", (json_int_t)c->rejected,
			       "failed", (json_int_t)c->failed,
			       "message", retl_buf_cstr(&msg), "text", t.ptr);
	if (cond == RETL_ALERT_ROWS_FAILING) {
		json_object_set_new(ev, "rows_failing", json_integer(failing));
		json_object_set_new(ev, "rows_failing_runs", json_integer(n));
	}
	char *s = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	retl_buf_free(&t);
	retl_buf_free(&id);
	retl_buf_free(&msg);
	return s;
}

char *retl_notify_slack_body(const char *event)
{
	json_t *ev = json_loads(event, 0, NULL);
	const char *text = json_string_value(json_object_get(ev, "text"));
	retl_buf t = RETL_BUF_INIT;

	/* Slack reads &, < and > as its markup (links, mentions): escaped,
	 * a message quoting "<table>" stays text */
	for (const char *p = text ? text : ""; *p; p++) {
		if (*p == '&')
			retl_buf_adds(&t, "&amp;");
		else if (*p == '<')
			retl_buf_adds(&t, "&lt;");
		else if (*p == '>')
			retl_buf_adds(&t, "&gt;");
		else
			retl_buf_addc(&t, *p);
	}
	json_t *body = json_pack("{s:s}", "text", retl_buf_cstr(&t));
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	json_decref(ev);
	retl_buf_free(&t);
	return s;
}

/* ---- delivery ---- */

/* POSTs body to the channel; 0 on a 2xx, else -1 with why */
static int deliver(const struct retl_notify_channel *ch, const char *body,
		   retl_buf *why)
{
	struct retl_http_opts o = {
		.max_inflight = 1, .timeout_ms = ch->timeout_ms,
		.connect_timeout_ms = ch->timeout_ms < 5000 ? ch->timeout_ms : 5000,
		.max_attempts = 3, .max_429 = 2, .backoff_base = 0.5,
		.backoff_cap = 2, .max_response = 65536, .budget = -1,
		.headers = (const char *const *)ch->headers,
	};
	struct retl_err err;
	retl_http *h;
	int rc = -1;

	retl_err_clear(&err);
	if (retl_http_new(&h, &o, &err) < 0) {
		retl_buf_adds(why, err.msg);
		return -1;
	}
	struct retl_http_req *r = retl_http_req_new();
	r->method = "POST";
	r->url = retl_strdup(ch->url);
	retl_buf_adds(&r->body, body);
	r->idempotent = 1;      /* an alert twice beats none; it has an id */
	retl_http_submit(h, r);
	struct retl_http_req *done = retl_http_next(h, 1);
	if (done && done->status >= 200 && done->status < 300) {
		rc = 0;
	} else {
		char *reason = done ? retl_http_reason(done) : NULL;
		retl_buf_adds(why, reason ? reason : "no answer");
		free(reason);
	}
	retl_http_req_free(done);
	retl_http_free(h);
	return rc;
}

/* ---- the conditions of one sync ---- */

struct cond_state {
	int active;
	int64_t run_id;
	char *event;            /* owned */
};

struct eval {
	const struct retl_sync_cfg *sc;
	retl_state *st;
	struct retl_notify_cfg *n;
	struct cond_state cur[RETL_ALERT_NCOND];
	int *told;              /* [channel * NCOND + cond] */
	/* the latest finished run (copied out of the store's rows) */
	int have_run, busy;
	struct retl_run_rec run;
	char *status, *message, *ended;
	long failing;
};

static int cond_index(const char *name)
{
	for (int c = 0; c < RETL_ALERT_NCOND; c++)
		if (!strcmp(name, retl_alert_cond_name(c)))
			return c;
	return -1;
}

static int on_alert_row(void *ud, const struct retl_alert_rec *r)
{
	struct eval *e = ud;
	int c = cond_index(r->cond);

	if (c < 0)
		return 0;
	if (!*r->channel) {
		e->cur[c].active = r->active;
		e->cur[c].run_id = r->run_id;
		free(e->cur[c].event);
		e->cur[c].event = r->event ? retl_strdup(r->event) : NULL;
		return 0;
	}
	for (size_t i = 0; i < e->n->nch; i++)
		if (!strcmp(e->n->ch[i].name, r->channel))
			e->told[i * RETL_ALERT_NCOND + c] = r->active;
	return 0;
}

/* the newest run of the sync, when it has ended */
static int on_run(void *ud, const struct retl_run_rec *r)
{
	struct eval *e = ud;

	if (!r->ended) {
		/* another process's run holds the sync: it notifies */
		e->busy = 1;
		return 1;
	}
	e->run = *r;
	e->status = retl_strdup(r->status ? r->status : "");
	e->message = r->message ? retl_strdup(r->message) : NULL;
	e->ended = retl_strdup(r->ended);
	e->run.status = e->status;
	e->run.message = e->message;
	e->run.ended = e->ended;
	e->run.sync = e->sc->name;
	e->run.started = NULL;
	e->have_run = 1;
	return 1;
}

static int on_failure(void *ud, const struct retl_failure_rec *r)
{
	struct eval *e = ud;
	if (r->attempts > e->n->rows_failing_runs)
		e->failing++;
	return 0;
}

/* what the latest run says of each condition: -1 nothing, 0 clear, 1 on */
static void verdicts(struct eval *e, int want[RETL_ALERT_NCOND])
{
	enum retl_run_class k = retl_notify_classify(e->run.status,
						     e->run.exit_code);
	want[RETL_ALERT_RUN_FAILED] = k == RETL_CLASS_FAILED ? 1 :
				      k == RETL_CLASS_COMPLETED ? 0 : -1;
	want[RETL_ALERT_SAFETY_STOP] = k == RETL_CLASS_SAFETY ? 1 :
				       k == RETL_CLASS_COMPLETED ? 0 : -1;
	/* rows' attempts move only when a run sends them */
	want[RETL_ALERT_ROWS_FAILING] = k == RETL_CLASS_NOTHING ? -1 :
					e->failing > 0;
}

static int update_conditions(struct eval *e, struct retl_err *err)
{
	int want[RETL_ALERT_NCOND];

	verdicts(e, want);
	for (int c = 0; c < RETL_ALERT_NCOND; c++) {
		struct cond_state *cs = &e->cur[c];
		if (want[c] < 0 || want[c] == cs->active)
			continue;
		char *ev = retl_notify_event(e->sc->name, c, want[c], &e->run,
					     e->failing, e->n->rows_failing_runs);
		struct retl_alert_rec r = {
			.cond = retl_alert_cond_name(c), .channel = "",
			.active = want[c], .run_id = e->run.id, .event = ev,
		};
		if (retl_state_alert_set(e->st, e->sc->name, &r, err) < 0) {
			free(ev);
			return -1;
		}
		retl_log(RETL_LOG_INFO, e->sc->name, "alert condition %s %s at "
			 "run %lld", r.cond, want[c] ? "began" : "cleared",
			 (long long)e->run.id);
		cs->active = want[c];
		cs->run_id = e->run.id;
		free(cs->event);
		cs->event = ev;
	}
	return 0;
}

static void tell(struct eval *e, size_t i, enum retl_alert_cond c)
{
	struct retl_notify_channel *ch = &e->n->ch[i];
	struct cond_state *cs = &e->cur[c];
	struct retl_alert_rec r = {
		.cond = retl_alert_cond_name(c), .channel = ch->name,
		.active = cs->active, .run_id = cs->run_id,
	};
	struct retl_err err;
	retl_buf why = RETL_BUF_INIT;
	int send = cs->event && (cs->active || ch->recovery);

	retl_err_clear(&err);
	if (send && ch->error) {
		retl_log(RETL_LOG_WARN, e->sc->name, "notify %s: %s alert not "
			 "sent: %s (tried again after the next run)", ch->name,
			 r.cond, ch->error);
		return;
	}
	if (send && retl_sync_stop_requested()) {
		retl_log(RETL_LOG_INFO, e->sc->name, "notify %s: stopping, the "
			 "%s alert goes after the next run", ch->name, r.cond);
		return;
	}
	if (send) {
		char *body = ch->slack ? retl_notify_slack_body(cs->event) :
			     retl_strdup(cs->event);
		int rc = deliver(ch, body, &why);
		free(body);
		if (rc < 0) {
			retl_log(RETL_LOG_WARN, e->sc->name, "notify %s: %s alert "
				 "not delivered: %s (tried again after the next "
				 "run)", ch->name, r.cond, why.ptr);
			retl_buf_free(&why);
			return;
		}
		retl_log(RETL_LOG_INFO, e->sc->name, "notify %s: %s alert "
			 "delivered (%s, run %lld)", ch->name, r.cond,
			 cs->active ? "firing" : "recovered",
			 (long long)cs->run_id);
	}
	if (retl_state_alert_set(e->st, e->sc->name, &r, &err) < 0)
		retl_log(RETL_LOG_WARN, e->sc->name, "notify %s: %s", ch->name,
			 err.msg);
	else
		e->told[i * RETL_ALERT_NCOND + c] = cs->active;
}

static void deliver_pending(struct eval *e)
{
	for (size_t i = 0; i < e->n->nch; i++)
		for (int c = 0; c < RETL_ALERT_NCOND; c++)
			if ((e->n->ch[i].on & (1u << c)) &&
			    e->told[i * RETL_ALERT_NCOND + c] != e->cur[c].active)
				tell(e, i, c);
}

void retl_notify_after_run(struct retl_config *cfg,
			   const struct retl_sync_cfg *sc, retl_state *st)
{
	struct eval e = { .sc = sc, .st = st };
	struct retl_err err;

	if (!cfg->notify || !st)
		return;
	e.n = cfg->notify;
	e.told = retl_calloc(e.n->nch * RETL_ALERT_NCOND + 1, sizeof(int));
	retl_err_clear(&err);
	if (retl_state_alerts(st, sc->name, on_alert_row, &e, &err) < 0 ||
	    retl_state_runs(st, sc->name, 1, on_run, &e, &err) < 0 ||
	    (e.have_run && retl_state_failures(st, sc->name, on_failure, &e,
					       &err) < 0) ||
	    (e.have_run && update_conditions(&e, &err) < 0)) {
		retl_log(RETL_LOG_WARN, sc->name, "alerts: %s", err.msg);
		goto out;
	}
	if (e.busy)
		goto out;
	retl_notify_resolve(e.n);
	deliver_pending(&e);
out:
	for (int c = 0; c < RETL_ALERT_NCOND; c++)
		free(e.cur[c].event);
	free(e.told);
	free(e.status);
	free(e.message);
	free(e.ended);
}
