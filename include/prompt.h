/* prompt.h: reading a password without taking it from the command line, and the error
 * reporting shared by the subcommands that do. */
#ifndef ENVPROXY_PROMPT_H
#define ENVPROXY_PROMPT_H

#include <stdbool.h>
#include <stddef.h>

#define PROMPT_MAX 4096 /* longest password accepted, in bytes */

/* Reads a password into pw (size bytes with the NUL): the first line of standard input
 * (from_stdin; its "\n" or "\r\n" dropped), or typed twice on /dev/tty after label with echo
 * off (a signal meanwhile restores the terminal first). A NUL byte, a line longer than pw,
 * no input, no terminal or two different answers are errors. Returns the length, or -1
 * with *why set and pw wiped. */
int prompt_password(bool from_stdin, const char *label, char *pw, size_t size, const char **why);

/* For the subcommands: "envproxy: PROBLEM" then the usage on stderr; returns 2 (usage). */
int cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "envproxy: MSG" on stderr; returns 1. */
int cli_fail(const char *msg);

#endif
