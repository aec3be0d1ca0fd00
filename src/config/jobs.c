/*
 * jobs.c - the `jobs` list of the configuration: the keys of one job (config_job_opts[]),
 * the job kinds with their arguments (config_job_kinds[], one row per kind, each with its
 * own table of argument keys), and the loading and checks of the list: the cron expression
 * compiled (cron/cron.h), the zone loaded (cron/tz.h), the arguments walked against the
 * kind's table once the kind is known, every error naming the job and the key.
 *
 * What a kind does is the scheduler's (src/sched/kinds.c, which has a row per name here and
 * a test that the two agree); what it takes is here, so that docs/configuration.md lists it
 * and a bad argument is refused at load like any option.
 */
#include "config/yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

const char *const config_job_kind_names[] = {"noop",         "sentinel", "rollups", "dlq_retry",
                                             "housekeeping", "http",     NULL};
const char *const config_housekeeping_tasks[] = {"idempotency", "rollups", "batch_files",
                                                 "job_runs", NULL};
static const char *const catchup_names[] = {"none", "latest", "all", NULL};
static const char *const overlap_names[] = {"skip", "queue", NULL};
static const char *const http_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};

#define JB(field) offsetof(struct job_config, field)
#define OPT(n, t, d, o, h) .name = (n), .type = (t), .def = (d), .off = (o), .help = (h)
#define RANGE(lo, hi) .min = (lo), .max = (hi), .flags = OPT_MIN | OPT_MAX

const struct opt config_job_opts[] = {
    {OPT("name", OT_NAME, NULL, JB(name),
         "The job's name, used in URLs and metrics: `^[a-z][a-z0-9_]{0,62}$`, unique."),
     .flags = OPT_REQUIRED},
    {OPT("cron", OT_STRING, NULL, JB(cron),
         "When it runs: five fields (minute hour day-of-month month day-of-week) or a macro "
         "(`@hourly`, `@daily`, ...), in its `timezone`; see [scheduling.md](scheduling.md). "
         "An expression that can never fire is refused."),
     .flags = OPT_REQUIRED},
    {OPT("timezone", OT_STRING, "UTC", JB(timezone),
         "The IANA zone its wall-clock times are in (`Europe/Berlin`), read from the system's "
         "tz database (`/usr/share/zoneinfo`, or `$TZDIR`).")},
    {OPT("kind", OT_CHOICE, NULL, JB(kind), "What it does; see [Job kinds](#job-kinds)."),
     .choices = config_job_kind_names, .flags = OPT_REQUIRED},
    {OPT("args", OT_JOBARGS, NULL, 0,
         "The kind's arguments, a mapping; each kind's keys are listed under "
         "[Job kinds](#job-kinds). An unknown key is an error.")},
    {OPT("enabled", OT_BOOL, "true", JB(enabled),
         "`false`: never run on its schedule (it can still be triggered).")},
    {OPT("timeout", OT_DURATION, "1h", JB(timeout_ms),
         "A run that takes longer is canceled and ends `failed` (timeout). 0: no limit.")},
    {OPT("catchup", OT_CHOICE, "latest", JB(catchup),
         "Times missed while no scheduler ran (downtime, a pause, a clock jump): `none` runs "
         "none of them, `latest` the latest one, `all` each of them, oldest first, up to "
         "`max_catchup_runs` (the latest ones). Runs made up are marked `catchup`."),
     .choices = catchup_names},
    {OPT("max_catchup_runs", OT_INT, "10", JB(max_catchup_runs),
         "Most runs made up at once with `catchup: all`."),
     RANGE(1, 10000)},
    {OPT("catchup_window", OT_DURATION, NULL, JB(catchup_window_ms),
         "When set, only missed times this recent are made up.")},
    {OPT("grace", OT_DURATION, "1m", JB(grace_ms),
         "A scheduled time seen later than this (the scheduler was away) is a missed time, "
         "made up by `catchup`; a run that has not started this long after its time is the "
         "sentinel's `job_missed`.")},
    {OPT("overlap", OT_CHOICE, "skip", JB(overlap),
         "When a run is due while another of the job is queued or running: `skip` records the "
         "new one as `skipped` (with the running run's id), `queue` runs it after."),
     .choices = overlap_names},
    {OPT("keep_runs", OT_INT, "100", JB(keep_runs),
         "History: the newest runs always kept; older ones go once past `keep_days`."),
     RANGE(1, 1000000)},
    {OPT("keep_days", OT_INT, "30", JB(keep_days),
         "History: runs older than this, beyond the newest `keep_runs`, are deleted. 0: the "
         "newest `keep_runs` alone are kept, whatever their age."),
     RANGE(0, 36500)},
    {OPT("keep_failed_days", OT_INT, "90", JB(keep_failed_days),
         "History: failed runs are kept this long (at least `keep_days`)."),
     RANGE(1, 36500)},
    {OPT("retries", OT_INT, "0", JB(retries),
         "How many times a failed run (an error, a timeout, its node lost) is tried again, "
         "each a run of its own (trigger `retry`)."),
     RANGE(0, 100)},
    {OPT("retry_backoff", OT_DURATION, "30s", JB(retry_backoff_ms),
         "The wait before the first retry, doubled for each further one."),
     .min = 1, .flags = OPT_MIN},
};

/* Arguments of each kind: offsets in struct job_config (its args). */
static const struct opt noop_args[] = {
    {OPT("sleep", OT_DURATION, "0", JB(args.sleep_ms),
         "How long the run takes (canceling it ends it sooner).")},
    {OPT("fail", OT_BOOL, "false", JB(args.fail), "`true`: the run ends `failed`.")},
};
static const struct opt dlq_retry_args[] = {
    {OPT("dataset", OT_NAME, NULL, JB(args.dataset), "Only this dataset's entries.")},
    {OPT("error_code", OT_STRING, NULL, JB(args.error_code),
         "Only entries with an error of this code (`TYPE_MISMATCH`, ...).")},
    {OPT("limit", OT_INT, "1000", JB(args.limit), "Most entries one run retries."),
     RANGE(1, 1000000)},
};
static const struct opt housekeeping_args[] = {
    {OPT("tasks", OT_STRLIST, NULL, JB(args.tasks),
         "Which of `idempotency` (expired keys), `rollups` (old minute buckets), "
         "`batch_files` (orphaned files), `job_runs` (every job's history, by its `keep_*`); "
         "not set: all.")},
};
static const struct opt http_args[] = {
    {OPT("url", OT_STRING, NULL, JB(args.url), "The URL (`http://` or `https://`)."),
     .flags = OPT_REQUIRED},
    {OPT("method", OT_ENUM, "GET", JB(args.method), "The method."), .choices = http_methods},
    {OPT("headers", OT_STRLIST, NULL, JB(args.headers), "Request headers, each `Name: value`.")},
    {OPT("body", OT_STRING, NULL, JB(args.body), "The request body."), .flags = OPT_EMPTY_OK},
    {OPT("expect_status", OT_STRLIST, NULL, JB(args.expect_status),
         "The status codes that succeed (`[\"200\", \"204\"]`); not set: any 2xx.")},
};

const struct job_kind_def config_job_kinds[] = {
    {"noop", "Does nothing (for `sleep`): to check a schedule, or to test alerting.", noop_args,
     ARRAY_SIZE(noop_args)},
    {"sentinel",
     "Evaluates the sentinel's rules now and routes what they find, as the "
     "server's own timer and `sluice sentinel` do.",
     NULL, 0},
    {"rollups",
     "Recomputes the rollups from their ledger, as `sluice rollups rebuild` does, one "
     "dataset and hour per writer job.",
     NULL, 0},
    {"dlq_retry",
     "Retries the open DLQ entries that match, against the schema in force now, as "
     "`POST /api/v1/dlq/retry` does; items = the entries retried.",
     dlq_retry_args, ARRAY_SIZE(dlq_retry_args)},
    {"housekeeping",
     "The purges and sweeps: expired idempotency keys, old minute rollups, orphaned batch "
     "files, job history. The server does the first three on its own timer too, unless an "
     "enabled housekeeping job does all three: then they are only this job's runs, each with "
     "its history.",
     housekeeping_args, ARRAY_SIZE(housekeeping_args)},
    {"http", "A request to a URL (a webhook to another system); succeeds on the expected status.",
     http_args, ARRAY_SIZE(http_args)},
};

const size_t config_njob_opts = ARRAY_SIZE(config_job_opts);
const size_t config_njob_kinds = ARRAY_SIZE(config_job_kinds);
_Static_assert(ARRAY_SIZE(config_job_kinds) + 1 == ARRAY_SIZE(config_job_kind_names),
               "a kind row per kind name");
_Static_assert(ARRAY_SIZE(config_job_opts) <= 32, "load_job keeps its lines in an int[32]");

/* The fields a table sets that own memory. */
static void free_fields(const struct opt *tbl, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        void *p = field_ptr(base, &tbl[i]);
        if (tbl[i].type == OT_STRING || tbl[i].type == OT_ENUM || tbl[i].type == OT_NAME) {
            free(*(char **)p);
            *(char **)p = NULL;
        } else if (tbl[i].type == OT_STRLIST) {
            config_strlist_free(*(char ***)p);
            *(char ***)p = NULL;
        }
    }
}

void config_jobs_release(struct sluice_config *cfg)
{
    for (size_t i = 0; i < cfg->njobs; i++) {
        struct job_config *j = &cfg->jobs[i];
        free_fields(config_job_opts, config_njob_opts, j);
        for (size_t k = 0; k < config_njob_kinds; k++)
            free_fields(config_job_kinds[k].args, config_job_kinds[k].nargs, j);
        tz_free(j->tz);
    }
    free(cfg->jobs);
    cfg->jobs = NULL;
    cfg->njobs = 0;
}

const struct job_config *config_job(const struct sluice_config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->njobs; i++)
        if (cfg->jobs[i].name && strcmp(cfg->jobs[i].name, name) == 0)
            return &cfg->jobs[i];
    return NULL;
}

/* The kind's own checks, beyond its table. */
static int check_args(struct loader *ld, struct job_config *j, int line, const char *prefix)
{
    char opt[96];
    const char *kind = config_job_kind_names[j->kind];
    if (strcmp(kind, "housekeeping") == 0) {
        for (size_t i = 0; j->args.tasks && j->args.tasks[i]; i++)
            if (!config_is_one_of(j->args.tasks[i], config_housekeeping_tasks)) {
                snprintf(opt, sizeof opt, "%sargs.tasks", prefix);
                return yaml_fail_at(ld, line, opt,
                                    "unknown task '%s' (idempotency, rollups, batch_files, "
                                    "job_runs) (job '%s')",
                                    j->args.tasks[i], j->name);
            }
    } else if (strcmp(kind, "http") == 0) {
        if (strncmp(j->args.url, "http://", 7) != 0 && strncmp(j->args.url, "https://", 8) != 0) {
            snprintf(opt, sizeof opt, "%sargs.url", prefix);
            return yaml_fail_at(ld, line, opt, "expected an http:// or https:// URL (job '%s')",
                                j->name);
        }
        for (size_t i = 0; j->args.headers && j->args.headers[i]; i++) {
            const char *h = j->args.headers[i], *c = strchr(h, ':');
            size_t nl = c ? (size_t)(c - h) : 0;
            int ok = nl > 0 && strcspn(h, " \t\r\n") >= nl && !strpbrk(h, "\r\n");
            if (!ok) {
                snprintf(opt, sizeof opt, "%sargs.headers[%zu]", prefix, i);
                return yaml_fail_at(ld, line, opt, "expected 'Name: value' on one line (job '%s')",
                                    j->name);
            }
        }
        for (size_t i = 0; j->args.expect_status && j->args.expect_status[i]; i++) {
            char *end;
            long v = strtol(j->args.expect_status[i], &end, 10);
            if (*end || v < 100 || v > 599) {
                snprintf(opt, sizeof opt, "%sargs.expect_status[%zu]", prefix, i);
                return yaml_fail_at(ld, line, opt,
                                    "expected an HTTP status code 100-599, got '%s' (job '%s')",
                                    j->args.expect_status[i], j->name);
            }
        }
    }
    return 0;
}

/* The line of key name in a job's mapping, or the job's own line. */
static int key_line(const struct opt *tbl, const int *lines, const char *name, int line)
{
    for (size_t i = 0; i < config_njob_opts; i++)
        if (strcmp(tbl[i].name, name) == 0 && lines[i])
            return lines[i];
    return line;
}

static int load_job(struct loader *ld, struct fy_node *item, size_t i, int line)
{
    struct sluice_config *cfg = ld->cfg;
    struct job_config *j = &cfg->jobs[i];
    int lines[32] = {0};
    char prefix[32], option[64], why[300];
    snprintf(prefix, sizeof prefix, "jobs[%zu].", i);
    snprintf(option, sizeof option, "jobs[%zu]", i);
    for (size_t k = 0; k < config_njob_kinds; k++)
        if (opt_apply_defaults(config_job_kinds[k].args, config_job_kinds[k].nargs, j, why,
                               sizeof why) < 0)
            return yaml_fail_at(ld, line, option, "%s", why);
    if ((line = yaml_load_entry(ld, item, line, config_job_opts, config_njob_opts, j, lines, prefix,
                                option, "a mapping with name, cron and kind")) < 0)
        return -1;
    j->line = line;
    for (size_t k = 0; k < i; k++)
        if (strcmp(cfg->jobs[k].name, j->name) == 0) {
            snprintf(option, sizeof option, "%sname", prefix);
            return yaml_fail_at(ld, key_line(config_job_opts, lines, "name", line), option,
                                "duplicate job name '%s' (jobs[%zu])", j->name, k);
        }
    if (cron_parse(j->cron, &j->schedule, why, sizeof why) < 0) {
        snprintf(option, sizeof option, "%scron", prefix);
        return yaml_fail_at(ld, key_line(config_job_opts, lines, "cron", line), option,
                            "%s (job '%s')", why, j->name);
    }
    if (!(j->tz = tz_load(j->timezone, why, sizeof why))) {
        snprintf(option, sizeof option, "%stimezone", prefix);
        return yaml_fail_at(ld, key_line(config_job_opts, lines, "timezone", line), option,
                            "%s (job '%s')", why, j->name);
    }
    if (j->keep_failed_days < j->keep_days)
        j->keep_failed_days = j->keep_days;

    /* the arguments, against the kind's table */
    const struct job_kind_def *kd = &config_job_kinds[j->kind];
    struct fy_node *args = fy_node_mapping_lookup_by_string(item, "args", FY_NT);
    int alines[32] = {0};
    char aprefix[48];
    snprintf(aprefix, sizeof aprefix, "%sargs.", prefix);
    snprintf(option, sizeof option, "%sargs", prefix);
    int aline = key_line(config_job_opts, lines, "args", line);
    if (args && !(fy_node_is_scalar(args) && !fy_node_get_scalar_token(args))) {
        if (!fy_node_is_mapping(args))
            return yaml_fail_at(ld, aline, option, "expected a mapping, got %s (job '%s')",
                                yaml_node_kind_name(args), j->name);
        if (!kd->nargs && fy_node_mapping_item_count(args) > 0)
            return yaml_fail_at(ld, aline, option, "kind %s takes no arguments (job '%s')",
                                kd->name, j->name);
        if (kd->nargs &&
            yaml_walk_mapping(ld, args, kd->args, kd->nargs, j, alines, "", aprefix) < 0)
            return -1;
    }
    for (size_t k = 0; k < kd->nargs; k++)
        if ((kd->args[k].flags & OPT_REQUIRED) && !alines[k])
            return yaml_fail_at(ld, aline, option, "'%s' is required for kind %s (job '%s')",
                                kd->args[k].name, kd->name, j->name);
    return check_args(ld, j, aline, prefix);
}

int config_load_jobs(struct loader *ld, struct fy_node *seq, int line, const char *option)
{
    return yaml_load_list(ld, seq, line, option, "a list of jobs", 0, sizeof *ld->cfg->jobs,
                          (void **)&ld->cfg->jobs, &ld->cfg->njobs, load_job);
}
