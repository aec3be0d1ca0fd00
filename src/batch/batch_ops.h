/*
 * batch_ops.h - the operations on batches as writer jobs: set the error threshold, reset,
 * fail, reprocess, delete one batch (or say what a delete would do: a dry run) and delete
 * every batch matching a filter. The API (http/h_batches.c) fills a job, sets its deliver
 * and submits it; batch_op_apply() runs on the writer thread inside the group's
 * transaction and leaves the answer in the job's results.
 *
 * A delete removes the batch's records and its rows; its kept file (store_file_keep) is not
 * removed in the transaction: the job notes it in drops, and its owner removes it after
 * the commit (store_file_drop, off the writer), so that a rollback never loses a file.
 */
#ifndef SLUICE_BATCH_BATCH_OPS_H
#define SLUICE_BATCH_BATCH_OPS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/errors.h"
#include "writer/writer.h"

struct store;

enum batch_op {
    BATCH_OP_RESET,       /* back to uploaded, unless a live worker holds it */
    BATCH_OP_REPROCESS,   /* back to uploaded from any status, unless a live worker holds it */
    BATCH_OP_FAIL,        /* failed with reason, unless completed or failed */
    BATCH_OP_THRESHOLD,   /* error_threshold_percent = pct */
    BATCH_OP_DELETE,      /* the batch id, with its rows (dry_run: only count) */
    BATCH_OP_DELETE_BULK, /* every batch matching the filter, but those a worker holds */
};

/* A batch's kept file: its id and the path recorded for it (NULL when the file is in the
 * database). Borrowed or owned as the holder says. */
struct kept_file {
    const char *id, *path;
};

/* A writer job doing one operation. */
struct batch_op_job {
    struct wjob job; /* first; apply = batch_op_apply, nrows 1; the caller sets deliver */
    enum batch_op op;
    /* Inputs, owned by the job (batch_op_release frees them). */
    char *id;     /* the batch (all but BATCH_OP_DELETE_BULK) */
    char *reason; /* BATCH_OP_FAIL: the rejection_reason */
    double pct;   /* BATCH_OP_THRESHOLD: 0..100 */
    int dry_run;  /* deletes: change nothing, say what would go */
    /* BATCH_OP_DELETE_BULK: the filter (NULL / 0 = any; the caller gives at least one) */
    char *f_contains, *f_status, *f_dataset;
    int64_t f_created_after;
    /* Results, valid once apply() returned 0 (the writer's result says whether committed). */
    int status; /* 200, or the HTTP status of a refusal (404, 409) with err, errmsg */
    enum sluice_err err;
    char errmsg[300];
    json_t *result; /* 200: the answer's body (the batch, or what was deleted); owned */
    /* Deletes: the files to remove once committed (strings owned). An apply() run again
     * notes them again. */
    struct kept_file *drops;
    size_t ndrops;
};

/* On the writer thread. 0 (the results say what happened, a refusal included), or -1 on a
 * store failure (the job's changes are rolled back). */
int batch_op_apply(struct wjob *job, struct store *st);
/* Frees what the job owns (inputs and results), not the struct. Any thread, once the
 * writer handed the job back. */
void batch_op_release(struct batch_op_job *j);

#endif
