/*
 * pg_test.h - what the PostgreSQL store tests share (test_store_pg_*.c): an empty,
 * migrated schema of the test's own on the server SLUICE_TEST_PG names (a conninfo or
 * URL; "" = the PG* environment), and SQL run on a store's connection to check what it
 * wrote. Criterion runs a binary's tests in parallel, so the schema is held by an advisory
 * lock until the connection that made it closes. Every test is skipped without a server.
 */
#ifndef SLUICE_TESTS_PG_TEST_H
#define SLUICE_TESTS_PG_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/pg/pg_internal.h"

/* Run sql on x's connection; the test fails unless it succeeds. */
static inline void pg_test_exec(struct store *x, const char *sql)
{
    PGresult *r = PQexec(PG(x)->conn, sql);
    ExecStatusType s = PQresultStatus(r);
    cr_assert(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(r));
    PQclear(r);
}

/* The first column of the first row of sql as an integer; -999 when no row or NULL. */
static inline int64_t pg_test_int(struct store *x, const char *sql)
{
    PGresult *r = PQexec(PG(x)->conn, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    int64_t v =
        PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -999;
    PQclear(r);
    return v;
}

/* A connection to the server whose statements go to schema (which must exist). */
static inline struct store *pg_test_connect(const char *schema)
{
    const char *uri = getenv("SLUICE_TEST_PG");
    if (!uri)
        cr_skip_test("SLUICE_TEST_PG is not set");
    char err[512] = "", sql[128];
    struct store *x = pg_open(uri, 0, err, sizeof err);
    cr_assert_not_null(x, "pg_open: %s", err);
    pg_test_exec(x, "SET client_min_messages = warning");
    snprintf(sql, sizeof sql, "SET search_path TO %s", schema);
    pg_test_exec(x, sql);
    return x;
}

/* A connection to schema made anew (dropped, created, migrated) while it holds lock. */
static inline struct store *pg_test_fresh(const char *schema, long long lock)
{
    struct store *x = pg_test_connect("public");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", lock);
    pg_test_exec(x, sql);
    snprintf(sql, sizeof sql,
             "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; SET search_path TO %s", schema,
             schema, schema);
    pg_test_exec(x, sql);
    cr_assert_eq(pg_migrate(x), 0, "migrate: %s", pg_errmsg(x));
    return x;
}

#endif
