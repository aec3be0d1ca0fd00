/*
 * dlq.c - `sluice dlq ...`: the DLQ runbook from a shell, against a running
 * server over HTTP (libcurl). Prints the server's JSON answer.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "util/buf.h"

static int is_id(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

int cmd_dlq(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},        {"dataset", required_argument, NULL, 'd'},
        {"error-code", required_argument, NULL, 'e'}, {"status", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'n'},      {"cursor", required_argument, NULL, 'a'},
        {"order", required_argument, NULL, 'O'},      {"since", required_argument, NULL, 'S'},
        {"until", required_argument, NULL, 'U'},      {"all", no_argument, NULL, 'A'},
        {"dry-run", no_argument, NULL, 'r'},          {NULL, 0, NULL, 0}};
    const char *base = NULL;
    const char *dataset = NULL, *code = NULL, *status = NULL;
    struct list_opts lo = {0};
    int all = 0, dry = 0, o;
    const char *usage = cli_find("dlq")->usage;
    if (argc < 2) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    const char *sub = argv[1];
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (client_list_opt(o, optarg, &lo))
            continue;
        switch (o) {
        case 'u':
            base = optarg;
            break;
        case 'd':
            dataset = optarg;
            break;
        case 'e':
            code = optarg;
            break;
        case 's':
            status = optarg;
            break;
        case 'A':
            all = 1;
            break;
        case 'r':
            dry = 1;
            break;
        default:
            fprintf(stderr, "%s", usage);
            return 2;
        }
    }
    const char *id = optind < argc ? argv[optind] : NULL;
    struct buf url;
    buf_init(&url, 8192);
    client_base(base, &url);
    int rc = 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strcmp(sub, "list")) {
        buf_appends(&url, "/api/v1/dlq");
        client_param(&url, "dataset", dataset);
        client_param(&url, "error_code", code);
        client_param(&url, "status", status);
        if (client_list_params(&url, &lo, "since", "until") == 0)
            rc = client_print("GET", url.data, NULL);
    } else if (!strcmp(sub, "show") && is_id(id)) {
        buf_printf(&url, "/api/v1/dlq/%s", id);
        rc = client_print("GET", url.data, NULL);
    } else if (!strcmp(sub, "retry") && all && !id) {
        json_t *f = json_object();
        if (dataset)
            json_object_set_new(f, "dataset", json_string(dataset));
        if (code)
            json_object_set_new(f, "error_code", json_string(code));
        char *body = json_dumps(f, JSON_COMPACT);
        json_decref(f);
        buf_appends(&url, "/api/v1/dlq/retry");
        rc = client_print("POST", url.data, body);
        free(body);
    } else if (!strcmp(sub, "retry") && is_id(id)) {
        buf_printf(&url, "/api/v1/dlq/%s/retry", id);
        rc = client_print("POST", url.data, "");
    } else if (!strcmp(sub, "drop") && !id) {
        buf_appends(&url, "/api/v1/dlq");
        client_param(&url, "dataset", dataset);
        client_param(&url, "error_code", code);
        client_param(&url, "dry_run", dry ? "true" : NULL);
        client_param(&url, "all", all ? "true" : NULL);
        if (client_time_param(&url, "since", "since", lo.since) == 0 &&
            client_time_param(&url, "until", "until", lo.until) == 0)
            rc = client_print("DELETE", url.data, NULL);
    } else if (!strcmp(sub, "drop") && is_id(id)) {
        buf_printf(&url, "/api/v1/dlq/%s", id);
        rc = client_print("DELETE", url.data, NULL);
    } else {
        fprintf(stderr, "%s", usage);
    }
    curl_global_cleanup();
    buf_release(&url);
    return rc;
}
