/* audit.c: the audit log. Producers append binary records to rings; a thread writes lines. */
#include "audit.h"

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
 */

/* Output that counts every byte but stores only what fits (leaving room for a NUL). */
typedef struct {
    char *out;
    size_t cap, len;
} jbuf;

static inline void jb_putn(jbuf *b, const char *s, size_t n)
{
    if (b->cap && b->len < b->cap - 1) {
        size_t room = b->cap - 1 - b->len;
        memcpy(b->out + b->len, s, n < room ? n : room);
    }
    b->len += n;
}

static void jb_puts(jbuf *b, const char *s)
{
    jb_putn(b, s, strlen(s));
}

/* A string literal, its length known when compiled. */
#define JB_LIT(b, lit) jb_putn((b), (lit), sizeof(lit) - 1)

static inline void jb_putc(jbuf *b, char c)
{
    if (b->cap && b->len < b->cap - 1)
        b->out[b->len] = c;
    b->len++;
}

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

static inline bool plain_ascii(unsigned char c)
{
    return plain_table[c];
}

/* Writes s (n bytes, of which at most limit are used) as a JSON string. Stops before the first
 * character that would pass limit, so a cut never splits a UTF-8 sequence. Returns true when
 * something was left out. */
static bool put_string(jbuf *b, const char *s, size_t n, size_t limit)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: bytes from i - run copied as they are, not yet written */
    bool cut = false;

    size_t fast_end = n < limit ? n : limit; /* an ASCII byte before this fits */
    /* Most strings (names, addresses, most statements) are printable ASCII within the limit
     * and fit: the quotes and the bytes go in directly. */
    while (i < fast_end && plain_ascii(p[i]))
        i++;
    if (i == n && b->len + n + 2 < b->cap) {
        char *o = b->out + b->len;
        o[0] = '"';
        memcpy(o + 1, s, n);
        o[n + 1] = '"';
        b->len += n + 2;
        return false;
    }
    run = i; /* the plain bytes found, written with what follows them */
    jb_putc(b, '"');
    while (i < n) {
        /* The common case first: a run of printable ASCII, copied as it is. */
        size_t j = i;
        while (j < fast_end && plain_ascii(p[j]))
            j++;
        run += j - i;
        i = j;
        if (i >= n)
            break;
        size_t len = utf8_len(p + i, n - i);
        size_t step = len ? len : 1;
        if (i + step > limit) {
            cut = true;
            break;
        }
        unsigned char c = p[i];
        const char *esc = NULL;
        char ubuf[7];
        if (!len) {
            esc = "\\ufffd";
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c < 0x20) {
            switch (c) {
            case '\n':
                esc = "\\n";
                break;
            case '\r':
                esc = "\\r";
                break;
            case '\t':
                esc = "\\t";
                break;
            case '\b':
                esc = "\\b";
                break;
            case '\f':
                esc = "\\f";
                break;
            default:
                memcpy(ubuf, "\\u00", 4);
                ubuf[4] = hex[c >> 4];
                ubuf[5] = hex[c & 15];
                ubuf[6] = '\0';
                esc = ubuf;
            }
        }
        if (esc) {
            jb_putn(b, s + i - run, run);
            run = 0;
            jb_puts(b, esc);
        } else {
            run += step;
        }
        i += step;
    }
    jb_putn(b, s + i - run, run);
    jb_putc(b, '"');
    return cut;
}

/* A string of n bytes (NUL-terminated, so n is at most its strlen) cut at AUDIT_FIELD_MAX
 * bytes, or null. key is a string literal. */
#define put_field(b, key, s, n) put_field_((b), (key), sizeof(key) - 1, (s), (n))
static void put_field_(jbuf *b, const char *key, size_t key_len, const char *s, size_t n)
{
    jb_putn(b, key, key_len);
    if (!s)
        JB_LIT(b, "null");
    else
        put_string(b, s, n, AUDIT_FIELD_MAX);
}

/* v in decimal. */
static void put_uint(jbuf *b, unsigned long long v)
{
    char buf[24];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    jb_putn(b, buf + i, sizeof buf - i);
}

/* The last second put_time formatted, per thread: lines of one second share it. */
static _Thread_local long long cached_sec = LLONG_MIN;
static _Thread_local char cached_text[80];
static _Thread_local size_t cached_len;

/* ts_ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC). */
static void put_time(jbuf *b, long long ts_ms)
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
            jb_puts(b, "\"1970-01-01T00:00:00.000Z\"");
            return;
        }
        int n = snprintf(cached_text, sizeof cached_text, "\"%04d-%02d-%02dT%02d:%02d:%02d",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_len = n > 0 && (size_t)n < sizeof cached_text ? (size_t)n : strlen(cached_text);
        cached_sec = sec;
    }
    char ms3[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10),
                   'Z', '"'};
    jb_putn(b, cached_text, cached_len);
    jb_putn(b, ms3, sizeof ms3);
}

/* Lengths of the strings of a record, as put_field takes them. */
enum { L_USER, L_CLIENT, L_ENV, L_DB, L_VERDICT, L_ERROR, L_EVENT, L_VIA, L_COUNT };

/* audit_format() with the strings' lengths given (each at most AUDIT_FIELD_MAX + 4, as the
 * ring stores them): the writer knows them from the record and does not measure them again. */
static size_t format_line(const audit_record *r, const size_t *len, char *out, size_t cap)
{
    jbuf b = {out, cap, 0};

    JB_LIT(&b, "{\"ts\":");
    put_time(&b, r->ts_ms);
    if (r->event)
        put_field(&b, ",\"event\":", r->event, len[L_EVENT]);
    JB_LIT(&b, ",\"conn\":");
    put_uint(&b, r->conn);
    put_field(&b, ",\"user\":", r->user, len[L_USER]);
    put_field(&b, ",\"client\":", r->client, len[L_CLIENT]);
    if (r->via)
        put_field(&b, ",\"via\":", r->via, len[L_VIA]);
    put_field(&b, ",\"env\":", r->env, len[L_ENV]);
    put_field(&b, ",\"db\":", r->db, len[L_DB]);
    JB_LIT(&b, ",\"sql\":");
    if (!r->sql)
        JB_LIT(&b, "null");
    else if (put_string(&b, r->sql, r->sql_len, AUDIT_SQL_MAX))
        JB_LIT(&b, ",\"truncated\":true");
    put_field(&b, ",\"verdict\":", r->verdict, len[L_VERDICT]);
    JB_LIT(&b, ",\"rows\":");
    if (r->rows < 0) {
        JB_LIT(&b, "null");
    } else {
        put_uint(&b, (unsigned long long)r->rows);
    }
    JB_LIT(&b, ",\"ms\":");
    /* Not "%.3f": that would follow LC_NUMERIC. NaN fails the first test. */
    if (!(r->ms >= 0) || r->ms > 1e15) {
        JB_LIT(&b, "null");
    } else {
        long long thousandths = (long long)(r->ms * 1000.0 + 0.5);
        long long frac = thousandths % 1000;
        char dec[5] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                       (char)('0' + frac % 10), 0};
        put_uint(&b, (unsigned long long)(thousandths / 1000));
        jb_putn(&b, dec, 4);
    }
    put_field(&b, ",\"error\":", r->error, len[L_ERROR]);
    JB_LIT(&b, "}\n");

    if (cap)
        out[b.len < cap ? b.len : cap - 1] = '\0';
    return b.len;
}

size_t audit_format(const audit_record *r, char *out, size_t cap)
{
    const char *str[L_COUNT] = {r->user,    r->client, r->env,   r->db,
                                r->verdict, r->error,  r->event, r->via};
    size_t len[L_COUNT];
    for (int i = 0; i < L_COUNT; i++)
        len[i] = str[i] ? strnlen(str[i], AUDIT_FIELD_MAX + 4) : 0;
    return format_line(r, len, out, cap);
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

enum { F_USER, F_CLIENT, F_ENV, F_DB, F_SQL, F_VERDICT, F_ERROR, F_EVENT, F_VIA, F_COUNT };
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

/* The longest line a record can become: every kept byte may turn into a 6-byte escape. */
#define LINE_MAX_BYTES (6 * (AUDIT_SQL_MAX + 8 * (AUDIT_FIELD_MAX + 2)) + 1024)
#define WRITE_CHUNK (256 * 1024) /* a batch is written once it holds this many bytes */
#define BUSY_WAIT_MS 10          /* the writer's sleep after a pass that found records */
#define IDLE_WAIT_MS 100         /* ... growing to this while the rings stay empty */
#define DROP_REPORT_INTERVAL_S 10 /* at most one "records dropped" warning this often */
#define FILE_CHECK_INTERVAL_S 1   /* how often the writer checks that its file is still there */

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

static size_t bounded_len(const char *s, size_t limit)
{
    return s ? strnlen(s, limit) : 0;
}

static void wake_writer(audit *a)
{
    pthread_mutex_lock(&a->mu);
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

void audit_ring_log(audit_ring *q, const audit_record *r)
{
    if (!q || !r)
        return;
    /* Copy as much of each string as audit_format() can use, so that the line written is the
     * one the caller's record gives (see put_string: at most 4 bytes past the limit count). */
    const char *str[F_COUNT] = {r->user,    r->client, r->env,   r->db, r->sql,
                                r->verdict, r->error,  r->event, r->via};
    size_t len[F_COUNT];
    size_t need = HDR_SIZE;
    for (int i = 0; i < F_COUNT; i++) {
        if (i == F_SQL)
            len[i] = !r->sql ? 0 : r->sql_len < AUDIT_SQL_MAX + 4 ? r->sql_len : AUDIT_SQL_MAX + 4;
        else
            len[i] = bounded_len(str[i], AUDIT_FIELD_MAX + 4);
        if (str[i])
            need += len[i] + 1;
    }
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
        rec_hdr skip = {.size = 0};
        memcpy(q->buf + off, &skip, sizeof skip.size);
        off = 0;
    }
    rec_hdr h = {
        .size = (uint32_t)need,
        .conn = r->conn,
        .ts_ms = r->ts_ms,
        .rows = r->rows,
        .ms = r->ms,
    };
    unsigned char *p = q->buf + off + HDR_SIZE;
    for (int i = 0; i < F_COUNT; i++) {
        if (!str[i]) {
            h.len[i] = F_NULL;
            continue;
        }
        h.len[i] = (uint16_t)len[i];
        memcpy(p, str[i], len[i]);
        p[len[i]] = '\0';
        p += len[i] + 1;
    }
    memcpy(q->buf + off, &h, sizeof h);
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
        const char *str[F_COUNT];
        const char *p = (const char *)q->buf + off + HDR_SIZE;
        for (int i = 0; i < F_COUNT; i++) {
            if (h.len[i] == F_NULL) {
                str[i] = NULL;
                continue;
            }
            str[i] = p;
            p += h.len[i] + 1;
        }
        audit_record r = {
            .ts_ms = h.ts_ms,
            .conn = h.conn,
            .user = str[F_USER],
            .client = str[F_CLIENT],
            .env = str[F_ENV],
            .db = str[F_DB],
            .sql = str[F_SQL],
            .sql_len = str[F_SQL] ? h.len[F_SQL] : 0,
            .verdict = str[F_VERDICT],
            .rows = h.rows,
            .ms = h.ms,
            .error = str[F_ERROR],
            .event = str[F_EVENT],
            .via = str[F_VIA],
        };
        /* The batch starts at a->batch + 1 (see flush_batch) and always has room for the
         * longest line when a record is formatted. */
        size_t room = WRITE_CHUNK + LINE_MAX_BYTES - w->len;
        const size_t lens[L_COUNT] = {
            [L_USER] = h.len[F_USER],       [L_CLIENT] = h.len[F_CLIENT],
            [L_ENV] = h.len[F_ENV],         [L_DB] = h.len[F_DB],
            [L_VERDICT] = h.len[F_VERDICT], [L_ERROR] = h.len[F_ERROR],
            [L_EVENT] = h.len[F_EVENT],     [L_VIA] = h.len[F_VIA],
        }; /* F_NULL where the string is NULL: put_field does not look at it then */
        size_t len = format_line(&r, lens, a->batch + 1 + w->len, room);
        if (len < room) {
            w->len += len;
            w->lines++;
        } else {
            atomic_fetch_add_explicit(&a->lost, 1, memory_order_relaxed); /* cannot happen */
        }
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
    if (now - w->file_checked_at < FILE_CHECK_INTERVAL_S)
        return;
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
        (final || now - a->drops_reported_at >= DROP_REPORT_INTERVAL_S)) {
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
        !(a->batch = malloc(1 + WRITE_CHUNK + LINE_MAX_BYTES))) {
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
