/*
 * test_router.c - the route table and the matcher (src/http/router.h):
 * every declared route is reachable, {param} values come out, unknown paths
 * and wrong methods are told apart (with the Allow list), HEAD goes to GET
 * routes, and near-misses (trailing slash, extra segments) do not match.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/router.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAXP 8

/* One router_match() call, with everything it returns. */
struct result {
    enum route_match m;
    const struct route *route;
    char *params[MAXP];
    size_t nparams;
    char allow[128];
};

static void do_match(const char *method, const char *path, struct result *r)
{
    memset(r, 0, sizeof *r);
    r->route = (const struct route *)0x1;
    r->nparams = 99;
    memset(r->allow, 'X', sizeof r->allow);
    r->m = router_match(method, path, &r->route, r->params, &r->nparams, r->allow, sizeof r->allow);
    cr_assert(memchr(r->allow, 0, sizeof r->allow) != NULL, "%s %s: allow not terminated", method,
              path);
}

static void release(struct result *r)
{
    for (size_t i = 0; i < MAXP; i++) {
        free(r->params[i]);
        r->params[i] = NULL;
    }
}

static const char *match_name(enum route_match m)
{
    return m == ROUTE_FOUND ? "FOUND" : m == ROUTE_NO_PATH ? "NO_PATH" : "NO_METHOD";
}

/* Index of the route declared as method + pattern; fails the test if there is none. */
static size_t route_of(const char *method, const char *pattern)
{
    for (size_t i = 0; i < http_nroutes; i++)
        if (strcmp(http_routes[i].method, method) == 0 &&
            strcmp(http_routes[i].pattern, pattern) == 0)
            return i;
    cr_assert_fail("no route %s %s in http_routes", method, pattern);
    return 0;
}

/* ---- the table itself ---------------------------------------------------------- */

Test(routes, table_is_well_formed)
{
    cr_assert_gt(http_nroutes, 0);
    for (size_t i = 0; i < http_nroutes; i++) {
        const struct route *r = &http_routes[i];
        cr_expect_not_null(r->handler, "%s %s has no handler", r->method, r->pattern);
        cr_expect_eq(r->pattern[0], '/', "%s", r->pattern);
        cr_expect(strcmp(r->method, "GET") == 0 || strcmp(r->method, "POST") == 0 ||
                      strcmp(r->method, "PUT") == 0 || strcmp(r->method, "DELETE") == 0 ||
                      strcmp(r->method, "PATCH") == 0,
                  "odd method %s", r->method);
        cr_expect_not_null(r->summary);
        for (size_t k = i + 1; k < http_nroutes; k++)
            cr_expect(strcmp(r->method, http_routes[k].method) != 0 ||
                          strcmp(r->pattern, http_routes[k].pattern) != 0,
                      "%s %s declared twice", r->method, r->pattern);
    }
    /* the routes the API promises */
    route_of("GET", "/healthz");
    route_of("GET", "/health/ready");
    route_of("GET", "/metrics");
    route_of("GET", "/api/v1/datasets");
    route_of("GET", "/api/v1/datasets/{name}");
    route_of("POST", "/api/v1/datasets/{name}/events");
    route_of("GET", "/api/v1/dlq");
    route_of("GET", "/api/v1/dlq/{id}");
    route_of("POST", "/api/v1/dlq/{id}/retry");
    route_of("DELETE", "/api/v1/dlq/{id}");
}

Test(routes, router_index)
{
    for (size_t i = 0; i < http_nroutes; i++)
        cr_expect_eq(router_index(&http_routes[i]), i);
}

/* ---- every route matches its own pattern ------------------------------------- */

/* Turn "/a/{x}/b/{y}" into "/a/v0x/b/v1x", remembering the values. */
static void instantiate(const char *pattern, char *path, size_t cap, char vals[][32], size_t *nvals)
{
    size_t n = 0, o = 0;
    for (const char *p = pattern; *p;) {
        if (*p == '{') {
            snprintf(vals[n], 32, "v%zu_sample-9", n);
            o += (size_t)snprintf(path + o, cap - o, "%s", vals[n]);
            n++;
            p = strchr(p, '}') + 1;
        } else {
            path[o++] = *p++;
        }
    }
    path[o] = 0;
    *nvals = n;
}

Test(routes, every_route_matches_itself)
{
    for (size_t i = 0; i < http_nroutes; i++) {
        const struct route *rt = &http_routes[i];
        char path[256], vals[MAXP][32];
        size_t nvals;
        instantiate(rt->pattern, path, sizeof path, vals, &nvals);

        struct result r;
        do_match(rt->method, path, &r);
        cr_expect_eq(r.m, ROUTE_FOUND, "%s %s (%s): %s", rt->method, path, rt->pattern,
                     match_name(r.m));
        if (r.m == ROUTE_FOUND) {
            cr_expect_eq(r.route, rt, "%s %s went to %s %s", rt->method, path, r.route->method,
                         r.route->pattern);
            cr_expect_eq(router_index(r.route), i);
            cr_expect_eq(r.nparams, nvals, "%s: %zu params", rt->pattern, r.nparams);
            for (size_t k = 0; k < nvals && k < r.nparams; k++)
                cr_expect_str_eq(r.params[k], vals[k], "%s: param %zu", rt->pattern, k);
        }
        release(&r);
    }
}

/* ---- params --------------------------------------------------------------------- */

static const struct {
    const char *method, *path, *pattern;
    const char *param; /* the one {param} value, or NULL */
} param_cases[] = {
    {"GET", "/api/v1/datasets/judgments", "/api/v1/datasets/{name}", "judgments"},
    {"POST", "/api/v1/datasets/ev_1/events", "/api/v1/datasets/{name}/events", "ev_1"},
    {"POST", "/api/v1/datasets/events/events", "/api/v1/datasets/{name}/events", "events"},
    {"GET", "/api/v1/dlq/42", "/api/v1/dlq/{id}", "42"},
    {"POST", "/api/v1/dlq/42/retry", "/api/v1/dlq/{id}/retry", "42"},
    {"DELETE", "/api/v1/dlq/9007199254740993", "/api/v1/dlq/{id}", "9007199254740993"},
    {"GET", "/api/v1/datasets/a b.c-d~e", "/api/v1/datasets/{name}", "a b.c-d~e"},
    {"POST", "/api/v1/dlq/retry", "/api/v1/dlq/retry", NULL}, /* literal beats {id} */
    {"GET", "/api/v1/datasets", "/api/v1/datasets", NULL},
    {"GET", "/api/v1/dlq", "/api/v1/dlq", NULL},
};

Test(routes, params_extracted)
{
    for (size_t i = 0; i < ARRAY_SIZE(param_cases); i++) {
        struct result r;
        do_match(param_cases[i].method, param_cases[i].path, &r);
        cr_expect_eq(r.m, ROUTE_FOUND, "%s %s: %s", param_cases[i].method, param_cases[i].path,
                     match_name(r.m));
        if (r.m != ROUTE_FOUND) {
            release(&r);
            continue;
        }
        cr_expect_str_eq(r.route->pattern, param_cases[i].pattern, "%s %s", param_cases[i].method,
                         param_cases[i].path);
        cr_expect_str_eq(r.route->method, param_cases[i].method);
        if (param_cases[i].param) {
            cr_expect_eq(r.nparams, 1, "%s", param_cases[i].path);
            if (r.nparams >= 1)
                cr_expect_str_eq(r.params[0], param_cases[i].param);
        } else {
            cr_expect_eq(r.nparams, 0, "%s", param_cases[i].path);
        }
        release(&r);
    }
}

/* ---- unknown paths, near misses ------------------------------------------------ */

static const char *const no_paths[] = {
    "",
    "/",
    "/nope",
    "/api",
    "/api/v1",
    "/api/v1/",
    "/api/v2/datasets",
    "/HEALTHZ",
    "/healthzz",
    "/health/",
    /* trailing slash */
    "/healthz/",
    "/metrics/",
    "/api/v1/datasets/",
    "/api/v1/datasets/x/",
    "/api/v1/datasets/x/events/",
    "/api/v1/dlq/",
    "/api/v1/dlq/7/",
    "/api/v1/dlq/7/retry/",
    "/api/v1/dlq/retry/",
    /* extra segments */
    "/healthz/x",
    "/health/live/now",
    "/metrics/x",
    "/api/v1/datasets/x/y",
    "/api/v1/datasets/x/events/y",
    "/api/v1/datasets/x/events/y/z",
    "/api/v1/dlq/7/8",
    "/api/v1/dlq/7/retry/now",
    /* empty or doubled segments */
    "//healthz",
    "/api//v1/datasets",
    "/api/v1/datasets//events",
    "/api/v1/dlq//retry",
    /* prefixes of patterns */
    "/api/v1/datasets/x/event",
    "/api/v1/dlq/7/retr",
};

Test(routes, unknown_paths)
{
    static const char *const methods[] = {"GET", "POST", "DELETE", "HEAD", "PUT"};
    for (size_t i = 0; i < ARRAY_SIZE(no_paths); i++)
        for (size_t k = 0; k < ARRAY_SIZE(methods); k++) {
            struct result r;
            do_match(methods[k], no_paths[i], &r);
            cr_expect_eq(r.m, ROUTE_NO_PATH, "%s '%s': %s%s%s", methods[k], no_paths[i],
                         match_name(r.m), r.m == ROUTE_FOUND ? " " : "",
                         r.m == ROUTE_FOUND ? r.route->pattern : "");
            if (r.m == ROUTE_NO_PATH) {
                cr_expect_null(r.route);
                cr_expect_eq(r.nparams, 0);
                cr_expect_str_eq(r.allow, "");
            }
            release(&r);
        }
}

/* ---- wrong method ------------------------------------------------------------------ */

/* Whether the comma-separated list has exactly the methods of want (HEAD may be added). */
static int same_methods(const char *allow, const char *want)
{
    char a[128], w[128];
    snprintf(a, sizeof a, "%s", allow);
    snprintf(w, sizeof w, "%s", want);
    size_t na = 0, nw = 0;
    char *av[16], *wv[16], *save;
    for (char *t = strtok_r(a, ", ", &save); t && na < 16; t = strtok_r(NULL, ", ", &save))
        if (strcmp(t, "HEAD") != 0)
            av[na++] = t;
    for (char *t = strtok_r(w, ", ", &save); t && nw < 16; t = strtok_r(NULL, ", ", &save))
        wv[nw++] = t;
    if (na != nw)
        return 0;
    for (size_t i = 0; i < nw; i++) {
        int found = 0;
        for (size_t k = 0; k < na; k++)
            found += strcmp(wv[i], av[k]) == 0;
        if (found != 1)
            return 0;
    }
    return 1;
}

static const struct {
    const char *method, *path, *allow;
} wrong_method[] = {
    {"POST", "/healthz", "GET"},
    {"DELETE", "/metrics", "GET"},
    {"PUT", "/health/ready", "GET"},
    {"POST", "/api/v1/datasets", "GET"},
    {"DELETE", "/api/v1/datasets/judgments", "GET"},
    {"GET", "/api/v1/datasets/judgments/events", "POST"},
    {"PUT", "/api/v1/datasets/judgments/events", "POST"},
    {"HEAD", "/api/v1/datasets/judgments/events", "POST"},
    {"POST", "/api/v1/dlq", "GET, DELETE"},
    {"PUT", "/api/v1/dlq/5", "GET, DELETE"},
    {"POST", "/api/v1/dlq/5", "GET, DELETE"},
    {"GET", "/api/v1/dlq/5/retry", "POST"},
    {"DELETE", "/api/v1/dlq/5/retry", "POST"},
    {"get", "/healthz", "GET"}, /* methods are case-sensitive */
};

Test(routes, wrong_method_lists_allowed)
{
    for (size_t i = 0; i < ARRAY_SIZE(wrong_method); i++) {
        struct result r;
        do_match(wrong_method[i].method, wrong_method[i].path, &r);
        cr_expect_eq(r.m, ROUTE_NO_METHOD, "%s %s: %s", wrong_method[i].method,
                     wrong_method[i].path, match_name(r.m));
        if (r.m == ROUTE_NO_METHOD) {
            cr_expect_null(r.route);
            cr_expect_eq(r.nparams, 0);
            cr_expect(same_methods(r.allow, wrong_method[i].allow),
                      "%s %s: Allow '%s', expected '%s'", wrong_method[i].method,
                      wrong_method[i].path, r.allow, wrong_method[i].allow);
        }
        release(&r);
    }
}

Test(routes, allow_respects_a_small_buffer)
{
    const struct route *rt;
    char *params[MAXP] = {0};
    size_t np;
    char allow[16];
    memset(allow, 'X', sizeof allow);
    /* "GET, DELETE" is 11 bytes: must not overflow 6, must stay terminated */
    cr_expect_eq(router_match("PUT", "/api/v1/dlq/5", &rt, params, &np, allow, 6), ROUTE_NO_METHOD);
    cr_expect(memchr(allow, 0, 6) != NULL, "allow not terminated within its cap");
    for (size_t i = 6; i < sizeof allow; i++)
        cr_expect_eq(allow[i], 'X', "wrote past the cap at %zu", i);
}

/* ---- HEAD ---------------------------------------------------------------------------- */

Test(routes, head_matches_get_routes)
{
    for (size_t i = 0; i < http_nroutes; i++) {
        if (strcmp(http_routes[i].method, "GET") != 0)
            continue;
        char path[256], vals[MAXP][32];
        size_t nvals;
        instantiate(http_routes[i].pattern, path, sizeof path, vals, &nvals);
        struct result r;
        do_match("HEAD", path, &r);
        cr_expect_eq(r.m, ROUTE_FOUND, "HEAD %s: %s", path, match_name(r.m));
        if (r.m == ROUTE_FOUND) {
            cr_expect_eq(r.route, &http_routes[i], "HEAD %s went to %s %s", path, r.route->method,
                         r.route->pattern);
            cr_expect_eq(r.nparams, nvals);
            for (size_t k = 0; k < nvals && k < r.nparams; k++)
                cr_expect_str_eq(r.params[k], vals[k]);
        }
        release(&r);
    }
}
