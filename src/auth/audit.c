/*
 * audit.c - buffered audit records and key-use stamps, written by writer jobs
 * (see audit.h).
 */
#include "auth/audit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "ingest/writer.h"
#include "util/log.h"

#define AUDIT_MAX_PENDING 100000 /* beyond this (the writer is stuck) records are dropped */

struct rec {
    struct rec *next;
    struct audit_new e;
    char buf[]; /* the strings */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct rec *head, *tail;
static size_t pending;
static int job_queued;
static unsigned long long dropped;

struct flush_job {
    struct wjob job;
    struct writer *w;
    struct rec *list;
};

static int flush_apply(struct wjob *job, struct store *st)
{
    struct flush_job *f = (struct flush_job *)job;
    pthread_mutex_lock(&mu);
    f->list = head;
    head = tail = NULL;
    pending = 0;
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
    unsigned long long lost = 0;
    for (struct rec *r = f->list, *n; r; r = n) {
        n = r->next;
        lost++;
        free(r);
    }
    if (result < 0) {
        pthread_mutex_lock(&mu);
        dropped += lost;
        pthread_mutex_unlock(&mu);
        log_error("audit", "records not stored", "\"records\":%llu", lost);
    }
    free(f);
}

/* Called with mu held. */
static void submit_locked(struct writer *w)
{
    if (job_queued || !head)
        return;
    struct flush_job *f = calloc(1, sizeof *f);
    if (!f)
        return;
    f->w = w;
    f->job.apply = flush_apply;
    f->job.deliver = flush_deliver;
    f->job.nrows = 1;
    job_queued = 1;
    if (writer_submit(w, &f->job) < 0) { /* full: the next note tries again */
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
    struct rec *r = malloc(sizeof *r + len);
    if (!r)
        return;
    char *p = r->buf;
    r->next = NULL;
    r->e = *e;
    r->e.actor = put(&p, e->actor);
    r->e.role = put(&p, e->role);
    r->e.method = put(&p, e->method);
    r->e.path = put(&p, e->path);
    r->e.remote = put(&p, e->remote);
    r->e.request_id = put(&p, e->request_id);
    pthread_mutex_lock(&mu);
    if (pending >= AUDIT_MAX_PENDING) {
        dropped++;
        free(r);
    } else {
        if (tail)
            tail->next = r;
        else
            head = r;
        tail = r;
        pending++;
    }
    submit_locked(w);
    pthread_mutex_unlock(&mu);
}

unsigned long long audit_dropped(void)
{
    pthread_mutex_lock(&mu);
    unsigned long long d = dropped;
    pthread_mutex_unlock(&mu);
    return d;
}

struct touch_job {
    struct wjob job;
    int64_t now_ms;
    size_t n;
    char ids[256][40];
};

static int touch_apply(struct wjob *job, struct store *st)
{
    struct touch_job *t = (struct touch_job *)job;
    for (size_t i = 0; i < t->n; i++)
        if (store_key_touch(st, t->ids[i], t->now_ms) < 0)
            return -1;
    return 0;
}

static void touch_deliver(struct wjob *job, int result)
{
    (void)result;
    free(job);
}

void audit_flush_key_use(struct writer *w, int64_t now_ms)
{
    struct touch_job *t = calloc(1, sizeof *t);
    if (!t)
        return;
    t->n = auth_take_used_keys(t->ids, 256);
    t->now_ms = now_ms;
    t->job.apply = touch_apply;
    t->job.deliver = touch_deliver;
    t->job.nrows = 1;
    if (t->n == 0 || writer_submit(w, &t->job) < 0)
        free(t);
}
