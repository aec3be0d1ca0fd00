/*
 * store_pg_stats.c - the rollups in PostgreSQL (minute, hour and day buckets
 * per dataset, error codes per hour, each dataset's last activity), kept in
 * the same transaction as the rows they count, and the KPI, series and error
 * views that read them. Same buckets, semantics and JSON as
 * store_sqlite_stats.c; one statement per dataset and minute a group commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"
#include "util/clock.h"

#define MINUTE_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS (24 * HOUR_MS)

/* Every rollup of one delta in one statement: $1 dataset, $2..$4 minute/hour/day, $5..$10
 * the signed counts, $11 the codes as [{code, n, b (batches), sample}], $12 their last_seen_ms,
 * $13 whether to touch dataset_activity, $14 last received, $15 last error (or NULL). */
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
    " $12::bigint FROM jsonb_to_recordset($11::jsonb) AS c(code text, n bigint, b bigint,"
    " sample text)"
    " GROUP BY c.code ON CONFLICT (hour, dataset, code) DO UPDATE SET"
    " occurrences = t.occurrences + excluded.occurrences, batches = t.batches + excluded.batches,"
    " sample = coalesce(excluded.sample, t.sample),"
    " last_seen_ms = greatest(t.last_seen_ms, excluded.last_seen_ms))"
    " INSERT INTO dataset_activity AS t (dataset, last_received_ms, last_error_ms)"
    " SELECT $1::text, $14::bigint, $15::bigint WHERE $13::boolean ON CONFLICT (dataset) DO UPDATE"
    " SET last_received_ms = greatest(coalesce(t.last_received_ms, 0), excluded.last_received_ms),"
    " last_error_ms = CASE WHEN excluded.last_error_ms IS NULL THEN t.last_error_ms"
    " ELSE greatest(coalesce(t.last_error_ms, 0), excluded.last_error_ms) END";

/* Add d (or subtract it: sign -1; then no samples and no activity, as in SQLite). */
static int rollup_apply(struct pg_store *s, const struct rollup_delta *d, int sign)
{
    json_t *codes = json_array();
    for (size_t i = 0; codes && i < d->ncodes; i++) {
        const char *sample = sign > 0 ? d->codes[i].sample : NULL;
        if (json_array_append_new(codes, json_pack("{s:s,s:I,s:I,s:s?}", "code", d->codes[i].code,
                                                   "n", (json_int_t)(sign * d->codes[i].count), "b",
                                                   (json_int_t)(sign * d->codes[i].batches),
                                                   "sample", sample)) < 0) {
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
    const char *p[15] = {d->dataset,
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
                         pg_int(b[9], sign > 0 ? d->at_ms : 0),
                         activity ? "t" : "f",
                         pg_int(b[10], d->at_ms),
                         d->rejected ? pg_int(b[11], d->at_ms) : NULL};
    int rc = pg_cmd(s, "rollup", rollup_sql, 15, p);
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

void pg_roll_keep_job(struct pg_store *s)
{
    roll_acc_merge(&s->roll_group, &s->roll_job);
}

void pg_roll_drop_job(struct pg_store *s)
{
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
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->roll_group.n; i++) {
        struct rollup_code codes[ROLL_MAX_CODES];
        struct rollup_delta d;
        roll_entry_delta(&s->roll_group.v[i], codes, &d);
        rc = rollup_apply(s, &d, 1);
    }
    roll_acc_clear(&s->roll_group);
    return rc;
}

int pg_rollup_undo_batch(struct pg_store *s, const char *batch_id)
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
    struct rollup_code *codes = calloc(n ? (size_t)n : 1, sizeof *codes);
    if (!codes) {
        snprintf(s->err, sizeof s->err, "rollup undo: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        codes[i] = (struct rollup_code){
            .code = PQgetvalue(c, i, 0), .count = pg_get_int(c, i, 1), .batches = 1};
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
    rc = rollup_apply(s, &d, -1);
done:
    free(codes);
    PQclear(c);
    PQclear(b);
    return rc;
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
    if (rows > 0 && !(*out = calloc((size_t)rows, sizeof **out))) {
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

/* The accepted rows of dataset ds (its table ds_<name>), by _received_at. */
static int rebuild_dataset(struct pg_store *s, const char *ds)
{
    static const char *const kinds[2] = {"minute", "hour"};
    static const long long per[2] = {MINUTE_MS, HOUR_MS};
    size_t len = strlen(ds);
    char *table = malloc(len + 4);
    char *lit = PQescapeLiteral(s->conn, ds, len), *ident = NULL, *sql = NULL;
    int rc = -1;
    if (!table || !lit) {
        pg_fail(s, "rebuild");
        goto done;
    }
    snprintf(table, len + 4, "ds_%s", ds);
    if (!(ident = PQescapeIdentifier(s->conn, table, len + 3))) {
        pg_fail(s, "rebuild");
        goto done;
    }
    for (int k = 0; k < 3; k++) {
        free(sql);
        int n = k < 2 ? asprintf(&sql,
                                 "INSERT INTO rollup_%s(dataset, %s, received, accepted)"
                                 " SELECT %s, b, count(*), count(*) FROM (SELECT (extract(epoch"
                                 " FROM _received_at::timestamptz) * 1000)::bigint / %lld b"
                                 " FROM %s) x GROUP BY b",
                                 kinds[k], kinds[k], lit, per[k], ident)
                      : asprintf(&sql,
                                 "INSERT INTO dataset_activity(dataset, last_received_ms)"
                                 " SELECT %s, (extract(epoch FROM max(_received_at::timestamptz))"
                                 " * 1000)::bigint FROM %s HAVING count(*) > 0",
                                 lit, ident);
        if (n < 0) {
            sql = NULL;
            snprintf(s->err, sizeof s->err, "rebuild: out of memory");
            goto done;
        }
        if (pg_cmd(s, "rebuild", sql, 0, NULL) < 0)
            goto done;
    }
    rc = 0;
done:
    free(sql);
    PQfreemem(ident);
    PQfreemem(lit);
    free(table);
    return rc;
}

int pg_rollup_purge(struct store *st, int64_t before_ms)
{
    char b[24];
    const char *p[1] = {pg_int(b, before_ms / ROLL_MINUTE_MS)};
    return pg_cmd(PG(st), "rollup purge", "DELETE FROM rollup_minute WHERE minute < $1::bigint", 1,
                  p);
}

int pg_rollup_rebuild(struct store *st)
{
    struct pg_store *s = PG(st);
    static const char *const clear[] = {"DELETE FROM rollup_minute", "DELETE FROM rollup_hour",
                                        "DELETE FROM rollup_errors", "DELETE FROM dataset_activity",
                                        "DELETE FROM rollup_day"};
    for (size_t i = 0; i < sizeof clear / sizeof clear[0]; i++)
        if (pg_cmd(s, "rebuild", clear[i], 0, NULL) < 0)
            return -1;
    PGresult *r = pg_exec(s, "rebuild", "SELECT name FROM datasets ORDER BY name", 0, NULL);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++)
        if (rebuild_dataset(s, PQgetvalue(r, i, 0)) < 0) {
            PQclear(r);
            return -1;
        }
    PQclear(r);
    /* rejected rows: the DLQ (every status), by received_ms; their codes per hour */
    static const char *const more[] = {
        "INSERT INTO rollup_minute AS t (dataset, minute, received, rejected) SELECT dataset,"
        " received_ms / 60000 b, count(*), count(*) FROM dlq GROUP BY dataset, b"
        " ON CONFLICT (dataset, minute) DO UPDATE SET received = t.received + excluded.received,"
        " rejected = excluded.rejected",
        "INSERT INTO rollup_hour AS t (dataset, hour, received, rejected) SELECT dataset,"
        " received_ms / 3600000 b, count(*), count(*) FROM dlq GROUP BY dataset, b"
        " ON CONFLICT (dataset, hour) DO UPDATE SET received = t.received + excluded.received,"
        " rejected = excluded.rejected",
        "INSERT INTO rollup_errors (hour, dataset, code, occurrences, batches, sample,"
        " last_seen_ms) SELECT d.received_ms / 3600000 h, d.dataset, e.v ->> 'code' c, count(*),"
        " count(DISTINCT d.batch_id), max((e.v ->> 'message') COLLATE \"C\"), max(d.received_ms)"
        " FROM dlq d CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(d.errors::jsonb)"
        " WHEN 'array' THEN d.errors::jsonb ELSE '[]'::jsonb END) AS e(v)"
        " WHERE e.v ->> 'code' IS NOT NULL GROUP BY h, d.dataset, c",
        "INSERT INTO dataset_activity AS t (dataset, last_received_ms, last_error_ms)"
        " SELECT dataset, max(received_ms), max(received_ms) FROM dlq GROUP BY dataset"
        " ON CONFLICT (dataset) DO UPDATE SET last_error_ms = excluded.last_error_ms,"
        " last_received_ms = greatest(coalesce(t.last_received_ms, 0), excluded.last_received_ms)",
        /* batches, by the time they finished */
        "INSERT INTO rollup_hour AS t (dataset, hour, batches, batches_failed) SELECT dataset,"
        " finished_ms / 3600000 b, count(*), count(*) FILTER (WHERE status = 'failed')"
        " FROM batches WHERE finished_ms IS NOT NULL GROUP BY dataset, b"
        " ON CONFLICT (dataset, hour) DO UPDATE SET batches = excluded.batches,"
        " batches_failed = excluded.batches_failed",
        "INSERT INTO rollup_day (dataset, day, received, accepted, rejected, duplicate, batches,"
        " batches_failed) SELECT dataset, hour / 24, sum(received), sum(accepted), sum(rejected),"
        " sum(duplicate), sum(batches), sum(batches_failed) FROM rollup_hour"
        " GROUP BY dataset, hour / 24",
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        if (pg_cmd(s, "rebuild", more[i], 0, NULL) < 0)
            return -1;
    return 0;
}
