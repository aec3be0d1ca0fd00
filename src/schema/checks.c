/*
 * checks.c - the checks made when a schema is loaded, beyond each keyword's own
 * type (compile.c): property names (their form, and two that differ only in case,
 * which cannot both be columns), the CSV-only keywords of a property and their
 * values, bounds that no value satisfies, group and decimal separators that are
 * the same character, minLength above maxLength, and two fields whose CSV headers
 * match the same column. Also the CSV header matching itself (schema_csv_trim,
 * schema_csv_header_like, schema.h), which that last check and the CSV reader share.
 */
#include "schema/schema_internal.h"
#include "util/errors.h"
#include "util/mem.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#define CSV_NAME_MAX 255 /* bytes of a csv_name */

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

int schema_check_name(const struct schema *s, const char *name, size_t len, char *err,
                      size_t errlen)
{
    if (!valid_name(name, len)) {
        char e[ECHO_BUF];
        err_set(err, errlen,
                "properties.%s: invalid property name (must match "
                "^[A-Za-z][A-Za-z0-9_]{0,62}$)",
                schema_echo(e, name, strlen(name)));
        return -1;
    }
    for (size_t k = 0; k < s->n; k++)
        if (strcasecmp(s->f[k].name, name) == 0) {
            /* SQLite compares column names without case: one table cannot hold both. */
            err_set(err, errlen,
                    "properties.%s: differs from properties.%s only in case; column names "
                    "are compared without case, so the two cannot both be columns",
                    name, s->f[k].name);
            return -1;
        }
    return 0;
}

/* The one character of a decimal / group keyword's value, or 0 when it is not one of chars. */
static char one_char(const json_t *v, const char *chars)
{
    if (!json_is_string(v) || json_string_length(v) != 1)
        return 0;
    char c = json_string_value(v)[0];
    return strchr(chars, c) ? c : 0;
}

/* The CSV-only keywords of a property (schema_internal.h). */
int schema_csv_keyword(struct field *f, const char *key, const json_t *v, char *err, size_t errlen)
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

int schema_check_field(const struct field *f, char *err, size_t errlen)
{
    if (check_range_empty(f, err, errlen) != 0)
        return -1;
    if (f->type == FT_NUMBER && f->csv.group && f->csv.group == f->csv.decimal) {
        err_set(err, errlen, "properties.%s: 'group' and 'decimal' are both '%c'", f->name,
                f->csv.group);
        return -1;
    }
    if (f->minlen >= 0 && f->maxlen >= 0 && f->minlen > f->maxlen) {
        err_set(err, errlen, "properties.%s: minLength %lld is greater than maxLength %lld",
                f->name, f->minlen, f->maxlen);
        return -1;
    }
    return 0;
}

/* A CSV header is matched exactly, then loosely: two fields whose headers match loosely could
 * not be told apart, so they are refused. */
int schema_check_csv_headers(const struct schema *s, char *err, size_t errlen)
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
                    s->f[i].name, schema_echo(eb, b, strlen(b)), schema_echo(ea, a, strlen(a)),
                    s->f[k].name);
            return -1;
        }
    return 0;
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
