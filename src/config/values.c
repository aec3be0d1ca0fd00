/*
 * values.c - the values of sluice's configuration: text to typed values
 * (sizes, durations, HOST:PORT, storage URLs, names, integers, numbers,
 * booleans, choices), checked against an option's bounds, and the words of the
 * YAML 1.2 core schema that the YAML walk (yaml.c) resolves plain scalars with.
 * The same parser sets a default, a value from the file and one from the
 * environment or the command line.
 */
#include "config/config_internal.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"
#include "util/mem.h"

/* Each type's name in the docs and what errors say a value should look like. */
const struct opt_type_info config_types[] = {
    [OT_STRING] = {"string", "a string"},
    [OT_INT] = {"integer", "an integer"},
    [OT_NUMBER] = {"number", "a number"},
    [OT_BOOL] = {"boolean", "true or false"},
    [OT_SIZE] = {"size", "a size like 64M"},
    [OT_DURATION] = {"duration", "a duration like 30s"},
    [OT_LISTEN] = {"HOST:PORT", "HOST:PORT like 127.0.0.1:8080"},
    [OT_ENUM] = {NULL, NULL}, /* "one of ..." from the choices */
    [OT_CHOICE] = {NULL, NULL},
    [OT_STORAGE] = {"storage URL", "sqlite:PATH or a postgres:// URL"},
    [OT_NAME] = {"name", "a name matching ^[a-z][a-z0-9_]{0,62}$"},
    [OT_SCHEMA] = {"mapping", "a mapping (a JSON Schema object)"},
    [OT_DATASETS] = {"list", "a list of datasets"},
    [OT_STRLIST] = {"list of strings", "a list of strings"},
    [OT_JWTKEYS] = {"list", "a list of keys"},
    [OT_RECEIVERS] = {"list", "a list of receivers"},
    [OT_ROUTES] = {"list", "a list of routes"},
    [OT_JOBS] = {"list", "a list of jobs"},
    [OT_JOBARGS] = {"mapping", "a mapping of the kind's arguments"},
    [OT_KEY] = {"name or list of names", "a property name or a list of them"},
};

/* Units of sizes (powers of 1024, case-insensitive) and durations. */
const struct size_unit config_size_units[] = {
    {'k', 1ULL << 10}, {'m', 1ULL << 20}, {'g', 1ULL << 30}, {'t', 1ULL << 40}};

const struct duration_unit config_duration_units[] = {
    /* longest suffix first among those sharing a letter: "ms" before "m" */
    {"ms", "milliseconds", 1}, {"s", "seconds", 1000},  {"m", "minutes", 60000},
    {"h", "hours", 3600000},   {"d", "days", 86400000},
};
const size_t config_nsize_units = ARRAY_SIZE(config_size_units);
const size_t config_nduration_units = ARRAY_SIZE(config_duration_units);

/* A short, printable copy of text from the file for an error message. */
const char *config_echo(char *buf, size_t cap, const char *s)
{
    size_t n = 0, max = cap > 4 ? cap - 4 : 0;

    for (; s[n] && n < max; n++)
        buf[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ? '?' : s[n];
    if (s[n]) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The YAML 1.2 core schema's special words. */
const char *const config_yaml_nulls[] = {"", "~", "null", "Null", "NULL", NULL};
const char *const config_yaml_trues[] = {"true", "True", "TRUE", NULL};
const char *const config_yaml_falses[] = {"false", "False", "FALSE", NULL};
const char *const config_yaml_not_json[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                            "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                            ".NaN",  ".NAN",  NULL};

int config_is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

/* Digits at *s into *v (no sign); advances *s. -1 when there are none or on overflow. */
static int parse_digits(const char **s, uint64_t *v)
{
    const char *p = *s;
    uint64_t x = 0;

    if (!is_digit(*p))
        return -1;
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *s = p;
    *v = x;
    return 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
    uint64_t v, factor = 1;
    const char *p = s;

    if (!s || parse_digits(&p, &v) < 0)
        return -1;
    for (size_t i = 0; i < config_nsize_units; i++) {
        if ((*p | 0x20) == config_size_units[i].letter) {
            factor = config_size_units[i].factor;
            p++;
            if (*p == 'i' && p[1] == 'B')
                p++;
            break;
        }
    }
    if (*p == 'B')
        p++;
    if (*p != '\0' || v > UINT64_MAX / factor)
        return -1;
    *out = v * factor;
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *out)
{
    uint64_t total = 0, v;
    const char *p = s;

    if (!s)
        return -1;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    do {
        size_t i;
        if (parse_digits(&p, &v) < 0)
            return -1;
        for (i = 0; i < config_nduration_units; i++) {
            size_t len = strlen(config_duration_units[i].suffix);
            if (strncmp(p, config_duration_units[i].suffix, len) == 0) {
                p += len;
                break;
            }
        }
        if (i == config_nduration_units || v > UINT64_MAX / config_duration_units[i].ms ||
            v * config_duration_units[i].ms > UINT64_MAX - total)
            return -1;
        total += v * config_duration_units[i].ms;
    } while (*p);
    *out = total;
    return 0;
}

static int valid_listen(const char *s)
{
    const char *host = s, *host_end, *port;
    uint64_t v;

    if (*s == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (!host_end || host_end[1] != ':')
            return 0;
        port = host_end + 2;
        for (const char *p = host; p < host_end; p++)
            if (!is_digit(*p) && !((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f') && *p != ':' &&
                *p != '.')
                return 0;
    } else {
        host_end = strrchr(s, ':');
        if (!host_end)
            return 0;
        port = host_end + 1;
        for (const char *p = host; p < host_end; p++)
            if (!is_digit(*p) && !((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') && *p != '.' &&
                *p != '-')
                return 0;
    }
    if (host_end == host || strlen(port) > 5 || parse_digits(&port, &v) < 0 || *port)
        return 0;
    return v >= 1 && v <= 65535;
}

static int valid_storage(const char *s)
{
    static const char *const schemes[] = {"sqlite:", "postgres://", "postgresql://"};

    for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
        size_t len = strlen(schemes[i]);
        if (strncmp(s, schemes[i], len) == 0)
            return s[len] != '\0';
    }
    return 0;
}

static int valid_name(const char *s)
{
    size_t n = 0;

    if (!(*s >= 'a' && *s <= 'z'))
        return 0;
    for (n = 1; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || is_digit(s[n]) || s[n] == '_'))
            return 0;
    return n <= 63;
}

/* What an option's value should look like, for messages and the docs. */
const char *opt_expected(const struct opt *o, char *buf, size_t cap)
{
    size_t used;

    if (!o->choices)
        return config_types[o->type].expect;
    used = (size_t)snprintf(buf, cap, "one of");
    for (size_t i = 0; o->choices[i] && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s %s", i ? "," : "", o->choices[i]);
    return buf;
}

/* Check a parsed number against the option's bounds; 0 when inside. */
static int out_of_range(const struct opt *o, double v, char *why, size_t whylen)
{
    if ((o->flags & OPT_MIN) && (o->flags & OPT_MAX) && (v < o->min || v > o->max)) {
        err_set(why, whylen, "must be between %.15g and %.15g, got %.15g", o->min, o->max, v);
        return 1;
    }
    if ((o->flags & OPT_MIN) && v < o->min) {
        err_set(why, whylen, "must be at least %.15g, got %.15g", o->min, v);
        return 1;
    }
    return 0;
}

int config_set_string(char **field, const char *s)
{
    char *copy = sl_strdup(s);

    if (!copy)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

/* Parse a decimal integer with an optional sign into a long long; -1 if s is not one. */
static int parse_int(const char *s, long long *out)
{
    uint64_t v;
    int neg = (*s == '-');
    const char *p = s + (*s == '-' || *s == '+');

    if (parse_digits(&p, &v) < 0 || *p || v > (uint64_t)LLONG_MAX + (uint64_t)neg)
        return -1;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

/* A YAML 1.2 core integer: decimal, 0x hexadecimal or 0o octal. -1 if it is not one. */
int config_parse_core_int(const char *s, long long *out)
{
    int base = s[0] == '0' && s[1] == 'x' ? 16 : s[0] == '0' && s[1] == 'o' ? 8 : 10;
    const char *p = s + 2;
    uint64_t v = 0;

    if (base == 10)
        return parse_int(s, out);
    if (!*p)
        return -1;
    for (; *p; p++) {
        int d = is_digit(*p)                                 ? *p - '0'
                : ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f') ? (*p | 0x20) - 'a' + 10
                                                             : 99;
        if (d >= base || v > ((uint64_t)LLONG_MAX - (unsigned)d) / (unsigned)base)
            return -1;
        v = v * (unsigned)base + (unsigned)d;
    }
    *out = (long long)v;
    return 0;
}

/* [-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)?, the YAML 1.2 core float. */
int config_is_float_text(const char *s)
{
    const char *p = s + (*s == '-' || *s == '+');
    int digits = 0;

    for (; is_digit(*p); p++)
        digits++;
    if (*p == '.')
        for (p++; is_digit(*p); p++)
            digits++;
    if (!digits)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        p += (*p == '-' || *p == '+');
        if (!is_digit(*p))
            return 0;
        while (is_digit(*p))
            p++;
    }
    return *p == '\0';
}

/*
 * Set the option o of the struct at base from text s. On failure returns -1
 * with the reason (without the option name) in why.
 */
int opt_set_text(const struct opt *o, void *base, const char *s, char *why, size_t whylen)
{
    void *p = field_ptr(base, o);
    char ebuf[128], sbuf[72];
    long long iv;
    uint64_t uv;
    double dv;

    switch (o->type) {
    case OT_STRING:
    case OT_LISTEN:
    case OT_STORAGE:
    case OT_NAME:
        if ((o->type == OT_STRING && *s == '\0' && !(o->flags & OPT_EMPTY_OK)) ||
            (o->type == OT_LISTEN && !valid_listen(s)) ||
            (o->type == OT_STORAGE && !valid_storage(s)) || (o->type == OT_NAME && !valid_name(s)))
            goto bad;
        if (config_set_string((char **)p, s) < 0)
            goto oom;
        return 0;
    case OT_INT:
        if (parse_int(s, &iv) < 0 || iv < INT_MIN || iv > INT_MAX)
            goto bad;
        if (out_of_range(o, (double)iv, why, whylen))
            return -1;
        *(int *)p = (int)iv;
        return 0;
    case OT_NUMBER:
        if (!config_is_float_text(s))
            goto bad;
        dv = strtod(s, NULL);
        if (!isfinite(dv))
            goto bad;
        if (out_of_range(o, dv, why, whylen))
            return -1;
        *(double *)p = dv;
        return 0;
    case OT_BOOL:
        if (!config_is_one_of(s, config_yaml_trues) && !config_is_one_of(s, config_yaml_falses))
            goto bad;
        *(int *)p = config_is_one_of(s, config_yaml_trues);
        return 0;
    case OT_SIZE:
    case OT_DURATION:
        if ((o->type == OT_SIZE ? config_parse_size(s, &uv) : config_parse_duration_ms(s, &uv)) < 0)
            goto bad;
        if (out_of_range(o, (double)uv, why, whylen))
            return -1;
        *(uint64_t *)p = uv;
        return 0;
    case OT_ENUM:
    case OT_CHOICE:
        for (int i = 0; o->choices[i]; i++) {
            if (strcmp(s, o->choices[i]) != 0)
                continue;
            if (o->type == OT_CHOICE) {
                *(int *)p = i;
                return 0;
            }
            if (config_set_string((char **)p, s) < 0)
                goto oom;
            return 0;
        }
        goto bad;
    case OT_SCHEMA:
    case OT_DATASETS:
    case OT_STRLIST:
    case OT_JWTKEYS:
    case OT_RECEIVERS:
    case OT_ROUTES:
    case OT_KEY:
    case OT_JOBS:
    case OT_JOBARGS:
        err_set(why, whylen, "can only be set in the configuration file");
        return -1;
    }
bad:
    err_set(why, whylen, "expected %s, got '%s'", opt_expected(o, ebuf, sizeof ebuf),
            config_echo(sbuf, sizeof sbuf, s));
    return -1;
oom:
    err_set(why, whylen, "out of memory");
    return -1;
}

_Static_assert(sizeof(enum on_duplicate) == sizeof(int), "OT_CHOICE stores an int");

/*
 * Apply every default of tbl to the struct at base ("derived" ones come later).
 * Fails only when out of memory: every default in the tables parses.
 */
int opt_apply_defaults(const struct opt *tbl, size_t n, void *base, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        if (!tbl[i].def || (tbl[i].flags & OPT_DERIVED))
            continue;
        if (opt_set_text(&tbl[i], base, tbl[i].def, why, whylen) < 0) {
            assert(strcmp(why, "out of memory") == 0);
            return -1;
        }
    }
    return 0;
}
