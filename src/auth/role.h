/*
 * role.h - the roles a caller can have and the permissions a route can need (the table in
 * auth.h says which role allows what). Below everything else in auth/: auth.c decides a
 * request with it, apikey.c checks a new key's role with it. Constant data: any thread.
 */
#ifndef SLUICE_AUTH_ROLE_H
#define SLUICE_AUTH_ROLE_H

/* In the order of auth.jwt.default_role's choices. */
enum role { ROLE_NONE = 0, ROLE_VIEWER, ROLE_INGEST, ROLE_OPERATOR, ROLE_ADMIN };
enum perm { PERM_OPEN = 0, PERM_METRICS, PERM_READ, PERM_INGEST, PERM_OPERATE, PERM_ADMIN };

const char *role_name(enum role r); /* "viewer", ...; "none" */
/* The role called name, or -1. */
int role_from_name(const char *name);
int role_allows(enum role r, enum perm p);

#endif
