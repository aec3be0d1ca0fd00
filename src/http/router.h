/*
 * router.h - the route table: every HTTP route declared once, as
 * {method, pattern, handler, label, summary}. Patterns are literal segments
 * and {param} segments; the label is what metrics and logs call the route.
 */
#ifndef SLUICE_HTTP_ROUTER_H
#define SLUICE_HTTP_ROUTER_H

#include <stddef.h>

#include "auth/auth.h"
#include "util/errors.h"

struct http_conn;
struct http_request;

typedef void (*http_handler)(struct http_conn *c, struct http_request *r);

/*
 * A route whose body is streamed somewhere (a file) instead of being held in
 * memory. open() runs when the headers are complete and returns the sink's
 * state, or NULL to refuse the request (code and message set); write() gets
 * every chunk of the body; the handler then takes r->sink_state; abort()
 * releases a state the handler never took (the request failed or the client
 * went away).
 */
struct body_sink {
    void *(*open)(struct http_conn *c, struct http_request *r, enum sluice_err *code, char *msg,
                  size_t cap);
    int (*write)(void *state, const char *data, size_t len, enum sluice_err *code, char *msg,
                 size_t cap);
    void (*abort)(void *state);
};

/* A refusal known before the body is read: what the handler would answer. */
struct route_refusal {
    int status;
    enum sluice_err code;
    char headers[64];   /* extra headers of the answer ("Retry-After: 1\r\n"), or "" */
    char message[1024]; /* as the handler's answer would say it (reply.c's limit) */
};

/*
 * The refusals a route can tell from the headers alone (http/dispatch.c asks, on the loop
 * thread, once the headers are in and a body follows): 0 to go on, or -1 with *out filled
 * with exactly the answer the handler would give the complete request; that answer is then
 * sent at once and the connection closed, the body never read. r->cat is the request's
 * catalog (borrowed for the call). The handler must still make the same checks: a request
 * without a body is not asked, and what the hook saw may change before the body is in.
 */
typedef int (*http_refuse)(struct http_conn *c, struct http_request *r, struct route_refusal *out);

struct route {
    const char *method;
    const char *pattern;
    http_handler handler;
    const char *summary;
    int takes_body;               /* 0: any body is read and discarded */
    const struct body_sink *sink; /* non-NULL: the body is streamed, not held */
    enum perm perm;               /* what the caller's role must allow (auth.h) */
    http_refuse refuse;           /* NULL: nothing is refused before the body */
};

extern const struct route http_routes[];
extern const size_t http_nroutes;

enum route_match { ROUTE_FOUND, ROUTE_NO_PATH, ROUTE_NO_METHOD };

/*
 * Match method and decoded path. On ROUTE_FOUND sets *out and copies the
 * {param} values into params (owned by the caller, *nparams of them). On
 * ROUTE_NO_METHOD writes the allowed methods ("GET, POST") into allow.
 */
enum route_match router_match(const char *method, const char *path, const struct route **out,
                              char **params, size_t *nparams, char *allow, size_t allowcap);

/* Index of a route in http_routes (for metrics). */
size_t router_index(const struct route *r);
/* The label of http_routes[i] (its pattern), what metrics call the route; i < http_nroutes.
 * ops/metrics takes it at init (metrics_init). */
const char *router_label(size_t i);

#endif
