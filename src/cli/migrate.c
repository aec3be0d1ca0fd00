/*
 * migrate.c - `sluice migrate --from URI --to URI`: move an install from one
 * store to another (SQLite to PostgreSQL or back) with everything in it, and
 * prove that it arrived.
 *
 * How it is built, and why. The command knows no SQL: the store layer exposes a
 * store as plain tables of typed values (store/tables.h), each backend dumps and
 * loads them in its own dialect, and batch files move through the store's file
 * operations. So the command is a sequence of steps over those operations:
 *
 *   1. Open both stores and bring them to the current schema (as `serve` does);
 *      refuse one store named twice. The source is read in one snapshot, so the
 *      copy is of one moment even if something still writes to it.
 *   2. Refuse a target that holds data (any row but the key pepper), naming
 *      what is there, unless --force: then its content is replaced.
 *   3. Batch files first. The store keeps a file in a transaction of its own
 *      (store.h, file_keep), so files cannot be part of the one transaction that
 *      writes the tables: each is copied through a spool file, its sha256 checked
 *      against the source's record on the way.
 *   4. One transaction on the target: the dataset tables are made from the
 *      definitions the source recorded (`datasets`: no configuration needed), then
 *      every table is loaded while the source's rows stream past, summed in a
 *      canonical form; then, still inside the transaction, the target's tables
 *      are read back and summed the same way and every kept file is read back
 *      against its sha256. Only when all of it agrees is the transaction committed.
 *
 * If it stops half way, the target's tables are as they were (nothing committed).
 * Files already kept are dropped again when migrate fails by itself; if it is
 * killed, they stay behind as files of no batch (SQLite: DATA_DIR/batches/ID.csv;
 * PostgreSQL: their chunks), which the next run replaces.
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "config/config.h"
#include "store/store.h"
#include "util/hex.h"
#include "util/mem.h"

/* ---- what is moved ------------------------------------------------------------------- */

/* A batch's file: where each store has it and what it must hash to. */
struct bfile {
    char *id, *path, *sha256; /* path: as the source (or the target) recorded it */
    int64_t bytes;
    char *kept; /* the target's path for it (file_keep), NULL when it keeps none */
    int have_kept;
};

/* One table: its definition and what each side holds. */
struct tab {
    const struct table_def *def;
    struct table_def *owned; /* dataset tables */
    int64_t src_rows;        /* counted in the snapshot, for the progress */
    struct table_sum src, dst;
};

struct job {
    const char *from, *to;
    char *data_dir; /* the target's (SQLite: where its batch files go) */
    int force, verify_only;
    struct store *src, *dst;
    struct dataset_config *ds; /* the source's datasets */
    size_t nds;
    struct tab *tabs;
    size_t ntabs;
    struct bfile *files; /* the source's batches, by id */
    size_t nfiles;
    struct bfile *tfiles; /* the target's batches (read when verifying) */
    size_t ntfiles;
    int64_t files_bad;  /* target files that do not match their record */
    int commit_unknown; /* COMMIT failed: the target may hold the copy or not */
    struct progress prog;
    char err[1024];
};

static void bfiles_free(struct bfile *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].id);
        free(v[i].path);
        free(v[i].sha256);
        free(v[i].kept);
    }
    free(v);
}

static char *cell_str(const struct cell *c)
{
    return c->type == CELL_TEXT ? sl_strndup(c->p, c->n) : NULL;
}

/* The batches of a store, in id order (the dump's key order). */
struct bfile_list {
    struct bfile *v;
    size_t n, cap;
    int id, path, sha, bytes; /* column indexes */
};

static int collect_batch(void *arg, const struct cell *row)
{
    struct bfile_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct bfile *v = sl_realloc(l->v, cap * sizeof *v);
        if (!v)
            return 1;
        l->v = v;
        l->cap = cap;
    }
    struct bfile *b = &l->v[l->n++];
    memset(b, 0, sizeof *b);
    b->id = cell_str(&row[l->id]);
    b->path = cell_str(&row[l->path]);
    b->sha256 = cell_str(&row[l->sha]);
    b->bytes = row[l->bytes].i;
    return b->id && b->sha256 ? 0 : 1;
}

static const struct table_def *def_named(const char *name)
{
    for (size_t i = 0; i < store_ntables; i++)
        if (!strcmp(store_tables[i].name, name))
            return &store_tables[i];
    return NULL;
}

static int list_batches(struct store *st, struct bfile **out, size_t *n, char *err, size_t errlen)
{
    const struct table_def *t = def_named("batches");
    struct bfile_list l = {NULL,
                           0,
                           0,
                           table_col_index(t, "id"),
                           table_col_index(t, "path"),
                           table_col_index(t, "sha256"),
                           table_col_index(t, "bytes")};
    int rc = store_table_dump(st, t, collect_batch, &l);
    if (rc != 0) {
        snprintf(err, errlen, "batches: %s",
                 rc < 0 ? store_errmsg(st) : "out of memory, or a record without id or sha256");
        bfiles_free(l.v, l.n);
        return -1;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

static int bfile_cmp(const void *a, const void *b)
{
    return strcmp(((const struct bfile *)a)->id, ((const struct bfile *)b)->id);
}

/* The batch id (n bytes at id, not NUL-terminated) in v, sorted by id. */
static struct bfile *bfile_find(struct bfile *v, size_t n, const char *id, size_t idlen)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)idlen, id);
    struct bfile key = {.id = buf};
    return n ? bsearch(&key, v, n, sizeof *v, bfile_cmp) : NULL;
}

/* ---- the source's datasets and the list of tables --------------------------------- */

static int valid_dataset_name(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static int collect_dataset(void *arg, const struct cell *row)
{
    struct job *j = arg;
    struct dataset_config *v = sl_realloc(j->ds, (j->nds + 1) * sizeof *v);
    if (!v) {
        snprintf(j->err, sizeof j->err, "out of memory");
        return 1;
    }
    j->ds = v;
    struct dataset_config *d = &v[j->nds++];
    memset(d, 0, sizeof *d);
    d->name = cell_str(&row[0]);
    d->key = cell_str(&row[1]);
    char *schema = cell_str(&row[2]);
    json_error_t jerr;
    char cerr[300] = "";
    d->schema_json = schema ? json_loads(schema, 0, &jerr) : NULL;
    d->schema = d->schema_json ? schema_compile(d->schema_json, cerr, sizeof cerr) : NULL;
    free(schema);
    if (!valid_dataset_name(d->name) || !d->schema ||
        schema_key_parse(d->schema, d->key, &d->key_fields, cerr, sizeof cerr) < 0) {
        snprintf(j->err, sizeof j->err, "the source's dataset '%s' cannot be read%s%s",
                 d->name ? d->name : "?", cerr[0] ? ": " : "", cerr);
        return 1;
    }
    return 0;
}

static void datasets_free(struct job *j)
{
    for (size_t i = 0; i < j->nds; i++) {
        free(j->ds[i].name);
        free(j->ds[i].key);
        json_decref(j->ds[i].schema_json);
        schema_destroy(j->ds[i].schema);
    }
    free(j->ds);
}

/* Every table to copy: store_tables, with the dataset tables right after `datasets`. */
static int plan_tables(struct job *j)
{
    const struct table_def *dt = def_named("datasets");
    int rc = store_table_dump(j->src, dt, collect_dataset, j);
    if (rc < 0)
        snprintf(j->err, sizeof j->err, "datasets: %s", store_errmsg(j->src));
    if (rc != 0)
        return -1;
    j->tabs = sl_calloc(store_ntables + j->nds, sizeof *j->tabs);
    if (!j->tabs)
        return -1;
    for (size_t i = 0; i < store_ntables; i++) {
        j->tabs[j->ntabs++].def = &store_tables[i];
        if (&store_tables[i] != dt)
            continue;
        for (size_t d = 0; d < j->nds; d++) {
            struct tab *t = &j->tabs[j->ntabs++];
            t->owned = table_def_dataset(j->ds[d].name, j->ds[d].schema);
            t->def = t->owned;
            if (!t->owned)
                return -1;
        }
    }
    for (size_t i = 0; i < j->ntabs; i++)
        if (store_table_count(j->src, j->tabs[i].def, &j->tabs[i].src_rows) < 0) {
            snprintf(j->err, sizeof j->err, "source: %s", store_errmsg(j->src));
            return -1;
        }
    return 0;
}

/* ---- the target must be empty -------------------------------------------------------- */

/* Which tables of the target hold rows, as "datasets (3), batches (2)"; "" when none
 * (the key pepper in `settings` is made with every store and does not count). */
static int target_content(struct job *j, char *out, size_t cap)
{
    out[0] = 0;
    for (size_t i = 0; i < store_ntables; i++) {
        const struct table_def *t = &store_tables[i];
        int64_t n;
        if (!strcmp(t->name, "settings"))
            continue;
        if (store_table_count(j->dst, t, &n) < 0) {
            snprintf(j->err, sizeof j->err, "target: %s", store_errmsg(j->dst));
            return -1;
        }
        if (n > 0) {
            size_t len = strlen(out);
            snprintf(out + len, cap - len, "%s%s (%lld)", len ? ", " : "", t->name, (long long)n);
        }
    }
    return 0;
}

/* ---- batch files ------------------------------------------------------------------------- */

/* Read in to its end into out (when not NULL), hashing it: hex gets the sha256.
 * 0, -1 when reading failed, -2 when writing did. */
static int copy_hash(FILE *in, FILE *out, char hex[65], struct progress *p)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[1 << 16], sum[32];
    unsigned int len = 0;
    size_t n;
    int rc = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (EVP_DigestUpdate(md, buf, n) != 1)
            rc = -1;
        else if (out && fwrite(buf, 1, n, out) != n)
            rc = -2;
        progress_add(p, (int64_t)n);
    }
    if (rc == 0 && (ferror(in) || EVP_DigestFinal_ex(md, sum, &len) != 1))
        rc = -1;
    EVP_MD_CTX_free(md);
    if (rc == 0)
        hex_encode(sum, len, hex);
    return rc;
}

/* file_keep's data_dir: a SQLite target's directory; none for PostgreSQL, which would keep
 * a node's copy of the file there and no node reads this one's. */
static const char *keep_dir(const struct job *j)
{
    return strncmp(j->to, "sqlite:", 7) ? NULL : j->data_dir ? j->data_dir : ".";
}

/* A spool file for batch id: in the target's data_dir/batches, where the store renames it
 * from (store.h), named like an upload's spool (.csv.part) so that the server's sweep
 * removes one a crash left behind; in the temporary directory when there is no data_dir. */
static FILE *spool_create(const struct job *j, const char *id, char *path, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    if (j->data_dir) {
        snprintf(path, cap, "%s/batches", j->data_dir);
        mkdir(path, 0755);
        snprintf(path, cap, "%s/batches/%s.migrate-XXXXXX.csv.part", j->data_dir, id);
    } else {
        snprintf(path, cap, "%s/sluice-migrate-%s-XXXXXX.csv.part", tmp && *tmp ? tmp : "/tmp", id);
    }
    int fd = mkstemps(path, (int)strlen(".csv.part"));
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (fd >= 0 && !f)
        close(fd);
    return f;
}

/* Why reading st's file failed: the store's message when it has one (store.h), else errno's. */
static const char *read_error(struct store *st)
{
    const char *m = store_errmsg(st);
    return m && *m ? m : strerror(errno);
}

/* Copy one batch's file from the source into the target (file_keep), checking it against
 * its record's sha256 on the way. */
static int keep_file(struct job *j, struct bfile *f)
{
    struct batch b = {.id = f->id, .path = f->path, .sha256 = f->sha256, .bytes = f->bytes};
    char spool[4200], hex[65] = "";
    FILE *in = store_file_open(j->src, &b, NULL);
    if (!in) {
        snprintf(j->err, sizeof j->err, "batch %s: the source's file cannot be read: %s", f->id,
                 store_errmsg(j->src));
        return -1;
    }
    FILE *out = spool_create(j, f->id, spool, sizeof spool);
    if (!out) {
        snprintf(j->err, sizeof j->err, "batch %s: cannot create a spool file %s: %s", f->id, spool,
                 strerror(errno));
        fclose(in);
        return -1;
    }
    int rc = copy_hash(in, out, hex, &j->prog);
    if (rc == -1)
        snprintf(j->err, sizeof j->err, "batch %s: reading the source's file: %s", f->id,
                 read_error(j->src));
    fclose(in);
    if (rc == 0 && (fflush(out) != 0 || fsync(fileno(out)) != 0))
        rc = -2;
    if (fclose(out) != 0 && rc == 0)
        rc = -2;
    if (rc == -2)
        snprintf(j->err, sizeof j->err, "batch %s: writing %s: %s", f->id, spool, strerror(errno));
    if (rc == 0 && strcmp(hex, f->sha256) != 0) {
        snprintf(j->err, sizeof j->err,
                 "batch %s: the source's file does not match its record (sha256 %s, recorded %s)",
                 f->id, hex, f->sha256);
        rc = -1;
    }
    /* What the target holds for this id goes first: a file an interrupted run left, or with
     * --force the target's own batch's (PostgreSQL adds chunks, it does not replace them). */
    if (rc == 0 && (store_file_drop(j->dst, f->id, NULL, NULL) < 0 ||
                    store_file_keep(j->dst, f->id, spool, keep_dir(j), &f->kept) < 0)) {
        snprintf(j->err, sizeof j->err, "batch %s: the target cannot keep its file: %s", f->id,
                 store_errmsg(j->dst));
        rc = -1;
    }
    if (rc < 0)
        unlink(spool);
    else
        f->have_kept = 1;
    return rc < 0 ? -1 : 0;
}

static int copy_files(struct job *j)
{
    int64_t total = 0;
    for (size_t i = 0; i < j->nfiles; i++)
        total += j->files[i].bytes;
    progress_start(&j->prog, "files", "byte", total);
    for (size_t i = 0; i < j->nfiles; i++) {
        progress_item(&j->prog, j->files[i].id, j->files[i].bytes);
        if (keep_file(j, &j->files[i]) < 0)
            return -1;
    }
    progress_end(&j->prog);
    return 0;
}

/* Files kept for a copy that did not commit: dropped again (best effort). */
static void drop_kept(struct job *j)
{
    for (size_t i = 0; i < j->nfiles; i++)
        if (j->files[i].have_kept)
            store_file_drop(j->dst, j->files[i].id, j->files[i].kept, NULL);
}

/* Read every target batch's file back against its record's sha256. */
static int verify_files(struct job *j)
{
    int64_t total = 0;
    for (size_t i = 0; i < j->ntfiles; i++)
        total += j->tfiles[i].bytes;
    progress_start(&j->prog, "check", "byte", total);
    for (size_t i = 0; i < j->ntfiles; i++) {
        struct bfile *f = &j->tfiles[i];
        struct batch b = {.id = f->id, .path = f->path, .sha256 = f->sha256, .bytes = f->bytes};
        char hex[65] = "";
        progress_item(&j->prog, f->id, f->bytes);
        FILE *in = store_file_open(j->dst, &b, NULL);
        int rc = in ? copy_hash(in, NULL, hex, &j->prog) : -1;
        if (in)
            fclose(in);
        if (rc < 0 || strcmp(hex, f->sha256) != 0) {
            progress_break(&j->prog);
            fprintf(stderr, "sluice migrate: batch %s: the target's file %s\n", f->id,
                    rc < 0 ? "cannot be read" : "does not match its sha256");
            j->files_bad++;
        }
    }
    progress_end(&j->prog);
    return 0;
}

/* ---- tables ------------------------------------------------------------------------------- */

struct pass {
    struct job *j;
    const struct table_def *t;
    struct table_sum *sum;
    int load;           /* load each row into the target */
    int path_col;       /* batches: the column whose value is the target's own, else -1 */
    int id_col;         /* batches: id */
    struct cell *out;   /* batches: the row as the target gets it */
    struct store *fail; /* the store that failed; NULL: the pass itself (memory) */
};

static int pass_row(void *arg, const struct cell *row)
{
    struct pass *p = arg;
    if (table_sum_row(p->sum, p->t, row) < 0) {
        p->fail = NULL;
        return 1;
    }
    progress_add(&p->j->prog, 1);
    if (!p->load)
        return 0;
    const struct cell *v = row;
    if (p->path_col >= 0) { /* a batch: its path is where the target kept the file */
        memcpy(p->out, row, p->t->ncols * sizeof *row);
        const struct cell *id = &row[p->id_col];
        struct bfile *f = bfile_find(p->j->files, p->j->nfiles, id->p, id->n);
        const char *kept = f ? f->kept : NULL;
        p->out[p->path_col] = kept ? (struct cell){.type = CELL_TEXT, .p = kept, .n = strlen(kept)}
                                   : (struct cell){.type = CELL_NULL};
        v = p->out;
    }
    if (store_table_load(p->j->dst, p->t, v) < 0) {
        p->fail = p->j->dst;
        return 1;
    }
    return 0;
}

/* Sum (and, with load, copy into the target) one table of st. */
static int pass_table(struct job *j, struct store *st, struct tab *t, struct table_sum *sum,
                      int load)
{
    struct pass p = {j, t->def, sum, load, -1, -1, NULL, st};
    if (load && !strcmp(t->def->name, "batches")) {
        p.path_col = table_col_index(t->def, "path");
        p.id_col = table_col_index(t->def, "id");
        p.out = sl_calloc(t->def->ncols, sizeof *p.out);
    }
    if ((p.path_col >= 0 && !p.out) || table_sum_init(sum) < 0) {
        snprintf(j->err, sizeof j->err, "%s: out of memory", t->def->name);
        free(p.out);
        return -1;
    }
    progress_item(&j->prog, t->def->name, t->src_rows);
    int rc = store_table_dump(st, t->def, pass_row, &p);
    if (rc != 0) /* told before the end of the table below can say something else */
        snprintf(j->err, sizeof j->err, "%s", p.fail ? store_errmsg(p.fail) : "out of memory");
    /* The table ends also after a failure (store.h); the rollback undoes it then. */
    if (load && store_table_load(j->dst, t->def, NULL) < 0 && rc == 0) {
        snprintf(j->err, sizeof j->err, "%s", store_errmsg(j->dst));
        rc = -1;
    }
    free(p.out);
    if (rc == 0)
        return table_sum_final(sum);
    table_sum_release(sum);
    return -1;
}

/* The target's datasets go (--force), the source's are made. */
static int make_datasets(struct job *j)
{
    struct dataset_config *old = NULL;
    size_t nold = 0;
    struct job tj = {.src = j->dst};
    char why[600];
    if (j->force) { /* the target's own datasets, read with the same code as the source's */
        if (store_table_dump(j->dst, def_named("datasets"), collect_dataset, &tj) != 0) {
            snprintf(j->err, sizeof j->err, "target: %s",
                     tj.err[0] ? tj.err : store_errmsg(j->dst));
            datasets_free(&tj);
            return -1;
        }
        old = tj.ds;
        nold = tj.nds;
    }
    for (size_t i = 0; i < nold; i++)
        if (store_dataset_drop(j->dst, old[i].name) < 0) {
            snprintf(j->err, sizeof j->err, "target: %s", store_errmsg(j->dst));
            datasets_free(&tj);
            return -1;
        }
    datasets_free(&tj);
    for (size_t i = 0; i < j->nds; i++)
        if (store_dataset_sync(j->dst, &j->ds[i], why, sizeof why) < 0) {
            snprintf(j->err, sizeof j->err, "target: %s", why);
            return -1;
        }
    return 0;
}

static int64_t total_rows(const struct job *j)
{
    int64_t n = 0;
    for (size_t i = 0; i < j->ntabs; i++)
        n += j->tabs[i].src_rows;
    return n;
}

/* Sum every table of the source (copying it into the target unless verify_only). */
static int source_pass(struct job *j)
{
    progress_start(&j->prog, j->verify_only ? "read" : "copy", "row", total_rows(j));
    for (size_t i = 0; i < j->ntabs; i++)
        if (pass_table(j, j->src, &j->tabs[i], &j->tabs[i].src, !j->verify_only) < 0)
            return -1;
    progress_end(&j->prog);
    return 0;
}

/* Sum every table of the target, and collect its batches for the file check. */
static int target_pass(struct job *j)
{
    progress_start(&j->prog, "verify", "row", total_rows(j));
    for (size_t i = 0; i < j->ntabs; i++)
        if (pass_table(j, j->dst, &j->tabs[i], &j->tabs[i].dst, 0) < 0)
            return -1;
    progress_end(&j->prog);
    return list_batches(j->dst, &j->tfiles, &j->ntfiles, j->err, sizeof j->err);
}

/* ---- the report -------------------------------------------------------------------------- */

/* The table of what was compared; returns how many lines differ. */
static int report(const struct job *j)
{
    int bad = 0;
    printf("%-24s %12s %12s  %-16s  %s\n", "TABLE", "SOURCE", "TARGET", "SHA-256", "CHECK");
    for (size_t i = 0; i < j->ntabs; i++) {
        const struct tab *t = &j->tabs[i];
        const char *check = "ok";
        if (t->src.rows != t->dst.rows)
            check = "DIFFERS (rows)";
        else if (memcmp(t->src.sha256, t->dst.sha256, sizeof t->src.sha256) != 0)
            check = "DIFFERS (checksum)";
        bad += strcmp(check, "ok") != 0;
        char hex[17];
        table_sum_hex(&t->src, 8, hex);
        printf("%-24s %12lld %12lld  %-16s  %s\n", t->def->name, (long long)t->src.rows,
               (long long)t->dst.rows, hex, check);
    }
    const char *check = j->files_bad              ? "DIFFERS (sha256)"
                        : j->nfiles != j->ntfiles ? "DIFFERS (count)"
                                                  : "ok";
    printf("%-24s %12zu %12zu  %-16s  %s\n", "batch files", j->nfiles, j->ntfiles, "", check);
    return bad + (strcmp(check, "ok") != 0);
}

/* uri with a password replaced by ***, for messages. */
static void show_uri(const char *uri, char *out, size_t cap)
{
    snprintf(out, cap, "%s", uri);
    char *auth = strstr(out, "://");
    if (auth) {
        auth += 3;
        char *end = auth + strcspn(auth, "/?"), *at = memchr(auth, '@', (size_t)(end - auth));
        char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            char rest[4096];
            snprintf(rest, sizeof rest, "%s", at);
            snprintf(colon, cap - (size_t)(colon - out), ":***%s", rest);
        }
    }
    char *pw = strstr(out, "password=");
    if (pw) {
        char rest[4096];
        snprintf(rest, sizeof rest, "%s", pw + 9 + strcspn(pw + 9, "& "));
        snprintf(pw + 9, cap - (size_t)(pw + 9 - out), "***%s", rest);
    }
}

/* ---- the command --------------------------------------------------------------------------- */

/* The directory of an SQLite target's database file (its batch files go under it). */
static char *sqlite_dir(const char *uri)
{
    if (strncmp(uri, "sqlite:", 7) != 0)
        return NULL;
    const char *path = uri + 7, *slash = strrchr(path, '/');
    return slash ? sl_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : sl_strdup(".");
}

/* One store named twice: the same URI, or the same SQLite file under two names. */
static int same_store(const char *a, const char *b)
{
    if (!strcmp(a, b))
        return 1;
    struct stat sa, sb;
    return !strncmp(a, "sqlite:", 7) && !strncmp(b, "sqlite:", 7) && stat(a + 7, &sa) == 0 &&
           stat(b + 7, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int open_stores(struct job *j)
{
    char err[600], shown[4096];
    struct {
        const char *uri, *role;
        struct store **st;
    } side[2] = {{j->from, "source", &j->src}, {j->to, "target", &j->dst}};
    char *dir = j->verify_only ? NULL : sqlite_dir(j->to);
    if (dir) /* a new SQLite target's directory is made, as serve makes its data_dir */
        mkdir(dir, 0755);
    free(dir);
    if (j->data_dir && !j->verify_only) {
        /* recorded batch paths are absolute, whatever directory the server runs in */
        char *abs = (mkdir(j->data_dir, 0755), realpath(j->data_dir, NULL));
        if (!abs) {
            snprintf(j->err, sizeof j->err, "--data-dir %s: %s", j->data_dir, strerror(errno));
            return -1;
        }
        free(j->data_dir);
        j->data_dir = abs;
    }
    for (int i = 0; i < 2; i++) {
        struct stat sb;
        /* Opening an SQLite file makes it: a mistyped source would be an empty store. */
        if ((i == 0 || j->verify_only) && !strncmp(side[i].uri, "sqlite:", 7) &&
            stat(side[i].uri + 7, &sb) < 0) {
            snprintf(j->err, sizeof j->err, "%s %s: %s", side[i].role, side[i].uri,
                     strerror(errno));
            return -1;
        }
        *side[i].st = store_open(side[i].uri, 0, err, sizeof err);
        if (!*side[i].st) {
            show_uri(side[i].uri, shown, sizeof shown);
            snprintf(j->err, sizeof j->err, "%s %s: %s", side[i].role, shown, err);
            return -1;
        }
        if (!j->verify_only && store_migrate(*side[i].st) < 0) {
            snprintf(j->err, sizeof j->err, "%s: migrating its schema: %s", side[i].role,
                     store_errmsg(*side[i].st));
            return -1;
        }
    }
    return 0;
}

/* The copy itself: files, then the one transaction. 0 = committed, 1 = it differs, -1. */
static int copy(struct job *j, struct bfile *old, size_t nold)
{
    if (copy_files(j) < 0 || store_begin(j->dst) < 0)
        goto fail_files;
    if (make_datasets(j) < 0 || source_pass(j) < 0 || target_pass(j) < 0 || verify_files(j) < 0)
        goto fail_tx;
    if (report(j) > 0) {
        store_rollback(j->dst);
        drop_kept(j);
        return 1;
    }
    if (store_commit(j->dst) < 0) {
        /* A COMMIT whose answer was lost may have happened: the files stay (a server on the
         * target sweeps them if no batch names them), and --verify-only tells. */
        snprintf(j->err, sizeof j->err,
                 "target: COMMIT failed (%s); if the target holds the copy after all, "
                 "--verify-only says so",
                 store_errmsg(j->dst));
        j->commit_unknown = 1;
        return -1;
    }
    /* --force: the files of the target's former batches that no copied batch replaced */
    for (size_t i = 0; i < nold; i++) {
        struct bfile *f = bfile_find(j->files, j->nfiles, old[i].id, strlen(old[i].id));
        if (!f || (old[i].path && (!f->kept || strcmp(f->kept, old[i].path) != 0)))
            store_file_drop(j->dst, old[i].id, old[i].path, NULL);
    }
    return 0;
fail_tx:
    if (j->err[0] == 0)
        snprintf(j->err, sizeof j->err, "target: %s", store_errmsg(j->dst));
    store_rollback(j->dst);
fail_files:
    if (j->err[0] == 0)
        snprintf(j->err, sizeof j->err, "target: %s", store_errmsg(j->dst));
    drop_kept(j);
    return -1;
}

int cmd_migrate(int argc, char **argv)
{
    static const struct option lo[] = {
        {"from", required_argument, NULL, 'f'},     {"to", required_argument, NULL, 't'},
        {"data-dir", required_argument, NULL, 'd'}, {"force", no_argument, NULL, 'F'},
        {"verify-only", no_argument, NULL, 'v'},    {NULL, 0, NULL, 0}};
    struct job j = {.prog = {.tty = isatty(STDERR_FILENO), .prefix = "sluice migrate"}};
    const char *data_dir = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'f':
            j.from = optarg;
            break;
        case 't':
            j.to = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'F':
            j.force = 1;
            break;
        case 'v':
            j.verify_only = 1;
            break;
        default:
            fputs(cli_find("migrate")->usage, stderr);
            return 2;
        }
    }
    if (!j.from || !j.to || optind != argc) {
        fputs(cli_find("migrate")->usage, stderr);
        return 2;
    }
    if (same_store(j.from, j.to)) {
        fprintf(stderr, "sluice migrate: --from and --to name the same store\n");
        return 2;
    }
    j.data_dir = data_dir ? sl_strdup(data_dir) : sqlite_dir(j.to);
    struct bfile *old = NULL;
    size_t nold = 0;
    char shown_from[4096], shown_to[4096], held[2048];
    show_uri(j.from, shown_from, sizeof shown_from);
    show_uri(j.to, shown_to, sizeof shown_to);
    double t0 = progress_now();
    int rc = 1, r;

    if (open_stores(&j) < 0 || store_snapshot(j.src) < 0 ||
        (j.verify_only && store_snapshot(j.dst) < 0))
        goto fail;
    if (plan_tables(&j) < 0 || list_batches(j.src, &j.files, &j.nfiles, j.err, sizeof j.err) < 0)
        goto fail;
    if (j.verify_only) {
        if (source_pass(&j) < 0 || target_pass(&j) < 0 || verify_files(&j) < 0)
            goto fail;
        rc = report(&j) ? 1 : 0;
        printf("%s: %s and %s %s\n", rc ? "verify FAILED" : "verified", shown_from, shown_to,
               rc ? "differ (see above)" : "hold the same content");
        goto out;
    }
    if (target_content(&j, held, sizeof held) < 0)
        goto fail;
    if (held[0] && !j.force) {
        fprintf(stderr,
                "sluice migrate: the target %s is not empty: %s.\n"
                "Nothing was written. --force replaces the target's content with the "
                "source's.\n",
                shown_to, held);
        goto out;
    }
    if (held[0] && list_batches(j.dst, &old, &nold, j.err, sizeof j.err) < 0)
        goto fail;
    printf("sluice migrate: %s -> %s%s\n", shown_from, shown_to,
           held[0] ? " (--force: replacing what it held)" : "");
    r = copy(&j, old, nold);
    if (r < 0)
        goto fail;
    int64_t rows = total_rows(&j), bytes = 0;
    for (size_t i = 0; i < j.nfiles; i++)
        bytes += j.files[i].bytes;
    if (r == 0)
        printf("copied and verified: %zu tables, %lld rows, %zu batch files (%lld bytes) in "
               "%.1f s\n",
               j.ntabs, (long long)rows, j.nfiles, (long long)bytes, progress_now() - t0);
    else
        printf("verification FAILED: nothing was committed; the target is as it was\n");
    rc = r == 0 ? 0 : 1;
    goto out;
fail:
    progress_break(&j.prog);
    fprintf(stderr, "sluice migrate: %s\n", j.err[0] ? j.err : "out of memory");
    if (!j.verify_only && j.dst && !j.commit_unknown)
        fprintf(stderr, "sluice migrate: nothing was committed; the target is as it was\n");
out:
    bfiles_free(old, nold);
    bfiles_free(j.files, j.nfiles);
    bfiles_free(j.tfiles, j.ntfiles);
    for (size_t i = 0; i < j.ntabs; i++) {
        table_sum_release(&j.tabs[i].src);
        table_sum_release(&j.tabs[i].dst);
        table_def_free(j.tabs[i].owned);
    }
    free(j.tabs);
    datasets_free(&j);
    store_close(j.src);
    store_close(j.dst);
    free(j.data_dir);
    return rc;
}
