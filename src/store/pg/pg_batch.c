/*
 * pg_batch.c - the PostgreSQL backend's batch tables (see pg_internal.h):
 * batches (the record and its state), batch_events (every transition with its
 * time), batch_errors (every error of every rejected row), and the sentinel's
 * queries over them. Same meaning as sqlite_batch.c; claiming uses
 * FOR UPDATE SKIP LOCKED, so several nodes never take the same batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_internal.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/mem.h"

#define BATCH_COLS                                                                                 \
    "id, dataset, source, filename, path, bytes, sha256, status, rejection_reason,"                \
    " error_threshold_percent, row_count_total, row_count_inserted, row_count_invalid,"            \
    " row_count_duplicate, attempts, worker, lease_until_ms, heartbeat_ms, created_ms,"            \
    " updated_ms, started_ms, finished_ms, content_type"

/* The statuses a worker holds a batch in (a lease that can expire). */
#define WORKING "('staging','validating','transforming','inserting','upserting')"

static void read_batch(const PGresult *r, int i, struct batch *b)
{
    memset(b, 0, sizeof *b);
    b->id = pg_get_str(r, i, 0);
    b->dataset = pg_get_str(r, i, 1);
    b->source = pg_get_str(r, i, 2);
    b->filename = pg_get_str(r, i, 3);
    b->path = pg_get_str(r, i, 4);
    b->bytes = pg_get_int(r, i, 5);
    b->sha256 = pg_get_str(r, i, 6);
    b->status = pg_get_str(r, i, 7);
    b->rejection_reason = pg_get_str(r, i, 8);
    b->error_threshold_percent = PQgetisnull(r, i, 9) ? 0 : strtod(PQgetvalue(r, i, 9), NULL);
    b->total = pg_get_int(r, i, 10);
    b->inserted = pg_get_int(r, i, 11);
    b->invalid = pg_get_int(r, i, 12);
    b->duplicate = pg_get_int(r, i, 13);
    b->attempts = (int)pg_get_int(r, i, 14);
    b->worker = pg_get_str(r, i, 15);
    b->lease_until_ms = pg_get_int(r, i, 16);
    b->heartbeat_ms = pg_get_int(r, i, 17);
    b->created_ms = pg_get_int(r, i, 18);
    b->updated_ms = pg_get_int(r, i, 19);
    b->started_ms = pg_get_int(r, i, 20);
    b->finished_ms = pg_get_int(r, i, 21);
    b->content_type = pg_get_str(r, i, 22);
}

/* A LIMIT parameter: a negative limit means none (as SQLite reads LIMIT -1). */
static const char *limit_param(char *buf, int limit)
{
    return limit < 0 ? NULL : pg_int(buf, limit);
}

/* An operation of several statements runs in a transaction of its own when the caller has
 * none open (the writer always has one). tx_end commits it, or rolls it back on failure. */
static int tx_begin(struct pg_store *s, int *own)
{
    *own = PQtransactionStatus(s->conn) == PQTRANS_IDLE;
    return *own ? pg_cmd(s, "begin", "BEGIN", 0, NULL) : 0;
}

static int tx_end(struct pg_store *s, int own, int rc)
{
    if (!own)
        return rc;
    if (rc >= 0)
        return pg_cmd(s, "commit", "COMMIT", 0, NULL) < 0 ? -1 : rc;
    char keep[sizeof s->err];
    memcpy(keep, s->err, sizeof keep);
    pg_copy_discard(s);
    PQclear(PQexec(s->conn, "ROLLBACK"));
    memcpy(s->err, keep, sizeof keep);
    return rc;
}

int pg_batch_add(struct store *st, const struct batch *b)
{
    struct pg_store *s = PG(st);
    char bytes[24], pct[32], created[24];
    snprintf(pct, sizeof pct, "%.17g", b->error_threshold_percent);
    const char *p[10] = {b->id,          b->dataset, b->source,
                         b->filename,    b->path,    pg_int(bytes, b->bytes),
                         b->sha256,      pct,        pg_int(created, b->created_ms),
                         b->content_type};
    /* The record and its first event in one statement; then wake the workers of every node
     * (the notification is delivered when the transaction commits). */
    int rc =
        pg_cmd(s, "batch add",
               "WITH b AS (INSERT INTO batches(id, dataset, source, filename, path, bytes,"
               " sha256, status, error_threshold_percent, created_ms, updated_ms, content_type)"
               " VALUES ($1, $2, $3, $4, $5, $6::bigint, $7, 'uploaded', $8::float8,"
               " $9::bigint, $9::bigint, $10) RETURNING id)"
               " INSERT INTO batch_events(batch_id, status, at_ms)"
               " SELECT id, 'uploaded', $9::bigint FROM b",
               10, p);
    return rc < 0 ? -1 : pg_cmd(s, "batch notify", "NOTIFY sluice_batches", 0, NULL);
}

/* The batch in result r (consumed; NULL: the query failed) into out: 0, 1 when none, -1. */
static int one_batch(PGresult *r, struct batch *out)
{
    if (!r)
        return -1;
    int found = PQntuples(r) > 0;
    if (found)
        read_batch(r, 0, out);
    PQclear(r);
    return found ? 0 : 1;
}

int pg_batch_get(struct store *st, const char *id, struct batch *out)
{
    struct pg_store *s = PG(st);
    const char *p[1] = {id};
    PGresult *r = pg_exec(s, "batch get", "SELECT " BATCH_COLS " FROM batches WHERE id = $1", 1, p);
    return one_batch(r, out);
}

/* Append " AND <pre>$n<post>" with v as parameter n, when v is set. */
static void cond(struct buf *sql, const char **p, int *np, const char *pre, const char *v,
                 const char *post)
{
    if (!v)
        return;
    p[(*np)++] = v;
    buf_printf(sql, " AND %s$%d%s", pre, *np, post);
}

int pg_batch_list(struct store *st, const struct batch_filter *f, struct batch **out, size_t *n)
{
    struct pg_store *s = PG(st);
    const char *p[9];
    int np = 0;
    char created[24], before[24], limit[24];
    struct buf sql;
    buf_init(&sql, 4096);
    buf_appends(&sql, "SELECT " BATCH_COLS " FROM batches WHERE true");
    cond(&sql, p, &np, f->desc ? "id < " : "id > ", f->after_id, "");
    cond(&sql, p, &np, "status = ", f->status, "");
    cond(&sql, p, &np, "dataset = ", f->dataset, "");
    cond(&sql, p, &np, "source = ", f->source, "");
    cond(&sql, p, &np, "strpos(filename, ", f->filename_contains, ") > 0");
    cond(&sql, p, &np, "created_ms > ",
         f->created_after_ms ? pg_int(created, f->created_after_ms) : NULL, "::bigint");
    cond(&sql, p, &np, "created_ms < ",
         f->created_before_ms ? pg_int(before, f->created_before_ms) : NULL, "::bigint");
    p[np++] = limit_param(limit, f->limit);
    /* ids sort by creation time (ingest_new_id): the primary key serves either order */
    buf_printf(&sql, " ORDER BY id%s LIMIT $%d::bigint", f->desc ? " DESC" : "", np);
    if (!sql.data) {
        snprintf(s->err, sizeof s->err, "batch list: out of memory");
        return -1;
    }
    PGresult *r = pg_exec(s, "batch list", sql.data, np, p);
    buf_release(&sql);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    struct batch *v = sl_calloc(rows ? (size_t)rows : 1, sizeof *v);
    if (!v) {
        PQclear(r);
        snprintf(s->err, sizeof s->err, "batch list: out of memory");
        return -1;
    }
    for (int i = 0; i < rows; i++)
        read_batch(r, i, &v[i]);
    PQclear(r);
    *out = v;
    *n = (size_t)rows;
    return 0;
}

int pg_batch_claim(struct store *st, const char *worker, int64_t now_ms, int64_t lease_ms,
                   struct batch *out)
{
    struct pg_store *s = PG(st);
    char now[24], lease[24];
    const char *p[3] = {worker, pg_int(now, now_ms), pg_int(lease, now_ms + lease_ms)};
    /* An uploaded batch, or one whose worker stopped renewing its lease (or this same worker's,
     * from before a restart). Rows another node has locked are skipped, not waited for; the
     * update and its event are one statement. */
    PGresult *r = pg_exec(
        s, "batch claim",
        "WITH c AS (UPDATE batches SET status = 'staging', worker = $1, attempts = attempts + 1,"
        " lease_until_ms = $3::bigint, heartbeat_ms = $2::bigint, updated_ms = $2::bigint,"
        " started_ms = $2::bigint WHERE id = (SELECT id FROM batches WHERE status = 'uploaded'"
        " OR (status IN " WORKING " AND (lease_until_ms < $2::bigint OR worker = $1))"
        " ORDER BY created_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING " BATCH_COLS "),"
        " e AS (INSERT INTO batch_events(batch_id, status, at_ms, detail)"
        " SELECT id, 'staging', $2::bigint, $1 FROM c)"
        " SELECT " BATCH_COLS " FROM c",
        3, p);
    return one_batch(r, out);
}

int pg_batch_set_status(struct store *st, const char *id, const char *status, const char *reason,
                        int64_t now_ms)
{
    struct pg_store *s = PG(st);
    int final = !strcmp(status, "completed") || !strcmp(status, "failed");
    int fresh = !strcmp(status, "uploaded");
    char now[24];
    const char *p[6] = {id,
                        status,
                        pg_int(now, now_ms),
                        reason,
                        final ? "true" : "false",
                        fresh ? "true" : "false"};
    int own;
    if (tx_begin(s, &own) < 0)
        return -1;
    /* A finished batch sent back (reset, reprocess): its counts leave the rollups now, while
     * the record still says when it finished; the next run counts it again. */
    int rc = fresh ? pg_rollup_undo_batch(s, id) : 0;
    if (rc == 0)
        rc = pg_cmd(s, "batch status",
                    "WITH u AS (UPDATE batches SET status = $2, updated_ms = $3::bigint,"
                    " rejection_reason = CASE WHEN $2 = 'failed' THEN $4::text WHEN $6::boolean"
                    " THEN NULL ELSE rejection_reason END,"
                    " finished_ms = CASE WHEN $5::boolean THEN $3::bigint WHEN $6::boolean"
                    " THEN NULL ELSE finished_ms END,"
                    " worker = CASE WHEN $5::boolean OR $6::boolean THEN NULL ELSE worker END,"
                    " lease_until_ms = CASE WHEN $5::boolean OR $6::boolean THEN NULL"
                    " ELSE lease_until_ms END,"
                    " attempts = CASE WHEN $6::boolean THEN 0 ELSE attempts END,"
                    /* sent back: nothing of it counts until it finishes again (docs/api.md) */
                    " row_count_total = CASE WHEN $6::boolean THEN 0 ELSE row_count_total END,"
                    " row_count_inserted = CASE WHEN $6::boolean THEN 0"
                    " ELSE row_count_inserted END,"
                    " row_count_invalid = CASE WHEN $6::boolean THEN 0 ELSE row_count_invalid END,"
                    " row_count_duplicate = CASE WHEN $6::boolean THEN 0"
                    " ELSE row_count_duplicate END"
                    " WHERE id = $1 RETURNING id)"
                    " INSERT INTO batch_events(batch_id, status, at_ms, detail)"
                    " SELECT id, $2, $3::bigint, $4::text FROM u",
                    6, p);
    if (rc == 0 && fresh) /* wake the workers of every node (delivered at commit) */
        rc = pg_cmd(s, "batch notify", "NOTIFY sluice_batches", 0, NULL);
    return tx_end(s, own, rc);
}

int pg_batch_heartbeat(struct store *st, const char *id, const char *worker, int64_t now_ms,
                       int64_t lease_ms)
{
    char now[24], lease[24];
    const char *p[4] = {id, worker, pg_int(now, now_ms), pg_int(lease, now_ms + lease_ms)};
    PGresult *r =
        pg_exec(PG(st), "batch heartbeat",
                "UPDATE batches SET heartbeat_ms = $3::bigint, lease_until_ms = $4::bigint"
                " WHERE id = $1 AND worker = $2",
                4, p);
    if (!r)
        return -1;
    int held = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return held ? 0 : 1;
}

int pg_batch_set_counts(struct store *st, const struct batch *b)
{
    char t[24], i[24], v[24], d[24];
    const char *p[5] = {b->id, pg_int(t, b->total), pg_int(i, b->inserted), pg_int(v, b->invalid),
                        pg_int(d, b->duplicate)};
    return pg_cmd(
        PG(st), "batch counts",
        "UPDATE batches SET row_count_total = $2::bigint, row_count_inserted = $3::bigint,"
        " row_count_invalid = $4::bigint, row_count_duplicate = $5::bigint WHERE id = $1",
        5, p);
}

int pg_batch_set_threshold(struct store *st, const char *id, double pct, int64_t now_ms)
{
    char v[32], now[24];
    snprintf(v, sizeof v, "%.17g", pct);
    const char *p[3] = {id, v, pg_int(now, now_ms)};
    return pg_cmd(PG(st), "batch threshold",
                  "UPDATE batches SET error_threshold_percent = $2::float8, updated_ms = $3::bigint"
                  " WHERE id = $1",
                  3, p);
}

int pg_batch_history(struct store *st, const char *id, json_t **out)
{
    const char *p[1] = {id};
    PGresult *r = pg_exec(PG(st), "batch history",
                          "SELECT status, at_ms, detail FROM batch_events WHERE batch_id = $1"
                          " ORDER BY seq",
                          1, p);
    if (!r)
        return -1;
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(a, json_pack("{s:s,s:I,s:s?}", "status", PQgetvalue(r, i, 0), "at_ms",
                                           (json_int_t)pg_get_int(r, i, 1), "detail",
                                           PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2)));
    PQclear(r);
    *out = a;
    return 0;
}

/* Row errors are queued for COPY with the batch's rows (pg_copy.c). */
int pg_batch_errors_add(struct store *st, const char *batch_id, const struct batch_error_new *e,
                        size_t n, int64_t now_ms)
{
    struct pg_store *s = PG(st);
    char now[24], row[24];
    pg_int(now, now_ms);
    int own, rc = n ? tx_begin(s, &own) : 0;
    if (!n)
        return 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *p[6] = {batch_id,   pg_int(row, e[i].row), e[i].code,
                            e[i].field, e[i].message,          now};
        size_t len[6];
        for (int k = 0; k < 6; k++)
            len[k] = p[k] ? strlen(p[k]) : 0;
        rc = pg_copy_put(s, "batch_errors", "batch_id, row_no, code, field, message, created_ms", 6,
                         0, p, len);
    }
    return tx_end(s, own, rc);
}

int pg_batch_errors_list(struct store *st, const char *batch_id, int64_t after_row,
                         int64_t after_seq, int limit, json_t **out)
{
    char row[24], seq[24], lim[24];
    const char *p[4] = {batch_id, pg_int(row, after_row), limit_param(lim, limit),
                        pg_int(seq, after_seq)};
    PGresult *r = pg_exec(PG(st), "batch errors",
                          "SELECT row_no, code, field, message, created_ms, seq FROM batch_errors"
                          " WHERE batch_id = $1 AND (row_no, seq) > ($2::bigint, $4::bigint)"
                          " ORDER BY row_no, seq LIMIT $3::bigint",
                          4, p);
    if (!r)
        return -1;
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(
            a, json_pack("{s:I,s:s,s:s?,s:s,s:I,s:I}", "row_number",
                         (json_int_t)pg_get_int(r, i, 0), "error_code", PQgetvalue(r, i, 1),
                         "field", PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
                         "error_message", PQgetvalue(r, i, 3), "created_ms",
                         (json_int_t)pg_get_int(r, i, 4), "seq", (json_int_t)pg_get_int(r, i, 5)));
    PQclear(r);
    *out = a;
    return 0;
}

/* Count or DELETE a batch's rows in ds_<dataset> (by the _batch_id index). */
static int clear_rows(struct pg_store *s, const char *dataset, const char *batch_id, int count_only,
                      int64_t *rows)
{
    char name[128], sql[400];
    snprintf(name, sizeof name, "ds_%s", dataset);
    char *ident = PQescapeIdentifier(s->conn, name, strlen(name));
    if (!ident)
        return pg_fail(s, "batch clear");
    snprintf(sql, sizeof sql, "%s FROM %s WHERE _batch_id = $1",
             count_only ? "SELECT count(*)" : "DELETE", ident);
    PQfreemem(ident);
    const char *p[1] = {batch_id};
    PGresult *r = pg_exec(s, "batch clear", sql, 1, p);
    if (!r)
        return -1;
    *rows = count_only ? pg_get_int(r, 0, 0) : strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

int pg_batch_clear(struct store *st, const char *dataset, const char *batch_id, int count_only,
                   int64_t *rows)
{
    struct pg_store *s = PG(st);
    int64_t n = 0;
    if (count_only) {
        if (clear_rows(s, dataset, batch_id, 1, &n) < 0)
            return -1;
        if (rows)
            *rows = n;
        return 0;
    }
    const char *p[1] = {batch_id};
    int own, rc = tx_begin(s, &own);
    if (rc == 0)
        rc = pg_rollup_undo_batch(s, batch_id) < 0 ? -1 : 0;
    if (rc == 0)
        rc = clear_rows(s, dataset, batch_id, 0, &n);
    if (rc == 0)
        rc = pg_cmd(s, "batch clear", "DELETE FROM batch_errors WHERE batch_id = $1", 1, p);
    if (rc == 0)
        rc = pg_cmd(s, "batch clear", "DELETE FROM dlq WHERE batch_id = $1", 1, p);
    rc = tx_end(s, own, rc);
    if (rc == 0 && rows)
        *rows = n;
    return rc;
}

int pg_batch_delete(struct store *st, const char *id)
{
    struct pg_store *s = PG(st);
    const char *p[1] = {id};
    return pg_cmd(s, "batch delete",
                  "WITH e AS (DELETE FROM batch_events WHERE batch_id = $1)"
                  " DELETE FROM batches WHERE id = $1",
                  1, p);
}

int pg_batch_stuck(struct store *st, int64_t before_ms, json_t **out)
{
    char before[24];
    const char *p[1] = {pg_int(before, before_ms)};
    PGresult *r =
        pg_exec(PG(st), "stuck",
                "SELECT id, dataset, status, greatest(updated_ms, coalesce(heartbeat_ms, 0)) p,"
                " attempts, worker FROM batches WHERE status NOT IN ('completed', 'failed') AND"
                " greatest(updated_ms, coalesce(heartbeat_ms, 0)) < $1::bigint ORDER BY p"
                " LIMIT 1000",
                1, p);
    if (!r)
        return -1;
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        char t[32];
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:i,s:s?}", "batch_id",
                                           PQgetvalue(r, i, 0), "dataset", PQgetvalue(r, i, 1),
                                           "status", PQgetvalue(r, i, 2), "last_progress_at",
                                           clock_rfc3339(pg_get_int(r, i, 3), t, sizeof t),
                                           "attempts", (int)pg_get_int(r, i, 4), "worker",
                                           PQgetisnull(r, i, 5) ? NULL : PQgetvalue(r, i, 5)));
    }
    PQclear(r);
    *out = a;
    return 0;
}

/* {"<col 0>": <col 1>, ...} of a two-column result. */
static json_t *counts_object(const PGresult *r)
{
    json_t *o = json_object();
    for (int i = 0; i < PQntuples(r); i++)
        json_object_set_new(o, PQgetvalue(r, i, 0), json_integer(pg_get_int(r, i, 1)));
    return o;
}

int pg_dlq_new_since(struct store *st, int64_t since_ms, json_t **out)
{
    char since[24];
    const char *p[1] = {pg_int(since, since_ms)};
    PGresult *r = pg_exec(PG(st), "dlq growth",
                          "SELECT dataset, count(*) FROM dlq WHERE status = 'open'"
                          " AND received_ms >= $1::bigint GROUP BY dataset",
                          1, p);
    if (!r)
        return -1;
    *out = counts_object(r);
    PQclear(r);
    return 0;
}

int pg_batch_states(struct store *st, json_t **out)
{
    PGresult *r = pg_exec(PG(st), "batch states",
                          "SELECT status, count(*) FROM batches GROUP BY status", 0, NULL);
    if (!r)
        return -1;
    *out = counts_object(r);
    PQclear(r);
    return 0;
}

int pg_batch_auto_reset(struct store *st, const char *id, int max, int64_t now_ms)
{
    const char *p[1] = {id};
    PGresult *r = pg_exec(PG(st), "auto reset",
                          "SELECT count(*) FROM batch_events WHERE batch_id = $1"
                          " AND status = 'uploaded' AND detail = 'sentinel auto-reset'",
                          1, p);
    if (!r)
        return -1;
    int64_t n = pg_get_int(r, 0, 0);
    PQclear(r);
    if (n >= max)
        return 0;
    return pg_batch_set_status(st, id, "uploaded", "sentinel auto-reset", now_ms) < 0 ? -1 : 1;
}
