/*
 * jwt_keys.c - build a configuration's JWT keyset from its auth.jwt.keys
 * entries (jwt_keys.h): HMAC secrets from a file or an environment variable,
 * PEM public keys and JWKS files through jwt_keyset_add_*().
 */
#include "auth/jwt_keys.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "config/config.h"
#include "util/errors.h"
#include "util/mem.h"

/* The error of one key, as config_load() words its errors: "FILE:LINE: OPTION: why". */
static int key_error(const struct sluice_config *cfg, int line, const char *option, const char *why,
                     char *err, size_t errlen)
{
    err_set(err, errlen, "%s:%d: %s: %s", cfg->path ? cfg->path : "(null)", line > 0 ? line : 1,
            option, why);
    return -1;
}

/* Read an HMAC secret from a file (one trailing newline dropped); allocated, *len set. */
static unsigned char *read_secret(const char *path, size_t *len, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(why, whylen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char *buf = sl_malloc(65536);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    int big = buf && n == 65536;
    fclose(f);
    if (!buf || big) {
        err_set(why, whylen, "%s: %s", path, buf ? "larger than 64 KiB" : "out of memory");
        free(buf);
        return NULL;
    }
    if (n && buf[n - 1] == '\n')
        n--;
    if (n && buf[n - 1] == '\r')
        n--;
    *len = n;
    return buf;
}

/* Add one auth.jwt.keys entry to ks; -1 with why set. */
static int add_key(struct jwt_keyset *ks, const struct jwt_key_config *k, char *why, size_t whylen)
{
    unsigned algs = 0;
    int rc;

    for (size_t a = 0; k->algorithms && k->algorithms[a]; a++) {
        unsigned bit = jwt_alg_from_name(k->algorithms[a]);
        if (!bit) { /* config/ checked the name against its own list: they must agree */
            err_set(why, whylen, "unknown algorithm '%s'", k->algorithms[a]);
            return -1;
        }
        algs |= bit;
    }
    if (k->jwks_file)
        return jwt_keyset_add_jwks(ks, k->jwks_file, why, whylen);
    if (k->public_key_file)
        return jwt_keyset_add_pem(ks, k->kid, algs, k->public_key_file, why, whylen);
    unsigned char *secret = NULL;
    size_t len = 0;
    if (k->secret_file) {
        secret = read_secret(k->secret_file, &len, why, whylen);
    } else {
        const char *e = getenv(k->secret_env);
        if (!e || !*e)
            err_set(why, whylen, "the environment variable %s is not set", k->secret_env);
        else if ((secret = (unsigned char *)sl_strdup(e)))
            len = strlen(e);
    }
    rc = secret ? jwt_keyset_add_hmac(ks, k->kid, algs, secret, len, why, whylen) : -1;
    if (secret)
        OPENSSL_cleanse(secret, len);
    free(secret);
    return rc;
}

int jwt_keys_build(struct sluice_config *cfg, char *err, size_t errlen)
{
    char why[400], option[48];
    struct jwt_keyset *ks;

    if (!cfg->auth.jwt.nkeys)
        return 0;
    if (!(ks = jwt_keyset_new()))
        return key_error(cfg, 1, "auth.jwt.keys", "out of memory", err, errlen);
    for (size_t i = 0; i < cfg->auth.jwt.nkeys; i++) {
        const struct jwt_key_config *k = &cfg->auth.jwt.keys[i];
        snprintf(option, sizeof option, "auth.jwt.keys[%zu]", i);
        why[0] = '\0';
        if (add_key(ks, k, why, sizeof why) < 0) {
            jwt_keyset_free(ks);
            return key_error(cfg, k->line, option, why[0] ? why : "the key cannot be loaded", err,
                             errlen);
        }
    }
    cfg->auth.jwt.keyset = ks;
    cfg->auth.jwt.keyset_free = jwt_keyset_free;
    return 0;
}

int jwt_keys_config_load(const char *path, struct sluice_config *cfg, char *err, size_t errlen)
{
    return config_load_then(path, cfg, jwt_keys_build, err, errlen);
}
