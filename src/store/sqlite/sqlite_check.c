/*
 * sqlite_check.c - the integrity operation of store.h for SQLite (`sluice doctor`):
 * PRAGMA quick_check on the store's connection.
 */
#include <stdio.h>
#include <string.h>

#include "store/sqlite/sqlite_internal.h"

int sqlite_integrity(struct store *st, char *verdict, size_t len)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check(3)", -1, &q, NULL) != SQLITE_OK) {
        snprintf(verdict, len, "quick_check: %s", sqlite3_errmsg(s->db));
        return sqlite_fail(s, "quick_check");
    }
    int rc = sqlite3_step(q), bad = 0;
    if (rc != SQLITE_ROW) {
        snprintf(verdict, len, "quick_check: %s", sqlite3_errmsg(s->db));
        bad = 1;
    } else {
        /* "*** in database main ***\nPage 24: ...": keep the first complaint */
        const char *t = (const char *)sqlite3_column_text(q, 0);
        bad = !t || strcmp(t, "ok") != 0;
        if (t && !strncmp(t, "***", 3) && strchr(t, '\n'))
            t = strchr(t, '\n') + 1;
        snprintf(verdict, len, bad ? "quick_check: %.*s" : "quick_check %.*s",
                 t ? (int)strcspn(t, "\n") : 11, t ? t : "(no answer)");
    }
    sqlite3_finalize(q);
    return bad;
}
