/*
 * dispatch.c - what happens to a request between its parse and its handler:
 * admission once the headers are in (CORS origin, authentication, the
 * client's rate limit: http/ratelimit.h) and what the route refuses before its
 * body is read (route->refuse), then, once the request is complete,
 * the refusal, the CORS preflight, the 404/405, the parameter checks
 * (http/params.h) or the route's handler. Loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/catalog.h"
#include "http/http_internal.h"
#include "http/params.h"
#include "http/ratelimit.h"
#include "util/clock.h"
#include "util/log.h"

/* Whether origin is one of cors.allowed_origins. */
static int origin_allowed(const struct sluice_config *cfg, const char *origin)
{
    for (size_t i = 0; origin && cfg->cors.allowed_origins && cfg->cors.allowed_origins[i]; i++)
        if (strcmp(cfg->cors.allowed_origins[i], origin) == 0)
            return 1;
    return 0;
}

/* The headers of a refusal: the challenge of a 401/403, or when to come back after a 429/503. */
void dispatch_deny_headers(const struct auth_denial *d, char *out, size_t cap)
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
int dispatch_admit(struct http_conn *c, struct http_request *r, enum route_match m)
{
    catalog_release(r->cat); /* none yet; but never two */
    struct catalog *cat = r->cat = catalog_cached(c->loop->srv->app->catalogs, &c->loop->catalog);
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
    return rc; /* r->cat is released with the request */
}

/*
 * A request that has passed admission and whose body is about to be read: what its route
 * refuses from the headers alone, in the order dispatch_request() and the handler would
 * answer the complete request (the parameter checks, then route->refuse). 0 to go on, -1
 * with *out filled.
 */
int dispatch_refuse_early(struct http_conn *c, struct http_request *r, struct route_refusal *out)
{
    if (!r->route || !r->route->refuse || r->deny.status)
        return 0;
    enum sluice_err code;
    char msg[512];
    if (http_params_check(r, &code, msg, sizeof msg) < 0) { /* as dispatch_request says it */
        out->status = err_status(code);
        out->code = code;
        snprintf(out->headers, sizeof out->headers, "%s",
                 out->status == 503 ? "Retry-After: 1\r\n" : "");
        snprintf(out->message, sizeof out->message, "%s", msg);
        return -1;
    }
    return r->route->refuse(c, r, out);
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

void dispatch_request(struct http_conn *c)
{
    struct http_request *r = &c->req;
    char allow[128], hdr[400];
    if (r->deny.status) {
        dispatch_deny_headers(&r->deny, hdr, sizeof hdr);
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
