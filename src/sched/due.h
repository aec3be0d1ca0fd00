/*
 * due.h - which scheduled times of a job are run now, and how: the pure part of the
 * scheduler (no store, no thread, no clock of its own), so that the catch-up rules are
 * stated and tested once (tests/unit/test_sched_due.c).
 *
 * A job's times are cron_next() over its zone (cron/cron.h, the DST rule there). The
 * scheduler remembers the last time it dealt with (last_due, in job_state); at each tick
 * the times in (last_due, now] are due:
 *  - a time no older than the job's grace is a regular run (trigger "schedule");
 *  - older times were missed (the scheduler was away: downtime, a pause, the host's clock
 *    set forward) and are made up by the job's catchup policy, as trigger "catchup":
 *    none: no run; latest: the latest missed time; all: each missed time, oldest first,
 *    at most max_catchup_runs (the latest ones); with catchup_window, only missed times
 *    that recent count;
 *  - last_due becomes now's latest time, whatever was run: a time is dealt with once.
 * A clock set back is no case here: nothing is due until now passes last_due again, so a
 * time is never run twice. A changed expression is the caller's (last_due = now on load).
 */
#ifndef SLUICE_SCHED_DUE_H
#define SLUICE_SCHED_DUE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct due_run {
    int64_t at_ms; /* the scheduled time */
    int catchup;   /* 1: made up (trigger "catchup"), 0: on time ("schedule") */
};

/* The runs of job j due at now_ms after last_due_ms, oldest first, into out (room for cap).
 * Returns how many, sets *new_last_due_ms (last_due_ms when nothing was due) and *missed
 * (the missed times, run or not). When out is full, the call ends at the last run it
 * returned: *new_last_due_ms is that run's time and the later times are left for the next
 * call (several on-time runs within a long grace may need more than one call). */
size_t sched_due(const struct job_config *j, int64_t last_due_ms, int64_t now_ms,
                 struct due_run *out, size_t cap, int64_t *new_last_due_ms, int64_t *missed);

/* The first scheduled time of j strictly after after_ms (ms), or -1. */
int64_t sched_next_ms(const struct job_config *j, int64_t after_ms);

#endif
