/*
 * writer.c - one thread that owns the write connection and commits jobs in
 * groups (see writer.h).
 */
#include "writer/writer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

/* While the store is away the writer refuses jobs at once and tries to reach it again
 * after a pause that doubles from the first to the second value. */
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 2000
/* Commits failing because a job's write failed on a store fault: an empty transaction
 * clears it only this long after the last such fault (writer.h). */
#define FAULT_HOLD_MS 30000

struct writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* jobs arrived or stop (CLOCK_MONOTONIC) */
    pthread_cond_t done_cv; /* a writer_run() job finished */
    struct wjob *head, *tail;
    int depth, max_depth, max_group_rows;
    int stopping;
    int healthy;       /* the store answered at the last try (jobs are refused while it is 0) */
    int failing;       /* the last transaction could not begin or commit, none committed since */
    uint64_t fault_ns; /* when a job's write last failed on a store fault (0: none since) */
    size_t fault_rows; /* the largest such job's rows (wjob.nrows) */
    unsigned long long commits, failures;
    int64_t last_commit_ms, last_failure_ms;
    char last_error[256];
    struct wjob *later;  /* writer_submit_later(), by due time (wjob.due_ns) */
    uint64_t traffic_ns; /* when a job that is not background was last queued (atomic) */
    struct store *st;
    void (*commit_seconds)(double seconds); /* writer_opts */
    /* the writer thread's own */
    int retry_ms;
    uint64_t retry_at_ns; /* the next ping (store away) or empty transaction (failing) */
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

static void backoff(struct writer *w, int first)
{
    w->retry_ms = first                            ? RETRY_FIRST_MS
                  : w->retry_ms * 2 < RETRY_MAX_MS ? w->retry_ms * 2
                                                   : RETRY_MAX_MS;
    w->retry_at_ns = clock_mono_ns() + (uint64_t)w->retry_ms * 1000000u;
}

/* A transaction of rows rows began and committed (a group's, or an empty one: 0 rows, not
 * counted). After a job's store fault only a group at least as large as the job clears the
 * state, or any transaction FAULT_HOLD_MS after the fault: a store that takes an empty
 * transaction or a few rows may still fail every large write (a full disk). Returns
 * whether commits count as succeeding now. */
static int note_commit(struct writer *w, size_t rows)
{
    pthread_mutex_lock(&w->mu);
    int was = w->failing;
    w->commits += rows != 0;
    w->last_commit_ms = clock_wall_ms();
    if (!w->fault_ns || (rows && rows >= w->fault_rows) ||
        clock_mono_ns() - w->fault_ns >= FAULT_HOLD_MS * 1000000ull) {
        w->failing = 0;
        w->fault_ns = 0;
        w->fault_rows = 0;
    }
    int cleared = !w->failing;
    pthread_mutex_unlock(&w->mu);
    if (was && cleared)
        log_info("writer", "commits succeed again", NULL);
    return cleared;
}

/* A write of rows rows failed on a store fault that an empty transaction does not prove
 * gone (not a lost connection): see note_commit(). Called with mu held. */
static void hold_locked(struct writer *w, size_t rows)
{
    if (!rows)
        return;
    w->fault_ns = clock_mono_ns();
    w->fault_rows = rows > w->fault_rows ? rows : w->fault_rows;
}

/* A transaction could not begin or commit, or a job's write failed on a store fault (then
 * hold_rows > 0 unless the connection was lost); what says which, error is the store's
 * message. */
static void note_failure_msg(struct writer *w, const char *what, const char *error,
                             size_t hold_rows)
{
    char m[600];
    log_error("writer", what, "\"error\":\"%s\"", log_json_str(m, sizeof m, error, (size_t)-1));
    pthread_mutex_lock(&w->mu);
    if (!w->failing)
        backoff(w, 1);
    w->failing = 1;
    w->failures++;
    w->last_failure_ms = clock_wall_ms();
    hold_locked(w, hold_rows);
    snprintf(w->last_error, sizeof w->last_error, "%s: %s", what, error);
    pthread_mutex_unlock(&w->mu);
}

static void note_failure(struct writer *w, const char *what)
{
    note_failure_msg(w, what, store_errmsg(w->st), 0);
}

/* The store failed: if it does not answer now, refuse jobs until it does. */
static void check_store(struct writer *w)
{
    if (store_ping(w->st) == 0)
        return;
    char m[600];
    log_error("writer", "the store is away: jobs are refused until it answers again",
              "\"error\":\"%s\"", log_json_str(m, sizeof m, store_errmsg(w->st), (size_t)-1));
    backoff(w, 1);
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
    backoff(w, 0);
}

/* Commits failed and no job came since: try an empty transaction, so that the health
 * checks turn green again without waiting for traffic (writer.h). */
static void probe_commit(struct writer *w)
{
    if (store_begin(w->st) < 0) {
        note_failure(w, "begin failed");
    } else if (store_commit(w->st) < 0) {
        note_failure(w, "commit failed");
        store_rollback(w->st);
    } else if (note_commit(w, 0)) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    backoff(w, 0);
    pthread_mutex_unlock(&w->mu);
    check_store(w);
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
    int fault = 0;             /* a job failed on a store fault */
    size_t hold = 0, rows = 0; /* the rows of the largest such job (see hold_locked); all */
    char fault_msg[512] = "";
    int ok = store_begin(w->st) == 0;
    if (!ok)
        note_failure(w, "begin failed");
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
        if (!single && j->applied >= 0 && store_savepoint_release(w->st) < 0)
            j->applied = -1;
        /* A job that failed on the store's fault (a full disk), not on its data: the group
         * counts as a failed commit for health, whatever the other jobs did (writer.h). */
        if (j->applied < 0 && store_fault(w->st)) {
            if (!fault)
                snprintf(fault_msg, sizeof fault_msg, "%s", store_errmsg(w->st));
            fault = 1;
            if (!store_conn_lost(w->st) && j->nrows > hold)
                hold = j->nrows;
        }
        rows += j->applied < 0 ? 0 : j->nrows;
        if (!single && j->applied < 0)
            store_savepoint_rollback(w->st);
        failed |= j->applied < 0;
    }
    /* What the group's jobs get: 0 committed, -1 nothing stored, or unknown. */
    int result = ok ? 0 : -1;
    if (ok && single && group->applied < 0) {
        store_rollback(w->st); /* a lone job that failed: undo it */
    } else if (ok) {
        uint64_t t0 = clock_mono_ns();
        result = store_commit(w->st);
        if (w->commit_seconds)
            w->commit_seconds((double)(clock_mono_ns() - t0) / 1e9);
        if (result < 0) {
            /* rows sent at COMMIT (PostgreSQL's COPY) that a read-only or full store refused */
            if (store_fault(w->st) && !store_conn_lost(w->st) && rows > hold)
                hold = rows;
            note_failure(w, result == STORE_COMMIT_UNKNOWN ? "commit outcome unknown"
                                                           : "commit failed");
            if (result != STORE_COMMIT_UNKNOWN) {
                store_rollback(w->st);
                result = -1;
            }
            failed = 1;
        } else if (!fault) {
            note_commit(w, rows ? rows : 1);
        }
    }
    if (fault && result == 0) { /* the others committed (a group), the job's write did not */
        note_failure_msg(w, "a write failed on a store fault", fault_msg, hold);
        pthread_mutex_lock(&w->mu);
        w->commits += !single;
        pthread_mutex_unlock(&w->mu);
    } else if (hold) { /* the COMMIT failed (and was counted) */
        pthread_mutex_lock(&w->mu);
        hold_locked(w, hold);
        pthread_mutex_unlock(&w->mu);
    }
    if (failed)
        check_store(w);
    deliver_all(group, result == STORE_COMMIT_UNKNOWN ? WRITER_UNKNOWN : result);
}

/* Put a job at the end of the queue. Called with mu held. */
static void append_locked(struct writer *w, struct wjob *job)
{
    job->next = NULL;
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->depth++;
}

/* Move the jobs submitted for later whose time came (all of them when stopping) to the
 * queue. Called with mu held. */
static void take_due(struct writer *w)
{
    uint64_t now = clock_mono_ns();
    while (w->later && (w->stopping || w->later->due_ns <= now)) {
        struct wjob *j = w->later;
        w->later = j->next;
        append_locked(w, j);
    }
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    pthread_setname_np(pthread_self(), "sl-writer");
    for (;;) {
        pthread_mutex_lock(&w->mu);
        /* Wait for jobs; while the store is away or commits fail, also for the time to
         * try it again; and for the first job submitted for later. */
        int probe = 0;
        for (;;) {
            take_due(w);
            if (w->head || w->stopping)
                break;
            uint64_t now = clock_mono_ns(), wake = UINT64_MAX;
            if (!w->healthy || w->failing) {
                if (now >= w->retry_at_ns) {
                    probe = w->healthy; /* else retry_store() below */
                    break;
                }
                wake = w->retry_at_ns;
            }
            if (w->later && w->later->due_ns < wake)
                wake = w->later->due_ns;
            if (wake == UINT64_MAX) {
                pthread_cond_wait(&w->cv, &w->mu);
                continue;
            }
            struct timespec ts = {(time_t)(wake / 1000000000u), (long)(wake % 1000000000u)};
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
        if (probe && !group)
            probe_commit(w);
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
    struct writer_opts o = {.queue_max_jobs = queue_max_jobs, .max_group_rows = max_group_rows};
    return writer_start_opts(uri, &o, err, errlen);
}

struct writer *writer_start_opts(const char *uri, const struct writer_opts *opts, char *err,
                                 size_t errlen)
{
    struct writer *w = sl_calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->st = store_open(uri, 0, err, errlen);
    if (!w->st) {
        free(w);
        return NULL;
    }
    if (opts->lock_wait_ms > 0 && store_lock_wait(w->st, opts->lock_wait_ms) < 0) {
        snprintf(err, errlen, "%s", store_errmsg(w->st));
        store_close(w->st);
        free(w);
        return NULL;
    }
    w->max_depth = opts->queue_max_jobs > 0 ? opts->queue_max_jobs : 1024;
    w->max_group_rows = opts->max_group_rows > 0 ? opts->max_group_rows : 50000;
    w->commit_seconds = opts->commit_seconds;
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
    append_locked(w, job);
    if (!job->background)
        __atomic_store_n(&w->traffic_ns, clock_mono_ns(), __ATOMIC_RELAXED);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

uint64_t writer_traffic_ns(struct writer *w)
{
    return __atomic_load_n(&w->traffic_ns, __ATOMIC_RELAXED);
}

int writer_submit(struct writer *w, struct wjob *job)
{
    return enqueue(w, job, 0);
}

int writer_submit_later(struct writer *w, struct wjob *job, unsigned delay_ms)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    if (job->nrows == 0)
        job->nrows = 1;
    job->due_ns = clock_mono_ns() + (uint64_t)delay_ms * 1000000u;
    struct wjob **p = &w->later;
    while (*p && (*p)->due_ns <= job->due_ns)
        p = &(*p)->next;
    job->next = *p;
    *p = job;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
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
                                 .deliver = sync_deliver,
                                 .background = job->background},
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

void writer_health(struct writer *w, struct writer_health *out)
{
    pthread_mutex_lock(&w->mu);
    *out = (struct writer_health){.store_answers = w->healthy,
                                  .commits_failing = w->failing,
                                  .commits = w->commits,
                                  .commit_failures = w->failures,
                                  .last_commit_ms = w->last_commit_ms,
                                  .last_failure_ms = w->last_failure_ms};
    snprintf(out->last_error, sizeof out->last_error, "%s", w->last_error);
    pthread_mutex_unlock(&w->mu);
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
