/*
 * pg_alerts.c - alerts, their history and the outbox of their
 * notifications in PostgreSQL (see store.h); alerts come back as structs,
 * ops/alert_json.c makes the API's JSON. At most one firing alert per
 * fingerprint is the schema's partial unique index (alerts_firing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_internal.h"
#include "util/mem.h"

#define ALERT_COLS                                                                                 \
    "id, fingerprint, rule, severity, labels, summary, details, state, started_ms, updated_ms,"    \
    " resolved_ms, last_notified_ms, notifications"

/* Row i of a SELECT ALERT_COLS in *a (strings owned). */
static void read_alert(const PGresult *r, int i, struct alert *a)
{
    a->id = pg_get_int(r, i, 0);
    a->fingerprint = pg_get_str(r, i, 1);
    a->rule = pg_get_str(r, i, 2);
    a->severity = pg_get_str(r, i, 3);
    a->labels_json = pg_get_str(r, i, 4);
    a->summary = pg_get_str(r, i, 5);
    a->details_json = pg_get_str(r, i, 6);
    a->state = pg_get_str(r, i, 7);
    a->started_ms = pg_get_int(r, i, 8);
    a->updated_ms = pg_get_int(r, i, 9);
    a->resolved_ms = pg_get_int(r, i, 10);
    a->last_notified_ms = pg_get_int(r, i, 11);
    a->notifications = (int)pg_get_int(r, i, 12);
}

/* Every row of r (a SELECT ALERT_COLS) in *out, *n of them; clears r. */
static int read_alerts(struct pg_store *s, PGresult *r, struct alert **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rows = PQntuples(r);
    if (rows > 0 && !(*out = sl_calloc((size_t)rows, sizeof **out))) {
        PQclear(r);
        snprintf(s->err, sizeof s->err, "alerts: out of memory");
        return -1;
    }
    for (int i = 0; i < rows; i++)
        read_alert(r, i, &(*out)[i]);
    *n = (size_t)rows;
    PQclear(r);
    return 0;
}

int pg_alert_firing(struct store *st, struct alert **out, size_t *n)
{
    struct pg_store *s = PG(st);
    *out = NULL;
    *n = 0;
    PGresult *r =
        pg_exec(s, "alerts", "SELECT " ALERT_COLS " FROM alerts WHERE state = 'firing' ORDER BY id",
                0, NULL);
    if (!r)
        return -1;
    return read_alerts(s, r, out, n);
}

int pg_alert_list(struct store *st, const char *state, int64_t after_id, int desc, int limit,
                  struct alert **out, size_t *n)
{
    struct pg_store *s = PG(st);
    char ab[24], lb[24];
    const char *p[3] = {state, pg_int(ab, desc && !after_id ? INT64_MAX : after_id),
                        pg_int(lb, limit)};
    *out = NULL;
    *n = 0;
    PGresult *r = pg_exec(s, "alerts",
                          desc ? "SELECT " ALERT_COLS " FROM alerts WHERE ($1::text IS NULL OR"
                                 " state = $1::text) AND id < $2::bigint ORDER BY id DESC"
                                 " LIMIT $3::bigint"
                               : "SELECT " ALERT_COLS " FROM alerts WHERE ($1::text IS NULL OR"
                                 " state = $1::text) AND id > $2::bigint ORDER BY id"
                                 " LIMIT $3::bigint",
                          3, p);
    if (!r)
        return -1;
    return read_alerts(s, r, out, n);
}

int pg_alert_get(struct store *st, int64_t id, struct alert *out, struct alert_history **hist,
                 size_t *nhist)
{
    struct pg_store *s = PG(st);
    char ib[24];
    const char *p[1] = {pg_int(ib, id)};
    memset(out, 0, sizeof *out);
    *hist = NULL;
    *nhist = 0;
    PGresult *r =
        pg_exec(s, "alert", "SELECT " ALERT_COLS " FROM alerts WHERE id = $1::bigint", 1, p);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    read_alert(r, 0, out);
    PQclear(r);
    r = pg_exec(s, "alert",
                "SELECT at_ms, event, detail FROM alert_events WHERE alert_id = $1::bigint"
                " ORDER BY seq",
                1, p);
    if (!r) {
        alert_release(out);
        return -1;
    }
    int rows = PQntuples(r);
    if (rows > 0 && !(*hist = sl_calloc((size_t)rows, sizeof **hist))) {
        PQclear(r);
        alert_release(out);
        snprintf(s->err, sizeof s->err, "alert: out of memory");
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        (*hist)[i].at_ms = pg_get_int(r, i, 0);
        (*hist)[i].event = pg_get_str(r, i, 1);
        (*hist)[i].detail = pg_get_str(r, i, 2);
    }
    *nhist = (size_t)rows;
    PQclear(r);
    return 0;
}

int pg_alert_put(struct store *st, struct alert *a)
{
    struct pg_store *s = PG(st);
    char b[7][24];
    const char *p[13] = {a->id ? pg_int(b[0], a->id) : NULL,
                         a->fingerprint,
                         a->rule,
                         a->severity,
                         a->labels_json ? a->labels_json : "{}",
                         a->summary ? a->summary : "",
                         a->details_json,
                         a->state,
                         pg_int(b[1], a->started_ms),
                         pg_int(b[2], a->updated_ms),
                         a->resolved_ms ? pg_int(b[3], a->resolved_ms) : NULL,
                         a->last_notified_ms ? pg_int(b[4], a->last_notified_ms) : NULL,
                         pg_int(b[5], a->notifications)};
    if (a->id)
        return pg_cmd(s, "alert put",
                      "UPDATE alerts SET fingerprint = $2, rule = $3, severity = $4, labels = $5,"
                      " summary = $6, details = $7, state = $8, started_ms = $9::bigint,"
                      " updated_ms = $10::bigint, resolved_ms = $11::bigint,"
                      " last_notified_ms = $12::bigint, notifications = $13::int"
                      " WHERE id = $1::bigint",
                      13, p);
    PGresult *r =
        pg_exec(s, "alert put",
                "INSERT INTO alerts(fingerprint, rule, severity, labels, summary, details,"
                " state, started_ms, updated_ms, resolved_ms, last_notified_ms,"
                " notifications) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint,"
                " $9::bigint, $10::bigint, $11::bigint, $12::int) RETURNING id",
                12, p + 1);
    if (!r)
        return -1;
    a->id = pg_get_int(r, 0, 0);
    PQclear(r);
    return 0;
}

int pg_alert_event(struct store *st, int64_t id, int64_t at_ms, const char *event,
                   const char *detail)
{
    struct pg_store *s = PG(st);
    char ib[24], tb[24];
    const char *p[4] = {pg_int(ib, id), pg_int(tb, at_ms), event, detail};
    return pg_cmd(s, "alert event",
                  "INSERT INTO alert_events(alert_id, at_ms, event, detail)"
                  " VALUES ($1::bigint, $2::bigint, $3, $4)",
                  4, p);
}

/* ---- the outbox ------------------------------------------------------------- */

int pg_outbox_add(struct store *st, struct outbox_row *r)
{
    struct pg_store *s = PG(st);
    char b[4][24];
    const char *p[7] = {pg_int(b[0], r->alert_id),
                        r->receiver,
                        r->event,
                        r->body,
                        pg_int(b[1], r->created_ms),
                        pg_int(b[2], r->attempts),
                        pg_int(b[3], r->next_ms)};
    PGresult *res = pg_exec(s, "outbox add",
                            "INSERT INTO alert_outbox(alert_id, receiver, event, body, created_ms,"
                            " attempts, next_ms) VALUES ($1::bigint, $2, $3, $4, $5::bigint,"
                            " $6::int, $7::bigint) RETURNING id",
                            7, p);
    if (!res)
        return -1;
    r->id = pg_get_int(res, 0, 0);
    PQclear(res);
    return 0;
}

int pg_outbox_due(struct store *st, int64_t now_ms, int limit, struct outbox_row **out, size_t *n)
{
    struct pg_store *s = PG(st);
    char nb[24], lb[24];
    const char *p[2] = {pg_int(nb, now_ms), pg_int(lb, limit)};
    *out = NULL;
    *n = 0;
    PGresult *r = pg_exec(s, "outbox due",
                          "SELECT id, alert_id, receiver, event, body, created_ms, attempts,"
                          " next_ms, last_error FROM alert_outbox d WHERE next_ms <= $1::bigint"
                          " AND NOT EXISTS (SELECT 1 FROM alert_outbox e WHERE e.alert_id ="
                          " d.alert_id AND e.receiver = d.receiver AND e.id < d.id)"
                          " ORDER BY id LIMIT $2::bigint",
                          2, p);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    if (rows > 0 && !(*out = sl_calloc((size_t)rows, sizeof **out))) {
        PQclear(r);
        snprintf(s->err, sizeof s->err, "outbox due: out of memory");
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        struct outbox_row *o = &(*out)[i];
        o->id = pg_get_int(r, i, 0);
        o->alert_id = pg_get_int(r, i, 1);
        o->receiver = pg_get_str(r, i, 2);
        o->event = pg_get_str(r, i, 3);
        o->body = pg_get_str(r, i, 4);
        o->created_ms = pg_get_int(r, i, 5);
        o->attempts = (int)pg_get_int(r, i, 6);
        o->next_ms = pg_get_int(r, i, 7);
        o->last_error = pg_get_str(r, i, 8);
    }
    *n = (size_t)rows;
    PQclear(r);
    return 0;
}

int pg_outbox_finish(struct store *st, int64_t id, int64_t delivered_ms)
{
    struct pg_store *s = PG(st);
    char ib[24], tb[24];
    const char *p[2] = {pg_int(ib, id), pg_int(tb, delivered_ms)};
    if (delivered_ms && pg_cmd(s, "outbox finish",
                               "UPDATE alerts SET notifications = notifications + 1,"
                               " last_notified_ms = $2::bigint WHERE id = (SELECT alert_id FROM"
                               " alert_outbox WHERE id = $1::bigint)",
                               2, p) < 0)
        return -1;
    return pg_cmd(s, "outbox finish", "DELETE FROM alert_outbox WHERE id = $1::bigint", 1, p);
}

int pg_outbox_retry(struct store *st, int64_t id, int64_t next_ms, const char *error)
{
    struct pg_store *s = PG(st);
    char ib[24], nb[24];
    const char *p[3] = {pg_int(ib, id), pg_int(nb, next_ms), error ? error : ""};
    return pg_cmd(s, "outbox retry",
                  "UPDATE alert_outbox SET attempts = attempts + 1, next_ms = $2::bigint,"
                  " last_error = $3 WHERE id = $1::bigint",
                  3, p);
}

int pg_outbox_pending(struct store *st, int64_t alert_id, const char *receiver)
{
    struct pg_store *s = PG(st);
    char ab[24];
    const char *p[2] = {pg_int(ab, alert_id), receiver};
    PGresult *r = pg_exec(s, "outbox pending",
                          "SELECT 1 FROM alert_outbox WHERE alert_id = $1::bigint AND"
                          " receiver = $2 LIMIT 1",
                          2, p);
    if (!r)
        return -1;
    int any = PQntuples(r) > 0;
    PQclear(r);
    return any;
}

int pg_outbox_stats(struct store *st, int64_t *pending, int64_t *oldest_ms)
{
    struct pg_store *s = PG(st);
    PGresult *r =
        pg_exec(s, "outbox stats",
                "SELECT count(*), coalesce(min(created_ms), 0) FROM alert_outbox", 0, NULL);
    if (!r)
        return -1;
    *pending = pg_get_int(r, 0, 0);
    *oldest_ms = pg_get_int(r, 0, 1);
    PQclear(r);
    return 0;
}
