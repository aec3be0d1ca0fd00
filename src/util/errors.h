/*
 * errors.h - every error code a client of sluice can see, declared once.
 *
 * SLUICE_ERRORS(X) expands X(CODE, http_status, "default message") for each code.
 * The enum, the name table and the status table are generated from it, and
 * docs/error-codes.md is checked against it by tests/unit/test_errors.c.
 * Codes are stable: never rename one, only add.
 */
#ifndef SLUICE_UTIL_ERRORS_H
#define SLUICE_UTIL_ERRORS_H

#include <stddef.h>

#define SLUICE_ERRORS(X)                                                                           \
    /* row validation (reported per row, per field) */                                             \
    X(MISSING_REQUIRED_FIELD, 422, "a required field is missing")                                  \
    X(INVALID_TYPE, 422, "the value has the wrong JSON type")                                      \
    X(INVALID_DATE_FORMAT, 422, "the value is not a valid date or date-time")                      \
    X(OUT_OF_RANGE, 422, "the number is outside the allowed range")                                \
    X(TOO_LONG, 422, "the string is longer than maxLength")                                        \
    X(TOO_SHORT, 422, "the string is shorter than minLength")                                      \
    X(PATTERN_MISMATCH, 422, "the string does not match the pattern")                              \
    X(NOT_IN_ENUM, 422, "the value is not one of the allowed values")                              \
    X(UNKNOWN_FIELD, 422, "the field is not declared and additionalProperties is false")           \
    X(NOT_AN_OBJECT, 422, "a row must be a JSON object")                                           \
    X(DUPLICATE_KEY, 422, "a row with the same key is already stored")                             \
    X(DUPLICATE_FIELD, 422, "the object has the same field more than once")                        \
    X(NUL_CHARACTER, 422, "a string holds \\u0000, which sluice does not store")                   \
    X(NUMBER_TOO_LARGE, 422, "the number does not fit a 64-bit integer or a double")               \
    X(MALFORMED_JSON, 400, "the JSON text is malformed")                                           \
    X(INVALID_UTF8, 400, "the text is not valid UTF-8")                                            \
    X(NESTING_TOO_DEEP, 400, "the JSON nesting is deeper than limits.max_json_depth")              \
    X(ROW_TOO_LARGE, 413, "the row is larger than limits.max_row_bytes")                           \
    X(MALFORMED_CSV, 422, "the CSV record is malformed (quotes)")                                  \
    X(COLUMN_COUNT_MISMATCH, 422,                                                                  \
      "the CSV record has a different number of fields than the header")                           \
    X(INVALID_NUMBER_FORMAT, 422,                                                                  \
      "the CSV cell is not a number written as its field's decimal / group declare")               \
    /* request level */                                                                            \
    X(BAD_REQUEST, 400, "the request is malformed")                                                \
    X(INVALID_PARAMETER, 400, "a query parameter or body field is invalid")                        \
    X(UNKNOWN_PARAMETER, 400, "the route does not take this query parameter")                      \
    X(INVALID_CURSOR, 400, "the cursor is not one this list gave in this order")                   \
    X(BODY_TOO_LARGE, 413, "the body is larger than limits.max_body_bytes")                        \
    X(HEADERS_TOO_LARGE, 431, "the request headers are too large")                                 \
    X(UNSUPPORTED_MEDIA_TYPE, 415, "the Content-Type is not supported here")                       \
    X(UNAUTHORIZED, 401, "a valid Bearer token (API key or JWT) is required")                      \
    X(FORBIDDEN, 403, "the credential's role does not allow this")                                 \
    X(NOT_FOUND, 404, "no such resource")                                                          \
    X(DATASET_NOT_FOUND, 404, "no such dataset")                                                   \
    X(METHOD_NOT_ALLOWED, 405, "the method is not allowed on this resource")                       \
    X(NOT_IMPLEMENTED, 501, "the method or transfer coding is not implemented")                    \
    X(VERSION_NOT_SUPPORTED, 505, "the HTTP version is not supported")                             \
    X(EXPECTATION_FAILED, 417, "the Expect header value is not supported")                         \
    X(REQUEST_TIMEOUT, 408, "the request was not received in time")                                \
    X(IDEMPOTENCY_KEY_REUSED, 409, "the Idempotency-Key was used with a different body")           \
    X(CONFLICT, 409, "the resource is not in a state that allows this")                            \
    X(CONFIG_REFUSED, 422, "the configuration file was refused; the one in force stays")           \
    X(OVERLOADED, 503, "the write queue is full; retry later")                                     \
    X(RATE_LIMITED, 429, "the client sent more requests than rate_limits allow; retry later")      \
    X(UNAVAILABLE, 503, "the store is unavailable")                                                \
    X(KEY_BUSY, 503, "a key of the request is being stored by a batch; retry later")               \
    X(COMMIT_UNKNOWN, 503,                                                                         \
      "the connection to the store was lost during the commit; the request may be stored or not")  \
    X(INTERNAL, 500, "internal error")

enum sluice_err {
    SLUICE_OK = 0,
#define X(code, status, msg) ERR_##code,
    SLUICE_ERRORS(X)
#undef X
        ERR__COUNT
};

/* "MISSING_REQUIRED_FIELD" for ERR_MISSING_REQUIRED_FIELD; "OK" for SLUICE_OK. Static. */
const char *err_name(enum sluice_err e);
/* The HTTP status that goes with the code when it is the answer to a whole request. */
int err_status(enum sluice_err e);
/* The default human message. Static. */
const char *err_message(enum sluice_err e);
/* Lookup by name; returns SLUICE_OK when unknown. */
enum sluice_err err_from_name(const char *name);

/* printf into err (errlen bytes, truncated); nothing when err is NULL or errlen 0. The
 * "explain why into the caller's buffer" of functions that return -1. */
void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
