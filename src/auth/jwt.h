/*
 * jwt.h - verify JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515)
 * signed with the JWA algorithms of RFC 7518 and EdDSA (RFC 8037).
 *
 * Written here rather than taken from a package because every key must be
 * pinned to the algorithms it may verify: the token's own "alg" header never
 * chooses how a key is used. No packaged library does that per key (libjwt 1.10
 * cannot), which is what the alg-confusion attacks exploit. OpenSSL 3 (EVP)
 * does the cryptography, jansson the JSON.
 *
 * A keyset is built once (at config load) and is then read-only:
 * jwt_verify() may be called on the same keyset from any number of threads at
 * once. Building (jwt_keyset_add_*) is not thread-safe.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef SLUICE_AUTH_JWT_H
#define SLUICE_AUTH_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Algorithms, as bits so that a key can allow a set of them. */
enum jwt_alg {
    JWT_HS256 = 1 << 0,
    JWT_HS384 = 1 << 1,
    JWT_HS512 = 1 << 2,
    JWT_RS256 = 1 << 3,
    JWT_RS384 = 1 << 4,
    JWT_RS512 = 1 << 5,
    JWT_PS256 = 1 << 6,
    JWT_PS384 = 1 << 7,
    JWT_PS512 = 1 << 8,
    JWT_ES256 = 1 << 9,
    JWT_ES384 = 1 << 10,
    JWT_ES512 = 1 << 11,
    JWT_EDDSA = 1 << 12,
};
#define JWT_ALGS_HMAC (JWT_HS256 | JWT_HS384 | JWT_HS512)
#define JWT_ALGS_RSA (JWT_RS256 | JWT_RS384 | JWT_RS512 | JWT_PS256 | JWT_PS384 | JWT_PS512)
#define JWT_ALGS_ALL ((1u << 13) - 1)

/* "HS256" ... "ES512", "EdDSA": exact, case-sensitive. 0 if unknown (and for "none"). */
unsigned jwt_alg_from_name(const char *name);
/* The JOSE name of one algorithm bit (static string); NULL if alg is not exactly one. */
const char *jwt_alg_name(unsigned alg);

/*
 * The keys tokens may be signed with, each with the set of algorithms it may
 * verify. The keyset owns its keys (HMAC secrets are wiped when freed).
 *
 * Every jwt_keyset_add_* returns 0, or -1 with a message in err (naming the
 * file / kid and what is wrong) and the keyset unchanged. kid may be NULL (a
 * key without kid is only tried for tokens without kid); a kid already in the
 * keyset is an error. algs is the mask of algorithms allowed for the key; it
 * must be non-zero and every algorithm in it must suit the key: HS* an HMAC
 * secret at least as long as the hash output (32/48/64 bytes), RS* and PS* an
 * RSA key of 2048..16384 bits, ES256/ES384/ES512 an EC key on P-256/P-384/P-521
 * respectively, EdDSA an Ed25519 or Ed448 key.
 */
struct jwt_keyset;

struct jwt_keyset *jwt_keyset_new(void);     /* NULL on OOM; caller frees */
void jwt_keyset_free(struct jwt_keyset *ks); /* accepts NULL */

/* Copies secret. */
int jwt_keyset_add_hmac(struct jwt_keyset *ks, const char *kid, unsigned algs,
                        const unsigned char *secret, size_t len, char *err, size_t errlen);
/* A PEM public key (SubjectPublicKeyInfo, "BEGIN PUBLIC KEY"): RSA, EC P-256/384/521,
 * Ed25519, Ed448. Private keys and certificates are refused. */
int jwt_keyset_add_pem(struct jwt_keyset *ks, const char *kid, unsigned algs, const char *pem_path,
                       char *err, size_t errlen);
/*
 * A JWK Set file (RFC 7517): {"keys":[...]} with kty RSA (n, e), EC (crv, x, y),
 * OKP (crv Ed25519/Ed448, x) or oct (k). Each key's kid comes from the JWK. Its
 * allowed algorithms are the JWK's "alg" if present, else every algorithm its
 * type can do (for oct: every HS* its length is enough for). Keys with
 * "use":"enc" are skipped. Private members ("d", "p", ...) are an error: the
 * file must be a public JWKS, except for oct keys, which are secret by nature.
 * All or nothing: on error no key of the file is added.
 */
int jwt_keyset_add_jwks(struct jwt_keyset *ks, const char *jwks_path, char *err, size_t errlen);
size_t jwt_keyset_count(const struct jwt_keyset *ks);

struct jwt_policy {
    const char *issuer;     /* NULL: not checked; else iss must be this string */
    const char *audience;   /* NULL: not checked; else aud (string or array of strings)
                               must contain it */
    int64_t leeway_s;       /* clock skew allowed on exp/nbf/iat, e.g. 60; < 0 counts as 0 */
    int require_exp;        /* 1: a token without exp is refused */
    size_t max_token_bytes; /* e.g. 8192; 0 means 8192 */
};

#define JWT_RESULTS(X)                                                                             \
    X(JWT_OK, "ok")                                                                                \
    X(JWT_MALFORMED, "malformed")                                                                  \
    X(JWT_TOO_LARGE, "too_large")                                                                  \
    X(JWT_ALG_NONE, "alg_none")                                                                    \
    X(JWT_ALG_NOT_ALLOWED, "alg_not_allowed")                                                      \
    X(JWT_FORBIDDEN_HEADER, "forbidden_header")                                                    \
    X(JWT_UNKNOWN_KID, "unknown_kid")                                                              \
    X(JWT_NO_KEY, "no_key")                                                                        \
    X(JWT_BAD_SIGNATURE, "bad_signature")                                                          \
    X(JWT_BAD_CLAIM, "bad_claim")                                                                  \
    X(JWT_EXPIRED, "expired")                                                                      \
    X(JWT_NOT_YET_VALID, "not_yet_valid")                                                          \
    X(JWT_BAD_ISSUER, "bad_issuer")                                                                \
    X(JWT_BAD_AUDIENCE, "bad_audience")                                                            \
    X(JWT_MISSING_EXP, "missing_exp")

enum jwt_result {
#define X(code, name) code,
    JWT_RESULTS(X)
#undef X
};

/* A stable lower-case word for logs and metrics ("expired", ...); "unknown" if out of range. */
const char *jwt_result_name(enum jwt_result r);

/*
 * Verify token (len bytes, need not be NUL-terminated) at time now_s (seconds
 * since the epoch). Thread-safe for a built keyset.
 *
 * Checks, in this order: size; three non-empty segments of unpadded canonical
 * base64url; the header (a JSON object without duplicate names; alg a string,
 * not "none" in any case, known; no jku/x5u/jwk/x5c/crit, b64 only true; typ
 * and kid strings when present); the key (by kid if the header has one, else
 * every key that allows alg, in the order added); the signature; then the
 * payload (a JSON object) and its claims: exp/nbf/iat numbers, exp present if
 * required, now < exp + leeway, nbf and iat <= now + leeway, iss, aud.
 * x5t / x5t#S256 are ignored: they never select a key.
 *
 * JWT_OK: *claims is the payload object (new reference, caller decrefs) and
 * *kid_used the matched key's kid (borrowed from ks, may be NULL). Otherwise
 * *claims is NULL, *kid_used NULL. claims and kid_used may be NULL when not
 * wanted. why (may be NULL) always gets a short reason ("ok" on success) that
 * never contains the token, anything copied from it, or a secret.
 */
enum jwt_result jwt_verify(const struct jwt_keyset *ks, const struct jwt_policy *pol,
                           const char *token, size_t len, int64_t now_s, json_t **claims,
                           const char **kid_used, char *why, size_t whylen);

#endif
