/*
 * alerts.h - findings become alerts with a lifecycle (firing → resolved),
 * stored with their history, and notifications routed to receivers.
 *
 * alerts_submit() queues one writer job per sentinel evaluation: inside the
 * transaction it opens an alert for each new finding (identified by its rule
 * and labels), refreshes the firing ones, resolves those no finding matches,
 * and decides what to notify: a new alert once, again every
 * alerts.repeat_interval_s, its resolution once; Alertmanager receivers get
 * every firing alert at every evaluation (so Alertmanager never expires it) and
 * the resolution with endsAt. After the commit, the notifications go to the
 * notifier thread, which POSTs them with libcurl, retries with backoff, and
 * never blocks anything else.
 */
#ifndef SLUICE_OPS_ALERTS_H
#define SLUICE_OPS_ALERTS_H

#include <jansson.h>
#include <stdint.h>

struct service;
struct catalog;
struct buf;

void alerts_submit(struct service *svc, struct catalog *cat, const json_t *report, int64_t now_ms);

/* The notifier thread. */
void alerts_notifier_start(void);
void alerts_notifier_stop(void);

/* For /metrics: alerts firing by severity, deliveries and failures by receiver. */
void alerts_metrics(struct buf *out);

#endif
