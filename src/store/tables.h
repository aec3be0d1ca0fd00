/*
 * tables.h - a store's content as plain tables of typed values, the same for
 * every backend: what `sluice migrate` copies from one store to another and
 * verifies.
 *
 * Why this shape: migrate moves everything between backends whose SQL differs
 * (column types, sequences, rowids, quoting, bulk loading). Instead of an
 * operation per concept (copy the batches, the keys, the rollups ...), which
 * would grow with every table, each backend learns a few generic operations on
 * a table described here (count, dump in key order, load, drop a dataset; see
 * store.h), and this file says once which tables and columns make up a store
 * and how a row is written down canonically, so that a checksum taken on
 * SQLite equals the one taken on PostgreSQL for the same content.
 */
#ifndef SLUICE_STORE_TABLES_H
#define SLUICE_STORE_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "schema/schema.h"

/* The kinds of value both backends store alike. Booleans are integers 0/1 in both. */
enum cell_type { CELL_NULL = 0, CELL_INT, CELL_REAL, CELL_TEXT, CELL_BYTES };

/* One value of a row. TEXT and BYTES: n bytes at p (borrowed; TEXT is not NUL-terminated). */
struct cell {
    enum cell_type type;
    int64_t i;
    double d;
    const char *p;
    size_t n;
};

#define COL_KEY 1u    /* part of the primary key: rows are dumped in key order */
#define COL_SERIAL 2u /* an id a sequence hands out: the next one must follow the copied ones */
#define COL_LOCAL 4u  /* where this store keeps something (a batch's file): not compared */

struct table_col {
    const char *name;
    enum cell_type type; /* every value is of this type or NULL */
    unsigned flags;
};

struct table_def {
    const char *name; /* the table: "batches", "ds_judgments" */
    const struct table_col *cols;
    size_t ncols;
};

/*
 * The sluice tables of every store, in the order migrate copies them. Not here:
 * schema_migrations (each store has its own), the dataset tables (one per row of
 * `datasets`, see table_def_dataset; copied right after `datasets`), batch
 * files (store.h's file_* operations), and SQLite's batch_pending and dlq_staged (a batch
 * being stored in slices, batch/slices.c: migrate copies what readers see, and such a
 * batch, still in its state, is stored again where it lands).
 */
extern const struct table_def store_tables[];
extern const size_t store_ntables;

/* The table ds_<name> of a dataset whose schema is s: the system columns (_id,
 * _ingest_id, _source, _received_at, _extra, _batch_id), then one per field.
 * NULL when out of memory. Caller frees with table_def_free. */
struct table_def *table_def_dataset(const char *name, const struct schema *s);
void table_def_free(struct table_def *t); /* accepts NULL */

/* The columns of key k of a dataset whose schema is s, quoted and comma-separated in the
 * key's order ("\"source\", \"case_number\""), appended to b: what both backends write
 * as the unique index's columns and as the ON CONFLICT target. 0; -1 when b is full. */
struct buf;
int table_key_columns(struct buf *b, const struct schema *s, const struct schema_key *k);

/* The index of column name in t, or -1. */
int table_col_index(const struct table_def *t, const char *name);

/*
 * Row count and a SHA-256 over a table's rows in key order, each value written as
 * a type tag and its bytes (integers as 8 bytes big-endian, reals as IEEE 754 with
 * -0 as 0, text and bytes with their length), COL_LOCAL columns left out: equal
 * content gives equal sums whatever the backend.
 */
struct table_sum {
    int64_t rows;
    unsigned char sha256[32];
    void *md; /* the digest under way (EVP_MD_CTX) */
};
int table_sum_init(struct table_sum *s);
int table_sum_row(struct table_sum *s, const struct table_def *t, const struct cell *row);
int table_sum_final(struct table_sum *s);    /* also frees the digest */
void table_sum_release(struct table_sum *s); /* after a failure; accepts a finished sum */
/* 2*n hex digits of sum (n <= 32) in out (2*n + 1 bytes). */
void table_sum_hex(const struct table_sum *s, size_t n, char *out);

#endif
