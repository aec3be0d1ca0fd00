/*
 * test_errors.c - the error codes (src/util/errors.h): names, statuses and
 * messages for every code, lookup by name, and that docs/error-codes.md lists
 * exactly the codes of SLUICE_ERRORS with their HTTP statuses.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DOC_PATH "docs/error-codes.md"

/* Every code, straight from the X-macro, independent of errors.c's tables. */
static const struct {
    enum sluice_err code;
    const char *name;
    int status;
    const char *message;
} all_codes[] = {
#define X(code, status, msg) {ERR_##code, #code, status, msg},
    SLUICE_ERRORS(X)
#undef X
};

Test(errors, every_code_is_in_the_table)
{
    cr_expect_eq(ARRAY_SIZE(all_codes), (size_t)ERR__COUNT - 1);
    for (size_t i = 0; i < ARRAY_SIZE(all_codes); i++)
        cr_expect_eq((size_t)all_codes[i].code, i + 1, "%s is not numbered in order",
                     all_codes[i].name);
}

Test(errors, name_status_message_round_trip)
{
    for (size_t i = 0; i < ARRAY_SIZE(all_codes); i++) {
        enum sluice_err e = all_codes[i].code;
        cr_expect_str_eq(err_name(e), all_codes[i].name);
        cr_expect_eq(err_status(e), all_codes[i].status, "%s", all_codes[i].name);
        cr_expect_str_eq(err_message(e), all_codes[i].message, "%s", all_codes[i].name);
        cr_expect_eq(err_from_name(all_codes[i].name), e, "%s", all_codes[i].name);
        cr_expect_eq(err_from_name(err_name(e)), e, "%s", all_codes[i].name);
        /* statuses are real HTTP error statuses */
        cr_expect(all_codes[i].status >= 400 && all_codes[i].status <= 599, "%s: %d",
                  all_codes[i].name, all_codes[i].status);
    }
}

Test(errors, names_are_unique_upper_snake_case)
{
    for (size_t i = 0; i < ARRAY_SIZE(all_codes); i++) {
        const char *n = all_codes[i].name;
        cr_expect(isupper((unsigned char)n[0]), "%s", n);
        for (const char *p = n; *p; p++)
            cr_expect(isupper((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_', "%s",
                      n);
        for (size_t k = i + 1; k < ARRAY_SIZE(all_codes); k++)
            cr_expect_str_neq(n, all_codes[k].name);
    }
}

Test(errors, ok_and_unknown)
{
    cr_expect_str_eq(err_name(SLUICE_OK), "OK");
    cr_expect_eq(err_from_name("NO_SUCH_CODE"), SLUICE_OK);
    cr_expect_eq(err_from_name(""), SLUICE_OK);
    cr_expect_eq(err_from_name("malformed_json"), SLUICE_OK); /* names are exact */
    cr_expect_eq(err_from_name("MALFORMED_JSON "), SLUICE_OK);
    /* out-of-range values do not read outside the tables */
    cr_expect_str_eq(err_name(ERR__COUNT), "INTERNAL");
    cr_expect_eq(err_status(ERR__COUNT), 500);
    cr_expect_str_eq(err_name((enum sluice_err) - 1), "INTERNAL");
    cr_expect_eq(err_status((enum sluice_err) - 1), 500);
}

Test(errors, statuses_of_key_codes)
{
    /* Spot checks of what clients depend on. */
    cr_expect_eq(err_status(ERR_MISSING_REQUIRED_FIELD), 422);
    cr_expect_eq(err_status(ERR_MALFORMED_JSON), 400);
    cr_expect_eq(err_status(ERR_ROW_TOO_LARGE), 413);
    cr_expect_eq(err_status(ERR_BODY_TOO_LARGE), 413);
    cr_expect_eq(err_status(ERR_DATASET_NOT_FOUND), 404);
    cr_expect_eq(err_status(ERR_METHOD_NOT_ALLOWED), 405);
    cr_expect_eq(err_status(ERR_OVERLOADED), 503);
    cr_expect_eq(err_status(ERR_INTERNAL), 500);
}

/* ---- docs/error-codes.md ------------------------------------------------------ */

/*
 * A code row is a table row whose first cell is a backquoted UPPER_SNAKE name:
 * "| `CODE` | STATUS | ...". Returns 1 and fills name/status for such a line.
 */
static int parse_code_row(const char *line, char *name, size_t cap, int *status)
{
    const char *p = line;
    if (*p != '|')
        return 0;
    p++;
    while (*p == ' ')
        p++;
    if (*p != '`')
        return 0;
    p++;
    size_t n = 0;
    while ((isupper((unsigned char)p[n]) || isdigit((unsigned char)p[n]) || p[n] == '_') &&
           n + 1 < cap)
        n++;
    if (n == 0 || p[n] != '`')
        return 0;
    memcpy(name, p, n);
    name[n] = 0;
    p += n + 1;
    while (*p == ' ')
        p++;
    if (*p != '|')
        return 0;
    p++;
    while (*p == ' ')
        p++;
    char *end;
    long st = strtol(p, &end, 10);
    *status = (end == p) ? -1 : (int)st;
    return 1;
}

Test(errors_doc, every_code_documented_with_its_status)
{
    FILE *f = fopen(DOC_PATH, "r");
    cr_assert_not_null(f, DOC_PATH " does not exist (tests run from the repo root)");

    int seen[ARRAY_SIZE(all_codes)] = {0};
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        char name[128];
        int status;
        lineno++;
        if (!parse_code_row(line, name, sizeof name, &status))
            continue;
        size_t i = 0;
        while (i < ARRAY_SIZE(all_codes) && strcmp(all_codes[i].name, name) != 0)
            i++;
        cr_expect_lt(i, ARRAY_SIZE(all_codes),
                     DOC_PATH ":%d: `%s` is not a code of SLUICE_ERRORS (src/util/errors.h)",
                     lineno, name);
        if (i == ARRAY_SIZE(all_codes))
            continue;
        seen[i]++;
        cr_expect_eq(status, all_codes[i].status,
                     DOC_PATH ":%d: `%s` has status %d in the doc, %d in errors.h", lineno, name,
                     status, all_codes[i].status);
    }
    fclose(f);

    for (size_t i = 0; i < ARRAY_SIZE(all_codes); i++) {
        cr_expect_neq(seen[i], 0, DOC_PATH ": no row \"| `%s` | %d |\"", all_codes[i].name,
                      all_codes[i].status);
        cr_expect_leq(seen[i], 1, DOC_PATH ": `%s` is listed %d times", all_codes[i].name, seen[i]);
    }
}
