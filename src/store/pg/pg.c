/*
 * pg.c - the PostgreSQL backend's core operations: dataset tables and
 * their evolution, transactions and savepoints, rows, the DLQ and idempotency
 * records. They mean what sqlite.c's do (store.h has the contracts).
 *
 * Two differences from SQLite shape the code. A failed statement aborts the
 * whole PostgreSQL transaction, so what can be checked in C (a dataset's
 * table exists, a text value holds no NUL byte) is checked before any SQL is
 * sent. And every dataset table indexes _batch_id: rows are found by it, not by
 * a rowid range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_internal.h"
#include "util/buf.h"
#include "util/mem.h"

/* PostgreSQL keeps at most 63 bytes of an identifier; the longest we derive from a
 * dataset's name is "ds_<name>_batch". */
#define PG_IDENT_MAX 63
#define PG_NAME_MAX ((int)(PG_IDENT_MAX - sizeof "ds__batch" + 1))

/* The lock dataset_sync holds until its transaction ends, so nodes starting together do
 * not create or alter the same table at once (pg_migrate uses 7415962301). */
#define PG_SYNC_LOCK "7415962302"

/* Whether name can be part of a quoted identifier as config_load allows it. */
static int valid_name(const char *name)
{
    if (!name || !*name)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

/* ---- datasets ---------------------------------------------------------- */

static const char *sql_type(enum field_type t)
{
    switch (t) {
    case FT_STRING:
        return "TEXT";
    case FT_INTEGER:
    case FT_BOOLEAN: /* 0/1, as SQLite stores it */
        return "BIGINT";
    case FT_NUMBER:
        return "DOUBLE PRECISION";
    }
    return "TEXT";
}

/* The stored schema of a dataset, compiled (NULL when it cannot be read), and its key
 * (caller frees both). *found = 0 when the dataset was never synced. -1 on a query error,
 * with the reason in why. */
static int stored_schema(struct pg_store *s, const char *name, struct schema **old, char **key,
                         int *found, char *why, size_t whylen)
{
    *old = NULL;
    *key = NULL;
    *found = 0;
    const char *p[1] = {name};
    PGresult *r = pg_exec(s, "dataset", "SELECT schema, key FROM datasets WHERE name = $1", 1, p);
    if (!r) {
        snprintf(why, whylen, "dataset '%s': %s", name, s->err);
        return -1;
    }
    if (PQntuples(r) > 0) {
        *found = 1;
        json_error_t jerr;
        json_t *j = json_loads(PQgetvalue(r, 0, 0), 0, &jerr);
        if (j) {
            char cerr[256];
            *old = schema_compile(j, cerr, sizeof cerr);
            json_decref(j);
        }
        *key = pg_get_str(r, 0, 1);
    }
    PQclear(r);
    return 0;
}

int pg_dataset_check(struct store *st, const struct dataset_config *ds, char *why, size_t whylen)
{
    struct pg_store *s = PG(st);
    if (!valid_name(ds->name)) {
        snprintf(why, whylen, "dataset '%s': not a valid name", ds->name);
        return -1;
    }
    if ((int)strlen(ds->name) > PG_NAME_MAX) {
        snprintf(why, whylen,
                 "dataset '%s': the name is too long for PostgreSQL (at most %d characters)",
                 ds->name, PG_NAME_MAX);
        return -1;
    }
    int found;
    char *oldkey;
    struct schema *old;
    if (stored_schema(s, ds->name, &old, &oldkey, &found, why, whylen) < 0)
        return -1;
    return store_dataset_verdict(ds, found, old, oldkey, why, whylen);
}

/* Run the DDL of a sync: the table and its indexes for a new dataset, else the columns of
 * the fields added since the stored schema old. */
static int sync_ddl(struct pg_store *s, const struct dataset_config *ds, int found,
                    const struct schema *old)
{
    struct buf sql;
    int rc = 0;
    buf_init(&sql, 1 << 20);
    if (!found) {
        buf_printf(&sql,
                   "CREATE TABLE IF NOT EXISTS \"ds_%s\" (_id BIGSERIAL PRIMARY KEY,"
                   " _ingest_id TEXT NOT NULL, _source TEXT, _received_at TEXT NOT NULL,"
                   " _extra TEXT, _batch_id TEXT",
                   ds->name);
        for (size_t i = 0; i < schema_nfields(ds->schema); i++)
            buf_printf(&sql, ", \"%s\" %s", schema_field_name(ds->schema, i),
                       sql_type(schema_field_type(ds->schema, i)));
        rc = buf_appends(&sql, ")") < 0 ? -1 : pg_cmd(s, "dataset", sql.data, 0, NULL);
        if (rc == 0 && ds->key_fields.n) {
            buf_reset(&sql);
            int bad =
                buf_printf(&sql, "CREATE UNIQUE INDEX IF NOT EXISTS \"ds_%s_key\" ON \"ds_%s\"(",
                           ds->name, ds->name);
            bad |= table_key_columns(&sql, ds->schema, &ds->key_fields);
            bad |= buf_appends(&sql, ")");
            rc = bad ? -1 : pg_cmd(s, "dataset", sql.data, 0, NULL);
        }
        if (rc == 0) {
            buf_reset(&sql);
            buf_printf(&sql,
                       "CREATE INDEX IF NOT EXISTS \"ds_%s_batch\" ON \"ds_%s\"(_batch_id)"
                       " WHERE _batch_id IS NOT NULL",
                       ds->name, ds->name);
            rc = pg_cmd(s, "dataset", sql.data, 0, NULL);
        }
    } else {
        for (size_t i = 0; rc == 0 && i < schema_nfields(ds->schema); i++) {
            const char *f = schema_field_name(ds->schema, i);
            if (old && schema_field_index(old, f) >= 0)
                continue;
            buf_reset(&sql);
            buf_printf(&sql, "ALTER TABLE \"ds_%s\" ADD COLUMN IF NOT EXISTS \"%s\" %s", ds->name,
                       f, sql_type(schema_field_type(ds->schema, i)));
            rc = pg_cmd(s, "dataset", sql.data, 0, NULL);
        }
    }
    buf_release(&sql);
    return rc;
}

int pg_dataset_sync(struct store *st, const struct dataset_config *ds, char *why, size_t whylen)
{
    struct pg_store *s = PG(st);
    int rc = -1, found;
    char *oldkey = NULL, *schema_txt = NULL;
    struct schema *old = NULL;
    /* Inside a caller's transaction the sync is a savepoint; alone it is its own. */
    int alone = PQtransactionStatus(s->conn) == PQTRANS_IDLE;

    if (pg_cmd(s, "dataset", alone ? "BEGIN" : "SAVEPOINT ds_sync", 0, NULL) < 0) {
        snprintf(why, whylen, "dataset '%s': %s", ds->name, s->err);
        return -1;
    }
    if (pg_cmd(s, "dataset lock", "SELECT pg_advisory_xact_lock(" PG_SYNC_LOCK ")", 0, NULL) < 0)
        goto fail;
    /* Checked under the lock: what another node stored meanwhile counts. */
    if (pg_dataset_check(st, ds, why, whylen) < 0 ||
        stored_schema(s, ds->name, &old, &oldkey, &found, why, whylen) < 0)
        goto undo;
    if (sync_ddl(s, ds, found, old) < 0)
        goto fail;
    schema_txt = json_dumps(ds->schema_json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!schema_txt) {
        snprintf(s->err, sizeof s->err, "dataset: the schema cannot be written as JSON");
        goto fail;
    }
    const char *p[3] = {ds->name, ds->key, schema_txt};
    if (pg_cmd(s, "dataset",
               "INSERT INTO datasets(name, key, schema, updated_ms) VALUES ($1, $2, $3,"
               " (extract(epoch from clock_timestamp()) * 1000)::bigint)"
               " ON CONFLICT (name) DO UPDATE SET key = EXCLUDED.key, schema = EXCLUDED.schema,"
               " updated_ms = EXCLUDED.updated_ms",
               3, p) < 0)
        goto fail;
    if (pg_cmd(s, "dataset", alone ? "COMMIT" : "RELEASE ds_sync", 0, NULL) < 0) {
        snprintf(why, whylen, "dataset '%s': %s", ds->name, s->err);
        goto out;
    }
    rc = 0;
    goto out;
fail:
    snprintf(why, whylen, "dataset '%s': %s", ds->name, s->err);
undo:
    pg_copy_discard(s);
    PQclear(PQexec(s->conn, alone ? "ROLLBACK" : "ROLLBACK TO ds_sync; RELEASE ds_sync"));
out:
    free(schema_txt);
    schema_destroy(old);
    free(oldkey);
    return rc;
}

/* ---- transactions ------------------------------------------------------ */

int pg_begin(struct store *st)
{
    struct pg_store *s = PG(st);
    /* A connection lost since the last transaction is opened again here, so the writer
     * recovers by itself once the database is back (the jobs in between fail with 503). */
    s->fault = s->busy = 0;
    if (PQstatus(s->conn) != CONNECTION_OK && pg_reconnect(s) < 0)
        return -1;
    pg_copy_discard(s);
    pg_roll_drop_all(s);
    s->sp = PG_SP_NONE;
    return pg_cmd(s, "BEGIN", "BEGIN", 0, NULL);
}

int pg_commit(struct store *st)
{
    struct pg_store *s = PG(st);
    s->sp = PG_SP_NONE;
    /* The group's rollups and queued rows, then COMMIT. */
    if (pg_roll_flush(s) < 0 || pg_copy_flush(s) < 0)
        return -1;
    if (PQstatus(s->conn) != CONNECTION_OK) /* lost before: the server rolled it back */
        return pg_fail(s, "COMMIT");
    if (pg_cmd(s, "COMMIT", "COMMIT", 0, NULL) == 0)
        return 0;
    /* Lost with no answer: the server may have committed before the connection went. */
    return PQstatus(s->conn) == CONNECTION_BAD ? STORE_COMMIT_UNKNOWN : -1;
}

int pg_rollback(struct store *st)
{
    struct pg_store *s = PG(st);
    pg_copy_discard(s);
    pg_roll_drop_all(s);
    s->sp = PG_SP_NONE;
    return pg_cmd(s, "ROLLBACK", "ROLLBACK", 0, NULL);
}

/* A job's savepoint is only noted; see pg_copy.c for when it is sent. */
int pg_savepoint(struct store *st)
{
    struct pg_store *s = PG(st);
    s->fault = s->busy = 0;
    pg_roll_keep_job(s);
    return pg_copy_savepoint(s);
}

int pg_savepoint_release(struct store *st)
{
    struct pg_store *s = PG(st);
    int sent = s->sp == PG_SP_SENT;
    s->sp = PG_SP_NONE;
    pg_roll_keep_job(s);
    return sent ? pg_cmd(s, "RELEASE job", "RELEASE job", 0, NULL) : 0;
}

int pg_savepoint_rollback(struct store *st)
{
    struct pg_store *s = PG(st);
    pg_roll_drop_job(s);
    if (s->sp == PG_SP_NOTED) { /* nothing of the job reached the server: drop its rows */
        pg_copy_rewind(s);
        s->sp = PG_SP_NONE;
        return 0;
    }
    s->sp = PG_SP_NONE;
    /* Also what brings a transaction that a failed statement aborted back to life. */
    pg_copy_discard(s);
    if (pg_cmd(s, "ROLLBACK TO job", "ROLLBACK TO job", 0, NULL) < 0)
        return -1;
    return pg_cmd(s, "RELEASE job", "RELEASE job", 0, NULL);
}

/* ---- rows -------------------------------------------------------------- */

/* The INSERT of a row of ds (n fields): $1..$5 are _ingest_id, _source, _received_at,
 * _extra, _batch_id, then one per field. Reject and skip return _id, so that no row
 * means a duplicate. */
static int insert_sql(const struct dataset_config *ds, struct buf *sql)
{
    size_t n = schema_nfields(ds->schema);
    int bad = buf_printf(sql,
                         "INSERT INTO \"ds_%s\" (_ingest_id, _source, _received_at, _extra,"
                         " _batch_id",
                         ds->name);
    for (size_t i = 0; i < n; i++)
        bad |= buf_printf(sql, ", \"%s\"", schema_field_name(ds->schema, i));
    bad |= buf_appends(sql, ") VALUES ($1, $2, $3, $4, $5");
    for (size_t i = 0; i < n; i++)
        bad |= buf_printf(sql, ", $%zu", i + 6);
    bad |= buf_appends(sql, ")");
    if (ds->key_fields.n) {
        bad |= buf_appends(sql, " ON CONFLICT (");
        bad |= table_key_columns(sql, ds->schema, &ds->key_fields);
    }
    if (ds->key_fields.n && ds->on_duplicate == ON_DUP_UPSERT) {
        bad |= buf_appends(sql, ") DO UPDATE SET _ingest_id = EXCLUDED._ingest_id,"
                                " _source = EXCLUDED._source, _received_at = EXCLUDED._received_at,"
                                " _extra = EXCLUDED._extra, _batch_id = EXCLUDED._batch_id");
        for (size_t i = 0; i < n; i++)
            bad |= buf_printf(sql, ", \"%s\" = EXCLUDED.\"%s\"", schema_field_name(ds->schema, i),
                              schema_field_name(ds->schema, i));
    } else if (ds->key_fields.n) {
        bad |= buf_appends(sql, ") DO NOTHING RETURNING _id");
    }
    return bad ? -1 : 0;
}

/* The values of a row as text parameters in out[0..n), written into arena (at least
 * arena_len(): 32 bytes per value plus every text and its NUL). -1 with the error recorded
 * when a text holds a NUL byte, which PostgreSQL's text cannot store. */
static size_t arena_len(const struct row_value *v, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += 32 + (v[i].kind == VAL_TEXT ? v[i].u.s.n + 1 : 0);
    return len;
}

static int values_text(struct pg_store *s, const struct schema *sc, const struct row_value *v,
                       size_t n, char *arena, const char **out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = arena;
        switch (v[i].kind) {
        case VAL_ABSENT:
        case VAL_NULL:
        case VAL_ARRAY: /* never in a valid row */
        case VAL_OBJECT:
            out[i] = NULL;
            continue;
        case VAL_TEXT:
            if (memchr(v[i].u.s.p, 0, v[i].u.s.n)) {
                snprintf(s->err, sizeof s->err,
                         "insert: field '%s' holds a NUL byte, which PostgreSQL cannot store",
                         schema_field_name(sc, i));
                return -1;
            }
            memcpy(arena, v[i].u.s.p, v[i].u.s.n);
            arena[v[i].u.s.n] = 0;
            arena += v[i].u.s.n + 1;
            continue;
        case VAL_INT:
            snprintf(arena, 32, "%lld", (long long)v[i].u.i);
            break;
        case VAL_REAL:
            snprintf(arena, 32, "%.17g", v[i].u.d); /* round-trips exactly */
            break;
        case VAL_BOOL:
            snprintf(arena, 32, "%d", v[i].u.b ? 1 : 0);
            break;
        }
        arena += 32;
    }
    return 0;
}

/* A row of a dataset without a key goes in with COPY (pg_copy.c): it cannot be a
 * duplicate, so nothing needs its answer before the job ends. */
static int copy_row(struct pg_store *s, const struct dataset_config *ds, const char *const *p,
                    size_t np)
{
    char table[96];
    size_t small[64], *len = np <= 64 ? small : sl_malloc(np * sizeof *len);
    struct buf cols;
    int rc = -1;
    buf_init(&cols, 1 << 20);
    snprintf(table, sizeof table, "\"ds_%s\"", ds->name);
    /* The column list is only needed when the table's queue is made, not for every row. */
    int bad = !len;
    if (!bad && !pg_copy_queued(s, table)) {
        bad = buf_appends(&cols, "_ingest_id, _source, _received_at, _extra, _batch_id");
        for (size_t i = 0; !bad && i + 5 < np; i++)
            bad = buf_printf(&cols, ", \"%s\"", schema_field_name(ds->schema, i));
    }
    if (bad) {
        snprintf(s->err, sizeof s->err, "insert: out of memory");
        goto out;
    }
    for (size_t i = 0; i < np; i++)
        len[i] = p[i] ? strlen(p[i]) : 0;
    rc = pg_copy_put(s, table, cols.data, (int)np, 0, p, len);
out:
    buf_release(&cols);
    if (len != small)
        free(len);
    return rc;
}

int pg_row_put_values(struct store *st, const struct dataset_config *ds, const struct row_meta *m,
                      const struct row_value *v, const char *extra_json, enum row_result *res)
{
    struct pg_store *s = PG(st);
    size_t n = schema_nfields(ds->schema);
    struct buf sql;
    int rc = -1;
    buf_init(&sql, 1 << 20);
    const char **p = sl_malloc((n + 5) * sizeof *p);
    char *arena = sl_malloc(arena_len(v, n) + 1);
    if (!p || !arena) {
        snprintf(s->err, sizeof s->err, "insert: out of memory");
        goto out;
    }
    p[0] = m->ingest_id;
    p[1] = m->source;
    p[2] = m->received_at;
    p[3] = extra_json;
    p[4] = m->batch_id;
    if (values_text(s, ds->schema, v, n, arena, p + 5) < 0)
        goto out;
    if (!ds->key_fields.n) {
        *res = ROW_INSERTED;
        rc = copy_row(s, ds, p, n + 5);
        goto out;
    }
    if (insert_sql(ds, &sql) < 0) {
        snprintf(s->err, sizeof s->err, "insert: out of memory");
        goto out;
    }
    PGresult *r = pg_exec(s, "insert", sql.data, (int)(n + 5), p);
    if (!r)
        goto out;
    if (ds->on_duplicate != ON_DUP_UPSERT)
        *res = PQntuples(r) > 0 ? ROW_INSERTED : ROW_DUPLICATE;
    else
        *res = ROW_INSERTED; /* an upsert's update counts as accepted, as in SQLite */
    PQclear(r);
    rc = 0;
out:
    free(arena);
    free(p);
    buf_release(&sql);
    return rc;
}

int pg_nomem(struct store *st)
{
    snprintf(PG(st)->err, sizeof PG(st)->err, "insert: out of memory");
    return -1;
}

int64_t pg_row_count(struct store *st, const char *dataset)
{
    struct pg_store *s = PG(st);
    char table[96], sql[160];
    /* Asked first, so that an unknown dataset does not abort the caller's transaction. */
    if (!valid_name(dataset) || strlen(dataset) > PG_IDENT_MAX) {
        snprintf(s->err, sizeof s->err, "count: no dataset '%s'", dataset ? dataset : "");
        return -1;
    }
    snprintf(table, sizeof table, "\"ds_%s\"", dataset);
    const char *p[1] = {table};
    PGresult *r = pg_exec(s, "count", "SELECT to_regclass($1) IS NOT NULL", 1, p);
    if (!r)
        return -1;
    int exists = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!exists) {
        snprintf(s->err, sizeof s->err, "count: no table for dataset '%s'", dataset);
        return -1;
    }
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    if (!(r = pg_exec(s, "count", sql, 0, NULL)))
        return -1;
    int64_t n = pg_get_int(r, 0, 0);
    PQclear(r);
    return n;
}

/* ---- DLQ ----------------------------------------------------------------- */

int pg_dlq_add(struct store *st, const struct dlq_new *e, int64_t *id)
{
    struct pg_store *s = PG(st);
    char row[24], ms[24];
    const char *p[10] = {e->dataset,
                         e->ingest_id,
                         e->source,
                         pg_int(row, e->row),
                         e->payload_len ? (const char *)e->payload : "",
                         e->errors_json,
                         e->codes,
                         pg_int(ms, e->received_ms),
                         ms,
                         e->batch_id};
    if (!id) { /* nobody waits for the id: queued for COPY with the rows (pg_copy.c) */
        size_t len[10];
        for (int i = 0; i < 10; i++)
            len[i] = i == 4 ? e->payload_len : p[i] ? strlen(p[i]) : 0;
        return pg_copy_put(s, "dlq",
                           "dataset, ingest_id, source, row_no, payload, errors, codes,"
                           " received_ms, updated_ms, batch_id",
                           10, 1u << 4, p, len);
    }
    const int lengths[10] = {0, 0, 0, 0, (int)e->payload_len, 0, 0, 0, 0, 0};
    const int formats[10] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0}; /* the payload as bytes */
    PGresult *r = pg_exec_bin(s, "dlq insert",
                              "INSERT INTO dlq(dataset, ingest_id, source, row_no, payload,"
                              " errors, codes, received_ms, updated_ms, batch_id)"
                              " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                              10, p, lengths, formats, 0);
    if (!r)
        return -1;
    *id = pg_get_int(r, 0, 0);
    PQclear(r);
    return 0;
}

#define DLQ_COLS                                                                                   \
    "id, dataset, ingest_id, source, row_no, payload, errors, received_ms, updated_ms,"            \
    " attempts, status, batch_id"

/* Row i of a DLQ_COLS result into e (owned strings). -1 when out of memory. */
static int read_entry(const PGresult *r, int i, struct dlq_entry *e)
{
    memset(e, 0, sizeof *e);
    e->id = pg_get_int(r, i, 0);
    e->dataset = pg_get_str(r, i, 1);
    e->ingest_id = pg_get_str(r, i, 2);
    e->source = pg_get_str(r, i, 3);
    e->row = pg_get_int(r, i, 4);
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 5), &len);
    e->payload = raw ? sl_malloc(len + 1) : NULL;
    if (e->payload) {
        memcpy(e->payload, raw, len);
        e->payload[len] = 0;
        e->payload_len = len;
    }
    PQfreemem(raw);
    e->errors_json = pg_get_str(r, i, 6);
    e->received_ms = pg_get_int(r, i, 7);
    e->updated_ms = pg_get_int(r, i, 8);
    e->attempts = (int)pg_get_int(r, i, 9);
    snprintf(e->status, sizeof e->status, "%s", PQgetvalue(r, i, 10));
    e->batch_id = pg_get_str(r, i, 11);
    if (!e->payload || !e->dataset || !e->ingest_id || !e->errors_json) {
        dlq_entry_release(e);
        return -1;
    }
    return 0;
}

int pg_dlq_get(struct store *st, int64_t id, struct dlq_entry *out)
{
    struct pg_store *s = PG(st);
    char idt[24];
    const char *p[1] = {pg_int(idt, id)};
    PGresult *r = pg_exec(s, "dlq get", "SELECT " DLQ_COLS " FROM dlq WHERE id = $1", 1, p);
    if (!r)
        return -1;
    int rc = 1;
    if (PQntuples(r) > 0)
        rc = read_entry(r, 0, out);
    PQclear(r);
    if (rc < 0)
        snprintf(s->err, sizeof s->err, "dlq get: out of memory");
    return rc;
}

/* Run the DLQ query of f: its entries (count = 0) or how many there are (count = 1, which
 * ignores the order and limit). NULL: s->err says. */
static PGresult *dlq_query(struct pg_store *s, const struct dlq_filter *f, int count)
{
    struct buf sql, ids;
    char after[24], limit[24], ra[24], rb[24];
    const char *p[8];
    int np = 0;
    PGresult *r = NULL;
    buf_init(&sql, 1 << 20);
    buf_init(&ids, 64u << 20);

    /* keyset on id, either way: a range on the primary key whatever the page */
    p[np++] = pg_int(after, f->desc && !f->after_id ? INT64_MAX : f->after_id);
    buf_appends(&sql, count ? "SELECT count(*) FROM dlq" : "SELECT " DLQ_COLS " FROM dlq");
    buf_appends(&sql, f->desc ? " WHERE id < $1" : " WHERE id > $1");
    if (f->received_after_ms) {
        p[np++] = pg_int(ra, f->received_after_ms);
        buf_printf(&sql, " AND received_ms >= $%d::bigint", np);
    }
    if (f->received_before_ms) {
        p[np++] = pg_int(rb, f->received_before_ms);
        buf_printf(&sql, " AND received_ms < $%d::bigint", np);
    }
    if (f->dataset) {
        p[np++] = f->dataset;
        buf_printf(&sql, " AND dataset = $%d", np);
    }
    if (f->error_code) { /* a whole code of the ",A,B," list, as SQLite's instr() */
        p[np++] = f->error_code;
        buf_printf(&sql, " AND strpos(codes, ',' || $%d || ',') > 0", np);
    }
    if (f->status) {
        p[np++] = f->status;
        buf_printf(&sql, " AND status = $%d", np);
    }
    if (f->ids) {
        buf_appends(&ids, "{");
        for (size_t i = 0; i < f->nids; i++)
            buf_printf(&ids, "%s%lld", i ? "," : "", (long long)f->ids[i]);
        if (buf_appends(&ids, "}") < 0) {
            snprintf(s->err, sizeof s->err, "dlq list: too many ids");
            goto out;
        }
        p[np++] = ids.data;
        buf_printf(&sql, " AND id = ANY($%d::bigint[])", np);
    }
    if (!count) {
        p[np++] = f->limit < 0 ? NULL : pg_int(limit, f->limit); /* negative: no limit */
        buf_printf(&sql, " ORDER BY id%s LIMIT $%d", f->desc ? " DESC" : "", np);
    }
    if (!sql.data) {
        snprintf(s->err, sizeof s->err, "dlq list: out of memory");
        goto out;
    }
    r = pg_exec(s, count ? "dlq count" : "dlq list", sql.data, np, p);
out:
    buf_release(&ids);
    buf_release(&sql);
    return r;
}

int pg_dlq_list(struct store *st, const struct dlq_filter *f, struct dlq_entry **out, size_t *n)
{
    struct pg_store *s = PG(st);
    PGresult *r = dlq_query(s, f, 0);
    if (!r)
        return -1;
    int rows = PQntuples(r), cnt = 0;
    struct dlq_entry *v = sl_malloc((size_t)(rows ? rows : 1) * sizeof *v);
    for (; v && cnt < rows; cnt++)
        if (read_entry(r, cnt, &v[cnt]) < 0)
            break;
    PQclear(r);
    if (!v || cnt < rows) {
        for (int i = 0; v && i < cnt; i++)
            dlq_entry_release(&v[i]);
        free(v);
        snprintf(s->err, sizeof s->err, "dlq list: out of memory");
        return -1;
    }
    *out = v;
    *n = (size_t)cnt;
    return 0;
}

int pg_dlq_count(struct store *st, const struct dlq_filter *f, int64_t *n)
{
    PGresult *r = dlq_query(PG(st), f, 1);
    if (!r)
        return -1;
    *n = pg_get_int(r, 0, 0);
    PQclear(r);
    return 0;
}

int pg_dlq_set(struct store *st, int64_t id, const char *status, int attempts,
               const char *errors_json, const char *codes, int64_t now_ms)
{
    char idt[24], att[24], now[24];
    const char *p[6] = {pg_int(idt, id), status, pg_int(att, attempts),
                        errors_json,     codes,  pg_int(now, now_ms)};
    return pg_cmd(PG(st), "dlq update",
                  "UPDATE dlq SET status = $2, attempts = $3, errors = coalesce($4, errors),"
                  " codes = coalesce($5, codes), updated_ms = $6 WHERE id = $1",
                  6, p);
}

int pg_dlq_depth(struct store *st, json_t **by_dataset)
{
    PGresult *r = pg_exec(
        PG(st), "dlq depth",
        "SELECT dataset, count(*) FROM dlq WHERE status = 'open' GROUP BY dataset", 0, NULL);
    if (!r)
        return -1;
    json_t *o = json_object();
    for (int i = 0; o && i < PQntuples(r); i++)
        json_object_set_new(o, PQgetvalue(r, i, 0), json_integer(pg_get_int(r, i, 1)));
    PQclear(r);
    if (!o) {
        snprintf(PG(st)->err, sizeof PG(st)->err, "dlq depth: out of memory");
        return -1;
    }
    *by_dataset = o;
    return 0;
}

/* ---- idempotency --------------------------------------------------------- */

int pg_idem_get(struct store *st, const char *dataset, const char *key, struct idem_record *out)
{
    struct pg_store *s = PG(st);
    const char *p[2] = {dataset, key};
    PGresult *r = pg_exec(s, "idempotency",
                          "SELECT sha256, status, response, created_ms FROM idempotency"
                          " WHERE dataset = $1 AND key = $2",
                          2, p);
    if (!r)
        return -1;
    int rc = 1;
    if (PQntuples(r) > 0) {
        snprintf(out->sha256, sizeof out->sha256, "%s", PQgetvalue(r, 0, 0));
        out->status = (int)pg_get_int(r, 0, 1);
        out->response = pg_get_str(r, 0, 2);
        out->created_ms = pg_get_int(r, 0, 3);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

/* Another node's transaction that inserted the same key and has not ended makes this
 * INSERT wait for it; once it commits, ON CONFLICT sees its record (live: nothing is
 * updated, 1) and the caller's job is undone and run again, so that a retry racing the
 * first request's COMMIT answers with the first one's result instead of storing its rows
 * a second time. */
int pg_idem_put(struct store *st, const char *dataset, const char *key, const char *sha256,
                int status, const char *response, int64_t now_ms, int64_t live_after_ms)
{
    char stt[24], now[24], live[24];
    const char *p[7] = {dataset,
                        key,
                        sha256,
                        pg_int(stt, status),
                        response,
                        pg_int(now, now_ms),
                        pg_int(live, live_after_ms)};
    PGresult *r = pg_exec(PG(st), "idempotency",
                          "INSERT INTO idempotency(dataset, key, sha256, status, response,"
                          " created_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dataset, key)"
                          " DO UPDATE SET sha256 = EXCLUDED.sha256, status = EXCLUDED.status,"
                          " response = EXCLUDED.response, created_ms = EXCLUDED.created_ms"
                          " WHERE idempotency.created_ms < $7::bigint",
                          7, p);
    if (!r)
        return -1;
    int changed = atoi(PQcmdTuples(r));
    PQclear(r);
    return changed == 0 ? 1 : 0;
}

int pg_idem_purge(struct store *st, int64_t older_than_ms)
{
    char t[24];
    const char *p[1] = {pg_int(t, older_than_ms)};
    return pg_cmd(PG(st), "idempotency purge", "DELETE FROM idempotency WHERE created_ms < $1", 1,
                  p);
}
