/*
 * test_util.c - the small utilities: UTF-8 validation (src/util/utf8.h), the
 * capped buffer (src/util/buf.h) and RFC 3339 formatting (src/util/clock.h).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/hex.h"
#include "util/utf8.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- utf8_valid ----------------------------------------------------------- */

struct utf8_case {
    const char *what;
    const char *bytes;
    size_t len;
    int valid;
};

#define U(what, lit, valid)                                                                        \
    {                                                                                              \
        what, lit, sizeof(lit) - 1, valid                                                          \
    }

static const struct utf8_case utf8_cases[] = {
    /* valid */
    U("empty", "", 1),
    U("ASCII", "hello, world {\"a\":1}", 1),
    U("ASCII with NUL byte", "a\0b", 1),
    U("DEL 0x7f", "\x7f", 1),
    U("2-byte lowest U+0080", "\xc2\x80", 1),
    U("2-byte e-acute U+00E9", "caf\xc3\xa9", 1),
    U("2-byte highest U+07FF", "\xdf\xbf", 1),
    U("3-byte lowest U+0800", "\xe0\xa0\x80", 1),
    U("3-byte euro U+20AC", "\xe2\x82\xac", 1),
    U("3-byte U+D7FF (just below surrogates)", "\xed\x9f\xbf", 1),
    U("3-byte U+E000 (just above surrogates)", "\xee\x80\x80", 1),
    U("3-byte U+FFFF", "\xef\xbf\xbf", 1),
    U("4-byte lowest U+10000", "\xf0\x90\x80\x80", 1),
    U("4-byte emoji U+1F600", "\xf0\x9f\x98\x80", 1),
    U("4-byte highest U+10FFFF", "\xf4\x8f\xbf\xbf", 1),
    U("mixed", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 1),
    /* overlongs */
    U("overlong 2-byte C0 80 (NUL)", "\xc0\x80", 0),
    U("overlong 2-byte C1 BF", "\xc1\xbf", 0),
    U("overlong 3-byte E0 80 80", "\xe0\x80\x80", 0),
    U("overlong 3-byte E0 9F BF", "\xe0\x9f\xbf", 0),
    U("overlong 4-byte F0 80 80 80", "\xf0\x80\x80\x80", 0),
    U("overlong 4-byte F0 8F BF BF", "\xf0\x8f\xbf\xbf", 0),
    /* surrogates */
    U("surrogate U+D800 ED A0 80", "\xed\xa0\x80", 0),
    U("surrogate U+DFFF ED BF BF", "\xed\xbf\xbf", 0),
    U("surrogate pair as CESU-8", "\xed\xa0\xbd\xed\xb8\x80", 0),
    /* above U+10FFFF */
    U("U+110000 F4 90 80 80", "\xf4\x90\x80\x80", 0),
    U("F5 lead byte", "\xf5\x80\x80\x80", 0),
    U("FF byte", "\xff", 0),
    U("FE byte", "\xfe", 0),
    /* truncated */
    U("truncated 2-byte at end", "ab\xc3", 0),
    U("truncated 3-byte (1 of 2 continuations)", "\xe2\x82", 0),
    U("truncated 3-byte (lead only)", "\xe2", 0),
    U("truncated 4-byte (2 of 3 continuations)", "\xf0\x9f\x98", 0),
    U("truncated 2-byte followed by ASCII",
      "\xc3"
      "a",
      0),
    U("truncated 3-byte followed by ASCII",
      "\xe2\x82"
      "a",
      0),
    U("truncated 4-byte followed by ASCII",
      "\xf0\x9f\x98"
      "a",
      0),
    /* lone continuation bytes */
    U("lone continuation 80", "\x80", 0),
    U("lone continuation BF after ASCII", "abc\xbf", 0),
    U("extra continuation after 2-byte", "\xc3\xa9\x80", 0),
    U("continuation after 4-byte", "\xf0\x9f\x98\x80\x80", 0),
};

Test(utf8, table)
{
    for (size_t i = 0; i < ARRAY_SIZE(utf8_cases); i++) {
        const struct utf8_case *c = &utf8_cases[i];
        cr_expect_eq(utf8_valid(c->bytes, c->len), c->valid, "%s: expected %s", c->what,
                     c->valid ? "valid" : "invalid");
    }
}

Test(utf8, length_is_respected)
{
    /* Only the first len bytes count: a valid prefix of an invalid string is valid, and
     * a sequence cut by len is not. */
    cr_expect_eq(utf8_valid("abc\xff", 3), 1);
    cr_expect_eq(utf8_valid("\xc3\xa9", 1), 0);
    cr_expect_eq(utf8_valid("\xf0\x9f\x98\x80", 3), 0);
    cr_expect_eq(utf8_valid("\xf0\x9f\x98\x80", 0), 1);
}

/* ---- buf ------------------------------------------------------------------ */

Test(buf, append_and_nul_terminated)
{
    struct buf b;
    buf_init(&b, 1024);
    cr_expect_eq(b.len, 0);
    cr_assert_eq(buf_appends(&b, "hello"), 0);
    cr_assert_eq(buf_append(&b, ", world", 7), 0);
    cr_expect_eq(b.len, 12);
    cr_expect_str_eq(b.data, "hello, world");
    cr_assert_eq(buf_append(&b, "", 0), 0);
    cr_expect_eq(b.len, 12);
    buf_reset(&b);
    cr_expect_eq(b.len, 0);
    cr_assert_eq(buf_appends(&b, "x"), 0);
    cr_expect_str_eq(b.data, "x");
    buf_release(&b);
    cr_expect_null(b.data);
}

Test(buf, cap_enforced_content_intact)
{
    struct buf b;
    buf_init(&b, 10);
    cr_assert_eq(buf_appends(&b, "0123456"), 0);
    /* 7 + 4 > 10: refused, nothing appended */
    cr_expect_eq(buf_appends(&b, "789a"), -1);
    cr_expect_eq(b.len, 7);
    cr_expect_str_eq(b.data, "0123456");
    /* exactly up to the cap is fine */
    cr_expect_eq(buf_appends(&b, "789"), 0);
    cr_expect_eq(b.len, 10);
    cr_expect_str_eq(b.data, "0123456789");
    /* one more byte is not */
    cr_expect_eq(buf_append(&b, "x", 1), -1);
    cr_expect_eq(b.len, 10);
    cr_expect_str_eq(b.data, "0123456789");
    cr_expect_eq(buf_printf(&b, "%d", 1), -1);
    cr_expect_eq(b.len, 10);
    cr_expect_str_eq(b.data, "0123456789");
    buf_release(&b);
}

Test(buf, cap_enforced_on_empty_buffer)
{
    struct buf b;
    char big[100];
    memset(big, 'a', sizeof big);
    buf_init(&b, 50);
    cr_expect_eq(buf_append(&b, big, sizeof big), -1);
    cr_expect_eq(b.len, 0);
    cr_expect_eq(buf_append(&b, big, 50), 0);
    cr_expect_eq(b.len, 50);
    buf_release(&b);
}

Test(buf, printf_small_and_large)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    cr_assert_eq(buf_printf(&b, "%s=%d;", "a", 42), 0);
    cr_expect_str_eq(b.data, "a=42;");

    /* > 512 bytes: the formatted text goes beyond the internal stack buffer */
    char *big = malloc(3001);
    cr_assert_not_null(big);
    for (int i = 0; i < 3000; i++)
        big[i] = (char)('a' + i % 26);
    big[3000] = 0;
    cr_assert_eq(buf_printf(&b, "[%s|%05d]", big, 7), 0);
    cr_expect_eq(b.len, 5 + 1 + 3000 + 7);
    cr_expect_eq(memcmp(b.data, "a=42;[", 6), 0);
    cr_expect_eq(memcmp(b.data + 6, big, 3000), 0);
    cr_expect_str_eq(b.data + 6 + 3000, "|00007]");
    cr_expect_eq(strlen(b.data), b.len);

    /* exactly 511 and 512 characters (the stack buffer's edge) */
    buf_reset(&b);
    cr_assert_eq(buf_printf(&b, "%.*s", 511, big), 0);
    cr_expect_eq(b.len, 511);
    cr_assert_eq(buf_printf(&b, "%.*s", 512, big), 0);
    cr_expect_eq(b.len, 1023);
    cr_expect_eq(memcmp(b.data + 511, big, 512), 0);
    cr_expect_eq(b.data[1023], 0);
    free(big);
    buf_release(&b);
}

Test(buf, printf_large_past_cap_fails_intact)
{
    struct buf b;
    buf_init(&b, 600);
    cr_assert_eq(buf_appends(&b, "head"), 0);
    cr_expect_eq(buf_printf(&b, "%0700d", 1), -1);
    cr_expect_eq(b.len, 4);
    cr_expect_str_eq(b.data, "head");
    buf_release(&b);
}

struct json_case {
    const char *in;
    size_t len;
    const char *out;
};

#define J(in, out)                                                                                 \
    {                                                                                              \
        in, sizeof(in) - 1, out                                                                    \
    }

static const struct json_case json_cases[] = {
    J("", "\"\""),
    J("plain", "\"plain\""),
    J("say \"hi\"", "\"say \\\"hi\\\"\""),
    J("back\\slash", "\"back\\\\slash\""),
    J("caf\xc3\xa9", "\"caf\xc3\xa9\""), /* UTF-8 passes through */
    J("/", "\"/\""),
};

Test(buf, json_string_exact)
{
    for (size_t i = 0; i < ARRAY_SIZE(json_cases); i++) {
        struct buf b;
        buf_init(&b, 1024);
        cr_assert_eq(buf_append_json_str(&b, json_cases[i].in, json_cases[i].len), 0);
        cr_expect_str_eq(b.data, json_cases[i].out, "input #%zu", i);
        cr_expect_eq(b.len, strlen(json_cases[i].out));
        buf_release(&b);
    }
}

Test(buf, json_string_control_chars_round_trip)
{
    /* Every control character 0x01..0x1f, an embedded NUL, quotes and backslashes:
     * the output has no raw control byte and parses back to exactly the input. */
    char in[64];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        in[n++] = (char)c;
    in[n++] = '"';
    in[n++] = '\\';
    in[n++] = 0;
    in[n++] = 'z';

    struct buf b;
    buf_init(&b, 4096);
    cr_assert_eq(buf_appends(&b, "["), 0);
    cr_assert_eq(buf_append_json_str(&b, in, n), 0);
    cr_assert_eq(buf_appends(&b, "]"), 0);
    for (size_t i = 0; i < b.len; i++)
        cr_expect_geq((unsigned char)b.data[i], 0x20, "raw control byte 0x%02x at %zu",
                      (unsigned char)b.data[i], i);
    cr_expect_not_null(strstr(b.data, "\\u0000"));

    json_error_t jerr;
    json_t *j = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &jerr);
    cr_assert_not_null(j, "not JSON: %s: %s", b.data, jerr.text);
    json_t *s = json_array_get(j, 0);
    cr_assert(json_is_string(s));
    cr_expect_eq(json_string_length(s), n);
    cr_expect_eq(memcmp(json_string_value(s), in, n), 0);
    json_decref(j);
    buf_release(&b);
}

Test(buf, json_string_past_cap_fails_intact)
{
    /* The escaped form does not fit: refused, and the buffer holds what it held. */
    struct buf b;
    buf_init(&b, 16);
    cr_assert_eq(buf_appends(&b, "k:"), 0);
    cr_expect_eq(buf_append_json_str(&b, "\x01\x02\x03", 3), -1); /* 2 + 20 bytes */
    cr_expect_eq(b.len, 2);
    cr_expect_str_eq(b.data, "k:");
    buf_release(&b);
}

Test(buf, steal)
{
    struct buf b;
    size_t len = 99;
    buf_init(&b, 100);
    cr_assert_eq(buf_appends(&b, "taken"), 0);
    char *p = buf_steal(&b, &len);
    cr_assert_not_null(p);
    cr_expect_str_eq(p, "taken");
    cr_expect_eq(len, 5);
    cr_expect_null(b.data);
    cr_expect_eq(b.len, 0);
    cr_expect_eq(b.cap, 0);
    free(p);

    /* the buffer is usable again, with its cap */
    cr_assert_eq(buf_appends(&b, "again"), 0);
    cr_expect_str_eq(b.data, "again");
    char big[200] = {0};
    cr_expect_eq(buf_append(&b, big, sizeof big), -1);
    buf_release(&b);

    /* stealing an empty buffer gives an empty string, not NULL */
    buf_init(&b, 100);
    len = 99;
    p = buf_steal(&b, &len);
    cr_assert_not_null(p);
    cr_expect_eq(len, 0);
    cr_expect_str_eq(p, "");
    free(p);
}

/* ---- clock ---------------------------------------------------------------- */

static const struct {
    int64_t ms;
    const char *text;
} rfc3339_cases[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {1, "1970-01-01T00:00:00.001Z"},
    {999, "1970-01-01T00:00:00.999Z"},
    {1000, "1970-01-01T00:00:01.000Z"},
    {86399999, "1970-01-01T23:59:59.999Z"},
    {951782400000, "2000-02-29T00:00:00.000Z"}, /* leap day */
    {1700000000123, "2023-11-14T22:13:20.123Z"},
    {1709210096789, "2024-02-29T12:34:56.789Z"},
    {2147483647000, "2038-01-19T03:14:07.000Z"}, /* 32-bit time_t limit */
    {2147483648000, "2038-01-19T03:14:08.000Z"}, /* just past it */
    {4102444800000, "2100-01-01T00:00:00.000Z"},
    {253402300799999, "9999-12-31T23:59:59.999Z"},
};

Test(clock, rfc3339_known_epochs)
{
    for (size_t i = 0; i < ARRAY_SIZE(rfc3339_cases); i++) {
        char out[25];
        memset(out, 'X', sizeof out);
        char *r = clock_rfc3339(rfc3339_cases[i].ms, out, sizeof out);
        cr_expect_eq(r, out);
        cr_expect_str_eq(out, rfc3339_cases[i].text, "ms=%lld", (long long)rfc3339_cases[i].ms);
    }
}

Test(clock, wall_and_mono)
{
    int64_t w = clock_wall_ms();
    cr_expect_gt(w, 1577836800000LL); /* after 2020-01-01 */
    uint64_t a = clock_mono_ns(), b = clock_mono_ns();
    cr_expect_geq(b, a);
    char out[32];
    clock_rfc3339(w, out, sizeof out);
    cr_expect_eq(strlen(out), 24);
    cr_expect_eq(out[23], 'Z');
}

Test(hex, round_trip_and_refusals)
{
    unsigned char in[4] = {0x00, 0xff, 0x5c, 0x09}, out[4];
    char txt[9];
    hex_encode(in, sizeof in, txt);
    cr_expect_str_eq(txt, "00ff5c09");
    cr_expect_eq(hex_decode(txt, out, sizeof out), 0);
    cr_expect_eq(memcmp(in, out, sizeof in), 0);
    cr_expect_eq(hex_decode("00FF5C09", out, sizeof out), 0, "either case");
    cr_expect_eq(out[1], 0xff);
    cr_expect_eq(hex_decode("00ff5c0", out, sizeof out), -1, "too short");
    cr_expect_eq(hex_decode("00ff5c090", out, sizeof out), -1, "too long");
    cr_expect_eq(hex_decode("00ff5c0g", out, sizeof out), -1, "not a digit");
    cr_expect_eq(hex_decode(" 0ff5c09", out, sizeof out), -1, "no leading space, as sscanf took");
}
