/*
 * catalog.h - the configuration in force, as every part of the running service sees it.
 *
 * A catalog is one loaded configuration, immutable once made and reference-counted: a
 * request, a batch pass or a sentinel tick takes a reference for as long as it needs the
 * datasets, and a reload swaps in a new catalog without disturbing anyone who holds the old
 * one (the last catalog_release() frees it).
 *
 * The catalog source is the slot that holds the catalog in force. It belongs to the service
 * (service.c makes it, swaps it on reload, destroys it at stop); every other part borrows a
 * pointer to it and calls catalog_get(). Any thread.
 *
 * A thread that takes the catalog very often (an HTTP loop, once per request) keeps a
 * catalog_cache instead: catalog_cached() then costs one atomic load of the source's
 * generation and one reference count increment, with no mutex, as long as no reload
 * happened since the cache was filled.
 */
#ifndef SLUICE_CONFIG_CATALOG_H
#define SLUICE_CONFIG_CATALOG_H

#include <pthread.h>

#include "config/config.h"

struct catalog {
    int refs; /* atomic */
    struct sluice_config cfg;
};

/* A catalog holding *cfg, whose contents it takes (cfg is zeroed), with one reference for
 * the caller. NULL when out of memory: then cfg is untouched and still the caller's. */
struct catalog *catalog_new(struct sluice_config *cfg);
/* Another reference to c (not NULL). */
struct catalog *catalog_ref(struct catalog *c);
/* Drop a reference; the last frees the catalog and its configuration. Accepts NULL. */
void catalog_release(struct catalog *c);

struct catalog_source {
    pthread_mutex_t mu;
    struct catalog *cur; /* under mu; never NULL between init and destroy */
    unsigned long gen;   /* bumped by every swap; written under mu, read atomically */
};

/* The source starts with first, whose reference it takes. */
void catalog_source_init(struct catalog_source *s, struct catalog *first);
/* A new reference to the catalog in force. Release it with catalog_release(). */
struct catalog *catalog_get(struct catalog_source *s);
/* Put next in force (its reference is taken) and hand back the one it replaces (the
 * caller releases it, after comparing the two if it likes). */
struct catalog *catalog_swap(struct catalog_source *s, struct catalog *next);
/* Release the catalog in force. No catalog_get() may come after. */
void catalog_source_destroy(struct catalog_source *s);

/*
 * One thread's copy of the catalog in force: a reference of its own and the source's
 * generation when it was taken. Owned by that thread (never shared); starts zeroed.
 */
struct catalog_cache {
    struct catalog *cat; /* a reference, or NULL */
    unsigned long gen;
};

/*
 * A new reference to the catalog in force, as catalog_get(), through the thread's cache k:
 * without a lock while s has not been swapped since k was filled, else refilled under the
 * mutex. Release it with catalog_release().
 */
struct catalog *catalog_cached(struct catalog_source *s, struct catalog_cache *k);
/* Refill k if s was swapped meanwhile, so that k does not keep a replaced catalog alive
 * (a thread calls it now and then, e.g. on a timer). */
void catalog_cache_sync(struct catalog_source *s, struct catalog_cache *k);
/* Drop k's reference (before the source is destroyed). */
void catalog_cache_release(struct catalog_cache *k);

#endif
