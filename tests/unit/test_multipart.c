/*
 * test_multipart.c - the streaming multipart/form-data parser
 * (src/http/multipart.h): the Content-Type and its boundary, a browser-style
 * form, binary content full of near-delimiters, independence from chunking
 * (every chunk size and every two-way split), how little is held back,
 * preamble and epilogue, part headers, the header block cap, the errors
 * (missing closing boundary, LF-only bodies, garbage after a delimiter),
 * callback stops, and a 10 MiB file part in 64 KiB chunks in constant memory.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/multipart.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MP_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MP_TEST_ASAN 1
#endif

#ifdef MP_TEST_ASAN
/* From the sanitizer runtime (GCC ships no header for it). */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}
#endif

/* ---- collecting parts ------------------------------------------------------- */

struct prec {
    char *name, *filename, *ctype;
    size_t index;
    char *data;
    size_t len, cap;
    int ended;
};

struct got {
    struct prec v[32];
    size_t n;
    int in_part;
    size_t delivered; /* content bytes of all parts */
    size_t data_calls;
    /* stop control: return stop_value from the Nth call (1-based) of one callback */
    size_t stop_begin_at, stop_data_at, stop_end_at;
    size_t begins, datas, ends;
    int stop_value;
};

static char *dup_or_null(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    cr_assert_not_null(d);
    return d;
}

static int on_begin(void *arg, const struct multipart_part *p)
{
    struct got *g = arg;
    cr_assert(!g->in_part, "part_begin inside a part");
    cr_assert_lt(g->n, 32);
    cr_assert_not_null(p->name);
    cr_assert_eq(p->index, g->n);
    struct prec *r = &g->v[g->n++];
    memset(r, 0, sizeof(*r));
    r->name = dup_or_null(p->name);
    r->filename = dup_or_null(p->filename);
    r->ctype = dup_or_null(p->content_type);
    r->index = p->index;
    g->in_part = 1;
    if (++g->begins == g->stop_begin_at)
        return g->stop_value;
    return 0;
}

static int on_data(void *arg, const char *d, size_t len)
{
    struct got *g = arg;
    cr_assert(g->in_part, "part_data outside a part");
    cr_assert_gt(len, 0);
    struct prec *r = &g->v[g->n - 1];
    if (r->len + len > r->cap) {
        r->cap = (r->len + len) * 2;
        r->data = realloc(r->data, r->cap);
        cr_assert_not_null(r->data);
    }
    memcpy(r->data + r->len, d, len);
    r->len += len;
    g->delivered += len;
    g->data_calls++;
    if (++g->datas == g->stop_data_at)
        return g->stop_value;
    return 0;
}

static int on_end(void *arg)
{
    struct got *g = arg;
    cr_assert(g->in_part, "part_end outside a part");
    g->v[g->n - 1].ended = 1;
    g->in_part = 0;
    if (++g->ends == g->stop_end_at)
        return g->stop_value;
    return 0;
}

static const struct multipart_cb CB = {on_begin, on_data, on_end};

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->v[i].name);
        free(g->v[i].filename);
        free(g->v[i].ctype);
        free(g->v[i].data);
    }
    memset(g, 0, sizeof(*g));
}

/* ---- running a body ------------------------------------------------------------ */

struct result {
    int feed_rc;   /* first non-zero feed value, or 0 */
    int finish_rc; /* finish value (not called when a feed failed: then feed_rc) */
    char msg[256];
};

/*
 * Parses body in chunks of `chunk` bytes (0: whole) or, when split2 > 0, in
 * two pieces at split2. Checks after every feed that the bytes not yet
 * delivered are fewer than the delimiter: `content_end_hint` (when non-zero)
 * is the offset after which nothing more is content.
 */
static struct result run_body(const char *ct, const char *body, size_t len, size_t chunk,
                              size_t split2, size_t max_hdr, struct got *g)
{
    struct result r = {0};
    char err[256];
    struct multipart *m = multipart_create(ct, max_hdr, &CB, g, err, sizeof(err));
    cr_assert_not_null(m, "create: %s", err);
    size_t off = 0;
    while (off < len || len == 0) {
        size_t n = len - off;
        if (split2)
            n = off == 0 ? split2 : len - off;
        else if (chunk && chunk < n)
            n = chunk;
        /* Feed from a private copy so no pointer into it may be kept by the parser. */
        char *piece = malloc(n ? n : 1);
        cr_assert_not_null(piece);
        memcpy(piece, body + off, n);
        int rc = multipart_feed(m, piece, n);
        memset(piece, 0xEE, n);
        free(piece);
        off += n;
        if (rc) {
            r.feed_rc = rc;
            break;
        }
        if (len == 0)
            break;
    }
    r.finish_rc = r.feed_rc ? r.feed_rc : multipart_finish(m);
    snprintf(r.msg, sizeof(r.msg), "%s", multipart_error(m));
    if (r.feed_rc) /* sticky */
        cr_assert_eq(multipart_feed(m, "x", 1), r.feed_rc);
    multipart_destroy(m);
    return r;
}

struct want {
    const char *name, *filename, *ctype;
    const char *data;
    size_t len;
};

static void str_eq_or_null(const char *got, const char *want, const char *what, size_t i)
{
    if (!want)
        cr_assert_null(got, "part %zu %s: got \"%s\", want NULL", i, what, got ? got : "");
    else {
        cr_assert_not_null(got, "part %zu %s: got NULL, want \"%s\"", i, what, want);
        cr_assert_str_eq(got, want, "part %zu %s", i, what);
    }
}

static void expect_parts(const struct got *g, const struct want *w, size_t n, const char *ctx)
{
    cr_assert_eq(g->n, n, "%s: %zu parts, want %zu", ctx, g->n, n);
    for (size_t i = 0; i < n; i++) {
        str_eq_or_null(g->v[i].name, w[i].name, "name", i);
        str_eq_or_null(g->v[i].filename, w[i].filename, "filename", i);
        str_eq_or_null(g->v[i].ctype, w[i].ctype, "content type", i);
        cr_assert_eq(g->v[i].len, w[i].len, "%s: part %zu has %zu bytes, want %zu", ctx, i,
                     g->v[i].len, w[i].len);
        if (w[i].len)
            cr_assert(memcmp(g->v[i].data, w[i].data, w[i].len) == 0,
                      "%s: part %zu content differs", ctx, i);
        cr_assert(g->v[i].ended, "%s: part %zu not ended", ctx, i);
    }
}

/* Every chunk size from 1 to len, the whole, and every two-piece split: same parts. */
static void expect_any_chunking(const char *ct, const char *body, size_t len, const struct want *w,
                                size_t n)
{
    char ctx[64];
    for (size_t chunk = 0; chunk <= len; chunk++) {
        struct got g = {0};
        struct result r = run_body(ct, body, len, chunk, 0, 1024, &g);
        snprintf(ctx, sizeof(ctx), "chunk %zu", chunk);
        cr_assert_eq(r.feed_rc, 0, "%s: %s", ctx, r.msg);
        cr_assert_eq(r.finish_rc, 0, "%s: %s", ctx, r.msg);
        expect_parts(&g, w, n, ctx);
        got_free(&g);
    }
    for (size_t split = 1; split < len; split++) {
        struct got g = {0};
        struct result r = run_body(ct, body, len, 0, split, 1024, &g);
        snprintf(ctx, sizeof(ctx), "split at %zu", split);
        cr_assert_eq(r.finish_rc, 0, "%s: %s", ctx, r.msg);
        expect_parts(&g, w, n, ctx);
        got_free(&g);
    }
}

#define S(lit) lit, sizeof(lit) - 1

/* ---- Content-Type ---------------------------------------------------------------- */

static void expect_create_fails(const char *ct, const char *needle)
{
    char err[256] = "unset";
    struct multipart *m = multipart_create(ct, 1024, &CB, NULL, err, sizeof(err));
    cr_assert_null(m, "created from \"%s\"", ct ? ct : "(null)");
    cr_assert(strstr(err, needle) != NULL, "\"%s\": message \"%s\" lacks \"%s\"",
              ct ? ct : "(null)", err, needle);
}

/* A body with one part "f" holding "x", for boundary b. */
static void expect_boundary(const char *ct, const char *b)
{
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "--%s\r\nContent-Disposition: form-data; name=f\r\n\r\nx\r\n--%s--\r\n", b, b);
    struct got g = {0};
    struct result r = run_body(ct, body, (size_t)n, 0, 0, 1024, &g);
    cr_assert_eq(r.finish_rc, 0, "\"%s\": %s", ct, r.msg);
    const struct want w[] = {{"f", NULL, NULL, S("x")}};
    expect_parts(&g, w, 1, ct);
    got_free(&g);
}

Test(multipart, content_type_boundaries)
{
    expect_boundary("multipart/form-data; boundary=abc", "abc");
    expect_boundary("Multipart/Form-Data;BOUNDARY=abc", "abc");
    expect_boundary("  multipart/form-data ; charset=utf-8 ; boundary = abc ;", "abc");
    expect_boundary("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
                    "----WebKitFormBoundary7MA4YWxkTrZu0gW");
    /* quoted, with characters a token cannot hold (RFC 2046's own example has a space) */
    expect_boundary("multipart/form-data; boundary=\"simple boundary\"", "simple boundary");
    expect_boundary("multipart/form-data; boundary=\"a'()+_,-./:=?z\"; x=y", "a'()+_,-./:=?z");
    expect_boundary("multipart/form-data; boundary=\"esc\\aped\"", "escaped");
    /* 70 characters is the most */
    char ct[128], b[71];
    memset(b, 'b', 70);
    b[70] = '\0';
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s", b);
    expect_boundary(ct, b);
}

Test(multipart, content_type_errors)
{
    expect_create_fails(NULL, "no Content-Type");
    expect_create_fails("  ", "no Content-Type");
    expect_create_fails("text/plain; boundary=abc", "not multipart/form-data");
    expect_create_fails("multipart/mixed; boundary=abc", "not multipart/form-data");
    expect_create_fails("multipart/form-data", "no boundary");
    expect_create_fails("multipart/form-data; charset=utf-8", "no boundary");
    expect_create_fails("multipart/form-data; boundary=\"\"", "empty");
    expect_create_fails("multipart/form-data; boundary=", "malformed");
    expect_create_fails("multipart/form-data; boundary=\"abc", "malformed");
    expect_create_fails("multipart/form-data; boundary=\"abc\"x", "malformed");
    expect_create_fails("multipart/form-data; boundary", "malformed");
    expect_create_fails("multipart/form-data; boundary=a; boundary=b", "two boundary");
    expect_create_fails("multipart/form-data; boundary=\"abc \"", "ends with a space");
    expect_create_fails("multipart/form-data; boundary=a\"b", "not allow");
    expect_create_fails("multipart/form-data; boundary=\"a\\\\b\"", "not allow");
    expect_create_fails("multipart/form-data; boundary=\"a\rb\"", "not allow");
    expect_create_fails("multipart/form-data; boundary=a{b}", "not allow");
    char ct[128], b[72];
    memset(b, 'b', 71);
    b[71] = '\0';
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s", b);
    expect_create_fails(ct, "longer than 70");

    char err[64];
    cr_assert_null(
        multipart_create("multipart/form-data; boundary=a", 0, &CB, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "max_header_bytes") != NULL, "%s", err);
    /* err may be NULL */
    cr_assert_null(multipart_create("text/plain", 1024, &CB, NULL, NULL, 0));
    multipart_destroy(NULL);
}

/* ---- a browser form ------------------------------------------------------------- */

#define WK "----WebKitFormBoundary7MA4YWxkTrZu0gW"
#define WK_CT "multipart/form-data; boundary=" WK

static const char FORM[] = "--" WK "\r\n"
                           "Content-Disposition: form-data; name=\"title\"\r\n"
                           "\r\n"
                           "Quarterly numbers\r\n"
                           "--" WK "\r\n"
                           "Content-Disposition: form-data; name=\"file\"; filename=\"q3.csv\"\r\n"
                           "Content-Type: text/csv\r\n"
                           "\r\n"
                           "id,amount\r\n1,2.50\r\n"
                           "\r\n"
                           "--" WK "--\r\n";

static const struct want FORM_PARTS[] = {
    {"title", NULL, NULL, S("Quarterly numbers")},
    {"file", "q3.csv", "text/csv", S("id,amount\r\n1,2.50\r\n")},
};

Test(multipart, text_field_and_file)
{
    struct got g = {0};
    struct result r = run_body(WK_CT, FORM, sizeof(FORM) - 1, 0, 0, 1024, &g);
    cr_assert_eq(r.feed_rc, 0, "%s", r.msg);
    cr_assert_eq(r.finish_rc, 0, "%s", r.msg);
    cr_assert_str_eq(r.msg, "");
    expect_parts(&g, FORM_PARTS, 2, "whole");
    cr_assert_eq(g.data_calls, 2, "one data call per part when fed whole");
    got_free(&g);
}

Test(multipart, chunk_sizes_1_2_3_7_whole)
{
    const size_t sizes[] = {1, 2, 3, 7, 0};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct got g = {0};
        struct result r = run_body(WK_CT, FORM, sizeof(FORM) - 1, sizes[i], 0, 1024, &g);
        cr_assert_eq(r.finish_rc, 0, "chunk %zu: %s", sizes[i], r.msg);
        expect_parts(&g, FORM_PARTS, 2, "chunked");
        got_free(&g);
    }
    expect_any_chunking(WK_CT, FORM, sizeof(FORM) - 1, FORM_PARTS, 2);
}

/* ---- binary content ----------------------------------------------------------------- */

#define BB "boundary42"
#define BB_CT "multipart/form-data; boundary=" BB

/* Content full of CR, LF, "--", NUL, 0xFF and delimiter prefixes that are not delimiters. */
#define BIN1_LIT                                                                                   \
    "\r\n-\r\n--\r\n--b\r\n--bound\r\n--boundary4"                                                 \
    "X--boundary42 \r--boundary42\n--boundary42"                                                   \
    "\r\r\n\r\n--boundary4\r\n--boundary4\r"                                                       \
    "\0\xff\xfe\r\n--BOUNDARY42\r\n--boundary4"
static const char BIN1[] = BIN1_LIT;
static const char BIN2[] = "\r";    /* a part ending in CR */
static const char BIN3[] = "x\r\n"; /* a part ending in CRLF */

static const char BIN_BODY[] =
    "preamble --boundary42 \r\n--boundary4 not yet\r\n"
    "--" BB "\r\n"
    "Content-Disposition: form-data; name=\"blob\"; filename=\"b.bin\"\r\n"
    "Content-Type: application/octet-stream\r\n"
    "\r\n" BIN1_LIT "\r\n--" BB "\r\n"
    "Content-Disposition: form-data; name=cr\r\n"
    "\r\n"
    "\r"
    "\r\n--" BB "\r\n"
    "Content-Disposition: form-data; name=crlf\r\n"
    "\r\n"
    "x\r\n"
    "\r\n--" BB "\r\n"
    "Content-Disposition: form-data; name=empty\r\n"
    "\r\n"
    "\r\n--" BB "--";

static const struct want BIN_PARTS[] = {
    {"blob", "b.bin", "application/octet-stream", BIN1, sizeof(BIN1) - 1},
    {"cr", NULL, NULL, BIN2, 1},
    {"crlf", NULL, NULL, BIN3, 3},
    {"empty", NULL, NULL, "", 0},
};

Test(multipart, binary_content_with_near_delimiters)
{
    expect_any_chunking(BB_CT, BIN_BODY, sizeof(BIN_BODY) - 1, BIN_PARTS, 4);
}

/* After each feed, at most boundary length + 3 content bytes are still held back. */
Test(multipart, holds_back_less_than_a_delimiter)
{
    const char *content = strstr(BIN_BODY, "\r\n\r\n") + 4; /* first part's content */
    size_t cstart = (size_t)(content - BIN_BODY), clen = sizeof(BIN1) - 1;
    size_t bound = strlen(BB) + 3;
    for (size_t chunk = 1; chunk <= 9; chunk++) {
        struct got g = {0};
        struct multipart *m = multipart_create(BB_CT, 1024, &CB, &g, NULL, 0);
        cr_assert_not_null(m);
        for (size_t off = 0; off < cstart + clen; off += chunk) {
            size_t n = chunk;
            cr_assert_eq(multipart_feed(m, BIN_BODY + off, n), 0, "%s", multipart_error(m));
            size_t fed = off + n > cstart ? off + n - cstart : 0;
            if (fed > clen)
                fed = clen;
            cr_assert_geq(g.delivered + bound, fed, "chunk %zu, offset %zu: %zu of %zu delivered",
                          chunk, off + n, g.delivered, fed);
        }
        multipart_destroy(m);
        got_free(&g);
    }
}

#define ALPHABET "0123456789abcdefghijklmnopqrstuvwxyz'()+_,-./:=? "

Test(multipart, long_boundary_any_chunking)
{
    char b[71], ct[128], body[1024];
    for (int i = 0; i < 70; i++)
        b[i] = ALPHABET[i % (sizeof(ALPHABET) - 1)]; /* all 49 bchars; b[69] is 'k' */
    b[70] = '\0';
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=\"%s\"", b);
    char content[512];
    int cl = snprintf(content, sizeof(content), "--%s\r--%.69s\r\n--%.69s\n\r\n-%s", b, b, b, b);
    int n = snprintf(body, sizeof(body),
                     "--%s\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n%s\r\n--%s--", b,
                     content, b);
    const struct want w[] = {{"f", NULL, NULL, content, (size_t)cl}};
    expect_any_chunking(ct, body, (size_t)n, w, 1);
}

/* ---- preamble, epilogue, padding ------------------------------------------------------ */

Test(multipart, preamble_epilogue_padding)
{
    static const char body[] = "This is the preamble.  It is to be ignored.\r\n"
                               "--" BB "X is not a delimiter: no CRLF before it\r\n"
                               "--" BB " \t \r\n"
                               "Content-Disposition: form-data; name=a\r\n"
                               "\r\n"
                               "1"
                               "\r\n--" BB "\t\r\n"
                               "Content-Disposition: form-data; name=b\r\n"
                               "\r\n"
                               "2"
                               "\r\n--" BB "--  \r\n"
                               "This is the epilogue.\r\n--" BB "\r\ngarbage\r\n--" BB "--\r\n";
    const struct want w[] = {{"a", NULL, NULL, S("1")}, {"b", NULL, NULL, S("2")}};
    expect_any_chunking(BB_CT, body, sizeof(body) - 1, w, 2);
}

Test(multipart, no_parts)
{
    struct got g = {0};
    struct result r = run_body(BB_CT, S("--" BB "--"), 0, 0, 1024, &g);
    cr_assert_eq(r.finish_rc, 0, "%s", r.msg);
    cr_assert_eq(g.n, 0);
}

/* ---- part headers -------------------------------------------------------------------- */

static void expect_one_part(const char *headers, const struct want *w)
{
    char body[1024];
    int n = snprintf(body, sizeof(body), "--" BB "\r\n%s\r\n%s\r\n--" BB "--", headers, w->data);
    struct got g = {0};
    struct result r = run_body(BB_CT, body, (size_t)n, 0, 0, 1024, &g);
    cr_assert_eq(r.finish_rc, 0, "%s: %s", headers, r.msg);
    expect_parts(&g, w, 1, headers);
    got_free(&g);
}

Test(multipart, part_headers)
{
    struct want w = {"a\"b\\c", "C:\\dir\\f.txt", NULL, S("d")};
    expect_one_part("Content-Disposition: form-data; name=\"a\\\"b\\\\c\"; "
                    "filename=\"C:\\dir\\f.txt\"\r\n",
                    &w);
    w = (struct want){"plain", "r\xc3\xa9sum\xc3\xa9.pdf", "application/pdf", S("d")};
    expect_one_part(
        "content-type:application/pdf\r\n"
        "CONTENT-DISPOSITION: FORM-DATA;NAME=plain; FILENAME=\"r\xc3\xa9sum\xc3\xa9.pdf\""
        "; filename*=UTF-8''other.pdf; size=3\r\n"
        "X-Other: ignored\r\n",
        &w);
    /* folded line, padded values, semicolons in a quoted value, empty filename */
    w = (struct want){"f;g", "", "text/plain; charset=utf-8", S("")};
    expect_one_part("Content-Disposition: form-data;\r\n\tname=\"f;g\";\r\n  filename=\"\"\r\n"
                    "Content-Type:   text/plain; charset=utf-8 \t\r\n",
                    &w);
    w = (struct want){"", NULL, "", S("d")};
    expect_one_part("Content-Disposition: form-data; name=\"\"\r\nContent-Type:\r\n", &w);
}

static void expect_feed_error(const char *ct, const char *body, size_t len, size_t max_hdr,
                              const char *needle)
{
    size_t chunks[] = {0, 1, 5};
    for (size_t i = 0; i < 3; i++) {
        struct got g = {0};
        struct result r = run_body(ct, body, len, chunks[i], 0, max_hdr, &g);
        cr_assert_eq(r.feed_rc, -1, "chunk %zu: feed %d, finish %d (%s)", chunks[i], r.feed_rc,
                     r.finish_rc, r.msg);
        cr_assert(strstr(r.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", r.msg, needle);
        cr_assert(strstr(r.msg, "at byte ") != NULL, "%s", r.msg);
        got_free(&g);
    }
}

static void expect_header_error(const char *headers, const char *needle)
{
    char body[1024];
    int n = snprintf(body, sizeof(body), "--" BB "\r\n%s\r\nd\r\n--" BB "--", headers);
    expect_feed_error(BB_CT, body, (size_t)n, 1024, needle);
}

Test(multipart, part_header_errors)
{
    expect_header_error("", "no Content-Disposition");
    expect_header_error("Content-Type: text/plain\r\n", "no Content-Disposition");
    expect_header_error("Content-Disposition: attachment; name=a\r\n", "not form-data");
    expect_header_error("Content-Disposition: form-data\r\n", "no name");
    expect_header_error("Content-Disposition: form-data; filename=a\r\n", "no name");
    expect_header_error("Content-Disposition: form-data; name=a; name=b\r\n", "two name");
    expect_header_error("Content-Disposition: form-data; name=a; filename=x; FileName=y\r\n",
                        "two filename");
    expect_header_error("Content-Disposition: form-data; name=a\r\n"
                        "Content-Disposition: form-data; name=b\r\n",
                        "two Content-Disposition");
    expect_header_error("Content-Disposition: form-data; name=a\r\nContent-Type: a\r\n"
                        "Content-Type: b\r\n",
                        "two Content-Type");
    expect_header_error("Content-Disposition: form-data; name=\"a\r\n", "malformed parameter");
    expect_header_error("Content-Disposition: form-data; name\r\n", "malformed parameter");
    expect_header_error("Content-Disposition: form-data; name=\"a\" b\r\n", "malformed parameter");
    expect_header_error("Content-Disposition: form-data; name=a\r\nno colon\r\n",
                        "malformed header line");
    expect_header_error("Content-Disposition : form-data; name=a\r\n", "malformed header line");
    expect_header_error(" Content-Disposition: form-data; name=a\r\n", "starts with whitespace");
    expect_header_error("Content-Disposition: form-data; name=a\r\nX: a\rb\r\n", "bare CR");
    expect_header_error("Content-Disposition: form-data; name=a\nX: b\r\n", "bare LF");
    static const char nul[] = "--" BB "\r\nContent-Disposition: form-data; name=a\0b\r\n\r\n"
                              "d\r\n--" BB "--";
    expect_feed_error(BB_CT, nul, sizeof(nul) - 1, 1024, "NUL byte");
}

/* ---- the header block cap ---------------------------------------------------------- */

Test(multipart, header_block_cap)
{
    static const char hdr[] = "Content-Disposition: form-data; name=\"f\"\r\n\r\n";
    static const char body[] = "--" BB "\r\n"
                               "Content-Disposition: form-data; name=\"f\"\r\n\r\n"
                               "x\r\n--" BB "--";
    size_t block = sizeof(hdr) - 1;
    const struct want w[] = {{"f", NULL, NULL, S("x")}};
    for (size_t chunk = 0; chunk <= 3; chunk++) {
        struct got g = {0};
        struct result r = run_body(BB_CT, S(body), chunk, 0, block, &g);
        cr_assert_eq(r.finish_rc, 0, "a block of exactly the cap is fine: %s", r.msg);
        expect_parts(&g, w, 1, "cap");
        got_free(&g);
    }
    expect_feed_error(BB_CT, S(body), block - 1, "header block is larger than");

    /* An endless header line is refused at the cap, not buffered. */
    struct got g = {0};
    struct multipart *m = multipart_create(BB_CT, 8192, &CB, &g, NULL, 0);
    cr_assert_not_null(m);
    cr_assert_eq(multipart_feed(m, S("--" BB "\r\nX-Long: ")), 0);
    char junk[1000];
    memset(junk, 'a', sizeof(junk));
    int rc = 0;
    size_t fed = 0;
    while (rc == 0 && fed < 1000000) {
        rc = multipart_feed(m, junk, sizeof(junk));
        fed += sizeof(junk);
    }
    cr_assert_eq(rc, -1);
    cr_assert_leq(fed, 9000, "refused after %zu bytes", fed);
    cr_assert(strstr(multipart_error(m), "part 1's header block is larger than 8192 bytes"), "%s",
              multipart_error(m));
    cr_assert_eq(g.n, 0);
    multipart_destroy(m);
}

/* ---- syntax errors --------------------------------------------------------------------- */

static void expect_finish_error(const char *body, size_t len, const char *needle)
{
    size_t chunks[] = {0, 1, 2};
    for (size_t i = 0; i < 3; i++) {
        struct got g = {0};
        struct result r = run_body(BB_CT, body, len, chunks[i], 0, 1024, &g);
        cr_assert_eq(r.feed_rc, 0, "%s", r.msg);
        cr_assert_eq(r.finish_rc, -1, "\"%.*s\" finished", (int)len, body);
        cr_assert(strstr(r.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", r.msg, needle);
        got_free(&g);
    }
}

#define PART_A "--" BB "\r\nContent-Disposition: form-data; name=a\r\n\r\ndata"

Test(multipart, missing_closing_boundary)
{
    expect_finish_error(S(PART_A), "missing closing boundary: the body ended in part 1's content");
    expect_finish_error(S(PART_A "\r\n--" BB), "missing closing boundary");
    expect_finish_error(S(PART_A "\r\n--" BB "-"), "missing closing boundary");
    expect_finish_error(S(PART_A "\r\n--" BB "\r\n"), "ended in part 2's headers");
    expect_finish_error(S(PART_A "\r\n--" BB "\r\nContent-Disposition: form-data; name=b\r\n"),
                        "ended in part 2's headers");
    expect_finish_error(S(PART_A "\r\n--" BB "\r\nContent-Disposition: form-data; name=b\r\n\r\n"),
                        "ended in part 2's content");
    expect_finish_error(S(""), "no boundary line \"--" BB "\"");
    expect_finish_error(S("just a preamble\r\n--boundary4"), "no boundary line");
    /* boundary look-alikes in the preamble are preamble text */
    expect_finish_error(S("preamble\r\n--" BB "0\r\n--" BB "-x\r\n--" BB " \rx\r\n"),
                        "no boundary line");

    /* the parts before the end were reported, the unfinished one not ended */
    struct got g = {0};
    struct result r = run_body(BB_CT, S(PART_A), 0, 0, 1024, &g);
    cr_assert_eq(r.finish_rc, -1);
    cr_assert_eq(g.n, 1);
    cr_assert_eq(g.v[0].ended, 0);
    got_free(&g);

    /* finish is sticky; after a good finish, feeding is an error */
    struct multipart *m = multipart_create(BB_CT, 1024, NULL, NULL, NULL, 0);
    cr_assert_eq(multipart_feed(m, S(PART_A)), 0);
    cr_assert_eq(multipart_finish(m), -1);
    cr_assert_eq(multipart_finish(m), -1);
    cr_assert_eq(multipart_feed(m, S("\r\n--" BB "--")), -1);
    multipart_destroy(m);
    m = multipart_create(BB_CT, 1024, NULL, NULL, NULL, 0);
    cr_assert_eq(multipart_feed(m, S(PART_A "\r\n--" BB "--")), 0);
    cr_assert_eq(multipart_finish(m), 0);
    cr_assert_eq(multipart_finish(m), 0);
    cr_assert_eq(multipart_feed(m, S("more")), -1);
    cr_assert(strstr(multipart_error(m), "after multipart_finish"), "%s", multipart_error(m));
    multipart_destroy(m);
}

Test(multipart, syntax_errors)
{
    /* LF-only line ends are refused with a message that says so */
    expect_feed_error(BB_CT,
                      S("--" BB "\nContent-Disposition: form-data; name=a\n\nx\n--" BB "--\n"),
                      1024, "bare LF after a boundary");
    /* a delimiter followed by anything but padding + CRLF or "--" */
    expect_feed_error(BB_CT, S(PART_A "\r\n--" BB "X\r\n"), 1024, "byte 0x58 after a boundary");
    expect_feed_error(BB_CT, S(PART_A "\r\n--" BB "-X"), 1024, "after a boundary");
    expect_feed_error(BB_CT, S(PART_A "\r\n--" BB " -\r\n"), 1024, "after a boundary");
    expect_feed_error(BB_CT, S(PART_A "\r\n--" BB "\rX"), 1024, "CR without LF");
}

/* ---- callbacks stopping ------------------------------------------------------------------ */

Test(multipart, callback_stops)
{
    for (int which = 0; which < 3; which++) {
        struct got g = {0};
        g.stop_value = 7 + which;
        if (which == 0)
            g.stop_begin_at = 2;
        else if (which == 1)
            g.stop_data_at = 1;
        else
            g.stop_end_at = 1;
        struct result r = run_body(WK_CT, FORM, sizeof(FORM) - 1, 0, 0, 1024, &g);
        cr_assert_eq(r.feed_rc, 7 + which, "which %d: %d (%s)", which, r.feed_rc, r.msg);
        const char *names[] = {"part_begin", "part_data", "part_end"};
        cr_assert(strstr(r.msg, names[which]), "%s", r.msg);
        /* no callback after the stop (run_body fed more: sticky, nothing called) */
        cr_assert_eq(g.begins, which == 0 ? 2 : 1);
        cr_assert_eq(g.datas, 1);
        cr_assert_eq(g.ends, which == 1 ? 0 : 1);
        got_free(&g);
    }
    /* NULL callbacks are fine */
    struct multipart *m = multipart_create(WK_CT, 1024, NULL, NULL, NULL, 0);
    cr_assert_eq(multipart_feed(m, FORM, sizeof(FORM) - 1), 0);
    cr_assert_eq(multipart_finish(m), 0);
    multipart_destroy(m);
}

/* ---- a 10 MiB file part, 64 KiB chunks, constant memory ------------------------------------ */

#define BIG_BOUNDARY "sluice-big-upload-0123456789"
#define BIG_SIZE ((size_t)10 * 1024 * 1024)
#define BIG_CHUNK ((size_t)64 * 1024)

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Byte i of the file: random, with a CR every 97 bytes and an LF every 89 for the scanner. */
static unsigned char file_byte(size_t i)
{
    if (i % 97 == 0)
        return '\r';
    if (i % 89 == 0)
        return '\n';
    return (unsigned char)(splitmix(i / 8) >> (i % 8 * 8));
}

struct big {
    int in_file;
    size_t parts, file_bytes, calls;
    size_t field_bytes;
    int mismatch;
};

static int big_begin(void *arg, const struct multipart_part *p)
{
    struct big *b = arg;
    b->parts++;
    b->in_file = p->filename != NULL;
    return 0;
}

static int big_data(void *arg, const char *d, size_t len)
{
    struct big *b = arg;
    b->calls++;
    if (!b->in_file) {
        b->field_bytes += len;
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)d[i] != file_byte(b->file_bytes + i))
            b->mismatch = 1;
    b->file_bytes += len;
    return 0;
}

static int big_end(void *arg)
{
    (void)arg;
    return 0;
}

Test(multipart, ten_mib_file_in_64k_chunks, .timeout = 120)
{
    static const char head[] =
        "--" BIG_BOUNDARY "\r\n"
        "Content-Disposition: form-data; name=\"dataset\"\r\n\r\n"
        "events"
        "\r\n--" BIG_BOUNDARY "\r\n"
        "Content-Disposition: form-data; name=\"upload\"; filename=\"big.bin\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n";
    static const char tail[] = "\r\n--" BIG_BOUNDARY "--\r\n";
    const size_t hl = sizeof(head) - 1, tl = sizeof(tail) - 1, total = hl + BIG_SIZE + tl;
    const size_t held_max = strlen(BIG_BOUNDARY) + 3;

    char *chunk = malloc(BIG_CHUNK);
    cr_assert_not_null(chunk);
    struct big b = {0};
    const struct multipart_cb cb = {big_begin, big_data, big_end};

    size_t before_create = heap_in_use();
    struct multipart *m =
        multipart_create("multipart/form-data; boundary=" BIG_BOUNDARY, 16384, &cb, &b, NULL, 0);
    cr_assert_not_null(m);
    size_t after_create = heap_in_use();
    cr_assert_leq(after_create - before_create, 2 * 16384 + 1024, "create took %zu bytes",
                  after_create - before_create);

    size_t peak = after_create, feeds = 0;
    for (size_t off = 0; off < total; off += BIG_CHUNK) {
        size_t n = total - off < BIG_CHUNK ? total - off : BIG_CHUNK;
        for (size_t j = 0; j < n; j++) {
            size_t at = off + j;
            chunk[j] = at < hl              ? head[at]
                       : at < hl + BIG_SIZE ? (char)file_byte(at - hl)
                                            : tail[at - hl - BIG_SIZE];
        }
        cr_assert_eq(multipart_feed(m, chunk, n), 0, "%s", multipart_error(m));
        feeds++;
        size_t used = heap_in_use();
        if (used > peak)
            peak = used;
        /* streamed: all file bytes fed so far are out but for a partial delimiter */
        size_t fed = off + n > hl ? off + n - hl : 0;
        if (fed > BIG_SIZE)
            fed = BIG_SIZE;
        cr_assert_geq(b.file_bytes + held_max, fed, "after %zu bytes only %zu delivered", off + n,
                      b.file_bytes);
    }
    cr_assert_eq(multipart_finish(m), 0, "%s", multipart_error(m));
    multipart_destroy(m);
    free(chunk);

    cr_assert_eq(feeds, (total + BIG_CHUNK - 1) / BIG_CHUNK);
    cr_assert_eq(b.parts, 2);
    cr_assert_eq(b.field_bytes, 6);
    cr_assert_eq(b.file_bytes, BIG_SIZE, "file part: %zu bytes, want %zu", b.file_bytes, BIG_SIZE);
    cr_assert_eq(b.mismatch, 0, "file bytes differ");
    cr_assert_leq(b.calls, 2 * feeds + 2, "%zu data calls for %zu feeds", b.calls, feeds);
    cr_assert_eq(peak, after_create, "heap grew by %zu bytes while streaming", peak - after_create);
}
