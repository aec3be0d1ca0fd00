/*
 * sched.h - the scheduler: runs the configuration's jobs (config.h jobs) at their times,
 * records every run in the store (store/jobs.h: job_runs, job_state), and runs what the API
 * queues (a manual trigger is a queued run row; the scheduler starts it).
 *
 * One thread ("sl-sched") ticks: at each tick it adds the runs that are due (due.h: the
 * catch-up rules), starts queued runs up to scheduler.max_running on runner threads, renews
 * the leases of its running runs, fails the runs whose node died (job_runs_lost) and retries
 * failed runs as their job says. It sleeps until the next due time, a lease renewal or a
 * retry, at most SCHED_TICK_MAX_MS, and wakes at once on sched_wake (a trigger, a reload).
 *
 * One node at a time runs it: the role is the store's singleton "scheduler" (PostgreSQL: an
 * advisory lock held by the scheduler's own connection, as the sentinel's; SQLite: the one
 * process). A node that lost the role starts no run after its next tick (the fencing check
 * before each start), and UNIQUE (job, scheduled time, attempt) in job_runs makes a run added
 * twice impossible even while two nodes both think they lead.
 *
 * Writes go through the writer (writer_run, from the scheduler's and the runners' threads);
 * reads through the scheduler's own connection. Every function here is thread-safe.
 */
#ifndef SLUICE_SCHED_SCHED_H
#define SLUICE_SCHED_SCHED_H

#include <stdint.h>

struct writer;
struct catalog_source;

/* The longest the scheduler sleeps: its heartbeat (last tick), its leadership check and
 * the time a wall-clock jump is noticed within. /health/scheduler is 503 after two. */
#define SCHED_TICK_MAX_MS 10000

struct sched;
/* Start the scheduler thread. writer, catalogs and store_uri are borrowed until
 * sched_stop(); node names this node in runs ("host:port"). NULL when it could not start. */
struct sched *sched_start(struct writer *writer, struct catalog_source *catalogs,
                          const char *store_uri, const char *node);
/* Stop: no new run starts; running runs are asked to stop (their kind's cancel check) and
 * waited for, then recorded as canceled ("shutdown") if they did not end. Accepts NULL. */
void sched_stop(struct sched *s);
/* Tick now (a run was queued, the configuration changed). Accepts NULL. */
void sched_wake(struct sched *s);

/* What /health/scheduler and the metrics read. */
struct sched_status {
    int running;          /* the thread runs on this node */
    int leader;           /* this node holds the scheduler's role */
    int64_t last_tick_ms; /* wall clock of its last tick, 0: none yet */
    int runs_active;      /* runs running on this node */
    char node[128];
};
void sched_status(const struct sched *s, struct sched_status *out); /* s NULL: zeros */

struct buf;
/* Append the scheduler's metrics (text format) to out: sluice_scheduler_last_tick_timestamp_
 * seconds, sluice_scheduler_leader, and per job sluice_job_runs_total{job,trigger,state},
 * sluice_job_run_duration_seconds, sluice_job_last_success_timestamp_seconds (what this
 * node ran since it started; the last success also from the store). s NULL: the two
 * scheduler gauges at 0. */
void sched_metrics(struct sched *s, struct buf *out);

#endif
