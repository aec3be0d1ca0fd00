/*
 * tz.c - TZif reader (RFC 8536) and the POSIX TZ footer rule; offsets at an instant and
 * local-to-UTC conversion (tz.h).
 */
#include "cron/tz.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

/* A POSIX TZ rule date: 'J' (Jn, 1-365, no Feb 29), 'N' (n, 0-365) or 'M' (Mm.w.d). */
struct rule_date {
    char kind;
    int n, m, w, d;
    int time; /* seconds after local midnight, may be negative or past 24h */
};

struct tz {
    char name[256];
    int64_t *trans; /* ntrans transition instants, ascending */
    uint8_t *idx;   /* type in force from each transition */
    int32_t *utoff; /* ntypes offsets, seconds east */
    size_t ntrans, ntypes;
    bool has_footer; /* the POSIX rule below applies after the last transition */
    int std_off, dst_off;
    bool has_dst;
    struct rule_date start, end;
};

int64_t tz_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (m + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && ((a < 0) != (b < 0)));
}

/* ---- the POSIX TZ string (RFC 8536 section 3.3, POSIX.1 8.3) ---- */

static bool parse_name(const char **p)
{
    const char *s = *p;
    if (*s == '<') {
        s++;
        while (*s && *s != '>')
            s++;
        if (*s != '>')
            return false;
        *p = s + 1;
        return true;
    }
    const char *b = s;
    while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
        s++;
    if (s - b < 3)
        return false;
    *p = s;
    return true;
}

/* [+-]hh[:mm[:ss]] into seconds (sign as written); hours up to max_h. */
static bool parse_hms(const char **p, int max_h, int *out)
{
    const char *s = *p;
    int sign = 1;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (*s < '0' || *s > '9')
        return false;
    int h = 0, mi = 0, se = 0;
    while (*s >= '0' && *s <= '9') {
        h = h * 10 + (*s++ - '0');
        if (h > max_h)
            return false;
    }
    if (*s == ':') {
        s++;
        if (s[0] < '0' || s[0] > '5' || s[1] < '0' || s[1] > '9')
            return false;
        mi = (s[0] - '0') * 10 + (s[1] - '0');
        s += 2;
        if (*s == ':') {
            s++;
            if (s[0] < '0' || s[0] > '5' || s[1] < '0' || s[1] > '9')
                return false;
            se = (s[0] - '0') * 10 + (s[1] - '0');
            s += 2;
        }
    }
    *out = sign * (h * 3600 + mi * 60 + se);
    *p = s;
    return true;
}

static bool parse_int(const char **p, int lo, int hi, int *out)
{
    const char *s = *p;
    int v = 0;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
        if (v > hi)
            return false;
    }
    if (v < lo)
        return false;
    *out = v;
    *p = s;
    return true;
}

static bool parse_rule_date(const char **p, struct rule_date *r)
{
    const char *s = *p;
    if (*s == 'J') {
        s++;
        r->kind = 'J';
        if (!parse_int(&s, 1, 365, &r->n))
            return false;
    } else if (*s == 'M') {
        s++;
        r->kind = 'M';
        if (!parse_int(&s, 1, 12, &r->m) || *s++ != '.' || !parse_int(&s, 1, 5, &r->w) ||
            *s++ != '.' || !parse_int(&s, 0, 6, &r->d))
            return false;
    } else {
        r->kind = 'N';
        if (!parse_int(&s, 0, 365, &r->n))
            return false;
    }
    r->time = 7200;
    if (*s == '/') {
        s++;
        if (!parse_hms(&s, 167, &r->time))
            return false;
    }
    *p = s;
    return true;
}

static bool parse_posix(struct tz *tz, const char *s)
{
    int off;
    if (!parse_name(&s) || !parse_hms(&s, 24, &off))
        return false;
    tz->std_off = -off;
    tz->has_dst = false;
    if (*s == '\0')
        return true;
    if (!parse_name(&s))
        return false;
    tz->has_dst = true;
    tz->dst_off = tz->std_off + 3600;
    if (*s && *s != ',') {
        if (!parse_hms(&s, 24, &off))
            return false;
        tz->dst_off = -off;
    }
    if (*s == '\0') { /* no rule: POSIX leaves it to the implementation; the US rule */
        tz->start = (struct rule_date){'M', 0, 3, 2, 0, 7200};
        tz->end = (struct rule_date){'M', 0, 11, 1, 0, 7200};
        return true;
    }
    if (*s++ != ',' || !parse_rule_date(&s, &tz->start) || *s++ != ',' ||
        !parse_rule_date(&s, &tz->end))
        return false;
    return *s == '\0';
}

/* The local instant (seconds, as if UTC) a rule date names in year y. */
static int64_t rule_local(const struct rule_date *r, int64_t y)
{
    int64_t jan1 = tz_days_from_civil(y, 1, 1);
    int64_t day;
    if (r->kind == 'J')
        day = jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
    else if (r->kind == 'N')
        day = jan1 + r->n;
    else {
        int64_t first = tz_days_from_civil(y, r->m, 1);
        int wd = (int)((first % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
        int dom = 1 + (r->d - wd + 7) % 7 + 7 * (r->w - 1);
        while (dom > month_days(y, r->m))
            dom -= 7;
        day = first + dom - 1;
    }
    return day * 86400 + r->time;
}

static int footer_offset(const struct tz *tz, int64_t t)
{
    if (!tz->has_dst)
        return tz->std_off;
    int64_t y;
    int m, d;
    tz_civil_from_days(floor_div(t + tz->std_off, 86400), &y, &m, &d);
    int64_t s = rule_local(&tz->start, y) - tz->std_off;
    int64_t e = rule_local(&tz->end, y) - tz->dst_off;
    bool dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
    return dst ? tz->dst_off : tz->std_off;
}

/* ---- TZif ---- */

static int64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    if (n == 4)
        return (int32_t)(uint32_t)v;
    return (int64_t)v;
}

struct hdr {
    char version;
    size_t isut, isstd, leap, time, type, chars;
};

static bool read_hdr(const unsigned char *p, size_t left, struct hdr *h)
{
    if (left < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    h->version = (char)p[4];
    size_t *f[6] = {&h->isut, &h->isstd, &h->leap, &h->time, &h->type, &h->chars};
    for (int i = 0; i < 6; i++)
        *f[i] = (size_t)(uint32_t)be(p + 20 + 4 * i, 4);
    return h->type >= 1 && h->type <= 256 && h->time <= 100000 && h->chars <= 100000 &&
           h->leap <= 100000 && (h->isut == 0 || h->isut == h->type) &&
           (h->isstd == 0 || h->isstd == h->type);
}

static size_t block_len(const struct hdr *h, int w)
{
    return h->time * (size_t)w + h->time + h->type * 6 + h->chars + h->leap * (size_t)(w + 4) +
           h->isstd + h->isut;
}

static bool parse_tzif(struct tz *tz, const unsigned char *buf, size_t len)
{
    struct hdr h;
    if (!read_hdr(buf, len, &h))
        return false;
    size_t pos = 44;
    int w = 4;
    if (h.version >= '2') {
        size_t skip = block_len(&h, 4);
        if (len - pos < skip)
            return false;
        pos += skip;
        if (!read_hdr(buf + pos, len - pos, &h))
            return false;
        pos += 44;
        w = 8;
    }
    size_t need = block_len(&h, w);
    if (len - pos < need)
        return false;
    const unsigned char *p = buf + pos;
    tz->ntrans = h.time;
    tz->ntypes = h.type;
    tz->trans = sl_calloc(h.time ? h.time : 1, sizeof *tz->trans);
    tz->idx = sl_calloc(h.time ? h.time : 1, 1);
    tz->utoff = sl_calloc(h.type, sizeof *tz->utoff);
    if (!tz->trans || !tz->idx || !tz->utoff)
        return false;
    for (size_t i = 0; i < h.time; i++) {
        tz->trans[i] = be(p + i * (size_t)w, w);
        if (i > 0 && tz->trans[i] <= tz->trans[i - 1])
            return false;
    }
    p += h.time * (size_t)w;
    for (size_t i = 0; i < h.time; i++) {
        tz->idx[i] = p[i];
        if (p[i] >= h.type)
            return false;
    }
    p += h.time;
    for (size_t i = 0; i < h.type; i++) {
        int64_t off = be(p + 6 * i, 4);
        if (off < -89999 || off > 93599)
            return false;
        tz->utoff[i] = (int32_t)off;
    }
    pos += need;
    tz->has_footer = false;
    if (w == 8 && pos < len && buf[pos] == '\n') {
        const unsigned char *nl = memchr(buf + pos + 1, '\n', len - pos - 1);
        if (!nl)
            return false;
        size_t flen = (size_t)(nl - (buf + pos + 1));
        if (flen > 0 && flen < 256) {
            char footer[256];
            memcpy(footer, buf + pos + 1, flen);
            footer[flen] = '\0';
            if (!parse_posix(tz, footer))
                return false;
            tz->has_footer = true;
        }
    }
    return true;
}

void tz_free(struct tz *tz)
{
    if (!tz)
        return;
    free(tz->trans);
    free(tz->idx);
    free(tz->utoff);
    free(tz);
}

struct tz *tz_load(const char *name, char *err, size_t errlen)
{
    if (!name || !*name) {
        snprintf(err, errlen, "tz: empty time zone name");
        return NULL;
    }
    if (strlen(name) >= sizeof((struct tz *)0)->name) {
        snprintf(err, errlen, "tz: time zone name too long");
        return NULL;
    }
    if (name[0] == '/' || strstr(name, "..")) {
        snprintf(err, errlen, "tz: \"%s\": a zone name may not be absolute nor contain \"..\"",
                 name);
        return NULL;
    }
    struct tz *tz = sl_calloc(1, sizeof *tz);
    if (!tz) {
        snprintf(err, errlen, "tz: out of memory");
        return NULL;
    }
    snprintf(tz->name, sizeof tz->name, "%s", name);
    if (strcmp(name, "UTC") == 0) {
        tz->utoff = sl_calloc(1, sizeof *tz->utoff);
        if (!tz->utoff) {
            tz_free(tz);
            snprintf(err, errlen, "tz: out of memory");
            return NULL;
        }
        tz->ntypes = 1;
        return tz;
    }
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "tz: unknown time zone \"%s\" (no file %s)", name, path);
        tz_free(tz);
        return NULL;
    }
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = sl_malloc(cap);
    if (buf)
        len = fread(buf, 1, cap, f);
    bool ok = buf && !ferror(f) && len < cap && parse_tzif(tz, buf, len);
    fclose(f);
    free(buf);
    if (!ok) {
        snprintf(err, errlen, "tz: \"%s\" is not a valid TZif file (%s)", name, path);
        tz_free(tz);
        return NULL;
    }
    return tz;
}

const char *tz_name(const struct tz *tz)
{
    return tz->name;
}

int tz_offset_at(const struct tz *tz, int64_t t)
{
    if (tz->ntrans == 0 || t < tz->trans[0]) {
        if (tz->ntrans == 0 && tz->has_footer)
            return footer_offset(tz, t);
        return tz->utoff[0];
    }
    if (t >= tz->trans[tz->ntrans - 1] && tz->has_footer)
        return footer_offset(tz, t);
    size_t lo = 0, hi = tz->ntrans; /* last transition <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->utoff[tz->idx[lo]];
}

int tz_local_to_utc(const struct tz *tz, int64_t wall, int64_t out[2], int64_t *gap_end)
{
    /* Candidate offsets: those in force around wall (no zone moves more than 26 hours). */
    int c[4];
    c[0] = tz_offset_at(tz, wall - 36 * 3600);
    c[1] = tz_offset_at(tz, wall + 36 * 3600);
    c[2] = tz_offset_at(tz, wall - c[0]);
    c[3] = tz_offset_at(tz, wall - c[1]);
    int n = 0, lo_off = c[0], hi_off = c[0];
    for (int i = 0; i < 4; i++) {
        if (c[i] < lo_off)
            lo_off = c[i];
        if (c[i] > hi_off)
            hi_off = c[i];
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen = seen || c[j] == c[i];
        int64_t t = wall - c[i];
        if (seen || tz_offset_at(tz, t) != c[i])
            continue;
        if (n < 2)
            out[n++] = t;
    }
    if (n == 2 && out[0] > out[1]) {
        int64_t x = out[0];
        out[0] = out[1];
        out[1] = x;
    }
    if (n == 0) {
        /* A gap: the transition lies in (wall - hi_off, wall - lo_off]. */
        int64_t lo = wall - hi_off, hi = wall - lo_off;
        int before = tz_offset_at(tz, lo);
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (tz_offset_at(tz, mid) == before)
                lo = mid;
            else
                hi = mid;
        }
        *gap_end = hi;
    }
    return n;
}
