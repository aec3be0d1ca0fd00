/*
 * test_store_pg_nodes.c - what several nodes on one PostgreSQL share: a
 * singleton role is held by one connection at a time and moves when its holder
 * goes away. Runs when SLUICE_TEST_PG names a database (make unit-pg).
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "store/pg_internal.h"

static struct store *node(void)
{
    char err[256];
    struct store *st = pg_open(getenv("SLUICE_TEST_PG"), 1, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    return st;
}

Test(pg_nodes, singleton_moves_when_its_holder_dies)
{
    if (!getenv("SLUICE_TEST_PG"))
        cr_skip_test("SLUICE_TEST_PG is not set");
    struct store *a = node(), *b = node();
    cr_expect_eq(store_singleton(a, "test-role"), 1, "the first node takes the role");
    cr_expect_eq(store_singleton(a, "test-role"), 1, "and keeps it");
    cr_expect_eq(store_singleton(b, "test-role"), 0, "the second waits");
    cr_expect_eq(store_singleton(b, "another-role"), 1, "roles are independent");
    store_close(a); /* the holder dies: its session ends */
    cr_expect_eq(store_singleton(b, "test-role"), 1, "the role moves");
    store_close(b);
}
