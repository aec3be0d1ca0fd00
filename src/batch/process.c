/*
 * process.c - what a worker does with one claimed batch (see batch.h):
 * staging (open the file, map the header to the schema), validating (count
 * rows and invalid rows on the worker thread), the threshold decision, then
 * one writer job that either stores the batch (rows, row errors, DLQ entries,
 * counts, `completed`) or records why it failed (row errors, `failed`).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "batch/batch.h"
#include "batch/process.h"
#include "ingest/csv.h"
#include "ingest/ingest.h"
#include "ingest/schema.h"
#include "service/service.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define CHUNK (64 * 1024)

/* Header column -> schema field. */
struct colmap {
    size_t ncols;
    char **names; /* owned */
    int *field;   /* schema index or -1 */
};

enum pass_mode { PASS_HEADER, PASS_COUNT, PASS_FAIL, PASS_STORE };

struct pass {
    const struct dataset_config *ds;
    struct batch *b;
    const struct sluice_config *cfg;
    struct colmap map;
    enum pass_mode mode;
    struct store *st; /* PASS_FAIL / PASS_STORE: the writer's store */
    int64_t total, invalid, inserted, duplicate;
    char reason[512]; /* staging failure */
    int failed_io;
    char received_at[32];
    int64_t now_ms;
    unsigned long long rejected_by_code[ERR__COUNT]; /* by first error, for the metrics */
    int (*tick)(void *arg); /* every TICK_RECORDS records (heartbeats); non-zero stops */
    void *tick_arg;
    int stopped; /* the tick asked to stop (shutdown) */
};

#define TICK_RECORDS 50000

static void colmap_release(struct colmap *m)
{
    for (size_t i = 0; i < m->ncols; i++)
        free(m->names[i]);
    free(m->names);
    free(m->field);
    memset(m, 0, sizeof *m);
}

/* The header: unique names; every required field present. */
static int read_header(struct pass *p, const struct csv_record *rec)
{
    if (rec->error) {
        snprintf(p->reason, sizeof p->reason, "the header row is unreadable: %s",
                 rec->error_message ? rec->error_message : err_name(rec->error));
        return -1;
    }
    struct colmap *m = &p->map;
    m->ncols = rec->nfields;
    m->names = calloc(rec->nfields ? rec->nfields : 1, sizeof *m->names);
    m->field = calloc(rec->nfields ? rec->nfields : 1, sizeof *m->field);
    if (!m->names || !m->field) {
        snprintf(p->reason, sizeof p->reason, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < rec->nfields; i++) {
        m->names[i] = strndup(rec->fields[i].data, rec->fields[i].len);
        m->field[i] = schema_field_index(p->ds->schema, m->names[i]);
        for (size_t k = 0; k < i; k++)
            if (strcmp(m->names[k], m->names[i]) == 0) {
                snprintf(p->reason, sizeof p->reason, "duplicate column %s", m->names[i]);
                return -1;
            }
    }
    for (size_t f = 0; f < schema_nfields(p->ds->schema); f++) {
        if (!schema_field_required(p->ds->schema, f))
            continue;
        int found = 0;
        for (size_t i = 0; i < m->ncols && !found; i++)
            found = m->field[i] == (int)f;
        if (!found) {
            snprintf(p->reason, sizeof p->reason, "missing required column %s",
                     schema_field_name(p->ds->schema, f));
            return -1;
        }
    }
    return 0;
}

/* A CSV value as the JSON value its field's type wants (a string when it does
 * not convert, so the validator reports INVALID_TYPE); NULL for "absent". */
static json_t *convert(enum field_type t, int typed, const char *v, size_t len)
{
    if (!typed || t == FT_STRING)
        return json_stringn(v, len);
    if (len == 0)
        return NULL; /* an empty field is absent for any type but string */
    char *end;
    errno = 0;
    if (t == FT_INTEGER) {
        long long n = strtoll(v, &end, 10);
        if (!errno && end == v + len)
            return json_integer(n);
    } else if (t == FT_NUMBER) {
        double d = strtod(v, &end);
        if (!errno && end == v + len && d == d && d - d == 0)
            return json_real(d);
    } else if (t == FT_BOOLEAN) {
        if ((len == 4 && !strncasecmp(v, "true", 4)) || (len == 1 && v[0] == '1'))
            return json_true();
        if ((len == 5 && !strncasecmp(v, "false", 5)) || (len == 1 && v[0] == '0'))
            return json_false();
    }
    return json_stringn(v, len);
}

/* Validate one data record; returns the row (valid) or NULL with errs filled. */
static json_t *to_row(struct pass *p, const struct csv_record *rec, struct row_errors *errs,
                      json_t **extra)
{
    *extra = NULL;
    if (rec->error) {
        row_errors_add(errs, rec->error, NULL, "%s",
                       rec->error_message ? rec->error_message : err_message(rec->error));
        return NULL;
    }
    if (rec->nfields != p->map.ncols) {
        row_errors_add(errs, ERR_COLUMN_COUNT_MISMATCH, NULL,
                       "line %lld: %zu fields, the header has %zu", (long long)rec->line,
                       rec->nfields, p->map.ncols);
        return NULL;
    }
    json_t *row = json_object();
    for (size_t i = 0; i < rec->nfields; i++) {
        int f = p->map.field[i];
        json_t *v = convert(f >= 0 ? schema_field_type(p->ds->schema, (size_t)f) : FT_STRING,
                            f >= 0, rec->fields[i].data, rec->fields[i].len);
        if (v)
            json_object_set_new_nocheck(row, p->map.names[i], v);
    }
    if (schema_validate(p->ds->schema, row, errs, extra) > 0) {
        json_decref(row);
        return NULL;
    }
    return row;
}

static int add_dlq(struct pass *p, const struct csv_record *rec, int64_t rowno,
                   const struct row_errors *errs)
{
    json_t *ej = row_errors_to_json(errs);
    char *etxt = json_dumps(ej, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *codes = ingest_codes(errs);
    json_decref(ej);
    struct dlq_new d = {.dataset = p->ds->name,
                        .ingest_id = p->b->id,
                        .source = p->b->source ? p->b->source : "upload",
                        .row = rowno,
                        .payload = rec->raw,
                        .payload_len = rec->raw_len,
                        .errors_json = etxt,
                        .codes = codes,
                        .received_ms = p->now_ms,
                        .batch_id = p->b->id};
    int rc = store_dlq_add(p->st, &d, NULL);
    free(etxt);
    free(codes);
    return rc;
}

static int add_errors(struct pass *p, int64_t rowno, const struct row_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        struct batch_error_new e = {rowno, err_name(errs->v[i].code), errs->v[i].field,
                                    errs->v[i].message ? errs->v[i].message : ""};
        if (store_batch_errors_add(p->st, p->b->id, &e, 1, p->now_ms) < 0)
            return -1;
    }
    return 0;
}

static int on_record(void *arg, const struct csv_record *rec)
{
    struct pass *p = arg;
    if (rec->index == 1) {
        if (read_header(p, rec) < 0)
            return 1;
        return p->mode == PASS_HEADER ? 3 : 0; /* 3: the header is all that was wanted */
    }
    int64_t rowno = rec->index - 1;
    /* Heartbeats are writer jobs: only from the worker's own pass, never from the
     * storing pass, which runs on the writer itself. */
    if (p->tick && p->mode == PASS_COUNT && rowno % TICK_RECORDS == 0 && p->tick(p->tick_arg)) {
        p->stopped = 1;
        snprintf(p->reason, sizeof p->reason, "stopped: the server is shutting down");
        return 5;
    }
    struct row_errors errs = {0};
    json_t *extra;
    json_t *row = to_row(p, rec, &errs, &extra);
    int rc = 0;
    p->total++;
    if (!row) {
        p->invalid++;
        p->rejected_by_code[errs.n ? errs.v[0].code : ERR_INTERNAL]++;
        if (p->mode != PASS_COUNT && add_errors(p, rowno, &errs) < 0)
            rc = 2;
        if (rc == 0 && p->mode == PASS_STORE && add_dlq(p, rec, rowno, &errs) < 0)
            rc = 2;
    } else if (p->mode == PASS_STORE) {
        struct row_meta m = {p->b->id, p->b->source ? p->b->source : "upload", p->received_at,
                             p->b->id};
        enum row_result res;
        if (store_row_put(p->st, p->ds, &m, row, extra, &res) < 0) {
            rc = 2;
        } else if (res != ROW_DUPLICATE) {
            p->inserted++;
        } else {
            p->duplicate++;
            if (p->ds->on_duplicate == ON_DUP_REJECT) {
                json_t *kv = json_object_get(row, p->ds->key);
                char *kt = kv ? json_dumps(kv, JSON_ENCODE_ANY) : NULL;
                row_errors_add(&errs, ERR_DUPLICATE_KEY, p->ds->key,
                               "a row with %s = %s is already stored", p->ds->key, kt ? kt : "?");
                free(kt);
                if (add_errors(p, rowno, &errs) < 0 || add_dlq(p, rec, rowno, &errs) < 0)
                    rc = 2;
            }
        }
    }
    json_decref(row);
    json_decref(extra);
    row_errors_release(&errs);
    return rc;
}

/* Stream the batch's file through the CSV reader in mode. 0, or -1 with p->reason. */
static int batch_scan(struct pass *p)
{
    FILE *f = fopen(p->b->path, "rb");
    if (!f) {
        snprintf(p->reason, sizeof p->reason, "the batch file %s cannot be read: %s", p->b->path,
                 strerror(errno));
        p->failed_io = 1;
        return -1;
    }
    colmap_release(&p->map);
    p->total = p->invalid = p->inserted = p->duplicate = 0;
    memset(p->rejected_by_code, 0, sizeof p->rejected_by_code);
    struct csv_reader *r = csv_reader_create((size_t)p->cfg->limits.max_row_bytes, on_record, p);
    char *chunk = malloc(CHUNK);
    int rc = (r && chunk) ? 0 : -1;
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, CHUNK, f)) > 0)
        rc = csv_feed(r, chunk, n);
    if (rc == 0 && ferror(f)) {
        snprintf(p->reason, sizeof p->reason, "reading %s: %s", p->b->path, strerror(errno));
        p->failed_io = 1;
        rc = -1;
    }
    if (rc == 0)
        rc = csv_finish(r);
    if (rc == 3 && p->mode == PASS_HEADER)
        rc = 0;
    if (rc == 0 && p->map.names == NULL)
        rc = 1;
    if (rc == 1 && !p->reason[0])
        snprintf(p->reason, sizeof p->reason, "the file is empty: no header row");
    if (rc == 2 && p->st)
        snprintf(p->reason, sizeof p->reason, "the store failed: %s", store_errmsg(p->st));
    else if (rc < 0 && !p->reason[0])
        snprintf(p->reason, sizeof p->reason, "out of memory");
    free(chunk);
    csv_reader_destroy(r);
    fclose(f);
    return rc == 0 ? 0 : -1;
}

struct pass *batch_pass_new(const struct sluice_config *cfg, const struct dataset_config *ds,
                            struct batch *b)
{
    struct pass *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cfg = cfg;
    p->ds = ds;
    p->b = b;
    return p;
}

int batch_pass_stopped(const struct pass *p)
{
    return p->stopped;
}

void batch_pass_set_tick(struct pass *p, int (*tick)(void *arg), void *arg)
{
    p->tick = tick;
    p->tick_arg = arg;
}

void batch_pass_destroy(struct pass *p)
{
    if (!p)
        return;
    colmap_release(&p->map);
    free(p);
}

const char *batch_pass_reason(const struct pass *p)
{
    return p->reason;
}

const unsigned long long *batch_pass_rejected(const struct pass *p)
{
    return p->rejected_by_code;
}

void batch_pass_counts(const struct pass *p, int64_t *total, int64_t *invalid)
{
    *total = p->total;
    *invalid = p->invalid;
}

int batch_pass_header(struct pass *p)
{
    p->mode = PASS_HEADER;
    p->st = NULL;
    return batch_scan(p);
}

int batch_pass_count(struct pass *p)
{
    p->mode = PASS_COUNT;
    p->st = NULL;
    return batch_scan(p);
}

/* The writer job: clear what an earlier attempt stored, then store or fail. */
int batch_pass_apply(struct pass *p, struct store *st, int store_rows, const char *fail_reason)
{
    p->st = st;
    p->mode = store_rows ? PASS_STORE : PASS_FAIL;
    p->now_ms = clock_wall_ms();
    clock_rfc3339(p->now_ms, p->received_at, sizeof p->received_at);
    if (store_batch_clear(st, p->ds->name, p->b->id) < 0)
        return -1;
    if (batch_scan(p) < 0)
        return -1;
    p->b->total = p->total;
    p->b->invalid = p->invalid;
    p->b->inserted = p->inserted;
    p->b->duplicate = p->duplicate;
    if (store_batch_set_counts(st, p->b) < 0)
        return -1;
    return store_batch_set_status(st, p->b->id, store_rows ? "completed" : "failed",
                                  store_rows ? NULL : fail_reason, clock_wall_ms());
}

/* The header of the batch file at path, read into p->map. */
static int header_only(struct pass *p, const char *path)
{
    struct batch b = {.path = (char *)path};
    p->b = &b;
    int rc = batch_pass_header(p);
    p->b = NULL;
    return rc;
}

struct one_record {
    struct pass *p;
    json_t *row, *extra;
    struct row_errors *errs;
    int seen;
};

static int on_retry_record(void *arg, const struct csv_record *rec)
{
    struct one_record *o = arg;
    if (o->seen++)
        return 0; /* one record only */
    o->row = to_row(o->p, rec, o->errs, &o->extra);
    return 0;
}

json_t *batch_retry_row(const struct sluice_config *cfg, const struct dataset_config *ds,
                        const char *path, const char *raw, size_t len, struct row_errors *errs,
                        json_t **extra)
{
    struct pass *p = batch_pass_new(cfg, ds, NULL);
    struct one_record o = {.p = p, .errs = errs};
    *extra = NULL;
    if (!p)
        return NULL;
    if (header_only(p, path) < 0) {
        row_errors_add(errs, ERR_MALFORMED_CSV, NULL, "%s", batch_pass_reason(p));
        batch_pass_destroy(p);
        return NULL;
    }
    struct csv_reader *r =
        csv_reader_create((size_t)cfg->limits.max_row_bytes, on_retry_record, &o);
    if (r) {
        csv_feed(r, raw, len);
        csv_feed(r, "\n", 1);
        csv_finish(r);
    }
    csv_reader_destroy(r);
    if (!o.seen && !errs->n)
        row_errors_add(errs, ERR_MALFORMED_CSV, NULL, "the stored record is empty");
    batch_pass_destroy(p);
    *extra = o.extra;
    return o.row;
}
