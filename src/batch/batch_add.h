/*
 * batch_add.h - recording an uploaded batch as a writer job: the Idempotency-Key check, the
 * batch record and the upload's answer, in one transaction. The upload (http/
 * h_batch_upload.c) fills the record while the body streams in, has the store keep the
 * file, then runs the job (writer_run, on a libuv pool thread) and answers from its
 * results.
 */
#ifndef SLUICE_BATCH_BATCH_ADD_H
#define SLUICE_BATCH_BATCH_ADD_H

#include "store/store.h"
#include "writer/writer.h"

struct batch_add_job {
    struct wjob job; /* apply = batch_add_apply, nrows 1 */
    /* Inputs, owned by the job (batch_add_release frees them). */
    struct batch b; /* the record to add: id, dataset, sha256, path, created_ms, ... */
    char *idem_key; /* the upload's Idempotency-Key, or NULL */
    /* Results, set by apply(). */
    int status;     /* 202 (recorded, or a replay of an upload that was), or 409: the key
                     * was used with a different file (nothing recorded) */
    char *response; /* the 202's body (the first upload's for a replay), owned; NULL for 409 */
    int replayed;   /* 1: an upload with this key and file was recorded before: b is not */
};

/* On the writer thread. 0, -1 on a store failure, or WJOB_AGAIN when another node recorded
 * an upload with the same key first (apply() runs again and finds it). */
int batch_add_apply(struct wjob *job, struct store *st);
/* Frees what the job owns, not the struct. */
void batch_add_release(struct batch_add_job *j);

#endif
