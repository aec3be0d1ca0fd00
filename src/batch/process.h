/*
 * process.h - the passes over a batch's file (internal to src/batch/).
 */
#ifndef SLUICE_BATCH_PROCESS_H
#define SLUICE_BATCH_PROCESS_H

#include <stdint.h>

#include "config/config.h"
#include "store/store.h"

struct pass;

/* A pass over b's file for dataset ds; all borrowed. */
struct pass *batch_pass_new(const struct sluice_config *cfg, const struct dataset_config *ds,
                            struct batch *b);
void batch_pass_destroy(struct pass *p);
/* Have tick(arg) called every so many records of the counting pass (the worker renews its
 * lease there); a non-zero return stops the pass (batch_pass_stopped() is then 1). */
void batch_pass_set_tick(struct pass *p, int (*tick)(void *arg), void *arg);
int batch_pass_stopped(const struct pass *p);
/* Read only the header and map it to the schema (staging). 0, or -1 with the reason. */
int batch_pass_header(struct pass *p);
/* Count rows and invalid rows (no store). 0, or -1 with batch_pass_reason(). */
int batch_pass_count(struct pass *p);
void batch_pass_counts(const struct pass *p, int64_t *total, int64_t *invalid);
const char *batch_pass_reason(const struct pass *p);
/* After a storing pass: invalid rows by their first error code (ERR__COUNT entries). */
const unsigned long long *batch_pass_rejected(const struct pass *p);
/*
 * On the writer, inside its transaction: remove what earlier attempts stored,
 * then either store every valid row with the row errors and DLQ entries and
 * mark the batch completed (store_rows), or record the row errors and mark it
 * failed with fail_reason.
 */
int batch_pass_apply(struct pass *p, struct store *st, int store_rows, const char *fail_reason);

#endif
