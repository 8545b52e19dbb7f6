/* audit.h: the audit log, one JSON object per line, appended by a writer thread.
 *
 * A producer (a worker thread) appends a compact binary record to a ring buffer of its own:
 * no lock, no allocation, no formatting and no system call per record. The writer thread
 * wakes on a short timer (or when a ring passes half full), drains every ring, formats the
 * records as JSON lines and writes them in batches. A record that finds its ring full is
 * dropped and counted; nothing waits for the disk. */
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
/* Bytes of each producer's ring buffer when audit_open() is given 0, and the least it takes. */
#define AUDIT_DEFAULT_RING (4u * 1024 * 1024)
#define AUDIT_MIN_RING (64u * 1024)
/* Most rings one log serves (audit_ring_new() beyond that returns NULL). */
#define AUDIT_MAX_RINGS 256

typedef struct audit audit;
/* One producer's ring buffer of binary records (audit_ring_new). */
typedef struct audit_ring audit_ring;

/* One line of the audit log. Strings are borrowed for the duration of the call that logs it. */
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
    /* The byte lengths of user, client, env, db, via and verdict when the caller knows them
     * (the hot path saves measuring each); 0: measured (an empty string measures 0 too). A
     * length given must be the string's. */
    uint16_t user_len, client_len, env_len, db_len, via_len, verdict_len;
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
 * small (out then holds a cut, NUL-terminated prefix when cap > 0). Bytes of out after the
 * NUL, up to cap, may be overwritten. Thread-safe; it allocates when cap is smaller than the
 * most the line could take (and returns 0 with out empty if that fails). */
size_t audit_format(const audit_record *r, char *out, size_t cap);

/* Opens (creating it with mode 0600 when missing) the file at path for appending and starts
 * the writer thread. ring_bytes is the size of each producer's ring buffer (0: the default;
 * rounded up to a power of two, at least AUDIT_MIN_RING). Returns NULL and fills err on
 * failure. */
audit *audit_open(const char *path, size_t ring_bytes, char *err, size_t errlen);

/* A ring for one producer thread: only that thread may call audit_ring_log() with it. Made
 * before the producer runs (it allocates); freed by audit_close(). NULL when a is NULL, out
 * of memory, or AUDIT_MAX_RINGS are in use. */
audit_ring *audit_ring_new(audit *a);

/* The hot path: copies r into q (strings bounded as audit_format() cuts them) and returns.
 * No lock, no allocation, no system call (except waking the writer when the ring passes half
 * full and the writer has not been woken yet). When q has no room the record is dropped and
 * counted in audit_drops(). A NULL q does nothing. */
void audit_ring_log(audit_ring *q, const audit_record *r);

/* The same for any thread without a ring of its own (the HTTP front door's failed logins):
 * a lock serialises the callers on one shared ring. A NULL a does nothing. */
void audit_log(audit *a, const audit_record *r);

/* Asks the writer to close and reopen the file by its path, e.g. after logrotate renamed it.
 * Lines logged before the call go to the old file, lines logged after it to the new one.
 * Thread-safe but not async-signal-safe: call it from the main loop on SIGHUP, not from a
 * signal handler. */
void audit_reopen(audit *a);

/* Logs a warning when records were dropped since the last one (at most one every 10 s; the
 * writer also reports). For the main loop's tick: it works while the writer is stuck on a
 * stalled disk. Thread-safe; NULL does nothing. */
void audit_report(audit *a);

/* Counters, readable at any time from any thread. */
unsigned long long audit_drops(audit *a);        /* records dropped: their ring was full */
unsigned long long audit_written(audit *a);      /* lines written to the file */
unsigned long long audit_write_errors(audit *a); /* lines lost because a write failed */

/* Writes every queued record, stops the writer thread, closes the file and frees a and its
 * rings. Every producer must have stopped. NULL does nothing. */
void audit_close(audit *a);

/* For tests: while paused the writer takes nothing from the rings, so they fill up.
 * audit_close() still writes what is queued. */
void audit_pause(audit *a, bool paused);

#endif
