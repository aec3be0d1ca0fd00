/*
 * h_admin.c - the admin routes: API keys (create, list, revoke), the audit
 * log, and reloading the configuration. Reads use the loop's read-only store;
 * creating and revoking a key are writer jobs like every other change.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "auth/apikey.h"
#include "auth/auth.h"
#include "http/handlers.h"
#include "http/params.h"
#include "writer/writer.h"
#include "config/catalog.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

static json_t *time_or_null(int64_t ms)
{
    char t[32];
    return ms ? json_string(clock_rfc3339(ms, t, sizeof t)) : json_null();
}

void h_keys_list(struct http_conn *c, struct http_request *r)
{
    (void)r;
    struct store *st = http_conn_store(c);
    struct api_key *v;
    size_t n;
    if (store_key_list(st, &v, &n) < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(items, api_key_json(&v[i]));
        api_key_release(&v[i]);
    }
    free(v);
    http_reply_json(c, 200, json_pack("{s:o,s:n}", "items", items, "next_cursor"), NULL);
}

/* A key change on its way through the writer and back to the loop. */
struct key_req {
    struct wjob job; /* first: the writer sees it as a wjob */
    struct loop_msg msg;
    struct http_conn *conn;
    struct http_loop *loop;
    int create; /* else revoke */
    struct api_key k;
    char key[APIKEY_LEN + 1]; /* create: the secret, shown once */
    int result, found;
};

static int key_apply(struct wjob *job, struct store *st)
{
    struct key_req *q = (struct key_req *)job;
    if (q->create)
        return store_key_add(st, &q->k);
    int rc = store_key_revoke(st, q->k.id, clock_wall_ms());
    q->found = rc == 0;
    if (rc == 0)
        rc = store_key_get(st, q->k.id, &q->k) < 0 ? -1 : 0;
    return rc < 0 ? -1 : 0;
}

static void key_deliver(struct wjob *job, int result)
{
    struct key_req *q = (struct key_req *)job;
    q->result = result;
    http_post(q->loop, &q->msg);
}

static void key_answer(struct loop_msg *m)
{
    struct key_req *q = (struct key_req *)((char *)m - offsetof(struct key_req, msg));
    if (q->result < 0) {
        h_reply_not_committed(q->conn, q->result);
    } else if (!q->create && !q->found) {
        http_reply_error(q->conn, ERR_NOT_FOUND, "no API key '%s'", q->k.id);
    } else {
        json_t *j = api_key_json(&q->k);
        if (q->create) {
            json_object_set_new(j, "key", json_string(q->key));
            log_info("auth", "key created", "\"id\":\"%s\",\"role\":\"%s\"", q->k.id, q->k.role);
        } else {
            log_info("auth", "key revoked", "\"id\":\"%s\"", q->k.id);
        }
        http_reply_json(q->conn, q->create ? 201 : 200, j, NULL);
    }
    OPENSSL_cleanse(q->key, sizeof q->key);
    api_key_release(&q->k);
    free(q);
}

static struct key_req *key_req_new(struct http_conn *c, int create)
{
    struct key_req *q = sl_calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->conn = c;
    q->loop = http_conn_loop(c);
    q->create = create;
    q->msg.fn = key_answer;
    q->job.apply = key_apply;
    q->job.deliver = key_deliver;
    q->job.nrows = 1;
    return q;
}

static void key_submit(struct http_conn *c, struct key_req *q)
{
    if (writer_submit(http_conn_app(c)->writer, &q->job) < 0) {
        http_reply_error_status(c, 503, ERR_OVERLOADED, "Retry-After: 1\r\n", NULL);
        api_key_release(&q->k);
        free(q);
    }
}

/* POST /api/v1/keys {"name", "role", "expires_in": "90d"} */
void h_keys_create(struct http_conn *c, struct http_request *r)
{
    json_error_t jerr;
    json_t *body =
        json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        http_reply_error(c, ERR_INVALID_PARAMETER,
                         "the body must be a JSON object {\"name\", \"role\", \"expires_in\"}");
        return;
    }
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *role = json_string_value(json_object_get(body, "role"));
    json_t *exp = json_object_get(body, "expires_in");
    int64_t expires_ms = 0;
    if (exp && !json_is_null(exp)) {
        uint64_t ms = 0;
        if (!json_is_string(exp) || config_parse_duration_ms(json_string_value(exp), &ms) < 0 ||
            ms == 0) {
            json_decref(body);
            http_reply_error(c, ERR_INVALID_PARAMETER,
                             "expires_in must be a duration like \"90d\" or \"12h\"");
            return;
        }
        expires_ms = clock_wall_ms() + (int64_t)ms;
    }
    struct key_req *q = key_req_new(c, 1);
    char err[200];
    int rc =
        q ? keys_make(http_conn_store(c), name, role, expires_ms, &q->k, q->key, err, sizeof err)
          : -2;
    json_decref(body);
    if (rc < 0) {
        if (q)
            api_key_release(&q->k);
        free(q);
        if (rc == -1)
            http_reply_error(c, ERR_INVALID_PARAMETER, "%s", err);
        else
            http_reply_error(c, ERR_UNAVAILABLE, "%s", q ? err : "out of memory");
        return;
    }
    key_submit(c, q);
}

/* DELETE /api/v1/keys/{id} */
void h_keys_revoke(struct http_conn *c, struct http_request *r)
{
    struct key_req *q = key_req_new(c, 0);
    if (!q) {
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    snprintf(q->k.id, sizeof q->k.id, "%s", r->params[0]);
    key_submit(c, q);
}

/* GET /api/v1/audit?actor=&method=&status=&since=&until=&order=&cursor=&limit=: newest first */
void h_audit_list(struct http_conn *c, struct http_request *r)
{
    char actor[HQ_MAX + 1], method[HQ_MAX + 1], after[32];
    long long limit = hq_int(r, "limit", 100);
    struct audit_filter f = {0};
    f.actor = hq_str(r, "actor", actor, sizeof actor);
    f.method = hq_str(r, "method", method, sizeof method);
    f.status = (int)hq_int(r, "status", 0);
    f.since_ms = hq_time(r, "since");
    f.until_ms = hq_time(r, "until");
    f.desc = hq_desc(r);
    f.after_id = hq_cursor(r, after, sizeof after) ? strtoll(after, NULL, 10) : 0;
    f.limit = (int)limit + 1;
    struct store *st = http_conn_store(c);
    json_t *rows;
    if (store_audit_list(st, &f, &rows) < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
        return;
    }
    json_t *next = h_next_cursor("audit", f.desc, rows, (size_t)limit);
    size_t i;
    json_t *e;
    json_array_foreach(rows, i, e)
    {
        json_object_set_new(e, "at", time_or_null(json_integer_value(json_object_get(e, "at_ms"))));
        json_object_del(e, "at_ms");
    }
    http_reply_json(c, 200, json_pack("{s:o,s:o}", "items", rows, "next_cursor", next), NULL);
}

/* A reload on its way through the libuv pool (it waits for the writer) and back. */
struct reload_req {
    uv_work_t work;
    struct http_conn *conn;
    const struct http_app *app;
    json_t *changes;
    int rc;
    char why[1024];
};

static void reload_work(uv_work_t *w)
{
    struct reload_req *q = w->data;
    q->rc = q->app->reload(q->app->reload_ctx, &q->changes, q->why, sizeof q->why);
}

static void reload_done(uv_work_t *w, int status)
{
    struct reload_req *q = w->data;
    if (status < 0)
        http_reply_error(q->conn, ERR_INTERNAL, "the reload was cancelled");
    else if (q->rc < 0)
        http_reply_error(q->conn, ERR_CONFIG_REFUSED, "%s", q->why);
    else
        http_reply_json(q->conn, 200, q->changes, NULL);
    if (status < 0 || q->rc < 0)
        json_decref(q->changes);
    free(q);
}

/* POST /api/v1/admin/reload: what SIGHUP does, answered with the outcome: 200 with what
 * changed, or 422 CONFIG_REFUSED with the reason (the old configuration stays). */
void h_admin_reload(struct http_conn *c, struct http_request *r)
{
    (void)r;
    struct reload_req *q = sl_calloc(1, sizeof *q);
    if (!q) {
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    q->conn = c;
    q->app = http_conn_app(c);
    q->work.data = q;
    if (uv_queue_work(http_conn_uv_loop(c), &q->work, reload_work, reload_done) < 0) {
        http_reply_error(c, ERR_INTERNAL, "cannot schedule the reload");
        free(q);
    }
}
