/*
 * schema.c - compiles a dataset's schema (the JSON Schema subset described in
 * schema.h) into flat tables once, then validates every ingested row against
 * them. Validation is on the hot path, so everything that can be worked out
 * ahead of time is: a hash table from property name to field, typed enum
 * values (strings sorted for binary search), numeric bounds and their message
 * text, JIT-compiled PCRE2 patterns. A row is walked once; a valid row costs no
 * allocation. Error messages are built only when a value is wrong, and echo at
 * most ECHO_MAX bytes of it so they stay bounded. Date formats and the row
 * error list are in formats.c.
 */
#include "schema/schema.h"
#include "util/errors.h"
#include "util/mem.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define NAME_MAX_LEN 63 /* ^[A-Za-z][A-Za-z0-9_]{0,62}$ */
#define ECHO_MAX 64     /* bytes of a value echoed in a message */
#define ECHO_BUF (ECHO_MAX + 4)
#define ENUM_TEXT_MAX 240 /* bytes of the allowed values listed in a message */
#define STACK_FIELDS 64   /* schemas up to this size validate without malloc */
#define CSV_NAME_MAX 255  /* bytes of a csv_name */

enum str_format { FMT_NONE = 0, FMT_DATE, FMT_DATETIME };

struct bound {
    int set;
    long double v; /* exact for every int64 and double */
    char text[40]; /* as written in the schema, for messages */
};

struct enum_str {
    char *s;
    size_t len;
};

struct field {
    char *name;
    size_t namelen;
    enum field_type type;
    int required;

    /* integer / number */
    int has_range;
    struct bound min, xmin, max, xmax;

    /* string */
    long long minlen, maxlen; /* -1 when not set */
    enum str_format format;
    char *pattern;
    pcre2_code *re;

    /* enum: one of these, according to type; enum_text lists them for messages */
    size_t nenum;
    struct enum_str *enum_strs; /* sorted by (len, bytes) */
    long double *enum_nums;
    unsigned enum_bools; /* bit 0: false allowed, bit 1: true allowed */
    char *enum_text;

    /* CSV cells (csv_name is owned by csv.name); trim_kw: the property said trim: true */
    struct field_csv csv;
    int trim_kw;
};

struct schema {
    struct field *f;
    size_t n;
    size_t nrequired;
    int allow_extra;
    int *slots; /* open-addressing table of field indexes, -1 = empty */
    size_t mask;
};

/* ------------------------------------------------------------------ helpers */

const char *field_type_name(enum field_type t)
{
    switch (t) {
    case FT_STRING:
        return "string";
    case FT_INTEGER:
        return "integer";
    case FT_NUMBER:
        return "number";
    case FT_BOOLEAN:
        return "boolean";
    }
    return "unknown";
}

static const char *value_kind_name(const struct row_value *v)
{
    switch (v->kind) {
    case VAL_OBJECT:
        return "object";
    case VAL_ARRAY:
        return "array";
    case VAL_TEXT:
        return "string";
    case VAL_INT:
        return "integer";
    case VAL_REAL:
        return "number";
    case VAL_BOOL:
        return "boolean";
    case VAL_NULL:
        return "null";
    case VAL_ABSENT:
        break;
    }
    return "nothing";
}

json_t *row_value_json(const struct row_value *v)
{
    switch (v->kind) {
    case VAL_TEXT:
        return json_stringn(v->u.s.p, v->u.s.n);
    case VAL_INT:
        return json_integer(v->u.i);
    case VAL_REAL:
        return json_real(v->u.d);
    case VAL_BOOL:
        return json_boolean(v->u.b);
    case VAL_NULL:
        return json_null();
    default:
        return NULL;
    }
}

/* A JSON value as a row value (borrowed: text points into j). */
static void value_of_json(const json_t *j, struct row_value *v)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        v->kind = VAL_OBJECT;
        break;
    case JSON_ARRAY:
        v->kind = VAL_ARRAY;
        break;
    case JSON_STRING:
        v->kind = VAL_TEXT;
        v->u.s.p = json_string_value(j);
        v->u.s.n = json_string_length(j);
        break;
    case JSON_INTEGER:
        v->kind = VAL_INT;
        v->u.i = json_integer_value(j);
        break;
    case JSON_REAL:
        v->kind = VAL_REAL;
        v->u.d = json_real_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v->kind = VAL_BOOL;
        v->u.b = json_is_true(j);
        break;
    case JSON_NULL:
        v->kind = VAL_NULL;
        break;
    }
}

static const char *json_kind(const json_t *v)
{
    struct row_value rv;
    value_of_json(v, &rv);
    return value_kind_name(&rv);
}

/* At most ECHO_MAX bytes of s, cut on a UTF-8 character boundary, "..." when cut. */
static const char *echo(char buf[ECHO_BUF], const char *s, size_t len)
{
    size_t k = len;
    if (len > ECHO_MAX) {
        k = ECHO_MAX;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--;
    }
    memcpy(buf, s, k);
    strcpy(buf + k, len > k ? "..." : "");
    return buf;
}

/* The shortest %g text that reads back as d. */
static void fmt_real(char *buf, size_t n, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

static void fmt_number(char *buf, size_t n, const struct row_value *v)
{
    if (v->kind == VAL_INT)
        snprintf(buf, n, "%lld", (long long)v->u.i);
    else
        fmt_real(buf, n, v->u.d);
}

static void fmt_json_number(char *buf, size_t n, const json_t *j)
{
    struct row_value v;
    value_of_json(j, &v);
    fmt_number(buf, n, &v);
}

/* Whether d has an integral value that fits int64 (3.0 is an integer). */
static int is_int64(double d)
{
    return d >= -0x1p63 && d < 0x1p63 && d == (double)(long long)d;
}

static uint64_t hash_name(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int lookup(const struct schema *s, const char *name, size_t len)
{
    if (s->n == 0 || len > NAME_MAX_LEN)
        return -1;
    for (size_t i = hash_name(name, len) & s->mask;; i = (i + 1) & s->mask) {
        int k = s->slots[i];
        if (k < 0)
            return -1;
        const struct field *f = &s->f[k];
        if (f->namelen == len && memcmp(f->name, name, len) == 0)
            return k;
    }
}

/* Number of code points in valid UTF-8: every byte that is not a continuation byte. */
static size_t utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static int cmp_enum_str(const void *a, const void *b)
{
    const struct enum_str *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

/* ------------------------------------------------------------------ compile */

static void field_free(struct field *f)
{
    free(f->name);
    free(f->pattern);
    pcre2_code_free(f->re);
    if (f->enum_strs)
        for (size_t i = 0; i < f->nenum; i++)
            free(f->enum_strs[i].s);
    free(f->enum_strs);
    free(f->enum_nums);
    free(f->enum_text);
    free((char *)f->csv.name);
}

void schema_destroy(struct schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        field_free(&s->f[i]);
    free(s->f);
    free(s->slots);
    free(s);
}

static int valid_name(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return 0;
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static void set_bound(struct bound *b, const json_t *v)
{
    b->set = 1;
    b->v =
        json_is_integer(v) ? (long double)json_integer_value(v) : (long double)json_real_value(v);
    fmt_json_number(b->text, sizeof b->text, v);
}

/* Appends the text of an enum value to the message list, stopping near ENUM_TEXT_MAX. */
static void enum_text_add(char *buf, size_t *used, const json_t *v, int first)
{
    char tmp[ECHO_BUF + 8], num[40];
    if (json_is_string(v)) {
        char e[ECHO_BUF];
        snprintf(tmp, sizeof tmp, "\"%s\"", echo(e, json_string_value(v), json_string_length(v)));
    } else if (json_is_number(v)) {
        fmt_json_number(num, sizeof num, v);
        snprintf(tmp, sizeof tmp, "%s", num);
    } else {
        snprintf(tmp, sizeof tmp, "%s", json_is_true(v) ? "true" : "false");
    }
    if (*used > ENUM_TEXT_MAX)
        return;
    size_t need = strlen(tmp) + (first ? 0 : 2);
    if (*used + need > ENUM_TEXT_MAX) {
        strcpy(buf + *used, ", ...");
        *used = ENUM_TEXT_MAX + 1; /* full: ignore the rest */
        return;
    }
    *used += (size_t)snprintf(buf + *used, need + 1, "%s%s", first ? "" : ", ", tmp);
}

static int compile_enum(struct field *f, const json_t *arr, char *err, size_t errlen)
{
    const char *name = f->name;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        err_set(err, errlen, "properties.%s: 'enum' must be a non-empty array", name);
        return -1;
    }
    size_t n = json_array_size(arr);
    f->enum_text = sl_malloc(ENUM_TEXT_MAX + 8);
    if (f->type == FT_STRING)
        f->enum_strs = sl_calloc(n, sizeof *f->enum_strs);
    else if (f->type != FT_BOOLEAN)
        f->enum_nums = sl_calloc(n, sizeof *f->enum_nums);
    if (!f->enum_text || (f->type == FT_STRING && !f->enum_strs) ||
        ((f->type == FT_INTEGER || f->type == FT_NUMBER) && !f->enum_nums)) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    f->enum_text[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        int ok;
        switch (f->type) {
        case FT_STRING:
            ok = json_is_string(v);
            break;
        case FT_INTEGER:
            ok = json_is_integer(v) || (json_is_real(v) && is_int64(json_real_value(v)));
            break;
        case FT_NUMBER:
            ok = json_is_number(v);
            break;
        default:
            ok = json_is_boolean(v);
            break;
        }
        if (!ok) {
            err_set(err, errlen, "properties.%s: enum[%zu]: expected %s, got %s", name, i,
                    field_type_name(f->type), json_kind(v));
            return -1;
        }
        if (f->type == FT_STRING) {
            size_t len = json_string_length(v);
            f->enum_strs[i].s = sl_malloc(len + 1);
            if (!f->enum_strs[i].s) {
                f->nenum = i; /* what field_free must release */
                err_set(err, errlen, "out of memory");
                return -1;
            }
            memcpy(f->enum_strs[i].s, json_string_value(v), len + 1);
            f->enum_strs[i].len = len;
        } else if (f->type == FT_BOOLEAN) {
            f->enum_bools |= json_is_true(v) ? 2u : 1u;
        } else {
            f->enum_nums[i] = json_is_integer(v) ? (long double)json_integer_value(v)
                                                 : (long double)json_real_value(v);
        }
        f->nenum = i + 1;
        enum_text_add(f->enum_text, &used, v, i == 0);
    }
    if (f->type == FT_STRING)
        qsort(f->enum_strs, n, sizeof *f->enum_strs, cmp_enum_str);
    return 0;
}

static int compile_pattern(struct field *f, const json_t *v, char *err, size_t errlen)
{
    if (!json_is_string(v)) {
        err_set(err, errlen, "properties.%s: 'pattern' must be a string", f->name);
        return -1;
    }
    int code;
    PCRE2_SIZE off;
    f->re = pcre2_compile((PCRE2_SPTR)json_string_value(v), json_string_length(v),
                          PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
    if (!f->re) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
            strcpy((char *)msg, "unknown error");
        err_set(err, errlen, "properties.%s: invalid pattern: %s at offset %zu", f->name,
                (const char *)msg, (size_t)off);
        return -1;
    }
    (void)pcre2_jit_compile(f->re, PCRE2_JIT_COMPLETE); /* interpreter when JIT is missing */
    f->pattern = sl_strdup(json_string_value(v));
    if (!f->pattern) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_type(const json_t *t, enum field_type *out)
{
    static const char *const names[] = {"string", "integer", "number", "boolean"};
    if (!json_is_string(t))
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(json_string_value(t), names[i]) == 0) {
            *out = (enum field_type)i;
            return 0;
        }
    return -1;
}

/* The one character of a decimal / group keyword's value, or 0 when it is not one of chars. */
static char one_char(const json_t *v, const char *chars)
{
    if (!json_is_string(v) || json_string_length(v) != 1)
        return 0;
    char c = json_string_value(v)[0];
    return strchr(chars, c) ? c : 0;
}

/*
 * The CSV-only keywords of a property (csv_name, trim, csv_empty_string, decimal, group).
 * Returns 1 when key is one of them (set in f), 0 when it is not, -1 with err on a bad value.
 */
static int compile_csv_keyword(struct field *f, const char *key, const json_t *v, char *err,
                               size_t errlen)
{
    const char *name = f->name;
    int numeric = f->type == FT_INTEGER || f->type == FT_NUMBER;
    if (!strcmp(key, "csv_name")) {
        size_t n = json_is_string(v) ? json_string_length(v) : 0;
        const char *t = json_is_string(v) ? json_string_value(v) : "";
        if (n == 0 || n > CSV_NAME_MAX || strlen(t) != n) {
            err_set(err, errlen,
                    "properties.%s: 'csv_name' must be a non-empty string of at most %d bytes",
                    name, CSV_NAME_MAX);
            return -1;
        }
        if (!(f->csv.name = sl_strdup(t))) {
            err_set(err, errlen, "out of memory");
            return -1;
        }
        return 1;
    }
    if (!strcmp(key, "trim") || !strcmp(key, "csv_empty_string")) {
        if (f->type != FT_STRING) {
            err_set(err, errlen,
                    "properties.%s: '%s' does not apply to type %s (a CSV cell of a type other "
                    "than string is always trimmed, and empty is null)",
                    name, key, field_type_name(f->type));
            return -1;
        }
        if (!json_is_boolean(v)) {
            err_set(err, errlen, "properties.%s: '%s' must be a boolean", name, key);
            return -1;
        }
        if (key[0] == 't')
            f->trim_kw = json_is_true(v);
        else
            f->csv.empty_string = json_is_true(v);
        return 1;
    }
    if (!strcmp(key, "decimal") || !strcmp(key, "group")) {
        int dec = key[0] == 'd';
        if (!numeric || (dec && f->type != FT_NUMBER)) {
            err_set(err, errlen, "properties.%s: '%s' does not apply to type %s", name, key,
                    field_type_name(f->type));
            return -1;
        }
        char c = one_char(v, dec ? ".," : ",. '_");
        if (!c) {
            err_set(err, errlen, "properties.%s: '%s' must be one of %s", name, key,
                    dec ? "\".\" or \",\"" : "\",\", \".\", \" \", \"'\" or \"_\"");
            return -1;
        }
        if (dec)
            f->csv.decimal = c;
        else
            f->csv.group = c;
        return 1;
    }
    return 0;
}

/*
 * Refuse bounds that no value can satisfy: the tightest lower bound above the tightest
 * upper one, equal bounds of which one is exclusive, or, for an integer, no integer
 * between them (exclusiveMinimum 5 with exclusiveMaximum 6).
 */
static int check_range_empty(const struct field *f, char *err, size_t errlen)
{
    const struct bound *lo = NULL, *hi = NULL;
    int lox = 0, hix = 0;
    if (f->min.set)
        lo = &f->min;
    if (f->xmin.set && (!lo || f->xmin.v >= lo->v)) {
        lo = &f->xmin;
        lox = 1;
    }
    if (f->max.set)
        hi = &f->max;
    if (f->xmax.set && (!hi || f->xmax.v <= hi->v)) {
        hi = &f->xmax;
        hix = 1;
    }
    if (!lo || !hi)
        return 0;
    int empty;
    if (f->type == FT_INTEGER) {
        long double a = lox ? floorl(lo->v) + 1 : ceill(lo->v);
        long double b = hix ? ceill(hi->v) - 1 : floorl(hi->v);
        empty = a > b;
    } else {
        empty = lo->v > hi->v || (lo->v == hi->v && (lox || hix));
    }
    if (!empty)
        return 0;
    if (!lox && !hix && lo->v > hi->v)
        err_set(err, errlen, "properties.%s: minimum %s is greater than maximum %s", f->name,
                lo->text, hi->text);
    else
        err_set(err, errlen, "properties.%s: no %s satisfies %s %s and %s %s (the range is empty)",
                f->name, f->type == FT_INTEGER ? "integer" : "number",
                lox ? "exclusiveMinimum" : "minimum", lo->text,
                hix ? "exclusiveMaximum" : "maximum", hi->text);
    return -1;
}

static int compile_field(struct field *f, const json_t *spec, char *err, size_t errlen)
{
    const char *name = f->name;
    f->minlen = f->maxlen = -1;
    f->csv.empty_string = -1;
    f->csv.decimal = '.';
    if (!json_is_object(spec)) {
        err_set(err, errlen, "properties.%s: must be an object", name);
        return -1;
    }
    const json_t *t = json_object_get(spec, "type");
    if (!t) {
        err_set(err, errlen, "properties.%s: 'type' is required", name);
        return -1;
    }
    if (parse_type(t, &f->type) != 0) {
        char e[ECHO_BUF];
        err_set(err, errlen,
                "properties.%s: 'type' must be one of string, integer, number, boolean, got %s%s%s",
                name, json_is_string(t) ? "'" : "",
                json_is_string(t) ? echo(e, json_string_value(t), json_string_length(t))
                                  : json_kind(t),
                json_is_string(t) ? "'" : "");
        return -1;
    }
    int numeric = f->type == FT_INTEGER || f->type == FT_NUMBER;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)spec, key, v)
    {
        struct bound *b = NULL;
        long long *len = NULL;
        if (!strcmp(key, "type") || !strcmp(key, "description") || !strcmp(key, "title"))
            continue;
        int csv = compile_csv_keyword(f, key, v, err, errlen);
        if (csv < 0)
            return -1;
        if (csv)
            continue;
        if (!strcmp(key, "minimum"))
            b = &f->min;
        else if (!strcmp(key, "maximum"))
            b = &f->max;
        else if (!strcmp(key, "exclusiveMinimum"))
            b = &f->xmin;
        else if (!strcmp(key, "exclusiveMaximum"))
            b = &f->xmax;
        else if (!strcmp(key, "minLength"))
            len = &f->minlen;
        else if (!strcmp(key, "maxLength"))
            len = &f->maxlen;
        else if (strcmp(key, "pattern") && strcmp(key, "enum") && strcmp(key, "format")) {
            char e[ECHO_BUF];
            err_set(err, errlen, "properties.%s: unknown keyword '%s'", name,
                    echo(e, key, strlen(key)));
            return -1;
        }
        int string_only = len || !strcmp(key, "pattern") || !strcmp(key, "format");
        if ((b && !numeric) || (string_only && f->type != FT_STRING)) {
            err_set(err, errlen, "properties.%s: '%s' does not apply to type %s", name, key,
                    field_type_name(f->type));
            return -1;
        }
        if (b) {
            if (!json_is_number(v)) {
                err_set(err, errlen, "properties.%s: '%s' must be a number", name, key);
                return -1;
            }
            set_bound(b, v);
            f->has_range = 1;
        } else if (len) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                err_set(err, errlen, "properties.%s: '%s' must be a non-negative integer", name,
                        key);
                return -1;
            }
            *len = (long long)json_integer_value(v);
        } else if (!strcmp(key, "pattern")) {
            if (compile_pattern(f, v, err, errlen) != 0)
                return -1;
        } else if (!strcmp(key, "enum")) {
            if (compile_enum(f, v, err, errlen) != 0)
                return -1;
        } else { /* format */
            const char *fs = json_is_string(v) ? json_string_value(v) : NULL;
            if (fs && !strcmp(fs, "date"))
                f->format = FMT_DATE;
            else if (fs && !strcmp(fs, "date-time"))
                f->format = FMT_DATETIME;
            else {
                char e[ECHO_BUF];
                err_set(err, errlen,
                        "properties.%s: unknown format '%s' (supported: date, date-time)", name,
                        fs ? echo(e, fs, json_string_length(v)) : json_kind(v));
                return -1;
            }
        }
    }
    if (check_range_empty(f, err, errlen) != 0)
        return -1;
    if (f->type == FT_NUMBER && f->csv.group && f->csv.group == f->csv.decimal) {
        err_set(err, errlen, "properties.%s: 'group' and 'decimal' are both '%c'", name,
                f->csv.group);
        return -1;
    }
    f->csv.trim = f->type != FT_STRING || f->format != FMT_NONE || f->trim_kw;
    f->csv.header = f->csv.name ? f->csv.name : f->name;
    if (f->minlen >= 0 && f->maxlen >= 0 && f->minlen > f->maxlen) {
        err_set(err, errlen, "properties.%s: minLength %lld is greater than maxLength %lld", name,
                f->minlen, f->maxlen);
        return -1;
    }
    return 0;
}

static int compile_properties(struct schema *s, json_t *props, char *err, size_t errlen)
{
    if (!json_is_object(props)) {
        err_set(err, errlen, "'properties' must be an object");
        return -1;
    }
    size_t n = json_object_size(props);
    if (n == 0)
        return 0;
    if (n > INT_MAX / 4) {
        err_set(err, errlen, "too many properties");
        return -1;
    }
    size_t nslots = 8;
    while (nslots < 2 * n)
        nslots *= 2;
    s->f = sl_calloc(n, sizeof *s->f);
    s->slots = sl_malloc(nslots * sizeof *s->slots);
    if (!s->f || !s->slots) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    s->mask = nslots - 1;
    for (size_t i = 0; i < nslots; i++)
        s->slots[i] = -1;

    for (void *it = json_object_iter(props); it; it = json_object_iter_next(props, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        if (!valid_name(key, klen)) {
            char e[ECHO_BUF];
            err_set(err, errlen,
                    "properties.%s: invalid property name (must match "
                    "^[A-Za-z][A-Za-z0-9_]{0,62}$)",
                    echo(e, key, strlen(key)));
            return -1;
        }
        for (size_t k = 0; k < s->n; k++)
            if (strcasecmp(s->f[k].name, key) == 0) {
                /* SQLite compares column names without case: one table cannot hold both. */
                err_set(err, errlen,
                        "properties.%s: differs from properties.%s only in case; column names "
                        "are compared without case, so the two cannot both be columns",
                        key, s->f[k].name);
                return -1;
            }
        struct field *f = &s->f[s->n++];
        f->name = sl_strdup(key);
        f->namelen = klen;
        if (!f->name) {
            err_set(err, errlen, "out of memory");
            return -1;
        }
        if (compile_field(f, json_object_iter_value(it), err, errlen) != 0)
            return -1;
        size_t slot = hash_name(key, klen) & s->mask;
        while (s->slots[slot] >= 0)
            slot = (slot + 1) & s->mask;
        s->slots[slot] = (int)(s->n - 1);
    }
    return 0;
}

/* A CSV header is matched exactly, then loosely: two fields whose headers match loosely could
 * not be told apart, so they are refused. */
static int check_csv_headers(const struct schema *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n; i++)
        for (size_t k = 0; k < i; k++) {
            const char *a = s->f[k].csv.header, *b = s->f[i].csv.header;
            if (!schema_csv_header_like(b, strlen(b), a))
                continue;
            char ea[ECHO_BUF], eb[ECHO_BUF];
            err_set(err, errlen,
                    "properties.%s: its CSV header '%s' and the CSV header '%s' of "
                    "properties.%s match the same column (headers are matched without case "
                    "or surrounding whitespace)",
                    s->f[i].name, echo(eb, b, strlen(b)), echo(ea, a, strlen(a)), s->f[k].name);
            return -1;
        }
    return 0;
}

static int compile_required(struct schema *s, const json_t *req, char *err, size_t errlen)
{
    if (!json_is_array(req)) {
        err_set(err, errlen, "'required' must be an array of property names");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(req); i++) {
        const json_t *v = json_array_get(req, i);
        if (!json_is_string(v)) {
            err_set(err, errlen, "required[%zu] must be a string, got %s", i, json_kind(v));
            return -1;
        }
        int k = lookup(s, json_string_value(v), json_string_length(v));
        if (k < 0) {
            char e[ECHO_BUF];
            err_set(err, errlen, "required: '%s' is not declared in properties",
                    echo(e, json_string_value(v), json_string_length(v)));
            return -1;
        }
        if (!s->f[k].required)
            s->nrequired++;
        s->f[k].required = 1;
    }
    return 0;
}

struct schema *schema_compile(json_t *spec, char *err, size_t errlen)
{
    err_set(err, errlen, "%s", "");
    if (!json_is_object(spec)) {
        err_set(err, errlen, "a schema must be a JSON object");
        return NULL;
    }
    struct schema *s = sl_calloc(1, sizeof *s);
    if (!s) {
        err_set(err, errlen, "out of memory");
        return NULL;
    }
    s->allow_extra = 1;
    const char *key;
    json_t *v;
    json_object_foreach(spec, key, v)
    {
        if (!strcmp(key, "type")) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "object") != 0) {
                err_set(err, errlen, "'type' must be \"object\"");
                goto fail;
            }
        } else if (!strcmp(key, "additionalProperties")) {
            if (!json_is_boolean(v)) {
                err_set(err, errlen, "'additionalProperties' must be a boolean");
                goto fail;
            }
            s->allow_extra = json_is_true(v);
        } else if (strcmp(key, "properties") && strcmp(key, "required") &&
                   strcmp(key, "description") && strcmp(key, "title")) {
            char e[ECHO_BUF];
            err_set(err, errlen, "unknown keyword '%s'", echo(e, key, strlen(key)));
            goto fail;
        }
    }
    json_t *props = json_object_get(spec, "properties");
    if (props &&
        (compile_properties(s, props, err, errlen) != 0 || check_csv_headers(s, err, errlen) != 0))
        goto fail;
    json_t *req = json_object_get(spec, "required");
    if (req && compile_required(s, req, err, errlen) != 0)
        goto fail;
    return s;
fail:
    schema_destroy(s);
    return NULL;
}

/* ---------------------------------------------------------------- accessors */

size_t schema_nfields(const struct schema *s)
{
    return s->n;
}

const char *schema_field_name(const struct schema *s, size_t i)
{
    return i < s->n ? s->f[i].name : NULL;
}

enum field_type schema_field_type(const struct schema *s, size_t i)
{
    return i < s->n ? s->f[i].type : FT_STRING;
}

int schema_field_required(const struct schema *s, size_t i)
{
    return i < s->n && s->f[i].required;
}

int schema_field_index(const struct schema *s, const char *name)
{
    return name ? lookup(s, name, strlen(name)) : -1;
}

int schema_allows_extra(const struct schema *s)
{
    return s->allow_extra;
}

const struct field_csv *schema_field_csv(const struct schema *s, size_t i)
{
    return i < s->n ? &s->f[i].csv : NULL;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

void schema_csv_trim(const char **p, size_t *len)
{
    while (*len && is_space(**p)) {
        (*p)++;
        (*len)--;
    }
    while (*len && is_space((*p)[*len - 1]))
        (*len)--;
}

int schema_csv_header_like(const char *h, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    schema_csv_trim(&h, &len);
    schema_csv_trim(&name, &nlen);
    return len == nlen && strncasecmp(h, name, len) == 0;
}

/* --------------------------------------------------------------- validation */

static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static __thread pcre2_match_data *tls_md;

static void md_free(void *p)
{
    pcre2_match_data_free(p);
}

static void md_key_create(void)
{
    (void)pthread_key_create(&md_key, md_free);
}

/*
 * This thread's match data. One ovector pair is enough for every pattern: we only
 * ask whether there is a match. Registered with a key so it is freed at thread exit.
 */
static pcre2_match_data *thread_match_data(void)
{
    if (!tls_md) {
        pthread_once(&md_once, md_key_create);
        tls_md = pcre2_match_data_create(1, NULL);
        if (tls_md)
            (void)pthread_setspecific(md_key, tls_md);
    }
    return tls_md;
}

static void check_range(const struct field *f, long double x, const struct row_value *v,
                        struct row_errors *e)
{
    char num[40];
    num[0] = '\0';
    const struct {
        const struct bound *b;
        int bad;
        const char *op;
    } tests[] = {
        {&f->min, x < f->min.v, ">="},
        {&f->xmin, x <= f->xmin.v, ">"},
        {&f->max, x > f->max.v, "<="},
        {&f->xmax, x >= f->xmax.v, "<"},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (!tests[i].b->set || !tests[i].bad)
            continue;
        if (!num[0])
            fmt_number(num, sizeof num, v);
        row_errors_add(e, ERR_OUT_OF_RANGE, f->name, "must be %s %s, got %s", tests[i].op,
                       tests[i].b->text, num);
    }
}

static void check_string(const struct field *f, const struct row_value *v, struct row_errors *e)
{
    const char *s = v->u.s.p;
    size_t len = v->u.s.n;
    char buf[ECHO_BUF];

    if (f->format == FMT_DATE && !schema_is_date(s, len))
        row_errors_add(e, ERR_INVALID_DATE_FORMAT, f->name, "expected a date YYYY-MM-DD, got '%s'",
                       echo(buf, s, len));
    else if (f->format == FMT_DATETIME && !schema_is_datetime(s, len))
        row_errors_add(
            e, ERR_INVALID_DATE_FORMAT, f->name,
            "expected an RFC 3339 date-time YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm), got '%s'",
            echo(buf, s, len));

    /* Code points <= bytes, so only a string longer in bytes than maxLength needs counting. */
    if (f->maxlen >= 0 || f->minlen > 0) {
        size_t cp = 0;
        int counted = 0;
        if (f->maxlen >= 0 && len > (size_t)f->maxlen) {
            cp = utf8_length(s, len);
            counted = 1;
            if (cp > (size_t)f->maxlen)
                row_errors_add(e, ERR_TOO_LONG, f->name, "length %zu exceeds maxLength %lld", cp,
                               f->maxlen);
        }
        if (f->minlen > 0) {
            if (!counted)
                cp = utf8_length(s, len);
            if (cp < (size_t)f->minlen)
                row_errors_add(e, ERR_TOO_SHORT, f->name, "length %zu is less than minLength %lld",
                               cp, f->minlen);
        }
    }

    if (f->re) {
        pcre2_match_data *md = thread_match_data();
        int rc = md ? pcre2_match(f->re, (PCRE2_SPTR)s, len, 0, 0, md, NULL) : PCRE2_ERROR_NOMEMORY;
        if (rc < 0) {
            /* Other than NOMATCH: a match limit or out of memory; the value is not accepted. */
            char pat[ECHO_BUF], why[128] = "";
            if (rc != PCRE2_ERROR_NOMATCH) {
                strcpy(why, " (");
                if (pcre2_get_error_message(rc, (PCRE2_UCHAR *)why + 2, sizeof why - 3) < 0)
                    strcpy(why + 2, "match failed");
                strcat(why, ")");
            }
            row_errors_add(e, ERR_PATTERN_MISMATCH, f->name,
                           "does not match pattern '%s', got '%s'%s",
                           echo(pat, f->pattern, strlen(f->pattern)), echo(buf, s, len), why);
        }
    }

    if (f->nenum) {
        struct enum_str key = {.s = (char *)s, .len = len};
        if (!bsearch(&key, f->enum_strs, f->nenum, sizeof key, cmp_enum_str))
            row_errors_add(e, ERR_NOT_IN_ENUM, f->name, "must be one of %s; got '%s'", f->enum_text,
                           echo(buf, s, len));
    }
}

static void check_number(const struct field *f, const struct row_value *v, struct row_errors *e)
{
    long double x;
    if (v->kind == VAL_INT) {
        x = (long double)v->u.i;
    } else if (v->kind == VAL_REAL) {
        double d = v->u.d;
        /* An integer may be written 3.0, if it fits int64. */
        if (f->type == FT_INTEGER && !is_int64(d)) {
            char num[40];
            fmt_real(num, sizeof num, d);
            row_errors_add(e, ERR_INVALID_TYPE, f->name, "expected integer, got number %s", num);
            return;
        }
        x = (long double)d;
    } else {
        row_errors_add(e, ERR_INVALID_TYPE, f->name, "expected %s, got %s",
                       field_type_name(f->type), value_kind_name(v));
        return;
    }
    if (f->has_range)
        check_range(f, x, v, e);
    if (f->nenum) {
        for (size_t i = 0; i < f->nenum; i++)
            if (f->enum_nums[i] == x)
                return;
        char num[40];
        fmt_number(num, sizeof num, v);
        row_errors_add(e, ERR_NOT_IN_ENUM, f->name, "must be one of %s; got %s", f->enum_text, num);
    }
}

static void check_field(const struct field *f, const struct row_value *v, struct row_errors *e)
{
    switch (f->type) {
    case FT_STRING:
        if (v->kind == VAL_TEXT)
            check_string(f, v, e);
        else
            row_errors_add(e, ERR_INVALID_TYPE, f->name, "expected string, got %s",
                           value_kind_name(v));
        return;
    case FT_INTEGER:
    case FT_NUMBER:
        check_number(f, v, e);
        return;
    case FT_BOOLEAN:
        if (v->kind != VAL_BOOL)
            row_errors_add(e, ERR_INVALID_TYPE, f->name, "expected boolean, got %s",
                           value_kind_name(v));
        else if (f->nenum && !(f->enum_bools & (v->u.b ? 2u : 1u)))
            row_errors_add(e, ERR_NOT_IN_ENUM, f->name, "must be one of %s; got %s", f->enum_text,
                           v->u.b ? "true" : "false");
        return;
    }
}

static void unknown_field(struct row_errors *e, const char *name)
{
    row_errors_add(e, ERR_UNKNOWN_FIELD, name,
                   "field is not declared in the schema and additionalProperties is false");
}

static void check_required(const struct schema *s, size_t i, struct row_errors *e)
{
    if (s->f[i].required)
        row_errors_add(e, ERR_MISSING_REQUIRED_FIELD, s->f[i].name, "required field is missing");
}

/* Whether one of the first n errors of e is about field f (the caller reported its value). */
static int reported(const struct row_errors *e, size_t n, const struct field *f)
{
    for (size_t k = 0; k < n; k++)
        if (e->v[k].field && strcmp(e->v[k].field, f->name) == 0)
            return 1;
    return 0;
}

size_t schema_validate_values(const struct schema *s, const struct row_value *vals,
                              const char *const *unknown, size_t n_unknown, struct row_errors *errs)
{
    size_t before = errs->n, lost = errs->lost;
    for (size_t i = 0; i < s->n; i++)
        if (vals[i].kind != VAL_ABSENT)
            check_field(&s->f[i], &vals[i], errs);
    if (!s->allow_extra)
        for (size_t k = 0; k < n_unknown; k++)
            unknown_field(errs, unknown[k]);
    if (s->nrequired)
        for (size_t i = 0; i < s->n; i++)
            if (vals[i].kind == VAL_ABSENT && !(before && reported(errs, before, &s->f[i])))
                check_required(s, i, errs);
    return errs->n - before + (errs->lost - lost);
}

size_t schema_validate(const struct schema *s, json_t *row, struct row_errors *errs, json_t **extra)
{
    size_t before = errs->n, lost = errs->lost;
    if (extra)
        *extra = NULL;
    if (!json_is_object(row)) {
        row_errors_add(errs, ERR_NOT_AN_OBJECT, NULL, "expected a JSON object, got %s",
                       row ? json_kind(row) : "nothing");
        return errs->n - before + (errs->lost - lost);
    }

    /* One pass over the row: which declared fields it has, and how many others. */
    json_t *stackv[STACK_FIELDS];
    json_t **vals = stackv;
    if (s->n > STACK_FIELDS && !(vals = sl_malloc(s->n * sizeof *vals))) {
        errs->lost++; /* not validated: out of memory */
        return errs->n - before + (errs->lost - lost);
    }
    if (s->n)
        memset(vals, 0, s->n * sizeof *vals);
    size_t nunknown = 0;
    for (void *it = json_object_iter(row); it; it = json_object_iter_next(row, it)) {
        int k = lookup(s, json_object_iter_key(it), json_object_iter_key_len(it));
        if (k < 0)
            nunknown++;
        else
            vals[k] = json_object_iter_value(it);
    }

    for (size_t i = 0; i < s->n; i++)
        if (vals[i]) {
            struct row_value v;
            value_of_json(vals[i], &v);
            check_field(&s->f[i], &v, errs);
        }

    if (nunknown && !s->allow_extra)
        for (void *it = json_object_iter(row); it; it = json_object_iter_next(row, it))
            if (lookup(s, json_object_iter_key(it), json_object_iter_key_len(it)) < 0)
                unknown_field(errs, json_object_iter_key(it));

    if (s->nrequired)
        for (size_t i = 0; i < s->n; i++)
            if (!vals[i])
                check_required(s, i, errs);

    if (extra && nunknown && s->allow_extra && errs->n == before && errs->lost == lost) {
        json_t *x = json_object();
        for (void *it = json_object_iter(row); x && it; it = json_object_iter_next(row, it)) {
            const char *key = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            if (lookup(s, key, klen) < 0 &&
                json_object_setn(x, key, klen, json_object_iter_value(it)) != 0) {
                json_decref(x);
                x = NULL;
            }
        }
        if (!x)
            errs->lost++; /* the fields to keep could not be copied: out of memory */
        *extra = x;
    }
    if (vals != stackv)
        free(vals);
    return errs->n - before + (errs->lost - lost);
}

/* ------------------------------------------------------------ compatibility */

int schema_compatible(const struct schema *old, const struct schema *next, char *why, size_t whylen)
{
    err_set(why, whylen, "%s", "");
    for (size_t i = 0; i < old->n; i++) {
        const struct field *o = &old->f[i];
        int k = lookup(next, o->name, o->namelen);
        if (k < 0) {
            err_set(why, whylen, "field '%s' was removed", o->name);
            return -1;
        }
        const struct field *n = &next->f[k];
        if (n->type != o->type) {
            err_set(why, whylen, "field '%s' changed type from %s to %s", o->name,
                    field_type_name(o->type), field_type_name(n->type));
            return -1;
        }
        if (n->required && !o->required) {
            err_set(why, whylen, "field '%s' became required; stored rows may lack it", o->name);
            return -1;
        }
    }
    for (size_t i = 0; i < next->n; i++) {
        const struct field *n = &next->f[i];
        if (n->required && lookup(old, n->name, n->namelen) < 0) {
            err_set(why, whylen, "new field '%s' is required; stored rows lack it", n->name);
            return -1;
        }
    }
    return 0;
}
