/*
 * test_store_pg_dump.c - whole tables in and out of PostgreSQL (pg_dump.c),
 * and across backends: the catalog (store/tables.h) against the PostgreSQL schema,
 * and tables carried SQLite -> PostgreSQL -> SQLite with odd values (tabs, newlines,
 * backslashes, non-ASCII text, bytes with NUL, extreme integers and reals), checked
 * by the canonical checksum at every hop and by reading PostgreSQL directly; ids are
 * kept and the sequences follow them.
 *
 * Skipped unless SLUICE_TEST_PG holds a conninfo ("" = the PG* environment), e.g.
 *   pg_virtualenv sh -c 'SLUICE_TEST_PG="" build/tests/test_store_pg_dump'
 * Each test starts from an empty schema sluice_d (an advisory lock keeps the tests,
 * which Criterion runs in parallel, from sharing it) and two fresh SQLite files.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg_test.h"
#include "store/pg/pg_internal.h"
#include "tables_rows.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static struct store *pg, *a, *c;
static char dir[64];

/* ---- fixture ------------------------------------------------------------------------ */

static void raw(const char *sql)
{
    pg_test_exec(pg, sql);
}

/* The first column of the first row as text (static buffer); "(none)" when no row. */
static const char *raw_str(const char *sql)
{
    static char out[256];
    PGresult *r = PQexec(PG(pg)->conn, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    snprintf(out, sizeof out, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "(none)");
    PQclear(r);
    return out;
}

static void start(void)
{
    pg = pg_test_fresh("sluice_d", 5118804);
    sqlite_pair(dir, "sluice-pgdump", &a, "c.db", &c);
}

static void finish(void)
{
    store_close(pg);
    pg = NULL;
    sqlite_pair_end(dir, &a, &c);
}

TestSuite(pg_dump, .init = start, .fini = finish);

/* ---- the catalog matches the schema -------------------------------------------------- */

Test(pg_dump, catalog_is_the_schema)
{
    for (size_t i = 0; i < store_ntables; i++) {
        const struct table_def *t = &store_tables[i];
        char sql[300];
        snprintf(sql, sizeof sql,
                 "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                 " 'sluice_d' AND table_name = '%s'",
                 t->name);
        PGresult *r = PQexec(PG(pg)->conn, sql);
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
        cr_expect_eq((size_t)PQntuples(r), t->ncols, "%s: %d columns, the catalog has %zu", t->name,
                     PQntuples(r), t->ncols);
        for (int k = 0; k < PQntuples(r); k++)
            cr_expect_geq(table_col_index(t, PQgetvalue(r, k, 0)), 0, "%s.%s is not in the catalog",
                          t->name, PQgetvalue(r, k, 0));
        PQclear(r);
    }
    /* batch files move through file_keep / file_open, not as a table */
    PGresult *r = PQexec(PG(pg)->conn, "SELECT tablename FROM pg_tables WHERE schemaname ="
                                       " 'sluice_d' AND tablename NOT IN ('schema_migrations',"
                                       " 'batch_files') AND tablename NOT LIKE 'ds\\_%'");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    cr_expect_eq((size_t)PQntuples(r), store_ntables);
    for (int k = 0; k < PQntuples(r); k++) {
        int found = 0;
        for (size_t i = 0; i < store_ntables; i++)
            found |= !strcmp(store_tables[i].name, PQgetvalue(r, k, 0));
        cr_expect(found, "table %s is not in the catalog", PQgetvalue(r, k, 0));
    }
    PQclear(r);
}

/* ---- SQLite -> PostgreSQL -> SQLite ----------------------------------------------------- */

/* Idempotency records whose keys order differently by byte and by a locale. */
static const struct cell idem_rows[] = {
    T_("m"),   T_("b"),  T_("h"),  I_(202),  T_("{}"),
    I_(1),     T_("m"),  T_("B"),  T_("h"),  I_(202),
    T_("{}"),  I_(2),    T_("m"),  T_("_a"), T_("h"),
    I_(202),   T_("{}"), I_(3),    T_("m"),  T_("\xc3\xa9t\xc3\xa9"),
    T_("h"),   I_(200),  T_("{}"), I_(4),    T_("m"),
    T_("a b"), T_("h"),  I_(200),  T_("{}"), I_(5),
    T_("m"),   T_("Z"),  T_("h"),  I_(200),  T_("{}"),
    I_(6),
};

static void expect_same(const struct table_sum *x, const struct table_sum *y, const char *what)
{
    cr_expect_eq(x->rows, y->rows, "%s: %lld rows, then %lld", what, (long long)x->rows,
                 (long long)y->rows);
    cr_expect_eq(memcmp(x->sha256, y->sha256, 32), 0, "%s: the checksum differs", what);
}

Test(pg_dump, sqlite_to_postgres_and_back_keeps_everything)
{
    struct dataset_config ds = dataset();
    struct table_def *t = table_def_dataset("m", ds.schema);
    const struct table_def *tabs[] = {t, table_named("dlq"), table_named("idempotency")};
    char why[256];
    /* A column ordered by a language's rules (ICU's root locale, which Debian's PostgreSQL
     * has): the dump must still give the rows in byte order, as SQLite does. */
    if (strcmp(raw_str("SELECT count(*) FROM pg_collation WHERE collname = 'und-x-icu'"), "1") == 0)
        raw("ALTER TABLE idempotency ALTER COLUMN key TYPE text COLLATE \"und-x-icu\"");
    struct store *all[] = {a, pg, c};
    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
        cr_assert_eq(store_dataset_sync(all[i], &ds, why, sizeof why), 0, "%s", why);
    cr_assert_eq(store_begin(a), 0);
    load(a, t, m_rows, ARRAY_SIZE(m_rows) / t->ncols);
    load(a, tabs[1], dlq_row, 1);
    load(a, tabs[2], idem_rows, ARRAY_SIZE(idem_rows) / tabs[2]->ncols);
    cr_assert_eq(store_commit(a), 0, "%s", store_errmsg(a));

    for (size_t k = 0; k < ARRAY_SIZE(tabs); k++) {
        struct table_sum s_a, s_pg, s_pg2, s_c;
        cr_assert_eq(store_begin(pg), 0, "%s", store_errmsg(pg));
        pass(a, pg, tabs[k], &s_a);
        pass(pg, NULL, tabs[k], &s_pg); /* inside the transaction, as migrate verifies */
        cr_assert_eq(store_commit(pg), 0, "%s", store_errmsg(pg));
        cr_assert_eq(store_begin(c), 0);
        pass(pg, c, tabs[k], &s_pg2);
        cr_assert_eq(store_commit(c), 0, "%s", store_errmsg(c));
        pass(c, NULL, tabs[k], &s_c);
        expect_same(&s_a, &s_pg, tabs[k]->name);
        expect_same(&s_a, &s_pg2, tabs[k]->name);
        expect_same(&s_a, &s_c, tabs[k]->name);
    }
    /* what PostgreSQL holds, read with its own SQL */
    cr_expect_str_eq(raw_str("SELECT s FROM ds_m WHERE _id = 3"),
                     "tab\tnl\ncr\rbs\\ \xc3\xa9\xe2\x82\xac");
    cr_expect_str_eq(raw_str("SELECT i FROM ds_m WHERE _id = 3"), "-9223372036854775808");
    cr_expect_str_eq(raw_str("SELECT n = 5e-324 FROM ds_m WHERE _id = 7"), "t");
    cr_expect_str_eq(raw_str("SELECT n = -1e308 FROM ds_m WHERE _id = 4"), "t");
    cr_expect_str_eq(raw_str("SELECT s IS NULL AND i IS NULL FROM ds_m WHERE _id = 7"), "t");
    cr_expect_str_eq(raw_str("SELECT s = '' FROM ds_m WHERE _id = 4"), "t", "empty is not NULL");
    cr_expect_str_eq(raw_str("SELECT encode(payload, 'hex') FROM dlq WHERE id = 42"), "00ff5c09");
    cr_expect_str_eq(raw_str("SELECT string_agg(key, '|' ORDER BY created_ms) FROM idempotency"),
                     "b|B|_a|\xc3\xa9t\xc3\xa9|a b|Z");

    /* the sequences follow the copied ids */
    expect_next_dlq_id(pg, 43);
    json_t *row = json_pack("{s:s}", "s", "new");
    struct row_meta m = {"ing_9", NULL, "2024-01-01T00:00:00Z", NULL};
    enum row_result res;
    cr_assert_eq(store_row_put(pg, &ds, &m, row, NULL, &res), 0, "%s", store_errmsg(pg));
    json_decref(row);
    cr_expect_str_eq(raw_str("SELECT max(_id) FROM ds_m"), "10");
    table_def_free(t);
    dataset_free(&ds);
}

Test(pg_dump, a_text_with_a_nul_byte_is_refused_by_name)
{
    const struct table_def *idem = table_named("idempotency");
    const struct cell row[] = {T_("m"), T_("k"), T_("h"), I_(200), T_("a\0b"), I_(1)};
    cr_assert_eq(store_begin(pg), 0);
    cr_expect_eq(store_table_load(pg, idem, row), -1);
    cr_expect(strstr(store_errmsg(pg), "idempotency.response: a text holds a NUL byte"), "%s",
              store_errmsg(pg));
    cr_expect_eq(store_table_load(pg, idem, NULL), 0, "the table still ends: %s", store_errmsg(pg));
    cr_assert_eq(store_rollback(pg), 0, "%s", store_errmsg(pg));
}

Test(pg_dump, load_empties_the_table_first)
{
    const struct table_def *idem = table_named("idempotency");
    cr_assert_eq(store_idem_put(pg, "m", "old", "h", 200, "{}", 1, 0), 0, "%s", store_errmsg(pg));
    cr_assert_eq(store_begin(pg), 0);
    load(pg, idem, idem_rows, 2);
    cr_assert_eq(store_commit(pg), 0, "%s", store_errmsg(pg));
    cr_expect_str_eq(raw_str("SELECT string_agg(key, ',' ORDER BY key) FROM idempotency"), "B,b");
    int64_t n = -1;
    cr_expect_eq(store_table_count(pg, idem, &n), 0);
    cr_expect_eq(n, 2);
}

Test(pg_dump, dataset_drop_removes_table_and_record)
{
    struct dataset_config ds = dataset();
    char why[256];
    cr_assert_eq(store_dataset_sync(pg, &ds, why, sizeof why), 0, "%s", why);
    cr_assert_eq(store_dataset_drop(pg, "m"), 0, "%s", store_errmsg(pg));
    cr_expect_str_eq(raw_str("SELECT count(*) FROM pg_tables WHERE schemaname = 'sluice_d'"
                             " AND tablename = 'ds_m'"),
                     "0");
    cr_expect_str_eq(raw_str("SELECT count(*) FROM datasets"), "0");
    dataset_free(&ds);
}
