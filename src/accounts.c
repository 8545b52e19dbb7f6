/* accounts.c: the SQLite account store, password hashing and verification. */
#include "accounts.h"
#include "acct_history.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sqlite3.h>

/* The schema version this code writes. Each step in migrations[] moves a store from
 * version i to i + 1 and sets user_version itself, so a step and its version bump commit
 * together. */
#define ACCT_SCHEMA_VERSION 2

static const char *const migrations[ACCT_SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE accounts ("
    "  name TEXT PRIMARY KEY,"
    "  sha1_stage2 BLOB NOT NULL,"
    "  sha256_stage2 BLOB NOT NULL,"
    "  default_env TEXT,"
    "  created_at TEXT,"
    "  updated_at TEXT"
    ");"
    "CREATE TABLE grants ("
    "  account TEXT REFERENCES accounts(name) ON DELETE CASCADE,"
    "  env TEXT,"
    "  level TEXT CHECK (level IN ('read', 'write')),"
    "  PRIMARY KEY (account, env)"
    ");"
    "PRAGMA user_version = 1;",
    /* 1 -> 2: API tokens (SHA-256 of the token, never the token) and named queries. */
    "CREATE TABLE api_tokens ("
    "  id INTEGER PRIMARY KEY,"
    "  account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,"
    "  hash TEXT NOT NULL UNIQUE,"
    "  created_at TEXT,"
    "  expires_at INTEGER"
    ");"
    "CREATE TABLE named_queries ("
    "  name TEXT PRIMARY KEY,"
    "  definition TEXT NOT NULL,"
    "  updated_at TEXT"
    ");"
    "PRAGMA user_version = 2;",
};

/* Per-account limit overrides live in a table of their own, created when missing whatever
 * the schema version, so that this addition does not take a version number that another
 * change to the schema may also claim. Older envproxy versions ignore the table. */
static const char limits_table_sql[] =
    "CREATE TABLE IF NOT EXISTS account_limits ("
    "  account TEXT PRIMARY KEY REFERENCES accounts(name) ON DELETE CASCADE,"
    "  max_rows INTEGER NOT NULL CHECK (max_rows >= 0)"
    ")";

/* The same for the statement_timeout override (in ms, 0 = none). */
static const char timeouts_table_sql[] =
    "CREATE TABLE IF NOT EXISTS account_timeouts ("
    "  account TEXT PRIMARY KEY REFERENCES accounts(name) ON DELETE CASCADE,"
    "  statement_timeout_ms INTEGER NOT NULL CHECK (statement_timeout_ms >= 0)"
    ")";

#define ACCT_BUSY_TIMEOUT_MS 2000
#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"

struct acct_store {
    sqlite3 *db;
    char *path; /* for error messages */
    dev_t dev;  /* the file opened: another one at path means the store was replaced */
    ino_t ino;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Reports the connection's last SQLite error, prefixed with the store's path. SQLite's
 * messages name tables and columns, never bound values, so no secret can leak here. */
static void db_err(acct_store *s, char *err, size_t errlen, const char *what)
{
    set_err(err, errlen, "account store %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

/* ---- names ---------------------------------------------------------------------------- */

static bool valid_chars(const char *name, bool allow_dot)
{
    size_t n = 0;

    if (!name)
        return false;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || (allow_dot && c == '.');
        if (!ok || n >= 64)
            return false;
    }
    return n >= 1;
}

bool acct_valid_name(const char *name)
{
    return valid_chars(name, true);
}

bool acct_valid_env_name(const char *name)
{
    return valid_chars(name, false);
}

static int check_name(const char *name, char *err, size_t errlen)
{
    if (acct_valid_name(name))
        return 0;
    set_err(err, errlen, "invalid user name: use 1 to 64 of the characters A-Z a-z 0-9 _ . -");
    return -1;
}

static int check_env(const char *env, char *err, size_t errlen)
{
    if (acct_valid_env_name(env))
        return 0;
    set_err(err, errlen, "invalid environment name: use 1 to 64 of the characters A-Z a-z 0-9 _ -");
    return -1;
}

/* ---- hashing and verification -------------------------------------------------------- */

static void digest(const EVP_MD *md, const void *data, size_t len, uint8_t *out)
{
    /* EVP_Digest only fails on allocation failure inside OpenSSL; make that a value no
     * stored hash can equal rather than leaving the buffer uninitialised. */
    if (!EVP_Digest(data, len, out, NULL, md, NULL))
        memset(out, 0xff, (size_t)EVP_MD_get_size(md));
}

/* Hashes a || b with md into out. */
static void digest2(const EVP_MD *md, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                    uint8_t *out)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!ctx || !EVP_DigestInit_ex(ctx, md, NULL) || !EVP_DigestUpdate(ctx, a, alen) ||
        !EVP_DigestUpdate(ctx, b, blen) || !EVP_DigestFinal_ex(ctx, out, NULL))
        memset(out, 0xff, (size_t)EVP_MD_get_size(md));
    EVP_MD_CTX_free(ctx);
}

void acct_hash_password(const char *password, uint8_t sha1_stage2[20], uint8_t sha256_stage2[32])
{
    uint8_t stage1[32];
    size_t len = password ? strlen(password) : 0;
    const char *pw = password ? password : "";

    digest(EVP_sha1(), pw, len, stage1);
    digest(EVP_sha1(), stage1, 20, sha1_stage2);
    digest(EVP_sha256(), pw, len, stage1);
    digest(EVP_sha256(), stage1, 32, sha256_stage2);
    OPENSSL_cleanse(stage1, sizeof stage1);
}

/* MySQL clients send nothing for an empty password, except that caching_sha2_password
 * clients send a single NUL byte; both mean "no password". */
static bool is_empty_response(const uint8_t *resp, size_t resp_len)
{
    return resp_len == 0 || (resp_len == 1 && resp && resp[0] == 0);
}

/* Whether stage2 (len 20: SHA1, len 32: SHA256) is that of the empty password. */
static bool empty_stage2_matches(const uint8_t *stage2, size_t len)
{
    uint8_t s1[20], s256[32];
    bool ok;

    acct_hash_password("", s1, s256);
    ok = CRYPTO_memcmp(stage2, len == 20 ? s1 : s256, len) == 0;
    return ok;
}

/* Both plugins send stage1 XOR mask, where the mask is a hash of the nonce and stage2.
 * Recover the candidate stage1 and check that hashing it gives the stored stage2. */
static bool verify_scramble(const EVP_MD *md, size_t hlen, const uint8_t *stage2,
                            const uint8_t *scramble, const uint8_t *resp, size_t resp_len,
                            bool nonce_first)
{
    uint8_t mask[32], candidate[32], check[32];
    bool ok;

    if (!stage2)
        return false;
    if (is_empty_response(resp, resp_len))
        return empty_stage2_matches(stage2, hlen);
    if (!scramble || !resp || resp_len != hlen)
        return false;
    if (nonce_first)
        digest2(md, scramble, 20, stage2, hlen, mask);
    else
        digest2(md, stage2, hlen, scramble, 20, mask);
    for (size_t i = 0; i < hlen; i++)
        candidate[i] = resp[i] ^ mask[i];
    digest(md, candidate, hlen, check);
    ok = CRYPTO_memcmp(check, stage2, hlen) == 0;
    OPENSSL_cleanse(candidate, sizeof candidate);
    OPENSSL_cleanse(mask, sizeof mask);
    return ok;
}

bool acct_verify_native(const uint8_t sha1_stage2[20], const uint8_t *scramble, const uint8_t *resp,
                        size_t resp_len)
{
    return verify_scramble(EVP_sha1(), 20, sha1_stage2, scramble, resp, resp_len, true);
}

bool acct_verify_sha2(const uint8_t sha256_stage2[32], const uint8_t *scramble, const uint8_t *resp,
                      size_t resp_len)
{
    return verify_scramble(EVP_sha256(), 32, sha256_stage2, scramble, resp, resp_len, false);
}

/* ---- opening and migrating -------------------------------------------------------------- */

static int exec_sql(acct_store *s, const char *sql, char *err, size_t errlen, const char *what)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    db_err(s, err, errlen, what);
    return -1;
}

/* Runs a statement without parameters that returns one integer. -1 on error. */
static long long query_int(acct_store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void rollback(acct_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Brings the store to ACCT_SCHEMA_VERSION. The version is read again inside a write
 * transaction, so two processes opening a new store at once migrate it only once. */
static int migrate(acct_store *s, char *err, size_t errlen)
{
    long long v = query_int(s, "PRAGMA user_version");

    if (v < 0) {
        db_err(s, err, errlen, "cannot read the schema version");
        return -1;
    }
    if (v == ACCT_SCHEMA_VERSION)
        return 0;
    if (v > ACCT_SCHEMA_VERSION)
        goto too_new;

    if (exec_sql(s, "BEGIN IMMEDIATE", err, errlen, "cannot start the schema upgrade") < 0)
        return -1;
    v = query_int(s, "PRAGMA user_version");
    if (v < 0) {
        db_err(s, err, errlen, "cannot read the schema version");
        goto fail;
    }
    if (v > ACCT_SCHEMA_VERSION) {
        rollback(s);
        goto too_new;
    }
    if (v == 0 && query_int(s, "SELECT count(*) FROM sqlite_master") != 0) {
        set_err(err, errlen,
                "account store %s is an SQLite database that envproxy did not create "
                "(it has tables but no envproxy schema version)",
                s->path);
        goto fail;
    }
    for (; v < ACCT_SCHEMA_VERSION; v++) {
        if (exec_sql(s, migrations[v], err, errlen, "schema upgrade failed") < 0)
            goto fail;
    }
    if (exec_sql(s, "COMMIT", err, errlen, "cannot commit the schema upgrade") < 0)
        goto fail;
    return 0;

too_new:
    set_err(err, errlen, "account store %s has schema version %lld; this envproxy knows up to %d",
            s->path, v, ACCT_SCHEMA_VERSION);
    return -1;
fail:
    rollback(s);
    return -1;
}

acct_store *acct_open(const char *path, char *err, size_t errlen)
{
    acct_store *s;
    int fd, rc;

    if (!path || !*path) {
        set_err(err, errlen, "no account store path given");
        return NULL;
    }
    /* Create the file ourselves so that it is never, even briefly, readable by others:
     * the stored hashes are password equivalents. An existing file keeps its mode. */
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        set_err(err, errlen, "account store %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    int st_rc = fstat(fd, &st);
    close(fd);

    s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        set_err(err, errlen, "account store %s: out of memory", path);
        return NULL;
    }
    if (st_rc == 0) {
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (s->db)
            db_err(s, err, errlen, "cannot open");
        else
            set_err(err, errlen, "account store %s: cannot open: out of memory", path);
        acct_close(s);
        return NULL;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, ACCT_BUSY_TIMEOUT_MS);
    /* foreign_keys is a no-op inside a transaction, so set it before anything else. */
    if (exec_sql(s, "PRAGMA foreign_keys = ON", err, errlen, "cannot enable foreign keys") < 0 ||
        migrate(s, err, errlen) < 0 ||
        exec_sql(s, limits_table_sql, err, errlen, "cannot create the account_limits table") < 0 ||
        exec_sql(s, timeouts_table_sql, err, errlen,
                 "cannot create the account_timeouts table") < 0 ||
        exec_sql(s, acct_history_table_sql, err, errlen, "cannot create the query_history table") < 0) {
        acct_close(s);
        return NULL;
    }
    return s;
}

int acct_replaced(const acct_store *s)
{
    struct stat st;
    if (stat(s->path, &st) != 0)
        return -1;
    return st.st_dev != s->dev || st.st_ino != s->ino;
}

void acct_close(acct_store *s)
{
    if (!s)
        return;
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

/* ---- management ------------------------------------------------------------------------ */

static sqlite3_stmt *prepare(acct_store *s, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        db_err(s, err, errlen, "cannot prepare a statement");
        return NULL;
    }
    return st;
}

/* Steps a statement that returns no rows and finalizes it. Returns the SQLite result code
 * (SQLITE_DONE on success); the caller turns constraint failures into messages. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_finalize(st);
    return rc;
}

int acct_user_add(acct_store *s, const char *name, const char *password, const char *default_env,
                  char *err, size_t errlen)
{
    uint8_t h1[20], h256[32];
    sqlite3_stmt *st;
    int rc;

    if (check_name(name, err, errlen) < 0)
        return -1;
    if (default_env && check_env(default_env, err, errlen) < 0)
        return -1;
    if (!password) {
        set_err(err, errlen, "no password given for user '%s'", name);
        return -1;
    }
    st = prepare(s,
                 "INSERT INTO accounts (name, sha1_stage2, sha256_stage2, default_env,"
                 " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, " NOW_SQL ", " NOW_SQL ")",
                 err, errlen);
    if (!st)
        return -1;
    acct_hash_password(password, h1, h256);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, h1, sizeof h1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, h256, sizeof h256, SQLITE_STATIC);
    if (default_env)
        sqlite3_bind_text(st, 4, default_env, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    rc = run(st);
    OPENSSL_cleanse(h1, sizeof h1);
    OPENSSL_cleanse(h256, sizeof h256);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        set_err(err, errlen, "user '%s' already exists", name);
    else
        db_err(s, err, errlen, "cannot add the user");
    return -1;
}

int acct_user_passwd(acct_store *s, const char *name, const char *password, char *err,
                     size_t errlen)
{
    uint8_t h1[20], h256[32];
    sqlite3_stmt *st;
    int rc;

    if (check_name(name, err, errlen) < 0)
        return -1;
    if (!password) {
        set_err(err, errlen, "no password given for user '%s'", name);
        return -1;
    }
    st = prepare(s,
                 "UPDATE accounts SET sha1_stage2 = ?2, sha256_stage2 = ?3,"
                 " updated_at = " NOW_SQL " WHERE name = ?1",
                 err, errlen);
    if (!st)
        return -1;
    acct_hash_password(password, h1, h256);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, h1, sizeof h1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, h256, sizeof h256, SQLITE_STATIC);
    rc = run(st);
    OPENSSL_cleanse(h1, sizeof h1);
    OPENSSL_cleanse(h256, sizeof h256);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot change the password");
        return -1;
    }
    if (sqlite3_changes(s->db) == 0) {
        set_err(err, errlen, "user '%s' does not exist", name);
        return -1;
    }
    return 0;
}

int acct_user_del(acct_store *s, const char *name, char *err, size_t errlen)
{
    sqlite3_stmt *st;

    if (check_name(name, err, errlen) < 0)
        return -1;
    st = prepare(s, "DELETE FROM accounts WHERE name = ?1", err, errlen);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (run(st) != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot delete the user");
        return -1;
    }
    if (sqlite3_changes(s->db) == 0) {
        set_err(err, errlen, "user '%s' does not exist", name);
        return -1;
    }
    return 0;
}

/* Marks an account as changed. Returns 1 when it exists, 0 when it does not, -1 on error. */
/* Opens a write transaction in which account `name` exists (its updated_at is touched).
 * -1 with err set, and nothing left open, when it cannot. */
static int begin_on_user(acct_store *s, const char *name, char *err, size_t errlen)
{
    if (exec_sql(s, "BEGIN IMMEDIATE", err, errlen, "cannot start a transaction") < 0)
        return -1;
    sqlite3_stmt *st =
        prepare(s, "UPDATE accounts SET updated_at = " NOW_SQL " WHERE name = ?1", err, errlen);
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (run(st) != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot update the user");
        goto fail;
    }
    if (sqlite3_changes(s->db) == 0) {
        set_err(err, errlen, "user '%s' does not exist", name);
        goto fail;
    }
    return 0;
fail:
    rollback(s);
    return -1;
}

int acct_grant_set(acct_store *s, const char *name, const char *env, grant_level level, char *err,
                   size_t errlen)
{
    sqlite3_stmt *st;

    if (check_name(name, err, errlen) < 0 || check_env(env, err, errlen) < 0)
        return -1;
    if (level != GRANT_READ && level != GRANT_WRITE) {
        set_err(err, errlen, "invalid grant level: use read or write");
        return -1;
    }
    if (begin_on_user(s, name, err, errlen) < 0)
        return -1;
    st = prepare(s,
                 "INSERT INTO grants (account, env, level) VALUES (?1, ?2, ?3)"
                 " ON CONFLICT (account, env) DO UPDATE SET level = excluded.level",
                 err, errlen);
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, env, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, level == GRANT_WRITE ? "write" : "read", -1, SQLITE_STATIC);
    if (run(st) != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot store the grant");
        goto fail;
    }
    if (exec_sql(s, "COMMIT", err, errlen, "cannot commit") < 0)
        goto fail;
    return 0;
fail:
    rollback(s);
    return -1;
}

int acct_grant_revoke(acct_store *s, const char *name, const char *env, char *err, size_t errlen)
{
    sqlite3_stmt *st;

    if (check_name(name, err, errlen) < 0 || check_env(env, err, errlen) < 0)
        return -1;
    if (begin_on_user(s, name, err, errlen) < 0)
        return -1;
    st = prepare(s, "DELETE FROM grants WHERE account = ?1 AND env = ?2", err, errlen);
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, env, -1, SQLITE_STATIC);
    if (run(st) != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot delete the grant");
        goto fail;
    }
    if (sqlite3_changes(s->db) == 0) {
        set_err(err, errlen, "user '%s' has no grant on '%s'", name, env);
        goto fail;
    }
    if (exec_sql(s, "COMMIT", err, errlen, "cannot commit") < 0)
        goto fail;
    return 0;
fail:
    rollback(s);
    return -1;
}

/* ---- snapshots ------------------------------------------------------------------------ */

static int cmp_account(const void *a, const void *b)
{
    return strcmp(((const account *)a)->name, ((const account *)b)->name);
}

static int cmp_key_account(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const account *)elem)->name);
}

static char *dup_column(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    return t ? strdup((const char *)t) : NULL;
}

/* Reads the accounts table into snap (sorted by name). */
static int load_accounts(acct_store *s, acct_snapshot *snap, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc, cap = 0;

    st = prepare(s,
                 "SELECT name, sha1_stage2, sha256_stage2, default_env, l.max_rows,"
                 " t.statement_timeout_ms"
                 " FROM accounts LEFT JOIN account_limits l ON l.account = accounts.name"
                 " LEFT JOIN account_timeouts t ON t.account = accounts.name"
                 " ORDER BY name",
                 err, errlen);
    if (!st)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        account *a;
        const char *name = (const char *)sqlite3_column_text(st, 0);

        if (snap->n == cap) {
            int ncap = cap ? cap * 2 : 16;
            account *na = realloc(snap->accounts, (size_t)ncap * sizeof *na);
            if (!na)
                goto nomem;
            snap->accounts = na;
            cap = ncap;
        }
        a = &snap->accounts[snap->n];
        memset(a, 0, sizeof *a);
        if (!name) {
            set_err(err, errlen, "account store %s: an account has no name", s->path);
            goto fail;
        }
        if (sqlite3_column_bytes(st, 1) != 20 || sqlite3_column_bytes(st, 2) != 32) {
            set_err(err, errlen, "account store %s: user '%s' has a malformed password hash",
                    s->path, name);
            goto fail;
        }
        a->name = strdup(name);
        if (!a->name)
            goto nomem;
        snap->n++;
        memcpy(a->sha1_stage2, sqlite3_column_blob(st, 1), 20);
        memcpy(a->sha256_stage2, sqlite3_column_blob(st, 2), 32);
        if (sqlite3_column_type(st, 3) != SQLITE_NULL && !(a->default_env = dup_column(st, 3)))
            goto nomem;
        a->max_rows = -1;
        if (sqlite3_column_type(st, 4) == SQLITE_INTEGER && sqlite3_column_int64(st, 4) >= 0)
            a->max_rows = sqlite3_column_int64(st, 4);
        a->statement_timeout_ms = -1;
        if (sqlite3_column_type(st, 5) == SQLITE_INTEGER && sqlite3_column_int64(st, 5) >= 0)
            a->statement_timeout_ms = sqlite3_column_int64(st, 5);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot read the accounts");
        return -1;
    }
    /* SQLite's BINARY collation orders like strcmp, but sort again rather than rely on it
     * for the binary search in acct_find. */
    if (snap->n > 1)
        qsort(snap->accounts, (size_t)snap->n, sizeof *snap->accounts, cmp_account);
    return 0;
nomem:
    set_err(err, errlen, "account store %s: out of memory", s->path);
fail:
    sqlite3_finalize(st);
    return -1;
}

/* Sets (value >= 0) or removes (value < 0) an account's row in a one-value override table:
 * del and put are the statements for each. */
static int override_set(acct_store *s, const char *name, long long value, const char *del,
                        const char *put, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc;

    if (begin_on_user(s, name, err, errlen) < 0)
        return -1;
    st = prepare(s, value < 0 ? del : put, err, errlen);
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (value >= 0)
        sqlite3_bind_int64(st, 2, value);
    rc = run(st);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot set the limits");
        goto fail;
    }
    if (exec_sql(s, "COMMIT", err, errlen, "cannot commit") < 0)
        goto fail;
    return 0;
fail:
    rollback(s);
    return -1;
}

int acct_limits_set(acct_store *s, const char *name, long long max_rows, char *err,
                    size_t errlen)
{
    return override_set(s, name, max_rows, "DELETE FROM account_limits WHERE account = ?1",
                        "INSERT INTO account_limits (account, max_rows) VALUES (?1, ?2)"
                        " ON CONFLICT (account) DO UPDATE SET max_rows = excluded.max_rows",
                        err, errlen);
}

int acct_timeout_set(acct_store *s, const char *name, long long ms, char *err, size_t errlen)
{
    return override_set(s, name, ms, "DELETE FROM account_timeouts WHERE account = ?1",
                        "INSERT INTO account_timeouts (account, statement_timeout_ms)"
                        " VALUES (?1, ?2) ON CONFLICT (account) DO UPDATE SET"
                        " statement_timeout_ms = excluded.statement_timeout_ms",
                        err, errlen);
}

/* Attaches each grant row to its account in snap. */
static int load_grants(acct_store *s, acct_snapshot *snap, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc;

    st = prepare(s, "SELECT account, env, level FROM grants ORDER BY account, env", err, errlen);
    if (!st)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *env = (const char *)sqlite3_column_text(st, 1);
        const char *level = (const char *)sqlite3_column_text(st, 2);
        account *a;
        acct_grant *ng;

        if (!name || !env || !level)
            continue; /* a row no command writes; it grants nothing */
        a = bsearch(name, snap->accounts, (size_t)snap->n, sizeof *snap->accounts, cmp_key_account);
        if (!a)
            continue; /* cannot happen with foreign keys on */
        ng = realloc(a->grants, (size_t)(a->n_grants + 1) * sizeof *ng);
        if (!ng)
            goto nomem;
        a->grants = ng;
        ng[a->n_grants].level = strcmp(level, "write") == 0 ? GRANT_WRITE : GRANT_READ;
        ng[a->n_grants].env = strdup(env);
        if (!ng[a->n_grants].env)
            goto nomem;
        a->n_grants++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot read the grants");
        return -1;
    }
    return 0;
nomem:
    sqlite3_finalize(st);
    set_err(err, errlen, "account store %s: out of memory", s->path);
    return -1;
}

acct_snapshot *acct_snapshot_load(acct_store *s, char *err, size_t errlen)
{
    acct_snapshot *snap = calloc(1, sizeof *snap);

    if (!snap) {
        set_err(err, errlen, "account store %s: out of memory", s->path);
        return NULL;
    }
    /* One read transaction, so accounts and grants come from the same committed state. */
    if (exec_sql(s, "BEGIN", err, errlen, "cannot start a transaction") < 0)
        goto fail;
    if (load_accounts(s, snap, err, errlen) < 0 || load_grants(s, snap, err, errlen) < 0 ||
        acct_load_extras(s, snap, err, errlen) < 0)
        goto fail;
    if (exec_sql(s, "COMMIT", err, errlen, "cannot end the transaction") < 0)
        goto fail;
    return snap;
fail:
    rollback(s);
    acct_snapshot_free(snap);
    return NULL;
}

void acct_snapshot_free(acct_snapshot *snap)
{
    if (!snap)
        return;
    for (int i = 0; i < snap->n; i++) {
        account *a = &snap->accounts[i];
        for (int j = 0; j < a->n_grants; j++)
            free(a->grants[j].env);
        free(a->grants);
        free(a->name);
        free(a->default_env);
        OPENSSL_cleanse(a->sha1_stage2, sizeof a->sha1_stage2);
        OPENSSL_cleanse(a->sha256_stage2, sizeof a->sha256_stage2);
    }
    free(snap->accounts);
    acct_free_extras(snap);
    free(snap);
}

sqlite3 *acct_sqlite(acct_store *s)
{
    return s->db;
}

const char *acct_path(acct_store *s)
{
    return s->path;
}

const account *acct_find(const acct_snapshot *snap, const char *name)
{
    if (!snap || !name || snap->n == 0)
        return NULL;
    return bsearch(name, snap->accounts, (size_t)snap->n, sizeof *snap->accounts, cmp_key_account);
}

grant_level acct_grant_for(const account *a, const char *env)
{
    if (!a || !env)
        return GRANT_NONE;
    for (int i = 0; i < a->n_grants; i++) {
        if (strcmp(a->grants[i].env, env) == 0)
            return a->grants[i].level;
    }
    return GRANT_NONE;
}

long long acct_data_version(acct_store *s)
{
    if (!s)
        return -1;
    return query_int(s, "PRAGMA data_version");
}

/* ---- listing -------------------------------------------------------------------------- */

/* Formats an account's grants as "dev=write,prod=read" ("-" when none) into a new string. */
static char *grants_text(const account *a)
{
    size_t len = 2;
    char *out, *p;

    for (int i = 0; i < a->n_grants; i++)
        len += strlen(a->grants[i].env) + sizeof "=write,";
    out = malloc(len);
    if (!out)
        return NULL;
    if (a->n_grants == 0) {
        strcpy(out, "-");
        return out;
    }
    p = out;
    for (int i = 0; i < a->n_grants; i++)
        p += sprintf(p, "%s%s=%s", i ? "," : "", a->grants[i].env,
                     a->grants[i].level == GRANT_WRITE ? "write" : "read");
    return out;
}

int acct_list(acct_store *s, FILE *out, char *err, size_t errlen)
{
    acct_snapshot *snap = acct_snapshot_load(s, err, errlen);
    char **grants;
    int wname = (int)strlen("USER"), wenv = (int)strlen("DEFAULT_ENV"), wgr = (int)strlen("GRANTS");

    if (!snap)
        return -1;
    grants = calloc((size_t)snap->n + 1, sizeof *grants);
    if (!grants) {
        acct_snapshot_free(snap);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < snap->n; i++) {
        const account *a = &snap->accounts[i];
        int ln = (int)strlen(a->name), le = a->default_env ? (int)strlen(a->default_env) : 1;

        if (ln > wname)
            wname = ln;
        if (le > wenv)
            wenv = le;
        grants[i] = grants_text(a);
        if (!grants[i]) {
            for (int j = 0; j < i; j++)
                free(grants[j]);
            free(grants);
            acct_snapshot_free(snap);
            set_err(err, errlen, "out of memory");
            return -1;
        }
        if ((int)strlen(grants[i]) > wgr)
            wgr = (int)strlen(grants[i]);
    }
    fprintf(out, "%-*s  %-*s  %-*s  %s\n", wname, "USER", wenv, "DEFAULT_ENV", wgr, "GRANTS",
            "LIMITS");
    for (int i = 0; i < snap->n; i++) {
        const account *a = &snap->accounts[i];
        char limits[96] = "-";
        int n = 0;

        if (a->max_rows >= 0)
            n = snprintf(limits, sizeof limits, "max_rows=%lld", a->max_rows);
        if (a->statement_timeout_ms >= 0)
            snprintf(limits + n, sizeof limits - (size_t)n, "%sstatement_timeout=%lldms",
                     n ? "," : "", a->statement_timeout_ms);
        fprintf(out, "%-*s  %-*s  %-*s  %s\n", wname, a->name, wenv,
                a->default_env ? a->default_env : "-", wgr, grants[i], limits);
        free(grants[i]);
    }
    free(grants);
    acct_snapshot_free(snap);
    if (fflush(out) != 0 || ferror(out)) {
        set_err(err, errlen, "cannot write the list: %s", strerror(errno));
        return -1;
    }
    return 0;
}
