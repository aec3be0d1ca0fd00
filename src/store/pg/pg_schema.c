/*
 * pg_schema.c - the PostgreSQL schema, as versioned migrations (see
 * pg_internal.h): the same tables and meaning as the SQLite backend's, in
 * PostgreSQL's types. Times are milliseconds since the epoch in BIGINT columns,
 * as in SQLite, so both backends answer alike. Dataset tables (ds_<name>) are
 * created by dataset_sync, not here.
 */
#include "store/pg/pg_internal.h"

const char *const pg_migrations[] = {
    /* 1: everything the SQLite backend has at its version 7 */
    "CREATE TABLE datasets (name TEXT PRIMARY KEY, key TEXT, schema TEXT NOT NULL,"
    " updated_ms BIGINT NOT NULL);"
    "CREATE TABLE dlq (id BIGSERIAL PRIMARY KEY, dataset TEXT NOT NULL, ingest_id TEXT NOT NULL,"
    " source TEXT, row_no BIGINT NOT NULL, payload BYTEA NOT NULL, errors TEXT NOT NULL,"
    " codes TEXT NOT NULL, received_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'open', batch_id TEXT);"
    "CREATE INDEX dlq_status ON dlq(status, dataset);"
    "CREATE INDEX dlq_dataset ON dlq(dataset, id);"
    "CREATE INDEX dlq_batch ON dlq(batch_id) WHERE batch_id IS NOT NULL;"
    "CREATE INDEX dlq_received ON dlq(received_ms) WHERE status = 'open';"
    "CREATE TABLE idempotency (dataset TEXT NOT NULL, key TEXT NOT NULL, sha256 TEXT NOT NULL,"
    " status INTEGER NOT NULL, response TEXT NOT NULL, created_ms BIGINT NOT NULL,"
    " PRIMARY KEY (dataset, key));"
    "CREATE INDEX idempotency_created ON idempotency(created_ms);"
    "CREATE TABLE batches (id TEXT PRIMARY KEY, dataset TEXT NOT NULL, source TEXT,"
    " filename TEXT, path TEXT NOT NULL, bytes BIGINT NOT NULL, sha256 TEXT NOT NULL,"
    " status TEXT NOT NULL, rejection_reason TEXT, error_threshold_percent DOUBLE PRECISION"
    " NOT NULL, row_count_total BIGINT NOT NULL DEFAULT 0, row_count_inserted BIGINT NOT NULL"
    " DEFAULT 0, row_count_invalid BIGINT NOT NULL DEFAULT 0, row_count_duplicate BIGINT NOT NULL"
    " DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, worker TEXT, lease_until_ms BIGINT,"
    " heartbeat_ms BIGINT, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
    " started_ms BIGINT, finished_ms BIGINT);"
    "CREATE INDEX batches_status ON batches(status, id);"
    "CREATE INDEX batches_finished ON batches(finished_ms);"
    "CREATE INDEX batches_created ON batches(created_ms);"
    "CREATE TABLE batch_events (seq BIGSERIAL PRIMARY KEY, batch_id TEXT NOT NULL,"
    " status TEXT NOT NULL, at_ms BIGINT NOT NULL, detail TEXT);"
    "CREATE INDEX batch_events_batch ON batch_events(batch_id, seq);"
    "CREATE TABLE batch_errors (seq BIGSERIAL PRIMARY KEY, batch_id TEXT NOT NULL,"
    " row_no BIGINT NOT NULL, code TEXT NOT NULL, field TEXT, message TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL);"
    "CREATE INDEX batch_errors_batch ON batch_errors(batch_id, row_no, seq);"
    "CREATE TABLE settings (name TEXT PRIMARY KEY, value BYTEA NOT NULL);"
    "CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
    " prefix TEXT NOT NULL, hash BYTEA NOT NULL, created_ms BIGINT NOT NULL, expires_ms BIGINT,"
    " last_used_ms BIGINT, revoked_ms BIGINT);"
    "CREATE TABLE audit (id BIGSERIAL PRIMARY KEY, at_ms BIGINT NOT NULL, actor TEXT NOT NULL,"
    " role TEXT, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, remote TEXT,"
    " request_id TEXT);"
    "CREATE INDEX audit_at ON audit(at_ms);"
    "CREATE TABLE rollup_minute (dataset TEXT NOT NULL, minute BIGINT NOT NULL,"
    " received BIGINT NOT NULL DEFAULT 0, accepted BIGINT NOT NULL DEFAULT 0,"
    " rejected BIGINT NOT NULL DEFAULT 0, duplicate BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (dataset, minute));"
    "CREATE TABLE rollup_hour (dataset TEXT NOT NULL, hour BIGINT NOT NULL,"
    " received BIGINT NOT NULL DEFAULT 0, accepted BIGINT NOT NULL DEFAULT 0,"
    " rejected BIGINT NOT NULL DEFAULT 0, duplicate BIGINT NOT NULL DEFAULT 0,"
    " batches BIGINT NOT NULL DEFAULT 0, batches_failed BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (dataset, hour));"
    "CREATE INDEX rollup_hour_hour ON rollup_hour(hour);"
    "CREATE TABLE rollup_day (dataset TEXT NOT NULL, day BIGINT NOT NULL,"
    " received BIGINT NOT NULL DEFAULT 0, accepted BIGINT NOT NULL DEFAULT 0,"
    " rejected BIGINT NOT NULL DEFAULT 0, duplicate BIGINT NOT NULL DEFAULT 0,"
    " batches BIGINT NOT NULL DEFAULT 0, batches_failed BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (dataset, day));"
    "CREATE TABLE rollup_errors (hour BIGINT NOT NULL, dataset TEXT NOT NULL, code TEXT NOT NULL,"
    " occurrences BIGINT NOT NULL DEFAULT 0, batches BIGINT NOT NULL DEFAULT 0, sample TEXT,"
    " last_seen_ms BIGINT NOT NULL, PRIMARY KEY (hour, dataset, code));"
    "CREATE TABLE dataset_activity (dataset TEXT PRIMARY KEY, last_received_ms BIGINT,"
    " last_error_ms BIGINT);"
    "CREATE TABLE alerts (id BIGSERIAL PRIMARY KEY, fingerprint TEXT NOT NULL, rule TEXT NOT NULL,"
    " severity TEXT NOT NULL, labels TEXT NOT NULL, summary TEXT NOT NULL, details TEXT,"
    " state TEXT NOT NULL, started_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
    " resolved_ms BIGINT, last_notified_ms BIGINT, notifications INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX alerts_firing ON alerts(fingerprint) WHERE state = 'firing';"
    "CREATE INDEX alerts_state ON alerts(state, id);"
    "CREATE TABLE alert_events (seq BIGSERIAL PRIMARY KEY, alert_id BIGINT NOT NULL,"
    " at_ms BIGINT NOT NULL, event TEXT NOT NULL, detail TEXT);"
    "CREATE INDEX alert_events_alert ON alert_events(alert_id, seq);",
    /* 2: batch files in the database (pg_files.c), so that nodes share nothing but
     * it: chunks of about 1 MiB, stored uncompressed (CSV compresses well, but the CPU it
     * costs on every upload and every read buys little), and no `path` any more. */
    "CREATE TABLE batch_files (batch_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " data BYTEA NOT NULL, created_ms BIGINT NOT NULL, PRIMARY KEY (batch_id, seq));"
    "ALTER TABLE batch_files ALTER COLUMN data SET STORAGE EXTERNAL;"
    "ALTER TABLE batches ALTER COLUMN path DROP NOT NULL;",
    /* 3: the alert outbox: each notification (alert event x receiver) until its receiver
     * answers 2xx (alerts.h) */
    "CREATE TABLE alert_outbox (id BIGSERIAL PRIMARY KEY, alert_id BIGINT NOT NULL,"
    " receiver TEXT NOT NULL, event TEXT NOT NULL, body TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_ms BIGINT NOT NULL, last_error TEXT);"
    "CREATE INDEX alert_outbox_next ON alert_outbox(next_ms);"
    "CREATE INDEX alert_outbox_alert ON alert_outbox(alert_id, receiver, id);",
    /* 4: the DLQ list by status in id order, either way (as SQLite's migration 9) */
    "CREATE INDEX dlq_status_id ON dlq(status, id);",
    /* 5: the Content-Type a batch was uploaded with (as SQLite's migration 10) */
    "ALTER TABLE batches ADD COLUMN content_type TEXT;",
    /* 6: the rollup ledger (a row per batch counted, and per dataset, minute and kind for a
     * group commit's pushes, see rollup_acc.h; which `sluice rollups rebuild` sums again),
     * started from the rollups there are: the minutes still kept, and what the hour has
     * beyond them with its batches and codes (batch_id '': a carried-over row, which makes
     * no minute bucket) */
    "CREATE TABLE rollup_ledger (id BIGSERIAL PRIMARY KEY, dataset TEXT NOT NULL,"
    " at_ms BIGINT NOT NULL, batch_id TEXT, received BIGINT NOT NULL DEFAULT 0,"
    " accepted BIGINT NOT NULL DEFAULT 0, rejected BIGINT NOT NULL DEFAULT 0,"
    " duplicate BIGINT NOT NULL DEFAULT 0, batches BIGINT NOT NULL DEFAULT 0,"
    " batches_failed BIGINT NOT NULL DEFAULT 0, codes TEXT, undone INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX rollup_ledger_at ON rollup_ledger(dataset, at_ms);"
    "CREATE INDEX rollup_ledger_batch ON rollup_ledger(batch_id) WHERE batch_id IS NOT NULL;"
    "CREATE INDEX rollup_ledger_error ON rollup_ledger(dataset, at_ms) WHERE rejected > 0;"
    "INSERT INTO rollup_ledger (dataset, at_ms, received, accepted, rejected, duplicate)"
    " SELECT dataset, minute * 60000, received, accepted, rejected, duplicate FROM rollup_minute;"
    "INSERT INTO rollup_ledger (dataset, at_ms, batch_id, received, accepted, rejected,"
    " duplicate, batches, batches_failed, codes) SELECT h.dataset, h.hour * 3600000, '',"
    " h.received - coalesce(m.r, 0),"
    " h.accepted - coalesce(m.a, 0), h.rejected - coalesce(m.j, 0),"
    " h.duplicate - coalesce(m.d, 0), h.batches, h.batches_failed, (SELECT"
    " json_agg(json_build_object('code', e.code, 'n', e.occurrences, 'b', e.batches,"
    " 'sample', e.sample))::text FROM rollup_errors e WHERE e.dataset = h.dataset"
    " AND e.hour = h.hour) FROM rollup_hour h LEFT JOIN (SELECT dataset, minute / 60 AS hr,"
    " sum(received) AS r, sum(accepted) AS a, sum(rejected) AS j, sum(duplicate) AS d"
    " FROM rollup_minute GROUP BY dataset, minute / 60) m ON m.dataset = h.dataset"
    " AND m.hr = h.hour;",
    /* 7: the scheduler's history (as SQLite's migration 13; store/jobs.h) */
    "CREATE TABLE job_runs (id BIGSERIAL PRIMARY KEY, job TEXT NOT NULL,"
    " scheduled_ms BIGINT NOT NULL, attempt INTEGER NOT NULL,"
    " \"trigger\" TEXT NOT NULL CHECK (\"trigger\" IN ('schedule', 'manual', 'catchup', 'retry')),"
    " state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed',"
    " 'skipped', 'canceled')), reason TEXT, node TEXT, created_ms BIGINT NOT NULL,"
    " started_ms BIGINT, ended_ms BIGINT, lease_until_ms BIGINT, items BIGINT, error TEXT,"
    " idem_key TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (job, scheduled_ms, attempt));"
    "CREATE UNIQUE INDEX job_runs_idem ON job_runs(job, idem_key) WHERE idem_key IS NOT NULL;"
    "CREATE INDEX job_runs_job ON job_runs(job, id);"
    "CREATE INDEX job_runs_lease ON job_runs(state, lease_until_ms);"
    "CREATE TABLE job_state (job TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0"
    " CHECK (paused IN (0, 1)), last_due_ms BIGINT NOT NULL DEFAULT 0, cron TEXT,"
    " updated_ms BIGINT NOT NULL);",
};
const int pg_nmigrations = sizeof pg_migrations / sizeof pg_migrations[0];
