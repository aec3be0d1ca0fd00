/*
 * ratelimit.h - per-client rate limits: token buckets in one table shared by
 * every I/O loop, and the decision for one request (ratelimit_admit(), which
 * http/dispatch.c calls once the request is authenticated, before its body is read).
 *
 * A client (an API key, a JWT subject, or an address: ratelimit_client()) has
 * a bucket of at most `burst` tokens that refills at `rate`
 * tokens per second; each request takes one token, and a request that finds
 * less than one token is refused without taking any (so a client that keeps
 * sending gets `rate` requests per second through, never fewer).
 *
 * Memory is fixed at creation: the table tracks at most its capacity of
 * clients. A new client takes a free slot near its hash or else the place of
 * the least recently seen of those few (an eviction: that client starts over
 * with a full bucket when it comes back, which only matters when more clients
 * are active at once than the table holds).
 *
 * Threads: ratelimit_take() may be called from any thread at once. The table
 * is split into stripes, each with its own mutex, so two loops contend only
 * when their clients hash to the same stripe, and then for a few compares.
 */
#ifndef SLUICE_HTTP_RATELIMIT_H
#define SLUICE_HTTP_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/* A table for max_clients clients (rounded up to a multiple of the stripe count,
 * 64). Returns NULL when out of memory. */
struct ratelimit *ratelimit_create(size_t max_clients);
/* Accepts NULL. No call may be running. */
void ratelimit_destroy(struct ratelimit *rl);

/*
 * One request of client (a NUL-terminated id, borrowed) at now_ns (a monotonic
 * clock, nanoseconds). rate > 0 (tokens per second), burst >= 1. Returns 0 when
 * the request may go on (a token was taken), else the whole seconds until one
 * token will be there (at least 1): the answer's Retry-After. *evicted (may be
 * NULL) is set to 1 when another client's bucket was dropped to make room.
 */
unsigned ratelimit_take(struct ratelimit *rl, const char *client, double rate, double burst,
                        uint64_t now_ns, int *evicted);

struct http_request;
struct sluice_config;

/*
 * The rate limit of request r, admitted (authenticated) on a route that is not
 * open, from the connection's address peer, under cfg's rate_limits: 0 to go
 * on (also when limits are off or rl is NULL); -1 with r->deny set to 429
 * RATE_LIMITED and its Retry-After, counted in sluice_rate_limited_total. Any
 * thread; r->start_ns is the time of the request.
 */
int ratelimit_admit(struct ratelimit *rl, const struct sluice_config *cfg, struct http_request *r,
                    const char *peer);

/*
 * Who request r counts against, into out (cap bytes): its caller's actor when
 * it was authenticated ("key:ID", "jwt:SUB"), else (no credential, or everybody
 * under auth.dev_bypass) "ip:ADDR". ADDR is peer, the connection's address;
 * when peer is one of proxies (NULL-terminated, may be NULL: trust nobody), it
 * is the address X-Forwarded-For names: right to left over all the fields, the
 * first one that is not itself a proxy (peer when there is none).
 */
void ratelimit_client(const struct http_request *r, const char *peer, char *const *proxies,
                      char *out, size_t cap);

/* How many clients the table can track. */
size_t ratelimit_capacity(const struct ratelimit *rl);
/* How many it tracks now (takes every stripe's lock: for tests and diagnostics). */
size_t ratelimit_tracked(struct ratelimit *rl);

#endif
