/* log.c: leveled, line-oriented logging to stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

_Atomic int log_level = LOG_INFO;
int log_json = 0;

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
    fwrite(line, 1, len, stderr);
}
