/*
 * sqlite_internal.h - what the files of the SQLite backend (src/store/sqlite/) share.
 * Not for use outside that folder (tests aside). The files, lowest first; each calls only
 * files before it: sqlite_conn.c (failures, exec), sqlite_ckpt.c (checkpoints, its own
 * header), sqlite_schema.c, sqlite_auth.c, sqlite_files.c, sqlite_dump.c, sqlite_check.c
 * (integrity), sqlite_stats.c
 * (rollups, stats, sentinel queries), sqlite_batch.c, sqlite_alerts.c, sqlite_jobs.c (the
 * scheduler's history), sqlite.c
 * (connection, datasets, transactions, rows, DLQ, idempotency), then sqlite_ops.c, the
 * operations table that names them all (store.h has the contracts). The one reference
 * back is data, not a call: sqlite_open points each handle at that table.
 */
#ifndef SLUICE_STORE_SQLITE_INTERNAL_H
#define SLUICE_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdio.h>

#include "store/rollup_acc.h"
#include "store/store.h"
#include "util/mem.h"

struct ds_stmt {
    struct ds_stmt *next;
    char *name;
    const struct schema *schema; /* the schema the statement was built for (borrowed) */
    sqlite3_stmt *put;
    sqlite3_stmt *hidden; /* keyed: is the row's key held by a batch in slices? (lazily) */
};

/* The prefix of the table that holds a dataset's rows: dsr_<name>. Readers query the view
 * ds_<name> over it (sqlite.c), which hides the rows of batches still in batch_pending; every
 * write goes to the table. */
#define SQLITE_ROWS "dsr_"
/* The prefix of the table that keeps, for an upsert dataset, the versions of rows that a
 * batch being stored in slices has updated in place: dsv_<name>, with the batch's id in
 * _pending. The view shows them while the batch is pending, instead of its versions; taking
 * the batch back puts them back (sqlite_batch.c), publishing it leaves them to be dropped. */
#define SQLITE_SAVED "dsv_"

struct sqlite_store {
    struct store base;
    sqlite3 *db;
    struct ds_stmt *stmts;
    sqlite3_stmt *dlq_add_q[2];  /* into dlq, dlq_staged: prepared on first use */
    sqlite3_stmt *errors_add_q;  /* prepared on first use */
    sqlite3_stmt *roll_q[6];     /* rollup upserts and the ledger insert, prepared on first use */
    unsigned long long dev, ino; /* the database file when it was opened (ping checks it) */
    struct roll_acc roll_job, roll_group; /* this job's / this group's rollups, unwritten */
    /*
     * The rowids this transaction inserted with one batch id, written to the
     * batch's rows_first/rows_last before COMMIT (sqlite_batch_range_flush): a
     * batch's rows are then found by a rowid range instead of an index on
     * _batch_id, whose upkeep cost a fifth of a batch's insert time.
     */
    struct {
        char batch_id[80];
        int64_t lo, hi;
        int used;
    } range;
    sqlite3_stmt *tx[6]; /* transaction control, see tx() */
    /* table_load's INSERT for the table load_table (migrate) */
    sqlite3_stmt *load_q;
    char load_table[80];
    char err[512];
    int fault; /* the last failure was the store's (store.h fault), forgotten at begin */
    int busy;  /* the last failure was a key held by a batch in slices (store.h busy) */
    struct sqlite_ckpt *ckpt; /* write connections: checkpoints run beside them */
    struct stmt_timing {
        void *stmt;
        uint64_t t0_ns;
    } timing[4]; /* read connections: statements running, for the query observer */
};

#define SQ(st) ((struct sqlite_store *)(st))

/* The helpers at the bottom (sqlite_conn.c). Whether an SQLite result code (extended or
 * primary) is the store's fault, not the statement's or the data's (store.h fault). */
int sqlite_code_is_fault(int code);
/* Record "what: sqlite's message" as the store's error, and its class; returns -1. */
int sqlite_fail(struct sqlite_store *s, const char *what);
/* Record "what: out of memory" (an allocation of sluice's failed: not a store fault);
 * returns -1. */
static inline int sqlite_oom(struct sqlite_store *s, const char *what)
{
    snprintf(s->err, sizeof s->err, "%s: out of memory", what);
    s->fault = 0;
    return -1;
}
/* A copy of column i's text (NULL for NULL); *oom = 1 when the copy failed. */
static inline char *sqlite_col_dup(sqlite3_stmt *q, int i, int *oom)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    char *c = t ? sl_strdup((const char *)t) : NULL;
    if (t && !c)
        *oom = 1;
    return c;
}
/* Run SQL without results; -1 with the error recorded. */
int sqlite_exec(struct sqlite_store *s, const char *sql);

/* The connection, datasets, transactions, rows, DLQ and idempotency (sqlite.c); see
 * store.h for the contracts. path is the part of the URI after "sqlite:". */
struct store *sqlite_open(const char *path, int readonly, char *err, size_t errlen);
void sqlite_close(struct store *st);
const char *sqlite_errmsg(struct store *st);
int sqlite_conn_lost(struct store *st);
int sqlite_fault(struct store *st);
int sqlite_busy(struct store *st);
int sqlite_ping(struct store *st);
int sqlite_singleton(struct store *st, const char *name);
int sqlite_wait_work(struct store *st, int timeout_ms);
int sqlite_dataset_sync(struct store *st, const struct dataset_config *ds, char *why,
                        size_t whylen);
int sqlite_dataset_check(struct store *st, const struct dataset_config *ds, char *why,
                         size_t whylen);
int sqlite_begin(struct store *st);
int sqlite_commit(struct store *st);
int sqlite_rollback(struct store *st);
int sqlite_savepoint(struct store *st);
int sqlite_savepoint_release(struct store *st);
int sqlite_savepoint_rollback(struct store *st);
int sqlite_row_put_values(struct store *st, const struct dataset_config *ds,
                          const struct row_meta *m, const struct row_value *v,
                          const char *extra_json, enum row_result *res);
int64_t sqlite_row_count(struct store *st, const char *dataset);
int sqlite_nomem(struct store *st);
int sqlite_dlq_add(struct store *st, const struct dlq_new *e, int64_t *id);
int sqlite_dlq_get(struct store *st, int64_t id, struct dlq_entry *out);
int sqlite_dlq_list(struct store *st, const struct dlq_filter *f, struct dlq_entry **out,
                    size_t *n);
int sqlite_dlq_count(struct store *st, const struct dlq_filter *f, int64_t *n);
int sqlite_dlq_set(struct store *st, int64_t id, const char *status, int attempts,
                   const char *errors_json, const char *codes, int64_t now_ms);
int sqlite_dlq_depth(struct store *st, json_t **by_dataset);
int sqlite_idem_get(struct store *st, const char *dataset, const char *key,
                    struct idem_record *out);
int sqlite_idem_put(struct store *st, const char *dataset, const char *key, const char *sha256,
                    int status, const char *response, int64_t now_ms, int64_t live_after_ms);
int sqlite_idem_purge(struct store *st, int64_t older_than_ms);

/* The schema (sqlite_schema.c); see store.h for the contracts. */
int sqlite_migrate(struct store *st);
int sqlite_schema_version(struct store *st, int *have, int *want);

/* Batches (sqlite_batch.c); see store.h for the contracts. */
int sqlite_batch_add(struct store *st, const struct batch *b);
int sqlite_batch_get(struct store *st, const char *id, struct batch *out);
int sqlite_batch_list(struct store *st, const struct batch_filter *f, struct batch **out,
                      size_t *n);
int sqlite_batch_claim(struct store *st, const char *worker, int64_t now_ms, int64_t lease_ms,
                       struct batch *out);
int sqlite_batch_set_status(struct store *st, const char *id, const char *status,
                            const char *reason, int64_t now_ms);
int sqlite_batch_heartbeat(struct store *st, const char *id, const char *worker, int64_t now_ms,
                           int64_t lease_ms);
int sqlite_batch_set_counts(struct store *st, const struct batch *b);
int sqlite_batch_set_threshold(struct store *st, const char *id, double pct, int64_t now_ms);
int sqlite_batch_history(struct store *st, const char *id, json_t **out);
int sqlite_batch_errors_add(struct store *st, const char *batch_id, const struct batch_error_new *e,
                            size_t n, int64_t now_ms);
int sqlite_batch_errors_list(struct store *st, const char *batch_id, int64_t after_row,
                             int64_t after_seq, int limit, json_t **out);
int sqlite_batch_clear(struct store *st, const char *dataset, const char *batch_id, int count_only,
                       int64_t *rows);
/* Row ranges: note a row inserted for batch_id; write the pending range; forget it. */
int sqlite_batch_range_note(struct sqlite_store *s, const char *batch_id, int64_t rowid);
int sqlite_batch_range_flush(struct sqlite_store *s);
/* Keys and audit (sqlite_auth.c); see store.h. */
int sqlite_key_pepper(struct store *st, unsigned char out[32]);
int sqlite_key_add(struct store *st, const struct api_key *k);
int sqlite_key_get(struct store *st, const char *id, struct api_key *out);
int sqlite_key_list(struct store *st, struct api_key **out, size_t *n);
int sqlite_key_revoke(struct store *st, const char *id, int64_t now_ms);
int sqlite_key_touch(struct store *st, const char *id, int64_t now_ms);
int sqlite_audit_add(struct store *st, const struct audit_new *e);
int sqlite_audit_list(struct store *st, const struct audit_filter *f, json_t **out);
/* Rollups, stats and sentinel queries (sqlite_stats.c); see store.h. */
int sqlite_rollup_add(struct store *st, const struct rollup_delta *d);
int sqlite_rollup_window(struct store *st, int64_t from_ms, struct rollup_sum **out, size_t *n);
int sqlite_stats_kpis(struct store *st, int64_t now_ms, const char *dataset, json_t **out);
int sqlite_stats_series(struct store *st, int monthly, int64_t from_ms, const char *dataset,
                        json_t **out);
int sqlite_stats_errors(struct store *st, int64_t from_ms, const char *dataset, json_t **out);
int sqlite_rollup_chunks(struct store *st, struct rollup_chunk **out, size_t *n);
int sqlite_rollup_rebuild(struct store *st, const struct rollup_chunk *c, int64_t minutes_from_ms);
int sqlite_rollup_purge(struct store *st, int64_t before_ms);
int sqlite_batch_stuck(struct store *st, int64_t before_ms, json_t **out);
int sqlite_dlq_new_since(struct store *st, int64_t since_ms, json_t **out);
int sqlite_batch_states(struct store *st, json_t **out);
/* Alerts (sqlite_alerts.c). */
int sqlite_batch_auto_reset(struct store *st, const char *id, int max, int64_t now_ms);
int sqlite_alert_firing(struct store *st, struct alert **out, size_t *n);
int sqlite_alert_list(struct store *st, const char *state, int64_t after_id, int desc, int limit,
                      struct alert **out, size_t *n);
int sqlite_alert_get(struct store *st, int64_t id, struct alert *out, struct alert_history **hist,
                     size_t *nhist);
int sqlite_alert_put(struct store *st, struct alert *a);
int sqlite_alert_event(struct store *st, int64_t id, int64_t at_ms, const char *event,
                       const char *detail);
int sqlite_outbox_add(struct store *st, struct outbox_row *r);
int sqlite_outbox_due(struct store *st, int64_t now_ms, int limit, struct outbox_row **out,
                      size_t *n);
int sqlite_outbox_finish(struct store *st, int64_t id, int64_t delivered_ms);
int sqlite_outbox_retry(struct store *st, int64_t id, int64_t next_ms, const char *error);
int sqlite_outbox_pending(struct store *st, int64_t alert_id, const char *receiver);
int sqlite_outbox_stats(struct store *st, int64_t *pending, int64_t *oldest_ms);
/* The scheduler's history (sqlite_jobs.c); see store.h. */
int sqlite_job_run_add(struct store *st, const struct job_run_new *r, int64_t *id);
int sqlite_job_run_start(struct store *st, int64_t id, const char *node, int64_t lease_until_ms,
                         int64_t now_ms);
int sqlite_job_run_renew(struct store *st, int64_t id, const char *node, int64_t lease_until_ms);
int sqlite_job_run_finish(struct store *st, int64_t id, const char *node, const char *state,
                          int64_t items, const char *error, int64_t now_ms);
int sqlite_job_run_cancel(struct store *st, int64_t id, const char *reason, int64_t now_ms);
int sqlite_job_run_get(struct store *st, int64_t id, struct job_run *out);
int sqlite_job_runs_list(struct store *st, const struct job_run_filter *f, struct job_run **out,
                         size_t *n);
int sqlite_job_runs_active(struct store *st, const char *job, struct job_run *out);
int sqlite_job_last(struct store *st, const char *job, struct job_last *out);
int sqlite_job_runs_lost(struct store *st, int64_t now_ms, struct job_run **out, size_t *n);
int sqlite_job_runs_prune(struct store *st, const char *job, int keep_runs, int64_t keep_before_ms,
                          int64_t failed_keep_before_ms, int64_t *deleted);
int sqlite_job_state_get(struct store *st, const char *job, struct job_state *out);
int sqlite_job_state_put(struct store *st, const struct job_state *js);
/* The group's rollups: a job's deltas are kept (savepoint released), dropped (rolled back),
 * written before COMMIT, or all dropped (ROLLBACK); freed at close. */
void sqlite_roll_keep_job(struct sqlite_store *s);
void sqlite_roll_drop_job(struct sqlite_store *s);
int sqlite_roll_flush(struct sqlite_store *s);
void sqlite_roll_drop_all(struct sqlite_store *s);
/* Take a finished batch's counts out of the rollups (before its rows are cleared). */
int sqlite_rollup_undo_batch(struct sqlite_store *s, const char *batch_id);
/* Whether ds_<dataset> has the _batch_id index (upsert datasets; sqlite_batch.c). */
int sqlite_has_batch_index(struct sqlite_store *s, const char *dataset);
int sqlite_batch_delete(struct store *st, const char *id);
/* What ds_<dataset> is: 0 none, 1 a table (a store from before the view), 2 the view; -1 on
 * failure. */
int sqlite_dataset_kind(struct sqlite_store *s, const char *dataset);
/* (Re)make the view ds_<name> and its INSTEAD OF triggers over dsr_<name> (and dsv_<name>,
 * made here for an upsert dataset: sqlite_schema.c). */
int sqlite_dataset_view(struct sqlite_store *s, const char *name, int upsert);
/* Whether dsv_<dataset> exists: 1, 0, -1 on failure. */
int sqlite_has_saved(struct sqlite_store *s, const char *dataset);
int sqlite_batch_hide(struct store *st, const char *batch_id);
int sqlite_batch_saved_drop(struct store *st, const char *dataset, const char *batch_id,
                            int64_t limit, int64_t *rows);
int sqlite_batch_rows_drop(struct store *st, const char *dataset, const char *batch_id,
                           int64_t limit, int64_t *rows);
int sqlite_batch_publish(struct store *st, const char *batch_id, int dlq);
/* Whole tables (sqlite_dump.c); see store.h. */
int sqlite_snapshot(struct store *st);
int sqlite_table_count(struct store *st, const struct table_def *t, int64_t *n);
int sqlite_table_dump(struct store *st, const struct table_def *t,
                      int (*fn)(void *arg, const struct cell *row), void *arg);
int sqlite_table_load(struct store *st, const struct table_def *t, const struct cell *row);
int sqlite_dataset_drop(struct store *st, const char *name);
/* Integrity (sqlite_check.c); see store.h. */
int sqlite_integrity(struct store *st, char *verdict, size_t len);
/* Batch files (sqlite_files.c); see store.h. */
int sqlite_file_keep(struct store *st, const char *batch_id, const char *spool,
                     const char *data_dir, char **path);
FILE *sqlite_file_open(struct store *st, const struct batch *b, const char *data_dir);
int sqlite_file_drop(struct store *st, const char *batch_id, const char *path,
                     const char *data_dir);
int sqlite_file_sweep(struct store *st, int64_t older_than_ms, const char *data_dir);

#endif
