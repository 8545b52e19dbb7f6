/* accounts.h: the SQLite account store, password hashing and verification. */
#ifndef ENVPROXY_ACCOUNTS_H
#define ENVPROXY_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { GRANT_NONE = 0, GRANT_READ = 1, GRANT_WRITE = 2 } grant_level;

typedef struct {
    char *env;
    grant_level level;
} acct_grant;

typedef struct account {
    char *name;
    uint8_t sha1_stage2[20];   /* SHA1(SHA1(password)): mysql_native_password */
    uint8_t sha256_stage2[32]; /* SHA256(SHA256(password)): caching_sha2_password */
    char *default_env;         /* NULL when none */
    acct_grant *grants;
    int n_grants;
    long long max_rows; /* the operator's override of limits.max_rows (0 = no cap); -1 = none */
    /* The override of limits.statement_timeout in ms (0 = none); -1 = no override. */
    long long statement_timeout_ms;
} account;

/* An API token as stored: the SHA-256 (hex) of the token, never the token itself. */
typedef struct {
    long long id;
    char *account;
    char hash[65];
    long long expires_at; /* wall clock seconds; 0: never */
} acct_token;

struct json;
/* A named query: its definition as JSON ({"name","description","sql","params",
 * "environments","database","owner"}), checked when it was saved. */
typedef struct {
    char *name;
    struct json *def;
} acct_query;

/* An immutable in-memory copy of the store, shared read-only by worker threads. */
typedef struct acct_snapshot {
    account *accounts;
    int n;
    acct_token *tokens;
    int n_tokens;
    acct_query *queries; /* sorted by name */
    int n_queries;
} acct_snapshot;

typedef struct acct_store acct_store; /* an open SQLite store */

/* Opens (creating when missing, mode 0600, schema migrated to the current version) the store
 * at path. Returns NULL and fills err on failure. */
acct_store *acct_open(const char *path, char *err, size_t errlen);
void acct_close(acct_store *s);
/* Whether the file at the store's path is no longer the one opened (1: another file was put
 * there, by mv or a copy to a new file; -1: there is none; 0: the same). */
int acct_replaced(const acct_store *s);

/* Management, used by the `user` subcommands. Each returns 0 on success, -1 with err
 * filled ("user 'x' does not exist", "user 'x' already exists", ...). */
int acct_user_add(acct_store *s, const char *name, const char *password, const char *default_env,
                  char *err, size_t errlen);
int acct_user_passwd(acct_store *s, const char *name, const char *password, char *err,
                     size_t errlen);
int acct_user_del(acct_store *s, const char *name, char *err, size_t errlen);
int acct_grant_set(acct_store *s, const char *name, const char *env, grant_level level, char *err,
                   size_t errlen);
int acct_grant_revoke(acct_store *s, const char *name, const char *env, char *err, size_t errlen);
/* Sets the account's max_rows override (0 = no cap), or removes it when max_rows < 0. */
int acct_limits_set(acct_store *s, const char *name, long long max_rows, char *err,
                    size_t errlen);
/* Sets the account's statement_timeout override in ms (0 = none), or removes it when ms < 0. */
int acct_timeout_set(acct_store *s, const char *name, long long ms, char *err, size_t errlen);
/* Prints one line per account: name, default env, grants ("dev=write,prod=read"). */
int acct_list(acct_store *s, FILE *out, char *err, size_t errlen);

/* Reads the whole store into memory. NULL with err on failure. */
acct_snapshot *acct_snapshot_load(acct_store *s, char *err, size_t errlen);
void acct_snapshot_free(acct_snapshot *snap);
const account *acct_find(const acct_snapshot *snap, const char *name);
grant_level acct_grant_for(const account *a, const char *env);
/* A value that changes whenever another connection committed a change to the store
 * (SQLite's PRAGMA data_version); -1 on error. */
long long acct_data_version(acct_store *s);

/* acct_http.c: API tokens and named queries. */
struct sqlite3;
struct sqlite3 *acct_sqlite(acct_store *s);
const char *acct_path(acct_store *s);
int acct_load_extras(acct_store *s, acct_snapshot *snap, char *err, size_t errlen);
void acct_free_extras(acct_snapshot *snap);
/* Makes a new API token for account name, valid until expires_at (0: never); the token is
 * written to token (cap >= 64) and only its hash is stored. Returns its id, -1 with err. */
long long acct_token_add(acct_store *s, const char *name, long long expires_at, char *token,
                         size_t cap, char *err, size_t errlen);
/* One line per token: id, account, created, expires (never the token). name NULL: all. */
int acct_token_list(acct_store *s, const char *name, FILE *out, char *err, size_t errlen);
int acct_token_revoke(acct_store *s, long long id, char *err, size_t errlen);
/* The token whose hash is hash and that has not expired at now, or NULL. */
const acct_token *acct_token_find(const acct_snapshot *snap, const char *hash, long long now);
/* Stores a checked definition (replace: an existing one is overwritten, else it must be new).
 * Returns 0, or -1 with err ("named query 'x' already exists", ...). */
int acct_query_put(acct_store *s, const char *name, const char *definition, bool replace,
                   char *err, size_t errlen);
int acct_query_del(acct_store *s, const char *name, char *err, size_t errlen);
const acct_query *acct_query_find(const acct_snapshot *snap, const char *name);

/* Hashing and verification (pure). */
void acct_hash_password(const char *password, uint8_t sha1_stage2[20], uint8_t sha256_stage2[32]);
/* mysql_native_password: resp = SHA1(pw) XOR SHA1(scramble || SHA1(SHA1(pw))). An empty
 * response matches only the empty password. scramble is 20 bytes. */
bool acct_verify_native(const uint8_t sha1_stage2[20], const uint8_t *scramble, const uint8_t *resp,
                        size_t resp_len);
/* caching_sha2_password fast auth: resp = SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) || scramble). */
bool acct_verify_sha2(const uint8_t sha256_stage2[32], const uint8_t *scramble, const uint8_t *resp,
                      size_t resp_len);
/* Valid account and environment names: [A-Za-z0-9_.-]{1,64} for accounts,
 * [A-Za-z0-9_-]{1,64} for environments. */
bool acct_valid_name(const char *name);
bool acct_valid_env_name(const char *name);

#endif
