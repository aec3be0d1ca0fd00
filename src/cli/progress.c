/*
 * progress.c - progress on stderr (progress.h).
 */
#include "cli/progress.h"

#include <stdio.h>
#include <time.h>

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_draw(struct progress *p)
{
    if (!p->tty) {
        fprintf(stderr, "%s: %s: %lld/%lld %ss (%s)\n", p->prefix, p->phase, (long long)p->done,
                (long long)p->total, p->unit, p->what);
        return;
    }
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 1;
    char bar[31];
    for (int i = 0; i < 30; i++)
        bar[i] = i < (int)(frac * 30) ? '#' : '.';
    bar[30] = 0;
    p->open = 1;
    fprintf(stderr, "\r%-6s [%s] %5.1f%%  %lld/%lld %ss  %.40s\033[K", p->phase, bar, frac * 100,
            (long long)p->done, (long long)p->total, p->unit, p->what);
}

void progress_start(struct progress *p, const char *phase, const char *unit, int64_t total)
{
    p->phase = phase;
    p->unit = unit;
    p->done = p->ticks = 0;
    p->total = total;
    p->what[0] = 0;
    p->last = 0;
}

/* A new table or file of size units: off a terminal, a line when it is not empty. */
void progress_item(struct progress *p, const char *what, int64_t size)
{
    snprintf(p->what, sizeof p->what, "%s", what);
    p->last = progress_now();
    if (p->tty)
        progress_draw(p);
    else if (size > 0)
        fprintf(stderr, "%s: %s %s (%lld %s%s)\n", p->prefix, p->phase, what, (long long)size,
                p->unit, size == 1 ? "" : "s");
}

void progress_add(struct progress *p, int64_t n)
{
    p->done += n;
    double t;
    /* A terminal redraws ten times a second; a log gets a line every ten seconds. */
    if (++p->ticks % 256 == 0 && (t = progress_now()) - p->last >= (p->tty ? 0.1 : 10)) {
        p->last = t;
        progress_draw(p);
    }
}

void progress_end(struct progress *p)
{
    if (p->tty) {
        snprintf(p->what, sizeof p->what, "done");
        progress_draw(p);
        progress_break(p);
    }
}

void progress_break(struct progress *p)
{
    if (p->open)
        fputc('\n', stderr);
    p->open = 0;
}
