/*
 * schema.h - the dataset schema: a JSON Schema subset, compiled once, used to
 * validate every row.
 *
 * Supported keywords (anything else is a compile error):
 *   top level: type: object, properties, required, additionalProperties (bool)
 *   per property: type (string|integer|number|boolean), minimum, maximum,
 *     exclusiveMinimum, exclusiveMaximum (numbers), minLength, maxLength (in
 *     Unicode code points), pattern (PCRE2, UTF mode, unanchored as in JSON
 *     Schema), enum (list of scalars), format (date | date-time), description;
 *     and the CSV-only keywords of struct field_csv below.
 * Refused at compile: two property names that differ only in case (they become
 * columns), bounds that no value satisfies, two fields matching one CSV header.
 *
 * A compiled schema is immutable and may be shared by any number of threads.
 */
#ifndef SLUICE_SCHEMA_SCHEMA_H
#define SLUICE_SCHEMA_SCHEMA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/errors.h"

enum field_type { FT_STRING = 0, FT_INTEGER, FT_NUMBER, FT_BOOLEAN };

/* "string", "integer", "number", "boolean". Static. */
const char *field_type_name(enum field_type t);

struct schema;

/*
 * One value of a row in its own type: a row is an array of these in declared
 * field order (VAL_ABSENT: the field is missing). Text is borrowed and need not
 * be NUL-terminated. VAL_NULL, VAL_ARRAY and VAL_OBJECT only come from JSON, to
 * be refused with the right message.
 */
enum value_kind {
    VAL_ABSENT = 0,
    VAL_INT,
    VAL_REAL,
    VAL_TEXT,
    VAL_BOOL,
    VAL_NULL,
    VAL_ARRAY,
    VAL_OBJECT
};
struct row_value {
    enum value_kind kind;
    union {
        int64_t i;
        double d;
        int b;
        struct {
            const char *p;
            size_t n;
        } s;
    } u;
};
/* A scalar value as JSON (a new reference); VAL_NULL gives null; NULL for VAL_ABSENT,
 * VAL_ARRAY and VAL_OBJECT (which carry no JSON). */
json_t *row_value_json(const struct row_value *v);

/*
 * Compile a schema from its JSON form (borrowed, not kept). Property names must
 * match ^[A-Za-z][A-Za-z0-9_]{0,62}$ (they become column names; a leading '_' is
 * reserved for sluice's own columns). Returns NULL with a message in err naming
 * the offending property and keyword, e.g.
 *   "properties.amount: unknown keyword 'minimun'".
 * Caller frees with schema_destroy().
 */
struct schema *schema_compile(json_t *spec, char *err, size_t errlen);
void schema_destroy(struct schema *s); /* accepts NULL */

/* Declared fields in declaration order (the order of `properties`). */
size_t schema_nfields(const struct schema *s);
const char *schema_field_name(const struct schema *s, size_t i); /* borrowed */
enum field_type schema_field_type(const struct schema *s, size_t i);
int schema_field_required(const struct schema *s, size_t i);
/* Index of the field called name, or -1. */
int schema_field_index(const struct schema *s, const char *name);
/* 1 unless additionalProperties is false. */
int schema_allows_extra(const struct schema *s);

/*
 * How a CSV cell becomes a field's value: the CSV-only keywords of a property (JSON rows
 * are typed already and ignore them). Borrowed from the schema.
 *   csv_name: string          the header of the column the field comes from (default: the
 *                             field's name); matched exactly, else loosely (see below)
 *   trim: bool                (strings) drop the cell's surrounding whitespace; cells of
 *                             every other type, and date / date-time strings, always are
 *   csv_empty_string: bool    (strings) an empty cell is "" (true) or null (false); unset:
 *                             the dataset's csv_empty_string decides
 *   decimal: "." | ","        (numbers) the decimal separator
 *   group: "," "." " " "'" "_"  (integers, numbers) the digit group separator
 */
struct field_csv {
    const char *header; /* csv_name, or the field's name */
    const char *name;   /* csv_name, NULL when not given */
    int trim;           /* 1: surrounding whitespace is dropped */
    int empty_string;   /* -1: unset, 0: an empty cell is null, 1: it is "" */
    char decimal;       /* '.' unless declared */
    char group;         /* 0: none */
};
const struct field_csv *schema_field_csv(const struct schema *s, size_t i);
/* Drop the surrounding whitespace (space, \t, \r, \n, \v, \f) of the text at *p, len bytes. */
void schema_csv_trim(const char **p, size_t *len);
/* Whether CSV header text h (len bytes) matches name loosely: equal once the surrounding
 * whitespace of both is dropped, ASCII letters compared without case. */
int schema_csv_header_like(const char *h, size_t len, const char *name);

/* One error of one row. field may be NULL (a row-level error); message is human text. */
struct row_error {
    enum sluice_err code;
    char *field;   /* owned */
    char *message; /* owned */
};

/* A growable list of row errors; owns its elements. Zero-initialise before use.
 * lost counts the errors that could not be recorded (out of memory): a row with lost != 0
 * is invalid although v may not say why, so whoever reports it fails instead (5xx). */
struct row_errors {
    struct row_error *v;
    size_t n, cap;
    size_t lost;
};
/* Append a copy of field and a formatted message (or count it in lost). */
void row_errors_add(struct row_errors *e, enum sluice_err code, const char *field, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
void row_errors_clear(struct row_errors *e);   /* empties, keeps capacity */
void row_errors_release(struct row_errors *e); /* frees everything */
/* A JSON array [{"field","code","message"}] of the errors (new reference). */
json_t *row_errors_to_json(const struct row_errors *e);

/*
 * Validate one row (borrowed). Appends EVERY error found to errs (not just the
 * first) and returns how many it appended. A row that is not a JSON object gets
 * one NOT_AN_OBJECT error. Integers given as 3.0 are accepted as integers.
 * When the row is valid, the schema allows extra fields and extra != NULL,
 * *extra is set to a new object holding the undeclared fields, or NULL if there
 * are none (caller owns it).
 */
size_t schema_validate(const struct schema *s, json_t *row, struct row_errors *errs,
                       json_t **extra);

/*
 * The same for a row given as values (one per declared field, schema order), as a
 * CSV record is: the same checks, codes and messages in the same order. unknown
 * names the row's undeclared fields (n_unknown of them), refused as UNKNOWN_FIELD
 * when the schema has additionalProperties: false. No allocation for a valid row.
 * A VAL_ABSENT field that an error already in errs names (the caller reported its value,
 * e.g. a CSV cell that is no number in the declared format) is not reported missing.
 */
size_t schema_validate_values(const struct schema *s, const struct row_value *vals,
                              const char *const *unknown, size_t n_unknown,
                              struct row_errors *errs);

/*
 * Can rows stored under `old` be kept under `next`? Adding a field that is not
 * required, adding/changing constraints is fine; removing a field or changing
 * its type is not, nor making a new field required. Returns 0 when compatible,
 * -1 with the reason in why ("field 'amount' changed type from number to string").
 */
int schema_compatible(const struct schema *old, const struct schema *next, char *why,
                      size_t whylen);

/* Whether s is a valid calendar date YYYY-MM-DD / an RFC 3339 date-time (len bytes). */
int schema_is_date(const char *s, size_t len);
int schema_is_datetime(const char *s, size_t len);

/*
 * A dataset's key: the declared fields whose values, taken together, are unique
 * among the stored rows. One field or several (at most SCHEMA_KEY_MAX), in the
 * order written: the order of the unique index's columns and of the values in a
 * DUPLICATE_KEY message. Each is of type string or integer. A key of several
 * fields needs each of them in `required` (SQL would let rows that lack one of
 * them all in, as never equal to another); a key of one field may be optional, as
 * it always could: a row without it is stored and is never a duplicate.
 *
 * Its text form, stored with the dataset's table and compared when the
 * configuration is loaded again, is the field's name for a key of one field
 * ("case_number") and a JSON array of the names for several
 * ("[\"source\",\"case_number\"]"). A property name never starts with '[', so
 * the two cannot be confused, and `[case_number]` is the same key as
 * `case_number`.
 */
#define SCHEMA_KEY_MAX 8
struct schema_key {
    size_t n;                     /* 0: no key */
    size_t field[SCHEMA_KEY_MAX]; /* indices of the schema's fields */
};

/* The text form of the key names[0..n), 1 <= n (caller frees); NULL when out of memory. */
char *schema_key_text(const char *const *names, size_t n);

/*
 * Resolve a key's text form against s into k (NULL text: no key). Returns 0, or -1
 * with the reason in why, naming the field: "'source' is not a property of the
 * schema", "'x' is of type number; a key must be a string or an integer", "'id'
 * is named twice", "'source' is not in required (every field of a key of several
 * fields must be)", "a key has at most 8 fields, got 9".
 */
int schema_key_parse(const struct schema *s, const char *text, struct schema_key *k, char *why,
                     size_t whylen);

/* The key as JSON: its name (a string) for one field, an array of names for several
 * (a new reference; NULL for no key or out of memory). */
json_t *schema_key_json(const struct schema *s, const struct schema_key *k);

/*
 * Add to errs the DUPLICATE_KEY error of a row whose key k (text form key_text) is
 * already stored: field is key_text, the message shows the row's values of the key,
 * one as JSON, several as a JSON array in the key's order:
 *   a row with case_number = "CASE-0000001" is already stored
 *   a row with ["source","case_number"] = ["api","CASE-0000001"] is already stored
 * The values come from row (a JSON object) when it is not NULL, else from vals (one
 * per field, schema order); a missing one shows as null.
 */
void schema_key_duplicate(const struct schema *s, const struct schema_key *k, const char *key_text,
                          json_t *row, const struct row_value *vals, struct row_errors *errs);

#endif
