/*
 * test_latency.c - the recent-latency ring behind the sentinel's ingest_latency
 * rule (src/ops/latency.h): quantiles from bucket bounds, and nothing when idle.
 */
#include <criterion/criterion.h>

#include "ops/latency.h"

Test(latency, quantiles_from_buckets)
{
    uint64_t n = 99;
    /* nothing noted yet in this process: no answer */
    cr_expect_eq(latency_quantile_ms(0.95, 300, &n), -1);
    cr_expect_eq(n, 0);
    for (int i = 0; i < 90; i++)
        latency_note(0.003); /* 3 ms: the 5 ms bucket */
    for (int i = 0; i < 10; i++)
        latency_note(0.8); /* 800 ms: the 1000 ms bucket */
    cr_expect_eq(latency_quantile_ms(0.5, 300, &n), 5);
    cr_expect_eq(n, 100);
    cr_expect_eq(latency_quantile_ms(0.9, 300, &n), 5);
    cr_expect_eq(latency_quantile_ms(0.95, 300, &n), 1000, "p95 with 10%% slow requests");
    latency_note(120.0); /* beyond the last bound */
    cr_expect_gt(latency_quantile_ms(1.0, 300, &n), 60000);
}
