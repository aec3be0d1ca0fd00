/*
 * pg_auth.c - API key records, the keys' pepper and the audit log in
 * PostgreSQL (see pg_internal.h); same meaning as sqlite_auth.c. Hashes
 * and the pepper are BYTEA, passed and read as binary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_internal.h"
#include "util/mem.h"

int pg_key_pepper(struct store *st, unsigned char out[32])
{
    struct pg_store *s = PG(st);
    PGresult *r =
        pg_exec_bin(s, "pepper", "SELECT value FROM settings WHERE name = 'api_key_pepper'", 0,
                    NULL, NULL, NULL, 1);
    if (!r)
        return -1;
    int ok = PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 32;
    if (ok)
        memcpy(out, PQgetvalue(r, 0, 0), 32);
    PQclear(r);
    if (!ok)
        snprintf(s->err, sizeof s->err, "pepper: missing");
    return ok ? 0 : -1;
}

int pg_key_add(struct store *st, const struct api_key *k)
{
    char created[24], expires[24];
    const char *p[7] = {k->id,
                        k->name,
                        k->role,
                        k->prefix,
                        (const char *)k->hash,
                        pg_int(created, k->created_ms),
                        k->expires_ms ? pg_int(expires, k->expires_ms) : NULL};
    const int len[7] = {0, 0, 0, 0, 32, 0, 0};
    const int fmt[7] = {0, 0, 0, 0, 1, 0, 0};
    PGresult *r =
        pg_exec_bin(PG(st), "key add",
                    "INSERT INTO api_keys(id, name, role, prefix, hash, created_ms,"
                    " expires_ms) VALUES ($1, $2, $3, $4, $5::bytea, $6::bigint, $7::bigint)",
                    7, p, len, fmt, 0);
    PQclear(r);
    return r ? 0 : -1;
}

#define KEY_COLS "id, name, role, prefix, hash, created_ms, expires_ms, last_used_ms, revoked_ms"

static void key_row(const PGresult *r, int i, struct api_key *k)
{
    memset(k, 0, sizeof *k);
    snprintf(k->id, sizeof k->id, "%s", PQgetvalue(r, i, 0));
    k->name = pg_get_str(r, i, 1);
    snprintf(k->role, sizeof k->role, "%s", PQgetvalue(r, i, 2));
    snprintf(k->prefix, sizeof k->prefix, "%s", PQgetvalue(r, i, 3));
    size_t n = 0;
    unsigned char *h = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 4), &n);
    if (h && n == 32)
        memcpy(k->hash, h, 32);
    PQfreemem(h);
    k->created_ms = pg_get_int(r, i, 5);
    k->expires_ms = pg_get_int(r, i, 6);
    k->last_used_ms = pg_get_int(r, i, 7);
    k->revoked_ms = pg_get_int(r, i, 8);
}

int pg_key_get(struct store *st, const char *id, struct api_key *out)
{
    const char *p[1] = {id};
    PGresult *r =
        pg_exec(PG(st), "key get", "SELECT " KEY_COLS " FROM api_keys WHERE id = $1", 1, p);
    if (!r)
        return -1;
    int found = PQntuples(r) > 0;
    if (found)
        key_row(r, 0, out);
    PQclear(r);
    return found ? 0 : 1;
}

int pg_key_list(struct store *st, struct api_key **out, size_t *n)
{
    struct pg_store *s = PG(st);
    *out = NULL;
    *n = 0;
    PGresult *r = pg_exec(
        s, "key list", "SELECT " KEY_COLS " FROM api_keys ORDER BY created_ms DESC, id", 0, NULL);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    struct api_key *v = sl_calloc(rows ? (size_t)rows : 1, sizeof *v);
    if (!v) {
        PQclear(r);
        snprintf(s->err, sizeof s->err, "key list: out of memory");
        return -1;
    }
    for (int i = 0; i < rows; i++)
        key_row(r, i, &v[i]);
    PQclear(r);
    *out = v;
    *n = (size_t)rows;
    return 0;
}

int pg_key_revoke(struct store *st, const char *id, int64_t now_ms)
{
    char now[24];
    const char *p[2] = {id, pg_int(now, now_ms)};
    PGresult *r = pg_exec(PG(st), "key revoke",
                          "UPDATE api_keys SET revoked_ms = coalesce(revoked_ms, $2::bigint)"
                          " WHERE id = $1",
                          2, p);
    if (!r)
        return -1;
    int changed = strtoll(PQcmdTuples(r), NULL, 10) > 0;
    PQclear(r);
    return changed ? 0 : 1;
}

int pg_key_touch(struct store *st, const char *id, int64_t now_ms)
{
    char now[24];
    const char *p[2] = {id, pg_int(now, now_ms)};
    return pg_cmd(PG(st), "key touch",
                  "UPDATE api_keys SET last_used_ms = greatest(coalesce(last_used_ms, 0),"
                  " $2::bigint) WHERE id = $1",
                  2, p);
}

int pg_audit_add(struct store *st, const struct audit_new *e)
{
    char at[24], status[24];
    const char *p[8] = {pg_int(at, e->at_ms),      e->actor,  e->role,      e->method, e->path,
                        pg_int(status, e->status), e->remote, e->request_id};
    return pg_cmd(PG(st), "audit",
                  "INSERT INTO audit(at_ms, actor, role, method, path, status, remote, request_id)"
                  " VALUES ($1::bigint, $2, $3, $4, $5, $6::int, $7, $8)",
                  8, p);
}

int pg_audit_list(struct store *st, const struct audit_filter *f, json_t **out)
{
    char after[24], since[24], status[24], limit[24], until[24];
    const char *p[7] = {pg_int(after, f->desc && !f->after_id ? INT64_MAX : f->after_id),
                        pg_int(since, f->since_ms),
                        f->actor,
                        f->method,
                        pg_int(status, f->status),
                        f->limit < 0 ? NULL : pg_int(limit, f->limit),
                        pg_int(until, f->until_ms)};
#define AUDIT_LIST                                                                                 \
    "SELECT id, at_ms, actor, role, method, path, status, remote, request_id"                      \
    " FROM audit WHERE at_ms >= $2::bigint AND ($7::bigint = 0 OR at_ms < $7::bigint)"             \
    " AND ($3::text IS NULL OR actor = $3::text)"                                                  \
    " AND ($4::text IS NULL OR method = $4::text)"                                                 \
    " AND ($5::int = 0 OR status = $5::int)"
    PGresult *r =
        pg_exec(PG(st), "audit list",
                f->desc ? AUDIT_LIST " AND id < $1::bigint ORDER BY id DESC LIMIT $6::bigint"
                        : AUDIT_LIST " AND id > $1::bigint ORDER BY id LIMIT $6::bigint",
                7, p);
    if (!r)
        return -1;
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
#define OPT(c) (PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c))
        json_array_append_new(
            a, json_pack("{s:I,s:I,s:s,s:s?,s:s,s:s,s:i,s:s?,s:s?}", "id",
                         (json_int_t)pg_get_int(r, i, 0), "at_ms", (json_int_t)pg_get_int(r, i, 1),
                         "actor", PQgetvalue(r, i, 2), "role", OPT(3), "method",
                         PQgetvalue(r, i, 4), "path", PQgetvalue(r, i, 5), "status",
                         (int)pg_get_int(r, i, 6), "remote", OPT(7), "request_id", OPT(8)));
#undef OPT
    }
    PQclear(r);
    *out = a;
    return 0;
}
