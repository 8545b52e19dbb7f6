/* prompt.c: reading a password from standard input or, twice with echo off, from the
 * terminal, for the commands that need one (user add/passwd, encrypt-secret). */
#include "prompt.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* Reads one line from fd into buf (NUL-terminated, without its "\n" or "\r\n"), one byte at a
 * time so nothing past the line is consumed and no copy is left in a stdio buffer.
 * Returns the length, or -1 with *why set. stop, when not NULL, is polled after an EINTR. */
static int read_line(int fd, char *buf, size_t size, volatile sig_atomic_t *stop, const char **why)
{
    size_t n = 0;
    bool got_any = false;

    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);

        if (r < 0) {
            if (errno == EINTR && !(stop && *stop))
                continue;
            *why = errno == EINTR ? "interrupted" : "cannot read the password";
            goto bad;
        }
        if (r == 0) {
            if (!got_any) {
                *why = "no password given (end of input)";
                goto bad;
            }
            break;
        }
        got_any = true;
        if (c == '\n')
            break;
        if (c == '\0') {
            *why = "the password contains a NUL byte";
            goto bad;
        }
        if (n + 1 >= size) {
            *why = "the password is too long";
            goto bad;
        }
        buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = 0;
    return (int)n;
bad:
    OPENSSL_cleanse(buf, size);
    return -1;
}

static volatile sig_atomic_t caught_signal;

static void on_signal(int sig)
{
    caught_signal = sig;
}

static const int prompt_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_PROMPT_SIGNALS (sizeof prompt_signals / sizeof prompt_signals[0])

/* Prompts twice on the terminal with echo off and fills pw. Returns 0, or -1 with *why set.
 * A signal that would end the process while echo is off first restores the terminal. */
static int prompt_twice(const char *label, char *pw, size_t size, const char **why)
{
    char again[PROMPT_MAX + 1];
    struct sigaction sa, old[N_PROMPT_SIGNALS];
    struct termios saved, quiet;
    int fd, n1 = -1, n2 = -1, sig;

    fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || tcgetattr(fd, &saved) < 0) {
        if (fd >= 0)
            close(fd);
        *why = "no terminal to prompt for a password; use --password-stdin";
        return -1;
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a signal must end the read */
    sigemptyset(&sa.sa_mask);
    caught_signal = 0;
    for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
        sigaction(prompt_signals[i], &sa, &old[i]);

    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
    quiet.c_lflag |= ECHONL;
    if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
        *why = "cannot turn off echo on the terminal";
    } else {
        size_t label_len = strlen(label);
        if (write(fd, label, label_len) == (ssize_t)label_len)
            n1 = read_line(fd, pw, size, &caught_signal, why);
        if (n1 >= 0 && write(fd, "Again: ", 7) == 7)
            n2 = read_line(fd, again, sizeof again, &caught_signal, why);
        tcsetattr(fd, TCSAFLUSH, &saved);
    }
    if (caught_signal) {
        /* End the prompt's line; echo was off, so nothing else did. */
        ssize_t ignored = write(fd, "\n", 1);
        (void)ignored;
    }
    close(fd);
    sig = caught_signal;
    for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
        sigaction(prompt_signals[i], &old[i], NULL);

    if (sig) {
        *why = "interrupted";
        n2 = -1;
    } else if (n1 >= 0 && n2 >= 0 && strcmp(pw, again) != 0) {
        *why = "the passwords do not match";
        n2 = -1;
    } else if (n1 < 0 || n2 < 0) {
        if (!*why)
            *why = "cannot write the prompt to the terminal";
    }
    OPENSSL_cleanse(again, sizeof again);
    if (n1 < 0 || n2 < 0) {
        OPENSSL_cleanse(pw, size);
        if (sig)
            raise(sig); /* the old handler is back: act on the signal as it would have */
        return -1;
    }
    return 0;
}


int prompt_password(bool from_stdin, const char *label, char *pw, size_t size, const char **why)
{
    *why = NULL;
    int n = from_stdin ? read_line(STDIN_FILENO, pw, size, NULL, why)
                       : prompt_twice(label, pw, size, why);
    if (n < 0)
        return -1;
    return (int)strlen(pw);
}

int cli_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fputs("envproxy: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage, stderr);
    return 2;
}

int cli_fail(const char *msg)
{
    fprintf(stderr, "envproxy: %s\n", msg);
    return 1;
}
