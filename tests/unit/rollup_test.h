/*
 * rollup_test.h - what the store tests of both backends share about the rollups:
 * a rebuild as `sluice rollups rebuild` runs it, every chunk in a transaction of
 * its own (header-only; include after criterion.h and store/store.h).
 */
#ifndef SLUICE_TESTS_ROLLUP_TEST_H
#define SLUICE_TESTS_ROLLUP_TEST_H

#include <stdlib.h>

/* Rebuild every chunk of st; the number of chunks. */
static inline size_t rollup_test_rebuild(struct store *st)
{
    struct rollup_chunk *v;
    size_t n;
    cr_assert_eq(store_rollup_chunks(st, &v, &n), 0, "%s", store_errmsg(st));
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(store_begin(st), 0, "%s", store_errmsg(st));
        cr_assert_eq(store_rollup_rebuild(st, &v[i], 0), 0, "%s", store_errmsg(st));
        cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));
    }
    free(v);
    return n;
}

#endif
