/*
 * keys.c - `sluice keys create|list|revoke`, one of two ways in: through a
 * running server's /api/v1/keys (--url URL or SLUICE_URL, an admin token in
 * SLUICE_TOKEN), like the other commands that talk to a server; or on the store
 * the configuration names (--config FILE or SLUICE_CONFIG), which needs no key,
 * so that the first admin key can come from somewhere. Both print the same JSON.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/apikey.h"
#include "auth/auth.h"
#include "auth/jwt_keys.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "config/config.h"
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

/* Print a 2xx answer's JSON indented, as the store way does; anything else as it came. */
static int print_answer(long status, struct buf *out)
{
    json_error_t jerr;
    json_t *j = status >= 200 && status < 300 ? json_loadb(out->data, out->len, 0, &jerr) : NULL;
    if (j)
        print_json(j);
    else if (out->len)
        printf("%.*s\n", (int)out->len, out->data);
    return j ? 0 : 1;
}

/* The same three commands through the server's /api/v1/keys. */
static int keys_via_server(const char *url_flag, const char *sub, const char *name,
                           const char *role, const char *expires, const char *id)
{
    struct buf url, out;
    buf_init(&url, 8192);
    buf_init(&out, 64u << 20);
    client_base(url_flag, &url);
    buf_appends(&url, "/api/v1/keys");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    long st;
    if (!strcmp(sub, "create")) {
        json_t *b = json_pack("{s:s,s:s}", "name", name, "role", role);
        if (expires)
            json_object_set_new(b, "expires_in", json_string(expires));
        char *body = json_dumps(b, JSON_COMPACT);
        json_decref(b);
        st = client_call("POST", url.data, body, NULL, &out);
        free(body);
    } else if (!strcmp(sub, "list")) {
        st = client_call("GET", url.data, NULL, NULL, &out);
    } else {
        char *esc = curl_easy_escape(NULL, id, 0);
        buf_printf(&url, "/%s", esc ? esc : "");
        curl_free(esc);
        st = client_call("DELETE", url.data, NULL, NULL, &out);
    }
    int rc = print_answer(st, &out);
    if (rc == 0 && !strcmp(sub, "create"))
        fprintf(stderr, "sluice: the key is shown this once; only its hash is stored\n");
    if (out.data)
        OPENSSL_cleanse(out.data, out.len);
    buf_release(&out);
    buf_release(&url);
    curl_global_cleanup();
    return rc;
}

int cmd_keys(int argc, char **argv)
{
    static const struct option lo[] = {
        {"config", required_argument, NULL, 'c'},  {"url", required_argument, NULL, 'u'},
        {"name", required_argument, NULL, 'n'},    {"role", required_argument, NULL, 'r'},
        {"expires", required_argument, NULL, 'e'}, {NULL, 0, NULL, 0}};
    const char *config = NULL, *url = NULL, *name = NULL, *role = NULL, *expires = NULL;
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'u':
            url = optarg;
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
    if ((!create && !list && !revoke) || optind + (revoke ? 1 : 0) != argc ||
        (create && (!name || !role))) {
        fputs(cli_find("keys")->usage, stderr);
        return 2;
    }
    if (config && url) {
        fprintf(stderr, "sluice keys: --url (through the server) and --config (on the store) "
                        "are two ways in: give one\n");
        return 2;
    }
    uint64_t d = 0;
    if (create && role_from_name(role) <= 0) {
        fprintf(stderr,
                "sluice keys: --role must be one of viewer, ingest, operator, admin, "
                "got '%s'\n",
                role);
        return 2;
    }
    if (expires && (config_parse_duration_ms(expires, &d) < 0 || d == 0)) {
        fprintf(stderr, "sluice keys: --expires: expected a duration like 90d, got '%s'\n",
                expires);
        return 2;
    }
    const char *env_url = getenv("SLUICE_URL");
    if (url || (!config && env_url && *env_url))
        return keys_via_server(url, sub, name, role, expires, revoke ? argv[optind] : NULL);
    if (!config)
        config = getenv("SLUICE_CONFIG");
    struct sluice_config cfg;
    char err[600];
    if (jwt_keys_config_load(config, &cfg, err, sizeof err) < 0 ||
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
        int64_t exp_ms = expires ? clock_wall_ms() + (int64_t)d : 0;
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
        print_json(json_pack("{s:o,s:n}", "items", items, "next_cursor"));
        rc = 0;
    } else {
        int r = store_key_revoke(st, argv[optind], clock_wall_ms());
        if (r < 0)
            fprintf(stderr, "sluice: %s\n", store_errmsg(st));
        else if (r == 1)
            fprintf(stderr, "sluice: no API key '%s'\n", argv[optind]);
        struct api_key k = {0};
        if (r == 0 && store_key_get(st, argv[optind], &k) == 0)
            print_json(api_key_json(&k)); /* as DELETE /api/v1/keys/{id} answers */
        else if (r == 0)
            fprintf(stderr, "sluice: revoked, but cannot read it back: %s\n", store_errmsg(st));
        api_key_release(&k);
        rc = r == 0 ? 0 : 1;
    }
out:
    store_close(st);
    config_release(&cfg);
    return rc;
}
