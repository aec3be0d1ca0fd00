/*
 * yaml.c - the walk of a YAML document (libfyaml) against an option table:
 * each key looked up (unknown ones are errors, with a suggestion), each scalar
 * resolved after the YAML 1.2 core schema and set through values.c, a dataset's
 * schema turned into a jansson value (quoted scalars stay strings; plain ones
 * follow the core schema), and every error naming the file, the line and the
 * option. The options that are lists of entries (datasets, auth.jwt.keys,
 * alerts.*) are loaded by the loader's load_list (load.c).
 */
#include "config/yaml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"
#include "util/mem.h"

int yaml_fail_at(struct loader *ld, int line, const char *option, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err_set(ld->err, ld->errlen, "%s:%d: %s: %s", ld->file, line > 0 ? line : 1, option, msg);
    return -1;
}

/* The 1-based line where a node starts, or 0 when it has no token (an empty value). */
int yaml_node_line(struct fy_node *n)
{
    void *it = NULL;

    if (!n)
        return 0;
    switch (fy_node_get_type(n)) {
    case FYNT_SCALAR: {
        struct fy_token *t = fy_node_get_scalar_token(n);
        const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
        return m ? m->line + 1 : 0;
    }
    case FYNT_MAPPING: {
        struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
        return p ? yaml_node_line(fy_node_pair_key(p)) : 0;
    }
    case FYNT_SEQUENCE:
        return yaml_node_line(fy_node_sequence_iterate(n, &it));
    }
    return 0;
}

/* A scalar's value after the YAML 1.2 core schema. */
enum scalar_kind { SK_STRING, SK_NULL, SK_BOOL, SK_INT, SK_FLOAT, SK_NOT_JSON, SK_BAD_TAG };

#define YAML_TAG "tag:yaml.org,2002:"

/* Whether a tag is the standard one called name ("str" for !!str). */
static int tag_is(const char *tag, size_t len, const char *name)
{
    size_t plen = strlen(YAML_TAG);

    return tag && len == plen + strlen(name) && strncmp(tag, YAML_TAG, plen) == 0 &&
           strncmp(tag + plen, name, len - plen) == 0;
}

/* What a scalar with text s is: quoted ones and !!str are strings, plain ones are resolved. */
static enum scalar_kind scalar_kind(struct fy_node *n, const char *s)
{
    static const struct {
        const char *name;
        enum scalar_kind kind;
    } tags[] = {{"null", SK_NULL}, {"bool", SK_BOOL}, {"int", SK_INT}, {"float", SK_FLOAT}};
    size_t taglen = 0;
    const char *tag = fy_node_get_tag(n, &taglen);
    enum scalar_kind k;
    long long iv;

    if (tag_is(tag, taglen, "str") || (!tag && fy_node_get_style(n) != FYNS_PLAIN))
        return SK_STRING;
    if (config_is_one_of(s, config_yaml_nulls))
        k = SK_NULL;
    else if (config_is_one_of(s, config_yaml_trues) || config_is_one_of(s, config_yaml_falses))
        k = SK_BOOL;
    else if (config_parse_core_int(s, &iv) == 0)
        k = SK_INT;
    else if (config_is_float_text(s))
        k = SK_FLOAT;
    else if (config_is_one_of(s, config_yaml_not_json))
        k = SK_NOT_JSON;
    else
        k = SK_STRING;
    if (!tag)
        return k;
    for (size_t i = 0; i < ARRAY_SIZE(tags); i++) /* !!int etc. must agree with the text */
        if (tag_is(tag, taglen, tags[i].name))
            return k == tags[i].kind || (k == SK_INT && tags[i].kind == SK_FLOAT) ? tags[i].kind
                                                                                  : SK_BAD_TAG;
    return SK_BAD_TAG;
}

const char *yaml_node_kind_name(struct fy_node *n)
{
    switch (fy_node_get_type(n)) {
    case FYNT_MAPPING:
        return "a mapping";
    case FYNT_SEQUENCE:
        return "a list";
    default:
        return "a scalar";
    }
}

/*
 * The text of a scalar node (NUL-terminated, owned by the document), or NULL
 * after reporting an error (embedded NUL byte, allocation failure).
 */
static const char *scalar_text(struct loader *ld, struct fy_node *n, int line, const char *option)
{
    size_t len = 0;
    const char *s = fy_node_get_scalar(n, &len);
    const char *s0 = fy_node_get_scalar0(n);

    if (!s0) {
        yaml_fail_at(ld, line, option, "cannot read the value");
        return NULL;
    }
    if (s && strlen(s0) != len) {
        yaml_fail_at(ld, line, option, "the value contains a NUL byte");
        return NULL;
    }
    return s0;
}

/* Whether a mapping's or list's tag is the ordinary !!map or !!seq. */
static int plain_collection_tag(struct fy_node *n)
{
    size_t len = 0;
    const char *tag = fy_node_get_tag(n, &len);

    return tag_is(tag, len, fy_node_is_mapping(n) ? "map" : "seq");
}

static json_t *yaml_to_json(struct loader *ld, struct fy_node *n, int line, const char *option);

static json_t *mapping_to_json(struct loader *ld, struct fy_node *n, int line, const char *option)
{
    json_t *obj = json_object(), *v = NULL;
    struct fy_node_pair *p;
    void *it = NULL;

    if (!obj)
        goto oom;
    while ((p = fy_node_mapping_iterate(n, &it))) {
        struct fy_node *k = fy_node_pair_key(p);
        int kline = yaml_node_line(k) ? yaml_node_line(k) : line;
        const char *key;
        if (!k || !fy_node_is_scalar(k)) {
            yaml_fail_at(ld, kline, option, "a key must be a string, not %s",
                         k ? yaml_node_kind_name(k) : "empty");
            goto fail;
        }
        if (!(key = scalar_text(ld, k, kline, option)))
            goto fail;
        if (!(v = yaml_to_json(ld, fy_node_pair_value(p), kline, option)))
            goto fail;
        if (json_object_set_new(obj, key, v) < 0) {
            v = NULL;
            goto oom;
        }
        v = NULL;
    }
    return obj;
oom:
    yaml_fail_at(ld, line, option, "out of memory");
fail:
    json_decref(obj);
    return NULL;
}

/* Convert a YAML node to JSON (new reference), or NULL after reporting an error. */
static json_t *yaml_to_json(struct loader *ld, struct fy_node *n, int line, const char *option)
{
    json_t *out = NULL, *item;
    const char *s;
    char sbuf[72];
    void *it = NULL;
    int nline;

    if (!n) /* an empty value */
        return json_null();
    nline = yaml_node_line(n) ? yaml_node_line(n) : line;
    if (!fy_node_is_scalar(n) && fy_node_get_tag(n, NULL) && !plain_collection_tag(n)) {
        yaml_fail_at(ld, nline, option, "unsupported YAML tag on %s", yaml_node_kind_name(n));
        return NULL;
    }
    switch (fy_node_get_type(n)) {
    case FYNT_MAPPING:
        return mapping_to_json(ld, n, nline, option);
    case FYNT_SEQUENCE: {
        struct fy_node *e;
        if (!(out = json_array()))
            goto oom;
        while ((e = fy_node_sequence_iterate(n, &it))) {
            if (!(item = yaml_to_json(ld, e, nline, option)))
                goto fail;
            if (json_array_append_new(out, item) < 0)
                goto oom;
        }
        return out;
    }
    case FYNT_SCALAR:
        break;
    }
    if (!(s = scalar_text(ld, n, nline, option)))
        return NULL;
    switch (scalar_kind(n, s)) {
    case SK_STRING:
        out = json_string(s);
        break;
    case SK_NULL:
        return json_null();
    case SK_BOOL:
        return json_boolean(config_is_one_of(s, config_yaml_trues));
    case SK_INT: {
        long long v = 0;
        (void)config_parse_core_int(s, &v);
        out = json_integer((json_int_t)v);
        break;
    }
    case SK_FLOAT:
        out = json_real(strtod(s, NULL));
        if (!out) {
            yaml_fail_at(ld, nline, option, "the number '%s' is too large for JSON",
                         config_echo(sbuf, sizeof sbuf, s));
            return NULL;
        }
        break;
    case SK_NOT_JSON:
        yaml_fail_at(ld, nline, option, "'%s' cannot be written in JSON",
                     config_echo(sbuf, sizeof sbuf, s));
        return NULL;
    case SK_BAD_TAG:
        yaml_fail_at(ld, nline, option, "unsupported YAML tag on '%s'",
                     config_echo(sbuf, sizeof sbuf, s));
        return NULL;
    }
    if (!out) {
        yaml_fail_at(ld, nline, option, "the string '%s' is not valid UTF-8",
                     config_echo(sbuf, sizeof sbuf, s));
        return NULL;
    }
    return out;
oom:
    yaml_fail_at(ld, nline, option, "out of memory");
fail:
    json_decref(out);
    return NULL;
}

/* A list of strings (an empty value is an empty list) into *out, NULL-terminated. */
static int load_strlist(struct loader *ld, char ***out, struct fy_node *seq, int line,
                        const char *option)
{
    struct fy_node *item;
    void *it = NULL;
    size_t i = 0;
    config_strlist_free(*out);
    *out = NULL;
    if (!seq)
        return 0;
    if (!fy_node_is_sequence(seq))
        return yaml_fail_at(ld, line, option, "expected a list of strings, got %s",
                            yaml_node_kind_name(seq));
    size_t n = (size_t)fy_node_sequence_item_count(seq);
    if (!(*out = sl_calloc(n + 1, sizeof **out)))
        return yaml_fail_at(ld, line, option, "out of memory");
    while ((item = fy_node_sequence_iterate(seq, &it)) && i < n) {
        int l = yaml_node_line(item) ? yaml_node_line(item) : line;
        const char *s;
        if (!fy_node_is_scalar(item))
            return yaml_fail_at(ld, l, option, "expected a string, got %s",
                                yaml_node_kind_name(item));
        if (!(s = scalar_text(ld, item, l, option)))
            return -1;
        if (!*s)
            return yaml_fail_at(ld, l, option, "an entry is empty");
        if (!((*out)[i++] = sl_strdup(s)))
            return yaml_fail_at(ld, l, option, "out of memory");
    }
    return 0;
}

/* A dataset's key, a name or a list of names, into *out in its text form (schema.h); the
 * names are checked against the schema once the whole dataset is read. */
static int load_key(struct loader *ld, char **out, struct fy_node *v, int line, const char *option)
{
    char **names = NULL;
    size_t n = 0;
    free(*out);
    *out = NULL;
    if (!v)
        return 0; /* left empty: no key */
    if (yaml_node_line(v))
        line = yaml_node_line(v);
    if (fy_node_is_scalar(v)) {
        const char *s = scalar_text(ld, v, line, option);
        if (!s)
            return -1;
        if (scalar_kind(v, s) == SK_NULL)
            return 0;
        if (scalar_kind(v, s) == SK_BAD_TAG)
            return yaml_fail_at(ld, line, option, "unsupported YAML tag on the key");
        if (!*s)
            return yaml_fail_at(ld, line, option,
                                "expected a property name or a list of them, got ''");
        if (!(*out = sl_strdup(s)))
            return yaml_fail_at(ld, line, option, "out of memory");
        return 0;
    }
    if (!fy_node_is_sequence(v))
        return yaml_fail_at(ld, line, option, "expected a property name or a list of them, got %s",
                            yaml_node_kind_name(v));
    int rc = load_strlist(ld, &names, v, line, option);
    while (rc == 0 && names[n])
        n++;
    if (rc == 0 && n == 0)
        rc = yaml_fail_at(ld, line, option,
                          "expected a property name or a list of them, got an empty list");
    else if (rc == 0 && n > SCHEMA_KEY_MAX)
        rc = yaml_fail_at(ld, line, option, "a key has at most %d fields, got %zu", SCHEMA_KEY_MAX,
                          n);
    else if (rc == 0 && !(*out = schema_key_text((const char *const *)names, n)))
        rc = yaml_fail_at(ld, line, option, "out of memory");
    config_strlist_free(names);
    return rc;
}

/* Turn the schema mapping into JSON in the dataset at base (compiled by load_dataset, once
 * the dataset's name is known for the messages). */
static int load_schema(struct loader *ld, struct dataset_config *ds, struct fy_node *v, int line,
                       const char *option)
{
    if (!v || !fy_node_is_mapping(v))
        return yaml_fail_at(ld, line, option, "expected a mapping (a JSON Schema object), got %s",
                            v ? yaml_node_kind_name(v) : "nothing");
    json_decref(ds->schema_json);
    if (!(ds->schema_json = yaml_to_json(ld, v, line, option)))
        return -1;
    return 0;
}

/* Set option o of the struct at base from the YAML value v of the key at line. */
static int opt_set_node(struct loader *ld, const struct opt *o, void *base, struct fy_node *v,
                        int line, const char *option)
{
    char why[400], ebuf[128], sbuf[72];
    const char *s = "";
    enum scalar_kind k = SK_NULL; /* no value node at all is an empty value */

    if (o->type == OT_SCHEMA)
        return load_schema(ld, base, v, line, option);
    if (o->type == OT_DATASETS || o->type == OT_JWTKEYS || o->type == OT_RECEIVERS ||
        o->type == OT_ROUTES || o->type == OT_JOBS)
        return ld->load_list(ld, o, v, line, option);
    if (o->type == OT_JOBARGS)
        return 0; /* jobs.c walks them against the job's kind */
    if (o->type == OT_STRLIST)
        return load_strlist(ld, (char ***)((char *)base + o->off), v, line, option);
    if (o->type == OT_KEY)
        return load_key(ld, (char **)((char *)base + o->off), v, line, option);
    if (v && !fy_node_is_scalar(v))
        return yaml_fail_at(ld, line, option, "expected %s, got %s",
                            opt_expected(o, ebuf, sizeof ebuf), yaml_node_kind_name(v));
    if (v && yaml_node_line(v))
        line = yaml_node_line(v);
    if (v && !(s = scalar_text(ld, v, line, option)))
        return -1;
    if (v)
        k = scalar_kind(v, s);
    if (k == SK_NULL) {
        if (!o->def && !(o->flags & OPT_REQUIRED))
            return 0; /* an optional value left empty: none */
        return yaml_fail_at(ld, line, option, "expected %s, got nothing",
                            opt_expected(o, ebuf, sizeof ebuf));
    }
    if (k == SK_BAD_TAG)
        return yaml_fail_at(ld, line, option, "unsupported YAML tag on '%s'",
                            config_echo(sbuf, sizeof sbuf, s));
    if (k == SK_STRING && (fy_node_get_style(v) != FYNS_PLAIN || fy_node_get_tag(v, NULL)) &&
        (o->type == OT_INT || o->type == OT_NUMBER || o->type == OT_BOOL))
        return yaml_fail_at(ld, line, option, "expected %s, got the string '%s'",
                            opt_expected(o, ebuf, sizeof ebuf), config_echo(sbuf, sizeof sbuf, s));
    if (opt_set_text(o, base, s, why, sizeof why) < 0)
        return yaml_fail_at(ld, line, option, "%s", why);
    return 0;
}

/*
 * Walk a mapping against tbl, setting the struct at base. tprefix is the
 * prefix of names in the table ("limits."), dprefix the one shown in messages
 * ("datasets[0]." for a dataset). lines[i] gets the line where tbl[i] was set.
 */
int yaml_walk_mapping(struct loader *ld, struct fy_node *map, const struct opt *tbl, size_t n,
                      void *base, int *lines, const char *tprefix, const char *dprefix)
{
    struct fy_node_pair *p;
    void *it = NULL;

    while ((p = fy_node_mapping_iterate(map, &it))) {
        struct fy_node *k = fy_node_pair_key(p), *v = fy_node_pair_value(p);
        char tname[NAME_MAX_LEN + 1], dname[NAME_MAX_LEN + 1], hint[NAME_MAX_LEN + 1];
        int line = yaml_node_line(k);
        const struct opt *o;
        const char *key;

        if (!k || !fy_node_is_scalar(k))
            return yaml_fail_at(
                ld, line ? line : yaml_node_line(v), dprefix[0] ? dprefix : "(top level)",
                "a key must be a name, not %s", k ? yaml_node_kind_name(k) : "empty");
        if (!(key = scalar_text(ld, k, line, dprefix[0] ? dprefix : "(top level)")))
            return -1;
        snprintf(tname, sizeof tname, "%s%s", tprefix, key);
        snprintf(dname, sizeof dname, "%s%s", dprefix, key);
        if (strchr(key, '.')) /* one spelling per option, so none is set twice */
            return yaml_fail_at(ld, line, dname,
                                "unknown option (write a dotted name as nested mappings)");
        if ((o = opt_find(tbl, n, tname))) {
            if (opt_set_node(ld, o, base, v, line, dname) < 0)
                return -1;
            lines[o - tbl] = line ? line : 1;
            continue;
        } else if (opt_is_section(tbl, n, tname)) {
            char tsub[NAME_MAX_LEN + 2], dsub[NAME_MAX_LEN + 2];
            if (!v || !fy_node_is_mapping(v))
                return yaml_fail_at(ld, line, dname, "expected a mapping, got %s",
                                    v ? yaml_node_kind_name(v) : "nothing");
            snprintf(tsub, sizeof tsub, "%s.", tname);
            snprintf(dsub, sizeof dsub, "%s.", dname);
            if (yaml_walk_mapping(ld, v, tbl, n, base, lines, tsub, dsub) < 0)
                return -1;
            continue;
        }
        if (*key && opt_suggest(tbl, n, tname, hint, sizeof hint)) {
            size_t plen = strlen(tprefix);
            return yaml_fail_at(ld, line, dname, "unknown option (did you mean '%s'?)",
                                strncmp(hint, tprefix, plen) == 0 ? hint + plen : hint);
        }
        return yaml_fail_at(ld, line, dname, "unknown option");
    }
    return 0;
}
