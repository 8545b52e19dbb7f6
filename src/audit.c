/* audit.c: the audit log. Producers append binary records to rings; a thread writes lines. */
#include "audit.h"
#include "bytes8.h"
#include "redact.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---------------------------------------------------------------------------------------------
 * Formatting (pure).
 *
 * The formatter writes into a buffer it knows to be large enough (line_bound), so it checks
 * no room as it goes. Some steps store a few bytes past what they keep (a whole 8-byte word
 * of a string, a fixed-size copy of the cached timestamp): later output overwrites them, and
 * line_bound counts them.
 */

/* The strings of a record, in the order a ring stores them. */
enum { F_USER, F_CLIENT, F_VIA, F_ENV, F_DB, F_SQL, F_VERDICT, F_ERROR, F_EVENT, F_COUNT };

/* A record as the formatter reads it: each string with its length, NULL for JSON null. A
 * string needs at most 4 bytes past its limit (AUDIT_SQL_MAX for the SQL, AUDIT_FIELD_MAX for
 * the others) to be formatted as the whole string would be (see put_string), so a ring keeps
 * no more than that. */
typedef struct {
    long long ts_ms, rows;
    double ms;
    uint32_t conn;
    const char *s[F_COUNT];
    size_t n[F_COUNT];
} line_src;

static size_t field_limit(int f)
{
    return f == F_SQL ? AUDIT_SQL_MAX : AUDIT_FIELD_MAX;
}

/* The bytes format_line may write for src, scratch included: every kept byte of a string may
 * become a 6-byte escape; keys, numbers and the timestamp take less than 512. */
static size_t line_bound(const line_src *src)
{
    size_t n = 512;
    for (int f = 0; f < F_COUNT; f++) {
        size_t lim = field_limit(f);
        n += 6 * (src->n[f] < lim ? src->n[f] : lim) + 2;
    }
    n += 6 * REDACT_EXTRA; /* a redacted statement may be that much longer */
    return n;
}

/* Writes a string literal at o and moves o past it (a copy of a size known when compiled). */
#define PUT_LIT(o, lit) (memcpy((o), (lit), sizeof(lit) - 1), (o) += sizeof(lit) - 1)

/* Length of the valid UTF-8 sequence at s (at most n bytes available): 1 to 4, or 0 when the
 * byte at s does not start one (a stray continuation byte, an overlong form, a surrogate, a
 * code point above U+10FFFF or a sequence cut short). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Printable ASCII other than '"' and '\\': copied into a JSON string as it is. */
static const bool plain_table[256] = {
    [0x20 ... 0x21] = true, /* 0x22 is '"' */
    [0x23 ... 0x5b] = true, /* 0x5c is '\\' */
    [0x5d ... 0x7f] = true,
};

static inline uint32_t load4(const unsigned char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

/* The bytes of w that are not plain (plain_table), each as its high bit (0x80), the others 0.
 * Exact for every byte: the sum below stays within its byte (at most 0x7f + 0x60), so no
 * carry reaches a neighbour. */
static inline uint64_t not_plain(uint64_t w)
{
    uint64_t ctl = ~((w & BYTES_7F) + 0x60 * BYTES_01); /* high bit: below 0x20 */
    /* w's own high bits: the bytes 0x80 and above */
    return (w | ctl | bytes_equal(w, '"') | bytes_equal(w, '\\')) & BYTES_80;
}

/* Copies the plain bytes at the start of p (n of them) to o and returns how many there were,
 * looking at 8 bytes at a time. It may store up to o + n: bytes past the count are scratch. It
 * never reads outside p[0 .. n). */
static size_t plain_copy(char *o, const unsigned char *p, size_t n)
{
    size_t i = 0;
    if (n >= 8) {
        for (; i + 8 <= n; i += 8) {
            uint64_t w = load8(p + i), m = not_plain(w);
            memcpy(o + i, &w, 8);
            if (m)
                return i + (size_t)__builtin_ctzll(m) / 8;
        }
        if (i == n)
            return n;
        /* The last word ends at n; its first bytes were found plain already. */
        uint64_t w = load8(p + n - 8), m = not_plain(w);
        memcpy(o + n - 8, &w, 8);
        return m ? n - 8 + (size_t)__builtin_ctzll(m) / 8 : n;
    }
    if (n >= 4) {
        /* Two 4-byte words that overlap cover the n bytes; in the low word, positions 0-3. */
        uint32_t lo = load4(p), hi = load4(p + n - 4);
        uint64_t m = not_plain(lo | (uint64_t)hi << 32);
        memcpy(o, &lo, 4);
        memcpy(o + n - 4, &hi, 4);
        if (!m)
            return n;
        size_t k = (size_t)__builtin_ctzll(m) / 8;
        return k < 4 ? k : n - 4 + (k - 4); /* a byte of hi before 4 would be one of lo */
    }
    while (i < n && plain_table[p[i]]) {
        o[i] = (char)p[i];
        i++;
    }
    return i;
}

/* Writes s (n bytes, of which at most limit are used) at o as a JSON string and returns the
 * end. Stops before the first character that would pass limit, so a cut never splits a UTF-8
 * sequence; *cut is then set. o needs room for 6 * min(n, limit) + 2 bytes. */
static char *put_string(char *o, const char *s, size_t n, size_t limit, bool *cut)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t end = n < limit ? n : limit; /* a plain byte before this fits */
    size_t i = 0;

    *o++ = '"';
    for (;;) {
        /* Most strings (names, addresses, most statements) are plain ASCII: one call. */
        size_t k = plain_copy(o, p + i, end - i);
        o += k;
        i += k;
        if (i >= n)
            break;
        size_t len = utf8_len(p + i, n - i);
        size_t step = len ? len : 1;
        if (i + step > limit) {
            *cut = true;
            break;
        }
        unsigned char c = p[i];
        if (!len) {
            PUT_LIT(o, "\\ufffd");
        } else if (len > 1) {
            for (size_t j = 0; j < len; j++)
                *o++ = (char)p[i + j];
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else { /* a control character */
            static const char short_esc[0x20] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n',
                                                 ['\f'] = 'f', ['\r'] = 'r'};
            *o++ = '\\';
            if (short_esc[c]) {
                *o++ = short_esc[c];
            } else {
                PUT_LIT(o, "u00");
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
        }
        i += step;
    }
    *o++ = '"';
    return o;
}

/* A string of the record after its key (a string literal), or null. */
#define PUT_FIELD(o, key, src, f)                                                                 \
    do {                                                                                          \
        PUT_LIT(o, key);                                                                          \
        o = put_field(o, src, f);                                                                 \
    } while (0)

static char *put_field(char *o, const line_src *src, int f)
{
    if (!src->s[f]) {
        PUT_LIT(o, "null");
        return o;
    }
    bool cut = false;
    return put_string(o, src->s[f], src->n[f], AUDIT_FIELD_MAX, &cut);
}

/* v in decimal. */
static char *put_uint(char *o, unsigned long long v)
{
    if (v < 10) { /* most row counts and whole milliseconds */
        *o++ = (char)('0' + v);
        return o;
    }
    char buf[20];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i < sizeof buf)
        *o++ = buf[i++];
    return o;
}

/* The start of a line up to the second of its timestamp ({"ts":"YYYY-MM-DDTHH:MM:SS.), per
 * thread: the lines of one second share it. */
#define TS_TEXT 48 /* at least the longest such text: a year of 11 characters makes 34 */
static _Thread_local long long cached_sec = LLONG_MIN;
static _Thread_local char cached_text[TS_TEXT];
static _Thread_local size_t cached_len;

/* {"ts":"YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) for ts_ms. Copies TS_TEXT bytes of the cache. */
static char *put_ts(char *o, long long ts_ms)
{
    long long ms = ts_ms % 1000, sec = ts_ms / 1000;
    if (ms < 0) {
        ms += 1000;
        sec--;
    }
    if (sec != cached_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm)) { /* out of range: the epoch rather than garbage */
            PUT_LIT(o, "{\"ts\":\"1970-01-01T00:00:00.000Z\"");
            return o;
        }
        int n = snprintf(cached_text, sizeof cached_text, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
        cached_len = n > 0 && (size_t)n < sizeof cached_text ? (size_t)n : strlen(cached_text);
        cached_sec = sec;
    }
    memcpy(o, cached_text, TS_TEXT);
    o += cached_len;
    *o++ = (char)('0' + ms / 100);
    *o++ = (char)('0' + ms / 10 % 10);
    *o++ = (char)('0' + ms % 10);
    PUT_LIT(o, "Z\"");
    return o;
}

/* The part of a line that stays the same through a session: from ,"conn": to the end of
 * "db"'s value. */
static char *put_session(char *o, const line_src *src)
{
    PUT_LIT(o, ",\"conn\":");
    o = put_uint(o, src->conn);
    PUT_FIELD(o, ",\"user\":", src, F_USER);
    PUT_FIELD(o, ",\"client\":", src, F_CLIENT);
    if (src->s[F_VIA])
        PUT_FIELD(o, ",\"via\":", src, F_VIA);
    PUT_FIELD(o, ",\"env\":", src, F_ENV);
    PUT_FIELD(o, ",\"db\":", src, F_DB);
    return o;
}

/* ,"sql": and the statement's text (its credentials hidden), with ,"truncated":true when it
 * was cut. */
static char *put_sql(char *o, const line_src *src)
{
    PUT_LIT(o, ",\"sql\":");
    if (!src->s[F_SQL]) {
        PUT_LIT(o, "null");
        return o;
    }
    /* Credentials in the text (IDENTIFIED BY 'pw', PASSWORD('pw')) are hidden first; only the
     * formatter calls this, on the writer thread. */
    static char redacted[AUDIT_SQL_MAX + 4 + REDACT_EXTRA];
    const char *sql = src->s[F_SQL];
    size_t n = src->n[F_SQL];
    bool cut = n > AUDIT_SQL_MAX;
    if (redact_may_hold(sql, n)) {
        size_t r = redact_sql(sql, n, redacted, sizeof(redacted));
        if (r) {
            sql = redacted;
            n = r;
        }
    }
    o = put_string(o, sql, n, AUDIT_SQL_MAX, &cut);
    if (cut)
        PUT_LIT(o, ",\"truncated\":true");
    return o;
}

/* The rest of the line after put_sql. */
static char *put_outcome(char *o, const line_src *src)
{
    /* The verdict of most lines, without the look for bytes to escape. */
    if (src->n[F_VERDICT] == 7 && src->s[F_VERDICT] && memcmp(src->s[F_VERDICT], "allowed", 7) == 0)
        PUT_LIT(o, ",\"verdict\":\"allowed\"");
    else
        PUT_FIELD(o, ",\"verdict\":", src, F_VERDICT);
    PUT_LIT(o, ",\"rows\":");
    if (src->rows < 0)
        PUT_LIT(o, "null");
    else
        o = put_uint(o, (unsigned long long)src->rows);
    PUT_LIT(o, ",\"ms\":");
    /* Not "%.3f": that would follow LC_NUMERIC. NaN fails the first test. */
    if (!(src->ms >= 0) || src->ms > 1e15) {
        PUT_LIT(o, "null");
    } else {
        long long thousandths = (long long)(src->ms * 1000.0 + 0.5);
        long long frac = thousandths % 1000;
        o = put_uint(o, (unsigned long long)(thousandths / 1000));
        *o++ = '.';
        *o++ = (char)('0' + frac / 100);
        *o++ = (char)('0' + frac / 10 % 10);
        *o++ = (char)('0' + frac % 10);
    }
    PUT_FIELD(o, ",\"error\":", src, F_ERROR);
    PUT_LIT(o, "}\n");
    return o;
}

static char *put_statement(char *o, const line_src *src)
{
    return put_outcome(put_sql(o, src), src);
}

/* Writes the line of src (see audit_format) at o, which has room for line_bound(src) bytes,
 * and returns its end (after the '\n'; no NUL). */
static char *format_line(char *o, const line_src *src)
{
    o = put_ts(o, src->ts_ms);
    if (src->s[F_EVENT])
        PUT_FIELD(o, ",\"event\":", src, F_EVENT);
    o = put_session(o, src);
    return put_statement(o, src);
}

/* Bytes of a string field the formatter can use (see line_src), or 0 for NULL. */
static inline size_t field_len(const char *s)
{
    return s ? strnlen(s, AUDIT_FIELD_MAX + 4) : 0;
}

/* Bytes of a string field given its length as the caller knows it (0: unknown). */
static inline size_t known_len(const char *s, size_t n)
{
    if (!s)
        return 0;
    if (!n)
        return field_len(s);
    return n < AUDIT_FIELD_MAX + 4 ? n : AUDIT_FIELD_MAX + 4;
}

/* The strings of r with their lengths as the formatter needs them: the SQL up to
 * AUDIT_SQL_MAX + 4 bytes of sql_len, the others up to AUDIT_FIELD_MAX + 4 bytes of their
 * strlen. */
static void record_src(const audit_record *r, line_src *src)
{
    src->ts_ms = r->ts_ms;
    src->rows = r->rows;
    src->ms = r->ms;
    src->conn = r->conn;
    src->s[F_USER] = r->user;
    src->n[F_USER] = known_len(r->user, r->user_len);
    src->s[F_CLIENT] = r->client;
    src->n[F_CLIENT] = known_len(r->client, r->client_len);
    src->s[F_VIA] = r->via;
    src->n[F_VIA] = known_len(r->via, r->via_len);
    src->s[F_ENV] = r->env;
    src->n[F_ENV] = known_len(r->env, r->env_len);
    src->s[F_DB] = r->db;
    src->n[F_DB] = known_len(r->db, r->db_len);
    src->s[F_SQL] = r->sql;
    src->n[F_SQL] = !r->sql ? 0 : r->sql_len < AUDIT_SQL_MAX + 4 ? r->sql_len : AUDIT_SQL_MAX + 4;
    src->s[F_VERDICT] = r->verdict;
    src->n[F_VERDICT] = known_len(r->verdict, r->verdict_len);
    src->s[F_ERROR] = r->error;
    src->n[F_ERROR] = field_len(r->error);
    src->s[F_EVENT] = r->event;
    src->n[F_EVENT] = field_len(r->event);
}

size_t audit_format(const audit_record *r, char *out, size_t cap)
{
    line_src src;
    record_src(r, &src);
    size_t bound = line_bound(&src);
    /* Straight into out when it surely has room, else through a buffer that has. */
    char *buf = cap >= bound ? out : malloc(bound);
    if (!buf) {
        if (cap)
            out[0] = '\0';
        return 0;
    }
    size_t len = (size_t)(format_line(buf, &src) - buf);
    if (buf == out) {
        out[len] = '\0';
    } else {
        if (cap) {
            size_t keep = len < cap ? len : cap - 1;
            memcpy(out, buf, keep);
            out[keep] = '\0';
        }
        free(buf);
    }
    return len;
}

/* ---------------------------------------------------------------------------------------------
 * Records in a ring.
 *
 * A ring is a single-producer, single-consumer byte buffer of cap bytes (a power of two).
 * tail and head count bytes since the start and only grow: the producer alone stores tail,
 * the writer alone stores head. The producer writes a record into the free space and then
 * publishes it with a release store of tail; the writer reads tail with acquire, so the bytes
 * are visible before it reads them, and gives space back with a release store of head, which
 * the producer reads with acquire before it writes over that space.
 *
 * A record is a rec_hdr and its strings, each followed by a NUL, padded to 8 bytes. It never
 * wraps: when it does not fit before the end of the buffer, a header with size 0 says "the
 * rest is padding" and the record starts again at offset 0.
 */

#define F_NULL 0xffffu /* the string is NULL */

typedef struct {
    uint32_t size; /* bytes of the record with its padding; 0: skip to the buffer's start */
    uint32_t conn;
    int64_t ts_ms;
    int64_t rows;
    double ms;
    uint16_t len[F_COUNT]; /* bytes of each string (without its NUL), or F_NULL */
} rec_hdr;

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)
#define HDR_SIZE ALIGN8(sizeof(rec_hdr))

/* The longest line a record can become, scratch included: at least line_bound() of any
 * record (every kept byte may turn into a 6-byte escape). */
#define LINE_MAX_BYTES (6 * (AUDIT_SQL_MAX + 8 * (AUDIT_FIELD_MAX + 2)) + 1024)
#define WRITE_CHUNK (256 * 1024) /* a batch is written once it holds this many bytes */
#define BUSY_WAIT_MS 10          /* the writer's sleep after a pass that found records */
#define IDLE_WAIT_MS 100         /* ... growing to this while the rings stay empty */
#define DROP_REPORT_INTERVAL_S 10 /* at most one "records dropped" warning this often */
#define FILE_CHECK_INTERVAL_S 1   /* how often the writer checks that its file is still there */

/* What the writer formatted last for a connection (put_session): a record whose connection,
 * user, client, via, env and db are byte for byte the same gets a copy of the text instead of
 * formatting and escaping them again. Records with longer strings than SESSION_RAW_MAX bytes
 * in all are formatted every time. */
#define SESSION_SLOTS 64    /* by connection id modulo this; a collision only costs a miss */
#define SESSION_RAW_MAX 256 /* the strings user .. db as a ring stores them, NULs included */
#define SESSION_TEXT_MAX (6 * SESSION_RAW_MAX + 128) /* keys, quotes, nulls, conn: < 128 */

/* What put_sql wrote for a statement text, in a table the writer looks texts up in: a text
 * seen again (a prepared statement, a poll, any statement a program repeats, whichever
 * connection sends it) gets a copy instead of a second search for credentials and escaping.
 * SQL_SLOTS entries chosen by a hash of the text; a collision only costs a miss. Texts longer
 * than SQL_RAW_MAX bytes, or whose line text passed SQL_TEXT_MAX, are formatted every time. */
#define SQL_SLOTS 256
#define SQL_RAW_MAX 256
#define SQL_TEXT_MAX 512

typedef struct {
    bool used;
    uint32_t conn;
    uint16_t len[F_SQL]; /* rec_hdr.len of user .. db: tells a NULL from an empty string */
    uint16_t text_len;
    unsigned char raw[SESSION_RAW_MAX];
    char text[SESSION_TEXT_MAX];
} session_text;

typedef struct {
    uint16_t raw_len, text_len; /* text_len 0: the slot is empty */
    unsigned char raw[SQL_RAW_MAX];
    char text[SQL_TEXT_MAX];
} sql_text;

struct audit_ring {
    /* The producer's line: tail and its own view of head. */
    _Alignas(64) atomic_size_t tail;
    size_t head_seen;
    atomic_ullong drops;
    /* The writer's line. */
    _Alignas(64) atomic_size_t head;
    size_t mark; /* audit_reopen: the tail when it was called (under the log's mu) */
    size_t upto; /* the writer's copy of mark, taken under mu */
    /* Fixed once made. */
    _Alignas(64) unsigned char *buf;
    size_t cap;
    audit *owner;
};

struct audit {
    char *path;
    int fd; /* touched only by the writer once it runs */
    pthread_t thread;
    size_t ring_bytes;
    char *batch; /* the writer's lines gathered for one write(2): WRITE_CHUNK + LINE_MAX_BYTES */
    session_text *sessions; /* the writer's: SESSION_SLOTS of them */
    sql_text *sqls;         /* the writer's: SQL_SLOTS of them */

    audit_ring *rings[AUDIT_MAX_RINGS];
    atomic_int n_rings; /* rings[0 .. n_rings) are published (release) */
    audit_ring *shared; /* audit_log's ring, its producers serialised by shared_mu */
    pthread_mutex_t shared_mu;
    atomic_bool kicked; /* a producer passed half full and woke the writer */

    pthread_mutex_t mu; /* guards the flags below and the wait on wake */
    pthread_cond_t wake;
    atomic_ullong reopen_gen;       /* reopen requests made (stored under mu) */
    unsigned long long reopen_done; /* ... and carried out */
    bool paused, stopping;

    atomic_ullong written, lost; /* stored by the writer only */

    pthread_mutex_t report_mu; /* the "records dropped" warning's state */
    unsigned long long drops_reported;
    time_t drops_reported_at;
};

static void wake_writer(audit *a)
{
    pthread_mutex_lock(&a->mu);
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

/* memcpy without a call for the short strings most records hold (names, addresses): whole
 * words, the last one overlapping the one before. Reads and writes only s[0 .. n) and
 * d[0 .. n). */
static inline void copy_short(unsigned char *d, const unsigned char *s, size_t n)
{
    if (n > 32) {
        memcpy(d, s, n);
    } else if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            memcpy(d + i, s + i, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    }
}

/* Stores string f of src at p in a record (with its NUL, or nothing for NULL) and its length in
 * h; returns where the next one goes. */
static inline unsigned char *ring_put(unsigned char *p, rec_hdr *h, const line_src *src, int f)
{
    if (!src->s[f]) {
        h->len[f] = F_NULL;
        return p;
    }
    size_t n = src->n[f];
    h->len[f] = (uint16_t)n;
    copy_short(p, (const unsigned char *)src->s[f], n);
    p[n] = '\0';
    return p + n + 1;
}

void audit_ring_log(audit_ring *q, const audit_record *r)
{
    if (!q || !r)
        return;
    /* Copy as much of each string as audit_format() can use, so that the line written is the
     * one the caller's record gives (see put_string: at most 4 bytes past the limit count). */
    line_src src;
    record_src(r, &src);
    /* A NULL string has length 0 and takes no byte, not even its NUL. */
    size_t need = HDR_SIZE + src.n[F_USER] + src.n[F_CLIENT] + src.n[F_VIA] + src.n[F_ENV] +
                  src.n[F_DB] + src.n[F_SQL] + src.n[F_VERDICT] + src.n[F_ERROR] +
                  src.n[F_EVENT] + !!src.s[F_USER] + !!src.s[F_CLIENT] + !!src.s[F_VIA] +
                  !!src.s[F_ENV] + !!src.s[F_DB] + !!src.s[F_SQL] + !!src.s[F_VERDICT] +
                  !!src.s[F_ERROR] + !!src.s[F_EVENT];
    need = ALIGN8(need);

    size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    size_t off = tail & (q->cap - 1);
    size_t pad = q->cap - off < need ? q->cap - off : 0;
    size_t end = tail + pad + need;
    if (end - q->head_seen > q->cap) {
        q->head_seen = atomic_load_explicit(&q->head, memory_order_acquire);
        if (end - q->head_seen > q->cap) {
            atomic_fetch_add_explicit(&q->drops, 1, memory_order_relaxed);
            return;
        }
    }
    if (pad) {
        uint32_t skip = 0;
        memcpy(q->buf + off, &skip, sizeof skip);
        off = 0;
    }
    /* The buffer is malloc'd and off a multiple of 8: the header is aligned. */
    rec_hdr *h = (rec_hdr *)(void *)(q->buf + off);
    h->size = (uint32_t)need;
    h->conn = src.conn;
    h->ts_ms = src.ts_ms;
    h->rows = src.rows;
    h->ms = src.ms;
    unsigned char *p = q->buf + off + HDR_SIZE;
    p = ring_put(p, h, &src, F_USER);
    p = ring_put(p, h, &src, F_CLIENT);
    p = ring_put(p, h, &src, F_VIA);
    p = ring_put(p, h, &src, F_ENV);
    p = ring_put(p, h, &src, F_DB);
    p = ring_put(p, h, &src, F_SQL);
    p = ring_put(p, h, &src, F_VERDICT);
    p = ring_put(p, h, &src, F_ERROR);
    ring_put(p, h, &src, F_EVENT);
    atomic_store_explicit(&q->tail, end, memory_order_release);

    /* Past half full: make sure the writer is awake (once, until it has run). */
    if (end - q->head_seen > q->cap / 2) {
        q->head_seen = atomic_load_explicit(&q->head, memory_order_acquire);
        if (end - q->head_seen > q->cap / 2 &&
            !atomic_load_explicit(&q->owner->kicked, memory_order_relaxed) &&
            !atomic_exchange_explicit(&q->owner->kicked, true, memory_order_relaxed))
            wake_writer(q->owner);
    }
}

void audit_log(audit *a, const audit_record *r)
{
    if (!a || !r)
        return;
    pthread_mutex_lock(&a->shared_mu);
    audit_ring_log(a->shared, r);
    pthread_mutex_unlock(&a->shared_mu);
}

static audit_ring *ring_alloc(audit *a)
{
    audit_ring *q = aligned_alloc(64, sizeof *q); /* a multiple of 64: its members say so */
    if (!q)
        return NULL;
    memset(q, 0, sizeof *q);
    q->buf = malloc(a->ring_bytes);
    if (!q->buf) {
        free(q);
        return NULL;
    }
    q->cap = a->ring_bytes;
    q->owner = a;
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
    atomic_init(&q->drops, 0);
    return q;
}

static void ring_free(audit_ring *q)
{
    if (q) {
        free(q->buf);
        free(q);
    }
}

audit_ring *audit_ring_new(audit *a)
{
    if (!a)
        return NULL;
    audit_ring *q = ring_alloc(a);
    if (!q)
        return NULL;
    pthread_mutex_lock(&a->mu);
    int n = atomic_load_explicit(&a->n_rings, memory_order_relaxed);
    if (n == AUDIT_MAX_RINGS) {
        pthread_mutex_unlock(&a->mu);
        ring_free(q);
        return NULL;
    }
    q->mark = 0;
    a->rings[n] = q;
    atomic_store_explicit(&a->n_rings, n + 1, memory_order_release);
    pthread_mutex_unlock(&a->mu);
    return q;
}

/* ---------------------------------------------------------------------------------------------
 * The writer thread.
 */

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
}

/* Writes buf (len bytes, holding whole lines) to fd. Returns how many bytes went out before an
 * error, or len. *err receives errno on failure. */
static size_t write_all(int fd, const char *buf, size_t len, int *err)
{
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            *err = w < 0 ? errno : EIO;
            return done;
        }
        done += (size_t)w;
    }
    return done;
}

typedef struct {
    size_t len;   /* bytes in a->batch */
    size_t lines; /* lines in a->batch */
    bool torn;           /* the last failed write stopped inside a line */
    bool error_reported; /* write errors are logged once per file */
    time_t file_checked_at;
} writer_state;

/* Writes the batch and empties it; counts its lines as written or lost. */
static void flush_batch(audit *a, writer_state *w)
{
    if (!w->lines)
        return;
    const char *buf = a->batch;
    size_t len = w->len, skip = 0;
    /* After a write that failed inside a line, start on a fresh line: the batch keeps one
     * byte free in front of its lines for that '\n'. */
    if (w->torn) {
        a->batch[0] = '\n';
        skip = 1;
    } else {
        buf++;
    }
    len = w->len + skip;
    int err = 0;
    size_t done = write_all(a->fd, buf, len, &err);
    size_t ok = w->lines;
    if (done < len) {
        /* Count the lines that made it whole (a JSON line holds no raw '\n'); the rest are
         * lost. */
        ok = 0;
        for (const char *s = buf + skip, *e = buf + done; s < e;) {
            const char *nl = memchr(s, '\n', (size_t)(e - s));
            if (!nl)
                break;
            ok++;
            s = nl + 1;
        }
        w->torn = done > 0 && buf[done - 1] != '\n';
        if (!w->error_reported) {
            log_error("audit log %s: cannot write: %s (further write errors are only counted)",
                      a->path, strerror(err));
            w->error_reported = true;
        }
    } else {
        w->torn = false;
    }
    atomic_fetch_add_explicit(&a->written, ok, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->lost, w->lines - ok, memory_order_relaxed);
    w->len = 0;
    w->lines = 0;
}

/* The reverse of ring_put: string f of a record (at p) into src; returns where the next one
 * starts. */
static inline const char *ring_get(const char *p, const rec_hdr *h, line_src *src, int f)
{
    if (h->len[f] == F_NULL) {
        src->s[f] = NULL;
        src->n[f] = 0;
        return p;
    }
    src->s[f] = p;
    src->n[f] = h->len[f];
    return p + h->len[f] + 1;
}

/* put_session for a record of a ring, through the writer's session_text: raw (raw_len bytes)
 * is the record's strings user .. db as the ring stores them, len their rec_hdr lengths. */
static char *put_session_cached(audit *a, char *o, const line_src *src, const uint16_t *len,
                                const char *raw, size_t raw_len)
{
    if (raw_len > SESSION_RAW_MAX)
        return put_session(o, src);
    session_text *t = &a->sessions[src->conn % SESSION_SLOTS];
    /* The lengths give raw_len, and tell user NULL, client "" from user "", client NULL. */
    if (t->used && t->conn == src->conn && memcmp(t->len, len, sizeof t->len) == 0 &&
        memcmp(t->raw, raw, raw_len) == 0) {
        memcpy(o, t->text, t->text_len);
        return o + t->text_len;
    }
    char *end = put_session(o, src);
    t->used = true;
    t->conn = src->conn;
    memcpy(t->len, len, sizeof t->len);
    memcpy(t->raw, raw, raw_len);
    t->text_len = (uint16_t)(end - o);
    memcpy(t->text, o, (size_t)(end - o));
    return end;
}

/* A hash of s[0 .. n), eight bytes at a time (n <= SQL_RAW_MAX). */
static size_t sql_hash(const unsigned char *s, size_t n)
{
    uint64_t h = n * 0x9e3779b97f4a7c15ull, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    if (i < n) {
        w = 0;
        memcpy(&w, s + i, n - i);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
    }
    h ^= h >> 32;
    return (size_t)(h % SQL_SLOTS);
}

/* put_sql for a record of a ring, through the writer's table of statement texts. */
static char *put_sql_cached(audit *a, char *o, const line_src *src)
{
    size_t n = src->n[F_SQL];
    if (!src->s[F_SQL] || n > SQL_RAW_MAX)
        return put_sql(o, src);
    const unsigned char *raw = (const unsigned char *)src->s[F_SQL];
    sql_text *t = &a->sqls[sql_hash(raw, n)];
    if (t->text_len && t->raw_len == n && memcmp(t->raw, raw, n) == 0) {
        memcpy(o, t->text, t->text_len);
        return o + t->text_len;
    }
    char *end = put_sql(o, src);
    size_t text_len = (size_t)(end - o);
    if (text_len <= SQL_TEXT_MAX) {
        t->raw_len = (uint16_t)n;
        memcpy(t->raw, raw, n);
        memcpy(t->text, o, text_len);
        t->text_len = (uint16_t)text_len;
    }
    return end;
}

/* Formats the records of q from its head up to limit into the batch, writing the batch each
 * time it fills. Returns how many records it took. */
static size_t drain_ring(audit *a, writer_state *w, audit_ring *q, size_t limit)
{
    size_t head = atomic_load_explicit(&q->head, memory_order_relaxed), n = 0;
    while (head < limit) {
        size_t off = head & (q->cap - 1);
        rec_hdr h;
        memcpy(&h, q->buf + off, sizeof h.size);
        if (h.size == 0) { /* padding to the end of the buffer */
            head += q->cap - off;
            continue;
        }
        memcpy(&h, q->buf + off, sizeof h);
        line_src src; /* every member set below */
        src.ts_ms = h.ts_ms;
        src.rows = h.rows;
        src.ms = h.ms;
        src.conn = h.conn;
        const char *p = (const char *)q->buf + off + HDR_SIZE;
        p = ring_get(p, &h, &src, F_USER);
        p = ring_get(p, &h, &src, F_CLIENT);
        p = ring_get(p, &h, &src, F_VIA);
        p = ring_get(p, &h, &src, F_ENV);
        p = ring_get(p, &h, &src, F_DB);
        const char *p_session = p; /* the end of user .. db */
        p = ring_get(p, &h, &src, F_SQL);
        p = ring_get(p, &h, &src, F_VERDICT);
        p = ring_get(p, &h, &src, F_ERROR);
        ring_get(p, &h, &src, F_EVENT);
        /* The batch starts at a->batch + 1 (see flush_batch); it is written once it holds
         * WRITE_CHUNK bytes, so LINE_MAX_BYTES are always free here. */
        char *line = a->batch + 1 + w->len;
        const char *raw = (const char *)q->buf + off + HDR_SIZE; /* user .. db come first */
        char *o = put_ts(line, src.ts_ms);
        if (src.s[F_EVENT])
            PUT_FIELD(o, ",\"event\":", &src, F_EVENT);
        o = put_session_cached(a, o, &src, h.len, raw, (size_t)(p_session - raw));
        o = put_sql_cached(a, o, &src);
        o = put_outcome(o, &src);
        w->len += (size_t)(o - line);
        w->lines++;
        head += h.size;
        n++;
        if (w->len >= WRITE_CHUNK) {
            atomic_store_explicit(&q->head, head, memory_order_release);
            flush_batch(a, w);
        }
    }
    atomic_store_explicit(&q->head, head, memory_order_release);
    return n;
}

/* One pass over every ring (up to each one's reopen mark when to_marks); writes the batch.
 * A pass that is not to the marks stops when a reopen is requested during it: records logged
 * after the request must not reach the old file. */
static size_t drain_all(audit *a, writer_state *w, bool to_marks)
{
    size_t n = 0;
    int rings = atomic_load_explicit(&a->n_rings, memory_order_acquire);
    for (int i = -1; i < rings; i++) {
        audit_ring *q = i < 0 ? a->shared : a->rings[i];
        size_t limit = to_marks ? q->upto : atomic_load_explicit(&q->tail, memory_order_acquire);
        /* A record published after a request is seen with it (acquire on tail). */
        if (!to_marks &&
            atomic_load_explicit(&a->reopen_gen, memory_order_acquire) != a->reopen_done)
            break;
        n += drain_ring(a, w, q, limit);
    }
    flush_batch(a, w);
    return n;
}

static void reopen_file(audit *a, writer_state *w)
{
    int fd = open_log(a->path);
    if (fd < 0) {
        log_error("audit log %s: cannot reopen: %s (still writing to the old file)", a->path,
                  strerror(errno));
        return;
    }
    close(a->fd);
    a->fd = fd;
    w->torn = false;
    w->error_reported = false;
    log_info("audit log %s: reopened", a->path);
}

/* When the file was deleted (without a SIGHUP), opens a new one at the path, so that
 * lines do not go on disappearing into an unlinked file. One fstat a second: a file that
 * was only renamed (logrotate) keeps receiving lines until audit_reopen. */
static void check_file(audit *a, writer_state *w)
{
    time_t now = time(NULL);
    if (now >= w->file_checked_at && now - w->file_checked_at < FILE_CHECK_INTERVAL_S)
        return; /* (a clock set back does not stop the checks) */
    w->file_checked_at = now;
    struct stat st;
    if (fstat(a->fd, &st) != 0 || st.st_nlink > 0 || !S_ISREG(st.st_mode))
        return;
    log_warn("audit log %s: the file was deleted; opening it again", a->path);
    reopen_file(a, w);
}

static unsigned long long total_drops(audit *a)
{
    unsigned long long n = atomic_load_explicit(&a->shared->drops, memory_order_relaxed);
    int rings = atomic_load_explicit(&a->n_rings, memory_order_acquire);
    for (int i = 0; i < rings; i++)
        n += atomic_load_explicit(&a->rings[i]->drops, memory_order_relaxed);
    return n;
}

/* Warns about dropped records, at most every DROP_REPORT_INTERVAL_S (and once at the end).
 * Called by the writer and by audit_report() (the main loop: a writer stuck in write(2) on a
 * stalled disk cannot say it). */
static void report_drops(audit *a, bool final)
{
    unsigned long long drops = total_drops(a);
    pthread_mutex_lock(&a->report_mu);
    time_t now = time(NULL);
    if (drops != a->drops_reported &&
        (final || now < a->drops_reported_at ||
         now - a->drops_reported_at >= DROP_REPORT_INTERVAL_S)) {
        log_warn("audit log %s: %llu record(s) dropped because a buffer was full (%llu in all)",
                 a->path, drops - a->drops_reported, drops);
        a->drops_reported = drops;
        a->drops_reported_at = now;
    }
    pthread_mutex_unlock(&a->report_mu);
}

void audit_report(audit *a)
{
    if (a)
        report_drops(a, false);
}

/* Sleeps on wake for at most ms; called with mu held. */
static void wait_ms(audit *a, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&a->wake, &a->mu, &ts);
}

static void *writer_main(void *arg)
{
    audit *a = arg;
    writer_state w;
    memset(&w, 0, sizeof w);
    long sleep_ms = BUSY_WAIT_MS;

    pthread_mutex_lock(&a->mu);
    for (;;) {
        if (atomic_load_explicit(&a->reopen_gen, memory_order_relaxed) != a->reopen_done) {
            /* What was logged before the request goes to the old file. */
            unsigned long long gen = atomic_load_explicit(&a->reopen_gen, memory_order_relaxed);
            int rings = atomic_load_explicit(&a->n_rings, memory_order_relaxed);
            a->shared->upto = a->shared->mark;
            for (int i = 0; i < rings; i++)
                a->rings[i]->upto = a->rings[i]->mark;
            pthread_mutex_unlock(&a->mu);
            drain_all(a, &w, true);
            reopen_file(a, &w);
            pthread_mutex_lock(&a->mu);
            a->reopen_done = gen;
            continue;
        }
        bool stopping = a->stopping;
        size_t n = 0;
        if (!a->paused || stopping) {
            pthread_mutex_unlock(&a->mu);
            check_file(a, &w);
            n = drain_all(a, &w, false);
            report_drops(a, false);
            pthread_mutex_lock(&a->mu);
        }
        bool reopen = atomic_load_explicit(&a->reopen_gen, memory_order_relaxed) != a->reopen_done;
        if (stopping && n == 0 && !reopen)
            break; /* the producers are gone: every ring is empty */
        if (n)
            sleep_ms = BUSY_WAIT_MS;
        else if (sleep_ms < IDLE_WAIT_MS)
            sleep_ms *= 2;
        if (!a->stopping && !reopen &&
            !atomic_exchange_explicit(&a->kicked, false, memory_order_relaxed))
            wait_ms(a, sleep_ms);
        atomic_store_explicit(&a->kicked, false, memory_order_relaxed);
    }
    pthread_mutex_unlock(&a->mu);
    report_drops(a, true);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * The API.
 */

static void free_audit(audit *a)
{
    int rings = atomic_load(&a->n_rings);
    for (int i = 0; i < rings; i++)
        ring_free(a->rings[i]);
    ring_free(a->shared);
    free(a->batch);
    free(a->sessions);
    free(a->sqls);
    free(a->path);
    free(a);
}

audit *audit_open(const char *path, size_t ring_bytes, char *err, size_t errlen)
{
    if (!path || !*path) {
        snprintf(err, errlen, "audit log: no file name");
        return NULL;
    }
    if (ring_bytes == 0)
        ring_bytes = AUDIT_DEFAULT_RING;
    if (ring_bytes > ((size_t)1 << 40))
        ring_bytes = (size_t)1 << 40;
    size_t cap = AUDIT_MIN_RING;
    while (cap < ring_bytes)
        cap *= 2;
    audit *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "audit log %s: out of memory", path);
        return NULL;
    }
    a->ring_bytes = cap;
    a->fd = -1;
    atomic_init(&a->n_rings, 0);
    atomic_init(&a->kicked, false);
    atomic_init(&a->written, 0);
    atomic_init(&a->lost, 0);
    atomic_init(&a->reopen_gen, 0);
    if (!(a->path = strdup(path)) || !(a->shared = ring_alloc(a)) ||
        !(a->batch = malloc(1 + WRITE_CHUNK + LINE_MAX_BYTES)) ||
        !(a->sessions = calloc(SESSION_SLOTS, sizeof *a->sessions)) ||
        !(a->sqls = calloc(SQL_SLOTS, sizeof *a->sqls))) {
        snprintf(err, errlen, "audit log %s: out of memory", path);
        free_audit(a);
        return NULL;
    }
    a->fd = open_log(path);
    if (a->fd < 0) {
        snprintf(err, errlen, "audit log %s: cannot open: %s", path, strerror(errno));
        free_audit(a);
        return NULL;
    }
    struct stat st;
    if (fstat(a->fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) &&
        !S_ISCHR(st.st_mode)) {
        snprintf(err, errlen, "audit log %s: not a regular file", path);
        close(a->fd);
        free_audit(a);
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->shared_mu, NULL);
    pthread_mutex_init(&a->report_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->wake, &ca);
    pthread_condattr_destroy(&ca);

    /* The writer takes no signals: they belong to the main loop. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&a->thread, NULL, writer_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "audit log %s: cannot start the writer thread: %s", path,
                 strerror(rc));
        pthread_cond_destroy(&a->wake);
        pthread_mutex_destroy(&a->mu);
        pthread_mutex_destroy(&a->shared_mu);
        pthread_mutex_destroy(&a->report_mu);
        close(a->fd);
        free_audit(a);
        return NULL;
    }
    return a;
}

void audit_reopen(audit *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    /* The writer takes each ring up to here for the old file. A record that a producer is
     * writing at this moment is published after it: it goes to the new file. */
    int rings = atomic_load_explicit(&a->n_rings, memory_order_relaxed);
    a->shared->mark = atomic_load_explicit(&a->shared->tail, memory_order_acquire);
    for (int i = 0; i < rings; i++)
        a->rings[i]->mark = atomic_load_explicit(&a->rings[i]->tail, memory_order_acquire);
    atomic_fetch_add_explicit(&a->reopen_gen, 1, memory_order_release);
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

void audit_pause(audit *a, bool paused)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->paused = paused;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

unsigned long long audit_drops(audit *a)
{
    return a ? total_drops(a) : 0;
}

unsigned long long audit_written(audit *a)
{
    return a ? atomic_load_explicit(&a->written, memory_order_relaxed) : 0;
}

unsigned long long audit_write_errors(audit *a)
{
    return a ? atomic_load_explicit(&a->lost, memory_order_relaxed) : 0;
}

void audit_close(audit *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);

    close(a->fd);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->shared_mu);
    pthread_mutex_destroy(&a->report_mu);
    free_audit(a);
}
