/*
 * alert_json.h - the API's view of an alert (GET /api/v1/alerts and /alerts/{id}), built
 * here once from the structs every backend returns (store.h alert_list, alert_get).
 */
#ifndef SLUICE_OPS_ALERT_JSON_H
#define SLUICE_OPS_ALERT_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "store/store.h"

/* {id, rule, severity, labels, summary, details, state, started_at, updated_at,
 * resolved_at, last_notified_at, notifications}, in that order: labels and details parsed
 * (null when absent or not JSON), times RFC 3339 (null when 0). A new reference; NULL when
 * out of memory. */
json_t *alert_json(const struct alert *a);
/* The same with "history": [{at, event, detail}] (detail null when none) last. */
json_t *alert_json_history(const struct alert *a, const struct alert_history *h, size_t n);
/* An array of alert_json of a[0..n). */
json_t *alert_list_json(const struct alert *a, size_t n);

#endif
