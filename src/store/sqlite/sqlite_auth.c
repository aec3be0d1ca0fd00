/*
 * sqlite_auth.c - API key records and the audit log in SQLite (see store.h).
 */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sqlite_internal.h"
#include "util/mem.h"

static int done(struct sqlite_store *s, sqlite3_stmt *q, const char *what)
{
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, what);
}

static int prep(struct sqlite_store *s, const char *sql, sqlite3_stmt **q, const char *what)
{
    return sqlite3_prepare_v2(s->db, sql, -1, q, NULL) == SQLITE_OK ? 0 : sqlite_fail(s, what);
}

int sqlite_key_pepper(struct store *st, unsigned char out[32])
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s, "SELECT value FROM settings WHERE name = 'api_key_pepper'", &q, "pepper") < 0)
        return -1;
    int ok = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_bytes(q, 0) == 32;
    if (ok)
        memcpy(out, sqlite3_column_blob(q, 0), 32);
    sqlite3_finalize(q);
    if (!ok)
        snprintf(s->err, sizeof s->err, "pepper: missing");
    return ok ? 0 : -1;
}

int sqlite_key_add(struct store *st, const struct api_key *k)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             "INSERT INTO api_keys(id, name, role, prefix, hash, created_ms, expires_ms)"
             " VALUES (?,?,?,?,?,?,?)",
             &q, "key add") < 0)
        return -1;
    sqlite3_bind_text(q, 1, k->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, k->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, k->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, k->prefix, -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 5, k->hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, k->created_ms);
    if (k->expires_ms)
        sqlite3_bind_int64(q, 7, k->expires_ms);
    else
        sqlite3_bind_null(q, 7);
    return done(s, q, "key add");
}

#define KEY_COLS "id, name, role, prefix, hash, created_ms, expires_ms, last_used_ms, revoked_ms"

static void key_row(sqlite3_stmt *q, struct api_key *k)
{
    memset(k, 0, sizeof *k);
    snprintf(k->id, sizeof k->id, "%s", (const char *)sqlite3_column_text(q, 0));
    k->name = sl_strdup((const char *)sqlite3_column_text(q, 1));
    snprintf(k->role, sizeof k->role, "%s", (const char *)sqlite3_column_text(q, 2));
    snprintf(k->prefix, sizeof k->prefix, "%s", (const char *)sqlite3_column_text(q, 3));
    if (sqlite3_column_bytes(q, 4) == 32)
        memcpy(k->hash, sqlite3_column_blob(q, 4), 32);
    k->created_ms = sqlite3_column_int64(q, 5);
    k->expires_ms = sqlite3_column_int64(q, 6);
    k->last_used_ms = sqlite3_column_int64(q, 7);
    k->revoked_ms = sqlite3_column_int64(q, 8);
}

int sqlite_key_get(struct store *st, const char *id, struct api_key *out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?", &q, "key get") < 0)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        key_row(q, out);
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? 1 : sqlite_fail(s, "key get");
}

int sqlite_key_list(struct store *st, struct api_key **out, size_t *n)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    *out = NULL;
    *n = 0;
    if (prep(s, "SELECT " KEY_COLS " FROM api_keys ORDER BY created_ms DESC, id", &q, "key list") <
        0)
        return -1;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            struct api_key *v = sl_realloc(*out, cap * sizeof *v);
            if (!v)
                break;
            *out = v;
        }
        key_row(q, &(*out)[(*n)++]);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; i < *n; i++)
            api_key_release(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
        return sqlite_fail(s, "key list");
    }
    return 0;
}

int sqlite_key_revoke(struct store *st, const char *id, int64_t now_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s, "UPDATE api_keys SET revoked_ms = coalesce(revoked_ms, ?2) WHERE id = ?1", &q,
             "key revoke") < 0)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, now_ms);
    if (done(s, q, "key revoke") < 0)
        return -1;
    return sqlite3_changes(s->db) ? 0 : 1;
}

int sqlite_key_touch(struct store *st, const char *id, int64_t now_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             "UPDATE api_keys SET last_used_ms = max(coalesce(last_used_ms, 0), ?2)"
             " WHERE id = ?1",
             &q, "key touch") < 0)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, now_ms);
    return done(s, q, "key touch");
}

int sqlite_audit_add(struct store *st, const struct audit_new *e)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             "INSERT INTO audit(at_ms, actor, role, method, path, status, remote, request_id)"
             " VALUES (?,?,?,?,?,?,?,?)",
             &q, "audit") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, e->at_ms);
    sqlite3_bind_text(q, 2, e->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, e->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, e->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, e->path, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 6, e->status);
    sqlite3_bind_text(q, 7, e->remote, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 8, e->request_id, -1, SQLITE_STATIC);
    return done(s, q, "audit");
}

int sqlite_audit_list(struct store *st, const struct audit_filter *f, json_t **out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
#define AUDIT_LIST                                                                                 \
    "SELECT id, at_ms, actor, role, method, path, status, remote, request_id FROM audit"           \
    " WHERE at_ms >= ?2 AND (?7 = 0 OR at_ms < ?7) AND (?3 IS NULL OR actor = ?3)"                 \
    " AND (?4 IS NULL OR method = ?4) AND (?5 = 0 OR status = ?5)"
    if (prep(s,
             f->desc ? AUDIT_LIST " AND id < ?1 ORDER BY id DESC LIMIT ?6"
                     : AUDIT_LIST " AND id > ?1 ORDER BY id LIMIT ?6",
             &q, "audit list") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, f->desc && !f->after_id ? INT64_MAX : f->after_id);
    sqlite3_bind_int64(q, 7, f->until_ms);
    sqlite3_bind_int64(q, 2, f->since_ms);
    if (f->actor)
        sqlite3_bind_text(q, 3, f->actor, -1, SQLITE_STATIC);
    if (f->method)
        sqlite3_bind_text(q, 4, f->method, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 5, f->status);
    sqlite3_bind_int(q, 6, f->limit);
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:I,s:I,s:s,s:s?,s:s,s:s,s:i,s:s?,s:s?}", "id",
                                           (json_int_t)sqlite3_column_int64(q, 0), "at_ms",
                                           (json_int_t)sqlite3_column_int64(q, 1), "actor",
                                           (const char *)sqlite3_column_text(q, 2), "role",
                                           (const char *)sqlite3_column_text(q, 3), "method",
                                           (const char *)sqlite3_column_text(q, 4), "path",
                                           (const char *)sqlite3_column_text(q, 5), "status",
                                           sqlite3_column_int(q, 6), "remote",
                                           (const char *)sqlite3_column_text(q, 7), "request_id",
                                           (const char *)sqlite3_column_text(q, 8)));
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        json_decref(a);
        return sqlite_fail(s, "audit list");
    }
    *out = a;
    return 0;
}
