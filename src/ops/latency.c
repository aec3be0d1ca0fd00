/*
 * latency.c - see latency.h.
 */
#include "ops/latency.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#define SLOT_S 10
#define NSLOTS 60
static const double bounds_ms[] = {1,   2,    5,    10,   20,    50,    100,  200,
                                   500, 1000, 2000, 5000, 10000, 30000, 60000};
#define NB (sizeof bounds_ms / sizeof bounds_ms[0] + 1)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int64_t epoch; /* which 10-second slot of time this is */
    uint64_t n[NB];
} slots[NSLOTS];

static int64_t now_slot(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec / SLOT_S;
}

void latency_note(double seconds)
{
    double ms = seconds * 1000.0;
    size_t b = 0;
    while (b < NB - 1 && ms > bounds_ms[b])
        b++;
    int64_t e = now_slot();
    pthread_mutex_lock(&mu);
    int i = (int)(e % NSLOTS);
    if (slots[i].epoch != e) {
        memset(slots[i].n, 0, sizeof slots[i].n);
        slots[i].epoch = e;
    }
    slots[i].n[b]++;
    pthread_mutex_unlock(&mu);
}

double latency_quantile_ms(double q, int window_s, uint64_t *count)
{
    uint64_t sum[NB] = {0}, total = 0;
    int64_t e = now_slot();
    int back = window_s / SLOT_S;
    if (back < 1)
        back = 1;
    if (back > NSLOTS)
        back = NSLOTS;
    pthread_mutex_lock(&mu);
    for (int k = 0; k < back; k++) {
        int64_t want = e - k;
        int i = (int)(((want % NSLOTS) + NSLOTS) % NSLOTS);
        if (slots[i].epoch != want)
            continue;
        for (size_t b = 0; b < NB; b++)
            sum[b] += slots[i].n[b];
    }
    pthread_mutex_unlock(&mu);
    for (size_t b = 0; b < NB; b++)
        total += sum[b];
    if (count)
        *count = total;
    if (!total)
        return -1;
    uint64_t rank = (uint64_t)(q * (double)total + 0.999999), seen = 0;
    for (size_t b = 0; b < NB; b++) {
        seen += sum[b];
        if (seen >= rank)
            return b < NB - 1 ? bounds_ms[b] : bounds_ms[NB - 2] * 2;
    }
    return bounds_ms[NB - 2] * 2;
}
