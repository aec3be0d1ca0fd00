/*
 * sqlite_conn.c - the bottom of the SQLite backend: what a failure means (the store's
 * fault or the statement's), how it is recorded, and running SQL without results. Every
 * other file of src/store/sqlite/ calls these; they call nothing of the folder
 * (sqlite_internal.h declares them).
 */
#include <sqlite3.h>
#include <stdio.h>

#include "store/sqlite/sqlite_internal.h"

int sqlite_code_is_fault(int code)
{
    switch (code & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_NOMEM:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return 1;
    default: /* CONSTRAINT, MISMATCH, TOOBIG, RANGE, ERROR, ...: the statement's */
        return 0;
    }
}

int sqlite_fail(struct sqlite_store *s, const char *what)
{
    snprintf(s->err, sizeof s->err, "%s: %s", what, sqlite3_errmsg(s->db));
    s->fault = sqlite_code_is_fault(sqlite3_extended_errcode(s->db));
    return -1;
}

int sqlite_exec(struct sqlite_store *s, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(s->err, sizeof s->err, "%s", msg ? msg : sqlite3_errmsg(s->db));
        s->fault = sqlite_code_is_fault(rc);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}
