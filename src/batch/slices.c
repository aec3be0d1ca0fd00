/*
 * slices.c - a pass in slices, where the store can show a batch at once although it was
 * written in many transactions (store_sliced_passes: SQLite, whose one writer would
 * otherwise hold every push for as long as the batch takes).
 *
 * The worker reads and validates the file as in a pass in one transaction (process.c,
 * pass_produce); the rows go through the row queue to a thread of the pass, the slicer,
 * which stores them as a series of ordinary writer jobs, each queued behind the pushes
 * that came meanwhile and committed with them:
 *   hide      the batch joins batch_pending: from here no reader sees a row of it (those
 *             of an earlier attempt or of a completed batch being processed again vanish
 *             at once);
 *   drop      earlier attempts' rows, DROP_ROWS at a time;
 *   clear     what else they left (row errors, DLQ entries, rollups);
 *   rows      the slices: what the queue holds, until the writer has other jobs waiting
 *             and the slice has run SLICE_MIN_NS (1 ms), or SLICE_MAX_NS (100 ms); each
 *             one checks first that the batch is still this worker's and still being
 *             processed (an operator may fail it meanwhile) and renews the lease every
 *             third of it;
 *   end       the threshold; under it the counts, the rollups, `completed` and the
 *             publication (batch_pending left, DLQ entries moved in) in ONE job, so a
 *             reader sees none of the rows before its COMMIT and all of them after;
 *   failed    over it: the rows dropped again, then the counts and `failed` (the row
 *             errors were recorded by the slices, so the file is not read again);
 *   saved     after `end`: what the store kept to show readers meanwhile (SQLite: the rows
 *             an upsert batch updated in place, as they were) dropped, DROP_ROWS per job.
 * Dropping the rows of a batch still hidden (an earlier attempt's, one over the threshold
 * or failed by an operator) first puts back the rows it replaced, as readers saw them.
 * A crash or a shutdown anywhere leaves the batch hidden and in its state: the reclaim
 * takes it up again and the hide/drop/clear steps start it over.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "batch/batch.h"
#include "batch/pass_internal.h"
#include "batch/process.h"
#include "batch/rowqueue.h"
#include "util/clock.h"
#include "writer/writer.h"

#define SLICE_CHUNKS 16                 /* the rows the worker may read ahead */
#define SLICE_READY 8                   /* full chunks before a slice is queued */
#define SLICE_MIN_NS (1 * 1000000ull)   /* a slice yields to waiting jobs after this */
#define SLICE_MAX_NS (100 * 1000000ull) /* and ends after this even if none wait */
/* While other jobs come in (one was queued in the last SLICE_TRAFFIC_NS), a slice ends after
 * SLICE_BUSY_NS even if none waits right now: its COMMIT (an fsync of what it wrote) is what
 * the next push waits for, and it grows with the slice. */
#define SLICE_BUSY_NS (SLICE_BUSY_MS * 1000000ull)
#ifndef SLICE_BUSY_MS
#define SLICE_BUSY_MS 5
#endif
#define SLICE_TRAFFIC_NS (500 * 1000000ull)
#define DROP_ROWS 20000 /* rows removed per job */

enum step { ST_HIDE, ST_DROP, ST_CLEAR, ST_ROWS, ST_END, ST_FAILED, ST_DISCARD, ST_SAVED };

struct slice_job {
    struct wjob job;
    struct pass *p;
    enum step step;
    int64_t n; /* ST_DROP, ST_SAVED: rows removed */
    int ended; /* ST_ROWS: no row is left to come */
};

static int store_error(struct pass *p, struct store *st)
{
    if (!p->job_reason[0])
        snprintf(p->job_reason, sizeof p->job_reason, "the store failed: %s", store_errmsg(st));
    p->store_failed = store_conn_lost(st) || store_busy(st);
    return -1;
}

/* Whether the batch is still this worker's and being processed; renews the lease when a
 * third of it has gone. -1 on a store failure. */
static int still_ours(struct pass *p, struct store *st)
{
    struct batch cur;
    int rc = store_batch_get(st, p->b->id, &cur);
    if (rc < 0)
        return store_error(p, st);
    int ours = rc == 0 && cur.worker && p->b->worker && !strcmp(cur.worker, p->b->worker) &&
               batch_status_active(cur.status);
    /* deleted or finished by an operator: its rows go; sent back or taken over by another
     * worker: they are someone else's to redo, left as they are */
    int final =
        rc == 1 || (!ours && (!strcmp(cur.status, "failed") || !strcmp(cur.status, "completed")));
    if (!ours) {
        snprintf(p->job_reason, sizeof p->job_reason, "the batch was %s while it was stored",
                 rc == 1 ? "deleted"
                 : final ? cur.status
                         : "taken by another worker");
        if (final)
            p->changed = 1;
        else
            p->lost = 1;
    }
    if (rc == 0)
        batch_release(&cur);
    int64_t now = clock_wall_ms(), lease = p->lease_ms ? p->lease_ms : 60000;
    if (ours && now - p->last_beat_ms >= lease / 3) {
        if (store_batch_heartbeat(st, p->b->id, p->b->worker, now, lease) < 0)
            return store_error(p, st);
        p->last_beat_ms = now;
    }
    return ours;
}

/* ST_ROWS: store what the queue holds (see the top of the file). */
static int slice_rows(struct slice_job *j, struct store *st)
{
    struct pass *p = j->p;
    int ours = still_ours(p, st);
    if (ours <= 0)
        return ours; /* changed: nothing stored here; the slicer stops */
    struct row_meta m = {p->b->id, p->b->source ? p->b->source : "upload", p->received_at,
                         p->b->id};
    uint64_t t0 = clock_mono_ns();
    for (;;) {
        struct rq_chunk *c = rowqueue_try_take(p->rq, &j->ended);
        if (!c)
            return 0;
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < c->n; i++) {
            p->total++;
            rc = pass_store_one(p, &c->rows[i], &m);
        }
        rowqueue_give_back(p->rq, c);
        if (rc < 0)
            return store_error(p, st);
        uint64_t now = clock_mono_ns(), ran = now - t0;
        if (ran >= SLICE_MAX_NS || (ran >= SLICE_MIN_NS && writer_queue_depth(p->writer) > 0))
            return 0;
        if (ran >= SLICE_BUSY_NS && now - writer_traffic_ns(p->writer) < SLICE_TRAFFIC_NS)
            return 0;
    }
}

/* ST_END: the threshold, then (under it) the counts, `completed` and the publication. */
static int slice_end(struct pass *p, struct store *st)
{
    double pct = p->total ? 100.0 * (double)p->invalid / (double)p->total : 0;
    if (pct > p->b->error_threshold_percent) {
        p->over_threshold = 1;
        snprintf(p->job_reason, sizeof p->job_reason, "Error rate %.1f%% > %.1f%% threshold", pct,
                 p->b->error_threshold_percent);
        return 0; /* nothing written: the rows go, then ST_FAILED */
    }
    int ours = still_ours(p, st);
    if (ours <= 0)
        return ours;
    p->b->total = p->total;
    p->b->invalid = p->invalid;
    p->b->inserted = p->inserted;
    p->b->duplicate = p->duplicate;
    int64_t done = clock_wall_ms();
    if (store_batch_set_counts(st, p->b) < 0 || pass_add_rollup(p, 0, done) < 0 ||
        store_batch_set_status(st, p->b->id, "completed", NULL, done) < 0 ||
        store_batch_publish(st, p->b->id, 1) < 0)
        return store_error(p, st);
    return 0;
}

/* ST_FAILED: over the threshold, its rows dropped: the counts and `failed`. */
static int slice_failed(struct pass *p, struct store *st)
{
    p->b->total = p->total;
    p->b->invalid = p->invalid;
    p->b->inserted = 0;
    p->b->duplicate = 0;
    int64_t done = clock_wall_ms();
    if (store_batch_set_counts(st, p->b) < 0 || pass_add_rollup(p, 1, done) < 0 ||
        store_batch_set_status(st, p->b->id, "failed", p->job_reason, done) < 0 ||
        store_batch_publish(st, p->b->id, 0) < 0)
        return store_error(p, st);
    return 0;
}

static int slice_apply(struct wjob *job, struct store *st)
{
    struct slice_job *j = (struct slice_job *)job;
    struct pass *p = j->p;
    p->st = st;
    switch (j->step) {
    case ST_HIDE:
        p->now_ms = p->last_beat_ms = clock_wall_ms();
        clock_rfc3339(p->now_ms, p->received_at, sizeof p->received_at);
        p->total = p->invalid = p->inserted = p->duplicate = p->refused = 0;
        pass_codes_reset(p);
        return store_batch_hide(st, p->b->id) < 0 ? store_error(p, st) : 0;
    case ST_DROP:
        return store_batch_rows_drop(st, p->ds->name, p->b->id, DROP_ROWS, &j->n) < 0
                   ? store_error(p, st)
                   : 0;
    case ST_CLEAR:
        return store_batch_clear(st, p->ds->name, p->b->id, 0, NULL) < 0 ? store_error(p, st) : 0;
    case ST_ROWS:
        return slice_rows(j, st);
    case ST_END:
        return slice_end(p, st);
    case ST_FAILED:
        return slice_failed(p, st);
    case ST_SAVED:
        return store_batch_saved_drop(st, p->ds->name, p->b->id, DROP_ROWS, &j->n) < 0
                   ? store_error(p, st)
                   : 0;
    case ST_DISCARD: /* what it stored goes; its state is someone else's to say */
        return store_batch_clear(st, p->ds->name, p->b->id, 0, NULL) < 0 ||
                       store_batch_publish(st, p->b->id, 0) < 0
                   ? store_error(p, st)
                   : 0;
    }
    return -1;
}

/* One step as a writer job, waited for. 0, or -1 (p->job_reason, p->store_failed). */
static int run_step(struct pass *p, enum step step, int64_t *n, int *ended)
{
    struct slice_job j = {.job = {.nrows = step == ST_ROWS ? RQ_CHUNK_ROWS : 1,
                                  .apply = slice_apply,
                                  .background = 1}, /* it yields to pushes (SLICE_BUSY_NS) */
                          .p = p,
                          .step = step};
    int rc = writer_run(p->writer, &j.job);
    /* The job's work was done but its COMMIT failed, or may have committed; or it did not
     * run at all (the store is away). */
    if (rc == WRITER_UNKNOWN || (rc < 0 && j.job.applied == 0)) {
        p->store_failed = 1;
        if (!p->job_reason[0])
            snprintf(p->job_reason, sizeof p->job_reason, "the store failed");
    }
    if (n)
        *n = j.n;
    if (ended)
        *ended = j.ended;
    return rc < 0 ? -1 : 0;
}

/* Remove the batch's rows (ST_DROP), or what was kept for readers while it was hidden
 * (ST_SAVED), DROP_ROWS per job. */
static int drop_rows(struct pass *p, enum step step)
{
    int64_t n = DROP_ROWS;
    int rc = 0;
    while (rc == 0 && n >= DROP_ROWS)
        rc = run_step(p, step, &n, NULL);
    return rc;
}

/* The slicer: 0 stored and completed, 1 over the threshold (recorded as failed here), 2
 * changed meanwhile (left as the operator made it), -1 failed (p->job_reason). */
static int slicer(struct pass *p)
{
    if (run_step(p, ST_HIDE, NULL, NULL) < 0 || drop_rows(p, ST_DROP) < 0 ||
        run_step(p, ST_CLEAR, NULL, NULL) < 0)
        return -1;
    int ended = 0;
    while (!ended && !p->changed && !p->lost) {
        rowqueue_wait_ready(p->rq, SLICE_READY);
        if (run_step(p, ST_ROWS, NULL, &ended) < 0)
            return -1;
    }
    if (!p->changed && !p->lost && rowqueue_failed(p->rq))
        return -1; /* the worker's reason stands */
    if (!p->changed && !p->lost && run_step(p, ST_END, NULL, NULL) < 0)
        return -1;
    if (p->lost)
        return -1;
    if (p->over_threshold)
        return drop_rows(p, ST_DROP) < 0 || run_step(p, ST_FAILED, NULL, NULL) < 0 ? -1 : 1;
    if (p->changed)
        return drop_rows(p, ST_DROP) < 0 || run_step(p, ST_DISCARD, NULL, NULL) < 0 ? -1 : 2;
    /* published: the versions of rows it replaced are nobody's now. Left behind (a failure
     * here), they are invisible and go when the dataset is next synced. */
    p->job_reason[0] = '\0';
    drop_rows(p, ST_SAVED);
    p->store_failed = 0;
    p->job_reason[0] = '\0';
    return 0;
}

struct slicer_run {
    struct pass *p;
    int rc;
};

static void *slicer_main(void *arg)
{
    struct slicer_run *r = arg;
    pthread_setname_np(pthread_self(), "sl-slices");
    r->rc = slicer(r->p);
    rowqueue_abort(r->p->rq); /* the worker stops reading if it still is */
    return NULL;
}

int batch_pass_run_sliced(struct pass *p, struct writer *w)
{
    p->sliced = 1;
    p->writer = w;
    p->changed = 0;
    if (pass_stream_begin(p, SLICE_CHUNKS) < 0)
        return -1;
    struct slicer_run r = {p, -1};
    pthread_t t;
    if (pthread_create(&t, NULL, slicer_main, &r) != 0) {
        pass_no_memory(p);
        rowqueue_free(p->rq);
        p->rq = NULL;
        return -1;
    }
    pass_produce(p);
    pthread_join(t, NULL);
    int rc = r.rc;
    /* A pass that fails for good (not a shutdown, a lost lease or the store: those leave
     * the batch hidden, to be taken up again) takes back what it stored. */
    if (rc < 0 && !p->stopped && !p->lost && !p->store_failed && !p->changed)
        if (drop_rows(p, ST_DROP) < 0 || run_step(p, ST_DISCARD, NULL, NULL) < 0)
            p->store_failed = 1;
    rowqueue_free(p->rq);
    p->rq = NULL;
    if (rc != 0 && !p->reason[0])
        snprintf(p->reason, sizeof p->reason, "%s",
                 p->job_reason[0] ? p->job_reason : "the store failed");
    return rc;
}
