/*
 * pg_stats.c - the rollups in PostgreSQL (minute, hour and day buckets
 * per dataset, error codes per hour, each dataset's last activity), kept in
 * the same transaction as the rows they count, and the KPI, series and error
 * views that read them. Same buckets, semantics and JSON as
 * sqlite_stats.c; one statement per dataset and minute a group commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_internal.h"
#include "util/clock.h"
#include "util/mem.h"

#define MINUTE_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS (24 * HOUR_MS)

/* Every rollup of one delta in one statement: $1 dataset, $2..$4 minute/hour/day, $5..$10
 * the signed counts, $11 the codes as [{code, n, b (batches), sample, t (last seen)}], $12
 * whether to touch dataset_activity, $13 last received, $14 last error (or NULL). */
static const char rollup_sql[] =
    "WITH m AS (INSERT INTO rollup_minute AS t (dataset, minute, received, accepted, rejected,"
    " duplicate) VALUES ($1::text, $2::bigint, $5::bigint, $6::bigint, $7::bigint, $8::bigint)"
    " ON CONFLICT (dataset, minute) DO UPDATE SET received = t.received + excluded.received,"
    " accepted = t.accepted + excluded.accepted, rejected = t.rejected + excluded.rejected,"
    " duplicate = t.duplicate + excluded.duplicate),"
    " h AS (INSERT INTO rollup_hour AS t (dataset, hour, received, accepted, rejected, duplicate,"
    " batches, batches_failed) VALUES ($1::text, $3::bigint, $5::bigint, $6::bigint, $7::bigint,"
    " $8::bigint, $9::bigint, $10::bigint) ON CONFLICT (dataset, hour) DO UPDATE SET"
    " received = t.received + excluded.received, accepted = t.accepted + excluded.accepted,"
    " rejected = t.rejected + excluded.rejected, duplicate = t.duplicate + excluded.duplicate,"
    " batches = t.batches + excluded.batches,"
    " batches_failed = t.batches_failed + excluded.batches_failed),"
    " d AS (INSERT INTO rollup_day AS t (dataset, day, received, accepted, rejected, duplicate,"
    " batches, batches_failed) VALUES ($1::text, $4::bigint, $5::bigint, $6::bigint, $7::bigint,"
    " $8::bigint, $9::bigint, $10::bigint) ON CONFLICT (dataset, day) DO UPDATE SET"
    " received = t.received + excluded.received, accepted = t.accepted + excluded.accepted,"
    " rejected = t.rejected + excluded.rejected, duplicate = t.duplicate + excluded.duplicate,"
    " batches = t.batches + excluded.batches,"
    " batches_failed = t.batches_failed + excluded.batches_failed),"
    " e AS (INSERT INTO rollup_errors AS t (hour, dataset, code, occurrences, batches, sample,"
    " last_seen_ms) SELECT $3::bigint, $1::text, c.code, sum(c.n), sum(c.b), max(c.sample),"
    " max(c.t) FROM jsonb_to_recordset($11::jsonb) AS c(code text, n bigint, b bigint,"
    " sample text, t bigint)"
    " GROUP BY c.code ON CONFLICT (hour, dataset, code) DO UPDATE SET"
    " occurrences = t.occurrences + excluded.occurrences, batches = t.batches + excluded.batches,"
    " sample = coalesce(excluded.sample, t.sample),"
    " last_seen_ms = greatest(t.last_seen_ms, excluded.last_seen_ms))"
    " INSERT INTO dataset_activity AS t (dataset, last_received_ms, last_error_ms)"
    " SELECT $1::text, $13::bigint, $14::bigint WHERE $12::boolean ON CONFLICT (dataset) DO UPDATE"
    " SET last_received_ms = greatest(coalesce(t.last_received_ms, 0), excluded.last_received_ms),"
    " last_error_ms = CASE WHEN excluded.last_error_ms IS NULL THEN t.last_error_ms"
    " ELSE greatest(coalesce(t.last_error_ms, 0), excluded.last_error_ms) END";

/* Add d (or subtract it: sign -1; then no samples and no activity, as in SQLite). */
static int rollup_apply(struct pg_store *s, const struct rollup_delta *d, int sign)
{
    json_t *codes = json_array();
    for (size_t i = 0; codes && i < d->ncodes; i++) {
        const char *sample = sign > 0 ? d->codes[i].sample : NULL;
        int64_t seen = sign < 0 ? 0 : d->codes[i].at_ms ? d->codes[i].at_ms : d->at_ms;
        if (json_array_append_new(codes,
                                  json_pack("{s:s,s:I,s:I,s:s?,s:I}", "code", d->codes[i].code, "n",
                                            (json_int_t)(sign * d->codes[i].count), "b",
                                            (json_int_t)(sign * d->codes[i].batches), "sample",
                                            sample, "t", (json_int_t)seen)) < 0) {
            json_decref(codes);
            codes = NULL;
        }
    }
    char *cj = codes ? json_dumps(codes, JSON_COMPACT) : NULL;
    json_decref(codes);
    if (!cj) {
        snprintf(s->err, sizeof s->err, "rollup: out of memory");
        return -1;
    }
    char b[13][24];
    int activity = sign > 0 && (d->received || d->rejected);
    const char *p[14] = {d->dataset,
                         pg_int(b[0], d->at_ms / MINUTE_MS),
                         pg_int(b[1], d->at_ms / HOUR_MS),
                         pg_int(b[2], d->at_ms / DAY_MS),
                         pg_int(b[3], sign * d->received),
                         pg_int(b[4], sign * d->accepted),
                         pg_int(b[5], sign * d->rejected),
                         pg_int(b[6], sign * d->duplicate),
                         pg_int(b[7], sign * d->batches),
                         pg_int(b[8], sign * d->batches_failed),
                         cj,
                         activity ? "t" : "f",
                         pg_int(b[10], d->at_ms),
                         d->rejected ? pg_int(b[11], d->error_ms ? d->error_ms : d->at_ms) : NULL};
    int rc = pg_cmd(s, "rollup", rollup_sql, 14, p);
    free(cj);
    return rc;
}

/* Inside a transaction the delta is summed with the group's (written by pg_roll_flush before
 * COMMIT: one statement per dataset and minute instead of one per request); outside one it
 * is written now. */
int pg_rollup_add(struct store *st, const struct rollup_delta *d)
{
    struct pg_store *s = PG(st);
    if (roll_acc_add(&s->roll_job, d) < 0) {
        snprintf(s->err, sizeof s->err, "rollup: out of memory");
        return -1;
    }
    return PQtransactionStatus(s->conn) == PQTRANS_INTRANS ? 0 : pg_roll_flush(s);
}

/* The ledger rows of a not yet in the table, in one statement, marked mark (1: inside the
 * current job, 2: for good). */
static int ledger_write(struct pg_store *s, struct roll_acc *a, int mark)
{
    json_t *rows = json_array();
    size_t n = 0;
    for (size_t i = 0; rows && i < a->nled; i++) {
        const struct roll_ledger *l = &a->led[i];
        if (l->written)
            continue;
        n++;
        int oom;
        char *codes = roll_ledger_codes_json(l, &oom);
        if (oom ||
            json_array_append_new(
                rows,
                json_pack("{s:s,s:I,s:s?,s:I,s:I,s:I,s:I,s:I,s:I,s:s?}", "dataset", l->dataset,
                          "at_ms", (json_int_t)l->at_ms, "batch_id",
                          l->batch_id[0] ? l->batch_id : NULL, "received", (json_int_t)l->received,
                          "accepted", (json_int_t)l->accepted, "rejected", (json_int_t)l->rejected,
                          "duplicate", (json_int_t)l->duplicate, "batches", (json_int_t)l->batches,
                          "batches_failed", (json_int_t)l->batches_failed, "codes", codes)) < 0) {
            json_decref(rows);
            rows = NULL;
        }
        free(codes);
    }
    char *txt = rows && n ? json_dumps(rows, JSON_COMPACT) : NULL;
    json_decref(rows);
    if (!n)
        return 0;
    if (!txt) {
        snprintf(s->err, sizeof s->err, "rollup ledger: out of memory");
        return -1;
    }
    const char *p[1] = {txt};
    int rc = pg_cmd(s, "rollup ledger",
                    "INSERT INTO rollup_ledger (dataset, at_ms, batch_id, received, accepted,"
                    " rejected, duplicate, batches, batches_failed, codes) SELECT r.dataset,"
                    " r.at_ms, r.batch_id, r.received, r.accepted, r.rejected, r.duplicate,"
                    " r.batches, r.batches_failed, r.codes FROM jsonb_to_recordset($1::jsonb) AS"
                    " r(dataset text, at_ms bigint, batch_id text, received bigint, accepted"
                    " bigint, rejected bigint, duplicate bigint, batches bigint, batches_failed"
                    " bigint, codes text)",
                    1, p);
    free(txt);
    if (rc < 0)
        return -1;
    for (size_t i = 0; i < a->nled; i++)
        if (!a->led[i].written)
            a->led[i].written = mark;
    return 0;
}

void pg_roll_keep_job(struct pg_store *s)
{
    roll_acc_settle(&s->roll_group, 1);
    roll_acc_merge(&s->roll_group, &s->roll_job);
}

void pg_roll_drop_job(struct pg_store *s)
{
    roll_acc_settle(&s->roll_group, 0);
    roll_acc_clear(&s->roll_job);
}

void pg_roll_drop_all(struct pg_store *s)
{
    roll_acc_clear(&s->roll_job);
    roll_acc_clear(&s->roll_group);
}

int pg_roll_flush(struct pg_store *s)
{
    pg_roll_keep_job(s);
    int rc = ledger_write(s, &s->roll_group, 2); /* the ledger first: see rollup_acc.h */
    for (size_t i = 0; rc == 0 && i < s->roll_group.n; i++) {
        struct rollup_code codes[ROLL_MAX_CODES];
        struct rollup_delta d;
        roll_entry_delta(&s->roll_group.v[i], codes, &d);
        rc = rollup_apply(s, &d, 1);
    }
    roll_acc_clear(&s->roll_group);
    return rc;
}

/* A batch counted before the ledger existed: its counts from the batches table, a ledger
 * row of the opposite sign (so that a rebuild agrees; written first, see rollup_acc.h), and
 * the same taken out of the buckets. */
static int undo_unledgered(struct pg_store *s, const char *batch_id)
{
    const char *p[1] = {batch_id};
    PGresult *b = pg_exec(s, "rollup undo",
                          "SELECT dataset, finished_ms, row_count_total, row_count_inserted,"
                          " row_count_invalid, row_count_duplicate, status FROM batches"
                          " WHERE id = $1 AND finished_ms IS NOT NULL"
                          " AND status IN ('completed', 'failed') AND row_count_total > 0",
                          1, p);
    if (!b)
        return -1;
    if (PQntuples(b) == 0) {
        PQclear(b);
        return 0; /* nothing was counted */
    }
    PGresult *c = pg_exec(s, "rollup undo",
                          "SELECT code, count(*) FROM batch_errors WHERE batch_id = $1"
                          " GROUP BY code ORDER BY code",
                          1, p);
    if (!c) {
        PQclear(b);
        return -1;
    }
    int rc = -1, n = PQntuples(c);
    struct rollup_code *codes = sl_calloc(n ? (size_t)n : 1, sizeof *codes);
    if (!codes) {
        snprintf(s->err, sizeof s->err, "rollup undo: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        codes[i] = (struct rollup_code){
            .code = PQgetvalue(c, i, 0), .count = -pg_get_int(c, i, 1), .batches = 1};
    int failed = strcmp(PQgetvalue(b, 0, 6), "failed") == 0;
    struct rollup_delta d = {.dataset = PQgetvalue(b, 0, 0),
                             .at_ms = pg_get_int(b, 0, 1),
                             .received = pg_get_int(b, 0, 2),
                             .accepted = failed ? 0 : pg_get_int(b, 0, 3),
                             .rejected = pg_get_int(b, 0, 4),
                             .duplicate = failed ? 0 : pg_get_int(b, 0, 5),
                             .batches = 1,
                             .batches_failed = failed,
                             .codes = codes,
                             .ncodes = (size_t)n};
    struct roll_acc minus = {0};
    struct rollup_delta m = rollup_delta_negated(&d); /* the codes are negative already */
    if (roll_acc_add(&minus, &m) < 0) {
        snprintf(s->err, sizeof s->err, "rollup undo: out of memory");
    } else if (ledger_write(s, &minus, 2) == 0) {
        for (int i = 0; i < n; i++)
            codes[i].count = -codes[i].count;
        rc = rollup_apply(s, &d, -1);
    }
    roll_acc_clear(&minus);
done:
    free(codes);
    PQclear(c);
    PQclear(b);
    return rc;
}

int pg_rollup_undo_batch(struct pg_store *s, const char *batch_id)
{
    /* The deltas not written yet go to the ledger first, so that one statement finds them
     * all; marking them undone before the buckets change keeps the lock order. */
    if (ledger_write(s, &s->roll_group, 1) < 0 || ledger_write(s, &s->roll_job, 1) < 0)
        return -1;
    const char *p[1] = {batch_id};
    PGresult *r = pg_exec(s, "rollup undo",
                          "UPDATE rollup_ledger SET undone = 1 WHERE batch_id = $1 AND undone = 0"
                          " RETURNING dataset, at_ms, received, accepted, rejected,"
                          " duplicate, batches, batches_failed, codes",
                          1, p);
    if (!r)
        return -1;
    int rc = 0, n = PQntuples(r);
    for (int i = 0; rc == 0 && i < n; i++) {
        struct rollup_code codes[ROLL_MAX_CODES];
        json_t *hold;
        size_t nc = roll_codes_parse(PQgetisnull(r, i, 8) ? NULL : PQgetvalue(r, i, 8), codes,
                                     ROLL_MAX_CODES, &hold);
        struct rollup_delta d = {.dataset = PQgetvalue(r, i, 0),
                                 .at_ms = pg_get_int(r, i, 1),
                                 .received = pg_get_int(r, i, 2),
                                 .accepted = pg_get_int(r, i, 3),
                                 .rejected = pg_get_int(r, i, 4),
                                 .duplicate = pg_get_int(r, i, 5),
                                 .batches = (int)pg_get_int(r, i, 6),
                                 .batches_failed = (int)pg_get_int(r, i, 7),
                                 .codes = codes,
                                 .ncodes = nc};
        rc = rollup_apply(s, &d, -1);
        json_decref(hold);
    }
    PQclear(r);
    if (rc < 0)
        return -1;
    return n ? 0 : undo_unledgered(s, batch_id);
}

int pg_rollup_window(struct store *st, int64_t from_ms, struct rollup_sum **out, size_t *n)
{
    struct pg_store *s = PG(st);
    char b[24];
    const char *p[1] = {pg_int(b, from_ms / MINUTE_MS)};
    *out = NULL;
    *n = 0;
    PGresult *r = pg_exec(
        s, "rollup window",
        "SELECT a.dataset, coalesce(w.r, 0), coalesce(w.a, 0), coalesce(w.j, 0),"
        " coalesce(w.d, 0), coalesce(a.last_received_ms, 0), coalesce(a.last_error_ms, 0)"
        " FROM dataset_activity a LEFT JOIN (SELECT dataset, sum(received) r, sum(accepted) a,"
        " sum(rejected) j, sum(duplicate) d FROM rollup_minute WHERE minute >= $1::bigint"
        " GROUP BY dataset) w ON w.dataset = a.dataset ORDER BY a.dataset COLLATE \"C\"",
        1, p);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    if (rows > 0 && !(*out = sl_calloc((size_t)rows, sizeof **out))) {
        PQclear(r);
        snprintf(s->err, sizeof s->err, "rollup window: out of memory");
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        struct rollup_sum *v = &(*out)[i];
        snprintf(v->dataset, sizeof v->dataset, "%s", PQgetvalue(r, i, 0));
        v->received = pg_get_int(r, i, 1);
        v->accepted = pg_get_int(r, i, 2);
        v->rejected = pg_get_int(r, i, 3);
        v->duplicate = pg_get_int(r, i, 4);
        v->last_received_ms = pg_get_int(r, i, 5);
        v->last_error_ms = pg_get_int(r, i, 6);
    }
    *n = (size_t)rows;
    PQclear(r);
    return 0;
}

static double pct(int64_t part, int64_t whole)
{
    return whole ? (double)(int64_t)(10000.0 * (double)part / (double)whole + 0.5) / 100.0 : 0.0;
}

/* One period of the KPIs from from_ms (0: all time, from the day buckets), for one dataset
 * or all (dataset NULL): rows from the rollups, batches by status by creation time. A query
 * per case, as in SQLite; the parameters are the hour or time (when not all time), then the
 * dataset (when one). */
static json_t *period(struct pg_store *s, int64_t from_ms, const char *dataset)
{
    static const char *const rows_sql[2][2] = {
        {"SELECT coalesce(sum(received),0), coalesce(sum(accepted),0), coalesce(sum(rejected),0),"
         " coalesce(sum(duplicate),0) FROM rollup_hour WHERE hour >= $1::bigint",
         "SELECT coalesce(sum(received),0), coalesce(sum(accepted),0), coalesce(sum(rejected),0),"
         " coalesce(sum(duplicate),0) FROM rollup_hour WHERE dataset = $2 AND hour >= $1::bigint"},
        {"SELECT coalesce(sum(received),0), coalesce(sum(accepted),0), coalesce(sum(rejected),0),"
         " coalesce(sum(duplicate),0) FROM rollup_day",
         "SELECT coalesce(sum(received),0), coalesce(sum(accepted),0), coalesce(sum(rejected),0),"
         " coalesce(sum(duplicate),0) FROM rollup_day WHERE dataset = $1"}};
    static const char *const batch_sql[2][2] = {
        {"SELECT status, count(*) FROM batches WHERE created_ms >= $1::bigint GROUP BY status"
         " ORDER BY status COLLATE \"C\"",
         "SELECT status, count(*) FROM batches WHERE created_ms >= $1::bigint AND dataset = $2"
         " GROUP BY status ORDER BY status COLLATE \"C\""},
        {"SELECT status, count(*) FROM batches GROUP BY status ORDER BY status COLLATE \"C\"",
         "SELECT status, count(*) FROM batches WHERE dataset = $1 GROUP BY status"
         " ORDER BY status COLLATE \"C\""}};
    int all = from_ms == 0, one = dataset != NULL;
    char hb[24], tb[24];
    const char *ph[2], *pt[2];
    int np = 0;
    if (!all) {
        ph[np] = pg_int(hb, from_ms / HOUR_MS);
        pt[np++] = pg_int(tb, from_ms);
    }
    if (one) {
        ph[np] = dataset;
        pt[np++] = dataset;
    }
    PGresult *r = pg_exec(s, "kpis", rows_sql[all][one], np, ph);
    if (!r)
        return NULL;
    int64_t rcv = pg_get_int(r, 0, 0), acc = pg_get_int(r, 0, 1), rej = pg_get_int(r, 0, 2),
            dup = pg_get_int(r, 0, 3);
    PQclear(r);
    if (!(r = pg_exec(s, "kpis", batch_sql[all][one], np, pt)))
        return NULL;
    json_t *b = json_object();
    for (int i = 0; b && i < PQntuples(r); i++)
        json_object_set_new(b, PQgetvalue(r, i, 0), json_integer(pg_get_int(r, i, 1)));
    PQclear(r);
    return json_pack("{s:o,s:I,s:I,s:I,s:I,s:f}", "batches", b, "rows_received", (json_int_t)rcv,
                     "rows_inserted", (json_int_t)acc, "rows_invalid", (json_int_t)rej,
                     "rows_duplicate", (json_int_t)dup, "error_rate_pct", pct(rej, rcv));
}

int pg_stats_kpis(struct store *st, int64_t now_ms, const char *dataset, json_t **out)
{
    struct pg_store *s = PG(st);
    int64_t day = now_ms - now_ms % DAY_MS;
    json_t *today = period(s, day ? day : 1, dataset),
           *last24 = period(s, now_ms - 23 * HOUR_MS, dataset), *all = period(s, 0, dataset);
    int64_t open = 0, last = 0;
    int ok = today && last24 && all;
    const char *p[1] = {dataset};
    PGresult *r = ok ? pg_exec(s, "kpis",
                               dataset ? "SELECT count(*) FROM dlq WHERE status = 'open'"
                                         " AND dataset = $1"
                                       : "SELECT count(*) FROM dlq WHERE status = 'open'",
                               dataset ? 1 : 0, p)
                     : NULL;
    if (r)
        open = pg_get_int(r, 0, 0);
    ok = ok && r;
    PQclear(r);
    r = ok ? pg_exec(s, "kpis",
                     "SELECT coalesce(max(last_received_ms), 0) FROM dataset_activity"
                     " WHERE $1::text IS NULL OR dataset = $1::text",
                     1, p)
           : NULL;
    if (r)
        last = pg_get_int(r, 0, 0);
    ok = ok && r;
    PQclear(r);
    if (!ok) {
        json_decref(today);
        json_decref(last24);
        json_decref(all);
        return -1;
    }
    char t[32];
    *out = json_pack("{s:o,s:o,s:o,s:I,s:o}", "today", today, "last_24h", last24, "all_time", all,
                     "open_dlq_entries", (json_int_t)open, "last_ingest_at",
                     last ? json_string(clock_rfc3339(last, t, sizeof t)) : json_null());
    if (!*out)
        snprintf(s->err, sizeof s->err, "kpis: out of memory");
    return *out ? 0 : -1;
}

int pg_stats_series(struct store *st, int monthly, int64_t from_ms, const char *dataset,
                    json_t **out)
{
    struct pg_store *s = PG(st);
    static const char *const sql[2][2] = {
        {"SELECT dataset, hour, batches, received, rejected FROM rollup_hour"
         " WHERE hour >= $1::bigint ORDER BY hour, dataset COLLATE \"C\"",
         "SELECT dataset, hour, batches, received, rejected FROM rollup_hour WHERE dataset = $2"
         " AND hour >= $1::bigint ORDER BY hour"},
        {"SELECT dataset, to_char(to_timestamp(day * 86400) AT TIME ZONE 'UTC', 'YYYY-MM') m,"
         " sum(batches), sum(received), sum(rejected) FROM rollup_day WHERE day >= $1::bigint"
         " GROUP BY m, dataset ORDER BY m, dataset COLLATE \"C\"",
         "SELECT dataset, to_char(to_timestamp(day * 86400) AT TIME ZONE 'UTC', 'YYYY-MM') m,"
         " sum(batches), sum(received), sum(rejected) FROM rollup_day WHERE dataset = $2"
         " AND day >= $1::bigint GROUP BY m, dataset ORDER BY m"}};
    char b[24];
    const char *p[2] = {pg_int(b, monthly ? from_ms / DAY_MS : from_ms / HOUR_MS), dataset};
    PGresult *r = pg_exec(s, "stats", sql[monthly != 0][dataset != NULL], dataset ? 2 : 1, p);
    if (!r)
        return -1;
    json_t *a = json_array();
    for (int i = 0; a && i < PQntuples(r); i++) {
        char t[32];
        int64_t rows = pg_get_int(r, i, 3), errs = pg_get_int(r, i, 4);
        json_t *bucket =
            monthly ? json_string(PQgetvalue(r, i, 1))
                    : json_string(clock_rfc3339(pg_get_int(r, i, 1) * HOUR_MS, t, sizeof t));
        json_array_append_new(a, json_pack("{s:s,s:o,s:I,s:I,s:I,s:f}", "dataset",
                                           PQgetvalue(r, i, 0), monthly ? "month" : "hour_bucket",
                                           bucket, "total_batches", (json_int_t)pg_get_int(r, i, 2),
                                           "total_rows", (json_int_t)rows, "error_rows",
                                           (json_int_t)errs, "error_rate_pct", pct(errs, rows)));
    }
    PQclear(r);
    if (!a)
        snprintf(s->err, sizeof s->err, "stats: out of memory");
    *out = a;
    return a ? 0 : -1;
}

int pg_stats_errors(struct store *st, int64_t from_ms, const char *dataset, json_t **out)
{
    struct pg_store *s = PG(st);
    char b[24];
    const char *p[2] = {pg_int(b, from_ms / HOUR_MS), dataset};
    PGresult *r = pg_exec(
        s, "errors",
        "SELECT code, sum(occurrences) n, sum(batches), max(last_seen_ms),"
        " (SELECT sample FROM rollup_errors e2 WHERE e2.code = e.code AND e2.hour >= $1::bigint"
        " AND ($2::text IS NULL OR e2.dataset = $2::text) AND e2.sample IS NOT NULL"
        " ORDER BY e2.last_seen_ms DESC LIMIT 1)"
        " FROM rollup_errors e WHERE hour >= $1::bigint AND ($2::text IS NULL OR dataset = "
        "$2::text)"
        " GROUP BY code HAVING sum(occurrences) > 0 ORDER BY n DESC, code COLLATE \"C\"",
        2, p);
    if (!r)
        return -1;
    json_t *a = json_array();
    for (int i = 0; a && i < PQntuples(r); i++) {
        char t[32];
        const char *sample = PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4);
        json_array_append_new(
            a, json_pack("{s:s,s:I,s:I,s:s?,s:s}", "error_code", PQgetvalue(r, i, 0),
                         "occurrence_count", (json_int_t)pg_get_int(r, i, 1), "affected_batches",
                         (json_int_t)pg_get_int(r, i, 2), "sample_message", sample, "last_seen_at",
                         clock_rfc3339(pg_get_int(r, i, 3), t, sizeof t)));
    }
    PQclear(r);
    if (!a)
        snprintf(s->err, sizeof s->err, "errors: out of memory");
    *out = a;
    return a ? 0 : -1;
}

/* ---- rebuild ---------------------------------------------------------------------- */

int pg_rollup_chunks(struct store *st, struct rollup_chunk **out, size_t *n)
{
    struct pg_store *s = PG(st);
    *out = NULL;
    *n = 0;
    PGresult *r = pg_exec(
        s, "rebuild",
        "SELECT dataset, h FROM (SELECT dataset, at_ms / 3600000 AS h FROM rollup_ledger"
        " UNION SELECT dataset, day * 24 FROM rollup_day UNION SELECT dataset, hour"
        " FROM rollup_hour UNION SELECT dataset, hour FROM rollup_errors"
        " UNION SELECT dataset, minute / 60 FROM rollup_minute"
        " UNION SELECT dataset, -1 FROM dataset_activity) x ORDER BY dataset COLLATE \"C\", h",
        0, NULL);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    *out = sl_calloc(rows ? (size_t)rows : 1, sizeof **out);
    if (!*out) {
        PQclear(r);
        snprintf(s->err, sizeof s->err, "rebuild: out of memory");
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        snprintf((*out)[i].dataset, sizeof(*out)[i].dataset, "%s", PQgetvalue(r, i, 0));
        (*out)[i].hour = pg_get_int(r, i, 1);
    }
    *n = (size_t)rows;
    PQclear(r);
    roll_chunks_mark_last(*out, *n);
    return 0;
}

/* The ledger rows of the chunk's hour ($1 dataset, $2 hour), and their counts as the
 * buckets add them (an undone row, a batch taken out again, still makes its bucket but
 * counts nothing; a row carried over from before the ledger, batch_id '', makes no minute
 * bucket). */
#define LEDGER_HOUR                                                                                \
    " FROM rollup_ledger l WHERE l.dataset = $1::text AND l.at_ms >= $2::bigint * 3600000"         \
    " AND l.at_ms < ($2::bigint + 1) * 3600000"
#define LEDGER_COUNTS                                                                              \
    " sum(CASE WHEN undone <> 0 THEN 0 ELSE received END), sum(CASE WHEN undone <> 0 THEN 0 ELSE"  \
    " accepted END), sum(CASE WHEN undone <> 0 THEN 0 ELSE rejected END), sum(CASE WHEN undone "   \
    "<> 0"                                                                                         \
    " THEN 0 ELSE duplicate END)"

int pg_rollup_rebuild(struct store *st, const struct rollup_chunk *c, int64_t minutes_from_ms)
{
    struct pg_store *s = PG(st);
    /* Each statement names all three parameters ($3 the first minute to rebuild), so that
     * their types are known. */
    static const char *const steps[] = {
        "DELETE FROM rollup_minute WHERE dataset = $1::text AND minute >= greatest($2::bigint *"
        " 60, $3::bigint) AND minute < ($2::bigint + 1) * 60",
        "DELETE FROM rollup_hour WHERE dataset = $1::text AND hour = $2::bigint"
        " AND $3::bigint IS NOT NULL",
        "DELETE FROM rollup_errors WHERE hour = $2::bigint AND dataset = $1::text"
        " AND $3::bigint IS NOT NULL",
        "INSERT INTO rollup_minute (dataset, minute, received, accepted, rejected, duplicate)"
        " SELECT $1::text, l.at_ms / 60000 AS b," LEDGER_COUNTS LEDGER_HOUR
        " AND l.at_ms / 60000 >= $3::bigint AND coalesce(l.batch_id, '-') <> '' GROUP BY b",
        "INSERT INTO rollup_hour (dataset, hour, received, accepted, rejected, duplicate,"
        " batches, batches_failed) SELECT $1::text, $2::bigint," LEDGER_COUNTS
        ", sum(CASE WHEN undone <> 0 THEN 0 ELSE batches END), sum(CASE WHEN undone <> 0 THEN 0 "
        "ELSE"
        " batches_failed END)" LEDGER_HOUR " AND $3::bigint IS NOT NULL HAVING count(*) > 0",
        "INSERT INTO rollup_errors (hour, dataset, code, occurrences, batches, sample,"
        " last_seen_ms) SELECT $2::bigint, $1::text, e.v ->> 'code' AS c,"
        " sum(CASE WHEN undone <> 0 THEN 0 ELSE (e.v ->> 'n')::bigint END),"
        " sum(CASE WHEN undone <> 0 THEN 0 ELSE (e.v ->> 'b')::bigint END),"
        " max(CASE WHEN (e.v ->> 'n')::bigint > 0 THEN (e.v ->> 'sample') END COLLATE \"C\"),"
        " coalesce(max(CASE WHEN (e.v ->> 'n')::bigint > 0 THEN coalesce((e.v ->> 'at')::bigint,"
        " l.at_ms) END), 0)"
        " FROM rollup_ledger l CROSS JOIN LATERAL jsonb_array_elements(l.codes::jsonb) AS e(v)"
        " WHERE l.dataset = $1::text AND l.at_ms >= $2::bigint * 3600000"
        " AND l.at_ms < ($2::bigint + 1) * 3600000 AND l.codes IS NOT NULL"
        " AND $3::bigint IS NOT NULL GROUP BY c",
        /* the day, from its hours (the live rollups add every delta to both) */
        "DELETE FROM rollup_day WHERE dataset = $1::text AND day = $2::bigint / 24"
        " AND $3::bigint IS NOT NULL",
        "INSERT INTO rollup_day (dataset, day, received, accepted, rejected, duplicate, batches,"
        " batches_failed) SELECT $1::text, $2::bigint / 24, sum(received), sum(accepted),"
        " sum(rejected), sum(duplicate), sum(batches), sum(batches_failed) FROM rollup_hour"
        " WHERE dataset = $1::text AND hour >= $2::bigint / 24 * 24"
        " AND hour < ($2::bigint / 24 + 1) * 24 AND $3::bigint IS NOT NULL HAVING count(*) > 0",
    };
    char b[2][24];
    const char *p[3] = {c->dataset, pg_int(b[0], c->hour),
                        pg_int(b[1], minutes_from_ms / MINUTE_MS)};
    /* Writers that count wait here until this chunk commits (they take the ledger first). */
    if (pg_cmd(s, "rebuild", "LOCK TABLE rollup_ledger IN EXCLUSIVE MODE", 0, NULL) < 0)
        return -1;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (c->hour >= 0 && pg_cmd(s, "rebuild", steps[i], 3, p) < 0)
            return -1;
    if (!c->last)
        return 0;
    /* The last activity, from every row of the dataset (undone ones too: the live rollups
     * keep the time something arrived when a batch is taken out again); each the newest
     * row that qualifies, found through an index. */
    return pg_cmd(s, "rebuild", "DELETE FROM dataset_activity WHERE dataset = $1::text", 1, p) < 0
               ? -1
               : pg_cmd(s, "rebuild",
                        "INSERT INTO dataset_activity (dataset, last_received_ms, last_error_ms)"
                        " SELECT $1::text, r, e FROM (SELECT (SELECT at_ms FROM rollup_ledger"
                        " WHERE dataset = $1::text AND (received > 0 OR rejected > 0)"
                        " ORDER BY at_ms DESC LIMIT 1) AS r, (SELECT at_ms FROM rollup_ledger"
                        " WHERE dataset = $1::text AND rejected > 0 ORDER BY at_ms DESC"
                        " LIMIT 1) AS e) x WHERE r IS NOT NULL",
                        1, p);
}

int pg_rollup_purge(struct store *st, int64_t before_ms)
{
    char b[24];
    const char *p[1] = {pg_int(b, before_ms / ROLL_MINUTE_MS)};
    return pg_cmd(PG(st), "rollup purge", "DELETE FROM rollup_minute WHERE minute < $1::bigint", 1,
                  p);
}
