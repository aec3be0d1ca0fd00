/*
 * progress.h - progress of a long command on stderr: a bar redrawn in place on a
 * terminal (isatty), plain lines off one (a log, a pipe), so the same command reads
 * well in both. Work comes in phases ("copy": rows), each made of items (a table).
 */
#ifndef SLUICE_CLI_PROGRESS_H
#define SLUICE_CLI_PROGRESS_H

#include <stdint.h>

struct progress {
    int tty;                  /* set by the caller: isatty(STDERR_FILENO) */
    const char *prefix;       /* "sluice migrate", for the plain lines */
    const char *phase, *unit; /* "copy", "row" (borrowed; units get an s) */
    int64_t done, total, ticks;
    char what[96];
    double last;
    int open; /* a bar is on the terminal's line */
};

/* A phase of total units. */
void progress_start(struct progress *p, const char *phase, const char *unit, int64_t total);
/* An item of size units begins: redrawn on a terminal, a line off one (when size > 0). */
void progress_item(struct progress *p, const char *what, int64_t size);
/* n units done: redrawn ten times a second at most; off a terminal a line every ten s. */
void progress_add(struct progress *p, int64_t n);
/* The phase is over (a terminal gets its last bar and a newline). */
void progress_end(struct progress *p);
/* Before another message on stderr: a bar under way gets its newline first. */
void progress_break(struct progress *p);
/* Seconds on the monotonic clock. */
double progress_now(void);

#endif
