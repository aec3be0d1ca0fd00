/*
 * values.h - a validated JSON row as the typed values the store writes (struct row_value,
 * schema.h): the conversion below the store, so that backends take typed values only.
 */
#ifndef SLUICE_SCHEMA_VALUES_H
#define SLUICE_SCHEMA_VALUES_H

#include <jansson.h>

#include "schema/schema.h"

/* The values of row, a JSON object that validated against s, in out (one per field of s,
 * in field order): VAL_ABSENT for a missing or null field. Strings are borrowed: they
 * point into row, which must outlive out. */
void row_values_from_json(const struct schema *s, json_t *row, struct row_value *out);

#endif
