/*
 * sweep.h - remove a directory's old files by name suffix (spools a crash left,
 * a node's cached batch files).
 */
#ifndef SLUICE_UTIL_SWEEP_H
#define SLUICE_UTIL_SWEEP_H

#include <stdint.h>

/* Remove the regular files of dir whose names end in suffix (and are longer than it) and
 * whose last change is before before_ms (Unix ms). Returns how many it removed; a missing
 * dir is 0. */
int dir_sweep(const char *dir, const char *suffix, int64_t before_ms);

#endif
