/*
 * values.c - a validated JSON row as typed values, one per schema field (values.h).
 */
#include "schema/values.h"

void row_values_from_json(const struct schema *s, json_t *row, struct row_value *out)
{
    size_t n = schema_nfields(s);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(row, schema_field_name(s, i));
        struct row_value *o = &out[i];
        if (!v || json_is_null(v)) {
            o->kind = VAL_ABSENT;
            continue;
        }
        switch (schema_field_type(s, i)) {
        case FT_STRING:
            o->kind = VAL_TEXT;
            o->u.s.p = json_string_value(v);
            o->u.s.n = json_string_length(v);
            break;
        case FT_INTEGER:
            o->kind = VAL_INT;
            o->u.i = json_is_integer(v) ? json_integer_value(v) : (int64_t)json_number_value(v);
            break;
        case FT_NUMBER:
            o->kind = VAL_REAL;
            o->u.d = json_number_value(v);
            break;
        case FT_BOOLEAN:
            o->kind = VAL_BOOL;
            o->u.b = json_is_true(v);
            break;
        }
    }
}
