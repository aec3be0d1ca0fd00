/*
 * pg_jobs.c - the scheduler's history in PostgreSQL (tables job_runs and job_state, migration
 * 7 of pg_schema.c; the contracts are store.h's, the structs store/jobs.h's). Several nodes
 * run these at once, so each write is one statement that is right under concurrency: the
 * UNIQUE indexes decide which node adds a run (ON CONFLICT DO NOTHING, which waits for the
 * other transaction), and an UPDATE's WHERE, evaluated again on the row once its lock is
 * held, decides which node starts, ends or sweeps it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_internal.h"
#include "util/mem.h"

#define RUN_COLS                                                                                   \
    "id, job, scheduled_ms, attempt, \"trigger\", state, reason, node, created_ms, started_ms,"    \
    " ended_ms, lease_until_ms, items, error, idem_key, cancel_requested"

/* The states a run ends in, as an SQL list. */
#define ENDED "('succeeded', 'failed', 'skipped', 'canceled')"

/* Row i of a SELECT RUN_COLS in *r (strings owned); 0, or -1 out of memory (r released). */
static int read_run(const PGresult *res, int i, struct job_run *r)
{
    memset(r, 0, sizeof *r);
    int oom = 0;
#define STR(field, c)                                                                              \
    do {                                                                                           \
        r->field = pg_get_str(res, i, c);                                                          \
        oom |= !r->field && !PQgetisnull(res, i, c);                                               \
    } while (0)
    r->id = pg_get_int(res, i, 0);
    STR(job, 1);
    r->scheduled_ms = pg_get_int(res, i, 2);
    r->attempt = (int)pg_get_int(res, i, 3);
    snprintf(r->trigger, sizeof r->trigger, "%s", PQgetvalue(res, i, 4));
    snprintf(r->state, sizeof r->state, "%s", PQgetvalue(res, i, 5));
    STR(reason, 6);
    STR(node, 7);
    r->created_ms = pg_get_int(res, i, 8);
    r->started_ms = pg_get_int(res, i, 9);
    r->ended_ms = pg_get_int(res, i, 10);
    r->lease_until_ms = pg_get_int(res, i, 11);
    r->items = PQgetisnull(res, i, 12) ? -1 : pg_get_int(res, i, 12);
    STR(error, 13);
    STR(idem_key, 14);
    r->cancel_requested = (int)pg_get_int(res, i, 15);
#undef STR
    if (oom)
        job_run_release(r);
    return oom ? -1 : 0;
}

static int oom(struct pg_store *s, const char *what)
{
    snprintf(s->err, sizeof s->err, "%s: out of memory", what);
    s->fault = 0;
    return -1;
}

/* The first row of r (a SELECT RUN_COLS) in *out: 0, 1 = none, -1; clears r. */
static int read_one(struct pg_store *s, PGresult *r, struct job_run *out, const char *what)
{
    memset(out, 0, sizeof *out);
    if (!r)
        return -1;
    int rc = PQntuples(r) == 0 ? 1 : read_run(r, 0, out) < 0 ? oom(s, what) : 0;
    PQclear(r);
    return rc;
}

/* Every row of r (a SELECT RUN_COLS) in *out, *n of them; clears r. */
static int read_all(struct pg_store *s, PGresult *r, struct job_run **out, size_t *n,
                    const char *what)
{
    *out = NULL;
    *n = 0;
    if (!r)
        return -1;
    int rows = PQntuples(r), rc = 0;
    if (rows > 0 && !(*out = sl_calloc((size_t)rows, sizeof **out)))
        rc = oom(s, what);
    for (int i = 0; rc == 0 && i < rows; i++, (*n)++)
        if (read_run(r, i, &(*out)[i]) < 0)
            rc = oom(s, what);
    PQclear(r);
    if (rc < 0) {
        job_runs_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* What an UPDATE of one run that changed n rows (-1: failed) answers: 0 it did, 1 the run
 * was not in the state it asked for. */
static int one_run(int64_t n)
{
    return n < 0 ? -1 : n == 1 ? 0 : 1;
}

/* The rows an UPDATE or DELETE r changed (r cleared), or -1 when r is NULL. */
static int64_t changed(PGresult *r)
{
    if (!r)
        return -1;
    int64_t n = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return n;
}

int pg_job_run_add(struct store *st, const struct job_run_new *r, int64_t *id)
{
    struct pg_store *s = PG(st);
    int skipped = r->state && !strcmp(r->state, "skipped");
    if (!job_run_state_new(r->state)) {
        snprintf(s->err, sizeof s->err, "job run add: state '%s' (queued or skipped)",
                 r->state ? r->state : "");
        s->fault = 0;
        return -1;
    }
    char b[4][24];
    const char *p[9] = {r->job,
                        pg_int(b[0], r->scheduled_ms),
                        pg_int(b[1], r->attempt),
                        r->trigger,
                        r->state,
                        r->reason,
                        pg_int(b[2], r->created_ms),
                        skipped ? pg_int(b[3], r->created_ms) : NULL,
                        r->idem_key};
    /* The INSERT waits for a transaction that holds a conflicting row; once it returns
     * nothing, that row is committed, and the next statement (a new snapshot) sees it,
     * unless it was pruned meanwhile: then the insert is tried again. */
    for (int tries = 0; tries < 3; tries++) {
        PGresult *res = pg_exec(s, "job run add",
                                "INSERT INTO job_runs(job, scheduled_ms, attempt, \"trigger\","
                                " state, reason, created_ms, ended_ms, idem_key) VALUES ($1,"
                                " $2::bigint, $3::int, $4, $5, $6, $7::bigint, $8::bigint, $9)"
                                " ON CONFLICT DO NOTHING RETURNING id",
                                9, p);
        if (!res)
            return -1;
        int rows = PQntuples(res);
        if (rows == 1)
            *id = pg_get_int(res, 0, 0);
        PQclear(res);
        if (rows == 1)
            return 0;
        const char *k[4] = {r->job, p[1], p[2], r->idem_key};
        res = pg_exec(s, "job run add",
                      "SELECT id FROM job_runs WHERE job = $1 AND ((scheduled_ms = $2::bigint"
                      " AND attempt = $3::int) OR idem_key = $4) ORDER BY id LIMIT 1",
                      4, k);
        if (!res)
            return -1;
        rows = PQntuples(res);
        if (rows == 1)
            *id = pg_get_int(res, 0, 0);
        PQclear(res);
        if (rows == 1)
            return 1;
    }
    snprintf(s->err, sizeof s->err, "job run add: a conflict with no run to show for it");
    s->fault = 0;
    return -1;
}

int pg_job_run_start(struct store *st, int64_t id, const char *node, int64_t lease_until_ms,
                     int64_t now_ms)
{
    struct pg_store *s = PG(st);
    char b[3][24];
    const char *p[4] = {pg_int(b[0], id), node, pg_int(b[1], lease_until_ms), pg_int(b[2], now_ms)};
    return one_run(changed(pg_exec(s, "job run start",
                                   "UPDATE job_runs SET state = 'running', node = $2,"
                                   " lease_until_ms = $3::bigint, started_ms = $4::bigint"
                                   " WHERE id = $1::bigint AND state = 'queued'",
                                   4, p)));
}

int pg_job_run_renew(struct store *st, int64_t id, const char *node, int64_t lease_until_ms)
{
    struct pg_store *s = PG(st);
    char b[2][24];
    const char *p[3] = {pg_int(b[0], id), node, pg_int(b[1], lease_until_ms)};
    PGresult *r = pg_exec(s, "job run renew",
                          "UPDATE job_runs SET lease_until_ms = $3::bigint WHERE id = $1::bigint"
                          " AND state = 'running' AND node = $2 RETURNING cancel_requested",
                          3, p);
    if (!r)
        return -1;
    int rc = PQntuples(r) == 0 ? 1 : pg_get_int(r, 0, 0) ? 2 : 0;
    PQclear(r);
    return rc;
}

int pg_job_run_finish(struct store *st, int64_t id, const char *node, const char *state,
                      int64_t items, const char *error, int64_t now_ms)
{
    struct pg_store *s = PG(st);
    if (!job_run_state_end(state)) {
        snprintf(s->err, sizeof s->err, "job run finish: state '%s'", state ? state : "");
        s->fault = 0;
        return -1;
    }
    char b[3][24];
    const char *p[6] = {
        pg_int(b[0], id),    node, state, items >= 0 ? pg_int(b[1], items) : NULL, error,
        pg_int(b[2], now_ms)};
    return one_run(changed(pg_exec(s, "job run finish",
                                   "UPDATE job_runs SET state = $3, items = $4::bigint, error = $5,"
                                   " ended_ms = $6::bigint WHERE id = $1::bigint"
                                   " AND state = 'running' AND node = $2",
                                   6, p)));
}

int pg_job_run_cancel(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
    struct pg_store *s = PG(st);
    char b[2][24];
    const char *p[3] = {pg_int(b[0], id), reason, pg_int(b[1], now_ms)};
    /* SET reads the row as it was: a queued run ends, a running one is asked to stop */
    PGresult *r = pg_exec(
        s, "job run cancel",
        "UPDATE job_runs SET state = CASE state WHEN 'queued' THEN 'canceled' ELSE state END,"
        " ended_ms = CASE state WHEN 'queued' THEN $3::bigint ELSE ended_ms END,"
        " cancel_requested = CASE state WHEN 'running' THEN 1 ELSE cancel_requested END,"
        " reason = coalesce($2, reason) WHERE id = $1::bigint AND state IN ('queued', 'running')"
        " RETURNING state",
        3, p);
    if (!r)
        return -1;
    int rc = PQntuples(r) == 0 ? -1 : !strcmp(PQgetvalue(r, 0, 0), "running") ? 2 : 0;
    PQclear(r);
    if (rc >= 0)
        return rc;
    r = pg_exec(s, "job run cancel", "SELECT 1 FROM job_runs WHERE id = $1::bigint", 1, p);
    if (!r)
        return -1;
    rc = PQntuples(r) ? 1 : 3;
    PQclear(r);
    return rc;
}

int pg_job_run_get(struct store *st, int64_t id, struct job_run *out)
{
    struct pg_store *s = PG(st);
    char b[24];
    const char *p[1] = {pg_int(b, id)};
    return read_one(
        s, pg_exec(s, "job run", "SELECT " RUN_COLS " FROM job_runs WHERE id = $1::bigint", 1, p),
        out, "job run");
}

int pg_job_runs_list(struct store *st, const struct job_run_filter *f, struct job_run **out,
                     size_t *n)
{
    struct pg_store *s = PG(st);
    char b[2][24], sql[512], cond[160] = "";
    const char *p[5];
    int np = 0;
    size_t at = 0;
    p[np++] = pg_int(b[0], f->before_id > 0 ? f->before_id : INT64_MAX);
    p[np++] = pg_int(b[1], f->limit > 0 ? f->limit : 100);
    /* only the filters given, so that (job, id) serves a job's walk */
    if (f->job) {
        p[np++] = f->job;
        at += (size_t)snprintf(cond + at, sizeof cond - at, " AND job = $%d", np);
    }
    if (f->state) {
        p[np++] = f->state;
        at += (size_t)snprintf(cond + at, sizeof cond - at, " AND state = $%d", np);
    }
    if (f->trigger) {
        p[np++] = f->trigger;
        snprintf(cond + at, sizeof cond - at, " AND \"trigger\" = $%d", np);
    }
    snprintf(sql, sizeof sql,
             "SELECT " RUN_COLS " FROM job_runs WHERE id < $1::bigint%s ORDER BY id DESC"
             " LIMIT $2::bigint",
             cond);
    return read_all(s, pg_exec(s, "job runs", sql, np, p), out, n, "job runs");
}

int pg_job_runs_active(struct store *st, const char *job, struct job_run *out)
{
    struct pg_store *s = PG(st);
    const char *p[1] = {job};
    return read_one(s,
                    pg_exec(s, "job runs active",
                            "SELECT " RUN_COLS " FROM job_runs WHERE job = $1"
                            " AND state IN ('queued', 'running') ORDER BY id DESC LIMIT 1",
                            1, p),
                    out, "job runs active");
}

int pg_job_last(struct store *st, const char *job, struct job_last *out)
{
    struct pg_store *s = PG(st);
    const char *p[1] = {job};
    memset(out, 0, sizeof *out);
    int rc = read_one(s,
                      pg_exec(s, "job last",
                              "SELECT " RUN_COLS " FROM job_runs WHERE job = $1"
                              " ORDER BY id DESC LIMIT 1",
                              1, p),
                      &out->last, "job last");
    if (rc != 0)
        return rc;
    PGresult *r = pg_exec(s, "job last",
                          "SELECT (SELECT ended_ms FROM job_runs WHERE job = $1"
                          " AND state = 'succeeded' ORDER BY id DESC LIMIT 1),"
                          " (SELECT count(*) FROM job_runs WHERE job = $1 AND state = 'failed'"
                          " AND id > coalesce((SELECT max(id) FROM job_runs WHERE job = $1"
                          " AND state = 'succeeded'), 0))",
                          1, p);
    if (!r) {
        job_run_release(&out->last);
        return -1;
    }
    out->last_success_ms = pg_get_int(r, 0, 0);
    out->failures = pg_get_int(r, 0, 1);
    PQclear(r);
    return 0;
}

int pg_job_runs_lost(struct store *st, int64_t now_ms, struct job_run **out, size_t *n)
{
    struct pg_store *s = PG(st);
    char b[24];
    const char *p[1] = {pg_int(b, now_ms)};
    /* two nodes sweeping at once: the second waits for the first's row locks, finds the rows
     * no longer running, and returns none of them */
    return read_all(s,
                    pg_exec(s, "job runs lost",
                            "UPDATE job_runs SET state = 'failed', reason = 'node lost',"
                            " ended_ms = $1::bigint WHERE state = 'running'"
                            " AND lease_until_ms < $1::bigint RETURNING " RUN_COLS,
                            1, p),
                    out, n, "job runs lost");
}

int pg_job_runs_prune(struct store *st, const char *job, int keep_runs, int64_t keep_before_ms,
                      int64_t failed_keep_before_ms, int64_t *deleted)
{
    struct pg_store *s = PG(st);
    if (deleted)
        *deleted = 0;
    if (keep_runs <= 0 && keep_before_ms <= 0)
        return 0;
    char b[3][24];
    const char *p[4] = {job, pg_int(b[0], keep_runs > 0 ? keep_runs : 0),
                        pg_int(b[1], keep_before_ms), pg_int(b[2], failed_keep_before_ms)};
    /* ids below the keep_runs-th newest (none when there are not that many), by (job, id) */
    int64_t nd = changed(pg_exec(
        s, "job runs prune",
        "DELETE FROM job_runs WHERE job = $1 AND state IN " ENDED
        " AND id < (CASE WHEN $2::int > 0 THEN coalesce((SELECT id FROM job_runs WHERE job = $1"
        " ORDER BY id DESC LIMIT 1 OFFSET greatest($2::int - 1, 0)), 0)"
        " ELSE 9223372036854775807 END)"
        " AND (CASE WHEN state = 'failed' AND $4::bigint > 0 THEN ended_ms < $4::bigint"
        " WHEN $3::bigint > 0 THEN ended_ms < $3::bigint ELSE true END)",
        4, p));
    if (nd < 0)
        return -1;
    if (deleted)
        *deleted = nd;
    return 0;
}

int pg_job_state_get(struct store *st, const char *job, struct job_state *out)
{
    struct pg_store *s = PG(st);
    const char *p[1] = {job};
    memset(out, 0, sizeof *out);
    PGresult *r = pg_exec(s, "job state",
                          "SELECT job, paused, last_due_ms, cron, updated_ms FROM job_state"
                          " WHERE job = $1",
                          1, p);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    out->job = pg_get_str(r, 0, 0);
    out->paused = (int)pg_get_int(r, 0, 1);
    out->last_due_ms = pg_get_int(r, 0, 2);
    out->cron = pg_get_str(r, 0, 3);
    out->updated_ms = pg_get_int(r, 0, 4);
    int bad = !out->job || (!out->cron && !PQgetisnull(r, 0, 3));
    PQclear(r);
    if (bad) {
        job_state_release(out);
        return oom(s, "job state");
    }
    return 0;
}

int pg_job_state_put(struct store *st, const struct job_state *js)
{
    struct pg_store *s = PG(st);
    char b[3][24];
    const char *p[5] = {js->job, pg_int(b[0], js->paused ? 1 : 0), pg_int(b[1], js->last_due_ms),
                        js->cron, pg_int(b[2], js->updated_ms)};
    return pg_cmd(s, "job state put",
                  "INSERT INTO job_state(job, paused, last_due_ms, cron, updated_ms)"
                  " VALUES ($1, $2::int, $3::bigint, $4, $5::bigint) ON CONFLICT (job) DO UPDATE"
                  " SET paused = excluded.paused, last_due_ms = excluded.last_due_ms,"
                  " cron = excluded.cron, updated_ms = excluded.updated_ms",
                  5, p);
}
