/*
 * cells.c - see cells.h. A field's CSV header and cell keywords are compiled into the schema
 * (struct field_csv); this file applies them to one header or one cell. Conversion is on the
 * hot path of every batch: no allocation, one pass over a cell.
 */
#include "ingest/cells.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The field whose CSV header is exactly h (len bytes), or -1. */
static int field_exact(const struct schema *s, const char *h, size_t len)
{
    for (size_t f = 0; f < schema_nfields(s); f++) {
        const char *want = schema_field_csv(s, f)->header;
        if (strlen(want) == len && memcmp(want, h, len) == 0)
            return (int)f;
    }
    return -1;
}

/* The field whose CSV header h matches loosely (schema_csv_header_like), or -1. */
static int field_loose(const struct schema *s, const char *h, size_t len)
{
    for (size_t f = 0; f < schema_nfields(s); f++)
        if (schema_csv_header_like(h, len, schema_field_csv(s, f)->header))
            return (int)f;
    return -1;
}

int cells_map_header(const struct schema *s, const struct csv_field *cols, size_t ncols, int *field,
                     char *why, size_t whylen)
{
    for (size_t i = 0; i < ncols; i++) {
        field[i] = field_exact(s, cols[i].data, cols[i].len);
        for (size_t k = 0; k < i; k++)
            if (cols[k].len == cols[i].len &&
                memcmp(cols[k].data, cols[i].data, cols[i].len) == 0) {
                snprintf(why, whylen, "duplicate column %s", cols[i].data);
                return -1;
            }
    }
    for (size_t i = 0; i < ncols; i++) {
        if (field[i] >= 0)
            continue;
        int f = field_loose(s, cols[i].data, cols[i].len);
        for (size_t k = 0; f >= 0 && k < ncols; k++) {
            if (k == i || field[k] != f)
                continue;
            if (field_exact(s, cols[k].data, cols[k].len) == f) {
                f = -1; /* the field has its exact column: this one is undeclared */
            } else {
                snprintf(why, whylen, "columns '%s' and '%s' both match field %s (header '%s')",
                         cols[k].data, cols[i].data, schema_field_name(s, (size_t)f),
                         schema_field_csv(s, (size_t)f)->header);
                return -1;
            }
        }
        field[i] = f;
    }
    for (size_t f = 0; f < schema_nfields(s); f++) {
        if (!schema_field_required(s, f))
            continue;
        int found = 0;
        for (size_t i = 0; i < ncols && !found; i++)
            found = field[i] == (int)f;
        if (found)
            continue;
        const struct field_csv *c = schema_field_csv(s, f);
        if (c->name)
            snprintf(why, whylen, "missing required column '%s' (field %s)", c->name,
                     schema_field_name(s, f));
        else
            snprintf(why, whylen, "missing required column %s", schema_field_name(s, f));
        return -1;
    }
    return 0;
}

/*
 * A number cell written with the field's decimal and group separators (struct field_csv) as
 * C text in buf: sign, digits, '.', digits, exponent. Groups are of three digits after a first
 * one of one to three ("1,234,567"); a number may also be written without them. 0, or -1 when
 * the cell is not written so.
 */
static int normalize_number(const struct field_csv *c, int integer, const char *v, size_t len,
                            char *buf, size_t cap)
{
    size_t i = 0, o = 0, run = 0, groups = 0, digits = 0;
    if (len + 2 > cap)
        return -1;
    if (i < len && (v[i] == '+' || v[i] == '-'))
        buf[o++] = v[i++];
    for (; i < len; i++) {
        if (v[i] >= '0' && v[i] <= '9') {
            buf[o++] = v[i];
            run++;
            digits++;
        } else if (c->group && v[i] == c->group) {
            if (run == 0 || run > 3 || (groups && run != 3))
                return -1;
            groups++;
            run = 0;
        } else {
            break;
        }
    }
    if (!digits || (groups && run != 3))
        return -1;
    if (!integer && i < len && v[i] == c->decimal) {
        size_t from = ++i;
        buf[o++] = '.';
        while (i < len && v[i] >= '0' && v[i] <= '9')
            buf[o++] = v[i++];
        if (i == from)
            return -1;
    }
    if (!integer && i < len && (v[i] == 'e' || v[i] == 'E')) {
        buf[o++] = v[i++];
        if (i < len && (v[i] == '+' || v[i] == '-'))
            buf[o++] = v[i++];
        size_t from = i;
        while (i < len && v[i] >= '0' && v[i] <= '9')
            buf[o++] = v[i++];
        if (i == from)
            return -1;
    }
    buf[o] = '\0';
    return i == len ? 0 : -1;
}

/* The INVALID_NUMBER_FORMAT error of a cell: what the field expects, with an example. */
static void number_format_error(const struct field_csv *c, int integer, const char *field,
                                const char *v, size_t len, struct row_errors *errs)
{
    char how[64], example[32];
    size_t shown = len > 64 ? 64 : len;
    while (shown < len && shown > 0 && ((unsigned char)v[shown] & 0xC0) == 0x80)
        shown--; /* cut on a UTF-8 character boundary */
    int n = c->group ? snprintf(example, sizeof example, "1%c234%c567", c->group, c->group)
                     : snprintf(example, sizeof example, "1234567");
    if (!integer)
        snprintf(example + n, sizeof example - (size_t)n, "%c89", c->decimal);
    if (integer)
        snprintf(how, sizeof how, "group '%c'", c->group);
    else if (c->group)
        snprintf(how, sizeof how, "decimal '%c' and group '%c'", c->decimal, c->group);
    else
        snprintf(how, sizeof how, "decimal '%c'", c->decimal);
    row_errors_add(
        errs, ERR_INVALID_NUMBER_FORMAT, field, "expected %s written with %s (as %s), got '%.*s%s'",
        integer ? "an integer" : "a number", how, example, (int)shown, v, shown < len ? "..." : "");
}

void cells_value(const struct dataset_config *ds, size_t fi, const char *v, size_t len,
                 struct row_value *out, struct row_errors *errs)
{
    const struct schema *s = ds->schema;
    const struct field_csv *c = schema_field_csv(s, fi);
    enum field_type t = schema_field_type(s, fi);
    const char *null = ds->csv_null ? ds->csv_null : "";
    if (c->trim)
        schema_csv_trim(&v, &len);
    out->kind = VAL_TEXT;
    out->u.s.p = v;
    out->u.s.n = len;
    if (len == strlen(null) && memcmp(v, null, len) == 0) {
        int keep = len == 0 && t == FT_STRING &&
                   (c->empty_string >= 0 ? c->empty_string : ds->csv_empty_string);
        if (!keep)
            out->kind = VAL_ABSENT;
        return;
    }
    if (t == FT_STRING || len == 0)
        return;
    char buf[128];
    if ((t == FT_INTEGER || t == FT_NUMBER) && (c->group || c->decimal != '.')) {
        if (normalize_number(c, t == FT_INTEGER, v, len, buf, sizeof buf) < 0) {
            number_format_error(c, t == FT_INTEGER, schema_field_name(s, fi), v, len, errs);
            out->kind = VAL_ABSENT; /* reported: the validator skips the field */
            return;
        }
        v = buf;
        len = strlen(buf);
    }
    char *end;
    errno = 0;
    if (t == FT_INTEGER) {
        long long n = strtoll(v, &end, 10);
        if (!errno && end == v + len) {
            out->kind = VAL_INT;
            out->u.i = n;
        }
    } else if (t == FT_NUMBER) {
        double d = strtod(v, &end);
        if (!errno && end == v + len && d == d && d - d == 0) {
            out->kind = VAL_REAL;
            out->u.d = d;
        }
    } else if (t == FT_BOOLEAN) {
        int yes = (len == 4 && !strncasecmp(v, "true", 4)) || (len == 1 && v[0] == '1');
        int no = (len == 5 && !strncasecmp(v, "false", 5)) || (len == 1 && v[0] == '0');
        if (yes || no) {
            out->kind = VAL_BOOL;
            out->u.b = yes;
        }
    }
}
