/*
 * rollup_acc.h - rollup deltas summed in memory per (dataset, minute) until
 * the transaction commits (internal to src/store/). Both backends write one
 * upsert per bucket per group commit instead of one per request, and keep a
 * job's deltas apart until its savepoint is released, so that a job undone
 * takes its counts with it. Each delta is also kept whole, as the row of the
 * rollup ledger that the backend writes with the buckets (ledger rows first, so
 * that a rebuild, which locks the ledger, and a commit always take their locks in
 * the same order).
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
/* One delta as a ledger row. written: 0 not yet, 1 written inside the current job (a
 * rollback of the job takes it out of the table again), 2 written. */
struct roll_ledger {
    char dataset[72], batch_id[72]; /* batch_id "" for events */
    int64_t at_ms, received, accepted, rejected, duplicate, batches, batches_failed;
    char *codes; /* JSON [{"code", "n", "b", "sample"}] (owned) */
    int written;
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

/* The codes of a delta as the ledger keeps them, each count times sign (caller frees; NULL
 * when out of memory). */
char *roll_codes_json(const struct rollup_code *codes, size_t n, int64_t batches, int sign);
/* A ledger row's codes back into codes[max] (the names and samples point into *hold, which
 * the caller releases with json_decref). The number of codes. */
size_t roll_codes_parse(const char *text, struct rollup_code *codes, size_t max, json_t **hold);

/* Set `last` on each dataset's last chunk of v (ordered by dataset, then hour). */
void roll_chunks_mark_last(struct rollup_chunk *v, size_t n);

#endif
