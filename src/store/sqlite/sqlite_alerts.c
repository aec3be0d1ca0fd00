/*
 * sqlite_alerts.c - alerts and their history, the outbox of their
 * notifications, and the sentinel's automatic reset of stuck batches, in SQLite
 * (see store.h). Alerts come back as structs; ops/alert_json.c makes the API's JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sqlite_internal.h"
#include "util/mem.h"

static int prep(struct sqlite_store *s, const char *sql, sqlite3_stmt **q, const char *what)
{
    return sqlite3_prepare_v2(s->db, sql, -1, q, NULL) == SQLITE_OK ? 0 : sqlite_fail(s, what);
}

static char *col(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    return t ? sl_strdup((const char *)t) : NULL;
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

/* The row of a SELECT ALERT_COLS in *a (strings owned). */
static void read_alert(sqlite3_stmt *q, struct alert *a)
{
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

/* Every row of q (a SELECT ALERT_COLS, bound) in *out, *n of them; finalizes q. */
static int read_alerts(struct sqlite_store *s, sqlite3_stmt *q, struct alert **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    int rc = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            struct alert *v = sl_realloc(*out, cap * sizeof *v);
            if (!v) {
                snprintf(s->err, sizeof s->err, "alerts: out of memory");
                rc = -1;
                break;
            }
            *out = v;
        }
        struct alert *a = &(*out)[(*n)++];
        memset(a, 0, sizeof *a);
        read_alert(q, a);
    }
    sqlite3_finalize(q);
    if (rc < 0) {
        for (size_t i = 0; i < *n; i++)
            alert_release(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

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
            struct alert *v = sl_realloc(*out, cap * sizeof *v);
            if (!v)
                break;
            *out = v;
        }
        read_alert(q, &(*out)[(*n)++]);
    }
    sqlite3_finalize(q);
    return 0;
}

int sqlite_alert_list(struct store *st, const char *state, int64_t after_id, int desc, int limit,
                      struct alert **out, size_t *n)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    *out = NULL;
    *n = 0;
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
    return read_alerts(s, q, out, n);
}

int sqlite_alert_get(struct store *st, int64_t id, struct alert *out, struct alert_history **hist,
                     size_t *nhist)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    memset(out, 0, sizeof *out);
    *hist = NULL;
    *nhist = 0;
    if (prep(s, "SELECT " ALERT_COLS " FROM alerts WHERE id = ?", &q, "alert") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return 1;
    }
    read_alert(q, out);
    sqlite3_finalize(q);
    if (prep(s, "SELECT at_ms, event, detail FROM alert_events WHERE alert_id = ? ORDER BY seq", &q,
             "alert") < 0) {
        alert_release(out);
        return -1;
    }
    sqlite3_bind_int64(q, 1, id);
    size_t cap = 0;
    int rc = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (*nhist == cap) {
            cap = cap ? cap * 2 : 8;
            struct alert_history *v = sl_realloc(*hist, cap * sizeof *v);
            if (!v) {
                snprintf(s->err, sizeof s->err, "alert: out of memory");
                rc = -1;
                break;
            }
            *hist = v;
        }
        struct alert_history *h = &(*hist)[(*nhist)++];
        h->at_ms = sqlite3_column_int64(q, 0);
        h->event = col(q, 1);
        h->detail = col(q, 2);
    }
    sqlite3_finalize(q);
    if (rc < 0) {
        alert_history_free(*hist, *nhist);
        *hist = NULL;
        *nhist = 0;
        alert_release(out);
    }
    return rc;
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

/* ---- the outbox ------------------------------------------------------------- */

int sqlite_outbox_add(struct store *st, struct outbox_row *r)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             "INSERT INTO alert_outbox(alert_id, receiver, event, body, created_ms, attempts,"
             " next_ms) VALUES (?,?,?,?,?,?,?)",
             &q, "outbox add") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, r->alert_id);
    sqlite3_bind_text(q, 2, r->receiver, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, r->event, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, r->body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, r->created_ms);
    sqlite3_bind_int(q, 6, r->attempts);
    sqlite3_bind_int64(q, 7, r->next_ms);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return sqlite_fail(s, "outbox add");
    r->id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int sqlite_outbox_due(struct store *st, int64_t now_ms, int limit, struct outbox_row **out,
                      size_t *n)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    *out = NULL;
    *n = 0;
    if (prep(s,
             "SELECT id, alert_id, receiver, event, body, created_ms, attempts, next_ms,"
             " last_error FROM alert_outbox d WHERE next_ms <= ?1 AND NOT EXISTS (SELECT 1"
             " FROM alert_outbox e WHERE e.alert_id = d.alert_id AND e.receiver = d.receiver"
             " AND e.id < d.id) ORDER BY id LIMIT ?2",
             &q, "outbox due") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, now_ms);
    sqlite3_bind_int(q, 2, limit);
    struct outbox_row *v = sl_calloc(limit > 0 ? (size_t)limit : 1, sizeof *v);
    if (!v) {
        sqlite3_finalize(q);
        snprintf(s->err, sizeof s->err, "outbox due: out of memory");
        return -1;
    }
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && *n < (size_t)limit) {
        struct outbox_row *r = &v[(*n)++];
        r->id = sqlite3_column_int64(q, 0);
        r->alert_id = sqlite3_column_int64(q, 1);
        r->receiver = col(q, 2);
        r->event = col(q, 3);
        r->body = col(q, 4);
        r->created_ms = sqlite3_column_int64(q, 5);
        r->attempts = sqlite3_column_int(q, 6);
        r->next_ms = sqlite3_column_int64(q, 7);
        r->last_error = col(q, 8);
    }
    sqlite3_finalize(q);
    *out = v;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        for (size_t i = 0; i < *n; i++)
            outbox_release(&v[i]);
        free(v);
        *out = NULL;
        *n = 0;
        return sqlite_fail(s, "outbox due");
    }
    return 0;
}

int sqlite_outbox_finish(struct store *st, int64_t id, int64_t delivered_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (delivered_ms) {
        if (prep(s,
                 "UPDATE alerts SET notifications = notifications + 1, last_notified_ms = ?2"
                 " WHERE id = (SELECT alert_id FROM alert_outbox WHERE id = ?1)",
                 &q, "outbox finish") < 0)
            return -1;
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, delivered_ms);
        int rc = sqlite3_step(q);
        sqlite3_finalize(q);
        if (rc != SQLITE_DONE)
            return sqlite_fail(s, "outbox finish");
    }
    if (prep(s, "DELETE FROM alert_outbox WHERE id = ?", &q, "outbox finish") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, id);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "outbox finish");
}

int sqlite_outbox_retry(struct store *st, int64_t id, int64_t next_ms, const char *error)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s,
             "UPDATE alert_outbox SET attempts = attempts + 1, next_ms = ?2, last_error = ?3"
             " WHERE id = ?1",
             &q, "outbox retry") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, next_ms);
    sqlite3_bind_text(q, 3, error ? error : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sqlite_fail(s, "outbox retry");
}

int sqlite_outbox_pending(struct store *st, int64_t alert_id, const char *receiver)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s, "SELECT 1 FROM alert_outbox WHERE alert_id = ? AND receiver = ? LIMIT 1", &q,
             "outbox pending") < 0)
        return -1;
    sqlite3_bind_int64(q, 1, alert_id);
    sqlite3_bind_text(q, 2, receiver, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sqlite_fail(s, "outbox pending");
    return rc == SQLITE_ROW;
}

int sqlite_outbox_stats(struct store *st, int64_t *pending, int64_t *oldest_ms)
{
    struct sqlite_store *s = SQ(st);
    sqlite3_stmt *q;
    if (prep(s, "SELECT count(*), coalesce(min(created_ms), 0) FROM alert_outbox", &q,
             "outbox stats") < 0)
        return -1;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *pending = sqlite3_column_int64(q, 0);
        *oldest_ms = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : sqlite_fail(s, "outbox stats");
}
