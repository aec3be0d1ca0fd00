/*
 * sched.c - the scheduler's thread and its runners (sched.h says what it does and why).
 *
 * The thread ("sl-sched") owns the in-memory view of the jobs (struct sjob: the last time
 * dealt with, paused, the next time) and the store connection it reads through; the runner
 * threads ("sl-run") own the run they are running. What they share is under s->mu: the queue
 * of runs handed to runners (todo), the runs running (running), the runs that ended (done)
 * and the per-job counts the metrics read. Every write to the store is a writer job run with
 * writer_run() from one of these threads; none is ever made from an HTTP loop here.
 *
 * A tick: (1) the runs that ended are counted and retried by their job's policy; (2) when
 * this node holds the role: new jobs get their state (a new job, or a changed expression,
 * starts from now: nothing is back-filled), paused flags are read again, the due runs are
 * added (due.h), lost runs are failed and retried, retries that are due are added, and
 * queued runs are started up to scheduler.max_running, one run of a job at a time; (3) the
 * leases of this node's running runs are renewed every third of scheduler.lease_s.
 * The writes themselves are sched_writes.c's.
 */
#include "sched/sched.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/catalog.h"
#include "sched/due.h"
#include "sched/kinds.h"
#include "sched/sched_internal.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "writer/writer.h"

#define JOB_NAME_MAX 64
#define STATE_REFRESH_MS 5000 /* paused flags read again (another node's API) */
#define LOST_EVERY_MS 5000    /* runs whose lease ended are looked for */
#define PRUNE_EVERY_MS 60000  /* a job's history is pruned at most this often */
#define CLOCK_JUMP_MS 60000   /* a wall-clock step larger than this is logged */

static const char *const triggers[] = {"schedule", "manual", "catchup", "retry"};
static const char *const states[] = {"succeeded", "failed", "skipped", "canceled"};
#define NTRIG 4
#define NSTATE 4

struct sjob {
    char name[JOB_NAME_MAX];
    int64_t last_due_ms;
    char *cron; /* the expression last_due_ms was reckoned with (owned) */
    int paused;
    int64_t next_ms; /* the next scheduled time, -1: none */
    int active;      /* runs of it running (or handed to a runner) on this node */
    int64_t last_prune_ms;
    int in_config; /* seen in the configuration at the last sync */
    /* metrics (under s->mu) */
    uint64_t runs[NTRIG][NSTATE];
    double dur_sum;
    uint64_t dur_count;
    int64_t last_success_ms;
};

struct srun {
    struct srun *next;
    int64_t id;
    char job[JOB_NAME_MAX];
    int attempt;
    int64_t scheduled_ms;
    char trigger[12];
    int cancel; /* atomic: asked to stop (renew said so, shutdown) */
    /* set by the runner */
    const char *state;
    char error[512];
    double seconds;
};

struct retry {
    struct retry *next;
    int64_t due_ms, scheduled_ms;
    int attempt;
    char job[JOB_NAME_MAX];
};

struct sched {
    struct writer *writer;
    struct catalog_source *catalogs;
    const char *store_uri;
    char node[128];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* the scheduler waits on it (CLOCK_MONOTONIC) */
    pthread_cond_t rcv; /* the runners wait on it */
    int stop, woken;    /* under mu: the scheduler thread stops; it is asked to tick */
    int stop_runners;   /* under mu: the runners stop once the queue is empty (after the
                         * scheduler thread: a run it started last is still run, as shutdown) */
    struct store *st;   /* the scheduler thread's */
    struct sjob *jobs;
    size_t njobs;
    size_t *index; /* open addressing over jobs by name (index_cap slots, SIZE_MAX empty) */
    size_t index_cap;
    const struct catalog *synced; /* the catalog sync_jobs last took up */
    int sync_retry;               /* a state write of sync_jobs failed: sync again */
    int64_t next_due_ms;          /* the earliest next time of the jobs (-1: none) */
    int64_t last_full_ms;         /* the last full tick (the heartbeat) */
    pthread_t *runners;
    int nrunners;
    struct srun *todo, *running, *done; /* under mu */
    struct retry *retries;              /* the scheduler thread's */
    int64_t last_renew_ms, last_lost_ms, last_state_ms;
    int64_t last_wall_ms;
    uint64_t last_mono_ns;
    int leader;           /* atomic */
    int64_t last_tick_ms; /* atomic */
    int nactive;          /* atomic */
};

static int trigger_index(const char *t)
{
    for (int i = 0; i < NTRIG; i++)
        if (strcmp(triggers[i], t) == 0)
            return i;
    return 0;
}
static int state_index(const char *t)
{
    for (int i = 0; i < NSTATE; i++)
        if (strcmp(states[i], t) == 0)
            return i;
    return 1;
}

/* FNV-1a: the index of the jobs by name, so that a tick over 1,000 jobs and 1,000 queued
 * runs is not a million string comparisons. */
static size_t name_hash(const char *n)
{
    uint64_t h = 1469598103934665603ull;
    for (; *n; n++)
        h = (h ^ (unsigned char)*n) * 1099511628211ull;
    return (size_t)h;
}

static struct sjob *find_job(struct sched *s, const char *name)
{
    if (!s->index_cap)
        return NULL;
    for (size_t k = name_hash(name) & (s->index_cap - 1);; k = (k + 1) & (s->index_cap - 1)) {
        size_t i = s->index[k];
        if (i == SIZE_MAX)
            return NULL;
        if (strcmp(s->jobs[i].name, name) == 0)
            return &s->jobs[i];
    }
}

/* Index jobs[njobs - 1] (and everything, when the table must grow): 0, or -1 out of memory. */
static int index_add(struct sched *s)
{
    if (s->njobs * 2 > s->index_cap) {
        size_t cap = s->index_cap ? s->index_cap * 2 : 64;
        while (cap < s->njobs * 2)
            cap *= 2;
        size_t *v = sl_malloc(cap * sizeof *v);
        if (!v)
            return -1;
        free(s->index);
        s->index = v;
        s->index_cap = cap;
        for (size_t k = 0; k < cap; k++)
            v[k] = SIZE_MAX;
        for (size_t i = 0; i + 1 < s->njobs; i++) {
            size_t k = name_hash(s->jobs[i].name) & (cap - 1);
            while (v[k] != SIZE_MAX)
                k = (k + 1) & (cap - 1);
            v[k] = i;
        }
    }
    size_t k = name_hash(s->jobs[s->njobs - 1].name) & (s->index_cap - 1);
    while (s->index[k] != SIZE_MAX)
        k = (k + 1) & (s->index_cap - 1);
    s->index[k] = s->njobs - 1;
    return 0;
}

/* ---- runners ----------------------------------------------------------------------- */

static void *runner_main(void *arg)
{
    struct sched *s = arg;
    struct store *st = NULL; /* this runner's read connection, kept across runs */
    pthread_setname_np(pthread_self(), "sl-run");
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->todo && !s->stop_runners)
            pthread_cond_wait(&s->rcv, &s->mu);
        struct srun *r = s->todo;
        if (r) {
            s->todo = r->next;
            r->next = s->running;
            s->running = r;
        }
        int stop = s->stop_runners;
        pthread_mutex_unlock(&s->mu);
        if (!r)
            break;
        struct catalog *cat = catalog_get(s->catalogs);
        const struct job_config *jc = config_job(&cat->cfg, r->job);
        uint64_t t0 = clock_mono_ns();
        int rc;
        struct run_ctx ctx = {.cat = cat,
                              .cfg = &cat->cfg,
                              .job = jc,
                              .writer = s->writer,
                              .store_uri = s->store_uri,
                              .st = &st,
                              .cancel = &r->cancel};
        if (stop) {
            rc = 1;
            snprintf(ctx.error, sizeof ctx.error, "shutdown: the node stopped before it ran");
        } else if (!jc) {
            rc = -1;
            snprintf(ctx.error, sizeof ctx.error, "the job is no longer configured");
        } else {
            ctx.deadline_ns = jc->timeout_ms ? t0 + jc->timeout_ms * 1000000ull : 0;
            rc = kind_run(&ctx);
        }
        r->seconds = (double)(clock_mono_ns() - t0) / 1e9;
        /* a timeout is a failure; a cancel (or a shutdown) is canceled */
        r->state = rc == 0                                            ? "succeeded"
                   : rc == 1 && strncmp(ctx.error, "timeout", 7) != 0 ? "canceled"
                                                                      : "failed";
        snprintf(r->error, sizeof r->error, "%s", rc == 0 ? "" : ctx.error);
        int rcs[1] = {0};
        struct run_job fj = {.job = {.nrows = 1, .apply = run_apply},
                             .op = OP_FINISH,
                             .node = s->node,
                             .now_ms = clock_wall_ms(),
                             .ids = &r->id,
                             .rcs = rcs,
                             .n = 1,
                             .state = r->state,
                             .error = rc == 0 ? NULL : ctx.error,
                             .items = ctx.items};
        if (writer_run(s->writer, &fj.job) != 0)
            log_warn("sched", "a run's end was not stored (its lease will end it)",
                     "\"run\":%lld,\"job\":\"%s\"", (long long)r->id, r->job);
        catalog_release(cat);
        pthread_mutex_lock(&s->mu);
        for (struct srun **p = &s->running; *p; p = &(*p)->next)
            if (*p == r) {
                *p = r->next;
                break;
            }
        r->next = s->done;
        s->done = r;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    store_close(st);
    return NULL;
}

/* ---- the tick ---------------------------------------------------------------------- */

/* The jobs of cfg in s->jobs: new ones get their state from the store (or start now), a
 * changed expression starts from now; jobs no longer configured are forgotten once idle. */
static void sync_jobs(struct sched *s, const struct catalog *cat, int woken, int64_t now)
{
    const struct sluice_config *cfg = &cat->cfg;
    if (cat == s->synced && !woken && !s->sync_retry)
        return; /* the same configuration, taken up already (a reload wakes the scheduler) */
    s->synced = cat;
    s->sync_retry = 0;
    for (size_t i = 0; i < s->njobs; i++)
        s->jobs[i].in_config = 0;
    struct plan_state *puts = cfg->njobs ? sl_calloc(cfg->njobs, sizeof *puts) : NULL;
    size_t nputs = 0;
    for (size_t i = 0; i < cfg->njobs; i++) {
        const struct job_config *jc = &cfg->jobs[i];
        struct sjob *sj = find_job(s, jc->name);
        if (!sj) {
            pthread_mutex_lock(&s->mu);
            struct sjob *v = sl_realloc(s->jobs, (s->njobs + 1) * sizeof *v);
            if (v) {
                s->jobs = v;
                sj = &v[s->njobs++];
                memset(sj, 0, sizeof *sj);
                snprintf(sj->name, sizeof sj->name, "%s", jc->name);
                sj->last_due_ms = -1;
                if (index_add(s) < 0) {
                    s->njobs--; /* tried again at the next sync */
                    sj = NULL;
                    s->sync_retry = 1;
                }
            }
            pthread_mutex_unlock(&s->mu);
            if (!sj)
                continue;
            struct job_state js;
            int rc = store_job_state_get(s->st, jc->name, &js);
            if (rc == 0) {
                sj->last_due_ms = js.last_due_ms;
                sj->cron = js.cron ? sl_strdup(js.cron) : NULL;
                sj->paused = js.paused;
                job_state_release(&js);
            }
            struct job_last last;
            if (store_job_last(s->st, jc->name, &last) == 0) {
                sj->last_success_ms = last.last_success_ms;
                job_run_release(&last.last);
            }
        }
        sj->in_config = 1;
        if (sj->last_due_ms < 0 || !sj->cron || strcmp(sj->cron, jc->cron) != 0) {
            if (sj->cron)
                log_info("sched", "schedule changed: it applies from now, past times are not run",
                         "\"job\":\"%s\",\"cron\":\"%s\"", jc->name, jc->cron);
            free(sj->cron);
            sj->cron = sl_strdup(jc->cron);
            sj->last_due_ms = now;
            if (puts)
                puts[nputs++] = (struct plan_state){jc->name, jc->cron, now};
        }
    }
    if (nputs) {
        struct plan_job p = {.job = {.nrows = nputs, .apply = plan_apply},
                             .states = puts,
                             .nstates = nputs,
                             .now_ms = now};
        if (writer_run(s->writer, &p.job) != 0) {
            for (size_t i = 0; i < nputs; i++) {
                struct sjob *sj = find_job(s, puts[i].job);
                free(sj->cron); /* tried again at the next tick */
                sj->cron = NULL;
            }
            s->sync_retry = 1;
        }
    }
    free(puts);
}

static void refresh_paused(struct sched *s, const struct sluice_config *cfg)
{
    for (size_t i = 0; i < cfg->njobs; i++) {
        struct sjob *sj = find_job(s, cfg->jobs[i].name);
        struct job_state js;
        if (sj && store_job_state_get(s->st, sj->name, &js) == 0) {
            if (js.paused != sj->paused)
                log_info("sched", js.paused ? "job paused" : "job resumed", "\"job\":\"%s\"",
                         sj->name);
            sj->paused = js.paused;
            job_state_release(&js);
        }
    }
}

static void add_due(struct sched *s, const struct sluice_config *cfg, int64_t now)
{
    size_t cap = 0;
    for (size_t i = 0; i < cfg->njobs; i++)
        cap += (size_t)cfg->jobs[i].max_catchup_runs + 4;
    if (!cap)
        return;
    struct plan_add *adds = sl_calloc(cap, sizeof *adds);
    struct plan_state *puts = sl_calloc(cfg->njobs, sizeof *puts);
    struct due_run *due = sl_calloc(10004, sizeof *due);
    size_t nadds = 0, nputs = 0;
    int64_t *news = sl_calloc(cfg->njobs, sizeof *news);
    if (!adds || !puts || !due || !news)
        goto out;
    for (size_t i = 0; i < cfg->njobs; i++) {
        const struct job_config *jc = &cfg->jobs[i];
        struct sjob *sj = find_job(s, jc->name);
        if (!sj || !sj->cron || !jc->enabled || sj->paused)
            continue;
        int64_t last, missed;
        size_t n = sched_due(jc, sj->last_due_ms, now, due, (size_t)jc->max_catchup_runs + 4, &last,
                             &missed);
        if (last == sj->last_due_ms)
            continue;
        size_t made_up = 0;
        for (size_t k = 0; k < n; k++)
            made_up += (size_t)due[k].catchup;
        if (missed)
            log_warn("sched", "scheduled times were missed",
                     "\"job\":\"%s\",\"missed\":%lld,"
                     "\"made_up\":%zu,\"catchup\":\"%s\"",
                     jc->name, (long long)missed, made_up,
                     jc->catchup == JOB_CATCHUP_NONE     ? "none"
                     : jc->catchup == JOB_CATCHUP_LATEST ? "latest"
                                                         : "all");
        for (size_t k = 0; k < n; k++)
            adds[nadds++] = (struct plan_add){.job = jc->name,
                                              .at_ms = due[k].at_ms,
                                              .attempt = 1,
                                              .trigger = due[k].catchup ? "catchup" : "schedule",
                                              .overlap_skip = jc->overlap == JOB_OVERLAP_SKIP};
        news[nputs] = last;
        puts[nputs++] = (struct plan_state){jc->name, jc->cron, last};
    }
    if (nputs) {
        struct plan_job p = {.job = {.nrows = nadds + nputs, .apply = plan_apply},
                             .adds = adds,
                             .nadds = nadds,
                             .states = puts,
                             .nstates = nputs,
                             .now_ms = now};
        if (writer_run(s->writer, &p.job) == 0) {
            for (size_t i = 0; i < nputs; i++)
                find_job(s, puts[i].job)->last_due_ms = news[i];
            if (p.skipped)
                log_info("sched", "runs skipped: the job's previous run is still going",
                         "\"skipped\":%zu", p.skipped);
        } else {
            log_warn("sched", "due runs not stored: tried again at the next tick", NULL);
        }
    }
out:
    free(adds);
    free(puts);
    free(due);
    free(news);
}

static void add_retry(struct sched *s, const struct job_config *jc, const char *job,
                      int64_t scheduled_ms, int attempt, int64_t now)
{
    if (!jc || attempt > jc->retries)
        return;
    struct retry *r = sl_calloc(1, sizeof *r);
    if (!r)
        return;
    uint64_t backoff = jc->retry_backoff_ms << (attempt - 1 < 20 ? attempt - 1 : 20);
    r->due_ms = now + (int64_t)backoff;
    r->scheduled_ms = scheduled_ms;
    r->attempt = attempt + 1;
    snprintf(r->job, sizeof r->job, "%s", job);
    r->next = s->retries;
    s->retries = r;
    log_info("sched", "run to be retried", "\"job\":\"%s\",\"attempt\":%d,\"in_ms\":%llu", job,
             r->attempt, (unsigned long long)backoff);
}

static void add_retries_due(struct sched *s, const struct sluice_config *cfg, int64_t now)
{
    for (struct retry **p = &s->retries; *p;) {
        struct retry *r = *p;
        const struct job_config *jc = config_job(cfg, r->job);
        if (jc && r->due_ms > now) {
            p = &r->next;
            continue;
        }
        if (jc) {
            struct plan_add a = {.job = jc->name,
                                 .at_ms = r->scheduled_ms,
                                 .attempt = r->attempt,
                                 .trigger = "retry"};
            struct plan_job pj = {
                .job = {.nrows = 1, .apply = plan_apply}, .adds = &a, .nadds = 1, .now_ms = now};
            if (writer_run(s->writer, &pj.job) != 0) {
                p = &r->next; /* the next tick */
                continue;
            }
        }
        *p = r->next;
        free(r);
    }
}

/* Whether some running run's lease has ended: a read, so that an idle scheduler does not
 * write a transaction every LOST_EVERY_MS to find nothing. 1 when unsure (a store error). */
static int some_lease_ended(struct sched *s, int64_t now)
{
    struct job_run_filter f = {.state = "running", .limit = 1000};
    struct job_run *v = NULL;
    size_t n = 0;
    if (store_job_runs_list(s->st, &f, &v, &n) < 0)
        return 1;
    int ended = n == 1000;
    for (size_t i = 0; i < n && !ended; i++)
        ended = v[i].lease_until_ms < now;
    job_runs_free(v, n);
    return ended;
}

static void find_lost(struct sched *s, const struct sluice_config *cfg, int64_t now)
{
    if (!some_lease_ended(s, now))
        return;
    struct run_job j = {.job = {.nrows = 1, .apply = run_apply}, .op = OP_LOST, .now_ms = now};
    if (writer_run(s->writer, &j.job) != 0)
        return;
    for (size_t i = 0; i < j.nlost; i++) {
        log_warn("sched", "run failed: its node was lost (its lease ended)",
                 "\"run\":%lld,\"job\":\"%s\"", (long long)j.lost[i].id, j.lost[i].job);
        struct sjob *sj = find_job(s, j.lost[i].job);
        if (sj) {
            pthread_mutex_lock(&s->mu);
            sj->runs[trigger_index(j.lost[i].trigger)][1]++;
            pthread_mutex_unlock(&s->mu);
        }
        add_retry(s, config_job(cfg, j.lost[i].job), j.lost[i].job, j.lost[i].scheduled_ms,
                  j.lost[i].attempt, now);
    }
    job_runs_free(j.lost, j.nlost);
}

/* Queued runs started on runners, up to the free slots, one run of a job at a time. */
static void dispatch(struct sched *s, const struct sluice_config *cfg, int64_t now)
{
    int free_slots = cfg->scheduler.max_running - __atomic_load_n(&s->nactive, __ATOMIC_RELAXED);
    if (free_slots > s->nrunners - __atomic_load_n(&s->nactive, __ATOMIC_RELAXED))
        free_slots = s->nrunners - __atomic_load_n(&s->nactive, __ATOMIC_RELAXED);
    if (free_slots <= 0)
        return;
    struct job_run_filter f = {.state = "queued", .limit = 1000};
    struct job_run *v = NULL;
    size_t n = 0;
    if (store_job_runs_list(s->st, &f, &v, &n) < 0)
        return;
    int64_t *ids = sl_calloc(n ? n : 1, sizeof *ids), *gone = sl_calloc(n ? n : 1, sizeof *gone);
    int *rcs = sl_calloc(n ? n : 1, sizeof *rcs);
    size_t *which = sl_calloc(n ? n : 1, sizeof *which);
    size_t nids = 0, ngone = 0;
    if (!ids || !gone || !rcs || !which)
        goto out;
    for (size_t k = n; k-- > 0 && (int)nids < free_slots;) { /* oldest first */
        struct sjob *sj = find_job(s, v[k].job);
        if (!config_job(cfg, v[k].job)) {
            gone[ngone++] = v[k].id;
            continue;
        }
        if (!sj || sj->active)
            continue; /* after the one running */
        sj->active++; /* taken back below if it does not start */
        which[nids] = k;
        ids[nids++] = v[k].id;
    }
    if (ngone) {
        struct run_job cj = {.job = {.nrows = ngone, .apply = run_apply},
                             .op = OP_CANCEL,
                             .now_ms = now,
                             .ids = gone,
                             .rcs = rcs,
                             .n = ngone,
                             .reason = "the job is no longer configured"};
        writer_run(s->writer, &cj.job);
    }
    if (!nids)
        goto out;
    struct run_job sjob = {.job = {.nrows = nids, .apply = run_apply},
                           .op = OP_START,
                           .node = s->node,
                           .now_ms = now,
                           .lease_until_ms = now + cfg->scheduler.lease_s * 1000LL,
                           .ids = ids,
                           .rcs = rcs,
                           .n = nids};
    int ok = writer_run(s->writer, &sjob.job) == 0;
    for (size_t i = 0; i < nids; i++) {
        struct job_run *jr = &v[which[i]];
        struct sjob *sj = find_job(s, jr->job);
        struct srun *r = ok && rcs[i] == 0 ? sl_calloc(1, sizeof *r) : NULL;
        if (!r) {
            sj->active--;
            continue;
        }
        r->id = jr->id;
        snprintf(r->job, sizeof r->job, "%s", jr->job);
        r->attempt = jr->attempt;
        r->scheduled_ms = jr->scheduled_ms;
        snprintf(r->trigger, sizeof r->trigger, "%s", jr->trigger);
        __atomic_add_fetch(&s->nactive, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&s->mu);
        struct srun **tail = &s->todo;
        while (*tail)
            tail = &(*tail)->next;
        *tail = r;
        pthread_cond_signal(&s->rcv);
        pthread_mutex_unlock(&s->mu);
    }
out:
    job_runs_free(v, n);
    free(ids);
    free(gone);
    free(rcs);
    free(which);
}

/* The leases of this node's runs; a run that is not ours any more, or asked to cancel,
 * is told to stop. */
static void renew(struct sched *s, const struct sluice_config *cfg, int64_t now)
{
    pthread_mutex_lock(&s->mu);
    size_t n = 0;
    for (struct srun *r = s->running; r; r = r->next)
        n++;
    for (struct srun *r = s->todo; r; r = r->next)
        n++;
    int64_t *ids = sl_calloc(n ? n : 1, sizeof *ids);
    size_t k = 0;
    if (ids) {
        for (struct srun *r = s->running; r; r = r->next)
            ids[k++] = r->id;
        for (struct srun *r = s->todo; r; r = r->next)
            ids[k++] = r->id;
    }
    pthread_mutex_unlock(&s->mu);
    int *rcs = sl_calloc(k ? k : 1, sizeof *rcs);
    if (ids && rcs && k) {
        struct run_job j = {.job = {.nrows = k, .apply = run_apply},
                            .op = OP_RENEW,
                            .node = s->node,
                            .lease_until_ms = now + cfg->scheduler.lease_s * 1000LL,
                            .ids = ids,
                            .rcs = rcs,
                            .n = k};
        if (writer_run(s->writer, &j.job) == 0) {
            pthread_mutex_lock(&s->mu);
            for (size_t i = 0; i < k; i++) {
                if (rcs[i] == 0)
                    continue;
                for (struct srun *r = s->running; r; r = r->next)
                    if (r->id == ids[i])
                        __atomic_store_n(&r->cancel, 1, __ATOMIC_RELAXED);
                for (struct srun *r = s->todo; r; r = r->next)
                    if (r->id == ids[i])
                        __atomic_store_n(&r->cancel, 1, __ATOMIC_RELAXED);
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
    free(ids);
    free(rcs);
}

/* The runs that ended: counted, logged, retried by policy, their job's history pruned. */
static void collect_done(struct sched *s, const struct sluice_config *cfg, int64_t now)
{
    pthread_mutex_lock(&s->mu);
    struct srun *done = s->done;
    s->done = NULL;
    pthread_mutex_unlock(&s->mu);
    while (done) {
        struct srun *r = done;
        done = r->next;
        __atomic_sub_fetch(&s->nactive, 1, __ATOMIC_RELAXED);
        struct sjob *sj = find_job(s, r->job);
        const struct job_config *jc = config_job(cfg, r->job);
        if (sj) {
            pthread_mutex_lock(&s->mu);
            sj->active--;
            sj->runs[trigger_index(r->trigger)][state_index(r->state)]++;
            sj->dur_sum += r->seconds;
            sj->dur_count++;
            if (strcmp(r->state, "succeeded") == 0)
                sj->last_success_ms = now;
            pthread_mutex_unlock(&s->mu);
        }
        char m[600];
        if (strcmp(r->state, "succeeded") == 0)
            log_info("sched", "run succeeded", "\"run\":%lld,\"job\":\"%s\",\"seconds\":%.3f",
                     (long long)r->id, r->job, r->seconds);
        else
            log_warn("sched", strcmp(r->state, "failed") == 0 ? "run failed" : "run canceled",
                     "\"run\":%lld,\"job\":\"%s\",\"error\":\"%s\"", (long long)r->id, r->job,
                     log_json_str(m, sizeof m, r->error, (size_t)-1));
        if (strcmp(r->state, "failed") == 0)
            add_retry(s, jc, r->job, r->scheduled_ms, r->attempt, now);
        if (jc && sj && now - sj->last_prune_ms >= PRUNE_EVERY_MS) {
            int64_t deleted = 0;
            if (sched_prune_job(s->writer, jc, now, &deleted) == 0)
                sj->last_prune_ms = now;
        }
        free(r);
    }
}

static int retry_due(const struct sched *s, int64_t now)
{
    for (const struct retry *r = s->retries; r; r = r->next)
        if (r->due_ms <= now)
            return 1;
    return 0;
}

/* One tick; returns how long to sleep (ms). */
static int64_t tick(struct sched *s)
{
    struct catalog *cat = catalog_get(s->catalogs);
    const struct sluice_config *cfg = &cat->cfg;
    int64_t now = clock_wall_ms();
    uint64_t mono = clock_mono_ns();
    if (s->last_mono_ns) {
        int64_t expect = s->last_wall_ms + (int64_t)((mono - s->last_mono_ns) / 1000000ull);
        int64_t d = now - expect;
        if (d > CLOCK_JUMP_MS || d < -CLOCK_JUMP_MS)
            log_warn("sched",
                     d > 0 ? "the wall clock jumped forward: missed times go by each job's catchup"
                           : "the wall clock jumped back: no time is run twice",
                     "\"by_s\":%lld", (long long)(d / 1000));
    }
    s->last_wall_ms = now;
    s->last_mono_ns = mono;
    pthread_mutex_lock(&s->mu);
    int woken = s->woken;
    s->woken = 0;
    pthread_mutex_unlock(&s->mu);
    /* A light tick, when only runs ended: their slots refilled, nothing else looked at. A
     * full one at a due time, when woken, and at the heartbeat. */
    int full = woken || cat != s->synced || (s->next_due_ms >= 0 && now >= s->next_due_ms) ||
               now - s->last_full_ms >= SCHED_TICK_MAX_MS - 100 || retry_due(s, now);
    if (!full && __atomic_load_n(&s->leader, __ATOMIC_RELAXED) && s->st) {
        collect_done(s, cfg, now);
        dispatch(s, cfg, now);
        int64_t sleep_ms = s->last_full_ms + SCHED_TICK_MAX_MS - now;
        if (s->next_due_ms >= 0 && s->next_due_ms - now < sleep_ms)
            sleep_ms = s->next_due_ms - now;
        for (struct retry *r = s->retries; r; r = r->next) /* collect_done may have added one */
            if (r->due_ms - now < sleep_ms)
                sleep_ms = r->due_ms - now;
        catalog_release(cat);
        return sleep_ms < 0 ? 0 : sleep_ms;
    }
    s->last_full_ms = now;
    if (!s->st) {
        char err[256];
        s->st = store_open(s->store_uri, 1, err, sizeof err);
    } else if (store_ping(s->st) != 0) {
        char err[256];
        struct store *fresh = store_open(s->store_uri, 1, err, sizeof err);
        if (fresh) {
            store_close(s->st);
            s->st = fresh;
        }
    }
    if (!cfg->scheduler.enabled && s->st && __atomic_load_n(&s->leader, __ATOMIC_RELAXED)) {
        store_close(s->st); /* the role (PostgreSQL: a lock of this connection) goes with it */
        s->st = NULL;
    }
    int leader = cfg->scheduler.enabled && s->st && store_singleton(s->st, "scheduler") == 1;
    int was = __atomic_exchange_n(&s->leader, leader, __ATOMIC_RELAXED);
    if (leader != was)
        log_info("sched",
                 leader ? "this node runs the scheduler"
                        : "this node does not run the "
                          "scheduler now",
                 NULL);
    __atomic_store_n(&s->last_tick_ms, now, __ATOMIC_RELAXED);

    collect_done(s, cfg, now);
    int64_t sleep_ms = SCHED_TICK_MAX_MS;
    if (leader) {
        sync_jobs(s, cat, woken, now);
        if (woken || now - s->last_state_ms >= STATE_REFRESH_MS) {
            refresh_paused(s, cfg);
            s->last_state_ms = now;
        }
        add_due(s, cfg, now);
        if (now - s->last_lost_ms >= LOST_EVERY_MS) {
            find_lost(s, cfg, now);
            s->last_lost_ms = now;
        }
        add_retries_due(s, cfg, now);
        dispatch(s, cfg, now);
        s->next_due_ms = -1;
        for (size_t i = 0; i < cfg->njobs; i++) {
            const struct job_config *jc = &cfg->jobs[i];
            struct sjob *sj = find_job(s, jc->name);
            if (!sj || !sj->cron)
                continue;
            /* from last_due: times left for the next call (due.h) make the next tick come at
             * once, but not in a loop if they could not be stored (the store away) */
            sj->next_ms = sched_next_ms(jc, sj->last_due_ms);
            int64_t wait = sj->next_ms - now < 50 ? 50 : sj->next_ms - now;
            if (!jc->enabled || sj->paused || sj->next_ms < 0)
                continue;
            if (s->next_due_ms < 0 || now + wait < s->next_due_ms)
                s->next_due_ms = now + wait;
            if (wait < sleep_ms)
                sleep_ms = wait;
        }
        for (struct retry *r = s->retries; r; r = r->next)
            if (r->due_ms - now < sleep_ms)
                sleep_ms = r->due_ms - now;
    }
    int64_t renew_every = cfg->scheduler.lease_s * 1000LL / 3;
    if (__atomic_load_n(&s->nactive, __ATOMIC_RELAXED) > 0) {
        if (woken || now - s->last_renew_ms >= renew_every) { /* woken: maybe a cancel */
            renew(s, cfg, now);
            s->last_renew_ms = now;
        }
        if (s->last_renew_ms + renew_every - now < sleep_ms)
            sleep_ms = s->last_renew_ms + renew_every - now;
    }
    catalog_release(cat);
    return sleep_ms < 0 ? 0 : sleep_ms;
}

static void *sched_main(void *arg)
{
    struct sched *s = arg;
    pthread_setname_np(pthread_self(), "sl-sched");
    for (;;) {
        int64_t ms = tick(s);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        /* just past the due time: a time is due once now >= it */
        int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000LL + 2000000LL;
        ts.tv_sec += ms / 1000 + ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_mutex_lock(&s->mu);
        while (!s->stop && !s->woken && !s->done &&
               pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0)
            ;
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
    }
    return NULL;
}

struct sched *sched_start(struct writer *writer, struct catalog_source *catalogs,
                          const char *store_uri, const char *node)
{
    struct sched *s = sl_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->writer = writer;
    s->catalogs = catalogs;
    s->store_uri = store_uri;
    s->next_due_ms = -1;
    snprintf(s->node, sizeof s->node, "%s", node);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->rcv, NULL);
    struct catalog *cat = catalog_get(catalogs);
    s->nrunners = cat->cfg.scheduler.max_running;
    catalog_release(cat);
    s->runners = sl_calloc((size_t)s->nrunners, sizeof *s->runners);
    int started = 0;
    if (s->runners)
        for (; started < s->nrunners; started++)
            if (pthread_create(&s->runners[started], NULL, runner_main, s) != 0)
                break;
    s->nrunners = started;
    if (!started || pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        pthread_mutex_lock(&s->mu);
        s->stop_runners = 1;
        pthread_cond_broadcast(&s->rcv);
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < started; i++)
            pthread_join(s->runners[i], NULL);
        free(s->runners);
        free(s);
        return NULL;
    }
    return s;
}

void sched_wake(struct sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->woken = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sched_stop(struct sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    for (struct srun *r = s->running; r; r = r->next)
        __atomic_store_n(&r->cancel, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL); /* no run is started from here on */
    pthread_mutex_lock(&s->mu);
    s->stop_runners = 1;
    for (struct srun *r = s->running; r; r = r->next) /* started by the last tick */
        __atomic_store_n(&r->cancel, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&s->rcv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->nrunners; i++)
        pthread_join(s->runners[i], NULL);
    while (s->done) {
        struct srun *r = s->done;
        s->done = r->next;
        free(r);
    }
    while (s->retries) {
        struct retry *r = s->retries;
        s->retries = r->next;
        free(r);
    }
    for (size_t i = 0; i < s->njobs; i++)
        free(s->jobs[i].cron);
    free(s->jobs);
    free(s->index);
    free(s->runners);
    store_close(s->st);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->rcv);
    free(s);
}

void sched_status(const struct sched *s, struct sched_status *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    out->running = 1;
    out->leader = __atomic_load_n(&s->leader, __ATOMIC_RELAXED);
    out->last_tick_ms = __atomic_load_n(&s->last_tick_ms, __ATOMIC_RELAXED);
    out->runs_active = __atomic_load_n(&s->nactive, __ATOMIC_RELAXED);
    snprintf(out->node, sizeof out->node, "%s", s->node);
}

void sched_metrics(struct sched *s, struct buf *out)
{
    struct sched_status st;
    sched_status(s, &st);
    buf_printf(out,
               "# HELP sluice_scheduler_last_tick_timestamp_seconds When this node's scheduler "
               "last ticked.\n# TYPE sluice_scheduler_last_tick_timestamp_seconds gauge\n"
               "sluice_scheduler_last_tick_timestamp_seconds %.3f\n"
               "# HELP sluice_scheduler_leader 1 when this node runs the scheduler.\n"
               "# TYPE sluice_scheduler_leader gauge\nsluice_scheduler_leader %d\n",
               (double)st.last_tick_ms / 1000.0, st.leader);
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    buf_appends(out, "# HELP sluice_job_runs_total Runs that ended on this node, by job, "
                     "trigger and state.\n# TYPE sluice_job_runs_total counter\n");
    for (size_t i = 0; i < s->njobs; i++)
        for (int t = 0; t < NTRIG; t++)
            for (int k = 0; k < NSTATE; k++)
                if (s->jobs[i].runs[t][k] || (t == 0 && k < 2))
                    buf_printf(out,
                               "sluice_job_runs_total{job=\"%s\",trigger=\"%s\",state=\"%s\"} "
                               "%llu\n",
                               s->jobs[i].name, triggers[t], states[k],
                               (unsigned long long)s->jobs[i].runs[t][k]);
    buf_appends(out, "# HELP sluice_job_run_duration_seconds How long runs took, by job.\n"
                     "# TYPE sluice_job_run_duration_seconds summary\n");
    for (size_t i = 0; i < s->njobs; i++)
        buf_printf(out,
                   "sluice_job_run_duration_seconds_sum{job=\"%s\"} %.6f\n"
                   "sluice_job_run_duration_seconds_count{job=\"%s\"} %llu\n",
                   s->jobs[i].name, s->jobs[i].dur_sum, s->jobs[i].name,
                   (unsigned long long)s->jobs[i].dur_count);
    buf_appends(out, "# HELP sluice_job_last_success_timestamp_seconds When a run of the job "
                     "last succeeded.\n# TYPE sluice_job_last_success_timestamp_seconds gauge\n");
    for (size_t i = 0; i < s->njobs; i++)
        if (s->jobs[i].last_success_ms)
            buf_printf(out, "sluice_job_last_success_timestamp_seconds{job=\"%s\"} %.3f\n",
                       s->jobs[i].name, (double)s->jobs[i].last_success_ms / 1000.0);
    pthread_mutex_unlock(&s->mu);
}
