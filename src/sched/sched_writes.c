/*
 * sched_writes.c - the scheduler's writes (sched_internal.h): a plan of due runs and job
 * states in one transaction, and the per-run operations (start, renew, lost, finish, cancel)
 * as writer jobs.
 */
#include "sched/sched_internal.h"

#include <stdio.h>
#include <string.h>

int plan_apply(struct wjob *wj, struct store *st)
{
    struct plan_job *p = (struct plan_job *)wj;
    p->added = p->skipped = 0;
    for (size_t i = 0; i < p->nadds; i++) {
        struct plan_add *a = &p->adds[i];
        char reason[96] = "";
        /* overlap: a run of the job queued or running before this plan (not one of its
         * own: the runs a catch-up makes up queue behind each other) */
        if (a->overlap_skip && (i == 0 || strcmp(p->adds[i - 1].job, a->job) != 0)) {
            struct job_run r;
            int rc = store_job_runs_active(st, a->job, &r);
            if (rc < 0)
                return -1;
            if (rc == 0) {
                snprintf(reason, sizeof reason, "overlap: run %lld is %s", (long long)r.id,
                         r.state);
                job_run_release(&r);
            }
        } else if (a->overlap_skip && i > 0 && p->adds[i - 1].overlap_skip == 2) {
            snprintf(reason, sizeof reason, "overlap: an earlier run is queued or running");
        }
        if (reason[0])
            a->overlap_skip = 2; /* the rest of this job's adds are skipped too */
        struct job_run_new n = {.job = a->job,
                                .scheduled_ms = a->at_ms,
                                .attempt = a->attempt,
                                .trigger = a->trigger,
                                .state = reason[0] ? "skipped" : "queued",
                                .reason = reason[0] ? reason : NULL,
                                .created_ms = p->now_ms};
        int64_t id;
        int rc = store_job_run_add(st, &n, &id);
        if (rc < 0)
            return -1;
        if (rc == 0)
            reason[0] ? p->skipped++ : p->added++;
    }
    for (size_t i = 0; i < p->nstates; i++) {
        struct job_state cur;
        int rc = store_job_state_get(st, p->states[i].job, &cur);
        if (rc < 0)
            return -1;
        struct job_state nw = {.job = (char *)p->states[i].job,
                               .paused = rc == 0 ? cur.paused : 0,
                               .last_due_ms = p->states[i].last_due_ms,
                               .cron = (char *)p->states[i].cron,
                               .updated_ms = p->now_ms};
        rc = store_job_state_put(st, &nw);
        job_state_release(&cur);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int run_apply(struct wjob *wj, struct store *st)
{
    struct run_job *j = (struct run_job *)wj;
    if (j->op == OP_LOST)
        return store_job_runs_lost(st, j->now_ms, &j->lost, &j->nlost) < 0 ? -1 : 0;
    for (size_t i = 0; i < j->n; i++) {
        int rc = 0;
        switch (j->op) {
        case OP_START:
            rc = store_job_run_start(st, j->ids[i], j->node, j->lease_until_ms, j->now_ms);
            break;
        case OP_RENEW:
            rc = store_job_run_renew(st, j->ids[i], j->node, j->lease_until_ms);
            break;
        case OP_FINISH:
            rc = store_job_run_finish(st, j->ids[i], j->node, j->state, j->items, j->error,
                                      j->now_ms);
            break;
        case OP_CANCEL:
            rc = store_job_run_cancel(st, j->ids[i], j->reason, j->now_ms);
            break;
        case OP_LOST:
            break;
        }
        if (rc < 0)
            return -1;
        j->rcs[i] = rc;
    }
    return 0;
}
