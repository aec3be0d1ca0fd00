/*
 * service.c - start-up, reload and shutdown of the running service.
 */
#include "service/service.h"

#include "auth/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/audit.h"
#include "auth/jwt_keys.h"
#include "batch/batch.h"
#include "http/router.h"
#include "http/server.h"
#include "writer/writer.h"
#include "ops/alerts.h"
#include "ops/metrics.h"
#include "ops/sentinel.h"
#include "sched/sched.h"
#include "store/store.h"
#include "store/store_pool.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

/* auth.dev_bypass only where nobody else can connect. */
static int check_bypass(const struct sluice_config *cfg, char *err, size_t errlen)
{
    if (cfg->auth.dev_bypass && !auth_listen_is_loopback(cfg->listen)) {
        snprintf(err, errlen,
                 "auth.dev_bypass: refused: listen %s is not a loopback address; authentication "
                 "can be turned off only on 127.0.0.1, ::1 or localhost",
                 cfg->listen);
        return -1;
    }
    return 0;
}

int service_load_config(const struct service *s, struct sluice_config *cfg, char *err,
                        size_t errlen)
{
    if (jwt_keys_config_load(s->config_path, cfg, err, errlen) < 0)
        return -1;
    if (config_apply_env(cfg, err, errlen) < 0 ||
        (s->listen_override && config_set(cfg, "listen", s->listen_override, err, errlen) < 0) ||
        (s->data_dir_override &&
         config_set(cfg, "data_dir", s->data_dir_override, err, errlen) < 0) ||
        check_bypass(cfg, err, errlen) < 0) {
        config_release(cfg);
        return -1;
    }
    return 0;
}

/* A writer job that creates or extends every dataset's table, all or nothing. */
struct sync_job {
    struct wjob job;
    const struct sluice_config *cfg;
    char *why;
    size_t whylen;
};

static int sync_apply(struct wjob *job, struct store *st)
{
    struct sync_job *j = (struct sync_job *)job;
    for (size_t i = 0; i < j->cfg->ndatasets; i++)
        if (store_dataset_check(st, &j->cfg->datasets[i], j->why, j->whylen) < 0)
            return -1;
    for (size_t i = 0; i < j->cfg->ndatasets; i++)
        if (store_dataset_sync(st, &j->cfg->datasets[i], j->why, j->whylen) < 0)
            return -1;
    return 0;
}

static int sync_datasets(struct service *s, const struct sluice_config *cfg, char *why,
                         size_t whylen)
{
    struct sync_job j = {
        .job = {.nrows = 1, .apply = sync_apply}, .cfg = cfg, .why = why, .whylen = whylen};
    why[0] = 0;
    int rc = writer_run(s->writer, &j.job);
    if (rc < 0 && !why[0])
        snprintf(why, whylen, "the store could not be written");
    return rc;
}

static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "data_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int reload_cb(void *ctx, json_t **changes, char *why, size_t whylen)
{
    return service_reload(ctx, changes, why, whylen);
}

/* Undo a start, in reverse order, from whatever point it reached (every part's stop accepts
 * what was never started). cfg is NULL until the catalog source is made; after, the
 * configuration goes back into *cfg, for the caller who still owns it, once no thread can
 * read it any more. */
static void unwind(struct service *s, struct sluice_config *cfg)
{
    http_server_stop(s->http);
    s->http = NULL;
    sched_stop(s->sched);
    s->sched = NULL;
    sentinel_stop(s->sentinel);
    s->sentinel = NULL;
    if (s->alerts_started)
        alerts_notifier_stop();
    s->alerts_started = 0;
    batch_pool_stop(s->batches);
    s->batches = NULL;
    writer_stop(s->writer);
    s->writer = NULL;
    store_pool_destroy(s->files);
    s->files = NULL;
    if (cfg) {
        struct catalog *c = catalog_swap(&s->catalogs, NULL);
        *cfg = c->cfg;
        memset(&c->cfg, 0, sizeof c->cfg);
        catalog_release(c);
        catalog_source_destroy(&s->catalogs);
    }
    metrics_shutdown();
    free(s->store_uri);
    s->store_uri = NULL;
}

int service_start(struct service *s, struct sluice_config *cfg, char *err, size_t errlen)
{
    if (check_bypass(cfg, err, errlen) < 0)
        return -1;
    if (cfg->auth.dev_bypass)
        log_warn("auth", "authentication is OFF (auth.dev_bypass): every request is admin",
                 "\"listen\":\"%s\"", cfg->listen);
    s->started_ms = clock_wall_ms();
    s->started_ns = clock_mono_ns();
    if (make_dirs(cfg->data_dir, err, errlen) < 0)
        return -1;
    s->store_uri = sl_strdup(cfg->storage);
    if (!s->store_uri) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    metrics_init(http_nroutes, router_label);
    store_set_query_observer(metrics_query_duration);
    audit_configure(cfg->audit.max_pending);

    struct store *st = store_open(s->store_uri, 0, err, errlen);
    if (!st) {
        unwind(s, NULL);
        return -1;
    }
    if (store_migrate(st) < 0) {
        snprintf(err, errlen, "%s: %s", s->store_uri, store_errmsg(st));
        store_close(st);
        unwind(s, NULL);
        return -1;
    }
    store_close(st);
    /* As many as the libuv thread pool has threads (4 unless UV_THREADPOOL_SIZE says
     * otherwise), the threads that keep and drop batch files: one rarely waits. */
    s->files = store_pool_create(s->store_uri, 4);
    if (!s->files) {
        snprintf(err, errlen, "out of memory");
        unwind(s, NULL);
        return -1;
    }

    struct writer_opts wo = {.queue_max_jobs = cfg->writer.queue_max_jobs,
                             .max_group_rows = cfg->writer.max_group_rows,
                             .lock_wait_ms = cfg->writer.lock_wait_ms,
                             .commit_seconds = metrics_commit_duration};
    s->writer = writer_start_opts(s->store_uri, &wo, err, errlen);
    if (!s->writer || sync_datasets(s, cfg, err, errlen) < 0) {
        unwind(s, NULL);
        return -1;
    }

    struct catalog *first = catalog_new(cfg);
    if (!first) {
        snprintf(err, errlen, "out of memory");
        unwind(s, NULL);
        return -1;
    }
    catalog_source_init(&s->catalogs, first);
    const struct sluice_config *c = &first->cfg; /* lives as long as the service */

    if (c->batches.workers > 0) {
        s->batches = batch_pool_start(s->writer, &s->catalogs, s->store_uri, c->batches.workers);
        if (!s->batches) {
            snprintf(err, errlen, "batch workers: out of memory");
            goto fail;
        }
    }
    alerts_notifier_start(s->writer, &s->catalogs, s->store_uri);
    s->alerts_started = 1;
    if (c->sentinel.interval_s > 0) {
        s->sentinel = sentinel_start(s->writer, &s->catalogs, s->store_uri, s->started_ms);
        if (!s->sentinel) {
            snprintf(err, errlen, "sentinel: the thread could not be started");
            goto fail;
        }
    }

    {
        /* host:port: the node in the runs it starts, as the batch workers name theirs */
        char host[64] = "localhost", node[128];
        gethostname(host, sizeof host - 1);
        const char *colon = strrchr(c->listen, ':');
        snprintf(node, sizeof node, "%s:%s", host, colon ? colon + 1 : "0");
        s->sched = sched_start(s->writer, &s->catalogs, s->store_uri, node);
        if (!s->sched) {
            snprintf(err, errlen, "scheduler: the thread could not be started");
            goto fail;
        }
    }

    s->app = (struct http_app){
        .sched = s->sched,
        .writer = s->writer,
        .catalogs = &s->catalogs,
        .files = s->files,
        .batches = s->batches,
        .sentinel_runs = s->sentinel != NULL,
        .store_uri = s->store_uri,
        .started_ns = s->started_ns,
        .reload = reload_cb,
        .reload_ctx = s,
    };
    struct http_server_opts o = {
        .listen = c->listen,
        .threads = c->io_threads,
        .max_body_bytes = c->limits.max_body_bytes,
        .max_header_bytes = c->limits.max_header_bytes,
        .max_inflight_bytes = c->limits.max_inflight_bytes,
        .max_upload_bytes = c->limits.max_upload_bytes,
        .idle_timeout_ms = c->http.idle_timeout_ms,
        .request_timeout_ms = c->http.request_timeout_ms,
        .max_connections = c->http.max_connections,
        .rate_limit_clients = c->rate_limits.max_clients,
        .store_uri = s->store_uri,
        .log_requests = c->log.requests,
    };
    s->http = http_server_start(&o, &s->app, err, errlen);
    if (!s->http)
        goto fail;
    char addr[256];
    log_info("service", "listening",
             "\"listen\":\"%s\",\"storage\":\"%s\",\"datasets\":%zu,\"io_threads\":%d,"
             "\"version\":\"%s\"",
             log_json_str(addr, sizeof addr, c->listen, (size_t)-1), s->store_uri, c->ndatasets,
             c->io_threads, SLUICE_VERSION);
    return 0;

fail:
    unwind(s, cfg);
    return -1;
}

/* What a reload changed in the datasets: names added, removed and changed (any of key,
 * on_duplicate, threshold, expected_every, schema). */
static json_t *dataset_changes(const struct sluice_config *old, const struct sluice_config *n)
{
    json_t *added = json_array(), *removed = json_array(), *changed = json_array();
    for (size_t i = 0; i < n->ndatasets; i++) {
        const struct dataset_config *d = &n->datasets[i], *o = config_dataset(old, d->name);
        if (!o)
            json_array_append_new(added, json_string(d->name));
        else if ((o->key == NULL) != (d->key == NULL) || (o->key && strcmp(o->key, d->key)) ||
                 o->on_duplicate != d->on_duplicate ||
                 o->error_threshold_percent != d->error_threshold_percent ||
                 o->expected_every_ms != d->expected_every_ms ||
                 !json_equal(o->schema_json, d->schema_json))
            json_array_append_new(changed, json_string(d->name));
    }
    for (size_t i = 0; i < old->ndatasets; i++)
        if (!config_dataset(n, old->datasets[i].name))
            json_array_append_new(removed, json_string(old->datasets[i].name));
    return json_pack("{s:o,s:o,s:o}", "added", added, "removed", removed, "changed", changed);
}

/* The options the new file changes that are read only at start-up (the HTTP server's, the
 * writer's, the store's and the batch workers'): they wait for a restart. */
static json_t *restart_changes(const struct sluice_config *o, const struct sluice_config *n)
{
    const struct {
        const char *name;
        int differs;
    } opts[] = {
        {"listen", strcmp(o->listen, n->listen) != 0},
        {"storage", strcmp(o->storage, n->storage) != 0},
        {"io_threads", o->io_threads != n->io_threads},
        {"limits.max_body_bytes", o->limits.max_body_bytes != n->limits.max_body_bytes},
        {"limits.max_header_bytes", o->limits.max_header_bytes != n->limits.max_header_bytes},
        {"limits.max_upload_bytes", o->limits.max_upload_bytes != n->limits.max_upload_bytes},
        {"limits.max_inflight_bytes", o->limits.max_inflight_bytes != n->limits.max_inflight_bytes},
        {"http.idle_timeout", o->http.idle_timeout_ms != n->http.idle_timeout_ms},
        {"http.request_timeout", o->http.request_timeout_ms != n->http.request_timeout_ms},
        {"http.max_connections", o->http.max_connections != n->http.max_connections},
        {"writer.queue_max_jobs", o->writer.queue_max_jobs != n->writer.queue_max_jobs},
        {"writer.max_group_rows", o->writer.max_group_rows != n->writer.max_group_rows},
        {"batches.workers", o->batches.workers != n->batches.workers},
        {"scheduler.max_running", o->scheduler.max_running != n->scheduler.max_running},
    };
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (opts[i].differs)
            json_array_append_new(a, json_string(opts[i].name));
    return a;
}

/* One reload at a time: SIGHUP (the main thread) and POST /api/v1/admin/reload (a thread of
 * the libuv pool) may ask at once. */
static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER;

static int reload_locked(struct service *s, json_t **changes, char *why, size_t whylen)
{
    struct sluice_config cfg;
    if (service_load_config(s, &cfg, why, whylen) < 0)
        return -1;
    if (sync_datasets(s, &cfg, why, whylen) < 0) {
        config_release(&cfg);
        return -1;
    }
    struct catalog *n = catalog_new(&cfg);
    if (!n) {
        config_release(&cfg);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    if (n->cfg.log.level)
        log_set_level(n->cfg.log.level);
    audit_configure(n->cfg.audit.max_pending);
    struct catalog *old = catalog_swap(&s->catalogs, n);
    json_t *datasets = dataset_changes(&old->cfg, &n->cfg);
    json_t *restart = restart_changes(&old->cfg, &n->cfg);
    char *txt = json_dumps(restart, JSON_COMPACT);
    if (json_array_size(restart))
        log_warn("service", "some changed options apply only after a restart", "\"options\":%s",
                 txt ? txt : "[]");
    free(txt);
    catalog_release(old);
    sched_wake(s->sched); /* new, changed or removed jobs at once */
    if (changes) {
        *changes = json_pack("{s:s,s:o,s:o}", "reload", "applied", "datasets", datasets,
                             "restart_required", restart);
    } else {
        json_decref(datasets);
        json_decref(restart);
    }
    return 0;
}

int service_reload(struct service *s, json_t **changes, char *why, size_t whylen)
{
    if (changes)
        *changes = NULL;
    pthread_mutex_lock(&reload_mu);
    int rc = reload_locked(s, changes, why, whylen);
    pthread_mutex_unlock(&reload_mu);
    char m[1100];
    if (rc == 0)
        log_info("service", "config reloaded", NULL);
    else
        log_warn("service", "config reload refused", "\"reason\":\"%s\"",
                 log_json_str(m, sizeof m, why, (size_t)-1));
    return rc;
}

struct purge_job {
    struct wjob job;
    int64_t before_ms;         /* idempotency records made before this */
    int64_t minutes_before_ms; /* minute rollups before this */
};

static int purge_apply(struct wjob *job, struct store *st)
{
    struct purge_job *j = (struct purge_job *)job;
    return store_idem_purge(st, j->before_ms) < 0 ? -1
                                                  : store_rollup_purge(st, j->minutes_before_ms);
}

/* A batch file kept this long ago that no record names is an orphan: keeping the file and
 * recording the batch are normally milliseconds apart, and only a crash between them leaves
 * one. An upload's spool this old is one a crash interrupted (a live upload writes to it).
 * The sweep runs this often, so an orphan lives at most twice as long. */
#define FILE_GRACE_MS (60 * 60 * 1000LL)
#define FILE_SWEEP_EVERY_MS (60 * 60 * 1000LL)

/* Through a lent connection, on this (the main) thread: the writer stays free. */
static void sweep_files(struct service *s, const char *data_dir, int64_t now)
{
    char err[256], m[600];
    s->files_swept_ms = now;
    int spools = batch_spool_sweep(data_dir, now - FILE_GRACE_MS), files = -1;
    struct store *st = store_pool_take(s->files, err, sizeof err);
    if (st) {
        files = store_file_sweep(st, now - FILE_GRACE_MS, data_dir);
        if (files < 0)
            snprintf(err, sizeof err, "%s", store_errmsg(st));
        store_pool_give(s->files, st, files >= 0);
    }
    if (files < 0)
        log_warn("service", "batch file sweep failed", "\"error\":\"%s\"",
                 log_json_str(m, sizeof m, err, (size_t)-1));
    if (files > 0 || spools > 0)
        log_info("service", "orphaned batch files removed", "\"files\":%d,\"spools\":%d",
                 files > 0 ? files : 0, spools);
}

/* Whether an enabled job of kind housekeeping does task (then it is a run with a history,
 * and the timer below leaves that task to it). */
static int housekeeping_job_does(const struct sluice_config *cfg, const char *task)
{
    for (size_t i = 0; i < cfg->njobs; i++) {
        const struct job_config *j = &cfg->jobs[i];
        if (!j->enabled || strcmp(config_job_kind_names[j->kind], "housekeeping") != 0)
            continue;
        if (!j->args.tasks)
            return 1;
        for (size_t k = 0; j->args.tasks[k]; k++)
            if (strcmp(j->args.tasks[k], task) == 0)
                return 1;
    }
    return 0;
}

int service_purge(struct service *s)
{
    struct catalog *cat = catalog_get(&s->catalogs);
    if (housekeeping_job_does(&cat->cfg, "idempotency") &&
        housekeeping_job_does(&cat->cfg, "rollups") &&
        housekeeping_job_does(&cat->cfg, "batch_files")) {
        catalog_release(cat); /* a housekeeping job does all of it, as runs with a history */
        return 0;
    }
    int64_t now = clock_wall_ms();
    struct purge_job j = {.job = {.nrows = 1, .apply = purge_apply},
                          .before_ms = now - (int64_t)cat->cfg.idempotency_ttl_ms,
                          .minutes_before_ms = now - config_minute_rollups_kept_ms(&cat->cfg)};
    int rc = writer_run(s->writer, &j.job);
    if (now - s->files_swept_ms >= FILE_SWEEP_EVERY_MS)
        sweep_files(s, cat->cfg.data_dir, now);
    catalog_release(cat);
    return rc;
}

void service_stop(struct service *s, uint64_t timeout_ms)
{
    uint64_t deadline = clock_mono_ns() + timeout_ms * 1000000ull;
    if (s->http) {
        http_server_drain(s->http);
        while (http_server_busy(s->http) > 0 && clock_mono_ns() < deadline)
            usleep(20000);
    }
    sched_stop(s->sched); /* its runners finish or are canceled; they write through the writer */
    s->sched = NULL;
    sentinel_stop(s->sentinel);
    s->sentinel = NULL;
    /* Workers finish the batch step they are in (its transaction commits or not). */
    batch_pool_stop(s->batches);
    s->batches = NULL;
    if (s->alerts_started)
        alerts_notifier_stop(); /* undelivered notifications stay in the outbox */
    s->alerts_started = 0;
    /* Finish every queued job; their answers go to the loops, still running. */
    writer_stop(s->writer);
    s->writer = NULL;
    http_server_stop(s->http);
    s->http = NULL;
    store_pool_destroy(s->files); /* after the loops: their thread-pool work is done */
    s->files = NULL;
    catalog_source_destroy(&s->catalogs);
    metrics_shutdown();
    free(s->store_uri);
    s->store_uri = NULL;
}
