/*
 * jwk.c - building a JWT keyset: HMAC secrets, PEM public keys and JWK Set
 * files (RFC 7517, RFC 7518 section 6, RFC 8037), each key pinned to the
 * algorithms it may verify; plus the strict base64url decoder both halves of
 * the module use.
 *
 * Written here (not taken from a package) because the pinning is the point:
 * a key's type decides, at load time, every algorithm it can ever be used
 * with, so no token header can turn an RSA public key into an HMAC secret.
 * Errors are found here, at config load, with the file and kid named.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include "auth/jwk.h"
#include "util/errors.h"
#include "util/mem.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEM_MAX_BYTES (64 * 1024)
#define JWKS_MAX_BYTES (1024 * 1024)
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- base64url ------------------------------------------------------------ */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int jwk_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (len % 4 == 1)
        return -1;
    size_t cap = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    unsigned char *o = sl_malloc(cap + 1);
    if (!o)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            goto fail;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero: one encoding per byte string */
        goto fail;
    assert(n == cap);
    o[n] = 0;
    *out = o;
    *outlen = n;
    return 0;
fail:
    OPENSSL_cleanse(o, cap + 1);
    free(o);
    return -1;
}

/* ---- keys ----------------------------------------------------------------- */

unsigned jwk_kind_algs(enum jwk_kind kind)
{
    switch (kind) {
    case JWK_OCT:
        return JWT_ALGS_HMAC;
    case JWK_RSA:
        return JWT_ALGS_RSA;
    case JWK_P256:
        return JWT_ES256;
    case JWK_P384:
        return JWT_ES384;
    case JWK_P521:
        return JWT_ES512;
    case JWK_ED25519:
    case JWK_ED448:
        return JWT_EDDSA;
    }
    return 0;
}

static const char *kind_name(enum jwk_kind kind)
{
    static const char *const names[] = {
        [JWK_OCT] = "HMAC secret",   [JWK_RSA] = "RSA key",       [JWK_P256] = "EC P-256 key",
        [JWK_P384] = "EC P-384 key", [JWK_P521] = "EC P-521 key", [JWK_ED25519] = "Ed25519 key",
        [JWK_ED448] = "Ed448 key"};
    return names[kind];
}

/* The shortest HMAC secret each HS* accepts: the hash output (RFC 7518 section 3.2). */
static size_t hmac_min_len(unsigned alg)
{
    return alg == JWT_HS256 ? 32 : alg == JWT_HS384 ? 48 : 64;
}

/* algs must be non-zero, known, possible for the kind and (for HMAC) the secret long enough. */
static int check_algs(enum jwk_kind kind, unsigned algs, size_t secret_len, const char *who,
                      char *err, size_t errlen)
{
    if (algs == 0) {
        err_set(err, errlen, "%s: no algorithm allowed for the key", who);
        return -1;
    }
    if (algs & ~JWT_ALGS_ALL) {
        err_set(err, errlen, "%s: unknown algorithm bits 0x%x", who, algs & ~JWT_ALGS_ALL);
        return -1;
    }
    unsigned bad = algs & ~jwk_kind_algs(kind);
    if (bad) {
        err_set(err, errlen, "%s: an %s cannot be used for %s", who, kind_name(kind),
                jwt_alg_name(bad & -bad));
        return -1;
    }
    if (kind == JWK_OCT) {
        for (unsigned a = JWT_HS256; a <= JWT_HS512; a <<= 1) {
            if ((algs & a) && secret_len < hmac_min_len(a)) {
                err_set(err, errlen, "%s: HMAC secret is %zu bytes, %s needs at least %zu", who,
                        secret_len, jwt_alg_name(a), hmac_min_len(a));
                return -1;
            }
        }
    }
    return 0;
}

/* What a public key is; refuses weak or unsupported ones. */
static int pkey_kind(EVP_PKEY *pk, enum jwk_kind *kind, const char *who, char *err, size_t errlen)
{
    switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_RSA: {
        int bits = EVP_PKEY_get_bits(pk);
        if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
            err_set(err, errlen, "%s: RSA key of %d bits (must be %d..%d)", who, bits, RSA_MIN_BITS,
                    RSA_MAX_BITS);
            return -1;
        }
        *kind = JWK_RSA;
        return 0;
    }
    case EVP_PKEY_EC: {
        char group[80];
        size_t glen = 0;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                           &glen) != 1) {
            err_set(err, errlen, "%s: EC key without a named curve", who);
            return -1;
        }
        int nid = OBJ_sn2nid(group);
        if (nid == NID_X9_62_prime256v1)
            *kind = JWK_P256;
        else if (nid == NID_secp384r1)
            *kind = JWK_P384;
        else if (nid == NID_secp521r1)
            *kind = JWK_P521;
        else {
            err_set(err, errlen, "%s: EC curve %s is not P-256, P-384 or P-521", who, group);
            return -1;
        }
        return 0;
    }
    case EVP_PKEY_ED25519:
        *kind = JWK_ED25519;
        return 0;
    case EVP_PKEY_ED448:
        *kind = JWK_ED448;
        return 0;
    case EVP_PKEY_RSA_PSS:
        err_set(err, errlen, "%s: RSASSA-PSS-only keys are not supported (use an RSA key)", who);
        return -1;
    default: {
        const char *t = EVP_PKEY_get0_type_name(pk);
        err_set(err, errlen, "%s: unsupported key type %s", who, t ? t : "(unknown)");
        return -1;
    }
    }
}

/* The key passes OpenSSL's public-key checks (EC point on the curve, RSA modulus sane). */
static int pkey_public_ok(EVP_PKEY *pk)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static void jwk_release(struct jwk *k)
{
    free(k->kid);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof *k);
}

/* Appends a key. Takes ownership of secret and pkey, also on failure. */
static int keyset_push(struct jwt_keyset *ks, const char *kid, unsigned algs, enum jwk_kind kind,
                       unsigned char *secret, size_t secret_len, EVP_PKEY *pkey, const char *who,
                       char *err, size_t errlen)
{
    struct jwk k = {
        .algs = algs, .kind = kind, .secret = secret, .secret_len = secret_len, .pkey = pkey};
    if (kid) {
        for (size_t i = 0; i < ks->n; i++) {
            if (ks->keys[i].kid && strcmp(ks->keys[i].kid, kid) == 0) {
                err_set(err, errlen, "%s: kid \"%s\" is already in the keyset", who, kid);
                goto fail;
            }
        }
        if (!(k.kid = sl_strdup(kid)))
            goto oom;
    }
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 4;
        struct jwk *keys = sl_realloc(ks->keys, cap * sizeof *keys);
        if (!keys)
            goto oom;
        ks->keys = keys;
        ks->cap = cap;
    }
    ks->keys[ks->n++] = k;
    return 0;
oom:
    err_set(err, errlen, "%s: out of memory", who);
fail:
    jwk_release(&k);
    return -1;
}

struct jwt_keyset *jwt_keyset_new(void)
{
    return sl_calloc(1, sizeof(struct jwt_keyset));
}

void jwt_keyset_free(struct jwt_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++)
        jwk_release(&ks->keys[i]);
    free(ks->keys);
    free(ks);
}

size_t jwt_keyset_count(const struct jwt_keyset *ks)
{
    return ks ? ks->n : 0;
}

/* "kid \"a\"" or "key without kid", for messages about keys that come from no file. */
static void describe_kid(char *who, size_t cap, const char *kid)
{
    if (kid)
        snprintf(who, cap, "kid \"%.64s\"", kid);
    else
        snprintf(who, cap, "key without kid");
}

int jwt_keyset_add_hmac(struct jwt_keyset *ks, const char *kid, unsigned algs,
                        const unsigned char *secret, size_t len, char *err, size_t errlen)
{
    char who[96];
    describe_kid(who, sizeof who, kid);
    if (!secret || len == 0) {
        err_set(err, errlen, "%s: empty HMAC secret", who);
        return -1;
    }
    if (check_algs(JWK_OCT, algs, len, who, err, errlen) != 0)
        return -1;
    unsigned char *copy = sl_malloc(len);
    if (!copy) {
        err_set(err, errlen, "%s: out of memory", who);
        return -1;
    }
    memcpy(copy, secret, len);
    return keyset_push(ks, kid, algs, JWK_OCT, copy, len, NULL, who, err, errlen);
}

/* ---- files ---------------------------------------------------------------- */

/* Whole file into a new NUL-terminated buffer (caller frees), at most max bytes. */
static char *read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = sl_malloc(max + 2);
    if (!buf) {
        fclose(f);
        err_set(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    size_t n = fread(buf, 1, max + 1, f);
    int rd_errno = errno;
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        err_set(err, errlen, "%s: %s", path, strerror(rd_errno));
        free(buf);
        return NULL;
    }
    if (n > max) {
        err_set(err, errlen, "%s: larger than %zu bytes", path, max);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void free_secret_text(char *buf, size_t len)
{
    if (buf) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
}

/* Never prompt for a pass phrase: public keys have none. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int jwt_keyset_add_pem(struct jwt_keyset *ks, const char *kid, unsigned algs, const char *pem_path,
                       char *err, size_t errlen)
{
    char who[512];
    if (kid)
        snprintf(who, sizeof who, "%.400s (kid \"%.64s\")", pem_path, kid);
    else
        snprintf(who, sizeof who, "%.400s", pem_path);
    size_t len = 0;
    char *text = read_file(pem_path, PEM_MAX_BYTES, &len, err, errlen);
    if (!text)
        return -1;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    free_secret_text(text, len);
    ERR_clear_error();
    if (!pk) {
        err_set(err, errlen, "%s: no PEM public key (BEGIN PUBLIC KEY) found", who);
        return -1;
    }
    enum jwk_kind kind;
    if (pkey_kind(pk, &kind, who, err, errlen) != 0)
        goto fail;
    if (!pkey_public_ok(pk)) {
        ERR_clear_error();
        err_set(err, errlen, "%s: the public key fails validation", who);
        goto fail;
    }
    if (check_algs(kind, algs, 0, who, err, errlen) != 0)
        goto fail;
    return keyset_push(ks, kid, algs, kind, NULL, 0, pk, who, err, errlen);
fail:
    EVP_PKEY_free(pk);
    return -1;
}

/* ---- JWK ------------------------------------------------------------------ */

/* A required base64url member of a JWK: 1..max_len bytes (max_len 0: no limit). */
static unsigned char *jwk_bytes(json_t *jwk, const char *name, size_t max_len, size_t *len,
                                const char *who, char *err, size_t errlen)
{
    json_t *v = json_object_get(jwk, name);
    unsigned char *out = NULL;
    if (!json_is_string(v)) {
        err_set(err, errlen, "%s: \"%s\" missing or not a string", who, name);
        return NULL;
    }
    if (jwk_b64url_decode(json_string_value(v), json_string_length(v), &out, len) != 0) {
        err_set(err, errlen, "%s: \"%s\" is not unpadded base64url", who, name);
        return NULL;
    }
    if (*len == 0 || (max_len && *len > max_len)) {
        if (*len == 0)
            err_set(err, errlen, "%s: \"%s\" is empty", who, name);
        else
            err_set(err, errlen, "%s: \"%s\" has %zu bytes, at most %zu expected", who, name, *len,
                    max_len);
        OPENSSL_cleanse(out, *len);
        free(out);
        return NULL;
    }
    return out;
}

static EVP_PKEY *pkey_from_params(const char *type, const OSSL_PARAM *params)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static EVP_PKEY *jwk_rsa(json_t *jwk, const char *who, char *err, size_t errlen)
{
    size_t nlen = 0, elen = 0;
    unsigned char *n = jwk_bytes(jwk, "n", 0, &nlen, who, err, errlen);
    unsigned char *e = n ? jwk_bytes(jwk, "e", 0, &elen, who, err, errlen) : NULL;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY *pk = NULL;
    if (!e)
        goto out;
    if (elen > 8) { /* a sane exponent is small; refuse oddities before OpenSSL sees them */
        err_set(err, errlen, "%s: RSA exponent \"e\" is %zu bytes", who, elen);
        goto out;
    }
    bn = BN_bin2bn(n, (int)nlen, NULL);
    be = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) || !(pk = pkey_from_params("RSA", params)))
        err_set(err, errlen, "%s: not a usable RSA public key", who);
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return pk;
}

static EVP_PKEY *jwk_ec(json_t *jwk, enum jwk_kind *kind, const char *who, char *err, size_t errlen)
{
    static const struct {
        const char *crv, *group;
        size_t bytes;
        enum jwk_kind kind;
    } curves[] = {{"P-256", "prime256v1", 32, JWK_P256},
                  {"P-384", "secp384r1", 48, JWK_P384},
                  {"P-521", "secp521r1", 66, JWK_P521}};
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    size_t c = 0;
    while (c < ARRAY_LEN(curves) && !(crv && strcmp(crv, curves[c].crv) == 0))
        c++;
    if (c == ARRAY_LEN(curves)) {
        err_set(err, errlen, "%s: EC \"crv\" must be P-256, P-384 or P-521", who);
        return NULL;
    }
    size_t xlen = 0, ylen = 0, sz = curves[c].bytes;
    unsigned char *x = jwk_bytes(jwk, "x", sz, &xlen, who, err, errlen);
    unsigned char *y = x ? jwk_bytes(jwk, "y", sz, &ylen, who, err, errlen) : NULL;
    unsigned char point[1 + 2 * 66];
    EVP_PKEY *pk = NULL;
    if (y) {
        /* uncompressed: 04 || x || y. RFC 7518 wants x and y full length, but some producers
         * drop leading zero bytes (for P-521 half of all keys): left-pad them. OpenSSL still
         * checks that the point is on the curve. */
        memset(point, 0, sizeof point);
        point[0] = 0x04;
        memcpy(point + 1 + sz - xlen, x, xlen);
        memcpy(point + 1 + 2 * sz - ylen, y, ylen);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)curves[c].group,
                                             0),
            OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * sz),
            OSSL_PARAM_construct_end()};
        if (!(pk = pkey_from_params("EC", params)))
            err_set(err, errlen, "%s: the point (x, y) is not on %s", who, curves[c].crv);
        *kind = curves[c].kind;
    }
    free(x);
    free(y);
    return pk;
}

static EVP_PKEY *jwk_okp(json_t *jwk, enum jwk_kind *kind, const char *who, char *err,
                         size_t errlen)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    int ed25519 = crv && strcmp(crv, "Ed25519") == 0;
    if (!ed25519 && !(crv && strcmp(crv, "Ed448") == 0)) {
        err_set(err, errlen, "%s: OKP \"crv\" must be Ed25519 or Ed448", who);
        return NULL;
    }
    size_t xlen = 0, want = ed25519 ? 32 : 57;
    unsigned char *x = jwk_bytes(jwk, "x", want, &xlen, who, err, errlen);
    if (!x)
        return NULL;
    if (xlen != want) { /* an encoded point, not a number: no leading zeros to drop */
        err_set(err, errlen, "%s: \"x\" has %zu bytes, expected %zu", who, xlen, want);
        free(x);
        return NULL;
    }
    EVP_PKEY *pk =
        EVP_PKEY_new_raw_public_key(ed25519 ? EVP_PKEY_ED25519 : EVP_PKEY_ED448, NULL, x, xlen);
    free(x);
    if (!pk)
        err_set(err, errlen, "%s: not a usable %s public key", who, crv);
    *kind = ed25519 ? JWK_ED25519 : JWK_ED448;
    return pk;
}

/* Adds keys[index] of a JWKS file; a key for encryption is skipped (returns 0). */
static int add_jwk(struct jwt_keyset *ks, const char *path, size_t index, json_t *jwk, char *err,
                   size_t errlen)
{
    static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth"};
    char who[512];
    snprintf(who, sizeof who, "%.400s: keys[%zu]", path, index);
    if (!json_is_object(jwk)) {
        err_set(err, errlen, "%s: not an object", who);
        return -1;
    }
    json_t *jkid = json_object_get(jwk, "kid");
    if (jkid && !json_is_string(jkid)) {
        err_set(err, errlen, "%s: \"kid\" is not a string", who);
        return -1;
    }
    const char *kid = json_string_value(jkid);
    if (kid)
        snprintf(who, sizeof who, "%.400s: keys[%zu] (kid \"%.64s\")", path, index, kid);

    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty) {
        err_set(err, errlen, "%s: \"kty\" missing or not a string", who);
        return -1;
    }
    /* a private key in the file is an error even if the key would be skipped */
    for (size_t i = 0; strcmp(kty, "oct") != 0 && i < ARRAY_LEN(private_members); i++) {
        if (json_object_get(jwk, private_members[i])) {
            err_set(err, errlen, "%s: private key member \"%s\" in a public JWKS", who,
                    private_members[i]);
            return -1;
        }
    }

    json_t *use = json_object_get(jwk, "use");
    if (use && !json_is_string(use)) {
        err_set(err, errlen, "%s: \"use\" is not a string", who);
        return -1;
    }
    if (use && strcmp(json_string_value(use), "enc") == 0)
        return 0;
    if (use && strcmp(json_string_value(use), "sig") != 0) {
        err_set(err, errlen, "%s: \"use\" must be \"sig\" or \"enc\"", who);
        return -1;
    }

    unsigned algs = 0;
    json_t *jalg = json_object_get(jwk, "alg");
    if (jalg) {
        if (!json_is_string(jalg) || !(algs = jwt_alg_from_name(json_string_value(jalg)))) {
            err_set(err, errlen, "%s: \"alg\" is not a supported signature algorithm", who);
            return -1;
        }
    }

    if (strcmp(kty, "oct") == 0) {
        size_t len = 0;
        unsigned char *k = jwk_bytes(jwk, "k", 0, &len, who, err, errlen);
        if (!k)
            return -1;
        if (!algs) {
            for (unsigned a = JWT_HS256; a <= JWT_HS512; a <<= 1)
                if (len >= hmac_min_len(a))
                    algs |= a;
            if (!algs)
                algs = JWT_HS256; /* so that check_algs names what is too short */
        }
        if (check_algs(JWK_OCT, algs, len, who, err, errlen) != 0) {
            OPENSSL_cleanse(k, len);
            free(k);
            return -1;
        }
        return keyset_push(ks, kid, algs, JWK_OCT, k, len, NULL, who, err, errlen);
    }

    EVP_PKEY *pk = NULL;
    enum jwk_kind kind = JWK_RSA, actual;
    if (strcmp(kty, "RSA") == 0)
        pk = jwk_rsa(jwk, who, err, errlen);
    else if (strcmp(kty, "EC") == 0)
        pk = jwk_ec(jwk, &kind, who, err, errlen);
    else if (strcmp(kty, "OKP") == 0)
        pk = jwk_okp(jwk, &kind, who, err, errlen);
    else {
        err_set(err, errlen, "%s: \"kty\" must be RSA, EC, OKP or oct", who);
        return -1;
    }
    ERR_clear_error();
    if (!pk)
        return -1;
    if (pkey_kind(pk, &actual, who, err, errlen) != 0)
        goto fail;
    if (actual != kind) { /* cannot happen: the constructors above fix the type */
        err_set(err, errlen, "%s: key type mismatch", who);
        goto fail;
    }
    if (!pkey_public_ok(pk)) {
        ERR_clear_error();
        err_set(err, errlen, "%s: the public key fails validation", who);
        goto fail;
    }
    if (!algs)
        algs = jwk_kind_algs(kind);
    if (check_algs(kind, algs, 0, who, err, errlen) != 0)
        goto fail;
    return keyset_push(ks, kid, algs, kind, NULL, 0, pk, who, err, errlen);
fail:
    EVP_PKEY_free(pk);
    return -1;
}

int jwt_keyset_add_jwks(struct jwt_keyset *ks, const char *jwks_path, char *err, size_t errlen)
{
    size_t len = 0, start = ks->n;
    char *text = read_file(jwks_path, JWKS_MAX_BYTES, &len, err, errlen);
    if (!text)
        return -1;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free_secret_text(text, len);
    if (!root) {
        err_set(err, errlen, "%.400s: line %d: %s", jwks_path, jerr.line, jerr.text);
        return -1;
    }
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        err_set(err, errlen, "%.400s: not a JWK Set ({\"keys\": [...]})", jwks_path);
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(keys); i++)
        if (add_jwk(ks, jwks_path, i, json_array_get(keys, i), err, errlen) != 0)
            goto fail;
    if (ks->n == start) {
        err_set(err, errlen, "%.400s: no signature key in the set", jwks_path);
        goto fail;
    }
    json_decref(root);
    return 0;
fail:
    while (ks->n > start)
        jwk_release(&ks->keys[--ks->n]);
    json_decref(root);
    return -1;
}
