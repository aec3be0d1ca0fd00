/*
 * role.c - the roles' names and what each allows (see role.h).
 */
#include "auth/role.h"

#include <stddef.h>
#include <string.h>

static const char *const role_names[] = {"none", "viewer", "ingest", "operator", "admin"};

const char *role_name(enum role r)
{
    return (unsigned)r < sizeof role_names / sizeof role_names[0] ? role_names[r] : "none";
}

int role_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++)
        if (name && strcmp(name, role_names[i]) == 0)
            return (int)i;
    return -1;
}

int role_allows(enum role r, enum perm p)
{
    switch (p) {
    case PERM_OPEN:
        return 1;
    case PERM_METRICS:
        return r != ROLE_NONE;
    case PERM_READ:
        return r == ROLE_VIEWER || r == ROLE_OPERATOR || r == ROLE_ADMIN;
    case PERM_INGEST:
        return r == ROLE_INGEST || r == ROLE_OPERATOR || r == ROLE_ADMIN;
    case PERM_OPERATE:
        return r == ROLE_OPERATOR || r == ROLE_ADMIN;
    case PERM_ADMIN:
        return r == ROLE_ADMIN;
    }
    return 0;
}
