/*
 * store.c - picks the backend from the storage URI's scheme.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct store_ops *backends[] = {&store_sqlite_ops};

struct store *store_open(const char *uri, int readonly, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        size_t n = strlen(backends[i]->scheme);
        if (strncmp(uri, backends[i]->scheme, n) == 0 && uri[n] == ':')
            return backends[i]->open(uri + n + 1, readonly, err, errlen);
    }
    snprintf(err, errlen, "storage '%s': unsupported scheme (supported: sqlite:PATH)", uri);
    return NULL;
}

void store_close(struct store *st)
{
    if (st)
        st->ops->close(st);
}

void dlq_entry_release(struct dlq_entry *e)
{
    if (!e)
        return;
    free(e->dataset);
    free(e->ingest_id);
    free(e->source);
    free(e->payload);
    free(e->errors_json);
    free(e->batch_id);
    memset(e, 0, sizeof *e);
}
