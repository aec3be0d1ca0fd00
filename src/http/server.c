/*
 * server.c - connections, llhttp glue and the RFC 9112 server rules.
 *
 * Threads: http_server_start() runs N loops, each in its own thread with its
 * own listening socket on the same port (SO_REUSEPORT lets the kernel spread
 * connections). Everything about a connection happens on its loop's thread;
 * other threads talk to a loop only through http_post().
 *
 * One request at a time per connection: on_message_complete dispatches the
 * handler and pauses the parser; unparsed bytes (pipelined requests) are kept
 * in conn->pending and fed again once the answer is written.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "auth/audit.h"
#include "http/ratelimit.h"
#include "http/router.h"
#include "http/params.h"
#include "ops/latency.h"
#include "ops/metrics.h"
#include "config/catalog.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#define MAX_HEADERS 100
#define LINGER_MS 2000               /* how long a lingering close waits for the client */
#define PENDING_MAX (64u << 10)      /* pipelined input kept before reading pauses */
#define LINGER_MAX_BYTES (64u << 20) /* and how much it reads and drops at most */

enum conn_state {
    CONN_IDLE,    /* between requests */
    CONN_READING, /* a request has started */
    CONN_WAITING, /* dispatched; the handler has not answered yet */
    CONN_WRITING, /* the answer is being written */
    CONN_LINGER,  /* answered and closing: our side is shut, what the client still sends is
                     read and dropped, so our answer is not destroyed by a reset */
};

struct http_loop {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t tick;
    pthread_t thread;
    pthread_mutex_t mu;
    struct loop_msg *inbox;
    struct http_server *srv;
    struct store *store;
    struct http_conn *conns; /* all open connections */
    int nconns;
    int draining;
    int busy; /* connections in READING/WAITING/WRITING, read by other threads */
    int id;
};

struct http_server {
    struct http_server_opts o;
    uint64_t inflight; /* body bytes held by all connections (atomic) */
    const struct http_app *app;
    struct http_loop *loops;
    int nloops;
    llhttp_settings_t settings;
    int loopback;         /* listening on a loopback address only */
    struct ratelimit *rl; /* every loop's clients' buckets (rate_limits) */
};

struct http_conn {
    uv_tcp_t tcp;
    llhttp_t parser;
    struct http_loop *loop;
    struct http_conn *prev, *next;
    enum conn_state state;
    uint64_t deadline_ms;
    struct http_request req;
    struct buf field, value; /* header in progress */
    size_t header_bytes;
    size_t held;   /* body bytes counted in srv->inflight */
    char *pending; /* unparsed input kept while a request is answered */
    size_t pending_len;
    int reading;
    int close_after; /* close once the answer is written */
    int closing;
    int discard_body;
    int streamed; /* the route streams its body (route->sink) */
    size_t lingered;
    uv_shutdown_t shut;
    int expect_continue;
    const char *exec_start; /* the buffer being parsed, and the byte before it */
    char exec_prev;
    int err_status; /* set by a callback before it fails the parse */
    enum sluice_err err_code;
    char err_msg[160];
    uv_write_t wr;
    char *out;         /* the answer being written */
    char remote[64];   /* the peer's address, for the audit log */
    char err_hdr[200]; /* extra headers of a parse failure's answer */
    /* A streamed answer (http_reply_stream) while fill is set. */
    struct {
        int (*fill)(void *arg, struct buf *out);
        void (*done)(void *arg);
        void *arg;
        int chunked;  /* else close-delimited (HTTP/1.0) */
        int finished; /* the last piece is written or being written */
    } stream;
};

static void conn_close(struct http_conn *c);
static void after_write(uv_write_t *w, int status);
static void stream_end(struct http_conn *c);
static void conn_feed(struct http_conn *c, const char *data, size_t len);
static void conn_read_start(struct http_conn *c);

static uint64_t loop_now(struct http_loop *l)
{
    return uv_now(&l->loop);
}

static void set_busy(struct http_conn *c, enum conn_state st)
{
    int was = c->state >= CONN_READING && c->state <= CONN_WRITING;
    int is = st >= CONN_READING && st <= CONN_WRITING;
    c->state = st;
    if (was != is)
        __atomic_add_fetch(&c->loop->busy, is ? 1 : -1, __ATOMIC_RELAXED);
}

/* ---- request bookkeeping ------------------------------------------------ */

static void request_release(struct http_request *r)
{
    if (r->sink_state && r->route && r->route->sink)
        r->route->sink->abort(r->sink_state);
    free(r->target);
    free(r->path);
    free(r->query);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    for (size_t i = 0; i < r->nparams; i++)
        free(r->params[i]);
    buf_release(&r->body);
    memset(r, 0, sizeof *r);
}

/* Give back the body bytes this connection counted against limits.max_inflight_bytes. */
static void unhold(struct http_conn *c)
{
    if (c->held) {
        __atomic_sub_fetch(&c->loop->srv->inflight, c->held, __ATOMIC_RELAXED);
        c->held = 0;
    }
}

static void request_begin(struct http_conn *c)
{
    unhold(c);
    struct http_server *s = c->loop->srv;
    request_release(&c->req);
    buf_init(&c->req.body, s->o.max_body_bytes);
    buf_reset(&c->field);
    buf_reset(&c->value);
    c->header_bytes = 0;
    c->discard_body = 0;
    c->streamed = 0;
    c->expect_continue = 0;
    c->err_status = 0;
    c->req.start_ns = clock_mono_ns();
}

const char *http_header(const struct http_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static int header_count(const struct http_request *r, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        n += strcmp(r->headers[i].name, name) == 0;
    return n;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Percent-decode n bytes of s into out (cap); plus_space turns '+' into ' '. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = 0;
    return (int)o;
}

int http_query(const struct http_request *r, const char *name, char *out, size_t cap)
{
    const char *q = r->query ? r->query : "";
    size_t nl = strlen(name);
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        char key[128];
        if (klen < sizeof key && pct_decode(q, klen, key, sizeof key, 1) >= 0 &&
            strlen(key) == nl && memcmp(key, name, nl) == 0) {
            if (!eq) {
                if (cap)
                    out[0] = 0;
                return 1;
            }
            return pct_decode(eq + 1, len - klen - 1, out, cap, 1) < 0 ? -1 : 1;
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

/* ---- answers -------------------------------------------------------------- */

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

static void after_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

/*
 * Close gracefully after a final answer (RFC 9112 9.6): shut our side, then
 * read and drop what the client still sends until it closes, LINGER_MS pass
 * or LINGER_MAX_BYTES arrive. Closing at once with unread input would make
 * the kernel send a reset that can destroy the answer before it is read.
 */
static void linger(struct http_conn *c)
{
    set_busy(c, CONN_LINGER);
    c->deadline_ms = loop_now(c->loop) + LINGER_MS;
    c->lingered = 0;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, after_shutdown) < 0) {
        conn_close(c);
        return;
    }
    if (!c->reading)
        conn_read_start(c);
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
        stream_end(c);
        if (!complete) {
            conn_close(c);
            return;
        }
    }
    if (c->close_after || c->loop->draining) {
        linger(c);
        return;
    }
    /* Ready for the next request on this connection. */
    set_busy(c, CONN_IDLE);
    request_release(&c->req);
    unhold(c);
    c->deadline_ms = loop_now(c->loop) + c->loop->srv->o.idle_timeout_ms;
    llhttp_resume(&c->parser);
    if (c->pending_len) {
        char *p = c->pending;
        size_t n = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        conn_feed(c, p, n);
        free(p);
    }
    if (!c->reading && !c->closing && c->state != CONN_LINGER && c->pending_len <= PENDING_MAX)
        conn_read_start(c);
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

void http_reply(struct http_conn *c, int status, const char *ctype, char *body, size_t len,
                const char *extra_headers)
{
    struct http_server *s = c->loop->srv;
    if (c->state == CONN_WRITING || c->closing) {
        free(body);
        return;
    }
    if (!c->req.request_id[0])
        snprintf(c->req.request_id, sizeof c->req.request_id, "%016llx%04x",
                 (unsigned long long)clock_mono_ns(), (unsigned)rand() & 0xffff);
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
    double secs =
        (double)(clock_mono_ns() - (c->req.start_ns ? c->req.start_ns : clock_mono_ns())) / 1e9;
    metrics_http_request(c->req.route ? router_index(c->req.route) : (size_t)-1,
                         c->req.method ? c->req.method : "OTHER", status, secs);
    if (s->o.log_requests)
        log_request(c, status, secs);
    if (c->req.route && c->req.route->perm == PERM_INGEST)
        latency_note(secs);
    audit(c, status);
    set_busy(c, CONN_WRITING);
    /* A client that does not read its answer is dropped after request_timeout. */
    c->deadline_ms = loop_now(c->loop) + s->o.request_timeout_ms;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)((size_t)n + blen));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, after_write) < 0) {
        free(c->out);
        c->out = NULL;
        conn_close(c);
    }
}

void http_reply_stream(struct http_conn *c, int status, const char *ctype,
                       const char *extra_headers, int (*fill)(void *arg, struct buf *out),
                       void (*done)(void *arg), void *arg)
{
    struct http_server *s = c->loop->srv;
    if (c->state == CONN_WRITING || c->closing) {
        if (done)
            done(arg);
        return;
    }
    if (!c->req.request_id[0])
        snprintf(c->req.request_id, sizeof c->req.request_id, "%016llx%04x",
                 (unsigned long long)clock_mono_ns(), (unsigned)rand() & 0xffff);
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
    double secs =
        (double)(clock_mono_ns() - (c->req.start_ns ? c->req.start_ns : clock_mono_ns())) / 1e9;
    metrics_http_request(c->req.route ? router_index(c->req.route) : (size_t)-1,
                         c->req.method ? c->req.method : "OTHER", status, secs);
    if (s->o.log_requests)
        log_request(c, status, secs);
    c->stream.fill = fill;
    c->stream.done = done;
    c->stream.arg = arg;
    c->stream.chunked = chunked;
    c->stream.finished = head; /* HEAD: the headers are the whole answer */
    set_busy(c, CONN_WRITING);
    c->deadline_ms = loop_now(c->loop) + s->o.request_timeout_ms;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)n);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, after_write) < 0) {
        free(c->out);
        c->out = NULL;
        conn_close(c);
    }
}

void http_reply_json(struct http_conn *c, int status, json_t *j, const char *extra_headers)
{
    size_t len = 0;
    char *body = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (body)
        len = strlen(body);
    http_reply(c, status, "application/json", body, len, extra_headers);
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

const struct http_app *http_conn_app(struct http_conn *c)
{
    return c->loop->srv->app;
}

struct store *http_conn_store(struct http_conn *c)
{
    return c->loop->store;
}

struct http_loop *http_conn_loop(struct http_conn *c)
{
    return c->loop;
}

uv_loop_t *http_conn_uv_loop(struct http_conn *c)
{
    return &c->loop->loop;
}

/* ---- llhttp callbacks ----------------------------------------------------- */

static int fail_parse(struct http_conn *c, int status, enum sluice_err code, const char *msg)
{
    if (!c->err_status) {
        c->err_status = status;
        c->err_code = code;
        snprintf(c->err_msg, sizeof c->err_msg, "%s", msg);
    }
    return -1;
}

/* Count n more body bytes of this connection against limits.max_inflight_bytes. */
static int hold(struct http_conn *c, size_t n)
{
    struct http_server *s = c->loop->srv;
    if (__atomic_add_fetch(&s->inflight, n, __ATOMIC_RELAXED) > s->o.max_inflight_bytes) {
        __atomic_sub_fetch(&s->inflight, n, __ATOMIC_RELAXED);
        return fail_parse(c, 503, ERR_OVERLOADED,
                          "too many request bodies in memory (limits.max_inflight_bytes); "
                          "retry later");
    }
    c->held += n;
    return 0;
}

static int count_header_bytes(struct http_conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->loop->srv->o.max_header_bytes)
        return fail_parse(c, 431, ERR_HEADERS_TOO_LARGE,
                          "the request headers exceed limits.max_header_bytes");
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct http_conn *c = p->data;
    request_begin(c);
    set_busy(c, CONN_READING);
    c->deadline_ms = loop_now(c->loop) + c->loop->srv->o.request_timeout_ms;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (count_header_bytes(c, len) < 0)
        return -1;
    return buf_append(&c->field, at, len) < 0
               ? fail_parse(c, 431, ERR_HEADERS_TOO_LARGE, "the request target is too long")
               : 0;
}

static int on_url_complete(llhttp_t *p)
{
    struct http_conn *c = p->data;
    c->req.target = buf_steal(&c->field, NULL);
    buf_init(&c->field, c->loop->srv->o.max_header_bytes);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (count_header_bytes(c, len) < 0 || buf_append(&c->field, at, len) < 0)
        return fail_parse(c, 431, ERR_HEADERS_TOO_LARGE,
                          "the request headers exceed limits.max_header_bytes");
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    /* A value never starts right after a line end, except in obsolete line
     * folding, which RFC 9112 5.2 lets a server refuse: we do. */
    char prev = at > c->exec_start ? at[-1] : c->exec_prev;
    if (len && (at[0] == ' ' || at[0] == '\t') && prev == '\n')
        return fail_parse(c, 400, ERR_BAD_REQUEST, "obsolete line folding in a header");
    if (count_header_bytes(c, len + 4) < 0 || buf_append(&c->value, at, len) < 0)
        return fail_parse(c, 431, ERR_HEADERS_TOO_LARGE,
                          "the request headers exceed limits.max_header_bytes");
    return 0;
}

static int is_tchar(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int on_header_value_complete(llhttp_t *p)
{
    struct http_conn *c = p->data;
    struct http_request *r = &c->req;
    if (r->nheaders >= MAX_HEADERS)
        return fail_parse(c, 431, ERR_HEADERS_TOO_LARGE, "more than 100 request headers");
    if (c->field.len == 0)
        return fail_parse(c, 400, ERR_BAD_REQUEST, "empty header name");
    for (size_t i = 0; i < c->field.len; i++) {
        if (!is_tchar((unsigned char)c->field.data[i]))
            return fail_parse(c, 400, ERR_BAD_REQUEST, "a header name is not a token");
        c->field.data[i] = (char)tolower((unsigned char)c->field.data[i]);
    }
    for (size_t i = 0; i < c->value.len; i++) {
        unsigned char ch = (unsigned char)c->value.data[i];
        if (ch == 0 || ch == '\r' || ch == '\n')
            return fail_parse(c, 400, ERR_BAD_REQUEST, "a header value holds a control character");
    }
    struct http_header *h = sl_realloc(r->headers, (r->nheaders + 1) * sizeof *h);
    if (!h)
        return fail_parse(c, 500, ERR_INTERNAL, "out of memory");
    r->headers = h;
    /* trim the value */
    size_t b = 0, e = c->value.len;
    while (b < e && (c->value.data[b] == ' ' || c->value.data[b] == '\t'))
        b++;
    while (e > b && (c->value.data[e - 1] == ' ' || c->value.data[e - 1] == '\t'))
        e--;
    h[r->nheaders].name = sl_strndup(c->field.data, c->field.len);
    h[r->nheaders].value = sl_strndup(c->value.len ? c->value.data + b : "", e - b);
    r->nheaders++;
    buf_reset(&c->field);
    buf_reset(&c->value);
    return 0;
}

/* Whether origin is one of cors.allowed_origins. */
static int origin_allowed(const struct sluice_config *cfg, const char *origin)
{
    for (size_t i = 0; origin && cfg->cors.allowed_origins && cfg->cors.allowed_origins[i]; i++)
        if (strcmp(cfg->cors.allowed_origins[i], origin) == 0)
            return 1;
    return 0;
}

/* The headers of a refusal: the challenge of a 401/403, or when to come back after a 429/503. */
static void deny_headers(const struct auth_denial *d, char *out, size_t cap)
{
    if (d->status == 503 || d->status == 429)
        snprintf(out, cap, "Retry-After: %u\r\n", d->retry_after_s ? d->retry_after_s : 1);
    else
        snprintf(out, cap, "WWW-Authenticate: %s\r\n", d->www_authenticate);
}

/*
 * CORS, authentication and the client's rate limit, once the headers are in and
 * before any body is read: 0 to go on, -1 when refused (r->deny says how; nothing
 * has been done).
 */
static int admit(struct http_conn *c, struct http_request *r, enum route_match m)
{
    struct catalog *cat = catalog_get(c->loop->srv->app->catalogs);
    const char *origin = http_header(r, "origin");
    if (origin && strlen(origin) < 200 && origin_allowed(&cat->cfg, origin))
        snprintf(r->cors, sizeof r->cors, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n",
                 origin);
    int rc = 0;
    if (m == ROUTE_FOUND && r->route->perm != PERM_OPEN) {
        rc = auth_check(&cat->cfg, c->loop->store, r->route->perm, http_header(r, "authorization"),
                        c->loop->srv->loopback, clock_wall_ms(), &r->who, &r->deny);
        if (rc < 0) {
            char path[256];
            log_warn("auth", "refused",
                     "\"status\":%d,\"reason\":\"%s\",\"method\":\"%s\",\"path\":\"%s\","
                     "\"remote\":\"%s\"",
                     r->deny.status, r->deny.reason, r->method,
                     log_json_str(path, sizeof path, r->path, (size_t)-1), c->remote);
        } else {
            rc = ratelimit_admit(c->loop->srv->rl, &cat->cfg, r, c->remote);
        }
    }
    catalog_release(cat);
    return rc;
}

static int on_headers_complete(llhttp_t *p)
{
    struct http_conn *c = p->data;
    struct http_request *r = &c->req;
    struct http_server *s = c->loop->srv;

    r->method = llhttp_method_name((llhttp_method_t)p->method);
    if (p->http_major != 1 || p->http_minor > 1)
        return fail_parse(c, 505, ERR_VERSION_NOT_SUPPORTED,
                          "only HTTP/1.0 and HTTP/1.1 are supported");
    /* RFC 9112 3.2: a client MUST send Host in HTTP/1.1; exactly one. */
    int nhost = header_count(r, "host");
    if ((p->http_minor == 1 && nhost == 0) || nhost > 1)
        return fail_parse(c, 400, ERR_BAD_REQUEST,
                          nhost ? "more than one Host header" : "HTTP/1.1 request without Host");
    /* RFC 9112 6.1: Transfer-Encoding with Content-Length is an attack. */
    if (header_count(r, "transfer-encoding")) {
        if (header_count(r, "content-length"))
            return fail_parse(c, 400, ERR_BAD_REQUEST,
                              "Content-Length together with Transfer-Encoding");
        /* The codings of all Transfer-Encoding fields, in order: chunked must be
         * last (else the framing is unknown: 400), and we implement no other (501). */
        int other = 0, last_chunked = 0;
        for (size_t i = 0; i < r->nheaders; i++) {
            if (strcmp(r->headers[i].name, "transfer-encoding") != 0)
                continue;
            char *save, *tok, *copy = sl_strdup(r->headers[i].value);
            for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                while (*tok == ' ' || *tok == '\t')
                    tok++;
                size_t n = strcspn(tok, " \t;");
                last_chunked = n == 7 && strncasecmp(tok, "chunked", 7) == 0;
                other |= !last_chunked;
            }
            free(copy);
        }
        if (!last_chunked)
            return fail_parse(c, 400, ERR_BAD_REQUEST, "Transfer-Encoding must end with chunked");
        if (other)
            return fail_parse(c, 501, ERR_NOT_IMPLEMENTED,
                              "only the chunked transfer coding is supported");
    }
    /* Decode the target into path and query. */
    const char *t = r->target ? r->target : "/";
    char *abs = NULL;
    if (t[0] != '/' && strcmp(t, "*") != 0) {
        /* absolute-form (RFC 9112 3.2.2): keep the path and query only. */
        const char *sch = strstr(t, "://");
        if (!sch)
            return fail_parse(c, 400, ERR_BAD_REQUEST, "the request target must start with '/'");
        const char *rest = sch + 3 + strcspn(sch + 3, "/?");
        abs = sl_malloc(strlen(rest) + 2);
        if (!abs)
            return fail_parse(c, 500, ERR_INTERNAL, "out of memory");
        snprintf(abs, strlen(rest) + 2, "%s%s", *rest == '/' ? "" : "/", rest);
        t = abs;
    }
    const char *qm = strchr(t, '?');
    size_t plen = qm ? (size_t)(qm - t) : strlen(t);
    r->path = sl_malloc(plen + 1);
    if (!r->path || pct_decode(t, plen, r->path, plen + 1, 0) < 0) {
        free(abs);
        return fail_parse(c, 400, ERR_BAD_REQUEST, "bad path");
    }
    r->query = sl_strdup(qm ? qm + 1 : "");
    free(abs);

    const char *rid = http_header(r, "x-request-id");
    if (rid && *rid && strlen(rid) < sizeof r->request_id) {
        int ok = 1;
        for (const char *q = rid; *q; q++)
            ok &= (*q > 0x20 && *q < 0x7f);
        if (ok)
            snprintf(r->request_id, sizeof r->request_id, "%s", rid);
    }

    const char *expect = http_header(r, "expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return fail_parse(c, 417, ERR_EXPECTATION_FAILED,
                              "only 'Expect: 100-continue' is supported");
        c->expect_continue = p->http_minor == 1;
    }

    char allow[128];
    enum route_match m =
        router_match(r->method, r->path, &r->route, r->params, &r->nparams, allow, sizeof allow);
    c->discard_body = (m != ROUTE_FOUND) || !r->route->takes_body;
    c->streamed = m == ROUTE_FOUND && r->route->sink;
    if (admit(c, r, m) < 0) {
        int has_body =
            (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != UINT64_MAX);
        c->discard_body = 1;
        c->streamed = 0;
        if (has_body) { /* answer now and close: a refused body is never read (nor a 100 sent) */
            deny_headers(&r->deny, c->err_hdr, sizeof c->err_hdr);
            return fail_parse(c, r->deny.status, r->deny.code, r->deny.message);
        }
    }
    if (!c->streamed && p->content_length > s->o.max_body_bytes && !(p->flags & F_CHUNKED) &&
        p->content_length != UINT64_MAX)
        return fail_parse(c, 413, ERR_BODY_TOO_LARGE,
                          "the body is larger than limits.max_body_bytes");
    if (c->streamed) {
        enum sluice_err code = ERR_INTERNAL;
        char msg[256] = "";
        r->sink_state = r->route->sink->open(c, r, &code, msg, sizeof msg);
        if (!r->sink_state)
            return fail_parse(c, err_status(code), code, msg);
    }
    if (!c->discard_body && !c->streamed && !(p->flags & F_CHUNKED) && p->content_length > 0 &&
        p->content_length <= s->o.max_body_bytes) {
        /* Count the announced body against the in-flight budget now, and allocate
         * it once instead of doubling as it arrives. */
        if (hold(c, (size_t)p->content_length) < 0)
            return -1;
        buf_reserve(&r->body, (size_t)p->content_length);
    }
    if (c->expect_continue && !c->discard_body) {
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->req.bytes_in + len >
        (c->streamed ? c->loop->srv->o.max_upload_bytes : c->loop->srv->o.max_body_bytes))
        return fail_parse(c, 413, ERR_BODY_TOO_LARGE,
                          "the body is larger than limits.max_body_bytes");
    c->req.bytes_in += len;
    if (c->discard_body)
        return 0;
    if (c->streamed) {
        /* A streamed upload may take longer than http.request_timeout as a whole:
         * the timeout applies to the wait for each next piece instead. */
        c->deadline_ms = loop_now(c->loop) + c->loop->srv->o.request_timeout_ms;
        char msg[256] = "the body could not be stored";
        enum sluice_err code = ERR_UNAVAILABLE;
        if (c->req.route->sink->write(c->req.sink_state, at, len, &code, msg, sizeof msg) < 0)
            return fail_parse(c, code == ERR_UNAVAILABLE ? 507 : err_status(code), code, msg);
        return 0;
    }
    if (c->req.bytes_in > c->held && hold(c, c->req.bytes_in - c->held) < 0)
        return -1;
    if (buf_append(&c->req.body, at, len) < 0)
        return fail_parse(c, 503, ERR_OVERLOADED, "out of memory for the body");
    return 0;
}

/* A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method). */
static void preflight(struct http_conn *c, struct http_request *r, const char *allow)
{
    char hdr[600];
    if (!r->cors[0]) {
        http_reply_error(c, ERR_FORBIDDEN, "the origin is not in cors.allowed_origins");
        return;
    }
    snprintf(hdr, sizeof hdr,
             "Access-Control-Allow-Methods: %s\r\n"
             "Access-Control-Allow-Headers: Authorization, Content-Type, Idempotency-Key, "
             "X-Request-Id\r\nAccess-Control-Max-Age: 600\r\n",
             allow);
    http_reply(c, 204, NULL, NULL, 0, hdr);
}

static void dispatch(struct http_conn *c)
{
    struct http_request *r = &c->req;
    char allow[128], hdr[400];
    if (r->deny.status) {
        deny_headers(&r->deny, hdr, sizeof hdr);
        http_reply_error_status(c, r->deny.status, r->deny.code, hdr, "%s", r->deny.message);
        return;
    }
    if (!r->route && strcmp(r->method, "OPTIONS") == 0 && http_header(r, "origin") &&
        http_header(r, "access-control-request-method")) {
        const struct route *rt;
        char *params[HTTP_MAX_PARAMS];
        size_t np = 0;
        enum route_match m =
            router_match("OPTIONS", r->path ? r->path : "/", &rt, params, &np, allow, sizeof allow);
        for (size_t i = 0; i < np; i++)
            free(params[i]);
        if (m == ROUTE_NO_METHOD) {
            preflight(c, r, allow);
            return;
        }
    }
    if (!r->route) {
        const struct route *rt;
        char *params[HTTP_MAX_PARAMS];
        size_t np = 0;
        enum route_match m =
            router_match(r->method, r->path ? r->path : "/", &rt, params, &np, allow, sizeof allow);
        for (size_t i = 0; i < np; i++)
            free(params[i]);
        if (m == ROUTE_NO_METHOD) {
            snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
            http_reply_error_status(c, 405, ERR_METHOD_NOT_ALLOWED, hdr,
                                    "%s is not allowed on %s (allowed: %s)", r->method, r->path,
                                    allow);
        } else {
            http_reply_error(c, ERR_NOT_FOUND, "no route for %s", r->path ? r->path : "/");
        }
        return;
    }
    enum sluice_err code;
    char msg[512];
    if (http_params_check(r, &code, msg, sizeof msg) < 0) { /* before anything is done */
        http_reply_error(c, code, "%s", msg);
        return;
    }
    r->route->handler(c, r);
}

static int on_message_complete(llhttp_t *p)
{
    struct http_conn *c = p->data;
    if (!llhttp_should_keep_alive(p))
        c->close_after = 1;
    set_busy(c, CONN_WAITING);
    dispatch(c);
    return HPE_PAUSED;
}

/* ---- connections ---------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    static __thread char slab[65536];
    *b = uv_buf_init(slab, sizeof slab);
}

/* The streamed answer is over (sent, failed or cut): its producer's done(). */
static void stream_end(struct http_conn *c)
{
    if (!c->stream.fill)
        return;
    void (*done)(void *) = c->stream.done;
    void *arg = c->stream.arg;
    memset(&c->stream, 0, sizeof c->stream);
    if (done)
        done(arg);
}

static void on_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    stream_end(c);
    struct http_loop *l = c->loop;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->nconns--;
    set_busy(c, CONN_IDLE);
    request_release(&c->req);
    unhold(c);
    buf_release(&c->field);
    buf_release(&c->value);
    free(c->pending);
    free(c->out);
    free(c);
}

static void conn_close(struct http_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->state == CONN_WAITING) {
        /* A handler still owes this request an answer: keep the memory until
         * it comes (http_reply on a closing connection frees and returns). */
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
        c->close_after = 1;
        c->closing = 0;
        return;
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Answer a parse failure and close. */
static void fail_conn(struct http_conn *c, enum llhttp_errno e)
{
    int status = c->err_status;
    enum sluice_err code = c->err_code;
    const char *msg = c->err_msg;
    if (!status) {
        status = 400;
        code = ERR_BAD_REQUEST;
        msg = llhttp_get_error_reason(&c->parser);
        if (e == HPE_INVALID_METHOD) {
            status = 501;
            code = ERR_NOT_IMPLEMENTED;
            msg = "unknown method";
        } else if (e == HPE_INVALID_VERSION) {
            status = 505;
            code = ERR_VERSION_NOT_SUPPORTED;
            msg = "only HTTP/1.0 and HTTP/1.1 are supported";
        }
    }
    c->close_after = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    if (c->state == CONN_WRITING)
        return; /* the pending answer's write will close */
    const char *extra = c->err_hdr[0] ? c->err_hdr : status == 503 ? "Retry-After: 1\r\n" : NULL;
    http_reply_error_status(c, status, code, extra, "%s", msg ? msg : "bad request");
}

/*
 * Keep input that arrives while a request is being answered (pipelining).
 * Reading goes on meanwhile (no epoll_ctl per request); only when more than
 * PENDING_MAX piles up does the connection stop reading until it catches up.
 */
static void keep_pending(struct http_conn *c, const char *data, size_t n)
{
    if (c->close_after || n == 0)
        return; /* the connection ends after this answer: drop it */
    char *np = sl_realloc(c->pending, c->pending_len + n);
    if (!np) {
        c->close_after = 1;
        return;
    }
    memcpy(np + c->pending_len, data, n);
    c->pending = np;
    c->pending_len += n;
    if (c->pending_len > PENDING_MAX && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void conn_feed(struct http_conn *c, const char *data, size_t len)
{
    c->exec_start = data;
    enum llhttp_errno e = llhttp_execute(&c->parser, data, len);
    if (len)
        c->exec_prev = data[len - 1];
    if (e == HPE_OK)
        return;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        /* A request is being answered; keep the rest for later. */
        if (e == HPE_PAUSED_UPGRADE)
            c->close_after = 1; /* no protocol switch: what follows is not HTTP/1.1 */
        const char *pos = llhttp_get_error_pos(&c->parser);
        size_t used = pos ? (size_t)(pos - data) : len;
        if (used < len)
            keep_pending(c, data + used, len - used);
        return;
    }
    fail_conn(c, e);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct http_conn *c = st->data;
    if (nread < 0) { /* EOF or error; a request cut short gets no answer */
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->state == CONN_LINGER) {
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_MAX_BYTES)
            conn_close(c);
        return;
    }
    if (c->state == CONN_WAITING || c->state == CONN_WRITING) {
        keep_pending(c, b->base, (size_t)nread); /* the parser is paused */
        return;
    }
    if (c->state == CONN_IDLE)
        c->deadline_ms = loop_now(c->loop) + c->loop->srv->o.request_timeout_ms;
    conn_feed(c, b->base, (size_t)nread);
}

static void conn_read_start(struct http_conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) == 0)
        c->reading = 1;
    else
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct http_loop *l = server->data;
    if (status < 0)
        return;
    struct http_conn *c = sl_calloc(1, sizeof *c);
    if (!c)
        return;
    c->loop = l;
    uv_tcp_init(&l->loop, &c->tcp);
    c->tcp.data = c;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    int per_loop = l->srv->o.max_connections / l->srv->nloops;
    if (l->draining || (per_loop > 0 && l->nconns > per_loop)) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &plen) == 0) {
        if (peer.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&peer, c->remote, sizeof c->remote);
        else
            uv_ip4_name((struct sockaddr_in *)&peer, c->remote, sizeof c->remote);
    }
    buf_init(&c->field, l->srv->o.max_header_bytes);
    buf_init(&c->value, l->srv->o.max_header_bytes);
    llhttp_init(&c->parser, HTTP_REQUEST, &l->srv->settings);
    c->parser.data = c;
    c->deadline_ms = loop_now(l) + l->srv->o.idle_timeout_ms;
    conn_read_start(c);
}

/* Every 250 ms: time out idle connections and requests that take too long. */
static void on_tick(uv_timer_t *t)
{
    struct http_loop *l = t->data;
    uint64_t now = loop_now(l);
    for (struct http_conn *c = l->conns, *next; c; c = next) {
        next = c->next;
        if (c->closing || now < c->deadline_ms)
            continue;
        if (c->state == CONN_IDLE || c->state == CONN_LINGER || c->state == CONN_WRITING) {
            conn_close(c);
        } else if (c->state == CONN_READING) {
            c->err_status = 408;
            c->err_code = ERR_REQUEST_TIMEOUT;
            snprintf(c->err_msg, sizeof c->err_msg,
                     "the request was not received within http.request_timeout");
            fail_conn(c, HPE_USER);
        }
    }
}

/* ---- loops ------------------------------------------------------------------ */

void http_post(struct http_loop *l, struct loop_msg *m)
{
    pthread_mutex_lock(&l->mu);
    m->next = l->inbox;
    l->inbox = m;
    pthread_mutex_unlock(&l->mu);
    uv_async_send(&l->wake);
}

static void on_wake(uv_async_t *a)
{
    struct http_loop *l = a->data;
    pthread_mutex_lock(&l->mu);
    struct loop_msg *m = l->inbox, *rev = NULL;
    l->inbox = NULL;
    pthread_mutex_unlock(&l->mu);
    while (m) { /* restore arrival order */
        struct loop_msg *n = m->next;
        m->next = rev;
        rev = m;
        m = n;
    }
    while (rev) {
        struct loop_msg *n = rev->next;
        rev->fn(rev);
        rev = n;
    }
}

static void *loop_main(void *arg)
{
    struct http_loop *l = arg;
    pthread_setname_np(pthread_self(), "sl-http");
    uv_run(&l->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "listen '%s': expected HOST:PORT", listen);
        return -1;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535) {
        snprintf(err, errlen, "listen '%s': bad port", listen);
        return -1;
    }
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = 0;
    }
    if (uv_ip4_addr(h, port, (struct sockaddr_in *)ss) != 0 &&
        uv_ip6_addr(h, port, (struct sockaddr_in6 *)ss) != 0) {
        snprintf(err, errlen, "listen '%s': not an IP address", listen);
        return -1;
    }
    return 0;
}

static int loop_init(struct http_server *s, struct http_loop *l, int id, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (parse_listen(s->o.listen, &ss, err, errlen) < 0)
        return -1;
    l->srv = s;
    l->id = id;
    pthread_mutex_init(&l->mu, NULL);
    uv_loop_init(&l->loop);
    l->store = store_open(s->o.store_uri, 1, err, errlen);
    if (!l->store)
        return -1;
    socklen_t sl =
        ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int one = 1;
    if (id == 0) {
        /* SO_REUSEPORT below would let a second sluice share the port with this
         * one; a plain bind first fails when anything already listens there. */
        int probe = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        int rc = bind(probe, (struct sockaddr *)&ss, sl);
        int e = errno;
        close(probe);
        if (rc < 0) {
            snprintf(err, errlen, "listen %s: %s", s->o.listen, strerror(e));
            return -1;
        }
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(err, errlen, "listen %s: %s", s->o.listen, strerror(errno));
        close(fd);
        return -1;
    }
    uv_tcp_init(&l->loop, &l->listener);
    l->listener.data = l;
    uv_tcp_open(&l->listener, fd);
    int rc = uv_listen((uv_stream_t *)&l->listener, 1024, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "listen %s: %s", s->o.listen, uv_strerror(rc));
        return -1;
    }
    uv_async_init(&l->loop, &l->wake, on_wake);
    l->wake.data = l;
    uv_timer_init(&l->loop, &l->tick);
    l->tick.data = l;
    uv_timer_start(&l->tick, on_tick, 250, 250);
    return 0;
}

struct http_server *http_server_start(const struct http_server_opts *o, const struct http_app *app,
                                      char *err, size_t errlen)
{
    struct http_server *s = sl_calloc(1, sizeof *s);
    s->o = *o;
    s->app = app;
    s->nloops = o->threads > 0 ? o->threads : 1;
    s->loops = sl_calloc((size_t)s->nloops, sizeof *s->loops);
    s->loopback = auth_listen_is_loopback(o->listen);
    s->rl = ratelimit_create(o->rate_limit_clients > 0 ? (size_t)o->rate_limit_clients : 65536);
    if (!s->rl) {
        snprintf(err, errlen, "out of memory for rate_limits.max_clients buckets");
        free(s->loops);
        free(s);
        return NULL;
    }
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_url_complete = on_url_complete;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_header_value_complete = on_header_value_complete;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    for (int i = 0; i < s->nloops; i++)
        if (loop_init(s, &s->loops[i], i, err, errlen) < 0) {
            /* Loops that did start have not run yet: tear them down in place. */
            s->nloops = i + 1;
            http_server_stop(s);
            return NULL;
        }
    for (int i = 0; i < s->nloops; i++)
        pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]);
    return s;
}

struct loop_cmd {
    struct loop_msg msg;
    struct http_loop *l;
    int stop;
};

/* At stop: close every handle of the loop; connections free themselves. */
static void close_walk(uv_handle_t *h, void *arg)
{
    struct http_loop *l = arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h != (uv_handle_t *)&l->listener) {
        struct http_conn *c = h->data;
        set_busy(c, CONN_IDLE); /* the writer is stopped: no answer can come any more */
        conn_close(c);
    } else {
        uv_close(h, NULL);
    }
}

static void on_cmd(struct loop_msg *m)
{
    struct loop_cmd *cmd = (struct loop_cmd *)m;
    struct http_loop *l = cmd->l;
    int stop = cmd->stop;
    free(cmd);
    if (!stop) {
        l->draining = 1;
        if (!uv_is_closing((uv_handle_t *)&l->listener))
            uv_close((uv_handle_t *)&l->listener, NULL);
        for (struct http_conn *c = l->conns, *n; c; c = n) {
            n = c->next;
            if (c->state == CONN_IDLE)
                conn_close(c);
        }
        return;
    }
    uv_walk(&l->loop, close_walk, l);
}

static void send_cmd(struct http_loop *l, int stop)
{
    struct loop_cmd *cmd = sl_calloc(1, sizeof *cmd);
    cmd->msg.fn = on_cmd;
    cmd->l = l;
    cmd->stop = stop;
    http_post(l, &cmd->msg);
}

void http_server_drain(struct http_server *s)
{
    for (int i = 0; i < s->nloops; i++)
        send_cmd(&s->loops[i], 0);
}

int http_server_busy(struct http_server *s)
{
    int n = 0;
    for (int i = 0; i < s->nloops; i++)
        n += __atomic_load_n(&s->loops[i].busy, __ATOMIC_RELAXED);
    return n;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nloops; i++) {
        struct http_loop *l = &s->loops[i];
        if (l->thread) {
            send_cmd(l, 1);
            pthread_join(l->thread, NULL);
        } else if (l->srv) {
            uv_walk(&l->loop, close_walk, l);
            uv_run(&l->loop, UV_RUN_DEFAULT);
        }
        if (l->srv) {
            uv_loop_close(&l->loop);
            store_close(l->store);
            pthread_mutex_destroy(&l->mu);
        }
    }
    ratelimit_destroy(s->rl);
    free(s->loops);
    free(s);
}
