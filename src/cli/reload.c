/*
 * reload.c - `sluice reload`: make a running server re-read its configuration
 * (POST /api/v1/admin/reload, what SIGHUP does) and report the outcome: what
 * changed, or why the file was refused (the old configuration stays).
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "util/buf.h"

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
    if (optind < argc) {
        fprintf(stderr, "sluice reload: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    struct buf url, out;
    buf_init(&url, 8192);
    buf_init(&out, 1u << 20);
    client_base(url_flag, &url);
    buf_appends(&url, "/api/v1/admin/reload");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    long st = client_call("POST", url.data, "", NULL, &out);
    json_error_t jerr;
    json_t *ans = out.len ? json_loadb(out.data, out.len, 0, &jerr) : NULL;
    const char *why = json_string_value(json_object_get(json_object_get(ans, "error"), "message"));
    int rc = 1;
    if (st == 200) {
        printf("%.*s\n", (int)out.len, out.data);
        rc = 0;
    } else if (why) {
        fprintf(stderr, "sluice reload: %s (HTTP %ld): %s\n",
                st == 422 ? "refused, the configuration in force stays" : "failed", st, why);
    } else if (st > 0) {
        fprintf(stderr, "sluice reload: the server answered %ld: %.*s\n", st, (int)out.len,
                out.data ? out.data : "");
    }
    json_decref(ans);
    buf_release(&out);
    buf_release(&url);
    curl_global_cleanup();
    return rc;
}
