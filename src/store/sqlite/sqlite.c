/*
 * sqlite.c - the embedded backend: one SQLite file in WAL mode with
 * synchronous=FULL, so a COMMIT returns only after the WAL is fsynced.
 *
 * Tables: schema_migrations, datasets (the schema each dataset's table was
 * built for), dsr_<name> (a dataset's rows: one typed column per property plus _id,
 * _ingest_id, _source, _received_at, _extra, _batch_id) with ds_<name>, the view of it
 * that readers query (every row but those of the batches in batch_pending: a batch
 * stored in slices shows all at once, docs/architecture.md), dlq, idempotency. Row
 * INSERT statements are prepared once per dataset and cached until the dataset's
 * schema changes.
 *
 * This file holds the connection (open, close, ping), datasets, transactions, rows,
 * the DLQ and idempotency; the failure helpers are in sqlite_conn.c, the operations
 * table in sqlite_ops.c (sqlite_internal.h lists the files).
 */
#include "store/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/sqlite/sqlite_ckpt.h"
#include "util/buf.h"
#include "util/clock.h"

#include "store/sqlite/sqlite_internal.h"
#include "util/jsontext.h"
#include "util/mem.h"

#define fail sqlite_fail
#define exec sqlite_exec

const char *sqlite_errmsg(struct store *st)
{
    return SQ(st)->err;
}

int sqlite_conn_lost(struct store *st)
{
    (void)st; /* a file, no connection to lose */
    return 0;
}

int sqlite_busy(struct store *st)
{
    return SQ(st)->busy;
}

int sqlite_fault(struct store *st)
{
    return SQ(st)->fault;
}

void sqlite_close(struct store *st)
{
    struct sqlite_store *s = SQ(st);
    sqlite_ckpt_stop(s->ckpt);
    sqlite3_finalize(s->dlq_add_q[0]);
    sqlite3_finalize(s->dlq_add_q[1]);
    sqlite3_finalize(s->errors_add_q);
    sqlite3_finalize(s->load_q);
    for (size_t i = 0; i < sizeof s->roll_q / sizeof s->roll_q[0]; i++)
        sqlite3_finalize(s->roll_q[i]);
    sqlite_roll_drop_all(s);
    for (size_t i = 0; i < sizeof s->tx / sizeof s->tx[0]; i++)
        sqlite3_finalize(s->tx[i]);
    for (struct ds_stmt *d = s->stmts, *n; d; d = n) {
        n = d->next;
        sqlite3_finalize(d->put);
        sqlite3_finalize(d->hidden);
        free(d->name);
        free(d);
    }
    sqlite3_close(s->db);
    free(s);
}

/* The file the connection was opened on, as (device, inode); 0 when unknown. */
static void file_id(sqlite3 *db, unsigned long long *dev, unsigned long long *ino)
{
    const char *fn = sqlite3_db_filename(db, "main");
    struct stat sb;
    *dev = *ino = 0;
    if (fn && *fn && stat(fn, &sb) == 0) {
        *dev = (unsigned long long)sb.st_dev;
        *ino = (unsigned long long)sb.st_ino;
    }
}

int sqlite_ping(struct store *st)
{
    struct sqlite_store *s = SQ(st);
    /* A deleted or replaced database file still answers through the open descriptor, and
     * everything written to it would vanish at the next start: that is not available. */
    if (s->ino) {
        unsigned long long dev, ino;
        file_id(s->db, &dev, &ino);
        if (dev != s->dev || ino != s->ino) {
            snprintf(s->err, sizeof s->err, "the database file %s was %s",
                     sqlite3_db_filename(s->db, "main"), ino ? "replaced" : "deleted");
            return -1;
        }
    }
    return exec(s, "SELECT 1 FROM schema_migrations LIMIT 1");
}

/* One process owns an SQLite store: it holds every singleton role. */
int sqlite_singleton(struct store *st, const char *name)
{
    (void)st;
    (void)name;
    return 1;
}

/* One process: its workers are woken directly (batch_pool_kick). */
int sqlite_wait_work(struct store *st, int timeout_ms)
{
    (void)st;
    (void)timeout_ms;
    return -1;
}

/* ---- datasets ---------------------------------------------------------- */

static const char *sql_type(enum field_type t)
{
    switch (t) {
    case FT_STRING:
        return "TEXT";
    case FT_INTEGER:
    case FT_BOOLEAN:
        return "INTEGER";
    case FT_NUMBER:
        return "REAL";
    }
    return "TEXT";
}

static void drop_stmt(struct sqlite_store *s, const char *name)
{
    for (struct ds_stmt **p = &s->stmts; *p; p = &(*p)->next)
        if (strcmp((*p)->name, name) == 0) {
            struct ds_stmt *d = *p;
            *p = d->next;
            sqlite3_finalize(d->put);
            sqlite3_finalize(d->hidden);
            sqlite3_finalize(d->hidden);
            free(d->name);
            free(d);
            return;
        }
}

/* The stored schema of a dataset, compiled; NULL (and *found = 0) when none. */
static struct schema *stored_schema(struct sqlite_store *s, const char *name, char **key,
                                    int *found, char *why, size_t whylen)
{
    sqlite3_stmt *q;
    struct schema *old = NULL;
    *found = 0;
    *key = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT schema, key FROM datasets WHERE name = ?", -1, &q,
                           NULL) != SQLITE_OK) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(s->db));
        return NULL;
    }
    sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) == SQLITE_ROW) {
        *found = 1;
        json_error_t jerr;
        json_t *j = json_loads((const char *)sqlite3_column_text(q, 0), 0, &jerr);
        if (j) {
            char cerr[256];
            old = schema_compile(j, cerr, sizeof cerr);
            json_decref(j);
        }
        if (sqlite3_column_type(q, 1) != SQLITE_NULL)
            *key = sl_strdup((const char *)sqlite3_column_text(q, 1));
    }
    sqlite3_finalize(q);
    return old;
}

int sqlite_dataset_kind(struct sqlite_store *s, const char *dataset)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT type FROM sqlite_master WHERE name = 'ds_' || ?", -1, &q,
                           NULL) != SQLITE_OK)
        return fail(s, "dataset");
    sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
    int kind = 0;
    if (sqlite3_step(q) == SQLITE_ROW)
        kind = strcmp((const char *)sqlite3_column_text(q, 0), "view") == 0 ? 2 : 1;
    sqlite3_finalize(q);
    return kind;
}

int sqlite_dataset_check(struct store *st, const struct dataset_config *ds, char *why,
                         size_t whylen)
{
    struct sqlite_store *s = SQ(st);
    int found;
    char *oldkey;
    struct schema *old = stored_schema(s, ds->name, &oldkey, &found, why, whylen);
    return store_dataset_verdict(ds, found, old, oldkey, why, whylen);
}

int sqlite_dataset_sync(struct store *st, const struct dataset_config *ds, char *why, size_t whylen)
{
    struct sqlite_store *s = SQ(st);
    struct buf sql;
    int rc = -1, found;
    char *oldkey = NULL;
    struct schema *old = NULL;
    char *schema_txt = NULL;
    buf_init(&sql, 1 << 20);

    if (sqlite_dataset_check(st, ds, why, whylen) < 0)
        return -1;
    if (exec(s, "SAVEPOINT ds_sync") < 0)
        goto fail;
    old = stored_schema(s, ds->name, &oldkey, &found, why, whylen);
    int kind = sqlite_dataset_kind(s, ds->name), added = 0;
    if (kind < 0)
        goto fail_rb;
    if (kind == 1) /* a table from before the view: its rows stay, renamed (O(1)) */
        buf_printf(&sql, "ALTER TABLE \"ds_%s\" RENAME TO \"" SQLITE_ROWS "%s\";", ds->name,
                   ds->name);
    if (!found) {
        buf_printf(&sql,
                   "CREATE TABLE IF NOT EXISTS \"" SQLITE_ROWS "%s\" (_id INTEGER PRIMARY KEY,"
                   " _ingest_id TEXT NOT NULL, _source TEXT, _received_at TEXT NOT NULL,"
                   " _extra TEXT, _batch_id TEXT",
                   ds->name);
        for (size_t i = 0; i < schema_nfields(ds->schema); i++)
            buf_printf(&sql, ", \"%s\" %s", schema_field_name(ds->schema, i),
                       sql_type(schema_field_type(ds->schema, i)));
        buf_appends(&sql, ");");
        if (ds->key_fields.n) {
            buf_printf(&sql,
                       "CREATE UNIQUE INDEX IF NOT EXISTS \"ds_%s_key\" ON \"" SQLITE_ROWS "%s\"(",
                       ds->name, ds->name);
            table_key_columns(&sql, ds->schema, &ds->key_fields);
            buf_appends(&sql, ");");
        }
    } else {
        for (size_t i = 0; i < schema_nfields(ds->schema); i++) {
            const char *f = schema_field_name(ds->schema, i);
            if (old && schema_field_index(old, f) >= 0)
                continue;
            added = 1;
            buf_printf(&sql, "ALTER TABLE \"" SQLITE_ROWS "%s\" ADD COLUMN \"%s\" %s;", ds->name, f,
                       sql_type(schema_field_type(ds->schema, i)));
        }
    }
    /* A batch's rows are found by their rowid range (batches.rows_first/last). An
     * upsert updates rows in place under their old rowids, so upsert datasets index
     * _batch_id instead; a dataset that stops upserting drops the index, and its
     * batches are found by a scan from then on (rows_tracked = 0). */
    if (ds->on_duplicate == ON_DUP_UPSERT) {
        buf_printf(&sql,
                   "CREATE INDEX IF NOT EXISTS \"ds_%s_batch\" ON \"" SQLITE_ROWS "%s\"(_batch_id)"
                   " WHERE _batch_id IS NOT NULL;",
                   ds->name, ds->name);
    } else if (found && sqlite_has_batch_index(s, ds->name)) {
        buf_printf(&sql, "DROP INDEX \"ds_%s_batch\";", ds->name);
        buf_printf(&sql, "UPDATE batches SET rows_tracked = 0 WHERE dataset = '%s';", ds->name);
    }
    if (sql.len && exec(s, sql.data) < 0)
        goto fail_rb;
    int upsert = ds->on_duplicate == ON_DUP_UPSERT, saved = sqlite_has_saved(s, ds->name);
    if (saved < 0 || ((kind != 2 || added || (upsert && !saved)) &&
                      sqlite_dataset_view(s, ds->name, upsert) < 0))
        goto fail_rb;
    /* saved versions of batches no longer pending (a crash between a batch's publication and
     * their removal) are nobody's */
    if (saved) {
        buf_reset(&sql);
        buf_printf(&sql,
                   "DELETE FROM \"" SQLITE_SAVED "%s\" WHERE _pending NOT IN"
                   " (SELECT batch_id FROM batch_pending)",
                   ds->name);
        if (exec(s, sql.data) < 0)
            goto fail_rb;
    }
    schema_txt = json_dumps(ds->schema_json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO datasets(name, key, schema, updated_ms) VALUES (?,?,?,"
                           " CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)) ON "
                           "CONFLICT(name) DO UPDATE"
                           " SET key = excluded.key, schema = excluded.schema,"
                           " updated_ms = excluded.updated_ms",
                           -1, &q, NULL) != SQLITE_OK) {
        fail(s, "dataset");
        goto fail_rb;
    }
    sqlite3_bind_text(q, 1, ds->name, -1, SQLITE_TRANSIENT);
    if (ds->key)
        sqlite3_bind_text(q, 2, ds->key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, schema_txt, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(q);
    sqlite3_finalize(q);
    if (step != SQLITE_DONE) {
        fail(s, "dataset");
        goto fail_rb;
    }
    if (exec(s, "RELEASE ds_sync") < 0)
        goto fail;
    drop_stmt(s, ds->name);
    rc = 0;
    goto out;
fail_rb:
    exec(s, "ROLLBACK TO ds_sync");
    exec(s, "RELEASE ds_sync");
fail:
    snprintf(why, whylen, "dataset '%s': %s", ds->name, s->err);
out:
    free(schema_txt);
    schema_destroy(old);
    free(oldkey);
    buf_release(&sql);
    return rc;
}

/* ---- transactions ------------------------------------------------------ */

/* Transaction control runs once or twice per writer job: prepared once, not
 * parsed again every time as sqlite3_exec() would. */
enum tx_cmd { TX_BEGIN, TX_COMMIT, TX_ROLLBACK, TX_SAVEPOINT, TX_RELEASE, TX_ROLLBACK_TO, TX__N };

static int tx(struct sqlite_store *s, enum tx_cmd c)
{
    static const char *const sql[TX__N] = {"BEGIN IMMEDIATE", "COMMIT",      "ROLLBACK",
                                           "SAVEPOINT job",   "RELEASE job", "ROLLBACK TO job"};
    if (!s->tx[c] && sqlite3_prepare_v3(s->db, sql[c], -1, SQLITE_PREPARE_PERSISTENT, &s->tx[c],
                                        NULL) != SQLITE_OK)
        return fail(s, sql[c]);
    int rc = sqlite3_step(s->tx[c]);
    sqlite3_reset(s->tx[c]);
    return rc == SQLITE_DONE ? 0 : fail(s, sql[c]);
}

int sqlite_begin(struct store *st)
{
    SQ(st)->fault = SQ(st)->busy = 0;
    return tx(SQ(st), TX_BEGIN);
}
int sqlite_commit(struct store *st)
{
    if (sqlite_batch_range_flush(SQ(st)) < 0 || sqlite_roll_flush(SQ(st)) < 0)
        return -1;
    return tx(SQ(st), TX_COMMIT);
}
int sqlite_rollback(struct store *st)
{
    SQ(st)->range.used = 0; /* its rows are gone with the rest */
    sqlite_roll_drop_all(SQ(st));
    return tx(SQ(st), TX_ROLLBACK);
}
int sqlite_savepoint(struct store *st)
{
    /* Ranges noted before belong outside the savepoint: a rollback to it must not undo them. */
    SQ(st)->fault = SQ(st)->busy = 0;
    if (sqlite_batch_range_flush(SQ(st)) < 0)
        return -1;
    return tx(SQ(st), TX_SAVEPOINT);
}
int sqlite_savepoint_release(struct store *st)
{
    sqlite_roll_keep_job(SQ(st));
    return tx(SQ(st), TX_RELEASE);
}
int sqlite_savepoint_rollback(struct store *st)
{
    SQ(st)->range.used = 0; /* noted inside the savepoint: those rows are undone */
    sqlite_roll_drop_job(SQ(st));
    return tx(SQ(st), TX_ROLLBACK_TO) < 0 ? -1 : tx(SQ(st), TX_RELEASE);
}

/* ---- rows -------------------------------------------------------------- */

static struct ds_stmt *put_stmt(struct sqlite_store *s, const struct dataset_config *ds)
{
    for (struct ds_stmt *d = s->stmts; d; d = d->next)
        if (strcmp(d->name, ds->name) == 0) {
            if (d->schema == ds->schema)
                return d;
            drop_stmt(s, ds->name);
            break;
        }
    struct buf sql;
    buf_init(&sql, 1 << 20);
    size_t n = schema_nfields(ds->schema);
    buf_printf(&sql,
               "INSERT INTO \"" SQLITE_ROWS "%s\" (_ingest_id, _source, _received_at, _extra,"
               " _batch_id",
               ds->name);
    for (size_t i = 0; i < n; i++)
        buf_printf(&sql, ", \"%s\"", schema_field_name(ds->schema, i));
    buf_appends(&sql, ") VALUES (?,?,?,?,?");
    for (size_t i = 0; i < n; i++)
        buf_appends(&sql, ",?");
    buf_appends(&sql, ")");
    if (ds->key_fields.n) {
        buf_appends(&sql, " ON CONFLICT(");
        table_key_columns(&sql, ds->schema, &ds->key_fields);
        if (ds->on_duplicate == ON_DUP_UPSERT) {
            buf_appends(&sql, ") DO UPDATE SET _ingest_id = excluded._ingest_id,"
                              " _source = excluded._source, _received_at = excluded._received_at,"
                              " _extra = excluded._extra, _batch_id = excluded._batch_id");
            for (size_t i = 0; i < n; i++)
                buf_printf(&sql, ", \"%s\" = excluded.\"%s\"", schema_field_name(ds->schema, i),
                           schema_field_name(ds->schema, i));
            /* never a row of a batch still hidden, but the row's own batch's (key_hidden) */
            buf_printf(&sql,
                       " WHERE \"" SQLITE_ROWS "%s\"._batch_id IS NULL OR \"" SQLITE_ROWS
                       "%s\"._batch_id IS excluded._batch_id OR \"" SQLITE_ROWS
                       "%s\"._batch_id NOT IN (SELECT batch_id FROM batch_pending)",
                       ds->name, ds->name, ds->name);
        } else {
            buf_appends(&sql, ") DO NOTHING");
        }
    }
    struct ds_stmt *d = sl_calloc(1, sizeof *d);
    if (!d || sqlite3_prepare_v3(s->db, sql.data, -1, SQLITE_PREPARE_PERSISTENT, &d->put, NULL) !=
                  SQLITE_OK) {
        fail(s, "prepare insert");
        free(d);
        buf_release(&sql);
        return NULL;
    }
    buf_release(&sql);
    d->name = sl_strdup(ds->name);
    d->schema = ds->schema;
    d->next = s->stmts;
    s->stmts = d;
    return d;
}

static void bind_value(sqlite3_stmt *q, int col, const struct row_value *v);

/*
 * A row of ds that found its key stored: 1 when the row holding it belongs to a batch being
 * stored in slices other than the row's own (m->batch_id), which readers do not see yet:
 * not a duplicate of anything stored, but a write to wait for (store.h busy). At most one
 * such batch per keyed dataset is under way (sqlite_batch_claim), and a batch's rows are
 * not hidden from its own pass (a key twice in one file is a duplicate, as always).
 */
static int key_hidden(struct sqlite_store *s, struct ds_stmt *d, const struct dataset_config *ds,
                      const struct row_meta *m, const struct row_value *v)
{
    if (!d->hidden) {
        struct buf sql;
        buf_init(&sql, 1 << 16);
        buf_printf(&sql, "SELECT 1 FROM \"" SQLITE_ROWS "%s\" WHERE ", ds->name);
        for (size_t i = 0; i < ds->key_fields.n; i++)
            buf_printf(&sql, "%s\"%s\" = ?%zu", i ? " AND " : "",
                       schema_field_name(ds->schema, ds->key_fields.field[i]), i + 1);
        buf_printf(&sql,
                   " AND _batch_id IN (SELECT batch_id FROM batch_pending)"
                   " AND _batch_id IS NOT ?%zu LIMIT 1",
                   ds->key_fields.n + 1);
        int rc =
            sqlite3_prepare_v3(s->db, sql.data, -1, SQLITE_PREPARE_PERSISTENT, &d->hidden, NULL);
        buf_release(&sql);
        if (rc != SQLITE_OK)
            return fail(s, "key check");
    }
    sqlite3_stmt *q = d->hidden;
    for (size_t i = 0; i < ds->key_fields.n; i++)
        bind_value(q, (int)i + 1, &v[ds->key_fields.field[i]]);
    if (m->batch_id)
        sqlite3_bind_text(q, (int)ds->key_fields.n + 1, m->batch_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, (int)ds->key_fields.n + 1);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail(s, "key check");
    return rc == SQLITE_ROW;
}

static void bind_value(sqlite3_stmt *q, int col, const struct row_value *v)
{
    switch (v->kind) {
    case VAL_ABSENT:
    case VAL_NULL:
    case VAL_ARRAY: /* never in a valid row */
    case VAL_OBJECT:
        sqlite3_bind_null(q, col);
        break;
    case VAL_TEXT:
        sqlite3_bind_text(q, col, v->u.s.p, (int)v->u.s.n, SQLITE_STATIC);
        break;
    case VAL_INT:
        sqlite3_bind_int64(q, col, v->u.i);
        break;
    case VAL_REAL:
        sqlite3_bind_double(q, col, v->u.d);
        break;
    case VAL_BOOL:
        sqlite3_bind_int(q, col, v->u.b);
        break;
    }
}

int sqlite_row_put_values(struct store *st, const struct dataset_config *ds,
                          const struct row_meta *m, const struct row_value *v,
                          const char *extra_txt, enum row_result *res)
{
    struct sqlite_store *s = SQ(st);
    struct ds_stmt *d = put_stmt(s, ds);
    if (!d)
        return -1;
    sqlite3_stmt *q = d->put;
    sqlite3_bind_text(q, 1, m->ingest_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, m->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, m->received_at, -1, SQLITE_STATIC);
    if (extra_txt)
        sqlite3_bind_text(q, 4, extra_txt, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 4);
    if (m->batch_id)
        sqlite3_bind_text(q, 5, m->batch_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 5);
    size_t n = schema_nfields(ds->schema);
    for (size_t i = 0; i < n; i++)
        bind_value(q, (int)i + 6, &v[i]);
    int rc = sqlite3_step(q);
    int changes = sqlite3_changes(s->db);
    sqlite3_reset(q); /* every parameter is bound again for the next row */
    if (rc != SQLITE_DONE)
        return fail(s, "insert");
    /* An upsert's update keeps its old rowid: upsert datasets index _batch_id instead. */
    if (m->batch_id && changes && ds->on_duplicate != ON_DUP_UPSERT &&
        sqlite_batch_range_note(s, m->batch_id, sqlite3_last_insert_rowid(s->db)) < 0)
        return -1;
    if (!ds->key_fields.n || changes)
        /* SQLite reports 1 change for both paths of an upsert; the caller
         * counts both as accepted, which is what the API promises. */
        *res = ROW_INSERTED;
    else { /* a duplicate, or (skip, reject and upsert alike) a key a hidden batch holds */
        int h = key_hidden(s, d, ds, m, v);
        if (h < 0)
            return -1;
        if (h) {
            s->fault = 0;
            s->busy = 1;
            snprintf(s->err, sizeof s->err,
                     "insert: the row's key is held by a batch of %s that is being stored",
                     ds->name);
            return -1;
        }
        *res = ROW_DUPLICATE;
    }
    return 0;
}

int sqlite_nomem(struct store *st)
{
    return fail(SQ(st), "out of memory");
}

int64_t sqlite_row_count(struct store *st, const char *dataset)
{
    struct sqlite_store *s = SQ(st);
    char sql[200];
    sqlite3_stmt *q;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"ds_%s\"", dataset);
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return fail(s, "count");
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    return n;
}

/* ---- DLQ ----------------------------------------------------------------- */

int sqlite_dlq_add(struct store *st, const struct dlq_new *e, int64_t *id)
{
    struct sqlite_store *s = SQ(st);
    /* A batch stored in slices keeps its entries in dlq_staged until it is published
     * (sqlite_batch_publish): the DLQ shows them with its rows, not before. */
    static const char *const sql[2] = {
        "INSERT INTO dlq(dataset, ingest_id, source, row_no, payload, errors, codes,"
        " received_ms, updated_ms, batch_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
        "INSERT INTO dlq_staged(dataset, ingest_id, source, row_no, payload, errors, codes,"
        " received_ms, updated_ms, batch_id) VALUES (?,?,?,?,?,?,?,?,?,?)"};
    int staged = e->staged && e->batch_id;
    if (!s->dlq_add_q[staged] &&
        sqlite3_prepare_v3(s->db, sql[staged], -1, SQLITE_PREPARE_PERSISTENT, &s->dlq_add_q[staged],
                           NULL) != SQLITE_OK)
        return fail(s, "dlq insert");
    sqlite3_stmt *q = s->dlq_add_q[staged];
    sqlite3_bind_text(q, 1, e->dataset, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, e->ingest_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, e->source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, e->row);
    sqlite3_bind_blob(q, 5, e->payload_len ? e->payload : "", (int)e->payload_len, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, e->errors_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 7, e->codes, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 8, e->received_ms);
    sqlite3_bind_int64(q, 9, e->received_ms);
    if (e->batch_id)
        sqlite3_bind_text(q, 10, e->batch_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 10);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return fail(s, "dlq insert");
    if (id)
        *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

#define DLQ_COLS                                                                                   \
    "id, dataset, ingest_id, source, row_no, payload, errors, received_ms, updated_ms,"            \
    " attempts, status, batch_id"

/* The row q is on into e (owned strings). -1 when out of memory (e is then released). */
static int read_entry(sqlite3_stmt *q, struct dlq_entry *e)
{
    int oom = 0;
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(q, 0);
    e->dataset = sqlite_col_dup(q, 1, &oom);
    e->ingest_id = sqlite_col_dup(q, 2, &oom);
    e->source = sqlite_col_dup(q, 3, &oom);
    e->row = sqlite3_column_int64(q, 4);
    const void *p = sqlite3_column_blob(q, 5);
    e->payload_len = (size_t)sqlite3_column_bytes(q, 5);
    e->payload = sl_malloc(e->payload_len + 1);
    if (e->payload) {
        if (e->payload_len)
            memcpy(e->payload, p, e->payload_len);
        e->payload[e->payload_len] = 0;
    }
    e->errors_json = sqlite_col_dup(q, 6, &oom);
    e->received_ms = sqlite3_column_int64(q, 7);
    e->updated_ms = sqlite3_column_int64(q, 8);
    e->attempts = sqlite3_column_int(q, 9);
    snprintf(e->status, sizeof e->status, "%s", (const char *)sqlite3_column_text(q, 10));
    e->batch_id = sqlite_col_dup(q, 11, &oom);
    if (oom || !e->payload) {
        dlq_entry_release(e);
        return -1;
    }
    return 0;
}

int sqlite_dlq_get(struct store *st, int64_t id, struct dlq_entry *out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT " DLQ_COLS " FROM dlq WHERE id = ?", -1, &q, NULL) !=
        SQLITE_OK)
        return fail(s, "dlq get");
    sqlite3_bind_int64(q, 1, id);
    int rc = sqlite3_step(q), mem = 0;
    if (rc == SQLITE_ROW)
        mem = read_entry(q, out);
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW)
        return mem < 0 ? sqlite_oom(s, "dlq get") : 0;
    return rc == SQLITE_DONE ? 1 : fail(s, "dlq get");
}

/* The DLQ query of f, prepared and bound: its entries (count = 0) or how many there are
 * (count = 1, which ignores the order and limit). NULL after fail(). */
static sqlite3_stmt *dlq_query(struct sqlite_store *s, const struct dlq_filter *f, int count)
{
    struct buf sql;
    buf_init(&sql, 1 << 20);
    /* keyset on id, either way: a range on the rowid whatever the page */
    buf_appends(&sql, count ? "SELECT count(*) FROM dlq" : "SELECT " DLQ_COLS " FROM dlq");
    buf_appends(&sql, f->desc ? " WHERE id < ?1" : " WHERE id > ?1");
    if (f->received_after_ms)
        buf_appends(&sql, " AND received_ms >= ?6");
    if (f->received_before_ms)
        buf_appends(&sql, " AND received_ms < ?7");
    if (f->dataset)
        buf_appends(&sql, " AND dataset = ?2");
    if (f->error_code)
        buf_appends(&sql, " AND instr(codes, ',' || ?3 || ',') > 0");
    if (f->status)
        buf_appends(&sql, " AND status = ?4");
    if (f->ids) {
        buf_appends(&sql, " AND id IN (");
        for (size_t i = 0; i < f->nids; i++)
            buf_printf(&sql, "%s%lld", i ? "," : "", (long long)f->ids[i]);
        buf_appends(&sql, ")");
    }
    if (!count)
        buf_appends(&sql, f->desc ? " ORDER BY id DESC LIMIT ?5" : " ORDER BY id LIMIT ?5");
    sqlite3_stmt *q;
    if (!sql.data || sqlite3_prepare_v2(s->db, sql.data, -1, &q, NULL) != SQLITE_OK) {
        buf_release(&sql);
        fail(s, "dlq list");
        return NULL;
    }
    buf_release(&sql);
    sqlite3_bind_int64(q, 1, f->desc && !f->after_id ? INT64_MAX : f->after_id);
    if (f->received_after_ms)
        sqlite3_bind_int64(q, 6, f->received_after_ms);
    if (f->received_before_ms)
        sqlite3_bind_int64(q, 7, f->received_before_ms);
    if (f->dataset)
        sqlite3_bind_text(q, 2, f->dataset, -1, SQLITE_STATIC);
    if (f->error_code)
        sqlite3_bind_text(q, 3, f->error_code, -1, SQLITE_STATIC);
    if (f->status)
        sqlite3_bind_text(q, 4, f->status, -1, SQLITE_STATIC);
    if (!count)
        sqlite3_bind_int(q, 5, f->limit);
    return q;
}

int sqlite_dlq_count(struct store *st, const struct dlq_filter *f, int64_t *n)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q = dlq_query(s, f, 1);
    if (!q)
        return -1;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : fail(s, "dlq count");
}

int sqlite_dlq_list(struct store *st, const struct dlq_filter *f, struct dlq_entry **out, size_t *n)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q = dlq_query(s, f, 0);
    if (!q)
        return -1;
    size_t cap = 16, cnt = 0;
    struct dlq_entry *v = sl_malloc(cap * sizeof *v);
    int rc = SQLITE_DONE, mem = v ? 0 : -1;
    while (mem == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (cnt == cap) {
            struct dlq_entry *nv = sl_realloc(v, 2 * cap * sizeof *v);
            if ((mem = nv ? 0 : -1) < 0)
                break;
            v = nv;
            cap *= 2;
        }
        cnt += (mem = read_entry(q, &v[cnt])) == 0;
    }
    sqlite3_finalize(q);
    if (mem < 0 || rc != SQLITE_DONE) {
        for (size_t i = 0; v && i < cnt; i++)
            dlq_entry_release(&v[i]);
        free(v);
        return mem < 0 ? sqlite_oom(s, "dlq list") : fail(s, "dlq list");
    }
    *out = v;
    *n = cnt;
    return 0;
}

int sqlite_dlq_set(struct store *st, int64_t id, const char *status, int attempts,
                   const char *errors_json, const char *codes, int64_t now_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE dlq SET status = ?2, attempts = ?3,"
                           " errors = coalesce(?4, errors), codes = coalesce(?5, codes),"
                           " updated_ms = ?6 WHERE id = ?1",
                           -1, &q, NULL) != SQLITE_OK)
        return fail(s, "dlq update");
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, status, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, attempts);
    if (errors_json)
        sqlite3_bind_text(q, 4, errors_json, -1, SQLITE_STATIC);
    if (codes)
        sqlite3_bind_text(q, 5, codes, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, now_ms);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : fail(s, "dlq update");
}

int sqlite_dlq_depth(struct store *st, json_t **by_dataset)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(
            s->db, "SELECT dataset, count(*) FROM dlq WHERE status = 'open' GROUP BY dataset", -1,
            &q, NULL) != SQLITE_OK)
        return fail(s, "dlq depth");
    json_t *o = json_object();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        json_object_set_new(o, (const char *)sqlite3_column_text(q, 0),
                            json_integer(sqlite3_column_int64(q, 1)));
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        json_decref(o);
        return fail(s, "dlq depth");
    }
    *by_dataset = o;
    return 0;
}

/* ---- idempotency --------------------------------------------------------- */

int sqlite_idem_get(struct store *st, const char *dataset, const char *key, struct idem_record *out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v3(s->db,
                           "SELECT sha256, status, response, created_ms FROM idempotency"
                           " WHERE dataset = ? AND key = ?",
                           -1, SQLITE_PREPARE_PERSISTENT, &q, NULL) != SQLITE_OK)
        return fail(s, "idempotency");
    sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q), oom = 0;
    if (rc == SQLITE_ROW) {
        snprintf(out->sha256, sizeof out->sha256, "%s", (const char *)sqlite3_column_text(q, 0));
        out->status = sqlite3_column_int(q, 1);
        out->response = sqlite_col_dup(q, 2, &oom);
        out->created_ms = sqlite3_column_int64(q, 3);
    }
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW)
        return oom ? sqlite_oom(s, "idempotency") : 0;
    return rc == SQLITE_DONE ? 1 : fail(s, "idempotency");
}

int sqlite_idem_put(struct store *st, const char *dataset, const char *key, const char *sha256,
                    int status, const char *response, int64_t now_ms, int64_t live_after_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO idempotency(dataset, key, sha256, status, response,"
                           " created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (dataset, key)"
                           " DO UPDATE SET sha256 = ?3, status = ?4, response = ?5,"
                           " created_ms = ?6 WHERE created_ms < ?7",
                           -1, &q, NULL) != SQLITE_OK)
        return fail(s, "idempotency");
    sqlite3_bind_int64(q, 7, live_after_ms);
    sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 4, status);
    sqlite3_bind_text(q, 5, response, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, now_ms);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return fail(s, "idempotency");
    return sqlite3_changes(s->db) == 0 ? 1 : 0; /* a live record: left as it is */
}

int sqlite_idem_purge(struct store *st, int64_t older_than_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM idempotency WHERE created_ms < ?", -1, &q, NULL) !=
        SQLITE_OK)
        return fail(s, "idempotency purge");
    sqlite3_bind_int64(q, 1, older_than_ms);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : fail(s, "idempotency purge");
}

/* ---- open ---------------------------------------------------------------- */

/* A read connection's statements, timed for the query observer (store.h): from their
 * first step (SQLITE_TRACE_STMT) to their end (SQLITE_TRACE_PROFILE, whose own time is
 * in whole milliseconds in older SQLite). A few statements may run at once (one read
 * while another is stepped): each has its slot. */
static int on_trace(unsigned type, void *arg, void *stmt, void *x)
{
    struct sqlite_store *s = arg;
    size_t n = sizeof s->timing / sizeof s->timing[0], i;
    for (i = 0; i < n && s->timing[i].stmt != stmt; i++)
        ;
    if (type == SQLITE_TRACE_STMT) {
        const char *sql = x;
        if (i < n && sql && !strncmp(sql, "--", 2)) /* a trigger's subprogram */
            return 0;
        for (i = i < n ? i : 0; i < n && s->timing[i].stmt && s->timing[i].stmt != stmt; i++)
            ;
        if (i < n)
            s->timing[i] = (struct stmt_timing){stmt, clock_mono_ns()};
    } else if (type == SQLITE_TRACE_PROFILE && i < n) {
        store_observe_query((double)(clock_mono_ns() - s->timing[i].t0_ns) / 1e9);
        s->timing[i].stmt = NULL;
    }
    return 0;
}

struct store *sqlite_open(const char *path, int readonly, char *err, size_t errlen)
{
    struct sqlite_store *s = sl_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &store_sqlite_ops;
    /* A read connection never creates the database: opened after the file was deleted, it
     * would put an empty store in its place. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (readonly ? 0 : SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, sqlite3_errmsg(s->db));
        sqlite3_close(s->db);
        free(s);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, 5000);
    sqlite3_extended_result_codes(s->db, 1);
    file_id(s->db, &s->dev, &s->ino);
    /* WAL + synchronous=FULL: a COMMIT fsyncs the WAL before it returns, which
     * is what makes a 2xx mean "on disk". */
    const char *pragmas = readonly ? "PRAGMA journal_mode=WAL; PRAGMA query_only=1;"
                                   : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                     " PRAGMA foreign_keys=ON; PRAGMA cache_size=-32768;"
                                     " PRAGMA journal_size_limit=67108864;";
    if (exec(s, pragmas) < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, s->err);
        sqlite3_close(s->db);
        free(s);
        return NULL;
    }
    if (!readonly)
        s->ckpt = sqlite_ckpt_start(path, s->db);
    else
        sqlite3_trace_v2(s->db, SQLITE_TRACE_STMT | SQLITE_TRACE_PROFILE, on_trace, s);
    return &s->base;
}
