/*
 * sentinel.h - the rules that notice trouble: stuck batches, error rates,
 * DLQ growth, slow ingest, stalled sources, an unavailable store, a full disk,
 * failing WAL checkpoints (SQLite, server only), scheduled jobs that keep failing or whose
 * due runs did not start (job_failing, job_missed: read from the store's run history and
 * job_state, store/jobs.h).
 *
 * sentinel_evaluate() reads the store (a read connection) and returns a report
 *   {"status": "ok|warning|critical", "checked_at", "findings": [{"rule",
 *    "severity", "summary", "labels", "details"}], "undecided": [{"rule", "labels"}]}
 * "undecided" lists the rules (labels {}: all their alerts) that cannot decide yet: after a
 * start, a rule whose window is not in the store decides only once it has seen a whole
 * window; their alerts neither fire nor resolve meanwhile.
 * The server runs it every sentinel.interval_s on its own thread and turns the
 * findings into alerts (alerts.h); `sluice sentinel` runs it once (or in a loop)
 * against the same store.
 */
#ifndef SLUICE_OPS_SENTINEL_H
#define SLUICE_OPS_SENTINEL_H

#include <jansson.h>
#include <stdint.h>

struct sluice_config;
struct store;
struct writer;
struct catalog_source;

struct sentinel_input {
    const struct sluice_config *cfg;
    struct store *st; /* NULL or failing: store_unavailable */
    int64_t now_ms;
    int64_t started_ms;      /* when watching began (see "undecided") */
    int with_latency;        /* the server: ingest latency (latency.h) and checkpoints are known */
    const char *server_down; /* the CLI: why the server's /health/ready failed, else NULL */
};

/* The report (new reference). */
json_t *sentinel_evaluate(const struct sentinel_input *in);
/* 0 ok, 1 warning, 2 critical: the report's status as an exit code. */
int sentinel_exit_code(const json_t *report);

/* The server's sentinel thread: evaluates, then hands the findings to the alerts (writer
 * jobs). writer, catalogs and store_uri are borrowed until sentinel_stop(); started_ms is
 * when watching began. NULL when the thread could not be made. */
struct sentinel;
struct sentinel *sentinel_start(struct writer *writer, struct catalog_source *catalogs,
                                const char *store_uri, int64_t started_ms);
void sentinel_stop(struct sentinel *s); /* accepts NULL */
/* Whether this node holds the sentinel's role (one node at a time on a shared database). */
int sentinel_is_leader(void);
/* When it last ran (ms since the epoch, 0 = never), for the metrics. */
int64_t sentinel_last_run_ms(void);

#endif
