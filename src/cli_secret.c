/* cli_secret.c: `envproxy -c FILE encrypt-secret`, which prints the enc: form of a password. */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define TOO_LONG "the password is too long (at most " STRINGIFY(SECRET_PLAIN_MAX) " bytes)"

static const char usage_text[] =
    "usage: envproxy -c FILE encrypt-secret [--stdin]\n"
    "Prints the enc: form of a backend password, to write as an environment's password.\n"
    "Without --stdin the password is asked for twice on the terminal; with it, the first\n"
    "line of standard input is the password. It is never taken from the command line.\n"
    "The key (32 bytes: 64 hex digits or base64) comes from the environment variable\n"
    "ENVPROXY_SECRET_KEY or, when that is not set, from the file named by secret_key_file\n"
    "in the configuration, which only its owner may read. Make a key file with:\n"
    "  (umask 077; openssl rand -hex 32 > /etc/envproxy/secret.key)\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "envproxy: PROBLEM" and the usage on stderr. Returns 2. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("envproxy: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage_text, stderr);
    return 2;
}

static int fail(const char *msg)
{
    fprintf(stderr, "envproxy: %s\n", msg);
    return 1;
}

/* Reads one line from fd into buf (size bytes with the NUL), dropping its "\n" or "\r\n".
 * Reads a byte at a time so that nothing after the line is consumed or left in a buffer.
 * Returns the length, or -1 with *why set (buf is then wiped). A read interrupted by a
 * signal gives up when *interrupted is set. */
static long read_secret_line(int fd, char *buf, size_t size, volatile sig_atomic_t *interrupted,
                             const char **why)
{
    size_t n = 0;
    bool any = false;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR && !(interrupted && *interrupted))
            continue;
        if (r < 0) {
            *why = errno == EINTR ? "interrupted" : "cannot read the password";
            break;
        }
        if (r == 0 && !any) {
            *why = "no password given (end of input)";
            break;
        }
        if (r == 0 || c == '\n') {
            if (n && buf[n - 1] == '\r')
                n--;
            buf[n] = '\0';
            return (long)n;
        }
        any = true;
        if (c == '\0') {
            *why = "the password contains a NUL byte";
            break;
        }
        if (n + 1 >= size) {
            *why = TOO_LONG;
            break;
        }
        buf[n++] = c;
    }
    OPENSSL_cleanse(buf, size);
    return -1;
}

static volatile sig_atomic_t prompt_signal;

static void on_prompt_signal(int sig)
{
    prompt_signal = sig;
}

/* Asks for the password twice on /dev/tty with echo off. Returns 0 with pw filled, or -1 with
 * *why set. A signal that arrives meanwhile restores the terminal first, then takes effect. */
static int prompt_twice(char *pw, size_t size, const char **why)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
    enum { NSIGS = sizeof sigs / sizeof sigs[0] };
    struct sigaction sa, saved_sa[NSIGS];
    struct termios saved, quiet;
    char again[SECRET_PLAIN_MAX + 2];
    long n1 = -1, n2 = -1;

    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || tcgetattr(fd, &saved) != 0) {
        if (fd >= 0)
            close(fd);
        *why = "no terminal to ask for the password on; use --stdin";
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prompt_signal; /* no SA_RESTART: the read must return */
    sigemptyset(&sa.sa_mask);
    prompt_signal = 0;
    for (int i = 0; i < NSIGS; i++)
        sigaction(sigs[i], &sa, &saved_sa[i]);

    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
    quiet.c_lflag |= ECHONL;
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
        *why = "cannot turn off echo on the terminal";
    } else {
        static const char p1[] = "Backend password: ", p2[] = "Again: ";
        if (write(fd, p1, sizeof p1 - 1) == (ssize_t)(sizeof p1 - 1))
            n1 = read_secret_line(fd, pw, size, &prompt_signal, why);
        if (n1 >= 0 && write(fd, p2, sizeof p2 - 1) == (ssize_t)(sizeof p2 - 1))
            n2 = read_secret_line(fd, again, sizeof again, &prompt_signal, why);
        tcsetattr(fd, TCSAFLUSH, &saved);
        if (prompt_signal) {
            ssize_t ignored = write(fd, "\n", 1); /* echo was off: end the prompt's line */
            (void)ignored;
        }
    }
    close(fd);
    int sig = prompt_signal;
    for (int i = 0; i < NSIGS; i++)
        sigaction(sigs[i], &saved_sa[i], NULL);

    int rc = 0;
    if (sig) {
        *why = "interrupted";
        rc = -1;
    } else if (n1 < 0 || n2 < 0) {
        if (!*why)
            *why = "cannot write the prompt to the terminal";
        rc = -1;
    } else if (strcmp(pw, again) != 0) {
        *why = "the passwords do not match";
        rc = -1;
    }
    OPENSSL_cleanse(again, sizeof again);
    if (rc < 0)
        OPENSSL_cleanse(pw, size);
    if (sig)
        raise(sig); /* the previous disposition is back: let it act */
    return rc;
}

int cli_encrypt_secret(const char *key_file, int argc, char **argv)
{
    bool from_stdin = false;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (strcmp(w, "--stdin") == 0)
            from_stdin = true;
        else if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strncmp(w, "--password", 10) == 0 || strncmp(w, "-p", 2) == 0)
            /* Refuse without repeating the word: it may hold the password. */
            return usage_error("the password is read from the terminal or with --stdin, never "
                               "from the command line");
        else if (w[0] == '-')
            return usage_error("unknown option '%s'", w);
        else
            return usage_error("encrypt-secret takes no arguments (the password is read from "
                               "the terminal or with --stdin)");
    }

    /* The key first, so that nobody types a password only to learn it cannot be used. */
    uint8_t key[SECRET_KEY_LEN];
    char err[512];
    if (secret_load_key(key_file, key, err, sizeof err) != 0)
        return fail(err);

    char pw[SECRET_PLAIN_MAX + 2];
    const char *why = NULL;
    long n;
    if (from_stdin)
        n = read_secret_line(STDIN_FILENO, pw, sizeof pw, NULL, &why);
    else
        n = prompt_twice(pw, sizeof pw, &why) == 0 ? (long)strlen(pw) : -1;
    if (n < 0) {
        OPENSSL_cleanse(key, sizeof key);
        return fail(why ? why : "cannot read the password");
    }
    if (n == 0) {
        OPENSSL_cleanse(key, sizeof key);
        return fail("the password is empty; an empty password needs no encryption");
    }

    char *enc = NULL;
    int rc = secret_encrypt(key, pw, (size_t)n, &enc, err, sizeof err);
    OPENSSL_cleanse(pw, sizeof pw);
    OPENSSL_cleanse(key, sizeof key);
    if (rc != 0)
        return fail(err);
    printf("%s\n", enc);
    free(enc);
    if (fflush(stdout) != 0)
        return fail("cannot write to standard output");
    return 0;
}
