/*
 * store_pool.c - see store_pool.h.
 */
#include "store/store_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/mem.h"

struct store_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *uri;
    int max, open; /* open: connections that exist, lent or idle */
    struct store **idle;
    int nidle;
};

struct store_pool *store_pool_create(const char *uri, int max)
{
    struct store_pool *p = sl_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->max = max > 0 ? max : 1;
    p->uri = sl_strdup(uri);
    p->idle = sl_calloc((size_t)p->max, sizeof *p->idle);
    if (!p->uri || !p->idle) {
        free(p->uri);
        free(p->idle);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return p;
}

void store_pool_destroy(struct store_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nidle; i++)
        store_close(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->idle);
    free(p->uri);
    free(p);
}

struct store *store_pool_take(struct store_pool *p, char *err, size_t errlen)
{
    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0 && p->open >= p->max)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->nidle > 0) {
        struct store *st = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return st;
    }
    p->open++; /* a place for the new one, opened outside the lock */
    pthread_mutex_unlock(&p->mu);
    struct store *st = store_open(p->uri, 0, err, errlen);
    if (!st) {
        pthread_mutex_lock(&p->mu);
        p->open--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return st;
}

void store_pool_give(struct store_pool *p, struct store *st, int ok)
{
    if (!st)
        return;
    pthread_mutex_lock(&p->mu);
    if (ok) {
        p->idle[p->nidle++] = st;
        st = NULL;
    } else {
        p->open--;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    store_close(st); /* accepts NULL */
}
