/*
 * load.c - config_load(): one YAML file read with libfyaml into struct
 * sluice_config. Defaults first (values.c), then the document walked against
 * the option table (yaml.c); the options that are lists of entries (datasets,
 * each compiled with schema_compile(); auth.jwt.keys, checked but not read:
 * auth/jwt_keys.c builds the keys; alerts.receivers and alerts.routes) are
 * loaded here, then the caller's step (config_load_then), then the checks
 * across options (routes name known receivers, trusted proxies are IP
 * addresses). Every error names the file, the line and
 * the option.
 */
#include "config/yaml.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/errors.h"
#include "util/mem.h"

/* yaml.h */
int yaml_load_entry(struct loader *ld, struct fy_node *item, int line, const struct opt *tbl,
                    size_t n, void *base, int *lines, const char *prefix, const char *option,
                    const char *what)
{
    char why[160];

    if (!item || !fy_node_is_mapping(item))
        return yaml_fail_at(ld, yaml_node_line(item) ? yaml_node_line(item) : line, option,
                            "expected %s, got %s", what,
                            item ? yaml_node_kind_name(item) : "nothing");
    line = yaml_node_line(item) ? yaml_node_line(item) : line;
    if (opt_apply_defaults(tbl, n, base, why, sizeof why) < 0)
        return yaml_fail_at(ld, line, option, "%s", why);
    if (yaml_walk_mapping(ld, item, tbl, n, base, lines, "", prefix) < 0)
        return -1;
    for (size_t j = 0; j < n; j++)
        if ((tbl[j].flags & OPT_REQUIRED) && !lines[j])
            return yaml_fail_at(ld, line, option, "'%s' is required", tbl[j].name);
    return line;
}

/* Load one entry of datasets; index i is the entry's position. */
static int load_dataset(struct loader *ld, struct fy_node *item, size_t i, int line)
{
    struct sluice_config *cfg = ld->cfg;
    struct dataset_config *ds = &cfg->datasets[i];
    int lines[OPTS_MAX] = {0};
    char prefix[32], option[64];
    size_t ni = (size_t)(opt_find(config_ds_opts, config_nds_opts, "name") - config_ds_opts);
    size_t ki = (size_t)(opt_find(config_ds_opts, config_nds_opts, "key") - config_ds_opts);
    size_t oi =
        (size_t)(opt_find(config_ds_opts, config_nds_opts, "on_duplicate") - config_ds_opts);

    snprintf(prefix, sizeof prefix, "datasets[%zu].", i);
    snprintf(option, sizeof option, "datasets[%zu]", i);
    if ((line = yaml_load_entry(ld, item, line, config_ds_opts, config_nds_opts, ds, lines, prefix,
                                option, "a mapping with name and schema")) < 0)
        return -1;
    {
        size_t si = (size_t)(opt_find(config_ds_opts, config_nds_opts, "schema") - config_ds_opts);
        char msg[400] = "";
        if (!(ds->schema = schema_compile(ds->schema_json, msg, sizeof msg))) {
            snprintf(option, sizeof option, "%s%s", prefix, config_ds_opts[si].name);
            return yaml_fail_at(ld, lines[si], option, "%s (dataset '%s')",
                                msg[0] ? msg : "invalid schema", ds->name);
        }
    }
    for (size_t j = 0; j < i; j++) {
        if (strcmp(cfg->datasets[j].name, ds->name) == 0) {
            snprintf(option, sizeof option, "%s%s", prefix, config_ds_opts[ni].name);
            return yaml_fail_at(ld, lines[ni], option,
                                "duplicate dataset name '%s' (datasets[%zu])", ds->name, j);
        }
    }
    if (ds->key) {
        char kwhy[200];
        snprintf(option, sizeof option, "%s%s", prefix, config_ds_opts[ki].name);
        if (schema_key_parse(ds->schema, ds->key, &ds->key_fields, kwhy, sizeof kwhy) < 0)
            return yaml_fail_at(ld, lines[ki], option, "%s", kwhy);
    } else if (ds->on_duplicate != ON_DUP_REJECT) {
        snprintf(option, sizeof option, "%s%s", prefix, config_ds_opts[oi].name);
        return yaml_fail_at(ld, lines[oi], option, "'%s' needs a key",
                            on_duplicate_name(ds->on_duplicate));
    }
    return 0;
}

int yaml_load_list(struct loader *ld, struct fy_node *seq, int line, const char *option,
                   const char *what, int required, size_t elem, void **out, size_t *nout,
                   int (*one)(struct loader *ld, struct fy_node *item, size_t i, int line))
{
    struct fy_node *item;
    void *it = NULL;
    size_t n, i = 0;
    if (!seq && !required)
        return 0;
    if (!seq || !fy_node_is_sequence(seq))
        return yaml_fail_at(ld, line, option, "expected %s, got %s", what,
                            seq ? yaml_node_kind_name(seq) : "nothing");
    n = (size_t)fy_node_sequence_item_count(seq);
    if (n == 0)
        return 0;
    if (!(*out = sl_calloc(n, elem)))
        return yaml_fail_at(ld, line, option, "out of memory");
    *nout = n; /* entries are zeroed, so config_release() can free a partial load */
    while ((item = fy_node_sequence_iterate(seq, &it)) && i < n) {
        if (one(ld, item, i, line) < 0)
            return -1;
        i++;
    }
    return 0;
}

static int load_datasets(struct loader *ld, struct fy_node *seq, int line, const char *option)
{
    return yaml_load_list(ld, seq, line, option, "a list of datasets", 1, sizeof *ld->cfg->datasets,
                          (void **)&ld->cfg->datasets, &ld->cfg->ndatasets, load_dataset);
}

/* Load one entry of auth.jwt.keys. */
static int load_jwt_key(struct loader *ld, struct fy_node *item, size_t i, int line)
{
    struct jwt_key_config *k = &ld->cfg->auth.jwt.keys[i];
    int lines[OPTS_MAX] = {0};
    char prefix[48], option[48];
    snprintf(prefix, sizeof prefix, "auth.jwt.keys[%zu].", i);
    snprintf(option, sizeof option, "auth.jwt.keys[%zu]", i);
    if ((line = yaml_load_entry(ld, item, line, config_jwt_key_opts, config_njwt_key_opts, k, lines,
                                prefix, option, "a mapping")) < 0)
        return -1;
    k->line = line;
    int sources = !!k->secret_file + !!k->secret_env + !!k->public_key_file + !!k->jwks_file;
    if (sources != 1)
        return yaml_fail_at(
            ld, line, option,
            "give exactly one of secret_file, secret_env, public_key_file, jwks_file");
    if (!k->jwks_file && (!k->algorithms || !k->algorithms[0]))
        return yaml_fail_at(ld, line, option, "'algorithms' is required for this key");
    if (k->jwks_file && (k->algorithms || k->kid))
        return yaml_fail_at(ld, line, option,
                            "a jwks_file brings its keys' kid and alg: give neither here");
    for (size_t a = 0; k->algorithms && k->algorithms[a]; a++)
        if (!config_is_one_of(k->algorithms[a], config_jwt_algorithms))
            return yaml_fail_at(ld, line, option,
                                "unknown algorithm '%s' (HS256/384/512, RS256/384/512, "
                                "PS256/384/512, ES256/384/512, EdDSA)",
                                k->algorithms[a]);
    return 0;
}

static int load_jwt_keys(struct loader *ld, struct fy_node *seq, int line, const char *option)
{
    struct sluice_config *cfg = ld->cfg;
    return yaml_load_list(ld, seq, line, option, "a list of keys", 0, sizeof *cfg->auth.jwt.keys,
                          (void **)&cfg->auth.jwt.keys, &cfg->auth.jwt.nkeys, load_jwt_key);
}

/* alerts.receivers or alerts.routes: a list of mappings, each checked. */
static int load_alert_list(struct loader *ld, enum opt_type t, struct fy_node *seq, int line,
                           const char *option)
{
    struct sluice_config *cfg = ld->cfg;
    struct fy_node *item;
    void *it = NULL;
    size_t n, i = 0;
    int recv = t == OT_RECEIVERS;
    if (!seq)
        return 0;
    if (!fy_node_is_sequence(seq))
        return yaml_fail_at(ld, line, option, "expected a list, got %s", yaml_node_kind_name(seq));
    n = (size_t)fy_node_sequence_item_count(seq);
    if (n == 0)
        return 0;
    if (recv) {
        if (!(cfg->alerts.receivers = sl_calloc(n, sizeof *cfg->alerts.receivers)))
            return yaml_fail_at(ld, line, option, "out of memory");
        cfg->alerts.nreceivers = n;
    } else {
        if (!(cfg->alerts.routes = sl_calloc(n, sizeof *cfg->alerts.routes)))
            return yaml_fail_at(ld, line, option, "out of memory");
        cfg->alerts.nroutes = n;
    }
    while ((item = fy_node_sequence_iterate(seq, &it)) && i < n) {
        const struct opt *tbl = recv ? config_receiver_opts : config_route_opts;
        size_t nt = recv ? config_nreceiver_opts : config_nroute_opts;
        void *base = recv ? (void *)&cfg->alerts.receivers[i] : (void *)&cfg->alerts.routes[i];
        int lines[8] = {0}, l;
        char prefix[48], opt[48];
        snprintf(prefix, sizeof prefix, "%s[%zu].", option, i);
        snprintf(opt, sizeof opt, "%s[%zu]", option, i);
        if ((l = yaml_load_entry(ld, item, line, tbl, nt, base, lines, prefix, opt, "a mapping")) <
            0)
            return -1;
        if (recv) {
            struct receiver_config *r = &cfg->alerts.receivers[i];
            r->line = l;
            if (r->type != 2 && !r->url)
                return yaml_fail_at(ld, l, opt, "a %s receiver needs a url",
                                    config_receiver_types[r->type]);
            for (size_t k = 0; k < i; k++)
                if (strcmp(cfg->alerts.receivers[k].name, r->name) == 0)
                    return yaml_fail_at(ld, l, opt, "duplicate receiver name '%s'", r->name);
        } else {
            cfg->alerts.routes[i].line = l;
        }
        i++;
    }
    return 0;
}

/* The options that are lists of entries, for the walk in yaml.c (struct loader). */
static int load_list(struct loader *ld, const struct opt *o, struct fy_node *v, int line,
                     const char *option)
{
    if (o->type == OT_DATASETS)
        return load_datasets(ld, v, line, option);
    if (o->type == OT_JWTKEYS)
        return load_jwt_keys(ld, v, line, option);
    if (o->type == OT_JOBS)
        return config_load_jobs(ld, v, line, option);
    return load_alert_list(ld, o->type, v, line, option);
}

/* Every route names known receivers (after both lists are loaded). */
static int check_routes(struct loader *ld)
{
    struct sluice_config *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->alerts.nroutes; i++) {
        struct route_config *r = &cfg->alerts.routes[i];
        for (size_t k = 0; r->receivers && r->receivers[k]; k++) {
            size_t j = 0;
            while (j < cfg->alerts.nreceivers &&
                   strcmp(cfg->alerts.receivers[j].name, r->receivers[k]) != 0)
                j++;
            if (j == cfg->alerts.nreceivers) {
                char opt[48];
                snprintf(opt, sizeof opt, "alerts.routes[%zu]", i);
                return yaml_fail_at(ld, r->line, opt, "no receiver named '%s'", r->receivers[k]);
            }
        }
    }
    return 0;
}

/* Every rate_limits.trusted_proxies entry is an IP address, rewritten in the form the
 * server prints a peer's address in (`::FFFF:10.0.0.5` -> `::ffff:10.0.0.5`): they are
 * compared as text. */
static int check_proxies(struct loader *ld, const int *lines)
{
    const char *name = "rate_limits.trusted_proxies";
    char **p = ld->cfg->rate_limits.trusted_proxies;
    for (size_t i = 0; p && p[i]; i++) {
        unsigned char a[16];
        char text[INET6_ADDRSTRLEN];
        int af = strchr(p[i], ':') ? AF_INET6 : AF_INET;
        if (inet_pton(af, p[i], a) != 1 || !inet_ntop(af, a, text, sizeof text))
            return yaml_fail_at(ld, lines[opt_find(config_opts, config_nopts, name) - config_opts],
                                name, "'%s' is not an IP address", p[i]);
        if (config_set_string(&p[i], text) < 0)
            return yaml_fail_at(ld, 1, name, "out of memory");
    }
    return 0;
}

/* Report the first error libfyaml collected, or a generic one. */
static int yaml_error(struct loader *ld, struct fy_diag *diag)
{
    struct fy_diag_error *e;
    void *it = NULL;

    while ((e = fy_diag_errors_iterate(diag, &it)))
        if (e->type >= FYET_ERROR)
            return yaml_fail_at(ld, e->line, "YAML syntax error", "%s (column %d)", e->msg,
                                e->column);
    return yaml_fail_at(ld, 1, "YAML syntax error", "the file cannot be parsed");
}

static void diag_discard(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag, (void)user, (void)buf, (void)len;
}

int config_load_then(const char *path, struct sluice_config *cfg, config_load_step then, char *err,
                     size_t errlen)
{
    struct loader ld = {
        .file = path, .cfg = cfg, .err = err, .errlen = errlen, .load_list = load_list};
    int lines[OPTS_MAX] = {0};
    struct fy_diag_cfg dcfg;
    struct fy_parse_cfg pcfg;
    struct fy_diag *diag = NULL;
    struct fy_parser *fyp = NULL;
    struct fy_document *fyd = NULL, *more = NULL;
    struct fy_node *root;
    FILE *fp = NULL;
    struct stat st;
    char why[400];
    int rc = -1;

    memset(cfg, 0, sizeof *cfg);
    err_set(err, errlen, "%s", "");
    if (opt_apply_defaults(config_opts, config_nopts, cfg, why, sizeof why) < 0) {
        err_set(err, errlen, "%s: %s", path ? path : "(defaults)", why);
        goto fail;
    }
    if (!path)
        goto derive;
    if (!(cfg->path = sl_strdup(path))) {
        err_set(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (!(fp = fopen(path, "r"))) {
        err_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        err_set(err, errlen, "%s: cannot open: %s", path, strerror(EISDIR));
        goto fail;
    }
    /* errors are collected, never printed: they come back through err */
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = diag_discard;
    dcfg.level = FYET_ERROR;
    dcfg.colorize = false;
    memset(&pcfg, 0, sizeof pcfg);
    pcfg.flags = FYPCF_QUIET | FYPCF_RESOLVE_DOCUMENT;
    if (!(pcfg.diag = diag = fy_diag_create(&dcfg)) || !(fyp = fy_parser_create(&pcfg))) {
        err_set(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    fy_diag_set_collect_errors(diag, true);
    if (fy_parser_set_input_fp(fyp, path, fp) != 0) {
        err_set(err, errlen, "%s: cannot read", path);
        goto fail;
    }
    fyd = fy_parse_load_document(fyp);
    if (ferror(fp)) {
        err_set(err, errlen, "%s: cannot read", path);
        goto fail;
    }
    if (fy_parser_get_stream_error(fyp)) {
        yaml_error(&ld, diag);
        goto fail;
    }
    if (fyd && ((more = fy_parse_load_document(fyp)) || fy_parser_get_stream_error(fyp))) {
        if (more)
            yaml_fail_at(&ld, yaml_node_line(fy_document_root(more)), "(top level)",
                         "only one YAML document is allowed");
        else
            yaml_error(&ld, diag);
        goto fail;
    }
    root = fyd ? fy_document_root(fyd) : NULL;
    if (root && fy_node_is_scalar(root) && fy_node_get_style(root) == FYNS_PLAIN &&
        !fy_node_get_scalar_token(root))
        root = NULL; /* a document with nothing in it */
    if (root && !fy_node_is_mapping(root)) {
        yaml_fail_at(&ld, yaml_node_line(root), "(top level)",
                     "expected a mapping of options, got %s", yaml_node_kind_name(root));
        goto fail;
    }
    if (root && yaml_walk_mapping(&ld, root, config_opts, config_nopts, cfg, lines, "", "") < 0)
        goto fail;
    cfg->storage_explicit =
        lines[opt_find(config_opts, config_nopts, "storage") - config_opts] != 0;
derive:
    if (!cfg->storage_explicit && config_derive_storage(cfg, why, sizeof why) < 0) {
        err_set(err, errlen, "%s: storage: %s", path ? path : "(defaults)", why);
        goto fail;
    }
    if ((then && then(cfg, err, errlen) < 0) || check_routes(&ld) < 0 ||
        check_proxies(&ld, lines) < 0)
        goto fail;
    rc = 0;
fail:
    if (more)
        fy_parse_document_destroy(fyp, more);
    if (fyd)
        fy_parse_document_destroy(fyp, fyd);
    fy_parser_destroy(fyp);
    if (diag)
        fy_diag_destroy(diag);
    if (fp)
        fclose(fp);
    if (rc < 0)
        config_release(cfg);
    return rc;
}

int config_load(const char *path, struct sluice_config *cfg, char *err, size_t errlen)
{
    return config_load_then(path, cfg, NULL, err, errlen);
}
