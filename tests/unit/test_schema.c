/*
 * test_schema.c - the schema compiler and row validator (src/schema/schema.h):
 * what is accepted and rejected at compile time, which errors a row gets, with
 * which field and message, date formats and schema compatibility.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>

#include "schema/schema.h"

#define JUDGMENTS                                                                                  \
    "{\"type\": \"object\","                                                                       \
    " \"required\": [\"case_number\", \"amount\", \"filed_date\"],"                                \
    " \"additionalProperties\": false,"                                                            \
    " \"properties\": {"                                                                           \
    "   \"case_number\": {\"type\": \"string\", \"pattern\": \"^CASE-[0-9]{7}$\"},"                \
    "   \"amount\": {\"type\": \"number\", \"minimum\": 0},"                                       \
    "   \"filed_date\": {\"type\": \"string\", \"format\": \"date\"},"                             \
    "   \"status\": {\"type\": \"string\", \"enum\": [\"open\", \"closed\", \"pending\"]},"        \
    "   \"notes\": {\"type\": \"string\", \"maxLength\": 2000}}}"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(j, "bad JSON in test: %s: %s", text, jerr.text);
    return j;
}

static struct schema *compile(const char *text)
{
    char err[256];
    json_t *spec = parse(text);
    struct schema *s = schema_compile(spec, err, sizeof err);
    json_decref(spec);
    cr_assert_not_null(s, "schema did not compile: %s", err);
    return s;
}

/* Compiling text fails with an error message containing want. */
static void compile_fails(const char *text, const char *want)
{
    char err[256] = "";
    json_t *spec = parse(text);
    struct schema *s = schema_compile(spec, err, sizeof err);
    json_decref(spec);
    schema_destroy(s);
    cr_assert_null(s, "schema compiled but should not: %s", text);
    cr_assert(strstr(err, want) != NULL, "error '%s' does not contain '%s'", err, want);
}

/* Validates the row and returns the number of errors; errs holds them. */
static size_t check(const struct schema *s, const char *row, struct row_errors *errs)
{
    json_t *r = parse(row);
    row_errors_clear(errs);
    size_t n = schema_validate(s, r, errs, NULL);
    json_decref(r);
    cr_assert_eq(n, errs->n, "return value %zu but %zu errors listed", n, errs->n);
    return n;
}

static void expect_err(const struct row_errors *e, size_t i, enum sluice_err code,
                       const char *field, const char *msg_part)
{
    cr_assert_lt(i, e->n, "only %zu errors", e->n);
    const struct row_error *r = &e->v[i];
    cr_assert_eq(r->code, code, "error %zu: code %s, expected %s (%s)", i, err_name(r->code),
                 err_name(code), r->message);
    if (field)
        cr_assert_str_eq(r->field, field);
    else
        cr_assert_null(r->field);
    cr_assert(strstr(r->message, msg_part) != NULL, "error %zu: message '%s' lacks '%s'", i,
              r->message, msg_part);
}

/* One schema with a single property of the given JSON spec, called "x". */
static struct schema *one(const char *prop)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "{\"properties\": {\"x\": %s}}", prop);
    return compile(buf);
}

static int valid_x(const struct schema *s, const char *value_json)
{
    char buf[4096];
    struct row_errors e = {0};
    snprintf(buf, sizeof buf, "{\"x\": %s}", value_json);
    size_t n = check(s, buf, &e);
    row_errors_release(&e);
    return n == 0;
}

/* ------------------------------------------------------------ the reference */

Test(judgments, valid_row_has_no_errors)
{
    struct schema *s = compile(JUDGMENTS);
    struct row_errors e = {0};
    cr_assert_eq(check(s,
                       "{\"case_number\": \"CASE-0000001\", \"amount\": 12.5,"
                       " \"filed_date\": \"2024-02-29\", \"status\": \"open\", \"notes\": \"ok\"}",
                       &e),
                 0);
    cr_assert_eq(
        check(s,
              "{\"case_number\": \"CASE-1234567\", \"amount\": 0, \"filed_date\": \"2023-12-31\"}",
              &e),
        0);
    row_errors_release(&e);
    schema_destroy(s);
}

Test(judgments, accessors)
{
    struct schema *s = compile(JUDGMENTS);
    cr_assert_eq(schema_nfields(s), 5);
    const char *names[] = {"case_number", "amount", "filed_date", "status", "notes"};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_str_eq(schema_field_name(s, i), names[i]);
        cr_assert_eq(schema_field_index(s, names[i]), (int)i);
    }
    cr_assert_eq(schema_field_type(s, 1), FT_NUMBER);
    cr_assert_eq(schema_field_type(s, 0), FT_STRING);
    cr_assert(schema_field_required(s, 0));
    cr_assert(schema_field_required(s, 2));
    cr_assert_not(schema_field_required(s, 3));
    cr_assert_eq(schema_field_index(s, "nope"), -1);
    cr_assert_eq(schema_field_index(s, "amoun"), -1);
    cr_assert_not(schema_allows_extra(s));
    schema_destroy(s);
}

Test(judgments, every_error_of_a_row_is_reported_in_order)
{
    struct schema *s = compile(JUDGMENTS);
    struct row_errors e = {0};
    /* bad pattern, negative amount, impossible date, unknown field, missing nothing else */
    cr_assert_eq(check(s,
                       "{\"zz\": 1, \"filed_date\": \"2024-02-30\", \"amount\": -5,"
                       " \"case_number\": \"CASE-12\"}",
                       &e),
                 4);
    expect_err(&e, 0, ERR_PATTERN_MISMATCH, "case_number", "^CASE-[0-9]{7}$");
    expect_err(&e, 0, ERR_PATTERN_MISMATCH, "case_number", "'CASE-12'");
    expect_err(&e, 1, ERR_OUT_OF_RANGE, "amount", "must be >= 0, got -5");
    expect_err(&e, 2, ERR_INVALID_DATE_FORMAT, "filed_date",
               "expected a date YYYY-MM-DD, got '2024-02-30'");
    expect_err(&e, 3, ERR_UNKNOWN_FIELD, "zz", "not declared");

    /* declared fields, then unknown fields in row order, then missing required */
    cr_assert_eq(check(s, "{\"b\": 1, \"status\": \"nope\", \"a\": 2}", &e), 6);
    expect_err(&e, 0, ERR_NOT_IN_ENUM, "status", "\"open\", \"closed\", \"pending\"");
    expect_err(&e, 0, ERR_NOT_IN_ENUM, "status", "'nope'");
    expect_err(&e, 1, ERR_UNKNOWN_FIELD, "b", "additionalProperties");
    expect_err(&e, 2, ERR_UNKNOWN_FIELD, "a", "additionalProperties");
    expect_err(&e, 3, ERR_MISSING_REQUIRED_FIELD, "case_number", "missing");
    expect_err(&e, 4, ERR_MISSING_REQUIRED_FIELD, "amount", "missing");
    expect_err(&e, 5, ERR_MISSING_REQUIRED_FIELD, "filed_date", "missing");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(judgments, invalid_type_only_once_per_field)
{
    struct schema *s = compile(JUDGMENTS);
    struct row_errors e = {0};
    cr_assert_eq(check(s,
                       "{\"case_number\": 7, \"amount\": \"12\", \"filed_date\": null,"
                       " \"notes\": [\"x\"], \"status\": {}}",
                       &e),
                 5);
    expect_err(&e, 0, ERR_INVALID_TYPE, "case_number", "expected string, got integer");
    expect_err(&e, 1, ERR_INVALID_TYPE, "amount", "expected number, got string");
    expect_err(&e, 2, ERR_INVALID_TYPE, "filed_date", "expected string, got null");
    expect_err(&e, 3, ERR_INVALID_TYPE, "status", "expected string, got object");
    expect_err(&e, 4, ERR_INVALID_TYPE, "notes", "expected string, got array");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(judgments, not_an_object)
{
    struct schema *s = compile(JUDGMENTS);
    struct row_errors e = {0};
    const char *rows[] = {"[1, 2]", "\"text\"", "3", "null", "true"};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(check(s, rows[i], &e), 1, "%s", rows[i]);
        expect_err(&e, 0, ERR_NOT_AN_OBJECT, NULL, "expected a JSON object");
    }
    cr_assert_eq(schema_validate(s, NULL, &e, NULL), 1);
    row_errors_release(&e);
    schema_destroy(s);
}

Test(judgments, notes_max_length_2000)
{
    struct schema *s = compile(JUDGMENTS);
    struct row_errors e = {0};
    char *notes = malloc(2002);
    memset(notes, 'a', 2001);
    notes[2001] = '\0';
    json_t *row = json_pack("{s:s, s:i, s:s, s:s}", "case_number", "CASE-0000001", "amount", 1,
                            "filed_date", "2024-01-01", "notes", notes);
    cr_assert_eq(schema_validate(s, row, &e, NULL), 1);
    expect_err(&e, 0, ERR_TOO_LONG, "notes", "length 2001 exceeds maxLength 2000");
    /* the message does not echo the whole value */
    cr_assert_lt(strlen(e.v[0].message), 200);
    row_errors_clear(&e);
    notes[2000] = '\0';
    json_object_set_new(row, "notes", json_string(notes));
    cr_assert_eq(schema_validate(s, row, &e, NULL), 0);
    json_decref(row);
    free(notes);
    row_errors_release(&e);
    schema_destroy(s);
}

/* ------------------------------------------------------------- top level */

Test(compile, top_level_keywords)
{
    struct schema *s = compile("{\"type\": \"object\", \"title\": \"t\", \"description\": \"d\"}");
    cr_assert_eq(schema_nfields(s), 0);
    cr_assert(schema_allows_extra(s));
    schema_destroy(s);
    compile_fails("{\"type\": \"array\"}", "'type' must be \"object\"");
    compile_fails("{\"type\": 3}", "'type' must be \"object\"");
    compile_fails("{\"additionalProperties\": {}}", "'additionalProperties' must be a boolean");
    compile_fails("{\"additionalProperties\": \"false\"}", "must be a boolean");
    compile_fails("{\"properties\": []}", "'properties' must be an object");
    compile_fails("{\"required\": \"a\"}", "'required' must be an array");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"string\"}}, \"required\": [1]}",
                  "required[0] must be a string");
    compile_fails("{\"patternProperties\": {}}", "unknown keyword 'patternProperties'");
    compile_fails("[]", "must be a JSON object");
}

Test(compile, required_must_be_declared)
{
    compile_fails("{\"properties\": {\"a\": {\"type\": \"string\"}}, \"required\": [\"a\", \"b\"]}",
                  "required: 'b' is not declared in properties");
    compile_fails("{\"required\": [\"a\"]}", "'a' is not declared");
}

Test(compile, property_names)
{
    compile_fails("{\"properties\": {\"_id\": {\"type\": \"string\"}}}", "invalid property name");
    compile_fails("{\"properties\": {\"1a\": {\"type\": \"string\"}}}", "invalid property name");
    compile_fails("{\"properties\": {\"a-b\": {\"type\": \"string\"}}}", "invalid property name");
    compile_fails("{\"properties\": {\"\": {\"type\": \"string\"}}}", "invalid property name");
    compile_fails("{\"properties\": {\"caf\u00e9\": {\"type\": \"string\"}}}",
                  "invalid property name");
    char name[70], buf[200];
    memset(name, 'a', 64);
    name[64] = '\0';
    snprintf(buf, sizeof buf, "{\"properties\": {\"%s\": {\"type\": \"string\"}}}", name);
    compile_fails(buf, "invalid property name");
    name[63] = '\0'; /* 63 characters is the limit */
    snprintf(buf, sizeof buf, "{\"properties\": {\"%s\": {\"type\": \"string\"}}}", name);
    struct schema *s = compile(buf);
    cr_assert_eq(schema_field_index(s, name), 0);
    schema_destroy(s);
    s = compile(
        "{\"properties\": {\"Z9_x\": {\"type\": \"boolean\"}, \"b\": {\"type\": \"integer\"}}}");
    cr_assert_eq(schema_field_index(s, "b"), 1);
    schema_destroy(s);
}

Test(compile, property_types)
{
    const char *ok[] = {"string", "integer", "number", "boolean"};
    for (int i = 0; i < 4; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "{\"type\": \"%s\"}", ok[i]);
        struct schema *s = one(buf);
        cr_assert_eq(schema_field_type(s, 0), (enum field_type)i);
        cr_assert_str_eq(field_type_name((enum field_type)i), ok[i]);
        schema_destroy(s);
    }
    compile_fails(
        "{\"properties\": {\"x\": {\"type\": \"array\"}}}",
        "properties.x: 'type' must be one of string, integer, number, boolean, got 'array'");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"object\"}}}", "got 'object'");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"null\"}}}", "got 'null'");
    compile_fails("{\"properties\": {\"x\": {\"type\": [\"string\"]}}}", "got array");
    compile_fails("{\"properties\": {\"x\": {\"maxLength\": 3}}}",
                  "properties.x: 'type' is required");
    compile_fails("{\"properties\": {\"x\": \"string\"}}", "properties.x: must be an object");
}

Test(compile, unknown_keywords)
{
    compile_fails("{\"properties\": {\"amount\": {\"type\": \"number\", \"minimun\": 0}}}",
                  "properties.amount: unknown keyword 'minimun'");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"required\": true}}}",
                  "properties.x: unknown keyword 'required'");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"default\": \"a\"}}}",
                  "unknown keyword 'default'");
    struct schema *s = one("{\"type\": \"string\", \"description\": \"d\", \"title\": \"t\"}");
    schema_destroy(s);
}

Test(compile, keywords_apply_to_their_types_only)
{
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"minimum\": 0}}}",
                  "properties.x: 'minimum' does not apply to type string");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"boolean\", \"exclusiveMaximum\": 1}}}",
                  "'exclusiveMaximum' does not apply to type boolean");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"integer\", \"maxLength\": 3}}}",
                  "'maxLength' does not apply to type integer");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"number\", \"minLength\": 3}}}",
                  "'minLength' does not apply");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"integer\", \"pattern\": \"a\"}}}",
                  "'pattern' does not apply to type integer");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"number\", \"format\": \"date\"}}}",
                  "'format' does not apply to type number");
}

Test(compile, keyword_values)
{
    compile_fails("{\"properties\": {\"x\": {\"type\": \"number\", \"minimum\": \"0\"}}}",
                  "properties.x: 'minimum' must be a number");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"number\", \"exclusiveMinimum\": true}}}",
                  "'exclusiveMinimum' must be a number");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"maxLength\": -1}}}",
                  "'maxLength' must be a non-negative integer");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"minLength\": 1.5}}}",
                  "'minLength' must be a non-negative integer");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"pattern\": 5}}}",
                  "'pattern' must be a string");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"format\": \"email\"}}}",
                  "properties.x: unknown format 'email'");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"format\": \"Date\"}}}",
                  "unknown format 'Date'");
    compile_fails(
        "{\"properties\": {\"x\": {\"type\": \"number\", \"minimum\": 5, \"maximum\": 4}}}",
        "minimum 5 is greater than maximum 4");
    compile_fails(
        "{\"properties\": {\"x\": {\"type\": \"string\", \"minLength\": 5, \"maxLength\": 4}}}",
        "minLength 5 is greater than maxLength 4");
}

/* Every empty range is refused, named by its bounds; ranges with room are accepted. */
Test(compile, empty_ranges)
{
    static const struct {
        const char *type, *bounds, *want;
    } bad[] = {
        {"number", "\"exclusiveMinimum\": 6, \"exclusiveMaximum\": 5",
         "no number satisfies exclusiveMinimum 6 and exclusiveMaximum 5"},
        {"number", "\"minimum\": 5, \"exclusiveMaximum\": 5",
         "no number satisfies minimum 5 and exclusiveMaximum 5"},
        {"number", "\"exclusiveMinimum\": 5, \"maximum\": 5",
         "no number satisfies exclusiveMinimum 5 and maximum 5"},
        {"number", "\"exclusiveMinimum\": 5, \"exclusiveMaximum\": 5",
         "exclusiveMinimum 5 and exclusiveMaximum 5"},
        {"integer", "\"exclusiveMinimum\": 5, \"exclusiveMaximum\": 6",
         "no integer satisfies exclusiveMinimum 5 and exclusiveMaximum 6"},
        {"integer", "\"minimum\": 5.2, \"maximum\": 5.8",
         "no integer satisfies minimum 5.2 and maximum 5.8"},
        {"integer", "\"minimum\": 1, \"exclusiveMinimum\": 4, \"maximum\": 4",
         "no integer satisfies exclusiveMinimum 4 and maximum 4"},
        {"number", "\"minimum\": 5, \"maximum\": 4", "minimum 5 is greater than maximum 4"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"properties\": {\"x\": {\"type\": \"%s\", %s}}}",
                 bad[i].type, bad[i].bounds);
        compile_fails(text, bad[i].want);
    }
    static const char *const good[] = {
        "{\"properties\": {\"x\": {\"type\": \"number\", \"minimum\": 5, \"maximum\": 5}}}",
        "{\"properties\": {\"x\": {\"type\": \"number\", \"exclusiveMinimum\": 5, "
        "\"exclusiveMaximum\": 5.0001}}}",
        "{\"properties\": {\"x\": {\"type\": \"integer\", \"exclusiveMinimum\": 5, "
        "\"exclusiveMaximum\": 7}}}",
        "{\"properties\": {\"x\": {\"type\": \"integer\", \"minimum\": 5.5, \"maximum\": 6}}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        schema_destroy(compile(good[i]));
}

/* SQLite folds the case of column names: two properties that differ only in case cannot be
 * two columns, so they are refused with both names. */
Test(compile, names_differing_only_in_case)
{
    compile_fails("{\"properties\": {\"dateTime\": {\"type\": \"string\"}, "
                  "\"datetime\": {\"type\": \"string\"}}}",
                  "properties.datetime: differs from properties.dateTime only in case");
    compile_fails("{\"properties\": {\"A\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}, "
                  "\"a\": {\"type\": \"integer\"}}}",
                  "properties.a: differs from properties.A");
}

/* The CSV-only keywords: what each field says about its cells, and what is refused. */
Test(compile, csv_keywords)
{
    struct schema *s =
        compile("{\"properties\": {"
                " \"street\": {\"type\": \"string\", \"csv_name\": \"On Street\", \"trim\": true,"
                "   \"csv_empty_string\": true},"
                " \"day\": {\"type\": \"string\", \"format\": \"date\"},"
                " \"note\": {\"type\": \"string\", \"csv_empty_string\": false},"
                " \"eu\": {\"type\": \"number\", \"decimal\": \",\", \"group\": \".\"},"
                " \"qty\": {\"type\": \"integer\", \"group\": \"'\"}}}");
    const struct field_csv *c = schema_field_csv(s, 0);
    cr_expect_str_eq(c->header, "On Street");
    cr_expect_str_eq(c->name, "On Street");
    cr_expect_eq(c->trim, 1);
    cr_expect_eq(c->empty_string, 1);
    c = schema_field_csv(s, 1); /* a date is trimmed like any non-string type */
    cr_expect_str_eq(c->header, "day");
    cr_expect_null(c->name);
    cr_expect_eq(c->trim, 1);
    cr_expect_eq(c->empty_string, -1);
    c = schema_field_csv(s, 2);
    cr_expect_eq(c->trim, 0);
    cr_expect_eq(c->empty_string, 0);
    c = schema_field_csv(s, 3);
    cr_expect(c->trim && c->decimal == ',' && c->group == '.');
    c = schema_field_csv(s, 4);
    cr_expect(c->decimal == '.' && c->group == '\'');
    cr_expect_null(schema_field_csv(s, 5));
    schema_destroy(s);

    compile_fails("{\"properties\": {\"a\": {\"type\": \"string\", \"csv_name\": \"\"}}}",
                  "properties.a: 'csv_name' must be a non-empty string");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"string\", \"csv_name\": 3}}}",
                  "'csv_name' must be a non-empty string");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"string\", \"trim\": \"yes\"}}}",
                  "properties.a: 'trim' must be a boolean");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"boolean\", \"csv_empty_string\": true}}}",
                  "'csv_empty_string' does not apply to type boolean");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"string\", \"group\": \",\"}}}",
                  "properties.a: 'group' does not apply to type string");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"integer\", \"decimal\": \",\"}}}",
                  "'decimal' does not apply to type integer");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"number\", \"decimal\": \";\"}}}",
                  "properties.a: 'decimal' must be one of");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"number\", \"group\": \",,\"}}}",
                  "'group' must be one of");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"number\", \"group\": \".\"}}}",
                  "'group' and 'decimal' are both '.'");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"string\", \"csv_name\": \"Case #\"},"
                  " \"b\": {\"type\": \"string\", \"csv_name\": \" CASE # \"}}}",
                  "properties.b: its CSV header ' CASE # ' and the CSV header 'Case #' of "
                  "properties.a match the same column");
    compile_fails("{\"properties\": {\"a\": {\"type\": \"string\"},"
                  " \"b\": {\"type\": \"string\", \"csv_name\": \"A\"}}}",
                  "properties.b: its CSV header 'A' and the CSV header 'a' of properties.a");
}

Test(csv, header_like_and_trim)
{
    cr_expect(schema_csv_header_like(" on street\t", 11, "On Street"));
    cr_expect(schema_csv_header_like("CASE #", 6, " case # "));
    cr_expect_not(schema_csv_header_like("On  Street", 10, "On Street"));
    cr_expect_not(schema_csv_header_like("On Street2", 10, "On Street"));
    cr_expect_not(schema_csv_header_like("", 0, "a"));
    const char *p = " \t x y \r\n";
    size_t n = strlen(p);
    schema_csv_trim(&p, &n);
    cr_expect(n == 3 && memcmp(p, "x y", 3) == 0);
    p = "   ";
    n = 3;
    schema_csv_trim(&p, &n);
    cr_expect_eq(n, 0);
}

/* A field whose value the caller already reported (a CSV cell in the wrong number format) is
 * neither checked again nor reported missing. */
Test(csv, reported_field_is_not_missing)
{
    struct schema *s = compile("{\"required\": [\"a\", \"b\"], \"properties\": {"
                               "\"a\": {\"type\": \"number\"}, \"b\": {\"type\": \"number\"}}}");
    struct row_value v[2] = {{.kind = VAL_ABSENT}, {.kind = VAL_ABSENT}};
    struct row_errors e = {0};
    row_errors_add(&e, ERR_INVALID_NUMBER_FORMAT, "a", "bad");
    cr_expect_eq(schema_validate_values(s, v, NULL, 0, &e), 1);
    cr_assert_eq(e.n, 2);
    expect_err(&e, 1, ERR_MISSING_REQUIRED_FIELD, "b", "required field is missing");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(compile, bad_patterns)
{
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"(ab\"}}}",
                  "properties.x: invalid pattern: missing closing parenthesis at offset 3");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"a{2,1}\"}}}",
                  "properties.x: invalid pattern: ");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"[z-a]\"}}}",
                  "invalid pattern");
}

Test(compile, enum_values)
{
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"enum\": []}}}",
                  "properties.x: 'enum' must be a non-empty array");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"enum\": \"a\"}}}",
                  "'enum' must be a non-empty array");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"enum\": [\"a\", 1]}}}",
                  "properties.x: enum[1]: expected string, got integer");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"integer\", \"enum\": [1, 1.5]}}}",
                  "enum[1]: expected integer, got number");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"number\", \"enum\": [1, null]}}}",
                  "enum[1]: expected number, got null");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"boolean\", \"enum\": [true, \"false\"]}}}",
                  "enum[1]: expected boolean, got string");
    compile_fails("{\"properties\": {\"x\": {\"type\": \"string\", \"enum\": [[\"a\"]]}}}",
                  "enum[0]: expected string, got array");
}

/* ------------------------------------------------------------- keywords */

Test(keywords, integer_type)
{
    struct schema *s = one("{\"type\": \"integer\"}");
    cr_assert(valid_x(s, "3"));
    cr_assert(valid_x(s, "-9223372036854775808"));
    cr_assert(valid_x(s, "3.0"));
    cr_assert(valid_x(s, "-0.0"));
    cr_assert(valid_x(s, "1e3"));
    cr_assert_not(valid_x(s, "3.5"));
    cr_assert_not(valid_x(s, "1e19"));
    cr_assert_not(valid_x(s, "\"3\""));
    cr_assert_not(valid_x(s, "true"));
    struct row_errors e = {0};
    cr_assert_eq(check(s, "{\"x\": 3.5}", &e), 1);
    expect_err(&e, 0, ERR_INVALID_TYPE, "x", "expected integer, got number 3.5");
    cr_assert_eq(check(s, "{\"x\": false}", &e), 1);
    expect_err(&e, 0, ERR_INVALID_TYPE, "x", "expected integer, got boolean");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(keywords, number_and_boolean_types)
{
    struct schema *s = one("{\"type\": \"number\"}");
    cr_assert(valid_x(s, "3"));
    cr_assert(valid_x(s, "3.25"));
    cr_assert(valid_x(s, "-1e300"));
    cr_assert_not(valid_x(s, "\"1\""));
    cr_assert_not(valid_x(s, "null"));
    cr_assert_not(valid_x(s, "true"));
    schema_destroy(s);
    s = one("{\"type\": \"boolean\"}");
    cr_assert(valid_x(s, "true"));
    cr_assert(valid_x(s, "false"));
    cr_assert_not(valid_x(s, "0"));
    cr_assert_not(valid_x(s, "\"true\""));
    struct row_errors e = {0};
    cr_assert_eq(check(s, "{\"x\": 1}", &e), 1);
    expect_err(&e, 0, ERR_INVALID_TYPE, "x", "expected boolean, got integer");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(keywords, minimum_maximum)
{
    struct schema *s = one("{\"type\": \"number\", \"minimum\": 0, \"maximum\": 10.5}");
    cr_assert(valid_x(s, "0"));
    cr_assert(valid_x(s, "10.5"));
    cr_assert(valid_x(s, "5"));
    cr_assert_not(valid_x(s, "-0.001"));
    cr_assert_not(valid_x(s, "10.50001"));
    struct row_errors e = {0};
    cr_assert_eq(check(s, "{\"x\": 11}", &e), 1);
    expect_err(&e, 0, ERR_OUT_OF_RANGE, "x", "must be <= 10.5, got 11");
    cr_assert_eq(check(s, "{\"x\": -0.1}", &e), 1);
    expect_err(&e, 0, ERR_OUT_OF_RANGE, "x", "must be >= 0, got -0.1");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(keywords, exclusive_bounds)
{
    struct schema *s =
        one("{\"type\": \"integer\", \"exclusiveMinimum\": 0, \"exclusiveMaximum\": 100}");
    cr_assert(valid_x(s, "1"));
    cr_assert(valid_x(s, "99"));
    cr_assert(valid_x(s, "99.0"));
    cr_assert_not(valid_x(s, "0"));
    cr_assert_not(valid_x(s, "100"));
    struct row_errors e = {0};
    cr_assert_eq(check(s, "{\"x\": 0}", &e), 1);
    expect_err(&e, 0, ERR_OUT_OF_RANGE, "x", "must be > 0, got 0");
    cr_assert_eq(check(s, "{\"x\": 100.0}", &e), 1);
    expect_err(&e, 0, ERR_OUT_OF_RANGE, "x", "must be < 100, got 100");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(keywords, large_integers_compare_exactly)
{
    struct schema *s = one("{\"type\": \"integer\", \"maximum\": 9007199254740993}");
    cr_assert(valid_x(s, "9007199254740993"));
    cr_assert_not(valid_x(s, "9007199254740994"));
    schema_destroy(s);
}

Test(keywords, min_and_max_length_in_code_points)
{
    struct schema *s = one("{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 3}");
    cr_assert(valid_x(s, "\"ab\""));
    cr_assert(valid_x(s, "\"abc\""));
    /* 3 code points, 9 bytes: within maxLength 3 */
    cr_assert(valid_x(s, "\"\u20ac\u20ac\u20ac\""));
    cr_assert(valid_x(s, "\"\\u00e9t\\u00e9\""));
    /* an emoji outside the BMP is one code point (4 bytes) */
    cr_assert(valid_x(s, "\"\\ud83d\\ude00x\""));
    cr_assert_not(valid_x(s, "\"a\""));
    cr_assert_not(valid_x(s, "\"abcd\""));
    cr_assert_not(valid_x(s, "\"\u20ac\u20ac\u20ac\u20ac\""));
    struct row_errors e = {0};
    cr_assert_eq(check(s, "{\"x\": \"\u00e9\u00e9\u00e9\u00e9\"}", &e), 1);
    expect_err(&e, 0, ERR_TOO_LONG, "x", "length 4 exceeds maxLength 3");
    /* two bytes but one code point: too short */
    cr_assert_eq(check(s, "{\"x\": \"\u00e9\"}", &e), 1);
    expect_err(&e, 0, ERR_TOO_SHORT, "x", "length 1 is less than minLength 2");
    cr_assert_eq(check(s, "{\"x\": \"\"}", &e), 1);
    expect_err(&e, 0, ERR_TOO_SHORT, "x", "length 0 is less than minLength 2");
    row_errors_release(&e);
    schema_destroy(s);

    s = one("{\"type\": \"string\", \"maxLength\": 0}");
    cr_assert(valid_x(s, "\"\""));
    cr_assert_not(valid_x(s, "\"a\""));
    schema_destroy(s);
}

Test(keywords, pattern_is_unanchored_and_unicode_aware)
{
    struct schema *s = one("{\"type\": \"string\", \"pattern\": \"[0-9]{3}\"}");
    cr_assert(valid_x(s, "\"abc123def\""));
    cr_assert_not(valid_x(s, "\"12a3\""));
    schema_destroy(s);
    s = one("{\"type\": \"string\", \"pattern\": \"^\\\\w+$\"}");
    cr_assert(valid_x(s, "\"gr\u00fc\u00dfe\"")); /* UCP: \w matches letters beyond ASCII */
    cr_assert_not(valid_x(s, "\"a b\""));
    schema_destroy(s);
    s = one("{\"type\": \"string\", \"pattern\": \"^.{2}$\"}");
    cr_assert(valid_x(s, "\"\u20ac\u20ac\"")); /* UTF: . is a character, not a byte */
    schema_destroy(s);
    s = one("{\"type\": \"string\", \"pattern\": \"^a\"}");
    struct row_errors e = {0};
    cr_assert_eq(check(s, "{\"x\": \"ba\"}", &e), 1);
    expect_err(&e, 0, ERR_PATTERN_MISMATCH, "x", "does not match pattern '^a', got 'ba'");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(keywords, enum_strings)
{
    struct schema *s =
        one("{\"type\": \"string\", \"enum\": [\"b\", \"a\", \"ccc\", \"\", \"\u00e9\"]}");
    cr_assert(valid_x(s, "\"a\""));
    cr_assert(valid_x(s, "\"b\""));
    cr_assert(valid_x(s, "\"ccc\""));
    cr_assert(valid_x(s, "\"\""));
    cr_assert(valid_x(s, "\"\u00e9\""));
    cr_assert_not(valid_x(s, "\"A\""));
    cr_assert_not(valid_x(s, "\"cc\""));
    struct row_errors e = {0};
    cr_assert_eq(check(s, "{\"x\": \"d\"}", &e), 1);
    expect_err(&e, 0, ERR_NOT_IN_ENUM, "x",
               "must be one of \"b\", \"a\", \"ccc\", \"\", \"\u00e9\"; got 'd'");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(keywords, enum_numbers_and_booleans)
{
    struct schema *s = one("{\"type\": \"integer\", \"enum\": [1, 2, 3.0]}");
    cr_assert(valid_x(s, "1"));
    cr_assert(valid_x(s, "2.0"));
    cr_assert(valid_x(s, "3"));
    cr_assert_not(valid_x(s, "4"));
    struct row_errors e = {0};
    cr_assert_eq(check(s, "{\"x\": 4}", &e), 1);
    expect_err(&e, 0, ERR_NOT_IN_ENUM, "x", "must be one of 1, 2, 3; got 4");
    schema_destroy(s);

    s = one("{\"type\": \"number\", \"enum\": [0.5, 2]}");
    cr_assert(valid_x(s, "0.5"));
    cr_assert(valid_x(s, "2.0"));
    cr_assert_not(valid_x(s, "0.25"));
    schema_destroy(s);

    s = one("{\"type\": \"boolean\", \"enum\": [true]}");
    cr_assert(valid_x(s, "true"));
    cr_assert_eq(check(s, "{\"x\": false}", &e), 1);
    expect_err(&e, 0, ERR_NOT_IN_ENUM, "x", "must be one of true; got false");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(keywords, one_value_can_break_several_rules)
{
    struct schema *s = one("{\"type\": \"string\", \"maxLength\": 3, \"pattern\": \"^[a-z]+$\","
                           " \"enum\": [\"ab\"]}");
    struct row_errors e = {0};
    cr_assert_eq(check(s, "{\"x\": \"ABCD\"}", &e), 3);
    expect_err(&e, 0, ERR_TOO_LONG, "x", "length 4 exceeds maxLength 3");
    expect_err(&e, 1, ERR_PATTERN_MISMATCH, "x", "^[a-z]+$");
    expect_err(&e, 2, ERR_NOT_IN_ENUM, "x", "got 'ABCD'");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(keywords, long_values_are_truncated_in_messages)
{
    struct schema *s = one("{\"type\": \"string\", \"pattern\": \"^x\"}");
    /* 100 two-byte characters: the echo must stop on a character boundary */
    char buf[512] = "{\"x\": \"";
    for (int i = 0; i < 100; i++)
        strcat(buf, "\u00e9");
    strcat(buf, "\"}");
    struct row_errors e = {0};
    cr_assert_eq(check(s, buf, &e), 1);
    const char *m = e.v[0].message;
    cr_assert_lt(strlen(m), 120);
    cr_assert(strstr(m, "...'") != NULL, "%s", m);
    /* still valid UTF-8: jansson refuses anything else */
    json_t *j = row_errors_to_json(&e);
    cr_assert_not_null(j);
    cr_assert_not_null(json_object_get(json_array_get(j, 0), "message"));
    json_decref(j);
    row_errors_release(&e);
    schema_destroy(s);
}

/* ------------------------------------------------------------- formats */

Test(formats, date)
{
    const char *good[] = {"2024-02-29", "2000-02-29", "2023-12-31", "0001-01-01", "1999-04-30"};
    const char *bad[] = {
        "2023-02-29",           "1900-02-29", "2024-02-30",  "2024-13-01",  "2024-00-10",
        "2024-01-00",           "2024-04-31", "2024-1-01",   "24-01-01",    "2024/01/01",
        "2024-01-01T00:00:00Z", "2024-01-1a", " 2024-01-01", "2024-01-01 ", ""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_assert(schema_is_date(good[i], strlen(good[i])), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_not(schema_is_date(bad[i], strlen(bad[i])), "%s", bad[i]);
    /* the length counts: a valid prefix is not enough */
    cr_assert_not(schema_is_date("2024-01-012", 11));
    cr_assert(schema_is_date("2024-01-012", 10));
}

Test(formats, date_time)
{
    const char *good[] = {
        "2024-02-29T12:30:00Z",
        "2024-01-01t00:00:00z",
        "2024-01-01T23:59:60Z",
        "2024-01-01T10:00:00.5Z",
        "2024-01-01T10:00:00.123456789+05:30",
        "2024-01-01T10:00:00-00:00",
        "2024-01-01T10:00:00+23:59",
    };
    const char *bad[] = {
        "2024-01-01 10:00:00Z",      "2024-01-01T10:00:00",        "2024-01-01T24:00:00Z",
        "2024-01-01T10:60:00Z",      "2024-01-01T10:00:61Z",       "2024-01-01T10:00Z",
        "2024-01-01T10:00:00.Z",     "2024-01-01T10:00:00+0530",   "2024-01-01T10:00:00+24:00",
        "2024-01-01T10:00:00+05:60", "2023-02-29T10:00:00Z",       "2024-01-01T10:00:00ZZ",
        "2024-01-01T1:00:00Z",       "2024-01-01T10:00:00+05:30 ", "2024-01-01",
        "2024-01-01T10:00:00,5Z",    "2024-01-01T10:00:00 Z",      "",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_assert(schema_is_datetime(good[i], strlen(good[i])), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_not(schema_is_datetime(bad[i], strlen(bad[i])), "%s", bad[i]);
}

Test(formats, in_rows)
{
    struct schema *s =
        compile("{\"properties\": {\"d\": {\"type\": \"string\", \"format\": \"date\"},"
                " \"t\": {\"type\": \"string\", \"format\": \"date-time\"}}}");
    struct row_errors e = {0};
    cr_assert_eq(check(s, "{\"d\": \"2024-02-29\", \"t\": \"2024-02-29T00:00:00Z\"}", &e), 0);
    cr_assert_eq(check(s, "{\"d\": \"2023-02-29\", \"t\": \"2024-02-29 00:00:00Z\"}", &e), 2);
    expect_err(&e, 0, ERR_INVALID_DATE_FORMAT, "d", "expected a date YYYY-MM-DD, got '2023-02-29'");
    expect_err(&e, 1, ERR_INVALID_DATE_FORMAT, "t", "RFC 3339 date-time");
    expect_err(&e, 1, ERR_INVALID_DATE_FORMAT, "t", "got '2024-02-29 00:00:00Z'");
    cr_assert_eq(check(s, "{\"d\": 20240229}", &e), 1);
    expect_err(&e, 0, ERR_INVALID_TYPE, "d", "expected string, got integer");
    row_errors_release(&e);
    schema_destroy(s);
}

/* ------------------------------------------------------------- extras */

Test(extra, undeclared_fields_are_returned)
{
    struct schema *s = compile("{\"properties\": {\"a\": {\"type\": \"integer\"}}}");
    cr_assert(schema_allows_extra(s));
    struct row_errors e = {0};
    json_t *row = parse("{\"z\": [1], \"a\": 1, \"b\": \"x\"}");
    json_t *extra = (json_t *)1;
    cr_assert_eq(schema_validate(s, row, &e, &extra), 0);
    cr_assert_not_null(extra);
    cr_assert_eq(json_object_size(extra), 2);
    cr_assert(json_equal(json_object_get(extra, "z"), json_object_get(row, "z")));
    cr_assert_str_eq(json_string_value(json_object_get(extra, "b")), "x");
    cr_assert_null(json_object_get(extra, "a"));
    json_decref(extra);

    /* no undeclared fields: NULL */
    json_t *row2 = parse("{\"a\": 2}");
    extra = (json_t *)1;
    cr_assert_eq(schema_validate(s, row2, &e, &extra), 0);
    cr_assert_null(extra);

    /* an invalid row: no extra either */
    json_t *row3 = parse("{\"a\": \"no\", \"b\": 1}");
    extra = (json_t *)1;
    cr_assert_eq(schema_validate(s, row3, &e, &extra), 1);
    cr_assert_null(extra);

    /* extra may be NULL */
    row_errors_clear(&e);
    cr_assert_eq(schema_validate(s, row, &e, NULL), 0);
    json_decref(row);
    json_decref(row2);
    json_decref(row3);
    row_errors_release(&e);
    schema_destroy(s);
}

Test(extra, schema_without_properties_accepts_any_object)
{
    struct schema *s = compile("{\"type\": \"object\"}");
    struct row_errors e = {0};
    json_t *row = parse("{\"anything\": {\"nested\": true}, \"_x\": null}");
    json_t *extra = NULL;
    cr_assert_eq(schema_validate(s, row, &e, &extra), 0);
    cr_assert_eq(json_object_size(extra), 2);
    json_decref(extra);
    json_decref(row);
    cr_assert_eq(check(s, "[]", &e), 1);
    row_errors_release(&e);
    schema_destroy(s);
}

Test(extra, no_extra_when_additional_properties_false)
{
    struct schema *s = compile("{\"properties\": {\"a\": {\"type\": \"integer\"}},"
                               " \"additionalProperties\": false}");
    struct row_errors e = {0};
    json_t *row = parse("{\"a\": 1}");
    json_t *extra = (json_t *)1;
    cr_assert_eq(schema_validate(s, row, &e, &extra), 0);
    cr_assert_null(extra);
    json_decref(row);
    cr_assert_eq(check(s, "{\"a\": 1, \"b\": 2}", &e), 1);
    expect_err(&e, 0, ERR_UNKNOWN_FIELD, "b", "additionalProperties is false");
    row_errors_release(&e);
    schema_destroy(s);
}

Test(extra, key_with_nul_is_not_a_declared_field)
{
    struct schema *s = compile("{\"properties\": {\"a\": {\"type\": \"integer\"}},"
                               " \"additionalProperties\": false}");
    struct row_errors e = {0};
    json_t *row = json_object();
    json_object_setn_new(row, "a\0b", 3, json_string("x"));
    cr_assert_eq(schema_validate(s, row, &e, NULL), 1);
    cr_assert_eq(e.v[0].code, ERR_UNKNOWN_FIELD);
    json_decref(row);
    row_errors_release(&e);
    schema_destroy(s);
}

/* ------------------------------------------------------------- row errors */

Test(row_errors, add_clear_release_and_json)
{
    struct row_errors e = {0};
    for (int i = 0; i < 20; i++)
        row_errors_add(&e, ERR_OUT_OF_RANGE, "f", "value %d", i);
    row_errors_add(&e, ERR_NOT_AN_OBJECT, NULL, "row level");
    cr_assert_eq(e.n, 21);
    cr_assert_str_eq(e.v[19].message, "value 19");
    json_t *j = row_errors_to_json(&e);
    cr_assert_eq(json_array_size(j), 21);
    json_t *first = json_array_get(j, 0), *last = json_array_get(j, 20);
    cr_assert_str_eq(json_string_value(json_object_get(first, "field")), "f");
    cr_assert_str_eq(json_string_value(json_object_get(first, "code")), "OUT_OF_RANGE");
    cr_assert_str_eq(json_string_value(json_object_get(first, "message")), "value 0");
    cr_assert(json_is_null(json_object_get(last, "field")));
    cr_assert_str_eq(json_string_value(json_object_get(last, "code")), "NOT_AN_OBJECT");
    json_decref(j);
    size_t cap = e.cap;
    row_errors_clear(&e);
    cr_assert_eq(e.n, 0);
    cr_assert_eq(e.cap, cap);
    j = row_errors_to_json(&e);
    cr_assert_eq(json_array_size(j), 0);
    json_decref(j);
    row_errors_release(&e);
    cr_assert_null(e.v);
    row_errors_release(&e); /* twice is fine */
}

/* ------------------------------------------------------------- compatibility */

static int compat(const char *old, const char *next, char *why, size_t n)
{
    struct schema *a = compile(old), *b = compile(next);
    int rc = schema_compatible(a, b, why, n);
    schema_destroy(a);
    schema_destroy(b);
    return rc;
}

Test(compatible, cases)
{
    char why[256];
    const char *base = "{\"required\": [\"a\"], \"properties\": {\"a\": {\"type\": \"number\"},"
                       " \"b\": {\"type\": \"string\"}}}";
    cr_assert_eq(compat(base, base, why, sizeof why), 0);
    /* new optional field, new constraints, dropped requirement, new extras policy: fine */
    cr_assert_eq(compat(base,
                        "{\"additionalProperties\": false, \"properties\": {"
                        " \"a\": {\"type\": \"number\", \"minimum\": 0},"
                        " \"b\": {\"type\": \"string\", \"maxLength\": 3},"
                        " \"c\": {\"type\": \"boolean\"}}}",
                        why, sizeof why),
                 0);
    cr_assert_eq(compat(base, "{\"properties\": {\"a\": {\"type\": \"number\"}}}", why, sizeof why),
                 -1);
    cr_assert_str_eq(why, "field 'b' was removed");
    cr_assert_eq(
        compat(base,
               "{\"properties\": {\"a\": {\"type\": \"string\"}, \"b\": {\"type\": \"string\"}}}",
               why, sizeof why),
        -1);
    cr_assert_str_eq(why, "field 'a' changed type from number to string");
    cr_assert_eq(
        compat(base,
               "{\"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"string\"}}}",
               why, sizeof why),
        -1);
    cr_assert(strstr(why, "from number to integer"));
    cr_assert_eq(
        compat(base,
               "{\"required\": [\"a\", \"b\"], \"properties\": {\"a\": {\"type\": \"number\"},"
               " \"b\": {\"type\": \"string\"}}}",
               why, sizeof why),
        -1);
    cr_assert(strstr(why, "field 'b' became required"), "%s", why);
    cr_assert_eq(compat(base,
                        "{\"required\": [\"c\"], \"properties\": {\"a\": {\"type\": \"number\"},"
                        " \"b\": {\"type\": \"string\"}, \"c\": {\"type\": \"string\"}}}",
                        why, sizeof why),
                 -1);
    cr_assert(strstr(why, "new field 'c' is required"), "%s", why);
    /* field order does not matter */
    cr_assert_eq(
        compat(base,
               "{\"properties\": {\"b\": {\"type\": \"string\"}, \"a\": {\"type\": \"number\"}}}",
               why, sizeof why),
        0);
}

/* ------------------------------------------------------------- threads */

struct worker {
    const struct schema *s;
    int bad;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct row_errors e = {0};
    json_t *good = json_pack("{s:s, s:f, s:s}", "case_number", "CASE-0000001", "amount", 1.5,
                             "filed_date", "2024-01-01");
    json_t *bad = json_pack("{s:s, s:f, s:s}", "case_number", "CASE-1", "amount", 1.5, "filed_date",
                            "2024-01-01");
    for (int i = 0; i < 2000; i++) {
        row_errors_clear(&e);
        if (schema_validate(w->s, good, &e, NULL) != 0 || schema_validate(w->s, bad, &e, NULL) != 1)
            w->bad++;
    }
    json_decref(good);
    json_decref(bad);
    row_errors_release(&e);
    return NULL;
}

Test(threads, one_schema_shared_by_threads)
{
    struct schema *s = compile(JUDGMENTS);
    pthread_t t[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.s = s};
        cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].bad, 0);
    }
    schema_destroy(s);
}

/* ---- rows given as values (CSV) ------------------------------------------------------- */

/* The row as values in schema order, and its undeclared member names. */
static void values_of(const struct schema *s, json_t *row, struct row_value *v, const char **unk,
                      size_t *nunk)
{
    *nunk = 0;
    for (size_t i = 0; i < schema_nfields(s); i++) {
        json_t *j = json_object_get(row, schema_field_name(s, i));
        v[i].kind = VAL_ABSENT;
        if (!j)
            continue;
        switch (json_typeof(j)) {
        case JSON_STRING:
            v[i].kind = VAL_TEXT;
            v[i].u.s.p = json_string_value(j);
            v[i].u.s.n = json_string_length(j);
            break;
        case JSON_INTEGER:
            v[i].kind = VAL_INT;
            v[i].u.i = json_integer_value(j);
            break;
        case JSON_REAL:
            v[i].kind = VAL_REAL;
            v[i].u.d = json_real_value(j);
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            v[i].kind = VAL_BOOL;
            v[i].u.b = json_is_true(j);
            break;
        case JSON_NULL:
            v[i].kind = VAL_NULL;
            break;
        case JSON_ARRAY:
            v[i].kind = VAL_ARRAY;
            break;
        case JSON_OBJECT:
            v[i].kind = VAL_OBJECT;
            break;
        }
    }
    const char *k;
    json_t *val;
    json_object_foreach(row, k, val)
    {
        (void)val;
        if (schema_field_index(s, k) < 0)
            unk[(*nunk)++] = k;
    }
}

Test(values, same_errors_as_the_json_row)
{
    struct schema *s = compile(JUDGMENTS);
    const char *rows[] = {
        "{\"case_number\": \"CASE-0000001\", \"amount\": 1.5, \"filed_date\": \"2024-01-01\"}",
        "{\"zz\": 1, \"filed_date\": \"2024-02-30\", \"amount\": -5, \"case_number\": \"CASE-12\"}",
        "{\"b\": 1, \"status\": \"nope\", \"a\": 2}",
        "{\"case_number\": 7, \"amount\": \"x\", \"filed_date\": null, \"notes\": [1]}",
        "{\"case_number\": \"CASE-0000001\", \"amount\": true, \"filed_date\": {}, \"status\": 1}",
        "{\"amount\": 3, \"filed_date\": \"2024-01-01\", \"case_number\": \"case-0000001\"}",
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        json_t *row = parse(rows[r]);
        struct row_errors a = {0}, b = {0};
        struct row_value v[8];
        const char *unk[8];
        size_t nunk;
        values_of(s, row, v, unk, &nunk);
        size_t na = schema_validate(s, row, &a, NULL);
        size_t nb = schema_validate_values(s, v, unk, nunk, &b);
        cr_expect_eq(na, nb, "row %zu: %zu errors from JSON, %zu from values", r, na, nb);
        for (size_t i = 0; i < na && i < nb; i++) {
            cr_expect_eq(a.v[i].code, b.v[i].code, "row %zu error %zu", r, i);
            cr_expect_str_eq(a.v[i].field ? a.v[i].field : "-", b.v[i].field ? b.v[i].field : "-");
            cr_expect_str_eq(a.v[i].message, b.v[i].message);
        }
        row_errors_release(&a);
        row_errors_release(&b);
        json_decref(row);
    }
    schema_destroy(s);
}

Test(values, integer_as_real_and_text_not_nul_terminated)
{
    struct schema *s = compile("{\"type\": \"object\", \"properties\": {"
                               " \"n\": {\"type\": \"integer\", \"maximum\": 10},"
                               " \"t\": {\"type\": \"string\", \"enum\": [\"ab\"]}}}");
    struct row_errors e = {0};
    struct row_value v[2] = {{.kind = VAL_REAL, .u.d = 3.0}, {.kind = VAL_TEXT}};
    v[1].u.s.p = "abc"; /* only "ab": the length counts, not a NUL */
    v[1].u.s.n = 2;
    cr_expect_eq(schema_validate_values(s, v, NULL, 0, &e), 0);
    v[0].u.d = 3.5;
    v[1].u.s.n = 3;
    cr_expect_eq(schema_validate_values(s, v, NULL, 0, &e), 2);
    expect_err(&e, 0, ERR_INVALID_TYPE, "n", "expected integer, got number 3.5");
    expect_err(&e, 1, ERR_NOT_IN_ENUM, "t", "got 'abc'");
    row_errors_release(&e);
    schema_destroy(s);
}
