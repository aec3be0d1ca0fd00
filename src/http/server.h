/*
 * server.h - the HTTP/1.1 server: libuv loops (one thread each, sharing the
 * port with SO_REUSEPORT) and llhttp in strict mode, plus the RFC 9112 rules a
 * server adds on top of the parser.
 *
 * A request is read whole (body capped at limits.max_body_bytes), routed
 * (http/router.h) and handed to its handler on the loop thread. A handler
 * answers with http_reply*() exactly once: at once, or later from the same
 * loop thread (a writer job posts back with http_post()). While a request
 * waits for its answer, the connection reads nothing more, so pipelined
 * requests are answered in order.
 */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "util/buf.h"
#include "util/errors.h"

struct store;
struct writer;
struct catalog_source;
struct catalog;
struct store_pool;
struct batch_pool;
struct http_server;

/* What the handlers reach of the running service. service.c fills it before
 * http_server_start() and keeps it, unchanged, until http_server_stop(); the server and the
 * handlers only borrow it (and what it points to). */
struct sched;
struct http_app {
    struct writer *writer;
    struct catalog_source *catalogs; /* the configuration in force (config/catalog.h) */
    struct store_pool *files;        /* connections lent to threads that own none (store_pool.h) */
    struct batch_pool *batches;      /* NULL when batches.workers is 0 */
    int sentinel_runs;               /* a sentinel thread runs on this node */
    struct sched *sched;             /* the scheduler (sched/sched.h); NULL in tests */
    const char *store_uri;
    uint64_t started_ns; /* clock_mono_ns() at start */
    /* POST /api/v1/admin/reload: service_reload() (service.h), on a thread of the pool. */
    int (*reload)(void *ctx, json_t **changes, char *why, size_t whylen);
    void *reload_ctx;
};
struct http_loop;
struct http_conn;
struct route;

struct http_header {
    char *name;  /* lower-cased */
    char *value; /* leading/trailing whitespace trimmed */
};

#define HTTP_MAX_PARAMS 4

struct http_request {
    const char *method;          /* "GET", static */
    char *target;                /* the raw request target, owned */
    char *path;                  /* percent-decoded path, owned */
    char *query;                 /* raw query string without '?', "" if none, owned */
    struct http_header *headers; /* owned */
    size_t nheaders;
    struct buf body;
    size_t bytes_in; /* body bytes received (the body may be taken by the handler) */
    char request_id[72];
    char *params[HTTP_MAX_PARAMS]; /* path parameters, owned */
    size_t nparams;
    const struct route *route;
    void *sink_state; /* streamed body (route->sink); the handler takes it */
    uint64_t start_ns;
    struct principal who;    /* the authenticated caller (actor empty for open routes) */
    struct auth_denial deny; /* status != 0: refused before the handler */
    char cors[320];          /* CORS headers for an allowed Origin, else empty */
    /* The configuration in force when the headers were in: one reference, taken once for
     * the whole request (authentication, the handler and its answer see the same one) and
     * released with the request. Handlers use http_conn_catalog(). */
    struct catalog *cat;
};

/* A header's value (name lower-case), or NULL. Borrowed. */
const char *http_header(const struct http_request *r, const char *name);
/*
 * A query parameter, percent-decoded ('+' is a space) into out. Returns 1 when
 * present, 0 when absent, -1 when out is too small.
 */
int http_query(const struct http_request *r, const char *name, char *out, size_t cap);

/* What a handler has to work with. */
const struct http_app *http_conn_app(struct http_conn *c);
/* A new reference to the current request's catalog (see struct http_request's cat): what a
 * handler, or a job it submits, keeps until it is done. Release with catalog_release(). */
struct catalog *http_conn_catalog(struct http_conn *c);
struct store *http_conn_store(struct http_conn *c); /* the loop's read-only store */
struct http_loop *http_conn_loop(struct http_conn *c);
struct uv_loop_s *http_conn_uv_loop(struct http_conn *c); /* for uv_queue_work */

/*
 * Answer the current request. body is taken (malloc'd, may be NULL);
 * extra_headers ("Name: value\r\n"...) is borrowed. Must run on the loop
 * thread.
 */
void http_reply(struct http_conn *c, int status, const char *ctype, char *body, size_t len,
                const char *extra_headers);
/*
 * Answer with a body produced piece by piece (Transfer-Encoding: chunked; to an
 * HTTP/1.0 client, ended by closing the connection). fill(arg, out) appends the
 * next piece to out (tens of KiB, not the whole answer) and returns 1 while more
 * follows, 0 with the last piece, -1 on failure: the connection is then closed
 * without the final chunk, so the client sees the answer is incomplete. fill runs
 * on the loop thread each time the previous piece was sent, so memory stays that
 * of one piece however long the answer. done(arg) runs exactly once at the end,
 * whatever happened (also when the client goes away).
 */
void http_reply_stream(struct http_conn *c, int status, const char *ctype,
                       const char *extra_headers, int (*fill)(void *arg, struct buf *out),
                       void (*done)(void *arg), void *arg);
/* Answer with a JSON body; steals j. */
void http_reply_json(struct http_conn *c, int status, json_t *j, const char *extra_headers);
/* Answer {"error":{"code","message"}} with the code's status; message printf-style
 * (NULL for the code's default message). */
void http_reply_error(struct http_conn *c, enum sluice_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with an explicit status (e.g. 503 with Retry-After). */
void http_reply_error_status(struct http_conn *c, int status, enum sluice_err code,
                             const char *extra_headers, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A message to run on a loop's thread. */
struct loop_msg {
    struct loop_msg *next;
    void (*fn)(struct loop_msg *m);
};
/* Thread-safe: run m->fn(m) soon on loop l's thread. */
void http_post(struct http_loop *l, struct loop_msg *m);

struct http_server_opts {
    const char *listen; /* HOST:PORT */
    int threads;
    uint64_t max_body_bytes, max_header_bytes;
    uint64_t max_upload_bytes;   /* streamed bodies (batch uploads) */
    uint64_t max_inflight_bytes; /* bodies held at once over all loops */
    uint64_t idle_timeout_ms, request_timeout_ms;
    int max_connections;
    int rate_limit_clients; /* buckets of the per-client rate limits (rate_limits.max_clients) */
    const char *store_uri;  /* each loop opens a read-only store on it */
    int log_requests;
};

/* Bind and start the loops. Returns NULL with err set (e.g. address in use). */
struct http_server *http_server_start(const struct http_server_opts *o, const struct http_app *app,
                                      char *err, size_t errlen);
/* Stop accepting; close idle connections; finish the ones in progress. */
void http_server_drain(struct http_server *s);
/* Requests being read or waiting for their answer, over all loops. */
int http_server_busy(struct http_server *s);
/* Close everything, join the threads, free. Accepts NULL. */
void http_server_stop(struct http_server *s);

#endif
