/*
 * test_store_pg_conn.c - the PostgreSQL backend's connection (store_pg_conn.c)
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

#include "store/pg_internal.h"
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
