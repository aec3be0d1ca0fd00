/*
 * pg_internal.h - the PostgreSQL backend's shared parts (internal to
 * src/store/pg/, tests aside). The backend implements every operation of store.h
 * (the contracts are there) against the schema in pg_schema.c, with
 * libpq, one connection per struct store, like the SQLite backend: the writer
 * owns one for all writes, each HTTP loop one for reads. pg_conn.c holds the
 * connection and the helpers every other file calls (pg_exec, pg_fail ...), pg_copy.c
 * the COPY queue; pg.c (datasets, transactions, rows, DLQ, idempotency), pg_batch.c,
 * pg_files.c, pg_auth.c, pg_stats.c, pg_alerts.c, pg_jobs.c (the scheduler's history),
 * pg_dump.c and pg_check.c (integrity)
 * the operations; pg_schema.c the migrations' statements; pg_ops.c the operations table.
 *
 * Parameters are passed as text with PQexecParams (NULL = SQL NULL); integers
 * are formatted with pg_int(). Every function returns what store.h says, and
 * on failure records "what: PostgreSQL's message" with pg_fail().
 */
#ifndef SLUICE_STORE_PG_INTERNAL_H
#define SLUICE_STORE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdint.h>

#include "store/rollup_acc.h"
#include "store/store.h"

struct pg_store {
    struct store base;
    PGconn *conn;
    int readonly;
    char *conninfo;       /* owned: to reconnect */
    int listening;        /* LISTEN sluice_batches was sent on this connection */
    struct pg_copy *copy; /* rows queued for COPY (pg_copy.c); NULL until the first */
    int sp;               /* the job's savepoint: PG_SP_NONE, _NOTED (not sent yet) or _SENT */
    struct roll_acc roll_job, roll_group; /* rollups of this job / group, written at COMMIT */
    /* the table table_load is filling (migrate) */
    char load_table[80];
    /* the node's copy of a batch file whose sha256 this connection checked last
     * (pg_files.c): opened again unchanged, it is not hashed again */
    struct {
        char batch_id[64];
        unsigned long long dev, ino, size;
        long long mtime_ns;
    } copy_checked;
    char err[512];
    int fault;        /* the last failure was the store's (store.h fault), forgotten at begin */
    int busy;         /* the last failure was a lock wait that ran out (store.h busy) */
    int lock_wait_ms; /* store.h lock_wait: lock_timeout of every session, 0 = none */
};

#define PG(st) ((struct pg_store *)(st))

/* Whether an error's SQLSTATE is the store's fault, not the statement's or the data's
 * (store.h fault); sqlstate NULL: none came (then the connection decides). */
int pg_sqlstate_is_fault(const char *sqlstate);
/* Record "what: message" as the store's error, and its class; returns -1. */
int pg_fail(struct pg_store *s, const char *what);
/* The same with the message of result r (which may be NULL: then the connection's). */
int pg_result_fail(struct pg_store *s, const char *what, const PGresult *r);
/* Run sql with n text parameters. Returns the result (caller PQclear()s) when its status is
 * PGRES_COMMAND_OK or PGRES_TUPLES_OK, else NULL with the error recorded. */
PGresult *pg_exec(struct pg_store *s, const char *what, const char *sql, int n,
                  const char *const *params);
/* The same for a statement whose rows are not wanted: 0 or -1. */
int pg_cmd(struct pg_store *s, const char *what, const char *sql, int n, const char *const *params);
/* v as decimal text in buf (at least 24 bytes); returns buf. */
const char *pg_int(char *buf, int64_t v);
/* Column c of row r as int64 (0 when NULL) / as a malloc'd string (NULL when NULL). */
int64_t pg_get_int(const PGresult *r, int row, int col);
char *pg_get_str(const PGresult *r, int row, int col);

/* pg_exec with per-parameter lengths and formats (1 = binary, for BYTEA values) and a
 * result format (1 = binary). */
PGresult *pg_exec_bin(struct pg_store *s, const char *what, const char *sql, int n,
                      const char *const *params, const int *lengths, const int *formats,
                      int result_format);

/* Rows sent with COPY (pg_copy.c). pg_copy_put queues one row of table (a quoted
 * name) with columns cols ("a, b"; ncols of them, bytea: bit i set when column i is
 * BYTEA): v[i] is the value as text (NULL = SQL NULL), len[i] bytes. The queue is sent by
 * pg_copy_flush(), which every other statement on the connection runs first (pg_exec does),
 * and dropped by pg_copy_discard() (a rollback). 0 or -1 (error recorded). */
#define PG_COPY_SLOTS 8
enum { PG_SP_NONE, PG_SP_NOTED, PG_SP_SENT };
int pg_copy_put(struct pg_store *s, const char *table, const char *cols, int ncols, unsigned bytea,
                const char *const *v, const size_t *len);
int pg_copy_flush(struct pg_store *s);
/* Whether rows of table are queued already (pg_copy_put then needs no cols: NULL). */
int pg_copy_queued(const struct pg_store *s, const char *table);
void pg_copy_discard(struct pg_store *s);
/* A savepoint noted, not sent (sent by the next flush); a rollback to it while still
 * unsent cuts the queue back to where it was noted (pg_copy_rewind). */
int pg_copy_savepoint(struct pg_store *s);
void pg_copy_rewind(struct pg_store *s);
void pg_copy_free(struct pg_store *s);

/* Open the connection again (the session's settings too; what the lost session's transaction
 * had queued is dropped): 0, or -1 with the error recorded. */
int pg_reconnect(struct pg_store *s);
/* The connection (pg_conn.c). uri is the whole postgres:// URL or a conninfo string. */
struct store *pg_open(const char *uri, int readonly, char *err, size_t errlen);
void pg_close(struct store *st);
const char *pg_errmsg(struct store *st);
int pg_conn_lost(struct store *st);
int pg_fault(struct store *st);
int pg_busy(struct store *st);
int pg_lock_wait(struct store *st, int ms);
int pg_schema_version(struct store *st, int *have, int *want);
int pg_ping(struct store *st);    /* reconnects when the connection was lost */
int pg_migrate(struct store *st); /* under an advisory lock; makes the key pepper once */
int pg_singleton(struct store *st, const char *name);
int pg_wait_work(struct store *st, int timeout_ms);

/* Every other operation of store.h, same contract, prefixed pg_ (pg*.c). */
int pg_dataset_sync(struct store *st, const struct dataset_config *ds, char *why, size_t whylen);
int pg_dataset_check(struct store *st, const struct dataset_config *ds, char *why, size_t whylen);
int pg_begin(struct store *st);
int pg_commit(struct store *st);
int pg_rollback(struct store *st);
int pg_savepoint(struct store *st);
int pg_savepoint_release(struct store *st);
int pg_savepoint_rollback(struct store *st);
int pg_row_put_values(struct store *st, const struct dataset_config *ds, const struct row_meta *m,
                      const struct row_value *v, const char *extra_json, enum row_result *res);
int64_t pg_row_count(struct store *st, const char *dataset);
int pg_nomem(struct store *st);
int pg_dlq_add(struct store *st, const struct dlq_new *e, int64_t *id);
int pg_dlq_get(struct store *st, int64_t id, struct dlq_entry *out);
int pg_dlq_list(struct store *st, const struct dlq_filter *f, struct dlq_entry **out, size_t *n);
int pg_dlq_count(struct store *st, const struct dlq_filter *f, int64_t *n);
int pg_dlq_set(struct store *st, int64_t id, const char *status, int attempts,
               const char *errors_json, const char *codes, int64_t now_ms);
int pg_dlq_depth(struct store *st, json_t **by_dataset);
int pg_idem_get(struct store *st, const char *dataset, const char *key, struct idem_record *out);
int pg_idem_put(struct store *st, const char *dataset, const char *key, const char *sha256,
                int status, const char *response, int64_t now_ms, int64_t live_after_ms);
int pg_idem_purge(struct store *st, int64_t older_than_ms);
int pg_batch_add(struct store *st, const struct batch *b);
int pg_batch_get(struct store *st, const char *id, struct batch *out);
int pg_batch_list(struct store *st, const struct batch_filter *f, struct batch **out, size_t *n);
int pg_batch_claim(struct store *st, const char *worker, int64_t now_ms, int64_t lease_ms,
                   struct batch *out);
int pg_batch_set_status(struct store *st, const char *id, const char *status, const char *reason,
                        int64_t now_ms);
int pg_batch_heartbeat(struct store *st, const char *id, const char *worker, int64_t now_ms,
                       int64_t lease_ms);
int pg_batch_set_counts(struct store *st, const struct batch *b);
int pg_batch_set_threshold(struct store *st, const char *id, double pct, int64_t now_ms);
int pg_batch_history(struct store *st, const char *id, json_t **out);
int pg_batch_errors_add(struct store *st, const char *batch_id, const struct batch_error_new *e,
                        size_t n, int64_t now_ms);

int pg_batch_errors_list(struct store *st, const char *batch_id, int64_t after_row,
                         int64_t after_seq, int limit, json_t **out);
int pg_batch_clear(struct store *st, const char *dataset, const char *batch_id, int count_only,
                   int64_t *rows);
int pg_batch_delete(struct store *st, const char *id);
int pg_file_keep(struct store *st, const char *batch_id, const char *spool, const char *data_dir,
                 char **path);
FILE *pg_file_open(struct store *st, const struct batch *b, const char *data_dir);
int pg_file_drop(struct store *st, const char *batch_id, const char *path, const char *data_dir);
int pg_file_sweep(struct store *st, int64_t older_than_ms, const char *data_dir);
int pg_key_pepper(struct store *st, unsigned char out[32]);
int pg_key_add(struct store *st, const struct api_key *k);
int pg_key_get(struct store *st, const char *id, struct api_key *out);
int pg_key_list(struct store *st, struct api_key **out, size_t *n);
int pg_key_revoke(struct store *st, const char *id, int64_t now_ms);
int pg_key_touch(struct store *st, const char *id, int64_t now_ms);
int pg_audit_add(struct store *st, const struct audit_new *e);
int pg_audit_list(struct store *st, const struct audit_filter *f, json_t **out);
int pg_rollup_add(struct store *st, const struct rollup_delta *d);
int pg_rollup_window(struct store *st, int64_t from_ms, struct rollup_sum **out, size_t *n);
int pg_stats_kpis(struct store *st, int64_t now_ms, const char *dataset, json_t **out);
int pg_stats_series(struct store *st, int monthly, int64_t from_ms, const char *dataset,
                    json_t **out);
int pg_stats_errors(struct store *st, int64_t from_ms, const char *dataset, json_t **out);
int pg_rollup_chunks(struct store *st, struct rollup_chunk **out, size_t *n);
int pg_rollup_rebuild(struct store *st, const struct rollup_chunk *c, int64_t minutes_from_ms);
int pg_rollup_purge(struct store *st, int64_t before_ms);
int pg_batch_stuck(struct store *st, int64_t before_ms, json_t **out);
int pg_dlq_new_since(struct store *st, int64_t since_ms, json_t **out);
int pg_batch_states(struct store *st, json_t **out);
int pg_batch_auto_reset(struct store *st, const char *id, int max, int64_t now_ms);
int pg_alert_firing(struct store *st, struct alert **out, size_t *n);
int pg_alert_list(struct store *st, const char *state, int64_t after_id, int desc, int limit,
                  struct alert **out, size_t *n);
int pg_alert_get(struct store *st, int64_t id, struct alert *out, struct alert_history **hist,
                 size_t *nhist);
int pg_alert_put(struct store *st, struct alert *a);
int pg_alert_event(struct store *st, int64_t id, int64_t at_ms, const char *event,
                   const char *detail);
int pg_outbox_add(struct store *st, struct outbox_row *r);
int pg_outbox_due(struct store *st, int64_t now_ms, int limit, struct outbox_row **out, size_t *n);
int pg_outbox_finish(struct store *st, int64_t id, int64_t delivered_ms);
int pg_outbox_retry(struct store *st, int64_t id, int64_t next_ms, const char *error);
int pg_outbox_pending(struct store *st, int64_t alert_id, const char *receiver);
int pg_outbox_stats(struct store *st, int64_t *pending, int64_t *oldest_ms);
/* The scheduler's history (pg_jobs.c); see store.h. */
int pg_job_run_add(struct store *st, const struct job_run_new *r, int64_t *id);
int pg_job_run_start(struct store *st, int64_t id, const char *node, int64_t lease_until_ms,
                     int64_t now_ms);
int pg_job_run_renew(struct store *st, int64_t id, const char *node, int64_t lease_until_ms);
int pg_job_run_finish(struct store *st, int64_t id, const char *node, const char *state,
                      int64_t items, const char *error, int64_t now_ms);
int pg_job_run_cancel(struct store *st, int64_t id, const char *reason, int64_t now_ms);
int pg_job_run_get(struct store *st, int64_t id, struct job_run *out);
int pg_job_runs_list(struct store *st, const struct job_run_filter *f, struct job_run **out,
                     size_t *n);
int pg_job_runs_active(struct store *st, const char *job, struct job_run *out);
int pg_job_last(struct store *st, const char *job, struct job_last *out);
int pg_job_runs_lost(struct store *st, int64_t now_ms, struct job_run **out, size_t *n);
int pg_job_runs_prune(struct store *st, const char *job, int keep_runs, int64_t keep_before_ms,
                      int64_t failed_keep_before_ms, int64_t *deleted);
int pg_job_state_get(struct store *st, const char *job, struct job_state *out);
int pg_job_state_put(struct store *st, const struct job_state *js);
/* Rollups summed per group commit (pg_stats.c): a job's are kept with the group when
 * its savepoint is released, dropped when it is rolled back, written before COMMIT. */
void pg_roll_keep_job(struct pg_store *s);
void pg_roll_drop_job(struct pg_store *s);
void pg_roll_drop_all(struct pg_store *s);
int pg_roll_flush(struct pg_store *s);
/* Take a finished batch's counts out of the rollups (batch_clear and a fresh set_status). */
int pg_rollup_undo_batch(struct pg_store *s, const char *batch_id);

/* Whole tables (pg_dump.c); see store.h. */
int pg_snapshot(struct store *st);
int pg_table_count(struct store *st, const struct table_def *t, int64_t *n);
int pg_table_dump(struct store *st, const struct table_def *t,
                  int (*fn)(void *arg, const struct cell *row), void *arg);
int pg_table_load(struct store *st, const struct table_def *t, const struct cell *row);
int pg_dataset_drop(struct store *st, const char *name);
/* Integrity (pg_check.c); see store.h. */
int pg_integrity(struct store *st, char *verdict, size_t len);

/* The schema migrations (pg_schema.c): statements of version i+1. */
extern const char *const pg_migrations[];
extern const int pg_nmigrations;

#endif
