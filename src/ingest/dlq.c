/*
 * dlq.c - see dlq.h.
 */
#include "ingest/dlq.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "ingest/rows.h"
#include "util/clock.h"
#include "util/jsontext.h"
#include "util/utf8.h"
#include "util/mem.h"

json_t *dlq_item_json(const struct dlq_entry *e)
{
    char rat[32], uat[32];
    json_t *payload = NULL;
    unsigned long failures = mem_thread_failures();
    int b64 = !utf8_valid(e->payload, e->payload_len) || memchr(e->payload, 0, e->payload_len);
    if (b64) {
        size_t cap = 4 * ((e->payload_len + 2) / 3) + 1;
        unsigned char *out = sl_malloc(cap);
        int n =
            out ? EVP_EncodeBlock(out, (const unsigned char *)e->payload, (int)e->payload_len) : 0;
        payload = out ? json_stringn((char *)out, (size_t)n) : NULL;
        free(out);
    } else {
        payload = json_stringn(e->payload, e->payload_len);
    }
    json_error_t jerr;
    json_t *errs = e->errors_json ? json_loads(e->errors_json, 0, &jerr) : NULL;
    if (!payload || mem_thread_failures() != failures) { /* out of memory: no item, not a part */
        json_decref(payload);
        json_decref(errs);
        return NULL;
    }
    return json_pack("{s:I,s:s,s:s,s:s?,s:I,s:o,s:b,s:o,s:s,s:s,s:i,s:s}", "id", (json_int_t)e->id,
                     "dataset", e->dataset ? e->dataset : "", "ingest_id",
                     e->ingest_id ? e->ingest_id : "", "source", e->source, "row",
                     (json_int_t)e->row, "payload", payload ? payload : json_string(""),
                     "payload_base64", b64, "errors", errs ? errs : json_array(), "received_at",
                     clock_rfc3339(e->received_ms, rat, sizeof rat), "updated_at",
                     clock_rfc3339(e->updated_ms, uat, sizeof uat), "attempts", e->attempts,
                     "status", e->status);
}

/* Retry one open entry. Returns 1 if stored, 0 if still invalid, -1 on store failure. */
static int retry_entry(struct dlq_job *j, struct store *st, struct dlq_entry *e)
{
    const struct dataset_config *ds = config_dataset(j->cfg, e->dataset);
    struct row_errors errs = {0};
    json_t *obj = NULL, *extra = NULL;
    int stored = 0, rc = -1;
    int64_t now = clock_wall_ms();
    char why[256];

    int valid = 0;
    if (!ds) {
        row_errors_add(&errs, ERR_DATASET_NOT_FOUND, NULL,
                       "dataset '%s' is not configured any more", e->dataset);
    } else if (e->batch_id) {
        /* A CSV record of a batch: read again with its file's header. */
        struct batch b;
        int r = store_batch_get(st, e->batch_id, &b);
        if (r < 0)
            goto out;
        if (r == 1)
            row_errors_add(&errs, ERR_NOT_FOUND, NULL,
                           "batch %s, whose header this record needs, was deleted", e->batch_id);
        else
            obj = j->batch_row(j->cfg, ds, st, &b, e->payload, e->payload_len, &errs, &extra);
        batch_release(&b);
        valid = obj != NULL;
    } else {
        int syntax;
        enum sluice_err pe;
        if (e->payload_len > j->cfg->limits.max_row_bytes) {
            pe = ERR_ROW_TOO_LARGE;
            snprintf(why, sizeof why, "the row is %zu bytes; limits.max_row_bytes is %llu",
                     e->payload_len, (unsigned long long)j->cfg->limits.max_row_bytes);
        } else {
            pe = rows_parse(e->payload, e->payload_len, j->cfg->limits.max_row_bytes,
                            j->cfg->limits.max_json_depth, &obj, &syntax, why, sizeof why);
        }
        if (pe == ERR_INTERNAL) /* out of memory */
            goto out;
        if (pe != SLUICE_OK)
            row_errors_add(&errs, pe, NULL, "%s", why);
        else
            valid = schema_validate(ds->schema, obj, &errs, &extra) == 0;
    }
    if (valid) {
        char rat[32];
        struct row_meta m = {e->ingest_id, e->source, clock_rfc3339(now, rat, sizeof rat),
                             e->batch_id};
        enum row_result res;
        if (store_row_put(st, ds, &m, obj, extra, &res) < 0)
            goto out;
        if (res == ROW_DUPLICATE && ds->on_duplicate == ON_DUP_REJECT) {
            schema_key_duplicate(ds->schema, &ds->key_fields, ds->key, obj, NULL, &errs);
        } else {
            stored = 1; /* stored, replaced, or skipped as a known duplicate */
        }
    }
    if (errs.lost || (!stored && errs.n == 0))
        goto out; /* invalid without a reason recorded: an allocation failed on the way */
    e->attempts++;
    if (stored) {
        if (store_dlq_set(st, e->id, "resolved", e->attempts, NULL, NULL, now) < 0)
            goto out;
        snprintf(e->status, sizeof e->status, "resolved");
    } else {
        json_t *ej = row_errors_to_json(&errs);
        char *etxt = jsontext_dump(ej, JSON_COMPACT | JSON_PRESERVE_ORDER);
        char *codes = ingest_codes(&errs);
        json_decref(ej);
        int r = etxt && codes ? store_dlq_set(st, e->id, "open", e->attempts, etxt, codes, now)
                              : -1; /* out of memory: the entry stays as it was */
        free(e->errors_json);
        e->errors_json = etxt;
        free(codes);
        if (r < 0)
            goto out;
    }
    e->updated_ms = now;
    rc = stored;
out:
    json_decref(obj);
    json_decref(extra);
    row_errors_release(&errs);
    return rc;
}

static int single(struct dlq_job *j, struct store *st)
{
    struct dlq_entry e;
    int r = store_dlq_get(st, j->id, &e);
    if (r < 0)
        return -1;
    if (r == 1) {
        j->status = 404;
        j->err = ERR_NOT_FOUND;
        snprintf(j->errmsg, sizeof j->errmsg, "no DLQ entry %lld", (long long)j->id);
        return 0;
    }
    int rc = 0;
    if (j->op == DLQ_DROP) {
        if (strcmp(e.status, "resolved") == 0) {
            j->status = 409;
            j->err = ERR_CONFLICT;
            snprintf(j->errmsg, sizeof j->errmsg,
                     "entry %lld is resolved; only open entries can be dropped", (long long)j->id);
        } else {
            if (strcmp(e.status, "dropped") != 0) {
                e.updated_ms = clock_wall_ms();
                rc = store_dlq_set(st, e.id, "dropped", e.attempts, NULL, NULL, e.updated_ms);
                snprintf(e.status, sizeof e.status, "dropped");
            }
            j->status = 200;
        }
    } else if (strcmp(e.status, "open") != 0) {
        j->status = 409;
        j->err = ERR_CONFLICT;
        snprintf(j->errmsg, sizeof j->errmsg, "entry %lld is %s; only open entries can be retried",
                 (long long)j->id, e.status);
    } else {
        rc = retry_entry(j, st, &e) < 0 ? -1 : 0;
        j->status = 200;
    }
    if (rc == 0 && j->status == 200 && !(j->result = dlq_item_json(&e)))
        rc = -1; /* out of memory */
    dlq_entry_release(&e);
    return rc;
}

#define BULK_PAGE 200

static int bulk(struct dlq_job *j, struct store *st)
{
    struct dlq_filter f = {.dataset = j->dataset,
                           .error_code = j->error_code,
                           .status = "open",
                           .ids = j->ids,
                           .nids = j->nids,
                           .received_after_ms = j->since_ms,
                           .received_before_ms = j->until_ms,
                           .after_id = j->after_id,
                           .limit = BULK_PAGE};
    struct dlq_entry *v;
    size_t n;
    j->matched = j->resolved = j->still_open = j->nsample = 0;
    if (store_dlq_list(st, &f, &v, &n) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0 && j->op == DLQ_DROP_BULK; i++) {
        rc = store_dlq_set(st, v[i].id, "dropped", v[i].attempts, NULL, NULL, clock_wall_ms());
        j->matched++;
        if (j->nsample < DLQ_SAMPLE)
            j->sample[j->nsample++] = v[i].id;
        j->after_id = v[i].id;
    }
    for (size_t i = 0; i < n && rc == 0 && j->op == DLQ_RETRY_BULK; i++) {
        int r = retry_entry(j, st, &v[i]);
        if (r < 0)
            rc = -1;
        j->matched++;
        if (r == 1)
            j->resolved++;
        else
            j->still_open++;
        j->after_id = v[i].id;
    }
    j->more = n == BULK_PAGE;
    for (size_t i = 0; i < n; i++)
        dlq_entry_release(&v[i]);
    free(v);
    return rc;
}

int dlq_apply(struct wjob *job, struct store *st)
{
    struct dlq_job *j = (struct dlq_job *)job;
    json_decref(j->result);
    j->result = NULL;
    return j->op == DLQ_RETRY_BULK || j->op == DLQ_DROP_BULK ? bulk(j, st) : single(j, st);
}

void dlq_job_release(struct dlq_job *j)
{
    json_decref(j->result);
    free(j->dataset);
    free(j->error_code);
    free(j->ids);
    j->result = NULL;
    j->dataset = j->error_code = NULL;
    j->ids = NULL;
}
