/*
 * rollup_acc.c - rollup deltas summed in memory until commit (rollup_acc.h).
 */
#include "store/rollup_acc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void roll_acc_clear(struct roll_acc *a)
{
    for (size_t i = 0; i < a->n; i++) {
        for (size_t k = 0; k < a->v[i].ncodes; k++)
            free(a->v[i].codes[k].sample);
        free(a->v[i].codes);
    }
    free(a->v);
    memset(a, 0, sizeof *a);
}

static struct roll_entry *entry(struct roll_acc *a, const char *dataset, int64_t minute)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].minute == minute && strcmp(a->v[i].dataset, dataset) == 0)
            return &a->v[i];
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        struct roll_entry *v = realloc(a->v, cap * sizeof *v);
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
                    const char *sample)
{
    for (size_t k = 0; k < e->ncodes; k++)
        if (strcmp(e->codes[k].code, code) == 0) {
            e->codes[k].count += count;
            e->codes[k].batches += batches;
            if (!e->codes[k].sample && sample)
                e->codes[k].sample = strdup(sample);
            return 0;
        }
    if (e->ncodes == ROLL_MAX_CODES)
        return 0;
    struct roll_code *v = realloc(e->codes, (e->ncodes + 1) * sizeof *v);
    if (!v)
        return -1;
    e->codes = v;
    struct roll_code *c = &v[e->ncodes++];
    snprintf(c->code, sizeof c->code, "%s", code);
    c->count = count;
    c->batches = batches;
    c->sample = sample ? strdup(sample) : NULL;
    return 0;
}

/* Add the counts of d (an entry of another accumulator, or a delta's) to bucket e. */
static void add_counts(struct roll_entry *e, int64_t at_ms, const struct roll_entry *d)
{
    if (at_ms > e->at_ms)
        e->at_ms = at_ms;
    e->received += d->received;
    e->accepted += d->accepted;
    e->rejected += d->rejected;
    e->duplicate += d->duplicate;
    e->batches += d->batches;
    e->batches_failed += d->batches_failed;
}

int roll_acc_add(struct roll_acc *a, const struct rollup_delta *d)
{
    struct roll_entry *e = entry(a, d->dataset, d->at_ms / ROLL_MINUTE_MS);
    if (!e)
        return -1;
    struct roll_entry one = {.received = d->received,
                             .accepted = d->accepted,
                             .rejected = d->rejected,
                             .duplicate = d->duplicate,
                             .batches = d->batches,
                             .batches_failed = d->batches_failed};
    add_counts(e, d->at_ms, &one);
    for (size_t k = 0; k < d->ncodes; k++)
        if (add_code(e, d->codes[k].code, d->codes[k].count, d->batches, d->codes[k].sample) < 0)
            return -1;
    return 0;
}

void roll_acc_merge(struct roll_acc *into, struct roll_acc *from)
{
    for (size_t i = 0; i < from->n; i++) {
        const struct roll_entry *f = &from->v[i];
        struct roll_entry *e = entry(into, f->dataset, f->minute);
        if (!e)
            break;
        add_counts(e, f->at_ms, f);
        for (size_t k = 0; k < f->ncodes; k++)
            if (add_code(e, f->codes[k].code, f->codes[k].count, f->codes[k].batches,
                         f->codes[k].sample) < 0)
                break;
    }
    roll_acc_clear(from);
}

void roll_entry_delta(const struct roll_entry *e, struct rollup_code *codes, struct rollup_delta *d)
{
    size_t n = e->ncodes < ROLL_MAX_CODES ? e->ncodes : ROLL_MAX_CODES;
    for (size_t k = 0; k < n; k++)
        codes[k] = (struct rollup_code){e->codes[k].code, e->codes[k].count, e->codes[k].sample,
                                        e->codes[k].batches};
    *d = (struct rollup_delta){.dataset = e->dataset,
                               .at_ms = e->at_ms,
                               .received = e->received,
                               .accepted = e->accepted,
                               .rejected = e->rejected,
                               .duplicate = e->duplicate,
                               .batches = (int)e->batches,
                               .batches_failed = (int)e->batches_failed,
                               .codes = codes,
                               .ncodes = n};
}
