/* audit.h: the audit log, one JSON object per line, appended by a writer thread. */
#ifndef ENVPROXY_AUDIT_H
#define ENVPROXY_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest SQL text kept in a record, in bytes of the statement as sent. A longer statement is
 * cut on a UTF-8 character boundary and the line gets "truncated":true. */
#define AUDIT_SQL_MAX 4096
/* Longest user, client, env, db or error text kept, in bytes; longer values are cut on a UTF-8
 * character boundary (none is that long in normal use; this bounds a hostile client). */
#define AUDIT_FIELD_MAX 1024
/* Queue capacity used when audit_open() is given 0. */
#define AUDIT_DEFAULT_QUEUE 8192
/* Most bytes of formatted lines waiting in the queue, whatever its capacity in lines. */
#define AUDIT_QUEUE_MAX_BYTES (64u * 1024 * 1024)

typedef struct audit audit;

/* One line of the audit log. Strings are borrowed for the duration of audit_log(). */
typedef struct {
    long long ts_ms; /* wall clock, ms since the epoch */
    uint32_t conn;   /* the connection id given to the client in the handshake */
    const char *user, *client, *env, *db; /* each may be NULL -> JSON null */
    const char *sql;                      /* NULL for a failed login -> JSON null */
    size_t sql_len;                       /* bytes of sql (it need not be NUL-terminated) */
    const char *verdict;                  /* "allowed", "refused" or "error" */
    long long rows;                       /* < 0 -> null */
    double ms;                            /* < 0 (or not finite) -> null */
    const char *error;                    /* NULL -> null; e.g. "1290: envproxy: ..." */
    /* NULL for a statement (no "event" key); "login_failed" for a failed login. */
    const char *event;
    /* The door the statement came in by: "mysql", "http" or "mcp"; NULL: no "via" key. */
    const char *via;
} audit_record;

/* The line written for r, keys in this order:
 *
 *   {"ts":"2026-11-21T09:00:00.123Z","event":"login_failed","conn":7,"user":"alice",
 *    "client":"10.0.0.5:51234","env":"prod","db":"shop","sql":"SELECT 1","truncated":true,
 *    "verdict":"allowed","rows":1,"ms":0.412,"error":null}
 *
 * "via" follows "client" when r->via is set. "event" appears only when r->event is set and "truncated" only when the SQL was cut; every
 * other key is always present (null when unknown). ts is UTC with milliseconds, ms has three
 * decimals. Strings are escaped per RFC 8259: '"', '\\' and control characters are escaped
 * (\n, \r, \t, \b, \f or \u00XX), every byte that is not part of a valid UTF-8 sequence
 * becomes \ufffd, and valid UTF-8 is copied as it is, so the line is always valid UTF-8 JSON.
 *
 * Writes the line with its '\n' into out when it fits, NUL-terminated, and returns its length
 * (without the NUL). Like snprintf, the return value is the full length even when cap was too
 * small (out then holds a cut, NUL-terminated prefix when cap > 0). Pure and thread-safe. */
size_t audit_format(const audit_record *r, char *out, size_t cap);

/* Opens (creating it with mode 0600 when missing) the file at path for appending and starts
 * the writer thread. queue_capacity is the most lines waiting to be written (0: the default).
 * Returns NULL and fills err on failure. */
audit *audit_open(const char *path, size_t queue_capacity, char *err, size_t errlen);

/* Formats r on the calling thread and hands the line to the writer. Never waits for the disk:
 * it allocates one buffer of the line's size and takes a lock only to link it into the queue.
 * When the queue is full (or out of memory) the line is dropped and counted in audit_drops().
 * Thread-safe. A NULL a does nothing, so callers need not test whether auditing is on. */
void audit_log(audit *a, const audit_record *r);

/* Asks the writer to close and reopen the file by its path, e.g. after logrotate renamed it.
 * Lines logged before the call go to the old file, lines logged after it to the new one.
 * Thread-safe but not async-signal-safe: call it from the main loop on SIGHUP, not from a
 * signal handler. */
void audit_reopen(audit *a);

/* Counters, readable at any time from any thread. */
unsigned long long audit_drops(audit *a);        /* lines dropped: queue full or no memory */
unsigned long long audit_written(audit *a);      /* lines written to the file */
unsigned long long audit_write_errors(audit *a); /* lines lost because a write failed */

/* Writes every queued line, stops the writer thread, closes the file and frees a.
 * NULL does nothing. */
void audit_close(audit *a);

/* For tests: while paused the writer takes nothing from the queue, so the queue fills up.
 * audit_close() still writes what is queued. */
void audit_pause(audit *a, bool paused);

#endif
