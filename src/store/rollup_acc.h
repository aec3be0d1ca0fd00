/*
 * rollup_acc.h - rollup deltas summed in memory per (dataset, minute) until
 * the transaction commits (internal to src/store/). Both backends write one
 * upsert per bucket per group commit instead of one per request, and keep a
 * job's deltas apart until its savepoint is released, so that a job undone
 * takes its counts with it. Each delta is also kept as a row of the rollup
 * ledger that the backend writes with the buckets (ledger rows first, so that a
 * rebuild, which locks the ledger, and a commit always take their locks in the
 * same order): a batch's delta as its own row (a reset takes it out again by its
 * id); the pushes of one dataset and minute summed into one row per group commit
 * (per kind, see struct roll_ledger), so that a rebuild sums the same counts,
 * times and codes from far fewer rows.
 */
#ifndef SLUICE_STORE_ROLLUP_ACC_H
#define SLUICE_STORE_ROLLUP_ACC_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define ROLL_MINUTE_MS 60000LL
#define ROLL_MAX_CODES 64 /* error codes kept per bucket (there are fewer codes) */

struct roll_code {
    char code[48];
    int64_t count, batches, at_ms; /* at_ms: the latest time it was added */
    char *sample;                  /* owned */
};
struct roll_entry {
    char dataset[72];
    int64_t minute, at_ms; /* at_ms: the latest time added */
    int64_t error_ms;      /* the latest time with rejected rows, 0: none */
    int64_t received, accepted, rejected, duplicate, batches, batches_failed;
    struct roll_code *codes; /* owned */
    size_t ncodes;
};
/* A ledger row: one batch's delta, or the pushes (batch_id "") of one dataset and minute
 * and kind summed. The kinds keep apart what a rebuild reads from a row's time: 2 pushes
 * with rejected rows (the last error), 1 others with rows (the last received), 0 the rest;
 * at_ms is the latest of the row's deltas, each code's at_ms the latest delta it was in,
 * its sample the greatest (byte order) of theirs, as a rebuild's max() takes it.
 * written: 0 not yet (only then are pushes added to it), 1 written inside the current job
 * (a rollback of the job takes it out of the table again), 2 written. */
struct roll_ledger {
    char dataset[72], batch_id[72]; /* batch_id "" for events */
    int64_t at_ms, received, accepted, rejected, duplicate, batches, batches_failed;
    struct roll_code *codes; /* owned */
    size_t ncodes;
    int kind, written;
};
struct roll_acc {
    struct roll_entry *v;
    size_t n, cap;
    struct roll_ledger *led;
    size_t nled, capled;
};

/* Add d to its bucket (each code counts d->batches batches). 0, or -1 when out of memory. */
int roll_acc_add(struct roll_acc *a, const struct rollup_delta *d);
/* Add every bucket of from to into, and empty from (a job's savepoint is released). On
 * running out of memory those counts are lost, never the rows. */
void roll_acc_merge(struct roll_acc *into, struct roll_acc *from);
void roll_acc_clear(struct roll_acc *a);
/* d's counters (rows and batches, not its codes) with their signs turned: what takes a batch's
 * counts out again. */
struct rollup_delta rollup_delta_negated(const struct rollup_delta *d);
/* Bucket e as a delta to write; its codes go into codes[ROLL_MAX_CODES] (borrowed from e). */
void roll_entry_delta(const struct roll_entry *e, struct rollup_code *codes,
                      struct rollup_delta *d);
/* The ledger rows written inside the job that just ended: kept (1 -> 2) or, the job rolled
 * back, unwritten again (1 -> 0, written at the next flush). */
void roll_acc_settle(struct roll_acc *a, int kept);

/* The codes of ledger row l as its codes column keeps them, JSON [{"code", "n", "b",
 * "sample", "at"}] ("at" only when it is not the row's at_ms); NULL when it has none (*oom
 * set when out of memory). The caller frees. */
char *roll_ledger_codes_json(const struct roll_ledger *l, int *oom);
/* A ledger row's codes back into codes[max] (the names and samples point into *hold, which
 * the caller releases with json_decref). The number of codes. */
size_t roll_codes_parse(const char *text, struct rollup_code *codes, size_t max, json_t **hold);

/* Set `last` on each dataset's last chunk of v (ordered by dataset, then hour). */
void roll_chunks_mark_last(struct rollup_chunk *v, size_t n);

#endif
