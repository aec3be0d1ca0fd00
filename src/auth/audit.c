/*
 * audit.c - buffered audit records and key-use stamps, written by writer jobs
 * (see audit.h).
 */
#include "auth/audit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "writer/writer.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

/* Drops are logged at most this often (a stuck writer would otherwise log each request). */
#define DROP_LOG_EVERY_MS 10000

struct rec {
    struct rec *next;
    struct audit_new e;
    char buf[]; /* the strings */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct rec *head, *tail; /* waiting for a flush, oldest first */
static size_t held;             /* waiting + being flushed: what max_pending bounds */
static size_t max_pending = 100000;
static int job_queued; /* a flush job will take what waits */
static int retrying;
static unsigned long long dropped, flush_failures, drops_logged;
static int64_t last_drop_ms, last_drop_log_ms, last_failure_ms;

struct flush_job {
    struct wjob job;
    struct writer *w;
    struct rec *list; /* taken by apply(), the job's until deliver() */
    size_t n;
    int took;
};

static void free_list(struct rec *r)
{
    for (struct rec *n; r; r = n) {
        n = r->next;
        free(r);
    }
}

/* n records are lost. Called with mu held. */
static void drop_locked(unsigned long long n, const char *why)
{
    int64_t now = clock_wall_ms();
    dropped += n;
    last_drop_ms = now;
    if (now - last_drop_log_ms >= DROP_LOG_EVERY_MS) {
        log_error("audit", "records dropped", "\"reason\":\"%s\",\"dropped\":%llu,\"total\":%llu",
                  why, dropped - drops_logged, dropped);
        drops_logged = dropped;
        last_drop_log_ms = now;
    }
}

void audit_configure(int max)
{
    pthread_mutex_lock(&mu);
    max_pending = max > 0 ? (size_t)max : 1;
    pthread_mutex_unlock(&mu);
}

static int flush_apply(struct wjob *job, struct store *st)
{
    struct flush_job *f = (struct flush_job *)job;
    pthread_mutex_lock(&mu);
    f->list = head;
    f->n = 0;
    for (struct rec *r = head; r; r = r->next)
        f->n++;
    f->took = 1;
    head = tail = NULL;
    job_queued = 0; /* what is noted from now on needs a new job */
    pthread_mutex_unlock(&mu);
    for (struct rec *r = f->list; r; r = r->next)
        if (store_audit_add(st, &r->e) < 0)
            return -1;
    return 0;
}

static void submit_locked(struct writer *w);

static void flush_deliver(struct wjob *job, int result)
{
    struct flush_job *f = (struct flush_job *)job;
    pthread_mutex_lock(&mu);
    if (result == 0) { /* stored */
        held -= f->n;
        retrying = 0;
        pthread_mutex_unlock(&mu);
        free_list(f->list);
        free(f);
        return;
    }
    /* Not stored (writer.h: apply() may not even have run): the records go back to the
     * front of the queue, and a flush is tried again later. An unknown outcome
     * (WRITER_UNKNOWN) is retried too: an audit record twice is better than none. */
    flush_failures++;
    last_failure_ms = clock_wall_ms();
    retrying = 1;
    if (f->list) {
        struct rec *last = f->list;
        while (last->next)
            last = last->next;
        last->next = head;
        if (!head)
            tail = last;
        head = f->list;
    }
    if (!f->took)
        job_queued = 0; /* this job was the queued one */
    size_t n = held;
    log_warn("audit", "records not stored yet: the flush is tried again",
             "\"records\":%zu,\"retry_ms\":%d", n, AUDIT_RETRY_MS);
    if (!job_queued && head) {
        *f = (struct flush_job){.job = f->job, .w = f->w};
        f->job.next = NULL;
        job_queued = 1;
        if (writer_submit_later(f->w, &f->job, AUDIT_RETRY_MS) == 0) {
            pthread_mutex_unlock(&mu);
            return;
        }
        /* the writer is stopping: nothing will store them */
        job_queued = 0;
        struct rec *lost = head;
        head = tail = NULL;
        held = 0;
        drop_locked(n, "the writer stopped before they could be stored");
        pthread_mutex_unlock(&mu);
        free_list(lost);
        free(f);
        return;
    }
    pthread_mutex_unlock(&mu);
    free(f);
}

/* Called with mu held. */
static void submit_locked(struct writer *w)
{
    if (job_queued || !head)
        return;
    struct flush_job *f = sl_calloc(1, sizeof *f);
    if (!f)
        return;
    f->w = w;
    f->job.apply = flush_apply;
    f->job.deliver = flush_deliver;
    f->job.nrows = 1;
    job_queued = 1;
    /* While retrying, the retry job is queued already; else the queue may be full: the
     * next note tries again. */
    if (writer_submit(w, &f->job) < 0) {
        job_queued = 0;
        free(f);
    }
}

static char *put(char **p, const char *s)
{
    if (!s)
        return NULL;
    char *d = *p;
    size_t n = strlen(s) + 1;
    memcpy(d, s, n);
    *p += n;
    return d;
}

void audit_note(struct writer *w, const struct audit_new *e)
{
    const char *strs[] = {e->actor, e->role, e->method, e->path, e->remote, e->request_id};
    size_t len = 0;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        len += strs[i] ? strlen(strs[i]) + 1 : 0;
    struct rec *r = sl_malloc(sizeof *r + len);
    pthread_mutex_lock(&mu);
    if (!r) {
        drop_locked(1, "out of memory");
        pthread_mutex_unlock(&mu);
        return;
    }
    char *p = r->buf;
    r->next = NULL;
    r->e = *e;
    r->e.actor = put(&p, e->actor);
    r->e.role = put(&p, e->role);
    r->e.method = put(&p, e->method);
    r->e.path = put(&p, e->path);
    r->e.remote = put(&p, e->remote);
    r->e.request_id = put(&p, e->request_id);
    if (held >= max_pending) {
        drop_locked(1, "audit.max_pending records are waiting");
        free(r);
    } else {
        if (tail)
            tail->next = r;
        else
            head = r;
        tail = r;
        held++;
    }
    submit_locked(w);
    pthread_mutex_unlock(&mu);
}

void audit_stats(struct audit_stats *out)
{
    pthread_mutex_lock(&mu);
    *out = (struct audit_stats){.pending = held,
                                .dropped = dropped,
                                .flush_failures = flush_failures,
                                .retrying = retrying,
                                .last_drop_ms = last_drop_ms,
                                .last_failure_ms = last_failure_ms};
    pthread_mutex_unlock(&mu);
}

unsigned long long audit_dropped(void)
{
    pthread_mutex_lock(&mu);
    unsigned long long d = dropped;
    pthread_mutex_unlock(&mu);
    return d;
}

/* ---- key-use stamps ---------------------------------------------------------------- */

#define TOUCH_MAX 256

struct stamp {
    char id[40];
    int64_t ms;
};

/* Stamps a failed job could not store, merged into the next job. */
static pthread_mutex_t touch_mu = PTHREAD_MUTEX_INITIALIZER;
static struct stamp unstored[TOUCH_MAX];
static size_t nunstored;

struct touch_job {
    struct wjob job;
    size_t n;
    struct stamp s[TOUCH_MAX];
};

/* Add a stamp to a set of them (the later time wins); 0, or -1 when the set is full. */
static int stamp_merge(struct stamp *set, size_t *n, const char *id, int64_t ms)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(set[i].id, id) == 0) {
            if (ms > set[i].ms)
                set[i].ms = ms;
            return 0;
        }
    if (*n >= TOUCH_MAX)
        return -1;
    snprintf(set[*n].id, sizeof set[*n].id, "%s", id);
    set[(*n)++].ms = ms;
    return 0;
}

static int touch_apply(struct wjob *job, struct store *st)
{
    struct touch_job *t = (struct touch_job *)job;
    for (size_t i = 0; i < t->n; i++)
        if (store_key_touch(st, t->s[i].id, t->s[i].ms) < 0)
            return -1;
    return 0;
}

/* Give stamps back to be stored by the next job. */
static void touch_keep(const struct touch_job *t)
{
    pthread_mutex_lock(&touch_mu);
    for (size_t i = 0; i < t->n; i++)
        stamp_merge(unstored, &nunstored, t->s[i].id, t->s[i].ms); /* full: a key's stamp is
                                                                      renewed by its next use */
    pthread_mutex_unlock(&touch_mu);
}

static void touch_deliver(struct wjob *job, int result)
{
    struct touch_job *t = (struct touch_job *)job;
    if (result != 0) {
        log_warn("audit", "API key last-use stamps not stored: tried again at the next flush",
                 "\"keys\":%zu", t->n);
        touch_keep(t);
    }
    free(t);
}

void audit_flush_key_use(struct writer *w, int64_t now_ms)
{
    struct touch_job *t = sl_calloc(1, sizeof *t);
    if (!t)
        return;
    char ids[TOUCH_MAX][40];
    size_t n = auth_take_used_keys(ids, TOUCH_MAX);
    pthread_mutex_lock(&touch_mu);
    memcpy(t->s, unstored, nunstored * sizeof unstored[0]);
    t->n = nunstored;
    nunstored = 0;
    pthread_mutex_unlock(&touch_mu);
    for (size_t i = 0; i < n; i++)
        stamp_merge(t->s, &t->n, ids[i], now_ms);
    t->job.apply = touch_apply;
    t->job.deliver = touch_deliver;
    t->job.nrows = 1;
    if (t->n == 0) {
        free(t);
    } else if (writer_submit(w, &t->job) < 0) {
        touch_keep(t);
        free(t);
    }
}
