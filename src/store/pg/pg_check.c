/*
 * pg_check.c - what a catalog query can say about a PostgreSQL store's integrity (the
 * integrity operation of store.h, for `sluice doctor`): every table of the store present
 * (tables.h and one per dataset), every index valid (pg_index.indisvalid: a failed
 * CREATE INDEX CONCURRENTLY or REINDEX leaves one that is not), and, when the amcheck
 * extension is installed, bt_index_check on every B-tree index. Nothing is created or
 * written: a read connection can run it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_internal.h"
#include "util/buf.h"

/* The tables of store_tables (and schema_migrations) not found on the search path: 0 and
 * *missing filled (NULL when none; PQclear'd by the caller), or -1. */
static int missing_tables(struct pg_store *s, PGresult **missing)
{
    struct buf names;
    buf_init(&names, 1 << 16);
    int ok = buf_appends(&names, "{schema_migrations") == 0;
    for (size_t i = 0; ok && i < store_ntables; i++)
        ok = buf_printf(&names, ",%s", store_tables[i].name) == 0;
    ok = ok && buf_appends(&names, "}") == 0;
    if (!ok) {
        buf_release(&names);
        snprintf(s->err, sizeof s->err, "integrity: out of memory");
        return -1;
    }
    const char *p[1] = {names.data};
    *missing =
        pg_exec(s, "integrity",
                "SELECT t FROM unnest($1::text[]) t WHERE to_regclass(quote_ident(t)) IS NULL"
                " UNION ALL SELECT 'ds_' || name FROM datasets"
                " WHERE to_regclass(quote_ident('ds_' || name)) IS NULL",
                1, p);
    buf_release(&names);
    return *missing ? 0 : -1;
}

int pg_integrity(struct store *st, char *verdict, size_t len)
{
    struct pg_store *s = PG(st);
    int have, want;
    if (pg_schema_version(st, &have, &want) < 0) {
        snprintf(verdict, len, "not checked: %s", s->err);
        return -1;
    }
    /* Tables: only at this binary's version (an older store lacks the newer ones). */
    char tables[160];
    if (have == want) {
        PGresult *r;
        if (missing_tables(s, &r) < 0) {
            snprintf(verdict, len, "not checked: %s", s->err);
            return -1;
        }
        int n = PQntuples(r);
        if (n > 0) {
            snprintf(verdict, len, "table %s missing%s", PQgetvalue(r, 0, 0),
                     n > 1 ? " (and others)" : "");
            PQclear(r);
            return 1;
        }
        PQclear(r);
        snprintf(tables, sizeof tables, "every table present");
    } else {
        snprintf(tables, sizeof tables, "tables not checked (schema version %d, not %d)", have,
                 want);
    }
    PGresult *r = pg_exec(s, "integrity",
                          "SELECT count(*), count(*) FILTER (WHERE NOT i.indisvalid),"
                          " min(c.relname) FILTER (WHERE NOT i.indisvalid)"
                          " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                          " JOIN pg_namespace n ON n.oid = c.relnamespace"
                          " WHERE n.nspname = ANY (current_schemas(false))",
                          0, NULL);
    if (!r) {
        snprintf(verdict, len, "not checked: %s", s->err);
        return -1;
    }
    int64_t nidx = pg_get_int(r, 0, 0), invalid = pg_get_int(r, 0, 1);
    if (invalid > 0) {
        snprintf(verdict, len, "index %s is not valid (%lld of %lld; REINDEX it)",
                 PQgetvalue(r, 0, 2), (long long)invalid, (long long)nidx);
        PQclear(r);
        return 1;
    }
    PQclear(r);
    /* amcheck, when installed (the doctor never installs it): a B-tree check per index. */
    r = pg_exec(
        s, "integrity",
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'amcheck'", 0,
        NULL);
    if (!r) {
        snprintf(verdict, len, "not checked: %s", s->err);
        return -1;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        snprintf(verdict, len,
                 "%s, %lld indexes valid, B-trees not verified (amcheck not installed)", tables,
                 (long long)nidx);
        return 0;
    }
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(%s.bt_index_check(c.oid)) FROM pg_index i"
             " JOIN pg_class c ON c.oid = i.indexrelid"
             " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam"
             " WHERE n.nspname = ANY (current_schemas(false)) AND a.amname = 'btree'",
             PQgetvalue(r, 0, 0));
    PQclear(r);
    r = pg_exec(s, "bt_index_check", sql, 0, NULL);
    if (!r) {
        snprintf(verdict, len, "%s", s->err);
        return 1;
    }
    int64_t checked = pg_get_int(r, 0, 0);
    PQclear(r);
    snprintf(verdict, len, "%s, %lld indexes valid, bt_index_check ok on %lld B-trees", tables,
             (long long)nidx, (long long)checked);
    return 0;
}
