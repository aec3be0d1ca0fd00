/*
 * job_json.h - the API's JSON for jobs and runs (docs/api.md, Jobs): built here once, for the
 * HTTP handlers; every function returns a new reference (NULL when out of memory) and
 * borrows its arguments. Times are RFC 3339 UTC; a job's next runs also in its zone.
 */
#ifndef SLUICE_SCHED_JOB_JSON_H
#define SLUICE_SCHED_JOB_JSON_H

#include <jansson.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"

/* {"id", "job", "scheduled_at", "attempt", "trigger", "state", "reason", "node", "error",
 *  "items", "created_at", "started_at", "ended_at", "lease_until", "cancel_requested",
 *  "duration_ms"} */
json_t *job_run_json(const struct job_run *r);
/* [{"utc", "local"}] of the n times of jc strictly after after_ms. */
json_t *job_next_runs_json(const struct job_config *jc, int64_t after_ms, int n);
/* A job: its configuration, "paused" (st, may be NULL), "next_runs" (5), "last_run",
 * "last_success_at", "consecutive_failures" (last, may be NULL). */
json_t *job_json(const struct job_config *jc, const struct job_state *st,
                 const struct job_last *last, int64_t now_ms);

#endif
