/* test_audit.c: unit tests of the audit log: line format, the writer, reopen, drops, threads. */
#include "audit.h"
#include "log.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TS 1795251600123LL /* 2026-11-21T09:00:00.123Z */

static char tmpdir[] = "/tmp/envproxy-audit-XXXXXX";

static char *tmp_path(const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", tmpdir, name) < 0)
        abort();
    return p;
}

/* The whole file at path (NUL-terminated), or NULL. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* slurp(path), freed at the next call: for one-line checks. */
static const char *slurp_keep(const char *path)
{
    static char *last;
    free(last);
    last = slurp(path, NULL);
    return last ? last : "";
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Formats r into a static buffer (for comparisons) and checks the returned length. */
static const char *fmt(const audit_record *r)
{
    static char buf[64 * 1024];
    size_t n = audit_format(r, buf, sizeof buf);
    CHECK_INT(n, strlen(buf));
    return buf;
}

static audit_record statement(const char *sql)
{
    audit_record r = {0};
    r.ts_ms = TS;
    r.conn = 42;
    r.user = "alice";
    r.client = "10.0.0.5:51234";
    r.env = "prod";
    r.db = "shop";
    r.sql = sql;
    r.sql_len = sql ? strlen(sql) : 0;
    r.verdict = "allowed";
    r.rows = 3;
    r.ms = 1.5;
    return r;
}

static void test_format_basic(void)
{
    audit_record r = statement("SELECT id FROM orders");
    CHECK_STR(fmt(&r), "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"conn\":42,\"user\":\"alice\","
                       "\"client\":\"10.0.0.5:51234\",\"env\":\"prod\",\"db\":\"shop\","
                       "\"sql\":\"SELECT id FROM orders\",\"verdict\":\"allowed\",\"rows\":3,"
                       "\"ms\":1.500,\"error\":null}\n");

    r = statement("DELETE FROM orders");
    r.verdict = "refused";
    r.rows = -1;
    r.ms = 0;
    r.error = "1290: envproxy: environment 'prod' is read-only: DELETE is not allowed";
    CHECK_STR(fmt(&r), "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"conn\":42,\"user\":\"alice\","
                       "\"client\":\"10.0.0.5:51234\",\"env\":\"prod\",\"db\":\"shop\","
                       "\"sql\":\"DELETE FROM orders\",\"verdict\":\"refused\",\"rows\":null,"
                       "\"ms\":0.000,\"error\":\"1290: envproxy: environment 'prod' is "
                       "read-only: DELETE is not allowed\"}\n");

    /* The door the statement came in by follows the client. */
    r = statement("SELECT 1");
    r.via = "http";
    CHECK_STR(fmt(&r), "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"conn\":42,\"user\":\"alice\","
                       "\"client\":\"10.0.0.5:51234\",\"via\":\"http\",\"env\":\"prod\","
                       "\"db\":\"shop\",\"sql\":\"SELECT 1\",\"verdict\":\"allowed\","
                       "\"rows\":3,\"ms\":1.500,\"error\":null}\n");

    /* Every optional value absent. */
    audit_record n = {0};
    n.ts_ms = 0;
    n.rows = -1;
    n.ms = -1;
    CHECK_STR(fmt(&n), "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"conn\":0,\"user\":null,"
                       "\"client\":null,\"env\":null,\"db\":null,\"sql\":null,\"verdict\":null,"
                       "\"rows\":null,\"ms\":null,\"error\":null}\n");

    /* A failed login. */
    audit_record l = {0};
    l.ts_ms = TS;
    l.conn = 4294967295u;
    l.user = "mallory";
    l.client = "[::1]:40000";
    l.verdict = "refused";
    l.rows = -1;
    l.ms = -1;
    l.error = "1045: Access denied for user 'mallory'@'::1' (using password: YES)";
    l.event = "login_failed";
    CHECK_STR(fmt(&l), "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"event\":\"login_failed\","
                       "\"conn\":4294967295,\"user\":\"mallory\",\"client\":\"[::1]:40000\","
                       "\"env\":null,\"db\":null,\"sql\":null,\"verdict\":\"refused\","
                       "\"rows\":null,\"ms\":null,\"error\":\"1045: Access denied for user "
                       "'mallory'@'::1' (using password: YES)\"}\n");
}

static void test_format_numbers(void)
{
    audit_record r = statement("SELECT 1");
    char *p;

    r.ts_ms = -1; /* one millisecond before the epoch */
    CHECK(strstr(fmt(&r), "\"ts\":\"1969-12-31T23:59:59.999Z\"") != NULL);
    r.ts_ms = 951782400000LL + 999; /* a leap day */
    CHECK(strstr(fmt(&r), "\"ts\":\"2000-02-29T00:00:00.999Z\"") != NULL);

    r.ms = 0.0004;
    CHECK(strstr(fmt(&r), "\"ms\":0.000,") != NULL);
    r.ms = 12.3456;
    CHECK(strstr(fmt(&r), "\"ms\":12.346,") != NULL);
    r.ms = 30000;
    CHECK(strstr(fmt(&r), "\"ms\":30000.000,") != NULL);
    r.ms = 0.0 / 0.0;
    CHECK(strstr(fmt(&r), "\"ms\":null,") != NULL);
    r.ms = 1.0 / 0.0;
    CHECK(strstr(fmt(&r), "\"ms\":null,") != NULL);

    r.rows = 0;
    CHECK(strstr(fmt(&r), "\"rows\":0,") != NULL);
    r.rows = 9223372036854775807LL;
    CHECK(strstr(fmt(&r), "\"rows\":9223372036854775807,") != NULL);
    r.rows = -5;
    p = strstr(fmt(&r), "\"rows\":null,");
    CHECK(p != NULL);
}

static void test_format_escapes(void)
{
    /* Quotes, backslash, the short escapes, other controls, DEL (left as it is). */
    static const char sql1[] = "SELECT \"a\\b\"\n\r\t\b\f\x01\x1f\x7f";
    audit_record r = statement(sql1);
    CHECK(strstr(fmt(&r), "\"sql\":\"SELECT \\\"a\\\\b\\\"\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\",") !=
          NULL);

    /* An embedded NUL counts: sql_len, not strlen, says where the text ends. */
    static const char sql2[] = "SELECT '\0' -- x";
    r = statement(sql2);
    r.sql_len = sizeof sql2 - 1;
    CHECK(strstr(fmt(&r), "\"sql\":\"SELECT '\\u0000' -- x\",") != NULL);

    /* Valid UTF-8 of every length is copied as it is. */
    r = statement("SELECT 'caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf'");
    CHECK(strstr(
              fmt(&r),
              "\"sql\":\"SELECT 'caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf'\",") !=
          NULL);

    /* Invalid UTF-8: each offending byte becomes U+FFFD. */
    struct {
        const char *in, *want;
    } bad[] = {
        {"a\377b", "a\\ufffdb"},                              /* never valid */
        {"a\200b", "a\\ufffdb"},                              /* stray continuation */
        {"\xc0\xaf", "\\ufffd\\ufffd"},                       /* overlong '/' */
        {"\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"},            /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"},            /* a surrogate */
        {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* above U+10FFFF */
        {"\xf5\x80", "\\ufffd\\ufffd"},                       /* never valid lead */
        {"x\xc3", "x\\ufffd"},                                /* cut short at the end */
        {"\342\202A", "\\ufffd\\ufffdA"},                     /* cut short in the middle */
        {"\xc3\xa9\xa9", "\xc3\xa9\\ufffd"},                  /* one continuation too many */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[256];
        r = statement(bad[i].in);
        snprintf(want, sizeof want, "\"sql\":\"%s\",\"verdict\"", bad[i].want);
        const char *got = fmt(&r);
        if (!strstr(got, want))
            fprintf(stderr, "case %zu: %s", i, got);
        CHECK(strstr(got, want) != NULL);
    }

    /* Every string field is escaped, not only sql. */
    audit_record f = statement("x");
    f.user = "a\"b";
    f.client = "\xff";
    f.env = "e\\";
    f.db = "d\n";
    f.verdict = "error";
    f.error = "1064: near '\x01'";
    CHECK_STR(fmt(&f), "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"conn\":42,\"user\":\"a\\\"b\","
                       "\"client\":\"\\ufffd\",\"env\":\"e\\\\\",\"db\":\"d\\n\",\"sql\":\"x\","
                       "\"verdict\":\"error\",\"rows\":3,\"ms\":1.500,"
                       "\"error\":\"1064: near '\\u0001'\"}\n");
}

static void test_format_truncation(void)
{
    char *sql = malloc(AUDIT_SQL_MAX + 16);
    char want[AUDIT_SQL_MAX + 64];
    audit_record r;
    const char *got;

    /* Exactly 4096 bytes: kept whole. */
    memset(sql, 'a', AUDIT_SQL_MAX);
    r = statement(NULL);
    r.sql = sql;
    r.sql_len = AUDIT_SQL_MAX;
    got = fmt(&r);
    CHECK(strstr(got, "\"truncated\"") == NULL);
    CHECK(strstr(got, "aaaa\",\"verdict\"") != NULL);

    /* One byte more: cut at 4096 and flagged. */
    sql[AUDIT_SQL_MAX] = 'b';
    r.sql_len = AUDIT_SQL_MAX + 1;
    got = fmt(&r);
    CHECK(strstr(got, "ab") == NULL);
    snprintf(want, sizeof want, "\"sql\":\"%.*s\",\"truncated\":true,\"verdict\":\"allowed\"",
             AUDIT_SQL_MAX, sql);
    CHECK(strstr(got, want) != NULL);

    /* A 2-byte character across the limit is left out whole, never split. */
    memset(sql, 'a', AUDIT_SQL_MAX - 1);
    memcpy(sql + AUDIT_SQL_MAX - 1, "\xc3\xa9z", 3);
    r.sql_len = AUDIT_SQL_MAX + 2;
    got = fmt(&r);
    snprintf(want, sizeof want, "\"sql\":\"%.*s\",\"truncated\":true,", AUDIT_SQL_MAX - 1, sql);
    CHECK(strstr(got, want) != NULL);
    CHECK(strstr(got, "\xc3") == NULL);

    /* A 4-byte character ending exactly at the limit is kept. */
    memset(sql, 'a', AUDIT_SQL_MAX - 4);
    memcpy(sql + AUDIT_SQL_MAX - 4, "\360\237\230\200tail", 8);
    r.sql_len = AUDIT_SQL_MAX + 4;
    got = fmt(&r);
    snprintf(want, sizeof want, "\"sql\":\"%.*s\",\"truncated\":true,", AUDIT_SQL_MAX, sql);
    CHECK(strstr(got, want) != NULL);

    /* A 3-byte character starting two bytes before the limit is left out. */
    memset(sql, 'a', AUDIT_SQL_MAX - 2);
    memcpy(sql + AUDIT_SQL_MAX - 2, "\xe2\x82\xac", 3);
    r.sql_len = AUDIT_SQL_MAX + 1;
    got = fmt(&r);
    snprintf(want, sizeof want, "\"sql\":\"%.*s\",\"truncated\":true,", AUDIT_SQL_MAX - 2, sql);
    CHECK(strstr(got, want) != NULL);

    /* Invalid bytes at the limit are replaced up to it, one each. */
    memset(sql, 'a', AUDIT_SQL_MAX - 1);
    memcpy(sql + AUDIT_SQL_MAX - 1, "\xff\xff", 2);
    r.sql_len = AUDIT_SQL_MAX + 1;
    got = fmt(&r);
    snprintf(want, sizeof want, "\"sql\":\"%.*s\\ufffd\",\"truncated\":true,", AUDIT_SQL_MAX - 1,
             sql);
    CHECK(strstr(got, want) != NULL);

    /* Escaping never counts against the limit: 4096 newlines stay whole. */
    memset(sql, '\n', AUDIT_SQL_MAX);
    r.sql_len = AUDIT_SQL_MAX;
    got = fmt(&r);
    char *nl = malloc(2 * AUDIT_SQL_MAX + 64);
    size_t k = 0;
    k += (size_t)sprintf(nl, "\"sql\":\"");
    for (int i = 0; i < AUDIT_SQL_MAX; i++) {
        nl[k++] = '\\';
        nl[k++] = 'n';
    }
    strcpy(nl + k, "\",\"verdict\"");
    CHECK(strstr(got, nl) != NULL);
    free(nl);

    /* Other fields are cut at AUDIT_FIELD_MAX bytes without a flag. */
    char *longdb = malloc(AUDIT_FIELD_MAX + 100);
    memset(longdb, 'd', AUDIT_FIELD_MAX + 99);
    longdb[AUDIT_FIELD_MAX + 99] = '\0';
    r = statement("x");
    r.db = longdb;
    got = fmt(&r);
    snprintf(want, sizeof want, "\"db\":\"%.*s\",\"sql\":\"x\",\"verdict\"", AUDIT_FIELD_MAX,
             longdb);
    CHECK(strstr(got, want) != NULL);
    free(longdb);
    free(sql);
}

/* A buffer too small gets a NUL-terminated prefix; the return value is the full length. */
static void test_format_small_buffer(void)
{
    audit_record r = statement("SELECT 1");
    char full[1024], small[16];
    size_t n = audit_format(&r, full, sizeof full);
    CHECK_INT(audit_format(&r, NULL, 0), n);
    memset(small, 'X', sizeof small);
    CHECK_INT(audit_format(&r, small, sizeof small), n);
    CHECK_INT(strlen(small), sizeof small - 1);
    CHECK(memcmp(small, full, sizeof small - 1) == 0);
    CHECK_INT(audit_format(&r, full, n), n); /* no room for the NUL: one byte short */
    CHECK_INT(strlen(full), n - 1);
    CHECK_INT(audit_format(&r, full, n + 1), n);
    CHECK_INT(strlen(full), n);
    CHECK(full[n - 1] == '\n');
}

/* Lines reach the file whole and in order; the file is created 0600. */
static void test_file_order_and_mode(void)
{
    char err[256] = "";
    char *path = tmp_path("order.jsonl");
    audit *a = audit_open(path, 64, err, sizeof err);
    CHECK(a != NULL);
    if (!a) {
        fprintf(stderr, "%s\n", err);
        free(path);
        return;
    }
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_INT(st.st_mode & 07777, 0600);

    /* More lines than the queue holds, with pauses so that none is dropped. */
    const int n = 1000;
    for (int i = 0; i < n; i++) {
        audit_record r = statement("SELECT 1");
        r.rows = i;
        audit_log(a, &r);
        if (i % 32 == 31)
            while (audit_written(a) + 16 < (unsigned long long)i + 1)
                usleep(100);
    }
    audit_close(a);

    char *text = slurp(path, NULL);
    CHECK(text != NULL);
    if (text) {
        CHECK_INT(count_lines(text), n);
        char *line = text;
        for (int i = 0; i < n && line && *line; i++) {
            audit_record r = statement("SELECT 1");
            r.rows = i;
            const char *want = fmt(&r);
            CHECK(strncmp(line, want, strlen(want)) == 0);
            line = strchr(line, '\n');
            if (line)
                line++;
        }
    }
    free(text);

    /* Appending to an existing file keeps what it held, and its mode. */
    chmod(path, 0640);
    a = audit_open(path, 0, err, sizeof err);
    CHECK(a != NULL);
    audit_record r = statement("SELECT 2");
    audit_log(a, &r);
    audit_close(a);
    text = slurp(path, NULL);
    CHECK(text && count_lines(text) == (size_t)n + 1);
    free(text);
    CHECK(stat(path, &st) == 0);
    CHECK_INT(st.st_mode & 07777, 0640);
    unlink(path);
    free(path);
}

static void test_open_errors(void)
{
    char err[256] = "";
    char *path = tmp_path("no-such-dir/audit.jsonl");
    CHECK(audit_open(path, 0, err, sizeof err) == NULL);
    CHECK(strstr(err, "cannot open") != NULL);
    CHECK(strstr(err, path) != NULL);
    free(path);

    CHECK(audit_open(tmpdir, 0, err, sizeof err) == NULL); /* a directory */

    /* A NULL log is a no-op everywhere. */
    audit_record r = statement("x");
    audit_log(NULL, &r);
    audit_reopen(NULL);
    audit_pause(NULL, true);
    CHECK_INT(audit_drops(NULL), 0);
    CHECK_INT(audit_written(NULL), 0);
    audit_close(NULL);
}

/* The file deleted under the writer: a new one is made at the path for later lines. */
static void test_deleted_file(void)
{
    char err[256] = "";
    char *path = tmp_path("deleted.jsonl");
    audit *a = audit_open(path, 128, err, sizeof err);
    CHECK(a != NULL);
    if (!a)
        return;
    audit_record r = statement("before");
    audit_log(a, &r);
    for (int i = 0; i < 100 && audit_written(a) < 1; i++)
        usleep(10000);
    CHECK(unlink(path) == 0);
    usleep(1100 * 1000); /* the writer looks once a second */
    r = statement("after");
    audit_log(a, &r);
    audit_close(a);
    char *t = slurp(path, NULL);
    CHECK(t != NULL);
    if (t) {
        CHECK_INT(count_lines(t), 1);
        CHECK(strstr(t, "\"sql\":\"after\"") != NULL);
    }
    free(t);
    unlink(path);
    free(path);
}

/* logrotate: rename the file, reopen, and later lines land in a new file at the old name. */
static void test_reopen(void)
{
    char err[256] = "";
    char *path = tmp_path("rot.jsonl"), *old = tmp_path("rot.jsonl.1");
    audit *a = audit_open(path, 128, err, sizeof err);
    CHECK(a != NULL);
    if (!a)
        return;
    audit_record r = statement("before");
    for (int i = 0; i < 5; i++)
        audit_log(a, &r);
    CHECK(rename(path, old) == 0);
    /* Lines still queued go to the renamed file; lines after the reopen to the new one. */
    audit_log(a, &r);
    audit_reopen(a);
    r = statement("after");
    for (int i = 0; i < 3; i++)
        audit_log(a, &r);
    audit_close(a);

    char *t1 = slurp(old, NULL), *t2 = slurp(path, NULL);
    CHECK(t1 != NULL);
    CHECK(t2 != NULL);
    if (t1 && t2) {
        CHECK_INT(count_lines(t1), 6);
        CHECK_INT(count_lines(t2), 3);
        CHECK(strstr(t1, "\"sql\":\"after\"") == NULL);
        CHECK(strstr(t2, "\"sql\":\"before\"") == NULL);
    }
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_INT(st.st_mode & 07777, 0600);
    free(t1);
    free(t2);

    /* A reopen that fails keeps writing to the file already open. */
    a = audit_open(path, 16, err, sizeof err);
    CHECK(a != NULL);
    char *moved = tmp_path("moved");
    CHECK(mkdir(moved, 0700) == 0);
    char *inside = NULL;
    if (asprintf(&inside, "%s/rot.jsonl", moved) < 0)
        abort();
    CHECK(rename(path, inside) == 0);
    CHECK(mkdir(path, 0700) == 0); /* the path is now a directory: open fails */
    audit_reopen(a);
    audit_log(a, &r);
    audit_close(a);
    t2 = slurp(inside, NULL);
    CHECK(t2 && count_lines(t2) == 4);
    free(t2);
    rmdir(path);
    unlink(inside);
    rmdir(moved);
    free(inside);
    free(moved);
    unlink(old);
    unlink(path);
    free(path);
    free(old);
}

/* A stalled writer: the ring fills, further records are dropped and counted, nobody blocks;
 * the records kept are the first ones, and they are all written once the writer runs. */
static void test_queue_full(void)
{
    char err[256] = "";
    char *path = tmp_path("full.jsonl");
    audit *a = audit_open(path, AUDIT_MIN_RING, err, sizeof err);
    CHECK(a != NULL);
    if (!a)
        return;
    audit_ring *q = audit_ring_new(a);
    CHECK(q != NULL);
    audit_pause(a, true);
    audit_record r = statement("SELECT 1");
    double t0 = now_s();
    for (int i = 0; i < 1000; i++) {
        r.rows = i;
        audit_ring_log(q, &r);
    }
    CHECK(now_s() - t0 < 2.0);
    unsigned long long drops = audit_drops(a), kept = 1000 - drops;
    /* ~130 bytes a record in 64 KiB: about half of them fit. */
    CHECK(drops > 100 && kept > 100);
    usleep(20000);
    CHECK_INT(audit_written(a), 0);

    /* Once the writer runs again the queued records are written, the first ones logged. */
    audit_pause(a, false);
    for (int i = 0; i < 2000 && audit_written(a) < kept; i++)
        usleep(1000);
    CHECK_INT(audit_written(a), kept);
    r.rows = 5000;
    audit_ring_log(q, &r);
    audit_close(a);
    CHECK_INT(count_lines(slurp_keep(path)), kept + 1);
    char want[64];
    snprintf(want, sizeof want, "\"rows\":%llu,", kept - 1);
    CHECK(strstr(slurp_keep(path), want) != NULL);
    snprintf(want, sizeof want, "\"rows\":%llu,", kept);
    CHECK(strstr(slurp_keep(path), want) == NULL);
    CHECK(strstr(slurp_keep(path), "\"rows\":5000,") != NULL);

    /* Closing while paused still writes what is queued, in both kinds of ring. */
    a = audit_open(path, 0, err, sizeof err);
    q = audit_ring_new(a);
    audit_pause(a, true);
    audit_log(a, &r);
    audit_ring_log(q, &r);
    audit_close(a);
    CHECK_INT(count_lines(slurp_keep(path)), kept + 3);
    unlink(path);
    free(path);
}

/* Writes to a file that refuses them are counted, logged once, and the writer keeps going. */
static void test_write_errors(void)
{
    char err[256] = "";
    if (access("/dev/full", W_OK) != 0)
        return;
    char *log_path = tmp_path("stderr.txt");
    fflush(stderr);
    int saved = dup(2), fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    log_level = LOG_INFO;

    audit *a = audit_open("/dev/full", 16, err, sizeof err);
    CHECK(a != NULL);
    audit_record r = statement("SELECT 1");
    for (int i = 0; a && i < 10; i++) { /* one write each */
        audit_log(a, &r);
        for (int j = 0; j < 2000 && audit_write_errors(a) < (unsigned long long)i + 1; j++)
            usleep(500);
    }
    CHECK_INT(audit_write_errors(a), 10);
    CHECK_INT(audit_written(a), 0);
    CHECK_INT(audit_drops(a), 0);
    audit_close(a);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    log_level = -1;
    char *text = slurp(log_path, NULL);
    CHECK(text && count_lines(text) == 1);
    CHECK(text && strstr(text, "ERROR audit log /dev/full: cannot write: No space left on device"));
    free(text);
    unlink(log_path);
    free(log_path);
}

#define THREADS 4
#define PER_THREAD 3000

typedef struct {
    audit *a;
    audit_ring *q; /* NULL: audit_log, the shared ring */
    int id;
} thread_arg;

static atomic_ullong logged; /* records logged by every thread */

/* The SQL a thread sends for its line i: lengths vary from 1 byte to past the limit. */
static size_t thread_sql(int id, int i, char *buf)
{
    size_t len = 1 + (size_t)((i * 7919 + id * 104729) % (AUDIT_SQL_MAX + 200));
    memset(buf, 'a' + id, len);
    return len;
}

static void *log_thread(void *p)
{
    thread_arg *t = p;
    char *sql = malloc(AUDIT_SQL_MAX + 256);
    for (int i = 0; i < PER_THREAD; i++) {
        audit_record r = statement(NULL);
        r.conn = (uint32_t)t->id;
        r.rows = i;
        r.sql = sql;
        r.sql_len = thread_sql(t->id, i, sql);
        if (t->q)
            audit_ring_log(t->q, &r);
        else
            audit_log(t->a, &r);
        atomic_fetch_add(&logged, 1);
        /* Let the writer catch up now and then (a ring holds ~200 of these records), so
         * that nothing is dropped: this test is about what reaches the file. */
        if (i % 50 == 49)
            for (int j = 0; j < 5000 && audit_written(t->a) + 100 < atomic_load(&logged); j++)
                usleep(200);
    }
    free(sql);
    return NULL;
}

/* Four threads at once, each on a ring of its own (or, with shared, all through audit_log):
 * records of 1 byte to past the SQL limit wrap around the rings many times, every line
 * written is whole and the one audit_format gives for the record, and each thread's lines
 * keep its order. */
static void test_threads(bool shared)
{
    char err[256] = "";
    char *path = tmp_path("threads.jsonl");
    unlink(path);
    audit *a = audit_open(path, AUDIT_MIN_RING * 16, err, sizeof err);
    CHECK(a != NULL);
    if (!a)
        return;
    atomic_store(&logged, 0);
    pthread_t th[THREADS];
    thread_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (thread_arg){a, shared ? NULL : audit_ring_new(a), i};
        CHECK(shared || args[i].q);
        pthread_create(&th[i], NULL, log_thread, &args[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK_INT(audit_drops(a), 0);
    audit_close(a);

    size_t len;
    char *text = slurp(path, &len);
    CHECK(text != NULL);
    if (!text)
        return;
    CHECK_INT(count_lines(text), THREADS * PER_THREAD);
    int next[THREADS] = {0};
    size_t bad = 0;
    char *sql = malloc(AUDIT_SQL_MAX + 256);
    for (char *line = text, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        if (!end)
            break;
        const char *c = memmem(line, (size_t)(end - line), "\"conn\":", 7);
        int id = c ? c[7] - '0' : -1;
        if (id < 0 || id >= THREADS) {
            bad++;
            continue;
        }
        audit_record r = statement(NULL);
        r.conn = (uint32_t)id;
        r.rows = next[id];
        r.sql = sql;
        r.sql_len = thread_sql(id, next[id], sql);
        const char *want = fmt(&r);
        if ((size_t)(end + 1 - line) != strlen(want) || strncmp(line, want, strlen(want)) != 0)
            bad++;
        next[id]++;
    }
    CHECK_INT(bad, 0);
    for (int i = 0; i < THREADS; i++)
        CHECK_INT(next[i], PER_THREAD);
    free(sql);
    free(text);
    unlink(path);
    free(path);
}

/* What a ring copies is what audit_format would use: SQL and fields cut inside a multi-byte
 * character near their limits, control characters, invalid bytes and NULL fields come out
 * of the writer exactly as audit_format formats the caller's record. */
static void test_ring_copy_bounds(void)
{
    char err[256] = "";
    char *path = tmp_path("bounds.jsonl");
    unlink(path);
    audit *a = audit_open(path, 0, err, sizeof err);
    audit_ring *q = audit_ring_new(a);
    CHECK(q != NULL);
    if (!q)
        return;
    enum { CASES = 12 };
    static char sql[AUDIT_SQL_MAX + 64], user[AUDIT_FIELD_MAX + 64];
    char *want = malloc((size_t)CASES * 80000), *at = want;
    for (int k = 0; k < CASES; k++) {
        /* k shifts a run of 4-byte characters across the SQL limit and of 3-byte ones across
         * the field limit; odd cases add a control character and an invalid byte. */
        size_t n = 0;
        memset(sql, 'a', sizeof sql);
        for (size_t i = AUDIT_SQL_MAX - 8 + (size_t)k; i + 4 <= sizeof sql; i += 4)
            memcpy(sql + i, "\xf0\x9f\x98\x80", 4);
        n = AUDIT_SQL_MAX - 6 + (size_t)k * 2;
        if (k & 1) {
            sql[3] = '\n';
            sql[5] = (char)0xff;
        }
        memset(user, 'u', sizeof user);
        for (size_t i = AUDIT_FIELD_MAX - 6 + (size_t)k; i + 3 < sizeof user; i += 3)
            memcpy(user + i, "\xe2\x82\xac", 3);
        user[sizeof user - 1] = '\0';
        audit_record r = statement(NULL);
        r.sql = k == CASES - 1 ? NULL : sql;
        r.sql_len = k == CASES - 1 ? 0 : n;
        r.user = user;
        r.db = k & 2 ? NULL : "shop";
        r.error = k & 4 ? "1290: envproxy: \x01 refused" : NULL;
        r.event = k == CASES - 1 ? "login_failed" : NULL;
        r.via = k & 1 ? "http" : NULL;
        r.rows = k;
        r.ms = k & 1 ? -1 : 0.25 * k;
        size_t len = audit_format(&r, at, 80000);
        CHECK(len < 80000);
        at += len;
        audit_ring_log(q, &r);
    }
    audit_close(a);
    size_t got_len;
    char *got = slurp(path, &got_len);
    CHECK(got != NULL);
    CHECK_INT(got_len, (size_t)(at - want));
    CHECK(got && memcmp(got, want, (size_t)(at - want)) == 0);
    CHECK(got && strstr(got, "\"truncated\":true") != NULL);
    free(got);
    free(want);
    unlink(path);
    free(path);
}

/* ---- The format against a reference ----
 * The formatter copies 8 bytes at a time and caches the timestamp; ref_line() below is the
 * same format written one byte at a time, straight from the rules in audit.h. Records made of
 * random pieces (plain ASCII, quotes, backslashes, controls, DEL, valid UTF-8 of every length,
 * invalid and cut sequences) at random lengths, some across the limits, must come out of
 * audit_format and of a ring byte for byte as ref_line writes them. */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

typedef struct {
    char *p;
    size_t len, cap;
} ref_buf;

static void ref_add(ref_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void ref_str(ref_buf *b, const char *s)
{
    ref_add(b, s, strlen(s));
}

/* Bytes of the valid UTF-8 character at s (n available), or 0: decoded and checked against
 * the shortest form, the surrogates and U+10FFFF. */
static size_t ref_utf8(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

/* s (n bytes, at most limit used) as a JSON string; returns whether it was cut. */
static bool ref_json(ref_buf *b, const char *s, size_t n, size_t limit)
{
    const unsigned char *p = (const unsigned char *)s;
    bool cut = false;
    ref_str(b, "\"");
    for (size_t i = 0; i < n;) {
        size_t len = ref_utf8(p + i, n - i), step = len ? len : 1;
        if (i + step > limit) {
            cut = true;
            break;
        }
        char esc[8];
        if (!len)
            ref_str(b, "\\ufffd");
        else if (p[i] == '"')
            ref_str(b, "\\\"");
        else if (p[i] == '\\')
            ref_str(b, "\\\\");
        else if (p[i] == '\n')
            ref_str(b, "\\n");
        else if (p[i] == '\r')
            ref_str(b, "\\r");
        else if (p[i] == '\t')
            ref_str(b, "\\t");
        else if (p[i] == '\b')
            ref_str(b, "\\b");
        else if (p[i] == '\f')
            ref_str(b, "\\f");
        else if (p[i] < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", p[i]);
            ref_str(b, esc);
        } else
            ref_add(b, s + i, step);
        i += step;
    }
    ref_str(b, "\"");
    return cut;
}

static void ref_field(ref_buf *b, const char *key, const char *s)
{
    ref_str(b, key);
    if (!s)
        ref_str(b, "null");
    else
        ref_json(b, s, strlen(s), AUDIT_FIELD_MAX);
}

/* The line of r, NUL-terminated in b (emptied first). */
static void ref_line(ref_buf *b, const audit_record *r)
{
    char num[64];
    b->len = 0;
    long long sec = r->ts_ms / 1000, ms = r->ts_ms % 1000;
    if (ms < 0) {
        ms += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        ref_str(b, "{\"ts\":\"1970-01-01T00:00:00.000Z\"");
    } else {
        snprintf(num, sizeof num, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ms);
        ref_str(b, num);
    }
    if (r->event)
        ref_field(b, ",\"event\":", r->event);
    snprintf(num, sizeof num, ",\"conn\":%u", r->conn);
    ref_str(b, num);
    ref_field(b, ",\"user\":", r->user);
    ref_field(b, ",\"client\":", r->client);
    if (r->via)
        ref_field(b, ",\"via\":", r->via);
    ref_field(b, ",\"env\":", r->env);
    ref_field(b, ",\"db\":", r->db);
    ref_str(b, ",\"sql\":");
    if (!r->sql)
        ref_str(b, "null");
    else if (ref_json(b, r->sql, r->sql_len, AUDIT_SQL_MAX))
        ref_str(b, ",\"truncated\":true");
    ref_field(b, ",\"verdict\":", r->verdict);
    if (r->rows < 0)
        ref_str(b, ",\"rows\":null");
    else {
        snprintf(num, sizeof num, ",\"rows\":%lld", r->rows);
        ref_str(b, num);
    }
    if (!(r->ms >= 0) || r->ms > 1e15) {
        ref_str(b, ",\"ms\":null");
    } else {
        long long k = (long long)(r->ms * 1000.0 + 0.5);
        snprintf(num, sizeof num, ",\"ms\":%lld.%03lld", k / 1000, k % 1000);
        ref_str(b, num);
    }
    ref_field(b, ",\"error\":", r->error);
    ref_str(b, "}\n");
}

/* A random string of about len bytes into s (room for len + 8): pieces chosen to land on
 * every position of an 8-byte word. NUL-terminated; *n gets its length (no NUL inside unless
 * nul_ok). */
static void random_text(char *s, size_t len, bool nul_ok, size_t *n)
{
    static const char *const pieces[] = {
        "a", "Z", " ", "~", "\x7f", "\"", "\\", "\n", "\t", "\x01", "\x1f", "\xc3\xa9",
        "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xff", "\x80", "\xc0\xaf",
        "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xf0\x9f", "\xc3", "!", "#", "[", "]",
    };
    size_t i = 0;
    /* Mostly plain runs, so that the word-at-a-time path runs as long as it can. */
    unsigned plain_odds = (unsigned)(rng() % 4);
    while (i < len) {
        if (rng() % 4 < plain_odds) {
            s[i++] = (char)(0x20 + rng() % 0x5f);
            if (s[i - 1] == '"' || s[i - 1] == '\\')
                s[i - 1] = 'q';
            continue;
        }
        const char *piece = pieces[rng() % (sizeof pieces / sizeof pieces[0])];
        size_t k = strlen(piece);
        if (i + k > len)
            break;
        if (nul_ok && rng() % 16 == 0) {
            s[i++] = '\0';
            continue;
        }
        memcpy(s + i, piece, k);
        i += k;
    }
    s[i] = '\0';
    *n = i;
}

/* A length: short most of the time, sometimes around 8-byte multiples or the limit. */
static size_t random_len(size_t limit)
{
    switch (rng() % 8) {
    case 0:
        return limit - 6 + rng() % 14;
    case 1:
        return 8 * (rng() % 6) + rng() % 3;
    default:
        return rng() % 20;
    }
}

static void random_record(audit_record *r, char bufs[][AUDIT_SQL_MAX + 32])
{
    size_t n;
    memset(r, 0, sizeof *r);
    /* Timestamps around now, before the epoch and out of gmtime's range. */
    switch (rng() % 4) {
    case 0:
        r->ts_ms = -(long long)(rng() % 100000000000ull);
        break;
    case 1:
        r->ts_ms = (long long)(rng() >> 1);
        break;
    default:
        r->ts_ms = TS + (long long)(rng() % 5000);
    }
    r->conn = (uint32_t)rng();
    const char **fields[] = {&r->user, &r->client, &r->env, &r->db, &r->error, &r->via, &r->event};
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        if (rng() % 5 == 0) {
            *fields[f] = NULL;
            continue;
        }
        random_text(bufs[f], random_len(AUDIT_FIELD_MAX), false, &n);
        *fields[f] = bufs[f];
    }
    static const char *const verdicts[] = {"allowed", "refused", "error", NULL};
    r->verdict = verdicts[rng() % 4];
    if (rng() % 6) {
        random_text(bufs[7], random_len(AUDIT_SQL_MAX), true, &n);
        r->sql = bufs[7];
        r->sql_len = n;
    }
    static const double ms[] = {0, 0.0004, 0.0005, 1.5, 12.3456, 999.9996, 1e15, 2e15, -1};
    r->ms = rng() % 2 ? ms[rng() % (sizeof ms / sizeof ms[0])] : (double)(rng() % 100000) / 7.0;
    r->rows = rng() % 3 == 0 ? -1 : (long long)(rng() >> (rng() % 64));
}

static void test_format_against_reference(void)
{
    static char bufs[8][AUDIT_SQL_MAX + 32];
    static char out[80000];
    ref_buf want = {0};
    enum { RECORDS = 20000, RING_RECORDS = 2000 };
    int bad = 0;

    for (int k = 0; k < RECORDS; k++) {
        audit_record r;
        random_record(&r, bufs);
        ref_line(&want, &r);
        size_t n = audit_format(&r, out, sizeof out);
        if (n != want.len || strcmp(out, want.p) != 0) {
            if (bad++ < 3)
                fprintf(stderr, "record %d:\n got  %s want %s", k, out, want.p);
        }
        /* A buffer too small holds a prefix of the same line. */
        size_t cap = (size_t)(rng() % (want.len + 2));
        memset(out, 'X', cap + 1);
        CHECK_INT(audit_format(&r, out, cap), want.len);
        if (cap)
            CHECK(strlen(out) == (cap - 1 < want.len ? cap - 1 : want.len) &&
                  memcmp(out, want.p, strlen(out)) == 0);
        CHECK(out[cap] == 'X');
    }
    CHECK_INT(bad, 0);

    /* Through a ring and the writer: the same lines in the file. */
    char err[256] = "";
    char *path = tmp_path("reference.jsonl");
    unlink(path);
    audit *a = audit_open(path, 16u << 20, err, sizeof err); /* room for all: none dropped */
    audit_ring *q = audit_ring_new(a);
    CHECK(q != NULL);
    if (!q) {
        free(path);
        free(want.p);
        return;
    }
    /* The writer copies the connection's part of the line (conn .. db) when they repeat:
     * records of a few connections (7, 71 and 135 share a slot of its memory) whose user,
     * client, via, env and db mostly repeat and sometimes change, to NULL or an empty string
     * among others. */
    static const uint32_t conns[] = {7, 71, 135, 8};
    static const char *const names[] = {"alice", "", NULL, "b\"ob", "caf\xc3\xa9", "x\xff"};
    enum { NAMES = sizeof names / sizeof names[0] };
    const char *session[4][5];
    for (int c = 0; c < 4; c++)
        for (int f = 0; f < 5; f++)
            session[c][f] = names[(c + f) % NAMES];
    ref_buf all = {0};
    for (int k = 0; k < RING_RECORDS; k++) {
        audit_record r;
        random_record(&r, bufs);
        if (k % 4 != 3) {
            int c = (int)(rng() % 4);
            if (rng() % 8 == 0)
                session[c][rng() % 5] = names[rng() % NAMES];
            r.conn = conns[c];
            r.user = session[c][0];
            r.client = session[c][1];
            r.via = session[c][2];
            r.env = session[c][3];
            r.db = session[c][4];
        }
        ref_line(&want, &r);
        ref_add(&all, want.p, want.len);
        audit_ring_log(q, &r);
    }
    CHECK_INT(audit_drops(a), 0);
    audit_close(a);
    size_t got_len;
    char *got = slurp(path, &got_len);
    CHECK_INT(got_len, all.len);
    CHECK(got && memcmp(got, all.p, all.len) == 0);
    free(got);
    free(all.p);
    free(want.p);
    unlink(path);
    free(path);
}

/* A log in a fresh file with one ring: the tests below log records through the ring and
 * compare the file with what audit_format gives for them. */
typedef struct {
    char *path;
    audit *a;
    audit_ring *q;
} ring_log;

static bool ring_log_open(ring_log *t, const char *name)
{
    char err[256] = "";
    t->path = tmp_path(name);
    unlink(t->path);
    t->a = audit_open(t->path, 0, err, sizeof err);
    t->q = audit_ring_new(t->a);
    CHECK(t->q != NULL);
    if (!t->q) {
        audit_close(t->a);
        free(t->path);
    }
    return t->q != NULL;
}

/* Closes the log (the writer writes what is queued) and returns the file's content. */
static char *ring_log_close(ring_log *t)
{
    audit_close(t->a);
    char *got = slurp(t->path, NULL);
    CHECK(got != NULL);
    unlink(t->path);
    free(t->path);
    return got;
}

/* The writer copies a connection's part of the line (conn .. db) while it repeats: a line
 * whose strings changed (to NULL and "" swapped between two fields, a longer or shorter db),
 * or of another connection in the same slot of its memory, is formatted afresh. */
static void test_session_text(void)
{
    struct {
        uint32_t conn;
        const char *user, *client, *env, *db;
    } cases[] = {
        {7, "alice", "10.0.0.5:1", "prod", "shop"},
        {7, "alice", "10.0.0.5:1", "prod", "shop"},
        {71, "alice", "10.0.0.5:1", "prod", "shop"}, /* the same slot, another connection */
        {7, "alice", "10.0.0.5:1", "prod", "shopx"},
        {7, "alice", "10.0.0.5:1", "prod", "sho"},
        {7, "alice", "10.0.0.5:1", "prod", "sho"},
        {7, NULL, "", "prod", "sho"},
        {7, "", NULL, "prod", "sho"}, /* the same bytes in the ring as the line before */
        {7, "", NULL, "prod", "sho"},
        {7, "bob", "10.0.0.5:1", "prod", NULL},
        {7, "bob", "10.0.0.5:1", "prod", ""},
        {135, "bob", "10.0.0.5:1", "prod", ""},
        {7, "bob", "10.0.0.5:1", "prod", ""},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    ring_log t;
    if (!ring_log_open(&t, "session.jsonl"))
        return;
    char *want = malloc(N * 1024), *at = want;
    for (int i = 0; i < N; i++) {
        audit_record r = statement("SELECT 1");
        r.conn = cases[i].conn;
        r.user = cases[i].user;
        r.client = cases[i].client;
        r.env = cases[i].env;
        r.db = cases[i].db;
        r.via = "mysql";
        at += audit_format(&r, at, 1024);
        audit_ring_log(t.q, &r);
    }
    char *got = ring_log_close(&t);
    CHECK_STR(got, want);
    free(got);
    free(want);
}

/* The writer keeps the text it wrote for a statement and copies it when the statement comes
 * again: a statement that differs in one byte, in length or by a NULL (a failed login) is
 * formatted afresh; a statement that repeats a credential is hidden each time; texts too long
 * to keep (257 bytes, or 256 bytes of control characters that become 1,536) are right every
 * time; 600 texts, more than the table holds, twice over (slots taken over by another text)
 * give the lines audit_format gives. */
static void test_sql_text(void)
{
    char long_sql[258], ctl_sql[257];
    memset(long_sql, 'x', 257);
    memcpy(long_sql, "SELECT '", 8);
    long_sql[256] = '\'';
    long_sql[257] = '\0';
    memset(ctl_sql, 0x01, 256);
    ctl_sql[256] = '\0';
    struct {
        uint32_t conn;
        const char *sql;
    } cases[] = {
        {7, "SELECT c FROM t WHERE id=?"},
        {7, "SELECT c FROM t WHERE id=?"},
        {7, "SELECT c FROM t WHERE id=!"},  /* one byte changed */
        {7, "SELECT c FROM t WHERE id=!!"}, /* longer */
        {7, "SELECT c FROM t WHERE id="},   /* shorter */
        {71, "SELECT c FROM t WHERE id="},  /* the same slot, another connection */
        {7, "SELECT c FROM t WHERE id="},
        {7, NULL},
        {7, "SELECT c FROM t WHERE id="},
        {7, "SET PASSWORD = 'pw1'"},
        {7, "SET PASSWORD = 'pw1'"},
        {7, "SET PASSWORD = 'pw2'"},
        {7, "SELECT \"q\" FROM t"},
        {7, "SELECT \"q\" FROM t"},
        {7, long_sql},
        {7, long_sql},
        {7, ctl_sql},
        {7, ctl_sql},
        {135, ctl_sql},
        {7, ""},
        {7, ""},
    };
    enum { N = sizeof cases / sizeof cases[0], MANY = 600 };
    ring_log t;
    if (!ring_log_open(&t, "sql.jsonl"))
        return;
    char *want = malloc(N * 4096 + 2 * MANY * 512), *at = want;
    for (int i = 0; i < N; i++) {
        audit_record r = statement(cases[i].sql);
        r.conn = cases[i].conn;
        if (!cases[i].sql) {
            r.event = "login_failed";
            r.verdict = "refused";
        }
        at += audit_format(&r, at, 4096);
        audit_ring_log(t.q, &r);
    }
    for (int i = 0; i < 2 * MANY; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT %d FROM t%d WHERE p = '\t'", i % MANY, i % 7);
        audit_record r = statement(sql);
        r.conn = (uint32_t)i;
        at += audit_format(&r, at, 512);
        audit_ring_log(t.q, &r);
    }
    char *got = ring_log_close(&t);
    CHECK_STR(got, want);
    CHECK(got && strstr(got, "pw1") == NULL && strstr(got, "pw2") == NULL);
    free(got);
    free(want);
}

/* Lengths the caller gives (audit_record.user_len ...) give the line the measured strings
 * give; 0 means "measure", also for an empty string; a length past AUDIT_FIELD_MAX is cut as
 * a measured one is. */
static void test_given_lengths(void)
{
    static char big[AUDIT_FIELD_MAX + 100];
    memset(big, 'u', sizeof big - 1);
    char want[8192], got[8192];
    audit_record r = statement("SELECT 1");
    r.via = "mysql";
    size_t n = audit_format(&r, want, sizeof want);
    r.user_len = 5;
    r.client_len = (uint16_t)strlen(r.client);
    r.env_len = 4;
    r.db_len = 4;
    r.via_len = 5;
    r.verdict_len = 7;
    CHECK_INT(audit_format(&r, got, sizeof got), n);
    CHECK_STR(got, want);
    r.db = "";
    r.db_len = 0;
    n = audit_format(&r, got, sizeof got);
    CHECK(strstr(got, "\"db\":\"\"") != NULL);
    r.user = big;
    r.user_len = 0;
    n = audit_format(&r, want, sizeof want);
    r.user_len = (uint16_t)strlen(big);
    CHECK_INT(audit_format(&r, got, sizeof got), n);
    CHECK_STR(got, want);
    /* Through a ring: the same line. */
    ring_log t;
    if (!ring_log_open(&t, "lengths.jsonl"))
        return;
    audit_ring_log(t.q, &r);
    char *file = ring_log_close(&t);
    CHECK_STR(file, want);
    free(file);
}

/* A log serves at most AUDIT_MAX_RINGS rings, and a NULL ring is a no-op. */
static void test_ring_limit(void)
{
    char err[256] = "";
    char *path = tmp_path("limit.jsonl");
    audit *a = audit_open(path, AUDIT_MIN_RING, err, sizeof err);
    CHECK(a != NULL);
    if (!a)
        return;
    int made = 0;
    while (made < AUDIT_MAX_RINGS + 5 && audit_ring_new(a))
        made++;
    CHECK_INT(made, AUDIT_MAX_RINGS);
    audit_record r = statement("x");
    audit_ring_log(NULL, &r);
    CHECK(audit_ring_new(NULL) == NULL);
    audit_close(a);
    unlink(path);
    free(path);
}

int main(void)
{
    log_level = -1; /* the writer's messages are expected here; test_write_errors reads them */
    umask(022);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_format_basic();
    test_format_numbers();
    test_format_escapes();
    test_format_truncation();
    test_format_small_buffer();
    test_file_order_and_mode();
    test_open_errors();
    test_reopen();
    test_deleted_file();
    test_queue_full();
    test_write_errors();
    test_threads(false);
    test_threads(true);
    test_ring_copy_bounds();
    test_ring_limit();
    test_format_against_reference();
    test_session_text();
    test_sql_text();
    test_given_lengths();
    rmdir(tmpdir);
    return unit_report("audit");
}
