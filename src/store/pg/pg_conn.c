/*
 * pg_conn.c - the PostgreSQL backend's connection, its helpers and its
 * migrations (see pg_internal.h).
 */
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/hex.h"
#include "util/mem.h"

#define PG_CONNECT_TIMEOUT "5"

int pg_sqlstate_is_fault(const char *st)
{
    if (!st || strlen(st) != 5)
        return 0;
    return strncmp(st, "08", 2) == 0    /* connection exception */
           || strncmp(st, "53", 2) == 0 /* insufficient resources: disk full, memory */
           || strncmp(st, "58", 2) == 0 /* system error: I/O */
           || strncmp(st, "XX", 2) == 0 /* internal error: data or index corrupted */
           || strcmp(st, "25006") == 0  /* read-only transaction: a standby */
           || (strncmp(st, "57P0", 4) == 0 && st[4] >= '1' && st[4] <= '5'); /* shutdown */
}

int pg_result_fail(struct pg_store *s, const char *what, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    s->fault =
        state ? pg_sqlstate_is_fault(state) : !s->conn || PQstatus(s->conn) == CONNECTION_BAD;
    /* lock_not_available (lock_timeout), deadlock_detected, serialization_failure */
    s->busy =
        state && (!strcmp(state, "55P03") || !strcmp(state, "40P01") || !strcmp(state, "40001"));
    const char *m = r ? PQresultErrorMessage(r) : s->conn ? PQerrorMessage(s->conn) : "";
    if (!m || !*m)
        m = s->conn ? PQerrorMessage(s->conn) : "no connection";
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    snprintf(s->err, sizeof s->err, "%s: %.*s", what, (int)n, m);
    return -1;
}

/* The server's notices ("terminating connection due to immediate shutdown command") as log
 * lines, not as bare text on stderr between them. */
static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    char m[600];
    size_t n = strlen(message);
    while (n && (message[n - 1] == '\n' || message[n - 1] == ' '))
        n--;
    log_json_str(m, sizeof m, message, n);
    if (strncmp(message, "NOTICE", 6) == 0 || strncmp(message, "INFO", 4) == 0)
        log_info("store", "PostgreSQL says", "\"notice\":\"%s\"", m);
    else /* WARNING, or the FATAL that ends a session */
        log_warn("store", "PostgreSQL says", "\"notice\":\"%s\"", m);
}

/* The session's settings, on a new connection and again after every reconnect. */
static void pg_session(struct pg_store *s)
{
    /* Durability as the issue wants it: COMMIT returns after the WAL is flushed. */
    PQclear(PQexec(s->conn, "SET synchronous_commit = on"));
    if (s->readonly)
        PQclear(PQexec(s->conn, "SET default_transaction_read_only = on"));
    if (s->lock_wait_ms > 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "SET lock_timeout = %d", s->lock_wait_ms);
        PQclear(PQexec(s->conn, sql));
    }
    s->listening = 0; /* a new session listens to nothing yet */
}

int pg_reconnect(struct pg_store *s)
{
    /* Whatever a transaction of the old session had queued or noted went with it. */
    pg_copy_discard(s);
    pg_roll_drop_all(s);
    s->sp = PG_SP_NONE;
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK)
        return pg_fail(s, "reconnecting");
    pg_session(s);
    return 0;
}

int pg_fail(struct pg_store *s, const char *what)
{
    return pg_result_fail(s, what, NULL);
}

PGresult *pg_exec_bin(struct pg_store *s, const char *what, const char *sql, int n,
                      const char *const *params, const int *lengths, const int *formats,
                      int result_format)
{
    /* Rows queued for COPY go first: this statement may read them, end their job or their
     * transaction (pg_copy.c). */
    if (pg_copy_flush(s) < 0)
        return NULL;
    int idle = PQtransactionStatus(s->conn) == PQTRANS_IDLE ||
               PQtransactionStatus(s->conn) == PQTRANS_UNKNOWN;
    uint64_t t0 = s->readonly ? clock_mono_ns() : 0;
    PGresult *r = PQexecParams(s->conn, sql, n, NULL, params, lengths, formats, result_format);
    if (s->readonly) /* the query observer (store.h) */
        store_observe_query((double)(clock_mono_ns() - t0) / 1e9);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && idle && s->readonly &&
        PQstatus(s->conn) == CONNECTION_BAD) {
        /* A read connection lost between statements: the read is sent again once the
         * connection is back. Writes are never resent here (the first may have committed);
         * the writer reconnects at its next BEGIN. */
        PQclear(r);
        r = pg_reconnect(s) == 0
                ? PQexecParams(s->conn, sql, n, NULL, params, lengths, formats, result_format)
                : NULL;
        st = PQresultStatus(r);
    }
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    pg_result_fail(s, what, r);
    PQclear(r);
    return NULL;
}

PGresult *pg_exec(struct pg_store *s, const char *what, const char *sql, int n,
                  const char *const *params)
{
    return pg_exec_bin(s, what, sql, n, params, NULL, NULL, 0);
}

int pg_cmd(struct pg_store *s, const char *what, const char *sql, int n, const char *const *params)
{
    PGresult *r = pg_exec(s, what, sql, n, params);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

const char *pg_int(char *buf, int64_t v)
{
    snprintf(buf, 24, "%lld", (long long)v);
    return buf;
}

int64_t pg_get_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

char *pg_get_str(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : sl_strdup(PQgetvalue(r, row, col));
}

struct store *pg_open(const char *uri, int readonly, char *err, size_t errlen)
{
    struct pg_store *s = sl_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &store_pg_ops;
    s->readonly = readonly;
    s->conninfo = sl_strdup(uri);
    /* A database host that does not answer must not hold a thread for minutes at each
     * (re)connect: PG_CONNECT_TIMEOUT s unless the URL or PGCONNECT_TIMEOUT says otherwise.
     * And a host that vanishes (no RST: a VM gone, a network cut) is noticed on an idle
     * connection (the LISTEN one, a pooled one) within about a minute by TCP keepalives,
     * instead of the kernel's two hours. The URL's own parameters, expanded from dbname,
     * come later and win. */
    const char *const keys[] = {"connect_timeout",  "keepalives_idle", "keepalives_interval",
                                "keepalives_count", "dbname",          NULL};
    const char *const vals[] = {
        getenv("PGCONNECT_TIMEOUT") ? NULL : PG_CONNECT_TIMEOUT, "30", "10", "3", uri, NULL};
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conninfo || PQstatus(s->conn) != CONNECTION_OK) {
        const char *m = s->conn ? PQerrorMessage(s->conn) : "out of memory";
        size_t n = strlen(m);
        while (n && m[n - 1] == '\n')
            n--;
        snprintf(err, errlen, "cannot connect to PostgreSQL: %.*s", (int)n, m);
        PQfinish(s->conn);
        free(s->conninfo);
        free(s);
        return NULL;
    }
    PQsetNoticeProcessor(s->conn, pg_notice, NULL); /* kept across reconnects */
    pg_session(s);
    return &s->base;
}

void pg_close(struct store *st)
{
    struct pg_store *s = PG(st);
    pg_copy_free(s);
    PQfinish(s->conn);
    free(s->conninfo);
    free(s);
}

const char *pg_errmsg(struct store *st)
{
    return PG(st)->err;
}

/* Asked right after a failure, before anything reconnects: a session that ended under the
 * statement leaves the connection bad until then. */
int pg_schema_version(struct store *st, int *have, int *want)
{
    *want = pg_nmigrations;
    *have = 0;
    PGresult *r = pg_exec(PG(st), "schema version",
                          "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL);
    if (!r)
        return -1;
    *have = (int)pg_get_int(r, 0, 0);
    PQclear(r);
    return 0;
}

int pg_conn_lost(struct store *st)
{
    return !PG(st)->conn || PQstatus(PG(st)->conn) == CONNECTION_BAD;
}

int pg_fault(struct store *st)
{
    return PG(st)->fault;
}

int pg_busy(struct store *st)
{
    return PG(st)->busy;
}

int pg_lock_wait(struct store *st, int ms)
{
    struct pg_store *s = PG(st);
    char sql[64];
    s->lock_wait_ms = ms > 0 ? ms : 0;
    snprintf(sql, sizeof sql, "SET lock_timeout = %d", s->lock_wait_ms);
    return pg_cmd(s, "lock_timeout", sql, 0, NULL);
}

int pg_ping(struct store *st)
{
    struct pg_store *s = PG(st);
    /* reconnect; the caller retries later if it fails */
    if (PQstatus(s->conn) != CONNECTION_OK && pg_reconnect(s) < 0)
        return -1;
    return pg_cmd(s, "ping", "SELECT 1", 0, NULL);
}

/* A session-level advisory lock per role name: the node whose connection holds it has the
 * role; when that node dies its session ends and another node's next try takes it. */
int pg_singleton(struct store *st, const char *name)
{
    struct pg_store *s = PG(st);
    const char *p[1] = {name};
    PGresult *r = pg_exec(
        s, "singleton", "SELECT pg_try_advisory_lock(hashtextextended('sluice:' || $1, 0))", 1, p);
    if (!r)
        return -1;
    int held = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return held;
}

/* Whether notifications came (all are taken). */
static int drain(struct pg_store *s)
{
    PGnotify *n;
    int got = 0;
    while ((n = PQnotifies(s->conn))) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

/* LISTEN on this connection (again after a reconnect), then wait for a notification. While
 * the database is away this makes one attempt to reconnect per call and sleeps out the rest
 * of timeout_ms, so the caller's loop does not spin. */
int pg_wait_work(struct store *st, int timeout_ms)
{
    struct pg_store *s = PG(st);
    if (PQstatus(s->conn) != CONNECTION_OK && pg_reconnect(s) < 0)
        goto away;
    if (!s->listening) {
        if (pg_cmd(s, "listen", "LISTEN sluice_batches", 0, NULL) < 0)
            goto away;
        s->listening = 1;
        return 1; /* news sent while nobody listened is lost: have the workers look once */
    }
    struct pollfd pfd = {.fd = PQsocket(s->conn), .events = POLLIN};
    if (pfd.fd < 0 || !PQconsumeInput(s->conn))
        goto away; /* lost: the next call reconnects */
    if (drain(s))
        return 1;
    if (poll(&pfd, 1, timeout_ms) > 0 && !PQconsumeInput(s->conn))
        return 0; /* lost while waiting: the next call reconnects */
    return drain(s);
away:
    poll(NULL, 0, timeout_ms);
    return 0;
}

/* Several statements without parameters (a migration): PQexec, which allows them. */
static int pg_script(struct pg_store *s, const char *what, const char *sql)
{
    PGresult *r = PQexec(s->conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) {
        const char *m = PQresultErrorMessage(r);
        size_t len = strlen(m ? m : "");
        while (len && (m[len - 1] == '\n' || m[len - 1] == ' '))
            len--;
        snprintf(s->err, sizeof s->err, "%s: %.*s", what, (int)len, m ? m : "");
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/* Versioned migrations under an advisory lock, so nodes starting together do not race. */
int pg_migrate(struct store *st)
{
    struct pg_store *s = PG(st);
    const char *lock = "SELECT pg_advisory_lock(7415962301)";
    if (pg_cmd(s, "migrate lock", lock, 0, NULL) < 0)
        return -1;
    int rc = pg_cmd(s, "migrate",
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " applied_ms BIGINT NOT NULL)",
                    0, NULL);
    PGresult *r = rc == 0
                      ? pg_exec(s, "migrate",
                                "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL)
                      : NULL;
    int have = r ? (int)pg_get_int(r, 0, 0) : 0;
    PQclear(r);
    if (!r)
        rc = -1;
    for (int v = have; rc == 0 && v < pg_nmigrations; v++) {
        char ver[24];
        const char *p[1] = {pg_int(ver, v + 1)};
        rc = pg_cmd(s, "migrate", "BEGIN", 0, NULL);
        if (rc == 0)
            rc = pg_script(s, "migrate", pg_migrations[v]) < 0 ||
                         pg_cmd(s, "migrate",
                                "INSERT INTO schema_migrations VALUES ($1::int,"
                                " (extract(epoch from clock_timestamp()) * 1000)::bigint)",
                                1, p) < 0
                     ? -1
                     : pg_cmd(s, "migrate", "COMMIT", 0, NULL);
        if (rc < 0) {
            char keep[512];
            memcpy(keep, s->err, sizeof keep);
            PQclear(PQexec(s->conn, "ROLLBACK"));
            memcpy(s->err, keep, sizeof keep);
        }
    }
    if (rc == 0) { /* the API keys' pepper, made once here, never by SQL's random() */
        unsigned char pep[32];
        char hex[2 * 32 + 3] = "\\x";
        if (RAND_bytes(pep, sizeof pep) != 1) {
            rc = -1;
            snprintf(s->err, sizeof s->err, "migrate: no randomness for the key pepper");
        } else {
            hex_encode(pep, sizeof pep, hex + 2);
            const char *p[1] = {hex};
            rc = pg_cmd(s, "migrate",
                        "INSERT INTO settings VALUES ('api_key_pepper', $1::bytea)"
                        " ON CONFLICT (name) DO NOTHING",
                        1, p);
        }
    }
    PQclear(PQexec(s->conn, "SELECT pg_advisory_unlock(7415962301)"));
    return rc;
}
