/*
 * conn.c - connections: accept (limits.max_connections per loop), read and
 * feed the parser, answer a parse failure, keep a connection alive between
 * requests or close it (a lingering close after a final answer), and the
 * timeouts (http.idle_timeout, http.request_timeout). Also the accessors a
 * handler has of its connection (http/server.h). Loop thread only.
 *
 * One request at a time per connection: on_message_complete (parser.c)
 * dispatches the handler and pauses the parser; unparsed bytes (pipelined
 * requests) are kept in conn->pending and fed again once the answer is
 * written (conn_answered).
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/http_internal.h"

#include "config/catalog.h"
#include "util/mem.h"

#define LINGER_MS 2000               /* how long a lingering close waits for the client */
#define PENDING_MAX (64u << 10)      /* pipelined input kept before reading pauses */
#define LINGER_MAX_BYTES (64u << 20) /* and how much it reads and drops at most */

static void conn_feed(struct http_conn *c, const char *data, size_t len);
static void conn_read_start(struct http_conn *c);

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

void conn_answered(struct http_conn *c)
{
    if (c->close_after || c->loop->draining) {
        linger(c);
        return;
    }
    /* Ready for the next request on this connection. */
    set_busy(c, CONN_IDLE);
    request_release(&c->req);
    request_unhold(c);
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

struct catalog *http_conn_catalog(struct http_conn *c)
{
    return catalog_ref(c->req.cat);
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

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    static __thread char slab[65536];
    *b = uv_buf_init(slab, sizeof slab);
}

static void on_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    reply_stream_end(c);
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
    request_unhold(c);
    buf_release(&c->field);
    buf_release(&c->value);
    free(c->pending);
    free(c->out);
    free(c);
}

void conn_close(struct http_conn *c)
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

void conn_on_connection(uv_stream_t *server, int status)
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
void conn_on_tick(uv_timer_t *t)
{
    struct http_loop *l = t->data;
    uint64_t now = loop_now(l);
    /* After a reload, let go of the replaced catalog even if no request comes. */
    catalog_cache_sync(l->srv->app->catalogs, &l->catalog);
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
