/*
 * timeparse.c - epoch milliseconds, RFC 3339 date-times and durations before now, into
 * milliseconds since the epoch (timeparse.h). Calendar arithmetic is done by hand (days
 * from the civil date) so the result depends on neither the locale nor the TZ variable.
 */
#include "util/timeparse.h"

#include <ctype.h>
#include <string.h>

#include "util/errors.h"

#define SAY                                                                                        \
    "expected milliseconds since the epoch, an RFC 3339 date-time "                                \
    "(2026-01-31T08:00:00Z, 2026-01-31T13:30:00+05:30) or a duration before now "                  \
    "(30m, 24h, 7d)"

/* n digits of s as a number; -1 when one of them is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_rfc3339(const char *s, int64_t *out, char *err, size_t errlen)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t len = strlen(s);
    if (len < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':') {
        err_set(err, errlen, "'%s' is not an RFC 3339 date-time YYYY-MM-DDThh:mm:ss(Z|+hh:mm)", s);
        return -1;
    }
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0) {
        err_set(err, errlen, "'%s': the date and time must be digits", s);
        return -1;
    }
    if (mo < 1 || mo > 12) {
        err_set(err, errlen, "'%s': there is no month %02d", s, mo);
        return -1;
    }
    int md = mdays[mo - 1] + (mo == 2 && leap(y));
    if (d < 1 || d > md) {
        err_set(err, errlen, "'%s': %04d-%02d has no day %02d", s, y, mo, d);
        return -1;
    }
    if (h > 23 || mi > 59 || sec > 60) {
        err_set(err, errlen, "'%s': the time %02d:%02d:%02d is not a time of day", s, h, mi, sec);
        return -1;
    }
    const char *p = s + 19;
    int ms = 0;
    if (*p == '.') {
        int n = 0;
        for (p++; isdigit((unsigned char)*p); p++, n++)
            if (n < 3)
                ms = ms * 10 + (*p - '0');
        if (n == 0) {
            err_set(err, errlen, "'%s': a '.' must be followed by digits", s);
            return -1;
        }
        for (; n < 3; n++)
            ms *= 10;
    }
    int off = 0; /* minutes east of UTC */
    if ((*p == 'Z' || *p == 'z') && p[1] == 0) {
        off = 0;
    } else if ((*p == '+' || *p == '-' || *p == ' ') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59) {
            err_set(err, errlen, "'%s': the offset %s is not +hh:mm", s, p);
            return -1;
        }
        off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    } else {
        err_set(err, errlen, "'%s': the time must end with Z or an offset +hh:mm / -hh:mm", s);
        return -1;
    }
    int64_t t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi - off) * 60 + sec;
    if (t < 0) {
        err_set(err, errlen, "'%s' is before 1970-01-01T00:00:00Z", s);
        return -1;
    }
    *out = t * 1000 + ms;
    return 0;
}

int time_parse(const char *s, int64_t now_ms, int64_t *out, char *err, size_t errlen)
{
    if (!s || !*s) {
        err_set(err, errlen, "an empty value: " SAY);
        return -1;
    }
    if (*s == '-' || *s == '+') {
        err_set(err, errlen, "'%s' is negative or signed: " SAY, s);
        return -1;
    }
    size_t nd = strspn(s, "0123456789");
    if (nd == 0) {
        err_set(err, errlen, "'%s': " SAY, s);
        return -1;
    }
    if (nd == 4 && s[4] == '-')
        return parse_rfc3339(s, out, err, errlen);
    /* a number, then nothing (epoch ms) or a unit (a duration) */
    int64_t v = 0;
    for (size_t i = 0; i < nd; i++) {
        if (v > (INT64_MAX - (s[i] - '0')) / 10) {
            err_set(err, errlen, "'%s' is too large", s);
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    const char *unit = s + nd;
    if (!*unit) {
        *out = v;
        return 0;
    }
    static const struct {
        const char *name;
        int64_t ms;
    } units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
                 {"h", 3600000}, {"d", 86400000}, {"w", 7 * 86400000LL}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].name) != 0)
            continue;
        if (v > now_ms / units[i].ms) {
            err_set(err, errlen, "'%s' reaches back before 1970", s);
            return -1;
        }
        *out = now_ms - v * units[i].ms;
        return 0;
    }
    err_set(err, errlen, "'%s': unknown unit '%s' (ms, s, m, h, d, w): " SAY, s, unit);
    return -1;
}
