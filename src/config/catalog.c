/*
 * catalog.c - the configuration in force, reference-counted (catalog.h).
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
    pthread_mutex_unlock(&s->mu);
    return old;
}

void catalog_source_destroy(struct catalog_source *s)
{
    catalog_release(s->cur);
    s->cur = NULL;
    pthread_mutex_destroy(&s->mu);
}
