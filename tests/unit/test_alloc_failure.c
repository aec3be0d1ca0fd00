/*
 * test_alloc_failure.c - sluice's allocations (its own and jansson's) failing one at a time
 * (util/mem.h, mem_fail_at) during the three operations that acknowledge data: a push
 * (ingest_prepare on the caller, ingest_apply on the writer; and sent again, replayed), a batch
 * pass (batch_pass_new/_header/_run with the writer) and DLQ retries (dlq_apply on the writer: one
 * entry, a bulk retry, a batch's record), on a temp SQLite store.
 *
 * For N = 1, 2, ... the N-th allocation from the start of the operation fails, until an
 * operation runs with no failure injected. Each time: nothing crashes (and, under ASan,
 * `make unit-asan`, nothing leaks: finish() checks); a failed operation gives the client a 5xx (the
 * status the handler would send, taken from the same results as h_events.c and h_dlq.c do) or, for
 * a batch, a reason; a 2xx is the full, right answer (never a row silently rejected); the rows
 * stored before (acknowledged) are all still there, and a failed operation stored nothing; and the
 * next operation, with nothing failing, succeeds.
 *
 * In process, not through HTTP: the N-th allocation is then the same one each run (no
 * connection, timer or loop allocating in between), the writer is the real one, and the
 * whole sweep takes a few seconds. jansson allocates through util/mem here as in sluice
 * (main.c); SQLite's own allocations are not counted (mem.h).
 */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch/batch.h"
#include "batch/process.h"
#include "config/config.h"
#include "ingest/dlq.h"
#include "ingest/ingest.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/mem.h"
#include "writer/writer.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define MAX_N 20000 /* an operation needing more allocations than this fails the test */

/* ---- fixture: a temp data_dir with t.db, the dataset synced, the writer running ------ */

static char dir[64], uri[160];
static struct sluice_config cfg;
static const struct dataset_config *ds;
static struct store *st; /* the test's own connection: setup, checks, the batch's files */
static struct writer *w;
static int64_t stored; /* rows acknowledged so far: the store must hold exactly these */
static long long next_id = 1;
static int set_up; /* teardown() has something to release */
/* What the first successful run of each operation answered and stored (expect_content) */
static char *push_answer, *push_content, *pass_content, *retry_content, *retry_batch_content,
    *replay_answer;

#define YAML                                                                                       \
    "data_dir: %s\n"                                                                               \
    "storage: %s\n"                                                                                \
    "datasets:\n"                                                                                  \
    "  - name: t\n"                                                                                \
    "    key: id\n"                                                                                \
    "    on_duplicate: reject\n"                                                                   \
    "    error_threshold_percent: 50\n"                                                            \
    "    schema:\n"                                                                                \
    "      type: object\n"                                                                         \
    "      required: [id, v]\n"                                                                    \
    "      properties:\n"                                                                          \
    "        id: {type: integer}\n"                                                                \
    "        v: {type: string, pattern: \"^[a-z]+$\", maxLength: 20}\n"                            \
    "        d: {type: string, format: date}\n"                                                    \
    "        n: {type: number, minimum: 0}\n"

static void setup(void)
{
    char err[512] = "", path[128];
    json_set_alloc_funcs(sl_malloc, free); /* as main.c: jansson's allocations fail too */
    alarm(300); /* a hang fails the test instead of blocking `make unit` */
    snprintf(dir, sizeof dir, "/tmp/sluice-alloc-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(uri, sizeof uri, "sqlite:%s/t.db", dir);
    snprintf(path, sizeof path, "%s/batches", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/sluice.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, YAML, dir, uri);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(config_load(path, &cfg, err, sizeof err), 0, "%s", err);
    unlink(path);
    ds = config_dataset(&cfg, "t");
    cr_assert_not_null(ds);
    st = store_open(uri, 0, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    cr_assert_eq(store_migrate(st), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_dataset_sync(st, ds, err, sizeof err), 0, "%s", err);
    w = writer_start(uri, 100, 10000, err, sizeof err);
    cr_assert_not_null(w, "%s", err);
    stored = 0;
    set_up = 1;
}

static void teardown(void)
{
    if (!set_up)
        return;
    set_up = 0;
    mem_fail_at(0, 0);
    char **firsts[] = {&push_answer,   &push_content,        &pass_content,
                       &retry_content, &retry_batch_content, &replay_answer};
    for (size_t i = 0; i < sizeof firsts / sizeof firsts[0]; i++) {
        free(*firsts[i]);
        *firsts[i] = NULL;
    }
    writer_stop(w);
    store_close(st);
    config_release(&cfg);
    w = NULL;
    st = NULL;
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* The end of a test: everything released, then (under ASan) nothing may be left: what
 * LeakSanitizer finds now, a failed allocation's unwinding lost (a leak reported only at
 * exit would not fail the test). */
static void finish(void)
{
    teardown();
#if defined(__SANITIZE_ADDRESS__)
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (the report is above)");
#endif
}

/* The text of a query's first column in its first row (read from the file directly, not
 * through the store), "" when none; caller frees. sql's %lld are base. */
static char *digest(const char *fmt, long long base, const char *key)
{
    char path[96], *sql = sqlite3_mprintf(fmt, base, base, base + 3, key);
    sqlite3 *db;
    sqlite3_stmt *q;
    snprintf(path, sizeof path, "%s/t.db", dir);
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    const unsigned char *t = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_text(q, 0) : NULL;
    char *out = strdup(t ? (const char *)t : "");
    sqlite3_finalize(q);
    sqlite3_close(db);
    sqlite3_free(sql);
    cr_assert_not_null(out);
    return out;
}

/* What the 4 rows from id base on hold (relative to base), with the DLQ entries of the
 * ingest or batch key: the same after every successful run of an operation. */
#define CONTENT                                                                                    \
    "SELECT coalesce((SELECT group_concat(x, ';') FROM (SELECT (id - %lld) || ',' || quote(v)"     \
    " || ',' || quote(d) || ',' || quote(n) || ',' || quote(_extra) || ',' || quote(_source) AS x" \
    " FROM ds_t WHERE id BETWEEN %lld AND %lld ORDER BY id)), '') || ' | ' || coalesce((SELECT"    \
    " group_concat(row_no || ',' || errors || ',' || codes || ',' || status, ';') FROM dlq"        \
    " WHERE ingest_id = %Q), '')"

/* The content of a successful run, against the first one's (*first, set then). */
static void expect_content(char **first, long long base, const char *key, const char *what, long n)
{
    char *got = digest(CONTENT, base, key);
    if (!*first)
        *first = got;
    else {
        cr_assert_str_eq(got, *first, "%s, allocation %ld failing: stored\n%s\ninstead of\n%s",
                         what, n, got, *first);
        free(got);
    }
}

/* The rows acknowledged so far are there, and nothing else. */
static void expect_stored(const char *what, long n)
{
    int64_t got = store_row_count(st, "t");
    cr_assert_eq(got, stored, "%s, allocation %ld failing: %lld rows stored, %lld acknowledged",
                 what, n, (long long)got, (long long)stored);
}

/* Run op with the 1st, 2nd, ... allocation failing (every: and each one after it too), until
 * it runs with no failure injected; then once more with nothing failing. */
static void sweep(int (*op)(long n, int every), const char *what)
{
    for (int every = 0; every <= 1; every++) {
        long n = 1;
        while (op(n, every))
            cr_assert_lt(++n, MAX_N, "%s: still failing after %d allocations", what, MAX_N);
        cr_assert_geq(n, 2, "%s allocated nothing: mem_fail_at is not reached", what);
        cr_log_info("%s: %ld allocations failed in turn%s", what, n - 1,
                    every ? ", and every one after each" : "");
        op(0, 0);
    }
}

/* ---- a push --------------------------------------------------------------------------- */

/* The status h_events.c sends for a push that ended with e (ingest_prepare) and rc
 * (writer_run: the job's apply, or the commit's failure). */
static int push_status(enum sluice_err e, int rc, const struct ingest *in)
{
    if (e != SLUICE_OK)
        return err_status(e);
    if (rc == WRITER_UNKNOWN)
        return err_status(ERR_COMMIT_UNKNOWN);
    if (rc < 0)
        return err_status(ERR_UNAVAILABLE);
    return in->status;
}

/* A push of three valid rows and one invalid one, with an Idempotency-Key, with the n-th
 * allocation failing (0: none). Returns whether an allocation failed. */
static int push(long n, int every)
{
    char body[512], key[32], msg[512] = "";
    long long id = next_id;
    next_id += 4;
    snprintf(body, sizeof body,
             "{\"id\":%lld,\"v\":\"abc\",\"d\":\"2024-02-29\",\"n\":1.5}\n"
             "{\"id\":%lld,\"v\":\"def\",\"extra\":{\"a\":[1,2]}}\n"
             "{\"id\":%lld,\"v\":\"BAD\",\"d\":\"2024-13-01\"}\n"
             "{\"id\":%lld,\"v\":\"ghi\",\"n\":0}\n",
             id, id + 1, id + 2, id + 3);
    snprintf(key, sizeof key, "key-%lld", id);
    struct ingest in = {0};
    char *copy = strdup(body);
    cr_assert_not_null(copy);
    mem_fail_at(n, every);
    enum sluice_err e = ingest_prepare(&in, ds, &cfg, INGEST_NDJSON, copy, strlen(copy), "test",
                                       key, msg, sizeof msg);
    int rc = e == SLUICE_OK ? writer_run(w, &in.job) : -1;
    int failed = mem_failures() > 0;
    mem_fail_at(0, 0);
    int status = push_status(e, rc, &in);
    if (status < 500) {
        cr_assert_eq(status, 207, "push, allocation %ld failing: %d %s", n, status,
                     in.response ? in.response : msg);
        cr_assert(in.accepted == 3 && in.rejected == 1 && in.response,
                  "push, allocation %ld failing: %zu accepted, %zu rejected", n, in.accepted,
                  in.rejected);
        /* the answer after its ingest_id, as the first time */
        const char *tail = strstr(in.response, "\"received\"");
        cr_assert_not_null(tail, "%s", in.response);
        if (!push_answer)
            cr_assert_not_null(push_answer = strdup(tail));
        cr_assert_str_eq(tail, push_answer, "push, allocation %ld failing: another answer", n);
        expect_content(&push_content, id, in.ingest_id, "push", n);
        stored += 3;
    } else {
        char *none = digest(CONTENT, id, in.ingest_id);
        cr_assert_str_eq(none, " | ", "push, allocation %ld failing: %d, yet stored %s", n, status,
                         none);
        free(none);
    }
    ingest_release(&in);
    expect_stored("push", n);
    return failed;
}

Test(alloc_failure, push, .init = setup, .fini = teardown)
{
    push(0, 0); /* acknowledged before any failure */
    sweep(push, "push");
    finish();
}

/* The same push sent again with its Idempotency-Key, with the n-th allocation failing (0:
 * none): the first time it is stored, then its stored answer is replayed (idem_get), or a
 * 5xx. Returns whether an allocation failed. */
static int replay(long n, int every)
{
    const char *body = "{\"id\":1000000,\"v\":\"abc\"}\n{\"id\":1000001,\"v\":\"BAD\"}\n";
    char msg[512] = "";
    struct ingest in = {0};
    char *copy = strdup(body);
    cr_assert_not_null(copy);
    mem_fail_at(n, every);
    enum sluice_err e = ingest_prepare(&in, ds, &cfg, INGEST_NDJSON, copy, strlen(copy), "test",
                                       "replayed-key", msg, sizeof msg);
    int rc = e == SLUICE_OK ? writer_run(w, &in.job) : -1;
    int failed = mem_failures() > 0;
    mem_fail_at(0, 0);
    int status = push_status(e, rc, &in);
    if (status < 500) {
        cr_assert(status == 207 && in.response, "replay, allocation %ld failing: %d %s", n, status,
                  in.response ? in.response : msg);
        if (!replay_answer) { /* the first time: stored */
            cr_assert_not_null(replay_answer = strdup(in.response));
            stored += 1;
        } else {
            cr_assert(in.replayed, "replay, allocation %ld failing: not replayed", n);
            cr_assert_str_eq(in.response, replay_answer, "replay, allocation %ld failing", n);
        }
    }
    ingest_release(&in);
    expect_stored("replay", n);
    return failed;
}

Test(alloc_failure, push_replayed, .init = setup, .fini = teardown)
{
    replay(0, 0);
    sweep(replay, "replayed push");
    finish();
}

/* ---- a batch pass --------------------------------------------------------------------- */

/* A batch of three valid rows and one invalid one, kept and claimed (as a worker does)
 * into *b. */
static void new_batch(struct batch *b)
{
    char id[40], spool[160], *path = NULL;
    snprintf(id, sizeof id, "bat_%lld", next_id);
    batch_spool_path(dir, id, spool, sizeof spool);
    FILE *f = fopen(spool, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "id,v,d,n,x\n%lld,abc,2024-02-29,1.5,q\n%lld,\"de\"\"f\",,,\n%lld,BAD,,2,\n"
            "%lld,ghi,,0,\"a,b\"\n",
            next_id, next_id + 1, next_id + 2, next_id + 3);
    cr_assert_eq(fclose(f), 0);
    next_id += 4;
    cr_assert_eq(store_file_keep(st, id, spool, dir, &path), 0, "%s", store_errmsg(st));
    int64_t now = clock_wall_ms();
    struct batch nb = {.id = id,
                       .dataset = "t",
                       .source = "test",
                       .filename = "t.csv",
                       .path = path,
                       .sha256 = "0",
                       .status = "uploaded",
                       .error_threshold_percent = 50,
                       .created_ms = now};
    cr_assert_eq(store_batch_add(st, &nb), 0, "%s", store_errmsg(st));
    free(path);
    cr_assert_eq(store_begin(st), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_batch_claim(st, "w1", now, 600000, b), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));
    cr_assert_str_eq(b->id, id);
}

/* A pass over a new batch with the n-th allocation failing (0: none), as workers.c runs
 * it. Returns whether an allocation failed. */
static int pass(long n, int every)
{
    struct batch b = {0};
    new_batch(&b);
    mem_fail_at(n, every);
    struct pass *p = batch_pass_new(&cfg, ds, &b, st);
    int rc = -1;
    if (p) {
        batch_pass_set_lease(p, 600000);
        rc = batch_pass_header(p);
        if (rc == 0)
            rc = batch_pass_run(p, w);
    }
    int failed = mem_failures() > 0;
    mem_fail_at(0, 0);
    struct batch now = {0};
    cr_assert_eq(store_batch_get(st, b.id, &now), 0, "%s", store_errmsg(st));
    if (rc == 0) {
        cr_assert_str_eq(now.status, "completed", "pass, allocation %ld failing", n);
        cr_assert(b.inserted == 2 && b.invalid == 2 && b.total == 4,
                  "pass, allocation %ld failing: %lld inserted, %lld invalid of %lld", n,
                  (long long)b.inserted, (long long)b.invalid, (long long)b.total);
        expect_content(&pass_content, strtoll(b.id + 4, NULL, 10), b.id, "pass", n);
        stored += 2;
    } else {
        /* The worker records the reason (or, when the store failed, takes it up again). */
        cr_assert_neq(strcmp(now.status, "completed"), 0, "pass, allocation %ld failing", n);
        cr_assert(p == NULL || batch_pass_reason(p)[0], "pass, allocation %ld failing: rc %d", n,
                  rc);
        cr_assert_eq(store_batch_set_status(st, b.id, "failed", "test", clock_wall_ms()), 0);
    }
    batch_pass_destroy(p);
    batch_release(&now);
    batch_release(&b);
    expect_stored("pass", n);
    return failed;
}

Test(alloc_failure, batch_pass, .init = setup, .fini = teardown)
{
    pass(0, 0);
    sweep(pass, "batch pass");
    finish();
}

/* ---- a DLQ retry ---------------------------------------------------------------------- */

static const struct batch *retry_batch; /* the retried entries' batch, or NULL */
static int retry_bulk;                  /* a bulk retry (POST /dlq/retry) of the entry's id */

/* A retry of a new open entry (a pushed row, or with retry_batch set one of its CSV
 * records) that is valid now, with the n-th allocation failing (0: none). Returns whether
 * an allocation failed. */
static int retry(long n, int every)
{
    const struct batch *b = retry_batch;
    char payload[128], ingest_id[40];
    long long rowid = next_id;
    snprintf(ingest_id, sizeof ingest_id, "ing_%lld", rowid);
    if (b)
        snprintf(payload, sizeof payload, "%lld,xyz,2024-01-31,7,", next_id);
    else
        snprintf(payload, sizeof payload, "{\"id\":%lld,\"v\":\"xyz\",\"d\":\"2024-01-31\"}",
                 next_id);
    next_id++;
    struct dlq_new e = {.dataset = "t",
                        .ingest_id = ingest_id,
                        .source = "test",
                        .row = 1,
                        .payload = payload,
                        .payload_len = strlen(payload),
                        .errors_json = "[]",
                        .codes = ",",
                        .batch_id = b ? b->id : NULL,
                        .received_ms = clock_wall_ms()};
    int64_t id = 0;
    cr_assert_eq(store_dlq_add(st, &e, &id), 0, "%s", store_errmsg(st));

    struct dlq_job j = {.op = retry_bulk ? DLQ_RETRY_BULK : DLQ_RETRY,
                        .cfg = &cfg,
                        .id = id,
                        .batch_row = batch_retry_row}; /* as h_dlq.c sets it */
    if (retry_bulk) {
        cr_assert_not_null(j.ids = malloc(sizeof *j.ids));
        j.ids[0] = id;
        j.nids = 1;
    }
    j.job.apply = dlq_apply;
    j.job.nrows = 1;
    mem_fail_at(n, every);
    int rc = writer_run(w, &j.job);
    int failed = mem_failures() > 0;
    mem_fail_at(0, 0);
    /* What h_dlq.c's dlq_answer sends. */
    int status = rc == WRITER_UNKNOWN ? err_status(ERR_COMMIT_UNKNOWN)
                 : rc < 0             ? err_status(ERR_UNAVAILABLE)
                 : j.status == 200    ? 200
                                      : err_status(j.err);
    struct dlq_entry now;
    cr_assert_eq(store_dlq_get(st, id, &now), 0, "%s", store_errmsg(st));
    if (status < 500 && retry_bulk) {
        cr_assert(j.matched == 1 && j.resolved == 1 && j.still_open == 0 && !j.more,
                  "bulk retry, allocation %ld failing: %zu matched, %zu resolved, %zu open", n,
                  j.matched, j.resolved, j.still_open);
        cr_assert_str_eq(now.status, "resolved", "bulk retry, allocation %ld failing", n);
        expect_content(&retry_content, rowid, ingest_id, "bulk retry", n);
        stored++;
    } else if (status < 500) {
        cr_assert_eq(status, 200, "retry, allocation %ld failing: %d %s", n, status, j.errmsg);
        cr_assert_not_null(j.result, "retry, allocation %ld failing: no item", n);
        /* the item the client gets is the whole entry */
        const char *st_txt = json_string_value(json_object_get(j.result, "status"));
        const char *pl = json_string_value(json_object_get(j.result, "payload"));
        cr_assert(st_txt && !strcmp(st_txt, "resolved") && pl && !strcmp(pl, payload) &&
                      json_is_array(json_object_get(j.result, "errors")) &&
                      json_integer_value(json_object_get(j.result, "id")) == id,
                  "retry, allocation %ld failing: item %s", n,
                  st_txt ? st_txt : "without a status");
        cr_assert_str_eq(now.status, "resolved", "retry, allocation %ld failing: %s", n,
                         now.errors_json ? now.errors_json : "");
        expect_content(b ? &retry_batch_content : &retry_content, rowid, ingest_id, "retry", n);
        stored++;
    } else {
        cr_assert_str_eq(now.status, "open", "retry, allocation %ld failing", n);
    }
    dlq_entry_release(&now);
    dlq_job_release(&j);
    expect_stored("retry", n);
    return failed;
}

Test(alloc_failure, dlq_retry, .init = setup, .fini = teardown)
{
    push(0, 0);
    retry_batch = NULL;
    retry(0, 0);
    sweep(retry, "DLQ retry");
    finish();
}

/* A bulk retry of one entry lists the entries through the store (store_dlq_list). */
Test(alloc_failure, dlq_retry_bulk, .init = setup, .fini = teardown)
{
    push(0, 0);
    retry_bulk = 1;
    retry(0, 0);
    sweep(retry, "bulk DLQ retry");
    retry_bulk = 0;
    finish();
}

/* A retry of a batch's CSV record reads the batch file's header again. */
Test(alloc_failure, dlq_retry_batch_row, .init = setup, .fini = teardown)
{
    pass(0, 0);
    struct batch b = {0};
    cr_assert_eq(store_batch_get(st, "bat_1", &b), 0, "%s", store_errmsg(st));
    retry_batch = &b;
    retry(0, 0);
    sweep(retry, "DLQ retry of a batch row");
    retry_batch = NULL;
    batch_release(&b);
    finish();
}
