/*
 * store.c - picks the backend from the storage URI's scheme (the table of backends),
 * and what every backend shares: releasing the structs store.h returns, the query observer.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every backend; the only place in src/store/ (outside the backends' folders) that names
 * one. */
static const struct store_ops *const backends[] = {&store_sqlite_ops, &store_pg_ops};

/* The backend whose prefix uri begins with, and where what it is given starts. */
static const struct store_ops *backend_of(const char *uri, const char **arg)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        for (const char *const *p = backends[i]->prefixes; *p; p++) {
            size_t n = strlen(*p);
            if (strncmp(uri, *p, n) == 0) {
                *arg = backends[i]->whole_uri ? uri : uri + n;
                return backends[i];
            }
        }
    return NULL;
}

struct store *store_open(const char *uri, int readonly, char *err, size_t errlen)
{
    const char *arg;
    const struct store_ops *b = backend_of(uri, &arg);
    if (b)
        return b->open(arg, readonly, err, errlen);
    snprintf(err, errlen,
             "storage '%s': unsupported scheme (supported: sqlite:PATH, postgres://...)", uri);
    return NULL;
}

void store_close(struct store *st)
{
    if (st)
        st->ops->close(st);
}

static void (*query_observer)(double seconds);

void store_set_query_observer(void (*fn)(double seconds))
{
    __atomic_store_n(&query_observer, fn, __ATOMIC_RELEASE);
}

void store_observe_query(double seconds)
{
    void (*fn)(double) = __atomic_load_n(&query_observer, __ATOMIC_ACQUIRE);
    if (fn)
        fn(seconds);
}

void store_wal_stats(const char *uri, struct store_wal *out)
{
    memset(out, 0, sizeof *out);
    const char *arg;
    const struct store_ops *b = backend_of(uri, &arg);
    if (b && b->wal_stats)
        b->wal_stats(arg, out);
}

void alert_release(struct alert *a)
{
    if (!a)
        return;
    free(a->fingerprint);
    free(a->rule);
    free(a->severity);
    free(a->labels_json);
    free(a->summary);
    free(a->details_json);
    free(a->state);
    memset(a, 0, sizeof *a);
}

void outbox_release(struct outbox_row *r)
{
    if (!r)
        return;
    free(r->receiver);
    free(r->event);
    free(r->body);
    free(r->last_error);
    memset(r, 0, sizeof *r);
}

void api_key_release(struct api_key *k)
{
    if (!k)
        return;
    free(k->name);
    k->name = NULL;
}

void dlq_entry_release(struct dlq_entry *e)
{
    if (!e)
        return;
    free(e->dataset);
    free(e->ingest_id);
    free(e->source);
    free(e->payload);
    free(e->errors_json);
    free(e->batch_id);
    memset(e, 0, sizeof *e);
}

void row_values_from_json(const struct schema *s, json_t *row, struct row_value *out)
{
    size_t n = schema_nfields(s);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(row, schema_field_name(s, i));
        struct row_value *o = &out[i];
        if (!v || json_is_null(v)) {
            o->kind = VAL_ABSENT;
            continue;
        }
        switch (schema_field_type(s, i)) {
        case FT_STRING:
            o->kind = VAL_TEXT;
            o->u.s.p = json_string_value(v);
            o->u.s.n = json_string_length(v);
            break;
        case FT_INTEGER:
            o->kind = VAL_INT;
            o->u.i = json_is_integer(v) ? json_integer_value(v) : (int64_t)json_number_value(v);
            break;
        case FT_NUMBER:
            o->kind = VAL_REAL;
            o->u.d = json_number_value(v);
            break;
        case FT_BOOLEAN:
            o->kind = VAL_BOOL;
            o->u.b = json_is_true(v);
            break;
        }
    }
}
