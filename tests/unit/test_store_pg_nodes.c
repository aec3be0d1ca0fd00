/*
 * test_store_pg_nodes.c - what several nodes on one PostgreSQL share: a
 * singleton role is held by one connection at a time and moves when its holder
 * goes away. Runs when SLUICE_TEST_PG names a database (make unit-pg).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/pg/pg_internal.h"

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
    store_close(a); /* the holder dies: its session ends, on the server a moment later */
    int moved = 0;
    for (int i = 0; i < 100 && !moved; i++)
        if (!(moved = store_singleton(b, "test-role") == 1))
            usleep(50 * 1000);
    cr_expect(moved, "the role moves");
    store_close(b);
}

/* The listening connection (batch workers' wake-ups) comes back by itself after its session
 * is gone (a database restart, a terminated backend), listens again and says so once. */
Test(pg_nodes, wait_work_listens_again_after_its_session_ends)
{
    if (!getenv("SLUICE_TEST_PG"))
        cr_skip_test("SLUICE_TEST_PG is not set");
    char err[256], sql[96];
    struct store *l = pg_open(getenv("SLUICE_TEST_PG"), 0, err, sizeof err);
    struct store *n = pg_open(getenv("SLUICE_TEST_PG"), 0, err, sizeof err);
    cr_assert(l && n, "%s", err);
    cr_expect_eq(store_wait_work(l, 100), 1, "listening now: look for work once");
    cr_assert_eq(pg_cmd(PG(n), "notify", "NOTIFY sluice_batches", 0, NULL), 0, "%s",
                 store_errmsg(n));
    cr_expect_eq(store_wait_work(l, 5000), 1, "a notification wakes it");
    cr_expect_eq(store_wait_work(l, 100), 0, "and only once");

    int old = PQbackendPID(PG(l)->conn);
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", old);
    cr_assert_eq(pg_cmd(PG(n), "kill", sql, 0, NULL), 0, "%s", store_errmsg(n));
    int woke = 0;
    for (int i = 0; i < 50 && !woke; i++)
        woke = store_wait_work(l, 100) == 1;
    cr_expect(woke, "no new LISTEN after the session ended");
    cr_expect_neq(PQbackendPID(PG(l)->conn), old, "the same session?");
    cr_assert_eq(pg_cmd(PG(n), "notify", "NOTIFY sluice_batches", 0, NULL), 0, "%s",
                 store_errmsg(n));
    cr_expect_eq(store_wait_work(l, 5000), 1, "notifications reach the new session");
    store_close(l);
    store_close(n);
}
