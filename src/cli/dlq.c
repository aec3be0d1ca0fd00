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
#include "util/buf.h"

static size_t collect(char *p, size_t size, size_t n, void *userdata)
{
    return buf_append(userdata, p, size * n) < 0 ? 0 : size * n;
}

/* Send one request; print the body; 0 on 2xx, 1 otherwise. */
static int call(const char *method, const char *url, const char *body)
{
    CURL *h = curl_easy_init();
    struct buf out;
    struct curl_slist *hdrs = NULL;
    long status = 0;
    int rc = 1;
    buf_init(&out, 256u << 20);
    if (!h)
        return 1;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    CURLcode cr = curl_easy_perform(h);
    if (cr != CURLE_OK) {
        fprintf(stderr, "sluice: %s: %s\n", url, curl_easy_strerror(cr));
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (out.len)
            printf("%s\n", out.data);
        rc = (status >= 200 && status < 300) ? 0 : 1;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    buf_release(&out);
    return rc;
}

static void add_param(struct buf *url, const char *name, const char *value)
{
    if (!value)
        return;
    char *esc = curl_easy_escape(NULL, value, 0);
    buf_printf(url, "%c%s=%s", strchr(url->data, '?') ? '&' : '?', name, esc ? esc : "");
    curl_free(esc);
}

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
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"dataset", required_argument, NULL, 'd'},
                                         {"error-code", required_argument, NULL, 'e'},
                                         {"status", required_argument, NULL, 's'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {"after", required_argument, NULL, 'a'},
                                         {"all", no_argument, NULL, 'A'},
                                         {NULL, 0, NULL, 0}};
    const char *base = getenv("SLUICE_URL");
    const char *dataset = NULL, *code = NULL, *status = NULL, *limit = NULL, *after = NULL;
    int all = 0, o;
    const char *usage = cli_find("dlq")->usage;
    if (argc < 2) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    const char *sub = argv[1];
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
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
        case 'n':
            limit = optarg;
            break;
        case 'a':
            after = optarg;
            break;
        case 'A':
            all = 1;
            break;
        default:
            fprintf(stderr, "%s", usage);
            return 2;
        }
    }
    const char *id = optind < argc ? argv[optind] : NULL;
    if (!base || !*base)
        base = "http://127.0.0.1:8080";
    struct buf url;
    buf_init(&url, 8192);
    buf_appends(&url, base);
    while (url.len && url.data[url.len - 1] == '/')
        url.data[--url.len] = 0;
    int rc = 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strcmp(sub, "list")) {
        buf_appends(&url, "/api/v1/dlq");
        add_param(&url, "dataset", dataset);
        add_param(&url, "error_code", code);
        add_param(&url, "status", status);
        add_param(&url, "limit", limit);
        add_param(&url, "after", after);
        rc = call("GET", url.data, NULL);
    } else if (!strcmp(sub, "show") && is_id(id)) {
        buf_printf(&url, "/api/v1/dlq/%s", id);
        rc = call("GET", url.data, NULL);
    } else if (!strcmp(sub, "retry") && all && !id) {
        json_t *f = json_object();
        if (dataset)
            json_object_set_new(f, "dataset", json_string(dataset));
        if (code)
            json_object_set_new(f, "error_code", json_string(code));
        char *body = json_dumps(f, JSON_COMPACT);
        json_decref(f);
        buf_appends(&url, "/api/v1/dlq/retry");
        rc = call("POST", url.data, body);
        free(body);
    } else if (!strcmp(sub, "retry") && is_id(id)) {
        buf_printf(&url, "/api/v1/dlq/%s/retry", id);
        rc = call("POST", url.data, "");
    } else if (!strcmp(sub, "drop") && is_id(id)) {
        buf_printf(&url, "/api/v1/dlq/%s", id);
        rc = call("DELETE", url.data, NULL);
    } else {
        fprintf(stderr, "%s", usage);
    }
    curl_global_cleanup();
    buf_release(&url);
    return rc;
}
