/*
 * h_ops.c - health endpoints and /metrics.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "auth/audit.h"
#include "auth/auth.h"
#include "http/handlers.h"
#include "ingest/writer.h"
#include "ops/alerts.h"
#include "ops/metrics.h"
#include "ops/sentinel.h"
#include "service/service.h"
#include "store/store.h"
#include "util/clock.h"

/* Disk below this share free is a warning, below a tenth of it a failure. */
#define DISK_WARN_FREE 0.10

void h_healthz(struct http_conn *c, struct http_request *r)
{
    (void)r;
    http_reply_json(c, 200, json_pack("{s:s}", "status", "ok"), NULL);
}

void h_health_live(struct http_conn *c, struct http_request *r)
{
    h_healthz(c, r);
}

static int db_check(struct http_conn *c, char *detail, size_t cap)
{
    struct store *st = http_conn_store(c);
    struct service *svc = http_conn_service(c);
    if (store_ping(st) < 0) {
        snprintf(detail, cap, "%s", store_errmsg(st));
        return -1;
    }
    if (!writer_healthy(svc->writer)) {
        snprintf(detail, cap, "the last commit failed");
        return -1;
    }
    snprintf(detail, cap, "%s", svc->store_uri);
    return 0;
}

void h_health_ready(struct http_conn *c, struct http_request *r)
{
    (void)r;
    struct service *svc = http_conn_service(c);
    char detail[256];
    if (db_check(c, detail, sizeof detail) < 0) {
        http_reply_json(c, 503, json_pack("{s:s,s:s}", "status", "unavailable", "reason", detail),
                        NULL);
        return;
    }
    if (writer_queue_depth(svc->writer) >= writer_queue_max(svc->writer)) {
        http_reply_json(
            c, 503,
            json_pack("{s:s,s:s}", "status", "unavailable", "reason", "the write queue is full"),
            NULL);
        return;
    }
    http_reply_json(c, 200, json_pack("{s:s}", "status", "ok"), NULL);
}

void h_health_db(struct http_conn *c, struct http_request *r)
{
    (void)r;
    char detail[256];
    int ok = db_check(c, detail, sizeof detail) == 0;
    http_reply_json(c, ok ? 200 : 503,
                    json_pack("{s:s,s:s}", "status", ok ? "pass" : "fail", "detail", detail), NULL);
}

static const char *worst(const char *a, const char *b)
{
    if (!strcmp(a, "fail") || !strcmp(b, "fail"))
        return "fail";
    if (!strcmp(a, "warn") || !strcmp(b, "warn"))
        return "warn";
    return "pass";
}

void h_health_detailed(struct http_conn *c, struct http_request *r)
{
    (void)r;
    struct service *svc = http_conn_service(c);
    struct catalog *cat = service_catalog(svc);
    json_t *checks = json_array();
    const char *overall = "pass";
    char detail[512];

    const char *db = db_check(c, detail, sizeof detail) == 0 ? "pass" : "fail";
    json_array_append_new(checks,
                          json_pack("{s:s,s:s,s:s}", "name", "db", "status", db, "detail", detail));
    overall = worst(overall, db);

    struct statvfs sv;
    const char *disk = "pass";
    if (statvfs(cat->cfg.data_dir, &sv) == 0 && sv.f_blocks) {
        double free_share = (double)sv.f_bavail / (double)sv.f_blocks;
        disk = free_share < DISK_WARN_FREE / 10 ? "fail"
               : free_share < DISK_WARN_FREE    ? "warn"
                                                : "pass";
        snprintf(detail, sizeof detail, "%.1f%% free (%llu MiB) in %s", free_share * 100,
                 (unsigned long long)sv.f_bavail * sv.f_frsize / (1024 * 1024), cat->cfg.data_dir);
    } else {
        disk = "fail";
        snprintf(detail, sizeof detail, "cannot stat %s", cat->cfg.data_dir);
    }
    json_array_append_new(
        checks, json_pack("{s:s,s:s,s:s}", "name", "disk", "status", disk, "detail", detail));
    overall = worst(overall, disk);

    int depth = writer_queue_depth(svc->writer), max = writer_queue_max(svc->writer);
    const char *q = depth >= max ? "fail" : depth * 10 >= max * 8 ? "warn" : "pass";
    snprintf(detail, sizeof detail, "%d of %d jobs queued", depth, max);
    json_array_append_new(
        checks, json_pack("{s:s,s:s,s:s}", "name", "queue", "status", q, "detail", detail));
    overall = worst(overall, q);

    if (cat->cfg.auth.dev_bypass) {
        json_array_append_new(checks,
                              json_pack("{s:s,s:s,s:s}", "name", "auth", "status", "warn", "detail",
                                        "auth.dev_bypass: authentication is off, every "
                                        "request is admin"));
        overall = worst(overall, "warn");
    }
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    json_t *roles = json_array();
    if (svc->sentinel && sentinel_is_leader())
        json_array_append_new(roles, json_string("sentinel"));
    if (svc->batches)
        json_array_append_new(roles, json_string("batch_worker"));
    double up = (double)(clock_mono_ns() - svc->started_ns) / 1e9;
    catalog_release(cat);
    http_reply_json(c, strcmp(overall, "fail") ? 200 : 503,
                    json_pack("{s:s,s:s,s:f,s:{s:s,s:o},s:o}", "status", overall, "version",
                              SLUICE_VERSION, "uptime_s", up, "node", "name", host, "roles", roles,
                              "checks", checks),
                    NULL);
}

/* Gauges read from the store at scrape time. */
static void scrape_gauges(struct buf *o, struct store *st)
{
    int up = store_ping(st) == 0;
    buf_printf(o,
               "# HELP sluice_store_up Whether the store answers a query (1) or not (0).\n"
               "# TYPE sluice_store_up gauge\nsluice_store_up %d\n",
               up);
    buf_printf(o,
               "# HELP sluice_sentinel_last_run_timestamp_seconds When the sentinel last "
               "evaluated its rules (0: never).\n"
               "# TYPE sluice_sentinel_last_run_timestamp_seconds gauge\n"
               "sluice_sentinel_last_run_timestamp_seconds %.3f\n",
               (double)sentinel_last_run_ms() / 1000.0);
    static const char *const states[] = {"uploaded",  "staging",   "validating", "transforming",
                                         "inserting", "upserting", "completed",  "failed"};
    json_t *bs = NULL;
    buf_appends(o, "# HELP sluice_batches Batches, by state.\n# TYPE sluice_batches gauge\n");
    if (up && store_batch_states(st, &bs) == 0)
        for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
            buf_printf(o, "sluice_batches{state=\"%s\"} %lld\n", states[i],
                       (long long)json_integer_value(json_object_get(bs, states[i])));
    json_decref(bs);
    struct rollup_sum *v = NULL;
    size_t n = 0;
    if (up && store_rollup_window(st, clock_wall_ms() - 3600000LL, &v, &n) < 0)
        n = 0;
    buf_appends(o, "# HELP sluice_data_quality_ratio Rows accepted / rows received over the last "
                   "hour, per dataset (1 with nothing received).\n"
                   "# TYPE sluice_data_quality_ratio gauge\n");
    for (size_t i = 0; i < n; i++)
        buf_printf(o, "sluice_data_quality_ratio{dataset=\"%s\"} %.6f\n", v[i].dataset,
                   v[i].received ? (double)v[i].accepted / (double)v[i].received : 1.0);
    buf_appends(o, "# HELP sluice_last_error_timestamp_seconds When a row of the dataset was "
                   "last rejected.\n# TYPE sluice_last_error_timestamp_seconds gauge\n");
    for (size_t i = 0; i < n; i++)
        if (v[i].last_error_ms)
            buf_printf(o, "sluice_last_error_timestamp_seconds{dataset=\"%s\"} %.3f\n",
                       v[i].dataset, (double)v[i].last_error_ms / 1000.0);
    free(v);
}

static void auth_metric(const char *reason, unsigned long long n, void *arg)
{
    buf_printf(arg, "sluice_auth_failures_total{reason=\"%s\"} %llu\n", reason, n);
}

void h_metrics(struct http_conn *c, struct http_request *r)
{
    (void)r;
    struct service *svc = http_conn_service(c);
    struct catalog *cat = service_catalog(svc);
    json_t *depth = NULL;
    struct store *st = http_conn_store(c);
    if (store_dlq_depth(st, &depth) < 0)
        depth = NULL;
    const char **names = calloc(cat->cfg.ndatasets + 1, sizeof *names);
    for (size_t i = 0; names && i < cat->cfg.ndatasets; i++)
        names[i] = cat->cfg.datasets[i].name;
    struct metrics_gauges g = {
        .dlq_depth = depth,
        .queue_depth = writer_queue_depth(svc->writer),
        .queue_max = writer_queue_max(svc->writer),
        .commits = writer_commits(svc->writer),
        .uptime_s = (double)(clock_mono_ns() - svc->started_ns) / 1e9,
        .datasets = names,
        .ndatasets = names ? cat->cfg.ndatasets : 0,
    };
    struct buf out;
    buf_init(&out, 64 << 20);
    metrics_render(&out, &g);
    scrape_gauges(&out, st);
    alerts_metrics(&out);
    buf_appends(&out, "# HELP sluice_auth_failures_total Requests refused by authentication or "
                      "authorization, by reason.\n# TYPE sluice_auth_failures_total counter\n");
    auth_failures_foreach(auth_metric, &out);
    buf_printf(&out,
               "# HELP sluice_audit_dropped_total Audit records that could not be stored.\n"
               "# TYPE sluice_audit_dropped_total counter\nsluice_audit_dropped_total %llu\n",
               audit_dropped());
    free(names);
    json_decref(depth);
    catalog_release(cat);
    size_t len;
    char *body = buf_steal(&out, &len);
    http_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, NULL);
}
