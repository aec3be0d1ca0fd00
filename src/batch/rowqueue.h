/*
 * rowqueue.h - the bounded hand-off of one batch's rows from its worker,
 * which reads, validates and converts them, to the writer, which inserts them
 * in the same moment (internal to src/batch/).
 *
 * Rows travel in chunks (RQ_CHUNK_ROWS rows, their values and bytes copied
 * into the chunk); at most RQ_CHUNKS chunks exist (or the number rowqueue_new was
 * given: a pass in slices has more, so the worker reads on while a slice is stored),
 * so memory stays bounded
 * whatever the file's size: a producer ahead of the writer waits.
 */
#ifndef SLUICE_BATCH_ROWQUEUE_H
#define SLUICE_BATCH_ROWQUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "schema/schema.h"
#include "store/store.h"

#define RQ_CHUNK_ROWS 1024
#define RQ_CHUNKS 4

/* One row as the writer gets it; everything points into its chunk. */
struct rq_row {
    int64_t rowno;   /* 1 = the first data row */
    const char *raw; /* the record's bytes, for the DLQ */
    size_t raw_len;
    struct row_errors errs;       /* n == 0: valid */
    const struct row_value *vals; /* valid rows: one per schema field */
    char *extra;                  /* valid rows: undeclared fields as JSON text, or NULL */
    char *errors_json, *codes;    /* invalid rows: the DLQ entry's errors and codes (owned) */
};

struct rq_chunk {
    struct rq_chunk *next;
    size_t n;
    struct rq_row rows[RQ_CHUNK_ROWS];
    struct row_value *vals; /* RQ_CHUNK_ROWS * nfields */
    char *arena;
    size_t used, cap;
};

struct rowqueue;

/* At most chunks chunks (<= 0: RQ_CHUNKS). */
struct rowqueue *rowqueue_new(size_t nfields, int chunks);
void rowqueue_free(struct rowqueue *q); /* accepts NULL */

/*
 * Producer: append one row. vals (valid rows; NULL otherwise) and the bytes they
 * point to are copied; errs is moved (left empty); extra, errors_json and codes are
 * taken. Returns 0, or -1 when the consumer gave up (stop producing) or memory ran out.
 */
int rowqueue_put(struct rowqueue *q, int64_t rowno, const char *raw, size_t raw_len,
                 const struct row_value *vals, struct row_errors *errs, char *extra,
                 char *errors_json, char *codes);
/* Producer: no more rows; failed != 0 means the rows are incomplete (the consumer must
 * not store them). */
void rowqueue_finish(struct rowqueue *q, int failed);

/* Consumer: the next chunk (blocks), or NULL at the end. */
struct rq_chunk *rowqueue_take(struct rowqueue *q);
/* Consumer: the next chunk if one is full, else NULL at once; *ended is then 1 when no
 * row is left to come (take() would return NULL). */
struct rq_chunk *rowqueue_try_take(struct rowqueue *q, int *ended);
/* Consumer: wait until want chunks are full, or the rows have ended, or abort() ran. */
void rowqueue_wait_ready(struct rowqueue *q, int want);
/* Consumer: done with c (its rows' errors and extras are freed). */
void rowqueue_give_back(struct rowqueue *q, struct rq_chunk *c);
/* Consumer: after take() returned NULL, whether the producer failed. */
int rowqueue_failed(struct rowqueue *q);
/* Consumer: stop; every later put() returns -1. */
void rowqueue_abort(struct rowqueue *q);

#endif
