/* acct_http.c: the account store's API tokens (stored as SHA-256 hashes) and named queries. */
#include "accounts.h"
#include "http_api.h"
#include "json.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void db_err(acct_store *s, char *err, size_t errlen, const char *what)
{
    set_err(err, errlen, "account store %s: %s: %s", acct_path(s), what,
            sqlite3_errmsg(acct_sqlite(s)));
}

static sqlite3_stmt *prep(acct_store *s, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(acct_sqlite(s), sql, -1, &st, NULL) != SQLITE_OK) {
        db_err(s, err, errlen, "cannot prepare a statement");
        return NULL;
    }
    return st;
}

/* ---- snapshot ---------------------------------------------------------------------------- */

static int cmp_query(const void *a, const void *b)
{
    return strcmp(((const acct_query *)a)->name, ((const acct_query *)b)->name);
}

int acct_load_extras(acct_store *s, acct_snapshot *snap, char *err, size_t errlen)
{
    sqlite3_stmt *st = prep(s, "SELECT id, account, hash, expires_at FROM api_tokens", err, errlen);
    int rc;
    if (!st)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *acc = (const char *)sqlite3_column_text(st, 1);
        const char *hash = (const char *)sqlite3_column_text(st, 2);
        if (!acc || !hash || strlen(hash) != 64)
            continue;
        acct_token *nt = realloc(snap->tokens, (size_t)(snap->n_tokens + 1) * sizeof(*nt));
        if (!nt)
            abort();
        snap->tokens = nt;
        acct_token *t = &nt[snap->n_tokens++];
        t->id = sqlite3_column_int64(st, 0);
        t->account = strdup(acc);
        memcpy(t->hash, hash, 65);
        t->expires_at = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot read the API tokens");
        return -1;
    }
    st = prep(s, "SELECT name, definition FROM named_queries ORDER BY name", err, errlen);
    if (!st)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *def = (const char *)sqlite3_column_text(st, 1);
        char jerr[128];
        json *j = def ? json_parse(def, strlen(def), 0, jerr, sizeof(jerr)) : NULL;
        if (!name || !j || j->type != JSON_OBJECT) {
            json_free(j);
            continue; /* a row no command writes */
        }
        acct_query *nq = realloc(snap->queries, (size_t)(snap->n_queries + 1) * sizeof(*nq));
        if (!nq)
            abort();
        snap->queries = nq;
        nq[snap->n_queries].name = strdup(name);
        nq[snap->n_queries].def = j;
        snap->n_queries++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot read the named queries");
        return -1;
    }
    if (snap->n_queries > 1)
        qsort(snap->queries, (size_t)snap->n_queries, sizeof(*snap->queries), cmp_query);
    return 0;
}

void acct_free_extras(acct_snapshot *snap)
{
    for (int i = 0; i < snap->n_tokens; i++)
        free(snap->tokens[i].account);
    free(snap->tokens);
    for (int i = 0; i < snap->n_queries; i++) {
        free(snap->queries[i].name);
        json_free(snap->queries[i].def);
    }
    free(snap->queries);
}

const acct_token *acct_token_find(const acct_snapshot *snap, const char *hash, long long now)
{
    const acct_token *found = NULL;
    /* Every entry is compared (no early exit) in constant time per entry. */
    for (int i = 0; snap && i < snap->n_tokens; i++)
        if (CRYPTO_memcmp(snap->tokens[i].hash, hash, 64) == 0)
            found = &snap->tokens[i];
    if (found && found->expires_at != 0 && found->expires_at <= now)
        return NULL;
    return found;
}

const acct_query *acct_query_find(const acct_snapshot *snap, const char *name)
{
    if (!snap || !name || snap->n_queries == 0)
        return NULL;
    acct_query key = {.name = (char *)name};
    return bsearch(&key, snap->queries, (size_t)snap->n_queries, sizeof(*snap->queries),
                   cmp_query);
}

/* ---- tokens ------------------------------------------------------------------------------- */

long long acct_token_add(acct_store *s, const char *name, long long expires_at, char *token,
                         size_t cap, char *err, size_t errlen)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char rnd[40];
    if (cap < 64 || RAND_bytes(rnd, sizeof(rnd)) != 1) {
        set_err(err, errlen, "cannot make a random token");
        return -1;
    }
    /* "ept_" and 40 characters of 6 random bits each: 240 bits. */
    memcpy(token, "ept_", 4);
    for (int i = 0; i < 40; i++)
        token[4 + i] = alphabet[rnd[i] & 63];
    token[44] = '\0';
    OPENSSL_cleanse(rnd, sizeof(rnd));
    char hash[65];
    hj_token_hash(token, hash);

    sqlite3_stmt *st = prep(s, "SELECT 1 FROM accounts WHERE name = ?", err, errlen);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        set_err(err, errlen, "user '%s' does not exist", name);
        return -1;
    }
    st = prep(s,
              "INSERT INTO api_tokens (account, hash, created_at, expires_at) VALUES (?, ?, " NOW_SQL
              ", ?)",
              err, errlen);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, expires_at);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot store the token");
        return -1;
    }
    return sqlite3_last_insert_rowid(acct_sqlite(s));
}

int acct_token_list(acct_store *s, const char *name, FILE *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = prep(s,
                            "SELECT id, account, created_at, expires_at FROM api_tokens"
                            " WHERE ?1 IS NULL OR account = ?1 ORDER BY id",
                            err, errlen);
    if (!st)
        return -1;
    if (name)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int rc;
    fprintf(out, "%-6s %-20s %-21s %s\n", "ID", "USER", "CREATED", "EXPIRES");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        long long exp = sqlite3_column_int64(st, 3);
        char expires[32] = "never";
        if (exp) {
            time_t t = (time_t)exp;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(expires, sizeof(expires), "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        const unsigned char *created = sqlite3_column_text(st, 2);
        fprintf(out, "%-6lld %-20s %-21s %s\n", sqlite3_column_int64(st, 0),
                (const char *)sqlite3_column_text(st, 1), created ? (const char *)created : "-",
                expires);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot list the tokens");
        return -1;
    }
    return 0;
}

int acct_token_revoke(acct_store *s, long long id, char *err, size_t errlen)
{
    sqlite3_stmt *st = prep(s, "DELETE FROM api_tokens WHERE id = ?", err, errlen);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot revoke the token");
        return -1;
    }
    if (sqlite3_changes(acct_sqlite(s)) == 0) {
        set_err(err, errlen, "token %lld does not exist", id);
        return -1;
    }
    return 0;
}

/* ---- named queries ------------------------------------------------------------------------- */

int acct_query_put(acct_store *s, const char *name, const char *definition, bool replace,
                   char *err, size_t errlen)
{
    const char *sql = replace ? "UPDATE named_queries SET definition = ?2, updated_at = " NOW_SQL
                                " WHERE name = ?1"
                              /* One name whatever its case: CALL __queries.NAME finds a
                               * query regardless of case, as MySQL finds a procedure, so
                               * "Report" next to "report" would stand in for it. */
                              : "INSERT INTO named_queries (name, definition, updated_at)"
                                " SELECT ?1, ?2, " NOW_SQL " WHERE NOT EXISTS (SELECT 1 FROM"
                                " named_queries WHERE name = ?1 COLLATE NOCASE)";
    sqlite3_stmt *st = prep(s, sql, err, errlen);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, definition, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot store the named query");
        return -1;
    }
    if (sqlite3_changes(acct_sqlite(s)) == 0) {
        set_err(err, errlen, replace ? "named query '%s' does not exist"
                                     : "named query '%s' already exists (names are the same "
                                       "whatever their case)",
                name);
        return -1;
    }
    return 0;
}

int acct_query_del(acct_store *s, const char *name, char *err, size_t errlen)
{
    sqlite3_stmt *st = prep(s, "DELETE FROM named_queries WHERE name = ?", err, errlen);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err(s, err, errlen, "cannot delete the named query");
        return -1;
    }
    if (sqlite3_changes(acct_sqlite(s)) == 0) {
        set_err(err, errlen, "named query '%s' does not exist", name);
        return -1;
    }
    return 0;
}
