/*
 * multipart.c - the streaming multipart/form-data parser of multipart.h,
 * written by hand.
 *
 * Why by hand: Debian 12 packages no standalone C multipart parser (no
 * libmultipart-parser-c; `apt-cache search multipart` lists only Perl, Ruby,
 * Python, Node and Haskell ones). The C libraries that contain one do not fit:
 * libmicrohttpd (LGPL-2.1+) has MHD_PostProcessor, but it is created from an
 * MHD_Connection (it reads the Content-Type from it) and belongs to that HTTP
 * server, while sluice runs on libuv + llhttp; GMime (LGPL-2.1+) parses MIME
 * e-mail into an object tree over GLib streams, not a push parser with
 * callbacks in bounded memory; mimetic is C++. The syntax is small enough that
 * a few hundred lines of C cost less than any of these.
 *
 * How it works: a byte-level state machine over each chunk.
 *   - Content is scanned for the delimiter "\r\n--" boundary with memchr()
 *     for the CR and a byte-by-byte match after it. Since bchars exclude CR,
 *     '\r' occurs only as the delimiter's first byte, so after a mismatch no
 *     suffix of the bytes matched so far can start another match: they are
 *     all content, and matching resumes at the mismatching byte. A partial
 *     match at the end of a chunk is kept only as a count (its bytes are the
 *     delimiter's first bytes), so nothing is copied and at most boundary
 *     length + 3 bytes are ever held back.
 *   - Content is handed to part_data straight from the caller's chunk: at
 *     most one call per chunk for the bytes held back from earlier chunks
 *     (taken from the delimiter string) and one for the chunk's own bytes.
 *   - The preamble uses the same matcher with nothing delivered, started as
 *     if a CRLF came before the body, so "--boundary" may open the body.
 *   - A part's header block is copied into a buffer of max_header_bytes,
 *     checked for bare CR / LF and NUL byte by byte, then parsed in place
 *     once complete; name and filename are unescaped into a second buffer
 *     of the same size (decoded values are never longer than their source).
 *   - Everything is allocated once, in multipart_create, in one block.
 *
 * Choices the header leaves open:
 *   - a body with no parts ("--boundary--" alone) is accepted;
 *   - a header block's size counts every byte after the boundary line's CRLF
 *     up to and including the CRLF of the empty line ending the block;
 *   - a header line needs a token name followed directly by ':' (no space
 *     before it, RFC 9112 5.1); a line starting with whitespace continues the
 *     previous one (obs-fold) and is joined with spaces;
 *   - in the Content-Type header a quoted-string takes any backslash escape
 *     (RFC 9110 quoted-pair); in part headers only \" and \\ are escapes;
 *   - an empty parameter (";;" or a trailing ';') is tolerated, a parameter
 *     without '=' or with an empty unquoted value is an error;
 *   - error messages count parts from 1 and give 0-based body byte offsets.
 */
#include "http/multipart.h"
#include "util/errors.h"
#include "util/mem.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MP_BOUNDARY_MAX 70 /* RFC 2046 5.1.1 */

enum mp_state {
    MP_PREAMBLE,  /* before the first delimiter: bytes ignored */
    MP_DELIM_END, /* just after "--boundary": padding, CRLF or "--" follows */
    MP_PADDING,   /* after transport padding: more of it, or CRLF */
    MP_DELIM_LF,  /* after the CR that ends a boundary line */
    MP_CLOSE,     /* after "--boundary-": the second '-' */
    MP_HEADERS,   /* in a part's header block */
    MP_BODY,      /* in a part's content */
    MP_EPILOGUE,  /* after the close delimiter: bytes ignored */
    MP_DONE,      /* multipart_finish returned 0 */
};

struct multipart {
    struct multipart_cb cb;
    void *arg;
    enum mp_state state;
    int status;      /* sticky: 0, -1 (syntax) or a callback's non-zero value */
    char *delim;     /* "\r\n--" boundary, NUL-terminated */
    size_t dlen;     /* its length: boundary length + 4 */
    size_t k;        /* delimiter bytes matched so far (those of earlier chunks are held back) */
    char *hbuf;      /* the current part's header block */
    size_t hlen;     /* bytes in it */
    size_t hmax;     /* max_header_bytes */
    char *vbuf;      /* unescaped name and filename, hmax + 1 bytes */
    size_t nparts;   /* parts begun */
    int in_preamble; /* no boundary line accepted yet */
    uint64_t pos;    /* body bytes consumed before the current chunk */
    char err[256];
    char mem[]; /* delim, hbuf and vbuf */
};

/* ---- helpers ------------------------------------------------------------------ */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_ows(const char *p)
{
    while (is_ows(*p))
        p++;
    return p;
}

/* RFC 9110 tchar */
static int is_tchar(char ch)
{
    unsigned char c = (unsigned char)ch;
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 2046 bchars */
static int is_bchar(char ch)
{
    unsigned char c = (unsigned char)ch;
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("'()+_,-./:=? ", c) != NULL;
}

static int span_is(const char *p, size_t n, const char *word)
{
    return n == strlen(word) && strncasecmp(p, word, n) == 0;
}

/* A syntax error at body offset `at`. */
static int fail(struct multipart *m, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct multipart *m, uint64_t at, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(m->err, sizeof(m->err), "multipart: %s at byte %llu", what, (unsigned long long)at);
    m->status = -1;
    return -1;
}

static int stopped(struct multipart *m, int rc, const char *which)
{
    snprintf(m->err, sizeof(m->err), "multipart: stopped by the %s callback (it returned %d)",
             which, rc);
    m->status = rc;
    return rc;
}

static int deliver(struct multipart *m, const char *p, size_t n)
{
    if (n == 0 || !m->cb.part_data)
        return 0;
    int rc = m->cb.part_data(m->arg, p, n);
    return rc ? stopped(m, rc, "part_data") : 0;
}

/* ---- parameters: `; name=value` lists -------------------------------------------- */

enum esc_mode {
    ESC_HTTP, /* quoted-pair: a backslash escapes any byte */
    ESC_FORM, /* only \" and \\; any other backslash is literal */
};

/*
 * The next parameter of a NUL-terminated header value, *pp pointing after the
 * media or disposition type or the previous parameter. Returns 1 with the
 * name in *name / *nlen and the unescaped value in out (at most room - 1
 * bytes, NUL-terminated when room > 0; *vlen is the full unescaped length),
 * 0 at the end, -1 on malformed syntax.
 */
static int next_param(const char **pp, enum esc_mode esc, const char **name, size_t *nlen,
                      char *out, size_t room, size_t *vlen)
{
    const char *p = *pp;
    for (;;) {
        p = skip_ows(p);
        if (*p == '\0') {
            *pp = p;
            return 0;
        }
        if (*p != ';')
            return -1;
        p = skip_ows(p + 1);
        if (*p != '\0' && *p != ';')
            break;
    }
    const char *n = p;
    while (is_tchar(*p))
        p++;
    if (p == n)
        return -1;
    *name = n;
    *nlen = (size_t)(p - n);
    p = skip_ows(p);
    if (*p != '=')
        return -1;
    p = skip_ows(p + 1);

    size_t w = 0;
    if (*p == '"') {
        p++;
        for (;;) {
            char c = *p;
            if (c == '\0')
                return -1; /* unterminated quoted-string */
            if (c == '"') {
                p++;
                break;
            }
            if (c == '\\' && esc == ESC_HTTP) {
                if (p[1] == '\0')
                    return -1;
                c = p[1];
                p += 2;
            } else if (c == '\\' && (p[1] == '"' || p[1] == '\\')) {
                c = p[1];
                p += 2;
            } else {
                p++;
            }
            if (w + 1 < room)
                out[w] = c;
            w++;
        }
    } else {
        const char *v = p;
        while (*p != '\0' && *p != ';' && !is_ows(*p)) {
            if (w + 1 < room)
                out[w] = *p;
            w++;
            p++;
        }
        if (p == v)
            return -1;
    }
    if (room)
        out[w < room ? w : room - 1] = '\0';
    *vlen = w;
    *pp = p;
    return 1;
}

/* The boundary of a multipart/form-data Content-Type value, into b[MP_BOUNDARY_MAX + 1]. */
static int parse_content_type(const char *ct, char *b, size_t *blen, char *err, size_t errlen)
{
    if (!ct || *skip_ows(ct) == '\0') {
        err_set(err, errlen, "no Content-Type: multipart/form-data; boundary=... header");
        return -1;
    }
    const char *p = skip_ows(ct), *t = p;
    while (*p != '\0' && *p != ';' && !is_ows(*p))
        p++;
    if (!span_is(t, (size_t)(p - t), "multipart/form-data")) {
        err_set(err, errlen, "Content-Type is not multipart/form-data");
        return -1;
    }
    int found = 0, rc;
    const char *name;
    size_t nlen, vlen;
    char scratch[MP_BOUNDARY_MAX + 1];
    while ((rc = next_param(&p, ESC_HTTP, &name, &nlen, scratch, sizeof(scratch), &vlen)) == 1) {
        if (!span_is(name, nlen, "boundary"))
            continue;
        if (found) {
            err_set(err, errlen, "Content-Type has two boundary parameters");
            return -1;
        }
        found = 1;
        if (vlen > MP_BOUNDARY_MAX) {
            err_set(err, errlen, "multipart boundary is longer than %d characters",
                    MP_BOUNDARY_MAX);
            return -1;
        }
        memcpy(b, scratch, vlen + 1);
        *blen = vlen;
    }
    if (rc < 0) {
        err_set(err, errlen, "Content-Type has a malformed parameter list");
        return -1;
    }
    if (!found) {
        err_set(err, errlen, "Content-Type multipart/form-data has no boundary parameter");
        return -1;
    }
    if (*blen == 0) {
        err_set(err, errlen, "multipart boundary is empty");
        return -1;
    }
    for (size_t i = 0; i < *blen; i++) {
        if (!is_bchar(b[i])) {
            err_set(err, errlen,
                    "multipart boundary has a character RFC 2046 does not allow (0x%02x)",
                    (unsigned char)b[i]);
            return -1;
        }
    }
    if (b[*blen - 1] == ' ') {
        err_set(err, errlen, "multipart boundary ends with a space");
        return -1;
    }
    return 0;
}

/* ---- create / destroy ------------------------------------------------------------ */

struct multipart *multipart_create(const char *content_type, size_t max_header_bytes,
                                   const struct multipart_cb *cb, void *arg, char *err,
                                   size_t errlen)
{
    char b[MP_BOUNDARY_MAX + 1];
    size_t blen = 0;
    err_set(err, errlen, "%s", "");
    if (parse_content_type(content_type, b, &blen, err, errlen) != 0)
        return NULL;
    if (max_header_bytes == 0 || max_header_bytes > SIZE_MAX / 4) {
        err_set(err, errlen, "multipart: max_header_bytes must be between 1 and SIZE_MAX / 4");
        return NULL;
    }
    size_t dlen = blen + 4;
    struct multipart *m = sl_calloc(1, sizeof(*m) + (dlen + 1) + 2 * (max_header_bytes + 1));
    if (!m) {
        err_set(err, errlen, "multipart: out of memory");
        return NULL;
    }
    if (cb)
        m->cb = *cb;
    m->arg = arg;
    m->delim = m->mem;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, b, blen + 1);
    m->dlen = dlen;
    m->hbuf = m->delim + dlen + 1;
    m->hmax = max_header_bytes;
    m->vbuf = m->hbuf + max_header_bytes + 1;
    m->state = MP_PREAMBLE;
    m->in_preamble = 1;
    m->k = 2; /* as if a CRLF came first: the body may open with "--boundary" */
    return m;
}

void multipart_destroy(struct multipart *m)
{
    free(m);
}

const char *multipart_error(const struct multipart *m)
{
    return m->err;
}

/* ---- the delimiter scan ----------------------------------------------------------- */

/*
 * Looks for the delimiter in d[0..len), in MP_PREAMBLE or MP_BODY. In MP_BODY
 * the bytes that are certain not to belong to it go to part_data. Sets *used
 * to the bytes consumed and *found when the delimiter's last byte was
 * d[*used - 1]. Returns 0 or a callback's value.
 */
static int scan(struct multipart *m, const char *d, size_t len, size_t *used, int *found)
{
    const int body = m->state == MP_BODY;
    size_t held = m->k; /* matched in earlier chunks: the bytes m->delim[0..held) */
    size_t i = 0;
    int rc;

    *found = 0;
    while (i < len) {
        if (m->k == 0) {
            const char *cr = memchr(d + i, '\r', len - i);
            if (!cr) {
                i = len;
                break;
            }
            i = (size_t)(cr - d) + 1;
            m->k = 1;
        } else if (d[i] == m->delim[m->k]) {
            i++;
            if (++m->k == m->dlen) {
                *found = 1;
                break;
            }
        } else {
            /* Not the delimiter: the bytes matched are content (see the top of the file). */
            if (held && body && (rc = deliver(m, m->delim, held)) != 0)
                return rc;
            held = 0;
            m->k = 0; /* d[i] is looked at again */
        }
    }
    /* The last m->k - held bytes before d[i] are (part of) the delimiter. */
    if (body && (rc = deliver(m, d, i - (m->k - held))) != 0)
        return rc;
    if (*found)
        m->k = 0;
    *used = i;
    return 0;
}

/* ---- part headers ------------------------------------------------------------------- */

/* Parses the complete header block in m->hbuf and calls part_begin. */
static int begin_part(struct multipart *m, uint64_t at)
{
    char *h = m->hbuf;
    size_t n = m->hlen - 2; /* without the empty line's CRLF; every line ends in CRLF */
    size_t partno = m->nparts + 1;

    if (n > 0 && is_ows(h[0]))
        return fail(m, at, "part %zu's header block starts with whitespace", partno);
    /* Unfold: CRLF followed by SP / HT joins two lines. */
    for (size_t i = 0; i + 2 < n; i++) {
        if (h[i] == '\r' && is_ows(h[i + 2]))
            h[i] = h[i + 1] = ' ';
    }

    const char *cd = NULL, *ct = NULL;
    for (size_t start = 0; start < n;) {
        char *line = h + start;
        char *cr = memchr(line, '\r', n - start);
        *cr = '\0';
        start = (size_t)(cr - h) + 2;

        char *p = line;
        while (is_tchar(*p))
            p++;
        if (p == line || *p != ':')
            return fail(m, at, "part %zu has a malformed header line", partno);
        size_t nlen = (size_t)(p - line);
        char *v = (char *)skip_ows(p + 1), *e = cr;
        while (e > v && is_ows(e[-1]))
            e--;
        *e = '\0';
        if (span_is(line, nlen, "content-disposition")) {
            if (cd)
                return fail(m, at, "part %zu has two Content-Disposition headers", partno);
            cd = v;
        } else if (span_is(line, nlen, "content-type")) {
            if (ct)
                return fail(m, at, "part %zu has two Content-Type headers", partno);
            ct = v;
        }
    }
    if (!cd)
        return fail(m, at, "part %zu has no Content-Disposition header", partno);

    const char *p = cd, *t = cd;
    while (is_tchar(*p))
        p++;
    if (!span_is(t, (size_t)(p - t), "form-data"))
        return fail(m, at, "part %zu's Content-Disposition is not form-data", partno);

    const char *name = NULL, *filename = NULL, *pname;
    size_t w = 0, nlen, vlen;
    int rc;
    for (;;) {
        char *out = m->vbuf + w;
        size_t room = m->hmax + 1 - w;
        rc = next_param(&p, ESC_FORM, &pname, &nlen, out, room, &vlen);
        if (rc <= 0)
            break;
        const char **slot = span_is(pname, nlen, "name")       ? &name
                            : span_is(pname, nlen, "filename") ? &filename
                                                               : NULL;
        if (!slot)
            continue; /* filename*, name* and others */
        if (*slot)
            return fail(m, at, "part %zu's Content-Disposition has two %s parameters", partno,
                        slot == &name ? "name" : "filename");
        if (vlen >= room) /* cannot happen: values never grow when unescaped */
            return fail(m, at, "part %zu's Content-Disposition is too long", partno);
        *slot = out;
        w += vlen + 1;
    }
    if (rc < 0)
        return fail(m, at, "part %zu's Content-Disposition has a malformed parameter", partno);
    if (!name)
        return fail(m, at, "part %zu's Content-Disposition has no name parameter", partno);

    struct multipart_part part = {
        .name = name, .filename = filename, .content_type = ct, .index = m->nparts};
    m->nparts++;
    if (m->cb.part_begin && (rc = m->cb.part_begin(m->arg, &part)) != 0)
        return stopped(m, rc, "part_begin");
    return 0;
}

/* ---- feed / finish ---------------------------------------------------------------- */

int multipart_feed(struct multipart *m, const char *data, size_t len)
{
    if (m->status)
        return m->status;
    if (m->state == MP_DONE)
        return fail(m, m->pos, "multipart_feed after multipart_finish");

    size_t i = 0;
    while (i < len && m->status == 0) {
        char c = data[i];
        uint64_t at = m->pos + i;
        switch (m->state) {
        case MP_PREAMBLE:
        case MP_BODY: {
            size_t used;
            int found, rc;
            if ((rc = scan(m, data + i, len - i, &used, &found)) != 0)
                return rc;
            i += used;
            if (!found)
                break;
            if (m->state == MP_BODY && m->cb.part_end && (rc = m->cb.part_end(m->arg)) != 0)
                return stopped(m, rc, "part_end");
            m->state = MP_DELIM_END;
            break;
        }
        case MP_DELIM_END:
        case MP_PADDING:
            if (c == '-' && m->state == MP_DELIM_END)
                m->state = MP_CLOSE;
            else if (is_ows(c))
                m->state = MP_PADDING;
            else if (c == '\r')
                m->state = MP_DELIM_LF;
            else if (c == '\n')
                return fail(m, at, "bare LF after a boundary (multipart line ends must be CRLF)");
            else if (m->in_preamble)
                goto preamble_text;
            else
                return fail(m, at, "byte 0x%02x after a boundary (expected CRLF or \"--\")",
                            (unsigned char)c);
            i++;
            break;
        case MP_DELIM_LF:
            if (c != '\n' && m->in_preamble)
                goto preamble_text;
            if (c != '\n')
                return fail(m, at, "CR without LF after a boundary");
            m->state = MP_HEADERS;
            m->hlen = 0;
            m->in_preamble = 0;
            i++;
            break;
        case MP_CLOSE:
            if (c != '-' && m->in_preamble)
                goto preamble_text;
            if (c != '-')
                return fail(m, at, "byte 0x%02x after a boundary (expected CRLF or \"--\")",
                            (unsigned char)c);
            m->state = MP_EPILOGUE;
            m->in_preamble = 0;
            i++;
            break;
        preamble_text:
            /* A boundary look-alike in the preamble: preamble text; c is looked at again. */
            m->state = MP_PREAMBLE;
            m->k = 0;
            break;
        case MP_HEADERS:
            while (i < len) {
                char prev = m->hlen ? m->hbuf[m->hlen - 1] : '\0';
                c = data[i];
                at = m->pos + i;
                if (c == '\0')
                    return fail(m, at, "NUL byte in part %zu's headers", m->nparts + 1);
                if (prev == '\r' && c != '\n')
                    return fail(m, at, "bare CR in part %zu's headers", m->nparts + 1);
                if (c == '\n' && prev != '\r')
                    return fail(m, at,
                                "bare LF in part %zu's headers (multipart line ends must be CRLF)",
                                m->nparts + 1);
                if (m->hlen == m->hmax)
                    return fail(m, at, "part %zu's header block is larger than %zu bytes",
                                m->nparts + 1, m->hmax);
                m->hbuf[m->hlen++] = c;
                i++;
                if (c == '\n' && (m->hlen == 2 || m->hbuf[m->hlen - 3] == '\n')) {
                    int rc = begin_part(m, at + 1);
                    if (rc)
                        return rc;
                    m->state = MP_BODY;
                    m->k = 0;
                    break;
                }
            }
            break;
        case MP_EPILOGUE:
            i = len;
            break;
        case MP_DONE:
            break; /* not reached */
        }
    }
    m->pos += len;
    return m->status;
}

int multipart_finish(struct multipart *m)
{
    if (m->status)
        return m->status;
    switch (m->state) {
    case MP_EPILOGUE:
    case MP_DONE:
        m->state = MP_DONE;
        return 0;
    case MP_PREAMBLE:
        return fail(m, m->pos, "no boundary line \"--%s\" in the body", m->delim + 4);
    case MP_HEADERS:
        return fail(m, m->pos, "missing closing boundary: the body ended in part %zu's headers",
                    m->nparts + 1);
    case MP_BODY:
        return fail(m, m->pos, "missing closing boundary: the body ended in part %zu's content",
                    m->nparts);
    default:
        return fail(m, m->pos, "missing closing boundary: the body ended on a boundary line");
    }
}
