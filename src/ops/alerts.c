/*
 * alerts.c - the alert lifecycle and the notifier (see alerts.h).
 */
#include "ops/alerts.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/catalog.h"
#include "config/config.h"
#include "writer/writer.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#define QUEUE_MAX 1000
#define RECEIVERS_MAX 32
#define DUE_MAX 100       /* outbox rows taken per pass */
#define INFLIGHT_MAX 1024 /* rows sent whose outcome is not committed yet */

/* This node holds the sentinel's role (alerts_set_leader, from sentinel.c). */
static int leader;

void alerts_set_leader(int is_leader)
{
    __atomic_store_n(&leader, is_leader, __ATOMIC_RELAXED);
}

/* ---- counters -------------------------------------------------------------- */

static pthread_mutex_t mmu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[64];
    unsigned long long ok, failed;
} rstats[RECEIVERS_MAX];
static size_t nrstats;
static long long firing_warning, firing_critical;
static unsigned long long dropped;
static int64_t pending_rows, oldest_pending_ms; /* the outbox, as last read */

static void count_delivery(const char *receiver, int ok)
{
    pthread_mutex_lock(&mmu);
    size_t i = 0;
    while (i < nrstats && strcmp(rstats[i].name, receiver) != 0)
        i++;
    if (i == nrstats && nrstats < RECEIVERS_MAX)
        snprintf(rstats[nrstats++].name, sizeof rstats[0].name, "%s", receiver);
    if (i < nrstats) {
        if (ok)
            rstats[i].ok++;
        else
            rstats[i].failed++;
    }
    pthread_mutex_unlock(&mmu);
}

void alerts_metrics(struct buf *out)
{
    pthread_mutex_lock(&mmu);
    buf_printf(out,
               "# HELP sluice_alerts_firing Alerts firing, by severity.\n"
               "# TYPE sluice_alerts_firing gauge\n"
               "sluice_alerts_firing{severity=\"warning\"} %lld\n"
               "sluice_alerts_firing{severity=\"critical\"} %lld\n",
               firing_warning, firing_critical);
    buf_appends(out, "# HELP sluice_alert_deliveries_total Alert notifications delivered, by "
                     "receiver.\n# TYPE sluice_alert_deliveries_total counter\n");
    for (size_t i = 0; i < nrstats; i++)
        buf_printf(out, "sluice_alert_deliveries_total{receiver=\"%s\"} %llu\n", rstats[i].name,
                   rstats[i].ok);
    buf_appends(out, "# HELP sluice_alert_delivery_failures_total Alert notification attempts "
                     "that failed, by receiver.\n# TYPE sluice_alert_delivery_failures_total "
                     "counter\n");
    for (size_t i = 0; i < nrstats; i++)
        buf_printf(out, "sluice_alert_delivery_failures_total{receiver=\"%s\"} %llu\n",
                   rstats[i].name, rstats[i].failed);
    int64_t now = clock_wall_ms();
    buf_printf(out,
               "# HELP sluice_alert_deliveries_pending Alert notifications in the outbox, not "
               "acknowledged by their receiver yet.\n"
               "# TYPE sluice_alert_deliveries_pending gauge\n"
               "sluice_alert_deliveries_pending %lld\n"
               "# HELP sluice_alert_delivery_oldest_pending_seconds Age of the oldest "
               "notification in the outbox (0: none).\n"
               "# TYPE sluice_alert_delivery_oldest_pending_seconds gauge\n"
               "sluice_alert_delivery_oldest_pending_seconds %.3f\n",
               (long long)pending_rows,
               oldest_pending_ms && now > oldest_pending_ms
                   ? (double)(now - oldest_pending_ms) / 1000.0
                   : 0.0);
    buf_printf(out,
               "# HELP sluice_alert_notifications_dropped_total Alertmanager refreshes dropped "
               "because the notifier's queue was full.\n"
               "# TYPE sluice_alert_notifications_dropped_total counter\n"
               "sluice_alert_notifications_dropped_total %llu\n",
               dropped);
    pthread_mutex_unlock(&mmu);
}

/* ---- the notifier ------------------------------------------------------------ */

/* An Alertmanager refresh: every firing alert re-sent at each evaluation, once, from
 * memory (the next evaluation sends it again). Everything else goes through the outbox. */
struct refresh {
    struct refresh *next;
    char receiver[64];
    char *url, *body;
};

static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcv = PTHREAD_COND_INITIALIZER;
static struct refresh *queue;
static size_t qlen;
static int running, stopping, kicked;
static pthread_t notifier;
/* Borrowed from alerts_notifier_start() until alerts_notifier_stop(). */
static struct writer *nwriter;
static struct catalog_source *ncatalogs;
static const char *nstore_uri;
static int64_t inflight[INFLIGHT_MAX];
static size_t ninflight;
/* The rows whose outcome committed lately, each with the count of such commits then
 * (settled_gen): a pass whose read of the outbox began before that commit may still see the
 * row (the read and the commit raced), and must not send it again. A ring: a read is
 * shorter than SETTLED_MAX commits' worth of rows. Under qmu. */
#define SETTLED_MAX 1024
static struct {
    int64_t id;
    uint64_t gen;
} settled[SETTLED_MAX];
static size_t nsettled;
static uint64_t settled_gen;

/* Whether row id's outcome committed after generation gen (the pass's read began then). */
static int settled_since(int64_t id, uint64_t gen)
{
    size_t n = nsettled < SETTLED_MAX ? nsettled : SETTLED_MAX;
    for (size_t i = 0; i < n; i++)
        if (settled[i].id == id && settled[i].gen > gen)
            return 1;
    return 0;
}

static void refresh_free(struct refresh *d)
{
    if (!d)
        return;
    free(d->url);
    free(d->body);
    free(d);
}

/* Wake the notifier: new outbox rows, or an outcome committed. */
static void kick(void)
{
    pthread_mutex_lock(&qmu);
    kicked = 1;
    pthread_cond_signal(&qcv);
    pthread_mutex_unlock(&qmu);
}

static void enqueue(struct refresh *d)
{
    pthread_mutex_lock(&qmu);
    if (qlen >= QUEUE_MAX || stopping || !running) {
        pthread_mutex_unlock(&qmu);
        pthread_mutex_lock(&mmu);
        dropped++;
        pthread_mutex_unlock(&mmu);
        refresh_free(d);
        return;
    }
    d->next = queue;
    queue = d;
    qlen++;
    kicked = 1;
    pthread_cond_signal(&qcv);
    pthread_mutex_unlock(&qmu);
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p, (void)u;
    return size * n;
}

/* One POST; 0 on a 2xx, else -1 with why. */
static int post(const char *url, const char *body, char *why, size_t cap)
{
    CURL *h = url ? curl_easy_init() : NULL;
    if (!h) {
        snprintf(why, cap, url ? "curl init" : "no url");
        return -1;
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    long status = 0;
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK)
        snprintf(why, cap, "%s", curl_easy_strerror(rc));
    else if (status < 200 || status > 299)
        snprintf(why, cap, "HTTP %ld", status);
    return rc == CURLE_OK && status >= 200 && status <= 299 ? 0 : -1;
}

/* url/api/v2/alerts (caller frees). */
static char *am_url(const char *url)
{
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/')
        ul--;
    char *u = sl_malloc(ul + 16);
    if (u)
        snprintf(u, ul + 16, "%.*s/api/v2/alerts", (int)ul, url);
    return u;
}

static int is_inflight(int64_t id)
{
    for (size_t i = 0; i < ninflight; i++)
        if (inflight[i] == id)
            return 1;
    return 0;
}

static void inflight_drop(int64_t id)
{
    for (size_t i = 0; i < ninflight; i++)
        if (inflight[i] == id) {
            inflight[i] = inflight[--ninflight];
            return;
        }
}

/* The outcome of one pass over the outbox, recorded by a writer job: delivered rows are
 * deleted and counted on their alert, failed ones wait for their next try. */
struct outcome {
    int64_t id;
    int64_t done_ms; /* delivered (or dropped: receiver gone, done_ms = -1) */
    int64_t next_ms; /* failed: when to try again */
    char why[160];
};

struct outcome_job {
    struct wjob job;
    size_t n;
    struct outcome o[DUE_MAX];
};

static int outcome_apply(struct wjob *job, struct store *st)
{
    struct outcome_job *j = (struct outcome_job *)job;
    for (size_t i = 0; i < j->n; i++) {
        const struct outcome *o = &j->o[i];
        int rc = o->done_ms ? store_outbox_finish(st, o->id, o->done_ms > 0 ? o->done_ms : 0)
                            : store_outbox_retry(st, o->id, o->next_ms, o->why);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static void outcome_deliver(struct wjob *job, int result)
{
    struct outcome_job *j = (struct outcome_job *)job;
    if (result != 0)
        log_warn("alert", "delivery outcome not recorded: the rows are sent again", NULL);
    pthread_mutex_lock(&qmu);
    if (result == 0)
        settled_gen++;
    for (size_t i = 0; i < j->n; i++) {
        inflight_drop(j->o[i].id);
        if (result == 0) {
            settled[nsettled % SETTLED_MAX].id = j->o[i].id;
            settled[nsettled % SETTLED_MAX].gen = settled_gen;
            nsettled++;
        }
    }
    kicked = 1;
    pthread_cond_signal(&qcv);
    pthread_mutex_unlock(&qmu);
    free(j);
}

/* Capped exponential backoff after the attempts-th failure (1-based). */
static int64_t backoff_ms(const struct sluice_config *c, int attempts)
{
    int64_t d = (int64_t)c->alerts.retry_initial_s * 1000;
    int64_t cap = (int64_t)c->alerts.retry_max_s * 1000;
    for (int i = 1; i < attempts && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

static const struct receiver_config *receiver_named(const struct sluice_config *c, const char *name)
{
    for (size_t i = 0; i < c->alerts.nreceivers; i++)
        if (!strcmp(c->alerts.receivers[i].name, name))
            return &c->alerts.receivers[i];
    return NULL;
}

static void record_failure(struct outcome *o, const struct sluice_config *c,
                           const struct outbox_row *r, const char *why)
{
    o->next_ms = clock_wall_ms() + backoff_ms(c, r->attempts + 1);
    snprintf(o->why, sizeof o->why, "%s", why);
    log_warn("alert", "delivery failed, will retry",
             "\"receiver\":\"%s\",\"alert_id\":%lld,\"event\":\"%s\",\"attempt\":%d,"
             "\"retry_in_s\":%lld,\"error\":\"%s\"",
             r->receiver, (long long)r->alert_id, r->event, r->attempts + 1,
             (long long)((o->next_ms - clock_wall_ms() + 999) / 1000), why);
}

/* Add row r's outcome to the job. */
static void record(struct outcome_job *j, const struct sluice_config *c, const struct outbox_row *r,
                   int ok, const char *why)
{
    struct outcome *o = &j->o[j->n++];
    *o = (struct outcome){.id = r->id, .done_ms = ok ? clock_wall_ms() : 0};
    if (!ok)
        record_failure(o, c, r, why[0] ? why : "failed");
}

/* One POST to Alertmanager receiver rc with every row of take[0..nt) that is for it and not
 * sent yet (sent[] is indexed like rows). */
static void send_am(const struct sluice_config *c, const struct receiver_config *rc,
                    struct outbox_row *rows, const size_t *take, size_t nt, char *sent,
                    struct outcome_job *j)
{
    json_t *list = json_array();
    for (size_t u = 0; u < nt; u++) {
        const struct outbox_row *x = &rows[take[u]];
        json_t *doc =
            !sent[take[u]] && !strcmp(x->receiver, rc->name) ? json_loads(x->body, 0, NULL) : NULL;
        if (doc)
            json_array_append_new(list, doc);
    }
    char why[160] = "";
    char *body = json_dumps(list, JSON_COMPACT);
    char *url = am_url(rc->url ? rc->url : "");
    int ok = body && url && post(url, body, why, sizeof why) == 0;
    free(body);
    free(url);
    json_decref(list);
    count_delivery(rc->name, ok);
    for (size_t u = 0; u < nt; u++) {
        const struct outbox_row *x = &rows[take[u]];
        if (sent[take[u]] || strcmp(x->receiver, rc->name) != 0)
            continue;
        sent[take[u]] = 1;
        record(j, c, x, ok, why);
    }
}

/* Deliver the outbox rows that are due (this node runs the sentinel), then have a writer
 * job record what happened. Rows are in id order and at most one per (alert, receiver),
 * so a receiver never gets an alert's resolution before its firing. */
static int outbox_pass(struct store *st)
{
    struct outbox_row *rows = NULL;
    size_t n = 0;
    int64_t pend = 0, oldest = 0;
    if (store_outbox_stats(st, &pend, &oldest) < 0)
        return -1;
    pthread_mutex_lock(&mmu);
    pending_rows = pend;
    oldest_pending_ms = oldest;
    pthread_mutex_unlock(&mmu);
    if (!pend || !__atomic_load_n(&leader, __ATOMIC_RELAXED))
        return 0;
    pthread_mutex_lock(&qmu);
    uint64_t gen0 = settled_gen; /* outcomes committed from here on may race the read */
    pthread_mutex_unlock(&qmu);
    if (store_outbox_due(st, clock_wall_ms(), DUE_MAX, &rows, &n) < 0)
        return -1;
    struct outcome_job *j = sl_calloc(1, sizeof *j);
    struct catalog *cat = catalog_get(ncatalogs);
    const struct sluice_config *c = &cat->cfg;
    /* the rows not in flight already; those of one Alertmanager receiver go in one POST */
    pthread_mutex_lock(&qmu);
    size_t take[DUE_MAX], nt = 0;
    for (size_t i = 0; j && i < n; i++)
        if (!is_inflight(rows[i].id) && !settled_since(rows[i].id, gen0) &&
            ninflight < INFLIGHT_MAX) {
            inflight[ninflight++] = rows[i].id;
            take[nt++] = i;
        }
    pthread_mutex_unlock(&qmu);
    char *sent = sl_calloc(n ? n : 1, 1);
    for (size_t t = 0; sent && t < nt; t++) {
        struct outbox_row *r = &rows[take[t]];
        if (sent[take[t]])
            continue;
        pthread_mutex_lock(&qmu);
        int stop = stopping;
        pthread_mutex_unlock(&qmu);
        if (stop)
            break; /* the rest stay in the outbox for the next start */
        const struct receiver_config *rc = receiver_named(c, r->receiver);
        char why[160] = "";
        if (!rc) { /* the receiver left the configuration: nobody to deliver to */
            log_warn("alert", "notification dropped: its receiver is not configured any more",
                     "\"receiver\":\"%s\",\"alert_id\":%lld", r->receiver, (long long)r->alert_id);
            sent[take[t]] = 1;
            j->o[j->n++] = (struct outcome){.id = r->id, .done_ms = -1};
            continue;
        }
        if (rc->type == 1) {
            send_am(c, rc, rows, take + t, nt - t, sent, j);
            continue;
        }
        sent[take[t]] = 1;
        int ok;
        if (rc->type == 2) {
            log_warn("alert", "notification", "\"receiver\":\"%s\",\"alert\":%s", rc->name,
                     r->body);
            ok = 1;
        } else {
            ok = post(rc->url, r->body, why, sizeof why) == 0;
        }
        count_delivery(rc->name, ok);
        record(j, c, r, ok, why);
    }
    /* taken but not tried (stopping): no longer in flight */
    pthread_mutex_lock(&qmu);
    for (size_t t = 0; t < nt; t++)
        if (!sent || !sent[take[t]])
            inflight_drop(rows[take[t]].id);
    pthread_mutex_unlock(&qmu);
    free(sent);
    catalog_release(cat);
    for (size_t i = 0; i < n; i++)
        outbox_release(&rows[i]);
    free(rows);
    if (!j)
        return 0;
    j->job.apply = outcome_apply;
    j->job.deliver = outcome_deliver;
    j->job.nrows = 1;
    if (!j->n || writer_submit(nwriter, &j->job) < 0) {
        if (j->n)
            log_warn("alert", "delivery outcome not recorded: the writer queue is full", NULL);
        outcome_deliver(&j->job, 0);
    }
    return 0;
}

static void send_refreshes(void)
{
    pthread_mutex_lock(&qmu);
    struct refresh *d = queue;
    queue = NULL;
    qlen = 0;
    pthread_mutex_unlock(&qmu);
    while (d) {
        struct refresh *next = d->next;
        char why[160] = "";
        int ok = post(d->url, d->body, why, sizeof why) == 0;
        count_delivery(d->receiver, ok);
        if (!ok)
            log_warn("alert", "Alertmanager refresh failed (sent again at the next evaluation)",
                     "\"receiver\":\"%s\",\"error\":\"%s\"", d->receiver, why);
        refresh_free(d);
        d = next;
    }
}

static void *notifier_main(void *arg)
{
    struct store *st = arg;
    pthread_setname_np(pthread_self(), "sl-notify");
    pthread_mutex_lock(&qmu);
    while (!stopping) {
        if (!kicked) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1; /* the outbox is read at least every second */
            pthread_cond_timedwait(&qcv, &qmu, &ts);
        }
        kicked = 0;
        if (stopping)
            break;
        pthread_mutex_unlock(&qmu);
        send_refreshes();
        if (!st) {
            char err[256];
            st = store_open(nstore_uri, 1, err, sizeof err);
        }
        if (st && outbox_pass(st) < 0) {
            /* As the sentinel does: a new connection replaces this one only once it
             * answers (a deleted SQLite file is still read through the open one). */
            char err[256];
            struct store *fresh = store_open(nstore_uri, 1, err, sizeof err);
            if (fresh && store_ping(fresh) == 0) {
                store_close(st);
                st = fresh;
            } else {
                store_close(fresh);
            }
        }
        pthread_mutex_lock(&qmu);
    }
    for (struct refresh *d = queue, *n; d; d = n) {
        n = d->next;
        refresh_free(d);
    }
    queue = NULL;
    qlen = 0;
    pthread_mutex_unlock(&qmu);
    store_close(st);
    return NULL;
}

void alerts_notifier_start(struct writer *writer, struct catalog_source *catalogs,
                           const char *store_uri)
{
    /* opened now, while the store is surely there (the thread reopens it when it fails) */
    char err[256];
    struct store *st = store_open(store_uri, 1, err, sizeof err);
    pthread_mutex_lock(&qmu);
    stopping = 0;
    nwriter = writer;
    ncatalogs = catalogs;
    nstore_uri = store_uri;
    running = pthread_create(&notifier, NULL, notifier_main, st) == 0;
    pthread_mutex_unlock(&qmu);
    if (!running)
        store_close(st);
}

void alerts_notifier_stop(void)
{
    pthread_mutex_lock(&qmu);
    stopping = 1;
    pthread_cond_broadcast(&qcv);
    int r = running;
    running = 0;
    pthread_mutex_unlock(&qmu);
    if (r)
        pthread_join(notifier, NULL);
}

/* ---- payloads -------------------------------------------------------------- */

static json_t *alert_doc(const struct alert *a, const char *status)
{
    char t1[32], t2[32];
    json_t *labels = json_loads(a->labels_json ? a->labels_json : "{}", 0, NULL);
    json_t *details = a->details_json ? json_loads(a->details_json, 0, NULL) : NULL;
    return json_pack("{s:s,s:s,s:{s:I,s:s,s:s,s:s,s:o,s:o,s:s,s:o}}", "status", status, "service",
                     "sluice", "alert", "id", (json_int_t)a->id, "rule", a->rule, "severity",
                     a->severity, "summary", a->summary, "labels", labels ? labels : json_object(),
                     "details", details ? details : json_object(), "started_at",
                     clock_rfc3339(a->started_ms, t1, sizeof t1), "resolved_at",
                     a->resolved_ms ? json_string(clock_rfc3339(a->resolved_ms, t2, sizeof t2))
                                    : json_null());
}

static char *webhook_body(const struct alert *a, const char *status, int slack)
{
    json_t *j;
    if (slack) {
        char text[600];
        snprintf(text, sizeof text, "[%s] %s %s: %s",
                 !strcmp(status, "resolved") ? "RESOLVED" : "FIRING", a->severity, a->rule,
                 a->summary);
        j = json_pack("{s:s}", "text", text);
    } else {
        j = alert_doc(a, status);
    }
    char *t = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return t;
}

/* Alertmanager API v2: [{labels, annotations, startsAt, endsAt}]. */
static json_t *am_alert(const struct alert *a, int64_t now_ms, int interval_s)
{
    char t1[32], t2[32];
    json_t *labels = json_pack("{s:s,s:s,s:s}", "alertname", a->rule, "severity", a->severity,
                               "service", "sluice");
    json_t *l = json_loads(a->labels_json ? a->labels_json : "{}", 0, NULL);
    const char *k;
    json_t *v;
    json_object_foreach(l, k, v) if (json_is_string(v)) json_object_set(labels, k, v);
    json_decref(l);
    int64_t ends = a->resolved_ms ? a->resolved_ms
                                  : now_ms + 1000LL * (interval_s * 3 > 300 ? interval_s * 3 : 300);
    return json_pack("{s:o,s:{s:s},s:s,s:s}", "labels", labels, "annotations", "summary",
                     a->summary, "startsAt", clock_rfc3339(a->started_ms, t1, sizeof t1), "endsAt",
                     clock_rfc3339(ends, t2, sizeof t2));
}

/* ---- the writer job ---------------------------------------------------------- */

struct alerts_job {
    struct wjob job;
    struct catalog *cat;
    json_t *findings, *undecided;
    int64_t now_ms;
    /* results, for deliver(): per receiver, the notifications */
    json_t *out; /* Alertmanager refreshes: [{"receiver": i, "doc": alert} ...] */
    long long warn, crit;
    int queued; /* outbox rows added */
};

/* Whether route r matches the alert. */
static int route_matches(const struct route_config *r, const struct alert *a, json_t *labels)
{
    if (r->severity && strcmp(r->severity, a->severity) != 0)
        return 0;
    if (r->rule && strcmp(r->rule, a->rule) != 0)
        return 0;
    if (r->dataset) {
        const char *ds = json_string_value(json_object_get(labels, "dataset"));
        if (!ds || strcmp(ds, r->dataset) != 0)
            return 0;
    }
    return 1;
}

/* The receivers (indexes) an alert goes to: every matching route's, each once. */
static size_t receivers_of(const struct sluice_config *c, const struct alert *a, size_t *idx)
{
    size_t n = 0;
    json_t *labels = json_loads(a->labels_json ? a->labels_json : "{}", 0, NULL);
    if (!c->alerts.nroutes) {
        for (size_t i = 0; i < c->alerts.nreceivers && n < RECEIVERS_MAX; i++)
            idx[n++] = i;
    }
    for (size_t r = 0; r < c->alerts.nroutes; r++) {
        if (!route_matches(&c->alerts.routes[r], a, labels))
            continue;
        for (size_t k = 0; c->alerts.routes[r].receivers[k]; k++)
            for (size_t i = 0; i < c->alerts.nreceivers; i++) {
                if (strcmp(c->alerts.receivers[i].name, c->alerts.routes[r].receivers[k]) != 0)
                    continue;
                size_t j = 0;
                while (j < n && idx[j] != i)
                    j++;
                if (j == n && n < RECEIVERS_MAX)
                    idx[n++] = i;
            }
    }
    json_decref(labels);
    return n;
}

/* What to send for alert a (status firing|resolved). Notifications go into the outbox, in
 * the job's transaction, one row per receiver (refresh: only those that have no row left
 * for the alert, so a receiver that is down does not pile up repeats); with am_only,
 * Alertmanager receivers get a refresh from memory after the commit and nothing is
 * stored. Returns the rows added, or -1. */
static int notify(struct alerts_job *j, struct store *st, const struct alert *a, const char *status,
                  int am_only, int refresh)
{
    const struct sluice_config *c = &j->cat->cfg;
    size_t idx[RECEIVERS_MAX];
    size_t n = receivers_of(c, a, idx);
    int added = 0;
    for (size_t k = 0; k < n; k++) {
        const struct receiver_config *r = &c->alerts.receivers[idx[k]];
        if (am_only) {
            if (r->type == 1)
                json_array_append_new(j->out,
                                      json_pack("{s:I,s:o}", "receiver", (json_int_t)idx[k], "doc",
                                                am_alert(a, j->now_ms, c->sentinel.interval_s)));
            continue;
        }
        if (refresh) {
            int p = store_outbox_pending(st, a->id, r->name);
            if (p < 0)
                return -1;
            if (p)
                continue;
        }
        char *body;
        if (r->type == 1) {
            json_t *doc = am_alert(a, j->now_ms, c->sentinel.interval_s);
            body = json_dumps(doc, JSON_COMPACT);
            json_decref(doc);
        } else {
            body = webhook_body(a, status, r->type == 0 && r->format == 1);
        }
        struct outbox_row row = {.alert_id = a->id,
                                 .receiver = r->name,
                                 .event = (char *)status,
                                 .body = body ? body : "{}",
                                 .created_ms = j->now_ms,
                                 .next_ms = j->now_ms};
        int rc = store_outbox_add(st, &row);
        free(body);
        if (rc < 0)
            return -1;
        added++;
    }
    j->queued += added;
    return added;
}

static char *labels_text(json_t *labels)
{
    return json_dumps(labels ? labels : json_object(), JSON_COMPACT | JSON_SORT_KEYS);
}

/* Whether a's rule could not decide at this evaluation (sentinel.h, "undecided"). */
static int is_undecided(json_t *undecided, const struct alert *a)
{
    size_t i;
    json_t *u;
    json_array_foreach(undecided, i, u)
    {
        if (strcmp(json_string_value(json_object_get(u, "rule")), a->rule) != 0)
            continue;
        json_t *l = json_object_get(u, "labels");
        if (!json_object_size(l))
            return 1;
        char *lt = labels_text(l);
        int same = lt && a->labels_json && !strcmp(lt, a->labels_json);
        free(lt);
        if (same)
            return 1;
    }
    return 0;
}

static int alerts_apply(struct wjob *job, struct store *st)
{
    struct alerts_job *j = (struct alerts_job *)job;
    const struct sluice_config *c = &j->cat->cfg;
    int64_t repeat_ms = (int64_t)c->alerts.repeat_interval_s * 1000;
    struct alert *firing;
    size_t nf;
    j->out = json_array();
    if (store_alert_firing(st, &firing, &nf) < 0)
        return -1;
    char *seen = sl_calloc(nf ? nf : 1, 1);
    int rc = 0;
    size_t i;
    json_t *f;
    json_array_foreach(j->findings, i, f)
    {
        const char *rule = json_string_value(json_object_get(f, "rule"));
        char *lt = labels_text(json_object_get(f, "labels"));
        char *fp = NULL;
        if (asprintf(&fp, "%s%s", rule, lt ? lt : "{}") < 0)
            fp = NULL;
        struct alert *a = NULL;
        for (size_t k = 0; k < nf; k++)
            if (fp && !strcmp(firing[k].fingerprint, fp)) {
                a = &firing[k];
                seen[k] = 1;
            }
        char *details = json_dumps(json_object_get(f, "details"), JSON_COMPACT);
        const char *sev = json_string_value(json_object_get(f, "severity"));
        const char *sum = json_string_value(json_object_get(f, "summary"));
        if (!a) { /* a new alert */
            struct alert na = {.fingerprint = fp,
                               .rule = (char *)rule,
                               .severity = (char *)sev,
                               .labels_json = lt,
                               .summary = (char *)sum,
                               .details_json = details,
                               .state = "firing",
                               .started_ms = j->now_ms,
                               .updated_ms = j->now_ms};
            /* notified (last_notified_ms, notifications) once a receiver answers 2xx */
            if (store_alert_put(st, &na) < 0 ||
                store_alert_event(st, na.id, j->now_ms, "firing", sum) < 0 ||
                notify(j, st, &na, "firing", 0, 0) < 0)
                rc = -1;
            if (!strcmp(sev, "critical"))
                j->crit++;
            else
                j->warn++;
        } else { /* still firing: refresh; notify again after repeat_interval */
            int changed = strcmp(a->severity, sev) != 0;
            free(a->severity);
            a->severity = sl_strdup(sev);
            free(a->summary);
            a->summary = sl_strdup(sum);
            free(a->details_json);
            a->details_json = details;
            details = NULL;
            a->updated_ms = j->now_ms;
            /* again after repeat_interval since the last delivery, to the receivers that
             * have nothing of this alert left in the outbox */
            int again = j->now_ms - (a->last_notified_ms ? a->last_notified_ms : a->started_ms) >=
                        repeat_ms;
            int added = again ? notify(j, st, a, "firing", 0, 1) : 0;
            if (added < 0 || notify(j, st, a, "firing", 1, 0) < 0 || store_alert_put(st, a) < 0 ||
                (changed && store_alert_event(st, a->id, j->now_ms, "severity", sev) < 0) ||
                (added > 0 && store_alert_event(st, a->id, j->now_ms, "renotified", NULL) < 0))
                rc = -1;
            if (!strcmp(a->severity, "critical"))
                j->crit++;
            else
                j->warn++;
        }
        free(details);
        free(lt);
        free(fp);
        if (rc < 0)
            break;
    }
    for (size_t k = 0; rc == 0 && k < nf; k++) {
        if (seen[k])
            continue;
        struct alert *a = &firing[k];
        if (is_undecided(j->undecided, a)) { /* neither resolved nor refreshed */
            if (!strcmp(a->severity, "critical"))
                j->crit++;
            else
                j->warn++;
            continue;
        }
        free(a->state);
        a->state = sl_strdup("resolved");
        a->resolved_ms = a->updated_ms = j->now_ms;
        /* queued behind its firing, if that is still in the outbox: in order, both */
        if (store_alert_put(st, a) < 0 ||
            store_alert_event(st, a->id, j->now_ms, "resolved", NULL) < 0 ||
            notify(j, st, a, "resolved", 0, 0) < 0)
            rc = -1;
    }
    /* auto-reset of stuck batches, attempt-limited */
    json_array_foreach(j->findings, i, f)
    {
        if (rc < 0 || !c->sentinel.stuck_batches.auto_reset ||
            strcmp(json_string_value(json_object_get(f, "rule")), "stuck_batches") != 0)
            continue;
        size_t b;
        json_t *bt;
        json_array_foreach(json_object_get(json_object_get(f, "details"), "batches"), b, bt)
        {
            const char *id = json_string_value(json_object_get(bt, "batch_id"));
            int r = store_batch_auto_reset(st, id, c->sentinel.stuck_batches.max_resets, j->now_ms);
            if (r < 0)
                rc = -1;
            else if (r == 1)
                log_warn("sentinel", "stuck batch reset", "\"batch_id\":\"%s\"", id);
        }
    }
    for (size_t k = 0; k < nf; k++)
        alert_release(&firing[k]);
    free(firing);
    free(seen);
    return rc;
}

static void alerts_deliver(struct wjob *job, int result)
{
    struct alerts_job *j = (struct alerts_job *)job;
    const struct sluice_config *c = &j->cat->cfg;
    if (result == 0 && job->applied == 0) {
        pthread_mutex_lock(&mmu);
        firing_warning = j->warn;
        firing_critical = j->crit;
        pthread_mutex_unlock(&mmu);
        /* Alertmanager refreshes take a list: one POST per receiver */
        json_t *am[RECEIVERS_MAX] = {0};
        size_t i;
        json_t *n;
        json_array_foreach(j->out, i, n)
        {
            size_t r = (size_t)json_integer_value(json_object_get(n, "receiver"));
            if (r >= RECEIVERS_MAX)
                continue;
            if (!am[r])
                am[r] = json_array();
            json_array_append(am[r], json_object_get(n, "doc"));
        }
        for (size_t r = 0; r < RECEIVERS_MAX; r++) {
            if (!am[r])
                continue;
            const struct receiver_config *rc = &c->alerts.receivers[r];
            struct refresh *d = sl_calloc(1, sizeof *d);
            if (d) {
                snprintf(d->receiver, sizeof d->receiver, "%s", rc->name);
                d->url = am_url(rc->url ? rc->url : "");
                d->body = json_dumps(am[r], JSON_COMPACT);
                enqueue(d);
            }
            json_decref(am[r]);
        }
        if (j->queued)
            kick(); /* new rows in the outbox */
    } else {
        log_error("sentinel", "alerts not recorded", NULL);
    }
    json_decref(j->out);
    json_decref(j->findings);
    json_decref(j->undecided);
    catalog_release(j->cat);
    free(j);
}

void alerts_submit(struct writer *writer, struct catalog *cat, const json_t *report, int64_t now_ms)
{
    struct alerts_job *j = sl_calloc(1, sizeof *j);
    if (!j)
        return;
    j->cat = catalog_ref(cat);
    j->findings = json_deep_copy(json_object_get(report, "findings"));
    j->undecided = json_deep_copy(json_object_get(report, "undecided"));
    j->now_ms = now_ms;
    j->job.apply = alerts_apply;
    j->job.deliver = alerts_deliver;
    j->job.nrows = 1;
    if (!j->findings || writer_submit(writer, &j->job) < 0) {
        json_decref(j->findings);
        json_decref(j->undecided);
        catalog_release(cat);
        free(j);
        log_warn("sentinel", "alerts skipped: the writer queue is full", NULL);
    }
}
