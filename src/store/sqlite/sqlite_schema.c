/*
 * sqlite_schema.c - the SQLite backend's schema: its migrations, in order, each applied
 * once in its own transaction and recorded in schema_migrations (as pg_schema.c is
 * for PostgreSQL), the version a store is at, and the view each dataset is read through.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "util/buf.h"

#include "store/sqlite/sqlite_internal.h"

static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE datasets (name TEXT PRIMARY KEY, key TEXT, schema TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE TABLE dlq (id INTEGER PRIMARY KEY AUTOINCREMENT, dataset TEXT NOT NULL,"
    " ingest_id TEXT NOT NULL, source TEXT, row_no INTEGER NOT NULL, payload BLOB NOT NULL,"
    " errors TEXT NOT NULL, codes TEXT NOT NULL, received_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " status TEXT NOT NULL DEFAULT 'open');"
    "CREATE INDEX dlq_status ON dlq(status, dataset);"
    "CREATE INDEX dlq_dataset ON dlq(dataset, id);"
    "CREATE TABLE idempotency (dataset TEXT NOT NULL, key TEXT NOT NULL,"
    " sha256 TEXT NOT NULL, status INTEGER NOT NULL, response TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, PRIMARY KEY (dataset, key));"
    "CREATE INDEX idempotency_created ON idempotency(created_ms);",
    /* 2: batches */
    "CREATE TABLE batches (id TEXT PRIMARY KEY, dataset TEXT NOT NULL, source TEXT,"
    " filename TEXT, path TEXT NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " status TEXT NOT NULL, rejection_reason TEXT, error_threshold_percent REAL NOT NULL,"
    " row_count_total INTEGER NOT NULL DEFAULT 0, row_count_inserted INTEGER NOT NULL DEFAULT 0,"
    " row_count_invalid INTEGER NOT NULL DEFAULT 0, row_count_duplicate INTEGER NOT NULL"
    " DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, worker TEXT, lease_until_ms INTEGER,"
    " heartbeat_ms INTEGER, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " started_ms INTEGER, finished_ms INTEGER);"
    "CREATE INDEX batches_status ON batches(status, id);"
    "CREATE TABLE batch_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, batch_id TEXT NOT NULL,"
    " status TEXT NOT NULL, at_ms INTEGER NOT NULL, detail TEXT);"
    "CREATE INDEX batch_events_batch ON batch_events(batch_id, seq);"
    "CREATE TABLE batch_errors (batch_id TEXT NOT NULL, row_no INTEGER NOT NULL,"
    " code TEXT NOT NULL, field TEXT, message TEXT NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE INDEX batch_errors_batch ON batch_errors(batch_id, row_no);"
    "ALTER TABLE dlq ADD COLUMN batch_id TEXT;"
    "CREATE INDEX dlq_batch ON dlq(batch_id) WHERE batch_id IS NOT NULL;",
    /* 3: a batch's rows by rowid range (rows_tracked = 0: batches stored before, found by
     * scanning _batch_id) */
    "ALTER TABLE batches ADD COLUMN rows_tracked INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE batches ADD COLUMN rows_first INTEGER;"
    "ALTER TABLE batches ADD COLUMN rows_last INTEGER;",
    /* 4: access control */
    "CREATE TABLE settings (name TEXT PRIMARY KEY, value BLOB NOT NULL);"
    "INSERT INTO settings VALUES ('api_key_pepper', randomblob(32));"
    "CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
    " prefix TEXT NOT NULL, hash BLOB NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER,"
    " last_used_ms INTEGER, revoked_ms INTEGER);"
    "CREATE TABLE audit (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, actor TEXT NOT NULL,"
    " role TEXT, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, remote TEXT,"
    " request_id TEXT);"
    "CREATE INDEX audit_at ON audit(at_ms);",
    /* 5: rollups (minute and hour buckets since the epoch), error views, activity */
    "CREATE TABLE rollup_minute (dataset TEXT NOT NULL, minute INTEGER NOT NULL,"
    " received INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0,"
    " rejected INTEGER NOT NULL DEFAULT 0, duplicate INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (dataset, minute)) WITHOUT ROWID;"
    "CREATE TABLE rollup_hour (dataset TEXT NOT NULL, hour INTEGER NOT NULL,"
    " received INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0,"
    " rejected INTEGER NOT NULL DEFAULT 0, duplicate INTEGER NOT NULL DEFAULT 0,"
    " batches INTEGER NOT NULL DEFAULT 0, batches_failed INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (dataset, hour)) WITHOUT ROWID;"
    "CREATE INDEX rollup_hour_hour ON rollup_hour(hour);"
    "CREATE TABLE rollup_errors (hour INTEGER NOT NULL, dataset TEXT NOT NULL,"
    " code TEXT NOT NULL, occurrences INTEGER NOT NULL DEFAULT 0,"
    " batches INTEGER NOT NULL DEFAULT 0, sample TEXT, last_seen_ms INTEGER NOT NULL,"
    " PRIMARY KEY (hour, dataset, code)) WITHOUT ROWID;"
    "CREATE TABLE dataset_activity (dataset TEXT PRIMARY KEY, last_received_ms INTEGER,"
    " last_error_ms INTEGER);"
    "CREATE INDEX batches_finished ON batches(finished_ms);",
    /* 6: alerts and their history */
    "CREATE TABLE alerts (id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, rule TEXT NOT NULL,"
    " severity TEXT NOT NULL, labels TEXT NOT NULL, summary TEXT NOT NULL, details TEXT,"
    " state TEXT NOT NULL, started_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " resolved_ms INTEGER, last_notified_ms INTEGER, notifications INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX alerts_firing ON alerts(fingerprint) WHERE state = 'firing';"
    "CREATE INDEX alerts_state ON alerts(state, id);"
    "CREATE TABLE alert_events (seq INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL,"
    " at_ms INTEGER NOT NULL, event TEXT NOT NULL, detail TEXT);"
    "CREATE INDEX alert_events_alert ON alert_events(alert_id, seq);",
    /* 7: day buckets (monthly series and all-time totals read a few thousand rows, not every
     * hour), batches by creation time */
    "CREATE TABLE rollup_day (dataset TEXT NOT NULL, day INTEGER NOT NULL,"
    " received INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0,"
    " rejected INTEGER NOT NULL DEFAULT 0, duplicate INTEGER NOT NULL DEFAULT 0,"
    " batches INTEGER NOT NULL DEFAULT 0, batches_failed INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (dataset, day)) WITHOUT ROWID;"
    "INSERT INTO rollup_day SELECT dataset, hour / 24, sum(received), sum(accepted),"
    " sum(rejected), sum(duplicate), sum(batches), sum(batches_failed) FROM rollup_hour"
    " GROUP BY dataset, hour / 24;"
    "CREATE INDEX batches_created ON batches(created_ms);",
    /* 8: the alert outbox: each notification (alert event x receiver) until its receiver
     * answers 2xx (alerts.h) */
    "CREATE TABLE alert_outbox (id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL,"
    " receiver TEXT NOT NULL, event TEXT NOT NULL, body TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_ms INTEGER NOT NULL, last_error TEXT);"
    "CREATE INDEX alert_outbox_next ON alert_outbox(next_ms);"
    "CREATE INDEX alert_outbox_alert ON alert_outbox(alert_id, receiver, id);",
    /* 9: the DLQ list by status in id order, either way (without it, and without
     * statistics, a page of open entries sorted the whole status in a temp B-tree) */
    "CREATE INDEX dlq_status_id ON dlq(status, id);",
    /* 10: the Content-Type a batch was uploaded with, which its download answers with */
    "ALTER TABLE batches ADD COLUMN content_type TEXT;",
    /* 11: the rollup ledger (a row per batch counted, and per dataset, minute and kind for a
     * group commit's pushes, see rollup_acc.h; which `sluice rollups rebuild` sums again),
     * started from the rollups there are: the minutes still kept, and what the hour has
     * beyond them with its batches and codes (batch_id '': a carried-over row, which makes
     * no minute bucket) */
    "CREATE TABLE rollup_ledger (id INTEGER PRIMARY KEY, dataset TEXT NOT NULL,"
    " at_ms INTEGER NOT NULL, batch_id TEXT, received INTEGER NOT NULL DEFAULT 0,"
    " accepted INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,"
    " duplicate INTEGER NOT NULL DEFAULT 0, batches INTEGER NOT NULL DEFAULT 0,"
    " batches_failed INTEGER NOT NULL DEFAULT 0, codes TEXT, undone INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX rollup_ledger_at ON rollup_ledger(dataset, at_ms);"
    "CREATE INDEX rollup_ledger_batch ON rollup_ledger(batch_id) WHERE batch_id IS NOT NULL;"
    "CREATE INDEX rollup_ledger_error ON rollup_ledger(dataset, at_ms) WHERE rejected > 0;"
    "INSERT INTO rollup_ledger(dataset, at_ms, received, accepted, rejected, duplicate)"
    " SELECT dataset, minute * 60000, received, accepted, rejected, duplicate FROM rollup_minute;"
    "INSERT INTO rollup_ledger(dataset, at_ms, batch_id, received, accepted, rejected, duplicate,"
    " batches, batches_failed, codes) SELECT h.dataset, h.hour * 3600000, '',"
    " h.received - coalesce(m.r, 0),"
    " h.accepted - coalesce(m.a, 0), h.rejected - coalesce(m.j, 0),"
    " h.duplicate - coalesce(m.d, 0), h.batches, h.batches_failed, (SELECT"
    " json_group_array(json_object('code', e.code, 'n', e.occurrences, 'b', e.batches,"
    " 'sample', e.sample)) FROM rollup_errors e WHERE e.dataset = h.dataset AND e.hour = h.hour)"
    " FROM rollup_hour h LEFT JOIN (SELECT dataset, minute / 60 hr, sum(received) r,"
    " sum(accepted) a, sum(rejected) j, sum(duplicate) d FROM rollup_minute GROUP BY dataset, hr)"
    " m ON m.dataset = h.dataset AND m.hr = h.hour;",
    /* 12: batches stored in slices (docs/architecture.md, "Where a pass runs"): the batches
     * whose rows the ds_<name> views hide until the batch is published, and their DLQ
     * entries until then (the views themselves are made with the datasets, sqlite.c) */
    "CREATE TABLE batch_pending (batch_id TEXT PRIMARY KEY) WITHOUT ROWID;"
    "CREATE TABLE dlq_staged (seq INTEGER PRIMARY KEY, dataset TEXT NOT NULL,"
    " ingest_id TEXT NOT NULL, source TEXT, row_no INTEGER NOT NULL, payload BLOB NOT NULL,"
    " errors TEXT NOT NULL, codes TEXT NOT NULL, received_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, batch_id TEXT NOT NULL);"
    "CREATE INDEX dlq_staged_batch ON dlq_staged(batch_id, seq);",
    /* 13: the scheduler's history (store/jobs.h): a row per run, unique per (job, scheduled
     * time, attempt) and per (job, Idempotency-Key), walked by (job, id), swept by (state,
     * lease); and each job's state (paused, the last scheduled time dealt with) */
    "CREATE TABLE job_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL,"
    " scheduled_ms INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " \"trigger\" TEXT NOT NULL CHECK (\"trigger\" IN ('schedule', 'manual', 'catchup', 'retry')),"
    " state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed',"
    " 'skipped', 'canceled')), reason TEXT, node TEXT, created_ms INTEGER NOT NULL,"
    " started_ms INTEGER, ended_ms INTEGER, lease_until_ms INTEGER, items INTEGER, error TEXT,"
    " idem_key TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (job, scheduled_ms, attempt));"
    "CREATE UNIQUE INDEX job_runs_idem ON job_runs(job, idem_key) WHERE idem_key IS NOT NULL;"
    "CREATE INDEX job_runs_job ON job_runs(job, id);"
    "CREATE INDEX job_runs_lease ON job_runs(state, lease_until_ms);"
    "CREATE TABLE job_state (job TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0"
    " CHECK (paused IN (0, 1)), last_due_ms INTEGER NOT NULL DEFAULT 0, cron TEXT,"
    " updated_ms INTEGER NOT NULL);",
};

#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int sqlite_schema_version(struct store *st, int *have, int *want)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    *want = NMIGRATIONS;
    *have = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version),0) FROM schema_migrations", -1, &q,
                           NULL) != SQLITE_OK)
        return sqlite_fail(s, "schema version");
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *have = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : sqlite_fail(s, "schema version");
}

int sqlite_migrate(struct store *st)
{
    struct sqlite_store *s = SQ(st);
    if (sqlite_exec(s, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                       " applied_ms INTEGER NOT NULL)") < 0)
        return -1;
    int have = 0;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version),0) FROM schema_migrations", -1, &q,
                           NULL) != SQLITE_OK)
        return sqlite_fail(s, "migrate");
    if (sqlite3_step(q) == SQLITE_ROW)
        have = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    for (int v = have; v < NMIGRATIONS; v++) {
        char sql[128];
        if (sqlite_exec(s, "BEGIN IMMEDIATE") < 0)
            return -1;
        snprintf(sql, sizeof sql,
                 "INSERT INTO schema_migrations VALUES (%d, CAST((julianday('now') - 2440587.5) * "
                 "86400000.0 AS INTEGER))",
                 v + 1);
        if (sqlite_exec(s, migrations[v]) < 0 || sqlite_exec(s, sql) < 0) {
            char keep[512];
            snprintf(keep, sizeof keep, "migration %d: %s", v + 1, s->err);
            sqlite_exec(s, "ROLLBACK");
            snprintf(s->err, sizeof s->err, "%s", keep);
            return -1;
        }
        if (sqlite_exec(s, "COMMIT") < 0)
            return -1;
    }
    return 0;
}

/* Whether table (a name with its prefix and the dataset's name) exists: 1, 0, or -1. */
static int table_exists(struct sqlite_store *s, const char *prefix, const char *name)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 || ?2",
                           -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "dataset view");
    sqlite3_bind_text(q, 1, prefix, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sqlite_fail(s, "dataset view");
}

int sqlite_has_saved(struct sqlite_store *s, const char *dataset)
{
    return table_exists(s, SQLITE_SAVED, dataset);
}

/* The columns of prefix<name>, appended to out as `pre"col"` separated by ", ", or (set)
 * as `"col" = NEW."col"`. Returns how many, -1 on failure. */
static int columns(struct sqlite_store *s, const char *prefix, const char *name, const char *pre,
                   int set, struct buf *out)
{
    char pragma[200];
    snprintf(pragma, sizeof pragma, "PRAGMA table_info(\"%s%s\")", prefix, name);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, pragma, -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "dataset view");
    int n = 0, bad = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(q, 1);
        if (!strcmp(c, "_pending"))
            continue;
        bad |= set ? buf_printf(out, "%s\"%s\" = NEW.\"%s\"", n ? ", " : "", c, c) < 0
                   : buf_printf(out, "%s%s\"%s\"", n ? ", " : "", pre, c) < 0;
        n++;
    }
    sqlite3_finalize(q);
    if (bad) {
        snprintf(s->err, sizeof s->err, "dataset view %s: out of memory", name);
        return -1;
    }
    return n;
}

/* The columns of dsr_<name> that dsv_<name> lacks, added to it (a column added to the
 * dataset while saved versions are kept is NULL in them). */
static int saved_columns(struct sqlite_store *s, const char *name, struct buf *sql)
{
    char pragma[200];
    snprintf(pragma, sizeof pragma,
             "SELECT r.name, r.type FROM pragma_table_info('" SQLITE_ROWS "%s') r WHERE r.name"
             " NOT IN (SELECT name FROM pragma_table_info('" SQLITE_SAVED "%s'))",
             name, name);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, pragma, -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "dataset view");
    int bad = 0;
    while (sqlite3_step(q) == SQLITE_ROW)
        bad |= buf_printf(sql, "ALTER TABLE \"" SQLITE_SAVED "%s\" ADD COLUMN \"%s\" %s;", name,
                          (const char *)sqlite3_column_text(q, 0),
                          (const char *)sqlite3_column_text(q, 1)) < 0;
    sqlite3_finalize(q);
    return bad ? -1 : 0;
}

/*
 * ds_<name>, the view readers query, over dsr_<name>, the table the rows are in: every row
 * but those of the batches in batch_pending (batch/slices.c), and for upsert datasets the
 * versions in dsv_<name> that a pending batch replaced (the row as it was before the batch
 * updated it in place, kept by the trigger dsr_<name>_save until the batch is published or
 * taken back: sqlite_batch.c). SELECT * follows the table's columns, added ones included.
 * INSTEAD OF triggers make it take INSERT, UPDATE and DELETE as the table did, so SQL that
 * fixed rows by hand still does (SQLite counts the rows such statements change through a
 * trigger as 0 in changes()); an update or delete goes to the version the reader saw. They
 * name every column, so they are made again when columns are added.
 */
int sqlite_dataset_view(struct sqlite_store *s, const char *name, int upsert)
{
    struct buf cols, news, olds, sets, sql;
    buf_init(&cols, 1 << 16);
    buf_init(&news, 1 << 16);
    buf_init(&olds, 1 << 16);
    buf_init(&sets, 1 << 16);
    buf_init(&sql, 1 << 18);
    int rc = -1, bad = 0;
    int saved = sqlite_has_saved(s, name);
    if (saved < 0)
        goto out;
    if (upsert && !saved) {
        bad |= buf_printf(&sql,
                          "CREATE TABLE \"" SQLITE_SAVED "%s\" AS SELECT NULL AS _pending, * FROM"
                          " \"" SQLITE_ROWS "%s\" WHERE 0;"
                          "CREATE INDEX \"" SQLITE_SAVED "%s_pending\" ON \"" SQLITE_SAVED
                          "%s\"(_pending);",
                          name, name, name, name) < 0;
        saved = 1;
    } else if (saved && saved_columns(s, name, &sql) < 0) {
        goto out;
    }
    int n = columns(s, SQLITE_ROWS, name, "", 0, &cols);
    if (n <= 0 || columns(s, SQLITE_ROWS, name, "NEW.", 0, &news) < 0 ||
        columns(s, SQLITE_ROWS, name, "OLD.", 0, &olds) < 0 ||
        columns(s, SQLITE_ROWS, name, "", 1, &sets) < 0) {
        if (n == 0)
            snprintf(s->err, sizeof s->err, "dataset view %s: no table", name);
        goto out;
    }
    const char *visible = "(_batch_id IS NULL OR _batch_id NOT IN (SELECT batch_id FROM"
                          " batch_pending))";
    bad |= buf_printf(&sql,
                      "DROP VIEW IF EXISTS \"ds_%s\";"
                      "CREATE VIEW \"ds_%s\" AS SELECT * FROM \"" SQLITE_ROWS "%s\" WHERE %s",
                      name, name, name, visible) < 0;
    if (saved)
        bad |= buf_printf(&sql,
                          " UNION ALL SELECT %s FROM \"" SQLITE_SAVED "%s\" WHERE _pending IN"
                          " (SELECT batch_id FROM batch_pending)",
                          cols.data, name) < 0;
    bad |= buf_printf(&sql,
                      ";CREATE TRIGGER \"ds_%s_insert\" INSTEAD OF INSERT ON \"ds_%s\" BEGIN"
                      " INSERT INTO \"" SQLITE_ROWS "%s\" (%s) VALUES (%s); END;"
                      "CREATE TRIGGER \"ds_%s_update\" INSTEAD OF UPDATE ON \"ds_%s\" BEGIN"
                      " UPDATE \"" SQLITE_ROWS "%s\" SET %s WHERE _id = OLD._id AND %s;",
                      name, name, name, cols.data, news.data, name, name, name, sets.data,
                      visible) < 0;
    if (saved)
        bad |= buf_printf(&sql,
                          " UPDATE \"" SQLITE_SAVED "%s\" SET %s WHERE _id = OLD._id AND"
                          " _pending IN (SELECT batch_id FROM batch_pending);",
                          name, sets.data) < 0;
    bad |= buf_printf(&sql,
                      " END; CREATE TRIGGER \"ds_%s_delete\" INSTEAD OF DELETE ON \"ds_%s\" BEGIN"
                      " DELETE FROM \"" SQLITE_ROWS "%s\" WHERE _id = OLD._id AND %s;",
                      name, name, name, visible) < 0;
    if (saved)
        bad |= buf_printf(&sql,
                          " DELETE FROM \"" SQLITE_SAVED "%s\" WHERE _id = OLD._id AND"
                          " _pending IN (SELECT batch_id FROM batch_pending);",
                          name) < 0;
    bad |= buf_appends(&sql, " END;") < 0;
    if (saved)
        /* A row a pending batch takes over (an upsert's update of a row readers see): the
         * version they see is kept until the batch is published or taken back. */
        bad |= buf_printf(&sql,
                          "DROP TRIGGER IF EXISTS \"" SQLITE_ROWS "%s_save\";"
                          "CREATE TRIGGER \"" SQLITE_ROWS "%s_save\" BEFORE UPDATE OF _batch_id"
                          " ON \"" SQLITE_ROWS "%s\" WHEN NEW._batch_id IS NOT OLD._batch_id"
                          " AND NEW._batch_id IN (SELECT batch_id FROM batch_pending) AND"
                          " (OLD._batch_id IS NULL OR OLD._batch_id NOT IN (SELECT batch_id"
                          " FROM batch_pending)) BEGIN INSERT INTO \"" SQLITE_SAVED "%s\""
                          " (_pending, %s) VALUES (NEW._batch_id, %s); END;",
                          name, name, name, name, cols.data, olds.data) < 0;
    if (bad) {
        snprintf(s->err, sizeof s->err, "dataset view %s: out of memory", name);
        goto out;
    }
    rc = sqlite_exec(s, sql.data);
out:
    buf_release(&cols);
    buf_release(&news);
    buf_release(&olds);
    buf_release(&sets);
    buf_release(&sql);
    return rc;
}
