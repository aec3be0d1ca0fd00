/*
 * fuzz_ingest.c - libFuzzer target for the ingest path's parsers: the body
 * splitter, the row parser and the validator, on JSON and NDJSON bodies.
 *   make fuzz && ./build/fuzz/fuzz_ingest -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/rows.h"
#include "schema/schema.h"

static struct schema *schema;

static void validate_all(const char *body, size_t len, int ndjson)
{
    struct row_span *spans = NULL;
    size_t n = 0;
    char msg[256];
    enum sluice_err e = ndjson ? rows_split_ndjson(body, len, &spans, &n)
                               : rows_split_json(body, len, 16, &spans, &n, msg, sizeof msg);
    for (size_t i = 0; e == SLUICE_OK && i < n; i++) {
        json_t *row = NULL, *extra = NULL;
        int syntax;
        if (spans[i].off + spans[i].len > len)
            abort(); /* a span outside the body is a bug */
        if (rows_parse(body + spans[i].off, spans[i].len, 4096, 16, &row, &syntax, msg,
                       sizeof msg) == SLUICE_OK) {
            struct row_errors errs = {0};
            schema_validate(schema, row, &errs, &extra);
            json_decref(row_errors_to_json(&errs));
            row_errors_release(&errs);
            json_decref(extra);
            json_decref(row);
        }
    }
    free(spans);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schema) {
        json_error_t jerr;
        json_t *spec = json_loads(
            "{\"type\":\"object\",\"required\":[\"case_number\",\"amount\"],"
            "\"properties\":{\"case_number\":{\"type\":\"string\",\"pattern\":\"^CASE-[0-9]{7}$\"},"
            "\"amount\":{\"type\":\"number\",\"minimum\":0},\"d\":{\"type\":\"string\",\"format\":"
            "\"date\"},"
            "\"t\":{\"type\":\"string\",\"format\":\"date-time\"},\"n\":{\"type\":\"integer\","
            "\"maximum\":9},"
            "\"s\":{\"type\":\"string\",\"enum\":[\"a\",\"b\"],\"maxLength\":3}}}",
            0, &jerr);
        char err[256];
        schema = schema_compile(spec, err, sizeof err);
        json_decref(spec);
        if (!schema)
            abort();
    }
    validate_all((const char *)data, size, 0);
    validate_all((const char *)data, size, 1);
    return 0;
}
