/*
 * apikey.c - generating, parsing and hashing API keys (see apikey.h), with
 * OpenSSL's RAND_bytes and HMAC.
 */
#include "auth/apikey.h"
#include "util/hex.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

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
