/*
 * test_docs.c - docs/ says what the code does: every HTTP route is in
 * docs/api.md's route table with the summary routes.c gives it, and every
 * subcommand has its own section in docs/api.md ("### `sluice NAME`") that
 * shows each line of its usage synopsis and every option of its getopt table.
 * The getopt tables are read from the files of src/cli (each cmd_NAME's body), so an
 * option added there without a word in the usage or the docs fails here.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
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

/* The doc's "what" column of a route row, backticks dropped (malloc'd), or NULL. */
static char *route_summary(const char *api, const char *method, const char *pattern)
{
    char row[256];
    snprintf(row, sizeof row, "\n| %s | `%s` | ", method, pattern);
    const char *p = strstr(api, row);
    if (!p)
        return NULL;
    p += strlen(row);
    const char *end = strstr(p, " |\n");
    cr_assert_not_null(end, "the row \"%s\" does not end in \" |\"", row + 1);
    char *out = malloc((size_t)(end - p) + 1);
    size_t n = 0;
    for (; p < end; p++)
        if (*p != '`')
            out[n++] = *p;
    out[n] = 0;
    return out;
}

Test(docs, every_route_is_in_the_api_table_with_its_summary)
{
    char *api = slurp("docs/api.md");
    for (size_t i = 0; i < http_nroutes; i++) {
        const struct route *r = &http_routes[i];
        char *got = route_summary(api, r->method, r->pattern);
        cr_expect_not_null(got, "docs/api.md lacks the route row \"| %s | `%s` |\"", r->method,
                           r->pattern);
        if (got)
            cr_expect_str_eq(got, r->summary,
                             "docs/api.md: %s %s is \"%s\", routes.c says \"%s\" (backticks "
                             "aside, they must be the same)",
                             r->method, r->pattern, got, r->summary);
        free(got);
    }
    free(api);
}

/* ---- commands ---------------------------------------------------------------------------- */

/* The text of docs/api.md's section "### `sluice NAME`", up to the next heading (malloc'd),
 * or NULL. */
static char *command_section(const char *api, const char *name)
{
    char head[96];
    snprintf(head, sizeof head, "\n### `sluice %s`\n", name);
    const char *p = strstr(api, head);
    if (!p)
        return NULL;
    p += strlen(head);
    const char *end = p;
    while ((end = strchr(end, '\n')) && strncmp(end, "\n## ", 4) && strncmp(end, "\n### ", 5))
        end++;
    return strndup(p, end ? (size_t)(end - p) : strlen(p));
}

/* Whether text holds line as a whole line. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
            return 1;
    return 0;
}

/* Whether text holds --opt as a word (not the start of a longer option). */
static int has_option(const char *text, const char *opt)
{
    char word[80];
    snprintf(word, sizeof word, "--%s", opt);
    size_t n = strlen(word);
    for (const char *p = text; (p = strstr(p, word)); p++)
        if (!isalnum((unsigned char)p[n]) && p[n] != '-' && p[n] != '_')
            return 1;
    return 0;
}

#define MAX_OPTS 64

/* One cmd_NAME function of src/cli and the long options of its getopt table. */
struct cmd_opts {
    char name[64]; /* the command's name: cmd_config_docs -> config-docs */
    char opts[MAX_OPTS][48];
    size_t n;
};

/* Read every `int cmd_NAME(` body in the files of src/cli and the {"opt", *_argument rows in it. */
static size_t read_getopt_tables(struct cmd_opts *out, size_t cap)
{
    DIR *d = opendir("src/cli");
    cr_assert_not_null(d, "cannot open src/cli (tests run from the repo root)");
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 3 || strcmp(e->d_name + l - 2, ".c"))
            continue;
        char path[300];
        snprintf(path, sizeof path, "src/cli/%s", e->d_name);
        char *src = slurp(path);
        for (char *p = strstr(src, "\nint cmd_"); p; p = strstr(p + 1, "\nint cmd_")) {
            cr_assert_lt(n, cap);
            struct cmd_opts *c = &out[n++];
            memset(c, 0, sizeof *c);
            const char *id = p + strlen("\nint cmd_");
            size_t k = 0;
            while ((isalnum((unsigned char)id[k]) || id[k] == '_') && k < sizeof c->name - 1) {
                c->name[k] = id[k] == '_' ? '-' : id[k];
                k++;
            }
            char *next = strstr(p + 1, "\nint cmd_");
            size_t len = next ? (size_t)(next - p) : strlen(p);
            char *body = strndup(p, len);
            for (char *q = strstr(body, "{\""); q; q = strstr(q + 1, "{\"")) {
                char *close = strchr(q + 2, '"');
                if (!close || strncmp(close, "\", ", 3))
                    continue;
                const char *kind = close + 3;
                if (strncmp(kind, "required_argument", 17) && strncmp(kind, "no_argument", 11) &&
                    strncmp(kind, "optional_argument", 17))
                    continue;
                cr_assert_lt(c->n, MAX_OPTS);
                snprintf(c->opts[c->n++], sizeof c->opts[0], "%.*s", (int)(close - q - 2), q + 2);
            }
            free(body);
        }
        free(src);
    }
    closedir(d);
    return n;
}

Test(docs, every_command_has_a_section_with_its_usage_and_options)
{
    char *api = slurp("docs/api.md");
    static struct cmd_opts tables[64];
    size_t ntables = read_getopt_tables(tables, 64), nopts = 0;
    for (const struct command *c = cli_commands; c->name; c++) {
        char word[64];
        snprintf(word, sizeof word, "sluice %s", c->name);
        cr_expect(strstr(c->usage, word) != NULL, "the usage of '%s' does not show '%s'", c->name,
                  word);
        char *sec = command_section(api, c->name);
        cr_expect_not_null(sec, "docs/api.md has no section \"### `sluice %s`\"", c->name);
        if (!sec)
            continue;
        /* Each line of the synopsis (the usage up to its first blank line). */
        const char *u = c->usage;
        if (!strncmp(u, "usage: ", 7))
            u += 7;
        while (*u && *u != '\n') {
            const char *eol = strchr(u, '\n');
            size_t len = eol ? (size_t)(eol - u) : strlen(u);
            char *line = strndup(u, len);
            char *t = line;
            while (*t == ' ')
                t++;
            cr_expect(has_line(sec, t), "docs/api.md's section on '%s' lacks the usage line \"%s\"",
                      c->name, t);
            free(line);
            u += len + (eol ? 1 : 0);
        }
        /* Each option of its getopt table, in the usage and in the section. */
        const struct cmd_opts *t = NULL;
        for (size_t i = 0; i < ntables; i++)
            if (!strcmp(tables[i].name, c->name))
                t = &tables[i];
        cr_expect_not_null(t, "no function cmd_%s in src/cli for the command '%s'", c->name,
                           c->name);
        for (size_t i = 0; t && i < t->n; i++) {
            nopts++;
            cr_expect(has_option(c->usage, t->opts[i]), "the usage of '%s' does not show --%s",
                      c->name, t->opts[i]);
            cr_expect(has_option(sec, t->opts[i]),
                      "docs/api.md's section on '%s' does not show --%s", c->name, t->opts[i]);
        }
        free(sec);
    }
    /* The reading of src/cli found the tables at all (serve, dlq, batch, ... have options). */
    cr_expect_gt(nopts, 30, "only %zu options found in src/cli", nopts);
    free(api);
}

Test(docs, every_route_has_a_summary)
{
    for (size_t i = 0; i < http_nroutes; i++)
        cr_expect(http_routes[i].summary && *http_routes[i].summary, "route %s %s has no summary",
                  http_routes[i].method, http_routes[i].pattern);
}
