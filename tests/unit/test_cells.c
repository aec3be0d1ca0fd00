/*
 * test_cells.c - CSV cells as field values (src/ingest/cells.h): the header mapping (exact,
 * then loose, and what is refused) and what each cell becomes (null string, whitespace,
 * booleans, numbers with group and decimal separators, their errors).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "ingest/cells.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static struct schema *compile(const char *text)
{
    char err[256];
    json_error_t jerr;
    json_t *spec = json_loads(text, 0, &jerr);
    cr_assert_not_null(spec, "bad JSON in test: %s", jerr.text);
    struct schema *s = schema_compile(spec, err, sizeof err);
    json_decref(spec);
    cr_assert_not_null(s, "schema did not compile: %s", err);
    return s;
}

#define STREETS                                                                                    \
    "{\"required\": [\"on_street\", \"n\"], \"properties\": {"                                     \
    " \"on_street\": {\"type\": \"string\", \"csv_name\": \"On Street\"},"                         \
    " \"n\": {\"type\": \"integer\"}, \"note\": {\"type\": \"string\"}}}"

/* Maps the header given as a NULL-terminated list; returns cells_map_header()'s result. */
static int map(const struct schema *s, const char *const *names, int *field, char *why,
               size_t whylen)
{
    struct csv_field cols[8];
    size_t n = 0;
    for (; names[n]; n++)
        cols[n] = (struct csv_field){names[n], strlen(names[n]), 0};
    return cells_map_header(s, cols, n, field, why, whylen);
}

Test(header, exact_then_loose)
{
    struct schema *s = compile(STREETS);
    int field[8];
    char why[256] = "";
    cr_assert_eq(map(s, (const char *[]){"N", "On Street", "x", NULL}, field, why, sizeof why), 0,
                 "%s", why);
    cr_expect(field[0] == 1 && field[1] == 0 && field[2] == -1);
    cr_assert_eq(map(s, (const char *[]){" on street\t", "n", NULL}, field, why, sizeof why), 0);
    cr_expect(field[0] == 0 && field[1] == 1);
    /* the exact column wins; the loose one is undeclared */
    cr_assert_eq(
        map(s, (const char *[]){"ON STREET", "On Street", "n", NULL}, field, why, sizeof why), 0);
    cr_expect(field[0] == -1 && field[1] == 0);
    /* the field's name is no header once it has a csv_name */
    cr_expect_eq(map(s, (const char *[]){"on_street", "n", NULL}, field, why, sizeof why), -1);
    cr_expect_str_eq(why, "missing required column 'On Street' (field on_street)");
    schema_destroy(s);
}

Test(header, refused)
{
    struct schema *s = compile(STREETS);
    int field[8];
    char why[256] = "";
    cr_expect_eq(
        map(s, (const char *[]){"on street", "ON STREET", "n", NULL}, field, why, sizeof why), -1);
    cr_expect_str_eq(why,
                     "columns 'on street' and 'ON STREET' both match field on_street (header 'On "
                     "Street')");
    cr_expect_eq(map(s, (const char *[]){"On Street", "n", "n", NULL}, field, why, sizeof why), -1);
    cr_expect_str_eq(why, "duplicate column n");
    cr_expect_eq(map(s, (const char *[]){"On Street", NULL}, field, why, sizeof why), -1);
    cr_expect_str_eq(why, "missing required column n");
    schema_destroy(s);
}

#define TYPES                                                                                      \
    "{\"properties\": {"                                                                           \
    " \"s\": {\"type\": \"string\"}, \"st\": {\"type\": \"string\", \"trim\": true},"              \
    " \"d\": {\"type\": \"string\", \"format\": \"date\"}, \"i\": {\"type\": \"integer\"},"        \
    " \"x\": {\"type\": \"number\"}, \"b\": {\"type\": \"boolean\"},"                              \
    " \"keep\": {\"type\": \"string\", \"csv_empty_string\": true},"                               \
    " \"us\": {\"type\": \"number\", \"group\": \",\"},"                                           \
    " \"eu\": {\"type\": \"number\", \"decimal\": \",\", \"group\": \".\"},"                       \
    " \"q\": {\"type\": \"integer\", \"group\": \"'\"}}}"

/* The value of cell text for field name of ds; errs gets any error. */
static struct row_value cell(const struct dataset_config *ds, const char *name, const char *text,
                             struct row_errors *errs)
{
    struct row_value v;
    row_errors_clear(errs);
    int f = schema_field_index(ds->schema, name);
    cr_assert_geq(f, 0, "no field %s", name);
    cells_value(ds, (size_t)f, text, strlen(text), &v, errs);
    return v;
}

static void expect_text(struct row_value v, const char *want)
{
    cr_assert_eq(v.kind, VAL_TEXT);
    cr_expect(v.u.s.n == strlen(want) && memcmp(v.u.s.p, want, v.u.s.n) == 0, "got '%.*s'",
              (int)v.u.s.n, v.u.s.p);
}

Test(cells, whitespace_and_null)
{
    struct dataset_config ds = {.schema = compile(TYPES)};
    struct row_errors e = {0};
    expect_text(cell(&ds, "s", "  a b ", &e), "  a b ");
    expect_text(cell(&ds, "st", "  a b ", &e), "a b");
    expect_text(cell(&ds, "d", " 2024-01-31\t", &e), "2024-01-31");
    struct row_value v = cell(&ds, "i", " -42 ", &e);
    cr_expect(v.kind == VAL_INT && v.u.i == -42);
    v = cell(&ds, "x", "2.5 ", &e);
    cr_expect(v.kind == VAL_REAL && v.u.d == 2.5);
    v = cell(&ds, "b", " TRUE", &e);
    cr_expect(v.kind == VAL_BOOL && v.u.b == 1);
    v = cell(&ds, "b", "0", &e);
    cr_expect(v.kind == VAL_BOOL && v.u.b == 0);
    expect_text(cell(&ds, "b", "yes", &e), "yes"); /* INVALID_TYPE from the validator */
    /* the empty cell is null for every type; spaces are empty once trimmed */
    static const char *const fields[] = {"s", "st", "d", "i", "x", "b", "us"};
    for (size_t k = 0; k < ARRAY_SIZE(fields); k++)
        cr_expect_eq(cell(&ds, fields[k], "", &e).kind, VAL_ABSENT, "%s", fields[k]);
    cr_expect_eq(cell(&ds, "i", "   ", &e).kind, VAL_ABSENT);
    cr_expect_eq(cell(&ds, "st", "   ", &e).kind, VAL_ABSENT);
    expect_text(cell(&ds, "s", "   ", &e), "   ");
    expect_text(cell(&ds, "keep", "", &e), "");
    /* the dataset keeps empty strings; a property may still say null */
    ds.csv_empty_string = 1;
    expect_text(cell(&ds, "s", "", &e), "");
    cr_expect_eq(cell(&ds, "i", "", &e).kind, VAL_ABSENT);
    /* another null string: the empty cell is no longer null */
    ds.csv_empty_string = 0;
    ds.csv_null = "NA";
    cr_expect_eq(cell(&ds, "s", "NA", &e).kind, VAL_ABSENT);
    cr_expect_eq(cell(&ds, "i", " NA ", &e).kind, VAL_ABSENT);
    expect_text(cell(&ds, "s", "", &e), "");
    expect_text(cell(&ds, "i", "", &e), "");
    cr_expect_eq(e.n, 0);
    row_errors_release(&e);
    schema_destroy(ds.schema);
}

Test(cells, grouped_numbers)
{
    struct dataset_config ds = {.schema = compile(TYPES)};
    struct row_errors e = {0};
    static const struct {
        const char *field, *text;
        double want;
    } good[] = {
        {"us", "1,234.50", 1234.5}, {"us", "1234.5", 1234.5},
        {"us", "-1,000,000", -1e6}, {"us", "+12,345.6e-1", 1234.56},
        {"us", "999", 999},         {"eu", "1.234,50", 1234.5},
        {"eu", "0,5", 0.5},         {"eu", " 1.000.000 ", 1e6},
        {"eu", "12345,6", 12345.6},
    };
    for (size_t k = 0; k < ARRAY_SIZE(good); k++) {
        struct row_value v = cell(&ds, good[k].field, good[k].text, &e);
        cr_expect(v.kind == VAL_REAL && v.u.d == good[k].want, "%s '%s'", good[k].field,
                  good[k].text);
        cr_expect_eq(e.n, 0, "%s '%s': %s", good[k].field, good[k].text, e.n ? e.v[0].message : "");
    }
    struct row_value v = cell(&ds, "q", "1'234'567", &e);
    cr_expect(v.kind == VAL_INT && v.u.i == 1234567);
    static const struct {
        const char *field, *text, *msg;
    } bad[] = {
        {"us", "1,23",
         "expected a number written with decimal '.' and group ',' (as "
         "1,234,567.89), got '1,23'"},
        {"us", "1234,567", "got '1234,567'"},
        {"us", ",123", "got ',123'"},
        {"us", "1,,234", "got '1,,234'"},
        {"us", "1.", "got '1.'"},
        {"us", "1,234.5e", "got '1,234.5e'"},
        {"us", "1,234.5x", "got '1,234.5x'"},
        {"us", "-", "got '-'"},
        {"eu", "1,234.5",
         "expected a number written with decimal ',' and group '.' (as "
         "1.234.567,89), got '1,234.5'"},
        {"q", "1'234.5",
         "expected an integer written with group ''' (as 1'234'567), got "
         "'1'234.5'"},
    };
    for (size_t k = 0; k < ARRAY_SIZE(bad); k++) {
        v = cell(&ds, bad[k].field, bad[k].text, &e);
        cr_expect_eq(v.kind, VAL_ABSENT, "%s '%s'", bad[k].field, bad[k].text);
        cr_assert_eq(e.n, 1, "%s '%s'", bad[k].field, bad[k].text);
        cr_expect_eq(e.v[0].code, ERR_INVALID_NUMBER_FORMAT);
        cr_expect_str_eq(e.v[0].field, bad[k].field);
        cr_expect(strstr(e.v[0].message, bad[k].msg) != NULL, "'%s' lacks '%s'", e.v[0].message,
                  bad[k].msg);
    }
    /* a long cell is echoed cut */
    char longtext[200];
    memset(longtext, '9', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    longtext[1] = ',';
    cell(&ds, "us", longtext, &e);
    cr_assert_eq(e.n, 1);
    cr_expect(strstr(e.v[0].message, "...'") != NULL, "%s", e.v[0].message);
    row_errors_release(&e);
    schema_destroy(ds.schema);
}
