/* audit.c: the audit log. Callers format a JSON line and queue it; one thread appends lines. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define WRITE_CHUNK (256 * 1024)  /* most bytes handed to one write(2) */
#define DROP_REPORT_INTERVAL_S 10 /* at most one "lines dropped" warning this often */
#define FILE_CHECK_INTERVAL_S 1   /* how often the writer checks that its file is still there */

typedef struct {
    char *line;
    size_t len;
} audit_line;

struct audit {
    char *path;
    int fd; /* touched only by the writer once it runs */
    pthread_t thread;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t wake;
    audit_line *ring; /* the queue: count lines from head, cap slots */
    size_t cap, head, count, bytes;
    unsigned long long enqueued, dequeued; /* lines ever queued / taken by the writer */
    bool reopen_pending;
    unsigned long long reopen_at; /* reopen once dequeued reaches this */
    bool paused, stopping;
    unsigned long long drops, written, lost;
};

/* ---------------------------------------------------------------------------------------------
 * Formatting (pure).
 */

/* Output that counts every byte but stores only what fits (leaving room for a NUL). */
typedef struct {
    char *out;
    size_t cap, len;
} jbuf;

static void jb_putn(jbuf *b, const char *s, size_t n)
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

/* Writes s (n bytes, of which at most limit are used) as a JSON string. Stops before the first
 * character that would pass limit, so a cut never splits a UTF-8 sequence. Returns true when
 * something was left out. */
static bool put_string(jbuf *b, const char *s, size_t n, size_t limit)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: bytes from i - run copied as they are, not yet written */
    bool cut = false;

    jb_putn(b, "\"", 1);
    while (i < n) {
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
    jb_putn(b, "\"", 1);
    return cut;
}

/* A NUL-terminated string cut at AUDIT_FIELD_MAX bytes, or null. */
static void put_field(jbuf *b, const char *key, const char *s)
{
    jb_puts(b, key);
    if (!s)
        jb_puts(b, "null");
    else
        put_string(b, s, strnlen(s, AUDIT_FIELD_MAX + 4), AUDIT_FIELD_MAX);
}

/* ts_ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC). */
static void put_time(jbuf *b, long long ts_ms)
{
    long long ms = ts_ms % 1000, sec = ts_ms / 1000;
    if (ms < 0) {
        ms += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    char buf[64];
    if (!gmtime_r(&t, &tm)) { /* out of range: the epoch rather than garbage */
        memset(&tm, 0, sizeof tm);
        tm.tm_year = 70;
        tm.tm_mday = 1;
        ms = 0;
    }
    snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
    jb_puts(b, buf);
}

size_t audit_format(const audit_record *r, char *out, size_t cap)
{
    jbuf b = {out, cap, 0};
    char num[64];

    jb_puts(&b, "{\"ts\":");
    put_time(&b, r->ts_ms);
    if (r->event)
        put_field(&b, ",\"event\":", r->event);
    snprintf(num, sizeof num, ",\"conn\":%lu", (unsigned long)r->conn);
    jb_puts(&b, num);
    put_field(&b, ",\"user\":", r->user);
    put_field(&b, ",\"client\":", r->client);
    if (r->via)
        put_field(&b, ",\"via\":", r->via);
    put_field(&b, ",\"env\":", r->env);
    put_field(&b, ",\"db\":", r->db);
    jb_puts(&b, ",\"sql\":");
    if (!r->sql)
        jb_puts(&b, "null");
    else if (put_string(&b, r->sql, r->sql_len, AUDIT_SQL_MAX))
        jb_puts(&b, ",\"truncated\":true");
    put_field(&b, ",\"verdict\":", r->verdict);
    jb_puts(&b, ",\"rows\":");
    if (r->rows < 0) {
        jb_puts(&b, "null");
    } else {
        snprintf(num, sizeof num, "%lld", r->rows);
        jb_puts(&b, num);
    }
    jb_puts(&b, ",\"ms\":");
    /* Not "%.3f": that would follow LC_NUMERIC. NaN fails the first test. */
    if (!(r->ms >= 0) || r->ms > 1e15) {
        jb_puts(&b, "null");
    } else {
        long long thousandths = (long long)(r->ms * 1000.0 + 0.5);
        snprintf(num, sizeof num, "%lld.%03lld", thousandths / 1000, thousandths % 1000);
        jb_puts(&b, num);
    }
    put_field(&b, ",\"error\":", r->error);
    jb_puts(&b, "}\n");

    if (cap)
        out[b.len < cap ? b.len : cap - 1] = '\0';
    return b.len;
}

/* ---------------------------------------------------------------------------------------------
 * The writer thread.
 */

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
}

/* Whether the writer has something to do; called with mu held. */
static bool has_work(const audit *a)
{
    if (a->reopen_pending && a->dequeued == a->reopen_at)
        return true;
    if (a->count && (!a->paused || a->stopping))
        return true;
    return a->stopping;
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
    char *buf; /* lines gathered for one write(2) */
    size_t cap;
    bool torn;           /* the last failed write stopped inside a line */
    bool error_reported; /* write errors are logged once */
    time_t drops_reported_at;
    unsigned long long drops_reported;
    time_t file_checked_at;
} writer_state;

/* Writes the lines of batch[0..n) in order and frees them. Returns how many reached the file. */
static size_t write_batch(audit *a, writer_state *w, audit_line *batch, size_t n)
{
    size_t ok = 0, i = 0;
    while (i < n) {
        /* Gather whole lines up to WRITE_CHUNK bytes (at least one line). */
        size_t first = i, bytes = w->torn ? 1 : 0;
        while (i < n && (i == first || bytes + batch[i].len <= WRITE_CHUNK))
            bytes += batch[i++].len;
        if (bytes > w->cap) {
            char *nb = realloc(w->buf, bytes);
            if (!nb) { /* these lines are lost; the caller counts them */
                for (size_t j = first; j < i; j++)
                    free(batch[j].line);
                continue;
            }
            w->buf = nb;
            w->cap = bytes;
        }
        /* After a write that failed inside a line, start on a fresh line. */
        size_t len = 0;
        if (w->torn)
            w->buf[len++] = '\n';
        for (size_t j = first; j < i; j++) {
            memcpy(w->buf + len, batch[j].line, batch[j].len);
            len += batch[j].len;
            free(batch[j].line);
        }
        int err = 0;
        size_t done = write_all(a->fd, w->buf, len, &err);
        if (done == len) {
            w->torn = false;
            ok += i - first;
            continue;
        }
        /* Count the lines that made it whole; the rest are lost. */
        size_t at = w->torn ? 1 : 0;
        if (done >= at)
            for (size_t j = first; j < i && at + batch[j].len <= done; j++) {
                at += batch[j].len;
                ok++;
            }
        w->torn = done > 0 && w->buf[done - 1] != '\n';
        if (!w->error_reported) {
            log_error("audit log %s: cannot write: %s (further write errors are only counted)",
                      a->path, strerror(err));
            w->error_reported = true;
        }
    }
    return ok;
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

/* Warns about dropped lines, at most every DROP_REPORT_INTERVAL_S (and once at the end). */
static void report_drops(audit *a, writer_state *w, unsigned long long drops, bool final)
{
    if (drops == w->drops_reported)
        return;
    time_t now = time(NULL);
    if (!final && now - w->drops_reported_at < DROP_REPORT_INTERVAL_S)
        return;
    log_warn("audit log %s: %llu line(s) dropped because the queue was full (%llu in all)", a->path,
             drops - w->drops_reported, drops);
    w->drops_reported = drops;
    w->drops_reported_at = now;
}

static void *writer_main(void *arg)
{
    audit *a = arg;
    writer_state w;
    memset(&w, 0, sizeof w);
    audit_line *batch = malloc(a->cap * sizeof *batch);

    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!has_work(a))
            pthread_cond_wait(&a->wake, &a->mu);
        if (a->reopen_pending && a->dequeued == a->reopen_at) {
            a->reopen_pending = false;
            pthread_mutex_unlock(&a->mu);
            reopen_file(a, &w);
            pthread_mutex_lock(&a->mu);
            continue;
        }
        if (!a->count) /* only stopping wakes the writer with nothing to write */
            break;
        size_t n = a->count;
        if (a->reopen_pending && a->reopen_at - a->dequeued < n)
            n = (size_t)(a->reopen_at - a->dequeued);
        if (!batch)
            n = 1;
        audit_line one;
        audit_line *dst = batch ? batch : &one;
        for (size_t i = 0; i < n; i++) {
            dst[i] = a->ring[a->head];
            a->bytes -= dst[i].len;
            a->head = (a->head + 1) % a->cap;
        }
        a->count -= n;
        a->dequeued += n;
        unsigned long long drops = a->drops;
        pthread_mutex_unlock(&a->mu);

        check_file(a, &w);
        size_t ok = write_batch(a, &w, dst, n);
        report_drops(a, &w, drops, false);

        pthread_mutex_lock(&a->mu);
        a->written += ok;
        a->lost += n - ok;
    }
    unsigned long long drops = a->drops;
    pthread_mutex_unlock(&a->mu);
    report_drops(a, &w, drops, true);
    free(w.buf);
    free(batch);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * The API.
 */

audit *audit_open(const char *path, size_t queue_capacity, char *err, size_t errlen)
{
    if (!path || !*path) {
        snprintf(err, errlen, "audit log: no file name");
        return NULL;
    }
    if (queue_capacity == 0)
        queue_capacity = AUDIT_DEFAULT_QUEUE;
    audit *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path)) || !(a->ring = calloc(queue_capacity, sizeof *a->ring))) {
        snprintf(err, errlen, "audit log %s: out of memory", path);
        if (a)
            free(a->path);
        free(a);
        return NULL;
    }
    a->cap = queue_capacity;
    a->fd = open_log(path);
    if (a->fd < 0) {
        snprintf(err, errlen, "audit log %s: cannot open: %s", path, strerror(errno));
        free(a->ring);
        free(a->path);
        free(a);
        return NULL;
    }
    struct stat st;
    if (fstat(a->fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) &&
        !S_ISCHR(st.st_mode)) {
        snprintf(err, errlen, "audit log %s: not a regular file", path);
        close(a->fd);
        free(a->ring);
        free(a->path);
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL);

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
        close(a->fd);
        free(a->ring);
        free(a->path);
        free(a);
        return NULL;
    }
    return a;
}

void audit_log(audit *a, const audit_record *r)
{
    if (!a || !r)
        return;
    size_t len = audit_format(r, NULL, 0);
    char *line = malloc(len + 1);
    if (line)
        audit_format(r, line, len + 1);

    pthread_mutex_lock(&a->mu);
    if (!line || a->stopping || a->count == a->cap || a->bytes + len > AUDIT_QUEUE_MAX_BYTES) {
        a->drops++;
        pthread_mutex_unlock(&a->mu);
        free(line);
        return;
    }
    a->ring[(a->head + a->count) % a->cap] = (audit_line){line, len};
    a->count++;
    a->bytes += len;
    a->enqueued++;
    if (a->count == 1)
        pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

void audit_reopen(audit *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->reopen_pending = true;
    a->reopen_at = a->enqueued;
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

static unsigned long long read_counter(audit *a, const unsigned long long *field)
{
    if (!a)
        return 0;
    pthread_mutex_lock(&a->mu);
    unsigned long long v = *field;
    pthread_mutex_unlock(&a->mu);
    return v;
}

unsigned long long audit_drops(audit *a)
{
    return a ? read_counter(a, &a->drops) : 0;
}

unsigned long long audit_written(audit *a)
{
    return a ? read_counter(a, &a->written) : 0;
}

unsigned long long audit_write_errors(audit *a)
{
    return a ? read_counter(a, &a->lost) : 0;
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

    for (size_t i = 0; i < a->count; i++) /* only when the writer could not take them */
        free(a->ring[(a->head + i) % a->cap].line);
    close(a->fd);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->mu);
    free(a->ring);
    free(a->path);
    free(a);
}
