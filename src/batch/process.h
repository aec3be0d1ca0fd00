/*
 * process.h - the passes over a batch's file (internal to src/batch/).
 */
#ifndef SLUICE_BATCH_PROCESS_H
#define SLUICE_BATCH_PROCESS_H

#include <stdint.h>

#include "config/config.h"
#include "store/store.h"

struct pass;
struct writer;

/* A pass over b's file for dataset ds, read through files (store_file_open); all borrowed.
 * files is the worker's own connection: the pass reads on the worker's thread, and on the
 * writer's in batch_pass_apply_fail() while the worker waits for that job, so one thread
 * at a time uses it. */
struct pass *batch_pass_new(const struct sluice_config *cfg, const struct dataset_config *ds,
                            struct batch *b, struct store *files);
void batch_pass_destroy(struct pass *p);
/* Have tick(arg) called every so many records of the pass; a non-zero return stops the
 * pass (batch_pass_stopped() is then 1). It runs while the writer is busy with the pass's
 * job: it must not wait for the writer. */
void batch_pass_set_tick(struct pass *p, int (*tick)(void *arg), void *arg);
int batch_pass_stopped(const struct pass *p);
/* The lease the worker holds the batch with (batches.lease_s): the pass checks at its end,
 * before committing, that the batch is still the worker's (b->worker) and renews it. When
 * another worker took it over meanwhile (the lease expired: this node stalled), the pass
 * stores nothing and batch_pass_lost() is 1: the batch is the other worker's to finish. */
void batch_pass_set_lease(struct pass *p, int64_t lease_ms);
int batch_pass_lost(const struct pass *p);
/* After a pass that failed (-1): 1 when the store failed under it, not the batch: a
 * connection lost (the writer's or the file's), the store away, a COMMIT that failed or
 * whose outcome is unknown. Nothing of the pass may be stored, or all of it (the batch is
 * then `completed`): the batch is to be taken up again, not marked failed. */
int batch_pass_store_failed(const struct pass *p);
/* Read only the header and map it to the schema (staging). 0, or -1 with the reason. */
int batch_pass_header(struct pass *p);
/*
 * The pass (on the worker): read and validate the rows here while one writer job
 * stores them (rows, row errors, DLQ entries), replacing what earlier attempts
 * stored. 0: committed, counts set (b's counts too) and the batch `completed`.
 * 1: the error rate is over the threshold; nothing was stored, batch_pass_reason()
 * says why: record the failure with batch_pass_apply_fail(). -1: failed
 * (batch_pass_reason(); batch_pass_stopped() when the server is stopping).
 */
int batch_pass_run(struct pass *p, struct writer *w);
/*
 * The same pass in slices (slices.c), where the store can show a batch at once although it
 * was written in many transactions (store_sliced_passes), for a dataset without a key: the
 * rows are stored by many short jobs on w among everyone else's, and the batch's rows,
 * DLQ entries and `completed` appear in one commit at the end. 0: completed. 1: over the
 * threshold, recorded here (counts, row errors, `failed`): nothing more to do. 2: an
 * operator failed or deleted the batch meanwhile; what it stored is removed. -1 as
 * batch_pass_run (its rows stay hidden when stopped, lost or the store failed; otherwise
 * removed, and the batch is to be marked failed with batch_pass_reason()).
 */
int batch_pass_run_sliced(struct pass *p, struct writer *w);
const char *batch_pass_reason(const struct pass *p);
/* After batch_pass_run(): invalid rows by their first error code (ERR__COUNT entries). */
const unsigned long long *batch_pass_rejected(const struct pass *p);
/* On the writer, inside its transaction: remove what earlier attempts stored, record the
 * row errors and the counts, and mark the batch failed with fail_reason. */
int batch_pass_apply_fail(struct pass *p, struct store *st, const char *fail_reason);

#endif
