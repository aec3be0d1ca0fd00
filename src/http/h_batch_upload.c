/*
 * h_batch_upload.c - POST /api/v1/datasets/{name}/batches: the streamed upload (the body
 * sink: a CSV body or a multipart/form-data file part spooled to disk and hashed), the
 * store keeping the file, the batch recorded (batch/batch_add.h) and the answer. Also
 * drop_files(), which removes kept files no record names: a failed or repeated upload's,
 * and a deleted batch's (h_batches.c).
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
#include "batch/batch_add.h"
#include "batch/batch_ops.h"
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
    char tmp[PATH_MAX]; /* the spool, until the store keeps it */
    char *data_dir;     /* as it was when the upload began */
    /* completion: the record to add, the Idempotency-Key, the answer */
    struct batch_add_job add;
    uv_work_t work;
    struct http_conn *conn;
    const struct http_app *app;
    int rc;
    char err[256];
};

static void upload_destroy(struct upload *u)
{
    multipart_destroy(u->mp);
    buf_release(&u->field);
    free(u->form_source);
    free(u->form_threshold);
    if (u->fd >= 0)
        close(u->fd);
    if (u->tmp[0])
        unlink(u->tmp);
    EVP_MD_CTX_free(u->md);
    batch_add_release(&u->add);
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
    struct catalog *cat = http_conn_catalog(c);
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
    u->add.idem_key = idem ? sl_strdup(idem) : NULL;
    if (multipart) {
        char e[256];
        u->mp = multipart_create(ct, 8192, &mp_cb, u, e, sizeof e);
        if (!u->mp) {
            *code = ERR_BAD_REQUEST;
            snprintf(msg, cap, "%s", e);
            goto fail;
        }
    }
    u->add.b.dataset = sl_strdup(ds->name);
    u->add.b.error_threshold_percent = ds->error_threshold_percent;
    if (!multipart) /* multipart: the file part's, when it comes */
        u->add.b.content_type = clean_ctype(ct);
    if (http_query(r, "source", v, sizeof v) == 1 && v[0])
        u->add.b.source = sl_strdup(v);
    if (http_query(r, "filename", v, sizeof v) == 1 && v[0])
        u->add.b.filename = sl_strdup(v);
    if (http_query(r, "error_threshold_percent", v, sizeof v) == 1 &&
        parse_pct(v, &u->add.b.error_threshold_percent) < 0) {
        *code = ERR_INVALID_PARAMETER;
        snprintf(msg, cap, "error_threshold_percent must be a number from 0 to 100");
        goto fail;
    }
    char id[40];
    ingest_new_id("bat", id, sizeof id);
    u->add.b.id = sl_strdup(id);
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
    u->add.b.bytes += (int64_t)len;
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
        if (part->filename && !u->add.b.filename)
            u->add.b.filename = clean_filename(part->filename);
        u->add.b.content_type = clean_ctype(part->content_type);
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
            if (!u->add.b.filename)
                u->add.b.filename = clean_filename(v);
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

/*
 * Batch files are kept and dropped on the libuv thread pool, through a connection lent by
 * the service (app->files, store_pool.h): these threads own none, the writer's is busy
 * with its group transaction, and a loop's is read-only and its loop's alone. Keeping a
 * large file into PostgreSQL takes a while; it must hold neither the writer nor a loop.
 */

/* Remove kept files whose batch record is gone or never came. One that cannot be removed
 * now is left to the sweep (service_purge): no record names it. */
void drop_files(const struct http_app *app, const struct kept_file *f, size_t n)
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
    int rc = store_file_keep(st, u->add.b.id, u->tmp, u->data_dir, &u->add.b.path);
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
    u->add.job.apply = batch_add_apply;
    u->add.job.nrows = 1;
    u->add.b.created_ms = clock_wall_ms();
    struct kept_file f = {u->add.b.id, u->add.b.path};
    int rc = writer_run(u->app->writer, &u->add.job);
    if (rc == WRITER_UNKNOWN) { /* the batch may be recorded: its file stays (else the sweep) */
        u->rc = rc;
    } else if (rc < 0) {
        snprintf(u->err, sizeof u->err, "recording the batch failed");
        drop_files(u->app, &f, 1);
        u->rc = -1;
    } else if (u->add.replayed || u->add.status != 202) {
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
    } else if (u->add.status == 409) {
        http_reply_error(u->conn, ERR_IDEMPOTENCY_KEY_REUSED,
                         "this Idempotency-Key was used with a different file");
    } else {
        /* The batch the answer names (the first upload's, for a repeat). */
        json_error_t jerr;
        json_t *ans = json_loads(u->add.response, 0, &jerr);
        const char *id = json_string_value(json_object_get(ans, "batch_id"));
        char hdr[256];
        snprintf(hdr, sizeof hdr, "Location: /api/v1/batches/%s\r\n%s", id ? id : u->add.b.id,
                 u->add.replayed ? "Idempotent-Replayed: true\r\n" : "");
        if (!u->add.replayed)
            log_info("batch", "uploaded", "\"batch_id\":\"%s\",\"bytes\":%lld", u->add.b.id,
                     (long long)u->add.b.bytes);
        http_reply_json(u->conn, u->add.status, ans, hdr);
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
        if (u->form_source && *u->form_source && !u->add.b.source) {
            u->add.b.source = u->form_source;
            u->form_source = NULL;
        }
        if (u->form_threshold &&
            parse_pct(u->form_threshold, &u->add.b.error_threshold_percent) < 0) {
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
    u->add.b.sha256 = sl_strdup(hex);
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
