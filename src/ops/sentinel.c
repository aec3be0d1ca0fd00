/*
 * sentinel.c - the rules (see sentinel.h) and the server's thread that runs them.
 */
#include "ops/sentinel.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "config/catalog.h"
#include "config/config.h"
#include "ops/alerts.h"
#include "ops/latency.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

static const char *const sev_names[] = {"warning", "critical"};

static void add(json_t *findings, const char *rule, const char *severity, json_t *labels,
                json_t *details, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add(json_t *findings, const char *rule, const char *severity, json_t *labels,
                json_t *details, const char *fmt, ...)
{
    char summary[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(summary, sizeof summary, fmt, ap);
    va_end(ap);
    json_array_append_new(findings,
                          json_pack("{s:s,s:s,s:s,s:o,s:o}", "rule", rule, "severity", severity,
                                    "summary", summary, "labels", labels ? labels : json_object(),
                                    "details", details ? details : json_object()));
}

static void fmt_duration(char *out, size_t cap, int64_t s)
{
    if (s == 0)
        snprintf(out, cap, "0s");
    else if (s % 86400 == 0)
        snprintf(out, cap, "%lldd", (long long)(s / 86400));
    else if (s % 3600 == 0)
        snprintf(out, cap, "%lldh", (long long)(s / 3600));
    else if (s % 60 == 0)
        snprintf(out, cap, "%lldm", (long long)(s / 60));
    else
        snprintf(out, cap, "%llds", (long long)s);
}

static void rule_stuck(const struct sentinel_input *in, json_t *f)
{
    const struct sluice_config *c = in->cfg;
    json_t *stuck = NULL;
    if (store_batch_stuck(in->st, in->now_ms - (int64_t)c->sentinel.stuck_batches.after_s * 1000,
                          &stuck) < 0)
        return;
    size_t n = json_array_size(stuck);
    if (n) {
        char d[32], ids[200] = "";
        fmt_duration(d, sizeof d, c->sentinel.stuck_batches.after_s);
        /* the summary names the batches and their datasets (the first few) */
        size_t len = 0, i;
        json_t *b;
        json_array_foreach(stuck, i, b)
        {
            if (i == 3) {
                snprintf(ids + len, sizeof ids - len, " and %zu more", n - i);
                break;
            }
            int w = snprintf(ids + len, sizeof ids - len, "%s%s (%s)", i ? ", " : "",
                             json_string_value(json_object_get(b, "batch_id")),
                             json_string_value(json_object_get(b, "dataset")));
            if (w < 0 || (size_t)w >= sizeof ids - len)
                break;
            len += (size_t)w;
        }
        add(f, "stuck_batches", sev_names[c->sentinel.stuck_batches.severity], NULL,
            json_pack("{s:O}", "batches", stuck), "%zu batch%s stuck > %s: %s", n,
            n == 1 ? "" : "es", d, ids);
    }
    json_decref(stuck);
}

/* A rule that cannot decide yet (it has not seen a whole window since the start and cannot
 * read it from the store): its alerts neither fire nor resolve (labels NULL: all of them). */
static void undecided(json_t *u, const char *rule, json_t *labels)
{
    json_array_append_new(
        u, json_pack("{s:s,s:o}", "rule", rule, "labels", labels ? labels : json_object()));
}

static void rule_rates(const struct sentinel_input *in, json_t *f, json_t *u)
{
    const struct sluice_config *c = in->cfg;
    struct rollup_sum *v = NULL;
    size_t n = 0;
    if (store_rollup_window(in->st, in->now_ms - (int64_t)c->sentinel.error_rate.window_s * 1000,
                            &v, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        int64_t r = v[i].received, j = v[i].rejected;
        if (r < c->sentinel.error_rate.min_rows || r == 0)
            continue;
        double pct = 100.0 * (double)j / (double)r;
        const char *sev = pct > c->sentinel.error_rate.critical_pct  ? "critical"
                          : pct > c->sentinel.error_rate.warning_pct ? "warning"
                                                                     : NULL;
        if (!sev)
            continue;
        double thr = !strcmp(sev, "critical") ? c->sentinel.error_rate.critical_pct
                                              : c->sentinel.error_rate.warning_pct;
        add(f, "error_rate", sev, json_pack("{s:s}", "dataset", v[i].dataset),
            json_pack("{s:I,s:I,s:f,s:i}", "received", (json_int_t)r, "rejected", (json_int_t)j,
                      "error_rate_pct", pct, "window_s", c->sentinel.error_rate.window_s),
            "Error rate of %s %.1f%% > %.1f%% threshold", v[i].dataset, pct, thr);
    }
    /* stalled sources: datasets with expected_every. The last arrival is the store's
     * (dataset_activity), so a restart changes nothing; a dataset that never received
     * anything counts from the start, and is undecided until expected_every has passed. */
    for (size_t k = 0; k < c->ndatasets; k++) {
        const struct dataset_config *ds = &c->datasets[k];
        if (!ds->expected_every_ms)
            continue;
        int64_t last = 0;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(v[i].dataset, ds->name) && v[i].last_received_ms > last)
                last = v[i].last_received_ms;
        if (!last && in->now_ms - in->started_ms <= (int64_t)ds->expected_every_ms) {
            undecided(u, "source_stalled", json_pack("{s:s}", "dataset", ds->name));
            continue;
        }
        if (!last)
            last = in->started_ms;
        if (in->now_ms - last <= (int64_t)ds->expected_every_ms)
            continue;
        char d[32], t[32];
        fmt_duration(d, sizeof d, (int64_t)(ds->expected_every_ms / 1000));
        add(f, "source_stalled", "warning", json_pack("{s:s}", "dataset", ds->name),
            json_pack("{s:s,s:I}", "last_received_at", clock_rfc3339(last, t, sizeof t),
                      "expected_every_s", (json_int_t)(ds->expected_every_ms / 1000)),
            "%s received nothing for more than %s", ds->name, d);
    }
    free(v);
}

static void rule_dlq(const struct sentinel_input *in, json_t *f)
{
    const struct sluice_config *c = in->cfg;
    json_t *by = NULL;
    if (store_dlq_new_since(in->st, in->now_ms - (int64_t)c->sentinel.dlq_growth.window_s * 1000,
                            &by) < 0)
        return;
    const char *ds;
    json_t *v;
    json_object_foreach(by, ds, v)
    {
        json_int_t n = json_integer_value(v);
        if (n <= c->sentinel.dlq_growth.warning_count)
            continue;
        char d[32];
        fmt_duration(d, sizeof d, c->sentinel.dlq_growth.window_s);
        add(f, "dlq_growth", sev_names[c->sentinel.dlq_growth.severity],
            json_pack("{s:s}", "dataset", ds),
            json_pack("{s:I,s:i}", "new_open_entries", n, "window_s",
                      c->sentinel.dlq_growth.window_s),
            "DLQ of %s grew by %lld entries in %s (> %d)", ds, (long long)n, d,
            c->sentinel.dlq_growth.warning_count);
    }
    json_decref(by);
}

static void rule_latency(const struct sentinel_input *in, json_t *f, json_t *u)
{
    const struct sluice_config *c = in->cfg;
    /* the latencies are in memory only: a whole window since the start first */
    if (in->now_ms - in->started_ms < (int64_t)c->sentinel.ingest_latency.window_s * 1000) {
        undecided(u, "ingest_latency", NULL);
        return;
    }
    uint64_t count = 0;
    double p95 = latency_quantile_ms(0.95, c->sentinel.ingest_latency.window_s, &count);
    if (p95 < 0 || p95 <= c->sentinel.ingest_latency.p95_ms)
        return;
    add(f, "ingest_latency", sev_names[c->sentinel.ingest_latency.severity], NULL,
        json_pack("{s:f,s:I,s:i}", "p95_ms", p95, "requests", (json_int_t)count, "window_s",
                  c->sentinel.ingest_latency.window_s),
        "ingest p95 %.0f ms > %d ms over %d s", p95, c->sentinel.ingest_latency.p95_ms,
        c->sentinel.ingest_latency.window_s);
}

static void rule_disk(const struct sentinel_input *in, json_t *f)
{
    const struct sluice_config *c = in->cfg;
    struct statvfs sv;
    if (statvfs(c->data_dir, &sv) != 0 || !sv.f_blocks) {
        add(f, "disk_low", "critical", NULL, NULL, "cannot read the free space of %s", c->data_dir);
        return;
    }
    double pct = 100.0 * (double)sv.f_bavail / (double)sv.f_blocks;
    uint64_t free_b = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (pct >= c->sentinel.disk_low.min_free_pct &&
        (!c->sentinel.disk_low.min_free_bytes || free_b >= c->sentinel.disk_low.min_free_bytes))
        return;
    add(f, "disk_low", sev_names[c->sentinel.disk_low.severity],
        json_pack("{s:s}", "path", c->data_dir),
        json_pack("{s:f,s:I}", "free_pct", pct, "free_bytes", (json_int_t)free_b),
        "%.1f%% free (%llu MiB) in %s", pct, (unsigned long long)(free_b >> 20), c->data_dir);
}

/* SQLite: WAL checkpoints of this process keep failing (store.h store_wal), so the WAL
 * grows past its limit. Known only where the checkpoints run: the server. */
static void rule_checkpoints(const struct sentinel_input *in, json_t *f)
{
    const struct sluice_config *c = in->cfg;
    struct store_wal wal;
    store_wal_stats(c->storage, &wal);
    if (!wal.known ||
        wal.consecutive_failures < (unsigned)c->sentinel.checkpoint_failing.after_failures)
        return;
    char t[32];
    add(f, "checkpoint_failing", sev_names[c->sentinel.checkpoint_failing.severity], NULL,
        json_pack("{s:i,s:I,s:I,s:s,s:s}", "consecutive_failures", (int)wal.consecutive_failures,
                  "wal_bytes", (json_int_t)wal.bytes, "wal_limit_bytes",
                  (json_int_t)wal.limit_bytes, "last_failure_at",
                  clock_rfc3339(wal.last_failure_ms, t, sizeof t), "error", wal.last_error),
        "%u WAL checkpoints failed in a row (WAL %lld MiB, limit %lld MiB): %s",
        wal.consecutive_failures, (long long)(wal.bytes >> 20), (long long)(wal.limit_bytes >> 20),
        wal.last_error);
}

/* Jobs (config.h jobs) whose last after_failures runs failed: the store's job_last
 * counts the failed runs since the newest success (skipped and canceled runs neither count
 * nor end the streak), so a restart or another node's runs change nothing. */
static void rule_job_failing(const struct sentinel_input *in, json_t *f)
{
    const struct sluice_config *c = in->cfg;
    for (size_t k = 0; k < c->njobs; k++) {
        const struct job_config *jc = &c->jobs[k];
        struct job_last last;
        if (store_job_last(in->st, jc->name, &last) != 0)
            continue; /* no run yet, or an error */
        if (last.failures < c->sentinel.job_failing.after_failures) {
            job_run_release(&last.last);
            continue;
        }
        /* the newest run may be a skipped or canceled one: the error is the newest failure's */
        struct job_run *failed = NULL;
        size_t nf = 0;
        const char *error = last.last.error;
        int64_t failed_at = last.last.ended_ms;
        if (strcmp(last.last.state, "failed") != 0) {
            struct job_run_filter flt = {.job = jc->name, .state = "failed", .limit = 1};
            if (store_job_runs_list(in->st, &flt, &failed, &nf) == 0 && nf) {
                error = failed[0].error;
                failed_at = failed[0].ended_ms;
            }
        }
        char ts[32], tf[32];
        add(f, "job_failing", sev_names[c->sentinel.job_failing.severity],
            json_pack("{s:s}", "job", jc->name),
            json_pack("{s:I,s:s?,s:s?,s:s?,s:I}", "consecutive_failures", (json_int_t)last.failures,
                      "last_success_at",
                      last.last_success_ms ? clock_rfc3339(last.last_success_ms, ts, sizeof ts)
                                           : NULL,
                      "last_failure_at", failed_at ? clock_rfc3339(failed_at, tf, sizeof tf) : NULL,
                      "error", error, "last_run_id", (json_int_t)last.last.id),
            "job %s failed %lld time%s in a row: %s", jc->name, (long long)last.failures,
            last.failures == 1 ? "" : "s", error && *error ? error : "(no error recorded)");
        job_runs_free(failed, nf);
        job_run_release(&last.last);
    }
}

/* The first scheduled time after the last one the scheduler dealt with (job_state), under
 * the expression it reckoned that with: the stored one when a reload it has not taken up
 * yet changed it (it then starts the new one from that moment, back-filling nothing). */
static int64_t job_next_due_ms(const struct job_config *jc, const struct job_state *js)
{
    struct cron sc = jc->schedule;
    char err[160];
    if (js->cron && strcmp(js->cron, jc->cron) != 0 && cron_parse(js->cron, &sc, err, sizeof err))
        return -1;
    int64_t ms = js->last_due_ms;
    int64_t t = cron_next(&sc, jc->tz, ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
    return t < 0 ? -1 : t * 1000;
}

/* The runs of job in state (newest first, at most limit) into *v, *n; -1 on error. */
static int job_runs(const struct sentinel_input *in, const char *job, const char *state, int limit,
                    struct job_run **v, size_t *n)
{
    struct job_run_filter flt = {.job = job, .state = state, .limit = limit};
    *v = NULL;
    *n = 0;
    return store_job_runs_list(in->st, &flt, v, n) < 0 ? -1 : 0;
}

/* Since when the job's oldest queued run has waited for a runner: from its creation or
 * from the end of the last run the job ran, whichever is later (runs of a job start one at
 * a time). 0: no queued run, or it waits behind a run of the job that is running (its lease
 * not ended). *run_id: the queued run. */
static int64_t job_queued_since(const struct sentinel_input *in, const char *job, int64_t *run_id)
{
    struct job_run *v;
    size_t n;
    if (job_runs(in, job, "queued", 100, &v, &n) < 0 || !n) {
        job_runs_free(v, n);
        return 0;
    }
    int64_t since = v[n - 1].created_ms; /* newest first: the last one is the oldest */
    *run_id = v[n - 1].id;
    job_runs_free(v, n);
    int busy = 0;
    if (job_runs(in, job, "running", 10, &v, &n) < 0)
        busy = 1; /* undecided: not a finding */
    for (size_t i = 0; i < n; i++)
        busy |= v[i].lease_until_ms >= in->now_ms; /* an ended lease: the run is lost */
    job_runs_free(v, n);
    /* the end of the last run that ran (a skipped run, or a canceled queued one, never
     * started: every minute's skipped run behind a stuck queued one does not count) */
    static const char *const ended[] = {"succeeded", "failed", "canceled"};
    for (size_t k = 0; !busy && k < sizeof ended / sizeof ended[0]; k++) {
        if (job_runs(in, job, ended[k], 1, &v, &n) == 0 && n && v[0].started_ms &&
            v[0].ended_ms > since)
            since = v[0].ended_ms;
        job_runs_free(v, n);
    }
    return busy ? 0 : since;
}

/* Enabled, unpaused jobs with a run that was due and did not start within the job's grace:
 * a scheduled time the scheduler has not dealt with (no node runs it, or it is stuck), or a
 * queued run no runner took (scheduler.max_running reached, the scheduler away). A job no
 * scheduler has seen yet (no job_state row) is not missed. For the first grace after the
 * start such a job is undecided: this process's scheduler starts with it and deals with the
 * times missed while it was down (by the job's catchup) at its first tick. */
static void rule_job_missed(const struct sentinel_input *in, json_t *f, json_t *u)
{
    const struct sluice_config *c = in->cfg;
    for (size_t k = 0; k < c->njobs; k++) {
        const struct job_config *jc = &c->jobs[k];
        if (!jc->enabled)
            continue;
        struct job_state js;
        if (store_job_state_get(in->st, jc->name, &js) != 0)
            continue; /* never seen by a scheduler, or an error */
        int64_t grace = (int64_t)jc->grace_ms, limit = in->now_ms - grace;
        int64_t due = js.paused ? -1 : job_next_due_ms(jc, &js), run_id = 0;
        int64_t queued = js.paused ? 0 : job_queued_since(in, jc->name, &run_id);
        char t1[32], t2[32], g[32];
        fmt_duration(g, sizeof g, grace / 1000);
        if (((due >= 0 && due < limit) || (queued && queued < limit)) &&
            in->now_ms - in->started_ms <= grace)
            undecided(u, "job_missed", json_pack("{s:s}", "job", jc->name));
        else if (due >= 0 && due < limit)
            add(f, "job_missed", sev_names[c->sentinel.job_missed.severity],
                json_pack("{s:s}", "job", jc->name),
                json_pack("{s:s,s:s,s:I,s:I}", "due_at", clock_rfc3339(due, t1, sizeof t1),
                          "last_due_at", clock_rfc3339(js.last_due_ms, t2, sizeof t2), "grace_s",
                          (json_int_t)(grace / 1000), "late_s",
                          (json_int_t)((in->now_ms - due) / 1000)),
                "job %s did not run at %s: no scheduler dealt with it within its grace (%s)",
                jc->name, t1, g);
        else if (queued && queued < limit)
            add(f, "job_missed", sev_names[c->sentinel.job_missed.severity],
                json_pack("{s:s}", "job", jc->name),
                json_pack("{s:I,s:s,s:I,s:I}", "run_id", (json_int_t)run_id, "waiting_since",
                          clock_rfc3339(queued, t1, sizeof t1), "grace_s",
                          (json_int_t)(grace / 1000), "late_s",
                          (json_int_t)((in->now_ms - queued) / 1000)),
                "job %s: run %lld has waited since %s and not started within its grace (%s)",
                jc->name, (long long)run_id, t1, g);
        job_state_release(&js);
    }
}

json_t *sentinel_evaluate(const struct sentinel_input *in)
{
    json_t *f = json_array(), *u = json_array();
    int store_ok = in->st && store_ping(in->st) == 0;
    if (!store_ok) {
        add(f, "store_unavailable", "critical", NULL, NULL, "the store does not answer: %s",
            in->st ? store_errmsg(in->st) : "it cannot be opened");
    } else {
        rule_stuck(in, f);
        rule_rates(in, f, u);
        rule_dlq(in, f);
        rule_job_failing(in, f);
        rule_job_missed(in, f, u);
    }
    if (in->with_latency) {
        rule_latency(in, f, u);
        rule_checkpoints(in, f);
    }
    rule_disk(in, f);
    if (in->server_down)
        add(f, "server_unavailable", "critical", NULL, NULL, "the server is not ready: %s",
            in->server_down);
    const char *status = "ok";
    size_t i;
    json_t *e;
    json_array_foreach(f, i, e)
    {
        const char *s = json_string_value(json_object_get(e, "severity"));
        if (!strcmp(s, "critical"))
            status = "critical";
        else if (strcmp(status, "critical"))
            status = "warning";
    }
    char t[32];
    return json_pack("{s:s,s:s,s:o,s:o}", "status", status, "checked_at",
                     clock_rfc3339(in->now_ms, t, sizeof t), "findings", f, "undecided", u);
}

int sentinel_exit_code(const json_t *report)
{
    const char *s = json_string_value(json_object_get(report, "status"));
    return !s || !strcmp(s, "ok") ? 0 : !strcmp(s, "warning") ? 1 : 2;
}

/* ---- the server's thread ---------------------------------------------------------- */

static int64_t last_run;
static int holds_role;

int sentinel_is_leader(void)
{
    return __atomic_load_n(&holds_role, __ATOMIC_RELAXED);
}

int64_t sentinel_last_run_ms(void)
{
    return __atomic_load_n(&last_run, __ATOMIC_RELAXED);
}

struct sentinel {
    struct writer *writer;           /* borrowed */
    struct catalog_source *catalogs; /* borrowed */
    const char *store_uri;           /* borrowed */
    int64_t started_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    struct store *st;
};

static void *sentinel_main(void *arg)
{
    struct sentinel *s = arg;
    pthread_setname_np(pthread_self(), "sl-sentinel");
    for (;;) {
        struct catalog *cat = catalog_get(s->catalogs);
        int interval = cat->cfg.sentinel.interval_s;
        if (!s->st) {
            char err[256];
            s->st = store_open(s->store_uri, 1, err, sizeof err);
        }
        struct sentinel_input in = {.cfg = &cat->cfg,
                                    .st = s->st,
                                    .now_ms = clock_wall_ms(),
                                    .started_ms = s->started_ms,
                                    .with_latency = 1};
        /* One node at a time evaluates and notifies (several nodes on one database): the
         * role is held by this node's sentinel connection; when it dies, another takes it.
         * Without a store the node evaluates alone (store_unavailable). */
        int leader = !s->st || store_singleton(s->st, "sentinel") != 0;
        int was = __atomic_exchange_n(&holds_role, leader, __ATOMIC_RELAXED);
        alerts_set_leader(leader);
        if (leader != was)
            log_info("sentinel",
                     leader ? "this node runs the sentinel"
                            : "another node runs "
                              "the sentinel",
                     NULL);
        if (leader) {
            json_t *report = sentinel_evaluate(&in);
            __atomic_store_n(&last_run, in.now_ms, __ATOMIC_RELAXED);
            alerts_submit(s->writer, cat, report, in.now_ms);
            json_decref(report);
        }
        catalog_release(cat);
        if (in.st && store_ping(in.st) != 0) {
            /* A new connection replaces the old one only once it answers: until then the
             * old one keeps telling what is wrong (PostgreSQL away, the SQLite file
             * deleted), which a failed open would not. */
            char err[256];
            struct store *fresh = store_open(s->store_uri, 1, err, sizeof err);
            if (fresh && store_ping(fresh) == 0) {
                store_close(s->st);
                s->st = fresh;
            } else {
                store_close(fresh);
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += interval > 0 ? interval : 30;
        pthread_mutex_lock(&s->mu);
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0)
            ;
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
    }
    return NULL;
}

struct sentinel *sentinel_start(struct writer *writer, struct catalog_source *catalogs,
                                const char *store_uri, int64_t started_ms)
{
    struct sentinel *s = sl_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->writer = writer;
    s->catalogs = catalogs;
    s->store_uri = store_uri;
    s->started_ms = started_ms;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, sentinel_main, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void sentinel_stop(struct sentinel *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    store_close(s->st);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
