/* router.h: routing hints, `db@env` targets and the routing decision (pure). */
#ifndef ENVPROXY_ROUTER_H
#define ENVPROXY_ROUTER_H

#include "accounts.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define ROUTE_NAME_MAX 64 /* environment names and database names, in bytes */
#define ROUTE_MAX_ENVS 32

/* Copies a name into dst (cap bytes with the NUL), cut at cap - 1 bytes; returns its length. */
static inline size_t route_copy_name(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

/* A leading routing comment: `/\* env=prod db=shop *\/`, `/\* env=dev,prod *\/`,
 * `/\* env=* *\/`, `/\* compare=dev,prod key=id *\/`. */
typedef struct {
    bool present;
    size_t end; /* offset just past the routing comment (0 when absent) */
    int n_envs; /* env=a,b: names in envs[]; env=*: all_envs */
    bool all_envs;
    char envs[ROUTE_MAX_ENVS][ROUTE_NAME_MAX + 1];
    bool has_db;
    char db[ROUTE_NAME_MAX + 1];
    int n_compare; /* compare=a,b */
    char compare[2][ROUTE_NAME_MAX + 1];
    bool has_key;
    char key[ROUTE_NAME_MAX + 1];
} route_hint;

/* Looks for a routing comment at the start of sql (after white space). A comment whose first
 * word is not one of env=, db=, compare=, key= is an ordinary comment: h->present is false.
 * Returns 0, or -1 with err filled when the comment is a routing hint but malformed. */
int route_parse_hint(const char *sql, size_t len, route_hint *h, char *err, size_t errlen);

/* A database target: "shop@prod", "@prod", "shop", "`shop@prod`" already unquoted. */
typedef struct {
    bool has_env;
    char env[ROUTE_NAME_MAX + 1];
    bool has_db;
    char db[ROUTE_NAME_MAX + 1];
} route_target;

/* Splits s into database and environment at the last '@'. Returns 0, or -1 with err. */
int route_parse_target(const char *s, size_t len, route_target *t, char *err, size_t errlen);

/* Recognises a statement that is only `USE name` (unquoted, `backquoted` or "quoted"),
 * optionally followed by ';' and white space or comments. Returns 1 and the unquoted name in
 * name (cap bytes, NUL-terminated), 0 when sql is some other statement, -1 when it is a USE
 * statement that cannot be read (err filled). sql starts after any routing comment. */
int route_parse_use(const char *sql, size_t len, char *name, size_t cap, char *err,
                    size_t errlen);

/* Where one statement runs. */
typedef struct {
    const cfg_env *env;
    const char *db; /* NULL: no database */
    grant_level grant;
    bool read_only; /* the environment is read_only, or the account may only read there */
} route_result;

/* Checks that account a may use environment name. Returns the environment, or NULL when it
 * does not exist or a has no grant there (both look the same to the client). */
const cfg_env *route_env_for(const config *c, const account *a, const char *name,
                             grant_level *grant);

/* The environment a new session starts in: the account's default environment if granted,
 * else the configured default_environment if granted, else the first granted environment;
 * NULL when the account has no grant at all. */
const cfg_env *route_initial_env(const config *c, const account *a);

/* Resolves env and database for one statement from the session's position and the hint.
 * Database: the hint's db=, else the session's database, else the environment's default.
 * Returns 0, or the MySQL error code (1044) with err filled. */
int route_resolve(const config *c, const account *a, const char *session_env,
                  const char *session_db, const route_hint *h, route_result *out, char *err,
                  size_t errlen);

#endif
