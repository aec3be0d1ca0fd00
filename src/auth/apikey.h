/*
 * apikey.h - sluice API keys: `slk_<id>_<secret>`, 16 hex digits of id and 43
 * base64url characters (256 bits) of secret. Only HMAC-SHA256(pepper, key) is
 * stored, with a pepper the store keeps; the id finds the record, the hash is
 * compared in constant time.
 */
#ifndef SLUICE_AUTH_APIKEY_H
#define SLUICE_AUTH_APIKEY_H

#include <stddef.h>

#define APIKEY_ID_LEN 16
#define APIKEY_LEN (4 + APIKEY_ID_LEN + 1 + 43)
#define APIKEY_PREFIX_LEN 12 /* what lists show: "slk_" and 8 digits of the id */

/* A new key (NUL-terminated, APIKEY_LEN chars) into key and its id into id. 0 or -1. */
int apikey_generate(char key[APIKEY_LEN + 1], char id[APIKEY_ID_LEN + 1]);
/* The id of a well-formed key, or -1 (not a sluice key). */
int apikey_parse(const char *key, size_t len, char id[APIKEY_ID_LEN + 1]);
/* HMAC-SHA256(pepper, key) into out (32 bytes). 0 or -1. */
int apikey_hash(const unsigned char *pepper, size_t pepper_len, const char *key, size_t len,
                unsigned char out[32]);

#endif
