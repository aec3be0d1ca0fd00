/*
 * batch.h - CSV batches: an uploaded file moves through
 *   uploaded -> staging -> validating -> transforming -> inserting|upserting -> completed
 * or -> failed (with a rejection_reason) from any state before completed.
 *
 * A pool of workers claims uploaded batches (or batches whose worker stopped
 * renewing its lease) through the store. Validation is a first pass over the
 * file on the worker thread: it counts rows, records every row error and
 * checks the error threshold. The insert is a second pass run as ONE writer
 * job: every valid row, every DLQ entry, the counts and `completed` commit
 * together, so a batch's rows become visible all at once or not at all.
 */
#ifndef SLUICE_BATCH_BATCH_H
#define SLUICE_BATCH_BATCH_H

#include <jansson.h>

#include "config/config.h"
#include "store/store.h"

struct batch_pool;
struct catalog_source;
struct writer;

/* Start workers (cfg batches.workers; 0 starts none). NULL when workers is 0, or when out of
 * memory (the caller tells them apart by workers). writer, catalogs and store_uri are
 * borrowed until batch_pool_stop(). */
struct batch_pool *batch_pool_start(struct writer *writer, struct catalog_source *catalogs,
                                    const char *store_uri, int workers);
/* Tell the workers a batch is waiting (after an upload or a reset). */
void batch_pool_kick(struct batch_pool *p);
/* The workers' own writers (PostgreSQL: the passes run on them, workers.c pass_writer), for
 * /health/detailed: how many there are (0: none, the passes run on the service's writer), or
 * minus that when one fails to commit or did not start (detail says which and why). Any
 * thread. */
int batch_pool_writers(struct batch_pool *p, char *detail, size_t cap);
/* Let the current batches finish (their transaction commits or rolls back), then stop. */
void batch_pool_stop(struct batch_pool *p); /* accepts NULL */

/* The API's JSON for a batch (new reference). history may be NULL. */
json_t *batch_json(const struct batch *b, json_t *history);

/* Where an upload of batch id is spooled before the store keeps it (store_file_keep):
 * <data_dir>/batches/<id>.csv.part into out. */
void batch_spool_path(const char *data_dir, const char *id, char *out, size_t cap);
/* Remove the spools of data_dir last written before before_ms: uploads that a crash
 * interrupted (a live upload writes to its spool all the time). Returns how many. */
int batch_spool_sweep(const char *data_dir, int64_t before_ms);

/*
 * A DLQ retry of a batch row: parse raw (one CSV record as it was uploaded)
 * with the header of batch b's file (read through st, which is used for
 * nothing else meanwhile), convert and validate it against ds as it is now.
 * Returns the row (valid; *extra as for schema_validate), or NULL with errs
 * filled.
 */
json_t *batch_retry_row(const struct sluice_config *cfg, const struct dataset_config *ds,
                        struct store *st, const struct batch *b, const char *raw, size_t len,
                        struct row_errors *errs, json_t **extra);

/* Whether status is one a worker is processing in. */
int batch_status_active(const char *status);

#endif
