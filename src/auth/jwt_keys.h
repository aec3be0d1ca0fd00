/*
 * jwt_keys.h - the JWT keyset of a configuration, built from its auth.jwt.keys
 * (the raw settings config/ reads: secret files, secret variables, PEM files,
 * JWKS files) with the key loading of jwt.h.
 *
 * config/ only reads and checks the settings; reading the key material is
 * auth's. So every command that loads a configuration does it through
 * jwt_keys_config_load(), which is config_load() with the keys built as its
 * step (config_load_then): a bad key fails the load with the same message, at
 * the same point (before the alert routes and trusted proxies are checked), as
 * when config_load() built the keys itself.
 * Called on the loading thread (start-up, reload), never concurrently on one cfg.
 */
#ifndef SLUICE_AUTH_JWT_KEYS_H
#define SLUICE_AUTH_JWT_KEYS_H

#include <stddef.h>

struct sluice_config;

/*
 * Build cfg->auth.jwt.keyset from cfg->auth.jwt.keys (nothing when there are no
 * keys). The keyset is owned by cfg: config_release() frees it (through
 * cfg->auth.jwt.keyset_free). On failure returns -1, cfg unchanged but for a
 * NULL keyset, and writes to err a message naming the file, the line and the
 * option, e.g. "sluice.yaml:12: auth.jwt.keys[0]: cannot read /etc/k: No such ...".
 */
int jwt_keys_build(struct sluice_config *cfg, char *err, size_t errlen);

/*
 * config_load() with jwt_keys_build() as its step: what every loader of a
 * configuration calls. On failure cfg is released (as config_load() leaves it)
 * and err says why.
 */
int jwt_keys_config_load(const char *path, struct sluice_config *cfg, char *err, size_t errlen);

#endif
