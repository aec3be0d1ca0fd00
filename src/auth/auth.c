/*
 * auth.c - the decision for one request (see auth.h): the Bearer credential,
 * an API key looked up in the store or a JWT verified against the configured
 * keys, and whether its role allows the route.
 */
#include "auth/auth.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/apikey.h"
#include "auth/jwt.h"
#include "config/config.h"
#include "store/store.h"

#define MAX_TOKEN_BYTES 8192

int auth_listen_is_loopback(const char *listen)
{
    if (!listen)
        return 0;
    if (strncmp(listen, "[::1]:", 6) == 0 || strncmp(listen, "localhost:", 10) == 0)
        return 1;
    unsigned a, b, c, d;
    char colon;
    return sscanf(listen, "%u.%u.%u.%u%c", &a, &b, &c, &d, &colon) == 5 && colon == ':' &&
           a == 127 && b < 256 && c < 256 && d < 256;
}

/* ---- failure counters and used keys (shared by the I/O threads) ---- */

static const char *const reasons[] = {
    "missing",     "not_bearer",  "unknown_key", "revoked_key", "expired_key",      "bad_key",
    "no_jwt_keys", "jwt_invalid", "bad_role",    "forbidden",   "store_unavailable"};
#define NREASONS (sizeof reasons / sizeof reasons[0])
static unsigned long long fail_counts[NREASONS];

static const char *count_failure(size_t i)
{
    __atomic_add_fetch(&fail_counts[i], 1, __ATOMIC_RELAXED);
    return reasons[i];
}

void auth_failures_foreach(void (*fn)(const char *reason, unsigned long long n, void *arg),
                           void *arg)
{
    for (size_t i = 0; i < NREASONS; i++)
        fn(reasons[i], __atomic_load_n(&fail_counts[i], __ATOMIC_RELAXED), arg);
}

#define USED_MAX 256
static pthread_mutex_t used_mu = PTHREAD_MUTEX_INITIALIZER;
static char used[USED_MAX][40];
static size_t nused;

static void note_used(const char *id)
{
    pthread_mutex_lock(&used_mu);
    size_t i = 0;
    while (i < nused && strcmp(used[i], id) != 0)
        i++;
    if (i == nused && nused < USED_MAX)
        snprintf(used[nused++], sizeof used[0], "%s", id);
    pthread_mutex_unlock(&used_mu);
}

size_t auth_take_used_keys(char (*ids)[40], size_t max)
{
    pthread_mutex_lock(&used_mu);
    size_t n = nused < max ? nused : max;
    for (size_t i = 0; i < n; i++)
        memcpy(ids[i], used[i], sizeof used[0]);
    nused = 0;
    pthread_mutex_unlock(&used_mu);
    return n;
}

/* The store's pepper, read once: it never changes. */
static pthread_mutex_t pepper_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char pepper[32];
static int have_pepper;

static int get_pepper(struct store *st, unsigned char out[32])
{
    pthread_mutex_lock(&pepper_mu);
    if (!have_pepper && store_key_pepper(st, pepper) == 0)
        have_pepper = 1;
    if (have_pepper)
        memcpy(out, pepper, 32);
    int ok = have_pepper;
    pthread_mutex_unlock(&pepper_mu);
    return ok ? 0 : -1;
}

/* ---- the decision ---- */

/* The key cannot be checked because the store does not answer: not the client's fault, and
 * not a refusal it should act on (401 would tell it to drop or change its key). */
static int unavailable(struct auth_denial *d)
{
    d->status = 503;
    d->code = ERR_UNAVAILABLE;
    d->reason = count_failure(10);
    snprintf(d->message, sizeof d->message,
             "the API key cannot be checked now: the store is "
             "unavailable");
    return -1;
}

static int deny(struct auth_denial *d, int status, size_t reason, const char *fmt, const char *arg)
{
    d->status = status;
    d->code = status == 401 ? ERR_UNAUTHORIZED : ERR_FORBIDDEN;
    d->reason = count_failure(reason);
    snprintf(d->message, sizeof d->message, fmt, arg ? arg : "");
    snprintf(d->www_authenticate, sizeof d->www_authenticate,
             "Bearer realm=\"sluice\", error=\"%s\"",
             status == 401 ? "invalid_token" : "insufficient_scope");
    return -1;
}

static int check_api_key(struct store *st, const char *tok, size_t len, int64_t now_ms,
                         struct principal *who, struct auth_denial *d)
{
    char id[APIKEY_ID_LEN + 1];
    struct api_key k;
    unsigned char pep[32], h[32];
    if (apikey_parse(tok, len, id) < 0)
        return deny(d, 401, 5, "the API key is malformed", NULL);
    int rc = store_key_get(st, id, &k);
    if (rc < 0)
        return unavailable(d);
    if (rc == 1)
        return deny(d, 401, 2, "unknown API key", NULL);
    if (get_pepper(st, pep) < 0) {
        api_key_release(&k);
        return unavailable(d);
    }
    int good = apikey_hash(pep, 32, tok, len, h) == 0 && CRYPTO_memcmp(h, k.hash, 32) == 0;
    OPENSSL_cleanse(pep, sizeof pep);
    int role = role_from_name(k.role);
    int64_t revoked = k.revoked_ms, expires = k.expires_ms;
    api_key_release(&k);
    if (!good)
        return deny(d, 401, 5, "unknown API key", NULL);
    if (revoked)
        return deny(d, 401, 3, "the API key was revoked", NULL);
    if (expires && now_ms >= expires)
        return deny(d, 401, 4, "the API key has expired", NULL);
    snprintf(who->actor, sizeof who->actor, "key:%s", id);
    who->role = role < 0 ? ROLE_NONE : (enum role)role;
    note_used(id);
    return 0;
}

static int check_jwt(const struct sluice_config *cfg, const char *tok, size_t len, int64_t now_ms,
                     struct principal *who, struct auth_denial *d)
{
    if (!cfg->auth.jwt.keyset)
        return deny(d, 401, 6, "not a valid API key, and no JWT keys are configured", NULL);
    struct jwt_policy pol = {.issuer = cfg->auth.jwt.issuer,
                             .audience = cfg->auth.jwt.audience,
                             .leeway_s = cfg->auth.jwt.leeway_s,
                             .require_exp = cfg->auth.jwt.require_exp,
                             .max_token_bytes = MAX_TOKEN_BYTES};
    json_t *claims = NULL;
    char why[128];
    enum jwt_result r = jwt_verify(cfg->auth.jwt.keyset, &pol, tok, len, now_ms / 1000, &claims,
                                   NULL, why, sizeof why);
    if (r != JWT_OK)
        return deny(d, 401, 7, "the token is not valid: %s", jwt_result_name(r));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    snprintf(who->actor, sizeof who->actor, "jwt:%s", sub ? sub : "-");
    json_t *rc = json_object_get(claims, cfg->auth.jwt.role_claim);
    int role = rc ? role_from_name(json_string_value(rc)) : cfg->auth.jwt.default_role;
    json_decref(claims);
    if (role < 0)
        return deny(d, 403, 8, "the token's %s claim names no sluice role",
                    cfg->auth.jwt.role_claim);
    who->role = (enum role)role;
    return 0;
}

int auth_check(const struct sluice_config *cfg, struct store *st, enum perm need,
               const char *authorization, int loopback, int64_t now_ms, struct principal *who,
               struct auth_denial *d)
{
    memset(who, 0, sizeof *who);
    memset(d, 0, sizeof *d);
    if (need == PERM_OPEN)
        return 0;
    if (cfg->auth.dev_bypass) {
        snprintf(who->actor, sizeof who->actor, "dev");
        who->role = ROLE_ADMIN;
        return 0;
    }
    if (need == PERM_METRICS && (cfg->auth.metrics == 1 || (cfg->auth.metrics == 0 && loopback)))
        return 0;
    if (!authorization || !*authorization)
        return deny(d, 401, 0, "an Authorization: Bearer token is required", NULL);
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return deny(d, 401, 1, "the Authorization scheme must be Bearer", NULL);
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    if (len == 0)
        return deny(d, 401, 0, "an Authorization: Bearer token is required", NULL);
    if (len > MAX_TOKEN_BYTES)
        return deny(d, 401, 7, "the token is longer than %s bytes", "8192");
    int rc = strncmp(tok, "slk_", 4) == 0 ? check_api_key(st, tok, len, now_ms, who, d)
                                          : check_jwt(cfg, tok, len, now_ms, who, d);
    if (rc < 0)
        return -1;
    if (!role_allows(who->role, need)) {
        char msg[64];
        snprintf(msg, sizeof msg, "%s", role_name(who->role));
        return deny(d, 403, 9, "the role %s does not allow this", msg);
    }
    return 0;
}
