/*
 * latency.h - recent ingest latencies for the sentinel's ingest_latency rule:
 * a ring of 10-second slots, each a histogram with fixed bucket bounds, so a
 * percentile over the last minutes costs a few hundred additions and no
 * allocation, whatever the request rate.
 */
#ifndef SLUICE_OPS_LATENCY_H
#define SLUICE_OPS_LATENCY_H

#include <stdint.h>

/* One ingest request answered after seconds (any thread). */
void latency_note(double seconds);
/* The q-quantile (0.95) in milliseconds over the last window_s seconds (at most 600), as the
 * upper bound of its bucket; -1 when there was no request. *count gets how many. */
double latency_quantile_ms(double q, int window_s, uint64_t *count);

#endif
