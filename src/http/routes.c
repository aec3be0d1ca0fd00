/*
 * routes.c - the route table and the matcher. Adding a route is adding a
 * row here and a handler in the resource's file (h_*.c).
 */
#include "http/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/handlers.h"
#include "util/mem.h"

const struct route http_routes[] = {
    {"GET", "/healthz", h_healthz, "liveness, short form", 0, NULL, PERM_OPEN, NULL},
    {"GET", "/health", h_health,
     "summary: {\"status\": \"ok\"} or 503 {\"status\": \"unavailable\", \"reason\"}, with "
     "version and uptime_s",
     0, NULL, PERM_OPEN, NULL},
    {"GET", "/health/live", h_health_live, "the process answers", 0, NULL, PERM_OPEN, NULL},
    {"GET", "/health/ready", h_health_ready,
     "ready to take writes (the store answers and commits succeed, free disk, write queue not "
     "full)",
     0, NULL, PERM_OPEN, NULL},
    {"GET", "/health/detailed", h_health_detailed, "every check with its detail", 0, NULL,
     PERM_READ, NULL},
    {"GET", "/health/db", h_health_db, "the store answers a query and the writer's commits succeed",
     0, NULL, PERM_READ, NULL},
    {"GET", "/health/scheduler", h_health_scheduler,
     "the scheduler: running here, leading, its last tick, each job's last runs (503 when it "
     "should tick and has not for two intervals)",
     0, NULL, PERM_READ, NULL},
    {"GET", "/metrics", h_metrics, "Prometheus metrics", 0, NULL, PERM_METRICS, NULL},
    {"GET", "/api/v1/datasets", h_datasets_list, "the configured datasets", 0, NULL, PERM_READ,
     NULL},
    {"GET", "/api/v1/datasets/{name}", h_datasets_get, "one dataset and its schema", 0, NULL,
     PERM_READ, NULL},
    {"POST", "/api/v1/datasets/{name}/events", h_events_post, "push rows (JSON or NDJSON)", 1, NULL,
     PERM_INGEST, h_events_refuse},
    {"GET", "/api/v1/dlq", h_dlq_list, "list DLQ entries", 0, NULL, PERM_READ, NULL},
    {"POST", "/api/v1/dlq/retry", h_dlq_retry_bulk, "retry DLQ entries matching a filter", 1, NULL,
     PERM_OPERATE, NULL},
    {"GET", "/api/v1/dlq/{id}", h_dlq_get, "one DLQ entry", 0, NULL, PERM_READ, NULL},
    {"POST", "/api/v1/dlq/{id}/retry", h_dlq_retry, "retry one DLQ entry", 0, NULL, PERM_OPERATE,
     NULL},
    {"DELETE", "/api/v1/dlq", h_dlq_drop_bulk,
     "drop the open DLQ entries matching a filter (?dry_run=true)", 0, NULL, PERM_OPERATE, NULL},
    {"DELETE", "/api/v1/dlq/{id}", h_dlq_drop, "drop one DLQ entry (kept for audit)", 0, NULL,
     PERM_OPERATE, NULL},
    {"POST", "/api/v1/datasets/{name}/batches", h_batches_upload, "upload a CSV file as a batch", 1,
     &batch_upload_sink, PERM_INGEST, NULL},
    {"GET", "/api/v1/batches", h_batches_list, "list batches", 0, NULL, PERM_READ, NULL},
    {"DELETE", "/api/v1/batches", h_batches_delete_bulk,
     "delete the batches matching a filter (?dry_run=true)", 0, NULL, PERM_OPERATE, NULL},
    {"GET", "/api/v1/batches/{id}", h_batches_get, "one batch with its history", 0, NULL, PERM_READ,
     NULL},
    {"PATCH", "/api/v1/batches/{id}", h_batches_patch, "change a batch's error threshold", 1, NULL,
     PERM_OPERATE, NULL},
    {"DELETE", "/api/v1/batches/{id}", h_batches_delete,
     "delete a batch, its rows, errors, DLQ entries and file (?dry_run=true)", 0, NULL,
     PERM_OPERATE, NULL},
    {"GET", "/api/v1/batches/{id}/errors", h_batches_errors, "a batch's row errors (JSON or CSV)",
     0, NULL, PERM_READ, NULL},
    {"GET", "/api/v1/batches/{id}/file", h_batches_file,
     "the batch's original file, with its sha256 (Repr-Digest, ETag)", 0, NULL, PERM_READ, NULL},
    {"POST", "/api/v1/batches/{id}/reset", h_batches_reset, "back to uploaded", 0, NULL,
     PERM_OPERATE, NULL},
    {"POST", "/api/v1/batches/{id}/fail", h_batches_fail, "fail a batch with a reason", 1, NULL,
     PERM_OPERATE, NULL},
    {"POST", "/api/v1/batches/{id}/reprocess", h_batches_reprocess,
     "re-ingest from the retained file", 0, NULL, PERM_OPERATE, NULL},
    {"GET", "/api/v1/stats/kpis", h_stats_kpis, "totals for today, the last 24 h and all time", 0,
     NULL, PERM_READ, NULL},
    {"GET", "/api/v1/stats/hourly", h_stats_hourly,
     "rows, errors and batches per hour (?hours=24&dataset=)", 0, NULL, PERM_READ, NULL},
    {"GET", "/api/v1/stats/monthly", h_stats_monthly,
     "rows, errors and batches per month (?months=12&dataset=)", 0, NULL, PERM_READ, NULL},
    {"GET", "/api/v1/errors/distribution", h_errors_distribution,
     "error codes by occurrences (?hours=24&dataset=&order=)", 0, NULL, PERM_READ, NULL},
    {"GET", "/api/v1/alerts", h_alerts_list,
     "alerts (?state=firing|resolved&order=&cursor=&limit=)", 0, NULL, PERM_READ, NULL},
    {"GET", "/api/v1/alerts/{id}", h_alerts_get, "one alert with its history", 0, NULL, PERM_READ,
     NULL},
    {"GET", "/api/v1/keys", h_keys_list, "the API keys (never their secrets)", 0, NULL, PERM_ADMIN,
     NULL},
    {"POST", "/api/v1/keys", h_keys_create, "create an API key (shown once)", 1, NULL, PERM_ADMIN,
     NULL},
    {"DELETE", "/api/v1/keys/{id}", h_keys_revoke, "revoke an API key", 0, NULL, PERM_ADMIN, NULL},
    {"GET", "/api/v1/audit", h_audit_list, "the audit log of state-changing requests", 0, NULL,
     PERM_ADMIN, NULL},
    {"GET", "/api/v1/jobs", h_jobs_list,
     "the scheduled jobs, each with its next 5 times and last run", 0, NULL, PERM_READ, NULL},
    {"GET", "/api/v1/jobs/{name}", h_jobs_get, "one job", 0, NULL, PERM_READ, NULL},
    {"GET", "/api/v1/jobs/{name}/runs", h_job_runs_list,
     "a job's runs, newest first (?state=&trigger=&limit=&before=)", 0, NULL, PERM_READ, NULL},
    {"POST", "/api/v1/jobs/{name}/trigger", h_job_trigger,
     "run a job now (202 and the run; Idempotency-Key; 409 when one is running and overlap is "
     "skip); its schedule is unchanged",
     0, NULL, PERM_OPERATE, NULL},
    {"POST", "/api/scheduler/trigger/{name}", h_job_trigger,
     "the same as POST /api/v1/jobs/{name}/trigger (the path of the services sluice replaces)", 0,
     NULL, PERM_OPERATE, NULL},
    {"POST", "/api/v1/jobs/{name}/pause", h_job_pause,
     "stop running a job on its schedule (missed times go by its catchup once resumed)", 0, NULL,
     PERM_OPERATE, NULL},
    {"POST", "/api/v1/jobs/{name}/resume", h_job_resume, "run a paused job on its schedule again",
     0, NULL, PERM_OPERATE, NULL},
    {"GET", "/api/v1/runs/{id}", h_runs_get, "one run", 0, NULL, PERM_READ, NULL},
    {"POST", "/api/v1/runs/{id}/cancel", h_run_cancel,
     "cancel a queued run, or ask a running one to stop (409 once it has ended)", 0, NULL,
     PERM_OPERATE, NULL},
    {"POST", "/api/v1/admin/reload", h_admin_reload,
     "re-read the configuration (as SIGHUP) and answer the outcome", 0, NULL, PERM_ADMIN, NULL},
};
const size_t http_nroutes = sizeof http_routes / sizeof http_routes[0];

size_t router_index(const struct route *r)
{
    return (size_t)(r - http_routes);
}

const char *router_label(size_t i)
{
    return http_routes[i].pattern;
}

/* Match path against pattern; on success copy the params. */
static int match(const char *pattern, const char *path, char **params, size_t *np)
{
    const char *p = pattern, *s = path;
    size_t n = 0;
    while (*p && *s) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            const char *se = strchr(s, '/');
            size_t len = se ? (size_t)(se - s) : strlen(s);
            if (!pe || len == 0 || n >= 4)
                goto no;
            if (params)
                params[n] = sl_strndup(s, len);
            n++;
            p = pe + 1;
            s += len;
        } else if (*p == *s) {
            p++;
            s++;
        } else {
            goto no;
        }
    }
    if (*p || *s)
        goto no;
    if (np)
        *np = n;
    return 1;
no:
    for (size_t i = 0; params && i < n; i++) {
        free(params[i]);
        params[i] = NULL;
    }
    return 0;
}

enum route_match router_match(const char *method, const char *path, const struct route **out,
                              char **params, size_t *nparams, char *allow, size_t allowcap)
{
    int path_found = 0;
    size_t al = 0;
    if (allowcap)
        allow[0] = 0;
    *out = NULL;
    *nparams = 0;
    for (size_t i = 0; i < http_nroutes; i++) {
        if (!match(http_routes[i].pattern, path, NULL, NULL))
            continue;
        int same = strcmp(http_routes[i].method, method) == 0 ||
                   (strcmp(method, "HEAD") == 0 && strcmp(http_routes[i].method, "GET") == 0);
        if (same) {
            match(http_routes[i].pattern, path, params, nparams);
            *out = &http_routes[i];
            return ROUTE_FOUND;
        }
        path_found = 1;
        if (al + 16 < allowcap)
            al += (size_t)snprintf(allow + al, allowcap - al, "%s%s%s", al ? ", " : "",
                                   http_routes[i].method,
                                   strcmp(http_routes[i].method, "GET") == 0 ? ", HEAD" : "");
    }
    return path_found ? ROUTE_NO_METHOD : ROUTE_NO_PATH;
}
