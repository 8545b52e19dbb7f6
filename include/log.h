/* log.h: leveled, line-oriented logging to stderr, safe from any thread. */
#ifndef ENVPROXY_LOG_H
#define ENVPROXY_LOG_H

#include <stdatomic.h>

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Set by the main thread (start, reload), read by every thread. */
extern _Atomic int log_level;
extern int log_json; /* 1: one JSON object per line ({"ts","level","msg"}) */

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For the server: when stderr is a pipe or a socket, writes to it no longer wait; a line the
 * reader has no room for is dropped, and the count is logged once lines fit again. */
void log_nonblocking(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                            \
    do {                                                                                          \
        if (log_level >= LOG_DEBUG)                                                               \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                      \
    } while (0)

#endif
