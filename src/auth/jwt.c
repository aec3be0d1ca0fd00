/*
 * jwt.c - verifying a JWS compact token (RFC 7515) carrying JWT claims
 * (RFC 7519) against a keyset built by jwk.c.
 *
 * Written here (not taken from a package) because the key, not the token,
 * decides the algorithm: a token's "alg" only selects among the algorithms its
 * key was configured for, and each algorithm family runs only with its own key
 * type. No packaged library pins that per key (libjwt 1.10 cannot).
 *
 * Everything is decided before anything is trusted: encoding and header
 * first, then the signature, and only then the payload and its claims, so a
 * forged token is always a bad signature. Each call uses its own OpenSSL
 * contexts and touches the keyset read-only: safe from many threads at once.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include "auth/jwt.h"

#include <assert.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwk.h"

#define DEFAULT_MAX_TOKEN_BYTES 8192

enum alg_family { FAM_HMAC, FAM_RSA_PKCS1, FAM_RSA_PSS, FAM_ECDSA, FAM_EDDSA };

static const struct alg_info {
    unsigned alg;
    const char *name;
    const char *md; /* OpenSSL digest name; NULL for EdDSA (the hash is part of it) */
    enum alg_family family;
    size_t ec_bytes; /* ECDSA: size of R and of S in the JOSE signature */
} alg_table[] = {
    {JWT_HS256, "HS256", "SHA256", FAM_HMAC, 0},
    {JWT_HS384, "HS384", "SHA384", FAM_HMAC, 0},
    {JWT_HS512, "HS512", "SHA512", FAM_HMAC, 0},
    {JWT_RS256, "RS256", "SHA256", FAM_RSA_PKCS1, 0},
    {JWT_RS384, "RS384", "SHA384", FAM_RSA_PKCS1, 0},
    {JWT_RS512, "RS512", "SHA512", FAM_RSA_PKCS1, 0},
    {JWT_PS256, "PS256", "SHA256", FAM_RSA_PSS, 0},
    {JWT_PS384, "PS384", "SHA384", FAM_RSA_PSS, 0},
    {JWT_PS512, "PS512", "SHA512", FAM_RSA_PSS, 0},
    {JWT_ES256, "ES256", "SHA256", FAM_ECDSA, 32},
    {JWT_ES384, "ES384", "SHA384", FAM_ECDSA, 48},
    {JWT_ES512, "ES512", "SHA512", FAM_ECDSA, 66},
    {JWT_EDDSA, "EdDSA", NULL, FAM_EDDSA, 0},
};
#define ALG_COUNT (sizeof alg_table / sizeof alg_table[0])

static const struct alg_info *alg_by_bit(unsigned alg)
{
    for (size_t i = 0; i < ALG_COUNT; i++)
        if (alg_table[i].alg == alg)
            return &alg_table[i];
    return NULL;
}

unsigned jwt_alg_from_name(const char *name)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < ALG_COUNT; i++)
        if (strcmp(alg_table[i].name, name) == 0)
            return alg_table[i].alg;
    return 0;
}

const char *jwt_alg_name(unsigned alg)
{
    const struct alg_info *a = alg_by_bit(alg);
    return a ? a->name : NULL;
}

const char *jwt_result_name(enum jwt_result r)
{
    static const char *const names[] = {
#define X(code, name) [code] = name,
        JWT_RESULTS(X)
#undef X
    };
    if ((unsigned)r >= sizeof names / sizeof names[0])
        return "unknown";
    return names[r];
}

/* ---- signatures ----------------------------------------------------------- */

static int verify_hmac(const struct alg_info *a, const struct jwk *k, const unsigned char *in,
                       size_t inlen, const unsigned char *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, a->md, NULL, k->secret, k->secret_len, in, inlen, mac,
                   sizeof mac, &maclen))
        return 0;
    int ok = siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

/* JOSE's ECDSA signature is R || S, fixed width; OpenSSL wants DER. Caller OPENSSL_frees. */
static unsigned char *ecdsa_raw_to_der(const unsigned char *sig, size_t half, int *derlen)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
    BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
    unsigned char *der = NULL;
    *derlen = 0;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        *derlen = i2d_ECDSA_SIG(es, &der);
        if (*derlen <= 0) {
            OPENSSL_free(der);
            der = NULL;
        }
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return der;
}

static int verify_pkey(const struct alg_info *a, const struct jwk *k, const unsigned char *in,
                       size_t inlen, const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL; /* owned by mctx */
    unsigned char *der = NULL;
    int ok = 0;
    if (!mctx || EVP_DigestVerifyInit_ex(mctx, &pctx, a->md, NULL, NULL, k->pkey, NULL) != 1)
        goto out;
    switch (a->family) {
    case FAM_RSA_PKCS1:
        if (siglen != (size_t)EVP_PKEY_get_size(k->pkey) ||
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
            goto out;
        break;
    case FAM_RSA_PSS:
        /* RFC 7518 section 3.5: MGF1 with the same hash, salt as long as the hash */
        if (siglen != (size_t)EVP_PKEY_get_size(k->pkey) ||
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, a->md, NULL) != 1)
            goto out;
        break;
    case FAM_ECDSA: {
        if (siglen != 2 * a->ec_bytes)
            goto out;
        int derlen = 0;
        if (!(der = ecdsa_raw_to_der(sig, a->ec_bytes, &derlen)))
            goto out;
        sig = der;
        siglen = (size_t)derlen;
        break;
    }
    case FAM_EDDSA:
        break;
    case FAM_HMAC:
        goto out;
    }
    ok = EVP_DigestVerify(mctx, sig, siglen, in, inlen) == 1;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(mctx);
    return ok;
}

/* 1 if k verifies sig over in with algorithm a. The key kind is checked again here so that
 * no path can use a key outside its family, whatever its allowed mask says. */
static int verify_with(const struct alg_info *a, const struct jwk *k, const unsigned char *in,
                       size_t inlen, const unsigned char *sig, size_t siglen)
{
    if (!(k->algs & a->alg) || !(jwk_kind_algs(k->kind) & a->alg))
        return 0;
    int ok = a->family == FAM_HMAC
                 ? (k->secret != NULL && verify_hmac(a, k, in, inlen, sig, siglen))
                 : (k->pkey != NULL && verify_pkey(a, k, in, inlen, sig, siglen));
    ERR_clear_error(); /* this thread's OpenSSL error queue stays empty */
    return ok;
}

/* ---- claims --------------------------------------------------------------- */

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* t >= v, for a JSON number v (integer or real). */
static int time_ge(int64_t t, const json_t *v)
{
    if (json_is_integer(v))
        return t >= (int64_t)json_integer_value(v);
    return (double)t >= json_real_value(v);
}

static int str_eq(const json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s) &&
           memcmp(json_string_value(v), s, json_string_length(v)) == 0;
}

static int aud_contains(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return str_eq(aud, want);
    for (size_t i = 0; i < json_array_size(aud); i++) /* 0 if aud is not an array */
        if (str_eq(json_array_get(aud, i), want))
            return 1;
    return 0;
}

static enum jwt_result check_claims(const json_t *pay, const struct jwt_policy *pol, int64_t now,
                                    const char **why)
{
    const json_t *exp = json_object_get(pay, "exp");
    const json_t *nbf = json_object_get(pay, "nbf");
    const json_t *iat = json_object_get(pay, "iat");
    int64_t leeway = pol->leeway_s > 0 ? pol->leeway_s : 0;
    if ((exp && !json_is_number(exp)) || (nbf && !json_is_number(nbf)) ||
        (iat && !json_is_number(iat))) {
        *why = "exp, nbf or iat is not a number";
        return JWT_BAD_CLAIM;
    }
    if (!exp && pol->require_exp) {
        *why = "the token has no exp";
        return JWT_MISSING_EXP;
    }
    if (exp && time_ge(add_sat(now, -leeway), exp)) {
        *why = "the token has expired";
        return JWT_EXPIRED;
    }
    if (nbf && !time_ge(add_sat(now, leeway), nbf)) {
        *why = "the token is not valid yet (nbf)";
        return JWT_NOT_YET_VALID;
    }
    if (iat && !time_ge(add_sat(now, leeway), iat)) {
        *why = "the token was issued in the future (iat)";
        return JWT_NOT_YET_VALID;
    }
    if (pol->issuer && !str_eq(json_object_get(pay, "iss"), pol->issuer)) {
        *why = "iss is not the expected issuer";
        return JWT_BAD_ISSUER;
    }
    if (pol->audience && !aud_contains(json_object_get(pay, "aud"), pol->audience)) {
        *why = "aud does not contain the expected audience";
        return JWT_BAD_AUDIENCE;
    }
    return JWT_OK;
}

/* ---- the token ------------------------------------------------------------ */

static int is_none(const char *alg)
{
    static const char none[] = "none";
    for (size_t i = 0; i < sizeof none; i++) {
        char c = alg[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != none[i])
            return 0;
        if (c == '\0')
            break;
    }
    return 1;
}

/* Parses decoded bytes as one JSON object (duplicate names refused); NULL if they are not. */
static json_t *parse_object(const unsigned char *raw, size_t len)
{
    json_t *v = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* The header checks that do not need a key. On JWT_OK *alg is the algorithm, *kid the kid
 * (borrowed from hdr) or NULL. */
static enum jwt_result check_header(const json_t *hdr, const struct alg_info **alg,
                                    const char **kid, const char **why)
{
    static const char *const forbidden[] = {"jku", "x5u", "jwk", "x5c", "crit"};
    const json_t *jalg = json_object_get(hdr, "alg");
    if (!json_is_string(jalg)) {
        *why = "header alg missing or not a string";
        return JWT_MALFORMED;
    }
    if (is_none(json_string_value(jalg))) {
        *why = "unsecured token (alg none)";
        return JWT_ALG_NONE;
    }
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++) {
        if (json_object_get(hdr, forbidden[i])) {
            *why = "header names a key, a key URL or critical extensions";
            return JWT_FORBIDDEN_HEADER;
        }
    }
    const json_t *b64 = json_object_get(hdr, "b64");
    if (b64 && !json_is_true(b64)) {
        *why = "header b64 changes the signing input";
        return JWT_FORBIDDEN_HEADER;
    }
    const json_t *typ = json_object_get(hdr, "typ");
    if (typ && !json_is_string(typ)) {
        *why = "header typ is not a string";
        return JWT_MALFORMED;
    }
    const json_t *jkid = json_object_get(hdr, "kid");
    if (jkid && !json_is_string(jkid)) {
        *why = "header kid is not a string";
        return JWT_MALFORMED;
    }
    *kid = json_string_value(jkid);
    *alg = alg_by_bit(jwt_alg_from_name(json_string_value(jalg)));
    if (!*alg) {
        *why = "alg is not supported";
        return JWT_ALG_NOT_ALLOWED;
    }
    return JWT_OK;
}

/* Finds the key that signed the token; JWT_OK with *key set, or why not. */
static enum jwt_result find_key(const struct jwt_keyset *ks, const struct alg_info *a,
                                const char *kid, const char *token, size_t inlen,
                                const unsigned char *sig, size_t siglen, const struct jwk **key,
                                const char **why)
{
    const unsigned char *in = (const unsigned char *)token;
    if (kid) {
        const struct jwk *k = NULL;
        for (size_t i = 0; i < ks->n && !k; i++)
            if (ks->keys[i].kid && strcmp(ks->keys[i].kid, kid) == 0)
                k = &ks->keys[i];
        if (!k) {
            *why = "no configured key has the token's kid";
            return JWT_UNKNOWN_KID;
        }
        if (!(k->algs & a->alg)) {
            *why = "the token's alg is not allowed for its key";
            return JWT_ALG_NOT_ALLOWED;
        }
        if (!verify_with(a, k, in, inlen, sig, siglen)) {
            *why = "signature does not verify";
            return JWT_BAD_SIGNATURE;
        }
        *key = k;
        return JWT_OK;
    }
    size_t tried = 0;
    for (size_t i = 0; i < ks->n; i++) {
        const struct jwk *k = &ks->keys[i];
        if (!(k->algs & a->alg))
            continue;
        tried++;
        if (verify_with(a, k, in, inlen, sig, siglen)) {
            *key = k;
            return JWT_OK;
        }
    }
    *why = tried ? "signature does not verify" : "no configured key allows the token's alg";
    return tried ? JWT_BAD_SIGNATURE : JWT_NO_KEY;
}

enum jwt_result jwt_verify(const struct jwt_keyset *ks, const struct jwt_policy *pol,
                           const char *token, size_t len, int64_t now_s, json_t **claims,
                           const char **kid_used, char *why, size_t whylen)
{
    assert(ks && pol);
    size_t max = pol->max_token_bytes ? pol->max_token_bytes : DEFAULT_MAX_TOKEN_BYTES;
    const char *reason = "ok";
    enum jwt_result r;
    json_t *hdr = NULL, *pay = NULL;
    unsigned char *hraw = NULL, *praw = NULL, *sig = NULL;
    size_t hrawlen = 0, prawlen = 0, siglen = 0;
    const struct alg_info *alg = NULL;
    const char *kid = NULL;
    const struct jwk *key = NULL;

    if (claims)
        *claims = NULL;
    if (kid_used)
        *kid_used = NULL;
    if (len > max) {
        reason = "token larger than the limit";
        r = JWT_TOO_LARGE;
        goto out;
    }
    /* header.payload.signature: three non-empty segments */
    r = JWT_MALFORMED;
    const char *end = token ? token + len : NULL;
    const char *d1 = token ? memchr(token, '.', len) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) || d1 == token || d2 == d1 + 1 ||
        d2 + 1 == end) {
        reason = "not three non-empty dot-separated segments";
        goto out;
    }
    if (jwk_b64url_decode(token, (size_t)(d1 - token), &hraw, &hrawlen) != 0 ||
        jwk_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &praw, &prawlen) != 0 ||
        jwk_b64url_decode(d2 + 1, (size_t)(end - d2 - 1), &sig, &siglen) != 0) {
        reason = "a segment is not canonical unpadded base64url";
        goto out;
    }
    if (!(hdr = parse_object(hraw, hrawlen))) {
        reason = "header is not a JSON object without duplicate names";
        goto out;
    }
    if ((r = check_header(hdr, &alg, &kid, &reason)) != JWT_OK)
        goto out;
    if ((r = find_key(ks, alg, kid, token, (size_t)(d2 - token), sig, siglen, &key, &reason)) !=
        JWT_OK)
        goto out;
    /* only now, with the signature verified, is the payload parsed */
    if (!(pay = parse_object(praw, prawlen))) {
        reason = "payload is not a JSON object without duplicate names";
        r = JWT_MALFORMED;
        goto out;
    }
    if ((r = check_claims(pay, pol, now_s, &reason)) != JWT_OK)
        goto out;
    if (claims) {
        *claims = pay;
        pay = NULL;
    }
    if (kid_used)
        *kid_used = key->kid;
out:
    if (why && whylen)
        snprintf(why, whylen, "%s", reason);
    free(hraw);
    free(praw);
    free(sig);
    json_decref(hdr);
    json_decref(pay);
    return r;
}
