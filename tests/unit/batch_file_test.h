/*
 * batch_file_test.h - helpers the store tests of both backends share for batch files
 * (test_store.c, test_store_pg_files.c): a spool with bytes that show a misplaced one,
 * and reading a kept file back in odd steps.
 */
#ifndef SLUICE_TESTS_BATCH_FILE_TEST_H
#define SLUICE_TESTS_BATCH_FILE_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Write n bytes to path (NULs and bytes over 0x7f among them, in a pattern that repeats
 * nowhere near a chunk's size); returns them (caller frees). */
static char *spool_write(const char *path, size_t n)
{
    char *data = malloc(n ? n : 1);
    cr_assert_not_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 7 + i / 251);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
    return data;
}

/* Read f to its end in steps of 7001 bytes, expect exactly want (n bytes), close f. */
static void expect_file(FILE *f, const char *want, size_t n, const char *what)
{
    char *buf = malloc(n + 7001);
    cr_assert_not_null(buf);
    size_t len = 0, got;
    while ((got = fread(buf + len, 1, 7001, f)) > 0) {
        len += got;
        cr_assert_leq(len, n, "%s: more bytes than were kept", what);
    }
    cr_expect_eq(ferror(f), 0, "%s: read error", what);
    cr_expect_eq(len, n, "%s: %zu bytes read, %zu kept", what, len, n);
    cr_expect(len == n && memcmp(buf, want, n) == 0, "%s: the bytes differ", what);
    cr_expect_eq(fclose(f), 0);
    free(buf);
}

#endif
