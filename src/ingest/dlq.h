/*
 * dlq.h - the dead-letter queue's operations: show, retry (one or in bulk),
 * drop (one or in bulk). A retry validates the original bytes against the schema in force now;
 * the row and the entry's new status are written in the same transaction, so
 * an entry is stored at most once even under concurrent retries or a crash.
 */
#ifndef SLUICE_INGEST_DLQ_H
#define SLUICE_INGEST_DLQ_H

#include <jansson.h>
#include <stdint.h>

#include "config/config.h"
#include "writer/writer.h"
#include "store/store.h"

/* The API's JSON form of an entry (new reference; NULL when out of memory). */
json_t *dlq_item_json(const struct dlq_entry *e);

enum dlq_op { DLQ_RETRY, DLQ_DROP, DLQ_RETRY_BULK, DLQ_DROP_BULK };

/* The ids a bulk drop reports as its sample (docs/api.md). */
#define DLQ_SAMPLE 10

/*
 * How a retry reads a CSV record of a batch again: parse raw with the header of batch b's file
 * (read through st), convert and validate it against ds; returns the row (valid; *extra as for
 * schema_validate) or NULL with errs filled. The batch layer's batch_retry_row (batch/batch.h)
 * is the one: ingest/ is below batch/, so the caller passes it in.
 */
typedef json_t *(*dlq_batch_row_fn)(const struct sluice_config *cfg,
                                    const struct dataset_config *ds, struct store *st,
                                    const struct batch *b, const char *raw, size_t len,
                                    struct row_errors *errs, json_t **extra);

/* A writer job acting on one entry, or on one page of a bulk retry. */
struct dlq_job {
    struct wjob job; /* apply = dlq_apply; the caller sets deliver */
    enum dlq_op op;
    const struct sluice_config *cfg; /* borrowed; the caller keeps it alive */
    dlq_batch_row_fn batch_row;      /* DLQ_RETRY, DLQ_RETRY_BULK: set by the caller */
    int64_t id;                      /* DLQ_RETRY, DLQ_DROP */
    /* DLQ_RETRY_BULK, DLQ_DROP_BULK: the filter (strings owned; open entries only) and the
     * page cursor; the received time range [since_ms, until_ms) (0 = open) for drops. */
    char *dataset, *error_code;
    int64_t *ids;
    size_t nids;
    int64_t since_ms, until_ms;
    int64_t after_id;
    int page;
    /* Results. */
    int status;     /* HTTP status for single ops */
    json_t *result; /* the item (single ops) or NULL */
    enum sluice_err err;
    char errmsg[200];
    size_t matched, resolved, still_open; /* this page (bulk) */
    int64_t sample[DLQ_SAMPLE];           /* drop: the first ids dropped on this page */
    size_t nsample;
    int more; /* bulk: another page may follow */
};

int dlq_apply(struct wjob *job, struct store *st);
void dlq_job_release(struct dlq_job *j); /* frees what the job owns, not the struct */

#endif
