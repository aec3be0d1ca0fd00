/*
 * reply.c - answers: the status line and headers, whole bodies (http_reply,
 * http_reply_json, the error envelope) and bodies streamed piece by piece
 * (http_reply_stream: chunked, or close-delimited to HTTP/1.0), plus what each
 * answer records: the request metrics, the request log line, the ingest
 * latency and the audit log. Loop thread only; when the write is done,
 * conn.c's conn_answered() decides what happens to the connection.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/audit.h"
#include "http/http_internal.h"
#include "ops/latency.h"
#include "ops/metrics.h"
#include "util/clock.h"
#include "util/jsontext.h"
#include "util/log.h"
#include "util/mem.h"

static void after_write(uv_write_t *w, int status);

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 207:
        return "Multi-Status";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Status";
}

/*
 * Write the first len bytes of c->out (after_write() follows): 0, or -1 when
 * the write could not start (c->out is then freed). The deadline drops a
 * client that does not read its answer after request_timeout.
 */
static int write_out(struct http_conn *c, size_t len)
{
    c->deadline_ms = loop_now(c->loop) + c->loop->srv->o.request_timeout_ms;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, after_write) < 0) {
        free(c->out);
        c->out = NULL;
        return -1;
    }
    return 0;
}

/*
 * Write the next piece of a streamed answer: 0 when a write is under way, 1
 * when the answer is complete, -1 when the producer failed (the answer is then
 * cut short without its last chunk, which tells the client it is incomplete).
 */
static int stream_write_next(struct http_conn *c)
{
    if (c->stream.finished)
        return 1;
    struct buf piece, frame;
    buf_init(&piece, 64u << 20);
    int more;
    do { /* a producer may return an empty piece with more to come */
        more = c->stream.fill(c->stream.arg, &piece);
    } while (more == 1 && piece.len == 0);
    if (more < 0) {
        buf_release(&piece);
        return -1;
    }
    buf_init(&frame, 64u << 20);
    if (c->stream.chunked) {
        if (piece.len)
            buf_printf(&frame, "%zx\r\n", piece.len);
        buf_append(&frame, piece.data, piece.len);
        if (piece.len)
            buf_appends(&frame, "\r\n");
        if (!more)
            buf_appends(&frame, "0\r\n\r\n");
    } else {
        buf_append(&frame, piece.data, piece.len);
    }
    buf_release(&piece);
    if (!more)
        c->stream.finished = 1;
    if (frame.len == 0) {
        buf_release(&frame);
        return 1;
    }
    size_t len;
    c->out = buf_steal(&frame, &len);
    if (!c->out)
        return -1;
    return write_out(c, len);
}

static void after_write(uv_write_t *w, int status)
{
    struct http_conn *c = w->data;
    free(c->out);
    c->out = NULL;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->stream.fill) {
        int r = stream_write_next(c);
        if (r == 0)
            return;
        int complete = r == 1 && (c->stream.chunked || c->stream.finished);
        reply_stream_end(c);
        if (!complete) {
            conn_close(c);
            return;
        }
    }
    conn_answered(c);
}

static void log_request(struct http_conn *c, int status, double secs)
{
    char path[512], rid[160];
    log_info("http", "request",
             "\"method\":\"%s\",\"path\":\"%s\",\"status\":%d,\"duration_ms\":%.3f,"
             "\"request_id\":\"%s\",\"bytes_in\":%zu",
             c->req.method ? c->req.method : "-",
             log_json_str(path, sizeof path, c->req.target ? c->req.target : "-", (size_t)-1),
             status, secs * 1000.0, log_json_str(rid, sizeof rid, c->req.request_id, (size_t)-1),
             c->req.bytes_in);
}

/* An authenticated caller's state-changing request goes to the audit log. */
static void audit(struct http_conn *c, int status)
{
    struct http_request *r = &c->req;
    /* Under auth.dev_bypass nobody is identified: there is no one to record. A request
     * refused by its rate limit is not recorded either: a flood of them would be a flood
     * of writes (the request log and sluice_rate_limited_total have them). */
    if (!r->who.actor[0] || !strcmp(r->who.actor, "dev") || r->deny.status == 429 || !r->method ||
        !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD") || !strcmp(r->method, "OPTIONS"))
        return;
    struct audit_new e = {.at_ms = clock_wall_ms(),
                          .actor = r->who.actor,
                          .role = role_name(r->who.role),
                          .method = r->method,
                          .path = r->target ? r->target : "-",
                          .remote = c->remote,
                          .request_id = r->request_id,
                          .status = status};
    audit_note(c->loop->srv->app->writer, &e);
}

/* A request without a usable X-Request-Id gets one made up. */
static void default_request_id(struct http_conn *c)
{
    if (!c->req.request_id[0])
        snprintf(c->req.request_id, sizeof c->req.request_id, "%016llx%04x",
                 (unsigned long long)clock_mono_ns(), (unsigned)rand() & 0xffff);
}

/* Count the answer in the request metrics and the request log; returns the
 * request's duration in seconds. */
static double note_answer(struct http_conn *c, int status)
{
    struct http_server *s = c->loop->srv;
    double secs =
        (double)(clock_mono_ns() - (c->req.start_ns ? c->req.start_ns : clock_mono_ns())) / 1e9;
    metrics_http_request(c->req.route ? router_index(c->req.route) : (size_t)-1,
                         c->req.method ? c->req.method : "OTHER", status, secs);
    if (s->o.log_requests)
        log_request(c, status, secs);
    return secs;
}

void http_reply(struct http_conn *c, int status, const char *ctype, char *body, size_t len,
                const char *extra_headers)
{
    if (c->state == CONN_WRITING || c->closing) {
        free(body);
        return;
    }
    default_request_id(c);
    int head = c->req.method && strcmp(c->req.method, "HEAD") == 0;
    int close = c->close_after || c->loop->draining;
    char hdr[1536];
    int n =
        snprintf(hdr, sizeof hdr,
                 "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nX-Request-Id: %s\r\n%s%s%s%s%s%s\r\n",
                 status, reason(status), len, c->req.request_id, ctype ? "Content-Type: " : "",
                 ctype ? ctype : "", ctype ? "\r\n" : "", close ? "Connection: close\r\n" : "",
                 c->req.cors, extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof hdr)
        n = snprintf(hdr, sizeof hdr, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n\r\n", status,
                     reason(status), len);
    size_t blen = head ? 0 : len;
    c->out = sl_malloc((size_t)n + blen + 1);
    if (!c->out) {
        free(body);
        conn_close(c);
        return;
    }
    memcpy(c->out, hdr, (size_t)n);
    if (blen)
        memcpy(c->out + n, body, blen);
    free(body);
    double secs = note_answer(c, status);
    if (c->req.route && c->req.route->perm == PERM_INGEST)
        latency_note(secs);
    audit(c, status);
    set_busy(c, CONN_WRITING);
    if (write_out(c, (size_t)n + blen) < 0)
        conn_close(c);
}

void http_reply_stream(struct http_conn *c, int status, const char *ctype,
                       const char *extra_headers, int (*fill)(void *arg, struct buf *out),
                       void (*done)(void *arg), void *arg)
{
    if (c->state == CONN_WRITING || c->closing) {
        if (done)
            done(arg);
        return;
    }
    default_request_id(c);
    int head = c->req.method && strcmp(c->req.method, "HEAD") == 0;
    /* HTTP/1.0 has no chunked coding: the end of the connection ends the answer. */
    int chunked = !(c->parser.http_major == 1 && c->parser.http_minor == 0);
    if (!chunked)
        c->close_after = 1;
    int close = c->close_after || c->loop->draining;
    char hdr[1536];
    int n = snprintf(hdr, sizeof hdr, "HTTP/1.1 %d %s\r\n%sX-Request-Id: %s\r\n%s%s%s%s%s%s\r\n",
                     status, reason(status), chunked ? "Transfer-Encoding: chunked\r\n" : "",
                     c->req.request_id, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", close ? "Connection: close\r\n" : "", c->req.cors,
                     extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof hdr || !(c->out = sl_malloc((size_t)n + 1))) {
        if (done)
            done(arg);
        conn_close(c);
        return;
    }
    memcpy(c->out, hdr, (size_t)n);
    note_answer(c, status);
    c->stream.fill = fill;
    c->stream.done = done;
    c->stream.arg = arg;
    c->stream.chunked = chunked;
    c->stream.finished = head; /* HEAD: the headers are the whole answer */
    set_busy(c, CONN_WRITING);
    if (write_out(c, (size_t)n) < 0)
        conn_close(c);
}

void http_reply_json(struct http_conn *c, int status, json_t *j, const char *extra_headers)
{
    /* whole or NULL (util/jsontext.h); NULL j is an answer its handler could not build */
    char *body = jsontext_dump(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!body && status != 500) {
        http_reply_error(c, ERR_INTERNAL, "out of memory: the answer could not be made");
        return;
    }
    if (!body) { /* the 500's own envelope could not be made either: the status says it */
        http_reply(c, 500, "application/json", NULL, 0, extra_headers);
        return;
    }
    http_reply(c, status, "application/json", body, strlen(body), extra_headers);
}

static void reply_error_v(struct http_conn *c, int status, enum sluice_err code, const char *extra,
                          const char *fmt, va_list ap)
{
    char msg[1024];
    if (fmt)
        vsnprintf(msg, sizeof msg, fmt, ap);
    else
        snprintf(msg, sizeof msg, "%s", err_message(code));
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", err_name(code), "message", msg);
    if (!j) /* the message was not UTF-8: keep the code */
        j = json_pack("{s:{s:s,s:s}}", "error", "code", err_name(code), "message",
                      err_message(code));
    http_reply_json(c, status, j, extra);
}

void http_reply_error(struct http_conn *c, enum sluice_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int status = err_status(code);
    reply_error_v(c, status, code, status == 503 ? "Retry-After: 1\r\n" : NULL, fmt, ap);
    va_end(ap);
}

void http_reply_error_status(struct http_conn *c, int status, enum sluice_err code,
                             const char *extra_headers, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(c, status, code, extra_headers, fmt, ap);
    va_end(ap);
}

/* The streamed answer is over (sent, failed or cut): its producer's done(). */
void reply_stream_end(struct http_conn *c)
{
    if (!c->stream.fill)
        return;
    void (*done)(void *) = c->stream.done;
    void *arg = c->stream.arg;
    memset(&c->stream, 0, sizeof c->stream);
    if (done)
        done(arg);
}
