/*
 * keys.c - `sluice keys create|list|revoke` on the store named by the
 * configuration (the first admin key has to come from somewhere that needs no
 * key), and `sluice reload` against a running server.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/apikey.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "config/config.h"
#include "http/handlers.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"

static void print_json(json_t *j)
{
    char *t = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (t)
        puts(t);
    free(t);
    json_decref(j);
}

int cmd_keys(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"name", required_argument, NULL, 'n'},
                                       {"role", required_argument, NULL, 'r'},
                                       {"expires", required_argument, NULL, 'e'},
                                       {NULL, 0, NULL, 0}};
    const char *config = getenv("SLUICE_CONFIG"), *name = NULL, *role = NULL, *expires = NULL;
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'r':
            role = optarg;
            break;
        case 'e':
            expires = optarg;
            break;
        default:
            fputs(cli_find("keys")->usage, stderr);
            return 2;
        }
    }
    const char *sub = argc > 1 ? argv[1] : "";
    int create = !strcmp(sub, "create"), list = !strcmp(sub, "list"),
        revoke = !strcmp(sub, "revoke");
    if ((!create && !list && !revoke) || (revoke && optind >= argc) ||
        (create && (!name || !role))) {
        fputs(cli_find("keys")->usage, stderr);
        return 2;
    }
    struct sluice_config cfg;
    char err[600];
    if (config_load(config, &cfg, err, sizeof err) < 0 ||
        config_apply_env(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 2;
    }
    struct store *st = store_open(cfg.storage, 0, err, sizeof err);
    int rc = 1;
    if (!st || store_migrate(st) < 0) {
        fprintf(stderr, "sluice: %s\n", st ? store_errmsg(st) : err);
        goto out;
    }
    if (create) {
        int64_t exp_ms = 0;
        uint64_t d;
        if (expires) {
            if (config_parse_duration_ms(expires, &d) < 0 || d == 0) {
                fprintf(stderr, "sluice: --expires: expected a duration like 90d, got '%s'\n",
                        expires);
                rc = 2;
                goto out;
            }
            exp_ms = clock_wall_ms() + (int64_t)d;
        }
        struct api_key k;
        char key[APIKEY_LEN + 1];
        int m = keys_make(st, name, role, exp_ms, &k, key, err, sizeof err);
        if (m < 0) {
            fprintf(stderr, "sluice: %s\n", err);
            rc = m == -1 ? 2 : 1;
            api_key_release(&k);
            goto out;
        }
        if (store_key_add(st, &k) < 0) {
            fprintf(stderr, "sluice: %s\n", store_errmsg(st));
            api_key_release(&k);
            OPENSSL_cleanse(key, sizeof key);
            goto out;
        }
        json_t *j = api_key_json(&k);
        json_object_set_new(j, "key", json_string(key));
        print_json(j);
        fprintf(stderr, "sluice: the key is shown this once; only its hash is stored\n");
        OPENSSL_cleanse(key, sizeof key);
        api_key_release(&k);
        rc = 0;
    } else if (list) {
        struct api_key *v;
        size_t n;
        if (store_key_list(st, &v, &n) < 0) {
            fprintf(stderr, "sluice: %s\n", store_errmsg(st));
            goto out;
        }
        json_t *items = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(items, api_key_json(&v[i]));
            api_key_release(&v[i]);
        }
        free(v);
        print_json(json_pack("{s:o}", "items", items));
        rc = 0;
    } else {
        int r = store_key_revoke(st, argv[optind], clock_wall_ms());
        if (r < 0)
            fprintf(stderr, "sluice: %s\n", store_errmsg(st));
        else if (r == 1)
            fprintf(stderr, "sluice: no API key '%s'\n", argv[optind]);
        else
            printf("{\"id\": \"%s\", \"revoked\": true}\n", argv[optind]);
        rc = r == 0 ? 0 : 1;
    }
out:
    store_close(st);
    config_release(&cfg);
    return rc;
}

int cmd_reload(int argc, char **argv)
{
    static const struct option lo[] = {{"url", required_argument, NULL, 'u'}, {NULL, 0, NULL, 0}};
    const char *url_flag = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o != 'u') {
            fputs(cli_find("reload")->usage, stderr);
            return 2;
        }
        url_flag = optarg;
    }
    struct buf url;
    buf_init(&url, 8192);
    client_base(url_flag, &url);
    buf_appends(&url, "/api/v1/admin/reload");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = client_print("POST", url.data, "");
    curl_global_cleanup();
    buf_release(&url);
    return rc;
}
