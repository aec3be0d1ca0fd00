/*
 * h_events.c - POST /api/v1/datasets/{name}/events, and what refuses it from its headers
 * alone (h_events_refuse, before its body is read).
 *
 * The body is cut into rows and validated here, on the loop thread; the
 * writer then stores rows and DLQ entries and builds the answer; the answer
 * is sent from this loop once the group commit is durable.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/handlers.h"
#include "ingest/ingest.h"
#include "ops/metrics.h"
#include "config/catalog.h"
#include "util/mem.h"

struct event_req {
    struct ingest in; /* first: the writer sees it as a wjob */
    struct loop_msg msg;
    struct http_conn *conn;
    struct http_loop *loop;
    struct catalog *cat;
    int result;
};

static void event_req_destroy(struct event_req *er)
{
    ingest_release(&er->in);
    catalog_release(er->cat);
    free(er);
}

/* On the loop thread: send the answer. */
static void event_answer(struct loop_msg *m)
{
    struct event_req *er = (struct event_req *)((char *)m - offsetof(struct event_req, msg));
    struct ingest *in = &er->in;
    if (er->result == WRITER_UNKNOWN) {
        http_reply_error(er->conn, ERR_COMMIT_UNKNOWN,
                         "the connection to the store was lost during the commit: the rows may "
                         "be stored or not; send the request again with the same "
                         "Idempotency-Key to store them exactly once");
    } else if (er->result < 0 && in->busy) {
        http_reply_error(er->conn, ERR_KEY_BUSY,
                         "a key of these rows is being stored by a batch into dataset %s that "
                         "has not committed yet; nothing of this request was stored: send it "
                         "again once the batch is done",
                         in->ds->name);
    } else if (er->result < 0) {
        http_reply_error(er->conn, ERR_UNAVAILABLE,
                         "the rows could not be committed; nothing of this request was stored");
    } else {
        char *body = in->response;
        in->response = NULL;
        http_reply(er->conn, in->status, "application/json", body, body ? strlen(body) : 0,
                   in->replayed ? "Idempotent-Replayed: true\r\n" : NULL);
    }
    event_req_destroy(er);
}

/* On the writer thread, after the commit. */
static void event_deliver(struct wjob *job, int result)
{
    struct event_req *er = (struct event_req *)job;
    er->result = result;
    if (result == 0 && !er->in.replayed && er->in.status != 409)
        metrics_rows(er->in.ds->name, er->in.accepted, er->in.duplicates, er->in.rejected_by_code);
    http_post(er->loop, &er->msg);
}

static int media_type(const char *ct, enum ingest_format *fmt)
{
    if (!ct)
        return -1;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(ct, "application/json", n) == 0)
        *fmt = INGEST_JSON;
    else if ((n == 20 && strncasecmp(ct, "application/x-ndjson", n) == 0) ||
             (n == 18 && strncasecmp(ct, "application/ndjson", n) == 0))
        *fmt = INGEST_NDJSON;
    else
        return -1;
    const char *cs = strcasestr(ct + n, "charset=");
    if (cs) {
        cs += 8;
        if (*cs == '"')
            cs++;
        if (strncasecmp(cs, "utf-8", 5) != 0 && strncasecmp(cs, "utf8", 4) != 0)
            return -1;
    }
    return 0;
}

static int refuse(struct route_refusal *out, enum sluice_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fill *out with code, its status and the message; returns -1. */
static int refuse(struct route_refusal *out, enum sluice_err code, const char *fmt, ...)
{
    va_list ap;
    out->status = err_status(code);
    out->code = code;
    out->headers[0] = 0;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof out->message, fmt, ap);
    va_end(ap);
    return -1;
}

/*
 * What a push is refused for by its headers alone, in the order the handler answers them:
 * the dataset, the media type, the Idempotency-Key. 0 with *ds and *fmt set, or -1 with
 * *out filled. cat is borrowed.
 */
static int events_check(const struct catalog *cat, const struct http_request *r,
                        const struct dataset_config **ds, enum ingest_format *fmt,
                        struct route_refusal *out)
{
    *ds = config_dataset(&cat->cfg, r->params[0]);
    if (!*ds)
        return refuse(out, ERR_DATASET_NOT_FOUND, "no dataset named '%s'", r->params[0]);
    if (media_type(http_header(r, "content-type"), fmt) < 0)
        return refuse(out, ERR_UNSUPPORTED_MEDIA_TYPE, "%s",
                      "Content-Type must be application/json or application/x-ndjson (UTF-8)");
    const char *idem = http_header(r, "idempotency-key");
    if (idem && (strlen(idem) == 0 || strlen(idem) > 255))
        return refuse(out, ERR_INVALID_PARAMETER, "%s",
                      "Idempotency-Key must be 1 to 255 characters");
    return 0;
}

int h_events_refuse(struct http_conn *c, struct http_request *r, struct route_refusal *out)
{
    const struct dataset_config *ds;
    enum ingest_format fmt;
    if (events_check(r->cat, r, &ds, &fmt, out) < 0)
        return -1;
    /* The writer's queue is full now: writer_submit() would refuse the rows once parsed;
     * refuse them unread instead (it is checked again at the submit). */
    struct writer *w = http_conn_app(c)->writer;
    if (writer_queue_depth(w) >= writer_queue_max(w)) {
        refuse(out, ERR_OVERLOADED, "%s", err_message(ERR_OVERLOADED));
        out->status = 503;
        snprintf(out->headers, sizeof out->headers, "Retry-After: 1\r\n");
        return -1;
    }
    return 0;
}

void h_events_post(struct http_conn *c, struct http_request *r)
{
    const struct http_app *app = http_conn_app(c);
    const struct dataset_config *ds;
    enum ingest_format fmt;
    struct route_refusal no;
    struct catalog *cat = http_conn_catalog(c);
    if (events_check(cat, r, &ds, &fmt, &no) < 0) {
        catalog_release(cat);
        http_reply_error(c, no.code, "%s", no.message);
        return;
    }
    char source[256];
    const char *src = http_header(r, "x-sluice-source");
    if (http_query(r, "source", source, sizeof source) == 1)
        src = source;
    const char *idem = http_header(r, "idempotency-key");

    struct event_req *er = sl_calloc(1, sizeof *er);
    if (!er) {
        catalog_release(cat);
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    er->conn = c;
    er->loop = http_conn_loop(c);
    er->cat = cat;
    er->msg.fn = event_answer;
    er->in.job.deliver = event_deliver;
    size_t len;
    char *body = buf_steal(&r->body, &len);
    char msg[512];
    enum sluice_err e =
        ingest_prepare(&er->in, ds, &cat->cfg, fmt, body, len, src, idem, msg, sizeof msg);
    if (e != SLUICE_OK) {
        http_reply_error(c, e, "%s", msg);
        event_req_destroy(er);
        return;
    }
    if (writer_submit(app->writer, &er->in.job) < 0) {
        http_reply_error_status(c, 503, ERR_OVERLOADED, "Retry-After: 1\r\n", NULL);
        event_req_destroy(er);
    }
}
