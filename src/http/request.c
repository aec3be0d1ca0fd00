/*
 * request.c - the request's bookkeeping: starting and releasing a request on
 * a connection, its headers, its query parameters (percent-decoding), and the
 * body bytes it counts against limits.max_inflight_bytes. Loop thread only.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

#include "config/catalog.h"
#include "util/clock.h"

void request_release(struct http_request *r)
{
    if (r->sink_state && r->route && r->route->sink)
        r->route->sink->abort(r->sink_state);
    free(r->target);
    free(r->path);
    free(r->query);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    for (size_t i = 0; i < r->nparams; i++)
        free(r->params[i]);
    buf_release(&r->body);
    catalog_release(r->cat);
    memset(r, 0, sizeof *r);
}

/* Give back the body bytes this connection counted against limits.max_inflight_bytes. */
void request_unhold(struct http_conn *c)
{
    if (c->held) {
        __atomic_sub_fetch(&c->loop->srv->inflight, c->held, __ATOMIC_RELAXED);
        c->held = 0;
    }
}

void request_begin(struct http_conn *c)
{
    request_unhold(c);
    struct http_server *s = c->loop->srv;
    request_release(&c->req);
    buf_init(&c->req.body, s->o.max_body_bytes);
    buf_reset(&c->field);
    buf_reset(&c->value);
    c->header_bytes = 0;
    c->discard_body = 0;
    c->streamed = 0;
    c->expect_continue = 0;
    c->err_status = 0;
    c->req.start_ns = clock_mono_ns();
}

const char *http_header(const struct http_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

int request_header_count(const struct http_request *r, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        n += strcmp(r->headers[i].name, name) == 0;
    return n;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

int request_pct_decode(const char *s, size_t n, char *out, size_t cap, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = 0;
    return (int)o;
}

int http_query(const struct http_request *r, const char *name, char *out, size_t cap)
{
    const char *q = r->query ? r->query : "";
    size_t nl = strlen(name);
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        char key[128];
        if (klen < sizeof key && request_pct_decode(q, klen, key, sizeof key, 1) >= 0 &&
            strlen(key) == nl && memcmp(key, name, nl) == 0) {
            if (!eq) {
                if (cap)
                    out[0] = 0;
                return 1;
            }
            return request_pct_decode(eq + 1, len - klen - 1, out, cap, 1) < 0 ? -1 : 1;
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}
