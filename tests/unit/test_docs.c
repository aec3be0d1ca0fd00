/*
 * test_docs.c - docs/ says what the code does: every HTTP route is in
 * docs/api.md's route table, and every subcommand is in docs/api.md too.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "http/router.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s (tests run from the repo root)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

Test(docs, every_route_is_in_the_api_table)
{
    char *api = slurp("docs/api.md");
    for (size_t i = 0; i < http_nroutes; i++) {
        char row[256];
        snprintf(row, sizeof row, "| %s | `%s` |", http_routes[i].method, http_routes[i].pattern);
        cr_expect_not_null(strstr(api, row), "docs/api.md lacks the route row \"%s\"", row);
    }
    free(api);
}

Test(docs, every_command_is_documented)
{
    char *api = slurp("docs/api.md");
    for (const struct command *c = cli_commands; c->name; c++) {
        char word[64];
        snprintf(word, sizeof word, "sluice %s", c->name);
        int in_usage = strstr(c->usage, word) != NULL;
        cr_expect(in_usage, "the usage of '%s' does not show 'sluice %s'", c->name, c->name);
        cr_expect(strstr(api, c->name) != NULL, "docs/api.md does not mention '%s'", c->name);
    }
    free(api);
}

Test(docs, every_route_has_a_summary)
{
    for (size_t i = 0; i < http_nroutes; i++)
        cr_expect(http_routes[i].summary && *http_routes[i].summary, "route %s %s has no summary",
                  http_routes[i].method, http_routes[i].pattern);
}
