/*
 * rowqueue.c - chunks of rows from a batch's worker to the writer (see rowqueue.h).
 */
#include "batch/rowqueue.h"
#include "util/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_MIN (256 * 1024)

struct rowqueue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t nfields;
    struct rq_chunk *full_head, *full_tail; /* produced, not yet taken */
    struct rq_chunk *free_list;             /* given back */
    int allocated;
    struct rq_chunk *filling; /* the producer's, outside the lists */
    int finished, failed, aborted;
    int max_chunks, nfull; /* the bound; chunks in the full list */
};

struct rowqueue *rowqueue_new(size_t nfields, int chunks)
{
    struct rowqueue *q = sl_calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->max_chunks = chunks > 0 ? chunks : RQ_CHUNKS;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->nfields = nfields;
    return q;
}

static void chunk_clear(struct rq_chunk *c)
{
    for (size_t i = 0; i < c->n; i++) {
        row_errors_release(&c->rows[i].errs);
        free(c->rows[i].extra);
        free(c->rows[i].errors_json);
        free(c->rows[i].codes);
    }
    c->n = 0;
    c->used = 0;
    c->next = NULL;
}

static void chunk_free(struct rq_chunk *c)
{
    if (!c)
        return;
    chunk_clear(c);
    free(c->vals);
    free(c->arena);
    free(c);
}

void rowqueue_free(struct rowqueue *q)
{
    if (!q)
        return;
    for (struct rq_chunk *c = q->full_head, *n; c; c = n) {
        n = c->next;
        chunk_free(c);
    }
    for (struct rq_chunk *c = q->free_list, *n; c; c = n) {
        n = c->next;
        chunk_free(c);
    }
    chunk_free(q->filling);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

/* Hand the filling chunk to the consumer. Called with q->mu held. */
static void publish(struct rowqueue *q)
{
    struct rq_chunk *c = q->filling;
    q->filling = NULL;
    if (!c)
        return;
    if (c->n == 0) {
        c->next = q->free_list;
        q->free_list = c;
        return;
    }
    c->next = NULL;
    if (q->full_tail)
        q->full_tail->next = c;
    else
        q->full_head = c;
    q->full_tail = c;
    q->nfull++;
    pthread_cond_broadcast(&q->cv);
}

/* A chunk to fill: a given-back one, a new one while under max_chunks, or wait.
 * Called with q->mu held; NULL when the consumer aborted or memory ran out. */
static struct rq_chunk *get_chunk(struct rowqueue *q)
{
    for (;;) {
        if (q->aborted)
            return NULL;
        if (q->free_list) {
            struct rq_chunk *c = q->free_list;
            q->free_list = c->next;
            c->next = NULL;
            return c;
        }
        if (q->allocated < q->max_chunks) {
            struct rq_chunk *c = sl_calloc(1, sizeof *c);
            if (c) {
                c->vals = sl_calloc(RQ_CHUNK_ROWS * (q->nfields ? q->nfields : 1), sizeof *c->vals);
                c->arena = sl_malloc(ARENA_MIN);
                c->cap = ARENA_MIN;
            }
            if (!c || !c->vals || !c->arena) {
                chunk_free(c);
                return NULL;
            }
            q->allocated++;
            return c;
        }
        pthread_cond_wait(&q->cv, &q->mu);
    }
}

static char *arena_copy(struct rq_chunk *c, const char *p, size_t n)
{
    char *dst = c->arena + c->used;
    if (n)
        memcpy(dst, p, n);
    c->used += n;
    return dst;
}

int rowqueue_put(struct rowqueue *q, int64_t rowno, const char *raw, size_t raw_len,
                 const struct row_value *vals, struct row_errors *errs, char *extra,
                 char *errors_json, char *codes)
{
    size_t need = raw_len;
    if (vals)
        for (size_t i = 0; i < q->nfields; i++)
            if (vals[i].kind == VAL_TEXT)
                need += vals[i].u.s.n;
    pthread_mutex_lock(&q->mu);
    struct rq_chunk *c = q->filling;
    if (c && (c->n == RQ_CHUNK_ROWS || c->used + need > c->cap)) {
        publish(q);
        c = NULL;
    }
    if (!c)
        c = q->filling = get_chunk(q);
    pthread_mutex_unlock(&q->mu);
    if (!c) {
        free(extra);
        free(errors_json);
        free(codes);
        return -1;
    }
    if (need > c->cap) { /* one row larger than an arena: the chunk is empty, so grow it */
        char *a = sl_realloc(c->arena, need);
        if (!a) {
            free(extra);
            free(errors_json);
            free(codes);
            return -1;
        }
        c->arena = a;
        c->cap = need;
    }
    struct rq_row *r = &c->rows[c->n];
    r->rowno = rowno;
    r->raw = arena_copy(c, raw, raw_len);
    r->raw_len = raw_len;
    r->errs = *errs;
    memset(errs, 0, sizeof *errs);
    r->extra = extra;
    r->errors_json = errors_json;
    r->codes = codes;
    r->vals = NULL;
    if (vals) {
        struct row_value *v = &c->vals[c->n * q->nfields];
        for (size_t i = 0; i < q->nfields; i++) {
            v[i] = vals[i];
            if (v[i].kind == VAL_TEXT)
                v[i].u.s.p = arena_copy(c, vals[i].u.s.p, vals[i].u.s.n);
        }
        r->vals = v;
    }
    c->n++;
    return 0;
}

void rowqueue_finish(struct rowqueue *q, int failed)
{
    pthread_mutex_lock(&q->mu);
    publish(q);
    q->finished = 1;
    q->failed = failed;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* The first full chunk, taken off the list, or NULL. Called with q->mu held. */
static struct rq_chunk *pop(struct rowqueue *q)
{
    struct rq_chunk *c = q->full_head;
    if (c) {
        q->full_head = c->next;
        if (!q->full_head)
            q->full_tail = NULL;
        c->next = NULL;
        q->nfull--;
    }
    return c;
}

struct rq_chunk *rowqueue_take(struct rowqueue *q)
{
    pthread_mutex_lock(&q->mu);
    while (!q->full_head && !q->finished)
        pthread_cond_wait(&q->cv, &q->mu);
    struct rq_chunk *c = pop(q);
    pthread_mutex_unlock(&q->mu);
    return c;
}

struct rq_chunk *rowqueue_try_take(struct rowqueue *q, int *ended)
{
    pthread_mutex_lock(&q->mu);
    struct rq_chunk *c = pop(q);
    *ended = !c && q->finished;
    pthread_mutex_unlock(&q->mu);
    return c;
}

void rowqueue_wait_ready(struct rowqueue *q, int want)
{
    pthread_mutex_lock(&q->mu);
    while (q->nfull < want && !q->finished && !q->aborted)
        pthread_cond_wait(&q->cv, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

void rowqueue_give_back(struct rowqueue *q, struct rq_chunk *c)
{
    chunk_clear(c);
    pthread_mutex_lock(&q->mu);
    c->next = q->free_list;
    q->free_list = c;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

int rowqueue_failed(struct rowqueue *q)
{
    pthread_mutex_lock(&q->mu);
    int f = q->failed;
    pthread_mutex_unlock(&q->mu);
    return f;
}

void rowqueue_abort(struct rowqueue *q)
{
    pthread_mutex_lock(&q->mu);
    q->aborted = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}
