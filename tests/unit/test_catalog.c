/*
 * test_catalog.c - config/catalog.h: the reference counts of a catalog, the source's swap,
 * and a thread's catalog_cache: it hands out the catalog in force, follows a swap, lets go
 * of a replaced catalog on sync, and stays right with readers and a swapper running at once.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <string.h>

#include "config/catalog.h"

static struct catalog *make(void)
{
    struct sluice_config cfg;
    memset(&cfg, 0, sizeof cfg);
    struct catalog *c = catalog_new(&cfg);
    cr_assert_not_null(c);
    return c;
}

static int refs(struct catalog *c)
{
    return __atomic_load_n(&c->refs, __ATOMIC_ACQUIRE);
}

Test(catalog, cache_hands_out_the_catalog_in_force_and_follows_a_swap)
{
    struct catalog_source s;
    struct catalog *a = make();
    catalog_source_init(&s, a); /* the source has a's reference */
    struct catalog_cache k = {0};

    struct catalog *got = catalog_cached(&s, &k);
    cr_assert_eq(got, a);
    cr_assert_eq(refs(a), 3, "the source, the cache and the caller"); /* source, cache, got */
    catalog_release(got);
    got = catalog_cached(&s, &k); /* the lock-free path: one more reference, no other */
    cr_assert_eq(got, a);
    cr_assert_eq(refs(a), 3);
    catalog_release(got);

    struct catalog *b = make();
    struct catalog *old = catalog_swap(&s, b);
    cr_assert_eq(old, a);
    catalog_release(old);
    cr_assert_eq(refs(a), 1, "only the cache still holds the replaced catalog");
    got = catalog_cached(&s, &k);
    cr_assert_eq(got, b, "after a swap the cache hands out the new catalog");
    cr_assert_eq(refs(b), 3);
    catalog_release(got);

    catalog_cache_release(&k);
    cr_assert_null(k.cat);
    cr_assert_eq(refs(b), 1);
    catalog_source_destroy(&s);
}

Test(catalog, sync_lets_go_of_a_replaced_catalog)
{
    struct catalog_source s;
    struct catalog *a = make();
    catalog_source_init(&s, a);
    struct catalog_cache k = {0};
    catalog_release(catalog_cached(&s, &k));
    catalog_cache_sync(&s, &k); /* nothing changed: keeps a */
    cr_assert_eq(k.cat, a);

    struct catalog *b = make();
    catalog_ref(a); /* this test's own, to look at a's count afterwards */
    catalog_release(catalog_swap(&s, b));
    cr_assert_eq(refs(a), 2, "the test's and the cache's");
    catalog_cache_sync(&s, &k);
    cr_assert_eq(k.cat, b);
    cr_assert_eq(refs(a), 1, "the cache let go of a");
    catalog_release(a);

    struct catalog_cache empty = {0};
    catalog_cache_sync(&s, &empty); /* an empty cache stays empty */
    cr_assert_null(empty.cat);
    catalog_cache_release(&k);
    catalog_source_destroy(&s);
}

/* Readers take and drop references through their caches while a swapper replaces the
 * catalog; each catalog carries its number in cfg.idempotency_ttl_ms, which a reader must
 * never see go back, and every catalog must be freed at the end (ASan/LSan). */
#define SWAPS 2000

struct shared {
    struct catalog_source s;
    int stop;
};

static void *reader(void *arg)
{
    struct shared *sh = arg;
    struct catalog_cache k = {0};
    uint64_t last = 0;
    long bad = 0;
    while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
        struct catalog *c = catalog_cached(&sh->s, &k);
        uint64_t n = c->cfg.idempotency_ttl_ms;
        bad += n < last;
        last = n;
        catalog_release(c);
    }
    catalog_cache_release(&k);
    return (void *)bad;
}

Test(catalog, readers_and_a_swapper_at_once)
{
    struct shared sh = {.stop = 0};
    catalog_source_init(&sh.s, make());
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, reader, &sh), 0);
    for (uint64_t n = 1; n <= SWAPS; n++) {
        struct catalog *c = make();
        c->cfg.idempotency_ttl_ms = n;
        catalog_release(catalog_swap(&sh.s, c));
    }
    __atomic_store_n(&sh.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        cr_expect_eq((long)bad, 0, "a reader saw an older catalog after a newer one");
    }
    struct catalog_cache k = {0};
    struct catalog *c = catalog_cached(&sh.s, &k);
    cr_assert_eq(c->cfg.idempotency_ttl_ms, SWAPS);
    cr_assert_eq(refs(c), 3);
    catalog_release(c);
    catalog_cache_release(&k);
    catalog_source_destroy(&sh.s);
}
