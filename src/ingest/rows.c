/*
 * rows.c - see rows.h. The top-level scanner only finds where each array
 * element starts and ends (strings and nesting aware); jansson then parses
 * each element strictly. The scanner also enforces the depth limit before
 * jansson sees a byte, so hostile nesting costs one linear pass.
 */
#include "ingest/rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"
#include "util/mem.h"

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && is_ws(s[i]))
        i++;
    return i;
}

/*
 * Find the end of the JSON value starting at s[*i]; *i is left just after it.
 * Returns 0, -1 on a truncated or empty value, -2 when deeper than max_depth.
 */
static int scan_value(const char *s, size_t len, size_t *i, int max_depth)
{
    size_t k = *i;
    char c = s[k];
    if (c == '"') {
        for (k++; k < len; k++) {
            if (s[k] == '\\')
                k++;
            else if (s[k] == '"') {
                *i = k + 1;
                return 0;
            }
        }
        return -1;
    }
    if (c == '{' || c == '[') {
        int depth = 0, in_str = 0;
        for (; k < len; k++) {
            char ch = s[k];
            if (in_str) {
                if (ch == '\\')
                    k++;
                else if (ch == '"')
                    in_str = 0;
            } else if (ch == '"') {
                in_str = 1;
            } else if (ch == '{' || ch == '[') {
                if (++depth > max_depth)
                    return -2;
            } else if (ch == '}' || ch == ']') {
                if (--depth == 0) {
                    *i = k + 1;
                    return 0;
                }
            }
        }
        return -1;
    }
    while (k < len && !is_ws(s[k]) && s[k] != ',' && s[k] != ']' && s[k] != '}')
        k++;
    if (k == *i)
        return -1;
    *i = k;
    return 0;
}

static int push(struct row_span **v, size_t *n, size_t *cap, size_t off, size_t len, int64_t line)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct row_span *nv = sl_realloc(*v, nc * sizeof *nv);
        if (!nv)
            return -1;
        *v = nv;
        *cap = nc;
    }
    (*v)[*n] = (struct row_span){off, len, line};
    (*n)++;
    return 0;
}

static int64_t line_of(const char *s, size_t off, size_t *from, int64_t *line)
{
    for (; *from < off; (*from)++)
        if (s[*from] == '\n')
            (*line)++;
    return *line;
}

static int json_syntax_ok(const char *s, size_t len);

enum sluice_err rows_split_json(const char *s, size_t len, int max_depth, struct row_span **spans,
                                size_t *n, char *msg, size_t cap)
{
    struct row_span *v = NULL;
    size_t cnt = 0, vcap = 0, i = skip_ws(s, len, 0), lfrom = 0;
    int64_t line = 1;
    enum sluice_err e = ERR_MALFORMED_JSON;
    *spans = NULL;
    *n = 0;
    if (i == len) {
        snprintf(msg, cap, "the body is empty");
        return ERR_MALFORMED_JSON;
    }
    if (s[i] == '{') {
        size_t start = i;
        int r = scan_value(s, len, &i, max_depth);
        if (r == -2) {
            snprintf(msg, cap, "nesting deeper than %d levels", max_depth);
            return ERR_NESTING_TOO_DEEP;
        }
        if (r < 0 || skip_ws(s, len, i) != len) {
            snprintf(msg, cap,
                     r < 0 ? "the object is not terminated"
                           : "unexpected data after the object at byte %zu",
                     skip_ws(s, len, i));
            return ERR_MALFORMED_JSON;
        }
        if (push(&v, &cnt, &vcap, start, i - start, line_of(s, start, &lfrom, &line)) < 0)
            goto oom;
        *spans = v;
        *n = cnt;
        return SLUICE_OK;
    }
    if (s[i] != '[') {
        /* A top-level scalar ("x", 1, true, null) is JSON of the wrong shape, not a syntax
         * error: it is one row, refused as NOT_AN_OBJECT like a scalar array element. */
        if (!json_syntax_ok(s, len)) {
            snprintf(msg, cap, "the body is not JSON (expected an object or an array of objects)");
            return ERR_MALFORMED_JSON;
        }
        size_t end = len;
        while (end > i && is_ws(s[end - 1]))
            end--;
        if (push(&v, &cnt, &vcap, i, end - i, line_of(s, i, &lfrom, &line)) < 0)
            goto oom;
        *spans = v;
        *n = cnt;
        return SLUICE_OK;
    }
    i = skip_ws(s, len, i + 1);
    if (i < len && s[i] == ']') {
        i++;
    } else {
        for (;;) {
            if (i >= len) {
                snprintf(msg, cap, "the array is not terminated");
                goto fail;
            }
            size_t start = i;
            int r = scan_value(s, len, &i, max_depth);
            if (r == -2) {
                snprintf(msg, cap, "row %zu: nesting deeper than %d levels", cnt + 1, max_depth);
                e = ERR_NESTING_TOO_DEEP;
                goto fail;
            }
            if (r < 0) {
                snprintf(msg, cap, "row %zu at byte %zu: the value is not terminated", cnt + 1,
                         start);
                goto fail;
            }
            if (push(&v, &cnt, &vcap, start, i - start, line_of(s, start, &lfrom, &line)) < 0)
                goto oom;
            i = skip_ws(s, len, i);
            if (i < len && s[i] == ',') {
                i = skip_ws(s, len, i + 1);
                continue;
            }
            if (i < len && s[i] == ']') {
                i++;
                break;
            }
            snprintf(msg, cap, "expected ',' or ']' after row %zu at byte %zu", cnt, i);
            goto fail;
        }
    }
    if (skip_ws(s, len, i) != len) {
        snprintf(msg, cap, "unexpected data after the array at byte %zu", skip_ws(s, len, i));
        goto fail;
    }
    *spans = v;
    *n = cnt;
    return SLUICE_OK;
oom:
    snprintf(msg, cap, "out of memory");
    e = ERR_INTERNAL;
fail:
    free(v);
    return e;
}

enum sluice_err rows_split_ndjson(const char *s, size_t len, struct row_span **spans, size_t *n)
{
    struct row_span *v = NULL;
    size_t cnt = 0, cap = 0, i = 0;
    int64_t line = 0;
    while (i < len) {
        const char *nl = memchr(s + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - s) : len;
        line++;
        /* The row is the line as sent, less its terminator; blank lines are skipped. */
        size_t e = end, b = i;
        if (e > i && s[e - 1] == '\r')
            e--;
        while (b < e && is_ws(s[b]))
            b++;
        if (b < e && push(&v, &cnt, &cap, i, e - i, line) < 0) {
            free(v);
            return ERR_INTERNAL;
        }
        i = end + 1;
    }
    *spans = v;
    *n = cnt;
    return SLUICE_OK;
}

/*
 * RFC 8259 grammar check with no values built, for the rare rows jansson
 * refuses for a reason other than syntax (a duplicate member, \u0000, a
 * number out of range): it stops at the first such problem, so whether the
 * rest is JSON at all must be checked separately. Written here because
 * jansson offers no syntax-only mode. Depth is already bounded by the scan.
 */
static size_t syn_value(const char *s, size_t len, size_t i, int *ok);

static size_t syn_string(const char *s, size_t len, size_t i, int *ok)
{
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20)
            break;
        if (c == '\\') {
            if (++i >= len)
                break;
            if (s[i] == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (i + (size_t)k >= len ||
                        !strchr("0123456789abcdefABCDEF", s[i + (size_t)k]) || !s[i + (size_t)k])
                        goto bad;
                i += 4;
            } else if (!strchr("\"\\/bfnrt", s[i]) || !s[i]) {
                break;
            }
        }
    }
bad:
    *ok = 0;
    return i;
}

static size_t syn_digits(const char *s, size_t len, size_t i)
{
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

static size_t syn_number(const char *s, size_t len, size_t i, int *ok)
{
    if (i < len && s[i] == '-')
        i++;
    if (i < len && s[i] == '0')
        i++;
    else if (i < len && s[i] >= '1' && s[i] <= '9')
        i = syn_digits(s, len, i);
    else
        goto bad;
    if (i < len && s[i] == '.') {
        size_t j = syn_digits(s, len, i + 1);
        if (j == i + 1)
            goto bad;
        i = j;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t j = syn_digits(s, len, i);
        if (j == i)
            goto bad;
        i = j;
    }
    return i;
bad:
    *ok = 0;
    return i;
}

static size_t syn_value(const char *s, size_t len, size_t i, int *ok)
{
    i = skip_ws(s, len, i);
    if (i >= len) {
        *ok = 0;
        return i;
    }
    char c = s[i];
    if (c == '"')
        return syn_string(s, len, i, ok);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        i = skip_ws(s, len, i + 1);
        if (i < len && s[i] == close)
            return i + 1;
        for (;;) {
            if (c == '{') {
                i = skip_ws(s, len, i);
                if (i >= len || s[i] != '"')
                    break;
                i = skip_ws(s, len, syn_string(s, len, i, ok));
                if (!*ok || i >= len || s[i] != ':')
                    break;
                i++;
            }
            i = skip_ws(s, len, syn_value(s, len, i, ok));
            if (!*ok || i >= len)
                break;
            if (s[i] == close)
                return i + 1;
            if (s[i] != ',')
                break;
            i++;
        }
        *ok = 0;
        return i;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return syn_number(s, len, i, ok);
    static const char *const words[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(words[k]);
        if (len - i >= n && memcmp(s + i, words[k], n) == 0)
            return i + n;
    }
    *ok = 0;
    return i;
}

static int json_syntax_ok(const char *s, size_t len)
{
    int ok = 1;
    size_t end = syn_value(s, len, 0, &ok);
    return ok && skip_ws(s, len, end) == len;
}

/*
 * Whether p holds at most max bytes that open a value ('{', '['): then nothing in it nests
 * deeper than max, and the byte-by-byte scan_value() of rows_parse() is not needed (only
 * its verdict "too deep" is used there). Counted with memchr, which is much faster than
 * the scan; inside strings too, which only errs towards scanning.
 */
static int few_openers(const char *p, size_t len, int max)
{
    int n = 0;
    const char *end = p + len;
    for (const char *q = p; (q = memchr(q, '{', (size_t)(end - q))) != NULL; q++)
        if (++n > max)
            return 0;
    for (const char *q = p; (q = memchr(q, '[', (size_t)(end - q))) != NULL; q++)
        if (++n > max)
            return 0;
    return 1;
}

enum sluice_err rows_parse(const char *p, size_t len, size_t max_row_bytes, int max_depth,
                           json_t **out, int *syntax, char *msg, size_t cap)
{
    json_error_t jerr;
    *out = NULL;
    *syntax = 0;
    size_t i = 0;
    int r = len && !few_openers(p, len, max_depth) ? scan_value(p, len, &i, max_depth) : 0;
    if (r == -2) {
        snprintf(msg, cap, "nesting deeper than %d levels", max_depth);
        return ERR_NESTING_TOO_DEEP;
    }
    unsigned long failures = mem_thread_failures();
    json_t *j = json_loadb(p, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        enum json_error_code code = json_error_code(&jerr);
        /* jansson tells some of its allocation failures as a syntax error */
        if (code == json_error_out_of_memory || mem_thread_failures() != failures) {
            snprintf(msg, cap, "out of memory");
            return ERR_INTERNAL;
        }
        if (!utf8_valid(p, len)) { /* checked only on failure: jansson validates UTF-8 too */
            *syntax = 1;
            snprintf(msg, cap, "the row is not valid UTF-8");
            return ERR_INVALID_UTF8;
        }
        if ((code == json_error_duplicate_key || code == json_error_null_character ||
             code == json_error_null_byte_in_key || code == json_error_numeric_overflow) &&
            !json_syntax_ok(p, len))
            code = json_error_invalid_syntax; /* broken elsewhere too: it is not JSON */
        switch (code) {
        case json_error_duplicate_key:
            snprintf(msg, cap, "%s", jerr.text);
            return ERR_DUPLICATE_FIELD;
        case json_error_null_character:
        case json_error_null_byte_in_key:
            snprintf(msg, cap, "\\u0000 in a string is not stored");
            return ERR_NUL_CHARACTER;
        case json_error_numeric_overflow:
            snprintf(msg, cap, "%s: integers must fit 64 bits, reals a double", jerr.text);
            return ERR_NUMBER_TOO_LARGE;
        default:
            *syntax = 1;
            snprintf(msg, cap, "%s at byte %d", jerr.text, jerr.position);
            return ERR_MALFORMED_JSON;
        }
    }
    if (len > max_row_bytes) {
        json_decref(j);
        snprintf(msg, cap, "the row is %zu bytes; limits.max_row_bytes is %zu", len, max_row_bytes);
        return ERR_ROW_TOO_LARGE;
    }
    *out = j;
    return SLUICE_OK;
}
