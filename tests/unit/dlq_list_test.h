/*
 * dlq_list_test.h - a DLQ list case the store tests of both backends share (test_store.c,
 * test_store_pg_core.c): newest first from the start and after a cursor, the received time
 * range, and dlq_count. The including file defines dlq_add(dataset, codes, row, ms) and
 * expect_ids(filter, ids, n, what) on its own store first.
 */
#ifndef SLUICE_TESTS_DLQ_LIST_TEST_H
#define SLUICE_TESTS_DLQ_LIST_TEST_H

#include <criterion/criterion.h>

#include "store/store.h"

static void dlq_desc_range_count(struct store *st)
{
    int64_t a = dlq_add("judgments", ",INVALID_TYPE,", 1, 1000);
    int64_t b = dlq_add("events", ",INVALID_TYPE,", 2, 1001);
    int64_t c = dlq_add("judgments", ",TOO_LONG,", 3, 1002);
    int64_t d = dlq_add("judgments", ",INVALID_TYPE,", 4, 1003);
    struct dlq_filter f = {.desc = 1, .limit = 100};
    expect_ids(&f, (int64_t[]){d, c, b, a}, 4, "desc from the start");
    f = (struct dlq_filter){.desc = 1, .after_id = c, .limit = 100};
    expect_ids(&f, (int64_t[]){b, a}, 2, "desc after a cursor: the ids below it");
    f = (struct dlq_filter){.desc = 1, .after_id = d, .dataset = "judgments", .limit = 1};
    expect_ids(&f, (int64_t[]){c}, 1, "desc with a filter and a limit");
    f = (struct dlq_filter){.received_after_ms = 1001, .received_before_ms = 1003, .limit = 100};
    expect_ids(&f, (int64_t[]){b, c}, 2, "since <= received < until");
    f = (struct dlq_filter){.desc = 1, .received_after_ms = 1001, .limit = 100};
    expect_ids(&f, (int64_t[]){d, c, b}, 3, "since, desc");

    int64_t n = -1;
    f = (struct dlq_filter){.error_code = "INVALID_TYPE", .limit = 1};
    cr_assert_eq(store_dlq_count(st, &f, &n), 0, "%s", store_errmsg(st));
    cr_expect_eq(n, 3, "count ignores the limit");
    f = (struct dlq_filter){.dataset = "judgments", .received_before_ms = 1003, .desc = 1};
    cr_assert_eq(store_dlq_count(st, &f, &n), 0, "%s", store_errmsg(st));
    cr_expect_eq(n, 2, "count with a dataset and a time range, either order");
}

#endif
