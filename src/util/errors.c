/*
 * errors.c - tables generated from SLUICE_ERRORS (see errors.h).
 */
#include "util/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int status;
    const char *message;
} err_table[ERR__COUNT] = {[SLUICE_OK] = {"OK", 200, "ok"},
#define X(code, status, msg) [ERR_##code] = {#code, status, msg},
                           SLUICE_ERRORS(X)
#undef X
};

const char *err_name(enum sluice_err e)
{
    return (e >= 0 && e < ERR__COUNT) ? err_table[e].name : "INTERNAL";
}

int err_status(enum sluice_err e)
{
    return (e >= 0 && e < ERR__COUNT) ? err_table[e].status : 500;
}

const char *err_message(enum sluice_err e)
{
    return (e >= 0 && e < ERR__COUNT) ? err_table[e].message : "internal error";
}

enum sluice_err err_from_name(const char *name)
{
    for (int i = 1; i < ERR__COUNT; i++)
        if (strcmp(err_table[i].name, name) == 0)
            return (enum sluice_err)i;
    return SLUICE_OK;
}

void err_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
