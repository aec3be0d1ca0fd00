/*
 * metrics.c - counters and histograms kept in memory, rendered in the
 * Prometheus text format. Series are few (routes x methods x statuses,
 * datasets x codes), so plain arrays under one mutex are enough.
 */
#include "ops/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/mem.h"

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct req_series {
    size_t route;
    char method[16];
    int status;
    unsigned long long n;
};

struct hist {
    unsigned long long counts[NBUCKETS + 1]; /* last: +Inf */
    double sum;
    unsigned long long n;
};

static const double batch_buckets[] = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
#define NBB (sizeof batch_buckets / sizeof batch_buckets[0])

struct ds_series {
    char *name;
    unsigned long long accepted, duplicates, rejected[ERR__COUNT];
    unsigned long long batch_counts[NBB + 1], batch_n; /* batch durations */
    double batch_sum;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct req_series *reqs;
static size_t nreqs, capreqs;
/* The routes, as metrics_init() was told (ops/ knows no HTTP): their number and labels. */
static size_t nroutes;
static const char *(*route_name)(size_t route);
static struct hist *hists; /* nroutes + 1 (unmatched) */
static struct ds_series *dss;
static size_t ndss;
/* The store's time: the writer's COMMITs, and reads on the read connections. */
static struct hist commit_hist, query_hist;

static void hist_observe(struct hist *h, double seconds)
{
    size_t b = 0;
    while (b < NBUCKETS && seconds > buckets[b])
        b++;
    h->counts[b]++;
    h->sum += seconds;
    h->n++;
}

void metrics_init(size_t routes, const char *(*label)(size_t route))
{
    pthread_mutex_lock(&mu);
    if (!hists) {
        nroutes = routes;
        route_name = label;
        hists = sl_calloc(nroutes + 1, sizeof *hists);
    }
    pthread_mutex_unlock(&mu);
}

void metrics_shutdown(void)
{
    pthread_mutex_lock(&mu);
    free(reqs);
    reqs = NULL;
    nreqs = capreqs = 0;
    free(hists);
    hists = NULL;
    nroutes = 0;
    for (size_t i = 0; i < ndss; i++)
        free(dss[i].name);
    free(dss);
    dss = NULL;
    ndss = 0;
    pthread_mutex_unlock(&mu);
}

void metrics_http_request(size_t route, const char *method, int status, double seconds)
{
    pthread_mutex_lock(&mu);
    if (route >= nroutes)
        route = nroutes; /* unmatched */
    if (!hists) {
        pthread_mutex_unlock(&mu);
        return;
    }
    struct req_series *r = NULL;
    for (size_t i = 0; i < nreqs; i++)
        if (reqs[i].route == route && reqs[i].status == status &&
            strcmp(reqs[i].method, method) == 0) {
            r = &reqs[i];
            break;
        }
    if (!r) {
        if (nreqs == capreqs) {
            size_t nc = capreqs ? capreqs * 2 : 64;
            struct req_series *nr = sl_realloc(reqs, nc * sizeof *nr);
            if (!nr) {
                pthread_mutex_unlock(&mu);
                return;
            }
            reqs = nr;
            capreqs = nc;
        }
        r = &reqs[nreqs++];
        memset(r, 0, sizeof *r);
        r->route = route;
        r->status = status;
        snprintf(r->method, sizeof r->method, "%s", method);
    }
    r->n++;
    hist_observe(&hists[route], seconds);
    pthread_mutex_unlock(&mu);
}

void metrics_commit_duration(double seconds)
{
    pthread_mutex_lock(&mu);
    hist_observe(&commit_hist, seconds);
    pthread_mutex_unlock(&mu);
}

void metrics_query_duration(double seconds)
{
    pthread_mutex_lock(&mu);
    hist_observe(&query_hist, seconds);
    pthread_mutex_unlock(&mu);
}

/* A histogram without labels, HELP and TYPE included. Called with mu held. */
static void render_hist(struct buf *o, const char *name, const char *help, const struct hist *h)
{
    buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        cum += h->counts[b];
        buf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, buckets[b], cum);
    }
    buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, h->n, name,
               h->sum, name, h->n);
}

static struct ds_series *ds_get(const char *name)
{
    for (size_t i = 0; i < ndss; i++)
        if (strcmp(dss[i].name, name) == 0)
            return &dss[i];
    struct ds_series *n = sl_realloc(dss, (ndss + 1) * sizeof *n);
    if (!n)
        return NULL;
    dss = n;
    memset(&dss[ndss], 0, sizeof dss[ndss]);
    dss[ndss].name = sl_strdup(name);
    return &dss[ndss++];
}

void metrics_rows(const char *dataset, unsigned long long accepted, unsigned long long duplicates,
                  const unsigned long long rejected_by_code[ERR__COUNT])
{
    pthread_mutex_lock(&mu);
    struct ds_series *d = ds_get(dataset);
    if (d) {
        d->accepted += accepted;
        d->duplicates += duplicates;
        for (int i = 0; rejected_by_code && i < ERR__COUNT; i++)
            d->rejected[i] += rejected_by_code[i];
    }
    pthread_mutex_unlock(&mu);
}

/* Requests refused by rate limits, by the permission of their route: the class label. */
static const char *const perm_classes[] = {"open", "metrics", "read", "ingest", "operate", "admin"};
#define NCLASSES (sizeof perm_classes / sizeof perm_classes[0])
static unsigned long long rate_limited[NCLASSES], rate_evicted;

void metrics_rate_limited(enum perm perm)
{
    if ((size_t)perm < NCLASSES)
        __atomic_add_fetch(&rate_limited[perm], 1, __ATOMIC_RELAXED);
}

void metrics_rate_limit_evicted(void)
{
    __atomic_add_fetch(&rate_evicted, 1, __ATOMIC_RELAXED);
}

void metrics_batch_done(const char *dataset, double seconds)
{
    pthread_mutex_lock(&mu);
    struct ds_series *d = ds_get(dataset);
    if (d) {
        size_t b = 0;
        while (b < NBB && seconds > batch_buckets[b])
            b++;
        d->batch_counts[b]++;
        d->batch_n++;
        d->batch_sum += seconds;
    }
    pthread_mutex_unlock(&mu);
}

/* process_* from /proc/self (Linux). */
static void render_process(struct buf *o)
{
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "r");
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0;
    unsigned long long start = 0;
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        char *p = strrchr(buf, ')'); /* the command name may hold spaces */
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                        "%*d %llu %lu %ld",
                        &utime, &stime, &start, &vsize, &rss) != 5)
            utime = stime = 0;
    }
    double boot = 0;
    f = fopen("/proc/stat", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "btime %lf", &boot) == 1)
                break;
        fclose(f);
    }
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory stream itself */
    }
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    buf_printf(o,
               "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
               "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
               "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
               "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n"
               "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
               "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %lu\n"
               "# HELP process_open_fds Number of open file descriptors.\n"
               "# TYPE process_open_fds gauge\nprocess_open_fds %d\n"
               "# HELP process_max_fds Maximum number of open file descriptors.\n"
               "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n"
               "# HELP process_start_time_seconds Start time of the process since unix epoch in "
               "seconds.\n# TYPE process_start_time_seconds gauge\n"
               "process_start_time_seconds %.2f\n",
               tck > 0 ? (double)(utime + stime) / (double)tck : 0.0, rss * page, vsize, fds,
               (unsigned long long)rl.rlim_cur,
               boot + (tck > 0 ? (double)start / (double)tck : 0.0));
}

static const char *route_label(size_t i)
{
    return i < nroutes ? route_name(i) : "unmatched";
}

void metrics_render(struct buf *o, const struct metrics_gauges *g)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < g->ndatasets; i++)
        ds_get(g->datasets[i]);

    buf_appends(o, "# HELP sluice_build_info Build information.\n# TYPE sluice_build_info gauge\n");
    buf_printf(o, "sluice_build_info{version=\"%s\",revision=\"%s\"} 1\n", SLUICE_VERSION,
               SLUICE_GIT_SHA);
    render_process(o);
    buf_appends(o, "# HELP sluice_uptime_seconds Seconds since the server started.\n"
                   "# TYPE sluice_uptime_seconds gauge\n");
    buf_printf(o, "sluice_uptime_seconds %.3f\n", g->uptime_s);

    buf_appends(o, "# HELP sluice_rows_received_total Rows received, per dataset.\n"
                   "# TYPE sluice_rows_received_total counter\n");
    for (size_t i = 0; i < ndss; i++) {
        unsigned long long rej = 0;
        for (int e = 0; e < ERR__COUNT; e++)
            rej += dss[i].rejected[e];
        buf_printf(o, "sluice_rows_received_total{dataset=\"%s\"} %llu\n", dss[i].name,
                   dss[i].accepted + dss[i].duplicates + rej);
    }
    buf_appends(o, "# HELP sluice_rows_accepted_total Rows stored, per dataset.\n"
                   "# TYPE sluice_rows_accepted_total counter\n");
    for (size_t i = 0; i < ndss; i++)
        buf_printf(o, "sluice_rows_accepted_total{dataset=\"%s\"} %llu\n", dss[i].name,
                   dss[i].accepted);
    buf_appends(o, "# HELP sluice_rows_rejected_total Rows sent to the DLQ, per dataset and first "
                   "error code.\n# TYPE sluice_rows_rejected_total counter\n");
    for (size_t i = 0; i < ndss; i++)
        for (int e = 1; e < ERR__COUNT; e++)
            if (dss[i].rejected[e])
                buf_printf(o, "sluice_rows_rejected_total{dataset=\"%s\",error_code=\"%s\"} %llu\n",
                           dss[i].name, err_name((enum sluice_err)e), dss[i].rejected[e]);
    buf_appends(o, "# HELP sluice_rows_duplicate_total Rows skipped as duplicates, per dataset.\n"
                   "# TYPE sluice_rows_duplicate_total counter\n");
    for (size_t i = 0; i < ndss; i++)
        buf_printf(o, "sluice_rows_duplicate_total{dataset=\"%s\"} %llu\n", dss[i].name,
                   dss[i].duplicates);

    buf_appends(o, "# HELP sluice_batch_duration_seconds Time from a batch's claim to its end "
                   "(completed or failed), per dataset.\n"
                   "# TYPE sluice_batch_duration_seconds histogram\n");
    for (size_t i = 0; i < ndss; i++) {
        if (!dss[i].batch_n)
            continue;
        unsigned long long cum = 0;
        for (size_t b = 0; b < NBB; b++) {
            cum += dss[i].batch_counts[b];
            buf_printf(o, "sluice_batch_duration_seconds_bucket{dataset=\"%s\",le=\"%g\"} %llu\n",
                       dss[i].name, batch_buckets[b], cum);
        }
        buf_printf(o,
                   "sluice_batch_duration_seconds_bucket{dataset=\"%s\",le=\"+Inf\"} %llu\n"
                   "sluice_batch_duration_seconds_sum{dataset=\"%s\"} %.6f\n"
                   "sluice_batch_duration_seconds_count{dataset=\"%s\"} %llu\n",
                   dss[i].name, dss[i].batch_n, dss[i].name, dss[i].batch_sum, dss[i].name,
                   dss[i].batch_n);
    }

    buf_appends(o, "# HELP sluice_http_requests_total HTTP requests answered.\n"
                   "# TYPE sluice_http_requests_total counter\n");
    for (size_t i = 0; i < nreqs; i++)
        buf_printf(o, "sluice_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
                   route_label(reqs[i].route), reqs[i].method, reqs[i].status, reqs[i].n);
    buf_appends(o,
                "# HELP sluice_http_request_duration_seconds Time from the first byte of a "
                "request to its answer.\n# TYPE sluice_http_request_duration_seconds histogram\n");
    for (size_t r = 0; hists && r <= nroutes; r++) {
        struct hist *h = &hists[r];
        if (!h->n)
            continue;
        unsigned long long cum = 0;
        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += h->counts[b];
            buf_printf(o,
                       "sluice_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                       route_label(r), buckets[b], cum);
        }
        cum += h->counts[NBUCKETS];
        buf_printf(o,
                   "sluice_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                   route_label(r), cum);
        buf_printf(o, "sluice_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                   route_label(r), h->sum);
        buf_printf(o, "sluice_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                   route_label(r), h->n);
    }
    buf_appends(o, "# HELP sluice_rate_limited_total Requests answered 429 RATE_LIMITED, by the "
                   "class of their route (the permission it needs).\n"
                   "# TYPE sluice_rate_limited_total counter\n");
    for (size_t i = 1; i < NCLASSES; i++) /* open routes (health probes) are never limited */
        buf_printf(o, "sluice_rate_limited_total{class=\"%s\"} %llu\n", perm_classes[i],
                   __atomic_load_n(&rate_limited[i], __ATOMIC_RELAXED));
    buf_printf(o,
               "# HELP sluice_rate_limit_evictions_total Clients' rate-limit buckets dropped to "
               "make room for others (rate_limits.max_clients).\n"
               "# TYPE sluice_rate_limit_evictions_total counter\n"
               "sluice_rate_limit_evictions_total %llu\n",
               __atomic_load_n(&rate_evicted, __ATOMIC_RELAXED));
    buf_appends(o, "# HELP sluice_dlq_depth Open DLQ entries, per dataset.\n"
                   "# TYPE sluice_dlq_depth gauge\n");
    for (size_t i = 0; i < ndss; i++) {
        json_t *v = g->dlq_depth ? json_object_get(g->dlq_depth, dss[i].name) : NULL;
        buf_printf(o, "sluice_dlq_depth{dataset=\"%s\"} %lld\n", dss[i].name,
                   v ? (long long)json_integer_value(v) : 0LL);
    }
    render_hist(o, "sluice_store_commit_duration_seconds",
                "Time the writer's COMMIT of a group took (the WAL fsync on SQLite), failed ones "
                "included.",
                &commit_hist);
    render_hist(o, "sluice_store_query_duration_seconds",
                "Time a read statement took on a read connection (HTTP loops, sentinel, batch "
                "workers).",
                &query_hist);
    pthread_mutex_unlock(&mu);

    buf_appends(o, "# HELP sluice_writer_queue_depth Jobs waiting for the writer.\n"
                   "# TYPE sluice_writer_queue_depth gauge\n");
    buf_printf(o, "sluice_writer_queue_depth %d\n", g->queue_depth);
    buf_appends(o, "# HELP sluice_writer_queue_capacity Bound of the writer queue.\n"
                   "# TYPE sluice_writer_queue_capacity gauge\n");
    buf_printf(o, "sluice_writer_queue_capacity %d\n", g->queue_max);
    buf_appends(o, "# HELP sluice_writer_commits_total Group commits made by the writer.\n"
                   "# TYPE sluice_writer_commits_total counter\n");
    buf_printf(o, "sluice_writer_commits_total %llu\n", g->commits);
    buf_appends(o, "# HELP sluice_writer_commit_failures_total Transactions of the writer that "
                   "could not begin or commit.\n"
                   "# TYPE sluice_writer_commit_failures_total counter\n");
    buf_printf(o, "sluice_writer_commit_failures_total %llu\n", g->commit_failures);
}
