/*
 * apikey.h - sluice API keys: `slk_<id>_<secret>`, 16 hex digits of id and 43
 * base64url characters (256 bits) of secret. Only HMAC-SHA256(pepper, key) is
 * stored, with a pepper the store keeps; the id finds the record, the hash is
 * compared in constant time.
 *
 * Also a new key's record (keys_make) and a record's JSON form (api_key_json), shared by the
 * API (http/h_admin.c) and `sluice keys` on the store (cli/keys.c).
 */
#ifndef SLUICE_AUTH_APIKEY_H
#define SLUICE_AUTH_APIKEY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

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

struct api_key;
struct store;
/* A new API key's record into *k (the caller releases it, api_key_release, whatever the
 * result) and its secret into key (APIKEY_LEN + 1 bytes; the caller cleanses it), with the
 * store's pepper read from st; expires_ms 0 = never. Nothing is stored: the caller adds the
 * record (store_key_add). 0; -1 with err for a bad name or role; -2 when the store or the
 * randomness failed. Any thread that owns st. */
int keys_make(struct store *st, const char *name, const char *role, int64_t expires_ms,
              struct api_key *k, char key[], char *err, size_t errlen);
/* An API key's record as JSON (a new reference), never its secret or hash. */
json_t *api_key_json(const struct api_key *k);

#endif
