/*
 * batch_json.c - the API's view of a batch, and where an upload is spooled.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "batch/batch.h"
#include "util/clock.h"
#include "util/sweep.h"

#define SPOOL_SUFFIX ".csv.part"

void batch_spool_path(const char *data_dir, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/batches/%s" SPOOL_SUFFIX, data_dir, id);
}

int batch_spool_sweep(const char *data_dir, int64_t before_ms)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/batches", data_dir);
    return dir_sweep(dir, SPOOL_SUFFIX, before_ms);
}

int batch_status_active(const char *status)
{
    static const char *active[] = {"staging", "validating", "transforming", "inserting",
                                   "upserting"};
    for (size_t i = 0; i < sizeof active / sizeof active[0]; i++)
        if (strcmp(status, active[i]) == 0)
            return 1;
    return 0;
}

static json_t *time_or_null(int64_t ms)
{
    char t[32];
    return ms ? json_string(clock_rfc3339(ms, t, sizeof t)) : json_null();
}

json_t *batch_json(const struct batch *b, json_t *history)
{
    json_t *j = json_pack(
        "{s:s,s:s,s:s?,s:s?,s:I,s:s,s:s,s:s?,s:f,s:I,s:I,s:I,s:I,s:i,s:s?}", "batch_id", b->id,
        "dataset", b->dataset, "source", b->source, "filename", b->filename, "bytes",
        (json_int_t)b->bytes, "sha256", b->sha256 ? b->sha256 : "", "status", b->status,
        "rejection_reason", b->rejection_reason, "error_threshold_percent",
        b->error_threshold_percent, "row_count_total", (json_int_t)b->total, "row_count_inserted",
        (json_int_t)b->inserted, "row_count_invalid", (json_int_t)b->invalid, "row_count_duplicate",
        (json_int_t)b->duplicate, "attempts", b->attempts, "worker", b->worker);
    /* A failed batch stores nothing: its rows without an error are "discarded", so that
     * total = inserted + invalid + duplicate + discarded in every state (docs/api.md). */
    int64_t rest = b->total - b->inserted - b->invalid - b->duplicate;
    json_object_set_new(j, "row_count_discarded",
                        json_integer(strcmp(b->status, "failed") == 0 && rest > 0 ? rest : 0));
    json_object_set_new(j, "created_at", time_or_null(b->created_ms));
    json_object_set_new(j, "updated_at", time_or_null(b->updated_ms));
    json_object_set_new(j, "started_at", time_or_null(b->started_ms));
    json_object_set_new(j, "finished_at", time_or_null(b->finished_ms));
    json_object_set_new(j, "heartbeat_at", time_or_null(b->heartbeat_ms));
    if (history) {
        size_t i;
        json_t *e;
        json_array_foreach(history, i, e)
        {
            json_t *ms = json_object_get(e, "at_ms");
            json_object_set_new(e, "at", time_or_null(json_integer_value(ms)));
            json_object_del(e, "at_ms");
        }
        json_object_set(j, "history", history);
    }
    return j;
}
