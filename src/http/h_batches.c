/*
 * h_batches.c - CSV batch routes but the upload (h_batch_upload.c) and the downloads
 * (h_batch_downloads.c): the batch record and its history, the list, and the operations on
 * a batch (threshold, reset, fail, reprocess, delete with a dry run, bulk delete), each a
 * writer job of batch/batch_ops.h answered on the loop once committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "batch/batch.h"
#include "batch/batch_ops.h"
#include "http/handlers.h"
#include "http/params.h"
#include "http/router.h"
#include "writer/writer.h"
#include "config/catalog.h"
#include "store/store.h"
#include "util/mem.h"

/* ---- reading ------------------------------------------------------------ */

void h_batches_get(struct http_conn *c, struct http_request *r)
{
    struct batch b;
    if (h_get_batch(c, r->params[0], &b) != 0)
        return;
    json_t *hist = NULL;
    store_batch_history(http_conn_store(c), b.id, &hist);
    http_reply_json(c, 200, batch_json(&b, hist), NULL);
    json_decref(hist);
    batch_release(&b);
}

/* GET /api/v1/batches: newest first unless order=asc (params.c declares the parameters). */
void h_batches_list(struct http_conn *c, struct http_request *r)
{
    char status[HQ_MAX + 1], dataset[HQ_MAX + 1], source[HQ_MAX + 1], contains[HQ_MAX + 1],
        after[HQ_MAX + 1];
    long long limit = hq_int(r, "limit", 100);
    struct batch_filter f = {0};
    f.status = hq_str(r, "status", status, sizeof status);
    f.dataset = hq_str(r, "dataset", dataset, sizeof dataset);
    f.source = hq_str(r, "source", source, sizeof source);
    f.filename_contains = hq_str(r, "filename_contains", contains, sizeof contains);
    f.created_after_ms = hq_time(r, "created_after");
    f.created_before_ms = hq_time(r, "created_before");
    f.desc = hq_desc(r);
    f.after_id = hq_cursor(r, after, sizeof after) ? after : NULL;
    f.limit = (int)limit + 1;
    struct batch *v;
    size_t n;
    struct store *st = http_conn_store(c);
    if (store_batch_list(st, &f, &v, &n) < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
        return;
    }
    json_t *items = json_array();
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(items, batch_json(&v[i], NULL));
    json_t *next = hq_cursor_json("batches", f.desc, n > shown ? v[shown - 1].id : NULL);
    for (size_t i = 0; i < n; i++)
        batch_release(&v[i]);
    free(v);
    http_reply_json(c, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next), NULL);
}

/* ---- operations --------------------------------------------------------- */

/* An operation on its way through the writer, back to the loop, then (deletes) through the
 * thread pool to remove the files, and back again to answer. */
struct bop_req {
    struct batch_op_job bj; /* first: the writer sees it as a wjob */
    struct loop_msg msg;
    struct http_conn *conn;
    struct http_loop *loop;
    const struct http_app *app;
    int result_rc; /* the writer's result */
    uv_work_t work;
};

static void bop_destroy(struct bop_req *q)
{
    batch_op_release(&q->bj);
    free(q);
}

static void bop_deliver(struct wjob *job, int result)
{
    struct bop_req *q = (struct bop_req *)job;
    q->result_rc = result;
    http_post(q->loop, &q->msg);
}

static void bop_reply(struct bop_req *q)
{
    if (q->result_rc < 0) {
        h_reply_not_committed(q->conn, q->result_rc);
    } else if (q->bj.status != 200) {
        http_reply_error(q->conn, q->bj.err, "%s", q->bj.errmsg);
    } else {
        if (q->bj.op == BATCH_OP_RESET || q->bj.op == BATCH_OP_REPROCESS)
            batch_pool_kick(q->app->batches);
        http_reply_json(q->conn, 200, json_incref(q->bj.result), NULL);
    }
    bop_destroy(q);
}

static void drop_work(uv_work_t *w)
{
    struct bop_req *q = w->data;
    drop_files(q->app, q->bj.drops, q->bj.ndrops);
}

static void drop_done(uv_work_t *w, int status)
{
    (void)status; /* not run: the files are left to the sweep */
    bop_reply(w->data);
}

/* On the loop, after the commit: the records are gone, now their files (the answer waits,
 * so that a deleted batch is gone whole when it comes). */
static void bop_answer(struct loop_msg *m)
{
    struct bop_req *q = (struct bop_req *)((char *)m - offsetof(struct bop_req, msg));
    q->work.data = q;
    if (q->result_rc == 0 && q->bj.status == 200 && q->bj.ndrops > 0 &&
        uv_queue_work(http_conn_uv_loop(q->conn), &q->work, drop_work, drop_done) == 0)
        return;
    bop_reply(q);
}

static struct bop_req *bop_new(struct http_conn *c, struct http_request *r, enum batch_op op,
                               const char *reason, double pct, int dry_run)
{
    struct bop_req *q = sl_calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->conn = c;
    q->loop = http_conn_loop(c);
    q->app = http_conn_app(c);
    q->bj.op = op;
    q->bj.id = sl_strdup(r->nparams ? r->params[0] : "");
    q->bj.reason = reason ? sl_strdup(reason) : NULL;
    q->bj.pct = pct;
    q->bj.dry_run = dry_run;
    q->msg.fn = bop_answer;
    q->bj.job.apply = batch_op_apply;
    q->bj.job.deliver = bop_deliver;
    q->bj.job.nrows = 1;
    return q;
}

static void bop_send(struct http_conn *c, struct bop_req *q)
{
    if (writer_submit(q->app->writer, &q->bj.job) < 0) {
        http_reply_error_status(c, 503, ERR_OVERLOADED, "Retry-After: 1\r\n", NULL);
        bop_destroy(q);
    }
}

static void bop_submit(struct http_conn *c, struct http_request *r, enum batch_op op,
                       const char *reason, double pct, int dry_run)
{
    struct bop_req *q = bop_new(c, r, op, reason, pct, dry_run);
    if (!q)
        http_reply_error(c, ERR_INTERNAL, "out of memory");
    else
        bop_send(c, q);
}

void h_batches_reset(struct http_conn *c, struct http_request *r)
{
    bop_submit(c, r, BATCH_OP_RESET, NULL, 0, 0);
}

void h_batches_reprocess(struct http_conn *c, struct http_request *r)
{
    bop_submit(c, r, BATCH_OP_REPROCESS, NULL, 0, 0);
}

/* A JSON body (possibly empty) as an object; NULL after answering 400. */
static json_t *json_body(struct http_conn *c, struct http_request *r)
{
    if (r->body.len == 0)
        return json_object();
    json_error_t jerr;
    json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        http_reply_error(c, ERR_MALFORMED_JSON, "the body must be a JSON object: %s", jerr.text);
        return NULL;
    }
    return j;
}

void h_batches_fail(struct http_conn *c, struct http_request *r)
{
    json_t *j = json_body(c, r);
    if (!j)
        return;
    json_t *reason = json_object_get(j, "reason");
    if (reason && !json_is_string(reason)) {
        json_decref(j);
        http_reply_error(c, ERR_INVALID_PARAMETER, "reason must be a string");
        return;
    }
    bop_submit(c, r, BATCH_OP_FAIL, reason ? json_string_value(reason) : "failed by an operator", 0,
               0);
    json_decref(j);
}

void h_batches_patch(struct http_conn *c, struct http_request *r)
{
    json_t *j = json_body(c, r);
    if (!j)
        return;
    json_t *p = json_object_get(j, "error_threshold_percent");
    double pct = p ? json_number_value(p) : -1;
    if (!p || !json_is_number(p) || pct < 0 || pct > 100 || json_object_size(j) != 1) {
        json_decref(j);
        http_reply_error(c, ERR_INVALID_PARAMETER,
                         "the body must be {\"error_threshold_percent\": 0..100}");
        return;
    }
    json_decref(j);
    bop_submit(c, r, BATCH_OP_THRESHOLD, NULL, pct, 0);
}

void h_batches_delete(struct http_conn *c, struct http_request *r)
{
    bop_submit(c, r, BATCH_OP_DELETE, NULL, 0, hq_bool(r, "dry_run"));
}

/* DELETE /api/v1/batches?filename_contains=&created_after=&status=&dataset=&dry_run= */
void h_batches_delete_bulk(struct http_conn *c, struct http_request *r)
{
    char contains[HQ_MAX + 1], status[HQ_MAX + 1], dataset[HQ_MAX + 1];
    int dry = hq_bool(r, "dry_run");
    int has_contains = hq_str(r, "filename_contains", contains, sizeof contains) != NULL;
    int has_status = hq_str(r, "status", status, sizeof status) != NULL;
    int has_dataset = hq_str(r, "dataset", dataset, sizeof dataset) != NULL;
    int64_t after = hq_time(r, "created_after");
    if (!has_contains && !has_status && !has_dataset && !after) {
        http_reply_error(c, ERR_INVALID_PARAMETER,
                         "give at least one filter: filename_contains, created_after, status, "
                         "dataset (deleting every batch at once is not offered)");
        return;
    }
    struct bop_req *q = bop_new(c, r, BATCH_OP_DELETE_BULK, NULL, 0, dry);
    if (!q) {
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    q->bj.f_contains = has_contains ? sl_strdup(contains) : NULL;
    q->bj.f_status = has_status ? sl_strdup(status) : NULL;
    q->bj.f_dataset = has_dataset ? sl_strdup(dataset) : NULL;
    q->bj.f_created_after = after;
    bop_send(c, q);
}
