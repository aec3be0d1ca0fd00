/*
 * h_common.c - small helpers shared by the handlers.
 */
#include <errno.h>
#include <stdlib.h>

#include "http/handlers.h"
#include "ingest/writer.h"

int h_query_int(struct http_conn *c, struct http_request *r, const char *name, long long def,
                long long min, long long max, long long *out)
{
    char v[64];
    int has = http_query(r, name, v, sizeof v);
    if (has == 0 || (has == 1 && v[0] == 0)) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long n = has == 1 ? strtoll(v, &end, 10) : 0;
    if (has < 0 || errno || *end || n < min || n > max) {
        http_reply_error(c, ERR_INVALID_PARAMETER, "%s must be an integer from %lld to %lld", name,
                         min, max);
        return -1;
    }
    *out = n;
    return 0;
}

void h_reply_not_committed(struct http_conn *c, int result)
{
    if (result == WRITER_UNKNOWN)
        http_reply_error(c, ERR_COMMIT_UNKNOWN,
                         "the connection to the store was lost during the commit: the change "
                         "may be made or not");
    else
        http_reply_error(c, ERR_UNAVAILABLE, "the store could not be written; nothing was changed");
}
