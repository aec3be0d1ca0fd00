/*
 * jwk.h - inside the JWT module: how a keyset holds its keys, shared by the
 * key loading (jwk.c) and the verification (jwt.c). Not for other parts of
 * sluice: they use jwt.h.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef SLUICE_AUTH_JWK_H
#define SLUICE_AUTH_JWK_H

#include <openssl/evp.h>
#include <stddef.h>

#include "auth/jwt.h"

/* What a key is; fixes, once and for all, the algorithms it can ever verify. */
enum jwk_kind { JWK_OCT, JWK_RSA, JWK_P256, JWK_P384, JWK_P521, JWK_ED25519, JWK_ED448 };

struct jwk {
    char *kid;     /* owned, may be NULL */
    unsigned algs; /* allowed; always a subset of jwk_kind_algs(kind) */
    enum jwk_kind kind;
    unsigned char *secret; /* JWK_OCT only: owned, wiped on free */
    size_t secret_len;
    EVP_PKEY *pkey; /* every other kind: owned public key */
};

struct jwt_keyset {
    struct jwk *keys; /* in the order added */
    size_t n, cap;
};

/* Every algorithm a key of this kind can verify (for JWK_OCT regardless of its length). */
unsigned jwk_kind_algs(enum jwk_kind kind);

/*
 * Strict base64url (RFC 4648 section 5) without padding: only [A-Za-z0-9_-],
 * no '=', len % 4 != 1, unused trailing bits zero (the only encoding of the
 * bytes). Returns 0 with *out a new buffer of *outlen bytes (caller frees; it
 * has one extra NUL byte after the data), or -1 if the text is not such an
 * encoding or on OOM. An empty input gives an empty buffer.
 */
int jwk_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *outlen);

#endif
