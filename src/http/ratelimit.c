/*
 * ratelimit.c - the token-bucket table behind per-client rate limits, who a
 * request counts against, and the decision for one admitted request (see
 * ratelimit.h for the contract).
 *
 * Layout: NSTRIPES stripes, each a mutex and a fixed array of slots. A client
 * is known by a 64-bit keyed hash of its id (the seed is drawn at creation, so
 * nobody can aim two ids at one bucket): its top bits pick the stripe, the rest
 * the first slot of a window of PROBE slots. Nothing is ever deleted, only
 * replaced, so a lookup stops at the first empty slot of its window.
 */
#include "http/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "config/config.h"
#include "http/router.h"
#include "http/server.h"
#include "ops/metrics.h"
#include "util/clock.h"
#include "util/mem.h"

#define NSTRIPES 64
#define PROBE 8

struct slot {
    uint64_t key; /* 0: empty */
    uint64_t last_ns;
    double tokens;
};

struct stripe {
    pthread_mutex_t mu;
    struct slot *slots;
} __attribute__((aligned(64))); /* one cache line per lock: loops do not share them */

struct ratelimit {
    struct stripe stripes[NSTRIPES];
    size_t per_stripe;
    uint64_t seed;
};

struct ratelimit *ratelimit_create(size_t max_clients)
{
    struct ratelimit *rl = aligned_alloc(64, sizeof *rl);
    if (!rl)
        return NULL;
    memset(rl, 0, sizeof *rl);
    rl->per_stripe = (max_clients + NSTRIPES - 1) / NSTRIPES;
    if (rl->per_stripe == 0)
        rl->per_stripe = 1;
    if (getrandom(&rl->seed, sizeof rl->seed, GRND_NONBLOCK) != sizeof rl->seed)
        rl->seed = clock_mono_ns() ^ (uint64_t)(uintptr_t)rl;
    for (size_t i = 0; i < NSTRIPES; i++) {
        pthread_mutex_init(&rl->stripes[i].mu, NULL);
        /* calloc: pages of a large table are only backed once a client lands there */
        rl->stripes[i].slots = sl_calloc(rl->per_stripe, sizeof(struct slot));
        if (!rl->stripes[i].slots) {
            ratelimit_destroy(rl);
            return NULL;
        }
    }
    return rl;
}

void ratelimit_destroy(struct ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < NSTRIPES; i++) {
        free(rl->stripes[i].slots);
        pthread_mutex_destroy(&rl->stripes[i].mu);
    }
    free(rl);
}

/* FNV-1a over the id from the seed, then a finalizer that spreads every bit. */
static uint64_t client_hash(uint64_t seed, const char *id)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
}

/* The client's slot in st (found, or taken: a free one, else the least recently seen). */
static struct slot *slot_for(struct ratelimit *rl, struct stripe *st, uint64_t key, double burst,
                             uint64_t now_ns, int *evicted)
{
    size_t n = rl->per_stripe, win = n < PROBE ? n : PROBE;
    size_t first = (size_t)((key & 0x03ffffffffffffffull) % n);
    struct slot *oldest = NULL;
    for (size_t i = 0; i < win; i++) {
        struct slot *s = &st->slots[(first + i) % n];
        if (s->key == key)
            return s;
        if (s->key == 0) {
            oldest = s;
            break;
        }
        if (!oldest || s->last_ns < oldest->last_ns)
            oldest = s;
    }
    if (oldest->key && evicted)
        *evicted = 1;
    oldest->key = key;
    oldest->tokens = burst;
    oldest->last_ns = now_ns;
    return oldest;
}

unsigned ratelimit_take(struct ratelimit *rl, const char *client, double rate, double burst,
                        uint64_t now_ns, int *evicted)
{
    uint64_t key = client_hash(rl->seed, client);
    struct stripe *st = &rl->stripes[key >> 58]; /* NSTRIPES == 64: the top 6 bits */
    unsigned wait = 0;
    if (evicted)
        *evicted = 0;
    pthread_mutex_lock(&st->mu);
    struct slot *s = slot_for(rl, st, key, burst, now_ns, evicted);
    /* Another loop may have read its clock a moment earlier and come in later. */
    if (now_ns > s->last_ns) {
        s->tokens += (double)(now_ns - s->last_ns) / 1e9 * rate;
        s->last_ns = now_ns;
    }
    if (s->tokens > burst) /* also when burst was lowered by a reload */
        s->tokens = burst;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
    } else {
        double secs = ceil((1.0 - s->tokens) / rate);
        wait = secs < 1.0 ? 1u : secs > 86400.0 ? 86400u : (unsigned)secs;
    }
    pthread_mutex_unlock(&st->mu);
    return wait;
}

size_t ratelimit_capacity(const struct ratelimit *rl)
{
    return rl->per_stripe * NSTRIPES;
}

size_t ratelimit_tracked(struct ratelimit *rl)
{
    size_t n = 0;
    for (size_t i = 0; i < NSTRIPES; i++) {
        pthread_mutex_lock(&rl->stripes[i].mu);
        for (size_t j = 0; j < rl->per_stripe; j++)
            n += rl->stripes[i].slots[j].key != 0;
        pthread_mutex_unlock(&rl->stripes[i].mu);
    }
    return n;
}

static int in_list(char *const *list, const char *s, size_t len)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strlen(list[i]) == len && memcmp(list[i], s, len) == 0)
            return 1;
    return 0;
}

/* The client address of X-Forwarded-For (see ratelimit_client): 1 with it in out, 0 when
 * there is none or it does not fit. */
static int forwarded_for(const struct http_request *r, char *const *proxies, char *out, size_t cap)
{
    for (size_t i = r->nheaders; i-- > 0;) {
        if (strcmp(r->headers[i].name, "x-forwarded-for") != 0)
            continue;
        const char *v = r->headers[i].value, *end = v + strlen(v);
        while (end > v) { /* each element, from the right */
            const char *b = end;
            while (b > v && b[-1] != ',')
                b--;
            const char *s = b, *e = end;
            while (s < e && (*s == ' ' || *s == '\t'))
                s++;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e > s && !in_list(proxies, s, (size_t)(e - s))) {
                if ((size_t)(e - s) >= cap)
                    return 0;
                memcpy(out, s, (size_t)(e - s));
                out[e - s] = 0;
                return 1;
            }
            end = b > v ? b - 1 : v; /* the comma before this element */
        }
    }
    return 0;
}

void ratelimit_client(const struct http_request *r, const char *peer, char *const *proxies,
                      char *out, size_t cap)
{
    char fwd[64];
    if (r->who.actor[0] && strcmp(r->who.actor, "dev") != 0)
        snprintf(out, cap, "%s", r->who.actor);
    else if (in_list(proxies, peer, strlen(peer)) && forwarded_for(r, proxies, fwd, sizeof fwd))
        snprintf(out, cap, "ip:%s", fwd);
    else
        snprintf(out, cap, "ip:%s", peer);
}

int ratelimit_admit(struct ratelimit *rl, const struct sluice_config *cfg, struct http_request *r,
                    const char *peer)
{
    double rate = cfg->rate_limits.requests_per_s;
    if (rate <= 0 || !rl)
        return 0;
    double burst = cfg->rate_limits.burst > 0 ? cfg->rate_limits.burst : ceil(rate);
    if (burst < 1)
        burst = 1;
    char client[192];
    ratelimit_client(r, peer, cfg->rate_limits.trusted_proxies, client, sizeof client);
    int evicted = 0;
    /* the time the request began: read once already (a clock read costs ~50 ns here) */
    unsigned wait = ratelimit_take(rl, client, rate, burst, r->start_ns, &evicted);
    if (evicted)
        metrics_rate_limit_evicted();
    if (!wait)
        return 0;
    metrics_rate_limited(r->route->perm);
    r->deny.status = 429;
    r->deny.code = ERR_RATE_LIMITED;
    r->deny.reason = "rate_limited";
    r->deny.retry_after_s = wait;
    snprintf(r->deny.message, sizeof r->deny.message,
             "more than %g requests per second (burst %g) from this client "
             "(rate_limits.requests_per_s); retry after %u s",
             rate, burst, wait);
    return -1;
}
