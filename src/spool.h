/*
 * spool.h - the operations a run will send, in a file between its two
 * phases.
 *
 * Phase 1 (the warehouse open) reads and diffs the model and writes every
 * operation here; then the source transaction ends and the connection
 * closes; phase 2 (the push) reads them back.  `retl plan --out FILE`
 * writes the same file, and `retl apply FILE` sends exactly what it holds.
 * The spool grows with the changes, never with the model.
 *
 * JSON lines, so a person can read a plan (and grep it):
 *
 *   {"retl_plan":1,"sync":"people","state":"<16 hex>"}            the head
 *   {"op":"upsert","change":"added","key":"7","payload":{...}}     an operation
 *   ...
 *   {"end":2,"xxh3":"<16 hex>"}                                   the tail
 *
 * An operation may also carry "dest_id", "match" (strings), "pending" and
 * "orphan" (true) and "src" (16 hex: the source line's hash, stored when
 * the row is acknowledged).  "state" is the sync's state generation the
 * plan was computed against (state.h): `apply` refuses a plan whose state
 * moved since.  The tail's xxh3 is XXH3-64 of every byte before it, so a
 * file cut short (a plan killed half way) or edited is refused whole,
 * before anything is sent.  The file is still read as untrusted input:
 * every line is checked, and a bad one is named as `file:line: what`.
 */
#ifndef RETL_SPOOL_H
#define RETL_SPOOL_H

#include <stdint.h>
#include <stdio.h>

#include "destination.h"
#include "err.h"

/* what the change is, as the run counts it */
enum retl_spool_change {
	RETL_CH_ADDED, RETL_CH_CHANGED, RETL_CH_RETRIED, RETL_CH_REMOVED
};

/* "added", "changed", "retried", "removed": the names the run's outcomes
 * and plan files use */
extern const char *const retl_spool_change_name[];

/* one operation; the strings belong to the writer's caller, or to the
 * reader until the callback returns */
struct retl_spool_op {
	enum retl_op_kind kind;
	enum retl_spool_change change;
	const char *key;          /* key text ("" for an orphan) */
	size_t keylen;
	const char *key_json;     /* the key as JSON ("null" for an orphan) */
	size_t kjlen;
	const char *payload;      /* canonical JSON object, or NULL */
	size_t plen;
	const char *dest_id;      /* NULL: none */
	const char *match;        /* NULL: none */
	size_t mlen;
	int pending, orphan;
	uint64_t src;
};

/* the head of a spool */
struct retl_spool_head {
	char *sync;
	uint64_t state;
	long ops;                 /* from the tail (retl_spool_verify) */
};

typedef struct retl_spool retl_spool;

/* starts a spool on f (the caller's, open for writing): writes the head */
retl_spool *retl_spool_create(FILE *f, const char *sync, uint64_t state);
/* a run's own spool, read by retl_spool_replay only: binary (spool.c),
 * with no head (no state generation: nothing applies it later) */
retl_spool *retl_spool_create_binary(FILE *f);
/* appends one operation; -1 on a write error (errno says which) */
int retl_spool_put(retl_spool *s, const struct retl_spool_op *op);
/* writes the tail and flushes; -1 on a write error (errno) */
int retl_spool_finish(retl_spool *s);
long retl_spool_count(const retl_spool *s);
void retl_spool_free(retl_spool *s);

/*
 * Reads the whole of f from its start: the head, every operation, the
 * tail, and checks the count and the checksum.  Fills h (free with
 * retl_spool_head_free).  path names the file in messages.
 */
int retl_spool_verify(FILE *f, const char *path, struct retl_spool_head *h,
		      struct retl_err *err);
void retl_spool_head_free(struct retl_spool_head *h);

/*
 * Calls fn for every operation of f, from its start, in order.  fn returns
 * 0 to go on; anything else stops the replay and is returned.  -1 with err
 * for a line that is not an operation.
 */
typedef int (*retl_spool_fn)(void *ud, const struct retl_spool_op *op);
int retl_spool_replay(FILE *f, const char *path, retl_spool_fn fn, void *ud,
		      struct retl_err *err);

#endif
