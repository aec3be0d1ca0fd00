/*
 * test_config.c - the configuration loader: the example file, defaults, sizes
 * and durations, that every error names file:line:option, the environment,
 * flow mappings, YAML scalars in schemas, and that docs/configuration.md is
 * what config_write_docs() writes.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Write text to a new temp file; returns its path (caller frees and unlinks). */
static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/sluice-test-config-XXXXXX.yaml");
    cr_assert_not_null(path);
    int fd = mkstemps(path, 5);
    cr_assert_geq(fd, 0, "mkstemps failed");
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* Load text from a temp file; returns config_load's result, the path in *pathp. */
static int load_text(const char *text, struct sluice_config *cfg, char *err, size_t errlen,
                     char **pathp)
{
    char *path = write_temp(text);
    int rc = config_load(path, cfg, err, errlen);
    unlink(path);
    *pathp = path;
    return rc;
}

Test(config, example_file_loads)
{
    struct sluice_config cfg;
    char err[512];

    cr_assert_eq(config_load("examples/sluice.yaml", &cfg, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cfg.path, "examples/sluice.yaml");
    cr_expect_str_eq(cfg.listen, "127.0.0.1:8080");
    cr_expect_str_eq(cfg.data_dir, "./var");
    cr_expect_str_eq(cfg.storage, "sqlite:./var/sluice.db");
    cr_expect_eq(cfg.limits.max_body_bytes, 67108864);
    cr_expect_eq(cfg.limits.max_row_bytes, 1048576);
    cr_expect_eq(cfg.limits.max_json_depth, 64);
    cr_expect_eq(cfg.limits.max_header_bytes, 16384); /* default */
    cr_assert_eq(cfg.ndatasets, 2);

    const struct dataset_config *j = config_dataset(&cfg, "judgments");
    cr_assert_not_null(j);
    cr_expect_str_eq(j->key, "case_number");
    cr_expect_eq(j->on_duplicate, ON_DUP_REJECT);
    cr_expect_float_eq(j->error_threshold_percent, 10.0, 1e-9);
    cr_assert_not_null(j->schema);
    cr_expect_eq(schema_nfields(j->schema), 5);
    cr_expect_str_eq(schema_field_name(j->schema, 0), "case_number");
    cr_expect_eq(schema_field_type(j->schema, schema_field_index(j->schema, "amount")), FT_NUMBER);
    cr_expect(schema_field_required(j->schema, schema_field_index(j->schema, "filed_date")));
    cr_expect_not(schema_allows_extra(j->schema));
    json_t *pattern = json_object_get(
        json_object_get(json_object_get(j->schema_json, "properties"), "case_number"), "pattern");
    cr_assert(json_is_string(pattern));
    cr_expect_str_eq(json_string_value(pattern), "^CASE-[0-9]{7}$");
    json_t *maxlen = json_object_get(
        json_object_get(json_object_get(j->schema_json, "properties"), "notes"), "maxLength");
    cr_expect(json_is_integer(maxlen) && json_integer_value(maxlen) == 2000);

    const struct dataset_config *ev = config_dataset(&cfg, "events");
    cr_assert_not_null(ev);
    cr_expect_null(ev->key);
    cr_expect_eq(schema_nfields(ev->schema), 0);
    cr_expect(schema_allows_extra(ev->schema));
    cr_expect_null(config_dataset(&cfg, "nope"));
    config_release(&cfg);
    cr_expect_null(cfg.listen);
    cr_expect_eq(cfg.ndatasets, 0);
}

static void expect_defaults(const struct sluice_config *cfg)
{
    cr_expect_str_eq(cfg->listen, "127.0.0.1:8080");
    cr_expect_str_eq(cfg->data_dir, "./var");
    cr_expect_str_eq(cfg->storage, "sqlite:./var/sluice.db");
    cr_expect_eq(cfg->io_threads, 2);
    cr_expect_eq(cfg->limits.max_body_bytes, 64ull << 20);
    cr_expect_eq(cfg->limits.max_row_bytes, 1ull << 20);
    cr_expect_eq(cfg->limits.max_json_depth, 64);
    cr_expect_eq(cfg->limits.max_header_bytes, 16ull << 10);
    cr_expect_eq(cfg->limits.max_errors_per_response, 100);
    cr_expect_eq(cfg->http.idle_timeout_ms, 60000);
    cr_expect_eq(cfg->http.request_timeout_ms, 30000);
    cr_expect_eq(cfg->http.max_connections, 4096);
    cr_expect_eq(cfg->writer.queue_max_jobs, 1024);
    cr_expect_eq(cfg->writer.max_group_rows, 50000);
    cr_expect_eq(cfg->idempotency_ttl_ms, 24ull * 3600 * 1000);
    cr_expect_eq(cfg->shutdown_timeout_ms, 10000);
    cr_expect_str_eq(cfg->log.level, "info");
    cr_expect_eq(cfg->log.requests, 1);
    cr_expect_eq(cfg->ndatasets, 0);
    cr_expect_null(cfg->datasets);
}

Test(config, defaults)
{
    static const char *const texts[] = {"", "# nothing but a comment\n", "---\n"};
    struct sluice_config cfg;
    char err[512], *path;

    cr_assert_eq(config_load(NULL, &cfg, err, sizeof err), 0, "%s", err);
    cr_expect_null(cfg.path);
    expect_defaults(&cfg);
    config_release(&cfg);
    for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
        cr_assert_eq(load_text(texts[i], &cfg, err, sizeof err, &path), 0, "%s", err);
        expect_defaults(&cfg);
        config_release(&cfg);
        free(path);
    }
}

Test(config, every_option_set)
{
    struct sluice_config cfg;
    char err[512], *path;
    int rc = load_text("listen: \"[::1]:9000\"\n"
                       "data_dir: /srv/sluice\n"
                       "io_threads: 8\n"
                       "limits:\n"
                       "  max_body_bytes: 1G\n"
                       "  max_row_bytes: 64kB\n"
                       "  max_json_depth: 10\n"
                       "  max_header_bytes: 8KiB\n"
                       "  max_errors_per_response: 5\n"
                       "http:\n"
                       "  idle_timeout: 2m\n"
                       "  request_timeout: 1500ms\n"
                       "  max_connections: 10\n"
                       "writer: {queue_max_jobs: 16, max_group_rows: 100}\n"
                       "idempotency:\n"
                       "  ttl: 1h30m\n"
                       "shutdown_timeout: 0\n"
                       "log: {level: debug, requests: false}\n",
                       &cfg, err, sizeof err, &path);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_str_eq(cfg.listen, "[::1]:9000");
    cr_expect_str_eq(cfg.storage, "sqlite:/srv/sluice/sluice.db");
    cr_expect_eq(cfg.io_threads, 8);
    cr_expect_eq(cfg.limits.max_body_bytes, 1ull << 30);
    cr_expect_eq(cfg.limits.max_row_bytes, 64ull << 10);
    cr_expect_eq(cfg.limits.max_json_depth, 10);
    cr_expect_eq(cfg.limits.max_header_bytes, 8192);
    cr_expect_eq(cfg.limits.max_errors_per_response, 5);
    cr_expect_eq(cfg.http.idle_timeout_ms, 120000);
    cr_expect_eq(cfg.http.request_timeout_ms, 1500);
    cr_expect_eq(cfg.http.max_connections, 10);
    cr_expect_eq(cfg.writer.queue_max_jobs, 16);
    cr_expect_eq(cfg.writer.max_group_rows, 100);
    cr_expect_eq(cfg.idempotency_ttl_ms, 5400000);
    cr_expect_eq(cfg.shutdown_timeout_ms, 0);
    cr_expect_str_eq(cfg.log.level, "debug");
    cr_expect_eq(cfg.log.requests, 0);
    config_release(&cfg);
    free(path);
}

Test(config, sizes)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"0", 0},
        {"1048576", 1048576},
        {"1k", 1024},
        {"1K", 1024},
        {"64M", 64ull << 20},
        {"64m", 64ull << 20},
        {"2G", 2ull << 30},
        {"1T", 1ull << 40},
        {"16KB", 16384},
        {"64MiB", 64ull << 20},
        {"512B", 512},
        {"18446744073709551615", UINT64_MAX},
    };
    static const char *const bad[] = {"",
                                      "lots",
                                      "-1",
                                      "1.5M",
                                      "M",
                                      "1 M",
                                      "1X",
                                      "1kk",
                                      "1iB",
                                      "64Mi",
                                      "1MB ",
                                      "16777216T",
                                      "18446744073709551616"};
    uint64_t v;

    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        cr_expect_eq(config_parse_size(good[i].text, &v), 0, "'%s'", good[i].text);
        cr_expect_eq(v, good[i].bytes, "'%s'", good[i].text);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        cr_expect_eq(config_parse_size(bad[i], &v), -1, "'%s' should fail", bad[i]);
}

Test(config, durations)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {
        {"0", 0},         {"30s", 30000},     {"500ms", 500}, {"24h", 86400000},  {"2m", 120000},
        {"1d", 86400000}, {"1h30m", 5400000}, {"0s", 0},      {"1m500ms", 60500},
    };
    static const char *const bad[] = {"",
                                      "30",
                                      "s",
                                      "30x",
                                      "-1s",
                                      "1.5s",
                                      "30 s",
                                      "30S",
                                      "1h30",
                                      "ms",
                                      "99999999999999999999s",
                                      "9999999999999999999d"};
    uint64_t v;

    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        cr_expect_eq(config_parse_duration_ms(good[i].text, &v), 0, "'%s'", good[i].text);
        cr_expect_eq(v, good[i].ms, "'%s'", good[i].text);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        cr_expect_eq(config_parse_duration_ms(bad[i], &v), -1, "'%s' should fail", bad[i]);
}

/*
 * Each bad file and the error it must give, without the "PATH:" in front: the
 * line, the option and (a fragment of) what is wrong.
 */
static const struct {
    const char *what, *yaml, *error;
} bad_files[] = {
    {"unknown top-level key", "listen: 127.0.0.1:8080\nlisten_port: 9\n",
     "2: listen_port: unknown option"},
    {"unknown top-level key, close to a real one", "data_dri: /x\n",
     "1: data_dri: unknown option (did you mean 'data_dir'?)"},
    {"unknown nested key", "limits:\n  max_body_bytes: 1M\n  max_bdy_bytes: 2\n",
     "3: limits.max_bdy_bytes: unknown option (did you mean 'max_body_bytes'?)"},
    {"unknown section", "limts:\n  max_body_bytes: 1M\n",
     "1: limts: unknown option (did you mean 'limits'?)"},
    {"dotted key", "limits.max_body_bytes: 1M\n", "1: limits.max_body_bytes: unknown option"},
    {"unknown key in a flow mapping", "log: {level: info, colour: true}\n",
     "1: log.colour: unknown option"},
    {"wrong type: size", "io_threads: 2\nlimits:\n  max_body_bytes: lots\n",
     "3: limits.max_body_bytes: expected a size like 64M, got 'lots'"},
    {"wrong type: integer", "io_threads: four\n", "1: io_threads: expected an integer, got 'four'"},
    {"wrong type: quoted integer", "io_threads: \"4\"\n",
     "1: io_threads: expected an integer, got the string '4'"},
    {"wrong type: boolean", "log:\n  requests: yes\n",
     "2: log.requests: expected true or false, got 'yes'"},
    {"wrong type: duration", "http:\n  idle_timeout: 30\n",
     "2: http.idle_timeout: expected a duration like 30s, got '30'"},
    {"wrong type: enum", "log: {level: loud}\n",
     "1: log.level: expected one of debug, info, warn, error, got 'loud'"},
    {"wrong type: mapping for a scalar", "listen:\n  host: x\n",
     "1: listen: expected HOST:PORT like 127.0.0.1:8080, got a mapping"},
    {"wrong type: scalar for a section", "\nlimits: 5\n",
     "2: limits: expected a mapping, got a scalar"},
    {"wrong type: list for a string", "data_dir: [a, b]\n",
     "1: data_dir: expected a string, got a list"},
    {"empty value", "data_dir:\n", "1: data_dir: expected a string, got nothing"},
    {"out of range", "io_threads: 65\n", "1: io_threads: must be between 1 and 64, got 65"},
    {"zero size", "limits: {max_row_bytes: 0}\n", "1: limits.max_row_bytes: must be at least 1"},
    {"bad listen", "listen: 8080\n",
     "1: listen: expected HOST:PORT like 127.0.0.1:8080, got '8080'"},
    {"bad port", "listen: localhost:70000\n", "1: listen: expected HOST:PORT"},
    {"bad storage", "storage: mysql://db\n",
     "1: storage: expected sqlite:PATH or a postgres:// URL, got 'mysql://db'"},
    {"empty sqlite path", "storage: \"sqlite:\"\n", "1: storage: expected sqlite:PATH"},
    {"top level is not a mapping", "- a\n- b\n", "1: (top level): expected a mapping"},
    {"two documents", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n",
     "3: (top level): only one YAML document is allowed"},
    {"datasets is not a list", "datasets: {name: a}\n",
     "1: datasets: expected a list of datasets, got a mapping"},
    {"dataset is not a mapping", "datasets:\n  - a\n",
     "2: datasets[0]: expected a mapping with name and schema, got a scalar"},
    {"bad dataset name", "datasets:\n  - name: Judgments\n    schema: {type: object}\n",
     "2: datasets[0].name: expected a name matching ^[a-z][a-z0-9_]{0,62}$, got 'Judgments'"},
    {"dataset name too long",
     "datasets:\n  - name: a234567890123456789012345678901234567890123456789012345678901234\n"
     "    schema: {type: object}\n",
     "2: datasets[0].name: expected a name matching"},
    {"duplicate dataset",
     "datasets:\n  - name: a\n    schema: {type: object}\n  - name: b\n    schema: {type: "
     "object}\n  - name: a\n    schema: {type: object}\n",
     "6: datasets[2].name: duplicate dataset name 'a' (datasets[0])"},
    {"dataset without a name", "datasets:\n  - schema: {type: object}\n",
     "2: datasets[0]: 'name' is required"},
    {"dataset without a schema", "datasets:\n  - name: a\n    key: id\n",
     "2: datasets[0]: 'schema' is required"},
    {"unknown dataset key", "datasets:\n  - name: a\n    nmae: b\n    schema: {type: object}\n",
     "3: datasets[0].nmae: unknown option (did you mean 'name'?)"},
    {"key not declared",
     "datasets:\n  - name: a\n    schema:\n      type: object\n      properties:\n        id: "
     "{type: integer}\n    key: ID\n",
     "7: datasets[0].key: 'ID' is not a property of the schema"},
    {"key of the wrong type",
     "datasets:\n  - name: a\n    key: amount\n    schema:\n      properties:\n        amount: "
     "{type: number}\n",
     "3: datasets[0].key: 'amount' is of type number; a key must be a string or an integer"},
#define KEY_DS(key)                                                                                \
    "datasets:\n  - name: a\n    schema:\n      required: [source, id]\n      properties:\n"       \
    "        source: {type: string}\n        id: {type: integer}\n        n: {type: number}\n"     \
    "        opt: {type: string}\n    key: " key "\n"
    {"composite key: a field not declared", KEY_DS("[source, ID]"),
     "10: datasets[0].key: 'ID' is not a property of the schema"},
    {"composite key: a field of the wrong type", KEY_DS("[source, n]"),
     "10: datasets[0].key: 'n' is of type number; a key must be a string or an integer"},
    {"composite key: a field named twice", KEY_DS("[id, source, id]"),
     "10: datasets[0].key: 'id' is named twice"},
    {"composite key: an optional field", KEY_DS("[source, opt]"),
     "10: datasets[0].key: 'opt' is not in required (every field of a key of several fields "
     "must be)"},
    {"composite key: too many fields", KEY_DS("[a, b, c, d, e, f, g, h, i]"),
     "10: datasets[0].key: a key has at most 8 fields, got 9"},
    {"composite key: empty list", KEY_DS("[]"),
     "10: datasets[0].key: expected a property name or a list of them, got an empty list"},
    {"composite key: an empty entry", KEY_DS("[source, '']"),
     "10: datasets[0].key: an entry is empty"},
    {"composite key: a nested list", KEY_DS("[source, [id]]"),
     "10: datasets[0].key: expected a string, got a list"},
    {"key: a mapping", KEY_DS("{source: id}"),
     "10: datasets[0].key: expected a property name or a list of them, got a mapping"},
    {"upsert without key", "datasets:\n  - name: a\n    on_duplicate: upsert\n    schema: {}\n",
     "3: datasets[0].on_duplicate: 'upsert' needs a key"},
    {"bad on_duplicate", "datasets:\n  - name: a\n    on_duplicate: replace\n    schema: {}\n",
     "3: datasets[0].on_duplicate: expected one of reject, upsert, skip, got 'replace'"},
    {"threshold out of range",
     "datasets:\n  - name: a\n    error_threshold_percent: 100.5\n    schema: {}\n",
     "3: datasets[0].error_threshold_percent: must be between 0 and 100, got 100.5"},
    {"threshold quoted",
     "datasets:\n  - name: a\n    error_threshold_percent: '5'\n    schema: {}\n",
     "3: datasets[0].error_threshold_percent: expected a number, got the string '5'"},
    {"schema is not a mapping", "datasets:\n  - name: a\n    schema: object\n",
     "3: datasets[0].schema: expected a mapping (a JSON Schema object), got a scalar"},
    {"bad schema keyword",
     "listen: 127.0.0.1:8080\n"
     "datasets:\n"
     "  - {name: first, schema: {}}\n"
     "  - name: a\n"
     "    schema:\n"
     "      type: object\n"
     "      properties:\n"
     "        amount: {type: number, minimun: 0}\n",
     "5: datasets[1].schema: properties.amount: unknown keyword 'minimun'"},
    {"properties differing only in case",
     "datasets:\n  - name: events\n    schema:\n      properties:\n        dateTime: {type: "
     "string}\n        datetime: {type: string}\n",
     "3: datasets[0].schema: properties.datetime: differs from properties.dateTime only in case; "
     "column names are compared without case, so the two cannot both be columns (dataset "
     "'events')"},
    {"an empty exclusive range",
     "datasets:\n  - schema:\n      properties:\n        n: {type: number, exclusiveMinimum: "
     "6, exclusiveMaximum: 5}\n    name: readings\n",
     "2: datasets[0].schema: properties.n: no number satisfies exclusiveMinimum 6 and "
     "exclusiveMaximum 5 (the range is empty) (dataset 'readings')"},
    {"bad top-level schema keyword", "datasets:\n  - name: a\n    schema: {typ: object}\n",
     "3: datasets[0].schema: unknown keyword 'typ'"},
    {"infinity in a schema",
     "datasets:\n  - name: a\n    schema:\n      properties:\n        x: {type: number, "
     "maximum: .inf}\n",
     "5: datasets[0].schema: '.inf' cannot be written in JSON"},
    {"YAML syntax error: unclosed quote", "listen: 127.0.0.1:8080\ndata_dir: \"abc\n",
     "2: YAML syntax error: "},
    {"YAML syntax error: duplicate key", "io_threads: 1\nio_threads: 2\n",
     "2: YAML syntax error: duplicate key"},
    {"YAML syntax error: bad indentation", "limits:\n  max_body_bytes: 1M\n max_row_bytes: 2\n",
     "3: YAML syntax error: "},
    {"YAML syntax error: unknown alias", "data_dir: *nowhere\n", "1: YAML syntax error: "},
};

Test(config, errors_name_file_line_and_option)
{
    for (size_t i = 0; i < ARRAY_SIZE(bad_files); i++) {
        struct sluice_config cfg;
        char err[512], want[512], *path;
        err[0] = '\0';
        int rc = load_text(bad_files[i].yaml, &cfg, err, sizeof err, &path);
        snprintf(want, sizeof want, "%s:%s", path, bad_files[i].error);
        cr_expect_eq(rc, -1, "%s: should fail", bad_files[i].what);
        cr_expect(strncmp(err, want, strlen(want)) == 0, "%s:\n  got  '%s'\n  want '%s...'",
                  bad_files[i].what, err, want);
        /* a failed load leaves nothing behind */
        cr_expect_null(cfg.listen, "%s", bad_files[i].what);
        cr_expect_null(cfg.datasets, "%s", bad_files[i].what);
        free(path);
    }
}

Test(config, yaml_syntax_error_line)
{
    struct sluice_config cfg;
    char err[512], want[512], *path;

    int rc = load_text("listen: 127.0.0.1:8080\n"
                       "limits: {max_body_bytes: 1M,\n"
                       "data_dir: x\n"
                       "  - what\n",
                       &cfg, err, sizeof err, &path);
    cr_assert_eq(rc, -1);
    snprintf(want, sizeof want, "%s:", path);
    cr_expect(strncmp(err, want, strlen(want)) == 0, "%s", err);
    cr_expect(strstr(err, ": YAML syntax error: ") != NULL, "%s", err);
    free(path);
}

Test(config, missing_file)
{
    struct sluice_config cfg;
    char err[512];

    cr_assert_eq(config_load("/nonexistent/sluice.yaml", &cfg, err, sizeof err), -1);
    cr_expect_str_eq(err, "/nonexistent/sluice.yaml: cannot open: No such file or directory");
    cr_assert_eq(config_load("docs", &cfg, err, sizeof err), -1);
    cr_expect_str_eq(err, "docs: cannot open: Is a directory");
}

Test(config, example_message_format)
{
    struct sluice_config cfg;
    char err[512], want[512], *path;

    cr_assert_eq(load_text("# line 1\n# 2\n# 3\n# 4\n# 5\nlimits:\n  max_body_bytes: lots\n", &cfg,
                           err, sizeof err, &path),
                 -1);
    snprintf(want, sizeof want, "%s:7: limits.max_body_bytes: expected a size like 64M, got 'lots'",
             path);
    cr_expect_str_eq(err, want);
    free(path);
}

Test(config, env_override)
{
    struct sluice_config cfg;
    char err[512], *path;

    cr_assert_eq(load_text("listen: 127.0.0.1:1234\ndata_dir: /a\n", &cfg, err, sizeof err, &path),
                 0, "%s", err);
    free(path);
    cr_expect_str_eq(cfg.storage, "sqlite:/a/sluice.db");
    setenv("SLUICE_LISTEN", "0.0.0.0:9999", 1);
    setenv("SLUICE_DATA_DIR", "/srv/data/", 1);
    cr_assert_eq(config_apply_env(&cfg, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cfg.listen, "0.0.0.0:9999");
    cr_expect_str_eq(cfg.data_dir, "/srv/data/");
    cr_expect_str_eq(cfg.storage, "sqlite:/srv/data/sluice.db"); /* follows data_dir */
    config_release(&cfg);

    /* storage given in the file stays put */
    cr_assert_eq(load_text("storage: sqlite:/db/x.db\n", &cfg, err, sizeof err, &path), 0, "%s",
                 err);
    free(path);
    cr_assert_eq(config_apply_env(&cfg, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cfg.data_dir, "/srv/data/");
    cr_expect_str_eq(cfg.storage, "sqlite:/db/x.db");

    /* a bad value names the variable and the option */
    setenv("SLUICE_LISTEN", "nowhere", 1);
    cr_expect_eq(config_apply_env(&cfg, err, sizeof err), -1);
    cr_expect_str_eq(err, "SLUICE_LISTEN: listen: expected HOST:PORT like 127.0.0.1:8080, got "
                          "'nowhere'");
    /* an empty variable is ignored */
    setenv("SLUICE_LISTEN", "", 1);
    cr_expect_eq(config_apply_env(&cfg, err, sizeof err), 0, "%s", err);
    config_release(&cfg);
    unsetenv("SLUICE_LISTEN");
    unsetenv("SLUICE_DATA_DIR");
}

Test(config, set_by_name)
{
    struct sluice_config cfg;
    char err[512];

    cr_assert_eq(config_load(NULL, &cfg, err, sizeof err), 0, "%s", err);
    cr_expect_eq(config_set(&cfg, "listen", "localhost:80", err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cfg.listen, "localhost:80");
    cr_expect_eq(config_set(&cfg, "data_dir", "/d", err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cfg.storage, "sqlite:/d/sluice.db");
    cr_expect_eq(config_set(&cfg, "limits.max_body_bytes", "2M", err, sizeof err), 0, "%s", err);
    cr_expect_eq(cfg.limits.max_body_bytes, 2u << 20);
    cr_expect_eq(config_set(&cfg, "log.requests", "false", err, sizeof err), 0, "%s", err);
    cr_expect_eq(cfg.log.requests, 0);
    cr_expect_eq(config_set(&cfg, "storage", "postgres://db.example/sluice", err, sizeof err), 0,
                 "%s", err);
    cr_expect_eq(config_set(&cfg, "data_dir", "/e", err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cfg.storage, "postgres://db.example/sluice"); /* explicit now */
    cr_expect_eq(config_set(&cfg, "storage", "postgresql://db/x", err, sizeof err), 0, "%s", err);

    cr_expect_eq(config_set(&cfg, "port", "80", err, sizeof err), -1);
    cr_expect_str_eq(err, "port: unknown option");
    cr_expect_eq(config_set(&cfg, "io_threads", "0", err, sizeof err), -1);
    cr_expect_str_eq(err, "io_threads: must be between 1 and 64, got 0");
    cr_expect_eq(config_set(&cfg, "datasets", "x", err, sizeof err), -1);
    cr_expect_eq(config_set(&cfg, "data_dir", "", err, sizeof err), -1);
    cr_expect_str_eq(cfg.data_dir, "/e"); /* unchanged after a failure */
    config_release(&cfg);
    config_release(&cfg); /* released twice is harmless */
}

Test(config, flow_mappings)
{
    struct sluice_config cfg;
    char err[512], *path;
    int rc = load_text("limits: {max_body_bytes: 67108864, max_row_bytes: 1048576, "
                       "max_json_depth: 64}\n"
                       "http: {idle_timeout: 5s, request_timeout: 500ms}\n"
                       "datasets: [{name: items, key: id, on_duplicate: upsert,\n"
                       "            error_threshold_percent: 2.5,\n"
                       "            schema: {type: object, required: [id],\n"
                       "                     properties: {id: {type: integer}, v: {type: "
                       "string}}}},\n"
                       "           {name: skips, key: code, on_duplicate: skip,\n"
                       "            schema: {properties: {code: {type: string}}}}]\n",
                       &cfg, err, sizeof err, &path);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_eq(cfg.limits.max_body_bytes, 67108864);
    cr_expect_eq(cfg.limits.max_row_bytes, 1048576);
    cr_expect_eq(cfg.limits.max_json_depth, 64);
    cr_expect_eq(cfg.http.idle_timeout_ms, 5000);
    cr_expect_eq(cfg.http.request_timeout_ms, 500);
    cr_assert_eq(cfg.ndatasets, 2);
    cr_expect_str_eq(cfg.datasets[0].name, "items");
    cr_expect_eq(cfg.datasets[0].on_duplicate, ON_DUP_UPSERT);
    cr_expect_float_eq(cfg.datasets[0].error_threshold_percent, 2.5, 1e-9);
    cr_expect_eq(schema_nfields(cfg.datasets[0].schema), 2);
    cr_expect_eq(cfg.datasets[1].on_duplicate, ON_DUP_SKIP);
    cr_expect_str_eq(on_duplicate_name(cfg.datasets[1].on_duplicate), "skip");
    cr_expect_str_eq(on_duplicate_name(ON_DUP_REJECT), "reject");
    cr_expect_str_eq(on_duplicate_name(ON_DUP_UPSERT), "upsert");
    config_release(&cfg);
    free(path);
}

/* A key of several fields keeps its order; its text form is a JSON array; a list of one is
 * the same key as the bare name; an empty key is none. */
Test(config, composite_key)
{
    struct sluice_config cfg;
    char err[512], *path;
    int rc = load_text("datasets:\n"
                       "  - name: cases\n"
                       "    key: [source, case_number]\n"
                       "    on_duplicate: upsert\n"
                       "    schema:\n"
                       "      required: [case_number, source]\n"
                       "      properties:\n"
                       "        case_number: {type: string}\n"
                       "        v: {type: number}\n"
                       "        source: {type: integer}\n"
                       "  - name: one\n"
                       "    key: [id]\n"
                       "    schema: {properties: {id: {type: string}}}\n"
                       "  - name: none\n"
                       "    key:\n"
                       "    schema: {properties: {id: {type: string}}}\n",
                       &cfg, err, sizeof err, &path);
    cr_assert_eq(rc, 0, "%s", err);
    const struct dataset_config *d = config_dataset(&cfg, "cases");
    cr_assert_not_null(d);
    cr_expect_str_eq(d->key, "[\"source\",\"case_number\"]");
    cr_assert_eq(d->key_fields.n, 2);
    cr_expect_eq(d->key_fields.field[0], 2); /* source: the order written, not the schema's */
    cr_expect_eq(d->key_fields.field[1], 0);
    json_t *kj = schema_key_json(d->schema, &d->key_fields);
    char *kt = json_dumps(kj, JSON_COMPACT);
    cr_expect_str_eq(kt, "[\"source\",\"case_number\"]");
    free(kt);
    json_decref(kj);
    d = config_dataset(&cfg, "one");
    cr_expect_str_eq(d->key, "id");
    cr_expect_eq(d->key_fields.n, 1);
    cr_expect_eq(d->key_fields.field[0], 0);
    d = config_dataset(&cfg, "none");
    cr_expect_null(d->key);
    cr_expect_eq(d->key_fields.n, 0);
    config_release(&cfg);
    free(path);
}

Test(config, schema_scalars_keep_their_yaml_types)
{
    struct sluice_config cfg;
    char err[512], *path;
    int rc = load_text("datasets:\n"
                       "  - name: typed\n"
                       "    schema:\n"
                       "      description: \"123\"\n"
                       "      title: 123\n"
                       "      additionalProperties: true\n"
                       "      properties:\n"
                       "        code: {type: string, enum: [\"123\", 'true', \"null\", abc, "
                       "\"1.5\"]}\n"
                       "        n: {type: integer, enum: [123, -7, 0x1F]}\n"
                       "        x: {type: number, minimum: 1.5, maximum: 1e3}\n"
                       "        b: {type: boolean, enum: [true, False]}\n"
                       "        s: {type: string, pattern: \"^CASE-[0-9]{7}$\", description: "
                       "~}\n"
                       "        t: {type: string, pattern: '^a\\d+$', description: !!str 42}\n",
                       &cfg, err, sizeof err, &path);
    cr_assert_eq(rc, 0, "%s", err);
    json_t *s = cfg.datasets[0].schema_json, *props = json_object_get(s, "properties");
    json_t *v = json_object_get(s, "description");
    cr_expect(json_is_string(v) && strcmp(json_string_value(v), "123") == 0);
    v = json_object_get(s, "title");
    cr_expect(json_is_integer(v) && json_integer_value(v) == 123);
    cr_expect(json_is_true(json_object_get(s, "additionalProperties")));

    json_t *e = json_object_get(json_object_get(props, "code"), "enum");
    cr_assert_eq(json_array_size(e), 5);
    for (size_t i = 0; i < 5; i++)
        cr_expect(json_is_string(json_array_get(e, i)), "code enum[%zu] should be a string", i);
    cr_expect_str_eq(json_string_value(json_array_get(e, 0)), "123");
    cr_expect_str_eq(json_string_value(json_array_get(e, 1)), "true");

    e = json_object_get(json_object_get(props, "n"), "enum");
    cr_expect(json_is_integer(json_array_get(e, 0)) &&
              json_integer_value(json_array_get(e, 0)) == 123);
    cr_expect(json_is_integer(json_array_get(e, 1)) &&
              json_integer_value(json_array_get(e, 1)) == -7);
    cr_expect(json_is_integer(json_array_get(e, 2)) &&
              json_integer_value(json_array_get(e, 2)) == 31); /* YAML 1.2 hex */

    v = json_object_get(json_object_get(props, "x"), "minimum");
    cr_expect(json_is_real(v) && json_real_value(v) == 1.5);
    v = json_object_get(json_object_get(props, "x"), "maximum");
    cr_expect(json_is_real(v) && json_real_value(v) == 1000.0);
    e = json_object_get(json_object_get(props, "b"), "enum");
    cr_expect(json_is_true(json_array_get(e, 0)) && json_is_false(json_array_get(e, 1)));
    v = json_object_get(json_object_get(props, "s"), "pattern");
    cr_expect_str_eq(json_string_value(v), "^CASE-[0-9]{7}$");
    cr_expect(json_is_null(json_object_get(json_object_get(props, "s"), "description")));
    v = json_object_get(json_object_get(props, "t"), "pattern");
    cr_expect_str_eq(json_string_value(v), "^a\\d+$");
    v = json_object_get(json_object_get(props, "t"), "description");
    cr_expect(json_is_string(v) && strcmp(json_string_value(v), "42") == 0);
    config_release(&cfg);
    free(path);
}

Test(config, docs_page_is_generated)
{
    char *want = NULL, *have = NULL;
    size_t wantlen = 0, havelen = 0;
    FILE *mem = open_memstream(&want, &wantlen);

    cr_assert_not_null(mem);
    config_write_docs(mem);
    fclose(mem);

    FILE *f = fopen("docs/configuration.md", "r");
    cr_assert_not_null(f, "docs/configuration.md is missing (run from the repo root)");
    mem = open_memstream(&have, &havelen);
    cr_assert_not_null(mem);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, mem);
    fclose(f);
    fclose(mem);
    cr_expect(havelen == wantlen && memcmp(have, want, wantlen) == 0,
              "docs/configuration.md differs from config_write_docs(): run `make docs`");
    /* every option is on the page */
    static const char *const names[] = {"`listen`",
                                        "`data_dir`",
                                        "`storage`",
                                        "`io_threads`",
                                        "`limits.max_body_bytes`",
                                        "`limits.max_errors_per_response`",
                                        "`http.idle_timeout`",
                                        "`writer.max_group_rows`",
                                        "`idempotency.ttl`",
                                        "`shutdown_timeout`",
                                        "`log.level`",
                                        "`log.requests`",
                                        "`datasets`",
                                        "`on_duplicate`",
                                        "`error_threshold_percent`",
                                        "`schema`",
                                        "`pattern`",
                                        "SLUICE_DATA_DIR"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        cr_expect(strstr(want, names[i]) != NULL, "%s is not documented", names[i]);
    free(want);
    free(have);
}

/* Every schema keyword the docs list is accepted by the schema compiler. */
Test(config, documented_schema_keywords_compile)
{
    struct sluice_config cfg;
    char err[512], *path;
    int rc = load_text("datasets:\n"
                       "  - name: all\n"
                       "    schema:\n"
                       "      type: object\n"
                       "      title: All keywords\n"
                       "      description: every keyword of the docs\n"
                       "      additionalProperties: false\n"
                       "      required: [s]\n"
                       "      properties:\n"
                       "        s: {type: string, minLength: 1, maxLength: 9, pattern: '^a',\n"
                       "            enum: [ab, ac], format: date, description: d, title: t}\n"
                       "        n: {type: number, minimum: 0, maximum: 9, exclusiveMinimum: -1,\n"
                       "            exclusiveMaximum: 10}\n"
                       "        i: {type: integer}\n"
                       "        b: {type: boolean}\n"
                       "        d: {type: string, format: date-time}\n"
                       "        c: {type: string, csv_name: 'On Street', trim: true,\n"
                       "            csv_empty_string: true}\n"
                       "        e: {type: number, decimal: ',', group: '.'}\n",
                       &cfg, err, sizeof err, &path);
    cr_expect_eq(rc, 0, "%s", err);
    config_release(&cfg);
    free(path);
}

/* The CSV options of a dataset: the null string and empty strings (docs/api.md, "CSV cells"). */
Test(config, dataset_csv_options)
{
    struct sluice_config cfg;
    char err[512], *path;
    int rc = load_text("datasets:\n"
                       "  - name: plain\n"
                       "    schema: {}\n"
                       "  - name: vendor\n"
                       "    csv_null: NA\n"
                       "    csv_empty_string: true\n"
                       "    schema: {}\n"
                       "  - name: spelled_out\n"
                       "    csv_null: \"\"\n"
                       "    schema: {}\n",
                       &cfg, err, sizeof err, &path);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_str_eq(cfg.datasets[2].csv_null, ""); /* the default, written out */
    cr_expect_null(cfg.datasets[0].csv_null);
    cr_expect_eq(cfg.datasets[0].csv_empty_string, 0);
    cr_expect_str_eq(cfg.datasets[1].csv_null, "NA");
    cr_expect_eq(cfg.datasets[1].csv_empty_string, 1);
    config_release(&cfg);
    free(path);
    rc = load_text("datasets:\n  - name: a\n    csv_empty_string: maybe\n    schema: {}\n", &cfg,
                   err, sizeof err, &path);
    cr_expect_eq(rc, -1);
    cr_expect(strstr(err, "3: datasets[0].csv_empty_string: ") != NULL, "%s", err);
    free(path);
}
