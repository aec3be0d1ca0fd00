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
#include "util/log.h"

struct writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* jobs arrived or stop */
    pthread_cond_t done_cv; /* a writer_run() job finished */
    struct wjob *head, *tail;
    int depth, max_depth, max_group_rows;
    int stopping;
    int healthy;
    unsigned long long commits;
    struct store *st;
};

/* writer_run() waits on this wrapper. */
struct sync_job {
    struct wjob job;
    struct wjob *inner;
    int done, result;
    struct writer *w;
};

static void run_group(struct writer *w, struct wjob *group)
{
    int ok = store_begin(w->st) == 0;
    if (!ok)
        log_error("writer", "begin failed", "\"error\":\"%s\"", store_errmsg(w->st));
    for (struct wjob *j = group; ok && j; j = j->next) {
        int single = (group->next == NULL);
        if (!single && store_savepoint(w->st) < 0) {
            j->applied = -1;
            continue;
        }
        j->applied = j->apply(j, w->st);
        /* A store may send a job's rows only when the job ends (PostgreSQL's COPY), so the
         * release can fail too: the job is then undone like one whose apply failed. */
        if (!single && (j->applied < 0 || store_savepoint_release(w->st) < 0)) {
            j->applied = -1;
            store_savepoint_rollback(w->st);
        }
    }
    int committed = 0;
    if (ok && group->next == NULL && group->applied < 0) {
        /* A lone job that failed: undo it. */
        store_rollback(w->st);
    } else if (ok && store_commit(w->st) < 0) {
        log_error("writer", "commit failed", "\"error\":\"%s\"", store_errmsg(w->st));
        store_rollback(w->st);
        ok = 0;
    } else if (ok) {
        committed = 1;
    }
    pthread_mutex_lock(&w->mu);
    w->healthy = ok;
    if (committed)
        w->commits++;
    pthread_mutex_unlock(&w->mu);
    for (struct wjob *j = group, *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        j->deliver(j, ok ? j->applied : -1);
    }
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head && w->stopping) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        /* Take jobs up to the group's row budget (at least one). */
        struct wjob *group = w->head, *last = w->head;
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
        pthread_mutex_unlock(&w->mu);
        run_group(w, group);
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
    pthread_cond_init(&w->cv, NULL);
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
    struct sync_job s = {
        .job = {.nrows = job->nrows ? job->nrows : 1, .apply = sync_apply, .deliver = sync_deliver},
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
