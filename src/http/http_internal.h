/*
 * http_internal.h - what the HTTP server's own files share: the loop, server
 * and connection structs, the connection states, and the functions one server
 * file calls in another. PRIVATE to request.c, reply.c, parser.c, dispatch.c,
 * conn.c and loops.c: handlers and everything else use http/server.h, which
 * keeps these structs opaque so that only the server touches a connection's
 * state, its parser and its buffers.
 *
 * Threads: everything here runs on the connection's loop thread, except the
 * counters marked atomic (http_loop.busy, http_server.inflight), which other
 * threads read.
 *
 * Who owns what: a loop owns its connections (http_loop.conns, freed in
 * conn.c's on_closed); a connection owns its request (c->req, released by
 * request_release) and the answer being written (c->out).
 */
#ifndef SLUICE_HTTP_INTERNAL_H
#define SLUICE_HTTP_INTERNAL_H

#include <llhttp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/catalog.h"
#include "http/router.h"
#include "http/server.h"
#include "util/buf.h"

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
    /* This loop's copy of the configuration in force (config/catalog.h): each request's
     * reference is taken from it without a lock; synced on the tick, released at stop. */
    struct catalog_cache catalog;
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
    char err_msg[1024]; /* as long as reply.c's messages: an early refusal's is whole */
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

/* The loop's clock, in ms (uv_now). */
static inline uint64_t loop_now(struct http_loop *l)
{
    return uv_now(&l->loop);
}

/* Move c to state st, keeping http_loop.busy (READING, WAITING, WRITING) counted. */
static inline void set_busy(struct http_conn *c, enum conn_state st)
{
    int was = c->state >= CONN_READING && c->state <= CONN_WRITING;
    int is = st >= CONN_READING && st <= CONN_WRITING;
    c->state = st;
    if (was != is)
        __atomic_add_fetch(&c->loop->busy, is ? 1 : -1, __ATOMIC_RELAXED);
}

/* ---- request.c: the request's bookkeeping ---------------------------------- */

/* Free what r owns (aborting a streamed body's sink) and zero it. */
void request_release(struct http_request *r);
/* A new request starts on c: release the previous one, reset the header state. */
void request_begin(struct http_conn *c);
/* Give back the body bytes c counted against limits.max_inflight_bytes. */
void request_unhold(struct http_conn *c);
/* How many headers named name (lower-case) r has. */
int request_header_count(const struct http_request *r, const char *name);
/* Percent-decode n bytes of s into out (cap); plus_space turns '+' into ' '.
 * Returns the decoded length, -1 when out is too small. */
int request_pct_decode(const char *s, size_t n, char *out, size_t cap, int plus_space);

/* ---- reply.c: answers -------------------------------------------------------- */

/* The streamed answer is over (sent, failed or cut): its producer's done(). */
void reply_stream_end(struct http_conn *c);

/* ---- parser.c: llhttp callbacks and the RFC 9112 rules ----------------------- */

/* Fill the llhttp callbacks of every connection of the server. */
void parser_settings_init(llhttp_settings_t *settings);

/* ---- dispatch.c: admission (CORS, auth, rate limits) and dispatch ------------- */

/*
 * CORS, authentication and the client's rate limit, once the headers are in and
 * before any body is read: 0 to go on, -1 when refused (r->deny says how; nothing
 * has been done).
 */
int dispatch_admit(struct http_conn *c, struct http_request *r, enum route_match m);
/*
 * A request admitted, whose body is about to be read: what its route refuses from the
 * headers alone (the parameter checks, then route->refuse), in the order the complete
 * request would be answered. 0 to go on, -1 with *out filled.
 */
int dispatch_refuse_early(struct http_conn *c, struct http_request *r, struct route_refusal *out);
/* The headers of a refusal: the challenge of a 401/403, or when to come back after a 429/503. */
void dispatch_deny_headers(const struct auth_denial *d, char *out, size_t cap);
/* The request is complete: answer a refusal, a preflight, a 404/405, or run its handler. */
void dispatch_request(struct http_conn *c);

/* ---- conn.c: connections ------------------------------------------------------- */

/* Close c (once); while a handler still owes an answer, only stop reading. */
void conn_close(struct http_conn *c);
/* The answer is written: linger and close, or get ready for the next request. */
void conn_answered(struct http_conn *c);
/* The listener's callback: accept a connection onto the loop. */
void conn_on_connection(uv_stream_t *server, int status);
/* Every 250 ms: time out idle connections and requests that take too long. */
void conn_on_tick(uv_timer_t *t);

#endif
