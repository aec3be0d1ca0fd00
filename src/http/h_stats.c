/*
 * h_stats.c - the runbook's questions answered from the rollups: KPIs, hourly
 * and monthly series, the error distribution. All reads on the loop's store.
 */
#include <stdlib.h>
#include <string.h>

#include "http/handlers.h"
#include "http/params.h"
#include "ops/alert_json.h"
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
    char dataset[HQ_MAX + 1];
    const char *ds = hq_str(r, "dataset", dataset, sizeof dataset);
    struct store *st = http_conn_store(c);
    json_t *j = NULL;
    int rc = store_stats_kpis(st, clock_wall_ms(), ds, &j);
    reply(c, st, rc, j);
}

static void series(struct http_conn *c, struct http_request *r, int monthly)
{
    long long n = hq_int(r, monthly ? "months" : "hours", monthly ? 12 : 24);
    char dataset[HQ_MAX + 1];
    const char *ds = hq_str(r, "dataset", dataset, sizeof dataset);
    int64_t now = clock_wall_ms();
    int64_t from = monthly ? now - n * 31 * 24 * HOUR_MS : now - (n - 1) * HOUR_MS;
    from -= from % HOUR_MS;
    struct store *st = http_conn_store(c);
    json_t *items = NULL;
    int rc = store_stats_series(st, monthly, from, ds, &items);
    reply(c, st, rc, rc < 0 ? NULL : json_pack("{s:o,s:n}", "items", items, "next_cursor"));
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
    long long hours = hq_int(r, "hours", 24);
    char dataset[HQ_MAX + 1];
    const char *ds = hq_str(r, "dataset", dataset, sizeof dataset);
    int64_t now = clock_wall_ms();
    int64_t from = now - (hours - 1) * HOUR_MS;
    struct store *st = http_conn_store(c);
    json_t *items = NULL;
    int rc = store_stats_errors(st, from - from % HOUR_MS, ds, &items);
    if (rc >= 0 && !hq_desc(r)) { /* order=asc: least frequent first */
        json_t *rev = json_array();
        for (size_t i = json_array_size(items); i-- > 0;)
            json_array_append(rev, json_array_get(items, i));
        json_decref(items);
        items = rev;
    }
    reply(c, st, rc, rc < 0 ? NULL : json_pack("{s:o,s:n}", "items", items, "next_cursor"));
}

/* GET /api/v1/alerts?state=firing|resolved&order=&cursor=&limit=: newest first by default */
void h_alerts_list(struct http_conn *c, struct http_request *r)
{
    char state[HQ_MAX + 1], after[32];
    const char *sf = hq_str(r, "state", state, sizeof state);
    long long limit = hq_int(r, "limit", 100);
    int desc = hq_desc(r);
    int64_t after_id = hq_cursor(r, after, sizeof after) ? strtoll(after, NULL, 10) : 0;
    struct store *st = http_conn_store(c);
    struct alert *list = NULL;
    size_t n = 0;
    if (store_alert_list(st, sf, after_id, desc, (int)limit + 1, &list, &n) < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
        return;
    }
    json_t *items = alert_list_json(list, n);
    for (size_t i = 0; i < n; i++)
        alert_release(&list[i]);
    free(list);
    if (!items) {
        http_reply_error(c, ERR_UNAVAILABLE, "alerts: out of memory");
        return;
    }
    json_t *next = h_next_cursor("alerts", desc, items, (size_t)limit);
    http_reply_json(c, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next), NULL);
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
    struct alert a;
    struct alert_history *hist = NULL;
    size_t nhist = 0;
    int rc = store_alert_get(st, id, &a, &hist, &nhist);
    if (rc == 1) {
        http_reply_error(c, ERR_NOT_FOUND, "no alert %lld", id);
        return;
    }
    if (rc < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
        return;
    }
    json_t *j = alert_json_history(&a, hist, nhist);
    alert_release(&a);
    alert_history_free(hist, nhist);
    if (!j)
        http_reply_error(c, ERR_UNAVAILABLE, "alert: out of memory");
    else
        http_reply_json(c, 200, j, NULL);
}
