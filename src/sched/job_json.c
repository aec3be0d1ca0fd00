/*
 * job_json.c - the API's JSON for a job and a run (job_json.h), built once here for the HTTP
 * handlers (and so for the CLI, which prints what the API answers), outside the backends.
 */
#include "sched/job_json.h"

#include <stdio.h>
#include <string.h>

#include "sched/due.h"
#include "util/clock.h"

static json_t *time_or_null(int64_t ms)
{
    char t[40];
    return ms ? json_string(clock_rfc3339(ms, t, sizeof t)) : json_null();
}

/* "2026-03-08T03:00:00-04:00": the instant in the job's zone, with its offset. */
static json_t *local_time(const struct tz *tz, int64_t ms)
{
    int off = tz_offset_at(tz, ms / 1000);
    char t[40], out[48];
    clock_rfc3339(ms + (int64_t)off * 1000, t, sizeof t); /* "...Z" of the wall time */
    size_t n = strlen(t);
    if (n && t[n - 1] == 'Z')
        t[n - 1] = 0;
    if (n > 4 && strcmp(t + strlen(t) - 4, ".000") == 0)
        t[strlen(t) - 4] = 0;
    int a = off < 0 ? -off : off;
    snprintf(out, sizeof out, "%s%c%02d:%02d", t, off < 0 ? '-' : '+', a / 3600, a % 3600 / 60);
    return json_string(out);
}

json_t *job_run_json(const struct job_run *r)
{
    json_t *j = json_pack(
        "{s:I,s:s,s:o,s:i,s:s,s:s,s:s?,s:s?,s:s?,s:o,s:o,s:o,s:o,s:b}", "id", (json_int_t)r->id,
        "job", r->job, "scheduled_at", time_or_null(r->scheduled_ms), "attempt", r->attempt,
        "trigger", r->trigger, "state", r->state, "reason", r->reason, "node", r->node, "error",
        r->error, "created_at", time_or_null(r->created_ms), "started_at",
        time_or_null(r->started_ms), "ended_at", time_or_null(r->ended_ms), "lease_until",
        time_or_null(r->lease_until_ms), "cancel_requested", r->cancel_requested);
    if (!j)
        return NULL;
    json_object_set_new(j, "items", r->items >= 0 ? json_integer(r->items) : json_null());
    json_object_set_new(j, "duration_ms",
                        r->started_ms && r->ended_ms ? json_integer(r->ended_ms - r->started_ms)
                                                     : json_null());
    return j;
}

json_t *job_next_runs_json(const struct job_config *jc, int64_t after_ms, int n)
{
    json_t *a = json_array();
    int64_t t = after_ms;
    for (int i = 0; i < n && a; i++) {
        if ((t = sched_next_ms(jc, t)) < 0)
            break;
        json_array_append_new(
            a, json_pack("{s:o,s:o}", "utc", time_or_null(t), "local", local_time(jc->tz, t)));
    }
    return a;
}

json_t *job_json(const struct job_config *jc, const struct job_state *st,
                 const struct job_last *last, int64_t now_ms)
{
    static const char *catchups[] = {"none", "latest", "all"};
    static const char *overlaps[] = {"skip", "queue"};
    json_t *j = json_pack(
        "{s:s,s:s,s:s,s:s,s:b,s:b,s:s,s:s,s:i,s:I,s:i,s:i,s:i,s:i}", "name", jc->name, "kind",
        config_job_kind_names[jc->kind], "cron", jc->cron, "timezone", jc->timezone, "enabled",
        jc->enabled, "paused", st ? st->paused : 0, "catchup", catchups[jc->catchup], "overlap",
        overlaps[jc->overlap], "max_catchup_runs", jc->max_catchup_runs, "timeout_ms",
        (json_int_t)jc->timeout_ms, "retries", jc->retries, "keep_runs", jc->keep_runs, "keep_days",
        jc->keep_days, "keep_failed_days", jc->keep_failed_days);
    if (!j)
        return NULL;
    /* the next times after now (or after the last one dealt with, if the clock is behind) */
    int64_t from = st && st->last_due_ms > now_ms ? st->last_due_ms : now_ms;
    json_object_set_new(j, "next_runs", job_next_runs_json(jc, from, 5));
    json_object_set_new(j, "last_run",
                        last && last->last.id ? job_run_json(&last->last) : json_null());
    json_object_set_new(j, "last_success_at", time_or_null(last ? last->last_success_ms : 0));
    json_object_set_new(j, "consecutive_failures", json_integer(last ? last->failures : 0));
    return j;
}
