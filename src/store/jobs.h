/*
 * jobs.h - the scheduler's history in the store (included by store.h, the only door; the
 * operations are in store.h's ops table): the structs of the tables job_runs (one row per
 * run: a scheduled time and attempt of a job, or a manual trigger) and job_state (per job:
 * paused, the last scheduled time dealt with, the expression then in force).
 *
 * A run's life: queued -> running -> succeeded | failed | canceled, or added as skipped;
 * a queued run can be canceled directly; a running one whose lease ends without a renewal
 * becomes failed ("node lost", job_runs_lost). UNIQUE (job, scheduled_ms, attempt) and
 * UNIQUE (job, idem_key) decide which of two nodes (or requests) adds a run: the other
 * gets 1 and the existing id from job_run_add. Times are milliseconds since the epoch.
 *
 * Who calls: the scheduler (src/sched/), its writes on the writer thread (SQLite: the one
 * write connection); its reads, and the API's, on any connection of their own. On
 * PostgreSQL several nodes run these at once: each operation is one statement (or one
 * transaction) that is right under concurrency.
 */
#ifndef SLUICE_STORE_JOBS_H
#define SLUICE_STORE_JOBS_H

#include <stddef.h>
#include <stdint.h>

/* A run to add (job_run_add); all borrowed. */
struct job_run_new {
    const char *job;
    int64_t scheduled_ms; /* the scheduled time; for a manual trigger, the trigger's time */
    int attempt;          /* 1, then 2... for retries of the same scheduled time */
    const char *trigger;  /* schedule | manual | catchup | retry */
    const char *state;    /* queued | skipped (a skipped run is ended at created_ms) */
    const char *reason;   /* why skipped; NULL: none */
    const char *idem_key; /* the Idempotency-Key of a manual trigger; NULL: none */
    int64_t created_ms;
};

/* A stored run. Strings owned (job_run_release; job_runs_free for an array). */
struct job_run {
    int64_t id;
    char *job;
    int64_t scheduled_ms;
    int attempt;
    char trigger[12]; /* schedule | manual | catchup | retry */
    char state[12];   /* queued | running | succeeded | failed | skipped | canceled */
    char *reason;     /* why skipped / canceled, "node lost"; NULL: none */
    char *node;       /* the node that ran it; NULL: not started */
    char *error;      /* NULL: none */
    char *idem_key;   /* NULL: none */
    int64_t created_ms, started_ms, ended_ms, lease_until_ms; /* 0: not set */
    int64_t items;        /* rows or items handled; -1: not recorded */
    int cancel_requested; /* 1: a cancel asked while it ran (job_run_cancel) */
};
/* For the backends (store.c): whether state is one job_run_add takes (queued, skipped) / one
 * job_run_finish ends a run in (succeeded, failed, canceled); NULL is neither. */
int job_run_state_new(const char *state);
int job_run_state_end(const char *state);
void job_run_release(struct job_run *r);         /* accepts NULL */
void job_runs_free(struct job_run *v, size_t n); /* each run and the array; accepts NULL */

/* job_runs_list: newest (highest id) first; NULL / 0 = any. */
struct job_run_filter {
    const char *job, *state, *trigger;
    int64_t before_id; /* keyset: ids below it; 0 = from the newest */
    int limit;         /* at most this many; 0 = 100 */
};

/* job_last: what the API, the metric sluice_job_last_success_timestamp_seconds and the
 * sentinel rule job_failing read about a job. */
struct job_last {
    struct job_run last;     /* the newest run (highest id), whatever its state */
    int64_t last_success_ms; /* ended_ms of the newest succeeded run; 0: none */
    /* failed runs newer than the newest succeeded one (all of them when none succeeded):
     * skipped and canceled runs neither count nor end the streak */
    int64_t failures;
};

/* A job's scheduler state (table job_state). Strings borrowed by job_state_put; owned in
 * what job_state_get fills (job_state_release). */
struct job_state {
    char *job;
    int paused;          /* 0 / 1 */
    int64_t last_due_ms; /* the last scheduled time the scheduler has dealt with */
    char *cron;          /* the expression in force when last_due_ms was set; NULL: none */
    int64_t updated_ms;
};
void job_state_release(struct job_state *s); /* accepts NULL */

#endif
