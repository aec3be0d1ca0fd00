/*
 * compile.c - compiles a dataset's schema (the JSON Schema subset described in
 * schema.h) into the flat tables of schema_internal.h, once, so that validating
 * a row (validate.c) has nothing left to work out: a hash table from property
 * name to field, typed enum values (strings sorted for binary search), numeric
 * bounds and their message text, JIT-compiled PCRE2 patterns. The checks that
 * refuse a schema whose keywords cannot work together (names equal but for case,
 * empty ranges, CSV keywords and headers) are in checks.c. schema_destroy() is
 * here too: it frees what this file allocates.
 */
#include "schema/schema_internal.h"
#include "util/errors.h"
#include "util/mem.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENUM_TEXT_MAX 240 /* bytes of the allowed values listed in a message */

static void field_free(struct field *f)
{
    free(f->name);
    free(f->pattern);
    pcre2_code_free(f->re);
    if (f->enum_strs)
        for (size_t i = 0; i < f->nenum; i++)
            free(f->enum_strs[i].s);
    free(f->enum_strs);
    free(f->enum_nums);
    free(f->enum_text);
    free((char *)f->csv.name);
}

void schema_destroy(struct schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        field_free(&s->f[i]);
    free(s->f);
    free(s->slots);
    free(s);
}

static void set_bound(struct bound *b, const json_t *v)
{
    b->set = 1;
    b->v =
        json_is_integer(v) ? (long double)json_integer_value(v) : (long double)json_real_value(v);
    schema_fmt_json_number(b->text, sizeof b->text, v);
}

/* Appends the text of an enum value to the message list, stopping near ENUM_TEXT_MAX. */
static void enum_text_add(char *buf, size_t *used, const json_t *v, int first)
{
    char tmp[ECHO_BUF + 8], num[40];
    if (json_is_string(v)) {
        char e[ECHO_BUF];
        snprintf(tmp, sizeof tmp, "\"%s\"",
                 schema_echo(e, json_string_value(v), json_string_length(v)));
    } else if (json_is_number(v)) {
        schema_fmt_json_number(num, sizeof num, v);
        snprintf(tmp, sizeof tmp, "%s", num);
    } else {
        snprintf(tmp, sizeof tmp, "%s", json_is_true(v) ? "true" : "false");
    }
    if (*used > ENUM_TEXT_MAX)
        return;
    size_t need = strlen(tmp) + (first ? 0 : 2);
    if (*used + need > ENUM_TEXT_MAX) {
        strcpy(buf + *used, ", ...");
        *used = ENUM_TEXT_MAX + 1; /* full: ignore the rest */
        return;
    }
    *used += (size_t)snprintf(buf + *used, need + 1, "%s%s", first ? "" : ", ", tmp);
}

static int compile_enum(struct field *f, const json_t *arr, char *err, size_t errlen)
{
    const char *name = f->name;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        err_set(err, errlen, "properties.%s: 'enum' must be a non-empty array", name);
        return -1;
    }
    size_t n = json_array_size(arr);
    f->enum_text = sl_malloc(ENUM_TEXT_MAX + 8);
    if (f->type == FT_STRING)
        f->enum_strs = sl_calloc(n, sizeof *f->enum_strs);
    else if (f->type != FT_BOOLEAN)
        f->enum_nums = sl_calloc(n, sizeof *f->enum_nums);
    if (!f->enum_text || (f->type == FT_STRING && !f->enum_strs) ||
        ((f->type == FT_INTEGER || f->type == FT_NUMBER) && !f->enum_nums)) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    f->enum_text[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        int ok;
        switch (f->type) {
        case FT_STRING:
            ok = json_is_string(v);
            break;
        case FT_INTEGER:
            ok = json_is_integer(v) || (json_is_real(v) && is_int64(json_real_value(v)));
            break;
        case FT_NUMBER:
            ok = json_is_number(v);
            break;
        default:
            ok = json_is_boolean(v);
            break;
        }
        if (!ok) {
            err_set(err, errlen, "properties.%s: enum[%zu]: expected %s, got %s", name, i,
                    field_type_name(f->type), schema_json_kind(v));
            return -1;
        }
        if (f->type == FT_STRING) {
            size_t len = json_string_length(v);
            f->enum_strs[i].s = sl_malloc(len + 1);
            if (!f->enum_strs[i].s) {
                f->nenum = i; /* what field_free must release */
                err_set(err, errlen, "out of memory");
                return -1;
            }
            memcpy(f->enum_strs[i].s, json_string_value(v), len + 1);
            f->enum_strs[i].len = len;
        } else if (f->type == FT_BOOLEAN) {
            f->enum_bools |= json_is_true(v) ? 2u : 1u;
        } else {
            f->enum_nums[i] = json_is_integer(v) ? (long double)json_integer_value(v)
                                                 : (long double)json_real_value(v);
        }
        f->nenum = i + 1;
        enum_text_add(f->enum_text, &used, v, i == 0);
    }
    if (f->type == FT_STRING)
        qsort(f->enum_strs, n, sizeof *f->enum_strs, cmp_enum_str);
    return 0;
}

static int compile_pattern(struct field *f, const json_t *v, char *err, size_t errlen)
{
    if (!json_is_string(v)) {
        err_set(err, errlen, "properties.%s: 'pattern' must be a string", f->name);
        return -1;
    }
    int code;
    PCRE2_SIZE off;
    f->re = pcre2_compile((PCRE2_SPTR)json_string_value(v), json_string_length(v),
                          PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
    if (!f->re) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
            strcpy((char *)msg, "unknown error");
        err_set(err, errlen, "properties.%s: invalid pattern: %s at offset %zu", f->name,
                (const char *)msg, (size_t)off);
        return -1;
    }
    (void)pcre2_jit_compile(f->re, PCRE2_JIT_COMPLETE); /* interpreter when JIT is missing */
    f->pattern = sl_strdup(json_string_value(v));
    if (!f->pattern) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_type(const json_t *t, enum field_type *out)
{
    static const char *const names[] = {"string", "integer", "number", "boolean"};
    if (!json_is_string(t))
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(json_string_value(t), names[i]) == 0) {
            *out = (enum field_type)i;
            return 0;
        }
    return -1;
}

static int compile_field(struct field *f, const json_t *spec, char *err, size_t errlen)
{
    const char *name = f->name;
    f->minlen = f->maxlen = -1;
    f->csv.empty_string = -1;
    f->csv.decimal = '.';
    if (!json_is_object(spec)) {
        err_set(err, errlen, "properties.%s: must be an object", name);
        return -1;
    }
    const json_t *t = json_object_get(spec, "type");
    if (!t) {
        err_set(err, errlen, "properties.%s: 'type' is required", name);
        return -1;
    }
    if (parse_type(t, &f->type) != 0) {
        char e[ECHO_BUF];
        err_set(err, errlen,
                "properties.%s: 'type' must be one of string, integer, number, boolean, got %s%s%s",
                name, json_is_string(t) ? "'" : "",
                json_is_string(t) ? schema_echo(e, json_string_value(t), json_string_length(t))
                                  : schema_json_kind(t),
                json_is_string(t) ? "'" : "");
        return -1;
    }
    int numeric = f->type == FT_INTEGER || f->type == FT_NUMBER;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)spec, key, v)
    {
        struct bound *b = NULL;
        long long *len = NULL;
        if (!strcmp(key, "type") || !strcmp(key, "description") || !strcmp(key, "title"))
            continue;
        int csv = schema_csv_keyword(f, key, v, err, errlen);
        if (csv < 0)
            return -1;
        if (csv)
            continue;
        if (!strcmp(key, "minimum"))
            b = &f->min;
        else if (!strcmp(key, "maximum"))
            b = &f->max;
        else if (!strcmp(key, "exclusiveMinimum"))
            b = &f->xmin;
        else if (!strcmp(key, "exclusiveMaximum"))
            b = &f->xmax;
        else if (!strcmp(key, "minLength"))
            len = &f->minlen;
        else if (!strcmp(key, "maxLength"))
            len = &f->maxlen;
        else if (strcmp(key, "pattern") && strcmp(key, "enum") && strcmp(key, "format")) {
            char e[ECHO_BUF];
            err_set(err, errlen, "properties.%s: unknown keyword '%s'", name,
                    schema_echo(e, key, strlen(key)));
            return -1;
        }
        int string_only = len || !strcmp(key, "pattern") || !strcmp(key, "format");
        if ((b && !numeric) || (string_only && f->type != FT_STRING)) {
            err_set(err, errlen, "properties.%s: '%s' does not apply to type %s", name, key,
                    field_type_name(f->type));
            return -1;
        }
        if (b) {
            if (!json_is_number(v)) {
                err_set(err, errlen, "properties.%s: '%s' must be a number", name, key);
                return -1;
            }
            set_bound(b, v);
            f->has_range = 1;
        } else if (len) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                err_set(err, errlen, "properties.%s: '%s' must be a non-negative integer", name,
                        key);
                return -1;
            }
            *len = (long long)json_integer_value(v);
        } else if (!strcmp(key, "pattern")) {
            if (compile_pattern(f, v, err, errlen) != 0)
                return -1;
        } else if (!strcmp(key, "enum")) {
            if (compile_enum(f, v, err, errlen) != 0)
                return -1;
        } else { /* format */
            const char *fs = json_is_string(v) ? json_string_value(v) : NULL;
            if (fs && !strcmp(fs, "date"))
                f->format = FMT_DATE;
            else if (fs && !strcmp(fs, "date-time"))
                f->format = FMT_DATETIME;
            else {
                char e[ECHO_BUF];
                err_set(err, errlen,
                        "properties.%s: unknown format '%s' (supported: date, date-time)", name,
                        fs ? schema_echo(e, fs, json_string_length(v)) : schema_json_kind(v));
                return -1;
            }
        }
    }
    if (schema_check_field(f, err, errlen) != 0)
        return -1;
    f->csv.trim = f->type != FT_STRING || f->format != FMT_NONE || f->trim_kw;
    f->csv.header = f->csv.name ? f->csv.name : f->name;
    return 0;
}

static int compile_properties(struct schema *s, json_t *props, char *err, size_t errlen)
{
    if (!json_is_object(props)) {
        err_set(err, errlen, "'properties' must be an object");
        return -1;
    }
    size_t n = json_object_size(props);
    if (n == 0)
        return 0;
    if (n > INT_MAX / 4) {
        err_set(err, errlen, "too many properties");
        return -1;
    }
    size_t nslots = 8;
    while (nslots < 2 * n)
        nslots *= 2;
    s->f = sl_calloc(n, sizeof *s->f);
    s->slots = sl_malloc(nslots * sizeof *s->slots);
    if (!s->f || !s->slots) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    s->mask = nslots - 1;
    for (size_t i = 0; i < nslots; i++)
        s->slots[i] = -1;

    for (void *it = json_object_iter(props); it; it = json_object_iter_next(props, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        if (schema_check_name(s, key, klen, err, errlen) != 0)
            return -1;
        struct field *f = &s->f[s->n++];
        f->name = sl_strdup(key);
        f->namelen = klen;
        if (!f->name) {
            err_set(err, errlen, "out of memory");
            return -1;
        }
        if (compile_field(f, json_object_iter_value(it), err, errlen) != 0)
            return -1;
        size_t slot = hash_name(key, klen) & s->mask;
        while (s->slots[slot] >= 0)
            slot = (slot + 1) & s->mask;
        s->slots[slot] = (int)(s->n - 1);
    }
    return 0;
}

static int compile_required(struct schema *s, const json_t *req, char *err, size_t errlen)
{
    if (!json_is_array(req)) {
        err_set(err, errlen, "'required' must be an array of property names");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(req); i++) {
        const json_t *v = json_array_get(req, i);
        if (!json_is_string(v)) {
            err_set(err, errlen, "required[%zu] must be a string, got %s", i, schema_json_kind(v));
            return -1;
        }
        int k = lookup(s, json_string_value(v), json_string_length(v));
        if (k < 0) {
            char e[ECHO_BUF];
            err_set(err, errlen, "required: '%s' is not declared in properties",
                    schema_echo(e, json_string_value(v), json_string_length(v)));
            return -1;
        }
        if (!s->f[k].required)
            s->nrequired++;
        s->f[k].required = 1;
    }
    return 0;
}

struct schema *schema_compile(json_t *spec, char *err, size_t errlen)
{
    err_set(err, errlen, "%s", "");
    if (!json_is_object(spec)) {
        err_set(err, errlen, "a schema must be a JSON object");
        return NULL;
    }
    struct schema *s = sl_calloc(1, sizeof *s);
    if (!s) {
        err_set(err, errlen, "out of memory");
        return NULL;
    }
    s->allow_extra = 1;
    const char *key;
    json_t *v;
    json_object_foreach(spec, key, v)
    {
        if (!strcmp(key, "type")) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "object") != 0) {
                err_set(err, errlen, "'type' must be \"object\"");
                goto fail;
            }
        } else if (!strcmp(key, "additionalProperties")) {
            if (!json_is_boolean(v)) {
                err_set(err, errlen, "'additionalProperties' must be a boolean");
                goto fail;
            }
            s->allow_extra = json_is_true(v);
        } else if (strcmp(key, "properties") && strcmp(key, "required") &&
                   strcmp(key, "description") && strcmp(key, "title")) {
            char e[ECHO_BUF];
            err_set(err, errlen, "unknown keyword '%s'", schema_echo(e, key, strlen(key)));
            goto fail;
        }
    }
    json_t *props = json_object_get(spec, "properties");
    if (props && (compile_properties(s, props, err, errlen) != 0 ||
                  schema_check_csv_headers(s, err, errlen) != 0))
        goto fail;
    json_t *req = json_object_get(spec, "required");
    if (req && compile_required(s, req, err, errlen) != 0)
        goto fail;
    return s;
fail:
    schema_destroy(s);
    return NULL;
}
