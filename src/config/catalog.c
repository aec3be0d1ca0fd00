/*
 * catalog.c - the configuration in force, reference-counted, and the per-thread caches of
 * it (catalog.h).
 */
#include "config/catalog.h"

#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

struct catalog *catalog_new(struct sluice_config *cfg)
{
    struct catalog *c = sl_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->refs = 1;
    c->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    return c;
}

struct catalog *catalog_ref(struct catalog *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void catalog_release(struct catalog *c)
{
    if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        config_release(&c->cfg);
        free(c);
    }
}

void catalog_source_init(struct catalog_source *s, struct catalog *first)
{
    pthread_mutex_init(&s->mu, NULL);
    s->cur = first;
    s->gen = 0;
}

struct catalog *catalog_get(struct catalog_source *s)
{
    pthread_mutex_lock(&s->mu);
    struct catalog *c = catalog_ref(s->cur);
    pthread_mutex_unlock(&s->mu);
    return c;
}

struct catalog *catalog_swap(struct catalog_source *s, struct catalog *next)
{
    pthread_mutex_lock(&s->mu);
    struct catalog *old = s->cur;
    s->cur = next;
    __atomic_store_n(&s->gen, s->gen + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->mu);
    return old;
}

/*
 * Why the fast path of catalog_cached() is correct without the mutex:
 * - what it references, k->cat, is kept alive by k's own reference, which only this
 *   thread drops (catalog_cache_sync/_release): incrementing it needs no lock, unlike
 *   reading s->cur, which a swap may release and free at any moment (hence the mutex
 *   for the refill);
 * - k->gen was read under the mutex together with the catalog then in force, so while the
 *   source's generation still equals it, no swap has happened since and k->cat is the
 *   catalog in force. A swap stores the new generation (release) before it unlocks; a
 *   thread that loads it (acquire) refills. A load that still sees the old generation
 *   is ordered before the swap, exactly as a catalog_get() that took the mutex first.
 * The generation is an unsigned long: it would have to wrap around between two requests
 * of one thread for a stale catalog to pass, 2^64 reloads.
 */
static void cache_fill(struct catalog_source *s, struct catalog_cache *k)
{
    pthread_mutex_lock(&s->mu);
    struct catalog *c = catalog_ref(s->cur);
    unsigned long gen = s->gen;
    pthread_mutex_unlock(&s->mu);
    catalog_release(k->cat);
    k->cat = c;
    k->gen = gen;
}

struct catalog *catalog_cached(struct catalog_source *s, struct catalog_cache *k)
{
    if (!k->cat || __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) != k->gen)
        cache_fill(s, k);
    return catalog_ref(k->cat);
}

void catalog_cache_sync(struct catalog_source *s, struct catalog_cache *k)
{
    if (k->cat && __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) != k->gen)
        cache_fill(s, k);
}

void catalog_cache_release(struct catalog_cache *k)
{
    catalog_release(k->cat);
    k->cat = NULL;
    k->gen = 0;
}

void catalog_source_destroy(struct catalog_source *s)
{
    catalog_release(s->cur);
    s->cur = NULL;
    pthread_mutex_destroy(&s->mu);
}
