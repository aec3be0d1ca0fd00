/*
 * writer.c - one thread that owns the write connection and commits jobs in
 * groups (see writer.h).
 */
#include "ingest/writer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"

/* While the store is away the writer refuses jobs at once and tries to reach it again
 * after a pause that doubles from the first to the second value. */
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 2000

struct writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* jobs arrived or stop (CLOCK_MONOTONIC) */
    pthread_cond_t done_cv; /* a writer_run() job finished */
    struct wjob *head, *tail;
    int depth, max_depth, max_group_rows;
    int stopping;
    int healthy; /* the store answered at the last try (jobs are refused while it is 0) */
    unsigned long long commits;
    struct store *st;
    /* the writer thread's own */
    int retry_ms;
    uint64_t retry_at_ns;
};

/* writer_run() waits on this wrapper. */
struct sync_job {
    struct wjob job;
    struct wjob *inner;
    int done, result;
    struct writer *w;
};

/* A job that will not be applied: whoever feeds its apply() is told. */
static void skip(struct wjob *j)
{
    j->applied = -1;
    if (j->skip)
        j->skip(j);
}

static void set_healthy(struct writer *w, int healthy)
{
    pthread_mutex_lock(&w->mu);
    w->healthy = healthy;
    pthread_mutex_unlock(&w->mu);
}

/* The store failed: if it does not answer now, refuse jobs until it does. */
static void check_store(struct writer *w)
{
    if (store_ping(w->st) == 0)
        return;
    char m[600];
    log_error("writer", "the store is away: jobs are refused until it answers again",
              "\"error\":\"%s\"", log_json_str(m, sizeof m, store_errmsg(w->st), (size_t)-1));
    w->retry_ms = RETRY_FIRST_MS;
    w->retry_at_ns = clock_mono_ns() + (uint64_t)w->retry_ms * 1000000u;
    set_healthy(w, 0);
}

/* The pause is over: try the store again. */
static void retry_store(struct writer *w)
{
    if (store_ping(w->st) == 0) {
        log_info("writer", "the store answers again", NULL);
        set_healthy(w, 1);
        return;
    }
    w->retry_ms = w->retry_ms * 2 < RETRY_MAX_MS ? w->retry_ms * 2 : RETRY_MAX_MS;
    w->retry_at_ns = clock_mono_ns() + (uint64_t)w->retry_ms * 1000000u;
}

static void deliver_all(struct wjob *group, int result)
{
    for (struct wjob *j = group, *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        j->deliver(j, j->applied < 0 ? -1 : result);
    }
}

/* Undo what a job that asked to run again did: its savepoint (a new one for the second
 * run), or the transaction of a lone job. */
static int undo_for_again(struct writer *w, int single)
{
    if (single)
        return store_rollback(w->st) < 0 ? -1 : store_begin(w->st);
    return store_savepoint_rollback(w->st) < 0 ? -1 : store_savepoint(w->st);
}

static void run_group(struct writer *w, struct wjob *group)
{
    int single = group->next == NULL, failed = 0;
    int ok = store_begin(w->st) == 0;
    char m[600];
    if (!ok)
        log_error("writer", "begin failed", "\"error\":\"%s\"",
                  log_json_str(m, sizeof m, store_errmsg(w->st), (size_t)-1));
    for (struct wjob *j = group; j; j = j->next) {
        if (!ok || (!single && store_savepoint(w->st) < 0)) {
            skip(j);
            failed = 1;
            continue;
        }
        j->applied = j->apply(j, w->st);
        if (j->applied == WJOB_AGAIN) /* undone, and once more (writer.h) */
            j->applied = undo_for_again(w, single) < 0 ? -1 : j->apply(j, w->st);
        if (j->applied == WJOB_AGAIN)
            j->applied = -1;
        /* A store may send a job's rows only when the job ends (PostgreSQL's COPY), so the
         * release can fail too: the job is then undone like one whose apply failed. */
        if (!single && (j->applied < 0 || store_savepoint_release(w->st) < 0)) {
            j->applied = -1;
            store_savepoint_rollback(w->st);
        }
        failed |= j->applied < 0;
    }
    /* What the group's jobs get: 0 committed, -1 nothing stored, or unknown. */
    int result = ok ? 0 : -1;
    if (ok && single && group->applied < 0) {
        store_rollback(w->st); /* a lone job that failed: undo it */
    } else if (ok && (result = store_commit(w->st)) < 0) {
        log_error("writer",
                  result == STORE_COMMIT_UNKNOWN ? "commit outcome unknown" : "commit failed",
                  "\"error\":\"%s\"", log_json_str(m, sizeof m, store_errmsg(w->st), (size_t)-1));
        if (result != STORE_COMMIT_UNKNOWN) {
            store_rollback(w->st);
            result = -1;
        }
        failed = 1;
    } else if (ok) {
        pthread_mutex_lock(&w->mu);
        w->commits++;
        pthread_mutex_unlock(&w->mu);
    }
    if (failed)
        check_store(w);
    deliver_all(group, result == STORE_COMMIT_UNKNOWN ? WRITER_UNKNOWN : result);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    pthread_setname_np(pthread_self(), "sl-writer");
    for (;;) {
        pthread_mutex_lock(&w->mu);
        /* Wait for jobs; while the store is away, also for the time to try it again. */
        while (!w->head && !w->stopping) {
            if (w->healthy) {
                pthread_cond_wait(&w->cv, &w->mu);
                continue;
            }
            if (clock_mono_ns() >= w->retry_at_ns)
                break;
            struct timespec ts = {(time_t)(w->retry_at_ns / 1000000000u),
                                  (long)(w->retry_at_ns % 1000000000u)};
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        if (!w->head && w->stopping) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        /* Take jobs up to the group's row budget (at least one). */
        struct wjob *group = w->head, *last = w->head;
        if (group) {
            size_t rows = last->nrows;
            w->depth--;
            while (last->next && rows + last->next->nrows <= (size_t)w->max_group_rows) {
                last = last->next;
                rows += last->nrows;
                w->depth--;
            }
            w->head = last->next;
            if (!w->head)
                w->tail = NULL;
            last->next = NULL;
        }
        int healthy = w->healthy;
        pthread_mutex_unlock(&w->mu);
        if (!healthy && clock_mono_ns() >= w->retry_at_ns) {
            retry_store(w);
            healthy = writer_healthy(w);
        }
        if (group && healthy) {
            run_group(w, group);
        } else if (group) { /* refused at once: the client hears 503 now, not later */
            for (struct wjob *j = group; j; j = j->next)
                skip(j);
            deliver_all(group, -1);
        }
    }
    return NULL;
}

struct writer *writer_start(const char *uri, int queue_max_jobs, int max_group_rows, char *err,
                            size_t errlen)
{
    struct writer *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->st = store_open(uri, 0, err, errlen);
    if (!w->st) {
        free(w);
        return NULL;
    }
    w->max_depth = queue_max_jobs > 0 ? queue_max_jobs : 1024;
    w->max_group_rows = max_group_rows > 0 ? max_group_rows : 50000;
    w->healthy = 1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* clock_mono_ns()'s clock */
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&w->done_cv, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        snprintf(err, errlen, "cannot start the writer thread");
        store_close(w->st);
        free(w);
        return NULL;
    }
    return w;
}

static int enqueue(struct writer *w, struct wjob *job, int force)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopping || (!force && w->depth >= w->max_depth)) {
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    if (job->nrows == 0)
        job->nrows = 1;
    job->next = NULL;
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->depth++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int writer_submit(struct writer *w, struct wjob *job)
{
    return enqueue(w, job, 0);
}

static int sync_apply(struct wjob *job, struct store *st)
{
    struct sync_job *s = (struct sync_job *)job;
    return s->inner->apply(s->inner, st);
}

static void sync_skip(struct wjob *job)
{
    struct sync_job *s = (struct sync_job *)job;
    skip(s->inner);
}

static void sync_deliver(struct wjob *job, int result)
{
    struct sync_job *s = (struct sync_job *)job;
    pthread_mutex_lock(&s->w->mu);
    s->done = 1;
    s->result = result;
    pthread_cond_broadcast(&s->w->done_cv);
    pthread_mutex_unlock(&s->w->mu);
}

int writer_run(struct writer *w, struct wjob *job)
{
    return writer_run_with(w, job, NULL, NULL);
}

int writer_run_with(struct writer *w, struct wjob *job, void (*meanwhile)(void *arg), void *arg)
{
    struct sync_job s = {.job = {.nrows = job->nrows ? job->nrows : 1,
                                 .apply = sync_apply,
                                 .skip = sync_skip,
                                 .deliver = sync_deliver},
                         .inner = job,
                         .w = w};
    if (enqueue(w, &s.job, 1) < 0)
        return -1;
    if (meanwhile)
        meanwhile(arg);
    pthread_mutex_lock(&w->mu);
    while (!s.done)
        pthread_cond_wait(&w->done_cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return s.result;
}

int writer_queue_depth(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    int d = w->depth;
    pthread_mutex_unlock(&w->mu);
    return d;
}

int writer_queue_max(struct writer *w)
{
    return w->max_depth;
}

int writer_healthy(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    int h = w->healthy;
    pthread_mutex_unlock(&w->mu);
    return h;
}

unsigned long long writer_commits(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    unsigned long long c = w->commits;
    pthread_mutex_unlock(&w->mu);
    return c;
}

void writer_stop(struct writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    store_close(w->st);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->done_cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
