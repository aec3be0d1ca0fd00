/*
 * tables_rows.h - what the tests of whole-table dumps and loads share (test_tables.c
 * on SQLite, test_store_pg_dump.c across SQLite and PostgreSQL): a dataset with a
 * field of each type, rows of odd values for it and for the DLQ, and a pass that
 * dumps a table from one store, sums it, and loads it into another.
 */
#ifndef SLUICE_TESTS_TABLES_ROWS_H
#define SLUICE_TESTS_TABLES_ROWS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "store/store.h"
#include "store/tables.h"

/* Two SQLite stores, a.db and another, in a fresh temporary directory dir (64 bytes). */
static void sqlite_pair(char *dir, const char *prefix, struct store **a, const char *other,
                        struct store **b)
{
    snprintf(dir, 64, "/tmp/%s-XXXXXX", prefix);
    cr_assert_not_null(mkdtemp(dir));
    struct store **st[2] = {a, b};
    const char *name[2] = {"a.db", other};
    for (int i = 0; i < 2; i++) {
        char uri[160], err[256] = "";
        snprintf(uri, sizeof uri, "sqlite:%s/%s", dir, name[i]);
        *st[i] = store_open(uri, 0, err, sizeof err);
        cr_assert_not_null(*st[i], "store_open(%s): %s", uri, err);
        cr_assert_eq(store_migrate(*st[i]), 0, "migrate: %s", store_errmsg(*st[i]));
    }
}

/* Close both and remove the directory (when it was made). */
static void sqlite_pair_end(char *dir, struct store **a, struct store **b)
{
    store_close(*a);
    store_close(*b);
    *a = *b = NULL;
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
    }
}

/* A dataset called name (static) whose schema is the JSON text schema, without a key. */
static struct dataset_config dataset_with(const char *name, const char *schema)
{
    struct dataset_config ds = {.name = (char *)name, .key = NULL};
    char err[256];
    ds.schema_json = json_loads(schema, 0, NULL);
    ds.schema = schema_compile(ds.schema_json, err, sizeof err);
    cr_assert_not_null(ds.schema, "%s", err);
    return ds;
}

/* A dataset "m" with one field of each type, synced into st. */
static struct dataset_config dataset(void)
{
    return dataset_with("m", "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\"},"
                             "\"i\":{\"type\":\"integer\"},\"n\":{\"type\":\"number\"},"
                             "\"b\":{\"type\":\"boolean\"}}}");
}

static void dataset_free(struct dataset_config *ds)
{
    json_decref(ds->schema_json);
    schema_destroy(ds->schema);
}

struct copy {
    struct store *to;
    const struct table_def *t;
    struct table_sum sum;
};

static int copy_row(void *arg, const struct cell *row)
{
    struct copy *c = arg;
    cr_assert_eq(table_sum_row(&c->sum, c->t, row), 0);
    return c->to && store_table_load(c->to, c->t, row) < 0 ? 1 : 0;
}

/* Dump t from `from` (into `to` unless NULL); the sum in out. */
static void pass(struct store *from, struct store *to, const struct table_def *t,
                 struct table_sum *out)
{
    struct copy c = {to, t, {0}};
    cr_assert_eq(table_sum_init(&c.sum), 0);
    int rc = store_table_dump(from, t, copy_row, &c);
    cr_assert_eq(rc, 0, "dump %s: %s", t->name, store_errmsg(rc > 0 ? to : from));
    if (to)
        cr_assert_eq(store_table_load(to, t, NULL), 0, "load %s: %s", t->name, store_errmsg(to));
    cr_assert_eq(table_sum_final(&c.sum), 0);
    *out = c.sum;
}

static void load(struct store *st, const struct table_def *t, const struct cell *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(store_table_load(st, t, &rows[i * t->ncols]), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_table_load(st, t, NULL), 0, "%s", store_errmsg(st));
}

#define I_(v)                                                                                      \
    {                                                                                              \
        CELL_INT, (v), 0, NULL, 0                                                                  \
    }
#define R_(v)                                                                                      \
    {                                                                                              \
        CELL_REAL, 0, (v), NULL, 0                                                                 \
    }
#define T_(s)                                                                                      \
    {                                                                                              \
        CELL_TEXT, 0, 0, (s), sizeof(s) - 1                                                        \
    }
#define B_(s)                                                                                      \
    {                                                                                              \
        CELL_BYTES, 0, 0, (s), sizeof(s) - 1                                                       \
    }
#define N_                                                                                         \
    {                                                                                              \
        CELL_NULL, 0, 0, NULL, 0                                                                   \
    }

/* Rows of ds_m: odd values, two batches and rows of no batch. */
static const struct cell m_rows[] = {
    I_(3),
    T_("ing_1"),
    T_("src"),
    T_("2024-01-01T00:00:00Z"),
    N_,
    T_("bat_a"),
    T_("tab\tnl\ncr\rbs\\ \xc3\xa9\xe2\x82\xac"),
    I_(INT64_MIN),
    R_(0.1),
    I_(1),
    I_(4),
    T_("ing_1"),
    N_,
    T_("2024-01-01T00:00:00Z"),
    T_("{\"x\":1}"),
    T_("bat_b"),
    T_(""),
    I_(INT64_MAX),
    R_(-1e308),
    I_(0),
    I_(7),
    T_("ing_2"),
    N_,
    T_("2024-01-01T00:00:01Z"),
    N_,
    T_("bat_a"),
    N_,
    N_,
    R_(5e-324),
    N_,
    I_(9),
    T_("ing_3"),
    N_,
    T_("2024-01-01T00:00:02Z"),
    N_,
    N_,
    T_("x"),
    I_(-1),
    R_(-0.0),
    I_(1),
};

static const struct cell dlq_row[] = {
    I_(42), T_("m"), T_("ing_1"), N_,         I_(2), B_("\0\xff\\\t"), T_("[]"), T_(","),
    I_(5),  I_(6),   I_(0),       T_("open"), N_};

static const struct table_def *table_named(const char *name)
{
    for (size_t i = 0; i < store_ntables; i++)
        if (!strcmp(store_tables[i].name, name))
            return &store_tables[i];
    cr_assert_fail("no table %s in the catalog", name);
    return NULL;
}

/* The next DLQ entry st adds gets id want (its ids follow the copied ones). */
static void expect_next_dlq_id(struct store *st, int64_t want)
{
    int64_t id = 0;
    struct dlq_new e = {.dataset = "m",
                        .ingest_id = "i",
                        .payload = "x",
                        .payload_len = 1,
                        .errors_json = "[]",
                        .codes = ",",
                        .received_ms = 1};
    cr_assert_eq(store_dlq_add(st, &e, &id), 0, "%s", store_errmsg(st));
    cr_expect_eq(id, want);
}

#endif
