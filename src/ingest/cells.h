/*
 * cells.h - CSV cells as a dataset's field values (docs/api.md, "CSV cells"): which column
 * is which field (the header mapping) and what each cell means (null string, whitespace,
 * booleans, numbers with group and decimal separators). Used by the batch pass and by DLQ
 * retries of CSV rows, so that both read a record the same way. Pure functions of their
 * arguments: safe on any thread.
 */
#ifndef SLUICE_INGEST_CELLS_H
#define SLUICE_INGEST_CELLS_H

#include <stddef.h>

#include "config/config.h"
#include "ingest/csv.h"
#include "schema/schema.h"

/*
 * Map a header record's columns (ncols of them, borrowed) to the fields of s: field[i]
 * (caller's array of ncols) gets the field of column i, or -1 for an undeclared column. A
 * column whose text is exactly a field's CSV header (struct field_csv) maps to it; a column
 * matching none exactly maps to the field whose header it matches loosely
 * (schema_csv_header_like), unless a column names that field exactly. Returns 0, or -1 with
 * the reason in why: a duplicate column, two loose columns for one field, a required field
 * with no column ("missing required column case_number").
 */
int cells_map_header(const struct schema *s, const struct csv_field *cols, size_t ncols, int *field,
                     char *why, size_t whylen);

/*
 * Cell v (len bytes, NUL-terminated at len as csv.h gives it) of field fi of dataset ds as
 * its value in *out. Text in *out points into v. VAL_ABSENT for null (the dataset's null
 * string); VAL_TEXT when the cell does not convert to the field's type (the validator then
 * reports INVALID_TYPE); for a field declaring decimal / group, a cell not written so appends
 * INVALID_NUMBER_FORMAT to errs and gives VAL_ABSENT (schema_validate_values then skips the
 * field).
 */
void cells_value(const struct dataset_config *ds, size_t fi, const char *v, size_t len,
                 struct row_value *out, struct row_errors *errs);

#endif
