/*
 * sqlite_dump.c - whole tables in and out of an SQLite store, in the
 * portable form of tables.h (for `sluice migrate`; store.h has the contracts).
 *
 * Two things are SQLite's own. batch_errors has no seq column: its rowid is the
 * seq (sqlite_batch.c pages by it), so `seq` is read and written as rowid.
 * And a batch's rows are found by a rowid range kept in the batch record
 * (rows_first, rows_last; sqlite_internal.h says why), which no other store has:
 * when `batches` has been loaded, the ranges are worked out from the dataset
 * tables loaded before it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sqlite_internal.h"
#include "util/buf.h"
#include "util/mem.h"

/* The SQL for column c of t. */
static const char *col_sql(const struct table_def *t, size_t c)
{
    if (!strcmp(t->name, "batch_errors") && !strcmp(t->cols[c].name, "seq"))
        return "rowid";
    return t->cols[c].name;
}

static int fail_oom(struct sqlite_store *s, const char *what)
{
    snprintf(s->err, sizeof s->err, "%s: out of memory", what);
    return -1;
}

int sqlite_snapshot(struct store *st)
{
    /* A deferred transaction takes its snapshot at the first read. */
    return sqlite_exec(SQ(st), "BEGIN; SELECT count(*) FROM schema_migrations");
}

int sqlite_table_count(struct store *st, const struct table_def *t, int64_t *n)
{
    struct sqlite_store *s = SQ(st);
    char sql[160];
    sqlite3_stmt *q;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", t->name);
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, t->name);
    int rc = sqlite3_step(q);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : sqlite_fail(s, t->name);
}

static const char *type_name(enum cell_type t)
{
    static const char *const names[] = {"NULL", "integer", "real", "text", "bytes"};
    return names[t];
}

/* Column c of the current row as the cell its declared type wants; -1 (error recorded)
 * for a value that is not of that type. Integers in a real column become reals and text
 * in a bytes column its bytes: SQLite stores both so at times. */
static int read_cell(struct sqlite_store *s, const struct table_def *t, sqlite3_stmt *q, int c,
                     struct cell *out)
{
    enum cell_type want = t->cols[c].type;
    int have = sqlite3_column_type(q, c);
    memset(out, 0, sizeof *out);
    if (have == SQLITE_NULL)
        return 0;
    out->type = want;
    if (want == CELL_INT && have == SQLITE_INTEGER)
        out->i = sqlite3_column_int64(q, c);
    else if (want == CELL_REAL && (have == SQLITE_FLOAT || have == SQLITE_INTEGER))
        out->d = sqlite3_column_double(q, c);
    else if (want == CELL_TEXT && have == SQLITE_TEXT)
        out->p = (const char *)sqlite3_column_text(q, c);
    else if (want == CELL_BYTES && (have == SQLITE_BLOB || have == SQLITE_TEXT))
        out->p = sqlite3_column_blob(q, c);
    else {
        static const char *const stored[] = {"", "an integer", "a real", "a text", "a blob"};
        snprintf(s->err, sizeof s->err, "%s.%s: %s value where %s is declared", t->name,
                 t->cols[c].name, stored[have], type_name(want));
        return -1;
    }
    if (want == CELL_TEXT || want == CELL_BYTES)
        out->n = (size_t)sqlite3_column_bytes(q, c);
    return 0;
}

int sqlite_table_dump(struct store *st, const struct table_def *t,
                      int (*fn)(void *arg, const struct cell *row), void *arg)
{
    struct sqlite_store *s = SQ(st);
    struct buf sql;
    int rc = -1;
    buf_init(&sql, 1 << 20);
    struct cell *row = sl_calloc(t->ncols, sizeof *row);
    int bad = !row || buf_appends(&sql, "SELECT ") < 0;
    for (size_t c = 0; c < t->ncols; c++)
        bad |= buf_printf(&sql, "%s\"%s\"", c ? ", " : "", col_sql(t, c));
    bad |= buf_printf(&sql, " FROM \"%s\" ORDER BY ", t->name);
    for (size_t c = 0, k = 0; c < t->ncols; c++)
        if (t->cols[c].flags & COL_KEY)
            bad |= buf_printf(&sql, "%s\"%s\"", k++ ? ", " : "", col_sql(t, c));
    sqlite3_stmt *q = NULL;
    if (bad) {
        fail_oom(s, t->name);
        goto out;
    }
    if (sqlite3_prepare_v2(s->db, sql.data, -1, &q, NULL) != SQLITE_OK) {
        sqlite_fail(s, t->name);
        goto out;
    }
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        for (size_t c = 0; c < t->ncols; c++)
            if (read_cell(s, t, q, (int)c, &row[c]) < 0)
                goto out;
        int stop = fn(arg, row);
        if (stop) {
            rc = stop;
            goto out;
        }
    }
    if (step != SQLITE_DONE) {
        sqlite_fail(s, t->name);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(q);
    free(row);
    buf_release(&sql);
    return rc;
}

/* The table t's rows are written to: a dataset's ds_<name> is a view of dsr_<name>. */
static const char *write_name(const struct table_def *t, char *buf, size_t len)
{
    if (strncmp(t->name, "ds_", 3) != 0)
        return t->name;
    snprintf(buf, len, SQLITE_ROWS "%s", t->name + 3);
    return buf;
}

/* Empty t and prepare its INSERT. */
static int load_begin(struct sqlite_store *s, const struct table_def *t)
{
    struct buf sql;
    buf_init(&sql, 1 << 20);
    char wbuf[200];
    const char *name = write_name(t, wbuf, sizeof wbuf);
    int bad = buf_printf(&sql, "DELETE FROM \"%s\"", name) < 0;
    if (!bad && sqlite_exec(s, sql.data) < 0) {
        buf_release(&sql);
        return -1;
    }
    buf_reset(&sql);
    bad |= buf_printf(&sql, "INSERT INTO \"%s\" (", name);
    for (size_t c = 0; c < t->ncols; c++)
        bad |= buf_printf(&sql, "%s\"%s\"", c ? ", " : "", col_sql(t, c));
    bad |= buf_appends(&sql, ") VALUES (");
    for (size_t c = 0; c < t->ncols; c++)
        bad |= buf_appends(&sql, c ? ", ?" : "?");
    bad |= buf_appends(&sql, ")");
    int rc = bad ? fail_oom(s, t->name)
             : sqlite3_prepare_v2(s->db, sql.data, -1, &s->load_q, NULL) == SQLITE_OK
                 ? 0
                 : sqlite_fail(s, t->name);
    buf_release(&sql);
    if (rc == 0)
        snprintf(s->load_table, sizeof s->load_table, "%s", t->name);
    return rc;
}

/* Where each batch's rows are: the rowid range of its rows in its dataset's table (the
 * loaded ids are the source's, so ranges are worked out, not copied). A batch with no
 * row there is tracked with no range, which means "stored no row". */
static int batch_ranges(struct sqlite_store *s)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT name FROM datasets", -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch rows");
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        char sql[600];
        const char *ds = (const char *)sqlite3_column_text(q, 0);
        snprintf(sql, sizeof sql,
                 "UPDATE batches SET rows_tracked = 1, rows_first = r.lo, rows_last = r.hi"
                 " FROM (SELECT _batch_id AS id, min(_id) AS lo, max(_id) AS hi FROM \"" SQLITE_ROWS
                 "%s\""
                 " WHERE _batch_id IS NOT NULL GROUP BY _batch_id) AS r"
                 " WHERE batches.id = r.id AND batches.dataset = '%s'",
                 ds, ds);
        rc = sqlite_exec(s, sql);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = sqlite_fail(s, "batch rows");
    sqlite3_finalize(q);
    return rc < 0 ? -1
                  : sqlite_exec(s, "UPDATE batches SET rows_tracked = 1 WHERE rows_tracked = 0"
                                   " AND dataset IN (SELECT name FROM datasets)");
}

static int load_end(struct sqlite_store *s)
{
    int batches = !strcmp(s->load_table, "batches");
    sqlite3_finalize(s->load_q);
    s->load_q = NULL;
    s->load_table[0] = 0;
    return batches ? batch_ranges(s) : 0;
}

static void bind_cell(sqlite3_stmt *q, int i, const struct cell *v)
{
    switch (v->type) {
    case CELL_NULL:
        sqlite3_bind_null(q, i);
        break;
    case CELL_INT:
        sqlite3_bind_int64(q, i, v->i);
        break;
    case CELL_REAL:
        sqlite3_bind_double(q, i, v->d);
        break;
    case CELL_TEXT:
        sqlite3_bind_text64(q, i, v->p ? v->p : "", v->n, SQLITE_STATIC, SQLITE_UTF8);
        break;
    case CELL_BYTES:
        sqlite3_bind_blob64(q, i, v->p ? v->p : "", v->n, SQLITE_STATIC);
        break;
    }
}

int sqlite_table_load(struct store *st, const struct table_def *t, const struct cell *row)
{
    struct sqlite_store *s = SQ(st);
    if (strcmp(s->load_table, t->name) != 0) {
        if (s->load_q)
            load_end(s);
        if (load_begin(s, t) < 0)
            return -1;
    }
    if (!row)
        return load_end(s);
    for (size_t c = 0; c < t->ncols; c++)
        bind_cell(s->load_q, (int)c + 1, &row[c]);
    int rc = sqlite3_step(s->load_q);
    sqlite3_reset(s->load_q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, t->name);
}

int sqlite_dataset_drop(struct store *st, const char *name)
{
    struct sqlite_store *s = SQ(st);
    char sql[400];
    int kind = sqlite_dataset_kind(s, name);
    if (kind < 0)
        return -1;
    snprintf(sql, sizeof sql,
             "DROP %s IF EXISTS \"ds_%s\"; DROP TABLE IF EXISTS \"" SQLITE_ROWS "%s\";"
             " DROP TABLE IF EXISTS \"" SQLITE_SAVED "%s\"",
             kind == 2 ? "VIEW" : "TABLE", name, name, name);
    if (sqlite_exec(s, sql) < 0)
        return -1;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM datasets WHERE name = ?", -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "dataset drop");
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "dataset drop");
}
