/*
 * batch_add.c - recording an uploaded batch as a writer job (see batch_add.h).
 */
#include "batch/batch_add.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int batch_add_apply(struct wjob *job, struct store *st)
{
    struct batch_add_job *u = (struct batch_add_job *)job;
    /* Keys are kept per dataset; an upload's key lives beside the events' keys with a
     * prefix, so the same key string can be used for both without a clash. */
    char key[300];
    if (u->idem_key) {
        snprintf(key, sizeof key, "upload:%s", u->idem_key);
        struct idem_record rec = {0};
        int r = store_idem_get(st, u->b.dataset, key, &rec);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (!strcmp(rec.sha256, u->b.sha256)) {
                u->status = rec.status;
                u->response = rec.response;
                u->replayed = 1;
            } else {
                free(rec.response);
                u->status = 409;
            }
            return 0;
        }
    }
    if (store_batch_add(st, &u->b) < 0)
        return -1;
    json_t *j = json_pack("{s:s,s:s,s:I,s:s}", "batch_id", u->b.id, "status", "uploaded", "bytes",
                          (json_int_t)u->b.bytes, "sha256", u->b.sha256);
    u->response = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    u->status = 202;
    if (u->idem_key) {
        /* every record of the key is live here: an upload's key never expires */
        int r = store_idem_put(st, u->b.dataset, key, u->b.sha256, 202, u->response,
                               u->b.created_ms, INT64_MIN);
        if (r != 0) { /* 1: another node's upload with this key was recorded first */
            free(u->response);
            u->response = NULL;
            return r < 0 ? -1 : WJOB_AGAIN;
        }
    }
    return 0;
}

void batch_add_release(struct batch_add_job *j)
{
    free(j->idem_key);
    j->idem_key = NULL;
    free(j->response);
    j->response = NULL;
    batch_release(&j->b);
}
