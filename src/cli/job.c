/*
 * job.c - `sluice job ...`: the scheduler's runbook from a shell, against a running server
 * (the /api/v1/jobs and /api/v1/runs routes of http/h_jobs.c) over client.h. Prints tables
 * and lines for a person, or with --json the server's JSON answer as it came; `run --wait`
 * follows the run it started until it has ended.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "util/buf.h"

/* What the command line asked for. */
struct job_args {
    const char *base; /* the server's URL, no trailing / */
    const char *sub, *arg;
    const char *idem, *state, *trigger, *limit, *before;
    int wait, json;
};

/* One answer of the server: its status (-1: none), the body, and the body as JSON (or NULL). */
struct answer {
    long status;
    struct buf raw;
    json_t *body;
};

static void call(const char *method, const char *url, const char *header, struct answer *a)
{
    buf_init(&a->raw, 64u << 20);
    const char *body = strcmp(method, "POST") == 0 ? "" : NULL;
    a->status = client_call_hdr(method, url, body, NULL, header, &a->raw);
    json_error_t jerr;
    a->body = a->raw.len ? json_loadb(a->raw.data, a->raw.len, 0, &jerr) : NULL;
}

static void answer_release(struct answer *a)
{
    json_decref(a->body);
    buf_release(&a->raw);
}

static int ok(const struct answer *a)
{
    return a->status >= 200 && a->status < 300;
}

/* --json: the body as it came on stdout; 0 on a 2xx, else 1. */
static int print_raw(const struct answer *a)
{
    if (a->raw.len)
        printf("%.*s%s", (int)a->raw.len, a->raw.data,
               a->raw.data[a->raw.len - 1] == '\n' ? "" : "\n");
    return ok(a) ? 0 : 1;
}

/* An error answer for a person, on stderr: the server's message and code. Returns 1. A 401
 * or 403 (client_explain) and no answer at all (client_call) have been explained already. */
static int say_error(const char *sub, const struct answer *a)
{
    if (a->status < 0 || a->status == 401 || a->status == 403)
        return 1;
    json_t *e = json_object_get(a->body, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *code = json_string_value(json_object_get(e, "code"));
    if (msg)
        fprintf(stderr, "sluice job %s: %s (HTTP %ld %s)\n", sub, msg, a->status, code ? code : "");
    else
        fprintf(stderr, "sluice job %s: HTTP %ld: %.*s\n", sub, a->status, (int)a->raw.len,
                a->raw.data ? a->raw.data : "");
    return 1;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

/* A duration for a person: 350ms, 2.0s, 4m05s, 2h10m. */
static const char *fmt_ms(json_int_t ms, char *out, size_t n)
{
    if (ms < 1000)
        snprintf(out, n, "%lldms", (long long)ms);
    else if (ms < 60000)
        snprintf(out, n, "%.1fs", (double)ms / 1000);
    else if (ms < 3600000)
        snprintf(out, n, "%lldm%02llds", (long long)ms / 60000, (long long)ms / 1000 % 60);
    else
        snprintf(out, n, "%lldh%02lldm", (long long)ms / 3600000, (long long)ms / 60000 % 60);
    return out;
}

/* A run's duration_ms for a person, or "-" while it has none. */
static const char *run_duration(json_t *run, char *out, size_t n)
{
    json_t *d = json_object_get(run, "duration_ms");
    return json_is_integer(d) ? fmt_ms(json_integer_value(d), out, n) : "-";
}

/* What a run's last column says: its error, else its reason (a skip's, a cancel's). */
static const char *run_note(json_t *run)
{
    const char *e = json_string_value(json_object_get(run, "error"));
    const char *r = json_string_value(json_object_get(run, "reason"));
    return e ? e : r ? r : "";
}

/* A table's cell: row's k-th string ("" when missing). */
static const char *cell(json_t *row, size_t k)
{
    const char *s = json_string_value(json_array_get(row, k));
    return s ? s : "";
}

/* Print rows (an array of arrays of strings, the first the header) as columns two spaces
 * apart, with no spaces at the end of a line. */
static void table_print(json_t *rows)
{
    size_t ncol = json_array_size(json_array_get(rows, 0)), w[16] = {0}, i, k;
    json_t *row;
    if (ncol > 16)
        ncol = 16;
    json_array_foreach(rows, i, row)
    {
        for (k = 0; k < ncol; k++) {
            size_t l = strlen(cell(row, k));
            w[k] = l > w[k] ? l : w[k];
        }
    }
    struct buf line;
    buf_init(&line, 1u << 20);
    json_array_foreach(rows, i, row)
    {
        buf_reset(&line);
        for (k = 0; k < ncol; k++)
            buf_printf(&line, "%-*s  ", (int)w[k], cell(row, k));
        while (line.len && line.data[line.len - 1] == ' ')
            line.data[--line.len] = 0;
        printf("%s\n", line.len ? line.data : "");
    }
    buf_release(&line);
}

/* A row of n strings (NULL shown as "-"). */
static json_t *row_of(size_t n, ...)
{
    json_t *r = json_array();
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        const char *s = va_arg(ap, const char *);
        json_array_append_new(r, json_string(s ? s : "-"));
    }
    va_end(ap);
    return r;
}

/* "active", "paused", "disabled" or "disabled, paused". */
static const char *job_status(json_t *job)
{
    int paused = json_is_true(json_object_get(job, "paused"));
    if (!json_is_true(json_object_get(job, "enabled")))
        return paused ? "disabled, paused" : "disabled";
    return paused ? "paused" : "active";
}

/* "failed (3 in a row)", "succeeded", or "-" when it has never run. */
static const char *last_state(json_t *job, char *out, size_t n)
{
    json_t *last = json_object_get(job, "last_run");
    json_int_t f = json_integer_value(json_object_get(job, "consecutive_failures"));
    if (!json_is_object(last))
        return "-";
    if (f > 1)
        snprintf(out, n, "%s (%lld in a row)", str(last, "state"), (long long)f);
    else
        snprintf(out, n, "%s", str(last, "state"));
    return out;
}

static int list_jobs(const struct job_args *a, struct answer *ans)
{
    json_t *rows = json_array(), *job;
    size_t i;
    json_array_append_new(rows,
                          row_of(6, "NAME", "KIND", "SCHEDULE", "STATUS", "NEXT RUN", "LAST RUN"));
    json_array_foreach(json_object_get(ans->body, "jobs"), i, job)
    {
        char sched[300], last[96];
        snprintf(sched, sizeof sched, "%s (%s)", str(job, "cron"), str(job, "timezone"));
        json_t *next = json_array_get(json_object_get(job, "next_runs"), 0);
        json_array_append_new(rows,
                              row_of(6, str(job, "name"), str(job, "kind"), sched, job_status(job),
                                     str(next, "local"), last_state(job, last, sizeof last)));
    }
    if (json_array_size(rows) > 1)
        table_print(rows);
    else
        printf("no jobs (the configuration's `jobs:` list is empty)\n");
    json_decref(rows);
    (void)a;
    return 0;
}

static void kv(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kv(const char *key, const char *fmt, ...)
{
    va_list ap;
    printf("%-22s", key);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static int show_job(const struct job_args *a, struct answer *ans)
{
    json_t *j = ans->body, *last = json_object_get(j, "last_run"), *t;
    char d[32], l[96];
    json_int_t timeout = json_integer_value(json_object_get(j, "timeout_ms"));
    kv("name:", "%s", str(j, "name"));
    kv("kind:", "%s", str(j, "kind"));
    kv("schedule:", "%s (%s)", str(j, "cron"), str(j, "timezone"));
    kv("status:", "%s", job_status(j));
    kv("catchup:", "%s (at most %lld runs)", str(j, "catchup"),
       (long long)json_integer_value(json_object_get(j, "max_catchup_runs")));
    kv("overlap:", "%s", str(j, "overlap"));
    kv("timeout:", "%s", timeout > 0 ? fmt_ms(timeout, d, sizeof d) : "none");
    kv("retries:", "%lld", (long long)json_integer_value(json_object_get(j, "retries")));
    kv("history kept:", "%lld runs, %lld days (failed runs %lld days)",
       (long long)json_integer_value(json_object_get(j, "keep_runs")),
       (long long)json_integer_value(json_object_get(j, "keep_days")),
       (long long)json_integer_value(json_object_get(j, "keep_failed_days")));
    if (json_is_object(last)) {
        kv("last run:", "run %lld (%s): %s, scheduled %s, took %s",
           (long long)json_integer_value(json_object_get(last, "id")), str(last, "trigger"),
           last_state(j, l, sizeof l), str(last, "scheduled_at"), run_duration(last, d, sizeof d));
        if (*run_note(last))
            kv("", "%s", run_note(last));
    } else {
        kv("last run:", "none");
    }
    kv("last success:", "%s",
       json_is_string(json_object_get(j, "last_success_at")) ? str(j, "last_success_at") : "never");
    if (json_array_size(json_object_get(j, "next_runs")))
        printf("next runs:\n");
    else
        kv("next runs:", "none");
    size_t i;
    json_array_foreach(json_object_get(j, "next_runs"), i, t)
        printf("  %s  %s\n", str(t, "utc"), str(t, "local"));
    (void)a;
    return 0;
}

static int history(const struct job_args *a, struct answer *ans)
{
    json_t *rows = json_array(), *run;
    size_t i;
    json_array_append_new(
        rows, row_of(6, "RUN", "TRIGGER", "STATE", "SCHEDULED", "DURATION", "ERROR / REASON"));
    json_array_foreach(json_object_get(ans->body, "runs"), i, run)
    {
        char id[24], d[32];
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(run, "id")));
        json_array_append_new(rows, row_of(6, id, str(run, "trigger"), str(run, "state"),
                                           str(run, "scheduled_at"), run_duration(run, d, sizeof d),
                                           run_note(run)));
    }
    if (json_array_size(rows) > 1)
        table_print(rows);
    else
        printf("no runs of job %s%s\n", a->arg, a->state || a->trigger ? " match" : "");
    json_t *next = json_object_get(ans->body, "next_before");
    if (json_is_integer(next))
        printf("older runs: sluice job history %s --before %lld\n", a->arg,
               (long long)json_integer_value(next));
    json_decref(rows);
    return 0;
}

static int ended(const char *state)
{
    return !strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "canceled") ||
           !strcmp(state, "skipped");
}

/* One line for a person as a run reaches state; the error of a run that did not succeed on
 * stderr. */
static void run_line(json_t *run)
{
    const char *state = str(run, "state");
    long long id = (long long)json_integer_value(json_object_get(run, "id"));
    char d[32];
    if (ended(state) && json_is_integer(json_object_get(run, "duration_ms")))
        printf("run %lld %s in %s\n", id, state, run_duration(run, d, sizeof d));
    else
        printf("run %lld %s\n", id, state);
    fflush(stdout);
    if (ended(state) && strcmp(state, "succeeded"))
        fprintf(stderr, "sluice job run: run %lld of job %s %s: %s\n", id, str(run, "job"), state,
                *run_note(run) ? run_note(run) : "no error given");
}

/* Poll GET /api/v1/runs/{id} until the run has ended, a line per state change (--json: on
 * stderr when it is a terminal, and the final run as the server gave it on stdout). 0 when
 * it succeeded, 1 otherwise. */
static int follow(const struct job_args *a, json_t *run)
{
    char url[1024], last[32];
    long long id = (long long)json_integer_value(json_object_get(run, "id"));
    int tty = isatty(STDERR_FILENO);
    snprintf(url, sizeof url, "%s/api/v1/runs/%lld", a->base, id);
    snprintf(last, sizeof last, "%s", str(run, "state"));
    if (!a->json)
        run_line(run);
    else if (tty)
        fprintf(stderr, "run %lld %s\n", id, last);
    for (;;) {
        struct answer ans;
        usleep(250000);
        call("GET", url, NULL, &ans);
        if (ans.status != 200 || !json_is_object(ans.body)) {
            if (a->json)
                print_raw(&ans);
            else
                say_error("run", &ans);
            answer_release(&ans);
            return 1;
        }
        const char *state = str(ans.body, "state");
        int done = ended(state);
        if (strcmp(state, last)) {
            snprintf(last, sizeof last, "%s", state);
            if (!a->json)
                run_line(ans.body);
            else if (tty)
                fprintf(stderr, "run %lld %s\n", id, state);
        }
        int rc = strcmp(state, "succeeded") ? 1 : 0;
        if (done && a->json)
            print_raw(&ans);
        answer_release(&ans);
        if (done)
            return rc;
    }
}

static int run_job(const struct job_args *a, const char *url)
{
    char hdr[300] = "";
    struct answer ans;
    if (a->idem)
        snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", a->idem);
    call("POST", url, a->idem ? hdr : NULL, &ans);
    json_t *run = json_object_get(ans.body, "run");
    int rc;
    if (ok(&ans) && json_is_object(run) && a->wait) {
        rc = follow(a, run);
    } else if (a->json) {
        rc = print_raw(&ans);
    } else if (ok(&ans) && json_is_object(run)) {
        printf("run %lld of job %s %s (trigger %s)\n",
               (long long)json_integer_value(json_object_get(run, "id")), a->arg, str(run, "state"),
               str(run, "trigger"));
        rc = 0;
    } else if (ans.status == 409) {
        json_t *e = json_object_get(ans.body, "error");
        long long other = (long long)json_integer_value(json_object_get(e, "run_id"));
        fprintf(stderr,
                "sluice job run: job %s not started: its run %lld is %s and the job's overlap "
                "is skip (see it with `sluice job history %s`, stop it with `sluice job cancel "
                "%lld`)\n",
                a->arg, other, str(e, "run_state"), a->arg, other);
        rc = 1;
    } else {
        rc = say_error("run", &ans);
    }
    answer_release(&ans);
    return rc;
}

/* The answer to a pause, resume or cancel for a person. 0. */
static int action_line(const struct job_args *a, struct answer *ans)
{
    json_t *j = ans->body;
    if (strcmp(a->sub, "cancel") != 0) {
        json_t *next = json_array_get(json_object_get(j, "next_runs"), 0);
        printf("job %s %s (%s; next run %s)\n", a->arg,
               !strcmp(a->sub, "pause") ? "paused" : "resumed", job_status(j), str(next, "local"));
    } else if (!strcmp(str(j, "state"), "canceled")) {
        printf("run %s canceled\n", a->arg);
    } else {
        printf("run %s: cancel requested; it is %s and stops at its runner's next check\n", a->arg,
               str(j, "state"));
    }
    return 0;
}

static int positive(const char *s)
{
    if (!s)
        return 1;
    if (!*s)
        return 0;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return strtoll(s, NULL, 10) > 0;
}

/* The request a parsed command line makes, then its answer printed. */
static int job_do(const struct job_args *a)
{
    struct buf url;
    buf_init(&url, 8192);
    buf_appends(&url, a->base);
    char *esc = a->arg ? curl_easy_escape(NULL, a->arg, 0) : NULL;
    const char *method = "GET";
    int (*human)(const struct job_args *, struct answer *) = action_line;
    if (!strcmp(a->sub, "list")) {
        buf_appends(&url, "/api/v1/jobs");
        human = list_jobs;
    } else if (!strcmp(a->sub, "show")) {
        buf_printf(&url, "/api/v1/jobs/%s", esc);
        human = show_job;
    } else if (!strcmp(a->sub, "history")) {
        buf_printf(&url, "/api/v1/jobs/%s/runs", esc);
        client_param(&url, "state", a->state);
        client_param(&url, "trigger", a->trigger);
        client_param(&url, "limit", a->limit);
        client_param(&url, "before", a->before);
        human = history;
    } else if (!strcmp(a->sub, "run")) {
        buf_printf(&url, "/api/v1/jobs/%s/trigger", esc);
    } else if (!strcmp(a->sub, "cancel")) {
        buf_printf(&url, "/api/v1/runs/%s/cancel", esc);
        method = "POST";
    } else {
        buf_printf(&url, "/api/v1/jobs/%s/%s", esc, a->sub);
        method = "POST";
    }
    curl_free(esc);
    int rc;
    if (!strcmp(a->sub, "run")) {
        rc = run_job(a, url.data);
    } else {
        struct answer ans;
        call(method, url.data, NULL, &ans);
        if (a->json)
            rc = print_raw(&ans);
        else if (!ok(&ans) || !json_is_object(ans.body))
            rc = say_error(a->sub, &ans);
        else
            rc = human(a, &ans);
        answer_release(&ans);
    }
    buf_release(&url);
    return rc;
}

int cmd_job(int argc, char **argv)
{
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"wait", no_argument, NULL, 'w'},
                                         {"idempotency-key", required_argument, NULL, 'k'},
                                         {"state", required_argument, NULL, 's'},
                                         {"trigger", required_argument, NULL, 't'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {"before", required_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    const char *usage = cli_find("job")->usage, *flag_url = NULL;
    struct job_args a = {0};
    int o;
    if (argc < 2) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    a.sub = argv[1];
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            flag_url = optarg;
            break;
        case 'j':
            a.json = 1;
            break;
        case 'w':
            a.wait = 1;
            break;
        case 'k':
            a.idem = optarg;
            break;
        case 's':
            a.state = optarg;
            break;
        case 't':
            a.trigger = optarg;
            break;
        case 'n':
            a.limit = optarg;
            break;
        case 'b':
            a.before = optarg;
            break;
        default:
            fprintf(stderr, "%s", usage);
            return 2;
        }
    }
    static const char *subs[] = {"list", "show", "run", "history", "pause", "resume", "cancel"};
    int known = 0, is_list = !strcmp(a.sub, "list"), is_run = !strcmp(a.sub, "run"),
        is_hist = !strcmp(a.sub, "history");
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        known |= !strcmp(a.sub, subs[i]);
    a.arg = optind < argc ? argv[optind] : NULL;
    if (!known || optind + (is_list ? 0 : 1) != argc || ((a.wait || a.idem) && !is_run) ||
        ((a.state || a.trigger || a.limit || a.before) && !is_hist)) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    if (!strcmp(a.sub, "cancel") && !positive(a.arg)) {
        fprintf(stderr, "sluice job cancel: RUN_ID is a run's id, a positive integer, not '%s'\n",
                a.arg);
        return 2;
    }
    if (!positive(a.limit) || !positive(a.before)) {
        fprintf(stderr, "sluice job history: --%s takes a positive integer, not '%s'\n",
                positive(a.limit) ? "before" : "limit", positive(a.limit) ? a.before : a.limit);
        return 2;
    }
    int ctl = 0;
    for (const char *p = a.idem; p && *p; p++)
        ctl |= (unsigned char)*p < 0x20 || *p == 0x7f;
    if (a.idem && (!*a.idem || strlen(a.idem) > 255 || ctl)) {
        fprintf(stderr, "sluice job run: --idempotency-key takes 1 to 255 characters, none of "
                        "them a control character\n");
        return 2;
    }
    struct buf base;
    buf_init(&base, 4096);
    client_base(flag_url, &base);
    a.base = base.data;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = job_do(&a);
    curl_global_cleanup();
    buf_release(&base);
    return rc;
}
