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
 */
#ifndef SLUICE_INGEST_WRITER_H
#define SLUICE_INGEST_WRITER_H

#include <stddef.h>

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
};

#define WJOB_AGAIN 1

/* deliver()'s result when the connection was lost during the COMMIT: the job's changes
 * may be stored or not (PostgreSQL). An idempotent retry settles it. */
#define WRITER_UNKNOWN (-2)

/* Start the writer on the store opened at uri. Returns NULL with err set. */
struct writer *writer_start(const char *uri, int queue_max_jobs, int max_group_rows, char *err,
                            size_t errlen);
/* Queue a job. Returns 0, or -1 when the queue is full or the writer is stopping
 * (the job is not taken: the caller still owns it). */
int writer_submit(struct writer *w, struct wjob *job);
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
/* Jobs queued now, and the bound. */
int writer_queue_depth(struct writer *w);
int writer_queue_max(struct writer *w);
/* Whether the writer takes jobs: 0 while the store is away (for /health/ready). */
int writer_healthy(struct writer *w);
unsigned long long writer_commits(struct writer *w);
/* Finish every queued job, then stop and free. Accepts NULL. */
void writer_stop(struct writer *w);

#endif
