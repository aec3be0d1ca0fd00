/*
 * schema_internal.h - PRIVATE to src/schema/: the compiled form of a schema (struct
 * schema, struct field) and the helpers its files share. Nothing outside src/schema/
 * may include it; everyone else goes through schema.h.
 *
 * Who writes what: compile.c builds a struct schema (with the load-time checks of
 * checks.c) and schema_destroy() frees it; after schema_compile() returns, nothing
 * writes it again, so validate.c, schema.c (accessors, compatibility) and
 * schema_key.c read it from any thread without locks.
 *
 * lookup() and value_of_json() are on the validation hot path, so they are static
 * inline here; the message helpers (schema.c) run only when a value is wrong.
 */
#ifndef SLUICE_SCHEMA_SCHEMA_INTERNAL_H
#define SLUICE_SCHEMA_SCHEMA_INTERNAL_H

#include "schema/schema.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define NAME_MAX_LEN 63 /* ^[A-Za-z][A-Za-z0-9_]{0,62}$ */
#define ECHO_MAX 64     /* bytes of a value echoed in a message */
#define ECHO_BUF (ECHO_MAX + 4)

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

/* ------------------------------------------------- message text (schema.c) */

/* The JSON type name of a value ("object", "string", "integer", ..., "nothing"). */
const char *schema_kind_name(const struct row_value *v);
const char *schema_json_kind(const json_t *v);
/* At most ECHO_MAX bytes of s, cut on a UTF-8 character boundary, "..." when cut; returns
 * buf. */
const char *schema_echo(char buf[ECHO_BUF], const char *s, size_t len);
/* The shortest %g text that reads back as d. */
void schema_fmt_real(char *buf, size_t n, double d);
/* An integer or real value / a JSON number as text, as messages show it. */
void schema_fmt_number(char *buf, size_t n, const struct row_value *v);
void schema_fmt_json_number(char *buf, size_t n, const json_t *j);

/* ------------------------------------------------ load-time checks (checks.c) */

/* A property name: valid (NAME_MAX_LEN, letters, digits, '_') and not equal without case to
 * one of the fields already in s. 0, or -1 with the reason in err. */
int schema_check_name(const struct schema *s, const char *name, size_t len, char *err,
                      size_t errlen);
/*
 * The CSV-only keywords of a property (csv_name, trim, csv_empty_string, decimal, group).
 * Returns 1 when key is one of them (set in f), 0 when it is not, -1 with err on a bad value.
 */
int schema_csv_keyword(struct field *f, const char *key, const json_t *v, char *err, size_t errlen);
/* A compiled field's keywords taken together: a range no value satisfies, group equal to
 * decimal, minLength above maxLength. 0, or -1 with the reason in err. */
int schema_check_field(const struct field *f, char *err, size_t errlen);
/* Two fields whose CSV headers match the same column. 0, or -1 with the reason in err. */
int schema_check_csv_headers(const struct schema *s, char *err, size_t errlen);

/* ---------------------------------------------------------------- hot path */

/* A JSON value as a row value (borrowed: text points into j). */
static inline void value_of_json(const json_t *j, struct row_value *v)
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

/* Whether d has an integral value that fits int64 (3.0 is an integer). */
static inline int is_int64(double d)
{
    return d >= -0x1p63 && d < 0x1p63 && d == (double)(long long)d;
}

static inline uint64_t hash_name(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The index of the field called name (len bytes), or -1. */
static inline int lookup(const struct schema *s, const char *name, size_t len)
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

/* The order of a string enum's values: by length, then bytes (compile.c sorts them with it,
 * validate.c searches them). */
static inline int cmp_enum_str(const void *a, const void *b)
{
    const struct enum_str *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

#endif
