/*
 * sync_int.h - what the sync engine's files share: sync.c (the run, phase
 * by phase), sync_diff.c (rows diffed against the cache) and sync_send.c
 * (batches to the destination and their commit); nothing else includes it.
 */
#ifndef RETL_SYNC_INT_H
#define RETL_SYNC_INT_H

#include <stdint.h>

#include "buf.h"
#include "cache.h"
#include "destination.h"
#include "hash.h"
#include "match.h"
#include "source.h"
#include "spool.h"
#include "state.h"
#include "sync.h"

enum change { CH_ADD, CH_CHANGE, CH_RETRY, CH_REMOVE };


/* one queued operation; strings live in its batch's arena */
struct pending {
	enum retl_op_kind kind;
	enum change change;
	size_t key, key_json, payload, payload_len, dest_id, match; /* arena offsets */
	int has_payload, has_dest_id, has_match;
	int was_pending;          /* a create intent from an earlier run */
	int orphan;               /* removes an orphan record (key: its match) */
	retl_h128 kh, pay;
	uint64_t src, mh;
};

/* what retl_sync_enqueue queues (copied into the batch's arena) */
struct queued {
	enum retl_op_kind kind;
	enum change change;
	const char *key, *key_json, *payload, *dest_id, *match;
	size_t keylen, kjlen, plen, mlen;
	int was_pending, orphan;
	retl_h128 kh, pay;
	uint64_t src, mh;
};

/* a row whose payload is unchanged under a new source line */
struct touch {
	size_t key;
	retl_h128 kh, pay;
	uint64_t src;
};

/* a batch being filled, in flight, or free */
struct batch {
	struct pending *q;
	size_t nq;
	retl_buf arena;
	struct retl_op *ops;
	struct retl_result *res;
	struct retl_batch io;
	int busy;                 /* submitted, not yet back */
};

struct run {
	struct retl_config *cfg;
	struct retl_sync_cfg *sc;
	retl_state *st;
	const struct retl_sync_opts *o;
	struct retl_sync_summary *sum;
	struct retl_err *err;

	double t0;                /* monotonic start, for seconds and logs */
	const char *status;       /* the run's status in the state store */
	int locked, run_open;     /* the sync's lock held; its run row open */
	retl_source *src;         /* open until the model is read */

	const struct retl_destination *dest;
	void *dctx;
	retl_cache *cache;
	int64_t run_id;
	uint64_t seed;
	size_t key_idx[16];
	size_t cached_rows;
	char day[16];             /* UTC day the API usage counts against */
	long calls_counted;       /* API calls already added to the usage */

	struct batch *b;          /* max_inflight + 1 of them (1: synchronous) */
	size_t nb;
	struct batch *cur;        /* the one being filled */
	size_t max_batch;
	struct touch *t;
	size_t nt;
	retl_buf tarena;
	long nops;                /* spooled so far, for --limit */
	/* phase 1 (spooling) writes the operations here (spool.h; NULL for a
	 * plan that only counts); in phase 2 they go to batches */
	int spooling;
	retl_spool *spool;
	FILE *spool_f;            /* the spool's file (plan: plan_out) */
	size_t plan_fill;         /* plan: ops in the batch a run would fill */
	struct retl_dest_env env; /* what the destination was opened with */
	int stop;                 /* a fatal error happened: err says what */
	int resuming;             /* in the destination's open: reports are of
				   * an earlier run's deferred work */
	char *note_name, *note_value; /* env->note_stage's, for the next commit */

	/* record identity: the sync's match fields, and the match values
	 * of this run's rows (NULL without match fields) */
	const char **match_targets;
	size_t nmatch;
	retl_match_set *seen_match;
	int orphans;              /* mirror with removals: records keys leave
				   * become orphans, removed by the run */

	/* per-row scratch, reused */
	retl_buf key, key_json, payload, reason, match;

	struct retl_whdiff *wh;   /* "diff": "warehouse" (sync_whdiff.c) */
};

/* sync_diff.c */
/* the stream's callback returns it when a stop was requested */
#define RETL_SYNC_INTERRUPTED 2
int retl_sync_on_row(void *ud, const struct retl_row *row, const char *raw,
		     size_t rawlen);
/* what retl_sync_on_gone (a retl_state_scan callback) needs */
struct retl_sync_gone {
	struct run *r;
	int send_removes;
	long forgotten;
};
int retl_sync_on_gone(void *ud, const struct retl_state_row *row);
/* mirror runs: orphan records not bound again are removed */
int retl_sync_orphans(struct run *r);

/* sync_send.c */
/* phase 2: every operation of the spool f into batches, in order; 0, -1,
 * or RETL_SYNC_INTERRUPTED when a stop was requested */
int retl_sync_replay(struct run *r, FILE *f, const char *path);
void retl_sync_batches_init(struct run *r);
void retl_sync_batches_free(struct run *r);
int retl_sync_enqueue(struct run *r, const struct queued *q);
/* sends the batch being filled (returns at once for an async destination) */
int retl_sync_flush(struct run *r);
/* waits for every batch in flight and commits what came back */
int retl_sync_drain(struct run *r);
int retl_sync_flush_touches(struct run *r);
int retl_sync_outcome(struct run *r, const char *key, const char *what,
		      const char *reason);
void retl_sync_progress(struct run *r);
/* env->report, note_get, note_set for destinations (RETL_RES_DEFER) */
void retl_sync_env_init(struct run *r);
/* copies s (NUL-terminated) into an arena; returns its offset */
size_t retl_sync_arena_add(retl_buf *a, const char *s, size_t len);

/* sync_whdiff.c: "diff": "warehouse".  open replaces load_cache (the
 * sync's table made when missing; only failing keys loaded), stream the
 * model's stream (only new, changed and removed keys come back), gone the
 * scan of the cache for removal candidates; mark before the push, end
 * after it (the write-back; a failure is only logged) */
int retl_whdiff_open(struct run *r);
int retl_whdiff_stream(struct run *r);
int retl_whdiff_gone(struct run *r, struct retl_sync_gone *g);
int retl_whdiff_mark(struct run *r);
void retl_whdiff_end(struct run *r, int ended);
void retl_whdiff_free(struct run *r);

#endif
