/*
 * sqlite_stats.c - rollups (minute and hour buckets per dataset, error
 * codes per hour, each dataset's last activity), kept in the same transaction
 * as the rows they count; the KPI, series and error views read them, so they
 * answer in milliseconds however many rows are stored. Also the sentinel's
 * queries over batches and the DLQ.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/sqlite/sqlite_internal.h"
#include "util/clock.h"
#include "util/mem.h"

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
        int64_t seen = d->codes[i].at_ms ? d->codes[i].at_ms : d->at_ms;
        sqlite3_bind_int64(q, 7, sign > 0 ? seen : 0);
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
        sqlite3_bind_int64(q, 3, d->error_ms ? d->error_ms : d->at_ms);
    else
        sqlite3_bind_null(q, 3);
    return run(s, q);
}

/* The ledger rows of a not yet in the table, written now and marked mark (1: inside the
 * current job, 2: for good). */
static int ledger_write(struct sqlite_store *s, struct roll_acc *a, int mark)
{
    for (size_t i = 0; i < a->nled; i++) {
        struct roll_ledger *l = &a->led[i];
        if (l->written)
            continue;
        sqlite3_stmt *q = kept(s, 5,
                               "INSERT INTO rollup_ledger(dataset, at_ms, batch_id, received,"
                               " accepted, rejected, duplicate, batches, batches_failed, codes)"
                               " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
        if (!q)
            return -1;
        sqlite3_bind_text(q, 1, l->dataset, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, l->at_ms);
        if (l->batch_id[0])
            sqlite3_bind_text(q, 3, l->batch_id, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(q, 3);
        const int64_t v[6] = {l->received,  l->accepted, l->rejected,
                              l->duplicate, l->batches,  l->batches_failed};
        for (int k = 0; k < 6; k++)
            sqlite3_bind_int64(q, 4 + k, v[k]);
        int oom;
        char *codes = roll_ledger_codes_json(l, &oom);
        if (oom) {
            sqlite3_reset(q);
            return sqlite_fail(s, "rollup ledger: out of memory");
        }
        if (codes)
            sqlite3_bind_text(q, 10, codes, -1, free);
        else
            sqlite3_bind_null(q, 10);
        if (run(s, q) < 0)
            return -1;
        l->written = mark;
    }
    return 0;
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
    roll_acc_settle(&s->roll_group, 1);
    roll_acc_merge(&s->roll_group, &s->roll_job);
}

void sqlite_roll_drop_job(struct sqlite_store *s)
{
    roll_acc_settle(&s->roll_group, 0);
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
    int rc = ledger_write(s, g, 2);
    for (size_t i = 0; rc == 0 && i < g->n; i++) {
        struct rollup_code codes[ROLL_MAX_CODES];
        struct rollup_delta d;
        roll_entry_delta(&g->v[i], codes, &d);
        rc = rollup_apply(s, &d, 1);
    }
    roll_acc_clear(g);
    return rc;
}

/* A batch counted before the ledger existed: its counts from the batches table, taken out
 * of the buckets, and a ledger row of the opposite sign so that a rebuild agrees. */
static int undo_unledgered(struct sqlite_store *s, const char *batch_id)
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
        codes[n] = (struct rollup_code){names[n], sqlite3_column_int64(q, 1), NULL, 1, 0};
        n++;
    }
    sqlite3_finalize(q);
    d.codes = codes;
    d.ncodes = n;
    if (rollup_apply(s, &d, -1) < 0)
        return -1;
    struct roll_acc minus = {0};
    struct rollup_delta m = rollup_delta_negated(&d);
    for (size_t k = 0; k < n; k++)
        codes[k].count = -codes[k].count;
    int rc = roll_acc_add(&minus, &m) < 0 ? sqlite_fail(s, "rollup undo: out of memory")
                                          : ledger_write(s, &minus, 2);
    roll_acc_clear(&minus);
    return rc;
}

int sqlite_rollup_undo_batch(struct sqlite_store *s, const char *batch_id)
{
    /* The deltas not written yet go to the ledger first, so that one query finds them all. */
    if (ledger_write(s, &s->roll_group, 1) < 0 || ledger_write(s, &s->roll_job, 1) < 0)
        return -1;
    sqlite3_stmt *q;
    if (prep(s,
             "SELECT dataset, at_ms, received, accepted, rejected, duplicate, batches,"
             " batches_failed, codes FROM rollup_ledger WHERE batch_id = ? AND NOT undone",
             &q, "rollup undo") < 0)
        return -1;
    sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
    int rc = 0, found = 0;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        struct rollup_code codes[ROLL_MAX_CODES];
        json_t *hold;
        size_t n =
            roll_codes_parse((const char *)sqlite3_column_text(q, 8), codes, ROLL_MAX_CODES, &hold);
        struct rollup_delta d = {.dataset = (const char *)sqlite3_column_text(q, 0),
                                 .at_ms = sqlite3_column_int64(q, 1),
                                 .received = sqlite3_column_int64(q, 2),
                                 .accepted = sqlite3_column_int64(q, 3),
                                 .rejected = sqlite3_column_int64(q, 4),
                                 .duplicate = sqlite3_column_int64(q, 5),
                                 .batches = sqlite3_column_int(q, 6),
                                 .batches_failed = sqlite3_column_int(q, 7),
                                 .codes = codes,
                                 .ncodes = n};
        rc = rollup_apply(s, &d, -1);
        json_decref(hold);
        found++;
    }
    sqlite3_finalize(q);
    if (rc < 0)
        return -1;
    if (!found)
        return undo_unledgered(s, batch_id);
    if (prep(s, "UPDATE rollup_ledger SET undone = 1 WHERE batch_id = ? AND NOT undone", &q,
             "rollup undo") < 0)
        return -1;
    sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "rollup undo");
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
            struct rollup_sum *v = sl_realloc(*out, cap * sizeof *v);
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

int sqlite_rollup_chunks(struct store *st, struct rollup_chunk **out, size_t *n)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    *out = NULL;
    *n = 0;
    if (prep(s,
             "SELECT dataset, h FROM (SELECT dataset, at_ms / 3600000 h FROM rollup_ledger"
             " UNION SELECT dataset, day * 24 FROM rollup_day UNION SELECT dataset, hour"
             " FROM rollup_hour UNION SELECT dataset, hour FROM rollup_errors"
             " UNION SELECT dataset, minute / 60 FROM rollup_minute"
             " UNION SELECT dataset, -1 FROM dataset_activity) ORDER BY dataset, h",
             &q, "rebuild") < 0)
        return -1;
    size_t cap = 0;
    int rc = 0;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            struct rollup_chunk *v = sl_realloc(*out, cap * sizeof *v);
            if (!v) {
                rc = sqlite_fail(s, "rebuild: out of memory");
                break;
            }
            *out = v;
        }
        struct rollup_chunk *c = &(*out)[(*n)++];
        snprintf(c->dataset, sizeof c->dataset, "%s", (const char *)sqlite3_column_text(q, 0));
        c->hour = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    if (rc == 0)
        roll_chunks_mark_last(*out, *n);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* One statement of a chunk: ?1 dataset, ?2 hour, ?3 the first minute to rebuild. */
static int chunk_step(struct sqlite_store *s, const char *sql, const struct rollup_chunk *c,
                      int64_t first_minute)
{
    sqlite3_stmt *q;
    if (prep(s, sql, &q, "rebuild") < 0)
        return -1;
    sqlite3_bind_text(q, 1, c->dataset, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, c->hour);
    sqlite3_bind_int64(q, 3, first_minute);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "rebuild");
}

/* The ledger rows of the chunk's hour, and their counts as the buckets add them (an undone
 * row, a batch taken out again, still makes its bucket but counts nothing; a row carried
 * over from before the ledger, batch_id '', makes no minute bucket). */
#define LEDGER_HOUR                                                                                \
    " FROM rollup_ledger l WHERE l.dataset = ?1 AND l.at_ms >= ?2 * 3600000"                       \
    " AND l.at_ms < (?2 + 1) * 3600000"
#define LEDGER_COUNTS                                                                              \
    " sum(CASE WHEN undone THEN 0 ELSE received END), sum(CASE WHEN undone THEN 0 ELSE"            \
    " accepted END), sum(CASE WHEN undone THEN 0 ELSE rejected END), sum(CASE WHEN undone"         \
    " THEN 0 ELSE duplicate END)"
#define HOUR_COUNTS                                                                                \
    " sum(received), sum(accepted), sum(rejected), sum(duplicate), sum(batches),"                  \
    " sum(batches_failed)"

int sqlite_rollup_rebuild(struct store *st, const struct rollup_chunk *c, int64_t minutes_from_ms)
{
    struct sqlite_store *s = SQ(st);
    static const char *const steps[] = {
        "DELETE FROM rollup_minute WHERE dataset = ?1 AND minute >= max(?2 * 60, ?3)"
        " AND minute < (?2 + 1) * 60",
        "DELETE FROM rollup_hour WHERE dataset = ?1 AND hour = ?2",
        "DELETE FROM rollup_errors WHERE hour = ?2 AND dataset = ?1",
        "INSERT INTO rollup_minute(dataset, minute, received, accepted, rejected, duplicate)"
        " SELECT ?1, l.at_ms / 60000 b," LEDGER_COUNTS LEDGER_HOUR
        " AND l.at_ms / 60000 >= ?3 AND coalesce(l.batch_id, '-') <> '' GROUP BY b",
        "INSERT INTO rollup_hour(dataset, hour, received, accepted, rejected, duplicate, batches,"
        " batches_failed) SELECT ?1, ?2," LEDGER_COUNTS ", sum(CASE WHEN undone THEN 0 ELSE"
        " batches END), sum(CASE WHEN undone THEN 0 ELSE batches_failed END)" LEDGER_HOUR
        " HAVING count(*) > 0",
        "INSERT INTO rollup_errors(hour, dataset, code, occurrences, batches, sample,"
        " last_seen_ms) SELECT ?2, ?1, json_extract(e.value, '$.code') c,"
        " sum(CASE WHEN undone THEN 0 ELSE json_extract(e.value, '$.n') END),"
        " sum(CASE WHEN undone THEN 0 ELSE json_extract(e.value, '$.b') END),"
        " max(CASE WHEN json_extract(e.value, '$.n') > 0 THEN json_extract(e.value, '$.sample')"
        " END), coalesce(max(CASE WHEN json_extract(e.value, '$.n') > 0 THEN"
        " coalesce(json_extract(e.value, '$.at'), l.at_ms) END), 0)"
        " FROM rollup_ledger l, json_each(l.codes) e WHERE l.dataset = ?1"
        " AND l.at_ms >= ?2 * 3600000 AND l.at_ms < (?2 + 1) * 3600000 AND l.codes IS NOT NULL"
        " GROUP BY c",
        /* the day, from its hours (the live rollups add every delta to both) */
        "DELETE FROM rollup_day WHERE dataset = ?1 AND day = ?2 / 24",
        "INSERT INTO rollup_day(dataset, day, received, accepted, rejected, duplicate, batches,"
        " batches_failed) SELECT ?1, ?2 / 24," HOUR_COUNTS " FROM rollup_hour WHERE dataset = ?1"
        " AND hour >= ?2 / 24 * 24 AND hour < (?2 / 24 + 1) * 24 HAVING count(*) > 0",
    };
    int64_t first_minute = minutes_from_ms / MINUTE_MS;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (c->hour >= 0 && chunk_step(s, steps[i], c, first_minute) < 0)
            return -1;
    /* The last activity, from every row of the dataset (undone ones too: the live rollups
     * keep the time something arrived when a batch is taken out again); each the newest
     * row that qualifies, found through an index. */
    if (!c->last)
        return 0;
    if (chunk_step(s, "DELETE FROM dataset_activity WHERE dataset = ?1", c, 0) < 0)
        return -1;
    return chunk_step(s,
                      "INSERT INTO dataset_activity(dataset, last_received_ms, last_error_ms)"
                      " SELECT ?1, r, e FROM (SELECT (SELECT at_ms FROM rollup_ledger"
                      " WHERE dataset = ?1 AND (received > 0 OR rejected > 0)"
                      " ORDER BY at_ms DESC LIMIT 1) r, (SELECT at_ms FROM rollup_ledger"
                      " WHERE dataset = ?1 AND rejected > 0 ORDER BY at_ms DESC LIMIT 1) e)"
                      " WHERE r IS NOT NULL",
                      c, 0);
}
