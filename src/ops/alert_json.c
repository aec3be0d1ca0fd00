/*
 * alert_json.c - an alert as the API's JSON (alert_json.h).
 */
#include "ops/alert_json.h"

#include "util/clock.h"

static json_t *ms_json(int64_t ms)
{
    char t[32];
    return ms ? json_string(clock_rfc3339(ms, t, sizeof t)) : json_null();
}

static json_t *parsed(const char *txt)
{
    json_t *j = txt ? json_loads(txt, 0, NULL) : NULL;
    return j ? j : json_null();
}

json_t *alert_json(const struct alert *a)
{
    return json_pack("{s:I,s:s,s:s,s:o,s:s,s:o,s:s,s:o,s:o,s:o,s:o,s:i}", "id", (json_int_t)a->id,
                     "rule", a->rule, "severity", a->severity, "labels", parsed(a->labels_json),
                     "summary", a->summary, "details", parsed(a->details_json), "state", a->state,
                     "started_at", ms_json(a->started_ms), "updated_at", ms_json(a->updated_ms),
                     "resolved_at", ms_json(a->resolved_ms), "last_notified_at",
                     ms_json(a->last_notified_ms), "notifications", a->notifications);
}

json_t *alert_json_history(const struct alert *a, const struct alert_history *h, size_t n)
{
    json_t *j = alert_json(a), *hist = json_array();
    for (size_t i = 0; hist && i < n; i++)
        json_array_append_new(hist, json_pack("{s:o,s:s,s:s?}", "at", ms_json(h[i].at_ms), "event",
                                              h[i].event, "detail", h[i].detail));
    if (!j || !hist) {
        json_decref(j);
        json_decref(hist);
        return NULL;
    }
    if (json_object_set_new(j, "history", hist) < 0) { /* takes hist either way */
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *alert_list_json(const struct alert *a, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, alert_json(&a[i]));
    return arr;
}
