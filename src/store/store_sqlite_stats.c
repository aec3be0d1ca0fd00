/*
 * store_sqlite_stats.c - rollups (minute and hour buckets per dataset, error
 * codes per hour, each dataset's last activity), kept in the same transaction
 * as the rows they count; the KPI, series and error views read them, so they
 * answer in milliseconds however many rows are stored. Also the sentinel's
 * queries over batches and the DLQ.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/sqlite_internal.h"
#include "util/clock.h"

#define MINUTE_MS 60000LL
#define HOUR_MS 3600000LL

static int prep(struct sqlite_store *s, const char *sql, sqlite3_stmt **q, const char *what)
{
    return sqlite3_prepare_v2(s->db, sql, -1, q, NULL) == SQLITE_OK ? 0 : sqlite_fail(s, what);
}

/* A statement kept for the life of the connection (the rollups run for every job). */
static sqlite3_stmt *kept(struct sqlite_store *s, int i, const char *sql)
{
    if (!s->roll_q[i] && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                            &s->roll_q[i], NULL) != SQLITE_OK) {
        sqlite_fail(s, "rollup");
        return NULL;
    }
    return s->roll_q[i];
}

static int run(struct sqlite_store *s, sqlite3_stmt *q)
{
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "rollup");
}

/* The bucket tables, each upserted the same way: (dataset, bucket) and the counts; the hour
 * and day tables also count batches. slot: its kept statement. */
#define COUNTS_SET                                                                                 \
    " received = received + excluded.received, accepted = accepted + excluded.accepted,"           \
    " rejected = rejected + excluded.rejected, duplicate = duplicate + excluded.duplicate"
static const struct {
    int slot;
    int64_t per_ms;
    int batches;
    const char *sql;
} bucket_tables[] = {
    {0, MINUTE_MS, 0,
     "INSERT INTO rollup_minute(dataset, minute, received, accepted, rejected, duplicate)"
     " VALUES (?1,?2,?3,?4,?5,?6) ON CONFLICT(dataset, minute) DO UPDATE SET" COUNTS_SET},
    {1, HOUR_MS, 1,
     "INSERT INTO rollup_hour(dataset, hour, received, accepted, rejected, duplicate, batches,"
     " batches_failed) VALUES (?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(dataset, hour) DO UPDATE"
     " SET" COUNTS_SET ", batches = batches + excluded.batches,"
     " batches_failed = batches_failed + excluded.batches_failed"},
    {4, 24 * HOUR_MS, 1,
     "INSERT INTO rollup_day(dataset, day, received, accepted, rejected, duplicate, batches,"
     " batches_failed) VALUES (?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(dataset, day) DO UPDATE"
     " SET" COUNTS_SET ", batches = batches + excluded.batches,"
     " batches_failed = batches_failed + excluded.batches_failed"},
};

/* Add d (or subtract it: sign -1). */
static int rollup_apply(struct sqlite_store *s, const struct rollup_delta *d, int sign)
{
    sqlite3_stmt *q;
    for (size_t t = 0; t < sizeof bucket_tables / sizeof bucket_tables[0]; t++) {
        if (!(q = kept(s, bucket_tables[t].slot, bucket_tables[t].sql)))
            return -1;
        sqlite3_bind_text(q, 1, d->dataset, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, d->at_ms / bucket_tables[t].per_ms);
        sqlite3_bind_int64(q, 3, sign * d->received);
        sqlite3_bind_int64(q, 4, sign * d->accepted);
        sqlite3_bind_int64(q, 5, sign * d->rejected);
        sqlite3_bind_int64(q, 6, sign * d->duplicate);
        if (bucket_tables[t].batches) {
            sqlite3_bind_int64(q, 7, sign * d->batches);
            sqlite3_bind_int64(q, 8, sign * d->batches_failed);
        }
        if (run(s, q) < 0)
            return -1;
    }
    for (size_t i = 0; i < d->ncodes; i++) {
        q = kept(s, 2,
                 "INSERT INTO rollup_errors(hour, dataset, code, occurrences, batches, sample,"
                 " last_seen_ms) VALUES (?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(hour, dataset, code) DO"
                 " UPDATE SET occurrences = occurrences + excluded.occurrences,"
                 " batches = batches + excluded.batches,"
                 " sample = coalesce(excluded.sample, sample),"
                 " last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)");
        if (!q)
            return -1;
        sqlite3_bind_int64(q, 1, d->at_ms / HOUR_MS);
        sqlite3_bind_text(q, 2, d->dataset, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, d->codes[i].code, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, sign * d->codes[i].count);
        sqlite3_bind_int64(q, 5, sign * d->codes[i].batches);
        if (d->codes[i].sample && sign > 0)
            sqlite3_bind_text(q, 6, d->codes[i].sample, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(q, 6);
        sqlite3_bind_int64(q, 7, sign > 0 ? d->at_ms : 0);
        if (run(s, q) < 0)
            return -1;
    }
    if (sign < 0 || (!d->received && !d->rejected))
        return 0;
    q = kept(s, 3,
             "INSERT INTO dataset_activity(dataset, last_received_ms, last_error_ms)"
             " VALUES (?1, ?2, ?3) ON CONFLICT(dataset) DO UPDATE SET"
             " last_received_ms = max(coalesce(last_received_ms, 0), excluded.last_received_ms),"
             " last_error_ms = CASE WHEN excluded.last_error_ms IS NULL THEN last_error_ms"
             " ELSE max(coalesce(last_error_ms, 0), excluded.last_error_ms) END");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, d->dataset, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, d->at_ms);
    if (d->rejected)
        sqlite3_bind_int64(q, 3, d->at_ms);
    else
        sqlite3_bind_null(q, 3);
    return run(s, q);
}

int sqlite_rollup_add(struct store *st, const struct rollup_delta *d)
{
    struct sqlite_store *s = SQ(st);
    if (roll_acc_add(&s->roll_job, d) < 0)
        return sqlite_fail(s, "rollup: out of memory");
    return 0;
}

void sqlite_roll_keep_job(struct sqlite_store *s)
{
    roll_acc_merge(&s->roll_group, &s->roll_job);
}

void sqlite_roll_drop_job(struct sqlite_store *s)
{
    roll_acc_clear(&s->roll_job);
}

void sqlite_roll_drop_all(struct sqlite_store *s)
{
    roll_acc_clear(&s->roll_job);
    roll_acc_clear(&s->roll_group);
}

int sqlite_roll_flush(struct sqlite_store *s)
{
    sqlite_roll_keep_job(s);
    struct roll_acc *g = &s->roll_group;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < g->n; i++) {
        struct rollup_code codes[ROLL_MAX_CODES];
        struct rollup_delta d;
        roll_entry_delta(&g->v[i], codes, &d);
        rc = rollup_apply(s, &d, 1);
    }
    roll_acc_clear(g);
    return rc;
}

int sqlite_rollup_undo_batch(struct sqlite_store *s, const char *batch_id)
{
    sqlite3_stmt *q;
    if (prep(s,
             "SELECT dataset, finished_ms, row_count_total, row_count_inserted, row_count_invalid,"
             " row_count_duplicate, status FROM batches WHERE id = ? AND finished_ms IS NOT NULL"
             " AND status IN ('completed', 'failed') AND row_count_total > 0",
             &q, "rollup undo") < 0)
        return -1;
    sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return 0; /* nothing was counted */
    }
    char dataset[128];
    snprintf(dataset, sizeof dataset, "%s", (const char *)sqlite3_column_text(q, 0));
    int failed = strcmp((const char *)sqlite3_column_text(q, 6), "failed") == 0;
    struct rollup_delta d = {.dataset = dataset,
                             .at_ms = sqlite3_column_int64(q, 1),
                             .received = sqlite3_column_int64(q, 2),
                             .accepted = failed ? 0 : sqlite3_column_int64(q, 3),
                             .rejected = sqlite3_column_int64(q, 4),
                             .duplicate = failed ? 0 : sqlite3_column_int64(q, 5),
                             .batches = 1,
                             .batches_failed = failed};
    sqlite3_finalize(q);
    if (prep(s, "SELECT code, count(*) FROM batch_errors WHERE batch_id = ? GROUP BY code", &q,
             "rollup undo") < 0)
        return -1;
    sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
    struct rollup_code codes[64];
    char names[64][48];
    size_t n = 0;
    while (n < 64 && sqlite3_step(q) == SQLITE_ROW) {
        snprintf(names[n], sizeof names[n], "%s", (const char *)sqlite3_column_text(q, 0));
        codes[n] = (struct rollup_code){names[n], sqlite3_column_int64(q, 1), NULL, 1};
        n++;
    }
    sqlite3_finalize(q);
    d.codes = codes;
    d.ncodes = n;
    return rollup_apply(s, &d, -1);
}

int sqlite_rollup_window(struct store *st, int64_t from_ms, struct rollup_sum **out, size_t *n)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    *out = NULL;
    *n = 0;
    if (prep(s,
             "SELECT a.dataset, coalesce(w.r, 0), coalesce(w.a, 0), coalesce(w.j, 0),"
             " coalesce(w.d, 0), coalesce(a.last_received_ms, 0), coalesce(a.last_error_ms, 0)"
             " FROM dataset_activity a LEFT JOIN (SELECT dataset, sum(received) r,"
             " sum(accepted) a, sum(rejected) j, sum(duplicate) d FROM rollup_minute"
             " WHERE minute >= ?1 GROUP BY dataset) w ON w.dataset = a.dataset ORDER BY a.dataset",
             &q, "rollup window") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, from_ms / MINUTE_MS);
    size_t cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            struct rollup_sum *v = realloc(*out, cap * sizeof *v);
            if (!v)
                break;
            *out = v;
        }
        struct rollup_sum *r = &(*out)[(*n)++];
        memset(r, 0, sizeof *r);
        snprintf(r->dataset, sizeof r->dataset, "%s", (const char *)sqlite3_column_text(q, 0));
        r->received = sqlite3_column_int64(q, 1);
        r->accepted = sqlite3_column_int64(q, 2);
        r->rejected = sqlite3_column_int64(q, 3);
        r->duplicate = sqlite3_column_int64(q, 4);
        r->last_received_ms = sqlite3_column_int64(q, 5);
        r->last_error_ms = sqlite3_column_int64(q, 6);
    }
    sqlite3_finalize(q);
    return 0;
}

static double pct(int64_t part, int64_t whole)
{
    return whole ? (double)(int64_t)(10000.0 * (double)part / (double)whole + 0.5) / 100.0 : 0.0;
}

/* One period of the KPIs from from_ms (0: all time, from the day buckets), for one dataset
 * or all (dataset NULL): rows from the rollups, batches by status by creation time. Each
 * query has a variant per case so that SQLite uses the key that fits. */
static json_t *period(struct sqlite_store *s, int64_t from_ms, const char *dataset)
{
    static const char *const rows_sql[2][2] = {
        {"SELECT coalesce(sum(received),0), coalesce(sum(accepted),0), coalesce(sum(rejected),0),"
         " coalesce(sum(duplicate),0) FROM rollup_hour WHERE hour >= ?1",
         "SELECT coalesce(sum(received),0), coalesce(sum(accepted),0), coalesce(sum(rejected),0),"
         " coalesce(sum(duplicate),0) FROM rollup_hour WHERE dataset = ?2 AND hour >= ?1"},
        {"SELECT coalesce(sum(received),0), coalesce(sum(accepted),0), coalesce(sum(rejected),0),"
         " coalesce(sum(duplicate),0) FROM rollup_day",
         "SELECT coalesce(sum(received),0), coalesce(sum(accepted),0), coalesce(sum(rejected),0),"
         " coalesce(sum(duplicate),0) FROM rollup_day WHERE dataset = ?2"}};
    static const char *const batch_sql[2][2] = {
        {"SELECT status, count(*) FROM batches WHERE created_ms >= ?1 GROUP BY status",
         "SELECT status, count(*) FROM batches WHERE created_ms >= ?1 AND dataset = ?2"
         " GROUP BY status"},
        {"SELECT status, count(*) FROM batches GROUP BY status",
         "SELECT status, count(*) FROM batches WHERE dataset = ?2 GROUP BY status"}};
    int all = from_ms == 0, one = dataset != NULL;
    sqlite3_stmt *q;
    int64_t r = 0, a = 0, j = 0, d = 0;
    if (prep(s, rows_sql[all][one], &q, "kpis") < 0)
        return NULL;
    if (!all)
        sqlite3_bind_int64(q, 1, from_ms / HOUR_MS);
    if (one)
        sqlite3_bind_text(q, 2, dataset, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) {
        r = sqlite3_column_int64(q, 0);
        a = sqlite3_column_int64(q, 1);
        j = sqlite3_column_int64(q, 2);
        d = sqlite3_column_int64(q, 3);
    }
    sqlite3_finalize(q);
    json_t *b = json_object();
    if (prep(s, batch_sql[all][one], &q, "kpis") < 0) {
        json_decref(b);
        return NULL;
    }
    if (!all)
        sqlite3_bind_int64(q, 1, from_ms);
    if (one)
        sqlite3_bind_text(q, 2, dataset, -1, SQLITE_STATIC);
    while (sqlite3_step(q) == SQLITE_ROW)
        json_object_set_new(b, (const char *)sqlite3_column_text(q, 0),
                            json_integer(sqlite3_column_int64(q, 1)));
    sqlite3_finalize(q);
    return json_pack("{s:o,s:I,s:I,s:I,s:I,s:f}", "batches", b, "rows_received", (json_int_t)r,
                     "rows_inserted", (json_int_t)a, "rows_invalid", (json_int_t)j,
                     "rows_duplicate", (json_int_t)d, "error_rate_pct", pct(j, r));
}

int sqlite_stats_kpis(struct store *st, int64_t now_ms, const char *dataset, json_t **out)
{
    struct sqlite_store *s = SQ(st);
    int64_t day = now_ms - now_ms % (24 * HOUR_MS);
    json_t *today = period(s, day ? day : 1, dataset),
           *last24 = period(s, now_ms - 23 * HOUR_MS, dataset), *all = period(s, 0, dataset);
    sqlite3_stmt *q;
    int64_t open = 0, last = 0;
    if (prep(s,
             dataset ? "SELECT count(*) FROM dlq WHERE status = 'open' AND dataset = ?1"
                     : "SELECT count(*) FROM dlq WHERE status = 'open'",
             &q, "kpis") == 0) {
        if (dataset)
            sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            open = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    if (prep(s,
             "SELECT coalesce(max(last_received_ms), 0) FROM dataset_activity"
             " WHERE ?1 IS NULL OR dataset = ?1",
             &q, "kpis") == 0) {
        if (dataset)
            sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            last = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    if (!today || !last24 || !all) {
        json_decref(today);
        json_decref(last24);
        json_decref(all);
        return -1;
    }
    char t[32];
    *out = json_pack("{s:o,s:o,s:o,s:I,s:o}", "today", today, "last_24h", last24, "all_time", all,
                     "open_dlq_entries", (json_int_t)open, "last_ingest_at",
                     last ? json_string(clock_rfc3339(last, t, sizeof t)) : json_null());
    return *out ? 0 : -1;
}

int sqlite_stats_series(struct store *st, int monthly, int64_t from_ms, const char *dataset,
                        json_t **out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    static const char *const sql[2][2] = {
        {"SELECT dataset, hour, batches, received, rejected FROM rollup_hour WHERE hour >= ?1"
         " ORDER BY hour, dataset",
         "SELECT dataset, hour, batches, received, rejected FROM rollup_hour WHERE dataset = ?2"
         " AND hour >= ?1 ORDER BY hour"},
        {"SELECT dataset, strftime('%Y-%m', day * 86400, 'unixepoch') m, sum(batches),"
         " sum(received), sum(rejected) FROM rollup_day WHERE day >= ?1 GROUP BY m, dataset"
         " ORDER BY m, dataset",
         "SELECT dataset, strftime('%Y-%m', day * 86400, 'unixepoch') m, sum(batches),"
         " sum(received), sum(rejected) FROM rollup_day WHERE dataset = ?2 AND day >= ?1"
         " GROUP BY m ORDER BY m"}};
    if (prep(s, sql[monthly != 0][dataset != NULL], &q, "stats") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, monthly ? from_ms / (24 * HOUR_MS) : from_ms / HOUR_MS);
    if (dataset)
        sqlite3_bind_text(q, 2, dataset, -1, SQLITE_STATIC);
    json_t *a = json_array();
    while (sqlite3_step(q) == SQLITE_ROW) {
        char t[32];
        int64_t rows = sqlite3_column_int64(q, 3), errs = sqlite3_column_int64(q, 4);
        json_t *bucket =
            monthly ? json_string((const char *)sqlite3_column_text(q, 1))
                    : json_string(clock_rfc3339(sqlite3_column_int64(q, 1) * HOUR_MS, t, sizeof t));
        json_array_append_new(a, json_pack("{s:s,s:o,s:I,s:I,s:I,s:f}", "dataset",
                                           (const char *)sqlite3_column_text(q, 0),
                                           monthly ? "month" : "hour_bucket", bucket,
                                           "total_batches", (json_int_t)sqlite3_column_int64(q, 2),
                                           "total_rows", (json_int_t)rows, "error_rows",
                                           (json_int_t)errs, "error_rate_pct", pct(errs, rows)));
    }
    sqlite3_finalize(q);
    *out = a;
    return 0;
}

int sqlite_stats_errors(struct store *st, int64_t from_ms, const char *dataset, json_t **out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             "SELECT code, sum(occurrences) n, sum(batches), max(last_seen_ms),"
             " (SELECT sample FROM rollup_errors e2 WHERE e2.code = e.code AND e2.hour >= ?1"
             " AND (?2 IS NULL OR e2.dataset = ?2) AND sample IS NOT NULL"
             " ORDER BY last_seen_ms DESC LIMIT 1)"
             " FROM rollup_errors e WHERE hour >= ?1 AND (?2 IS NULL OR dataset = ?2)"
             " GROUP BY code HAVING n > 0 ORDER BY n DESC, code",
             &q, "errors") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, from_ms / HOUR_MS);
    if (dataset)
        sqlite3_bind_text(q, 2, dataset, -1, SQLITE_STATIC);
    json_t *a = json_array();
    while (sqlite3_step(q) == SQLITE_ROW) {
        char t[32];
        json_array_append_new(a,
                              json_pack("{s:s,s:I,s:I,s:s?,s:s}", "error_code",
                                        (const char *)sqlite3_column_text(q, 0), "occurrence_count",
                                        (json_int_t)sqlite3_column_int64(q, 1), "affected_batches",
                                        (json_int_t)sqlite3_column_int64(q, 2), "sample_message",
                                        (const char *)sqlite3_column_text(q, 4), "last_seen_at",
                                        clock_rfc3339(sqlite3_column_int64(q, 3), t, sizeof t)));
    }
    sqlite3_finalize(q);
    *out = a;
    return 0;
}

int sqlite_batch_stuck(struct store *st, int64_t before_ms, json_t **out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             "SELECT id, dataset, status, max(updated_ms, coalesce(heartbeat_ms, 0)) p, attempts,"
             " worker FROM batches WHERE status NOT IN ('completed', 'failed') AND"
             " max(updated_ms, coalesce(heartbeat_ms, 0)) < ?1 ORDER BY p LIMIT 1000",
             &q, "stuck") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, before_ms);
    json_t *a = json_array();
    while (sqlite3_step(q) == SQLITE_ROW) {
        char t[32];
        json_array_append_new(a,
                              json_pack("{s:s,s:s,s:s,s:s,s:i,s:s?}", "batch_id",
                                        (const char *)sqlite3_column_text(q, 0), "dataset",
                                        (const char *)sqlite3_column_text(q, 1), "status",
                                        (const char *)sqlite3_column_text(q, 2), "last_progress_at",
                                        clock_rfc3339(sqlite3_column_int64(q, 3), t, sizeof t),
                                        "attempts", sqlite3_column_int(q, 4), "worker",
                                        (const char *)sqlite3_column_text(q, 5)));
    }
    sqlite3_finalize(q);
    *out = a;
    return 0;
}

int sqlite_dlq_new_since(struct store *st, int64_t since_ms, json_t **out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             "SELECT dataset, count(*) FROM dlq WHERE status = 'open' AND received_ms >= ?1"
             " GROUP BY dataset",
             &q, "dlq growth") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, since_ms);
    json_t *o = json_object();
    while (sqlite3_step(q) == SQLITE_ROW)
        json_object_set_new(o, (const char *)sqlite3_column_text(q, 0),
                            json_integer(sqlite3_column_int64(q, 1)));
    sqlite3_finalize(q);
    *out = o;
    return 0;
}

int sqlite_batch_states(struct store *st, json_t **out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s, "SELECT status, count(*) FROM batches GROUP BY status", &q, "batch states") < 0)
        return -1;
    json_t *o = json_object();
    while (sqlite3_step(q) == SQLITE_ROW)
        json_object_set_new(o, (const char *)sqlite3_column_text(q, 0),
                            json_integer(sqlite3_column_int64(q, 1)));
    sqlite3_finalize(q);
    *out = o;
    return 0;
}

/* ---- purge and rebuild ------------------------------------------------------------- */

int sqlite_rollup_purge(struct store *st, int64_t before_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s, "DELETE FROM rollup_minute WHERE minute < ?", &q, "rollup purge") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, before_ms / MINUTE_MS);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "rollup purge");
}

static int exec_sql(struct sqlite_store *s, const char *sql)
{
    return sqlite_exec(s, sql);
}

int sqlite_rollup_rebuild(struct store *st)
{
    struct sqlite_store *s = SQ(st);
    if (exec_sql(s, "DELETE FROM rollup_minute; DELETE FROM rollup_hour; DELETE FROM rollup_errors;"
                    " DELETE FROM dataset_activity; DELETE FROM rollup_day;") < 0)
        return -1;
    /* accepted rows: every dataset table, by _received_at */
    sqlite3_stmt *q;
    if (prep(s, "SELECT name FROM datasets", &q, "rebuild") < 0)
        return -1;
    char sql[1200];
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *ds = (const char *)sqlite3_column_text(q, 0);
        static const char *const kinds[2] = {"minute", "hour"};
        static const long long per[2] = {MINUTE_MS, HOUR_MS};
        for (int k = 0; k < 2; k++) {
            snprintf(
                sql, sizeof sql,
                "INSERT INTO rollup_%s(dataset, %s, received, accepted)"
                " SELECT '%s', b, count(*), count(*) FROM (SELECT CAST((julianday(_received_at)"
                " - 2440587.5) * 86400000.0 AS INTEGER) / %lld b FROM \"ds_%s\") GROUP BY b",
                kinds[k], kinds[k], ds, per[k], ds);
            if (exec_sql(s, sql) < 0) {
                sqlite3_finalize(q);
                return -1;
            }
        }
        snprintf(sql, sizeof sql,
                 "INSERT INTO dataset_activity(dataset, last_received_ms) SELECT '%s',"
                 " CAST((julianday(max(_received_at)) - 2440587.5) * 86400000.0 AS INTEGER)"
                 " FROM \"ds_%s\" HAVING count(*) > 0",
                 ds, ds);
        if (exec_sql(s, sql) < 0) {
            sqlite3_finalize(q);
            return -1;
        }
    }
    sqlite3_finalize(q);
    /* rejected rows: the DLQ (every status), by received_ms; their codes per hour */
    static const char *const more[] = {
        "INSERT INTO rollup_minute(dataset, minute, received, rejected) SELECT dataset,"
        " received_ms / 60000 b, count(*), count(*) FROM dlq GROUP BY dataset, b"
        " ON CONFLICT(dataset, minute) DO UPDATE SET received = received + excluded.received,"
        " rejected = excluded.rejected",
        "INSERT INTO rollup_hour(dataset, hour, received, rejected) SELECT dataset,"
        " received_ms / 3600000 b, count(*), count(*) FROM dlq GROUP BY dataset, b"
        " ON CONFLICT(dataset, hour) DO UPDATE SET received = received + excluded.received,"
        " rejected = excluded.rejected",
        "INSERT INTO rollup_errors(hour, dataset, code, occurrences, batches, sample, last_seen_ms)"
        " SELECT d.received_ms / 3600000 h, d.dataset, json_extract(e.value, '$.code') c,"
        " count(*), count(DISTINCT d.batch_id), max(json_extract(e.value, '$.message')),"
        " max(d.received_ms) FROM dlq d, json_each(d.errors) e GROUP BY h, d.dataset, c",
        "INSERT INTO dataset_activity(dataset, last_received_ms, last_error_ms) SELECT dataset,"
        " max(received_ms), max(received_ms) FROM dlq GROUP BY dataset"
        " ON CONFLICT(dataset) DO UPDATE SET last_error_ms = excluded.last_error_ms,"
        " last_received_ms = max(coalesce(last_received_ms, 0), excluded.last_received_ms)",
        /* batches, by the time they finished */
        "INSERT INTO rollup_hour(dataset, hour, batches, batches_failed) SELECT dataset,"
        " finished_ms / 3600000 b, count(*), sum(status = 'failed') FROM batches"
        " WHERE finished_ms IS NOT NULL GROUP BY dataset, b ON CONFLICT(dataset, hour) DO UPDATE"
        " SET batches = excluded.batches, batches_failed = excluded.batches_failed",
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        if (exec_sql(s, more[i]) < 0)
            return -1;
    return exec_sql(s, "INSERT INTO rollup_day SELECT dataset, hour / 24, sum(received),"
                       " sum(accepted), sum(rejected), sum(duplicate), sum(batches),"
                       " sum(batches_failed) FROM rollup_hour GROUP BY dataset, hour / 24");
}
