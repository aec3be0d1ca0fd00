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

#include "config/config.h"
#include "ingest/writer.h"
#include "service/service.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define QUEUE_MAX 1000
#define MAX_ATTEMPTS 6
#define RECEIVERS_MAX 32

/* ---- counters -------------------------------------------------------------- */

static pthread_mutex_t mmu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[64];
    unsigned long long ok, failed;
} rstats[RECEIVERS_MAX];
static size_t nrstats;
static long long firing_warning, firing_critical;
static unsigned long long dropped;

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
    buf_printf(out,
               "# HELP sluice_alert_notifications_dropped_total Notifications dropped because "
               "the notifier's queue was full.\n"
               "# TYPE sluice_alert_notifications_dropped_total counter\n"
               "sluice_alert_notifications_dropped_total %llu\n",
               dropped);
    pthread_mutex_unlock(&mmu);
}

/* ---- the notifier ------------------------------------------------------------ */

struct delivery {
    struct delivery *next;
    char receiver[64];
    int type; /* 0 webhook, 1 alertmanager, 2 log */
    char *url, *body;
    int attempts;
    int64_t due_ms;
};

static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcv = PTHREAD_COND_INITIALIZER;
static struct delivery *queue;
static size_t qlen;
static int running, stopping;
static pthread_t notifier;

static void delivery_free(struct delivery *d)
{
    free(d->url);
    free(d->body);
    free(d);
}

static void enqueue(struct delivery *d)
{
    pthread_mutex_lock(&qmu);
    if (qlen >= QUEUE_MAX || stopping) {
        pthread_mutex_unlock(&qmu);
        pthread_mutex_lock(&mmu);
        dropped++;
        pthread_mutex_unlock(&mmu);
        delivery_free(d);
        return;
    }
    d->next = queue;
    queue = d;
    qlen++;
    pthread_cond_signal(&qcv);
    pthread_mutex_unlock(&qmu);
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p, (void)u;
    return size * n;
}

/* One POST; 0 on a 2xx. */
static int post(const struct delivery *d, char *why, size_t cap)
{
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(why, cap, "curl init");
        return -1;
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, d->url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, d->body);
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

static void *notifier_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "sl-notify");
    pthread_mutex_lock(&qmu);
    while (!stopping || queue) {
        int64_t now = clock_wall_ms(), next = now + 1000;
        struct delivery **pp = &queue, *d = NULL;
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->due_ms <= now) {
                d = *pp;
                *pp = d->next;
                qlen--;
                break;
            } else if ((*pp)->due_ms < next) {
                next = (*pp)->due_ms;
            }
        if (!d) {
            if (stopping)
                break; /* what is left is not due: given up at shutdown */
            struct timespec ts = {(time_t)(next / 1000), (long)(next % 1000) * 1000000L};
            pthread_cond_timedwait(&qcv, &qmu, &ts);
            continue;
        }
        pthread_mutex_unlock(&qmu);
        char why[200] = "";
        int ok = d->type == 2 ? 0 : post(d, why, sizeof why);
        if (d->type == 2)
            log_warn("alert", "notification", "\"receiver\":\"%s\",\"alert\":%s", d->receiver,
                     d->body);
        count_delivery(d->receiver, ok == 0);
        if (ok == 0 || ++d->attempts >= MAX_ATTEMPTS) {
            if (ok != 0)
                log_error("alert", "delivery given up",
                          "\"receiver\":\"%s\",\"attempts\":%d,\"error\":\"%s\"", d->receiver,
                          d->attempts, why);
            delivery_free(d);
        } else {
            log_warn("alert", "delivery failed, will retry",
                     "\"receiver\":\"%s\",\"attempt\":%d,\"error\":\"%s\"", d->receiver,
                     d->attempts, why);
            d->due_ms = clock_wall_ms() + 1000LL * (1LL << (d->attempts - 1)); /* 1, 2, 4 ... s */
            enqueue(d);
        }
        pthread_mutex_lock(&qmu);
    }
    for (struct delivery *d = queue, *n; d; d = n) {
        n = d->next;
        delivery_free(d);
    }
    queue = NULL;
    qlen = 0;
    pthread_mutex_unlock(&qmu);
    return NULL;
}

void alerts_notifier_start(void)
{
    pthread_mutex_lock(&qmu);
    stopping = 0;
    running = pthread_create(&notifier, NULL, notifier_main, NULL) == 0;
    pthread_mutex_unlock(&qmu);
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
    json_t *findings;
    int64_t now_ms;
    /* results, for deliver(): per receiver, the notifications */
    json_t *out; /* [{"receiver": i, "status": ..., "alert": doc} ...] built in apply */
    long long warn, crit;
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

/* Record what to send for alert a (status firing|resolved); am_only: Alertmanager only. */
static void notify(struct alerts_job *j, const struct alert *a, const char *status, int am_only)
{
    const struct sluice_config *c = &j->cat->cfg;
    size_t idx[RECEIVERS_MAX];
    size_t n = receivers_of(c, a, idx);
    for (size_t k = 0; k < n; k++) {
        const struct receiver_config *r = &c->alerts.receivers[idx[k]];
        if (am_only && r->type != 1)
            continue;
        json_t *doc;
        if (r->type == 1) {
            doc = am_alert(a, j->now_ms, c->sentinel.interval_s);
        } else {
            char *body = webhook_body(a, status, r->format == 1);
            doc = json_string(body ? body : "{}");
            free(body);
        }
        json_array_append_new(j->out,
                              json_pack("{s:I,s:o}", "receiver", (json_int_t)idx[k], "doc", doc));
    }
}

static char *labels_text(json_t *labels)
{
    return json_dumps(labels ? labels : json_object(), JSON_COMPACT | JSON_SORT_KEYS);
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
    char *seen = calloc(nf ? nf : 1, 1);
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
                               .updated_ms = j->now_ms,
                               .last_notified_ms = j->now_ms,
                               .notifications = 1};
            if (store_alert_put(st, &na) < 0 ||
                store_alert_event(st, na.id, j->now_ms, "firing", sum) < 0)
                rc = -1;
            else
                notify(j, &na, "firing", 0);
            if (!strcmp(sev, "critical"))
                j->crit++;
            else
                j->warn++;
        } else { /* still firing: refresh; notify again after repeat_interval */
            int changed = strcmp(a->severity, sev) != 0;
            free(a->severity);
            a->severity = strdup(sev);
            free(a->summary);
            a->summary = strdup(sum);
            free(a->details_json);
            a->details_json = details;
            details = NULL;
            a->updated_ms = j->now_ms;
            int again = j->now_ms - a->last_notified_ms >= repeat_ms;
            if (again) {
                a->last_notified_ms = j->now_ms;
                a->notifications++;
            }
            if (store_alert_put(st, a) < 0 ||
                (changed && store_alert_event(st, a->id, j->now_ms, "severity", sev) < 0) ||
                (again && store_alert_event(st, a->id, j->now_ms, "renotified", NULL) < 0))
                rc = -1;
            notify(j, a, "firing", !again);
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
        free(a->state);
        a->state = strdup("resolved");
        a->resolved_ms = a->updated_ms = j->now_ms;
        a->notifications++;
        a->last_notified_ms = j->now_ms;
        if (store_alert_put(st, a) < 0 ||
            store_alert_event(st, a->id, j->now_ms, "resolved", NULL) < 0)
            rc = -1;
        else
            notify(j, a, "resolved", 0);
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
    if (result == 0) {
        pthread_mutex_lock(&mmu);
        firing_warning = j->warn;
        firing_critical = j->crit;
        pthread_mutex_unlock(&mmu);
        /* Alertmanager takes a list: one POST per receiver */
        json_t *am[RECEIVERS_MAX] = {0};
        size_t i;
        json_t *n;
        json_array_foreach(j->out, i, n)
        {
            size_t r = (size_t)json_integer_value(json_object_get(n, "receiver"));
            const struct receiver_config *rc = &c->alerts.receivers[r];
            json_t *doc = json_object_get(n, "doc");
            if (rc->type == 1) {
                if (!am[r])
                    am[r] = json_array();
                json_array_append(am[r], doc);
                continue;
            }
            struct delivery *d = calloc(1, sizeof *d);
            if (!d)
                continue;
            snprintf(d->receiver, sizeof d->receiver, "%s", rc->name);
            d->type = rc->type == 2 ? 2 : 0;
            d->url = rc->url ? strdup(rc->url) : NULL;
            d->body = strdup(json_string_value(doc));
            d->due_ms = 0;
            enqueue(d);
        }
        for (size_t r = 0; r < RECEIVERS_MAX; r++) {
            if (!am[r])
                continue;
            const struct receiver_config *rc = &c->alerts.receivers[r];
            struct delivery *d = calloc(1, sizeof *d);
            if (d) {
                snprintf(d->receiver, sizeof d->receiver, "%s", rc->name);
                d->type = 1;
                size_t ul = strlen(rc->url);
                while (ul && rc->url[ul - 1] == '/')
                    ul--;
                d->url = malloc(ul + 16);
                if (d->url)
                    snprintf(d->url, ul + 16, "%.*s/api/v2/alerts", (int)ul, rc->url);
                d->body = json_dumps(am[r], JSON_COMPACT);
                enqueue(d);
            }
            json_decref(am[r]);
        }
    } else {
        log_error("sentinel", "alerts not recorded", NULL);
    }
    json_decref(j->out);
    json_decref(j->findings);
    catalog_release(j->cat);
    free(j);
}

void alerts_submit(struct service *svc, struct catalog *cat, const json_t *report, int64_t now_ms)
{
    struct alerts_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    __atomic_add_fetch(&cat->refs, 1, __ATOMIC_ACQ_REL);
    j->cat = cat;
    j->findings = json_deep_copy(json_object_get(report, "findings"));
    j->now_ms = now_ms;
    j->job.apply = alerts_apply;
    j->job.deliver = alerts_deliver;
    j->job.nrows = 1;
    if (!j->findings || writer_submit(svc->writer, &j->job) < 0) {
        json_decref(j->findings);
        catalog_release(cat);
        free(j);
        log_warn("sentinel", "alerts skipped: the writer queue is full", NULL);
    }
}
