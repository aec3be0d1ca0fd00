/*
 * h_datasets.c - GET /api/v1/datasets and /api/v1/datasets/{name}.
 */
#include "http/handlers.h"
#include "config/catalog.h"

static json_t *dataset_json(const struct dataset_config *d)
{
    /* the key as configured: a name, or an array of names for a key of several fields */
    return json_pack("{s:s,s:o?,s:s,s:f,s:O}", "name", d->name, "key",
                     schema_key_json(d->schema, &d->key_fields), "on_duplicate",
                     on_duplicate_name(d->on_duplicate), "error_threshold_percent",
                     d->error_threshold_percent, "schema", d->schema_json);
}

void h_datasets_list(struct http_conn *c, struct http_request *r)
{
    (void)r;
    struct catalog *cat = http_conn_catalog(c);
    json_t *items = json_array();
    for (size_t i = 0; i < cat->cfg.ndatasets; i++)
        json_array_append_new(items, dataset_json(&cat->cfg.datasets[i]));
    catalog_release(cat);
    http_reply_json(c, 200, json_pack("{s:o,s:n}", "items", items, "next_cursor"), NULL);
}

void h_datasets_get(struct http_conn *c, struct http_request *r)
{
    struct catalog *cat = http_conn_catalog(c);
    const struct dataset_config *d = config_dataset(&cat->cfg, r->params[0]);
    if (d)
        http_reply_json(c, 200, dataset_json(d), NULL);
    else
        http_reply_error(c, ERR_DATASET_NOT_FOUND, "no dataset named '%s'", r->params[0]);
    catalog_release(cat);
}
