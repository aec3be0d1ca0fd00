/*
 * pg_dump.c - whole tables in and out of a PostgreSQL store, in the
 * portable form of tables.h (for `sluice migrate`; store.h has the contracts).
 *
 * Dumps stream: one query in single-row mode with binary results, so a table of
 * any size passes through a row at a time and every value arrives in its exact
 * binary form (no text parsing of reals). Text keys are ordered COLLATE "C" (byte
 * order, as SQLite orders them), so both stores dump rows in the same order.
 * Loads go through the backend's COPY queue (pg_copy.c), then move the
 * table's sequence past the copied ids (setval), so new rows get new ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_internal.h"
#include "util/buf.h"
#include "util/mem.h"

/* Type oids (pg_type.h is not part of libpq's headers). */
enum { OID_BYTEA = 17, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_TEXT = 25 };
enum { OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_VARCHAR = 1043 };

static int fail_msg(struct pg_store *s, const char *what, const char *msg)
{
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    snprintf(s->err, sizeof s->err, "%s: %.*s", what, (int)n, msg);
    return -1;
}

int pg_snapshot(struct store *st)
{
    return pg_cmd(PG(st), "snapshot", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL);
}

int pg_table_count(struct store *st, const struct table_def *t, int64_t *n)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", t->name);
    PGresult *r = pg_exec(PG(st), t->name, sql, 0, NULL);
    if (!r)
        return -1;
    *n = pg_get_int(r, 0, 0);
    PQclear(r);
    return 0;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Column c of row 0 of r (binary) as a cell of the column's declared type; -1 with the
 * error recorded when the column's type is not one that holds it. */
static int read_cell(struct pg_store *s, const struct table_def *t, const PGresult *r, int c,
                     struct cell *out)
{
    memset(out, 0, sizeof *out);
    if (PQgetisnull(r, 0, c))
        return 0;
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, 0, c);
    int len = PQgetlength(r, 0, c);
    Oid oid = PQftype(r, c);
    enum cell_type want = t->cols[c].type;
    out->type = want;
    int ints = oid == OID_INT8 || oid == OID_INT4 || oid == OID_INT2;
    if ((want == CELL_INT || want == CELL_REAL) && ints) {
        uint64_t u = get_be(p, len);
        int64_t v = len == 8 ? (int64_t)u : len == 4 ? (int32_t)(uint32_t)u : (int16_t)(uint16_t)u;
        if (want == CELL_INT)
            out->i = v;
        else
            out->d = (double)v;
    } else if (want == CELL_REAL && oid == OID_FLOAT8 && len == 8) {
        uint64_t u = get_be(p, 8);
        memcpy(&out->d, &u, sizeof out->d);
    } else if (want == CELL_REAL && oid == OID_FLOAT4 && len == 4) {
        uint32_t u = (uint32_t)get_be(p, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        out->d = f;
    } else if ((want == CELL_TEXT && (oid == OID_TEXT || oid == OID_VARCHAR)) ||
               (want == CELL_BYTES && oid == OID_BYTEA)) {
        out->p = (const char *)p;
        out->n = (size_t)len;
    } else {
        snprintf(s->err, sizeof s->err, "%s.%s: a column of type oid %u cannot hold a %s", t->name,
                 t->cols[c].name, (unsigned)oid,
                 want == CELL_INT    ? "integer"
                 : want == CELL_REAL ? "real"
                 : want == CELL_TEXT ? "text"
                                     : "bytes");
        return -1;
    }
    return 0;
}

/* Stop a query under way and read what is left of it. */
static void drain(struct pg_store *s, int cancel)
{
    if (cancel) {
        PGcancel *k = PQgetCancel(s->conn);
        char buf[256];
        if (k)
            PQcancel(k, buf, sizeof buf);
        PQfreeCancel(k);
    }
    PGresult *r;
    while ((r = PQgetResult(s->conn)))
        PQclear(r);
}

int pg_table_dump(struct store *st, const struct table_def *t,
                  int (*fn)(void *arg, const struct cell *row), void *arg)
{
    struct pg_store *s = PG(st);
    if (pg_copy_flush(s) < 0) /* rows still queued are part of what is read */
        return -1;
    struct buf sql;
    buf_init(&sql, 1 << 20);
    struct cell *row = sl_calloc(t->ncols, sizeof *row);
    int bad = !row || buf_appends(&sql, "SELECT ") < 0;
    for (size_t c = 0; c < t->ncols; c++)
        bad |= buf_printf(&sql, "%s\"%s\"", c ? ", " : "", t->cols[c].name);
    bad |= buf_printf(&sql, " FROM \"%s\" ORDER BY ", t->name);
    for (size_t c = 0, k = 0; c < t->ncols; c++)
        if (t->cols[c].flags & COL_KEY)
            bad |= buf_printf(&sql, "%s\"%s\"%s", k++ ? ", " : "", t->cols[c].name,
                              t->cols[c].type == CELL_TEXT ? " COLLATE \"C\"" : "");
    if (bad) {
        free(row);
        buf_release(&sql);
        return fail_msg(s, t->name, "out of memory");
    }
    int sent = PQsendQueryParams(s->conn, sql.data, 0, NULL, NULL, NULL, NULL, 1) &&
               PQsetSingleRowMode(s->conn);
    buf_release(&sql);
    if (!sent) {
        free(row);
        drain(s, 0);
        return pg_fail(s, t->name);
    }
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(s->conn))) {
        ExecStatusType status = PQresultStatus(r);
        if (status == PGRES_SINGLE_TUPLE && rc == 0) {
            for (size_t c = 0; rc == 0 && c < t->ncols; c++)
                rc = read_cell(s, t, r, (int)c, &row[c]);
            if (rc == 0)
                rc = fn(arg, row);
            if (rc != 0) { /* stopped before the end: the rest is not wanted */
                PQclear(r);
                drain(s, 1);
                break;
            }
        } else if (status != PGRES_SINGLE_TUPLE && status != PGRES_TUPLES_OK && rc == 0) {
            rc = fail_msg(s, t->name, PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    free(row);
    return rc;
}

/* ---- loading ---------------------------------------------------------------------- */

/* Move the serial columns' sequences of t past the largest id. */
static int sequences_follow(struct pg_store *s, const struct table_def *t)
{
    for (size_t c = 0; c < t->ncols; c++) {
        if (!(t->cols[c].flags & COL_SERIAL))
            continue;
        char sql[400];
        snprintf(sql, sizeof sql,
                 "SELECT setval(pg_get_serial_sequence('\"%s\"', '%s'),"
                 " coalesce(max(\"%s\"), 0) + 1, false) FROM \"%s\"",
                 t->name, t->cols[c].name, t->cols[c].name, t->name);
        if (pg_cmd(s, t->name, sql, 0, NULL) < 0)
            return -1;
    }
    return 0;
}

/* A row as text values for pg_copy_put: integers and reals written into arena (32 bytes
 * each), text and bytes where they are. -1 with the error recorded for a text holding a
 * NUL byte, which PostgreSQL's text cannot store. */
static int row_text(struct pg_store *s, const struct table_def *t, const struct cell *row,
                    char *arena, const char **v, size_t *len, unsigned *bytea)
{
    *bytea = 0;
    for (size_t c = 0; c < t->ncols; c++, arena += 32) {
        const struct cell *x = &row[c];
        v[c] = x->p ? x->p : "";
        len[c] = x->n;
        if (x->type == CELL_NULL) {
            v[c] = NULL;
        } else if (x->type == CELL_INT || x->type == CELL_REAL) {
            len[c] = (size_t)(x->type == CELL_INT ? snprintf(arena, 32, "%lld", (long long)x->i)
                                                  : snprintf(arena, 32, "%.17g", x->d));
            v[c] = arena; /* %.17g round-trips exactly */
        } else if (x->type == CELL_BYTES) {
            *bytea |= 1u << c; /* the catalog's bytes columns all come before the 32nd */
        } else if (memchr(x->p, 0, x->n)) {
            snprintf(s->err, sizeof s->err,
                     "%s.%s: a text holds a NUL byte, which PostgreSQL cannot store", t->name,
                     t->cols[c].name);
            return -1;
        }
    }
    return 0;
}

/* Rows go through the COPY queue (pg_copy.c), sent when it fills and when the
 * table ends. */
int pg_table_load(struct store *st, const struct table_def *t, const struct cell *row)
{
    struct pg_store *s = PG(st);
    char sql[160];
    if (strcmp(s->load_table, t->name) != 0) { /* a table's first call: it is emptied */
        snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", t->name);
        if (pg_cmd(s, t->name, sql, 0, NULL) < 0)
            return -1;
        snprintf(s->load_table, sizeof s->load_table, "%s", t->name);
    }
    if (!row) {
        s->load_table[0] = 0;
        return pg_copy_flush(s) < 0 ? -1 : sequences_follow(s, t);
    }
    struct buf cols;
    buf_init(&cols, 1 << 20);
    const char **v = sl_calloc(t->ncols, sizeof *v);
    size_t *len = sl_calloc(t->ncols, sizeof *len);
    char *arena = sl_malloc(32 * t->ncols);
    int bad = !v || !len || !arena;
    for (size_t c = 0; c < t->ncols; c++)
        bad |= buf_printf(&cols, "%s\"%s\"", c ? ", " : "", t->cols[c].name);
    unsigned bytea;
    int rc = -1;
    snprintf(sql, sizeof sql, "\"%s\"", t->name);
    if (bad)
        fail_msg(s, t->name, "out of memory");
    else if (row_text(s, t, row, arena, v, len, &bytea) == 0)
        rc = pg_copy_put(s, sql, cols.data, (int)t->ncols, bytea, v, len);
    free(arena);
    free(len);
    free(v);
    buf_release(&cols);
    return rc;
}

int pg_dataset_drop(struct store *st, const char *name)
{
    struct pg_store *s = PG(st);
    char sql[200];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS \"ds_%s\"", name);
    const char *p[1] = {name};
    if (pg_cmd(s, "dataset drop", sql, 0, NULL) < 0)
        return -1;
    return pg_cmd(s, "dataset drop", "DELETE FROM datasets WHERE name = $1", 1, p);
}
