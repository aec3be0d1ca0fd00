/*
 * csv.h - a streaming CSV reader (RFC 4180 and as people really write it).
 *
 * Bytes are pushed in chunks of any size (csv_feed); each complete record is
 * handed to a callback with its fields and its exact original bytes, so memory
 * is bounded by the largest record (max_record_bytes), never by the file.
 *
 *   - fields separated by ',', records by CRLF, LF or a lone CR; mixed is fine;
 *   - quoted fields hold commas, line breaks and doubled quotes ("" -> ");
 *   - a UTF-8 BOM at the very start is skipped;
 *   - empty lines are skipped (they are not records);
 *   - a record's problems are reported, not fatal: an unterminated quote at the
 *     end of input, a quote inside an unquoted field or text after a closing
 *     quote (MALFORMED_CSV), invalid UTF-8 (INVALID_UTF8), a record larger than
 *     max_record_bytes (ROW_TOO_LARGE, its bytes are skipped to the next line
 *     end outside quotes).
 */
#ifndef SLUICE_INGEST_CSV_H
#define SLUICE_INGEST_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "util/errors.h"

struct csv_field {
    const char *data; /* unquoted, unescaped; NUL-terminated; valid until the callback returns */
    size_t len;
    int quoted; /* the field was written in quotes */
};

struct csv_record {
    int64_t index; /* 1-based record number, header included (the header is 1) */
    int64_t line;  /* 1-based line of the input where the record starts */
    const struct csv_field *fields;
    size_t nfields;
    const char *raw; /* the record's original bytes, without its line end */
    size_t raw_len;
    enum sluice_err error;     /* SLUICE_OK, MALFORMED_CSV, INVALID_UTF8 or ROW_TOO_LARGE */
    const char *error_message; /* human text when error != SLUICE_OK */
};

/* Return 0 to go on, non-zero to stop (csv_feed then returns that value). */
typedef int (*csv_record_cb)(void *arg, const struct csv_record *rec);

struct csv_reader;

struct csv_reader *csv_reader_create(size_t max_record_bytes, csv_record_cb cb, void *arg);
void csv_reader_destroy(struct csv_reader *r); /* accepts NULL */
/* Push the next chunk. Returns 0, a callback's non-zero value, or -1 on out-of-memory. */
int csv_feed(struct csv_reader *r, const char *data, size_t len);
/* End of input: hands over the last record (without a final line end). */
int csv_finish(struct csv_reader *r);

#endif
