/*
 * pass_internal.h - a pass over a batch's file, as process.c (one transaction) and
 * slices.c (a pass in slices) share it (internal to src/batch/).
 */
#ifndef SLUICE_BATCH_PASS_INTERNAL_H
#define SLUICE_BATCH_PASS_INTERNAL_H

#include <stdint.h>

#include "batch/rowqueue.h"
#include "config/config.h"
#include "store/store.h"
#include "util/errors.h"

/* Header column -> schema field. */
struct colmap {
    size_t ncols;
    char **names; /* owned */
    int *field;   /* schema index or -1 */
};

enum pass_mode { PASS_HEADER, PASS_STREAM, PASS_FAIL };

struct pass {
    const struct dataset_config *ds;
    struct batch *b;
    const struct sluice_config *cfg;
    struct colmap map;
    enum pass_mode mode;
    struct store *st;       /* writer jobs: the writer's store */
    struct store *files;    /* the batch's file is read through this one (borrowed) */
    struct rowqueue *rq;    /* PASS_STREAM: rows to the writer job */
    struct row_value *vals; /* PASS_STREAM: one row's values (schema order) */
    char **unknown;         /* the header's undeclared columns (names borrowed from map) */
    size_t nunknown;
    int over_threshold; /* the stream job found the error rate over the threshold */
    int64_t total, invalid, inserted, duplicate;
    int64_t refused;      /* of duplicate: refused with DUPLICATE_KEY (on_duplicate: reject) */
    char reason[512];     /* the worker's: why the pass failed */
    char job_reason[512]; /* the stream job's (writer thread) */
    int failed_io;
    char received_at[32];
    int64_t now_ms;
    unsigned long long rejected_by_code[ERR__COUNT]; /* by first error, for the metrics */
    int64_t code_count[ERR__COUNT];                  /* writer side: every error, for rollups */
    char *code_sample[ERR__COUNT];                   /* writer side: one message each (owned) */
    int (*tick)(void *arg); /* every TICK_RECORDS records; non-zero stops */
    void *tick_arg;
    int stopped;      /* the tick asked to stop (shutdown) */
    int64_t lease_ms; /* the worker's lease, renewed at the end of the pass */
    int lost;         /* another worker holds the batch now */
    int store_failed; /* the store failed under the pass (batch_pass_store_failed) */
    int oom;          /* the pass failed for want of memory (reason "out of memory") */
    /* A pass in slices (slices.c) */
    int sliced;            /* its DLQ entries are staged until the batch is published */
    int changed;           /* the batch was failed or deleted meanwhile (an operator) */
    int64_t last_beat_ms;  /* when a slice last renewed the lease */
    struct writer *writer; /* the writer the slices run on (borrowed) */
};

/* On the writer: store one row that came through the queue (counts it in p). */
int pass_store_one(struct pass *p, struct rq_row *r, const struct row_meta *m);
/* On the writer: the batch's counts and error codes into the rollups, at done_ms. */
int pass_add_rollup(struct pass *p, int failed, int64_t done_ms);
/* Forget the error codes counted so far. */
void pass_codes_reset(struct pass *p);
/* A streamed pass begins: its state reset, its row queue (at most chunks chunks) made. 0, or
 * -1 out of memory (p->reason says so). */
int pass_stream_begin(struct pass *p, int chunks);
/* The pass fails for want of memory (reason "out of memory"). */
void pass_no_memory(struct pass *p);
/* The worker's side of a streamed pass: read the file into p->rq, then finish it. */
void pass_produce(void *arg);

#endif
