/* acct_history.c: each account's query history (what the web console ran), bounded per account. */
#include "acct_history.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char acct_history_table_sql[] =
    "CREATE TABLE IF NOT EXISTS query_history ("
    "  id INTEGER PRIMARY KEY,"
    "  account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,"
    "  at TEXT NOT NULL,"
    "  env TEXT,"
    "  database TEXT,"
    "  sql TEXT NOT NULL,"
    "  ms REAL,"
    "  error_code INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX IF NOT EXISTS query_history_account ON query_history (account, id)";

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static sqlite3_stmt *prep(acct_store *s, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(acct_sqlite(s), sql, -1, &st, NULL) != SQLITE_OK) {
        set_err(err, errlen, "account store %s: %s", acct_path(s), sqlite3_errmsg(acct_sqlite(s)));
        return NULL;
    }
    return st;
}

static int step_done(acct_store *s, sqlite3_stmt *st, char *err, size_t errlen, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        set_err(err, errlen, "account store %s: %s: %s", acct_path(s), what,
                sqlite3_errmsg(acct_sqlite(s)));
        return -1;
    }
    return 0;
}

long long acct_history_add(acct_store *s, const char *name, const char *env,
                           const char *database, const char *sql, double ms, unsigned error_code,
                           char *err, size_t errlen)
{
    size_t len = strlen(sql);
    if (len == 0 || len > ACCT_HISTORY_SQL_MAX) {
        set_err(err, errlen, "sql: 1 to %d bytes", ACCT_HISTORY_SQL_MAX);
        return -1;
    }
    sqlite3 *db = acct_sqlite(s);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, errlen, "account store %s: %s", acct_path(s), sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_stmt *st = prep(s,
                            "INSERT INTO query_history (account, at, env, database, sql, ms, "
                            "error_code) VALUES (?1, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?2, "
                            "?3, ?4, ?5, ?6)",
                            err, errlen);
    long long id = -1;
    if (st) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        if (env)
            sqlite3_bind_text(st, 2, env, -1, SQLITE_TRANSIENT);
        if (database)
            sqlite3_bind_text(st, 3, database, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, sql, (int)len, SQLITE_TRANSIENT);
        if (ms >= 0)
            sqlite3_bind_double(st, 5, ms);
        sqlite3_bind_int64(st, 6, error_code);
        if (step_done(s, st, err, errlen, "cannot store the history entry") == 0)
            id = sqlite3_last_insert_rowid(db);
    }
    /* Keep the newest ACCT_HISTORY_MAX of this account. */
    if (id > 0) {
        st = prep(s,
                  "DELETE FROM query_history WHERE account = ?1 AND id NOT IN (SELECT id FROM "
                  "query_history WHERE account = ?1 ORDER BY id DESC LIMIT ?2)",
                  err, errlen);
        if (st) {
            sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(st, 2, ACCT_HISTORY_MAX);
            if (step_done(s, st, err, errlen, "cannot trim the history") < 0)
                id = -1;
        } else {
            id = -1;
        }
    }
    sqlite3_exec(db, id > 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    return id;
}

static void put_text_or_null(json_buf *out, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    if (t)
        json_write_string(out, (const char *)t, (size_t)sqlite3_column_bytes(st, col));
    else
        json_buf_puts(out, "null");
}

int acct_history_list(acct_store *s, const char *name, int limit, json_buf *out, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st = prep(s,
                            "SELECT id, at, env, database, sql, ms, error_code FROM query_history "
                            "WHERE account = ?1 ORDER BY id DESC LIMIT ?2",
                            err, errlen);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, limit);
    json_buf_puts(out, "{\"history\":[");
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_buf_printf(out, "%s{\"id\":%lld,\"at\":", n++ ? "," : "",
                        (long long)sqlite3_column_int64(st, 0));
        put_text_or_null(out, st, 1);
        json_buf_puts(out, ",\"env\":");
        put_text_or_null(out, st, 2);
        json_buf_puts(out, ",\"database\":");
        put_text_or_null(out, st, 3);
        json_buf_puts(out, ",\"sql\":");
        put_text_or_null(out, st, 4);
        if (sqlite3_column_type(st, 5) == SQLITE_NULL)
            json_buf_puts(out, ",\"execution_time_ms\":null");
        else
            json_buf_printf(out, ",\"execution_time_ms\":%.3f", sqlite3_column_double(st, 5));
        json_buf_printf(out, ",\"error_code\":%lld}", (long long)sqlite3_column_int64(st, 6));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        set_err(err, errlen, "account store %s: cannot read the history: %s", acct_path(s),
                sqlite3_errmsg(acct_sqlite(s)));
        return -1;
    }
    json_buf_puts(out, "]}");
    return 0;
}

int acct_history_clear(acct_store *s, const char *name, long long id, char *err,
                       size_t errlen)
{
    sqlite3_stmt *st = prep(s,
                            id > 0 ? "DELETE FROM query_history WHERE account = ?1 AND id = ?2"
                                   : "DELETE FROM query_history WHERE account = ?1",
                            err, errlen);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    if (id > 0)
        sqlite3_bind_int64(st, 2, id);
    return step_done(s, st, err, errlen, "cannot clear the history");
}
