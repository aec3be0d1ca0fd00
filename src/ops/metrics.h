/*
 * metrics.h - sluice's Prometheus metrics, prefix sluice_.
 *
 * Counters are updated from any thread. Row counters for one request are
 * updated in one call under one lock, so at every scrape, per dataset,
 *   received = accepted + sum(rejected by error_code) + duplicates.
 */
#ifndef SLUICE_OPS_METRICS_H
#define SLUICE_OPS_METRICS_H

#include <jansson.h>
#include <stddef.h>

#include "auth/auth.h"
#include "util/buf.h"
#include "util/errors.h"

/* routes: how many HTTP routes there are; label(i): the label of route i (0 <= i < routes),
 * a string that outlives the metrics, called under the metrics' lock at every scrape. The
 * caller (service.c) passes the route table's (http/router.h): ops/ is below http/. A second
 * call before metrics_shutdown() changes nothing. */
void metrics_init(size_t routes, const char *(*label)(size_t route));
void metrics_shutdown(void);

/* One answered HTTP request. route is an index in the routes metrics_init() was given (the
 * route table's, router_index()), or (size_t)-1 for a request no route matched. */
void metrics_http_request(size_t route, const char *method, int status, double seconds);

/* The rows of one ingest: rejected_by_code[e] rows were rejected with e as their first error. */
void metrics_rows(const char *dataset, unsigned long long accepted, unsigned long long duplicates,
                  const unsigned long long rejected_by_code[ERR__COUNT]);

/* A request refused by its client's rate limit; perm is its route's (the "class" label). */
void metrics_rate_limited(enum perm perm);
/* A client's rate-limit bucket was dropped to make room for another (rate_limits.max_clients). */
void metrics_rate_limit_evicted(void);

/* A batch ended (completed or failed) seconds after it was claimed. */
void metrics_batch_done(const char *dataset, double seconds);
/* The store's time (seconds): one COMMIT of the writer (writer.c); one read statement on a
 * read connection (the store's query observer, store.h). Any thread. */
void metrics_commit_duration(double seconds);
void metrics_query_duration(double seconds);
/* Gauges that are read at scrape time. */
struct metrics_gauges {
    json_t *dlq_depth; /* {"dataset": n}, borrowed; may be NULL */
    int queue_depth, queue_max;
    unsigned long long commits, commit_failures;
    double uptime_s;
    const char *const *datasets; /* names to report even with zero counts */
    size_t ndatasets;
};

/* Append the whole exposition (text format 0.0.4) to out. */
void metrics_render(struct buf *out, const struct metrics_gauges *g);

#endif
