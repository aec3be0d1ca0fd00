/*
 * h_common.c - small helpers shared by the handlers.
 */
#include <stdio.h>

#include "batch/batch.h"
#include "http/handlers.h"
#include "http/params.h"
#include "writer/writer.h"
#include "store/store.h"

json_t *h_next_cursor(const char *list, int desc, json_t *items, size_t limit)
{
    if (json_array_size(items) <= limit || limit == 0)
        return json_null();
    json_array_remove(items, limit);
    char pos[32];
    snprintf(
        pos, sizeof pos, "%lld",
        (long long)json_integer_value(json_object_get(json_array_get(items, limit - 1), "id")));
    return hq_cursor_json(list, desc, pos);
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

int h_get_batch(struct http_conn *c, const char *id, struct batch *b)
{
    struct store *st = http_conn_store(c);
    int rc = store_batch_get(st, id, b);
    if (rc < 0)
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
    else if (rc == 1)
        http_reply_error(c, ERR_NOT_FOUND, "no batch '%s'", id);
    return rc;
}
