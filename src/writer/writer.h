/*
 * writer.h - the single writer thread and its group commit.
 *
 * Every change to the store goes through here as a job. The writer takes all
 * queued jobs (up to writer.max_group_rows rows), runs each one's apply() in
 * its own savepoint inside ONE transaction, commits (one fsync for the whole
 * group), and only then calls each job's deliver(). So a job's deliver() is
 * the moment its changes are durable, and the place to send a 2xx.
 *
 * The queue is bounded (writer.queue_max_jobs): writer_submit() refuses when
 * it is full, and the caller answers 503 instead of acknowledging from memory.
 *
 * When the store fails and does not answer a ping (the database is away), the
 * writer refuses every job at once (deliver(-1) without apply) and pings again
 * after 0.1 s, then 0.2 s, ... up to every 2 s; writer_healthy() is 0 until the
 * store answers again. A connection is reopened by the store itself.
 *
 * Commits failing (writer_health): when a group's BEGIN or COMMIT fails, commits
 * are "failing" until one succeeds. While the writer has no job it tries an empty
 * transaction (BEGIN, COMMIT) after 0.1 s, 0.2 s, ... up to every 2 s, so the state
 * clears without traffic; a try waits like any transaction (SQLite: the busy
 * timeout, 5 s), and a job that arrives meanwhile waits for it. /health/ready,
 * /health/db and sluice_store_up read this state, not only a query.
 * A job whose statements fail on a store fault (store.h fault: a full disk, an I/O
 * error, a read-only or corrupt store; not a constraint or a bad value, which are the
 * job's) counts the same: commits are failing and commit_failures grows by one, even when
 * the group's other jobs committed; a COMMIT that fails on one (rows sent only then, as
 * PostgreSQL's COPY) is held the same way. A lost connection is a fault too, but not held:
 * once the store answers, an empty transaction proves it back. A store that fails every
 * large write (a full disk)
 * may still take an empty transaction or a few rows, so such a state is cleared by a group
 * of at least as many rows (wjob.nrows) as the job that failed, committed with no job
 * failing on a fault, or by any commit 30 s (FAULT_HOLD_MS) after the last fault: without
 * traffic health turns green then, and red again at the next write that fails.
 *
 * THE CONTRACT, for every job kind (what its owner can rely on):
 *  - A job taken by writer_submit() / writer_submit_later() / writer_run() is
 *    handed back exactly once: deliver(job, result) (or writer_run()'s return),
 *    whatever happened. No job is dropped silently.
 *  - result 0 means committed (durable). result -1 means nothing of the job is
 *    stored; apply() may have run (it ran, then the COMMIT failed) or NOT run at
 *    all: the group's BEGIN failed, a savepoint failed, or the store is away.
 *    When apply() did not run, skip() (if set) runs first, then deliver(-1).
 *  - So an owner must not assume apply() ran: whatever apply() would have taken
 *    from the owner (records to store, ids to stamp) must stay the owner's until
 *    deliver(0), and go back to it on deliver(-1), to be retried. An owner that
 *    retries on its own uses writer_submit_later(), never a resubmit at once from
 *    deliver() (a store that fails at once would make that a busy loop).
 *  - WRITER_UNKNOWN: the changes may be stored or not; only an idempotent retry
 *    settles it.
 * Job kinds and what each does with -1: ingest, DLQ, batch operations, API keys
 * (HTTP requests): the client gets 503 and retries. Audit records and API-key
 * last-use stamps (audit.c): kept and retried later, bounded, drops counted.
 * Batch claims, status changes and passes (workers.c, process.c): nothing is
 * claimed or changed; the batch is claimed again (its lease). Schema sync,
 * idempotency and rollup purges (service.c): refused or retried at the next
 * minute. Alerts (alerts.c): evaluated again at the next sentinel run.
 */
#ifndef SLUICE_WRITER_WRITER_H
#define SLUICE_WRITER_WRITER_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct writer;

struct wjob {
    struct wjob *next; /* queue link, owned by the writer while queued */
    size_t nrows;      /* weight of the job for group sizing (>= 1) */
    /*
     * Runs on the writer thread inside the group's transaction. Returns 0, or
     * -1 to have this job's changes rolled back (the others still commit), or
     * WJOB_AGAIN to have them rolled back and apply() run once more: another
     * transaction committed something the job must see first (an idempotency
     * key, store.h idem_put); a second WJOB_AGAIN counts as -1.
     */
    int (*apply)(struct wjob *job, struct store *st);
    /*
     * Runs on the writer thread after the group's COMMIT returned (result 0)
     * or failed (result -1: nothing of the job is stored; WRITER_UNKNOWN: see
     * below). The job belongs to deliver() from here on.
     */
    void (*deliver)(struct wjob *job, int result);
    /*
     * Optional: runs on the writer thread, before deliver(-1), when apply() will not run
     * (the group could not begin, or the store is away). A job whose apply() consumes what
     * another thread produces stops that thread here.
     */
    void (*skip)(struct wjob *job);
    int applied; /* apply()'s result, set by the writer */
    /* 1: work that yields to the others (a batch's slice): queuing it is not traffic
     * (writer_traffic_ns), so that the slices can tell when pushes are coming in. */
    int background;
    uint64_t due_ns; /* writer_submit_later(): when it is queued, set by the writer */
};

#define WJOB_AGAIN 1

/* deliver()'s result when the connection was lost during the COMMIT: the job's changes
 * may be stored or not (PostgreSQL). An idempotent retry settles it. */
#define WRITER_UNKNOWN (-2)

/* How a writer runs. The writer knows no metrics registry (ops/ is above it): whoever starts
 * it and wants to observe it passes callbacks here (service.c passes ops/metrics's). */
struct writer_opts {
    int queue_max_jobs; /* writer.queue_max_jobs; <= 0: 1024 */
    int max_group_rows; /* writer.max_group_rows; <= 0: 50000 */
    int lock_wait_ms;   /* store.h lock_wait on the writer's connection; 0: none */
    /* Optional: called on the writer thread after each group's COMMIT returned, whatever it
     * returned, with how long the COMMIT took. Must be quick and thread-safe. */
    void (*commit_seconds)(double seconds);
};

/* Start the writer on the store opened at uri. Returns NULL with err set. */
struct writer *writer_start_opts(const char *uri, const struct writer_opts *opts, char *err,
                                 size_t errlen);
/* The same with no observer. */
struct writer *writer_start(const char *uri, int queue_max_jobs, int max_group_rows, char *err,
                            size_t errlen);
/* Queue a job. Returns 0, or -1 when the queue is full or the writer is stopping
 * (the job is not taken: the caller still owns it). */
int writer_submit(struct writer *w, struct wjob *job);
/* Queue a job after delay_ms (an owner's retry, see the contract above). Not bounded by
 * writer.queue_max_jobs: the owner bounds what it retries. Returns 0, or -1 when the
 * writer is stopping (the caller still owns the job). Jobs waiting for their time when
 * the writer stops are run then. Any thread, a job's deliver() included. */
int writer_submit_later(struct writer *w, struct wjob *job, unsigned delay_ms);
/* Queue a job and wait until it was delivered; returns the job's apply result
 * (or -1 if the commit failed, WRITER_UNKNOWN if its outcome is unknown). For admin
 * work off the HTTP loops. job->deliver must be NULL: the writer signals the waiter
 * instead. */
int writer_run(struct writer *w, struct wjob *job);
/* The same, calling meanwhile(arg) on the caller's thread once the job is queued: a job
 * whose apply() consumes what the caller produces (a batch's rows) runs this way, with a
 * skip() that makes meanwhile return when apply() will not run. meanwhile is not called
 * when the job cannot be queued. */
int writer_run_with(struct writer *w, struct wjob *job, void (*meanwhile)(void *arg), void *arg);
/* clock_mono_ns() when a job that is not background was last queued (0: never). */
uint64_t writer_traffic_ns(struct writer *w);
/* Jobs queued now, and the bound. */
int writer_queue_depth(struct writer *w);
int writer_queue_max(struct writer *w);
/* Whether the writer takes jobs: 0 while the store is away (for /health/ready). */
int writer_healthy(struct writer *w);
unsigned long long writer_commits(struct writer *w);
/* What the writer saw of its recent transactions, for health checks and metrics. */
struct writer_health {
    int store_answers;   /* writer_healthy() */
    int commits_failing; /* the last BEGIN or COMMIT failed, or a job's write failed on a
                          * store fault, and none committed since (see above) */
    unsigned long long commits, commit_failures; /* failed BEGINs, COMMITs and faulted groups */
    int64_t last_commit_ms, last_failure_ms;     /* wall clock, 0 = never */
    char last_error[256];                        /* of the last failure */
};
void writer_health(struct writer *w, struct writer_health *out);
/* Finish every queued job, then stop and free. Accepts NULL. */
void writer_stop(struct writer *w);

#endif
