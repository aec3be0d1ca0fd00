/*
 * test_cron.c - cron expressions and time zones (src/cron/cron.h, src/cron/tz.h): the parser
 * (every syntax element, every error naming its field, expressions that never fire), Vixie
 * cron's day rule, the macros, tz_load's refusals, and DST fixtures: the run instants of a
 * schedule across the 2026 transitions of America/New_York, Europe/Berlin and
 * Australia/Lord_Howe, Pacific/Apia's skipped 30 December 2011, UTC, and New York in 2090
 * (after the zone file's last transition: the footer's POSIX rule).
 *
 * The expected instants are written literally (RFC 3339 UTC), worked out by hand from
 * `zdump -v ZONE` (tzdata 2024+):
 *   America/New_York  2026-03-08T07:00:00Z  01:59:59 EST -> 03:00 EDT (gap 02:00-02:59)
 *                     2026-11-01T06:00:00Z  01:59:59 EDT -> 01:00 EST (fold 01:00-01:59)
 *                     2090-03-12T07:00:00Z, 2090-11-05T06:00:00Z (the same rule)
 *   Europe/Berlin     2026-03-29T01:00:00Z  01:59:59 CET -> 03:00 CEST (gap 02:00-02:59)
 *                     2026-10-25T01:00:00Z  02:59:59 CEST -> 02:00 CET (fold 02:00-02:59)
 *   Australia/Lord_Howe 2026-04-04T15:00:00Z 01:59:59 +11 -> 01:30 +1030 (fold 01:30-01:59)
 *                     2026-10-03T15:30:00Z  01:59:59 +1030 -> 02:30 +11 (gap 02:00-02:29)
 *   Pacific/Apia      2011-12-30T10:00:00Z  29 Dec 23:59:59 -10 -> 31 Dec 00:00 +14
 *                     (30 December 2011 does not exist there)
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cron/cron.h"
#include "cron/tz.h"

/* "2026-03-08T07:00:00Z" -> seconds since the epoch. */
static int64_t at(const char *s)
{
    int y, mo, d, h, mi, se;
    cr_assert_eq(sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &se), 6, "bad time %s", s);
    return tz_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
}

/* Seconds since the epoch -> "2026-03-08T07:00:00Z" in buf. */
static const char *iso(int64_t t, char buf[32])
{
    if (t < 0) {
        snprintf(buf, 32, "(none: %lld)", (long long)t);
        return buf;
    }
    int64_t days = t / 86400, sec = t % 86400, y;
    int m, d;
    tz_civil_from_days(days, &y, &m, &d);
    snprintf(buf, 32, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d, (int)(sec / 3600),
             (int)(sec % 3600 / 60), (int)(sec % 60));
    return buf;
}

static struct tz *zone(const char *name)
{
    char err[256] = "";
    struct tz *tz = tz_load(name, err, sizeof err);
    cr_assert_not_null(tz, "tz_load(%s): %s", name, err);
    return tz;
}

static struct cron parse(const char *expr)
{
    struct cron c;
    char err[256] = "";
    cr_assert_eq(cron_parse(expr, &c, err, sizeof err), 0, "cron_parse(\"%s\"): %s", expr, err);
    return c;
}

/* A schedule, a starting instant and its next runs, each strictly after the one before
 * (RFC 3339 UTC instants, up to 8). */
struct fixture {
    const char *expr, *from;
    const char *want[8];
};

/* Each fixture's runs in zone zname are exactly its want list. */
static void check(const char *zname, const struct fixture *f, size_t n)
{
    struct tz *tz = zone(zname);
    for (size_t k = 0; k < n; k++) {
        struct cron c = parse(f[k].expr);
        int64_t t = at(f[k].from);
        for (int i = 0; i < 8 && f[k].want[i]; i++) {
            t = cron_next(&c, tz, t);
            char got[32];
            cr_expect_str_eq(iso(t, got), f[k].want[i],
                             "'%s' in %s after %s, run %d: got %s, want %s", f[k].expr, zname,
                             f[k].from, i + 1, got, f[k].want[i]);
            if (t < 0)
                break;
        }
    }
    tz_free(tz);
}

/* cron_parse(expr) fails with a message containing each NULL-terminated fragment. */
static void refused(const char *expr, ...)
{
    struct cron c;
    char err[256] = "";
    cr_assert_eq(cron_parse(expr, &c, err, sizeof err), -1, "\"%s\" was accepted", expr);
    va_list ap;
    va_start(ap, expr);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        cr_expect(strstr(err, frag) != NULL, "\"%s\": the error \"%s\" lacks \"%s\"", expr, err,
                  frag);
    va_end(ap);
}

static uint64_t bits(const int *v, int n)
{
    uint64_t m = 0;
    for (int i = 0; i < n; i++)
        m |= 1ULL << v[i];
    return m;
}
#define BITS(...)                                                                                  \
    bits((const int[]){__VA_ARGS__}, (int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int)))

/* ---- parsing ----------------------------------------------------------------------------- */

Test(cron_parse, star_is_every_value_of_its_field)
{
    struct cron c = parse("* * * * *");
    cr_expect_eq(c.minutes, (1ULL << 60) - 1);
    cr_expect_eq(c.hours, (1u << 24) - 1);
    cr_expect_eq(c.dom, ((1u << 31) - 1) << 1); /* 1-31 */
    cr_expect_eq(c.months, ((1u << 12) - 1) << 1);
    cr_expect_eq(c.dow, 0x7f);
    cr_expect(c.dom_star && c.dow_star && c.hour_star);
}

Test(cron_parse, numbers_lists_ranges_and_steps)
{
    cr_expect_eq(parse("7 * * * *").minutes, BITS(7));
    cr_expect_eq(parse("1,2,30 * * * *").minutes, BITS(1, 2, 30));
    cr_expect_eq(parse("10-13 * * * *").minutes, BITS(10, 11, 12, 13));
    cr_expect_eq(parse("*/15 * * * *").minutes, BITS(0, 15, 30, 45));
    cr_expect_eq(parse("1-30/7 * * * *").minutes, BITS(1, 8, 15, 22, 29));
    cr_expect_eq(parse("5/15 * * * *").minutes, BITS(5, 20, 35, 50)); /* 5-59/15 */
    cr_expect_eq(parse("0-4,50-59/3 * * * *").minutes, BITS(0, 1, 2, 3, 4, 50, 53, 56, 59));
    cr_expect_eq(parse("0 */6 * * *").hours, BITS(0, 6, 12, 18));
    cr_expect_eq(parse("0 9-17/4 * * *").hours, BITS(9, 13, 17));
    cr_expect_eq(parse("0 0 1,15,31 * *").dom, BITS(1, 15, 31));
    cr_expect_eq(parse("0 0 */10 * *").dom, BITS(1, 11, 21, 31));
    cr_expect_eq(parse("0 0 * 2/3 *").months, BITS(2, 5, 8, 11));
    cr_expect_eq(parse("  0   0\t* *  *  ").minutes, BITS(0)); /* any blanks between */
}

Test(cron_parse, month_and_day_names_in_any_case)
{
    cr_expect_eq(parse("0 0 * JAN *").months, BITS(1));
    cr_expect_eq(parse("0 0 * jan-Mar *").months, BITS(1, 2, 3));
    cr_expect_eq(parse("0 0 * jun,DEC *").months, BITS(6, 12));
    cr_expect_eq(parse("0 0 * FEB-dec/5 *").months, BITS(2, 7, 12));
    cr_expect_eq(parse("0 0 * * MON-FRI").dow, BITS(1, 2, 3, 4, 5));
    cr_expect_eq(parse("0 0 * * sun").dow, BITS(0));
    cr_expect_eq(parse("0 0 * * Sat,sun").dow, BITS(0, 6));
    cr_expect_eq(parse("0 0 * * mon,3-4").dow, BITS(1, 3, 4));
}

Test(cron_parse, sunday_is_0_or_7)
{
    cr_expect_eq(parse("0 0 * * 0").dow, BITS(0));
    cr_expect_eq(parse("0 0 * * 7").dow, BITS(0));
    cr_expect_eq(parse("0 0 * * 5-7").dow, BITS(0, 5, 6));
    cr_expect_eq(parse("0 0 * * 0-7").dow, 0x7f);
    cr_expect_eq(parse("0 0 * * */2").dow, BITS(0, 2, 4, 6));
}

Test(cron_parse, which_fields_count_as_star)
{
    struct cron c = parse("0 */2 */3 * MON");
    cr_expect(!c.hour_star, "`*/2` in the hour field is not `*` (a fold runs once)");
    cr_expect(c.dom_star, "a day field starting with `*` is unrestricted (Vixie)");
    cr_expect(!c.dow_star);
    cr_expect(!parse("0 0-23 * * *").hour_star);
    cr_expect(parse("*/15 * * * *").hour_star);
}

Test(cron_parse, macros)
{
    static const struct {
        const char *macro, *expr;
    } m[] = {
        {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
        {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
        {"@annually", "0 0 1 1 *"}, {"@DAILY", "0 0 * * *"},   {" @hourly ", "0 * * * *"},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        struct cron a = parse(m[i].macro), b = parse(m[i].expr);
        cr_expect(!memcmp(&a, &b, sizeof a), "%s is not %s", m[i].macro, m[i].expr);
    }
    cr_expect(parse("@hourly").hour_star, "@hourly runs in both passes of a fold");
    refused("@reboot", "unknown macro", "@reboot", NULL);
    refused("@daily 5", "unknown macro", NULL);
    refused("@", "unknown macro", NULL);
}

Test(cron_parse, the_number_of_fields)
{
    refused("", "expected 5 fields", "got 0", NULL);
    refused("* * * *", "expected 5 fields", "got 4", NULL);
    refused("* * * * * *", "expected 5 fields", "got 6", NULL);
}

Test(cron_parse, each_error_names_its_field)
{
    refused("60 * * * *", "field 1 (minute): 60 is out of range 0-59", NULL);
    refused("0 24 * * *", "cron: field 2 (hour): 24 is out of range 0-23", NULL);
    refused("0 0 0 * *", "field 3 (day of month): 0 is out of range 1-31", NULL);
    refused("0 0 32 * *", "field 3 (day of month): 32 is out of range 1-31", NULL);
    refused("0 0 * 0 *", "field 4 (month): 0 is out of range 1-12", NULL);
    refused("0 0 * 13 *", "field 4 (month): 13 is out of range 1-12", NULL);
    refused("0 0 * * 8", "field 5 (day of week): 8 is out of range 0-7", NULL);
    refused("0 0 * * 99999999999", "field 5 (day of week)", "out of range", NULL);
    refused("x * * * *", "field 1 (minute): \"x\" is not a number", NULL);
    refused("0 noon * * *", "field 2 (hour): \"noon\" is not a number", NULL);
    refused("0 0 MON * *", "field 3 (day of month)", "not a number", NULL);
    refused("0 0 * FOO *", "field 4 (month): \"FOO\" is not a number or a name", NULL);
    refused("0 0 * JANUARY *", "field 4 (month)", "is not a number or a name", NULL);
    refused("0 0 * * MON-XYZ", "field 5 (day of week): \"XYZ\"", NULL);
    refused("5-1 * * * *", "field 1 (minute): the range 5-1 is backwards", NULL);
    refused("0 0 * DEC-JAN *", "field 4 (month): the range 12-1 is backwards", NULL);
    refused("*/0 * * * *", "field 1 (minute): the step", "is not 1-60", NULL);
    refused("0 */25 * * *", "field 2 (hour): the step", "is not 1-24", NULL);
    refused("0 0 */ * *", "field 3 (day of month): a step needs a number", NULL);
    refused("0 0 * * 1/x", "field 5 (day of week): the step", NULL);
    refused("1,,2 * * * *", "field 1 (minute): an empty item in the list", NULL);
    refused("0 1, * * *", "field 2 (hour): an empty item in the list", NULL);
    refused("1-2x * * * *", "field 1 (minute): unexpected \"x\"", NULL);
    refused("0 0 * * *x", "field 5 (day of week): unexpected \"x\"", NULL);
}

Test(cron_parse, an_expression_that_never_fires_is_refused)
{
    refused("0 0 30 2 *", "field 3 (day of month)", "never fires", NULL);
    refused("0 0 31 2 *", "never fires", NULL);
    refused("0 0 31 4,6,9,11 *", "never fires", NULL);
    refused("0 0 31 FEB,apr *", "never fires", NULL);
    refused("0 0 30,31 2 *", "never fires", NULL);
    /* what does fire: 29 February (leap years), 31 in a list with a long month, and a
     * restricted day of week (Vixie: either day field may match) */
    parse("0 0 29 2 *");
    parse("0 0 31 4,5 *");
    parse("0 0 30 2 MON");
    /* a day of week starting with `*` is unrestricted: both must match, so this never fires */
    refused("0 0 30 2 */2", "never fires", NULL);
}

/* ---- cron_next in UTC: fields, Vixie's day rule, speed -------------------------------------- */

Test(cron_next, strictly_after_and_on_whole_minutes)
{
    static const struct fixture f[] = {
        {"* * * * *", "2026-01-01T00:00:30Z", {"2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"}},
        {"* * * * *", "2026-01-01T00:01:00Z", {"2026-01-01T00:02:00Z"}},
        {"59 23 31 12 *", "2026-12-31T23:59:00Z", {"2027-12-31T23:59:00Z"}},
        {"@yearly", "2026-06-01T00:00:00Z", {"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"}},
        /* 4 January 2026 is a Sunday */
        {"@weekly", "2026-01-01T00:00:00Z", {"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"}},
        {"@monthly", "2026-01-15T00:00:00Z", {"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}},
        {"0 0 31 * *", "2026-01-31T00:00:00Z", {"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z"}},
        /* from a Friday */
        {"*/20 9-10 * * MON-FRI",
         "2026-01-02T10:30:00Z",
         {"2026-01-02T10:40:00Z", "2026-01-05T09:00:00Z", "2026-01-05T09:20:00Z"}},
    };
    check("UTC", f, sizeof f / sizeof f[0]);
}

Test(cron_next, leap_days)
{
    static const struct fixture f[] = {
        {"0 0 29 2 *", "2026-01-01T00:00:00Z", {"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
        /* 2100 is not a leap year */
        {"0 0 29 2 *", "2096-03-01T00:00:00Z", {"2104-02-29T00:00:00Z"}},
    };
    check("UTC", f, sizeof f / sizeof f[0]);
}

/* 1 February 2026 is a Sunday, 1 March 2026 too. */
Test(cron_next, vixie_day_rule_either_day_field_when_both_are_restricted)
{
    static const struct fixture f[] = {
        {"0 0 1 * MON",
         "2026-01-31T12:00:00Z",
         {"2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z",
          "2026-02-16T00:00:00Z", "2026-02-23T00:00:00Z", "2026-03-01T00:00:00Z",
          "2026-03-02T00:00:00Z"}},
        {"0 0 * * MON", "2026-01-31T12:00:00Z", {"2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"}},
        {"0 0 1 * *", "2026-01-31T12:00:00Z", {"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}},
        /* a day field starting with `*` is unrestricted: both must match (odd days that are
         * Mondays) */
        {"0 0 */2 * MON",
         "2026-02-01T00:00:00Z",
         {"2026-02-09T00:00:00Z", "2026-02-23T00:00:00Z", "2026-03-09T00:00:00Z"}},
    };
    check("UTC", f, sizeof f / sizeof f[0]);
}

static double seconds_since(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/* Skips by field: generous bounds (a loaded machine, ASan), far above what it needs. */
Test(cron_next, fast)
{
    struct tz *ny = zone("America/New_York");
    struct cron leap = parse("0 0 29 2 *"), every = parse("* * * * *");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t from = at("1990-01-01T00:00:00Z");
    for (int i = 0; i < 1000; i++)
        cr_assert_gt(cron_next(&leap, ny, from + (int64_t)i * 86400 * 37), 0);
    double leap_s = seconds_since(&t0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t t = at("2026-03-07T00:00:00Z");
    for (int i = 0; i < 1000; i++) {
        int64_t n = cron_next(&every, ny, t);
        cr_assert_eq(n, t + 60);
        t = n;
    }
    double every_s = seconds_since(&t0);
    cr_expect_lt(leap_s, 1.0, "1,000 calls for `0 0 29 2 *` took %.3f s", leap_s);
    cr_expect_lt(every_s, 1.0, "1,000 calls for `* * * * *` took %.3f s", every_s);
    tz_free(ny);
}

/* ---- DST fixtures ------------------------------------------------------------------------ */

/* Gap 02:00-02:59 local on 8 March 2026 (07:00Z is 03:00 EDT). */
Test(dst, new_york_spring_2026)
{
    const char *z = "America/New_York";
    static const struct fixture f[] = {
        {"30 2 * * *", "2026-03-07T12:00:00Z", {"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
        {"0 2 * * *", "2026-03-07T12:00:00Z", {"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"}},
        /* 02:15 and 02:45 coalesce into one run at the end of the gap */
        {"15,45 2 * * *", "2026-03-07T12:00:00Z", {"2026-03-08T07:00:00Z", "2026-03-09T06:15:00Z"}},
        {"0 1 * * *", "2026-03-07T12:00:00Z", {"2026-03-08T06:00:00Z", "2026-03-09T05:00:00Z"}},
        {"30 1 * * *", "2026-03-07T12:00:00Z", {"2026-03-08T06:30:00Z", "2026-03-09T05:30:00Z"}},
        /* 02:00 and 02:30 do not exist: one run at 07:00Z, which is also 03:00 EDT itself */
        {"*/30 * * * *",
         "2026-03-08T06:00:00Z",
         {"2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z",
          "2026-03-08T08:00:00Z"}},
        {"0 * * * *",
         "2026-03-08T05:00:00Z",
         {"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"}},
        {"* * * * *",
         "2026-03-08T06:58:00Z",
         {"2026-03-08T06:59:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:01:00Z"}},
    };
    check(z, f, sizeof f / sizeof f[0]);
}

/* Fold 01:00-01:59 local on 1 November 2026: 05:00-05:59Z EDT, then 06:00-06:59Z EST. */
Test(dst, new_york_fall_2026)
{
    const char *z = "America/New_York";
    static const struct fixture f[] = {
        /* hour `*`: both passes */
        {"0 * * * *",
         "2026-11-01T04:00:00Z",
         {"2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z",
          "2026-11-01T08:00:00Z"}},
        {"*/30 * * * *",
         "2026-11-01T04:45:00Z",
         {"2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z",
          "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"}},
        {"@hourly", "2026-11-01T05:30:00Z", {"2026-11-01T06:00:00Z"}},
        /* a fixed hour: the first occurrence only */
        {"30 1 * * *", "2026-10-31T12:00:00Z", {"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
        {"0 1 * * *", "2026-10-31T12:00:00Z", {"2026-11-01T05:00:00Z", "2026-11-02T06:00:00Z"}},
        {"30 1 * * *", "2026-11-01T05:45:00Z", {"2026-11-02T06:30:00Z"}},
        {"0 1 * * *", "2026-11-01T05:00:00Z", {"2026-11-02T06:00:00Z"}},
        {"30 2 * * *", "2026-10-31T12:00:00Z", {"2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"}},
    };
    check(z, f, sizeof f / sizeof f[0]);
}

/* Gap 02:00-02:59 on 29 March 2026 (01:00Z is 03:00 CEST); fold 02:00-02:59 on 25 October
 * 2026 (00:00-00:59Z CEST, then 01:00-01:59Z CET). */
Test(dst, berlin_2026)
{
    const char *z = "Europe/Berlin";
    static const struct fixture f[] = {
        {"30 2 * * *",
         "2026-03-28T00:00:00Z",
         {"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
        {"0 1 * * *", "2026-03-28T12:00:00Z", {"2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z"}},
        {"30 1 * * *", "2026-03-28T12:00:00Z", {"2026-03-29T00:30:00Z", "2026-03-29T23:30:00Z"}},
        {"0 * * * *",
         "2026-03-28T23:30:00Z",
         {"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
        {"*/30 * * * *",
         "2026-03-29T00:00:00Z",
         {"2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"}},
        {"30 2 * * *", "2026-10-24T12:00:00Z", {"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
        {"0 2 * * *", "2026-10-24T12:00:00Z", {"2026-10-25T00:00:00Z", "2026-10-26T01:00:00Z"}},
        {"0 1 * * *", "2026-10-24T12:00:00Z", {"2026-10-24T23:00:00Z", "2026-10-26T00:00:00Z"}},
        {"30 1 * * *", "2026-10-24T12:00:00Z", {"2026-10-24T23:30:00Z", "2026-10-26T00:30:00Z"}},
        {"0 * * * *",
         "2026-10-24T23:30:00Z",
         {"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"}},
        {"*/30 * * * *",
         "2026-10-24T23:45:00Z",
         {"2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z",
          "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z"}},
    };
    check(z, f, sizeof f / sizeof f[0]);
}

/* Half-hour shifts. Fold 01:30-01:59 on 5 April 2026 (14:30-14:59Z at +11, then
 * 15:00-15:29Z at +10:30); gap 02:00-02:29 on 4 October 2026 (15:30Z is 02:30 +11). */
Test(dst, lord_howe_2026)
{
    const char *z = "Australia/Lord_Howe";
    static const struct fixture f[] = {
        {"30 1 * * *", "2026-04-04T00:00:00Z", {"2026-04-04T14:30:00Z", "2026-04-05T15:00:00Z"}},
        {"45 1 * * *", "2026-04-04T00:00:00Z", {"2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"}},
        {"0 1 * * *", "2026-04-04T00:00:00Z", {"2026-04-04T14:00:00Z", "2026-04-05T14:30:00Z"}},
        {"0 2 * * *",
         "2026-04-03T12:00:00Z",
         {"2026-04-03T15:00:00Z", "2026-04-04T15:30:00Z", "2026-04-05T15:30:00Z"}},
        {"*/30 * * * *",
         "2026-04-04T13:45:00Z",
         {"2026-04-04T14:00:00Z", "2026-04-04T14:30:00Z", "2026-04-04T15:00:00Z",
          "2026-04-04T15:30:00Z", "2026-04-04T16:00:00Z"}},
        {"0 2 * * *", "2026-10-03T00:00:00Z", {"2026-10-03T15:30:00Z", "2026-10-04T15:00:00Z"}},
        {"15 2 * * *", "2026-10-03T00:00:00Z", {"2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"}},
        {"30 2 * * *", "2026-10-03T00:00:00Z", {"2026-10-03T15:30:00Z", "2026-10-04T15:30:00Z"}},
        {"*/15 * * * *",
         "2026-10-03T15:00:00Z",
         {"2026-10-03T15:15:00Z", "2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z"}},
    };
    check(z, f, sizeof f / sizeof f[0]);
}

/*
 * Samoa moved across the date line: 29 December 2011 23:59:59 -10:00 was followed by
 * 31 December 00:00 +14:00 (2011-12-30T10:00:00Z). All of 30 December is a gap, so by the
 * rule in cron.h every 30 December time of a schedule runs once, at the first instant after
 * the gap: 31 December 00:00 local, 2011-12-30T10:00:00Z. A daily `0 12 * * *` thus runs at
 * 29 Dec 12:00 -10:00, at 31 Dec 00:00 +14:00 (for the missing 30 Dec 12:00), then at
 * 31 Dec 12:00 +14:00.
 */
Test(dst, apia_december_2011)
{
    const char *z = "Pacific/Apia";
    static const struct fixture f[] = {
        {"0 12 * * *",
         "2011-12-29T00:00:00Z",
         {"2011-12-29T22:00:00Z", "2011-12-30T10:00:00Z", "2011-12-30T22:00:00Z",
          "2011-12-31T22:00:00Z"}},
        /* 30 December's midnight and 31 December's are the same instant: one run */
        {"0 0 * * *",
         "2011-12-29T00:00:00Z",
         {"2011-12-29T10:00:00Z", "2011-12-30T10:00:00Z", "2011-12-31T10:00:00Z"}},
        /* 30 December 2012 exists (+14:00) */
        {"0 12 30 12 *", "2011-01-01T00:00:00Z", {"2011-12-30T10:00:00Z", "2012-12-29T22:00:00Z"}},
        {"0 * * * *",
         "2011-12-30T08:00:00Z",
         {"2011-12-30T09:00:00Z", "2011-12-30T10:00:00Z", "2011-12-30T11:00:00Z"}},
    };
    check(z, f, sizeof f / sizeof f[0]);
}

/* The zone file's transitions end in 2037; later instants follow its footer
 * (EST5EDT,M3.2.0,M11.1.0): 12 March and 5 November 2090. */
Test(dst, new_york_2090_by_the_footer_rule)
{
    const char *z = "America/New_York";
    static const struct fixture f[] = {
        {"30 2 * * *", "2090-03-11T12:00:00Z", {"2090-03-12T07:00:00Z", "2090-03-13T06:30:00Z"}},
        {"0 * * * *",
         "2090-11-05T04:00:00Z",
         {"2090-11-05T05:00:00Z", "2090-11-05T06:00:00Z", "2090-11-05T07:00:00Z"}},
        {"30 1 * * *", "2090-11-04T12:00:00Z", {"2090-11-05T05:30:00Z", "2090-11-06T06:30:00Z"}},
    };
    check(z, f, sizeof f / sizeof f[0]);
    struct tz *tz = zone(z);
    cr_expect_eq(tz_offset_at(tz, at("2090-01-15T12:00:00Z")), -5 * 3600);
    cr_expect_eq(tz_offset_at(tz, at("2090-07-15T12:00:00Z")), -4 * 3600);
    cr_expect_eq(tz_offset_at(tz, at("2090-03-12T06:59:59Z")), -5 * 3600);
    cr_expect_eq(tz_offset_at(tz, at("2090-03-12T07:00:00Z")), -4 * 3600);
    tz_free(tz);
}

Test(dst, utc_has_no_transitions)
{
    static const struct fixture f[] = {
        {"30 2 * * *", "2026-03-07T12:00:00Z", {"2026-03-08T02:30:00Z", "2026-03-09T02:30:00Z"}},
        {"30 1 * * *", "2026-10-31T12:00:00Z", {"2026-11-01T01:30:00Z", "2026-11-02T01:30:00Z"}},
    };
    check("UTC", f, sizeof f / sizeof f[0]);
}

/* ---- tz ---------------------------------------------------------------------------------- */

Test(tz, local_to_utc_gaps_and_folds)
{
    struct tz *ny = zone("America/New_York");
    int64_t out[2] = {0, 0}, gap = 0;
    cr_expect_eq(tz_local_to_utc(ny, at("2026-03-08T02:30:00Z"), out, &gap), 0);
    cr_expect_eq(gap, at("2026-03-08T07:00:00Z"));
    cr_expect_eq(tz_local_to_utc(ny, at("2026-11-01T01:30:00Z"), out, &gap), 2);
    cr_expect_eq(out[0], at("2026-11-01T05:30:00Z"));
    cr_expect_eq(out[1], at("2026-11-01T06:30:00Z"));
    cr_expect_eq(tz_local_to_utc(ny, at("2026-07-01T12:00:00Z"), out, &gap), 1);
    cr_expect_eq(out[0], at("2026-07-01T16:00:00Z"));
    tz_free(ny);
    struct tz *apia = zone("Pacific/Apia");
    cr_expect_eq(tz_local_to_utc(apia, at("2011-12-30T12:00:00Z"), out, &gap), 0);
    cr_expect_eq(gap, at("2011-12-30T10:00:00Z"));
    cr_expect_eq(tz_offset_at(apia, at("2011-12-30T09:59:59Z")), -10 * 3600);
    cr_expect_eq(tz_offset_at(apia, at("2011-12-30T10:00:00Z")), 14 * 3600);
    tz_free(apia);
    struct tz *lh = zone("Australia/Lord_Howe");
    cr_expect_eq(tz_offset_at(lh, at("2026-04-04T15:00:00Z")), 10 * 3600 + 1800);
    cr_expect_eq(tz_offset_at(lh, at("2026-04-04T14:59:59Z")), 11 * 3600);
    cr_expect_str_eq(tz_name(lh), "Australia/Lord_Howe");
    tz_free(lh);
}

static void load_fails(const char *name, const char *frag)
{
    char err[256] = "";
    struct tz *tz = tz_load(name, err, sizeof err);
    cr_expect_null(tz, "tz_load(\"%s\") succeeded", name);
    if (tz)
        tz_free(tz);
    cr_expect(strstr(err, frag) != NULL, "tz_load(\"%s\"): \"%s\" lacks \"%s\"", name, err, frag);
}

Test(tz, load_refusals)
{
    load_fails("Nowhere/City", "unknown time zone \"Nowhere/City\"");
    load_fails("../etc/passwd", "may not be absolute nor contain \"..\"");
    load_fails("America/../../etc/passwd", "contain \"..\"");
    load_fails("/etc/passwd", "may not be absolute");
    load_fails("", "empty time zone name");
}

Test(tz, a_file_that_is_not_tzif_is_refused_and_utc_needs_no_files)
{
    char dir[] = "/tmp/test_cron_tzXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char sub[300], path[400];
    snprintf(sub, sizeof sub, "%s/Fake", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/Zone", sub);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("this is not a TZif file, just some text that is long enough to be read\n", f);
    fclose(f);
    setenv("TZDIR", dir, 1);
    load_fails("Fake/Zone", "is not a valid TZif file");
    load_fails("Europe/Berlin", "unknown time zone"); /* TZDIR is where zones come from */
    char err[256] = "";
    struct tz *utc = tz_load("UTC", err, sizeof err);
    cr_expect_not_null(utc, "UTC without zone files: %s", err);
    if (utc) {
        cr_expect_eq(tz_offset_at(utc, at("2026-07-01T00:00:00Z")), 0);
        tz_free(utc);
    }
    unsetenv("TZDIR");
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}
