/*
 * process.c - what a worker does with one claimed batch (see batch.h):
 * staging (open the file, map the header to the schema), then ONE pass that
 * validates, converts and stores: the worker reads and validates the rows and
 * hands them through a bounded row queue (rowqueue.h) to a writer job that
 * inserts them as they come, with the row errors and DLQ entries, inside one
 * transaction. At the end the writer job decides the threshold: under it, the
 * counts and `completed` are written and everything commits at once; over it,
 * the job rolls back and a second writer job records the row errors and
 * `failed` (that scan runs only for failing batches).
 *
 * Why one pass: validating first and storing after read, parsed and validated
 * every row twice and kept the writer (and so every other write) waiting for
 * the whole of it; streaming uses both cores and holds the writer only while
 * it inserts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "batch/pass_internal.h"
#include "batch/process.h"
#include "batch/rowqueue.h"
#include "ingest/cells.h"
#include "ingest/csv.h"
#include "ingest/ingest.h"
#include "schema/schema.h"
#include "writer/writer.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/jsontext.h"
#include "util/log.h"
#include "util/mem.h"

#define CHUNK (64 * 1024)

#define TICK_RECORDS 50000

/* The pass fails for want of memory. */
void pass_no_memory(struct pass *p)
{
    snprintf(p->reason, sizeof p->reason, "out of memory");
    p->oom = 1;
}

static void colmap_release(struct colmap *m)
{
    for (size_t i = 0; m->names && i < m->ncols; i++) /* names is NULL when out of memory */
        free(m->names[i]);
    free(m->names);
    free(m->field);
    memset(m, 0, sizeof *m);
}

/* The header: its names kept, each column mapped to its field (cells_map_header). */
static int read_header(struct pass *p, const struct csv_record *rec)
{
    if (rec->error) {
        snprintf(p->reason, sizeof p->reason, "the header row is unreadable: %s",
                 rec->error_message ? rec->error_message : err_name(rec->error));
        return -1;
    }
    struct colmap *m = &p->map;
    m->ncols = rec->nfields;
    m->names = sl_calloc(rec->nfields ? rec->nfields : 1, sizeof *m->names);
    m->field = sl_calloc(rec->nfields ? rec->nfields : 1, sizeof *m->field);
    if (!m->names || !m->field) {
        pass_no_memory(p);
        return -1;
    }
    for (size_t i = 0; i < rec->nfields; i++)
        if (!(m->names[i] = sl_strndup(rec->fields[i].data, rec->fields[i].len))) {
            pass_no_memory(p);
            return -1;
        }
    if (cells_map_header(p->ds->schema, rec->fields, rec->nfields, m->field, p->reason,
                         sizeof p->reason) < 0)
        return -1;
    free(p->unknown);
    p->unknown = sl_calloc(m->ncols ? m->ncols : 1, sizeof *p->unknown);
    p->nunknown = 0;
    if (!p->unknown) {
        pass_no_memory(p);
        return -1;
    }
    for (size_t i = 0; i < m->ncols; i++)
        if (m->field[i] < 0)
            p->unknown[p->nunknown++] = m->names[i];
    return 0;
}

/* The undeclared columns of a record as a JSON object of their text as written, or NULL when
 * there are none (new reference). */
static json_t *extra_columns(const struct pass *p, const struct csv_record *rec)
{
    if (!p->nunknown)
        return NULL;
    json_t *x = json_object();
    for (size_t i = 0; x && i < rec->nfields; i++)
        if (p->map.field[i] < 0 &&
            json_object_set_new(x, p->map.names[i],
                                json_stringn(rec->fields[i].data, rec->fields[i].len)) != 0) {
            json_decref(x); /* out of memory */
            x = NULL;
        }
    return x;
}

/* A record's cells as the values of p->vals (schema order), validated without building a JSON
 * object. Returns the number of errors appended to errs (0: valid). */
static size_t record_values(struct pass *p, const struct csv_record *rec, struct row_errors *errs)
{
    const struct schema *s = p->ds->schema;
    if (rec->error) {
        row_errors_add(errs, rec->error, NULL, "%s",
                       rec->error_message ? rec->error_message : err_message(rec->error));
        return errs->n + errs->lost;
    }
    if (rec->nfields != p->map.ncols) {
        row_errors_add(errs, ERR_COLUMN_COUNT_MISMATCH, NULL,
                       "line %lld: %zu fields, the header has %zu", (long long)rec->line,
                       rec->nfields, p->map.ncols);
        return errs->n + errs->lost;
    }
    size_t nf = schema_nfields(s);
    for (size_t f = 0; f < nf; f++)
        p->vals[f].kind = VAL_ABSENT;
    for (size_t i = 0; i < rec->nfields; i++) {
        int f = p->map.field[i];
        if (f >= 0)
            cells_value(p->ds, (size_t)f, rec->fields[i].data, rec->fields[i].len, &p->vals[f],
                        errs);
    }
    schema_validate_values(s, p->vals, (const char *const *)p->unknown, p->nunknown, errs);
    return errs->n + errs->lost;
}

/* Validate one data record; returns the row as JSON, keyed by field name (valid), or NULL
 * with errs filled. *extra: the undeclared columns (or NULL). */
static json_t *to_row(struct pass *p, const struct csv_record *rec, struct row_errors *errs,
                      json_t **extra)
{
    *extra = NULL;
    if (record_values(p, rec, errs) > 0)
        return NULL;
    const struct schema *s = p->ds->schema;
    json_t *row = json_object();
    for (size_t f = 0; row && f < schema_nfields(s); f++) {
        if (p->vals[f].kind == VAL_ABSENT)
            continue;
        json_t *v = row_value_json(&p->vals[f]);
        if (!v || json_object_set_new_nocheck(row, schema_field_name(s, f), v) != 0) {
            json_decref(row); /* out of memory */
            row = NULL;
        }
    }
    if (row && schema_allows_extra(s) && p->nunknown && !(*extra = extra_columns(p, rec))) {
        json_decref(row);
        row = NULL;
    }
    if (!row)
        errs->lost++; /* out of memory: not the record's fault */
    return row;
}

/* A DLQ entry for a row; errors_json and codes when already made, else from errs. */
static int add_dlq(struct pass *p, const char *raw, size_t raw_len, int64_t rowno,
                   const struct row_errors *errs, const char *errors_json, const char *codes)
{
    char *etxt = NULL, *ctxt = NULL;
    if (!errors_json || !codes) {
        json_t *ej = row_errors_to_json(errs);
        etxt = jsontext_dump(ej, JSON_COMPACT | JSON_PRESERVE_ORDER);
        ctxt = ingest_codes(errs);
        json_decref(ej);
    }
    struct dlq_new d = {.dataset = p->ds->name,
                        .ingest_id = p->b->id,
                        .source = p->b->source ? p->b->source : "upload",
                        .row = rowno,
                        .payload = raw,
                        .payload_len = raw_len,
                        .errors_json = etxt ? etxt : errors_json,
                        .codes = ctxt ? ctxt : codes,
                        .received_ms = p->now_ms,
                        .batch_id = p->b->id,
                        .staged = p->sliced};
    int rc = (d.errors_json && d.codes) ? store_dlq_add(p->st, &d, NULL) : -1;
    free(etxt);
    free(ctxt);
    return rc;
}

static int add_errors(struct pass *p, int64_t rowno, const struct row_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        enum sluice_err c = errs->v[i].code;
        if (!p->code_count[c]++ && errs->v[i].message)
            p->code_sample[c] = sl_strdup(errs->v[i].message);
        struct batch_error_new e = {rowno, err_name(errs->v[i].code), errs->v[i].field,
                                    errs->v[i].message ? errs->v[i].message : ""};
        if (store_batch_errors_add(p->st, p->b->id, &e, 1, p->now_ms) < 0)
            return -1;
    }
    return 0;
}

/* The streamed pass's to_row(): the record as values in p->vals. 0 when valid (*extra_txt:
 * the undeclared columns as JSON text when the schema keeps them, else NULL), else the number
 * of errors in errs. */
static size_t to_values(struct pass *p, const struct csv_record *rec, struct row_errors *errs,
                        char **extra_txt)
{
    *extra_txt = NULL;
    size_t n = record_values(p, rec, errs);
    if (n == 0 && schema_allows_extra(p->ds->schema) && p->nunknown) {
        json_t *x = extra_columns(p, rec);
        *extra_txt = x ? jsontext_dump(x, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(x);
        if (!*extra_txt) { /* out of memory: the columns to keep are not lost silently */
            errs->lost++;
            n++;
        }
    }
    return n;
}

/* PASS_STREAM: one record to the row queue, valid or not. Non-zero stops the scan. */
static int stream_record(struct pass *p, const struct csv_record *rec, int64_t rowno)
{
    struct row_errors errs = {0};
    char *extra_txt;
    size_t bad = to_values(p, rec, &errs, &extra_txt);
    char *ejson = NULL, *codes = NULL;
    if (errs.lost) { /* invalid, but not recorded why: the pass fails */
        pass_no_memory(p);
        free(extra_txt);
        row_errors_release(&errs);
        return -1;
    }
    if (bad) { /* the DLQ entry's text, made here rather than on the busier writer */
        p->rejected_by_code[errs.v[0].code]++;
        json_t *ej = row_errors_to_json(&errs);
        ejson = jsontext_dump(ej, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(ej);
        codes = ingest_codes(&errs);
    }
    int rc = rowqueue_put(p->rq, rowno, rec->raw, rec->raw_len, bad ? NULL : p->vals, &errs,
                          extra_txt, ejson, codes);
    row_errors_release(&errs);
    return rc < 0 ? 4 : 0;
}

/* PASS_FAIL (on the writer): record the row errors of a batch that is failing. */
static int fail_record(struct pass *p, const struct csv_record *rec, int64_t rowno)
{
    struct row_errors errs = {0};
    char *extra;
    int rc = 0;
    p->total++;
    if (to_values(p, rec, &errs, &extra)) {
        p->invalid++;
        if (errs.lost)
            rc = -1; /* out of memory */
        else if (add_errors(p, rowno, &errs) < 0)
            rc = 2;
    }
    free(extra);
    row_errors_release(&errs);
    return rc;
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
    if (p->mode == PASS_FAIL)
        return fail_record(p, rec, rowno);
    if (p->tick && rowno % TICK_RECORDS == 0 && p->tick(p->tick_arg)) {
        p->stopped = 1;
        snprintf(p->reason, sizeof p->reason, "stopped: the server is shutting down");
        return 5;
    }
    return stream_record(p, rec, rowno);
}

static int batch_scan(struct pass *p);

void pass_codes_reset(struct pass *p)
{
    for (int c = 0; c < ERR__COUNT; c++) {
        free(p->code_sample[c]);
        p->code_sample[c] = NULL;
        p->code_count[c] = 0;
    }
}

/* The batch's counts and error codes into the rollups, at done_ms (its finished time), as
 * docs/api.md defines them: a duplicate refused with DUPLICATE_KEY is rejected there (it is
 * in the DLQ, as a pushed one is); a failed batch stores nothing and counts its rows as
 * received, its invalid rows as rejected. */
int pass_add_rollup(struct pass *p, int failed, int64_t done_ms)
{
    struct rollup_code codes[ERR__COUNT];
    size_t n = 0;
    for (int c = 0; c < ERR__COUNT; c++)
        if (p->code_count[c])
            codes[n++] = (struct rollup_code){err_name((enum sluice_err)c), p->code_count[c],
                                              p->code_sample[c], 1, 0};
    struct rollup_delta d = {.dataset = p->ds->name,
                             .at_ms = done_ms,
                             .received = p->b->total,
                             .accepted = failed ? 0 : p->b->inserted,
                             .rejected = p->b->invalid + (failed ? 0 : p->refused),
                             .duplicate = failed ? 0 : p->b->duplicate - p->refused,
                             .batches = 1,
                             .batches_failed = failed,
                             .codes = codes,
                             .ncodes = n,
                             .batch_id = p->b->id};
    return store_rollup_add(p->st, &d);
}

/* On the writer: store one row that came through the queue. */
int pass_store_one(struct pass *p, struct rq_row *r, const struct row_meta *m)
{
    if (r->errs.n) {
        p->invalid++;
        return add_errors(p, r->rowno, &r->errs) < 0 ||
                       add_dlq(p, r->raw, r->raw_len, r->rowno, &r->errs, r->errors_json,
                               r->codes) < 0
                   ? -1
                   : 0;
    }
    enum row_result res;
    if (store_row_put_values(p->st, p->ds, m, r->vals, r->extra, &res) < 0)
        return -1;
    if (res != ROW_DUPLICATE) {
        p->inserted++;
        return 0;
    }
    p->duplicate++;
    if (p->ds->on_duplicate != ON_DUP_REJECT)
        return 0;
    p->refused++;
    schema_key_duplicate(p->ds->schema, &p->ds->key_fields, p->ds->key, NULL, r->vals, &r->errs);
    if (r->errs.lost) {
        snprintf(p->job_reason, sizeof p->job_reason, "out of memory");
        return -1;
    }
    return add_errors(p, r->rowno, &r->errs) < 0 ||
                   add_dlq(p, r->raw, r->raw_len, r->rowno, &r->errs, NULL, NULL) < 0
               ? -1
               : 0;
}

struct stream_job {
    struct wjob job;
    struct pass *p;
};

/* The writer job of the pass: store rows as the worker queues them, then decide. */
static int stream_apply(struct wjob *job, struct store *st)
{
    struct pass *p = ((struct stream_job *)job)->p;
    p->st = st;
    p->now_ms = clock_wall_ms();
    clock_rfc3339(p->now_ms, p->received_at, sizeof p->received_at);
    int64_t total = 0;
    p->invalid = p->inserted = p->duplicate = p->refused = 0;
    struct row_meta m = {p->b->id, p->b->source ? p->b->source : "upload", p->received_at,
                         p->b->id};
    pass_codes_reset(p);
    int rc = store_batch_clear(st, p->ds->name, p->b->id, 0, NULL);
    struct rq_chunk *c;
    while (rc == 0 && (c = rowqueue_take(p->rq)) != NULL) {
        for (size_t i = 0; rc == 0 && i < c->n; i++) {
            total++;
            rc = pass_store_one(p, &c->rows[i], &m);
        }
        rowqueue_give_back(p->rq, c);
    }
    if (rc < 0) {
        if (!p->job_reason[0]) /* else store_one() said why */
            snprintf(p->job_reason, sizeof p->job_reason, "the store failed: %s", store_errmsg(st));
        p->store_failed = store_conn_lost(st) || store_busy(st);
        rowqueue_abort(p->rq);
        return -1;
    }
    if (rowqueue_failed(p->rq))
        return -1; /* the worker's reason stands */
    /* Invalid rows by the validator's count: duplicates are not part of the error rate. */
    double pct = total ? 100.0 * (double)p->invalid / (double)total : 0;
    if (pct > p->b->error_threshold_percent) {
        p->over_threshold = 1;
        snprintf(p->job_reason, sizeof p->job_reason, "Error rate %.1f%% > %.1f%% threshold", pct,
                 p->b->error_threshold_percent);
        return -1;
    }
    p->b->total = total;
    p->b->invalid = p->invalid;
    p->b->inserted = p->inserted;
    p->b->duplicate = p->duplicate;
    int64_t done = clock_wall_ms();
    /* Still ours? On PostgreSQL this also locks the batch's row until COMMIT, so no other
     * node can claim it between this check and the commit: the rows are stored once. */
    int held = p->b->worker ? store_batch_heartbeat(st, p->b->id, p->b->worker, done,
                                                    p->lease_ms ? p->lease_ms : 60000)
                            : 0;
    if (held == 1) {
        p->lost = 1;
        snprintf(p->job_reason, sizeof p->job_reason,
                 "another worker took the batch over (this worker's lease expired)");
        return -1;
    }
    if (held < 0 || store_batch_set_counts(st, p->b) < 0 || pass_add_rollup(p, 0, done) < 0 ||
        store_batch_set_status(st, p->b->id, "completed", NULL, done) < 0) {
        snprintf(p->job_reason, sizeof p->job_reason, "the store failed: %s", store_errmsg(st));
        p->store_failed = store_conn_lost(st) || store_busy(st);
        return -1;
    }
    return 0;
}

/* The writer will not run the job (the store is away): the worker stops producing. */
static void stream_skip(struct wjob *job)
{
    struct pass *p = ((struct stream_job *)job)->p;
    snprintf(p->job_reason, sizeof p->job_reason, "the store is unavailable");
    p->store_failed = 1;
    rowqueue_abort(p->rq);
}

/* The worker's side of the pass, while the writer job runs. */
void pass_produce(void *arg)
{
    struct pass *p = arg;
    int rc = batch_scan(p);
    rowqueue_finish(p->rq, rc != 0);
}

/* Stream the batch's file through the CSV reader in mode. 0, or -1 with p->reason. */
static int batch_scan(struct pass *p)
{
    FILE *f = store_file_open(p->files, p->b, p->cfg->data_dir);
    if (!f) {
        snprintf(p->reason, sizeof p->reason, "the batch file cannot be read: %s",
                 store_errmsg(p->files));
        p->failed_io = 1;
        return -1;
    }
    colmap_release(&p->map);
    struct csv_reader *r = csv_reader_create((size_t)p->cfg->limits.max_row_bytes, on_record, p);
    char *chunk = sl_malloc(CHUNK);
    int rc = (r && chunk) ? 0 : -1;
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, CHUNK, f)) > 0)
        rc = csv_feed(r, chunk, n);
    if (rc == 0 && ferror(f)) {
        const char *why = store_errmsg(p->files);
        snprintf(p->reason, sizeof p->reason, "reading the batch file: %s",
                 why[0] ? why : strerror(errno));
        p->failed_io = 1;
        p->store_failed = store_conn_lost(p->files);
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
        pass_no_memory(p);
    free(chunk);
    csv_reader_destroy(r);
    fclose(f);
    return rc == 0 ? 0 : -1;
}

struct pass *batch_pass_new(const struct sluice_config *cfg, const struct dataset_config *ds,
                            struct batch *b, struct store *files)
{
    struct pass *p = sl_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cfg = cfg;
    p->ds = ds;
    p->b = b;
    p->files = files;
    size_t nf = schema_nfields(ds->schema);
    if (!(p->vals = sl_calloc(nf ? nf : 1, sizeof *p->vals))) {
        free(p);
        return NULL;
    }
    return p;
}

int batch_pass_stopped(const struct pass *p)
{
    return p->stopped;
}

void batch_pass_set_lease(struct pass *p, int64_t lease_ms)
{
    p->lease_ms = lease_ms;
}

int batch_pass_lost(const struct pass *p)
{
    return p->lost;
}

int batch_pass_store_failed(const struct pass *p)
{
    return p->store_failed;
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
    free(p->unknown);
    free(p->vals);
    pass_codes_reset(p);
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

int batch_pass_header(struct pass *p)
{
    p->mode = PASS_HEADER;
    p->st = NULL;
    return batch_scan(p);
}

int pass_stream_begin(struct pass *p, int chunks)
{
    p->mode = PASS_STREAM;
    p->st = NULL;
    p->over_threshold = 0;
    p->reason[0] = p->job_reason[0] = 0;
    p->lost = p->store_failed = p->oom = 0;
    memset(p->rejected_by_code, 0, sizeof p->rejected_by_code);
    p->rq = rowqueue_new(schema_nfields(p->ds->schema), chunks);
    if (!p->rq)
        pass_no_memory(p);
    return p->rq ? 0 : -1;
}

int batch_pass_run(struct pass *p, struct writer *w)
{
    int rc = -1;
    if (pass_stream_begin(p, RQ_CHUNKS) == 0) {
        struct stream_job j = {.job = {.nrows = 1, .apply = stream_apply, .skip = stream_skip},
                               .p = p};
        rc = writer_run_with(w, &j.job, pass_produce, p);
        /* The job's work was done but its COMMIT failed, or may have committed. */
        if (rc == WRITER_UNKNOWN || (rc < 0 && j.job.applied == 0))
            p->store_failed = 1;
        if (rc < 0 && p->over_threshold) {
            snprintf(p->reason, sizeof p->reason, "%s", p->job_reason);
            rc = 1;
        } else if (rc < 0 && !p->reason[0]) {
            snprintf(p->reason, sizeof p->reason, "%s",
                     p->job_reason[0] ? p->job_reason : "the store failed");
        }
    }
    rowqueue_free(p->rq);
    p->rq = NULL;
    return rc;
}

int batch_pass_apply_fail(struct pass *p, struct store *st, const char *fail_reason)
{
    p->st = st;
    p->mode = PASS_FAIL;
    p->now_ms = clock_wall_ms();
    clock_rfc3339(p->now_ms, p->received_at, sizeof p->received_at);
    p->total = p->invalid = p->inserted = p->duplicate = p->refused = 0;
    pass_codes_reset(p);
    if (store_batch_clear(st, p->ds->name, p->b->id, 0, NULL) < 0)
        return -1;
    if (batch_scan(p) < 0)
        return -1;
    p->b->total = p->total;
    p->b->invalid = p->invalid;
    p->b->inserted = 0;
    p->b->duplicate = 0;
    int64_t done = clock_wall_ms();
    if (store_batch_set_counts(st, p->b) < 0 || pass_add_rollup(p, 1, done) < 0)
        return -1;
    return store_batch_set_status(st, p->b->id, "failed", fail_reason, done);
}

/* The header of batch b's file, read into p->map (the pass only reads b). */
static int header_only(struct pass *p, const struct batch *b)
{
    p->b = (struct batch *)b;
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
                        struct store *st, const struct batch *b, const char *raw, size_t len,
                        struct row_errors *errs, json_t **extra)
{
    struct pass *p = batch_pass_new(cfg, ds, NULL, st);
    struct one_record o = {.p = p, .errs = errs};
    *extra = NULL;
    if (!p)
        return NULL;
    if (header_only(p, b) < 0) {
        if (p->oom)
            errs->lost++; /* not the record's fault */
        else
            row_errors_add(errs, ERR_MALFORMED_CSV, NULL, "%s", batch_pass_reason(p));
        batch_pass_destroy(p);
        return NULL;
    }
    struct csv_reader *r =
        csv_reader_create((size_t)cfg->limits.max_row_bytes, on_retry_record, &o);
    if (r) {
        csv_feed(r, raw, len);
        csv_feed(r, "\n", 1);
        if (csv_finish(r) < 0) /* out of memory */
            errs->lost++;
    } else {
        errs->lost++;
    }
    csv_reader_destroy(r);
    if (!o.seen && !errs->n && !errs->lost)
        row_errors_add(errs, ERR_MALFORMED_CSV, NULL, "the stored record is empty");
    batch_pass_destroy(p);
    *extra = o.extra;
    return o.row;
}
