/*
 * store.h - the only door to the database. Every SQL statement lives in a
 * backend (src/store/sqlite/, src/store/pg/) behind this ops table, chosen
 * by the scheme of the `storage` URI when the store is opened (store.c's table).
 *
 * A struct store is one connection: not shared between threads. The writer
 * thread owns one for all writes; each HTTP loop owns one for reads.
 *
 * Inside a transaction a backend may hold rows back and send them together
 * before its next statement (PostgreSQL's COPY). The failure of such a row is
 * then reported by that statement: at the latest the savepoint release or
 * COMMIT that ends the job, which the caller must check.
 * All functions return 0 on success and -1 on failure (message in
 * store_errmsg()), unless said otherwise.
 */
#ifndef SLUICE_STORE_STORE_H
#define SLUICE_STORE_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "config/config.h"
#include "store/jobs.h"
#include "store/tables.h"

struct store;

/* Where a row came from; all borrowed. */
struct row_meta {
    const char *ingest_id;
    const char *source;
    const char *received_at; /* RFC 3339 UTC */
    const char *batch_id;    /* NULL for pushed events */
};

/* A batch (an uploaded file) and where it is in its state machine. Strings owned
 * (batch_release). */
struct batch {
    char *id, *dataset, *source, *filename, *path, *sha256, *status, *rejection_reason, *worker;
    char *content_type; /* the upload's (the file part's for multipart), NULL when not known */
    int64_t bytes;
    double error_threshold_percent;
    int64_t total, inserted, invalid, duplicate;
    int attempts;
    int64_t created_ms, updated_ms, started_ms, finished_ms, heartbeat_ms, lease_until_ms;
};
void batch_release(struct batch *b);

struct batch_filter {
    const char *status, *dataset, *source, *filename_contains; /* NULL = any */
    int64_t created_after_ms, created_before_ms;               /* 0 = any */
    const char *after_id; /* keyset cursor: the last id shown, NULL = from the start */
    int desc;             /* 1: newest (highest id) first, after_id = ids below it */
    int limit;
};

/* One row error of a batch; borrowed strings. */
struct batch_error_new {
    int64_t row;
    const char *code, *field, *message;
};

enum row_result { ROW_INSERTED = 0, ROW_DUPLICATE, ROW_REPLACED };

/* A new DLQ entry; all borrowed. */
struct dlq_new {
    const char *dataset;
    const char *ingest_id;
    const char *source;
    int64_t row;
    const void *payload;
    size_t payload_len;
    const char *errors_json; /* JSON array [{"field","code","message"}] */
    const char *codes;       /* ",CODE1,CODE2," for filtering */
    const char *batch_id;    /* NULL for pushed events */
    int64_t received_ms;
    int staged; /* a batch's entry in a sliced pass: shown once the batch is published */
};

/* A stored DLQ entry; owns its strings (dlq_entry_release). */
struct dlq_entry {
    int64_t id;
    char *dataset, *ingest_id, *source;
    int64_t row;
    char *payload;
    size_t payload_len;
    char *errors_json;
    int64_t received_ms, updated_ms;
    int attempts;
    char status[12]; /* open | resolved | dropped */
    char *batch_id;  /* the batch the row came from, NULL for events */
};
void dlq_entry_release(struct dlq_entry *e);

struct dlq_filter {
    const char *dataset;    /* NULL = any */
    const char *error_code; /* NULL = any */
    const char *status;     /* NULL = any; else open|resolved|dropped */
    const int64_t *ids;     /* NULL = any; else nids ids */
    size_t nids;
    int64_t received_after_ms, received_before_ms; /* 0 = any */
    int64_t after_id; /* keyset: ids > after_id (desc: ids < after_id); 0 = from the start */
    int desc;         /* 1: newest (highest id) first */
    int limit;
};

/* The idempotency record of one (dataset, key). */
struct idem_record {
    char sha256[65];
    int status;
    int64_t created_ms;
    char *response; /* owned */
};

/* An API key's record (never the key itself). Strings owned (api_key_release). */
struct api_key {
    char id[24];
    char *name;
    char role[16];
    char prefix[16];
    unsigned char hash[32];
    int64_t created_ms, expires_ms, last_used_ms, revoked_ms; /* 0: none */
};
void api_key_release(struct api_key *k);

/* One audit record; borrowed strings. */
struct audit_new {
    int64_t at_ms;
    const char *actor, *role, *method, *path, *remote, *request_id;
    int status;
};
struct audit_filter {
    const char *actor, *method; /* NULL = any */
    int status;                 /* 0 = any */
    int64_t since_ms, until_ms; /* 0 = any: at_ms >= since_ms, at_ms < until_ms */
    int64_t after_id;           /* keyset as dlq_filter's; 0 = from the start */
    int desc;                   /* 1: newest first */
    int limit;
};

/* What one ingest request or one batch added, for the rollups (same transaction). The
 * counts follow docs/api.md ("What the counts mean"). Each delta is also kept as one row of
 * the rollup ledger (rollup_ledger), which `sluice rollups rebuild` sums again. */
struct rollup_code {
    const char *code;   /* "OUT_OF_RANGE" */
    int64_t count;      /* occurrences (every error of every row) */
    const char *sample; /* one message, may be NULL */
    int64_t batches;    /* batches it was seen in (the store fills it from the delta) */
    int64_t at_ms;      /* the latest time it was seen (the store fills it; 0: the delta's) */
};
struct rollup_delta {
    const char *dataset;
    int64_t at_ms;
    int64_t received, accepted, rejected, duplicate;
    int batches, batches_failed; /* 1/0 for a batch, 0 for events */
    const struct rollup_code *codes;
    size_t ncodes;
    const char *batch_id; /* the batch counted (a reset takes it out again); NULL for events */
    int64_t error_ms;     /* the latest time with rejected rows (the store fills it) */
};

/* One piece of a rollups rebuild: the buckets of one dataset and one hour (and its day,
 * summed again from the day's hours). */
struct rollup_chunk {
    char dataset[72];
    int64_t hour; /* hours since the epoch; -1: none, only the dataset's last activity */
    int last;     /* the dataset's last chunk: its last activity is recomputed with it */
};

/* Sums over a time range, per dataset (sentinel windows, KPIs). */
struct rollup_sum {
    char dataset[72];
    int64_t received, accepted, rejected, duplicate, batches, batches_failed;
    int64_t last_received_ms, last_error_ms;
};

/* An alert: one finding (rule + labels) through its life. Strings owned (alert_release). */
struct alert {
    int64_t id; /* 0: new */
    char *fingerprint, *rule, *severity, *labels_json, *summary, *details_json, *state;
    int64_t started_ms, updated_ms, resolved_ms, last_notified_ms;
    int notifications;
};
void alert_release(struct alert *a);

/* One event of an alert's history (table alert_events). Strings owned
 * (alert_history_free). */
struct alert_history {
    int64_t at_ms;
    char *event;
    char *detail; /* NULL: none */
};
void alert_history_free(struct alert_history *h, size_t n); /* the array too; accepts NULL */

/* One notification waiting in the outbox (table alert_outbox) for its receiver's 2xx: an
 * alert's event (firing, renotified, resolved) for one receiver, with the body to send.
 * Strings owned (outbox_release). */
struct outbox_row {
    int64_t id, alert_id;
    char *receiver, *event, *body, *last_error;
    int attempts;
    int64_t created_ms, next_ms;
};
void outbox_release(struct outbox_row *r);

#define STORE_COMMIT_UNKNOWN (-2)

struct store_wal;

struct store_ops {
    /* The storage URIs this backend takes, by their beginnings ("sqlite:"; "postgres://",
     * "postgresql://"), NULL-terminated: store_open looks them up in its table. */
    const char *const *prefixes;
    /* 1: open gets the whole URI (libpq parses the URL); 0: what follows the prefix (a
     * path). The wal_stats argument is the same. */
    int whole_uri;
    /* 1: a batch file opened with file_open reads through the connection it was opened on
     * (PostgreSQL's chunks), so a reader that outlives one call (a download streamed over
     * many loop turns) opens a connection of its own; 0: the file is a file (SQLite). */
    int files_read_through_conn;
    /* 1: another connection may write while the writer's transaction is open, and what it
     * writes stays unseen until its own COMMIT (PostgreSQL's MVCC), so a long job can run on
     * a writer of its own without holding up the others; 0: one writer at a time (SQLite). */
    int concurrent_writers;
    /* 1: a batch may be stored in slices, each its own short transaction among the others',
     * and become visible at once: batch_hide, batch_rows_drop and batch_publish below, and
     * dlq_new.staged (SQLite: ds_<name> is a view that hides the batches in batch_pending);
     * 0: a pass is one transaction (PostgreSQL: its MVCC hides it until its COMMIT). */
    int sliced_passes;
    struct store *(*open)(const char *uri, int readonly, char *err, size_t errlen);
    /* The WAL and its checkpoints (store_wal_stats); NULL: the backend has none. */
    void (*wal_stats)(const char *uri, struct store_wal *out);
    void (*close)(struct store *st);
    const char *(*errmsg)(struct store *st);
    /* Asked right after a failure: 1 when it was the connection's, not the statement's (the
     * session ended under it: PostgreSQL killed it, a pooler restarted, the server went
     * away), so the same work may succeed on a new connection. 0 otherwise, and always for
     * SQLite. */
    int (*conn_lost)(struct store *st);
    /* Asked right after a failure, like conn_lost: 1 when it was the store's, not the
     * statement's or the data's: the store cannot write now (disk full, an I/O error,
     * read-only, corrupt, out of memory, locked, the connection or the server going away),
     * so other writes would fail as well. 0 for a constraint, a bad value, a key conflict or
     * an SQL error (the row's or the caller's problem), and when nothing failed since the
     * last begin or savepoint (both forget the class). The writer counts a job that failed
     * on a store fault as a failed commit (writer.h). SQLite: SQLITE_FULL, _IOERR*,
     * _READONLY*, _CORRUPT*, _NOTADB, _NOMEM, _CANTOPEN*, _PROTOCOL, _BUSY*, _LOCKED*.
     * PostgreSQL: SQLSTATE classes 08, 53, 58 and XX, 25006, 57P01-57P05, and no SQLSTATE
     * with the connection bad. */
    int (*fault)(struct store *st);
    /* Optional (NULL where one transaction never waits for another's rows: SQLite).
     * lock_wait: from now on (this connection, reconnects included) a statement that waits
     * longer than ms for a lock another transaction holds fails instead (ms 0: it waits as
     * long as it takes). busy, asked right after a failure: 1 when it was such a wait (a
     * key an open batch pass has stored: PostgreSQL's SQLSTATE 55P03; SQLite: a key a batch
     * in slices holds, sqlite.c) or a deadlock the database broke (40P01, 40001): not a
     * fault, the same work succeeds once the other transaction ends. */
    int (*lock_wait)(struct store *st, int ms);
    int (*busy)(struct store *st);
    int (*migrate)(struct store *st);
    /* The schema version the store is at (*have: 0 when never migrated) and the one this
     * binary migrates it to (*want). 0, or -1 (no sluice tables at all: errmsg says). */
    int (*schema_version)(struct store *st, int *have, int *want);
    /* 0 when the store answers; a backend with a connection opens it again first when it
     * was lost (so a failing ping is also the retry). */
    int (*ping)(struct store *st);

    int (*dataset_sync)(struct store *st, const struct dataset_config *ds, char *why,
                        size_t whylen);
    int (*dataset_check)(struct store *st, const struct dataset_config *ds, char *why,
                         size_t whylen);

    int (*begin)(struct store *st);
    /* 0: durable. -1: not committed (the caller rolls back). STORE_COMMIT_UNKNOWN: the
     * connection was lost while the COMMIT was under way, so it may have been applied or not
     * (PostgreSQL); nothing to roll back. */
    int (*commit)(struct store *st);
    int (*rollback)(struct store *st);
    int (*savepoint)(struct store *st);
    int (*savepoint_release)(struct store *st);
    int (*savepoint_rollback)(struct store *st);

    /* Store a row given as values (n = the schema's fields; store_row_put converts a JSON
     * row to them); extra_json may be NULL. */
    int (*row_put_values)(struct store *st, const struct dataset_config *ds,
                          const struct row_meta *m, const struct row_value *v,
                          const char *extra_json, enum row_result *res);
    int64_t (*row_count)(struct store *st, const char *dataset);
    /* Record that work done for this store outside the backend (store_row_put's values)
     * ran out of memory, as errmsg's message; returns -1. */
    int (*nomem)(struct store *st);

    int (*dlq_add)(struct store *st, const struct dlq_new *e, int64_t *id);
    int (*dlq_get)(struct store *st, int64_t id, struct dlq_entry *out); /* 1 = not found */
    int (*dlq_list)(struct store *st, const struct dlq_filter *f, struct dlq_entry **out,
                    size_t *n);
    /* How many entries f matches (its order, cursor and limit aside: every page). */
    int (*dlq_count)(struct store *st, const struct dlq_filter *f, int64_t *n);
    int (*dlq_set)(struct store *st, int64_t id, const char *status, int attempts,
                   const char *errors_json, const char *codes, int64_t now_ms);
    int (*dlq_depth)(struct store *st, json_t **by_dataset); /* {"ds": n, ...} */

    int (*idem_get)(struct store *st, const char *dataset, const char *key,
                    struct idem_record *out); /* 1 = not found */
    /* Record key's answer, made at now_ms. A record of the key made at or after
     * live_after_ms is left as it is and 1 returned: another transaction stored it since
     * the caller's idem_get (on PostgreSQL the INSERT waits for that transaction to end),
     * and the caller must undo its work and look again (writer.h: WJOB_AGAIN). An older
     * record (expired) is replaced. 0 recorded, -1 error. */
    int (*idem_put)(struct store *st, const char *dataset, const char *key, const char *sha256,
                    int status, const char *response, int64_t now_ms, int64_t live_after_ms);
    int (*idem_purge)(struct store *st, int64_t older_than_ms);

    int (*batch_add)(struct store *st, const struct batch *b);
    int (*batch_get)(struct store *st, const char *id, struct batch *out); /* 1 = not found */
    int (*batch_list)(struct store *st, const struct batch_filter *f, struct batch **out,
                      size_t *n);
    /* Take the oldest batch that is uploaded, or whose lease expired (or that this same
     * worker held before a restart), for worker: it becomes `staging`, attempts + 1. */
    int (*batch_claim)(struct store *st, const char *worker, int64_t now_ms, int64_t lease_ms,
                       struct batch *out); /* 1 = none */
    /* Record a transition (and its time in the history); reason may be NULL. */
    int (*batch_set_status)(struct store *st, const char *id, const char *status,
                            const char *reason, int64_t now_ms);
    /* Renew worker's lease of batch id: 0, or 1 when worker does not hold it (any more). */
    int (*batch_heartbeat)(struct store *st, const char *id, const char *worker, int64_t now_ms,
                           int64_t lease_ms);
    int (*batch_set_counts)(struct store *st, const struct batch *b);
    int (*batch_set_threshold)(struct store *st, const char *id, double pct, int64_t now_ms);
    int (*batch_history)(struct store *st, const char *id, json_t **out); /* [{status,at,detail}] */
    int (*batch_errors_add)(struct store *st, const char *batch_id, const struct batch_error_new *e,
                            size_t n, int64_t now_ms);
    /* Row errors in row order after the cursor (after_row, after_seq) (0, 0 = from the
     * start), at most limit, as JSON objects {row_number, error_code, field,
     * error_message, created_ms, seq}; the last one's (row_number, seq) is the next cursor. */
    int (*batch_errors_list)(struct store *st, const char *batch_id, int64_t after_row,
                             int64_t after_seq, int limit, json_t **out);
    /* Remove what a batch stored: its rows in ds, its row errors, its DLQ entries; *rows
     * (may be NULL) gets how many rows. count_only: remove nothing, only count. */
    int (*batch_clear)(struct store *st, const char *dataset, const char *batch_id, int count_only,
                       int64_t *rows);
    int (*batch_delete)(struct store *st, const char *id); /* the record and its history */
    /* Sliced passes (sliced_passes; NULL where 0). batch_hide: from its commit on, no reader
     * of the dataset sees a row of the batch, whatever is stored for it meanwhile (the rows
     * it had included) until batch_publish, which shows them all in one step whose cost is
     * its DLQ entries', not its rows', and puts the entries added with .staged in the DLQ
     * (dlq = 1) or drops them (0: a batch that failed stores none).
     * batch_rows_drop: remove at most limit of the batch's rows; *rows gets how many (a
     * backend that kept, for readers, rows the batch replaced puts them back first, and
     * counts them). batch_saved_drop, after batch_publish: remove at most limit of what the
     * backend kept to show readers while the batch was hidden (SQLite: the versions of rows
     * an upsert batch updated in place); *rows gets how many, 0 when nothing is left. */
    int (*batch_hide)(struct store *st, const char *batch_id);
    int (*batch_rows_drop)(struct store *st, const char *dataset, const char *batch_id,
                           int64_t limit, int64_t *rows);
    int (*batch_publish)(struct store *st, const char *batch_id, int dlq);
    int (*batch_saved_drop)(struct store *st, const char *dataset, const char *batch_id,
                            int64_t limit, int64_t *rows);

    /* Batch files. Where a batch's raw file is kept is the store's business: SQLite keeps
     * it under data_dir/batches (the batch's `path` names it); PostgreSQL keeps it in the
     * database in chunks (`path` is NULL), so that nodes share nothing but the database.
     *
     * file_keep: make spool (a complete file, closed, not necessarily fsynced: the store
     * makes what it keeps durable) batch_id's file, durably, BEFORE the batch record is
     * added. Runs in its own transaction (never inside
     * begin/commit); spool is gone afterwards. *path gets what to record as the batch's
     * path (malloc'd, or NULL). data_dir is sluice's data directory; spool must be in
     * data_dir/batches (SQLite renames it; PostgreSQL keeps it there as this node's copy,
     * see file_open, and keeps none when data_dir is NULL). On failure nothing is kept and
     * spool is left to the caller. */
    int (*file_keep)(struct store *st, const char *batch_id, const char *spool,
                     const char *data_dir, char **path);
    /* Batch b's file, open for reading from its first byte (the caller fcloses it, and
     * must not use st for anything else while a read is under way). Memory is bounded
     * (PostgreSQL holds one chunk at a time). NULL: errmsg says. After a successful open
     * errmsg is empty until a read fails: a read error sets errno, and errmsg when the
     * store knows more (PostgreSQL: EIO, and the server's message). data_dir (may be
     * NULL: read the store's own copy only) is this node's data directory: PostgreSQL
     * reads the copy the node that received the upload keeps there, when its sha256 is
     * the record's, instead of the database's (pg_files.c). */
    FILE *(*file_open)(struct store *st, const struct batch *b, const char *data_dir);
    /* Remove a batch's file (its record is deleted, or was never added), in a transaction
     * of its own (never inside begin/commit). path as recorded (may be NULL). A file
     * already gone is not an error. data_dir (may be NULL): this node's, whose copy of
     * the file goes too. */
    int (*file_drop)(struct store *st, const char *batch_id, const char *path,
                     const char *data_dir);
    /* Remove the files kept before older_than_ms that no batch record names: a crash
     * between file_keep and batch_add leaves such a file. Its own transaction, like
     * file_keep. Returns how many files it removed, or -1. */
    int (*file_sweep)(struct store *st, int64_t older_than_ms, const char *data_dir);

    /* The pepper API keys are hashed with (32 bytes, made once with the store). */
    int (*key_pepper)(struct store *st, unsigned char out[32]);
    int (*key_add)(struct store *st, const struct api_key *k);
    int (*key_get)(struct store *st, const char *id, struct api_key *out); /* 1 = not found */
    int (*key_list)(struct store *st, struct api_key **out, size_t *n);    /* newest first */
    int (*key_revoke)(struct store *st, const char *id, int64_t now_ms);   /* 1 = not found */
    int (*key_touch)(struct store *st, const char *id, int64_t now_ms);    /* last used */
    int (*audit_add)(struct store *st, const struct audit_new *e);
    /* Records after f->after_id in f's order, as JSON objects. */
    int (*audit_list)(struct store *st, const struct audit_filter *f, json_t **out);

    /* Rollups, kept in the same transaction as the rows they count. */
    int (*rollup_add)(struct store *st, const struct rollup_delta *d);
    /* Per dataset, rows in [from_ms, now] (minute resolution), plus each dataset's last
     * received and last error time. *out is malloc'd, *n entries. */
    int (*rollup_window)(struct store *st, int64_t from_ms, struct rollup_sum **out, size_t *n);
    /* The KPI / stats / error views as JSON (see docs/api.md). */
    int (*stats_kpis)(struct store *st, int64_t now_ms, const char *dataset, json_t **out);
    int (*stats_series)(struct store *st, int monthly, int64_t from_ms, const char *dataset,
                        json_t **out);
    int (*stats_errors)(struct store *st, int64_t from_ms, const char *dataset, json_t **out);
    /* The pieces a rebuild works through: every (dataset, hour) that the ledger or any
     * rollup has, ordered by dataset and hour, `last` set on each dataset's last one. *out
     * is malloc'd, *n entries. */
    int (*rollup_chunks)(struct store *st, struct rollup_chunk **out, size_t *n);
    /* Recompute the rollups of chunk c from the ledger (minute buckets only from
     * minutes_from_ms on; older ones are the purge's), and the dataset's last activity, in
     * the caller's transaction. */
    int (*rollup_rebuild)(struct store *st, const struct rollup_chunk *c, int64_t minutes_from_ms);
    /* Remove the minute rollups of minutes that began before before_ms (only the recent
     * windows read them; the hour and day rollups stay). */
    int (*rollup_purge)(struct store *st, int64_t before_ms);
    /* Batches in a non-terminal state whose last progress is before before_ms. */
    int (*batch_stuck)(struct store *st, int64_t before_ms, json_t **out);
    /* Open DLQ entries received since since_ms, per dataset: {"ds": n}. */
    int (*dlq_new_since)(struct store *st, int64_t since_ms, json_t **out);
    /* Batches by state: {"uploaded": n, ...}. */
    int (*batch_states)(struct store *st, json_t **out);
    /* Send a stuck batch back to `uploaded` unless the sentinel did so max times already.
     * 1 = reset, 0 = limit reached, -1 = error. */
    int (*batch_auto_reset)(struct store *st, const char *id, int max, int64_t now_ms);

    /* Alerts: the firing ones (all), a page of them by state (NULL = any), one with its
     * history, insert (a->id == 0; sets it) or update, and a history event. */
    int (*alert_firing)(struct store *st, struct alert **out, size_t *n);
    /* Alerts in state (NULL = any), keyset as dlq_filter's: *out gets *n of them (caller
     * releases each and frees the array; ops/alert_json.c makes the API's JSON). */
    int (*alert_list)(struct store *st, const char *state, int64_t after_id, int desc, int limit,
                      struct alert **out, size_t *n);
    /* Alert id in *out (alert_release) and its history in event order in *hist, *nhist of
     * them (alert_history_free). 1 = not found. */
    int (*alert_get)(struct store *st, int64_t id, struct alert *out, struct alert_history **hist,
                     size_t *nhist);
    int (*alert_put)(struct store *st, struct alert *a);
    int (*alert_event)(struct store *st, int64_t id, int64_t at_ms, const char *event,
                       const char *detail);
    /* The alert outbox (at-least-once delivery, see alerts.h). add: a row, in the caller's
     * transaction (r->id, attempts, next_ms set by the caller; id assigned). due: up to
     * limit rows whose next_ms <= now_ms and that are the oldest row left for their
     * (alert, receiver), so a receiver gets an alert's events in order; id order. finish:
     * the row is done: delete it and, when delivered_ms != 0, count it on its alert
     * (notifications + 1, last_notified_ms). retry: attempts + 1, the next try and why.
     * pending: 1 when (alert_id, receiver) has a row left, else 0. stats: rows left and
     * the oldest one's created_ms (0 = none). */
    int (*outbox_add)(struct store *st, struct outbox_row *r);
    int (*outbox_due)(struct store *st, int64_t now_ms, int limit, struct outbox_row **out,
                      size_t *n);
    int (*outbox_finish)(struct store *st, int64_t id, int64_t delivered_ms);
    int (*outbox_retry)(struct store *st, int64_t id, int64_t next_ms, const char *error);
    int (*outbox_pending)(struct store *st, int64_t alert_id, const char *receiver);
    int (*outbox_stats)(struct store *st, int64_t *pending, int64_t *oldest_ms);

    /* The scheduler's history (structs in jobs.h, which says who calls them).
     * run_add: a queued or skipped run, *id its id; 1 (and the existing run's id) when the
     * job has a run of that (scheduled_ms, attempt) or that idem_key already: another node
     * or an earlier request made it. run_start: queued -> running on node (started_ms =
     * now_ms); 1 when it was not queued (taken, canceled). run_renew: the lease of a run
     * running on node; 1 when it is not (any more): the runner must stop (fencing); 2 when
     * renewed but a cancel was asked (the runner stops and finishes it canceled).
     * run_finish: running on node -> state (succeeded | failed | canceled), items (-1:
     * none) and error (NULL: none) recorded, ended_ms = now_ms; 1 when it was not running
     * on node. run_cancel: queued -> canceled (reason, ended_ms = now_ms): 0; running ->
     * cancel_requested (and reason), seen by the runner's next renew: 2; 1 when the run
     * has ended already; 3 when there is no such run. */
    int (*job_run_add)(struct store *st, const struct job_run_new *r, int64_t *id);
    int (*job_run_start)(struct store *st, int64_t id, const char *node, int64_t lease_until_ms,
                         int64_t now_ms);
    int (*job_run_renew)(struct store *st, int64_t id, const char *node, int64_t lease_until_ms);
    int (*job_run_finish)(struct store *st, int64_t id, const char *node, const char *state,
                          int64_t items, const char *error, int64_t now_ms);
    int (*job_run_cancel)(struct store *st, int64_t id, const char *reason, int64_t now_ms);
    /* run_get: 1 = not found. runs_list: f's page in *out, *n of them (job_runs_free).
     * runs_active: the job's queued or running run (the newest if several), 1 = none.
     * last: 1 when the job has no run (out zeroed), else what jobs.h's job_last says
     * (job_run_release(&out->last)). */
    int (*job_run_get)(struct store *st, int64_t id, struct job_run *out);
    int (*job_runs_list)(struct store *st, const struct job_run_filter *f, struct job_run **out,
                         size_t *n);
    int (*job_runs_active)(struct store *st, const char *job, struct job_run *out);
    int (*job_last)(struct store *st, const char *job, struct job_last *out);
    /* Every running run whose lease ended before now_ms becomes failed, reason "node lost",
     * ended_ms = now_ms, in one statement; the runs it ended (as they are now) in *out, *n
     * of them (job_runs_free), so the scheduler can retry them: each is returned once. */
    int (*job_runs_lost)(struct store *st, int64_t now_ms, struct job_run **out, size_t *n);
    /* Delete job's ended runs that are beyond its newest keep_runs runs AND ended before
     * keep_before_ms, failed runs before failed_keep_before_ms instead (kept longer). 0
     * turns a bound off: keep_runs 0, the age alone decides; keep_before_ms 0, the count
     * alone (failed runs still kept until failed_keep_before_ms when it is not 0);
     * failed_keep_before_ms 0, failed runs go by keep_before_ms; keep_runs and
     * keep_before_ms both 0 delete nothing. Never a queued or running run. *deleted (may
     * be NULL) gets how many. */
    int (*job_runs_prune)(struct store *st, const char *job, int keep_runs, int64_t keep_before_ms,
                          int64_t failed_keep_before_ms, int64_t *deleted);
    /* job_state_get: 1 = none (out zeroed); job_state_put: insert or replace the job's row. */
    int (*job_state_get)(struct store *st, const char *job, struct job_state *out);
    int (*job_state_put)(struct store *st, const struct job_state *s);

    /* Work that must run on one node at a time (the sentinel): 1 when this connection holds
     * the role `name` (taken now or held already), 0 when another node holds it, -1 on
     * error. Held until the connection closes, so a node that dies frees it. */
    int (*singleton)(struct store *st, const char *name);
    /* Wait up to timeout_ms for news of a batch to process from any node: 1 = some came,
     * 0 = none, -1 = this backend cannot tell (workers then poll). Uses its own connection. */
    int (*wait_work)(struct store *st, int timeout_ms);

    /* Whole tables, as tables.h describes them (for `sluice migrate`; tables.h says why).
     * snapshot: a read-only transaction, so that every count and dump until
     * store_rollback sees the store at one moment. */
    int (*snapshot)(struct store *st);
    int (*table_count)(struct store *st, const struct table_def *t, int64_t *n);
    /* Every row of t in key order (text keys in byte order), as t->ncols cells in t's
     * column order and types, to fn (cells borrowed for the call). A stored value of
     * another type is an error naming table and column. fn returning non-zero stops the
     * dump, which then returns that value. */
    int (*table_dump)(struct store *st, const struct table_def *t,
                      int (*fn)(void *arg, const struct cell *row), void *arg);
    /* Add rows to t inside the caller's transaction, one table at a time: the first call
     * for a table empties it; row NULL ends the table (also after a failure elsewhere,
     * before the rollback). Ids keep their values and the table's sequence is moved past
     * them. Dataset tables come after `datasets` (dataset_sync made them) and before
     * `batches`, whose end also records where each batch's rows are. */
    int (*table_load)(struct store *st, const struct table_def *t, const struct cell *row);
    /* Drop dataset name's table and its record (inside the caller's transaction). */
    int (*dataset_drop)(struct store *st, const char *name);

    /* Check the store's integrity as far as the backend can (for `sluice doctor`), without
     * writing: SQLite runs PRAGMA quick_check; PostgreSQL asks its catalog (every table
     * present, every index valid, amcheck's bt_index_check when installed). verdict always
     * gets a line: 0, what was checked ("quick_check ok"); 1, the damage found
     * ("quick_check: <its first complaint>"); -1, why it could not check (errmsg too). */
    int (*integrity)(struct store *st, char *verdict, size_t len);
};

/* The base every backend's handle starts with. */
struct store {
    const struct store_ops *ops;
};

/*
 * Open the store named by uri ("sqlite:PATH", "postgres://..." or "postgresql://...").
 * readonly handles are for the HTTP loops' reads. Returns NULL with a message in err.
 */
struct store *store_open(const char *uri, int readonly, char *err, size_t errlen);
void store_close(struct store *st); /* accepts NULL */

/* Process-wide: fn(seconds) is called by the backends after each statement run on a
 * readonly handle (any thread; fn must be thread-safe). Set once at start-up, before the
 * first open; NULL (the default) turns it off. */
void store_set_query_observer(void (*fn)(double seconds));
void store_observe_query(double seconds); /* for the backends */

/* The SQLite WAL and its checkpoints (process-wide, sqlite/sqlite_ckpt.c), for health and
 * metrics, asked of the backend uri names (its wal_stats). On another backend known is 0
 * and nothing else is set. */
struct store_wal {
    int known;
    int64_t bytes, limit_bytes;     /* the -wal file now; journal_size_limit */
    unsigned long long checkpoints; /* checkpoints run */
    unsigned long long checkpoint_failures;
    unsigned consecutive_failures; /* since the last checkpoint that succeeded */
    int64_t last_failure_ms;       /* wall clock, 0 = never */
    char last_error[256];
};
void store_wal_stats(const char *uri, struct store_wal *out);

/* Store a validated JSON row (extra: the fields the schema does not name, NULL for none):
 * its values (schema/values.h) through row_put_values, same contract. */
int store_row_put(struct store *st, const struct dataset_config *ds, const struct row_meta *m,
                  json_t *row, json_t *extra, enum row_result *res);

/* Thin dispatchers, so callers read as store_dlq_get(st, ...). */
#define store_errmsg(st) ((st)->ops->errmsg(st))
#define store_conn_lost(st) ((st)->ops->conn_lost(st))
#define store_fault(st) ((st)->ops->fault(st))
#define store_lock_wait(st, ms) ((st)->ops->lock_wait ? (st)->ops->lock_wait((st), (ms)) : 0)
#define store_busy(st) ((st)->ops->busy ? (st)->ops->busy(st) : 0)
#define store_schema_version(st, have, want) ((st)->ops->schema_version((st), (have), (want)))
#define store_migrate(st) ((st)->ops->migrate(st))
#define store_ping(st) ((st)->ops->ping(st))
#define store_dataset_sync(st, ds, w, n) ((st)->ops->dataset_sync((st), (ds), (w), (n)))
#define store_dataset_check(st, ds, w, n) ((st)->ops->dataset_check((st), (ds), (w), (n)))
/* For the backends' dataset_check: the verdict on the schema and key stored with dataset
 * ds's table (found: a row exists; old: it compiled, NULL if not; oldkey: its key, NULL for
 * none), the same on every backend: 0, or -1 with the reason in why (a schema change that
 * would break stored rows, a changed key, a stored schema that cannot be read). Takes old
 * and oldkey (frees them). */
int store_dataset_verdict(const struct dataset_config *ds, int found, struct schema *old,
                          char *oldkey, char *why, size_t whylen);
#define store_begin(st) ((st)->ops->begin(st))
#define store_commit(st) ((st)->ops->commit(st))
#define store_rollback(st) ((st)->ops->rollback(st))
#define store_savepoint(st) ((st)->ops->savepoint(st))
#define store_savepoint_release(st) ((st)->ops->savepoint_release(st))
#define store_savepoint_rollback(st) ((st)->ops->savepoint_rollback(st))
#define store_row_put_values(st, ds, m, v, x, res)                                                 \
    ((st)->ops->row_put_values((st), (ds), (m), (v), (x), (res)))
#define store_row_count(st, ds) ((st)->ops->row_count((st), (ds)))
#define store_dlq_add(st, e, id) ((st)->ops->dlq_add((st), (e), (id)))
#define store_dlq_get(st, id, out) ((st)->ops->dlq_get((st), (id), (out)))
#define store_dlq_list(st, f, out, n) ((st)->ops->dlq_list((st), (f), (out), (n)))
#define store_dlq_count(st, f, n) ((st)->ops->dlq_count((st), (f), (n)))
#define store_dlq_set(st, id, s, a, e, c, now)                                                     \
    ((st)->ops->dlq_set((st), (id), (s), (a), (e), (c), (now)))
#define store_dlq_depth(st, out) ((st)->ops->dlq_depth((st), (out)))
#define store_idem_get(st, ds, k, out) ((st)->ops->idem_get((st), (ds), (k), (out)))
#define store_idem_put(st, ds, k, sha, s, r, now, live)                                            \
    ((st)->ops->idem_put((st), (ds), (k), (sha), (s), (r), (now), (live)))
#define store_idem_purge(st, t) ((st)->ops->idem_purge((st), (t)))
#define store_batch_add(st, b) ((st)->ops->batch_add((st), (b)))
#define store_batch_get(st, id, out) ((st)->ops->batch_get((st), (id), (out)))
#define store_batch_list(st, f, out, n) ((st)->ops->batch_list((st), (f), (out), (n)))
#define store_batch_claim(st, w, now, lease, out)                                                  \
    ((st)->ops->batch_claim((st), (w), (now), (lease), (out)))
#define store_batch_set_status(st, id, s, r, now)                                                  \
    ((st)->ops->batch_set_status((st), (id), (s), (r), (now)))
#define store_batch_heartbeat(st, id, w, now, lease)                                               \
    ((st)->ops->batch_heartbeat((st), (id), (w), (now), (lease)))
#define store_batch_set_counts(st, b) ((st)->ops->batch_set_counts((st), (b)))
#define store_batch_set_threshold(st, id, p, now)                                                  \
    ((st)->ops->batch_set_threshold((st), (id), (p), (now)))
#define store_batch_history(st, id, out) ((st)->ops->batch_history((st), (id), (out)))
#define store_batch_errors_add(st, id, e, n, now)                                                  \
    ((st)->ops->batch_errors_add((st), (id), (e), (n), (now)))
#define store_batch_errors_list(st, id, row, seq, lim, out)                                        \
    ((st)->ops->batch_errors_list((st), (id), (row), (seq), (lim), (out)))
#define store_key_pepper(st, out) ((st)->ops->key_pepper((st), (out)))
#define store_key_add(st, k) ((st)->ops->key_add((st), (k)))
#define store_key_get(st, id, out) ((st)->ops->key_get((st), (id), (out)))
#define store_key_list(st, out, n) ((st)->ops->key_list((st), (out), (n)))
#define store_key_revoke(st, id, now) ((st)->ops->key_revoke((st), (id), (now)))
#define store_key_touch(st, id, now) ((st)->ops->key_touch((st), (id), (now)))
#define store_audit_add(st, e) ((st)->ops->audit_add((st), (e)))
#define store_audit_list(st, f, out) ((st)->ops->audit_list((st), (f), (out)))
#define store_rollup_add(st, d) ((st)->ops->rollup_add((st), (d)))
#define store_rollup_window(st, from, out, n) ((st)->ops->rollup_window((st), (from), (out), (n)))
#define store_stats_kpis(st, now, ds, out) ((st)->ops->stats_kpis((st), (now), (ds), (out)))
#define store_stats_series(st, m, from, ds, out)                                                   \
    ((st)->ops->stats_series((st), (m), (from), (ds), (out)))
#define store_stats_errors(st, from, ds, out) ((st)->ops->stats_errors((st), (from), (ds), (out)))
#define store_rollup_chunks(st, out, n) ((st)->ops->rollup_chunks((st), (out), (n)))
#define store_rollup_rebuild(st, c, from) ((st)->ops->rollup_rebuild((st), (c), (from)))
#define store_rollup_purge(st, before) ((st)->ops->rollup_purge((st), (before)))
#define store_batch_stuck(st, before, out) ((st)->ops->batch_stuck((st), (before), (out)))
#define store_dlq_new_since(st, since, out) ((st)->ops->dlq_new_since((st), (since), (out)))
#define store_batch_states(st, out) ((st)->ops->batch_states((st), (out)))
#define store_batch_auto_reset(st, id, max, now)                                                   \
    ((st)->ops->batch_auto_reset((st), (id), (max), (now)))
#define store_alert_firing(st, out, n) ((st)->ops->alert_firing((st), (out), (n)))
#define store_alert_list(st, state, after, desc, lim, out, n)                                      \
    ((st)->ops->alert_list((st), (state), (after), (desc), (lim), (out), (n)))
#define store_alert_get(st, id, out, hist, nhist)                                                  \
    ((st)->ops->alert_get((st), (id), (out), (hist), (nhist)))
#define store_alert_put(st, a) ((st)->ops->alert_put((st), (a)))
#define store_alert_event(st, id, at, ev, d) ((st)->ops->alert_event((st), (id), (at), (ev), (d)))
#define store_outbox_add(st, r) ((st)->ops->outbox_add((st), (r)))
#define store_outbox_due(st, now, lim, out, n)                                                     \
    ((st)->ops->outbox_due((st), (now), (lim), (out), (n)))
#define store_outbox_finish(st, id, at) ((st)->ops->outbox_finish((st), (id), (at)))
#define store_outbox_retry(st, id, next, e) ((st)->ops->outbox_retry((st), (id), (next), (e)))
#define store_outbox_pending(st, a, r) ((st)->ops->outbox_pending((st), (a), (r)))
#define store_outbox_stats(st, n, oldest) ((st)->ops->outbox_stats((st), (n), (oldest)))
#define store_job_run_add(st, r, id) ((st)->ops->job_run_add((st), (r), (id)))
#define store_job_run_start(st, id, node, lease, now)                                              \
    ((st)->ops->job_run_start((st), (id), (node), (lease), (now)))
#define store_job_run_renew(st, id, node, lease)                                                   \
    ((st)->ops->job_run_renew((st), (id), (node), (lease)))
#define store_job_run_finish(st, id, node, state, items, e, now)                                   \
    ((st)->ops->job_run_finish((st), (id), (node), (state), (items), (e), (now)))
#define store_job_run_cancel(st, id, why, now) ((st)->ops->job_run_cancel((st), (id), (why), (now)))
#define store_job_run_get(st, id, out) ((st)->ops->job_run_get((st), (id), (out)))
#define store_job_runs_list(st, f, out, n) ((st)->ops->job_runs_list((st), (f), (out), (n)))
#define store_job_runs_active(st, job, out) ((st)->ops->job_runs_active((st), (job), (out)))
#define store_job_last(st, job, out) ((st)->ops->job_last((st), (job), (out)))
#define store_job_runs_lost(st, now, out, n) ((st)->ops->job_runs_lost((st), (now), (out), (n)))
#define store_job_runs_prune(st, job, keep, before, fbefore, del)                                  \
    ((st)->ops->job_runs_prune((st), (job), (keep), (before), (fbefore), (del)))
#define store_job_state_get(st, job, out) ((st)->ops->job_state_get((st), (job), (out)))
#define store_job_state_put(st, s) ((st)->ops->job_state_put((st), (s)))
#define store_singleton(st, name) ((st)->ops->singleton((st), (name)))
#define store_wait_work(st, ms) ((st)->ops->wait_work((st), (ms)))
#define store_batch_clear(st, ds, id, c, rows)                                                     \
    ((st)->ops->batch_clear((st), (ds), (id), (c), (rows)))
#define store_batch_delete(st, id) ((st)->ops->batch_delete((st), (id)))
#define store_file_keep(st, id, spool, dir, path)                                                  \
    ((st)->ops->file_keep((st), (id), (spool), (dir), (path)))
#define store_file_open(st, b, dir) ((st)->ops->file_open((st), (b), (dir)))
#define store_files_read_through_conn(st) ((st)->ops->files_read_through_conn)
#define store_concurrent_writers(st) ((st)->ops->concurrent_writers)
#define store_sliced_passes(st) ((st)->ops->sliced_passes)
#define store_batch_hide(st, id) ((st)->ops->batch_hide((st), (id)))
#define store_batch_rows_drop(st, ds, id, limit, rows)                                             \
    ((st)->ops->batch_rows_drop((st), (ds), (id), (limit), (rows)))
#define store_batch_publish(st, id, dlq) ((st)->ops->batch_publish((st), (id), (dlq)))
#define store_batch_saved_drop(st, ds, id, limit, rows)                                            \
    ((st)->ops->batch_saved_drop((st), (ds), (id), (limit), (rows)))
#define store_file_drop(st, id, path, dir) ((st)->ops->file_drop((st), (id), (path), (dir)))
#define store_snapshot(st) ((st)->ops->snapshot(st))
#define store_table_count(st, t, n) ((st)->ops->table_count((st), (t), (n)))
#define store_table_dump(st, t, fn, arg) ((st)->ops->table_dump((st), (t), (fn), (arg)))
#define store_table_load(st, t, row) ((st)->ops->table_load((st), (t), (row)))
#define store_dataset_drop(st, name) ((st)->ops->dataset_drop((st), (name)))
#define store_integrity(st, v, len) ((st)->ops->integrity((st), (v), (len)))
#define store_file_sweep(st, before, dir) ((st)->ops->file_sweep((st), (before), (dir)))

/* The backends' tables (sqlite/sqlite_ops.c, pg/pg_ops.c), which store.c lists. */
extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

#endif
