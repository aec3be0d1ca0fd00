/*
 * sentinel.c - `sluice sentinel`: the sentinel's rules run from the command
 * line against the store the configuration names, plus the server's own
 * /health/ready. Exit code 0 ok, 1 warning, 2 critical (3 on a usage or
 * configuration error, so scripts can tell them apart).
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/jwt_keys.h"
#include "cli/cli.h"
#include "config/config.h"
#include "ops/sentinel.h"
#include "store/store.h"
#include "util/clock.h"

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p, (void)u;
    return size * n;
}

/* NULL when http://LISTEN/health/ready answers 200, else why (static buffer). */
static const char *server_problem(const char *listen)
{
    static char why[256];
    char url[300];
    snprintf(url, sizeof url, "http://%s/health/ready", listen);
    CURL *h = curl_easy_init();
    if (!h)
        return "curl init failed";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 3L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    long status = 0;
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK)
        snprintf(why, sizeof why, "%s: %s", url, curl_easy_strerror(rc));
    else if (status != 200)
        snprintf(why, sizeof why, "%s answered %ld", url, status);
    else
        return NULL;
    return why;
}

static void print_text(const json_t *report)
{
    printf("%s at %s\n", json_string_value(json_object_get(report, "status")),
           json_string_value(json_object_get(report, "checked_at")));
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(report, "findings"), i, f)
    {
        printf("  [%s] %s: %s\n", json_string_value(json_object_get(f, "severity")),
               json_string_value(json_object_get(f, "rule")),
               json_string_value(json_object_get(f, "summary")));
    }
}

int cmd_sentinel(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"loop", no_argument, NULL, 'l'},
                                       {"interval", required_argument, NULL, 'i'},
                                       {NULL, 0, NULL, 0}};
    const char *config = getenv("SLUICE_CONFIG");
    int json = 0, loop = 0, interval = 30, interval_set = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'l':
            loop = 1;
            break;
        case 'i': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v <= 0 || v > 86400) {
                fprintf(stderr,
                        "sluice sentinel: --interval must be a whole number of seconds from 1 "
                        "to 86400, got '%s'\n",
                        optarg);
                return 3;
            }
            interval = (int)v;
            interval_set = 1;
            break;
        }
        default:
            fputs(cli_find("sentinel")->usage, stderr);
            return 3;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice sentinel: unexpected argument '%s'\n", argv[optind]);
        return 3;
    }
    if (interval_set && !loop) {
        fprintf(stderr, "sluice sentinel: --interval needs --loop (one evaluation has no "
                        "interval)\n");
        return 3;
    }
    struct sluice_config cfg;
    char err[600];
    if (jwt_keys_config_load(config, &cfg, err, sizeof err) < 0 ||
        config_apply_env(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 3;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int64_t started = clock_wall_ms();
    int code = 0;
    for (;;) {
        struct store *st = store_open(cfg.storage, 1, err, sizeof err);
        struct sentinel_input in = {.cfg = &cfg,
                                    .st = st,
                                    .now_ms = clock_wall_ms(),
                                    .started_ms = started - 3600000LL * 24 * 365,
                                    .server_down = server_problem(cfg.listen)};
        json_t *report = sentinel_evaluate(&in);
        store_close(st);
        code = sentinel_exit_code(report);
        if (json) {
            char *t = json_dumps(report, JSON_COMPACT | JSON_PRESERVE_ORDER);
            puts(t ? t : "{}");
            free(t);
        } else {
            print_text(report);
        }
        fflush(stdout);
        json_decref(report);
        if (!loop)
            break;
        sleep((unsigned)interval);
    }
    curl_global_cleanup();
    config_release(&cfg);
    return code;
}
