/*
 * batch.c - `sluice upload` and `sluice batch ...`: the batch runbook from a
 * shell, against a running server. On a terminal, upload draws a progress bar
 * (bytes sent, rate, time left) and --wait follows the batch through its
 * states; off a terminal each prints one JSON line.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "util/buf.h"
#include "util/hex.h"

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
    client_explain(status);
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

/* A download under way: the file goes to out and through the hash; an error answer to err. */
struct download {
    CURL *h;
    FILE *out;
    EVP_MD_CTX *md;
    int64_t bytes;
    struct buf err;
    char digest[128]; /* the Repr-Digest header's sha-256 value (base64) */
};

static size_t dl_write(char *p, size_t size, size_t n, void *arg)
{
    struct download *d = arg;
    long status = 0;
    curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        return buf_append(&d->err, p, size * n) < 0 ? 0 : size * n;
    d->bytes += (int64_t)(size * n);
    EVP_DigestUpdate(d->md, p, size * n);
    return fwrite(p, size, n, d->out);
}

static size_t dl_header(char *p, size_t size, size_t n, void *arg)
{
    struct download *d = arg;
    size_t len = size * n;
    static const char name[] = "repr-digest:";
    if (len > sizeof name && !strncasecmp(p, name, sizeof name - 1)) {
        const char *v = memmem(p, len, "sha-256=:", 9);
        const char *end = v ? memchr(v + 9, ':', len - (size_t)(v + 9 - p)) : NULL;
        if (v && end && (size_t)(end - v - 9) < sizeof d->digest)
            snprintf(d->digest, sizeof d->digest, "%.*s", (int)(end - v - 9), v + 9);
    }
    return len;
}

/* `sluice batch download ID [-o FILE]`: the batch's file, its sha256 checked against the
 * server's Repr-Digest. With -o the file is written to FILE.part and renamed when whole
 * and verified; without, it goes to stdout (and the exit code says whether it verified). */
static int download(const char *base, const char *id, const char *path)
{
    struct download d = {0};
    char url[1024], part[4096] = "";
    int rc = 1;
    char *esc = curl_easy_escape(NULL, id, 0);
    snprintf(url, sizeof url, "%s/api/v1/batches/%s/file", base, esc ? esc : id);
    curl_free(esc);
    buf_init(&d.err, 1 << 20);
    if (path) {
        snprintf(part, sizeof part, "%s.part", path);
        if (!(d.out = fopen(part, "wb"))) {
            fprintf(stderr, "sluice: %s: cannot write\n", part);
            buf_release(&d.err);
            return 1;
        }
    } else {
        d.out = stdout;
    }
    d.h = curl_easy_init();
    d.md = EVP_MD_CTX_new();
    struct curl_slist *hdrs = client_auth(NULL);
    long status = -1;
    if (!d.h || !d.md || EVP_DigestInit_ex(d.md, EVP_sha256(), NULL) != 1)
        goto out;
    curl_easy_setopt(d.h, CURLOPT_URL, url);
    curl_easy_setopt(d.h, CURLOPT_WRITEFUNCTION, dl_write);
    curl_easy_setopt(d.h, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(d.h, CURLOPT_HEADERFUNCTION, dl_header);
    curl_easy_setopt(d.h, CURLOPT_HEADERDATA, &d);
    if (hdrs)
        curl_easy_setopt(d.h, CURLOPT_HTTPHEADER, hdrs);
    CURLcode cr = curl_easy_perform(d.h);
    curl_easy_getinfo(d.h, CURLINFO_RESPONSE_CODE, &status);
    if (cr != CURLE_OK) {
        fprintf(stderr, "sluice: %s: %s\n", url, curl_easy_strerror(cr));
        goto out;
    }
    if (status != 200) {
        printf("%.*s%s", (int)d.err.len, d.err.data ? d.err.data : "",
               d.err.len && d.err.data[d.err.len - 1] == '\n' ? "" : "\n");
        goto out;
    }
    unsigned char dig[32], want[48];
    unsigned len = 0;
    char hex[65], want_hex[65];
    EVP_DigestFinal_ex(d.md, dig, &len);
    hex_encode(dig, 32, hex);
    int wl = d.digest[0] && strlen(d.digest) == 44
                 ? EVP_DecodeBlock(want, (const unsigned char *)d.digest, 44)
                 : -1;
    if (wl < 32) {
        fprintf(stderr, "sluice: %s: the answer has no Repr-Digest sha-256 to check\n", url);
        goto out;
    }
    hex_encode(want, 32, want_hex);
    if (strcmp(hex, want_hex) != 0) {
        fprintf(stderr, "sluice: batch %s: the file's sha256 is %s, the server's %s\n", id, hex,
                want_hex);
        goto out;
    }
    if (path) {
        FILE *f = d.out;
        d.out = NULL;
        if (fclose(f) != 0 || rename(part, path) != 0) {
            fprintf(stderr, "sluice: %s: cannot write\n", path);
            goto out;
        }
        part[0] = 0;
        json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:b}", "batch_id", id, "file", path, "bytes",
                              (json_int_t)d.bytes, "sha256", hex, "verified", 1);
        char *line = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        printf("%s\n", line ? line : "{}");
        free(line);
        json_decref(j);
    } else if (fflush(stdout) != 0) {
        goto out;
    }
    rc = 0;
out:
    if (path && d.out)
        fclose(d.out);
    if (part[0])
        unlink(part);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(d.h);
    EVP_MD_CTX_free(d.md);
    buf_release(&d.err);
    return rc;
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
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"status", required_argument, NULL, 's'},
                                         {"dataset", required_argument, NULL, 'd'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {"cursor", required_argument, NULL, 'a'},
                                         {"order", required_argument, NULL, 'O'},
                                         {"since", required_argument, NULL, 'S'},
                                         {"until", required_argument, NULL, 'U'},
                                         {"csv", no_argument, NULL, 'c'},
                                         {"dry-run", no_argument, NULL, 'r'},
                                         {"reason", required_argument, NULL, 'R'},
                                         {"output", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    const char *usage = cli_find("batch")->usage;
    const char *flag_url = NULL, *status = NULL, *dataset = NULL, *reason = NULL, *output = NULL;
    struct list_opts lo = {0};
    int csv = 0, dry = 0, o;
    if (argc < 2) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    const char *sub = argv[1];
    optind = 2;
    while ((o = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        if (client_list_opt(o, optarg, &lo))
            continue;
        switch (o) {
        case 'u':
            flag_url = optarg;
            break;
        case 'o':
            output = optarg;
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
    } else if (!strcmp(sub, "download")) {
        rc = download(url.data, id, output);
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
        char *end;
        double pct = strtod(arg2, &end);
        if (end == arg2 || *end || !(pct >= 0 && pct <= 100)) {
            fprintf(stderr,
                    "sluice batch set-threshold: PERCENT must be a number from 0 to 100, "
                    "got '%s'\n",
                    arg2);
        } else {
            char body[128];
            snprintf(body, sizeof body, "{\"error_threshold_percent\": %.17g}", pct);
            buf_printf(&url, "/api/v1/batches/%s", id);
            rc = client_print("PATCH", url.data, body);
        }
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
