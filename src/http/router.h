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

struct route {
    const char *method;
    const char *pattern;
    http_handler handler;
    const char *summary;
    int takes_body;               /* 0: any body is read and discarded */
    const struct body_sink *sink; /* non-NULL: the body is streamed, not held */
    enum perm perm;               /* what the caller's role must allow (auth.h) */
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
