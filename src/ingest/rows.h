/*
 * rows.h - cutting a request body into rows and parsing each row.
 *
 * JSON bodies are one object or an array of objects; NDJSON bodies are one
 * JSON text per line. Each row keeps its byte span in the body, so a rejected
 * row goes to the DLQ with exactly the bytes the client sent.
 */
#ifndef SLUICE_INGEST_ROWS_H
#define SLUICE_INGEST_ROWS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/errors.h"

struct row_span {
    size_t off, len;
    int64_t line; /* 1-based line of the body where the row starts */
};

/*
 * Split a JSON body into its rows (the object, the array's elements, or a top-level scalar
 * as one row, which the validator refuses as NOT_AN_OBJECT).
 * Checks the top-level syntax and the nesting depth of every row (max_depth,
 * the array itself not counted). Returns SLUICE_OK with *spans (caller frees)
 * and *n >= 0, or MALFORMED_JSON / NESTING_TOO_DEEP with a message.
 */
enum sluice_err rows_split_json(const char *body, size_t len, int max_depth,
                                struct row_span **spans, size_t *n, char *msg, size_t cap);

/* Split an NDJSON body into its non-blank lines ("\n" or "\r\n"). */
enum sluice_err rows_split_ndjson(const char *body, size_t len, struct row_span **spans, size_t *n);

/*
 * Parse one row's bytes into *out (new reference). Returns SLUICE_OK, or the
 * row's error: MALFORMED_JSON, INVALID_UTF8, NESTING_TOO_DEEP, ROW_TOO_LARGE,
 * DUPLICATE_FIELD, NUL_CHARACTER, NUMBER_TOO_LARGE, with a message; INTERNAL
 * when out of memory (not the row's error: the caller fails).
 * *syntax is set to 1 when the bytes are not JSON at all (MALFORMED_JSON,
 * INVALID_UTF8), 0 when they are JSON that sluice refuses to store.
 */
enum sluice_err rows_parse(const char *p, size_t len, size_t max_row_bytes, int max_depth,
                           json_t **out, int *syntax, char *msg, size_t cap);

#endif
