/*
 * params.h - the query parameters of every route, declared once (params.c) and checked
 * in one place before the handler runs: a parameter the route does not declare, one
 * given twice, or a value that is not of its type is a 400 naming the parameter, and
 * nothing is done. Handlers then read the values with the hq_*() getters, which never
 * fail (the check ran first).
 *
 * Types: a string (an empty value is the same as none); a boolean (exactly true, false,
 * 1 or 0); an integer in [min, max]; one of a list of values; a time (util/timeparse.h:
 * epoch ms, RFC 3339 or a duration before now); a cursor (an opaque string made by
 * hq_cursor_make() for one list in one order: from another list or the other order it is
 * refused). A route without a row in the table takes no parameters.
 */
#ifndef SLUICE_HTTP_PARAMS_H
#define SLUICE_HTTP_PARAMS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http/router.h"
#include "http/server.h"
#include "util/errors.h"

/* The longest value a parameter may have (longer is a 400); a buffer of HQ_MAX + 1
 * holds any accepted value. */
#define HQ_MAX 256

enum qp_type { QP_STRING, QP_BOOL, QP_INT, QP_ENUM, QP_TIME, QP_CURSOR };

struct qparam {
    const char *name;
    enum qp_type type;
    const char *values; /* QP_ENUM: "a|b|c"; QP_CURSOR: the list's name */
    long long min, max; /* QP_INT; QP_CURSOR: min 1 = the position is an integer id */
};

/* The parameters handler takes (a {NULL} terminated array), or NULL for none. */
const struct qparam *http_params_of(http_handler handler);

/*
 * Check r's query against its route's declaration. 0 when every parameter is declared,
 * given once and valid; -1 with *code (UNKNOWN_PARAMETER, INVALID_PARAMETER or
 * INVALID_CURSOR) and msg naming the parameter. Runs on the loop thread; no allocation.
 */
int http_params_check(const struct http_request *r, enum sluice_err *code, char *msg, size_t cap);

/* The getters, for parameters http_params_check() accepted. */
int hq_bool(const struct http_request *r, const char *name); /* absent = 0 */
/* The value into buf, or NULL when absent or empty. */
const char *hq_str(const struct http_request *r, const char *name, char *buf, size_t cap);
long long hq_int(const struct http_request *r, const char *name, long long def);
int64_t hq_time(const struct http_request *r, const char *name); /* absent = 0 */
int hq_desc(const struct http_request *r);                       /* order: desc unless order=asc */
/* The position of ?cursor= into pos; 0 when there is none. */
int hq_cursor(const struct http_request *r, char *pos, size_t cap);
/* The cursor that continues list (in the order desc says) after pos: a new JSON string,
 * or JSON null when pos is NULL (the last page). */
json_t *hq_cursor_json(const char *list, int desc, const char *pos);

#endif
