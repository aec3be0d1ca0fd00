/*
 * rollup_acc.h - rollup deltas summed in memory per (dataset, minute) until
 * the transaction commits (internal to src/store/). Both backends write one
 * upsert per bucket per group commit instead of one per request, and keep a
 * job's deltas apart until its savepoint is released, so that a job undone
 * takes its counts with it.
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
    int64_t count, batches;
    char *sample; /* owned */
};
struct roll_entry {
    char dataset[72];
    int64_t minute, at_ms; /* at_ms: the latest time added */
    int64_t received, accepted, rejected, duplicate, batches, batches_failed;
    struct roll_code *codes; /* owned */
    size_t ncodes;
};
struct roll_acc {
    struct roll_entry *v;
    size_t n, cap;
};

/* Add d to its bucket (each code counts d->batches batches). 0, or -1 when out of memory. */
int roll_acc_add(struct roll_acc *a, const struct rollup_delta *d);
/* Add every bucket of from to into, and empty from (a job's savepoint is released). On
 * running out of memory those counts are lost, never the rows. */
void roll_acc_merge(struct roll_acc *into, struct roll_acc *from);
void roll_acc_clear(struct roll_acc *a);
/* Bucket e as a delta to write; its codes go into codes[ROLL_MAX_CODES] (borrowed from e). */
void roll_entry_delta(const struct roll_entry *e, struct rollup_code *codes,
                      struct rollup_delta *d);

#endif
