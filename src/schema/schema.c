/*
 * schema.c - what the schema's files share and the questions asked of a compiled
 * schema (schema_internal.h, built by compile.c): the names of types, a row value
 * as JSON, the message text helpers (values echoed at most ECHO_MAX bytes,
 * numbers written as they read back), the field accessors of schema.h, and
 * whether rows stored under one schema can be kept under the next.
 */
#include "schema/schema_internal.h"
#include "util/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

const char *schema_kind_name(const struct row_value *v)
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

const char *schema_json_kind(const json_t *v)
{
    struct row_value rv = {.kind = VAL_ABSENT}; /* value_of_json sets it for every JSON type */
    value_of_json(v, &rv);
    return schema_kind_name(&rv);
}

/* At most ECHO_MAX bytes of s, cut on a UTF-8 character boundary, "..." when cut. */
const char *schema_echo(char buf[ECHO_BUF], const char *s, size_t len)
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
void schema_fmt_real(char *buf, size_t n, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

void schema_fmt_number(char *buf, size_t n, const struct row_value *v)
{
    if (v->kind == VAL_INT)
        snprintf(buf, n, "%lld", (long long)v->u.i);
    else
        schema_fmt_real(buf, n, v->u.d);
}

void schema_fmt_json_number(char *buf, size_t n, const json_t *j)
{
    struct row_value v = {.kind = VAL_ABSENT};
    value_of_json(j, &v);
    schema_fmt_number(buf, n, &v);
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
