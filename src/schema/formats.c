/*
 * formats.c - how values and errors are written, for the schema validator
 * (validate.c): the string formats a schema can ask for with `format`, a calendar
 * date (YYYY-MM-DD) and an RFC 3339 section 5.6 date-time, and the list of a
 * row's errors with its JSON form. The dates are checked by hand against the
 * grammar, byte by byte, with no allocation, because they run on every
 * ingested row that carries a date field.
 */
#include "schema/schema.h"
#include "util/mem.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The value of the n decimal digits at s, or -1 when one of them is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
        return 29;
    return days[month - 1];
}

/* full-date = date-fullyear "-" date-month "-" date-mday, at s[0..9]. */
static int full_date(const char *s)
{
    if (s[4] != '-' || s[7] != '-')
        return 0;
    int y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 0 || m < 1 || m > 12 || d < 1)
        return 0;
    return d <= days_in_month(y, m);
}

/* hh ":" mm with hh 00-23 and mm 00-59, at s[0..4]. */
static int hour_minute(const char *s)
{
    if (s[2] != ':')
        return 0;
    int h = digits(s, 2), m = digits(s + 3, 2);
    return h >= 0 && h <= 23 && m >= 0 && m <= 59;
}

int schema_is_date(const char *s, size_t len)
{
    return s && len == 10 && full_date(s);
}

/*
 * date-time    = full-date ("T" / "t") full-time
 * full-time    = partial-time time-offset
 * partial-time = time-hour ":" time-minute ":" time-second [time-secfrac]
 * time-secfrac = "." 1*DIGIT
 * time-offset  = "Z" / "z" / ("+" / "-") time-hour ":" time-minute
 */
int schema_is_datetime(const char *s, size_t len)
{
    /* The shortest form is YYYY-MM-DDThh:mm:ssZ, 20 bytes. */
    if (!s || len < 20 || !full_date(s))
        return 0;
    if (s[10] != 'T' && s[10] != 't')
        return 0;
    if (!hour_minute(s + 11) || s[16] != ':')
        return 0;
    int sec = digits(s + 17, 2);
    if (sec < 0 || sec > 60) /* 60: a leap second */
        return 0;
    size_t p = 19;
    if (s[p] == '.') {
        size_t start = ++p;
        while (p < len && is_digit(s[p]))
            p++;
        if (p == start)
            return 0;
    }
    if (p >= len)
        return 0;
    if (s[p] == 'Z' || s[p] == 'z')
        return p + 1 == len;
    if (s[p] == '+' || s[p] == '-')
        return p + 6 == len && hour_minute(s + p + 1);
    return 0;
}

/* ---------------------------------------------------------------- row errors */

void row_errors_add(struct row_errors *e, enum sluice_err code, const char *field, const char *fmt,
                    ...)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        struct row_error *v = sl_realloc(e->v, cap * sizeof *v);
        if (!v)
            return;
        e->v = v;
        e->cap = cap;
    }
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = len >= 0 ? sl_malloc((size_t)len + 1) : NULL;
    if (msg)
        vsnprintf(msg, (size_t)len + 1, fmt, ap2);
    va_end(ap2);
    char *fcopy = field ? sl_strdup(field) : NULL;
    if (!msg || (field && !fcopy)) {
        free(msg);
        free(fcopy);
        return;
    }
    e->v[e->n++] = (struct row_error){.code = code, .field = fcopy, .message = msg};
}

void row_errors_clear(struct row_errors *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].field);
        free(e->v[i].message);
    }
    e->n = 0;
}

void row_errors_release(struct row_errors *e)
{
    row_errors_clear(e);
    free(e->v);
    e->v = NULL;
    e->cap = 0;
}

json_t *row_errors_to_json(const struct row_errors *e)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (size_t i = 0; i < e->n; i++) {
        const struct row_error *r = &e->v[i];
        json_t *o =
            json_pack("{s:o, s:s, s:s}", "field", r->field ? json_string(r->field) : json_null(),
                      "code", err_name(r->code), "message", r->message);
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
