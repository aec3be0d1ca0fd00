/*
 * store_sqlite_alerts.c - alerts and their history, and the sentinel's
 * automatic reset of stuck batches, in SQLite (see store.h).
 */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"
#include "util/clock.h"

static int prep(struct sqlite_store *s, const char *sql, sqlite3_stmt **q, const char *what)
{
    return sqlite3_prepare_v2(s->db, sql, -1, q, NULL) == SQLITE_OK ? 0 : sqlite_fail(s, what);
}

static char *col(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    return t ? strdup((const char *)t) : NULL;
}

int sqlite_batch_auto_reset(struct store *st, const char *id, int max, int64_t now_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             "SELECT count(*) FROM batch_events WHERE batch_id = ? AND status = 'uploaded'"
             " AND detail = 'sentinel auto-reset'",
             &q, "auto reset") < 0)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : 0;
    sqlite3_finalize(q);
    if (n >= max)
        return 0;
    return sqlite_batch_set_status(st, id, "uploaded", "sentinel auto-reset", now_ms) < 0 ? -1 : 1;
}

#define ALERT_COLS                                                                                 \
    "id, fingerprint, rule, severity, labels, summary, details, state, started_ms, updated_ms,"    \
    " resolved_ms, last_notified_ms, notifications"

int sqlite_alert_firing(struct store *st, struct alert **out, size_t *n)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    *out = NULL;
    *n = 0;
    if (prep(s, "SELECT " ALERT_COLS " FROM alerts WHERE state = 'firing' ORDER BY id", &q,
             "alerts") < 0)
        return -1;
    size_t cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            struct alert *v = realloc(*out, cap * sizeof *v);
            if (!v)
                break;
            *out = v;
        }
        struct alert *a = &(*out)[(*n)++];
        a->id = sqlite3_column_int64(q, 0);
        a->fingerprint = col(q, 1);
        a->rule = col(q, 2);
        a->severity = col(q, 3);
        a->labels_json = col(q, 4);
        a->summary = col(q, 5);
        a->details_json = col(q, 6);
        a->state = col(q, 7);
        a->started_ms = sqlite3_column_int64(q, 8);
        a->updated_ms = sqlite3_column_int64(q, 9);
        a->resolved_ms = sqlite3_column_int64(q, 10);
        a->last_notified_ms = sqlite3_column_int64(q, 11);
        a->notifications = sqlite3_column_int(q, 12);
    }
    sqlite3_finalize(q);
    return 0;
}

static json_t *ms_json(int64_t ms)
{
    char t[32];
    return ms ? json_string(clock_rfc3339(ms, t, sizeof t)) : json_null();
}

static json_t *parsed(const char *txt)
{
    json_t *j = txt ? json_loads(txt, 0, NULL) : NULL;
    return j ? j : json_null();
}

static json_t *alert_row(sqlite3_stmt *q)
{
    return json_pack(
        "{s:I,s:s,s:s,s:o,s:s,s:o,s:s,s:o,s:o,s:o,s:o,s:i}", "id",
        (json_int_t)sqlite3_column_int64(q, 0), "rule", (const char *)sqlite3_column_text(q, 2),
        "severity", (const char *)sqlite3_column_text(q, 3), "labels",
        parsed((const char *)sqlite3_column_text(q, 4)), "summary",
        (const char *)sqlite3_column_text(q, 5), "details",
        parsed((const char *)sqlite3_column_text(q, 6)), "state",
        (const char *)sqlite3_column_text(q, 7), "started_at", ms_json(sqlite3_column_int64(q, 8)),
        "updated_at", ms_json(sqlite3_column_int64(q, 9)), "resolved_at",
        ms_json(sqlite3_column_int64(q, 10)), "last_notified_at",
        ms_json(sqlite3_column_int64(q, 11)), "notifications", sqlite3_column_int(q, 12));
}

int sqlite_alert_list(struct store *st, const char *state, int64_t after_id, int desc, int limit,
                      json_t **out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             desc ? "SELECT " ALERT_COLS " FROM alerts WHERE (?1 IS NULL OR state = ?1) AND id < ?2"
                    " ORDER BY id DESC LIMIT ?3"
                  : "SELECT " ALERT_COLS " FROM alerts WHERE (?1 IS NULL OR state = ?1) AND id > ?2"
                    " ORDER BY id LIMIT ?3",
             &q, "alerts") < 0)
        return -1;
    if (state)
        sqlite3_bind_text(q, 1, state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, desc && !after_id ? INT64_MAX : after_id);
    sqlite3_bind_int(q, 3, limit);
    json_t *a = json_array();
    while (sqlite3_step(q) == SQLITE_ROW)
        json_array_append_new(a, alert_row(q));
    sqlite3_finalize(q);
    *out = a;
    return 0;
}

int sqlite_alert_get(struct store *st, int64_t id, json_t **out)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s, "SELECT " ALERT_COLS " FROM alerts WHERE id = ?", &q, "alert") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return 1;
    }
    json_t *a = alert_row(q);
    sqlite3_finalize(q);
    if (prep(s, "SELECT at_ms, event, detail FROM alert_events WHERE alert_id = ? ORDER BY seq", &q,
             "alert") < 0) {
        json_decref(a);
        return -1;
    }
    sqlite3_bind_int64(q, 1, id);
    json_t *h = json_array();
    while (sqlite3_step(q) == SQLITE_ROW)
        json_array_append_new(h,
                              json_pack("{s:o,s:s,s:s?}", "at", ms_json(sqlite3_column_int64(q, 0)),
                                        "event", (const char *)sqlite3_column_text(q, 1), "detail",
                                        (const char *)sqlite3_column_text(q, 2)));
    sqlite3_finalize(q);
    json_object_set_new(a, "history", h);
    *out = a;
    return 0;
}

static void bind_ms(sqlite3_stmt *q, int i, int64_t ms)
{
    if (ms)
        sqlite3_bind_int64(q, i, ms);
    else
        sqlite3_bind_null(q, i);
}

int sqlite_alert_put(struct store *st, struct alert *a)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             a->id ? "UPDATE alerts SET fingerprint = ?2, rule = ?3, severity = ?4, labels = ?5,"
                     " summary = ?6, details = ?7, state = ?8, started_ms = ?9, updated_ms = ?10,"
                     " resolved_ms = ?11, last_notified_ms = ?12, notifications = ?13 WHERE id = ?1"
                   : "INSERT INTO alerts(fingerprint, rule, severity, labels, summary, details,"
                     " state, started_ms, updated_ms, resolved_ms, last_notified_ms, notifications)"
                     " VALUES (?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
             &q, "alert put") < 0)
        return -1;
    if (a->id)
        sqlite3_bind_int64(q, 1, a->id);
    sqlite3_bind_text(q, 2, a->fingerprint, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, a->rule, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, a->severity, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, a->labels_json ? a->labels_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, a->summary ? a->summary : "", -1, SQLITE_STATIC);
    if (a->details_json)
        sqlite3_bind_text(q, 7, a->details_json, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 7);
    sqlite3_bind_text(q, 8, a->state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 9, a->started_ms);
    sqlite3_bind_int64(q, 10, a->updated_ms);
    bind_ms(q, 11, a->resolved_ms);
    bind_ms(q, 12, a->last_notified_ms);
    sqlite3_bind_int(q, 13, a->notifications);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return sqlite_fail(s, "alert put");
    if (!a->id)
        a->id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int sqlite_alert_event(struct store *st, int64_t id, int64_t at_ms, const char *event,
                       const char *detail)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s, "INSERT INTO alert_events(alert_id, at_ms, event, detail) VALUES (?,?,?,?)", &q,
             "alert event") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, at_ms);
    sqlite3_bind_text(q, 3, event, -1, SQLITE_STATIC);
    if (detail)
        sqlite3_bind_text(q, 4, detail, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 4);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "alert event");
}
