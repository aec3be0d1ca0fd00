/*
 * config_internal.h - private to src/config/: what its files share. Not for
 * other parts of sluice, which use config.h.
 *
 *   options.c  the option tables (one row per option) and the lookups on them;
 *              config_set, config_apply_env, config_release, config_dataset
 *   values.c   text to typed values, set into a struct through its option row
 *   yaml.c     the walk of a YAML document against a table (yaml.h)
 *   load.c     config_load(): the file, the list-valued options, the checks
 *   jobs.c     the jobs list: its keys, the job kinds' arguments, its loading
 *   docs.c     docs/configuration.md from the tables
 *
 * Everything here is immutable after start-up (tables) or works on the caller's
 * struct only: no locks, any thread.
 */
#ifndef SLUICE_CONFIG_CONFIG_INTERNAL_H
#define SLUICE_CONFIG_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NAME_MAX_LEN 200 /* longest dotted option name we build, "datasets[N].key" */
#define OPTS_MAX 128     /* most rows in one option table (checked in options.c) */

enum opt_type {
    OT_STRING,    /* char *, not empty */
    OT_INT,       /* int */
    OT_NUMBER,    /* double */
    OT_BOOL,      /* int, 0 or 1 */
    OT_SIZE,      /* uint64_t bytes */
    OT_DURATION,  /* uint64_t milliseconds */
    OT_LISTEN,    /* char *, HOST:PORT */
    OT_ENUM,      /* char *, one of choices */
    OT_CHOICE,    /* int, index into choices (an enum) */
    OT_STORAGE,   /* char *, sqlite:PATH or postgres[ql]://... */
    OT_NAME,      /* char *, ^[a-z][a-z0-9_]{0,62}$ */
    OT_SCHEMA,    /* json_t * + struct schema *, from a mapping */
    OT_DATASETS,  /* struct dataset_config * + count, from a list */
    OT_STRLIST,   /* char **, NULL-terminated, from a list of strings */
    OT_JWTKEYS,   /* struct jwt_key_config * + count, from a list */
    OT_RECEIVERS, /* struct receiver_config * + count, from a list */
    OT_ROUTES,    /* struct route_config * + count, from a list */
    OT_KEY,       /* char *, a dataset's key in its text form (schema.h), from a name or a list */
    OT_JOBS,      /* struct job_config * + count, from a list (jobs.c) */
    OT_JOBARGS,   /* a job's args: skipped by the walk, read by jobs.c once the kind is known */
};

enum {
    OPT_MIN = 1 << 0,      /* min is a lower bound */
    OPT_MAX = 1 << 1,      /* max is an upper bound */
    OPT_REQUIRED = 1 << 2, /* must be given */
    OPT_DERIVED = 1 << 3,  /* default computed after loading: "<data_dir>" is replaced */
    OPT_EMPTY_OK = 1 << 4, /* OT_STRING: "" is a value */
};

struct opt {
    const char *name; /* dotted: "limits.max_body_bytes" */
    enum opt_type type;
    const char *def; /* default as text; NULL: none */
    size_t off;      /* offset in struct sluice_config (or struct dataset_config) */
    const char *help;
    const char *const *choices; /* OT_ENUM, OT_CHOICE: NULL-terminated */
    double min, max;            /* bounds for numbers, sizes and durations (see flags) */
    unsigned flags;
};

/* ---- options.c: the tables, in the order of the docs ------------------- */

extern const struct opt config_opts[]; /* the file's options */
extern const size_t config_nopts;
extern const struct opt config_ds_opts[]; /* the keys of one entry of datasets */
extern const size_t config_nds_opts;
extern const struct opt config_receiver_opts[]; /* ... of alerts.receivers */
extern const size_t config_nreceiver_opts;
extern const struct opt config_route_opts[]; /* ... of alerts.routes */
extern const size_t config_nroute_opts;
extern const struct opt config_jwt_key_opts[]; /* ... of auth.jwt.keys */
extern const size_t config_njwt_key_opts;

/* ---- jobs.c: the keys of one entry of jobs, and each kind's arguments ----- */
extern const struct opt config_job_opts[];
extern const size_t config_njob_opts;
struct job_kind_def {
    const char *name, *help;
    const struct opt *args; /* the keys of the job's args; NULL: none */
    size_t nargs;
};
extern const struct job_kind_def config_job_kinds[]; /* in config_job_kind_names' order */
extern const size_t config_njob_kinds;
void config_jobs_release(struct sluice_config *cfg);

/* Environment variables, each the same as one command-line flag (NULL: none). */
struct env_opt {
    const char *var, *option, *flag;
};
extern const struct env_opt config_env_opts[];
extern const size_t config_nenv_opts;

/* Choices that the loader checks beyond the tables (NULL-terminated). */
extern const char *const config_receiver_types[]; /* index = receiver_config.type */
extern const char *const config_jwt_algorithms[]; /* auth.jwt.keys[].algorithms */

/* The row of tbl called name (dotted), or NULL. */
const struct opt *opt_find(const struct opt *tbl, size_t n, const char *name);
/* Whether some option of tbl is under the section "name." */
int opt_is_section(const struct opt *tbl, size_t n, const char *name);
/* The option or section of tbl closest to name (within 2 edits) copied to buf, or NULL. */
const char *opt_suggest(const struct opt *tbl, size_t n, const char *name, char *buf, size_t cap);

/* storage = its default with "<data_dir>" replaced by data_dir. -1 with why on OOM. */
int config_derive_storage(struct sluice_config *cfg, char *why, size_t whylen);
void config_strlist_free(char **v); /* a NULL-terminated list and its strings; NULL ok */

static inline void *field_ptr(void *base, const struct opt *o)
{
    return (char *)base + o->off;
}

/* ---- values.c ------------------------------------------------------------ */

/* Each type's name in the docs and what errors say a value should look like. */
struct opt_type_info {
    const char *doc, *expect;
};
extern const struct opt_type_info config_types[]; /* indexed by enum opt_type */

/* Units of sizes (powers of 1024, case-insensitive) and durations. */
struct size_unit {
    char letter;
    uint64_t factor;
};
struct duration_unit {
    const char *suffix, *meaning;
    uint64_t ms;
};
extern const struct size_unit config_size_units[];
extern const size_t config_nsize_units;
extern const struct duration_unit config_duration_units[];
extern const size_t config_nduration_units;

/* The YAML 1.2 core schema's special words (NULL-terminated). */
extern const char *const config_yaml_nulls[],
    *const config_yaml_trues[], *const config_yaml_falses[], *const config_yaml_not_json[];

int config_is_one_of(const char *s, const char *const *words);
/* A short, printable copy of s in buf, for an error message. */
const char *config_echo(char *buf, size_t cap, const char *s);
/* What an option's value should look like ("a size like 64M", "one of a, b"). */
const char *opt_expected(const struct opt *o, char *buf, size_t cap);
int config_set_string(char **field, const char *s); /* replaces *field with a copy; -1 OOM */
/* A YAML 1.2 core integer (decimal, 0x, 0o); -1 if s is not one. */
int config_parse_core_int(const char *s, long long *out);
int config_is_float_text(const char *s); /* a YAML 1.2 core float */
/* Set option o of the struct at base from text s; -1 with the reason (no option name)
 * in why. */
int opt_set_text(const struct opt *o, void *base, const char *s, char *why, size_t whylen);
/* Every (non-derived) default of tbl into the struct at base; fails only on OOM. */
int opt_apply_defaults(const struct opt *tbl, size_t n, void *base, char *why, size_t whylen);

#endif
