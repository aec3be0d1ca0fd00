/*
 * test_store_pg_conn.c - the PostgreSQL backend's connection (pg_conn.c)
 * against a host that is there but never answers (a listening socket nobody
 * accepts on): the attempt is given up after the default connect timeout
 * (5 s) instead of holding the thread for as long as TCP would, and a
 * connect_timeout in the URL wins: needs no PostgreSQL server. TCP keepalives are
 * on by default: needs one (SLUICE_TEST_PG).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "store/pg/pg_internal.h"
#include "store/store.h"

static int silent_port(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(*fd, 0);
    cr_assert_eq(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(*fd, 8), 0);
    cr_assert_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* Seconds store_open() took to give up on uri (it must give up). */
static double open_fails_after(const char *uri)
{
    char err[512] = "";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct store *st = store_open(uri, 0, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_null(st, "connected to a socket that never answers");
    cr_expect(strstr(err, "timeout"), "%s", err);
    return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

Test(store_pg_conn, silent_host_given_up_after_the_connect_timeout)
{
    alarm(60); /* a hang fails the test instead of blocking `make unit` */
    unsetenv("PGCONNECT_TIMEOUT");
    int fd, port = silent_port(&fd);
    char uri[160];
    snprintf(uri, sizeof uri, "postgresql://u@127.0.0.1:%d/db?sslmode=disable", port);
    double s = open_fails_after(uri);
    cr_expect(s >= 4.5 && s < 15, "gave up after %.1f s, not the default 5 s", s);

    snprintf(uri, sizeof uri, "postgresql://u@127.0.0.1:%d/db?sslmode=disable&connect_timeout=2",
             port);
    s = open_fails_after(uri);
    cr_expect(s >= 1.5 && s < 4.5, "the URL's connect_timeout=2: gave up after %.1f s", s);
    close(fd);
}

/* The connection's option in use (PQconninfo), or "" (static buffer). */
static const char *option_of(struct store *st, const char *name)
{
    static char v[64];
    PQconninfoOption *o = PQconninfo(PG(st)->conn);
    v[0] = 0;
    for (PQconninfoOption *i = o; i && i->keyword; i++)
        if (!strcmp(i->keyword, name) && i->val)
            snprintf(v, sizeof v, "%s", i->val);
    PQconninfoFree(o);
    return v;
}

/* TCP keepalives by default (a host that vanishes is noticed on an idle connection in about a
 * minute); the URL's own settings win. Needs a server: SLUICE_TEST_PG. */
Test(pg_conn, keepalives_by_default_and_the_url_wins)
{
    const char *uri = getenv("SLUICE_TEST_PG");
    if (!uri)
        cr_skip_test("SLUICE_TEST_PG is not set");
    char err[512] = "", own[1024];
    struct store *st = pg_open(uri, 1, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    cr_expect_str_eq(option_of(st, "keepalives_idle"), "30");
    cr_expect_str_eq(option_of(st, "keepalives_interval"), "10");
    cr_expect_str_eq(option_of(st, "keepalives_count"), "3");
    pg_close(st);
    if (!strncmp(uri, "postgres", 8)) /* a URL: one more query parameter */
        snprintf(own, sizeof own, "%s%skeepalives_idle=7", uri, strchr(uri, '?') ? "&" : "?");
    else /* a conninfo string */
        snprintf(own, sizeof own, "%s%skeepalives_idle=7", uri, *uri ? " " : "");
    st = pg_open(own, 1, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    cr_expect_str_eq(option_of(st, "keepalives_idle"), "7");
    pg_close(st);
}

/* store_fault (store.h) on PostgreSQL: the SQLSTATE classes of a store that cannot write
 * are faults, a row's constraint or bad value is not. */
Test(pg_conn, fault_classifies_sqlstates)
{
    const char *faults[] = {"53100", "53200", "53300", "58030", "25006", "57P01",
                            "57P02", "57P03", "08006", "08003", "XX001", "XX000"};
    const char *not_faults[] = {"23505", "23502", "23503", "22P02", "22003", "42P01", "40001",
                                "40P01", "57014", "57P06", "25P02", "",      "5310"};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        cr_expect(pg_sqlstate_is_fault(faults[i]), "%s", faults[i]);
    for (size_t i = 0; i < sizeof not_faults / sizeof not_faults[0]; i++)
        cr_expect_not(pg_sqlstate_is_fault(not_faults[i]), "%s", not_faults[i]);
    cr_expect_not(pg_sqlstate_is_fault(NULL));
}

static int cmd(struct store *st, const char *sql)
{
    return pg_cmd(PG(st), "test", sql, 0, NULL);
}

/* Real errors: a key conflict is the data's; a write in a read-only transaction (a
 * standby, default_transaction_read_only) and a session ended by the server are faults. */
Test(pg_conn, fault_after_real_errors)
{
    const char *uri = getenv("SLUICE_TEST_PG");
    if (!uri)
        cr_skip_test("SLUICE_TEST_PG is not set");
    char err[512] = "";
    struct store *st = pg_open(uri, 0, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    /* not a temporary table: a read-only transaction may write those */
    cr_assert_eq(cmd(st, "DROP TABLE IF EXISTS fault_probe"), 0, "%s", pg_errmsg(st));
    cr_assert_eq(cmd(st, "CREATE TABLE fault_probe (k int PRIMARY KEY)"), 0, "%s", pg_errmsg(st));
    cr_assert_eq(cmd(st, "INSERT INTO fault_probe VALUES (1)"), 0);
    cr_expect_eq(cmd(st, "INSERT INTO fault_probe VALUES (1)"), -1);
    cr_expect_not(store_fault(st), "a key conflict: %s", pg_errmsg(st));
    cr_expect_eq(cmd(st, "INSERT INTO fault_probe VALUES ('x')"), -1);
    cr_expect_not(store_fault(st), "a bad value: %s", pg_errmsg(st));

    /* BEGIN succeeds in a read-only session; the INSERT fails with 25006 */
    cr_assert_eq(cmd(st, "SET default_transaction_read_only = on"), 0);
    cr_assert_eq(store_begin(st), 0, "%s", pg_errmsg(st));
    cr_expect_not(store_fault(st));
    cr_expect_eq(cmd(st, "INSERT INTO fault_probe VALUES (2)"), -1);
    cr_expect(strstr(pg_errmsg(st), "read-only") != NULL, "%s", pg_errmsg(st));
    cr_expect(store_fault(st), "a read-only transaction: %s", pg_errmsg(st));
    cr_assert_eq(store_rollback(st), 0, "%s", pg_errmsg(st));
    cr_assert_eq(store_begin(st), 0, "%s", pg_errmsg(st));
    cr_expect_not(store_fault(st), "begin forgets the class");
    cr_assert_eq(store_rollback(st), 0);

    /* the server ends the session (an admin, a failover): 57P01 or the connection lost */
    struct store *admin = pg_open(uri, 0, err, sizeof err);
    cr_assert_not_null(admin, "%s", err);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(PG(st)->conn));
    cr_assert_eq(cmd(admin, sql), 0, "%s", pg_errmsg(admin));
    cr_assert_eq(cmd(admin, "DROP TABLE fault_probe"), 0, "%s", pg_errmsg(admin));
    pg_close(admin);
    usleep(200 * 1000);
    cr_expect_eq(cmd(st, "SELECT 1"), -1);
    cr_expect(store_fault(st), "the session was ended: %s", pg_errmsg(st));
    pg_close(st);
}
