/*
 * h_ops.c - health endpoints and /metrics.
 *
 * The store is "up" when it answers a query AND the writer's transactions commit
 * (writer.h writer_health: the last BEGIN/COMMIT did not fail, or one succeeded
 * since): a locked database, failing fsyncs or a full disk make every write fail
 * while reads still answer. Readiness also wants free space in data_dir
 * (health.min_free_bytes) and room in the write queue.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "auth/audit.h"
#include "batch/batch.h"
#include "auth/auth.h"
#include "http/handlers.h"
#include "writer/writer.h"
#include "ops/alerts.h"
#include "ops/metrics.h"
#include "ops/sentinel.h"
#include "sched/sched.h"
#include "config/catalog.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mem.h"

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

/* Whether the store reads and commits: 0, or -1 with why in detail. */
static int store_state(struct store *st, const struct http_app *app, char *detail, size_t cap)
{
    struct writer_health wh;
    writer_health(app->writer, &wh);
    char t[32];
    if (st && store_ping(st) < 0) {
        snprintf(detail, cap, "%s", store_errmsg(st));
        return -1;
    }
    if (!wh.store_answers) {
        snprintf(detail, cap, "the store does not answer the writer: writes are refused");
        return -1;
    }
    if (wh.commits_failing) {
        snprintf(detail, cap, "commits are failing (last failure at %s, %llu failed so far): %s",
                 clock_rfc3339(wh.last_failure_ms, t, sizeof t), wh.commit_failures, wh.last_error);
        return -1;
    }
    if (!st)
        return 0;
    snprintf(detail, cap, "%s", app->store_uri);
    return 0;
}

static int db_check(struct http_conn *c, char *detail, size_t cap)
{
    return store_state(http_conn_store(c), http_conn_app(c), detail, cap);
}

/* Free space in data_dir: "pass", "warn" (under DISK_WARN_FREE of the file system) or
 * "fail" (under health.min_free_bytes, or a tenth of DISK_WARN_FREE, or unknown). */
static const char *disk_check(const struct sluice_config *cfg, char *detail, size_t cap)
{
    struct statvfs sv;
    if (statvfs(cfg->data_dir, &sv) != 0 || !sv.f_blocks) {
        snprintf(detail, cap, "cannot stat %s", cfg->data_dir);
        return "fail";
    }
    double free_share = (double)sv.f_bavail / (double)sv.f_blocks;
    unsigned long long free_b = (unsigned long long)sv.f_bavail * sv.f_frsize;
    int below_min = free_b < cfg->health.min_free_bytes;
    snprintf(detail, cap, "%.1f%% free (%llu MiB) in %s%s", free_share * 100, free_b >> 20,
             cfg->data_dir, below_min ? ", under health.min_free_bytes" : "");
    return below_min || free_share < DISK_WARN_FREE / 10 ? "fail"
           : free_share < DISK_WARN_FREE                 ? "warn"
                                                         : "pass";
}

/* Why this node cannot take writes now (detail holds it), or NULL: ready. */
static const char *not_ready(struct http_conn *c, char *detail, size_t cap)
{
    const struct http_app *app = http_conn_app(c);
    if (db_check(c, detail, cap) < 0)
        return detail;
    if (writer_queue_depth(app->writer) >= writer_queue_max(app->writer))
        return "the write queue is full";
    struct catalog *cat = http_conn_catalog(c);
    char d[400];
    const char *why = NULL;
    if (cat->cfg.health.min_free_bytes && !strcmp(disk_check(&cat->cfg, d, sizeof d), "fail")) {
        snprintf(detail, cap, "disk: %s", d);
        why = detail;
    }
    catalog_release(cat);
    return why;
}

void h_health_ready(struct http_conn *c, struct http_request *r)
{
    (void)r;
    char detail[512];
    const char *why = not_ready(c, detail, sizeof detail);
    if (why) {
        http_reply_json(c, 503, json_pack("{s:s,s:s}", "status", "unavailable", "reason", why),
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

void h_health(struct http_conn *c, struct http_request *r)
{
    (void)r;
    const struct http_app *app = http_conn_app(c);
    char detail[512];
    const char *why = not_ready(c, detail, sizeof detail);
    json_t *j =
        json_pack("{s:s,s:s,s:f}", "status", why ? "unavailable" : "ok", "version", SLUICE_VERSION,
                  "uptime_s", (double)(clock_mono_ns() - app->started_ns) / 1e9);
    if (why)
        json_object_set_new(j, "reason", json_string(why));
    http_reply_json(c, why ? 503 : 200, j, NULL);
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
    const struct http_app *app = http_conn_app(c);
    struct catalog *cat = http_conn_catalog(c);
    json_t *checks = json_array();
    const char *overall = "pass";
    char detail[512];

    const char *db = db_check(c, detail, sizeof detail) == 0 ? "pass" : "fail";
    json_array_append_new(checks,
                          json_pack("{s:s,s:s,s:s}", "name", "db", "status", db, "detail", detail));
    overall = worst(overall, db);

    const char *disk = disk_check(&cat->cfg, detail, sizeof detail);
    json_array_append_new(
        checks, json_pack("{s:s,s:s,s:s}", "name", "disk", "status", disk, "detail", detail));
    overall = worst(overall, disk);

    int depth = writer_queue_depth(app->writer), max = writer_queue_max(app->writer);
    const char *q = depth >= max ? "fail" : depth * 10 >= max * 8 ? "warn" : "pass";
    snprintf(detail, sizeof detail, "%d of %d jobs queued", depth, max);
    json_array_append_new(
        checks, json_pack("{s:s,s:s,s:s}", "name", "queue", "status", q, "detail", detail));
    overall = worst(overall, q);

    /* PostgreSQL: the batch workers' own writers, which pushes do not depend on */
    int bw = batch_pool_writers(app->batches, detail, sizeof detail);
    if (bw) {
        const char *bs = bw < 0 ? "warn" : "pass";
        json_array_append_new(checks, json_pack("{s:s,s:s,s:s}", "name", "batch_writers", "status",
                                                bs, "detail", detail));
        overall = worst(overall, bs);
    }

    /* audit records waiting or lost: the log must not go quiet unseen */
    struct audit_stats as;
    audit_stats(&as);
    int recent_drop = as.last_drop_ms && clock_wall_ms() - as.last_drop_ms < 3600000;
    const char *au = as.retrying || recent_drop ? "warn" : "pass";
    snprintf(detail, sizeof detail,
             "%llu records waiting, %llu dropped since start, %llu flushes "
             "failed%s%s",
             as.pending, as.dropped, as.flush_failures,
             as.retrying ? "; the last flush failed, retrying" : "",
             recent_drop ? "; records dropped within the hour" : "");
    json_array_append_new(
        checks, json_pack("{s:s,s:s,s:s}", "name", "audit", "status", au, "detail", detail));
    overall = worst(overall, au);

    /* SQLite: the WAL over its limit means checkpoints do not keep up or fail */
    struct store_wal wal;
    store_wal_stats(app->store_uri, &wal);
    if (wal.known) {
        int over = wal.limit_bytes > 0 && wal.bytes > wal.limit_bytes;
        const char *ws = over || wal.consecutive_failures ? "warn" : "pass";
        int n = snprintf(detail, sizeof detail,
                         "WAL %lld bytes (limit %lld)%s; %llu checkpoints, %llu failed",
                         (long long)wal.bytes, (long long)wal.limit_bytes,
                         over ? ", over its limit" : "", wal.checkpoints, wal.checkpoint_failures);
        if (wal.consecutive_failures && n > 0 && (size_t)n < sizeof detail)
            snprintf(detail + n, sizeof detail - (size_t)n, ", the last %u in a row: %s",
                     wal.consecutive_failures, wal.last_error);
        json_array_append_new(
            checks, json_pack("{s:s,s:s,s:s}", "name", "wal", "status", ws, "detail", detail));
        overall = worst(overall, ws);
    }

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
    if (app->sentinel_runs && sentinel_is_leader())
        json_array_append_new(roles, json_string("sentinel"));
    if (app->batches)
        json_array_append_new(roles, json_string("batch_worker"));
    struct sched_status ss;
    sched_status(app->sched, &ss);
    if (ss.leader)
        json_array_append_new(roles, json_string("scheduler"));
    double up = (double)(clock_mono_ns() - app->started_ns) / 1e9;
    catalog_release(cat);
    http_reply_json(c, strcmp(overall, "fail") ? 200 : 503,
                    json_pack("{s:s,s:s,s:f,s:{s:s,s:o},s:o}", "status", overall, "version",
                              SLUICE_VERSION, "uptime_s", up, "node", "name", host, "roles", roles,
                              "checks", checks),
                    NULL);
}

/* Gauges read from the store at scrape time. */
static void scrape_gauges(struct buf *o, struct store *st, const struct http_app *app)
{
    int up = store_ping(st) == 0;
    char why[512];
    buf_printf(o,
               "# HELP sluice_store_up Whether the store answers a query and the writer's "
               "commits succeed (1) or not (0).\n"
               "# TYPE sluice_store_up gauge\nsluice_store_up %d\n",
               up && store_state(NULL, app, why, sizeof why) == 0);
    struct store_wal wal;
    store_wal_stats(app->store_uri, &wal);
    if (wal.known)
        buf_printf(o,
                   "# HELP sluice_store_wal_bytes Size of the SQLite WAL file.\n"
                   "# TYPE sluice_store_wal_bytes gauge\nsluice_store_wal_bytes %lld\n"
                   "# HELP sluice_store_wal_limit_bytes The size the WAL is cut back to after a "
                   "checkpoint (journal_size_limit).\n"
                   "# TYPE sluice_store_wal_limit_bytes gauge\nsluice_store_wal_limit_bytes %lld\n"
                   "# HELP sluice_store_checkpoints_total WAL checkpoints run.\n"
                   "# TYPE sluice_store_checkpoints_total counter\n"
                   "sluice_store_checkpoints_total %llu\n"
                   "# HELP sluice_store_checkpoint_failures_total WAL checkpoints that failed.\n"
                   "# TYPE sluice_store_checkpoint_failures_total counter\n"
                   "sluice_store_checkpoint_failures_total %llu\n",
                   (long long)wal.bytes, (long long)wal.limit_bytes, wal.checkpoints,
                   wal.checkpoint_failures);
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
    const struct http_app *app = http_conn_app(c);
    struct catalog *cat = http_conn_catalog(c);
    json_t *depth = NULL;
    struct store *st = http_conn_store(c);
    if (store_dlq_depth(st, &depth) < 0)
        depth = NULL;
    struct writer_health wh;
    writer_health(app->writer, &wh);
    const char **names = sl_calloc(cat->cfg.ndatasets + 1, sizeof *names);
    for (size_t i = 0; names && i < cat->cfg.ndatasets; i++)
        names[i] = cat->cfg.datasets[i].name;
    struct metrics_gauges g = {
        .dlq_depth = depth,
        .queue_depth = writer_queue_depth(app->writer),
        .queue_max = writer_queue_max(app->writer),
        .commits = wh.commits,
        .commit_failures = wh.commit_failures,
        .uptime_s = (double)(clock_mono_ns() - app->started_ns) / 1e9,
        .datasets = names,
        .ndatasets = names ? cat->cfg.ndatasets : 0,
    };
    struct buf out;
    buf_init(&out, 64 << 20);
    metrics_render(&out, &g);
    scrape_gauges(&out, st, app);
    alerts_metrics(&out);
    sched_metrics(app->sched, &out);
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
