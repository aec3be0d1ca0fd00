/*
 * schema_key.c - a dataset's key (schema.h): its text form (one name, or a JSON
 * array of names), resolving it against a schema with the rules a key must meet,
 * and the DUPLICATE_KEY error that shows a row's values of it. The store builds
 * the unique index and the ON CONFLICT target from the resolved fields; the
 * ingest, DLQ and batch paths only report the conflict with this error.
 */
#include "schema/schema.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *schema_key_text(const char *const *names, size_t n)
{
    if (n == 1)
        return sl_strdup(names[0]);
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(names[i])) < 0) {
            json_decref(a);
            a = NULL;
        }
    char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return t;
}

/* The names of a key's text form as a JSON array (a new reference), NULL when it is not
 * one: a bare name is an array of one. */
static json_t *key_names(const char *text)
{
    if (text[0] != '[')
        return json_pack("[s]", text);
    json_error_t e;
    json_t *a = json_loads(text, 0, &e);
    if (a && !json_is_array(a)) {
        json_decref(a);
        return NULL;
    }
    return a;
}

int schema_key_parse(const struct schema *s, const char *text, struct schema_key *k, char *why,
                     size_t whylen)
{
    memset(k, 0, sizeof *k);
    if (!text)
        return 0;
    json_t *a = key_names(text);
    size_t n = a ? json_array_size(a) : 0;
    int rc = -1;
    if (!a || n == 0) {
        snprintf(why, whylen, "'%s' is not a key (a name or a list of names)", text);
        goto out;
    }
    if (n > SCHEMA_KEY_MAX) {
        snprintf(why, whylen, "a key has at most %d fields, got %zu", SCHEMA_KEY_MAX, n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(a, i));
        int f = name ? schema_field_index(s, name) : -1;
        if (!name) {
            snprintf(why, whylen, "entry %zu of the key is not a name", i + 1);
            goto out;
        }
        if (f < 0) {
            snprintf(why, whylen, "'%s' is not a property of the schema", name);
            goto out;
        }
        enum field_type t = schema_field_type(s, (size_t)f);
        if (t != FT_STRING && t != FT_INTEGER) {
            snprintf(why, whylen, "'%s' is of type %s; a key must be a string or an integer", name,
                     field_type_name(t));
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (k->field[j] == (size_t)f) {
                snprintf(why, whylen, "'%s' is named twice", name);
                goto out;
            }
        if (n > 1 && !schema_field_required(s, (size_t)f)) {
            snprintf(why, whylen,
                     "'%s' is not in required (every field of a key of several fields must be)",
                     name);
            goto out;
        }
        k->field[i] = (size_t)f;
    }
    k->n = n;
    rc = 0;
out:
    json_decref(a);
    if (rc < 0)
        memset(k, 0, sizeof *k);
    return rc;
}

json_t *schema_key_json(const struct schema *s, const struct schema_key *k)
{
    if (k->n == 0)
        return NULL;
    if (k->n == 1)
        return json_string(schema_field_name(s, k->field[0]));
    json_t *a = json_array();
    for (size_t i = 0; a && i < k->n; i++)
        if (json_array_append_new(a, json_string(schema_field_name(s, k->field[i]))) < 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

/* The row's value of field f as JSON (a new reference), null when it has none. */
static json_t *value_of(const struct schema *s, size_t f, json_t *row, const struct row_value *vals)
{
    json_t *v =
        row ? json_incref(json_object_get(row, schema_field_name(s, f))) : row_value_json(&vals[f]);
    return v ? v : json_null();
}

void schema_key_duplicate(const struct schema *s, const struct schema_key *k, const char *key_text,
                          json_t *row, const struct row_value *vals, struct row_errors *errs)
{
    json_t *v = NULL;
    if (k->n == 1) {
        v = value_of(s, k->field[0], row, vals);
    } else if ((v = json_array())) {
        for (size_t i = 0; i < k->n; i++)
            json_array_append_new(v, value_of(s, k->field[i], row, vals));
    }
    char *t = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(v);
    row_errors_add(errs, ERR_DUPLICATE_KEY, key_text, "a row with %s = %s is already stored",
                   key_text, t ? t : "?");
    free(t);
}
