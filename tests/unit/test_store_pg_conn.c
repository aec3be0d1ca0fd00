/*
 * test_store_pg_conn.c - the PostgreSQL backend's connection (store_pg_conn.c)
 * against a host that is there but never answers (a listening socket nobody
 * accepts on): the attempt is given up after the default connect timeout
 * (5 s) instead of holding the thread for as long as TCP would, and a
 * connect_timeout in the URL wins. Needs no PostgreSQL server.
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
