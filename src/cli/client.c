/*
 * client.c - see client.h.
 */
#include "cli/client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/timeparse.h"
#include "util/mem.h"

static size_t collect(char *p, size_t size, size_t n, void *userdata)
{
    if (!userdata)
        return size * n;
    return buf_append(userdata, p, size * n) < 0 ? 0 : size * n;
}

void client_base(const char *flag, struct buf *url)
{
    const char *base = flag && *flag ? flag : getenv("SLUICE_URL");
    if (!base || !*base)
        base = "http://127.0.0.1:8080";
    buf_appends(url, base);
    while (url->len && url->data[url->len - 1] == '/')
        url->data[--url->len] = 0;
}

struct curl_slist *client_auth(struct curl_slist *hdrs)
{
    const char *t = getenv("SLUICE_TOKEN");
    if (!t || !*t)
        return hdrs;
    size_t n = strlen(t) + 32;
    char *h = sl_malloc(n);
    if (!h)
        return hdrs;
    snprintf(h, n, "Authorization: Bearer %s", t);
    hdrs = curl_slist_append(hdrs, h);
    free(h);
    return hdrs;
}

void client_explain(long status)
{
    const char *t = getenv("SLUICE_TOKEN");
    if (status == 401 && (!t || !*t))
        fprintf(stderr, "sluice: the server wants a token (401): set SLUICE_TOKEN to an API key "
                        "(sluice keys create) or a JWT, e.g. SLUICE_TOKEN=slk_... sluice ...\n");
    else if (status == 401)
        fprintf(stderr, "sluice: the server refused the token in SLUICE_TOKEN (401): an unknown, "
                        "revoked or expired API key, or a JWT that does not verify\n");
    else if (status == 403)
        fprintf(stderr, "sluice: the role of the token in SLUICE_TOKEN does not allow this (403): "
                        "use a key of a role that does (docs/api.md, Access control)\n");
}

long client_call(const char *method, const char *url, const char *body, const char *ctype,
                 struct buf *out)
{
    return client_call_hdr(method, url, body, ctype, NULL, out);
}

long client_call_hdr(const char *method, const char *url, const char *body, const char *ctype,
                     const char *header, struct buf *out)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    long status = -1;
    if (!h)
        return -1;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
    hdrs = client_auth(hdrs);
    if (header)
        hdrs = curl_slist_append(hdrs, header);
    if (body) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype ? ctype : "application/json");
        hdrs = curl_slist_append(hdrs, ct);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    if (hdrs)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    CURLcode cr = curl_easy_perform(h);
    if (cr != CURLE_OK)
        fprintf(stderr, "sluice: %s: %s\n", url, curl_easy_strerror(cr));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    client_explain(status);
    return status;
}

int client_print(const char *method, const char *url, const char *body)
{
    struct buf out;
    buf_init(&out, 1u << 30);
    long status = client_call(method, url, body, NULL, &out);
    if (out.len)
        printf("%s%s", out.data, out.data[out.len - 1] == '\n' ? "" : "\n");
    buf_release(&out);
    return (status >= 200 && status < 300) ? 0 : 1;
}

int client_time_param(struct buf *url, const char *name, const char *opt, const char *value)
{
    if (!value)
        return 0;
    int64_t ms;
    char err[256], v[24];
    if (time_parse(value, clock_wall_ms(), &ms, err, sizeof err) < 0) {
        fprintf(stderr, "sluice: --%s: %s\n", opt, err);
        return -1;
    }
    snprintf(v, sizeof v, "%lld", (long long)ms);
    client_param(url, name, v);
    return 0;
}

int client_list_opt(int o, const char *arg, struct list_opts *l)
{
    const char **slot = o == 'n'   ? &l->limit
                        : o == 'a' ? &l->cursor
                        : o == 'O' ? &l->order
                        : o == 'S' ? &l->since
                        : o == 'U' ? &l->until
                                   : NULL;
    if (slot)
        *slot = arg;
    return slot != NULL;
}

int client_list_params(struct buf *url, const struct list_opts *l, const char *since_name,
                       const char *until_name)
{
    client_param(url, "limit", l->limit);
    client_param(url, "order", l->order);
    client_param(url, "cursor", l->cursor);
    if (client_time_param(url, since_name, "since", l->since) < 0 ||
        client_time_param(url, until_name, "until", l->until) < 0)
        return -1;
    return 0;
}

void client_param(struct buf *url, const char *name, const char *value)
{
    if (!value)
        return;
    char *esc = curl_easy_escape(NULL, value, 0);
    buf_printf(url, "%c%s=%s", strchr(url->data, '?') ? '&' : '?', name, esc ? esc : "");
    curl_free(esc);
}
