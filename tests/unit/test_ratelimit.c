/*
 * test_ratelimit.c - the per-client token buckets (src/http/ratelimit.h): the
 * burst, Retry-After rounded up, refill with time, clients apart, the cap on
 * tracked clients with eviction, and exact counts when many threads take from
 * one bucket at once.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "http/ratelimit.h"
#include "http/server.h"

#define S 1000000000ull /* one second in ns */

Test(ratelimit, burst_then_refused_with_retry_after_rounded_up)
{
    struct ratelimit *rl = ratelimit_create(1000);
    cr_assert(rl);
    uint64_t t = 5 * S;
    for (int i = 0; i < 3; i++)
        cr_expect_eq(ratelimit_take(rl, "key:a", 0.5, 3, t, NULL), 0, "request %d of the burst", i);
    /* empty: one token comes every 2 s */
    cr_expect_eq(ratelimit_take(rl, "key:a", 0.5, 3, t, NULL), 2);
    /* 0.5 s later 0.25 token is there: 1.5 s to go, rounded up */
    cr_expect_eq(ratelimit_take(rl, "key:a", 0.5, 3, t + S / 2, NULL), 2);
    /* 1.5 s later 0.75: 0.5 s to go is still a whole second */
    cr_expect_eq(ratelimit_take(rl, "key:a", 0.5, 3, t + 3 * S / 2, NULL), 1);
    /* a refused request takes nothing: at 2 s the token is there */
    cr_expect_eq(ratelimit_take(rl, "key:a", 0.5, 3, t + 2 * S, NULL), 0);
    cr_expect_eq(ratelimit_take(rl, "key:a", 0.5, 3, t + 2 * S, NULL), 2);
    ratelimit_destroy(rl);
}

Test(ratelimit, refills_to_the_burst_and_no_more)
{
    struct ratelimit *rl = ratelimit_create(1000);
    uint64_t t = S;
    for (int i = 0; i < 10; i++)
        cr_expect_eq(ratelimit_take(rl, "ip:10.0.0.1", 10, 10, t, NULL), 0);
    cr_expect_eq(ratelimit_take(rl, "ip:10.0.0.1", 10, 10, t, NULL), 1);
    /* an hour idle: the bucket holds 10 again, not 36,000 */
    t += 3600 * S;
    int allowed = 0;
    while (ratelimit_take(rl, "ip:10.0.0.1", 10, 10, t, NULL) == 0)
        allowed++;
    cr_expect_eq(allowed, 10);
    /* a reload that lowers the burst caps what is there */
    t += 3600 * S;
    allowed = 0;
    while (ratelimit_take(rl, "ip:10.0.0.1", 10, 4, t, NULL) == 0)
        allowed++;
    cr_expect_eq(allowed, 4);
    /* a clock read a little earlier by another thread does not add or remove tokens */
    cr_expect_eq(ratelimit_take(rl, "ip:10.0.0.1", 10, 4, t - S / 1000, NULL), 1);
    ratelimit_destroy(rl);
}

Test(ratelimit, clients_are_apart)
{
    struct ratelimit *rl = ratelimit_create(1000);
    cr_expect_eq(ratelimit_take(rl, "key:a", 1, 1, S, NULL), 0);
    cr_expect_eq(ratelimit_take(rl, "key:a", 1, 1, S, NULL), 1);
    cr_expect_eq(ratelimit_take(rl, "key:b", 1, 1, S, NULL), 0, "b has its own bucket");
    cr_expect_eq(ratelimit_take(rl, "ip:key:a", 1, 1, S, NULL), 0);
    cr_expect_eq(ratelimit_tracked(rl), 3);
    ratelimit_destroy(rl);
}

Test(ratelimit, tracked_clients_are_capped_and_the_least_recent_evicted)
{
    struct ratelimit *rl = ratelimit_create(100); /* rounded up to 128 (64 stripes x 2) */
    cr_assert(rl);
    cr_expect_eq(ratelimit_capacity(rl), 128);
    char id[32];
    int evictions = 0;
    for (int i = 0; i < 10000; i++) {
        int ev = 0;
        snprintf(id, sizeof id, "ip:10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        cr_expect_eq(ratelimit_take(rl, id, 1, 1, (uint64_t)i * 1000, &ev), 0);
        evictions += ev;
    }
    cr_expect_eq(ratelimit_tracked(rl), 128, "the table never holds more than its capacity");
    cr_expect_eq(evictions, 10000 - 128);
    /* the most recent client is still tracked (its bucket is empty), the first is not */
    cr_expect_eq(ratelimit_take(rl, id, 1, 1, 10000ull * 1000, NULL), 1);
    int ev = 0;
    cr_expect_eq(ratelimit_take(rl, "ip:10.0.0.0", 1, 1, 10000ull * 1000, &ev), 0);
    cr_expect_eq(ev, 1, "the first client came back as a new one");
    ratelimit_destroy(rl);
}

struct hammer {
    struct ratelimit *rl;
    int allowed;
};

static void *hammer(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 20000; i++)
        h->allowed += ratelimit_take(h->rl, "key:shared", 1e-9, 5000, 42 * S, NULL) == 0;
    return NULL;
}

Test(ratelimit, threads_share_one_bucket_exactly)
{
    struct ratelimit *rl = ratelimit_create(1000);
    struct hammer h[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){rl, 0};
        pthread_create(&th[i], NULL, hammer, &h[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += h[i].allowed;
    }
    /* 80,000 requests at one instant: exactly the burst got through */
    cr_expect_eq(total, 5000);
    ratelimit_destroy(rl);
}

Test(ratelimit, destroy_accepts_null)
{
    ratelimit_destroy(NULL);
}

/* A request with the given X-Forwarded-For fields (NULL-terminated) and actor. */
static void client_of(const char *actor, const char *peer, char *const *proxies,
                      const char *const *xff, char *out, size_t cap)
{
    struct http_header h[4];
    struct http_request r = {.headers = h};
    snprintf(r.who.actor, sizeof r.who.actor, "%s", actor);
    h[r.nheaders++] = (struct http_header){"host", "x"};
    for (size_t i = 0; xff && xff[i]; i++)
        h[r.nheaders++] = (struct http_header){"x-forwarded-for", (char *)xff[i]};
    ratelimit_client(&r, peer, proxies, out, cap);
}

Test(ratelimit, client_is_the_credential_else_the_address)
{
    char out[192];
    char *proxies[] = {"10.0.0.5", "10.0.0.6", NULL};
    const char *one[] = {"203.0.113.7", NULL};
    client_of("key:abc123", "10.0.0.5", proxies, one, out, sizeof out);
    cr_expect_str_eq(out, "key:abc123", "a credential wins over any address");
    client_of("dev", "127.0.0.1", NULL, one, out, sizeof out);
    cr_expect_str_eq(out, "ip:127.0.0.1", "under dev_bypass: the address; no proxy trusted");
    client_of("", "192.0.2.1", proxies, one, out, sizeof out);
    cr_expect_str_eq(out, "ip:192.0.2.1", "X-Forwarded-For from a peer that is no proxy");
    client_of("", "10.0.0.5", proxies, one, out, sizeof out);
    cr_expect_str_eq(out, "ip:203.0.113.7");
    /* a chain over two fields: right to left, the first address that is no proxy */
    const char *chain[] = {"198.51.100.9, 203.0.113.7", " 10.0.0.6 ,10.0.0.5", NULL};
    client_of("", "10.0.0.5", proxies, chain, out, sizeof out);
    cr_expect_str_eq(out, "ip:203.0.113.7");
    /* only proxies, empty elements or nothing: the peer */
    const char *only[] = {"10.0.0.6, ,", NULL};
    client_of("", "10.0.0.5", proxies, only, out, sizeof out);
    cr_expect_str_eq(out, "ip:10.0.0.5");
    client_of("", "10.0.0.5", proxies, NULL, out, sizeof out);
    cr_expect_str_eq(out, "ip:10.0.0.5");
    /* an element too long for an address is not believed */
    char longv[200];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = 0;
    const char *lng[] = {longv, NULL};
    client_of("", "10.0.0.5", proxies, lng, out, sizeof out);
    cr_expect_str_eq(out, "ip:10.0.0.5");
}
