/*
 * sched_internal.h - private to src/sched/: the scheduler's writes as writer jobs
 * (sched_writes.c), which sched.c's thread and runners run with writer_run(). Each job is on
 * the caller's stack; everything it points to is borrowed for the call.
 */
#ifndef SLUICE_SCHED_SCHED_INTERNAL_H
#define SLUICE_SCHED_SCHED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "writer/writer.h"

/* A run to add. */
struct plan_add {
    const char *job; /* borrowed from the configuration */
    int64_t at_ms;
    int attempt;
    const char *trigger;
    int overlap_skip; /* the job's overlap is skip */
};
/* A job's new last_due (its paused flag is the stored one: the API owns it). */
struct plan_state {
    const char *job, *cron;
    int64_t last_due_ms;
};
struct plan_job {
    struct wjob job;
    struct plan_add *adds;
    size_t nadds;
    struct plan_state *states;
    size_t nstates;
    int64_t now_ms;
    size_t added, skipped;
};
/* The adds (overlap judged against the runs queued or running before the plan) and the
 * state rows (the stored paused flag kept). */
int plan_apply(struct wjob *wj, struct store *st);

/* Runs started, renewed, found lost or finished: one op per writer job. */
enum run_op { OP_START, OP_RENEW, OP_LOST, OP_FINISH, OP_CANCEL };
struct run_job {
    struct wjob job;
    enum run_op op;
    const char *node;
    int64_t now_ms, lease_until_ms;
    int64_t *ids;
    int *rcs; /* each id's result */
    size_t n;
    /* OP_LOST */
    struct job_run *lost;
    size_t nlost;
    /* OP_FINISH */
    const char *state, *error;
    int64_t items;
    const char *reason; /* OP_CANCEL */
};
int run_apply(struct wjob *wj, struct store *st);

#endif
