/*
 * test_csv.c - the streaming CSV reader (src/ingest/csv.h): fields, raw bytes,
 * line numbers, line ends, empty lines, the BOM, per-record errors, the size
 * cap, the callback's stop value, chunk-split independence, and csv-spectrum
 * (../shared/suites/csv-spectrum, read in place; tests run from the repo root).
 */
#include <criterion/criterion.h>
#include <glob.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/csv.h"

#define SPECTRUM "../shared/suites/csv-spectrum"

/* ---- collecting records --------------------------------------------------- */

struct rec {
    int64_t index, line;
    enum sluice_err error;
    char *raw;
    size_t raw_len;
    char *msg;
    size_t nfields;
    char **fields;
    size_t *lens;
    int *quoted;
};

struct got {
    struct rec *v;
    size_t n, cap;
    size_t stop_at; /* return stop_value from the callback for this record (1-based); 0: never */
    int stop_value;
};

static char *dup_bytes(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    cr_assert_not_null(d);
    if (n)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static int collect(void *arg, const struct csv_record *r)
{
    struct got *g = arg;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->v = realloc(g->v, g->cap * sizeof(*g->v));
        cr_assert_not_null(g->v);
    }
    struct rec *c = &g->v[g->n++];
    memset(c, 0, sizeof(*c));
    c->index = r->index;
    c->line = r->line;
    c->error = r->error;
    c->raw = dup_bytes(r->raw, r->raw_len);
    c->raw_len = r->raw_len;
    if (r->error != SLUICE_OK) {
        cr_assert_not_null(r->error_message);
        c->msg = dup_bytes(r->error_message, strlen(r->error_message));
    } else {
        cr_assert_null(r->error_message);
    }
    c->nfields = r->nfields;
    c->fields = calloc(r->nfields + 1, sizeof(char *));
    c->lens = calloc(r->nfields + 1, sizeof(size_t));
    c->quoted = calloc(r->nfields + 1, sizeof(int));
    for (size_t i = 0; i < r->nfields; i++) {
        const struct csv_field *f = &r->fields[i];
        cr_assert_eq(f->data[f->len], '\0', "field %zu is not NUL-terminated", i);
        c->fields[i] = dup_bytes(f->data, f->len);
        c->lens[i] = f->len;
        c->quoted[i] = f->quoted;
    }
    if (g->stop_at && g->n == g->stop_at)
        return g->stop_value;
    return 0;
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++) {
        struct rec *c = &g->v[i];
        for (size_t k = 0; k < c->nfields; k++)
            free(c->fields[k]);
        free(c->fields);
        free(c->lens);
        free(c->quoted);
        free(c->raw);
        free(c->msg);
    }
    free(g->v);
    memset(g, 0, sizeof(*g));
}

/* Feeds in[0..len) in chunks of `chunk` bytes (0: all at once), then finishes. */
static struct got parse_chunked(const char *in, size_t len, size_t chunk, size_t max)
{
    struct got g = {0};
    struct csv_reader *r = csv_reader_create(max, collect, &g);
    cr_assert_not_null(r);
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t i = 0; i < len; i += chunk) {
        size_t n = len - i < chunk ? len - i : chunk;
        cr_assert_eq(csv_feed(r, in + i, n), 0);
    }
    cr_assert_eq(csv_finish(r), 0);
    csv_reader_destroy(r);
    return g;
}

static struct got parse_max(const char *in, size_t max)
{
    return parse_chunked(in, strlen(in), 0, max);
}

static struct got parse(const char *in)
{
    return parse_max(in, 1 << 20);
}

/* Record i (0-based) is OK with exactly the given fields (NULL-terminated list). */
static void expect_fields(const struct got *g, size_t i, const char *const *want)
{
    cr_assert_lt(i, g->n, "no record %zu (got %zu)", i, g->n);
    const struct rec *c = &g->v[i];
    cr_assert_eq(c->error, SLUICE_OK, "record %zu: %s (%s)", i, err_name(c->error),
                 c->msg ? c->msg : "");
    size_t n = 0;
    while (want[n])
        n++;
    cr_assert_eq(c->nfields, n, "record %zu: %zu fields, want %zu", i, c->nfields, n);
    for (size_t k = 0; k < n; k++)
        cr_assert_str_eq(c->fields[k], want[k], "record %zu field %zu", i, k);
}

#define FIELDS(...)                                                                                \
    (const char *const[])                                                                          \
    {                                                                                              \
        __VA_ARGS__, NULL                                                                          \
    }

static void expect_raw(const struct got *g, size_t i, const char *raw)
{
    cr_assert_lt(i, g->n);
    cr_assert_eq(g->v[i].raw_len, strlen(raw), "record %zu raw length %zu, want %zu", i,
                 g->v[i].raw_len, strlen(raw));
    cr_assert(memcmp(g->v[i].raw, raw, strlen(raw)) == 0, "record %zu raw is '%s', want '%s'", i,
              g->v[i].raw, raw);
}

static void expect_rec(const struct got *g, size_t i, int64_t index, int64_t line,
                       enum sluice_err err, const char *raw)
{
    cr_assert_lt(i, g->n, "no record %zu (got %zu)", i, g->n);
    cr_assert_eq(g->v[i].index, index, "record %zu index %lld", i, (long long)g->v[i].index);
    cr_assert_eq(g->v[i].line, line, "record %zu line %lld, want %lld", i, (long long)g->v[i].line,
                 (long long)line);
    cr_assert_eq(g->v[i].error, err, "record %zu is %s, want %s", i, err_name(g->v[i].error),
                 err_name(err));
    if (err != SLUICE_OK)
        cr_assert_eq(g->v[i].nfields, 0, "an error record carries no fields");
    expect_raw(g, i, raw);
}

static void expect_same(const struct got *a, const struct got *b, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: %zu records vs %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const struct rec *x = &a->v[i], *y = &b->v[i];
        cr_assert_eq(x->index, y->index, "%s: record %zu index", what, i);
        cr_assert_eq(x->line, y->line, "%s: record %zu line", what, i);
        cr_assert_eq(x->error, y->error, "%s: record %zu error", what, i);
        cr_assert_eq(x->raw_len, y->raw_len, "%s: record %zu raw length", what, i);
        cr_assert(memcmp(x->raw, y->raw, x->raw_len) == 0, "%s: record %zu raw", what, i);
        cr_assert_eq(x->nfields, y->nfields, "%s: record %zu nfields", what, i);
        for (size_t k = 0; k < x->nfields; k++) {
            cr_assert_eq(x->lens[k], y->lens[k], "%s: record %zu field %zu", what, i, k);
            cr_assert(memcmp(x->fields[k], y->fields[k], x->lens[k]) == 0,
                      "%s: record %zu field %zu", what, i, k);
            cr_assert_eq(x->quoted[k], y->quoted[k], "%s: record %zu field %zu quoted", what, i, k);
        }
        if (x->msg || y->msg)
            cr_assert(x->msg && y->msg && strcmp(x->msg, y->msg) == 0, "%s: record %zu message",
                      what, i);
    }
}

/* ---- fields, quoting, raw bytes ------------------------------------------- */

Test(csv, simple_records)
{
    struct got g = parse("a,b,c\n1,2,3\n");
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 0, 1, 1, SLUICE_OK, "a,b,c");
    expect_fields(&g, 0, FIELDS("a", "b", "c"));
    expect_rec(&g, 1, 2, 2, SLUICE_OK, "1,2,3");
    expect_fields(&g, 1, FIELDS("1", "2", "3"));
    cr_assert_eq(g.v[1].quoted[0], 0);
    got_free(&g);
}

Test(csv, quoted_fields_are_unescaped_and_raw_is_exact)
{
    struct got g = parse("\"a,b\",\"say \"\"hi\"\"\",\"\",x,\"\"\"\"\n");
    cr_assert_eq(g.n, 1);
    expect_rec(&g, 0, 1, 1, SLUICE_OK, "\"a,b\",\"say \"\"hi\"\"\",\"\",x,\"\"\"\"");
    expect_fields(&g, 0, FIELDS("a,b", "say \"hi\"", "", "x", "\""));
    cr_assert_eq(g.v[0].quoted[0], 1);
    cr_assert_eq(g.v[0].quoted[2], 1);
    cr_assert_eq(g.v[0].quoted[3], 0);
    cr_assert_eq(g.v[0].lens[1], 8);
    got_free(&g);
}

Test(csv, empty_fields)
{
    struct got g = parse(",\na,\n,b\n\"\"\n,,");
    cr_assert_eq(g.n, 5);
    expect_fields(&g, 0, FIELDS("", ""));
    expect_fields(&g, 1, FIELDS("a", ""));
    expect_fields(&g, 2, FIELDS("", "b"));
    expect_fields(&g, 3, FIELDS(""));
    cr_assert_eq(g.v[3].quoted[0], 1);
    expect_fields(&g, 4, FIELDS("", "", ""));
    expect_raw(&g, 4, ",,");
    got_free(&g);
}

Test(csv, spaces_are_data)
{
    struct got g = parse(" a , b \n \n");
    cr_assert_eq(g.n, 2);
    expect_fields(&g, 0, FIELDS(" a ", " b "));
    expect_fields(&g, 1, FIELDS(" "));
    got_free(&g);
}

Test(csv, last_record_without_line_end)
{
    struct got g = parse("a,b\nc,\"d\"");
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 1, 2, 2, SLUICE_OK, "c,\"d\"");
    expect_fields(&g, 1, FIELDS("c", "d"));
    got_free(&g);
}

Test(csv, no_input_no_records)
{
    struct got g = parse("");
    cr_assert_eq(g.n, 0);
    got_free(&g);
    g = parse("\n\r\n\r");
    cr_assert_eq(g.n, 0);
    got_free(&g);
}

Test(csv, fields_hold_other_bytes_verbatim)
{
    /* a NUL inside a field is data (its len counts it); tabs and ';' are not separators */
    const char in[] = "a\tb;c,\"x\0y\"\n";
    struct got g = parse_chunked(in, sizeof(in) - 1, 0, 1024);
    cr_assert_eq(g.n, 1);
    cr_assert_eq(g.v[0].error, SLUICE_OK);
    cr_assert_eq(g.v[0].nfields, 2);
    cr_assert_str_eq(g.v[0].fields[0], "a\tb;c");
    cr_assert_eq(g.v[0].lens[1], 3);
    cr_assert(memcmp(g.v[0].fields[1], "x\0y", 3) == 0);
    cr_assert_eq(g.v[0].raw_len, sizeof(in) - 2);
    got_free(&g);
}

/* ---- line ends and line numbers ------------------------------------------- */

Test(csv, crlf_lf_cr_mixed)
{
    struct got g = parse("a,1\r\nb,2\nc,3\rd,4\r\n\re,5");
    cr_assert_eq(g.n, 5);
    expect_rec(&g, 0, 1, 1, SLUICE_OK, "a,1");
    expect_rec(&g, 1, 2, 2, SLUICE_OK, "b,2");
    expect_rec(&g, 2, 3, 3, SLUICE_OK, "c,3");
    expect_rec(&g, 3, 4, 4, SLUICE_OK, "d,4");
    /* "\r\n" after d,4 is one line end; the "\r" after it is an empty line 5 */
    expect_rec(&g, 4, 5, 6, SLUICE_OK, "e,5");
    expect_fields(&g, 4, FIELDS("e", "5"));
    got_free(&g);
}

Test(csv, lf_cr_is_two_line_ends)
{
    struct got g = parse("a\n\rb\n");
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 0, 1, 1, SLUICE_OK, "a");
    expect_rec(&g, 1, 2, 3, SLUICE_OK, "b");
    got_free(&g);
}

Test(csv, quoted_line_breaks_count_as_lines)
{
    struct got g = parse("h\n\"x\ny\",\"1\r\n2\r3\"\nz\n\"\r\n\"\nw");
    cr_assert_eq(g.n, 5);
    expect_rec(&g, 0, 1, 1, SLUICE_OK, "h");
    expect_rec(&g, 1, 2, 2, SLUICE_OK, "\"x\ny\",\"1\r\n2\r3\"");
    expect_fields(&g, 1, FIELDS("x\ny", "1\r\n2\r3"));
    /* record 2 spans lines 2..5: "\n", "\r\n" and "\r" inside quotes are 3 line breaks */
    expect_rec(&g, 2, 3, 6, SLUICE_OK, "z");
    expect_rec(&g, 3, 4, 7, SLUICE_OK, "\"\r\n\"");
    expect_fields(&g, 3, FIELDS("\r\n"));
    expect_rec(&g, 4, 5, 9, SLUICE_OK, "w");
    got_free(&g);
}

Test(csv, empty_lines_are_skipped)
{
    struct got g = parse("\n\na\n\n\r\n\rb\n\n");
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 0, 1, 3, SLUICE_OK, "a");
    expect_rec(&g, 1, 2, 7, SLUICE_OK, "b");
    got_free(&g);
}

/* ---- BOM ------------------------------------------------------------------ */

Test(csv, bom_is_skipped)
{
    struct got g = parse("\xEF\xBB\xBF"
                         "a,b\n1,2\n");
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 0, 1, 1, SLUICE_OK, "a,b");
    expect_fields(&g, 0, FIELDS("a", "b"));
    got_free(&g);

    g = parse("\xEF\xBB\xBF\"q\"\n");
    expect_fields(&g, 0, FIELDS("q"));
    expect_raw(&g, 0, "\"q\"");
    got_free(&g);

    g = parse("\xEF\xBB\xBF");
    cr_assert_eq(g.n, 0);
    got_free(&g);

    g = parse("\xEF\xBB\xBF\n\nx");
    cr_assert_eq(g.n, 1);
    expect_rec(&g, 0, 1, 3, SLUICE_OK, "x");
    got_free(&g);
}

Test(csv, bom_only_at_the_very_start)
{
    /* a second BOM is data (U+FEFF is valid UTF-8) */
    struct got g = parse("\xEF\xBB\xBF\xEF\xBB\xBF"
                         "a\n\xEF\xBB\xBF"
                         "b\n");
    cr_assert_eq(g.n, 2);
    expect_fields(&g, 0,
                  FIELDS("\xEF\xBB\xBF"
                         "a"));
    expect_fields(&g, 1,
                  FIELDS("\xEF\xBB\xBF"
                         "b"));
    got_free(&g);
}

Test(csv, partial_bom_is_data)
{
    struct got g = parse("\xEF\xBBx,y\nz\n");
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 0, 1, 1, ERR_INVALID_UTF8, "\xEF\xBBx,y");
    expect_rec(&g, 1, 2, 2, SLUICE_OK, "z");
    got_free(&g);

    g = parse("\xEF");
    cr_assert_eq(g.n, 1);
    expect_rec(&g, 0, 1, 1, ERR_INVALID_UTF8, "\xEF");
    got_free(&g);

    /* "\xEF\xBB" then a line end: the bytes form a record of their own */
    g = parse("\xEF\xBB\nok");
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 0, 1, 1, ERR_INVALID_UTF8, "\xEF\xBB");
    expect_rec(&g, 1, 2, 2, SLUICE_OK, "ok");
    got_free(&g);
}

/* ---- errors --------------------------------------------------------------- */

Test(csv, quote_inside_unquoted_field_is_malformed)
{
    struct got g = parse("ab\"c,d\nx,y\n");
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 0, 1, 1, ERR_MALFORMED_CSV, "ab\"c,d");
    cr_assert_not_null(strstr(g.v[0].msg, "quote"));
    expect_rec(&g, 1, 2, 2, SLUICE_OK, "x,y");
    expect_fields(&g, 1, FIELDS("x", "y"));
    got_free(&g);

    /* the stray quote does not open a quoted section: the record ends at its line end */
    g = parse("a,b\"c\nd\"\ne\n");
    cr_assert_eq(g.n, 3);
    expect_rec(&g, 0, 1, 1, ERR_MALFORMED_CSV, "a,b\"c");
    expect_rec(&g, 1, 2, 2, ERR_MALFORMED_CSV, "d\"");
    expect_rec(&g, 2, 3, 3, SLUICE_OK, "e");
    got_free(&g);

    /* a quote after leading spaces is inside an unquoted field too */
    g = parse(" \"a\",b\n");
    cr_assert_eq(g.n, 1);
    expect_rec(&g, 0, 1, 1, ERR_MALFORMED_CSV, " \"a\",b");
    got_free(&g);
}

Test(csv, text_after_closing_quote_is_malformed)
{
    struct got g = parse("\"ab\"c,d\n\"x\" ,y\nok\n");
    cr_assert_eq(g.n, 3);
    expect_rec(&g, 0, 1, 1, ERR_MALFORMED_CSV, "\"ab\"c,d");
    cr_assert_not_null(strstr(g.v[0].msg, "closing quote"));
    expect_rec(&g, 1, 2, 2, ERR_MALFORMED_CSV, "\"x\" ,y");
    expect_rec(&g, 2, 3, 3, SLUICE_OK, "ok");
    got_free(&g);
}

Test(csv, unterminated_quote_at_end_of_input)
{
    struct got g = parse("a\n\"bc,d\ne\n");
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 0, 1, 1, SLUICE_OK, "a");
    /* everything after the open quote is in the record, line breaks included */
    expect_rec(&g, 1, 2, 2, ERR_MALFORMED_CSV, "\"bc,d\ne\n");
    cr_assert_not_null(strstr(g.v[1].msg, "not closed"));
    got_free(&g);

    g = parse("x,\"");
    cr_assert_eq(g.n, 1);
    expect_rec(&g, 0, 1, 1, ERR_MALFORMED_CSV, "x,\"");
    got_free(&g);
}

Test(csv, closing_quote_at_end_of_input_is_fine)
{
    struct got g = parse("x,\"a\"\"\"");
    cr_assert_eq(g.n, 1);
    expect_fields(&g, 0, FIELDS("x", "a\""));
    got_free(&g);
}

Test(csv, invalid_utf8)
{
    struct got g =
        parse("a,\xff\nb,\xC0\xAF\nc,\xED\xA0\x80\n\"\xC3\"\n\xC3\xA9,\xF0\x9F\x98\x80\n");
    cr_assert_eq(g.n, 5);
    expect_rec(&g, 0, 1, 1, ERR_INVALID_UTF8, "a,\xff");
    expect_rec(&g, 1, 2, 2, ERR_INVALID_UTF8, "b,\xC0\xAF");     /* overlong */
    expect_rec(&g, 2, 3, 3, ERR_INVALID_UTF8, "c,\xED\xA0\x80"); /* surrogate */
    expect_rec(&g, 3, 4, 4, ERR_INVALID_UTF8, "\"\xC3\"");       /* cut sequence */
    cr_assert_not_null(strstr(g.v[3].msg, "UTF-8"));
    expect_rec(&g, 4, 5, 5, SLUICE_OK, "\xC3\xA9,\xF0\x9F\x98\x80");
    expect_fields(&g, 4, FIELDS("\xC3\xA9", "\xF0\x9F\x98\x80"));
    got_free(&g);
}

Test(csv, malformed_wins_over_invalid_utf8)
{
    struct got g = parse("\xff\"\n");
    cr_assert_eq(g.n, 1);
    expect_rec(&g, 0, 1, 1, ERR_MALFORMED_CSV, "\xff\"");
    got_free(&g);
}

/* ---- max_record_bytes ----------------------------------------------------- */

Test(csv, max_record_bytes)
{
    /* 10 bytes is the limit: "0123456789" fits, one more byte does not */
    struct got g = parse_max("0123456789\n0123456789a\nok\n\"0123,\n56789\"\nz", 10);
    cr_assert_eq(g.n, 5);
    expect_rec(&g, 0, 1, 1, SLUICE_OK, "0123456789");
    expect_rec(&g, 1, 2, 2, ERR_ROW_TOO_LARGE, "0123456789");
    cr_assert_not_null(strstr(g.v[1].msg, "truncated"), "message: %s", g.v[1].msg);
    cr_assert_not_null(strstr(g.v[1].msg, "11 bytes"), "message: %s", g.v[1].msg);
    expect_rec(&g, 2, 3, 3, SLUICE_OK, "ok");
    /* a quoted line break does not end the oversized record */
    expect_rec(&g, 3, 4, 4, ERR_ROW_TOO_LARGE, "\"0123,\n567");
    expect_rec(&g, 4, 5, 6, SLUICE_OK, "z");
    got_free(&g);
}

Test(csv, max_record_bytes_at_end_of_input)
{
    struct got g = parse_max("abcdefgh", 4);
    cr_assert_eq(g.n, 1);
    expect_rec(&g, 0, 1, 1, ERR_ROW_TOO_LARGE, "abcd");
    got_free(&g);

    /* oversized and unterminated: one record, ROW_TOO_LARGE */
    g = parse_max("ok\n\"abcdefgh\nij", 4);
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 1, 2, 2, ERR_ROW_TOO_LARGE, "\"abc");
    got_free(&g);
}

Test(csv, huge_record_in_one_chunk)
{
    size_t n = 4u << 20;
    char *in = malloc(n + 3);
    cr_assert_not_null(in);
    memset(in, ',', n);
    memcpy(in + n, "\nx", 3);
    struct got g = parse_chunked(in, n + 2, 0, 64);
    cr_assert_eq(g.n, 2);
    cr_assert_eq(g.v[0].error, ERR_ROW_TOO_LARGE);
    cr_assert_eq(g.v[0].raw_len, 64);
    expect_rec(&g, 1, 2, 2, SLUICE_OK, "x");
    got_free(&g);
    free(in);
}

/* ---- the callback's stop value -------------------------------------------- */

Test(csv, callback_stop_value_propagates)
{
    struct got g = {.stop_at = 2, .stop_value = 7};
    struct csv_reader *r = csv_reader_create(1024, collect, &g);
    cr_assert_not_null(r);
    cr_assert_eq(csv_feed(r, "a\nb\nc\n", 6), 7);
    cr_assert_eq(g.n, 2);
    /* sticky: nothing more is read */
    cr_assert_eq(csv_feed(r, "d\n", 2), 7);
    cr_assert_eq(csv_finish(r), 7);
    cr_assert_eq(g.n, 2);
    csv_reader_destroy(r);
    got_free(&g);
}

Test(csv, callback_stop_value_from_finish)
{
    struct got g = {.stop_at = 2, .stop_value = -5};
    struct csv_reader *r = csv_reader_create(1024, collect, &g);
    cr_assert_not_null(r);
    cr_assert_eq(csv_feed(r, "a\nb", 3), 0);
    cr_assert_eq(csv_finish(r), -5);
    cr_assert_eq(g.n, 2);
    expect_raw(&g, 1, "b");
    csv_reader_destroy(r);
    got_free(&g);
}

Test(csv, create_and_destroy)
{
    csv_reader_destroy(NULL);
    cr_assert_null(csv_reader_create(1024, NULL, NULL));
    cr_assert_null(csv_reader_create(0, collect, NULL));
}

/* ---- any split of the input gives the same records ------------------------ */

static const char split_input[] = "\xEF\xBB\xBF"
                                  "id,name,note\r\n"
                                  "1,\"Smith, J\",\"said \"\"hi\"\"\"\r\n"
                                  "\r\n"
                                  "2,plain,\"multi\r\nline\rfield\nend\"\n"
                                  "3,\xC3\xA9t\xC3\xA9,\"\"\r"
                                  "4,ab\"c,x\n"
                                  "5,\"ab\"c,x\n"
                                  "6,\xFF,x\n"
                                  "7,a-record-that-is-much-too-long-for-the-cap,\"with\nquotes\"\n"
                                  "\n"
                                  "8,,\"\"\"\"\r\n"
                                  "9,last,\"unterminated\r\n";

static void check_splits(size_t max)
{
    size_t len = sizeof(split_input) - 1;
    struct got whole = parse_chunked(split_input, len, 0, max);
    cr_assert_eq(whole.n, 10);
    static const size_t sizes[] = {1, 2, 3, 7, 64};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct got g = parse_chunked(split_input, len, sizes[i], max);
        char what[64];
        snprintf(what, sizeof(what), "chunks of %zu (max %zu)", sizes[i], max);
        expect_same(&whole, &g, what);
        got_free(&g);
    }
    /* every cut into two pieces */
    for (size_t cut = 0; cut <= len; cut++) {
        struct got g = {0};
        struct csv_reader *r = csv_reader_create(max, collect, &g);
        cr_assert_eq(csv_feed(r, split_input, cut), 0);
        cr_assert_eq(csv_feed(r, split_input + cut, len - cut), 0);
        cr_assert_eq(csv_finish(r), 0);
        csv_reader_destroy(r);
        char what[64];
        snprintf(what, sizeof(what), "cut at %zu (max %zu)", cut, max);
        expect_same(&whole, &g, what);
        got_free(&g);
    }
    got_free(&whole);
}

Test(csv, splits_give_identical_records)
{
    check_splits(1 << 20);
    struct got g = parse_chunked(split_input, sizeof(split_input) - 1, 0, 1 << 20);
    expect_rec(&g, 0, 1, 1, SLUICE_OK, "id,name,note");
    expect_fields(&g, 1, FIELDS("1", "Smith, J", "said \"hi\""));
    expect_rec(&g, 2, 3, 4, SLUICE_OK, "2,plain,\"multi\r\nline\rfield\nend\"");
    expect_fields(&g, 2, FIELDS("2", "plain", "multi\r\nline\rfield\nend"));
    expect_rec(&g, 3, 4, 8, SLUICE_OK, "3,\xC3\xA9t\xC3\xA9,\"\"");
    expect_rec(&g, 4, 5, 9, ERR_MALFORMED_CSV, "4,ab\"c,x");
    expect_rec(&g, 5, 6, 10, ERR_MALFORMED_CSV, "5,\"ab\"c,x");
    expect_rec(&g, 6, 7, 11, ERR_INVALID_UTF8, "6,\xFF,x");
    expect_rec(&g, 7, 8, 12, SLUICE_OK,
               "7,a-record-that-is-much-too-long-for-the-cap,\"with\nquotes\"");
    expect_rec(&g, 8, 9, 15, SLUICE_OK, "8,,\"\"\"\"");
    expect_fields(&g, 8, FIELDS("8", "", "\""));
    expect_rec(&g, 9, 10, 16, ERR_MALFORMED_CSV, "9,last,\"unterminated\r\n");
    got_free(&g);
}

Test(csv, splits_give_identical_records_with_a_small_cap)
{
    check_splits(24);
    struct got g = parse_chunked(split_input, sizeof(split_input) - 1, 0, 24);
    expect_rec(&g, 2, 3, 4, ERR_ROW_TOO_LARGE, "2,plain,\"multi\r\nline\rfie");
    expect_rec(&g, 7, 8, 12, ERR_ROW_TOO_LARGE, "7,a-record-that-is-much-");
    expect_rec(&g, 8, 9, 15, SLUICE_OK, "8,,\"\"\"\"");
    expect_rec(&g, 9, 10, 16, ERR_MALFORMED_CSV, "9,last,\"unterminated\r\n");
    got_free(&g);
}

/* ---- csv-spectrum ---------------------------------------------------------- */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s (tests run from the repo root)", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

static void check_spectrum_file(const char *csv_path)
{
    const char *base = strrchr(csv_path, '/') + 1;
    char name[256], json_path[512];
    snprintf(name, sizeof(name), "%.*s", (int)(strlen(base) - 4), base);
    snprintf(json_path, sizeof(json_path), SPECTRUM "/json/%s.json", name);

    size_t len;
    char *in = read_all(csv_path, &len);
    struct got g = parse_chunked(in, len, 0, 1 << 20);
    struct got g1 = parse_chunked(in, len, 1, 1 << 20);
    expect_same(&g, &g1, name);
    got_free(&g1);
    free(in);

    json_error_t jerr;
    json_t *want = json_load_file(json_path, 0, &jerr);
    cr_assert_not_null(want, "%s: %s", json_path, jerr.text);
    cr_assert(json_is_array(want), "%s is not an array", json_path);
    cr_assert_geq(g.n, 1, "%s: no header", name);
    cr_assert_eq(g.v[0].error, SLUICE_OK, "%s: header is %s", name, err_name(g.v[0].error));
    cr_assert_eq(g.n - 1, json_array_size(want), "%s: %zu records, want %zu", name, g.n - 1,
                 json_array_size(want));
    for (size_t i = 1; i < g.n; i++) {
        const struct rec *c = &g.v[i];
        json_t *obj = json_array_get(want, i - 1);
        cr_assert_eq(c->error, SLUICE_OK, "%s record %zu: %s", name, i, err_name(c->error));
        cr_assert_eq(c->nfields, g.v[0].nfields, "%s record %zu: field count", name, i);
        cr_assert_eq(json_object_size(obj), c->nfields, "%s record %zu: key count", name, i);
        for (size_t k = 0; k < c->nfields; k++) {
            json_t *v = json_object_get(obj, g.v[0].fields[k]);
            cr_assert(json_is_string(v), "%s record %zu: no string for %s", name, i,
                      g.v[0].fields[k]);
            cr_assert_eq(json_string_length(v), c->lens[k], "%s record %zu field %s", name, i,
                         g.v[0].fields[k]);
            cr_assert(memcmp(json_string_value(v), c->fields[k], c->lens[k]) == 0,
                      "%s record %zu field %s: '%s' want '%s'", name, i, g.v[0].fields[k],
                      c->fields[k], json_string_value(v));
        }
    }
    json_decref(want);
    got_free(&g);
}

Test(csv, csv_spectrum)
{
    glob_t gl;
    cr_assert_eq(glob(SPECTRUM "/csvs/*.csv", 0, NULL, &gl), 0,
                 "no csv-spectrum files under " SPECTRUM " (tests run from the repo root)");
    size_t checked = 0;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        if (strstr(gl.gl_pathv[i], "/location_coordinates.csv"))
            continue; /* see csv_spectrum_location_coordinates */
        check_spectrum_file(gl.gl_pathv[i]);
        checked++;
    }
    globfree(&gl);
    cr_assert_geq(checked, 11, "only %zu csv-spectrum files", checked);
}

/*
 * location_coordinates.csv is not valid CSV: its second record holds bare
 * quotes inside an unquoted field (37?36'37.8"N 121?2'17.9"W), which this
 * reader rejects as MALFORMED_CSV, raw bytes intact, instead of reading the
 * quotes as data the way json/location_coordinates.json (an object, not an
 * array) expects. The "?" there are EF BF BD, i.e. U+FFFD REPLACEMENT
 * CHARACTER, which is valid UTF-8: the file is not INVALID_UTF8 (a lenient
 * tool must have replaced the original degree signs before it was committed).
 */
Test(csv, csv_spectrum_location_coordinates)
{
    size_t len;
    char *in = read_all(SPECTRUM "/csvs/location_coordinates.csv", &len);
    struct got g = parse_chunked(in, len, 0, 1 << 20);
    struct got g1 = parse_chunked(in, len, 1, 1 << 20);
    expect_same(&g, &g1, "location_coordinates");
    got_free(&g1);
    cr_assert_eq(g.n, 2);
    expect_rec(&g, 0, 1, 1, SLUICE_OK, "Contact Phone Number,Location Coordinates,Cities,Counties");
    expect_fields(&g, 0,
                  FIELDS("Contact Phone Number", "Location Coordinates", "Cities", "Counties"));
    const char *line2 = memchr(in, '\n', len) + 1;
    cr_assert_eq(g.v[1].index, 2);
    cr_assert_eq(g.v[1].line, 2);
    cr_assert_eq(g.v[1].error, ERR_MALFORMED_CSV);
    cr_assert_eq(g.v[1].nfields, 0);
    cr_assert_eq(g.v[1].raw_len, len - (size_t)(line2 - in));
    cr_assert(memcmp(g.v[1].raw, line2, g.v[1].raw_len) == 0);
    got_free(&g);
    free(in);
}
