/*
 * h_stats.c - the runbook's questions answered from the rollups: KPIs, hourly
 * and monthly series, the error distribution. All reads on the loop's store.
 */
#include <stdlib.h>
#include <string.h>

#include "http/handlers.h"
#include "store/store.h"
#include "util/clock.h"

#define HOUR_MS 3600000LL

static void reply(struct http_conn *c, struct store *st, int rc, json_t *j)
{
    if (rc < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
        return;
    }
    http_reply_json(c, 200, j, NULL);
}

void h_stats_kpis(struct http_conn *c, struct http_request *r)
{
    char dataset[128];
    const char *ds = NULL;
    if (http_query(r, "dataset", dataset, sizeof dataset) == 1 && dataset[0])
        ds = dataset;
    struct store *st = http_conn_store(c);
    json_t *j = NULL;
    int rc = store_stats_kpis(st, clock_wall_ms(), ds, &j);
    reply(c, st, rc, j);
}

static void series(struct http_conn *c, struct http_request *r, int monthly)
{
    long long n;
    char dataset[128];
    const char *ds = NULL;
    if (h_query_int(c, r, monthly ? "months" : "hours", monthly ? 12 : 24, 1,
                    monthly ? 120 : 24 * 400, &n) < 0)
        return;
    if (http_query(r, "dataset", dataset, sizeof dataset) == 1 && dataset[0])
        ds = dataset;
    int64_t now = clock_wall_ms();
    int64_t from = monthly ? now - n * 31 * 24 * HOUR_MS : now - (n - 1) * HOUR_MS;
    from -= from % HOUR_MS;
    struct store *st = http_conn_store(c);
    json_t *items = NULL;
    int rc = store_stats_series(st, monthly, from, ds, &items);
    reply(c, st, rc, rc < 0 ? NULL : json_pack("{s:o,s:n}", "items", items, "next"));
}

void h_stats_hourly(struct http_conn *c, struct http_request *r)
{
    series(c, r, 0);
}

void h_stats_monthly(struct http_conn *c, struct http_request *r)
{
    series(c, r, 1);
}

void h_errors_distribution(struct http_conn *c, struct http_request *r)
{
    long long hours;
    char dataset[128];
    const char *ds = NULL;
    if (h_query_int(c, r, "hours", 24, 1, 24 * 400, &hours) < 0)
        return;
    if (http_query(r, "dataset", dataset, sizeof dataset) == 1 && dataset[0])
        ds = dataset;
    int64_t now = clock_wall_ms();
    int64_t from = now - (hours - 1) * HOUR_MS;
    struct store *st = http_conn_store(c);
    json_t *items = NULL;
    int rc = store_stats_errors(st, from - from % HOUR_MS, ds, &items);
    reply(c, st, rc, rc < 0 ? NULL : json_pack("{s:o,s:n}", "items", items, "next"));
}

/* GET /api/v1/alerts?state=firing|resolved&after=ID&limit= */
void h_alerts_list(struct http_conn *c, struct http_request *r)
{
    char state[16];
    const char *sf = NULL;
    long long limit, after;
    if (h_query_int(c, r, "limit", 100, 1, 1000, &limit) < 0 ||
        h_query_int(c, r, "after", 0, 0, INT64_MAX, &after) < 0)
        return;
    if (http_query(r, "state", state, sizeof state) == 1 && state[0]) {
        if (strcmp(state, "firing") != 0 && strcmp(state, "resolved") != 0) {
            http_reply_error(c, ERR_INVALID_PARAMETER, "state must be firing or resolved");
            return;
        }
        sf = state;
    }
    struct store *st = http_conn_store(c);
    json_t *items = NULL;
    if (store_alert_list(st, sf, after, (int)limit + 1, &items) < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
        return;
    }
    json_t *next = json_null();
    if (json_array_size(items) > (size_t)limit) {
        json_array_remove(items, (size_t)limit);
        next = json_integer(
            json_integer_value(json_object_get(json_array_get(items, (size_t)limit - 1), "id")));
    }
    http_reply_json(c, 200, json_pack("{s:o,s:o}", "items", items, "next", next), NULL);
}

/* GET /api/v1/alerts/{id}: with its history */
void h_alerts_get(struct http_conn *c, struct http_request *r)
{
    char *end;
    long long id = strtoll(r->params[0], &end, 10);
    if (*end || id <= 0) {
        http_reply_error(c, ERR_NOT_FOUND, "no alert '%s'", r->params[0]);
        return;
    }
    struct store *st = http_conn_store(c);
    json_t *a = NULL;
    int rc = store_alert_get(st, id, &a);
    if (rc == 1)
        http_reply_error(c, ERR_NOT_FOUND, "no alert %lld", id);
    else if (rc < 0)
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
    else
        http_reply_json(c, 200, a, NULL);
}
