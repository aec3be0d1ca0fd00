/*
 * apikey.c - generating, parsing and hashing API keys (see apikey.h), with
 * OpenSSL's RAND_bytes and HMAC; a new key's record and a record's JSON.
 */
#include "auth/apikey.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "auth/role.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/hex.h"
#include "util/mem.h"

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int apikey_generate(char key[APIKEY_LEN + 1], char id[APIKEY_ID_LEN + 1])
{
    unsigned char idb[APIKEY_ID_LEN / 2], sec[33];
    if (RAND_bytes(idb, sizeof idb) != 1 || RAND_bytes(sec, sizeof sec) != 1)
        return -1;
    hex_encode(idb, sizeof idb, id);
    char *p = key + snprintf(key, APIKEY_LEN + 1, "slk_%s_", id);
    /* 43 characters of 6 bits each from the 33 random bytes */
    for (size_t i = 0; i < 43; i++) {
        size_t bit = i * 6;
        unsigned v = ((unsigned)sec[bit / 8] << 8 | sec[bit / 8 + 1]) >> (10 - bit % 8);
        *p++ = B64URL[v & 63];
    }
    *p = '\0';
    OPENSSL_cleanse(sec, sizeof sec);
    return 0;
}

int apikey_parse(const char *key, size_t len, char id[APIKEY_ID_LEN + 1])
{
    if (len != APIKEY_LEN || strncmp(key, "slk_", 4) != 0 || key[4 + APIKEY_ID_LEN] != '_')
        return -1;
    for (size_t i = 0; i < APIKEY_ID_LEN; i++) {
        char c = key[4 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
    }
    for (size_t i = 4 + APIKEY_ID_LEN + 1; i < len; i++)
        if (!strchr(B64URL, key[i]) || key[i] == '\0')
            return -1;
    memcpy(id, key + 4, APIKEY_ID_LEN);
    id[APIKEY_ID_LEN] = '\0';
    return 0;
}

int apikey_hash(const unsigned char *pepper, size_t pepper_len, const char *key, size_t len,
                unsigned char out[32])
{
    unsigned int n = 0;
    return HMAC(EVP_sha256(), pepper, (int)pepper_len, (const unsigned char *)key, len, out, &n) &&
                   n == 32
               ? 0
               : -1;
}

int keys_make(struct store *st, const char *name, const char *role, int64_t expires_ms,
              struct api_key *k, char key[], char *err, size_t errlen)
{
    unsigned char pepper[32];
    memset(k, 0, sizeof *k);
    if (!name || !*name || strlen(name) > 200) {
        snprintf(err, errlen, "name must be a non-empty string of at most 200 bytes");
        return -1;
    }
    int rn = role_from_name(role);
    if (rn <= 0) {
        snprintf(err, errlen, "role must be one of viewer, ingest, operator, admin");
        return -1;
    }
    if (store_key_pepper(st, pepper) < 0 || apikey_generate(key, k->id) < 0 ||
        apikey_hash(pepper, 32, key, strlen(key), k->hash) < 0) {
        snprintf(err, errlen, "cannot make a key: %s", store_errmsg(st));
        OPENSSL_cleanse(pepper, sizeof pepper);
        return -2;
    }
    OPENSSL_cleanse(pepper, sizeof pepper);
    k->name = sl_strdup(name);
    snprintf(k->role, sizeof k->role, "%s", role);
    snprintf(k->prefix, sizeof k->prefix, "%.*s", APIKEY_PREFIX_LEN, key);
    k->created_ms = clock_wall_ms();
    k->expires_ms = expires_ms;
    return k->name ? 0 : -2;
}

static json_t *time_or_null(int64_t ms)
{
    char t[32];
    return ms ? json_string(clock_rfc3339(ms, t, sizeof t)) : json_null();
}

json_t *api_key_json(const struct api_key *k)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o}", "id", k->id, "name", k->name, "role",
                     k->role, "prefix", k->prefix, "created_at", time_or_null(k->created_ms),
                     "expires_at", time_or_null(k->expires_ms), "last_used_at",
                     time_or_null(k->last_used_ms), "revoked_at", time_or_null(k->revoked_ms));
}
