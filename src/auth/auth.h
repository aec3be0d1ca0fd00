/*
 * auth.h - who is calling and what they may do.
 *
 * Every /api/v1 route declares the permission it needs (router.h); a request's
 * `Authorization: Bearer` credential is a sluice API key (apikey.h) or a JWT
 * (jwt.h), and its role grants permissions:
 *
 *   viewer    read
 *   ingest    ingest (post events, upload batches)
 *   operator  read + ingest + operate (batch and DLQ operations)
 *   admin     everything (keys, audit, reload)
 *
 * Authentication runs when a request's headers are complete, before any body
 * is read or anything is stored, so a 401 or 403 has no side effect.
 */
#ifndef SLUICE_AUTH_AUTH_H
#define SLUICE_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "auth/role.h" /* enum role, enum perm, role_name ... */
#include "util/errors.h"

struct sluice_config;
struct store;

/* The caller of one request. */
struct principal {
    char actor[128]; /* "key:<id>" or "jwt:<sub>" ("jwt:-" without sub); "dev" under dev_bypass */
    enum role role;
};

/* Why a request was refused. */
struct auth_denial {
    int status;                /* 401 or 403; 503 when the store cannot tell */
    enum sluice_err code;      /* ERR_UNAUTHORIZED, ERR_FORBIDDEN or ERR_UNAVAILABLE */
    char message[160];         /* for the client: never the token */
    char www_authenticate[96]; /* the header's value ("" with 503) */
    const char *reason;        /* short, for metrics and logs: "missing", "expired", ... */
    unsigned retry_after_s;    /* 429 (rate limited): the Retry-After seconds */
};

/*
 * Decide one request. authorization is the header's value (NULL when absent),
 * loopback whether the server listens on a loopback address only. st is the
 * caller's read store (API keys). Returns 0 with *who set, or -1 with *d set.
 */
int auth_check(const struct sluice_config *cfg, struct store *st, enum perm need,
               const char *authorization, int loopback, int64_t now_ms, struct principal *who,
               struct auth_denial *d);

/* Whether the HOST:PORT text names a loopback address (127.0.0.0/8, ::1, localhost). */
int auth_listen_is_loopback(const char *listen);

/* Failed attempts by reason since start, for /metrics: calls fn for each reason. */
void auth_failures_foreach(void (*fn)(const char *reason, unsigned long long n, void *arg),
                           void *arg);

/* API keys used since the last call: fills ids (up to max), returns how many. The
 * caller records their last use (a write, so not done per request). */
size_t auth_take_used_keys(char (*ids)[40], size_t max);

#endif
