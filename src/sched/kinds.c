/*
 * kinds.c - the job kinds (kinds.h): one row per kind in kinds[], each a function that runs
 * one run. What they do is what the server's own timers and the CLI already do, as a run
 * with a history: the sentinel's evaluation, the rollups' rebuild (sluice rollups), a DLQ
 * bulk retry (POST /api/v1/dlq/retry), the purges and sweeps, a request to a URL.
 */
#include "sched/kinds.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch/batch.h"
#include "config/catalog.h"
#include "config/config.h"
#include "ingest/dlq.h"
#include "ops/alerts.h"
#include "ops/sentinel.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mem.h"
#include "writer/writer.h"

int run_should_stop(struct run_ctx *ctx)
{
    if (__atomic_load_n(ctx->cancel, __ATOMIC_RELAXED)) {
        snprintf(ctx->error, sizeof ctx->error, "canceled");
        return 1;
    }
    if (ctx->deadline_ns && clock_mono_ns() > ctx->deadline_ns) {
        snprintf(ctx->error, sizeof ctx->error, "timeout: the run took longer than %llu ms",
                 (unsigned long long)ctx->job->timeout_ms);
        return 1;
    }
    return 0;
}

struct store *run_store(struct run_ctx *ctx)
{
    if (!*ctx->st) {
        char err[256];
        if (!(*ctx->st = store_open(ctx->store_uri, 1, err, sizeof err)))
            snprintf(ctx->error, sizeof ctx->error, "store: %s", err);
    }
    return *ctx->st;
}

/* Sleep up to ms in steps, stopping early on a cancel or the timeout: 1 when stopped. */
static int pause_ms(struct run_ctx *ctx, uint64_t ms)
{
    uint64_t end = clock_mono_ns() + ms * 1000000ull;
    for (;;) {
        if (run_should_stop(ctx))
            return 1;
        uint64_t now = clock_mono_ns();
        if (now >= end)
            return 0;
        uint64_t step = end - now < 50000000ull ? end - now : 50000000ull;
        struct timespec ts = {0, (long)step};
        nanosleep(&ts, NULL);
    }
}

static int run_noop(struct run_ctx *ctx)
{
    if (ctx->job->args.sleep_ms && pause_ms(ctx, ctx->job->args.sleep_ms))
        return 1;
    if (ctx->job->args.fail) {
        snprintf(ctx->error, sizeof ctx->error, "failed on purpose (args.fail)");
        return -1;
    }
    return 0;
}

static int run_sentinel(struct run_ctx *ctx)
{
    struct store *st = run_store(ctx);
    struct sentinel_input in = {
        .cfg = ctx->cfg, .st = st, .now_ms = clock_wall_ms(), .started_ms = 0, .with_latency = 1};
    json_t *report = sentinel_evaluate(&in);
    if (!report) {
        snprintf(ctx->error, sizeof ctx->error, "out of memory");
        return -1;
    }
    ctx->items = (int64_t)json_array_size(json_object_get(report, "findings"));
    alerts_submit(ctx->writer, ctx->cat, report, in.now_ms); /* takes its own reference */
    json_decref(report);
    return 0;
}

/* One chunk of a rollups rebuild as a writer job. */
struct rollup_job {
    struct wjob job;
    const struct rollup_chunk *chunk;
    int64_t minutes_from;
};
static int rollup_apply(struct wjob *job, struct store *st)
{
    struct rollup_job *j = (struct rollup_job *)job;
    return store_rollup_rebuild(st, j->chunk, j->minutes_from) < 0 ? -1 : 0;
}

static int run_rollups(struct run_ctx *ctx)
{
    struct store *st = run_store(ctx);
    struct rollup_chunk *v = NULL;
    size_t n = 0;
    if (!st)
        return -1;
    if (store_rollup_chunks(st, &v, &n) < 0) {
        snprintf(ctx->error, sizeof ctx->error, "rollups: %s", store_errmsg(st));
        return -1;
    }
    int rc = 0;
    int64_t from = clock_wall_ms() - config_minute_rollups_kept_ms(ctx->cfg);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (run_should_stop(ctx)) {
            rc = 1;
            break;
        }
        struct rollup_job j = {
            .job = {.nrows = 1, .apply = rollup_apply}, .chunk = &v[i], .minutes_from = from};
        if (writer_run(ctx->writer, &j.job) != 0) {
            snprintf(ctx->error, sizeof ctx->error, "rollups: chunk %zu of %zu not stored", i + 1,
                     n);
            rc = -1;
        }
    }
    ctx->items = (int64_t)n;
    free(v);
    return rc;
}

static int run_dlq_retry(struct run_ctx *ctx)
{
    const struct job_config *jc = ctx->job;
    struct dlq_job j = {.job = {.nrows = 1, .apply = dlq_apply},
                        .op = DLQ_RETRY_BULK,
                        .cfg = ctx->cfg,
                        .batch_row = batch_retry_row};
    int rc = 0;
    if ((jc->args.dataset && !(j.dataset = sl_strdup(jc->args.dataset))) ||
        (jc->args.error_code && !(j.error_code = sl_strdup(jc->args.error_code)))) {
        snprintf(ctx->error, sizeof ctx->error, "out of memory");
        dlq_job_release(&j);
        return -1;
    }
    size_t matched = 0, resolved = 0;
    do {
        if (run_should_stop(ctx)) {
            rc = 1;
            break;
        }
        j.more = 0;
        if (writer_run(ctx->writer, &j.job) != 0) {
            snprintf(ctx->error, sizeof ctx->error, "dlq_retry: a page was not stored (%s)",
                     j.errmsg[0] ? j.errmsg : "the writer refused it");
            rc = -1;
            break;
        }
        matched += j.matched;
        resolved += j.resolved;
    } while (j.more && matched < (size_t)jc->args.limit);
    ctx->items = (int64_t)resolved;
    if (rc == 0 && matched > resolved && resolved == 0 && matched > 0)
        snprintf(ctx->error, sizeof ctx->error, "%zu entries retried, none resolved", matched);
    dlq_job_release(&j);
    return rc;
}

/* The purges: expired idempotency keys and old minute rollups, in one writer job. */
struct purge_job {
    struct wjob job;
    int idem, rollups;
    int64_t idem_before_ms, minutes_before_ms;
};
static int purge_apply(struct wjob *job, struct store *st)
{
    struct purge_job *j = (struct purge_job *)job;
    if (j->idem && store_idem_purge(st, j->idem_before_ms) < 0)
        return -1;
    return j->rollups ? store_rollup_purge(st, j->minutes_before_ms) : 0;
}

/* Every job's history, by its keep_* (one writer job per job). */
struct prune_job {
    struct wjob job;
    const struct job_config *jc;
    int64_t now_ms, deleted;
};
static int prune_apply(struct wjob *job, struct store *st)
{
    struct prune_job *p = (struct prune_job *)job;
    const struct job_config *jc = p->jc;
    /* keep_days 0: no age bound, the count alone (the store op's 0) */
    int64_t before = jc->keep_days ? p->now_ms - (int64_t)jc->keep_days * 86400000LL : 0;
    return store_job_runs_prune(st, jc->name, jc->keep_runs, before,
                                p->now_ms - (int64_t)jc->keep_failed_days * 86400000LL,
                                &p->deleted) < 0
               ? -1
               : 0;
}

int sched_prune_job(struct writer *w, const struct job_config *jc, int64_t now_ms, int64_t *deleted)
{
    struct prune_job p = {.job = {.nrows = 1, .apply = prune_apply}, .jc = jc, .now_ms = now_ms};
    int rc = writer_run(w, &p.job);
    *deleted = p.deleted;
    return rc;
}

static int has_task(const struct job_config *jc, const char *task)
{
    if (!jc->args.tasks)
        return 1;
    for (size_t i = 0; jc->args.tasks[i]; i++)
        if (strcmp(jc->args.tasks[i], task) == 0)
            return 1;
    return 0;
}

/* A batch file kept this long ago that no record names is an orphan (service.c's sweep
 * uses the same grace). */
#define FILE_GRACE_MS (60 * 60 * 1000LL)

static int run_housekeeping(struct run_ctx *ctx)
{
    const struct job_config *jc = ctx->job;
    int64_t now = clock_wall_ms(), items = 0;
    struct purge_job pj = {.job = {.nrows = 1, .apply = purge_apply},
                           .idem = has_task(jc, "idempotency"),
                           .rollups = has_task(jc, "rollups"),
                           .idem_before_ms = now - (int64_t)ctx->cfg->idempotency_ttl_ms,
                           .minutes_before_ms = now - config_minute_rollups_kept_ms(ctx->cfg)};
    if ((pj.idem || pj.rollups) && writer_run(ctx->writer, &pj.job) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "the purge was not stored");
        return -1;
    }
    if (has_task(jc, "batch_files")) {
        /* the sweep deletes file records in its own transaction: a connection that may write
         * (as the service's files pool lends), for this task only */
        char err[256];
        struct store *st = store_open(ctx->store_uri, 0, err, sizeof err);
        int spools = batch_spool_sweep(ctx->cfg->data_dir, now - FILE_GRACE_MS);
        int files = st ? store_file_sweep(st, now - FILE_GRACE_MS, ctx->cfg->data_dir) : -1;
        if (files < 0)
            snprintf(ctx->error, sizeof ctx->error, "batch file sweep: %s",
                     st ? store_errmsg(st) : err);
        store_close(st);
        if (files < 0)
            return -1;
        items += files + (spools > 0 ? spools : 0);
    }
    if (has_task(jc, "job_runs")) {
        for (size_t i = 0; i < ctx->cfg->njobs; i++) {
            int64_t deleted = 0;
            if (sched_prune_job(ctx->writer, &ctx->cfg->jobs[i], now, &deleted) != 0) {
                snprintf(ctx->error, sizeof ctx->error, "job history of '%s' not pruned",
                         ctx->cfg->jobs[i].name);
                return -1;
            }
            items += deleted;
        }
    }
    ctx->items = items;
    return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p, (void)u;
    return size * n;
}

/* Abort the transfer on a cancel or the timeout. */
static int http_progress(void *u, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return run_should_stop(u);
}

static int run_http(struct run_ctx *ctx)
{
    const struct job_config *jc = ctx->job;
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    int rc = -1;
    if (!h) {
        snprintf(ctx->error, sizeof ctx->error, "out of memory");
        return -1;
    }
    for (size_t i = 0; jc->args.headers && jc->args.headers[i]; i++) {
        struct curl_slist *n = curl_slist_append(hdrs, jc->args.headers[i]);
        if (!n)
            goto out;
        hdrs = n;
    }
    curl_easy_setopt(h, CURLOPT_URL, jc->args.url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, jc->args.method);
    if (strcmp(jc->args.method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (jc->args.body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, jc->args.body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(jc->args.body));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, http_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, ctx);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "sluice-scheduler");
    CURLcode cc = curl_easy_perform(h);
    if (cc == CURLE_ABORTED_BY_CALLBACK) {
        rc = 1; /* ctx->error says why */
        goto out;
    }
    if (cc != CURLE_OK) {
        snprintf(ctx->error, sizeof ctx->error, "%s %s: %s", jc->args.method, jc->args.url,
                 curl_easy_strerror(cc));
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    int ok = status >= 200 && status < 300;
    if (jc->args.expect_status) {
        ok = 0;
        for (size_t i = 0; jc->args.expect_status[i]; i++)
            ok |= atol(jc->args.expect_status[i]) == status;
    }
    ctx->items = status;
    if (ok) {
        rc = 0;
    } else {
        snprintf(ctx->error, sizeof ctx->error, "%s %s: status %ld, not an expected one",
                 jc->args.method, jc->args.url, status);
    }
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

static const struct {
    const char *name;
    int (*run)(struct run_ctx *ctx);
} kinds[] = {
    {"noop", run_noop},           {"sentinel", run_sentinel},         {"rollups", run_rollups},
    {"dlq_retry", run_dlq_retry}, {"housekeeping", run_housekeeping}, {"http", run_http},
};

int kind_known(const char *name)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return 1;
    return 0;
}

int kind_run(struct run_ctx *ctx)
{
    const char *name = config_job_kind_names[ctx->job->kind];
    ctx->items = -1;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].name, name) == 0) {
            int rc = kinds[i].run(ctx);
            if (rc == 0 && run_should_stop(ctx))
                ctx->error[0] = 0; /* it finished: the stop came too late to matter */
            return rc;
        }
    snprintf(ctx->error, sizeof ctx->error, "kind %s has no implementation", name);
    return -1;
}
