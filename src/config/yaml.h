/*
 * yaml.h - private to src/config/: the YAML walk (yaml.c) that config_load()
 * (load.c) drives. Not for other parts of sluice, which use config.h.
 *
 * A struct loader lives on config_load()'s stack for one load; the walk sets
 * the caller's struct sluice_config through it. The options that are lists of
 * entries are load.c's: the walk hands them to load_list, so that yaml.c never
 * calls up into load.c.
 */
#ifndef SLUICE_CONFIG_YAML_H
#define SLUICE_CONFIG_YAML_H

#include <libfyaml.h>

#include "config/config_internal.h"

struct loader {
    const char *file; /* as given, for messages */
    struct sluice_config *cfg;
    char *err;
    size_t errlen;
    /* Load the option o of type OT_DATASETS, OT_JWTKEYS, OT_RECEIVERS, OT_ROUTES or OT_JOBS from
     * the value v (NULL: empty) of its key at line; 0, or -1 after yaml_fail_at(). */
    int (*load_list)(struct loader *ld, const struct opt *o, struct fy_node *v, int line,
                     const char *option);
};

/* Write "FILE:LINE: OPTION: message" to ld->err (line < 1 counts as 1); returns -1. */
int yaml_fail_at(struct loader *ld, int line, const char *option, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The 1-based line where a node starts, or 0 when it has no token (an empty value). */
int yaml_node_line(struct fy_node *n);
/* "a mapping", "a list" or "a scalar", for messages. */
const char *yaml_node_kind_name(struct fy_node *n);

/*
 * What every entry of a list option starts with: a mapping, walked against tbl into base
 * after tbl's defaults, with every required key present. prefix names the entry's keys in
 * messages ("datasets[0]."), option the entry itself, what the mapping that was expected.
 * Returns the entry's line, or -1 after an error (load.c).
 */
int yaml_load_entry(struct loader *ld, struct fy_node *item, int line, const struct opt *tbl,
                    size_t n, void *base, int *lines, const char *prefix, const char *option,
                    const char *what);
/* A list option: seq's entries into a zeroed array of n elements of elem bytes (*out, *nout),
 * one(ld, item, i, line) loading each. seq NULL is no entry unless required; anything but a
 * list is "expected WHAT, got ..." (load.c). 0, or -1 after yaml_fail_at(). */
int yaml_load_list(struct loader *ld, struct fy_node *seq, int line, const char *option,
                   const char *what, int required, size_t elem, void **out, size_t *nout,
                   int (*one)(struct loader *ld, struct fy_node *item, size_t i, int line));
/* The jobs list (jobs.c): 0, or -1 after yaml_fail_at(). */
int config_load_jobs(struct loader *ld, struct fy_node *seq, int line, const char *option);

/*
 * Walk a mapping against tbl, setting the struct at base. tprefix is the
 * prefix of names in the table ("limits."), dprefix the one shown in messages
 * ("datasets[0]." for a dataset). lines[i] gets the line where tbl[i] was set.
 */
int yaml_walk_mapping(struct loader *ld, struct fy_node *map, const struct opt *tbl, size_t n,
                      void *base, int *lines, const char *tprefix, const char *dprefix);

#endif
