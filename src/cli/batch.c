/*
 * batch.c - `sluice upload` and `sluice batch ...`: the batch runbook from a
 * shell, against a running server. On a terminal, upload draws a progress bar
 * (bytes sent, rate, time left) and --wait follows the batch through its
 * states; off a terminal each prints one JSON line.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "util/buf.h"

struct progress {
    int tty;
    double started, last;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    struct progress *p = arg;
    double t = now_s();
    if (!p->tty || (t - p->last < 0.1 && ulnow < ultotal))
        return 0;
    p->last = t;
    double el = t - p->started, rate = el > 0 ? (double)ulnow / el : 0;
    double frac = ultotal > 0 ? (double)ulnow / (double)ultotal : 0;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    double left = rate > 0 ? (double)(ultotal - ulnow) / rate : 0;
    fprintf(stderr, "\r[%s] %5.1f%%  %.1f/%.1f MB  %.1f MB/s  %3.0fs left ", bar, frac * 100,
            (double)ulnow / 1e6, (double)ultotal / 1e6, rate / 1e6, left);
    return 0;
}

/* POST the file; the answer's body into out. Returns the HTTP status or -1. */
static long post_file(const char *url, const char *path, struct buf *out)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) < 0) {
        fprintf(stderr, "sluice: %s: cannot read\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = client_auth(curl_slist_append(NULL, "Content-Type: text/csv"));
    struct progress p = {isatty(STDERR_FILENO), now_s(), 0};
    long status = -1;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
    curl_easy_setopt(h, CURLOPT_READDATA, f);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)sb.st_size);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &p);
    FILE *mem = open_memstream(&out->data, &out->len);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, mem);
    CURLcode cr = curl_easy_perform(h);
    fclose(mem);
    out->cap = out->len + 1;
    if (p.tty)
        fprintf(stderr, "\n");
    if (cr != CURLE_OK)
        fprintf(stderr, "sluice: %s: %s\n", url, curl_easy_strerror(cr));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    fclose(f);
    return status;
}

/* Poll the batch until it is completed or failed. Returns its final JSON. */
static json_t *wait_batch(const char *base, const char *id, int tty)
{
    char url[1024], last[32] = "";
    snprintf(url, sizeof url, "%s/api/v1/batches/%s", base, id);
    for (;;) {
        struct buf out;
        buf_init(&out, 64u << 20);
        long st = client_call("GET", url, NULL, NULL, &out);
        json_error_t jerr;
        json_t *b = st == 200 ? json_loadb(out.data, out.len, 0, &jerr) : NULL;
        buf_release(&out);
        if (!b) {
            fprintf(stderr, "sluice: cannot read batch %s (HTTP %ld)\n", id, st);
            return NULL;
        }
        const char *s = json_string_value(json_object_get(b, "status"));
        if (tty && s && strcmp(s, last)) {
            fprintf(stderr, "%s\n", s);
            snprintf(last, sizeof last, "%s", s);
        }
        if (s && (!strcmp(s, "completed") || !strcmp(s, "failed")))
            return b;
        json_decref(b);
        usleep(300000);
    }
}

int cmd_upload(int argc, char **argv)
{
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"source", required_argument, NULL, 's'},
                                         {"threshold", required_argument, NULL, 't'},
                                         {"wait", no_argument, NULL, 'w'},
                                         {NULL, 0, NULL, 0}};
    const char *flag_url = NULL, *source = NULL, *threshold = NULL;
    int wait = 0, o, rc = 1;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            flag_url = optarg;
            break;
        case 's':
            source = optarg;
            break;
        case 't':
            threshold = optarg;
            break;
        case 'w':
            wait = 1;
            break;
        default:
            fprintf(stderr, "%s", cli_find("upload")->usage);
            return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "%s", cli_find("upload")->usage);
        return 2;
    }
    const char *dataset = argv[optind], *path = argv[optind + 1];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct buf base, url, out;
    buf_init(&base, 4096);
    buf_init(&url, 8192);
    buf_init(&out, 64u << 20);
    client_base(flag_url, &base);
    char *esc = curl_easy_escape(NULL, dataset, 0);
    buf_printf(&url, "%s/api/v1/datasets/%s/batches", base.data, esc);
    curl_free(esc);
    const char *slash = strrchr(path, '/');
    client_param(&url, "filename", slash ? slash + 1 : path);
    client_param(&url, "source", source);
    client_param(&url, "error_threshold_percent", threshold);
    int tty = isatty(STDERR_FILENO);
    long st = post_file(url.data, path, &out);
    json_error_t jerr;
    json_t *ans = out.len ? json_loadb(out.data, out.len, 0, &jerr) : NULL;
    if (st != 202 || !ans) {
        if (out.len)
            printf("%.*s\n", (int)out.len, out.data);
        goto done;
    }
    if (!wait) {
        char *line = json_dumps(ans, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", line);
        free(line);
        rc = 0;
        goto done;
    }
    json_t *fin = wait_batch(base.data, json_string_value(json_object_get(ans, "batch_id")), tty);
    if (fin) {
        const char *s = json_string_value(json_object_get(fin, "status"));
        rc = s && !strcmp(s, "completed") ? 0 : 1;
        if (tty && rc)
            fprintf(stderr, "failed: %s\n",
                    json_string_value(json_object_get(fin, "rejection_reason")));
        char *line = json_dumps(fin, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", line);
        free(line);
        json_decref(fin);
    }
done:
    json_decref(ans);
    buf_release(&out);
    buf_release(&url);
    buf_release(&base);
    curl_global_cleanup();
    return rc;
}

int cmd_batch(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},     {"status", required_argument, NULL, 's'},
        {"dataset", required_argument, NULL, 'd'}, CLIENT_LIST_OPTIONS,
        {"csv", no_argument, NULL, 'c'},           {"dry-run", no_argument, NULL, 'r'},
        {"reason", required_argument, NULL, 'R'},  {NULL, 0, NULL, 0}};
    const char *usage = cli_find("batch")->usage;
    const char *flag_url = NULL, *status = NULL, *dataset = NULL, *reason = NULL;
    struct list_opts lo = {0};
    int csv = 0, dry = 0, o;
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
            flag_url = optarg;
            break;
        case 's':
            status = optarg;
            break;
        case 'd':
            dataset = optarg;
            break;
        case 'c':
            csv = 1;
            break;
        case 'r':
            dry = 1;
            break;
        case 'R':
            reason = optarg;
            break;
        default:
            fprintf(stderr, "%s", usage);
            return 2;
        }
    }
    const char *id = optind < argc ? argv[optind] : NULL;
    const char *arg2 = optind + 1 < argc ? argv[optind + 1] : NULL;
    struct buf url;
    buf_init(&url, 8192);
    client_base(flag_url, &url);
    int rc = 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strcmp(sub, "list")) {
        buf_appends(&url, "/api/v1/batches");
        client_param(&url, "status", status);
        client_param(&url, "dataset", dataset);
        if (client_list_params(&url, &lo, "created_after", "created_before") == 0)
            rc = client_print("GET", url.data, NULL);
    } else if (!id) {
        fprintf(stderr, "%s", usage);
    } else if (!strcmp(sub, "show")) {
        buf_printf(&url, "/api/v1/batches/%s", id);
        rc = client_print("GET", url.data, NULL);
    } else if (!strcmp(sub, "errors")) {
        buf_printf(&url, "/api/v1/batches/%s/errors%s", id, csv ? "?format=csv" : "");
        rc = client_print("GET", url.data, NULL);
    } else if (!strcmp(sub, "reset") || !strcmp(sub, "reprocess")) {
        buf_printf(&url, "/api/v1/batches/%s/%s", id, sub);
        rc = client_print("POST", url.data, "");
    } else if (!strcmp(sub, "fail")) {
        json_t *j = json_pack("{s:s}", "reason", reason ? reason : "failed by an operator");
        char *body = json_dumps(j, JSON_COMPACT);
        buf_printf(&url, "/api/v1/batches/%s/fail", id);
        rc = client_print("POST", url.data, body);
        free(body);
        json_decref(j);
    } else if (!strcmp(sub, "set-threshold") && arg2) {
        char body[128];
        snprintf(body, sizeof body, "{\"error_threshold_percent\": %s}", arg2);
        buf_printf(&url, "/api/v1/batches/%s", id);
        rc = client_print("PATCH", url.data, body);
    } else if (!strcmp(sub, "delete")) {
        buf_printf(&url, "/api/v1/batches/%s%s", id, dry ? "?dry_run=true" : "");
        rc = client_print("DELETE", url.data, NULL);
    } else {
        fprintf(stderr, "%s", usage);
    }
    curl_global_cleanup();
    buf_release(&url);
    return rc;
}
