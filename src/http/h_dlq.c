/*
 * h_dlq.c - the dead-letter queue's routes. Reads use the loop's read-only
 * store; retry and drop are writer jobs (see ingest/dlq.h).
 */
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "http/handlers.h"
#include "http/params.h"
#include "ingest/dlq.h"
#include "config/catalog.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"

static int parse_id(struct http_conn *c, const char *s, int64_t *id)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == 0 || *end || v <= 0) {
        http_reply_error(c, ERR_NOT_FOUND, "no DLQ entry '%s'", s);
        return -1;
    }
    *id = v;
    return 0;
}

/* The filter of a DLQ list or bulk drop, from the query (declared in params.c; status
 * defaults to open; "all" is any). Strings point into the caller's buffers. */
struct dlq_query {
    char dataset[HQ_MAX + 1], code[HQ_MAX + 1], status[HQ_MAX + 1];
};

static void dlq_filter_from(struct http_request *r, struct dlq_query *b, struct dlq_filter *f)
{
    memset(f, 0, sizeof *f);
    f->dataset = hq_str(r, "dataset", b->dataset, sizeof b->dataset);
    f->error_code = hq_str(r, "error_code", b->code, sizeof b->code);
    f->status = hq_str(r, "status", b->status, sizeof b->status);
    if (!f->status)
        f->status = "open";
    else if (!strcmp(f->status, "all"))
        f->status = NULL;
    f->received_after_ms = hq_time(r, "since");
    f->received_before_ms = hq_time(r, "until");
}

/* GET /api/v1/dlq: newest first unless order=asc. */
void h_dlq_list(struct http_conn *c, struct http_request *r)
{
    struct dlq_query b;
    struct dlq_filter f;
    char after[32];
    long long limit = hq_int(r, "limit", 100);
    dlq_filter_from(r, &b, &f);
    f.desc = hq_desc(r);
    f.after_id = hq_cursor(r, after, sizeof after) ? strtoll(after, NULL, 10) : 0;
    f.limit = (int)limit + 1; /* one more tells whether there is a next page */
    struct dlq_entry *v;
    size_t n;
    struct store *st = http_conn_store(c);
    if (store_dlq_list(st, &f, &v, &n) < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
        return;
    }
    json_t *items = json_array();
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    int oom = !items;
    for (size_t i = 0; i < shown && !oom; i++)
        oom = json_array_append_new(items, dlq_item_json(&v[i])) != 0;
    char cur[32];
    snprintf(cur, sizeof cur, "%lld", shown ? (long long)v[shown - 1].id : 0LL);
    json_t *next = hq_cursor_json("dlq", f.desc, n > shown ? cur : NULL);
    for (size_t i = 0; i < n; i++)
        dlq_entry_release(&v[i]);
    free(v);
    if (oom) { /* a page short of an entry would look complete */
        json_decref(items);
        json_decref(next);
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    http_reply_json(c, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next), NULL);
}

void h_dlq_get(struct http_conn *c, struct http_request *r)
{
    int64_t id;
    if (parse_id(c, r->params[0], &id) < 0)
        return;
    struct dlq_entry e;
    struct store *st = http_conn_store(c);
    int rc = store_dlq_get(st, id, &e);
    if (rc < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
        return;
    }
    if (rc == 1) {
        http_reply_error(c, ERR_NOT_FOUND, "no DLQ entry %lld", (long long)id);
        return;
    }
    json_t *item = dlq_item_json(&e);
    dlq_entry_release(&e);
    if (!item)
        http_reply_error(c, ERR_INTERNAL, "out of memory");
    else
        http_reply_json(c, 200, item, NULL);
}

/* A DLQ job on its way through the writer and back to the loop. */
struct dlq_req {
    struct dlq_job dj; /* first: the writer sees it as a wjob */
    struct loop_msg msg;
    struct http_conn *conn;
    struct http_loop *loop;
    const struct http_app *app;
    struct catalog *cat;
    int result;
    size_t matched, resolved, still_open; /* bulk totals */
    json_t *sample;                       /* bulk drop: the first ids dropped */
};

static void dlq_req_destroy(struct dlq_req *q)
{
    dlq_job_release(&q->dj);
    json_decref(q->sample);
    catalog_release(q->cat);
    free(q);
}

static void dlq_deliver(struct wjob *job, int result)
{
    struct dlq_req *q = (struct dlq_req *)job;
    q->result = result;
    http_post(q->loop, &q->msg);
}

static void dlq_answer(struct loop_msg *m)
{
    struct dlq_req *q = (struct dlq_req *)((char *)m - offsetof(struct dlq_req, msg));
    struct dlq_job *j = &q->dj;
    if (q->result < 0) {
        h_reply_not_committed(q->conn, q->result);
    } else if (j->op == DLQ_RETRY_BULK) {
        q->matched += j->matched;
        q->resolved += j->resolved;
        q->still_open += j->still_open;
        if (j->more && writer_submit(q->app->writer, &j->job) == 0)
            return; /* the next page; answered when the last one is done */
        log_info("dlq", "bulk retry", "\"matched\":%zu,\"resolved\":%zu,\"still_open\":%zu",
                 q->matched, q->resolved, q->still_open);
        http_reply_json(q->conn, 200,
                        json_pack("{s:I,s:I,s:I}", "matched", (json_int_t)q->matched, "resolved",
                                  (json_int_t)q->resolved, "still_open", (json_int_t)q->still_open),
                        NULL);
    } else if (j->op == DLQ_DROP_BULK) {
        q->matched += j->matched;
        for (size_t i = 0; i < j->nsample && json_array_size(q->sample) < DLQ_SAMPLE; i++)
            json_array_append_new(q->sample, json_integer(j->sample[i]));
        if (j->more && writer_submit(q->app->writer, &j->job) == 0)
            return; /* the next page */
        log_info("dlq", "bulk drop", "\"dropped\":%zu", q->matched);
        http_reply_json(q->conn, 200,
                        json_pack("{s:b,s:I,s:I,s:O}", "dry_run", 0, "matched",
                                  (json_int_t)q->matched, "dropped", (json_int_t)q->matched,
                                  "sample_ids", q->sample),
                        NULL);
    } else if (j->status == 200) {
        http_reply_json(q->conn, 200, json_incref(j->result), NULL);
    } else {
        http_reply_error(q->conn, j->err, "%s", j->errmsg);
    }
    dlq_req_destroy(q);
}

static struct dlq_req *dlq_req_new(struct http_conn *c, enum dlq_op op)
{
    struct dlq_req *q = sl_calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->conn = c;
    q->loop = http_conn_loop(c);
    q->app = http_conn_app(c);
    q->cat = http_conn_catalog(c);
    q->msg.fn = dlq_answer;
    q->dj.op = op;
    q->dj.batch_row = batch_retry_row;
    q->dj.cfg = &q->cat->cfg;
    q->dj.job.apply = dlq_apply;
    q->dj.job.deliver = dlq_deliver;
    q->dj.job.nrows = 1;
    return q;
}

static void submit(struct http_conn *c, struct dlq_req *q)
{
    if (writer_submit(q->app->writer, &q->dj.job) < 0) {
        http_reply_error_status(c, 503, ERR_OVERLOADED, "Retry-After: 1\r\n", NULL);
        dlq_req_destroy(q);
    }
}

static void single_op(struct http_conn *c, struct http_request *r, enum dlq_op op)
{
    int64_t id;
    if (parse_id(c, r->params[0], &id) < 0)
        return;
    struct dlq_req *q = dlq_req_new(c, op);
    if (!q) {
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    q->dj.id = id;
    submit(c, q);
}

void h_dlq_retry(struct http_conn *c, struct http_request *r)
{
    single_op(c, r, DLQ_RETRY);
}

void h_dlq_drop(struct http_conn *c, struct http_request *r)
{
    single_op(c, r, DLQ_DROP);
}

void h_dlq_retry_bulk(struct http_conn *c, struct http_request *r)
{
    json_error_t jerr;
    json_t *f = NULL;
    if (r->body.len) {
        f = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!f || !json_is_object(f)) {
            json_decref(f);
            http_reply_error(c, ERR_MALFORMED_JSON, "the filter must be a JSON object: %s",
                             jerr.text);
            return;
        }
    } else {
        f = json_object();
    }
    const char *key;
    json_t *v;
    json_object_foreach(f, key, v)
    {
        if (strcmp(key, "dataset") && strcmp(key, "error_code") && strcmp(key, "ids")) {
            http_reply_error(c, ERR_INVALID_PARAMETER,
                             "unknown filter field '%s' (dataset, error_code, ids)", key);
            json_decref(f);
            return;
        }
    }
    json_t *ds = json_object_get(f, "dataset"), *code = json_object_get(f, "error_code"),
           *ids = json_object_get(f, "ids");
    if ((ds && !json_is_string(ds)) || (code && !json_is_string(code)) ||
        (ids && !json_is_array(ids))) {
        http_reply_error(c, ERR_INVALID_PARAMETER,
                         "dataset and error_code are strings, ids an array of integers");
        json_decref(f);
        return;
    }
    struct dlq_req *q = dlq_req_new(c, DLQ_RETRY_BULK);
    if (!q) {
        json_decref(f);
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    if (ds)
        q->dj.dataset = sl_strdup(json_string_value(ds));
    if (code)
        q->dj.error_code = sl_strdup(json_string_value(code));
    if (ids) {
        size_t n = json_array_size(ids);
        q->dj.ids = sl_calloc(n ? n : 1, sizeof *q->dj.ids);
        q->dj.nids = n;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(ids, i);
            if (!json_is_integer(e)) {
                http_reply_error(c, ERR_INVALID_PARAMETER, "ids must be integers");
                json_decref(f);
                dlq_req_destroy(q);
                return;
            }
            q->dj.ids[i] = json_integer_value(e);
        }
    }
    json_decref(f);
    submit(c, q);
}

/* DELETE /api/v1/dlq?dataset=&error_code=&since=&until=&dry_run=&all=: drop the open
 * entries matching the filter (in pages, as a bulk retry); a dry run counts them on the
 * loop's store and changes nothing. No filter at all needs all=true. */
void h_dlq_drop_bulk(struct http_conn *c, struct http_request *r)
{
    struct dlq_query b;
    struct dlq_filter f;
    dlq_filter_from(r, &b, &f); /* status is not a parameter here: open entries only */
    if (!f.dataset && !f.error_code && !f.received_after_ms && !f.received_before_ms &&
        !hq_bool(r, "all")) {
        http_reply_error(c, ERR_INVALID_PARAMETER,
                         "give at least one filter: dataset, error_code, since, until (or "
                         "all=true to drop every open entry)");
        return;
    }
    if (hq_bool(r, "dry_run")) {
        struct store *st = http_conn_store(c);
        struct dlq_entry *v = NULL;
        size_t n = 0;
        int64_t count = 0;
        f.limit = DLQ_SAMPLE;
        if (store_dlq_count(st, &f, &count) < 0 || store_dlq_list(st, &f, &v, &n) < 0) {
            http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
            return;
        }
        json_t *ids = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(ids, json_integer(v[i].id));
            dlq_entry_release(&v[i]);
        }
        free(v);
        http_reply_json(c, 200,
                        json_pack("{s:b,s:I,s:I,s:o}", "dry_run", 1, "matched", (json_int_t)count,
                                  "dropped", (json_int_t)0, "sample_ids", ids),
                        NULL);
        return;
    }
    struct dlq_req *q = dlq_req_new(c, DLQ_DROP_BULK);
    if (!q || !(q->sample = json_array())) {
        if (q)
            dlq_req_destroy(q);
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    q->dj.dataset = f.dataset ? sl_strdup(f.dataset) : NULL;
    q->dj.error_code = f.error_code ? sl_strdup(f.error_code) : NULL;
    q->dj.since_ms = f.received_after_ms;
    q->dj.until_ms = f.received_before_ms;
    submit(c, q);
}
