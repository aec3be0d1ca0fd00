/*
 * test_store_pg_files.c - the PostgreSQL backend's batch files (pg_files.c)
 * against a real server: skipped unless SLUICE_TEST_PG holds a conninfo ("" = the PG*
 * environment), e.g.
 *   pg_virtualenv sh -c 'SLUICE_TEST_PG="" build/tests/test_store_pg_files'
 * Each test starts from an empty schema sluice_f; an advisory lock keeps the tests (run
 * in parallel by Criterion) from sharing it. What the store wrote is checked with SQL
 * on the same connection, not only by reading it back.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch_file_test.h"
#include "pg_test.h"
#include "store/pg/pg_internal.h"
#include "util/clock.h"

#define MIB (1024 * 1024)

static struct store *st;
static char dir[64]; /* spools live here */

static void raw(struct store *x, const char *sql)
{
    pg_test_exec(x, sql);
}

/* The first column of the first row as an integer; -999 when no row or NULL. */
static int64_t raw_int(const char *fmt, const char *arg)
{
    char sql[512];
    snprintf(sql, sizeof sql, fmt, arg);
    return pg_test_int(st, sql);
}

static struct store *open_more(void)
{
    return pg_test_connect("sluice_f");
}

static void start(void)
{
    st = pg_test_fresh("sluice_f", 5118803);
    snprintf(dir, sizeof dir, "/tmp/sluice-pgfiles-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void finish(void)
{
    if (st)
        pg_close(st);
    st = NULL;
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        cr_expect_eq(system(cmd), 0);
    }
    dir[0] = 0;
}

TestSuite(pg_files, .fini = finish);

/* A spool of n bytes in dir; its bytes (caller frees). */
static char *make_spool(const char *id, size_t n, char *spool, size_t cap)
{
    snprintf(spool, cap, "%s/%s.csv.part", dir, id);
    return spool_write(spool, n);
}

static void keep(const char *id, size_t n, char **data)
{
    char spool[256], *path = (char *)"unchanged";
    *data = make_spool(id, n, spool, sizeof spool);
    cr_assert_eq(pg_file_keep(st, id, spool, dir, &path), 0, "keep %s: %s", id, pg_errmsg(st));
    cr_expect_null(path, "nothing to record as a path: the file is in the database");
    cr_expect_neq(access(spool, F_OK), 0, "the spool is still there");
}

/* Batch id's file, read through x, is exactly want (n bytes). */
static void expect_reads(struct store *x, const char *id, const char *want, size_t n)
{
    struct batch b = {.id = (char *)id};
    FILE *f = pg_file_open(x, &b, NULL);
    cr_assert_not_null(f, "open %s: %s", id, pg_errmsg(x));
    expect_file(f, want, n, id);
}

Test(pg_files, keep_and_read_back_byte_equal)
{
    start();
    static const struct {
        const char *id;
        size_t size;
        int chunks;
    } cases[] = {
        {"bat_empty", 0, 1},             /* one empty chunk: the file exists */
        {"bat_one", 1, 1},               /* */
        {"bat_slice", 64 * 1024 + 1, 1}, /* past a reader's first slice */
        {"bat_exact", MIB, 1},           /* a whole chunk, no empty one after it */
        {"bat_three", 2 * MIB + 77, 3},  /* several chunks, the last one short */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *data;
        keep(cases[i].id, cases[i].size, &data);
        cr_expect_eq(raw_int("SELECT count(*) FROM batch_files WHERE batch_id = '%s'", cases[i].id),
                     cases[i].chunks, "%s: chunks", cases[i].id);
        cr_expect_eq(raw_int("SELECT coalesce(sum(length(data)), 0) FROM batch_files"
                             " WHERE batch_id = '%s'",
                             cases[i].id),
                     (int64_t)cases[i].size);
        cr_expect_eq(raw_int("SELECT count(*) FROM batch_files WHERE batch_id = '%s'"
                             " AND seq < (SELECT max(seq) FROM batch_files b2"
                             " WHERE b2.batch_id = batch_files.batch_id) AND length(data) <> "
                             "1048576",
                             cases[i].id),
                     0, "%s: every chunk but the last is 1 MiB", cases[i].id);
        expect_reads(st, cases[i].id, data, cases[i].size);
        free(data);
    }
    /* stored uncompressed, and a batch record needs no path any more */
    cr_expect_eq(raw_int("SELECT count(*) FROM pg_attribute WHERE attrelid = '%s'::regclass"
                         " AND attname = 'data' AND attstorage = 'e'",
                         "batch_files"),
                 1);
    struct batch b = {.id = "bat_three", .dataset = "d", .sha256 = "0", .created_ms = 1};
    cr_expect_eq(pg_batch_add(st, &b), 0, "%s", pg_errmsg(st));
}

Test(pg_files, another_node_reads_it)
{
    start();
    char *data;
    keep("bat_shared", MIB + 5, &data);
    struct store *other = open_more();
    expect_reads(other, "bat_shared", data, MIB + 5);
    /* inside a transaction too (a DLQ retry reads the header on the writer's) */
    raw(other, "BEGIN");
    expect_reads(other, "bat_shared", data, MIB + 5);
    raw(other, "ROLLBACK");
    pg_close(other);
    free(data);
}

Test(pg_files, open_reconnects_a_lost_connection)
{
    start();
    char *data;
    keep("bat_lost", 100, &data);
    /* the schema in the conninfo, so that the reopened connection has it too */
    const char *base = getenv("SLUICE_TEST_PG");
    char ci[1024], err[256] = "", sql[96];
    if (strstr(base, "://"))
        snprintf(ci, sizeof ci, "%s%coptions=-csearch_path%%3Dsluice_f", base,
                 strchr(base, '?') ? '&' : '?');
    else
        snprintf(ci, sizeof ci, "%s options='-csearch_path=sluice_f'", base);
    struct store *reader = pg_open(ci, 1, err, sizeof err);
    cr_assert_not_null(reader, "pg_open: %s", err);
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(PG(reader)->conn));
    raw(st, sql);
    usleep(100 * 1000);
    expect_reads(reader, "bat_lost", data, 100);
    pg_close(reader);
    free(data);
}

Test(pg_files, drop_removes_every_chunk)
{
    start();
    char *a, *b;
    keep("bat_a", 2 * MIB + 1, &a);
    keep("bat_b", 10, &b);
    cr_assert_eq(pg_file_drop(st, "bat_a", NULL, NULL), 0, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM batch_files WHERE batch_id = '%s'", "bat_a"), 0);
    cr_expect_eq(pg_file_drop(st, "bat_a", NULL, NULL), 0, "a file already gone is no error");
    struct batch gone = {.id = "bat_a"};
    cr_expect_null(pg_file_open(st, &gone, NULL));
    cr_expect(strstr(pg_errmsg(st), "not in the database") != NULL, "%s", pg_errmsg(st));
    expect_reads(st, "bat_b", b, 10); /* the other file is untouched */
    free(a);
    free(b);
}

Test(pg_files, keep_refused_inside_a_transaction_and_on_a_second_keep)
{
    start();
    char spool[256], *path = NULL;
    free(make_spool("bat_tx", 10, spool, sizeof spool));
    raw(st, "BEGIN");
    cr_expect_eq(pg_file_keep(st, "bat_tx", spool, dir, &path), -1);
    cr_expect(strstr(pg_errmsg(st), "transaction is open") != NULL, "%s", pg_errmsg(st));
    raw(st, "ROLLBACK");
    cr_expect_eq(access(spool, F_OK), 0, "a failed keep leaves the spool to the caller");

    char *first;
    keep("bat_twice", 3, &first);
    char *second = make_spool("bat_twice", MIB + 1, spool, sizeof spool);
    cr_expect_eq(pg_file_keep(st, "bat_twice", spool, dir, &path), -1);
    cr_expect_eq(access(spool, F_OK), 0);
    cr_expect_eq(PQtransactionStatus(PG(st)->conn), PQTRANS_IDLE, "the failed keep rolled back");
    expect_reads(st, "bat_twice", first, 3); /* the first file, whole and alone */
    free(first);
    free(second);
}

Test(pg_files, sweep_removes_only_files_without_a_record)
{
    start();
    char *a, *b;
    keep("bat_recorded", MIB + 1, &a);
    keep("bat_orphan", MIB + 1, &b);
    struct batch rec = {.id = "bat_recorded", .dataset = "d", .sha256 = "0", .created_ms = 1};
    cr_assert_eq(pg_batch_add(st, &rec), 0, "%s", pg_errmsg(st));
    int64_t now = clock_wall_ms();
    cr_expect_eq(pg_file_sweep(st, now - 3600 * 1000, dir), 0, "a fresh orphan is kept");
    cr_expect_eq(raw_int("SELECT count(*) FROM batch_files WHERE batch_id = '%s'", "bat_orphan"),
                 2);
    cr_expect_eq(pg_file_sweep(st, now + 60 * 1000, dir), 1, "%s", pg_errmsg(st));
    cr_expect_eq(raw_int("SELECT count(*) FROM batch_files WHERE batch_id = '%s'", "bat_orphan"),
                 0);
    expect_reads(st, "bat_recorded", a, MIB + 1);
    cr_expect_eq(pg_file_sweep(st, now + 60 * 1000, dir), 0, "nothing left to sweep");
    free(a);
    free(b);
}

Test(pg_files, a_file_dropped_while_read_is_an_error_not_a_short_file)
{
    start();
    char *data;
    keep("bat_going", 3 * MIB, &data);
    struct store *reader = open_more();
    struct batch b = {.id = "bat_going"};
    FILE *f = pg_file_open(reader, &b, NULL);
    cr_assert_not_null(f, "%s", pg_errmsg(reader));
    char *buf = malloc(MIB);
    size_t got = fread(buf, 1, MIB, f); /* into the second chunk */
    cr_expect_eq(got, (size_t)MIB);
    cr_assert_eq(pg_file_drop(st, "bat_going", NULL, NULL), 0, "%s", pg_errmsg(st));
    size_t total = got;
    while ((got = fread(buf, 1, MIB, f)) > 0)
        total += got;
    cr_expect_lt(total, (size_t)3 * MIB);
    cr_expect_neq(ferror(f), 0, "the rest of the file vanished without an error");
    cr_expect(strstr(pg_errmsg(reader), "changed while it was read") != NULL, "%s",
              pg_errmsg(reader));
    fclose(f);
    free(buf);
    pg_close(reader);
    free(data);
}

Test(pg_files, a_batch_recorded_before_migration_2_keeps_its_local_file)
{
    start();
    char path[256];
    snprintf(path, sizeof path, "%s/bat_old.csv", dir);
    char *data = spool_write(path, 5000);
    struct batch b = {.id = "bat_old", .path = path};
    FILE *f = pg_file_open(st, &b, NULL);
    cr_assert_not_null(f, "%s", pg_errmsg(st));
    expect_file(f, data, 5000, "bat_old");
    cr_assert_eq(pg_file_drop(st, "bat_old", path, NULL), 0, "%s", pg_errmsg(st));
    cr_expect_neq(access(path, F_OK), 0, "the old file is still there");
    cr_expect_null(pg_file_open(st, &b, NULL));
    cr_expect(strstr(pg_errmsg(st), "cannot be read") != NULL, "%s", pg_errmsg(st));
    free(data);
}

/* ---- the node's copy of a file it received ------------------------------------------ */

/* The sha256 of n bytes, as lowercase hex (what an upload records). */
static void sha256_hex(const char *data, size_t n, char hex[65])
{
    unsigned char d[32];
    unsigned int dl = 0;
    cr_assert_eq(EVP_Digest(data, n, d, &dl, EVP_sha256(), NULL), 1);
    for (unsigned i = 0; i < dl; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* Keep id's n-byte file the way an upload does: spooled in data_dir/batches. */
static char *keep_received(const char *id, size_t n, char *copy, size_t cap)
{
    char spool[256], batches[128], *path = NULL;
    snprintf(batches, sizeof batches, "%s/batches", dir);
    mkdir(batches, 0700);
    snprintf(spool, sizeof spool, "%s/%s.csv.part", batches, id);
    char *data = spool_write(spool, n);
    cr_assert_eq(pg_file_keep(st, id, spool, dir, &path), 0, "keep %s: %s", id, pg_errmsg(st));
    cr_expect_null(path);
    cr_expect_neq(access(spool, F_OK), 0, "the spool is still there");
    snprintf(copy, cap, "%s/%s.csv.copy", batches, id);
    cr_expect_eq(access(copy, F_OK), 0, "the node keeps no copy of the file it received");
    return data;
}

Test(pg_files, the_receiving_node_reads_its_copy_once_then_the_database)
{
    start();
    char copy[256], hex[65];
    char *data = keep_received("bat_local", 2 * MIB + 3, copy, sizeof copy);
    sha256_hex(data, 2 * MIB + 3, hex);
    struct batch b = {.id = "bat_local", .sha256 = hex};
    /* Proof the copy is read: the database's chunks are changed behind the store's back. */
    raw(st, "UPDATE batch_files SET data = overlay(data placing '\\x00'::bytea from 1 for 1)"
            " WHERE batch_id = 'bat_local' AND seq = 0");
    /* A header read (the pass's first) leaves the copy in place. */
    FILE *f = pg_file_open(st, &b, dir);
    cr_assert_not_null(f, "%s", pg_errmsg(st));
    char head[100];
    cr_expect_eq(fread(head, 1, sizeof head, f), sizeof head);
    cr_expect(memcmp(head, data, sizeof head) == 0, "the header read is not the copy's");
    fclose(f);
    cr_expect_eq(access(copy, F_OK), 0, "a header read removed the copy");
    /* The whole read is the copy's bytes, and the copy goes when read to its end. */
    expect_file(pg_file_open(st, &b, dir), data, 2 * MIB + 3, "bat_local (the copy)");
    cr_expect_neq(access(copy, F_OK), 0, "the copy read to its end is still there");
    /* From then on the database is read: its (changed) first byte shows it. */
    f = pg_file_open(st, &b, dir);
    cr_assert_not_null(f, "%s", pg_errmsg(st));
    cr_expect_eq(fgetc(f), 0, "the database's copy was not the one read");
    fclose(f);
    free(data);
}

Test(pg_files, a_copy_that_differs_from_the_record_is_removed_and_the_database_read)
{
    start();
    char copy[256], hex[65];
    char *data = keep_received("bat_bent", MIB + 17, copy, sizeof copy);
    sha256_hex(data, MIB + 17, hex);
    FILE *c = fopen(copy, "r+b"); /* one byte of the copy changes on this node's disk */
    cr_assert_not_null(c);
    fseek(c, MIB, SEEK_SET);
    fputc(data[MIB] ^ 1, c);
    fclose(c);
    struct batch b = {.id = "bat_bent", .sha256 = hex};
    expect_file(pg_file_open(st, &b, dir), data, MIB + 17, "bat_bent (the database's)");
    cr_expect_neq(access(copy, F_OK), 0, "the bent copy is still there");
    free(data);
}

Test(pg_files, no_copy_is_read_without_a_sha256_or_a_data_dir)
{
    start();
    char copy[256], hex[65];
    char *data = keep_received("bat_nosum", 1000, copy, sizeof copy);
    sha256_hex(data, 1000, hex);
    raw(st, "UPDATE batch_files SET data = overlay(data placing '\\x00'::bytea from 1 for 1)"
            " WHERE batch_id = 'bat_nosum'");
    struct batch nosum = {.id = "bat_nosum"}, withsum = {.id = "bat_nosum", .sha256 = hex};
    FILE *f = pg_file_open(st, &nosum, dir);
    cr_assert_not_null(f, "%s", pg_errmsg(st));
    cr_expect_eq(fgetc(f), 0, "no sha256 to check it against, yet the copy was read");
    fclose(f);
    f = pg_file_open(st, &withsum, NULL);
    cr_assert_not_null(f, "%s", pg_errmsg(st));
    cr_expect_eq(fgetc(f), 0, "no data_dir given, yet the copy was read");
    fclose(f);
    cr_expect_eq(access(copy, F_OK), 0);
    free(data);
}

Test(pg_files, the_sweep_removes_old_copies)
{
    start();
    char copy[256];
    free(keep_received("bat_kept", 10, copy, sizeof copy));
    struct batch rec = {.id = "bat_kept", .dataset = "d", .sha256 = "0", .created_ms = 1};
    cr_assert_eq(pg_batch_add(st, &rec), 0, "%s", pg_errmsg(st));
    int64_t now = clock_wall_ms();
    pg_file_sweep(st, now - 3600 * 1000, dir);
    cr_expect_eq(access(copy, F_OK), 0, "a fresh copy was swept");
    pg_file_sweep(st, now + 60 * 1000, dir);
    cr_expect_neq(access(copy, F_OK), 0, "an old copy is still there");
    cr_expect_eq(raw_int("SELECT count(*) FROM batch_files WHERE batch_id = '%s'", "bat_kept"), 1,
                 "the database's file of a recorded batch was swept with the copy");
}
