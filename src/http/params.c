/*
 * params.c - every route's query parameters as rows of a table, the one check that
 * runs before a handler (params.h), and the getters. A new route takes no parameter
 * until it has a row here; tests/e2e/test_api_params.py sends an unknown parameter to
 * every route of the route table.
 */
#include "http/params.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwk.h"
#include "http/handlers.h"
#include "util/clock.h"
#include "util/timeparse.h"

#define LIMIT                                                                                      \
    {                                                                                              \
        "limit", QP_INT, NULL, 1, 1000                                                             \
    }
#define ORDER                                                                                      \
    {                                                                                              \
        "order", QP_ENUM, "desc|asc", 0, 0                                                         \
    }
#define STR(n)                                                                                     \
    {                                                                                              \
        n, QP_STRING, NULL, 0, 0                                                                   \
    }
#define TIME(n)                                                                                    \
    {                                                                                              \
        n, QP_TIME, NULL, 0, 0                                                                     \
    }
#define BOOL(n)                                                                                    \
    {                                                                                              \
        n, QP_BOOL, NULL, 0, 0                                                                     \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, QP_STRING, NULL, 0, 0                                                                \
    }
#define BATCH_STATES "uploaded|staging|validating|transforming|inserting|upserting|completed|failed"

static const struct qparam p_events[] = {STR("source"), END};
static const struct qparam p_upload[] = {STR("source"), STR("filename"),
                                         STR("error_threshold_percent"), END};
static const struct qparam p_batches_list[] = {{"status", QP_ENUM, BATCH_STATES, 0, 0},
                                               STR("dataset"),
                                               STR("source"),
                                               STR("filename_contains"),
                                               TIME("created_after"),
                                               TIME("created_before"),
                                               LIMIT,
                                               ORDER,
                                               {"cursor", QP_CURSOR, "batches", 0, 0},
                                               END};
static const struct qparam p_batches_delete_bulk[] = {{"status", QP_ENUM, BATCH_STATES, 0, 0},
                                                      STR("dataset"),
                                                      STR("filename_contains"),
                                                      TIME("created_after"),
                                                      BOOL("dry_run"),
                                                      END};
static const struct qparam p_dry_run[] = {BOOL("dry_run"), END};
static const struct qparam p_batch_errors[] = {{"format", QP_ENUM, "json|csv", 0, 0}, END};
static const struct qparam p_dlq_list[] = {STR("dataset"),
                                           STR("error_code"),
                                           {"status", QP_ENUM, "open|resolved|dropped|all", 0, 0},
                                           TIME("since"),
                                           TIME("until"),
                                           LIMIT,
                                           ORDER,
                                           {"cursor", QP_CURSOR, "dlq", 1, 0},
                                           END};
static const struct qparam p_dlq_drop_bulk[] = {STR("dataset"),
                                                STR("error_code"),
                                                TIME("since"),
                                                TIME("until"),
                                                BOOL("dry_run"),
                                                BOOL("all"),
                                                END};
static const struct qparam p_dataset[] = {STR("dataset"), END};
static const struct qparam p_hourly[] = {{"hours", QP_INT, NULL, 1, 24 * 400}, STR("dataset"), END};
/* the error distribution is ordered by occurrences: desc (the default) is most frequent first */
static const struct qparam p_distribution[] = {
    {"hours", QP_INT, NULL, 1, 24 * 400}, STR("dataset"), ORDER, END};
static const struct qparam p_monthly[] = {{"months", QP_INT, NULL, 1, 120}, STR("dataset"), END};
static const struct qparam p_alerts_list[] = {{"state", QP_ENUM, "firing|resolved", 0, 0},
                                              LIMIT,
                                              ORDER,
                                              {"cursor", QP_CURSOR, "alerts", 1, 0},
                                              END};
static const struct qparam p_audit_list[] = {
    STR("actor"),
    {"method", QP_ENUM, "GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS", 0, 0},
    {"status", QP_INT, NULL, 100, 599},
    TIME("since"),
    TIME("until"),
    LIMIT,
    ORDER,
    {"cursor", QP_CURSOR, "audit", 1, 0},
    END};

static const struct qparam p_job_runs[] = {
    {"state", QP_ENUM, "queued|running|succeeded|failed|skipped|canceled", 0, 0},
    {"trigger", QP_ENUM, "schedule|manual|catchup|retry", 0, 0},
    LIMIT,
    {"before", QP_INT, NULL, 1, INT64_MAX},
    END};

static const struct {
    http_handler handler;
    const struct qparam *params;
} table[] = {
    {h_events_post, p_events},        {h_batches_upload, p_upload},
    {h_batches_list, p_batches_list}, {h_batches_delete_bulk, p_batches_delete_bulk},
    {h_batches_delete, p_dry_run},    {h_batches_errors, p_batch_errors},
    {h_dlq_list, p_dlq_list},         {h_dlq_drop_bulk, p_dlq_drop_bulk},
    {h_stats_kpis, p_dataset},        {h_stats_hourly, p_hourly},
    {h_stats_monthly, p_monthly},     {h_errors_distribution, p_distribution},
    {h_alerts_list, p_alerts_list},   {h_audit_list, p_audit_list},
    {h_job_runs_list, p_job_runs},
};

const struct qparam *http_params_of(http_handler handler)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].handler == handler)
            return table[i].params;
    return NULL;
}

/* ---- cursors ---------------------------------------------------------------- */

/* A cursor is base64url("v1 LIST a|d POSITION"): opaque to clients, checked on the way in. */
json_t *hq_cursor_json(const char *list, int desc, const char *pos)
{
    if (!pos)
        return json_null();
    char raw[400];
    int n = snprintf(raw, sizeof raw, "v1 %s %c %s", list, desc ? 'd' : 'a', pos);
    if (n < 0 || (size_t)n >= sizeof raw)
        return json_null();
    unsigned char enc[4 * sizeof raw / 3 + 8];
    int el = EVP_EncodeBlock(enc, (const unsigned char *)raw, n);
    while (el > 0 && enc[el - 1] == '=')
        el--;
    for (int i = 0; i < el; i++)
        enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
    return json_stringn((const char *)enc, (size_t)el);
}

/* Decode a cursor into its list, order and position; -1 when it is not one. */
static int cursor_decode(const char *c, char *list, size_t lcap, char *ord, char *pos, size_t pcap)
{
    unsigned char *raw = NULL;
    size_t n = 0;
    if (!*c || jwk_b64url_decode(c, strlen(c), &raw, &n) < 0)
        return -1;
    int rc = -1;
    const char *s = (const char *)raw;
    const char *a = strchr(s, ' '), *b = a ? strchr(a + 1, ' ') : NULL,
               *d = b ? strchr(b + 1, ' ') : NULL;
    if (strlen(s) == n && !strncmp(s, "v1 ", 3) && a == s + 2 && b && d && d == b + 2 &&
        (b[1] == 'a' || b[1] == 'd') && (size_t)(b - a - 1) < lcap && strlen(d + 1) < pcap &&
        d[1]) {
        snprintf(list, lcap, "%.*s", (int)(b - a - 1), a + 1);
        *ord = b[1];
        snprintf(pos, pcap, "%s", d + 1);
        rc = 0;
    }
    free(raw);
    return rc;
}

/* ---- the check ------------------------------------------------------------------ */

static int set(enum sluice_err *code, enum sluice_err c, char *msg, size_t cap, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));
static int set(enum sluice_err *code, enum sluice_err c, char *msg, size_t cap, const char *fmt,
               ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    *code = c;
    return -1;
}

static int in_enum(const char *values, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = values; p && *p;) {
        size_t l = strcspn(p, "|");
        if (l == n && n && !strncmp(p, v, n))
            return 1;
        p += l + (p[l] == '|');
    }
    return 0;
}

static void names(const struct qparam *spec, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (const struct qparam *q = spec; q && q->name && o < cap; q++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? ", " : "", q->name);
    if (!o)
        snprintf(out, cap, "none");
}

static int check_value(const struct http_request *r, const struct qparam *q, const char *v,
                       enum sluice_err *code, char *msg, size_t cap)
{
    char err[256];
    switch (q->type) {
    case QP_STRING:
        return 0;
    case QP_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "false") || !strcmp(v, "1") || !strcmp(v, "0"))
            return 0;
        return set(code, ERR_INVALID_PARAMETER, msg, cap,
                   "%s must be true, false, 1 or 0, not '%s'", q->name, v);
    case QP_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (*v && !*end && !errno && n >= q->min && n <= q->max && *v != '+' && *v != ' ')
            return 0;
        return set(code, ERR_INVALID_PARAMETER, msg, cap,
                   "%s must be an integer from %lld to %lld, not '%s'", q->name, q->min, q->max, v);
    }
    case QP_ENUM:
        if (in_enum(q->values, v))
            return 0;
        char list[200];
        size_t o = 0;
        for (const char *p = q->values; *p && o + 3 < sizeof list; p++) {
            if (*p == '|') {
                list[o++] = ',';
                list[o++] = ' ';
            } else {
                list[o++] = *p;
            }
        }
        list[o] = 0;
        return set(code, ERR_INVALID_PARAMETER, msg, cap, "%s must be one of %s, not '%s'", q->name,
                   list, v);
    case QP_TIME: {
        int64_t t;
        if (time_parse(v, clock_wall_ms(), &t, err, sizeof err) == 0)
            return 0;
        return set(code, ERR_INVALID_PARAMETER, msg, cap, "%s: %s", q->name, err);
    }
    case QP_CURSOR: {
        char list[32], ord = 0, pos[256];
        if (cursor_decode(v, list, sizeof list, &ord, pos, sizeof pos) < 0)
            return set(code, ERR_INVALID_CURSOR, msg, cap,
                       "cursor: '%.64s' is not a cursor of this API (pass next_cursor as given)",
                       v);
        if (strcmp(list, q->values) != 0)
            return set(code, ERR_INVALID_CURSOR, msg, cap,
                       "cursor: this cursor is from the %s list, not the %s list", list, q->values);
        if ((ord == 'd') != hq_desc(r))
            return set(code, ERR_INVALID_CURSOR, msg, cap,
                       "cursor: this cursor continues order=%s, not order=%s",
                       ord == 'd' ? "desc" : "asc", hq_desc(r) ? "desc" : "asc");
        if (q->min == 1 && (strspn(pos, "0123456789") != strlen(pos) || strlen(pos) > 18))
            return set(code, ERR_INVALID_CURSOR, msg, cap, "cursor: a bad position");
        return 0;
    }
    }
    return 0;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A parameter's name, percent-decoded as http_query() decodes it ('+' a space). */
static void decode_name(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        char ch = s[i];
        if (ch == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        out[o++] = ch ? ch : '?';
    }
    out[o] = 0;
}

#define MAX_DECLARED 16

int http_params_check(const struct http_request *r, enum sluice_err *code, char *msg, size_t cap)
{
    const struct qparam *spec = r->route ? http_params_of(r->route->handler) : NULL;
    int seen[MAX_DECLARED] = {0};
    for (const char *q = r->query ? r->query : ""; *q;) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        char key[64];
        decode_name(q, eq ? (size_t)(eq - q) : len, key, sizeof key);
        q += len + (q[len] == '&');
        if (len == 0)
            continue; /* "a=1&&b=2" */
        int i = 0;
        while (spec && spec[i].name && strcmp(spec[i].name, key) != 0)
            i++;
        if (!spec || !spec[i].name) {
            char all[400];
            names(spec, all, sizeof all);
            return set(code, ERR_UNKNOWN_PARAMETER, msg, cap,
                       "unknown query parameter '%s' (this route takes: %s)", key, all);
        }
        if (i < MAX_DECLARED && ++seen[i] > 1)
            return set(code, ERR_INVALID_PARAMETER, msg, cap, "%s is given more than once", key);
    }
    for (int i = 0; spec && spec[i].name; i++) {
        char v[HQ_MAX + 1];
        int has = http_query(r, spec[i].name, v, sizeof v);
        if (has == 0 || (spec[i].type == QP_STRING && has == 1))
            continue;
        if (has < 0)
            return set(code, ERR_INVALID_PARAMETER, msg, cap, "%s is longer than %zu bytes",
                       spec[i].name, sizeof v - 1);
        if (check_value(r, &spec[i], v, code, msg, cap) < 0)
            return -1;
    }
    return 0;
}

/* ---- getters ------------------------------------------------------------------ */

int hq_bool(const struct http_request *r, const char *name)
{
    char v[8];
    return http_query(r, name, v, sizeof v) == 1 && (!strcmp(v, "true") || !strcmp(v, "1"));
}

const char *hq_str(const struct http_request *r, const char *name, char *buf, size_t cap)
{
    return http_query(r, name, buf, cap) == 1 && buf[0] ? buf : NULL;
}

long long hq_int(const struct http_request *r, const char *name, long long def)
{
    char v[32];
    return http_query(r, name, v, sizeof v) == 1 && v[0] ? strtoll(v, NULL, 10) : def;
}

int64_t hq_time(const struct http_request *r, const char *name)
{
    char v[128];
    int64_t t = 0;
    if (http_query(r, name, v, sizeof v) == 1 && time_parse(v, clock_wall_ms(), &t, NULL, 0) < 0)
        t = 0;
    return t;
}

int hq_desc(const struct http_request *r)
{
    char v[8];
    return !(http_query(r, "order", v, sizeof v) == 1 && !strcmp(v, "asc"));
}

int hq_cursor(const struct http_request *r, char *pos, size_t cap)
{
    char v[512], list[32], ord;
    if (http_query(r, "cursor", v, sizeof v) != 1 ||
        cursor_decode(v, list, sizeof list, &ord, pos, cap) < 0)
        return 0;
    return 1;
}
