/*
 * batch_ops.c - the operations on batches as writer jobs (see batch_ops.h).
 */
#include "batch/batch_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mem.h"

/* Forget the files noted for removal (an apply that runs again notes them again). */
static void drops_release(struct batch_op_job *q)
{
    for (size_t i = 0; i < q->ndrops; i++) {
        free((char *)q->drops[i].id);
        free((char *)q->drops[i].path);
    }
    free(q->drops);
    q->drops = NULL;
    q->ndrops = 0;
}

void batch_op_release(struct batch_op_job *q)
{
    free(q->f_contains);
    free(q->f_status);
    free(q->f_dataset);
    drops_release(q);
    free(q->id);
    free(q->reason);
    json_decref(q->result);
    q->result = NULL;
}

static int refuse(struct batch_op_job *q, int status, enum sluice_err e, const char *fmt,
                  const char *a, const char *b)
{
    q->status = status;
    q->err = e;
    snprintf(q->errmsg, sizeof q->errmsg, fmt, a, b);
    return 0;
}

/* Note b's file for removal once the deletion is committed. */
static void drop_after(struct batch_op_job *q, const struct batch *b)
{
    struct kept_file *f = &q->drops[q->ndrops];
    f->id = sl_strdup(b->id);
    f->path = b->path ? sl_strdup(b->path) : NULL;
    if (f->id)
        q->ndrops++;
}

/* Delete every batch matching the filter (a dry run only says which). */
static int bulk_delete(struct batch_op_job *q, struct store *st)
{
    struct batch_filter f = {.status = q->f_status,
                             .dataset = q->f_dataset,
                             .filename_contains = q->f_contains,
                             .created_after_ms = q->f_created_after,
                             .limit = 100000};
    struct batch *v;
    size_t n;
    if (store_batch_list(st, &f, &v, &n) < 0)
        return -1;
    int64_t now = clock_wall_ms(), rows = 0, bytes = 0;
    json_t *deleted = json_array(), *skipped = json_array();
    int rc = 0;
    q->drops = sl_calloc(n ? n : 1, sizeof *q->drops);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (batch_status_active(v[i].status) && v[i].lease_until_ms > now) {
            json_array_append_new(skipped, json_string(v[i].id));
            continue;
        }
        json_array_append_new(deleted, json_string(v[i].id));
        bytes += v[i].bytes;
        int64_t nrows = 0;
        if (store_batch_clear(st, v[i].dataset, v[i].id, q->dry_run, &nrows) < 0) {
            rc = -1;
            continue;
        }
        rows += nrows;
        if (q->dry_run)
            continue;
        if (store_batch_delete(st, v[i].id) < 0)
            rc = -1;
        else if (q->drops)
            drop_after(q, &v[i]);
    }
    q->result = json_pack("{s:b,s:I,s:o,s:o,s:I,s:I}", "dry_run", q->dry_run, "matched",
                          (json_int_t)n, "deleted", deleted, "skipped_in_progress", skipped, "rows",
                          (json_int_t)rows, "file_bytes", (json_int_t)bytes);
    for (size_t i = 0; i < n; i++)
        batch_release(&v[i]);
    free(v);
    q->status = 200;
    return rc;
}

int batch_op_apply(struct wjob *job, struct store *st)
{
    struct batch_op_job *q = (struct batch_op_job *)job;
    struct batch b;
    int64_t now = clock_wall_ms();
    drops_release(q);
    if (q->op == BATCH_OP_DELETE_BULK)
        return bulk_delete(q, st);
    int rc = store_batch_get(st, q->id, &b);
    if (rc < 0)
        return -1;
    if (rc == 1)
        return refuse(q, 404, ERR_NOT_FOUND, "no batch '%s'%s", q->id, "");
    /* A worker holds it while its lease runs. */
    int held = batch_status_active(b.status) && b.lease_until_ms > now;
    rc = 0;
    switch (q->op) {
    case BATCH_OP_RESET:
    case BATCH_OP_REPROCESS:
        if (held) {
            refuse(q, 409, ERR_CONFLICT, "batch %s is being processed (%s) by a live worker", b.id,
                   b.status);
            break;
        }
        if (q->op == BATCH_OP_RESET && strcmp(b.status, "uploaded") == 0) {
            refuse(q, 409, ERR_CONFLICT, "batch %s is already %s", b.id, b.status);
            break;
        }
        rc = store_batch_set_status(st, b.id, "uploaded",
                                    q->op == BATCH_OP_RESET ? "reset" : "reprocess", now);
        q->status = 200;
        break;
    case BATCH_OP_FAIL:
        if (!strcmp(b.status, "completed") || !strcmp(b.status, "failed")) {
            refuse(q, 409, ERR_CONFLICT, "batch %s is already %s", b.id, b.status);
            break;
        }
        rc = store_batch_set_status(st, b.id, "failed", q->reason, now);
        q->status = 200;
        break;
    case BATCH_OP_THRESHOLD:
        rc = store_batch_set_threshold(st, b.id, q->pct, now);
        q->status = 200;
        break;
    case BATCH_OP_DELETE_BULK: /* handled above */
        break;
    case BATCH_OP_DELETE:
        if (held) {
            refuse(q, 409, ERR_CONFLICT, "batch %s is being processed (%s) by a live worker", b.id,
                   b.status);
            break;
        }
        int64_t nrows = 0;
        if (store_batch_clear(st, b.dataset, b.id, q->dry_run, &nrows) < 0 ||
            (!q->dry_run && store_batch_delete(st, b.id) < 0)) {
            rc = -1;
            break;
        }
        /* "file": where it is kept when that is a path (SQLite); null when the file is in
         * the database (PostgreSQL) */
        q->result =
            json_pack("{s:s,s:b,s:I,s:I,s:s?,s:I}", "batch_id", b.id, "dry_run", q->dry_run, "rows",
                      (json_int_t)nrows, "row_errors_rows", (json_int_t)(b.invalid + b.duplicate),
                      "file", b.path, "file_bytes", (json_int_t)b.bytes);
        if (!q->dry_run && (q->drops = sl_calloc(1, sizeof *q->drops)))
            drop_after(q, &b);
        q->status = 200;
        break;
    }
    if (rc == 0 && q->status == 200 && q->op != BATCH_OP_DELETE) {
        batch_release(&b);
        if (store_batch_get(st, q->id, &b) == 0)
            q->result = batch_json(&b, NULL);
    }
    batch_release(&b);
    return rc;
}
