/*
 * test_jwt.c - JWT verification (src/auth/jwt.h): a valid token per algorithm
 * family through PEM, HMAC and JWKS keys, every rejection rule as its own
 * case, the alg-confusion attacks, the RFC 7515 examples, keyset loading
 * errors and a thread-safety smoke test.
 *
 * Every fixture is made here: keys with EVP_PKEY_Q_keygen, tokens signed by
 * the helpers below, PEM and JWKS files written to temporary files.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/jwt.h"

#define NOW 1700000000LL

static const struct jwt_policy POLICY = {
    .issuer = NULL, .audience = NULL, .leeway_s = 60, .require_exp = 0, .max_token_bytes = 8192};

/* 64 bytes: long enough for HS512 */
static const unsigned char SECRET[64] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";
static const unsigned char SECRET2[64] =
    "fedcba9876543210fedcba9876543210fedcba9876543210fedcba987654321";

/* ---- helpers: encoding ---------------------------------------------------- */

static char *b64url(const unsigned char *p, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(n / 3 * 4 + 5);
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        out[o++] = abc[p[i] >> 2];
        out[o++] = abc[(p[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
        out[o++] = abc[v >> 10];
        out[o++] = abc[(v >> 4) & 63];
        out[o++] = abc[(v & 15) << 2];
    }
    out[o] = 0;
    return out;
}

static char *b64s(const char *s)
{
    return b64url((const unsigned char *)s, strlen(s));
}

static char *cat3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(n);
    snprintf(s, n, "%s.%s.%s", a, b, c);
    return s;
}

/* ---- helpers: signing ----------------------------------------------------- */

struct signer {
    const char *alg;             /* algorithm to sign with (the header is separate) */
    EVP_PKEY *key;               /* private key; NULL for HS* */
    const unsigned char *secret; /* HS* */
    size_t secret_len;
    int pss_saltlen; /* PS*: 0 = digest length */
    int ecdsa_der;   /* ES*: leave the signature DER instead of R || S */
};

static const char *md_of(unsigned alg)
{
    if (alg & (JWT_HS256 | JWT_RS256 | JWT_PS256 | JWT_ES256))
        return "SHA256";
    if (alg & (JWT_HS384 | JWT_RS384 | JWT_PS384 | JWT_ES384))
        return "SHA384";
    if (alg & (JWT_HS512 | JWT_RS512 | JWT_PS512 | JWT_ES512))
        return "SHA512";
    return NULL;
}

static unsigned char *sign_bytes(const struct signer *s, const char *in, size_t *siglen)
{
    unsigned alg = jwt_alg_from_name(s->alg);
    cr_assert(alg, "test signer alg %s", s->alg);
    const char *md = md_of(alg);
    unsigned char *sig = malloc(1024);
    if (alg & JWT_ALGS_HMAC) {
        cr_assert(EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, s->secret, s->secret_len,
                            (const unsigned char *)in, strlen(in), sig, 1024, siglen));
        return sig;
    }
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    cr_assert(EVP_DigestSignInit_ex(c, &pc, md, NULL, NULL, s->key, NULL) == 1);
    if (alg & (JWT_PS256 | JWT_PS384 | JWT_PS512)) {
        cr_assert(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1);
        cr_assert(EVP_PKEY_CTX_set_rsa_pss_saltlen(
                      pc, s->pss_saltlen ? s->pss_saltlen : RSA_PSS_SALTLEN_DIGEST) == 1);
        cr_assert(EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, md, NULL) == 1);
    }
    size_t n = 1024;
    cr_assert(EVP_DigestSign(c, sig, &n, (const unsigned char *)in, strlen(in)) == 1);
    EVP_MD_CTX_free(c);
    *siglen = n;
    if ((alg & (JWT_ES256 | JWT_ES384 | JWT_ES512)) && !s->ecdsa_der) {
        size_t half = alg == JWT_ES256 ? 32 : alg == JWT_ES384 ? 48 : 66;
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        cr_assert(es);
        const BIGNUM *r, *sv;
        ECDSA_SIG_get0(es, &r, &sv);
        unsigned char *raw = malloc(2 * half);
        cr_assert(BN_bn2binpad(r, raw, (int)half) == (int)half);
        cr_assert(BN_bn2binpad(sv, raw + half, (int)half) == (int)half);
        ECDSA_SIG_free(es);
        free(sig);
        *siglen = 2 * half;
        return raw;
    }
    return sig;
}

/* header.payload.signature; with s == NULL the signature is a placeholder. Caller frees. */
static char *make_token(const struct signer *s, const char *hdr, const char *pay)
{
    char *h = b64s(hdr), *p = b64s(pay);
    size_t n = strlen(h) + strlen(p) + 2;
    char *input = malloc(n);
    snprintf(input, n, "%s.%s", h, p);
    char *sig;
    if (s) {
        size_t siglen = 0;
        unsigned char *raw = sign_bytes(s, input, &siglen);
        sig = b64url(raw, siglen);
        free(raw);
    } else {
        sig = b64s("not a signature");
    }
    char *t = cat3(h, p, sig);
    free(h);
    free(p);
    free(input);
    free(sig);
    return t;
}

/* Like make_token, but the signature is cut to n bytes or extended with zero bytes. */
static char *make_token_siglen(const struct signer *s, const char *hdr, const char *pay, size_t n)
{
    char *h = b64s(hdr), *p = b64s(pay);
    size_t len = strlen(h) + strlen(p) + 2, siglen = 0;
    char *input = malloc(len);
    snprintf(input, len, "%s.%s", h, p);
    unsigned char *raw = sign_bytes(s, input, &siglen);
    unsigned char *sig = calloc(1, n);
    memcpy(sig, raw, n < siglen ? n : siglen);
    char *sig64 = b64url(sig, n);
    char *t = cat3(h, p, sig64);
    free(h);
    free(p);
    free(input);
    free(raw);
    free(sig);
    free(sig64);
    return t;
}

static struct signer hs(const char *alg)
{
    return (struct signer){.alg = alg, .secret = SECRET, .secret_len = sizeof SECRET};
}

static struct signer pk(const char *alg, EVP_PKEY *key)
{
    return (struct signer){.alg = alg, .key = key};
}

/* ---- helpers: keys and files ---------------------------------------------- */

static EVP_PKEY *gen_rsa(size_t bits)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
    cr_assert(k);
    return k;
}

static EVP_PKEY *gen_ec(const char *curve)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    cr_assert(k);
    return k;
}

static EVP_PKEY *gen_ed(const char *type)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, type);
    cr_assert(k);
    return k;
}

static char *temp_file(const char *text, size_t len)
{
    char *path = strdup("/tmp/sluice_test_jwt_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert(write(fd, text, len) == (ssize_t)len);
    close(fd);
    return path;
}

/* The public key as PEM text (caller frees). */
static char *pem_text(EVP_PKEY *k, int private_key)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (private_key)
        cr_assert(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1);
    else
        cr_assert(PEM_write_bio_PUBKEY(b, k) == 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(b);
    return s;
}

static char *pem_file(EVP_PKEY *k)
{
    char *text = pem_text(k, 0);
    char *path = temp_file(text, strlen(text));
    free(text);
    return path;
}

static void drop_file(char *path)
{
    unlink(path);
    free(path);
}

static char *bn_b64(EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    cr_assert(EVP_PKEY_get_bn_param(k, param, &bn) == 1);
    unsigned char buf[1024];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64url(buf, (size_t)n);
}

static json_t *jstr_take(char *s)
{
    json_t *j = json_string(s);
    free(s);
    return j;
}

/* One public JWK for k (kid and alg may be NULL) as a jansson object. */
static json_t *jwk_of(EVP_PKEY *k, const char *kid, const char *alg)
{
    json_t *j = json_object();
    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA:
        json_object_set_new(j, "kty", json_string("RSA"));
        json_object_set_new(j, "n", jstr_take(bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0)));
        json_object_set_new(j, "e", jstr_take(bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0)));
        break;
    case EVP_PKEY_EC: {
        char group[64];
        cr_assert(EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                                 NULL) == 1);
        int sz = strcmp(group, "prime256v1") == 0 ? 32 : strcmp(group, "secp384r1") == 0 ? 48 : 66;
        json_object_set_new(j, "kty", json_string("EC"));
        json_object_set_new(j, "crv",
                            json_string(sz == 32   ? "P-256"
                                        : sz == 48 ? "P-384"
                                                   : "P-521"));
        json_object_set_new(j, "x", jstr_take(bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, sz)));
        json_object_set_new(j, "y", jstr_take(bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, sz)));
        break;
    }
    default: {
        unsigned char raw[64];
        size_t n = sizeof raw;
        cr_assert(EVP_PKEY_get_raw_public_key(k, raw, &n) == 1);
        json_object_set_new(j, "kty", json_string("OKP"));
        json_object_set_new(j, "crv", json_string(n == 32 ? "Ed25519" : "Ed448"));
        json_object_set_new(j, "x", jstr_take(b64url(raw, n)));
        break;
    }
    }
    if (kid)
        json_object_set_new(j, "kid", json_string(kid));
    if (alg)
        json_object_set_new(j, "alg", json_string(alg));
    return j;
}

/* A JWKS file holding keys (a jansson array, stolen). Caller drop_file()s. */
static char *jwks_file(json_t *keys)
{
    json_t *root = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(root, 0);
    char *path = temp_file(text, strlen(text));
    free(text);
    json_decref(root);
    return path;
}

static char *text_file(const char *text)
{
    return temp_file(text, strlen(text));
}

static struct jwt_keyset *ks_hmac(const char *kid, unsigned algs)
{
    struct jwt_keyset *ks = jwt_keyset_new();
    char err[256];
    cr_assert(ks);
    cr_assert_eq(jwt_keyset_add_hmac(ks, kid, algs, SECRET, sizeof SECRET, err, sizeof err), 0,
                 "%s", err);
    return ks;
}

static struct jwt_keyset *ks_pem(EVP_PKEY *k, const char *kid, unsigned algs)
{
    struct jwt_keyset *ks = jwt_keyset_new();
    char err[256], *path = pem_file(k);
    cr_assert_eq(jwt_keyset_add_pem(ks, kid, algs, path, err, sizeof err), 0, "%s", err);
    drop_file(path);
    return ks;
}

/* ---- helpers: verifying --------------------------------------------------- */

/* Verifies tok (not freed) and checks the contract on outputs; returns the result. On JWT_OK
 * *claims_out (if given) gets the claims, *kid_out the kid. */
static enum jwt_result run(const struct jwt_keyset *ks, const struct jwt_policy *pol,
                           const char *tok, int64_t now, json_t **claims_out, const char **kid_out)
{
    json_t *claims = json_null();
    const char *kid = "sentinel";
    char why[160] = "";
    enum jwt_result r = jwt_verify(ks, pol, tok, strlen(tok), now, &claims, &kid, why, sizeof why);
    cr_assert(why[0], "why is always set");
    if (r == JWT_OK) {
        cr_assert(json_is_object(claims));
    } else {
        cr_assert_null(claims, "no claims on %s", jwt_result_name(r));
        cr_assert_null(kid);
        /* the reason never repeats the token */
        const char *dot = strchr(tok, '.');
        size_t hlen = dot ? (size_t)(dot - tok) : strlen(tok);
        if (hlen >= 6) {
            char head[7];
            memcpy(head, tok, 6);
            head[6] = 0;
            cr_assert_null(strstr(why, head), "why leaks the token: %s", why);
        }
    }
    if (claims_out)
        *claims_out = claims;
    else
        json_decref(claims);
    if (kid_out)
        *kid_out = kid;
    return r;
}

static void expect_at(const struct jwt_keyset *ks, const struct jwt_policy *pol, int64_t now,
                      char *tok, enum jwt_result want)
{
    enum jwt_result r = run(ks, pol, tok, now, NULL, NULL);
    cr_assert_eq(r, want, "got %s, want %s", jwt_result_name(r), jwt_result_name(want));
    free(tok);
}

/* tok is freed */
static void expect(const struct jwt_keyset *ks, char *tok, enum jwt_result want)
{
    expect_at(ks, &POLICY, NOW, tok, want);
}

static void expect_hs(const char *hdr, const char *pay, enum jwt_result want)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_ALGS_HMAC);
    struct signer s = hs("HS256");
    expect(ks, make_token(&s, hdr, pay), want);
    jwt_keyset_free(ks);
}

static void expect_claims(const struct jwt_policy *pol, const char *pay, enum jwt_result want)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    struct signer s = hs("HS256");
    expect_at(ks, pol, NOW, make_token(&s, "{\"alg\":\"HS256\"}", pay), want);
    jwt_keyset_free(ks);
}

#define PAYLOAD "{\"sub\":\"u1\",\"exp\":1700003600}"

/* ---- names ---------------------------------------------------------------- */

Test(jwt_names, alg_names_round_trip)
{
    const char *names[] = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256",
                           "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"};
    for (unsigned i = 0; i < 13; i++) {
        cr_assert_eq(jwt_alg_from_name(names[i]), 1u << i, "%s", names[i]);
        cr_assert_str_eq(jwt_alg_name(1u << i), names[i]);
    }
    cr_assert_eq(jwt_alg_from_name("none"), 0);
    cr_assert_eq(jwt_alg_from_name("hs256"), 0);
    cr_assert_eq(jwt_alg_from_name("EDDSA"), 0);
    cr_assert_eq(jwt_alg_from_name(""), 0);
    cr_assert_eq(jwt_alg_from_name(NULL), 0);
    cr_assert_null(jwt_alg_name(JWT_HS256 | JWT_HS384));
    cr_assert_null(jwt_alg_name(0));
}

Test(jwt_names, result_names)
{
    cr_assert_str_eq(jwt_result_name(JWT_OK), "ok");
    cr_assert_str_eq(jwt_result_name(JWT_EXPIRED), "expired");
    cr_assert_str_eq(jwt_result_name(JWT_MISSING_EXP), "missing_exp");
    cr_assert_str_eq(jwt_result_name((enum jwt_result)99), "unknown");
}

/* ---- valid tokens --------------------------------------------------------- */

static void valid_hs(const char *alg, unsigned bit)
{
    struct jwt_keyset *ks = ks_hmac("h1", bit);
    struct signer s = hs(alg);
    char hdr[64];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"h1\"}", alg);
    char *tok = make_token(&s, hdr, PAYLOAD);
    json_t *claims;
    const char *kid;
    cr_assert_eq(run(ks, &POLICY, tok, NOW, &claims, &kid), JWT_OK);
    cr_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "u1");
    cr_assert_str_eq(kid, "h1");
    json_decref(claims);
    free(tok);
    jwt_keyset_free(ks);
}

Test(jwt_valid, hs256_hmac)
{
    valid_hs("HS256", JWT_HS256);
}

Test(jwt_valid, hs384_hmac)
{
    valid_hs("HS384", JWT_HS384);
}

Test(jwt_valid, hs512_hmac)
{
    valid_hs("HS512", JWT_HS512);
}

/* alg: a header alg and signer alg; bit the key's allowed algs */
static void valid_pem(EVP_PKEY *k, const char *alg, unsigned bits)
{
    struct jwt_keyset *ks = ks_pem(k, NULL, bits);
    struct signer s = pk(alg, k);
    char hdr[64];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\"}", alg);
    char *tok = make_token(&s, hdr, PAYLOAD);
    const char *kid = "x";
    cr_assert_eq(run(ks, &POLICY, tok, NOW, NULL, &kid), JWT_OK, "%s", alg);
    cr_assert_null(kid);
    free(tok);
    jwt_keyset_free(ks);
}

Test(jwt_valid, rs256_pem)
{
    EVP_PKEY *k = gen_rsa(2048);
    valid_pem(k, "RS256", JWT_RS256);
    EVP_PKEY_free(k);
}

Test(jwt_valid, ps256_pem)
{
    EVP_PKEY *k = gen_rsa(2048);
    valid_pem(k, "PS256", JWT_PS256);
    EVP_PKEY_free(k);
}

Test(jwt_valid, rs384_rs512_ps384_ps512_pem)
{
    EVP_PKEY *k = gen_rsa(2048);
    valid_pem(k, "RS384", JWT_ALGS_RSA);
    valid_pem(k, "RS512", JWT_ALGS_RSA);
    valid_pem(k, "PS384", JWT_ALGS_RSA);
    valid_pem(k, "PS512", JWT_ALGS_RSA);
    EVP_PKEY_free(k);
}

Test(jwt_valid, es256_pem)
{
    EVP_PKEY *k = gen_ec("P-256");
    valid_pem(k, "ES256", JWT_ES256);
    EVP_PKEY_free(k);
}

Test(jwt_valid, es384_pem)
{
    EVP_PKEY *k = gen_ec("P-384");
    valid_pem(k, "ES384", JWT_ES384);
    EVP_PKEY_free(k);
}

Test(jwt_valid, es512_pem)
{
    EVP_PKEY *k = gen_ec("P-521");
    valid_pem(k, "ES512", JWT_ES512);
    EVP_PKEY_free(k);
}

Test(jwt_valid, eddsa_ed25519_pem)
{
    EVP_PKEY *k = gen_ed("ED25519");
    valid_pem(k, "EdDSA", JWT_EDDSA);
    EVP_PKEY_free(k);
}

Test(jwt_valid, eddsa_ed448_pem)
{
    EVP_PKEY *k = gen_ed("ED448");
    valid_pem(k, "EdDSA", JWT_EDDSA);
    EVP_PKEY_free(k);
}

Test(jwt_valid, every_family_from_jwks)
{
    EVP_PKEY *rsa = gen_rsa(2048), *p256 = gen_ec("P-256"), *p384 = gen_ec("P-384");
    EVP_PKEY *p521 = gen_ec("P-521"), *ed = gen_ed("ED25519"), *ed448 = gen_ed("ED448");
    char *k = b64url(SECRET, sizeof SECRET);
    json_t *keys = json_array();
    json_array_append_new(keys, jwk_of(rsa, "rsa", NULL));
    json_array_append_new(keys, jwk_of(p256, "p256", NULL));
    json_array_append_new(keys, jwk_of(p384, "p384", "ES384"));
    json_array_append_new(keys, jwk_of(p521, "p521", NULL));
    json_array_append_new(keys, jwk_of(ed, "ed", "EdDSA"));
    json_array_append_new(keys, jwk_of(ed448, "ed448", NULL));
    json_array_append_new(keys, json_pack("{s:s,s:s,s:s}", "kty", "oct", "kid", "hmac", "k", k));
    free(k);
    char *path = jwks_file(keys), err[256];
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_jwks(ks, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(jwt_keyset_count(ks), 7);
    drop_file(path);

    static const struct {
        const char *alg, *kid;
    } cases[] = {{"RS256", "rsa"},  {"RS384", "rsa"}, {"RS512", "rsa"},   {"PS256", "rsa"},
                 {"PS384", "rsa"},  {"PS512", "rsa"}, {"ES256", "p256"},  {"ES384", "p384"},
                 {"ES512", "p521"}, {"EdDSA", "ed"},  {"EdDSA", "ed448"}, {"HS256", "hmac"},
                 {"HS384", "hmac"}, {"HS512", "hmac"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        EVP_PKEY *key = strcmp(cases[i].kid, "rsa") == 0     ? rsa
                        : strcmp(cases[i].kid, "p256") == 0  ? p256
                        : strcmp(cases[i].kid, "p384") == 0  ? p384
                        : strcmp(cases[i].kid, "p521") == 0  ? p521
                        : strcmp(cases[i].kid, "ed") == 0    ? ed
                        : strcmp(cases[i].kid, "ed448") == 0 ? ed448
                                                             : NULL;
        struct signer s = key ? pk(cases[i].alg, key) : hs(cases[i].alg);
        char hdr[96];
        /* with kid */
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"%s\"}", cases[i].alg, cases[i].kid);
        char *tok = make_token(&s, hdr, PAYLOAD);
        const char *kid = NULL;
        cr_assert_eq(run(ks, &POLICY, tok, NOW, NULL, &kid), JWT_OK, "%s %s", cases[i].alg,
                     cases[i].kid);
        cr_assert_str_eq(kid, cases[i].kid);
        free(tok);
        /* without kid: found by trying the keys that allow the alg */
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\"}", cases[i].alg);
        tok = make_token(&s, hdr, PAYLOAD);
        cr_assert_eq(run(ks, &POLICY, tok, NOW, NULL, &kid), JWT_OK, "%s no kid", cases[i].alg);
        cr_assert_str_eq(kid, cases[i].kid);
        free(tok);
    }
    jwt_keyset_free(ks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(p521);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ed448);
}

Test(jwt_valid, jwks_alg_pins_the_key)
{
    EVP_PKEY *rsa = gen_rsa(2048);
    json_t *keys = json_array();
    json_array_append_new(keys, jwk_of(rsa, "r", "RS256"));
    char *path = jwks_file(keys), err[256];
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_jwks(ks, path, err, sizeof err), 0, "%s", err);
    drop_file(path);
    struct signer s = pk("PS256", rsa);
    expect(ks, make_token(&s, "{\"alg\":\"PS256\",\"kid\":\"r\"}", PAYLOAD), JWT_ALG_NOT_ALLOWED);
    expect(ks, make_token(&s, "{\"alg\":\"PS256\"}", PAYLOAD), JWT_NO_KEY);
    s.alg = "RS256";
    expect(ks, make_token(&s, "{\"alg\":\"RS256\",\"kid\":\"r\"}", PAYLOAD), JWT_OK);
    jwt_keyset_free(ks);
    EVP_PKEY_free(rsa);
}

Test(jwt_valid, jwks_skips_encryption_keys)
{
    EVP_PKEY *ec = gen_ec("P-256"), *ec2 = gen_ec("P-256");
    json_t *keys = json_array(), *enc = jwk_of(ec2, "enc", NULL), *sig = jwk_of(ec, "sig", NULL);
    json_object_set_new(enc, "use", json_string("enc"));
    json_object_set_new(sig, "use", json_string("sig"));
    json_array_append_new(keys, enc);
    json_array_append_new(keys, sig);
    char *path = jwks_file(keys), err[256];
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_jwks(ks, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(jwt_keyset_count(ks), 1);
    drop_file(path);
    struct signer s = pk("ES256", ec2);
    expect(ks, make_token(&s, "{\"alg\":\"ES256\",\"kid\":\"enc\"}", PAYLOAD), JWT_UNKNOWN_KID);
    jwt_keyset_free(ks);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec2);
}

Test(jwt_valid, typ_any_string_and_x5t_ignored)
{
    expect_hs("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", PAYLOAD, JWT_OK);
    expect_hs("{\"alg\":\"HS256\",\"typ\":\"application/jwt\"}", PAYLOAD, JWT_OK);
    expect_hs("{\"alg\":\"HS256\",\"x5t\":\"bm90IGEgdGh1bWJwcmludA\"}", PAYLOAD, JWT_OK);
    expect_hs("{\"alg\":\"HS256\",\"b64\":true}", PAYLOAD, JWT_OK);
}

Test(jwt_valid, keys_without_kid_tried_in_order)
{
    struct jwt_keyset *ks = jwt_keyset_new();
    char err[256];
    cr_assert_eq(jwt_keyset_add_hmac(ks, "a", JWT_HS256, SECRET, 32, err, sizeof err), 0);
    cr_assert_eq(jwt_keyset_add_hmac(ks, "b", JWT_HS256, SECRET2, 32, err, sizeof err), 0);
    struct signer s = {.alg = "HS256", .secret = SECRET2, .secret_len = 32};
    char *tok = make_token(&s, "{\"alg\":\"HS256\"}", PAYLOAD);
    const char *kid = NULL;
    cr_assert_eq(run(ks, &POLICY, tok, NOW, NULL, &kid), JWT_OK);
    cr_assert_str_eq(kid, "b");
    free(tok);
    jwt_keyset_free(ks);
}

Test(jwt_valid, outputs_may_be_null)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    struct signer s = hs("HS256");
    char *tok = make_token(&s, "{\"alg\":\"HS256\"}", PAYLOAD);
    cr_assert_eq(jwt_verify(ks, &POLICY, tok, strlen(tok), NOW, NULL, NULL, NULL, 0), JWT_OK);
    free(tok);
    jwt_keyset_free(ks);
}

Test(jwt_valid, token_need_not_be_nul_terminated)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    struct signer s = hs("HS256");
    char *tok = make_token(&s, "{\"alg\":\"HS256\"}", PAYLOAD);
    size_t n = strlen(tok);
    char *buf = malloc(n + 8);
    memcpy(buf, tok, n);
    memcpy(buf + n, ".junk!!", 8);
    cr_assert_eq(jwt_verify(ks, &POLICY, buf, n, NOW, NULL, NULL, NULL, 0), JWT_OK);
    free(buf);
    free(tok);
    jwt_keyset_free(ks);
}

/* ---- encoding and structure ----------------------------------------------- */

#define HS_HDR "{\"alg\":\"HS256\"}"

/* A valid HS256 token, then a modified copy made by edit. */
static char *valid_hs256(void)
{
    struct signer s = hs("HS256");
    return make_token(&s, HS_HDR, PAYLOAD);
}

Test(jwt_reject, too_large_checked_before_decoding)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    struct jwt_policy pol = POLICY;
    pol.max_token_bytes = 16;
    char *tok = valid_hs256();
    expect_at(ks, &pol, NOW, tok, JWT_TOO_LARGE);
    char *junk = malloc(9000);
    memset(junk, '=', 8999);
    junk[8999] = 0;
    expect(ks, junk, JWT_TOO_LARGE); /* garbage, but too large is said first */
    jwt_keyset_free(ks);
}

Test(jwt_reject, two_segments)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    char *tok = valid_hs256();
    *strrchr(tok, '.') = 0;
    expect(ks, tok, JWT_MALFORMED);
    jwt_keyset_free(ks);
}

Test(jwt_reject, four_segments)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    char *tok = valid_hs256(), *four = malloc(strlen(tok) + 8);
    sprintf(four, "%s.AAAA", tok);
    free(tok);
    expect(ks, four, JWT_MALFORMED);
    jwt_keyset_free(ks);
}

Test(jwt_reject, empty_header_segment)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    char *tok = valid_hs256();
    char *rest = strdup(strchr(tok, '.'));
    free(tok);
    expect(ks, rest, JWT_MALFORMED);
    jwt_keyset_free(ks);
}

Test(jwt_reject, empty_payload_segment)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    struct signer s = hs("HS256");
    char *h = b64s(HS_HDR), input[256];
    snprintf(input, sizeof input, "%s.", h);
    size_t siglen;
    unsigned char *sig = sign_bytes(&s, input, &siglen);
    char *sig64 = b64url(sig, siglen);
    expect(ks, cat3(h, "", sig64), JWT_MALFORMED);
    free(h);
    free(sig);
    free(sig64);
    jwt_keyset_free(ks);
}

Test(jwt_reject, stripped_signature)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    char *tok = valid_hs256();
    strrchr(tok, '.')[1] = 0; /* "header.payload." */
    expect(ks, tok, JWT_MALFORMED);
    jwt_keyset_free(ks);
}

Test(jwt_reject, padding)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    /* the HS256 signature is 32 bytes: 43 characters, "=" would pad it to 44 */
    char *tok = valid_hs256(), *padded = malloc(strlen(tok) + 2);
    sprintf(padded, "%s=", tok);
    free(tok);
    expect(ks, padded, JWT_MALFORMED);
    /* a header whose encoding needs padding, written with it */
    struct signer s = hs("HS256");
    char *t2 = make_token(&s, "{\"alg\":\"HS256\" }", PAYLOAD); /* 17 bytes: 23 chars */
    char *dot = strchr(t2, '.');
    char *withpad = malloc(strlen(t2) + 2);
    sprintf(withpad, "%.*s=%s", (int)(dot - t2), t2, dot);
    free(t2);
    expect(ks, withpad, JWT_MALFORMED);
    jwt_keyset_free(ks);
}

Test(jwt_reject, standard_base64_alphabet)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    char *tok = valid_hs256();
    strrchr(tok, '.')[1] = '+';
    expect(ks, tok, JWT_MALFORMED);
    tok = valid_hs256();
    strrchr(tok, '.')[2] = '/';
    expect(ks, tok, JWT_MALFORMED);
    tok = valid_hs256();
    tok[3] = ' ';
    expect(ks, tok, JWT_MALFORMED);
    jwt_keyset_free(ks);
}

Test(jwt_reject, impossible_length)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    char *tok = valid_hs256(), *longer = malloc(strlen(tok) + 4);
    /* 43 signature characters + "AA" = 45: 45 % 4 == 1 */
    sprintf(longer, "%sAA", tok);
    free(tok);
    expect(ks, longer, JWT_MALFORMED);
    jwt_keyset_free(ks);
}

Test(jwt_reject, non_canonical_trailing_bits)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    char *tok = valid_hs256();
    /* the last of 43 characters carries 4 data bits and 2 unused ones: set an unused bit.
     * The bytes decoded stay the same, so only the encoding check can catch it. */
    char *last = tok + strlen(tok) - 1;
    int v = (int)(strchr(abc, *last) - abc);
    cr_assert_eq(v & 3, 0);
    *last = abc[v | 1];
    expect(ks, tok, JWT_MALFORMED);
    jwt_keyset_free(ks);
}

Test(jwt_reject, header_not_json_object)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    struct signer s = hs("HS256");
    expect(ks, make_token(&s, "[\"HS256\"]", PAYLOAD), JWT_MALFORMED);
    expect(ks, make_token(&s, "not json", PAYLOAD), JWT_MALFORMED);
    expect(ks, make_token(&s, "{\"alg\":\"HS256\"} {}", PAYLOAD), JWT_MALFORMED);
    jwt_keyset_free(ks);
}

Test(jwt_reject, payload_not_json_object)
{
    expect_hs(HS_HDR, "[1,2]", JWT_MALFORMED);
    expect_hs(HS_HDR, "\"a string\"", JWT_MALFORMED);
    expect_hs(HS_HDR, "{\"exp\":", JWT_MALFORMED);
}

Test(jwt_reject, duplicate_header_member)
{
    expect_hs("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", PAYLOAD, JWT_MALFORMED);
}

Test(jwt_reject, duplicate_payload_member)
{
    expect_hs(HS_HDR, "{\"sub\":\"a\",\"sub\":\"b\"}", JWT_MALFORMED);
}

Test(jwt_reject, nul_in_member_name)
{
    expect_hs("{\"alg\":\"HS256\",\"k\\u0000id\":\"x\"}", PAYLOAD, JWT_MALFORMED);
}

/* ---- header --------------------------------------------------------------- */

Test(jwt_reject, alg_missing_or_not_string)
{
    expect_hs("{\"typ\":\"JWT\"}", PAYLOAD, JWT_MALFORMED);
    expect_hs("{\"alg\":256}", PAYLOAD, JWT_MALFORMED);
    expect_hs("{\"alg\":null}", PAYLOAD, JWT_MALFORMED);
}

Test(jwt_reject, alg_none_any_case)
{
    const char *nones[] = {"none", "None", "NONE", "nOnE"};
    for (size_t i = 0; i < 4; i++) {
        char hdr[64];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\"}", nones[i]);
        expect_hs(hdr, PAYLOAD, JWT_ALG_NONE);
    }
}

Test(jwt_reject, alg_unknown)
{
    expect_hs("{\"alg\":\"HS1024\"}", PAYLOAD, JWT_ALG_NOT_ALLOWED);
    expect_hs("{\"alg\":\"hs256\"}", PAYLOAD, JWT_ALG_NOT_ALLOWED);
    expect_hs("{\"alg\":\"none \"}", PAYLOAD, JWT_ALG_NOT_ALLOWED);
}

Test(jwt_reject, header_jku)
{
    expect_hs("{\"alg\":\"HS256\",\"jku\":\"https://evil.example/jwks\"}", PAYLOAD,
              JWT_FORBIDDEN_HEADER);
}

Test(jwt_reject, header_x5u)
{
    expect_hs("{\"alg\":\"HS256\",\"x5u\":\"https://evil.example/cert\"}", PAYLOAD,
              JWT_FORBIDDEN_HEADER);
}

Test(jwt_reject, header_jwk)
{
    expect_hs("{\"alg\":\"HS256\",\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}}", PAYLOAD,
              JWT_FORBIDDEN_HEADER);
}

Test(jwt_reject, header_x5c)
{
    expect_hs("{\"alg\":\"HS256\",\"x5c\":[\"MIIB\"]}", PAYLOAD, JWT_FORBIDDEN_HEADER);
}

Test(jwt_reject, header_crit)
{
    expect_hs("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", PAYLOAD, JWT_FORBIDDEN_HEADER);
    expect_hs("{\"alg\":\"HS256\",\"crit\":[]}", PAYLOAD, JWT_FORBIDDEN_HEADER);
}

Test(jwt_reject, header_b64_false)
{
    expect_hs("{\"alg\":\"HS256\",\"b64\":false,\"crit\":[\"b64\"]}", PAYLOAD,
              JWT_FORBIDDEN_HEADER);
    expect_hs("{\"alg\":\"HS256\",\"b64\":false}", PAYLOAD, JWT_FORBIDDEN_HEADER);
}

Test(jwt_reject, typ_not_string)
{
    expect_hs("{\"alg\":\"HS256\",\"typ\":1}", PAYLOAD, JWT_MALFORMED);
}

Test(jwt_reject, kid_not_string)
{
    expect_hs("{\"alg\":\"HS256\",\"kid\":7}", PAYLOAD, JWT_MALFORMED);
}

Test(jwt_reject, kid_unknown)
{
    struct jwt_keyset *ks = ks_hmac("k1", JWT_HS256);
    struct signer s = hs("HS256");
    expect(ks, make_token(&s, "{\"alg\":\"HS256\",\"kid\":\"k2\"}", PAYLOAD), JWT_UNKNOWN_KID);
    jwt_keyset_free(ks);
}

Test(jwt_reject, kid_does_not_allow_alg)
{
    struct jwt_keyset *ks = ks_hmac("k1", JWT_HS512);
    struct signer s = hs("HS256");
    expect(ks, make_token(&s, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", PAYLOAD), JWT_ALG_NOT_ALLOWED);
    jwt_keyset_free(ks);
}

Test(jwt_reject, no_key_for_alg)
{
    struct jwt_keyset *ks = ks_hmac("k1", JWT_HS512);
    struct signer s = hs("HS256");
    expect(ks, make_token(&s, HS_HDR, PAYLOAD), JWT_NO_KEY);
    jwt_keyset_free(ks);
    ks = jwt_keyset_new(); /* empty */
    expect(ks, make_token(&s, HS_HDR, PAYLOAD), JWT_NO_KEY);
    jwt_keyset_free(ks);
}

Test(jwt_reject, no_key_verifies)
{
    struct jwt_keyset *ks = ks_hmac("k1", JWT_HS256);
    struct signer s = {.alg = "HS256", .secret = SECRET2, .secret_len = 32};
    expect(ks, make_token(&s, HS_HDR, PAYLOAD), JWT_BAD_SIGNATURE);
    expect(ks, make_token(&s, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", PAYLOAD), JWT_BAD_SIGNATURE);
    jwt_keyset_free(ks);
}

/* ---- signatures ----------------------------------------------------------- */

Test(jwt_attack, alg_confusion_rsa_pem_as_hmac_secret)
{
    EVP_PKEY *rsa = gen_rsa(2048);
    char *pem = pem_text(rsa, 0);
    struct signer s = {
        .alg = "HS256", .secret = (const unsigned char *)pem, .secret_len = strlen(pem)};
    /* the keyset holds the RSA key for RS256 only */
    struct jwt_keyset *ks = ks_pem(rsa, "rsa", JWT_RS256);
    char *tok = make_token(&s, HS_HDR, PAYLOAD);
    cr_assert_neq(run(ks, &POLICY, tok, NOW, NULL, NULL), JWT_OK);
    expect(ks, tok, JWT_NO_KEY);
    expect(ks, make_token(&s, "{\"alg\":\"HS256\",\"kid\":\"rsa\"}", PAYLOAD), JWT_ALG_NOT_ALLOWED);
    jwt_keyset_free(ks);
    /* even a key allowed every RSA alg never becomes an HMAC secret */
    ks = ks_pem(rsa, "rsa", JWT_ALGS_RSA);
    expect(ks, make_token(&s, "{\"alg\":\"HS256\",\"kid\":\"rsa\"}", PAYLOAD), JWT_ALG_NOT_ALLOWED);
    jwt_keyset_free(ks);
    free(pem);
    EVP_PKEY_free(rsa);
}

Test(jwt_attack, hs_algs_refused_for_public_keys)
{
    EVP_PKEY *rsa = gen_rsa(2048);
    char *path = pem_file(rsa), err[256];
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_pem(ks, "r", JWT_RS256 | JWT_HS256, path, err, sizeof err), -1);
    cr_assert(strstr(err, "HS256"), "%s", err);
    cr_assert_eq(jwt_keyset_count(ks), 0);
    jwt_keyset_free(ks);
    drop_file(path);
    EVP_PKEY_free(rsa);
}

Test(jwt_attack, rs_token_against_ec_key)
{
    EVP_PKEY *rsa = gen_rsa(2048), *ec = gen_ec("P-256");
    struct jwt_keyset *ks = ks_pem(ec, "ec", JWT_ES256);
    struct signer s = pk("RS256", rsa);
    expect(ks, make_token(&s, "{\"alg\":\"RS256\"}", PAYLOAD), JWT_NO_KEY);
    expect(ks, make_token(&s, "{\"alg\":\"RS256\",\"kid\":\"ec\"}", PAYLOAD), JWT_ALG_NOT_ALLOWED);
    /* an ECDSA signature labelled RS256 goes nowhere either */
    struct signer e = pk("ES256", ec);
    expect(ks, make_token(&e, "{\"alg\":\"RS256\",\"kid\":\"ec\"}", PAYLOAD), JWT_ALG_NOT_ALLOWED);
    jwt_keyset_free(ks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

Test(jwt_attack, es256_token_against_p384_key)
{
    EVP_PKEY *p256 = gen_ec("P-256"), *p384 = gen_ec("P-384");
    struct jwt_keyset *ks = ks_pem(p384, "p384", JWT_ES384);
    struct signer s = pk("ES256", p256);
    expect(ks, make_token(&s, "{\"alg\":\"ES256\"}", PAYLOAD), JWT_NO_KEY);
    expect(ks, make_token(&s, "{\"alg\":\"ES256\",\"kid\":\"p384\"}", PAYLOAD),
           JWT_ALG_NOT_ALLOWED);
    jwt_keyset_free(ks);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
}

Test(jwt_attack, signature_of_another_token)
{
    EVP_PKEY *ec = gen_ec("P-256");
    struct jwt_keyset *ks = ks_pem(ec, NULL, JWT_ES256);
    struct signer s = pk("ES256", ec);
    char *a = make_token(&s, "{\"alg\":\"ES256\"}", "{\"sub\":\"alice\"}");
    char *b = make_token(&s, "{\"alg\":\"ES256\"}", "{\"sub\":\"mallory\",\"admin\":true}");
    char *mix = malloc(strlen(a) + strlen(b));
    sprintf(mix, "%.*s%s", (int)(strrchr(b, '.') - b), b, strrchr(a, '.'));
    expect(ks, mix, JWT_BAD_SIGNATURE);
    expect(ks, a, JWT_OK);
    expect(ks, b, JWT_OK);
    jwt_keyset_free(ks);
    EVP_PKEY_free(ec);
}

Test(jwt_attack, tampered_payload)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    struct signer s = hs("HS256");
    char *a = make_token(&s, HS_HDR, "{\"sub\":\"alice\"}");
    char *p = b64s("{\"sub\":\"admin\"}"), *h = b64s(HS_HDR);
    expect(ks, cat3(h, p, strrchr(a, '.') + 1), JWT_BAD_SIGNATURE);
    free(a);
    free(p);
    free(h);
    jwt_keyset_free(ks);
}

Test(jwt_attack, forged_expired_token_is_bad_signature)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    struct signer s = {.alg = "HS256", .secret = SECRET2, .secret_len = 64};
    expect(ks, make_token(&s, HS_HDR, "{\"exp\":1}"), JWT_BAD_SIGNATURE);
    expect(ks, make_token(&s, HS_HDR, "{\"exp\":\"soon\"}"), JWT_BAD_SIGNATURE);
    expect(ks, make_token(&s, HS_HDR, "[not json"), JWT_BAD_SIGNATURE);
    jwt_keyset_free(ks);
}

Test(jwt_attack, ecdsa_der_signature_refused)
{
    EVP_PKEY *ec = gen_ec("P-256");
    struct jwt_keyset *ks = ks_pem(ec, NULL, JWT_ES256);
    struct signer s = pk("ES256", ec);
    s.ecdsa_der = 1;
    expect(ks, make_token(&s, "{\"alg\":\"ES256\"}", PAYLOAD), JWT_BAD_SIGNATURE);
    jwt_keyset_free(ks);
    EVP_PKEY_free(ec);
}

Test(jwt_attack, ecdsa_wrong_length)
{
    EVP_PKEY *ec = gen_ec("P-256");
    struct jwt_keyset *ks = ks_pem(ec, NULL, JWT_ES256);
    struct signer s = pk("ES256", ec);
    expect(ks, make_token_siglen(&s, "{\"alg\":\"ES256\"}", PAYLOAD, 63), JWT_BAD_SIGNATURE);
    expect(ks, make_token_siglen(&s, "{\"alg\":\"ES256\"}", PAYLOAD, 65), JWT_BAD_SIGNATURE);
    expect(ks, make_token_siglen(&s, "{\"alg\":\"ES256\"}", PAYLOAD, 64), JWT_OK);
    jwt_keyset_free(ks);
    EVP_PKEY_free(ec);
}

Test(jwt_attack, pss_salt_length_pinned)
{
    EVP_PKEY *rsa = gen_rsa(2048);
    struct jwt_keyset *ks = ks_pem(rsa, NULL, JWT_ALGS_RSA);
    struct signer s = pk("PS256", rsa);
    s.pss_saltlen = 20;
    expect(ks, make_token(&s, "{\"alg\":\"PS256\"}", PAYLOAD), JWT_BAD_SIGNATURE);
    /* a PKCS#1 v1.5 signature labelled PS256, and the other way round */
    struct signer r = pk("RS256", rsa), p = pk("PS256", rsa);
    expect(ks, make_token(&r, "{\"alg\":\"PS256\"}", PAYLOAD), JWT_BAD_SIGNATURE);
    expect(ks, make_token(&p, "{\"alg\":\"RS256\"}", PAYLOAD), JWT_BAD_SIGNATURE);
    /* RS256 signature verified as RS384 */
    expect(ks, make_token(&r, "{\"alg\":\"RS384\"}", PAYLOAD), JWT_BAD_SIGNATURE);
    /* an RSA signature one byte short of the modulus */
    expect(ks, make_token_siglen(&r, "{\"alg\":\"RS256\"}", PAYLOAD, 255), JWT_BAD_SIGNATURE);
    expect(ks, make_token_siglen(&r, "{\"alg\":\"RS256\"}", PAYLOAD, 256), JWT_OK);
    jwt_keyset_free(ks);
    EVP_PKEY_free(rsa);
}

Test(jwt_attack, hmac_truncated_signature)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    struct signer s = hs("HS256");
    expect(ks, make_token_siglen(&s, HS_HDR, PAYLOAD, 16), JWT_BAD_SIGNATURE);
    expect(ks, make_token_siglen(&s, HS_HDR, PAYLOAD, 31), JWT_BAD_SIGNATURE);
    expect(ks, make_token_siglen(&s, HS_HDR, PAYLOAD, 33), JWT_BAD_SIGNATURE);
    expect(ks, make_token_siglen(&s, HS_HDR, PAYLOAD, 32), JWT_OK);
    jwt_keyset_free(ks);
}

Test(jwt_attack, alg_none_with_a_signature)
{
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_HS256);
    struct signer s = hs("HS256");
    expect(ks, make_token(&s, "{\"alg\":\"none\"}", PAYLOAD), JWT_ALG_NONE);
    jwt_keyset_free(ks);
}

/* ---- claims --------------------------------------------------------------- */

Test(jwt_claims, exp_not_a_number)
{
    expect_claims(&POLICY, "{\"exp\":\"1700003600\"}", JWT_BAD_CLAIM);
    expect_claims(&POLICY, "{\"exp\":null}", JWT_BAD_CLAIM);
}

Test(jwt_claims, nbf_not_a_number)
{
    expect_claims(&POLICY, "{\"exp\":1700003600,\"nbf\":true}", JWT_BAD_CLAIM);
}

Test(jwt_claims, iat_not_a_number)
{
    expect_claims(&POLICY, "{\"exp\":1700003600,\"iat\":[1]}", JWT_BAD_CLAIM);
}

Test(jwt_claims, real_numbers_accepted)
{
    expect_claims(&POLICY, "{\"exp\":1700003600.5,\"nbf\":1699999999.9,\"iat\":1.7e9}", JWT_OK);
}

Test(jwt_claims, missing_exp)
{
    struct jwt_policy pol = POLICY;
    pol.require_exp = 1;
    expect_claims(&pol, "{\"sub\":\"u\"}", JWT_MISSING_EXP);
    expect_claims(&POLICY, "{\"sub\":\"u\"}", JWT_OK); /* not required */
}

Test(jwt_claims, expired_with_leeway)
{
    /* expired when now >= exp + leeway (60) */
    expect_claims(&POLICY, "{\"exp\":1699999940}", JWT_EXPIRED);
    expect_claims(&POLICY, "{\"exp\":1699999941}", JWT_OK);
    expect_claims(&POLICY, "{\"exp\":0}", JWT_EXPIRED);
    expect_claims(&POLICY, "{\"exp\":-9223372036854775808}", JWT_EXPIRED);
    expect_claims(&POLICY, "{\"exp\":1699999940.5}", JWT_OK);
    struct jwt_policy strict = POLICY;
    strict.leeway_s = 0;
    expect_claims(&strict, "{\"exp\":1700000000}", JWT_EXPIRED);
    expect_claims(&strict, "{\"exp\":1700000001}", JWT_OK);
}

Test(jwt_claims, not_yet_valid_nbf)
{
    expect_claims(&POLICY, "{\"exp\":1700003600,\"nbf\":1700000061}", JWT_NOT_YET_VALID);
    expect_claims(&POLICY, "{\"exp\":1700003600,\"nbf\":1700000060}", JWT_OK);
    expect_claims(&POLICY, "{\"exp\":1700003600,\"nbf\":9223372036854775807}", JWT_NOT_YET_VALID);
}

Test(jwt_claims, issued_in_the_future)
{
    expect_claims(&POLICY, "{\"exp\":1700003600,\"iat\":1700000061}", JWT_NOT_YET_VALID);
    expect_claims(&POLICY, "{\"exp\":1700003600,\"iat\":1700000060}", JWT_OK);
}

Test(jwt_claims, issuer)
{
    struct jwt_policy pol = POLICY;
    pol.issuer = "https://idp.example";
    expect_claims(&pol, "{\"iss\":\"https://idp.example\"}", JWT_OK);
    expect_claims(&pol, "{\"iss\":\"https://idp.example/\"}", JWT_BAD_ISSUER);
    expect_claims(&pol, "{\"iss\":\"https://idp.exampl\"}", JWT_BAD_ISSUER);
    expect_claims(&pol, "{\"sub\":\"no iss\"}", JWT_BAD_ISSUER);
    expect_claims(&pol, "{\"iss\":[\"https://idp.example\"]}", JWT_BAD_ISSUER);
}

Test(jwt_claims, audience)
{
    struct jwt_policy pol = POLICY;
    pol.audience = "sluice";
    expect_claims(&pol, "{\"aud\":\"sluice\"}", JWT_OK);
    expect_claims(&pol, "{\"aud\":[\"other\",\"sluice\"]}", JWT_OK);
    expect_claims(&pol, "{\"aud\":\"sluice2\"}", JWT_BAD_AUDIENCE);
    expect_claims(&pol, "{\"aud\":[\"other\"]}", JWT_BAD_AUDIENCE);
    expect_claims(&pol, "{\"aud\":[]}", JWT_BAD_AUDIENCE);
    expect_claims(&pol, "{\"aud\":[[\"sluice\"],{\"a\":\"sluice\"}]}", JWT_BAD_AUDIENCE);
    expect_claims(&pol, "{\"sub\":\"no aud\"}", JWT_BAD_AUDIENCE);
}

/* ---- RFC 7515 examples ---------------------------------------------------- */

static const char RFC7515_A1[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
                                 "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtc"
                                 "GxlLmNvbS9pc19yb290Ijp0cnVlfQ."
                                 "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char RFC7515_A1_JWK[] = "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-"
                                     "EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}";

Test(jwt_rfc, rfc7515_a1_hs256)
{
    char text[512], err[256];
    snprintf(text, sizeof text, "{\"keys\":[%s]}", RFC7515_A1_JWK);
    char *path = text_file(text);
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_jwks(ks, path, err, sizeof err), 0, "%s", err);
    drop_file(path);
    json_t *claims = NULL;
    cr_assert_eq(run(ks, &POLICY, RFC7515_A1, 1300819000, &claims, NULL), JWT_OK);
    cr_assert_str_eq(json_string_value(json_object_get(claims, "iss")), "joe");
    cr_assert(json_is_true(json_object_get(claims, "http://example.com/is_root")));
    json_decref(claims);
    cr_assert_eq(run(ks, &POLICY, RFC7515_A1, (int64_t)time(NULL), NULL, NULL), JWT_EXPIRED);
    jwt_keyset_free(ks);
}

Test(jwt_rfc, rfc7515_a5_unsecured)
{
    static const char a5[] = "eyJhbGciOiJub25lIn0."
                             "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlL"
                             "mNvbS9pc19yb290Ijp0cnVlfQ.";
    struct jwt_keyset *ks = ks_hmac(NULL, JWT_ALGS_HMAC);
    /* empty signature: refused as malformed before its alg is even read */
    enum jwt_result r = run(ks, &POLICY, a5, 1300819000, NULL, NULL);
    cr_assert_eq(r, JWT_MALFORMED, "got %s", jwt_result_name(r));
    jwt_keyset_free(ks);
}

/* ---- keyset loading ------------------------------------------------------- */

static void add_jwks_fails(json_t *keys, const char *needle)
{
    char *path = jwks_file(keys), err[512] = "";
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_jwks(ks, path, err, sizeof err), -1);
    cr_assert_eq(jwt_keyset_count(ks), 0);
    cr_assert(strstr(err, path), "names the file: %s", err);
    cr_assert(strstr(err, needle), "'%s' not in: %s", needle, err);
    jwt_keyset_free(ks);
    drop_file(path);
}

Test(jwt_keys, jwks_private_member)
{
    EVP_PKEY *ec = gen_ec("P-256");
    json_t *jwk = jwk_of(ec, "priv", NULL);
    json_object_set_new(jwk, "d", json_string("AAAA"));
    add_jwks_fails(json_pack("[o]", jwk), "\"d\"");
    EVP_PKEY *rsa = gen_rsa(2048);
    jwk = jwk_of(rsa, "rsapriv", NULL);
    json_object_set_new(jwk, "p", json_string("AAAA"));
    add_jwks_fails(json_pack("[o]", jwk), "rsapriv");
    jwk = jwk_of(ec, "encpriv", NULL); /* skipped for its use, refused for its "d" */
    json_object_set_new(jwk, "use", json_string("enc"));
    json_object_set_new(jwk, "d", json_string("AAAA"));
    add_jwks_fails(json_pack("[o]", jwk), "encpriv");
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
}

Test(jwt_keys, jwks_all_or_nothing)
{
    EVP_PKEY *ec = gen_ec("P-256");
    json_t *bad = jwk_of(ec, "second", "RS256"); /* an EC key cannot do RS256 */
    add_jwks_fails(json_pack("[o,o]", jwk_of(ec, "first", NULL), bad), "RS256");
    EVP_PKEY_free(ec);
}

Test(jwt_keys, jwks_bad_members)
{
    EVP_PKEY *ec = gen_ec("P-256"), *ed = gen_ed("ED25519"), *p384 = gen_ec("P-384");
    json_t *j = jwk_of(p384, "a", NULL);
    json_object_set_new(j, "crv", json_string("P-256")); /* x, y are 48 bytes */
    add_jwks_fails(json_pack("[o]", j), "\"x\"");
    j = jwk_of(ed, "a2", NULL);
    json_object_set_new(j, "x", json_string("AAAA")); /* 3 bytes */
    add_jwks_fails(json_pack("[o]", j), "\"x\"");
    j = jwk_of(ec, "b", NULL);
    json_object_set_new(j, "y", json_string(json_string_value(json_object_get(j, "x"))));
    add_jwks_fails(json_pack("[o]", j), "not on");
    j = jwk_of(ec, "c", NULL);
    json_object_set_new(j, "x", json_string("AAAA="));
    add_jwks_fails(json_pack("[o]", j), "base64url");
    j = jwk_of(ed, "d", "ES256");
    add_jwks_fails(json_pack("[o]", j), "ES256");
    j = jwk_of(ed, "e", "none");
    add_jwks_fails(json_pack("[o]", j), "alg");
    j = jwk_of(ed, "f", NULL);
    json_object_set_new(j, "crv", json_string("X25519"));
    add_jwks_fails(json_pack("[o]", j), "crv");
    add_jwks_fails(json_pack("[{s:s}]", "kty", "DSA"), "kty");
    add_jwks_fails(json_pack("[{s:s,s:i}]", "kty", "oct", "kid", 5), "kid");
    add_jwks_fails(json_pack("[s]", "key"), "not an object");
    add_jwks_fails(json_array(), "no signature key");
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(p384);
}

/* Some producers drop leading zero bytes of EC coordinates (RFC 7518 says not to): accepted. */
Test(jwt_keys, jwks_short_ec_coordinate)
{
    EVP_PKEY *k = NULL;
    BIGNUM *x = NULL;
    for (int i = 0; i < 64; i++) { /* P-521: x < 2^521, so x has < 66 bytes half of the time */
        k = gen_ec("P-521");
        cr_assert(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1);
        if (BN_num_bytes(x) < 66)
            break;
        BN_free(x);
        x = NULL;
        EVP_PKEY_free(k);
        k = NULL;
    }
    cr_assert(k && x);
    json_t *j = jwk_of(k, "short", NULL);
    json_object_set_new(j, "x", jstr_take(bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 0)));
    BN_free(x);
    char *path = jwks_file(json_pack("[o]", j)), err[256];
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_jwks(ks, path, err, sizeof err), 0, "%s", err);
    drop_file(path);
    struct signer s = pk("ES512", k);
    expect(ks, make_token(&s, "{\"alg\":\"ES512\"}", PAYLOAD), JWT_OK);
    jwt_keyset_free(ks);
    EVP_PKEY_free(k);
}

Test(jwt_keys, jwks_not_a_jwk_set)
{
    const char *texts[] = {"{\"keys\":{}}", "[]", "{\"keys\":[]", "{\"keys\":[],\"keys\":[]}"};
    for (size_t i = 0; i < 4; i++) {
        char *path = text_file(texts[i]), err[256] = "";
        struct jwt_keyset *ks = jwt_keyset_new();
        cr_assert_eq(jwt_keyset_add_jwks(ks, path, err, sizeof err), -1, "%s", texts[i]);
        cr_assert(strstr(err, path), "%s", err);
        jwt_keyset_free(ks);
        drop_file(path);
    }
}

Test(jwt_keys, jwks_short_oct)
{
    char *k = b64url(SECRET, 31);
    add_jwks_fails(json_pack("[{s:s,s:s}]", "kty", "oct", "k", k), "31 bytes");
    free(k);
    /* 32 bytes without alg: HS256 only */
    k = b64url(SECRET, 32);
    char *path = jwks_file(json_pack("[{s:s,s:s,s:s}]", "kty", "oct", "kid", "h", "k", k)),
         err[256];
    free(k);
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_jwks(ks, path, err, sizeof err), 0, "%s", err);
    drop_file(path);
    struct signer s = {.alg = "HS384", .secret = SECRET, .secret_len = 32};
    expect(ks, make_token(&s, "{\"alg\":\"HS384\",\"kid\":\"h\"}", PAYLOAD), JWT_ALG_NOT_ALLOWED);
    s.alg = "HS256";
    expect(ks, make_token(&s, "{\"alg\":\"HS256\",\"kid\":\"h\"}", PAYLOAD), JWT_OK);
    jwt_keyset_free(ks);
}

static void add_pem_fails(EVP_PKEY *k, unsigned algs, const char *needle)
{
    char *path = pem_file(k), err[512] = "";
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_pem(ks, "kid-x", algs, path, err, sizeof err), -1);
    cr_assert_eq(jwt_keyset_count(ks), 0);
    cr_assert(strstr(err, path) && strstr(err, "kid-x"), "names file and kid: %s", err);
    cr_assert(strstr(err, needle), "'%s' not in: %s", needle, err);
    jwt_keyset_free(ks);
    drop_file(path);
}

Test(jwt_keys, ec_key_with_wrong_algs)
{
    EVP_PKEY *p256 = gen_ec("P-256"), *p384 = gen_ec("P-384");
    add_pem_fails(p256, JWT_RS256, "RS256");
    add_pem_fails(p256, JWT_ES256 | JWT_ES384, "ES384");
    add_pem_fails(p256, JWT_HS256, "HS256");
    add_pem_fails(p384, JWT_ES256, "ES256");
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
}

Test(jwt_keys, rsa_key_with_wrong_algs)
{
    EVP_PKEY *rsa = gen_rsa(2048);
    add_pem_fails(rsa, JWT_ES256, "ES256");
    add_pem_fails(rsa, JWT_EDDSA, "EdDSA");
    add_pem_fails(rsa, 0, "no algorithm");
    add_pem_fails(rsa, 1u << 20, "unknown");
    EVP_PKEY_free(rsa);
}

Test(jwt_keys, ed_key_with_wrong_algs)
{
    EVP_PKEY *ed = gen_ed("ED25519");
    add_pem_fails(ed, JWT_ES256, "ES256");
    EVP_PKEY_free(ed);
}

Test(jwt_keys, rsa_key_too_small)
{
    EVP_PKEY *rsa = gen_rsa(1024);
    add_pem_fails(rsa, JWT_RS256, "1024");
    EVP_PKEY_free(rsa);
}

Test(jwt_keys, short_hmac_secret)
{
    char err[256];
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_hmac(ks, "a", JWT_HS256, SECRET, 31, err, sizeof err), -1);
    cr_assert(strstr(err, "\"a\"") && strstr(err, "HS256"), "%s", err);
    cr_assert_eq(jwt_keyset_add_hmac(ks, "a", JWT_HS384, SECRET, 47, err, sizeof err), -1);
    cr_assert_eq(jwt_keyset_add_hmac(ks, "a", JWT_HS512, SECRET, 63, err, sizeof err), -1);
    cr_assert_eq(jwt_keyset_add_hmac(ks, "a", JWT_HS256 | JWT_HS512, SECRET, 32, err, sizeof err),
                 -1);
    cr_assert(strstr(err, "HS512"), "%s", err);
    cr_assert_eq(jwt_keyset_add_hmac(ks, "a", JWT_HS256, SECRET, 0, err, sizeof err), -1);
    cr_assert_eq(jwt_keyset_count(ks), 0);
    cr_assert_eq(jwt_keyset_add_hmac(ks, "a", JWT_HS256, SECRET, 32, err, sizeof err), 0);
    cr_assert_eq(jwt_keyset_add_hmac(ks, "b", JWT_ALGS_HMAC, SECRET, 64, err, sizeof err), 0);
    cr_assert_eq(jwt_keyset_count(ks), 2);
    jwt_keyset_free(ks);
}

Test(jwt_keys, hmac_secret_with_public_key_algs)
{
    char err[256];
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_hmac(ks, "a", JWT_RS256, SECRET, 64, err, sizeof err), -1);
    cr_assert(strstr(err, "RS256"), "%s", err);
    cr_assert_eq(jwt_keyset_add_hmac(ks, "a", JWT_HS256 | JWT_ES256, SECRET, 64, err, sizeof err),
                 -1);
    cr_assert_eq(jwt_keyset_count(ks), 0);
    jwt_keyset_free(ks);
}

Test(jwt_keys, duplicate_kid)
{
    char err[256];
    struct jwt_keyset *ks = ks_hmac("same", JWT_HS256);
    cr_assert_eq(jwt_keyset_add_hmac(ks, "same", JWT_HS256, SECRET2, 64, err, sizeof err), -1);
    cr_assert(strstr(err, "same"), "%s", err);
    cr_assert_eq(jwt_keyset_add_hmac(ks, NULL, JWT_HS256, SECRET2, 64, err, sizeof err), 0);
    cr_assert_eq(jwt_keyset_add_hmac(ks, NULL, JWT_HS256, SECRET, 64, err, sizeof err), 0);
    cr_assert_eq(jwt_keyset_count(ks), 3);
    jwt_keyset_free(ks);
}

Test(jwt_keys, unreadable_file)
{
    char err[256] = "";
    struct jwt_keyset *ks = jwt_keyset_new();
    const char *missing = "/nonexistent/sluice/key.pem";
    cr_assert_eq(jwt_keyset_add_pem(ks, NULL, JWT_RS256, missing, err, sizeof err), -1);
    cr_assert(strstr(err, missing) && strstr(err, "No such file"), "%s", err);
    cr_assert_eq(jwt_keyset_add_jwks(ks, missing, err, sizeof err), -1);
    cr_assert(strstr(err, missing), "%s", err);
    cr_assert_eq(jwt_keyset_add_jwks(ks, "/tmp", err, sizeof err), -1); /* a directory */
    cr_assert_eq(jwt_keyset_count(ks), 0);
    jwt_keyset_free(ks);
}

Test(jwt_keys, pem_not_a_public_key)
{
    EVP_PKEY *ec = gen_ec("P-256");
    char *priv = pem_text(ec, 1), *path = text_file(priv), err[256] = "";
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_pem(ks, NULL, JWT_ES256, path, err, sizeof err), -1);
    cr_assert(strstr(err, "PUBLIC KEY"), "%s", err);
    drop_file(path);
    path = text_file("hello\n");
    cr_assert_eq(jwt_keyset_add_pem(ks, NULL, JWT_ES256, path, err, sizeof err), -1);
    drop_file(path);
    cr_assert_eq(jwt_keyset_count(ks), 0);
    jwt_keyset_free(ks);
    free(priv);
    EVP_PKEY_free(ec);
}

Test(jwt_keys, free_accepts_null)
{
    jwt_keyset_free(NULL);
    cr_assert_eq(jwt_keyset_count(NULL), 0);
}

/* ---- threads -------------------------------------------------------------- */

struct thread_job {
    const struct jwt_keyset *ks;
    const char *rs, *es;
    int ok;
};

static void *verify_loop(void *arg)
{
    struct thread_job *job = arg;
    for (int i = 0; i < 2000; i++) {
        json_t *c = NULL;
        const char *kid = NULL;
        if (jwt_verify(job->ks, &POLICY, job->rs, strlen(job->rs), NOW, &c, &kid, NULL, 0) ==
                JWT_OK &&
            kid && strcmp(kid, "rs") == 0)
            job->ok++;
        json_decref(c);
        if (jwt_verify(job->ks, &POLICY, job->es, strlen(job->es), NOW, &c, &kid, NULL, 0) ==
                JWT_OK &&
            kid && strcmp(kid, "es") == 0)
            job->ok++;
        json_decref(c);
    }
    return NULL;
}

Test(jwt_threads, four_threads_share_a_keyset, .timeout = 300)
{
    EVP_PKEY *rsa = gen_rsa(2048), *ec = gen_ec("P-256");
    char *p1 = pem_file(rsa), *p2 = pem_file(ec), err[256];
    struct jwt_keyset *ks = jwt_keyset_new();
    cr_assert_eq(jwt_keyset_add_pem(ks, "rs", JWT_RS256, p1, err, sizeof err), 0, "%s", err);
    cr_assert_eq(jwt_keyset_add_pem(ks, "es", JWT_ES256, p2, err, sizeof err), 0, "%s", err);
    drop_file(p1);
    drop_file(p2);
    struct signer r = pk("RS256", rsa), e = pk("ES256", ec);
    char *rs = make_token(&r, "{\"alg\":\"RS256\"}", PAYLOAD);
    char *es = make_token(&e, "{\"alg\":\"ES256\"}", PAYLOAD);
    pthread_t th[4];
    struct thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct thread_job){.ks = ks, .rs = rs, .es = es};
        cr_assert_eq(pthread_create(&th[i], NULL, verify_loop, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(jobs[i].ok, 4000, "thread %d: %d of 4000 OK", i, jobs[i].ok);
    }
    free(rs);
    free(es);
    jwt_keyset_free(ks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
