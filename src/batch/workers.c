/*
 * workers.c - the batch worker pool: claim, process, heartbeat (see batch.h).
 * Every store change a worker makes is a writer job, like everything else.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "batch/batch.h"
#include "batch/process.h"
#include "config/catalog.h"
#include "writer/writer.h"
#include "ops/metrics.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#define WORKER_NICE 10

struct worker {
    struct batch_pool *pool;
    pthread_t thread;
    char id[96];      /* host/wN: after a restart the same id takes back what it held */
    int64_t lease_ms; /* batches.lease_s when the batch was claimed */
    char current[64]; /* the batch in its pass, "" when none (under the pool's mu) */
    struct store *st; /* its own read connection: the batch files are read through it */
    /* Its own writer, for the passes into datasets without a key on a store that lets two
     * connections write at once (PostgreSQL): started at the first such pass, stopped with
     * the worker. NULL until then, and on SQLite (see pass_writer). */
    struct writer *own;
    char own_error[256]; /* why it did not start, the last time it was tried */
};

struct batch_pool {
    struct writer *writer;           /* borrowed from the service */
    struct catalog_source *catalogs; /* borrowed */
    const char *store_uri;           /* borrowed */
    struct worker *w;
    int n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, kicked;
    /* With a connection of its own (PostgreSQL): wakes the workers on other nodes' uploads
     * and renews the leases of the batches in their pass. */
    pthread_t listener;
    int listening;
};

/* One small writer job: an operation on one batch. */
enum op { OP_CLAIM, OP_STATUS, OP_FAIL };
struct bjob {
    struct wjob job;
    enum op op;
    struct worker *w;
    struct batch *b;
    const char *status, *reason;
    int64_t lease_ms;
    struct pass *pass;
    int none; /* OP_CLAIM: nothing to claim */
};

static int bjob_apply(struct wjob *job, struct store *st)
{
    struct bjob *j = (struct bjob *)job;
    int64_t now = clock_wall_ms();
    switch (j->op) {
    case OP_CLAIM: {
        int r = store_batch_claim(st, j->w->id, now, j->lease_ms, j->b);
        j->none = r == 1;
        return r < 0 ? -1 : 0;
    }
    case OP_STATUS: /* each state change also renews the lease */
        if (store_batch_set_status(st, j->b->id, j->status, j->reason, now) < 0)
            return -1;
        if (strcmp(j->status, "completed") != 0 && strcmp(j->status, "failed") != 0)
            return store_batch_heartbeat(st, j->b->id, j->w->id, now, j->w->lease_ms);
        return 0;
    case OP_FAIL:
        return batch_pass_apply_fail(j->pass, st, j->reason);
    }
    return -1;
}

static int run_on(struct writer *wr, struct worker *w, struct bjob *j)
{
    j->job.apply = bjob_apply;
    j->job.nrows = 1;
    j->w = w;
    return writer_run(wr, &j->job);
}

static int run(struct worker *w, struct bjob *j)
{
    return run_on(w->pool->writer, w, j);
}

/*
 * The writer a pass of a batch into ds runs on. A pass is one job, one transaction, as long
 * as the file: on the service's writer every push waits for it. Where the store lets another
 * connection write meanwhile, unseen until its COMMIT (store_concurrent_writers: PostgreSQL),
 * the pass runs on the worker's own writer instead, so pushes go on beside it, and the batch
 * still becomes visible all at once. With a key, a push of a key the open pass has stored
 * waits for the pass's COMMIT: the service's writer waits writer.lock_wait_ms at most (its
 * lock_timeout), then that push alone is answered KEY_BUSY and the others go on; as the
 * push gives up first, the two never deadlock. The pass's own writer waits as long as it
 * takes (a push's group commits within milliseconds). The claim and the status changes
 * always go through the service's writer (short jobs).
 */
static struct writer *pass_writer(struct worker *w, const struct sluice_config *cfg)
{
    if (!w->st || !store_concurrent_writers(w->st))
        return w->pool->writer;
    if (!w->own) {
        char err[256], m[600];
        struct writer *own =
            writer_start(w->pool->store_uri, 4, cfg->writer.max_group_rows, err, sizeof err);
        pthread_mutex_lock(&w->pool->mu); /* batch_pool_writers reads it */
        w->own = own;
        if (!own)
            snprintf(w->own_error, sizeof w->own_error, "%s", err);
        pthread_mutex_unlock(&w->pool->mu);
        if (!w->own) {
            log_warn("batch", "the worker's own writer did not start: its passes hold the writer",
                     "\"worker\":\"%s\",\"error\":\"%s\"", w->id,
                     log_json_str(m, sizeof m, err, (size_t)-1));
            return w->pool->writer;
        }
    }
    return w->own;
}

static int set_status(struct worker *w, struct batch *b, const char *status, const char *reason)
{
    struct bjob j = {.op = OP_STATUS, .b = b, .status = status, .reason = reason};
    if (run(w, &j) < 0)
        return -1;
    log_info("batch", "status", "\"batch_id\":\"%s\",\"status\":\"%s\"", b->id, status);
    return 0;
}

/* The pass's tick: non-zero when the pool is stopping (the pass then ends early, nothing
 * of it is stored, and the batch keeps its state: this worker id takes it back after the
 * restart). */
static int stopping(void *arg)
{
    struct batch_pool *pool = arg;
    pthread_mutex_lock(&pool->mu);
    int stop = pool->stop;
    pthread_mutex_unlock(&pool->mu);
    return stop;
}

/* What the listener renews: the batch in w's pass. */
static void set_current(struct worker *w, const char *id)
{
    pthread_mutex_lock(&w->pool->mu);
    snprintf(w->current, sizeof w->current, "%s", id);
    pthread_mutex_unlock(&w->pool->mu);
}

static void process(struct worker *w, struct batch *b)
{
    struct catalog *cat = catalog_get(w->pool->catalogs);
    const struct sluice_config *cfg = &cat->cfg;
    const struct dataset_config *ds = config_dataset(cfg, b->dataset);
    char reason[600], m[1200];
    struct pass *p = NULL;

    if (b->attempts > cfg->batches.max_attempts) {
        snprintf(reason, sizeof reason,
                 "gave up after %d attempts: the worker processing it stopped each time",
                 cfg->batches.max_attempts);
        set_status(w, b, "failed", reason);
        goto out;
    }
    if (!ds) {
        snprintf(reason, sizeof reason, "dataset %s is not configured", b->dataset);
        set_status(w, b, "failed", reason);
        goto out;
    }
    p = batch_pass_new(cfg, ds, b, w->st);
    if (!p)
        goto out;
    batch_pass_set_tick(p, stopping, w->pool);
    batch_pass_set_lease(p, w->lease_ms);
    /* The claim made it `staging`: the header must name every required field. */
    if (batch_pass_header(p) < 0) {
        set_status(w, b, "failed", batch_pass_reason(p));
        goto out;
    }
    /* From here one streamed pass validates, converts and inserts each row: the three
     * states begin together and the batch shows the last of them until it ends. */
    if (set_status(w, b, "validating", NULL) < 0 || set_status(w, b, "transforming", NULL) < 0 ||
        set_status(w, b, ds->on_duplicate == ON_DUP_UPSERT ? "upserting" : "inserting", NULL) < 0)
        goto out;
    set_current(w, b->id);
    struct writer *pw = pass_writer(w, cfg);
    /* SQLite: in slices among the pushes (slices.c) */
    int sliced = w->st && store_sliced_passes(w->st);
    int rc = sliced ? batch_pass_run_sliced(p, pw) : batch_pass_run(p, pw);
    set_current(w, "");
    if (sliced && rc > 0) { /* recorded by the pass */
        log_info("batch", "failed", "\"batch_id\":\"%s\",\"reason\":\"%s\"", b->id,
                 log_json_str(m, sizeof m, batch_pass_reason(p), (size_t)-1));
        goto out;
    }
    if (rc == 1) {
        /* the error pass reads the whole file again: on the pass's writer too */
        snprintf(reason, sizeof reason, "%s", batch_pass_reason(p));
        struct bjob j = {.op = OP_FAIL, .b = b, .pass = p, .reason = reason};
        if (run_on(pw, w, &j) < 0)
            set_status(w, b, "failed", reason);
        log_info("batch", "failed", "\"batch_id\":\"%s\",\"reason\":\"%s\"", b->id, reason);
        goto out;
    }
    if (rc < 0) {
        if (batch_pass_stopped(p))
            log_info("batch", "left for the next start", "\"batch_id\":\"%s\"", b->id);
        else if (batch_pass_lost(p))
            log_warn("batch", "taken over by another worker: its lease expired",
                     "\"batch_id\":\"%s\",\"worker\":\"%s\"", b->id, w->id);
        else if (batch_pass_store_failed(p)) /* this worker claims it again (its own) */
            log_warn("batch", "the store failed under the pass: the batch is taken up again",
                     "\"batch_id\":\"%s\",\"attempt\":%d,\"error\":\"%s\"", b->id, b->attempts,
                     log_json_str(m, sizeof m, batch_pass_reason(p), (size_t)-1));
        else
            set_status(w, b, "failed", batch_pass_reason(p));
        goto out;
    }
    metrics_batch_done(ds->name, (double)(clock_wall_ms() - b->started_ms) / 1000.0);
    /* the rows of a completed batch count like pushed ones */
    metrics_rows(ds->name, (unsigned long long)b->inserted, (unsigned long long)b->duplicate,
                 batch_pass_rejected(p));
    log_info("batch", "completed",
             "\"batch_id\":\"%s\",\"rows\":%lld,\"invalid\":%lld,\"duplicate\":%lld", b->id,
             (long long)b->total, (long long)b->invalid, (long long)b->duplicate);
out:
    batch_pass_destroy(p);
    catalog_release(cat);
}

/* The worker's connection, opened when first needed (and again if that failed). */
static struct store *open_store(struct worker *w)
{
    char err[256], m[600];
    w->st = store_open(w->pool->store_uri, 1, err, sizeof err);
    if (!w->st)
        log_warn("batch", "the worker cannot open the store", "\"worker\":\"%s\",\"error\":\"%s\"",
                 w->id, log_json_str(m, sizeof m, err, (size_t)-1));
    return w->st;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct batch_pool *pool = w->pool;
    pthread_setname_np(pthread_self(), "sl-batch");
    /* Reading and validating a file takes a core for as long as the file lasts: at a lower
     * priority it takes what the pushes leave, instead of half of a small machine. Linux
     * gives each thread its own nice value; elsewhere this changes nothing. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WORKER_NICE) != 0)
        log_warn("batch", "the worker's priority stays as it was", "\"errno\":%d", errno);
    for (;;) {
        pthread_mutex_lock(&pool->mu);
        int stop = pool->stop;
        pthread_mutex_unlock(&pool->mu);
        if (stop)
            break;
        if (!w->st && !open_store(w)) {
            sleep(1); /* the store is away: claim nothing that could not be read */
            continue;
        }
        struct catalog *cat = catalog_get(pool->catalogs);
        int64_t lease = (int64_t)cat->cfg.batches.lease_s * 1000;
        catalog_release(cat);
        struct batch b = {0};
        w->lease_ms = lease;
        struct bjob j = {.op = OP_CLAIM, .b = &b, .lease_ms = lease};
        if (run(w, &j) == 0 && !j.none) {
            process(w, &b);
            batch_release(&b);
            continue;
        }
        batch_release(&b);
        /* Nothing to do: sleep until kicked, or a second (leases expire). */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_mutex_lock(&pool->mu);
        while (!pool->kicked && !pool->stop &&
               pthread_cond_timedwait(&pool->cv, &pool->mu, &ts) == 0)
            ;
        pool->kicked = 0;
        pthread_mutex_unlock(&pool->mu);
    }
    pthread_mutex_lock(&pool->mu);
    struct writer *own = w->own;
    w->own = NULL;
    pthread_mutex_unlock(&pool->mu);
    writer_stop(own); /* after its last pass: nothing is queued on it */
    store_close(w->st);
    w->st = NULL;
    return NULL;
}

static void *listener_main(void *arg);

struct batch_pool *batch_pool_start(struct writer *writer, struct catalog_source *catalogs,
                                    const char *store_uri, int workers)
{
    if (workers <= 0)
        return NULL;
    struct batch_pool *p = sl_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->writer = writer;
    p->catalogs = catalogs;
    p->store_uri = store_uri;
    p->w = sl_calloc((size_t)workers, sizeof *p->w);
    if (!p->w) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    /* host:port/wN: unique per node (several nodes may share a host), and the same after a
     * restart, so a restarted node takes back what it held at once. */
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    struct catalog *cat = catalog_get(catalogs);
    const char *colon = strrchr(cat->cfg.listen, ':');
    char port[16];
    snprintf(port, sizeof port, "%s", colon ? colon + 1 : "0");
    catalog_release(cat);
    for (int i = 0; i < workers; i++) {
        p->w[i].pool = p;
        snprintf(p->w[i].id, sizeof p->w[i].id, "%s:%s/w%d", host, port, i + 1);
        if (pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i]) == 0)
            p->n = i + 1;
        else
            break;
    }
    p->listening = pthread_create(&p->listener, NULL, listener_main, p) == 0;
    return p;
}

/* Renew the lease of every batch in a pass on this node, every third of a lease. A pass
 * holds the writer, whose transaction other nodes cannot see, so the renewal goes through
 * this thread's own connection; without it another node would take a long batch over once
 * its lease ran out. */
static void renew_leases(struct batch_pool *p, struct store *st, int64_t *last)
{
    struct catalog *cat = catalog_get(p->catalogs);
    int64_t every = (int64_t)cat->cfg.batches.lease_s * 1000 / 3;
    catalog_release(cat);
    int64_t now = clock_wall_ms();
    if (now - *last < every)
        return;
    *last = now;
    for (int i = 0; i < p->n; i++) {
        char id[64];
        pthread_mutex_lock(&p->mu);
        snprintf(id, sizeof id, "%s", p->w[i].current);
        int64_t lease = p->w[i].lease_ms;
        pthread_mutex_unlock(&p->mu);
        int r = id[0] ? store_batch_heartbeat(st, id, p->w[i].id, now, lease) : 0;
        if (r)
            log_warn("batch", "lease not renewed", "\"batch_id\":\"%s\",\"error\":\"%s\"", id,
                     r > 0 ? "another worker holds the batch now" : store_errmsg(st));
    }
}

/* Wakes the workers when any node records a batch to process (LISTEN/NOTIFY on PostgreSQL),
 * so they need not poll, and renews leases; ends at once where the store cannot tell
 * (SQLite: one process, kicked directly, and claims wait for the writer, so a batch in its
 * pass cannot be taken over). */
static void *listener_main(void *arg)
{
    struct batch_pool *p = arg;
    pthread_setname_np(pthread_self(), "sl-listen");
    char err[256];
    struct store *st = store_open(p->store_uri, 0, err, sizeof err);
    int64_t renewed = clock_wall_ms();
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop || !st)
            break;
        int r = store_wait_work(st, 500);
        if (r < 0)
            break;
        if (r == 1)
            batch_pool_kick(p);
        renew_leases(p, st, &renewed);
    }
    store_close(st);
    return NULL;
}

int batch_pool_writers(struct batch_pool *p, char *detail, size_t cap)
{
    int n = 0, bad = 0;
    detail[0] = 0;
    if (!p)
        return 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        struct worker *w = &p->w[i];
        struct writer_health h;
        if (w->own) {
            n++;
            writer_health(w->own, &h);
            if (!bad && (!h.store_answers || h.commits_failing)) {
                bad = 1;
                snprintf(detail, cap, "worker %s: %s", w->id,
                         !h.store_answers ? "the store does not answer its writer" : h.last_error);
            }
        } else if (w->own_error[0] && !bad) {
            n++;
            bad = 1;
            snprintf(detail, cap,
                     "worker %s: its writer did not start (%s); its passes hold "
                     "the service's writer",
                     w->id, w->own_error);
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (n && !bad)
        snprintf(detail, cap, "%d worker writer%s committing", n, n == 1 ? "" : "s");
    return bad ? -n : n;
}

void batch_pool_kick(struct batch_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->kicked = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void batch_pool_stop(struct batch_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++)
        pthread_join(p->w[i].thread, NULL);
    if (p->listening)
        pthread_join(p->listener, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->w);
    free(p);
}
