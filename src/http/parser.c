/*
 * parser.c - the llhttp callbacks and the RFC 9112 rules a server adds on top
 * of the parser: the request line and version, header limits (size, count,
 * names, values, obsolete folding), Host, the framing (Content-Length vs
 * Transfer-Encoding: the desync defences), Expect: 100-continue, the body
 * limits and the in-flight body budget, streamed bodies (route->sink), and the
 * refusals a route knows before its body (dispatch_refuse_early).
 * A callback that refuses the request records the answer (fail_parse) and
 * fails the parse; conn.c answers it and closes. Loop thread only.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_internal.h"
#include "util/mem.h"

#define MAX_HEADERS 100

static int fail_parse(struct http_conn *c, int status, enum sluice_err code, const char *msg)
{
    if (!c->err_status) {
        c->err_status = status;
        c->err_code = code;
        snprintf(c->err_msg, sizeof c->err_msg, "%s", msg);
    }
    return -1;
}

/* Count n more body bytes of this connection against limits.max_inflight_bytes. */
static int hold(struct http_conn *c, size_t n)
{
    struct http_server *s = c->loop->srv;
    if (__atomic_add_fetch(&s->inflight, n, __ATOMIC_RELAXED) > s->o.max_inflight_bytes) {
        __atomic_sub_fetch(&s->inflight, n, __ATOMIC_RELAXED);
        return fail_parse(c, 503, ERR_OVERLOADED,
                          "too many request bodies in memory (limits.max_inflight_bytes); "
                          "retry later");
    }
    c->held += n;
    return 0;
}

static int count_header_bytes(struct http_conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->loop->srv->o.max_header_bytes)
        return fail_parse(c, 431, ERR_HEADERS_TOO_LARGE,
                          "the request headers exceed limits.max_header_bytes");
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct http_conn *c = p->data;
    request_begin(c);
    set_busy(c, CONN_READING);
    c->deadline_ms = loop_now(c->loop) + c->loop->srv->o.request_timeout_ms;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (count_header_bytes(c, len) < 0)
        return -1;
    return buf_append(&c->field, at, len) < 0
               ? fail_parse(c, 431, ERR_HEADERS_TOO_LARGE, "the request target is too long")
               : 0;
}

static int on_url_complete(llhttp_t *p)
{
    struct http_conn *c = p->data;
    c->req.target = buf_steal(&c->field, NULL);
    buf_init(&c->field, c->loop->srv->o.max_header_bytes);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (count_header_bytes(c, len) < 0 || buf_append(&c->field, at, len) < 0)
        return fail_parse(c, 431, ERR_HEADERS_TOO_LARGE,
                          "the request headers exceed limits.max_header_bytes");
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    /* A value never starts right after a line end, except in obsolete line
     * folding, which RFC 9112 5.2 lets a server refuse: we do. */
    char prev = at > c->exec_start ? at[-1] : c->exec_prev;
    if (len && (at[0] == ' ' || at[0] == '\t') && prev == '\n')
        return fail_parse(c, 400, ERR_BAD_REQUEST, "obsolete line folding in a header");
    if (count_header_bytes(c, len + 4) < 0 || buf_append(&c->value, at, len) < 0)
        return fail_parse(c, 431, ERR_HEADERS_TOO_LARGE,
                          "the request headers exceed limits.max_header_bytes");
    return 0;
}

static int is_tchar(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int on_header_value_complete(llhttp_t *p)
{
    struct http_conn *c = p->data;
    struct http_request *r = &c->req;
    if (r->nheaders >= MAX_HEADERS)
        return fail_parse(c, 431, ERR_HEADERS_TOO_LARGE, "more than 100 request headers");
    if (c->field.len == 0)
        return fail_parse(c, 400, ERR_BAD_REQUEST, "empty header name");
    for (size_t i = 0; i < c->field.len; i++) {
        if (!is_tchar((unsigned char)c->field.data[i]))
            return fail_parse(c, 400, ERR_BAD_REQUEST, "a header name is not a token");
        c->field.data[i] = (char)tolower((unsigned char)c->field.data[i]);
    }
    for (size_t i = 0; i < c->value.len; i++) {
        unsigned char ch = (unsigned char)c->value.data[i];
        if (ch == 0 || ch == '\r' || ch == '\n')
            return fail_parse(c, 400, ERR_BAD_REQUEST, "a header value holds a control character");
    }
    struct http_header *h = sl_realloc(r->headers, (r->nheaders + 1) * sizeof *h);
    if (!h)
        return fail_parse(c, 500, ERR_INTERNAL, "out of memory");
    r->headers = h;
    /* trim the value */
    size_t b = 0, e = c->value.len;
    while (b < e && (c->value.data[b] == ' ' || c->value.data[b] == '\t'))
        b++;
    while (e > b && (c->value.data[e - 1] == ' ' || c->value.data[e - 1] == '\t'))
        e--;
    h[r->nheaders].name = sl_strndup(c->field.data, c->field.len);
    h[r->nheaders].value = sl_strndup(c->value.len ? c->value.data + b : "", e - b);
    r->nheaders++;
    buf_reset(&c->field);
    buf_reset(&c->value);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct http_conn *c = p->data;
    struct http_request *r = &c->req;
    struct http_server *s = c->loop->srv;

    r->method = llhttp_method_name((llhttp_method_t)p->method);
    if (p->http_major != 1 || p->http_minor > 1)
        return fail_parse(c, 505, ERR_VERSION_NOT_SUPPORTED,
                          "only HTTP/1.0 and HTTP/1.1 are supported");
    /* RFC 9112 3.2: a client MUST send Host in HTTP/1.1; exactly one. */
    int nhost = request_header_count(r, "host");
    if ((p->http_minor == 1 && nhost == 0) || nhost > 1)
        return fail_parse(c, 400, ERR_BAD_REQUEST,
                          nhost ? "more than one Host header" : "HTTP/1.1 request without Host");
    /* RFC 9112 6.1: Transfer-Encoding with Content-Length is an attack. */
    if (request_header_count(r, "transfer-encoding")) {
        if (request_header_count(r, "content-length"))
            return fail_parse(c, 400, ERR_BAD_REQUEST,
                              "Content-Length together with Transfer-Encoding");
        /* The codings of all Transfer-Encoding fields, in order: chunked must be
         * last (else the framing is unknown: 400), and we implement no other (501). */
        int other = 0, last_chunked = 0;
        for (size_t i = 0; i < r->nheaders; i++) {
            if (strcmp(r->headers[i].name, "transfer-encoding") != 0)
                continue;
            char *save, *tok, *copy = sl_strdup(r->headers[i].value);
            for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                while (*tok == ' ' || *tok == '\t')
                    tok++;
                size_t n = strcspn(tok, " \t;");
                last_chunked = n == 7 && strncasecmp(tok, "chunked", 7) == 0;
                other |= !last_chunked;
            }
            free(copy);
        }
        if (!last_chunked)
            return fail_parse(c, 400, ERR_BAD_REQUEST, "Transfer-Encoding must end with chunked");
        if (other)
            return fail_parse(c, 501, ERR_NOT_IMPLEMENTED,
                              "only the chunked transfer coding is supported");
    }
    /* Decode the target into path and query. */
    const char *t = r->target ? r->target : "/";
    char *abs = NULL;
    if (t[0] != '/' && strcmp(t, "*") != 0) {
        /* absolute-form (RFC 9112 3.2.2): keep the path and query only. */
        const char *sch = strstr(t, "://");
        if (!sch)
            return fail_parse(c, 400, ERR_BAD_REQUEST, "the request target must start with '/'");
        const char *rest = sch + 3 + strcspn(sch + 3, "/?");
        abs = sl_malloc(strlen(rest) + 2);
        if (!abs)
            return fail_parse(c, 500, ERR_INTERNAL, "out of memory");
        snprintf(abs, strlen(rest) + 2, "%s%s", *rest == '/' ? "" : "/", rest);
        t = abs;
    }
    const char *qm = strchr(t, '?');
    size_t plen = qm ? (size_t)(qm - t) : strlen(t);
    r->path = sl_malloc(plen + 1);
    if (!r->path || request_pct_decode(t, plen, r->path, plen + 1, 0) < 0) {
        free(abs);
        return fail_parse(c, 400, ERR_BAD_REQUEST, "bad path");
    }
    r->query = sl_strdup(qm ? qm + 1 : "");
    free(abs);

    const char *rid = http_header(r, "x-request-id");
    if (rid && *rid && strlen(rid) < sizeof r->request_id) {
        int ok = 1;
        for (const char *q = rid; *q; q++)
            ok &= (*q > 0x20 && *q < 0x7f);
        if (ok)
            snprintf(r->request_id, sizeof r->request_id, "%s", rid);
    }

    const char *expect = http_header(r, "expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return fail_parse(c, 417, ERR_EXPECTATION_FAILED,
                              "only 'Expect: 100-continue' is supported");
        c->expect_continue = p->http_minor == 1;
    }

    char allow[128];
    enum route_match m =
        router_match(r->method, r->path, &r->route, r->params, &r->nparams, allow, sizeof allow);
    c->discard_body = (m != ROUTE_FOUND) || !r->route->takes_body;
    c->streamed = m == ROUTE_FOUND && r->route->sink;
    int has_body =
        (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != UINT64_MAX);
    if (dispatch_admit(c, r, m) < 0) {
        c->discard_body = 1;
        c->streamed = 0;
        if (has_body) { /* answer now and close: a refused body is never read (nor a 100 sent) */
            dispatch_deny_headers(&r->deny, c->err_hdr, sizeof c->err_hdr);
            return fail_parse(c, r->deny.status, r->deny.code, r->deny.message);
        }
    }
    if (!c->streamed && p->content_length > s->o.max_body_bytes && !(p->flags & F_CHUNKED) &&
        p->content_length != UINT64_MAX)
        return fail_parse(c, 413, ERR_BODY_TOO_LARGE,
                          "the body is larger than limits.max_body_bytes");
    if (has_body && !c->discard_body && !c->streamed) {
        /* Refused for what the headers say (unknown dataset, media type, a full queue...):
         * answer now and close, before the body is held, read or parsed. */
        struct route_refusal no;
        if (dispatch_refuse_early(c, r, &no) < 0) {
            c->discard_body = 1;
            snprintf(c->err_hdr, sizeof c->err_hdr, "%s", no.headers);
            return fail_parse(c, no.status, no.code, no.message);
        }
    }
    if (c->streamed) {
        enum sluice_err code = ERR_INTERNAL;
        char msg[256] = "";
        r->sink_state = r->route->sink->open(c, r, &code, msg, sizeof msg);
        if (!r->sink_state)
            return fail_parse(c, err_status(code), code, msg);
    }
    if (!c->discard_body && !c->streamed && !(p->flags & F_CHUNKED) && p->content_length > 0 &&
        p->content_length <= s->o.max_body_bytes) {
        /* Count the announced body against the in-flight budget now, and allocate
         * it once instead of doubling as it arrives. */
        if (hold(c, (size_t)p->content_length) < 0)
            return -1;
        buf_reserve(&r->body, (size_t)p->content_length);
    }
    if (c->expect_continue && !c->discard_body) {
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->req.bytes_in + len >
        (c->streamed ? c->loop->srv->o.max_upload_bytes : c->loop->srv->o.max_body_bytes))
        return fail_parse(c, 413, ERR_BODY_TOO_LARGE,
                          "the body is larger than limits.max_body_bytes");
    c->req.bytes_in += len;
    if (c->discard_body)
        return 0;
    if (c->streamed) {
        /* A streamed upload may take longer than http.request_timeout as a whole:
         * the timeout applies to the wait for each next piece instead. */
        c->deadline_ms = loop_now(c->loop) + c->loop->srv->o.request_timeout_ms;
        char msg[256] = "the body could not be stored";
        enum sluice_err code = ERR_UNAVAILABLE;
        if (c->req.route->sink->write(c->req.sink_state, at, len, &code, msg, sizeof msg) < 0)
            return fail_parse(c, code == ERR_UNAVAILABLE ? 507 : err_status(code), code, msg);
        return 0;
    }
    if (c->req.bytes_in > c->held && hold(c, c->req.bytes_in - c->held) < 0)
        return -1;
    if (buf_append(&c->req.body, at, len) < 0)
        return fail_parse(c, 503, ERR_OVERLOADED, "out of memory for the body");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct http_conn *c = p->data;
    if (!llhttp_should_keep_alive(p))
        c->close_after = 1;
    set_busy(c, CONN_WAITING);
    dispatch_request(c);
    return HPE_PAUSED;
}

void parser_settings_init(llhttp_settings_t *settings)
{
    llhttp_settings_init(settings);
    settings->on_message_begin = on_message_begin;
    settings->on_url = on_url;
    settings->on_url_complete = on_url_complete;
    settings->on_header_field = on_header_field;
    settings->on_header_value = on_header_value;
    settings->on_header_value_complete = on_header_value_complete;
    settings->on_headers_complete = on_headers_complete;
    settings->on_body = on_body;
    settings->on_message_complete = on_message_complete;
}
