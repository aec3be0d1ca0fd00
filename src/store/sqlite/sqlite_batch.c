/*
 * sqlite_batch.c - the SQLite backend's batch tables: batches (the
 * record and its state), batch_events (every transition with its time),
 * batch_errors (every error of every rejected row).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sqlite_internal.h"
#include "util/buf.h"
#include "util/mem.h"

#define SQ(st) ((struct sqlite_store *)(st))

void batch_release(struct batch *b)
{
    if (!b)
        return;
    free(b->id);
    free(b->dataset);
    free(b->source);
    free(b->filename);
    free(b->path);
    free(b->sha256);
    free(b->status);
    free(b->rejection_reason);
    free(b->worker);
    free(b->content_type);
    memset(b, 0, sizeof *b);
}

#define BATCH_COLS                                                                                 \
    "id, dataset, source, filename, path, bytes, sha256, status, rejection_reason,"                \
    " error_threshold_percent, row_count_total, row_count_inserted, row_count_invalid,"            \
    " row_count_duplicate, attempts, worker, lease_until_ms, heartbeat_ms, created_ms,"            \
    " updated_ms, started_ms, finished_ms, content_type"

static char *col(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    return t ? sl_strdup((const char *)t) : NULL;
}

/* The row q is on into b (owned strings). -1 when out of memory (b is then released). */
static int read_batch(sqlite3_stmt *q, struct batch *b)
{
    int oom = 0;
    memset(b, 0, sizeof *b);
    b->id = sqlite_col_dup(q, 0, &oom);
    b->dataset = sqlite_col_dup(q, 1, &oom);
    b->source = sqlite_col_dup(q, 2, &oom);
    b->filename = sqlite_col_dup(q, 3, &oom);
    b->path = sqlite_col_dup(q, 4, &oom);
    b->bytes = sqlite3_column_int64(q, 5);
    b->sha256 = sqlite_col_dup(q, 6, &oom);
    b->status = sqlite_col_dup(q, 7, &oom);
    b->rejection_reason = sqlite_col_dup(q, 8, &oom);
    b->error_threshold_percent = sqlite3_column_double(q, 9);
    b->total = sqlite3_column_int64(q, 10);
    b->inserted = sqlite3_column_int64(q, 11);
    b->invalid = sqlite3_column_int64(q, 12);
    b->duplicate = sqlite3_column_int64(q, 13);
    b->attempts = sqlite3_column_int(q, 14);
    b->worker = sqlite_col_dup(q, 15, &oom);
    b->lease_until_ms = sqlite3_column_int64(q, 16);
    b->heartbeat_ms = sqlite3_column_int64(q, 17);
    b->created_ms = sqlite3_column_int64(q, 18);
    b->updated_ms = sqlite3_column_int64(q, 19);
    b->started_ms = sqlite3_column_int64(q, 20);
    b->finished_ms = sqlite3_column_int64(q, 21);
    b->content_type = sqlite_col_dup(q, 22, &oom);
    if (oom)
        batch_release(b);
    return oom ? -1 : 0;
}

static void bind_text_or_null(sqlite3_stmt *q, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(q, i);
}

static int event(struct sqlite_store *s, const char *id, const char *status, const char *detail,
                 int64_t now)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO batch_events(batch_id, status, at_ms, detail)"
                           " VALUES (?,?,?,?)",
                           -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch event");
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, now);
    bind_text_or_null(q, 4, detail);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "batch event");
}

/* Run one statement with bound parameters prepared by the caller; finalizes it. */
static int step_done(struct sqlite_store *s, sqlite3_stmt *q, const char *what)
{
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, what);
}

int sqlite_batch_add(struct store *st, const struct batch *b)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO batches(id, dataset, source, filename, path, bytes, sha256,"
                           " status, error_threshold_percent, created_ms, updated_ms, rows_tracked,"
                           " content_type) VALUES (?,?,?,?,?,?,?,'uploaded',?,?,?,1,?)",
                           -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch add");
    sqlite3_bind_text(q, 1, b->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, b->dataset, -1, SQLITE_STATIC);
    bind_text_or_null(q, 3, b->source);
    bind_text_or_null(q, 4, b->filename);
    sqlite3_bind_text(q, 5, b->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, b->bytes);
    sqlite3_bind_text(q, 7, b->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 8, b->error_threshold_percent);
    sqlite3_bind_int64(q, 9, b->created_ms);
    sqlite3_bind_int64(q, 10, b->created_ms);
    bind_text_or_null(q, 11, b->content_type);
    if (step_done(s, q, "batch add") < 0)
        return -1;
    return event(s, b->id, "uploaded", NULL, b->created_ms);
}

int sqlite_batch_get(struct store *st, const char *id, struct batch *out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT " BATCH_COLS " FROM batches WHERE id = ?", -1, &q,
                           NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch get");
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q), mem = 0;
    if (rc == SQLITE_ROW)
        mem = read_batch(q, out);
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW)
        return mem < 0 ? sqlite_oom(s, "batch get") : 0;
    return rc == SQLITE_DONE ? 1 : sqlite_fail(s, "batch get");
}

int sqlite_batch_list(struct store *st, const struct batch_filter *f, struct batch **out, size_t *n)
{
    struct sqlite_store *s = SQ(st);
    struct buf sql;
    buf_init(&sql, 1 << 16);
    buf_appends(&sql, "SELECT " BATCH_COLS " FROM batches WHERE 1");
    if (f->after_id)
        buf_appends(&sql, f->desc ? " AND id < ?1" : " AND id > ?1");
    if (f->status)
        buf_appends(&sql, " AND status = ?2");
    if (f->dataset)
        buf_appends(&sql, " AND dataset = ?3");
    if (f->source)
        buf_appends(&sql, " AND source = ?4");
    if (f->filename_contains)
        buf_appends(&sql, " AND instr(filename, ?5) > 0");
    if (f->created_after_ms)
        buf_appends(&sql, " AND created_ms > ?6");
    if (f->created_before_ms)
        buf_appends(&sql, " AND created_ms < ?8");
    /* ids sort by creation time (ingest_new_id): the primary key serves either order */
    buf_appends(&sql, f->desc ? " ORDER BY id DESC LIMIT ?7" : " ORDER BY id LIMIT ?7");
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(s->db, sql.data, -1, &q, NULL);
    buf_release(&sql);
    if (rc != SQLITE_OK)
        return sqlite_fail(s, "batch list");
    bind_text_or_null(q, 1, f->after_id);
    bind_text_or_null(q, 2, f->status);
    bind_text_or_null(q, 3, f->dataset);
    bind_text_or_null(q, 4, f->source);
    bind_text_or_null(q, 5, f->filename_contains);
    sqlite3_bind_int64(q, 6, f->created_after_ms);
    sqlite3_bind_int(q, 7, f->limit);
    sqlite3_bind_int64(q, 8, f->created_before_ms);
    size_t cap = 16, cnt = 0;
    struct batch *v = sl_malloc(cap * sizeof *v);
    int mem = v ? 0 : -1;
    rc = SQLITE_DONE;
    while (mem == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (cnt == cap) {
            struct batch *nv = sl_realloc(v, 2 * cap * sizeof *v);
            if (!nv) {
                mem = -1;
                break;
            }
            v = nv;
            cap *= 2;
        }
        if ((mem = read_batch(q, &v[cnt])) == 0)
            cnt++;
    }
    sqlite3_finalize(q);
    if (mem < 0 || rc != SQLITE_DONE) {
        for (size_t i = 0; v && i < cnt; i++)
            batch_release(&v[i]);
        free(v);
        return mem < 0 ? sqlite_oom(s, "batch list") : sqlite_fail(s, "batch list");
    }
    *out = v;
    *n = cnt;
    return 0;
}

int sqlite_batch_claim(struct store *st, const char *worker, int64_t now_ms, int64_t lease_ms,
                       struct batch *out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    /* An uploaded batch, or one whose worker stopped renewing its lease; but for a dataset
     * with a key, none while another batch of it is in a live worker's hands: stored in
     * slices, one batch's rows would otherwise meet another's unseen keys (sqlite.c,
     * key_hidden). On this one-writer store their passes were one after the other anyway. */
    if (sqlite3_prepare_v2(
            s->db,
            "SELECT id FROM batches WHERE (status = 'uploaded' OR (status IN"
            " ('staging','validating','transforming','inserting','upserting')"
            " AND (lease_until_ms < ?1 OR worker = ?2)))"
            " AND NOT (EXISTS (SELECT 1 FROM datasets d WHERE d.name = batches.dataset"
            " AND d.key IS NOT NULL) AND EXISTS (SELECT 1 FROM batches o"
            " WHERE o.dataset = batches.dataset AND o.id <> batches.id AND o.status IN"
            " ('staging','validating','transforming','inserting','upserting')"
            " AND o.lease_until_ms >= ?1))"
            " ORDER BY id LIMIT 1",
            -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch claim");
    sqlite3_bind_int64(q, 1, now_ms);
    sqlite3_bind_text(q, 2, worker, -1, SQLITE_STATIC); /* its own, from before a restart */
    int rc = sqlite3_step(q);
    char *id = rc == SQLITE_ROW ? col(q, 0) : NULL;
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE)
        return 1;
    if (!id)
        return rc == SQLITE_ROW ? sqlite_oom(s, "batch claim") : sqlite_fail(s, "batch claim");
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE batches SET status = 'staging', worker = ?2,"
                           " attempts = attempts + 1,"
                           " lease_until_ms = ?3, heartbeat_ms = ?4, updated_ms = ?4,"
                           " started_ms = ?4 WHERE id = ?1",
                           -1, &q, NULL) != SQLITE_OK) {
        free(id);
        return sqlite_fail(s, "batch claim");
    }
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, worker, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, now_ms + lease_ms);
    sqlite3_bind_int64(q, 4, now_ms);
    rc = step_done(s, q, "batch claim");
    if (rc == 0)
        rc = event(s, id, "staging", worker, now_ms);
    if (rc == 0)
        rc = sqlite_batch_get(st, id, out);
    free(id);
    return rc;
}

int sqlite_batch_set_status(struct store *st, const char *id, const char *status,
                            const char *reason, int64_t now_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    int final = !strcmp(status, "completed") || !strcmp(status, "failed");
    int fresh = !strcmp(status, "uploaded");
    /* A finished batch sent back (reset, reprocess): its counts leave the rollups now, while
     * the record still says when it finished; the next run counts it again. */
    if (fresh && sqlite_rollup_undo_batch(s, id) < 0)
        return -1;
    if (sqlite3_prepare_v2(
            s->db,
            "UPDATE batches SET status = ?2, updated_ms = ?3,"
            " rejection_reason = CASE WHEN ?2 = 'failed' THEN ?4 WHEN ?6 THEN NULL"
            " ELSE rejection_reason END,"
            " finished_ms = CASE WHEN ?5 THEN ?3 WHEN ?6 THEN NULL ELSE finished_ms END,"
            " worker = CASE WHEN ?5 OR ?6 THEN NULL ELSE worker END,"
            " lease_until_ms = CASE WHEN ?5 OR ?6 THEN NULL ELSE lease_until_ms END,"
            " attempts = CASE WHEN ?6 THEN 0 ELSE attempts END,"
            /* sent back: nothing of it counts until it finishes again (docs/api.md) */
            " row_count_total = CASE WHEN ?6 THEN 0 ELSE row_count_total END,"
            " row_count_inserted = CASE WHEN ?6 THEN 0 ELSE row_count_inserted END,"
            " row_count_invalid = CASE WHEN ?6 THEN 0 ELSE row_count_invalid END,"
            " row_count_duplicate = CASE WHEN ?6 THEN 0 ELSE row_count_duplicate END WHERE id = ?1",
            -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch status");
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, now_ms);
    bind_text_or_null(q, 4, reason);
    sqlite3_bind_int(q, 5, final);
    sqlite3_bind_int(q, 6, fresh);
    if (step_done(s, q, "batch status") < 0)
        return -1;
    return event(s, id, status, reason, now_ms);
}

int sqlite_batch_heartbeat(struct store *st, const char *id, const char *worker, int64_t now_ms,
                           int64_t lease_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE batches SET heartbeat_ms = ?3, lease_until_ms = ?4"
                           " WHERE id = ?1 AND worker = ?2",
                           -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch heartbeat");
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, worker, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, now_ms);
    sqlite3_bind_int64(q, 4, now_ms + lease_ms);
    if (step_done(s, q, "batch heartbeat") < 0)
        return -1;
    return sqlite3_changes(s->db) ? 0 : 1;
}

int sqlite_batch_set_counts(struct store *st, const struct batch *b)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE batches SET row_count_total = ?2, row_count_inserted = ?3,"
                           " row_count_invalid = ?4, row_count_duplicate = ?5 WHERE id = ?1",
                           -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch counts");
    sqlite3_bind_text(q, 1, b->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, b->total);
    sqlite3_bind_int64(q, 3, b->inserted);
    sqlite3_bind_int64(q, 4, b->invalid);
    sqlite3_bind_int64(q, 5, b->duplicate);
    return step_done(s, q, "batch counts");
}

int sqlite_batch_set_threshold(struct store *st, const char *id, double pct, int64_t now_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE batches SET error_threshold_percent = ?2, updated_ms = ?3"
                           " WHERE id = ?1",
                           -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch threshold");
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 2, pct);
    sqlite3_bind_int64(q, 3, now_ms);
    return step_done(s, q, "batch threshold");
}

int sqlite_batch_history(struct store *st, const char *id, json_t **out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT status, at_ms, detail FROM batch_events WHERE batch_id = ?"
                           " ORDER BY seq",
                           -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch history");
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *d = sqlite3_column_text(q, 2);
        json_array_append_new(a, json_pack("{s:s,s:I,s:s?}", "status",
                                           (const char *)sqlite3_column_text(q, 0), "at_ms",
                                           (json_int_t)sqlite3_column_int64(q, 1), "detail",
                                           (const char *)d));
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        json_decref(a);
        return sqlite_fail(s, "batch history");
    }
    *out = a;
    return 0;
}

int sqlite_batch_errors_add(struct store *st, const char *batch_id, const struct batch_error_new *e,
                            size_t n, int64_t now_ms)
{
    struct sqlite_store *s = SQ(st);
    if (!s->errors_add_q &&
        sqlite3_prepare_v3(s->db,
                           "INSERT INTO batch_errors(batch_id, row_no, code, field, message,"
                           " created_ms) VALUES (?,?,?,?,?,?)",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->errors_add_q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch errors");
    sqlite3_stmt *q = s->errors_add_q;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, e[i].row);
        sqlite3_bind_text(q, 3, e[i].code, -1, SQLITE_STATIC);
        bind_text_or_null(q, 4, e[i].field);
        sqlite3_bind_text(q, 5, e[i].message, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 6, now_ms);
        int rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_DONE)
            return sqlite_fail(s, "batch errors");
    }
    return 0;
}

int sqlite_batch_errors_list(struct store *st, const char *batch_id, int64_t after_row,
                             int64_t after_seq, int limit, json_t **out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT row_no, code, field, message, created_ms, rowid FROM"
                           " batch_errors WHERE batch_id = ?1 AND (row_no, rowid) > (?2, ?4)"
                           " ORDER BY row_no, rowid LIMIT ?3",
                           -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch errors");
    sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, after_row);
    sqlite3_bind_int(q, 3, limit);
    sqlite3_bind_int64(q, 4, after_seq);
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:I,s:s,s:s?,s:s,s:I,s:I}", "row_number",
                                           (json_int_t)sqlite3_column_int64(q, 0), "error_code",
                                           (const char *)sqlite3_column_text(q, 1), "field",
                                           (const char *)sqlite3_column_text(q, 2), "error_message",
                                           (const char *)sqlite3_column_text(q, 3), "created_ms",
                                           (json_int_t)sqlite3_column_int64(q, 4), "seq",
                                           (json_int_t)sqlite3_column_int64(q, 5)));
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        json_decref(a);
        return sqlite_fail(s, "batch errors");
    }
    *out = a;
    return 0;
}

int sqlite_has_batch_index(struct sqlite_store *s, const char *dataset)
{
    char name[200];
    snprintf(name, sizeof name, "ds_%s_batch", dataset);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                           -1, &q, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int yes = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return yes;
}

int sqlite_batch_range_note(struct sqlite_store *s, const char *batch_id, int64_t rowid)
{
    if (s->range.used && strcmp(s->range.batch_id, batch_id) != 0 &&
        sqlite_batch_range_flush(s) < 0)
        return -1;
    if (!s->range.used) {
        snprintf(s->range.batch_id, sizeof s->range.batch_id, "%s", batch_id);
        s->range.lo = s->range.hi = rowid;
        s->range.used = 1;
    } else if (rowid < s->range.lo) {
        s->range.lo = rowid;
    } else if (rowid > s->range.hi) {
        s->range.hi = rowid;
    }
    return 0;
}

int sqlite_batch_range_flush(struct sqlite_store *s)
{
    if (!s->range.used)
        return 0;
    s->range.used = 0;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE batches SET rows_first = min(coalesce(rows_first, ?2), ?2),"
                           " rows_last = max(coalesce(rows_last, ?3), ?3) WHERE id = ?1",
                           -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch rows");
    sqlite3_bind_text(q, 1, s->range.batch_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, s->range.lo);
    sqlite3_bind_int64(q, 3, s->range.hi);
    return step_done(s, q, "batch rows");
}

/* One statement whose only parameter ?1 is id. */
static int run_one(struct sqlite_store *s, const char *sql, const char *id, const char *what)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, what);
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    return step_done(s, q, what);
}

/* 1 when batch_id is in batch_pending, 0 when not, -1 on failure. */
static int is_pending(struct sqlite_store *s, const char *batch_id)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM batch_pending WHERE batch_id = ?1", -1, &q,
                           NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch pending");
    sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sqlite_fail(s, "batch pending");
}

/*
 * The versions of rows the batch replaced (dsv_<dataset>, SQLITE_SAVED), at most limit of
 * them when limit > 0: put back in place of the batch's (restore: the batch is being taken
 * back while pending; each row keeps its rowid, so what readers see does not change), or
 * dropped (the batch was published: nobody sees them any more). *rows gets how many.
 */
static int saved_rows(struct sqlite_store *s, const char *dataset, const char *batch_id,
                      int restore, int64_t limit, int64_t *rows)
{
    *rows = 0;
    int has = sqlite_has_saved(s, dataset);
    if (has <= 0)
        return has;
    struct buf cols, sql;
    buf_init(&cols, 1 << 16);
    buf_init(&sql, 1 << 18);
    char pick[300];
    snprintf(pick, sizeof pick,
             "SELECT rowid FROM \"" SQLITE_SAVED "%s\" WHERE _pending = ?1 ORDER BY rowid"
             " LIMIT %lld",
             dataset, (long long)(limit > 0 ? limit : -1));
    int rc = -1, bad = 0;
    if (restore) {
        char pragma[200];
        snprintf(pragma, sizeof pragma, "PRAGMA table_info(\"" SQLITE_ROWS "%s\")", dataset);
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(s->db, pragma, -1, &q, NULL) != SQLITE_OK) {
            sqlite_fail(s, "batch restore");
            goto out;
        }
        for (int n = 0; sqlite3_step(q) == SQLITE_ROW; n++)
            bad |= buf_printf(&cols, "%s\"%s\"", n ? ", " : "", sqlite3_column_text(q, 1)) < 0;
        sqlite3_finalize(q);
        bad |= buf_printf(&sql,
                          "INSERT OR REPLACE INTO \"" SQLITE_ROWS "%s\" (%s) SELECT %s FROM"
                          " \"" SQLITE_SAVED "%s\" WHERE rowid IN (%s)",
                          dataset, cols.data, cols.data, dataset, pick) < 0;
        if (bad) {
            sqlite_oom(s, "batch restore");
            goto out;
        }
        if (run_one(s, sql.data, batch_id, "batch restore") < 0)
            goto out;
        buf_reset(&sql);
    }
    bad |= buf_printf(&sql, "DELETE FROM \"" SQLITE_SAVED "%s\" WHERE rowid IN (%s)", dataset,
                      pick) < 0;
    if (bad) {
        sqlite_oom(s, "batch restore");
        goto out;
    }
    if (run_one(s, sql.data, batch_id, "batch restore") < 0)
        goto out;
    *rows = sqlite3_changes(s->db);
    rc = 0;
out:
    buf_release(&cols);
    buf_release(&sql);
    return rc;
}

/* DELETE a batch's rows from its dataset's table (at most limit of them when limit > 0):
 * by the _batch_id index (upsert datasets), by the batch's rowid range, or by a scan
 * (batches whose rows were not tracked). A batch still pending first gets back the rows it
 * replaced (saved_rows); those count in *rows. */
static int clear_rows(struct sqlite_store *s, const char *dataset, const char *batch_id,
                      int count_only, int64_t limit, int64_t *rows)
{
    *rows = 0;
    if (sqlite_batch_range_flush(s) < 0)
        return -1;
    int64_t restored = 0;
    if (!count_only) {
        int pending = is_pending(s, batch_id);
        if (pending < 0 || saved_rows(s, dataset, batch_id, pending, limit, &restored) < 0)
            return -1;
        if (limit > 0 && restored >= limit) {
            *rows = restored;
            return 0;
        }
        if (limit > 0)
            limit -= restored;
    }
    int tracked = 0, have_range = 0;
    int64_t lo = 0, hi = -1;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT rows_tracked, rows_first, rows_last FROM batches"
                           " WHERE id = ?",
                           -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch clear");
    sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) {
        tracked = sqlite3_column_int(q, 0);
        have_range = sqlite3_column_type(q, 1) != SQLITE_NULL;
        lo = sqlite3_column_int64(q, 1);
        hi = sqlite3_column_int64(q, 2);
    }
    sqlite3_finalize(q);
    char where[160], sql[600];
    if (!sqlite_has_batch_index(s, dataset) && tracked) {
        if (!have_range) {
            *rows = restored;
            return 0; /* it stored no row */
        }
        snprintf(where, sizeof where, "_id BETWEEN %lld AND %lld AND _batch_id = ?1", (long long)lo,
                 (long long)hi);
    } else {
        snprintf(where, sizeof where, "_batch_id = ?1");
    }
    if (count_only)
        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"" SQLITE_ROWS "%s\" WHERE %s", dataset,
                 where);
    else if (limit > 0)
        snprintf(sql, sizeof sql,
                 "DELETE FROM \"" SQLITE_ROWS "%s\" WHERE _id IN (SELECT _id FROM \"" SQLITE_ROWS
                 "%s\" WHERE %s LIMIT %lld)",
                 dataset, dataset, where, (long long)limit);
    else
        snprintf(sql, sizeof sql, "DELETE FROM \"" SQLITE_ROWS "%s\" WHERE %s", dataset, where);
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return sqlite_fail(s, "batch clear");
    sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (count_only && rc == SQLITE_ROW) {
        *rows = sqlite3_column_int64(q, 0);
        rc = SQLITE_DONE;
    } else if (!count_only && rc == SQLITE_DONE) {
        *rows = restored + sqlite3_changes(s->db);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "batch clear");
}

int sqlite_batch_clear(struct store *st, const char *dataset, const char *batch_id, int count_only,
                       int64_t *rows)
{
    struct sqlite_store *s = SQ(st);
    int64_t n;
    if (!count_only && sqlite_rollup_undo_batch(s, batch_id) < 0)
        return -1;
    if (clear_rows(s, dataset, batch_id, count_only, 0, &n) < 0)
        return -1;
    if (rows)
        *rows = n;
    if (count_only)
        return 0;
    const char *stmts[4] = {"DELETE FROM batch_errors WHERE batch_id = ?1",
                            "DELETE FROM dlq WHERE batch_id = ?1",
                            "DELETE FROM dlq_staged WHERE batch_id = ?1",
                            "UPDATE batches SET rows_first = NULL, rows_last = NULL"
                            " WHERE id = ?1 AND rows_tracked = 1"};
    for (int i = 0; i < 4; i++) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(s->db, stmts[i], -1, &q, NULL) != SQLITE_OK)
            return sqlite_fail(s, "batch clear");
        sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
        if (step_done(s, q, "batch clear") < 0)
            return -1;
    }
    return 0;
}

int sqlite_batch_delete(struct store *st, const char *id)
{
    struct sqlite_store *s = SQ(st);
    const char *stmts[3] = {"DELETE FROM batch_events WHERE batch_id = ?1",
                            "DELETE FROM batch_pending WHERE batch_id = ?1",
                            "DELETE FROM batches WHERE id = ?1"};
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(s->db, stmts[i], -1, &q, NULL) != SQLITE_OK)
            return sqlite_fail(s, "batch delete");
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        if (step_done(s, q, "batch delete") < 0)
            return -1;
    }
    return 0;
}

/* ---- sliced passes (store.h batch_hide, batch_rows_drop, batch_publish) ------------- */

int sqlite_batch_hide(struct store *st, const char *batch_id)
{
    struct sqlite_store *s = SQ(st);
    if (run_one(s, "INSERT OR IGNORE INTO batch_pending(batch_id) VALUES (?1)", batch_id,
                "batch hide") < 0)
        return -1;
    if (sqlite3_changes(s->db) == 0)
        return 0; /* hidden already: what it saved is still to be put back */
    /* Newly hidden: versions it saved in an earlier pass, published but not dropped yet (a
     * crash in between), must not show again. */
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT dataset FROM batches WHERE id = ?1", -1, &q, NULL) !=
        SQLITE_OK)
        return sqlite_fail(s, "batch hide");
    sqlite3_bind_text(q, 1, batch_id, -1, SQLITE_STATIC);
    int rc = 0;
    int64_t n;
    if (sqlite3_step(q) == SQLITE_ROW)
        rc = saved_rows(s, (const char *)sqlite3_column_text(q, 0), batch_id, 0, 0, &n);
    sqlite3_finalize(q);
    return rc;
}

int sqlite_batch_saved_drop(struct store *st, const char *dataset, const char *batch_id,
                            int64_t limit, int64_t *rows)
{
    struct sqlite_store *s = SQ(st);
    int pending = is_pending(s, batch_id);
    if (pending) { /* still hidden: they are what readers see */
        *rows = 0;
        return pending < 0 ? -1 : 0;
    }
    return saved_rows(s, dataset, batch_id, 0, limit > 0 ? limit : 1, rows);
}

int sqlite_batch_rows_drop(struct store *st, const char *dataset, const char *batch_id,
                           int64_t limit, int64_t *rows)
{
    return clear_rows(SQ(st), dataset, batch_id, 0, limit > 0 ? limit : 1, rows);
}

int sqlite_batch_publish(struct store *st, const char *batch_id, int dlq)
{
    struct sqlite_store *s = SQ(st);
    if (sqlite_batch_range_flush(s) < 0)
        return -1;
    /* the entries in the order they were found, with DLQ ids from now */
    if ((dlq &&
         run_one(s,
                 "INSERT INTO dlq(dataset, ingest_id, source, row_no, payload, errors, codes,"
                 " received_ms, updated_ms, batch_id) SELECT dataset, ingest_id, source, row_no,"
                 " payload, errors, codes, received_ms, updated_ms, batch_id FROM dlq_staged"
                 " WHERE batch_id = ?1 ORDER BY seq",
                 batch_id, "batch publish") < 0) ||
        run_one(s, "DELETE FROM dlq_staged WHERE batch_id = ?1", batch_id, "batch publish") < 0)
        return -1;
    return run_one(s, "DELETE FROM batch_pending WHERE batch_id = ?1", batch_id, "batch publish");
}
