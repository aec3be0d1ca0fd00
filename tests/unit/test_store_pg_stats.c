/*
 * test_store_pg_stats.c - the PostgreSQL backend's rollups, stats views and
 * alerts (src/store/pg/pg_stats.c, pg_alerts.c) against a live
 * server: rollups added twice and read back through the window, KPI, series
 * and error views; a finished batch's counts taken out again; a rebuild from
 * the rollup ledger, chunk by chunk (a group's pushes summed into few ledger
 * rows); alerts and their history.
 *
 * Skipped unless SLUICE_TEST_PG names the server (a conninfo string or URL;
 * "" = the PG* environment), e.g. under a throwaway cluster:
 *   pg_virtualenv sh -c 'SLUICE_TEST_PG="" build/tests/test_store_pg_stats'
 * Every test starts from an empty schema sluice_s; an advisory lock keeps
 * parallel test processes from sharing it at the same time.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_test.h"
#include "ops/alert_json.h"
#include "store/pg/pg_internal.h"
#include "rollup_test.h"
#include "util/clock.h"

#define T0 1773570030000LL /* 2026-03-15T10:20:30Z */
#define T1 1773572700000LL /* 2026-03-15T11:05:00Z */

static struct store *st;

/* ---- fixture ---------------------------------------------------------------------- */

static void sql(const char *fmt, ...)
{
    char q[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    pg_test_exec(st, q);
}

/* The first column of the first row of q as an integer (-999: no row). */
static int64_t sql_int(const char *q)
{
    return pg_test_int(st, q);
}

static void open_fresh(void)
{
    st = pg_test_fresh("sluice_s", 7415962399);
}

static void close_store(void)
{
    if (st)
        pg_close(st);
    st = NULL;
}

/* ---- JSON helpers ----------------------------------------------------------------- */

/* The value at a path of object keys (NULL-terminated). */
static json_t *at(json_t *j, ...)
{
    va_list ap;
    va_start(ap, j);
    for (const char *k; j && (k = va_arg(ap, const char *));)
        j = json_object_get(j, k);
    va_end(ap);
    return j;
}

static int64_t num(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

static const char *str(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    cr_assert(json_is_string(v), "%s is not a string", key);
    return json_string_value(v);
}

static double real(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    cr_assert(json_is_real(v), "%s is not a real", key);
    return json_real_value(v);
}

static const char *rfc(int64_t ms)
{
    static char t[4][32];
    static int i;
    i = (i + 1) % 4;
    return clock_rfc3339(ms, t[i], sizeof t[i]);
}

/* ---- the deltas ------------------------------------------------------------------- */

static const struct rollup_code codes1[] = {
    {.code = "BAD_TYPE", .count = 3, .sample = "bad type 1"},
    {.code = "REQUIRED", .count = 1, .sample = "req"}};
static const struct rollup_code codes2[] = {
    {.code = "BAD_TYPE", .count = 1, .sample = "bad type 2"}};

/* A batch of dataset a at T0: 10 rows, 7 in, 2 invalid, 1 duplicate. */
static const struct rollup_delta delta1 = {.dataset = "a",
                                           .at_ms = T0,
                                           .received = 10,
                                           .accepted = 7,
                                           .rejected = 2,
                                           .duplicate = 1,
                                           .batches = 1,
                                           .codes = codes1,
                                           .ncodes = 2};
/* A failed batch of a a minute later (same hour), and pushed events of b. */
static const struct rollup_delta delta2 = {.dataset = "a",
                                           .at_ms = T0 + 60000,
                                           .received = 5,
                                           .accepted = 4,
                                           .rejected = 1,
                                           .batches = 1,
                                           .batches_failed = 1,
                                           .codes = codes2,
                                           .ncodes = 1};
static const struct rollup_delta delta3 = {
    .dataset = "b", .at_ms = T0, .received = 2, .accepted = 2};

/* ---- rollups and views ------------------------------------------------------------ */

Test(pg_stats, rollup_add_then_views, .init = open_fresh, .fini = close_store)
{
    cr_assert_eq(pg_rollup_add(st, &delta1), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_add(st, &delta2), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_add(st, &delta3), 0, "%s", pg_errmsg(st));

    /* window */
    struct rollup_sum *w;
    size_t n;
    cr_assert_eq(pg_rollup_window(st, T0, &w, &n), 0, "%s", pg_errmsg(st));
    cr_assert_eq(n, 2);
    cr_assert_str_eq(w[0].dataset, "a");
    cr_assert_eq(w[0].received, 15);
    cr_assert_eq(w[0].accepted, 11);
    cr_assert_eq(w[0].rejected, 3);
    cr_assert_eq(w[0].duplicate, 1);
    cr_assert_eq(w[0].last_received_ms, T0 + 60000);
    cr_assert_eq(w[0].last_error_ms, T0 + 60000);
    cr_assert_str_eq(w[1].dataset, "b");
    cr_assert_eq(w[1].received, 2);
    cr_assert_eq(w[1].last_received_ms, T0);
    cr_assert_eq(w[1].last_error_ms, 0);
    free(w);
    /* a window after the first minute sees only the second delta */
    cr_assert_eq(pg_rollup_window(st, T0 + 60000 - T0 % 60000, &w, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(w[0].received, 5);
    cr_assert_eq(w[1].received, 0);
    free(w);

    /* KPIs, all datasets and one */
    json_t *k;
    cr_assert_eq(pg_stats_kpis(st, T0 + 120000, NULL, &k), 0, "%s", pg_errmsg(st));
    const char *periods[] = {"today", "last_24h", "all_time"};
    for (size_t i = 0; i < 3; i++) {
        json_t *p = json_object_get(k, periods[i]);
        cr_assert_eq(num(p, "rows_received"), 17, "%s", periods[i]);
        cr_assert_eq(num(p, "rows_inserted"), 13);
        cr_assert_eq(num(p, "rows_invalid"), 3);
        cr_assert_eq(num(p, "rows_duplicate"), 1);
        cr_assert_float_eq(real(p, "error_rate_pct"), 17.65, 1e-9);
        cr_assert(json_is_object(json_object_get(p, "batches")));
    }
    cr_assert_eq(num(k, "open_dlq_entries"), 0);
    cr_assert_str_eq(str(k, "last_ingest_at"), rfc(T0 + 60000));
    json_decref(k);
    cr_assert_eq(pg_stats_kpis(st, T0 + 120000, "a", &k), 0, "%s", pg_errmsg(st));
    cr_assert_eq(num(at(k, "all_time", NULL), "rows_received"), 15);
    cr_assert_eq(num(at(k, "today", NULL), "rows_invalid"), 3);
    cr_assert_float_eq(real(at(k, "last_24h", NULL), "error_rate_pct"), 20.0, 1e-9);
    cr_assert_str_eq(str(k, "last_ingest_at"), "2026-03-15T10:21:30.000Z");
    json_decref(k);
    /* a day later: nothing today, all of it all-time */
    cr_assert_eq(pg_stats_kpis(st, T0 + 2 * 86400000LL, "b", &k), 0, "%s", pg_errmsg(st));
    cr_assert_eq(num(at(k, "today", NULL), "rows_received"), 0);
    cr_assert_float_eq(real(at(k, "today", NULL), "error_rate_pct"), 0.0, 1e-9);
    cr_assert_eq(num(at(k, "all_time", NULL), "rows_received"), 2);
    cr_assert_str_eq(str(k, "last_ingest_at"), rfc(T0));
    json_decref(k);

    /* series: hourly and monthly */
    json_t *s;
    cr_assert_eq(pg_stats_series(st, 0, T0, NULL, &s), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(s), 2);
    json_t *e = json_array_get(s, 0);
    cr_assert_str_eq(str(e, "dataset"), "a");
    cr_assert_str_eq(str(e, "hour_bucket"), "2026-03-15T10:00:00.000Z");
    cr_assert_eq(num(e, "total_batches"), 2);
    cr_assert_eq(num(e, "total_rows"), 15);
    cr_assert_eq(num(e, "error_rows"), 3);
    cr_assert_float_eq(real(e, "error_rate_pct"), 20.0, 1e-9);
    cr_assert_str_eq(str(json_array_get(s, 1), "dataset"), "b");
    json_decref(s);
    cr_assert_eq(pg_stats_series(st, 0, T0 + 3600000, NULL, &s), 0);
    cr_assert_eq(json_array_size(s), 0);
    json_decref(s);
    cr_assert_eq(pg_stats_series(st, 1, 0, "a", &s), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(s), 1);
    e = json_array_get(s, 0);
    cr_assert_str_eq(str(e, "month"), "2026-03");
    cr_assert_eq(num(e, "total_batches"), 2);
    cr_assert_eq(num(e, "total_rows"), 15);
    cr_assert_eq(num(e, "error_rows"), 3);
    cr_assert_null(json_object_get(e, "hour_bucket"));
    json_decref(s);
    cr_assert_eq(pg_stats_series(st, 1, 0, NULL, &s), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(s), 2);
    json_decref(s);

    /* errors: the sum per code, the most recent sample */
    cr_assert_eq(pg_stats_errors(st, T0, NULL, &e), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(e), 2);
    json_t *c = json_array_get(e, 0);
    cr_assert_str_eq(str(c, "error_code"), "BAD_TYPE");
    cr_assert_eq(num(c, "occurrence_count"), 4);
    cr_assert_eq(num(c, "affected_batches"), 2);
    cr_assert_str_eq(str(c, "sample_message"), "bad type 2");
    cr_assert_str_eq(str(c, "last_seen_at"), rfc(T0 + 60000));
    c = json_array_get(e, 1);
    cr_assert_str_eq(str(c, "error_code"), "REQUIRED");
    cr_assert_eq(num(c, "occurrence_count"), 1);
    cr_assert_eq(num(c, "affected_batches"), 1);
    cr_assert_str_eq(str(c, "sample_message"), "req");
    json_decref(e);
    cr_assert_eq(pg_stats_errors(st, T0, "b", &e), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(e), 0);
    json_decref(e);

    /* the stored buckets themselves */
    cr_assert_eq(sql_int("SELECT count(*) FROM rollup_minute WHERE dataset = 'a'"), 2);
    cr_assert_eq(sql_int("SELECT batches_failed FROM rollup_day WHERE dataset = 'a'"), 1);
    cr_assert_eq(sql_int("SELECT day FROM rollup_day WHERE dataset = 'a'"), T0 / 86400000);
}

/* The sample of a code is the message of its most recent bucket, across hours and datasets. */
/* The purge takes the old minutes only: a window over them is empty, the hour rollups
 * (the series) still count them. */
Test(pg_stats, rollup_purge_removes_old_minutes_only, .init = open_fresh, .fini = close_store)
{
    cr_assert_eq(pg_rollup_add(st, &delta1), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_add(st, &delta2), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_purge(st, T0 + 60000 - T0 % 60000), 0, "%s", pg_errmsg(st));
    struct rollup_sum *w;
    size_t n;
    cr_assert_eq(pg_rollup_window(st, 0, &w, &n), 0, "%s", pg_errmsg(st));
    cr_assert_eq(n, 1);
    cr_expect_eq(w[0].received, 5, "the first minute's 10 rows are still in the window");
    free(w);
    cr_assert_eq(pg_rollup_purge(st, T0 + 10 * 60000), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_window(st, 0, &w, &n), 0);
    cr_expect_eq(w[0].received, 0);
    free(w);
    json_t *k;
    cr_assert_eq(pg_stats_kpis(st, T0 + 120000, NULL, &k), 0, "%s", pg_errmsg(st));
    cr_expect_eq(num(at(k, "all_time", NULL), "rows_received"), 15, "the hours lost rows too");
    json_decref(k);
}

Test(pg_stats, errors_sample_is_most_recent, .init = open_fresh, .fini = close_store)
{
    static const struct rollup_code
        mid[] = {{.code = "BAD_TYPE", .count = 2, .sample = "mid"}},
        newest[] = {{.code = "BAD_TYPE", .count = 1, .sample = "newest"}},
        oldest[] = {{.code = "BAD_TYPE", .count = 4, .sample = "oldest"}},
        nosample[] = {{.code = "BAD_TYPE", .count = 1, .sample = NULL}};
    const struct rollup_delta d[] = {
        {.dataset = "a", .at_ms = T0, .received = 2, .rejected = 2, .codes = mid, .ncodes = 1},
        {.dataset = "b",
         .at_ms = T0 + 2 * 3600000,
         .received = 1,
         .rejected = 1,
         .codes = newest,
         .ncodes = 1},
        {.dataset = "c",
         .at_ms = T0 - 2 * 3600000,
         .received = 4,
         .rejected = 4,
         .codes = oldest,
         .ncodes = 1},
        /* no sample: the bucket's sample stays */
        {.dataset = "a",
         .at_ms = T0 + 1,
         .received = 1,
         .rejected = 1,
         .codes = nosample,
         .ncodes = 1},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        cr_assert_eq(pg_rollup_add(st, &d[i]), 0, "%s", pg_errmsg(st));
    json_t *e;
    cr_assert_eq(pg_stats_errors(st, 0, NULL, &e), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(e), 1);
    cr_assert_str_eq(str(json_array_get(e, 0), "sample_message"), "newest");
    cr_assert_eq(num(json_array_get(e, 0), "occurrence_count"), 8);
    cr_assert_eq(num(json_array_get(e, 0), "affected_batches"), 0, "events are no batches");
    cr_assert_str_eq(str(json_array_get(e, 0), "last_seen_at"), rfc(T0 + 2 * 3600000));
    json_decref(e);
    cr_assert_eq(pg_stats_errors(st, 0, "a", &e), 0, "%s", pg_errmsg(st));
    cr_assert_str_eq(str(json_array_get(e, 0), "sample_message"), "mid");
    cr_assert_eq(num(json_array_get(e, 0), "occurrence_count"), 3);
    json_decref(e);
    cr_assert_eq(pg_stats_errors(st, T0 - 2 * 3600000, "c", &e), 0, "%s", pg_errmsg(st));
    cr_assert_str_eq(str(json_array_get(e, 0), "sample_message"), "oldest");
    json_decref(e);
    cr_assert_eq(pg_stats_errors(st, T0 - 3600000, "c", &e), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(e), 0);
    json_decref(e);
}

Test(pg_stats, kpis_count_batches_and_open_dlq, .init = open_fresh, .fini = close_store)
{
    sql("INSERT INTO batches(id, dataset, path, bytes, sha256, status, error_threshold_percent,"
        " created_ms, updated_ms) VALUES ('b1', 'a', '/p', 1, 'x', 'completed', 5, %lld, %lld),"
        " ('b2', 'a', '/p', 1, 'x', 'failed', 5, %lld, %lld),"
        " ('b3', 'b', '/p', 1, 'x', 'uploaded', 5, 1000, 1000)",
        T0, T0, T0, T0);
    sql("INSERT INTO dlq(dataset, ingest_id, row_no, payload, errors, codes, received_ms,"
        " updated_ms, status) VALUES ('a', 'i', 1, '\\x00', '[]', ',', 1, 1, 'open'),"
        " ('a', 'i', 2, '\\x00', '[]', ',', 1, 1, 'resolved'), ('b', 'i', 1, '\\x00', '[]', ',',"
        " 1, 1, 'open')");
    json_t *k;
    cr_assert_eq(pg_stats_kpis(st, T0 + 1000, NULL, &k), 0, "%s", pg_errmsg(st));
    cr_assert_eq(num(k, "open_dlq_entries"), 2);
    cr_assert(json_is_null(json_object_get(k, "last_ingest_at")));
    json_t *b = at(k, "today", "batches", NULL);
    cr_assert_eq(json_object_size(b), 2);
    cr_assert_eq(num(b, "completed"), 1);
    cr_assert_eq(num(b, "failed"), 1);
    b = at(k, "all_time", "batches", NULL);
    cr_assert_eq(json_object_size(b), 3);
    cr_assert_eq(num(b, "uploaded"), 1);
    json_decref(k);
    cr_assert_eq(pg_stats_kpis(st, T0 + 1000, "a", &k), 0, "%s", pg_errmsg(st));
    cr_assert_eq(num(k, "open_dlq_entries"), 1);
    cr_assert_eq(json_object_size(at(k, "all_time", "batches", NULL)), 2);
    json_decref(k);
}

/* ---- undo ------------------------------------------------------------------------- */

Test(pg_stats, undo_finished_batch, .init = open_fresh, .fini = close_store)
{
    sql("INSERT INTO batches(id, dataset, path, bytes, sha256, status, error_threshold_percent,"
        " row_count_total, row_count_inserted, row_count_invalid, row_count_duplicate,"
        " created_ms, updated_ms, finished_ms) VALUES ('b1', 'a', '/p', 1, 'x', 'completed', 5,"
        " 10, 7, 2, 1, %lld, %lld, %lld), ('b2', 'a', '/p', 1, 'x', 'failed', 5, 5, 4, 1, 0,"
        " %lld, %lld, %lld), ('b3', 'a', '/p', 1, 'x', 'staging', 5, 5, 5, 0, 0, 1, 1, NULL)",
        T0, T0, T0, T0, T0, T0 + 60000);
    sql("INSERT INTO batch_errors(batch_id, row_no, code, field, message, created_ms) VALUES"
        " ('b1', 1, 'BAD_TYPE', 'x', 'm', 1), ('b1', 1, 'BAD_TYPE', 'y', 'm', 1),"
        " ('b1', 2, 'BAD_TYPE', 'x', 'm', 1), ('b1', 2, 'REQUIRED', 'z', 'm', 1),"
        " ('b2', 1, 'BAD_TYPE', 'x', 'm', 1)");
    cr_assert_eq(pg_rollup_add(st, &delta1), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_add(st, &delta2), 0, "%s", pg_errmsg(st));

    /* a batch that is not finished was never counted: nothing changes */
    cr_assert_eq(pg_rollup_undo_batch(PG(st), "b3"), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_undo_batch(PG(st), "nope"), 0, "%s", pg_errmsg(st));
    cr_assert_eq(sql_int("SELECT received FROM rollup_hour WHERE dataset = 'a'"), 15);

    /* the completed one */
    cr_assert_eq(pg_rollup_undo_batch(PG(st), "b1"), 0, "%s", pg_errmsg(st));
    struct rollup_sum *w;
    size_t n;
    cr_assert_eq(pg_rollup_window(st, 0, &w, &n), 0, "%s", pg_errmsg(st));
    cr_assert_eq(n, 1);
    cr_assert_eq(w[0].received, 5);
    cr_assert_eq(w[0].accepted, 4);
    cr_assert_eq(w[0].rejected, 1);
    cr_assert_eq(w[0].duplicate, 0);
    cr_assert_eq(w[0].last_received_ms, T0 + 60000); /* activity is not undone */
    free(w);
    cr_assert_eq(sql_int("SELECT batches FROM rollup_hour WHERE dataset = 'a'"), 1);
    cr_assert_eq(sql_int("SELECT batches_failed FROM rollup_day WHERE dataset = 'a'"), 1);
    json_t *e;
    cr_assert_eq(pg_stats_errors(st, 0, "a", &e), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(e), 1, "REQUIRED is gone");
    cr_assert_str_eq(str(json_array_get(e, 0), "error_code"), "BAD_TYPE");
    cr_assert_eq(num(json_array_get(e, 0), "occurrence_count"), 1);
    cr_assert_eq(num(json_array_get(e, 0), "affected_batches"), 1);
    cr_assert_str_eq(str(json_array_get(e, 0), "sample_message"), "bad type 2");
    json_decref(e);

    /* the failed one: its received and rejected rows and its failure (not accepted ones) */
    cr_assert_eq(pg_rollup_undo_batch(PG(st), "b2"), 0, "%s", pg_errmsg(st));
    cr_assert_eq(sql_int("SELECT received FROM rollup_day WHERE dataset = 'a'"), 0);
    cr_assert_eq(sql_int("SELECT rejected FROM rollup_day WHERE dataset = 'a'"), 0);
    cr_assert_eq(sql_int("SELECT accepted FROM rollup_day WHERE dataset = 'a'"), 4);
    cr_assert_eq(sql_int("SELECT batches FROM rollup_day WHERE dataset = 'a'"), 0);
    cr_assert_eq(sql_int("SELECT batches_failed FROM rollup_day WHERE dataset = 'a'"), 0);
    cr_assert_eq(sql_int("SELECT sum(occurrences) FROM rollup_errors"), 0);
    cr_assert_eq(pg_stats_errors(st, 0, NULL, &e), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(e), 0);
    json_decref(e);
}

/* ---- rebuild ---------------------------------------------------------------------- */

/* Every rollup table as one text, to compare before and after. */
static char *rollup_text(void)
{
    static const char *const q[] = {
        "SELECT coalesce(string_agg(format('%s', t), ';' ORDER BY t::text), '') FROM rollup_minute "
        "t",
        "SELECT coalesce(string_agg(format('%s', t), ';' ORDER BY t::text), '') FROM rollup_hour t",
        "SELECT coalesce(string_agg(format('%s', t), ';' ORDER BY t::text), '') FROM rollup_day t",
        "SELECT coalesce(string_agg(format('%s %s %s %s %s %s', t.hour, t.dataset, t.code,"
        " t.occurrences, t.batches, t.last_seen_ms), ';' ORDER BY t::text), '')"
        " FROM rollup_errors t",
        "SELECT coalesce(string_agg(format('%s', t), ';' ORDER BY t::text), '')"
        " FROM dataset_activity t"};
    char *out = strdup("");
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        PGresult *r = PQexec(PG(st)->conn, q[i]);
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(PG(st)->conn));
        char *next;
        cr_assert(asprintf(&next, "%s|%s", out, PQgetvalue(r, 0, 0)) > 0);
        free(out);
        out = next;
        PQclear(r);
    }
    return out;
}

Test(pg_stats, rebuild_from_the_ledger, .init = open_fresh, .fini = close_store)
{
    const struct rollup_delta batch = {.dataset = "a",
                                       .at_ms = T0 + 120000,
                                       .received = 3,
                                       .accepted = 3,
                                       .batches = 1,
                                       .batch_id = "bat_1"};
    cr_assert_eq(pg_rollup_add(st, &delta1), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_add(st, &delta2), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_add(st, &delta3), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_add(st, &batch), 0, "%s", pg_errmsg(st));
    cr_assert_eq(sql_int("SELECT count(*) FROM rollup_ledger"), 4);
    /* the batch taken out again (a reset): its row stays, marked undone */
    cr_assert_eq(pg_begin(st), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollup_undo_batch(PG(st), "bat_1"), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    cr_assert_eq(sql_int("SELECT count(*) FROM rollup_ledger WHERE undone = 1"), 1);
    cr_assert_eq(sql_int("SELECT sum(received) FROM rollup_hour"), 17);
    char *live = rollup_text();

    /* stale rollups that the rebuild must throw away */
    sql("UPDATE rollup_hour SET received = received + 7");
    sql("INSERT INTO rollup_day(dataset, day, received) VALUES ('ghost', 3, 9)");
    sql("DELETE FROM rollup_errors");
    cr_assert_geq(rollup_test_rebuild(st), 3);
    char *rebuilt = rollup_text();
    cr_assert_str_eq(rebuilt, live);
    free(rebuilt);
    cr_assert_eq(sql_int("SELECT count(*) FROM rollup_day WHERE dataset = 'ghost'"), 0);

    /* a second rebuild gives the same */
    rollup_test_rebuild(st);
    rebuilt = rollup_text();
    cr_assert_str_eq(rebuilt, live);
    free(rebuilt);
    free(live);
}

/* The pushes of one group commit: one ledger row per dataset, minute and kind (rejected
 * rows or not), a batch's its own; a rebuild from those rows gives the live rollups again,
 * each code's last time and the dataset's last error with them. */
Test(pg_stats, ledger_sums_a_groups_pushes, .init = open_fresh, .fini = close_store)
{
    const struct rollup_code a1[] = {{"OUT_OF_RANGE", 1, "zz", 0, 0}};
    const struct rollup_code b2[] = {{"INVALID_TYPE", 2, "bb", 0, 0}};
    const struct rollup_code a2[] = {{"OUT_OF_RANGE", 1, "aa", 0, 0}};
    const int64_t m0 = T0 / 60000 * 60000;
    const struct rollup_delta push[] = {
        {.dataset = "a",
         .at_ms = m0 + 1000,
         .received = 3,
         .accepted = 2,
         .rejected = 1,
         .codes = a1,
         .ncodes = 1},
        {.dataset = "a",
         .at_ms = m0 + 2000,
         .received = 2,
         .rejected = 2,
         .codes = b2,
         .ncodes = 1},
        {.dataset = "a", .at_ms = m0 + 50000, .received = 5, .accepted = 5},
        {.dataset = "a",
         .at_ms = m0 + 4000,
         .received = 1,
         .rejected = 1,
         .codes = a2,
         .ncodes = 1},
        {.dataset = "a",
         .at_ms = m0 + 3000,
         .received = 4,
         .accepted = 4,
         .duplicate = 1,
         .batches = 1,
         .batch_id = "bat_1"},
        {.dataset = "a",
         .at_ms = m0 + 5000,
         .received = 9,
         .rejected = 9,
         .codes = b2,
         .ncodes = 1}, /* its job rolled back */
        {.dataset = "a", .at_ms = m0 + 30000, .received = 1, .accepted = 1},
        {.dataset = "b", .at_ms = m0 + 30000, .received = 1, .accepted = 1},
        {.dataset = "a", .at_ms = m0 + 61000, .received = 1, .accepted = 1},
    };
    cr_assert_eq(store_begin(st), 0, "%s", store_errmsg(st));
    for (size_t i = 0; i < sizeof push / sizeof push[0]; i++) {
        cr_assert_eq(store_savepoint(st), 0, "%s", store_errmsg(st));
        cr_assert_eq(store_rollup_add(st, &push[i]), 0, "%s", store_errmsg(st));
        if (i == 5)
            cr_assert_eq(store_savepoint_rollback(st), 0, "%s", store_errmsg(st));
        else
            cr_assert_eq(store_savepoint_release(st), 0, "%s", store_errmsg(st));
    }
    cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));
    /* a: minute 0 with and without rejected rows, the batch, minute 1; b: minute 0 */
    cr_expect_eq(sql_int("SELECT count(*) FROM rollup_ledger"), 5);
    cr_expect_eq(sql_int("SELECT sum(received) FROM rollup_ledger"), 18);
    cr_expect_eq(sql_int("SELECT last_seen_ms FROM rollup_errors WHERE code = 'INVALID_TYPE'"),
                 m0 + 2000);
    cr_expect_eq(sql_int("SELECT last_error_ms FROM dataset_activity WHERE dataset = 'a'"),
                 m0 + 4000);
    char *live = rollup_text();
    rollup_test_rebuild(st);
    char *rebuilt = rollup_text();
    cr_expect_str_eq(rebuilt, live);
    free(rebuilt);
    free(live);
}

/* ---- alerts ----------------------------------------------------------------------- */

static struct alert alert_new(char *fingerprint, char *state, int64_t at)
{
    return (struct alert){.fingerprint = fingerprint,
                          .rule = "dlq_growth",
                          .severity = "warning",
                          .labels_json = "{\"dataset\":\"a\"}",
                          .summary = "DLQ grows",
                          .state = state,
                          .started_ms = at,
                          .updated_ms = at};
}

/* pg_alert_get and pg_alert_list as the API's JSON (ops/alert_json.c builds it from the
 * structs the backend returns). */
static int get_json(struct store *s, int64_t id, json_t **out)
{
    struct alert a;
    struct alert_history *h;
    size_t n;
    int rc = pg_alert_get(s, id, &a, &h, &n);
    if (rc == 0) {
        *out = alert_json_history(&a, h, n);
        alert_release(&a);
        alert_history_free(h, n);
    }
    return rc;
}

static int list_json(struct store *s, const char *state, int64_t after, int desc, int limit,
                     json_t **out)
{
    struct alert *a;
    size_t n;
    int rc = pg_alert_list(s, state, after, desc, limit, &a, &n);
    if (rc == 0) {
        *out = alert_list_json(a, n);
        for (size_t i = 0; i < n; i++)
            alert_release(&a[i]);
        free(a);
    }
    return rc;
}

Test(pg_alerts, round_trip, .init = open_fresh, .fini = close_store)
{
    struct alert a1 = alert_new("fp1", "firing", T0), a2 = alert_new("fp2", "firing", T0 + 1);
    a2.details_json = "{\"n\":5}";
    cr_assert_eq(pg_alert_put(st, &a1), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_alert_put(st, &a2), 0, "%s", pg_errmsg(st));
    cr_assert_gt(a1.id, 0);
    cr_assert_gt(a2.id, a1.id);
    cr_assert_eq(pg_alert_event(st, a1.id, T0, "fired", NULL), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_alert_event(st, a1.id, T0 + 5000, "notified", "webhook 200"), 0);

    struct alert *f;
    size_t n;
    cr_assert_eq(pg_alert_firing(st, &f, &n), 0, "%s", pg_errmsg(st));
    cr_assert_eq(n, 2);
    cr_assert_eq(f[0].id, a1.id);
    cr_assert_str_eq(f[0].fingerprint, "fp1");
    cr_assert_str_eq(f[0].labels_json, "{\"dataset\":\"a\"}");
    cr_assert_null(f[0].details_json);
    cr_assert_eq(f[0].started_ms, T0);
    cr_assert_eq(f[0].resolved_ms, 0);
    cr_assert_str_eq(f[1].details_json, "{\"n\":5}");
    for (size_t i = 0; i < n; i++)
        alert_release(&f[i]);
    free(f);

    /* resolve the first */
    a1.state = "resolved";
    a1.resolved_ms = T0 + 9000;
    a1.updated_ms = T0 + 9000;
    a1.last_notified_ms = T0 + 5000;
    a1.notifications = 1;
    cr_assert_eq(pg_alert_put(st, &a1), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_alert_firing(st, &f, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(f[0].id, a2.id);
    alert_release(&f[0]);
    free(f);

    json_t *g;
    cr_assert_eq(get_json(st, a1.id, &g), 0, "%s", pg_errmsg(st));
    cr_assert_eq(num(g, "id"), a1.id);
    cr_assert_str_eq(str(g, "rule"), "dlq_growth");
    cr_assert_str_eq(str(g, "severity"), "warning");
    cr_assert_str_eq(str(at(g, "labels", NULL), "dataset"), "a");
    cr_assert_str_eq(str(g, "summary"), "DLQ grows");
    cr_assert(json_is_null(json_object_get(g, "details")));
    cr_assert_str_eq(str(g, "state"), "resolved");
    cr_assert_str_eq(str(g, "started_at"), rfc(T0));
    cr_assert_str_eq(str(g, "updated_at"), rfc(T0 + 9000));
    cr_assert_str_eq(str(g, "resolved_at"), rfc(T0 + 9000));
    cr_assert_str_eq(str(g, "last_notified_at"), rfc(T0 + 5000));
    cr_assert_eq(num(g, "notifications"), 1);
    json_t *hist = json_object_get(g, "history");
    cr_assert_eq(json_array_size(hist), 2);
    cr_assert_str_eq(str(json_array_get(hist, 0), "event"), "fired");
    cr_assert_str_eq(str(json_array_get(hist, 0), "at"), rfc(T0));
    cr_assert(json_is_null(json_object_get(json_array_get(hist, 0), "detail")));
    cr_assert_str_eq(str(json_array_get(hist, 1), "detail"), "webhook 200");
    json_decref(g);
    cr_assert_eq(get_json(st, a2.id, &g), 0);
    cr_assert_eq(num(at(g, "details", NULL), "n"), 5);
    cr_assert(json_is_null(json_object_get(g, "resolved_at")));
    cr_assert_eq(json_array_size(json_object_get(g, "history")), 0);
    json_decref(g);
    cr_assert_eq(get_json(st, a2.id + 100, &g), 1);

    /* list: by state, keyset, limit */
    json_t *l;
    cr_assert_eq(list_json(st, NULL, 0, 0, 10, &l), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(l), 2);
    cr_assert_eq(num(json_array_get(l, 0), "id"), a1.id);
    cr_assert_null(json_object_get(json_array_get(l, 0), "history"));
    json_decref(l);
    cr_assert_eq(list_json(st, "firing", 0, 0, 10, &l), 0);
    cr_assert_eq(json_array_size(l), 1);
    cr_assert_eq(num(json_array_get(l, 0), "id"), a2.id);
    json_decref(l);
    cr_assert_eq(list_json(st, NULL, a1.id, 0, 10, &l), 0);
    cr_assert_eq(json_array_size(l), 1);
    json_decref(l);
    cr_assert_eq(list_json(st, NULL, 0, 0, 1, &l), 0);
    cr_assert_eq(json_array_size(l), 1);
    json_decref(l);

    /* one firing alert per fingerprint: a second firing fp2 is refused, a new firing fp1
     * (the old one is resolved) is not */
    struct alert dup = alert_new("fp2", "firing", T0 + 10000);
    cr_assert_eq(pg_alert_put(st, &dup), -1);
    cr_assert(strstr(pg_errmsg(st), "alerts_firing"), "%s", pg_errmsg(st));
    cr_assert_eq(dup.id, 0);
    struct alert again = alert_new("fp1", "firing", T0 + 10000);
    cr_assert_eq(pg_alert_put(st, &again), 0, "%s", pg_errmsg(st));
    cr_assert_gt(again.id, a2.id);
    /* nor can an update make a second firing one */
    a1.state = "firing";
    cr_assert_eq(pg_alert_put(st, &a1), -1);
    cr_assert_eq(pg_alert_firing(st, &f, &n), 0);
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++)
        alert_release(&f[i]);
    free(f);
}

/* ---- the alert outbox ------------------------------------------------------------------ */

static int64_t outbox_add(int64_t alert_id, char *receiver, char *event, int64_t ms)
{
    struct outbox_row r = {.alert_id = alert_id,
                           .receiver = receiver,
                           .event = event,
                           .body = "{}",
                           .created_ms = ms,
                           .next_ms = ms};
    cr_assert_eq(pg_outbox_add(st, &r), 0, "%s", pg_errmsg(st));
    return r.id;
}

static size_t due_ids(int64_t now_ms, int64_t *ids)
{
    struct outbox_row *rows;
    size_t n;
    cr_assert_eq(pg_outbox_due(st, now_ms, 10, &rows, &n), 0, "%s", pg_errmsg(st));
    for (size_t i = 0; i < n; i++) {
        ids[i] = rows[i].id;
        outbox_release(&rows[i]);
    }
    free(rows);
    return n;
}

Test(pg_alerts, outbox_in_order_and_counts_only_deliveries, .init = open_fresh, .fini = close_store)
{
    struct alert a = alert_new("fp1", "firing", T0);
    cr_assert_eq(pg_alert_put(st, &a), 0, "%s", pg_errmsg(st));
    int64_t fire_h = outbox_add(a.id, "hook", "firing", T0);
    int64_t fire_c = outbox_add(a.id, "chat", "firing", T0);
    int64_t res_h = outbox_add(a.id, "hook", "resolved", T0 + 1000);
    int64_t ids[10];
    cr_assert_eq(due_ids(T0 + 5000, ids), 2, "the resolution waits behind its firing");
    cr_expect(ids[0] == fire_h && ids[1] == fire_c);
    cr_assert_eq(pg_outbox_retry(st, fire_h, T0 + 9000, "HTTP 500"), 0, "%s", pg_errmsg(st));
    cr_assert_eq(due_ids(T0 + 5000, ids), 1);
    cr_expect_eq(ids[0], fire_c);
    int64_t pending, oldest;
    cr_assert_eq(pg_outbox_stats(st, &pending, &oldest), 0, "%s", pg_errmsg(st));
    cr_expect(pending == 3 && oldest == T0);
    cr_expect_eq(sql_int("SELECT notifications FROM alerts"), 0);
    cr_expect_eq(pg_outbox_pending(st, a.id, "hook"), 1);
    cr_assert_eq(pg_outbox_finish(st, fire_h, T0 + 9500), 0, "%s", pg_errmsg(st));
    cr_assert_eq(due_ids(T0 + 10000, ids), 2);
    cr_expect(ids[0] == fire_c && ids[1] == res_h);
    cr_expect_eq(sql_int("SELECT notifications FROM alerts"), 1);
    cr_expect_eq(sql_int("SELECT last_notified_ms FROM alerts"), T0 + 9500);
    cr_assert_eq(pg_outbox_finish(st, fire_c, 0), 0, "%s", pg_errmsg(st));
    cr_expect_eq(sql_int("SELECT notifications FROM alerts"), 1, "a dropped row is not counted");
    cr_expect_eq(pg_outbox_pending(st, a.id, "chat"), 0);
    cr_assert_eq(pg_outbox_finish(st, res_h, T0 + 11000), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_outbox_stats(st, &pending, &oldest), 0);
    cr_expect(pending == 0 && oldest == 0);
    cr_expect_eq(sql_int("SELECT notifications FROM alerts"), 2);
}
