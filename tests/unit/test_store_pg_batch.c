/*
 * test_store_pg_batch.c - the PostgreSQL backend's batches, row errors, keys and
 * audit log (pg_batch.c, pg_auth.c) against a real server: skipped
 * unless SLUICE_TEST_PG holds a conninfo ("" = the PG* environment), e.g.
 *   pg_virtualenv sh -c 'SLUICE_TEST_PG="" build/tests/test_store_pg_batch'
 * Each test starts from an empty schema sluice_b; an advisory lock keeps the
 * tests (run in parallel by Criterion) from sharing it. What the store wrote is
 * checked with SQL on the same connection, not only through the store.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg_test.h"
#include "store/pg/pg_internal.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static struct store *st;

/* ---- fixture ------------------------------------------------------------------------ */

static void raw(struct store *x, const char *sql)
{
    pg_test_exec(x, sql);
}

static int64_t raw_int(const char *sql)
{
    return pg_test_int(st, sql);
}

/* Another connection to the same schema. */
static struct store *open_more(void)
{
    return pg_test_connect("sluice_b");
}

/* Every test starts here: skip without a server, else an empty, migrated schema. */
static void start(void)
{
    st = pg_test_fresh("sluice_b", 5118802);
}

static void finish(void)
{
    if (st)
        pg_close(st);
    st = NULL;
}

TestSuite(pg_batch, .fini = finish);

/* A batch record with the given id, dataset, source, filename and creation time. */
static void add(const char *id, const char *ds, const char *src, const char *file, int64_t created)
{
    struct batch b = {.id = (char *)id,
                      .dataset = (char *)ds,
                      .source = (char *)src,
                      .filename = (char *)file,
                      .path = "/tmp/x",
                      .sha256 = "abc",
                      .bytes = 1234,
                      .error_threshold_percent = 2.5,
                      .created_ms = created};
    cr_assert_eq(pg_batch_add(st, &b), 0, "add %s: %s", id, pg_errmsg(st));
}

/* The ids of a list, comma-separated, in out. */
static void list_ids(const struct batch_filter *f, char *out, size_t cap)
{
    struct batch *v;
    size_t n;
    cr_assert_eq(pg_batch_list(st, f, &v, &n), 0, "list: %s", pg_errmsg(st));
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i ? "," : "", v[i].id);
        batch_release(&v[i]);
    }
    free(v);
}

/* ---- batches ------------------------------------------------------------------------ */

Test(pg_batch, add_get_list)
{
    start();
    add("b1", "orders", "erp", "orders-jan.csv", 1000);
    add("b2", "orders", "shop", "orders-feb.csv", 2000);
    add("b3", "users", "erp", "users.csv", 3000);
    add("b4", "orders", NULL, NULL, 4000);
    add("b5", "users", "shop", "more-orders.csv", 5000);

    struct batch b;
    cr_assert_eq(pg_batch_get(st, "b2", &b), 0, "%s", pg_errmsg(st));
    cr_assert_str_eq(b.id, "b2");
    cr_assert_str_eq(b.dataset, "orders");
    cr_assert_str_eq(b.source, "shop");
    cr_assert_str_eq(b.filename, "orders-feb.csv");
    cr_assert_str_eq(b.path, "/tmp/x");
    cr_assert_str_eq(b.sha256, "abc");
    cr_assert_str_eq(b.status, "uploaded");
    cr_assert_null(b.rejection_reason);
    cr_assert_null(b.worker);
    cr_assert_eq(b.bytes, 1234);
    cr_assert_eq(b.error_threshold_percent, 2.5);
    cr_assert_eq(b.created_ms, 2000);
    cr_assert_eq(b.updated_ms, 2000);
    cr_assert_eq(b.attempts, 0);
    cr_assert_eq(b.lease_until_ms, 0);
    batch_release(&b);
    cr_assert_eq(pg_batch_get(st, "b4", &b), 0);
    cr_assert_null(b.source);
    cr_assert_null(b.filename);
    batch_release(&b);
    cr_assert_eq(pg_batch_get(st, "nope", &b), 1);
    cr_assert_neq(pg_batch_add(st, &(struct batch){.id = "b1",
                                                   .dataset = "orders",
                                                   .path = "/p",
                                                   .sha256 = "x",
                                                   .created_ms = 1}),
                  0, "a duplicate id is refused");

    char ids[256];
    list_ids(&(struct batch_filter){.limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "b1,b2,b3,b4,b5");
    list_ids(&(struct batch_filter){.dataset = "orders", .limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "b1,b2,b4");
    list_ids(&(struct batch_filter){.source = "erp", .limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "b1,b3");
    list_ids(&(struct batch_filter){.filename_contains = "orders", .limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "b1,b2,b5");
    list_ids(&(struct batch_filter){.filename_contains = "%", .limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "", "no LIKE pattern: '%%' is literal");
    list_ids(&(struct batch_filter){.created_after_ms = 3000, .limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "b4,b5");
    list_ids(&(struct batch_filter){.dataset = "users", .source = "shop", .limit = 100}, ids,
             sizeof ids);
    cr_assert_str_eq(ids, "b5");
    list_ids(&(struct batch_filter){.status = "completed", .limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "");
    list_ids(&(struct batch_filter){.status = "uploaded", .dataset = "orders", .limit = 100}, ids,
             sizeof ids);
    cr_assert_str_eq(ids, "b1,b2,b4");

    /* keyset pages of 2 */
    list_ids(&(struct batch_filter){.limit = 2}, ids, sizeof ids);
    cr_assert_str_eq(ids, "b1,b2");
    list_ids(&(struct batch_filter){.after_id = "b2", .limit = 2}, ids, sizeof ids);
    cr_assert_str_eq(ids, "b3,b4");
    list_ids(&(struct batch_filter){.after_id = "b4", .limit = 2}, ids, sizeof ids);
    cr_assert_str_eq(ids, "b5");
    list_ids(&(struct batch_filter){.after_id = "b5", .limit = 2}, ids, sizeof ids);
    cr_assert_str_eq(ids, "");
    list_ids(&(struct batch_filter){.after_id = "b1", .dataset = "orders", .limit = 1}, ids,
             sizeof ids);
    cr_assert_str_eq(ids, "b2");

    json_t *h;
    cr_assert_eq(pg_batch_history(st, "b1", &h), 0);
    cr_assert_eq(json_array_size(h), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 0), "status")),
                     "uploaded");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(h, 0), "at_ms")), 1000);
    cr_assert(json_is_null(json_object_get(json_array_get(h, 0), "detail")));
    json_decref(h);
}

Test(pg_batch, claim_order_and_leases)
{
    start();
    /* ids in another order than their creation */
    add("c", "orders", NULL, NULL, 100);
    add("a", "orders", NULL, NULL, 200);
    add("b", "orders", NULL, NULL, 300);
    struct batch b;
    const char *want[] = {"c", "a", "b"};
    const char *workers[] = {"n1/w1", "n1/w2", "n1/w3"}; /* a worker would take back its own */
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        cr_assert_eq(pg_batch_claim(st, workers[i], 10000, 60000, &b), 0, "%s", pg_errmsg(st));
        cr_assert_str_eq(b.id, want[i]);
        cr_assert_str_eq(b.status, "staging");
        cr_assert_eq(b.attempts, 1);
        cr_assert_eq(b.lease_until_ms, 70000);
        cr_assert_eq(b.heartbeat_ms, 10000);
        cr_assert_eq(b.started_ms, 10000);
        cr_assert_eq(b.updated_ms, 10000);
        batch_release(&b);
    }
    cr_assert_eq(pg_batch_claim(st, "n2/w1", 20000, 60000, &b), 1, "nothing claimable");

    /* the same worker after a restart takes back what it held (oldest first) */
    cr_assert_eq(pg_batch_claim(st, "n1/w2", 20000, 60000, &b), 0);
    cr_assert_str_eq(b.id, "a");
    cr_assert_eq(b.attempts, 2);
    batch_release(&b);

    /* an expired lease: another worker takes the oldest */
    cr_assert_eq(pg_batch_claim(st, "n2/w1", 75000, 60000, &b), 0);
    cr_assert_str_eq(b.id, "c");
    cr_assert_str_eq(b.worker, "n2/w1");
    cr_assert_eq(b.attempts, 2);
    cr_assert_eq(b.lease_until_ms, 135000);
    batch_release(&b);

    json_t *h;
    cr_assert_eq(pg_batch_history(st, "c", &h), 0);
    cr_assert_eq(json_array_size(h), 3);
    json_t *last = json_array_get(h, 2);
    cr_assert_str_eq(json_string_value(json_object_get(last, "status")), "staging");
    cr_assert_str_eq(json_string_value(json_object_get(last, "detail")), "n2/w1");
    cr_assert_eq(json_integer_value(json_object_get(last, "at_ms")), 75000);
    json_decref(h);

    /* finished batches are never claimed, even with an old lease */
    cr_assert_eq(pg_batch_set_status(st, "a", "completed", NULL, 76000), 0);
    cr_assert_eq(pg_batch_set_status(st, "b", "failed", "bad", 76000), 0);
    cr_assert_eq(pg_batch_claim(st, "n3/w1", 999999, 60000, &b), 0);
    cr_assert_str_eq(b.id, "c");
    batch_release(&b);
    cr_assert_eq(pg_batch_claim(st, "n4/w1", 999999, 60000, &b), 1);
}

Test(pg_batch, claim_skips_locked_batches)
{
    start();
    add("x1", "orders", NULL, NULL, 100);
    add("x2", "orders", NULL, NULL, 200);
    struct store *other = open_more();
    raw(other, "SET statement_timeout = '5s'"); /* fail rather than hang if it waited */
    struct batch a, b;
    raw(st, "BEGIN");
    cr_assert_eq(pg_batch_claim(st, "n1/w1", 1000, 60000, &a), 0, "%s", pg_errmsg(st));
    cr_assert_str_eq(a.id, "x1");
    /* x1 is locked by the open transaction: the other node takes x2 without waiting */
    cr_assert_eq(pg_batch_claim(other, "n2/w1", 1000, 60000, &b), 0, "%s", pg_errmsg(other));
    cr_assert_str_eq(b.id, "x2");
    batch_release(&b);
    cr_assert_eq(pg_batch_claim(other, "n3/w1", 1000, 60000, &b), 1, "%s", pg_errmsg(other));
    raw(st, "COMMIT");
    batch_release(&a);
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_events WHERE status = 'staging'"), 2);
    pg_close(other);
}

#define NCLAIM 40

struct claimer {
    const char *node;
    char ids[NCLAIM][16];
    int n, errors;
    char err[512];
};

/* Claims until nothing is left, each claim in a transaction held open a moment. No Criterion
 * assertions here (another thread): the test checks what it recorded. */
static void *claim_loop(void *arg)
{
    struct claimer *c = arg;
    char err[256];
    struct store *x = pg_open(getenv("SLUICE_TEST_PG"), 0, err, sizeof err);
    if (!x) {
        c->errors++;
        snprintf(c->err, sizeof c->err, "%s", err);
        return NULL;
    }
    PQclear(PQexec(PG(x)->conn, "SET search_path TO sluice_b"));
    for (int i = 0; i < 2 * NCLAIM; i++) {
        struct batch b;
        char worker[64]; /* a new worker each time: one would take back what it holds */
        snprintf(worker, sizeof worker, "%s/w%d", c->node, i);
        PQclear(PQexec(PG(x)->conn, "BEGIN"));
        int rc = pg_batch_claim(x, worker, 1000, 600000, &b);
        if (rc == 0) {
            if (c->n < NCLAIM)
                snprintf(c->ids[c->n], sizeof c->ids[0], "%s", b.id);
            c->n++;
            batch_release(&b);
            usleep(2000);
        }
        PQclear(PQexec(PG(x)->conn, "COMMIT"));
        if (rc < 0) {
            c->errors++;
            snprintf(c->err, sizeof c->err, "%s", pg_errmsg(x));
        }
        if (rc != 0)
            break;
    }
    pg_close(x);
    return NULL;
}

Test(pg_batch, concurrent_claims_take_each_batch_once)
{
    start();
    for (int i = 0; i < NCLAIM; i++) {
        char id[16];
        snprintf(id, sizeof id, "k%02d", i);
        add(id, "orders", NULL, NULL, 100 + i);
    }
    struct claimer c[2] = {{.node = "n1"}, {.node = "n2"}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, claim_loop, &c[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(c[i].errors, 0, "claimer %d: %s", i, c[i].err);
    cr_assert_eq(c[0].n + c[1].n, NCLAIM, "claimed %d + %d", c[0].n, c[1].n);
    cr_assert(c[0].n > 0 && c[1].n > 0, "both nodes got work: %d, %d", c[0].n, c[1].n);
    int seen[NCLAIM] = {0};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < c[i].n; j++)
            seen[atoi(c[i].ids[j] + 1)]++;
    for (int i = 0; i < NCLAIM; i++)
        cr_assert_eq(seen[i], 1, "k%02d claimed %d times", i, seen[i]);
    cr_assert_eq(raw_int("SELECT count(*) FROM batches WHERE attempts = 1 AND status = 'staging'"),
                 NCLAIM);
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_events WHERE status = 'staging'"), NCLAIM);
}

Test(pg_batch, status_history_and_reason)
{
    start();
    add("s1", "orders", NULL, NULL, 100);
    struct batch b;
    cr_assert_eq(pg_batch_claim(st, "n1/w1", 1000, 60000, &b), 0);
    batch_release(&b);
    cr_assert_eq(pg_batch_set_status(st, "s1", "validating", NULL, 2000), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_batch_set_status(st, "s1", "inserting", "note", 3000), 0);
    cr_assert_eq(pg_batch_get(st, "s1", &b), 0);
    cr_assert_str_eq(b.status, "inserting");
    cr_assert_null(b.rejection_reason, "only failed sets the reason");
    cr_assert_str_eq(b.worker, "n1/w1");
    cr_assert_eq(b.lease_until_ms, 61000);
    cr_assert_eq(b.updated_ms, 3000);
    cr_assert_eq(b.finished_ms, 0);
    batch_release(&b);

    cr_assert_eq(pg_batch_set_status(st, "s1", "failed", "too many errors", 4000), 0);
    cr_assert_eq(pg_batch_get(st, "s1", &b), 0);
    cr_assert_str_eq(b.status, "failed");
    cr_assert_str_eq(b.rejection_reason, "too many errors");
    cr_assert_eq(b.finished_ms, 4000);
    cr_assert_null(b.worker);
    cr_assert_eq(b.lease_until_ms, 0);
    cr_assert_eq(b.attempts, 1);
    batch_release(&b);
    cr_assert_eq(raw_int("SELECT count(*) FROM batches WHERE lease_until_ms IS NULL"), 1);

    /* sent back: fresh again */
    cr_assert_eq(pg_batch_set_status(st, "s1", "uploaded", "reprocess", 5000), 0, "%s",
                 pg_errmsg(st));
    cr_assert_eq(pg_batch_get(st, "s1", &b), 0);
    cr_assert_str_eq(b.status, "uploaded");
    cr_assert_null(b.rejection_reason);
    cr_assert_eq(b.finished_ms, 0);
    cr_assert_eq(b.attempts, 0);
    batch_release(&b);

    cr_assert_eq(pg_batch_claim(st, "n1/w1", 6000, 60000, &b), 0);
    batch_release(&b);
    cr_assert_eq(pg_batch_set_status(st, "s1", "completed", NULL, 7000), 0);
    cr_assert_eq(pg_batch_get(st, "s1", &b), 0);
    cr_assert_str_eq(b.status, "completed");
    cr_assert_eq(b.finished_ms, 7000);
    cr_assert_null(b.worker);
    cr_assert_null(b.rejection_reason);
    batch_release(&b);

    json_t *h;
    cr_assert_eq(pg_batch_history(st, "s1", &h), 0);
    const char *st_want[] = {"uploaded", "staging",  "validating", "inserting",
                             "failed",   "uploaded", "staging",    "completed"};
    const char *det_want[] = {NULL,        "n1/w1", NULL, "note", "too many errors",
                              "reprocess", "n1/w1", NULL};
    const int64_t at_want[] = {100, 1000, 2000, 3000, 4000, 5000, 6000, 7000};
    cr_assert_eq(json_array_size(h), ARRAY_SIZE(st_want));
    for (size_t i = 0; i < ARRAY_SIZE(st_want); i++) {
        json_t *e = json_array_get(h, i);
        cr_assert_str_eq(json_string_value(json_object_get(e, "status")), st_want[i]);
        cr_assert_eq(json_integer_value(json_object_get(e, "at_ms")), at_want[i]);
        json_t *d = json_object_get(e, "detail");
        if (det_want[i])
            cr_assert_str_eq(json_string_value(d), det_want[i], "event %zu", i);
        else
            cr_assert(json_is_null(d), "event %zu", i);
    }
    json_decref(h);

    /* a missing batch: nothing changes, no event */
    cr_assert_eq(pg_batch_set_status(st, "nope", "failed", "x", 8000), 0);
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_events WHERE batch_id = 'nope'"), 0);
}

Test(pg_batch, heartbeat_counts_threshold)
{
    start();
    add("h1", "orders", NULL, NULL, 100);
    struct batch b;
    cr_assert_eq(pg_batch_claim(st, "n1/w1", 1000, 60000, &b), 0);
    batch_release(&b);
    cr_assert_eq(pg_batch_heartbeat(st, "h1", "n2/w1", 5000, 60000), 1, "not n2's batch");
    cr_assert_eq(pg_batch_get(st, "h1", &b), 0);
    cr_assert_eq(b.heartbeat_ms, 1000, "another worker's heartbeat changes nothing");
    cr_assert_eq(b.lease_until_ms, 61000);
    batch_release(&b);
    cr_assert_eq(pg_batch_heartbeat(st, "h1", "n1/w1", 5000, 30000), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_batch_get(st, "h1", &b), 0);
    cr_assert_eq(b.heartbeat_ms, 5000);
    cr_assert_eq(b.lease_until_ms, 35000);
    batch_release(&b);
    /* the renewed lease protects it from another node until it expires */
    cr_assert_eq(pg_batch_claim(st, "n2/w1", 34000, 60000, &b), 1);
    cr_assert_eq(pg_batch_claim(st, "n2/w1", 35001, 60000, &b), 0);
    cr_assert_str_eq(b.id, "h1");
    batch_release(&b);

    struct batch c = {.id = "h1", .total = 10, .inserted = 6, .invalid = 3, .duplicate = 1};
    cr_assert_eq(pg_batch_set_counts(st, &c), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_batch_set_threshold(st, "h1", 0.1 + 0.2, 9000), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_batch_get(st, "h1", &b), 0);
    cr_assert_eq(b.total, 10);
    cr_assert_eq(b.inserted, 6);
    cr_assert_eq(b.invalid, 3);
    cr_assert_eq(b.duplicate, 1);
    cr_assert_eq(b.error_threshold_percent, 0.1 + 0.2, "the double survives exactly");
    cr_assert_eq(b.updated_ms, 9000);
    batch_release(&b);
}

/* ---- row errors ---------------------------------------------------------------------- */

Test(pg_batch, errors_keyset_pages)
{
    start();
    add("e1", "orders", NULL, NULL, 100);
    add("e2", "orders", NULL, NULL, 100);
    /* row 3 has three errors, added in two calls, so pages of 2 end inside it; rows come
     * out of order */
    struct batch_error_new e1[] = {{5, "REQUIRED", "name", "name is required"},
                                   {3, "OUT_OF_RANGE", "qty", "qty too big"},
                                   {3, "TYPE", NULL, "row is not an object"},
                                   {1, "TYPE", "qty", "not a number"}};
    struct batch_error_new e2[] = {{3, "PATTERN", "sku", "bad sku"},
                                   {2, "REQUIRED", "id", "id is required"}};
    cr_assert_eq(pg_batch_errors_add(st, "e1", e1, ARRAY_SIZE(e1), 1000), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_batch_errors_add(st, "e1", e2, ARRAY_SIZE(e2), 2000), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_batch_errors_add(st, "e2", e2, 1, 2000), 0);
    cr_assert_eq(pg_batch_errors_add(st, "e2", e2, 0, 2000), 0, "no errors: nothing to do");

    const int64_t rows[] = {1, 2, 3, 3, 3, 5};
    const char *codes[] = {"TYPE", "REQUIRED", "OUT_OF_RANGE", "TYPE", "PATTERN", "REQUIRED"};
    size_t got = 0;
    int64_t after_row = 0, after_seq = 0, last_seq = 0;
    for (int page = 0; page < 10; page++) {
        json_t *a;
        cr_assert_eq(pg_batch_errors_list(st, "e1", after_row, after_seq, 2, &a), 0, "%s",
                     pg_errmsg(st));
        size_t n = json_array_size(a);
        cr_assert(n <= 2);
        for (size_t i = 0; i < n; i++, got++) {
            json_t *o = json_array_get(a, i);
            cr_assert_lt(got, ARRAY_SIZE(rows));
            cr_assert_eq(json_integer_value(json_object_get(o, "row_number")), rows[got]);
            cr_assert_str_eq(json_string_value(json_object_get(o, "error_code")), codes[got]);
            cr_assert_not_null(json_object_get(o, "error_message"));
            cr_assert_not_null(json_object_get(o, "created_ms"));
            int64_t seq = json_integer_value(json_object_get(o, "seq"));
            if (rows[got] == 3 && got > 2)
                cr_assert_gt(seq, last_seq, "errors of one row in insertion order");
            last_seq = seq;
            after_row = rows[got];
            after_seq = seq;
        }
        json_decref(a);
        if (n == 0)
            break;
    }
    cr_assert_eq(got, ARRAY_SIZE(rows));

    json_t *a;
    cr_assert_eq(pg_batch_errors_list(st, "e1", 0, 0, 100, &a), 0);
    cr_assert_eq(json_array_size(a), 6);
    json_t *o = json_array_get(a, 3); /* row 3's error without a field */
    cr_assert_str_eq(json_string_value(json_object_get(o, "error_code")), "TYPE");
    cr_assert(json_is_null(json_object_get(o, "field")));
    cr_assert_str_eq(json_string_value(json_object_get(o, "error_message")),
                     "row is not an object");
    cr_assert_eq(json_integer_value(json_object_get(o, "created_ms")), 1000);
    o = json_array_get(a, 0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "field")), "qty");
    json_decref(a);

    /* many at once: several INSERT statements */
    struct batch_error_new *many = calloc(700, sizeof *many);
    for (int i = 0; i < 700; i++)
        many[i] = (struct batch_error_new){i + 1, "TYPE", i % 2 ? NULL : "f", "m"};
    cr_assert_eq(pg_batch_errors_add(st, "e2", many, 700, 3000), 0, "%s", pg_errmsg(st));
    free(many);
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_errors WHERE batch_id = 'e2'"), 701);
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_errors WHERE batch_id = 'e2'"
                         " AND field IS NULL"),
                 350);
    cr_assert_eq(pg_batch_errors_list(st, "e2", 699, 0, -1, &a), 0);
    cr_assert_eq(json_array_size(a), 2, "a negative limit means none");
    json_decref(a);
}

/* ---- clear, delete, sentinel queries ------------------------------------------------- */

Test(pg_batch, clear_and_delete)
{
    start();
    raw(st, "CREATE TABLE \"ds_t\" (_id BIGSERIAL PRIMARY KEY, _ingest_id TEXT NOT NULL,"
            " _source TEXT, _received_at TEXT NOT NULL, _extra TEXT, _batch_id TEXT)");
    raw(st, "CREATE INDEX ds_t_batch ON \"ds_t\"(_batch_id)");
    add("d1", "t", NULL, NULL, 100);
    add("d2", "t", NULL, NULL, 200);
    raw(st, "INSERT INTO \"ds_t\"(_ingest_id, _received_at, _batch_id) VALUES"
            " ('i1', 'now', 'd1'), ('i1', 'now', 'd1'), ('i1', 'now', 'd1'),"
            " ('i2', 'now', 'd2'), ('i2', 'now', 'd2'), ('i3', 'now', NULL)");
    struct batch_error_new e[] = {{1, "TYPE", NULL, "m"}, {2, "TYPE", NULL, "m"}};
    cr_assert_eq(pg_batch_errors_add(st, "d1", e, 2, 1000), 0);
    cr_assert_eq(pg_batch_errors_add(st, "d2", e, 1, 1000), 0);
    raw(st, "INSERT INTO dlq(dataset, ingest_id, row_no, payload, errors, codes, received_ms,"
            " updated_ms, batch_id) VALUES ('t', 'i1', 1, '\\x00'::bytea, '[]', ',TYPE,', 1, 1,"
            " 'd1'), ('t', 'i2', 1, '\\x00'::bytea, '[]', ',TYPE,', 1, 1, 'd2'),"
            " ('t', 'i3', 1, '\\x00'::bytea, '[]', ',TYPE,', 1, 1, NULL)");

    int64_t rows = -1;
    cr_assert_eq(pg_batch_clear(st, "t", "d1", 1, &rows), 0, "%s", pg_errmsg(st));
    cr_assert_eq(rows, 3);
    cr_assert_eq(raw_int("SELECT count(*) FROM ds_t"), 6, "count_only removes nothing");
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_errors"), 3);
    cr_assert_eq(raw_int("SELECT count(*) FROM dlq"), 3);

    rows = -1;
    cr_assert_eq(pg_batch_clear(st, "t", "d1", 0, &rows), 0, "%s", pg_errmsg(st));
    cr_assert_eq(rows, 3);
    cr_assert_eq(raw_int("SELECT count(*) FROM ds_t"), 3);
    cr_assert_eq(raw_int("SELECT count(*) FROM ds_t WHERE _batch_id = 'd2'"), 2);
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_errors WHERE batch_id = 'd1'"), 0);
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_errors WHERE batch_id = 'd2'"), 1);
    cr_assert_eq(raw_int("SELECT count(*) FROM dlq WHERE batch_id = 'd1'"), 0);
    cr_assert_eq(raw_int("SELECT count(*) FROM dlq"), 2);
    cr_assert_eq(pg_batch_clear(st, "t", "d1", 0, NULL), 0,
                 "again: nothing left, rows may be NULL");
    cr_assert_neq(pg_batch_clear(st, "missing", "d1", 0, &rows), 0, "no such dataset table");
    cr_assert_eq(PQtransactionStatus(PG(st)->conn), PQTRANS_IDLE, "its own transaction ended");

    /* inside the caller's transaction: rolled back with it */
    raw(st, "BEGIN");
    cr_assert_eq(pg_batch_clear(st, "t", "d2", 0, &rows), 0, "%s", pg_errmsg(st));
    cr_assert_eq(rows, 2);
    raw(st, "ROLLBACK");
    cr_assert_eq(raw_int("SELECT count(*) FROM ds_t WHERE _batch_id = 'd2'"), 2);

    cr_assert_eq(pg_batch_delete(st, "d1"), 0, "%s", pg_errmsg(st));
    struct batch b;
    cr_assert_eq(pg_batch_get(st, "d1", &b), 1);
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_events WHERE batch_id = 'd1'"), 0);
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_events WHERE batch_id = 'd2'"), 1);
}

Test(pg_batch, sentinel_queries)
{
    start();
    add("q1", "orders", NULL, NULL, 1000);
    add("q2", "orders", NULL, NULL, 2000);
    add("q3", "users", NULL, NULL, 3000);
    struct batch b;
    cr_assert_eq(pg_batch_claim(st, "n1/w1", 4000, 60000, &b), 0);
    batch_release(&b);
    cr_assert_eq(pg_batch_set_status(st, "q2", "completed", NULL, 5000), 0);

    json_t *o;
    cr_assert_eq(pg_batch_states(st, &o), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_integer_value(json_object_get(o, "staging")), 1);
    cr_assert_eq(json_integer_value(json_object_get(o, "completed")), 1);
    cr_assert_eq(json_integer_value(json_object_get(o, "uploaded")), 1);
    cr_assert_eq(json_object_size(o), 3);
    json_decref(o);

    cr_assert_eq(pg_batch_stuck(st, 4500, &o), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_array_size(o), 2, "q3 (3000) and q1 (heartbeat 4000); not completed q2");
    json_t *first = json_array_get(o, 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "batch_id")), "q3");
    cr_assert_str_eq(json_string_value(json_object_get(first, "last_progress_at")),
                     "1970-01-01T00:00:03.000Z");
    cr_assert(json_is_null(json_object_get(first, "worker")));
    json_t *second = json_array_get(o, 1);
    cr_assert_str_eq(json_string_value(json_object_get(second, "batch_id")), "q1");
    cr_assert_str_eq(json_string_value(json_object_get(second, "worker")), "n1/w1");
    cr_assert_eq(json_integer_value(json_object_get(second, "attempts")), 1);
    json_decref(o);

    raw(st, "INSERT INTO dlq(dataset, ingest_id, row_no, payload, errors, codes, received_ms,"
            " updated_ms, status) VALUES ('orders', 'i', 1, '\\x00', '[]', '', 100, 1, 'open'),"
            " ('orders', 'i', 1, '\\x00', '[]', '', 200, 1, 'open'),"
            " ('users', 'i', 1, '\\x00', '[]', '', 200, 1, 'open'),"
            " ('users', 'i', 1, '\\x00', '[]', '', 300, 1, 'resolved'),"
            " ('events', 'i', 1, '\\x00', '[]', '', 50, 1, 'open')");
    cr_assert_eq(pg_dlq_new_since(st, 100, &o), 0, "%s", pg_errmsg(st));
    cr_assert_eq(json_integer_value(json_object_get(o, "orders")), 2);
    cr_assert_eq(json_integer_value(json_object_get(o, "users")), 1);
    cr_assert_eq(json_object_size(o), 2);
    json_decref(o);

    cr_assert_eq(pg_batch_auto_reset(st, "q1", 2, 6000), 1, "%s", pg_errmsg(st));
    cr_assert_eq(pg_batch_get(st, "q1", &b), 0);
    cr_assert_str_eq(b.status, "uploaded");
    cr_assert_eq(b.attempts, 0);
    batch_release(&b);
    cr_assert_eq(pg_batch_auto_reset(st, "q1", 2, 7000), 1);
    cr_assert_eq(pg_batch_auto_reset(st, "q1", 2, 8000), 0, "the limit is reached");
    cr_assert_eq(raw_int("SELECT count(*) FROM batch_events WHERE batch_id = 'q1'"
                         " AND detail = 'sentinel auto-reset'"),
                 2);
}

/* ---- keys and audit ------------------------------------------------------------------ */

Test(pg_batch, keys_and_pepper)
{
    start();
    unsigned char p1[32], p2[32];
    cr_assert_eq(pg_key_pepper(st, p1), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_key_pepper(st, p2), 0);
    cr_assert_eq(memcmp(p1, p2, 32), 0);
    unsigned char zero[32] = {0};
    cr_assert_neq(memcmp(p1, zero, 32), 0);
    cr_assert_eq(raw_int("SELECT length(value) FROM settings WHERE name = 'api_key_pepper'"), 32);
    cr_assert_eq(pg_migrate(st), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_key_pepper(st, p2), 0);
    cr_assert_eq(memcmp(p1, p2, 32), 0, "a second migrate keeps the pepper");

    struct api_key k = {
        .id = "k_1", .name = "ci", .role = "admin", .prefix = "sk_ab", .created_ms = 100};
    for (int i = 0; i < 32; i++)
        k.hash[i] = (unsigned char)(i * 37); /* has 0x00 and bytes above 0x7f */
    cr_assert_eq(pg_key_add(st, &k), 0, "%s", pg_errmsg(st));
    struct api_key k2 = {.id = "k_2",
                         .name = "reader",
                         .role = "read",
                         .prefix = "sk_cd",
                         .created_ms = 200,
                         .expires_ms = 9000};
    memset(k2.hash, 0xff, 32);
    cr_assert_eq(pg_key_add(st, &k2), 0, "%s", pg_errmsg(st));
    cr_assert_neq(pg_key_add(st, &k2), 0, "a duplicate id is refused");
    cr_assert_eq(raw_int("SELECT length(hash) FROM api_keys WHERE id = 'k_1'"), 32);

    struct api_key g;
    cr_assert_eq(pg_key_get(st, "k_1", &g), 0, "%s", pg_errmsg(st));
    cr_assert_str_eq(g.id, "k_1");
    cr_assert_str_eq(g.name, "ci");
    cr_assert_str_eq(g.role, "admin");
    cr_assert_str_eq(g.prefix, "sk_ab");
    cr_assert_eq(memcmp(g.hash, k.hash, 32), 0);
    cr_assert_eq(g.created_ms, 100);
    cr_assert_eq(g.expires_ms, 0);
    cr_assert_eq(g.last_used_ms, 0);
    cr_assert_eq(g.revoked_ms, 0);
    api_key_release(&g);
    cr_assert_eq(pg_key_get(st, "nope", &g), 1);

    struct api_key *v;
    size_t n;
    cr_assert_eq(pg_key_list(st, &v, &n), 0, "%s", pg_errmsg(st));
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].id, "k_2", "newest first");
    cr_assert_eq(v[0].expires_ms, 9000);
    cr_assert_eq(memcmp(v[0].hash, k2.hash, 32), 0);
    cr_assert_str_eq(v[1].id, "k_1");
    for (size_t i = 0; i < n; i++)
        api_key_release(&v[i]);
    free(v);

    cr_assert_eq(pg_key_touch(st, "k_1", 500), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_key_touch(st, "k_1", 400), 0, "an older touch does not go back");
    cr_assert_eq(pg_key_revoke(st, "k_1", 600), 0, "%s", pg_errmsg(st));
    cr_assert_eq(pg_key_revoke(st, "k_1", 700), 0, "revoking again keeps the first time");
    cr_assert_eq(pg_key_revoke(st, "nope", 700), 1);
    cr_assert_eq(pg_key_get(st, "k_1", &g), 0);
    cr_assert_eq(g.last_used_ms, 500);
    cr_assert_eq(g.revoked_ms, 600);
    api_key_release(&g);
}

static void audit(int64_t at, const char *actor, const char *method, int status, const char *role)
{
    struct audit_new e = {.at_ms = at,
                          .actor = actor,
                          .role = role,
                          .method = method,
                          .path = "/v1/x",
                          .status = status,
                          .remote = role ? "10.0.0.1" : NULL,
                          .request_id = role ? "req-1" : NULL};
    cr_assert_eq(pg_audit_add(st, &e), 0, "%s", pg_errmsg(st));
}

/* The ids of an audit page, comma-separated. */
static void audit_ids(const struct audit_filter *f, char *out, size_t cap)
{
    json_t *a;
    cr_assert_eq(pg_audit_list(st, f, &a), 0, "%s", pg_errmsg(st));
    out[0] = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%lld", i ? "," : "",
                 (long long)json_integer_value(json_object_get(json_array_get(a, i), "id")));
    }
    json_decref(a);
}

Test(pg_batch, audit_filters)
{
    start();
    audit(100, "alice", "POST", 200, "admin");
    audit(200, "bob", "GET", 200, NULL);
    audit(300, "alice", "DELETE", 403, "admin");
    audit(400, "alice", "POST", 201, "admin");
    audit(500, "bob", "POST", 403, "read");

    char ids[128];
    audit_ids(&(struct audit_filter){.limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "1,2,3,4,5");
    audit_ids(&(struct audit_filter){.actor = "alice", .limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "1,3,4");
    audit_ids(&(struct audit_filter){.method = "POST", .limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "1,4,5");
    audit_ids(&(struct audit_filter){.status = 403, .limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "3,5");
    audit_ids(&(struct audit_filter){.since_ms = 300, .limit = 100}, ids, sizeof ids);
    cr_assert_str_eq(ids, "3,4,5");
    audit_ids(
        &(struct audit_filter){.actor = "alice", .method = "POST", .status = 201, .limit = 100},
        ids, sizeof ids);
    cr_assert_str_eq(ids, "4");
    audit_ids(&(struct audit_filter){.limit = 2}, ids, sizeof ids);
    cr_assert_str_eq(ids, "1,2");
    audit_ids(&(struct audit_filter){.after_id = 2, .limit = 2}, ids, sizeof ids);
    cr_assert_str_eq(ids, "3,4");
    audit_ids(&(struct audit_filter){.after_id = 4, .limit = 2}, ids, sizeof ids);
    cr_assert_str_eq(ids, "5");

    json_t *a;
    cr_assert_eq(pg_audit_list(st, &(struct audit_filter){.actor = "bob", .limit = 1}, &a), 0);
    json_t *o = json_array_get(a, 0);
    cr_assert_eq(json_integer_value(json_object_get(o, "at_ms")), 200);
    cr_assert_str_eq(json_string_value(json_object_get(o, "actor")), "bob");
    cr_assert_str_eq(json_string_value(json_object_get(o, "method")), "GET");
    cr_assert_str_eq(json_string_value(json_object_get(o, "path")), "/v1/x");
    cr_assert_eq(json_integer_value(json_object_get(o, "status")), 200);
    cr_assert(json_is_null(json_object_get(o, "role")));
    cr_assert(json_is_null(json_object_get(o, "remote")));
    cr_assert(json_is_null(json_object_get(o, "request_id")));
    json_decref(a);
    cr_assert_eq(pg_audit_list(st, &(struct audit_filter){.actor = "alice", .limit = 1}, &a), 0);
    o = json_array_get(a, 0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "role")), "admin");
    cr_assert_str_eq(json_string_value(json_object_get(o, "remote")), "10.0.0.1");
    cr_assert_str_eq(json_string_value(json_object_get(o, "request_id")), "req-1");
    json_decref(a);
}
