/*
 * h_batches.c - CSV batch routes: the streamed upload, the batch record and
 * its history, row errors (JSON or CSV), and the operations on a batch
 * (threshold, reset, fail, reprocess, delete with a dry run).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "batch/batch.h"
#include "http/handlers.h"
#include "http/multipart.h"
#include "http/params.h"
#include "http/router.h"
#include "ingest/ingest.h"
#include "writer/writer.h"
#include "config/catalog.h"
#include "store/store.h"
#include "store/store_pool.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/hex.h"
#include "util/mem.h"

/* ---- upload ------------------------------------------------------------- */

struct upload {
    int fd;
    EVP_MD_CTX *md;
    /* multipart/form-data: the parser, the part being read, the small fields */
    struct multipart *mp;
    enum { PART_SKIP, PART_FILE, PART_FIELD } part;
    char field_name[64];
    struct buf field;
    int have_file;
    char *form_source, *form_threshold;
    char spool_err[256];
    char *idem_key; /* Idempotency-Key, or NULL */
    int status;     /* the answer: 202, or a replay's / 409's status */
    char *response; /* its body */
    int replayed;
    char tmp[PATH_MAX]; /* the spool, until the store keeps it */
    char *data_dir;     /* as it was when the upload began */
    struct batch b;     /* the record to add */
    /* completion */
    struct wjob job;
    uv_work_t work;
    struct http_conn *conn;
    const struct http_app *app;
    int rc;
    char err[256];
};

static void upload_destroy(struct upload *u)
{
    multipart_destroy(u->mp);
    free(u->idem_key);
    free(u->response);
    buf_release(&u->field);
    free(u->form_source);
    free(u->form_threshold);
    if (u->fd >= 0)
        close(u->fd);
    if (u->tmp[0])
        unlink(u->tmp);
    EVP_MD_CTX_free(u->md);
    batch_release(&u->b);
    free(u->data_dir);
    free(u);
}

static void sink_abort(void *state)
{
    upload_destroy(state);
}

static int parse_pct(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= 0 && v <= 100))
        return -1;
    *out = v;
    return 0;
}

/* A Content-Type to keep with the batch and answer its download with: printable ASCII only
 * (it goes into a header again), at most 200 bytes; NULL otherwise. */
static char *clean_ctype(const char *ct)
{
    size_t n = ct ? strlen(ct) : 0;
    for (size_t i = 0; i < n; i++)
        if (ct[i] < 0x20 || ct[i] > 0x7e)
            return NULL;
    return n && n <= 200 ? sl_strdup(ct) : NULL;
}

static const struct multipart_cb mp_cb; /* below */

static void *sink_open(struct http_conn *c, struct http_request *r, enum sluice_err *code,
                       char *msg, size_t cap)
{
    const struct http_app *app = http_conn_app(c);
    struct catalog *cat = catalog_get(app->catalogs);
    struct upload *u = NULL;
    const struct dataset_config *ds = config_dataset(&cat->cfg, r->params[0]);
    char v[512];
    if (http_params_check(r, code, msg, cap) < 0) /* before the body is read */
        goto fail;
    if (!ds) {
        *code = ERR_DATASET_NOT_FOUND;
        snprintf(msg, cap, "no dataset named '%s'", r->params[0]);
        goto fail;
    }
    const char *ct = http_header(r, "content-type");
    size_t ctn = ct ? strcspn(ct, ";") : 0;
    while (ctn && ct[ctn - 1] == ' ')
        ctn--;
    int multipart = ct && ctn == 19 && !strncasecmp(ct, "multipart/form-data", 19);
    if (!ct || !(multipart || (ctn == 8 && !strncasecmp(ct, "text/csv", 8)) ||
                 (ctn == 24 && !strncasecmp(ct, "application/octet-stream", 24)))) {
        *code = ERR_UNSUPPORTED_MEDIA_TYPE;
        snprintf(msg, cap,
                 "upload the file as the body (Content-Type: text/csv) or as the 'file' part "
                 "of multipart/form-data");
        goto fail;
    }
    u = sl_calloc(1, sizeof *u);
    if (!u) {
        snprintf(msg, cap, "out of memory");
        goto fail;
    }
    u->fd = -1;
    buf_init(&u->field, 1024);
    const char *idem = http_header(r, "idempotency-key");
    if (idem && (!*idem || strlen(idem) > 255)) {
        *code = ERR_INVALID_PARAMETER;
        snprintf(msg, cap, "Idempotency-Key must be 1 to 255 characters");
        goto fail;
    }
    u->idem_key = idem ? sl_strdup(idem) : NULL;
    if (multipart) {
        char e[256];
        u->mp = multipart_create(ct, 8192, &mp_cb, u, e, sizeof e);
        if (!u->mp) {
            *code = ERR_BAD_REQUEST;
            snprintf(msg, cap, "%s", e);
            goto fail;
        }
    }
    u->b.dataset = sl_strdup(ds->name);
    u->b.error_threshold_percent = ds->error_threshold_percent;
    if (!multipart) /* multipart: the file part's, when it comes */
        u->b.content_type = clean_ctype(ct);
    if (http_query(r, "source", v, sizeof v) == 1 && v[0])
        u->b.source = sl_strdup(v);
    if (http_query(r, "filename", v, sizeof v) == 1 && v[0])
        u->b.filename = sl_strdup(v);
    if (http_query(r, "error_threshold_percent", v, sizeof v) == 1 &&
        parse_pct(v, &u->b.error_threshold_percent) < 0) {
        *code = ERR_INVALID_PARAMETER;
        snprintf(msg, cap, "error_threshold_percent must be a number from 0 to 100");
        goto fail;
    }
    char id[40];
    ingest_new_id("bat", id, sizeof id);
    u->b.id = sl_strdup(id);
    u->data_dir = sl_strdup(cat->cfg.data_dir);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/batches", cat->cfg.data_dir);
    mkdir(dir, 0755);
    batch_spool_path(cat->cfg.data_dir, id, u->tmp, sizeof u->tmp);
    u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    u->md = EVP_MD_CTX_new();
    if (u->fd < 0 || !u->md || EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1) {
        *code = ERR_UNAVAILABLE;
        snprintf(msg, cap, "cannot create %s: %s", u->tmp, strerror(errno));
        goto fail;
    }
    catalog_release(cat);
    return u;
fail:
    if (u)
        upload_destroy(u);
    catalog_release(cat);
    return NULL;
}

/* Append file bytes to the spool file and the hash. */
static int spool(struct upload *u, const char *data, size_t len, char *msg, size_t cap)
{
    EVP_DigestUpdate(u->md, data, len);
    u->b.bytes += (int64_t)len;
    while (len) {
        ssize_t w = write(u->fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(msg, cap, "writing the upload: %s", strerror(errno));
            return -1;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Only the base name, without control characters: it is shown, never used as a path. */
static char *clean_filename(const char *f)
{
    const char *base = strrchr(f, '/');
    const char *bs = strrchr(base ? base : f, '\\');
    base = bs ? bs + 1 : base ? base + 1 : f;
    char *out = sl_strdup(base);
    size_t o = 0;
    for (size_t i = 0; out && base[i]; i++)
        if ((unsigned char)base[i] >= 0x20 && base[i] != 0x7f)
            out[o++] = base[i];
    if (out)
        out[o] = 0;
    return out;
}

static int mp_begin(void *arg, const struct multipart_part *part)
{
    struct upload *u = arg;
    if (!strcmp(part->name, "file")) {
        if (u->have_file)
            return 2; /* one file per upload */
        u->have_file = 1;
        u->part = PART_FILE;
        if (part->filename && !u->b.filename)
            u->b.filename = clean_filename(part->filename);
        u->b.content_type = clean_ctype(part->content_type);
    } else if (!strcmp(part->name, "source") || !strcmp(part->name, "error_threshold_percent") ||
               !strcmp(part->name, "filename")) {
        u->part = PART_FIELD;
        snprintf(u->field_name, sizeof u->field_name, "%s", part->name);
        buf_reset(&u->field);
    } else {
        u->part = PART_SKIP; /* unknown fields are ignored */
    }
    return 0;
}

static int mp_data(void *arg, const char *data, size_t len)
{
    struct upload *u = arg;
    if (u->part == PART_FILE)
        return spool(u, data, len, u->spool_err, sizeof u->spool_err) < 0 ? 3 : 0;
    if (u->part == PART_FIELD && buf_append(&u->field, data, len) < 0)
        return 4; /* a field over 1 KiB */
    return 0;
}

static int mp_end(void *arg)
{
    struct upload *u = arg;
    if (u->part == PART_FIELD) {
        char *v = sl_strndup(u->field.data ? u->field.data : "", u->field.len);
        if (!strcmp(u->field_name, "source")) {
            free(u->form_source);
            u->form_source = v;
        } else if (!strcmp(u->field_name, "error_threshold_percent")) {
            free(u->form_threshold);
            u->form_threshold = v;
        } else {
            if (!u->b.filename)
                u->b.filename = clean_filename(v);
            free(v);
        }
    }
    u->part = PART_SKIP;
    return 0;
}

static const struct multipart_cb mp_cb = {mp_begin, mp_data, mp_end};

static int mp_fail(struct upload *u, int rc, enum sluice_err *code, char *msg, size_t cap)
{
    *code = ERR_BAD_REQUEST;
    if (rc == 2)
        snprintf(msg, cap, "more than one 'file' part");
    else if (rc == 3) {
        *code = ERR_UNAVAILABLE;
        snprintf(msg, cap, "%s", u->spool_err);
    } else if (rc == 4) {
        *code = ERR_INVALID_PARAMETER;
        snprintf(msg, cap, "a form field is longer than 1 KiB");
    } else
        snprintf(msg, cap, "%s", multipart_error(u->mp));
    return -1;
}

static int sink_write(void *state, const char *data, size_t len, enum sluice_err *code, char *msg,
                      size_t cap)
{
    struct upload *u = state;
    if (!u->mp)
        return spool(u, data, len, msg, cap);
    int rc = multipart_feed(u->mp, data, len);
    return rc ? mp_fail(u, rc, code, msg, cap) : 0;
}

const struct body_sink batch_upload_sink = {sink_open, sink_write, sink_abort};

/* On the writer: the idempotency check, the batch record and the answer, together. */
static int add_apply(struct wjob *job, struct store *st)
{
    struct upload *u = (struct upload *)((char *)job - offsetof(struct upload, job));
    /* Keys are kept per dataset; an upload's key lives beside the events' keys with a
     * prefix, so the same key string can be used for both without a clash. */
    char key[300];
    if (u->idem_key) {
        snprintf(key, sizeof key, "upload:%s", u->idem_key);
        struct idem_record rec = {0};
        int r = store_idem_get(st, u->b.dataset, key, &rec);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (!strcmp(rec.sha256, u->b.sha256)) {
                u->status = rec.status;
                u->response = rec.response;
                u->replayed = 1;
            } else {
                free(rec.response);
                u->status = 409;
            }
            return 0;
        }
    }
    if (store_batch_add(st, &u->b) < 0)
        return -1;
    json_t *j = json_pack("{s:s,s:s,s:I,s:s}", "batch_id", u->b.id, "status", "uploaded", "bytes",
                          (json_int_t)u->b.bytes, "sha256", u->b.sha256);
    u->response = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    u->status = 202;
    if (u->idem_key) {
        /* every record of the key is live here: an upload's key never expires */
        int r = store_idem_put(st, u->b.dataset, key, u->b.sha256, 202, u->response,
                               u->b.created_ms, INT64_MIN);
        if (r != 0) { /* 1: another node's upload with this key was recorded first */
            free(u->response);
            u->response = NULL;
            return r < 0 ? -1 : WJOB_AGAIN;
        }
    }
    return 0;
}

/*
 * Batch files are kept and dropped on the libuv thread pool, through a connection lent by
 * the service (app->files, store_pool.h): these threads own none, the writer's is busy
 * with its group transaction, and a loop's is read-only and its loop's alone. Keeping a
 * large file into PostgreSQL takes a while; it must hold neither the writer nor a loop.
 */
struct kept_file {
    const char *id, *path; /* borrowed; path as recorded, may be NULL */
};

/* Remove kept files whose batch record is gone or never came. One that cannot be removed
 * now is left to the sweep (service_purge): no record names it. */
static void drop_files(const struct http_app *app, const struct kept_file *f, size_t n)
{
    char err[256], m[600];
    struct store *st = n ? store_pool_take(app->files, err, sizeof err) : NULL;
    struct catalog *cat = st ? catalog_get(app->catalogs) : NULL;
    if (n && !st)
        log_warn("batch", "batch files left for the sweep", "\"files\":%zu,\"error\":\"%s\"", n,
                 log_json_str(m, sizeof m, err, (size_t)-1));
    int ok = 1;
    for (size_t i = 0; st && i < n; i++) {
        if (store_file_drop(st, f[i].id, f[i].path, cat->cfg.data_dir) == 0)
            continue;
        ok = 0;
        log_warn("batch", "batch file left for the sweep", "\"batch_id\":\"%s\",\"error\":\"%s\"",
                 f[i].id, log_json_str(m, sizeof m, store_errmsg(st), (size_t)-1));
    }
    if (cat)
        catalog_release(cat);
    store_pool_give(app->files, st, ok);
}

/* Have the store keep the spool (durably) as the batch's file; the record's path from it. */
static int keep_file(struct upload *u)
{
    char err[256];
    struct store *st = store_pool_take(u->app->files, err, sizeof err);
    if (!st) {
        snprintf(u->err, sizeof u->err, "storing the upload: %s", err);
        return -1;
    }
    int rc = store_file_keep(st, u->b.id, u->tmp, u->data_dir, &u->b.path);
    if (rc == 0)
        u->tmp[0] = 0; /* the store has it now */
    else
        snprintf(u->err, sizeof u->err, "storing the upload: %s", store_errmsg(st));
    store_pool_give(u->app->files, st, rc == 0);
    return rc;
}

/* On the thread pool: have the store keep the file durably, then record the batch (a crash
 * in between leaves a file no record names: the sweep removes it). */
static void upload_work(uv_work_t *w)
{
    struct upload *u = w->data;
    if (close(u->fd) < 0) {
        u->fd = -1;
        snprintf(u->err, sizeof u->err, "writing the upload: %s", strerror(errno));
        u->rc = -1;
        return;
    }
    u->fd = -1;
    if (keep_file(u) < 0) {
        u->rc = -1;
        return;
    }
    u->job.apply = add_apply;
    u->job.nrows = 1;
    u->b.created_ms = clock_wall_ms();
    struct kept_file f = {u->b.id, u->b.path};
    int rc = writer_run(u->app->writer, &u->job);
    if (rc == WRITER_UNKNOWN) { /* the batch may be recorded: its file stays (else the sweep) */
        u->rc = rc;
    } else if (rc < 0) {
        snprintf(u->err, sizeof u->err, "recording the batch failed");
        drop_files(u->app, &f, 1);
        u->rc = -1;
    } else if (u->replayed || u->status != 202) {
        drop_files(u->app, &f, 1); /* a repeat: the first upload's file is the batch's */
    }
}

static void upload_done(uv_work_t *w, int status)
{
    struct upload *u = w->data;
    if (status == 0 && u->rc == WRITER_UNKNOWN) {
        http_reply_error(u->conn, ERR_COMMIT_UNKNOWN,
                         "the connection to the store was lost while the batch was recorded: it "
                         "may be recorded or not; upload again with the same Idempotency-Key");
    } else if (status < 0 || u->rc < 0) {
        http_reply_error(u->conn, ERR_UNAVAILABLE, "%s",
                         u->err[0] ? u->err : "the upload could not be stored");
    } else if (u->status == 409) {
        http_reply_error(u->conn, ERR_IDEMPOTENCY_KEY_REUSED,
                         "this Idempotency-Key was used with a different file");
    } else {
        /* The batch the answer names (the first upload's, for a repeat). */
        json_error_t jerr;
        json_t *ans = json_loads(u->response, 0, &jerr);
        const char *id = json_string_value(json_object_get(ans, "batch_id"));
        char hdr[256];
        snprintf(hdr, sizeof hdr, "Location: /api/v1/batches/%s\r\n%s", id ? id : u->b.id,
                 u->replayed ? "Idempotent-Replayed: true\r\n" : "");
        if (!u->replayed)
            log_info("batch", "uploaded", "\"batch_id\":\"%s\",\"bytes\":%lld", u->b.id,
                     (long long)u->b.bytes);
        http_reply_json(u->conn, u->status, ans, hdr);
        batch_pool_kick(u->app->batches);
    }
    upload_destroy(u);
}

void h_batches_upload(struct http_conn *c, struct http_request *r)
{
    struct upload *u = r->sink_state;
    r->sink_state = NULL;
    if (u->mp) {
        char msg[256];
        enum sluice_err code;
        int rc = multipart_finish(u->mp);
        if (rc) {
            mp_fail(u, rc, &code, msg, sizeof msg);
            http_reply_error(c, code, "%s", msg);
            upload_destroy(u);
            return;
        }
        if (!u->have_file) {
            http_reply_error(c, ERR_INVALID_PARAMETER, "the form has no 'file' part");
            upload_destroy(u);
            return;
        }
        if (u->form_source && *u->form_source && !u->b.source) {
            u->b.source = u->form_source;
            u->form_source = NULL;
        }
        if (u->form_threshold && parse_pct(u->form_threshold, &u->b.error_threshold_percent) < 0) {
            http_reply_error(c, ERR_INVALID_PARAMETER,
                             "error_threshold_percent must be a number from 0 to 100");
            upload_destroy(u);
            return;
        }
    }
    unsigned char md[32];
    unsigned int n = 0;
    char hex[65];
    EVP_DigestFinal_ex(u->md, md, &n);
    hex_encode(md, 32, hex);
    u->b.sha256 = sl_strdup(hex);
    u->conn = c;
    u->app = http_conn_app(c);
    u->work.data = u;
    /* Keeping the file (an fsync, or a copy into the database) takes a while for a large
     * file: not on the loop. */
    if (uv_queue_work(http_conn_uv_loop(c), &u->work, upload_work, upload_done) < 0) {
        http_reply_error(c, ERR_INTERNAL, "cannot schedule the upload's sync");
        upload_destroy(u);
    }
}

/* ---- reading ------------------------------------------------------------ */

void h_batches_get(struct http_conn *c, struct http_request *r)
{
    struct batch b;
    if (h_get_batch(c, r->params[0], &b) != 0)
        return;
    json_t *hist = NULL;
    store_batch_history(http_conn_store(c), b.id, &hist);
    http_reply_json(c, 200, batch_json(&b, hist), NULL);
    json_decref(hist);
    batch_release(&b);
}

/* GET /api/v1/batches: newest first unless order=asc (params.c declares the parameters). */
void h_batches_list(struct http_conn *c, struct http_request *r)
{
    char status[HQ_MAX + 1], dataset[HQ_MAX + 1], source[HQ_MAX + 1], contains[HQ_MAX + 1],
        after[HQ_MAX + 1];
    long long limit = hq_int(r, "limit", 100);
    struct batch_filter f = {0};
    f.status = hq_str(r, "status", status, sizeof status);
    f.dataset = hq_str(r, "dataset", dataset, sizeof dataset);
    f.source = hq_str(r, "source", source, sizeof source);
    f.filename_contains = hq_str(r, "filename_contains", contains, sizeof contains);
    f.created_after_ms = hq_time(r, "created_after");
    f.created_before_ms = hq_time(r, "created_before");
    f.desc = hq_desc(r);
    f.after_id = hq_cursor(r, after, sizeof after) ? after : NULL;
    f.limit = (int)limit + 1;
    struct batch *v;
    size_t n;
    struct store *st = http_conn_store(c);
    if (store_batch_list(st, &f, &v, &n) < 0) {
        http_reply_error(c, ERR_UNAVAILABLE, "%s", store_errmsg(st));
        return;
    }
    json_t *items = json_array();
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(items, batch_json(&v[i], NULL));
    json_t *next = hq_cursor_json("batches", f.desc, n > shown ? v[shown - 1].id : NULL);
    for (size_t i = 0; i < n; i++)
        batch_release(&v[i]);
    free(v);
    http_reply_json(c, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next), NULL);
}

/* ---- operations --------------------------------------------------------- */

enum bop { BOP_RESET, BOP_REPROCESS, BOP_FAIL, BOP_THRESHOLD, BOP_DELETE, BOP_DELETE_BULK };

struct bop_req {
    struct wjob job;
    struct loop_msg msg;
    struct http_conn *conn;
    struct http_loop *loop;
    const struct http_app *app;
    enum bop op;
    char *id, *reason;
    double pct;
    int dry_run;
    /* results */
    int status;
    enum sluice_err err;
    char errmsg[300];
    json_t *result;
    int result_rc;
    /* BOP_DELETE_BULK: the filter (strings owned) */
    char *f_contains, *f_status, *f_dataset;
    int64_t f_created_after;
    /* deletes: the files to remove after the commit (strings owned), on the thread pool */
    struct kept_file *drops;
    size_t ndrops;
    uv_work_t work;
};

/* Forget the files noted for removal (an apply that runs again notes them again). */
static void drops_release(struct bop_req *q)
{
    for (size_t i = 0; i < q->ndrops; i++) {
        free((char *)q->drops[i].id);
        free((char *)q->drops[i].path);
    }
    free(q->drops);
    q->drops = NULL;
    q->ndrops = 0;
}

static void bop_destroy(struct bop_req *q)
{
    free(q->f_contains);
    free(q->f_status);
    free(q->f_dataset);
    drops_release(q);
    free(q->id);
    free(q->reason);
    json_decref(q->result);
    free(q);
}

static int refuse(struct bop_req *q, int status, enum sluice_err e, const char *fmt, const char *a,
                  const char *b)
{
    q->status = status;
    q->err = e;
    snprintf(q->errmsg, sizeof q->errmsg, fmt, a, b);
    return 0;
}

/* Note b's file for removal once the deletion is committed. */
static void drop_after(struct bop_req *q, const struct batch *b)
{
    struct kept_file *f = &q->drops[q->ndrops];
    f->id = sl_strdup(b->id);
    f->path = b->path ? sl_strdup(b->path) : NULL;
    if (f->id)
        q->ndrops++;
}

/* Delete every batch matching the filter (a dry run only says which). */
static int bulk_delete(struct bop_req *q, struct store *st)
{
    struct batch_filter f = {.status = q->f_status,
                             .dataset = q->f_dataset,
                             .filename_contains = q->f_contains,
                             .created_after_ms = q->f_created_after,
                             .limit = 100000};
    struct batch *v;
    size_t n;
    if (store_batch_list(st, &f, &v, &n) < 0)
        return -1;
    int64_t now = clock_wall_ms(), rows = 0, bytes = 0;
    json_t *deleted = json_array(), *skipped = json_array();
    int rc = 0;
    q->drops = sl_calloc(n ? n : 1, sizeof *q->drops);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (batch_status_active(v[i].status) && v[i].lease_until_ms > now) {
            json_array_append_new(skipped, json_string(v[i].id));
            continue;
        }
        json_array_append_new(deleted, json_string(v[i].id));
        bytes += v[i].bytes;
        int64_t nrows = 0;
        if (store_batch_clear(st, v[i].dataset, v[i].id, q->dry_run, &nrows) < 0) {
            rc = -1;
            continue;
        }
        rows += nrows;
        if (q->dry_run)
            continue;
        if (store_batch_delete(st, v[i].id) < 0)
            rc = -1;
        else if (q->drops)
            drop_after(q, &v[i]);
    }
    q->result = json_pack("{s:b,s:I,s:o,s:o,s:I,s:I}", "dry_run", q->dry_run, "matched",
                          (json_int_t)n, "deleted", deleted, "skipped_in_progress", skipped, "rows",
                          (json_int_t)rows, "file_bytes", (json_int_t)bytes);
    for (size_t i = 0; i < n; i++)
        batch_release(&v[i]);
    free(v);
    q->status = 200;
    return rc;
}

static int bop_apply(struct wjob *job, struct store *st)
{
    struct bop_req *q = (struct bop_req *)job;
    struct batch b;
    int64_t now = clock_wall_ms();
    drops_release(q);
    if (q->op == BOP_DELETE_BULK)
        return bulk_delete(q, st);
    int rc = store_batch_get(st, q->id, &b);
    if (rc < 0)
        return -1;
    if (rc == 1)
        return refuse(q, 404, ERR_NOT_FOUND, "no batch '%s'%s", q->id, "");
    /* A worker holds it while its lease runs. */
    int held = batch_status_active(b.status) && b.lease_until_ms > now;
    rc = 0;
    switch (q->op) {
    case BOP_RESET:
    case BOP_REPROCESS:
        if (held) {
            refuse(q, 409, ERR_CONFLICT, "batch %s is being processed (%s) by a live worker", b.id,
                   b.status);
            break;
        }
        if (q->op == BOP_RESET && strcmp(b.status, "uploaded") == 0) {
            refuse(q, 409, ERR_CONFLICT, "batch %s is already %s", b.id, b.status);
            break;
        }
        rc = store_batch_set_status(st, b.id, "uploaded",
                                    q->op == BOP_RESET ? "reset" : "reprocess", now);
        q->status = 200;
        break;
    case BOP_FAIL:
        if (!strcmp(b.status, "completed") || !strcmp(b.status, "failed")) {
            refuse(q, 409, ERR_CONFLICT, "batch %s is already %s", b.id, b.status);
            break;
        }
        rc = store_batch_set_status(st, b.id, "failed", q->reason, now);
        q->status = 200;
        break;
    case BOP_THRESHOLD:
        rc = store_batch_set_threshold(st, b.id, q->pct, now);
        q->status = 200;
        break;
    case BOP_DELETE_BULK: /* handled above */
        break;
    case BOP_DELETE:
        if (held) {
            refuse(q, 409, ERR_CONFLICT, "batch %s is being processed (%s) by a live worker", b.id,
                   b.status);
            break;
        }
        int64_t nrows = 0;
        if (store_batch_clear(st, b.dataset, b.id, q->dry_run, &nrows) < 0 ||
            (!q->dry_run && store_batch_delete(st, b.id) < 0)) {
            rc = -1;
            break;
        }
        /* "file": where it is kept when that is a path (SQLite); null when the file is in
         * the database (PostgreSQL) */
        q->result =
            json_pack("{s:s,s:b,s:I,s:I,s:s?,s:I}", "batch_id", b.id, "dry_run", q->dry_run, "rows",
                      (json_int_t)nrows, "row_errors_rows", (json_int_t)(b.invalid + b.duplicate),
                      "file", b.path, "file_bytes", (json_int_t)b.bytes);
        if (!q->dry_run && (q->drops = sl_calloc(1, sizeof *q->drops)))
            drop_after(q, &b);
        q->status = 200;
        break;
    }
    if (rc == 0 && q->status == 200 && q->op != BOP_DELETE) {
        batch_release(&b);
        if (store_batch_get(st, q->id, &b) == 0)
            q->result = batch_json(&b, NULL);
    }
    batch_release(&b);
    return rc;
}

static void bop_deliver(struct wjob *job, int result)
{
    struct bop_req *q = (struct bop_req *)job;
    q->result_rc = result;
    http_post(q->loop, &q->msg);
}

static void bop_reply(struct bop_req *q)
{
    if (q->result_rc < 0) {
        h_reply_not_committed(q->conn, q->result_rc);
    } else if (q->status != 200) {
        http_reply_error(q->conn, q->err, "%s", q->errmsg);
    } else {
        if (q->op == BOP_RESET || q->op == BOP_REPROCESS)
            batch_pool_kick(q->app->batches);
        http_reply_json(q->conn, 200, json_incref(q->result), NULL);
    }
    bop_destroy(q);
}

static void drop_work(uv_work_t *w)
{
    struct bop_req *q = w->data;
    drop_files(q->app, q->drops, q->ndrops);
}

static void drop_done(uv_work_t *w, int status)
{
    (void)status; /* not run: the files are left to the sweep */
    bop_reply(w->data);
}

/* On the loop, after the commit: the records are gone, now their files (the answer waits,
 * so that a deleted batch is gone whole when it comes). */
static void bop_answer(struct loop_msg *m)
{
    struct bop_req *q = (struct bop_req *)((char *)m - offsetof(struct bop_req, msg));
    q->work.data = q;
    if (q->result_rc == 0 && q->status == 200 && q->ndrops > 0 &&
        uv_queue_work(http_conn_uv_loop(q->conn), &q->work, drop_work, drop_done) == 0)
        return;
    bop_reply(q);
}

static struct bop_req *bop_new(struct http_conn *c, struct http_request *r, enum bop op,
                               const char *reason, double pct, int dry_run)
{
    struct bop_req *q = sl_calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->conn = c;
    q->loop = http_conn_loop(c);
    q->app = http_conn_app(c);
    q->op = op;
    q->id = sl_strdup(r->nparams ? r->params[0] : "");
    q->reason = reason ? sl_strdup(reason) : NULL;
    q->pct = pct;
    q->dry_run = dry_run;
    q->msg.fn = bop_answer;
    q->job.apply = bop_apply;
    q->job.deliver = bop_deliver;
    q->job.nrows = 1;
    return q;
}

static void bop_send(struct http_conn *c, struct bop_req *q)
{
    if (writer_submit(q->app->writer, &q->job) < 0) {
        http_reply_error_status(c, 503, ERR_OVERLOADED, "Retry-After: 1\r\n", NULL);
        bop_destroy(q);
    }
}

static void bop_submit(struct http_conn *c, struct http_request *r, enum bop op, const char *reason,
                       double pct, int dry_run)
{
    struct bop_req *q = bop_new(c, r, op, reason, pct, dry_run);
    if (!q)
        http_reply_error(c, ERR_INTERNAL, "out of memory");
    else
        bop_send(c, q);
}

void h_batches_reset(struct http_conn *c, struct http_request *r)
{
    bop_submit(c, r, BOP_RESET, NULL, 0, 0);
}

void h_batches_reprocess(struct http_conn *c, struct http_request *r)
{
    bop_submit(c, r, BOP_REPROCESS, NULL, 0, 0);
}

/* A JSON body (possibly empty) as an object; NULL after answering 400. */
static json_t *json_body(struct http_conn *c, struct http_request *r)
{
    if (r->body.len == 0)
        return json_object();
    json_error_t jerr;
    json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        http_reply_error(c, ERR_MALFORMED_JSON, "the body must be a JSON object: %s", jerr.text);
        return NULL;
    }
    return j;
}

void h_batches_fail(struct http_conn *c, struct http_request *r)
{
    json_t *j = json_body(c, r);
    if (!j)
        return;
    json_t *reason = json_object_get(j, "reason");
    if (reason && !json_is_string(reason)) {
        json_decref(j);
        http_reply_error(c, ERR_INVALID_PARAMETER, "reason must be a string");
        return;
    }
    bop_submit(c, r, BOP_FAIL, reason ? json_string_value(reason) : "failed by an operator", 0, 0);
    json_decref(j);
}

void h_batches_patch(struct http_conn *c, struct http_request *r)
{
    json_t *j = json_body(c, r);
    if (!j)
        return;
    json_t *p = json_object_get(j, "error_threshold_percent");
    double pct = p ? json_number_value(p) : -1;
    if (!p || !json_is_number(p) || pct < 0 || pct > 100 || json_object_size(j) != 1) {
        json_decref(j);
        http_reply_error(c, ERR_INVALID_PARAMETER,
                         "the body must be {\"error_threshold_percent\": 0..100}");
        return;
    }
    json_decref(j);
    bop_submit(c, r, BOP_THRESHOLD, NULL, pct, 0);
}

void h_batches_delete(struct http_conn *c, struct http_request *r)
{
    bop_submit(c, r, BOP_DELETE, NULL, 0, hq_bool(r, "dry_run"));
}

/* DELETE /api/v1/batches?filename_contains=&created_after=&status=&dataset=&dry_run= */
void h_batches_delete_bulk(struct http_conn *c, struct http_request *r)
{
    char contains[HQ_MAX + 1], status[HQ_MAX + 1], dataset[HQ_MAX + 1];
    int dry = hq_bool(r, "dry_run");
    int has_contains = hq_str(r, "filename_contains", contains, sizeof contains) != NULL;
    int has_status = hq_str(r, "status", status, sizeof status) != NULL;
    int has_dataset = hq_str(r, "dataset", dataset, sizeof dataset) != NULL;
    int64_t after = hq_time(r, "created_after");
    if (!has_contains && !has_status && !has_dataset && !after) {
        http_reply_error(c, ERR_INVALID_PARAMETER,
                         "give at least one filter: filename_contains, created_after, status, "
                         "dataset (deleting every batch at once is not offered)");
        return;
    }
    struct bop_req *q = bop_new(c, r, BOP_DELETE_BULK, NULL, 0, dry);
    if (!q) {
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    q->f_contains = has_contains ? sl_strdup(contains) : NULL;
    q->f_status = has_status ? sl_strdup(status) : NULL;
    q->f_dataset = has_dataset ? sl_strdup(dataset) : NULL;
    q->f_created_after = after;
    bop_send(c, q);
}
