/*
 * test_tables.c - the portable tables of a store (store/tables.h) on SQLite: the
 * catalog against the schema SQLite's migrations make (a column added to a table but
 * not to the catalog would silently not be migrated), the canonical checksum, and a
 * table's trip out of one SQLite store and into another (sqlite_dump.c):
 * values of every type unchanged, ids kept, a batch's rows found again afterwards,
 * values of the wrong type refused by name.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "store/store.h"
#include "store/tables.h"
#include "tables_rows.h"
#include "util/buf.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixture: two stores a.db and b.db in a temp directory ---------------------------- */

static char dir[64];
static struct store *a, *b;

static void start(void)
{
    sqlite_pair(dir, "sluice-tables", &a, "b.db", &b);
}

static void finish(void)
{
    sqlite_pair_end(dir, &a, &b);
}

TestSuite(tables, .init = start, .fini = finish);

static sqlite3 *raw(const char *name)
{
    char path[128];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    int64_t v = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL
                    ? sqlite3_column_int64(q, 0)
                    : -999;
    sqlite3_finalize(q);
    return v;
}

/* ---- the catalog matches the schema -------------------------------------------------- */

/* Columns SQLite has that no other store has (sqlite_internal.h: a batch's rowid range). */
static int sqlite_only(const char *table, const char *col)
{
    return !strcmp(table, "batches") && (!strcmp(col, "rows_tracked") ||
                                         !strcmp(col, "rows_first") || !strcmp(col, "rows_last"));
}

Test(tables, catalog_names_every_column_of_every_table)
{
    sqlite3 *db = raw("a.db");
    size_t tables = 0;
    for (size_t i = 0; i < store_ntables; i++) {
        const struct table_def *t = &store_tables[i];
        char sql[160];
        snprintf(sql, sizeof sql, "PRAGMA table_info(\"%s\")", t->name);
        sqlite3_stmt *q;
        cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
        size_t seen = 0;
        while (sqlite3_step(q) == SQLITE_ROW) {
            const char *col = (const char *)sqlite3_column_text(q, 1);
            seen++;
            if (sqlite_only(t->name, col))
                continue;
            cr_expect_geq(table_col_index(t, col), 0, "%s.%s is not in the catalog", t->name, col);
        }
        sqlite3_finalize(q);
        cr_assert_gt(seen, 0, "table %s does not exist", t->name);
        tables++;
    }
    /* every table SQLite has is in the catalog, but for the ones not copied on purpose */
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                                    " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'ds_%'"
                                    " AND name NOT IN ('schema_migrations', 'batch_pending',"
                                    " 'dlq_staged')",
                                    -1, &q, NULL),
                 SQLITE_OK);
    size_t n = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        int found = 0;
        for (size_t i = 0; i < store_ntables; i++)
            found |= !strcmp(store_tables[i].name, name);
        cr_expect(found, "table %s is not in the catalog", name);
        n++;
    }
    sqlite3_finalize(q);
    cr_expect_eq(n, tables);
    sqlite3_close(db);
}

Test(tables, dataset_table_has_system_columns_then_fields)
{
    struct dataset_config ds = dataset();
    struct table_def *t = table_def_dataset("m", ds.schema);
    cr_assert_not_null(t);
    cr_expect_str_eq(t->name, "ds_m");
    cr_assert_eq(t->ncols, 10);
    const char *names[] = {
        "_id", "_ingest_id", "_source", "_received_at", "_extra", "_batch_id", "s", "i", "n", "b"};
    const enum cell_type types[] = {CELL_INT,  CELL_TEXT, CELL_TEXT, CELL_TEXT, CELL_TEXT,
                                    CELL_TEXT, CELL_TEXT, CELL_INT,  CELL_REAL, CELL_INT};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        cr_expect_str_eq(t->cols[i].name, names[i]);
        cr_expect_eq(t->cols[i].type, types[i], "%s", names[i]);
    }
    cr_expect_eq(t->cols[0].flags, COL_KEY | COL_SERIAL);
    table_def_free(t);
    dataset_free(&ds);
}

/* ---- the checksum --------------------------------------------------------------------- */

static const struct table_col sum_cols[] = {{"k", CELL_INT, COL_KEY},
                                            {"v", CELL_REAL, 0},
                                            {"t", CELL_TEXT, 0},
                                            {"p", CELL_TEXT, COL_LOCAL}};
static const struct table_def sum_table = {"t", sum_cols, ARRAY_SIZE(sum_cols)};

static void sum_of(const struct cell *row, unsigned char out[32])
{
    struct table_sum s;
    cr_assert_eq(table_sum_init(&s), 0);
    cr_assert_eq(table_sum_row(&s, &sum_table, row), 0);
    cr_assert_eq(table_sum_final(&s), 0);
    memcpy(out, s.sha256, 32);
}

Test(tables, checksum_is_canonical)
{
    unsigned char x[32], y[32];
    struct cell r1[4] = {{CELL_INT, 1, 0, 0, 0},
                         {CELL_REAL, 0, 0.0, 0, 0},
                         {CELL_TEXT, 0, 0, "ab", 2},
                         {CELL_TEXT, 0, 0, "/var/x", 6}};
    struct cell r2[4] = {{CELL_INT, 1, 0, 0, 0},
                         {CELL_REAL, 0, -0.0, 0, 0},
                         {CELL_TEXT, 0, 0, "abc", 2},
                         {CELL_NULL, 0, 0, 0, 0}};
    sum_of(r1, x);
    sum_of(r2, y);
    /* -0 and 0 are one value; a local column (a path) does not count; only n bytes count */
    cr_expect_eq(memcmp(x, y, 32), 0);

    r2[2] = (struct cell){CELL_BYTES, 0, 0, "ab", 2};
    sum_of(r2, y);
    cr_expect_neq(memcmp(x, y, 32), 0, "text and bytes of the same bytes differ");
    r2[2] = (struct cell){CELL_NULL, 0, 0, 0, 0};
    sum_of(r2, y);
    cr_expect_neq(memcmp(x, y, 32), 0, "NULL and a text differ");
    r2[2] = (struct cell){CELL_TEXT, 0, 0, "", 0};
    sum_of(r2, y);
    unsigned char z[32];
    r2[2] = (struct cell){CELL_NULL, 0, 0, 0, 0};
    sum_of(r2, z);
    cr_expect_neq(memcmp(z, y, 32), 0, "NULL and an empty text differ");
    r2[2] = r1[2];
    r2[0].i = 2;
    sum_of(r2, y);
    cr_expect_neq(memcmp(x, y, 32), 0, "another key differs");
    r2[0].i = 1;
    r2[1].d = 1e-300;
    sum_of(r2, y);
    cr_expect_neq(memcmp(x, y, 32), 0, "a tiny real is not 0");
}

/* ---- out of one store, into another --------------------------------------------------- */

Test(tables, sqlite_to_sqlite_keeps_every_value_and_id)
{
    struct dataset_config ds = dataset();
    struct table_def *t = table_def_dataset("m", ds.schema);
    char why[256];
    cr_assert_eq(store_dataset_sync(a, &ds, why, sizeof why), 0, "%s", why);
    cr_assert_eq(store_dataset_sync(b, &ds, why, sizeof why), 0, "%s", why);
    cr_assert_eq(store_begin(a), 0);
    load(a, t, m_rows, ARRAY_SIZE(m_rows) / t->ncols);
    const struct table_def *dlq = table_named("dlq");
    load(a, dlq, dlq_row, 1);
    cr_assert_eq(store_commit(a), 0, "%s", store_errmsg(a));

    struct table_sum sa, sb, sa2, sb2;
    cr_assert_eq(store_begin(b), 0);
    pass(a, b, t, &sa);
    pass(a, b, dlq, &sa2);
    cr_assert_eq(store_commit(b), 0, "%s", store_errmsg(b));
    pass(b, NULL, t, &sb);
    pass(b, NULL, dlq, &sb2);
    cr_expect_eq(sa.rows, 4);
    cr_expect_eq(sb.rows, 4);
    cr_expect_eq(memcmp(sa.sha256, sb.sha256, 32), 0, "ds_m differs after the copy");
    cr_expect_eq(memcmp(sa2.sha256, sb2.sha256, 32), 0, "dlq differs after the copy");

    sqlite3 *db = raw("b.db");
    cr_expect_eq(raw_int(db, "SELECT max(_id) FROM ds_m"), 9, "ids are kept");
    cr_expect_eq(raw_int(db, "SELECT i FROM ds_m WHERE _id = 3"), INT64_MIN);
    cr_expect_eq(raw_int(db, "SELECT length(payload) FROM dlq WHERE id = 42"), 4);
    cr_expect_eq(raw_int(db, "SELECT count(*) FROM ds_m WHERE s = 'tab' || char(9) || 'nl' ||"
                             " char(10) || 'cr' || char(13) || 'bs\\ ' || 'é€'"),
                 1);
    sqlite3_close(db);
    /* the next id follows the copied ones */
    expect_next_dlq_id(b, 43);
    table_def_free(t);
    dataset_free(&ds);
}

Test(tables, batches_loaded_after_their_rows_can_be_cleared)
{
    struct dataset_config ds = dataset();
    struct table_def *t = table_def_dataset("m", ds.schema);
    const struct table_def *batches = table_named("batches");
    char why[256];
    cr_assert_eq(store_dataset_sync(b, &ds, why, sizeof why), 0, "%s", why);
    struct cell brows[3][23];
    cr_assert_eq(batches->ncols, 23, "batches has %zu columns now", batches->ncols);
    const char *ids[] = {"bat_a", "bat_b", "bat_c"};
    for (int r = 0; r < 3; r++) {
        for (size_t c = 0; c < batches->ncols; c++)
            brows[r][c] =
                (struct cell){.type = batches->cols[c].type == CELL_REAL ? CELL_REAL : CELL_INT};
        for (size_t c = 0; c < batches->ncols; c++)
            if (batches->cols[c].type == CELL_TEXT)
                brows[r][c] = (struct cell){CELL_TEXT, 0, 0, "x", 1};
        brows[r][0] = (struct cell){CELL_TEXT, 0, 0, ids[r], 5};
        brows[r][1] = (struct cell){CELL_TEXT, 0, 0, "m", 1};
    }
    cr_assert_eq(store_begin(b), 0);
    load(b, t, m_rows, ARRAY_SIZE(m_rows) / t->ncols);
    load(b, batches, &brows[0][0], 3);
    cr_assert_eq(store_commit(b), 0, "%s", store_errmsg(b));

    sqlite3 *db = raw("b.db");
    cr_expect_eq(raw_int(db, "SELECT count(*) FROM batches WHERE rows_tracked = 1"), 3);
    cr_expect_eq(raw_int(db, "SELECT rows_first FROM batches WHERE id = 'bat_a'"), 3);
    cr_expect_eq(raw_int(db, "SELECT rows_last FROM batches WHERE id = 'bat_a'"), 7);
    cr_expect_eq(raw_int(db, "SELECT rows_first FROM batches WHERE id = 'bat_c'"), -999,
                 "a batch with no rows has no range");
    sqlite3_close(db);
    int64_t n = -1;
    cr_assert_eq(store_begin(b), 0);
    cr_assert_eq(store_batch_clear(b, "m", "bat_a", 0, &n), 0, "%s", store_errmsg(b));
    cr_assert_eq(store_commit(b), 0);
    cr_expect_eq(n, 2, "both rows of bat_a, found by the range");
    cr_expect_eq(store_row_count(b, "m"), 2);
    table_def_free(t);
    dataset_free(&ds);
}

Test(tables, a_value_of_another_type_is_refused_by_name)
{
    struct dataset_config ds = dataset();
    struct table_def *t = table_def_dataset("m", ds.schema);
    char why[256];
    cr_assert_eq(store_dataset_sync(a, &ds, why, sizeof why), 0, "%s", why);
    sqlite3 *db = raw("a.db");
    cr_assert_eq(sqlite3_exec(db,
                              "INSERT INTO dsr_m(_ingest_id, _received_at, i) VALUES"
                              " ('x', 'y', 'not a number')",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    struct copy c = {NULL, t, {0}};
    cr_assert_eq(table_sum_init(&c.sum), 0);
    cr_expect_eq(store_table_dump(a, t, copy_row, &c), -1);
    cr_expect(strstr(store_errmsg(a), "ds_m.i: a text value where integer is declared"), "%s",
              store_errmsg(a));
    table_sum_release(&c.sum);
    table_def_free(t);
    dataset_free(&ds);
}

Test(tables, dataset_drop_removes_table_and_record)
{
    struct dataset_config ds = dataset();
    char why[256];
    cr_assert_eq(store_dataset_sync(a, &ds, why, sizeof why), 0, "%s", why);
    cr_assert_eq(store_dataset_drop(a, "m"), 0, "%s", store_errmsg(a));
    sqlite3 *db = raw("a.db");
    cr_expect_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('ds_m', 'dsr_m')"),
                 0);
    cr_expect_eq(raw_int(db, "SELECT count(*) FROM datasets"), 0);
    sqlite3_close(db);
    dataset_free(&ds);
}

/* ---- a key of several fields ---------------------------------------------------------- */

/* Dataset "c" keyed by [s, i] (in that order, the schema's is i, s): its text form is what
 * `datasets.key` stores and what migrate reads back. */
static struct dataset_config composite(const char *key, enum on_duplicate mode)
{
    struct dataset_config ds = dataset_with(
        "c",
        "{\"type\":\"object\",\"required\":[\"i\",\"s\"],\"properties\":{"
        "\"i\":{\"type\":\"integer\"},\"s\":{\"type\":\"string\"},\"v\":{\"type\":\"string\"}}}");
    char err[256];
    ds.on_duplicate = mode;
    ds.key = (char *)key;
    cr_assert_eq(schema_key_parse(ds.schema, key, &ds.key_fields, err, sizeof err), 0, "%s", err);
    return ds;
}

static enum row_result put(const struct dataset_config *ds, const char *s, int64_t i, const char *v)
{
    struct row_value vals[3] = {{.kind = VAL_INT, .u.i = i},
                                {.kind = VAL_TEXT, .u.s = {s, strlen(s)}},
                                {.kind = VAL_TEXT, .u.s = {v, strlen(v)}}};
    struct row_meta m = {"ing_1", "api", "2026-01-01T00:00:00Z", NULL};
    enum row_result res;
    cr_assert_eq(store_row_put_values(a, ds, &m, vals, NULL, &res), 0, "%s", store_errmsg(a));
    return res;
}

Test(tables, composite_key_is_one_unique_index_in_its_order)
{
    struct dataset_config ds = composite("[\"s\",\"i\"]", ON_DUP_REJECT);
    char why[256];
    struct buf cols;
    buf_init(&cols, 256);
    cr_assert_eq(table_key_columns(&cols, ds.schema, &ds.key_fields), 0);
    cr_expect_str_eq(cols.data, "\"s\", \"i\"");
    buf_release(&cols);

    cr_assert_eq(store_dataset_sync(a, &ds, why, sizeof why), 0, "%s", why);
    sqlite3 *db = raw("a.db");
    cr_expect_eq(raw_int(db, "SELECT count(*) FROM pragma_index_info('ds_c_key')"), 2);
    cr_expect_eq(raw_int(db, "SELECT seqno FROM pragma_index_info('ds_c_key') WHERE name = 's'"), 0,
                 "the key's order, not the schema's");
    cr_expect_eq(raw_int(db, "SELECT seqno FROM pragma_index_info('ds_c_key') WHERE name = 'i'"),
                 1);
    cr_expect_eq(raw_int(db, "SELECT \"unique\" FROM pragma_index_list('dsr_c') WHERE name = "
                             "'ds_c_key'"),
                 1);

    cr_assert_eq(store_begin(a), 0);
    cr_expect_eq(put(&ds, "x", 1, "a"), ROW_INSERTED);
    cr_expect_eq(put(&ds, "x", 2, "b"), ROW_INSERTED, "one part differs: another key");
    cr_expect_eq(put(&ds, "y", 1, "c"), ROW_INSERTED, "the other part differs: another key");
    cr_expect_eq(put(&ds, "x", 1, "d"), ROW_DUPLICATE, "both parts equal: a duplicate");
    cr_assert_eq(store_commit(a), 0, "%s", store_errmsg(a));
    cr_expect_eq(raw_int(db, "SELECT count(*) FROM ds_c"), 3);
    cr_expect_eq(raw_int(db, "SELECT count(*) FROM datasets WHERE name = 'c' AND"
                             " key = '[\"s\",\"i\"]'"),
                 1, "datasets.key holds the key's text form");
    sqlite3_close(db);

    /* the same fields in another order are another key: refused like any key change */
    struct dataset_config other = composite("[\"i\",\"s\"]", ON_DUP_REJECT);
    cr_expect_eq(store_dataset_check(a, &other, why, sizeof why), -1);
    cr_expect(strstr(why, "the key changed from '[\"s\",\"i\"]' to '[\"i\",\"s\"]'"), "%s", why);
    other.key_fields.n = 0; /* and so is dropping it */
    other.key = NULL;
    cr_expect_eq(store_dataset_check(a, &other, why, sizeof why), -1);
    dataset_free(&other);
    dataset_free(&ds);
}

Test(tables, composite_key_upsert_replaces_the_row_with_both_parts_equal)
{
    struct dataset_config ds = composite("[\"s\",\"i\"]", ON_DUP_UPSERT);
    char why[256];
    cr_assert_eq(store_dataset_sync(a, &ds, why, sizeof why), 0, "%s", why);
    cr_assert_eq(store_begin(a), 0);
    put(&ds, "x", 1, "first");
    put(&ds, "x", 2, "other");
    put(&ds, "x", 1, "second");
    cr_assert_eq(store_commit(a), 0, "%s", store_errmsg(a));
    sqlite3 *db = raw("a.db");
    cr_expect_eq(raw_int(db, "SELECT count(*) FROM ds_c"), 2);
    cr_expect_eq(raw_int(db, "SELECT count(*) FROM ds_c WHERE s = 'x' AND i = 1 AND v = 'second'"),
                 1);
    sqlite3_close(db);
    dataset_free(&ds);
}

/* DUPLICATE_KEY shows every part of the key, in its order, as JSON. */
Test(tables, duplicate_key_message_shows_every_part)
{
    struct dataset_config ds = composite("[\"s\",\"i\"]", ON_DUP_REJECT);
    struct row_errors e = {0};
    json_t *row = json_pack("{s:i,s:s}", "i", 7, "s", "a\"b");
    schema_key_duplicate(ds.schema, &ds.key_fields, ds.key, row, NULL, &e);
    struct row_value vals[3] = {{.kind = VAL_INT, .u.i = 8}, {.kind = VAL_ABSENT}};
    schema_key_duplicate(ds.schema, &ds.key_fields, ds.key, NULL, vals, &e);
    cr_assert_eq(e.n, 2);
    cr_expect_eq(e.v[0].code, ERR_DUPLICATE_KEY);
    cr_expect_str_eq(e.v[0].field, "[\"s\",\"i\"]");
    cr_expect_str_eq(e.v[0].message, "a row with [\"s\",\"i\"] = [\"a\\\"b\",7] is already stored");
    cr_expect_str_eq(e.v[1].message, "a row with [\"s\",\"i\"] = [null,8] is already stored");
    row_errors_release(&e);
    json_decref(row);
    dataset_free(&ds);

    /* one field: as before, the name and the value */
    struct dataset_config one = composite("s", ON_DUP_REJECT);
    row = json_pack("{s:s}", "s", "CASE-1");
    schema_key_duplicate(one.schema, &one.key_fields, one.key, row, NULL, &e);
    cr_expect_str_eq(e.v[0].field, "s");
    cr_expect_str_eq(e.v[0].message, "a row with s = \"CASE-1\" is already stored");
    row_errors_release(&e);
    json_decref(row);
    dataset_free(&one);
}

/* What `datasets.key` may hold, read back as migrate does. */
Test(tables, key_text_form_parses_back)
{
    struct dataset_config ds = composite("s", ON_DUP_REJECT);
    struct schema_key k;
    char why[200];
    const char *names[] = {"s", "i"};
    char *t = schema_key_text(names, 2);
    cr_expect_str_eq(t, "[\"s\",\"i\"]");
    cr_expect_eq(schema_key_parse(ds.schema, t, &k, why, sizeof why), 0, "%s", why);
    cr_expect_eq(k.n, 2);
    free(t);
    t = schema_key_text(names, 1);
    cr_expect_str_eq(t, "s", "a key of one field is its bare name");
    free(t);
    cr_expect_eq(schema_key_parse(ds.schema, NULL, &k, why, sizeof why), 0);
    cr_expect_eq(k.n, 0);
    cr_expect_eq(schema_key_parse(ds.schema, "[\"s\",", &k, why, sizeof why), -1);
    cr_expect_eq(schema_key_parse(ds.schema, "[\"s\",\"v\"]", &k, why, sizeof why), -1);
    cr_expect_str_eq(why,
                     "'v' is not in required (every field of a key of several fields must be)");
    cr_expect_eq(schema_key_parse(ds.schema, "[\"s\",3]", &k, why, sizeof why), -1);
    cr_expect_str_eq(why, "entry 2 of the key is not a name");
    dataset_free(&ds);
}
