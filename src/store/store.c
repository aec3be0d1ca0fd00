/*
 * store.c - picks the backend from the storage URI's scheme (the table of backends),
 * and what every backend shares: releasing the structs store.h returns, the query observer.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/values.h"
#include "util/jsontext.h"
#include "util/mem.h"

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

void alert_history_free(struct alert_history *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++) {
        free(h[i].event);
        free(h[i].detail);
    }
    free(h);
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

int job_run_state_new(const char *state)
{
    return state && (!strcmp(state, "queued") || !strcmp(state, "skipped"));
}

int job_run_state_end(const char *state)
{
    return state &&
           (!strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "canceled"));
}

void job_run_release(struct job_run *r)
{
    if (!r)
        return;
    free(r->job);
    free(r->reason);
    free(r->node);
    free(r->error);
    free(r->idem_key);
    memset(r, 0, sizeof *r);
}

void job_runs_free(struct job_run *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        job_run_release(&v[i]);
    free(v);
}

void job_state_release(struct job_state *s)
{
    if (!s)
        return;
    free(s->job);
    free(s->cron);
    memset(s, 0, sizeof *s);
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

int store_row_put(struct store *st, const struct dataset_config *ds, const struct row_meta *m,
                  json_t *row, json_t *extra, enum row_result *res)
{
    size_t n = schema_nfields(ds->schema);
    struct row_value small[32];
    struct row_value *v = n <= 32 ? small : sl_malloc(n * sizeof *v);
    if (!v)
        return st->ops->nomem(st);
    row_values_from_json(ds->schema, row, v);
    /* whole or NULL: json_dumps can leave a key out when its buffer cannot grow */
    char *extra_txt = extra ? jsontext_dump(extra, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    int rc = extra && !extra_txt ? st->ops->nomem(st)
                                 : store_row_put_values(st, ds, m, v, extra_txt, res);
    free(extra_txt);
    if (v != small)
        free(v);
    return rc;
}

int store_dataset_verdict(const struct dataset_config *ds, int found, struct schema *old,
                          char *oldkey, char *why, size_t whylen)
{
    int rc = 0;
    if (found && !old) {
        snprintf(why, whylen, "dataset '%s': the stored schema cannot be read", ds->name);
        rc = -1;
    } else if (old) {
        char r[400];
        if (schema_compatible(old, ds->schema, r, sizeof r) < 0) {
            snprintf(why, whylen, "dataset '%s': %s", ds->name, r);
            rc = -1;
        } else if ((oldkey == NULL) != (ds->key == NULL) ||
                   (oldkey && strcmp(oldkey, ds->key) != 0)) {
            snprintf(why, whylen, "dataset '%s': the key changed from '%s' to '%s'", ds->name,
                     oldkey ? oldkey : "(none)", ds->key ? ds->key : "(none)");
            rc = -1;
        }
    }
    schema_destroy(old);
    free(oldkey);
    return rc;
}
