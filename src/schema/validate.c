/*
 * validate.c - validates a row against a compiled schema (compile.c), a JSON
 * object (schema_validate) or values in field order as a CSV record gives them
 * (schema_validate_values). This is the hot path: a row is walked once, a valid
 * row costs no allocation, and error messages are built only when a value is
 * wrong, echoing at most ECHO_MAX bytes of it so they stay bounded. Date formats
 * and the row error list are in formats.c.
 */
#include "schema/schema_internal.h"
#include "util/errors.h"
#include "util/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STACK_FIELDS 64 /* schemas up to this size validate without malloc */

/* Number of code points in valid UTF-8: every byte that is not a continuation byte. */
static size_t utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static __thread pcre2_match_data *tls_md;

static void md_free(void *p)
{
    pcre2_match_data_free(p);
}

static void md_key_create(void)
{
    (void)pthread_key_create(&md_key, md_free);
}

/*
 * This thread's match data. One ovector pair is enough for every pattern: we only
 * ask whether there is a match. Registered with a key so it is freed at thread exit.
 */
static pcre2_match_data *thread_match_data(void)
{
    if (!tls_md) {
        pthread_once(&md_once, md_key_create);
        tls_md = pcre2_match_data_create(1, NULL);
        if (tls_md)
            (void)pthread_setspecific(md_key, tls_md);
    }
    return tls_md;
}

static void check_range(const struct field *f, long double x, const struct row_value *v,
                        struct row_errors *e)
{
    char num[40];
    num[0] = '\0';
    const struct {
        const struct bound *b;
        int bad;
        const char *op;
    } tests[] = {
        {&f->min, x < f->min.v, ">="},
        {&f->xmin, x <= f->xmin.v, ">"},
        {&f->max, x > f->max.v, "<="},
        {&f->xmax, x >= f->xmax.v, "<"},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (!tests[i].b->set || !tests[i].bad)
            continue;
        if (!num[0])
            schema_fmt_number(num, sizeof num, v);
        row_errors_add(e, ERR_OUT_OF_RANGE, f->name, "must be %s %s, got %s", tests[i].op,
                       tests[i].b->text, num);
    }
}

static void check_string(const struct field *f, const struct row_value *v, struct row_errors *e)
{
    const char *s = v->u.s.p;
    size_t len = v->u.s.n;
    char buf[ECHO_BUF];

    if (f->format == FMT_DATE && !schema_is_date(s, len))
        row_errors_add(e, ERR_INVALID_DATE_FORMAT, f->name, "expected a date YYYY-MM-DD, got '%s'",
                       schema_echo(buf, s, len));
    else if (f->format == FMT_DATETIME && !schema_is_datetime(s, len))
        row_errors_add(
            e, ERR_INVALID_DATE_FORMAT, f->name,
            "expected an RFC 3339 date-time YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm), got '%s'",
            schema_echo(buf, s, len));

    /* Code points <= bytes, so only a string longer in bytes than maxLength needs counting. */
    if (f->maxlen >= 0 || f->minlen > 0) {
        size_t cp = 0;
        int counted = 0;
        if (f->maxlen >= 0 && len > (size_t)f->maxlen) {
            cp = utf8_length(s, len);
            counted = 1;
            if (cp > (size_t)f->maxlen)
                row_errors_add(e, ERR_TOO_LONG, f->name, "length %zu exceeds maxLength %lld", cp,
                               f->maxlen);
        }
        if (f->minlen > 0) {
            if (!counted)
                cp = utf8_length(s, len);
            if (cp < (size_t)f->minlen)
                row_errors_add(e, ERR_TOO_SHORT, f->name, "length %zu is less than minLength %lld",
                               cp, f->minlen);
        }
    }

    if (f->re) {
        pcre2_match_data *md = thread_match_data();
        int rc = md ? pcre2_match(f->re, (PCRE2_SPTR)s, len, 0, 0, md, NULL) : PCRE2_ERROR_NOMEMORY;
        if (rc < 0) {
            /* Other than NOMATCH: a match limit or out of memory; the value is not accepted. */
            char pat[ECHO_BUF], why[128] = "";
            if (rc != PCRE2_ERROR_NOMATCH) {
                strcpy(why, " (");
                if (pcre2_get_error_message(rc, (PCRE2_UCHAR *)why + 2, sizeof why - 3) < 0)
                    strcpy(why + 2, "match failed");
                strcat(why, ")");
            }
            row_errors_add(
                e, ERR_PATTERN_MISMATCH, f->name, "does not match pattern '%s', got '%s'%s",
                schema_echo(pat, f->pattern, strlen(f->pattern)), schema_echo(buf, s, len), why);
        }
    }

    if (f->nenum) {
        struct enum_str key = {.s = (char *)s, .len = len};
        if (!bsearch(&key, f->enum_strs, f->nenum, sizeof key, cmp_enum_str))
            row_errors_add(e, ERR_NOT_IN_ENUM, f->name, "must be one of %s; got '%s'", f->enum_text,
                           schema_echo(buf, s, len));
    }
}

static void check_number(const struct field *f, const struct row_value *v, struct row_errors *e)
{
    long double x;
    if (v->kind == VAL_INT) {
        x = (long double)v->u.i;
    } else if (v->kind == VAL_REAL) {
        double d = v->u.d;
        /* An integer may be written 3.0, if it fits int64. */
        if (f->type == FT_INTEGER && !is_int64(d)) {
            char num[40];
            schema_fmt_real(num, sizeof num, d);
            row_errors_add(e, ERR_INVALID_TYPE, f->name, "expected integer, got number %s", num);
            return;
        }
        x = (long double)d;
    } else {
        row_errors_add(e, ERR_INVALID_TYPE, f->name, "expected %s, got %s",
                       field_type_name(f->type), schema_kind_name(v));
        return;
    }
    if (f->has_range)
        check_range(f, x, v, e);
    if (f->nenum) {
        for (size_t i = 0; i < f->nenum; i++)
            if (f->enum_nums[i] == x)
                return;
        char num[40];
        schema_fmt_number(num, sizeof num, v);
        row_errors_add(e, ERR_NOT_IN_ENUM, f->name, "must be one of %s; got %s", f->enum_text, num);
    }
}

static void check_field(const struct field *f, const struct row_value *v, struct row_errors *e)
{
    switch (f->type) {
    case FT_STRING:
        if (v->kind == VAL_TEXT)
            check_string(f, v, e);
        else
            row_errors_add(e, ERR_INVALID_TYPE, f->name, "expected string, got %s",
                           schema_kind_name(v));
        return;
    case FT_INTEGER:
    case FT_NUMBER:
        check_number(f, v, e);
        return;
    case FT_BOOLEAN:
        if (v->kind != VAL_BOOL)
            row_errors_add(e, ERR_INVALID_TYPE, f->name, "expected boolean, got %s",
                           schema_kind_name(v));
        else if (f->nenum && !(f->enum_bools & (v->u.b ? 2u : 1u)))
            row_errors_add(e, ERR_NOT_IN_ENUM, f->name, "must be one of %s; got %s", f->enum_text,
                           v->u.b ? "true" : "false");
        return;
    }
}

static void unknown_field(struct row_errors *e, const char *name)
{
    row_errors_add(e, ERR_UNKNOWN_FIELD, name,
                   "field is not declared in the schema and additionalProperties is false");
}

static void check_required(const struct schema *s, size_t i, struct row_errors *e)
{
    if (s->f[i].required)
        row_errors_add(e, ERR_MISSING_REQUIRED_FIELD, s->f[i].name, "required field is missing");
}

/* Whether one of the first n errors of e is about field f (the caller reported its value). */
static int reported(const struct row_errors *e, size_t n, const struct field *f)
{
    for (size_t k = 0; k < n; k++)
        if (e->v[k].field && strcmp(e->v[k].field, f->name) == 0)
            return 1;
    return 0;
}

size_t schema_validate_values(const struct schema *s, const struct row_value *vals,
                              const char *const *unknown, size_t n_unknown, struct row_errors *errs)
{
    size_t before = errs->n;
    for (size_t i = 0; i < s->n; i++)
        if (vals[i].kind != VAL_ABSENT)
            check_field(&s->f[i], &vals[i], errs);
    if (!s->allow_extra)
        for (size_t k = 0; k < n_unknown; k++)
            unknown_field(errs, unknown[k]);
    if (s->nrequired)
        for (size_t i = 0; i < s->n; i++)
            if (vals[i].kind == VAL_ABSENT && !(before && reported(errs, before, &s->f[i])))
                check_required(s, i, errs);
    return errs->n - before;
}

size_t schema_validate(const struct schema *s, json_t *row, struct row_errors *errs, json_t **extra)
{
    size_t before = errs->n;
    if (extra)
        *extra = NULL;
    if (!json_is_object(row)) {
        row_errors_add(errs, ERR_NOT_AN_OBJECT, NULL, "expected a JSON object, got %s",
                       row ? schema_json_kind(row) : "nothing");
        return errs->n - before;
    }

    /* One pass over the row: which declared fields it has, and how many others. */
    json_t *stackv[STACK_FIELDS];
    json_t **vals = stackv;
    if (s->n > STACK_FIELDS && !(vals = sl_malloc(s->n * sizeof *vals))) {
        row_errors_add(errs, ERR_INTERNAL, NULL, "out of memory");
        return errs->n - before;
    }
    if (s->n)
        memset(vals, 0, s->n * sizeof *vals);
    size_t nunknown = 0;
    for (void *it = json_object_iter(row); it; it = json_object_iter_next(row, it)) {
        int k = lookup(s, json_object_iter_key(it), json_object_iter_key_len(it));
        if (k < 0)
            nunknown++;
        else
            vals[k] = json_object_iter_value(it);
    }

    for (size_t i = 0; i < s->n; i++)
        if (vals[i]) {
            struct row_value v;
            value_of_json(vals[i], &v);
            check_field(&s->f[i], &v, errs);
        }

    if (nunknown && !s->allow_extra)
        for (void *it = json_object_iter(row); it; it = json_object_iter_next(row, it))
            if (lookup(s, json_object_iter_key(it), json_object_iter_key_len(it)) < 0)
                unknown_field(errs, json_object_iter_key(it));

    if (s->nrequired)
        for (size_t i = 0; i < s->n; i++)
            if (!vals[i])
                check_required(s, i, errs);

    if (extra && nunknown && s->allow_extra && errs->n == before) {
        json_t *x = json_object();
        for (void *it = json_object_iter(row); x && it; it = json_object_iter_next(row, it)) {
            const char *key = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            if (lookup(s, key, klen) < 0 &&
                json_object_setn(x, key, klen, json_object_iter_value(it)) != 0) {
                json_decref(x);
                x = NULL;
            }
        }
        *extra = x;
    }
    if (vals != stackv)
        free(vals);
    return errs->n - before;
}
