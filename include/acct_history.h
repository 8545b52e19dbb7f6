/* acct_history.h: the query history of each account (the web console's), in the account store. */
#ifndef ENVPROXY_ACCT_HISTORY_H
#define ENVPROXY_ACCT_HISTORY_H

#include "accounts.h"
#include "json.h"

/* At most ACCT_HISTORY_MAX entries per account (the oldest go); an entry's SQL is at most
 * ACCT_HISTORY_SQL_MAX bytes. */
#define ACCT_HISTORY_MAX 200
#define ACCT_HISTORY_SQL_MAX (64 * 1024)

/* Created like account_limits: when missing, whatever the schema version (acct_open). */
extern const char acct_history_table_sql[];

/* Adds an entry (env, database may be NULL; error_code 0: it ran) and drops the account's
 * entries past ACCT_HISTORY_MAX. Returns its id, -1 with err. */
long long acct_history_add(acct_store *s, const char *name, const char *env,
                           const char *database, const char *sql, double ms, unsigned error_code,
                           char *err, size_t errlen);
/* Writes {"history":[{"id","at","env","database","sql","execution_time_ms","error_code"},...]}
 * for the account, newest first, at most limit entries. 0, or -1 with err. */
int acct_history_list(acct_store *s, const char *name, int limit, json_buf *out, char *err,
                      size_t errlen);
/* Removes one of the account's entries (id > 0) or all of them (id 0). 0, or -1 with err. */
int acct_history_clear(acct_store *s, const char *name, long long id, char *err,
                       size_t errlen);

#endif
