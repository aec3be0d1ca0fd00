/*
 * test_store.c - the SQLite store (src/store/store.h, sqlite.c) on a
 * fresh file per test: migrations, dataset tables and their evolution, rows
 * (duplicates, upserts, typed columns, _extra), the DLQ and its filters,
 * idempotency records, transactions and savepoints, batch files (kept, read,
 * dropped, swept) and upload spools. What the store wrote is
 * checked by reading the file with sqlite3 directly, not only through the store.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include "batch/batch.h"
#include "batch_file_test.h"
#include "rollup_test.h"
#include "config/config.h"
#include "store/sqlite/sqlite_internal.h" /* sqlite_code_is_fault, sqlite_exec */
#include "store/store.h"
#include "util/clock.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixture: a temp directory with t.db ---------------------------------------- */

static char dir[64];
static char db_path[128];
static char uri[160];
static struct store *st;

static void open_fresh(void)
{
    char err[256] = "";
    snprintf(dir, sizeof dir, "/tmp/sluice-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", db_path);
    st = store_open(uri, 0, err, sizeof err);
    cr_assert_not_null(st, "store_open(%s): %s", uri, err);
    cr_assert_eq(store_migrate(st), 0, "migrate: %s", store_errmsg(st));
}

static void cleanup(void)
{
    store_close(st);
    st = NULL;
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < ARRAY_SIZE(sfx); i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", db_path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* ---- reading the file directly ------------------------------------------------------- */

static sqlite3 *raw_open(void)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of the first row of sql as an integer; -999 when no row. */
static int64_t raw_int(const char *sql)
{
    sqlite3 *db = raw_open();
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    int64_t v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -999;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

/* The first column of the first row as text (caller frees); NULL for SQL NULL or no row. */
static char *raw_text(const char *sql)
{
    sqlite3 *db = raw_open();
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    char *v = NULL;
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
        v = strdup((const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static void expect_text(const char *sql, const char *want)
{
    char *got = raw_text(sql);
    if (want == NULL)
        cr_expect_null(got, "%s: got '%s', expected NULL", sql, got);
    else if (got == NULL)
        cr_expect_fail("%s: got NULL, expected '%s'", sql, want);
    else
        cr_expect_str_eq(got, want, "%s", sql);
    free(got);
}

/* The declared type of column col of table, or NULL if there is no such column. */
static char *column_type(const char *table, const char *col)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT type FROM pragma_table_info('%s') WHERE name = '%s'", table,
             col);
    return raw_text(sql);
}

/* ---- configurations ------------------------------------------------------------------ */

#define BASE_YAML                                                                                  \
    "datasets:\n"                                                                                  \
    "  - name: judgments\n"                                                                        \
    "    key: case_number\n"                                                                       \
    "    on_duplicate: reject\n"                                                                   \
    "    schema:\n"                                                                                \
    "      type: object\n"                                                                         \
    "      required: [case_number]\n"                                                              \
    "      properties:\n"                                                                          \
    "        case_number: {type: string}\n"                                                        \
    "        amount: {type: number}\n"                                                             \
    "        count: {type: integer}\n"                                                             \
    "        flag: {type: boolean}\n"                                                              \
    "        notes: {type: string}\n"                                                              \
    "  - name: upserts\n"                                                                          \
    "    key: id\n"                                                                                \
    "    on_duplicate: upsert\n"                                                                   \
    "    schema: {type: object, properties: {id: {type: integer}, v: {type: string},"              \
    " n: {type: number}}}\n"                                                                       \
    "  - name: skips\n"                                                                            \
    "    key: id\n"                                                                                \
    "    on_duplicate: skip\n"                                                                     \
    "    schema: {type: object, properties: {id: {type: string}, v: {type: string}}}\n"            \
    "  - name: free\n"                                                                             \
    "    schema: {type: object, properties: {v: {type: string}}}\n"

/* The judgments dataset, changed; %s are the lines after "properties:". */
#define JUDGMENTS_YAML(key_line, required, props)                                                  \
    "datasets:\n"                                                                                  \
    "  - name: judgments\n" key_line "    schema:\n"                                               \
    "      type: object\n"                                                                         \
    "      required: " required "\n"                                                               \
    "      properties:\n" props

#define BASE_PROPS                                                                                 \
    "        case_number: {type: string}\n"                                                        \
    "        amount: {type: number}\n"                                                             \
    "        count: {type: integer}\n"                                                             \
    "        flag: {type: boolean}\n"                                                              \
    "        notes: {type: string}\n"

static struct sluice_config *load_cfg(const char *yaml)
{
    char path[] = "/tmp/sluice-store-cfg-XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    cr_assert_geq(fd, 0);
    size_t len = strlen(yaml);
    cr_assert_eq(write(fd, yaml, len), (ssize_t)len);
    close(fd);
    struct sluice_config *cfg = calloc(1, sizeof *cfg);
    char err[512];
    int rc = config_load(path, cfg, err, sizeof err);
    unlink(path);
    cr_assert_eq(rc, 0, "config_load: %s\n%s", err, yaml);
    return cfg;
}

static void free_cfg(struct sluice_config *cfg)
{
    config_release(cfg);
    free(cfg);
}

static const struct dataset_config *ds_of(const struct sluice_config *cfg, const char *name)
{
    const struct dataset_config *ds = config_dataset(cfg, name);
    cr_assert_not_null(ds, "no dataset %s", name);
    return ds;
}

static void sync_ok(const struct dataset_config *ds)
{
    char why[512] = "";
    cr_assert_eq(store_dataset_sync(st, ds, why, sizeof why), 0, "sync %s: %s", ds->name, why);
}

static struct sluice_config *base_synced(void)
{
    struct sluice_config *cfg = load_cfg(BASE_YAML);
    for (size_t i = 0; i < cfg->ndatasets; i++)
        sync_ok(&cfg->datasets[i]);
    return cfg;
}

static json_t *js(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    cr_assert_not_null(j, "bad JSON in test: %s: %s", text, jerr.text);
    return j;
}

static const struct row_meta META1 = {"ing_1", "test-1", "2026-01-02T03:04:05.006Z", NULL};
static const struct row_meta META2 = {"ing_2", "test-2", "2026-01-02T03:04:06.000Z", NULL};

/* row_put of the JSON text row (and extra, may be NULL); returns the result. */
static enum row_result put(const struct dataset_config *ds, const struct row_meta *m,
                           const char *row, const char *extra)
{
    json_t *r = js(row), *x = extra ? js(extra) : NULL;
    enum row_result res = (enum row_result) - 1;
    int rc = store_row_put(st, ds, m, r, x, &res);
    cr_assert_eq(rc, 0, "row_put %s: %s", row, store_errmsg(st));
    json_decref(r);
    json_decref(x);
    return res;
}

/* ---- open and migrate ---------------------------------------------------------------- */

Test(store, open_migrate_idempotent, .fini = cleanup)
{
    open_fresh();
    cr_expect_eq(store_migrate(st), 0, "second migrate: %s", store_errmsg(st));
    cr_expect_eq(store_ping(st), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM schema_migrations"), 13);
    cr_expect_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                         " ('datasets', 'dlq', 'idempotency')"),
                 3);
    expect_text("PRAGMA journal_mode", "wal");

    /* reopening the same file and migrating again changes nothing */
    char err[256];
    store_close(st);
    st = store_open(uri, 0, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    cr_expect_eq(store_migrate(st), 0, "%s", store_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM schema_migrations"), 13);
}

Test(store, open_errors)
{
    char err[256] = "";
    cr_expect_null(store_open("postgres://localhost/x", 0, err, sizeof err));
    cr_expect_neq(err[0], 0);
    err[0] = 0;
    cr_expect_null(store_open("sqlite:/nonexistent-dir-sluice/x/t.db", 0, err, sizeof err));
    cr_expect_neq(err[0], 0);
    store_close(NULL); /* accepted */
}

/* ---- datasets ------------------------------------------------------------------------ */

Test(store, dataset_sync_creates_typed_table, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    static const struct {
        const char *col, *type;
    } cols[] = {
        {"case_number", "TEXT"},  {"amount", "REAL"}, {"count", "INTEGER"},   {"flag", "INTEGER"},
        {"notes", "TEXT"},        {"_id", "INTEGER"}, {"_ingest_id", "TEXT"}, {"_source", "TEXT"},
        {"_received_at", "TEXT"}, {"_extra", "TEXT"}, {"_batch_id", "TEXT"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cols); i++) {
        char *t = column_type("ds_judgments", cols[i].col);
        cr_expect_not_null(t, "ds_judgments has no column %s", cols[i].col);
        if (t)
            cr_expect_str_eq(t, cols[i].type, "column %s", cols[i].col);
        free(t);
    }
    expect_text("SELECT key FROM datasets WHERE name = 'judgments'", "case_number");
    expect_text("SELECT key FROM datasets WHERE name = 'free'", NULL);
    cr_expect_eq(raw_int("SELECT count(*) FROM datasets"), 4);
    cr_expect_eq(store_row_count(st, "judgments"), 0);

    /* syncing again is a no-op */
    sync_ok(ds_of(cfg, "judgments"));
    cr_expect_eq(raw_int("SELECT count(*) FROM pragma_table_info('ds_judgments')"), 11);
    char why[256];
    cr_expect_eq(store_dataset_check(st, ds_of(cfg, "judgments"), why, sizeof why), 0, "%s", why);
    free_cfg(cfg);
}

/* A change of the judgments dataset that must be refused, and a word the reason must hold. */
static const struct {
    const char *what;
    const char *yaml;
    const char *reason_has;
} refused_changes[] = {
    {"type change",
     JUDGMENTS_YAML("    key: case_number\n", "[case_number]",
                    "        case_number: {type: string}\n"
                    "        amount: {type: string}\n"
                    "        count: {type: integer}\n"
                    "        flag: {type: boolean}\n"
                    "        notes: {type: string}\n"),
     "amount"},
    {"removed field",
     JUDGMENTS_YAML("    key: case_number\n", "[case_number]",
                    "        case_number: {type: string}\n"
                    "        amount: {type: number}\n"
                    "        count: {type: integer}\n"
                    "        flag: {type: boolean}\n"),
     "notes"},
    {"key change", JUDGMENTS_YAML("    key: notes\n", "[case_number]", BASE_PROPS), "notes"},
    {"key removed", JUDGMENTS_YAML("", "[case_number]", BASE_PROPS), "case_number"},
    {"new required field",
     JUDGMENTS_YAML("    key: case_number\n", "[case_number, court]",
                    BASE_PROPS "        court: {type: string}\n"),
     "court"},
};

Test(store, dataset_check_refuses_incompatible_changes, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *base = base_synced();
    for (size_t i = 0; i < ARRAY_SIZE(refused_changes); i++) {
        struct sluice_config *next = load_cfg(refused_changes[i].yaml);
        const struct dataset_config *ds = ds_of(next, "judgments");
        char why[512] = "";
        cr_expect_eq(store_dataset_check(st, ds, why, sizeof why), -1, "%s: accepted",
                     refused_changes[i].what);
        cr_expect(strstr(why, refused_changes[i].reason_has) != NULL,
                  "%s: reason '%s' does not name '%s'", refused_changes[i].what, why,
                  refused_changes[i].reason_has);
        /* sync refuses too, and leaves the table and the stored schema as they were */
        why[0] = 0;
        cr_expect_eq(store_dataset_sync(st, ds, why, sizeof why), -1, "%s: sync accepted",
                     refused_changes[i].what);
        cr_expect_neq(why[0], 0);
        free_cfg(next);
    }
    char *t = column_type("ds_judgments", "amount");
    cr_expect_str_eq(t ? t : "(none)", "REAL");
    free(t);
    cr_expect_eq(raw_int("SELECT count(*) FROM pragma_table_info('ds_judgments')"), 11);
    expect_text("SELECT key FROM datasets WHERE name = 'judgments'", "case_number");
    /* the old definition is still the accepted one */
    char why[256];
    cr_expect_eq(store_dataset_check(st, ds_of(base, "judgments"), why, sizeof why), 0, "%s", why);
    free_cfg(base);
}

Test(store, added_optional_field_adds_column, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *base = base_synced();
    const struct dataset_config *old = ds_of(base, "judgments");
    cr_expect_eq(put(old, &META1, "{\"case_number\":\"C1\",\"amount\":1}", NULL), ROW_INSERTED);

    struct sluice_config *next =
        load_cfg(JUDGMENTS_YAML("    key: case_number\n", "[case_number]",
                                BASE_PROPS "        court: {type: string}\n"
                                           "        seq: {type: integer}\n"));
    const struct dataset_config *ds = ds_of(next, "judgments");
    char why[512] = "";
    cr_expect_eq(store_dataset_check(st, ds, why, sizeof why), 0, "%s", why);
    sync_ok(ds);
    char *t = column_type("ds_judgments", "court");
    cr_expect_str_eq(t ? t : "(none)", "TEXT");
    free(t);
    t = column_type("ds_judgments", "seq");
    cr_expect_str_eq(t ? t : "(none)", "INTEGER");
    free(t);

    /* the stored schema is the new one: checking the new definition again is fine */
    cr_expect_eq(store_dataset_check(st, ds, why, sizeof why), 0, "%s", why);
    char *schema = raw_text("SELECT schema FROM datasets WHERE name = 'judgments'");
    cr_expect(schema && strstr(schema, "court"), "stored schema: %s", schema);
    free(schema);

    /* rows use the new column; the old row has NULL there */
    cr_expect_eq(put(ds, &META2, "{\"case_number\":\"C2\",\"court\":\"high\",\"seq\":4}", NULL),
                 ROW_INSERTED);
    expect_text("SELECT court FROM ds_judgments WHERE case_number = 'C2'", "high");
    cr_expect_eq(raw_int("SELECT seq FROM ds_judgments WHERE case_number = 'C2'"), 4);
    expect_text("SELECT court FROM ds_judgments WHERE case_number = 'C1'", NULL);
    cr_expect_eq(store_row_count(st, "judgments"), 2);
    free_cfg(next);
    free_cfg(base);
}

/* ---- rows ---------------------------------------------------------------------------- */

Test(store, reject_duplicate_key, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    cr_expect_eq(put(ds, &META1, "{\"case_number\":\"C1\",\"amount\":1.5}", NULL), ROW_INSERTED);
    cr_expect_eq(put(ds, &META1, "{\"case_number\":\"C2\",\"amount\":2}", NULL), ROW_INSERTED);
    cr_expect_eq(put(ds, &META2, "{\"case_number\":\"C1\",\"amount\":99}", NULL), ROW_DUPLICATE);
    cr_expect_eq(store_row_count(st, "judgments"), 2);
    /* the first row is kept as it was */
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments WHERE case_number = 'C1'"), 1);
    expect_text("SELECT amount FROM ds_judgments WHERE case_number = 'C1'", "1.5");
    expect_text("SELECT _ingest_id FROM ds_judgments WHERE case_number = 'C1'", "ing_1");
    free_cfg(cfg);
}

/* store_fault (store.h): a full, read-only or failing store is the store's fault; a
 * constraint, a bad value or an SQL error is the statement's. */
Test(store, fault_classifies_sqlite_errors)
{
    const int faults[] = {SQLITE_FULL,        SQLITE_IOERR,    SQLITE_IOERR_WRITE,
                          SQLITE_IOERR_FSYNC, SQLITE_READONLY, SQLITE_READONLY_DBMOVED,
                          SQLITE_CORRUPT,     SQLITE_NOTADB,   SQLITE_NOMEM,
                          SQLITE_CANTOPEN,    SQLITE_BUSY,     SQLITE_LOCKED};
    const int not_faults[] = {SQLITE_CONSTRAINT,
                              SQLITE_CONSTRAINT_PRIMARYKEY,
                              SQLITE_CONSTRAINT_UNIQUE,
                              SQLITE_CONSTRAINT_NOTNULL,
                              SQLITE_MISMATCH,
                              SQLITE_TOOBIG,
                              SQLITE_RANGE,
                              SQLITE_ERROR,
                              SQLITE_OK};
    for (size_t i = 0; i < ARRAY_SIZE(faults); i++)
        cr_expect(sqlite_code_is_fault(faults[i]), "%s", sqlite3_errstr(faults[i]));
    for (size_t i = 0; i < ARRAY_SIZE(not_faults); i++)
        cr_expect_not(sqlite_code_is_fault(not_faults[i]), "%s", sqlite3_errstr(not_faults[i]));
}

Test(store, fault_after_real_errors, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    cr_assert_eq(store_begin(st), 0);
    cr_expect_not(store_fault(st));
    /* a key conflict through SQL (schema_migrations' version 1 exists): the data's */
    cr_expect_eq(sqlite_exec(SQ(st), "INSERT INTO schema_migrations VALUES (1, 0)"), -1);
    cr_expect(strstr(store_errmsg(st), "UNIQUE") != NULL, "%s", store_errmsg(st));
    cr_expect_not(store_fault(st), "a constraint violation is not the store's fault");
    /* a bad statement: the caller's */
    cr_expect_eq(sqlite_exec(SQ(st), "INSERT INTO no_such_table VALUES (1)"), -1);
    cr_expect_not(store_fault(st));
    cr_assert_eq(store_rollback(st), 0);

    /* the database may not grow (as a full disk): the INSERTs fail with SQLITE_FULL */
    cr_assert_eq(sqlite_exec(SQ(st), "PRAGMA max_page_count = 1"), 0);
    cr_assert_eq(store_begin(st), 0);
    json_t *row = js("{\"case_number\":\"C1\",\"amount\":1}");
    enum row_result res;
    int rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++) {
        char cn[16];
        snprintf(cn, sizeof cn, "C%d", i);
        json_object_set_new(row, "case_number", json_string(cn));
        rc = store_row_put(st, ds, &META1, row, NULL, &res);
    }
    json_decref(row);
    cr_expect_eq(rc, -1, "the rows still fit");
    cr_expect(strstr(store_errmsg(st), "full") != NULL, "%s", store_errmsg(st));
    cr_expect(store_fault(st), "SQLITE_FULL inside an INSERT: %s", store_errmsg(st));
    store_rollback(st);
    cr_assert_eq(store_begin(st), 0);
    cr_expect_not(store_fault(st), "begin forgets the class");
    store_rollback(st);
    free_cfg(cfg);
}

Test(store, fault_on_a_read_only_store, .fini = cleanup)
{
    open_fresh();
    char err[256] = "";
    struct store *ro = store_open(uri, 1, err, sizeof err);
    cr_assert_not_null(ro, "%s", err);
    struct dlq_new e = {.dataset = "d",
                        .ingest_id = "i",
                        .source = "s",
                        .payload = "{}",
                        .payload_len = 2,
                        .errors_json = "[]",
                        .codes = ",",
                        .received_ms = 1};
    cr_expect_eq(store_dlq_add(ro, &e, NULL), -1);
    cr_expect(store_fault(ro), "a read-only store: %s", store_errmsg(ro));
    store_close(ro);
}

Test(store, upsert_replaces_row, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "upserts");
    cr_expect_eq(put(ds, &META1, "{\"id\":7,\"v\":\"first\",\"n\":1.25}", "{\"x\":1}"),
                 ROW_INSERTED);
    cr_expect_eq(put(ds, &META1, "{\"id\":8,\"v\":\"other\"}", NULL), ROW_INSERTED);
    enum row_result r = put(ds, &META2, "{\"id\":7,\"v\":\"second\"}", "{\"y\":2}");
    cr_expect(r == ROW_REPLACED || r == ROW_INSERTED, "upsert of an existing key gave %d", r);
    cr_expect_eq(store_row_count(st, "upserts"), 2);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_upserts WHERE id = 7"), 1);
    expect_text("SELECT v FROM ds_upserts WHERE id = 7", "second");
    expect_text("SELECT n FROM ds_upserts WHERE id = 7", NULL); /* the whole row is replaced */
    expect_text("SELECT _ingest_id FROM ds_upserts WHERE id = 7", "ing_2");
    expect_text("SELECT _source FROM ds_upserts WHERE id = 7", "test-2");
    expect_text("SELECT _received_at FROM ds_upserts WHERE id = 7", META2.received_at);
    expect_text("SELECT _extra FROM ds_upserts WHERE id = 7", "{\"y\":2}");
    expect_text("SELECT v FROM ds_upserts WHERE id = 8", "other");
    free_cfg(cfg);
}

Test(store, skip_keeps_first, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "skips");
    cr_expect_eq(put(ds, &META1, "{\"id\":\"a\",\"v\":\"first\"}", NULL), ROW_INSERTED);
    cr_expect_eq(put(ds, &META2, "{\"id\":\"a\",\"v\":\"second\"}", NULL), ROW_DUPLICATE);
    cr_expect_eq(store_row_count(st, "skips"), 1);
    expect_text("SELECT v FROM ds_skips WHERE id = 'a'", "first");
    free_cfg(cfg);
}

Test(store, no_key_keeps_every_row, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "free");
    cr_expect_eq(put(ds, &META1, "{\"v\":\"same\"}", NULL), ROW_INSERTED);
    cr_expect_eq(put(ds, &META1, "{\"v\":\"same\"}", NULL), ROW_INSERTED);
    cr_expect_eq(store_row_count(st, "free"), 2);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_free"), 2);
    free_cfg(cfg);
}

Test(store, typed_columns, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    put(ds, &META1,
        "{\"case_number\":\"A\",\"amount\":5,\"count\":7,\"flag\":true,\"notes\":\"n\"}", NULL);
    put(ds, &META1, "{\"case_number\":\"B\",\"amount\":12.5,\"count\":3.0,\"flag\":false}", NULL);
    put(ds, &META1, "{\"case_number\":\"C\",\"count\":9007199254740993}", NULL);

    static const struct {
        const char *sql, *want;
    } checks[] = {
        /* a JSON integer in a number field is stored as REAL */
        {"SELECT typeof(amount) FROM ds_judgments WHERE case_number = 'A'", "real"},
        {"SELECT amount FROM ds_judgments WHERE case_number = 'A'", "5.0"},
        {"SELECT typeof(amount) FROM ds_judgments WHERE case_number = 'B'", "real"},
        {"SELECT amount FROM ds_judgments WHERE case_number = 'B'", "12.5"},
        /* integers (also written 3.0) as INTEGER, exact beyond 2^53 */
        {"SELECT typeof(count) FROM ds_judgments WHERE case_number = 'A'", "integer"},
        {"SELECT count FROM ds_judgments WHERE case_number = 'A'", "7"},
        {"SELECT typeof(count) FROM ds_judgments WHERE case_number = 'B'", "integer"},
        {"SELECT count FROM ds_judgments WHERE case_number = 'B'", "3"},
        {"SELECT count FROM ds_judgments WHERE case_number = 'C'", "9007199254740993"},
        /* booleans as 0/1 */
        {"SELECT typeof(flag) || flag FROM ds_judgments WHERE case_number = 'A'", "integer1"},
        {"SELECT typeof(flag) || flag FROM ds_judgments WHERE case_number = 'B'", "integer0"},
        {"SELECT typeof(case_number) FROM ds_judgments WHERE case_number = 'A'", "text"},
        {"SELECT notes FROM ds_judgments WHERE case_number = 'A'", "n"},
        /* absent optional fields are NULL */
        {"SELECT typeof(notes) FROM ds_judgments WHERE case_number = 'B'", "null"},
        {"SELECT typeof(amount) || typeof(flag) FROM ds_judgments WHERE case_number = 'C'",
         "nullnull"},
        /* provenance */
        {"SELECT _ingest_id || '|' || _source || '|' || _received_at FROM ds_judgments"
         " WHERE case_number = 'A'",
         "ing_1|test-1|2026-01-02T03:04:05.006Z"},
        {"SELECT typeof(_extra) FROM ds_judgments WHERE case_number = 'A'", "null"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(checks); i++)
        expect_text(checks[i].sql, checks[i].want);
    free_cfg(cfg);
}

Test(store, extra_fields_as_json, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    const char *extra = "{\"court\":\"high\",\"n\":[1,2,{\"k\":null}],\"u\":\"caf\xc3\xa9\"}";
    put(ds, &META1, "{\"case_number\":\"X\",\"court\":\"high\"}", extra);
    char *txt = raw_text("SELECT _extra FROM ds_judgments WHERE case_number = 'X'");
    cr_assert_not_null(txt, "_extra is NULL");
    json_t *got = js(txt), *want = js(extra);
    cr_expect(json_equal(got, want), "_extra is %s", txt);
    /* undeclared fields do not become columns */
    char *t = column_type("ds_judgments", "court");
    cr_expect_null(t);
    free(t);
    json_decref(got);
    json_decref(want);
    free(txt);
    free_cfg(cfg);
}

Test(store, row_count_unknown_dataset, .fini = cleanup)
{
    open_fresh();
    cr_expect_lt(store_row_count(st, "never_synced"), 0);
}

/* ---- DLQ ----------------------------------------------------------------------------- */

static const char PAYLOAD[] = "{\"a\":\"\0\xff\"}"; /* binary-safe: a NUL and a non-UTF-8 byte */

static int64_t dlq_add(const char *dataset, const char *codes, int64_t row, int64_t ms)
{
    char errors[128];
    snprintf(errors, sizeof errors, "[{\"field\":\"a\",\"code\":\"%s\",\"message\":\"m\"}]", codes);
    struct dlq_new e = {.dataset = dataset,
                        .ingest_id = "ing_dlq",
                        .source = "src",
                        .row = row,
                        .payload = PAYLOAD,
                        .payload_len = sizeof PAYLOAD - 1,
                        .errors_json = errors,
                        .codes = codes,
                        .received_ms = ms};
    int64_t id = -1;
    cr_assert_eq(store_dlq_add(st, &e, &id), 0, "dlq_add: %s", store_errmsg(st));
    cr_assert_gt(id, 0);
    return id;
}

/* dlq_list with f; writes the ids found to ids (at most 64) and returns how many. */
static size_t list_ids(const struct dlq_filter *f, int64_t *ids)
{
    struct dlq_entry *v = NULL;
    size_t n = 0;
    cr_assert_eq(store_dlq_list(st, f, &v, &n), 0, "dlq_list: %s", store_errmsg(st));
    cr_assert_leq(n, 64);
    for (size_t i = 0; i < n; i++) {
        ids[i] = v[i].id;
        dlq_entry_release(&v[i]);
    }
    free(v);
    return n;
}

static void expect_ids(const struct dlq_filter *f, const int64_t *want, size_t nwant,
                       const char *what)
{
    int64_t got[64];
    size_t n = list_ids(f, got);
    cr_expect_eq(n, nwant, "%s: %zu entries, expected %zu", what, n, nwant);
    for (size_t i = 0; i < n && i < nwant; i++)
        cr_expect_eq(got[i], want[i], "%s: entry %zu is id %lld, expected %lld", what, i,
                     (long long)got[i], (long long)want[i]);
}

#include "dlq_list_test.h"

Test(store, dlq_add_get, .fini = cleanup)
{
    open_fresh();
    int64_t id = dlq_add("judgments", ",INVALID_TYPE,TOO_LONG,", 3, 1700000000123);
    struct dlq_entry e;
    cr_assert_eq(store_dlq_get(st, id, &e), 0, "%s", store_errmsg(st));
    cr_expect_eq(e.id, id);
    cr_expect_str_eq(e.dataset, "judgments");
    cr_expect_str_eq(e.ingest_id, "ing_dlq");
    cr_expect_str_eq(e.source, "src");
    cr_expect_eq(e.row, 3);
    cr_expect_eq(e.payload_len, sizeof PAYLOAD - 1);
    cr_expect_eq(memcmp(e.payload, PAYLOAD, sizeof PAYLOAD - 1), 0, "payload not byte-exact");
    cr_expect_str_eq(e.errors_json,
                     "[{\"field\":\"a\",\"code\":\",INVALID_TYPE,TOO_LONG,\",\"message\":\"m\"}]");
    cr_expect_eq(e.received_ms, 1700000000123);
    cr_expect_eq(e.updated_ms, 1700000000123);
    cr_expect_eq(e.attempts, 0);
    cr_expect_str_eq(e.status, "open");
    dlq_entry_release(&e);

    cr_expect_eq(store_dlq_get(st, id + 100, &e), 1, "a missing id is 'not found'");
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 1);
}

Test(store, dlq_list_filters, .fini = cleanup)
{
    open_fresh();
    int64_t a = dlq_add("judgments", ",INVALID_TYPE,", 1, 1000);
    int64_t b = dlq_add("judgments", ",MISSING_REQUIRED_FIELD,INVALID_TYPE,", 2, 1001);
    int64_t c = dlq_add("events", ",MALFORMED_JSON,", 1, 1002);
    int64_t d = dlq_add("judgments", ",TOO_LONG,", 3, 1003);
    int64_t e = dlq_add("events", ",INVALID_TYPE,", 2, 1004);

    struct dlq_filter f = {.limit = 100};
    expect_ids(&f, (int64_t[]){a, b, c, d, e}, 5, "no filter");

    f = (struct dlq_filter){.dataset = "judgments", .limit = 100};
    expect_ids(&f, (int64_t[]){a, b, d}, 3, "dataset");

    f = (struct dlq_filter){.error_code = "INVALID_TYPE", .limit = 100};
    expect_ids(&f, (int64_t[]){a, b, e}, 3, "code INVALID_TYPE (first, middle, last of list)");
    f = (struct dlq_filter){.error_code = "MISSING_REQUIRED_FIELD", .limit = 100};
    expect_ids(&f, (int64_t[]){b}, 1, "code at the start of a list of two");
    f = (struct dlq_filter){.error_code = "INVALID", .limit = 100};
    expect_ids(&f, NULL, 0, "a prefix of a code matches nothing");
    f = (struct dlq_filter){.error_code = "TYPE", .limit = 100};
    expect_ids(&f, NULL, 0, "a suffix of a code matches nothing");
    f = (struct dlq_filter){.dataset = "events", .error_code = "INVALID_TYPE", .limit = 100};
    expect_ids(&f, (int64_t[]){e}, 1, "dataset and code");

    int64_t some[] = {e, a, 999};
    f = (struct dlq_filter){.ids = some, .nids = 3, .limit = 100};
    expect_ids(&f, (int64_t[]){a, e}, 2, "ids (in id order, unknown ids ignored)");
    f = (struct dlq_filter){.ids = some, .nids = 3, .dataset = "events", .limit = 100};
    expect_ids(&f, (int64_t[]){e}, 1, "ids and dataset");

    /* keyset pagination: pages of 2 walk every entry once, in order */
    int64_t all[5], n = 0, after = 0;
    for (int page = 0; page < 10; page++) {
        int64_t got[64];
        f = (struct dlq_filter){.after_id = after, .limit = 2};
        size_t k = list_ids(&f, got);
        cr_expect_leq(k, 2);
        if (k == 0)
            break;
        for (size_t i = 0; i < k && n < 5; i++)
            all[n++] = got[i];
        after = got[k - 1];
    }
    cr_expect_eq(n, 5);
    int64_t want[] = {a, b, c, d, e};
    for (int64_t i = 0; i < n; i++)
        cr_expect_eq(all[i], want[i], "page walk entry %lld", (long long)i);
    f = (struct dlq_filter){.after_id = b, .limit = 2, .dataset = "judgments"};
    expect_ids(&f, (int64_t[]){d}, 1, "after_id with dataset");
    f = (struct dlq_filter){.after_id = e, .limit = 10};
    expect_ids(&f, NULL, 0, "after the last id");

    /* status */
    cr_assert_eq(store_dlq_set(st, b, "resolved", 1, NULL, NULL, 5000), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_dlq_set(st, c, "dropped", 0, NULL, NULL, 5001), 0);
    f = (struct dlq_filter){.status = "open", .limit = 100};
    expect_ids(&f, (int64_t[]){a, d, e}, 3, "status open");
    f = (struct dlq_filter){.status = "resolved", .limit = 100};
    expect_ids(&f, (int64_t[]){b}, 1, "status resolved");
    f = (struct dlq_filter){.status = "open", .error_code = "INVALID_TYPE", .limit = 100};
    expect_ids(&f, (int64_t[]){a, e}, 2, "status and code");
}

Test(store, dlq_set_and_depth, .fini = cleanup)
{
    open_fresh();
    json_t *depth = NULL;
    cr_assert_eq(store_dlq_depth(st, &depth), 0);
    cr_expect_eq(json_object_size(depth), 0, "empty DLQ has no datasets");
    json_decref(depth);

    int64_t a = dlq_add("judgments", ",INVALID_TYPE,", 1, 1000);
    int64_t b = dlq_add("judgments", ",TOO_LONG,", 2, 1000);
    dlq_add("judgments", ",TOO_LONG,", 3, 1000);
    int64_t d = dlq_add("events", ",MALFORMED_JSON,", 1, 1000);

    /* a retry that failed again: attempts, new errors and codes, updated_ms */
    cr_assert_eq(
        store_dlq_set(st, a, "open", 1, "[{\"code\":\"OUT_OF_RANGE\"}]", ",OUT_OF_RANGE,", 2000), 0,
        "%s", store_errmsg(st));
    struct dlq_entry e;
    cr_assert_eq(store_dlq_get(st, a, &e), 0);
    cr_expect_str_eq(e.status, "open");
    cr_expect_eq(e.attempts, 1);
    cr_expect_str_eq(e.errors_json, "[{\"code\":\"OUT_OF_RANGE\"}]");
    cr_expect_eq(e.received_ms, 1000);
    cr_expect_eq(e.updated_ms, 2000);
    dlq_entry_release(&e);
    struct dlq_filter f = {.error_code = "OUT_OF_RANGE", .limit = 10};
    expect_ids(&f, (int64_t[]){a}, 1, "new codes");
    f = (struct dlq_filter){.error_code = "INVALID_TYPE", .limit = 10};
    expect_ids(&f, NULL, 0, "old codes gone");

    /* NULL errors/codes keep the old ones */
    cr_assert_eq(store_dlq_set(st, b, "resolved", 2, NULL, NULL, 3000), 0);
    cr_assert_eq(store_dlq_get(st, b, &e), 0);
    cr_expect_str_eq(e.status, "resolved");
    cr_expect_eq(e.attempts, 2);
    cr_expect_str_eq(e.errors_json,
                     "[{\"field\":\"a\",\"code\":\",TOO_LONG,\",\"message\":\"m\"}]");
    cr_expect_eq(e.updated_ms, 3000);
    dlq_entry_release(&e);
    f = (struct dlq_filter){.error_code = "TOO_LONG", .status = "resolved", .limit = 10};
    expect_ids(&f, (int64_t[]){b}, 1, "codes kept");

    cr_assert_eq(store_dlq_set(st, d, "dropped", 0, NULL, NULL, 3000), 0);

    /* depth: open entries only, per dataset */
    cr_assert_eq(store_dlq_depth(st, &depth), 0);
    cr_expect_eq(json_integer_value(json_object_get(depth, "judgments")), 2);
    cr_expect_null(json_object_get(depth, "events"), "no open entries in events");
    json_decref(depth);
}

/* ---- idempotency ----------------------------------------------------------------------- */

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

Test(store, idempotency_put_get_purge, .fini = cleanup)
{
    open_fresh();
    struct idem_record r;
    cr_expect_eq(store_idem_get(st, "judgments", "k1", &r), 1, "nothing stored yet");

    cr_assert_eq(store_idem_put(st, "judgments", "k1", SHA_A, 200, "{\"accepted\":1}", 1000, 0), 0,
                 "%s", store_errmsg(st));
    cr_assert_eq(store_idem_put(st, "judgments", "k2", SHA_B, 207, "{\"accepted\":0}", 2000, 0), 0);
    cr_assert_eq(store_idem_put(st, "events", "k1", SHA_B, 422, "{}", 3000, 0), 0);
    /* a live record (made at or after live_after_ms) stays as it is: 1 */
    cr_expect_eq(store_idem_put(st, "judgments", "k1", SHA_B, 500, "{}", 4000, 1000), 1);

    memset(&r, 0, sizeof r);
    cr_assert_eq(store_idem_get(st, "judgments", "k1", &r), 0, "%s", store_errmsg(st));
    cr_expect_str_eq(r.sha256, SHA_A);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.response, "{\"accepted\":1}");
    cr_expect_eq(r.created_ms, 1000);
    free(r.response);
    /* same key, other dataset: its own record */
    cr_assert_eq(store_idem_get(st, "events", "k1", &r), 0);
    cr_expect_str_eq(r.sha256, SHA_B);
    cr_expect_eq(r.status, 422);
    free(r.response);
    cr_expect_eq(store_idem_get(st, "judgments", "K1", &r), 1, "keys are case-sensitive");
    /* an expired one (made before live_after_ms) is replaced */
    cr_assert_eq(store_idem_put(st, "events", "k1", SHA_A, 201, "{\"again\":1}", 3500, 3001), 0);
    cr_assert_eq(store_idem_get(st, "events", "k1", &r), 0);
    cr_expect(r.status == 201 && r.created_ms == 3500, "%d %lld", r.status,
              (long long)r.created_ms);
    free(r.response);

    /* purge: strictly older than the cutoff */
    cr_assert_eq(store_idem_purge(st, 2000), 0, "%s", store_errmsg(st));
    cr_expect_eq(store_idem_get(st, "judgments", "k1", &r), 1, "k1 (1000) purged");
    cr_assert_eq(store_idem_get(st, "judgments", "k2", &r), 0, "k2 (2000) kept");
    free(r.response);
    cr_assert_eq(store_idem_get(st, "events", "k1", &r), 0, "events k1 (3500) kept");
    free(r.response);
    cr_expect_eq(raw_int("SELECT count(*) FROM idempotency"), 2);

    cr_assert_eq(store_idem_purge(st, 1000000), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM idempotency"), 0);
}

/* ---- rollups ---------------------------------------------------------------------------- */

/* The purge takes the old minutes only: a window over them is empty, the hour rollups (the
 * KPIs) still count them. */
Test(store, rollup_purge_removes_old_minutes_only, .fini = cleanup)
{
    open_fresh();
    const int64_t t0 = 1700000000000LL; /* a minute's start */
    struct rollup_delta d = {.dataset = "a", .at_ms = t0, .received = 10, .accepted = 10};
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_rollup_add(st, &d), 0, "%s", store_errmsg(st));
    d.at_ms = t0 + 60000;
    d.received = d.accepted = 5;
    cr_assert_eq(store_rollup_add(st, &d), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_rollup_purge(st, t0 + 60000), 0, "%s", store_errmsg(st));
    struct rollup_sum *w;
    size_t n;
    cr_assert_eq(store_rollup_window(st, 0, &w, &n), 0, "%s", store_errmsg(st));
    cr_assert_eq(n, 1);
    cr_expect_eq(w[0].received, 5, "the first minute's 10 rows are still in the window");
    free(w);
    json_t *k;
    cr_assert_eq(store_stats_kpis(st, t0 + 120000, NULL, &k), 0, "%s", store_errmsg(st));
    cr_expect_eq(
        json_integer_value(json_object_get(json_object_get(k, "all_time"), "rows_received")), 15,
        "the hours lost rows too");
    json_decref(k);
}

/* ---- the alert outbox ------------------------------------------------------------------ */

static int64_t outbox_add(int64_t alert_id, const char *receiver, const char *event, int64_t ms)
{
    struct outbox_row r = {.alert_id = alert_id,
                           .receiver = (char *)receiver,
                           .event = (char *)event,
                           .body = "{}",
                           .created_ms = ms,
                           .next_ms = ms};
    cr_assert_eq(store_outbox_add(st, &r), 0, "%s", store_errmsg(st));
    return r.id;
}

/* The ids store_outbox_due() returns at now_ms, in order, into ids; their number. */
static size_t due_ids(int64_t now_ms, int64_t *ids)
{
    struct outbox_row *rows;
    size_t n;
    cr_assert_eq(store_outbox_due(st, now_ms, 10, &rows, &n), 0, "%s", store_errmsg(st));
    for (size_t i = 0; i < n; i++) {
        ids[i] = rows[i].id;
        outbox_release(&rows[i]);
    }
    free(rows);
    return n;
}

Test(store, outbox_delivers_in_order_and_counts_only_deliveries, .fini = cleanup)
{
    open_fresh();
    struct alert a = {.fingerprint = "r{}",
                      .rule = "r",
                      .severity = "warning",
                      .state = "firing",
                      .started_ms = 1000,
                      .updated_ms = 1000};
    cr_assert_eq(store_alert_put(st, &a), 0, "%s", store_errmsg(st));
    int64_t fire_h = outbox_add(a.id, "hook", "firing", 1000);
    int64_t fire_c = outbox_add(a.id, "chat", "firing", 1000);
    int64_t res_h = outbox_add(a.id, "hook", "resolved", 2000);
    int64_t ids[10];
    /* the resolution waits behind its firing for the same receiver */
    cr_assert_eq(due_ids(5000, ids), 2);
    cr_expect(ids[0] == fire_h && ids[1] == fire_c);
    /* a failed firing is not due before its next try, and keeps the resolution back */
    cr_assert_eq(store_outbox_retry(st, fire_h, 9000, "HTTP 500"), 0, "%s", store_errmsg(st));
    cr_assert_eq(due_ids(5000, ids), 1);
    cr_expect_eq(ids[0], fire_c);
    expect_text("SELECT attempts || ' ' || last_error FROM alert_outbox WHERE id = 1",
                "1 HTTP 500");
    int64_t pending, oldest;
    cr_assert_eq(store_outbox_stats(st, &pending, &oldest), 0, "%s", store_errmsg(st));
    cr_expect(pending == 3 && oldest == 1000, "%lld %lld", (long long)pending, (long long)oldest);
    cr_expect_eq(raw_int("SELECT notifications FROM alerts"), 0, "nothing delivered yet");
    cr_expect_eq(store_outbox_pending(st, a.id, "hook"), 1);
    /* delivered: the row goes, the alert counts it */
    cr_assert_eq(store_outbox_finish(st, fire_h, 9500), 0, "%s", store_errmsg(st));
    cr_assert_eq(due_ids(10000, ids), 2);
    cr_expect(ids[0] == fire_c && ids[1] == res_h);
    cr_expect_eq(raw_int("SELECT notifications FROM alerts"), 1);
    cr_expect_eq(raw_int("SELECT last_notified_ms FROM alerts"), 9500);
    /* dropped (receiver gone): the row goes, nothing counted */
    cr_assert_eq(store_outbox_finish(st, fire_c, 0), 0, "%s", store_errmsg(st));
    cr_expect_eq(raw_int("SELECT notifications FROM alerts"), 1);
    cr_expect_eq(store_outbox_pending(st, a.id, "chat"), 0);
    cr_assert_eq(store_outbox_finish(st, res_h, 11000), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_outbox_stats(st, &pending, &oldest), 0, "%s", store_errmsg(st));
    cr_expect(pending == 0 && oldest == 0);
    cr_expect_eq(raw_int("SELECT notifications FROM alerts"), 2);
}

static void raw_exec(const char *sql)
{
    sqlite3 *db = raw_open();
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg);
    sqlite3_close(db);
}

/* Every rollup table as one text (the samples aside), to compare before and after. */
static char *rollup_text(void)
{
    static const char *const q[] = {
        "SELECT group_concat(x, ';') FROM (SELECT dataset || ',' || minute || ',' || received"
        " || ',' || accepted || ',' || rejected || ',' || duplicate x FROM rollup_minute"
        " ORDER BY 1)",
        "SELECT group_concat(x, ';') FROM (SELECT dataset || ',' || hour || ',' || received"
        " || ',' || accepted || ',' || rejected || ',' || duplicate || ',' || batches || ','"
        " || batches_failed x FROM rollup_hour ORDER BY 1)",
        "SELECT group_concat(x, ';') FROM (SELECT dataset || ',' || day || ',' || received"
        " || ',' || batches x FROM rollup_day ORDER BY 1)",
        "SELECT group_concat(x, ';') FROM (SELECT dataset || ',' || hour || ',' || code || ','"
        " || occurrences || ',' || batches x FROM rollup_errors ORDER BY 1)"};
    char *out = strdup("");
    for (size_t i = 0; i < ARRAY_SIZE(q); i++) {
        char *t = raw_text(q[i]), *next;
        cr_assert(asprintf(&next, "%s|%s", out, t ? t : "") > 0);
        free(t);
        free(out);
        out = next;
    }
    return out;
}

/* A store from before the ledger: migrating starts the ledger from its rollups, so that a
 * rebuild keeps what they counted; a batch counted then is taken out again exactly. */
Test(store, rollup_ledger_started_from_older_rollups, .fini = cleanup)
{
    open_fresh();
    const int64_t t0 = 1700000000000LL; /* a minute's start */
    const struct rollup_code c[] = {{"OUT_OF_RANGE", 2, "m", 0, 0}};
    struct rollup_delta d = {.dataset = "a",
                             .at_ms = t0,
                             .received = 10,
                             .accepted = 8,
                             .rejected = 2,
                             .batches = 1,
                             .codes = c,
                             .ncodes = 1};
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_rollup_add(st, &d), 0, "%s", store_errmsg(st));
    d.at_ms = t0 + 3 * 3600000LL; /* a later hour, whose minutes are purged below */
    cr_assert_eq(store_rollup_add(st, &d), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));
    raw_exec("DELETE FROM rollup_minute WHERE minute > 28333333 + 60");
    char *live = rollup_text();
    /* back to a store from before the ledger (its migration, 11, and the later ones undone) */
    store_close(st);
    raw_exec("DROP TABLE rollup_ledger; DROP TABLE batch_pending; DROP TABLE dlq_staged;"
             " DROP TABLE job_runs; DROP TABLE job_state;"
             " DELETE FROM schema_migrations WHERE version >= 11");
    char err[256];
    st = store_open(uri, 0, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    cr_assert_eq(store_migrate(st), 0, "%s", store_errmsg(st));
    cr_expect_eq(raw_int("SELECT sum(received) FROM rollup_ledger"), 20);
    rollup_test_rebuild(st);
    char *rebuilt = rollup_text();
    cr_expect_str_eq(rebuilt, live);
    free(rebuilt);
    free(live);
}

/* The pushes of one group commit: one ledger row per dataset, minute and kind (rejected
 * rows or not), a batch's its own; a rebuild from those rows gives the live rollups again,
 * with each code's last time and sample and the dataset's last error. */
Test(store, rollup_ledger_sums_a_groups_pushes, .fini = cleanup)
{
    open_fresh();
    const int64_t t0 = 1700000000000LL; /* a minute's start */
    const struct rollup_code a1[] = {{"OUT_OF_RANGE", 1, "zz", 0, 0}};
    const struct rollup_code b2[] = {{"INVALID_TYPE", 2, "bb", 0, 0}};
    const struct rollup_code a2[] = {{"OUT_OF_RANGE", 1, "aa", 0, 0}};
    const struct rollup_delta push[] = {
        {.dataset = "a",
         .at_ms = t0 + 1000,
         .received = 3,
         .accepted = 2,
         .rejected = 1,
         .codes = a1,
         .ncodes = 1},
        {.dataset = "a",
         .at_ms = t0 + 2000,
         .received = 2,
         .rejected = 2,
         .codes = b2,
         .ncodes = 1},
        {.dataset = "a", .at_ms = t0 + 50000, .received = 5, .accepted = 5},
        {.dataset = "a",
         .at_ms = t0 + 4000,
         .received = 1,
         .rejected = 1,
         .codes = a2,
         .ncodes = 1},
        {.dataset = "a",
         .at_ms = t0 + 3000,
         .received = 4,
         .accepted = 4,
         .duplicate = 1,
         .batches = 1,
         .batch_id = "bat_1"},
        {.dataset = "a",
         .at_ms = t0 + 5000,
         .received = 9,
         .rejected = 9,
         .codes = b2,
         .ncodes = 1}, /* its job rolled back */
        {.dataset = "a", .at_ms = t0 + 30000, .received = 1, .accepted = 1},
        {.dataset = "b", .at_ms = t0 + 30000, .received = 1, .accepted = 1},
        {.dataset = "a", .at_ms = t0 + 61000, .received = 1, .accepted = 1},
    };
    cr_assert_eq(store_begin(st), 0, "%s", store_errmsg(st));
    for (size_t i = 0; i < ARRAY_SIZE(push); i++) {
        cr_assert_eq(store_savepoint(st), 0, "%s", store_errmsg(st));
        cr_assert_eq(store_rollup_add(st, &push[i]), 0, "%s", store_errmsg(st));
        if (i == 5)
            cr_assert_eq(store_savepoint_rollback(st), 0, "%s", store_errmsg(st));
        else
            cr_assert_eq(store_savepoint_release(st), 0, "%s", store_errmsg(st));
    }
    cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));
    /* a: minute 0 with and without rejected rows, the batch, minute 1; b: minute 0 */
    cr_expect_eq(raw_int("SELECT count(*) FROM rollup_ledger"), 5);
    cr_expect_eq(raw_int("SELECT sum(received) FROM rollup_ledger"), 18);
    static const char *const more =
        "SELECT (SELECT group_concat(x, ';') FROM (SELECT dataset || ',' || code || ','"
        " || coalesce(sample, '') || ',' || last_seen_ms x FROM rollup_errors ORDER BY 1))"
        " || '|' || (SELECT group_concat(x, ';') FROM (SELECT dataset || ',' ||"
        " last_received_ms || ',' || coalesce(last_error_ms, 0) x FROM dataset_activity"
        " ORDER BY 1))";
    char *live = rollup_text(), *live_more = raw_text(more);
    cr_expect_str_eq(live_more, "a,INVALID_TYPE,bb,1700000002000;a,OUT_OF_RANGE,zz,1700000004000"
                                "|a,1700000061000,1700000004000;b,1700000030000,0");
    rollup_test_rebuild(st);
    char *rebuilt = rollup_text(), *rebuilt_more = raw_text(more);
    cr_expect_str_eq(rebuilt, live);
    cr_expect_str_eq(rebuilt_more, live_more);
    free(rebuilt);
    free(rebuilt_more);
    free(live);
    free(live_more);
}

/* ---- transactions ---------------------------------------------------------------------- */

Test(store, rollback_leaves_nothing, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    cr_assert_eq(store_begin(st), 0, "%s", store_errmsg(st));
    put(ds, &META1, "{\"case_number\":\"T1\"}", NULL);
    put(ds, &META1, "{\"case_number\":\"T2\"}", NULL);
    dlq_add("judgments", ",INVALID_TYPE,", 1, 1000);
    cr_assert_eq(store_idem_put(st, "judgments", "k", SHA_A, 200, "{}", 1000, 0), 0);
    cr_expect_eq(store_row_count(st, "judgments"), 2, "visible inside the transaction");
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 0, "not visible outside");
    cr_assert_eq(store_rollback(st), 0, "%s", store_errmsg(st));

    cr_expect_eq(store_row_count(st, "judgments"), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM idempotency"), 0);

    /* the same key can be inserted after the rollback */
    cr_expect_eq(put(ds, &META1, "{\"case_number\":\"T1\"}", NULL), ROW_INSERTED);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 1);
    free_cfg(cfg);
}

Test(store, commit_makes_durable, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    cr_assert_eq(store_begin(st), 0);
    put(ds, &META1, "{\"case_number\":\"T1\"}", NULL);
    cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 1);
    free_cfg(cfg);
}

Test(store, savepoint_rollback_undoes_only_the_savepoint, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    cr_assert_eq(store_begin(st), 0, "%s", store_errmsg(st));
    put(ds, &META1, "{\"case_number\":\"A\"}", NULL);

    cr_assert_eq(store_savepoint(st), 0, "%s", store_errmsg(st));
    put(ds, &META1, "{\"case_number\":\"B\"}", NULL);
    dlq_add("judgments", ",X,", 2, 1000);
    cr_assert_eq(store_savepoint_rollback(st), 0, "%s", store_errmsg(st));

    cr_assert_eq(store_savepoint(st), 0, "%s", store_errmsg(st));
    put(ds, &META1, "{\"case_number\":\"C\"}", NULL);
    cr_assert_eq(store_savepoint_release(st), 0, "%s", store_errmsg(st));

    /* B's key is free again inside the same transaction */
    cr_assert_eq(store_savepoint(st), 0);
    cr_expect_eq(put(ds, &META2, "{\"case_number\":\"B\",\"notes\":\"again\"}", NULL),
                 ROW_INSERTED);
    cr_assert_eq(store_savepoint_release(st), 0);

    put(ds, &META1, "{\"case_number\":\"D\"}", NULL);
    cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));

    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 4);
    expect_text("SELECT group_concat(case_number, ',') FROM"
                " (SELECT case_number FROM ds_judgments ORDER BY case_number)",
                "A,B,C,D");
    expect_text("SELECT notes FROM ds_judgments WHERE case_number = 'B'", "again");
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 0);
    free_cfg(cfg);
}

/* ---- a batch's rows, found by rowid range -------------------------------------------- */

static void add_batch(const char *id, const char *dataset)
{
    struct batch b = {.id = (char *)id,
                      .dataset = (char *)dataset,
                      .path = "/nonexistent",
                      .sha256 = "0",
                      .status = "uploaded",
                      .created_ms = 1000};
    cr_assert_eq(store_batch_add(st, &b), 0, "%s", store_errmsg(st));
}

/* A batch counted and sent back in one group commit, with a reset job that is undone in
 * between: its counts leave the rollups once, its ledger row is marked undone once, and a
 * rebuild agrees. */
Test(store, batch_counted_and_reset_in_one_group, .fini = cleanup)
{
    open_fresh();
    add_batch("bat_R", "judgments");
    const int64_t t0 = 1700000000000LL;
    const struct rollup_delta d = {.dataset = "judgments",
                                   .at_ms = t0,
                                   .received = 3,
                                   .accepted = 3,
                                   .batches = 1,
                                   .batch_id = "bat_R"};
    struct batch b = {.id = "bat_R", .total = 3, .inserted = 3};
    cr_assert_eq(store_begin(st), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_savepoint(st), 0, "%s", store_errmsg(st)); /* the batch finishes */
    cr_assert_eq(store_batch_set_counts(st, &b), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_rollup_add(st, &d), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_batch_set_status(st, "bat_R", "completed", NULL, t0), 0);
    cr_assert_eq(store_savepoint_release(st), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_savepoint(st), 0, "%s", store_errmsg(st)); /* a reset, undone */
    cr_assert_eq(store_batch_set_status(st, "bat_R", "uploaded", "reset", t0 + 1), 0);
    cr_assert_eq(store_savepoint_rollback(st), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_savepoint(st), 0, "%s", store_errmsg(st)); /* a reset, kept */
    cr_assert_eq(store_batch_set_status(st, "bat_R", "uploaded", "reset", t0 + 2), 0);
    cr_assert_eq(store_savepoint_release(st), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));

    cr_expect_eq(raw_int("SELECT count(*) FROM rollup_ledger"), 1);
    cr_expect_eq(raw_int("SELECT undone FROM rollup_ledger"), 1);
    cr_expect_eq(raw_int("SELECT received FROM rollup_hour"), 0);
    cr_expect_eq(raw_int("SELECT batches FROM rollup_day"), 0);
    cr_expect_eq(raw_int("SELECT row_count_total FROM batches WHERE id = 'bat_R'"), 0);
    char *live = rollup_text();
    rollup_test_rebuild(st);
    char *rebuilt = rollup_text();
    cr_expect_str_eq(rebuilt, live);
    free(rebuilt);
    free(live);
}

Test(store, heartbeat_renews_only_the_holders_lease, .fini = cleanup)
{
    open_fresh();
    add_batch("bat_H", "judgments");
    struct batch b = {0};
    cr_assert_eq(store_batch_claim(st, "n1/w1", 1000, 60000, &b), 0, "%s", store_errmsg(st));
    batch_release(&b);
    cr_expect_eq(store_batch_heartbeat(st, "bat_H", "n2/w1", 5000, 60000), 1, "not n2's batch");
    cr_expect_eq(raw_int("SELECT lease_until_ms FROM batches WHERE id = 'bat_H'"), 61000);
    cr_expect_eq(store_batch_heartbeat(st, "bat_H", "n1/w1", 5000, 30000), 0, "%s",
                 store_errmsg(st));
    cr_expect_eq(raw_int("SELECT lease_until_ms FROM batches WHERE id = 'bat_H'"), 35000);
}

Test(store, batch_rows_by_range_across_savepoints, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    const struct row_meta A = {"bat_A", "upload", "2026-01-02T03:04:05.006Z", "bat_A"};
    const struct row_meta B = {"bat_B", "upload", "2026-01-02T03:04:05.006Z", "bat_B"};
    add_batch("bat_A", "judgments");
    add_batch("bat_B", "judgments");
    /* a group: A's rows, an event, then a job for B that is rolled back, then more A */
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_savepoint(st), 0);
    put(ds, &A, "{\"case_number\":\"A1\"}", NULL);
    cr_assert_eq(store_savepoint_release(st), 0);
    cr_assert_eq(store_savepoint(st), 0);
    put(ds, &META1, "{\"case_number\":\"E1\"}", NULL);
    cr_assert_eq(store_savepoint_release(st), 0);
    cr_assert_eq(store_savepoint(st), 0);
    put(ds, &B, "{\"case_number\":\"B1\"}", NULL);
    cr_assert_eq(store_savepoint_rollback(st), 0);
    cr_assert_eq(store_savepoint(st), 0);
    put(ds, &A, "{\"case_number\":\"A2\"}", NULL);
    put(ds, &B, "{\"case_number\":\"B2\"}", NULL);
    cr_assert_eq(store_savepoint_release(st), 0);
    cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));
    /* A's range spans the event row; the _batch_id check keeps it out */
    cr_expect_eq(raw_int("SELECT rows_first FROM batches WHERE id = 'bat_A'"), 1);
    cr_expect_eq(raw_int("SELECT rows_last FROM batches WHERE id = 'bat_A'"), 3);
    int64_t n = -1;
    cr_assert_eq(store_batch_clear(st, "judgments", "bat_A", 1, &n), 0);
    cr_expect_eq(n, 2, "dry run counted %lld rows of A", (long long)n);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 4, "a count removes nothing");
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_batch_clear(st, "judgments", "bat_A", 0, &n), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_commit(st), 0);
    cr_expect_eq(n, 2);
    expect_text("SELECT group_concat(case_number, ',') FROM"
                " (SELECT case_number FROM ds_judgments ORDER BY case_number)",
                "B2,E1");
    expect_text("SELECT rows_first FROM batches WHERE id = 'bat_A'", NULL);
    /* B's row: only the one that was not rolled back */
    cr_assert_eq(store_batch_clear(st, "judgments", "bat_B", 1, &n), 0);
    cr_expect_eq(n, 1);
    /* a batch stored before ranges were kept is found by a scan */
    sqlite3 *db = raw_open();
    cr_assert_eq(sqlite3_exec(db,
                              "UPDATE batches SET rows_tracked = 0, rows_first = NULL"
                              " WHERE id = 'bat_B'",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(store_batch_clear(st, "judgments", "bat_B", 1, &n), 0);
    cr_expect_eq(n, 1);
    free_cfg(cfg);
}

/* A batch stored in slices (store.h batch_hide ... batch_publish): from its hide, readers of
 * ds_<name> (the view) see none of its rows, however many transactions stored them, nor its
 * staged DLQ entries; its publish shows all of them in one commit; the rows of others are
 * seen all along. */
Test(store, a_hidden_batch_is_seen_at_its_publish, .fini = cleanup)
{
    open_fresh();
    cr_assert(store_sliced_passes(st));
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "free");
    const struct row_meta A = {"bat_A", "upload", "2026-01-02T03:04:05.006Z", "bat_A"};
    add_batch("bat_A", "free");
    struct dlq_new d = {.dataset = "free",
                        .ingest_id = "bat_A",
                        .source = "upload",
                        .row = 2,
                        .payload = "x",
                        .payload_len = 1,
                        .errors_json = "[]",
                        .codes = ",TYPE_MISMATCH,",
                        .batch_id = "bat_A",
                        .received_ms = 1,
                        .staged = 1};
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_batch_hide(st, "bat_A"), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_commit(st), 0);
    for (int slice = 0; slice < 3; slice++) { /* three transactions, an event among them */
        cr_assert_eq(store_begin(st), 0);
        put(ds, &A, "{\"v\":\"a\"}", NULL);
        put(ds, &META1, "{\"v\":\"event\"}", NULL);
        cr_assert_eq(store_dlq_add(st, &d, NULL), 0, "%s", store_errmsg(st));
        cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));
        cr_expect_eq(raw_int("SELECT count(*) FROM ds_free"), slice + 1, "only the events");
        cr_expect_eq(raw_int("SELECT count(*) FROM dsr_free"), 2 * (slice + 1));
        cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 0);
    }
    cr_expect_eq(store_row_count(st, "free"), 3, "the store counts what readers see");
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_batch_publish(st, "bat_A", 1), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_commit(st), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_free WHERE _batch_id = 'bat_A'"), 3);
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq WHERE batch_id = 'bat_A'"), 3);
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq_staged"), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM batch_pending"), 0);

    /* hidden again (processed again): gone at once; dropped a few at a time; a publish
     * without the DLQ drops the staged entries */
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_batch_hide(st, "bat_A"), 0);
    cr_assert_eq(store_dlq_add(st, &d, NULL), 0);
    cr_assert_eq(store_commit(st), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_free"), 3, "the events only");
    int64_t n = -1, total = 0;
    do {
        cr_assert_eq(store_begin(st), 0);
        cr_assert_eq(store_batch_rows_drop(st, "free", "bat_A", 2, &n), 0, "%s", store_errmsg(st));
        cr_assert_eq(store_commit(st), 0);
        cr_assert_leq(n, 2);
        total += n;
    } while (n == 2);
    cr_expect_eq(total, 3);
    cr_expect_eq(raw_int("SELECT count(*) FROM dsr_free"), 3, "the events stay");
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_batch_publish(st, "bat_A", 0), 0);
    cr_assert_eq(store_commit(st), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq_staged"), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq WHERE batch_id = 'bat_A'"), 3, "as before");
    free_cfg(cfg);
}

/* A store from before the view: its ds_<name> table becomes dsr_<name> with its rows, under
 * the view, when the dataset is synced; a column added later shows through the view. */
Test(store, a_dataset_table_from_before_the_view_is_kept, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    put(ds_of(cfg, "free"), &META1, "{\"v\":\"kept\"}", NULL);
    free_cfg(cfg);
    raw_exec("DROP VIEW ds_free; ALTER TABLE dsr_free RENAME TO ds_free");
    expect_text("SELECT type FROM sqlite_master WHERE name = 'ds_free'", "table");
    cfg = base_synced();
    expect_text("SELECT type FROM sqlite_master WHERE name = 'ds_free'", "view");
    expect_text("SELECT v FROM ds_free", "kept");
    cr_expect_eq(raw_int("SELECT count(*) FROM dsr_free"), 1);
    free_cfg(cfg);
    cfg = load_cfg(
        "datasets:\n"
        "  - name: free\n"
        "    schema: {type: object, properties: {v: {type: string}, w: {type: integer}}}\n");
    char why[256];
    cr_assert_eq(store_dataset_sync(st, ds_of(cfg, "free"), why, sizeof why), 0, "%s", why);
    put(ds_of(cfg, "free"), &META2, "{\"v\":\"new\",\"w\":7}", NULL);
    cr_expect_eq(raw_int("SELECT w FROM ds_free WHERE v = 'new'"), 7);
    /* SQL that changed rows by hand still does, through the view (its triggers name the
     * added column too) */
    raw_exec("UPDATE ds_free SET w = 8 WHERE v = 'new'");
    cr_expect_eq(raw_int("SELECT w FROM dsr_free WHERE v = 'new'"), 8);
    raw_exec("DELETE FROM ds_free WHERE v = 'kept'");
    raw_exec("INSERT INTO ds_free(_ingest_id, _received_at, v, w) VALUES ('i', 't', 'by hand', 9)");
    expect_text("SELECT group_concat(v || w, ',') FROM (SELECT v, w FROM dsr_free ORDER BY _id)",
                "new8,by hand9");
    free_cfg(cfg);
}

/* ---- batch files: kept under data_dir/batches ------------------------------------------ */

/* A spool of n bytes in <dir>/batches; its bytes (caller frees). */
static char *make_spool(const char *id, size_t n, char *spool, size_t cap)
{
    char bdir[128];
    snprintf(bdir, sizeof bdir, "%s/batches", dir);
    mkdir(bdir, 0755);
    snprintf(spool, cap, "%s/%s.csv.part", bdir, id);
    return spool_write(spool, n);
}

static void remove_batches_dir(void)
{
    char bdir[128];
    snprintf(bdir, sizeof bdir, "%s/batches", dir);
    DIR *d = opendir(bdir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", bdir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(bdir);
}

static void cleanup_files(void)
{
    remove_batches_dir();
    cleanup();
}

Test(store, batch_file_keep_read_drop, .fini = cleanup_files)
{
    open_fresh();
    const size_t sizes[] = {0, 1, 3 * 1024 * 1024 + 123};
    for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
        char id[32], spool[256], want[256], *path = NULL;
        snprintf(id, sizeof id, "bat_%zu", k);
        char *data = make_spool(id, sizes[k], spool, sizeof spool);
        cr_assert_eq(store_file_keep(st, id, spool, dir, &path), 0, "%s", store_errmsg(st));
        snprintf(want, sizeof want, "%s/batches/%s.csv", dir, id);
        cr_assert_str_eq(path, want);
        cr_expect_neq(access(spool, F_OK), 0, "the spool is still there");

        struct batch b = {.id = id, .path = path};
        FILE *f = store_file_open(st, &b, NULL);
        cr_assert_not_null(f, "%s", store_errmsg(st));
        expect_file(f, data, sizes[k], id);

        cr_assert_eq(store_file_drop(st, id, path, NULL), 0, "%s", store_errmsg(st));
        cr_expect_neq(access(path, F_OK), 0, "the file is still there");
        cr_expect_eq(store_file_drop(st, id, path, NULL), 0, "a file already gone is no error");
        cr_expect_null(store_file_open(st, &b, NULL));
        cr_expect(strstr(store_errmsg(st), "cannot be read") != NULL, "%s", store_errmsg(st));
        free(path);
        free(data);
    }
}

Test(store, batch_file_keep_fails_without_spool, .fini = cleanup_files)
{
    open_fresh();
    char *path = (char *)"unchanged";
    char spool[256];
    snprintf(spool, sizeof spool, "%s/batches/none.csv.part", dir);
    cr_expect_eq(store_file_keep(st, "bat_x", spool, dir, &path), -1);
    cr_expect_null(path);
    cr_expect(strstr(store_errmsg(st), "bat_x.csv") != NULL, "%s", store_errmsg(st));
}

Test(store, batch_file_sweep_removes_only_orphans, .fini = cleanup_files)
{
    open_fresh();
    char spool[256], *kept = NULL, *orphan = NULL;
    free(make_spool("bat_kept", 10, spool, sizeof spool));
    cr_assert_eq(store_file_keep(st, "bat_kept", spool, dir, &kept), 0, "%s", store_errmsg(st));
    free(make_spool("bat_orphan", 10, spool, sizeof spool));
    cr_assert_eq(store_file_keep(st, "bat_orphan", spool, dir, &orphan), 0, "%s", store_errmsg(st));
    free(make_spool("bat_spool", 10, spool, sizeof spool)); /* an upload's, not the store's */
    struct batch b = {.id = "bat_kept",
                      .dataset = "d",
                      .path = kept,
                      .sha256 = "0",
                      .status = "uploaded",
                      .created_ms = 1000};
    cr_assert_eq(store_batch_add(st, &b), 0, "%s", store_errmsg(st));

    int64_t now = clock_wall_ms();
    cr_expect_eq(store_file_sweep(st, now - 3600 * 1000, dir), 0, "a fresh orphan is kept");
    cr_expect_eq(access(orphan, F_OK), 0);
    cr_expect_eq(store_file_sweep(st, now + 60 * 1000, dir), 1, "%s", store_errmsg(st));
    cr_expect_neq(access(orphan, F_OK), 0, "the orphan is still there");
    cr_expect_eq(access(kept, F_OK), 0, "the batch's file was removed");
    cr_expect_eq(access(spool, F_OK), 0, "the spool was removed");
    free(kept);
    free(orphan);
}

/* The other half of the hourly sweep (service_purge): upload spools a crash interrupted. */
Test(store, batch_spool_sweep_removes_only_old_spools, .fini = cleanup_files)
{
    open_fresh();
    char old_spool[256], fresh_spool[256], path[256];
    free(make_spool("bat_old", 10, old_spool, sizeof old_spool));
    free(make_spool("bat_fresh", 10, fresh_spool, sizeof fresh_spool));
    free(make_spool("bat_kept", 10, path, sizeof path));
    char *kept = NULL;
    cr_assert_eq(store_file_keep(st, "bat_kept", path, dir, &kept), 0, "%s", store_errmsg(st));
    int64_t now = clock_wall_ms();
    struct utimbuf two_hours_ago = {.actime = now / 1000 - 7200, .modtime = now / 1000 - 7200};
    cr_assert_eq(utime(old_spool, &two_hours_ago), 0);
    cr_assert_eq(utime(kept, &two_hours_ago), 0);
    cr_expect_eq(batch_spool_sweep(dir, now - 3600 * 1000), 1);
    cr_expect_neq(access(old_spool, F_OK), 0, "the old spool is still there");
    cr_expect_eq(access(fresh_spool, F_OK), 0, "a live upload's spool was removed");
    cr_expect_eq(access(kept, F_OK), 0, "a kept file is not a spool");
    free(kept);
}

Test(store, dlq_list_desc_time_range_and_count, .fini = cleanup)
{
    open_fresh();
    dlq_desc_range_count(st);
}
