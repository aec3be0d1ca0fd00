/*
 * cron.c - cron expressions: the parser (fields into bitmasks, macros, the never-fires
 * check) and cron_next (skip by field through local wall times, then the DST rule).
 */
#include "cron/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct field {
    const char *name;
    int lo, hi;               /* accepted values */
    int star_hi;              /* what `*` and `N/STEP` run to */
    const char *const *names; /* hi - lo + 1 names from lo, or NULL */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static const struct field fields[5] = {
    {"minute", 0, 59, 59, NULL},         {"hour", 0, 23, 23, NULL},
    {"day of month", 1, 31, 31, NULL},   {"month", 1, 12, 12, month_names},
    {"day of week", 0, 7, 6, day_names},
};

static const struct {
    const char *name, *expr;
} macros[] = {
    {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

/* One value of field f at *p (a number or a name), advancing *p. */
static int parse_value(const char **p, const char *end, int fi, int *out, char *err, size_t errlen)
{
    const struct field *f = &fields[fi];
    const char *s = *p;
    if (s < end && isdigit((unsigned char)*s)) {
        long v = 0;
        while (s < end && isdigit((unsigned char)*s)) {
            v = v * 10 + (*s++ - '0');
            if (v > 1000)
                v = 1000;
        }
        if (v < f->lo || v > f->hi) {
            snprintf(err, errlen, "cron: field %d (%s): %ld is out of range %d-%d", fi + 1, f->name,
                     v, f->lo, f->hi);
            return -1;
        }
        *out = (int)v;
        *p = s;
        return 0;
    }
    if (f->names && end - s >= 3) {
        int count = fi == 3 ? 12 : 7;
        for (int i = 0; i < count; i++)
            if (strncasecmp(s, f->names[i], 3) == 0 &&
                (end - s == 3 || !isalpha((unsigned char)s[3]))) {
                *out = f->lo + i;
                *p = s + 3;
                return 0;
            }
    }
    const char *e = s;
    while (e < end && *e != '-' && *e != '/')
        e++;
    snprintf(err, errlen, "cron: field %d (%s): \"%.*s\" is not a %s", fi + 1, f->name,
             (int)(e - s), s, f->names ? "number or a name" : "number");
    return -1;
}

static int parse_field(const char *s, const char *end, int fi, uint64_t *mask, char *err,
                       size_t errlen)
{
    const struct field *f = &fields[fi];
    *mask = 0;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *ie = comma ? comma : end;
        if (ie == s) {
            snprintf(err, errlen, "cron: field %d (%s): an empty item in the list", fi + 1,
                     f->name);
            return -1;
        }
        int a, b, step = 1;
        const char *p = s;
        bool single = false;
        if (*p == '*') {
            a = f->lo;
            b = f->star_hi;
            p++;
        } else {
            if (parse_value(&p, ie, fi, &a, err, errlen) < 0)
                return -1;
            b = a;
            single = true;
            if (p < ie && *p == '-') {
                p++;
                if (parse_value(&p, ie, fi, &b, err, errlen) < 0)
                    return -1;
                single = false;
                if (b < a) {
                    snprintf(err, errlen, "cron: field %d (%s): the range %d-%d is backwards",
                             fi + 1, f->name, a, b);
                    return -1;
                }
            }
        }
        if (p < ie && *p == '/') {
            p++;
            long v = 0;
            if (p == ie) {
                snprintf(err, errlen, "cron: field %d (%s): a step needs a number", fi + 1,
                         f->name);
                return -1;
            }
            while (p < ie && isdigit((unsigned char)*p)) {
                v = v * 10 + (*p++ - '0');
                if (v > 1000)
                    v = 1000;
            }
            if (p != ie || v < 1 || v > f->hi - f->lo + 1) {
                snprintf(err, errlen, "cron: field %d (%s): the step \"%.*s\" is not 1-%d", fi + 1,
                         f->name, (int)(ie - s), s, f->hi - f->lo + 1);
                return -1;
            }
            step = (int)v;
            if (single)
                b = f->star_hi;
        }
        if (p != ie) {
            snprintf(err, errlen, "cron: field %d (%s): unexpected \"%.*s\"", fi + 1, f->name,
                     (int)(ie - p), p);
            return -1;
        }
        for (int v = a; v <= b; v += step)
            *mask |= 1ULL << (fi == 4 && v == 7 ? 0 : v);
        if (!comma)
            break;
        s = comma + 1;
    }
    return 0;
}

static int month_len(int m)
{
    static const int md[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return md[m - 1];
}

int cron_parse(const char *expr, struct cron *out, char *err, size_t errlen)
{
    while (isspace((unsigned char)*expr))
        expr++;
    if (*expr == '@') {
        size_t n = strcspn(expr, " \t\r\n");
        const char *rest = expr + n;
        while (isspace((unsigned char)*rest))
            rest++;
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
            if (*rest == '\0' && strlen(macros[i].name) == n &&
                strncasecmp(expr, macros[i].name, n) == 0)
                return cron_parse(macros[i].expr, out, err, errlen);
        snprintf(err, errlen,
                 "cron: unknown macro \"%.*s\" (@hourly @daily @midnight @weekly @monthly "
                 "@yearly @annually)",
                 (int)n, expr);
        return -1;
    }
    const char *start[6], *end[6];
    int n = 0;
    const char *s = expr;
    while (*s) {
        while (isspace((unsigned char)*s))
            s++;
        if (!*s)
            break;
        const char *b = s;
        while (*s && !isspace((unsigned char)*s))
            s++;
        if (n < 6) {
            start[n] = b;
            end[n] = s;
        }
        n++;
    }
    if (n != 5) {
        snprintf(err, errlen,
                 "cron: expected 5 fields (minute hour day-of-month month day-of-week) or a "
                 "macro, got %d",
                 n);
        return -1;
    }
    uint64_t m[5];
    for (int i = 0; i < 5; i++)
        if (parse_field(start[i], end[i], i, &m[i], err, errlen) < 0)
            return -1;
    struct cron c = {
        .minutes = m[0],
        .hours = (uint32_t)m[1],
        .dom = (uint32_t)m[2],
        .months = (uint16_t)m[3],
        .dow = (uint8_t)m[4],
        .dom_star = start[2][0] == '*',
        .dow_star = start[4][0] == '*',
        .hour_star = end[1] - start[1] == 1 && start[1][0] == '*',
    };
    if (!c.dom_star && c.dow_star) {
        bool fires = false;
        for (int mo = 1; mo <= 12 && !fires; mo++)
            if (c.months & (1u << mo))
                for (int d = 1; d <= month_len(mo) && !fires; d++)
                    fires = (c.dom >> d) & 1;
        if (!fires) {
            snprintf(err, errlen,
                     "cron: field 3 (day of month): the expression never fires (no month "
                     "allowed has a day allowed)");
            return -1;
        }
    }
    *out = c;
    return 0;
}

static int64_t fdiv(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && ((a < 0) != (b < 0)));
}

static bool day_ok(const struct cron *c, int64_t days, int d)
{
    int wd = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
    bool dom = (c->dom >> d) & 1, dow = (c->dow >> wd) & 1;
    if (!c->dom_star && !c->dow_star)
        return dom || dow;
    return dom && dow;
}

/* The first matching local wall time (seconds as if UTC, a whole minute) >= w, or -1. */
static int64_t next_match(const struct cron *c, int64_t w)
{
    int64_t days = fdiv(w, 86400);
    int64_t sec = w - days * 86400;
    int hh = (int)(sec / 3600), mm = (int)((sec % 3600 + 59) / 60);
    int64_t y0, y;
    int m, d;
    tz_civil_from_days(days, &y0, &m, &d);
    for (;;) {
        tz_civil_from_days(days, &y, &m, &d);
        if (y > y0 + 400)
            return -1;
        if (!((c->months >> m) & 1)) {
            if (++m > 12) {
                m = 1;
                y++;
            }
            days = tz_days_from_civil(y, m, 1);
            hh = mm = 0;
            continue;
        }
        if (!day_ok(c, days, d)) {
            days++;
            hh = mm = 0;
            continue;
        }
        int h = hh;
        while (h < 24 && !((c->hours >> h) & 1))
            h++;
        if (h == 24) {
            days++;
            hh = mm = 0;
            continue;
        }
        if (h != hh)
            mm = 0;
        hh = h;
        int mi = mm;
        while (mi < 60 && !((c->minutes >> mi) & 1))
            mi++;
        if (mi == 60) {
            hh++;
            mm = 0;
            continue; /* hh 24 finds no hour: the next day */
        }
        return days * 86400 + hh * 3600 + mi * 60;
    }
}

static int max_near(const struct tz *tz, int64_t t)
{
    int a = tz_offset_at(tz, t - 36 * 3600), b = tz_offset_at(tz, t - 18 * 3600),
        e = tz_offset_at(tz, t);
    int mx = a > b ? a : b;
    return mx > e ? mx : e;
}

int64_t cron_next(const struct cron *c, const struct tz *tz, int64_t after)
{
    int lo = tz_offset_at(tz, after);
    for (int64_t dt = -36 * 3600; dt <= 36 * 3600; dt += 18 * 3600) {
        int o = tz_offset_at(tz, after + dt);
        if (o < lo)
            lo = o;
    }
    int64_t w = after + lo, best = INT64_MAX;
    int bound = 0;
    for (;;) {
        w = next_match(c, w);
        if (w < 0)
            break;
        if (best != INT64_MAX && w - bound >= best)
            break;
        int64_t t[2], gap = 0, cand = INT64_MAX;
        int n = tz_local_to_utc(tz, w, t, &gap);
        if (n == 0 && gap > after)
            cand = gap;
        else if (n >= 1 && t[0] > after)
            cand = t[0];
        else if (n == 2 && c->hour_star && t[1] > after)
            cand = t[1];
        if (cand < best) {
            best = cand;
            bound = max_near(tz, best);
        }
        w += 60;
    }
    return best == INT64_MAX ? -1 : best;
}
