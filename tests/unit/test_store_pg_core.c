/*
 * test_store_pg_core.c - the PostgreSQL store's core operations (pg.c):
 * dataset tables and their evolution, rows (duplicates, upserts, typed
 * columns, _extra), the DLQ and its filters, idempotency records, transactions
 * and savepoints; the cases of test_store.c, against a server.
 *
 * Every test is skipped unless SLUICE_TEST_PG holds a conninfo or URL (empty:
 * libpq's PG* variables), e.g.
 *   pg_virtualenv sh -c 'SLUICE_TEST_PG="" build/tests/test_store_pg_core'
 * Each test runs in a schema of its own (tests run in parallel), dropped at
 * the end; what the store wrote is read back over a second connection.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "store/pg/pg_internal.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixture: a fresh schema per test ------------------------------------------------ */

static struct store *st;
static PGconn *raw;
static char schema[64];

static void run_on(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    cr_assert(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(r));
    PQclear(r);
}

static void open_fresh(void)
{
    const char *uri = getenv("SLUICE_TEST_PG");
    if (!uri)
        cr_skip_test("SLUICE_TEST_PG is not set");
    char err[512] = "", sql[256];
    st = pg_open(uri, 0, err, sizeof err);
    cr_assert_not_null(st, "pg_open: %s", err);
    snprintf(schema, sizeof schema, "sluice_t_%ld", (long)getpid());
    snprintf(sql, sizeof sql,
             "SET client_min_messages = warning; DROP SCHEMA IF EXISTS %s CASCADE;"
             " CREATE SCHEMA %s; SET search_path TO %s",
             schema, schema, schema);
    run_on(PG(st)->conn, sql);
    /* pg_migrate sends each migration through PQexecParams, which refuses a string of
     * several statements ("cannot insert multiple commands into a prepared statement"):
     * until pg_conn.c runs them with PQexec, the schema is applied here and
     * pg_migrate finds it done (and makes the key pepper). */
    run_on(PG(st)->conn, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                         " applied_ms BIGINT NOT NULL)");
    for (int v = 0; v < pg_nmigrations; v++) {
        run_on(PG(st)->conn, pg_migrations[v]);
        snprintf(sql, sizeof sql, "INSERT INTO schema_migrations VALUES (%d, 0)", v + 1);
        run_on(PG(st)->conn, sql);
    }
    cr_assert_eq(pg_migrate(st), 0, "migrate: %s", pg_errmsg(st));
    raw = PQconnectdb(uri);
    cr_assert_eq(PQstatus(raw), CONNECTION_OK, "raw connection: %s", PQerrorMessage(raw));
    snprintf(sql, sizeof sql, "SET search_path TO %s", schema);
    run_on(raw, sql);
}

static void cleanup(void)
{
    if (raw && schema[0]) {
        char sql[128];
        snprintf(sql, sizeof sql, "SET client_min_messages = warning; DROP SCHEMA %s CASCADE",
                 schema);
        PQclear(PQexec(raw, sql));
    }
    PQfinish(raw);
    raw = NULL;
    if (st)
        pg_close(st);
    st = NULL;
}

/* ---- reading over the second connection ---------------------------------------------- */

/* The first column of the first row as text (caller frees); NULL for SQL NULL or no row. */
static char *raw_text(const char *sql)
{
    PGresult *r = PQexec(raw, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    char *v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return v;
}

/* The first column of the first row as an integer; -999 when no row or NULL. */
static int64_t raw_int(const char *sql)
{
    char *t = raw_text(sql);
    int64_t v = t ? strtoll(t, NULL, 10) : -999;
    free(t);
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

/* The type of column col of table, or NULL if there is no such column. */
static char *column_type(const char *table, const char *col)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT data_type FROM information_schema.columns WHERE table_schema ="
             " current_schema() AND table_name = '%s' AND column_name = '%s'",
             table, col);
    return raw_text(sql);
}

static int64_t column_count(const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM information_schema.columns WHERE table_schema ="
             " current_schema() AND table_name = '%s'",
             table);
    return raw_int(sql);
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
    "    schema: {type: object, properties: {v: {type: string}}}\n"                                \
    "  - name: plain\n"                                                                            \
    "    schema: {type: object, properties: {s: {type: string}, n: {type: number},"                \
    " i: {type: integer}, b: {type: boolean}}}\n"

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
    char path[] = "/tmp/sluice-store-pg-cfg-XXXXXX.yaml";
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
    cr_assert_eq(pg_dataset_sync(st, ds, why, sizeof why), 0, "sync %s: %s", ds->name, why);
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
    cr_assert_eq(rc, 0, "row_put %s: %s", row, pg_errmsg(st));
    json_decref(r);
    json_decref(x);
    return res;
}

/* ---- datasets ------------------------------------------------------------------------ */

Test(store_pg, dataset_sync_creates_typed_table, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    static const struct {
        const char *col, *type;
    } cols[] = {
        {"case_number", "text"},  {"amount", "double precision"},
        {"count", "bigint"},      {"flag", "bigint"},
        {"notes", "text"},        {"_id", "bigint"},
        {"_ingest_id", "text"},   {"_source", "text"},
        {"_received_at", "text"}, {"_extra", "text"},
        {"_batch_id", "text"},
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
    cr_expect_eq(raw_int("SELECT count(*) FROM datasets"), 5);
    cr_expect_eq(pg_row_count(st, "judgments"), 0);

    /* the key is unique; every dataset indexes _batch_id */
    expect_text("SELECT indexdef LIKE 'CREATE UNIQUE INDEX%(case_number)' FROM pg_indexes"
                " WHERE schemaname = current_schema() AND indexname = 'ds_judgments_key'",
                "t");
    cr_expect_eq(raw_int("SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
                         " AND indexname LIKE 'ds\\_%\\_batch' AND indexdef LIKE"
                         " '%(_batch_id) WHERE (_batch_id IS NOT NULL)'"),
                 5);
    cr_expect_eq(raw_int("SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
                         " AND tablename = 'ds_free'"),
                 2, "free has no key index (its primary key and _batch_id only)");

    /* syncing again is a no-op */
    sync_ok(ds_of(cfg, "judgments"));
    cr_expect_eq(column_count("ds_judgments"), 11);
    char why[256];
    cr_expect_eq(pg_dataset_check(st, ds_of(cfg, "judgments"), why, sizeof why), 0, "%s", why);
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

Test(store_pg, dataset_check_refuses_incompatible_changes, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *base = base_synced();
    for (size_t i = 0; i < ARRAY_SIZE(refused_changes); i++) {
        struct sluice_config *next = load_cfg(refused_changes[i].yaml);
        const struct dataset_config *ds = ds_of(next, "judgments");
        char why[512] = "";
        cr_expect_eq(pg_dataset_check(st, ds, why, sizeof why), -1, "%s: accepted",
                     refused_changes[i].what);
        cr_expect(strstr(why, refused_changes[i].reason_has) != NULL,
                  "%s: reason '%s' does not name '%s'", refused_changes[i].what, why,
                  refused_changes[i].reason_has);
        /* sync refuses with the same reason, and leaves the table and the stored schema */
        char why2[512] = "";
        cr_expect_eq(pg_dataset_sync(st, ds, why2, sizeof why2), -1, "%s: sync accepted",
                     refused_changes[i].what);
        cr_expect_str_eq(why2, why);
        cr_expect_eq(PQtransactionStatus(PG(st)->conn), PQTRANS_IDLE, "no transaction left");
        free_cfg(next);
    }
    char *t = column_type("ds_judgments", "amount");
    cr_expect_str_eq(t ? t : "(none)", "double precision");
    free(t);
    cr_expect_eq(column_count("ds_judgments"), 11);
    expect_text("SELECT key FROM datasets WHERE name = 'judgments'", "case_number");
    char why[256];
    cr_expect_eq(pg_dataset_check(st, ds_of(base, "judgments"), why, sizeof why), 0, "%s", why);
    free_cfg(base);
}

Test(store_pg, added_optional_field_adds_column, .fini = cleanup)
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
    cr_expect_eq(pg_dataset_check(st, ds, why, sizeof why), 0, "%s", why);
    sync_ok(ds);
    char *t = column_type("ds_judgments", "court");
    cr_expect_str_eq(t ? t : "(none)", "text");
    free(t);
    t = column_type("ds_judgments", "seq");
    cr_expect_str_eq(t ? t : "(none)", "bigint");
    free(t);

    cr_expect_eq(pg_dataset_check(st, ds, why, sizeof why), 0, "%s", why);
    char *stored = raw_text("SELECT schema FROM datasets WHERE name = 'judgments'");
    cr_expect(stored && strstr(stored, "court"), "stored schema: %s", stored);
    free(stored);

    cr_expect_eq(put(ds, &META2, "{\"case_number\":\"C2\",\"court\":\"high\",\"seq\":4}", NULL),
                 ROW_INSERTED);
    expect_text("SELECT court FROM ds_judgments WHERE case_number = 'C2'", "high");
    cr_expect_eq(raw_int("SELECT seq FROM ds_judgments WHERE case_number = 'C2'"), 4);
    expect_text("SELECT court FROM ds_judgments WHERE case_number = 'C1'", NULL);
    cr_expect_eq(pg_row_count(st, "judgments"), 2);
    free_cfg(next);
    free_cfg(base);
}

Test(store_pg, dataset_sync_inside_a_transaction, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = load_cfg(BASE_YAML);
    cr_assert_eq(pg_begin(st), 0, "%s", pg_errmsg(st));
    sync_ok(ds_of(cfg, "judgments"));
    cr_expect_eq(PQtransactionStatus(PG(st)->conn), PQTRANS_INTRANS, "still the caller's");
    /* a refused change inside it leaves the transaction usable */
    struct sluice_config *next = load_cfg(refused_changes[0].yaml);
    char why[512] = "";
    cr_expect_eq(pg_dataset_sync(st, ds_of(next, "judgments"), why, sizeof why), -1);
    cr_expect_eq(put(ds_of(cfg, "judgments"), &META1, "{\"case_number\":\"A\"}", NULL),
                 ROW_INSERTED);
    cr_assert_eq(pg_rollback(st), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM datasets"), 0, "the sync was rolled back too");
    cr_expect_null(column_type("ds_judgments", "_id"));
    free_cfg(next);
    free_cfg(cfg);
}

Test(store_pg, dataset_name_too_long_for_postgres, .fini = cleanup)
{
    open_fresh();
    char yaml[512], name[64];
    memset(name, 'n', 60);
    name[60] = 0;
    snprintf(yaml, sizeof yaml,
             "datasets:\n  - name: %s\n    schema: {type: object, properties: {v: {type: string}}}"
             "\n",
             name);
    struct sluice_config *cfg = load_cfg(yaml);
    char why[512] = "";
    cr_expect_eq(pg_dataset_sync(st, &cfg->datasets[0], why, sizeof why), -1);
    cr_expect(strstr(why, "too long"), "%s", why);
    free_cfg(cfg);
}

/* ---- rows ---------------------------------------------------------------------------- */

Test(store_pg, reject_duplicate_key, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    cr_expect_eq(put(ds, &META1, "{\"case_number\":\"C1\",\"amount\":1.5}", NULL), ROW_INSERTED);
    cr_expect_eq(put(ds, &META1, "{\"case_number\":\"C2\",\"amount\":2}", NULL), ROW_INSERTED);
    cr_expect_eq(put(ds, &META2, "{\"case_number\":\"C1\",\"amount\":99}", NULL), ROW_DUPLICATE);
    cr_expect_eq(pg_row_count(st, "judgments"), 2);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments WHERE case_number = 'C1'"), 1);
    expect_text("SELECT amount FROM ds_judgments WHERE case_number = 'C1'", "1.5");
    expect_text("SELECT _ingest_id FROM ds_judgments WHERE case_number = 'C1'", "ing_1");
    free_cfg(cfg);
}

Test(store_pg, upsert_replaces_row, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "upserts");
    cr_expect_eq(put(ds, &META1, "{\"id\":7,\"v\":\"first\",\"n\":1.25}", "{\"x\":1}"),
                 ROW_INSERTED);
    cr_expect_eq(put(ds, &META1, "{\"id\":8,\"v\":\"other\"}", NULL), ROW_INSERTED);
    enum row_result r = put(ds, &META2, "{\"id\":7,\"v\":\"second\"}", "{\"y\":2}");
    cr_expect_eq(r, ROW_INSERTED, "upsert of an existing key gave %d (SQLite gives inserted)", r);
    cr_expect_eq(pg_row_count(st, "upserts"), 2);
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

Test(store_pg, skip_keeps_first, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "skips");
    cr_expect_eq(put(ds, &META1, "{\"id\":\"a\",\"v\":\"first\"}", NULL), ROW_INSERTED);
    cr_expect_eq(put(ds, &META2, "{\"id\":\"a\",\"v\":\"second\"}", NULL), ROW_DUPLICATE);
    cr_expect_eq(pg_row_count(st, "skips"), 1);
    expect_text("SELECT v FROM ds_skips WHERE id = 'a'", "first");
    free_cfg(cfg);
}

#define COMPOSITE_YAML(mode, key)                                                                  \
    "datasets:\n"                                                                                  \
    "  - name: cases\n"                                                                            \
    "    key: " key "\n"                                                                           \
    "    on_duplicate: " mode "\n"                                                                 \
    "    schema:\n"                                                                                \
    "      required: [case_number, source]\n"                                                      \
    "      properties: {case_number: {type: string}, source: {type: integer}, v: {type: "          \
    "string}}\n"

/* A key of several fields: one unique index in the key's order; a duplicate has every part
 * equal; each mode does what it says; the key (and its order) cannot change. */
Test(store_pg, composite_key_in_every_mode, .fini = cleanup)
{
    static const char *const modes[] = {"reject", "skip", "upsert"};
    open_fresh();
    for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
        char yaml[1024], why[256];
        snprintf(yaml, sizeof yaml, COMPOSITE_YAML("%s", "[source, case_number]"), modes[i]);
        struct sluice_config *cfg = load_cfg(yaml);
        const struct dataset_config *ds = ds_of(cfg, "cases");
        if (i > 0) /* the table of the previous mode: start again */
            run_on(raw, "DROP TABLE ds_cases; DELETE FROM datasets");
        sync_ok(ds);
        expect_text("SELECT indexdef LIKE 'CREATE UNIQUE INDEX%(source, case_number)' FROM "
                    "pg_indexes WHERE schemaname = current_schema() AND indexname = "
                    "'ds_cases_key'",
                    "t");
        expect_text("SELECT key FROM datasets WHERE name = 'cases'",
                    "[\"source\",\"case_number\"]");
        cr_expect_eq(put(ds, &META1, "{\"source\":1,\"case_number\":\"C1\",\"v\":\"a\"}", NULL),
                     ROW_INSERTED);
        cr_expect_eq(put(ds, &META1, "{\"source\":2,\"case_number\":\"C1\",\"v\":\"b\"}", NULL),
                     ROW_INSERTED, "%s: one part differs", modes[i]);
        cr_expect_eq(put(ds, &META1, "{\"source\":1,\"case_number\":\"C2\",\"v\":\"c\"}", NULL),
                     ROW_INSERTED, "%s: the other part differs", modes[i]);
        enum row_result r =
            put(ds, &META2, "{\"source\":1,\"case_number\":\"C1\",\"v\":\"d\"}", NULL);
        cr_expect_eq(r, i == 2 ? ROW_INSERTED : ROW_DUPLICATE, "%s", modes[i]);
        cr_expect_eq(pg_row_count(st, "cases"), 3, "%s", modes[i]);
        expect_text("SELECT v FROM ds_cases WHERE source = 1 AND case_number = 'C1'",
                    i == 2 ? "d" : "a");
        free_cfg(cfg);

        snprintf(yaml, sizeof yaml, COMPOSITE_YAML("%s", "[case_number, source]"), modes[i]);
        cfg = load_cfg(yaml);
        cr_expect_eq(pg_dataset_check(st, ds_of(cfg, "cases"), why, sizeof why), -1);
        cr_expect(strstr(why, "the key changed from '[\"source\",\"case_number\"]' to "
                              "'[\"case_number\",\"source\"]'"),
                  "%s", why);
        free_cfg(cfg);
    }
}

Test(store_pg, no_key_keeps_every_row, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "free");
    cr_expect_eq(put(ds, &META1, "{\"v\":\"same\"}", NULL), ROW_INSERTED);
    cr_expect_eq(put(ds, &META1, "{\"v\":\"same\"}", NULL), ROW_INSERTED);
    cr_expect_eq(pg_row_count(st, "free"), 2);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_free"), 2);
    free_cfg(cfg);
}

Test(store_pg, typed_columns, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    put(ds, &META1,
        "{\"case_number\":\"A\",\"amount\":5,\"count\":7,\"flag\":true,\"notes\":\"n\"}", NULL);
    put(ds, &META1, "{\"case_number\":\"B\",\"amount\":12.5,\"count\":3.0,\"flag\":false}", NULL);
    put(ds, &META1, "{\"case_number\":\"C\",\"count\":9007199254740993,\"amount\":0.1}", NULL);
    put(ds, &META1, "{\"case_number\":\"caf\xc3\xa9 'q' \\\"d\\\"\"}", NULL);

    static const struct {
        const char *sql, *want;
    } checks[] = {
        {"SELECT amount FROM ds_judgments WHERE case_number = 'A'", "5"},
        {"SELECT amount FROM ds_judgments WHERE case_number = 'B'", "12.5"},
        {"SELECT amount = 0.1::float8 FROM ds_judgments WHERE case_number = 'C'", "t"},
        /* integers (also written 3.0), exact beyond 2^53 */
        {"SELECT count FROM ds_judgments WHERE case_number = 'A'", "7"},
        {"SELECT count FROM ds_judgments WHERE case_number = 'B'", "3"},
        {"SELECT count FROM ds_judgments WHERE case_number = 'C'", "9007199254740993"},
        /* booleans as 0/1 */
        {"SELECT flag FROM ds_judgments WHERE case_number = 'A'", "1"},
        {"SELECT flag FROM ds_judgments WHERE case_number = 'B'", "0"},
        {"SELECT notes FROM ds_judgments WHERE case_number = 'A'", "n"},
        /* absent optional fields are NULL */
        {"SELECT notes IS NULL FROM ds_judgments WHERE case_number = 'B'", "t"},
        {"SELECT flag IS NULL FROM ds_judgments WHERE case_number = 'C'", "t"},
        /* text as given */
        {"SELECT count(*) FROM ds_judgments WHERE case_number = 'caf\xc3\xa9 ''q'' \"d\"'", "1"},
        /* provenance */
        {"SELECT _ingest_id || '|' || _source || '|' || _received_at FROM ds_judgments"
         " WHERE case_number = 'A'",
         "ing_1|test-1|2026-01-02T03:04:05.006Z"},
        {"SELECT _extra IS NULL AND _batch_id IS NULL FROM ds_judgments"
         " WHERE case_number = 'A'",
         "t"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(checks); i++)
        expect_text(checks[i].sql, checks[i].want);
    free_cfg(cfg);
}

Test(store_pg, put_values_with_batch_and_unterminated_text, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    const struct row_meta m = {"bat_1", "upload", "2026-01-02T03:04:05.006Z", "bat_1"};
    static const char buf[] = "K1xyz"; /* a CSV field: its bytes, not NUL-terminated */
    struct row_value v[5] = {{.kind = VAL_TEXT, .u.s = {buf, 2}},
                             {.kind = VAL_REAL, .u.d = 2.5},
                             {.kind = VAL_INT, .u.i = -4},
                             {.kind = VAL_BOOL, .u.b = 1},
                             {.kind = VAL_ABSENT}};
    enum row_result res = (enum row_result) - 1;
    cr_assert_eq(pg_row_put_values(st, ds, &m, v, "{\"z\":1}", &res), 0, "%s", pg_errmsg(st));
    cr_expect_eq(res, ROW_INSERTED);
    expect_text("SELECT case_number || '|' || amount || '|' || count || '|' || flag || '|' ||"
                " coalesce(notes, 'null') || '|' || _batch_id || '|' || _extra FROM ds_judgments",
                "K1|2.5|-4|1|null|bat_1|{\"z\":1}");
    /* a text with a NUL byte is refused before PostgreSQL sees it */
    static const char nul[] = "a\0b";
    v[0].u.s.p = nul;
    v[0].u.s.n = 3;
    cr_expect_eq(pg_row_put_values(st, ds, &m, v, NULL, &res), -1);
    cr_expect(strstr(pg_errmsg(st), "NUL"), "%s", pg_errmsg(st));
    free_cfg(cfg);
}

Test(store_pg, extra_fields_as_json, .fini = cleanup)
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
    char *t = column_type("ds_judgments", "court");
    cr_expect_null(t);
    free(t);
    json_decref(got);
    json_decref(want);
    free(txt);
    free_cfg(cfg);
}

/* ---- COPY (rows of datasets without a key, DLQ entries, row errors) -------------------- */

Test(store_pg, copy_keeps_every_value_as_given, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "plain");
    cr_assert_eq(pg_begin(st), 0);
    /* the four characters COPY's text format gives a meaning, and what looks like its
     * escapes, must arrive as written */
    put(ds, &META1,
        "{\"s\":\"tab\\there\\nnl\\rcr\\\\bs \\\\N \\\\. end\",\"n\":0.1,\"i\":-7,\"b\":true}",
        "{\"x\":\"a\\tb\"}");
    put(ds, &META2, "{\"s\":\"\",\"n\":1e300,\"i\":9007199254740993,\"b\":false}", NULL);
    put(ds, &META1, "{\"s\":\"\\\\N\"}", NULL);
    put(ds, &META1, "{\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}", NULL);
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    static const struct {
        const char *sql, *want;
    } checks[] = {
        {"SELECT s = E'tab\\there\\nnl\\rcr\\\\bs \\\\N \\\\. end' FROM ds_plain WHERE i = -7",
         "t"},
        {"SELECT n = 0.1::float8 AND b = 1 FROM ds_plain WHERE i = -7", "t"},
        {"SELECT _extra FROM ds_plain WHERE i = -7", "{\"x\":\"a\\tb\"}"},
        /* an empty text is not NULL; absent fields are */
        {"SELECT s = '' AND s IS NOT NULL FROM ds_plain WHERE b = 0", "t"},
        {"SELECT n = 1e300::float8 AND i = 9007199254740993 FROM ds_plain WHERE b = 0", "t"},
        {"SELECT n IS NULL AND i IS NULL AND b IS NULL FROM ds_plain WHERE s = E'\\\\N'", "t"},
        {"SELECT count(*) FROM ds_plain WHERE s = 'caf\xc3\xa9 \xf0\x9f\x98\x80'", "1"},
        {"SELECT _ingest_id || '|' || _source || '|' || _received_at FROM ds_plain WHERE b = 0",
         "ing_2|test-2|2026-01-02T03:04:06.000Z"},
        {"SELECT count(*) FROM ds_plain", "4"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(checks); i++)
        expect_text(checks[i].sql, checks[i].want);
    free_cfg(cfg);
}

Test(store_pg, copy_rows_are_seen_by_the_transaction_and_undone_by_rollback, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "plain");
    cr_assert_eq(pg_begin(st), 0);
    put(ds, &META1, "{\"s\":\"a\"}", NULL);
    put(ds, &META1, "{\"s\":\"b\"}", NULL);
    cr_expect_eq(pg_row_count(st, "plain"), 2, "queued rows are sent before a read");
    put(ds, &META1, "{\"s\":\"c\"}", NULL);
    cr_assert_eq(pg_rollback(st), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_plain"), 0);
    /* a savepoint's rollback drops only the rows queued since it */
    cr_assert_eq(pg_begin(st), 0);
    put(ds, &META1, "{\"s\":\"kept\"}", NULL);
    cr_assert_eq(pg_savepoint(st), 0, "%s", pg_errmsg(st));
    put(ds, &META1, "{\"s\":\"gone\"}", NULL);
    put(ds, &META1, "{\"s\":\"gone\"}", NULL);
    cr_assert_eq(pg_savepoint_rollback(st), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    expect_text("SELECT string_agg(s, ',') FROM ds_plain", "kept");
    /* outside a transaction a row is stored when the call returns */
    put(ds, &META1, "{\"s\":\"alone\"}", NULL);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_plain WHERE s = 'alone'"), 1);
    free_cfg(cfg);
}

Test(store_pg, copy_carries_dlq_bytes_and_row_errors_in_order, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "plain");
    unsigned char every[256];
    for (int i = 0; i < 256; i++)
        every[i] = (unsigned char)i;
    cr_assert_eq(pg_begin(st), 0);
    for (int r = 1; r <= 300; r++) {
        char row[64];
        snprintf(row, sizeof row, "{\"i\":%d}", r);
        if (r % 3) {
            put(ds, &META1, row, NULL);
            continue;
        }
        struct dlq_new e = {.dataset = "plain",
                            .ingest_id = "ing_b",
                            .source = NULL,
                            .row = r,
                            .payload = every,
                            .payload_len = sizeof every,
                            .errors_json = "[]",
                            .codes = ",TYPE,",
                            .batch_id = "bat_c",
                            .received_ms = 5};
        cr_assert_eq(pg_dlq_add(st, &e, NULL), 0, "%s", pg_errmsg(st));
        struct batch_error_new be[2] = {{r, "TYPE", "i", "first\tmessage"},
                                        {r, "REQUIRED", NULL, "second"}};
        cr_assert_eq(pg_batch_errors_add(st, "bat_c", be, 2, 9), 0, "%s", pg_errmsg(st));
    }
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_plain"), 200);
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq WHERE batch_id = 'bat_c' AND source IS NULL"),
                 100);
    char hex[600] = "";
    for (int i = 0; i < 256; i++)
        snprintf(hex + 2 * i, 3, "%02x", i);
    char sql[800];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM dlq WHERE encode(payload, 'hex') = '%s'", hex);
    cr_expect_eq(raw_int(sql), 100, "every payload byte survives");
    /* ids and seqs follow the order the rows came in */
    cr_expect_eq(raw_int("SELECT count(*) FROM (SELECT row_no, lag(row_no) OVER (ORDER BY id) p"
                         " FROM dlq) t WHERE row_no < p"),
                 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM (SELECT code, row_no, lag(row_no) OVER (ORDER BY"
                         " seq) p FROM batch_errors) t WHERE row_no < p"),
                 0);
    expect_text("SELECT string_agg(code || ':' || coalesce(field, '-') || ':' || message, '|'"
                " ORDER BY seq) FROM batch_errors WHERE row_no = 3",
                "TYPE:i:first\tmessage|REQUIRED:-:second");
    free_cfg(cfg);
}

Test(store_pg, a_streaming_copy_is_undone_by_rollback_and_ends_before_a_savepoint, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "plain");
    char row[400], pad[301];
    memset(pad, 'q', 300);
    pad[300] = 0;
    cr_assert_eq(pg_begin(st), 0);
    for (int r = 0; r < 5000; r++) { /* ~1.7 MB: several parts into one open COPY */
        snprintf(row, sizeof row, "{\"i\":%d,\"s\":\"%s\"}", r, pad);
        put(ds, &META1, row, NULL);
    }
    cr_assert_eq(pg_rollback(st), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_plain"), 0);
    cr_assert_eq(pg_begin(st), 0);
    for (int r = 0; r < 5000; r++) {
        snprintf(row, sizeof row, "{\"i\":%d,\"s\":\"%s\"}", r, pad);
        put(ds, &META1, row, NULL);
    }
    cr_assert_eq(pg_savepoint(st), 0);
    put(ds, &META1, "{\"i\":-1}", NULL);
    cr_expect_eq(pg_row_count(st, "plain"), 5001, "%s", pg_errmsg(st));
    cr_assert_eq(pg_savepoint_rollback(st), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_plain"), 5000);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_plain WHERE i = -1"), 0);
    free_cfg(cfg);
}

/* A batch's rows stream into one COPY that stays open while DLQ entries and row errors
 * queue beside it: ending it for them (or after every part) makes the writer and the server
 * wait for each other at every part. Seen from a second connection, the one COPY in progress
 * has taken nearly every row before the job ends. */
Test(store_pg, a_big_jobs_rows_stay_in_one_open_copy_while_dlq_entries_queue, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "plain");
    char row[400], pad[201], sql[200];
    memset(pad, 'z', 200);
    pad[200] = 0;
    cr_assert_eq(pg_begin(st), 0);
    for (int r = 1; r <= 20000; r++) { /* about 5 MB: twenty parts */
        snprintf(row, sizeof row, "{\"i\":%d,\"s\":\"%s\"}", r, pad);
        put(ds, &META1, row, NULL);
        if (r % 50)
            continue;
        struct dlq_new e = {.dataset = "plain",
                            .ingest_id = "ing_s",
                            .row = r,
                            .payload = (const unsigned char *)row,
                            .payload_len = strlen(row),
                            .errors_json = "[]",
                            .codes = ",TYPE,",
                            .batch_id = "bat_s",
                            .received_ms = 5};
        cr_assert_eq(pg_dlq_add(st, &e, NULL), 0, "%s", pg_errmsg(st));
        struct batch_error_new be = {r, "TYPE", "i", "a message"};
        cr_assert_eq(pg_batch_errors_add(st, "bat_s", &be, 1, 9), 0, "%s", pg_errmsg(st));
    }
    snprintf(sql, sizeof sql, "SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = %d",
             PQbackendPID(PG(st)->conn));
    int64_t seen = raw_int(sql);
    for (int i = 0; i < 100 && seen >= 0 && seen < 19000; i++) { /* the server catching up */
        usleep(50 * 1000);
        seen = raw_int(sql);
    }
    cr_expect_geq(seen, 19000, "the open COPY has %lld of 20000 rows (-999: none is open)",
                  (long long)seen);
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_plain"), 20000);
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq WHERE batch_id = 'bat_s'"), 400);
    cr_expect_eq(raw_int("SELECT count(*) FROM batch_errors WHERE batch_id = 'bat_s'"), 400);
    free_cfg(cfg);
}

Test(store_pg, copy_takes_rows_of_many_columns, .fini = cleanup)
{
    open_fresh();
    char yaml[4096] = "datasets:\n  - name: wide\n    schema: {type: object, properties: {";
    char row[2048] = "{";
    for (int i = 0; i < 40; i++) {
        char f[64];
        snprintf(f, sizeof f, "%sf%02d: {type: string}", i ? ", " : "", i);
        strcat(yaml, f);
        snprintf(f, sizeof f, "%s\"f%02d\":\"v%d\"", i ? "," : "", i, i);
        strcat(row, f);
    }
    strcat(yaml, "}}\n");
    strcat(row, "}");
    struct sluice_config *cfg = load_cfg(yaml);
    const struct dataset_config *ds = ds_of(cfg, "wide");
    sync_ok(ds);
    cr_assert_eq(pg_begin(st), 0);
    put(ds, &META1, row, NULL);
    put(ds, &META2, row, NULL);
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    expect_text("SELECT count(*) FROM ds_wide WHERE f00 = 'v0' AND f39 = 'v39'", "2");
    free_cfg(cfg);
}

Test(store_pg, copy_sends_large_jobs_in_parts, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "plain");
    char row[400], pad[301];
    memset(pad, 'p', 300);
    pad[300] = 0;
    cr_assert_eq(pg_begin(st), 0);
    for (int r = 0; r < 30000; r++) { /* about 10 MB of COPY text: several sends */
        snprintf(row, sizeof row, "{\"i\":%d,\"s\":\"%s\"}", r, pad);
        put(ds, &META1, row, NULL);
    }
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_plain"), 30000);
    cr_expect_eq(raw_int("SELECT count(DISTINCT i) FROM ds_plain WHERE length(s) = 300"), 30000);
    free_cfg(cfg);
}

Test(store_pg, row_count_unknown_dataset_keeps_the_transaction, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    cr_expect_lt(pg_row_count(st, "never_synced"), 0);
    cr_expect_lt(pg_row_count(st, "bad\"name"), 0);
    cr_assert_eq(pg_begin(st), 0);
    put(ds_of(cfg, "judgments"), &META1, "{\"case_number\":\"A\"}", NULL);
    cr_expect_lt(pg_row_count(st, "never_synced"), 0);
    cr_expect_eq(pg_row_count(st, "judgments"), 1, "%s", pg_errmsg(st));
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 1);
    free_cfg(cfg);
}

/* ---- DLQ ----------------------------------------------------------------------------- */

static const char PAYLOAD[] = "{\"a\":\"\0\xff\"}"; /* binary-safe: a NUL and a non-UTF-8 byte */

static int64_t dlq_add_ex(const char *dataset, const char *codes, int64_t row, int64_t ms,
                          const char *batch_id)
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
                        .batch_id = batch_id,
                        .received_ms = ms};
    int64_t id = -1;
    cr_assert_eq(pg_dlq_add(st, &e, &id), 0, "dlq_add: %s", pg_errmsg(st));
    cr_assert_gt(id, 0);
    return id;
}

static int64_t dlq_add(const char *dataset, const char *codes, int64_t row, int64_t ms)
{
    return dlq_add_ex(dataset, codes, row, ms, NULL);
}

static size_t list_ids(const struct dlq_filter *f, int64_t *ids)
{
    struct dlq_entry *v = NULL;
    size_t n = 0;
    cr_assert_eq(pg_dlq_list(st, f, &v, &n), 0, "dlq_list: %s", pg_errmsg(st));
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

Test(store_pg, dlq_add_get, .fini = cleanup)
{
    open_fresh();
    int64_t id = dlq_add("judgments", ",INVALID_TYPE,TOO_LONG,", 3, 1700000000123);
    struct dlq_entry e;
    cr_assert_eq(pg_dlq_get(st, id, &e), 0, "%s", pg_errmsg(st));
    cr_expect_eq(e.id, id);
    cr_expect_str_eq(e.dataset, "judgments");
    cr_expect_str_eq(e.ingest_id, "ing_dlq");
    cr_expect_str_eq(e.source, "src");
    cr_expect_eq(e.row, 3);
    cr_expect_eq(e.payload_len, sizeof PAYLOAD - 1);
    cr_expect_eq(memcmp(e.payload, PAYLOAD, sizeof PAYLOAD - 1), 0, "payload not byte-exact");
    cr_expect_eq(e.payload[e.payload_len], 0, "payload NUL-terminated");
    cr_expect_str_eq(e.errors_json,
                     "[{\"field\":\"a\",\"code\":\",INVALID_TYPE,TOO_LONG,\",\"message\":\"m\"}]");
    cr_expect_eq(e.received_ms, 1700000000123);
    cr_expect_eq(e.updated_ms, 1700000000123);
    cr_expect_eq(e.attempts, 0);
    cr_expect_str_eq(e.status, "open");
    cr_expect_null(e.batch_id);
    dlq_entry_release(&e);
    cr_expect_eq(raw_int("SELECT octet_length(payload) FROM dlq"), (int64_t)sizeof PAYLOAD - 1);

    cr_expect_eq(pg_dlq_get(st, id + 100, &e), 1, "a missing id is 'not found'");
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 1);

    /* a batch's entry, and an empty payload */
    int64_t b = dlq_add_ex("judgments", ",X,", 9, 5, "bat_1");
    cr_assert_eq(pg_dlq_get(st, b, &e), 0, "%s", pg_errmsg(st));
    cr_expect_str_eq(e.batch_id ? e.batch_id : "(null)", "bat_1");
    dlq_entry_release(&e);
    struct dlq_new empty = {.dataset = "d",
                            .ingest_id = "i",
                            .row = 1,
                            .payload = NULL,
                            .payload_len = 0,
                            .errors_json = "[]",
                            .codes = ",",
                            .received_ms = 1};
    int64_t c = 0;
    cr_assert_eq(pg_dlq_add(st, &empty, &c), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_dlq_get(st, c, &e), 0, "%s", pg_errmsg(st));
    cr_expect_eq(e.payload_len, 0);
    cr_expect_null(e.source);
    dlq_entry_release(&e);
}

Test(store_pg, dlq_list_desc_time_range_and_count, .fini = cleanup)
{
    open_fresh();
    dlq_desc_range_count(st);
}

Test(store_pg, dlq_list_filters, .fini = cleanup)
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
    f = (struct dlq_filter){.error_code = "INVALID%TYPE", .limit = 100};
    expect_ids(&f, NULL, 0, "no LIKE wildcards");
    f = (struct dlq_filter){.error_code = "INVALID_TYP_", .limit = 100};
    expect_ids(&f, NULL, 0, "no LIKE wildcards (_)");
    f = (struct dlq_filter){.dataset = "events", .error_code = "INVALID_TYPE", .limit = 100};
    expect_ids(&f, (int64_t[]){e}, 1, "dataset and code");

    int64_t some[] = {e, a, 999};
    f = (struct dlq_filter){.ids = some, .nids = 3, .limit = 100};
    expect_ids(&f, (int64_t[]){a, e}, 2, "ids (in id order, unknown ids ignored)");
    f = (struct dlq_filter){.ids = some, .nids = 3, .dataset = "events", .limit = 100};
    expect_ids(&f, (int64_t[]){e}, 1, "ids and dataset");
    f = (struct dlq_filter){.ids = some, .nids = 0, .limit = 100};
    expect_ids(&f, NULL, 0, "an empty id list");

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
    f = (struct dlq_filter){.limit = -1};
    expect_ids(&f, (int64_t[]){a, b, c, d, e}, 5, "a negative limit is no limit (as SQLite)");

    /* status */
    cr_assert_eq(pg_dlq_set(st, b, "resolved", 1, NULL, NULL, 5000), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_dlq_set(st, c, "dropped", 0, NULL, NULL, 5001), 0);
    f = (struct dlq_filter){.status = "open", .limit = 100};
    expect_ids(&f, (int64_t[]){a, d, e}, 3, "status open");
    f = (struct dlq_filter){.status = "resolved", .limit = 100};
    expect_ids(&f, (int64_t[]){b}, 1, "status resolved");
    f = (struct dlq_filter){.status = "open", .error_code = "INVALID_TYPE", .limit = 100};
    expect_ids(&f, (int64_t[]){a, e}, 2, "status and code");

    /* entries come back whole from a list too */
    struct dlq_entry *v = NULL;
    size_t k = 0;
    f = (struct dlq_filter){.ids = (int64_t[]){c}, .nids = 1, .limit = 10};
    cr_assert_eq(pg_dlq_list(st, &f, &v, &k), 0, "%s", pg_errmsg(st));
    cr_assert_eq(k, 1);
    cr_expect_eq(v[0].payload_len, sizeof PAYLOAD - 1);
    cr_expect_eq(memcmp(v[0].payload, PAYLOAD, sizeof PAYLOAD - 1), 0);
    cr_expect_str_eq(v[0].status, "dropped");
    cr_expect_eq(v[0].updated_ms, 5001);
    dlq_entry_release(&v[0]);
    free(v);
}

Test(store_pg, dlq_set_and_depth, .fini = cleanup)
{
    open_fresh();
    json_t *depth = NULL;
    cr_assert_eq(pg_dlq_depth(st, &depth), 0);
    cr_expect_eq(json_object_size(depth), 0, "empty DLQ has no datasets");
    json_decref(depth);

    int64_t a = dlq_add("judgments", ",INVALID_TYPE,", 1, 1000);
    int64_t b = dlq_add("judgments", ",TOO_LONG,", 2, 1000);
    dlq_add("judgments", ",TOO_LONG,", 3, 1000);
    int64_t d = dlq_add("events", ",MALFORMED_JSON,", 1, 1000);

    cr_assert_eq(
        pg_dlq_set(st, a, "open", 1, "[{\"code\":\"OUT_OF_RANGE\"}]", ",OUT_OF_RANGE,", 2000), 0,
        "%s", pg_errmsg(st));
    struct dlq_entry e;
    cr_assert_eq(pg_dlq_get(st, a, &e), 0);
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

    cr_assert_eq(pg_dlq_set(st, b, "resolved", 2, NULL, NULL, 3000), 0);
    cr_assert_eq(pg_dlq_get(st, b, &e), 0);
    cr_expect_str_eq(e.status, "resolved");
    cr_expect_eq(e.attempts, 2);
    cr_expect_str_eq(e.errors_json,
                     "[{\"field\":\"a\",\"code\":\",TOO_LONG,\",\"message\":\"m\"}]");
    cr_expect_eq(e.updated_ms, 3000);
    dlq_entry_release(&e);
    f = (struct dlq_filter){.error_code = "TOO_LONG", .status = "resolved", .limit = 10};
    expect_ids(&f, (int64_t[]){b}, 1, "codes kept");

    cr_assert_eq(pg_dlq_set(st, d, "dropped", 0, NULL, NULL, 3000), 0);

    cr_assert_eq(pg_dlq_depth(st, &depth), 0);
    cr_expect_eq(json_integer_value(json_object_get(depth, "judgments")), 2);
    cr_expect_null(json_object_get(depth, "events"), "no open entries in events");
    json_decref(depth);
}

/* ---- idempotency ----------------------------------------------------------------------- */

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

Test(store_pg, idempotency_put_get_purge, .fini = cleanup)
{
    open_fresh();
    struct idem_record r;
    cr_expect_eq(pg_idem_get(st, "judgments", "k1", &r), 1, "nothing stored yet");

    cr_assert_eq(pg_idem_put(st, "judgments", "k1", SHA_A, 200, "{\"accepted\":1}", 1000, 0), 0,
                 "%s", pg_errmsg(st));
    cr_assert_eq(pg_idem_put(st, "judgments", "k2", SHA_B, 207, "{\"accepted\":0}", 2000, 0), 0);
    cr_assert_eq(pg_idem_put(st, "events", "k1", SHA_B, 422, "{}", 3000, 0), 0);

    memset(&r, 0, sizeof r);
    cr_assert_eq(pg_idem_get(st, "judgments", "k1", &r), 0, "%s", pg_errmsg(st));
    cr_expect_str_eq(r.sha256, SHA_A);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.response, "{\"accepted\":1}");
    cr_expect_eq(r.created_ms, 1000);
    free(r.response);
    cr_assert_eq(pg_idem_get(st, "events", "k1", &r), 0);
    cr_expect_str_eq(r.sha256, SHA_B);
    cr_expect_eq(r.status, 422);
    free(r.response);
    cr_expect_eq(pg_idem_get(st, "judgments", "K1", &r), 1, "keys are case-sensitive");

    /* a live record (made at or after live_after_ms) stays as it is: 1 */
    cr_expect_eq(pg_idem_put(st, "judgments", "k1", SHA_B, 500, "{\"no\":1}", 4000, 1000), 1);
    cr_assert_eq(pg_idem_get(st, "judgments", "k1", &r), 0);
    cr_expect_str_eq(r.response, "{\"accepted\":1}");
    free(r.response);
    /* an expired one (made before live_after_ms) is replaced */
    cr_assert_eq(pg_idem_put(st, "judgments", "k2", SHA_A, 201, "{\"again\":1}", 2500, 2001), 0,
                 "%s", pg_errmsg(st));
    cr_assert_eq(pg_idem_get(st, "judgments", "k2", &r), 0);
    cr_expect_str_eq(r.sha256, SHA_A);
    cr_expect_eq(r.status, 201);
    cr_expect_str_eq(r.response, "{\"again\":1}");
    cr_expect_eq(r.created_ms, 2500);
    free(r.response);
    cr_assert_eq(pg_idem_put(st, "judgments", "k2", SHA_B, 207, "{\"accepted\":0}", 2000, 2501), 0);

    /* purge: strictly older than the cutoff */
    cr_assert_eq(pg_idem_purge(st, 2000), 0, "%s", pg_errmsg(st));
    cr_expect_eq(pg_idem_get(st, "judgments", "k1", &r), 1, "k1 (1000) purged");
    cr_assert_eq(pg_idem_get(st, "judgments", "k2", &r), 0, "k2 (2000) kept");
    free(r.response);
    cr_assert_eq(pg_idem_get(st, "events", "k1", &r), 0, "events k1 (3000) kept");
    free(r.response);
    cr_expect_eq(raw_int("SELECT count(*) FROM idempotency"), 2);

    cr_assert_eq(pg_idem_purge(st, 1000000), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM idempotency"), 0);
}

/* Two nodes with the same key at once: a retry reaching node B while node A's first request
 * is still committing. B's INSERT waits for A's transaction; once A commits, B is told the
 * key is taken (1) instead of overwriting A's record beside a second copy of the rows. */
struct idem_race {
    struct store *b;
    int rc;
};

static void *race_put(void *arg)
{
    struct idem_race *x = arg;
    x->rc = pg_begin(x->b) < 0
                ? -1
                : pg_idem_put(x->b, "judgments", "race", SHA_B, 200, "{\"second\":1}", 5000, 4000);
    pg_rollback(x->b);
    return NULL;
}

Test(store_pg, a_key_committed_by_another_transaction_meanwhile_is_reported_taken, .fini = cleanup)
{
    open_fresh();
    char err[512] = "", sql[128];
    struct idem_race x = {.rc = 99};
    x.b = pg_open(getenv("SLUICE_TEST_PG"), 0, err, sizeof err);
    cr_assert_not_null(x.b, "%s", err);
    snprintf(sql, sizeof sql, "SET search_path TO %s", schema);
    run_on(PG(x.b)->conn, sql);
    cr_assert_eq(pg_begin(st), 0);
    cr_assert_eq(pg_idem_put(st, "judgments", "race", SHA_A, 200, "{\"first\":1}", 5000, 4000), 0,
                 "%s", pg_errmsg(st));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event_type = 'Lock'",
             PQbackendPID(PG(x.b)->conn));
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, race_put, &x), 0);
    int64_t waiting = 0; /* until B waits on A's uncommitted record */
    for (int i = 0; i < 500 && waiting != 1; i++) {
        usleep(10 * 1000);
        waiting = raw_int(sql);
    }
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    pthread_join(t, NULL);
    pg_close(x.b);
    cr_expect_eq(waiting, 1, "B never waited for A's transaction");
    cr_expect_eq(x.rc, 1, "B's put: %d (0 would have overwritten A's record)", x.rc);
    expect_text("SELECT response FROM idempotency WHERE key = 'race'", "{\"first\":1}");
}

/* ---- transactions ---------------------------------------------------------------------- */

Test(store_pg, rollback_leaves_nothing, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    cr_assert_eq(pg_begin(st), 0, "%s", pg_errmsg(st));
    put(ds, &META1, "{\"case_number\":\"T1\"}", NULL);
    put(ds, &META1, "{\"case_number\":\"T2\"}", NULL);
    dlq_add("judgments", ",INVALID_TYPE,", 1, 1000);
    cr_assert_eq(pg_idem_put(st, "judgments", "k", SHA_A, 200, "{}", 1000, 0), 0);
    cr_expect_eq(pg_row_count(st, "judgments"), 2, "visible inside the transaction");
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 0, "not visible outside");
    cr_assert_eq(pg_rollback(st), 0, "%s", pg_errmsg(st));

    cr_expect_eq(pg_row_count(st, "judgments"), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM idempotency"), 0);

    cr_expect_eq(put(ds, &META1, "{\"case_number\":\"T1\"}", NULL), ROW_INSERTED);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 1);
    free_cfg(cfg);
}

Test(store_pg, commit_makes_durable, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    cr_assert_eq(pg_begin(st), 0);
    put(ds, &META1, "{\"case_number\":\"T1\"}", NULL);
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 0);
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 1);
    free_cfg(cfg);
}

Test(store_pg, savepoint_rollback_undoes_only_the_savepoint, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    cr_assert_eq(pg_begin(st), 0, "%s", pg_errmsg(st));
    put(ds, &META1, "{\"case_number\":\"A\"}", NULL);

    cr_assert_eq(pg_savepoint(st), 0, "%s", pg_errmsg(st));
    put(ds, &META1, "{\"case_number\":\"B\"}", NULL);
    dlq_add("judgments", ",X,", 2, 1000);
    cr_assert_eq(pg_savepoint_rollback(st), 0, "%s", pg_errmsg(st));

    cr_assert_eq(pg_savepoint(st), 0, "%s", pg_errmsg(st));
    put(ds, &META1, "{\"case_number\":\"C\"}", NULL);
    cr_assert_eq(pg_savepoint_release(st), 0, "%s", pg_errmsg(st));

    /* B's key is free again inside the same transaction */
    cr_assert_eq(pg_savepoint(st), 0);
    cr_expect_eq(put(ds, &META2, "{\"case_number\":\"B\",\"notes\":\"again\"}", NULL),
                 ROW_INSERTED);
    cr_assert_eq(pg_savepoint_release(st), 0);

    put(ds, &META1, "{\"case_number\":\"D\"}", NULL);
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));

    cr_expect_eq(raw_int("SELECT count(*) FROM ds_judgments"), 4);
    expect_text("SELECT string_agg(case_number, ',' ORDER BY case_number) FROM ds_judgments",
                "A,B,C,D");
    expect_text("SELECT notes FROM ds_judgments WHERE case_number = 'B'", "again");
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 0);
    free_cfg(cfg);
}

Test(store_pg, savepoint_rollback_recovers_from_a_failed_statement, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "judgments");
    /* a keyed dataset that was never synced: its INSERT fails on the server at once */
    struct sluice_config *other =
        load_cfg("datasets:\n  - name: nosuch\n    key: v\n    schema: {type: object, properties: "
                 "{v: {type: string}}}\n");
    cr_assert_eq(pg_begin(st), 0);
    put(ds, &META1, "{\"case_number\":\"A\"}", NULL);
    cr_assert_eq(pg_savepoint(st), 0);
    json_t *row = js("{\"v\":\"x\"}");
    enum row_result res;
    cr_expect_eq(store_row_put(st, ds_of(other, "nosuch"), &META1, row, NULL, &res), -1);
    cr_expect(strstr(pg_errmsg(st), "insert"), "%s", pg_errmsg(st));
    json_decref(row);
    cr_assert_eq(pg_savepoint_rollback(st), 0, "%s", pg_errmsg(st));
    put(ds, &META1, "{\"case_number\":\"B\"}", NULL);
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    expect_text("SELECT string_agg(case_number, ',' ORDER BY case_number) FROM ds_judgments",
                "A,B");
    free_cfg(other);
    free_cfg(cfg);
}

Test(store_pg, a_queued_row_that_fails_fails_the_commit, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    /* a key-less dataset that was never synced: its rows wait for COPY, so the failure shows
     * at the COMMIT, and nothing of the group is stored */
    struct sluice_config *other =
        load_cfg("datasets:\n  - name: nosuch\n    schema: {type: object, properties: {v: {type: "
                 "string}}}\n");
    cr_assert_eq(pg_begin(st), 0);
    cr_assert_eq(pg_savepoint(st), 0);
    put(ds_of(cfg, "plain"), &META1, "{\"s\":\"first job\"}", NULL);
    cr_assert_eq(pg_savepoint_release(st), 0);
    cr_assert_eq(pg_savepoint(st), 0);
    put(ds_of(other, "nosuch"), &META1, "{\"v\":\"x\"}", NULL);
    cr_assert_eq(pg_savepoint_release(st), 0);
    cr_expect_eq(pg_commit(st), -1);
    cr_expect(strstr(pg_errmsg(st), "\"ds_nosuch\""), "%s", pg_errmsg(st));
    cr_assert_eq(pg_rollback(st), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM ds_plain"), 0);
    free_cfg(other);
    free_cfg(cfg);
}

Test(store_pg, savepoints_sent_or_not_undo_only_their_job, .fini = cleanup)
{
    open_fresh();
    struct sluice_config *cfg = base_synced();
    const struct dataset_config *ds = ds_of(cfg, "plain");
    struct rollup_delta one = {.dataset = "plain", .at_ms = 120000, .received = 1, .accepted = 1};
    cr_assert_eq(pg_begin(st), 0);
    /* job 1 is kept */
    cr_assert_eq(pg_savepoint(st), 0);
    put(ds, &META1, "{\"s\":\"j1\"}", NULL);
    cr_assert_eq(pg_rollup_add(st, &one), 0);
    cr_assert_eq(pg_savepoint_release(st), 0);
    /* job 2 only queued rows: its rollback cuts them from the queue */
    cr_assert_eq(pg_savepoint(st), 0);
    put(ds, &META1, "{\"s\":\"j2\"}", NULL);
    put(ds, &META1, "{\"s\":\"j2\"}", NULL);
    cr_assert_eq(pg_rollup_add(st, &one), 0);
    cr_assert_eq(pg_savepoint_rollback(st), 0, "%s", pg_errmsg(st));
    /* job 3 read in the middle: its savepoint went to the server after job 1's rows */
    cr_assert_eq(pg_savepoint(st), 0);
    put(ds, &META1, "{\"s\":\"j3\"}", NULL);
    cr_expect_eq(pg_row_count(st, "plain"), 2, "%s", pg_errmsg(st));
    put(ds, &META1, "{\"s\":\"j3\"}", NULL);
    cr_assert_eq(pg_rollup_add(st, &one), 0);
    cr_assert_eq(pg_savepoint_rollback(st), 0, "%s", pg_errmsg(st));
    /* job 4 read and is kept */
    cr_assert_eq(pg_savepoint(st), 0);
    cr_expect_eq(pg_row_count(st, "plain"), 1, "%s", pg_errmsg(st));
    put(ds, &META1, "{\"s\":\"j4\"}", NULL);
    cr_assert_eq(pg_rollup_add(st, &one), 0);
    cr_assert_eq(pg_savepoint_release(st), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_commit(st), 0, "%s", pg_errmsg(st));
    expect_text("SELECT string_agg(s, ',' ORDER BY _id) FROM ds_plain", "j1,j4");
    /* the kept jobs' rollups, summed into one bucket */
    expect_text("SELECT received || '/' || accepted FROM rollup_minute WHERE dataset = 'plain'",
                "2/2");
    free_cfg(cfg);
}
