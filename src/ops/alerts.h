/*
 * alerts.h - findings become alerts with a lifecycle (firing → resolved),
 * stored with their history, and notifications routed to receivers, delivered
 * at least once.
 *
 * alerts_submit() queues one writer job per sentinel evaluation: inside the
 * transaction it opens an alert for each new finding (identified by its rule
 * and labels), refreshes the firing ones, resolves those no finding matches
 * (except those of a rule that could not decide yet: the report's "undecided"),
 * and puts what to notify into the outbox (table alert_outbox), one row per
 * alert event and receiver: a new alert once, again alerts.repeat_interval_s
 * after its last delivery, its resolution once. Alertmanager receivers also
 * get every firing alert at every evaluation, from memory (so Alertmanager
 * never expires it; a lost refresh is sent again at the next evaluation).
 *
 * The notifier thread reads the outbox (its own read connection) at least every
 * second and when kicked; on the node that runs the sentinel (alerts_set_leader:
 * on PostgreSQL one node at a time) it POSTs each due row with libcurl. A row
 * stays in the outbox until its receiver answers 2xx; a writer job then deletes
 * it and counts it on its alert (notifications, last_notified_ms), or, on a
 * failure, records the attempt and the next try (alerts.retry_initial_s,
 * doubling, at most alerts.retry_max_s). A receiver gets an alert's rows one
 * at a time in order (the firing before the resolution). So a notification
 * survives a receiver that is down, a restart, kill -9 and, on PostgreSQL,
 * the death of the node that held the role; it may arrive twice (when the
 * outcome of a 2xx could not be recorded), never not at all while its
 * receiver is configured. Nothing here blocks ingestion.
 */
#ifndef SLUICE_OPS_ALERTS_H
#define SLUICE_OPS_ALERTS_H

#include <jansson.h>
#include <stdint.h>

struct writer;
struct catalog;
struct catalog_source;
struct buf;

/* Record a sentinel report's findings as alerts, in a writer job that holds its own
 * reference to cat. */
void alerts_submit(struct writer *writer, struct catalog *cat, const json_t *report,
                   int64_t now_ms);

/* The notifier thread. writer, catalogs and store_uri are borrowed until
 * alerts_notifier_stop(), which must come before the writer stops (the notifier submits
 * writer jobs). */
void alerts_notifier_start(struct writer *writer, struct catalog_source *catalogs,
                           const char *store_uri);
void alerts_notifier_stop(void);
/* Whether this node holds the sentinel's role, as the sentinel found at its last run
 * (sentinel.c calls it each run; 0 until then): only then does the notifier deliver. Any
 * thread. */
void alerts_set_leader(int leader);

/* For /metrics: alerts firing by severity, deliveries and failed attempts by receiver, the
 * outbox's pending rows and the age of the oldest. */
void alerts_metrics(struct buf *out);

#endif
