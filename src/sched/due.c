/*
 * due.c - the times of a job due at a tick and the catch-up policy (due.h states the rules).
 * Two passes over the times in (last_due, now]: the first counts the missed times the
 * policy may make up, the second keeps the latest of them and the regular ones, so no
 * buffer grows with the length of the downtime. When out is full (more times within the
 * grace than cap leaves room for), the call ends at the last time it returned: the new
 * last_due and missed stop there, and the later times are the next call's, never dropped.
 */
#include "sched/due.h"

int64_t sched_next_ms(const struct job_config *j, int64_t after_ms)
{
    int64_t after_s = after_ms >= 0 ? after_ms / 1000 : -((-after_ms + 999) / 1000);
    int64_t t = cron_next(&j->schedule, j->tz, after_s);
    return t < 0 ? -1 : t * 1000;
}

/* Whether missed time t may be made up at all (catchup_window). */
static int eligible(const struct job_config *j, int64_t t, int64_t now_ms)
{
    return !j->catchup_window_ms || t >= now_ms - (int64_t)j->catchup_window_ms;
}

size_t sched_due(const struct job_config *j, int64_t last_due_ms, int64_t now_ms,
                 struct due_run *out, size_t cap, int64_t *new_last_due_ms, int64_t *missed)
{
    int64_t on_time_from = now_ms - (int64_t)j->grace_ms;
    int64_t n_eligible = 0, n_missed = 0, last = last_due_ms;
    for (int64_t t = sched_next_ms(j, last_due_ms); t >= 0 && t <= now_ms;
         t = sched_next_ms(j, t)) {
        last = t;
        if (t < on_time_from) {
            n_missed++;
            n_eligible += eligible(j, t, now_ms);
        }
    }
    *new_last_due_ms = last;
    *missed = n_missed;
    int64_t keep = 0; /* how many of the eligible missed times are run: the latest ones */
    if (j->catchup == JOB_CATCHUP_LATEST)
        keep = n_eligible > 0;
    else if (j->catchup == JOB_CATCHUP_ALL)
        keep = n_eligible < j->max_catchup_runs ? n_eligible : j->max_catchup_runs;
    size_t n = 0;
    int64_t seen = 0, before = last_due_ms, missed_before = 0;
    for (int64_t t = sched_next_ms(j, last_due_ms); t >= 0 && t <= now_ms;
         t = sched_next_ms(j, t)) {
        int run = t >= on_time_from || (eligible(j, t, now_ms) && ++seen > n_eligible - keep);
        if (run && n == cap) { /* out is full: t and later are left for the next call */
            *new_last_due_ms = before;
            *missed = missed_before;
            break;
        }
        if (run)
            out[n++] = (struct due_run){.at_ms = t, .catchup = t < on_time_from};
        before = t;
        missed_before += t < on_time_from;
    }
    return n;
}
