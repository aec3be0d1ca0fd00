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

void roll_acc_clear(struct roll_acc *a)
{
    for (size_t i = 0; i < a->n; i++) {
        for (size_t k = 0; k < a->v[i].ncodes; k++)
            free(a->v[i].codes[k].sample);
        free(a->v[i].codes);
    }
    free(a->v);
    for (size_t i = 0; i < a->nled; i++)
        free(a->led[i].codes);
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

char *roll_codes_json(const struct rollup_code *codes, size_t n, int64_t batches, int sign)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_pack("{s:s,s:I,s:I,s:s?}", "code", codes[i].code, "n",
                                               (json_int_t)(sign * codes[i].count), "b",
                                               (json_int_t)(sign * batches), "sample",
                                               codes[i].sample)) < 0) {
            json_decref(a);
            a = NULL;
        }
    char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
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
                                          json_integer_value(json_object_get(c, "b")), 0};
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

/* d as a ledger row of a. */
static int add_ledger(struct roll_acc *a, const struct rollup_delta *d)
{
    char *codes = d->ncodes ? roll_codes_json(d->codes, d->ncodes, d->batches, 1) : NULL;
    struct roll_ledger *l = (codes || !d->ncodes) ? ledger_slot(a) : NULL;
    if (!l) {
        free(codes);
        return -1;
    }
    *l = (struct roll_ledger){.at_ms = d->at_ms,
                              .received = d->received,
                              .accepted = d->accepted,
                              .rejected = d->rejected,
                              .duplicate = d->duplicate,
                              .batches = d->batches,
                              .batches_failed = d->batches_failed,
                              .codes = codes};
    snprintf(l->dataset, sizeof l->dataset, "%s", d->dataset);
    snprintf(l->batch_id, sizeof l->batch_id, "%s", d->batch_id ? d->batch_id : "");
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
        struct roll_ledger *l = ledger_slot(into);
        if (!l)
            break;
        *l = from->led[i];
        if (l->written == 1)
            l->written = 2;
        from->led[i].codes = NULL;
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
