/* http_sql.h: internal sessions: the HTTP front door's way into the one statement path. */
#ifndef ENVPROXY_HTTP_SQL_H
#define ENVPROXY_HTTP_SQL_H

#include "envproxy.h"
#include "http_api.h"

typedef struct hsql hsql;

/* What a command produced. */
typedef struct {
    bool err;
    unsigned code;
    char sqlstate[6];
    char message[512];
    bool has_rows;
    int n_cols;
    hj_column *cols;
    unsigned long long rows_seen, affected, insert_id;
    unsigned warnings;
} hsql_result;

typedef enum { HP_NULL, HP_INT, HP_DOUBLE, HP_DECIMAL, HP_STRING } hp_kind;

/* A value bound to a '?' of a prepared statement. */
typedef struct {
    hp_kind kind;
    long long i;
    double d;
    const char *s; /* HP_STRING, HP_DECIMAL: borrowed until the command ends */
    size_t len;
} hsql_param;

/* Called when the session is logged in or a command ended (see hsql_get_result: err set
 * when it failed). The callback may free s. */
typedef void (*hsql_done_fn)(hsql *s, void *arg);
/* Called once with vals NULL when the columns are known, then once per row of the first
 * result set: vals[i] is the text of column i as the server prints it (NULL: SQL NULL). */
typedef void (*hsql_row_fn)(hsql *s, void *arg, const char *const *vals, const size_t *lens);

/* Opens an internal session for login (the account already authenticated) on a worker;
 * done runs once it is logged in (or refused: 1045, 1044, 1049, ...). done may be NULL when
 * a command is started at once: it is then sent without waiting (one round trip less), and
 * a refused login ends that command with the login's error. NULL when no socket. */
hsql *hsql_open(proxy *p, const internal_login *login, hsql_done_fn done, void *arg);
/* COM_QUERY: text rows. */
void hsql_query(hsql *s, const char *sql, size_t len, hsql_row_fn row, hsql_done_fn done,
                void *arg);
/* COM_STMT_PREPARE, then COM_STMT_EXECUTE with params bound (binary rows, handed over as
 * text), then COM_STMT_CLOSE. params must stay valid until done runs. */
void hsql_execute(hsql *s, const char *sql, size_t len, const hsql_param *params, int n,
                  hsql_row_fn row, hsql_done_fn done, void *arg);
const hsql_result *hsql_get_result(const hsql *s);
/* Stops (paused true) or resumes reading from the session's socket: the caller's answer has
 * too much queued for its own client. A paused session's worker soon stops reading from the
 * backend in turn (the relay's own back-pressure), so nothing grows without bound. */
void hsql_pause(hsql *s, bool paused);
/* Closes the session; a statement still running is killed by the worker. Safe inside a
 * callback. */
void hsql_free(hsql *s);

#endif
