/* log.c: leveled, line-oriented logging to stderr. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_level = LOG_INFO;
int log_json = 0;

/* stderr is a pipe or a socket (journald, a container runtime, `| logger`) put in
 * non-blocking mode: a reader that stops must not stop the threads that log. */
static bool to_pipe;
static _Atomic unsigned long long dropped; /* lines the pipe had no room for */

void log_nonblocking(void)
{
    struct stat st;
    if (fstat(STDERR_FILENO, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        return;
    int fl = fcntl(STDERR_FILENO, F_GETFL);
    if (fl < 0 || fcntl(STDERR_FILENO, F_SETFL, fl | O_NONBLOCK) != 0)
        return;
    to_pipe = true;
}

/* One line to a non-blocking pipe: written whole (a line is shorter than PIPE_BUF, so the
 * pipe takes all of it or none) or dropped and counted; the count is said in the first line
 * that fits again. */
static void write_pipe(const char *line, size_t len, const char *ts)
{
    unsigned long long lost = atomic_exchange(&dropped, 0);
    if (lost) {
        char note[160];
        int n = log_json ? snprintf(note, sizeof(note),
                                    "{\"ts\":\"%s\",\"level\":\"warn\",\"msg\":\"%llu log "
                                    "line(s) dropped: nobody read the log\"}\n",
                                    ts, lost)
                         : snprintf(note, sizeof(note),
                                    "%s WARN  %llu log line(s) dropped: nobody read the log\n",
                                    ts, lost);
        if (write(STDERR_FILENO, note, (size_t)n) != n) {
            atomic_fetch_add(&dropped, lost + 1);
            return;
        }
    }
    ssize_t n = write(STDERR_FILENO, line, len);
    if (n <= 0) {
        atomic_fetch_add(&dropped, 1);
        return;
    }
    /* A stream socket may take part of a line: the rest gets 100 ms, so that the next line
     * does not start in the middle of this one. */
    size_t done = (size_t)n;
    for (int tries = 0; done < len && tries < 10; tries++) {
        struct pollfd pfd = {STDERR_FILENO, POLLOUT, 0};
        if (poll(&pfd, 1, 10) > 0) {
            n = write(STDERR_FILENO, line + done, len - done);
            if (n > 0)
                done += (size_t)n;
        }
    }
}

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char *const json_levels[] = {"error", "warn", "info", "debug"};

/* Writes one line: UTC timestamp with milliseconds, level, message. The line is formatted
 * first and written with one call so that lines from several threads do not interleave. */
void log_msg(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char ts[96];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(tv.tv_usec / 1000));
    char msg[1800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t len;
    if (!log_json) {
        int n = snprintf(line, sizeof(line) - 1, "%s %-5s %s", ts, level_names[level], msg);
        len = n < 0 ? 0 : (size_t)n;
    } else {
        /* {"ts":"...","level":"info","msg":"..."} with the message escaped. */
        int n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                         json_levels[level]);
        len = (size_t)n;
        for (const char *p = msg; *p && len < sizeof(line) - 16; p++) {
            unsigned char ch = (unsigned char)*p;
            if (ch == '"' || ch == '\\') {
                line[len++] = '\\';
                line[len++] = (char)ch;
            } else if (ch < 0x20) {
                len += (size_t)snprintf(line + len, 8, "\\u%04x", ch);
            } else {
                line[len++] = (char)ch;
            }
        }
        line[len++] = '"';
        line[len++] = '}';
    }
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    if (to_pipe)
        write_pipe(line, len, ts);
    else
        fwrite(line, 1, len, stderr);
}
