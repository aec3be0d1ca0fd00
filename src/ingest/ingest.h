/*
 * ingest.h - one push-ingest request, from body to stored rows.
 *
 *   ingest_prepare()  on the HTTP loop: cut the body into rows, parse and
 *                     validate each one (all the CPU work, off the writer);
 *   ingest_apply()    on the writer, inside the group transaction:
 *                     idempotency, key conflicts, rows, DLQ entries and the
 *                     answer, all in the same transaction;
 *   the caller sends in->status / in->response once the commit is durable.
 */
#ifndef SLUICE_INGEST_INGEST_H
#define SLUICE_INGEST_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "schema/schema.h"
#include "writer/writer.h"

enum row_outcome { ROW_PENDING = 0, ROW_STORED, ROW_REJECTED, ROW_SKIPPED };

struct ingest_row {
    int64_t row;     /* 1-based */
    size_t off, len; /* the row's bytes in the body */
    json_t *obj;     /* parsed and valid, or NULL */
    json_t *extra;   /* undeclared fields to keep, or NULL */
    struct row_errors errs;
    enum row_outcome outcome;
};

enum ingest_format { INGEST_JSON, INGEST_NDJSON };

struct ingest {
    struct wjob job;                 /* job.apply = ingest_apply; the caller sets job.deliver */
    const struct dataset_config *ds; /* borrowed; the caller keeps its catalog alive */
    char *body;                      /* owned */
    size_t body_len;
    char ingest_id[40];
    char *source; /* owned */
    char received_at[32];
    int64_t received_ms;
    char *idem_key; /* owned, or NULL */
    int64_t idem_ttl_ms;
    char body_sha256[65];
    struct ingest_row *rows; /* owned */
    size_t nrows;
    size_t max_errors;
    /* Results, set by ingest_apply(). */
    int status;     /* 200 | 207 | 422 | 409 */
    char *response; /* owned JSON text */
    int replayed;   /* the answer is the stored one of an earlier request */
    int busy;       /* the job failed on a key a batch's open transaction holds (store_busy) */
    size_t accepted, rejected, duplicates;
    unsigned long long rejected_by_code[ERR__COUNT];
};

/*
 * Fill in and prepare an ingest. body is taken. Returns SLUICE_OK, or a
 * request-level error (MALFORMED_JSON, INVALID_UTF8, NESTING_TOO_DEEP,
 * BAD_REQUEST) with a message; the ingest must be released either way.
 */
enum sluice_err ingest_prepare(struct ingest *in, const struct dataset_config *ds,
                               const struct sluice_config *cfg, enum ingest_format fmt, char *body,
                               size_t body_len, const char *source, const char *idem_key, char *msg,
                               size_t msgcap);

/* The writer job (see writer.h). */
int ingest_apply(struct wjob *job, struct store *st);

/* Free everything the ingest owns (not the struct itself). */
void ingest_release(struct ingest *in);

/* A fresh id like "ing_01HF3K..." (time-ordered, 26 chars after the prefix). */
void ingest_new_id(const char *prefix, char *out, size_t cap);

/* ",CODE1,CODE2," of the errors, for the DLQ's error_code filter. Caller frees. */
char *ingest_codes(const struct row_errors *e);

#endif
