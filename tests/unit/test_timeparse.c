/*
 * test_timeparse.c - time_parse() (src/util/timeparse.h): epoch milliseconds, RFC 3339
 * and durations before now, and the odd cases each must get right or refuse.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "util/timeparse.h"

#define NOW 1767225600000LL /* 2026-01-01T00:00:00Z */

struct tp_case {
    const char *in;
    int ok;
    int64_t want;    /* when ok */
    const char *say; /* when not ok: a fragment of the message */
};

static const struct tp_case cases[] = {
    {"0", 1, 0, NULL},
    {"1767225600000", 1, NOW, NULL},
    {"1970-01-01T00:00:00Z", 1, 0, NULL},
    {"2026-01-01T00:00:00Z", 1, NOW, NULL},
    {"2026-01-01t00:00:00z", 1, NOW, NULL},
    {"2026-01-01T05:30:00+05:30", 1, NOW, NULL},
    {"2026-01-01T05:30:00 05:30", 1, NOW, NULL}, /* '+' decoded to a space in a URL */
    {"2025-12-31T19:00:00-05:00", 1, NOW, NULL},
    {"2026-01-01T00:00:00.5Z", 1, NOW + 500, NULL},
    {"2026-01-01T00:00:00.123456789Z", 1, NOW + 123, NULL},
    {"2024-02-29T00:00:00Z", 1, 1709164800000LL, NULL}, /* leap day */
    {"2000-02-29T12:00:00Z", 1, 951825600000LL, NULL},  /* divisible by 400 */
    {"2016-12-31T23:59:60Z", 1, 1483228800000LL, NULL}, /* leap second: the next one */
    {"30m", 1, NOW - 1800000LL, NULL},
    {"24h", 1, NOW - 86400000LL, NULL},
    {"7d", 1, NOW - 7 * 86400000LL, NULL},
    {"2w", 1, NOW - 14 * 86400000LL, NULL},
    {"0s", 1, NOW, NULL},
    {"1500ms", 1, NOW - 1500, NULL},
    /* refused */
    {"", 0, 0, "empty"},
    {"-1h", 0, 0, "negative"},
    {"-5", 0, 0, "negative"},
    {"+5", 0, 0, "signed"},
    {"1.5h", 0, 0, "unknown unit"},
    {"5y", 0, 0, "unknown unit"},
    {"h", 0, 0, "expected"},
    {"yesterday", 0, 0, "expected"},
    {"99999999999999999999", 0, 0, "too large"},
    {"9223372036854775807d", 0, 0, "before 1970"},
    {"2023-02-29T00:00:00Z", 0, 0, "no day 29"}, /* not a leap year */
    {"1900-02-29T00:00:00Z", 0, 0, "no day 29"}, /* divisible by 100 */
    {"2026-13-01T00:00:00Z", 0, 0, "no month 13"},
    {"2026-00-10T00:00:00Z", 0, 0, "no month 00"},
    {"2026-04-31T00:00:00Z", 0, 0, "no day 31"},
    {"2026-01-01T24:00:00Z", 0, 0, "not a time of day"},
    {"2026-01-01T00:00:00", 0, 0, "must end with Z"},
    {"2026-01-01T00:00:00+0530", 0, 0, "must end with Z"},
    {"2026-01-01T00:00:00+24:00", 0, 0, "offset"},
    {"2026-01-01T00:00:00.Z", 0, 0, "followed by digits"},
    {"2026-01-01", 0, 0, "not an RFC 3339"},
    {"1969-12-31T23:59:59Z", 0, 0, "before 1970"},
    {"1970-01-01T00:00:00+00:01", 0, 0, "before 1970"},
};

Test(timeparse, table)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct tp_case *c = &cases[i];
        int64_t got = -42;
        char err[256] = "";
        int rc = time_parse(c->in, NOW, &got, err, sizeof err);
        if (c->ok) {
            cr_expect_eq(rc, 0, "'%s' refused: %s", c->in, err);
            cr_expect_eq(got, c->want, "'%s' gave %lld, not %lld", c->in, (long long)got,
                         (long long)c->want);
        } else {
            cr_expect_eq(rc, -1, "'%s' accepted as %lld", c->in, (long long)got);
            cr_expect(strstr(err, c->say) != NULL, "'%s': message '%s' lacks '%s'", c->in, err,
                      c->say);
            cr_expect_eq(got, -42, "'%s': out written on failure", c->in);
        }
    }
}

Test(timeparse, null_and_tiny_err_buffer)
{
    int64_t got;
    char err[8];
    cr_expect_eq(time_parse(NULL, NOW, &got, err, sizeof err), -1);
    cr_expect_eq(time_parse("bad", NOW, &got, NULL, 0), -1);
    cr_expect_eq(strlen(err) < sizeof err, 1);
}
