/*
 * test_rows.c - cutting a body into rows and parsing each row
 * (src/ingest/rows.h): exact byte spans and line numbers for JSON and NDJSON
 * bodies, what makes a body malformed, the nesting limit, and the error (and
 * the syntax flag) of each kind of bad row.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/rows.h"
#include "util/clock.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAXROWS 8

/* ---- helpers ---------------------------------------------------------------- */

/* A body whose rows are expected to be exactly these element texts, at these lines. */
struct split_case {
    const char *what;
    const char *body;
    size_t nrows;
    const char *rows[MAXROWS];
    int64_t lines[MAXROWS];
};

/* Check that spans[i] covers exactly the expected text, and nothing else. */
static void expect_spans(const struct split_case *c, const struct row_span *spans, size_t n)
{
    size_t blen = strlen(c->body);
    cr_assert_eq(n, c->nrows, "%s: %zu rows, expected %zu", c->what, n, c->nrows);
    for (size_t i = 0; i < n; i++) {
        size_t want = strlen(c->rows[i]);
        cr_assert_leq(spans[i].off + spans[i].len, blen, "%s: row %zu outside the body", c->what,
                      i + 1);
        cr_expect_eq(spans[i].len, want, "%s: row %zu: len %zu, expected %zu ('%.*s')", c->what,
                     i + 1, spans[i].len, want, (int)spans[i].len, c->body + spans[i].off);
        cr_expect_eq(
            memcmp(c->body + spans[i].off, c->rows[i], want < spans[i].len ? want : spans[i].len),
            0, "%s: row %zu is '%.*s', expected '%s'", c->what, i + 1, (int)spans[i].len,
            c->body + spans[i].off, c->rows[i]);
        if (c->lines[i])
            cr_expect_eq(spans[i].line, c->lines[i], "%s: row %zu at line %lld, expected %lld",
                         c->what, i + 1, (long long)spans[i].line, (long long)c->lines[i]);
        if (i)
            cr_expect_gt(spans[i].off, spans[i - 1].off, "%s: rows out of order", c->what);
    }
}

/* An object nested depth levels deep: depth 1 is "{}", depth 2 is {"a":{}}, ... */
static char *nested_object(int depth)
{
    size_t cap = (size_t)depth * 8 + 8, n = 0;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    for (int i = 1; i < depth; i++) {
        memcpy(s + n, "{\"a\":", 5);
        n += 5;
    }
    s[n++] = '{';
    for (int i = 0; i < depth; i++)
        s[n++] = '}';
    s[n] = 0;
    return s;
}

/* "[" + nested_object(depth) + "]" */
static char *nested_array_body(int depth)
{
    char *o = nested_object(depth);
    size_t n = strlen(o);
    char *s = malloc(n + 3);
    cr_assert_not_null(s);
    s[0] = '[';
    memcpy(s + 1, o, n);
    s[n + 1] = ']';
    s[n + 2] = 0;
    free(o);
    return s;
}

static enum sluice_err split_json(const char *body, int max_depth, struct row_span **spans,
                                  size_t *n)
{
    char msg[256] = "";
    *spans = NULL;
    *n = 12345;
    enum sluice_err e = rows_split_json(body, strlen(body), max_depth, spans, n, msg, sizeof msg);
    if (e != SLUICE_OK)
        cr_expect_neq(msg[0], 0, "an error without a message for '%s'", body);
    return e;
}

/* ---- rows_split_json: good bodies -------------------------------------------- */

static const struct split_case json_ok[] = {
    {"one object", "{\"a\":1}", 1, {"{\"a\":1}"}, {1}},
    {"one object, whitespace around", " \r\n\t {\"a\": [1, 2]}\n\n ", 1, {"{\"a\": [1, 2]}"}, {2}},
    {"empty array", "[]", 0, {0}, {0}},
    {"empty array with whitespace", " [ \n\t ] \n", 0, {0}, {0}},
    {"array of one", "[{\"a\":1}]", 1, {"{\"a\":1}"}, {1}},
    {"array of three, tight",
     "[{\"a\":1},{\"b\":[1,{\"c\":2}]},{}]",
     3,
     {"{\"a\":1}", "{\"b\":[1,{\"c\":2}]}", "{}"},
     {1, 1, 1}},
    {"whitespace everywhere",
     "\r\n [ \t{ \"a\" : 1 }\n , \r\n\t{\"b\":\"x y\"}  \n,{ } \n] \t\r\n",
     3,
     {"{ \"a\" : 1 }", "{\"b\":\"x y\"}", "{ }"},
     {2, 4, 5}},
    {"one row per line",
     "[\n{\"a\":1},\n\n{\"a\":2},\n  {\"a\":3}\n]\n",
     3,
     {"{\"a\":1}", "{\"a\":2}", "{\"a\":3}"},
     {2, 4, 5}},
    {"strings with brackets and braces",
     "[{\"s\":\"]}[{,\"},{\"t\":\"}}}]]]\"}]",
     2,
     {"{\"s\":\"]}[{,\"}", "{\"t\":\"}}}]]]\"}"},
     {1, 1}},
    {"escaped quotes in strings",
     "[{\"s\":\"a\\\"]},{\\\"\"},{\"k\\\"}\":\"\\\\\"}]",
     2,
     {"{\"s\":\"a\\\"]},{\\\"\"}", "{\"k\\\"}\":\"\\\\\"}"},
     {1, 1}},
    {"escaped backslash before closing quote",
     "[{\"s\":\"x\\\\\"},{\"t\":\"]\"}]",
     2,
     {"{\"s\":\"x\\\\\"}", "{\"t\":\"]\"}"},
     {1, 1}},
    {"multi-line row starts at its first line",
     "[{\n\"a\":\n1\n},\n{\"b\":2}]",
     2,
     {"{\n\"a\":\n1\n}", "{\"b\":2}"},
     {1, 5}},
    {"rows on successive lines",
     "[\n{\"a\":\"x\"},\n{\"b\":\"y\"}]",
     2,
     {"{\"a\":\"x\"}", "{\"b\":\"y\"}"},
     {2, 3}},
    {"UTF-8 inside strings",
     "[{\"n\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}]",
     1,
     {"{\"n\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}"},
     {1}},
};

Test(split_json, good_bodies_exact_spans)
{
    for (size_t i = 0; i < ARRAY_SIZE(json_ok); i++) {
        struct row_span *spans;
        size_t n;
        enum sluice_err e = split_json(json_ok[i].body, 64, &spans, &n);
        cr_expect_eq(e, SLUICE_OK, "%s: got %s", json_ok[i].what, err_name(e));
        if (e == SLUICE_OK)
            expect_spans(&json_ok[i], spans, n);
        free(spans);
    }
}

Test(split_json, spans_parse_back_to_the_elements)
{
    const char *body =
        "[ {\"id\": 1, \"tags\": [\"a]\", \"{b\"]},\n {\"id\": 2, \"q\": \"\\\"\"} ]";
    struct row_span *spans;
    size_t n;
    cr_assert_eq(split_json(body, 64, &spans, &n), SLUICE_OK);
    cr_assert_eq(n, 2);
    json_error_t jerr;
    json_t *whole = json_loads(body, 0, &jerr);
    cr_assert_not_null(whole);
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_loadb(body + spans[i].off, spans[i].len, 0, &jerr);
        cr_assert_not_null(row, "row %zu does not parse: %s", i + 1, jerr.text);
        cr_expect(json_equal(row, json_array_get(whole, i)), "row %zu differs", i + 1);
        json_decref(row);
    }
    json_decref(whole);
    free(spans);
}

/* ---- rows_split_json: bad bodies --------------------------------------------- */

static const struct {
    const char *what;
    const char *body;
} json_bad[] = {
    {"empty body", ""},
    {"whitespace only", " \n\t\r\n "},
    {"trailing comma", "[{\"a\":1},]"},
    {"trailing comma with whitespace", "[{\"a\":1} , \n ]"},
    {"leading comma", "[,{\"a\":1}]"},
    {"double comma", "[{\"a\":1},,{\"b\":2}]"},
    {"missing comma", "[{\"a\":1} {\"b\":2}]"},
    {"missing comma, tight", "[{\"a\":1}{\"b\":2}]"},
    {"garbage after the array", "[{\"a\":1}] x"},
    {"second array after the array", "[{\"a\":1}][]"},
    {"extra closing bracket", "[{\"a\":1}]]"},
    {"extra closing brace in array", "[{\"a\":1}}]"},
    {"garbage after the object", "{\"a\":1} x"},
    {"two objects", "{\"a\":1}\n{\"b\":2}"},
    {"extra closing brace", "{\"a\":1}}"},
    {"unterminated array", "[{\"a\":1}"},
    {"unterminated array after comma", "[{\"a\":1},"},
    {"unterminated array, only bracket", "["},
    {"unterminated array, only bracket and whitespace", "[ \n "},
    {"unterminated object in array", "[{\"a\":1"},
    {"unterminated object", "{\"a\":1"},
    {"unterminated string in array", "[{\"a\":\"b}]"},
    {"unterminated string, escaped quote", "{\"a\":\"b\\\"}"},
    {"unterminated string, backslash at end", "[{\"a\":\"b\\"},
    {"top-level closing bracket", "]"},
    {"top-level word that is not JSON", "tru"},
    {"top-level scalar and more", "\"a\" 1"},
    {"top-level unterminated string", "\"row"},
    {"top-level bad number", "01"},
};

/* A top-level scalar is JSON of the wrong shape, not malformed: one row, its bytes less the
 * surrounding whitespace (the validator then refuses it as NOT_AN_OBJECT). */
Test(split_json, top_level_scalar_is_one_row)
{
    static const struct {
        const char *body;
        size_t off, len;
    } cases[] = {{"42", 0, 2},      {"\"row\"", 0, 5}, {"true", 0, 4},
                 {" null\n", 1, 4}, {"\" \"", 0, 3},   {"-2.5e3", 0, 6}};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct row_span *spans;
        size_t n;
        enum sluice_err e = split_json(cases[i].body, 64, &spans, &n);
        cr_assert_eq(e, SLUICE_OK, "'%s' gave %s", cases[i].body, err_name(e));
        cr_assert_eq(n, 1);
        cr_expect_eq(spans[0].off, cases[i].off, "'%s'", cases[i].body);
        cr_expect_eq(spans[0].len, cases[i].len, "'%s'", cases[i].body);
        free(spans);
    }
}

Test(split_json, malformed_bodies)
{
    for (size_t i = 0; i < ARRAY_SIZE(json_bad); i++) {
        struct row_span *spans;
        size_t n;
        enum sluice_err e = split_json(json_bad[i].body, 64, &spans, &n);
        cr_expect_eq(e, ERR_MALFORMED_JSON, "%s: '%s' gave %s", json_bad[i].what, json_bad[i].body,
                     err_name(e));
        if (e != SLUICE_OK)
            cr_expect_null(spans, "%s: spans left allocated on error", json_bad[i].what);
        free(spans);
    }
}

/* ---- rows_split_json: nesting -------------------------------------------------- */

Test(split_json, depth_limit_exact)
{
    static const int limits[] = {1, 2, 3, 10, 64};
    for (size_t k = 0; k < ARRAY_SIZE(limits); k++) {
        int max = limits[k];
        struct row_span *spans;
        size_t n;

        /* in an array: the array is not counted */
        char *ok = nested_array_body(max);
        cr_expect_eq(split_json(ok, max, &spans, &n), SLUICE_OK, "array, depth %d, max %d", max,
                     max);
        cr_expect_eq(n, 1);
        free(spans);
        free(ok);
        char *deep = nested_array_body(max + 1);
        cr_expect_eq(split_json(deep, max, &spans, &n), ERR_NESTING_TOO_DEEP,
                     "array, depth %d, max %d", max + 1, max);
        free(spans);
        free(deep);

        /* a single object body */
        ok = nested_object(max);
        cr_expect_eq(split_json(ok, max, &spans, &n), SLUICE_OK, "object, depth %d, max %d", max,
                     max);
        free(spans);
        free(ok);
        deep = nested_object(max + 1);
        cr_expect_eq(split_json(deep, max, &spans, &n), ERR_NESTING_TOO_DEEP,
                     "object, depth %d, max %d", max + 1, max);
        free(spans);
        free(deep);
    }
}

Test(split_json, depth_counts_arrays_not_strings)
{
    struct row_span *spans;
    size_t n;
    /* {"a":[[1]]} is 3 deep */
    cr_expect_eq(split_json("[{\"a\":[[1]]}]", 3, &spans, &n), SLUICE_OK);
    free(spans);
    cr_expect_eq(split_json("[{\"a\":[[1]]}]", 2, &spans, &n), ERR_NESTING_TOO_DEEP);
    free(spans);
    /* brackets inside strings are not nesting */
    cr_expect_eq(split_json("[{\"a\":\"[[[[{{{{\"}]", 1, &spans, &n), SLUICE_OK);
    cr_expect_eq(n, 1);
    free(spans);
    /* a deep second row is caught too */
    cr_expect_eq(split_json("[{}, {\"a\":{\"b\":{}}}]", 2, &spans, &n), ERR_NESTING_TOO_DEEP);
    free(spans);
}

Test(split_json, hundred_thousand_brackets_fail_fast)
{
    alarm(20); /* a quadratic scanner fails here (SIGALRM) rather than hanging */
    const size_t N = 100000;
    char *body = malloc(2 * N + 1);
    cr_assert_not_null(body);
    memset(body, '[', N);
    body[N] = 0;

    struct row_span *spans;
    size_t n;
    uint64_t t0 = clock_mono_ns();
    cr_expect_eq(split_json(body, 64, &spans, &n), ERR_NESTING_TOO_DEEP);
    free(spans);
    /* well-formed but far too deep */
    memset(body + N, ']', N);
    body[2 * N] = 0;
    cr_expect_eq(split_json(body, 64, &spans, &n), ERR_NESTING_TOO_DEEP);
    free(spans);
    uint64_t ms = (clock_mono_ns() - t0) / 1000000;
    cr_expect_lt(ms, 1000, "took %llu ms", (unsigned long long)ms);
    free(body);
}

/* ---- rows_split_ndjson ---------------------------------------------------------- */

static const struct split_case ndjson_cases[] = {
    {"LF", "{\"a\":1}\n{\"b\":2}\n", 2, {"{\"a\":1}", "{\"b\":2}"}, {1, 2}},
    {"CRLF", "{\"a\":1}\r\n{\"b\":2}\r\n", 2, {"{\"a\":1}", "{\"b\":2}"}, {1, 2}},
    {"no final newline", "{\"a\":1}\n{\"b\":2}", 2, {"{\"a\":1}", "{\"b\":2}"}, {1, 2}},
    {"no final newline, CRLF before",
     "{\"a\":1}\r\n{\"b\":2}",
     2,
     {"{\"a\":1}", "{\"b\":2}"},
     {1, 2}},
    {"mixed LF and CRLF",
     "{\"a\":1}\n{\"b\":2}\r\n{\"c\":3}\n",
     3,
     {"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"},
     {1, 2, 3}},
    {"blank and whitespace-only lines skipped",
     "\n  \n{\"a\":1}\n\t \r\n\r\n  {\"b\":2}  \n\n",
     2,
     {"{\"a\":1}", "  {\"b\":2}  "},
     {3, 6}},
    {"leading and trailing spaces kept, CR dropped",
     " \t{\"a\":1} \t\r\n",
     1,
     {" \t{\"a\":1} \t"},
     {1}},
    {"a line that is not JSON is still a row",
     "{\"a\":1}\nnot json\n",
     2,
     {"{\"a\":1}", "not json"},
     {1, 2}},
    {"a brace inside a string does not join lines",
     "{\"s\":\"{\"}\n{\"t\":\"}\"}\n",
     2,
     {"{\"s\":\"{\"}", "{\"t\":\"}\"}"},
     {1, 2}},
    {"empty body", "", 0, {0}, {0}},
    {"only blank lines", "\n\r\n  \n\t\n", 0, {0}, {0}},
};

Test(split_ndjson, lines)
{
    for (size_t i = 0; i < ARRAY_SIZE(ndjson_cases); i++) {
        const struct split_case *c = &ndjson_cases[i];
        struct row_span *spans = NULL;
        size_t n = 12345;
        enum sluice_err e = rows_split_ndjson(c->body, strlen(c->body), &spans, &n);
        cr_expect_eq(e, SLUICE_OK, "%s: %s", c->what, err_name(e));
        if (e == SLUICE_OK)
            expect_spans(c, spans, n);
        free(spans);
    }
}

Test(split_ndjson, length_is_respected)
{
    /* Only len bytes are the body: the rest of the buffer is not read. */
    const char *buf = "{\"a\":1}\n{\"b\":2}\nGARBAGE";
    struct row_span *spans = NULL;
    size_t n;
    cr_assert_eq(rows_split_ndjson(buf, 16, &spans, &n), SLUICE_OK);
    cr_expect_eq(n, 2);
    free(spans);
}

/* ---- rows_parse ---------------------------------------------------------------- */

struct parse_case {
    const char *what;
    const char *row;
    size_t len; /* 0: strlen */
    enum sluice_err err;
    int syntax;
};

static const struct parse_case parse_cases[] = {
    {"valid object", "{\"a\":1,\"b\":\"x\",\"c\":[true,null],\"d\":{\"e\":1.5}}", 0, SLUICE_OK, 0},
    {"valid object with whitespace", "  {\"a\" : 1}  ", 0, SLUICE_OK, 0},
    {"valid UTF-8 strings", "{\"n\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}", 0, SLUICE_OK, 0},
    {"escaped \\u0001 is fine", "{\"a\":\"x\\u0001y\"}", 0, SLUICE_OK, 0},
    {"duplicate key", "{\"a\":1,\"a\":2}", 0, ERR_DUPLICATE_FIELD, 0},
    {"duplicate key, nested", "{\"o\":{\"k\":1,\"k\":1}}", 0, ERR_DUPLICATE_FIELD, 0},
    {"\\u0000 in a value", "{\"a\":\"x\\u0000y\"}", 0, ERR_NUL_CHARACTER, 0},
    {"\\u0000 in a key", "{\"a\\u0000\":1}", 0, ERR_NUL_CHARACTER, 0},
    {"1e400", "{\"n\":1e400}", 0, ERR_NUMBER_TOO_LARGE, 0},
    {"-1e400", "{\"n\":-1e400}", 0, ERR_NUMBER_TOO_LARGE, 0},
    {"invalid UTF-8 byte in a value", "{\"a\":\"\xff\"}", 0, ERR_INVALID_UTF8, 1},
    {"overlong in a key", "{\"\xc0\x80\":1}", 0, ERR_INVALID_UTF8, 1},
    {"surrogate encoded as UTF-8", "{\"a\":\"\xed\xa0\x80\"}", 0, ERR_INVALID_UTF8, 1},
    {"truncated UTF-8 at the end", "{\"a\":\"x\"}\xe2\x82", 0, ERR_INVALID_UTF8, 1},
    {"missing value", "{\"a\":}", 0, ERR_MALFORMED_JSON, 1},
    {"unterminated object", "{\"a\":1", 0, ERR_MALFORMED_JSON, 1},
    {"unquoted key", "{a:1}", 0, ERR_MALFORMED_JSON, 1},
    {"trailing comma", "{\"a\":1,}", 0, ERR_MALFORMED_JSON, 1},
    {"garbage after", "{\"a\":1} x", 0, ERR_MALFORMED_JSON, 1},
    {"two objects", "{\"a\":1}{\"b\":2}", 0, ERR_MALFORMED_JSON, 1},
    {"single quotes", "{'a':1}", 0, ERR_MALFORMED_JSON, 1},
    {"not JSON at all", "hello", 0, ERR_MALFORMED_JSON, 1},
    {"empty row", "", 0, ERR_MALFORMED_JSON, 1},
    {"raw control character in a string", "{\"a\":\"x\ty\"}", 0, ERR_MALFORMED_JSON, 1},
    /* broken JSON is MALFORMED_JSON even when jansson trips on something else first */
    {"duplicate key, then truncated", "{\"a\":1,\"a\":2", 0, ERR_MALFORMED_JSON, 1},
    {"\\u0000, then trailing comma", "{\"a\":\"\\u0000\",}", 0, ERR_MALFORMED_JSON, 1},
    {"1e400, then garbage", "{\"n\":1e400} x", 0, ERR_MALFORMED_JSON, 1},
};

Test(parse, table)
{
    for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        size_t len = c->len ? c->len : strlen(c->row);
        json_t *out = (json_t *)0x1;
        int syntax = 7;
        char msg[256] = "";
        enum sluice_err e = rows_parse(c->row, len, 1 << 20, 64, &out, &syntax, msg, sizeof msg);
        cr_expect_eq(e, c->err, "%s: got %s (%s), expected %s", c->what, err_name(e), msg,
                     err_name(c->err));
        if (c->err == SLUICE_OK) {
            cr_expect(json_is_object(out), "%s: no object", c->what);
            cr_expect_eq(syntax, 0, "%s: syntax=%d", c->what, syntax);
        } else {
            cr_expect_null(out, "%s: *out set on error", c->what);
            cr_expect_eq(syntax, c->syntax, "%s: syntax=%d, expected %d", c->what, syntax,
                         c->syntax);
            cr_expect_neq(msg[0], 0, "%s: no message", c->what);
        }
        if (e == SLUICE_OK)
            json_decref(out);
    }
}

Test(parse, values)
{
    const char *row = "{\"a\":1,\"b\":\"x\",\"big\":9007199254740993,\"f\":2.5}";
    json_t *out;
    int syntax;
    char msg[256];
    cr_assert_eq(rows_parse(row, strlen(row), 1 << 20, 64, &out, &syntax, msg, sizeof msg),
                 SLUICE_OK, "%s", msg);
    cr_expect_eq(json_integer_value(json_object_get(out, "a")), 1);
    cr_expect_str_eq(json_string_value(json_object_get(out, "b")), "x");
    cr_expect(json_is_integer(json_object_get(out, "big")));
    cr_expect_eq(json_integer_value(json_object_get(out, "big")), 9007199254740993LL);
    cr_expect_float_eq(json_real_value(json_object_get(out, "f")), 2.5, 1e-12);
    json_decref(out);
}

Test(parse, only_len_bytes_are_the_row)
{
    /* A span inside a larger body: the bytes after it are not part of the row. */
    const char *body = "[{\"a\":1},{\"b\":2}]";
    json_t *out;
    int syntax;
    char msg[256];
    cr_assert_eq(rows_parse(body + 1, 7, 1 << 20, 64, &out, &syntax, msg, sizeof msg), SLUICE_OK,
                 "%s", msg);
    cr_expect_eq(json_integer_value(json_object_get(out, "a")), 1);
    cr_expect_eq(json_object_size(out), 1);
    json_decref(out);
}

Test(parse, nesting_limit)
{
    json_t *out;
    int syntax = 7;
    char msg[256];
    char *ok = nested_object(5), *deep = nested_object(6);
    cr_expect_eq(rows_parse(ok, strlen(ok), 1 << 20, 5, &out, &syntax, msg, sizeof msg), SLUICE_OK,
                 "%s", msg);
    json_decref(out);
    out = (json_t *)0x1;
    cr_expect_eq(rows_parse(deep, strlen(deep), 1 << 20, 5, &out, &syntax, msg, sizeof msg),
                 ERR_NESTING_TOO_DEEP);
    cr_expect_null(out);
    cr_expect_eq(syntax, 0);
    free(ok);
    free(deep);
}

/* More '{' and '[' than the limit, but shallow (side by side, or inside strings): still
 * parsed (the count only decides whether the exact depth scan runs); and deep ones found
 * when the openers are mixed. */
Test(parse, nesting_limit_with_many_openers)
{
    json_t *out;
    int syntax;
    char msg[256];
    const char *wide = "{\"a\":[1],\"b\":[2],\"c\":{\"d\":[3]},\"e\":\"{{{{[[[[\"}";
    cr_expect_eq(rows_parse(wide, strlen(wide), 1 << 20, 3, &out, &syntax, msg, sizeof msg),
                 SLUICE_OK, "%s", msg);
    json_decref(out);
    const char *mixed = "{\"a\":[{\"b\":[1]}]}"; /* depth 4 */
    cr_expect_eq(rows_parse(mixed, strlen(mixed), 1 << 20, 4, &out, &syntax, msg, sizeof msg),
                 SLUICE_OK, "%s", msg);
    json_decref(out);
    out = (json_t *)0x1;
    cr_expect_eq(rows_parse(mixed, strlen(mixed), 1 << 20, 3, &out, &syntax, msg, sizeof msg),
                 ERR_NESTING_TOO_DEEP);
    cr_expect_null(out);
}

Test(parse, row_too_large)
{
    /* {"s":"xxx...x"} of exactly 100 bytes */
    char row[101];
    memcpy(row, "{\"s\":\"", 6);
    memset(row + 6, 'x', 100 - 8);
    memcpy(row + 98, "\"}", 2);
    row[100] = 0;
    json_t *out;
    int syntax = 7;
    char msg[256] = "";

    cr_expect_eq(rows_parse(row, 100, 100, 64, &out, &syntax, msg, sizeof msg), SLUICE_OK,
                 "exactly max_row_bytes: %s", msg);
    json_decref(out);

    out = (json_t *)0x1;
    msg[0] = 0;
    cr_expect_eq(rows_parse(row, 100, 99, 64, &out, &syntax, msg, sizeof msg), ERR_ROW_TOO_LARGE);
    cr_expect_null(out);
    cr_expect_eq(syntax, 0);
    cr_expect_neq(msg[0], 0);
}
