/*
 * kinds.h - what each job kind does when a run of it starts: one row per kind in kinds.c,
 * by the names config.h's config_job_kind_names gives (what a kind takes, its arguments,
 * is config/jobs.c's; tests/unit/test_sched_due.c checks that every name has a row here).
 *
 * A kind runs on a runner thread of the scheduler (sched.c), with the configuration in
 * force when the run started (the runner holds its catalog reference for the run). It
 * writes through the writer (writer_run: it may block), reads through ctx->st (the
 * runner's own connection, opened on first use), and checks run_should_stop() between
 * steps: a cancel or the job's timeout ends it early.
 */
#ifndef SLUICE_SCHED_KINDS_H
#define SLUICE_SCHED_KINDS_H

#include <stddef.h>
#include <stdint.h>

struct catalog;
struct sluice_config;
struct job_config;
struct writer;
struct store;

struct run_ctx {
    struct catalog *cat;             /* borrowed: the configuration in force at the start */
    const struct sluice_config *cfg; /* &cat->cfg */
    const struct job_config *job;    /* borrowed: in cfg */
    struct writer *writer;           /* borrowed */
    const char *store_uri;           /* borrowed */
    struct store **st;               /* the runner's read connection: *st NULL until opened */
    const int *cancel;               /* set (atomically) when the run is asked to stop */
    uint64_t deadline_ns;            /* clock_mono_ns() past which it times out; 0: none */
    int64_t items;                   /* rows or items handled; -1: none recorded */
    char error[512];                 /* why it failed */
};

/* Run the kind of ctx->job: 0 succeeded; -1 failed (ctx->error says why); 1 stopped by a
 * cancel or the timeout (ctx->error says which). */
int kind_run(struct run_ctx *ctx);
/* Whether the kind named name has an implementation (for the test). */
int kind_known(const char *name);

/* Prune job jc's history by its keep_* (a writer job): writer_run's result; *deleted runs. */
int sched_prune_job(struct writer *w, const struct job_config *jc, int64_t now_ms,
                    int64_t *deleted);

/* 0 go on; 1 the run was canceled or timed out (ctx->error set). */
int run_should_stop(struct run_ctx *ctx);
/* The runner's read connection, opened on first use; NULL with ctx->error set. */
struct store *run_store(struct run_ctx *ctx);

#endif
