/*
 * rollup_acc.c - rollup deltas summed in memory until commit (rollup_acc.h).
 */
#include "store/rollup_acc.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rollup_delta rollup_delta_negated(const struct rollup_delta *d)
{
    struct rollup_delta m = *d;
    m.received = -d->received;
    m.accepted = -d->accepted;
    m.rejected = -d->rejected;
    m.duplicate = -d->duplicate;
    m.batches = -d->batches;
    m.batches_failed = -d->batches_failed;
    return m;
}

static void ledger_free_codes(struct roll_ledger *l)
{
    for (size_t k = 0; k < l->ncodes; k++)
        free(l->codes[k].sample);
    free(l->codes);
    l->codes = NULL;
    l->ncodes = 0;
}

void roll_acc_clear(struct roll_acc *a)
{
    for (size_t i = 0; i < a->n; i++) {
        for (size_t k = 0; k < a->v[i].ncodes; k++)
            free(a->v[i].codes[k].sample);
        free(a->v[i].codes);
    }
    free(a->v);
    for (size_t i = 0; i < a->nled; i++)
        ledger_free_codes(&a->led[i]);
    free(a->led);
    memset(a, 0, sizeof *a);
}

static struct roll_ledger *ledger_slot(struct roll_acc *a)
{
    if (a->nled == a->capled) {
        size_t cap = a->capled ? a->capled * 2 : 8;
        struct roll_ledger *v = sl_realloc(a->led, cap * sizeof *v);
        if (!v)
            return NULL;
        a->led = v;
        a->capled = cap;
    }
    return &a->led[a->nled++];
}

char *roll_ledger_codes_json(const struct roll_ledger *l, int *oom)
{
    *oom = 0;
    if (!l->ncodes)
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->ncodes; i++) {
        const struct roll_code *c = &l->codes[i];
        json_t *o = json_pack("{s:s,s:I,s:I,s:s?}", "code", c->code, "n", (json_int_t)c->count, "b",
                              (json_int_t)c->batches, "sample", c->sample);
        if (o && c->at_ms != l->at_ms && json_object_set_new(o, "at", json_integer(c->at_ms)) < 0) {
            json_decref(o);
            o = NULL;
        }
        if (json_array_append_new(a, o) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    *oom = !t;
    return t;
}

size_t roll_codes_parse(const char *text, struct rollup_code *codes, size_t max, json_t **hold)
{
    *hold = text ? json_loads(text, 0, NULL) : NULL;
    size_t n = 0, i;
    json_t *c;
    json_array_foreach(*hold, i, c)
    {
        const char *code = json_string_value(json_object_get(c, "code"));
        if (!code || n == max)
            continue;
        codes[n++] = (struct rollup_code){code, json_integer_value(json_object_get(c, "n")),
                                          json_string_value(json_object_get(c, "sample")),
                                          json_integer_value(json_object_get(c, "b")),
                                          json_integer_value(json_object_get(c, "at"))};
    }
    return n;
}

void roll_acc_settle(struct roll_acc *a, int kept)
{
    for (size_t i = 0; i < a->nled; i++)
        if (a->led[i].written == 1)
            a->led[i].written = kept ? 2 : 0;
}

static struct roll_entry *entry(struct roll_acc *a, const char *dataset, int64_t minute)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].minute == minute && strcmp(a->v[i].dataset, dataset) == 0)
            return &a->v[i];
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        struct roll_entry *v = sl_realloc(a->v, cap * sizeof *v);
        if (!v)
            return NULL;
        a->v = v;
        a->cap = cap;
    }
    struct roll_entry *e = &a->v[a->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->dataset, sizeof e->dataset, "%s", dataset);
    e->minute = minute;
    return e;
}

/* Add code counts to e; the sample is copied when e has none for that code. */
static int add_code(struct roll_entry *e, const char *code, int64_t count, int64_t batches,
                    const char *sample, int64_t at_ms)
{
    for (size_t k = 0; k < e->ncodes; k++)
        if (strcmp(e->codes[k].code, code) == 0) {
            e->codes[k].count += count;
            e->codes[k].batches += batches;
            if (at_ms > e->codes[k].at_ms)
                e->codes[k].at_ms = at_ms;
            if (!e->codes[k].sample && sample)
                e->codes[k].sample = sl_strdup(sample);
            return 0;
        }
    if (e->ncodes == ROLL_MAX_CODES)
        return 0;
    struct roll_code *v = sl_realloc(e->codes, (e->ncodes + 1) * sizeof *v);
    if (!v)
        return -1;
    e->codes = v;
    struct roll_code *c = &v[e->ncodes++];
    snprintf(c->code, sizeof c->code, "%s", code);
    c->count = count;
    c->batches = batches;
    c->at_ms = at_ms;
    c->sample = sample ? sl_strdup(sample) : NULL;
    return 0;
}

/* Add the counts of d (an entry of another accumulator, or a delta's) to bucket e. */
static void add_counts(struct roll_entry *e, int64_t at_ms, const struct roll_entry *d)
{
    if (at_ms > e->at_ms)
        e->at_ms = at_ms;
    if (d->error_ms > e->error_ms)
        e->error_ms = d->error_ms;
    e->received += d->received;
    e->accepted += d->accepted;
    e->rejected += d->rejected;
    e->duplicate += d->duplicate;
    e->batches += d->batches;
    e->batches_failed += d->batches_failed;
}

/* Add a code's counts to ledger row l (no cap: a row keeps every code its deltas had). */
static int ledger_add_code(struct roll_ledger *l, const char *code, int64_t count, int64_t batches,
                           const char *sample, int64_t at_ms)
{
    struct roll_code *c = NULL;
    for (size_t k = 0; !c && k < l->ncodes; k++)
        if (strcmp(l->codes[k].code, code) == 0)
            c = &l->codes[k];
    if (!c) {
        struct roll_code *v = sl_realloc(l->codes, (l->ncodes + 1) * sizeof *v);
        if (!v)
            return -1;
        l->codes = v;
        c = &v[l->ncodes++];
        *c = (struct roll_code){.at_ms = at_ms};
        snprintf(c->code, sizeof c->code, "%s", code);
    }
    c->count += count;
    c->batches += batches;
    if (at_ms > c->at_ms)
        c->at_ms = at_ms;
    if (sample && (!c->sample || strcmp(sample, c->sample) > 0)) {
        char *t = sl_strdup(sample);
        if (!t)
            return -1;
        free(c->sample);
        c->sample = t;
    }
    return 0;
}

/* The row of a not written yet that the pushes of (dataset, minute, kind) are summed into;
 * NULL: none yet. */
static struct roll_ledger *ledger_find(struct roll_acc *a, const char *dataset, int64_t minute,
                                       int kind)
{
    for (size_t i = a->nled; i-- > 0;) {
        struct roll_ledger *l = &a->led[i];
        if (!l->written && !l->batch_id[0] && l->kind == kind &&
            l->at_ms / ROLL_MINUTE_MS == minute && strcmp(l->dataset, dataset) == 0)
            return l;
    }
    return NULL;
}

/* The counts of from (not its codes) added to l. */
static void ledger_add_counts(struct roll_ledger *l, const struct roll_ledger *from)
{
    if (from->at_ms > l->at_ms)
        l->at_ms = from->at_ms;
    l->received += from->received;
    l->accepted += from->accepted;
    l->rejected += from->rejected;
    l->duplicate += from->duplicate;
    l->batches += from->batches;
    l->batches_failed += from->batches_failed;
}

/* d into the ledger rows of a: a batch's as a row of its own, a push's summed into its
 * dataset's, minute's and kind's row. */
static int add_ledger(struct roll_acc *a, const struct rollup_delta *d)
{
    const char *batch_id = d->batch_id ? d->batch_id : "";
    struct roll_ledger one = {.at_ms = d->at_ms,
                              .received = d->received,
                              .accepted = d->accepted,
                              .rejected = d->rejected,
                              .duplicate = d->duplicate,
                              .batches = d->batches,
                              .batches_failed = d->batches_failed,
                              .kind = d->rejected > 0   ? 2
                                      : d->received > 0 ? 1
                                                        : 0};
    struct roll_ledger *l =
        batch_id[0] ? NULL : ledger_find(a, d->dataset, d->at_ms / ROLL_MINUTE_MS, one.kind);
    if (l) {
        ledger_add_counts(l, &one);
    } else {
        if (!(l = ledger_slot(a)))
            return -1;
        *l = one;
        snprintf(l->dataset, sizeof l->dataset, "%s", d->dataset);
        snprintf(l->batch_id, sizeof l->batch_id, "%s", batch_id);
    }
    for (size_t k = 0; k < d->ncodes; k++)
        if (ledger_add_code(l, d->codes[k].code, d->codes[k].count, d->batches, d->codes[k].sample,
                            d->at_ms) < 0)
            return -1;
    return 0;
}

int roll_acc_add(struct roll_acc *a, const struct rollup_delta *d)
{
    if (add_ledger(a, d) < 0)
        return -1;
    struct roll_entry *e = entry(a, d->dataset, d->at_ms / ROLL_MINUTE_MS);
    if (!e)
        return -1;
    struct roll_entry one = {.error_ms = d->rejected ? d->at_ms : 0,
                             .received = d->received,
                             .accepted = d->accepted,
                             .rejected = d->rejected,
                             .duplicate = d->duplicate,
                             .batches = d->batches,
                             .batches_failed = d->batches_failed};
    add_counts(e, d->at_ms, &one);
    for (size_t k = 0; k < d->ncodes; k++)
        if (add_code(e, d->codes[k].code, d->codes[k].count, d->batches, d->codes[k].sample,
                     d->at_ms) < 0)
            return -1;
    return 0;
}

void roll_acc_merge(struct roll_acc *into, struct roll_acc *from)
{
    for (size_t i = 0; i < from->nled; i++) {
        struct roll_ledger *f = &from->led[i];
        struct roll_ledger *l =
            f->written || f->batch_id[0]
                ? NULL
                : ledger_find(into, f->dataset, f->at_ms / ROLL_MINUTE_MS, f->kind);
        if (l) {
            ledger_add_counts(l, f);
            for (size_t k = 0; k < f->ncodes; k++)
                if (ledger_add_code(l, f->codes[k].code, f->codes[k].count, f->codes[k].batches,
                                    f->codes[k].sample, f->codes[k].at_ms) < 0)
                    break;
            continue;
        }
        if (!(l = ledger_slot(into)))
            break;
        *l = *f;
        if (l->written == 1)
            l->written = 2;
        f->codes = NULL;
        f->ncodes = 0;
    }
    for (size_t i = 0; i < from->n; i++) {
        const struct roll_entry *f = &from->v[i];
        struct roll_entry *e = entry(into, f->dataset, f->minute);
        if (!e)
            break;
        add_counts(e, f->at_ms, f);
        for (size_t k = 0; k < f->ncodes; k++)
            if (add_code(e, f->codes[k].code, f->codes[k].count, f->codes[k].batches,
                         f->codes[k].sample, f->codes[k].at_ms) < 0)
                break;
    }
    roll_acc_clear(from);
}

void roll_entry_delta(const struct roll_entry *e, struct rollup_code *codes, struct rollup_delta *d)
{
    size_t n = e->ncodes < ROLL_MAX_CODES ? e->ncodes : ROLL_MAX_CODES;
    for (size_t k = 0; k < n; k++)
        codes[k] = (struct rollup_code){e->codes[k].code, e->codes[k].count, e->codes[k].sample,
                                        e->codes[k].batches, e->codes[k].at_ms};
    *d = (struct rollup_delta){.dataset = e->dataset,
                               .at_ms = e->at_ms,
                               .received = e->received,
                               .accepted = e->accepted,
                               .rejected = e->rejected,
                               .duplicate = e->duplicate,
                               .batches = (int)e->batches,
                               .batches_failed = (int)e->batches_failed,
                               .codes = codes,
                               .ncodes = n,
                               .error_ms = e->error_ms};
}

void roll_chunks_mark_last(struct rollup_chunk *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i].last = i + 1 == n || strcmp(v[i].dataset, v[i + 1].dataset) != 0;
}
