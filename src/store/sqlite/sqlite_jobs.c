/*
 * sqlite_jobs.c - the scheduler's history in SQLite (tables job_runs and job_state, migration
 * 13 of sqlite_schema.c; the contracts are store.h's, the structs store/jobs.h's). Writes
 * come through the one write connection (the writer thread), so a statement here never
 * races another node; the UNIQUE indexes still decide a duplicate (ON CONFLICT DO NOTHING).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sqlite_internal.h"
#include "util/mem.h"

#define RUN_COLS                                                                                   \
    "id, job, scheduled_ms, attempt, \"trigger\", state, reason, node, created_ms, started_ms,"    \
    " ended_ms, lease_until_ms, items, error, idem_key, cancel_requested"

/* The states a run ends in, as an SQL list. */
#define ENDED "('succeeded', 'failed', 'skipped', 'canceled')"

static int prep(struct sqlite_store *s, const char *sql, sqlite3_stmt **q, const char *what)
{
    return sqlite3_prepare_v2(s->db, sql, -1, q, NULL) == SQLITE_OK ? 0 : sqlite_fail(s, what);
}

static void bind_text(sqlite3_stmt *q, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, i);
}

static int64_t col_ms(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(q, i);
}

/* The row of a SELECT RUN_COLS in *r (strings owned); 0, or -1 out of memory (r released). */
static int read_run(sqlite3_stmt *q, struct job_run *r)
{
    int oom = 0;
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(q, 0);
    r->job = sqlite_col_dup(q, 1, &oom);
    r->scheduled_ms = sqlite3_column_int64(q, 2);
    r->attempt = sqlite3_column_int(q, 3);
    const unsigned char *t = sqlite3_column_text(q, 4);
    snprintf(r->trigger, sizeof r->trigger, "%s", t ? (const char *)t : "");
    t = sqlite3_column_text(q, 5);
    snprintf(r->state, sizeof r->state, "%s", t ? (const char *)t : "");
    r->reason = sqlite_col_dup(q, 6, &oom);
    r->node = sqlite_col_dup(q, 7, &oom);
    r->created_ms = col_ms(q, 8);
    r->started_ms = col_ms(q, 9);
    r->ended_ms = col_ms(q, 10);
    r->lease_until_ms = col_ms(q, 11);
    r->items = sqlite3_column_type(q, 12) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 12);
    r->error = sqlite_col_dup(q, 13, &oom);
    r->idem_key = sqlite_col_dup(q, 14, &oom);
    r->cancel_requested = sqlite3_column_int(q, 15);
    if (oom)
        job_run_release(r);
    return oom ? -1 : 0;
}

/* The one row of q (bound) in *out: 0, 1 = none, -1; finalizes q. */
static int read_one(struct sqlite_store *s, sqlite3_stmt *q, struct job_run *out, const char *what)
{
    memset(out, 0, sizeof *out);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(q);
        return 1;
    }
    if (rc != SQLITE_ROW) {
        sqlite_fail(s, what);
        sqlite3_finalize(q);
        return -1;
    }
    rc = read_run(q, out) < 0 ? sqlite_oom(s, what) : 0;
    sqlite3_finalize(q);
    return rc;
}

/* Every row of q (bound) in *out, *n of them; finalizes q. */
static int read_all(struct sqlite_store *s, sqlite3_stmt *q, struct job_run **out, size_t *n,
                    const char *what)
{
    size_t cap = 0;
    int rc = 0, step;
    *out = NULL;
    *n = 0;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            struct job_run *v = sl_realloc(*out, cap * sizeof *v);
            if (!v) {
                rc = sqlite_oom(s, what);
                break;
            }
            *out = v;
        }
        if (read_run(q, &(*out)[*n]) < 0) {
            rc = sqlite_oom(s, what);
            break;
        }
        (*n)++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = sqlite_fail(s, what);
    sqlite3_finalize(q);
    if (rc < 0) {
        job_runs_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* Run q (bound, no rows wanted) and finalize it: the rows it changed, or -1. */
static int run_changes(struct sqlite_store *s, sqlite3_stmt *q, const char *what)
{
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return sqlite_fail(s, what);
    return sqlite3_changes(s->db);
}

/* Run q (bound; an UPDATE ... RETURNING one column) to its end and finalize it: 1 with the
 * first row's column in *v (and as text in txt, n bytes, when txt), 0 when it returned no
 * row, -1 on failure. */
static int step_first(struct sqlite_store *s, sqlite3_stmt *q, int64_t *v, char *txt, size_t n,
                      const char *what)
{
    int rc = sqlite3_step(q), found = rc == SQLITE_ROW;
    if (found) {
        *v = sqlite3_column_int64(q, 0);
        const unsigned char *t = sqlite3_column_text(q, 0);
        if (txt)
            snprintf(txt, n, "%s", t ? (const char *)t : "");
        rc = sqlite3_step(q);
    }
    sqlite3_finalize(q);
    return rc != SQLITE_DONE ? sqlite_fail(s, what) : found;
}

/* prep for a statement on run id as node holds it: ?1 = id, ?2 = node bound. */
static int prep_run(struct sqlite_store *s, const char *sql, sqlite3_stmt **q, const char *what,
                    int64_t id, const char *node)
{
    if (prep(s, sql, q, what) < 0)
        return -1;
    sqlite3_bind_int64(*q, 1, id);
    sqlite3_bind_text(*q, 2, node, -1, SQLITE_STATIC);
    return 0;
}

/* What a statement that changed n rows (-1: failed) of one run answers: 0 it did, 1 the run
 * was not in the state it asked for. */
static int one_run(int n)
{
    return n < 0 ? -1 : n == 1 ? 0 : 1;
}

int sqlite_job_run_add(struct store *st, const struct job_run_new *r, int64_t *id)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    int skipped = r->state && !strcmp(r->state, "skipped");
    if (!job_run_state_new(r->state)) {
        snprintf(s->err, sizeof s->err, "job run add: state '%s' (queued or skipped)",
                 r->state ? r->state : "");
        s->fault = 0;
        return -1;
    }
    if (prep(s,
             "INSERT INTO job_runs(job, scheduled_ms, attempt, \"trigger\", state, reason,"
             " created_ms, ended_ms, idem_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
             " ON CONFLICT DO NOTHING",
             &q, "job run add") < 0)
        return -1;
    sqlite3_bind_text(q, 1, r->job, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, r->scheduled_ms);
    sqlite3_bind_int(q, 3, r->attempt);
    bind_text(q, 4, r->trigger);
    sqlite3_bind_text(q, 5, r->state, -1, SQLITE_STATIC);
    bind_text(q, 6, r->reason);
    sqlite3_bind_int64(q, 7, r->created_ms);
    if (skipped)
        sqlite3_bind_int64(q, 8, r->created_ms);
    else
        sqlite3_bind_null(q, 8);
    bind_text(q, 9, r->idem_key);
    int changed = run_changes(s, q, "job run add");
    if (changed < 0)
        return -1;
    if (changed == 1) {
        *id = sqlite3_last_insert_rowid(s->db);
        return 0;
    }
    /* a run of that time and attempt, or of that key, is there: its id */
    if (prep(s,
             "SELECT id FROM job_runs WHERE job = ?1 AND ((scheduled_ms = ?2 AND attempt = ?3)"
             " OR idem_key = ?4) ORDER BY id LIMIT 1",
             &q, "job run add") < 0)
        return -1;
    sqlite3_bind_text(q, 1, r->job, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, r->scheduled_ms);
    sqlite3_bind_int(q, 3, r->attempt);
    bind_text(q, 4, r->idem_key);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(q, 0);
    else if (rc == SQLITE_DONE)
        snprintf(s->err, sizeof s->err, "job run add: a conflict with no run to show for it");
    else
        sqlite_fail(s, "job run add");
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 1 : -1;
}

int sqlite_job_run_start(struct store *st, int64_t id, const char *node, int64_t lease_until_ms,
                         int64_t now_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep_run(s,
                 "UPDATE job_runs SET state = 'running', node = ?2, lease_until_ms = ?3,"
                 " started_ms = ?4 WHERE id = ?1 AND state = 'queued'",
                 &q, "job run start", id, node) < 0)
        return -1;
    sqlite3_bind_int64(q, 3, lease_until_ms);
    sqlite3_bind_int64(q, 4, now_ms);
    return one_run(run_changes(s, q, "job run start"));
}

int sqlite_job_run_renew(struct store *st, int64_t id, const char *node, int64_t lease_until_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep_run(s,
                 "UPDATE job_runs SET lease_until_ms = ?3 WHERE id = ?1 AND state = 'running'"
                 " AND node = ?2 RETURNING cancel_requested",
                 &q, "job run renew", id, node) < 0)
        return -1;
    sqlite3_bind_int64(q, 3, lease_until_ms);
    int64_t cancel = 0;
    int found = step_first(s, q, &cancel, NULL, 0, "job run renew");
    return found < 0 ? -1 : !found ? 1 : cancel ? 2 : 0;
}

int sqlite_job_run_finish(struct store *st, int64_t id, const char *node, const char *state,
                          int64_t items, const char *error, int64_t now_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (!job_run_state_end(state)) {
        snprintf(s->err, sizeof s->err, "job run finish: state '%s'", state ? state : "");
        s->fault = 0;
        return -1;
    }
    if (prep_run(s,
                 "UPDATE job_runs SET state = ?3, items = ?4, error = ?5, ended_ms = ?6"
                 " WHERE id = ?1 AND state = 'running' AND node = ?2",
                 &q, "job run finish", id, node) < 0)
        return -1;
    sqlite3_bind_text(q, 3, state, -1, SQLITE_STATIC);
    if (items >= 0)
        sqlite3_bind_int64(q, 4, items);
    else
        sqlite3_bind_null(q, 4);
    bind_text(q, 5, error);
    sqlite3_bind_int64(q, 6, now_ms);
    return one_run(run_changes(s, q, "job run finish"));
}

int sqlite_job_run_cancel(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    /* SET reads the row as it was: a queued run ends, a running one is asked to stop */
    if (prep(s,
             "UPDATE job_runs SET state = CASE state WHEN 'queued' THEN 'canceled' ELSE state END,"
             " ended_ms = CASE state WHEN 'queued' THEN ?3 ELSE ended_ms END,"
             " cancel_requested = CASE state WHEN 'running' THEN 1 ELSE cancel_requested END,"
             " reason = coalesce(?2, reason) WHERE id = ?1 AND state IN ('queued', 'running')"
             " RETURNING state",
             &q, "job run cancel") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, id);
    bind_text(q, 2, reason);
    sqlite3_bind_int64(q, 3, now_ms);
    int64_t v;
    char state[16];
    int found = step_first(s, q, &v, state, sizeof state, "job run cancel");
    if (found != 0)
        return found < 0 ? -1 : !strcmp(state, "running") ? 2 : 0;
    if (prep(s, "SELECT 1 FROM job_runs WHERE id = ?", &q, "job run cancel") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, id);
    found = step_first(s, q, &v, NULL, 0, "job run cancel");
    return found < 0 ? -1 : found ? 1 : 3;
}

int sqlite_job_run_get(struct store *st, int64_t id, struct job_run *out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    memset(out, 0, sizeof *out);
    if (prep(s, "SELECT " RUN_COLS " FROM job_runs WHERE id = ?", &q, "job run") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, id);
    return read_one(s, q, out, "job run");
}

int sqlite_job_runs_list(struct store *st, const struct job_run_filter *f, struct job_run **out,
                         size_t *n)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    char sql[512];
    *out = NULL;
    *n = 0;
    /* only the filters given, so that (job, id) serves a job's walk */
    snprintf(sql, sizeof sql,
             "SELECT " RUN_COLS " FROM job_runs WHERE id < ?1%s%s%s ORDER BY id DESC LIMIT ?5",
             f->job ? " AND job = ?2" : "", f->state ? " AND state = ?3" : "",
             f->trigger ? " AND \"trigger\" = ?4" : "");
    if (prep(s, sql, &q, "job runs") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, f->before_id > 0 ? f->before_id : INT64_MAX);
    bind_text(q, 2, f->job);
    bind_text(q, 3, f->state);
    bind_text(q, 4, f->trigger);
    sqlite3_bind_int(q, 5, f->limit > 0 ? f->limit : 100);
    return read_all(s, q, out, n, "job runs");
}

int sqlite_job_runs_active(struct store *st, const char *job, struct job_run *out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    memset(out, 0, sizeof *out);
    if (prep(s,
             "SELECT " RUN_COLS " FROM job_runs WHERE job = ? AND state IN ('queued', 'running')"
             " ORDER BY id DESC LIMIT 1",
             &q, "job runs active") < 0)
        return -1;
    sqlite3_bind_text(q, 1, job, -1, SQLITE_STATIC);
    return read_one(s, q, out, "job runs active");
}

int sqlite_job_last(struct store *st, const char *job, struct job_last *out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    memset(out, 0, sizeof *out);
    if (prep(s, "SELECT " RUN_COLS " FROM job_runs WHERE job = ? ORDER BY id DESC LIMIT 1", &q,
             "job last") < 0)
        return -1;
    sqlite3_bind_text(q, 1, job, -1, SQLITE_STATIC);
    int rc = read_one(s, q, &out->last, "job last");
    if (rc != 0)
        return rc;
    if (prep(s,
             "SELECT (SELECT ended_ms FROM job_runs WHERE job = ?1 AND state = 'succeeded'"
             " ORDER BY id DESC LIMIT 1), (SELECT count(*) FROM job_runs WHERE job = ?1"
             " AND state = 'failed' AND id > coalesce((SELECT max(id) FROM job_runs"
             " WHERE job = ?1 AND state = 'succeeded'), 0))",
             &q, "job last") < 0) {
        job_run_release(&out->last);
        return -1;
    }
    sqlite3_bind_text(q, 1, job, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        out->last_success_ms = col_ms(q, 0);
        out->failures = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW) {
        job_run_release(&out->last);
        return sqlite_fail(s, "job last");
    }
    return 0;
}

int sqlite_job_runs_lost(struct store *st, int64_t now_ms, struct job_run **out, size_t *n)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    *out = NULL;
    *n = 0;
    if (prep(s,
             "UPDATE job_runs SET state = 'failed', reason = 'node lost', ended_ms = ?1"
             " WHERE state = 'running' AND lease_until_ms < ?1 RETURNING " RUN_COLS,
             &q, "job runs lost") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, now_ms);
    return read_all(s, q, out, n, "job runs lost");
}

int sqlite_job_runs_prune(struct store *st, const char *job, int keep_runs, int64_t keep_before_ms,
                          int64_t failed_keep_before_ms, int64_t *deleted)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (deleted)
        *deleted = 0;
    if (keep_runs <= 0 && keep_before_ms <= 0)
        return 0;
    /* ids below the keep_runs-th newest (none when there are not that many), by (job, id) */
    if (prep(s,
             "DELETE FROM job_runs WHERE job = ?1 AND state IN " ENDED
             " AND id < (CASE WHEN ?2 > 0 THEN coalesce((SELECT id FROM job_runs WHERE job = ?1"
             " ORDER BY id DESC LIMIT 1 OFFSET max(?2 - 1, 0)), 0) ELSE 9223372036854775807 END)"
             " AND (CASE WHEN state = 'failed' AND ?4 > 0 THEN ended_ms < ?4"
             " WHEN ?3 > 0 THEN ended_ms < ?3 ELSE 1 END)",
             &q, "job runs prune") < 0)
        return -1;
    sqlite3_bind_text(q, 1, job, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, keep_runs > 0 ? keep_runs : 0);
    sqlite3_bind_int64(q, 3, keep_before_ms);
    sqlite3_bind_int64(q, 4, failed_keep_before_ms);
    int changed = run_changes(s, q, "job runs prune");
    if (changed < 0)
        return -1;
    if (deleted)
        *deleted = changed;
    return 0;
}

int sqlite_job_state_get(struct store *st, const char *job, struct job_state *out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    memset(out, 0, sizeof *out);
    if (prep(s, "SELECT job, paused, last_due_ms, cron, updated_ms FROM job_state WHERE job = ?",
             &q, "job state") < 0)
        return -1;
    sqlite3_bind_text(q, 1, job, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q), oom = 0;
    if (rc == SQLITE_ROW) {
        out->job = sqlite_col_dup(q, 0, &oom);
        out->paused = sqlite3_column_int(q, 1);
        out->last_due_ms = sqlite3_column_int64(q, 2);
        out->cron = sqlite_col_dup(q, 3, &oom);
        out->updated_ms = sqlite3_column_int64(q, 4);
    }
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE)
        return 1;
    if (rc != SQLITE_ROW)
        return sqlite_fail(s, "job state");
    if (oom) {
        job_state_release(out);
        return sqlite_oom(s, "job state");
    }
    return 0;
}

int sqlite_job_state_put(struct store *st, const struct job_state *js)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             "INSERT INTO job_state(job, paused, last_due_ms, cron, updated_ms)"
             " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (job) DO UPDATE SET"
             " paused = excluded.paused, last_due_ms = excluded.last_due_ms,"
             " cron = excluded.cron, updated_ms = excluded.updated_ms",
             &q, "job state put") < 0)
        return -1;
    sqlite3_bind_text(q, 1, js->job, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, js->paused ? 1 : 0);
    sqlite3_bind_int64(q, 3, js->last_due_ms);
    bind_text(q, 4, js->cron);
    sqlite3_bind_int64(q, 5, js->updated_ms);
    return run_changes(s, q, "job state put") < 0 ? -1 : 0;
}
