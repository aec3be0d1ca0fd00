/*
 * h_jobs.c - the scheduler's API: jobs and their next times, runs and their history, and the
 * actions (trigger, pause, resume, cancel), plus /health/scheduler. Reads go through the
 * loop's read connection; each action is one writer job (run_add, job_state_put, run_cancel)
 * whose answer comes back to the loop, then the scheduler is woken (sched_wake) so that a
 * queued run starts at once. The JSON is sched/job_json.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/catalog.h"
#include "http/handlers.h"
#include "http/params.h"
#include "sched/job_json.h"
#include "sched/sched.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "writer/writer.h"

/* The job's state and last run into st and last (either may be left zeroed). */
static void job_view(struct store *s, const char *name, struct job_state *st, struct job_last *last)
{
    memset(st, 0, sizeof *st);
    memset(last, 0, sizeof *last);
    if (store_job_state_get(s, name, st) != 0)
        memset(st, 0, sizeof *st);
    if (store_job_last(s, name, last) != 0)
        memset(last, 0, sizeof *last);
}

static json_t *one_job(struct store *s, const struct job_config *jc, int64_t now)
{
    struct job_state st;
    struct job_last last;
    job_view(s, jc->name, &st, &last);
    json_t *j = job_json(jc, &st, &last, now);
    job_state_release(&st);
    job_run_release(&last.last);
    return j;
}

/* GET /api/v1/jobs */
void h_jobs_list(struct http_conn *c, struct http_request *r)
{
    (void)r;
    struct catalog *cat = http_conn_catalog(c);
    struct store *s = http_conn_store(c);
    int64_t now = clock_wall_ms();
    json_t *items = json_array();
    for (size_t i = 0; i < cat->cfg.njobs; i++)
        json_array_append_new(items, one_job(s, &cat->cfg.jobs[i], now));
    catalog_release(cat);
    http_reply_json(c, 200, json_pack("{s:o}", "jobs", items), NULL);
}

/* The job named by the path, or a 404 answered (NULL). */
static const struct job_config *path_job(struct http_conn *c, struct catalog *cat, const char *name)
{
    const struct job_config *jc = config_job(&cat->cfg, name);
    if (!jc)
        http_reply_error(c, ERR_NOT_FOUND, "no job '%s'", name);
    return jc;
}

/* GET /api/v1/jobs/{name} */
void h_jobs_get(struct http_conn *c, struct http_request *r)
{
    struct catalog *cat = http_conn_catalog(c);
    const struct job_config *jc = path_job(c, cat, r->params[0]);
    if (jc)
        http_reply_json(c, 200, one_job(http_conn_store(c), jc, clock_wall_ms()), NULL);
    catalog_release(cat);
}

/* GET /api/v1/jobs/{name}/runs?state=&trigger=&limit=&before= (newest first) */
void h_job_runs_list(struct http_conn *c, struct http_request *r)
{
    struct catalog *cat = http_conn_catalog(c);
    const struct job_config *jc = path_job(c, cat, r->params[0]);
    if (!jc) {
        catalog_release(cat);
        return;
    }
    char state[HQ_MAX + 1], trigger[HQ_MAX + 1];
    long long limit = hq_int(r, "limit", 50);
    struct job_run_filter f = {.job = jc->name,
                               .state = hq_str(r, "state", state, sizeof state),
                               .trigger = hq_str(r, "trigger", trigger, sizeof trigger),
                               .before_id = hq_int(r, "before", 0),
                               .limit = (int)limit + 1};
    struct job_run *v = NULL;
    size_t n = 0;
    struct store *s = http_conn_store(c);
    if (store_job_runs_list(s, &f, &v, &n) < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(s));
        catalog_release(cat);
        return;
    }
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    json_t *items = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(items, job_run_json(&v[i]));
    json_t *next = n > shown ? json_integer(v[shown - 1].id) : json_null();
    job_runs_free(v, n);
    catalog_release(cat);
    http_reply_json(c, 200, json_pack("{s:o,s:o}", "runs", items, "next_before", next), NULL);
}

/* The run id p names, or 0 with the 400 answered. */
static int64_t run_id_of(struct http_conn *c, const char *p)
{
    char *end;
    long long id = strtoll(p, &end, 10);
    if (*end || id <= 0) {
        http_reply_error(c, ERR_INVALID_PARAMETER, "a run id is a positive integer, not '%s'", p);
        return 0;
    }
    return id;
}

/* The run of the path into out, or a 400/404/503 answered (0). */
static int64_t path_run(struct http_conn *c, const char *p, struct job_run *out)
{
    int64_t id = run_id_of(c, p);
    if (!id)
        return 0;
    struct store *s = http_conn_store(c);
    int rc = store_job_run_get(s, id, out);
    if (rc < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(s));
        return 0;
    }
    if (rc == 1) {
        http_reply_error(c, ERR_NOT_FOUND, "no run %lld", (long long)id);
        return 0;
    }
    return id;
}

/* GET /api/v1/runs/{id} */
void h_runs_get(struct http_conn *c, struct http_request *r)
{
    struct job_run run;
    if (!path_run(c, r->params[0], &run))
        return;
    http_reply_json(c, 200, job_run_json(&run), NULL);
    job_run_release(&run);
}

/* ---- actions: one writer job each ------------------------------------------------- */

enum job_action { ACT_TRIGGER, ACT_PAUSE, ACT_RESUME, ACT_CANCEL };

struct job_req {
    struct wjob job;
    struct loop_msg msg;
    struct http_conn *conn;
    struct http_loop *loop;
    const struct http_app *app;
    struct catalog *cat;
    enum job_action act;
    const struct job_config *jc; /* in cat; NULL for a cancel */
    char idem[256];
    char actor[96];
    int64_t now_ms, run_id;
    int result, rc;
    struct job_run run; /* the run answered (trigger, cancel) or the one in the way (409) */
    int conflict;       /* trigger: a run is in the way; cancel: it has ended */
};

static int job_apply(struct wjob *wj, struct store *st)
{
    struct job_req *q = (struct job_req *)wj;
    job_run_release(&q->run);
    memset(&q->run, 0, sizeof q->run);
    q->conflict = 0;
    if (q->act == ACT_TRIGGER) {
        if (q->jc->overlap == JOB_OVERLAP_SKIP) {
            int rc = store_job_runs_active(st, q->jc->name, &q->run);
            if (rc < 0)
                return -1;
            if (rc == 0) {
                /* the run in the way is this very request's, retried: the same answer */
                if (!(q->idem[0] && q->run.idem_key && strcmp(q->run.idem_key, q->idem) == 0))
                    q->conflict = 1;
                q->run_id = q->run.id;
                return 0;
            }
        }
        struct job_run_new n = {.job = q->jc->name,
                                .scheduled_ms = q->now_ms,
                                .attempt = 1,
                                .trigger = "manual",
                                .state = "queued",
                                .idem_key = q->idem[0] ? q->idem : NULL,
                                .created_ms = q->now_ms};
        if (store_job_run_add(st, &n, &q->run_id) < 0)
            return -1;
        return store_job_run_get(st, q->run_id, &q->run) == 0 ? 0 : -1;
    }
    if (q->act == ACT_CANCEL) {
        char reason[160];
        snprintf(reason, sizeof reason, "canceled by %s", q->actor[0] ? q->actor : "the API");
        q->rc = store_job_run_cancel(st, q->run_id, reason, q->now_ms);
        if (q->rc < 0)
            return -1;
        if (q->rc == 3)
            return 0;
        q->conflict = q->rc == 1;
        return store_job_run_get(st, q->run_id, &q->run) == 0 ? 0 : -1;
    }
    struct job_state cur;
    int rc = store_job_state_get(st, q->jc->name, &cur);
    if (rc < 0)
        return -1;
    /* a job no scheduler has seen yet starts from now, paused or not */
    struct job_state nw = {.job = (char *)q->jc->name,
                           .paused = q->act == ACT_PAUSE,
                           .last_due_ms = rc == 0 ? cur.last_due_ms : q->now_ms,
                           .cron = rc == 0 ? cur.cron : NULL,
                           .updated_ms = q->now_ms};
    rc = store_job_state_put(st, &nw);
    job_state_release(&cur);
    return rc < 0 ? -1 : 0;
}

static void job_deliver(struct wjob *wj, int result)
{
    struct job_req *q = (struct job_req *)wj;
    q->result = result;
    http_post(q->loop, &q->msg);
}

static void job_answer(struct loop_msg *m)
{
    struct job_req *q = (struct job_req *)((char *)m - offsetof(struct job_req, msg));
    struct http_conn *c = q->conn;
    if (q->result < 0) {
        h_reply_not_committed(c, q->result);
    } else if (q->act == ACT_TRIGGER && q->conflict) {
        json_t *e = json_pack("{s:{s:s,s:s,s:I,s:s}}", "error", "code", "CONFLICT", "message",
                              "a run of this job is queued or running (overlap: skip)", "run_id",
                              (json_int_t)q->run.id, "run_state", q->run.state);
        char *body = json_dumps(e, JSON_COMPACT);
        json_decref(e);
        http_reply(c, 409, "application/json", body, body ? strlen(body) : 0, NULL);
    } else if (q->act == ACT_TRIGGER) {
        char loc[96];
        snprintf(loc, sizeof loc, "Location: /api/v1/runs/%lld\r\n", (long long)q->run_id);
        log_info("sched", "job triggered", "\"job\":\"%s\",\"run\":%lld", q->jc->name,
                 (long long)q->run_id);
        http_reply_json(c, 202, json_pack("{s:o}", "run", job_run_json(&q->run)), loc);
        sched_wake(q->app->sched);
    } else if (q->act == ACT_CANCEL && q->rc == 3) {
        http_reply_error(c, ERR_NOT_FOUND, "no run %lld", (long long)q->run_id);
    } else if (q->act == ACT_CANCEL && q->conflict) {
        http_reply_error(c, ERR_CONFLICT, "run %lld has ended (%s)", (long long)q->run_id,
                         q->run.state);
    } else if (q->act == ACT_CANCEL) {
        http_reply_json(c, 200, job_run_json(&q->run), NULL);
        sched_wake(q->app->sched);
    } else {
        log_info("sched", q->act == ACT_PAUSE ? "job paused" : "job resumed", "\"job\":\"%s\"",
                 q->jc->name);
        http_reply_json(c, 200, one_job(http_conn_store(c), q->jc, clock_wall_ms()), NULL);
        sched_wake(q->app->sched);
    }
    job_run_release(&q->run);
    catalog_release(q->cat);
    free(q);
}

static void job_submit(struct http_conn *c, struct http_request *r, enum job_action act)
{
    struct job_req *q = sl_calloc(1, sizeof *q);
    if (!q) {
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    q->conn = c;
    q->loop = http_conn_loop(c);
    q->app = http_conn_app(c);
    q->cat = http_conn_catalog(c);
    q->act = act;
    q->now_ms = clock_wall_ms();
    q->msg.fn = job_answer;
    q->job.apply = job_apply;
    q->job.deliver = job_deliver;
    q->job.nrows = 1;
    snprintf(q->actor, sizeof q->actor, "%s", r->who.actor);
    if (act == ACT_CANCEL) {
        if (!(q->run_id = run_id_of(c, r->params[0])))
            goto drop;
    } else if (!(q->jc = path_job(c, q->cat, r->params[0]))) {
        goto drop;
    }
    if (act == ACT_TRIGGER) {
        const char *idem = http_header(r, "idempotency-key");
        if (idem && (strlen(idem) == 0 || strlen(idem) > 255)) {
            http_reply_error(c, ERR_INVALID_PARAMETER,
                             "Idempotency-Key must be 1 to 255 characters");
            goto drop;
        }
        snprintf(q->idem, sizeof q->idem, "%s", idem ? idem : "");
    }
    if (writer_submit(q->app->writer, &q->job) == 0)
        return;
    http_reply_error_status(c, 503, ERR_OVERLOADED, "Retry-After: 1\r\n", NULL);
drop:
    catalog_release(q->cat);
    free(q);
}

/* POST /api/v1/jobs/{name}/trigger and POST /api/scheduler/trigger/{name} */
void h_job_trigger(struct http_conn *c, struct http_request *r)
{
    job_submit(c, r, ACT_TRIGGER);
}
void h_job_pause(struct http_conn *c, struct http_request *r)
{
    job_submit(c, r, ACT_PAUSE);
}
void h_job_resume(struct http_conn *c, struct http_request *r)
{
    job_submit(c, r, ACT_RESUME);
}
void h_run_cancel(struct http_conn *c, struct http_request *r)
{
    job_submit(c, r, ACT_CANCEL);
}

/* GET /health/scheduler */
void h_health_scheduler(struct http_conn *c, struct http_request *r)
{
    (void)r;
    struct catalog *cat = http_conn_catalog(c);
    const struct http_app *app = http_conn_app(c);
    struct sched_status ss;
    sched_status(app->sched, &ss);
    int64_t now = clock_wall_ms();
    const char *status;
    int code = 200;
    if (!cat->cfg.scheduler.enabled) {
        status = "disabled";
    } else if (!ss.running || now - ss.last_tick_ms > 2 * SCHED_TICK_MAX_MS + 2000) {
        status = "stalled";
        code = 503;
    } else {
        status = ss.leader ? "ok" : "standby";
    }
    char t[40];
    json_t *history = json_object();
    struct store *s = http_conn_store(c);
    for (size_t i = 0; i < cat->cfg.njobs; i++) {
        struct job_run_filter f = {.job = cat->cfg.jobs[i].name, .limit = 5};
        struct job_run *v = NULL;
        size_t n = 0;
        json_t *a = json_array();
        if (store_job_runs_list(s, &f, &v, &n) == 0)
            for (size_t k = 0; k < n; k++)
                json_array_append_new(a, job_run_json(&v[k]));
        job_runs_free(v, n);
        json_object_set_new(history, cat->cfg.jobs[i].name, a);
    }
    json_t *j = json_pack(
        "{s:s,s:b,s:b,s:s,s:o,s:i,s:i,s:o}", "status", status, "running", ss.running, "leader",
        ss.leader, "node", ss.node, "last_tick_at",
        ss.last_tick_ms ? json_string(clock_rfc3339(ss.last_tick_ms, t, sizeof t)) : json_null(),
        "runs_active", ss.runs_active, "jobs", (int)cat->cfg.njobs, "job_history", history);
    catalog_release(cat);
    http_reply_json(c, code, j, NULL);
}
