/*
 * handlers.h - the HTTP handlers, one file per resource: h_ops.c (health, metrics),
 * h_datasets.c, h_events.c, h_dlq.c, h_batch_upload.c (uploads), h_batches.c (a batch, the
 * list, the operations), h_batch_downloads.c (row errors, the original file), h_stats.c
 * (KPIs, rollups, alerts), h_admin.c (keys, audit, reload), h_jobs.c (the scheduler's jobs
 * and runs, /health/scheduler); h_common.c what they share.
 * routes.c names each handler in the route table.
 */
#ifndef SLUICE_HTTP_HANDLERS_H
#define SLUICE_HTTP_HANDLERS_H

#include "http/router.h"
#include "http/server.h"

void h_healthz(struct http_conn *c, struct http_request *r);
void h_health_live(struct http_conn *c, struct http_request *r);
void h_health_ready(struct http_conn *c, struct http_request *r);
void h_health(struct http_conn *c, struct http_request *r);
void h_health_detailed(struct http_conn *c, struct http_request *r);
void h_health_db(struct http_conn *c, struct http_request *r);
void h_metrics(struct http_conn *c, struct http_request *r);
void h_datasets_list(struct http_conn *c, struct http_request *r);
void h_datasets_get(struct http_conn *c, struct http_request *r);
void h_events_post(struct http_conn *c, struct http_request *r);
int h_events_refuse(struct http_conn *c, struct http_request *r, struct route_refusal *out);
void h_dlq_list(struct http_conn *c, struct http_request *r);
void h_dlq_get(struct http_conn *c, struct http_request *r);
void h_dlq_retry(struct http_conn *c, struct http_request *r);
void h_dlq_retry_bulk(struct http_conn *c, struct http_request *r);
void h_dlq_drop(struct http_conn *c, struct http_request *r);
void h_dlq_drop_bulk(struct http_conn *c, struct http_request *r);
void h_batches_upload(struct http_conn *c, struct http_request *r);
void h_batches_list(struct http_conn *c, struct http_request *r);
void h_batches_get(struct http_conn *c, struct http_request *r);
void h_batches_patch(struct http_conn *c, struct http_request *r);
void h_batches_errors(struct http_conn *c, struct http_request *r);
void h_batches_file(struct http_conn *c, struct http_request *r);
void h_batches_reset(struct http_conn *c, struct http_request *r);
void h_batches_fail(struct http_conn *c, struct http_request *r);
void h_batches_reprocess(struct http_conn *c, struct http_request *r);
void h_batches_delete(struct http_conn *c, struct http_request *r);
void h_batches_delete_bulk(struct http_conn *c, struct http_request *r);
void h_stats_kpis(struct http_conn *c, struct http_request *r);
void h_stats_hourly(struct http_conn *c, struct http_request *r);
void h_stats_monthly(struct http_conn *c, struct http_request *r);
void h_errors_distribution(struct http_conn *c, struct http_request *r);
void h_alerts_list(struct http_conn *c, struct http_request *r);
void h_alerts_get(struct http_conn *c, struct http_request *r);
void h_keys_list(struct http_conn *c, struct http_request *r);
void h_keys_create(struct http_conn *c, struct http_request *r);
void h_keys_revoke(struct http_conn *c, struct http_request *r);
void h_audit_list(struct http_conn *c, struct http_request *r);
void h_admin_reload(struct http_conn *c, struct http_request *r);
void h_jobs_list(struct http_conn *c, struct http_request *r);
void h_jobs_get(struct http_conn *c, struct http_request *r);
void h_job_runs_list(struct http_conn *c, struct http_request *r);
void h_runs_get(struct http_conn *c, struct http_request *r);
void h_job_trigger(struct http_conn *c, struct http_request *r);
void h_job_pause(struct http_conn *c, struct http_request *r);
void h_job_resume(struct http_conn *c, struct http_request *r);
void h_run_cancel(struct http_conn *c, struct http_request *r);
void h_health_scheduler(struct http_conn *c, struct http_request *r);

/* The streamed body of an upload (h_batch_upload.c). */
extern const struct body_sink batch_upload_sink;
struct http_app;
struct kept_file;
/* Remove the kept files of batches whose record is gone or never came (h_batch_upload.c;
 * also after a delete, h_batches.c), through a connection of app's files pool. On a libuv
 * pool thread, never a loop or the writer. A file that cannot be removed now is left to
 * the sweep (logged). */
void drop_files(const struct http_app *app, const struct kept_file *f, size_t n);

/* A page of a list of objects with an integer "id", fetched with limit + 1: when there is
 * one more, it is removed and the cursor after the last one shown returned (a new JSON
 * string); else JSON null. */
json_t *h_next_cursor(const char *list, int desc, json_t *items, size_t limit);
struct batch;
/* Batch id into *b (caller releases it): 0; or the answer sent (503 on a store error, 404 for
 * no such batch) and 1 or -1. */
int h_get_batch(struct http_conn *c, const char *id, struct batch *b);
/* The 503 for a writer job that was not committed (its result: -1 or WRITER_UNKNOWN). */
void h_reply_not_committed(struct http_conn *c, int result);

#endif
